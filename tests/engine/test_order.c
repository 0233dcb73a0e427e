/* test_order.c -- the order state machine: every legal transition, every
 * illegal one (which must change nothing: same digest), re-dispatch after
 * decline and after expiry, grab races, team orders, volunteer removal,
 * capacity holding, events, records and purging.
 */
#include <criterion/criterion.h>

#include "engine_test.h"

#define SAN (1ull << 6) /* sanitation */
#define MED (1ull << 3) /* medical-fitness */

static pd_engine_config_t nearest_cfg(void) {
    pd_engine_config_t c;
    pd_engine_config_init(&c);
    c.policy = PD_POLICY_NEAREST;
    return c;
}

/* Three sanitation volunteers at 100, 200, 300 m: 1, 2, 3. */
static pd_engine_t *three(void) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 200, SAN, 1);
    add_vol(e, 3, 300, SAN, 1);
    return e;
}

static void ok_create(pd_engine_t *e, uint64_t id) {
    pd_order_spec_t s = mk_order(id, SAN);
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_OK);
}

Test(order, lifecycle_single) {
    pd_engine_t *e = three();
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    ok_create(e, 10);
    cr_assert_eq(order_state(e, 10), PD_ORDER_CREATED);
    pd_order_state st;
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_OFFERED);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 1);
    cr_assert_eq(vol_load(e, 1), 1);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].type, PD_EVENT_OFFERED);
    cr_assert_eq(log.ev[0].volunteer_id, 1);
    cr_assert_eq(log.ev[0].deadline_ms, T0 + 120000);

    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 1000), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_ACCEPTED);
    cr_assert_eq(vol_load(e, 1), 1);
    cr_assert_eq(log.ev[1].type, PD_EVENT_ACCEPTED);
    cr_assert_eq(log.ev[1].order_state, PD_ORDER_ACCEPTED);

    cr_assert_eq(pd_engine_order_complete(e, 10, -1, T0 + 90 * MIN_MS), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_COMPLETED);
    cr_assert_eq(vol_load(e, 1), 0);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0 + 90 * MIN_MS, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_total, 60);
    cr_assert_eq(vi.rec.minutes_7d, 60);
    cr_assert_eq(vi.rec.orders_completed, 1);
    cr_assert_eq(vi.rec.offers_received, 1);
    cr_assert_eq(vi.rec.offers_accepted, 1);

    cr_assert_eq(pd_engine_order_rate(e, 10, 4, T0 + 100 * MIN_MS), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_RATED);
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.rating_count, 1);
    cr_assert_float_eq(vi.rec.rating_mean, 4.0, 1e-9);
    cr_assert_float_eq(vi.rec.points, 10.0 * 1 + 1.0 * 4, 1e-9);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.rating, 4);
    cr_assert_eq(oi.minutes_served, 60);
    cr_assert_eq(oi.accepted_ms, T0 + 1000);
    cr_assert_eq(oi.closed_ms, T0 + 90 * MIN_MS);
    cr_assert_eq(log.ev[log.n - 2].type, PD_EVENT_COMPLETED);
    cr_assert_eq(log.ev[log.n - 2].minutes, 60);
    cr_assert_eq(log.ev[log.n - 1].type, PD_EVENT_RATED);
    cr_assert_eq(log.ev[log.n - 1].rating, 4);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ------------------------------------------------ the transition table */

enum { C_DISPATCH, C_ACCEPT, C_DECLINE, C_CANCEL, C_COMPLETE, C_RATE, C_RELEASE, C__COUNT };
static const char *cmd_name[C__COUNT] = {"dispatch", "accept", "decline", "cancel",
                                         "complete", "rate",   "release"};

static pd_err run_cmd(pd_engine_t *e, int c, uint64_t order, uint64_t vol, int64_t now) {
    switch (c) {
        case C_DISPATCH:
            return pd_engine_order_dispatch(e, order, now, NULL);
        case C_ACCEPT:
            return pd_engine_order_accept(e, order, vol, now);
        case C_DECLINE:
            return pd_engine_order_decline(e, order, vol, now);
        case C_CANCEL:
            return pd_engine_order_cancel(e, order, now);
        case C_COMPLETE:
            return pd_engine_order_complete(e, order, -1, now);
        case C_RELEASE:
            return pd_engine_order_release(e, order, vol, now);
        default:
            return pd_engine_order_rate(e, order, 5, now);
    }
}

/* An engine with order 10 in state s (the volunteer offered is 1). Only one
 * volunteer exists, so a decline expires the order. */
static pd_engine_t *in_state(pd_order_state s) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 150, MED, 1);
    ok_create(e, 10);
    if (s == PD_ORDER_CREATED) return e;
    if (s == PD_ORDER_CANCELLED) {
        cr_assert_eq(pd_engine_order_cancel(e, 10, T0), PD_OK);
        return e;
    }
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    if (s == PD_ORDER_OFFERED) return e;
    if (s == PD_ORDER_EXPIRED) {
        cr_assert_eq(pd_engine_order_decline(e, 10, 1, T0), PD_OK);
        return e;
    }
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0), PD_OK);
    if (s == PD_ORDER_ACCEPTED) return e;
    cr_assert_eq(pd_engine_order_complete(e, 10, -1, T0 + 60 * MIN_MS), PD_OK);
    if (s == PD_ORDER_COMPLETED) return e;
    cr_assert_eq(pd_engine_order_rate(e, 10, 3, T0 + 61 * MIN_MS), PD_OK);
    return e;
}

/* legal[state][cmd]: 1 = allowed (with volunteer 1 where one is needed). */
static const int legal[PD_ORDER__COUNT][C__COUNT] = {
    [PD_ORDER_CREATED] = {1, 0, 0, 1, 0, 0, 0},  [PD_ORDER_OFFERED] = {0, 1, 1, 1, 0, 0, 0},
    [PD_ORDER_ACCEPTED] = {0, 0, 0, 1, 1, 0, 1}, [PD_ORDER_COMPLETED] = {0, 0, 0, 0, 0, 1, 0},
    [PD_ORDER_RATED] = {0, 0, 0, 0, 0, 0, 0},    [PD_ORDER_CANCELLED] = {0, 0, 0, 0, 0, 0, 0},
    [PD_ORDER_EXPIRED] = {0, 0, 0, 0, 0, 0, 0},
};

/* Where a legal command leads from each state. */
static pd_order_state after(pd_order_state s, int c) {
    switch (c) {
        case C_DISPATCH:
            return PD_ORDER_OFFERED;
        case C_ACCEPT:
            return PD_ORDER_ACCEPTED;
        case C_DECLINE:
        case C_RELEASE:
            return PD_ORDER_EXPIRED; /* nobody else has the skill */
        case C_CANCEL:
            return PD_ORDER_CANCELLED;
        case C_COMPLETE:
            return PD_ORDER_COMPLETED;
        default:
            (void)s;
            return PD_ORDER_RATED;
    }
}

Test(order, transition_table) {
    for (int s = 0; s < PD_ORDER__COUNT; s++) {
        for (int c = 0; c < C__COUNT; c++) {
            pd_engine_t *e = in_state((pd_order_state)s);
            check_valid(e, 0, s);
            uint64_t before = pd_engine_digest(e);
            pd_engine_stats_t st0, st1;
            pd_engine_get_stats(e, &st0);
            pd_err err = run_cmd(e, c, 10, 1, T0 + 62 * MIN_MS / 60);
            if (legal[s][c]) {
                cr_assert_eq(err, PD_OK, "%s from %s: %s", cmd_name[c],
                             pd_order_state_name((pd_order_state)s), pd_err_name(err));
                cr_assert_eq(order_state(e, 10), after((pd_order_state)s, c), "%s from %s",
                             cmd_name[c], pd_order_state_name((pd_order_state)s));
                cr_assert_neq(pd_engine_digest(e), before);
            } else {
                cr_assert_eq(err, PD_ERR_ILLEGAL, "%s from %s: %s", cmd_name[c],
                             pd_order_state_name((pd_order_state)s), pd_err_name(err));
                cr_assert_eq(pd_engine_digest(e), before, "%s from %s changed the state",
                             cmd_name[c], pd_order_state_name((pd_order_state)s));
                pd_engine_get_stats(e, &st1);
                cr_assert_eq(st1.events, st0.events);
            }
            check_valid(e, 0, s * 10 + c);
            pd_engine_destroy(e);
        }
    }
}

Test(order, accept_decline_by_the_wrong_volunteer) {
    pd_engine_t *e = in_state(PD_ORDER_OFFERED);
    uint64_t d = pd_engine_digest(e);
    cr_assert_eq(pd_engine_order_accept(e, 10, 2, T0), PD_ERR_ILLEGAL); /* never offered */
    cr_assert_eq(pd_engine_order_decline(e, 10, 2, T0), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_order_accept(e, 10, 99, T0), PD_ERR_NOT_FOUND); /* unknown */
    cr_assert_eq(pd_engine_order_accept(e, 11, 1, T0), PD_ERR_NOT_FOUND);
    /* At the deadline the offer is dead even before a tick. */
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 120000), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_order_decline(e, 10, 1, T0 + 120001), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_digest(e), d);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 119999), PD_OK);
    pd_engine_destroy(e);
}

Test(order, not_found_exists_bad_args) {
    pd_engine_t *e = in_state(PD_ORDER_COMPLETED);
    uint64_t d = pd_engine_digest(e);
    cr_assert_eq(pd_engine_order_dispatch(e, 77, T0, NULL), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_engine_order_cancel(e, 77, T0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_engine_order_complete(e, 77, -1, T0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_engine_order_rate(e, 77, 3, T0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_engine_order_rate(e, 10, 0, T0), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_order_rate(e, 10, 6, T0), PD_ERR_BAD_ARG);
    pd_order_spec_t s = mk_order(10, SAN);
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_ERR_EXISTS);
    s.id = 11;
    s.need = PD_ORDER_MAX_SLOTS + 1;
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_ERR_BAD_ARG);
    s.need = 1;
    s.skills = 1ull << 40;
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_ERR_UNKNOWN_SKILL);
    s.skills = SAN;
    s.at.lat = 91000000;
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_ERR_BAD_COORD);
    s.at = north_m(0);
    s.priority = 7;
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_ERR_BAD_ARG);
    s.priority = 0;
    s.duration_min = -1;
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_digest(e), d);
    pd_engine_destroy(e);

    e = in_state(PD_ORDER_ACCEPTED);
    cr_assert_eq(pd_engine_order_complete(e, 10, -2, T0), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_order_complete(e, 10, PD_MAX_MINUTES_SERVED + 1, T0), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_order_complete(e, 10, 45, T0), PD_OK);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_total, 45);
    pd_engine_destroy(e);
}

/* pd_engine_order_offers_from, window by window, gives exactly what
 * pd_engine_order_offers copies at once (an order declined by 40
 * volunteers in turn, so 40 offers): every window size, a start past the
 * end, an unknown order. */
Test(order, offers_by_window_match_the_whole) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    for (uint64_t v = 1; v <= 41; v++) add_vol(e, v, 20.0 * (double)v, SAN, 1);
    ok_create(e, 10);
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    for (uint64_t v = 1; v <= 40; v++)
        cr_assert_eq(pd_engine_order_decline(e, 10, v, T0 + (int64_t)v), PD_OK);
    pd_offer_t all[64];
    size_t n_all = 0;
    cr_assert_eq(pd_engine_order_offers(e, 10, all, 64, &n_all), PD_OK);
    cr_assert_eq(n_all, 41);
    for (size_t w = 1; w <= 45; w++) {
        pd_offer_t win[45];
        size_t at = 0, n = 0, total = 0;
        do {
            cr_assert_eq(pd_engine_order_offers_from(e, 10, at, win, w, &n, &total), PD_OK);
            cr_assert_eq(total, n_all);
            cr_assert_eq(n, at + w <= n_all ? w : n_all - at, "window %zu at %zu: %zu", w, at, n);
            for (size_t i = 0; i < n; i++) {
                cr_assert_eq(win[i].volunteer_id, all[at + i].volunteer_id);
                cr_assert_eq(win[i].state, all[at + i].state);
                cr_assert_eq(win[i].offered_ms, all[at + i].offered_ms);
                cr_assert_eq(win[i].deadline_ms, all[at + i].deadline_ms);
            }
            at += n;
        } while (at < n_all);
    }
    size_t n = 7, total = 0;
    pd_offer_t one;
    cr_assert_eq(pd_engine_order_offers_from(e, 10, 41, &one, 1, &n, &total), PD_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(total, 41);
    cr_assert_eq(pd_engine_order_offers_from(e, 99, 0, &one, 1, &n, &total), PD_ERR_NOT_FOUND);
    pd_engine_destroy(e);
}

/* ------------------------------------------------------------ re-dispatch */

Test(order, redispatch_after_decline) {
    pd_engine_t *e = three();
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    ok_create(e, 10);
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    uint64_t live[4];
    for (uint64_t v = 1; v <= 3; v++) {
        cr_assert_eq(live_offers(e, 10, live, 4), 1);
        cr_assert_eq(live[0], v, "offer %llu went to %llu", (unsigned long long)v,
                     (unsigned long long)live[0]);
        cr_assert_eq(vol_load(e, v), 1);
        cr_assert_eq(pd_engine_order_decline(e, 10, v, T0 + (int64_t)v * 1000), PD_OK);
        cr_assert_eq(vol_load(e, v), 0);
        check_valid(e, 0, (long)v);
    }
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.state, PD_ORDER_EXPIRED);
    cr_assert_eq(oi.reason, PD_REASON_EXHAUSTED);
    cr_assert_eq(oi.n_offers_total, 3);
    cr_assert_eq(evlog_count(&log, PD_EVENT_OFFERED), 3);
    cr_assert_eq(evlog_count(&log, PD_EVENT_DECLINED), 3);
    cr_assert_eq(evlog_count(&log, PD_EVENT_EXPIRED), 1);
    cr_assert_eq(log.ev[log.n - 1].type, PD_EVENT_EXPIRED);
    cr_assert_eq(log.ev[log.n - 1].reason, PD_REASON_EXHAUSTED);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 2, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.offers_declined, 1);
    pd_engine_destroy(e);
}

Test(order, redispatch_after_expiry_by_tick) {
    pd_engine_t *e = three();
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    ok_create(e, 10);
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    int64_t dl;
    cr_assert_eq(pd_engine_next_deadline(e, &dl), PD_OK);
    cr_assert_eq(dl, T0 + 120000);
    size_t n = 9;
    uint64_t d = pd_engine_digest(e);
    cr_assert_eq(pd_engine_tick(e, T0 + 119999, &n), PD_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(pd_engine_digest(e), d);
    cr_assert_eq(pd_engine_tick(e, T0 + 120000, &n), PD_OK);
    cr_assert_eq(n, 1);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 2);
    cr_assert_eq(vol_load(e, 1), 0);
    cr_assert_eq(vol_load(e, 2), 1);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.offers_expired, 1);
    /* The late volunteer cannot come back. */
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 120001), PD_ERR_ILLEGAL);
    /* Two more expiries exhaust the order. */
    cr_assert_eq(pd_engine_tick(e, T0 + 240000, &n), PD_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(pd_engine_tick(e, T0 + 360000, &n), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_EXPIRED);
    cr_assert_eq(pd_engine_next_deadline(e, &dl), PD_ERR_NOT_FOUND);
    cr_assert_eq(evlog_count(&log, PD_EVENT_OFFER_EXPIRED), 3);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* Volunteers 1 (100 m) and 2 (150 m), one slot each; a normal order 10
 * offered to 1, then an emergency order 11 offered to 2. */
static void normal_then_emergency(pd_engine_t *e) {
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 150, SAN, 1);
    pd_order_spec_t a = mk_order(10, SAN), b = mk_order(11, SAN);
    b.priority = PD_PRIORITY_EMERGENCY;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &a, T0, NULL), PD_OK);
    cr_assert_eq(pd_engine_order_create_dispatch(e, &b, T0, NULL), PD_OK);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 1);
    cr_assert_eq(live_offers(e, 11, live, 4), 1);
    cr_assert_eq(live[0], 2);
}

Test(order, tick_serves_emergency_first) {
    /* Two orders time out together; only one volunteer is left for both;
     * the emergency order, created second, must get them. */
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 3, 400, SAN, 1);
    normal_then_emergency(e);
    uint64_t live[4];
    /* 1 and 2 go offline (their offers stand) and so will not come back. */
    pd_volunteer_patch_t off = {.fields = PD_VF_STATUS, .status = PD_STATUS_OFFLINE};
    cr_assert_eq(pd_engine_volunteer_update(e, 1, &off, T0 + 1), PD_OK);
    cr_assert_eq(pd_engine_volunteer_update(e, 2, &off, T0 + 1), PD_OK);
    cr_assert_eq(vol_load(e, 1), 1);
    cr_assert_eq(pd_engine_tick(e, T0 + 120000, NULL), PD_OK);
    cr_assert_eq(live_offers(e, 11, live, 4), 1);
    cr_assert_eq(live[0], 3);
    cr_assert_eq(order_state(e, 10), PD_ORDER_EXPIRED);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

Test(order, tick_gives_a_volunteer_it_frees_to_the_urgent_order) {
    /* Two orders time out in one tick, each on the other's only remaining
     * candidate: the normal order on volunteer 1, the emergency order on
     * volunteer 2. Volunteer 1, freed by the same tick, goes to the
     * emergency order, and volunteer 2 to the normal one; neither order
     * expires while someone it may ask is free. */
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    normal_then_emergency(e);
    uint64_t live[4];
    cr_assert_eq(pd_engine_tick(e, T0 + 120000, NULL), PD_OK);
    cr_assert_eq(order_state(e, 11), PD_ORDER_OFFERED, "the emergency order expired");
    cr_assert_eq(live_offers(e, 11, live, 4), 1);
    cr_assert_eq(live[0], 1);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED);
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 2);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ------------------------------------------------------------------- grab */

Test(order, grab_first_accept_wins) {
    pd_engine_config_t c = nearest_cfg();
    c.grab_width = 3;
    pd_engine_t *e = mk_engine(&c);
    for (uint64_t v = 1; v <= 4; v++) add_vol(e, v, 100.0 * (double)v, SAN, 1);
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    pd_order_spec_t s = mk_order(10, SAN);
    s.mode = PD_OFFER_GRAB;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 3);
    for (uint64_t v = 1; v <= 3; v++) cr_assert_eq(vol_load(e, v), 1);
    cr_assert_eq(vol_load(e, 4), 0);
    cr_assert_eq(pd_engine_order_accept(e, 10, 2, T0 + 500), PD_OK);
    /* The race: the second accept loses. */
    uint64_t d = pd_engine_digest(e);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 501), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_order_accept(e, 10, 3, T0 + 502), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_digest(e), d);
    cr_assert_eq(order_state(e, 10), PD_ORDER_ACCEPTED);
    cr_assert_eq(vol_load(e, 1), 0);
    cr_assert_eq(vol_load(e, 2), 1);
    cr_assert_eq(vol_load(e, 3), 0);
    cr_assert_eq(evlog_count(&log, PD_EVENT_OFFER_WITHDRAWN), 2);
    for (size_t i = 0; i < log.n; i++) {
        if (log.ev[i].type == PD_EVENT_OFFER_WITHDRAWN) {
            cr_assert_eq(log.ev[i].reason, PD_REASON_GRAB_LOST);
        }
    }
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.offers_withdrawn, 1);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

Test(order, grab_declines_then_next_batch) {
    pd_engine_config_t c = nearest_cfg();
    c.grab_width = 2;
    pd_engine_t *e = mk_engine(&c);
    for (uint64_t v = 1; v <= 5; v++) add_vol(e, v, 100.0 * (double)v, SAN, 1);
    pd_order_spec_t s = mk_order(10, SAN);
    s.mode = PD_OFFER_GRAB;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    uint64_t live[8];
    cr_assert_eq(pd_engine_order_decline(e, 10, 1, T0), PD_OK);
    /* 2 still holds a live offer: no new one yet. */
    cr_assert_eq(live_offers(e, 10, live, 8), 1);
    cr_assert_eq(pd_engine_order_decline(e, 10, 2, T0), PD_OK);
    cr_assert_eq(live_offers(e, 10, live, 8), 2);
    cr_assert_eq(live[0], 3);
    cr_assert_eq(live[1], 4);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ------------------------------------------------------------------ teams */

static pd_engine_t *team_world(void) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 200, SAN, 1);
    add_vol(e, 3, 300, SAN, 1);
    add_vol(e, 4, 150, MED, 1);
    add_vol(e, 5, 250, MED | SAN, 1);
    return e;
}

/* Order `id`: a team of a sanitation and a medical slot, dispatched. */
static void san_med_team(pd_engine_t *e, uint64_t id) {
    uint64_t slots[2] = {SAN, MED};
    pd_order_spec_t s = mk_order(id, 0);
    s.slot_skills = slots;
    s.n_slots = 2;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
}

Test(order, team_fills_then_accepted) {
    pd_engine_t *e = team_world();
    uint64_t slots[3] = {SAN, SAN, MED};
    pd_order_spec_t s = mk_order(10, 0);
    s.slot_skills = slots;
    s.n_slots = 3;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    pd_order_slot_t sl[PD_ORDER_MAX_SLOTS];
    size_t n;
    cr_assert_eq(pd_engine_order_slots(e, 10, sl, 1, &n), PD_ERR_BOUNDS);
    cr_assert_eq(pd_engine_order_slots(e, 10, sl, PD_ORDER_MAX_SLOTS, &n), PD_OK);
    cr_assert_eq(n, 3);
    uint64_t live[8];
    cr_assert_eq(live_offers(e, 10, live, 8), 3);
    cr_assert_eq(live[0], 1); /* slot 0 */
    cr_assert_eq(live[1], 2); /* slot 1: 1 is taken by slot 0 */
    cr_assert_eq(live[2], 4); /* slot 2 */
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED);
    cr_assert_eq(pd_engine_order_decline(e, 10, 2, T0), PD_OK);
    /* slot 1 goes to the next sanitation volunteer: 5 at 250 m. */
    cr_assert_eq(live_offers(e, 10, live, 8), 2);
    cr_assert_eq(live[1], 5);
    cr_assert_eq(pd_engine_order_accept(e, 10, 4, T0), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED);
    cr_assert_eq(pd_engine_order_accept(e, 10, 5, T0), PD_OK);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.state, PD_ORDER_ACCEPTED);
    cr_assert_eq(oi.n_accepted, 3);
    cr_assert_eq(pd_engine_order_slots(e, 10, sl, PD_ORDER_MAX_SLOTS, &n), PD_OK);
    cr_assert(sl[0].filled && sl[1].filled && sl[2].filled);
    cr_assert_eq(sl[0].volunteer_id, 1);
    cr_assert_eq(sl[1].volunteer_id, 5);
    cr_assert_eq(sl[2].volunteer_id, 4);
    check_valid(e, 0, 0);
    cr_assert_eq(pd_engine_order_complete(e, 10, 30, T0 + 60 * MIN_MS), PD_OK);
    uint64_t served[3] = {1, 5, 4};
    for (int i = 0; i < 3; i++) {
        pd_volunteer_info_t vi;
        cr_assert_eq(pd_engine_volunteer_get(e, served[i], T0, &vi), PD_OK);
        cr_assert_eq(vi.rec.minutes_total, 30);
        cr_assert_eq(vi.v.load, 0);
    }
    cr_assert_eq(pd_engine_order_rate(e, 10, 5, T0 + 61 * MIN_MS), PD_OK);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 4, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.rating_sum, 5);
    check_valid(e, 0, 1);
    pd_engine_destroy(e);
}

Test(order, team_without_a_candidate_makes_no_offer) {
    pd_engine_t *e = team_world();
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    uint64_t slots[2] = {SAN, 1ull << 0}; /* nobody does theory-policy */
    pd_order_spec_t s = mk_order(10, 0);
    s.slot_skills = slots;
    s.n_slots = 2;
    pd_order_state st;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_EXPIRED);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.reason, PD_REASON_NO_CANDIDATE);
    cr_assert_eq(oi.n_offers_total, 0);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].type, PD_EVENT_EXPIRED);
    for (uint64_t v = 1; v <= 5; v++) cr_assert_eq(vol_load(e, v), 0);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

Test(order, team_exhausted_releases_accepted) {
    pd_engine_t *e = team_world();
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    san_med_team(e, 10);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0), PD_OK);  /* slot 0 */
    cr_assert_eq(pd_engine_order_decline(e, 10, 4, T0), PD_OK); /* med: 4 then 5 */
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 5);
    cr_assert_eq(pd_engine_order_decline(e, 10, 5, T0), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_EXPIRED);
    cr_assert_eq(vol_load(e, 1), 0);
    cr_assert_eq(evlog_count(&log, PD_EVENT_RELEASED), 1);
    pd_offer_t of[8];
    size_t n;
    cr_assert_eq(pd_engine_order_offers(e, 10, of, 8, &n), PD_OK);
    cr_assert_eq(n, 1); /* compacted to the released one */
    cr_assert_eq(of[0].volunteer_id, 1);
    cr_assert_eq(of[0].state, PD_OFFER_RELEASED);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ------------------------------------------------ release (退单) */

static uint32_t releases_of(pd_engine_t *e, uint64_t vol) {
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, vol, T0, &vi), PD_OK);
    return vi.rec.releases;
}

Test(order, release_offers_the_slot_again) {
    pd_engine_t *e = three();
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    ok_create(e, 10);
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 1000), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_ACCEPTED);
    size_t n0 = log.n;
    /* volunteer 1 cannot go after all: the slot goes to the next one */
    cr_assert_eq(pd_engine_order_release(e, 10, 1, T0 + 2000), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED);
    cr_assert_eq(vol_load(e, 1), 0);
    cr_assert_eq(releases_of(e, 1), 1);
    cr_assert_eq(log.n, n0 + 2);
    cr_assert_eq(log.ev[n0].type, PD_EVENT_RELEASED);
    cr_assert_eq(log.ev[n0].volunteer_id, 1);
    cr_assert_eq(log.ev[n0].reason, PD_REASON_WITHDREW);
    cr_assert_eq(log.ev[n0 + 1].type, PD_EVENT_OFFERED);
    cr_assert_eq(log.ev[n0 + 1].volunteer_id, 2);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.n_accepted, 0);
    cr_assert_eq(oi.accepted_ms, 0);
    check_valid(e, 0, 0);
    /* no second release, and 1 is never asked again */
    cr_assert_eq(pd_engine_order_release(e, 10, 1, T0 + 3000), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_order_release(e, 10, 2, T0 + 3000), PD_ERR_ILLEGAL); /* live only */
    cr_assert_eq(pd_engine_order_decline(e, 10, 2, T0 + 3000), PD_OK);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 3);
    cr_assert_eq(pd_engine_order_accept(e, 10, 3, T0 + 4000), PD_OK);
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.state, PD_ORDER_ACCEPTED);
    cr_assert_eq(oi.accepted_ms, T0 + 4000);
    /* the one who served is credited, the one who withdrew is not */
    cr_assert_eq(pd_engine_order_complete(e, 10, 45, T0 + 90 * MIN_MS), PD_OK);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 3, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_total, 45);
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_total, 0);
    cr_assert_eq(vi.rec.offers_accepted, 1);
    cr_assert_eq(vi.v.load, 0);
    check_valid(e, 0, 1);
    pd_engine_destroy(e);
}

Test(order, release_in_a_team_keeps_the_others) {
    pd_engine_t *e = team_world();
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    san_med_team(e, 10);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0), PD_OK); /* sanitation */
    cr_assert_eq(pd_engine_order_accept(e, 10, 4, T0), PD_OK); /* medical */
    cr_assert_eq(order_state(e, 10), PD_ORDER_ACCEPTED);
    /* the medic withdraws: 5 (medical and sanitation) is asked; 1 keeps
     * the sanitation slot */
    cr_assert_eq(pd_engine_order_release(e, 10, 4, T0 + 1000), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 5);
    pd_order_slot_t sl[PD_ORDER_MAX_SLOTS];
    size_t n;
    cr_assert_eq(pd_engine_order_slots(e, 10, sl, PD_ORDER_MAX_SLOTS, &n), PD_OK);
    cr_assert(sl[0].filled && sl[0].volunteer_id == 1);
    cr_assert(!sl[1].filled);
    cr_assert_eq(vol_load(e, 1), 1);
    check_valid(e, 0, 0);
    /* 5 says no: no medic is left, so the team expires and 1 is let go */
    cr_assert_eq(pd_engine_order_decline(e, 10, 5, T0 + 2000), PD_OK);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.state, PD_ORDER_EXPIRED);
    cr_assert_eq(oi.reason, PD_REASON_EXHAUSTED);
    cr_assert_eq(vol_load(e, 1), 0);
    cr_assert_eq(evlog_count(&log, PD_EVENT_RELEASED), 2); /* 4 withdrew, 1 let go */
    pd_offer_t of[8];
    cr_assert_eq(pd_engine_order_offers(e, 10, of, 8, &n), PD_OK);
    size_t withdrew = 0;
    for (size_t i = 0; i < n; i++)
        if (of[i].state == PD_OFFER_RELEASED && of[i].reason == PD_REASON_WITHDREW) withdrew++;
    cr_assert_eq(withdrew, 1);
    check_valid(e, 0, 1);
    pd_engine_destroy(e);
}

Test(order, release_with_nobody_left_expires_at_once) {
    pd_engine_t *e = in_state(PD_ORDER_ACCEPTED); /* 1 is the only sanitation volunteer */
    cr_assert_eq(pd_engine_order_release(e, 10, 1, T0 + 1000), PD_OK);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.state, PD_ORDER_EXPIRED);
    cr_assert_eq(oi.reason, PD_REASON_EXHAUSTED);
    cr_assert_eq(vol_load(e, 1), 0);
    cr_assert_eq(releases_of(e, 1), 1);
    /* unknown ids and bad times change nothing */
    pd_engine_t *f = in_state(PD_ORDER_ACCEPTED);
    uint64_t d = pd_engine_digest(f);
    cr_assert_eq(pd_engine_order_release(f, 11, 1, T0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_engine_order_release(f, 10, 99, T0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_engine_order_release(f, 10, 2, T0), PD_ERR_ILLEGAL); /* holds nothing */
    cr_assert_eq(pd_engine_order_release(f, 10, 1, INT64_MAX), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_digest(f), d);
    check_valid(e, 0, 0);
    check_valid(f, 0, 1);
    pd_engine_destroy(e);
    pd_engine_destroy(f);
}

Test(order, need_without_slot_list) {
    pd_engine_t *e = team_world();
    pd_order_spec_t s = mk_order(10, SAN);
    s.need = 4; /* 1, 2, 3, 5 */
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    uint64_t live[8];
    cr_assert_eq(live_offers(e, 10, live, 8), 4);
    s.id = 11;
    s.need = 1;
    pd_order_state st;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_EXPIRED); /* everyone is busy with order 10 */
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* --------------------------------------------------------------- capacity */

Test(order, capacity_is_held_and_released) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 2);
    add_vol(e, 2, 500, SAN, 1);
    for (uint64_t o = 10; o < 13; o++) {
        pd_order_spec_t s = mk_order(o, SAN);
        cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    }
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 1);
    cr_assert_eq(live_offers(e, 11, live, 4), 1);
    cr_assert_eq(live[0], 1); /* capacity 2 */
    cr_assert_eq(live_offers(e, 12, live, 4), 1);
    cr_assert_eq(live[0], 2);
    cr_assert_eq(vol_load(e, 1), 2);
    pd_order_spec_t s = mk_order(13, SAN);
    pd_order_state st;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_EXPIRED);
    /* Capacity cannot drop below the load. */
    pd_volunteer_patch_t p = {.fields = PD_VF_CAPACITY, .capacity = 1};
    cr_assert_eq(pd_engine_volunteer_update(e, 1, &p, T0), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_order_cancel(e, 10, T0), PD_OK);
    cr_assert_eq(vol_load(e, 1), 1);
    cr_assert_eq(pd_engine_volunteer_update(e, 1, &p, T0), PD_OK);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ------------------------------------------------------- volunteer removal */

Test(order, remove_volunteer_with_offer_redispatches) {
    pd_engine_t *e = three();
    evlog_t log = {.n = 0};
    ok_create(e, 10);
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    pd_engine_set_event_cb(e, evlog_cb, &log);
    cr_assert_eq(pd_engine_volunteer_remove(e, 1, T0 + 10), PD_OK);
    cr_assert_eq(pd_engine_volunteer_count(e), 2);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 2);
    cr_assert_eq(log.ev[0].type, PD_EVENT_OFFER_WITHDRAWN);
    cr_assert_eq(log.ev[0].reason, PD_REASON_VOLUNTEER_REMOVED);
    cr_assert_eq(log.ev[1].type, PD_EVENT_OFFERED);
    check_valid(e, 0, 0);
    /* Accepted: refused, nothing changes. */
    cr_assert_eq(pd_engine_order_accept(e, 10, 2, T0 + 20), PD_OK);
    uint64_t d = pd_engine_digest(e);
    cr_assert_eq(pd_engine_volunteer_remove(e, 2, T0 + 30), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_digest(e), d);
    cr_assert_eq(pd_engine_volunteer_remove(e, 99, T0 + 30), PD_ERR_NOT_FOUND);
    /* After completion the volunteer may go; rating skips them. */
    cr_assert_eq(pd_engine_order_complete(e, 10, -1, T0 + 40), PD_OK);
    cr_assert_eq(pd_engine_volunteer_remove(e, 2, T0 + 50), PD_OK);
    cr_assert_eq(pd_engine_order_rate(e, 10, 5, T0 + 60), PD_OK);
    check_valid(e, 0, 1);
    pd_engine_destroy(e);
}

Test(order, remove_last_candidate_expires) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    ok_create(e, 10);
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    cr_assert_eq(pd_engine_volunteer_remove(e, 1, T0), PD_OK);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.state, PD_ORDER_EXPIRED);
    cr_assert_eq(oi.reason, PD_REASON_EXHAUSTED);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ------------------------------------------------------------------ events */

static pd_engine_t *reentry_engine;
static pd_err reentry_err = PD_OK;

static void reenter(void *ud, const pd_event_t *ev) {
    (void)ud;
    (void)ev;
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(reentry_engine, ev->order_id, &oi), PD_OK);
    cr_assert_eq(oi.state, ev->order_state);
    reentry_err = pd_engine_order_cancel(reentry_engine, ev->order_id, T0);
}

Test(order, callback_reads_but_cannot_mutate) {
    pd_engine_t *e = three();
    reentry_engine = e;
    pd_engine_set_event_cb(e, reenter, NULL);
    ok_create(e, 10);
    cr_assert_eq(pd_engine_order_dispatch(e, 10, T0, NULL), PD_OK);
    cr_assert_eq(reentry_err, PD_ERR_ILLEGAL);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED);
    pd_engine_destroy(e);
}

Test(order, cancel_events) {
    pd_engine_config_t c = nearest_cfg();
    c.grab_width = 2;
    pd_engine_t *e = mk_engine(&c);
    for (uint64_t v = 1; v <= 4; v++) add_vol(e, v, 100.0 * (double)v, SAN, 1);
    uint64_t slots[2] = {SAN, SAN};
    pd_order_spec_t s = mk_order(10, 0);
    s.slot_skills = slots;
    s.n_slots = 2;
    s.mode = PD_OFFER_GRAB;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0), PD_OK); /* slot 0: 2 withdrawn */
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    cr_assert_eq(pd_engine_order_cancel(e, 10, T0 + 5), PD_OK);
    /* Entries in offer order: 1 (released), 3, 4 (withdrawn); then the order. */
    cr_assert_eq(log.n, 4);
    cr_assert_eq(log.ev[0].type, PD_EVENT_RELEASED);
    cr_assert_eq(log.ev[0].volunteer_id, 1);
    cr_assert_eq(log.ev[1].type, PD_EVENT_OFFER_WITHDRAWN);
    cr_assert_eq(log.ev[1].volunteer_id, 3);
    cr_assert_eq(log.ev[2].volunteer_id, 4);
    cr_assert_eq(log.ev[3].type, PD_EVENT_CANCELLED);
    cr_assert_eq(log.ev[3].order_state, PD_ORDER_CANCELLED);
    cr_assert_eq(log.ev[3].has_volunteer, false);
    for (uint64_t v = 1; v <= 4; v++) cr_assert_eq(vol_load(e, v), 0);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ----------------------------------------------------------------- records */

static void serve(pd_engine_t *e, uint64_t order, uint64_t vol, int32_t minutes, int64_t at) {
    pd_order_spec_t s = mk_order(order, SAN);
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, at, NULL), PD_OK);
    uint64_t live[2];
    cr_assert_eq(live_offers(e, order, live, 2), 1);
    cr_assert_eq(live[0], vol);
    cr_assert_eq(pd_engine_order_accept(e, order, vol, at), PD_OK);
    cr_assert_eq(pd_engine_order_complete(e, order, minutes, at), PD_OK);
}

Test(records, seven_day_window_stars_points) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    const int64_t day = 24 * 60 * MIN_MS;
    serve(e, 10, 1, 300, T0);           /* Monday */
    serve(e, 11, 1, 240, T0 + 2 * day); /* Wednesday */
    serve(e, 12, 1, 120, T0 + 6 * day); /* Sunday */
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0 + 6 * day, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_7d, 660);
    cr_assert_eq(vi.rec.minutes_total, 660);
    cr_assert_eq(vi.rec.stars, 1); /* 11 h >= 10 h */
    cr_assert_float_eq(vi.rec.points, 110.0, 1e-9);
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0 + 7 * day, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_7d, 360); /* Monday fell out */
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0 + 9 * day, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_7d, 120);
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0 + 13 * day, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_7d, 0);
    /* The day is local: 23:30 local Monday and 00:30 local Tuesday are two days. */
    serve(e, 13, 1, 60, T0 + 20 * day + 810 * MIN_MS); /* Mon 23:30 */
    serve(e, 14, 1, 60, T0 + 20 * day + 870 * MIN_MS); /* Tue 00:30 */
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0 + 27 * day, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_7d, 60); /* Monday is 7 days back: out */
    cr_assert_eq(vi.rec.last_served_ms, T0 + 20 * day + 870 * MIN_MS);
    /* Many hours: stars climb to 5. */
    serve(e, 15, 1, PD_MAX_MINUTES_SERVED, T0 + 30 * day);
    serve(e, 16, 1, PD_MAX_MINUTES_SERVED, T0 + 31 * day);
    serve(e, 17, 1, PD_MAX_MINUTES_SERVED, T0 + 32 * day);
    serve(e, 18, 1, PD_MAX_MINUTES_SERVED, T0 + 33 * day);
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0 + 33 * day, &vi), PD_OK);
    cr_assert_eq(vi.rec.stars, 5);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

Test(records, balanced_prefers_the_less_loaded) {
    pd_engine_config_t c;
    pd_engine_config_init(&c); /* balanced, 60 s per hour */
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 300, SAN, 1); /* ~ 200 m further: ~28 s slower by bike */
    serve(e, 10, 1, 120, T0);   /* 2 h this week: +120 s */
    pd_order_spec_t s = mk_order(11, SAN);
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0 + 1000, NULL), PD_OK);
    uint64_t live[2];
    cr_assert_eq(live_offers(e, 11, live, 2), 1);
    cr_assert_eq(live[0], 2);
    pd_engine_destroy(e);

    c.policy = PD_POLICY_RATED;
    e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 300, SAN, 1);
    serve(e, 10, 1, 60, T0);
    cr_assert_eq(pd_engine_order_rate(e, 10, 2, T0),
                 PD_OK); /* mean 2: +360 s; 2 neutral 4: +120 s */
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0 + 1000, NULL), PD_OK);
    cr_assert_eq(live_offers(e, 11, live, 2), 1);
    cr_assert_eq(live[0], 2);
    pd_hit_t h[2];
    size_t n;
    cr_assert_eq(pd_engine_order_candidates(e, 11, 0, T0, 2, h, &n), PD_OK);
    cr_assert_eq(n, 1); /* 2 is asked already */
    cr_assert_eq(h[0].id, 1);
    cr_assert_float_eq(h[0].score, h[0].eta_s + 360.0, 1e-3);
    pd_engine_destroy(e);
}

/* ------------------------------------------------------------------- purge */

Test(order, purge_keeps_open_and_recent) {
    pd_engine_t *e = three();
    for (uint64_t o = 10; o < 20; o++) ok_create(e, o);
    for (uint64_t o = 10; o < 20; o += 2) {
        cr_assert_eq(pd_engine_order_cancel(e, o, T0 + (int64_t)o), PD_OK);
    }
    size_t n;
    cr_assert_eq(pd_engine_order_purge(e, T0 + 15, &n), PD_OK);
    cr_assert_eq(n, 3); /* 10, 12, 14 */
    cr_assert_eq(pd_engine_order_count(e, PD_ORDER__COUNT), 7);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_ERR_NOT_FOUND);
    for (uint64_t o = 11; o < 20; o++) {
        if (o == 12 || o == 14) continue;
        cr_assert_eq(pd_engine_order_get(e, o, &oi), PD_OK);
    }
    check_valid(e, 0, 0);
    ok_create(e, 10); /* the id is free again */
    cr_assert_eq(pd_engine_order_count(e, PD_ORDER_CREATED), 6);
    check_valid(e, 0, 1);
    pd_engine_destroy(e);
}

/* ----------------------------------------------------- order listing */

typedef struct list_page_s {
    uint64_t ids[64];
    size_t n, limit;
} list_page_t;

static bool take_page(void *ud, const pd_order_info_t *oi) {
    list_page_t *p = ud;
    p->ids[p->n++] = oi->id;
    return p->n < p->limit;
}

typedef struct list_oracle_s {
    pd_engine_t *e;
    const pd_order_filter_t *f;
    uint64_t ids[512];
    size_t n;
} list_oracle_t;

static bool oracle_take(void *ud, const pd_order_info_t *oi) {
    list_oracle_t *o = ud;
    const pd_order_filter_t *f = o->f;
    if (f->states && !(f->states >> oi->state & 1)) return true;
    if (oi->created_ms < f->created_from_ms) return true;
    if (f->by_volunteer) {
        pd_offer_t of[64];
        size_t n = 0;
        cr_assert_eq(pd_engine_order_offers(o->e, oi->id, of, 64, &n), PD_OK);
        bool named = false;
        for (size_t i = 0; i < n; i++) named |= of[i].volunteer_id == f->volunteer_id;
        if (!named) return true;
    }
    o->ids[o->n++] = oi->id;
    return true;
}

/* Orders in every state, then random filters walked a page at a time with
 * random page sizes and scan budgets: the pages, joined, are exactly the
 * orders a plain walk over every order keeps, in creation order. */
Test(order, list_pages_match_a_plain_walk) {
    pd_rng_t r;
    pd_rng_seed(&r, pd_test_seed());
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    for (uint64_t v = 0; v < 30; v++) add_vol(e, v, 50.0 * (double)(v + 1), SAN, 3);
    for (uint64_t id = 1; id <= 300; id++) {
        pd_order_spec_t s = mk_order(id, SAN);
        int64_t now = T0 + (int64_t)id * MIN_MS;
        pd_order_state st;
        cr_assert_eq(pd_engine_order_create_dispatch(e, &s, now, &st), PD_OK);
        pd_offer_t of[8];
        size_t n = 0;
        cr_assert_eq(pd_engine_order_offers(e, id, of, 8, &n), PD_OK);
        if (st != PD_ORDER_OFFERED) continue; /* expired: nobody left with room */
        switch (pd_rng_below(&r, 5)) {
            case 0: /* left offered */
                break;
            case 1:
                cr_assert_eq(pd_engine_order_cancel(e, id, now), PD_OK);
                break;
            default:
                if (n == 0) break;
                cr_assert_eq(pd_engine_order_accept(e, id, of[0].volunteer_id, now), PD_OK);
                if (pd_rng_below(&r, 2))
                    cr_assert_eq(pd_engine_order_complete(e, id, 30, now), PD_OK);
        }
    }
    cr_assert_eq(pd_engine_order_count(e, PD_ORDER__COUNT), 300);
    const pd_order_state kinds[] = {PD_ORDER_OFFERED, PD_ORDER_ACCEPTED, PD_ORDER_COMPLETED,
                                    PD_ORDER_CANCELLED, PD_ORDER_EXPIRED};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        cr_assert_gt(pd_engine_order_count(e, kinds[k]), 0, "no order %s",
                     pd_order_state_name(kinds[k]));
    for (int round = 0; round < 200; round++) {
        pd_order_filter_t f = {0};
        if (pd_rng_below(&r, 3)) f.states = (uint32_t)pd_rng_below(&r, 1u << PD_ORDER__COUNT);
        if (pd_rng_below(&r, 3) == 0 || round == 0) {
            f.by_volunteer = true; /* volunteer 0 as well: an id, not "no filter" */
            f.volunteer_id = round == 0 ? 0 : pd_rng_below(&r, 32);
        }
        if (pd_rng_below(&r, 3) == 0)
            f.created_from_ms = T0 + (int64_t)pd_rng_below(&r, 320) * MIN_MS;
        list_oracle_t want = {e, &f, {0}, 0};
        pd_engine_foreach_order(e, oracle_take, &want);
        list_page_t got = {{0}, 0, 0};
        uint64_t joined[512], after = 0;
        size_t nj = 0, pages = 0;
        bool more = false;
        do {
            got.n = 0;
            got.limit = 1 + pd_rng_below(&r, 20);
            size_t scan = 1 + pd_rng_below(&r, 60);
            cr_assert_eq(pd_engine_order_list(e, &f, pages ? &after : NULL, scan, take_page, &got,
                                              &more, &after),
                         PD_OK);
            cr_assert_leq(got.n, got.limit);
            for (size_t i = 0; i < got.n; i++) joined[nj++] = got.ids[i];
            cr_assert_lt(++pages, 400, "the walk does not end");
        } while (more);
        cr_assert_eq(nj, want.n, "round %d: %zu listed, %zu expected", round, nj, want.n);
        for (size_t i = 0; i < nj; i++)
            cr_assert_eq(joined[i], want.ids[i], "round %d #%zu", round, i);
    }
    /* volunteer 0, the nearest, was offered orders: they are listed */
    pd_order_filter_t f0 = {.by_volunteer = true, .volunteer_id = 0};
    list_oracle_t want0 = {e, &f0, {0}, 0};
    pd_engine_foreach_order(e, oracle_take, &want0);
    size_t n0 = 0, pages0 = 0;
    bool more0 = false;
    uint64_t after0 = 0;
    do {
        list_page_t got0 = {{0}, 0, 64};
        cr_assert_eq(pd_engine_order_list(e, &f0, pages0++ ? &after0 : NULL, 1000, take_page, &got0,
                                          &more0, &after0),
                     PD_OK);
        for (size_t i = 0; i < got0.n; i++, n0++) cr_assert_eq(got0.ids[i], want0.ids[n0]);
    } while (more0);
    cr_assert_gt(want0.n, 0);
    cr_assert_lt(want0.n, 300);
    cr_assert_eq(n0, want0.n);
    /* a cursor that is no kept order, bad arguments */
    pd_order_filter_t f = {0};
    list_page_t got = {{0}, 0, 10};
    uint64_t next = 7, gone = 99999;
    bool more;
    cr_assert_eq(pd_engine_order_list(e, &f, &gone, 10, take_page, &got, &more, &next),
                 PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_engine_order_list(e, &f, NULL, 0, take_page, &got, &more, &next),
                 PD_ERR_BAD_ARG);
    f.states = 1u << PD_ORDER__COUNT;
    cr_assert_eq(pd_engine_order_list(e, &f, NULL, 10, take_page, &got, &more, &next),
                 PD_ERR_BAD_ARG);
    cr_assert_eq(got.n, 0);
    pd_engine_destroy(e);
}

/* pd_engine_set_limits caps new volunteers and kept orders: past them a
 * new one is LIMIT and nothing changes; updates and the life cycle go on;
 * removing a volunteer or purging closed orders makes room again. */
Test(order, limits_cap_new_volunteers_and_orders) {
    pd_engine_t *e = mk_engine(NULL);
    pd_engine_set_limits(e, 2, 2);
    add_vol(e, 1, 100, 1ull << 2, 1);
    add_vol(e, 2, 200, 1ull << 2, 1);
    uint64_t d0 = pd_engine_digest(e);
    pd_volunteer_t v3 = mk_vol(3, 300, 1ull << 2, 1);
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v3, T0), PD_ERR_LIMIT);
    cr_assert_eq(pd_engine_digest(e), d0);
    /* an existing volunteer is not capped */
    pd_volunteer_t v1 = mk_vol(1, 150, 1ull << 2, 2);
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v1, T0), PD_OK);
    cr_assert_eq(pd_engine_volunteer_remove(e, 2, T0), PD_OK);
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v3, T0), PD_OK);

    pd_order_spec_t a = mk_order(10, 1ull << 2), b = mk_order(11, 1ull << 2),
                    c = mk_order(12, 1ull << 2);
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &b, T0), PD_OK);
    d0 = pd_engine_digest(e);
    cr_assert_eq(pd_engine_order_create(e, &c, T0), PD_ERR_LIMIT);
    cr_assert_eq(pd_engine_digest(e), d0);
    /* a bad order is told what is wrong with it, cap or not */
    pd_order_spec_t bad = mk_order(14, 1ull << 63);
    cr_assert_eq(pd_engine_order_create(e, &bad, T0), PD_ERR_UNKNOWN_SKILL);
    bad = mk_order(14, 1ull << 2);
    bad.need = PD_ORDER_MAX_SLOTS + 1;
    cr_assert_eq(pd_engine_order_create(e, &bad, T0), PD_ERR_BAD_ARG);
    /* closed orders count until purged */
    cr_assert_eq(pd_engine_order_cancel(e, 10, T0 + 1000), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &c, T0 + 2000), PD_ERR_LIMIT);
    size_t purged = 0;
    cr_assert_eq(pd_engine_order_purge(e, T0 + 1500, &purged), PD_OK);
    cr_assert_eq(purged, 1);
    cr_assert_eq(pd_engine_order_create(e, &c, T0 + 2000), PD_OK);
    /* 0 lifts the caps */
    pd_engine_set_limits(e, 0, 0);
    pd_order_spec_t d = mk_order(13, 1ull << 2);
    cr_assert_eq(pd_engine_order_create(e, &d, T0 + 3000), PD_OK);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}
