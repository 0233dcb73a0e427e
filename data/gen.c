/* gen.c -- the synthetic county: places, volunteers and an order stream.
 *
 * The model, in the order the generator builds it (docs/data.md has the
 * numbers and the reasons):
 *
 *  - Geography. A square county around a centre. Towns are dense gaussian
 *    clusters (the county seat near the centre is the largest; sizes fall
 *    off like 1/rank); villages are small gaussian clusters spread over
 *    the county; a share of people is scattered uniformly. Every position
 *    is clamped into the county box.
 *
 *  - Volunteers. Each draws a place, a persona (worker, youth, retired,
 *    full-time staff), tags that follow from persona and place, a weekly
 *    schedule from the persona's template plus noise, 1-3 skills from a
 *    Zipf-Mandelbrot popularity table, a travel mode, a capacity and a
 *    status.
 *
 *  - Orders. Creation times are the order statistics of M draws from a
 *    piecewise-constant hourly intensity (daily peaks morning and evening,
 *    busier weekends), produced in increasing order one at a time, so the
 *    stream needs O(1) memory and has exactly M orders. Places follow the
 *    population; skills follow the same popularity as supply.
 *
 * Determinism: all randomness comes from rng.h streams, and all floating
 * point from + - * / sqrt and rng.h's own log/exp/cos, so the bytes are
 * the same on every machine. Each stream (layout, volunteers, orders,
 * points) is seeded independently from cfg.seed.
 */
#include "paidan/data.h"

#include <math.h>
#include <string.h>

#include "paidan/alloc.h"
#include "rng.h"

/* Streams drawn from one seed. Changing these changes every county. */
enum { STREAM_LAYOUT = 1, STREAM_VOLUNTEERS = 2, STREAM_ORDERS = 3, STREAM_POINTS = 4 };

#define PI 3.14159265358979323846
/* Metres per degree of latitude on the sphere the index measures with. */
#define M_PER_DEG (6371008.8 * PI / 180.0)
#define MINUTE_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

/* ------------------------------------------------------------ name tables */

static const char *const skill_names[PD_GEN_MAX_SKILLS] = {
    "theory-policy", "culture-arts", "tutoring",       "medical-fitness", "science-pop",
    "legal-aid",     "sanitation",   "poverty-relief", "red-heritage",    "family-values",
    "civility",      "elder-care",   "local-5",        "local-6",         "local-7",
    "local-8",       "local-9",      "local-10",       "local-11",        "local-12",
    "local-13",      "local-14",     "local-15",       "local-16",        "local-17",
    "local-18",      "local-19",     "local-20",       "local-21",        "local-22",
    "local-23",      "local-24",     "local-25",       "local-26",        "local-27",
    "local-28",      "local-29",     "local-30",       "local-31",        "local-32",
    "local-33",      "local-34",     "local-35",       "local-36",        "local-37",
    "local-38",      "local-39",     "local-40",       "local-41",        "local-42",
    "local-43",      "local-44",     "local-45",       "local-46",        "local-47",
    "local-48",      "local-49",     "local-50",       "local-51",        "local-52",
    "local-53",      "local-54",     "local-55",       "local-56",
};

static const char *const tag_names[PD_GEN_TAG_COUNT] = {
    "party-member", "youth", "retired", "speaks-dialect", "first-aid",
};

static const char *const priority_names[PD_GEN_PRIORITY__COUNT] = {
    "normal",
    "elevated",
    "emergency",
};

/* Popularity of the first twelve skills, most popular first: sanitation,
 * culture-arts, elder-care, theory-policy, tutoring, civility,
 * medical-fitness, poverty-relief, science-pop, family-values, legal-aid,
 * red-heritage. Skills past these follow in bit order. */
static const uint8_t popularity_order[12] = {6, 1, 11, 0, 2, 10, 3, 7, 4, 9, 5, 8};

const char *const *pd_gen_skill_names(size_t *n) {
    if (n) *n = PD_GEN_MAX_SKILLS;
    return skill_names;
}

const char *const *pd_gen_tag_names(size_t *n) {
    if (n) *n = PD_GEN_TAG_COUNT;
    return tag_names;
}

const char *pd_gen_priority_name(pd_gen_priority p) {
    return (unsigned)p < PD_GEN_PRIORITY__COUNT ? priority_names[p] : NULL;
}

pd_err pd_gen_order_check(const pd_gen_order_t *o) {
    if (!pd_latlng_is_valid(o->pos)) return PD_ERR_BAD_COORD;
    if (o->need < 1 || o->need > PD_GEN_MAX_NEED) return PD_ERR_BAD_ARG;
    if (o->duration_min < 0 || o->duration_min > PD_GEN_MAX_DURATION_MIN) return PD_ERR_BAD_ARG;
    if (o->priority >= PD_GEN_PRIORITY__COUNT) return PD_ERR_BAD_ARG;
    if (o->budget_min < 1 || o->budget_min > PD_GEN_MAX_BUDGET_MIN) return PD_ERR_BAD_ARG;
    return PD_OK;
}

/* ------------------------------------------------------------------ config */

void pd_gen_config_init(pd_gen_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 1;
    cfg->volunteers = 10000;
    cfg->orders = 10000;
    cfg->center_lat = 30.60;
    cfg->center_lon = 114.30;
    cfg->size_km = 50.0;
    cfg->towns = 12;
    cfg->villages = 200;
    cfg->town_share = 0.55;
    cfg->scatter_share = 0.08;
    cfg->local_skills = 4;
    cfg->start_ms = 1709481600000LL;
    cfg->days = 7;
    cfg->utc_offset_min = 480;
}

size_t pd_gen_config_skill_count(const pd_gen_config_t *cfg) {
    return PD_GEN_STANDING_SKILLS + (size_t)cfg->local_skills;
}

/* Half the county's side in degrees of latitude and of longitude. */
static void box_half_deg(const pd_gen_config_t *cfg, double *half_lat, double *half_lon) {
    double half_m = cfg->size_km * 500.0;
    *half_lat = half_m / M_PER_DEG;
    *half_lon = half_m / (M_PER_DEG * pd__cos(cfg->center_lat * (PI / 180.0)));
}

pd_err pd_gen_config_check(const pd_gen_config_t *cfg) {
    if (!isfinite(cfg->center_lat) || !isfinite(cfg->center_lon)) return PD_ERR_BAD_COORD;
    if (cfg->center_lat < -85.0 || cfg->center_lat > 85.0) return PD_ERR_BAD_COORD;
    if (cfg->center_lon < -180.0 || cfg->center_lon > 180.0) return PD_ERR_BAD_COORD;
    if (!(cfg->size_km >= 1.0 && cfg->size_km <= PD_GEN_MAX_SIZE_KM)) return PD_ERR_BAD_ARG;
    double half_lat, half_lon;
    box_half_deg(cfg, &half_lat, &half_lon);
    if (cfg->center_lat - half_lat < -85.0 || cfg->center_lat + half_lat > 85.0)
        return PD_ERR_BAD_COORD;
    if (cfg->center_lon - half_lon < -180.0 || cfg->center_lon + half_lon > 180.0)
        return PD_ERR_BAD_COORD;
    if (cfg->towns < 1 || cfg->towns > PD_GEN_MAX_TOWNS) return PD_ERR_BAD_ARG;
    if (cfg->villages > PD_GEN_MAX_VILLAGES) return PD_ERR_BAD_ARG;
    if (!(cfg->town_share >= 0.0 && cfg->town_share <= 1.0)) return PD_ERR_BAD_ARG;
    if (!(cfg->scatter_share >= 0.0 && cfg->scatter_share <= 1.0)) return PD_ERR_BAD_ARG;
    if (cfg->town_share + cfg->scatter_share > 1.0) return PD_ERR_BAD_ARG;
    if (cfg->local_skills > PD_GEN_MAX_LOCAL_SKILLS) return PD_ERR_BAD_ARG;
    if (cfg->days < 1 || cfg->days > PD_GEN_MAX_DAYS) return PD_ERR_BAD_ARG;
    if (cfg->start_ms < 0 || cfg->start_ms > PD_GEN_MAX_START_MS) return PD_ERR_BAD_ARG;
    if (cfg->utc_offset_min < PD_GEN_MIN_UTC_OFFSET_MIN ||
        cfg->utc_offset_min > PD_GEN_MAX_UTC_OFFSET_MIN)
        return PD_ERR_BAD_ARG;
    return PD_OK;
}

/* --------------------------------------------------------------- the state */

typedef struct place_s {
    pd_latlng_t center; /* micro-degrees */
    double sigma_m;     /* cluster standard deviation */
    double weight;      /* relative size within its kind */
    uint8_t kind;       /* pd_gen_place_kind */
} place_t;

struct pd_gen_s {
    pd_gen_config_t cfg;
    pd__rng_t vol_rng; /* the volunteer stream */
    pd__rng_t ord_rng; /* the order stream */
    pd__rng_t pt_rng;  /* pd_gen_random_point() */

    /* Geometry. */
    double e6_per_m_lat; /* micro-degrees of latitude per metre */
    double e6_per_m_lon; /* micro-degrees of longitude per metre at the centre */
    pd_latlng_t sw, ne;  /* the county box, inclusive */

    /* Places: towns [0, towns), then villages. cum_* are running sums of
     * the weights, for pd__rng_pick. */
    place_t *places;
    size_t n_places;
    double *town_cum;
    double *village_cum;
    double p_scatter; /* P(scattered) */
    double p_town;    /* P(town); villages get 1 - p_scatter - p_town */

    /* Skills: rank k of the popularity table is bit skill_bit[k]. */
    size_t n_skills;
    uint8_t skill_bit[PD_GEN_MAX_SKILLS];
    double skill_cum[PD_GEN_MAX_SKILLS];

    /* Streams. */
    uint64_t vol_made;
    uint64_t ord_made;

    /* Order arrival: the span is cut at local clock hours into pieces
     * (piece_span()); piece i has intensity hour_cum[i] - hour_cum[i-1];
     * ord_tail = 1 - (the last sorted uniform). */
    double *hour_cum;
    size_t n_hours;    /* pieces: days * 24, one more when start is off the hour */
    int64_t hour_lead; /* ms from start to the first local hour boundary, 0 if on it */
    size_t ord_hour;
    double ord_tail;
    int64_t ord_last_ms;
};

/* Order intensity by local hour 0..23: low at night, peaks at 8-10 and
 * 18-20. */
static const double order_hour_weight[24] = {
    0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.4, 2.4, 2.6, 2.0, 1.5,
    1.0, 1.1, 1.4, 1.5, 1.5, 1.8, 2.4, 2.6, 2.0, 1.2, 0.6, 0.3,
};
/* Monday..Sunday: busier weekends, a Monday backlog, a quieter Friday. */
static const double order_day_weight[7] = {1.05, 1.0, 1.0, 1.0, 0.95, 1.25, 1.15};
/* When scheduled services start, local hours 8..20. */
static const double service_hour_cum[13] = {
    1.0, 2.6, 4.0, 4.8, 5.2, 5.8, 7.2, 8.6, 9.6, 10.2, 11.1, 12.3, 12.9,
};
/* Durations in minutes and their running weights. */
static const int32_t durations[6] = {30, 60, 90, 120, 180, 240};
static const double duration_cum[6] = {10, 45, 60, 85, 95, 100};
/* Team sizes 2..5 and their running weights. */
static const double team_cum[4] = {5, 9, 11, 12};
/* Travel modes walk, bike, e-bike, car: 45 / 20 / 25 / 10 per cent. */
static const double mode_cum[PD_MODE__COUNT] = {45, 65, 90, 100};

/* ------------------------------------------------------------- geometry */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static int32_t round_e6(double x) {
    return (int32_t)floor(x + 0.5);
}

static int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

static bool in_box(const pd_gen_t *g, int64_t lat, int64_t lon) {
    return lat >= g->sw.lat && lat <= g->ne.lat && lon >= g->sw.lon && lon <= g->ne.lon;
}

/* Straight-line metres between two points of the county (flat earth at
 * the county's scale, which is all the layout needs). */
static double dist_m(const pd_gen_t *g, pd_latlng_t a, pd_latlng_t b) {
    double dy = (double)(b.lat - a.lat) / g->e6_per_m_lat;
    double dx = (double)(b.lon - a.lon) / g->e6_per_m_lon;
    return sqrt(dx * dx + dy * dy);
}

/* A uniform point of the sub-box that keeps `frac` of each side. */
static pd_latlng_t uniform_point(const pd_gen_t *g, pd__rng_t *r, double frac) {
    int64_t h = g->ne.lat - g->sw.lat, w = g->ne.lon - g->sw.lon;
    int64_t mh = (int64_t)((double)h * (1.0 - frac) / 2.0);
    int64_t mw = (int64_t)((double)w * (1.0 - frac) / 2.0);
    pd_latlng_t p;
    p.lat = (int32_t)(g->sw.lat + mh + (int64_t)pd__rng_below(r, (uint64_t)(h - 2 * mh + 1)));
    p.lon = (int32_t)(g->sw.lon + mw + (int64_t)pd__rng_below(r, (uint64_t)(w - 2 * mw + 1)));
    return p;
}

/* A point of a gaussian cluster, redrawn when it falls outside the box
 * and clamped after a few tries (a cluster on the border). */
static pd_latlng_t cluster_point(const pd_gen_t *g, pd__rng_t *r, const place_t *pl) {
    int64_t lat = 0, lon = 0;
    for (int tries = 0; tries < 8; tries++) {
        double dy = pd__rng_gauss(r) * pl->sigma_m;
        double dx = pd__rng_gauss(r) * pl->sigma_m;
        lat = (int64_t)pl->center.lat + round_e6(dy * g->e6_per_m_lat);
        lon = (int64_t)pl->center.lon + round_e6(dx * g->e6_per_m_lon);
        if (in_box(g, lat, lon)) break;
    }
    pd_latlng_t p;
    p.lat = clamp_i32((int32_t)lat, g->sw.lat, g->ne.lat);
    p.lon = clamp_i32((int32_t)lon, g->sw.lon, g->ne.lon);
    return p;
}

/* Where a person lives. */
typedef enum { LIVES_SCATTERED, LIVES_TOWN, LIVES_VILLAGE } lives_t;

static pd_latlng_t population_point(const pd_gen_t *g, pd__rng_t *r, lives_t *where) {
    double u = pd__rng_uniform(r);
    if (u < g->p_scatter) {
        *where = LIVES_SCATTERED;
        return uniform_point(g, r, 1.0);
    }
    if (u < g->p_scatter + g->p_town || g->cfg.villages == 0) {
        *where = LIVES_TOWN;
        size_t i = pd__rng_pick(r, g->town_cum, g->cfg.towns);
        return cluster_point(g, r, &g->places[i]);
    }
    *where = LIVES_VILLAGE;
    size_t i = pd__rng_pick(r, g->village_cum, g->cfg.villages);
    return cluster_point(g, r, &g->places[g->cfg.towns + i]);
}

/* --------------------------------------------------------------- layout */

static void lay_out_places(pd_gen_t *g, pd__rng_t *r) {
    const double size_m = g->cfg.size_km * 1000.0;
    const uint32_t towns = g->cfg.towns;
    /* Towns keep apart by about half the spacing of a regular grid of
     * `towns` cells; after 64 tries the last candidate is taken. */
    const double town_gap = size_m / (2.0 * sqrt((double)towns));

    pd_latlng_t mid = {(int32_t)((g->sw.lat + (int64_t)g->ne.lat) / 2),
                       (int32_t)((g->sw.lon + (int64_t)g->ne.lon) / 2)};
    for (uint32_t i = 0; i < towns; i++) {
        place_t *t = &g->places[i];
        t->kind = PD_GEN_PLACE_TOWN;
        if (i == 0) {
            /* The county seat: near the centre, the widest and biggest. */
            place_t seat = {mid, size_m * 0.02, 1.0, PD_GEN_PLACE_TOWN};
            t->center = cluster_point(g, r, &seat);
            t->sigma_m = fmin(2500.0, size_m / 8.0);
            t->weight = 1.0;
            continue;
        }
        for (int tries = 0; tries < 64; tries++) {
            t->center = uniform_point(g, r, 0.8);
            bool ok = true;
            for (uint32_t j = 0; j < i && ok; j++)
                ok = dist_m(g, t->center, g->places[j].center) >= town_gap;
            if (ok) break;
        }
        t->sigma_m = fmin(800.0 + 1000.0 * pd__rng_uniform(r), size_m / 10.0);
        t->weight = (0.7 + 0.6 * pd__rng_uniform(r)) / (double)(i + 1);
    }
    for (uint32_t i = 0; i < g->cfg.villages; i++) {
        place_t *v = &g->places[towns + i];
        v->kind = PD_GEN_PLACE_VILLAGE;
        /* Villages keep out of town cores: up to 16 tries. */
        for (int tries = 0; tries < 16; tries++) {
            v->center = uniform_point(g, r, 0.95);
            bool ok = true;
            for (uint32_t j = 0; j < towns && ok; j++)
                ok = dist_m(g, v->center, g->places[j].center) >= 2.0 * g->places[j].sigma_m;
            if (ok) break;
        }
        v->sigma_m = fmin(150.0 + 300.0 * pd__rng_uniform(r), size_m / 20.0);
        v->weight = 0.4 + 1.2 * pd__rng_uniform(r);
    }
    double sum = 0;
    for (uint32_t i = 0; i < towns; i++) g->town_cum[i] = (sum += g->places[i].weight);
    sum = 0;
    for (uint32_t i = 0; i < g->cfg.villages; i++)
        g->village_cum[i] = (sum += g->places[towns + i].weight);
}

static void lay_out_skills(pd_gen_t *g) {
    /* Zipf-Mandelbrot with s = 1, q = 1: rank k weighs 1 / (k + 2). */
    size_t k = 0;
    for (size_t i = 0; i < 12; i++)
        if (popularity_order[i] < g->n_skills) g->skill_bit[k++] = popularity_order[i];
    for (size_t b = 12; b < g->n_skills; b++) g->skill_bit[k++] = (uint8_t)b;
    double sum = 0;
    for (size_t i = 0; i < g->n_skills; i++) g->skill_cum[i] = (sum += 1.0 / (double)(i + 2));
}

/* Local weekday (0 = Monday) and hour of an instant. */
static void local_day_hour(const pd_gen_t *g, int64_t ms, int *weekday, int *hour) {
    int64_t local = ms + (int64_t)g->cfg.utc_offset_min * MINUTE_MS;
    int64_t day = floor_div(local, DAY_MS);
    /* 1970-01-01 was a Thursday, weekday 3. */
    *weekday = (int)(((day + 3) % 7 + 7) % 7);
    *hour = (int)((local - day * DAY_MS) / HOUR_MS);
}

/* Piece i of the order span: its start (ms after cfg.start_ms) and length.
 * The pieces meet at local clock hours, so each lies within one local hour
 * and takes that hour's weight whatever the offset (UTC+5:30) or start
 * (10:20). With the start on a local hour (any whole-hour offset and a
 * start on the hour) they are exactly the span's hours. */
static void piece_span(const pd_gen_t *g, size_t i, int64_t *from, int64_t *len) {
    const int64_t span = (int64_t)g->cfg.days * DAY_MS;
    int64_t a = i == 0 ? 0 : g->hour_lead + (int64_t)(g->hour_lead ? i - 1 : i) * HOUR_MS;
    int64_t b = g->hour_lead + (int64_t)(g->hour_lead ? i : i + 1) * HOUR_MS;
    if (b > span) b = span;
    *from = a;
    *len = b - a;
}

static void lay_out_hours(pd_gen_t *g) {
    double sum = 0;
    for (size_t i = 0; i < g->n_hours; i++) {
        int64_t from, len;
        piece_span(g, i, &from, &len);
        int wd, h;
        local_day_hour(g, g->cfg.start_ms + from, &wd, &h);
        /* A whole hour weighs exactly its table weight (x * 1.0 == x). */
        g->hour_cum[i] =
            (sum += order_hour_weight[h] * order_day_weight[wd] * ((double)len / (double)HOUR_MS));
    }
}

pd_err pd_gen_create(const pd_gen_config_t *cfg, pd_gen_t **out) {
    pd_err err = pd_gen_config_check(cfg);
    if (err) return err;

    pd_gen_t *g = pd_calloc(1, sizeof *g);
    if (!g) return PD_ERR_NOMEM;
    g->cfg = *cfg;
    g->n_places = (size_t)cfg->towns + cfg->villages;
    int64_t local_start = cfg->start_ms + (int64_t)cfg->utc_offset_min * MINUTE_MS;
    g->hour_lead = (HOUR_MS - (local_start - floor_div(local_start, HOUR_MS) * HOUR_MS)) % HOUR_MS;
    g->n_hours = (size_t)cfg->days * 24 + (g->hour_lead ? 1 : 0);
    g->places = pd_calloc(g->n_places, sizeof *g->places);
    g->town_cum = pd_calloc(cfg->towns, sizeof *g->town_cum);
    g->village_cum = pd_calloc(cfg->villages, sizeof *g->village_cum);
    g->hour_cum = pd_calloc(g->n_hours, sizeof *g->hour_cum);
    if (!g->places || !g->town_cum || !g->village_cum || !g->hour_cum) {
        pd_gen_destroy(g);
        return PD_ERR_NOMEM;
    }

    double half_lat, half_lon;
    box_half_deg(cfg, &half_lat, &half_lon);
    g->e6_per_m_lat = 1e6 / M_PER_DEG;
    g->e6_per_m_lon = 1e6 / (M_PER_DEG * pd__cos(cfg->center_lat * (PI / 180.0)));
    g->sw.lat = (int32_t)ceil((cfg->center_lat - half_lat) * 1e6);
    g->sw.lon = (int32_t)ceil((cfg->center_lon - half_lon) * 1e6);
    g->ne.lat = (int32_t)floor((cfg->center_lat + half_lat) * 1e6);
    g->ne.lon = (int32_t)floor((cfg->center_lon + half_lon) * 1e6);

    g->p_scatter = cfg->scatter_share;
    g->p_town = cfg->town_share;
    g->n_skills = pd_gen_config_skill_count(cfg);

    pd__rng_t layout;
    pd__rng_seed(&layout, cfg->seed, STREAM_LAYOUT);
    pd__rng_seed(&g->vol_rng, cfg->seed, STREAM_VOLUNTEERS);
    pd__rng_seed(&g->ord_rng, cfg->seed, STREAM_ORDERS);
    pd__rng_seed(&g->pt_rng, cfg->seed, STREAM_POINTS);
    lay_out_places(g, &layout);
    lay_out_skills(g);
    lay_out_hours(g);
    g->ord_tail = 1.0;
    g->ord_last_ms = cfg->start_ms;

    *out = g;
    return PD_OK;
}

void pd_gen_destroy(pd_gen_t *g) {
    if (!g) return;
    pd_free(g->places);
    pd_free(g->town_cum);
    pd_free(g->village_cum);
    pd_free(g->hour_cum);
    pd_free(g);
}

const pd_gen_config_t *pd_gen_get_config(const pd_gen_t *g) {
    return &g->cfg;
}

void pd_gen_get_box(const pd_gen_t *g, pd_latlng_t *sw, pd_latlng_t *ne) {
    *sw = g->sw;
    *ne = g->ne;
}

size_t pd_gen_place_count(const pd_gen_t *g) {
    return g->n_places;
}

pd_err pd_gen_get_place(const pd_gen_t *g, size_t i, pd_gen_place_t *out) {
    if (i >= g->n_places) return PD_ERR_NOT_FOUND;
    const place_t *p = &g->places[i];
    const uint32_t towns = g->cfg.towns;
    double share;
    if (p->kind == PD_GEN_PLACE_TOWN) {
        double town_share = g->cfg.villages ? g->p_town : 1.0 - g->p_scatter;
        share = town_share * p->weight / g->town_cum[towns - 1];
    } else {
        share = (1.0 - g->p_scatter - g->p_town) * p->weight / g->village_cum[g->cfg.villages - 1];
    }
    out->kind = p->kind;
    out->center = p->center;
    out->sigma_m = p->sigma_m;
    out->share = share;
    return PD_OK;
}

void pd_gen_random_point(pd_gen_t *g, pd_latlng_t *out) {
    lives_t where;
    *out = population_point(g, &g->pt_rng, &where);
}

/* ----------------------------------------------------------- volunteers */

/* `count` distinct skills drawn by popularity (fewer if the county has
 * fewer skills). */
static uint64_t draw_skills(const pd_gen_t *g, pd__rng_t *r, size_t count) {
    if (count > g->n_skills) count = g->n_skills;
    uint64_t mask = 0;
    size_t have = 0;
    while (have < count) {
        uint64_t bit = 1ULL << g->skill_bit[pd__rng_pick(r, g->skill_cum, g->n_skills)];
        if (!(mask & bit)) {
            mask |= bit;
            have++;
        }
    }
    return mask;
}

typedef enum { PERSONA_WORKER, PERSONA_YOUTH, PERSONA_RETIRED, PERSONA_STAFF } persona_t;

static void add_range(pd_week_t *w, int day, int start, int end) {
    /* Every call below passes a valid day and 0 <= start < end <= 24. */
    pd_err err = pd_week_add_range(w, day, start, end);
    if (PD_NEVER(err != PD_OK)) return;
}

/* Adds hours `start + below(start_n)` to `end + below(end_n)` of `day`.
 * The end is drawn FIRST: C leaves the order in which a call's arguments
 * are evaluated unspecified, and these draws were once made as arguments
 * of one add_range() call, which gcc evaluates right to left. Drawing
 * into locals, in that order, keeps every county gcc ever wrote (and the
 * committed sample) while making the bytes the same under any compiler.
 * Never draw twice among the arguments of one call. */
static void draw_range(pd_week_t *w, pd__rng_t *r, int day, int start, uint64_t start_n, int end,
                       uint64_t end_n) {
    int e = end + (int)pd__rng_below(r, end_n);
    int s = start + (int)pd__rng_below(r, start_n);
    add_range(w, day, s, e);
}

/* A weekly schedule from the persona's template, plus noise: hours shift
 * by up to two, days drop out, one odd extra range now and then. */
static pd_week_t draw_week(pd__rng_t *r, persona_t persona) {
    pd_week_t w = pd_week_none();
    switch (persona) {
        case PERSONA_STAFF:
            return pd_week_all();
        case PERSONA_WORKER:
            /* Weekday evenings 18-22, weekend daytime. */
            for (int d = 0; d < 5; d++)
                if (pd__rng_chance(r, 0.6)) draw_range(&w, r, d, 18, 2, 21, 2);
            for (int d = 5; d < 7; d++)
                if (pd__rng_chance(r, d == 5 ? 0.6 : 0.5)) draw_range(&w, r, d, 8, 3, 12, 6);
            break;
        case PERSONA_YOUTH:
            /* Weekends most of the day, some evenings. */
            for (int d = 5; d < 7; d++)
                if (pd__rng_chance(r, 0.75)) draw_range(&w, r, d, 8, 3, 16, 4);
            for (int d = 0; d < 5; d++)
                if (pd__rng_chance(r, 0.35)) add_range(&w, d, 19, 21 + (int)pd__rng_below(r, 2));
            break;
        case PERSONA_RETIRED:
            /* Weekday mornings and afternoons, a few evenings. */
            for (int d = 0; d < 7; d++) {
                double p = d < 5 ? 0.7 : 0.4;
                if (pd__rng_chance(r, p)) draw_range(&w, r, d, 7, 2, 10, 3);
                if (pd__rng_chance(r, p * 0.7)) draw_range(&w, r, d, 14, 2, 16, 3);
                if (pd__rng_chance(r, 0.15)) add_range(&w, d, 19, 21);
            }
            break;
    }
    if (pd__rng_chance(r, 0.1)) {
        int d = (int)pd__rng_below(r, 7), s = 6 + (int)pd__rng_below(r, 16);
        int e = s + 1 + (int)pd__rng_below(r, 4);
        add_range(&w, d, s, e > 24 ? 24 : e);
    }
    if (pd_week_is_empty(&w)) add_range(&w, 5, 9, 12); /* at least Saturday morning */
    return w;
}

bool pd_gen_next_volunteer(pd_gen_t *g, pd_volunteer_t *out) {
    if (g->vol_made >= g->cfg.volunteers) return false;
    pd__rng_t *r = &g->vol_rng;
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = ++g->vol_made;

    lives_t where;
    v.pos = population_point(g, r, &where);

    double u = pd__rng_uniform(r);
    persona_t persona = u < 0.47   ? PERSONA_WORKER
                        : u < 0.75 ? PERSONA_YOUTH
                        : u < 0.97 ? PERSONA_RETIRED
                                   : PERSONA_STAFF;
    if (persona == PERSONA_YOUTH) v.tags |= PD_GEN_TAG_YOUTH;
    if (persona == PERSONA_RETIRED) v.tags |= PD_GEN_TAG_RETIRED;
    if (pd__rng_chance(r, persona == PERSONA_RETIRED ? 0.45 : 0.28))
        v.tags |= PD_GEN_TAG_PARTY_MEMBER;
    double p_dialect = where == LIVES_TOWN ? 0.25 : 0.6;
    if (persona == PERSONA_RETIRED) p_dialect += 0.2;
    if (pd__rng_chance(r, p_dialect)) v.tags |= PD_GEN_TAG_DIALECT;
    if (pd__rng_chance(r, 0.06)) v.tags |= PD_GEN_TAG_FIRST_AID;

    v.week = draw_week(r, persona);

    u = pd__rng_uniform(r);
    v.skills = draw_skills(g, r, u < 0.55 ? 1 : u < 0.85 ? 2 : 3);
    v.mode = (uint8_t)pd__rng_pick(r, mode_cum, PD_MODE__COUNT);
    u = pd__rng_uniform(r);
    v.capacity = u < 0.85 ? 1 : u < 0.97 ? 2 : 3;
    u = pd__rng_uniform(r);
    v.status = u < 0.85 ? PD_STATUS_ONLINE : u < 0.90 ? PD_STATUS_BUSY : PD_STATUS_OFFLINE;
    v.load = 0;
    *out = v;
    return true;
}

/* --------------------------------------------------------------- orders */

/* Creation time of the next order. The M creation times are the order
 * statistics of M independent draws from the hourly intensity; the next
 * of the remaining n uniforms above u is u' = 1 - (1 - u) V^(1/n) with V
 * uniform in (0, 1], which maps through the inverse of the cumulative
 * intensity (piecewise linear, walked by a cursor that only moves on). */
static int64_t next_created_ms(pd_gen_t *g, pd__rng_t *r) {
    uint64_t n = g->cfg.orders - g->ord_made;
    double v = 1.0 - pd__rng_uniform(r);
    g->ord_tail *= pd__exp(pd__log(v) / (double)n);
    double total = g->hour_cum[g->n_hours - 1];
    double target = (1.0 - g->ord_tail) * total;
    while (g->ord_hour + 1 < g->n_hours && g->hour_cum[g->ord_hour] <= target) g->ord_hour++;
    double base = g->ord_hour ? g->hour_cum[g->ord_hour - 1] : 0.0;
    double frac = (target - base) / (g->hour_cum[g->ord_hour] - base);
    if (frac < 0.0) frac = 0.0;
    if (frac > 1.0) frac = 1.0;
    int64_t from, len;
    piece_span(g, g->ord_hour, &from, &len);
    int64_t ms = g->cfg.start_ms + from + (int64_t)(frac * (double)len);
    int64_t end = g->cfg.start_ms + (int64_t)g->cfg.days * DAY_MS;
    if (ms >= end) ms = end - 1;
    if (ms < g->ord_last_ms) ms = g->ord_last_ms;
    g->ord_last_ms = ms;
    return ms;
}

/* When the service starts: soon for an emergency; otherwise as soon as a
 * volunteer can get there, later the same or next day, or days ahead at a
 * usual service hour. */
static int64_t draw_start_ms(const pd_gen_t *g, pd__rng_t *r, int64_t created, uint8_t prio) {
    if (prio == PD_GEN_PRIORITY_EMERGENCY)
        return created + (5 + (int64_t)pd__rng_below(r, 11)) * MINUTE_MS;
    double u = pd__rng_uniform(r);
    if (u < 0.35) {
        int64_t t = created + (30 + (int64_t)pd__rng_below(r, 91)) * MINUTE_MS;
        return floor_div(t + 15 * MINUTE_MS - 1, 15 * MINUTE_MS) * 15 * MINUTE_MS;
    }
    int64_t days_ahead = u < 0.75 ? (int64_t)pd__rng_below(r, 2) : 2 + (int64_t)pd__rng_below(r, 3);
    int64_t hour = 8 + (int64_t)pd__rng_pick(r, service_hour_cum, 13);
    int64_t half = (int64_t)pd__rng_below(r, 2);
    int64_t off = (int64_t)g->cfg.utc_offset_min * MINUTE_MS;
    int64_t midnight = floor_div(created + off, DAY_MS) * DAY_MS - off;
    int64_t t = midnight + days_ahead * DAY_MS + hour * HOUR_MS + half * 30 * MINUTE_MS;
    while (t < created + HOUR_MS) t += DAY_MS;
    return t;
}

bool pd_gen_next_order(pd_gen_t *g, pd_gen_order_t *out) {
    if (g->ord_made >= g->cfg.orders) return false;
    pd__rng_t *r = &g->ord_rng;
    pd_gen_order_t o;
    memset(&o, 0, sizeof o);
    o.created_ms = next_created_ms(g, r);
    o.id = ++g->ord_made;

    lives_t where;
    o.pos = population_point(g, r, &where);

    double u = pd__rng_uniform(r);
    o.priority = u < 0.01   ? PD_GEN_PRIORITY_EMERGENCY
                 : u < 0.16 ? PD_GEN_PRIORITY_ELEVATED
                            : PD_GEN_PRIORITY_NORMAL;
    o.skills = draw_skills(g, r, pd__rng_chance(r, 0.15) ? 2 : 1);
    if (o.priority == PD_GEN_PRIORITY_EMERGENCY)
        o.need = 3 + (uint32_t)pd__rng_below(r, 3);
    else if (pd__rng_chance(r, 0.88))
        o.need = 1;
    else
        o.need = 2 + (uint32_t)pd__rng_pick(r, team_cum, 4);
    o.start_ms = draw_start_ms(g, r, o.created_ms, o.priority);
    o.duration_min = durations[pd__rng_pick(r, duration_cum, 6)];
    if (o.priority == PD_GEN_PRIORITY_EMERGENCY)
        o.budget_min = 30;
    else if (o.priority == PD_GEN_PRIORITY_ELEVATED)
        o.budget_min = 15;
    else
        o.budget_min = pd__rng_chance(r, 0.1) ? 30 : 15;
    *out = o;
    return true;
}
