/* test_deploy.c -- paidan-server as a service manager and an operator meet
 * it: systemd's notify protocol (READY=1 only once it serves, STATUS=,
 * WATCHDOG=1, STOPPING=1), log lines with the journal's priority, and
 * --check-config. The notify socket is a datagram socket the test binds,
 * as systemd does, named to the server by NOTIFY_SOCKET.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

/* The port of the "listening on HOST:PORT" line a spawned server prints
 * on `out` (closed after). */
static int read_port(int out) {
    char line[256] = {0};
    size_t len = 0;
    while (!strchr(line, '\n') && len < sizeof line - 1) {
        ssize_t n = read(out, line + len, sizeof line - 1 - len);
        cr_assert_gt(n, 0, "the server exited before listening");
        len += (size_t)n;
    }
    close(out);
    cr_assert(strstr(line, "listening on "), "%s", line);
    return atoi(strrchr(line, ':') + 1);
}

/* The whole of a file (a server's log), in a static buffer. */
static const char *slurp(const char *path) {
    static char buf[16384];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Wait until the log holds `what` (a reload is done when it says so). */
static const char *wait_log(const char *path, const char *what) {
    long long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        const char *log = slurp(path);
        if (strstr(log, what)) return log;
        usleep(20000);
    }
    cr_assert_fail("the log never said '%s':\n%s", what, slurp(path));
    return NULL;
}

#ifdef PD_HAVE_SYSTEMD
/* A notify socket in a fresh directory; NOTIFY_SOCKET names it to the
 * servers this test process starts. */
static int notify_listen(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/pd-notify-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "bind: %s", strerror(errno));
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    return fd;
}

/* The next datagram, within timeout_ms; "" on timeout. */
static const char *next_msg(int fd, int timeout_ms) {
    static char buf[512];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0) return "";
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    return buf;
}

/* Wait for a datagram starting with `prefix`; the ones before it go to
 * `seen` (joined by '|'). */
static const char *wait_msg(int fd, const char *prefix, char *seen, size_t cap) {
    long long deadline = now_ms() + 20000;
    while (now_ms() < deadline) {
        const char *m = next_msg(fd, 200);
        if (strncmp(m, prefix, strlen(prefix)) == 0) return m;
        if (*m && seen) {
            size_t n = strlen(seen);
            snprintf(seen + n, cap - n, "%s|", m);
        }
    }
    cr_assert_fail("no %s from the server within 20 s", prefix);
    return NULL;
}

static void notify_done(int fd, const char *dir) {
    char path[128];
    snprintf(path, sizeof path, "%s/notify", dir);
    unlink(path);
    rmdir(dir);
    close(fd);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
}

Test(deploy, ready_status_watchdog_and_stopping) {
    char dir[64];
    int fd = notify_listen(dir, sizeof dir);
    setenv("WATCHDOG_USEC", "200000", 1); /* a ping every 100 ms */
    srv_t s;
    int out;
    s.pid = srv_spawn((const char *const[]){NULL}, NULL, &out);
    wait_msg(fd, "READY=1", NULL, 0);
    /* ready means serving: read the port it printed, and a ping answers */
    s.port = read_port(out);
    s.metrics_port = -1;
    pd_client_t *c = srv_connect(&s);
    pd_msg_t r = call_ok(c, "ping", NULL);
    cr_assert(obj_str_eq(&r.result, "pong"));
    pd_client_destroy(c);

    const char *st = wait_msg(fd, "STATUS=", NULL, 0);
    cr_assert(strstr(st, "serving 0 volunteers"), "status: %s", st);
    /* the watchdog is pinged every half interval, over and over */
    int pings = 0;
    long long t0 = now_ms();
    while (pings < 3 && now_ms() - t0 < 10000)
        if (strcmp(next_msg(fd, 1000), "WATCHDOG=1") == 0) pings++;
    cr_assert_eq(pings, 3, "watchdog pings: %d", pings);

    kill(s.pid, SIGTERM);
    wait_msg(fd, "STOPPING=1", NULL, 0);
    int status;
    cr_assert_eq(waitpid(s.pid, &status, 0), s.pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    notify_done(fd, dir);
}

Test(deploy, recovery_comes_before_ready) {
    char data[64];
    snprintf(data, sizeof data, "/tmp/pd-deploy-XXXXXX");
    cr_assert_not_null(mkdtemp(data));
    /* a first life leaves a journal to recover */
    srv_t s;
    srv_start(&s, (const char *const[]){"--data-dir", data, NULL});
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "volunteer.upsert",
            "{\"id\":7,\"lat\":30.1,\"lon\":120.2,\"skills\":[\"tutoring\"]}");
    pd_client_destroy(c);
    srv_stop(&s);

    char dir[64];
    int fd = notify_listen(dir, sizeof dir);
    int out;
    s.pid = srv_spawn((const char *const[]){"--data-dir", data, NULL}, NULL, &out);
    char seen[1024] = "";
    wait_msg(fd, "READY=1", seen, sizeof seen);
    cr_assert(strstr(seen, "STATUS=recovering from "), "before READY: %s", seen);
    const char *st = wait_msg(fd, "STATUS=", NULL, 0);
    cr_assert(strstr(st, "serving 1 volunteers"), "status: %s", st);
    close(out);
    kill(s.pid, SIGTERM);
    int status;
    waitpid(s.pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    notify_done(fd, dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data);
    cr_assert_eq(system(cmd), 0);
}

Test(deploy, a_server_that_cannot_start_never_says_ready) {
    char dir[64];
    int fd = notify_listen(dir, sizeof dir);
    /* beyond loopback without a token: refused */
    int status = srv_run_expect_exit((const char *const[]){"--host", "0.0.0.0", NULL});
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    const char *m;
    while (*(m = next_msg(fd, 100))) cr_assert(strncmp(m, "READY=1", 7) != 0, "got %s", m);
    notify_done(fd, dir);
}
#endif

/* Log lines: with stderr the journal stream systemd named, "<N>message";
 * else a timestamp and the level. */
static void log_with_journal_stream(bool matching, char *log, size_t cap) {
    char path[] = "/tmp/pd-deploy-log-XXXXXX";
    int lf = mkstemp(path);
    cr_assert_geq(lf, 0);
    struct stat st;
    cr_assert_eq(fstat(lf, &st), 0);
    close(lf);
    char js[64];
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (matching ? 0 : 1));
    setenv("JOURNAL_STREAM", js, 1);
    int out;
    pid_t pid = srv_spawn((const char *const[]){"--host", "0.0.0.0", NULL}, path, &out);
    int status;
    waitpid(pid, &status, 0);
    close(out);
    unsetenv("JOURNAL_STREAM");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(log, 1, cap - 1, f);
    log[n] = '\0';
    fclose(f);
    unlink(path);
}

Test(deploy, log_levels_as_journal_priorities) {
    char log[4096];
    log_with_journal_stream(true, log, sizeof log);
    cr_assert(strncmp(log, "<3>refusing to listen on 0.0.0.0", 32) == 0, "log: %s", log);
    log_with_journal_stream(false, log, sizeof log);
    cr_assert(strstr(log, "Z ERROR refusing to listen on 0.0.0.0"), "log: %s", log);
    cr_assert(log[0] == '2' && log[4] == '-', "log: %s", log);
}

/* --check-config: runs paidan-server --port 0 ARGS --check-config. */
static int check(const char *const *args, char *out, size_t cap) {
    const char *argv[32];
    size_t n = 0;
    for (; args && args[n]; n++) argv[n] = args[n];
    argv[n++] = "--check-config";
    argv[n] = NULL;
    int status = srv_run_expect_exit_out(argv, out, cap);
    cr_assert(WIFEXITED(status), "status %d", status);
    return WEXITSTATUS(status);
}

Test(deploy, check_config_prints_the_settings_in_effect) {
    char cfg[256];
    temp_file(cfg, sizeof cfg,
              "[dispatch]\ngrab_width = 5\n[server]\nmax_conns = 77\nfsync = always\n"
              "tick_ms = 50\n");
    char out[4096];
    /* the file, then the flags over it */
    cr_assert_eq(
        check((const char *const[]){"--config", cfg, "--tick-ms", "25", "--huge-pages", NULL}, out,
              sizeof out),
        0, "%s", out);
    cr_assert(strstr(out, "settings OK"), "%s", out);
    cr_assert(strstr(out, "\nmax_conns = 77\n"), "%s", out);
    cr_assert(strstr(out, "\nfsync = always\n"), "%s", out);
    cr_assert(strstr(out, "\ntick_ms = 25\n"), "%s", out);
    cr_assert(strstr(out, "\nhuge_pages = true\n"), "%s", out);
    cr_assert(strstr(out, "# token is not set"), "%s", out);

    /* what it prints, read back as a config, gives the same settings */
    char again_cfg[256];
    temp_file(again_cfg, sizeof again_cfg, strchr(out, '\n') + 1);
    char again[4096];
    cr_assert_eq(check((const char *const[]){"--config", again_cfg, NULL}, again, sizeof again), 0,
                 "%s", again);
    cr_assert_str_eq(strchr(again, '\n'), strchr(out, '\n'));
    unlink(cfg);
    unlink(again_cfg);
}

/* The printed section holds each value exactly: a retention with more
 * than 6 digits came back rounded (1.23457 days, 21 ms less), and a
 * value a config file cannot hold (a ';' after a blank cuts it there) was
 * printed as if it could. */
Test(deploy, check_config_prints_values_that_read_back_exactly) {
    char cfg[256];
    temp_file(cfg, sizeof cfg, "[server]\norder_retention = 1.23456789\nidle_timeout = 0.0015\n");
    char out[4096];
    cr_assert_eq(check((const char *const[]){"--config", cfg, NULL}, out, sizeof out), 0, "%s",
                 out);
    cr_assert(strstr(out, "\norder_retention = 1.23456789\n"), "%s", out);
    cr_assert(strstr(out, "\nidle_timeout = 0.002\n"), "%s", out);
    cr_assert_eq(check((const char *const[]){"--order-retention", "0.1", NULL}, out, sizeof out),
                 0);
    cr_assert(strstr(out, "\norder_retention = 0.1\n"), "%s", out);
    /* a data directory named with " ;" is a comment, not a line that would
     * read back as "/tmp/pd a" */
    cr_assert_eq(
        check((const char *const[]){"--data-dir", "/tmp/pd-deploy a ;b", NULL}, out, sizeof out), 0,
        "%s", out);
    cr_assert_null(strstr(out, "\ndata_dir = "), "%s", out);
    cr_assert(strstr(out, "\n# data_dir cannot be written here as it is: /tmp/pd-deploy a ;b\n"),
              "%s", out);
    unlink(cfg);
}

Test(deploy, check_config_finds_what_would_stop_a_start) {
    char out[4096];
    /* beyond loopback without a token */
    cr_assert_eq(check((const char *const[]){"--host", "0.0.0.0", NULL}, out, sizeof out), 1);
    cr_assert(strstr(out, "would not start"), "%s", out);
    /* a token from the environment mends it, and is not printed */
    setenv("PAIDAN_TOKEN", "s3cret-token", 1);
    cr_assert_eq(check((const char *const[]){"--host", "0.0.0.0", NULL}, out, sizeof out), 0, "%s",
                 out);
    unsetenv("PAIDAN_TOKEN");
    cr_assert(strstr(out, "# token is set (12 characters"), "%s", out);
    cr_assert_null(strstr(out, "s3cret"), "%s", out);
    /* a data directory that cannot be made; a CSV that is not there */
    cr_assert_eq(
        check((const char *const[]){"--data-dir", "/nonexistent-pd/data", NULL}, out, sizeof out),
        1);
    cr_assert_eq(check((const char *const[]){"--load-volunteers", "/nonexistent-pd.csv", NULL}, out,
                       sizeof out),
                 1);
    cr_assert_eq(check((const char *const[]){"--data-dir", "/etc/hostname", NULL}, out, sizeof out),
                 1);
    /* the same port twice */
    cr_assert_eq(check((const char *const[]){"--port", "7411", "--metrics-port", "7411", NULL}, out,
                       sizeof out),
                 1);
    /* engine settings the engine refuses (a key it does not know is a
     * parse error, 1 as well) */
    char cfg[256];
    temp_file(cfg, sizeof cfg, "[dispatch]\nbogus = 1\n");
    cr_assert_eq(check((const char *const[]){"--config", cfg, NULL}, out, sizeof out), 1);
    unlink(cfg);
    /* a data directory that does not exist yet but can be made is fine,
     * and the check makes nothing */
    char parent[64];
    snprintf(parent, sizeof parent, "/tmp/pd-deploy-XXXXXX");
    cr_assert_not_null(mkdtemp(parent));
    char data[96];
    snprintf(data, sizeof data, "%s/data", parent);
    cr_assert_eq(check((const char *const[]){"--data-dir", data, NULL}, out, sizeof out), 0, "%s",
                 out);
    struct stat st;
    cr_assert_neq(stat(data, &st), 0, "--check-config created %s", data);
    rmdir(parent);
}

Test(deploy, check_config_leaves_a_running_server_alone) {
    srv_t s;
    srv_start(&s, NULL);
    char port[16];
    snprintf(port, sizeof port, "%d", s.port);
    char out[4096];
    /* its port is taken: the check does not bind, so it passes */
    cr_assert_eq(check((const char *const[]){"--port", port, NULL}, out, sizeof out), 0, "%s", out);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "ping", NULL);
    pd_client_destroy(c);
    srv_stop(&s);
}

/* Make the empty file of a mkstemp template (a server's log). */
static void empty_file(char *tmpl) {
    int fd = mkstemp(tmpl);
    cr_assert_geq(fd, 0, "mkstemp %s", tmpl);
    close(fd);
}

/* A server started with --config `cfg` and its log in `log`. */
static void start_with_log(srv_t *s, const char *const *args, const char *log) {
    int out;
    s->pid = srv_spawn(args, log, &out);
    s->port = read_port(out);
    s->metrics_port = -1;
}

static void rewrite(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* The number config.get gives under `key` (in "limits" or at the top). */
static long long config_num(pd_client_t *c, const char *section, const char *key) {
    pd_msg_t r = call_ok(c, "config.get", NULL);
    const msgpack_object *m = &r.result;
    if (section) {
        for (uint32_t i = 0; i < m->via.map.size; i++)
            if (obj_str_eq(&m->via.map.ptr[i].key, section)) {
                m = &m->via.map.ptr[i].val;
                break;
            }
    }
    return map_int(m, key);
}

Test(deploy, sighup_reloads_what_can_change_live) {
    char cfg[256], log[] = "/tmp/pd-deploy-reload-XXXXXX";
    empty_file(log);
    temp_file(cfg, sizeof cfg, "[server]\nmax_conns = 100\nmax_volunteers = 0\n");
    srv_t s;
    start_with_log(&s, (const char *const[]){"--config", cfg, "--tick-ms", "300", NULL}, log);
    pd_client_t *old = srv_connect(&s);
    cr_assert_eq(config_num(old, "limits", "max_conns"), 100);

    /* a token, lower limits, a volunteer cap; the flag keeps tick_ms; the
     * engine's settings and fsync must wait for a restart */
    rewrite(cfg,
            "[dispatch]\ngrab_width = 5\n[server]\nmax_conns = 50\ntoken = tok-1\n"
            "max_volunteers = 1\ntick_ms = 50\nfsync = always\nlog_level = debug\n");
    chmod(cfg, 0600);
    kill(s.pid, SIGHUP);
    const char *l = wait_log(log, "reload: 4 settings changed, 2 waiting for a restart");
    cr_assert(strstr(l, "reload: max_conns 100 -> 50"), "%s", l);
    cr_assert(strstr(l, "reload: the token is now required"), "%s", l);
    cr_assert(strstr(l, "reload: fsync changed: the change waits for a restart"), "%s", l);
    cr_assert(strstr(l, "reload: the engine's settings changed"), "%s", l);
    cr_assert_null(strstr(l, "tick_ms"), "the flag wins over the file: %s", l);

    /* the connection open at the reload goes on; a new one needs the token */
    cr_assert_eq(config_num(old, "limits", "max_conns"), 50);
    cr_assert_eq(config_num(old, "limits", "max_volunteers"), 1);
    pd_client_t *fresh = srv_connect(&s);
    call_err(fresh, "config.get", NULL, PD_ERR_UNAUTHORIZED);
    call_ok(fresh, "auth", "{\"token\":\"tok-1\"}");
    call_ok(fresh, "volunteer.upsert", "{\"id\":1,\"lat\":30.1,\"lon\":120.2,\"skills\":[]}");
    call_err(fresh, "volunteer.upsert", "{\"id\":2,\"lat\":30.1,\"lon\":120.2,\"skills\":[]}",
             PD_ERR_LIMIT);
    /* the engine's grab width is still the one it started with */
    cr_assert_eq(config_num(fresh, NULL, "grab_width"), 3);

    /* a file that does not read changes nothing */
    rewrite(cfg, "[server]\nmax_conns = many\n");
    kill(s.pid, SIGHUP);
    wait_log(log, "reload refused: the settings do not read");
    cr_assert_eq(config_num(fresh, "limits", "max_conns"), 50);
    call_ok(fresh, "ping", NULL);
    pd_client_destroy(old);
    pd_client_destroy(fresh);
    srv_stop(&s);
    unlink(cfg);
    unlink(log);
}

Test(deploy, a_reload_keeps_a_token_beyond_loopback) {
    /* ::ffff:127.0.0.1 counts as beyond loopback (an IPv6 stack may route
     * it out), yet answers on 127.0.0.1, so a test can use it */
    char cfg[256], log[] = "/tmp/pd-deploy-reload-XXXXXX";
    empty_file(log);
    temp_file(cfg, sizeof cfg, "[server]\ntoken = tok-2\n");
    chmod(cfg, 0600);
    srv_t s;
    start_with_log(&s, (const char *const[]){"--config", cfg, "--host", "::ffff:127.0.0.1", NULL},
                   log);
    rewrite(cfg, "[server]\nmax_conns = 10\n");
    kill(s.pid, SIGHUP);
    wait_log(log, "reload refused: the server listens on ::ffff:127.0.0.1, beyond loopback");
    pd_client_t *c = srv_connect(&s);
    call_err(c, "config.get", NULL, PD_ERR_UNAUTHORIZED);
    call_ok(c, "auth", "{\"token\":\"tok-2\"}");
    cr_assert_eq(config_num(c, "limits", "max_conns"), 10000);
    pd_client_destroy(c);
    srv_stop(&s);
    unlink(cfg);
    unlink(log);
}

/* The server's resident set, in kB (VmRSS). */
static long rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    fclose(f);
    cr_assert_geq(kb, 0);
    return kb;
}

/* How often the log says `what`. */
static int log_count(const char *path, const char *what) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, what)) n++;
    fclose(f);
    return n;
}

/* Wait until the log says `what` (a log of any length). */
static void wait_log_long(const char *path, const char *what) {
    long long deadline = now_ms() + 20000;
    while (log_count(path, what) == 0) {
        cr_assert_lt(now_ms(), deadline, "the log never said '%s'", what);
        usleep(20000);
    }
}

/* A reload keeps only the settings the server points into: thousands of
 * SIGHUPs (a reload in a loop, logrotate gone wrong) cost no memory. Each
 * one kept its whole settings until exit before, some 5 kB. */
Test(deploy, reloads_do_not_pile_up_settings) {
    char cfg[256], log[] = "/tmp/pd-deploy-reload-XXXXXX";
    empty_file(log);
    temp_file(cfg, sizeof cfg, "[server]\nmax_conns = 100\ntoken = tok-3\n");
    chmod(cfg, 0600);
    srv_t s;
    start_with_log(&s, (const char *const[]){"--config", cfg, NULL}, log);
    /* warm up: the first reloads may grow the heap once */
    for (int i = 0; i < 50; i++) {
        kill(s.pid, SIGHUP);
        usleep(300);
    }
    rewrite(cfg, "[server]\nmax_conns = 100\ntoken = tok-3\nlog_level = info\nmax_orders = 1\n");
    kill(s.pid, SIGHUP);
    wait_log_long(log, "reload: max_orders 0 -> 1");
    long before = rss_kb(s.pid);
    int r0 = log_count(log, "received SIGHUP");
    for (int i = 0; i < 3000; i++) {
        kill(s.pid, SIGHUP);
        usleep(300);
    }
    /* the signals arrive in order: when this one is done, so are they */
    rewrite(cfg, "[server]\nmax_conns = 100\ntoken = tok-4\nmax_orders = 1\n");
    kill(s.pid, SIGHUP);
    wait_log_long(log, "reload: the token changed");
    int reloads = log_count(log, "received SIGHUP") - r0;
    long after = rss_kb(s.pid);
    cr_assert_gt(reloads, 500, "only %d reloads", reloads);
#if defined(__SANITIZE_ADDRESS__)
    (void)before;
    (void)after;
#else
    /* (ASan holds what is freed in quarantine: RSS grows anyway) */
    cr_assert_lt(after - before, 2048, "%d reloads grew the server by %ld kB", reloads,
                 after - before);
#endif
    /* the token the last reload took is the one in force */
    pd_client_t *c = srv_connect(&s);
    call_err(c, "auth", "{\"token\":\"tok-3\"}", PD_ERR_UNAUTHORIZED);
    call_ok(c, "auth", "{\"token\":\"tok-4\"}");
    cr_assert_eq(config_num(c, "limits", "max_conns"), 100);
    pd_client_destroy(c);
    srv_stop(&s);
    unlink(cfg);
    unlink(log);
}

/* Everything the connection `fd` gets until the server closes it (at
 * most cap bytes, within 10 s); returns the length. */
static size_t read_to_close(int fd, char *buf, size_t cap) {
    size_t len = 0;
    long long deadline = now_ms() + 10000;
    while (len < cap && now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    return len;
}

/* A connection keeps the frame limit it was opened with across a reload,
 * and the error that closes it names that limit, not the new one. */
Test(deploy, a_frame_too_large_names_the_connections_limit) {
    char cfg[256], log[] = "/tmp/pd-deploy-reload-XXXXXX";
    empty_file(log);
    temp_file(cfg, sizeof cfg, "[server]\nmax_frame = 1k\n");
    srv_t s;
    start_with_log(&s, (const char *const[]){"--config", cfg, NULL}, log);
    int fd = tcp_connect(s.port);
    rewrite(cfg, "[server]\nmax_frame = 4k\n");
    kill(s.pid, SIGHUP);
    wait_log(log, "reload: max_frame (new connections) 1024 -> 4096");
    /* [0, 1, "ping", {"x": <2000 bytes>}]: over 1k, under 4k */
    static uint8_t req[2100];
    const uint8_t head[] = {0x94, 0x00, 0x01, 0xa4, 'p',  'i',  'n',
                            'g',  0x81, 0xa1, 'x',  0xda, 0x07, 0xd0};
    memcpy(req, head, sizeof head);
    memset(req + sizeof head, 'a', 2000);
    cr_assert_eq(write(fd, req, sizeof head + 2000), (ssize_t)(sizeof head + 2000));
    char buf[4096];
    size_t n = read_to_close(fd, buf, sizeof buf);
    close(fd);
    const char *want = "frame larger than the limit of 1024 bytes";
    cr_assert_not_null(memmem(buf, n, want, strlen(want)), "the close did not say '%s'", want);
    srv_stop(&s);
    unlink(cfg);
    unlink(log);
}
