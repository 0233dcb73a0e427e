/* test_soak.c -- a bounded soak: mixed load on one server, memory flat.
 *
 * Four clients work one paidan-server at once for PD_SOAK_SECS seconds
 * (default 30; set it higher for a long soak outside the suite):
 *   - movers upsert 2000 volunteers, then move them and flip their status;
 *   - readers run match.nearby, match.mobilize, volunteer.get and order.get;
 *   - an order desk creates orders and takes each through its life --
 *     accepted, completed and rated, or cancelled -- at a steady pace;
 *   - a churner connects, subscribes, reads notifications, sends a bad
 *     frame or half a frame, and leaves, over and over.
 * Every reply must be what the protocol says, and every connection ends
 * where it should. The server's resident memory is sampled every second:
 * after the first third (allocator warm-up), what it grows by must be
 * what the engine accounts for (orders are kept, so the engine grows a
 * little); anything beyond a few MiB would be a leak or unbounded
 * buffering. Under AddressSanitizer the allocator's quarantine makes RSS
 * meaningless, so there the figures are printed and LeakSanitizer (at the
 * server's exit, which must be clean) does the checking instead.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helper.h"

#if defined(__SANITIZE_ADDRESS__)
#define PD_SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PD_SOAK_ASAN 1
#endif
#endif

static srv_t srv;
static volatile int stop_flag;
#define VOLUNTEERS 2000

typedef struct worker_s {
    pd_client_t *c;
    unsigned seed;
    long long ops;
    long long errors;   /* replies with an unexpected error */
    char what[96];      /* the first unexpected error */
    msgpack_sbuffer sb; /* this worker's packed params */
} worker_t;

/* params_json() packs into one static buffer: workers take turns. */
static pthread_mutex_t pack_mu = PTHREAD_MUTEX_INITIALIZER;

static int rnd(worker_t *w, int n) {
    return (int)(rand_r(&w->seed) % (unsigned)n);
}

/* A call whose transport must not fail; returns the error code. */
static int soak_call(worker_t *w, const char *method, const char *json, pd_msg_t *out) {
    size_t plen;
    pthread_mutex_lock(&pack_mu);
    const char *p = params_json(json, &plen);
    w->sb.size = 0;
    msgpack_sbuffer_write(&w->sb, p, plen);
    pthread_mutex_unlock(&pack_mu);
    pd_msg_t m;
    pd_err err = pd_client_call(w->c, method, w->sb.data, w->sb.size, &m);
    if (err != PD_OK) {
        if (w->errors++ == 0)
            snprintf(w->what, sizeof(w->what), "%s: transport error %d", method, err);
        return -1;
    }
    w->ops++;
    if (out) *out = m;
    return (int)m.code;
}

static void expect_ok(worker_t *w, const char *method, const char *json, pd_msg_t *out) {
    int code = soak_call(w, method, json, out);
    if (code > 0 && w->errors++ == 0) snprintf(w->what, sizeof(w->what), "%s -> %d", method, code);
}

static void *movers(void *arg) {
    worker_t *w = arg;
    char json[256];
    static const char *const modes[] = {"walk", "bike", "ebike", "car"};
    for (int id = 1; id <= VOLUNTEERS && !stop_flag; id++) {
        snprintf(json, sizeof(json),
                 "{\"id\":%d,\"lat\":%.5f,\"lon\":%.5f,\"skills\":[\"tutoring\",\"sanitation\"],"
                 "\"mode\":\"%s\",\"capacity\":2}",
                 id, 30.55 + rnd(w, 10000) * 1e-5, 114.25 + rnd(w, 10000) * 1e-5, modes[id % 4]);
        expect_ok(w, "volunteer.upsert", json, NULL);
    }
    while (!stop_flag) {
        int id = 1 + rnd(w, VOLUNTEERS);
        if (rnd(w, 10) == 0) {
            snprintf(json, sizeof(json), "{\"id\":%d,\"status\":\"%s\"}", id,
                     rnd(w, 4) ? "online" : "offline");
        } else {
            snprintf(json, sizeof(json), "{\"id\":%d,\"lat\":%.5f,\"lon\":%.5f}", id,
                     30.55 + rnd(w, 10000) * 1e-5, 114.25 + rnd(w, 10000) * 1e-5);
        }
        expect_ok(w, "volunteer.update", json, NULL);
    }
    return NULL;
}

static void *readers(void *arg) {
    worker_t *w = arg;
    char json[256];
    while (!stop_flag) {
        double lat = 30.55 + rnd(w, 10000) * 1e-5, lon = 114.25 + rnd(w, 10000) * 1e-5;
        pd_msg_t m;
        switch (rnd(w, 4)) {
            case 0:
            case 1:
                snprintf(json, sizeof(json),
                         "{\"lat\":%.5f,\"lon\":%.5f,\"k\":10,\"skills\":[\"tutoring\"]}", lat,
                         lon);
                expect_ok(w, "match.nearby", json, &m);
                break;
            case 2:
                snprintf(json, sizeof(json),
                         "{\"lat\":%.5f,\"lon\":%.5f,\"radius_m\":3000,\"limit\":50}", lat, lon);
                expect_ok(w, "match.mobilize", json, &m);
                break;
            default: {
                snprintf(json, sizeof(json), "{\"id\":%d}", 1 + rnd(w, VOLUNTEERS));
                int code = soak_call(w, "volunteer.get", json, &m);
                if (code != 0 && code != PD_ERR_NOT_FOUND && w->errors++ == 0)
                    snprintf(w->what, sizeof(w->what), "volunteer.get -> %d", code);
                break;
            }
        }
    }
    return NULL;
}

/* The first offered volunteer of an order view, or 0. */
static long long offered_volunteer(const pd_msg_t *m) {
    const msgpack_object *offers = pd_client_map_get(&m->result, "offers");
    if (!offers || offers->type != MSGPACK_OBJECT_ARRAY) return 0;
    for (uint32_t i = 0; i < offers->via.array.size; i++) {
        const msgpack_object *o = &offers->via.array.ptr[i];
        const msgpack_object *st = pd_client_map_get(o, "state");
        const msgpack_object *v = pd_client_map_get(o, "volunteer");
        if (st && obj_str_eq(st, "live") && v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return (long long)v->via.u64;
    }
    return 0;
}

static void *orders(void *arg) {
    worker_t *w = arg;
    char json[256];
    long long id = 0;
    while (!stop_flag) {
        usleep(5000); /* about 150 orders a second at most */
        id++;
        snprintf(json, sizeof(json),
                 "{\"id\":%lld,\"lat\":%.5f,\"lon\":%.5f,\"skills\":[\"tutoring\"],"
                 "\"ignore_schedule\":true}",
                 id, 30.55 + rnd(w, 10000) * 1e-5, 114.25 + rnd(w, 10000) * 1e-5);
        pd_msg_t m;
        int code = soak_call(w, "order.create", json, &m);
        if (code != 0) {
            if (code > 0 && w->errors++ == 0)
                snprintf(w->what, sizeof(w->what), "order.create -> %d", code);
            continue;
        }
        long long v = offered_volunteer(&m);
        if (!v) continue; /* nobody free nearby: expired, fine */
        if (rnd(w, 5) == 0) {
            snprintf(json, sizeof(json), "{\"id\":%lld}", id);
            expect_ok(w, "order.cancel", json, NULL);
            continue;
        }
        snprintf(json, sizeof(json), "{\"id\":%lld,\"volunteer\":%lld}", id, v);
        /* The offer may have moved on (a status flip withdrew it). */
        if (soak_call(w, "order.accept", json, NULL) != 0) continue;
        snprintf(json, sizeof(json), "{\"id\":%lld,\"minutes_served\":%d}", id, 10 + rnd(w, 50));
        expect_ok(w, "order.complete", json, NULL);
        snprintf(json, sizeof(json), "{\"id\":%lld,\"score\":%d}", id, 1 + rnd(w, 5));
        expect_ok(w, "order.rate", json, NULL);
        snprintf(json, sizeof(json), "{\"id\":%lld}", id);
        expect_ok(w, "order.get", json, NULL);
    }
    return NULL;
}

static void *churner(void *arg) {
    worker_t *w = arg;
    while (!stop_flag) {
        pd_client_t *c = NULL;
        if (pd_client_connect("127.0.0.1", (uint16_t)srv.port, 5000, &c) != PD_OK) {
            if (w->errors++ == 0) snprintf(w->what, sizeof(w->what), "churn: connect failed");
            usleep(10000);
            continue;
        }
        pd_client_t *keep = w->c;
        w->c = c;
        expect_ok(w, "subscribe", "{\"events\":[\"*\"]}", NULL);
        expect_ok(w, "ping", "", NULL);
        /* Read whatever notifications came meanwhile. */
        for (int i = 0; i < 20; i++) {
            bool ready = false;
            if (pd_client_poll(c, 0, &ready) != PD_OK || !ready) break;
            pd_msg_t m;
            if (pd_client_read(c, &m) != PD_OK) break;
        }
        switch (rnd(w, 3)) {
            case 0: { /* a request that is not one: an error reply, connection kept */
                static const unsigned char bad[] = {0x94, 0x00, 0x07, 0x2a, 0xc0};
                pd_client_send_raw(c, bad, sizeof(bad));
                pd_client_flush(c);
                break;
            }
            case 1: { /* half a frame, then gone */
                static const unsigned char half[] = {0x94, 0x00, 0x07, 0xa4, 'p', 'i'};
                pd_client_send_raw(c, half, sizeof(half));
                pd_client_flush(c);
                break;
            }
            default:
                break;
        }
        w->c = keep;
        pd_client_destroy(c);
    }
    return NULL;
}

static void start(void) {
    srv_start(&srv, NULL);
}

static void stop(void) {
    srv_stop(&srv);
}

Test(soak, mixed_load_memory_flat, .init = start, .fini = stop, .timeout = 3600) {
    int secs = getenv("PD_SOAK_SECS") ? atoi(getenv("PD_SOAK_SECS")) : 30;
    if (secs < 3) secs = 3;
    pd_client_t *ctl = srv_connect(&srv);
    void *(*fns[])(void *) = {movers, readers, orders, churner};
    enum { N = sizeof(fns) / sizeof(fns[0]) };
    worker_t ws[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&ws[i], 0, sizeof(ws[i]));
        ws[i].c = srv_connect(&srv);
        ws[i].seed = 1234u + (unsigned)i;
        msgpack_sbuffer_init(&ws[i].sb);
        cr_assert_eq(pthread_create(&th[i], NULL, fns[i], &ws[i]), 0);
    }
    long long rss_base = 0, eng_base = 0, rss = 0, eng = 0, rss_max = 0;
    for (int t = 1; t <= secs; t++) {
        sleep(1);
        pthread_mutex_lock(&pack_mu); /* call_ok packs with params_json() too */
        pd_msg_t m = call_ok(ctl, "stats", "");
        const msgpack_object *mem = pd_client_map_get(&m.result, "memory");
        rss = map_int(mem, "rss_bytes");
        eng = map_int(mem, "engine_bytes");
        pthread_mutex_unlock(&pack_mu);
        if (rss > rss_max) rss_max = rss;
        if (t == secs / 3) {
            rss_base = rss;
            eng_base = eng;
        }
    }
    stop_flag = 1;
    long long total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        total += ws[i].ops;
        cr_expect_eq(ws[i].errors, 0, "worker %d: %lld unexpected errors, first: %s", i,
                     ws[i].errors, ws[i].what);
        pd_client_destroy(ws[i].c);
        msgpack_sbuffer_destroy(&ws[i].sb);
    }
    long long grown = (rss - rss_base) - (eng - eng_base);
    cr_log_info("soak %d s: %lld calls; rss %lld -> %lld (max %lld), engine %lld -> %lld", secs,
                total, rss_base, rss, rss_max, eng_base, eng);
    fprintf(stderr, "soak %d s: %lld calls; rss %lld -> %lld (max %lld), engine %lld -> %lld\n",
            secs, total, rss_base, rss, rss_max, eng_base, eng);
    cr_assert_gt(total, secs * 100LL, "the soak did little work (%lld calls)", total);
#ifndef PD_SOAK_ASAN
    cr_assert_lt(grown, 8LL << 20,
                 "RSS grew %lld bytes more than the engine's own accounting over the last "
                 "two thirds of the soak",
                 grown);
#else
    (void)grown;
#endif
    /* Every client is gone but the control connection. */
    long long deadline = now_ms() + 10000;
    while (stat_of(&srv, "connections", "current") != 2) { /* ctl + stat_of's own */
        cr_assert_lt(now_ms(), deadline, "connections left open after the soak");
        usleep(20000);
    }
    pd_client_destroy(ctl);
}
