/* engine_test.h -- helpers shared by the engine tests: a small county
 * around one point, volunteers placed at known distances, order specs, an
 * event recorder, and the invariant checks every step runs.
 */
#ifndef PAIDAN_TESTS_ENGINE_TEST_H
#define PAIDAN_TESTS_ENGINE_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "paidan/engine.h"
#include "test_rng.h"

/* 2024-01-01 (a Monday) 10:00 at UTC+08:00. */
#define T0 (1704038400000LL + 10LL * 3600 * 1000)
#define MIN_MS 60000LL

/* The centre of the test county. */
#define LAT0 30600000
#define LON0 114300000

/* Roughly `m` metres north of the centre (1e-6 deg of latitude ~ 0.111 m). */
static inline pd_latlng_t north_m(double m) {
    pd_latlng_t p = {LAT0 + (int32_t)(m / 0.11119), LON0};
    return p;
}

static inline pd_engine_t *mk_engine(const pd_engine_config_t *cfg) {
    pd_engine_t *e = NULL;
    cr_assert_eq(pd_engine_create(cfg, &e), PD_OK);
    return e;
}

static inline pd_volunteer_t mk_vol(uint64_t id, double dist_m, uint64_t skills, uint8_t capacity) {
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = id;
    v.pos = north_m(dist_m);
    v.skills = skills;
    v.week = pd_week_all();
    v.mode = PD_MODE_BIKE;
    v.status = PD_STATUS_ONLINE;
    v.capacity = capacity;
    return v;
}

static inline void add_vol(pd_engine_t *e, uint64_t id, double dist_m, uint64_t skills,
                           uint8_t capacity) {
    pd_volunteer_t v = mk_vol(id, dist_m, skills, capacity);
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v, T0), PD_OK, "upsert %llu",
                 (unsigned long long)id);
}

static inline pd_order_spec_t mk_order(uint64_t id, uint64_t skills) {
    pd_order_spec_t s;
    memset(&s, 0, sizeof s);
    s.id = id;
    s.at = north_m(0);
    s.skills = skills;
    s.start_ms = T0;
    s.duration_min = 60;
    return s;
}

static inline pd_order_state order_state(pd_engine_t *e, uint64_t id) {
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, id, &oi), PD_OK);
    return (pd_order_state)oi.state;
}

static inline uint8_t vol_load(pd_engine_t *e, uint64_t id) {
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, id, T0, &vi), PD_OK);
    return vi.v.load;
}

/* The volunteers holding live offers on an order, in offer order. */
static inline size_t live_offers(pd_engine_t *e, uint64_t order, uint64_t *vols, size_t cap) {
    pd_offer_t of[256];
    size_t n = 0, k = 0;
    cr_assert_eq(pd_engine_order_offers(e, order, of, 256, &n), PD_OK);
    for (size_t i = 0; i < n; i++) {
        if (of[i].state == PD_OFFER_LIVE && k < cap) vols[k++] = of[i].volunteer_id;
    }
    return k;
}

static inline void check_valid(const pd_engine_t *e, uint64_t seed, long step) {
    const char *why = NULL;
    bool ok = pd_engine_validate(e, &why);
    cr_assert(ok, "seed %llu step %ld: invariant broken: %s", (unsigned long long)seed, step,
              why ? why : "?");
}

/* ---------------------------------------------------------- event recorder */

typedef struct evlog_s {
    pd_event_t ev[4096];
    size_t n;
} evlog_t;

static inline void evlog_cb(void *ud, const pd_event_t *ev) {
    evlog_t *l = ud;
    if (l->n < sizeof l->ev / sizeof l->ev[0]) l->ev[l->n++] = *ev;
}

static inline size_t evlog_count(const evlog_t *l, pd_event_type t) {
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) n += l->ev[i].type == t;
    return n;
}

#endif /* PAIDAN_TESTS_ENGINE_TEST_H */
