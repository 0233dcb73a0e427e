/* import.c -- the `import` method: a CSV file of volunteers or orders read
 * into the engine a slice at a time, between other clients' requests.
 *
 * A million volunteers take a few seconds to read. Read in one go, that is
 * a few seconds in which no other client is answered; so the import runs
 * from an idle handle, about IMPORT_SLICE_NS of records per loop iteration,
 * and the loop serves every other connection in between. The connection
 * that asked waits for its reply (pd_reply_defer): its own later requests
 * run after the import, so its replies stay in order. One import at a
 * time.
 *
 * Each record is applied and journaled on its own, as a write from another
 * client would be, so a crash in the middle keeps what was imported so far
 * and nothing else. The reply, sent when the file is done, waits for the
 * journal like any write's. A server that stops in the middle drops the
 * rest of the file; a client that goes away does not stop the import.
 */
#include "import.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "args.h"
#include "conn.h"
#include "log.h"
#include "methods.h"
#include "paidan/alloc.h"
#include "persist.h"
#ifdef PD_HAVE_DATA
#include "paidan/data.h"
#endif

/* Work per loop iteration before the loop serves others again. */
#define IMPORT_SLICE_NS 4000000u
/* Records between clock reads within a slice. */
#define IMPORT_CLOCK_EVERY 64u
/* Bytes of blank lines, or of an over-long line being skipped, one read
 * passes over before it returns (pd_csv_reader_set_step): a file of
 * nothing but newlines, or one gigabyte-long line, is read a slice at a
 * time like any other. */
#define IMPORT_STEP_BYTES (256u * 1024u)
/* Bytes a journal record of an import takes at most (checked per record). */
#define IMPORT_REC_BYTES 64u
/* Skipped lines whose reasons the reply (and the log) give. */
#define IMPORT_ERRORS 10
/* Bytes of the file's start whose lines tell how long a line is, about:
 * how many volunteers the file holds, for the reservation. */
#define RESERVE_SAMPLE (64u * 1024u)
/* Bytes of the shortest volunteer line. */
#define MIN_LINE 24u

void pd_import_reserve_for(pd_server_t *srv, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return;
    /* Judged by the lines of the first 64 KiB, not a fixed line length: a
     * file of long lines or none (a wrong file, gigabytes of zeros) must
     * not make the server take room for millions of volunteers. */
    FILE *fp = fopen(path, "rb");
    char *buf = fp ? pd_malloc(RESERVE_SAMPLE) : NULL;
    size_t got = buf ? fread(buf, 1, RESERVE_SAMPLE, fp) : 0, lines = 0;
    if (fp) fclose(fp);
    /* Lines that could be a volunteer: "0,0,0,,0,car,none,1,busy" is the
     * shortest, so blank lines (a file of nothing else) do not count. */
    for (size_t i = 0, start = 0; i < got; i++) {
        if (buf[i] != '\n') continue;
        lines += i - start >= MIN_LINE;
        start = i + 1;
    }
    pd_free(buf);
    if (lines < 2) return;
    size_t more = (size_t)((double)st.st_size / ((double)got / (double)lines));
    if (more < 4096) return;
    pd_err err = pd_engine_reserve(srv->engine, more);
    if (err)
        pd_log(PD_LOG_WARN, "import %s: cannot reserve room for ~%zu volunteers ahead (%s)", path,
               more, pd_strerror(err));
}

#ifdef PD_HAVE_DATA

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct pd_import_s {
    pd_server_t *srv;
    pd_csv_reader_t *r;
    pd_csv_kind kind;
    char path[PD_STORE_PATH_MAX];
    pd_conn_t *conn; /* waits for the reply; NULL once it closed */
    size_t taken, replaced, skipped;
    size_t n_errors;                 /* in errors[] */
    char errors[IMPORT_ERRORS][320]; /* the first skipped lines, why */
    uint64_t t0;
    uint64_t slices;
    pd_err err;
    char why[400];
    uv_idle_t idle;
    const char *names[PD_MAX_SKILLS]; /* the reader keeps them (the engine's) */
};

static void on_idle_closed(uv_handle_t *h) {
    pd_free(h->data);
}

/* The file is done (or the import stopped): reply, log, let go. */
static void import_finish(pd_import_t *im) {
    pd_server_t *srv = im->srv;
    pd_csv_reader_close(im->r);
    im->r = NULL;
    pd_alloc_release_free(); /* what cells grew out of during the load */
    const char *what = im->kind == PD_CSV_VOLUNTEERS ? "volunteers" : "orders";
    char replaced[80] = "";
    if (im->kind == PD_CSV_VOLUNTEERS)
        snprintf(replaced, sizeof(replaced), ", %zu replaced a volunteer with the same id",
                 im->replaced);
    pd_log(PD_LOG_INFO, "import %s: %zu %s in %.1f s (%" PRIu64 " slices)%s, %zu lines skipped%s",
           im->path, im->taken, what, (double)(mono_ns() - im->t0) / 1e9, im->slices, replaced,
           im->skipped, im->err ? ", stopped early" : "");
    pd_conn_t *c = im->conn;
    if (c) {
        pd_reply_deferred_begin(c);
        if (pd_persist_failed(srv)) {
            pd_reply_error(c, PD_ERR_IO, "the journal failed; the server is stopping");
        } else if (im->err && im->taken == 0) {
            pd_reply_error(c, im->err, "import: %s", im->why[0] ? im->why : pd_strerror(im->err));
        } else {
            msgpack_packer *pk = pd_reply_ok(c);
            msgpack_pack_map(pk, im->err ? 7 : 6);
            pd_pack_kv_u64(pk, "imported", im->taken);
            pd_pack_kv_u64(pk, "replaced", im->replaced);
            pd_pack_kv_u64(pk, "skipped", im->skipped);
            pd_pack_cstr(pk, "errors");
            msgpack_pack_array(pk, im->n_errors);
            for (size_t i = 0; i < im->n_errors; i++) pd_pack_cstr(pk, im->errors[i]);
            pd_pack_kv_u64(pk, "seq", pd_persist_last_seq(srv));
            pd_pack_kv_bool(pk, "complete", im->err == PD_OK);
            /* why it stopped short of the end (the rest of the file is not read) */
            if (im->err) pd_pack_kv_str(pk, "stopped", im->why[0] ? im->why : pd_strerror(im->err));
        }
        pd_reply_deferred_done(c);
    }
    srv->import = NULL;
    uv_idle_stop(&im->idle);
    uv_close((uv_handle_t *)&im->idle, on_idle_closed);
}

/* A line skipped: counted, and the first IMPORT_ERRORS logged and kept
 * for the reply. */
__attribute__((format(printf, 2, 3))) static void import_skip(pd_import_t *im, const char *fmt,
                                                              ...) {
    if (im->skipped++ >= IMPORT_ERRORS) return;
    char *msg = im->errors[im->n_errors++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(im->errors[0]), fmt, ap);
    va_end(ap);
    pd_log(PD_LOG_WARN, "import: %s", msg);
}

/* Why the engine refused a record the CSV reader took, into buf. */
static const char *refusal(pd_err err, const pd_gen_order_t *go, char *buf, size_t cap) {
    if (go && go->need > PD_ORDER_MAX_SLOTS)
        snprintf(buf, cap, "need %" PRIu32 " is above %d, the most an order takes", go->need,
                 PD_ORDER_MAX_SLOTS);
    else if (go && (go->start_ms > PD_TIME_MAX_MS || go->start_ms < -PD_TIME_MAX_MS))
        snprintf(buf, cap, "start %" PRId64 " is beyond the engine's 2^52 ms either side of 1970",
                 go->start_ms);
    else
        snprintf(buf, cap, "%s", pd_strerror(err));
    return buf;
}

/* One record from the file into the engine and the journal. Returns false
 * when the import must stop (im->err says why; PD_OK at the end). */
static bool import_one(pd_import_t *im) {
    pd_server_t *srv = im->srv;
    const char *what = im->kind == PD_CSV_VOLUNTEERS ? "volunteers" : "orders";
    bool got = false;
    pd_volunteer_t v;
    pd_gen_order_t go;
    pd_err err = im->kind == PD_CSV_VOLUNTEERS ? pd_csv_read_volunteer(im->r, &v, &got)
                                               : pd_csv_read_order(im->r, &go, &got);
    if (err == PD_ERR_IO) {
        im->err = err;
        snprintf(im->why, sizeof(im->why), "%s", pd_csv_reader_get_error(im->r)->message);
        return false;
    }
    if (err) {
        import_skip(im, "%s", pd_csv_reader_get_error(im->r)->message);
        return true;
    }
    /* Not the end when the read only stopped for the slice's sake. */
    if (!got) return pd_csv_reader_paused(im->r);
    if (!pd_persist_may_write(srv, IMPORT_REC_BYTES)) {
        im->err = PD_ERR_IO;
        snprintf(im->why, sizeof(im->why), "data directory full (%s) after %zu %s",
                 pd_persist_full_reason(srv), im->taken, what);
        return false;
    }
    bool replaced = false;
    if (im->kind == PD_CSV_VOLUNTEERS) {
        size_t before = pd_engine_volunteer_count(srv->engine);
        err = pd_engine_volunteer_upsert(srv->engine, &v, srv->now_ms);
        if (!err) pd_persist_record_volunteer(srv, &v);
        replaced = !err && pd_engine_volunteer_count(srv->engine) == before;
    } else {
        pd_order_spec_t spec;
        pd_gen_order_spec(&go, &spec);
        err = pd_engine_order_create(srv->engine, &spec, srv->now_ms);
        if (!err) pd_persist_record_order(srv, &spec);
    }
    if (err == PD_ERR_NOMEM) {
        im->err = err;
        snprintf(im->why, sizeof(im->why), "out of memory after %zu %s", im->taken, what);
        return false;
    }
    if (err == PD_ERR_LIMIT && im->kind == PD_CSV_VOLUNTEERS) {
        /* a new volunteer past the cap is skipped; the lines after it may
         * still update volunteers already kept (a whole roster sent again) */
        import_skip(im, "%s:%zu: volunteer %" PRIu64 ": new, and %llu are kept (--max-volunteers)",
                    im->path, pd_csv_reader_get_line(im->r), v.id,
                    (unsigned long long)srv->cfg.max_volunteers);
        return true;
    }
    if (err == PD_ERR_LIMIT) {
        /* every order is new: the rest of the file would be refused too */
        im->err = err;
        snprintf(im->why, sizeof(im->why),
                 "--max-orders reached after %zu orders: the server keeps at most %llu (purge "
                 "closed orders to make room)",
                 im->taken, (unsigned long long)srv->cfg.max_orders);
        return false;
    }
    if (err) {
        bool vol = im->kind == PD_CSV_VOLUNTEERS;
        char why[96];
        import_skip(im, "%s:%zu: %s %" PRIu64 ": %s", im->path, pd_csv_reader_get_line(im->r),
                    vol ? "volunteer" : "order", vol ? v.id : go.id,
                    refusal(err, vol ? NULL : &go, why, sizeof(why)));
        return true;
    }
    im->replaced += replaced;
    if (++im->taken % 250000 == 0)
        pd_log(PD_LOG_INFO, "import %s: %zu %s so far (line %zu, %.1f s)", im->path, im->taken,
               what, pd_csv_reader_get_line(im->r), (double)(mono_ns() - im->t0) / 1e9);
    return true;
}

/* One slice: records until the slice's time is up or the file ends. */
static void on_import_idle(uv_idle_t *h) {
    pd_import_t *im = h->data;
    pd_server_t *srv = im->srv;
    pd_server_stamp(srv);
    im->slices++;
    uint64_t t0 = mono_ns();
    for (unsigned n = 1;; n++) {
        bool more = import_one(im);
        /* A journal failure stops the server, and the import with it. */
        if (srv->import != im) break;
        if (!more) {
            import_finish(im);
            break;
        }
        /* A read that stopped early passed over a step's worth of bytes. */
        bool check = n % IMPORT_CLOCK_EVERY == 0 || pd_csv_reader_paused(im->r);
        if (check && mono_ns() - t0 >= IMPORT_SLICE_NS) break;
    }
    if (srv->n_events) pd_server_publish(srv);
    pd_server_flush(srv);
}

void pd_m_import(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {"path", "kind", NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    pd_server_t *srv = c->srv;
    if (srv->cfg.follow) {
        /* not a PD_M_WRITE (it journals its own records), but a write */
        pd_reply_error(c, PD_ERR_READ_ONLY,
                       "read-only replica of stream %s on %s: import on the primary",
                       srv->cfg.stream ? srv->cfg.stream : "paidan", srv->cfg.follow);
        return;
    }
    const msgpack_object *po = pd_arg_find(params, "path");
    const msgpack_object *ko = pd_arg_find(params, "kind");
    if (!po || po->type != MSGPACK_OBJECT_STR || po->via.str.size == 0 ||
        po->via.str.size >= PD_STORE_PATH_MAX) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'path' must be a non-empty string");
        return;
    }
    /* A NUL would cut the path short: another file than the one named. */
    if (memchr(po->via.str.ptr, '\0', po->via.str.size)) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'path' holds a NUL byte");
        return;
    }
    pd_csv_kind kind = PD_CSV_VOLUNTEERS;
    if (ko) {
        bool vols = ko->type == MSGPACK_OBJECT_STR && ko->via.str.size == 10 &&
                    memcmp(ko->via.str.ptr, "volunteers", 10) == 0;
        bool ords = ko->type == MSGPACK_OBJECT_STR && ko->via.str.size == 6 &&
                    memcmp(ko->via.str.ptr, "orders", 6) == 0;
        if (!vols && !ords) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "'kind' must be \"volunteers\" or \"orders\"");
            return;
        }
        kind = vols ? PD_CSV_VOLUNTEERS : PD_CSV_ORDERS;
    }
    if (srv->import) {
        pd_reply_error(c, PD_ERR_ILLEGAL, "an import of %s is running; one at a time",
                       srv->import->path);
        return;
    }
    if (pd_persist_snapshot_running(srv)) {
        pd_reply_error(c, PD_ERR_ILLEGAL, "a snapshot is being written; import after it");
        return;
    }
    pd_import_t *im = pd_calloc(1, sizeof(*im));
    if (!im) {
        pd_reply_error(c, PD_ERR_NOMEM, "out of memory");
        return;
    }
    memcpy(im->path, po->via.str.ptr, po->via.str.size);
    im->path[po->via.str.size] = '\0';
    /* A device or a pipe could be read for ever (/dev/zero). */
    struct stat st;
    if (stat(im->path, &st) == 0 && !S_ISREG(st.st_mode)) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "import: %s is not a regular file", im->path);
        pd_free(im);
        return;
    }
    const pd_engine_config_t *ec = pd_engine_get_config(srv->engine);
    for (uint32_t i = 0; i < ec->n_skills; i++) im->names[i] = ec->skills[i];
    pd_csv_error_t cerr;
    pd_err err = pd_csv_reader_open(im->path, kind, im->names, ec->n_skills, &im->r, &cerr);
    if (err) {
        pd_reply_error(c, err, "import: %s", cerr.message);
        pd_free(im);
        return;
    }
    pd_csv_reader_set_step(im->r, IMPORT_STEP_BYTES);
    if (kind == PD_CSV_VOLUNTEERS) pd_import_reserve_for(srv, im->path);
    im->srv = srv;
    im->kind = kind;
    im->conn = c;
    im->t0 = mono_ns();
    uv_idle_init(srv->loop, &im->idle);
    im->idle.data = im;
    uv_idle_start(&im->idle, on_import_idle);
    srv->import = im;
    pd_log(PD_LOG_INFO, "import %s: started", im->path);
    pd_reply_defer(c);
}

void pd_import_conn_gone(pd_server_t *srv, pd_conn_t *c) {
    if (srv->import && srv->import->conn == c) srv->import->conn = NULL;
}

void pd_import_stop(pd_server_t *srv) {
    pd_import_t *im = srv->import;
    if (!im) return;
    im->err = PD_ERR_ILLEGAL;
    snprintf(im->why, sizeof(im->why), "the server is stopping");
    import_finish(im);
}

void pd_import_pack_stats(pd_server_t *srv, msgpack_packer *pk) {
    const pd_import_t *im = srv->import;
    msgpack_pack_map(pk, im ? 6 : 1);
    pd_pack_kv_bool(pk, "running", im != NULL);
    if (!im) return;
    pd_pack_kv_str(pk, "path", im->path);
    pd_pack_kv_u64(pk, "imported", im->taken);
    pd_pack_kv_u64(pk, "replaced", im->replaced);
    pd_pack_kv_u64(pk, "skipped", im->skipped);
    pd_pack_kv_double(pk, "seconds", (double)(mono_ns() - im->t0) / 1e9);
}

#else /* no data layer */

void pd_m_import(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {"path", "kind", NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    pd_reply_error(c, PD_ERR_ILLEGAL, "this build has no CSV reader (data layer)");
}

void pd_import_conn_gone(pd_server_t *srv, pd_conn_t *c) {
    (void)srv;
    (void)c;
}

void pd_import_stop(pd_server_t *srv) {
    (void)srv;
}

void pd_import_pack_stats(pd_server_t *srv, msgpack_packer *pk) {
    (void)srv;
    msgpack_pack_map(pk, 1);
    pd_pack_kv_bool(pk, "running", false);
}

#endif
