/* test_server.c -- every RPC method against a real paidan-server over TCP,
 * pipelining, notifications, stats and the /metrics endpoint.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

static srv_t srv;

static void start_plain(void) {
    srv_start(&srv, NULL);
}

static void stop(void) {
    srv_stop(&srv);
}

TestSuite(server, .init = start_plain, .fini = stop, .timeout = 30);

/* Two volunteers near (30.6, 114.3); v1 tutoring+sanitation by bike, v2 tutoring on foot. */
static void seed(pd_client_t *c) {
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\",\"sanitation\"],"
            "\"mode\":\"bike\"}");
    call_ok(c, "volunteer.upsert",
            "{\"id\":2,\"lat\":30.603,\"lon\":114.302,\"skills\":[\"tutoring\"],\"tags\":[1,3]}");
}

Test(server, ping_and_methods) {
    pd_client_t *c = srv_connect(&srv);
    pd_msg_t m = call_ok(c, "ping", "");
    cr_assert(obj_str_eq(&m.result, "pong"));
    m = call_ok(c, "methods", "");
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_geq(m.result.via.array.size, 20);
    m = call_ok(c, "config.get", "");
    const msgpack_object *skills = pd_client_map_get(&m.result, "skills");
    cr_assert(skills && skills->type == MSGPACK_OBJECT_ARRAY && skills->via.array.size >= 8);
    cr_assert_str_eq(map_str(&m.result, "policy"), "balanced");
    /* the policies' weights, to read a score by */
    const msgpack_object *w = pd_client_map_get(&m.result, "policy_weights");
    cr_assert(w && w->type == MSGPACK_OBJECT_MAP && w->via.map.size == 4);
    cr_assert_eq(map_num(w, "rated_neutral"), 4);
    cr_assert_eq(map_num(w, "balanced_cap_hours"), 20);
    pd_client_destroy(c);
}

Test(server, volunteer_lifecycle) {
    pd_client_t *c = srv_connect(&srv);
    pd_msg_t m = call_ok(c, "volunteer.upsert",
                         "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
                         "\"schedule\":[[0,8,12],[5,0,24]],\"capacity\":2,\"status\":\"busy\","
                         "\"mode\":\"ebike\",\"tags\":5}");
    cr_assert_eq(map_int(&m.result, "id"), 7);
    cr_assert_eq(pd_client_map_get(&m.result, "created")->via.boolean, true);
    m = call_ok(c, "volunteer.upsert",
                "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":\"tutoring, sanitation\","
                "\"schedule\":[[0,8,12],[5,0,24]],\"capacity\":2,\"status\":\"busy\","
                "\"mode\":\"ebike\",\"tags\":5}");
    cr_assert_eq(pd_client_map_get(&m.result, "created")->via.boolean, false);

    m = call_ok(c, "volunteer.get", "{\"id\":7}");
    cr_assert_float_eq(map_num(&m.result, "lat"), 30.6, 1e-6);
    cr_assert_str_eq(map_str(&m.result, "mode"), "ebike");
    cr_assert_str_eq(map_str(&m.result, "status"), "busy");
    cr_assert_eq(map_int(&m.result, "capacity"), 2);
    const msgpack_object *sk = pd_client_map_get(&m.result, "skills");
    cr_assert_eq(sk->via.array.size, 2);
    const msgpack_object *tags = pd_client_map_get(&m.result, "tags");
    cr_assert_eq(tags->via.array.size, 2);
    cr_assert_eq(tags->via.array.ptr[1].via.u64, 2);
    const msgpack_object *sch = pd_client_map_get(&m.result, "schedule");
    cr_assert_eq(sch->via.array.size, 2);
    cr_assert_eq(sch->via.array.ptr[1].via.array.ptr[0].via.u64, 5);
    cr_assert_eq(sch->via.array.ptr[1].via.array.ptr[2].via.u64, 24);
    for (const char *k = "hours\0points\0stars\0rating\0"; *k; k += strlen(k) + 1)
        cr_assert(pd_client_map_get(&m.result, k), "volunteer.get lacks '%s'", k);

    /* Location ping, then a partial update. */
    m = call_ok(c, "volunteer.update", "{\"id\":7,\"lat\":30.61,\"lon\":114.31}");
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_BOOLEAN);
    call_ok(c, "volunteer.update", "{\"id\":7,\"status\":\"online\",\"capacity\":1}");
    m = call_ok(c, "volunteer.get", "{\"id\":7}");
    cr_assert_float_eq(map_num(&m.result, "lat"), 30.61, 1e-6);
    cr_assert_str_eq(map_str(&m.result, "status"), "online");
    call_err(c, "volunteer.update", "{\"id\":8,\"lat\":1,\"lon\":1}", PD_ERR_NOT_FOUND);

    call_ok(c, "volunteer.remove", "{\"id\":7}");
    call_err(c, "volunteer.get", "{\"id\":7}", PD_ERR_NOT_FOUND);
    call_err(c, "volunteer.remove", "{\"id\":7}", PD_ERR_NOT_FOUND);
    pd_client_destroy(c);
}

Test(server, match_nearby_and_mobilize) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    pd_msg_t m = call_ok(c, "match.nearby",
                         "{\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"k\":5,"
                         "\"policy\":\"nearest\"}");
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(m.result.via.array.size, 2);
    const msgpack_object *h0 = &m.result.via.array.ptr[0];
    cr_assert_eq(map_int(h0, "id"), 1);
    cr_assert(pd_client_map_get(h0, "eta_s") && pd_client_map_get(h0, "distance_m") &&
              pd_client_map_get(h0, "score"));
    cr_assert_gt(map_num(&m.result.via.array.ptr[1], "distance_m"), 100.0);

    m = call_ok(c, "match.nearby", "{\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}");
    cr_assert_eq(m.result.via.array.size, 1);
    m = call_ok(c, "match.nearby", "{\"lat\":30.6,\"lon\":114.3,\"tags\":[3]}");
    cr_assert_eq(m.result.via.array.size, 1);
    cr_assert_eq(map_int(&m.result.via.array.ptr[0], "id"), 2);
    m = call_ok(c, "match.nearby", "{\"lat\":30.6,\"lon\":114.3,\"k\":1,\"policy\":\"rated\"}");
    cr_assert_eq(m.result.via.array.size, 1);
    m = call_ok(c, "match.nearby", "{\"lat\":31.6,\"lon\":114.3}");
    cr_assert_eq(m.result.via.array.size, 0);

    m = call_ok(c, "match.mobilize", "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":5000}");
    cr_assert_eq(map_int(&m.result, "count"), 2);
    cr_assert_eq(pd_client_map_get(&m.result, "volunteers")->via.array.size, 2);
    m = call_ok(c, "match.mobilize",
                "{\"lat\":30.6,\"lon\":114.3,\"minutes\":15,\"limit\":1,\"mark_notified\":true}");
    cr_assert_eq(map_int(&m.result, "count"), 2);
    cr_assert_eq(pd_client_map_get(&m.result, "volunteers")->via.array.size, 1);
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&m.result, "notified_count"), 1);
    pd_client_destroy(c);
}

/* Ids of a match.nearby result, or of match.mobilize's volunteers, as a
 * sorted string "11,13" (order by ETA is checked elsewhere). */
static void hit_ids(const msgpack_object *arr, char *out, size_t cap) {
    uint64_t ids[16];
    uint32_t n = arr->via.array.size;
    cr_assert_leq(n, 16);
    for (uint32_t i = 0; i < n; i++) ids[i] = (uint64_t)map_int(&arr->via.array.ptr[i], "id");
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint64_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    size_t len = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%llu", i ? "," : "",
                                (unsigned long long)ids[i]);
}

/* The time window of match.nearby and match.mobilize: `start` and
 * `duration_min` select who is on schedule for all of it (local time
 * +08:00), `ignore_schedule` drops the check, and a bad window is refused. */
Test(server, match_time_windows) {
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "volunteer.upsert",
            "{\"id\":11,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
            "\"schedule\":[[0,8,12]]}");
    call_ok(c, "volunteer.upsert",
            "{\"id\":12,\"lat\":30.601,\"lon\":114.3,\"skills\":[\"tutoring\"],"
            "\"schedule\":[[0,18,22]]}");
    call_ok(c, "volunteer.upsert",
            "{\"id\":13,\"lat\":30.602,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    /* Monday 2024-03-04 09:00 at +08:00 is 01:00 UTC */
    static const struct {
        const char *method, *window, *ids;
    } cases[] = {
        {"match.nearby", "\"start\":1709514000000,\"duration_min\":60", "11,13"},
        {"match.nearby", "\"start\":1709514000000,\"duration_min\":180", "11,13"},
        /* 11:30 for an hour runs past the end of 8-12 */
        {"match.nearby", "\"start\":1709523000000,\"duration_min\":60", "13"},
        /* 19:00 */
        {"match.nearby", "\"start\":1709550000000,\"duration_min\":120", "12,13"},
        {"match.nearby", "\"start\":1709523000000,\"ignore_schedule\":true", "11,12,13"},
        {"match.mobilize", "\"start\":1709514000000,\"duration_min\":60", "11,13"},
        {"match.mobilize", "\"start\":1709550000000,\"duration_min\":60", "12,13"},
        /* mobilisation checks schedules only when given a window */
        {"match.mobilize", "\"radius_m\":2000", "11,12,13"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char params[256], got[128];
        snprintf(params, sizeof params, "{\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],%s}",
                 cases[i].window);
        pd_msg_t m = call_ok(c, cases[i].method, params);
        const msgpack_object *arr = &m.result;
        if (m.result.type == MSGPACK_OBJECT_MAP) {
            arr = pd_client_map_get(&m.result, "volunteers");
            cr_assert_eq(map_int(&m.result, "count"), (int64_t)(strlen(cases[i].ids) + 1) / 3,
                         "%s %s", cases[i].method, params);
        }
        hit_ids(arr, got, sizeof got);
        cr_assert_str_eq(got, cases[i].ids, "%s %s", cases[i].method, params);
    }
    static const char *const bad[] = {
        "\"start\":1709514000000,\"duration_min\":\"an hour\"",
        "\"start\":1709514000000,\"duration_min\":100000",
        "\"start\":-5",
        "\"start\":\"monday\"",
        "\"ignore_schedule\":1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char params[256];
        snprintf(params, sizeof params, "{\"lat\":30.6,\"lon\":114.3,%s}", bad[i]);
        call_err(c, "match.nearby", params, PD_ERR_BAD_ARG);
        call_err(c, "match.mobilize", params, PD_ERR_BAD_ARG);
    }
    pd_client_destroy(c);
}

Test(server, order_lifecycle) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    pd_msg_t m = call_ok(c, "order.create",
                         "{\"id\":100,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
                         "\"priority\":\"elevated\",\"duration_min\":90}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    cr_assert_str_eq(map_str(&m.result, "priority"), "elevated");
    const msgpack_object *offers = pd_client_map_get(&m.result, "offers");
    cr_assert_eq(offers->via.array.size, 1);
    cr_assert_eq(map_int(&offers->via.array.ptr[0], "volunteer"), 1);

    call_err(c, "order.create", "{\"id\":100,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}",
             PD_ERR_EXISTS);
    /* a start past what the engine takes is named, not "bad argument" */
    pd_msg_t bad = call_err(c, "order.create",
                            "{\"id\":101,\"lat\":30.6,\"lon\":114.3,\"skills\":[],"
                            "\"start\":4611686018427387904}",
                            PD_ERR_BAD_ARG);
    cr_assert(strstr(bad.message, "'start'"), "%s", bad.message);
    call_err(c, "order.accept", "{\"id\":100,\"volunteer\":2}", PD_ERR_ILLEGAL);
    call_err(c, "order.complete", "{\"id\":100}", PD_ERR_ILLEGAL);
    m = call_ok(c, "order.accept", "{\"id\":100,\"volunteer\":1}");
    cr_assert_str_eq(map_str(&m.result, "state"), "accepted");
    call_err(c, "volunteer.remove", "{\"id\":1}", PD_ERR_ILLEGAL);
    call_err(c, "order.rate", "{\"id\":100,\"score\":5}", PD_ERR_ILLEGAL);
    m = call_ok(c, "order.complete", "{\"id\":100,\"minutes_served\":120}");
    cr_assert_str_eq(map_str(&m.result, "state"), "completed");
    cr_assert_eq(map_int(&m.result, "minutes_served"), 120);
    m = call_ok(c, "order.rate", "{\"id\":100,\"score\":4}");
    cr_assert_str_eq(map_str(&m.result, "state"), "rated");
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_float_eq(map_num(&m.result, "hours"), 2.0, 1e-9);
    cr_assert_float_eq(map_num(&m.result, "rating"), 4.0, 1e-9);
    cr_assert_gt(map_num(&m.result, "points"), 0.0);
    m = call_ok(c, "order.get", "{\"id\":100}");
    cr_assert_eq(map_int(&m.result, "rating"), 4);

    /* Created without dispatch, then dispatched, declined, cancelled. */
    m = call_ok(c, "order.create",
                "{\"id\":101,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
                "\"dispatch\":false,\"mode\":\"grab\",\"minutes\":20}");
    cr_assert_str_eq(map_str(&m.result, "state"), "created");
    cr_assert_eq(map_int(&m.result, "budget_s"), 1200);
    m = call_ok(c, "order.candidates", "{\"id\":101,\"k\":5}");
    cr_assert_eq(m.result.via.array.size, 2);
    m = call_ok(c, "order.dispatch", "{\"id\":101}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    cr_assert_eq(map_int(&m.result, "live_offers"), 2);
    call_err(c, "order.dispatch", "{\"id\":101}", PD_ERR_ILLEGAL);
    m = call_ok(c, "order.decline", "{\"id\":101,\"volunteer\":2}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    m = call_ok(c, "order.cancel", "{\"id\":101}");
    cr_assert_str_eq(map_str(&m.result, "state"), "cancelled");
    call_err(c, "order.cancel", "{\"id\":101}", PD_ERR_ILLEGAL);
    call_err(c, "order.get", "{\"id\":999}", PD_ERR_NOT_FOUND);

    /* A team order: 1 tutoring + 1 sanitation slot. */
    m = call_ok(c, "order.create",
                "{\"id\":102,\"lat\":30.6,\"lon\":114.3,\"slots\":[{\"skills\":[\"tutoring\"]},"
                "{\"skills\":[\"sanitation\"],\"need\":1}]}");
    cr_assert_eq(map_int(&m.result, "need"), 2);
    cr_assert_eq(pd_client_map_get(&m.result, "slots")->via.array.size, 2);

    /* Nobody qualifies: expires at once. */
    m = call_ok(c, "order.create",
                "{\"id\":103,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"legal-aid\"]}");
    cr_assert_str_eq(map_str(&m.result, "state"), "expired");
    cr_assert_str_eq(map_str(&m.result, "reason"), "no_candidate");
    pd_client_destroy(c);
}

/* Three orders after seed(): `id` offered to volunteer 1 (sanitation),
 * id + 1 cancelled, id + 2 expired (nobody does legal aid). */
/* The order view walks the offers in windows of 32 (no allocation after
 * the write it follows): an order declined by 70 volunteers in turn shows
 * all 71 offers, in the order they were made, in the reply of the decline
 * itself and in order.get. */
Test(server, order_view_holds_every_offer) {
    pd_client_t *c = srv_connect(&srv);
    char json[256];
    for (int v = 1; v <= 71; v++) {
        snprintf(json, sizeof json,
                 "{\"id\":%d,\"lat\":%.6f,\"lon\":114.3,\"skills\":[\"legal-aid\"]}", 900 + v,
                 30.6 + 0.0002 * v);
        call_ok(c, "volunteer.upsert", json);
    }
    call_ok(c, "order.create",
            "{\"id\":900,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"legal-aid\"],"
            "\"minutes\":60}");
    pd_msg_t m;
    for (int v = 1; v <= 70; v++) {
        snprintf(json, sizeof json, "{\"id\":900,\"volunteer\":%d}", 900 + v);
        m = call_ok(c, "order.decline", json);
        cr_assert_eq(pd_client_map_get(&m.result, "offers")->via.array.size, (uint32_t)v + 1);
    }
    m = call_ok(c, "order.get", "{\"id\":900}");
    cr_assert_eq(map_int(&m.result, "offers_total"), 71);
    const msgpack_object *offers = pd_client_map_get(&m.result, "offers");
    cr_assert_eq(offers->via.array.size, 71);
    for (uint32_t i = 0; i < 71; i++) {
        const msgpack_object *o = &offers->via.array.ptr[i];
        cr_assert_eq(o->type, MSGPACK_OBJECT_MAP, "offer %u", i);
        cr_assert_eq(map_int(o, "volunteer"), 901 + (long long)i, "offer %u", i);
        cr_assert_str_eq(map_str(o, "state"), i < 70 ? "declined" : "live", "offer %u", i);
    }
    pd_client_destroy(c);
}

static void three_orders(pd_client_t *c, int id) {
    char j[160];
    snprintf(j, sizeof j, "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}", id);
    call_ok(c, "order.create", j);
    snprintf(j, sizeof j,
             "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
             "\"dispatch\":false}",
             id + 1);
    call_ok(c, "order.create", j);
    snprintf(j, sizeof j, "{\"id\":%d}", id + 1);
    call_ok(c, "order.cancel", j);
    snprintf(j, sizeof j, "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"legal-aid\"]}",
             id + 2);
    call_ok(c, "order.create", j);
}

/* The ids in an order.list page, "a,b,c"; and its next cursor (-1: nil). */
static long long list_page(pd_client_t *c, const char *json, char *ids, size_t cap) {
    pd_msg_t m = call_ok(c, "order.list", json);
    const msgpack_object *orders = pd_client_map_get(&m.result, "orders");
    cr_assert_not_null(orders);
    ids[0] = 0;
    for (uint32_t i = 0; i < orders->via.array.size; i++) {
        size_t len = strlen(ids);
        snprintf(ids + len, cap - len, "%s%lld", i ? "," : "",
                 (long long)map_int(&orders->via.array.ptr[i], "id"));
    }
    const msgpack_object *next = pd_client_map_get(&m.result, "next");
    return next->type == MSGPACK_OBJECT_NIL ? -1 : (long long)next->via.u64;
}

/* order.list over TCP: filters by state, volunteer and creation time, pages
 * that join up through `next`, the fields order.get gives, and refusals. */
Test(server, order_list_filters_and_pages) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    three_orders(c, 300);
    char ids[256];
    cr_assert_eq(list_page(c, "{}", ids, sizeof ids), -1);
    cr_assert_str_eq(ids, "300,301,302");
    list_page(c, "{\"state\":\"offered\"}", ids, sizeof ids);
    cr_assert_str_eq(ids, "300");
    list_page(c, "{\"state\":[\"cancelled\",\"expired\"]}", ids, sizeof ids);
    cr_assert_str_eq(ids, "301,302");
    list_page(c, "{\"volunteer\":1}", ids, sizeof ids);
    cr_assert_str_eq(ids, "300");
    list_page(c, "{\"volunteer\":2}", ids, sizeof ids);
    cr_assert_str_eq(ids, "");
    list_page(c, "{\"created_from\":4102444800000}", ids, sizeof ids); /* 2100 */
    cr_assert_str_eq(ids, "");
    /* a page at a time */
    cr_assert_eq(list_page(c, "{\"limit\":2}", ids, sizeof ids), 301);
    cr_assert_str_eq(ids, "300,301");
    cr_assert_eq(list_page(c, "{\"limit\":2,\"after\":301}", ids, sizeof ids), -1);
    cr_assert_str_eq(ids, "302");
    /* each order as order.get gives it, without slots and offers */
    pd_msg_t m = call_ok(c, "order.list", "{\"state\":\"expired\"}");
    const msgpack_object *o = &pd_client_map_get(&m.result, "orders")->via.array.ptr[0];
    cr_assert_str_eq(map_str(o, "reason"), "no_candidate");
    cr_assert_eq(o->via.map.size, 24);
    /* refusals */
    call_err(c, "order.list", "{\"state\":\"lost\"}", PD_ERR_BAD_ARG);
    call_err(c, "order.list", "{\"state\":[]}", PD_ERR_BAD_ARG);
    call_err(c, "order.list", "{\"state\":[1]}", PD_ERR_BAD_ARG);
    call_err(c, "order.list", "{\"limit\":0}", PD_ERR_BAD_ARG);
    call_err(c, "order.list", "{\"limit\":1001}", PD_ERR_BAD_ARG);
    call_err(c, "order.list", "{\"volunteer\":-1}", PD_ERR_BAD_ARG);
    call_err(c, "order.list", "{\"after\":999}", PD_ERR_NOT_FOUND);
    call_err(c, "order.list", "{\"colour\":\"red\"}", PD_ERR_BAD_ARG);
    pd_client_destroy(c);
}

/* order.purge drops the closed orders closed before a time, keeps the
 * open ones, and refuses anything but exactly one of its two arguments. */
Test(server, order_purge_drops_closed_orders) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    three_orders(c, 400);
    /* nothing closed a day ago */
    pd_msg_t m = call_ok(c, "order.purge", "{\"older_than_days\":1}");
    cr_assert_eq(map_int(&m.result, "purged"), 0);
    /* a hundred years back is before 1970: 0, not a negative time */
    m = call_ok(c, "order.purge", "{\"older_than_days\":36500}");
    cr_assert_eq(map_int(&m.result, "purged"), 0);
    cr_assert_eq(map_int(&m.result, "before_ms"), 0);
    m = call_ok(c, "order.purge", "{\"before_ms\":4102444800000}"); /* 2100 */
    cr_assert_eq(map_int(&m.result, "purged"), 2);
    cr_assert_eq(map_int(&m.result, "before_ms"), 4102444800000LL);
    call_err(c, "order.get", "{\"id\":401}", PD_ERR_NOT_FOUND);
    call_err(c, "order.get", "{\"id\":402}", PD_ERR_NOT_FOUND);
    m = call_ok(c, "order.get", "{\"id\":400}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    /* the ids are free again */
    call_ok(c, "order.create",
            "{\"id\":401,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
            "\"dispatch\":false}");
    call_err(c, "order.purge", "{}", PD_ERR_BAD_ARG);
    call_err(c, "order.purge", "{\"before_ms\":1,\"older_than_days\":1}", PD_ERR_BAD_ARG);
    call_err(c, "order.purge", "{\"before_ms\":-1}", PD_ERR_BAD_ARG);
    call_err(c, "order.purge", "{\"older_than_days\":-1}", PD_ERR_BAD_ARG);
    call_err(c, "order.purge", "{\"older_than_days\":\"week\"}", PD_ERR_BAD_ARG);
    pd_client_destroy(c);
}

Test(server, dispatch_batch) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    call_ok(c, "order.create",
            "{\"id\":200,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"dispatch\":false}");
    call_ok(c, "order.create",
            "{\"id\":201,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
            "\"dispatch\":false}");
    /* apply takes names only: an integer is refused and dispatches nothing */
    call_err(c, "dispatch.batch", "{\"orders\":[200,201],\"apply\":2}", PD_ERR_BAD_ARG);
    call_err(c, "dispatch.batch", "{\"orders\":[200,201],\"apply\":0}", PD_ERR_BAD_ARG);
    pd_msg_t m = call_ok(c, "order.get", "{\"id\":200}");
    cr_assert_str_eq(map_str(&m.result, "state"), "created");
    m = call_ok(c, "dispatch.batch", "{\"orders\":[200,201],\"apply\":\"none\"}");
    cr_assert_eq(map_int(&m.result, "orders"), 2);
    const msgpack_object *opt = pd_client_map_get(&m.result, "optimal");
    cr_assert_eq(map_int(opt, "count"), 2);
    m = call_ok(c, "dispatch.batch", "{\"orders\":[200,201]}");
    cr_assert_eq(map_int(&m.result, "dispatched"), 2);
    m = call_ok(c, "order.get", "{\"id\":200}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    cr_assert_eq(map_int(&pd_client_map_get(&m.result, "offers")->via.array.ptr[0], "volunteer"),
                 2);
    call_err(c, "dispatch.batch", "{\"orders\":[200]}", PD_ERR_ILLEGAL);
    call_err(c, "dispatch.batch", "{\"orders\":[999]}", PD_ERR_NOT_FOUND);
    call_err(c, "dispatch.batch", "{\"orders\":[1],\"policy\":\"rated\"}", PD_ERR_BAD_ARG);
    pd_client_destroy(c);
}

Test(server, pipelining_1000_in_order) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    uint32_t ids[1000];
    size_t len;
    for (int i = 0; i < 1000; i++) {
        const char *method = i % 3 == 0 ? "ping" : i % 3 == 1 ? "match.nearby" : "volunteer.update";
        const char *json = i % 3 == 0   ? ""
                           : i % 3 == 1 ? "{\"lat\":30.6,\"lon\":114.3,\"k\":2}"
                                        : "{\"id\":2,\"lat\":30.603,\"lon\":114.302}";
        const char *p = params_json(json, &len);
        cr_assert_eq(pd_client_send(c, method, p, len, &ids[i]), PD_OK);
    }
    cr_assert_eq(pd_client_flush(c), PD_OK);
    for (int i = 0; i < 1000; i++) {
        pd_msg_t m;
        cr_assert_eq(pd_client_read(c, &m), PD_OK);
        cr_assert_eq(m.type, PD_MSG_RESPONSE);
        cr_assert_eq(m.msgid, ids[i], "response %d has msgid %u, want %u", i, m.msgid, ids[i]);
        cr_assert_eq(m.code, 0);
        if (i % 3 == 1) cr_assert_eq(m.result.via.array.size, 2);
    }
    cr_assert_eq(stat_of(&srv, "counters", "errors"), 0);
    pd_client_destroy(c);
}

Test(server, client_notification_runs_without_reply) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    size_t len;
    const char *p = params_json("{\"id\":2,\"lat\":30.7,\"lon\":114.4}", &len);
    /* [2, "volunteer.update", {...}] -- fire and forget. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_str_with_body(&pk, "volunteer.update", 16);
    msgpack_sbuffer_write(&sb, p, len);
    pd_client_send_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    pd_msg_t m = call_ok(c, "volunteer.get", "{\"id\":2}");
    cr_assert_eq(m.msgid, 3);
    cr_assert_float_eq(map_num(&m.result, "lat"), 30.7, 1e-6);
    pd_client_destroy(c);
}

Test(server, notifications_after_subscribe) {
    pd_client_t *sub = srv_connect(&srv);
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    call_err(sub, "subscribe", "{\"events\":[\"order.nope\"]}", PD_ERR_BAD_ARG);
    pd_msg_t m = call_ok(sub, "subscribe", "{\"events\":[\"order.offered\",\"order.accepted\"]}");
    cr_assert_eq(pd_client_map_get(&m.result, "events")->via.array.size, 2);

    call_ok(c, "order.create",
            "{\"id\":300,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}");
    call_ok(c, "order.accept", "{\"id\":300,\"volunteer\":1}");
    call_ok(c, "order.complete", "{\"id\":300}");

    pd_client_set_timeout(sub, 5000);
    cr_assert_eq(pd_client_read(sub, &m), PD_OK);
    cr_assert_eq(m.type, PD_MSG_NOTIFICATION);
    cr_assert_str_eq(m.method, "order.offered");
    cr_assert_eq(map_int(&m.params, "order"), 300);
    cr_assert_eq(map_int(&m.params, "volunteer"), 1);
    cr_assert(pd_client_map_get(&m.params, "deadline_ms"));
    cr_assert_eq(pd_client_read(sub, &m), PD_OK);
    cr_assert_str_eq(m.method, "order.accepted");
    cr_assert_str_eq(map_str(&m.params, "state"), "accepted");
    /* completed was not subscribed: nothing more is waiting. */
    bool ready = true;
    cr_assert_eq(pd_client_poll(sub, 200, &ready), PD_OK);
    cr_assert_not(ready);

    /* A subscriber's own call: its reply comes before the notifications it caused. */
    call_ok(sub, "subscribe", "{\"events\":[\"*\"]}");
    m = call_ok(sub, "order.create",
                "{\"id\":301,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}");
    cr_assert_eq(pd_client_pending_notifications(sub), 0);
    cr_assert_eq(pd_client_read(sub, &m), PD_OK);
    cr_assert_str_eq(m.method, "order.offered");

    m = call_ok(sub, "unsubscribe", "");
    cr_assert_eq(pd_client_map_get(&m.result, "events")->via.array.size, 0);
    call_ok(c, "order.cancel", "{\"id\":301}");
    cr_assert_eq(pd_client_poll(sub, 200, &ready), PD_OK);
    cr_assert_not(ready);
    pd_client_destroy(c);
    pd_client_destroy(sub);
}

Test(server, stats_counts_methods) {
    pd_client_t *c = srv_connect(&srv);
    seed(c);
    for (int i = 0; i < 10; i++) call_ok(c, "match.nearby", "{\"lat\":30.6,\"lon\":114.3}");
    call_err(c, "match.nearby", "{\"lat\":91,\"lon\":0}", PD_ERR_BAD_COORD);
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *r = &m.result;
    cr_assert_eq(map_int(r, "volunteers"), 2);
    cr_assert_eq(map_int(r, "orders"), 0);
    const msgpack_object *conns = pd_client_map_get(r, "connections");
    cr_assert_eq(map_int(conns, "current"), 1);
    const msgpack_object *mem = pd_client_map_get(r, "memory");
    cr_assert_gt(map_int(mem, "rss_bytes"), 0);
    const msgpack_object *loop = pd_client_map_get(r, "loop");
    cr_assert_geq(map_num(loop, "idle_time_ms"), 0.0);
    const msgpack_object *methods = pd_client_map_get(r, "methods");
    const msgpack_object *nb = pd_client_map_get(methods, "match.nearby");
    cr_assert(nb);
    cr_assert_eq(map_int(nb, "calls"), 11);
    cr_assert_eq(map_int(nb, "errors"), 1);
    const msgpack_object *pct = pd_client_map_get(nb, "latency_percentiles_usec");
    cr_assert(pct);
    double p50 = map_num(pct, "p50"), p99 = map_num(pct, "p99");
    cr_assert(p50 > 0 && p99 >= p50);
    cr_assert(pd_client_map_get(pct, "p99.9"));
    pd_client_destroy(c);
}

Test(server, many_connections_are_served) {
    pd_client_t *cs[50];
    for (int i = 0; i < 50; i++) cs[i] = srv_connect(&srv);
    for (int i = 0; i < 50; i++) {
        pd_msg_t m = call_ok(cs[i], "ping", "");
        cr_assert(obj_str_eq(&m.result, "pong"));
    }
    cr_assert_eq(stat_of(&srv, "connections", "current"), 51);
    for (int i = 0; i < 50; i++) pd_client_destroy(cs[i]);
}

/* ------------------------------------------------------------- metrics */

static srv_t msrv;

static void start_metrics(void) {
    static const char *const args[] = {"--metrics-port", "0", NULL};
    srv_start(&msrv, args);
}

static void stop_metrics(void) {
    srv_stop(&msrv);
}

/* Send req_len bytes of req (NUL bytes included) and read the answer
 * until the server closes. */
static size_t http_send(int port, const char *req, size_t req_len, char *buf, size_t cap) {
    return tcp_exchange(port, req, req_len, buf, cap);
}

static size_t http_get(int port, const char *req, char *buf, size_t cap) {
    return http_send(port, req, strlen(req), buf, cap);
}

Test(metrics, prometheus_text, .init = start_metrics, .fini = stop_metrics, .timeout = 30) {
    cr_assert_gt(msrv.metrics_port, 0);
    pd_client_t *c = srv_connect(&msrv);
    call_ok(c, "ping", "");
    call_ok(c, "match.nearby", "{\"lat\":30.6,\"lon\":114.3}");
    static char buf[1 << 16];
    http_get(msrv.metrics_port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    cr_assert(strncmp(buf, "HTTP/1.1 200 OK", 15) == 0, "%.80s", buf);
    cr_assert(strstr(buf, "text/plain; version=0.0.4"));
    cr_assert(strstr(buf, "paidan_requests_total 2\n"), "%s", buf);
    cr_assert(strstr(buf, "paidan_method_calls_total{method=\"ping\"} 1\n"));
    cr_assert(
        strstr(buf, "paidan_method_latency_seconds{method=\"match.nearby\",quantile=\"0.99\"}"));
    cr_assert(strstr(buf, "paidan_connections 1\n"));
    cr_assert(strstr(buf, "paidan_memory_rss_bytes"));
    cr_assert(strstr(buf, "paidan_orders{state=\"created\"} 0\n"));
    /* a _total is a counter, and the longest stall is there as in stats */
    cr_assert(strstr(buf, "# TYPE paidan_loop_idle_seconds_total counter\n"), "%s", buf);
    cr_assert(strstr(buf, "# TYPE paidan_loop_max_stall_seconds gauge\n"), "%s", buf);
    for (const char *l = strstr(buf, "# TYPE "); l; l = strstr(l + 1, "# TYPE ")) {
        const char *sp = strchr(l + 7, ' ');
        cr_assert(sp);
        bool total = sp - (l + 7) > 6 && strncmp(sp - 6, "_total", 6) == 0;
        if (total) cr_assert(strncmp(sp + 1, "counter", 7) == 0, "%.80s", l);
    }
    http_get(msrv.metrics_port, "GET / HTTP/1.0\r\n\r\n", buf, sizeof(buf));
    cr_assert(strncmp(buf, "HTTP/1.1 404", 12) == 0);
    /* A NUL byte in the head, and a head past 4 KiB, are answered, not
     * left to the 5 s close (which sends nothing). */
    static const char nul_req[] = "GET /metrics\0 HTTP/1.1\r\n\r\n";
    http_send(msrv.metrics_port, nul_req, sizeof nul_req - 1, buf, sizeof(buf));
    cr_assert(strncmp(buf, "HTTP/1.1 400", 12) == 0, "%.80s", buf);
    static char big[4095]; /* the whole limit, so nothing is left unread at the close */
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    http_send(msrv.metrics_port, big, sizeof big, buf, sizeof(buf));
    cr_assert(strncmp(buf, "HTTP/1.1 431", 12) == 0, "%.80s", buf);
    pd_client_destroy(c);
}

/* ------------------------------------------------- config, tick, CSV load */

static char tmp_dir[] = "/tmp/pd_api_testXXXXXX";
/* Whether mkdtemp() has made tmp_dir: not read off its last character, a
 * random one that is 'X' one time in 62 (the next call then gave mkdtemp
 * a name that is no template, and failed). */
static bool tmp_dir_made;

static char tmp_files[4][256];
static int n_tmp_files;

static const char *write_tmp(const char *name, const char *text) {
    if (!tmp_dir_made) {
        cr_assert(mkdtemp(tmp_dir), "mkdtemp %s: %s", tmp_dir, strerror(errno));
        tmp_dir_made = true;
    }
    cr_assert_lt(n_tmp_files, 4);
    char *path = tmp_files[n_tmp_files++];
    snprintf(path, sizeof(tmp_files[0]), "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void remove_tmp(void) {
    for (int i = 0; i < n_tmp_files; i++) unlink(tmp_files[i]);
    n_tmp_files = 0;
    rmdir(tmp_dir);
}

Test(tick, offers_expire_and_notify, .fini = remove_tmp, .timeout = 30) {
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "%s", write_tmp("paidan.ini", "[dispatch]\noffer_timeout_s = 1\n"));
    const char *args[] = {"--config", cfg, "--tick-ms", "50", NULL};
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "subscribe", "{\"events\":[\"*\"]}");
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    pd_msg_t m = call_ok(c, "order.create",
                         "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    const char *want[] = {"order.offered", "order.offer_expired", "order.expired"};
    pd_client_set_timeout(c, 5000);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pd_client_read(c, &m), PD_OK, "%s", pd_client_last_error(c));
        cr_assert_eq(m.type, PD_MSG_NOTIFICATION);
        cr_assert_str_eq(m.method, want[i]);
        cr_assert_eq(map_int(&m.params, "order"), 1);
    }
    cr_assert_str_eq(map_str(&m.params, "reason"), "exhausted");
    m = call_ok(c, "order.get", "{\"id\":1}");
    cr_assert_str_eq(map_str(&m.result, "state"), "expired");
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&m.result, "offers_expired"), 1);
    cr_assert_eq(map_int(&m.result, "load"), 0);
    m = call_ok(c, "stats", "");
    cr_assert_geq(map_int(pd_client_map_get(&m.result, "counters"), "offers_expired"), 1);
    pd_client_destroy(c);
    srv_stop(&s);
}

Test(config, bad_config_refused, .fini = remove_tmp, .timeout = 30) {
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "%s", write_tmp("bad.ini", "[dispatch]\nnope = 1\n"));
    const char *args[] = {"--config", cfg, NULL};
    int status = srv_run_expect_exit(args);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 1);
}

/* The [server] section of --config sets the flags; a flag given on the
 * command line wins over the file (srv_start adds --port 0, over the
 * file's port 1). */
Test(config, server_section_sets_flags_and_flags_win, .fini = remove_tmp, .timeout = 30) {
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "%s",
             write_tmp("srv.ini",
                       "[dispatch]\npolicy = nearest\n"
                       "[server]\nport = 1\nmax_conns = 77\nmax_frame = 4k\ntick_ms = 50\n"
                       "token = s3cret\nhuge_pages = off\n"));
    const char *args[] = {"--config", cfg, "--max-conns", "9", NULL};
    srv_t s;
    srv_start(&s, args);
    cr_assert_neq(s.port, 1);
    pd_client_t *c = srv_connect(&s);
    call_err(c, "config.get", "", PD_ERR_UNAUTHORIZED);
    call_ok(c, "auth", "{\"token\":\"s3cret\"}");
    pd_msg_t m = call_ok(c, "config.get", "");
    cr_assert_str_eq(map_str(&m.result, "policy"), "nearest");
    const msgpack_object *lim = pd_client_map_get(&m.result, "limits");
    cr_assert(lim);
    cr_assert_eq(map_int(lim, "max_conns"), 9);
    cr_assert_eq(map_int(lim, "max_frame"), 4096);
    cr_assert_eq(map_int(lim, "tick_ms"), 50);
    pd_client_destroy(c);
    srv_stop(&s);
}

/* --max-volunteers and --max-orders refuse what would add a volunteer or
 * an order past them (LIMIT), and nothing else; an import stops there and
 * says why; a restart under lower caps keeps what the journal holds. */
Test(config, caps_on_volunteers_and_orders, .fini = remove_tmp, .timeout = 60) {
    char dir[256], csv[256];
    snprintf(csv, sizeof(csv), "%s",
             write_tmp("caps.csv",
                       "id,lat,lon,skills,tags,mode,schedule,capacity,status\n"
                       "3,30.6,114.3,tutoring,0,walk,always,1,online\n"
                       "4,30.6,114.3,tutoring,0,walk,always,1,online\n"
                       "1,30.7,114.3,tutoring,0,car,always,2,online\n"));
    snprintf(dir, sizeof(dir), "%s/data", tmp_dir);
    const char *args[] = {"--max-volunteers", "3", "--max-orders", "1", "--data-dir", dir, NULL};
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    pd_msg_t m = call_ok(c, "config.get", "");
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "limits"), "max_volunteers"), 3);
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "limits"), "max_orders"), 1);
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    call_ok(c, "volunteer.upsert",
            "{\"id\":2,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    char json[512];
    snprintf(json, sizeof(json), "{\"path\":\"%s\"}", csv);
    /* the new id past the cap is skipped; the update after it applies */
    m = call_ok(c, "import", json);
    cr_assert_eq(map_int(&m.result, "imported"), 2);
    cr_assert_eq(map_int(&m.result, "replaced"), 1);
    cr_assert_eq(map_int(&m.result, "skipped"), 1);
    cr_assert(pd_client_map_get(&m.result, "complete")->via.boolean);
    const msgpack_object *errs = pd_client_map_get(&m.result, "errors");
    cr_assert(errs && errs->type == MSGPACK_OBJECT_ARRAY && errs->via.array.size == 1);
    char first[256];
    snprintf(first, sizeof(first), "%.*s", (int)errs->via.array.ptr[0].via.str.size,
             errs->via.array.ptr[0].via.str.ptr);
    cr_assert(strstr(first, "volunteer 4: new, and 3 are kept (--max-volunteers)"), "%s", first);
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_str_eq(map_str(&m.result, "mode"), "car");
    m = call_err(c, "volunteer.upsert",
                 "{\"id\":5,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}", PD_ERR_LIMIT);
    cr_assert(strstr(m.message, "at most 3 volunteers (--max-volunteers)"), "%s", m.message);
    call_err(c, "volunteer.get", "{\"id\":5}", PD_ERR_NOT_FOUND);
    /* a volunteer already kept is not capped */
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.61,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    call_ok(c, "volunteer.update", "{\"id\":2,\"lat\":30.62,\"lon\":114.3}");
    call_ok(c, "order.create",
            "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"dispatch\":false}");
    call_err(c, "order.create", "{\"id\":8,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}",
             PD_ERR_LIMIT);
    /* a closed order counts until purged */
    call_ok(c, "order.cancel", "{\"id\":7}");
    call_err(c, "order.create", "{\"id\":8,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}",
             PD_ERR_LIMIT);
    call_ok(c, "order.purge", "{\"before_ms\":4102444800000}");
    call_ok(c, "order.create",
            "{\"id\":8,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"dispatch\":false}");
    pd_client_destroy(c);
    srv_stop(&s);

    /* under lower caps the journal's volunteers and order all come back */
    const char *lower[] = {"--max-volunteers", "1", "--max-orders", "1", "--data-dir", dir, NULL};
    srv_start(&s, lower);
    c = srv_connect(&s);
    m = call_ok(c, "stats", "");
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "engine"), "volunteers"), 3);
    call_ok(c, "order.get", "{\"id\":8}");
    call_err(c, "volunteer.upsert",
             "{\"id\":6,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}", PD_ERR_LIMIT);
    pd_client_destroy(c);
    srv_stop(&s);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Run a server on a [server] section that must be refused: exit 1, and
 * the log names the file's line and what the key takes. */
static void refused_section(const char *text, const char *want) {
    char cfg[256], log[256];
    snprintf(cfg, sizeof(cfg), "%s", write_tmp("bad.ini", text));
    snprintf(log, sizeof(log), "%s", write_tmp("bad.log", ""));
    const char *args[] = {"--config", cfg, NULL};
    int fd;
    pid_t pid = srv_spawn(args, log, &fd);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(fd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s: status %d", text, status);
    char buf[4096] = "";
    FILE *f = fopen(log, "r");
    cr_assert(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_assert(strstr(buf, want), "%s: log says %s", text, buf);
    for (int i = 0; i < n_tmp_files; i++) unlink(tmp_files[i]);
    n_tmp_files = 0; /* the directory stays for the next case */
}

Test(config, server_section_bad_keys_refused, .fini = remove_tmp, .timeout = 30) {
    refused_section("[server]\nport = 0\nmax_conns = 0\n",
                    "bad.ini:3: bad value '0' for max_conns in [server]: 1..1000000");
    refused_section("[server]\nmax-conns = 5\n", "bad.ini:2: unknown key 'max-conns' in [server]");
    refused_section("[server]\nconfig = other.ini\n", "bad.ini:2: unknown key 'config'");
    refused_section("[server]\nhelp = 1\n", "bad.ini:2: unknown key 'help'");
    refused_section("[server]\nhuge_pages = maybe\n",
                    "bad.ini:2: bad value 'maybe' for huge_pages in [server]: true or false");
    refused_section("[server]\ntick_ms = 1k\n", "bad.ini:2: bad value '1k' for tick_ms");
    refused_section("[server]\ntoken =\n", "bad.ini:2: bad value '' for token");
}

/* --help and --version answer whatever the --config file holds: they do
 * not read it, so a missing or broken file does not stand in their way. */
Test(config, help_and_version_ignore_the_file, .fini = remove_tmp, .timeout = 30) {
    char cfg[256], out[8192];
    snprintf(cfg, sizeof(cfg), "%s", write_tmp("broken.ini", "[server]\nport = x\n"));
    const char *version[] = {"--config", "/nonexistent/paidan.ini", "--version", NULL};
    int status = srv_run_expect_exit_out(version, out, sizeof(out));
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    cr_assert(strstr(out, "paidan-server "), "%s", out);
    const char *help[] = {"--config", cfg, "-h", NULL};
    status = srv_run_expect_exit_out(help, out, sizeof(out));
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    cr_assert(strstr(out, "--max-volunteers"), "%s", out);
}

/* A switch set in the file is undone on the command line with =false
 * (the command line wins, switches too); a bad word is a usage error. */
Test(config, switch_in_file_undone_by_flag, .fini = remove_tmp, .timeout = 30) {
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "%s", write_tmp("sw.ini", "[server]\nhuge_pages = on\n"));
    const char *args[] = {"--config", cfg, "--huge-pages=false", NULL};
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *sv = pd_client_map_get(&m.result, "server");
    cr_assert(sv);
    const msgpack_object *hp = pd_client_map_get(sv, "huge_pages");
    cr_assert(hp && hp->type == MSGPACK_OBJECT_BOOLEAN);
    cr_assert_not(hp->via.boolean, "--huge-pages=false did not win over the file");
    pd_client_destroy(c);
    srv_stop(&s);
    const char *bad[] = {"--truncate-corrupt=maybe", NULL};
    int status = srv_run_expect_exit(bad);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
}

/* Start a server whose stderr goes to log; wait for its listening line. */
static void start_logged(srv_t *s, const char *const *args, const char *log) {
    int fd;
    s->pid = srv_spawn(args, log, &fd);
    s->metrics_port = -1;
    char buf[4096] = "";
    size_t len = 0;
    const char *l = NULL;
    while (!(l = strstr(buf, "listening on ")) || !strchr(l, '\n')) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        cr_assert_gt(n, 0, "paidan-server exited before listening (see %s)", log);
        len += (size_t)n;
        buf[len] = '\0';
    }
    close(fd);
    const char *colon = l;
    for (const char *q = l; *q != '\n'; q++)
        if (*q == ':') colon = q;
    s->port = atoi(colon + 1);
}

Test(config, load_volunteers_csv, .fini = remove_tmp, .timeout = 30) {
    char csv[256], log[256];
    snprintf(csv, sizeof(csv), "%s",
             write_tmp("v.csv",
                       "id,lat,lon,skills,tags,mode,schedule,capacity,status\n"
                       "1,30.6,114.3,tutoring|sanitation,1,bike,always,1,online\n"
                       "2,30.7,114.4,tutoring,0,walk,0:8-12,2,busy\n"
                       "3,95.0,114.4,tutoring,0,walk,always,1,online\n"
                       "1,30.5,114.2,tutoring,0,car,always,3,online\n"));
    snprintf(log, sizeof(log), "%s", write_tmp("server.log", ""));
    const char *args[] = {"--load-volunteers", csv, NULL};
    srv_t s;
    start_logged(&s, args, log);
    pd_client_t *c = srv_connect(&s);
    pd_msg_t m = call_ok(c, "volunteer.get", "{\"id\":2}");
    cr_assert_str_eq(map_str(&m.result, "status"), "busy");
    cr_assert_eq(map_int(&m.result, "capacity"), 2);
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&m.result, "capacity"), 3, "the later line replaced the first");
    m = call_ok(c, "stats", "");
    cr_assert_eq(map_int(&m.result, "volunteers"), 2, "the bad line is skipped");
    pd_client_destroy(c);
    srv_stop(&s);
    /* the replaced volunteer is said, not folded into "loaded 3" */
    FILE *f = fopen(log, "r");
    cr_assert(f);
    static char text[1 << 16];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    cr_assert(strstr(text, ":5: volunteer 1 was already there: replaced"), "log: %s", text);
    cr_assert(strstr(text, "loaded 3 volunteers") && strstr(text, "1 lines skipped, 1 replaced"),
              "log: %s", text);
}

/* ---------------------------------------------------------- busy polling */

/* CPU time (user + system) of a process, in clock ticks. */
static long long cpu_ticks(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    cr_assert(p);
    long long utime = 0, stime = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    cr_assert_eq(
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &utime, &stime), 2);
    return utime + stime;
}

/* --busy-poll-us answers as usual, shows in stats, and stops polling once
 * the requests stop: an idle server does not keep a core busy. */
Test(server, busy_poll_serves_then_sleeps, .timeout = 60) {
    const char *args[] = {"--busy-poll-us", "20000", NULL};
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "volunteer.upsert",
            "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    for (int i = 0; i < 200; i++) call_ok(c, "ping", "");
    pd_msg_t m = call_ok(c, "match.nearby",
                         "{\"lat\":30.601,\"lon\":114.301,\"skills\":[\"tutoring\"],\"k\":3}");
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(m.result.via.array.size, 1);
    m = call_ok(c, "stats", "");
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "server"), "busy_poll_us"), 20000);
    /* 20 ms after the last read the loop sleeps again: over the next
     * second it uses far less than the second a poller would. */
    usleep(100 * 1000);
    long long t0 = cpu_ticks(s.pid);
    usleep(1000 * 1000);
    long long used = cpu_ticks(s.pid) - t0;
    cr_expect_lt(used, sysconf(_SC_CLK_TCK) / 4, "an idle server used %lld ticks in 1 s", used);
    pd_client_destroy(c);
    srv_stop(&s);
}

Test(server, busy_poll_bad_values_refused, .timeout = 30) {
    static const char *const a1[] = {"--busy-poll-us", "-1", NULL};
    static const char *const a2[] = {"--busy-poll-us", "2000000", NULL};
    static const char *const a3[] = {"--busy-poll-us", "5k", NULL};
    int st = srv_run_expect_exit(a1);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    st = srv_run_expect_exit(a2);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    st = srv_run_expect_exit(a3);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

/* ---------------------------------------------------------------- import */

/* A county of n volunteers as CSV in a temporary file (paidan-gen, with
 * only the standing skills the default engine knows, plus `extra`
 * options); the template's X's are mkstemp's. */
static void gen_county(char *path, size_t cap, int n, const char *extra) {
    snprintf(path, cap, "/tmp/pd-county-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[8600];
    snprintf(cmd, sizeof(cmd), "'%s' --volunteers %d --local-skills 0 %s -o '%s'",
             binary_path("data/paidan-gen"), n, extra, path);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static long long stat_int(pd_client_t *c, const char *section, const char *key) {
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *sec = pd_client_map_get(&m.result, section);
    cr_assert(sec, "stats has no %s", section);
    return map_int(sec, key);
}

/* The import runs in slices: another client is answered while it runs
 * (and cannot start a second one), and the importing client gets its
 * reply, then the answers to what it sent after it, in order. */
Test(import, serves_others_and_keeps_order, .timeout = 120) {
    char csv[64];
    gen_county(csv, sizeof(csv), 150000, "");
    srv_t s;
    srv_start(&s, NULL);
    pd_client_t *a = srv_connect(&s), *b = srv_connect(&s);
    char json[128];
    snprintf(json, sizeof(json), "{\"path\":\"%s\"}", csv);
    size_t len;
    const char *p = params_json(json, &len);
    uint32_t id_import, id_stats;
    cr_assert_eq(pd_client_send(a, "import", p, len, &id_import), PD_OK);
    cr_assert_eq(pd_client_send(a, "stats", NULL, 0, &id_stats), PD_OK);
    cr_assert_eq(pd_client_flush(a), PD_OK);

    int answered_meanwhile = 0;
    bool refused_second = false;
    for (;;) {
        bool ready = false;
        cr_assert_eq(pd_client_poll(a, 0, &ready), PD_OK);
        if (ready) break;
        if (!import_running(b)) break;
        answered_meanwhile++;
        if (!refused_second) {
            call_err(b, "import", json, PD_ERR_ILLEGAL);
            refused_second = true;
        }
    }
    cr_assert_gt(answered_meanwhile, 0, "nobody else was answered during the import");
    cr_assert(refused_second);

    pd_client_set_timeout(a, 60000);
    pd_msg_t m;
    cr_assert_eq(pd_client_read_response(a, &m), PD_OK, "%s", pd_client_last_error(a));
    cr_assert_eq(m.msgid, id_import, "the import's reply comes first");
    cr_assert_eq(m.code, 0, "%s", m.message);
    cr_assert_eq(map_int(&m.result, "imported"), 150000);
    cr_assert_eq(map_int(&m.result, "skipped"), 0);
    cr_assert_eq(pd_client_read_response(a, &m), PD_OK, "%s", pd_client_last_error(a));
    cr_assert_eq(m.msgid, id_stats);
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "engine"), "volunteers"), 150000,
                 "the request sent after the import ran after it");
    cr_assert(!import_running(b));
    pd_client_destroy(a);
    pd_client_destroy(b);
    srv_stop(&s);
    unlink(csv);
}

/* A client that goes away does not stop its import; a server stopped in
 * the middle of one stops cleanly. */
Test(import, outlives_its_client_and_stops_with_the_server, .timeout = 120) {
    char csv[64];
    gen_county(csv, sizeof(csv), 100000, "");
    srv_t s;
    srv_start(&s, NULL);
    char json[128];
    snprintf(json, sizeof(json), "{\"path\":\"%s\"}", csv);
    size_t len;
    const char *p = params_json(json, &len);
    pd_client_t *c = srv_connect(&s);
    cr_assert_eq(pd_client_send(c, "import", p, len, NULL), PD_OK);
    cr_assert_eq(pd_client_flush(c), PD_OK);
    pd_client_destroy(c);
    pd_client_t *b = srv_connect(&s);
    long long deadline = now_ms() + 60000;
    while (import_running(b) || stat_int(b, "engine", "volunteers") == 0) {
        cr_assert_lt(now_ms(), deadline, "the import never finished");
        usleep(20000);
    }
    cr_assert_eq(stat_int(b, "engine", "volunteers"), 100000);

    /* again, and stop the server while it runs */
    call_ok(b, "volunteer.remove", "{\"id\":1}");
    c = srv_connect(&s);
    p = params_json(json, &len); /* its buffer is shared with call_ok */
    cr_assert_eq(pd_client_send(c, "import", p, len, NULL), PD_OK);
    cr_assert_eq(pd_client_flush(c), PD_OK);
    while (!import_running(b) && stat_int(b, "engine", "volunteers") < 100000) usleep(1000);
    pd_client_destroy(b);
    srv_stop(&s); /* asserts a clean exit */
    pd_client_destroy(c);
    unlink(csv);
}

/* ----------------------------------------------------------------- tidy */

/* A dense county loaded at start, served with `flag` (or none): answers
 * before the tick, then after the counter `counter` moved off 0 (the
 * tidier or a --huge-pages pass ran, from the tick), must be the same. */
static void answers_unchanged_after(const char *flag, const char *counter) {
    char csv[64];
    gen_county(csv, sizeof(csv), 20000, "--size-km 6");
    const char *args[] = {"--load-volunteers", csv, "--tick-ms", "1500", flag, NULL};
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    static const char *const queries[] = {
        "{\"lat\":30.60,\"lon\":114.30,\"k\":20,\"ignore_schedule\":true}",
        "{\"lat\":30.61,\"lon\":114.31,\"k\":20,\"minutes\":5,\"ignore_schedule\":true}",
        "{\"lat\":30.59,\"lon\":114.29,\"k\":50,\"radius_m\":800,\"ignore_schedule\":true}",
    };
    enum { NQ = sizeof(queries) / sizeof(queries[0]) };
    uint64_t before[NQ][50];
    uint32_t nbefore[NQ];
    cr_assert_eq(stat_int(c, "counters", counter), 0, "%s before the first tick", counter);
    for (int q = 0; q < NQ; q++) {
        pd_msg_t m = call_ok(c, "match.nearby", queries[q]);
        nbefore[q] = m.result.via.array.size;
        cr_assert_gt(nbefore[q], 0);
        for (uint32_t i = 0; i < nbefore[q]; i++)
            before[q][i] = (uint64_t)map_int(&m.result.via.array.ptr[i], "id");
    }
    long long deadline = now_ms() + 30000;
    while (stat_int(c, "counters", counter) == 0) {
        cr_assert_lt(now_ms(), deadline, "%s never moved", counter);
        usleep(50000);
    }
    for (int q = 0; q < NQ; q++) {
        pd_msg_t m = call_ok(c, "match.nearby", queries[q]);
        cr_assert_eq(m.result.via.array.size, nbefore[q]);
        for (uint32_t i = 0; i < nbefore[q]; i++)
            cr_assert_eq((uint64_t)map_int(&m.result.via.array.ptr[i], "id"), before[q][i],
                         "query %d hit %u changed after %s", q, i, counter);
    }
    /* huge pages only when asked for */
    if (!flag) cr_assert_eq(stat_int(c, "counters", "huge_passes"), 0);
    pd_client_destroy(c);
    srv_stop(&s);
    unlink(csv);
}

/* A load leaves cells in arrival order; the tidier sorts them. */
Test(tidy, cells_sorted_after_a_load_answers_unchanged, .timeout = 120) {
    answers_unchanged_after(NULL, "cells_tidied");
}

/* --huge-pages: once the tidier is done, a pass over the cells' pages. */
Test(tidy, huge_pages_pass_after_a_load_answers_unchanged, .timeout = 120) {
    answers_unchanged_after("--huge-pages", "huge_passes");
}
