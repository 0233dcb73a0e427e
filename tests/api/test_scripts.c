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
#include <signal.h>
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

/* Run the shell command line `line` in directory `cwd` with stdout and
 * stderr in out; returns the exit status (-1 if it did not exit). */
static int run_in(const char *cwd, const char *line, char *out, size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && { %s; } 2>&1 </dev/null", cwd, line);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Run `scripts/<cmd>` from the source tree with stdout and stderr in out;
 * returns the exit status (-1 if it did not exit). */
static int run_script(const char *cmd, char *out, size_t cap) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src, "PD_SOURCE_DIR is not set (run through ctest)");
    char line[4096];
    snprintf(line, sizeof(line), "scripts/%s", cmd);
    return run_in(src, line, out, cap);
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
    /* an option after a target is named as such, not as a target */
    rc = run_script("fuzz.sh csv -t 5", out, sizeof(out));
    cr_expect_eq(rc, 2, "fuzz.sh csv -t 5: exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "options come first"), "fuzz.sh csv -t 5: %s", out);
    /* only run takes arguments: start foo is refused before anything starts */
    rc = run_script("compare.sh start foo", out, sizeof(out));
    cr_expect_eq(rc, 2, "compare.sh start foo: exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "takes no arguments"), "compare.sh start foo: %s", out);
}

/* True while pid runs (a zombie does not count). */
static bool running(pid_t pid) {
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    const char *s = ok ? strrchr(line, ')') : NULL;
    return s && s[1] == ' ' && s[2] != 'Z';
}

/* `kill PID` of a script (run.sh, compare.sh, fuzz.sh) stops what it was
 * running too: bash runs the EXIT trap on SIGTERM but leaves its
 * foreground command, here a shell and its own child, running on its own. */
Test(scripts, sigterm_stops_what_the_script_runs, .timeout = 60) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src, "PD_SOURCE_DIR is not set (run through ctest)");
    char pids[] = "/tmp/pd-test-scripts-XXXXXX", cmd[2048];
    int fd = mkstemp(pids);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof(cmd),
             "bash -c '. \"$0/scripts/usage.sh\"; trap kill_children EXIT; "
             "sh -c \"echo \\$\\$ >>$1; sleep 300 & echo \\$! >>$1; wait\"; :' '%s' '%s' "
             ">/dev/null 2>&1 & echo $!",
             src, pids);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int script = 0;
    cr_assert_eq(fscanf(p, "%d", &script), 1);
    pclose(p);
    int kids[2] = {0, 0};
    for (int i = 0; i < 100 && !kids[1]; i++) {
        usleep(50000);
        FILE *f = fopen(pids, "r");
        if (f) {
            if (fscanf(f, "%d %d", &kids[0], &kids[1]) != 2) kids[1] = 0;
            fclose(f);
        }
    }
    unlink(pids);
    cr_assert(kids[1] > 0, "the script's children did not start");
    cr_assert_eq(kill(script, SIGTERM), 0);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        usleep(50000);
        gone = !running(kids[0]) && !running(kids[1]);
    }
    if (!gone) {
        kill(kids[0], SIGKILL);
        kill(kids[1], SIGKILL);
    }
    cr_expect(gone, "SIGTERM to the script left its children %d and %d running", kids[0], kids[1]);
}

/* From another directory: compare.sh found by a relative path, and
 * PD_BUILD_DIR relative to where it is run (not to the repository). */
Test(scripts, compare_from_another_directory, .timeout = 60) {
    const char *src = getenv("PD_SOURCE_DIR"), *bin = getenv("PD_BINARY_DIR");
    cr_assert(src && bin, "PD_SOURCE_DIR or PD_BINARY_DIR is not set (run through ctest)");
    static char out[65536];
    char parent[2048], line[4096], bench[2048];
    snprintf(parent, sizeof(parent), "%s/..", src);
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    snprintf(line, sizeof(line), "'%s/scripts/compare.sh' --help", base);
    int rc = run_in(parent, line, out, sizeof(out));
    cr_expect_eq(rc, 0, "%s from %s: exit %d:\n%s", line, parent, rc, out);
    cr_expect(strstr(out, "compare.sh run"), "%s from %s: no usage:\n%s", line, parent, out);

    snprintf(bench, sizeof(bench), "%s/bench/paidan-bench", bin);
    if (access(bench, X_OK) != 0) cr_skip_test("paidan-bench is not built");
    char bparent[2048];
    snprintf(bparent, sizeof(bparent), "%s/..", bin);
    const char *bbase = strrchr(bin, '/') ? strrchr(bin, '/') + 1 : bin;
    snprintf(line, sizeof(line), "PD_BUILD_DIR='%s' '%s/scripts/compare.sh' run --help", bbase,
             src);
    rc = run_in(bparent, line, out, sizeof(out));
    cr_expect_eq(rc, 0, "%s: exit %d:\n%s", line, rc, out);
    cr_expect(strstr(out, "--volunteers"), "%s from %s: not paidan-bench's options:\n%s", line,
              bparent, out);
}

/* A second replay on the same server: its ids are taken; it says so in one
 * line of the tally and one hint, not a line per order. */
Test(scripts, replay_twice_says_to_change_the_id_base, .timeout = 60) {
    if (!have_python()) cr_skip_test("/usr/bin/python3 with msgpack is not installed");
    srv_t srv;
    srv_start(&srv, NULL);
    char cmd[256];
    static char out[65536];
    snprintf(cmd, sizeof(cmd), "replay_tcp.py --port %d -n 20", srv.port);
    int rc = run_script(cmd, out, sizeof(out));
    cr_expect_eq(rc, 0, "%s: exit %d:\n%s", cmd, rc, out);
    cr_expect(!strstr(out, "--id-base"), "the first replay found its ids taken:\n%s", out);
    rc = run_script(cmd, out, sizeof(out));
    cr_expect_eq(rc, 0, "%s again: exit %d:\n%s", cmd, rc, out);
    cr_expect(strstr(out, "another --id-base"), "%s again: no hint:\n%s", cmd, out);
    cr_expect(count_lines(out) <= 3, "%s again: a line per order:\n%s", cmd, out);
    srv_stop(&srv);
}
