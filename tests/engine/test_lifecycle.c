/* test_lifecycle.c -- the order life cycle at its edges, through the
 * public API: deadlines to the millisecond, times out of range, the
 * largest grab teams, teams whose slots need different skills (against a
 * brute force), and what each path writes on the volunteers' records
 * (checked against the events of a random storm: the offer counters add
 * up). Set PD_SEED to replay.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine_test.h"
#include "paidan/journal.h"

#define SAN (1ull << 6) /* sanitation */

static pd_engine_config_t nearest_cfg(void) {
    pd_engine_config_t c;
    pd_engine_config_init(&c);
    c.policy = PD_POLICY_NEAREST;
    return c;
}

static pd_volunteer_record_t rec_of(pd_engine_t *e, uint64_t id) {
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, id, T0, &vi), PD_OK);
    return vi.rec;
}

/* The engine through a snapshot file and back. */
static pd_engine_t *snapshot_clone(const pd_engine_t *e) {
    char path[] = "/tmp/pd_lifecycle_cloneXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    pd_snapshot_writer_t *w = NULL;
    cr_assert_eq(pd_snapshot_writer_create(path, 1, T0, 0, &w), PD_OK);
    cr_assert_eq(pd_engine_snapshot_write(e, w), PD_OK);
    cr_assert_eq(pd_snapshot_writer_commit(w), PD_OK);
    pd_snapshot_writer_destroy(w);
    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(path, &f, NULL), PD_OK);
    pd_engine_t *r = NULL;
    cr_assert_eq(pd_engine_snapshot_restore(f.data, (size_t)f.len, NULL, &r), PD_OK);
    pd_snapshot_file_close(&f);
    unlink(path);
    return r;
}

/* A grab team of 32 slots with a grab width of 32 holds 1024 live offers
 * at once: the order's live count must not wrap. */
Test(lifecycle, grab_team_counts_every_live_offer) {
    pd_engine_config_t c = nearest_cfg();
    c.grab_width = PD_MAX_GRAB_WIDTH;
    pd_engine_t *e = mk_engine(&c);
    const uint32_t n_vol = PD_ORDER_MAX_SLOTS * PD_MAX_GRAB_WIDTH + 8;
    for (uint32_t i = 0; i < n_vol; i++) add_vol(e, 1 + i, 10 + i, SAN, 1);
    pd_order_spec_t s = mk_order(10, SAN);
    s.need = PD_ORDER_MAX_SLOTS;
    s.mode = PD_OFFER_GRAB;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    pd_order_info_t oi;
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.n_live_offers, PD_ORDER_MAX_SLOTS * PD_MAX_GRAB_WIDTH);
    check_valid(e, 0, 0);
    /* A snapshot keeps the count (it was one byte there too), so a
     * server holding such an order recovers. */
    pd_engine_t *r = snapshot_clone(e);
    cr_assert_eq(pd_engine_digest(r), pd_engine_digest(e));
    cr_assert_eq(pd_engine_order_get(r, 10, &oi), PD_OK);
    cr_assert_eq(oi.n_live_offers, PD_ORDER_MAX_SLOTS * PD_MAX_GRAB_WIDTH);
    pd_engine_destroy(r);
    /* The first offer of each slot is accepted; the rest lose the race. */
    static pd_offer_t of[PD_ORDER_MAX_SLOTS * PD_MAX_GRAB_WIDTH];
    size_t n = 0;
    cr_assert_eq(pd_engine_order_offers(e, 10, of, sizeof of / sizeof of[0], &n), PD_OK);
    bool done[PD_ORDER_MAX_SLOTS] = {false};
    for (size_t i = 0; i < n; i++) {
        if (done[of[i].slot]) continue;
        done[of[i].slot] = true;
        cr_assert_eq(pd_engine_order_accept(e, 10, of[i].volunteer_id, T0 + 1000), PD_OK);
        check_valid(e, 0, (long)i);
    }
    cr_assert_eq(pd_engine_order_get(e, 10, &oi), PD_OK);
    cr_assert_eq(oi.state, PD_ORDER_ACCEPTED);
    cr_assert_eq(oi.n_live_offers, 0);
    pd_engine_destroy(e);
}

/* received = accepted + declined + expired + withdrawn + live now. */
static void counters_add_up(pd_engine_t *e, uint64_t id, uint32_t live_now) {
    pd_volunteer_record_t r = rec_of(e, id);
    cr_assert_eq(
        r.offers_received,
        r.offers_accepted + r.offers_declined + r.offers_expired + r.offers_withdrawn + live_now,
        "volunteer %llu: received %u, accepted %u, declined %u, expired %u, withdrawn %u, "
        "live %u",
        (unsigned long long)id, r.offers_received, r.offers_accepted, r.offers_declined,
        r.offers_expired, r.offers_withdrawn, live_now);
}

/* Accept at the deadline is late; one millisecond before is in time. */
Test(lifecycle, deadline_to_the_millisecond) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 200, SAN, 1);
    pd_order_spec_t s = mk_order(10, SAN);
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    uint64_t d = pd_engine_digest(e);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 120000), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_order_decline(e, 10, 1, T0 + 120000), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 120001), PD_ERR_ILLEGAL);
    cr_assert_eq(pd_engine_digest(e), d);
    cr_assert_eq(pd_engine_order_accept(e, 10, 1, T0 + 119999), PD_OK);
    counters_add_up(e, 1, 0);
    pd_engine_destroy(e);
}

/* A time past PD_TIME_MAX_MS is refused by every call that uses it, and
 * changes nothing: at INT64_MAX the offer deadline (now + timeout) used to
 * overflow, and a completion's local day did not fit the record. */
Test(lifecycle, now_out_of_range_is_refused) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 200, SAN, 1);
    pd_order_spec_t s = mk_order(10, SAN);
    cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_OK);
    s.id = 11;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    const int64_t bad[] = {INT64_MAX, INT64_MAX - 5, PD_TIME_MAX_MS + 1, -PD_TIME_MAX_MS - 1,
                           INT64_MIN};
    uint64_t d = pd_engine_digest(e);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = bad[i];
        cr_assert_eq(pd_engine_order_dispatch(e, 10, t, NULL), PD_ERR_BAD_ARG);
        s.id = 12;
        cr_assert_eq(pd_engine_order_create_dispatch(e, &s, t, NULL), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_order_accept(e, 11, 1, t), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_order_decline(e, 11, 1, t), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_order_cancel(e, 11, t), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_order_complete(e, 11, -1, t), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_order_rate(e, 11, 5, t), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_tick(e, t, NULL), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_volunteer_remove(e, 1, t), PD_ERR_BAD_ARG);
        cr_assert_eq(pd_engine_digest(e), d, "time %lld", (long long)t);
    }
    /* The ends of the range are fine. */
    cr_assert_eq(pd_engine_order_dispatch(e, 10, PD_TIME_MAX_MS, NULL), PD_OK);
    cr_assert_eq(pd_engine_order_accept(e, 10, 2, PD_TIME_MAX_MS), PD_OK);
    cr_assert_eq(pd_engine_order_complete(e, 10, 30, PD_TIME_MAX_MS), PD_OK);
    pd_volunteer_info_t vi;
    cr_assert_eq(pd_engine_volunteer_get(e, 2, PD_TIME_MAX_MS, &vi), PD_OK);
    cr_assert_eq(vi.rec.minutes_7d, 30);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* ------------------------------------------------- records against events */

/* What the events say each volunteer's record holds. Ids are small. */
#define MAXV 64
typedef struct vmodel_s {
    bool present;
    uint32_t received, accepted, declined, expired, withdrawn, live, releases;
    uint32_t minutes, completed, rating_count, rating_sum;
    int64_t last_served;
} vmodel_t;

typedef struct rstorm_s {
    pd_engine_t *e;
    pd_rng_t rng;
    int64_t now;
    uint64_t next_order;
    vmodel_t v[MAXV + 1];
} rstorm_t;

static void rstorm_event(void *ud, const pd_event_t *ev) {
    rstorm_t *s = ud;
    vmodel_t *m = ev->has_volunteer && ev->volunteer_id <= MAXV ? &s->v[ev->volunteer_id] : NULL;
    switch (ev->type) {
        case PD_EVENT_OFFERED:
            m->received++, m->live++;
            break;
        case PD_EVENT_ACCEPTED:
            m->accepted++, m->live--;
            break;
        case PD_EVENT_DECLINED:
            m->declined++, m->live--;
            break;
        case PD_EVENT_OFFER_EXPIRED:
            m->expired++, m->live--;
            break;
        case PD_EVENT_OFFER_WITHDRAWN:
            m->withdrawn++, m->live--;
            break;
        case PD_EVENT_RELEASED:
            if (ev->reason == PD_REASON_WITHDREW) m->releases++;
            break;
        case PD_EVENT_COMPLETED:
        case PD_EVENT_RATED: {
            pd_order_slot_t sl[PD_ORDER_MAX_SLOTS];
            size_t n = 0;
            cr_assert_eq(pd_engine_order_slots(s->e, ev->order_id, sl, PD_ORDER_MAX_SLOTS, &n),
                         PD_OK);
            for (size_t i = 0; i < n; i++) {
                cr_assert(sl[i].filled);
                vmodel_t *x = &s->v[sl[i].volunteer_id];
                if (!x->present) continue;
                if (ev->type == PD_EVENT_COMPLETED) {
                    x->minutes += ev->minutes, x->completed++, x->last_served = ev->at_ms;
                } else {
                    x->rating_count++, x->rating_sum += ev->rating;
                }
            }
            break;
        }
        default:
            break;
    }
}

static void rstorm_check(rstorm_t *s, uint64_t seed, long step) {
    check_valid(s->e, seed, step);
    for (uint64_t id = 1; id <= MAXV; id++) {
        const vmodel_t *m = &s->v[id];
        pd_volunteer_info_t vi;
        pd_err err = pd_engine_volunteer_get(s->e, id, s->now, &vi);
        cr_assert_eq(err == PD_OK, m->present, "seed %llu step %ld vol %llu",
                     (unsigned long long)seed, step, (unsigned long long)id);
        if (!m->present) continue;
        const pd_volunteer_record_t *r = &vi.rec;
        cr_assert(r->offers_received == m->received && r->offers_accepted == m->accepted &&
                      r->offers_declined == m->declined && r->offers_expired == m->expired &&
                      r->offers_withdrawn == m->withdrawn && r->releases == m->releases,
                  "seed %llu step %ld vol %llu: offer counters", (unsigned long long)seed, step,
                  (unsigned long long)id);
        cr_assert_eq(r->offers_received, r->offers_accepted + r->offers_declined +
                                             r->offers_expired + r->offers_withdrawn + m->live);
        cr_assert(r->minutes_total == m->minutes && r->orders_completed == m->completed &&
                      r->rating_count == m->rating_count && r->rating_sum == m->rating_sum &&
                      r->last_served_ms == m->last_served,
                  "seed %llu step %ld vol %llu: service record", (unsigned long long)seed, step,
                  (unsigned long long)id);
    }
}

/* A random open order's id, or 0. */
static uint64_t pick_order(rstorm_t *s, pd_order_state want) {
    size_t n = pd_engine_order_count(s->e, want);
    if (n == 0 || s->next_order <= 1) return 0;
    for (int tries = 0; tries < 32; tries++) {
        uint64_t id = 1 + pd_rng_below(&s->rng, s->next_order - 1);
        pd_order_info_t oi;
        if (pd_engine_order_get(s->e, id, &oi) == PD_OK && oi.state == want) return id;
    }
    return 0;
}

static void rstorm_step(rstorm_t *s) {
    pd_rng_t *r = &s->rng;
    uint64_t vid = 1 + pd_rng_below(r, MAXV);
    uint32_t c = (uint32_t)pd_rng_below(r, 100);
    if (c < 10) { /* a volunteer comes or changes */
        pd_volunteer_t v = mk_vol(vid, (double)pd_rng_below(r, 3000), SAN | (1ull << 3),
                                  (uint8_t)(1 + pd_rng_below(r, 3)));
        if (pd_rng_below(r, 5) == 0) v.status = PD_STATUS_OFFLINE;
        if (pd_engine_volunteer_upsert(s->e, &v, s->now) == PD_OK) {
            if (!s->v[vid].present) memset(&s->v[vid], 0, sizeof s->v[vid]);
            s->v[vid].present = true;
        }
    } else if (c < 14) {
        if (pd_engine_volunteer_remove(s->e, vid, s->now) == PD_OK) {
            memset(&s->v[vid], 0, sizeof s->v[vid]);
        }
    } else if (c < 34) {
        pd_order_spec_t o = mk_order(s->next_order++, SAN);
        o.need = 1 + (uint32_t)pd_rng_below(r, 3);
        o.mode = pd_rng_below(r, 2) ? PD_OFFER_GRAB : PD_OFFER_SEQUENTIAL;
        o.priority = (uint8_t)pd_rng_below(r, PD_PRIORITY__COUNT);
        o.ignore_schedule = true;
        (void)pd_engine_order_create_dispatch(s->e, &o, s->now, NULL);
    } else if (c < 60) { /* answer a live offer, now and then at its deadline */
        uint64_t oid = pick_order(s, PD_ORDER_OFFERED);
        if (!oid) return;
        pd_offer_t of[128];
        size_t n = 0;
        cr_assert_eq(pd_engine_order_offers(s->e, oid, of, 128, &n), PD_OK);
        for (size_t i = 0; i < n; i++) {
            if (of[i].state != PD_OFFER_LIVE) continue;
            int64_t at = pd_rng_below(r, 8) ? s->now : of[i].deadline_ms;
            if (at < s->now) at = s->now;
            pd_err err = pd_rng_below(r, 3)
                             ? pd_engine_order_accept(s->e, oid, of[i].volunteer_id, at)
                             : pd_engine_order_decline(s->e, oid, of[i].volunteer_id, at);
            cr_assert_eq(err, at >= of[i].deadline_ms ? PD_ERR_ILLEGAL : PD_OK);
            if (err == PD_OK) s->now = at;
            break;
        }
    } else if (c < 63) { /* a volunteer holding a slot withdraws */
        uint64_t oid = pick_order(s, pd_rng_below(r, 2) ? PD_ORDER_ACCEPTED : PD_ORDER_OFFERED);
        if (!oid) return;
        pd_offer_t of[128];
        size_t n = 0;
        cr_assert_eq(pd_engine_order_offers(s->e, oid, of, 128, &n), PD_OK);
        for (size_t i = 0; i < n; i++) {
            if (of[i].state != PD_OFFER_ACCEPTED) continue;
            cr_assert_eq(pd_engine_order_release(s->e, oid, of[i].volunteer_id, s->now), PD_OK);
            break;
        }
    } else if (c < 66) {
        uint64_t oid = pick_order(s, (pd_order_state)pd_rng_below(r, 3));
        if (oid) cr_assert_eq(pd_engine_order_cancel(s->e, oid, s->now), PD_OK);
    } else if (c < 80) {
        uint64_t oid = pick_order(s, PD_ORDER_ACCEPTED);
        static const int32_t mins[] = {-1, 0, 1, 59, 600, PD_MAX_MINUTES_SERVED};
        if (oid) {
            int32_t m = mins[pd_rng_below(r, 6)];
            cr_assert_eq(pd_engine_order_complete(s->e, oid, m, s->now), PD_OK);
        }
    } else if (c < 88) {
        uint64_t oid = pick_order(s, PD_ORDER_COMPLETED);
        if (oid) {
            int rating = (int)pd_rng_below(r, 7);
            pd_err want = rating >= 1 && rating <= 5 ? PD_OK : PD_ERR_BAD_ARG;
            cr_assert_eq(pd_engine_order_rate(s->e, oid, rating, s->now), want);
        }
    } else {
        s->now += (int64_t)pd_rng_below(r, 150000) + (pd_rng_below(r, 10) ? 0 : 86400000);
        cr_assert_eq(pd_engine_tick(s->e, s->now, NULL), PD_OK);
    }
}

Test(lifecycle, records_agree_with_the_events) {
    uint64_t seed = pd_test_seed() ^ 0x11fe;
    for (int run = 0; run < 6; run++) {
        rstorm_t *s = calloc(1, sizeof *s);
        pd_engine_config_t c = nearest_cfg();
        c.policy = (pd_policy)(run % PD_POLICY__COUNT);
        c.grab_width = run < 3 ? 3 : 2;
        s->e = mk_engine(&c);
        pd_rng_seed(&s->rng, seed + (uint64_t)run);
        s->now = T0;
        s->next_order = 1;
        pd_engine_set_event_cb(s->e, rstorm_event, s);
        for (long step = 0; step < 1500; step++) {
            rstorm_step(s);
            rstorm_check(s, seed + (uint64_t)run, step);
        }
        pd_engine_destroy(s->e);
        free(s);
    }
}

/* --------------------------------------------------------------- teams */

#define MED (1ull << 3) /* medical-fitness */

/* A team of one sanitation and one medical slot; the nearest volunteer
 * has both skills, the next only sanitation. Planned slot by slot, the
 * sanitation slot took the medic and the medical slot found nobody: the
 * order expired (no_candidate) though both slots could be served. */
Test(lifecycle, team_gives_the_rare_skill_to_its_slot) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN | MED, 1);
    add_vol(e, 2, 200, SAN, 1);
    const uint64_t team[] = {SAN, MED};
    pd_order_spec_t s = mk_order(10, 0);
    s.slot_skills = team;
    s.n_slots = 2;
    pd_order_state st;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_OFFERED);
    pd_order_slot_t sl[2];
    size_t n;
    cr_assert_eq(pd_engine_order_slots(e, 10, sl, 2, &n), PD_OK);
    cr_assert_eq(sl[0].n_live_offers, 1);
    cr_assert_eq(sl[1].n_live_offers, 1);
    pd_offer_t of[4];
    cr_assert_eq(pd_engine_order_offers(e, 10, of, 4, &n), PD_OK);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(of[i].volunteer_id, of[i].slot == 0 ? 2u : 1u);
    }
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

#define TUT (1ull << 2) /* tutoring */

/* Can slots [s..n) each get a distinct volunteer of vols[] (skill masks,
 * `used` bits taken)? */
static bool sdr(const uint64_t *slots, uint32_t s, uint32_t n, const uint64_t *vols, uint32_t nv,
                uint32_t used) {
    if (s == n) return true;
    for (uint32_t v = 0; v < nv; v++) {
        if (used >> v & 1 || (vols[v] & slots[s]) != slots[s]) continue;
        if (sdr(slots, s + 1, n, vols, nv, used | 1u << v)) return true;
    }
    return false;
}

/* The skills the brute-force tests draw from. */
static const uint64_t team_skills[3] = {SAN, MED, TUT};

/* A volunteer's random skills: one to three of team_skills. */
static uint64_t random_skills(pd_rng_t *r) {
    uint64_t m = 0;
    while (!m) {
        for (int b = 0; b < 3; b++)
            if (pd_rng_below(r, 2)) m |= team_skills[b];
    }
    return m;
}

/* A random team of 2..5 slots, a quarter of them needing two skills;
 * returns the slot count. */
static uint32_t random_team(pd_rng_t *r, uint64_t team[8]) {
    uint32_t ns = 2 + (uint32_t)pd_rng_below(r, 4);
    for (uint32_t s = 0; s < ns; s++) {
        team[s] = team_skills[pd_rng_below(r, 3)];
        if (pd_rng_below(r, 4) == 0) team[s] |= team_skills[pd_rng_below(r, 3)];
    }
    return ns;
}

/* Small random teams against a brute force: the first dispatch offers
 * every slot whenever distinct qualified volunteers exist for all (each
 * slot gets one offer, or up to grab_width in grab mode, nobody twice). */
Test(lifecycle, team_dispatch_against_brute_force) {
    uint64_t seed = pd_test_seed() ^ 0x7ea;
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    size_t feasible = 0, offered = 0;
    for (int round = 0; round < 3000; round++) {
        pd_engine_config_t c = nearest_cfg();
        pd_engine_t *e = mk_engine(&c);
        uint32_t nv = 1 + (uint32_t)pd_rng_below(&r, 6);
        uint64_t vols[8];
        for (uint32_t v = 0; v < nv; v++) {
            vols[v] = random_skills(&r);
            add_vol(e, 1 + v, 100 + 37.0 * v, vols[v], 1);
        }
        uint64_t team[8];
        uint32_t ns = random_team(&r, team);
        pd_order_spec_t o = mk_order(10, 0);
        o.slot_skills = team;
        o.n_slots = ns;
        o.mode = pd_rng_below(&r, 2) ? PD_OFFER_GRAB : PD_OFFER_SEQUENTIAL;
        pd_order_state st;
        cr_assert_eq(pd_engine_order_create_dispatch(e, &o, T0, &st), PD_OK);
        bool want = sdr(team, 0, ns, vols, nv, 0);
        feasible += want;
        offered += st == PD_ORDER_OFFERED;
        cr_assert_eq(st == PD_ORDER_OFFERED, want, "seed %llu round %d", (unsigned long long)seed,
                     round);
        pd_order_slot_t sl[8];
        size_t n = 0;
        cr_assert_eq(pd_engine_order_slots(e, 10, sl, 8, &n), PD_OK);
        uint32_t width = o.mode == PD_OFFER_GRAB ? c.grab_width : 1;
        for (size_t i = 0; i < n && want; i++) {
            cr_assert(sl[i].n_live_offers >= 1 && sl[i].n_live_offers <= width,
                      "seed %llu round %d", (unsigned long long)seed, round);
        }
        check_valid(e, seed, round);
        pd_engine_destroy(e);
    }
    cr_assert_eq(offered, feasible);
}

/* The same at a tick that re-offers two slots of a team at once. */
Test(lifecycle, tick_refill_gives_the_rare_skill_to_its_slot) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 200, SAN | MED, 1);
    const uint64_t team[] = {SAN, MED};
    pd_order_spec_t s = mk_order(10, 0);
    s.slot_skills = team;
    s.n_slots = 2;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, NULL), PD_OK);
    add_vol(e, 3, 50, SAN | MED, 1);
    add_vol(e, 4, 400, SAN, 1);
    size_t n = 0;
    cr_assert_eq(pd_engine_tick(e, T0 + 120000, &n), PD_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED);
    pd_offer_t of[8];
    cr_assert_eq(pd_engine_order_offers(e, 10, of, 8, &n), PD_OK);
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        if (of[i].state != PD_OFFER_LIVE) continue;
        live++;
        cr_assert_eq(of[i].volunteer_id, of[i].slot == 0 ? 4u : 3u);
    }
    cr_assert_eq(live, 2);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* Teams re-offered after accepts, declines and expiries (some slots
 * filled, grab or not, every policy) against the brute force: after each
 * decline or tick the order is still offered exactly when distinct
 * volunteers never asked for it can cover the slots left open, and every
 * slot not filled then holds 1..width live offers. A copy restored from a
 * snapshot at a random step takes the same commands to the same digest. */
Test(lifecycle, team_refill_against_brute_force) {
    uint64_t seed = pd_test_seed() ^ 0x5151;
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    size_t offered = 0, expired = 0;
    for (int round = 0; round < 1000; round++) {
        pd_engine_config_t c = nearest_cfg();
        c.policy = (pd_policy)pd_rng_below(&r, PD_POLICY__COUNT);
        c.grab_width = 1 + (uint32_t)pd_rng_below(&r, 3);
        pd_engine_t *eng[2] = {mk_engine(&c), NULL};
        uint32_t nv = 2 + (uint32_t)pd_rng_below(&r, 7);
        uint64_t vols[16];
        for (uint32_t v = 0; v < nv; v++) {
            vols[v] = random_skills(&r);
            add_vol(eng[0], 1 + v, 100 + 37.0 * v, vols[v], (uint8_t)(1 + pd_rng_below(&r, 2)));
        }
        uint64_t team[8];
        uint32_t ns = random_team(&r, team);
        pd_order_spec_t o = mk_order(10, 0);
        o.slot_skills = team;
        o.n_slots = ns;
        o.mode = pd_rng_below(&r, 2) ? PD_OFFER_GRAB : PD_OFFER_SEQUENTIAL;
        const uint32_t width = o.mode == PD_OFFER_GRAB ? c.grab_width : 1;
        pd_order_state st;
        cr_assert_eq(pd_engine_order_create_dispatch(eng[0], &o, T0, &st), PD_OK);
        int64_t now = T0;
        int clone_at = (int)pd_rng_below(&r, 8);
        for (int step = 0; step < 8 && st == PD_ORDER_OFFERED; step++) {
            if (step == clone_at) eng[1] = snapshot_clone(eng[0]);
            pd_offer_t of[128];
            size_t n = 0;
            cr_assert_eq(pd_engine_order_offers(eng[0], 10, of, 128, &n), PD_OK);
            uint32_t asked = 0; /* bit v-1: volunteer v was asked */
            size_t live[128], nl = 0;
            int64_t first = INT64_MAX;
            for (size_t i = 0; i < n; i++) {
                asked |= 1u << (of[i].volunteer_id - 1);
                if (of[i].state != PD_OFFER_LIVE) continue;
                live[nl++] = i;
                if (of[i].deadline_ms < first) first = of[i].deadline_ms;
            }
            bool gone[128] = {false};
            uint32_t act = (uint32_t)pd_rng_below(&r, 4);
            if (act == 2 && nv < 16) { /* someone new comes */
                vols[nv] = team_skills[pd_rng_below(&r, 3)] |
                           (pd_rng_below(&r, 2) ? team_skills[pd_rng_below(&r, 3)] : 0);
                double d = 50 + 40.0 * (double)pd_rng_below(&r, 10);
                uint8_t cap = (uint8_t)(1 + pd_rng_below(&r, 2));
                for (int x = 0; x < 2; x++)
                    if (eng[x]) add_vol(eng[x], 1 + nv, d, vols[nv], cap);
                nv++;
                continue;
            }
            if (act == 0) { /* accept */
                size_t i = live[pd_rng_below(&r, nl)];
                for (int x = 0; x < 2; x++)
                    if (eng[x])
                        cr_assert_eq(pd_engine_order_accept(eng[x], 10, of[i].volunteer_id, now),
                                     PD_OK);
                st = order_state(eng[0], 10);
                continue;
            }
            if (act == 1) { /* decline */
                size_t i = live[pd_rng_below(&r, nl)];
                gone[i] = true;
                for (int x = 0; x < 2; x++)
                    if (eng[x])
                        cr_assert_eq(pd_engine_order_decline(eng[x], 10, of[i].volunteer_id, now),
                                     PD_OK);
            } else { /* the first deadline passes */
                now = first;
                for (size_t j = 0; j < nl; j++) gone[live[j]] = of[live[j]].deadline_ms <= now;
                for (int x = 0; x < 2; x++)
                    if (eng[x]) cr_assert_eq(pd_engine_tick(eng[x], now, NULL), PD_OK);
            }
            bool filled[8] = {false}, held[8] = {false};
            for (size_t i = 0; i < n; i++) {
                if (of[i].state == PD_OFFER_ACCEPTED) filled[of[i].slot] = true;
                if (of[i].state == PD_OFFER_LIVE && !gone[i]) held[of[i].slot] = true;
            }
            uint64_t open[8];
            uint32_t n_open = 0;
            for (uint32_t s = 0; s < ns; s++)
                if (!filled[s] && !held[s]) open[n_open++] = team[s];
            bool want = sdr(open, 0, n_open, vols, nv, asked);
            st = order_state(eng[0], 10);
            cr_assert_eq(st == PD_ORDER_OFFERED, want, "seed %llu round %d step %d",
                         (unsigned long long)seed, round, step);
            check_valid(eng[0], seed, round);
            if (eng[1]) {
                cr_assert_eq(pd_engine_digest(eng[1]), pd_engine_digest(eng[0]),
                             "seed %llu round %d step %d: the restored copy diverges",
                             (unsigned long long)seed, round, step);
            }
            if (st != PD_ORDER_OFFERED) {
                expired++;
                break;
            }
            offered++;
            pd_order_slot_t sl[8];
            cr_assert_eq(pd_engine_order_slots(eng[0], 10, sl, 8, &n), PD_OK);
            for (size_t i = 0; i < n; i++) {
                cr_assert(
                    sl[i].filled || (sl[i].n_live_offers >= 1 && sl[i].n_live_offers <= width),
                    "seed %llu round %d step %d slot %zu", (unsigned long long)seed, round, step,
                    i);
            }
        }
        for (int x = 0; x < 2; x++) pd_engine_destroy(eng[x]);
    }
    cr_assert_gt(offered, 100);
    cr_assert_gt(expired, 100);
}
