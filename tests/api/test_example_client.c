/* test_example_client.c -- scripts/example_client.py, the Python example of
 * docs/protocol.md, runs against a live server and exits 0. Skipped when
 * Python's msgpack module (Debian: python3-msgpack) is not installed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

static const char *python(void) {
    /* Debian's interpreter first: python3-msgpack installs for it. */
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    for (int i = 0; i < 2; i++) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "%s -c 'import msgpack' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) return cands[i];
    }
    return NULL;
}

Test(example_client, runs_against_server, .timeout = 30) {
    const char *py = python();
    if (!py) cr_skip_test("python3 with msgpack is not installed");
    srv_t srv;
    srv_start(&srv, NULL);
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s/scripts/example_client.py --port %d >/dev/null", py, src,
             srv.port);
    /* twice against the same server: a second run must not meet the first
     * one's order or records, and each run removes its volunteers */
    for (int run = 0; run < 2; run++) {
        int status = system(cmd);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "example_client.py failed (%d) on run %d", status, run + 1);
        pd_client_t *c = srv_connect(&srv);
        pd_msg_t m = call_ok(c, "stats", "");
        cr_assert_eq(map_int(&m.result, "volunteers"), 0, "run %d left volunteers", run + 1);
        cr_assert_eq(map_int(&m.result, "orders"), run + 1);
        pd_client_destroy(c);
    }
    srv_stop(&srv);
}

/* api/example_client.c, the C client's example, runs against a server
 * (twice: it removes what it adds) and against none (exit 1). */
Test(example_client, c_example_runs_against_server, .timeout = 30) {
    srv_t srv;
    srv_start(&srv, NULL);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' 127.0.0.1 %d >/dev/null", binary_path("api/paidan-example-c"),
             srv.port);
    for (int run = 0; run < 2; run++) {
        int status = system(cmd);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "paidan-example-c failed (%d) on run %d", status, run + 1);
    }
    pd_client_t *c = srv_connect(&srv);
    pd_msg_t m = call_ok(c, "stats", "");
    cr_assert_eq(map_int(&m.result, "volunteers"), 0);
    pd_client_destroy(c);
    int port = srv.port;
    srv_stop(&srv);
    snprintf(cmd, sizeof(cmd), "'%s' 127.0.0.1 %d 2>/dev/null", binary_path("api/paidan-example-c"),
             port);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "no server: status %d", status);
}

/* scripts/replay_tcp.py replays sample orders through a server that holds
 * the sample county: every order is answered, some are filled end to end,
 * and the server's counts agree with what the script says it did. */
Test(example_client, replay_tcp_runs_the_service_loop, .timeout = 30) {
    const char *py = python();
    if (!py) cr_skip_test("python3 with msgpack is not installed");
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src);
    char csv[1024], out[1024], cmd[4096];
    snprintf(csv, sizeof(csv), "%s/data/sample/county-volunteers.csv", src);
    const char *args[] = {"--load-volunteers", csv, NULL};
    srv_t srv;
    srv_start(&srv, args);
    snprintf(out, sizeof(out), "/tmp/pd-replay-tcp-%d.txt", (int)getpid());
    snprintf(cmd, sizeof(cmd), "%s %s/scripts/replay_tcp.py --port %d -n 120 >%s", py, src,
             srv.port, out);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "replay_tcp.py failed (%d)", status);
    FILE *f = fopen(out, "r");
    cr_assert(f);
    char line[256];
    long created = -1, rated = 0;
    while (fgets(line, sizeof(line), f)) {
        long v;
        if (sscanf(line, " created %ld", &v) == 1) created = v;
        if (sscanf(line, " completed and rated %ld", &v) == 1) rated = v;
    }
    fclose(f);
    unlink(out);
    cr_assert_eq(created, 120);
    cr_assert(rated > 0 && rated <= created, "rated %ld of %ld", rated, created);
    srv_stop(&srv);
}
