/* helper.c -- a real paidan-server per test, and client shortcuts (see helper.h). */
#include "helper.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *binary_path(const char *rel) {
    static char path[4096];
    const char *dir = getenv("PD_BINARY_DIR");
    cr_assert(dir, "PD_BINARY_DIR is not set (run through ctest)");
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return path;
}

pid_t srv_spawn(const char *const *args, const char *log, int *out_fd) {
    const char *argv[64];
    int n = 0;
    argv[n++] = "paidan-server";
    argv[n++] = "--port";
    argv[n++] = "0";
    for (; args && *args && n < 62; args++) argv[n++] = *args;
    argv[n] = NULL;
    char binpath[4096];
    snprintf(binpath, sizeof(binpath), "%s", binary_path("api/paidan-server"));
    char logpath[4096];
    snprintf(logpath, sizeof(logpath), "%s",
             log                     ? log
             : getenv("PD_TEST_LOG") ? binary_path("Testing/api-server.log")
                                     : "/dev/null");

    int fds[2];
    cr_assert(pipe(fds) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        int lf = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lf >= 0) {
            dup2(lf, STDERR_FILENO);
            close(lf);
        }
        execv(binpath, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    *out_fd = fds[0];
    return pid;
}

void srv_start(srv_t *s, const char *const *args) {
    bool want_metrics = false;
    for (const char *const *a = args; a && *a; a++)
        if (strcmp(*a, "--metrics-port") == 0) want_metrics = true;
    int fd;
    s->pid = srv_spawn(args, NULL, &fd);
    s->port = -1;
    s->metrics_port = -1;
    char buf[4096];
    size_t len = 0;
    long long deadline = now_ms() + 20000;
    while (s->port < 0 || (want_metrics && s->metrics_port < 0)) {
        long long left = deadline - now_ms();
        cr_assert(left > 0, "paidan-server did not print its listening line");
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        cr_assert(n > 0, "paidan-server exited before listening");
        len += (size_t)n;
        buf[len] = '\0';
        const char *l = strstr(buf, "listening on ");
        if (l && strchr(l, '\n')) {
            const char *colon = strrchr(l, ':');
            const char *nl = strchr(l, '\n');
            for (const char *q = l; q < nl; q++)
                if (*q == ':') colon = q;
            s->port = atoi(colon + 1);
        }
        const char *m = strstr(buf, "metrics on ");
        if (m && strchr(m, '\n')) {
            const char *nl = strchr(m, '\n');
            const char *colon = m;
            for (const char *q = m; q < nl; q++)
                if (*q == ':') colon = q;
            s->metrics_port = atoi(colon + 1);
        }
    }
    close(fd);
}

int srv_run_expect_exit(const char *const *args) {
    return srv_run_expect_exit_out(args, NULL, 0);
}

int srv_run_expect_exit_out(const char *const *args, char *out, size_t cap) {
    int fd;
    pid_t pid = srv_spawn(args, NULL, &fd);
    int status = 0;
    long long deadline = now_ms() + 10000;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(fd);
            cr_assert_fail("paidan-server was expected to exit but kept running");
        }
        usleep(10000);
    }
    if (out && cap) {
        /* it has exited: its stdout is all in the pipe */
        size_t n = 0;
        ssize_t r;
        while (n + 1 < cap && (r = read(fd, out + n, cap - 1 - n)) > 0) n += (size_t)r;
        out[n] = '\0';
    }
    close(fd);
    return status;
}

int srv_stop_sig(srv_t *s, int sig) {
    int status = 0;
    kill(s->pid, sig);
    long long deadline = now_ms() + 10000;
    for (;;) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid) return status;
        if (now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            cr_assert_fail("paidan-server did not stop within 10 s of signal %d", sig);
        }
        usleep(5000);
    }
}

void srv_stop(srv_t *s) {
    int status = srv_stop_sig(s, SIGTERM);
    cr_assert(WIFEXITED(status), "server did not exit normally (status %d)", status);
    cr_assert_eq(WEXITSTATUS(status), 0, "server exit status %d", WEXITSTATUS(status));
}

pd_client_t *srv_connect(const srv_t *s) {
    pd_client_t *c = NULL;
    /* A connect can fail for a moment on a busy machine (the suite runs
     * tests in parallel, some opening thousands of connections); try for
     * two seconds before calling it a failure. A dead server still fails. */
    pd_err err = PD_OK;
    for (int attempt = 0; attempt < 40; attempt++) {
        /* I/O timeout 20 s: under the sanitizers on a loaded machine a
         * server busy with a test's flood can take over 5 s to answer */
        err = pd_client_connect("127.0.0.1", (uint16_t)s->port, 20000, &c);
        if (err == PD_OK) break;
        usleep(50000);
    }
    cr_assert_eq(err, PD_OK, "%s", pd_client_connect_error());
    return c;
}

const char *params_json(const char *json, size_t *len) {
    static msgpack_sbuffer sb;
    static bool init;
    if (!init) {
        msgpack_sbuffer_init(&sb);
        init = true;
    }
    sb.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (!json || !*json) {
        msgpack_pack_map(&pk, 0);
    } else {
        char err[128];
        cr_assert_eq(pd_json_to_msgpack(json, strlen(json), &pk, err, sizeof(err)), PD_OK,
                     "bad JSON in test: %s (%s)", json, err);
    }
    *len = sb.size;
    return sb.data;
}

pd_msg_t call(pd_client_t *c, const char *method, const char *json) {
    size_t len;
    const char *p = params_json(json, &len);
    pd_msg_t m;
    pd_err err = pd_client_call(c, method, p, len, &m);
    cr_assert_eq(err, PD_OK, "%s: transport error %d (%s)", method, err, pd_client_last_error(c));
    return m;
}

pd_msg_t call_ok(pd_client_t *c, const char *method, const char *json) {
    pd_msg_t m = call(c, method, json);
    cr_assert_eq(m.code, 0, "%s %s: error %lld %s", method, json ? json : "", (long long)m.code,
                 m.message);
    return m;
}

bool import_running(pd_client_t *c) {
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *im = pd_client_map_get(&m.result, "import");
    cr_assert(im);
    const msgpack_object *r = pd_client_map_get(im, "running");
    cr_assert(r && r->type == MSGPACK_OBJECT_BOOLEAN);
    if (r->via.boolean) /* what the reply will say, so far */
        for (const char *k = "path\0imported\0replaced\0skipped\0seconds\0"; *k; k += strlen(k) + 1)
            cr_assert(pd_client_map_get(im, k), "stats.import lacks '%s' while running", k);
    return r->via.boolean;
}

pd_msg_t call_err(pd_client_t *c, const char *method, const char *json, int code) {
    pd_msg_t m = call(c, method, json);
    cr_assert_eq(m.code, code, "%s %s: expected error %d, got %lld (%s)", method, json ? json : "",
                 code, (long long)m.code, m.message);
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_NIL);
    cr_assert(m.message[0] != '\0', "error without a message");
    return m;
}

long long map_int(const msgpack_object *map, const char *key) {
    const msgpack_object *v = pd_client_map_get(map, key);
    cr_assert(v, "no key '%s'", key);
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (long long)v->via.u64;
    cr_assert_eq(v->type, MSGPACK_OBJECT_NEGATIVE_INTEGER, "key '%s' is not an integer", key);
    return (long long)v->via.i64;
}

double map_num(const msgpack_object *map, const char *key) {
    const msgpack_object *v = pd_client_map_get(map, key);
    cr_assert(v, "no key '%s'", key);
    if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32) return v->via.f64;
    return (double)map_int(map, key);
}

const char *map_str(const msgpack_object *map, const char *key) {
    static char buf[1024];
    const msgpack_object *v = pd_client_map_get(map, key);
    cr_assert(v, "no key '%s'", key);
    cr_assert_eq(v->type, MSGPACK_OBJECT_STR, "key '%s' is not a string", key);
    size_t n = v->via.str.size < sizeof(buf) - 1 ? v->via.str.size : sizeof(buf) - 1;
    memcpy(buf, v->via.str.ptr, n);
    buf[n] = '\0';
    return buf;
}

bool obj_str_eq(const msgpack_object *o, const char *s) {
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

long long stat_of(const srv_t *s, const char *section, const char *key) {
    pd_client_t *c = srv_connect(s);
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *sec = pd_client_map_get(&m.result, section);
    cr_assert(sec, "no stats section '%s'", section);
    long long v = map_int(sec, key);
    pd_client_destroy(c);
    return v;
}

bool wait_closed(pd_client_t *c, int timeout_ms, int *last_error_code) {
    if (last_error_code) *last_error_code = 0;
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) return false;
        pd_client_set_timeout(c, (int)left);
        pd_msg_t m;
        pd_err err = pd_client_read(c, &m);
        if (err == PD_ERR_IO) return strstr(pd_client_last_error(c), "timed out") == NULL;
        if (err) return true;
        if (m.type == PD_MSG_NOTIFICATION && strcmp(m.method, "server.error") == 0 &&
            last_error_code)
            *last_error_code = (int)map_int(&m.params, "code");
    }
}

int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

size_t tcp_exchange(int port, const void *req, size_t len, char *buf, size_t cap) {
    int fd = tcp_connect(port);
    cr_assert_eq(write(fd, req, len), (ssize_t)len);
    size_t got = 0;
    ssize_t n;
    while (got < cap - 1 && (n = read(fd, buf + got, cap - 1 - got)) > 0) got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    return got;
}

void temp_file(char *path, size_t cap, const char *text) {
    /* mkstemp fills in the X's */
    snprintf(path, cap, "/tmp/pd-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

char *file_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}
