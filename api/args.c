/* args.c -- argument helpers for handlers (see args.h).
 *
 * Params maps are small (a handful of keys), so lookups scan the map; a
 * key is compared by length first, which rejects most candidates in one
 * instruction. Nothing here allocates.
 */
#include "args.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "paidan/utf8.h"

static bool key_is(const msgpack_object *k, const char *key, size_t kl) {
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
           memcmp(k->via.str.ptr, key, kl) == 0;
}

const char *pd_arg_echo(char *out, size_t cap, const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t l = pd_utf8_len(s + i, n - i);
        bool ok = l > 0 && !(l == 1 && (s[i] < 0x20 || s[i] == 0x7f));
        size_t w = ok ? l : 1;
        if (o + w >= cap) break;
        if (ok)
            memcpy(out + o, s + i, l);
        else
            out[o] = '?';
        o += w;
        i += ok ? l : 1;
    }
    out[o] = '\0';
    return out;
}

pd_err pd_args_check_or_reply(pd_conn_t *c, const msgpack_object *params,
                              const char *const *allowed) {
    return pd_args_check_in_or_reply(c, params, allowed, NULL);
}

pd_err pd_args_check_in_or_reply(pd_conn_t *c, const msgpack_object *params,
                                 const char *const *allowed, const char *within) {
    /* " in 'slots'": where a nested map's bad key is, so the message does
     * not send the client looking for it among the top-level params */
    char in[48] = "";
    if (within) snprintf(in, sizeof in, " in '%s'", within);
    const msgpack_object_kv *kv = params->via.map.ptr;
    uint32_t n = params->via.map.size;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &kv[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "argument names must be strings%s", in);
            return PD_ERR_BAD_ARG;
        }
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++) known = key_is(k, *a, strlen(*a));
        char echo[64];
        if (!known) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "unknown argument '%s'%s",
                           pd_arg_echo(echo, sizeof(echo), k->via.str.ptr, k->via.str.size), in);
            return PD_ERR_BAD_ARG;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (key_is(&kv[j].key, k->via.str.ptr, k->via.str.size)) {
                pd_reply_error(c, PD_ERR_BAD_ARG, "argument '%s' given twice%s",
                               pd_arg_echo(echo, sizeof(echo), k->via.str.ptr, k->via.str.size),
                               in);
                return PD_ERR_BAD_ARG;
            }
        }
    }
    return PD_OK;
}

const msgpack_object *pd_arg_find(const msgpack_object *params, const char *key) {
    size_t kl = strlen(key);
    const msgpack_object_kv *kv = params->via.map.ptr;
    for (uint32_t i = 0; i < params->via.map.size; i++) {
        if (key_is(&kv[i].key, key, kl))
            return kv[i].val.type == MSGPACK_OBJECT_NIL ? NULL : &kv[i].val;
    }
    return NULL;
}

bool pd_obj_to_i64(const msgpack_object *o, int64_t min, int64_t max, int64_t *out) {
    int64_t v;
    switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (o->via.u64 > (uint64_t)INT64_MAX) return false;
            v = (int64_t)o->via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            v = o->via.i64;
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64: {
            double d = o->via.f64;
            /* 2^63 is exact as a double; anything at or above it overflows. */
            if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 ||
                d >= 9223372036854775808.0)
                return false;
            v = (int64_t)d;
            break;
        }
        default:
            return false;
    }
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

bool pd_obj_to_u64(const msgpack_object *o, uint64_t *out) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) {
        double d = o->via.f64;
        if (!isfinite(d) || d != floor(d) || d < 0 || d >= 18446744073709551616.0) return false;
        *out = (uint64_t)d;
        return true;
    }
    return false;
}

static pd_err missing(pd_conn_t *c, const char *key) {
    pd_reply_error(c, PD_ERR_BAD_ARG, "missing argument '%s'", key);
    return PD_ERR_BAD_ARG;
}

pd_err pd_arg_get_u64_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                               uint64_t *out) {
    const msgpack_object *o = pd_arg_find(p, key);
    if (!o) return missing(c, key);
    if (!pd_obj_to_u64(o, out)) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be an integer 0..2^64-1", key);
        return PD_ERR_BAD_ARG;
    }
    return PD_OK;
}

static pd_err i64_from(pd_conn_t *c, const msgpack_object *o, const char *key, int64_t min,
                       int64_t max, int64_t *out) {
    if (!pd_obj_to_i64(o, min, max, out)) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be an integer in %lld..%lld", key,
                       (long long)min, (long long)max);
        return PD_ERR_BAD_ARG;
    }
    return PD_OK;
}

pd_err pd_arg_get_i64_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, int64_t min,
                               int64_t max, int64_t *out) {
    const msgpack_object *o = pd_arg_find(p, key);
    if (!o) return missing(c, key);
    return i64_from(c, o, key, min, max, out);
}

pd_err pd_arg_opt_i64_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, int64_t min,
                               int64_t max, int64_t def, int64_t *out) {
    const msgpack_object *o = pd_arg_find(p, key);
    if (!o) {
        *out = def;
        return PD_OK;
    }
    return i64_from(c, o, key, min, max, out);
}

static bool obj_to_double(const msgpack_object *o, double *out) {
    switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            *out = (double)o->via.u64;
            return true;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            *out = (double)o->via.i64;
            return true;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            *out = o->via.f64;
            return isfinite(o->via.f64);
        default:
            return false;
    }
}

pd_err pd_arg_opt_double_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                  double min, double max, double def, double *out) {
    const msgpack_object *o = pd_arg_find(p, key);
    if (!o) {
        *out = def;
        return PD_OK;
    }
    double d;
    if (!obj_to_double(o, &d) || d < min || d > max) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be a number in %g..%g", key, min, max);
        return PD_ERR_BAD_ARG;
    }
    *out = d;
    return PD_OK;
}

pd_err pd_arg_opt_bool_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, bool def,
                                bool *out) {
    const msgpack_object *o = pd_arg_find(p, key);
    if (!o) {
        *out = def;
        return PD_OK;
    }
    if (o->type != MSGPACK_OBJECT_BOOLEAN) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be true or false", key);
        return PD_ERR_BAD_ARG;
    }
    *out = o->via.boolean;
    return PD_OK;
}

pd_err pd_arg_opt_str_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, char *buf,
                               size_t cap, bool *present) {
    const msgpack_object *o = pd_arg_find(p, key);
    *present = false;
    if (!o) return PD_OK;
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be a string of at most %zu bytes", key,
                       cap - 1);
        return PD_ERR_BAD_ARG;
    }
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    *present = true;
    return PD_OK;
}

static pd_err latlng_from(pd_conn_t *c, const msgpack_object *lat, const msgpack_object *lon,
                          pd_latlng_t *out) {
    double la, lo;
    /* A float that is not finite is a number, just not a coordinate: it
     * gets BAD_COORD below, as an out-of-range one does. */
    bool la_ok = lat->type == MSGPACK_OBJECT_FLOAT32 || lat->type == MSGPACK_OBJECT_FLOAT64
                     ? (la = lat->via.f64, true)
                     : obj_to_double(lat, &la);
    bool lo_ok = lon->type == MSGPACK_OBJECT_FLOAT32 || lon->type == MSGPACK_OBJECT_FLOAT64
                     ? (lo = lon->via.f64, true)
                     : obj_to_double(lon, &lo);
    if (!la_ok || !lo_ok) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'lat' and 'lon' must be numbers (degrees)");
        return PD_ERR_BAD_ARG;
    }
    if (pd_latlng_from_deg(la, lo, out) != PD_OK) {
        pd_reply_error(c, PD_ERR_BAD_COORD, "lat must be in -90..90 and lon in -180..180, finite");
        return PD_ERR_BAD_COORD;
    }
    return PD_OK;
}

pd_err pd_arg_get_latlng_or_reply(pd_conn_t *c, const msgpack_object *p, pd_latlng_t *out) {
    const msgpack_object *lat = pd_arg_find(p, "lat");
    const msgpack_object *lon = pd_arg_find(p, "lon");
    if (!lat) return missing(c, "lat");
    if (!lon) return missing(c, "lon");
    return latlng_from(c, lat, lon, out);
}

pd_err pd_arg_opt_latlng_or_reply(pd_conn_t *c, const msgpack_object *p, pd_latlng_t *out,
                                  bool *present) {
    const msgpack_object *lat = pd_arg_find(p, "lat");
    const msgpack_object *lon = pd_arg_find(p, "lon");
    *present = false;
    if (!lat && !lon) return PD_OK;
    if (!lat) return missing(c, "lat");
    if (!lon) return missing(c, "lon");
    pd_err err = latlng_from(c, lat, lon, out);
    if (err) return err;
    *present = true;
    return PD_OK;
}

static pd_err skill_name_bit(pd_conn_t *c, const pd_engine_t *e, const char *p, size_t n,
                             uint64_t *mask) {
    char name[PD_SKILL_NAME_MAX];
    char echo[64];
    uint32_t bit;
    if (n == 0 || n >= sizeof(name) || memchr(p, '\0', n)) {
        pd_reply_error(c, PD_ERR_UNKNOWN_SKILL, "unknown skill '%s'",
                       pd_arg_echo(echo, sizeof(echo), p, n));
        return PD_ERR_UNKNOWN_SKILL;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    if (pd_engine_skill_bit(e, name, &bit) != PD_OK) {
        pd_reply_error(c, PD_ERR_UNKNOWN_SKILL, "unknown skill '%s'",
                       pd_arg_echo(echo, sizeof(echo), p, n));
        return PD_ERR_UNKNOWN_SKILL;
    }
    *mask |= 1ULL << bit;
    return PD_OK;
}

pd_err pd_obj_skills_or_reply(pd_conn_t *c, const msgpack_object *o, const char *key,
                              const pd_engine_t *e, uint64_t *mask) {
    uint64_t m = 0;
    if (o->type == MSGPACK_OBJECT_STR) {
        /* "a, b" -- every item, the empty ones too, must name a skill; "" is none. */
        const char *s = o->via.str.ptr;
        size_t n = o->via.str.size, i = 0;
        while (n > 0) {
            size_t j = i;
            while (j < n && s[j] != ',') j++;
            size_t a = i, b = j;
            while (a < b && s[a] == ' ') a++;
            while (b > a && s[b - 1] == ' ') b--;
            pd_err err = skill_name_bit(c, e, s + a, b - a, &m);
            if (err) return err;
            if (j >= n) break;
            i = j + 1;
        }
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            const msgpack_object *x = &o->via.array.ptr[i];
            if (x->type != MSGPACK_OBJECT_STR) {
                pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be an array of skill names", key);
                return PD_ERR_BAD_ARG;
            }
            pd_err err = skill_name_bit(c, e, x->via.str.ptr, x->via.str.size, &m);
            if (err) return err;
        }
    } else {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be an array of skill names", key);
        return PD_ERR_BAD_ARG;
    }
    *mask = m;
    return PD_OK;
}

pd_err pd_arg_opt_skills_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                  const pd_engine_t *e, uint64_t *mask) {
    const msgpack_object *o = pd_arg_find(p, key);
    *mask = 0;
    if (!o) return PD_OK;
    return pd_obj_skills_or_reply(c, o, key, e, mask);
}

pd_err pd_arg_opt_tags_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                uint64_t *mask) {
    const msgpack_object *o = pd_arg_find(p, key);
    *mask = 0;
    if (!o) return PD_OK;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        uint64_t m = 0;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            int64_t bit;
            if (!pd_obj_to_i64(&o->via.array.ptr[i], 0, 63, &bit)) {
                pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be tag bit numbers 0..63", key);
                return PD_ERR_BAD_ARG;
            }
            m |= 1ULL << bit;
        }
        *mask = m;
        return PD_OK;
    }
    if (!pd_obj_to_u64(o, mask)) {
        pd_reply_error(c, PD_ERR_BAD_ARG,
                       "'%s' must be a bit mask or an array of tag bit numbers 0..63", key);
        return PD_ERR_BAD_ARG;
    }
    return PD_OK;
}

pd_err pd_arg_opt_week_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                pd_week_t *out) {
    const msgpack_object *o = pd_arg_find(p, key);
    if (!o) {
        *out = pd_week_all();
        return PD_OK;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) goto bad;
    pd_week_t w = pd_week_none();
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *r = &o->via.array.ptr[i];
        int64_t d, s, e;
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 3) goto bad;
        if (!pd_obj_to_i64(&r->via.array.ptr[0], 0, 6, &d) ||
            !pd_obj_to_i64(&r->via.array.ptr[1], 0, 23, &s) ||
            !pd_obj_to_i64(&r->via.array.ptr[2], 1, 24, &e) || s >= e)
            goto bad;
        if (pd_week_add_range(&w, (int)d, (int)s, (int)e) != PD_OK) goto bad;
    }
    *out = w;
    return PD_OK;
bad:
    pd_reply_error(c, PD_ERR_BAD_ARG,
                   "'%s' must be an array of [weekday 0..6, start_hour, end_hour] with "
                   "0 <= start < end <= 24",
                   key);
    return PD_ERR_BAD_ARG;
}

pd_err pd_arg_opt_enum_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                pd_err (*parse)(const char *, int *), int count, int def, int *out,
                                const char *what) {
    const msgpack_object *o = pd_arg_find(p, key);
    if (!o) {
        *out = def;
        return PD_OK;
    }
    int64_t v;
    if (count > 0 && pd_obj_to_i64(o, 0, count - 1, &v)) {
        *out = (int)v;
        return PD_OK;
    }
    if (o->type == MSGPACK_OBJECT_STR && o->via.str.size < 32) {
        char buf[32];
        memcpy(buf, o->via.str.ptr, o->via.str.size);
        buf[o->via.str.size] = '\0';
        if (parse(buf, out) == PD_OK) return PD_OK;
    }
    pd_reply_error(c, PD_ERR_BAD_ARG, "'%s' must be one of %s", key, what);
    return PD_ERR_BAD_ARG;
}

pd_err pd_parse_mode(const char *s, int *out) {
    pd_mode m;
    pd_err err = pd_mode_from_name(s, &m);
    if (!err) *out = (int)m;
    return err;
}

pd_err pd_parse_status(const char *s, int *out) {
    pd_status v;
    pd_err err = pd_status_from_name(s, &v);
    if (!err) *out = (int)v;
    return err;
}

pd_err pd_parse_policy(const char *s, int *out) {
    pd_policy v;
    pd_err err = pd_policy_from_name(s, &v);
    if (!err) *out = (int)v;
    return err;
}

pd_err pd_parse_priority(const char *s, int *out) {
    pd_priority v;
    pd_err err = pd_priority_from_name(s, &v);
    if (!err) *out = (int)v;
    return err;
}

pd_err pd_parse_offer_mode(const char *s, int *out) {
    pd_offer_mode v;
    pd_err err = pd_offer_mode_from_name(s, &v);
    if (!err) *out = (int)v;
    return err;
}
