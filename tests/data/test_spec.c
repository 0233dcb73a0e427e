/* test_spec.c -- generated orders as the engine takes them
 * (pd_gen_order_spec): every field carried over, and an engine accepts
 * the whole stream and refuses what it cannot hold. */
#include <criterion/criterion.h>
#include <string.h>

#include "paidan/data.h"
#include "paidan/engine.h"

Test(spec, fields_carry_over) {
    pd_gen_order_t o;
    memset(&o, 0, sizeof o);
    o.id = 77;
    o.created_ms = 1709481600000;
    o.pos = (pd_latlng_t){30600000, 114300000};
    o.skills = 0x5;
    o.need = 3;
    o.start_ms = 1709485200000;
    o.duration_min = 90;
    o.priority = PD_GEN_PRIORITY_ELEVATED;
    o.budget_min = 30;
    pd_order_spec_t sp;
    memset(&sp, 0xAB, sizeof sp); /* every field must be written */
    pd_gen_order_spec(&o, &sp);
    cr_assert_eq(sp.id, 77);
    cr_assert_eq(sp.at.lat, 30600000);
    cr_assert_eq(sp.at.lon, 114300000);
    cr_assert_eq(sp.skills, 0x5);
    cr_assert_eq(sp.need, 3);
    cr_assert_null(sp.slot_skills);
    cr_assert_eq(sp.n_slots, 0);
    cr_assert_eq(sp.tags, 0);
    cr_assert_eq(sp.start_ms, 1709485200000);
    cr_assert_eq(sp.duration_min, 90);
    cr_assert_eq(sp.budget_s, 1800);
    cr_assert_eq(sp.priority, PD_PRIORITY_ELEVATED);
    cr_assert_eq(sp.mode, PD_OFFER_SEQUENTIAL);
    cr_assert_not(sp.ignore_schedule);
    o.priority = 9; /* not a priority: normal */
    pd_gen_order_spec(&o, &sp);
    cr_assert_eq(sp.priority, PD_PRIORITY_NORMAL);
}

Test(spec, an_engine_takes_the_generated_stream) {
    pd_gen_config_t gc;
    pd_gen_config_init(&gc);
    gc.volunteers = 0;
    gc.orders = 2000;
    pd_gen_t *g = NULL;
    cr_assert_eq(pd_gen_create(&gc, &g), PD_OK);
    pd_engine_config_t ec;
    pd_engine_config_init(&ec);
    pd_engine_t *e = NULL;
    cr_assert_eq(pd_engine_create(&ec, &e), PD_OK);
    pd_gen_order_t o;
    size_t n = 0;
    while (pd_gen_next_order(g, &o)) {
        pd_order_spec_t sp;
        pd_gen_order_spec(&o, &sp);
        pd_err err = pd_engine_order_create(e, &sp, o.created_ms);
        cr_assert_eq(err, PD_OK, "order %llu: %s", (unsigned long long)o.id, pd_strerror(err));
        pd_order_info_t info;
        cr_assert_eq(pd_engine_order_get(e, o.id, &info), PD_OK);
        cr_assert_eq(info.start_ms, o.start_ms);
        cr_assert_eq(info.budget_s, o.budget_min * 60);
        n++;
    }
    cr_assert_eq(n, 2000);
    /* more volunteers than an order holds: converted, and refused */
    o.id = 999999;
    o.need = PD_ORDER_MAX_SLOTS + 1;
    pd_order_spec_t sp;
    pd_gen_order_spec(&o, &sp);
    cr_assert_eq(sp.need, PD_ORDER_MAX_SLOTS + 1);
    cr_assert_eq(pd_engine_order_create(e, &sp, o.created_ms), PD_ERR_BAD_ARG);
    pd_order_info_t info;
    cr_assert_eq(pd_engine_order_get(e, o.id, &info), PD_ERR_NOT_FOUND);
    pd_engine_destroy(e);
    pd_gen_destroy(g);
}
