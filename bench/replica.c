/* replica.c -- the replica a load run watches (replica.h).
 *
 * A thread of its own reads, every PD__REPLICA_EVERY_MS, the primary's
 * `stats` (replication.committed_seq and stream_seq) and then the
 * replica's (replication.applied_seq and applied), each over a blocking
 * connection of its own, and keeps every sample. Why `stats` and not
 * `digest`, whose seq is the same figure: `digest` hashes the whole state
 * on the server's loop -- tens of milliseconds at 10^5 volunteers -- so
 * polling it twenty times a second would be a second load on both
 * servers, while `stats` costs the loop about 0.1 ms. The digests are
 * read once, at the end, when both sides are at the same seq.
 *
 * Lag in records: the primary's committed seq minus the replica's applied
 * one, read one after the other (the primary first, so a replica that is
 * in step can look ahead by what one round trip commits: clamped to 0).
 *
 * Lag in time: the primary's samples are a timeline of (time, committed
 * seq), and when it committed record s is interpolated between the two
 * samples around it (the commit rate is taken as even over one interval).
 * A replica sample (t, applied a) behind its tick's primary seq has lag
 * t - T(a + 1): how long the first record it lacks has been committed and
 * not applied -- how stale a read from it is. In step, the lag is 0.
 */
#include "replica.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "county.h"
#include "paidan/client.h"

/* One tick: the primary's figures, then the replica's. */
typedef struct sample_s {
    uint64_t tp_ns;   /* the primary's reply (midpoint of the call) */
    uint64_t tr_ns;   /* the replica's reply (midpoint of the call) */
    uint64_t pseq;    /* primary: committed_seq */
    uint64_t sseq;    /* primary: stream_seq (acknowledged by the stream) */
    uint64_t rseq;    /* replica: applied_seq */
    uint64_t applied; /* replica: records applied since it started */
    bool ok;          /* both answered */
} sample_t;

/* The replication section of one `stats` reply. */
typedef struct repl_stats_s {
    char role[16];
    uint64_t committed, stream, applied_seq, applied;
    bool halted;
    char error[160];
} repl_stats_t;

struct pd__replica_s {
    char pwho[300];       /* "primary HOST:PORT", for messages */
    char rwho[300];       /* "replica HOST:PORT" */
    char raddr[280];      /* "HOST:PORT" of the replica */
    pd_client_t *cp, *cr; /* primary, replica */
    sample_t *s;          /* every sample, in time order */
    size_t n, cap;
    bool oom; /* a sample was dropped for memory */
    pthread_t th;
    bool th_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t t_measure_ns, t_measure_end_ns; /* the measured phase */
    uint64_t t_end_ns;                       /* the load's last reply */
};

/* ------------------------------------------------------------ reading */

static uint64_t obj_u64(const msgpack_object *map, const char *key) {
    const msgpack_object *v = pd_client_map_get(map, key);
    if (!v) return 0;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return v->via.u64;
    if (v->type == MSGPACK_OBJECT_FLOAT64 && v->via.f64 > 0) return (uint64_t)v->via.f64;
    return 0;
}

static void obj_str(const msgpack_object *map, const char *key, char *buf, size_t cap) {
    const msgpack_object *v = pd_client_map_get(map, key);
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(buf, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    else
        buf[0] = '\0';
}

/* `stats` replication section of one server; *t_ns the call's midpoint. */
static pd_err read_repl(pd_client_t *cl, const char *addr, repl_stats_t *st, uint64_t *t_ns,
                        char *why, size_t cap) {
    memset(st, 0, sizeof *st);
    pd_msg_t m;
    uint64_t t0 = pd__bench_now_ns();
    pd_err err = pd_client_call(cl, "stats", NULL, 0, &m);
    uint64_t t1 = pd__bench_now_ns();
    if (t_ns) *t_ns = t0 + (t1 - t0) / 2;
    if (err) {
        snprintf(why, cap, "%s: stats: %s", addr, pd_client_last_error(cl));
        return PD_ERR_IO;
    }
    if (m.code) {
        snprintf(why, cap, "%s: stats: %s", addr, m.message);
        return PD_ERR_IO;
    }
    const msgpack_object *r = pd_client_map_get(&m.result, "replication");
    if (!r || r->type != MSGPACK_OBJECT_MAP) {
        snprintf(why, cap, "%s: its stats have no replication section (an older server?)", addr);
        return PD_ERR_BAD_ARG;
    }
    obj_str(r, "role", st->role, sizeof st->role);
    st->committed = obj_u64(r, "committed_seq");
    st->stream = obj_u64(r, "stream_seq");
    st->applied_seq = obj_u64(r, "applied_seq");
    st->applied = obj_u64(r, "applied");
    const msgpack_object *h = pd_client_map_get(r, "halted");
    st->halted = h && h->type == MSGPACK_OBJECT_BOOLEAN && h->via.boolean;
    obj_str(r, "error", st->error, sizeof st->error);
    return PD_OK;
}

/* `digest` of one server: its state hash and the seq it is at. */
static pd_err read_digest(pd_client_t *cl, const char *addr, uint64_t *digest, uint64_t *seq,
                          char *why, size_t cap) {
    pd_msg_t m;
    pd_err err = pd_client_call(cl, "digest", NULL, 0, &m);
    if (err) {
        snprintf(why, cap, "%s: digest: %s", addr, pd_client_last_error(cl));
        return PD_ERR_IO;
    }
    if (m.code) {
        snprintf(why, cap, "%s: digest: %s", addr, m.message);
        return PD_ERR_IO;
    }
    *digest = obj_u64(&m.result, "digest");
    *seq = obj_u64(&m.result, "seq");
    return PD_OK;
}

static void push(pd__replica_t *r, const sample_t *x) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        sample_t *p = realloc(r->s, cap * sizeof *p);
        if (!p) {
            r->oom = true;
            return;
        }
        r->s = p;
        r->cap = cap;
    }
    r->s[r->n++] = *x;
}

/* One tick: the primary, then the replica. A server that does not answer
 * gives a sample that is not ok (the settle says why). */
static void take_sample(pd__replica_t *r) {
    sample_t x;
    memset(&x, 0, sizeof x);
    repl_stats_t p, q;
    char why[256];
    bool okp = read_repl(r->cp, r->pwho, &p, &x.tp_ns, why, sizeof why) == PD_OK;
    bool okr = read_repl(r->cr, r->rwho, &q, &x.tr_ns, why, sizeof why) == PD_OK;
    x.ok = okp && okr;
    x.pseq = p.committed;
    x.sseq = p.stream;
    x.rseq = q.applied_seq;
    x.applied = q.applied;
    push(r, &x);
}

static void *watch_main(void *arg) {
    pd__replica_t *r = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        pthread_mutex_unlock(&r->mu);
        take_sample(r);
        pthread_mutex_lock(&r->mu);
        next.tv_nsec += PD__REPLICA_EVERY_MS * 1000000L;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &next) == 0) {
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---------------------------------------------------------------- API */

pd_err pd__replica_create(const char *primary_host, uint16_t primary_port, const char *replica_host,
                          uint16_t replica_port, const char *token, pd__replica_t **out, char *why,
                          size_t cap) {
    pd__replica_t *r = calloc(1, sizeof *r);
    *out = r;
    if (!r) return PD_ERR_NOMEM;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(r->pwho, sizeof r->pwho, "primary %s:%u", primary_host, (unsigned)primary_port);
    snprintf(r->raddr, sizeof r->raddr, "%s:%u", replica_host, (unsigned)replica_port);
    snprintf(r->rwho, sizeof r->rwho, "replica %s", r->raddr);
    char w[200];
    if (pd__bench_connect(primary_host, primary_port, token, &r->cp, w, sizeof w)) {
        snprintf(why, cap, "%s: %s", r->pwho, w);
        return PD_ERR_IO;
    }
    if (pd__bench_connect(replica_host, replica_port, token, &r->cr, w, sizeof w)) {
        snprintf(why, cap, "--replica %s: %s", r->raddr, w);
        return PD_ERR_IO;
    }
    /* A sample must not hold the run up for the client's default 30 s. */
    pd_client_set_timeout(r->cp, 2000);
    pd_client_set_timeout(r->cr, 2000);
    repl_stats_t st;
    pd_err err = read_repl(r->cp, r->pwho, &st, NULL, why, cap);
    if (err) return err;
    if (strcmp(st.role, "primary") != 0) {
        snprintf(why, cap,
                 "%s replicates nothing (its stats say role \"%s\"): start it with "
                 "--data-dir DIR --replicate nats://...",
                 r->pwho, st.role);
        return PD_ERR_BAD_ARG;
    }
    err = read_repl(r->cr, r->rwho, &st, NULL, why, cap);
    if (err) return err;
    if (strcmp(st.role, "replica") != 0) {
        snprintf(why, cap,
                 "--replica %s is not a replica (its stats say role \"%s\"): start it with "
                 "--follow nats://...",
                 r->raddr, st.role);
        return PD_ERR_BAD_ARG;
    }
    return PD_OK;
}

pd_err pd__replica_start(pd__replica_t *r) {
    r->stop = false;
    if (pthread_create(&r->th, NULL, watch_main, r) != 0) return PD_ERR_NOMEM;
    r->th_on = true;
    return PD_OK;
}

void pd__replica_stop(pd__replica_t *r, uint64_t t_measure_ns, uint64_t t_measure_end_ns,
                      uint64_t t_end_ns) {
    r->t_measure_ns = t_measure_ns;
    r->t_measure_end_ns = t_measure_end_ns;
    r->t_end_ns = t_end_ns;
    if (!r->th_on) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    r->th_on = false;
}

/* ------------------------------------------------------------ figures */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles of v[0..n) (sorted here). */
static pd__replica_pct_t pct(double *v, size_t n) {
    pd__replica_pct_t p = {0, 0, 0};
    if (!n) return p;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i50 = (size_t)ceil(0.50 * (double)n), i99 = (size_t)ceil(0.99 * (double)n);
    p.p50 = v[i50 ? i50 - 1 : 0];
    p.p99 = v[i99 ? i99 - 1 : 0];
    p.max = v[n - 1];
    return p;
}

/* When the primary committed record `target`, from its answered samples
 * t[0..n), seq[0..n) (seq rising): interpolated between the two around
 * it; the first sample's time when it had it already. */
static uint64_t committed_at(const uint64_t *t, const uint64_t *seq, size_t n, uint64_t target) {
    size_t lo = 0, hi = n; /* the first j with seq[j] >= target */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seq[mid] >= target)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == n) return t[n - 1];
    if (lo == 0) return t[0];
    double f = (double)(target - seq[lo - 1]) / (double)(seq[lo] - seq[lo - 1]);
    return t[lo - 1] + (uint64_t)(f * (double)(t[lo] - t[lo - 1]));
}

/* The lag figures of the samples inside the measured phase. */
static void lag_figures(const pd__replica_t *r, pd__replica_out_t *out) {
    size_t cap = r->n ? r->n : 1;
    double *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    double *c = malloc(cap * sizeof *c);
    uint64_t *pt = malloc(cap * sizeof *pt), *ps = malloc(cap * sizeof *ps);
    size_t n = 0, np = 0;
    for (size_t i = 0; a && b && c && pt && ps && i < r->n; i++) {
        const sample_t *x = &r->s[i];
        if (!x->ok) continue;
        /* the primary's timeline up to this tick (its reading comes first) */
        pt[np] = x->tp_ns;
        ps[np] = np && x->pseq < ps[np - 1] ? ps[np - 1] : x->pseq;
        np++;
        if (x->tr_ns < r->t_measure_ns || x->tr_ns > r->t_measure_end_ns) continue;
        uint64_t behind = x->pseq > x->rseq ? x->pseq - x->rseq : 0;
        double ms = 0;
        if (behind) {
            uint64_t t = committed_at(pt, ps, np, x->rseq + 1);
            ms = x->tr_ns > t ? (double)(x->tr_ns - t) / 1e6 : 0;
        }
        a[n] = (double)behind;
        b[n] = ms;
        c[n] = (double)(x->pseq > x->sseq ? x->pseq - x->sseq : 0);
        n++;
    }
    out->samples = n;
    if (a && b && c && pt && ps) {
        out->lag_records = pct(a, n);
        out->lag_ms = pct(b, n);
        out->unpublished = pct(c, n);
    }
    free(a);
    free(b);
    free(c);
    free(pt);
    free(ps);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

pd_err pd__replica_settle(pd__replica_t *r, int timeout_ms, pd__replica_out_t *out) {
    memset(out, 0, sizeof *out);
    out->digest_match = -1;
    lag_figures(r, out);
    const sample_t *first = NULL;
    for (size_t i = 0; i < r->n && !first; i++)
        if (r->s[i].ok) first = &r->s[i];
    uint64_t deadline = r->t_end_ns + (uint64_t)timeout_ms * 1000000ULL;
    repl_stats_t p, q;
    uint64_t tp = 0, tq = 0;
    pd_err err;
    /* 1. Until the replica has what the primary committed. */
    bool had_end = false;
    uint64_t pseq_end = 0;
    for (;;) {
        err = read_repl(r->cp, r->pwho, &p, &tp, out->why, sizeof out->why);
        if (!err) err = read_repl(r->cr, r->rwho, &q, &tq, out->why, sizeof out->why);
        if (err) return PD_ERR_IO;
        if (!had_end) {
            had_end = true;
            pseq_end = p.committed;
        }
        if (q.halted) {
            snprintf(out->why, sizeof out->why, "%s stopped applying at record %llu: %s", r->rwho,
                     (unsigned long long)q.applied_seq, q.error);
            return PD_ERR_IO;
        }
        if (q.applied_seq >= p.committed) break;
        uint64_t now = pd__bench_now_ns();
        if (now > deadline) {
            snprintf(out->why, sizeof out->why,
                     "%s did not catch up within %.3g s of the load's end: at record %llu, the "
                     "primary at %llu (the stream at %llu)",
                     r->rwho, timeout_ms / 1e3, (unsigned long long)q.applied_seq,
                     (unsigned long long)p.committed, (unsigned long long)p.stream);
            return PD_ERR_IO;
        }
        /* Every poll is a `stats` on both servers: poll often at first (a
         * replica in step answers within a millisecond or two), then at a
         * fiftieth of the time waited so far (at most 20 ms), so a long
         * catch-up is timed to 2 % without the polls slowing it down. */
        double waited_ms = now > r->t_end_ns ? (double)(now - r->t_end_ns) / 1e6 : 0;
        int pause = (int)(waited_ms / 50);
        sleep_ms(pause < 1 ? 1 : pause > 20 ? 20 : pause);
    }
    out->caught_up = true;
    out->catch_up_ms = tq > r->t_end_ns ? (double)(tq - r->t_end_ns) / 1e6 : 0;
    if (first) {
        out->records = pseq_end > first->pseq ? pseq_end - first->pseq : 0;
        double span = (double)(r->t_end_ns - first->tp_ns) / 1e9;
        out->commit_per_s = span > 0 ? (double)out->records / span : 0;
        span = (double)(tq - first->tr_ns) / 1e9;
        out->apply_per_s = span > 0 ? (double)(q.applied - first->applied) / span : 0;
    }
    /* 2. Both digests at one seq: the primary's, then the replica's once it
     * has applied that far. A primary that journaled more meanwhile (an
     * offer expiring) makes the seqs differ: read both again. Digests hash
     * the whole state, so give them time. */
    pd_client_set_timeout(r->cp, 30000);
    pd_client_set_timeout(r->cr, 30000);
    for (;;) {
        uint64_t dp, sp, dr, sr;
        err = read_digest(r->cp, r->pwho, &dp, &sp, out->why, sizeof out->why);
        if (err) return err;
        for (;;) {
            err = read_repl(r->cr, r->rwho, &q, NULL, out->why, sizeof out->why);
            if (err) return err;
            if (q.applied_seq >= sp || q.halted || pd__bench_now_ns() > deadline) break;
            sleep_ms(1);
        }
        err = read_digest(r->cr, r->rwho, &dr, &sr, out->why, sizeof out->why);
        if (err) return err;
        if (sr == sp) {
            out->seq = sp;
            out->digest_match = dr == dp;
            if (dr != dp)
                snprintf(out->why, sizeof out->why,
                         "the replica's state differs from the primary's at record %llu: digest "
                         "%llu against %llu",
                         (unsigned long long)sp, (unsigned long long)dr, (unsigned long long)dp);
            return PD_OK;
        }
        if (pd__bench_now_ns() > deadline) {
            snprintf(out->why, sizeof out->why,
                     "no digest at one seq within %.3g s: the primary at record %llu, %s at %llu",
                     timeout_ms / 1e3, (unsigned long long)sp, r->rwho, (unsigned long long)sr);
            return PD_ERR_IO;
        }
    }
}

/* ------------------------------------------------------------- report */

void pd__replica_json(const pd__replica_t *r, const pd__replica_out_t *o, char *buf, size_t cap) {
    buf[0] = '\0';
    pd__appendf(buf, cap,
                "{\"address\":\"%s\",\"every_ms\":%d,\"samples\":%zu,"
                "\"lag_records\":{\"p50\":%.0f,\"p99\":%.0f,\"max\":%.0f},"
                "\"lag_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
                "\"unpublished_records\":{\"p50\":%.0f,\"p99\":%.0f,\"max\":%.0f},",
                r->raddr, PD__REPLICA_EVERY_MS, o->samples, o->lag_records.p50, o->lag_records.p99,
                o->lag_records.max, o->lag_ms.p50, o->lag_ms.p99, o->lag_ms.max, o->unpublished.p50,
                o->unpublished.p99, o->unpublished.max);
    pd__appendf(buf, cap,
                "\"caught_up\":%s,\"catch_up_ms\":%.3f,\"records\":%llu,"
                "\"primary_commit_per_s\":%.1f,\"replica_apply_per_s\":%.1f,\"seq\":%llu,"
                "\"digest_match\":%s}",
                o->caught_up ? "true" : "false", o->catch_up_ms, (unsigned long long)o->records,
                o->commit_per_s, o->apply_per_s, (unsigned long long)o->seq,
                o->digest_match < 0 ? "null"
                : o->digest_match   ? "true"
                                    : "false");
}

void pd__replica_print(const pd__replica_t *r, const pd__replica_out_t *o, FILE *f) {
    fprintf(f,
            "replica %s: %zu samples (every %d ms): behind by p50 %.0f, p99 %.0f, max %.0f "
            "records; p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
            r->raddr, o->samples, PD__REPLICA_EVERY_MS, o->lag_records.p50, o->lag_records.p99,
            o->lag_records.max, o->lag_ms.p50, o->lag_ms.p99, o->lag_ms.max);
    fprintf(f, "replica: of them not yet in the stream: p50 %.0f, p99 %.0f, max %.0f records\n",
            o->unpublished.p50, o->unpublished.p99, o->unpublished.max);
    if (o->caught_up)
        fprintf(f,
                "replica: caught up %.1f ms after the load; the primary committed %llu records "
                "(%.0f/s), the replica applied %.0f/s\n",
                o->catch_up_ms, (unsigned long long)o->records, o->commit_per_s, o->apply_per_s);
    if (o->digest_match >= 0)
        fprintf(f, "replica: digest at record %llu: %s\n", (unsigned long long)o->seq,
                o->digest_match ? "the same as the primary's" : "DIFFERENT from the primary's");
    else
        fprintf(f, "replica: digests not compared\n");
}

void pd__replica_destroy(pd__replica_t *r) {
    if (!r) return;
    if (r->th_on) pd__replica_stop(r, 0, 0, 0);
    pd_client_destroy(r->cp);
    pd_client_destroy(r->cr);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->s);
    free(r);
}
