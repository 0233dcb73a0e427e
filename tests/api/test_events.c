/* test_events.c -- subscribe / unsubscribe and the notifications a
 * dispatch platform drives volunteers' phones with (docs/protocol.md,
 * "Events"), against a real paidan-server over TCP.
 *
 * What must hold:
 *   - every path that changes an order sends the documented events, in
 *     the order they happened, after the reply of the request that caused
 *     them, with the documented keys;
 *   - a subscriber that does not read costs the server at most
 *     --max-output, however many events one call raises (a dispatch.batch,
 *     a tick expiring a surge of offers), and the others go on;
 *   - a restart with --data-dir neither sends nor counts the events that
 *     recovery replays.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

/* Read the next message, which must be notification `name` about `order`. */
static pd_msg_t expect_event(pd_client_t *c, const char *name, long long order) {
    pd_msg_t m;
    cr_assert_eq(pd_client_read(c, &m), PD_OK, "waiting for %s: %s", name, pd_client_last_error(c));
    cr_assert_eq(m.type, PD_MSG_NOTIFICATION, "expected %s, got a response", name);
    cr_assert_str_eq(m.method, name);
    cr_assert_eq(map_int(&m.params, "order"), order);
    cr_assert(pd_client_map_get(&m.params, "state"));
    cr_assert_gt(map_int(&m.params, "at_ms"), 0);
    return m;
}

/* As expect_event, for an event about a volunteer's offer or slot. */
static pd_msg_t expect_vol_event(pd_client_t *c, const char *name, long long order, long long vol,
                                 const char *state) {
    pd_msg_t m = expect_event(c, name, order);
    cr_assert_eq(map_int(&m.params, "volunteer"), vol, "%s", name);
    cr_assert(pd_client_map_get(&m.params, "slot"));
    cr_assert_str_eq(map_str(&m.params, "state"), state, "%s", name);
    return m;
}

static void expect_quiet(pd_client_t *c) {
    bool ready = true;
    cr_assert_eq(pd_client_poll(c, 200, &ready), PD_OK);
    cr_assert_not(ready, "a notification nobody caused");
}

static void volunteer(pd_client_t *c, int id, double lat, const char *skill) {
    char json[160];
    snprintf(json, sizeof json, "{\"id\":%d,\"lat\":%.4f,\"lon\":114.3,\"skills\":[\"%s\"]}", id,
             lat, skill);
    call_ok(c, "volunteer.upsert", json);
}

Test(events, every_path, .timeout = 60) {
    srv_t s;
    srv_start(&s, NULL);
    pd_client_t *sub = srv_connect(&s);
    pd_client_t *c = srv_connect(&s);
    pd_client_set_timeout(sub, 5000);
    call_ok(sub, "subscribe", "{\"events\":[\"order.*\"]}");
    volunteer(c, 1, 30.601, "tutoring");
    volunteer(c, 2, 30.602, "tutoring");
    volunteer(c, 3, 30.603, "tutoring");
    volunteer(c, 4, 30.604, "sanitation");

    /* create + dispatch, decline -> next offer, accept, complete, rate */
    call_ok(c, "order.create", "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    pd_msg_t m = expect_vol_event(sub, "order.offered", 1, 1, "offered");
    cr_assert_gt(map_int(&m.params, "deadline_ms"), map_int(&m.params, "at_ms"));
    call_ok(c, "order.decline", "{\"id\":1,\"volunteer\":1}");
    expect_vol_event(sub, "order.declined", 1, 1, "offered");
    expect_vol_event(sub, "order.offered", 1, 2, "offered");
    call_ok(c, "order.accept", "{\"id\":1,\"volunteer\":2}");
    expect_vol_event(sub, "order.accepted", 1, 2, "accepted");
    call_ok(c, "order.complete", "{\"id\":1,\"minutes_served\":45}");
    m = expect_event(sub, "order.completed", 1);
    cr_assert_eq(map_int(&m.params, "minutes"), 45);
    cr_assert_null(pd_client_map_get(&m.params, "reason"));
    call_ok(c, "order.rate", "{\"id\":1,\"score\":4}");
    m = expect_event(sub, "order.rated", 1);
    cr_assert_eq(map_int(&m.params, "rating"), 4);

    /* dispatch: false, then order.dispatch; a removed volunteer's offer is
     * withdrawn and the slot offered on; cancel withdraws the live one */
    call_ok(c, "order.create",
            "{\"id\":2,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"dispatch\":false}");
    expect_quiet(sub);
    call_ok(c, "order.dispatch", "{\"id\":2}");
    expect_vol_event(sub, "order.offered", 2, 1, "offered");
    call_ok(c, "volunteer.remove", "{\"id\":1}");
    m = expect_vol_event(sub, "order.offer_withdrawn", 2, 1, "offered");
    cr_assert_str_eq(map_str(&m.params, "reason"), "volunteer_removed");
    expect_vol_event(sub, "order.offered", 2, 2, "offered");
    call_ok(c, "order.cancel", "{\"id\":2}");
    m = expect_vol_event(sub, "order.offer_withdrawn", 2, 2, "cancelled");
    cr_assert_str_eq(map_str(&m.params, "reason"), "order_closed");
    m = expect_event(sub, "order.cancelled", 2);
    cr_assert_str_eq(map_str(&m.params, "reason"), "cancelled");

    /* grab: every offer at once, the first accept wins, the rest lose */
    call_ok(c, "order.create",
            "{\"id\":3,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"mode\":\"grab\"}");
    expect_vol_event(sub, "order.offered", 3, 2, "offered");
    expect_vol_event(sub, "order.offered", 3, 3, "offered");
    call_ok(c, "order.accept", "{\"id\":3,\"volunteer\":3}");
    expect_vol_event(sub, "order.accepted", 3, 3, "accepted");
    m = expect_vol_event(sub, "order.offer_withdrawn", 3, 2, "accepted");
    cr_assert_str_eq(map_str(&m.params, "reason"), "grab_lost");
    call_err(c, "order.accept", "{\"id\":3,\"volunteer\":2}", PD_ERR_ILLEGAL);
    expect_quiet(sub);

    /* team order: one slot accepted, the other runs out of candidates; the
     * accepted volunteer is released and the order expires */
    call_ok(c, "order.create",
            "{\"id\":4,\"lat\":30.6,\"lon\":114.3,\"slots\":[{\"skills\":[\"tutoring\"]},"
            "{\"skills\":[\"sanitation\"]}]}");
    expect_vol_event(sub, "order.offered", 4, 2, "offered");
    expect_vol_event(sub, "order.offered", 4, 4, "offered");
    call_ok(c, "order.accept", "{\"id\":4,\"volunteer\":2}");
    expect_vol_event(sub, "order.accepted", 4, 2, "offered"); /* not every slot yet */
    call_ok(c, "order.decline", "{\"id\":4,\"volunteer\":4}");
    expect_vol_event(sub, "order.declined", 4, 4, "offered");
    m = expect_vol_event(sub, "order.released", 4, 2, "expired");
    cr_assert_str_eq(map_str(&m.params, "reason"), "order_closed");
    m = expect_event(sub, "order.expired", 4);
    cr_assert_str_eq(map_str(&m.params, "reason"), "exhausted");

    /* nobody qualified at all */
    call_ok(c, "order.create", "{\"id\":5,\"lat\":0,\"lon\":0,\"skills\":[\"tutoring\"]}");
    m = expect_event(sub, "order.expired", 5);
    cr_assert_str_eq(map_str(&m.params, "reason"), "no_candidate");

    /* dispatch.batch: one offer per assigned slot; reads and mobilisation
     * raise nothing */
    call_ok(c, "order.create",
            "{\"id\":6,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],\"dispatch\":false}");
    call_ok(c, "dispatch.batch", "{\"orders\":[6]}");
    expect_vol_event(sub, "order.offered", 6, 4, "offered");
    call_ok(c, "match.mobilize", "{\"lat\":30.6,\"lon\":114.3,\"mark_notified\":true}");
    call_ok(c, "order.list", "");
    expect_quiet(sub);

    /* a subscriber's own pipelined requests: each reply, then the events it
     * caused, then the next reply */
    size_t len;
    const char *p =
        params_json("{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}", &len);
    uint32_t id1, id2;
    cr_assert_eq(pd_client_send(sub, "order.create", p, len, &id1), PD_OK);
    p = params_json("", &len);
    cr_assert_eq(pd_client_send(sub, "ping", p, len, &id2), PD_OK);
    cr_assert_eq(pd_client_flush(sub), PD_OK);
    cr_assert_eq(pd_client_read(sub, &m), PD_OK);
    cr_assert_eq(m.type, PD_MSG_RESPONSE);
    cr_assert_eq(m.msgid, id1);
    expect_event(sub, "order.offered", 7);
    cr_assert_eq(pd_client_read(sub, &m), PD_OK);
    cr_assert_eq(m.type, PD_MSG_RESPONSE);
    cr_assert_eq(m.msgid, id2);

    /* what was sent is what was counted */
    m = call_ok(c, "stats", "");
    const msgpack_object *n = pd_client_map_get(&m.result, "counters");
    cr_assert_eq(map_int(n, "notifications"), map_int(n, "events"));
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "connections"), "subscribers"), 1);
    pd_client_destroy(c);
    pd_client_destroy(sub);
    srv_stop(&s);
}

Test(events, subscribe_arguments, .timeout = 30) {
    srv_t s;
    srv_start(&s, NULL);
    pd_client_t *c = srv_connect(&s);
    call_err(c, "subscribe", "", PD_ERR_BAD_ARG);
    call_err(c, "subscribe", "{\"events\":\"order.offered\"}", PD_ERR_BAD_ARG);
    call_err(c, "subscribe", "{\"events\":[1]}", PD_ERR_BAD_ARG);
    call_err(c, "subscribe", "{\"events\":[\"order.offered\",\"order.nope\"]}", PD_ERR_BAD_ARG);
    /* a rejected call changes nothing */
    pd_msg_t m = call_ok(c, "subscribe", "{\"events\":[]}");
    cr_assert_eq(pd_client_map_get(&m.result, "events")->via.array.size, 0);
    m = call_ok(c, "subscribe", "{\"events\":[\"order.rated\",\"order.rated\"]}");
    cr_assert_eq(pd_client_map_get(&m.result, "events")->via.array.size, 1);
    m = call_ok(c, "subscribe", "{\"events\":[\"*\"]}");
    cr_assert_eq(pd_client_map_get(&m.result, "events")->via.array.size, 11);
    m = call_ok(c, "unsubscribe", "{\"events\":[\"order.offered\"]}");
    cr_assert_eq(pd_client_map_get(&m.result, "events")->via.array.size, 10);
    cr_assert_eq(stat_of(&s, "connections", "subscribers"), 1);
    m = call_ok(c, "unsubscribe", "{\"events\":null}");
    cr_assert_eq(pd_client_map_get(&m.result, "events")->via.array.size, 0);
    cr_assert_eq(stat_of(&s, "connections", "subscribers"), 0);
    pd_client_destroy(c);
    srv_stop(&s);
}

/* A purge, asked for or by --order-retention, is announced once with how
 * many closed orders went; a purge that drops nothing says nothing. */
static pd_msg_t expect_purged(pd_client_t *c, long long count, const char *by) {
    pd_msg_t m;
    cr_assert_eq(pd_client_read(c, &m), PD_OK, "waiting for order.purged: %s",
                 pd_client_last_error(c));
    cr_assert_eq(m.type, PD_MSG_NOTIFICATION);
    cr_assert_str_eq(m.method, "order.purged");
    cr_assert_eq(map_int(&m.params, "count"), count);
    cr_assert_str_eq(map_str(&m.params, "by"), by);
    cr_assert_gt(map_int(&m.params, "at_ms"), 0);
    return m;
}

Test(events, purges_are_announced, .timeout = 60) {
    const char *args[] = {"--order-retention", "0.0001", NULL}; /* 8.64 s */
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    pd_client_t *sub = srv_connect(&s);
    pd_client_set_timeout(sub, 60000); /* the retention's purge comes some 9-11 s on */
    call_ok(sub, "subscribe", "{\"events\":[\"order.purged\"]}");
    static const char order[] =
        "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"dispatch\":false}";
    char json[160];
    for (int id = 1; id <= 3; id++) {
        snprintf(json, sizeof json, order, id);
        call_ok(c, "order.create", json);
    }
    call_ok(c, "order.cancel", "{\"id\":1}");
    call_ok(c, "order.cancel", "{\"id\":2}");
    /* asked for: the two closed orders */
    call_ok(c, "order.purge", "{\"before_ms\":4102444800000}");
    pd_msg_t m = expect_purged(sub, 2, "request");
    cr_assert_eq(map_int(&m.params, "before_ms"), 4102444800000LL);
    call_ok(c, "order.purge", "{\"before_ms\":4102444800000}"); /* nothing left to drop */
    expect_quiet(sub);
    /* by the retention, once the third has been closed long enough */
    call_ok(c, "order.cancel", "{\"id\":3}");
    expect_purged(sub, 1, "retention");
    m = call_ok(c, "stats", "");
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "counters"), "notifications"), 2);
    pd_client_destroy(sub);
    pd_client_destroy(c);
    srv_stop(&s);
}

/* A raw socket subscribed to everything that never reads, with a small
 * receive buffer so the kernel holds little of what the server sends. */
static int slow_subscriber(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    /* [0, 1, "subscribe", {"events": ["*"]}] */
    static const char req[] = "\x94\x00\x01\xa9subscribe\x81\xa6\x65vents\x91\xa1*";
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    return fd;
}

/* One dispatch.batch raises about a hundred thousand events (10 MB of
 * notifications). A subscriber that does not read must be cut off once the
 * bytes its socket refuses pass --max-output, not after the server has
 * queued the whole burst for it: the notifications queued to it stay well
 * below the burst (the kernel takes at most a few MB). */
Test(events, burst_bounded_by_max_output, .timeout = 120) {
    srv_t s;
    const char *args[] = {"--max-output", "64k", NULL};
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    pd_client_set_timeout(c, 60000);
    enum { VOLS = 600, ORDERS = 4000, STEP = 200 };
    char json[200];
    size_t len;
    for (int i = 0; i < VOLS; i += STEP) {
        for (int j = i; j < i + STEP && j < VOLS; j++) {
            snprintf(json, sizeof json,
                     "{\"id\":%d,\"lat\":%.4f,\"lon\":%.4f,\"skills\":[\"tutoring\"],"
                     "\"capacity\":255}",
                     j + 1, 30.6 + (j % 25) * 0.0001, 114.3 + (j / 25) * 0.0001);
            const char *p = params_json(json, &len);
            cr_assert_eq(pd_client_send(c, "volunteer.upsert", p, len, NULL), PD_OK);
        }
        cr_assert_eq(pd_client_flush(c), PD_OK);
        for (int j = i; j < i + STEP && j < VOLS; j++) {
            pd_msg_t m;
            cr_assert_eq(pd_client_read(c, &m), PD_OK);
            cr_assert_eq(m.code, 0);
        }
    }
    for (int i = 0; i < ORDERS; i += STEP) {
        for (int j = i; j < i + STEP; j++) {
            snprintf(json, sizeof json,
                     "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
                     "\"need\":32,\"dispatch\":false}",
                     j + 1);
            const char *p = params_json(json, &len);
            cr_assert_eq(pd_client_send(c, "order.create", p, len, NULL), PD_OK);
        }
        cr_assert_eq(pd_client_flush(c), PD_OK);
        for (int j = i; j < i + STEP; j++) {
            pd_msg_t m;
            cr_assert_eq(pd_client_read(c, &m), PD_OK);
            cr_assert_eq(m.code, 0);
        }
    }
    int slow = slow_subscriber(s.port);
    while (stat_of(&s, "connections", "subscribers") < 1) usleep(10000);
    long long events0 = stat_of(&s, "counters", "events");

    call_ok(c, "dispatch.batch", "{\"apply\":\"greedy\",\"k\":1}");
    long long events = stat_of(&s, "counters", "events") - events0;
    long long queued = stat_of(&s, "counters", "notifications");
    cr_assert_gt(events, 80000, "the burst is too small to tell: %lld events (%lld queued)", events,
                 queued);
    cr_assert_eq(stat_of(&s, "counters", "output_cutoffs"), 1);
    cr_assert_lt(queued, events / 2,
                 "%lld of %lld notifications queued to a reader that reads nothing", queued,
                 events);
    cr_assert_eq(stat_of(&s, "connections", "subscribers"), 0);
    close(slow);
    call_ok(c, "ping", "");
    pd_client_destroy(c);
    srv_stop(&s);
}

/* Recovery after kill -9 replays the journal through the engine: the
 * events of that replay were sent before the crash; none is sent again,
 * and none is counted as this process's. */
Test(events, recovery_replays_no_events, .timeout = 60) {
    char dir[] = "/tmp/pd-events-XXXXXX";
    cr_assert(mkdtemp(dir));
    const char *args[] = {"--data-dir", dir, "--fsync", "always", NULL};
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    volunteer(c, 1, 30.601, "tutoring");
    volunteer(c, 2, 30.602, "tutoring");
    call_ok(c, "order.create", "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    call_ok(c, "order.decline", "{\"id\":1,\"volunteer\":1}");
    call_ok(c, "order.accept", "{\"id\":1,\"volunteer\":2}");
    cr_assert_eq(stat_of(&s, "counters", "events"), 4);
    pd_client_destroy(c);
    srv_stop_sig(&s, SIGKILL);

    srv_start(&s, args);
    c = srv_connect(&s);
    pd_client_set_timeout(c, 5000);
    call_ok(c, "subscribe", "{\"events\":[\"*\"]}");
    pd_msg_t m = call_ok(c, "order.get", "{\"id\":1}");
    cr_assert_str_eq(map_str(&m.result, "state"), "accepted");
    expect_quiet(c);
    cr_assert_eq(stat_of(&s, "counters", "events"), 0);
    cr_assert_eq(stat_of(&s, "counters", "notifications"), 0);
    call_ok(c, "order.complete", "{\"id\":1}");
    expect_event(c, "order.completed", 1);
    cr_assert_eq(stat_of(&s, "counters", "events"), 1);
    pd_client_destroy(c);
    srv_stop(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A write pipelined before a frame that breaks the stream: its reply goes
 * out with the last word, server.error, and like every reply only once the
 * journal holds the write (--fsync always: synced). The shim holds the
 * journal's sync while the gate file exists; nothing may arrive meanwhile. */
Test(events, last_word_waits_for_the_journal, .timeout = 60) {
    char dir[] = "/tmp/pd-events-XXXXXX";
    cr_assert(mkdtemp(dir));
    char data[64], gate[64];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(gate, sizeof gate, "%s/gate", dir);
    setenv("LD_PRELOAD", PD_FSYNC_GATE_LIB, 1);
    setenv("PD_FSYNC_GATE", gate, 1);
    const char *asan = getenv("ASAN_OPTIONS");
    char asan_opts[512];
    snprintf(asan_opts, sizeof asan_opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", asan_opts, 1);
    const char *args[] = {"--data-dir", data, "--fsync", "always", NULL};
    srv_t s;
    srv_start(&s, args);
    unsetenv("LD_PRELOAD");
    pd_client_t *c = srv_connect(&s);
    pd_client_set_timeout(c, 15000);
    volunteer(c, 1, 30.601, "tutoring");

    FILE *g = fopen(gate, "w");
    cr_assert(g);
    fclose(g);
    size_t len;
    const char *p =
        params_json("{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}", &len);
    uint32_t id;
    cr_assert_eq(pd_client_send(c, "order.create", p, len, &id), PD_OK);
    cr_assert_eq(pd_client_send_raw(c, "\xc1", 1), PD_OK);
    cr_assert_eq(pd_client_flush(c), PD_OK);
    bool ready = true;
    cr_assert_eq(pd_client_poll(c, 300, &ready), PD_OK);
    bool early = ready;
    unlink(gate);
    cr_assert_not(early, "the reply left before the journal synced its write");
    pd_msg_t m;
    cr_assert_eq(pd_client_read(c, &m), PD_OK, "%s", pd_client_last_error(c));
    cr_assert_eq(m.type, PD_MSG_RESPONSE);
    cr_assert_eq(m.msgid, id);
    cr_assert_eq(m.code, 0);
    int code = 0;
    cr_assert(wait_closed(c, 5000, &code));
    cr_assert_eq(code, PD_ERR_BAD_REQUEST);
    pd_client_destroy(c);

    c = srv_connect(&s);
    call_ok(c, "order.get", "{\"id\":1}");
    pd_client_destroy(c);
    srv_stop(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* order.release (退单): an accepted volunteer withdraws; subscribers hear
 * order.released (reason withdrew) and the next offer; the record counts
 * it; and it is journaled like any write: a kill -9 keeps it. */
Test(events, release_by_a_volunteer, .timeout = 60) {
    char dir[] = "/tmp/pd-release-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    srv_t s;
    srv_start(&s, (const char *const[]){"--data-dir", dir, "--fsync", "always", NULL});
    pd_client_t *sub = srv_connect(&s);
    pd_client_t *c = srv_connect(&s);
    call_ok(sub, "subscribe", "{\"events\":[\"order.*\"]}");
    volunteer(c, 1, 30.6010, "tutoring");
    volunteer(c, 2, 30.6020, "tutoring");
    call_ok(c, "order.create",
            "{\"id\":5,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
            "\"ignore_schedule\":true}");
    expect_vol_event(sub, "order.offered", 5, 1, "offered");
    call_ok(c, "order.accept", "{\"id\":5,\"volunteer\":1}");
    expect_vol_event(sub, "order.accepted", 5, 1, "accepted");

    /* only the one holding the slot may withdraw, once */
    pd_msg_t m = call_err(c, "order.release", "{\"id\":5,\"volunteer\":2}", PD_ERR_ILLEGAL);
    cr_assert_str_eq(m.message, "volunteer 2 holds no accepted slot on order 5");
    call_err(c, "order.release", "{\"id\":6,\"volunteer\":1}", PD_ERR_NOT_FOUND);
    call_err(c, "order.release", "{\"id\":5,\"volunteer\":9}", PD_ERR_NOT_FOUND);
    call_err(c, "order.release", "{\"id\":5}", PD_ERR_BAD_ARG);
    m = call_ok(c, "order.release", "{\"id\":5,\"volunteer\":1}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    m = expect_vol_event(sub, "order.released", 5, 1, "offered");
    cr_assert_str_eq(map_str(&m.params, "reason"), "withdrew");
    expect_vol_event(sub, "order.offered", 5, 2, "offered");
    call_err(c, "order.release", "{\"id\":5,\"volunteer\":1}", PD_ERR_ILLEGAL);
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&m.result, "releases"), 1);
    cr_assert_eq(map_int(&m.result, "load"), 0);

    /* acknowledged, so it survives a crash */
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    pd_client_destroy(sub);
    pd_client_destroy(c);
    srv_start(&s, (const char *const[]){"--data-dir", dir, NULL});
    c = srv_connect(&s);
    m = call_ok(c, "order.get", "{\"id\":5}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&m.result, "releases"), 1);
    call_ok(c, "order.accept", "{\"id\":5,\"volunteer\":2}");
    m = call_ok(c, "order.get", "{\"id\":5}");
    cr_assert_str_eq(map_str(&m.result, "state"), "accepted");
    pd_client_destroy(c);
    srv_stop(&s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
