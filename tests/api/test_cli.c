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

/* Run paidan-cli with args (NULL-terminated) and stdin text; collect output. */
static void run_cli(run_t *r, const char *const *args, const char *input) {
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
        close(in[1]);
        close(out[0]);
        close(err[0]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (input) cr_assert_eq(write(in[1], input, strlen(input)), (ssize_t)strlen(input));
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
