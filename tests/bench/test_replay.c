/* test_replay.c -- paidan-bench replay is deterministic: the same history
 * and seed give the same figures and the same engine state, under every
 * policy; another seed gives another story. The input is taken as history:
 * rows out of time order replay at their own created time, repeated order
 * ids are skipped and counted. Then the command line as a user runs it
 * (the built paidan-bench, through PD_BINARY_DIR): exact seeds and the
 * engine configuration in the params, null for figures a run leaves
 * undefined, charts when nothing was filled. */
#define _GNU_SOURCE /* mkdtemp, open_memstream */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "replay.h"

static void generated(pd__replay_opts_t *o, uint64_t seed) {
    pd__replay_opts_init(o);
    o->gen_volunteers = 3000;
    o->gen_orders = 800;
    o->gen_days = 3;
    o->seed = seed;
    o->policies[0] = PD_POLICY_NEAREST;
    o->policies[1] = PD_POLICY_BALANCED;
    o->policies[2] = PD_POLICY_RATED;
    o->n_policies = 3;
}

static void run(const pd__replay_opts_t *o, pd__replay_result_t *rs) {
    char why[256] = "";
    pd_err err = pd__replay_run(o, rs, why, sizeof why);
    cr_assert_eq(err, PD_OK, "replay failed: %s (%s)", pd_strerror(err), why);
}

static void same(const pd__kpi_summary_t *a, const pd__kpi_summary_t *b) {
    cr_assert_eq(a->orders, b->orders);
    cr_assert_eq(a->filled, b->filled);
    cr_assert_eq(a->completed, b->completed);
    cr_assert_eq(a->rejected, b->rejected);
    cr_assert_eq(a->expired_total, b->expired_total);
    for (int r = 0; r < PD_REASON__COUNT; r++) cr_assert_eq(a->expired[r], b->expired[r]);
    /* Exact equality on purpose: the figures come from the same events. */
    cr_assert(a->fill_rate == b->fill_rate);
    cr_assert(a->tta_p50_s == b->tta_p50_s && a->tta_p90_s == b->tta_p90_s);
    cr_assert(a->eta_p50_s == b->eta_p50_s && a->eta_p90_s == b->eta_p90_s);
    cr_assert(a->in_circle_share == b->in_circle_share);
    cr_assert(a->gini_hours == b->gini_hours);
    cr_assert(a->served_share == b->served_share);
    cr_assert(a->hours_total == b->hours_total);
    cr_assert(a->rating_mean == b->rating_mean);
    cr_assert(a->offers_per_order == b->offers_per_order);
}

Test(replay, same_seed_same_report) {
    pd__replay_opts_t o;
    generated(&o, 7);
    pd__replay_result_t a[3], b[3];
    run(&o, a);
    run(&o, b);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(a[i].policy, o.policies[i]);
        same(&a[i].kpi, &b[i].kpi);
        cr_assert_eq(a[i].digest, b[i].digest, "policy %d: digest %llx vs %llx", i,
                     (unsigned long long)a[i].digest, (unsigned long long)b[i].digest);
        cr_assert_eq(a[i].kpi.orders, 800);
        cr_assert_gt(a[i].kpi.filled, 0);
        cr_assert_eq(a[i].volunteers, 3000);
        cr_assert_eq(a[i].n_tta, a[i].kpi.filled);
        cr_assert_eq(a[i].dispatch_ns->count, 800);
        /* Every order ends somewhere: filled, expired or refused. */
        cr_assert_eq(a[i].kpi.filled + a[i].kpi.expired_total + a[i].kpi.rejected, 800,
                     "policy %d: %llu filled + %llu expired + %llu rejected", i,
                     (unsigned long long)a[i].kpi.filled,
                     (unsigned long long)a[i].kpi.expired_total,
                     (unsigned long long)a[i].kpi.rejected);
        cr_assert_leq(a[i].kpi.completed, a[i].kpi.filled);
        cr_assert(a[i].kpi.gini_hours >= 0 && a[i].kpi.gini_hours < 1);
    }
    for (int i = 0; i < 3; i++) {
        pd__replay_result_deinit(&a[i]);
        pd__replay_result_deinit(&b[i]);
    }
}

/* The stars depend on who served: under `nearest` (which ignores ratings)
 * the same volunteers serve the same orders whatever the rating model, so
 * everything but the ratings stays; with the volunteers' quality in the
 * stars the mean rating moves. */
Test(replay, ratings_follow_the_serving_volunteers_quality) {
    pd__replay_opts_t o;
    generated(&o, 7);
    o.policies[0] = PD_POLICY_NEAREST;
    o.n_policies = 1;
    pd__replay_result_t luck, quality;
    o.model.rating_quality = 0;
    run(&o, &luck);
    o.model.rating_quality = 1;
    run(&o, &quality);
    cr_assert_eq(luck.kpi.filled, quality.kpi.filled);
    cr_assert(luck.kpi.hours_total == quality.kpi.hours_total);
    cr_assert(luck.kpi.eta_p50_s == quality.kpi.eta_p50_s);
    cr_assert_eq(luck.rated, quality.rated);
    cr_assert_gt(luck.rated, 20);
    cr_assert(luck.kpi.rating_mean != quality.kpi.rating_mean, "mean rating %.4f both ways",
              luck.kpi.rating_mean);
    /* quality alone: u' = q, uniform over the volunteers, so about the
     * star probabilities' own mean (4.42), not luck's draw of it */
    cr_assert(quality.kpi.rating_mean > 3.5 && quality.kpi.rating_mean < 5);
    pd__replay_result_deinit(&luck);
    pd__replay_result_deinit(&quality);
}

/* --withdraw: volunteers who accepted give slots back (order.release); the
 * slot goes to the next candidate or the order expires. Every order still
 * ends once (filled and served, expired or refused), and a fill undone by
 * a release is not counted. */
Test(replay, withdrawals_give_slots_back) {
    pd__replay_opts_t o;
    generated(&o, 7);
    o.n_policies = 1;
    pd__replay_result_t keep, give, again;
    run(&o, &keep);
    o.model.withdraw = 0.3;
    run(&o, &give);
    run(&o, &again);
    cr_assert_eq(keep.kpi.releases, 0);
    cr_assert_gt(give.kpi.releases, 30, "releases: %llu", (unsigned long long)give.kpi.releases);
    cr_assert_eq(give.digest, again.digest);
    cr_assert_eq(give.kpi.releases, again.kpi.releases);
    const pd__kpi_summary_t *k = &give.kpi;
    cr_assert_eq(k->filled + k->expired_total + k->rejected, k->orders,
                 "%llu filled + %llu expired + %llu rejected", (unsigned long long)k->filled,
                 (unsigned long long)k->expired_total, (unsigned long long)k->rejected);
    cr_assert_eq(k->completed, k->filled);
    cr_assert_eq(give.n_tta, k->filled);
    cr_assert_lt(k->filled, keep.kpi.filled);
    cr_assert_gt(k->expired[PD_REASON_EXHAUSTED], keep.kpi.expired[PD_REASON_EXHAUSTED]);
    pd__replay_result_deinit(&keep);
    pd__replay_result_deinit(&give);
    pd__replay_result_deinit(&again);
}

Test(replay, another_seed_another_history) {
    pd__replay_opts_t o;
    generated(&o, 7);
    o.n_policies = 1;
    pd__replay_result_t a, b;
    run(&o, &a);
    o.seed = 8;
    run(&o, &b);
    cr_assert_neq(a.digest, b.digest);
    pd__replay_result_deinit(&a);
    pd__replay_result_deinit(&b);
}

Test(replay, sample_county_csv) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert_not_null(src, "PD_SOURCE_DIR is not set");
    char vol[4096], ord[4096];
    snprintf(vol, sizeof vol, "%s/data/sample/county-volunteers.csv", src);
    snprintf(ord, sizeof ord, "%s/data/sample/county-orders.csv", src);
    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.volunteers_csv = vol;
    o.orders_csv = ord;
    o.grab = true;
    pd__replay_result_t a, b;
    run(&o, &a);
    run(&o, &b);
    cr_assert_eq(a.kpi.orders, 2000);
    cr_assert_eq(a.volunteers, 5000);
    cr_assert_gt(a.kpi.filled, 0);
    cr_assert_eq(a.digest, b.digest);
    same(&a.kpi, &b.kpi);
    pd__replay_result_deinit(&a);
    pd__replay_result_deinit(&b);
}

Test(replay, bad_input_is_named) {
    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.volunteers_csv = "/nonexistent/volunteers.csv";
    o.orders_csv = "/nonexistent/orders.csv";
    pd__replay_result_t r;
    char why[256] = "";
    cr_assert_neq(pd__replay_run(&o, &r, why, sizeof why), PD_OK);
    cr_assert(strstr(why, "volunteers.csv") != NULL, "reason: %s", why);
    pd__replay_result_deinit(&r);
}

/* ============================================== the input as history */

static char tmp[256]; /* a scratch directory per test */

static void scratch(void) {
    snprintf(tmp, sizeof tmp, "/tmp/pd-test-replay-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
}

static void scratch_rm(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}

static const char *sample(char *buf, size_t cap, const char *file) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert_not_null(src, "PD_SOURCE_DIR is not set");
    snprintf(buf, cap, "%s/data/sample/%s", src, file);
    return buf;
}

/* The lines of a file (header first); *n of them. Caller frees both. */
static char **lines_of(const char *path, size_t *n, char **text) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    *text = malloc((size_t)len + 1);
    cr_assert_eq(fread(*text, 1, (size_t)len, f), (size_t)len);
    (*text)[len] = '\0';
    fclose(f);
    size_t cap = 4096;
    char **v = malloc(cap * sizeof *v);
    *n = 0;
    for (char *p = strtok(*text, "\n"); p; p = strtok(NULL, "\n")) {
        if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = p;
    }
    return v;
}

static void write_lines(const char *path, char *const *v, size_t n) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s\n", v[i]);
    cr_assert_eq(fclose(f), 0);
}

static void csv_opts(pd__replay_opts_t *o, const char *vol, const char *ord) {
    pd__replay_opts_init(o);
    o->volunteers_csv = vol;
    o->orders_csv = ord;
}

/* The sample orders with the second half first: every order still
 * replays at its created time, so the run is the sorted file's run. Time
 * to accept used to be counted from a clamped time, hours late. */
Test(replay, unsorted_orders_replay_at_their_created_time) {
    scratch();
    char vol[4096], ord[4096], moved[512];
    sample(vol, sizeof vol, "county-volunteers.csv");
    sample(ord, sizeof ord, "county-orders.csv");
    size_t n;
    char *text;
    char **v = lines_of(ord, &n, &text);
    cr_assert_eq(n, 2001);
    char **w = malloc(n * sizeof *w);
    size_t half = 1 + (n - 1) / 2, k = 0;
    w[k++] = v[0];
    for (size_t i = half; i < n; i++) w[k++] = v[i];
    for (size_t i = 1; i < half; i++) w[k++] = v[i];
    snprintf(moved, sizeof moved, "%s/orders.csv", tmp);
    write_lines(moved, w, n);
    pd__replay_opts_t o;
    pd__replay_result_t a, b;
    csv_opts(&o, vol, ord);
    run(&o, &a);
    csv_opts(&o, vol, moved);
    run(&o, &b);
    cr_assert_eq(b.kpi.orders, 2000);
    same(&a.kpi, &b.kpi);
    cr_assert_eq(a.digest, b.digest, "out-of-order rows replayed another history");
    cr_assert_eq(a.first_ms, b.first_ms);
    cr_assert_eq(a.last_ms, b.last_ms);
    pd__replay_result_deinit(&a);
    pd__replay_result_deinit(&b);
    free(w);
    free(v);
    free(text);
    scratch_rm();
}

#define ORDERS_HEADER "id,created,lat,lon,skills,need,start,duration_min,priority,minutes"
#define VOLUNTEERS_HEADER "id,lat,lon,skills,tags,mode,schedule,capacity,status"

/* The first order at created = 0 (1970-01-01): the span starts there, not
 * at the next order (0 once meant "not set yet"). */
Test(replay, span_starts_at_a_created_time_of_zero) {
    scratch();
    char vol[512], ord[512];
    snprintf(vol, sizeof vol, "%s/v.csv", tmp);
    snprintf(ord, sizeof ord, "%s/o.csv", tmp);
    char *vl[] = {VOLUNTEERS_HEADER, "1,30.600000,114.300000,tutoring,0,car,always,1,online"};
    write_lines(vol, vl, 2);
    char *ol[] = {ORDERS_HEADER, "2,86400000,30.601000,114.301000,tutoring,1,90000000,60,normal,15",
                  "1,0,30.601000,114.301000,tutoring,1,3600000,60,normal,15"};
    write_lines(ord, ol, 3);
    pd__replay_opts_t o;
    csv_opts(&o, vol, ord);
    pd__replay_result_t r;
    run(&o, &r);
    cr_assert_eq(r.kpi.orders, 2);
    cr_assert_eq(r.first_ms, 0, "first_ms %lld", (long long)r.first_ms);
    cr_assert_eq(r.last_ms, 86400000);
    pd__replay_result_deinit(&r);
    scratch_rm();
}

/* Repeated order ids: the first of each replays, every repeat is skipped
 * and counted, whatever the time between them (the engine's purge of
 * closed orders once decided whether a repeat was refused). */
static void write_with_repeats(const char *path) {
    char ord[4096];
    sample(ord, sizeof ord, "county-orders.csv");
    size_t n;
    char *text;
    char **v = lines_of(ord, &n, &text);
    char **w = malloc((n + 3) * sizeof *w);
    memcpy(w, v, n * sizeof *w);
    w[n] = v[1];     /* order 1 again, days later */
    w[n + 1] = v[2]; /* and 2 */
    w[n + 2] = v[1]; /* and 1 a third time */
    write_lines(path, w, n + 3);
    free(w);
    free(v);
    free(text);
}

Test(replay, repeated_order_ids_are_skipped_and_counted) {
    scratch();
    char vol[4096], ord[4096], dup[512];
    sample(vol, sizeof vol, "county-volunteers.csv");
    sample(ord, sizeof ord, "county-orders.csv");
    snprintf(dup, sizeof dup, "%s/orders.csv", tmp);
    write_with_repeats(dup);
    pd__replay_opts_t o;
    pd__replay_result_t a, b;
    csv_opts(&o, vol, ord);
    run(&o, &a);
    csv_opts(&o, vol, dup);
    run(&o, &b);
    cr_assert_eq(a.duplicates, 0);
    cr_assert_eq(b.duplicates, 3);
    cr_assert_eq(b.n_dup_ids, 3);
    cr_assert(b.dup_ids[0] == 1 && b.dup_ids[1] == 2 && b.dup_ids[2] == 1);
    cr_assert_eq(b.kpi.orders, 2000);
    cr_assert_eq(b.kpi.rejected, a.kpi.rejected);
    cr_assert_eq(a.digest, b.digest);
    pd__replay_result_deinit(&a);
    pd__replay_result_deinit(&b);
    scratch_rm();
}

/* ============================================================ report */

/* Params print integers with every digit: a seed must reproduce the run. */
Test(report, integer_params_print_every_digit) {
    pd__report_t *rep = calloc(1, sizeof *rep);
    pd__report_init(rep, "replay", true);
    pd__report_param_num(rep, "seed", 12345678901.0);
    pd__report_param_u64(rep, "big", UINT64_MAX);
    pd__report_param_num(rep, "share", 0.85);
    pd__report_param_num(rep, "offset", -330);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pd__report_print(rep, f);
    fclose(f);
    cr_assert_not_null(strstr(buf, "\"seed\":12345678901,"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"big\":18446744073709551615,"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"share\":0.85,"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"offset\":-330}"), "%s", buf);
    free(buf);
    pd__report_deinit(rep);
    free(rep);
}

/* ================================================== the command line */

typedef struct cli_s {
    int status;
    char out[1 << 16];
    char err[1 << 14];
} cli_t;

static void read_into(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* sh -c "paidan-bench replay <args>", stdout and stderr kept. */
__attribute__((format(printf, 2, 3))) static void cli(cli_t *r, const char *fmt, ...) {
    const char *bin = getenv("PD_BINARY_DIR");
    cr_assert_not_null(bin, "PD_BINARY_DIR is not set (the build tree)");
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s/bench/paidan-bench' replay %s >'%s/out' 2>'%s/err' </dev/null",
             bin, args, tmp, tmp);
    int st = system(cmd);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char path[512];
    snprintf(path, sizeof path, "%s/out", tmp);
    read_into(path, r->out, sizeof r->out);
    snprintf(path, sizeof path, "%s/err", tmp);
    read_into(path, r->err, sizeof r->err);
}

#define HAS(hay, needle) cr_assert_not_null(strstr(hay, needle), "no %s in:\n%.3000s", needle, hay)

Test(replay_cli, seed_is_reported_exactly) {
    scratch();
    cli_t *r = malloc(sizeof *r);
    cli(r, "-n 200 -o 20 -s 12345678901 --json --quiet");
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"seed\":12345678901,");
    cli(r, "-n 200 -o 20 -s 18446744073709551615 --json --quiet");
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"seed\":18446744073709551615,");
    free(r);
    scratch_rm();
}

/* The params name the engine configuration: its file (or "defaults") and
 * the offset schedules are read in. */
Test(replay_cli, params_name_the_config_and_its_utc_offset) {
    scratch();
    cli_t *r = malloc(sizeof *r);
    cli(r, "-n 200 -o 20 --json --quiet");
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"config\":\"defaults\"");
    HAS(r->out, "\"utc_offset_min\":480");
    char ini[512], want[600];
    snprintf(ini, sizeof ini, "%s/utc.ini", tmp);
    FILE *f = fopen(ini, "w");
    /* the server's own file: its [server] section is not the replay's */
    fprintf(f, "[time]\nutc_offset = +00:00\n[server]\nport = 7411\nmax_conns = 5\n");
    fclose(f);
    cli(r, "-n 200 -o 20 --json --quiet --config '%s'", ini);
    cr_assert_eq(r->status, 0, "%s", r->err);
    snprintf(want, sizeof want, "\"config\":\"%s\"", ini);
    HAS(r->out, want);
    HAS(r->out, "\"utc_offset_min\":0");
    free(r);
    scratch_rm();
}

/* Nothing filled (nobody answers): the figures of filled orders are
 * undefined, null in JSON and "-" in the table, not 0. */
Test(replay_cli, undefined_figures_are_null_not_zero) {
    scratch();
    cli_t *r = malloc(sizeof *r);
    cli(r, "-n 200 -o 20 --no-answer 1 --json --quiet");
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"filled\":0,");
    static const char *const nulls[] = {"tta_p50_s",  "tta_p90_s",       "eta_p50_s",  "eta_p90_s",
                                        "gini_hours", "in_circle_share", "rating_mean"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"%s\":null", nulls[i]);
        HAS(r->out, want);
    }
    HAS(r->out, "\"fill_rate\":0.000000");
    cli(r, "-n 200 -o 20 --no-answer 1 --quiet");
    cr_assert_eq(r->status, 0, "%s", r->err);
    const char *row = strstr(r->out, "time to accept p50 (s)");
    cr_assert_not_null(row, "%s", r->out);
    const char *eol = strchr(row, '\n');
    cr_assert(eol && eol[-1] == '-', "%.80s", row);

    /* No volunteers at all: Gini and the served share are undefined. */
    char vol[512], ord[512];
    snprintf(vol, sizeof vol, "%s/v.csv", tmp);
    snprintf(ord, sizeof ord, "%s/o.csv", tmp);
    char *vl[] = {VOLUNTEERS_HEADER};
    write_lines(vol, vl, 1);
    char *ol[] = {
        ORDERS_HEADER,
        "1,1709484654635,30.611825,114.296598,culture-arts,1,1709600400000,120,normal,15"};
    write_lines(ord, ol, 2);
    cli(r, "--volunteers-csv '%s' --orders-csv '%s' --json --quiet", vol, ord);
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"gini_hours\":null");
    HAS(r->out, "\"served_share\":null");
    free(r);
    scratch_rm();
}

/* Repeats are named once on stderr and counted in the report. */
Test(replay_cli, repeated_ids_are_named_and_reported) {
    scratch();
    cli_t *r = malloc(sizeof *r);
    char vol[4096], dup[512];
    sample(vol, sizeof vol, "county-volunteers.csv");
    snprintf(dup, sizeof dup, "%s/orders.csv", tmp);
    write_with_repeats(dup);
    cli(r, "--volunteers-csv '%s' --orders-csv '%s' --json --quiet --policy nearest,balanced", vol,
        dup);
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"duplicates\":3,");
    HAS(r->err, "skipped 3 orders whose id came earlier in the input (ids 1, 2, 1)");
    const char *first = strstr(r->err, "skipped 3");
    cr_assert_null(strstr(first + 1, "skipped 3"), "said twice:\n%s", r->err);
    free(r);
    scratch_rm();
}

/* --plot when nothing was filled: every chart is drawn (the time-to-accept
 * chart says there is nothing), and the run exits 0. */
Test(replay_cli, plot_with_nothing_filled_draws_every_chart) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        cr_skip_test("gnuplot is not installed (Debian: gnuplot-nox)");
    scratch();
    cli_t *r = malloc(sizeof *r);
    cli(r, "-n 200 -o 20 --no-answer 1 --quiet --policy nearest,balanced --plot '%s/charts'", tmp);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert_null(strstr(r->err, "gnuplot failed"), "%s", r->err);
    static const char *const charts[] = {"replay-kpis", "replay-tta", "replay-dispatch"};
    for (size_t i = 0; i < 3; i++) {
        char png[600], svg[600];
        struct stat a, b;
        snprintf(png, sizeof png, "%s/charts/%s.png", tmp, charts[i]);
        snprintf(svg, sizeof svg, "%s/charts/%s.svg", tmp, charts[i]);
        bool ok = (stat(png, &a) == 0 && a.st_size > 0) || (stat(svg, &b) == 0 && b.st_size > 0);
        cr_assert(ok, "no chart %s:\n%s", charts[i], r->err);
    }
    /* Gini is not a share: the axis says so. */
    char gp[600], text[8192];
    snprintf(gp, sizeof gp, "%s/charts/replay.gp", tmp);
    read_into(gp, text, sizeof text);
    cr_assert_null(strstr(text, "set ylabel 'share'\n"), "%s", text);
    HAS(text, "Gini");
    free(r);
    scratch_rm();
}

/* A created time the engine cannot run at stops the replay with the order
 * named. At INT64_MAX the order used to be lost without a word (the loop
 * took it for "nothing left"), and a created time of INT64_MIN made the
 * span overflow (virtual_days -106751971381.6). */
Test(replay, created_outside_the_engine_time_range_is_refused) {
    scratch();
    char vol[512], vsrc[512], ord[512];
    sample(vsrc, sizeof vsrc, "county-volunteers.csv");
    snprintf(vol, sizeof vol, "%s", vsrc);
    snprintf(ord, sizeof ord, "%s/orders.csv", tmp);
    static const char *const bad[] = {"9223372036854775807", "-9223372036854775808",
                                      "4503599627370497"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(ord, "w");
        cr_assert_not_null(f);
        fprintf(f,
                "id,created,lat,lon,skills,need,start,duration_min,priority,minutes\n"
                "1,1709484654635,30.611825,114.296598,,1,1709600400000,120,normal,15\n"
                "7,%s,30.611825,114.296598,,1,1709600400000,120,normal,15\n",
                bad[i]);
        cr_assert_eq(fclose(f), 0);
        pd__replay_opts_t o;
        csv_opts(&o, vol, ord);
        pd__replay_result_t r;
        char why[256] = "";
        cr_assert_neq(pd__replay_run(&o, &r, why, sizeof why), PD_OK, "created %s", bad[i]);
        cr_assert(strstr(why, "order 7") && strstr(why, bad[i]), "reason: %s", why);
        pd__replay_result_deinit(&r);
    }
    scratch_rm();
}
