/* micro.c -- paidan-bench micro: the index in-process, no network.
 *
 * Loads a generated county of N volunteers into a fresh index (timing every
 * insert), then runs named cases, each a loop of single operations timed
 * one by one into a histogram:
 *
 *   insert   every insert of the load
 *   nearest  k nearest qualified for an order of the generated stream: its
 *            place, skills, time window and 15-minute budget
 *   within   every qualified volunteer within a radius of a populated place
 *   move     a location ping: a random volunteer moves ~100 m
 *   update   a full record update of a random volunteer (skills, schedule)
 *
 * Memory is the growth of the resident set over the load, divided by N
 * (jemalloc is the allocator), next to the index's own accounting.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "paidan/data.h"
#include "paidan/index.h"

typedef struct micro_opts_s {
    uint64_t volunteers;
    uint64_t queries;
    uint64_t seed;
    uint32_t k;
    double within_radius_m;
    uint32_t within_limit;
    int32_t cell_e6;
    const char *filter;
    bool json;
    bool quiet;
} micro_opts_t;

static void micro_usage(FILE *out) {
    fprintf(out,
            "usage: paidan-bench micro [options]\n"
            "  -n, --volunteers N     county size (default 1000000; 10^5..10^7 tested)\n"
            "  -q, --queries Q        operations per case (default 200000)\n"
            "  -s, --seed S           generator seed (default 1)\n"
            "  -k, --k K              neighbours per nearest query (default 10)\n"
            "      --radius-m R       radius of the within case (default 2000)\n"
            "      --limit L          result limit of the within case (default 1000)\n"
            "      --cell-e6 C        grid cell height in micro-degrees (default 10000)\n"
            "  -f, --filter LIST      only these cases, comma-separated\n"
            "                         (insert is always measured: it is the load)\n"
            "      --json             one JSON object instead of the table\n"
            "      --quiet            no progress lines on stderr\n"
            "  -h, --help             this text\n"
            "cases: insert nearest within move update\n");
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
                                          {"json", no_argument, 0, 'J'},
                                          {"quiet", no_argument, 0, 'Q'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    o->volunteers = 1000000;
    o->queries = 200000;
    o->seed = 1;
    o->k = 10;
    o->within_radius_m = 2000;
    o->within_limit = 1000;
    o->cell_e6 = 10000;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "n:q:s:k:f:h", longs, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
            case 'n':
                o->volunteers = strtoull(optarg, &end, 10);
                break;
            case 'q':
                o->queries = strtoull(optarg, &end, 10);
                break;
            case 's':
                o->seed = strtoull(optarg, &end, 10);
                break;
            case 'k':
                o->k = (uint32_t)strtoul(optarg, &end, 10);
                break;
            case 'R':
                o->within_radius_m = strtod(optarg, &end);
                break;
            case 'L':
                o->within_limit = (uint32_t)strtoul(optarg, &end, 10);
                break;
            case 'C':
                o->cell_e6 = (int32_t)strtol(optarg, &end, 10);
                break;
            case 'f':
                o->filter = optarg;
                break;
            case 'J':
                o->json = true;
                break;
            case 'Q':
                o->quiet = true;
                break;
            case 'h':
                micro_usage(stdout);
                exit(0);
            default:
                micro_usage(stderr);
                return -1;
        }
        if (end && *end) {
            fprintf(stderr, "paidan-bench micro: bad number '%s'\n", optarg);
            return -1;
        }
    }
    if (o->volunteers == 0 || o->queries == 0 || o->k == 0 || o->k > 100000 ||
        o->within_radius_m <= 0 || o->within_radius_m > PD_QUERY_MAX_RADIUS_M) {
        fprintf(stderr, "paidan-bench micro: volunteers, queries, k and radius must be > 0\n");
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

int pd__bench_micro(int argc, char **argv) {
    micro_opts_t o;
    memset(&o, 0, sizeof o);
    if (parse_opts(argc, argv, &o)) return 2;

    pd__report_t rep;
    pd__report_init(&rep, "micro", o.json);
    pd__report_param_num(&rep, "volunteers", (double)o.volunteers);
    pd__report_param_num(&rep, "queries", (double)o.queries);
    pd__report_param_num(&rep, "seed", (double)o.seed);
    pd__report_param_num(&rep, "k", o.k);
    pd__report_param_num(&rep, "budget_min", 15);
    pd__report_param_num(&rep, "within_radius_m", o.within_radius_m);
    pd__report_param_num(&rep, "within_limit", o.within_limit);
    pd__report_param_num(&rep, "cell_e6", o.cell_e6);
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
        fprintf(stderr, "paidan-bench micro: out of memory\n");
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
    uint64_t rss1 = pd__bench_rss_bytes();
    size_t own = pd_index_memory(ix);

    /* ---- nearest */
    uint64_t found = 0, empty = 0;
    if (pd__bench_selected(o.filter, "nearest")) {
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

    /* ---- within */
    uint64_t within_total = 0;
    if (pd__bench_selected(o.filter, "within")) {
        pd__result_t *r = pd__report_add(&rep, "within", "all available within the radius");
        uint64_t w0 = pd__bench_now_ns();
        uint64_t nq = o.queries / 20 ? o.queries / 20 : 1;
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

    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"rss_bytes\":%llu,\"rss_growth_bytes\":%llu,\"bytes_per_volunteer\":%.1f,"
             "\"index_bytes\":%llu,\"index_bytes_per_volunteer\":%.1f}",
             (unsigned long long)rss1, (unsigned long long)(rss1 - rss0),
             (double)(rss1 - rss0) / (double)o.volunteers, (unsigned long long)own,
             (double)own / (double)o.volunteers);
    pd__report_extra(&rep, "memory", buf);
    if (pd__bench_selected(o.filter, "nearest")) {
        snprintf(buf, sizeof buf, "{\"mean_hits\":%.2f,\"empty_share\":%.4f}",
                 (double)found / (double)o.queries, (double)empty / (double)o.queries);
        pd__report_extra(&rep, "nearest_quality", buf);
    }
    pd__report_print(&rep, stdout);

    pd__report_deinit(&rep);
    free(qs);
    free(places);
    free(hits);
    pd_index_destroy(ix);
    pd_gen_destroy(gen);
    return 0;
}
