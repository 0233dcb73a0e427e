/* test_cli.c -- paidan-bench as a user runs it: the built binary, each mode
 * with small sizes (micro; replay and its charts; journal against the
 * paidan-server it spawns; compare against one started here) and the mode
 * dispatch of main.c.
 *
 * Every figure in the docs is printed by these modes, so their output is a
 * contract (docs/bench.md, "The report format"): stdout is one JSON object,
 * parsed here with paidan-cli's reader (api/json.c), and each result row
 * carries name, count, ops_per_s, the latency ladder p50 <= p90 <= p99 <=
 * p999 <= p9999 <= max and a note. The tests check structure, counts,
 * orderings and determinism, never speed. A refused command line exits 2
 * with the reason on stderr and nothing on stdout.
 *
 * The binaries are found through PD_BINARY_DIR (set by ctest), else the
 * build tree this file was configured in, so the test also runs by hand.
 * Scratch directories live in the build tree, not /tmp, because the
 * stand-in gnuplot must be executable where it is written.
 */
#define _GNU_SOURCE /* nftw, close_range */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"
#include "json.h"
#include "paidan/client.h"

#ifndef PD_TEST_BINARY_DIR
#define PD_TEST_BINARY_DIR "."
#endif

static const char *binary_dir(void) {
    const char *d = getenv("PD_BINARY_DIR");
    return d && *d ? d : PD_TEST_BINARY_DIR;
}

/* ------------------------------------------------ scratch and servers */

static char scratch[4096]; /* a fresh directory per test */

static srv_t srv;           /* the paidan-server of a compare test, if any (tests/api/helper.c) */
static pid_t tarantool_pid; /* the Tarantool of a compare test, if any */

static void setup(void) {
    setenv("PD_BINARY_DIR", binary_dir(), 0); /* for the helper, when run by hand */
    snprintf(scratch, sizeof scratch, "%s/tests/bench/test_cli-XXXXXX", binary_dir());
    cr_assert_not_null(mkdtemp(scratch), "mkdtemp %s: %s", scratch, strerror(errno));
    memset(&srv, 0, sizeof srv);
    tarantool_pid = 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void teardown(void) {
    if (srv.pid > 0) {
        srv_stop(&srv);
        srv.pid = 0;
    }
    if (tarantool_pid > 0) {
        kill(tarantool_pid, SIGKILL);
        waitpid(tarantool_pid, NULL, 0);
        tarantool_pid = 0;
    }
    if (scratch[0]) nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* One timeout for all, a guard against hangs: a test's own .timeout
 * beside the suite's makes Criterion 2.4's runner leak 48 bytes when tests
 * run in parallel, which fails the file under LeakSanitizer. */
TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* "<scratch>/<name>" into buf. */
static const char *in_scratch(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", scratch, name);
    return buf;
}

/* An empty regular file named name in the scratch directory (where a
 * directory is expected, say); its path in buf. */
static void empty_file_in_scratch(char *buf, size_t cap, const char *name) {
    in_scratch(buf, cap, name);
    int fd = open(buf, O_CREAT | O_WRONLY, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
}

/* paidan-server --port 0 on 127.0.0.1 (srv_start of tests/api/helper.c).
 * Stopped by teardown(). */
static void server_start(void) {
    static const char *const args[] = {"--host", "127.0.0.1", NULL};
    srv_start(&srv, args);
}

/* A port on 127.0.0.1 that refuses connections: bound here, so nothing
 * else takes it, but never listening. The caller closes the socket. */
static int refusing_port(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ------------------------------------------------------- running it */

/* One run of paidan-bench: how it ended and what it printed. */
typedef struct run_s {
    char cmd[8192]; /* the shell command, for messages */
    int status;     /* exit status; 128 + N when killed by signal N */
    char *out;      /* stdout, NUL-terminated, owned */
    char *err;      /* stderr, NUL-terminated, owned */
} run_t;

static int scratch_file(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/io-XXXXXX", scratch);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp %s: %s", path, strerror(errno));
    unlink(path);
    return fd;
}

/* The whole of a file, NUL-terminated; closes fd. */
static char *slurp(int fd) {
    off_t len = lseek(fd, 0, SEEK_END);
    cr_assert_geq(len, 0);
    char *buf = malloc((size_t)len + 1);
    cr_assert_not_null(buf);
    size_t got = 0;
    while (got < (size_t)len) {
        ssize_t n = pread(fd, buf + got, (size_t)len - got, (off_t)got);
        cr_assert_gt(n, 0, "pread: %s", strerror(errno));
        got += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

/*
 * Run "<pre> exec paidan-bench <args>" with /bin/sh: pre is shell
 * statements ending in ';' that set the scene ("export PATH=...;",
 * "ulimit -n 40;"), or NULL; args are shell words (printf format).
 * stdout and stderr go to files, so nothing blocks on a full pipe.
 */
__attribute__((format(printf, 3, 4))) static void bench_run(run_t *r, const char *pre,
                                                            const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(r->cmd, sizeof r->cmd, "%s exec '%s/bench/paidan-bench' %s", pre ? pre : "",
             binary_dir(), args);
    int ofd = scratch_file(), efd = scratch_file();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) dup2(in, 0);
        dup2(ofd, 1);
        dup2(efd, 2);
        /* Nothing of Criterion's (its pipes to the runner) goes along. */
        close_range(3, ~0U, 0);
        execl("/bin/sh", "sh", "-c", r->cmd, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r->out = slurp(ofd);
    r->err = slurp(efd);
}

static void run_deinit(run_t *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static void expect_status(const run_t *r, int want) {
    cr_assert_eq(r->status, want,
                 "%s\nexited %d, not %d\n--- stderr:\n%.4000s\n--- stdout:\n%.2000s", r->cmd,
                 r->status, want, r->err, r->out);
}

/* A refused command line: exit 2, the reason on stderr, nothing on stdout. */
static void expect_refused(const char *says, const char *args) {
    run_t r;
    bench_run(&r, NULL, "%s", args);
    expect_status(&r, 2);
    cr_assert_str_empty(r.out, "%s\nprinted on stdout:\n%.2000s", r.cmd, r.out);
    cr_assert_not_null(strstr(r.err, says), "%s\nstderr does not say \"%s\":\n%s", r.cmd, says,
                       r.err);
    run_deinit(&r);
}

/* A flag the mode does not know: the error and one line pointing at
 * --help, not forty lines of usage burying it. */
static void expect_try_help(const char *mode, const char *says, const char *args) {
    run_t r;
    bench_run(&r, NULL, "%s %s", mode, args);
    expect_status(&r, 2);
    cr_assert_str_empty(r.out, "%s\nprinted on stdout:\n%.2000s", r.cmd, r.out);
    char want[128];
    snprintf(want, sizeof want, "paidan-bench %s: %s\ntry 'paidan-bench %s --help'\n", mode, says,
             mode);
    cr_assert_str_eq(r.err, want, "%s", r.cmd);
    run_deinit(&r);
}

/* A run that measured nothing, or not what was asked: exit 1 with the
 * reason on stderr. */
static void expect_failed(const char *says, const char *args) {
    run_t r;
    bench_run(&r, NULL, "%s", args);
    expect_status(&r, 1);
    cr_assert_not_null(strstr(r.err, says), "%s\nstderr does not say \"%s\":\n%s", r.cmd, says,
                       r.err);
    run_deinit(&r);
}

/* ----------------------------------------------------- the JSON report */

/* A report parsed: JSON -> MessagePack (api/json.c) -> an object tree. */
typedef struct doc_s {
    msgpack_sbuffer sb;  /* the packed report; strings of root point into it */
    msgpack_zone zone;   /* the tree */
    msgpack_object root; /* the top-level object */
} doc_t;

/* Parse a run's stdout, which must be exactly one JSON object. */
static void doc_parse(doc_t *d, const run_t *r) {
    msgpack_sbuffer_init(&d->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->sb, msgpack_sbuffer_write);
    char why[256] = "";
    cr_assert_eq(pd_json_to_msgpack(r->out, strlen(r->out), &pk, why, sizeof why), PD_OK,
                 "%s\nstdout is not one JSON value (%s):\n%.4000s", r->cmd, why, r->out);
    cr_assert(msgpack_zone_init(&d->zone, 4096));
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(d->sb.data, d->sb.size, &off, &d->zone, &d->root),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(d->root.type, MSGPACK_OBJECT_MAP, "%s\nstdout is not a JSON object", r->cmd);
}

static void doc_deinit(doc_t *d) {
    msgpack_zone_destroy(&d->zone);
    msgpack_sbuffer_destroy(&d->sb);
}

static const msgpack_object *member(const msgpack_object *obj, const char *key) {
    cr_assert_eq(obj->type, MSGPACK_OBJECT_MAP, "not an object where \"%s\" belongs", key);
    const msgpack_object *v = pd_client_map_get(obj, key);
    cr_assert_not_null(v, "no member \"%s\"", key);
    return v;
}

static bool has(const msgpack_object *obj, const char *key) {
    return pd_client_map_get(obj, key) != NULL;
}

static double number(const msgpack_object *obj, const char *key) {
    const msgpack_object *v = member(obj, key);
    switch (v->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            return (double)v->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return (double)v->via.i64;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return v->via.f64;
        default:
            cr_assert_fail("\"%s\" is not a number", key);
    }
    return 0;
}

/* A member that must be a whole number >= 0. */
static uint64_t count(const msgpack_object *obj, const char *key) {
    const msgpack_object *v = member(obj, key);
    cr_assert_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER, "\"%s\" is not a count", key);
    return v->via.u64;
}

/* A string member, copied into buf (NUL-terminated). */
static const char *text(const msgpack_object *obj, const char *key, char *buf, size_t cap) {
    const msgpack_object *v = member(obj, key);
    cr_assert_eq(v->type, MSGPACK_OBJECT_STR, "\"%s\" is not a string", key);
    snprintf(buf, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    return buf;
}

static const msgpack_object *results(const doc_t *d) {
    const msgpack_object *rs = member(&d->root, "results");
    cr_assert_eq(rs->type, MSGPACK_OBJECT_ARRAY, "\"results\" is not an array");
    return rs;
}

/* The result row named name, or NULL. */
static const msgpack_object *row(const doc_t *d, const char *name) {
    const msgpack_object *rs = results(d);
    char buf[64];
    for (uint32_t i = 0; i < rs->via.array.size; i++)
        if (!strcmp(text(&rs->via.array.ptr[i], "name", buf, sizeof buf), name))
            return &rs->via.array.ptr[i];
    return NULL;
}

static const msgpack_object *row_of(const doc_t *d, const char *name) {
    const msgpack_object *r = row(d, name);
    cr_assert_not_null(r, "no result row \"%s\"", name);
    return r;
}

/* The row names in order, comma-separated. */
static const char *row_names(const doc_t *d, char *buf, size_t cap) {
    const msgpack_object *rs = results(d);
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < rs->via.array.size && len < cap; i++) {
        char name[64];
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "",
                                text(&rs->via.array.ptr[i], "name", name, sizeof name));
    }
    return buf;
}

/* What every result row carries: the members of docs/bench.md, none
 * negative or NaN, the latency ladder in order and the mean within it. */
static void check_rows(const doc_t *d) {
    static const char *const nums[] = {"count",  "ops_per_s", "mean_us", "p50_us",
                                       "p90_us", "p99_us",    "p999_us", "p9999_us",
                                       "max_us", "errors",    "wall_s"};
    static const char *const ladder[] = {"p50_us",  "p90_us",   "p99_us",
                                         "p999_us", "p9999_us", "max_us"};
    /* where and when it ran */
    const msgpack_object *m = member(&d->root, "machine");
    char buf[128];
    cr_assert_gt(count(m, "cpus"), 0);
    cr_assert_gt(strlen(text(m, "kernel", buf, sizeof buf)), 0);
    text(m, "cpu", buf, sizeof buf);
    text(m, "thp", buf, sizeof buf);
    cr_assert_geq(number(m, "loadavg_1m"), 0);
    text(m, "started", buf, sizeof buf);
    cr_assert(strlen(buf) == 20 && buf[4] == '-' && buf[10] == 'T' && buf[19] == 'Z',
              "\"started\" is not a UTC time: %s", buf);
    const msgpack_object *rs = results(d);
    cr_assert_gt(rs->via.array.size, 0, "no result rows");
    for (uint32_t i = 0; i < rs->via.array.size; i++) {
        const msgpack_object *r = &rs->via.array.ptr[i];
        char name[64], note[128];
        text(r, "name", name, sizeof name);
        text(r, "note", note, sizeof note);
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
            double v = number(r, nums[k]);
            cr_assert(isfinite(v) && v >= 0, "%s: %s = %g", name, nums[k], v);
        }
        count(r, "count");
        count(r, "errors");
        for (size_t k = 0; k + 1 < sizeof ladder / sizeof ladder[0]; k++)
            cr_assert_leq(number(r, ladder[k]), number(r, ladder[k + 1]), "%s: %s %.3f > %s %.3f",
                          name, ladder[k], number(r, ladder[k]), ladder[k + 1],
                          number(r, ladder[k + 1]));
        cr_assert_leq(number(r, "mean_us"), number(r, "max_us"), "%s: mean above max", name);
        if (count(r, "count") > 0) cr_assert_gt(number(r, "max_us"), 0, "%s: max is 0", name);
        for (uint32_t j = 0; j < i; j++) {
            char other[64];
            cr_assert_str_neq(text(&rs->via.array.ptr[j], "name", other, sizeof other), name,
                              "two rows named %s", name);
        }
    }
}

static void expect_text(const msgpack_object *obj, const char *key, const char *want) {
    char buf[256];
    cr_assert_str_eq(text(obj, key, buf, sizeof buf), want, "\"%s\"", key);
}

/* ------------------------------------------------------------- files */

/* Size of a file, -1 if missing. */
static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void expect_file(const char *dir, const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_gt(file_size(path), 0, "%s is missing or empty", path);
}

/* The whole of a file, NUL-terminated, owned by the caller. */
static char *read_text(const char *dir, const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    return slurp(fd);
}

/* A stand-in `gnuplot` in dir: it writes where it ran and its arguments
 * to gnuplot-ran.txt in its working directory, and succeeds. */
static void fake_gnuplot(const char *dir) {
    char path[4300];
    snprintf(path, sizeof path, "%s/gnuplot", dir);
    cr_assert_eq(mkdir(dir, 0755), 0, "mkdir %s: %s", dir, strerror(errno));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("#!/bin/sh\npwd > gnuplot-ran.txt\necho \"$@\" >> gnuplot-ran.txt\n", f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(path, 0755), 0);
}

/* True if a real gnuplot is on PATH. */
static bool have_gnuplot(void) {
    return system("command -v gnuplot > /dev/null 2>&1") == 0;
}

/* The stand-in ran once, inside dir, on script. */
static void expect_gnuplot_ran(const char *dir, const char *script) {
    char *ran = read_text(dir, "gnuplot-ran.txt");
    char real[4096], want[4400];
    cr_assert_not_null(realpath(dir, real));
    snprintf(want, sizeof want, "%s\n%s\n", real, script);
    cr_assert_str_eq(ran, want, "gnuplot ran elsewhere or on something else");
    free(ran);
}

/* ============================================================= micro */

/* The cases `micro --help` lists, after "cases:", in order. */
static size_t micro_help_cases(char names[][32], size_t cap) {
    run_t r;
    bench_run(&r, NULL, "micro --help");
    expect_status(&r, 0);
    const char *p = strstr(r.out, "cases:");
    cr_assert_not_null(p, "micro --help lists no cases:\n%s", r.out);
    p += strlen("cases:");
    size_t n = 0;
    for (;;) {
        p += strspn(p, " \t\n|");
        size_t len = strcspn(p, " \t\n|");
        if (len == 0 || *p == '(') break;
        cr_assert_lt(n, cap);
        cr_assert_lt(len, 32);
        memcpy(names[n], p, len);
        names[n++][len] = '\0';
        p += len;
    }
    run_deinit(&r);
    return n;
}

/* The figure in a note after `lead` ("(64% offered)": lead "(", "%lf%%"). */
static double note_figure(const msgpack_object *r, const char *lead) {
    char note[128];
    text(r, "note", note, sizeof note);
    const char *p = strstr(note, lead);
    cr_assert_not_null(p, "note \"%s\" has no \"%s\"", note, lead);
    double v = NAN;
    cr_assert_eq(sscanf(p + strlen(lead), "%lf", &v), 1, "note \"%s\"", note);
    return v;
}

/* No filter: every case --help lists is measured, each as often as asked. */
Test(cli, micro_reports_every_case_with_the_asked_counts) {
    enum { N = 20000, Q = 2000 };
    run_t r;
    bench_run(&r, NULL, "micro -n %d -q %d --json --quiet", N, Q);
    expect_status(&r, 0);
    cr_assert_str_empty(r.err, "--quiet, yet stderr has:\n%s", r.err);
    doc_t d;
    doc_parse(&d, &r);
    expect_text(&d.root, "mode", "micro");
    const msgpack_object *params = member(&d.root, "params");
    cr_assert_eq(count(params, "volunteers"), N);
    cr_assert_eq(count(params, "queries"), Q);
    cr_assert_eq(count(params, "seed"), 1);
    cr_assert_eq(count(params, "k"), 10);
    cr_assert_eq(count(params, "warm_set"), 30);
    check_rows(&d);

    char names[32][32], got[512];
    size_t n = micro_help_cases(names, 32);
    cr_assert_geq(n, 11, "micro --help lists %zu cases", n);
    for (size_t i = 0; i < n; i++)
        cr_assert_not_null(row(&d, names[i]), "case %s (from --help) is not in the report: %s",
                           names[i], row_names(&d, got, sizeof got));
    cr_assert_eq(results(&d)->via.array.size, n, "rows %s", row_names(&d, got, sizeof got));

    /* The index cases: the load is every volunteer, the others -q each,
     * within one query in twenty (micro.c: each reads thousands). */
    cr_assert_eq(count(row_of(&d, "insert"), "count"), N);
    static const char *const per_query[] = {"nearest", "nearest_hot", "nearest_warm",
                                            "move",    "update",      "dispatch"};
    for (size_t i = 0; i < sizeof per_query / sizeof per_query[0]; i++)
        cr_assert_eq(count(row_of(&d, per_query[i]), "count"), Q, "%s", per_query[i]);
    cr_assert_eq(count(row_of(&d, "within"), "count"), Q / 20);
    for (uint32_t i = 0; i < results(&d)->via.array.size; i++)
        cr_assert_eq(count(&results(&d)->via.array.ptr[i], "errors"), 0);

    /* The engine cases follow the order stream: every offered order is
     * accepted once, every accepted one completed. */
    uint64_t disp = count(row_of(&d, "dispatch"), "count");
    uint64_t acc = count(row_of(&d, "accept"), "count");
    uint64_t cmp = count(row_of(&d, "complete"), "count");
    cr_assert(acc > 0 && acc <= disp, "accept %llu of %llu dispatched", (unsigned long long)acc,
              (unsigned long long)disp);
    cr_assert(cmp > 0 && cmp <= acc, "complete %llu of %llu accepted", (unsigned long long)cmp,
              (unsigned long long)acc);
    double offered = note_figure(row_of(&d, "dispatch"), "(");
    cr_assert_leq(fabs(offered - 100.0 * (double)acc / (double)disp), 0.5,
                  "dispatch says %.0f%% offered, accept ran %llu of %llu", offered,
                  (unsigned long long)acc, (unsigned long long)disp);
    uint64_t bat = count(row_of(&d, "batch"), "count");
    cr_assert(bat > 0 && bat <= 200, "batch ran %llu times", (unsigned long long)bat);
    /* The optimal assignment scores at least the greedy one (engine.h). */
    cr_assert_geq(note_figure(row_of(&d, "batch"), "optimal/greedy total "), 1.0);
    cr_assert_eq(count(row_of(&d, "mobilize"), "count"), 200);
    /* Each row's operations took ops_per_s of busy time, all of it inside
     * the loop's wall time (which the engine cases once left at 0). */
    for (uint32_t i = 0; i < results(&d)->via.array.size; i++) {
        const msgpack_object *x = &results(&d)->via.array.ptr[i];
        char name[64];
        text(x, "name", name, sizeof name);
        double ops = number(x, "ops_per_s"), busy_s = (double)count(x, "count") / ops;
        cr_assert_gt(ops, 0, "%s", name);
        cr_assert_leq(busy_s, number(x, "wall_s") * 1.001 + 0.0006,
                      "%s: %.6f s busy in %.3f s of wall time", name, busy_s, number(x, "wall_s"));
    }

    /* Memory: the growth over the load cannot exceed what is resident
     * (an unsigned underflow would). */
    const msgpack_object *mem = member(&d.root, "memory");
    cr_assert_gt(number(mem, "rss_bytes"), 0);
    cr_assert_leq(number(mem, "rss_growth_bytes"), number(mem, "rss_bytes"));
    cr_assert_gt(number(mem, "bytes_per_volunteer"), 0);
    cr_assert_lt(number(mem, "bytes_per_volunteer"), 1e5);
    cr_assert_gt(number(mem, "index_bytes"), 0);
    cr_assert_gt(number(mem, "index_bytes_per_volunteer"), 0);
    const msgpack_object *nq = member(&d.root, "nearest_quality");
    double hits = number(nq, "mean_hits"), empty = number(nq, "empty_share");
    cr_assert(hits > 0 && hits <= 10, "mean_hits %g with k = 10", hits);
    cr_assert(empty >= 0 && empty < 1, "empty_share %g", empty);
    doc_deinit(&d);
    run_deinit(&r);
}

/* --filter runs the named cases and the load, nothing else; the engine
 * cases one by one too. */
Test(cli, micro_filter_runs_only_the_named_cases) {
    run_t r;
    doc_t d;
    char got[256];
    bench_run(&r, NULL, "micro -n 5000 -q 500 --json --quiet -f nearest");
    expect_status(&r, 0);
    doc_parse(&d, &r);
    check_rows(&d);
    cr_assert_str_eq(row_names(&d, got, sizeof got), "insert,nearest");
    cr_assert_eq(count(row_of(&d, "insert"), "count"), 5000);
    cr_assert_eq(count(row_of(&d, "nearest"), "count"), 500);
    cr_assert(has(&d.root, "nearest_quality"));
    cr_assert(has(&d.root, "memory"));
    doc_deinit(&d);
    run_deinit(&r);

    bench_run(&r, NULL, "micro -n 5000 -q 500 --json --quiet --filter move,mobilize");
    expect_status(&r, 0);
    doc_parse(&d, &r);
    check_rows(&d);
    cr_assert_str_eq(row_names(&d, got, sizeof got), "insert,move,mobilize");
    cr_assert_not(has(&d.root, "nearest_quality"), "nearest did not run");
    doc_deinit(&d);
    run_deinit(&r);
}

/* --batch-orders and --batch-k shape the batch case; a batch past the
 * engine's bound on candidate pairs is reported and fails the run. */
Test(cli, micro_batch_size_and_k) {
    run_t r;
    doc_t d;
    bench_run(&r, NULL,
              "micro -n 5000 -q 2000 --json --quiet -f batch --batch-orders 300 --batch-k 2");
    expect_status(&r, 0);
    doc_parse(&d, &r);
    check_rows(&d);
    const msgpack_object *params = member(&d.root, "params");
    cr_assert_eq(number(params, "batch_orders"), 300);
    cr_assert_eq(number(params, "batch_k"), 2);
    cr_assert_geq(count(row_of(&d, "batch"), "count"), 1);
    doc_deinit(&d);
    run_deinit(&r);
    /* 300 orders of one slot at k = 64 is 19,200 pairs: runs; 100,000
     * orders at k = 64 pass 131,072 */
    bench_run(&r, NULL,
              "micro -n 3000 -q 200000 --quiet -f batch --batch-orders 100000 --batch-k 64");
    expect_status(&r, 1);
    cr_assert_not_null(strstr(r.err, "passes the engine's 131072 candidate pairs"), "%s", r.err);
    run_deinit(&r);
    expect_refused("bad value '65' for --batch-k", "micro --batch-k 65");
    expect_refused("bad value '0' for --batch-orders", "micro --batch-orders 0");
}

/* A misspelt case or an empty list would measure nothing (or everything);
 * a negative or overflowing count would wrap to 2^64 and never end. All
 * are refused with the option named, as are stray arguments. */
Test(cli, micro_refuses_bad_options) {
    expect_refused("unknown case 'neerest' for -f/--filter", "micro -n 1000 -q 10 -f neerest");
    expect_refused("unknown case 'bogus'", "micro -n 1000 -q 10 -f nearest,bogus");
    expect_refused("bad value '' for -f/--filter", "micro -n 1000 -q 10 -f ''");
    expect_refused("bad value ',' for -f/--filter", "micro -n 1000 -q 10 -f ,");
    expect_refused("bad value '0' for -n/--volunteers (1..100000000)", "micro -n 0 -q 10");
    expect_refused("bad value 'abc' for -n/--volunteers", "micro -n abc -q 10");
    expect_refused("bad value '-5' for -n/--volunteers", "micro -n -5 -q 10");
    expect_refused("bad value '99999999999999999999' for -n/--volunteers",
                   "micro -n 99999999999999999999");
    expect_refused("bad value '1x' for -q/--queries", "micro -n 1000 -q 1x");
    expect_refused("bad value '-100' for --radius-m", "micro -n 1000 -q 10 --radius-m -100");
    expect_refused("bad value 'nan' for --radius-m", "micro -n 1000 -q 10 --radius-m nan");
    expect_refused("bad value '0' for --cell-e6 (500..1000000)", "micro --cell-e6 0");
    expect_refused("bad value '0' for --limit", "micro --limit 0");
    expect_refused("bad value '0' for -k/--k", "micro -k 0");
    expect_refused("unexpected argument 'nearest'", "micro -n 1000 -q 10 nearest");
    expect_try_help("micro", "unrecognized option '--bogus'", "--bogus");
    expect_try_help("micro", "option requires an argument -- 'n'", "-n");
}

/* The table is for people: progress on stderr, one line per case, and the
 * memory figures as lines of text (no JSON fragment under the table). */
Test(cli, micro_table_says_what_it_does) {
    run_t r;
    bench_run(&r, NULL, "micro -n 3000 -q 200 -f nearest,move");
    expect_status(&r, 0);
    static const char *const lines[] = {"micro: insert (3000 operations)\n",
                                        "micro: nearest (200 operations)\n",
                                        "micro: move (200 operations)\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_not_null(strstr(r.err, lines[i]), "no \"%s\" on stderr:\n%s", lines[i], r.err);
    cr_assert_null(strstr(r.out, "\"memory\""), "a JSON fragment in the table:\n%s", r.out);
    cr_assert_null(strstr(r.out, "rss_bytes"), "a JSON fragment in the table:\n%s", r.out);
    cr_assert_null(strstr(r.out, "micro: "), "progress on stdout:\n%s", r.out);
    cr_assert_not_null(strstr(r.out, "\nmemory: "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, " bytes per volunteer"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\nnearest: "), "%s", r.out);
    run_deinit(&r);
}

/* ============================================================ replay */

#define SAMPLE_ORDERS 2000
#define SAMPLE_VOLUNTEERS 5000

/* Check one policy's figures and return its digest (16 hex digits). */
static void check_kpis(const msgpack_object *k, const char *policy, char digest[32]) {
    uint64_t orders = count(k, "orders"), filled = count(k, "filled");
    uint64_t rejected = count(k, "rejected"), completed = count(k, "completed");
    const msgpack_object *exp = member(k, "expired");
    uint64_t expired = count(exp, "total");
    cr_assert_eq(orders, SAMPLE_ORDERS, "%s: orders", policy);
    cr_assert_eq(count(k, "volunteers"), SAMPLE_VOLUNTEERS, "%s: volunteers", policy);
    /* The replay runs until nothing is due: every order ended somehow. */
    cr_assert_eq(filled + expired + rejected, orders,
                 "%s: %llu filled + %llu expired + %llu rejected != %llu orders", policy,
                 (unsigned long long)filled, (unsigned long long)expired,
                 (unsigned long long)rejected, (unsigned long long)orders);
    cr_assert_leq(count(exp, "no_candidate") + count(exp, "exhausted"), expired, "%s", policy);
    cr_assert_leq(completed, filled, "%s", policy);
    cr_assert_gt(filled, 0, "%s: nothing filled", policy);
    double fill = number(k, "fill_rate");
    cr_assert_leq(fabs(fill - (double)filled / (double)(orders - rejected)), 1e-6,
                  "%s: fill_rate %g is not filled / (orders - rejected)", policy, fill);
    static const char *const shares[] = {"fill_rate", "in_circle_share", "served_share",
                                         "gini_hours"};
    for (size_t i = 0; i < sizeof shares / sizeof shares[0]; i++) {
        double v = number(k, shares[i]);
        cr_assert(v >= 0 && v <= 1, "%s: %s = %g", policy, shares[i], v);
    }
    cr_assert_leq(number(k, "tta_p50_s"), number(k, "tta_p90_s"), "%s", policy);
    cr_assert_leq(number(k, "eta_p50_s"), number(k, "eta_p90_s"), "%s", policy);
    cr_assert_geq(number(k, "tta_p50_s"), 0, "%s", policy);
    cr_assert_gt(number(k, "hours_total"), 0, "%s", policy);
    double rating = number(k, "rating_mean");
    cr_assert(rating >= 1 && rating <= 5, "%s: rating_mean %g", policy, rating);
    cr_assert_gt(number(k, "virtual_days"), 0, "%s", policy);
    text(k, "digest", digest, 32);
    cr_assert_eq(strlen(digest), 16, "%s: digest \"%s\"", policy, digest);
    cr_assert_eq(strspn(digest, "0123456789abcdef"), 16, "%s: digest \"%s\"", policy, digest);
}

/* The sample county (the default input) under two policies side by side. */
Test(cli, replay_reports_each_policy_on_the_sample_county) {
    run_t r;
    bench_run(&r, NULL, "replay --json --quiet --policy nearest,balanced");
    expect_status(&r, 0);
    cr_assert_str_empty(r.err, "--quiet, yet stderr has:\n%s", r.err);
    doc_t d;
    doc_parse(&d, &r);
    expect_text(&d.root, "mode", "replay");
    const msgpack_object *params = member(&d.root, "params");
    char buf[4096];
    text(params, "volunteers_csv", buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "data/sample/county-volunteers.csv"), "input %s", buf);
    text(params, "orders_csv", buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "data/sample/county-orders.csv"), "input %s", buf);
    expect_text(params, "policies", "nearest,balanced");
    expect_text(params, "offer_mode", "sequential");
    check_rows(&d);
    char got[128];
    cr_assert_str_eq(row_names(&d, got, sizeof got), "nearest,balanced");
    const msgpack_object *kpis = member(&d.root, "kpis");
    cr_assert_eq(kpis->via.map.size, 2);
    char dn[32], db[32];
    check_kpis(member(kpis, "nearest"), "nearest", dn);
    check_kpis(member(kpis, "balanced"), "balanced", db);
    /* A row's count is the orders it timed through order.create. */
    cr_assert_eq(count(row_of(&d, "nearest"), "count"), SAMPLE_ORDERS);
    cr_assert_eq(count(row_of(&d, "balanced"), "count"), SAMPLE_ORDERS);
    cr_assert_str_neq(dn, db, "two policies, one engine state");
    doc_deinit(&d);
    run_deinit(&r);
}

/* Every figure but the wall-clock ones is the same from run to run, and a
 * policy run alone is the same as beside another (a fresh engine each). */
Test(cli, replay_is_deterministic) {
    run_t r1, r2, r3;
    doc_t d1, d2, d3;
    bench_run(&r1, NULL, "replay --json --quiet --policy nearest,balanced");
    bench_run(&r2, NULL, "replay --json --quiet --policy nearest,balanced");
    bench_run(&r3, NULL, "replay --json --quiet --policy balanced");
    expect_status(&r1, 0);
    expect_status(&r2, 0);
    expect_status(&r3, 0);
    doc_parse(&d1, &r1);
    doc_parse(&d2, &r2);
    doc_parse(&d3, &r3);
    const msgpack_object *k1 = member(&d1.root, "kpis"), *k2 = member(&d2.root, "kpis");
    for (uint32_t p = 0; p < k1->via.map.size; p++) {
        const msgpack_object_kv *pol = &k1->via.map.ptr[p];
        char policy[32];
        snprintf(policy, sizeof policy, "%.*s", (int)pol->key.via.str.size, pol->key.via.str.ptr);
        const msgpack_object *other = member(k2, policy);
        cr_assert_eq(pol->val.via.map.size, other->via.map.size);
        for (uint32_t i = 0; i < pol->val.via.map.size; i++) {
            const msgpack_object_kv *kv = &pol->val.via.map.ptr[i];
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
            if (!strcmp(key, "wall_s") || !strcmp(key, "orders_per_s")) continue;
            cr_assert(msgpack_object_equal(kv->val, *member(other, key)),
                      "%s: %s differs between two runs", policy, key);
        }
    }
    char a[32], b[32];
    text(member(member(&d1.root, "kpis"), "balanced"), "digest", a, sizeof a);
    text(member(member(&d3.root, "kpis"), "balanced"), "digest", b, sizeof b);
    cr_assert_str_eq(a, b, "balanced alone ends in another state than beside nearest");
    doc_deinit(&d1);
    doc_deinit(&d2);
    doc_deinit(&d3);
    run_deinit(&r1);
    run_deinit(&r2);
    run_deinit(&r3);
}

Test(cli, replay_refuses_bad_options) {
    expect_refused("unknown policy 'fastest'", "replay --policy fastest");
    expect_refused("named twice", "replay --policy nearest,nearest");
    expect_refused("bad value '' for -p/--policy", "replay --policy ''");
    expect_refused("bad value '1.5' for --accept-base (0..1)", "replay --accept-base 1.5");
    expect_refused("bad value '2' for --accept-base (0..1)", "replay --accept-base 2");
    expect_refused("bad value '0' for -n/--volunteers", "replay -n 0");
    expect_refused("bad value '1e3' for -n/--volunteers", "replay -n 1e3");
    expect_refused("bad value '0' for --days (1..3660)", "replay --days 0");
    expect_refused("bad value '1.5' for -s/--seed", "replay -s 1.5");
    expect_refused("bad value '99999999999999999999' for -s/--seed",
                   "replay -s 99999999999999999999");
    expect_refused("not both", "replay -n 100 --volunteers-csv /dev/null");
    expect_refused("give both --volunteers-csv and --orders-csv",
                   "replay --volunteers-csv /dev/null");
    expect_refused("unexpected argument 'nearest'", "replay nearest");
    expect_try_help("replay", "unrecognized option '--bogus'", "--bogus");
    /* a config that cannot be used says why, and nothing runs */
    expect_failed("--config /tmp: not a regular file", "replay -n 100 -o 10 --config /tmp");
    expect_failed("--config /nonexistent/paidan.ini: cannot read it",
                  "replay -n 100 -o 10 --config /nonexistent/paidan.ini");
}

/* --journal DIR: the params name the journal and what was replayed from
 * it, not the generator's defaults (5000 volunteers, 2000 orders, 7
 * days). The journal comes from a real server: a short order mix. */
Test(cli, replay_from_a_journal_records_its_input) {
    char dir[4200];
    in_scratch(dir, sizeof dir, "data");
    cr_assert_eq(mkdir(dir, 0755), 0);
    const char *const args[] = {"--host", "127.0.0.1", "--data-dir", dir, NULL};
    srv_start(&srv, args);
    run_t r;
    bench_run(&r, NULL, "load -p %u -n 300 --mix order -N 40 -c 1 -P 1 -w 0 --quiet --json",
              (unsigned)srv.port);
    expect_status(&r, 0);
    run_deinit(&r);
    srv_stop(&srv);
    srv.pid = 0;

    bench_run(&r, NULL, "replay --journal '%s' --json --quiet --policy nearest", dir);
    expect_status(&r, 0);
    doc_t d;
    doc_parse(&d, &r);
    const msgpack_object *params = member(&d.root, "params");
    expect_text(params, "journal", dir);
    cr_assert_not(has(params, "volunteers_csv"));
    cr_assert_eq(count(params, "volunteers"), 300);
    uint64_t orders = count(params, "orders");
    cr_assert(orders > 0 && orders <= 40, "%llu orders", (unsigned long long)orders);
    const msgpack_object *k = member(member(&d.root, "kpis"), "nearest");
    cr_assert_eq(orders, count(k, "orders"));
    cr_assert_eq(count(k, "volunteers"), 300);
    cr_assert_lt(number(params, "days"), 1, "the generator's 7 days");
    cr_assert_eq(count(params, "records_skipped"), 0);
    doc_deinit(&d);
    run_deinit(&r);
}

/* --plot DIR creates DIR, writes the data and the script there and runs
 * gnuplot in DIR (a stand-in here, so gnuplot need not be installed). The
 * data agree with the report. */
Test(cli, replay_plot_writes_data_and_script_then_runs_gnuplot) {
    char bin[4200], dir[4200];
    in_scratch(bin, sizeof bin, "bin");
    in_scratch(dir, sizeof dir, "charts"); /* not there yet */
    fake_gnuplot(bin);
    run_t r;
    char pre[4300];
    snprintf(pre, sizeof pre, "export PATH='%s';", bin);
    bench_run(&r, pre, "replay --json --quiet --policy nearest,balanced --plot '%s'", dir);
    expect_status(&r, 0);
    doc_t d;
    doc_parse(&d, &r);
    expect_gnuplot_ran(dir, "replay.gp");
    static const char *const files[] = {"replay-kpis.dat", "replay-tta-nearest.dat",
                                        "replay-tta-balanced.dat", "replay-dispatch.dat",
                                        "replay.gp"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) expect_file(dir, files[i]);

    char *gp = read_text(dir, "replay.gp");
    static const char *const charts[] = {"replay-kpis", "replay-tta", "replay-dispatch"};
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "set output '%s.'.ext", charts[i]);
        cr_assert_not_null(strstr(gp, line), "replay.gp does not draw %s", charts[i]);
    }
    free(gp);

    /* replay-kpis.dat: a header naming the policies, then one row per
     * figure with the report's values. */
    char *kd = read_text(dir, "replay-kpis.dat");
    cr_assert_eq(strncmp(kd, "# figure nearest balanced\n", 26), 0, "%s", kd);
    const char *fr = strstr(kd, "\nfill-rate ");
    cr_assert_not_null(fr, "%s", kd);
    double fn = -1, fb = -1;
    cr_assert_eq(sscanf(fr, "\nfill-rate %lf %lf", &fn, &fb), 2);
    const msgpack_object *kpis = member(&d.root, "kpis");
    cr_assert_leq(fabs(fn - number(member(kpis, "nearest"), "fill_rate")), 1e-4);
    cr_assert_leq(fabs(fb - number(member(kpis, "balanced"), "fill_rate")), 1e-4);
    free(kd);

    /* replay-tta-POLICY.dat: one sorted line per filled order, the
     * cumulative share ending at 1. */
    static const char *const pols[] = {"nearest", "balanced"};
    for (size_t p = 0; p < 2; p++) {
        char name[64];
        snprintf(name, sizeof name, "replay-tta-%s.dat", pols[p]);
        char *t = read_text(dir, name);
        uint64_t lines = 0;
        double prev = -1, tta = 0, share = 0;
        cr_assert_eq(t[0], '#', "%s has no header", name);
        for (char *line = strchr(t, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
            cr_assert_eq(sscanf(line + 1, "%lf %lf", &tta, &share), 2, "%s: %.40s", name, line);
            cr_assert_geq(tta, prev, "%s is not sorted", name);
            prev = tta;
            lines++;
        }
        cr_assert_eq(lines, count(member(kpis, pols[p]), "filled"), "%s", name);
        cr_assert_eq(share, 1.0, "%s ends at %g", name, share);
        free(t);
    }
    /* replay-dispatch.dat: 17 percentiles, a column per policy. */
    char *pd = read_text(dir, "replay-dispatch.dat");
    size_t rows = 0;
    for (const char *p = pd; (p = strchr(p, '\n')); p++) rows++;
    cr_assert_eq(rows, 1 + 17, "%s", pd);
    free(pd);
    doc_deinit(&d);
    run_deinit(&r);
}

/* Without gnuplot the run still reports and writes the data and the
 * script (to plot elsewhere), and says so once. */
Test(cli, replay_plot_without_gnuplot_still_reports) {
    char bin[4200], dir[4200];
    in_scratch(bin, sizeof bin, "empty-bin");
    in_scratch(dir, sizeof dir, "charts");
    cr_assert_eq(mkdir(bin, 0755), 0);
    run_t r;
    char pre[4300];
    snprintf(pre, sizeof pre, "export PATH='%s';", bin);
    bench_run(&r, pre, "replay --json --quiet --policy nearest --plot '%s'", dir);
    expect_status(&r, 0);
    doc_t d;
    doc_parse(&d, &r);
    char digest[32];
    check_kpis(member(member(&d.root, "kpis"), "nearest"), "nearest", digest);
    const char *say = "skipping plots: gnuplot not found on PATH";
    const char *at = strstr(r.err, say);
    cr_assert_not_null(at, "stderr:\n%s", r.err);
    cr_assert_null(strstr(at + 1, say), "said more than once:\n%s", r.err);
    expect_file(dir, "replay.gp");
    expect_file(dir, "replay-kpis.dat");
    doc_deinit(&d);
    run_deinit(&r);
}

/* A --plot DIR that cannot be made (or is a file) is an output the user
 * asked for and will not get: exit 1 before the run, not charts silently
 * missing after it. */
Test(cli, plot_into_a_place_that_cannot_be_written_fails) {
    char file[4200];
    empty_file_in_scratch(file, sizeof file, "a-file");
    static const char *const modes[] = {"replay --quiet --policy nearest",
                                        "load -p 1 --mix ping --quiet",
                                        "compare -n 1000 -q 10 --systems paidan -p 1 --quiet"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        run_t r;
        bench_run(&r, NULL, "%s --plot /proc/nope", modes[i]);
        expect_status(&r, 1);
        cr_assert_str_empty(r.out, "%s\nran anyway:\n%.2000s", r.cmd, r.out);
        cr_assert_not_null(strstr(r.err, "--plot /proc/nope: cannot create the directory"), "%s",
                           r.err);
        run_deinit(&r);
        bench_run(&r, NULL, "%s --plot '%s'", modes[i], file);
        expect_status(&r, 1);
        cr_assert_not_null(strstr(r.err, "not a directory"), "%s\n%s", r.cmd, r.err);
        run_deinit(&r);
    }
}

/* With the real gnuplot the scripts draw every chart (PNG or SVG). */
Test(cli, replay_plot_draws_the_charts_with_gnuplot) {
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed (Debian: gnuplot-nox)");
    char dir[4200];
    in_scratch(dir, sizeof dir, "charts");
    run_t r;
    bench_run(&r, NULL, "replay --quiet --policy nearest,balanced,rated --plot '%s'", dir);
    expect_status(&r, 0);
    static const char *const charts[] = {"replay-kpis", "replay-tta", "replay-dispatch"};
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
        char png[4400], svg[4400];
        snprintf(png, sizeof png, "%s/%s.png", dir, charts[i]);
        snprintf(svg, sizeof svg, "%s/%s.svg", dir, charts[i]);
        cr_assert(file_size(png) > 0 || file_size(svg) > 0, "no chart %s; stderr:\n%s", charts[i],
                  r.err);
        char wrote[4500];
        snprintf(wrote, sizeof wrote, "wrote %s/%s.", dir, charts[i]);
        cr_assert_not_null(strstr(r.err, wrote), "not named on stderr: %s\n%s", charts[i], r.err);
    }
    cr_assert_null(strstr(r.err, "gnuplot failed"), "%s", r.err);
    run_deinit(&r);
}

/* =========================================================== journal */

/* Every case at a tiny size: appends in-process, acknowledged writes over
 * TCP to the paidan-server it spawns, a snapshot, and recovery both ways. */
Test(cli, journal_reports_every_case) {
    char dir[4200];
    in_scratch(dir, sizeof dir, "journal"); /* journal creates it */
    run_t r;
    bench_run(&r, NULL,
              "journal --records 20480 --batch 256 --volunteers 5000 --orders 5000 "
              "--journal-records 1000 --seconds 0.5 --clients 2 --pipeline 4 --json "
              "--server '%s/api/paidan-server' --dir '%s'",
              binary_dir(), dir);
    expect_status(&r, 0);
    doc_t d;
    doc_parse(&d, &r);
    expect_text(&d.root, "mode", "journal");
    const msgpack_object *params = member(&d.root, "params");
    cr_assert_eq(count(params, "records"), 20480);
    cr_assert_eq(count(params, "clients"), 2);
    expect_text(params, "dir", dir);
    check_rows(&d);
    char got[512];
    cr_assert_str_eq(row_names(&d, got, sizeof got),
                     "append/no,append/everysec,append/always,acked/always,acked/everysec,"
                     "snapshot,recovery/engine,recovery/server",
                     "stderr:\n%s", r.err);
    const msgpack_object *rs = results(&d);
    for (uint32_t i = 0; i < rs->via.array.size; i++) {
        const msgpack_object *x = &rs->via.array.ptr[i];
        char name[64];
        text(x, "name", name, sizeof name);
        cr_assert_gt(count(x, "count"), 0, "%s", name);
        cr_assert_eq(count(x, "errors"), 0, "%s", name);
        cr_assert_gt(number(x, "ops_per_s"), 0, "%s", name);
        cr_assert_gt(number(x, "wall_s") + number(x, "max_us"), 0, "%s", name);
    }
    /* Appends are timed a commit (--batch appends) at a time. */
    static const char *const appends[] = {"append/no", "append/everysec", "append/always"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(count(row_of(&d, appends[i]), "count"), 20480 / 256, "%s", appends[i]);
    /* One sample each: the time of the operation. */
    cr_assert_eq(count(row_of(&d, "snapshot"), "count"), 1);
    cr_assert_eq(count(row_of(&d, "recovery/engine"), "count"), 1);
    cr_assert_eq(count(row_of(&d, "recovery/server"), "count"), 1);
    /* In-process recovery scanned every journal record written after the
     * snapshot (and its digest matched, or there would be no row). */
    cr_assert_eq(note_figure(row_of(&d, "recovery/engine"), "scan of "), 1000);

    const msgpack_object *snap = member(&d.root, "snapshot");
    cr_assert_gt(count(snap, "bytes"), 0);
    cr_assert_geq(number(snap, "total_s"), number(snap, "encode_s"));
    const msgpack_object *rec = member(&d.root, "recovery");
    cr_assert_eq(count(rec, "journal_records"), 1000);
    cr_assert_gt(number(rec, "server_s"), 0);
    doc_deinit(&d);
    run_deinit(&r);
}

/* Out of descriptors the acknowledged-write cases cannot connect all their
 * clients: they say so and the run still reports (it used to crash
 * tidying up clients it had never set up), and exits 1: nothing that was
 * asked for was measured. */
Test(cli, journal_without_descriptors_fails_acked) {
    char dir[4200];
    in_scratch(dir, sizeof dir, "journal");
    run_t r;
    bench_run(&r, "ulimit -n 40;",
              "journal --filter acked --clients 64 --seconds 0.2 --json "
              "--server '%s/api/paidan-server' --dir '%s'",
              binary_dir(), dir);
    expect_status(&r, 1);
    doc_t d;
    doc_parse(&d, &r);
    cr_assert_eq(results(&d)->via.array.size, 0);
    cr_assert_not_null(strstr(r.err, "acked/always: a connection failed"), "%s", r.err);
    cr_assert_not_null(strstr(r.err, "acked/everysec: a connection failed"), "%s", r.err);
    cr_assert_not_null(strstr(r.err, "paidan-bench journal: nothing was measured"), "%s", r.err);
    doc_deinit(&d);
    run_deinit(&r);
}

/* Nothing could be measured, or a case asked for by name cannot run: exit
 * 1 at once, with the reason, before any case runs. */
Test(cli, journal_fails_when_it_cannot_measure) {
    char file[4200];
    empty_file_in_scratch(file, sizeof file, "a-file");
    char args[4400];
    snprintf(args, sizeof args, "journal --dir '%s' --filter append --records 1000 --json", file);
    expect_failed("--dir", args);
    expect_failed("not a directory", args);
    expect_failed("no paidan-server at /nonexistent (--server PATH): acked cannot run",
                  "journal --server /nonexistent --filter acked");
    expect_failed("recovery/server cannot run",
                  "journal --server /nonexistent --filter append,recovery --records 1024");
}

/* Asked for nothing in particular, the cases that need paidan-server are
 * skipped without one (said once), and the others are measured. */
Test(cli, journal_without_a_server_skips_its_cases) {
    char dir[4200];
    in_scratch(dir, sizeof dir, "journal");
    run_t r;
    bench_run(&r, NULL,
              "journal --records 1024 --batch 256 --volunteers 200 --orders 200 "
              "--journal-records 10 --server /nonexistent --dir '%s' --json --quiet",
              dir);
    expect_status(&r, 0);
    cr_assert_str_eq(r.err,
                     "journal: no paidan-server at /nonexistent (--server PATH); skipping acked "
                     "and recovery/server\n");
    doc_t d;
    doc_parse(&d, &r);
    check_rows(&d);
    char got[256];
    cr_assert_str_eq(row_names(&d, got, sizeof got),
                     "append/no,append/everysec,append/always,snapshot,recovery/engine");
    const msgpack_object *rec = member(&d.root, "recovery");
    cr_assert_eq(count(rec, "journal_records"), 10);
    cr_assert_not(has(rec, "server_s"), "no server ran");
    doc_deinit(&d);
    run_deinit(&r);

    /* The table carries the snapshot and recovery figures as lines. */
    bench_run(&r, NULL,
              "journal --filter snapshot,recovery --volunteers 200 --orders 200 "
              "--journal-records 10 --server '%s/api/paidan-server' --dir '%s' --quiet",
              binary_dir(), dir);
    expect_status(&r, 0);
    cr_assert_str_empty(r.err, "--quiet, yet stderr has:\n%s", r.err);
    cr_assert_not_null(strstr(r.out, "\nsnapshot: "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\nrecovery: "), "%s", r.out);
    cr_assert_null(strstr(r.out, "\"recovery\""), "a JSON fragment in the table:\n%s", r.out);
    run_deinit(&r);
}

/* --records is the number of appends, also when it is not a multiple of
 * --batch: the last commit takes the rest. A run used to append whole
 * batches (4096 here), so its rows counted 4096 appends per commit while
 * stderr counted 1000: the two figures of one case differed fourfold. */
Test(cli, journal_appends_exactly_records) {
    char dir[4200];
    in_scratch(dir, sizeof dir, "journal");
    run_t r;
    bench_run(&r, NULL, "journal --filter append --records 1000 --batch 4096 --dir '%s' --json",
              dir);
    expect_status(&r, 0);
    doc_t d;
    doc_parse(&d, &r);
    check_rows(&d);
    static const char *const appends[] = {"append/no", "append/everysec", "append/always"};
    for (size_t i = 0; i < 3; i++) {
        const msgpack_object *x = row_of(&d, appends[i]);
        cr_assert_eq(count(x, "count"), 1, "%s: one commit", appends[i]);
        char key[64];
        snprintf(key, sizeof key, "journal: %s: ", appends[i]);
        const char *line = strstr(r.err, key);
        cr_assert_not_null(line, "no progress line for %s:\n%s", appends[i], r.err);
        double said = strtod(line + strlen(key), NULL);
        double rows = number(x, "ops_per_s");
        cr_assert(said > 0 && fabs(rows - said) <= said * 0.01,
                  "%s: %.0f appends/s on stderr, %.0f in the row", appends[i], said, rows);
    }
    doc_deinit(&d);
    run_deinit(&r);
}

/* With no volunteers in the state, the journal after the snapshot holds
 * upserts: it used to hold pings of volunteer 1, which does not exist, so
 * paidan-server refused to replay them and recovery/server failed. */
Test(cli, journal_recovers_a_state_without_volunteers) {
    char dir[4200];
    in_scratch(dir, sizeof dir, "journal");
    run_t r;
    bench_run(&r, NULL,
              "journal --filter recovery --volunteers 0 --orders 0 --journal-records 10 "
              "--server '%s/api/paidan-server' --dir '%s' --json --quiet",
              binary_dir(), dir);
    expect_status(&r, 0);
    cr_assert_str_empty(r.err, "%s", r.err);
    doc_t d;
    doc_parse(&d, &r);
    check_rows(&d);
    char got[256];
    cr_assert_str_eq(row_names(&d, got, sizeof got), "recovery/engine,recovery/server");
    const msgpack_object *rec = member(&d.root, "recovery");
    cr_assert_eq(count(rec, "journal_records"), 10);
    cr_assert_gt(number(rec, "server_s"), 0);
    doc_deinit(&d);
    run_deinit(&r);
}

Test(cli, journal_refuses_bad_options) {
    expect_refused("unknown case 'apend' for --filter", "journal --filter apend");
    expect_refused("bad value '' for --filter", "journal --filter ''");
    /* strtoull would read these as 2 and 2^64 - 1. */
    expect_refused("bad value '2e6' for --records", "journal --records 2e6");
    expect_refused("bad value '-1' for --volunteers", "journal --volunteers -1");
    expect_refused("bad value 'x' for --clients", "journal --clients x");
    expect_refused("bad value '1x' for --seconds", "journal --seconds 1x");
    expect_refused("bad value '0' for --seconds", "journal --seconds 0");
    expect_refused("bad value '0' for --batch (1..1000000)", "journal --batch 0");
    expect_refused("bad value '0' for --clients (1..2000)", "journal --clients 0");
    expect_refused("bad value '201' for --pipeline (1..200)", "journal --pipeline 201");
    expect_refused("bad value '99999999999999999999' for --records",
                   "journal --records 99999999999999999999");
    expect_refused("unexpected argument 'append'", "journal append");
    expect_try_help("journal", "unrecognized option '--bogus'", "--bogus");
    expect_try_help("journal", "invalid option -- 'x'", "-x");
    /* -h as well as --help, and the help documents every option. */
    run_t r;
    bench_run(&r, NULL, "journal -h");
    expect_status(&r, 0);
    static const char *const opts[] = {
        "--filter",  "--dir",        "--keep",    "--records",
        "--batch",   "--volunteers", "--orders",  "--journal-records",
        "--clients", "--pipeline",   "--seconds", "--server",
        "--json",    "--quiet"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        cr_assert_not_null(strstr(r.out, opts[i]), "journal -h does not document %s", opts[i]);
    run_deinit(&r);
}

/* =========================================================== compare */

/* The agreement figure of a compare row ("agreement 100.0%, load ..."). */
static double agreement(const doc_t *d, const char *system) {
    return note_figure(row_of(d, system), "agreement ");
}

/* Only paidan (Redis and PostGIS are not in CI): over TCP it gives the
 * in-process reference's answers. */
Test(cli, compare_paidan_over_tcp_agrees_with_the_reference) {
    server_start();
    run_t r;
    bench_run(&r, NULL, "compare --systems paidan -p %u -n 5000 -q 500 --json --quiet",
              (unsigned)srv.port);
    expect_status(&r, 0);
    cr_assert_str_empty(r.err, "--quiet, yet stderr has:\n%s", r.err);
    doc_t d;
    doc_parse(&d, &r);
    expect_text(&d.root, "mode", "compare");
    const msgpack_object *params = member(&d.root, "params");
    cr_assert_eq(count(params, "volunteers"), 5000);
    cr_assert_eq(count(params, "queries"), 500);
    check_rows(&d);
    char got[128];
    cr_assert_str_eq(row_names(&d, got, sizeof got), "paidan-inproc,paidan");
    for (int i = 0; i < 2; i++) {
        const msgpack_object *x = row_of(&d, i ? "paidan" : "paidan-inproc");
        cr_assert_eq(count(x, "count"), 500);
        cr_assert_eq(count(x, "errors"), 0);
    }
    char note[128];
    cr_assert_not_null(
        strstr(text(row_of(&d, "paidan-inproc"), "note", note, sizeof note), "(reference)"));
    cr_assert_eq(agreement(&d, "paidan-inproc"), 100.0);
    cr_assert_eq(agreement(&d, "paidan"), 100.0, "paidan over TCP disagrees: %s",
                 text(row_of(&d, "paidan"), "note", note, sizeof note));
    const msgpack_object *ratios = member(&d.root, "ratios");
    expect_text(ratios, "baseline", "paidan");
    cr_assert_eq(ratios->via.map.size, 1, "ratios for systems that did not run");
    cr_assert_eq(member(&d.root, "skipped")->via.map.size, 0);
    doc_deinit(&d);
    run_deinit(&r);
}

/* A Tarantool of our own on 127.0.0.1 (Debian's tarantool, which
 * scripts/deps.sh installs): no write-ahead log, its state in the scratch
 * directory, the guest allowed to define the spaces and procedures
 * compare uses. Waits until it greets; its port into *port. */
static void tarantool_start(uint16_t *port) {
    int hold = refusing_port(port);
    close(hold); /* free again for Tarantool to take */
    char lua[4200], log[4200];
    in_scratch(lua, sizeof lua, "init.lua");
    in_scratch(log, sizeof log, "tarantool.log");
    FILE *f = fopen(lua, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "box.cfg{listen = '127.0.0.1:%u', wal_mode = 'none', checkpoint_interval = 0,\n"
            "        memtx_memory = 256 * 1024 * 1024, work_dir = '%s', log = '%s'}\n"
            "box.schema.user.grant('guest', 'super', nil, nil, {if_not_exists = true})\n",
            (unsigned)*port, scratch, log);
    cr_assert_eq(fclose(f), 0);
    tarantool_pid = fork();
    cr_assert_geq(tarantool_pid, 0);
    if (tarantool_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        execlp("tarantool", "tarantool", lua, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        int st;
        cr_assert_eq(waitpid(tarantool_pid, &st, WNOHANG), 0,
                     "tarantool exited (status %d; installed? scripts/deps.sh); see %s", st, log);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(*port);
        char g[9] = {0};
        bool up = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                  read(fd, g, sizeof g) == (ssize_t)sizeof g && memcmp(g, "Tarantool", 9) == 0;
        close(fd);
        if (up) return;
        usleep(50 * 1000);
    }
    cr_assert_fail("tarantool did not listen on 127.0.0.1:%u within 10 s; see %s", (unsigned)*port,
                   log);
}

/* Tarantool's stored procedure (an R-tree walked nearest first, the
 * filters and the ETA in Lua) gives the in-process reference's answers:
 * the same ids for every query, over a county with every mode, skills and
 * schedules. Loading twice replaces the spaces of the first run. A server
 * that is not Tarantool (paidan's port) is skipped with the reason. */
Test(cli, compare_tarantool_agrees_with_the_reference) {
    uint16_t port = 0;
    tarantool_start(&port);
    for (int round = 0; round < 2; round++) {
        run_t r;
        bench_run(&r, NULL,
                  "compare --systems tarantool --tarantool 127.0.0.1:%u -n %d -q 300 -s %d "
                  "--json --quiet",
                  (unsigned)port, round ? 4000 : 6000, round + 1);
        expect_status(&r, 0);
        doc_t d;
        doc_parse(&d, &r);
        check_rows(&d);
        char got[128], note[128];
        cr_assert_str_eq(row_names(&d, got, sizeof got), "paidan-inproc,tarantool");
        const msgpack_object *x = row_of(&d, "tarantool");
        cr_assert_eq(count(x, "count"), 300);
        cr_assert_eq(count(x, "errors"), 0);
        cr_assert_eq(agreement(&d, "tarantool"), 100.0, "Tarantool disagrees: %s",
                     text(x, "note", note, sizeof note));
        cr_assert_eq(member(&d.root, "skipped")->via.map.size, 0);
        doc_deinit(&d);
        run_deinit(&r);
    }
    server_start();
    run_t r;
    bench_run(&r, NULL, "compare --systems tarantool --tarantool 127.0.0.1:%u -n 2000 -q 10 --json",
              (unsigned)srv.port);
    expect_status(&r, 1);
    cr_assert_not_null(strstr(r.err, "did not greet as Tarantool does"), "%s", r.err);
    run_deinit(&r);
}

/* Rivals that do not answer are skipped with the reason, on stderr and in
 * JSON, and the run still reports paidan; --no-load reuses the county the
 * server holds. A paidan-server that is not there is skipped the same way,
 * and the in-process reference becomes the baseline -- but with nothing
 * left to compare the run exits 1, as it does when a system named in
 * --systems did not run. --plot writes the systems that ran. */
Test(cli, compare_skips_unreachable_systems_with_the_reason) {
    server_start();
    uint16_t closed = 0;
    int hold = refusing_port(&closed);
    run_t r;
    bench_run(&r, NULL, "compare --systems paidan -p %u -n 3000 -q 200 --json --quiet",
              (unsigned)srv.port);
    expect_status(&r, 0);
    run_deinit(&r);

    char bin[4200], dir[4200], pre[4300];
    in_scratch(bin, sizeof bin, "bin");
    in_scratch(dir, sizeof dir, "charts");
    fake_gnuplot(bin);
    snprintf(pre, sizeof pre, "export PATH='%s';", bin);
    bench_run(&r, pre,
              "compare -p %u -n 3000 -q 200 --no-load "
              "--redis 127.0.0.1:%u --pg 'host=127.0.0.1 port=%u connect_timeout=3' "
              "--tarantool 127.0.0.1:%u --json --quiet --plot '%s'",
              (unsigned)srv.port, (unsigned)closed, (unsigned)closed, (unsigned)closed, dir);
    expect_status(&r, 0);
    doc_t d;
    doc_parse(&d, &r);
    check_rows(&d);
    char got[128], why[512];
    cr_assert_str_eq(row_names(&d, got, sizeof got), "paidan-inproc,paidan");
    cr_assert_eq(agreement(&d, "paidan"), 100.0, "--no-load: the server's county differs");
    const msgpack_object *skipped = member(&d.root, "skipped");
    cr_assert_eq(skipped->via.map.size, 3);
    cr_assert_not_null(strstr(text(skipped, "redis", why, sizeof why), "Redis not running"), "%s",
                       why);
    cr_assert_gt(strlen(text(skipped, "postgis", why, sizeof why)), 0);
    cr_assert_not_null(strstr(r.err, "compare: skipping redis: "), "%s", r.err);
    cr_assert_not_null(strstr(r.err, "compare: skipping postgis: "), "%s", r.err);
    cr_assert_not_null(strstr(text(skipped, "tarantool", why, sizeof why), "Tarantool not running"),
                       "%s", why);
    const msgpack_object *ratios = member(&d.root, "ratios");
    cr_assert_eq(ratios->via.map.size, 1, "ratios for systems that did not run");
    /* The charts' data: one summary row per system that ran. */
    expect_gnuplot_ran(dir, "compare.gp");
    expect_file(dir, "compare.gp");
    expect_file(dir, "compare-percentiles.dat");
    char *sum = read_text(dir, "compare-summary.dat");
    cr_assert_not_null(strstr(sum, "\npaidan-inproc "), "%s", sum);
    cr_assert_not_null(strstr(sum, "\npaidan "), "%s", sum);
    cr_assert_null(strstr(sum, "redis"), "%s", sum);
    free(sum);
    if (have_gnuplot()) { /* the script itself draws, when gnuplot is here */
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot compare.gp 2>&1", dir);
        cr_assert_eq(system(cmd), 0, "gnuplot fails on compare.gp");
    }
    doc_deinit(&d);
    run_deinit(&r);

    bench_run(&r, NULL, "compare --systems paidan -p %u -n 3000 -q 200 --json --quiet",
              (unsigned)closed);
    expect_status(&r, 1);
    cr_assert_not_null(strstr(r.err, "nothing to compare: every system was skipped"), "%s", r.err);
    doc_parse(&d, &r);
    cr_assert_str_eq(row_names(&d, got, sizeof got), "paidan-inproc");
    cr_assert_not_null(
        strstr(text(member(&d.root, "skipped"), "paidan", why, sizeof why), "not reachable"), "%s",
        why);
    expect_text(member(&d.root, "ratios"), "baseline", "paidan-inproc");
    cr_assert_not_null(strstr(r.err, "compare: skipping paidan: "), "%s", r.err);
    doc_deinit(&d);
    run_deinit(&r);

    /* Named, paidan runs and Redis does not: the report, and exit 1. */
    bench_run(&r, NULL,
              "compare --systems paidan,redis -p %u -n 3000 -q 200 --no-load "
              "--redis 127.0.0.1:%u --json --quiet",
              (unsigned)srv.port, (unsigned)closed);
    expect_status(&r, 1);
    cr_assert_not_null(strstr(r.err, "1 of the systems of --systems did not run"), "%s", r.err);
    doc_parse(&d, &r);
    cr_assert_str_eq(row_names(&d, got, sizeof got), "paidan-inproc,paidan");
    doc_deinit(&d);
    run_deinit(&r);
    close(hold);
}

Test(cli, compare_refuses_bad_options) {
    expect_refused("unknown system 'mongo' for --systems", "compare --systems paidan,mongo");
    expect_refused("bad value '' for --systems", "compare --systems ''");
    expect_refused("bad value '101' for -k/--k (1..100)", "compare -k 101");
    expect_refused("bad value '-3' for -n/--volunteers", "compare -n -3");
    expect_refused("bad value '99999999999999999999' for -n/--volunteers (1..100000000)",
                   "compare -n 99999999999999999999");
    expect_refused("bad value '0' for -q/--queries (1..1000000)", "compare -q 0");
    expect_refused("bad value '70000' for -p/--port (1..65535)", "compare -p 70000");
    expect_refused("bad value '0' for --candidates", "compare --candidates 0");
    expect_try_help("compare", "unrecognized option '--bogus'", "--bogus");
    /* The help shows the real --pg default. */
    run_t r;
    bench_run(&r, NULL, "compare --help");
    expect_status(&r, 0);
    cr_assert_not_null(strstr(r.out, "dbname=postgres connect_timeout=3'"), "%s", r.out);
    run_deinit(&r);
}

/* ============================================================== load */

/* load's own command line (its runs are in test_load_server.c): bad
 * values are refused before any connection is tried (port 1 is closed). */
Test(cli, load_refuses_bad_options) {
    expect_refused("bad value '-1' for -c/--connections (1..65535)", "load -p 1 -c -1");
    expect_refused("bad value '0' for -P/--pipeline", "load -p 1 -P 0");
    expect_refused("bad value 'abc' for -d/--duration", "load -p 1 -d abc");
    expect_refused("bad value '-5' for -n/--volunteers", "load -p 1 -n -5");
    expect_refused("bad value '99999999999999999999' for -n/--volunteers",
                   "load -p 1 -n 99999999999999999999");
    expect_refused("bad value '-3' for -R/--rate", "load -p 1 --rate -3");
    /* Far beyond what any generator sends: refused, not run for minutes. */
    expect_refused("bad value '10000000000' for -R/--rate (0..1000000000)",
                   "load -p 1 -R 10000000000");
    expect_refused("bad value '1e12' for -R/--rate", "load -p 1 -R 1e12");
    expect_refused("bad value 'bogus' for --policy (nearest, balanced, rated)",
                   "load -p 1 --policy bogus");
    expect_refused("bad value '0' for --sweep-steps (1..20)", "load -p 1 --sweep-steps 0");
    expect_refused("bad value '-1' for --drain", "load -p 1 --drain -1");
    expect_refused("bad value '-1' for --spin-us", "load -p 1 --spin-us -1");
    expect_refused("bad value '0' for --p99-max-us", "load -p 1 --p99-max-us 0");
    expect_refused("bad value '0' for -p/--port", "load -p 0");
    expect_refused("-m/--mix: bad weight 'x' for 'nearby'", "load -p 1 --mix nearby:x");
    expect_refused("unexpected argument 'extra'", "load -p 1 extra");
    expect_refused("bad value 'localhost' for --replica (HOST:PORT)",
                   "load -p 1 --replica localhost");
    expect_refused("bad value ':7412' for --replica (HOST:PORT)", "load -p 1 --replica :7412");
    expect_refused("bad value 'h:0' for --replica (HOST:PORT)", "load -p 1 --replica h:0");
    expect_refused("bad value 'h:65536' for --replica (HOST:PORT)", "load -p 1 --replica h:65536");
    expect_refused("bad value 'h:7412x' for --replica (HOST:PORT)", "load -p 1 --replica h:7412x");
    expect_refused("--replica watches one run; it does not go with --sweep",
                   "load -p 1 --replica h:7412 --sweep");
    expect_try_help("load", "unrecognized option '--bogus'", "-p 1 --bogus");
}

/* --replica at servers that do not replicate: refused before the run,
 * naming which of the two is not what it should be. */
Test(cli, load_replica_needs_a_primary_and_a_replica) {
    server_start();
    char args[160];
    snprintf(args, sizeof args, "load -p %u --mix ping -d 0.2 -w 0 --quiet --replica 127.0.0.1:%u",
             (unsigned)srv.port, (unsigned)srv.port);
    expect_failed("replicates nothing (its stats say role \"none\")", args);
}

/* ============================================================== main */

Test(cli, no_mode_or_an_unknown_one_prints_the_usage) {
    run_t r;
    bench_run(&r, NULL, "%s", "");
    expect_status(&r, 2);
    cr_assert_str_empty(r.out);
    cr_assert_eq(strncmp(r.err, "usage: paidan-bench MODE", 24), 0, "%s", r.err);
    run_deinit(&r);

    bench_run(&r, NULL, "%s", "fly");
    expect_status(&r, 2);
    cr_assert_str_empty(r.out);
    cr_assert_not_null(strstr(r.err, "unknown mode 'fly'"), "%s", r.err);
    cr_assert_not_null(strstr(r.err, "usage: paidan-bench MODE"), "%s", r.err);
    run_deinit(&r);

    /* A flag where the mode belongs: the error and where to look. */
    bench_run(&r, NULL, "%s", "--quiet");
    expect_status(&r, 2);
    cr_assert_str_empty(r.out);
    cr_assert_str_eq(r.err,
                     "paidan-bench: unknown option '--quiet' (options follow the mode)\n"
                     "try 'paidan-bench --help'\n");
    run_deinit(&r);

    bench_run(&r, NULL, "%s", "--version");
    expect_status(&r, 0);
    cr_assert_eq(strncmp(r.out, "paidan-bench ", 13), 0, "%s", r.out);
    char *version = r.out;
    free(r.err);
    /* -V as paidan-cli and paidan-gen take it */
    bench_run(&r, NULL, "%s", "-V");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, version);
    free(version);
    run_deinit(&r);
}

/* Every mode the usage lists answers --help on stdout with exit 0. */
Test(cli, every_mode_has_help) {
    run_t r;
    bench_run(&r, NULL, "%s", "--help");
    expect_status(&r, 0);
    const char *p = strstr(r.out, "\nmodes:\n");
    cr_assert_not_null(p, "%s", r.out);
    p += strlen("\nmodes:\n");
    char modes[8][16];
    size_t n = 0;
    /* "  NAME   what it does", continuation lines indented further. */
    for (; *p && *p != '\n'; p = strchr(p, '\n') + 1) {
        if (p[0] == ' ' && p[1] == ' ' && p[2] != ' ') {
            size_t len = strcspn(p + 2, " ");
            cr_assert(n < 8 && len < 16);
            snprintf(modes[n++], 16, "%.*s", (int)len, p + 2);
        }
    }
    cr_assert_eq(n, 5, "modes in the usage: %zu", n);
    run_deinit(&r);
    for (size_t i = 0; i < n; i++) {
        bench_run(&r, NULL, "%s --help", modes[i]);
        expect_status(&r, 0);
        char want[160];
        snprintf(want, sizeof want, "usage: paidan-bench %s ", modes[i]);
        cr_assert_eq(strncmp(r.out, want, strlen(want)), 0, "%s --help:\n%s", modes[i], r.out);
        cr_assert_str_empty(r.err, "%s --help:\n%s", modes[i], r.err);
        run_deinit(&r);
    }
}
