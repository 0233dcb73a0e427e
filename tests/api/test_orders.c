/* test_orders.c -- the order methods as a dispatch platform's back office
 * reads and manages them over TCP: order.create's arguments, the order
 * view in each state, order.dispatch's refusals, order.list's cursor,
 * order.purge and the reuse of purged ids, ids above 2^53 kept whole.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "helper.h"

static srv_t srv;

static void start_plain(void) {
    srv_start(&srv, NULL);
}

static void stop(void) {
    srv_stop(&srv);
}

TestSuite(orders, .init = start_plain, .fini = stop, .timeout = 30);

/* A created order never dispatched and then cancelled is refused by
 * order.dispatch with its state, not with "already dispatched". */
Test(orders, dispatch_refusal_names_the_state) {
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "order.create",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"dispatch\":false}");
    call_ok(c, "order.cancel", "{\"id\":1}");
    pd_msg_t m = call_err(c, "order.dispatch", "{\"id\":1}", PD_ERR_ILLEGAL);
    cr_assert_not_null(strstr(m.message, "cancelled"), "%s", m.message);
    cr_assert_null(strstr(m.message, "already dispatched"), "%s", m.message);
    /* an order dispatched already: its state too */
    call_ok(c, "volunteer.upsert",
            "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    call_ok(c, "order.create",
            "{\"id\":2,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
            "\"ignore_schedule\":true}");
    m = call_err(c, "order.dispatch", "{\"id\":2}", PD_ERR_ILLEGAL);
    cr_assert_not_null(strstr(m.message, "offered"), "%s", m.message);
    call_err(c, "order.dispatch", "{\"id\":3}", PD_ERR_NOT_FOUND);
    pd_client_destroy(c);
}

/* A bad key or need inside one of `slots` is named as such, not as if it
 * were a top-level argument. */
Test(orders, slot_errors_say_where) {
    pd_client_t *c = srv_connect(&srv);
    pd_msg_t m = call_err(c, "order.create",
                          "{\"id\":1,\"lat\":30.6,\"lon\":114.3,"
                          "\"slots\":[{\"skills\":[\"tutoring\"],\"colour\":1}]}",
                          PD_ERR_BAD_ARG);
    cr_assert_str_eq(m.message, "unknown argument 'colour' in 'slots'");
    m = call_err(c, "order.create",
                 "{\"id\":1,\"lat\":30.6,\"lon\":114.3,"
                 "\"slots\":[{\"skills\":[\"tutoring\"],\"need\":0}]}",
                 PD_ERR_BAD_ARG);
    cr_assert_not_null(strstr(m.message, "'slots[].need'"), "%s", m.message);
    /* the top level's own messages are unchanged */
    m = call_err(c, "order.create", "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"colour\":1}",
                 PD_ERR_BAD_ARG);
    cr_assert_str_eq(m.message, "unknown argument 'colour'");
    m = call_err(c, "order.create",
                 "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"need\":33}", PD_ERR_BAD_ARG);
    cr_assert_str_eq(m.message, "'need' must be an integer in 1..32");
    /* 32 across slots is the most; nothing was created by the refusals */
    call_err(c, "order.create",
             "{\"id\":1,\"lat\":30.6,\"lon\":114.3,"
             "\"slots\":[{\"skills\":[],\"need\":32},{\"skills\":\"tutoring\"}]}",
             PD_ERR_BAD_ARG);
    m = call_ok(c, "order.create",
                "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"dispatch\":false,"
                "\"slots\":[{\"skills\":[],\"need\":31},{\"skills\":\"tutoring\"}]}");
    cr_assert_eq(map_int(&m.result, "need"), 32);
    pd_client_destroy(c);
}

/* Order and volunteer ids above 2^53 come back as the same integers. */
Test(orders, ids_above_2_53_kept_whole) {
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "volunteer.upsert",
            "{\"id\":18446744073709551615,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    pd_msg_t m = call_ok(c, "order.create",
                         "{\"id\":9007199254740993,\"lat\":30.6,\"lon\":114.3,"
                         "\"skills\":\"tutoring\",\"ignore_schedule\":true}");
    const msgpack_object *id = pd_client_map_get(&m.result, "id");
    cr_assert_eq(id->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(id->via.u64, 9007199254740993ULL);
    const msgpack_object *offers = pd_client_map_get(&m.result, "offers");
    cr_assert_eq(offers->via.array.size, 1);
    const msgpack_object *v = pd_client_map_get(&offers->via.array.ptr[0], "volunteer");
    cr_assert_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(v->via.u64, UINT64_MAX);
    m = call_ok(c, "order.list", "{\"volunteer\":18446744073709551615}");
    const msgpack_object *orders = pd_client_map_get(&m.result, "orders");
    cr_assert_eq(orders->via.array.size, 1);
    cr_assert_eq(pd_client_map_get(&orders->via.array.ptr[0], "id")->via.u64, 9007199254740993ULL);
    pd_client_destroy(c);
}

/* The view through the life cycle: the times that have not happened are
 * 0, next_deadline_ms nil without a live offer, and the volunteer record
 * after the completion and the rating. */
Test(orders, view_through_the_life_cycle) {
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "volunteer.upsert",
            "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}");
    pd_msg_t m = call_ok(c, "order.create",
                         "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
                         "\"ignore_schedule\":true,\"dispatch\":false}");
    cr_assert_str_eq(map_str(&m.result, "state"), "created");
    cr_assert_eq(map_int(&m.result, "dispatched_ms"), 0);
    cr_assert_eq(pd_client_map_get(&m.result, "next_deadline_ms")->type, MSGPACK_OBJECT_NIL);
    m = call_ok(c, "order.dispatch", "{\"id\":1}");
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    cr_assert_gt(map_int(&m.result, "dispatched_ms"), 0);
    cr_assert_gt(map_int(&m.result, "next_deadline_ms"), 0);
    cr_assert_eq(map_int(&m.result, "accepted_ms"), 0);
    call_ok(c, "order.accept", "{\"id\":1,\"volunteer\":7}");
    m = call_ok(c, "order.complete", "{\"id\":1,\"minutes_served\":90}");
    cr_assert_str_eq(map_str(&m.result, "state"), "completed");
    cr_assert_gt(map_int(&m.result, "closed_ms"), 0);
    cr_assert_eq(map_int(&m.result, "rated_ms"), 0);
    call_err(c, "order.candidates", "{\"id\":1}", PD_ERR_ILLEGAL);
    m = call_ok(c, "order.rate", "{\"id\":1,\"score\":4}");
    cr_assert_eq(map_int(&m.result, "rating"), 4);
    cr_assert_gt(map_int(&m.result, "rated_ms"), 0);
    m = call_ok(c, "volunteer.get", "{\"id\":7}");
    cr_assert_eq(map_int(&m.result, "minutes_total"), 90);
    cr_assert_float_eq(map_num(&m.result, "hours"), 1.5, 1e-9);
    cr_assert_float_eq(map_num(&m.result, "rating"), 4.0, 1e-9);
    cr_assert_eq(map_int(&m.result, "rating_count"), 1);
    cr_assert_eq(map_int(&m.result, "orders_completed"), 1);
    cr_assert_eq(m.result.via.map.size, 27);
    cr_assert_eq(map_int(&m.result, "releases"), 0);
    call_err(c, "volunteer.get", "{\"id\":0}", PD_ERR_NOT_FOUND);
    call_err(c, "volunteer.get", "{\"id\":18446744073709551615}", PD_ERR_NOT_FOUND);
    pd_client_destroy(c);
}

/* The ids of an order.list page, "a,b,c"; returns its next (-1: nil). */
static long long page(pd_client_t *c, const char *json, char *ids, size_t cap) {
    pd_msg_t m = call_ok(c, "order.list", json);
    const msgpack_object *orders = pd_client_map_get(&m.result, "orders");
    ids[0] = 0;
    for (uint32_t i = 0; i < orders->via.array.size; i++) {
        size_t len = strlen(ids);
        snprintf(ids + len, cap - len, "%s%lld", i ? "," : "",
                 map_int(&orders->via.array.ptr[i], "id"));
    }
    const msgpack_object *next = pd_client_map_get(&m.result, "next");
    return next->type == MSGPACK_OBJECT_NIL ? -1 : (long long)next->via.u64;
}

static void create_held(pd_client_t *c, int id) {
    char j[160];
    snprintf(j, sizeof j,
             "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"dispatch\":false}",
             id);
    call_ok(c, "order.create", j);
}

/* A walk a page at a time: orders created meanwhile come at its end, none
 * comes twice; a purge is idempotent, frees the ids, and a cursor naming
 * a purged order is refused rather than followed. */
Test(orders, list_walk_and_purge) {
    pd_client_t *c = srv_connect(&srv);
    char ids[256];
    for (int id = 1; id <= 4; id++) create_held(c, id);
    call_ok(c, "order.cancel", "{\"id\":2}");
    cr_assert_eq(page(c, "{\"limit\":2}", ids, sizeof ids), 2);
    cr_assert_str_eq(ids, "1,2");
    create_held(c, 5);
    call_ok(c, "order.cancel", "{\"id\":3}");
    cr_assert_eq(page(c, "{\"limit\":2,\"after\":2}", ids, sizeof ids), 4);
    cr_assert_str_eq(ids, "3,4");
    cr_assert_eq(page(c, "{\"limit\":2,\"after\":4}", ids, sizeof ids), -1);
    cr_assert_str_eq(ids, "5");
    /* filters combined */
    cr_assert_eq(page(c, "{\"state\":[\"cancelled\"],\"created_from\":1}", ids, sizeof ids), -1);
    cr_assert_str_eq(ids, "2,3");
    /* purge: the closed ones only, then nothing more */
    pd_msg_t m = call_ok(c, "order.purge", "{\"before_ms\":4102444800000}");
    cr_assert_eq(map_int(&m.result, "purged"), 2);
    m = call_ok(c, "order.purge", "{\"before_ms\":4102444800000}");
    cr_assert_eq(map_int(&m.result, "purged"), 0);
    call_err(c, "order.list", "{\"after\":2}", PD_ERR_NOT_FOUND);
    cr_assert_eq(page(c, "{}", ids, sizeof ids), -1);
    cr_assert_str_eq(ids, "1,4,5");
    /* a reused id is a new order, the newest */
    create_held(c, 2);
    m = call_ok(c, "order.get", "{\"id\":2}");
    cr_assert_str_eq(map_str(&m.result, "state"), "created");
    cr_assert_str_eq(map_str(&m.result, "reason"), "none");
    cr_assert_eq(page(c, "{}", ids, sizeof ids), -1);
    cr_assert_str_eq(ids, "1,4,5,2");
    pd_client_destroy(c);
}
