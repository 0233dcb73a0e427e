/* test_match.c -- match.nearby and match.mobilize over TCP against a
 * brute-force oracle, as a dispatch platform asking "who should go?" meets
 * them.
 *
 * A seeded county of volunteers is loaded through volunteer.upsert (skills,
 * tags, modes, weekly schedules with hours at the week's end, capacities,
 * statuses), some serve orders for hours and ratings, and every answer is
 * compared with a scan of the test's own copy of the county: the filters,
 * the ETA of each mode with the default speeds and detour, the budget and
 * the radius, the policies' scores (docs/engine.md, "Policies") and their
 * order with ties by id, the mobilisation's count against its limit. The
 * oracle computes the distance with the index's formula (docs/index.md,
 * "The distance"), so the two agree to the last bit. Every query passes
 * `start` (or ignores schedules), so no answer depends on the clock.
 * PD_SEED=n replays another county.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper.h"

static srv_t srv;

static void start_plain(void) {
    srv_start(&srv, NULL);
}

static void stop(void) {
    srv_stop(&srv);
}

TestSuite(match, .init = start_plain, .fini = stop, .timeout = 60);

/* ------------------------------------------------------------ the oracle */

#define NV 1200
#define LAT0 30600000 /* micro-degrees */
#define LON0 114300000
#define OFFSET_MIN 480 /* the engine's default utc_offset */
#define DETOUR 1.3
#define EARTH_R_M 6371008.8
#define E6_TO_RAD (3.14159265358979323846 / 180e6)
#define PRIVATE_TAG 63 /* set on one volunteer at a time to route an order */
/* Monday 2024-03-04 00:00 at +08:00 */
#define WEEK0_MS 1709481600000LL

static const char *const skill_names[] = {"theory-policy", "culture-arts", "tutoring",
                                          "medical-fitness"};
static const char *const mode_names[] = {"walk", "bike", "ebike", "car"};
static const double speed_kmh[] = {4.5, 12, 18, 30};
static const char *const status_names[] = {"online", "busy", "offline"};

typedef struct vol_s {
    uint64_t id;
    int32_t lat, lon; /* micro-degrees */
    unsigned skills;  /* bits into skill_names */
    unsigned tags;    /* bits 0..2 */
    int mode, status, capacity;
    bool always;        /* no schedule given */
    uint8_t hours[168]; /* the schedule, when not always */
    uint32_t minutes;   /* served today (all within the 7-day window) */
    uint32_t rating_sum, rating_count;
} vol_t;

static vol_t vols[NV];

static uint64_t rng_state;

static uint64_t rnd(void) {
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n) {
    return rnd() % n;
}

static uint64_t test_seed(void) {
    const char *s = getenv("PD_SEED");
    return s ? strtoull(s, NULL, 10) : 20261127;
}

/* The index's metric (index/geo.h, pd__fast_d2), step for step. */
static double dist_m(int32_t qlat, int32_t qlon, int32_t lat, int32_t lon) {
    double qr = qlat * E6_TO_RAD;
    double cos_q = cos(qr), sin_q = sin(qr);
    int64_t dl = (int64_t)lon - (int64_t)qlon;
    if (dl > 180000000) dl -= 360000000;
    if (dl < -180000000) dl += 360000000;
    double dy = (double)((int64_t)lat - (int64_t)qlat) * E6_TO_RAD;
    double dx = (double)dl * E6_TO_RAD;
    double kx = cos_q - sin_q * dy * 0.5;
    if (kx < 0) kx = 0;
    dx *= kx;
    return EARTH_R_M * sqrt(dy * dy + dx * dx);
}

typedef enum { POL_NEAREST, POL_BALANCED, POL_RATED } pol_t;

typedef struct query_s {
    int32_t lat, lon;
    unsigned skills, tags;
    double budget_s; /* 0: none */
    double radius_m; /* 0: none */
    bool check_schedule;
    int64_t start_ms;
    int duration_min;
    bool include_unavailable;
    pol_t policy;
} query_t;

typedef struct hit_s {
    uint64_t id;
    double score, eta;
} hit_t;

static int cmp_hit(const void *a, const void *b) {
    const hit_t *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Local hour of the week (Monday 00:00 = 0) of a UTC instant. */
static int week_minute(int64_t ms) {
    int64_t m = ms / 60000 + OFFSET_MIN + 3 * 1440; /* 1970-01-01 was a Thursday */
    return (int)(m % 10080);
}

static bool on_schedule(const vol_t *v, const query_t *q) {
    if (!q->check_schedule || v->always) return true;
    int s = week_minute(q->start_ms);
    int first = s / 60, last = (s + (q->duration_min ? q->duration_min - 1 : 0)) / 60;
    if (last - first >= 168) last = first + 167;
    for (int h = first; h <= last; h++)
        if (!v->hours[h % 168]) return false;
    return true;
}

/* Everyone who qualifies, best first by the policy (ties by id). */
static size_t oracle(const query_t *q, hit_t *out) {
    size_t n = 0;
    for (size_t i = 0; i < NV; i++) {
        const vol_t *v = &vols[i];
        if ((v->skills & q->skills) != q->skills || (v->tags & q->tags) != q->tags) continue;
        if (!q->include_unavailable && v->status != 0) continue; /* nobody holds an offer */
        if (!on_schedule(v, q)) continue;
        double d = dist_m(q->lat, q->lon, v->lat, v->lon);
        if (q->radius_m > 0 && d > q->radius_m) continue;
        double eta = d * DETOUR / (speed_kmh[v->mode] / 3.6);
        if (q->budget_s > 0 && eta > q->budget_s) continue;
        double score = eta;
        if (q->policy == POL_BALANCED) {
            double h = v->minutes / 60.0;
            score = eta + 60.0 * (h < 20 ? h : 20);
        } else if (q->policy == POL_RATED) {
            double mean = v->rating_count ? (double)v->rating_sum / v->rating_count : 4.0;
            score = eta + 120.0 * (5.0 - mean);
        }
        out[n].id = v->id;
        out[n].score = score;
        out[n].eta = eta;
        n++;
    }
    qsort(out, n, sizeof *out, cmp_hit);
    return n;
}

/* ------------------------------------------------------------- the county */

static int json_mask(char *out, size_t cap, uint64_t mask, bool names) {
    int len = snprintf(out, cap, "[");
    bool first = true;
    for (unsigned b = 0; b < 64; b++) {
        if (!(mask >> b & 1)) continue;
        if (names)
            len += snprintf(out + len, cap - (size_t)len, "%s\"%s\"", first ? "" : ",",
                            skill_names[b]);
        else
            len += snprintf(out + len, cap - (size_t)len, "%s%u", first ? "" : ",", b);
        first = false;
    }
    return len + snprintf(out + len, cap - (size_t)len, "]");
}

static void upsert(pd_client_t *c, const vol_t *v, bool private_tag) {
    char sk[128], tg[64], sched[2048], buf[4096];
    json_mask(sk, sizeof sk, v->skills, true);
    json_mask(tg, sizeof tg, v->tags | (private_tag ? 1ull << PRIVATE_TAG : 0), false);
    int len = 0;
    sched[0] = '\0';
    if (!v->always) {
        len = snprintf(sched, sizeof sched, ",\"schedule\":[");
        bool first = true;
        for (int h = 0; h < 168; h++) {
            if (!v->hours[h]) continue;
            len += snprintf(sched + len, sizeof sched - (size_t)len, "%s[%d,%d,%d]",
                            first ? "" : ",", h / 24, h % 24, h % 24 + 1);
            first = false;
        }
        snprintf(sched + len, sizeof sched - (size_t)len, "]");
    }
    snprintf(buf, sizeof buf,
             "{\"id\":%llu,\"lat\":%.6f,\"lon\":%.6f,\"skills\":%s,\"tags\":%s,\"mode\":\"%s\","
             "\"capacity\":%d,\"status\":\"%s\"%s}",
             (unsigned long long)v->id, v->lat / 1e6, v->lon / 1e6, sk, tg, mode_names[v->mode],
             v->capacity, status_names[v->status], sched);
    call_ok(c, "volunteer.upsert", buf);
}

/* Route one order to v alone (the private tag), then complete and rate it:
 * minutes served today and a rating on v's record. */
static void serve(pd_client_t *c, vol_t *v, uint64_t order_id, uint32_t minutes, int rating) {
    char buf[512];
    upsert(c, v, true);
    snprintf(buf, sizeof buf,
             "{\"id\":%llu,\"lat\":%.6f,\"lon\":%.6f,\"skills\":[],\"tags\":[%d],"
             "\"ignore_schedule\":true,\"minutes\":1440}",
             (unsigned long long)order_id, v->lat / 1e6, v->lon / 1e6, PRIVATE_TAG);
    pd_msg_t m = call_ok(c, "order.create", buf);
    cr_assert_str_eq(map_str(&m.result, "state"), "offered");
    snprintf(buf, sizeof buf, "{\"id\":%llu,\"volunteer\":%llu}", (unsigned long long)order_id,
             (unsigned long long)v->id);
    call_ok(c, "order.accept", buf);
    snprintf(buf, sizeof buf, "{\"id\":%llu,\"minutes_served\":%u}", (unsigned long long)order_id,
             minutes);
    call_ok(c, "order.complete", buf);
    snprintf(buf, sizeof buf, "{\"id\":%llu,\"score\":%d}", (unsigned long long)order_id, rating);
    call_ok(c, "order.rate", buf);
    upsert(c, v, false);
    v->minutes += minutes;
    v->rating_sum += (uint32_t)rating;
    v->rating_count++;
}

static void make_county(pd_client_t *c, uint64_t seed) {
    rng_state = seed;
    for (size_t i = 0; i < NV; i++) {
        vol_t *v = &vols[i];
        memset(v, 0, sizeof *v);
        /* ids out of order, some far apart */
        v->id = below(4) ? 1000 + i * 7919 % 100003 : (1ull << 40) + i;
        /* on a 1e-4 degree grid, so some share a place (ties by id) */
        v->lat = LAT0 + (int32_t)(below(601) - 300) * 100;
        v->lon = LON0 + (int32_t)(below(601) - 300) * 100;
        v->skills = (unsigned)below(16);
        v->tags = below(3) ? 0 : (unsigned)below(8);
        v->mode = (int)below(4);
        v->status = below(5) == 0 ? 1 + (int)below(2) : 0;
        v->capacity = 1 + (int)below(2);
        v->always = below(3) == 0;
        if (!v->always) {
            int ranges = (int)below(4);
            for (int r = 0; r < ranges; r++) {
                int d = (int)below(7), s = (int)below(24), e = s + 1 + (int)below(24 - s);
                for (int h = s; h < e; h++) v->hours[d * 24 + h] = 1;
            }
            /* the week's end: Sunday evening into Monday morning */
            if (below(3) == 0) v->hours[167] = v->hours[0] = 1;
        }
        upsert(c, v, false);
    }
    uint64_t order_id = 1;
    for (size_t i = 0; i < NV; i += 1 + below(15)) {
        vol_t *v = &vols[i];
        if (v->status != 0) continue;
        static const uint32_t minutes[] = {30, 60, 240, 900, 1500};
        int times = 1 + (int)below(2);
        for (int t = 0; t < times; t++)
            serve(c, v, order_id++, minutes[below(5)], 1 + (int)below(5));
    }
}

/* -------------------------------------------------------------- queries */

static const char *const policy_names[] = {"nearest", "balanced", "rated"};

static void random_query(query_t *q, uint64_t base_ms) {
    memset(q, 0, sizeof *q);
    q->lat = LAT0 + (int32_t)(below(50001) - 25000);
    q->lon = LON0 + (int32_t)(below(50001) - 25000);
    q->skills = below(2) ? 1u << below(4) : 0;
    if (below(4) == 0) q->skills |= 1u << below(4);
    q->tags = below(4) == 0 ? 1u << below(3) : 0;
    static const double budgets[] = {0, 60, 300, 900, 3600, 86400};
    static const double radii[] = {0, 150, 1000, 4000, 2e6};
    q->budget_s = budgets[below(6)];
    q->radius_m = radii[below(5)];
    if (q->budget_s == 0 && q->radius_m == 0) q->budget_s = 900;
    q->check_schedule = below(4) != 0;
    /* any minute of the week, near its end more often */
    int64_t minute = below(3) == 0 ? 10080 - 90 + (int64_t)below(180) : (int64_t)below(10080);
    q->start_ms = (int64_t)base_ms + minute * 60000;
    static const int durations[] = {0, 1, 30, 60, 61, 180, 1440};
    q->duration_min = durations[below(7)];
    q->include_unavailable = below(5) == 0;
    q->policy = (pol_t)below(3);
}

static int query_json(const query_t *q, char *buf, size_t cap, bool with_policy) {
    char sk[128], tg[64];
    json_mask(sk, sizeof sk, q->skills, true);
    json_mask(tg, sizeof tg, q->tags, false);
    int len = snprintf(buf, cap, "{\"lat\":%.6f,\"lon\":%.6f,\"skills\":%s,\"tags\":%s",
                       q->lat / 1e6, q->lon / 1e6, sk, tg);
    if (q->budget_s > 0)
        len += snprintf(buf + len, cap - (size_t)len, ",\"minutes\":%.17g", q->budget_s / 60.0);
    if (q->radius_m > 0)
        len += snprintf(buf + len, cap - (size_t)len, ",\"radius_m\":%.17g", q->radius_m);
    if (q->check_schedule)
        len += snprintf(buf + len, cap - (size_t)len, ",\"start\":%lld,\"duration_min\":%d",
                        (long long)q->start_ms, q->duration_min);
    else
        len += snprintf(buf + len, cap - (size_t)len, ",\"ignore_schedule\":true");
    if (q->include_unavailable)
        len += snprintf(buf + len, cap - (size_t)len, ",\"include_unavailable\":true");
    if (with_policy)
        len +=
            snprintf(buf + len, cap - (size_t)len, ",\"policy\":\"%s\"", policy_names[q->policy]);
    return len;
}

static void assert_hits(const msgpack_object *arr, const hit_t *want, size_t n_want,
                        const char *what, const char *params) {
    cr_assert_eq(arr->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(arr->via.array.size, n_want, "%s %s: %u hits, oracle %zu", what, params,
                 arr->via.array.size, n_want);
    for (size_t i = 0; i < n_want; i++) {
        const msgpack_object *h = &arr->via.array.ptr[i];
        cr_assert_eq((uint64_t)map_int(h, "id"), want[i].id, "%s %s: hit %zu is %lld, oracle %llu",
                     what, params, i, map_int(h, "id"), (unsigned long long)want[i].id);
        double score = map_num(h, "score"), eta = map_num(h, "eta_s");
        cr_assert(fabs(score - want[i].score) <= 1e-9 * (1 + want[i].score),
                  "%s %s: hit %zu score %.9f, oracle %.9f", what, params, i, score, want[i].score);
        cr_assert(fabs(eta - want[i].eta) <= 1e-6 * (1 + want[i].eta), "%s %s: hit %zu eta %f",
                  what, params, i, eta);
    }
}

Test(match, nearby_and_mobilize_against_brute_force) {
    uint64_t seed = test_seed();
    fprintf(stderr, "match: seed %llu\n", (unsigned long long)seed);
    pd_client_t *c = srv_connect(&srv);
    make_county(c, seed);
    static hit_t want[NV];
    char params[1024];
    for (int it = 0; it < 150; it++) {
        query_t q;
        random_query(&q, WEEK0_MS + 7 * 86400000LL * (int64_t)below(3));
        /* match.nearby always has a budget: without `minutes`, the engine's */
        query_t qn = q;
        if (qn.budget_s == 0) qn.budget_s = 900;
        size_t n = oracle(&qn, want);

        /* match.nearby: the k best by the policy; without `policy`, by ETA */
        static const int ks[] = {1, 3, 10, 200, 1000};
        int k = ks[below(5)];
        bool with_policy = q.policy != POL_NEAREST || below(2);
        int len = query_json(&q, params, sizeof params, with_policy);
        snprintf(params + len, sizeof params - (size_t)len, ",\"k\":%d}", k);
        pd_msg_t m = call_ok(c, "match.nearby", params);
        assert_hits(&m.result, want, n < (size_t)k ? n : (size_t)k, "match.nearby", params);

        /* match.mobilize: everyone by ETA, the first `limit`, and the count */
        q.policy = POL_NEAREST;
        n = oracle(&q, want);
        static const int limits[] = {0, 1, 7, 1000, 100000};
        int limit = limits[below(5)];
        len = query_json(&q, params, sizeof params, false);
        snprintf(params + len, sizeof params - (size_t)len, ",\"limit\":%d}", limit);
        m = call_ok(c, "match.mobilize", params);
        cr_assert_eq((size_t)map_int(&m.result, "count"), n, "match.mobilize %s", params);
        assert_hits(pd_client_map_get(&m.result, "volunteers"), want,
                    n < (size_t)limit ? n : (size_t)limit, "match.mobilize", params);
    }
    pd_client_destroy(c);
}

/* The policies' extra terms are bounded and never negative, so the ring
 * search may stop early; they must still let a rested volunteer far away
 * beat every busy one near the place. Eight walkers at 30..240 m have each
 * served 20 hours this week (+1200 s under balanced) and been rated 1
 * (+480 s under rated); a car at 2 km (about 310 s) has served none and is
 * unrated (+120 s). */
Test(match, a_rested_volunteer_farther_away_wins) {
    pd_client_t *c = srv_connect(&srv);
    uint64_t order_id = 500;
    for (int i = 0; i < 8; i++) {
        vol_t v;
        memset(&v, 0, sizeof v);
        v.id = 10 + (uint64_t)i;
        v.lat = LAT0 + 270 * (i + 1); /* ~30 m apart */
        v.lon = LON0;
        v.skills = 1;
        v.capacity = 1;
        v.always = true;
        upsert(c, &v, false);
        serve(c, &v, order_id++, 1200, 1); /* 20 h, rated 1 */
    }
    vol_t far;
    memset(&far, 0, sizeof far);
    far.id = 99;
    far.lat = LAT0 + 18000; /* ~2 km */
    far.lon = LON0;
    far.skills = 1;
    far.mode = 3;
    far.capacity = 1;
    far.always = true;
    upsert(c, &far, false);
    static const struct {
        const char *policy;
        long long first;
    } cases[] = {{"nearest", 10}, {"balanced", 99}, {"rated", 99}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int k = 1; k <= 9; k += 4) {
            char params[256];
            snprintf(params, sizeof params,
                     "{\"lat\":%.6f,\"lon\":%.6f,\"skills\":[\"%s\"],\"ignore_schedule\":true,"
                     "\"policy\":\"%s\",\"k\":%d}",
                     LAT0 / 1e6, LON0 / 1e6, skill_names[0], cases[i].policy, k);
            pd_msg_t m = call_ok(c, "match.nearby", params);
            cr_assert_eq(m.result.via.array.size, (uint32_t)k, "%s", params);
            cr_assert_eq(map_int(&m.result.via.array.ptr[0], "id"), cases[i].first, "%s", params);
        }
    }
    /* dispatch ranks by the engine's policy (balanced by default): the car */
    pd_msg_t m = call_ok(c, "order.create",
                         "{\"id\":900,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"theory-policy\"],"
                         "\"ignore_schedule\":true}");
    const msgpack_object *offers = pd_client_map_get(&m.result, "offers");
    cr_assert(offers && offers->via.array.size == 1);
    cr_assert_eq(map_int(&offers->via.array.ptr[0], "volunteer"), 99);
    pd_client_destroy(c);
}

/* mark_notified counts exactly the volunteers returned (the first `limit`),
 * once per call; without it, or with limit 0, nothing changes. */
Test(match, mobilize_marks_the_returned_volunteers) {
    pd_client_t *c = srv_connect(&srv);
    for (int i = 0; i < 6; i++) {
        vol_t v;
        memset(&v, 0, sizeof v);
        v.id = 1 + (uint64_t)i;
        v.lat = LAT0 + 900 * i; /* ~100 m apart, id order is ETA order */
        v.lon = LON0;
        v.capacity = 1;
        v.always = true;
        upsert(c, &v, false);
    }
    static const char *const calls[] = {
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":2000,\"limit\":3,\"mark_notified\":true}",
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":2000,\"limit\":2,\"mark_notified\":true}",
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":2000,\"limit\":0,\"mark_notified\":true}",
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":2000,\"limit\":6}",
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":2000,\"limit\":6,\"mark_notified\":false}",
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        pd_msg_t m = call_ok(c, "match.mobilize", calls[i]);
        cr_assert_eq(map_int(&m.result, "count"), 6);
    }
    static const long long want[] = {2, 2, 1, 0, 0, 0};
    for (int i = 0; i < 6; i++) {
        char params[64];
        snprintf(params, sizeof params, "{\"id\":%d}", i + 1);
        pd_msg_t m = call_ok(c, "volunteer.get", params);
        cr_assert_eq(map_int(&m.result, "notified_count"), want[i], "volunteer %d", i + 1);
        cr_assert_eq(map_int(&m.result, "last_notified_ms") > 0, want[i] > 0);
    }
    pd_client_destroy(c);
}
