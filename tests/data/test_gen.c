/* test_gen.c -- the county generator: config, determinism, streams, and
 * the shape of what it makes (modes, skills, schedules, places, rhythm).
 *
 * Distribution checks use tolerances several standard errors wide, on
 * fixed seeds, so they are exact repeatable facts rather than flaky
 * statistics.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paidan/alloc.h"
#include "paidan/data.h"

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

static pd_gen_t *make(const pd_gen_config_t *cfg) {
    pd_gen_t *g = NULL;
    pd_err err = pd_gen_create(cfg, &g);
    cr_assert_eq(err, PD_OK, "pd_gen_create: %s", pd_strerror(err));
    return g;
}

static pd_gen_config_t small_config(uint64_t seed, uint64_t volunteers, uint64_t orders) {
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cfg.seed = seed;
    cfg.volunteers = volunteers;
    cfg.orders = orders;
    return cfg;
}

/* Everything a generator writes as CSV, volunteers then orders. */
static char *county_bytes(const pd_gen_config_t *cfg, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    cr_assert_not_null(fp);
    pd_gen_t *g = make(cfg);
    const char *const *names = pd_gen_skill_names(NULL);
    size_t n_names = pd_gen_config_skill_count(cfg);
    pd_csv_writer_t *w;
    cr_assert_eq(pd_csv_writer_open_fp(fp, PD_CSV_VOLUNTEERS, names, n_names, &w), PD_OK);
    pd_volunteer_t v;
    while (pd_gen_next_volunteer(g, &v)) cr_assert_eq(pd_csv_write_volunteer(w, &v), PD_OK);
    cr_assert_eq(pd_csv_writer_close(w), PD_OK);
    cr_assert_eq(pd_csv_writer_open_fp(fp, PD_CSV_ORDERS, names, n_names, &w), PD_OK);
    pd_gen_order_t o;
    while (pd_gen_next_order(g, &o)) cr_assert_eq(pd_csv_write_order(w, &o), PD_OK);
    cr_assert_eq(pd_csv_writer_close(w), PD_OK);
    pd_gen_destroy(g);
    fclose(fp);
    *len = n;
    return buf;
}

/* ------------------------------------------------------------- config */

Test(gen, config_defaults_are_documented_values) {
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cr_expect_eq(cfg.seed, 1);
    cr_expect_eq(cfg.volunteers, 10000);
    cr_expect_eq(cfg.orders, 10000);
    cr_expect_float_eq(cfg.center_lat, 30.60, 1e-12);
    cr_expect_float_eq(cfg.center_lon, 114.30, 1e-12);
    cr_expect_float_eq(cfg.size_km, 50.0, 1e-12);
    cr_expect_eq(cfg.towns, 12);
    cr_expect_eq(cfg.villages, 200);
    cr_expect_eq(cfg.local_skills, 4);
    cr_expect_eq(cfg.start_ms, 1709481600000LL);
    cr_expect_eq(cfg.days, 7);
    cr_expect_eq(cfg.utc_offset_min, 480);
    cr_expect_eq(pd_gen_config_check(&cfg), PD_OK);
    cr_expect_eq(pd_gen_config_skill_count(&cfg), 12);
}

Test(gen, config_check_rejects_each_bad_field) {
    pd_gen_config_t base, c;
    pd_gen_config_init(&base);
    static char sentinel;
#define EXPECT_BAD(stmt, code)                                                \
    do {                                                                      \
        c = base;                                                             \
        stmt;                                                                 \
        cr_expect_eq(pd_gen_config_check(&c), code, "%s", #stmt);             \
        pd_gen_t *g = (pd_gen_t *)&sentinel;                                  \
        cr_expect_eq(pd_gen_create(&c, &g), code, "%s", #stmt);               \
        cr_expect_eq((void *)g, (void *)&sentinel, "out touched: %s", #stmt); \
    } while (0)
    EXPECT_BAD(c.center_lat = NAN, PD_ERR_BAD_COORD);
    EXPECT_BAD(c.center_lat = 89.9, PD_ERR_BAD_COORD);
    EXPECT_BAD(c.center_lat = -84.9, PD_ERR_BAD_COORD);
    EXPECT_BAD(c.center_lon = 179.9, PD_ERR_BAD_COORD);
    EXPECT_BAD(c.center_lon = -181, PD_ERR_BAD_COORD);
    EXPECT_BAD(c.size_km = 0.5, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.size_km = NAN, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.towns = 0, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.villages = 100001, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.town_share = 0.95, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.scatter_share = -0.1, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.local_skills = PD_GEN_MAX_LOCAL_SKILLS + 1, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.days = 0, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.days = 3661, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.start_ms = -1, PD_ERR_BAD_ARG);
    EXPECT_BAD(c.utc_offset_min = 900, PD_ERR_BAD_ARG);
#undef EXPECT_BAD
    c = base;
    c.local_skills = PD_GEN_MAX_LOCAL_SKILLS;
    c.villages = 0;
    c.size_km = 1.0;
    cr_expect_eq(pd_gen_config_check(&c), PD_OK);
}

Test(gen, skill_and_tag_names) {
    static const char *const want[] = {
        "theory-policy", "culture-arts",  "tutoring",   "medical-fitness",
        "science-pop",   "legal-aid",     "sanitation", "poverty-relief",
        "red-heritage",  "family-values", "civility",   "elder-care",
    };
    size_t n = 0;
    const char *const *names = pd_gen_skill_names(&n);
    cr_assert_eq(n, PD_GEN_MAX_SKILLS);
    for (size_t i = 0; i < 12; i++) cr_expect_str_eq(names[i], want[i], "bit %zu", i);
    cr_expect_str_eq(names[12], "local-5");
    cr_expect_str_eq(names[63], "local-56");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) cr_expect_str_neq(names[i], names[j]);
    const char *const *tags = pd_gen_tag_names(&n);
    cr_assert_eq(n, PD_GEN_TAG_COUNT);
    cr_expect_str_eq(tags[0], "party-member");
    cr_expect_str_eq(tags[3], "speaks-dialect");
    cr_expect_eq(PD_GEN_TAG_RETIRED, 1ULL << 2);
    cr_expect_str_eq(pd_gen_priority_name(PD_GEN_PRIORITY_ELEVATED), "elevated");
    cr_expect_null(pd_gen_priority_name(PD_GEN_PRIORITY__COUNT));
}

/* -------------------------------------------------------- determinism */

Test(gen, same_seed_gives_identical_bytes) {
    pd_gen_config_t cfg = small_config(42, 20000, 5000);
    size_t n1, n2;
    char *a = county_bytes(&cfg, &n1);
    char *b = county_bytes(&cfg, &n2);
    cr_assert_eq(n1, n2);
    cr_assert(memcmp(a, b, n1) == 0, "same seed, different bytes");
    cr_assert_gt(n1, 20000 * 60);
    free(a);
    free(b);
}

Test(gen, different_seed_gives_different_county) {
    pd_gen_config_t c1 = small_config(1, 2000, 0), c2 = small_config(2, 2000, 0);
    pd_gen_t *g1 = make(&c1), *g2 = make(&c2);
    int same_pos = 0;
    pd_volunteer_t a, b;
    while (pd_gen_next_volunteer(g1, &a)) {
        cr_assert(pd_gen_next_volunteer(g2, &b));
        cr_assert_eq(a.id, b.id);
        same_pos += a.pos.lat == b.pos.lat && a.pos.lon == b.pos.lon;
    }
    cr_expect_lt(same_pos, 5);
    pd_gen_place_t p1, p2;
    cr_assert_eq(pd_gen_get_place(g1, 1, &p1), PD_OK);
    cr_assert_eq(pd_gen_get_place(g2, 1, &p2), PD_OK);
    cr_expect(p1.center.lat != p2.center.lat || p1.center.lon != p2.center.lon);
    pd_gen_destroy(g1);
    pd_gen_destroy(g2);

    size_t n1, n2;
    c1.volunteers = c2.volunteers = 300;
    char *x = county_bytes(&c1, &n1);
    char *y = county_bytes(&c2, &n2);
    cr_expect(n1 != n2 || memcmp(x, y, n1) != 0);
    free(x);
    free(y);
}

Test(gen, streams_do_not_disturb_each_other) {
    pd_gen_config_t cfg = small_config(9, 3000, 3000);
    pd_gen_t *pure = make(&cfg), *mixed = make(&cfg);
    pd_volunteer_t a, b;
    pd_gen_order_t o;
    pd_latlng_t p;
    while (pd_gen_next_volunteer(pure, &a)) {
        /* Interleave every other kind of draw on the second generator. */
        pd_gen_random_point(mixed, &p);
        (void)pd_gen_next_order(mixed, &o);
        cr_assert(pd_gen_next_volunteer(mixed, &b));
        cr_assert(memcmp(&a, &b, sizeof a) == 0, "volunteer %llu differs",
                  (unsigned long long)a.id);
    }
    pd_gen_destroy(pure);
    pd_gen_destroy(mixed);
}

Test(gen, streams_end_after_the_configured_counts) {
    pd_gen_config_t cfg = small_config(3, 777, 555);
    pd_gen_t *g = make(&cfg);
    pd_volunteer_t v;
    uint64_t n = 0;
    while (pd_gen_next_volunteer(g, &v)) cr_assert_eq(v.id, ++n);
    cr_expect_eq(n, 777);
    cr_expect_not(pd_gen_next_volunteer(g, &v));
    pd_gen_order_t o;
    n = 0;
    while (pd_gen_next_order(g, &o)) cr_assert_eq(o.id, ++n);
    cr_expect_eq(n, 555);
    cr_expect_not(pd_gen_next_order(g, &o));
    pd_gen_destroy(g);

    cfg.volunteers = 0;
    cfg.orders = 0;
    g = make(&cfg);
    cr_expect_not(pd_gen_next_volunteer(g, &v));
    cr_expect_not(pd_gen_next_order(g, &o));
    pd_gen_destroy(g);
}

/* ------------------------------------------------------------ volunteers */

static bool week_has(const pd_week_t *w, int h) {
    return (w->bits[h / 64] >> (h % 64)) & 1;
}

Test(gen, volunteers_have_the_documented_shape) {
    const uint64_t N = 40000;
    pd_gen_config_t cfg = small_config(7, N, 0);
    pd_gen_t *g = make(&cfg);
    pd_latlng_t sw, ne;
    pd_gen_get_box(g, &sw, &ne);
    /* The box is about 50 km on a side: 0.45 deg of latitude. */
    cr_expect(abs((ne.lat - sw.lat) - 449660) < 100, "box height %d", ne.lat - sw.lat);
    cr_expect(sw.lat < 30600000 && ne.lat > 30600000 && sw.lon < 114300000 && ne.lon > 114300000);

    uint64_t modes[PD_MODE__COUNT] = {0}, status[PD_STATUS__COUNT] = {0}, nskills[4] = {0};
    uint64_t per_skill[PD_GEN_MAX_SKILLS] = {0}, hours[PD_WEEK_HOURS] = {0}, cap1 = 0;
    uint64_t tag_count[PD_GEN_TAG_COUNT] = {0}, always = 0;
    pd_volunteer_t v;
    while (pd_gen_next_volunteer(g, &v)) {
        cr_assert_eq(pd_volunteer_check(&v), PD_OK, "volunteer %llu", (unsigned long long)v.id);
        cr_assert(v.pos.lat >= sw.lat && v.pos.lat <= ne.lat, "lat outside the box");
        cr_assert(v.pos.lon >= sw.lon && v.pos.lon <= ne.lon, "lon outside the box");
        int k = __builtin_popcountll(v.skills);
        cr_assert(k >= 1 && k <= 3, "volunteer %llu has %d skills", (unsigned long long)v.id, k);
        cr_assert_eq(v.skills >> 12, 0, "skill past the county's 12");
        cr_assert_eq(v.tags >> PD_GEN_TAG_COUNT, 0);
        cr_assert_not(pd_week_is_empty(&v.week), "empty schedule");
        cr_assert(v.capacity >= 1 && v.capacity <= 3);
        cr_assert_eq(v.load, 0);
        cr_assert_not((v.tags & PD_GEN_TAG_YOUTH) && (v.tags & PD_GEN_TAG_RETIRED));
        nskills[k]++;
        modes[v.mode]++;
        status[v.status]++;
        cap1 += v.capacity == 1;
        for (int b = 0; b < 12; b++) per_skill[b] += (v.skills >> b) & 1;
        for (int t = 0; t < PD_GEN_TAG_COUNT; t++) tag_count[t] += (v.tags >> t) & 1;
        for (int h = 0; h < PD_WEEK_HOURS; h++) hours[h] += week_has(&v.week, h);
        pd_week_t all = pd_week_all();
        always += pd_week_covers(&v.week, &all);
    }
    pd_gen_destroy(g);

    /* Travel modes 45 / 20 / 25 / 10 per cent, within 1.5 points. */
    const double want_mode[PD_MODE__COUNT] = {0.45, 0.20, 0.25, 0.10};
    for (int m = 0; m < PD_MODE__COUNT; m++)
        cr_expect(fabs((double)modes[m] / N - want_mode[m]) < 0.015, "mode %s: %.3f",
                  pd_mode_name((pd_mode)m), (double)modes[m] / N);
    cr_expect(fabs((double)nskills[1] / N - 0.55) < 0.02);
    cr_expect(fabs((double)nskills[3] / N - 0.15) < 0.02);
    cr_expect_gt((double)status[PD_STATUS_ONLINE] / N, 0.8);
    cr_expect_gt((double)cap1 / N, 0.8);
    cr_expect(fabs((double)always / N - 0.03) < 0.01);
    cr_expect(fabs((double)tag_count[2] / N - 0.22) < 0.02, "retired share");

    /* Skewed popularity: sanitation (bit 6) first, red-heritage (bit 8)
     * last, and the head several times the tail. */
    for (int b = 0; b < 12; b++) {
        cr_expect_geq(per_skill[6], per_skill[b]);
        cr_expect_leq(per_skill[8], per_skill[b]);
    }
    cr_expect_gt(per_skill[6], 4 * per_skill[8]);

    /* Evenings and weekends heavier than weekday mornings. */
    double morning = 0, evening = 0, weekend = 0;
    for (int d = 0; d < 5; d++) {
        for (int h = 8; h < 12; h++) morning += (double)hours[d * 24 + h] / 20;
        for (int h = 19; h < 21; h++) evening += (double)hours[d * 24 + h] / 10;
    }
    for (int d = 5; d < 7; d++)
        for (int h = 9; h < 17; h++) weekend += (double)hours[d * 24 + h] / 16;
    cr_expect_gt(evening, 1.8 * morning, "evening %.0f vs morning %.0f", evening, morning);
    cr_expect_gt(weekend, 1.8 * morning, "weekend %.0f vs morning %.0f", weekend, morning);
    /* Nights (2-5) hold only the always-available. */
    for (int d = 0; d < 7; d++)
        for (int h = 2; h < 5; h++) cr_expect_lt((double)hours[d * 24 + h] / N, 0.05);
}

Test(gen, local_skills_set_the_skill_range) {
    pd_gen_config_t cfg = small_config(5, 5000, 0);
    cfg.local_skills = 0;
    pd_gen_t *g = make(&cfg);
    pd_volunteer_t v;
    uint64_t seen = 0;
    while (pd_gen_next_volunteer(g, &v)) seen |= v.skills;
    pd_gen_destroy(g);
    cr_expect_eq(seen, 0xFF, "standing skills only: %llx", (unsigned long long)seen);

    cfg.local_skills = 20;
    g = make(&cfg);
    seen = 0;
    while (pd_gen_next_volunteer(g, &v)) seen |= v.skills;
    pd_gen_destroy(g);
    cr_expect_eq(seen, (1ULL << 28) - 1, "all 28 skills used: %llx", (unsigned long long)seen);
}

/* ---------------------------------------------------------- geography */

#define CELLS 20

static void cell_counts(const pd_latlng_t *sw, const pd_latlng_t *ne, pd_latlng_t p,
                        uint32_t *counts) {
    int64_t y = ((int64_t)p.lat - sw->lat) * CELLS / ((int64_t)ne->lat - sw->lat + 1);
    int64_t x = ((int64_t)p.lon - sw->lon) * CELLS / ((int64_t)ne->lon - sw->lon + 1);
    counts[y * CELLS + x]++;
}

static int cmp_desc(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

Test(gen, people_cluster_and_random_points_follow_them) {
    const uint32_t N = 40000;
    pd_gen_config_t cfg = small_config(11, N, 0);
    pd_gen_t *g = make(&cfg);
    pd_latlng_t sw, ne;
    pd_gen_get_box(g, &sw, &ne);
    static uint32_t people[CELLS * CELLS], points[CELLS * CELLS];
    pd_volunteer_t v;
    while (pd_gen_next_volunteer(g, &v)) cell_counts(&sw, &ne, v.pos, people);
    for (uint32_t i = 0; i < N; i++) {
        pd_latlng_t p;
        pd_gen_random_point(g, &p);
        cr_assert(p.lat >= sw.lat && p.lat <= ne.lat && p.lon >= sw.lon && p.lon <= ne.lon);
        cell_counts(&sw, &ne, p, points);
    }
    /* Same density: total variation distance over 400 cells is small
     * (sampling noise alone gives about 0.05). */
    double tv = 0;
    for (int i = 0; i < CELLS * CELLS; i++) tv += fabs((double)people[i] - points[i]);
    tv /= 2.0 * N;
    cr_expect_lt(tv, 0.09, "total variation %.3f", tv);
    /* Clustered: the densest tenth of the cells holds far more than a
     * tenth of the people. */
    qsort(people, CELLS * CELLS, sizeof people[0], cmp_desc);
    uint64_t top = 0;
    for (int i = 0; i < CELLS * CELLS / 10; i++) top += people[i];
    cr_expect_gt((double)top / N, 0.35, "densest tenth holds %.3f", (double)top / N);
    pd_gen_destroy(g);
}

Test(gen, places_are_inside_and_their_shares_add_up) {
    pd_gen_config_t cfg = small_config(13, 0, 0);
    pd_gen_t *g = make(&cfg);
    pd_latlng_t sw, ne;
    pd_gen_get_box(g, &sw, &ne);
    cr_assert_eq(pd_gen_place_count(g), 212);
    double share = 0;
    pd_gen_place_t p;
    for (size_t i = 0; i < pd_gen_place_count(g); i++) {
        cr_assert_eq(pd_gen_get_place(g, i, &p), PD_OK);
        cr_expect_eq(p.kind, i < 12 ? PD_GEN_PLACE_TOWN : PD_GEN_PLACE_VILLAGE);
        cr_expect(p.center.lat >= sw.lat && p.center.lat <= ne.lat);
        cr_expect(p.center.lon >= sw.lon && p.center.lon <= ne.lon);
        cr_expect(p.sigma_m > 100 && p.sigma_m <= 2500);
        cr_expect_gt(p.share, 0);
        share += p.share;
    }
    cr_expect_float_eq(share, 1.0 - cfg.scatter_share, 1e-9);
    /* The county seat is near the centre and the largest town. */
    cr_assert_eq(pd_gen_get_place(g, 0, &p), PD_OK);
    cr_expect_lt(abs(p.center.lat - 30600000), 40000);
    cr_expect_lt(abs(p.center.lon - 114300000), 50000);
    pd_gen_place_t q;
    for (size_t i = 1; i < 12; i++) {
        cr_assert_eq(pd_gen_get_place(g, i, &q), PD_OK);
        cr_expect_gt(p.share, q.share);
    }
    cr_expect_eq(pd_gen_get_place(g, 212, &p), PD_ERR_NOT_FOUND);
    pd_gen_destroy(g);

    /* No villages: the towns take their people. */
    cfg.villages = 0;
    g = make(&cfg);
    share = 0;
    for (size_t i = 0; i < pd_gen_place_count(g); i++) {
        cr_assert_eq(pd_gen_get_place(g, i, &p), PD_OK);
        share += p.share;
    }
    cr_expect_float_eq(share, 1.0 - cfg.scatter_share, 1e-9);
    pd_volunteer_t v;
    pd_gen_destroy(g);
    cfg.volunteers = 100;
    g = make(&cfg);
    while (pd_gen_next_volunteer(g, &v)) cr_assert_eq(pd_volunteer_check(&v), PD_OK);
    pd_gen_destroy(g);
}

Test(gen, county_anywhere_on_earth) {
    /* Southern and western hemispheres, a small and a big county. */
    pd_gen_config_t cfg = small_config(17, 2000, 200);
    cfg.center_lat = -33.45;
    cfg.center_lon = -70.66;
    cfg.size_km = 5;
    pd_gen_t *g = make(&cfg);
    pd_latlng_t sw, ne;
    pd_gen_get_box(g, &sw, &ne);
    pd_volunteer_t v;
    while (pd_gen_next_volunteer(g, &v)) {
        cr_assert(v.pos.lat >= sw.lat && v.pos.lat <= ne.lat);
        cr_assert(v.pos.lon >= sw.lon && v.pos.lon <= ne.lon);
    }
    pd_gen_order_t o;
    while (pd_gen_next_order(g, &o)) cr_assert_eq(pd_gen_order_check(&o), PD_OK);
    pd_gen_destroy(g);

    cfg.center_lat = 60.0;
    cfg.center_lon = 10.0;
    cfg.size_km = 400;
    g = make(&cfg);
    pd_gen_get_box(g, &sw, &ne);
    /* At 60 degrees a degree of longitude is half as long. */
    double ratio = (double)(ne.lon - sw.lon) / (double)(ne.lat - sw.lat);
    cr_expect(fabs(ratio - 2.0) < 0.01, "lon/lat span ratio %.4f", ratio);
    pd_gen_destroy(g);
}

/* --------------------------------------------------------------- orders */

/* Local (UTC+8) weekday, 0 = Monday, and hour of an instant. */
static void local_time(int64_t ms, int *wd, int *hour) {
    int64_t local = ms + 8 * HOUR_MS;
    int64_t day = local / DAY_MS;
    *wd = (int)((day + 3) % 7);
    *hour = (int)((local % DAY_MS) / HOUR_MS);
}

Test(gen, orders_have_the_documented_shape) {
    const uint64_t M = 30000;
    pd_gen_config_t cfg = small_config(21, 0, M);
    pd_gen_t *g = make(&cfg);
    pd_latlng_t sw, ne;
    pd_gen_get_box(g, &sw, &ne);
    const int64_t end = cfg.start_ms + 7 * DAY_MS;
    uint64_t by_hour[24] = {0}, by_day[7] = {0}, prio[PD_GEN_PRIORITY__COUNT] = {0};
    uint64_t single = 0, one_skill = 0, asap = 0, n = 0;
    int64_t last = cfg.start_ms;
    pd_gen_order_t o;
    while (pd_gen_next_order(g, &o)) {
        cr_assert_eq(pd_gen_order_check(&o), PD_OK);
        cr_assert_geq(o.created_ms, last, "order %llu out of order", (unsigned long long)o.id);
        cr_assert(o.created_ms >= cfg.start_ms && o.created_ms < end);
        last = o.created_ms;
        cr_assert(o.pos.lat >= sw.lat && o.pos.lat <= ne.lat);
        cr_assert(o.pos.lon >= sw.lon && o.pos.lon <= ne.lon);
        int k = __builtin_popcountll(o.skills);
        cr_assert(k == 1 || k == 2);
        cr_assert_eq(o.skills >> 12, 0);
        cr_assert(o.need >= 1 && o.need <= 5);
        cr_assert_gt(o.start_ms, o.created_ms);
        cr_assert_leq(o.start_ms, o.created_ms + 6 * DAY_MS);
        cr_assert(o.duration_min >= 30 && o.duration_min <= 240 && o.duration_min % 30 == 0);
        cr_assert(o.budget_min == 15 || o.budget_min == 30);
        if (o.priority == PD_GEN_PRIORITY_EMERGENCY) {
            cr_assert_leq(o.start_ms - o.created_ms, 15 * 60000);
            cr_assert_geq(o.need, 3);
        }
        int wd, h;
        local_time(o.created_ms, &wd, &h);
        by_hour[h]++;
        by_day[wd]++;
        prio[o.priority]++;
        single += o.need == 1;
        one_skill += k == 1;
        asap += o.start_ms - o.created_ms <= 3 * HOUR_MS;
        n++;
    }
    cr_expect_eq(n, M);
    pd_gen_destroy(g);

    cr_expect(fabs((double)prio[PD_GEN_PRIORITY_EMERGENCY] / M - 0.01) < 0.003);
    cr_expect(fabs((double)prio[PD_GEN_PRIORITY_ELEVATED] / M - 0.15) < 0.01);
    cr_expect(fabs((double)single / M - 0.87) < 0.01, "need 1: %.3f", (double)single / M);
    cr_expect(fabs((double)one_skill / M - 0.85) < 0.01);
    cr_expect_gt((double)asap / M, 0.3);
    /* Daily rhythm: morning and evening peaks far above the night. */
    double peak = (by_hour[8] + by_hour[9] + by_hour[18] + by_hour[19]) / 4.0;
    double night = (by_hour[1] + by_hour[2] + by_hour[3] + by_hour[4]) / 4.0;
    double noon = by_hour[12];
    cr_expect_gt(peak, 15 * night, "peak %.0f night %.0f", peak, night);
    cr_expect_gt(peak, 2 * noon, "peak %.0f noon %.0f", peak, noon);
    /* Weekly rhythm: weekend days busier than midweek days. */
    double midweek = (by_day[1] + by_day[2] + by_day[3]) / 3.0;
    cr_expect_gt(by_day[5], 1.12 * midweek);
    cr_expect_gt(by_day[6], 1.05 * midweek);
}

Test(gen, order_stream_edges) {
    /* One order in one day, a start not on the hour. */
    pd_gen_config_t cfg = small_config(23, 0, 1);
    cfg.days = 1;
    cfg.start_ms = 1000;
    pd_gen_t *g = make(&cfg);
    pd_gen_order_t o;
    cr_assert(pd_gen_next_order(g, &o));
    cr_expect(o.created_ms >= 1000 && o.created_ms < 1000 + DAY_MS);
    cr_expect_not(pd_gen_next_order(g, &o));
    pd_gen_destroy(g);

    /* Many orders in a short span stay sorted and inside it. */
    cfg.orders = 200000;
    cfg.start_ms = 1709481600000LL;
    g = make(&cfg);
    int64_t last = 0;
    uint64_t n = 0;
    while (pd_gen_next_order(g, &o)) {
        cr_assert_geq(o.created_ms, last);
        last = o.created_ms;
        n++;
    }
    cr_expect_eq(n, 200000);
    cr_expect_lt(last, cfg.start_ms + DAY_MS);
    /* The last of 200000 uniform-ish draws is close to the end. */
    cr_expect_gt(last, cfg.start_ms + DAY_MS - 10 * 60000);
    pd_gen_destroy(g);
}

/* The documented order weights, local hour 0..23 and Monday..Sunday. */
static const double doc_hour_weight[24] = {
    0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.4, 2.4, 2.6, 2.0, 1.5,
    1.0, 1.1, 1.4, 1.5, 1.5, 1.8, 2.4, 2.6, 2.0, 1.2, 0.6, 0.3,
};
static const double doc_day_weight[7] = {1.05, 1.0, 1.0, 1.0, 0.95, 1.25, 1.15};

/* Local weekday (0 = Monday) and hour of an instant at any offset. */
static void local_time_at(int64_t ms, int32_t offset_min, int *wd, int *hour) {
    int64_t local = ms + (int64_t)offset_min * 60000;
    int64_t day = local / DAY_MS - (local % DAY_MS < 0);
    *wd = (int)(((day + 3) % 7 + 7) % 7);
    *hour = (int)((local - day * DAY_MS) / HOUR_MS);
}

/* The share of orders created in each local clock hour matches the
 * documented weights, minute by minute, when the offset is not a whole
 * number of hours or the start is not on the hour. */
static void expect_local_hour_shares(int32_t offset_min, int64_t start_ms) {
    const uint64_t M = 100000;
    pd_gen_config_t cfg = small_config(31, 0, M);
    cfg.utc_offset_min = offset_min;
    cfg.start_ms = start_ms;
    double want[24] = {0}, total = 0;
    for (int64_t t = start_ms; t < start_ms + (int64_t)cfg.days * DAY_MS; t += 60000) {
        int wd, h;
        local_time_at(t, offset_min, &wd, &h);
        double w = doc_hour_weight[h] * doc_day_weight[wd];
        want[h] += w;
        total += w;
    }
    uint64_t got[24] = {0};
    pd_gen_t *g = make(&cfg);
    pd_gen_order_t o;
    while (pd_gen_next_order(g, &o)) {
        int wd, h;
        local_time_at(o.created_ms, offset_min, &wd, &h);
        got[h]++;
    }
    pd_gen_destroy(g);
    for (int h = 0; h < 24; h++) {
        double p = want[h] / total, share = (double)got[h] / (double)M;
        /* 4.5 standard errors of a share on 10^5 orders. */
        double tol = 4.5 * sqrt(p * (1 - p) / (double)M);
        cr_expect(fabs(share - p) < tol,
                  "UTC%+d start %lld: local hour %d has %.2f %% of orders, want %.2f %% +- %.2f",
                  offset_min, (long long)start_ms, h, 100 * share, 100 * p, 100 * tol);
    }
}

Test(gen, order_rhythm_follows_local_clock_hours) {
    expect_local_hour_shares(330, 1709481600000LL);                   /* UTC+5:30 */
    expect_local_hour_shares(-570, 1709481600000LL);                  /* UTC-9:30 */
    expect_local_hour_shares(480, 1709481600000LL + 20 * 60000);      /* 00:20 */
    expect_local_hour_shares(480, 1709481600000LL + 45 * 60000 + 17); /* 00:45:00.017 */
    expect_local_hour_shares(480, 1709481600000LL);                   /* on the hour */
}

/* ------------------------------------------------------------------ OOM */

Test(gen, create_fails_cleanly_on_every_allocation) {
    pd_gen_config_t cfg = small_config(1, 10, 10);
    long n;
    for (n = 0; n < 50; n++) {
        pd_alloc_fail_after(n);
        pd_gen_t *g = NULL;
        pd_err err = pd_gen_create(&cfg, &g);
        pd_alloc_fail_after(-1);
        if (err == PD_OK) {
            pd_volunteer_t v;
            cr_expect(pd_gen_next_volunteer(g, &v));
            pd_gen_destroy(g);
            break;
        }
        cr_expect_eq(err, PD_ERR_NOMEM, "allocation %ld", n);
        cr_expect_null(g);
    }
    cr_expect_gt(n, 0, "create allocates");
    cr_expect_lt(n, 50);
}
