/* test_load.c -- the load generator's clock, against a fake server in
 * this process that answers every request after a fixed delay, one at a
 * time (so it serves at most 1/delay requests per second).
 *
 * The point of an open loop is that latency is measured from when each
 * request was due, not from when the generator got round to sending it:
 * offered more than the server's capacity, latency must grow with the
 * queue (here to hundreds of ms), while a closed loop against the same
 * server politely waits and sees only the pipeline's worth of delay.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

typedef struct fake_s {
    int lfd;
    uint16_t port;
    long delay_us;     /* per request, served one at a time */
    bool auth_refused; /* answer `auth` with an error */
    pthread_t th;
    _Atomic bool stop;
    _Atomic uint64_t served;
} fake_t;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void reply(int fd, uint64_t msgid, bool error) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint64(&pk, msgid);
    if (error) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint8(&pk, PD_ERR_UNAUTHORIZED);
        msgpack_pack_str(&pk, 7);
        msgpack_pack_str_body(&pk, "refused", 7);
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_nil(&pk);
        msgpack_pack_str(&pk, 4);
        msgpack_pack_str_body(&pk, "pong", 4);
    }
    size_t off = 0;
    while (off < sb.size) {
        /* The generator may hang up with replies still due (a run far
         * over capacity): no SIGPIPE for the test process. */
        ssize_t n = send(fd, sb.data + off, sb.size - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += (size_t)n;
    }
    msgpack_sbuffer_destroy(&sb);
}

/* Serve connections one after another (the generator here uses one). */
static void *fake_main(void *arg) {
    fake_t *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd lp = {f->lfd, POLLIN, 0};
        if (poll(&lp, 1, 50) <= 0) continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) continue;
        msgpack_unpacker up;
        msgpack_unpacker_init(&up, 65536);
        msgpack_unpacked m;
        msgpack_unpacked_init(&m);
        for (;;) {
            msgpack_unpacker_reserve_buffer(&up, 65536);
            ssize_t n =
                read(fd, msgpack_unpacker_buffer(&up), msgpack_unpacker_buffer_capacity(&up));
            if (n <= 0) break;
            msgpack_unpacker_buffer_consumed(&up, (size_t)n);
            while (msgpack_unpacker_next(&up, &m) == MSGPACK_UNPACK_SUCCESS) {
                const msgpack_object *o = &m.data;
                if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4) continue;
                const msgpack_object *meth = &o->via.array.ptr[2];
                bool is_auth = meth->type == MSGPACK_OBJECT_STR && meth->via.str.size == 4 &&
                               memcmp(meth->via.str.ptr, "auth", 4) == 0;
                if (!is_auth) sleep_us(f->delay_us);
                reply(fd, o->via.array.ptr[1].via.u64, is_auth && f->auth_refused);
                atomic_fetch_add(&f->served, 1);
            }
        }
        msgpack_unpacked_destroy(&m);
        msgpack_unpacker_destroy(&up);
        close(fd);
    }
    return NULL;
}

static void fake_start(fake_t *f, long delay_us) {
    memset(f, 0, sizeof *f);
    f->delay_us = delay_us;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(f->lfd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(f->lfd, 16), 0);
    socklen_t len = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &len);
    f->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f) {
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static void opts(pd__load_opts_t *o, const fake_t *f) {
    pd__load_opts_init(o);
    o->port = f->port;
    o->connections = 1;
    o->warmup_s = 0;
    o->drain_s = 3;
}

static pd__load_out_t *run(const pd__load_opts_t *o) {
    pd__load_out_t *out = malloc(sizeof *out);
    cr_assert_not_null(out);
    char why[256] = "";
    pd_err err = pd__load_run(o, NULL, out, why, sizeof why);
    cr_assert_eq(err, PD_OK, "load run failed: %s (%s)", pd_strerror(err), why);
    return out;
}

static void done(pd__load_out_t *out) {
    pd__load_out_deinit(out);
    free(out);
}

static double ms(uint64_t ns) {
    return (double)ns / 1e6;
}

/* 1 ms per request = 1000/s of capacity. At 200/s offered, requests find
 * the server idle: latency is about the service time. */
Test(load, open_loop_under_capacity_sees_the_service_time) {
    fake_t f;
    fake_start(&f, 1000);
    pd__load_opts_t o;
    opts(&o, &f);
    o.rate = 200;
    o.duration_s = 0.5;
    o.pipeline = 1024;
    pd__load_out_t *out = run(&o);
    const pd_hist_t *h = &out->hist[PD__M_PING];
    cr_assert(h->count >= 95 && h->count <= 101, "count %llu", (unsigned long long)h->count);
    cr_assert_eq(out->errors[PD__M_ALL], 0);
    cr_assert_geq(pd_hist_percentile(h, 50), 1000000ULL, "faster than the server's delay?");
    cr_assert_lt(ms(pd_hist_percentile(h, 50)), 30.0, "p50 %.1f ms", ms(pd_hist_percentile(h, 50)));
    done(out);
    fake_stop(&f);
}

/* At 2000/s offered to a 1000/s server for 0.5 s, request i is due at
 * i x 0.5 ms but served at about (i + 1) x 1 ms: its latency from the
 * intended send time grows linearly to ~500 ms. */
Test(load, open_loop_over_capacity_counts_the_queue) {
    fake_t f;
    fake_start(&f, 1000);
    pd__load_opts_t o;
    opts(&o, &f);
    o.rate = 2000;
    o.duration_s = 0.5;
    o.pipeline = 4096;
    pd__load_out_t *out = run(&o);
    const pd_hist_t *h = &out->hist[PD__M_PING];
    cr_assert(h->count >= 990 && h->count <= 1001, "count %llu", (unsigned long long)h->count);
    cr_assert_eq(out->errors[PD__M_ALL], 0, "errors %llu (LOST %llu)",
                 (unsigned long long)out->errors[PD__M_ALL],
                 (unsigned long long)out->by_code[PD__LOAD_LOST]);
    double p50 = ms(pd_hist_percentile(h, 50)), p99 = ms(pd_hist_percentile(h, 99));
    cr_assert_gt(p50, 120.0, "p50 %.1f ms: the queue is not counted", p50);
    cr_assert_gt(p99, 350.0, "p99 %.1f ms: the queue is not counted", p99);
    cr_assert_gt(p99, 1.5 * p50, "latency does not grow: p50 %.1f p99 %.1f", p50, p99);
    done(out);
    fake_stop(&f);
}

/* A rate a thousand times beyond the server's: the schedule is a backlog
 * from the start, so every request the generator sends was due in the
 * warm-up and none of the measured phase's ever leaves. Those are LOST,
 * counted from the schedule at the end of the drain -- at once, where
 * counting 5 x 10^8 of them one by one once kept a run going for minutes
 * -- and "answered" (commands_done) still counts what the server did
 * answer during the measured phase, whenever it was due. */
Test(load, a_rate_far_beyond_capacity_ends_on_time) {
    fake_t f;
    fake_start(&f, 0);
    pd__load_opts_t o;
    opts(&o, &f);
    o.rate = 1e9;
    o.duration_s = 0.5;
    o.warmup_s = 0.1;
    o.drain_s = 0.2;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pd__load_out_t *out = run(&o);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert_lt(took, 3.0, "0.1 + 0.5 + 0.2 s of run took %.1f s", took);
    uint64_t lost = out->by_code[PD__LOAD_LOST];
    cr_assert(lost >= 499000000ULL && lost <= 500000000ULL, "LOST %llu of 5e8 due",
              (unsigned long long)lost);
    cr_assert_eq(out->errors[PD__M_ALL], lost + out->errors[PD__M_PING]);
    cr_assert_gt(out->commands_done, 0, "replies in the measured phase not counted");
    cr_assert_gt(out->replies, out->commands_done);
    done(out);
    fake_stop(&f);
}

/* The same server in a closed loop with 4 in flight: each request waits
 * for at most the 3 before it, so latency stays near 4 ms whatever the
 * run's length -- which is why a closed loop cannot show overload. */
Test(load, closed_loop_waits_politely) {
    fake_t f;
    fake_start(&f, 1000);
    pd__load_opts_t o;
    opts(&o, &f);
    o.pipeline = 4;
    o.duration_s = 0.5;
    pd__load_out_t *out = run(&o);
    const pd_hist_t *h = &out->hist[PD__M_PING];
    cr_assert_gt(h->count, 100);
    cr_assert_lt(ms(pd_hist_percentile(h, 50)), 40.0, "p50 %.1f ms", ms(pd_hist_percentile(h, 50)));
    cr_assert_geq(pd_hist_percentile(h, 50), 3000000ULL, "p50 below 3 x the service time");
    done(out);
    fake_stop(&f);
}

/* -N: exactly that many measured requests, every one answered. */
Test(load, request_count_mode) {
    fake_t f;
    fake_start(&f, 0);
    pd__load_opts_t o;
    opts(&o, &f);
    o.requests = 500;
    o.pipeline = 8;
    pd__load_out_t *out = run(&o);
    cr_assert_eq(out->hist[PD__M_PING].count, 500);
    cr_assert_eq(out->hist[PD__M_ALL].count, 500);
    cr_assert_eq(out->errors[PD__M_ALL], 0);
    cr_assert_gt(out->measured_s, 0);
    cr_assert_geq(out->n_secs, 1);
    done(out);
    fake_stop(&f);
}

Test(load, refused_auth_and_no_server_are_errors) {
    fake_t f;
    fake_start(&f, 0);
    f.auth_refused = true;
    pd__load_opts_t o;
    opts(&o, &f);
    o.token = "wrong";
    o.duration_s = 0.2;
    pd__load_out_t out;
    char why[256] = "";
    cr_assert_eq(pd__load_run(&o, NULL, &out, why, sizeof why), PD_ERR_IO);
    cr_assert(strstr(why, "auth") != NULL, "reason: %s", why);
    pd__load_out_deinit(&out);
    fake_stop(&f);
    /* Nobody listens any more on that port. */
    why[0] = '\0';
    o.token = NULL;
    cr_assert_eq(pd__load_run(&o, NULL, &out, why, sizeof why), PD_ERR_IO);
    cr_assert(strstr(why, "cannot connect") != NULL, "reason: %s", why);
    pd__load_out_deinit(&out);
}

Test(load, bad_options_are_refused) {
    pd__load_opts_t o;
    pd__load_opts_init(&o);
    pd__load_out_t out;
    char why[128];
    o.connections = 0;
    cr_assert_eq(pd__load_run(&o, NULL, &out, why, sizeof why), PD_ERR_BAD_ARG);
    pd__load_opts_init(&o);
    o.duration_s = 0;
    cr_assert_eq(pd__load_run(&o, NULL, &out, why, sizeof why), PD_ERR_BAD_ARG);
    pd__load_opts_init(&o);
    pd__mix_parse("nearby:1", &o.mix, NULL, 0);
    cr_assert_eq(pd__load_run(&o, NULL, &out, why, sizeof why), PD_ERR_BAD_ARG,
                 "a nearby mix without a county must be refused");
}
