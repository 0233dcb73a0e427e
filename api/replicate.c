/* replicate.c -- the journal as a NATS JetStream stream (replicate.h).
 *
 * Primary. The loop stages each record as persist.c appends it and hands
 * the staged ones to the publisher thread when the journal commit that
 * covers them succeeds, so nothing reaches the stream that the primary
 * could still lose. The thread publishes them in chunks: asynchronous
 * publishes, then a wait for every acknowledgement; a chunk with an
 * error or a timeout is sent again after a pause (the message ids make a
 * second copy harmless), so the stream gets every record, once, in
 * order, however NATS comes and goes. What the thread has not published
 * is bounded (QUEUE_MAX): past it the queue is dropped and the thread
 * reads those records back from the journal segments instead, as it does
 * at start when the stream is behind the journal.
 *
 * Replica. An ordered push consumer delivers the stream on the NATS
 * library's thread; each message is copied into a queue (bounded: the
 * delivery thread waits while it is full, which NATS's flow control
 * turns into backpressure) and the loop is woken. The loop applies the
 * queue through the recovery handlers, checking that sequence numbers
 * follow each other: a duplicate is skipped, a gap or a record that does
 * not apply stops the replica applying (it keeps answering, from the
 * state it has, and says why in `stats` and the log).
 */
#include "replicate.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "paidan/alloc.h"
#include "persist.h"

bool pd_repl_stream_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

#ifndef PD_HAVE_NATS

bool pd_repl_available(void) {
    return false;
}

pd_err pd_repl_primary_start(pd_server_t *srv) {
    (void)srv;
    pd_log(PD_LOG_ERROR, "--replicate: this build has no NATS client (libnats)");
    return PD_ERR_BAD_ARG;
}

void pd_repl_stage(pd_server_t *srv, uint64_t seq, uint16_t type, int64_t ts_ms, const void *data,
                   size_t len) {
    (void)srv, (void)seq, (void)type, (void)ts_ms, (void)data, (void)len;
}

void pd_repl_committed(pd_server_t *srv) {
    (void)srv;
}

uint64_t pd_repl_needed_from(const pd_server_t *srv) {
    (void)srv;
    return 0;
}

pd_err pd_repl_follow_start(pd_server_t *srv) {
    (void)srv;
    pd_log(PD_LOG_ERROR, "--follow: this build has no NATS client (libnats)");
    return PD_ERR_BAD_ARG;
}

bool pd_repl_is_replica(const pd_server_t *srv) {
    return srv->cfg.follow != NULL;
}

uint64_t pd_repl_applied_seq(const pd_server_t *srv) {
    (void)srv;
    return 0;
}

void pd_repl_stop(pd_server_t *srv) {
    (void)srv;
}

void pd_repl_pack_stats(pd_server_t *srv, msgpack_packer *pk) {
    (void)srv;
    msgpack_pack_map(pk, 1);
    pd_pack_kv_str(pk, "role", "none");
}

void pd_repl_figures(pd_server_t *srv, pd_repl_figures_t *out) {
    (void)srv;
    memset(out, 0, sizeof(*out));
}

#else /* PD_HAVE_NATS */

#include <nats/nats.h>

bool pd_repl_available(void) {
    return true;
}

/* Published records a chunk: publishes in flight before the wait. */
#define CHUNK_RECORDS 4096
/* Bytes of records queued for the publisher, or received and not yet
 * applied, before the queue is dropped (primary) or delivery waits
 * (replica). */
#define QUEUE_MAX (256u << 20)
#define FOLLOW_QUEUE_MAX (16u << 20)
/* How long a replica applies records before serving requests again. */
#define APPLY_SLICE_NS 5000000u
/* How long a chunk may wait for its acknowledgements. */
#define ACK_WAIT_MS 5000
/* Pause after a failed chunk. */
#define RETRY_MS 1000

enum { ROLE_NONE = 0, ROLE_PRIMARY = 1, ROLE_REPLICA = 2 };

/* A growable byte buffer of framed records: [u32 len][seq][ts][type][payload],
 * len counting from seq on (what a message carries). */
typedef struct rbuf_s {
    uint8_t *p;
    size_t len, cap;
} rbuf_t;

/* Primary: one commit's staged records, queued for the publisher. The
 * loop copies them into a block of their own size, so a queue that grows
 * while the stream lags costs the loop one small copy per commit, never a
 * move of the whole queue (growing one buffer by realloc did that, on the
 * loop, with the lock held: on a 2-core VM a stall of 0.1 s when 16 MB
 * were queued, 0.6-0.8 s at 128 MB). */
typedef struct rblock_s {
    struct rblock_s *next;
    uint64_t last; /* seq of its last record */
    size_t len;    /* bytes of framed records in data */
    uint8_t data[];
} rblock_t;

typedef struct pd_repl_s pd_repl_t;

struct pd_repl_s {
    pd_server_t *srv;
    int role;
    char subject[96];
    char stream[65];
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;

    /* loop thread only */
    rbuf_t stage;
    uint64_t stage_last; /* highest seq staged */
    uint64_t committed;  /* highest seq handed to the thread */
    bool oom;            /* staging failed: resync from the files */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    rbuf_t q;        /* replica: records received, to apply */
    rblock_t *qhead; /* primary: records to publish, oldest block first */
    rblock_t *qtail;
    size_t qbytes;    /* primary: bytes in those blocks */
    uint64_t file_to; /* primary: publish from the segments up to this seq first */
    bool stop;        /* the thread is asked to finish */
    bool thread_on;
    pthread_t thread;
    char error[256];   /* the last problem, for stats ("" when none) */
    uint64_t error_at; /* when (ms since epoch) */

    /* the thread's figures (primary), read by stats */
    _Atomic uint64_t acked;     /* highest seq the stream acknowledged */
    _Atomic uint64_t published; /* records acknowledged */
    _Atomic uint64_t retries;   /* chunks sent again */
    _Atomic uint64_t dropped;   /* queue overflows (records then read back from files) */
    _Atomic bool failed;        /* gave up: the journal no longer has what the stream needs */
    _Atomic int chunk_errors;   /* set by the ack handler */
    _Atomic bool connected;
    bool closed; /* the library has run its closed callback (under mu) */

    /* replica, loop thread */
    uv_async_t async;
    bool async_on;
    pd_replay_t *replay;
    uint64_t applied;      /* seq of the last record applied */
    uint64_t n_applied;    /* records applied */
    uint64_t n_duplicates; /* records skipped: already applied */
    bool halted;           /* a gap or a record that did not apply */
    uint64_t start_seq;    /* the stream sequence delivery started at */
    uint64_t t_last_ms;    /* timestamp of the last record applied */
    rbuf_t work;           /* records taken from q, being applied */
    size_t work_off;       /* the next one */
};

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static bool rbuf_reserve(rbuf_t *b, size_t more) {
    if (b->len + more <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) cap *= 2;
    uint8_t *p = pd_realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static void rbuf_free(rbuf_t *b) {
    pd_free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Append one framed record. */
static bool rbuf_put(rbuf_t *b, uint64_t seq, uint16_t type, int64_t ts, const void *data,
                     size_t len) {
    size_t n = PD_REPL_HEADER + len;
    if (n > UINT32_MAX || !rbuf_reserve(b, 4 + n)) return false;
    uint8_t *p = b->p + b->len;
    p[0] = (uint8_t)n, p[1] = (uint8_t)(n >> 8), p[2] = (uint8_t)(n >> 16),
    p[3] = (uint8_t)(n >> 24);
    put64(p + 4, seq);
    put64(p + 12, (uint64_t)ts);
    p[20] = (uint8_t)type, p[21] = (uint8_t)(type >> 8);
    if (len) memcpy(p + 4 + PD_REPL_HEADER, data, len);
    b->len += 4 + n;
    return true;
}

/* Append a stream message as it came: its bytes are already a record's
 * header and payload. */
static bool rbuf_put_msg(rbuf_t *b, const uint8_t *d, size_t n) {
    if (n > UINT32_MAX || !rbuf_reserve(b, 4 + n)) return false;
    uint8_t *p = b->p + b->len;
    p[0] = (uint8_t)n, p[1] = (uint8_t)(n >> 8), p[2] = (uint8_t)(n >> 16),
    p[3] = (uint8_t)(n >> 24);
    memcpy(p + 4, d, n);
    b->len += 4 + n;
    return true;
}

/* The record a message (or a framed record's bytes) holds; len is at
 * least PD_REPL_HEADER. rec->data points into m. */
static void rec_of(const uint8_t *m, size_t len, pd_jrec_t *rec) {
    rec->seq = get64(m);
    rec->ts_ms = (int64_t)get64(m + 8);
    rec->type = (uint16_t)(m[16] | m[17] << 8);
    rec->len = (uint32_t)(len - PD_REPL_HEADER);
    rec->data = m + PD_REPL_HEADER;
}

/* Walk the framed records of b: *off is advanced; false at the end. */
static bool rbuf_next(const rbuf_t *b, size_t *off, const uint8_t **msg, size_t *len) {
    if (*off + 4 > b->len) return false;
    const uint8_t *p = b->p + *off;
    size_t n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
    *msg = p + 4;
    *len = n;
    *off += 4 + n;
    return true;
}

static void set_error(pd_repl_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(pd_repl_t *r, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    bool same = strcmp(r->error, msg) == 0;
    snprintf(r->error, sizeof r->error, "%s", msg);
    r->error_at = wall_ms();
    pthread_mutex_unlock(&r->mu);
    /* a problem that repeats (NATS down, a retry a second) is logged once */
    if (!same) pd_log(PD_LOG_WARN, "replication: %s", msg);
}

static void clear_error(pd_repl_t *r) {
    pthread_mutex_lock(&r->mu);
    bool had = r->error[0] != '\0';
    r->error[0] = '\0';
    pthread_mutex_unlock(&r->mu);
    if (had) pd_log(PD_LOG_INFO, "replication: working again");
}

/* --------------------------------------------------------- connecting */

static void on_disconnected(natsConnection *nc, void *closure) {
    (void)nc;
    pd_repl_t *r = closure;
    atomic_store(&r->connected, false);
    pthread_mutex_lock(&r->mu);
    bool stopping = r->stop;
    pthread_mutex_unlock(&r->mu);
    if (!stopping) set_error(r, "disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure) {
    (void)nc;
    pd_repl_t *r = closure;
    atomic_store(&r->connected, true);
    clear_error(r); /* logs "working again" */
}

/* The library's last callback for a connection: after it, nothing of
 * the library's touches r. pd_repl_stop waits for it before freeing r. */
static void on_closed(natsConnection *nc, void *closure) {
    (void)nc;
    pd_repl_t *r = closure;
    pthread_mutex_lock(&r->mu);
    r->closed = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
    (void)js, (void)pa;
    pd_repl_t *r = closure;
    if (pae) {
        atomic_fetch_add(&r->chunk_errors, 1);
        if (pae->ErrText)
            set_error(r, "publish refused: %s", pae->ErrText);
        else
            set_error(r, "publish failed: %s", natsStatus_GetText(pae->Err));
    }
    natsMsg_Destroy(msg);
}

static pd_err nats_connect(pd_repl_t *r, const char *url, bool publisher) {
    /* "nats://a:4222,nats://b:4222": every server of a cluster */
    char list[1024];
    const char *servers[16];
    int n = 0;
    snprintf(list, sizeof list, "%s", url);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && n < 16;
         t = strtok_r(NULL, ",", &save))
        if (*t) servers[n++] = t;
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = n ? natsOptions_SetServers(o, servers, n) : NATS_INVALID_ARG;
    if (s == NATS_OK) s = natsOptions_SetNoRandomize(o, true);
    if (s == NATS_OK) s = natsOptions_SetName(o, publisher ? "paidan-primary" : "paidan-replica");
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 500);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(o, on_disconnected, r);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, on_reconnected, r);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(o, on_closed, r);
    if (s == NATS_OK) s = natsConnection_Connect(&r->nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        pd_log(PD_LOG_ERROR, "%s %s: cannot connect to NATS: %s",
               publisher ? "--replicate" : "--follow", url, natsStatus_GetText(s));
        return PD_ERR_IO;
    }
    atomic_store(&r->connected, true);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = ACK_WAIT_MS;
    if (publisher) {
        jo.PublishAsync.MaxPending = 2 * CHUNK_RECORDS;
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = r;
    }
    s = natsConnection_JetStream(&r->js, r->nc, &jo);
    if (s != NATS_OK) {
        pd_log(PD_LOG_ERROR, "NATS JetStream context: %s", natsStatus_GetText(s));
        return PD_ERR_IO;
    }
    return PD_OK;
}

/* The stream's state: whether it exists, its first and last stream
 * sequence and the journal seq of its last message (0 if empty). */
typedef struct stream_state_s {
    bool exists;
    uint64_t first, last, msgs;
    uint64_t last_jseq, first_jseq;
} stream_state_t;

static pd_err journal_seq_of(pd_repl_t *r, uint64_t sseq, uint64_t *jseq) {
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(&m, r->js, r->stream, sseq, NULL, &jerr);
    if (s != NATS_OK) {
        pd_log(PD_LOG_ERROR, "stream %s: cannot read message %" PRIu64 ": %s", r->stream, sseq,
               natsStatus_GetText(s));
        return PD_ERR_IO;
    }
    int len = natsMsg_GetDataLength(m);
    if (len < PD_REPL_HEADER) {
        natsMsg_Destroy(m);
        pd_log(PD_LOG_ERROR, "stream %s: message %" PRIu64 " is not a paidan journal record",
               r->stream, sseq);
        return PD_ERR_CORRUPT;
    }
    *jseq = get64((const uint8_t *)natsMsg_GetData(m));
    natsMsg_Destroy(m);
    return PD_OK;
}

static pd_err stream_state(pd_repl_t *r, stream_state_t *st) {
    memset(st, 0, sizeof(*st));
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return PD_OK;
    if (s != NATS_OK) {
        pd_log(PD_LOG_ERROR, "stream %s: %s (is JetStream enabled on the NATS server?)", r->stream,
               natsStatus_GetText(s));
        return PD_ERR_IO;
    }
    st->exists = true;
    st->first = si->State.FirstSeq;
    st->last = si->State.LastSeq;
    st->msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    if (st->msgs == 0) return PD_OK;
    pd_err err = journal_seq_of(r, st->last, &st->last_jseq);
    if (!err) err = journal_seq_of(r, st->first, &st->first_jseq);
    return err;
}

static pd_repl_t *repl_new(pd_server_t *srv, int role) {
    pd_repl_t *r = pd_calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->srv = srv;
    r->role = role;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    snprintf(r->stream, sizeof r->stream, "%s",
             srv->cfg.stream ? srv->cfg.stream : PD_REPL_DEFAULT_STREAM);
    snprintf(r->subject, sizeof r->subject, "paidan.%s.journal", r->stream);
    return r;
}

/* ---------------------------------------------------------- publisher */

/* Publish the records of buf, in chunks, each until the stream has
 * acknowledged all of it (retrying after a pause). Gives up only when
 * asked to stop. @return false if records were left unpublished. */
static bool publish_all(pd_repl_t *r, const rbuf_t *buf) {
    size_t off = 0;
    while (off < buf->len) {
        size_t start = off, end = off;
        uint64_t last = 0;
        for (int tries = 0;; tries++) {
            atomic_store(&r->chunk_errors, 0);
            end = start;
            natsStatus s = NATS_OK;
            const uint8_t *msg;
            size_t len;
            int n = 0;
            while (n < CHUNK_RECORDS && rbuf_next(buf, &end, &msg, &len)) {
                char id[24];
                uint64_t seq = get64(msg);
                snprintf(id, sizeof id, "%" PRIu64, seq);
                jsPubOptions po;
                jsPubOptions_Init(&po);
                po.MsgId = id;
                po.MaxWait = ACK_WAIT_MS;
                s = js_PublishAsync(r->js, r->subject, msg, (int)len, &po);
                if (s != NATS_OK) break;
                last = seq;
                n++;
            }
            jsPubOptions wait;
            jsPubOptions_Init(&wait);
            wait.MaxWait = ACK_WAIT_MS;
            natsStatus ws = js_PublishAsyncComplete(r->js, &wait);
            if (ws != NATS_OK) {
                /* what is still pending will be sent again */
                natsMsgList pend;
                if (js_PublishAsyncGetPendingList(&pend, r->js) == NATS_OK)
                    natsMsgList_Destroy(&pend);
            }
            if (s == NATS_OK && ws == NATS_OK && atomic_load(&r->chunk_errors) == 0) {
                atomic_store(&r->acked, last);
                atomic_fetch_add(&r->published, (uint64_t)n);
                if (tries) clear_error(r);
                break;
            }
            if (s != NATS_OK || ws != NATS_OK)
                set_error(r, "publishing to stream %s: %s", r->stream,
                          natsStatus_GetText(s != NATS_OK ? s : ws));
            atomic_fetch_add(&r->retries, 1);
            pthread_mutex_lock(&r->mu);
            if (r->stop) { /* one try at stop: the next start publishes the rest */
                pthread_mutex_unlock(&r->mu);
                return false;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += RETRY_MS / 1000;
            if (!r->stop) pthread_cond_timedwait(&r->cv, &r->mu, &until);
            pthread_mutex_unlock(&r->mu);
        }
        off = end;
    }
    return true;
}

/* Reading records back from the journal segments of the data directory:
 * each record in [from, to], in order, to a sink. */
typedef struct scan_s {
    uint64_t to, next;
    pd_jrec_fn sink;
    void *ud;
    bool gap, stopped;
} scan_t;

static pd_err scan_rec(void *ud, const pd_jrec_t *rec) {
    scan_t *c = ud;
    if (rec->seq < c->next) return PD_OK;
    if (rec->seq > c->to) return PD_ERR_BOUNDS; /* done */
    if (rec->seq != c->next) {
        c->gap = true;
        return PD_ERR_BOUNDS;
    }
    pd_err err = c->sink(c->ud, rec);
    if (err) {
        c->stopped = true;
        return err;
    }
    c->next++;
    return PD_OK;
}

typedef struct seg_s {
    uint64_t first;
    char name[64];
} seg_t;

static int seg_cmp(const void *a, const void *b) {
    const seg_t *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Hand records from..to of the journal to sink. @return the seq after
 * the last one handed over (to + 1 when all were there); *stopped when
 * the sink refused one. */
static uint64_t scan_journal(const char *dir, uint64_t from, uint64_t to, pd_jrec_fn sink, void *ud,
                             bool *stopped) {
    scan_t c = {.to = to, .next = from, .sink = sink, .ud = ud};
    *stopped = false;
    DIR *d = opendir(dir);
    if (!d) return from;
    seg_t *segs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        size_t len = strlen(nm);
        if (len >= sizeof segs->name || strncmp(nm, "journal-", 8) != 0 || len < 13 ||
            strcmp(nm + len - 4, ".pdj") != 0)
            continue;
        char *endp;
        unsigned long long first = strtoull(nm + 8, &endp, 10);
        if (endp != nm + len - 4) continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            seg_t *g = pd_realloc(segs, ncap * sizeof(*segs));
            if (!g) break;
            segs = g;
            cap = ncap;
        }
        segs[n].first = first;
        memcpy(segs[n].name, nm, len + 1);
        n++;
    }
    closedir(d);
    if (n) qsort(segs, n, sizeof(*segs), seg_cmp);
    for (size_t i = 0; i < n && c.next <= to && !c.gap && !c.stopped; i++) {
        /* only the segment that may hold c.next, and those after it */
        if (i + 1 < n && segs[i + 1].first <= c.next) continue;
        if (segs[i].first > c.next) break; /* a segment is missing */
        char path[PD_STORE_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, segs[i].name);
        pd_jscan_t scan;
        pd_journal_scan(path, scan_rec, &c, &scan);
    }
    pd_free(segs);
    *stopped = c.stopped;
    return c.next;
}

/* The sink of a catch-up: buffer, publish every 8 MB. */
typedef struct pubsink_s {
    pd_repl_t *r;
    rbuf_t buf;
    bool oom;
} pubsink_t;

static pd_err pub_sink(void *ud, const pd_jrec_t *rec) {
    pubsink_t *ps = ud;
    if (!rbuf_put(&ps->buf, rec->seq, rec->type, rec->ts_ms, rec->data, rec->len)) {
        ps->oom = true;
        return PD_ERR_NOMEM;
    }
    if (ps->buf.len >= (8u << 20)) {
        bool ok = publish_all(ps->r, &ps->buf);
        ps->buf.len = 0;
        if (!ok) return PD_ERR_IO;
    }
    return PD_OK;
}

/* Publish journal records from..to from the segments. @return false if
 * they are not all there any more (replication then stops), or the
 * thread was asked to stop. */
static bool catch_up(pd_repl_t *r, uint64_t from, uint64_t to) {
    pd_log(PD_LOG_INFO,
           "replication: stream %s is behind the journal: publishing records %" PRIu64 "..%" PRIu64
           " from the journal segments",
           r->stream, from, to);
    pubsink_t ps = {.r = r};
    bool stopped;
    uint64_t next = scan_journal(r->srv->cfg.data_dir, from, to, pub_sink, &ps, &stopped);
    bool ok = next > to && !stopped;
    if (ok && ps.buf.len) ok = publish_all(r, &ps.buf);
    rbuf_free(&ps.buf);
    if (!stopped && next <= to) {
        set_error(r,
                  "the journal no longer holds record %" PRIu64
                  " that stream %s needs (a snapshot pruned it): replication stopped; "
                  "see docs/operations-server.md, \"Replicas\"",
                  next, r->stream);
        atomic_store(&r->failed, true);
    } else if (ps.oom) {
        set_error(r, "out of memory reading the journal back: replication stopped");
        atomic_store(&r->failed, true);
    }
    return ok;
}

static void free_blocks(rblock_t *b) {
    while (b) {
        rblock_t *next = b->next;
        pd_free(b);
        b = next;
    }
}

static void *publisher_main(void *arg) {
    pd_repl_t *r = arg;
    rbuf_t work = {0};
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && !r->qhead && r->file_to <= atomic_load(&r->acked))
            pthread_cond_wait(&r->cv, &r->mu);
        uint64_t acked = atomic_load(&r->acked);
        if (r->file_to > acked && !atomic_load(&r->failed)) {
            uint64_t to = r->file_to;
            pthread_mutex_unlock(&r->mu);
            bool ok = catch_up(r, acked + 1, to);
            pthread_mutex_lock(&r->mu);
            if (!ok) break;
            continue;
        }
        if (!r->qhead) break; /* stop, and nothing left */
        rblock_t *list = r->qhead;
        r->qhead = r->qtail = NULL;
        r->qbytes = 0;
        pthread_mutex_unlock(&r->mu);
        /* One buffer of them, so that publish_all's chunks span commits. */
        work.len = 0;
        uint64_t unqueued = 0; /* the last seq of blocks memory ran out for */
        for (rblock_t *b = list; b; b = b->next) {
            if (!unqueued && rbuf_reserve(&work, b->len)) {
                memcpy(work.p + work.len, b->data, b->len);
                work.len += b->len;
            } else {
                unqueued = b->last;
            }
        }
        free_blocks(list);
        bool ok = publish_all(r, &work);
        work.len = 0;
        pthread_mutex_lock(&r->mu);
        if (!ok) break;
        /* read those back from the segments, as after a dropped queue */
        if (unqueued > r->file_to) r->file_to = unqueued;
    }
    pthread_mutex_unlock(&r->mu);
    rbuf_free(&work);
    return NULL;
}

/* The sink that keeps one record (its framed bytes). */
static pd_err grab_sink(void *ud, const pd_jrec_t *rec) {
    rbuf_t *b = ud;
    b->len = 0;
    return rbuf_put(b, rec->seq, rec->type, rec->ts_ms, rec->data, rec->len) ? PD_OK : PD_ERR_NOMEM;
}

/* A message of the stream as a record; *m to destroy after use. */
static pd_err stream_rec(pd_repl_t *r, uint64_t sseq, natsMsg **m, pd_jrec_t *rec) {
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(m, r->js, r->stream, sseq, NULL, &jerr);
    if (s != NATS_OK) {
        pd_log(PD_LOG_ERROR, "stream %s: cannot read message %" PRIu64 ": %s", r->stream, sseq,
               natsStatus_GetText(s));
        return PD_ERR_IO;
    }
    const uint8_t *d = (const uint8_t *)natsMsg_GetData(*m);
    int len = natsMsg_GetDataLength(*m);
    if (len < PD_REPL_HEADER) {
        pd_log(PD_LOG_ERROR, "stream %s: message %" PRIu64 " is not a journal record", r->stream,
               sseq);
        return PD_ERR_CORRUPT;
    }
    rec_of(d, (size_t)len, rec);
    return PD_OK;
}

/* Compare journal record jseq (first_jseq <= jseq <= last_jseq) with the
 * stream's copy of it. @return PD_OK when the bytes are the same;
 * PD_ERR_ILLEGAL when they differ; PD_ERR_NOT_FOUND when the journal no
 * longer holds it; another error when the stream's copy cannot be read. */
static pd_err same_record(pd_repl_t *r, const stream_state_t *st, uint64_t jseq) {
    rbuf_t mine = {0};
    bool stopped;
    uint64_t next = scan_journal(r->srv->cfg.data_dir, jseq, jseq, grab_sink, &mine, &stopped);
    natsMsg *m = NULL;
    pd_jrec_t rec;
    pd_err err = next == jseq + 1 ? stream_rec(r, st->first + (jseq - st->first_jseq), &m, &rec)
                                  : PD_ERR_NOT_FOUND;
    if (!err && (mine.len != 4 + PD_REPL_HEADER + rec.len ||
                 memcmp(mine.p + 4, natsMsg_GetData(m), mine.len - 4) != 0))
        err = PD_ERR_ILLEGAL;
    natsMsg_Destroy(m);
    rbuf_free(&mine);
    return err;
}

/* The stream is behind the journal or level with it: its last record
 * must be this journal's record of the same seq, or what this primary
 * publishes next would follow another primary's history, and replicas
 * would apply a mix of the two. A record the journal no longer holds (a
 * snapshot pruned it) cannot be compared; catch_up then says what is
 * missing. */
static pd_err check_history(pd_repl_t *r, const stream_state_t *st, uint64_t have) {
    pd_err err = same_record(r, st, st->last_jseq);
    if (err == PD_ERR_NOT_FOUND) {
        pd_log(PD_LOG_WARN,
               "replication: record %" PRIu64
               " (the last of stream %s) is no longer in the journal: cannot check that the "
               "stream holds this journal's history",
               st->last_jseq, r->stream);
        return PD_OK;
    }
    if (!err) return PD_OK;
    pd_log(PD_LOG_ERROR,
           "--replicate: stream %s holds records up to %" PRIu64
           " and this journal ends at %" PRIu64
           ", but %s; refusing to write after it (docs/operations-server.md, \"Replicas\")",
           r->stream, st->last_jseq, have,
           err == PD_ERR_ILLEGAL
               ? "its last record differs from this journal's: it was written by another primary"
               : "the stream's last record cannot be read");
    return err;
}

/* The stream is ahead of the journal: the primary lost the tail of its
 * journal (fsync everysec and a power cut), or it starts on an empty data
 * directory to take over a region. If the stream holds this journal's
 * last record, the same bytes, take the records after it from the
 * stream: apply each, journal it, commit. Otherwise the stream is another
 * history: refuse. */
static pd_err take_from_stream(pd_repl_t *r, const stream_state_t *st, uint64_t have) {
    pd_server_t *srv = r->srv;
    const char *why = NULL;
    if (have + 1 < st->first_jseq)
        why = "the stream no longer holds the records right after this journal's";
    if (!why && have >= st->first_jseq) {
        pd_err err = same_record(r, st, have);
        if (err == PD_ERR_NOT_FOUND)
            why = "this journal's last record cannot be read back to compare";
        else if (err == PD_ERR_ILLEGAL)
            why = "its record at this journal's last differs: it was written by another primary";
        else if (err)
            why = "the stream's copy of this journal's last record cannot be read";
    }
    if (why) {
        pd_log(PD_LOG_ERROR,
               "--replicate: stream %s holds records up to %" PRIu64
               " and this journal ends at %" PRIu64
               ", but %s; refusing to write after it (docs/operations-server.md, \"Replicas\")",
               r->stream, st->last_jseq, have, why);
        return PD_ERR_ILLEGAL;
    }
    pd_log(PD_LOG_INFO,
           "replication: stream %s is ahead of the journal: taking records %" PRIu64 "..%" PRIu64
           " from it",
           r->stream, have + 1, st->last_jseq);
    pd_replay_t *rp = pd_replay_new(srv);
    if (!rp) return PD_ERR_NOMEM;
    pd_err err = PD_OK;
    for (uint64_t j = have + 1; j <= st->last_jseq && !err; j++) {
        natsMsg *m = NULL;
        pd_jrec_t rec;
        err = stream_rec(r, st->first + (j - st->first_jseq), &m, &rec);
        if (!err && rec.seq != j) {
            pd_log(PD_LOG_ERROR, "stream %s: record %" PRIu64 " where %" PRIu64 " was expected",
                   r->stream, rec.seq, j);
            err = PD_ERR_CORRUPT;
        }
        if (!err) err = pd_replay_apply(rp, &rec);
        srv->n_events = 0;
        if (!err) err = pd_persist_append_applied(srv, &rec);
        natsMsg_Destroy(m);
        if (!err && (j % 4096 == 0 || j == st->last_jseq) && !pd_persist_commit(srv))
            err = PD_ERR_IO;
    }
    pd_replay_free(rp);
    if (err)
        pd_log(PD_LOG_ERROR, "--replicate: taking records from stream %s failed: %s", r->stream,
               pd_strerror(err));
    return err;
}

pd_err pd_repl_primary_start(pd_server_t *srv) {
    pd_repl_t *r = repl_new(srv, ROLE_PRIMARY);
    if (!r) return PD_ERR_NOMEM;
    srv->repl = r;
    pd_err err = nats_connect(r, srv->cfg.replicate, true);
    if (err) return err;
    stream_state_t st;
    err = stream_state(r, &st);
    if (err) return err;
    if (!st.exists) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        const char *subjects[1] = {r->subject};
        sc.Name = r->stream;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Duplicates = (int64_t)10 * 60 * 1000000000LL; /* ids remembered 10 min */
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_AddStream(&si, r->js, &sc, NULL, &jerr);
        if (s != NATS_OK) {
            pd_log(PD_LOG_ERROR, "--replicate: cannot create stream %s: %s (error %d)", r->stream,
                   natsStatus_GetText(s), (int)jerr);
            return PD_ERR_IO;
        }
        jsStreamInfo_Destroy(si);
        pd_log(PD_LOG_INFO, "replication: created stream %s (subject %s, file storage)", r->stream,
               r->subject);
    }
    uint64_t have = pd_persist_last_seq(srv);
    if (st.last_jseq > have) {
        err = take_from_stream(r, &st, have);
        if (err) return err;
        have = pd_persist_last_seq(srv);
    } else if (st.msgs > 0) {
        err = check_history(r, &st, have);
        if (err) return err;
    }
    atomic_store(&r->acked, st.last_jseq);
    r->committed = r->stage_last = have;
    r->file_to = have;
    pd_log(PD_LOG_INFO,
           "replication: publishing the journal to stream %s on %s (stream at record %" PRIu64
           ", journal at %" PRIu64 ")",
           r->stream, srv->cfg.replicate, st.last_jseq, have);
    if (pthread_create(&r->thread, NULL, publisher_main, r) != 0) {
        pd_log(PD_LOG_ERROR, "--replicate: cannot start the publisher thread");
        return PD_ERR_NOMEM;
    }
    r->thread_on = true;
    return PD_OK;
}

void pd_repl_stage(pd_server_t *srv, uint64_t seq, uint16_t type, int64_t ts_ms, const void *data,
                   size_t len) {
    pd_repl_t *r = srv->repl;
    if (!r || r->role != ROLE_PRIMARY) return;
    r->stage_last = seq;
    if (r->oom) return;
    if (!rbuf_put(&r->stage, seq, type, ts_ms, data, len)) {
        /* read back from the segments instead (pd_repl_committed) */
        r->oom = true;
        r->stage.len = 0;
    }
}

void pd_repl_committed(pd_server_t *srv) {
    pd_repl_t *r = srv->repl;
    if (!r || r->role != ROLE_PRIMARY || r->stage_last == r->committed) return;
    rblock_t *blk = NULL, *drop = NULL;
    if (!r->oom && !atomic_load(&r->failed)) {
        blk = pd_malloc(sizeof(*blk) + r->stage.len);
        if (blk) {
            blk->next = NULL;
            blk->last = r->stage_last;
            blk->len = r->stage.len;
            if (blk->len) memcpy(blk->data, r->stage.p, blk->len);
        }
    }
    r->stage.len = 0;
    pthread_mutex_lock(&r->mu);
    if (atomic_load(&r->failed)) {
        drop = blk;
    } else if (!blk || r->qbytes + blk->len > QUEUE_MAX) {
        /* The stream is not keeping up (or memory ran out): drop what
         * waits, and have the thread read it back from the segments. */
        drop = r->qhead;
        if (blk) blk->next = drop, drop = blk;
        r->qhead = r->qtail = NULL;
        r->qbytes = 0;
        r->file_to = r->stage_last;
        atomic_fetch_add(&r->dropped, 1);
    } else {
        if (r->qtail)
            r->qtail->next = blk;
        else
            r->qhead = blk;
        r->qtail = blk;
        r->qbytes += blk->len;
    }
    r->oom = false;
    r->committed = r->stage_last;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    free_blocks(drop); /* after the lock: a dropped queue is many blocks */
}

/* ------------------------------------------------------------ replica */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
    (void)nc, (void)sub;
    pd_repl_t *r = closure;
    const uint8_t *d = (const uint8_t *)natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    if (len < PD_REPL_HEADER) {
        set_error(r, "stream %s: a message that is not a journal record was skipped", r->stream);
        natsMsg_Destroy(msg);
        return;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->stop && r->q.len > FOLLOW_QUEUE_MAX) pthread_cond_wait(&r->cv, &r->mu);
    bool ok = r->stop || rbuf_put_msg(&r->q, d, (size_t)len);
    pthread_mutex_unlock(&r->mu);
    natsMsg_Destroy(msg);
    if (!ok) set_error(r, "out of memory queueing a record: it will be missing");
    uv_async_send(&r->async);
}

static void on_async(uv_async_t *h) {
    pd_repl_t *r = h->data;
    pd_server_t *srv = r->srv;
    /* A slice at a time (a catch-up brings up to FOLLOW_QUEUE_MAX at
     * once: ~100-190 ms of applying), so reads are served in between. */
    const uint64_t until = uv_hrtime() + APPLY_SLICE_NS;
    unsigned n = 0;
    bool sliced = false;
    while (!r->halted && !sliced) {
        if (r->work_off >= r->work.len) {
            /* this batch is done: take what came meanwhile */
            pd_free(r->work.p);
            pthread_mutex_lock(&r->mu);
            r->work = r->q;
            memset(&r->q, 0, sizeof(r->q));
            pthread_cond_broadcast(&r->cv);
            pthread_mutex_unlock(&r->mu);
            r->work_off = 0;
            if (!r->work.len) break;
        }
        const uint8_t *m;
        size_t len;
        while (!r->halted && rbuf_next(&r->work, &r->work_off, &m, &len)) {
            pd_jrec_t rec;
            rec_of(m, len, &rec);
            if (rec.seq <= r->applied) {
                r->n_duplicates++;
                continue;
            }
            if (rec.seq != r->applied + 1) {
                r->halted = true;
                set_error(r,
                          "stream %s skips from record %" PRIu64 " to %" PRIu64
                          ": stopped applying; the state stays at record %" PRIu64,
                          r->stream, r->applied, rec.seq, r->applied);
                break;
            }
            pd_err err = pd_replay_apply(r->replay, &rec);
            if (err) {
                r->halted = true;
                set_error(r, "record %" PRIu64 " does not apply (%s): stopped applying at %" PRIu64,
                          rec.seq, pd_strerror(err), r->applied);
                break;
            }
            r->applied = rec.seq;
            r->n_applied++;
            r->t_last_ms = (uint64_t)rec.ts_ms;
            if (srv->n_events) pd_server_publish(srv);
            if (++n % 256 == 0 && uv_hrtime() > until) {
                sliced = true;
                break;
            }
        }
    }
    if (r->halted) r->work_off = r->work.len;
    /* the slice ended with records left: come back after serving */
    if (sliced) uv_async_send(&r->async);
    srv->n_events = 0;
    pd_server_flush(srv);
}

pd_err pd_repl_follow_start(pd_server_t *srv) {
    pd_repl_t *r = repl_new(srv, ROLE_REPLICA);
    if (!r) return PD_ERR_NOMEM;
    srv->repl = r;
    r->replay = pd_replay_new(srv);
    if (!r->replay) return PD_ERR_NOMEM;
    if (srv->cfg.follow_snapshot) {
        uint64_t seq = 0;
        pd_err err = pd_persist_load_snapshot(srv, srv->cfg.follow_snapshot, &seq);
        if (err) return err;
        r->applied = seq;
    }
    pd_err err = nats_connect(r, srv->cfg.follow, false);
    if (err) return err;
    stream_state_t st;
    err = stream_state(r, &st);
    if (err) return err;
    if (!st.exists) {
        pd_log(PD_LOG_ERROR,
               "--follow: NATS at %s has no stream %s: start the primary with --replicate "
               "first (or name its stream with --stream)",
               srv->cfg.follow, r->stream);
        return PD_ERR_NOT_FOUND;
    }
    uint64_t want = r->applied + 1;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = r->stream;
    so.Ordered = true;
    if (st.msgs == 0) {
        /* empty: every record from the first the primary publishes */
        so.Config.DeliverPolicy = js_DeliverAll;
        r->start_seq = st.last + 1;
    } else {
        if (want < st.first_jseq) {
            pd_log(PD_LOG_ERROR,
                   "--follow: stream %s starts at record %" PRIu64
                   ", and this replica needs "
                   "record %" PRIu64 " next: start it from a snapshot at or after record %" PRIu64
                   " (--follow-snapshot, a copy of the primary's snap-*.pds)",
                   r->stream, st.first_jseq, want, st.first_jseq - 1);
            return PD_ERR_NOT_FOUND;
        }
        /* stream sequences follow journal ones one for one */
        r->start_seq = st.first + (want - st.first_jseq);
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = r->start_seq;
    }
    if (uv_async_init(srv->loop, &r->async, on_async) != 0) return PD_ERR_NOMEM;
    r->async.data = r;
    r->async_on = true;
    jsErrCode jerr = 0;
    natsStatus s = js_Subscribe(&r->sub, r->js, r->subject, on_msg, r, NULL, &so, &jerr);
    if (s != NATS_OK) {
        pd_log(PD_LOG_ERROR, "--follow: cannot subscribe to stream %s: %s (error %d)", r->stream,
               natsStatus_GetText(s), (int)jerr);
        return PD_ERR_IO;
    }
    pd_log(PD_LOG_INFO,
           "replica of stream %s on %s: state at record %" PRIu64 ", the stream at %" PRIu64
           "; writes are refused",
           r->stream, srv->cfg.follow, r->applied, st.last_jseq);
    return PD_OK;
}

uint64_t pd_repl_needed_from(const pd_server_t *srv) {
    pd_repl_t *r = srv->repl;
    if (!r || r->role != ROLE_PRIMARY || atomic_load(&r->failed)) return 0;
    return atomic_load(&r->acked) + 1;
}

bool pd_repl_is_replica(const pd_server_t *srv) {
    return srv->cfg.follow != NULL;
}

uint64_t pd_repl_applied_seq(const pd_server_t *srv) {
    const pd_repl_t *r = srv->repl;
    return r && r->role == ROLE_REPLICA ? r->applied : 0;
}

static void on_async_closed(uv_handle_t *h) {
    pd_repl_t *r = h->data;
    pd_free(r);
}

void pd_repl_stop(pd_server_t *srv) {
    pd_repl_t *r = srv->repl;
    if (!r) return;
    srv->repl = NULL;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->sub) {
        /* Drain, not unsubscribe: it returns once no callback of the
         * subscription runs any more (with stop set they only drop). */
        if (natsSubscription_DrainTimeout(r->sub, 2000) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(r->sub, 3000);
        else
            natsSubscription_Unsubscribe(r->sub);
        natsSubscription_Destroy(r->sub);
    }
    if (r->thread_on) {
        pthread_join(r->thread, NULL);
        uint64_t left = r->committed - atomic_load(&r->acked);
        if (left)
            pd_log(PD_LOG_WARN,
                   "replication: %" PRIu64
                   " records not in stream %s at stop; the next start publishes them from the "
                   "journal",
                   left, r->stream);
        else
            pd_log(PD_LOG_INFO, "replication: stream %s has every record (%" PRIu64 ")", r->stream,
                   r->committed);
    }
    jsCtx_Destroy(r->js);
    bool closed = true;
    if (r->nc) {
        /* Close runs the disconnected and closed callbacks on the
         * library's thread, after it returns: r must outlive them. */
        natsConnection_Close(r->nc);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&r->mu);
        while (!r->closed && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0) continue;
        closed = r->closed;
        pthread_mutex_unlock(&r->mu);
        natsConnection_Destroy(r->nc);
        /* the library's threads and buffers; it starts again if needed */
        nats_CloseAndWait(2000);
    }
    rbuf_free(&r->q);
    rbuf_free(&r->work);
    free_blocks(r->qhead);
    rbuf_free(&r->stage);
    pd_replay_free(r->replay);
    if (!closed) {
        /* the library may still call back into r: keep it */
        pd_log(PD_LOG_WARN, "replication: the NATS connection did not close within 5 s");
        if (r->async_on) uv_close((uv_handle_t *)&r->async, NULL);
        return;
    }
    if (r->async_on)
        uv_close((uv_handle_t *)&r->async, on_async_closed);
    else
        pd_free(r);
}

void pd_repl_pack_stats(pd_server_t *srv, msgpack_packer *pk) {
    pd_repl_t *r = srv->repl;
    if (!r) {
        msgpack_pack_map(pk, 1);
        pd_pack_kv_str(pk, "role", "none");
        return;
    }
    char error[256];
    uint64_t error_at;
    pthread_mutex_lock(&r->mu);
    snprintf(error, sizeof error, "%s", r->error);
    error_at = r->error_at;
    size_t queued = r->role == ROLE_PRIMARY ? r->qbytes : r->q.len;
    pthread_mutex_unlock(&r->mu);
    bool primary = r->role == ROLE_PRIMARY;
    msgpack_pack_map(pk, primary ? 14 : 13);
    pd_pack_kv_str(pk, "role", primary ? "primary" : "replica");
    pd_pack_kv_str(pk, "url", primary ? srv->cfg.replicate : srv->cfg.follow);
    pd_pack_kv_str(pk, "stream", r->stream);
    pd_pack_kv_str(pk, "subject", r->subject);
    pd_pack_kv_bool(pk, "connected", atomic_load(&r->connected));
    pd_pack_kv_str(pk, "error", error);
    pd_pack_kv_u64(pk, "error_at_ms", error[0] ? error_at : 0);
    pd_pack_kv_u64(pk, "queued_bytes", queued);
    if (primary) {
        uint64_t acked = atomic_load(&r->acked);
        pd_pack_kv_bool(pk, "failed", atomic_load(&r->failed));
        pd_pack_kv_u64(pk, "committed_seq", r->committed);
        pd_pack_kv_u64(pk, "stream_seq", acked);
        pd_pack_kv_u64(pk, "lag_records", r->committed > acked ? r->committed - acked : 0);
        pd_pack_kv_u64(pk, "published", atomic_load(&r->published));
        pd_pack_kv_u64(pk, "retries", atomic_load(&r->retries) + atomic_load(&r->dropped));
    } else {
        pd_pack_kv_bool(pk, "halted", r->halted);
        pd_pack_kv_u64(pk, "applied_seq", r->applied);
        pd_pack_kv_u64(pk, "applied", r->n_applied);
        pd_pack_kv_u64(pk, "duplicates", r->n_duplicates);
        pd_pack_kv_u64(pk, "last_record_ms", r->t_last_ms);
    }
}

void pd_repl_figures(pd_server_t *srv, pd_repl_figures_t *out) {
    memset(out, 0, sizeof(*out));
    pd_repl_t *r = srv->repl;
    if (!r) return;
    out->role = r->role;
    if (r->role == ROLE_PRIMARY) {
        out->healthy = atomic_load(&r->connected) && !atomic_load(&r->failed);
        out->seq = r->committed;
        out->stream_seq = atomic_load(&r->acked);
        out->records = atomic_load(&r->published);
        out->errors = atomic_load(&r->retries);
    } else {
        out->healthy = atomic_load(&r->connected) && !r->halted;
        out->seq = r->applied;
        out->stream_seq = r->applied;
        out->records = r->n_applied;
        out->errors = r->halted;
    }
}

#endif /* PD_HAVE_NATS */
