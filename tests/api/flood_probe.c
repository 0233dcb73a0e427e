/* flood_probe.c -- how much a flood of malformed frames slows everyone else.
 *
 *   flood_probe --port N [--secs S] [--rate R] [--flooders F]
 *
 * Measures one well-behaved client's match.nearby latency against a running
 * paidan-server on 127.0.0.1, first alone, then while F other connections
 * (default 1) send malformed but decodable frames as fast as the server
 * takes them (reading and dropping the error replies, so output limits do
 * not simply cut them off). The probe sends R queries per second (default
 * 2000), each timed from its scheduled send time, so a stalled server is
 * charged for the queries it delayed (no coordinated omission). Prints
 * p50 / p99 / p99.9 in microseconds for both phases and the p99 ratio.
 *
 * Not a test: timing is measured, never asserted (docs/security.md has the
 * figures and the command). Loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "paidan/client.h"

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct flood_s {
    int port;
    volatile int stop;
    long long bytes;
} flood_t;

static void *flood_main(void *arg) {
    flood_t *f = arg;
    /* [0, 1, 42, nil] (method not a string), [7] (no such type), {"a": 1}
     * (not an array): each gets an error reply and costs a decode. */
    static const unsigned char pat[] = {0x94, 0x00, 0x01, 0x2a, 0xc0, 0x91,
                                        0x07, 0x81, 0xa1, 'a',  0x01};
    unsigned char burst[16384];
    size_t len = 0;
    while (len + sizeof(pat) <= sizeof(burst)) {
        memcpy(burst + len, pat, sizeof(pat));
        len += sizeof(pat);
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
        }
        bool broken = false;
        ssize_t n = send(fd, burst, len, MSG_NOSIGNAL);
        if (n > 0) f->bytes += n;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) broken = true;
        for (;;) {
            ssize_t r = recv(fd, sink, sizeof(sink), 0);
            if (r > 0) continue;
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) broken = true;
            break;
        }
        if (n < 0 && !broken) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 5);
        }
        if (broken) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
    }
    return NULL;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static double pct(long long *v, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* Run the probe for secs at rate/s; fills lat (ns) and returns the count. */
static size_t probe(pd_client_t *c, double secs, int rate, long long *lat, size_t cap) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "lat", 3);
    msgpack_pack_double(&pk, 30.60);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "lon", 3);
    msgpack_pack_double(&pk, 114.30);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "k", 1);
    msgpack_pack_int(&pk, 10);
    long long period = 1000000000LL / rate;
    long long start = now_ns();
    long long end = start + (long long)(secs * 1e9);
    size_t n = 0;
    for (long long due = start; due < end && n < cap; due += period) {
        long long t;
        while ((t = now_ns()) < due) {
            long long left = due - t;
            if (left > 200000) usleep((useconds_t)(left / 1000 - 100));
        }
        pd_msg_t m;
        if (pd_client_call(c, "match.nearby", sb.data, sb.size, &m) != PD_OK || m.code != 0) {
            fprintf(stderr, "flood_probe: query failed: %s\n", pd_client_last_error(c));
            exit(1);
        }
        lat[n++] = now_ns() - due;
    }
    msgpack_sbuffer_destroy(&sb);
    qsort(lat, n, sizeof(*lat), cmp_ll);
    return n;
}

int main(int argc, char **argv) {
    int port = 0, rate = 2000, flooders = 1;
    double secs = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--secs") == 0)
            secs = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--flooders") == 0)
            flooders = atoi(argv[i + 1]);
    }
    if (port <= 0 || rate <= 0 || secs <= 0 || flooders < 1 || flooders > 64) {
        fprintf(stderr, "usage: flood_probe --port N [--secs S] [--rate R] [--flooders F]\n");
        return 2;
    }
    pd_client_t *c = NULL;
    if (pd_client_connect("127.0.0.1", (uint16_t)port, 5000, &c) != PD_OK) {
        fprintf(stderr, "flood_probe: cannot connect to 127.0.0.1:%d\n", port);
        return 1;
    }
    size_t cap = (size_t)(secs * rate) + 16;
    long long *lat = malloc(cap * sizeof(*lat));
    if (!lat) return 1;

    probe(c, 1.0, rate, lat, cap); /* warm-up */
    size_t n0 = probe(c, secs, rate, lat, cap);
    double a50 = pct(lat, n0, 50), a99 = pct(lat, n0, 99), a999 = pct(lat, n0, 99.9);

    flood_t f[64];
    pthread_t th[64];
    for (int i = 0; i < flooders; i++) {
        f[i] = (flood_t){.port = port};
        pthread_create(&th[i], NULL, flood_main, &f[i]);
    }
    usleep(500000);
    size_t n1 = probe(c, secs, rate, lat, cap);
    long long bytes = 0;
    for (int i = 0; i < flooders; i++) {
        f[i].stop = 1;
        pthread_join(th[i], NULL);
        bytes += f[i].bytes;
    }
    double b50 = pct(lat, n1, 50), b99 = pct(lat, n1, 99), b999 = pct(lat, n1, 99.9);
    double frames = (double)bytes / 11.0 * 3.0;
    printf("match.nearby latency, us   p50      p99      p99.9    queries\n");
    printf("unloaded               %8.1f %8.1f %8.1f %8zu\n", a50, a99, a999, n0);
    printf("under flood            %8.1f %8.1f %8.1f %8zu\n", b50, b99, b999, n1);
    printf("flood: %d connection(s), %.0f malformed frames sent (%.0f/s)\n", flooders, frames,
           frames / (secs + 0.5));
    printf("p99 ratio (flood / unloaded): %.2f\n", a99 > 0 ? b99 / a99 : 0.0);
    free(lat);
    pd_client_destroy(c);
    return 0;
}
