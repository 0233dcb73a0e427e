/* test_batch.c -- batch dispatch through the engine: the classic instance
 * where greedy loses, priority, team slots, applying, errors, and random
 * counties where the optimal total must match a brute force over the same
 * candidate graph (small) and beat or tie greedy (large), with every pair
 * feasible. Set PD_SEED to replay.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "engine_test.h"

#define SAN (1ull << 6)
#define MED (1ull << 3)

static pd_engine_config_t nearest_cfg(void) {
    pd_engine_config_t c;
    pd_engine_config_init(&c);
    c.policy = PD_POLICY_NEAREST;
    return c;
}

Test(batch, greedy_loses_optimal_wins) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 700, SAN, 1); /* bike: reaches A (0 m) and B (1500 m) */
    pd_volunteer_t w = mk_vol(2, -300, SAN, 1);
    w.mode = PD_MODE_WALK; /* reaches A only */
    cr_assert_eq(pd_engine_volunteer_upsert(e, &w, T0), PD_OK);
    pd_order_spec_t a = mk_order(10, SAN), b = mk_order(11, SAN);
    b.at = north_m(1500);
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &b, T0), PD_OK);
    pd_batch_pair_t opt[4], gr[4];
    pd_batch_req_t req = {.optimal = opt, .optimal_cap = 4, .greedy = gr, .greedy_cap = 4};
    pd_batch_result_t res;
    uint64_t d = pd_engine_digest(e);
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(pd_engine_digest(e), d); /* report only */
    cr_assert_eq(res.n_orders, 2);
    cr_assert_eq(res.n_slots, 2);
    cr_assert_eq(res.n_edges, 3);
    cr_assert_eq(res.optimal_n, 2);
    cr_assert_eq(res.greedy_n, 1);
    cr_assert_gt(res.optimal_score_ms, res.greedy_score_ms);
    cr_assert_eq(opt[0].order_id, 10);
    cr_assert_eq(opt[0].volunteer_id, 2);
    cr_assert_eq(opt[1].order_id, 11);
    cr_assert_eq(opt[1].volunteer_id, 1);
    cr_assert_eq(opt[0].score_ms + opt[1].score_ms, res.optimal_score_ms);
    cr_assert_eq(gr[0].volunteer_id, 1);
    /* Score = budget - ETA (nearest policy, normal priority), in ms. */
    pd_hit_t h[4];
    size_t n;
    cr_assert_eq(pd_engine_order_candidates(e, 11, 0, T0, 4, h, &n), PD_OK);
    cr_assert_eq(n, 1);
    cr_assert_lt(llabs(opt[1].score_ms - (int64_t)llround((900.0 - h[0].score) * 1000)), 2);

    req.apply = PD_BATCH_APPLY_OPTIMAL;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.n_dispatched, 2);
    cr_assert_eq(res.n_expired, 0);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 1);
    cr_assert_eq(live[0], 2);
    cr_assert_eq(live_offers(e, 11, live, 4), 1);
    cr_assert_eq(live[0], 1);
    check_valid(e, 0, 0);
    /* Nothing is created any more: an empty batch. */
    req.apply = PD_BATCH_APPLY_NONE;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.n_orders, 0);
    pd_engine_destroy(e);
}

Test(batch, emergency_outranks_normal) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    pd_order_spec_t a = mk_order(10, SAN), b = mk_order(11, SAN);
    b.priority = PD_PRIORITY_EMERGENCY;
    b.at = north_m(600); /* further away than a, still outranks it */
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &b, T0), PD_OK);
    evlog_t log = {.n = 0};
    pd_engine_set_event_cb(e, evlog_cb, &log);
    pd_batch_req_t req = {.apply = PD_BATCH_APPLY_GREEDY};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(order_state(e, 11), PD_ORDER_OFFERED);
    cr_assert_eq(order_state(e, 10), PD_ORDER_EXPIRED);
    cr_assert_eq(res.n_expired, 1);
    cr_assert_eq(log.ev[0].type, PD_EVENT_OFFERED);
    cr_assert_eq(log.ev[0].order_id, 11);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

Test(batch, team_slots_need_distinct_volunteers) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 2); /* capacity 2, but one order needs two people */
    pd_order_spec_t a = mk_order(10, SAN);
    a.need = 2;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    pd_batch_pair_t opt[4];
    pd_batch_req_t req = {.optimal = opt, .optimal_cap = 4, .apply = PD_BATCH_APPLY_OPTIMAL};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.optimal_n, 1);
    cr_assert_eq(res.greedy_n, 1);
    /* Applying: slot 0 offered to 1, slot 1 has nobody: the order expires. */
    cr_assert_eq(order_state(e, 10), PD_ORDER_EXPIRED);
    cr_assert_eq(vol_load(e, 1), 0);
    check_valid(e, 0, 0);
    add_vol(e, 2, 200, SAN, 1);
    a.id = 11;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.optimal_n, 2);
    cr_assert_neq(opt[0].volunteer_id, opt[1].volunteer_id);
    cr_assert_eq(order_state(e, 11), PD_ORDER_OFFERED);
    check_valid(e, 0, 1);
    pd_engine_destroy(e);
}

Test(batch, errors_change_nothing) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    add_vol(e, 2, 200, SAN, 1);
    add_vol(e, 3, 300, SAN, 1);
    for (uint64_t o = 10; o < 13; o++) {
        pd_order_spec_t s = mk_order(o, SAN);
        cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_OK);
    }
    cr_assert_eq(pd_engine_order_dispatch(e, 12, T0, NULL), PD_OK);
    uint64_t d = pd_engine_digest(e);
    pd_batch_result_t res;
    pd_batch_pair_t opt[1];
    uint64_t ids[3] = {10, 11, 10};
    pd_batch_req_t req = {.order_ids = ids, .n_orders = 3, .apply = PD_BATCH_APPLY_OPTIMAL};
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_ERR_BAD_ARG);
    cr_assert(res.refused && res.refused_id == 10, "the id given twice is named");
    ids[2] = 12;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_ERR_ILLEGAL);
    cr_assert(res.refused && res.refused_id == 12, "the order not created is named");
    ids[2] = 77;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_ERR_NOT_FOUND);
    cr_assert(res.refused && res.refused_id == 77, "the unknown order is named");
    req.n_orders = 2;
    req.k = PD_MAX_BATCH_K + 1;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_ERR_BAD_ARG);
    cr_assert(!res.refused, "k out of range is not an order's fault");
    req.k = 0;
    req.optimal = opt;
    req.optimal_cap = 1; /* two pairs */
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_ERR_BOUNDS);
    cr_assert_eq(pd_engine_digest(e), d);
    req.optimal = NULL;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.n_dispatched, 2);
    pd_engine_destroy(e);
}

/* ------------------------------------------------- random, against brute force */

typedef struct edge_s {
    uint32_t slot;
    uint64_t vol;
    int64_t score;
} edge_t;

typedef struct graph_s {
    edge_t e[512];
    size_t n;
    uint32_t group[64];
    uint32_t ns;
    uint64_t vid[64];
    uint32_t cap[64];
    uint32_t nv;
} graph_t;

static int64_t brute(const graph_t *g, uint32_t s, uint32_t *used, int *pick) {
    if (s == g->ns) return 0;
    int64_t best = brute(g, s + 1, used, pick);
    for (size_t i = 0; i < g->n; i++) {
        if (g->e[i].slot != s) continue;
        uint32_t v = 0;
        while (g->vid[v] != g->e[i].vol) v++;
        if (used[v] >= g->cap[v]) continue;
        bool clash = false;
        for (uint32_t t = 0; t < s; t++) {
            if (pick[t] >= 0 && g->group[t] == g->group[s] && g->e[pick[t]].vol == g->e[i].vol) {
                clash = true;
            }
        }
        if (clash) continue;
        used[v]++;
        pick[s] = (int)i;
        int64_t x = g->e[i].score + brute(g, s + 1, used, pick);
        pick[s] = -1;
        used[v]--;
        if (x > best) best = x;
    }
    return best;
}

static void random_world(pd_engine_t *e, pd_rng_t *r, int nv, double spread) {
    for (int i = 0; i < nv; i++) {
        pd_volunteer_t v = mk_vol((uint64_t)i + 1, 0, 0, 1);
        v.pos.lat = LAT0 + (int32_t)pd_rng_range(r, -(int64_t)spread, (int64_t)spread);
        v.pos.lon = LON0 + (int32_t)pd_rng_range(r, -(int64_t)spread, (int64_t)spread);
        v.skills = 1 + pd_rng_below(r, 7);
        v.mode = (uint8_t)pd_rng_below(r, PD_MODE__COUNT);
        v.capacity = (uint8_t)(1 + pd_rng_below(r, 2));
        cr_assert_eq(pd_engine_volunteer_upsert(e, &v, T0), PD_OK);
    }
}

static void random_orders(pd_engine_t *e, pd_rng_t *r, int no, double spread, uint64_t base) {
    for (int i = 0; i < no; i++) {
        uint64_t slots[3];
        pd_order_spec_t s = mk_order(base + (uint64_t)i, 0);
        s.at.lat = LAT0 + (int32_t)pd_rng_range(r, -(int64_t)spread, (int64_t)spread);
        s.at.lon = LON0 + (int32_t)pd_rng_range(r, -(int64_t)spread, (int64_t)spread);
        s.n_slots = pd_rng_below(r, 3) == 0 ? 2 : 1;
        for (uint32_t j = 0; j < s.n_slots; j++) slots[j] = 1ull << pd_rng_below(r, 3);
        s.slot_skills = slots;
        s.priority = (uint8_t)pd_rng_below(r, PD_PRIORITY__COUNT);
        cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_OK);
    }
}

Test(batch, small_random_equals_brute_force) {
    uint64_t seed = pd_test_seed() ^ 0xba7c;
    fprintf(stderr, "batch brute force: seed %llu\n", (unsigned long long)seed);
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    pd_engine_config_t c;
    pd_engine_config_init(&c); /* balanced */
    for (int it = 0; it < 150; it++) {
        pd_engine_t *e = mk_engine(&c);
        random_world(e, &r, 2 + (int)pd_rng_below(&r, 5), 15000);
        int no = 1 + (int)pd_rng_below(&r, 3);
        random_orders(e, &r, no, 15000, 100);
        uint32_t k = 1 + (uint32_t)pd_rng_below(&r, 4);
        /* The candidate graph, as the engine builds it, from the public API. */
        static graph_t g;
        memset(&g, 0, sizeof g);
        for (int o = 0; o < no; o++) {
            pd_order_info_t oi;
            cr_assert_eq(pd_engine_order_get(e, 100 + (uint64_t)o, &oi), PD_OK);
            for (uint32_t j = 0; j < oi.n_slots; j++, g.ns++) {
                g.group[g.ns] = (uint32_t)o;
                pd_hit_t h[8];
                size_t n;
                cr_assert_eq(pd_engine_order_candidates(e, oi.id, j, T0, k, h, &n), PD_OK);
                for (size_t i = 0; i < n; i++) {
                    edge_t *ed = &g.e[g.n++];
                    ed->slot = g.ns;
                    ed->vol = h[i].id;
                    double sc = c.batch_bonus_s[oi.priority] + oi.budget_s +
                                c.balanced_weight_s_per_hour * c.balanced_cap_hours - h[i].score;
                    ed->score = llround(sc * 1000.0);
                    if (ed->score < 1) ed->score = 1;
                    uint32_t v;
                    for (v = 0; v < g.nv && g.vid[v] != h[i].id; v++) continue;
                    if (v == g.nv) {
                        pd_volunteer_info_t vi;
                        cr_assert_eq(pd_engine_volunteer_get(e, h[i].id, T0, &vi), PD_OK);
                        g.vid[g.nv] = h[i].id;
                        g.cap[g.nv++] = vi.v.capacity - vi.v.load;
                    }
                }
            }
        }
        uint32_t used[64] = {0};
        int pick[64];
        for (int i = 0; i < 64; i++) pick[i] = -1;
        int64_t want = brute(&g, 0, used, pick);
        pd_batch_pair_t opt[64];
        pd_batch_req_t req = {.k = k, .optimal = opt, .optimal_cap = 64};
        pd_batch_result_t res;
        cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
        cr_assert_eq(res.n_edges, g.n, "seed %llu iteration %d", (unsigned long long)seed, it);
        cr_assert_eq(res.optimal_score_ms, want, "seed %llu iteration %d: %lld, brute %lld",
                     (unsigned long long)seed, it, (long long)res.optimal_score_ms,
                     (long long)want);
        cr_assert_leq(res.greedy_score_ms, res.optimal_score_ms);
        pd_engine_destroy(e);
    }
}

Test(batch, large_random_feasible_and_applied) {
    uint64_t seed = pd_test_seed() ^ 0xb16;
    fprintf(stderr, "batch large: seed %llu\n", (unsigned long long)seed);
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    pd_engine_config_t c;
    pd_engine_config_init(&c);
    for (int it = 0; it < 6; it++) {
        pd_engine_t *e = mk_engine(&c);
        random_world(e, &r, 400, 30000);
        random_orders(e, &r, 100, 30000, 1000);
        static pd_batch_pair_t opt[256], gr[256];
        pd_batch_req_t req = {.optimal = opt, .optimal_cap = 256, .greedy = gr, .greedy_cap = 256};
        pd_batch_result_t res;
        cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
        cr_assert_geq(res.optimal_score_ms, res.greedy_score_ms);
        cr_assert_geq(res.optimal_n, 1);
        /* Feasible: capacity, distinct per order, skills. */
        for (size_t i = 0; i < res.optimal_n; i++) {
            size_t same = 0;
            for (size_t j = 0; j < res.optimal_n; j++)
                same += opt[j].volunteer_id == opt[i].volunteer_id;
            pd_volunteer_info_t vi;
            cr_assert_eq(pd_engine_volunteer_get(e, opt[i].volunteer_id, T0, &vi), PD_OK);
            cr_assert_leq(same, vi.v.capacity);
            pd_order_slot_t sl[4];
            size_t ns;
            cr_assert_eq(pd_engine_order_slots(e, opt[i].order_id, sl, 4, &ns), PD_OK);
            cr_assert_eq(vi.v.skills & sl[opt[i].slot].skills, sl[opt[i].slot].skills);
            for (size_t j = 0; j < i; j++) {
                cr_assert(!(opt[j].order_id == opt[i].order_id &&
                            opt[j].volunteer_id == opt[i].volunteer_id));
            }
        }
        req.apply = PD_BATCH_APPLY_OPTIMAL;
        cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
        cr_assert_eq(res.n_dispatched, 100);
        /* Every assigned pair became a live offer. */
        for (size_t i = 0; i < res.optimal_n; i++) {
            pd_offer_t of[64];
            size_t n;
            cr_assert_eq(pd_engine_order_offers(e, opt[i].order_id, of, 64, &n), PD_OK);
            pd_order_info_t oi;
            cr_assert_eq(pd_engine_order_get(e, opt[i].order_id, &oi), PD_OK);
            if (oi.state == PD_ORDER_EXPIRED) continue; /* another slot had nobody */
            bool found = false;
            for (size_t j = 0; j < n; j++) {
                found |= of[j].volunteer_id == opt[i].volunteer_id && of[j].slot == opt[i].slot &&
                         of[j].state == PD_OFFER_LIVE;
            }
            cr_assert(found, "seed %llu: pair not offered", (unsigned long long)seed);
        }
        check_valid(e, seed, it);
        pd_engine_destroy(e);
    }
}

/* ------------------------------------------------------------- found in review */

/* A team the assignment could only half fill holds its batch offer while
 * the other orders are dispatched; when it then expires, the order that
 * wanted its volunteer must not have expired for want of them. */
Test(batch, a_doomed_team_does_not_starve_an_earlier_order) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 0, SAN, 1); /* the only sanitation volunteer */
    pd_order_spec_t a = mk_order(10, SAN), t = mk_order(11, SAN);
    a.at = north_m(500); /* farther: the assignment gives 1 to the team */
    t.need = 2;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &t, T0), PD_OK);
    pd_batch_pair_t opt[4];
    pd_batch_req_t req = {.optimal = opt, .optimal_cap = 4, .apply = PD_BATCH_APPLY_OPTIMAL};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.optimal_n, 1);
    cr_assert_eq(opt[0].order_id, 11);
    cr_assert_eq(order_state(e, 11), PD_ORDER_EXPIRED); /* nobody for its second slot */
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED, "the volunteer was free after all");
    cr_assert_eq(res.n_expired, 1);
    cr_assert_eq(vol_load(e, 1), 1);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* Priority is not outweighed by a larger ETA budget. */
Test(batch, priority_beats_a_larger_budget) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    pd_order_spec_t a = mk_order(10, SAN), b = mk_order(11, SAN);
    a.budget_s = 3 * 3600; /* normal, but a generous budget */
    b.priority = PD_PRIORITY_EMERGENCY;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &b, T0), PD_OK);
    pd_batch_pair_t opt[2], gr[2];
    pd_batch_req_t req = {.optimal = opt, .optimal_cap = 2, .greedy = gr, .greedy_cap = 2};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.optimal_n, 1);
    cr_assert_eq(opt[0].order_id, 11, "the emergency gets the volunteer");
    cr_assert_eq(gr[0].order_id, 11);
    pd_engine_destroy(e);
}

/* Nobody anywhere: an empty graph, every order expires; two volunteers at
 * the same ETA: the lower id, both solvers, every time. */
Test(batch, no_candidates_and_ties) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    pd_order_spec_t a = mk_order(10, SAN), b = mk_order(11, SAN);
    b.need = 3;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &b, T0), PD_OK);
    pd_batch_req_t req = {.apply = PD_BATCH_APPLY_OPTIMAL};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.n_slots, 4);
    cr_assert_eq(res.n_edges, 0);
    cr_assert_eq(res.optimal_n, 0);
    cr_assert_eq(res.optimal_score_ms, 0);
    cr_assert_eq(res.n_expired, 2);
    cr_assert_eq(order_state(e, 10), PD_ORDER_EXPIRED);
    cr_assert_eq(order_state(e, 11), PD_ORDER_EXPIRED);
    add_vol(e, 7, 300, SAN, 1);
    add_vol(e, 5, 300, SAN, 1);
    a.id = 12;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    for (int i = 0; i < 3; i++) {
        pd_batch_pair_t opt[1], gr[1];
        pd_batch_req_t q = {.optimal = opt, .optimal_cap = 1, .greedy = gr, .greedy_cap = 1};
        cr_assert_eq(pd_engine_batch(e, &q, T0, &res), PD_OK);
        cr_assert_eq(res.n_edges, 2);
        cr_assert_eq(opt[0].volunteer_id, 5);
        cr_assert_eq(gr[0].volunteer_id, 5);
    }
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* Two teams the assignment fills half each, blocking each other: A needs
 * two sanitation volunteers, B one sanitation and one medical one, and
 * nobody has the medical skill. The assignment gives each team the
 * volunteer next to it (more than either whole team would score), but B
 * can never be whole: applying must still serve A whole rather than
 * expire both. */
Test(batch, two_half_filled_teams_do_not_both_expire) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 0, SAN, 1);
    add_vol(e, 2, 3000, SAN, 1);
    uint64_t a_sk[2] = {SAN, SAN}, b_sk[2] = {SAN, MED};
    pd_order_spec_t a = mk_order(10, 0), b = mk_order(11, 0);
    a.n_slots = b.n_slots = 2;
    a.slot_skills = a_sk;
    b.slot_skills = b_sk;
    b.at = north_m(3000);
    a.budget_s = b.budget_s = 3600;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &b, T0), PD_OK);
    pd_batch_req_t req = {.apply = PD_BATCH_APPLY_OPTIMAL};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED, "A can be served whole");
    cr_assert_eq(order_state(e, 11), PD_ORDER_EXPIRED);
    cr_assert_eq(res.n_expired, 1);
    uint64_t live[4];
    cr_assert_eq(live_offers(e, 10, live, 4), 2);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* The same deadlock where B could be whole but for a volunteer a third,
 * single order holds: B is not hopeless on its own, yet only one of the
 * two teams can be served, and one must be. */
Test(batch, two_half_filled_teams_one_is_served) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 0, SAN, 1);
    add_vol(e, 2, 3000, SAN, 1);
    add_vol(e, 3, 6000, MED, 1);
    uint64_t a_sk[2] = {SAN, SAN}, b_sk[2] = {SAN, MED};
    pd_order_spec_t a = mk_order(10, 0), b = mk_order(11, 0), m = mk_order(12, MED);
    a.n_slots = b.n_slots = 2;
    a.slot_skills = a_sk;
    b.slot_skills = b_sk;
    b.at = north_m(3000);
    m.at = north_m(6000);
    a.budget_s = b.budget_s = m.budget_s = 3600;
    cr_assert_eq(pd_engine_order_create(e, &a, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &b, T0), PD_OK);
    cr_assert_eq(pd_engine_order_create(e, &m, T0), PD_OK);
    pd_batch_pair_t opt[8];
    pd_batch_req_t req = {.optimal = opt, .optimal_cap = 8, .apply = PD_BATCH_APPLY_OPTIMAL};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.optimal_n, 3, "each team half, and the single order");
    cr_assert_eq(order_state(e, 12), PD_ORDER_OFFERED);
    cr_assert_eq(order_state(e, 10), PD_ORDER_OFFERED, "A, first in the request, is served whole");
    cr_assert_eq(order_state(e, 11), PD_ORDER_EXPIRED);
    cr_assert_eq(res.n_expired, 1);
    check_valid(e, 0, 0);
    pd_engine_destroy(e);
}

/* The graph's memory follows the candidates found, not slots x k: a
 * thousand 32-person teams nobody can staff, at k = 64, used to reserve
 * some 57 MB of edges before the first query (since refused: past
 * PD_MAX_BATCH_PAIRS); at k = 4, 3.6 MB for nothing. */
Test(batch, memory_follows_the_candidates) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    for (uint64_t o = 0; o < 1000; o++) {
        pd_order_spec_t s = mk_order(100 + o, MED); /* nobody is medical */
        s.need = PD_ORDER_MAX_SLOTS;
        cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_OK);
    }
    /* the same batch at k = 1, then at k = 4: the workspace (kept) must
     * not grow with k when no candidate is found */
    pd_engine_stats_t before, after;
    pd_batch_req_t req = {.k = 1};
    pd_batch_result_t res;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    pd_engine_get_stats(e, &before);
    req.k = 4;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.n_slots, 1000 * PD_ORDER_MAX_SLOTS);
    cr_assert_eq(res.n_edges, 0);
    pd_engine_get_stats(e, &after);
    cr_assert_lt(after.memory - before.memory, 256u << 10, "k = 4 added %zu bytes",
                 after.memory - before.memory);
    pd_engine_destroy(e);
}

/* A batch whose slots x k pass PD_MAX_BATCH_PAIRS is refused before its
 * graph is built (LIMIT, nothing changed); one at the bound runs. */
Test(batch, pairs_over_the_bound_refused) {
    pd_engine_config_t c = nearest_cfg();
    pd_engine_t *e = mk_engine(&c);
    add_vol(e, 1, 100, SAN, 1);
    const uint32_t k = PD_MAX_BATCH_K;
    const uint64_t n = PD_MAX_BATCH_PAIRS / k / PD_ORDER_MAX_SLOTS; /* orders at the bound */
    for (uint64_t o = 1; o <= n + 1; o++) {
        pd_order_spec_t s = mk_order(o, SAN);
        s.need = PD_ORDER_MAX_SLOTS;
        cr_assert_eq(pd_engine_order_create(e, &s, T0), PD_OK);
    }
    uint64_t d = pd_engine_digest(e);
    pd_batch_result_t res;
    pd_batch_req_t req = {.k = k, .apply = PD_BATCH_APPLY_OPTIMAL};
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_ERR_LIMIT); /* every created order */
    cr_assert(!res.refused, "no order is to blame");
    cr_assert_eq(pd_engine_digest(e), d);
    uint64_t ids[64];
    for (uint64_t i = 0; i < n; i++) ids[i] = i + 1;
    req.order_ids = ids;
    req.n_orders = n;
    cr_assert_eq(pd_engine_batch(e, &req, T0, &res), PD_OK);
    cr_assert_eq(res.n_slots, n * PD_ORDER_MAX_SLOTS);
    pd_engine_destroy(e);
}
