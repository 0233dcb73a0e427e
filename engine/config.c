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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* A skill name: 1..31 bytes, no ',' or '|' (the separators of lists of
 * names here and in the CSV files, whose reader refuses a table with
 * them), no blank or control character. */
static bool skill_name_ok(const char *s, size_t len) {
    if (len == 0 || len >= PD_SKILL_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ',' || c == '|' || c <= ' ' || c == 0x7f) return false;
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

/* A decimal number: strtod's hexadecimal forms ("0x10", "0x1p4") are not
 * what anyone writing a config means. */
static bool parse_double(const char *v, double lo, double hi, double *out) {
    if (strpbrk(v, "xX")) return false;
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

/* What the reader knows of the key it failed on, for the message. */
typedef struct load_s {
    pd_engine_config_t *cfg;
    const pd_ini_section_t *extra; /* a section the caller reads; NULL: none */
    const char *expect;            /* the key's accepted values; NULL: unknown key */
    /* the input, read a line at a time by read_line() so the handler
     * knows which line it is on */
    FILE *f;
    const char *text;
    int line, next_line;
    /* the first key refused: its line (0: none) and what it was */
    int bad_line;
    const char *bad_expect;
    int odd_line; /* the first line too long or with a NUL byte; 0: none */
    bool odd_nul; /* which of the two */
    int max_line; /* the longest line libinih takes, bytes with a '\r' */
    char sec[32], key[48], val[48];
} load_t;

/* libinih handler: nonzero on success. */
static int on_key_cfg(load_t *ld, const char *sec, const char *key, const char *v) {
    pd_engine_config_t *cfg = ld->cfg;
    double d;
    long l;
    /* the caller's section is the caller's to judge */
    if (ld->extra && strcmp(sec, ld->extra->name) == 0) {
        return ld->extra->fn(ld->extra->ud, key, v, &ld->expect) == 1;
    }
    /* A key that matches records what it accepts, for the error. */
#define KEY(s, k, what) (strcmp(sec, s) == 0 && strcmp(key, k) == 0 && (ld->expect = what, 1))
#define IS(s, k) KEY(s, k, "see docs/paidan.ini.example")
    if (KEY("speeds", "walk_kmh", "km/h, 0.1..1000")) return set_speed(cfg, PD_MODE_WALK, v);
    if (KEY("speeds", "bike_kmh", "km/h, 0.1..1000")) return set_speed(cfg, PD_MODE_BIKE, v);
    if (KEY("speeds", "ebike_kmh", "km/h, 0.1..1000")) return set_speed(cfg, PD_MODE_EBIKE, v);
    if (KEY("speeds", "car_kmh", "km/h, 0.1..1000")) return set_speed(cfg, PD_MODE_CAR, v);
    if (KEY("index", "cell_deg", "degrees, 0.0005..1")) {
        if (!parse_double(v, 0.0005, 1.0, &d)) return 0; /* the index's own range */
        cfg->index.cell_e6 = (int32_t)lround(d * 1e6);
        return 1;
    }
    if (KEY("dispatch", "detour", "a factor, 1..10"))
        return parse_double(v, 1.0, 10.0, &cfg->index.detour);
    if (KEY("dispatch", "budget_min", "minutes, 1/60..1440")) {
        if (!parse_double(v, 1.0 / 60.0, 1440.0, &d)) return 0;
        cfg->budget_s = (int32_t)lround(d * 60.0);
        return cfg->budget_s >= 1;
    }
    if (KEY("dispatch", "offer_timeout_s", "whole seconds, 1..86400")) {
        if (!parse_long(v, 1, 86400, &l)) return 0;
        cfg->offer_timeout_s = (int32_t)l;
        return 1;
    }
    if (KEY("dispatch", "grab_width", "an integer, 1..32")) {
        if (!parse_long(v, 1, PD_MAX_GRAB_WIDTH, &l)) return 0;
        cfg->grab_width = (uint32_t)l;
        return 1;
    }
    if (KEY("dispatch", "policy", "nearest, balanced or rated"))
        return pd_policy_from_name(v, &cfg->policy) == PD_OK;
    if (KEY("policy", "balanced_weight_s_per_hour", "seconds, 0..86400")) {
        return parse_double(v, 0, 86400, &cfg->balanced_weight_s_per_hour);
    }
    if (KEY("policy", "balanced_cap_hours", "hours, 0..168")) {
        return parse_double(v, 0, 168, &cfg->balanced_cap_hours);
    }
    if (KEY("policy", "rated_weight_s", "seconds, 0..86400"))
        return parse_double(v, 0, 86400, &cfg->rated_weight_s);
    if (KEY("policy", "rated_neutral", "a rating, 1..5"))
        return parse_double(v, 1, 5, &cfg->rated_neutral);
    if (KEY("records", "star_hours", "five increasing whole hours, e.g. 10,50,100,300,600"))
        return parse_star_hours(v, cfg->star_hours);
    if (KEY("records", "points_per_hour", "0..1e6"))
        return parse_double(v, 0, 1e6, &cfg->points_per_hour);
    if (KEY("records", "points_per_rating_star", "0..1e6")) {
        return parse_double(v, 0, 1e6, &cfg->points_per_rating_star);
    }
    if (KEY("time", "utc_offset", "+HH:MM, -HH:MM or UTC, within 14 hours"))
        return parse_offset(v, &cfg->utc_offset_min);
    if (KEY("batch", "k", "an integer, 1..64")) {
        if (!parse_long(v, 1, PD_MAX_BATCH_K, &l)) return 0;
        cfg->batch_k = (uint32_t)l;
        return 1;
    }
    static const char *const bonus_keys[PD_PRIORITY__COUNT] = {"normal_bonus_s", "elevated_bonus_s",
                                                               "emergency_bonus_s"};
    for (int p = 0; p < PD_PRIORITY__COUNT; p++) {
        if (KEY("batch", bonus_keys[p], "whole seconds, 0..86400")) {
            if (!parse_long(v, 0, 86400, &l)) return 0;
            cfg->batch_bonus_s[p] = (int32_t)l;
            return 1;
        }
    }
    if (KEY("skills", "names",
            "distinct names of 1..31 bytes without blanks, ',' or '|', 64 at most")) {
        cfg->n_skills = 0;
        memset(cfg->skills, 0, sizeof cfg->skills);
        return *v != '\0' && add_skills(cfg, v);
    }
    if (KEY("skills", "add",
            "distinct names of 1..31 bytes without blanks, ',' or '|', 64 at most"))
        return *v != '\0' && add_skills(cfg, v);
#undef IS
#undef KEY
    return 0; /* unknown section or key */
}

static int on_key(void *user, const char *sec, const char *key, const char *v) {
    load_t *ld = user;
    ld->expect = NULL;
    int ok = on_key_cfg(ld, sec, key, v);
    if (!ok && !ld->bad_line) {
        ld->bad_line = ld->line;
        ld->bad_expect = ld->expect;
        snprintf(ld->sec, sizeof ld->sec, "%s", sec);
        snprintf(ld->key, sizeof ld->key, "%s", key);
        snprintf(ld->val, sizeof ld->val, "%s", v);
    }
    return ok;
}

/* The next byte of the input; EOF at its end. */
static int next_byte(load_t *ld) {
    if (ld->f) return getc(ld->f);
    return *ld->text ? (unsigned char)*ld->text++ : EOF;
}

/* libinih's reader, fgets-like, over the file or the string: one whole
 * line per call, so libinih's line numbers are the file's. A line that
 * does not fit the buffer is not handed over in pieces (its tail would be
 * read as a line of its own: a key, or a continuation of the last one),
 * nor is one with a NUL byte (libinih would see only its head): either is
 * replaced by "[", which libinih refuses, at its line; a long comment is
 * just a comment. Leading blanks are dropped, so an indented line is an
 * ordinary line, never libinih's continuation of the key before it. */
static char *read_line(char *buf, int num, void *stream) {
    load_t *ld = stream;
    if (num < 2) return NULL;
    size_t cap = (size_t)num - 1, n = 0;
    bool any = false, nul = false;
    int c;
    while ((c = next_byte(ld)) != EOF) {
        any = true;
        if (c == '\n') break;
        if (c == '\0') nul = true;
        if (n < cap) buf[n] = (char)c;
        n++;
    }
    if (!any) return NULL;
    ld->line = ld->next_line++;
    ld->max_line = (int)cap;
    buf[n < cap ? n : cap] = '\0';
    const char *t = buf;
    if (ld->line == 1 && strncmp(t, "\xEF\xBB\xBF", 3) == 0) t += 3; /* a BOM */
    t += strspn(t, " \t");
    if (!nul && n > cap && (*t == ';' || *t == '#')) return buf; /* its head will do */
    if (nul || n > cap) {
        if (!ld->odd_line) {
            ld->odd_line = ld->line;
            ld->odd_nul = nul;
        }
        snprintf(buf, (size_t)num, "[");
        return buf;
    }
    if (t != buf) memmove(buf, t, strlen(t) + 1); /* without the BOM and the blanks */
    return buf;
}

/* rc is ini_parse's: 0, the first bad line, -1 (cannot open), -2 (memory). */
static pd_err finish(int rc, const load_t *ld, int *errline, char *why, size_t cap) {
    if (errline) *errline = rc > 0 ? rc : 0;
    pd_err err = PD_OK;
    if (rc == -2) {
        err = PD_ERR_NOMEM;
        if (why) snprintf(why, cap, "out of memory");
    } else if (rc > 0) {
        err = PD_ERR_BAD_ARG;
        if (!why) return err;
        if (rc == ld->odd_line && ld->odd_nul)
            snprintf(why, cap, "a NUL byte in the line");
        else if (rc == ld->odd_line)
            snprintf(why, cap,
                     "line over %d bytes (libinih's limit; a long [skills] list can be "
                     "split over several add= lines)",
                     ld->max_line);
        else if (ld->bad_line != rc)
            snprintf(why, cap, "not a [section] or key = value line");
        else if (!ld->bad_expect)
            snprintf(why, cap, "unknown key '%s' in [%s] (docs/paidan.ini.example lists them)",
                     ld->key, ld->sec);
        else
            snprintf(why, cap, "bad value '%s' for %s in [%s]: %s", ld->val, ld->key, ld->sec,
                     ld->bad_expect);
    } else {
        err = pd_engine_config_check(ld->cfg);
        if (err && why) snprintf(why, cap, "the values do not fit together (%s)", pd_strerror(err));
    }
    return err;
}

pd_err pd_engine_config_load_ini_why(const char *path, pd_engine_config_t *cfg, int *errline,
                                     char *why, size_t cap) {
    return pd_engine_config_load_ini_with(path, cfg, NULL, errline, why, cap);
}

pd_err pd_engine_config_load_ini_with(const char *path, pd_engine_config_t *cfg,
                                      const pd_ini_section_t *extra, int *errline, char *why,
                                      size_t cap) {
    if (errline) *errline = 0;
    if (why && cap) why[0] = '\0';
    if (!why || !cap) why = NULL;
    if (!path || !cfg || (extra && (!extra->name || !extra->fn))) return PD_ERR_BAD_ARG;
    pd_engine_config_init(cfg);
    /* A directory opens and reads as an empty file: refuse it, and
     * anything else that is not a file, rather than run on the defaults. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (why) snprintf(why, cap, "not a regular file");
        return PD_ERR_BAD_ARG;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        if (why) snprintf(why, cap, "cannot read it: %s", strerror(errno));
        return PD_ERR_IO;
    }
    load_t ld = {.cfg = cfg, .extra = extra, .f = f, .next_line = 1};
    int rc = ini_parse_stream(read_line, &ld, on_key, &ld);
    fclose(f);
    return finish(rc, &ld, errline, why, cap);
}

pd_err pd_engine_config_load_ini(const char *path, pd_engine_config_t *cfg, int *errline) {
    return pd_engine_config_load_ini_why(path, cfg, errline, NULL, 0);
}

pd_err pd_engine_config_load_ini_string_why(const char *text, pd_engine_config_t *cfg, int *errline,
                                            char *why, size_t cap) {
    if (errline) *errline = 0;
    if (why && cap) why[0] = '\0';
    if (!why || !cap) why = NULL;
    if (!text || !cfg) return PD_ERR_BAD_ARG;
    pd_engine_config_init(cfg);
    load_t ld = {.cfg = cfg, .text = text, .next_line = 1};
    return finish(ini_parse_stream(read_line, &ld, on_key, &ld), &ld, errline, why, cap);
}

pd_err pd_engine_config_load_ini_string(const char *text, pd_engine_config_t *cfg, int *errline) {
    return pd_engine_config_load_ini_string_why(text, cfg, errline, NULL, 0);
}
