/* compare.c -- `paidan-bench compare`: one nearby workload, one county, in
 * one run, against what a team would otherwise build on: Redis GEOSEARCH,
 * PostgreSQL + PostGIS and Tarantool. paidan runs in-process (the reference answer)
 * and over TCP when a paidan-server is reachable.
 *
 * The query: the k volunteers with the smallest ETA among those who have
 * every skill asked for, whose weekly schedule covers the service window,
 * who are online with capacity left, and who can arrive within the budget
 * (15 minutes) by their own travel mode. ETA = straight-line distance x
 * detour / speed of the mode. One client, one query at a time; latency is
 * the whole client-side operation, round trips and client-side filtering
 * included.
 *
 * How the rivals answer it, the way a team would write it:
 *  - Redis: one geo key per skill (plus one with everybody) and a hash per
 *    volunteer (mode, status, capacity, skills, schedule). GEOSEARCH the
 *    key of one required skill within the largest possible radius (the
 *    fastest mode's reach), nearest first, COUNT C, WITHDIST; then one
 *    pipelined HMGET per candidate and the filters and ETA on the client.
 *  - PostGIS: a table with a geography column under a GiST index; the
 *    attribute filters and ST_DWithin (the largest reach) in SQL, the C
 *    nearest by KNN (`<->`), then ETA <= budget, ordered by ETA, LIMIT k.
 * Both take C candidates nearest by distance (default 50) and widen C
 * four-fold until the answer is exact: every candidate in the radius was
 * fetched, or the k-th best ETA is below the ETA of the last candidate's
 * distance at the fastest mode (ETA order is not distance order: a car
 * 5 km away beats a walker 1.5 km away, so k qualified is not enough).
 * Redis fetches only the new candidates of a wider round.
 *  - Tarantool: a Lua stored procedure over an R-tree per skill, walked
 *    nearest first until nobody farther can enter the answer; one call a
 *    query, exact without widening.
 * The report gives each system's agreement with paidan's in-process
 * answer, as a check.
 *
 * Redis is spoken in raw RESP and Tarantool in raw IPROTO over a socket (no
 * client library needed); PostgreSQL through libpq when it was found at
 * build time. A system that is not running is skipped with a message.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef PD_HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include "bench.h"
#include "county.h"
#include "opt.h"
#include "paidan/engine.h"
#include "plot.h"

#define MAX_K 100
/* The reference (paidan in-process), paidan over TCP, Redis, PostGIS,
 * Tarantool. */
#define CMP_NSYS 5
/* Sizes far from where the query and answer arrays (queries x k ids per
 * system) stop fitting in memory or n * sizeof overflows. */
#define CMP_MAX_VOLUNTEERS 100000000ULL
#define CMP_MAX_QUERIES 1000000ULL
/* The PostgreSQL default: the help text shows this very string. */
#define CMP_DEFAULT_PG "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"

typedef struct cmp_opts_s {
    uint64_t volunteers;
    uint64_t queries;
    uint64_t seed;
    uint32_t k;
    uint32_t candidates;
    double budget_s;
    const char *host;
    uint16_t port;
    const char *token;
    bool no_load;
    const char *redis;
    const char *pg;
    const char *tarantool;
    char systems[128];
    bool systems_named; /* --systems given: a system it names that is skipped is an error */
    bool json;
    bool quiet;
    const char *plot_dir;
} cmp_opts_t;

/* One query of the workload. */
typedef struct cq_s {
    pd_latlng_t at;
    uint64_t skills;
    int64_t start_ms;
    int32_t duration_min;
    pd_week_t need;
} cq_t;

/* What one system did. */
typedef struct sys_s {
    const char *name;
    bool ran;
    char skipped[1024]; /* why not, when !ran */
    pd_hist_t *hist;    /* ns per query */
    double wall_s;
    double load_s;    /* loading the county */
    double agreement; /* mean |answer & reference| / |reference| */
    uint64_t errors;
    uint64_t widened; /* queries that needed more candidates */
} sys_t;

/* Answers: k ids per query. */
typedef struct answers_s {
    uint64_t *ids; /* [queries * k] */
    uint8_t *n;    /* [queries] */
} answers_t;

static void cmp_usage(FILE *out) {
    fprintf(out,
            "usage: paidan-bench compare [options]\n"
            "  -n, --volunteers N     county size (default 100000, at most 10^8)\n"
            "  -q, --queries Q        queries per system (default 10000, at most 10^6)\n"
            "  -s, --seed S           county and query seed (default 1)\n"
            "  -k, --k K              volunteers per answer (default 10, <= 100)\n"
            "      --candidates C     Redis/PostGIS: nearest candidates fetched first\n"
            "                         (default 50; widened x4 when they run out)\n"
            "      --systems LIST     paidan,redis,postgis,tarantool (default all; paidan\n"
            "                         in-process always runs: it is the reference). A\n"
            "                         system named here that cannot be reached makes the\n"
            "                         run exit 1\n"
            "  -H, --host HOST        paidan-server (default 127.0.0.1)\n"
            "  -p, --port PORT        paidan-server port (default 7411)\n"
            "  -a, --auth TOKEN       paidan-server token (default $PAIDAN_TOKEN)\n"
            "      --no-load          the server already holds this county\n"
            "      --redis HOST:PORT  Redis (default 127.0.0.1:6379)\n"
            "      --pg CONNINFO      PostgreSQL with PostGIS (default\n"
            "                         '" CMP_DEFAULT_PG
            "')\n"
            "      --tarantool HOST:PORT  Tarantool (default 127.0.0.1:3301)\n"
            "      --json             one JSON object instead of the table\n"
            "      --plot DIR         write charts (gnuplot) and their data into DIR\n"
            "      --quiet            no progress on stderr\n"
            "  -h, --help             this text\n"
            "scripts/compare.sh installs, starts and stops Redis, PostgreSQL + PostGIS and\n"
            "Tarantool.\n");
}

__attribute__((format(printf, 2, 3))) static void say(const cmp_opts_t *o, const char *fmt, ...) {
    if (o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "compare: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* ------------------------------------------------------------- reference */

static double speed_mps(const pd_engine_config_t *cfg, unsigned mode) {
    return cfg->index.speed_kmh[mode < PD_MODE__COUNT ? mode : 0] / 3.6;
}

static double max_reach_m(const pd_engine_config_t *cfg, double budget_s) {
    double best = 0;
    for (unsigned m = 0; m < PD_MODE__COUNT; m++)
        if (speed_mps(cfg, m) > best) best = speed_mps(cfg, m);
    return budget_s * best / cfg->index.detour;
}

static double agreement_one(const uint64_t *ref, size_t nref, const uint64_t *got, size_t ngot) {
    if (nref == 0) return ngot == 0 ? 1.0 : 0.0;
    size_t same = 0;
    for (size_t i = 0; i < nref; i++)
        for (size_t j = 0; j < ngot; j++)
            if (ref[i] == got[j]) {
                same++;
                break;
            }
    return (double)same / (double)nref;
}

static void score(sys_t *s, const answers_t *ref, const answers_t *got, size_t nq, uint32_t k) {
    double sum = 0;
    for (size_t i = 0; i < nq; i++)
        sum += agreement_one(&ref->ids[i * k], ref->n[i], &got->ids[i * k], got->n[i]);
    s->agreement = nq ? sum / (double)nq : 0;
}

static void run_inproc(const cmp_opts_t *o, pd_engine_t *e, const cq_t *qs, sys_t *s,
                       answers_t *ans) {
    pd_hit_t hits[MAX_K];
    uint64_t w0 = pd__bench_now_ns();
    for (size_t i = 0; i < o->queries; i++) {
        pd_query_t q;
        memset(&q, 0, sizeof q);
        q.at = qs[i].at;
        q.skills = qs[i].skills;
        q.need = qs[i].need;
        q.budget_s = o->budget_s;
        size_t n = 0;
        uint64_t t0 = pd__bench_now_ns();
        pd_err err = pd_index_nearest(pd_engine_get_index(e), &q, o->k, hits, &n);
        uint64_t t1 = pd__bench_now_ns();
        pd_hist_record(s->hist, t1 - t0);
        if (err) s->errors++;
        ans->n[i] = (uint8_t)n;
        for (size_t j = 0; j < n; j++) ans->ids[i * o->k + j] = hits[j].id;
    }
    s->wall_s = (double)(pd__bench_now_ns() - w0) / 1e9;
    s->ran = true;
}

/* ---------------------------------------------------------- paidan (TCP) */

static void pack_query(msgpack_packer *pk, const cmp_opts_t *o, const cq_t *q,
                       const pd__names_t *names) {
    msgpack_pack_map(pk, 8);
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "lat", 3);
    msgpack_pack_double(pk, q->at.lat / 1e6);
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "lon", 3);
    msgpack_pack_double(pk, q->at.lon / 1e6);
    msgpack_pack_str(pk, 6);
    msgpack_pack_str_body(pk, "skills", 6);
    pd__pack_skills(pk, q->skills, names);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "k", 1);
    msgpack_pack_uint32(pk, o->k);
    msgpack_pack_str(pk, 7);
    msgpack_pack_str_body(pk, "minutes", 7);
    msgpack_pack_double(pk, o->budget_s / 60.0);
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "start", 5);
    msgpack_pack_int64(pk, q->start_ms);
    msgpack_pack_str(pk, 12);
    msgpack_pack_str_body(pk, "duration_min", 12);
    msgpack_pack_int32(pk, q->duration_min);
    msgpack_pack_str(pk, 6);
    msgpack_pack_str_body(pk, "policy", 6);
    msgpack_pack_str(pk, 7);
    msgpack_pack_str_body(pk, "nearest", 7);
}

static void run_paidan(const cmp_opts_t *o, const pd__county_t *c, const cq_t *qs, sys_t *s,
                       answers_t *ans) {
    pd_client_t *cl = NULL;
    char why[256];
    if (pd__bench_connect(o->host, o->port, o->token, &cl, why, sizeof why)) {
        snprintf(s->skipped, sizeof s->skipped,
                 "paidan-server not reachable (%.200s); start one with paidan-server --port %u",
                 why, (unsigned)o->port);
        return;
    }
    pd__names_t names;
    if (pd__names_from_server(cl, &names, why, sizeof why)) {
        snprintf(s->skipped, sizeof s->skipped, "paidan-server: %.200s", why);
        pd_client_destroy(cl);
        return;
    }
    if (!o->no_load) {
        say(o, "%s: loading the county with volunteer.upsert", "paidan");
        uint64_t l0 = pd__bench_now_ns();
        if (pd__county_upload(cl, c, &names, false, why, sizeof why)) {
            snprintf(s->skipped, sizeof s->skipped, "paidan-server: loading failed: %.200s", why);
            pd_client_destroy(cl);
            return;
        }
        s->load_s = (double)(pd__bench_now_ns() - l0) / 1e9;
    }
    say(o, "%s: querying", "paidan");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t w0 = pd__bench_now_ns();
    for (size_t i = 0; i < o->queries; i++) {
        sb.size = 0;
        pack_query(&pk, o, &qs[i], &names);
        pd_msg_t m;
        uint64_t t0 = pd__bench_now_ns();
        pd_err err = pd_client_call(cl, "match.nearby", sb.data, sb.size, &m);
        uint64_t t1 = pd__bench_now_ns();
        if (err) {
            snprintf(s->skipped, sizeof s->skipped, "paidan-server: %s", pd_client_last_error(cl));
            break;
        }
        pd_hist_record(s->hist, t1 - t0);
        ans->n[i] = 0;
        if (m.code || m.result.type != MSGPACK_OBJECT_ARRAY) {
            s->errors++;
            continue;
        }
        for (uint32_t j = 0; j < m.result.via.array.size && j < o->k; j++) {
            const msgpack_object *id = pd_client_map_get(&m.result.via.array.ptr[j], "id");
            if (id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                ans->ids[i * o->k + ans->n[i]++] = id->via.u64;
        }
    }
    s->wall_s = (double)(pd__bench_now_ns() - w0) / 1e9;
    s->ran = !s->skipped[0];
    msgpack_sbuffer_destroy(&sb);
    pd_client_destroy(cl);
}

/* ------------------------------------------------------------ RESP client */

/* A RESP value; children of an array are contiguous nodes from `first`. */
typedef struct rv_s {
    char t;        /* '+', '-', ':', '$', '*', or 'n' (nil) */
    long long n;   /* integer, or element count */
    const char *s; /* string (into the read buffer) */
    size_t len;
    size_t first; /* array: index of the first element */
} rv_t;

typedef struct resp_s {
    int fd;
    char *w; /* commands not yet sent */
    size_t wlen, wcap;
    char *r; /* bytes received */
    size_t rlen, rpos, rcap;
    rv_t *nodes; /* the last reply parsed */
    size_t n_nodes, cap_nodes;
    bool broken;
} resp_t;

/* A TCP connection to HOST:PORT (default_port when no colon), with
 * TCP_NODELAY and a 30 s receive timeout; the socket, or -1 with *why set. */
static int tcp_connect(const char *hostport, const char *default_port, char *why, size_t cap) {
    char host[256];
    snprintf(host, sizeof host, "%s", hostport);
    char *colon = strrchr(host, ':');
    const char *port = default_port;
    if (colon) {
        *colon = '\0';
        port = colon + 1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        snprintf(why, cap, "cannot resolve %s", hostport);
        return -1;
    }
    int err = 0, fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(why, cap, "cannot connect to %s: %s", hostport, strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int resp_connect(resp_t *c, const char *hostport, char *why, size_t cap) {
    memset(c, 0, sizeof *c);
    c->fd = tcp_connect(hostport, "6379", why, cap);
    return c->fd < 0 ? -1 : 0;
}

static void resp_close(resp_t *c) {
    if (c->fd >= 0) close(c->fd);
    free(c->w);
    free(c->r);
    free(c->nodes);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void wput(resp_t *c, const void *p, size_t n) {
    if (c->wlen + n > c->wcap) {
        size_t cap = c->wcap ? c->wcap : 65536;
        while (cap < c->wlen + n) cap *= 2;
        char *w = realloc(c->w, cap);
        if (!w) {
            c->broken = true;
            return;
        }
        c->w = w;
        c->wcap = cap;
    }
    memcpy(c->w + c->wlen, p, n);
    c->wlen += n;
}

/* Queue a command of argc strings (NUL-terminated). */
static void resp_cmd(resp_t *c, int argc, const char *const *argv) {
    char hdr[32];
    int n = snprintf(hdr, sizeof hdr, "*%d\r\n", argc);
    wput(c, hdr, (size_t)n);
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);
        n = snprintf(hdr, sizeof hdr, "$%zu\r\n", len);
        wput(c, hdr, (size_t)n);
        wput(c, argv[i], len);
        wput(c, "\r\n", 2);
    }
}

static int resp_flush(resp_t *c) {
    size_t off = 0;
    while (off < c->wlen) {
        ssize_t n = write(c->fd, c->w + off, c->wlen - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            c->broken = true;
            return -1;
        }
        off += (size_t)n;
    }
    c->wlen = 0;
    return 0;
}

/* Where the reply starting at p ends (index past it), 0 if incomplete,
 * -1 if malformed. */
static long resp_scan(const char *buf, size_t len, size_t p) {
    if (p >= len) return 0;
    const char *nl = memchr(buf + p, '\n', len - p);
    if (!nl) return 0;
    size_t line_end = (size_t)(nl - buf) + 1;
    char t = buf[p];
    long long n = strtoll(buf + p + 1, NULL, 10);
    switch (t) {
        case '+':
        case '-':
        case ':':
            return (long)line_end;
        case '$':
            if (n < 0) return (long)line_end;
            return line_end + (size_t)n + 2 <= len ? (long)(line_end + (size_t)n + 2) : 0;
        case '*': {
            size_t q = line_end;
            for (long long i = 0; i < n; i++) {
                long e = resp_scan(buf, len, q);
                if (e <= 0) return e;
                q = (size_t)e;
            }
            return (long)q;
        }
        default:
            return -1;
    }
}

static size_t node_new(resp_t *c, size_t count) {
    if (c->n_nodes + count > c->cap_nodes) {
        size_t cap = c->cap_nodes ? c->cap_nodes : 256;
        while (cap < c->n_nodes + count) cap *= 2;
        rv_t *nn = realloc(c->nodes, cap * sizeof *nn);
        if (!nn) {
            c->broken = true;
            return SIZE_MAX;
        }
        c->nodes = nn;
        c->cap_nodes = cap;
    }
    size_t at = c->n_nodes;
    c->n_nodes += count;
    return at;
}

/* Parse a complete reply at *p into node `at`. */
static void resp_parse(resp_t *c, size_t *p, size_t at) {
    const char *buf = c->r;
    const char *nl = memchr(buf + *p, '\n', c->rlen - *p);
    size_t line_end = (size_t)(nl - buf) + 1;
    rv_t v;
    memset(&v, 0, sizeof v);
    v.t = buf[*p];
    v.n = strtoll(buf + *p + 1, NULL, 10);
    if (v.t == '+' || v.t == '-') {
        v.s = buf + *p + 1;
        v.len = line_end - *p - 3;
        *p = line_end;
    } else if (v.t == ':') {
        *p = line_end;
    } else if (v.t == '$') {
        if (v.n < 0) {
            v.t = 'n';
            *p = line_end;
        } else {
            v.s = buf + line_end;
            v.len = (size_t)v.n;
            *p = line_end + (size_t)v.n + 2;
        }
    } else {
        *p = line_end;
        if (v.n < 0) {
            v.t = 'n';
        } else {
            v.first = node_new(c, (size_t)v.n);
            if (v.first == SIZE_MAX) return;
            for (long long i = 0; i < v.n && !c->broken; i++) resp_parse(c, p, v.first + (size_t)i);
        }
    }
    c->nodes[at] = v;
}

/* Read the next reply; it is c->nodes[0] until the next read. */
static const rv_t *resp_read(resp_t *c) {
    for (;;) {
        long end = resp_scan(c->r, c->rlen, c->rpos);
        if (end < 0) {
            c->broken = true;
            return NULL;
        }
        if (end > 0) {
            size_t p = c->rpos;
            c->n_nodes = 0;
            size_t root = node_new(c, 1);
            if (root == SIZE_MAX) return NULL;
            resp_parse(c, &p, root);
            c->rpos = (size_t)end;
            return c->broken ? NULL : &c->nodes[0];
        }
        if (c->rpos > 0) {
            memmove(c->r, c->r + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        if (c->rlen == c->rcap) {
            size_t cap = c->rcap ? c->rcap * 2 : 65536;
            char *r = realloc(c->r, cap);
            if (!r) {
                c->broken = true;
                return NULL;
            }
            c->r = r;
            c->rcap = cap;
        }
        ssize_t n = read(c->fd, c->r + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            c->broken = true;
            return NULL;
        }
        c->rlen += (size_t)n;
    }
}

/* ------------------------------------------------------------------ Redis */

typedef struct cand_s {
    uint64_t id;
    double eta;
} cand_t;

static int cmp_cand(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (x->eta != y->eta) return x->eta < y->eta ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void hex_week(const pd_week_t *w, char *out, size_t cap) {
    snprintf(out, cap, "%llx:%llx:%llx", (unsigned long long)w->bits[0],
             (unsigned long long)w->bits[1], (unsigned long long)w->bits[2]);
}

static bool redis_load(resp_t *c, const pd__county_t *cty, char *why, size_t cap) {
    const char *del[66];
    char keys[65][16];
    del[0] = "DEL";
    for (int b = 0; b < 64; b++) {
        snprintf(keys[b], sizeof keys[b], "pdb:s:%d", b);
        del[1 + b] = keys[b];
    }
    snprintf(keys[64], sizeof keys[64], "pdb:all");
    del[65] = keys[64];
    resp_cmd(c, 66, del);
    size_t pending = 1;
    for (size_t i = 0; i < cty->n; i++) {
        const pd_volunteer_t *v = &cty->vols[i];
        char lon[32], lat[32], id[32], hkey[40], mode[8], st[8], capb[8], sk[32], wk[64];
        snprintf(lon, sizeof lon, "%.6f", v->pos.lon / 1e6);
        snprintf(lat, sizeof lat, "%.6f", v->pos.lat / 1e6);
        snprintf(id, sizeof id, "%llu", (unsigned long long)v->id);
        snprintf(hkey, sizeof hkey, "pdb:v:%llu", (unsigned long long)v->id);
        snprintf(mode, sizeof mode, "%u", v->mode);
        snprintf(st, sizeof st, "%u", v->status);
        snprintf(capb, sizeof capb, "%u", v->capacity);
        snprintf(sk, sizeof sk, "%llx", (unsigned long long)v->skills);
        hex_week(&v->week, wk, sizeof wk);
        const char *ga[5] = {"GEOADD", keys[64], lon, lat, id};
        resp_cmd(c, 5, ga);
        pending++;
        for (int b = 0; b < 64; b++) {
            if (!(v->skills >> b & 1)) continue;
            ga[1] = keys[b];
            resp_cmd(c, 5, ga);
            pending++;
        }
        const char *hs[12] = {"HSET", hkey, "m", mode, "s", st, "c", capb, "k", sk, "w", wk};
        resp_cmd(c, 12, hs);
        pending++;
        if (pending >= 4000 || i + 1 == cty->n) {
            if (resp_flush(c)) break;
            for (; pending > 0; pending--) {
                const rv_t *r = resp_read(c);
                if (!r) break;
                if (r->t == '-') {
                    snprintf(why, cap, "Redis: %.*s", (int)(r->len > 200 ? 200 : r->len), r->s);
                    return false;
                }
            }
        }
        if (c->broken) break;
    }
    if (c->broken) snprintf(why, cap, "Redis connection lost while loading");
    return !c->broken;
}

/* The slowest an unseen volunteer at least d_m metres away can be: its
 * distance at the fastest mode's speed. Once the k-th best ETA is below
 * it, no volunteer further out can enter the answer. */
static double eta_floor_s(const pd_engine_config_t *cfg, double d_m) {
    double best = 0;
    for (unsigned m = 0; m < PD_MODE__COUNT; m++)
        if (speed_mps(cfg, m) > best) best = speed_mps(cfg, m);
    return d_m * cfg->index.detour / best;
}

static bool redis_query(resp_t *c, const cmp_opts_t *o, const pd_engine_config_t *cfg,
                        const cq_t *q, double rmax, uint64_t *ids, uint8_t *n_out,
                        uint64_t *widened) {
    char key[16], lon[32], lat[32], rad[32], cnt[16];
    int bit = q->skills ? __builtin_ctzll(q->skills) : -1;
    if (bit >= 0)
        snprintf(key, sizeof key, "pdb:s:%d", bit);
    else
        snprintf(key, sizeof key, "pdb:all");
    snprintf(lon, sizeof lon, "%.6f", q->at.lon / 1e6);
    snprintf(lat, sizeof lat, "%.6f", q->at.lat / 1e6);
    snprintf(rad, sizeof rad, "%.1f", rmax);
    /* cands: every candidate fetched so far, nearest first (id, distance);
     * qual: those that pass the filters, with their ETA. A wider round
     * returns the same first candidates again: only the new ones are
     * fetched and tested. */
    static cand_t *cands, *qual;
    static size_t cap_cands;
    size_t seen = 0, ok = 0;
    uint64_t count = o->candidates;
    for (;;) {
        snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)count);
        const char *gs[12] = {"GEOSEARCH", key, "FROMLONLAT", lon,     lat, "BYRADIUS",
                              rad,         "m", "ASC",        "COUNT", cnt, "WITHDIST"};
        resp_cmd(c, 12, gs);
        if (resp_flush(c)) return false;
        const rv_t *r = resp_read(c);
        if (!r || r->t != '*') return false;
        size_t found = (size_t)r->n;
        if (found > cap_cands) {
            cand_t *nc = realloc(cands, found * sizeof *nc), *nq = NULL;
            if (nc) cands = nc;
            if (nc) nq = realloc(qual, found * sizeof *nq);
            if (!nc || !nq) return false;
            qual = nq;
            cap_cands = found;
        }
        /* Copy ids and distances out before the next read reuses the
         * buffer; if the first `seen` are not what they were (equal
         * distances in another order), test everything again. */
        size_t from = seen;
        for (size_t i = 0; i < found; i++) {
            const rv_t *pair = &c->nodes[r->first + i];
            const rv_t *mem = &c->nodes[pair->first];
            const rv_t *dist = &c->nodes[pair->first + 1];
            uint64_t id = strtoull(mem->s, NULL, 10);
            if (i < seen && cands[i].id != id && from > i) from = i;
            cands[i].id = id;
            cands[i].eta = strtod(dist->s, NULL); /* metres, for now */
        }
        if (from < seen) {
            from = 0;
            ok = 0;
        }
        for (size_t i = from; i < found; i++) {
            char hkey[40];
            snprintf(hkey, sizeof hkey, "pdb:v:%llu", (unsigned long long)cands[i].id);
            const char *hm[7] = {"HMGET", hkey, "m", "s", "c", "k", "w"};
            resp_cmd(c, 7, hm);
        }
        if (found > from && resp_flush(c)) return false;
        for (size_t i = from; i < found; i++) {
            const rv_t *h = resp_read(c);
            if (!h || h->t != '*' || h->n != 5) return false;
            const rv_t *f = &c->nodes[h->first];
            if (f[0].t != '$' || f[1].t != '$' || f[3].t != '$' || f[4].t != '$') continue;
            unsigned mode = (unsigned)strtoul(f[0].s, NULL, 10);
            unsigned st = (unsigned)strtoul(f[1].s, NULL, 10);
            uint64_t sk = strtoull(f[3].s, NULL, 16);
            pd_week_t w;
            char *e = NULL;
            w.bits[0] = strtoull(f[4].s, &e, 16);
            w.bits[1] = strtoull(e + 1, &e, 16);
            w.bits[2] = strtoull(e + 1, NULL, 16);
            if (st != PD_STATUS_ONLINE) continue;
            if ((sk & q->skills) != q->skills) continue;
            if (!pd_week_covers(&w, &q->need)) continue;
            double eta = cands[i].eta * cfg->index.detour / speed_mps(cfg, mode);
            if (eta > o->budget_s) continue;
            qual[ok].id = cands[i].id;
            qual[ok].eta = eta;
            ok++;
        }
        seen = found;
        qsort(qual, ok, sizeof *qual, cmp_cand);
        /* Exact once every candidate in the radius is fetched, or once the
         * k-th best ETA is below what anyone beyond the last candidate
         * could reach (a car there may still beat a walker near by). */
        bool all = found < count;
        bool settled =
            ok >= o->k && found && qual[o->k - 1].eta < eta_floor_s(cfg, cands[found - 1].eta);
        if (!all && !settled && count < 1000000) {
            count *= 4;
            (*widened)++;
            continue;
        }
        size_t n = ok < o->k ? ok : o->k;
        for (size_t i = 0; i < n; i++) ids[i] = qual[i].id;
        *n_out = (uint8_t)n;
        return true;
    }
}

static void run_redis(const cmp_opts_t *o, const pd_engine_config_t *cfg, const pd__county_t *cty,
                      const cq_t *qs, sys_t *s, answers_t *ans) {
    resp_t c;
    char why[256];
    if (resp_connect(&c, o->redis, why, sizeof why)) {
        snprintf(s->skipped, sizeof s->skipped,
                 "Redis not running at %.100s (%.200s); scripts/compare.sh start", o->redis, why);
        resp_close(&c);
        return;
    }
    const char *ping[1] = {"PING"};
    resp_cmd(&c, 1, ping);
    const rv_t *r = resp_flush(&c) ? NULL : resp_read(&c);
    if (!r || r->t == '-') {
        snprintf(s->skipped, sizeof s->skipped, "Redis at %s does not answer PING", o->redis);
        resp_close(&c);
        return;
    }
    say(o, "%s: loading the county (GEOADD per skill, HSET per volunteer)", "redis");
    uint64_t l0 = pd__bench_now_ns();
    if (!redis_load(&c, cty, why, sizeof why)) {
        snprintf(s->skipped, sizeof s->skipped, "%.200s", why);
        resp_close(&c);
        return;
    }
    s->load_s = (double)(pd__bench_now_ns() - l0) / 1e9;
    say(o, "%s: querying", "redis");
    double rmax = max_reach_m(cfg, o->budget_s);
    uint64_t w0 = pd__bench_now_ns();
    for (size_t i = 0; i < o->queries; i++) {
        uint64_t t0 = pd__bench_now_ns();
        bool ok =
            redis_query(&c, o, cfg, &qs[i], rmax, &ans->ids[i * o->k], &ans->n[i], &s->widened);
        uint64_t t1 = pd__bench_now_ns();
        if (!ok) {
            snprintf(s->skipped, sizeof s->skipped, "Redis: query failed (connection or reply)");
            break;
        }
        pd_hist_record(s->hist, t1 - t0);
    }
    s->wall_s = (double)(pd__bench_now_ns() - w0) / 1e9;
    s->ran = !s->skipped[0];
    resp_close(&c);
}

/* -------------------------------------------------------------- Tarantool */

/* IPROTO, Tarantool's binary protocol: a 128-byte greeting, then frames of
 * a MessagePack uint32 length, a header map and a body map. */
enum { TT_EVAL = 0x08, TT_CALL = 0x0a };
enum { TT_CODE = 0x00, TT_SYNC = 0x01, TT_TUPLE = 0x21, TT_FUNCTION = 0x22, TT_EXPR = 0x27 };
enum { TT_DATA = 0x30, TT_ERROR = 0x31 };

/* The index's Earth radius and micro-degree factor (index/geo.h): the
 * stored procedure computes distances with the very formula of the index,
 * so ties and budget edges fall the same way in both. */
#define TT_EARTH_R_M 6371008.8
#define TT_E6_TO_RAD (3.14159265358979323846 / 180e6)

typedef struct tt_s {
    int fd;
    uint64_t sync;
    msgpack_sbuffer args; /* the arguments of the next request, one array */
    msgpack_packer pk;    /* into args */
    msgpack_sbuffer out;  /* the frame being sent */
    char *r;              /* the last reply frame */
    size_t rcap;
    msgpack_unpacked body; /* its body */
    char err[256];         /* why the last request failed */
} tt_t;

/* The stored procedures, defined by one EVAL when the county is loaded:
 * one space per skill bit in use (like Redis's keys) and one with
 * everybody, each with an R-tree over the volunteers' points projected
 * to metres (x scaled by the smallest cosine of the county, so a
 * projected distance never exceeds the true one); pdb_load(rows) fills
 * them in one transaction per batch; pdb_nearby walks the R-tree of one
 * required skill nearest first, filters and keeps the k best by ETA, and
 * stops once nobody farther can beat the k-th or reach within the budget. */
static const char tt_setup_lua[] =
    "local detour, sp, bits, R, E6 = ...\n"
    /* Tarantool 2.6 crashes when an R-tree iterator that a query left to
     * the garbage collector is freed after its space was dropped: free
     * them while the spaces of an earlier run still exist. */
    "collectgarbage('collect')\n"
    "local old = {}\n"
    "for _, t in box.space._vspace:pairs() do\n"
    "  if type(t[3]) == 'string' and t[3]:sub(1, 4) == 'pdb_' then old[#old + 1] = t[3] end\n"
    "end\n"
    "for _, n in ipairs(old) do box.space[n]:drop() end\n"
    "local function mk(name)\n"
    "  local s = box.schema.space.create(name)\n"
    "  s:create_index('id', {parts = {1, 'unsigned'}})\n"
    "  s:create_index('pt', {type = 'RTREE', parts = {2, 'array'}, unique = false,"
    " dimension = 2})\n"
    "  return s\n"
    "end\n"
    "pdb = {detour = detour, sp = sp, by_bit = {}, all = mk('pdb_all'),\n"
    "       vmax = math.max(sp[1], sp[2], sp[3], sp[4])}\n"
    "for _, b in ipairs(bits) do pdb.by_bit[b] = mk('pdb_s' .. b) end\n"
    "local band, lshift, sqrt = bit.band, bit.lshift, math.sqrt\n"
    "function pdb_load(rows)\n"
    "  box.begin()\n"
    "  for _, r in ipairs(rows) do\n"
    /* id, {x, y}, lat, lon (micro-degrees), skills, status, mode,
     * capacity, load, the week's three words */
    "    local t = box.tuple.new({r[1], {r[2], r[3]}, r[4], r[5], r[6], r[7], r[8], r[9], 0,"
    " r[10], r[11], r[12]})\n"
    "    pdb.all:replace(t)\n"
    "    local sk = 0ULL + r[6]\n"
    "    for b, s in pairs(pdb.by_bit) do\n"
    "      if band(sk, lshift(1ULL, b)) ~= 0ULL then s:replace(t) end\n"
    "    end\n"
    "  end\n"
    "  box.commit()\n"
    "  return #rows\n"
    "end\n"
    "function pdb_nearby(b, x, y, qlat, qlon, cos_q, sin_q, skills, n0, n1, n2, k, budget)\n"
    "  local s = pdb.all\n"
    "  if b >= 0 then s = pdb.by_bit[b] end\n"
    "  if s == nil then return {} end\n"
    "  skills, n0, n1, n2 = 0ULL + skills, 0ULL + n0, 0ULL + n1, 0ULL + n2\n"
    "  local detour, sp = pdb.detour, pdb.sp\n"
    "  local slow = detour / pdb.vmax * (1 - 1e-3)\n"
    "  local ids, etas, n = {}, {}, 0\n"
    "  for _, t in s.index.pt:pairs({x, y}, {iterator = 'NEIGHBOR'}) do\n"
    "    local p = t[2]\n"
    "    local px, py = p[1] - x, p[2] - y\n"
    "    local floor = sqrt(px * px + py * py) * slow\n"
    "    if floor > budget or (n == k and etas[n] < floor) then break end\n"
    "    if t[6] == 0 and t[9] < t[8] and band(t[5], skills) == skills\n"
    "       and band(t[10], n0) == n0 and band(t[11], n1) == n1 and band(t[12], n2) == n2 then\n"
    "      local dy = (t[3] - qlat) * E6\n"
    "      local dl = t[4] - qlon\n"
    "      if dl > 180e6 then dl = dl - 360e6 elseif dl < -180e6 then dl = dl + 360e6 end\n"
    "      local kx = cos_q - sin_q * dy * 0.5\n"
    "      if kx < 0 then kx = 0 end\n"
    "      local dx = dl * E6 * kx\n"
    "      local eta = R * sqrt(dy * dy + dx * dx) * detour / sp[t[7] + 1]\n"
    "      local id = t[1]\n"
    "      if eta <= budget and (n < k or eta < etas[n] or (eta == etas[n] and id < ids[n])) then\n"
    "        local i = n < k and n + 1 or n\n"
    "        while i > 1 and (etas[i - 1] > eta or (etas[i - 1] == eta and ids[i - 1] > id)) do\n"
    "          etas[i], ids[i] = etas[i - 1], ids[i - 1]\n"
    "          i = i - 1\n"
    "        end\n"
    "        etas[i], ids[i] = eta, id\n"
    "        if n < k then n = n + 1 end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  return ids\n"
    "end\n";

static bool read_full(int fd, void *p, size_t n) {
    char *c = p;
    while (n > 0) {
        ssize_t got = read(fd, c, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        c += got;
        n -= (size_t)got;
    }
    return true;
}

static bool write_full(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t put = write(fd, c, n);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return false;
        c += put;
        n -= (size_t)put;
    }
    return true;
}

static void tt_close(tt_t *c) {
    if (c->fd >= 0) close(c->fd);
    msgpack_sbuffer_destroy(&c->args);
    msgpack_sbuffer_destroy(&c->out);
    msgpack_unpacked_destroy(&c->body);
    free(c->r);
    c->fd = -1;
    c->r = NULL;
}

/* Connect and read the greeting; -1 with *why set. tt_close() after
 * either way. */
static int tt_connect(tt_t *c, const char *hostport, char *why, size_t cap) {
    memset(c, 0, sizeof *c);
    msgpack_sbuffer_init(&c->args);
    msgpack_sbuffer_init(&c->out);
    msgpack_packer_init(&c->pk, &c->args, msgpack_sbuffer_write);
    msgpack_unpacked_init(&c->body);
    c->fd = tcp_connect(hostport, "3301", why, cap);
    if (c->fd < 0) return -1;
    char greeting[128];
    if (!read_full(c->fd, greeting, sizeof greeting) || memcmp(greeting, "Tarantool ", 10) != 0) {
        snprintf(why, cap, "%s did not greet as Tarantool does", hostport);
        return -1;
    }
    return 0;
}

/* Send a request of `type` naming `what` (a function for CALL, Lua code
 * for EVAL) with the arguments packed into c->args (one array), and read
 * its reply. The reply's data (an array of the return values), or NULL
 * with c->err set. */
static const msgpack_object *tt_request(tt_t *c, int type, const char *what) {
    msgpack_packer pk;
    msgpack_sbuffer *o = &c->out;
    o->size = 0;
    msgpack_sbuffer_write(o, "\xce\0\0\0\0", 5);
    msgpack_packer_init(&pk, o, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_uint8(&pk, TT_CODE);
    msgpack_pack_int(&pk, type);
    msgpack_pack_uint8(&pk, TT_SYNC);
    msgpack_pack_uint64(&pk, ++c->sync);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_uint8(&pk, type == TT_CALL ? TT_FUNCTION : TT_EXPR);
    size_t wl = strlen(what);
    msgpack_pack_str(&pk, wl);
    msgpack_pack_str_body(&pk, what, wl);
    msgpack_pack_uint8(&pk, TT_TUPLE);
    msgpack_sbuffer_write(o, c->args.data, c->args.size);
    c->args.size = 0;
    uint32_t len = (uint32_t)(o->size - 5);
    for (int i = 0; i < 4; i++) o->data[1 + i] = (char)(len >> (24 - 8 * i));
    unsigned char hd[5];
    if (!write_full(c->fd, o->data, o->size) || !read_full(c->fd, hd, sizeof hd) || hd[0] != 0xce) {
        snprintf(c->err, sizeof c->err, "connection lost or not IPROTO");
        return NULL;
    }
    size_t n = (size_t)hd[1] << 24 | (size_t)hd[2] << 16 | (size_t)hd[3] << 8 | hd[4];
    if (n > c->rcap) {
        char *r = realloc(c->r, n);
        if (!r) {
            snprintf(c->err, sizeof c->err, "out of memory for a %zu-byte reply", n);
            return NULL;
        }
        c->r = r;
        c->rcap = n;
    }
    size_t off = 0;
    uint64_t code = UINT64_MAX;
    if (!read_full(c->fd, c->r, n) ||
        msgpack_unpack_next(&c->body, c->r, n, &off) != MSGPACK_UNPACK_SUCCESS ||
        c->body.data.type != MSGPACK_OBJECT_MAP) {
        snprintf(c->err, sizeof c->err, "a malformed reply");
        return NULL;
    }
    const msgpack_object_map *h = &c->body.data.via.map;
    for (uint32_t i = 0; i < h->size; i++)
        if (h->ptr[i].key.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            h->ptr[i].key.via.u64 == TT_CODE &&
            h->ptr[i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            code = h->ptr[i].val.via.u64;
    if (msgpack_unpack_next(&c->body, c->r, n, &off) != MSGPACK_UNPACK_SUCCESS ||
        c->body.data.type != MSGPACK_OBJECT_MAP) {
        snprintf(c->err, sizeof c->err, "a reply without a body");
        return NULL;
    }
    const msgpack_object_map *b = &c->body.data.via.map;
    for (uint32_t i = 0; i < b->size; i++) {
        const msgpack_object *k = &b->ptr[i].key, *v = &b->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_POSITIVE_INTEGER) continue;
        if (code == 0 && k->via.u64 == TT_DATA && v->type == MSGPACK_OBJECT_ARRAY) return v;
        if (code != 0 && k->via.u64 == TT_ERROR && v->type == MSGPACK_OBJECT_STR) {
            snprintf(c->err, sizeof c->err, "%.*s",
                     (int)(v->via.str.size < 200 ? v->via.str.size : 200), v->via.str.ptr);
            return NULL;
        }
    }
    snprintf(c->err, sizeof c->err, "error code 0x%llx", (unsigned long long)code);
    return NULL;
}

/* The county into Tarantool: the spaces and procedures, then the
 * volunteers 2,000 to a call. c0 is the projection's cosine. */
static bool tt_load(tt_t *c, const pd_engine_config_t *cfg, const pd__county_t *cty, double c0,
                    char *why, size_t cap) {
    uint64_t used = 0;
    for (size_t i = 0; i < cty->n; i++) used |= cty->vols[i].skills;
    msgpack_pack_array(&c->pk, 5);
    msgpack_pack_double(&c->pk, cfg->index.detour);
    msgpack_pack_array(&c->pk, PD_MODE__COUNT);
    for (unsigned m = 0; m < PD_MODE__COUNT; m++) msgpack_pack_double(&c->pk, speed_mps(cfg, m));
    msgpack_pack_array(&c->pk, (uint32_t)__builtin_popcountll(used));
    for (unsigned b = 0; b < 64; b++)
        if (used >> b & 1) msgpack_pack_uint32(&c->pk, b);
    msgpack_pack_double(&c->pk, TT_EARTH_R_M);
    msgpack_pack_double(&c->pk, TT_E6_TO_RAD);
    if (!tt_request(c, TT_EVAL, tt_setup_lua)) {
        snprintf(why, cap, "Tarantool: setting up the spaces: %.200s", c->err);
        return false;
    }
    const size_t batch = 2000;
    for (size_t i = 0; i < cty->n; i += batch) {
        size_t n = cty->n - i < batch ? cty->n - i : batch;
        msgpack_pack_array(&c->pk, 1);
        msgpack_pack_array(&c->pk, (uint32_t)n);
        for (size_t j = i; j < i + n; j++) {
            const pd_volunteer_t *v = &cty->vols[j];
            msgpack_pack_array(&c->pk, 12);
            msgpack_pack_uint64(&c->pk, v->id);
            msgpack_pack_double(&c->pk, v->pos.lon * TT_E6_TO_RAD * TT_EARTH_R_M * c0);
            msgpack_pack_double(&c->pk, v->pos.lat * TT_E6_TO_RAD * TT_EARTH_R_M);
            msgpack_pack_int32(&c->pk, v->pos.lat);
            msgpack_pack_int32(&c->pk, v->pos.lon);
            msgpack_pack_uint64(&c->pk, v->skills);
            msgpack_pack_uint32(&c->pk, v->status);
            msgpack_pack_uint32(&c->pk, v->mode);
            msgpack_pack_uint32(&c->pk, v->capacity);
            for (int w = 0; w < 3; w++) msgpack_pack_uint64(&c->pk, v->week.bits[w]);
        }
        if (!tt_request(c, TT_CALL, "pdb_load")) {
            snprintf(why, cap, "Tarantool: loading: %.200s", c->err);
            return false;
        }
    }
    return true;
}

static void run_tarantool(const cmp_opts_t *o, const pd_engine_config_t *cfg,
                          const pd__county_t *cty, const cq_t *qs, sys_t *s, answers_t *ans) {
    tt_t c;
    char why[256];
    if (tt_connect(&c, o->tarantool, why, sizeof why)) {
        snprintf(s->skipped, sizeof s->skipped,
                 "Tarantool not running at %.100s (%.200s); scripts/compare.sh start", o->tarantool,
                 why);
        tt_close(&c);
        return;
    }
    /* The projection's cosine: the smallest of every latitude in play, so
     * that no projected distance exceeds the true one. */
    double c0 = 1;
    for (size_t i = 0; i < cty->n; i++) c0 = fmin(c0, cos(cty->vols[i].pos.lat * TT_E6_TO_RAD));
    for (size_t i = 0; i < o->queries; i++) c0 = fmin(c0, cos(qs[i].at.lat * TT_E6_TO_RAD));
    say(o, "%s: loading the county (a space per skill, R-tree, Lua procedures)", "tarantool");
    uint64_t l0 = pd__bench_now_ns();
    if (!tt_load(&c, cfg, cty, c0, why, sizeof why)) {
        snprintf(s->skipped, sizeof s->skipped, "%.200s", why);
        tt_close(&c);
        return;
    }
    s->load_s = (double)(pd__bench_now_ns() - l0) / 1e9;
    say(o, "%s: querying", "tarantool");
    uint64_t w0 = pd__bench_now_ns();
    for (size_t i = 0; i < o->queries; i++) {
        const cq_t *q = &qs[i];
        double qr = q->at.lat * TT_E6_TO_RAD;
        uint64_t t0 = pd__bench_now_ns();
        msgpack_pack_array(&c.pk, 13);
        msgpack_pack_int(&c.pk, q->skills ? __builtin_ctzll(q->skills) : -1);
        msgpack_pack_double(&c.pk, q->at.lon * TT_E6_TO_RAD * TT_EARTH_R_M * c0);
        msgpack_pack_double(&c.pk, q->at.lat * TT_E6_TO_RAD * TT_EARTH_R_M);
        msgpack_pack_int32(&c.pk, q->at.lat);
        msgpack_pack_int32(&c.pk, q->at.lon);
        msgpack_pack_double(&c.pk, cos(qr));
        msgpack_pack_double(&c.pk, sin(qr));
        msgpack_pack_uint64(&c.pk, q->skills);
        for (int w = 0; w < 3; w++) msgpack_pack_uint64(&c.pk, q->need.bits[w]);
        msgpack_pack_uint32(&c.pk, o->k);
        msgpack_pack_double(&c.pk, o->budget_s);
        const msgpack_object *data = tt_request(&c, TT_CALL, "pdb_nearby");
        uint64_t t1 = pd__bench_now_ns();
        if (!data) {
            snprintf(s->skipped, sizeof s->skipped, "Tarantool: query: %s", c.err);
            break;
        }
        pd_hist_record(s->hist, t1 - t0);
        ans->n[i] = 0;
        if (data->via.array.size != 1 || data->via.array.ptr[0].type != MSGPACK_OBJECT_ARRAY) {
            s->errors++;
            continue;
        }
        const msgpack_object_array *ids = &data->via.array.ptr[0].via.array;
        for (uint32_t j = 0; j < ids->size && j < o->k; j++)
            if (ids->ptr[j].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                ans->ids[i * o->k + ans->n[i]++] = ids->ptr[j].via.u64;
    }
    s->wall_s = (double)(pd__bench_now_ns() - w0) / 1e9;
    s->ran = !s->skipped[0];
    tt_close(&c);
}

/* ---------------------------------------------------------------- PostGIS */

#ifdef PD_HAVE_LIBPQ
static bool pg_exec(PGconn *db, const char *sql, char *why, size_t cap) {
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) snprintf(why, cap, "%s", PQerrorMessage(db));
    PQclear(r);
    return ok;
}

static void pg_quiet(void *ud, const char *msg) {
    (void)ud;
    (void)msg;
}

static bool pg_load(PGconn *db, const pd__county_t *cty, char *why, size_t cap) {
    PQsetNoticeProcessor(db, pg_quiet, NULL);
    if (!pg_exec(db, "CREATE EXTENSION IF NOT EXISTS postgis", why, cap)) return false;
    /* Short indexed queries: the planner's first custom plans cost out
     * above jit_above_cost and spent ~20 ms compiling each, which a user
     * serving lookups would switch off too. */
    if (!pg_exec(db, "SET jit = off", why, cap)) return false;
    if (!pg_exec(db,
                 "DROP TABLE IF EXISTS pdb_volunteers;"
                 "CREATE TABLE pdb_volunteers (id bigint PRIMARY KEY,"
                 " g geography(Point, 4326) NOT NULL, skills bigint NOT NULL,"
                 " status smallint NOT NULL, mode smallint NOT NULL, capacity smallint NOT NULL,"
                 " load smallint NOT NULL DEFAULT 0, w0 bigint NOT NULL, w1 bigint NOT NULL,"
                 " w2 bigint NOT NULL)",
                 why, cap))
        return false;
    PGresult *r = PQexec(db,
                         "COPY pdb_volunteers (id, g, skills, status, mode, capacity, w0, w1, w2)"
                         " FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(why, cap, "%s", PQerrorMessage(db));
        PQclear(r);
        return false;
    }
    PQclear(r);
    char line[512];
    for (size_t i = 0; i < cty->n; i++) {
        const pd_volunteer_t *v = &cty->vols[i];
        int n = snprintf(line, sizeof line,
                         "%llu\tSRID=4326;POINT(%.6f %.6f)\t%lld\t%u\t%u\t%u\t%lld\t%lld\t%lld\n",
                         (unsigned long long)v->id, v->pos.lon / 1e6, v->pos.lat / 1e6,
                         (long long)v->skills, v->status, v->mode, v->capacity,
                         (long long)v->week.bits[0], (long long)v->week.bits[1],
                         (long long)v->week.bits[2]);
        if (PQputCopyData(db, line, n) != 1) break;
    }
    if (PQputCopyEnd(db, NULL) != 1) {
        snprintf(why, cap, "%s", PQerrorMessage(db));
        return false;
    }
    r = PQgetResult(db);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(why, cap, "%s", PQerrorMessage(db));
    PQclear(r);
    while ((r = PQgetResult(db))) PQclear(r);
    if (!ok) return false;
    return pg_exec(db,
                   "CREATE INDEX pdb_volunteers_g ON pdb_volunteers USING gist (g);"
                   "ANALYZE pdb_volunteers",
                   why, cap);
}

static void run_postgis(const cmp_opts_t *o, const pd_engine_config_t *cfg, const pd__county_t *cty,
                        const cq_t *qs, sys_t *s, answers_t *ans) {
    PGconn *db = PQconnectdb(o->pg);
    char why[512];
    if (PQstatus(db) != CONNECTION_OK) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(db));
        for (char *p = msg; *p; p++)
            if (*p == '\n') *p = ' ';
        snprintf(s->skipped, sizeof s->skipped,
                 "PostgreSQL not reachable (%.200s): %.200s; scripts/compare.sh start", o->pg, msg);
        PQfinish(db);
        return;
    }
    say(o, "%s: loading the county (COPY, GiST index, ANALYZE)", "postgis");
    uint64_t l0 = pd__bench_now_ns();
    if (!pg_load(db, cty, why, sizeof why)) {
        for (char *p = why; *p; p++)
            if (*p == '\n') *p = ' ';
        snprintf(s->skipped, sizeof s->skipped, "PostGIS: %.400s", why);
        PQfinish(db);
        return;
    }
    s->load_s = (double)(pd__bench_now_ns() - l0) / 1e9;
    char sql[2048];
    snprintf(sql, sizeof sql,
             /* The C nearest that pass the filters, by KNN on the index,
              * each with its distance and ETA; the client keeps those
              * within the budget, ordered by ETA, and decides whether C
              * was enough (the rows are few: C). */
             "SELECT id, d * %.6f / (CASE mode WHEN 0 THEN %.6f WHEN 1 THEN %.6f"
             " WHEN 2 THEN %.6f ELSE %.6f END) AS eta, d FROM ("
             " SELECT id, mode,"
             "  ST_Distance(g, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, false) AS d"
             " FROM pdb_volunteers"
             " WHERE ST_DWithin(g, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $3, false)"
             "  AND (skills & $4) = $4 AND status = 0 AND load < capacity"
             "  AND (w0 & $5) = $5 AND (w1 & $6) = $6 AND (w2 & $7) = $7"
             " ORDER BY g <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography"
             " LIMIT $8) k ORDER BY eta, id",
             cfg->index.detour, speed_mps(cfg, 0), speed_mps(cfg, 1), speed_mps(cfg, 2),
             speed_mps(cfg, 3));
    static const Oid types[8] = {701, 701, 701, 20, 20, 20, 20, 23};
    PGresult *pr = PQprepare(db, "pdb_nearby", sql, 8, types);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK) {
        snprintf(s->skipped, sizeof s->skipped, "PostGIS: prepare: %s", PQerrorMessage(db));
        PQclear(pr);
        PQfinish(db);
        return;
    }
    PQclear(pr);
    say(o, "%s: querying", "postgis");
    double rmax = max_reach_m(cfg, o->budget_s);
    uint64_t w0 = pd__bench_now_ns();
    for (size_t i = 0; i < o->queries && !s->skipped[0]; i++) {
        const cq_t *q = &qs[i];
        char a[8][32];
        snprintf(a[0], 32, "%.6f", q->at.lon / 1e6);
        snprintf(a[1], 32, "%.6f", q->at.lat / 1e6);
        snprintf(a[2], 32, "%.1f", rmax);
        snprintf(a[3], 32, "%lld", (long long)q->skills);
        snprintf(a[4], 32, "%lld", (long long)q->need.bits[0]);
        snprintf(a[5], 32, "%lld", (long long)q->need.bits[1]);
        snprintf(a[6], 32, "%lld", (long long)q->need.bits[2]);
        const char *vals[8];
        for (int j = 0; j < 8; j++) vals[j] = a[j];
        uint64_t count = o->candidates;
        uint64_t t0 = pd__bench_now_ns();
        for (;;) {
            snprintf(a[7], 32, "%llu", (unsigned long long)count);
            PGresult *r = PQexecPrepared(db, "pdb_nearby", 8, vals, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                snprintf(s->skipped, sizeof s->skipped, "PostGIS: query: %s", PQerrorMessage(db));
                PQclear(r);
                break;
            }
            int rows = PQntuples(r);
            /* The rows come by ETA; the farthest of them bounds the rest. */
            double dmax = 0;
            uint32_t n = 0, kth_done = 0;
            for (int j = 0; j < rows; j++) {
                double d = strtod(PQgetvalue(r, j, 2), NULL);
                if (d > dmax) dmax = d;
                if (n < o->k && strtod(PQgetvalue(r, j, 1), NULL) <= o->budget_s)
                    ans->ids[i * o->k + n++] = strtoull(PQgetvalue(r, j, 0), NULL, 10);
                if (n == o->k && !kth_done) kth_done = (uint32_t)j + 1;
            }
            /* Exact once fewer than C came back (nobody else passes the
             * filters within the largest reach), or once the k-th best
             * ETA is below what anyone beyond the C-th could reach. */
            bool all = (uint64_t)rows < count;
            bool settled = kth_done && strtod(PQgetvalue(r, (int)kth_done - 1, 1), NULL) <
                                           eta_floor_s(cfg, dmax);
            if (!all && !settled && count < 1000000) {
                PQclear(r);
                count *= 4;
                s->widened++;
                continue;
            }
            ans->n[i] = (uint8_t)n;
            PQclear(r);
            break;
        }
        pd_hist_record(s->hist, pd__bench_now_ns() - t0);
    }
    s->wall_s = (double)(pd__bench_now_ns() - w0) / 1e9;
    s->ran = !s->skipped[0];
    PQfinish(db);
}
#endif

/* ------------------------------------------------------------------- main */

enum {
    OPT_CAND = 256,
    OPT_SYSTEMS,
    OPT_NO_LOAD,
    OPT_REDIS,
    OPT_PG,
    OPT_TT,
    OPT_JSON,
    OPT_PLOT,
    OPT_QUIET
};

/* The rivals --systems may name (the in-process reference always runs). */
static const char *const cmp_systems[] = {"paidan", "redis", "postgis", "tarantool"};

/* One option's value into o; false (with the message printed) if bad. */
static bool parse_one(const pd__opt_t *p, int ch, const char *arg, cmp_opts_t *o) {
    uint32_t u = 0;
    switch (ch) {
        case 'n':
            return pd__opt_u64(p, ch, arg, 1, CMP_MAX_VOLUNTEERS, &o->volunteers);
        case 'q':
            return pd__opt_u64(p, ch, arg, 1, CMP_MAX_QUERIES, &o->queries);
        case 's':
            return pd__opt_u64(p, ch, arg, 0, UINT64_MAX, &o->seed);
        case 'k':
            return pd__opt_u32(p, ch, arg, 1, MAX_K, &o->k);
        case OPT_CAND:
            return pd__opt_u32(p, ch, arg, 1, 100000, &o->candidates);
        case 'p':
            if (!pd__opt_u32(p, ch, arg, 1, 65535, &u)) return false;
            o->port = (uint16_t)u;
            return true;
        case OPT_SYSTEMS:
            if (strlen(arg) >= sizeof o->systems) {
                pd__opt_bad(p, ch, arg, "paidan, redis, postgis, tarantool");
                return false;
            }
            snprintf(o->systems, sizeof o->systems, "%s", arg);
            o->systems_named = true;
            return pd__opt_list(p, ch, arg, "system", cmp_systems,
                                sizeof cmp_systems / sizeof cmp_systems[0]);
        default:
            return false;
    }
}

static int parse_opts(int argc, char **argv, cmp_opts_t *o) {
    static const struct option longs[] = {{"volunteers", required_argument, 0, 'n'},
                                          {"queries", required_argument, 0, 'q'},
                                          {"seed", required_argument, 0, 's'},
                                          {"k", required_argument, 0, 'k'},
                                          {"candidates", required_argument, 0, OPT_CAND},
                                          {"systems", required_argument, 0, OPT_SYSTEMS},
                                          {"host", required_argument, 0, 'H'},
                                          {"port", required_argument, 0, 'p'},
                                          {"auth", required_argument, 0, 'a'},
                                          {"no-load", no_argument, 0, OPT_NO_LOAD},
                                          {"redis", required_argument, 0, OPT_REDIS},
                                          {"pg", required_argument, 0, OPT_PG},
                                          {"tarantool", required_argument, 0, OPT_TT},
                                          {"json", no_argument, 0, OPT_JSON},
                                          {"plot", required_argument, 0, OPT_PLOT},
                                          {"quiet", no_argument, 0, OPT_QUIET},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const pd__opt_t p = {"compare", "n:q:s:k:H:p:a:h", longs};
    o->volunteers = 100000;
    o->queries = 10000;
    o->seed = 1;
    o->k = 10;
    o->candidates = 50;
    o->budget_s = 900;
    o->host = "127.0.0.1";
    o->port = 7411;
    o->token = getenv("PAIDAN_TOKEN");
    if (o->token && !*o->token) o->token = NULL;
    o->redis = "127.0.0.1:6379";
    o->pg = CMP_DEFAULT_PG;
    o->tarantool = "127.0.0.1:3301";
    snprintf(o->systems, sizeof o->systems, "paidan,redis,postgis,tarantool");
    pd__opt_begin(&p, argv);
    int ch;
    while ((ch = getopt_long(argc, argv, p.shorts, longs, NULL)) != -1) {
        switch (ch) {
            case 'H':
                o->host = optarg;
                break;
            case 'a':
                o->token = optarg;
                break;
            case OPT_NO_LOAD:
                o->no_load = true;
                break;
            case OPT_REDIS:
                o->redis = optarg;
                break;
            case OPT_PG:
                o->pg = optarg;
                break;
            case OPT_TT:
                o->tarantool = optarg;
                break;
            case OPT_JSON:
                o->json = true;
                break;
            case OPT_PLOT:
                o->plot_dir = optarg;
                break;
            case OPT_QUIET:
                o->quiet = true;
                break;
            case 'h':
                cmp_usage(stdout);
                exit(0);
            case '?':
            case ':':
                pd__opt_try_help(&p);
                return -1;
            default:
                if (!parse_one(&p, ch, optarg, o)) return -1;
                break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "paidan-bench compare: unexpected argument '%s'\n", argv[optind]);
        pd__opt_try_help(&p);
        return -1;
    }
    return 0;
}

/* The charts of the systems that ran; false (with a message) if they were
 * not written. */
static bool plot(const cmp_opts_t *o, sys_t *sys, size_t n) {
    if (!pd__plot_begin(o->plot_dir)) return false;
    const pd_hist_t *hs[CMP_NSYS];
    size_t m = 0;
    char cols[256] = "";
    size_t cl = 0;
    FILE *f = pd__plot_open(o->plot_dir, "compare-summary.dat");
    if (!f) return false;
    fprintf(f, "# system p50_us p99_us queries_per_s\n");
    for (size_t i = 0; i < n; i++) {
        if (!sys[i].ran) continue;
        hs[m++] = sys[i].hist;
        cl += (size_t)snprintf(cols + cl, sizeof cols - cl, "%s%s", cl ? "," : "", sys[i].name);
        fprintf(f, "%s %.3f %.3f %.1f\n", sys[i].name,
                (double)pd_hist_percentile(sys[i].hist, 50) / 1000.0,
                (double)pd_hist_percentile(sys[i].hist, 99) / 1000.0,
                sys[i].wall_s > 0 ? (double)sys[i].hist->count / sys[i].wall_s : 0);
    }
    if (fclose(f) != 0) return false;
    if (pd__plot_percentile_data(o->plot_dir, "compare-percentiles.dat", hs, m)) return false;
    char body[4096];
    size_t len = (size_t)snprintf(body, sizeof body,
                                  "set output 'compare-latency.'.ext\n"
                                  "set title 'paidan-bench compare: nearby query latency'\n"
                                  "set style data histograms\nset style histogram clustered\n"
                                  "set style fill solid 0.8 border -1\nset logscale y\n"
                                  "set ylabel 'latency (us)'\n"
                                  "plot 'compare-summary.dat' using 2:xtic(1) title 'p50', '' "
                                  "using 3 title 'p99'\n"
                                  "set output 'compare-throughput.'.ext\n"
                                  "set title 'paidan-bench compare: queries per second, one "
                                  "client'\nset ylabel 'queries/s'\n"
                                  "plot 'compare-summary.dat' using 4:xtic(1) title 'queries/s'\n"
                                  "unset logscale\nset style data linespoints\n"
                                  "set output 'compare-percentiles.'.ext\n"
                                  "set title 'paidan-bench compare: latency by percentile'\n%s"
                                  "plot ",
                                  pd__plot_percentile_axes());
    size_t col = 3, idx = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sys[i].ran) continue;
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "%s'compare-percentiles.dat' using 2:%zu title '%s'",
                                idx ? ", " : "", col++, sys[i].name);
        idx++;
    }
    if (len < sizeof body) snprintf(body + len, sizeof body - len, "\n");
    return pd__plot_run(o->plot_dir, "compare", body,
                        "compare-latency,compare-throughput,compare-percentiles") == PD_OK;
}

int pd__bench_compare(int argc, char **argv) {
    cmp_opts_t o;
    memset(&o, 0, sizeof o);
    if (parse_opts(argc, argv, &o)) return 2;
    /* A --plot that cannot be written fails now, not after the run. */
    if (o.plot_dir && !pd__plot_begin(o.plot_dir)) return 1;

    pd__county_t cty;
    say(&o, "generating the county and the queries");
    pd_err gerr = pd__county_generate(&cty, o.volunteers, o.queries, o.seed);
    if (gerr) {
        fprintf(stderr,
                "paidan-bench compare: cannot generate a county of %llu volunteers and %llu "
                "queries: %s\n",
                (unsigned long long)o.volunteers, (unsigned long long)o.queries, pd_strerror(gerr));
        return 1;
    }
    pd_engine_config_t cfg;
    pd_engine_config_init(&cfg);
    cfg.policy = PD_POLICY_NEAREST;
    pd_engine_t *e = NULL;
    if (pd_engine_create(&cfg, &e)) {
        fprintf(stderr, "paidan-bench compare: cannot create the reference engine\n");
        pd__county_deinit(&cty);
        return 1;
    }
    sys_t sys[CMP_NSYS];
    memset(sys, 0, sizeof sys);
    const char *names[CMP_NSYS] = {"paidan-inproc", "paidan", "redis", "postgis", "tarantool"};
    answers_t ans[CMP_NSYS];
    cq_t *qs = calloc(o.queries, sizeof *qs);
    bool oom = !qs;
    for (int i = 0; i < CMP_NSYS; i++) {
        sys[i].name = names[i];
        sys[i].hist = malloc(sizeof *sys[i].hist);
        ans[i].ids = calloc(o.queries * o.k, sizeof *ans[i].ids);
        ans[i].n = calloc(o.queries, 1);
        oom |= !sys[i].hist || !ans[i].ids || !ans[i].n;
        if (sys[i].hist) pd_hist_init(sys[i].hist);
    }
    int rc = 0;
    if (oom) {
        fprintf(stderr, "paidan-bench compare: out of memory\n");
        rc = 1;
        goto done;
    }
    uint64_t l0 = pd__bench_now_ns();
    for (size_t i = 0; i < cty.n; i++) {
        if (pd_engine_volunteer_upsert(e, &cty.vols[i], 0)) {
            fprintf(stderr, "paidan-bench compare: volunteer %llu refused\n",
                    (unsigned long long)cty.vols[i].id);
            rc = 1;
            goto done;
        }
    }
    sys[0].load_s = (double)(pd__bench_now_ns() - l0) / 1e9;
    for (size_t i = 0; i < o.queries; i++) {
        pd_gen_order_t ord;
        cq_t *q = &qs[i];
        if (!pd__county_order(&cty, &ord)) {
            memset(&ord, 0, sizeof ord);
            pd__county_point(&cty, &ord.pos);
            ord.start_ms = 1709600400000LL;
            ord.duration_min = 60;
        }
        q->at = ord.pos;
        q->skills = ord.skills;
        q->start_ms = ord.start_ms;
        q->duration_min = ord.duration_min;
        if (pd_engine_week_window(e, ord.start_ms, ord.duration_min, &q->need))
            q->need = pd_week_none();
    }

    say(&o, "%s: querying", "paidan-inproc");
    run_inproc(&o, e, qs, &sys[0], &ans[0]);
    bool want[CMP_NSYS] = {true};
    for (int i = 1; i < CMP_NSYS; i++) want[i] = pd__bench_selected(o.systems, names[i]);
    if (want[1]) run_paidan(&o, &cty, qs, &sys[1], &ans[1]);
    if (want[2]) run_redis(&o, &cfg, &cty, qs, &sys[2], &ans[2]);
    if (want[3]) {
#ifdef PD_HAVE_LIBPQ
        run_postgis(&o, &cfg, &cty, qs, &sys[3], &ans[3]);
#else
        snprintf(sys[3].skipped, sizeof sys[3].skipped,
                 "built without libpq (install libpq-dev and rebuild)");
#endif
    }
    if (want[4]) run_tarantool(&o, &cfg, &cty, qs, &sys[4], &ans[4]);
    int rivals = 0, skipped = 0; /* systems of --systems that ran, and not */
    for (int i = 0; i < CMP_NSYS; i++) {
        if (want[i] && !sys[i].ran)
            fprintf(stderr, "compare: skipping %s: %s\n", sys[i].name, sys[i].skipped);
        if (sys[i].ran) score(&sys[i], &ans[0], &ans[i], o.queries, o.k);
        if (i > 0 && want[i]) {
            rivals += sys[i].ran;
            skipped += !sys[i].ran;
        }
    }

    /* The report: each system's latency and throughput, and paidan's
     * ratios against the rivals (over TCP when the server ran). */
    pd__report_t *rep = calloc(1, sizeof *rep);
    if (!rep) {
        rc = 1;
        goto done;
    }
    pd__report_init(rep, "compare", o.json);
    pd__report_param_num(rep, "volunteers", (double)o.volunteers);
    pd__report_param_num(rep, "queries", (double)o.queries);
    pd__report_param_u64(rep, "seed", o.seed);
    pd__report_param_num(rep, "k", o.k);
    pd__report_param_num(rep, "budget_min", o.budget_s / 60);
    pd__report_param_num(rep, "candidates", o.candidates);
    pd__report_param_str(rep, "clients", "1, one query at a time");
    for (int i = 0; i < CMP_NSYS; i++) {
        if (!sys[i].ran) continue;
        char note[96];
        snprintf(note, sizeof note, "agreement %.1f%%, load %.1f s%s", sys[i].agreement * 100,
                 sys[i].load_s, i == 0 ? " (reference)" : "");
        pd__result_t *r = pd__report_add(rep, sys[i].name, note);
        if (!r) continue;
        pd_hist_merge(r->hist, sys[i].hist);
        r->busy_ns = r->wall_ns = (uint64_t)(sys[i].wall_s * 1e9);
        r->errors = sys[i].errors;
    }
    int base = sys[1].ran ? 1 : 0;
    char extra[4096];
    size_t el = (size_t)snprintf(extra, sizeof extra, "{\"baseline\":\"%s\"", sys[base].name);
    for (int i = 2; i < CMP_NSYS; i++) {
        if (!sys[i].ran) continue;
        double bp50 = (double)pd_hist_percentile(sys[base].hist, 50);
        double bp99 = (double)pd_hist_percentile(sys[base].hist, 99);
        double bq = sys[base].wall_s > 0 ? (double)sys[base].hist->count / sys[base].wall_s : 0;
        double q = sys[i].wall_s > 0 ? (double)sys[i].hist->count / sys[i].wall_s : 0;
        el += (size_t)snprintf(
            extra + el, sizeof extra - el,
            ",\"%s\":{\"p50\":%.2f,\"p99\":%.2f,\"throughput\":%.2f,"
            "\"agreement\":%.4f,\"widened\":%llu}",
            sys[i].name, bp50 > 0 ? (double)pd_hist_percentile(sys[i].hist, 50) / bp50 : 0,
            bp99 > 0 ? (double)pd_hist_percentile(sys[i].hist, 99) / bp99 : 0, q > 0 ? bq / q : 0,
            sys[i].agreement, (unsigned long long)sys[i].widened);
    }
    snprintf(extra + el, sizeof extra - el, "}");
    if (o.json) {
        pd__report_extra(rep, "ratios", extra);
        char sk[4096];
        size_t sl = (size_t)snprintf(sk, sizeof sk, "{");
        bool first = true;
        for (int i = 0; i < CMP_NSYS; i++) {
            if (!want[i] || sys[i].ran) continue;
            char clean[1024];
            size_t j = 0;
            for (const char *p = sys[i].skipped; *p && j + 1 < sizeof clean; p++)
                clean[j++] = (*p == '"' || *p == '\\') ? '\'' : (unsigned char)*p < 0x20 ? ' ' : *p;
            clean[j] = '\0';
            sl += (size_t)snprintf(sk + sl, sizeof sk - sl, "%s\"%s\":\"%s\"", first ? "" : ",",
                                   sys[i].name, clean);
            first = false;
        }
        snprintf(sk + sl, sizeof sk - sl, "}");
        pd__report_extra(rep, "skipped", sk);
    }
    pd__report_print(rep, stdout);
    if (!o.json) {
        for (int i = 2; i < CMP_NSYS; i++) {
            if (!sys[i].ran) continue;
            double bp50 = (double)pd_hist_percentile(sys[base].hist, 50);
            double bp99 = (double)pd_hist_percentile(sys[base].hist, 99);
            double bq = (double)sys[base].hist->count / sys[base].wall_s;
            double q = (double)sys[i].hist->count / sys[i].wall_s;
            printf("%s vs %s: p50 %.1fx, p99 %.1fx slower; %.1fx fewer queries/s", sys[i].name,
                   sys[base].name, (double)pd_hist_percentile(sys[i].hist, 50) / bp50,
                   (double)pd_hist_percentile(sys[i].hist, 99) / bp99, bq / q);
            /* Tarantool's procedure walks its R-tree until the answer is
             * exact: it has no candidates to widen. */
            if (i == 4)
                printf("\n");
            else
                printf(" (%llu queries widened their candidates)\n",
                       (unsigned long long)sys[i].widened);
        }
    }
    /* The reference alone compares nothing; a system asked for by name
     * that did not run is a comparison the user did not get. */
    if (rivals == 0) {
        fprintf(stderr, "paidan-bench compare: nothing to compare: every system was skipped\n");
        rc = 1;
    } else if (skipped && o.systems_named) {
        fprintf(stderr, "paidan-bench compare: %d of the systems of --systems did not run\n",
                skipped);
        rc = 1;
    }
    if (o.plot_dir && !plot(&o, sys, CMP_NSYS)) {
        fprintf(stderr, "paidan-bench compare: the charts were not written to %s\n", o.plot_dir);
        rc = 1;
    }
    pd__report_deinit(rep);
    free(rep);

done:
    for (int i = 0; i < CMP_NSYS; i++) {
        free(sys[i].hist);
        free(ans[i].ids);
        free(ans[i].n);
    }
    free(qs);
    pd_engine_destroy(e);
    pd__county_deinit(&cty);
    return rc;
}
