/* test_grid.c -- the index against a brute-force oracle.
 *
 * A mirror array holds every volunteer the index should hold; the oracle
 * scans it with the same metric (pd_latlng_fast_m) and the same rules, and
 * every index query must give exactly the oracle's answer: same ids, same
 * order, same total. Layouts: a dense county, a sparse globe, points on
 * cell borders, the poles and the antimeridian; moves, updates, state
 * changes, removals and inserts happen between queries, and the index's
 * invariants are validated as it goes. Set PD_SEED to replay a run.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paidan/alloc.h"
#include "paidan/index.h"
#include "test_rng.h"

typedef struct world_s {
    pd_index_t *ix;
    pd_index_config_t cfg;
    pd_volunteer_t *v; /* the mirror */
    size_t n, cap;
    uint64_t next_id;
    pd_rng_t rng;
    int layout;
} world_t;

enum { L_COUNTY, L_GLOBE, L_BORDERS, L_POLES, L_ANTIMERIDIAN, L_CROWD, L__COUNT };

static const char *layout_name[L__COUNT] = {"county", "globe",        "borders",
                                            "poles",  "antimeridian", "crowd"};

static pd_latlng_t rand_point(world_t *w) {
    pd_rng_t *r = &w->rng;
    pd_latlng_t p;
    switch (w->layout) {
        case L_COUNTY: /* 30 x 30 km around (30.6, 114.3), with two towns */
            if (pd_rng_below(r, 3) == 0) {
                p.lat = 30600000 + (int32_t)pd_rng_range(r, -8000, 8000);
                p.lon = 114300000 + (int32_t)pd_rng_range(r, -8000, 8000);
            } else {
                p.lat = 30600000 + (int32_t)pd_rng_range(r, -135000, 135000);
                p.lon = 114300000 + (int32_t)pd_rng_range(r, -155000, 155000);
            }
            break;
        case L_GLOBE:
            p.lat = (int32_t)pd_rng_range(r, -90000000, 90000000);
            p.lon = (int32_t)pd_rng_range(r, -180000000, 180000000);
            break;
        case L_BORDERS: /* on and next to cell edges: multiples of 5000 */
            p.lat = 40000000 + 5000 * (int32_t)pd_rng_range(r, -20, 20) +
                    (int32_t)pd_rng_range(r, -1, 1);
            p.lon = -3700000 + 5000 * (int32_t)pd_rng_range(r, -30, 30) +
                    (int32_t)pd_rng_range(r, -1, 1);
            break;
        case L_POLES:
            p.lat = (pd_rng_below(r, 2) ? 1 : -1) * (int32_t)pd_rng_range(r, 89800000, 90000000);
            p.lon = (int32_t)pd_rng_range(r, -180000000, 180000000);
            break;
        case L_CROWD: /* a crowded town: cells of thousands, scanned in two passes */
            if (pd_rng_below(r, 10) < 9) {
                int32_t half = pd_rng_below(r, 2) ? 2000 : 6000;
                p.lat = 22505000 + (int32_t)pd_rng_range(r, -half, half);
                p.lon = 114005000 + (int32_t)pd_rng_range(r, -half, half);
            } else {
                p.lat = 22505000 + (int32_t)pd_rng_range(r, -60000, 60000);
                p.lon = 114005000 + (int32_t)pd_rng_range(r, -60000, 60000);
            }
            break;
        default: /* L_ANTIMERIDIAN */
            p.lat = -17000000 + (int32_t)pd_rng_range(r, -100000, 100000);
            p.lon = pd_rng_below(r, 2) ? (int32_t)pd_rng_range(r, 179880000, 180000000)
                                       : (int32_t)pd_rng_range(r, -180000000, -179880000);
            break;
    }
    return p;
}

static pd_week_t rand_week(pd_rng_t *r) {
    if (pd_rng_below(r, 4) == 0) return pd_week_all();
    pd_week_t w = pd_week_none();
    int ranges = 1 + (int)pd_rng_below(r, 4);
    for (int i = 0; i < ranges; i++) {
        int day = (int)pd_rng_below(r, 7), s = (int)pd_rng_below(r, 23);
        int e = s + 1 + (int)pd_rng_below(r, (uint64_t)(24 - s));
        cr_assert_eq(pd_week_add_range(&w, day, s, e), PD_OK);
    }
    return w;
}

static void rand_volunteer(world_t *w, pd_volunteer_t *v, uint64_t id) {
    pd_rng_t *r = &w->rng;
    memset(v, 0, sizeof *v);
    v->id = id;
    v->pos = rand_point(w);
    static const unsigned high_bits[] = {9, 40, 63};
    v->skills =
        (1ULL << pd_rng_below(r, 6)) | (pd_rng_below(r, 2) ? 1ULL << pd_rng_below(r, 6) : 0);
    /* now and then a high skill or tag bit: cells grow planes for it while
     * they hold volunteers (and a new skill plane moves the tag planes) */
    if (pd_rng_below(r, 40) == 0) v->skills |= 1ULL << high_bits[pd_rng_below(r, 3)];
    v->tags = pd_rng_below(r, 4);
    if (pd_rng_below(r, 16) == 0) v->tags |= 1ULL << high_bits[pd_rng_below(r, 3)];
    v->week = rand_week(r);
    v->mode = (uint8_t)pd_rng_below(r, PD_MODE__COUNT);
    v->status = (uint8_t)(pd_rng_below(r, 5) == 0 ? pd_rng_below(r, 3) : PD_STATUS_ONLINE);
    v->capacity = (uint8_t)(1 + pd_rng_below(r, 2));
    v->load = (uint8_t)pd_rng_below(r, (uint64_t)v->capacity + 1);
}

/* The mark the tests keep on each volunteer (pd_index_set_mark): a
 * function of its id, so the oracle knows it. Set after every insert (the
 * bulk insert gives 0, as documented), and the index must keep it through
 * updates, moves, state changes and sorts. */
static uint16_t mark_of(uint64_t id) {
    return (uint16_t)((id * 0x9E3779B97F4A7C15ULL) >> 48);
}

static void mark_one(world_t *w, uint64_t id) {
    uint32_t s;
    cr_assert_eq(pd_index_get_slot(w->ix, id, &s), PD_OK);
    cr_assert_eq(pd_index_set_mark(w->ix, s, mark_of(id)), PD_OK);
}

static void mark_all(world_t *w) {
    for (size_t i = 0; i < w->n; i++) mark_one(w, w->v[i].id);
}

static void world_init(world_t *w, int layout, uint64_t seed, size_t n) {
    memset(w, 0, sizeof *w);
    w->layout = layout;
    pd_rng_seed(&w->rng, seed);
    pd_index_config_init(&w->cfg);
    cr_assert_eq(pd_index_create(&w->cfg, &w->ix), PD_OK);
    w->cap = n + 64;
    w->v = calloc(w->cap, sizeof *w->v);
    /* ids spread over the whole 64-bit range, not only small numbers */
    w->next_id = pd_rng_next(&w->rng) | 1;
    for (size_t i = 0; i < n; i++) {
        pd_volunteer_t v;
        rand_volunteer(w, &v, w->next_id);
        w->next_id += 0x9E3779B97F4A7C15ULL;
        cr_assert_eq(pd_index_insert(w->ix, &v), PD_OK);
        w->v[w->n++] = v;
        mark_one(w, v.id);
    }
}

static void world_deinit(world_t *w) {
    pd_index_destroy(w->ix);
    free(w->v);
}

static bool vol_eq(const pd_volunteer_t *a, const pd_volunteer_t *b) {
    return a->id == b->id && a->pos.lat == b->pos.lat && a->pos.lon == b->pos.lon &&
           a->skills == b->skills && a->tags == b->tags &&
           memcmp(&a->week, &b->week, sizeof a->week) == 0 && a->mode == b->mode &&
           a->status == b->status && a->capacity == b->capacity && a->load == b->load;
}

static void check_valid(world_t *w, uint64_t seed) {
    const char *why = NULL;
    cr_assert(pd_index_validate(w->ix, &why), "seed %llu: invariant broken: %s",
              (unsigned long long)seed, why ? why : "?");
    cr_assert_eq(pd_index_count(w->ix), w->n);
    for (size_t i = 0; i < w->n; i++) {
        uint32_t s;
        uint16_t mark;
        cr_assert_eq(pd_index_get_slot(w->ix, w->v[i].id, &s), PD_OK);
        cr_assert_eq(pd_index_get_mark(w->ix, s, &mark), PD_OK);
        cr_assert_eq(mark, mark_of(w->v[i].id), "seed %llu: volunteer %llu lost its mark",
                     (unsigned long long)seed, (unsigned long long)w->v[i].id);
    }
}

/* ------------------------------------------------------------- the oracle */

typedef struct hook_s {
    uint64_t reject_mod; /* reject ids divisible by this (0: none) */
} hook_t;

static bool test_hook(void *ud, uint32_t slot, uint64_t id, uint16_t mark, double eta_s,
                      double distance_m, double *score) {
    const hook_t *h = ud;
    (void)slot;
    (void)distance_m;
    if (h->reject_mod && id % h->reject_mod == 0) return false;
    *score = eta_s + (double)(id % 13) * 10.0 + (double)(mark % 7) * 5.0;
    return true;
}

static int cmp_hit(const void *a, const void *b) {
    const pd_hit_t *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Every qualifying volunteer, sorted; returns how many. */
static size_t oracle(const world_t *w, const pd_query_t *q, pd_hit_t *out) {
    size_t m = 0;
    for (size_t i = 0; i < w->n; i++) {
        const pd_volunteer_t *v = &w->v[i];
        if ((v->skills & q->skills) != q->skills) continue;
        if ((v->tags & q->tags) != q->tags) continue;
        bool avail = v->status == PD_STATUS_ONLINE && v->load < v->capacity;
        if (!q->include_unavailable && !avail) continue;
        if (!pd_week_covers(&v->week, &q->need)) continue;
        double dist = pd_latlng_fast_m(q->at, v->pos);
        double eta = dist * w->cfg.detour / (w->cfg.speed_kmh[v->mode] / 3.6);
        if (q->radius_m > 0 && dist > q->radius_m) continue;
        if (q->budget_s > 0 && eta > q->budget_s) continue;
        double score = eta;
        if (q->score && !q->score(q->score_ud, 0, v->id, mark_of(v->id), eta, dist, &score))
            continue;
        out[m].id = v->id;
        out[m].score = score < eta ? eta : score;
        out[m].distance_m = (float)dist;
        out[m].eta_s = (float)eta;
        m++;
    }
    qsort(out, m, sizeof *out, cmp_hit);
    return m;
}

static void rand_query(world_t *w, pd_query_t *q, hook_t *hook) {
    pd_rng_t *r = &w->rng;
    memset(q, 0, sizeof *q);
    /* near a volunteer most of the time, anywhere sometimes */
    if (w->n && pd_rng_below(r, 4)) {
        q->at = w->v[pd_rng_below(r, w->n)].pos;
        q->at.lat += (int32_t)pd_rng_range(r, -3000, 3000);
        q->at.lon += (int32_t)pd_rng_range(r, -3000, 3000);
        if (q->at.lat > 90000000) q->at.lat = 90000000;
        if (q->at.lat < -90000000) q->at.lat = -90000000;
        if (q->at.lon > 180000000) q->at.lon = 180000000;
        if (q->at.lon < -180000000) q->at.lon = -180000000;
    } else {
        q->at = rand_point(w);
    }
    uint64_t pick = pd_rng_below(r, 4);
    if (pick) q->skills = 1ULL << pd_rng_below(r, 6);
    if (pick == 3) q->skills |= 1ULL << pd_rng_below(r, 6);
    if (pd_rng_below(r, 5) == 0) q->tags = 1 + pd_rng_below(r, 3);
    if (pd_rng_below(r, 25) == 0) q->tags |= 1ULL << (pd_rng_below(r, 2) ? 9 : 63);
    if (pd_rng_below(r, 3) == 0) {
        int32_t start = (int32_t)pd_rng_below(r, PD_WEEK_HOURS * 60);
        int32_t dur = (int32_t)pd_rng_below(r, 240);
        cr_assert_eq(pd_week_window(start, dur, &q->need), PD_OK);
    }
    switch (pd_rng_below(r, 4)) {
        case 0:
            q->radius_m = 50 + (double)pd_rng_below(r, 20000);
            break;
        case 1:
            q->radius_m = 50 + (double)pd_rng_below(r, 20000);
            q->budget_s = 60 + (double)pd_rng_below(r, 1800);
            break;
        case 2:
            q->budget_s = 900;
            break;
        default:
            q->budget_s = 30 + (double)pd_rng_below(r, 3600);
            break;
    }
    if (w->layout == L_GLOBE && pd_rng_below(r, 3) == 0) q->radius_m = 2000000;
    q->include_unavailable = pd_rng_below(r, 6) == 0;
    if (pd_rng_below(r, 4) == 0) {
        hook->reject_mod = pd_rng_below(r, 2) ? 7 : 0;
        q->score = test_hook;
        q->score_ud = hook;
    }
}

static void assert_same(const pd_hit_t *got, size_t ng, const pd_hit_t *want, size_t nw,
                        uint64_t seed, int step, const char *what) {
    cr_assert_eq(ng, nw, "seed %llu step %d %s: %zu hits, oracle %zu", (unsigned long long)seed,
                 step, what, ng, nw);
    for (size_t i = 0; i < ng; i++) {
        cr_assert_eq(got[i].id, want[i].id, "seed %llu step %d %s: hit %zu id %llu, oracle %llu",
                     (unsigned long long)seed, step, what, i, (unsigned long long)got[i].id,
                     (unsigned long long)want[i].id);
        cr_assert_eq(got[i].score, want[i].score);
        cr_assert_float_eq(got[i].distance_m, want[i].distance_m, 1e-3);
        cr_assert_float_eq(got[i].eta_s, want[i].eta_s, 1e-3);
    }
}

static void query_and_compare(world_t *w, uint64_t seed, int step, pd_hit_t *all, pd_hit_t *got) {
    pd_query_t q;
    hook_t hook = {0};
    rand_query(w, &q, &hook);
    size_t nw = oracle(w, &q, all);
    size_t k = 1 + pd_rng_below(&w->rng, pd_rng_below(&w->rng, 3) ? 20 : 300);
    size_t ng = 0;
    cr_assert_eq(pd_index_nearest(w->ix, &q, k, got, &ng), PD_OK);
    assert_same(got, ng, all, nw < k ? nw : k, seed, step, "nearest");

    size_t limit = pd_rng_below(&w->rng, 2) ? k : pd_rng_below(&w->rng, 2000);
    size_t total = 0;
    cr_assert_eq(pd_index_within(w->ix, &q, limit, got, &ng, &total), PD_OK);
    cr_assert_eq(total, nw, "seed %llu step %d within: total %zu, oracle %zu",
                 (unsigned long long)seed, step, total, nw);
    assert_same(got, ng, all, nw < limit ? nw : limit, seed, step, "within");
    /* counting only: no buffer at all */
    cr_assert_eq(pd_index_within(w->ix, &q, 0, NULL, &ng, &total), PD_OK);
    cr_assert_eq(ng, 0);
    cr_assert_eq(total, nw);
}

static void mutate(world_t *w) {
    pd_rng_t *r = &w->rng;
    uint64_t op = pd_rng_below(r, 10);
    if (w->n == 0) op = 9;
    size_t i = w->n ? pd_rng_below(r, w->n) : 0;
    pd_volunteer_t *v = &w->v[i];
    if (op <= 3) { /* move: mostly a short hop, sometimes far */
        pd_latlng_t p = v->pos;
        if (op == 0) {
            p = rand_point(w);
        } else {
            p.lat += (int32_t)pd_rng_range(r, -2000, 2000);
            p.lon += (int32_t)pd_rng_range(r, -2000, 2000);
            if (!pd_latlng_is_valid(p)) p = v->pos;
        }
        cr_assert_eq(pd_index_move(w->ix, v->id, p), PD_OK);
        v->pos = p;
    } else if (op == 4) {
        pd_volunteer_t nv;
        rand_volunteer(w, &nv, v->id);
        cr_assert_eq(pd_index_update(w->ix, &nv), PD_OK);
        *v = nv;
    } else if (op == 5 || op == 6) {
        uint8_t cap = (uint8_t)(1 + pd_rng_below(r, 3));
        uint8_t load = (uint8_t)pd_rng_below(r, (uint64_t)cap + 1);
        pd_status st = (pd_status)(pd_rng_below(r, 3) ? PD_STATUS_ONLINE : pd_rng_below(r, 3));
        if (op == 5) {
            cr_assert_eq(pd_index_set_state(w->ix, v->id, st, cap, load), PD_OK);
        } else {
            uint32_t si;
            cr_assert_eq(pd_index_get_slot(w->ix, v->id, &si), PD_OK);
            cr_assert_eq(pd_index_set_state_slot(w->ix, si, st, cap, load), PD_OK);
        }
        v->status = (uint8_t)st;
        v->capacity = cap;
        v->load = load;
    } else if (op == 7 && pd_rng_below(r, 4) == 0) {
        size_t sorted = 0;
        cr_assert_eq(pd_index_optimize(w->ix, pd_rng_below(r, 3000), &sorted), PD_OK);
    } else if (op == 7 || op == 8) {
        cr_assert_eq(pd_index_remove(w->ix, v->id), PD_OK);
        cr_assert_eq(pd_index_remove(w->ix, v->id), PD_ERR_NOT_FOUND);
        w->v[i] = w->v[--w->n];
    } else if (w->n < w->cap) {
        pd_volunteer_t nv;
        rand_volunteer(w, &nv, w->next_id);
        w->next_id += 0x9E3779B97F4A7C15ULL;
        cr_assert_eq(pd_index_insert(w->ix, &nv), PD_OK);
        w->v[w->n++] = nv;
        mark_one(w, nv.id);
    }
}

static void run_layout(int layout, size_t n, int steps) {
    uint64_t seed = pd_test_seed();
    seed ^= (uint64_t)layout * 0x100000001ULL;
    fprintf(stderr, "test_grid %s: seed %llu\n", layout_name[layout], (unsigned long long)seed);
    world_t w;
    world_init(&w, layout, seed, n);
    check_valid(&w, seed);
    if (seed & 1) cr_assert_eq(pd_index_optimize(w.ix, SIZE_MAX, NULL), PD_OK);
    pd_hit_t *all = calloc(w.cap, sizeof *all);
    pd_hit_t *got = calloc(w.cap + 2000, sizeof *got);
    for (int step = 0; step < steps; step++) {
        query_and_compare(&w, seed, step, all, got);
        int muts = (int)pd_rng_below(&w.rng, 4);
        for (int m = 0; m < muts; m++) mutate(&w);
        if (step % 97 == 0) check_valid(&w, seed);
    }
    check_valid(&w, seed);
    free(all);
    free(got);
    world_deinit(&w);
}

Test(grid, oracle_county_dense) {
    run_layout(L_COUNTY, 4000, 1500);
}

Test(grid, oracle_globe_sparse) {
    run_layout(L_GLOBE, 1500, 800);
}

Test(grid, oracle_cell_borders) {
    run_layout(L_BORDERS, 2000, 1500);
}

Test(grid, oracle_poles) {
    run_layout(L_POLES, 800, 800);
}

Test(grid, oracle_antimeridian) {
    run_layout(L_ANTIMERIDIAN, 1500, 1000);
}

Test(grid, oracle_crowded_cells) {
    run_layout(L_CROWD, 12000, 800);
}

Test(grid, oracle_tiny_and_empty) {
    /* an empty index, then one volunteer, then none again */
    uint64_t seed = pd_test_seed();
    world_t w;
    world_init(&w, L_COUNTY, seed, 0);
    pd_hit_t all[8], got[8];
    pd_query_t q = {0};
    q.at.lat = 30600000;
    q.at.lon = 114300000;
    q.budget_s = 900;
    size_t n = 99, total = 99;
    cr_assert_eq(pd_index_nearest(w.ix, &q, 5, got, &n), PD_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(pd_index_within(w.ix, &q, 5, got, &n, &total), PD_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(total, 0);
    for (int i = 0; i < 200; i++) {
        mutate(&w);
        query_and_compare(&w, seed, i, all, got);
        if (w.n > 4) {
            while (w.n) mutate(&w);
        }
    }
    world_deinit(&w);
}

Test(grid, k_larger_than_matches) {
    world_t w;
    world_init(&w, L_COUNTY, 42, 50);
    pd_query_t q = {0};
    q.at = w.v[0].pos;
    q.radius_m = 2000000;
    q.include_unavailable = true;
    pd_hit_t got[200];
    size_t n = 0;
    cr_assert_eq(pd_index_nearest(w.ix, &q, 200, got, &n), PD_OK);
    cr_assert_eq(n, 50);
    for (size_t i = 1; i < n; i++) cr_assert(got[i - 1].score <= got[i].score);
    world_deinit(&w);
}

/* --------------------------------------------------------------- errors */

Test(grid, bad_input_is_an_error_and_changes_nothing) {
    world_t w;
    world_init(&w, L_COUNTY, 7, 100);
    pd_volunteer_t v = w.v[3];
    cr_assert_eq(pd_index_insert(w.ix, &v), PD_ERR_EXISTS);
    v.id = 12345;
    v.pos.lat = 90000001;
    cr_assert_eq(pd_index_insert(w.ix, &v), PD_ERR_BAD_COORD);
    v.pos.lat = 0;
    v.pos.lon = -180000001;
    cr_assert_eq(pd_index_insert(w.ix, &v), PD_ERR_BAD_COORD);
    v.pos.lon = 0;
    v.mode = 9;
    cr_assert_eq(pd_index_insert(w.ix, &v), PD_ERR_BAD_ARG);
    v.mode = 0;
    v.capacity = 0;
    cr_assert_eq(pd_index_insert(w.ix, &v), PD_ERR_BAD_ARG);
    v.capacity = 1;
    v.week.bits[2] = ~0ULL;
    cr_assert_eq(pd_index_insert(w.ix, &v), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_index_update(w.ix, &v), PD_ERR_BAD_ARG);
    v.week = pd_week_all();
    cr_assert_eq(pd_index_update(w.ix, &v), PD_ERR_NOT_FOUND);
    pd_latlng_t bad = {91000000, 0};
    cr_assert_eq(pd_index_move(w.ix, w.v[0].id, bad), PD_ERR_BAD_COORD);
    cr_assert_eq(pd_index_move(w.ix, 12345, w.v[0].pos), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_index_set_state(w.ix, 12345, PD_STATUS_ONLINE, 1, 0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_index_set_state(w.ix, w.v[0].id, (pd_status)7, 1, 0), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_index_set_state(w.ix, w.v[0].id, PD_STATUS_ONLINE, 0, 0), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_index_remove(w.ix, 12345), PD_ERR_NOT_FOUND);
    pd_volunteer_t out;
    cr_assert_eq(pd_index_get(w.ix, 12345, &out), PD_ERR_NOT_FOUND);
    uint32_t slot;
    cr_assert_eq(pd_index_get_slot(w.ix, 12345, &slot), PD_ERR_NOT_FOUND);

    pd_latlng_t p;
    cr_assert_eq(pd_latlng_from_deg(NAN, 0, &p), PD_ERR_BAD_COORD);
    cr_assert_eq(pd_latlng_from_deg(0, INFINITY, &p), PD_ERR_BAD_COORD);
    cr_assert_eq(pd_latlng_from_deg(-90.5, 0, &p), PD_ERR_BAD_COORD);
    cr_assert_eq(pd_latlng_from_deg(0, 180.0001, &p), PD_ERR_BAD_COORD);
    cr_assert_eq(pd_latlng_from_deg(-90, 180, &p), PD_OK);
    cr_assert_eq(p.lat, -90000000);
    cr_assert_eq(p.lon, 180000000);

    pd_query_t q = {0};
    pd_hit_t hits[4];
    size_t n;
    q.at = w.v[0].pos;
    cr_assert_eq(pd_index_nearest(w.ix, &q, 4, hits, &n), PD_ERR_BAD_ARG); /* no limit */
    q.budget_s = 900;
    cr_assert_eq(pd_index_nearest(w.ix, &q, 0, hits, &n), PD_ERR_BAD_ARG);
    q.budget_s = NAN;
    cr_assert_eq(pd_index_nearest(w.ix, &q, 4, hits, &n), PD_ERR_BAD_ARG);
    q.budget_s = 900;
    q.radius_m = 3e6;
    cr_assert_eq(pd_index_within(w.ix, &q, 4, hits, &n, NULL), PD_ERR_BAD_ARG);
    q.radius_m = 0;
    q.at.lat = -95000000;
    cr_assert_eq(pd_index_nearest(w.ix, &q, 4, hits, &n), PD_ERR_BAD_COORD);
    check_valid(&w, 7);
    for (size_t i = 0; i < w.n; i++) {
        cr_assert_eq(pd_index_get(w.ix, w.v[i].id, &out), PD_OK);
        cr_assert(vol_eq(&out, &w.v[i]));
    }
    world_deinit(&w);
}

Test(grid, config_is_checked) {
    pd_index_config_t cfg;
    pd_index_t *ix = NULL;
    pd_index_config_init(&cfg);
    cfg.detour = 0.5;
    cr_assert_eq(pd_index_create(&cfg, &ix), PD_ERR_BAD_ARG);
    pd_index_config_init(&cfg);
    cfg.speed_kmh[PD_MODE_CAR] = 0;
    cr_assert_eq(pd_index_create(&cfg, &ix), PD_ERR_BAD_ARG);
    pd_index_config_init(&cfg);
    cfg.cell_e6 = 10;
    cr_assert_eq(pd_index_create(&cfg, &ix), PD_ERR_BAD_ARG);
    cr_assert_null(ix);
    cr_assert_eq(pd_index_create(NULL, &ix), PD_OK);
    pd_index_destroy(ix);
}

/* Run f under failure injection at every allocation count until it
 * succeeds; every failure must be NOMEM and leave the index unchanged. */
Test(grid, out_of_memory_changes_nothing) {
    world_t w;
    world_init(&w, L_COUNTY, 99, 300);
    for (int round = 0; round < 200; round++) {
        pd_volunteer_t nv;
        rand_volunteer(&w, &nv, w.next_id);
        int op = round % 3;
        size_t i = pd_rng_below(&w.rng, w.n);
        pd_latlng_t far = rand_point(&w);
        for (long fail = 0;; fail++) {
            pd_alloc_fail_after(fail);
            pd_err err = op == 0   ? pd_index_insert(w.ix, &nv)
                         : op == 1 ? pd_index_move(w.ix, w.v[i].id, far)
                                   : (nv.id = w.v[i].id, pd_index_update(w.ix, &nv));
            pd_alloc_fail_after(-1);
            if (err == PD_OK) break;
            cr_assert_eq(err, PD_ERR_NOMEM);
            check_valid(&w, 99);
            pd_volunteer_t out;
            cr_assert_eq(pd_index_get(w.ix, w.v[i].id, &out), PD_OK);
            cr_assert(vol_eq(&out, &w.v[i]));
            cr_assert(fail < 20);
        }
        if (op == 0) {
            w.v[w.n++] = nv;
            w.next_id += 0x9E3779B97F4A7C15ULL;
            mark_one(&w, nv.id);
        } else if (op == 1) {
            w.v[i].pos = far;
        } else {
            w.v[i] = nv;
        }
        if (w.n + 1 >= w.cap) break;
        check_valid(&w, 99);
    }
    world_deinit(&w);
}

Test(grid, slots_and_foreach) {
    world_t w;
    world_init(&w, L_COUNTY, 5, 500);
    size_t seen = 0;
    for (uint32_t s = 0; s < pd_index_slot_limit(w.ix); s++) {
        uint64_t id;
        if (pd_index_slot_id(w.ix, s, &id) != PD_OK) continue;
        uint32_t back;
        cr_assert_eq(pd_index_get_slot(w.ix, id, &back), PD_OK);
        cr_assert_eq(back, s);
        seen++;
    }
    cr_assert_eq(seen, w.n);
    cr_assert(pd_index_memory(w.ix) > w.n * 50);
    /* room ahead: refused beyond the limit, then taken without changing
     * what the index holds */
    cr_assert_eq(pd_index_reserve(w.ix, (size_t)1 << 32), PD_ERR_LIMIT);
    cr_assert_eq(pd_index_reserve(w.ix, 20000), PD_OK);
    check_valid(&w, 5);
    /* marks: a free or unknown slot has none */
    uint16_t mark = 1;
    uint32_t limit = (uint32_t)pd_index_slot_limit(w.ix);
    cr_assert_eq(pd_index_set_mark(w.ix, limit, 5), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_index_get_mark(w.ix, limit, &mark), PD_ERR_NOT_FOUND);
    uint32_t s0;
    cr_assert_eq(pd_index_get_slot(w.ix, w.v[0].id, &s0), PD_OK);
    cr_assert_eq(pd_index_remove(w.ix, w.v[0].id), PD_OK);
    cr_assert_eq(pd_index_set_mark(w.ix, s0, 5), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_index_set_state_slot(w.ix, s0, PD_STATUS_ONLINE, 1, 0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_index_set_state_slot(w.ix, limit, PD_STATUS_ONLINE, 1, 0), PD_ERR_NOT_FOUND);
    cr_assert_eq(pd_index_get_mark(w.ix, s0, &mark), PD_ERR_NOT_FOUND);
    cr_assert_eq(mark, 1, "nothing written on a miss");
    /* a new volunteer in a reused slot starts at 0 */
    pd_volunteer_t nv = w.v[0];
    nv.id = 0xABCDEFULL;
    cr_assert_eq(pd_index_insert(w.ix, &nv), PD_OK);
    uint32_t s1;
    cr_assert_eq(pd_index_get_slot(w.ix, nv.id, &s1), PD_OK);
    cr_assert_eq(s1, s0);
    cr_assert_eq(pd_index_get_mark(w.ix, s1, &mark), PD_OK);
    cr_assert_eq(mark, 0);
    world_deinit(&w);
}

Test(grid, optimize_keeps_answers_and_survives_oom) {
    world_t w;
    world_init(&w, L_COUNTY, 11, 3000);
    pd_hit_t *all = calloc(w.cap, sizeof *all), *got = calloc(w.cap + 2000, sizeof *got);
    for (long fail = 0; fail < 50; fail++) {
        pd_alloc_fail_after(fail);
        size_t sorted = 0;
        pd_err err = pd_index_optimize(w.ix, SIZE_MAX, &sorted);
        pd_alloc_fail_after(-1);
        cr_assert(err == PD_OK || err == PD_ERR_NOMEM);
        check_valid(&w, 11);
        for (int i = 0; i < 20; i++) query_and_compare(&w, 11, i, all, got);
        /* churn so the next round has cells to sort again */
        for (int i = 0; i < 2000; i++) mutate(&w);
    }
    free(all);
    free(got);
    world_deinit(&w);
}

/* A --huge-pages pass (pd_index_huge_pages) one page a call, with cells
 * moving, growing and being sorted between calls: every pass ends, asks
 * for at least one page, and no answer changes. Whether the kernel grants
 * the pages (THP may be off) is not the index's business. */
Test(grid, huge_pages_pass_ends_and_keeps_answers) {
    world_t w;
    world_init(&w, L_COUNTY, 12, 3000);
    pd_hit_t *all = calloc(w.cap, sizeof *all), *got = calloc(w.cap + 2000, sizeof *got);
    for (int round = 0; round < 4; round++) {
        size_t total = 0, n = 0, calls = 0;
        bool done = false;
        while (!done) {
            pd_index_huge_pages(w.ix, round == 3 ? 0 : 1, &n, &done);
            cr_assert_leq(n, 1);
            total += n;
            cr_assert_lt(++calls, 100000, "the pass never ends");
            if (calls % 3 == 0)
                for (int i = 0; i < 20; i++) mutate(&w);
        }
        cr_assert_gt(total, 0);
        check_valid(&w, 12);
        for (int i = 0; i < 20; i++) query_and_compare(&w, 12, i, all, got);
    }
    free(all);
    free(got);
    world_deinit(&w);
}

/* ------------------------------------------------------------------ bulk */

static int cmp_vol_id(const void *a, const void *b) {
    uint64_t x = ((const pd_volunteer_t *)a)->id, y = ((const pd_volunteer_t *)b)->id;
    return x < y ? -1 : x > y;
}

typedef struct dump_s {
    const pd_index_t *ix;
    pd_volunteer_t *v;
    size_t n, cap;
} dump_t;

static bool dump_one(void *ud, const pd_volunteer_t *v, uint32_t slot) {
    dump_t *d = ud;
    cr_assert(d->n < d->cap, "the walk visits more volunteers than the index holds");
    uint32_t back;
    cr_assert_eq(pd_index_get_slot(d->ix, v->id, &back), PD_OK);
    cr_assert_eq(back, slot);
    pd_slot_state_t st;
    cr_assert_eq(pd_index_slot_state(d->ix, slot, &st), PD_OK);
    cr_assert(st.id == v->id && st.status == v->status && st.capacity == v->capacity &&
              st.load == v->load && st.mode == v->mode);
    d->v[d->n++] = *v;
    return true;
}

/* The index holds exactly the mirror: checked through the cell-wise walk
 * (every field, every slot) and pd_index_get. */
static void assert_holds_mirror(world_t *w) {
    dump_t d = {w->ix, calloc(w->n + 1, sizeof(pd_volunteer_t)), 0, w->n + 1};
    pd_index_foreach_by_cell(w->ix, dump_one, &d);
    cr_assert_eq(d.n, w->n, "walk saw %zu of %zu", d.n, w->n);
    pd_volunteer_t *want = malloc((w->n + 1) * sizeof *want);
    memcpy(want, w->v, w->n * sizeof *want);
    qsort(want, w->n, sizeof *want, cmp_vol_id);
    qsort(d.v, d.n, sizeof *d.v, cmp_vol_id);
    for (size_t i = 0; i < w->n; i++) {
        cr_assert(vol_eq(&d.v[i], &want[i]), "volunteer %llu differs after the walk",
                  (unsigned long long)want[i].id);
        pd_volunteer_t out;
        cr_assert_eq(pd_index_get(w->ix, want[i].id, &out), PD_OK);
        cr_assert(vol_eq(&out, &want[i]));
    }
    free(want);
    free(d.v);
}

static bool stop_at_three(void *ud, const pd_volunteer_t *v, uint32_t slot) {
    (void)v;
    (void)slot;
    return ++*(int *)ud < 3;
}

/* Some volunteers inserted one by one, then a batch in one call: the same
 * index as far as every query and the walk can tell. */
Test(grid, insert_many_matches_the_oracle) {
    for (int layout = 0; layout < L__COUNT; layout++) {
        uint64_t seed = pd_test_seed() ^ (uint64_t)(layout + 40);
        world_t w;
        world_init(&w, layout, seed, 300);
        size_t m = 2500;
        w.cap += m;
        w.v = realloc(w.v, w.cap * sizeof *w.v);
        pd_volunteer_t *batch = w.v + w.n;
        for (size_t i = 0; i < m; i++) {
            rand_volunteer(&w, &batch[i], w.next_id);
            w.next_id += 0x9E3779B97F4A7C15ULL;
        }
        uint32_t *slots = calloc(m, sizeof *slots);
        size_t bad = 0;
        cr_assert_eq(pd_index_insert_many(w.ix, batch, m, slots, &bad), PD_OK);
        cr_assert_eq(bad, m);
        w.n += m;
        mark_all(&w);
        for (size_t i = 0; i < m; i++) {
            uint32_t s;
            cr_assert_eq(pd_index_get_slot(w.ix, batch[i].id, &s), PD_OK);
            cr_assert_eq(s, slots[i]);
        }
        check_valid(&w, seed);
        assert_holds_mirror(&w);
        int seen = 0;
        pd_index_foreach_by_cell(w.ix, stop_at_three, &seen);
        cr_assert_eq(seen, 3, "the walk stops when told");
        pd_hit_t *all = calloc(w.cap, sizeof *all), *got = calloc(w.cap + 2000, sizeof *got);
        for (int step = 0; step < 200; step++) {
            query_and_compare(&w, seed, step, all, got);
            if (step % 2) mutate(&w);
        }
        check_valid(&w, seed);
        free(all);
        free(got);
        free(slots);
        world_deinit(&w);
    }
}

/* What a restore does: walk one index cell by cell, insert the walk into a
 * fresh one. Same volunteers, same answers, and each cell keeps its order. */
typedef struct seq_s {
    uint64_t *ids;
    pd_volunteer_t *v;
    size_t n;
} seq_t;

static int cmp_u64_first(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static bool seq_one(void *ud, const pd_volunteer_t *v, uint32_t slot) {
    (void)slot;
    seq_t *s = ud;
    s->ids[s->n] = v->id;
    s->v[s->n++] = *v;
    return true;
}

Test(grid, walk_by_cell_then_insert_many_rebuilds_the_index) {
    uint64_t seed = pd_test_seed() ^ 77;
    world_t w;
    world_init(&w, L_COUNTY, seed, 3000);
    for (int i = 0; i < 3000; i++) mutate(&w);
    cr_assert_eq(pd_index_optimize(w.ix, SIZE_MAX, NULL), PD_OK);
    seq_t a = {calloc(w.n, 8), calloc(w.n, sizeof(pd_volunteer_t)), 0};
    pd_index_foreach_by_cell(w.ix, seq_one, &a);
    cr_assert_eq(a.n, w.n);
    pd_index_t *old = w.ix;
    cr_assert_eq(pd_index_create(&w.cfg, &w.ix), PD_OK);
    cr_assert_eq(pd_index_insert_many(w.ix, a.v, a.n, NULL, NULL), PD_OK);
    mark_all(&w); /* as a restore does */
    check_valid(&w, seed);
    assert_holds_mirror(&w);
    /* The walk of the copy is the walk of the original cut into runs (one
     * per cell) and put back together in another order: each cell kept its
     * order. So the breaks, where b's next volunteer is not a's next, are
     * fewer than the cells; a shuffled cell would add a break per member. */
    seq_t b = {calloc(w.n, 8), calloc(w.n, sizeof(pd_volunteer_t)), 0};
    pd_index_foreach_by_cell(w.ix, seq_one, &b);
    cr_assert_eq(b.n, a.n);
    uint64_t *pairs = calloc(a.n, 16);
    for (size_t i = 0; i < a.n; i++) { /* (id, position in a) */
        pairs[2 * i] = a.ids[i];
        pairs[2 * i + 1] = i;
    }
    qsort(pairs, a.n, 16, cmp_u64_first);
    size_t breaks = 0;
    uint64_t prev = UINT64_MAX;
    for (size_t i = 0; i < b.n; i++) {
        uint64_t *hit = bsearch(&b.ids[i], pairs, a.n, 16, cmp_u64_first);
        cr_assert(hit);
        if (i && hit[1] != prev + 1) breaks++;
        prev = hit[1];
    }
    /* An upper bound on the cells: distinct 0.01 x 0.01 degree squares
     * (cells are 0.01 degree high and at least as wide). */
    uint64_t *sq = calloc(a.n, 8);
    for (size_t i = 0; i < a.n; i++)
        sq[i] = (uint64_t)(uint32_t)(a.v[i].pos.lat / 10000 + 10000) << 32 |
                (uint32_t)(a.v[i].pos.lon / 10000 + 20000);
    qsort(sq, a.n, 8, cmp_u64_first);
    size_t squares = a.n ? 1 : 0;
    for (size_t i = 1; i < a.n; i++) squares += sq[i] != sq[i - 1];
    cr_assert(breaks < squares, "%zu breaks, at most %zu cells", breaks, squares);
    fprintf(stderr, "walk_by_cell: %zu volunteers, %zu breaks, <= %zu cells\n", a.n, breaks,
            squares);
    free(pairs);
    free(sq);
    pd_hit_t *all = calloc(w.n, sizeof *all), *got = calloc(w.n + 2000, sizeof *got);
    for (int step = 0; step < 100; step++) {
        pd_query_t q;
        hook_t hook = {0};
        rand_query(&w, &q, &hook);
        size_t n1 = 0, n2 = 0;
        cr_assert_eq(pd_index_nearest(old, &q, 50, all, &n1), PD_OK);
        cr_assert_eq(pd_index_nearest(w.ix, &q, 50, got, &n2), PD_OK);
        cr_assert_eq(n1, n2);
        for (size_t i = 0; i < n1; i++) cr_assert_eq(all[i].id, got[i].id);
    }
    pd_index_destroy(old);
    free(all);
    free(got);
    free(a.ids);
    free(a.v);
    free(b.ids);
    free(b.v);
    world_deinit(&w);
}

/* A batch with a bad record, an id given twice or already present, or an
 * allocation failing anywhere: an error, and the index holds what it held. */
Test(grid, insert_many_errors_change_nothing) {
    uint64_t seed = pd_test_seed() ^ 91;
    world_t w;
    world_init(&w, L_COUNTY, seed, 400);
    size_t m = 700;
    pd_volunteer_t *batch = calloc(m, sizeof *batch);
    for (size_t i = 0; i < m; i++) {
        rand_volunteer(&w, &batch[i], w.next_id);
        w.next_id += 0x9E3779B97F4A7C15ULL;
        /* some in far-away cells that do not exist yet */
        if (i % 7 == 0) batch[i].pos.lat -= 5000000;
    }
    size_t bad = 0;
    pd_volunteer_t keep = batch[300];

    batch[300].pos.lat = 91000000;
    cr_assert_eq(pd_index_insert_many(w.ix, batch, m, NULL, &bad), PD_ERR_BAD_COORD);
    cr_assert_eq(bad, 300);
    batch[300] = keep;
    batch[300].capacity = 0;
    cr_assert_eq(pd_index_insert_many(w.ix, batch, m, NULL, &bad), PD_ERR_BAD_ARG);
    cr_assert_eq(bad, 300);
    batch[300] = keep;
    check_valid(&w, seed);
    assert_holds_mirror(&w);

    /* given twice in the batch (late in the insertion order, so much of the
     * batch is in when it is found), or already in the index */
    batch[m - 1].id = batch[5].id;
    cr_assert_eq(pd_index_insert_many(w.ix, batch, m, NULL, &bad), PD_ERR_EXISTS);
    cr_assert_eq(bad, m - 1); /* the later of the two */
    check_valid(&w, seed);
    assert_holds_mirror(&w);
    batch[m - 1].id = w.v[17].id;
    cr_assert_eq(pd_index_insert_many(w.ix, batch, m, NULL, &bad), PD_ERR_EXISTS);
    cr_assert_eq(bad, m - 1);
    check_valid(&w, seed);
    assert_holds_mirror(&w);
    batch[m - 1].id = w.next_id;

    for (long fail = 0;; fail++) {
        pd_alloc_fail_after(fail);
        pd_err err = pd_index_insert_many(w.ix, batch, m, NULL, &bad);
        pd_alloc_fail_after(-1);
        if (err == PD_OK) break;
        cr_assert_eq(err, PD_ERR_NOMEM, "fail %ld: %s", fail, pd_err_name(err));
        cr_assert_eq(bad, m);
        check_valid(&w, seed);
        assert_holds_mirror(&w);
        cr_assert(fail < 10000);
    }
    w.cap = w.n + m + 64;
    w.v = realloc(w.v, w.cap * sizeof *w.v);
    memcpy(w.v + w.n, batch, m * sizeof *batch);
    w.n += m;
    mark_all(&w);
    check_valid(&w, seed);
    assert_holds_mirror(&w);
    free(batch);
    world_deinit(&w);
}

/* An id given twice in a batch blames the later record, whatever order
 * the cells are filled in: here the later one's cell comes first, so it
 * takes the id before the earlier one is reached. */
Test(grid, insert_many_blames_the_later_of_a_twice_given_id) {
    pd_index_t *ix;
    cr_assert_eq(pd_index_create(NULL, &ix), PD_OK);
    pd_volunteer_t vs[3];
    memset(vs, 0, sizeof vs);
    for (int i = 0; i < 3; i++) {
        vs[i].week = pd_week_all();
        vs[i].capacity = 1;
    }
    vs[0].id = 10, vs[0].pos = (pd_latlng_t){30000000, 120000000};
    vs[1].id = 20, vs[1].pos = (pd_latlng_t){-30000000, -60000000};
    vs[2].id = 20, vs[2].pos = (pd_latlng_t){30000000, 120000000}; /* vs[0]'s cell */
    size_t bad = 99;
    cr_assert_eq(pd_index_insert_many(ix, vs, 3, NULL, &bad), PD_ERR_EXISTS);
    cr_assert_eq(bad, 2);
    cr_assert_eq(pd_index_count(ix), 0);
    const char *why;
    cr_assert(pd_index_validate(ix, &why), "%s", why);
    /* against an id already present: that record, wherever it is */
    vs[2].id = 30;
    cr_assert_eq(pd_index_insert(ix, &vs[1]), PD_OK);
    cr_assert_eq(pd_index_insert_many(ix, vs, 3, NULL, &bad), PD_ERR_EXISTS);
    cr_assert_eq(bad, 1);
    cr_assert_eq(pd_index_count(ix), 1);
    cr_assert(pd_index_validate(ix, &why), "%s", why);
    pd_index_destroy(ix);
}

/* The id map holds three quarters of 2^31 entries: a reserve it can never
 * hold is PD_ERR_LIMIT, as documented, not an attempt to map tens of GB of
 * slots first (PD_ERR_NOMEM, or those slots kept). */
Test(grid, reserve_past_the_id_map_is_a_limit) {
    pd_index_t *ix;
    cr_assert_eq(pd_index_create(NULL, &ix), PD_OK);
    size_t before = pd_index_memory(ix);
    cr_assert_eq(pd_index_reserve(ix, (size_t)1 << 31), PD_ERR_LIMIT);
    cr_assert_eq(pd_index_reserve(ix, ((size_t)3 << 29) + 1), PD_ERR_LIMIT);
    cr_assert_eq(pd_index_reserve(ix, ((size_t)1 << 31) + 1), PD_ERR_LIMIT);
    cr_assert_eq(pd_index_reserve(ix, SIZE_MAX), PD_ERR_LIMIT);
    cr_assert_eq(pd_index_memory(ix), before);
    cr_assert_eq(pd_index_reserve(ix, 0), PD_OK);
    cr_assert_eq(pd_index_reserve(ix, 1000), PD_OK);
    const char *why;
    cr_assert(pd_index_validate(ix, &why), "%s", why);
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = UINT64_MAX;
    v.week = pd_week_all();
    v.capacity = 1;
    cr_assert_eq(pd_index_insert(ix, &v), PD_OK);
    cr_assert_eq(pd_index_reserve(ix, (size_t)3 << 29), PD_ERR_LIMIT);
    cr_assert_eq(pd_index_count(ix), 1);
    cr_assert(pd_index_validate(ix, &why), "%s", why);
    pd_index_destroy(ix);
}
