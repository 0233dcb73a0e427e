/* config.c -- the engine's configuration: defaults, checks, and paidan.ini.
 *
 * The INI reader is libinih. Each key is parsed and range-checked as it is
 * read, so a bad value is reported at its own line; the whole result is
 * then checked once more (cross-field rules such as increasing star
 * thresholds), which reports line 0. Keys apply in file order: in [skills],
 * `names` replaces the list and `add` extends it.
 * docs/paidan.ini.example lists every key with its default.
 */
#include "paidan/engine.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const default_skills[] = {
    "theory-policy", "culture-arts",  "tutoring",   "medical-fitness",
    "science-pop",   "legal-aid",     "sanitation", "poverty-relief",
    "red-heritage",  "family-values", "civility",   "elder-care",
};

void pd_engine_config_init(pd_engine_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    pd_index_config_init(&cfg->index);
    cfg->budget_s = 15 * 60;
    cfg->offer_timeout_s = 120;
    cfg->grab_width = 3;
    cfg->policy = PD_POLICY_BALANCED;
    cfg->balanced_weight_s_per_hour = 60.0;
    cfg->balanced_cap_hours = 20.0;
    cfg->rated_weight_s = 120.0;
    cfg->rated_neutral = 4.0;
    static const uint32_t stars[PD_STAR_LEVELS] = {10, 50, 100, 300, 600};
    memcpy(cfg->star_hours, stars, sizeof stars);
    cfg->points_per_hour = 10.0;
    cfg->points_per_rating_star = 1.0;
    cfg->utc_offset_min = 8 * 60;
    cfg->batch_k = 8;
    cfg->batch_bonus_s[PD_PRIORITY_NORMAL] = 0;
    cfg->batch_bonus_s[PD_PRIORITY_ELEVATED] = 900;
    cfg->batch_bonus_s[PD_PRIORITY_EMERGENCY] = 3600;
    cfg->n_skills = sizeof default_skills / sizeof default_skills[0];
    for (uint32_t i = 0; i < cfg->n_skills; i++) {
        strcpy(cfg->skills[i], default_skills[i]);
    }
}

/* A skill name: 1..31 bytes, no comma, no blank or control character. */
static bool skill_name_ok(const char *s, size_t len) {
    if (len == 0 || len >= PD_SKILL_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ',' || c <= ' ' || c == 0x7f) return false;
    }
    return true;
}

static bool weight_ok(double w, double max) {
    return isfinite(w) && w >= 0 && w <= max;
}

pd_err pd_engine_config_check(const pd_engine_config_t *cfg) {
    if (!cfg) return PD_ERR_BAD_ARG;
    pd_err err = pd_index_config_check(&cfg->index);
    if (err) return err;
    if (cfg->budget_s < 1 || cfg->budget_s > 86400) return PD_ERR_BAD_ARG;
    if (cfg->offer_timeout_s < 1 || cfg->offer_timeout_s > 86400) return PD_ERR_BAD_ARG;
    if (cfg->grab_width < 1 || cfg->grab_width > PD_MAX_GRAB_WIDTH) return PD_ERR_BAD_ARG;
    if ((unsigned)cfg->policy >= PD_POLICY__COUNT) return PD_ERR_BAD_ARG;
    if (!weight_ok(cfg->balanced_weight_s_per_hour, 86400)) return PD_ERR_BAD_ARG;
    if (!weight_ok(cfg->balanced_cap_hours, 168)) return PD_ERR_BAD_ARG;
    if (!weight_ok(cfg->rated_weight_s, 86400)) return PD_ERR_BAD_ARG;
    if (!(cfg->rated_neutral >= 1.0 && cfg->rated_neutral <= 5.0)) return PD_ERR_BAD_ARG;
    for (uint32_t i = 0; i < PD_STAR_LEVELS; i++) {
        if (cfg->star_hours[i] == 0 || cfg->star_hours[i] > 10000000) return PD_ERR_BAD_ARG;
        if (i && cfg->star_hours[i] <= cfg->star_hours[i - 1]) return PD_ERR_BAD_ARG;
    }
    if (!weight_ok(cfg->points_per_hour, 1e6)) return PD_ERR_BAD_ARG;
    if (!weight_ok(cfg->points_per_rating_star, 1e6)) return PD_ERR_BAD_ARG;
    if (cfg->utc_offset_min < -14 * 60 || cfg->utc_offset_min > 14 * 60) return PD_ERR_BAD_ARG;
    if (cfg->batch_k < 1 || cfg->batch_k > PD_MAX_BATCH_K) return PD_ERR_BAD_ARG;
    for (int p = 0; p < PD_PRIORITY__COUNT; p++) {
        if (cfg->batch_bonus_s[p] < 0 || cfg->batch_bonus_s[p] > 86400) return PD_ERR_BAD_ARG;
    }
    if (cfg->n_skills > PD_MAX_SKILLS) return PD_ERR_BAD_ARG;
    for (uint32_t i = 0; i < cfg->n_skills; i++) {
        const char *s = cfg->skills[i];
        size_t len = strnlen(s, PD_SKILL_NAME_MAX);
        if (!skill_name_ok(s, len)) return PD_ERR_BAD_ARG;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(cfg->skills[j], s) == 0) return PD_ERR_BAD_ARG;
        }
    }
    return PD_OK;
}

/* ------------------------------------------------------------ value parsing */

static bool parse_double(const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno || !isfinite(d) || d < lo || d > hi) return false;
    *out = d;
    return true;
}

static bool parse_long(const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0' || errno || x < lo || x > hi) return false;
    *out = x;
    return true;
}

/* "+08:00", "-05:30", "+8", "0", "UTC" -> minutes. */
static bool parse_offset(const char *v, int32_t *out) {
    if (strcmp(v, "UTC") == 0 || strcmp(v, "Z") == 0) {
        *out = 0;
        return true;
    }
    int sign = 1;
    const char *p = v;
    if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)p[0])) return false;
    int h = 0, m = 0, nd = 0;
    while (isdigit((unsigned char)*p) && nd < 2) h = h * 10 + (*p++ - '0'), nd++;
    if (*p == ':') {
        p++;
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1])) return false;
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
    }
    if (*p != '\0' || h > 14 || m > 59 || h * 60 + m > 14 * 60) return false;
    *out = sign * (h * 60 + m);
    return true;
}

/* Append the comma-separated names in v to cfg's skills. */
static bool add_skills(pd_engine_config_t *cfg, const char *v) {
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *s = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t len = (size_t)(e - s);
        if (!skill_name_ok(s, len) || cfg->n_skills >= PD_MAX_SKILLS) return false;
        for (uint32_t j = 0; j < cfg->n_skills; j++) {
            if (strlen(cfg->skills[j]) == len && memcmp(cfg->skills[j], s, len) == 0) {
                return false;
            }
        }
        memcpy(cfg->skills[cfg->n_skills], s, len);
        cfg->skills[cfg->n_skills][len] = '\0';
        cfg->n_skills++;
        if (*p == ',') {
            p++;
            if (*p == '\0') return false; /* trailing comma: an empty name */
        }
    }
    return true;
}

static bool parse_star_hours(const char *v, uint32_t out[PD_STAR_LEVELS]) {
    const char *p = v;
    for (int i = 0; i < PD_STAR_LEVELS; i++) {
        char *end;
        while (*p == ' ') p++;
        if (!isdigit((unsigned char)*p)) return false;
        errno = 0;
        unsigned long x = strtoul(p, &end, 10);
        if (errno || x == 0 || x > 10000000) return false;
        out[i] = (uint32_t)x;
        p = end;
        while (*p == ' ') p++;
        if (i < PD_STAR_LEVELS - 1) {
            if (*p++ != ',') return false;
        }
    }
    if (*p != '\0') return false;
    for (int i = 1; i < PD_STAR_LEVELS; i++) {
        if (out[i] <= out[i - 1]) return false;
    }
    return true;
}

/* ------------------------------------------------------------------ the keys */

static bool set_speed(pd_engine_config_t *cfg, pd_mode m, const char *v) {
    return parse_double(v, 0.1, 1000.0, &cfg->index.speed_kmh[m]);
}

/* libinih handler: nonzero on success. */
static int on_key(void *user, const char *sec, const char *key, const char *v) {
    pd_engine_config_t *cfg = user;
    double d;
    long l;
#define IS(s, k) (strcmp(sec, s) == 0 && strcmp(key, k) == 0)
    if (IS("speeds", "walk_kmh")) return set_speed(cfg, PD_MODE_WALK, v);
    if (IS("speeds", "bike_kmh")) return set_speed(cfg, PD_MODE_BIKE, v);
    if (IS("speeds", "ebike_kmh")) return set_speed(cfg, PD_MODE_EBIKE, v);
    if (IS("speeds", "car_kmh")) return set_speed(cfg, PD_MODE_CAR, v);
    if (IS("index", "cell_deg")) {
        if (!parse_double(v, 0.0001, 1.0, &d)) return 0;
        cfg->index.cell_e6 = (int32_t)lround(d * 1e6);
        return 1;
    }
    if (IS("dispatch", "detour")) return parse_double(v, 1.0, 10.0, &cfg->index.detour);
    if (IS("dispatch", "budget_min")) {
        if (!parse_double(v, 1.0 / 60.0, 1440.0, &d)) return 0;
        cfg->budget_s = (int32_t)lround(d * 60.0);
        return cfg->budget_s >= 1;
    }
    if (IS("dispatch", "offer_timeout_s")) {
        if (!parse_long(v, 1, 86400, &l)) return 0;
        cfg->offer_timeout_s = (int32_t)l;
        return 1;
    }
    if (IS("dispatch", "grab_width")) {
        if (!parse_long(v, 1, PD_MAX_GRAB_WIDTH, &l)) return 0;
        cfg->grab_width = (uint32_t)l;
        return 1;
    }
    if (IS("dispatch", "policy")) return pd_policy_from_name(v, &cfg->policy) == PD_OK;
    if (IS("policy", "balanced_weight_s_per_hour")) {
        return parse_double(v, 0, 86400, &cfg->balanced_weight_s_per_hour);
    }
    if (IS("policy", "balanced_cap_hours")) {
        return parse_double(v, 0, 168, &cfg->balanced_cap_hours);
    }
    if (IS("policy", "rated_weight_s")) return parse_double(v, 0, 86400, &cfg->rated_weight_s);
    if (IS("policy", "rated_neutral")) return parse_double(v, 1, 5, &cfg->rated_neutral);
    if (IS("records", "star_hours")) return parse_star_hours(v, cfg->star_hours);
    if (IS("records", "points_per_hour")) return parse_double(v, 0, 1e6, &cfg->points_per_hour);
    if (IS("records", "points_per_rating_star")) {
        return parse_double(v, 0, 1e6, &cfg->points_per_rating_star);
    }
    if (IS("time", "utc_offset")) return parse_offset(v, &cfg->utc_offset_min);
    if (IS("batch", "k")) {
        if (!parse_long(v, 1, PD_MAX_BATCH_K, &l)) return 0;
        cfg->batch_k = (uint32_t)l;
        return 1;
    }
    static const char *const bonus_keys[PD_PRIORITY__COUNT] = {"normal_bonus_s", "elevated_bonus_s",
                                                               "emergency_bonus_s"};
    for (int p = 0; p < PD_PRIORITY__COUNT; p++) {
        if (IS("batch", bonus_keys[p])) {
            if (!parse_long(v, 0, 86400, &l)) return 0;
            cfg->batch_bonus_s[p] = (int32_t)l;
            return 1;
        }
    }
    if (IS("skills", "names")) {
        cfg->n_skills = 0;
        memset(cfg->skills, 0, sizeof cfg->skills);
        return *v != '\0' && add_skills(cfg, v);
    }
    if (IS("skills", "add")) return *v != '\0' && add_skills(cfg, v);
#undef IS
    return 0; /* unknown section or key */
}

static pd_err finish(int rc, pd_engine_config_t *cfg, int *errline) {
    if (errline) *errline = rc > 0 ? rc : 0;
    if (rc == -1) return PD_ERR_IO;
    if (rc == -2) return PD_ERR_NOMEM;
    if (rc != 0) return PD_ERR_BAD_ARG;
    return pd_engine_config_check(cfg);
}

pd_err pd_engine_config_load_ini(const char *path, pd_engine_config_t *cfg, int *errline) {
    if (errline) *errline = 0;
    if (!path || !cfg) return PD_ERR_BAD_ARG;
    pd_engine_config_init(cfg);
    return finish(ini_parse(path, on_key, cfg), cfg, errline);
}

pd_err pd_engine_config_load_ini_string(const char *text, pd_engine_config_t *cfg, int *errline) {
    if (errline) *errline = 0;
    if (!text || !cfg) return PD_ERR_BAD_ARG;
    pd_engine_config_init(cfg);
    return finish(ini_parse_string(text, on_key, cfg), cfg, errline);
}
