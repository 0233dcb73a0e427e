/* test_fault.c -- paidan-server under load and faults, over real sockets.
 *
 * Each test starts its own server on 127.0.0.1 and misbehaves at it the
 * way real clients and networks do: a thousand connections up to the limit
 * and one over it, clients that never read their replies, clients that
 * vanish in the middle of a frame or with replies still queued, and one
 * client flooding malformed frames while others do real work. After each,
 * the server must still answer, hold no more connections than it should,
 * and keep its memory bounded. Counts and times are bounded so the file
 * runs in seconds; every address is loopback.
 *
 * Raw sockets are used where the client library would be too polite (it
 * always reads, always sends whole frames).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helper.h"

static srv_t srv;

static void stop(void) {
    srv_stop(&srv);
}

/* ----------------------------------------------------------- raw sockets */

/* Connect a blocking socket to the server; rcvbuf > 0 shrinks its receive
 * buffer first (so replies back up into the server quickly). */
static int raw_connect(int port, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Send everything, or stop quietly if the server closed the connection. */
static bool raw_send(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Close with a reset rather than a FIN: the peer sees ECONNRESET. */
static void raw_reset(int fd) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* Read until EOF or reset within timeout_ms; true if the server closed. */
static bool raw_wait_closed(int fd, int timeout_ms, size_t *got) {
    char buf[65536];
    long long deadline = now_ms() + timeout_ms;
    size_t total = 0;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (got) *got = total;
        return true;
    }
    if (got) *got = total;
    return false;
}

/* A request [0, msgid, method, params-from-JSON] appended to sb. */
static void pack_req(msgpack_sbuffer *sb, uint32_t msgid, const char *method, const char *json) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_str(&pk, strlen(method));
    msgpack_pack_str_body(&pk, method, strlen(method));
    size_t len;
    const char *p = params_json(json, &len);
    msgpack_sbuffer_write(sb, p, len);
}

/* Read one whole reply frame from a raw socket and check it is a response
 * to msgid with no error. */
static void raw_expect_ok(int fd, uint32_t msgid) {
    char buf[4096];
    size_t len = 0;
    long long deadline = now_ms() + 10000;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    for (;;) {
        size_t off = 0;
        if (len > 0 && msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS) break;
        cr_assert_lt(now_ms(), deadline, "no reply on a raw connection");
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
        cr_assert(n > 0, "server closed a connection it should serve");
        len += (size_t)n;
    }
    const msgpack_object *o = &u.data;
    cr_assert_eq(o->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o->via.array.size, 4);
    cr_assert_eq(o->via.array.ptr[0].via.u64, 1);
    cr_assert_eq(o->via.array.ptr[1].via.u64, msgid);
    cr_assert_eq(o->via.array.ptr[2].type, MSGPACK_OBJECT_NIL, "error reply");
    msgpack_unpacked_destroy(&u);
}

static void raise_fd_limit(rlim_t want) {
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    cr_assert_geq(rl.rlim_cur, want, "cannot raise the open-file limit to %llu",
                  (unsigned long long)want);
}

static void still_answers(pd_client_t *c) {
    pd_msg_t m = call_ok(c, "ping", "");
    cr_assert(obj_str_eq(&m.result, "pong"));
}

static long long rss_of(pd_client_t *c) {
    pd_msg_t m = call_ok(c, "stats", "");
    return map_int(pd_client_map_get(&m.result, "memory"), "rss_bytes");
}

static long long stat_on(pd_client_t *c, const char *section, const char *key) {
    pd_msg_t m = call_ok(c, "stats", "");
    return map_int(pd_client_map_get(&m.result, section), key);
}

/* Wait until stats.<section>.<key> reaches want (asked on c). */
static void wait_stat(pd_client_t *c, const char *section, const char *key, long long want,
                      int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    long long v;
    while ((v = stat_on(c, section, key)) < want) {
        cr_assert_lt(now_ms(), deadline, "stats.%s.%s stayed at %lld, wanted %lld", section, key, v,
                     want);
        usleep(10000);
    }
}

/* Wait until exactly `want` connections are open (asked on c, which counts). */
static void wait_conns(pd_client_t *c, long long want, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    long long v;
    while ((v = stat_on(c, "connections", "current")) != want) {
        cr_assert_lt(now_ms(), deadline, "%lld connections open, wanted %lld", v, want);
        usleep(10000);
    }
}

/* ------------------------------------------------- connections at the limit */

#define MAX_CONNS 1000

static void start_many(void) {
    raise_fd_limit(MAX_CONNS + 256);
    static const char *const args[] = {"--max-conns", "1000", NULL};
    srv_start(&srv, args);
}

Test(conns, thousand_up_to_the_limit_and_one_over, .init = start_many, .fini = stop,
     .timeout = 120) {
    pd_client_t *ctl = srv_connect(&srv); /* connection 1 of MAX_CONNS */
    static int fds[MAX_CONNS];
    int n = MAX_CONNS - 1;
    for (int i = 0; i < n; i++) fds[i] = raw_connect(srv.port, 0);
    wait_conns(ctl, MAX_CONNS, 20000);

    /* One over: accepted by the kernel, refused by the server with a
     * server.error notification (code LIMIT) and closed. */
    pd_client_t *extra = srv_connect(&srv);
    int code = 0;
    cr_assert(wait_closed(extra, 5000, &code), "connection %d was not refused", MAX_CONNS + 1);
    cr_assert_eq(code, PD_ERR_LIMIT);
    pd_client_destroy(extra);

    /* Every admitted connection is served: a ping on each, then every reply. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < n; i++) {
        sb.size = 0;
        pack_req(&sb, (uint32_t)i + 1, "ping", "");
        cr_assert(raw_send(fds[i], sb.data, sb.size));
    }
    for (int i = 0; i < n; i++) raw_expect_ok(fds[i], (uint32_t)i + 1);
    msgpack_sbuffer_destroy(&sb);
    cr_assert_eq(stat_on(ctl, "connections", "rejected"), 1);
    cr_assert_eq(stat_on(ctl, "connections", "current"), MAX_CONNS);

    /* Half of them go away (half politely, half with a reset); the server
     * forgets them, and new connections fit again. */
    for (int i = 0; i < n / 2; i++) {
        if (i % 2)
            close(fds[i]);
        else
            raw_reset(fds[i]);
    }
    wait_conns(ctl, MAX_CONNS - n / 2, 10000);
    pd_client_t *again = srv_connect(&srv);
    still_answers(again);
    pd_client_destroy(again);
    for (int i = n / 2; i < n; i++) close(fds[i]);
    wait_conns(ctl, 1, 10000);
    pd_client_destroy(ctl);
}

/* ------------------------------------------------------------ slow readers */

static void start_small_output(void) {
    static const char *const args[] = {"--max-output", "256k", NULL};
    srv_start(&srv, args);
}

#define SLOW_READERS 16

Test(slow, readers_that_never_read_are_cut_off_and_memory_stays_bounded, .init = start_small_output,
     .fini = stop, .timeout = 120) {
    pd_client_t *ctl = srv_connect(&srv);
    /* Enough volunteers that one mobilisation answers ~25 KB. */
    char json[192];
    for (int i = 1; i <= 500; i++) {
        snprintf(json, sizeof(json),
                 "{\"id\":%d,\"lat\":%.5f,\"lon\":114.3,\"skills\":[\"tutoring\"]}", i,
                 30.6 + i * 1e-5);
        call_ok(ctl, "volunteer.upsert", json);
    }
    long long rss0 = rss_of(ctl);

    /* Each slow reader asks for ~20 MB of replies and reads none: far more
     * than --max-output (256 KiB) plus what the kernel buffers. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint32_t i = 0; i < 800; i++)
        pack_req(&sb, i, "match.mobilize",
                 "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":10000,\"limit\":500}");
    int fds[SLOW_READERS];
    for (int r = 0; r < SLOW_READERS; r++) {
        fds[r] = raw_connect(srv.port, 4096);
        raw_send(fds[r], sb.data, sb.size); /* may stop early: cut off */
    }
    msgpack_sbuffer_destroy(&sb);
    wait_stat(ctl, "counters", "output_cutoffs", SLOW_READERS, 30000);
    for (int r = 0; r < SLOW_READERS; r++) {
        cr_assert(raw_wait_closed(fds[r], 10000, NULL), "slow reader %d not closed", r);
        close(fds[r]);
    }
    wait_conns(ctl, 1, 10000);

    /* Without the limit each would have held ~20 MB in the server. Allow
     * the limit per reader plus generous allocator slack. */
    long long grown = rss_of(ctl) - rss0;
    cr_assert_lt(grown, 64LL << 20, "RSS grew by %lld bytes for %d slow readers", grown,
                 SLOW_READERS);
    still_answers(ctl);
    pd_client_destroy(ctl);
}

/* --------------------------------------------------------- vanishing clients */

static void start_default(void) {
    srv_start(&srv, NULL);
}

Test(vanish, mid_frame_and_with_replies_queued, .init = start_default, .fini = stop,
     .timeout = 120) {
    pd_client_t *ctl = srv_connect(&srv);
    long long rss0 = rss_of(ctl);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char json[700];
    snprintf(json, sizeof(json), "{\"token\":\"%s\"}", big);
    pack_req(&sb, 1, "auth", json);
    size_t frame = sb.size;

    for (int round = 0; round < 200; round++) {
        int fd = raw_connect(srv.port, 0);
        switch (round % 4) {
            case 0: /* half a frame, then gone */
                raw_send(fd, sb.data, frame / 2);
                close(fd);
                break;
            case 1: /* a frame cut inside its header, then a reset */
                raw_send(fd, sb.data, 3);
                raw_reset(fd);
                break;
            case 2: { /* a 512 KiB string announced, 100 KiB sent */
                static char part[100 * 1024];
                unsigned char hdr[] = {0x94, 0x00, 0x01, 0xa4, 'p',  'i', 'n',
                                       'g',  0xdb, 0x00, 0x08, 0x00, 0x00};
                raw_send(fd, hdr, sizeof(hdr));
                raw_send(fd, part, sizeof(part));
                raw_reset(fd);
                break;
            }
            default: { /* whole requests, replies queued, never read */
                msgpack_sbuffer many;
                msgpack_sbuffer_init(&many);
                for (uint32_t i = 0; i < 200; i++) pack_req(&many, i, "stats", "");
                raw_send(fd, many.data, many.size);
                msgpack_sbuffer_destroy(&many);
                raw_reset(fd);
                break;
            }
        }
    }
    msgpack_sbuffer_destroy(&sb);
    wait_conns(ctl, 1, 20000);
    still_answers(ctl);
    cr_assert_eq(stat_on(ctl, "connections", "accepted"), 201);
    /* Partial frames were buffered (up to ~100 KiB each) and freed again. */
    long long grown = rss_of(ctl) - rss0;
    cr_assert_lt(grown, 32LL << 20, "RSS grew by %lld bytes after 200 vanished clients", grown);
    pd_client_destroy(ctl);
}

/* ------------------------------------------------------- bad-frame flood */

/* The flooder: malformed but decodable frames as fast as the socket takes
 * them, reading (and dropping) the error replies so it is not cut off. It
 * leaves with a reset, as a killed client would. */
typedef struct flood_s {
    int port;
    volatile int stop;
    long long frames;
    long long reconnects;
} flood_t;

static void *flood_main(void *arg) {
    flood_t *f = arg;
    unsigned char burst[4096];
    size_t len = 0;
    /* [0, 1, 42, nil]: a request whose method is not a string. */
    static const unsigned char bad1[] = {0x94, 0x00, 0x01, 0x2a, 0xc0};
    /* [7]: not a message type. */
    static const unsigned char bad2[] = {0x91, 0x07};
    /* {"a": 1}: not an array. */
    static const unsigned char bad3[] = {0x81, 0xa1, 'a', 0x01};
    while (len + 16 < sizeof(burst)) {
        memcpy(burst + len, bad1, sizeof(bad1));
        len += sizeof(bad1);
        memcpy(burst + len, bad2, sizeof(bad2));
        len += sizeof(bad2);
        memcpy(burst + len, bad3, sizeof(bad3));
        len += sizeof(bad3);
    }
    int fd = -1;
    char sink[65536];
    while (!f->stop) {
        if (fd < 0) {
            fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
                close(fd);
                fd = -1;
                usleep(1000);
                continue;
            }
            fcntl(fd, F_SETFL, O_NONBLOCK);
            f->reconnects++;
        }
        bool broken = false;
        ssize_t n = send(fd, burst, len, MSG_NOSIGNAL);
        if (n > 0) f->frames += (long long)(n / 11) * 3;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) broken = true;
        for (;;) {
            ssize_t r = recv(fd, sink, sizeof(sink), 0);
            if (r > 0) continue;
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) broken = true;
            break;
        }
        if (n < 0 && !broken) {
            struct pollfd p = {.fd = fd, .events = POLLOUT | POLLIN};
            poll(&p, 1, 10);
        }
        if (broken) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) raw_reset(fd);
    return NULL;
}

static void start_rps(void) {
    static const char *const args[] = {"--max-rps", "20000", NULL};
    srv_start(&srv, args);
}

Test(flood, bad_frames_from_one_client_others_still_served, .init = start_rps, .fini = stop,
     .timeout = 120) {
    pd_client_t *c = srv_connect(&srv);
    char json[192];
    for (int i = 1; i <= 2000; i++) {
        snprintf(json, sizeof(json),
                 "{\"id\":%d,\"lat\":%.5f,\"lon\":%.5f,\"skills\":[\"tutoring\"]}", i,
                 30.6 + (i % 50) * 1e-3, 114.3 + (i / 50) * 1e-3);
        call_ok(c, "volunteer.upsert", json);
    }
    flood_t f = {.port = srv.port};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flood_main, &f), 0);
    /* While the flood runs, every query is answered, and answered right. */
    long long end = now_ms() + 3000;
    int done = 0;
    while (now_ms() < end) {
        pd_msg_t m = call_ok(c, "match.nearby",
                             "{\"lat\":30.62,\"lon\":114.32,\"k\":10,\"skills\":[\"tutoring\"]}");
        cr_assert_eq(m.result.type, MSGPACK_OBJECT_ARRAY);
        cr_assert_eq(m.result.via.array.size, 10);
        done++;
    }
    f.stop = 1;
    pthread_join(th, NULL);
    cr_assert_gt(done, 100, "only %d queries answered in 3 s under the flood", done);
    cr_assert_gt(f.frames, 10000, "the flood did not flood (%lld frames)", f.frames);
    /* The flooder met the rate limit (it was paused); its reset is noticed
     * at the latest when it is resumed. */
    cr_assert_gt(stat_on(c, "counters", "rate_limited"), 0);
    cr_assert_gt(stat_on(c, "counters", "bad_requests"), 1000);
    wait_conns(c, 1, 10000);
    still_answers(c);
    pd_client_destroy(c);
}
