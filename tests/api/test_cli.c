/* test_cli.c -- paidan-cli against a real server: one-shot calls, errors,
 * auth, follow mode and the interactive mode.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
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
#include <unistd.h>

#include "helper.h"

static srv_t srv;

static void start(void) {
    static const char *const args[] = {"--token", "tok", NULL};
    srv_start(&srv, args);
}

static void stop(void) {
    srv_stop(&srv);
}

TestSuite(cli, .init = start, .fini = stop, .timeout = 30);

typedef struct run_s {
    int status;     /* exit status */
    char out[8192]; /* stdout */
    char err[4096]; /* stderr */
} run_t;

/* Run paidan-cli with args (NULL-terminated) and `in_len` bytes of stdin;
 * collect output. stdout_path: where its stdout goes instead of r->out, or
 * NULL. */
static void run_cli_ex(run_t *r, const char *const *args, const char *input, size_t in_len,
                       const char *stdout_path) {
    char port[16];
    snprintf(port, sizeof(port), "%d", srv.port);
    const char *argv[32];
    int n = 0;
    argv[n++] = "paidan-cli";
    argv[n++] = "-p";
    argv[n++] = port;
    for (; *args; args++) argv[n++] = *args;
    argv[n] = NULL;
    char bin[4096];
    snprintf(bin, sizeof(bin), "%s", binary_path("api/paidan-cli"));
    int in[2], out[2], err[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0 && pipe(err) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (stdout_path) {
            int fd = open(stdout_path, O_WRONLY);
            if (fd < 0) _exit(126);
            dup2(fd, 1);
            close(fd);
        }
        close(in[1]);
        close(out[0]);
        close(err[0]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (input) cr_assert_eq(write(in[1], input, in_len), (ssize_t)in_len);
    close(in[1]);
    size_t on = 0, en = 0;
    bool oe = false, ee = false;
    while (!oe || !ee) {
        struct pollfd p[2] = {{.fd = oe ? -1 : out[0], .events = POLLIN},
                              {.fd = ee ? -1 : err[0], .events = POLLIN}};
        cr_assert_gt(poll(p, 2, 10000), 0, "paidan-cli hung");
        if (p[0].revents) {
            ssize_t k = read(out[0], r->out + on, sizeof(r->out) - 1 - on);
            if (k <= 0)
                oe = true;
            else
                on += (size_t)k;
        }
        if (p[1].revents) {
            ssize_t k = read(err[0], r->err + en, sizeof(r->err) - 1 - en);
            if (k <= 0)
                ee = true;
            else
                en += (size_t)k;
        }
    }
    r->out[on] = '\0';
    r->err[en] = '\0';
    close(out[0]);
    close(err[0]);
    waitpid(pid, &r->status, 0);
    cr_assert(WIFEXITED(r->status));
    r->status = WEXITSTATUS(r->status);
}

/* Run paidan-cli with args (NULL-terminated) and stdin text; collect output. */
static void run_cli(run_t *r, const char *const *args, const char *input) {
    run_cli_ex(r, args, input, input ? strlen(input) : 0, NULL);
}

/* A listening socket on 127.0.0.1 at a port the kernel picks. */
static int listen_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A peer standing in for a server that misbehaves: it accepts one
 * connection, reads the first request, answers `reply` (len bytes) and
 * waits for the client to close -- or, with reply NULL, closes at once,
 * like a server that dies mid-call. Returns its pid; reap with waitpid. */
static pid_t fake_server(const void *reply, size_t len, int *port) {
    int lfd = listen_any(port);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        int fd = accept(lfd, NULL, NULL);
        char buf[4096];
        if (fd >= 0 && read(fd, buf, sizeof buf) > 0 && reply) {
            if (write(fd, reply, len) != (ssize_t)len) _exit(1);
            while (read(fd, buf, sizeof buf) > 0) {
            }
        }
        _exit(0);
    }
    close(lfd);
    return pid;
}

Test(cli, one_shot_call) {
    run_t r;
    static const char *const a1[] = {"ping", NULL};
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "\"pong\"\n");

    static const char *const a2[] = {"-a", "tok", "volunteer.upsert",
                                     "{\"id\": 9, \"lat\": 30.6, \"lon\": 114.3, "
                                     "\"skills\": [\"tutoring\"], \"schedule\": [[0, 8, 12]]}",
                                     NULL};
    run_cli(&r, a2, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "{\"id\":9,\"created\":true}\n");

    static const char *const a3[] = {"--auth", "tok", "volunteer.get", "{\"id\":9}", NULL};
    run_cli(&r, a3, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "\"schedule\":[[0,8,12]]"), "%s", r.out);
    cr_assert(strstr(r.out, "\"lat\":30.6,"), "%s", r.out);
}

Test(cli, errors) {
    run_t r;
    static const char *const a1[] = {"stats", NULL};
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "error 7 UNAUTHORIZED: ", 22) == 0, "%s", r.err);
    cr_assert_str_eq(r.out, "");

    static const char *const a2[] = {"-a", "tok", "nope", NULL};
    run_cli(&r, a2, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "error 2 UNKNOWN_METHOD: unknown method 'nope'", 45) == 0, "%s",
              r.err);

    static const char *const a3[] = {"-a", "tok", "volunteer.get", "{\"id\":", NULL};
    run_cli(&r, a3, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "bad JSON"), "%s", r.err);

    static const char *const a4[] = {"-a", "wrong", "ping", NULL};
    run_cli(&r, a4, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "UNAUTHORIZED"));

    static const char *const a5[] = {"-a", "tok", "match.nearby", "{\"lat\":95,\"lon\":0}", NULL};
    run_cli(&r, a5, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strncmp(r.err, "error 3 BAD_COORD: ", 19) == 0, "%s", r.err);
}

Test(cli, says_why_it_cannot_connect) {
    /* A port nobody listens on: take one from the kernel, then let it go. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    char port[16];
    snprintf(port, sizeof port, "%u", (unsigned)ntohs(a.sin_port));
    const char *const args[] = {"-p", port, "ping", NULL};
    run_t r;
    run_cli(&r, args, NULL);
    cr_assert_eq(r.status, 2);
    char want[96];
    snprintf(want, sizeof want, "paidan-cli: connect to 127.0.0.1 port %s: Connection refused",
             port);
    cr_assert(strstr(r.err, want), "%s", r.err);
    /* The library says the same to any caller. */
    pd_client_t *c = NULL;
    cr_assert_eq(pd_client_connect("127.0.0.1", ntohs(a.sin_port), 1000, &c), PD_ERR_IO);
    cr_assert_null(c);
    cr_assert(strstr(pd_client_connect_error(), "Connection refused"), "%s",
              pd_client_connect_error());
    c = srv_connect(&srv);
    cr_assert_str_eq(pd_client_connect_error(), "no error");
    pd_client_destroy(c);
}

Test(cli, interactive) {
    run_t r;
    static const char *const a[] = {"-a", "tok", NULL};
    run_cli(&r, a,
            "# a comment\n"
            "\n"
            "ping\n"
            "subscribe {\"events\": [\"order.offered\"]}\n"
            "volunteer.upsert {\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}\n"
            "bogus {}\n"
            "order.create {\"id\":5,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}\n"
            "ping\n");
    /* it went on after the bad line, and says at the end that one failed */
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(
        strncmp(r.out, "\"pong\"\n{\"events\":[\"order.offered\"]}\n{\"id\":1,\"created\":true}\n",
                60) == 0,
        "%s", r.out);
    cr_assert(strstr(r.out, "notification order.offered {\"order\":5,"), "%s", r.out);
    cr_assert(strstr(r.out, "\"pong\"\n"), "%s", r.out);
    cr_assert_str_eq(r.err, "line 6: error 2 UNKNOWN_METHOD: unknown method 'bogus'\n");

    /* bad JSON names its line too; a clean run exits 0 */
    run_cli(&r, a, "ping\nvolunteer.get {\"id\":\nping []\n");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "line 2: error: bad JSON params"), "%s", r.err);
    cr_assert(strstr(r.err, "line 3: error: params must be a JSON object"), "%s", r.err);
    run_cli(&r, a, "ping\n\nping {}\n");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "\"pong\"\n\"pong\"\n");
}

/* The token from the environment, so it does not show in `ps`; -a wins. */
Test(cli, token_from_environment) {
    run_t r;
    static const char *const a1[] = {"stats", NULL};
    cr_assert(setenv("PAIDAN_TOKEN", "tok", 1) == 0);
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    static const char *const a2[] = {"-a", "wrong", "stats", NULL};
    run_cli(&r, a2, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "UNAUTHORIZED"), "%s", r.err);
    cr_assert(setenv("PAIDAN_TOKEN", "wrong", 1) == 0);
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 1);
    unsetenv("PAIDAN_TOKEN");
}

Test(cli, bad_options) {
    run_t r;
    static const char *const bad[][3] = {
        {"-t", "4294967296", NULL}, {"-t", "99999999999999999999", NULL},
        {"-t", "-1", NULL},         {"-t", "", NULL},
        {"-p", "", NULL},           {"-p", "65536", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *const args[] = {bad[i][0], bad[i][1], "ping", NULL};
        run_cli(&r, args, NULL);
        cr_assert_eq(r.status, 2, "%s %s: exit %d", bad[i][0], bad[i][1], r.status);
        cr_assert(strstr(r.err, "paidan-cli: bad "), "%s", r.err);
    }
    /* an unquoted JSON object splits into several arguments */
    static const char *const a1[] = {"order.get", "{\"id\":", "1}", NULL};
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "unexpected argument '1}'"), "%s", r.err);
    static const char *const a2[] = {"--bogus", "ping", NULL};
    run_cli(&r, a2, NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "try 'paidan-cli --help'"), "%s", r.err);
    cr_assert(!strstr(r.err, "usage:"), "%s", r.err);
    /* -f follows a call: without a METHOD it would be silently ignored */
    static const char *const a3[] = {"-f", NULL};
    run_cli(&r, a3, "ping\n");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "paidan-cli: -f needs a METHOD"), "%s", r.err);
    cr_assert_str_eq(r.out, "");
}

Test(cli, help_and_version) {
    run_t r;
    static const char *const a1[] = {"--help", NULL};
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "usage: paidan-cli"));
    static const char *const a2[] = {"--version", NULL};
    run_cli(&r, a2, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strncmp(r.out, "paidan-cli ", 11) == 0);
}

/* A server that sends what is not MessagePack, or hangs up mid-call: exit
 * 2 and say what happened (the line too, reading stdin) -- not "(no
 * error)". */
Test(cli, server_misbehaves) {
    run_t r;
    char port[16];
    int p;
    pid_t pid = fake_server("\xc1\xc1", 2, &p);
    snprintf(port, sizeof port, "%d", p);
    const char *const a1[] = {"-p", port, "ping", NULL};
    run_cli(&r, a1, NULL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "server sent bytes that are not MessagePack"), "%s", r.err);

    pid = fake_server(NULL, 0, &p);
    snprintf(port, sizeof port, "%d", p);
    const char *const a2[] = {"-p", port, NULL};
    run_cli(&r, a2, "ping\n");
    waitpid(pid, NULL, 0);
    cr_assert_eq(r.status, 2);
    cr_assert_str_eq(r.err, "line 1: error: i/o error (connection closed by server)\n");

    /* A reply string that is not UTF-8 still prints as valid JSON. */
    static const char bad_utf8[] =
        "\x94\x01\x01\xc0\xa3\xff"
        "a\xc3";
    pid = fake_server(bad_utf8, sizeof bad_utf8 - 1, &p);
    snprintf(port, sizeof port, "%d", p);
    const char *const a3[] = {"-p", port, "ping", NULL};
    run_cli(&r, a3, NULL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "\"\\ufffda\\ufffd\"\n");
}

/* Params nested deeper than a request may carry are refused by paidan-cli
 * with a clear message, not sent for the server to close the connection. */
Test(cli, deep_params) {
    char json[128];
    int n = snprintf(json, sizeof json, "{\"a\":");
    for (int i = 0; i < 31; i++) json[n++] = '[';
    for (int i = 0; i < 31; i++) json[n++] = ']';
    snprintf(json + n, sizeof json - (size_t)n, "}");
    run_t r;
    const char *const a1[] = {"ping", json, NULL};
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "bad JSON params: nested too deeply"), "%s", r.err);
    /* one level less fits: the server reads it and answers */
    memmove(json + 5, json + 6, strlen(json + 6) + 1);
    memmove(json + 35, json + 36, strlen(json + 36) + 1);
    run_cli(&r, a1, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "error 1 BAD_ARG: unknown argument 'a'"), "%s", r.err);
}

/* The last command's notifications are printed even at the end of input. */
Test(cli, interactive_notifications_at_end) {
    run_t r;
    static const char *const a[] = {"-a", "tok", NULL};
    run_cli(&r, a,
            "subscribe {\"events\": [\"order.offered\"]}\n"
            "volunteer.upsert {\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}\n"
            "order.create {\"id\":5,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}\n");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "notification order.offered {\"order\":5,"), "%s", r.out);
}

/* A NUL byte would cut the line short without a word: it is an error. */
Test(cli, nul_byte_in_line) {
    run_t r;
    static const char *const a[] = {NULL};
    static const char in[] = "ping {}\0 trailing\nping\n";
    run_cli_ex(&r, a, in, sizeof in - 1, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, "line 1: error: NUL byte in the line\n");
    cr_assert_str_eq(r.out, "\"pong\"\n");
}

/* Output that cannot be written is a failure, not exit 0. */
Test(cli, write_error) {
    run_t r;
    static const char *const a1[] = {"ping", NULL};
    run_cli_ex(&r, a1, NULL, 0, "/dev/full");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "paidan-cli: writing the output: No space left on device"), "%s",
              r.err);
    static const char *const a2[] = {NULL};
    run_cli_ex(&r, a2, "ping\nping\n", 10, "/dev/full");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "writing the output"), "%s", r.err);
}

/* ------------------------------------------------------ the C client */

/* Params that are not exactly one MessagePack object would put the stream
 * out of step with the server: refused, nothing queued. */
Test(cli, client_refuses_bad_params) {
    pd_client_t *c = srv_connect(&srv);
    static const char two_maps[] = "\x80\x80";
    cr_assert_eq(pd_client_send(c, "ping", two_maps, 2, NULL), PD_ERR_BAD_ARG);
    cr_assert(strstr(pd_client_last_error(c), "more than one"), "%s", pd_client_last_error(c));
    static const char half[] = "\x81\xa1x";
    cr_assert_eq(pd_client_send(c, "ping", half, 3, NULL), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_client_send(c, NULL, NULL, 0, NULL), PD_ERR_BAD_ARG);

    pd_client_begin(c, "ping", NULL); /* no params packed */
    cr_assert_eq(pd_client_end(c), PD_ERR_BAD_ARG);
    msgpack_packer *pk = pd_client_begin(c, "ping", NULL);
    msgpack_pack_map(pk, 0);
    msgpack_pack_map(pk, 0);
    cr_assert_eq(pd_client_end(c), PD_ERR_BAD_ARG);
    pk = pd_client_begin(c, "ping", NULL); /* 33 levels with the request */
    for (int i = 0; i < 32; i++) msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
    cr_assert_eq(pd_client_end(c), PD_ERR_BAD_ARG);
    cr_assert(strstr(pd_client_last_error(c), "nested"), "%s", pd_client_last_error(c));

    /* what was refused was not sent: the connection is in step */
    pk = pd_client_begin(c, "ping", NULL);
    msgpack_pack_map(pk, 0);
    cr_assert_eq(pd_client_end(c), PD_OK);
    pd_msg_t m;
    cr_assert_eq(pd_client_flush(c), PD_OK);
    cr_assert_eq(pd_client_read_response(c, &m), PD_OK, "%s", pd_client_last_error(c));
    cr_assert_eq(m.code, 0);
    m = call_ok(c, "ping", "");
    cr_assert(obj_str_eq(&m.result, "pong"));
    pd_client_destroy(c);
}

/* After bytes that are not MessagePack every read says so again. */
Test(cli, client_garbage_reply) {
    int port;
    pid_t pid = fake_server("\x91\xc1", 2, &port);
    pd_client_t *c = NULL;
    cr_assert_eq(pd_client_connect("127.0.0.1", (uint16_t)port, 5000, &c), PD_OK);
    pd_msg_t m;
    cr_assert_eq(pd_client_call(c, "ping", NULL, 0, &m), PD_ERR_BAD_REQUEST);
    cr_assert_str_eq(pd_client_last_error(c), "server sent bytes that are not MessagePack");
    cr_assert_eq(pd_client_read(c, &m), PD_ERR_BAD_REQUEST);
    cr_assert_str_eq(pd_client_last_error(c), "server sent bytes that are not MessagePack");
    pd_client_destroy(c);
    waitpid(pid, NULL, 0);
}

/* A flush that timed out goes on where it stopped when retried: the peer
 * gets every byte once. */
Test(cli, client_flush_resumes) {
    int port, go[2], count[2];
    cr_assert(pipe(go) == 0 && pipe(count) == 0);
    int lfd = listen_any(&port);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* read nothing until told, then count every byte until EOF */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(go[1]);
        close(count[0]);
        int fd = accept(lfd, NULL, NULL);
        char ch, buf[65536];
        if (fd < 0 || read(go[0], &ch, 1) != 1) _exit(1);
        unsigned long long n = 0;
        ssize_t k;
        while ((k = read(fd, buf, sizeof buf)) > 0) n += (unsigned long long)k;
        if (write(count[1], &n, sizeof n) != (ssize_t)sizeof n) _exit(1);
        _exit(0);
    }
    close(lfd);
    close(go[0]);
    close(count[1]);
    pd_client_t *c = NULL;
    cr_assert_eq(pd_client_connect("127.0.0.1", (uint16_t)port, 5000, &c), PD_OK);
    /* params far bigger than the socket buffers: one bin of 64 MiB */
    size_t big = (size_t)64 << 20;
    char *params = calloc(1, big + 8);
    cr_assert_not_null(params);
    params[0] = (char)0xc6;
    params[1] = 0x04; /* 0x04000000 = 64 MiB, big-endian */
    cr_assert_eq(pd_client_send(c, "ping", params, big + 5, NULL), PD_OK);
    free(params);
    size_t total = 8 + big + 5; /* 0x94 0x00 0x01 0xa4 "ping", then the bin */
    pd_client_set_timeout(c, 50);
    cr_assert_eq(pd_client_flush(c), PD_ERR_IO);
    cr_assert_str_eq(pd_client_last_error(c), "timed out writing");
    cr_assert_eq(write(go[1], "g", 1), 1);
    pd_client_set_timeout(c, 0);
    cr_assert_eq(pd_client_flush(c), PD_OK, "%s", pd_client_last_error(c));
    pd_client_destroy(c);
    unsigned long long got = 0;
    cr_assert_eq(read(count[0], &got, sizeof got), (ssize_t)sizeof got);
    waitpid(pid, NULL, 0);
    cr_assert_eq(got, (unsigned long long)total, "%llu bytes, not %zu", got, total);
}
