/* test_scripts.c -- the command lines of scripts/: a usage error, a help
 * request, a missing file or a server that is not there ends in the
 * documented exit status and one line, never a Python traceback; and
 * scripts/example_client.py finds its own volunteers on a server busy with
 * many others. The Python parts are skipped when /usr/bin/python3 has no
 * msgpack (Debian: python3-msgpack). Only scripts whose mistakes cost
 * nothing are run: never run.sh, test.sh or deps.sh (which install and
 * build), and fuzz.sh only for arguments it refuses before building.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

static bool have_python(void) {
    return system("/usr/bin/python3 -c 'import msgpack' >/dev/null 2>&1") == 0;
}

/* Run `scripts/<cmd>` from the source tree with stdout and stderr in out;
 * returns the exit status (-1 if it did not exit). */
static int run_script(const char *cmd, char *out, size_t cap) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src, "PD_SOURCE_DIR is not set (run through ctest)");
    char line[4096];
    snprintf(line, sizeof(line), "cd '%s' && scripts/%s 2>&1 </dev/null", src, cmd);
    FILE *p = popen(line, "r");
    cr_assert(p, "popen %s", line);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* A port on 127.0.0.1 nothing listens on: bound, then closed again. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The script failed as expected: status, one line, containing `what`. */
static void expect_one_line(const char *cmd, int want, const char *what) {
    static char out[65536];
    int rc = run_script(cmd, out, sizeof(out));
    cr_expect_eq(rc, want, "%s: exit %d, not %d; it said:\n%s", cmd, rc, want, out);
    cr_expect(!strstr(out, "Traceback"), "%s: a traceback:\n%s", cmd, out);
    cr_expect_eq(count_lines(out), 1, "%s: not one line:\n%s", cmd, out);
    cr_expect(strstr(out, what), "%s: no '%s' in:\n%s", cmd, what, out);
}

Test(scripts, python_errors_are_one_line, .timeout = 60) {
    if (!have_python()) cr_skip_test("/usr/bin/python3 with msgpack is not installed");
    char cmd[512];
    int port = closed_port();
    snprintf(cmd, sizeof(cmd), "example_client.py --port %d", port);
    expect_one_line(cmd, 1, "cannot connect");
    snprintf(cmd, sizeof(cmd), "replay_tcp.py --port %d -n 1", port);
    expect_one_line(cmd, 1, "cannot connect");
    expect_one_line("replay_tcp.py --orders /nonexistent/orders.csv", 1, "/nonexistent/orders.csv");
    /* argparse: its usage line, then the error; exit 2 */
    static char out[65536];
    const char *const bad[] = {"replay_tcp.py -n -5", "replay_tcp.py -n 0",
                               "replay_tcp.py --port 0", "example_client.py --port 70000",
                               "example_client.py --id-base -1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = run_script(bad[i], out, sizeof(out));
        cr_expect_eq(rc, 2, "%s: exit %d, not 2:\n%s", bad[i], rc, out);
        cr_expect(strstr(out, "out of range"), "%s: no range in:\n%s", bad[i], out);
        cr_expect(!strstr(out, "Traceback"), "%s: a traceback:\n%s", bad[i], out);
    }
    const char *const help[] = {"example_client.py --help", "replay_tcp.py -h"};
    for (size_t i = 0; i < 2; i++) {
        int rc = run_script(help[i], out, sizeof(out));
        cr_expect_eq(rc, 0, "%s: exit %d:\n%s", help[i], rc, out);
        cr_expect(strstr(out, "usage:"), "%s: no usage in:\n%s", help[i], out);
    }
}

/* Thirty volunteers with the example's skills nearer its community centre
 * than its own two: it must still find its own, get the order offered to
 * its own, and leave the thirty as they were. */
Test(scripts, example_client_on_a_busy_server, .timeout = 60) {
    if (!have_python()) cr_skip_test("/usr/bin/python3 with msgpack is not installed");
    srv_t srv;
    srv_start(&srv, NULL);
    pd_client_t *c = srv_connect(&srv);
    for (int i = 1; i <= 30; i++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"id\":%d,\"lat\":%.5f,\"lon\":%.5f,\"mode\":\"car\","
                 "\"skills\":[\"medical-fitness\",\"elder-care\"]}",
                 i, 30.6010 + 0.00002 * i, 114.3010);
        call_ok(c, "volunteer.upsert", json);
    }
    char cmd[256];
    static char out[65536];
    snprintf(cmd, sizeof(cmd), "example_client.py --port %d", srv.port);
    int rc = run_script(cmd, out, sizeof(out));
    cr_assert_eq(rc, 0, "example_client.py on a busy server: exit %d:\n%s", rc, out);
    pd_msg_t m = call_ok(c, "stats", "");
    cr_expect_eq(map_int(&m.result, "volunteers"), 30, "it left volunteers, or removed ours");
    for (int i = 1; i <= 30; i++) {
        char json[64];
        snprintf(json, sizeof(json), "{\"id\":%d}", i);
        m = call_ok(c, "volunteer.get", json);
        cr_expect_eq(map_int(&m.result, "offers_received"), 0,
                     "its order was offered to volunteer %d, not to its own", i);
    }
    pd_client_destroy(c);
    srv_stop(&srv);
}

Test(scripts, shell_help_and_usage_errors, .timeout = 60) {
    static char out[65536];
    int rc = run_script("compare.sh --help", out, sizeof(out));
    cr_expect_eq(rc, 0, "compare.sh --help: exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "compare.sh run"), "compare.sh --help: no usage:\n%s", out);
    cr_expect(!strstr(out, "set -e"), "compare.sh --help prints its code:\n%s", out);
    rc = run_script("compare.sh no-such-command", out, sizeof(out));
    cr_expect_eq(rc, 2, "compare.sh no-such-command: exit %d:\n%s", rc, out);

    const char *const help[] = {"fuzz.sh --help", "fuzz.sh -h"};
    for (size_t i = 0; i < 2; i++) {
        rc = run_script(help[i], out, sizeof(out));
        cr_expect_eq(rc, 0, "%s: exit %d:\n%s", help[i], rc, out);
        cr_expect(strstr(out, "-j "), "%s: -j is not documented:\n%s", help[i], out);
    }
    /* refused before anything is built */
    rc = run_script("fuzz.sh -j -t 1 no-such-target", out, sizeof(out));
    cr_expect_eq(rc, 2, "fuzz.sh -j ... no-such-target: exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "no target 'no-such-target'"), "fuzz.sh -j: %s", out);
    rc = run_script("fuzz.sh --no-such-option", out, sizeof(out));
    cr_expect_eq(rc, 2, "fuzz.sh --no-such-option: exit %d:\n%s", rc, out);
}
