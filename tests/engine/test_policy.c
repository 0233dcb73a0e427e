/* test_policy.c -- pd_engine_policy_score: the ranking match.nearby uses
 * outside dispatch, checked against the formulas of docs/engine.md and
 * against dispatch's own choice. */
#include <criterion/criterion.h>
#include <string.h>

#include "paidan/engine.h"

static const int64_t T0 = 1709517600000LL; /* Monday 2024-03-04 10:00 +08:00 */

static pd_engine_t *make_engine(void) {
    pd_engine_config_t cfg;
    pd_engine_config_init(&cfg);
    pd_engine_t *e = NULL;
    cr_assert_eq(pd_engine_create(&cfg, &e), PD_OK);
    return e;
}

static void add_volunteer(pd_engine_t *e, uint64_t id, double lat, double lon) {
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = id;
    cr_assert_eq(pd_latlng_from_deg(lat, lon, &v.pos), PD_OK);
    v.skills = 1;
    v.week = pd_week_all();
    v.mode = PD_MODE_WALK;
    v.capacity = 1;
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v, T0), PD_OK);
}

Test(policy, formulas_for_a_fresh_volunteer) {
    pd_engine_t *e = make_engine();
    const pd_engine_config_t *cfg = pd_engine_get_config(e);
    add_volunteer(e, 7, 30.6, 114.3);
    uint32_t slot;
    cr_assert_eq(pd_index_get_slot(pd_engine_get_index(e), 7, &slot), PD_OK);
    double sc;
    cr_assert_eq(pd_engine_policy_score(e, PD_POLICY_NEAREST, slot, T0, 100.0, &sc), PD_OK);
    cr_assert_float_eq(sc, 100.0, 1e-9);
    cr_assert_eq(pd_engine_policy_score(e, PD_POLICY_BALANCED, slot, T0, 100.0, &sc), PD_OK);
    cr_assert_float_eq(sc, 100.0, 1e-9); /* no hours served yet */
    cr_assert_eq(pd_engine_policy_score(e, PD_POLICY_RATED, slot, T0, 100.0, &sc), PD_OK);
    cr_assert_float_eq(sc, 100.0 + cfg->rated_weight_s * (5.0 - cfg->rated_neutral), 1e-9);
    cr_assert_eq(pd_engine_policy_score(e, (pd_policy)9, slot, T0, 1, &sc), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_policy_score(e, PD_POLICY_NEAREST, 1u << 30, T0, 1, &sc),
                 PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_volunteer_remove(e, 7, T0), PD_OK);
    cr_assert_eq(pd_engine_policy_score(e, PD_POLICY_NEAREST, slot, T0, 1, &sc), PD_ERR_NOT_FOUND);
    pd_engine_destroy(e);
}

Test(policy, balanced_counts_the_week_and_agrees_with_dispatch) {
    pd_engine_t *e = make_engine();
    const pd_engine_config_t *cfg = pd_engine_get_config(e);
    /* two walkers at the same spot; volunteer 1 serves 3 hours first */
    add_volunteer(e, 1, 30.6, 114.3);
    add_volunteer(e, 2, 30.6, 114.3);
    pd_order_spec_t sp;
    memset(&sp, 0, sizeof sp);
    sp.id = 100;
    cr_assert_eq(pd_latlng_from_deg(30.601, 114.3, &sp.at), PD_OK);
    sp.skills = 1;
    sp.need = 1;
    sp.start_ms = T0;
    sp.duration_min = 180;
    cr_assert_eq(pd_engine_order_create(e, &sp, T0), PD_OK);
    pd_order_state st;
    cr_assert_eq(pd_engine_order_dispatch(e, 100, T0, &st), PD_OK);
    pd_offer_t off;
    size_t n = 0;
    cr_assert_eq(pd_engine_order_offers(e, 100, &off, 1, &n), PD_OK);
    cr_assert_eq(n, 1);
    uint64_t first = off.volunteer_id, other = first == 1 ? 2 : 1;
    cr_assert_eq(pd_engine_order_accept(e, 100, first, T0 + 1000), PD_OK);
    cr_assert_eq(pd_engine_order_complete(e, 100, 180, T0 + 4 * 3600000LL), PD_OK);

    int64_t now = T0 + 5 * 3600000LL;
    uint32_t s_first, s_other;
    cr_assert_eq(pd_index_get_slot(pd_engine_get_index(e), first, &s_first), PD_OK);
    cr_assert_eq(pd_index_get_slot(pd_engine_get_index(e), other, &s_other), PD_OK);
    double a, b;
    cr_assert_eq(pd_engine_policy_score(e, PD_POLICY_BALANCED, s_first, now, 50.0, &a), PD_OK);
    cr_assert_eq(pd_engine_policy_score(e, PD_POLICY_BALANCED, s_other, now, 50.0, &b), PD_OK);
    double h = 3.0 < cfg->balanced_cap_hours ? 3.0 : cfg->balanced_cap_hours;
    cr_assert_float_eq(a, 50.0 + cfg->balanced_weight_s_per_hour * h, 1e-6);
    cr_assert_float_eq(b, 50.0, 1e-9);
    /* eight days later the week has forgotten those hours */
    cr_assert_eq(
        pd_engine_policy_score(e, PD_POLICY_BALANCED, s_first, now + 8 * 86400000LL, 50.0, &a),
        PD_OK);
    cr_assert_float_eq(a, 50.0, 1e-9);

    /* dispatch under the default (balanced) policy now prefers the other */
    sp.id = 101;
    sp.start_ms = now + 3600000LL;
    sp.duration_min = 60;
    cr_assert_eq(pd_engine_order_create(e, &sp, now), PD_OK);
    cr_assert_eq(pd_engine_order_dispatch(e, 101, now, &st), PD_OK);
    cr_assert_eq(pd_engine_order_offers(e, 101, &off, 1, &n), PD_OK);
    if (cfg->policy == PD_POLICY_BALANCED) cr_assert_eq(off.volunteer_id, other);
    pd_engine_destroy(e);
}

/* Room reserved ahead: refused beyond the limit, then taken; the engine
 * holds the same volunteers and stays valid, and inserts after it work. */
Test(policy, reserve_room_ahead) {
    pd_engine_t *e = make_engine();
    add_volunteer(e, 1, 30.6, 114.3);
    uint64_t before = pd_engine_digest(e);
    cr_assert_eq(pd_engine_reserve(e, (size_t)1 << 32), PD_ERR_LIMIT);
    cr_assert_eq(pd_engine_reserve(e, 100000), PD_OK);
    cr_assert_eq(pd_engine_digest(e), before);
    const char *why = NULL;
    cr_assert(pd_engine_validate(e, &why), "%s", why ? why : "?");
    for (uint64_t id = 2; id < 3000; id++)
        add_volunteer(e, id, 30.6 + (double)(id % 50) * 1e-3, 114.3);
    cr_assert_eq(pd_engine_volunteer_count(e), 2999);
    cr_assert(pd_engine_validate(e, &why), "%s", why ? why : "?");
    pd_engine_destroy(e);
}
