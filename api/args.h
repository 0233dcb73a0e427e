/* args.h -- reading named arguments at the protocol edge.
 *
 * Private to api/. Every handler checks its params with these helpers
 * before it touches the engine: each one either stores a valid value or
 * packs an error reply (BAD_ARG, BAD_COORD, UNKNOWN_SKILL) and returns
 * that error, in the manner of Redis's getLongLongFromObjectOrReply. A
 * handler therefore reads
 *
 *     if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
 *
 * and a rejected call changes nothing. A key whose value is nil counts as
 * absent. Integers may arrive as integral floats (JSON tools produce them).
 */
#ifndef PAIDAN_API_ARGS_H
#define PAIDAN_API_ARGS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "paidan/engine.h"

/**
 * Refuse keys not in `allowed` (NULL-terminated) and repeated keys, and
 * keys that are not strings. Catches misspelt optional arguments, which
 * would otherwise be ignored silently.
 */
pd_err pd_args_check_or_reply(pd_conn_t *c, const msgpack_object *params,
                              const char *const *allowed);

/**
 * As pd_args_check_or_reply() for a map nested in the params (an entry of
 * `slots`); the error names where it is ("unknown argument 'x' in
 * 'slots'"). `within` may be NULL (then the same as the above).
 */
pd_err pd_args_check_in_or_reply(pd_conn_t *c, const msgpack_object *params,
                                 const char *const *allowed, const char *within);

/**
 * Copy client bytes into `out` for an error message: at most cap-1 bytes,
 * NUL-terminated, valid UTF-8 kept whole, anything else (bad sequences,
 * control characters) replaced by '?', so a reply never carries a string
 * that a strict client cannot decode.
 * @return out.
 */
const char *pd_arg_echo(char *out, size_t cap, const char *p, size_t n);

/** The value of `key`, or NULL if absent or nil. Points into params. */
const msgpack_object *pd_arg_find(const msgpack_object *params, const char *key);

/** True if o is an integer (or integral float) in [min, max]; stores it. */
bool pd_obj_to_i64(const msgpack_object *o, int64_t min, int64_t max, int64_t *out);

/** True if o is a non-negative integer (or integral float); stores it. */
bool pd_obj_to_u64(const msgpack_object *o, uint64_t *out);

/** A required unsigned 64-bit id. */
pd_err pd_arg_get_u64_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                               uint64_t *out);

/** A required integer in [min, max]. */
pd_err pd_arg_get_i64_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, int64_t min,
                               int64_t max, int64_t *out);

/** An optional integer in [min, max]; *out = def when absent. */
pd_err pd_arg_opt_i64_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, int64_t min,
                               int64_t max, int64_t def, int64_t *out);

/** An optional finite number in [min, max]; *out = def when absent. */
pd_err pd_arg_opt_double_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                  double min, double max, double def, double *out);

/** An optional boolean; *out = def when absent. */
pd_err pd_arg_opt_bool_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, bool def,
                                bool *out);

/**
 * An optional short string copied NUL-terminated into buf (cap bytes);
 * *present tells whether it was given. Longer strings are refused.
 */
pd_err pd_arg_opt_str_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key, char *buf,
                               size_t cap, bool *present);

/** Required "lat" and "lon" in degrees (BAD_COORD when out of range). */
pd_err pd_arg_get_latlng_or_reply(pd_conn_t *c, const msgpack_object *p, pd_latlng_t *out);

/** Optional "lat" and "lon": both or neither; *present tells which. */
pd_err pd_arg_opt_latlng_or_reply(pd_conn_t *c, const msgpack_object *p, pd_latlng_t *out,
                                  bool *present);

/**
 * Optional skills: an array of skill names, or one string of comma-
 * separated names. UNKNOWN_SKILL names the first unknown one. *mask = 0
 * when absent.
 */
pd_err pd_arg_opt_skills_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                  const pd_engine_t *e, uint64_t *mask);

/** The skill mask of one object (as for pd_arg_opt_skills_or_reply). */
pd_err pd_obj_skills_or_reply(pd_conn_t *c, const msgpack_object *o, const char *key,
                              const pd_engine_t *e, uint64_t *mask);

/**
 * Optional tags: an integer bit mask, or an array of bit numbers 0..63.
 * *mask = 0 when absent.
 */
pd_err pd_arg_opt_tags_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                uint64_t *mask);

/**
 * Optional weekly schedule: an array of [weekday 0=Mon..6, start_hour,
 * end_hour] with 0 <= start < end <= 24. *out = every hour when absent.
 */
pd_err pd_arg_opt_week_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                pd_week_t *out);

/**
 * Optional enum: a name parsed with `parse`, or its integer value
 * 0..count-1 (count 0: names only); *out = def when absent. `what` lists the accepted names in
 * the error message.
 */
pd_err pd_arg_opt_enum_or_reply(pd_conn_t *c, const msgpack_object *p, const char *key,
                                pd_err (*parse)(const char *, int *), int count, int def, int *out,
                                const char *what);

/** Enum parsers for pd_arg_opt_enum_or_reply (names as in index.h / engine.h). */
pd_err pd_parse_mode(const char *s, int *out);
pd_err pd_parse_status(const char *s, int *out);
pd_err pd_parse_policy(const char *s, int *out);
pd_err pd_parse_priority(const char *s, int *out);
pd_err pd_parse_offer_mode(const char *s, int *out);

#endif /* PAIDAN_API_ARGS_H */
