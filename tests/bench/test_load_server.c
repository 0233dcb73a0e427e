/* test_load_server.c -- a short load run against a real paidan-server
 * (house style 20: a real process over a real socket): the county goes in
 * with volunteer.upsert, then every command of the mix, the order life
 * cycle included, runs without a single error reply. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "load.h"

typedef struct server_s {
    pid_t pid;
    uint16_t port;
} server_t;

/* paidan-server --port 0 [extra]; its "listening on HOST:PORT" line names
 * the port. */
static void server_start(server_t *s, const char *extra) {
    const char *bin = getenv("PD_BINARY_DIR");
    cr_assert_not_null(bin, "PD_BINARY_DIR is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/api/paidan-server", bin);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        FILE *devnull = freopen("/dev/null", "w", stderr);
        (void)devnull;
        if (extra)
            execl(path, path, "--port", "0", "--log-level", "error", "--busy-poll-us", extra,
                  (char *)NULL);
        else
            execl(path, path, "--port", "0", "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256];
    s->port = 0;
    while (fgets(line, sizeof line, f)) {
        const char *colon = strrchr(line, ':');
        if (strstr(line, "listening on") && colon) {
            s->port = (uint16_t)atoi(colon + 1);
            break;
        }
    }
    fclose(f);
    cr_assert_gt(s->port, 0, "paidan-server did not start (%s)", path);
}

static void server_stop(server_t *s) {
    kill(s->pid, SIGTERM);
    int st = 0;
    waitpid(s->pid, &st, 0);
}

/* A generated county, upserted into the server; names are the server's. */
static void county_upload(const server_t *srv, pd__county_t *county, pd__names_t *names,
                          size_t volunteers, size_t orders, uint64_t seed) {
    cr_assert_eq(pd__county_generate(county, volunteers, orders, seed), PD_OK);
    pd_client_t *cl = NULL;
    char why[256] = "";
    cr_assert_eq(pd__bench_connect("127.0.0.1", srv->port, NULL, &cl, why, sizeof why), PD_OK, "%s",
                 why);
    cr_assert_eq(pd__names_from_server(cl, names, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(pd__county_upload(cl, county, names, false, why, sizeof why), PD_OK, "%s", why);
    pd_client_destroy(cl);
}

Test(load_server, mix_with_the_order_life_cycle) {
    server_t srv;
    server_start(&srv, NULL);
    pd__county_t county;
    pd__names_t names;
    county_upload(&srv, &county, &names, 2000, 8192, 3);
    char why[256] = "";

    pd__load_opts_t o;
    pd__load_opts_init(&o);
    o.port = srv.port;
    o.connections = 2;
    o.pipeline = 8;
    o.duration_s = 0.6;
    o.warmup_s = 0.1;
    cr_assert_eq(
        pd__mix_parse("nearby:40,update:20,get:10,ping:10,order:20", &o.mix, why, sizeof why),
        PD_OK);
    pd__load_pool_t *pool = NULL;
    cr_assert_eq(pd__load_pool_create(&county, &names, &o, &pool), PD_OK);
    pd__load_out_t *out = malloc(sizeof *out);
    cr_assert_eq(pd__load_run(&o, pool, out, why, sizeof why), PD_OK, "%s", why);

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

    pd__load_out_deinit(out);
    free(out);
    pd__load_pool_destroy(pool);
    pd__county_deinit(&county);
    server_stop(&srv);
}

/* Both sides polling (paidan-bench load --busy-poll against
 * --busy-poll-us): one connection, one request at a time, a fixed count.
 * Every request is answered and the run ends, although the generator's
 * loop never sleeps. */
Test(load_server, busy_poll_closed_loop, .timeout = 60) {
    server_t srv;
    server_start(&srv, "1000");
    pd__county_t county;
    pd__names_t names;
    county_upload(&srv, &county, &names, 500, 1024, 5);
    char why[256] = "";

    pd__load_opts_t o;
    pd__load_opts_init(&o);
    o.port = srv.port;
    o.connections = 1;
    o.pipeline = 1;
    o.requests = 2000;
    o.warmup_s = 0;
    o.busy_poll = true;
    cr_assert_eq(pd__mix_parse("nearby:50,ping:50", &o.mix, why, sizeof why), PD_OK);
    pd__load_pool_t *pool = NULL;
    cr_assert_eq(pd__load_pool_create(&county, &names, &o, &pool), PD_OK);
    pd__load_out_t *out = malloc(sizeof *out);
    cr_assert_eq(pd__load_run(&o, pool, out, why, sizeof why), PD_OK, "%s", why);
    uint64_t answered = out->hist[PD__M_NEARBY].count + out->hist[PD__M_PING].count;
    cr_assert_eq(out->errors[PD__M_NEARBY] + out->errors[PD__M_PING], 0);
    cr_assert_geq(answered, 2000, "%llu answered", (unsigned long long)answered);
    cr_assert_gt(out->hist[PD__M_NEARBY].count, 0);
    cr_assert_eq(out->conns_lost, 0);

    pd__load_out_deinit(out);
    free(out);
    pd__load_pool_destroy(pool);
    pd__county_deinit(&county);
    server_stop(&srv);
}

#ifdef PD_HAVE_BENCH_CLI
/* paidan-bench load itself, as a user runs it: the JSON report carries the
 * server's own side of the run (calls and time per call, from its stats)
 * for every method the mix used. */
Test(load_server, the_cli_reports_the_server_side, .timeout = 120) {
    server_t srv;
    server_start(&srv, NULL);
    const char *bin = getenv("PD_BINARY_DIR");
    cr_assert_not_null(bin);
    char cmd[4400];
    snprintf(cmd, sizeof cmd,
             "'%s/bench/paidan-bench' load -p %u -n 2000 -c 1 -P 4 -d 0.5 -w 0.1 "
             "--mix nearby:50,ping:50 --json --quiet",
             bin, (unsigned)srv.port);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    cr_assert_eq(pclose(f), 0, "%s failed:\n%s", cmd, out);
    const char *server = strstr(out, "\"server\":{");
    cr_assert_not_null(server, "no server side in the report:\n%s", out);
    cr_assert_not_null(strstr(server, "\"match.nearby\":{\"calls\":"), "%s", server);
    cr_assert_not_null(strstr(server, "\"ping\":{\"calls\":"), "%s", server);
    cr_assert_null(strstr(server, "\"volunteer.upsert\""),
                   "the county's upload is not part of the run: %s", server);
    server_stop(&srv);
}
#endif
