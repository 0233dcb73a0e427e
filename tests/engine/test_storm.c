/* test_storm.c -- random command storms against the engine's invariants.
 *
 * Every step runs one random command (volunteers come, go, move and change;
 * orders are created, dispatched, accepted, declined, cancelled, completed,
 * rated; time passes and ticks; batches and mobilisations run) and then
 * checks pd_engine_validate: each volunteer's load equals the live offers
 * plus accepted slots they hold and never exceeds their capacity, and the
 * orders agree with their offers. A command that fails must leave the
 * digest as it was. The same storm run twice gives the same digest and the
 * same events at every step; so does a storm run on an engine that reached
 * the same state through a different history (other insertion order, other
 * index slots). OOM injection at every allocation of create / upsert /
 * dispatch / decline / tick / batch / remove leaves the state unchanged.
 * Set PD_SEED to replay.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "engine_test.h"
#include "paidan/alloc.h"

#define NSKILL 4

typedef struct storm_s {
    pd_engine_t *e;
    pd_rng_t rng;
    uint64_t seed;
    int64_t now;
    uint64_t next_vol, next_order;
    uint64_t ev_hash;
    size_t n_events;
    size_t by_type[PD_EVENT__COUNT];
} storm_t;

static void hash_event(void *ud, const pd_event_t *ev) {
    storm_t *s = ud;
    uint64_t w[8] = {ev->type,
                     ev->order_state,
                     ev->reason,
                     ev->rating,
                     ev->order_id,
                     ev->has_volunteer ? ev->volunteer_id + 1 : 0,
                     (uint64_t)ev->at_ms ^ (uint64_t)ev->deadline_ms,
                     (uint64_t)ev->slot << 32 | ev->minutes};
    for (int i = 0; i < 8; i++) {
        s->ev_hash ^= w[i];
        s->ev_hash *= 0x100000001b3ULL;
        s->ev_hash ^= s->ev_hash >> 29;
    }
    s->n_events++;
    if (ev->type < PD_EVENT__COUNT) s->by_type[ev->type]++;
}

static pd_volunteer_t rand_vol(pd_rng_t *r, uint64_t id) {
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = id;
    v.pos.lat = LAT0 + (int32_t)pd_rng_range(r, -20000, 20000);
    v.pos.lon = LON0 + (int32_t)pd_rng_range(r, -20000, 20000);
    v.skills = 1 + pd_rng_below(r, (1u << NSKILL) - 1);
    v.tags = pd_rng_below(r, 4) == 0 ? 1 : 0;
    if (pd_rng_below(r, 3)) {
        v.week = pd_week_all();
    } else {
        v.week = pd_week_none();
        for (int d = 0; d < 7; d++) (void)pd_week_add_range(&v.week, d, 8, 20);
    }
    v.mode = (uint8_t)pd_rng_below(r, PD_MODE__COUNT);
    v.status = pd_rng_below(r, 8) == 0 ? PD_STATUS_OFFLINE : PD_STATUS_ONLINE;
    v.capacity = (uint8_t)(1 + pd_rng_below(r, 3));
    return v;
}

static void storm_init(storm_t *s, uint64_t seed, const pd_engine_config_t *cfg) {
    memset(s, 0, sizeof *s);
    s->e = mk_engine(cfg);
    s->seed = seed;
    pd_rng_seed(&s->rng, seed);
    s->now = T0;
    s->next_vol = 1;
    s->next_order = 1;
    s->ev_hash = 0xcbf29ce484222325ULL;
    pd_engine_set_event_cb(s->e, hash_event, s);
}

/* A random known order id (or an unknown one now and then). */
static uint64_t any_order(storm_t *s) {
    if (s->next_order == 1 || pd_rng_below(&s->rng, 30) == 0) return 999999999;
    uint64_t n = s->next_order - 1;
    if (n > 12 && pd_rng_below(&s->rng, 4)) return n - pd_rng_below(&s->rng, 12);
    return 1 + pd_rng_below(&s->rng, n);
}

/* Mostly an order in state st among the recent ones, else any order. */
static uint64_t order_in(storm_t *s, pd_order_state st) {
    if (pd_rng_below(&s->rng, 4)) {
        uint64_t n = s->next_order - 1;
        uint64_t from = n > 60 ? n - 60 : 1;
        uint64_t start = from + pd_rng_below(&s->rng, n - from + 1);
        for (uint64_t i = 0; n && i <= n - from; i++) {
            uint64_t id = from + (start - from + i) % (n - from + 1);
            pd_order_info_t oi;
            if (pd_engine_order_get(s->e, id, &oi) == PD_OK && oi.state == st) return id;
        }
    }
    return any_order(s);
}

static uint64_t any_vol(storm_t *s) {
    if (pd_rng_below(&s->rng, 30) == 0) return 888888888;
    return 1 + pd_rng_below(&s->rng, s->next_vol - 1);
}

/* A volunteer with a live offer on order o, if any (else any volunteer). */
static uint64_t offered_vol(storm_t *s, uint64_t o) {
    pd_offer_t of[512];
    size_t n = 0;
    if (pd_engine_order_offers(s->e, o, of, 512, &n) != PD_OK || n == 0) return any_vol(s);
    if (pd_rng_below(&s->rng, 10) == 0) return of[pd_rng_below(&s->rng, n)].volunteer_id;
    size_t live[512], k = 0;
    for (size_t i = 0; i < n; i++) {
        if (of[i].state == PD_OFFER_LIVE) live[k++] = i;
    }
    if (!k) return of[pd_rng_below(&s->rng, n)].volunteer_id;
    return of[live[pd_rng_below(&s->rng, k)]].volunteer_id;
}

/* A volunteer holding an accepted slot of o (one of its offers now and
 * then: mostly illegal then). */
static uint64_t accepted_vol(storm_t *s, uint64_t o) {
    pd_offer_t of[512];
    size_t n = 0;
    if (pd_engine_order_offers(s->e, o, of, 512, &n) != PD_OK || n == 0) return any_vol(s);
    size_t acc[512], k = 0;
    for (size_t i = 0; i < n; i++) {
        if (of[i].state == PD_OFFER_ACCEPTED) acc[k++] = i;
    }
    if (!k || pd_rng_below(&s->rng, 10) == 0) return of[pd_rng_below(&s->rng, n)].volunteer_id;
    return of[acc[pd_rng_below(&s->rng, k)]].volunteer_id;
}

static pd_order_spec_t rand_order(storm_t *s, uint64_t id, uint64_t *slots) {
    pd_rng_t *r = &s->rng;
    pd_order_spec_t o;
    memset(&o, 0, sizeof o);
    o.id = id;
    o.at.lat = LAT0 + (int32_t)pd_rng_range(r, -20000, 20000);
    o.at.lon = LON0 + (int32_t)pd_rng_range(r, -20000, 20000);
    o.skills = 1ull << pd_rng_below(r, NSKILL);
    if (pd_rng_below(r, 4) == 0) {
        o.n_slots = (uint32_t)(1 + pd_rng_below(r, 4));
        for (uint32_t i = 0; i < o.n_slots; i++) slots[i] = 1ull << pd_rng_below(r, NSKILL);
        o.slot_skills = slots;
    } else if (pd_rng_below(r, 5) == 0) {
        o.need = (uint32_t)(1 + pd_rng_below(r, 3));
    }
    o.tags = pd_rng_below(r, 10) == 0 ? 1 : 0;
    o.start_ms = s->now + (int64_t)pd_rng_below(r, 48) * 3600 * 1000;
    o.duration_min = (int32_t)pd_rng_below(r, 180);
    o.budget_s = pd_rng_below(r, 3) == 0 ? 0 : (int32_t)(300 + pd_rng_below(r, 1200));
    o.priority = (uint8_t)pd_rng_below(r, PD_PRIORITY__COUNT);
    o.mode = (uint8_t)pd_rng_below(r, PD_OFFER__COUNT);
    o.ignore_schedule = pd_rng_below(r, 4) == 0;
    return o;
}

/* One random command; returns its result. */
static pd_err storm_step(storm_t *s) {
    pd_rng_t *r = &s->rng;
    pd_engine_t *e = s->e;
    s->now += (int64_t)pd_rng_below(r, 20000);
    uint64_t slots[8];
    int c = (int)pd_rng_below(r, 100);
    if (c < 8) {
        pd_volunteer_t v = rand_vol(r, s->next_vol++);
        return pd_engine_volunteer_upsert(e, &v, s->now);
    }
    if (c < 12) {
        pd_volunteer_t v = rand_vol(r, any_vol(s));
        return pd_engine_volunteer_upsert(e, &v, s->now);
    }
    if (c < 18) {
        pd_latlng_t p = {LAT0 + (int32_t)pd_rng_range(r, -20000, 20000),
                         LON0 + (int32_t)pd_rng_range(r, -20000, 20000)};
        return pd_engine_volunteer_move(e, any_vol(s), p, s->now);
    }
    if (c < 21) {
        pd_volunteer_patch_t p;
        memset(&p, 0, sizeof p);
        p.fields = (uint32_t)pd_rng_below(r, PD_VF__ALL + 1);
        pd_volunteer_t v = rand_vol(r, 0);
        p.pos = v.pos;
        p.skills = v.skills;
        p.tags = v.tags;
        p.week = v.week;
        p.mode = v.mode;
        p.status = (uint8_t)pd_rng_below(r, PD_STATUS__COUNT);
        p.capacity = (uint8_t)pd_rng_below(r, 4); /* 0 and below-load included */
        return pd_engine_volunteer_update(e, any_vol(s), &p, s->now);
    }
    if (c < 23) return pd_engine_volunteer_remove(e, any_vol(s), s->now);
    if (c < 33) {
        pd_order_spec_t o = rand_order(s, s->next_order++, slots);
        return pd_engine_order_create(e, &o, s->now);
    }
    if (c < 43) {
        pd_order_spec_t o = rand_order(s, s->next_order++, slots);
        return pd_engine_order_create_dispatch(e, &o, s->now, NULL);
    }
    if (c < 48) return pd_engine_order_dispatch(e, any_order(s), s->now, NULL);
    if (c < 62) {
        uint64_t o = order_in(s, PD_ORDER_OFFERED);
        return pd_engine_order_accept(e, o, offered_vol(s, o), s->now);
    }
    if (c < 70) {
        uint64_t o = order_in(s, PD_ORDER_OFFERED);
        return pd_engine_order_decline(e, o, offered_vol(s, o), s->now);
    }
    if (c < 73) return pd_engine_order_cancel(e, any_order(s), s->now);
    if (c < 80) {
        int32_t m = pd_rng_below(r, 3) ? -1 : (int32_t)pd_rng_range(r, -2, 400);
        return pd_engine_order_complete(e, order_in(s, PD_ORDER_ACCEPTED), m, s->now);
    }
    if (c < 85) {
        return pd_engine_order_rate(e, order_in(s, PD_ORDER_COMPLETED), (int)pd_rng_range(r, 0, 6),
                                    s->now);
    }
    if (c < 91) {
        s->now += (int64_t)pd_rng_below(r, 150000);
        return pd_engine_tick(e, s->now, NULL);
    }
    if (c < 93) {
        /* a volunteer withdraws after accepting */
        uint64_t o = order_in(s, pd_rng_below(r, 2) ? PD_ORDER_ACCEPTED : PD_ORDER_OFFERED);
        return pd_engine_order_release(e, o, accepted_vol(s, o), s->now);
    }
    if (c < 95) {
        pd_batch_req_t req;
        memset(&req, 0, sizeof req);
        req.apply = (pd_batch_apply)pd_rng_below(r, 3);
        req.k = (uint32_t)pd_rng_below(r, 6);
        pd_batch_result_t res;
        pd_err err = pd_engine_batch(e, &req, s->now, &res);
        if (!err) {
            cr_assert_geq(res.optimal_score_ms, res.greedy_score_ms, "seed %llu",
                          (unsigned long long)s->seed);
        }
        return err;
    }
    if (c < 97) {
        pd_mobilise_t m;
        memset(&m, 0, sizeof m);
        m.at.lat = LAT0;
        m.at.lon = LON0;
        m.skills = 1ull << pd_rng_below(r, NSKILL);
        m.radius_m = 1000 + (double)pd_rng_below(r, 3000);
        m.mark_notified = true;
        pd_hit_t h[32];
        size_t n, tot;
        return pd_engine_mobilise(e, &m, s->now, h, 32, &n, &tot);
    }
    if (c < 98) return pd_engine_order_purge(e, s->now - 600000, NULL);
    /* Illegal on purpose: accept by someone never asked. */
    return pd_engine_order_accept(e, any_order(s), 888888888, s->now);
}

/* Run n steps; check invariants and no-change-on-error every step. */
static uint64_t storm_run(storm_t *s, long n, uint64_t *digests) {
    uint64_t before = pd_engine_digest(s->e);
    for (long i = 0; i < n; i++) {
        size_t ev_before = s->n_events;
        pd_err err = storm_step(s);
        uint64_t after = pd_engine_digest(s->e);
        if (err) {
            cr_assert_eq(after, before, "seed %llu step %ld: %s changed state",
                         (unsigned long long)s->seed, i, pd_err_name(err));
            cr_assert_eq(s->n_events, ev_before, "seed %llu step %ld: events on error",
                         (unsigned long long)s->seed, i);
            cr_assert(err != PD_ERR_NOMEM && err != PD_ERR_INTERNAL, "seed %llu step %ld: %s",
                      (unsigned long long)s->seed, i, pd_err_name(err));
        }
        check_valid(s->e, s->seed, i);
        if (digests) digests[i] = after ^ s->ev_hash;
        before = after;
    }
    return before;
}

static pd_engine_config_t storm_cfg(int variant) {
    pd_engine_config_t c;
    pd_engine_config_init(&c);
    c.policy = (pd_policy)(variant % PD_POLICY__COUNT);
    c.grab_width = 1 + (uint32_t)variant % 4;
    c.offer_timeout_s = 60 + 30 * variant;
    return c;
}

Test(storm, invariants_every_step) {
    uint64_t seed = pd_test_seed();
    for (int variant = 0; variant < 3; variant++) {
        fprintf(stderr, "storm invariants variant %d: seed %llu\n", variant,
                (unsigned long long)(seed + (uint64_t)variant));
        pd_engine_config_t c = storm_cfg(variant);
        storm_t s;
        storm_init(&s, seed + (uint64_t)variant, &c);
        for (int i = 0; i < 150; i++) {
            pd_volunteer_t v = rand_vol(&s.rng, s.next_vol++);
            cr_assert_eq(pd_engine_volunteer_upsert(s.e, &v, s.now), PD_OK);
        }
        storm_run(&s, 1800, NULL);
        pd_engine_stats_t st;
        pd_engine_get_stats(s.e, &st);
        fprintf(stderr, "  events:");
        for (int k = 0; k < PD_EVENT__COUNT; k++) {
            fprintf(stderr, " %s %zu", pd_event_type_name((pd_event_type)k), s.by_type[k]);
            cr_assert_gt(s.by_type[k], 0, "no %s event", pd_event_type_name((pd_event_type)k));
        }
        fprintf(stderr, "\n");
        cr_assert_gt(st.offers_made, 100);
        pd_engine_destroy(s.e);
    }
}

Test(storm, same_commands_same_digest) {
    uint64_t seed = pd_test_seed() ^ 0x5eed;
    fprintf(stderr, "storm determinism: seed %llu\n", (unsigned long long)seed);
    enum { N = 1500 };
    static uint64_t d1[N], d2[N];
    pd_engine_config_t c = storm_cfg(1);
    storm_t a, b;
    storm_init(&a, seed, &c);
    storm_init(&b, seed, &c);
    for (int i = 0; i < 120; i++) {
        pd_volunteer_t v = rand_vol(&a.rng, a.next_vol++);
        cr_assert_eq(pd_engine_volunteer_upsert(a.e, &v, a.now), PD_OK);
        v = rand_vol(&b.rng, b.next_vol++);
        cr_assert_eq(pd_engine_volunteer_upsert(b.e, &v, b.now), PD_OK);
    }
    storm_run(&a, N, d1);
    storm_run(&b, N, d2);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(d1[i], d2[i], "seed %llu: runs diverge at step %d", (unsigned long long)seed,
                     i);
    }
    cr_assert_eq(a.ev_hash, b.ev_hash);
    cr_assert_eq(a.n_events, b.n_events);
    /* A different storm gives a different state. */
    storm_t x;
    storm_init(&x, seed + 1, &c);
    for (int i = 0; i < 120; i++) {
        pd_volunteer_t v = rand_vol(&x.rng, x.next_vol++);
        cr_assert_eq(pd_engine_volunteer_upsert(x.e, &v, x.now), PD_OK);
    }
    storm_run(&x, 200, NULL);
    cr_assert_neq(pd_engine_digest(x.e), pd_engine_digest(a.e));
    pd_engine_destroy(a.e);
    pd_engine_destroy(b.e);
    pd_engine_destroy(x.e);
}

Test(storm, equivalent_histories_same_digest) {
    uint64_t seed = pd_test_seed() ^ 0xe9;
    fprintf(stderr, "storm equivalence: seed %llu\n", (unsigned long long)seed);
    enum { NV = 150, N = 1200 };
    static pd_volunteer_t vols[NV];
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    for (int i = 0; i < NV; i++) vols[i] = rand_vol(&r, (uint64_t)i + 1);
    pd_engine_config_t c = storm_cfg(2);
    storm_t a, b;
    storm_init(&a, seed, &c);
    storm_init(&b, seed, &c);
    /* a: in order. b: 60 strangers first (other slots), the volunteers in
     * reverse, a few upserted twice with a detour, then the strangers go. */
    for (int i = 0; i < NV; i++) cr_assert_eq(pd_engine_volunteer_upsert(a.e, &vols[i], T0), PD_OK);
    for (int i = 0; i < 60; i++) {
        pd_volunteer_t v = rand_vol(&r, 100000 + (uint64_t)i);
        cr_assert_eq(pd_engine_volunteer_upsert(b.e, &v, T0), PD_OK);
    }
    for (int i = NV - 1; i >= 0; i--) {
        pd_volunteer_t v = vols[i];
        if (i % 7 == 0) {
            v.pos.lat += 5000;
            v.capacity = 3;
            cr_assert_eq(pd_engine_volunteer_upsert(b.e, &v, T0), PD_OK);
        }
        cr_assert_eq(pd_engine_volunteer_upsert(b.e, &vols[i], T0), PD_OK);
    }
    for (int i = 0; i < 60; i += 2) {
        cr_assert_eq(pd_engine_volunteer_remove(b.e, 100000 + (uint64_t)i, T0), PD_OK);
    }
    for (int i = 59; i > 0; i -= 2) {
        cr_assert_eq(pd_engine_volunteer_remove(b.e, 100000 + (uint64_t)i, T0), PD_OK);
    }
    cr_assert_eq(pd_engine_digest(a.e), pd_engine_digest(b.e));
    a.next_vol = b.next_vol = NV + 1;
    static uint64_t d1[N], d2[N];
    storm_run(&a, N, d1);
    storm_run(&b, N, d2);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(d1[i], d2[i], "seed %llu: equivalent engines diverge at step %d",
                     (unsigned long long)seed, i);
    }
    pd_engine_destroy(a.e);
    pd_engine_destroy(b.e);
}

/* --------------------------------------------------------------- OOM */

typedef pd_err (*op_fn)(storm_t *s, void *arg);

/* Run op with the n-th allocation failing, n = 0, 1, ...: every NOMEM must
 * leave digest and invariants as they were; finally it succeeds. */
static pd_err with_oom(storm_t *s, op_fn op, void *arg, const char *what) {
    for (long n = 0; n < 10000; n++) {
        uint64_t before = pd_engine_digest(s->e);
        size_t ev = s->n_events;
        pd_alloc_fail_after(n);
        pd_err err = op(s, arg);
        pd_alloc_fail_after(-1);
        if (err != PD_ERR_NOMEM) return err;
        cr_assert_eq(pd_engine_digest(s->e), before, "%s: NOMEM at allocation %ld changed state",
                     what, n);
        cr_assert_eq(s->n_events, ev, "%s: NOMEM at allocation %ld emitted events", what, n);
        check_valid(s->e, s->seed, n);
    }
    cr_assert_fail("%s never succeeded", what);
    return PD_ERR_INTERNAL;
}

static pd_err op_upsert(storm_t *s, void *arg) {
    return pd_engine_volunteer_upsert(s->e, arg, s->now);
}
static pd_err op_create(storm_t *s, void *arg) {
    return pd_engine_order_create(s->e, arg, s->now);
}
static pd_err op_create_dispatch(storm_t *s, void *arg) {
    return pd_engine_order_create_dispatch(s->e, arg, s->now, NULL);
}
static pd_err op_dispatch(storm_t *s, void *arg) {
    return pd_engine_order_dispatch(s->e, *(uint64_t *)arg, s->now, NULL);
}
static pd_err op_decline(storm_t *s, void *arg) {
    uint64_t *ov = arg;
    return pd_engine_order_decline(s->e, ov[0], ov[1], s->now);
}
static pd_err op_tick(storm_t *s, void *arg) {
    (void)arg;
    return pd_engine_tick(s->e, s->now, NULL);
}
static pd_err op_remove(storm_t *s, void *arg) {
    return pd_engine_volunteer_remove(s->e, *(uint64_t *)arg, s->now);
}
static pd_err op_batch(storm_t *s, void *arg) {
    (void)arg;
    pd_batch_req_t req;
    memset(&req, 0, sizeof req);
    req.apply = PD_BATCH_APPLY_OPTIMAL;
    pd_batch_result_t res;
    return pd_engine_batch(s->e, &req, s->now, &res);
}

Test(storm, oom_leaves_state_unchanged) {
    uint64_t seed = pd_test_seed() ^ 0x00f;
    fprintf(stderr, "storm oom: seed %llu\n", (unsigned long long)seed);
    pd_engine_config_t c = storm_cfg(1);
    storm_t s;
    storm_init(&s, seed, &c);
    /* Upserts: new ones grow the index, the records and the cells. */
    for (int i = 0; i < 300; i++) {
        pd_volunteer_t v = rand_vol(&s.rng, s.next_vol++);
        cr_assert_eq(with_oom(&s, op_upsert, &v, "upsert new"), PD_OK);
    }
    for (int i = 0; i < 30; i++) {
        pd_volunteer_t v = rand_vol(&s.rng, 1 + pd_rng_below(&s.rng, 300));
        cr_assert_eq(with_oom(&s, op_upsert, &v, "upsert existing"), PD_OK);
    }
    /* Creates (array, map and slot masks grow), dispatches, declines, ticks. */
    uint64_t slots[8];
    for (int i = 0; i < 200; i++) {
        s.now += 1000;
        pd_order_spec_t o = rand_order(&s, s.next_order++, slots);
        o.ignore_schedule = true;
        if (i % 2) {
            cr_assert_eq(with_oom(&s, op_create, &o, "create"), PD_OK);
            if (i % 4 == 1) {
                cr_assert_eq(with_oom(&s, op_dispatch, &o.id, "dispatch"), PD_OK);
            }
        } else {
            cr_assert_eq(with_oom(&s, op_create_dispatch, &o, "create_dispatch"), PD_OK);
        }
        if (i % 3 == 0) {
            uint64_t ov[2] = {o.id, offered_vol(&s, o.id)};
            pd_err err = with_oom(&s, op_decline, ov, "decline");
            cr_assert(err == PD_OK || err == PD_ERR_ILLEGAL || err == PD_ERR_NOT_FOUND);
        }
        if (i % 10 == 0) {
            s.now += 100000;
            cr_assert_eq(with_oom(&s, op_tick, NULL, "tick"), PD_OK);
        }
        if (i % 25 == 0) {
            uint64_t v = 1 + pd_rng_below(&s.rng, 300);
            pd_err err = with_oom(&s, op_remove, &v, "remove");
            cr_assert(err == PD_OK || err == PD_ERR_ILLEGAL || err == PD_ERR_NOT_FOUND);
        }
    }
    for (int i = 0; i < 30; i++) {
        pd_order_spec_t o = rand_order(&s, s.next_order++, slots);
        cr_assert_eq(pd_engine_order_create(s.e, &o, s.now), PD_OK);
    }
    cr_assert_eq(with_oom(&s, op_batch, NULL, "batch"), PD_OK);
    s.now += 1000000;
    cr_assert_eq(with_oom(&s, op_tick, NULL, "tick all"), PD_OK);
    check_valid(s.e, seed, 0);
    pd_engine_destroy(s.e);
}

Test(storm, oom_on_create_engine) {
    for (long n = 0; n < 100; n++) {
        pd_engine_t *e = NULL;
        pd_alloc_fail_after(n);
        pd_err err = pd_engine_create(NULL, &e);
        pd_alloc_fail_after(-1);
        if (err == PD_OK) {
            pd_engine_destroy(e);
            return;
        }
        cr_assert_eq(err, PD_ERR_NOMEM);
    }
    cr_assert_fail("create never succeeded");
}
