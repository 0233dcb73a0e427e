/* load.c -- the load generator behind `paidan-bench load`.
 *
 * Design. Each thread runs one libuv loop over its share of the
 * connections. Connections are opened (and authenticated) with blocking
 * sockets before the run and handed to the loops, so the measured phase
 * starts with every connection ready. Requests are packed by hand into one
 * growing write buffer per connection -- a fixed header (array of 4, type
 * 0, msgid as uint32, method) followed by params maps packed once before
 * the run (the pool) -- and written with one uv_try_write()/uv_write() per
 * read batch. Replies are parsed with a streaming msgpack_unpacker whose
 * zone is cleared after each reply, so steady state does not allocate.
 *
 * Every request in flight sits in a per-connection ring indexed by msgid,
 * with the time it was meant to be sent. Two disciplines:
 *
 *  - closed loop: each connection keeps `pipeline` requests in flight; a
 *    reply is answered at once by the next request. Latency is reply time
 *    minus send time.
 *  - open loop (`rate` > 0): connection j sends its i-th request at
 *    t0_j + i / rate_j, whatever the server does. When `pipeline` requests
 *    are already in flight the request waits, but its latency is still
 *    counted from the time it was due: the wait is part of what a user
 *    would see. This is the coordinated-omission correction of wrk2 --
 *    a stalled server cannot hide its stall by slowing the generator down.
 *    Pacing uses a timerfd (nanosecond expiry) polled by libuv, since
 *    libuv's own timers tick in milliseconds.
 *
 * Order commands run the real life cycle on one pipeline slot: the reply
 * to order.create carries the order with its offers, so the generator
 * accepts as the first volunteer with a live offer, then completes and
 * rates. Each step has its own histogram and the whole cycle another.
 *
 * All reply timestamps of one read batch are taken once: replies that
 * arrive in the same segment arrived at the same time.
 */
#include "load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "paidan/client.h"

#define POOL_SIZE 8192    /* payloads per command, a power of two */
#define READ_CHUNK 65536  /* bytes reserved in the unpacker per read */
#define OUT_INITIAL 65536 /* first size of a write buffer */

/* ------------------------------------------------------------- naming */

static const char *const metric_names[PD__M__COUNT] = {
    [PD__M_PING] = "ping",
    [PD__M_NEARBY] = "nearby",
    [PD__M_UPDATE] = "update",
    [PD__M_GET] = "get",
    [PD__M_CREATE] = "order.create",
    [PD__M_ACCEPT] = "order.accept",
    [PD__M_COMPLETE] = "order.complete",
    [PD__M_RATE] = "order.rate",
    [PD__M_ORDER] = "order",
    [PD__M_ALL] = "all",
};

const char *pd__metric_name(pd__metric m) {
    return (unsigned)m < PD__M__COUNT ? metric_names[m] : NULL;
}

const char *pd__load_code_name(unsigned code) {
    if (code == PD__LOAD_LOST) return "LOST";
    if (code == PD__LOAD_OTHER) return "OTHER";
    return pd_err_name((pd_err)code);
}

/* Wire method of each request metric. */
static const char *const metric_method[PD__M__COUNT] = {
    [PD__M_PING] = "ping",
    [PD__M_NEARBY] = "match.nearby",
    [PD__M_UPDATE] = "volunteer.update",
    [PD__M_GET] = "volunteer.get",
    [PD__M_CREATE] = "order.create",
    [PD__M_ACCEPT] = "order.accept",
    [PD__M_COMPLETE] = "order.complete",
    [PD__M_RATE] = "order.rate",
};

void pd__load_opts_init(pd__load_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 7411;
    o->connections = 8;
    o->pipeline = 16;
    o->threads = 1;
    o->duration_s = 10;
    o->warmup_s = 1;
    o->drain_s = 2;
    o->k = 10;
    o->seed = 1;
    pd__mix_parse("ping", &o->mix, NULL, 0);
}

/* ------------------------------------------------------------------ pool */

/* One packed params map inside pool->bytes. */
typedef struct blob_s {
    uint32_t off;   /* offset in bytes */
    uint32_t len;   /* length */
    uint32_t pairs; /* key/value pairs (order.create: without the id) */
} blob_t;

struct pd__load_pool_s {
    msgpack_sbuffer sb;       /* all packed payloads */
    blob_t nearby[POOL_SIZE]; /* match.nearby params */
    blob_t update[POOL_SIZE]; /* volunteer.update {id, lat, lon} */
    blob_t get[POOL_SIZE];    /* volunteer.get {id} */
    blob_t create[POOL_SIZE]; /* order.create params minus "id" */
    bool has[PD__CMD__COUNT]; /* which pools were built */
};

static void pk_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void blob_begin(pd__load_pool_t *p, blob_t *b) {
    b->off = (uint32_t)p->sb.size;
}

static void blob_end(pd__load_pool_t *p, blob_t *b, uint32_t pairs) {
    b->len = (uint32_t)(p->sb.size - b->off);
    b->pairs = pairs;
}

pd_err pd__load_pool_create(pd__county_t *c, const pd__names_t *names, const pd__load_opts_t *o,
                            pd__load_pool_t **out) {
    pd__load_pool_t *p = calloc(1, sizeof *p);
    if (!p) return PD_ERR_NOMEM;
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
    for (int cmd = 0; cmd < PD__CMD__COUNT; cmd++) p->has[cmd] = o->mix.weight[cmd] > 0;
    p->has[PD__CMD_PING] = true;
    bool need_county = p->has[PD__CMD_NEARBY] || p->has[PD__CMD_UPDATE] || p->has[PD__CMD_GET] ||
                       p->has[PD__CMD_ORDER];
    if (need_county && (!c || c->n == 0)) {
        pd__load_pool_destroy(p);
        return PD_ERR_BAD_ARG;
    }
    pd__bench_rng_t rng;
    pd__bench_rng_seed(&rng, o->seed ^ 0x706f6f6cULL);
    for (size_t i = 0; need_county && i < POOL_SIZE; i++) {
        pd_gen_order_t ord;
        if (!pd__county_order(c, &ord)) {
            memset(&ord, 0, sizeof ord);
            pd__county_point(c, &ord.pos);
            ord.start_ms = 1709600400000LL;
            ord.duration_min = 60;
        }
        if (p->has[PD__CMD_NEARBY]) {
            blob_begin(p, &p->nearby[i]);
            msgpack_pack_map(&pk, o->policy ? 7 : 6);
            if (o->policy) {
                pk_str(&pk, "policy");
                pk_str(&pk, o->policy);
            }
            pk_str(&pk, "lat");
            msgpack_pack_double(&pk, ord.pos.lat / 1e6);
            pk_str(&pk, "lon");
            msgpack_pack_double(&pk, ord.pos.lon / 1e6);
            pk_str(&pk, "skills");
            pd__pack_skills(&pk, ord.skills, names);
            pk_str(&pk, "k");
            msgpack_pack_uint32(&pk, o->k);
            pk_str(&pk, "start");
            msgpack_pack_int64(&pk, ord.start_ms);
            pk_str(&pk, "duration_min");
            msgpack_pack_int32(&pk, ord.duration_min);
            blob_end(p, &p->nearby[i], o->policy ? 7 : 6);
        }
        if (p->has[PD__CMD_ORDER]) {
            blob_begin(p, &p->create[i]);
            pk_str(&pk, "lat");
            msgpack_pack_double(&pk, ord.pos.lat / 1e6);
            pk_str(&pk, "lon");
            msgpack_pack_double(&pk, ord.pos.lon / 1e6);
            pk_str(&pk, "skills");
            pd__pack_skills(&pk, ord.skills, names);
            pk_str(&pk, "start");
            msgpack_pack_int64(&pk, ord.start_ms);
            pk_str(&pk, "duration_min");
            msgpack_pack_int32(&pk, ord.duration_min);
            blob_end(p, &p->create[i], 5);
        }
        const pd_volunteer_t *v = &c->vols[pd__bench_rng_next(&rng) % c->n];
        if (p->has[PD__CMD_UPDATE]) {
            /* A hop of up to ~100 m from where the volunteer was loaded. */
            pd_latlng_t to = v->pos;
            to.lat += (int32_t)(pd__bench_rng_next(&rng) % 1801) - 900;
            to.lon += (int32_t)(pd__bench_rng_next(&rng) % 1801) - 900;
            if (!pd_latlng_is_valid(to)) to = v->pos;
            blob_begin(p, &p->update[i]);
            msgpack_pack_map(&pk, 3);
            pk_str(&pk, "id");
            msgpack_pack_uint64(&pk, v->id);
            pk_str(&pk, "lat");
            msgpack_pack_double(&pk, to.lat / 1e6);
            pk_str(&pk, "lon");
            msgpack_pack_double(&pk, to.lon / 1e6);
            blob_end(p, &p->update[i], 3);
        }
        if (p->has[PD__CMD_GET]) {
            blob_begin(p, &p->get[i]);
            msgpack_pack_map(&pk, 1);
            pk_str(&pk, "id");
            msgpack_pack_uint64(&pk, v->id);
            blob_end(p, &p->get[i], 1);
        }
    }
    if (p->sb.size > UINT32_MAX || (p->sb.size && !p->sb.data)) {
        pd__load_pool_destroy(p);
        return PD_ERR_NOMEM;
    }
    *out = p;
    return PD_OK;
}

void pd__load_pool_destroy(pd__load_pool_t *p) {
    if (!p) return;
    msgpack_sbuffer_destroy(&p->sb);
    free(p);
}

/* ------------------------------------------------------------ structures */

/* One request in flight. */
typedef struct req_s {
    uint32_t msgid;
    uint8_t metric;      /* pd__metric */
    bool live;           /* waiting for its reply */
    bool measured;       /* sent (intended) inside the measured phase */
    uint64_t t_intended; /* ns: when it was due (closed loop: when it was sent) */
    uint64_t t_first;    /* ns: order life cycle: when its order.create was due */
    uint64_t order_id;   /* order life cycle: the order */
} req_t;

typedef struct worker_s worker_t;

/* One connection. */
typedef struct lconn_s {
    uv_tcp_t tcp;
    uv_write_t wreq;
    worker_t *w;
    int fd;         /* connected socket, owned by tcp once opened */
    uint32_t index; /* 0..connections-1 over all threads */
    bool open;      /* tcp handle initialised */
    bool dead;      /* closed or failed */
    bool writing;   /* a uv_write is in progress */
    msgpack_unpacker up;
    bool up_ok;
    char *out; /* requests packed, not yet handed to the kernel */
    size_t out_len, out_cap;
    char *wbuf; /* bytes being written by uv_write */
    size_t wbuf_cap;
    req_t *ring; /* in-flight requests by msgid & mask */
    uint32_t mask;
    uint32_t next_msgid;
    uint32_t inflight;
    uint64_t n_sched;   /* open loop: requests of the schedule sent */
    double t0;          /* open loop: this connection's schedule start, ns */
    double interval;    /* open loop: ns between its requests */
    uint64_t order_seq; /* orders created on this connection */
    pd__bench_rng_t rng;
} lconn_t;

typedef struct shared_s shared_t;

struct worker_s {
    pthread_t th;
    uv_loop_t loop;
    shared_t *sh;
    lconn_t **conns;
    size_t n_conns;
    int tfd; /* open loop pacing timer */
    uv_poll_t tpoll;
    uv_idle_t idle;       /* busy-waits the last spin_us before a send */
    uv_idle_t poll_idle;  /* --busy-poll: keeps the loop from sleeping */
    bool spinning;        /* idle is active */
    uint64_t armed;       /* the send time waited for, UINT64_MAX if none */
    uv_timer_t end_timer; /* end of the measured phase, then the drain deadline */
    bool handles_open;
    bool loop_ok; /* loop initialised (closed by the caller) */
    uint64_t t_start, t_measure, t_end;
    bool stopping;     /* no new requests */
    bool finishing;    /* handles are being closed */
    uint64_t inflight; /* over all its connections */
    uint32_t live_conns;
    uint64_t quota; /* requests mode: measured requests to send */
    uint64_t sent_measured;
    uint64_t last_reply;    /* ns */
    uint64_t last_progress; /* ns: the last reply, or the send that ended a time with
                               nothing in flight (what -N's give-up counts from) */
    uint64_t t_stop;        /* ns: when the worker finished */
    /* Results, merged by the caller after the join. */
    pd_hist_t *hist; /* [PD__M__COUNT] */
    pd_hist_t *lag;  /* open loop: actual send time - intended, ns */
    uint64_t errors[PD__M__COUNT];
    uint64_t by_code[PD__LOAD_CODES];
    uint64_t orders_done, orders_expired, orders_unoffered;
    uint64_t sched_done;         /* replies to new commands (not order steps) received in
                                    the measured phase */
    uint64_t done[PD__M__COUNT]; /* replies received in the measured phase, per metric */
    uint64_t replies;            /* every reply, warm-up and drain included */
    uint32_t conns_lost;
    pd_hist_t **secs; /* one histogram per measured second */
    uint64_t *sec_errors;
    size_t n_secs, cap_secs;
    size_t cur_sec; /* the second being filled */
    bool oom;
    /* For the progress line, read by the main thread. */
    _Atomic uint64_t a_done;
    _Atomic uint64_t a_errors;
    _Atomic uint64_t a_p99;
    _Atomic bool a_finished;
};

struct shared_s {
    const pd__load_opts_t *o;
    const pd__load_pool_t *pool;
    pthread_barrier_t barrier;
    _Atomic uint64_t t_start;
    bool open_loop;
    uint64_t id_base; /* order ids of this run: id_base + (conn << 24) + seq */
};

/* ---------------------------------------------------------------- output */

static bool out_reserve(lconn_t *c, size_t more) {
    if (c->out_len + more <= c->out_cap) return true;
    size_t cap = c->out_cap ? c->out_cap : OUT_INITIAL;
    while (cap < c->out_len + more) cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p) return false;
    c->out = p;
    c->out_cap = cap;
    return true;
}

static void put_u32be(char *p, uint32_t v) {
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

/* [0, msgid, method, -- the params follow. */
static bool put_header(lconn_t *c, uint32_t msgid, const char *method, size_t extra) {
    size_t ml = strlen(method);
    if (!out_reserve(c, 8 + ml + extra)) return false;
    char *p = c->out + c->out_len;
    p[0] = (char)0x94;
    p[1] = 0x00;
    p[2] = (char)0xce;
    put_u32be(p + 3, msgid);
    p[7] = (char)(0xa0 | ml); /* method names are < 32 bytes */
    memcpy(p + 8, method, ml);
    c->out_len += 8 + ml;
    return true;
}

/* msgpack_packer write callback into the connection's buffer. */
static int out_write(void *data, const char *buf, size_t len) {
    lconn_t *c = data;
    if (!out_reserve(c, len)) return -1;
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return 0;
}

static void conn_fail(lconn_t *c, bool lost);

static void on_write(uv_write_t *req, int status);

static void conn_flush(lconn_t *c) {
    if (c->dead || c->writing || c->out_len == 0) return;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->out_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->out_len) {
        c->out_len = 0;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, true);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    /* The rest goes to uv_write from the other buffer; new requests keep
     * accumulating in `out` meanwhile. */
    size_t rest = c->out_len - done;
    char *tmp = c->wbuf;
    size_t tmp_cap = c->wbuf_cap;
    c->wbuf = c->out;
    c->wbuf_cap = c->out_cap;
    if (done) memmove(c->wbuf, c->wbuf + done, rest);
    c->out = tmp;
    c->out_cap = tmp_cap;
    c->out_len = 0;
    c->writing = true;
    uv_buf_t wb = uv_buf_init(c->wbuf, (unsigned)rest);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &wb, 1, on_write) != 0) {
        c->writing = false;
        conn_fail(c, true);
    }
}

static void on_write(uv_write_t *req, int status) {
    lconn_t *c = req->handle->data;
    c->writing = false;
    if (status < 0) {
        if (status != UV_ECANCELED) conn_fail(c, true);
        return;
    }
    conn_flush(c);
}

/* ------------------------------------------------------------ recording */

static void worker_finish(worker_t *w);

/* The histogram of measured second `sec`, growing the series. */
static pd_hist_t *sec_hist(worker_t *w, size_t sec) {
    if (sec >= w->n_secs) {
        if (sec >= w->cap_secs) {
            size_t cap = w->cap_secs ? w->cap_secs * 2 : 64;
            while (cap <= sec) cap *= 2;
            pd_hist_t **s = realloc(w->secs, cap * sizeof *s);
            uint64_t *e = s ? realloc(w->sec_errors, cap * sizeof *e) : NULL;
            if (s) w->secs = s;
            if (!s || !e) {
                w->oom = true;
                return NULL;
            }
            w->sec_errors = e;
            w->cap_secs = cap;
        }
        while (w->n_secs <= sec) {
            pd_hist_t *h = malloc(sizeof *h);
            if (!h) {
                w->oom = true;
                return NULL;
            }
            pd_hist_init(h);
            w->secs[w->n_secs] = h;
            w->sec_errors[w->n_secs] = 0;
            w->n_secs++;
        }
    }
    if (sec > w->cur_sec) {
        /* A second has closed: publish its p99 for the progress line. */
        if (w->cur_sec < w->n_secs)
            atomic_store_explicit(&w->a_p99, pd_hist_percentile(w->secs[w->cur_sec], 99),
                                  memory_order_relaxed);
        w->cur_sec = sec;
    }
    return w->secs[sec];
}

/* True if t (ns) falls in the measured phase. */
static bool in_measure(const worker_t *w, uint64_t t) {
    return t >= w->t_measure && t < w->t_end;
}

static void record(worker_t *w, const req_t *r, unsigned code, uint64_t now) {
    w->replies++;
    /* What the server answered during the measured phase, by when the
     * reply came: behind an open-loop backlog every reply may belong to a
     * request due in the warm-up, and the server's throughput must still
     * show. */
    if ((r->metric < PD__M_ACCEPT || r->metric > PD__M_RATE) && in_measure(w, now)) w->sched_done++;
    /* Throughput: replies that came in the measured phase, whenever they
     * were due -- not those that came in the drain. */
    if (in_measure(w, now)) {
        w->done[r->metric]++;
        w->done[PD__M_ALL]++;
    }
    if (!r->measured) return;
    uint64_t lat = now > r->t_intended ? now - r->t_intended : 0;
    pd_hist_record(&w->hist[r->metric], lat);
    pd_hist_record(&w->hist[PD__M_ALL], lat);
    /* The time series is of the measured phase: a reply of the drain is
     * in the rows, not in a second it would make look busier. */
    size_t sec = now > w->t_measure ? (size_t)((now - w->t_measure) / 1000000000ULL) : 0;
    pd_hist_t *h = in_measure(w, now) ? sec_hist(w, sec) : NULL;
    if (h) pd_hist_record(h, lat);
    if (code) {
        w->errors[r->metric]++;
        w->errors[PD__M_ALL]++;
        w->by_code[code < PD__LOAD_CODES ? code : PD__LOAD_OTHER]++;
        if (h) w->sec_errors[sec]++;
        atomic_fetch_add_explicit(&w->a_errors, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&w->a_done, 1, memory_order_relaxed);
}

/* A request that will get no reply. */
static void record_lost(worker_t *w, const req_t *r) {
    if (!r->measured) return;
    w->errors[r->metric]++;
    w->errors[PD__M_ALL]++;
    w->by_code[PD__LOAD_LOST]++;
    atomic_fetch_add_explicit(&w->a_errors, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- sending */

/* Claim the ring slot of the next msgid; NULL when the ring is full. */
static req_t *claim(lconn_t *c) {
    req_t *r = &c->ring[c->next_msgid & c->mask];
    if (r->live) return NULL;
    memset(r, 0, sizeof *r);
    r->msgid = c->next_msgid++;
    r->live = true;
    if (c->w->inflight == 0) c->w->last_progress = uv_hrtime();
    c->inflight++;
    c->w->inflight++;
    return r;
}

static void unclaim(lconn_t *c, req_t *r) {
    r->live = false;
    c->next_msgid--;
    c->inflight--;
    c->w->inflight--;
}

/* Send one request of metric m with params from a blob. */
static bool send_blob(lconn_t *c, req_t *r, const blob_t *b) {
    const pd__load_pool_t *p = c->w->sh->pool;
    if (!put_header(c, r->msgid, metric_method[r->metric], b->len)) return false;
    memcpy(c->out + c->out_len, p->sb.data + b->off, b->len);
    c->out_len += b->len;
    return true;
}

/* Send a new command drawn from the mix, due at t. */
static bool send_new(lconn_t *c, uint64_t t) {
    worker_t *w = c->w;
    const pd__load_opts_t *o = w->sh->o;
    const pd__load_pool_t *p = w->sh->pool;
    req_t *r = claim(c);
    if (!r) return false;
    r->t_intended = t;
    r->measured = in_measure(w, t);
    pd__cmd cmd = pd__mix_pick(&o->mix, pd__bench_rng_unit(&c->rng));
    size_t i = (size_t)(pd__bench_rng_next(&c->rng) & (POOL_SIZE - 1));
    bool ok = true;
    switch (cmd) {
        case PD__CMD_NEARBY:
            r->metric = PD__M_NEARBY;
            ok = send_blob(c, r, &p->nearby[i]);
            break;
        case PD__CMD_UPDATE:
            r->metric = PD__M_UPDATE;
            ok = send_blob(c, r, &p->update[i]);
            break;
        case PD__CMD_GET:
            r->metric = PD__M_GET;
            ok = send_blob(c, r, &p->get[i]);
            break;
        case PD__CMD_ORDER: {
            r->metric = PD__M_CREATE;
            r->t_first = t;
            r->order_id = w->sh->id_base + ((uint64_t)c->index << 24) + (c->order_seq++ & 0xffffff);
            const blob_t *b = &p->create[i];
            if (!put_header(c, r->msgid, "order.create", b->len + 16)) {
                ok = false;
                break;
            }
            msgpack_packer pk;
            msgpack_packer_init(&pk, c, out_write);
            msgpack_pack_map(&pk, b->pairs + 1);
            pk_str(&pk, "id");
            msgpack_pack_uint64(&pk, r->order_id);
            ok = out_reserve(c, b->len);
            if (ok) {
                memcpy(c->out + c->out_len, p->sb.data + b->off, b->len);
                c->out_len += b->len;
            }
            break;
        }
        default:
            r->metric = PD__M_PING;
            ok = put_header(c, r->msgid, "ping", 1);
            if (ok) c->out[c->out_len++] = (char)0x80;
            break;
    }
    if (!ok) {
        unclaim(c, r);
        w->oom = true;
        return false;
    }
    if (r->measured) w->sent_measured++;
    return true;
}

/* The next step of an order's life cycle, after `prev` succeeded. */
static bool send_step(lconn_t *c, const req_t *prev, pd__metric m, uint64_t volunteer,
                      uint64_t now) {
    worker_t *w = c->w;
    req_t *r = claim(c);
    if (!r) return false;
    r->metric = (uint8_t)m;
    r->t_intended = now;
    r->t_first = prev->t_first;
    r->order_id = prev->order_id;
    r->measured = in_measure(w, now) && !w->stopping;
    if (!put_header(c, r->msgid, metric_method[m], 48)) {
        unclaim(c, r);
        w->oom = true;
        return false;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, c, out_write);
    msgpack_pack_map(&pk, m == PD__M_COMPLETE ? 1 : 2);
    pk_str(&pk, "id");
    msgpack_pack_uint64(&pk, r->order_id);
    if (m == PD__M_ACCEPT) {
        pk_str(&pk, "volunteer");
        msgpack_pack_uint64(&pk, volunteer);
    } else if (m == PD__M_RATE) {
        pk_str(&pk, "score");
        msgpack_pack_uint8(&pk, (uint8_t)(1 + pd__bench_rng_next(&c->rng) % 5));
    }
    if (r->measured) w->sent_measured++;
    return true;
}

static uint64_t next_due(const lconn_t *c) {
    return (uint64_t)(c->t0 + (double)c->n_sched * c->interval);
}

static void on_idle(uv_idle_t *h);

/* Wake up for a send due at t: the timerfd fires spin_us early, and the
 * rest is spent polling (an active idle handle makes libuv poll without
 * blocking), so sends leave on time without sleeping through the wake-up
 * latency of the scheduler. With spin_us = 0 the timerfd fires at t. */
static void arm(worker_t *w, uint64_t t) {
    if (t >= w->armed) return;
    w->armed = t;
    uint64_t spin = (uint64_t)(w->sh->o->spin_us * 1000.0);
    uint64_t at = t > spin ? t - spin : 1;
    if (spin && at <= uv_hrtime()) {
        if (!w->spinning) {
            uv_idle_start(&w->idle, on_idle);
            w->spinning = true;
        }
        return;
    }
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(at / 1000000000ULL);
    its.it_value.tv_nsec = (long)(at % 1000000000ULL);
    if (timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) w->armed = UINT64_MAX;
}

static bool quota_left(const worker_t *w) {
    return !w->quota || w->sent_measured < w->quota;
}

static void on_drain_timeout(uv_timer_t *t);

/* The drain: up to drain_s (at least 1 ms) for the replies still out;
 * then what has not come is LOST. */
static void start_drain(worker_t *w) {
    uint64_t ms = (uint64_t)(w->sh->o->drain_s * 1000.0);
    uv_timer_start(&w->end_timer, on_drain_timeout, ms ? ms : 1, 0);
}

/* Send what the discipline allows now. */
static void conn_pump(lconn_t *c, uint64_t now) {
    worker_t *w = c->w;
    uint32_t depth = w->sh->o->pipeline;
    if (c->dead) return;
    if (!w->sh->open_loop) {
        if (w->stopping) return;
        while (c->inflight < depth && quota_left(w))
            if (!send_new(c, now)) break;
    } else {
        /* After the end, requests that were due before it still go out
         * (late, and counted from when they were due): the backlog of an
         * overloaded run is part of its latency. */
        uint64_t due = next_due(c);
        while (c->inflight < depth && due <= now && due < w->t_end && quota_left(w)) {
            if (!send_new(c, due)) break;
            if (due >= w->t_measure) pd_hist_record(w->lag, now - due);
            c->n_sched++;
            due = next_due(c);
        }
        if (c->inflight < depth && due > now && due < w->t_end) arm(w, due);
    }
    if (w->quota && !quota_left(w) && !w->stopping) {
        /* -N: the last request is out, which ends the measured phase as
         * the end of -d does: the drain starts. */
        w->stopping = true;
        start_drain(w);
    }
}

/* --------------------------------------------------------------- replies */

static bool obj_is_str(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

/* The volunteer of the first live offer of an order reply; 0 if none. */
static uint64_t first_live_offer(const msgpack_object *order) {
    const msgpack_object *offers = pd_client_map_get(order, "offers");
    if (!offers || offers->type != MSGPACK_OBJECT_ARRAY) return 0;
    for (uint32_t i = 0; i < offers->via.array.size; i++) {
        const msgpack_object *of = &offers->via.array.ptr[i];
        if (!obj_is_str(pd_client_map_get(of, "state"), "live")) continue;
        const msgpack_object *v = pd_client_map_get(of, "volunteer");
        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return v->via.u64;
    }
    return 0;
}

static void lifecycle(lconn_t *c, const req_t *r, unsigned code, const msgpack_object *res,
                      uint64_t now) {
    worker_t *w = c->w;
    /* After the end the cycle still runs to its end, unmeasured, so that
     * the run leaves no order holding a volunteer on the server. */
    if (code || w->finishing) return;
    switch (r->metric) {
        case PD__M_CREATE: {
            const msgpack_object *st = pd_client_map_get(res, "state");
            if (obj_is_str(st, "expired")) {
                if (r->measured) w->orders_expired++;
                return;
            }
            uint64_t vol = first_live_offer(res);
            if (!vol) {
                if (r->measured) w->orders_unoffered++;
                return;
            }
            send_step(c, r, PD__M_ACCEPT, vol, now);
            return;
        }
        case PD__M_ACCEPT:
            send_step(c, r, PD__M_COMPLETE, 0, now);
            return;
        case PD__M_COMPLETE:
            send_step(c, r, PD__M_RATE, 0, now);
            return;
        case PD__M_RATE:
            if (in_measure(w, now)) w->done[PD__M_ORDER]++;
            if (r->measured && in_measure(w, r->t_first)) {
                pd_hist_record(&w->hist[PD__M_ORDER], now > r->t_first ? now - r->t_first : 0);
                w->orders_done++;
            }
            return;
        default:
            return;
    }
}

/* Handle one message; false on a protocol violation. */
static bool on_message(lconn_t *c, const msgpack_object *o, uint64_t now) {
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3) return false;
    const msgpack_object *a = o->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
    if (a[0].via.u64 == 2) return true; /* a notification: not ours to count */
    if (a[0].via.u64 != 1 || o->via.array.size != 4) return false;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX) return false;
    uint32_t msgid = (uint32_t)a[1].via.u64;
    req_t *r = &c->ring[msgid & c->mask];
    if (!r->live || r->msgid != msgid) return false;
    r->live = false;
    c->inflight--;
    c->w->inflight--;
    unsigned code = 0;
    if (a[2].type != MSGPACK_OBJECT_NIL) {
        code = PD__LOAD_OTHER;
        if (a[2].type == MSGPACK_OBJECT_ARRAY && a[2].via.array.size >= 1 &&
            a[2].via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            a[2].via.array.ptr[0].via.u64 > 0 && a[2].via.array.ptr[0].via.u64 < PD_ERR__END)
            code = (unsigned)a[2].via.array.ptr[0].via.u64;
    }
    req_t done = *r;
    record(c->w, &done, code, now);
    if (done.metric >= PD__M_CREATE && done.metric <= PD__M_RATE)
        lifecycle(c, &done, code, &a[3], now);
    return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    lconn_t *c = h->data;
    if (!msgpack_unpacker_reserve_buffer(&c->up, READ_CHUNK)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(msgpack_unpacker_buffer(&c->up),
                       (unsigned)msgpack_unpacker_buffer_capacity(&c->up));
}

static void worker_check_done(worker_t *w);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    lconn_t *c = s->data;
    worker_t *w = c->w;
    if (nread < 0) {
        conn_fail(c, true);
        worker_check_done(w);
        return;
    }
    if (nread == 0) return;
    uint64_t now = uv_hrtime();
    w->last_reply = now;
    w->last_progress = now;
    msgpack_unpacker_buffer_consumed(&c->up, (size_t)nread);
    int ret;
    while ((ret = msgpack_unpacker_execute(&c->up)) > 0) {
        msgpack_object o = msgpack_unpacker_data(&c->up);
        bool ok = on_message(c, &o, now);
        msgpack_unpacker_reset_zone(&c->up);
        msgpack_unpacker_reset(&c->up);
        if (!ok) {
            fprintf(stderr, "load: connection %u: unexpected message from the server\n", c->index);
            conn_fail(c, true);
            worker_check_done(w);
            return;
        }
    }
    if (ret < 0) {
        fprintf(stderr, "load: connection %u: malformed MessagePack from the server\n", c->index);
        conn_fail(c, true);
        worker_check_done(w);
        return;
    }
    conn_pump(c, now);
    conn_flush(c);
    worker_check_done(w);
}

/* ------------------------------------------------------- life and death */

static void on_closed(uv_handle_t *h) {
    (void)h;
}

static void conn_fail(lconn_t *c, bool lost) {
    if (c->dead) return;
    c->dead = true;
    worker_t *w = c->w;
    if (lost && !w->finishing) w->conns_lost++;
    for (uint32_t i = 0; i <= c->mask; i++) {
        req_t *r = &c->ring[i];
        if (!r->live) continue;
        r->live = false;
        record_lost(w, r);
        c->inflight--;
        w->inflight--;
    }
    w->live_conns--;
    if (c->open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

/* ------------------------------------------------------ unsent requests */

/* The metric of a command drawn from the mix (an order starts with its
 * create). */
static pd__metric cmd_metric(pd__cmd cmd) {
    switch (cmd) {
        case PD__CMD_NEARBY:
            return PD__M_NEARBY;
        case PD__CMD_UPDATE:
            return PD__M_UPDATE;
        case PD__CMD_GET:
            return PD__M_GET;
        case PD__CMD_ORDER:
            return PD__M_CREATE;
        default:
            return PD__M_PING;
    }
}

/* Draws of unsent requests made one by one per call; beyond them the rest
 * is shared by the weights (a rate far over capacity leaves billions). */
#define LOST_DRAWS (1u << 20)

/* n measured requests that c never sent: LOST, each in the row of the
 * command c's generator would have drawn for it (the draws send_new makes,
 * in the same order), the same as `all`. */
static void lose_unsent(worker_t *w, lconn_t *c, uint64_t n) {
    const pd__mix_t *mix = &w->sh->o->mix;
    uint64_t by[PD__CMD__COUNT] = {0};
    uint64_t drawn = n < LOST_DRAWS ? n : LOST_DRAWS;
    for (uint64_t i = 0; i < drawn; i++) {
        by[pd__mix_pick(mix, pd__bench_rng_unit(&c->rng))]++;
        (void)pd__bench_rng_next(&c->rng); /* the payload's draw */
    }
    uint64_t rest = n - drawn, given = 0;
    int heaviest = 0;
    for (int k = 0; k < PD__CMD__COUNT && rest; k++) {
        uint64_t share = (uint64_t)((double)rest * (mix->weight[k] / mix->total));
        if (share > rest - given) share = rest - given;
        by[k] += share;
        given += share;
        if (mix->weight[k] > mix->weight[heaviest]) heaviest = k;
    }
    by[heaviest] += rest - given;
    for (int k = 0; k < PD__CMD__COUNT; k++) w->errors[cmd_metric((pd__cmd)k)] += by[k];
    w->errors[PD__M_ALL] += n;
    w->by_code[PD__LOAD_LOST] += n;
    atomic_fetch_add_explicit(&w->a_errors, n, memory_order_relaxed);
}

/* The first request of c's schedule due at or after t (the same rounding
 * as next_due). */
static uint64_t first_due_at(const lconn_t *c, uint64_t t) {
    if ((double)t <= c->t0) return 0;
    uint64_t n = (uint64_t)(((double)t - c->t0) / c->interval);
    while (n > 0 && (uint64_t)(c->t0 + (double)(n - 1) * c->interval) >= t) n--;
    while ((uint64_t)(c->t0 + (double)n * c->interval) < t) n++;
    return n;
}

/* When the worker ends, every measured request that never left is LOST:
 * with -N those of the N not sent; in an open loop the rest of the
 * measured schedule, dead connections' included (a connection that closed
 * does not make its users go away). Counted from the schedule, not request
 * by request: at a rate far beyond the server's that is billions of
 * requests, and counting them one at a time once kept a 1-second run
 * going for minutes. */
static void count_unsent(worker_t *w) {
    if (w->quota) {
        if (w->sent_measured >= w->quota || !w->n_conns) return;
        uint64_t n = w->quota - w->sent_measured;
        for (size_t i = 0; i < w->n_conns; i++)
            lose_unsent(w, w->conns[i], n / w->n_conns + (i < n % w->n_conns ? 1 : 0));
        w->sent_measured = w->quota;
        return;
    }
    if (!w->sh->open_loop || w->t_end == 0) return;
    for (size_t i = 0; i < w->n_conns; i++) {
        lconn_t *c = w->conns[i];
        uint64_t end = first_due_at(c, w->t_end);
        uint64_t from = first_due_at(c, w->t_measure);
        if (from < c->n_sched) from = c->n_sched;
        if (end > from) lose_unsent(w, c, end - from);
        if (end > c->n_sched) c->n_sched = end;
    }
}

static void worker_finish(worker_t *w) {
    if (w->finishing) return;
    w->t_stop = uv_hrtime();
    count_unsent(w);
    w->finishing = true;
    w->stopping = true;
    for (size_t i = 0; i < w->n_conns; i++) conn_fail(w->conns[i], false);
    if (w->handles_open) {
        uv_close((uv_handle_t *)&w->end_timer, on_closed);
        if (w->tfd >= 0) {
            uv_close((uv_handle_t *)&w->tpoll, on_closed);
            uv_close((uv_handle_t *)&w->idle, on_closed);
        }
        if (w->sh->o->busy_poll) uv_close((uv_handle_t *)&w->poll_idle, on_closed);
        w->handles_open = false;
    }
}

/* Open loop: requests due before the end that have not been sent. */
static bool backlog(const worker_t *w) {
    if (!w->sh->open_loop) return false;
    for (size_t i = 0; i < w->n_conns; i++) {
        const lconn_t *c = w->conns[i];
        if (!c->dead && next_due(c) < w->t_end && quota_left(w)) return true;
    }
    return false;
}

static void worker_check_done(worker_t *w) {
    if (w->finishing) return;
    if (w->live_conns == 0 || w->oom || (w->stopping && w->inflight == 0 && !backlog(w)))
        worker_finish(w);
}

static void on_drain_timeout(uv_timer_t *t) {
    /* What has not come by now is lost; what never left, too (counted as
     * the worker finishes). */
    worker_finish(t->data);
}

static void on_end(uv_timer_t *t) {
    worker_t *w = t->data;
    w->stopping = true;
    worker_check_done(w);
    if (!w->finishing) start_drain(w);
}

/* Send what is due on every connection; the pumps re-arm. */
static void pace(worker_t *w) {
    w->armed = UINT64_MAX;
    if (w->spinning) {
        uv_idle_stop(&w->idle);
        w->spinning = false;
    }
    uint64_t now = uv_hrtime();
    for (size_t i = 0; i < w->n_conns; i++) {
        conn_pump(w->conns[i], now);
        conn_flush(w->conns[i]);
    }
    worker_check_done(w);
}

static void on_tick(uv_poll_t *p, int status, int events) {
    (void)status;
    (void)events;
    worker_t *w = p->data;
    uint64_t expirations;
    if (read(w->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) {
        /* Nothing to do: pace() re-arms either way. */
    }
    pace(w);
}

/* --busy-poll: an active idle handle is enough, libuv then polls with a
 * zero timeout instead of sleeping; there is nothing to do in it. */
static void on_poll_idle(uv_idle_t *h) {
    (void)h;
}

static void on_idle(uv_idle_t *h) {
    worker_t *w = h->data;
    if (w->armed != UINT64_MAX && uv_hrtime() < w->armed) return;
    pace(w);
}

/* -N before the last request is out: a server that stops answering
 * while every -P slot waits on it would stop the run for good, so it gives
 * up once requests are out and no reply has come for drain_s (at least
 * 1 ms). */
static void on_stall_check(uv_timer_t *t) {
    worker_t *w = t->data;
    if (w->stopping || w->finishing) return; /* the drain has taken over */
    uint64_t now = uv_hrtime(), bound = (uint64_t)(w->sh->o->drain_s * 1e9);
    if (bound < 1000000) bound = 1000000;
    uint64_t wait = bound;
    if (w->inflight > 0) {
        if (now - w->last_progress >= bound) {
            worker_finish(w);
            return;
        }
        wait = w->last_progress + bound - now;
    }
    uv_timer_start(&w->end_timer, on_stall_check, (wait + 999999) / 1000000, 0);
}

/* Duration mode: the end of the measured phase. Requests mode: the
 * give-up watch until the last request is out (then the drain). */
static void start_end_timer(worker_t *w, uint64_t now) {
    if (w->t_end == UINT64_MAX) {
        if (!w->stopping) {
            w->last_progress = now;
            on_stall_check(&w->end_timer);
        }
        return;
    }
    uint64_t ms = w->t_end > now ? (w->t_end - now + 999999) / 1000000 : 0;
    uv_timer_start(&w->end_timer, on_end, ms, 0);
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    shared_t *sh = w->sh;
    const pd__load_opts_t *o = sh->o;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    for (size_t i = 0; i < w->n_conns; i++) {
        lconn_t *c = w->conns[i];
        uv_tcp_init(&w->loop, &c->tcp);
        c->tcp.data = c;
        if (uv_tcp_open(&c->tcp, c->fd) != 0) {
            close(c->fd);
            c->open = true;
            conn_fail(c, true);
            continue;
        }
        c->open = true;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    uv_timer_init(&w->loop, &w->end_timer);
    w->end_timer.data = w;
    if (sh->open_loop) {
        uv_poll_init(&w->loop, &w->tpoll, w->tfd);
        w->tpoll.data = w;
        uv_poll_start(&w->tpoll, UV_READABLE, on_tick);
        uv_idle_init(&w->loop, &w->idle);
        w->idle.data = w;
    }
    if (o->busy_poll) {
        uv_idle_init(&w->loop, &w->poll_idle);
        w->poll_idle.data = w;
        uv_idle_start(&w->poll_idle, on_poll_idle);
    }
    w->handles_open = true;

    pthread_barrier_wait(&sh->barrier); /* everyone connected */
    pthread_barrier_wait(&sh->barrier); /* t_start published */
    w->t_start = atomic_load(&sh->t_start);
    w->t_measure = w->t_start + (uint64_t)(o->warmup_s * 1e9);
    w->t_end = o->requests ? UINT64_MAX : w->t_measure + (uint64_t)(o->duration_s * 1e9);
    w->armed = UINT64_MAX;
    uint64_t now = uv_hrtime();
    for (size_t i = 0; i < w->n_conns; i++) {
        lconn_t *c = w->conns[i];
        if (sh->open_loop) {
            double per_conn = o->rate / (double)o->connections;
            c->interval = 1e9 / per_conn;
            /* Stagger the connections across one interval. */
            c->t0 = (double)w->t_start + c->interval * (double)c->index / (double)o->connections;
        }
        conn_pump(c, now);
        conn_flush(c);
    }
    start_end_timer(w, now);
    worker_check_done(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (!w->finishing) {
        /* The loop ran dry without the end being reached (every handle
         * gone): close what is left so the loop can be closed. */
        worker_finish(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    atomic_store(&w->a_finished, true);
    return NULL;
}

/* ------------------------------------------------------------ connecting */

static int dial(const char *host, uint16_t port, char *why, size_t cap) {
    char ps[8];
    snprintf(ps, sizeof ps, "%u", (unsigned)port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, ps, &hints, &res);
    if (gai != 0) {
        snprintf(why, cap, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(why, cap, "cannot connect to %s:%u: %s", host, (unsigned)port, strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* `auth` on a fresh blocking socket, before libuv takes it over. */
static int do_auth(int fd, const char *token, char *why, size_t cap) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 0);
    pk_str(&pk, "auth");
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "token");
    pk_str(&pk, token);
    size_t off = 0;
    while (off < sb.size) {
        ssize_t n = write(fd, sb.data + off, sb.size - off);
        if (n <= 0) {
            msgpack_sbuffer_destroy(&sb);
            snprintf(why, cap, "auth: write: %s", strerror(errno));
            return -1;
        }
        off += (size_t)n;
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacker up;
    if (!msgpack_unpacker_init(&up, 4096)) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    msgpack_unpacked m;
    msgpack_unpacked_init(&m);
    int rc = -1;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0) {
            snprintf(why, cap, "auth: no reply within 5 s");
            break;
        }
        msgpack_unpacker_reserve_buffer(&up, 4096);
        ssize_t n = read(fd, msgpack_unpacker_buffer(&up), msgpack_unpacker_buffer_capacity(&up));
        if (n <= 0) {
            snprintf(why, cap, "auth: connection closed by the server");
            break;
        }
        msgpack_unpacker_buffer_consumed(&up, (size_t)n);
        if (msgpack_unpacker_next(&up, &m) != MSGPACK_UNPACK_SUCCESS) continue;
        const msgpack_object *o = &m.data;
        if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4 &&
            o->via.array.ptr[2].type == MSGPACK_OBJECT_NIL) {
            rc = 0;
        } else {
            snprintf(why, cap, "auth refused by the server (check -a TOKEN)");
        }
        break;
    }
    msgpack_unpacked_destroy(&m);
    msgpack_unpacker_destroy(&up);
    return rc;
}

/* ------------------------------------------------------------------ run */

static void free_conn(lconn_t *c) {
    if (!c) return;
    if (c->up_ok) msgpack_unpacker_destroy(&c->up);
    free(c->out);
    free(c->wbuf);
    free(c->ring);
    free(c);
}

static void progress_line(worker_t *ws, size_t nw, uint64_t t_start, double warmup_s,
                          uint64_t *prev_done, uint64_t *prev_t) {
    uint64_t now = pd__bench_now_ns();
    uint64_t done = 0, errors = 0, p99 = 0;
    for (size_t i = 0; i < nw; i++) {
        done += atomic_load_explicit(&ws[i].a_done, memory_order_relaxed);
        errors += atomic_load_explicit(&ws[i].a_errors, memory_order_relaxed);
        uint64_t p = atomic_load_explicit(&ws[i].a_p99, memory_order_relaxed);
        if (p > p99) p99 = p;
    }
    double el = (double)(now - t_start) / 1e9;
    double rate = now > *prev_t ? (double)(done - *prev_done) * 1e9 / (double)(now - *prev_t) : 0;
    if (el < warmup_s)
        fprintf(stderr, "\rload: %6.1fs  warming up ...                                       ",
                el);
    else if (p99 == 0) /* no measured second has closed yet */
        fprintf(stderr,
                "\rload: %6.1fs  %10.0f req/s  p99         - us  done %11llu  errors %llu   ", el,
                rate, (unsigned long long)done, (unsigned long long)errors);
    else
        fprintf(stderr, "\rload: %6.1fs  %10.0f req/s  p99 %9.1f us  done %11llu  errors %llu   ",
                el, rate, (double)p99 / 1000.0, (unsigned long long)done,
                (unsigned long long)errors);
    fflush(stderr);
    *prev_done = done;
    *prev_t = now;
}

static pd_err bad(char *why, size_t cap, const char *msg) {
    snprintf(why, cap, "%s", msg);
    return PD_ERR_BAD_ARG;
}

pd_err pd__load_run(const pd__load_opts_t *o, const pd__load_pool_t *pool, pd__load_out_t *out,
                    char *why, size_t cap) {
    memset(out, 0, sizeof *out);
    for (int m = 0; m < PD__M__COUNT; m++) pd_hist_init(&out->hist[m]);
    pd_hist_init(&out->send_lag);
    if (o->connections == 0 || o->pipeline == 0 || o->threads == 0)
        return bad(why, cap, "connections, pipeline and threads must be >= 1");
    if (o->connections > 65535) return bad(why, cap, "connections must be <= 65535");
    if (o->pipeline > 1u << 20) return bad(why, cap, "pipeline must be <= 1048576");
    if (!o->requests && !(o->duration_s > 0)) return bad(why, cap, "duration must be > 0");
    if (!(o->warmup_s >= 0) || !(o->drain_s >= 0) || !(o->rate >= 0))
        return bad(why, cap, "warm-up, drain and rate must be >= 0");
    bool ping_only = true;
    for (int cmd = 1; cmd < PD__CMD__COUNT; cmd++) ping_only &= !(o->mix.weight[cmd] > 0);
    if (!ping_only && !pool) return bad(why, cap, "the mix needs a county (payload pool)");
    pd__load_pool_t *own_pool = NULL;
    if (!pool) {
        pd__load_opts_t po = *o;
        pd_err err = pd__load_pool_create(NULL, NULL, &po, &own_pool);
        if (err) return err;
        pool = own_pool;
    }

    uint32_t nt = o->threads < o->connections ? o->threads : o->connections;
    shared_t sh;
    memset(&sh, 0, sizeof sh);
    sh.o = o;
    sh.pool = pool;
    sh.open_loop = o->rate > 0;
    /* Order ids: 20 bits of (time, run number) above 16 bits of
     * connection and 24 of sequence, so runs against one server (a sweep,
     * repeated runs) do not reuse ids of orders the server still keeps. */
    static _Atomic unsigned run_no;
    uint64_t stamp = ((uint64_t)time(NULL) * 64 + atomic_fetch_add(&run_no, 1)) & 0xfffffULL;
    sh.id_base = (stamp << 40) + 1;
    worker_t *ws = calloc(nt, sizeof *ws);
    lconn_t **conns = calloc(o->connections, sizeof *conns);
    pd_err err = PD_OK;
    if (!ws || !conns) {
        free(ws);
        free(conns);
        pd__load_pool_destroy(own_pool);
        return PD_ERR_NOMEM;
    }
    uint32_t ring = 2;
    while (ring < o->pipeline + 1) ring <<= 1;

    /* Connect everything first, in this thread. */
    for (uint32_t i = 0; i < o->connections && !err; i++) {
        lconn_t *c = calloc(1, sizeof *c);
        if (!c) {
            err = PD_ERR_NOMEM;
            break;
        }
        conns[i] = c;
        c->index = i;
        c->fd = -1;
        c->mask = ring - 1;
        c->ring = calloc(ring, sizeof *c->ring);
        c->up_ok = msgpack_unpacker_init(&c->up, READ_CHUNK);
        c->out = malloc(OUT_INITIAL);
        c->out_cap = OUT_INITIAL;
        c->wbuf = malloc(OUT_INITIAL);
        c->wbuf_cap = OUT_INITIAL;
        pd__bench_rng_seed(&c->rng, pd__bench_mix64(o->seed, i));
        c->next_msgid = 1;
        if (!c->ring || !c->up_ok || !c->out || !c->wbuf) {
            err = PD_ERR_NOMEM;
            break;
        }
        c->fd = dial(o->host, o->port, why, cap);
        if (c->fd < 0) {
            err = PD_ERR_IO;
            break;
        }
        if (o->token && do_auth(c->fd, o->token, why, cap) != 0) {
            err = PD_ERR_IO;
            break;
        }
    }

    uint32_t started = 0;
    if (!err) {
        pthread_barrier_init(&sh.barrier, NULL, nt + 1);
        for (uint32_t t = 0; t < nt; t++) {
            worker_t *w = &ws[t];
            w->sh = &sh;
            w->tfd = -1;
            w->hist = malloc(PD__M__COUNT * sizeof *w->hist);
            w->lag = malloc(sizeof *w->lag);
            w->conns = calloc(o->connections / nt + 1, sizeof *w->conns);
            if (!w->hist || !w->lag || !w->conns) {
                err = PD_ERR_NOMEM;
                break;
            }
            for (int m = 0; m < PD__M__COUNT; m++) pd_hist_init(&w->hist[m]);
            pd_hist_init(w->lag);
            for (uint32_t i = t; i < o->connections; i += nt) {
                w->conns[w->n_conns++] = conns[i];
                conns[i]->w = w;
            }
            w->live_conns = (uint32_t)w->n_conns;
            if (o->requests) w->quota = o->requests / nt + (t < o->requests % nt ? 1 : 0);
            if (sh.open_loop) {
                w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
                if (w->tfd < 0) {
                    snprintf(why, cap, "timerfd: %s", strerror(errno));
                    err = PD_ERR_IO;
                    break;
                }
            }
            if (uv_loop_init(&w->loop) != 0) {
                err = PD_ERR_NOMEM;
                break;
            }
            w->loop_ok = true;
        }
        if (err) {
            pthread_barrier_destroy(&sh.barrier);
        } else {
            for (uint32_t t = 0; t < nt; t++) {
                if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0) break;
                started++;
            }
            if (started < nt) {
                /* Cannot happen short of resource exhaustion; the barrier
                 * would never open, so give up before using it. */
                snprintf(why, cap, "cannot start threads");
                fprintf(stderr, "load: %s\n", why);
                abort();
            }
            pthread_barrier_wait(&sh.barrier);
            uint64_t t_start = uv_hrtime();
            atomic_store(&sh.t_start, t_start);
            pthread_barrier_wait(&sh.barrier);

            bool live = o->progress && pd__bench_isatty(stderr);
            uint64_t prev_done = 0, prev_t = pd__bench_now_ns(), last_print = prev_t;
            for (;;) {
                bool all = true;
                for (uint32_t t = 0; t < nt; t++) all &= atomic_load(&ws[t].a_finished);
                if (all) break;
                /* 5 ms: the run returns within 5 ms of its last reply
                 * (--replica times the replica's catch-up from there). */
                struct timespec ts = {0, 5 * 1000000L};
                nanosleep(&ts, NULL);
                uint64_t now = pd__bench_now_ns();
                if (live && now - last_print >= 1000000000ULL) {
                    progress_line(ws, nt, t_start, o->warmup_s, &prev_done, &prev_t);
                    last_print = now;
                }
            }
            if (live) fprintf(stderr, "\n");
            for (uint32_t t = 0; t < nt; t++) pthread_join(ws[t].th, NULL);
            pthread_barrier_destroy(&sh.barrier);

            /* Merge. */
            uint64_t t_measure = t_start + (uint64_t)(o->warmup_s * 1e9);
            uint64_t last = 0, stop = 0;
            size_t n_secs = 0;
            bool oom = false;
            for (uint32_t t = 0; t < nt; t++) {
                worker_t *w = &ws[t];
                for (int m = 0; m < PD__M__COUNT; m++) {
                    pd_hist_merge(&out->hist[m], &w->hist[m]);
                    out->errors[m] += w->errors[m];
                    out->done[m] += w->done[m];
                }
                for (int k = 0; k < PD__LOAD_CODES; k++) out->by_code[k] += w->by_code[k];
                pd_hist_merge(&out->send_lag, w->lag);
                out->orders_done += w->orders_done;
                out->orders_expired += w->orders_expired;
                out->orders_unoffered += w->orders_unoffered;
                out->commands_done += w->sched_done;
                out->replies += w->replies;
                out->conns_lost += w->conns_lost;
                if (w->last_reply > last) last = w->last_reply;
                if (w->t_stop > stop) stop = w->t_stop;
                if (w->n_secs > n_secs) n_secs = w->n_secs;
                oom |= w->oom;
            }
            out->t_measure_ns = t_measure;
            out->t_last_reply_ns = last;
            if (o->requests) {
                out->measured_s = last > t_measure ? (double)(last - t_measure) / 1e9 : 0;
            } else {
                out->measured_s = o->duration_s;
                /* A closed loop ends when its connections do (the server
                 * went away): it measured until then. An open loop's
                 * schedule runs to the end either way (what was not sent
                 * is LOST), so its measured phase is -d. */
                if (!sh.open_loop && stop < t_measure + (uint64_t)(o->duration_s * 1e9))
                    out->measured_s = stop > t_measure ? (double)(stop - t_measure) / 1e9 : 0;
            }
            /* The series covers the measured phase only; its last second
             * may be part of one (-d 2.5, a closed loop cut short). */
            size_t full = (size_t)ceil(out->measured_s);
            if (n_secs > full) n_secs = full;
            out->secs = calloc(n_secs ? n_secs : 1, sizeof *out->secs);
            pd_hist_t *tmp = malloc(sizeof *tmp);
            if (out->secs && tmp) {
                out->n_secs = n_secs;
                for (size_t s = 0; s < n_secs; s++) {
                    pd_hist_init(tmp);
                    for (uint32_t t = 0; t < nt; t++) {
                        if (s < ws[t].n_secs) {
                            pd_hist_merge(tmp, ws[t].secs[s]);
                            out->secs[s].errors += ws[t].sec_errors[s];
                        }
                    }
                    out->secs[s].count = tmp->count;
                    double span = out->measured_s - (double)s;
                    out->secs[s].span_s = span < 1 ? (span > 0 ? span : 0) : 1;
                    out->secs[s].p50_ns = pd_hist_percentile(tmp, 50);
                    out->secs[s].p99_ns = pd_hist_percentile(tmp, 99);
                    out->secs[s].max_ns = tmp->max;
                }
            } else {
                oom = true;
            }
            free(tmp);
            if (oom) {
                snprintf(why, cap, "out of memory during the run");
                err = PD_ERR_NOMEM;
            }
        }
    }

    for (uint32_t t = 0; t < nt; t++) {
        worker_t *w = &ws[t];
        if (w->loop_ok) uv_loop_close(&w->loop);
        if (w->tfd >= 0) close(w->tfd);
        for (size_t s = 0; s < w->n_secs; s++) free(w->secs[s]);
        free(w->secs);
        free(w->sec_errors);
        free(w->hist);
        free(w->lag);
        free(w->conns);
    }
    for (uint32_t i = 0; i < o->connections; i++) {
        /* Sockets never handed to libuv are still ours to close. */
        if (conns[i] && !conns[i]->open && conns[i]->fd >= 0) close(conns[i]->fd);
        free_conn(conns[i]);
    }
    free(conns);
    free(ws);
    pd__load_pool_destroy(own_pool);
    return err;
}

void pd__load_out_deinit(pd__load_out_t *out) {
    free(out->secs);
    out->secs = NULL;
    out->n_secs = 0;
}
