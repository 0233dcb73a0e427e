/* persist.c -- paidan-server's durability: journal every mutating request,
 * commit before replying, snapshot in a forked child, recover at start.
 *
 * What is journaled. A request that writes (pd_method_call_writes: a
 * PD_M_WRITE method, match.mobilize only when it marks volunteers
 * notified) and whose reply is not an error is appended as one PD_JREC_COMMAND record: the
 * MessagePack array [method name, params map] exactly as the server read it, stamped with the
 * request's timestamp (srv->now_ms). Rejected requests change nothing (house rule 8), so they are
 * not journaled. A tick that expires an offer is appended as a PD_JREC_TICK record with its time;
 * ticks with nothing due are skipped altogether, and one that found only the deadlines of offers
 * answered since is not journaled (neither changes anything).
 *
 * When replies leave. Handlers pack replies into connection buffers;
 * pd_server_flush() normally writes them at the end of each callback. With
 * records pending it instead arms a uv_check handle, which runs once after
 * all the I/O callbacks of the loop iteration: it commits the journal
 * (write(); fdatasync() under `always`) and only then writes every reply of
 * the iteration. So under `always` one fdatasync covers every client served
 * in that iteration (group commit), and no reply -- not even a read that
 * saw an unsynced write -- leaves before the writes it depends on are on
 * disk. Any other path that writes to a socket (pd_conn_flush on a full
 * buffer, a write completion) commits first too.
 *
 * Snapshots. pd_store_snapshot_begin() rotates the journal; then fork():
 * the child writes the engine (pd_engine_snapshot_write allocates nothing,
 * and copy-on-write keeps the parent's pages as they were at the fork) and
 * _exit()s; the parent goes on serving and polls waitpid() from a timer,
 * then calls pd_store_snapshot_end(), which prunes old files. The child
 * dies with the parent (PR_SET_PDEATHSIG), so a killed server never leaves
 * a writer behind holding the data directory's lock. Snapshots start from
 * the `snapshot` method, when the journal passes --snapshot-bytes, and (in
 * process, blocking) at a clean shutdown.
 *
 * Recovery replays records through the very handlers that served them,
 * with a connection that has no socket, so there is one code path for a
 * request and its replay. A replayed request that fails means the journal
 * and the code disagree; start-up stops rather than serve a different
 * state.
 */
#include "persist.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "conn.h"
#include "methods.h"
#include "paidan/alloc.h"
#include "replicate.h"
#ifdef PD_HAVE_DATA
#include "paidan/data.h"
#endif

struct pd_persist_s {
    pd_store_t *store;
    msgpack_sbuffer rec; /* the record being packed */
    msgpack_packer pk;
    uv_check_t check; /* commit, then flush, at the end of the iteration */
    uv_idle_t nowait; /* while check is armed: the iteration's poll does not block */
    bool check_init;
    bool flush_deferred;
    bool failed;             /* the journal broke: nothing more is acknowledged */
    bool read_only;          /* no room could be reserved: writes refused */
    int full_errno;          /* why (ENOSPC, EDQUOT, ...) */
    uint64_t full_retry_ns;  /* when to try reserving again */
    uint64_t writes_refused; /* writes refused while read-only */

    pid_t child; /* background snapshot writer, or 0 */
    uint64_t child_seq;
    uint64_t child_t0;
    uv_timer_t child_timer;
    bool timer_init;

    uint64_t records;           /* command records appended */
    uint64_t tick_records;      /* tick records appended */
    uint64_t snapshots;         /* snapshots completed */
    uint64_t snapshot_failures; /* snapshots that failed */
    uint64_t last_snapshot_seq;
    double last_snapshot_ms; /* how long the last one took */
    pd_store_report_t recovery;
    double recovery_ms;
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void store_log(void *ud, pd_store_level lv, const char *msg) {
    (void)ud;
    pd_log(lv == PD_STORE_ERROR  ? PD_LOG_ERROR
           : lv == PD_STORE_WARN ? PD_LOG_WARN
                                 : PD_LOG_INFO,
           "%s", msg);
}

/* ------------------------------------------------------------- failure */

/* The journal cannot take or keep a write: what the engine holds is ahead
 * of the disk. Acknowledge nothing more: drop every unsent reply, close
 * every connection and stop, without a snapshot. */
static void fail(pd_server_t *srv, const char *what, pd_err err) {
    pd_persist_t *p = srv->persist;
    if (p->failed) return;
    p->failed = true;
    srv->fatal = true;
    pd_log(PD_LOG_ERROR, "%s: %s (%s); stopping without acknowledging pending writes", what,
           pd_strerror(err), strerror(errno));
    for (pd_conn_t *c = srv->conns; c; c = c->next) {
        c->out.size = 0;
        pd_conn_close(c, PD_ERR_IO, "journal failed; server stopping");
    }
    pd_server_stop(srv);
}

/* ------------------------------------------------------------ disk room */

/* The journal's file blocks are allocated ahead of the records (see
 * pd_journal_reserve), a chunk at a time, and every write checks there is
 * room for its record before the engine sees it. So a full disk refuses
 * writes up front, with a clear error, while reads go on being served;
 * nothing the engine applied is left unjournaled. Once a second the server
 * tries again, and takes writes again as soon as a reservation succeeds. */
#define RESERVE_CHUNK ((uint64_t)8 << 20)
#define RECORD_SLACK 128 /* record header and [method, params] around the params */

static bool reserve(pd_server_t *srv, uint64_t bytes) {
    pd_journal_t *j = pd_store_journal(srv->persist->store);
    return pd_journal_reserve(j, bytes > RESERVE_CHUNK ? bytes : RESERVE_CHUNK) == PD_OK ||
           pd_journal_reserve(j, bytes) == PD_OK;
}

/* Room for `bytes` more of journal, reserving if needed; on failure the
 * server turns read-only (logged once). */
static bool ensure_room(pd_server_t *srv, uint64_t bytes) {
    pd_persist_t *p = srv->persist;
    if (p->read_only) return false;
    if (pd_journal_room(pd_store_journal(p->store)) >= bytes || reserve(srv, bytes)) return true;
    p->read_only = true;
    p->full_errno = errno;
    p->full_retry_ns = mono_ns() + 1000000000u;
    pd_log(PD_LOG_ERROR,
           "data directory %s: cannot reserve journal space (%s): refusing writes, still "
           "serving reads; trying again every second",
           pd_store_dir(p->store), strerror(p->full_errno));
    return false;
}

bool pd_persist_may_write(pd_server_t *srv, size_t bytes) {
    pd_persist_t *p = srv->persist;
    if (!p || !p->store || p->failed) return true; /* failed: fail() has stopped it */
    if (ensure_room(srv, (uint64_t)bytes + RECORD_SLACK)) return true;
    p->writes_refused++;
    return false;
}

const char *pd_persist_full_reason(const pd_server_t *srv) {
    const pd_persist_t *p = srv->persist;
    return p && p->read_only ? strerror(p->full_errno) : NULL;
}

/* Room a read-only server asks for before it takes writes again: enough
 * for ordinary writes (a bigger one reserves what it needs, or turns the
 * server read-only again), not a whole --max-frame (1 MiB), which kept a
 * volume with a few hundred KiB free refusing writes until a restart. */
#define RETRY_ROOM ((uint64_t)64 << 10)

/* From the tick timer: while read-only, try again once a second. */
static void retry_room(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (!p->read_only || p->failed || mono_ns() < p->full_retry_ns) return;
    if (!reserve(srv, RETRY_ROOM + RECORD_SLACK)) {
        p->full_errno = errno;
        p->full_retry_ns = mono_ns() + 1000000000u;
        return;
    }
    p->read_only = false;
    pd_log(PD_LOG_INFO, "data directory %s: journal space reserved again: accepting writes",
           pd_store_dir(p->store));
}

/* ------------------------------------------------------------- journal */

/* Append a record to the journal and, with --replicate, stage it for the
 * stream (published once a commit covers it). */
static pd_err jappend(pd_server_t *srv, uint16_t type, int64_t ts, const void *data, size_t len) {
    uint64_t seq = 0;
    pd_err err =
        pd_journal_append(pd_store_journal(srv->persist->store), type, ts, data, len, &seq);
    if (!err && srv->repl) pd_repl_stage(srv, seq, type, ts, data, len);
    return err;
}

void pd_persist_record(pd_server_t *srv, int mid, const msgpack_object *params) {
    pd_persist_t *p = srv->persist;
    if (p->failed) return;
    p->rec.size = 0;
    msgpack_pack_array(&p->pk, 2);
    msgpack_pack_str(&p->pk, pd_methods[mid].name_len);
    msgpack_pack_str_body(&p->pk, pd_methods[mid].name, pd_methods[mid].name_len);
    msgpack_pack_object(&p->pk, *params);
    pd_err err = jappend(srv, PD_JREC_COMMAND, srv->now_ms, p->rec.data, p->rec.size);
    if (err) {
        fail(srv, "journal append", err);
        return;
    }
    p->records++;
    if (p->rec.alloc > (1u << 20)) {
        msgpack_sbuffer_destroy(&p->rec);
        msgpack_sbuffer_init(&p->rec);
    }
}

static void append_rec(pd_server_t *srv, uint16_t type, const void *data, size_t len) {
    pd_persist_t *p = srv->persist;
    if (!p || p->failed) return;
    pd_err err = jappend(srv, type, srv->now_ms, data, len);
    if (err) {
        fail(srv, "journal append (import)", err);
        return;
    }
    p->records++;
}

void pd_persist_record_volunteer(pd_server_t *srv, const pd_volunteer_t *v) {
    uint8_t b[PD_JREC_VOLUNTEER_BYTES];
    pd_jrec_volunteer_encode(v, b);
    append_rec(srv, PD_JREC_VOLUNTEER, b, sizeof(b));
}

void pd_persist_record_order(pd_server_t *srv, const pd_order_spec_t *o) {
    uint8_t b[PD_JREC_ORDER_BYTES];
    pd_jrec_order_encode(o, b);
    append_rec(srv, PD_JREC_ORDER, b, sizeof(b));
}

/* Replay an imported record. */
static pd_err apply_import(pd_server_t *srv, const pd_jrec_t *rec) {
    if (rec->type == PD_JREC_VOLUNTEER) {
        pd_volunteer_t v;
        pd_err err = pd_jrec_volunteer_decode(rec->data, rec->len, &v);
        return err ? err : pd_engine_volunteer_upsert(srv->engine, &v, rec->ts_ms);
    }
    pd_order_spec_t o;
    pd_err err = pd_jrec_order_decode(rec->data, rec->len, &o);
    return err ? err : pd_engine_order_create(srv->engine, &o, rec->ts_ms);
}

bool pd_persist_failed(const pd_server_t *srv) {
    return srv->persist && srv->persist->failed;
}

bool pd_persist_snapshot_running(const pd_server_t *srv) {
    const pd_persist_t *p = srv->persist;
    return p && (p->child || pd_store_snapshot_busy(p->store));
}

uint64_t pd_persist_last_seq(const pd_server_t *srv) {
    pd_journal_t *j = srv->persist ? pd_store_journal(srv->persist->store) : NULL;
    return j ? pd_journal_next_seq(j) - 1 : 0;
}

bool pd_persist_pending(const pd_server_t *srv) {
    const pd_persist_t *p = srv->persist;
    return p && !p->failed && pd_journal_pending(pd_store_journal(p->store)) > 0;
}

bool pd_persist_commit(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (!p) return true;
    if (p->failed) return false;
    pd_err err = pd_journal_commit(pd_store_journal(p->store));
    if (err) {
        fail(srv, "journal commit", err);
        return false;
    }
    if (srv->repl) pd_repl_committed(srv);
    return true;
}

static void on_check(uv_check_t *h) {
    pd_server_t *srv = h->data;
    pd_persist_t *p = srv->persist;
    uv_check_stop(h);
    uv_idle_stop(&p->nowait);
    p->flush_deferred = false;
    if (!pd_persist_commit(srv)) return;
    pd_server_flush(srv);
    pd_persist_maybe_snapshot(srv);
}

static void on_nowait(uv_idle_t *h) {
    (void)h;
}

void pd_persist_defer_flush(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (p->flush_deferred || p->failed) return;
    if (!p->check_init || srv->stopping) {
        /* Not serving yet, or shutting down: commit and flush now. */
        if (pd_persist_commit(srv)) pd_server_flush(srv);
        return;
    }
    p->flush_deferred = true;
    uv_check_start(&p->check, on_check);
    /* A check handle runs after the poll, and an armed one does not keep
     * the poll from blocking: armed from a callback before the poll (an
     * idle handle resuming a connection, a timer), it would wait for the
     * next I/O or timer (up to --tick-ms) before the replies go out. */
    uv_idle_start(&p->nowait, on_nowait);
}

void pd_persist_tick(pd_server_t *srv, int64_t now, size_t *expired) {
    *expired = 0;
    if (srv->persist && srv->persist->store) {
        retry_room(srv);
        /* A tick record is a header: while read-only, offers wait. */
        if (!ensure_room(srv, RECORD_SLACK)) return;
    }
    int64_t due;
    if (pd_engine_next_deadline(srv->engine, &due) != PD_OK || due > now) return;
    pd_err err = pd_engine_tick(srv->engine, now, expired);
    if (err) pd_log(PD_LOG_ERROR, "engine tick: %s", pd_strerror(err));
    /* The heap's head can be the deadline of an offer answered since (a
     * stale entry, skipped when popped): then no offer expired and the tick
     * changed nothing -- nor does a tick that failed -- and a record of it
     * would cost a sync for nothing, or, for a failed one, replay as a tick
     * that did expire the offers. Every tick that changes the state
     * expires an offer first. */
    if (err || *expired == 0) return;
    pd_persist_t *p = srv->persist;
    if (!p || p->failed) return;
    err = jappend(srv, PD_JREC_TICK, now, NULL, 0);
    if (err) {
        fail(srv, "journal append (tick)", err);
        return;
    }
    p->tick_records++;
}

/* ------------------------------------------------------------ snapshots */

/* With --replicate, the segments holding records the stream has not
 * acknowledged stay when a snapshot prunes: the publisher may have to read
 * them back (its queue dropped, a restart). */
static void hold_for_stream(pd_server_t *srv) {
    if (srv->cfg.replicate) pd_store_hold(srv->persist->store, pd_repl_needed_from(srv));
}

/* Write a snapshot in this process (blocking the loop). */
static pd_err snapshot_now(pd_server_t *srv, uint64_t *seq_out, uint64_t *bytes_out) {
    pd_persist_t *p = srv->persist;
    pd_snapshot_writer_t *w = NULL;
    uint64_t seq = 0;
    uint64_t t0 = mono_ns();
    pd_err err = pd_store_snapshot_begin(p->store, srv->now_ms, &w, &seq);
    if (err) {
        p->snapshot_failures++;
        pd_log(PD_LOG_ERROR, "snapshot cannot start: %s (%s)", pd_strerror(err), strerror(errno));
        return err;
    }
    err = pd_engine_snapshot_write(srv->engine, w);
    uint64_t bytes = pd_snapshot_writer_bytes(w);
    if (!err) err = pd_snapshot_writer_commit(w);
    hold_for_stream(srv);
    pd_store_snapshot_end(p->store, err == PD_OK);
    double ms = (double)(mono_ns() - t0) / 1e6;
    if (err) {
        p->snapshot_failures++;
        pd_log(PD_LOG_ERROR, "snapshot at seq %" PRIu64 " failed: %s (%s)", seq, pd_strerror(err),
               strerror(errno));
        return err;
    }
    p->snapshots++;
    p->last_snapshot_seq = seq;
    p->last_snapshot_ms = ms;
    pd_log(PD_LOG_INFO, "snapshot at seq %" PRIu64 ": %" PRIu64 " bytes in %.1f ms", seq, bytes,
           ms);
    if (seq_out) *seq_out = seq;
    if (bytes_out) *bytes_out = bytes;
    return PD_OK;
}

static void on_child_timer(uv_timer_t *t) {
    pd_server_t *srv = t->data;
    pd_persist_t *p = srv->persist;
    if (!p->child) {
        uv_timer_stop(t);
        return;
    }
    int status = 0;
    pid_t r = waitpid(p->child, &status, WNOHANG);
    if (r == 0) return;
    uv_timer_stop(t);
    bool ok = r == p->child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    p->child = 0;
    hold_for_stream(srv);
    pd_store_snapshot_end(p->store, ok);
    double ms = (double)(mono_ns() - p->child_t0) / 1e6;
    if (!ok) {
        p->snapshot_failures++;
        pd_log(PD_LOG_ERROR, "background snapshot at seq %" PRIu64 " failed (status %d)",
               p->child_seq, status);
        return;
    }
    p->snapshots++;
    p->last_snapshot_seq = p->child_seq;
    p->last_snapshot_ms = ms;
    pd_log(PD_LOG_INFO, "background snapshot at seq %" PRIu64 " done in %.1f ms", p->child_seq, ms);
}

/* Start a snapshot in a forked child. */
static pd_err snapshot_fork(pd_server_t *srv, uint64_t *seq_out) {
    pd_persist_t *p = srv->persist;
    if (p->child || pd_store_snapshot_busy(p->store) || !p->timer_init) return PD_ERR_ILLEGAL;
    pd_snapshot_writer_t *w = NULL;
    uint64_t seq = 0;
    pd_err err = pd_store_snapshot_begin(p->store, srv->now_ms, &w, &seq);
    if (err) {
        p->snapshot_failures++;
        pd_log(PD_LOG_ERROR, "background snapshot cannot start: %s (%s)", pd_strerror(err),
               strerror(errno));
        return err;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    uint64_t t0 = mono_ns();
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        pd_store_snapshot_end(p->store, false);
        pd_log(PD_LOG_ERROR, "snapshot: fork failed: %s", strerror(saved));
        return PD_ERR_IO;
    }
    if (pid == 0) {
        /* The child: write, commit, leave. No libuv, no allocation, no
         * atexit handlers; it dies if the server dies. */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(3);
        pd_err e = pd_engine_snapshot_write(srv->engine, w);
        if (!e) e = pd_snapshot_writer_commit(w);
        _exit(e ? 1 : 0);
    }
    p->child = pid;
    p->child_seq = seq;
    p->child_t0 = t0;
    uv_timer_start(&p->child_timer, on_child_timer, 10, 10);
    pd_log(PD_LOG_INFO, "background snapshot at seq %" PRIu64 " started (pid %ld, fork %.1f ms)",
           seq, (long)pid, (double)(mono_ns() - t0) / 1e6);
    if (seq_out) *seq_out = seq;
    return PD_OK;
}

void pd_persist_maybe_snapshot(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (!p || p->failed || p->child || srv->stopping || !srv->cfg.snapshot_bytes) return;
    if (pd_store_journal_bytes(p->store) < srv->cfg.snapshot_bytes) return;
    pd_log(PD_LOG_INFO, "journal passed --snapshot-bytes (%" PRIu64 " bytes): snapshotting",
           pd_store_journal_bytes(p->store));
    (void)snapshot_fork(srv, NULL);
}

void pd_m_snapshot(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {"wait", NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    pd_server_t *srv = c->srv;
    pd_persist_t *p = srv->persist;
    bool wait = false;
    const msgpack_object *w = pd_arg_find(params, "wait");
    if (w) {
        if (w->type != MSGPACK_OBJECT_BOOLEAN) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "'wait' must be a boolean");
            return;
        }
        wait = w->via.boolean;
    }
    if (!p) {
        pd_reply_error(c, PD_ERR_ILLEGAL, "no --data-dir: this server keeps nothing on disk");
        return;
    }
    if (p->child || pd_store_snapshot_busy(p->store)) {
        pd_reply_error(c, PD_ERR_ILLEGAL, "a snapshot is already being written");
        return;
    }
    uint64_t seq = 0, bytes = 0;
    pd_err err = wait ? snapshot_now(srv, &seq, &bytes) : snapshot_fork(srv, &seq);
    if (err) {
        pd_reply_error(c, err == PD_ERR_ILLEGAL ? PD_ERR_ILLEGAL : PD_ERR_IO, "snapshot failed: %s",
                       pd_strerror(err));
        return;
    }
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, wait ? 4 : 2);
    pd_pack_kv_u64(pk, "seq", seq);
    pd_pack_kv_bool(pk, "background", !wait);
    if (wait) {
        pd_pack_kv_u64(pk, "bytes", bytes);
        pd_pack_kv_double(pk, "ms", p->last_snapshot_ms);
    }
}

void pd_m_digest(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    pd_server_t *srv = c->srv;
    pd_persist_t *p = srv->persist;
    pd_journal_t *j = p && p->store ? pd_store_journal(p->store) : NULL;
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 2);
    pd_pack_kv_u64(pk, "digest", pd_engine_digest(srv->engine));
    pd_pack_kv_u64(pk, "seq", j ? pd_journal_next_seq(j) - 1 : pd_repl_applied_seq(srv));
}

/* ------------------------------------------------------------- recovery */

/* Carry the state over to the configuration the server was started with:
 * dump it, restore it under `ini`. */
static pd_err reconfigure(pd_server_t *srv, const pd_engine_config_t *ini) {
    char path[PD_STORE_PATH_MAX];
    if (srv->persist) {
        snprintf(path, sizeof(path), "%s/reconfigure.pds", pd_store_dir(srv->persist->store));
    } else {
        /* a replica keeps nothing on disk: a private temporary file */
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/paidan-reconfigure-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        int fd = mkstemp(path);
        if (fd < 0) return PD_ERR_IO;
        close(fd);
        unlink(path);
    }
    pd_snapshot_writer_t *w = NULL;
    pd_err err = pd_snapshot_writer_create(path, 0, srv->now_ms, 0, &w);
    if (err) return err;
    err = pd_engine_snapshot_write(srv->engine, w);
    if (!err) err = pd_snapshot_writer_commit(w);
    pd_snapshot_writer_destroy(w);
    if (err) return err;
    pd_snapshot_file_t f;
    err = pd_snapshot_file_open(path, &f, NULL);
    if (!err) {
        pd_engine_t *e = NULL;
        err = pd_engine_snapshot_restore(f.data, (size_t)f.len, ini, &e);
        pd_snapshot_file_close(&f);
        if (!err) pd_server_set_engine(srv, e);
    }
    unlink(path);
    return err;
}

/* Append the engine's configuration as a record and sync it, whatever the
 * fsync policy: the records after it run under it, so a recovery that
 * starts from an older snapshot switches to it right there. */
static pd_err journal_config(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    pd_journal_t *j = pd_store_journal(p->store);
    uint8_t *b = NULL;
    size_t len = 0;
    pd_err err = pd_engine_config_encode(pd_engine_get_config(srv->engine), &b, &len);
    if (!err) {
        err = jappend(srv, PD_JREC_CONFIG, srv->now_ms, b, len);
        pd_free(b);
    }
    if (!err) err = pd_journal_sync(j);
    if (!err && srv->repl) pd_repl_committed(srv);
    if (err)
        pd_log(PD_LOG_ERROR, "journal: cannot record the engine configuration: %s",
               pd_strerror(err));
    return err;
}

typedef struct replay_s {
    pd_server_t *srv;
    pd_conn_t conn;   /* a connection without a socket */
    bool keep_events; /* a replica's: subscribers get the events */
} replay_t;

static pd_err rec_load(void *ud, const uint8_t *data, size_t len, uint64_t seq, int64_t ts) {
    replay_t *r = ud;
    pd_engine_t *e = NULL;
    pd_err err = pd_engine_snapshot_restore(data, len, NULL, &e);
    if (err) {
        pd_log(PD_LOG_WARN, "snapshot at seq %" PRIu64 " does not restore: %s", seq,
               pd_strerror(err));
        return err;
    }
    pd_server_set_engine(r->srv, e);
    if (ts > r->srv->now_ms) r->srv->now_ms = ts;
    return PD_OK;
}

static pd_err rec_apply(void *ud, const pd_jrec_t *rec) {
    replay_t *r = ud;
    pd_server_t *srv = r->srv;
    srv->now_ms = rec->ts_ms;
    if (rec->type == PD_JREC_TICK) {
        pd_err err = pd_engine_tick(srv->engine, rec->ts_ms, NULL);
        if (!r->keep_events) srv->n_events = 0;
        return err;
    }
    if (rec->type == PD_JREC_VOLUNTEER || rec->type == PD_JREC_ORDER) {
        pd_err err = apply_import(srv, rec);
        if (!r->keep_events) srv->n_events = 0;
        if (err)
            pd_log(PD_LOG_ERROR, "replaying imported record seq %" PRIu64 " failed: %s", rec->seq,
                   pd_strerror(err));
        return err == PD_ERR_NOMEM ? err : err ? PD_ERR_CORRUPT : PD_OK;
    }
    if (rec->type == PD_JREC_CONFIG) {
        pd_engine_config_t cfg;
        if (pd_engine_config_decode(rec->data, rec->len, &cfg) != PD_OK) {
            pd_log(PD_LOG_ERROR, "journal record seq %" PRIu64 " holds no engine configuration",
                   rec->seq);
            return PD_ERR_CORRUPT;
        }
        if (pd_engine_config_same(pd_engine_get_config(srv->engine), &cfg)) return PD_OK;
        pd_log(PD_LOG_INFO,
               "journal record seq %" PRIu64
               ": the records after it ran under another engine configuration; switching to it",
               rec->seq);
        pd_err err = reconfigure(srv, &cfg);
        if (err)
            pd_log(PD_LOG_ERROR, "replaying journal record seq %" PRIu64 " (configuration): %s",
                   rec->seq, pd_strerror(err));
        return err == PD_ERR_NOMEM ? err : err ? PD_ERR_CORRUPT : PD_OK;
    }
    if (rec->type != PD_JREC_COMMAND) {
        pd_log(PD_LOG_ERROR, "journal record seq %" PRIu64 " has unknown type %u", rec->seq,
               rec->type);
        return PD_ERR_CORRUPT;
    }
    msgpack_zone_clear(&srv->zone);
    msgpack_object o;
    size_t off = 0;
    msgpack_unpack_return rc =
        msgpack_unpack((const char *)rec->data, rec->len, &off, &srv->zone, &o);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != rec->len || o.type != MSGPACK_OBJECT_ARRAY ||
        o.via.array.size != 2 || o.via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
        o.via.array.ptr[1].type != MSGPACK_OBJECT_MAP) {
        pd_log(PD_LOG_ERROR, "journal record seq %" PRIu64 " is not [method, params]", rec->seq);
        return PD_ERR_CORRUPT;
    }
    const msgpack_object *name = &o.via.array.ptr[0];
    int mid = pd_method_lookup(name->via.str.ptr, name->via.str.size);
    if (mid < 0 || !(pd_methods[mid].flags & PD_M_WRITE)) {
        pd_log(PD_LOG_ERROR, "journal record seq %" PRIu64 " names method '%.*s', not a write",
               rec->seq, (int)(name->via.str.size > 64 ? 64 : name->via.str.size),
               name->via.str.ptr);
        return PD_ERR_CORRUPT;
    }
    pd_conn_t *c = &r->conn;
    c->out.size = 0;
    c->reply_mark = 0;
    c->replied = false;
    c->reply_err = PD_OK;
    pd_methods[mid].fn(c, &o.via.array.ptr[1]);
    if (!r->keep_events) srv->n_events = 0;
    if (!c->replied || c->reply_err != PD_OK) {
        pd_log(PD_LOG_ERROR,
               "replaying journal record seq %" PRIu64
               " (%s) failed with %s: the journal does "
               "not match this build",
               rec->seq, pd_methods[mid].name, pd_err_name(c->reply_err));
        return PD_ERR_CORRUPT;
    }
    return PD_OK;
}

struct pd_replay_s {
    replay_t r;
};

pd_replay_t *pd_replay_new(pd_server_t *srv) {
    pd_replay_t *rp = pd_calloc(1, sizeof(*rp));
    if (!rp) return NULL;
    rp->r.srv = srv;
    rp->r.conn.srv = srv;
    rp->r.conn.authed = true;
    rp->r.keep_events = true;
    msgpack_sbuffer_init(&rp->r.conn.out);
    msgpack_packer_init(&rp->r.conn.pk, &rp->r.conn.out, msgpack_sbuffer_write);
    return rp;
}

pd_err pd_replay_apply(pd_replay_t *rp, const pd_jrec_t *rec) {
    int64_t now = rp->r.srv->now_ms;
    pd_err err = rec_apply(&rp->r, rec);
    msgpack_zone_clear(&rp->r.srv->zone);
    if (rp->r.conn.out.alloc > (1u << 20)) {
        msgpack_sbuffer_destroy(&rp->r.conn.out);
        msgpack_sbuffer_init(&rp->r.conn.out);
    }
    if (now > rp->r.srv->now_ms) rp->r.srv->now_ms = now;
    return err;
}

void pd_replay_free(pd_replay_t *rp) {
    if (!rp) return;
    msgpack_sbuffer_destroy(&rp->r.conn.out);
    pd_free(rp);
}

pd_err pd_persist_load_snapshot(pd_server_t *srv, const char *path, uint64_t *seq) {
    pd_snapshot_file_t f;
    const char *why = NULL;
    pd_err err = pd_snapshot_file_open(path, &f, &why);
    if (err) {
        pd_log(PD_LOG_ERROR, "snapshot %s: %s", path, why ? why : pd_strerror(err));
        return err;
    }
    pd_engine_t *e = NULL;
    err = pd_engine_snapshot_restore(f.data, (size_t)f.len, NULL, &e);
    if (!err) {
        pd_server_set_engine(srv, e);
        *seq = f.seq;
        if (f.ts_ms > srv->now_ms) srv->now_ms = f.ts_ms;
        pd_log(PD_LOG_INFO, "snapshot %s: state at record %" PRIu64 ", %zu volunteers", path, f.seq,
               pd_engine_volunteer_count(srv->engine));
    } else {
        pd_log(PD_LOG_ERROR, "snapshot %s does not restore: %s", path, pd_strerror(err));
    }
    pd_snapshot_file_close(&f);
    pd_alloc_release_free();
    return err;
}

pd_err pd_persist_append_applied(pd_server_t *srv, const pd_jrec_t *rec) {
    pd_persist_t *p = srv->persist;
    uint64_t seq = 0;
    pd_err err = pd_journal_append(pd_store_journal(p->store), rec->type, rec->ts_ms, rec->data,
                                   rec->len, &seq);
    if (err) return err;
    if (seq != rec->seq) return PD_ERR_INTERNAL;
    p->records++;
    return PD_OK;
}

pd_err pd_persist_start(pd_server_t *srv) {
    const pd_server_config_t *cfg = &srv->cfg;
    pd_persist_t *p = pd_calloc(1, sizeof(*p));
    if (!p) return PD_ERR_NOMEM;
    srv->persist = p;
    msgpack_sbuffer_init(&p->rec);
    msgpack_packer_init(&p->pk, &p->rec, msgpack_sbuffer_write);

    pd_store_opts_t so;
    pd_store_opts_init(&so);
    so.fsync = cfg->fsync;
    so.truncate_corrupt = cfg->truncate_corrupt;
    so.lock_wait_ms = 1000;
    so.keep_segments = cfg->replicate != NULL;
    so.log = store_log;
    char msg[PD_STORE_MSG_MAX] = "";
    pd_err err = pd_store_open(cfg->data_dir, &so, &p->store, msg);
    if (err) {
        pd_log(PD_LOG_ERROR, "--data-dir: %s", msg);
        return err;
    }
    pd_log(PD_LOG_INFO, "data directory %s (fsync %s): recovering", cfg->data_dir,
           pd_fsync_policy_name(cfg->fsync));

    replay_t *r = pd_calloc(1, sizeof(*r));
    if (!r) return PD_ERR_NOMEM;
    r->srv = srv;
    r->conn.srv = srv;
    r->conn.authed = true;
    msgpack_sbuffer_init(&r->conn.out);
    msgpack_packer_init(&r->conn.pk, &r->conn.out, msgpack_sbuffer_write);
    uint64_t t0 = mono_ns();
    err = pd_store_recover(p->store, rec_load, rec_apply, r, &p->recovery, msg);
    msgpack_sbuffer_destroy(&r->conn.out);
    pd_free(r);
    msgpack_zone_clear(&srv->zone);
    p->recovery_ms = (double)(mono_ns() - t0) / 1e6;
    if (err) {
        pd_log(PD_LOG_ERROR, "recovery failed: %s", msg);
        return err;
    }
    /* The restore's temporary arrays (the decoded payload: ~64 bytes a
     * volunteer) are free now; hand them back at once. */
    pd_alloc_release_free();
    const pd_store_report_t *rep = &p->recovery;
    pd_log(PD_LOG_INFO,
           "recovered in %.1f ms: %s seq %" PRIu64 " + %" PRIu64 " journal records -> seq %" PRIu64
           "; %zu volunteers, %zu orders",
           p->recovery_ms, rep->from_snapshot ? "snapshot at" : "no snapshot,", rep->snapshot_seq,
           rep->records, rep->last_seq, pd_engine_volunteer_count(srv->engine),
           pd_engine_order_count(srv->engine, PD_ORDER__COUNT));
    return PD_OK;
}

pd_err pd_persist_settle(pd_server_t *srv, const pd_engine_config_t *ini) {
    pd_persist_t *p = srv->persist;
    const pd_store_report_t *rep = &p->recovery;
    pd_err err;
    bool other = !pd_engine_config_same(pd_engine_get_config(srv->engine), ini);
    if (other) {
        pd_log(PD_LOG_WARN,
               "the recovered state ran under another engine configuration: carrying it over "
               "to the one given now");
        err = reconfigure(srv, ini);
        if (err) {
            pd_log(PD_LOG_ERROR,
                   "cannot carry the state over to the new configuration: %s (does it drop "
                   "skills the state uses?)",
                   pd_strerror(err));
            return err;
        }
    }
    if (other || !rep->from_snapshot) {
        /* Every journal has a snapshot under it that names its
         * configuration, and the configuration is a record too: should
         * this snapshot be lost, a recovery from an older one (or from the
         * journal alone) replays what came before under the configuration
         * of then, and what comes after under this one. */
        err = snapshot_now(srv, NULL, NULL);
        if (!err) err = journal_config(srv);
        if (err) return err;
    }
    return PD_OK;
}

void pd_persist_attach(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (!p || p->check_init) return;
    uv_check_init(srv->loop, &p->check);
    uv_idle_init(srv->loop, &p->nowait);
    p->check.data = srv;
    p->check_init = true;
    uv_timer_init(srv->loop, &p->child_timer);
    p->child_timer.data = srv;
    p->timer_init = true;
}

pd_err pd_persist_snapshot_now(pd_server_t *srv) {
    if (!srv->persist) return PD_OK;
    return snapshot_now(srv, NULL, NULL);
}

void pd_persist_stop(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (!p) return;
    if (p->child) {
        kill(p->child, SIGKILL);
        int status;
        waitpid(p->child, &status, 0);
        p->child = 0;
        pd_store_snapshot_end(p->store, false);
        pd_log(PD_LOG_INFO, "background snapshot stopped for shutdown");
    }
    if (p->check_init) {
        uv_check_stop(&p->check);
        uv_idle_stop(&p->nowait);
    }
    p->flush_deferred = false;
    if (p->failed || !p->store || !pd_store_journal(p->store)) return;
    if (!pd_persist_commit(srv)) return;
    if (snapshot_now(srv, NULL, NULL) != PD_OK)
        pd_log(PD_LOG_ERROR,
               "stopping without a snapshot: the journal holds every acknowledged write, and "
               "the next start replays it");
}

static void on_handle_closed(uv_handle_t *h) {
    (void)h;
}

void pd_persist_close_handles(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (!p) return;
    if (p->check_init) {
        uv_close((uv_handle_t *)&p->check, on_handle_closed);
        uv_close((uv_handle_t *)&p->nowait, on_handle_closed);
    }
    if (p->timer_init) uv_close((uv_handle_t *)&p->child_timer, on_handle_closed);
    p->check_init = p->timer_init = false;
}

void pd_persist_deinit(pd_server_t *srv) {
    pd_persist_t *p = srv->persist;
    if (!p) return;
    if (p->child) {
        kill(p->child, SIGKILL);
        int status;
        waitpid(p->child, &status, 0);
    }
    pd_err err = pd_store_close(p->store);
    if (err) pd_log(PD_LOG_ERROR, "closing the journal: %s", pd_strerror(err));
    msgpack_sbuffer_destroy(&p->rec);
    pd_free(p);
    srv->persist = NULL;
}

bool pd_persist_figures(pd_server_t *srv, pd_persist_figures_t *out) {
    pd_persist_t *p = srv->persist;
    if (!p || !p->store) return false;
    pd_journal_stats_t js;
    pd_store_get_stats(p->store, &js);
    pd_journal_t *j = pd_store_journal(p->store);
    memset(out, 0, sizeof *out);
    out->journal_bytes = pd_store_journal_bytes(p->store);
    out->next_seq = j ? pd_journal_next_seq(j) : 0;
    out->records = p->records;
    out->tick_records = p->tick_records;
    out->commits = js.commits;
    out->syncs = js.syncs;
    out->sync_avg_us = js.syncs ? (double)js.sync_ns / 1e3 / (double)js.syncs : 0.0;
    out->sync_max_us = (double)js.max_sync_ns / 1e3;
    out->snapshot_seq = pd_store_snapshot_seq(p->store);
    out->snapshot_running = p->child != 0 || pd_store_snapshot_busy(p->store);
    out->snapshots = p->snapshots;
    out->snapshot_failures = p->snapshot_failures;
    out->last_snapshot_ms = p->last_snapshot_ms;
    out->recovery_ms = p->recovery_ms;
    out->read_only = p->read_only;
    out->writes_refused = p->writes_refused;
    uint64_t room = j ? pd_journal_room(j) : 0;
    out->reserved_room = room == UINT64_MAX ? 0 : room;
    return true;
}

void pd_persist_pack_stats(pd_server_t *srv, msgpack_packer *pk) {
    pd_persist_figures_t f;
    if (!pd_persist_figures(srv, &f)) {
        msgpack_pack_map(pk, 1);
        pd_pack_kv_bool(pk, "enabled", false);
        return;
    }
    pd_persist_t *p = srv->persist;
    msgpack_pack_map(pk, 20);
    pd_pack_kv_bool(pk, "enabled", true);
    pd_pack_kv_str(pk, "data_dir", pd_store_dir(p->store));
    pd_pack_kv_str(pk, "fsync", pd_fsync_policy_name(pd_store_fsync(p->store)));
    pd_pack_kv_u64(pk, "journal_bytes", f.journal_bytes);
    pd_pack_kv_u64(pk, "next_seq", f.next_seq);
    pd_pack_kv_u64(pk, "records", f.records);
    pd_pack_kv_u64(pk, "tick_records", f.tick_records);
    pd_pack_kv_u64(pk, "commits", f.commits);
    pd_pack_kv_u64(pk, "syncs", f.syncs);
    pd_pack_kv_double(pk, "sync_avg_us", f.sync_avg_us);
    pd_pack_kv_double(pk, "sync_max_us", f.sync_max_us);
    pd_pack_kv_u64(pk, "snapshot_seq", f.snapshot_seq);
    pd_pack_kv_bool(pk, "snapshot_running", f.snapshot_running);
    pd_pack_kv_u64(pk, "snapshots", f.snapshots);
    pd_pack_kv_u64(pk, "snapshot_failures", f.snapshot_failures);
    pd_pack_kv_double(pk, "last_snapshot_ms", f.last_snapshot_ms);
    pd_pack_kv_double(pk, "recovery_ms", f.recovery_ms);
    pd_pack_kv_bool(pk, "read_only", f.read_only);
    pd_pack_kv_u64(pk, "writes_refused", f.writes_refused);
    pd_pack_kv_u64(pk, "reserved_room", f.reserved_room);
}
