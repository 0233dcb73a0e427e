/* test_load_server.c -- a short load run against a real paidan-server
 * (house style 20: a real process over a real socket): the county goes in
 * with volunteer.upsert, then every command of the mix, the order life
 * cycle included, runs without a single error reply. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"
#include "load.h"

/* The server comes from tests/api/helper.c, as in the api tests. */

/* A generated county, upserted into the server; names are the server's. */
static void county_upload(const srv_t *srv, pd__county_t *county, pd__names_t *names,
                          size_t volunteers, size_t orders, uint64_t seed) {
    cr_assert_eq(pd__county_generate(county, volunteers, orders, seed), PD_OK);
    pd_client_t *cl = NULL;
    char why[256] = "";
    cr_assert_eq(pd__bench_connect("127.0.0.1", (uint16_t)srv->port, NULL, &cl, why, sizeof why),
                 PD_OK, "%s", why);
    cr_assert_eq(pd__names_from_server(cl, names, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(pd__county_upload(cl, county, names, false, why, sizeof why), PD_OK, "%s", why);
    pd_client_destroy(cl);
}

/* Run the load o (port and mix set here) against srv's county; the pool
 * and the result are the caller's to free with load_done(). */
static pd__load_out_t *load_run(const srv_t *srv, pd__load_opts_t *o, const char *mix,
                                pd__county_t *county, const pd__names_t *names,
                                pd__load_pool_t **pool) {
    char why[256] = "";
    o->port = (uint16_t)srv->port;
    cr_assert_eq(pd__mix_parse(mix, &o->mix, why, sizeof why), PD_OK, "%s", why);
    *pool = NULL;
    cr_assert_eq(pd__load_pool_create(county, names, o, pool), PD_OK);
    pd__load_out_t *out = malloc(sizeof *out);
    cr_assert_not_null(out);
    cr_assert_eq(pd__load_run(o, *pool, out, why, sizeof why), PD_OK, "%s", why);
    return out;
}

static void load_done(pd__load_out_t *out, pd__load_pool_t *pool, pd__county_t *county,
                      srv_t *srv) {
    pd__load_out_deinit(out);
    free(out);
    pd__load_pool_destroy(pool);
    pd__county_deinit(county);
    srv_stop(srv);
}

Test(load_server, mix_with_the_order_life_cycle) {
    srv_t srv;
    srv_start(&srv, NULL);
    pd__county_t county;
    pd__names_t names;
    county_upload(&srv, &county, &names, 2000, 8192, 3);

    pd__load_opts_t o;
    pd__load_opts_init(&o);
    o.connections = 2;
    o.pipeline = 8;
    o.duration_s = 0.6;
    o.warmup_s = 0.1;
    pd__load_pool_t *pool;
    pd__load_out_t *out =
        load_run(&srv, &o, "nearby:40,update:20,get:10,ping:10,order:20", &county, &names, &pool);

    for (int m = 0; m < PD__M__COUNT; m++)
        cr_assert_eq(out->errors[m], 0, "%s: %llu errors", pd__metric_name((pd__metric)m),
                     (unsigned long long)out->errors[m]);
    cr_assert_gt(out->hist[PD__M_NEARBY].count, 0);
    cr_assert_gt(out->hist[PD__M_UPDATE].count, 0);
    cr_assert_gt(out->hist[PD__M_GET].count, 0);
    cr_assert_gt(out->hist[PD__M_PING].count, 0);
    cr_assert_gt(out->hist[PD__M_CREATE].count, 0);
    cr_assert_gt(out->orders_done, 0,
                 "no order went through the whole life cycle "
                 "(%llu expired, %llu without an offer)",
                 (unsigned long long)out->orders_expired,
                 (unsigned long long)out->orders_unoffered);
    cr_assert_eq(out->hist[PD__M_ORDER].count, out->orders_done);
    /* Each completed cycle made one request of every step. */
    cr_assert_geq(out->hist[PD__M_RATE].count, out->orders_done);
    cr_assert_eq(out->conns_lost, 0);

    load_done(out, pool, &county, &srv);
}

/* Both sides polling (paidan-bench load --busy-poll against
 * --busy-poll-us): one connection, one request at a time, a fixed count.
 * Every request is answered and the run ends, although the generator's
 * loop never sleeps. */
Test(load_server, busy_poll_closed_loop, .timeout = 60) {
    static const char *const args[] = {"--busy-poll-us", "1000", NULL};
    srv_t srv;
    srv_start(&srv, args);
    pd__county_t county;
    pd__names_t names;
    county_upload(&srv, &county, &names, 500, 1024, 5);

    pd__load_opts_t o;
    pd__load_opts_init(&o);
    o.connections = 1;
    o.pipeline = 1;
    o.requests = 2000;
    o.warmup_s = 0;
    o.busy_poll = true;
    pd__load_pool_t *pool;
    pd__load_out_t *out = load_run(&srv, &o, "nearby:50,ping:50", &county, &names, &pool);
    uint64_t answered = out->hist[PD__M_NEARBY].count + out->hist[PD__M_PING].count;
    cr_assert_eq(out->errors[PD__M_NEARBY] + out->errors[PD__M_PING], 0);
    cr_assert_geq(answered, 2000, "%llu answered", (unsigned long long)answered);
    cr_assert_gt(out->hist[PD__M_NEARBY].count, 0);
    cr_assert_eq(out->conns_lost, 0);

    load_done(out, pool, &county, &srv);
}

#ifdef PD_HAVE_BENCH_CLI
/* Run a paidan-bench command line with /bin/sh; its stdout (or what the
 * command redirects there) into out, the exit status returned. */
static int bench_sh(const char *cmd, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    cr_assert(WIFEXITED(st), "%s: killed", cmd);
    return WEXITSTATUS(st);
}

/* `paidan-bench load -p <srv's port> <args>` through bench_sh; the
 * command line is left in cmd for the messages. */
static int bench_load(const srv_t *srv, const char *args, char *cmd, size_t cmd_cap, char *out,
                      size_t cap) {
    const char *bin = getenv("PD_BINARY_DIR");
    cr_assert_not_null(bin, "PD_BINARY_DIR is not set (ctest sets it)");
    snprintf(cmd, cmd_cap, "'%s/bench/paidan-bench' load -p %u %s", bin, (unsigned)srv->port, args);
    return bench_sh(cmd, out, cap);
}

/* paidan-bench load itself, as a user runs it: the JSON report carries the
 * server's own side of the run (calls and time per call, from its stats)
 * for every method the mix used. */
Test(load_server, the_cli_reports_the_server_side, .timeout = 120) {
    srv_t srv;
    srv_start(&srv, NULL);
    char cmd[4400];
    static char out[1 << 16];
    cr_assert_eq(
        bench_load(&srv, "-n 2000 -c 1 -P 4 -d 0.5 -w 0.1 --mix nearby:50,ping:50 --json --quiet",
                   cmd, sizeof cmd, out, sizeof out),
        0, "%s failed:\n%s", cmd, out);
    const char *server = strstr(out, "\"server\":{");
    cr_assert_not_null(server, "no server side in the report:\n%s", out);
    cr_assert_not_null(strstr(server, "\"match.nearby\":{\"calls\":"), "%s", server);
    cr_assert_not_null(strstr(server, "\"ping\":{\"calls\":"), "%s", server);
    cr_assert_null(strstr(server, "\"volunteer.upsert\""),
                   "the county's upload is not part of the run: %s", server);
    srv_stop(&srv);
}

static double seconds_since(const struct timespec *a) {
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* An open loop far beyond the server: the run ends on time (its lost
 * requests are counted from the schedule), reports what the server did
 * answer and the generator's CPU over the time it really ran, and exits 1
 * because its requests were lost. */
Test(load_server, the_cli_fails_a_run_that_lost_requests, .timeout = 120) {
    srv_t srv;
    srv_start(&srv, NULL);
    char cmd[4400];
    static char out[1 << 16];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = bench_load(
        &srv, "--mix ping -R 100000000 -d 0.5 -w 0.1 --drain 0.3 -c 2 --json --quiet 2>&1", cmd,
        sizeof cmd, out, sizeof out);
    double took = seconds_since(&t0);
    cr_assert_eq(rc, 1, "%s exited %d:\n%s", cmd, rc, out);
    cr_assert_lt(took, 10.0, "a 0.9 s run took %.1f s", took);
    cr_assert_not_null(strstr(out, "requests lost"), "%s", out);
    const char *ol =
        strstr(out, "\"open_loop\":{\"offered_per_s\":100000000.0,\"answered_per_s\":");
    cr_assert_not_null(ol, "%s", out);
    double answered = 0;
    cr_assert_eq(sscanf(strchr(ol + 30, ':') + 1, "%lf", &answered), 1);
    cr_assert_gt(answered, 0, "the server's replies are not counted: %s", out);
    const char *cl = strstr(out, "\"cores_busy\":");
    double cores = -1;
    cr_assert(cl && sscanf(cl + 13, "%lf", &cores) == 1, "%s", out);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cr_assert_leq(cores, (double)cpus + 0.01, "%.2f cores busy on %ld CPUs", cores, cpus);
    srv_stop(&srv);
}

/* --sweep says what each step does, one line each (it once printed empty
 * "sweep: " lines). */
Test(load_server, the_cli_sweep_names_each_step, .timeout = 120) {
    srv_t srv;
    srv_start(&srv, NULL);
    char cmd[4400];
    static char err[1 << 16];
    int rc =
        bench_load(&srv, "--mix ping --sweep --sweep-steps 1 -d 0.3 -w 0 -c 1 -P 1 2>&1 >/dev/null",
                   cmd, sizeof cmd, err, sizeof err);
    cr_assert_eq(rc, 0, "%s exited %d:\n%s", cmd, rc, err);
    cr_assert_not_null(strstr(err, "sweep: closed loop, to find the ceiling\n"), "%s", err);
    cr_assert_not_null(strstr(err, "sweep: open loop at "), "%s", err);
    cr_assert_null(strstr(err, "sweep: \n"), "an empty line:\n%s", err);
    srv_stop(&srv);
}
#endif
