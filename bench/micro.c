/* micro.c -- paidan-bench micro: the index in-process, no network.
 *
 * Loads a generated county of N volunteers into a fresh index (timing every
 * insert), then runs named cases, each a loop of single operations timed
 * one by one into a histogram:
 *
 *   insert   every insert of the load
 *   nearest  k nearest qualified for an order of the generated stream: its
 *            place, skills, time window and 15-minute budget
 *   nearest_hot  the same query run twice in a row, the second timed: what
 *            it costs with its cache lines already in (the CPU's share;
 *            nearest minus this is the memory's)
 *   nearest_warm  the first W queries (--warm-set) over and over: how many
 *            queries' lines the machine's cache keeps
 *   within   every qualified volunteer within a radius of a populated place
 *   move     a location ping: a random volunteer moves ~100 m
 *   update   a full record update of a random volunteer (skills, schedule)
 *
 * and, through the engine (the same county loaded into a pd_engine):
 *
 *   dispatch  order.create + dispatch to the first offer, for orders of the
 *             generated stream at their creation time
 *   accept    the offered volunteer accepts
 *   complete  the accepted order is completed (hours recorded)
 *   batch     100 created orders assigned at once, optimally (min-cost
 *             flow; greedy's total reported beside it)
 *   mobilize  every qualified volunteer within a radius of the county
 *             seat (limit 10000): count and latency
 *
 * Memory is the growth of the resident set over the load, divided by N
 * (jemalloc is the allocator), next to the index's own accounting.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "opt.h"
#include "paidan/alloc.h"
#include "paidan/data.h"
#include "paidan/engine.h"
#include "paidan/index.h"

/* The most volunteers or queries a run takes: ten times the largest county
 * tested (docs/bench.md), and far from where n * sizeof overflows. */
#define MICRO_MAX_COUNT 100000000ULL

typedef struct micro_opts_s {
    uint64_t volunteers;
    uint64_t queries;
    uint64_t seed;
    uint32_t k;
    double within_radius_m;
    double mobilize_radius_m;
    uint32_t within_limit;
    uint32_t warm_set;
    uint32_t batch_orders; /* orders per batch call */
    uint32_t batch_k;      /* candidates per slot; 0 = the engine's batch_k */
    int32_t cell_e6;
    const char *filter;
    bool json;
    bool quiet;
    bool huge_pages;
} micro_opts_t;

static void micro_usage(FILE *out) {
    fprintf(out,
            "usage: paidan-bench micro [options]\n"
            "  -n, --volunteers N     county size (default 1000000; 10^5..10^7 tested,\n"
            "                         at most 10^8)\n"
            "  -q, --queries Q        operations per case (default 200000, at most 10^8)\n"
            "  -s, --seed S           generator seed (default 1)\n"
            "  -k, --k K              neighbours per nearest query (default 10)\n"
            "      --radius-m R       radius of the within case (default 2000)\n"
            "      --limit L          result limit of the within case (default 1000)\n"
            "      --cell-e6 C        grid cell height in micro-degrees (default 10000;\n"
            "                         500..1000000)\n"
            "  -f, --filter LIST      only these cases, comma-separated\n"
            "                         (insert is always measured: it is the load)\n"
            "      --json             one JSON object instead of the table\n"
            "      --quiet            no progress lines on stderr (one per case otherwise)\n"
            "  -h, --help             this text\n"
            "      --mobilize-radius-m R  radius of the mobilize case (default 1000)\n"
            "      --huge-pages       after the load, back the cells with huge pages\n"
            "                         (pd_index_huge_pages, as paidan-server --huge-pages)\n"
            "      --warm-set W       queries the nearest_warm case cycles through\n"
            "                         (default 30, 1..100000)\n"
            "      --batch-orders B   orders per call of the batch case (default 100,\n"
            "                         1..100000; the engine refuses slots x k over 131072)\n"
            "      --batch-k K        candidates per slot in the batch case (default 0 =\n"
            "                         the engine's batch_k, 8; at most 64)\n"
            "cases: insert nearest nearest_hot nearest_warm within move update machine_cpu\n"
            "       machine_mem |\n"
            "       dispatch accept complete batch mobilize\n"
            "(the engine cases load the county a second time, into an engine)\n");
}

/* The cases, in the order they run (--filter takes these names). */
static const char *const micro_cases[] = {
    "insert",      "nearest",     "nearest_hot", "nearest_warm", "within",   "move",  "update",
    "machine_cpu", "machine_mem", "dispatch",    "accept",       "complete", "batch", "mobilize"};

/* One option's value into o; false (with the message printed) if bad. */
static bool parse_one(const pd__opt_t *p, int c, const char *arg, micro_opts_t *o) {
    switch (c) {
        case 'n':
            return pd__opt_u64(p, c, arg, 1, MICRO_MAX_COUNT, &o->volunteers);
        case 'q':
            return pd__opt_u64(p, c, arg, 1, MICRO_MAX_COUNT, &o->queries);
        case 's':
            return pd__opt_u64(p, c, arg, 0, UINT64_MAX, &o->seed);
        case 'k':
            return pd__opt_u32(p, c, arg, 1, 100000, &o->k);
        case 'R':
            return pd__opt_num(p, c, arg, 1, PD_QUERY_MAX_RADIUS_M, &o->within_radius_m);
        case 'L':
            return pd__opt_u32(p, c, arg, 1, 1000000, &o->within_limit);
        case 'M':
            return pd__opt_num(p, c, arg, 1, PD_QUERY_MAX_RADIUS_M, &o->mobilize_radius_m);
        case 'W':
            return pd__opt_u32(p, c, arg, 1, 100000, &o->warm_set);
        case 'B':
            return pd__opt_u32(p, c, arg, 1, 100000, &o->batch_orders);
        case 'K':
            return pd__opt_u32(p, c, arg, 0, PD_MAX_BATCH_K, &o->batch_k);
        case 'C': {
            /* The index refuses other heights (pd_index_config_t). */
            uint32_t v = 0;
            if (!pd__opt_u32(p, c, arg, 500, 1000000, &v)) return false;
            o->cell_e6 = (int32_t)v;
            return true;
        }
        case 'f':
            o->filter = arg;
            return pd__opt_list(p, c, arg, "case", micro_cases,
                                sizeof micro_cases / sizeof micro_cases[0]);
        default:
            return false;
    }
}

static int parse_opts(int argc, char **argv, micro_opts_t *o) {
    static const struct option longs[] = {{"volunteers", required_argument, 0, 'n'},
                                          {"queries", required_argument, 0, 'q'},
                                          {"seed", required_argument, 0, 's'},
                                          {"k", required_argument, 0, 'k'},
                                          {"radius-m", required_argument, 0, 'R'},
                                          {"limit", required_argument, 0, 'L'},
                                          {"cell-e6", required_argument, 0, 'C'},
                                          {"filter", required_argument, 0, 'f'},
                                          {"mobilize-radius-m", required_argument, 0, 'M'},
                                          {"warm-set", required_argument, 0, 'W'},
                                          {"batch-orders", required_argument, 0, 'B'},
                                          {"batch-k", required_argument, 0, 'K'},
                                          {"json", no_argument, 0, 'J'},
                                          {"huge-pages", no_argument, 0, 'H'},
                                          {"quiet", no_argument, 0, 'Q'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const pd__opt_t p = {"micro", "n:q:s:k:f:h", longs};
    o->volunteers = 1000000;
    o->queries = 200000;
    o->seed = 1;
    o->k = 10;
    o->within_radius_m = 2000;
    o->mobilize_radius_m = 1000;
    o->within_limit = 1000;
    o->warm_set = 30;
    o->batch_orders = 100;
    o->cell_e6 = 10000;
    pd__opt_begin(&p, argv);
    int c;
    while ((c = getopt_long(argc, argv, p.shorts, longs, NULL)) != -1) {
        switch (c) {
            case 'J':
                o->json = true;
                break;
            case 'Q':
                o->quiet = true;
                break;
            case 'H':
                o->huge_pages = true;
                break;
            case 'h':
                micro_usage(stdout);
                exit(0);
            case '?':
            case ':':
                pd__opt_try_help(&p);
                return -1;
            default:
                if (!parse_one(&p, c, optarg, o)) return -1;
                break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "paidan-bench micro: unexpected argument '%s'\n", argv[optind]);
        pd__opt_try_help(&p);
        return -1;
    }
    return 0;
}

/* Minutes into the local week (Monday 00:00 = 0) of a UTC timestamp. The
 * Unix epoch fell on a Thursday, three days after a Monday. */
static int32_t how_min(int64_t ms, int32_t utc_offset_min) {
    int64_t m = ms / 60000 + utc_offset_min + 3 * 1440;
    m %= 7 * 1440;
    if (m < 0) m += 7 * 1440;
    return (int32_t)m;
}

static void progress(const micro_opts_t *o, const char *what, uint64_t done, uint64_t total) {
    if (!o->quiet)
        fprintf(stderr, "micro: %s %llu/%llu\n", what, (unsigned long long)done,
                (unsigned long long)total);
}

/* One line as each case starts: at the default sizes a case runs for
 * seconds, and a silent terminal looks like a hang. */
static void starting(const micro_opts_t *o, const char *name, uint64_t ops) {
    if (!o->quiet) fprintf(stderr, "micro: %s (%llu operations)\n", name, (unsigned long long)ops);
}

static bool engine_selected(const micro_opts_t *o) {
    static const char *const names[] = {"dispatch", "accept", "complete", "batch", "mobilize"};
    if (!o->filter) return true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (pd__bench_selected(o->filter, names[i])) return true;
    return false;
}

/* A whole pass of pd_index_huge_pages. Callers first have the allocator
 * return what it held of the blocks the cells grew out of, so those holes
 * are not filled again. */
static void huge_pages(pd_index_t *ix, size_t *pages) {
    size_t total = 0, n = 0;
    bool done = false;
    while (!done) {
        pd_index_huge_pages(ix, 64, &n, &done);
        total += n;
    }
    if (pages) *pages = total;
}

/* What the machine alone does to a latency distribution, as two cases
 * beside the index's. machine_cpu: a fixed chain of arithmetic, no memory
 * (about a nearest_hot's worth): its tail is interrupts, preemption and
 * the hypervisor. machine_mem: MACHINE_READS dependent reads at random over
 * MACHINE_BYTES of ordinary (4 KiB-page) memory, about the misses of a cold
 * query: cache and TLB misses, and their tail. */
#define MACHINE_READS 32
#define MACHINE_BYTES ((size_t)256 << 20)

static bool machine_cases(const micro_opts_t *o, pd__report_t *rep) {
    if (pd__bench_selected(o->filter, "machine_cpu")) {
        starting(o, "machine_cpu", o->queries);
        pd__result_t *r =
            pd__report_add(rep, "machine_cpu", "4,000 dependent multiply-adds, no memory");
        volatile uint64_t sink = 0;
        uint64_t w0 = pd__bench_now_ns();
        for (uint64_t i = 0; i < o->queries; i++) {
            uint64_t x = i | 1;
            uint64_t t0 = pd__bench_now_ns();
            for (int k = 0; k < 4000; k++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t t1 = pd__bench_now_ns();
            sink += x;
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
        (void)sink;
    }
    if (pd__bench_selected(o->filter, "machine_mem")) {
        starting(o, "machine_mem", o->queries);
        size_t nlines = MACHINE_BYTES / 64;
        uint64_t *buf = malloc(MACHINE_BYTES);
        if (!buf) {
            fprintf(stderr, "paidan-bench micro: machine_mem: out of memory for its 256 MiB\n");
            return false;
        }
        /* each line names a random next line */
        uint64_t x = o->seed * 0x9E3779B97F4A7C15ULL + 7;
        for (size_t i = 0; i < nlines; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i * 8] = x % nlines;
        }
        pd__result_t *r =
            pd__report_add(rep, "machine_mem", "32 dependent reads at random over 256 MiB");
        volatile uint64_t sink = 0;
        uint64_t w0 = pd__bench_now_ns();
        for (uint64_t i = 0; i < o->queries; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t at = x % nlines;
            uint64_t t0 = pd__bench_now_ns();
            for (int k = 0; k < MACHINE_READS; k++) at = buf[at * 8];
            uint64_t t1 = pd__bench_now_ns();
            sink += at;
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
        (void)sink;
        free(buf);
        pd_alloc_release_free();
    }
    return true;
}

static void timed(pd__result_t *r, uint64_t t0, uint64_t t1) {
    pd_hist_record(r->hist, t1 - t0);
    r->busy_ns += t1 - t0;
}

/* An order of the generated stream as the engine takes it, one volunteer
 * wanted (the cases time one offer per order). */
static void order_spec(const pd_gen_order_t *ord, pd_order_spec_t *sp) {
    pd_gen_order_spec(ord, sp);
    sp->need = 1;
}

static pd__result_t *maybe_add(const micro_opts_t *o, pd__report_t *rep, const char *name,
                               const char *note) {
    return pd__bench_selected(o->filter, name) ? pd__report_add(rep, name, note) : NULL;
}

/* The engine cases: the same county in a pd_engine, then the order
 * lifecycle and the batch and mobilisation calls, each timed per call.
 * False (with a message) if they could not run. */
static bool run_engine_cases(const micro_opts_t *o, pd__report_t *rep) {
    if (!engine_selected(o)) return true;
    pd_gen_config_t gcfg;
    pd_gen_config_init(&gcfg);
    gcfg.seed = o->seed;
    gcfg.volunteers = o->volunteers;
    gcfg.orders = o->queries + 100 * 200;
    pd_gen_t *gen = NULL;
    pd_engine_t *e = NULL;
    pd_engine_config_t ecfg;
    pd_engine_config_init(&ecfg);
    ecfg.index.cell_e6 = o->cell_e6;
    if (pd_gen_create(&gcfg, &gen) || pd_engine_create(&ecfg, &e)) {
        fprintf(stderr, "paidan-bench micro: engine setup failed\n");
        pd_gen_destroy(gen);
        return false;
    }
    int64_t now = gcfg.start_ms;
    pd_volunteer_t v;
    uint64_t loaded = 0;
    if (!o->quiet)
        fprintf(stderr, "micro: loading %llu volunteers into an engine\n",
                (unsigned long long)o->volunteers);
    bool ok = true;
    while (pd_gen_next_volunteer(gen, &v)) {
        pd_err err = pd_engine_volunteer_upsert(e, &v, now);
        if (err) {
            fprintf(stderr, "paidan-bench micro: engine: volunteer %llu: %s\n",
                    (unsigned long long)v.id, pd_strerror(err));
            ok = false;
            break;
        }
        if (++loaded % 1000000 == 0) progress(o, "engine loaded", loaded, o->volunteers);
    }
    if (!ok) {
        pd_engine_destroy(e);
        pd_gen_destroy(gen);
        return false;
    }
    pd_index_optimize((pd_index_t *)pd_engine_get_index(e), SIZE_MAX, NULL);
    if (o->huge_pages) {
        pd_alloc_release_free();
        huge_pages((pd_index_t *)pd_engine_get_index(e), NULL);
    }

    /* ---- dispatch, accept, complete over the order stream */
    uint64_t n = o->queries;
    uint64_t *ids = malloc(n * sizeof *ids), *vols = malloc(n * sizeof *vols);
    int64_t *when = malloc(n * sizeof *when); /* offer time: answers come 30 s later */
    if (!ids || !vols || !when) {
        fprintf(stderr, "paidan-bench micro: engine cases: out of memory for %llu orders\n",
                (unsigned long long)n);
        ok = false;
    }
    pd__result_t *r_disp = maybe_add(o, rep, "dispatch", "");
    if (r_disp)
        starting(o, "dispatch", n);
    else if (!o->quiet)
        fprintf(stderr, "micro: creating %llu orders first (untimed)\n", (unsigned long long)n);
    uint64_t offered = 0, created = 0;
    int64_t last_ms = now;
    uint64_t w0 = pd__bench_now_ns();
    for (uint64_t i = 0; i < n && ids && vols && when; i++) {
        pd_gen_order_t ord;
        if (!pd_gen_next_order(gen, &ord)) break;
        pd_order_spec_t sp;
        order_spec(&ord, &sp);
        pd_order_state st;
        last_ms = ord.created_ms;
        uint64_t t0 = pd__bench_now_ns();
        pd_err err = pd_engine_order_create_dispatch(e, &sp, ord.created_ms, &st);
        uint64_t t1 = pd__bench_now_ns();
        if (r_disp) timed(r_disp, t0, t1);
        created++;
        pd_offer_t off;
        size_t noff = 0;
        if (!err && st == PD_ORDER_OFFERED &&
            pd_engine_order_offers(e, ord.id, &off, 1, &noff) == PD_OK && noff == 1) {
            ids[offered] = ord.id;
            vols[offered] = off.volunteer_id;
            when[offered] = ord.created_ms + 30000;
            offered++;
        }
    }
    if (r_disp) {
        r_disp->wall_ns = pd__bench_now_ns() - w0;
        snprintf(r_disp->note, sizeof r_disp->note,
                 "order.create + dispatch to the first offer (%.0f%% offered)",
                 created ? 100.0 * (double)offered / (double)created : 0.0);
    }
    pd__result_t *r_acc = maybe_add(o, rep, "accept", "the offered volunteer accepts");
    if (r_acc) starting(o, "accept", offered);
    uint64_t accepted = 0;
    w0 = pd__bench_now_ns();
    for (uint64_t i = 0; i < offered; i++) {
        uint64_t t0 = pd__bench_now_ns();
        pd_err err = pd_engine_order_accept(e, ids[i], vols[i], when[i]);
        uint64_t t1 = pd__bench_now_ns();
        if (r_acc) timed(r_acc, t0, t1);
        if (!err) {
            ids[accepted] = ids[i];
            when[accepted++] = when[i];
        }
    }
    if (r_acc) r_acc->wall_ns = pd__bench_now_ns() - w0;
    pd__result_t *r_cmp = maybe_add(o, rep, "complete", "order.complete: hours recorded");
    if (r_cmp) starting(o, "complete", accepted);
    w0 = pd__bench_now_ns();
    for (uint64_t i = 0; i < accepted; i++) {
        uint64_t t0 = pd__bench_now_ns();
        pd_engine_order_complete(e, ids[i], -1, when[i] + 3600000);
        uint64_t t1 = pd__bench_now_ns();
        if (r_cmp) timed(r_cmp, t0, t1);
    }
    if (r_cmp) r_cmp->wall_ns = pd__bench_now_ns() - w0;

    /* ---- batch: --batch-orders created orders at a time, optimal vs
     * greedy; 200 calls of the default 100, fewer (at least 3) of more */
    pd__result_t *r_bat = maybe_add(o, rep, "batch", "");
    uint64_t *bids = r_bat ? malloc(o->batch_orders * sizeof *bids) : NULL;
    if (r_bat && bids) {
        const uint32_t bo = o->batch_orders;
        const int rounds = bo <= 100 ? 200 : 20000 / bo < 3 ? 3 : (int)(20000 / bo);
        starting(o, "batch", (uint64_t)rounds);
        int64_t opt = 0, greedy = 0;
        bool refused = false;
        w0 = pd__bench_now_ns();
        for (int round = 0; round < rounds && !refused; round++) {
            size_t nb = 0;
            for (; nb < bo; nb++) {
                pd_gen_order_t ord;
                if (!pd_gen_next_order(gen, &ord)) break;
                pd_order_spec_t sp;
                order_spec(&ord, &sp);
                last_ms = ord.created_ms;
                if (pd_engine_order_create(e, &sp, ord.created_ms)) break;
                bids[nb] = ord.id;
            }
            if (nb == 0) break;
            pd_batch_req_t req;
            memset(&req, 0, sizeof req);
            req.order_ids = bids;
            req.n_orders = nb;
            req.k = o->batch_k;
            req.apply = PD_BATCH_APPLY_OPTIMAL;
            pd_batch_result_t res;
            uint64_t t0 = pd__bench_now_ns();
            pd_err err = pd_engine_batch(e, &req, last_ms, &res);
            uint64_t t1 = pd__bench_now_ns();
            if (err == PD_ERR_LIMIT) {
                fprintf(stderr,
                        "paidan-bench micro: a batch of %zu orders passes the engine's %d "
                        "candidate pairs (slots x k): lower --batch-orders or --batch-k\n",
                        nb, PD_MAX_BATCH_PAIRS);
                refused = true;
                ok = false;
                break;
            }
            timed(r_bat, t0, t1);
            if (!err) {
                opt += res.optimal_score_ms;
                greedy += res.greedy_score_ms;
            }
        }
        r_bat->wall_ns = pd__bench_now_ns() - w0;
        snprintf(r_bat->note, sizeof r_bat->note,
                 "%u orders by min-cost flow (optimal/greedy total %.4f)", bo,
                 greedy ? (double)opt / (double)greedy : 0.0);
    }
    free(bids);

    /* ---- mobilize: a radius around the county seat */
    pd__result_t *r_mob = maybe_add(o, rep, "mobilize", "");
    if (r_mob) {
        pd_gen_place_t seat;
        pd_hit_t *hits = malloc(10000 * sizeof *hits);
        uint64_t total_sum = 0, nq = 200;
        starting(o, "mobilize", nq);
        w0 = pd__bench_now_ns();
        if (hits && pd_gen_get_place(gen, 0, &seat) == PD_OK) {
            for (uint64_t i = 0; i < nq; i++) {
                pd_mobilise_t m;
                memset(&m, 0, sizeof m);
                m.at = seat.center;
                m.at.lat += (int32_t)(i % 20) * 100 - 1000;
                m.at.lon += (int32_t)(i / 20) * 100 - 1000;
                m.radius_m = o->mobilize_radius_m;
                size_t got = 0, total = 0;
                uint64_t t0 = pd__bench_now_ns();
                pd_engine_mobilise(e, &m, last_ms, hits, 10000, &got, &total);
                uint64_t t1 = pd__bench_now_ns();
                timed(r_mob, t0, t1);
                total_sum += total;
            }
        }
        r_mob->wall_ns = pd__bench_now_ns() - w0;
        snprintf(r_mob->note, sizeof r_mob->note,
                 "all available within %.0f m of the seat (mean %.0f, limit 10000)",
                 o->mobilize_radius_m, (double)total_sum / (double)nq);
        free(hits);
    }
    free(ids);
    free(vols);
    free(when);
    pd_engine_destroy(e);
    pd_gen_destroy(gen);
    return ok;
}

int pd__bench_micro(int argc, char **argv) {
    micro_opts_t o;
    memset(&o, 0, sizeof o);
    if (parse_opts(argc, argv, &o)) return 2;

    pd__report_t rep;
    pd__report_init(&rep, "micro", o.json);
    pd__report_param_num(&rep, "volunteers", (double)o.volunteers);
    pd__report_param_num(&rep, "queries", (double)o.queries);
    pd__report_param_u64(&rep, "seed", o.seed);
    pd__report_param_num(&rep, "k", o.k);
    pd__report_param_num(&rep, "budget_min", 15);
    pd__report_param_num(&rep, "within_radius_m", o.within_radius_m);
    pd__report_param_num(&rep, "within_limit", o.within_limit);
    pd__report_param_num(&rep, "warm_set", o.warm_set);
    pd__report_param_num(&rep, "batch_orders", o.batch_orders);
    pd__report_param_num(&rep, "batch_k", o.batch_k);
    pd__report_param_num(&rep, "cell_e6", o.cell_e6);
    pd__report_param_str(&rep, "huge_pages", o.huge_pages ? "yes" : "no");
    pd__report_param_num(&rep, "timer_overhead_ns", pd__bench_timer_overhead_ns());

    pd_gen_config_t gcfg;
    pd_gen_config_init(&gcfg);
    gcfg.seed = o.seed;
    gcfg.volunteers = o.volunteers;
    gcfg.orders = o.queries;
    pd_gen_t *gen = NULL;
    pd_err err = pd_gen_create(&gcfg, &gen);
    if (err) {
        fprintf(stderr, "paidan-bench micro: generator: %s\n", pd_strerror(err));
        return 1;
    }
    pd_index_config_t icfg;
    pd_index_config_init(&icfg);
    icfg.cell_e6 = o.cell_e6;
    pd_index_t *ix = NULL;
    if ((err = pd_index_create(&icfg, &ix))) {
        fprintf(stderr, "paidan-bench micro: index: %s\n", pd_strerror(err));
        pd_gen_destroy(gen);
        return 1;
    }

    /* Queries come from the generator's order stream, drawn before the load
     * so the RSS growth of the load is the index's alone. */
    pd_query_t *qs = malloc(o.queries * sizeof *qs);
    pd_latlng_t *places = malloc(o.queries * sizeof *places);
    pd_hit_t *hits = malloc((o.within_limit > o.k ? o.within_limit : o.k) * sizeof *hits);
    if (!qs || !places || !hits) {
        fprintf(stderr, "paidan-bench micro: out of memory for %llu queries\n",
                (unsigned long long)o.queries);
        return 1;
    }
    for (uint64_t i = 0; i < o.queries; i++) {
        pd_gen_order_t ord;
        if (!pd_gen_next_order(gen, &ord)) break;
        pd_query_t *q = &qs[i];
        memset(q, 0, sizeof *q);
        q->at = ord.pos;
        q->skills = ord.skills;
        q->budget_s = 15 * 60;
        pd_week_window(how_min(ord.start_ms, gcfg.utc_offset_min), ord.duration_min, &q->need);
        pd_gen_random_point(gen, &places[i]);
    }

    /* ---- insert: the load itself */
    starting(&o, "insert", o.volunteers);
    uint64_t rss0 = pd__bench_rss_bytes();
    pd__result_t *r_ins = pd__report_add(&rep, "insert", "load of the generated county");
    uint64_t wall0 = pd__bench_now_ns();
    pd_volunteer_t v;
    uint64_t loaded = 0;
    while (pd_gen_next_volunteer(gen, &v)) {
        uint64_t t0 = pd__bench_now_ns();
        err = pd_index_insert(ix, &v);
        uint64_t t1 = pd__bench_now_ns();
        if (err) {
            fprintf(stderr, "paidan-bench micro: insert %llu: %s\n", (unsigned long long)v.id,
                    pd_strerror(err));
            return 1;
        }
        pd_hist_record(r_ins->hist, t1 - t0);
        r_ins->busy_ns += t1 - t0;
        if (++loaded % 1000000 == 0) progress(&o, "loaded", loaded, o.volunteers);
    }
    r_ins->wall_ns = pd__bench_now_ns() - wall0;
    /* Tidy the cells once after the bulk load, as a server does from its
     * timer (pd_index_optimize); reported in the params. */
    size_t sorted = 0;
    uint64_t opt0 = pd__bench_now_ns();
    pd_index_optimize(ix, SIZE_MAX, &sorted);
    pd__report_param_num(&rep, "optimize_ms", (double)(pd__bench_now_ns() - opt0) / 1e6);
    pd__report_param_num(&rep, "cells_sorted", (double)sorted);
    /* Resident memory twice: right after the load, with what the
     * allocator still holds of the blocks cells grew out of (jemalloc
     * returns those within seconds), and after asking it to return them
     * now: what a server holds in steady state. */
    uint64_t rss_loaded = pd__bench_rss_bytes();
    pd_alloc_release_free();
    if (o.huge_pages) {
        size_t pages = 0;
        uint64_t h0 = pd__bench_now_ns();
        huge_pages(ix, &pages);
        pd__report_param_num(&rep, "huge_pages_ms", (double)(pd__bench_now_ns() - h0) / 1e6);
        pd__report_param_num(&rep, "huge_pages_asked", (double)pages);
    }
    uint64_t rss1 = pd__bench_rss_bytes();
    size_t own = pd_index_memory(ix);

    /* ---- nearest */
    uint64_t found = 0, empty = 0;
    if (pd__bench_selected(o.filter, "nearest")) {
        starting(&o, "nearest", o.queries);
        pd__result_t *r =
            pd__report_add(&rep, "nearest", "k nearest qualified: skills, time window, 15 min");
        uint64_t w0 = pd__bench_now_ns();
        for (uint64_t i = 0; i < o.queries; i++) {
            size_t n = 0;
            uint64_t t0 = pd__bench_now_ns();
            pd_index_nearest(ix, &qs[i], o.k, hits, &n);
            uint64_t t1 = pd__bench_now_ns();
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
            found += n;
            empty += n == 0;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
    }

    /* ---- nearest_hot: each query twice, the second timed */
    if (pd__bench_selected(o.filter, "nearest_hot")) {
        starting(&o, "nearest_hot", o.queries);
        pd__result_t *r =
            pd__report_add(&rep, "nearest_hot", "the same query again at once: its lines in cache");
        uint64_t w0 = pd__bench_now_ns();
        for (uint64_t i = 0; i < o.queries; i++) {
            size_t n = 0;
            pd_index_nearest(ix, &qs[i], o.k, hits, &n);
            uint64_t t0 = pd__bench_now_ns();
            pd_index_nearest(ix, &qs[i], o.k, hits, &n);
            uint64_t t1 = pd__bench_now_ns();
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
    }

    /* ---- nearest_warm: the first W queries over and over, after one
     * untimed pass: with W = 1 it is nearest_hot, with W large it is
     * nearest; where it turns says how much the cache keeps */
    if (pd__bench_selected(o.filter, "nearest_warm")) {
        uint64_t w = o.warm_set < o.queries ? o.warm_set : o.queries;
        char note[96];
        snprintf(note, sizeof note, "the first %llu queries over and over: what the cache keeps",
                 (unsigned long long)w);
        starting(&o, "nearest_warm", o.queries);
        pd__result_t *r = pd__report_add(&rep, "nearest_warm", note);
        for (uint64_t i = 0; i < w; i++) {
            size_t n = 0;
            pd_index_nearest(ix, &qs[i], o.k, hits, &n);
        }
        uint64_t w0 = pd__bench_now_ns();
        for (uint64_t i = 0; i < o.queries; i++) {
            size_t n = 0;
            uint64_t t0 = pd__bench_now_ns();
            pd_index_nearest(ix, &qs[i % w], o.k, hits, &n);
            uint64_t t1 = pd__bench_now_ns();
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
    }

    /* ---- the machine's own floor, with the same clock and histogram */
    bool ok = machine_cases(&o, &rep);

    /* ---- within */
    uint64_t within_total = 0;
    if (pd__bench_selected(o.filter, "within")) {
        pd__result_t *r = pd__report_add(&rep, "within", "all available within the radius");
        uint64_t w0 = pd__bench_now_ns();
        uint64_t nq = o.queries / 20 ? o.queries / 20 : 1;
        starting(&o, "within", nq);
        for (uint64_t i = 0; i < nq; i++) {
            pd_query_t q;
            memset(&q, 0, sizeof q);
            q.at = places[i];
            q.radius_m = o.within_radius_m;
            size_t n = 0, total = 0;
            uint64_t t0 = pd__bench_now_ns();
            pd_index_within(ix, &q, o.within_limit, hits, &n, &total);
            uint64_t t1 = pd__bench_now_ns();
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
            within_total += total;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
        snprintf(r->note, sizeof r->note, "all available within %.0f m (mean %.0f found)",
                 o.within_radius_m, (double)within_total / (double)nq);
    }

    /* ---- move: location pings of ~100 m */
    uint64_t rng = o.seed * 0x9E3779B97F4A7C15ULL + 1;
    if (pd__bench_selected(o.filter, "move")) {
        starting(&o, "move", o.queries);
        pd__result_t *r = pd__report_add(&rep, "move", "location ping: ~100 m hop");
        uint64_t w0 = pd__bench_now_ns();
        for (uint64_t i = 0; i < o.queries; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            uint64_t id = 1 + rng % o.volunteers;
            pd_volunteer_t cur;
            if (pd_index_get(ix, id, &cur)) continue;
            pd_latlng_t p = cur.pos;
            p.lat += (int32_t)(rng >> 40 & 2047) - 1024;
            p.lon += (int32_t)(rng >> 20 & 2047) - 1024;
            uint64_t t0 = pd__bench_now_ns();
            pd_index_move(ix, id, p);
            uint64_t t1 = pd__bench_now_ns();
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
    }

    /* ---- update: the whole record */
    if (pd__bench_selected(o.filter, "update")) {
        starting(&o, "update", o.queries);
        pd__result_t *r = pd__report_add(&rep, "update", "full record: skills, schedule, state");
        uint64_t w0 = pd__bench_now_ns();
        for (uint64_t i = 0; i < o.queries; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            uint64_t id = 1 + rng % o.volunteers;
            pd_volunteer_t cur;
            if (pd_index_get(ix, id, &cur)) continue;
            cur.skills ^= 1ULL << (rng >> 58 & 7);
            if (!cur.skills) cur.skills = 1;
            cur.week.bits[rng >> 62 & 1] ^= rng;
            uint64_t t0 = pd__bench_now_ns();
            pd_index_update(ix, &cur);
            uint64_t t1 = pd__bench_now_ns();
            pd_hist_record(r->hist, t1 - t0);
            r->busy_ns += t1 - t0;
        }
        r->wall_ns = pd__bench_now_ns() - w0;
    }

    ok &= run_engine_cases(&o, &rep);

    /* Memory and the quality of nearest: JSON members with --json, plain
     * lines under the table otherwise. */
    /* RSS can shrink over the load (the allocator returning pages): no
     * unsigned wrap-around. */
    uint64_t growth = rss1 > rss0 ? rss1 - rss0 : 0;
    double per_vol = (double)growth / (double)o.volunteers;
    double per_vol_held =
        (double)(rss_loaded > rss0 ? rss_loaded - rss0 : 0) / (double)o.volunteers;
    double mean_hits = (double)found / (double)o.queries;
    double empty_share = (double)empty / (double)o.queries;
    bool nearest = pd__bench_selected(o.filter, "nearest");
    if (o.json) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "{\"rss_bytes\":%llu,\"rss_growth_bytes\":%llu,\"bytes_per_volunteer\":%.1f,"
                 "\"bytes_per_volunteer_before_purge\":%.1f,"
                 "\"index_bytes\":%llu,\"index_bytes_per_volunteer\":%.1f}",
                 (unsigned long long)rss1, (unsigned long long)growth, per_vol, per_vol_held,
                 (unsigned long long)own, (double)own / (double)o.volunteers);
        pd__report_extra(&rep, "memory", buf);
        if (nearest) {
            snprintf(buf, sizeof buf, "{\"mean_hits\":%.2f,\"empty_share\":%.4f}", mean_hits,
                     empty_share);
            pd__report_extra(&rep, "nearest_quality", buf);
        }
    }
    pd__report_print(&rep, stdout);
    if (!o.json) {
        printf(
            "memory: %.1f bytes per volunteer resident (%.1f MB grown over the load, %.1f MB "
            "resident in all)\n",
            per_vol, (double)growth / 1e6, (double)rss1 / 1e6);
        printf("memory: %.1f bytes per volunteer before the allocator returned freed blocks\n",
               per_vol_held);
        printf("memory: the index's own accounting: %.1f bytes per volunteer (%.1f MB)\n",
               (double)own / (double)o.volunteers, (double)own / 1e6);
        if (nearest)
            printf("nearest: %.2f of k = %u found on average; %.2f%% of queries found nobody\n",
                   mean_hits, o.k, empty_share * 100);
    }

    pd__report_deinit(&rep);
    free(qs);
    free(places);
    free(hits);
    pd_index_destroy(ix);
    pd_gen_destroy(gen);
    if (!ok) fprintf(stderr, "paidan-bench micro: some cases could not run (above)\n");
    return ok ? 0 : 1;
}
