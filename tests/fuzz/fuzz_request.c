/* fuzz_request.c -- bytes off the wire into paidan-server, down to the engine.
 *
 * The server runs in this process, on its own libuv loop, listening on
 * 127.0.0.1 with a port the OS picks. Each input is sent over a fresh TCP
 * connection, exactly as a client would send it, and the loop runs until
 * the server has read every byte (or closed the connection); replies are
 * read and thrown away. So the whole request path is under test: reading
 * into the shared buffer, frames split across reads, the frame scanner,
 * decoding, request validation, method dispatch, argument checks in every
 * handler, the engine calls they make, replies, notifications to
 * subscribers and the output limit.
 *
 * Each input starts from an empty engine (a new one whenever the last
 * input changed its state), so a crash reproduces from its input alone. The input's first byte
 * picks how the rest is cut into writes: 0 sends it at once, n sends pieces of n bytes, each read
 * by the server before the next is sent (partial frames, frames split mid-header).
 *
 * After each input the engine's invariants are checked
 * (pd_engine_validate). The server is stopped and freed at exit, so LeakSanitizer also checks
 * what the handlers leave behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "import.h"
#include "paidan/alloc.h"
#include "server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static pd_server_t *srv;
static pd_engine_config_t engine_cfg;

/* The engine is replaced for every input; events are queued the way the
 * server's own callback does it (server.c), so subscribers still get them. */
static void on_event(void *ud, const pd_event_t *ev) {
    pd_server_t *s = ud;
    s->n.events++;
    if (!s->subscribers) return;
    if (s->n_events == s->cap_events) {
        size_t cap = s->cap_events ? s->cap_events * 2 : 64;
        pd_event_t *p = pd_realloc(s->events, cap * sizeof(*p));
        if (!p) return;
        s->events = p;
        s->cap_events = cap;
    }
    s->events[s->n_events++] = *ev;
}

/* Digest of an empty engine: an input that changed nothing (most malformed
 * ones) leaves the engine as it found it, and building a new one (its index
 * tables) costs far more than the input did. */
static uint64_t empty_digest;

static void reset_engine(void) {
    /* An `import` the last input started (it runs in slices) ends with it,
     * so each input starts from the same state. */
    pd_import_stop(srv);
    if (srv->engine && pd_engine_digest(srv->engine) == empty_digest) {
        srv->n_events = 0;
        return;
    }
    pd_engine_destroy(srv->engine);
    srv->engine = NULL;
    if (pd_engine_create(&engine_cfg, &srv->engine) != PD_OK) abort();
    pd_engine_set_event_cb(srv->engine, on_event, srv);
    srv->n_events = 0;
}

static void shutdown_server(void) {
    if (!srv) return;
    pd_server_stop(srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    pd_server_deinit(srv);
    uv_loop_close(&loop);
    pd_free(srv);
    srv = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    pd_log_set_level(PD_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN); /* as paidan-server's main() does */
    if (uv_loop_init(&loop) != 0) abort();
    pd_server_config_t cfg;
    pd_server_config_init(&cfg);
    cfg.port = 0;
    cfg.tick_ms = 60000; /* ticks would make runs depend on the clock */
    cfg.stall_ms = 0;
    cfg.max_frame = 64 * 1024;
    cfg.max_output = 256 * 1024;
    cfg.max_rps = 50000; /* long pipelines also exercise pausing and resuming */
    pd_engine_config_init(&engine_cfg);
    srv = pd_calloc(1, sizeof(*srv));
    if (!srv) abort();
    /* The "listening on" line goes to stdout; keep the fuzzer's output clean. */
    FILE *keep = stdout;
    stdout = fopen("/dev/null", "w");
    pd_err err = pd_server_start(srv, &loop, &cfg);
    fclose(stdout);
    stdout = keep;
    if (err) abort();
    empty_digest = pd_engine_digest(srv->engine);
    atexit(shutdown_server);
    return 0;
}

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read and discard whatever the server sent; false once it closed. */
static bool drain(int fd) {
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) continue;
        if (n == 0) return false;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
}

/* Run the loop until `until` holds; the server must get there promptly. */
#define RUN_UNTIL(cond, fd)                                                             \
    do {                                                                                \
        long long deadline_ = mono_ms() + 10000;                                        \
        while (!(cond)) {                                                               \
            uv_run(&loop, UV_RUN_NOWAIT);                                               \
            if ((fd) >= 0) drain(fd);                                                   \
            if (mono_ms() > deadline_) {                                                \
                fprintf(stderr, "fuzz_request: server stuck waiting for: %s\n", #cond); \
                abort();                                                                \
            }                                                                           \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t piece = data[0] ? data[0] : size;
    data++;
    size--;
    reset_engine();

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)srv->bound_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        /* libFuzzer's timeout alarm may interrupt it; it goes on regardless. */
        int err = errno;
        if (err == EINTR) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            while (poll(&p, 1, 5000) < 0 && errno == EINTR) {
            }
            socklen_t sl = sizeof(err);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        }
        if (err) {
            fprintf(stderr, "fuzz_request: connect: %s\n", strerror(err));
            abort();
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint64_t accepted = srv->n.conns_accepted;
    RUN_UNTIL(srv->n.conns_accepted > accepted, fd);

    size_t sent = 0;
    while (sent < size && srv->n_conns > 0) {
        size_t n = size - sent < piece ? size - sent : piece;
        uint64_t before = srv->n.bytes_in;
        ssize_t w = send(fd, data + sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            uv_run(&loop, UV_RUN_NOWAIT);
            drain(fd);
            continue;
        }
        if (w <= 0) break; /* the server closed the connection */
        sent += (size_t)w;
        RUN_UNTIL(srv->n.bytes_in >= before + (uint64_t)w || srv->n_conns == 0, fd);
    }
    /* Leave with a reset: a normal close would put this side in TIME_WAIT,
     * and a few hundred thousand inputs would use up the ephemeral ports. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    RUN_UNTIL(srv->n_conns == 0, -1);
    /* Whatever the input did, the engine's invariants hold. */
    const char *why = NULL;
    if (!pd_engine_validate(srv->engine, &why)) {
        fprintf(stderr, "fuzz_request: engine invalid after input: %s\n", why ? why : "?");
        abort();
    }
    return 0;
}
