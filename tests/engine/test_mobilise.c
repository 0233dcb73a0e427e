/* test_mobilise.c -- mobilisation against a brute-force oracle: every
 * volunteer is scanned with the index's own metric (pd_latlng_fast_m), the
 * same filters and the same ETA rule, sorted by ETA then id; the engine
 * must return exactly the first `limit` of them and the same total. Some
 * volunteers hold offers (full) or are offline, so availability is tested
 * too; marking updates exactly the returned volunteers. Set PD_SEED to replay.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "engine_test.h"

#define NV 3000

typedef struct cand_s {
    uint64_t id;
    double eta;
} cand_t;

typedef struct oracle_s {
    const pd_engine_config_t *cfg;
    const pd_mobilise_t *m;
    pd_week_t need;
    cand_t *out;
    size_t n;
} oracle_t;

static bool oracle_one(void *ud, const pd_volunteer_info_t *vi) {
    oracle_t *o = ud;
    const pd_volunteer_t *v = &vi->v;
    const pd_mobilise_t *m = o->m;
    if ((v->skills & m->skills) != m->skills || (v->tags & m->tags) != m->tags) return true;
    if (!m->include_unavailable && (v->status != PD_STATUS_ONLINE || v->load >= v->capacity)) {
        return true;
    }
    if (m->check_schedule && !pd_week_covers(&v->week, &o->need)) return true;
    double d = pd_latlng_fast_m(m->at, v->pos);
    if (m->radius_m > 0 && d > m->radius_m) return true;
    double eta = d * o->cfg->index.detour / (o->cfg->index.speed_kmh[v->mode] / 3.6);
    if (m->budget_s > 0 && eta > m->budget_s) return true;
    o->out[o->n].id = v->id;
    o->out[o->n].eta = eta;
    o->n++;
    return true;
}

static int cmp_cand(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (x->eta != y->eta) return x->eta < y->eta ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

Test(mobilise, against_brute_force) {
    uint64_t seed = pd_test_seed() ^ 0x40b;
    fprintf(stderr, "mobilise: seed %llu\n", (unsigned long long)seed);
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    pd_engine_config_t cfg;
    pd_engine_config_init(&cfg);
    pd_engine_t *e = mk_engine(&cfg);
    for (uint64_t i = 1; i <= NV; i++) {
        pd_volunteer_t v =
            mk_vol(i, 0, 1 + pd_rng_below(&r, 15), (uint8_t)(1 + pd_rng_below(&r, 2)));
        v.pos.lat = LAT0 + (int32_t)pd_rng_range(&r, -50000, 50000);
        v.pos.lon = LON0 + (int32_t)pd_rng_range(&r, -50000, 50000);
        v.tags = pd_rng_below(&r, 3) == 0;
        v.mode = (uint8_t)pd_rng_below(&r, PD_MODE__COUNT);
        v.status = pd_rng_below(&r, 6) == 0 ? PD_STATUS_OFFLINE : PD_STATUS_ONLINE;
        if (pd_rng_below(&r, 3) == 0) {
            v.week = pd_week_none();
            for (int d = 0; d < 5; d++) (void)pd_week_add_range(&v.week, d, 9, 17);
        }
        cr_assert_eq(pd_engine_volunteer_upsert(e, &v, T0), PD_OK);
    }
    /* Some volunteers fill up with offers. */
    for (uint64_t o = 1; o <= 300; o++) {
        pd_order_spec_t s = mk_order(o, 1ull << pd_rng_below(&r, 4));
        s.at.lat = LAT0 + (int32_t)pd_rng_range(&r, -50000, 50000);
        s.at.lon = LON0 + (int32_t)pd_rng_range(&r, -50000, 50000);
        s.mode = PD_OFFER_GRAB;
        s.ignore_schedule = true;
        cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    }
    check_valid(e, seed, 0);
    static cand_t want[NV];
    static pd_hit_t got[NV];
    for (int q = 0; q < 300; q++) {
        pd_mobilise_t m;
        memset(&m, 0, sizeof m);
        m.at.lat = LAT0 + (int32_t)pd_rng_range(&r, -40000, 40000);
        m.at.lon = LON0 + (int32_t)pd_rng_range(&r, -40000, 40000);
        m.skills = pd_rng_below(&r, 3) ? 1ull << pd_rng_below(&r, 4) : 0;
        m.tags = pd_rng_below(&r, 5) == 0;
        int shape = (int)pd_rng_below(&r, 3);
        if (shape != 1) m.radius_m = 200 + (double)pd_rng_below(&r, 8000);
        if (shape != 0) m.budget_s = 60 + (double)pd_rng_below(&r, 1800);
        m.include_unavailable = pd_rng_below(&r, 4) == 0;
        m.check_schedule = pd_rng_below(&r, 3) == 0;
        m.start_ms = T0 + (int64_t)pd_rng_below(&r, 7 * 24) * 3600 * 1000;
        m.duration_min = (int32_t)pd_rng_below(&r, 240);
        m.mark_notified = pd_rng_below(&r, 2);
        oracle_t o = {&cfg, &m, pd_week_none(), want, 0};
        if (m.check_schedule) {
            cr_assert_eq(pd_engine_week_window(e, m.start_ms, m.duration_min, &o.need), PD_OK);
        }
        pd_engine_foreach_volunteer(e, T0, oracle_one, &o);
        qsort(want, o.n, sizeof *want, cmp_cand);
        size_t limit = pd_rng_below(&r, 4) == 0 ? NV : pd_rng_below(&r, 200);
        size_t n = 0, total = 0;
        /* Notified counters before, to check marking. */
        uint32_t before = 0;
        if (o.n) {
            pd_volunteer_info_t vi;
            cr_assert_eq(pd_engine_volunteer_get(e, want[0].id, T0, &vi), PD_OK);
            before = vi.rec.notified_count;
        }
        int64_t now = T0 + q;
        cr_assert_eq(pd_engine_mobilise(e, &m, now, got, limit, &n, &total), PD_OK);
        cr_assert_eq(total, o.n, "seed %llu query %d: total %zu, oracle %zu",
                     (unsigned long long)seed, q, total, o.n);
        size_t expect = o.n < limit ? o.n : limit;
        cr_assert_eq(n, expect, "seed %llu query %d", (unsigned long long)seed, q);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(got[i].id, want[i].id, "seed %llu query %d hit %zu: %llu, oracle %llu",
                         (unsigned long long)seed, q, i, (unsigned long long)got[i].id,
                         (unsigned long long)want[i].id);
        }
        if (n) {
            pd_volunteer_info_t vi;
            cr_assert_eq(pd_engine_volunteer_get(e, got[0].id, T0, &vi), PD_OK);
            cr_assert_eq(vi.rec.notified_count, before + (m.mark_notified ? 1 : 0));
            if (m.mark_notified) cr_assert_eq(vi.rec.last_notified_ms, now);
        }
        if (o.n > n && m.mark_notified) {
            pd_volunteer_info_t vi;
            uint64_t beyond = want[n].id;
            bool returned = false;
            for (size_t i = 0; i < n; i++) returned |= got[i].id == beyond;
            cr_assert(!returned);
            cr_assert_eq(pd_engine_volunteer_get(e, beyond, T0, &vi), PD_OK);
            cr_assert_neq(vi.rec.last_notified_ms, now);
        }
    }
    pd_engine_destroy(e);
}

Test(mobilise, bad_requests_change_nothing) {
    pd_engine_t *e = mk_engine(NULL);
    add_vol(e, 1, 100, 1, 1);
    uint64_t d = pd_engine_digest(e);
    pd_mobilise_t m;
    memset(&m, 0, sizeof m);
    m.at = north_m(0);
    m.mark_notified = true;
    pd_hit_t h[4];
    size_t n, t;
    cr_assert_eq(pd_engine_mobilise(e, &m, T0, h, 4, &n, &t), PD_ERR_BAD_ARG); /* no bound */
    m.radius_m = 1000;
    m.skills = 1ull << 50;
    cr_assert_eq(pd_engine_mobilise(e, &m, T0, h, 4, &n, &t), PD_ERR_UNKNOWN_SKILL);
    m.skills = 0;
    m.at.lat = 95000000;
    cr_assert_eq(pd_engine_mobilise(e, &m, T0, h, 4, &n, &t), PD_ERR_BAD_COORD);
    m.at = north_m(0);
    m.check_schedule = true;
    m.duration_min = -5;
    cr_assert_eq(pd_engine_mobilise(e, &m, T0, h, 4, &n, &t), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_digest(e), d);
    m.check_schedule = false;
    /* Marking stores now_ms: past PD_TIME_MAX_MS it is refused like any
     * other call's time (a read is not). */
    const int64_t bad[] = {INT64_MAX, PD_TIME_MAX_MS + 1, -PD_TIME_MAX_MS - 1, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(pd_engine_mobilise(e, &m, bad[i], h, 4, &n, &t), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_digest(e), d);
    }
    m.mark_notified = false;
    cr_assert_eq(pd_engine_mobilise(e, &m, INT64_MAX, h, 4, &n, &t), PD_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(pd_engine_digest(e), d);
    m.mark_notified = true;
    cr_assert_eq(pd_engine_mobilise(e, &m, T0, NULL, 0, &n, &t), PD_OK); /* count only */
    cr_assert_eq(n, 0);
    cr_assert_eq(t, 1);
    cr_assert_eq(pd_engine_digest(e), d);
    pd_engine_destroy(e);
}

/* An event callback may read the engine (engine.h, pd_event_fn), and a
 * mobilisation that marks nobody is a read: a platform counting who is
 * around when an order expires for want of candidates. Marking writes, so
 * it is refused there and changes nothing. */
typedef struct in_cb_s {
    pd_engine_t *e;
    int calls;
    pd_err read_err, mark_err;
    size_t total;
    uint64_t digest_before, digest_after;
} in_cb_t;

static void mobilise_in_cb(void *ud, const pd_event_t *ev) {
    in_cb_t *c = ud;
    if (ev->type != PD_EVENT_EXPIRED) return;
    c->calls++;
    pd_mobilise_t m;
    memset(&m, 0, sizeof m);
    m.at = north_m(0);
    m.radius_m = 5000;
    pd_hit_t h[4];
    size_t n = 0;
    c->read_err = pd_engine_mobilise(c->e, &m, T0, h, 4, &n, &c->total);
    m.mark_notified = true;
    c->digest_before = pd_engine_digest(c->e);
    c->mark_err = pd_engine_mobilise(c->e, &m, T0, h, 4, &n, NULL);
    c->digest_after = pd_engine_digest(c->e);
}

Test(mobilise, reads_from_an_event_callback) {
    pd_engine_t *e = mk_engine(NULL);
    add_vol(e, 1, 100, 1, 1);
    add_vol(e, 2, 200, 1, 1);
    in_cb_t c;
    memset(&c, 0, sizeof c);
    c.e = e;
    pd_engine_set_event_cb(e, mobilise_in_cb, &c);
    pd_order_spec_t s = mk_order(10, 2); /* nobody has skill 1 */
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.read_err, PD_OK);
    cr_assert_eq(c.total, 2);
    cr_assert_eq(c.mark_err, PD_ERR_ILLEGAL);
    cr_assert_eq(c.digest_after, c.digest_before);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 1, T0, &vi), PD_OK);
    cr_assert_eq(vi.rec.notified_count, 0);
    pd_engine_destroy(e);
}
