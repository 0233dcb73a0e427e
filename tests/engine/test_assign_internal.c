/* test_assign_internal.c -- the batch solvers on random problems.
 *
 * Small problems are solved by brute force (every way of giving each slot
 * one of its edges or nothing) and the optimal solver must match the best
 * total exactly; greedy must never beat it. Every answer is checked to be a
 * feasible assignment whose scores add up to the reported total. Larger
 * problems check feasibility and optimal >= greedy. Set PD_SEED to replay.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "assign.h"
#include "paidan/alloc.h"
#include "test_rng.h"

#define MAXS 200
#define MAXV 400
#define MAXE 4000

typedef struct prob_s {
    uint32_t group[MAXS];
    uint32_t cap[MAXV];
    pd__aedge_t edges[MAXE];
    pd__aprob_t p;
} prob_t;

static void rand_prob(pd_rng_t *r, prob_t *q, uint32_t ns, uint32_t nv, double density,
                      int64_t max_score) {
    uint32_t g = 0;
    for (uint32_t s = 0; s < ns; s++) {
        if (s && pd_rng_below(r, 2)) g++;
        q->group[s] = g;
    }
    for (uint32_t v = 0; v < nv; v++) q->cap[v] = (uint32_t)(pd_rng_below(r, 4) ? 1 : 2);
    uint32_t ne = 0;
    for (uint32_t s = 0; s < ns; s++) {
        for (uint32_t v = 0; v < nv && ne < MAXE; v++) {
            if (pd_rng_unit(r) >= density) continue;
            q->edges[ne].slot = s;
            q->edges[ne].vol = v;
            q->edges[ne].score = 1 + (int64_t)pd_rng_below(r, (uint64_t)max_score);
            ne++;
        }
    }
    q->p.n_slots = ns;
    q->p.slot_group = q->group;
    q->p.n_vols = nv;
    q->p.vol_cap = q->cap;
    q->p.n_edges = ne;
    q->p.edges = q->edges;
}

/* Feasible, and the scores add up to total. */
static void check_feasible(const prob_t *q, const uint32_t *choice, int64_t total, uint64_t seed,
                           const char *what) {
    uint32_t used[MAXV] = {0};
    int64_t sum = 0;
    for (uint32_t s = 0; s < q->p.n_slots; s++) {
        uint32_t e = choice[s];
        if (e == PD__NO_EDGE) continue;
        cr_assert_lt(e, q->p.n_edges, "seed %llu %s: bad edge", (unsigned long long)seed, what);
        const pd__aedge_t *ed = &q->edges[e];
        cr_assert_eq(ed->slot, s, "seed %llu %s: edge of another slot", (unsigned long long)seed,
                     what);
        used[ed->vol]++;
        sum += ed->score;
        for (uint32_t t = 0; t < s; t++) {
            if (choice[t] == PD__NO_EDGE) continue;
            cr_assert(!(q->group[t] == q->group[s] && q->edges[choice[t]].vol == ed->vol),
                      "seed %llu %s: one volunteer in two slots of one order",
                      (unsigned long long)seed, what);
        }
    }
    for (uint32_t v = 0; v < q->p.n_vols; v++) {
        cr_assert_leq(used[v], q->cap[v], "seed %llu %s: capacity exceeded",
                      (unsigned long long)seed, what);
    }
    cr_assert_eq(sum, total, "seed %llu %s: total %lld, scores add to %lld",
                 (unsigned long long)seed, what, (long long)total, (long long)sum);
}

/* Brute force: every slot takes one of its edges or none. */
static int64_t brute(const prob_t *q, uint32_t s, uint32_t *used, uint32_t *pick) {
    if (s == q->p.n_slots) return 0;
    int64_t best = brute(q, s + 1, used, pick); /* slot s empty */
    for (uint32_t e = 0; e < q->p.n_edges; e++) {
        const pd__aedge_t *ed = &q->edges[e];
        if (ed->slot != s || used[ed->vol] >= q->cap[ed->vol]) continue;
        bool clash = false;
        for (uint32_t t = 0; t < s; t++) {
            if (pick[t] != PD__NO_EDGE && q->group[t] == q->group[s] &&
                q->edges[pick[t]].vol == ed->vol) {
                clash = true;
            }
        }
        if (clash) continue;
        used[ed->vol]++;
        pick[s] = e;
        int64_t v = ed->score + brute(q, s + 1, used, pick);
        pick[s] = PD__NO_EDGE;
        used[ed->vol]--;
        if (v > best) best = v;
    }
    return best;
}

Test(assign, optimal_equals_brute_force) {
    uint64_t seed = pd_test_seed();
    fprintf(stderr, "assign brute force: seed %llu\n", (unsigned long long)seed);
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    static prob_t q;
    pd__aws_t ws = {NULL, 0};
    for (int it = 0; it < 3000; it++) {
        uint32_t ns = 1 + (uint32_t)pd_rng_below(&r, 6);
        uint32_t nv = 1 + (uint32_t)pd_rng_below(&r, 5);
        int64_t max_score = pd_rng_below(&r, 3) == 0 ? 3 : 1000; /* ties, or few */
        rand_prob(&r, &q, ns, nv, 0.2 + 0.6 * pd_rng_unit(&r), max_score);
        uint32_t used[MAXV] = {0}, pick[MAXS];
        for (uint32_t s = 0; s < ns; s++) pick[s] = PD__NO_EDGE;
        int64_t want = brute(&q, 0, used, pick);
        uint32_t opt[MAXS], gr[MAXS];
        int64_t t_opt, t_gr;
        cr_assert_eq(pd__assign_optimal(&ws, &q.p, opt, &t_opt), PD_OK);
        cr_assert_eq(pd__assign_greedy(&ws, &q.p, gr, &t_gr), PD_OK);
        check_feasible(&q, opt, t_opt, seed, "optimal");
        check_feasible(&q, gr, t_gr, seed, "greedy");
        cr_assert_eq(t_opt, want, "seed %llu iteration %d: optimal %lld, brute force %lld",
                     (unsigned long long)seed, it, (long long)t_opt, (long long)want);
        cr_assert_leq(t_gr, t_opt, "seed %llu iteration %d", (unsigned long long)seed, it);
    }
    pd__aws_deinit(&ws);
}

Test(assign, large_optimal_beats_greedy) {
    uint64_t seed = pd_test_seed() ^ 0x1a7;
    fprintf(stderr, "assign large: seed %llu\n", (unsigned long long)seed);
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    static prob_t q;
    pd__aws_t ws = {NULL, 0};
    int strictly = 0;
    for (int it = 0; it < 40; it++) {
        uint32_t ns = 20 + (uint32_t)pd_rng_below(&r, 180);
        uint32_t nv = 20 + (uint32_t)pd_rng_below(&r, 380);
        rand_prob(&r, &q, ns, nv, 8.0 / nv, 900000);
        uint32_t opt[MAXS], gr[MAXS];
        int64_t t_opt, t_gr;
        cr_assert_eq(pd__assign_optimal(&ws, &q.p, opt, &t_opt), PD_OK);
        cr_assert_eq(pd__assign_greedy(&ws, &q.p, gr, &t_gr), PD_OK);
        check_feasible(&q, opt, t_opt, seed, "optimal");
        check_feasible(&q, gr, t_gr, seed, "greedy");
        cr_assert_geq(t_opt, t_gr, "seed %llu iteration %d", (unsigned long long)seed, it);
        strictly += t_opt > t_gr;
    }
    cr_assert_gt(strictly, 0, "greedy was always optimal: the instances are too easy");
    pd__aws_deinit(&ws);
}

Test(assign, empty_and_oom) {
    static prob_t q;
    pd_rng_t r;
    pd_rng_seed(&r, 7);
    rand_prob(&r, &q, 3, 2, 0.0, 10);
    uint32_t c[MAXS];
    int64_t t = -1;
    pd__aws_t ws = {NULL, 0};
    cr_assert_eq(pd__assign_optimal(&ws, &q.p, c, &t), PD_OK);
    cr_assert_eq(t, 0);
    for (int s = 0; s < 3; s++) cr_assert_eq(c[s], PD__NO_EDGE);
    pd__aws_deinit(&ws);
    rand_prob(&r, &q, 50, 50, 0.2, 100);
    pd_alloc_fail_after(0);
    cr_assert_eq(pd__assign_optimal(&ws, &q.p, c, &t), PD_ERR_NOMEM);
    cr_assert_eq(pd__assign_greedy(&ws, &q.p, c, &t), PD_ERR_NOMEM);
    pd_alloc_fail_after(-1);
    pd__aws_deinit(&ws);
}
