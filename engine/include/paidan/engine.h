/* engine.h -- the dispatch engine: a deterministic, single-threaded state
 * machine over the volunteer index.
 *
 * The engine owns an index (paidan/index.h) and keeps, beside it, the
 * volunteers' records (hours, points, stars, ratings, offer counters) and
 * the orders with their offers. Every mutating call takes the caller's
 * timestamp `now_ms` (milliseconds since the epoch, UTC); the engine reads
 * no clock and does no I/O, so the same commands in the same order give
 * the same state, the same answers and the same events. A call that
 * returns an error changes nothing, PD_ERR_NOMEM included.
 *
 * Order life cycle (docs/engine.md has the full transition table):
 *
 *   created --dispatch--> offered --all slots accepted--> accepted
 *   accepted --complete--> completed --rate--> rated
 *   created | offered | accepted --cancel--> cancelled
 *   offered --no candidate left (decline / tick / removal)--> expired
 *   created --dispatch finds nobody for a slot--> expired
 *
 * An outstanding offer or an accepted slot holds one unit of the
 * volunteer's capacity (the index's `load`), so nobody is double-booked.
 *
 * Ownership: the engine copies everything it is given. Getters copy into
 * caller memory; query results go into caller-sized buffers. Events are
 * delivered synchronously at the end of the mutating call that caused them.
 */
#ifndef PAIDAN_ENGINE_H
#define PAIDAN_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paidan/error.h"
#include "paidan/index.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- constants */

#define PD_MAX_SKILLS 64          /* skill bits */
#define PD_SKILL_NAME_MAX 32      /* bytes per skill name, NUL included */
#define PD_ORDER_MAX_SLOTS 32     /* volunteers per (team) order */
#define PD_STAR_LEVELS 5          /* 1..5 stars */
#define PD_MAX_GRAB_WIDTH 32      /* upper bound of dispatch.grab_width */
#define PD_MAX_BATCH_K 64         /* upper bound of candidates per slot in batch */
#define PD_MAX_BATCH_PAIRS 131072 /* slots x k of one batch: its candidate graph's bound */
#define PD_MAX_MINUTES_SERVED (7 * 24 * 60) /* cap on one completion's minutes */

/* ----------------------------------------------------------------- enums */

/** Ranking policies. Values are stable. */
typedef enum pd_policy {
    PD_POLICY_NEAREST = 0,  /* score = ETA */
    PD_POLICY_BALANCED = 1, /* score = ETA + w x min(hours in last 7 days, cap) */
    PD_POLICY_RATED = 2,    /* score = ETA + w x (5 - mean rating) */
    PD_POLICY__COUNT
} pd_policy;

/** Order priority. Values are stable. */
typedef enum pd_priority {
    PD_PRIORITY_NORMAL = 0,
    PD_PRIORITY_ELEVATED = 1, /* special groups: elderly alone, left-behind
                                 children, disabled, hardship households */
    PD_PRIORITY_EMERGENCY = 2,
    PD_PRIORITY__COUNT
} pd_priority;

/** How an order's open slots are offered. Values are stable. */
typedef enum pd_offer_mode {
    PD_OFFER_SEQUENTIAL = 0, /* one candidate per slot at a time */
    PD_OFFER_GRAB = 1,       /* grab_width candidates per slot at once, first accept wins */
    PD_OFFER__COUNT
} pd_offer_mode;

/** Order states. Values are stable. */
typedef enum pd_order_state {
    PD_ORDER_CREATED = 0,   /* created, not yet dispatched */
    PD_ORDER_OFFERED = 1,   /* dispatched; at least one slot not yet accepted */
    PD_ORDER_ACCEPTED = 2,  /* every slot accepted */
    PD_ORDER_COMPLETED = 3, /* served; hours recorded */
    PD_ORDER_RATED = 4,     /* completed and rated 1..5 */
    PD_ORDER_CANCELLED = 5, /* cancelled by the caller */
    PD_ORDER_EXPIRED = 6,   /* nobody (left) to serve it; see pd_reason */
    PD_ORDER__COUNT
} pd_order_state;

/** State of one offer (one volunteer asked for one slot). Values are stable. */
typedef enum pd_offer_state {
    PD_OFFER_LIVE = 0,      /* outstanding, waiting for an answer */
    PD_OFFER_ACCEPTED = 1,  /* accepted: the volunteer holds the slot */
    PD_OFFER_DECLINED = 2,  /* declined by the volunteer */
    PD_OFFER_EXPIRED = 3,   /* not answered before its deadline */
    PD_OFFER_WITHDRAWN = 4, /* withdrawn by the engine (see pd_reason) */
    PD_OFFER_RELEASED = 5,  /* was accepted; released when the order was
                               cancelled or expired, or at the volunteer's
                               request (pd_engine_order_release) */
    PD_OFFER__STATE_COUNT
} pd_offer_state;

/** Why an order expired / was cancelled, or why an offer was withdrawn. Stable. */
typedef enum pd_reason {
    PD_REASON_NONE = 0,
    PD_REASON_NO_CANDIDATE = 1,      /* order: the slots could not all be covered */
    PD_REASON_EXHAUSTED = 2,         /* order: every candidate of a slot declined or let
                                        the offer expire, and nobody is left */
    PD_REASON_CANCELLED = 3,         /* order cancelled by the caller */
    PD_REASON_GRAB_LOST = 4,         /* offer: another volunteer took the slot first */
    PD_REASON_ORDER_CLOSED = 5,      /* offer/assignment: the order was cancelled or expired */
    PD_REASON_VOLUNTEER_REMOVED = 6, /* offer: the volunteer was removed */
    PD_REASON_WITHDREW = 7,          /* assignment: the volunteer withdrew after accepting */
    PD_REASON__COUNT
} pd_reason;

/** Event kinds. Values are stable. */
typedef enum pd_event_type {
    PD_EVENT_OFFERED = 0,         /* order offered to volunteer (slot, deadline_ms) */
    PD_EVENT_ACCEPTED = 1,        /* volunteer accepted a slot; order_state says whether
                                     the order is now fully accepted */
    PD_EVENT_DECLINED = 2,        /* volunteer declined */
    PD_EVENT_OFFER_EXPIRED = 3,   /* volunteer let the offer run past its deadline */
    PD_EVENT_OFFER_WITHDRAWN = 4, /* engine withdrew an offer (reason) */
    PD_EVENT_RELEASED = 5,        /* an accepted volunteer was released (order closed) */
    PD_EVENT_EXPIRED = 6,         /* order expired (reason); no volunteer */
    PD_EVENT_CANCELLED = 7,       /* order cancelled; no volunteer */
    PD_EVENT_COMPLETED = 8,       /* order completed (minutes); no volunteer */
    PD_EVENT_RATED = 9,           /* order rated (rating); no volunteer */
    PD_EVENT__COUNT
} pd_event_type;

/** Names: "nearest", "balanced", "rated"; NULL if out of range. */
const char *pd_policy_name(pd_policy p);
/** Parse a policy name. @return PD_ERR_BAD_ARG if unknown. */
pd_err pd_policy_from_name(const char *s, pd_policy *out);
/** Names: "normal", "elevated", "emergency"; NULL if out of range. */
const char *pd_priority_name(pd_priority p);
/** Parse a priority name. @return PD_ERR_BAD_ARG if unknown. */
pd_err pd_priority_from_name(const char *s, pd_priority *out);
/** Names: "sequential", "grab"; NULL if out of range. */
const char *pd_offer_mode_name(pd_offer_mode m);
/** Parse an offer mode name. @return PD_ERR_BAD_ARG if unknown. */
pd_err pd_offer_mode_from_name(const char *s, pd_offer_mode *out);
/** Names: "created", "offered", "accepted", "completed", "rated", "cancelled",
 *  "expired"; NULL if out of range. */
const char *pd_order_state_name(pd_order_state s);
/** The state a name (as pd_order_state_name gives it) stands for; PD_ERR_BAD_ARG. */
pd_err pd_order_state_from_name(const char *s, pd_order_state *out);
/** Names: "live", "accepted", "declined", "expired", "withdrawn", "released". */
const char *pd_offer_state_name(pd_offer_state s);
/** Names: "none", "no_candidate", "exhausted", "cancelled", "grab_lost",
 *  "order_closed", "volunteer_removed", "withdrew"; NULL if out of range. */
const char *pd_reason_name(pd_reason r);
/** Names: "offered", "accepted", "declined", "offer_expired", "offer_withdrawn",
 *  "released", "expired", "cancelled", "completed", "rated"; NULL if out of range. */
const char *pd_event_type_name(pd_event_type t);

/* ------------------------------------------------------------------ time */

/**
 * Local minute of the week for a timestamp: Monday 00:00 local is 0,
 * Sunday 23:59 is 10079. Local time is UTC + utc_offset_min.
 * @param ms             milliseconds since 1970-01-01T00:00Z (a Thursday).
 * @param utc_offset_min offset of local time, -14*60..+14*60.
 * @return PD_ERR_BAD_ARG on an offset out of range.
 */
pd_err pd_time_to_week_minute(int64_t ms, int32_t utc_offset_min, int32_t *out);

/**
 * Local day number (days since 1970-01-01 in local time, floor division).
 * Used for the 7-day service window.
 */
int64_t pd_time_to_local_day(int64_t ms, int32_t utc_offset_min);

/* ---------------------------------------------------------------- config */

/** Engine configuration. Initialise with pd_engine_config_init(). */
typedef struct pd_engine_config_s {
    pd_index_config_t index;           /* [speeds] walk/bike/ebike/car_kmh, [dispatch] detour,
                                          [index] cell_deg; defaults from pd_index_config_init */
    int32_t budget_s;                  /* [dispatch] budget_min: default order ETA budget, 900 s */
    int32_t offer_timeout_s;           /* [dispatch] offer_timeout_s: offer deadline, 120 s */
    uint32_t grab_width;               /* [dispatch] grab_width: offers per slot in grab mode, 3 */
    pd_policy policy;                  /* [dispatch] policy: ranking policy, balanced */
    double balanced_weight_s_per_hour; /* [policy] seconds of ETA per hour served in
                                          the last 7 days, 60 */
    double balanced_cap_hours;         /* [policy] cap on those hours, 20 */
    double rated_weight_s;             /* [policy] seconds of ETA per star below 5, 120 */
    double rated_neutral; /* [policy] mean rating assumed for unrated volunteers, 4.0 */
    uint32_t star_hours[PD_STAR_LEVELS];       /* [records] star_hours: total hours for 1..5
                                                  stars, strictly increasing; 10,50,100,300,600 */
    double points_per_hour;                    /* [records] points per hour served, 10 */
    double points_per_rating_star;             /* [records] points per star of each rating, 1 */
    int32_t utc_offset_min;                    /* [time] utc_offset: local offset, +08:00 = 480 */
    uint32_t batch_k;                          /* [batch] k: candidates per slot, 8 */
    int32_t batch_bonus_s[PD_PRIORITY__COUNT]; /* [batch] normal_bonus_s, elevated_bonus_s,
                                                  emergency_bonus_s: 0, 900, 3600 */
    uint32_t n_skills; /* [skills] names= replaces, add= extends; 12 defaults */
    char skills[PD_MAX_SKILLS][PD_SKILL_NAME_MAX]; /* names, bit i = skills[i] */
} pd_engine_config_t;

/**
 * Set every field to its default (see the field comments and
 * docs/paidan.ini.example). The default skills, bit 0 first, are
 * theory-policy, culture-arts, tutoring, medical-fitness, science-pop,
 * legal-aid, sanitation, poverty-relief, red-heritage, family-values,
 * civility, elder-care.
 */
void pd_engine_config_init(pd_engine_config_t *cfg);

/**
 * Check every field: index config, budget 1 s..24 h, offer timeout 1 s..1 day,
 * grab width 1..PD_MAX_GRAB_WIDTH, weights finite and >= 0, star hours
 * strictly increasing and > 0, offset within +-14 h, batch_k 1..PD_MAX_BATCH_K,
 * bonuses 0..86400, skill names non-empty, unique, without ',', '|' or blanks.
 * @return PD_OK or PD_ERR_BAD_ARG.
 */
pd_err pd_engine_config_check(const pd_engine_config_t *cfg);

/**
 * Load an INI file: cfg is first reset to the defaults, then every key in
 * the file overrides its field; the result is checked as by
 * pd_engine_config_check().
 * @param errline set to the 1-based line of the first bad key or value;
 *                0 when the file cannot be read or the whole config fails
 *                the final check. May be NULL.
 * @return PD_ERR_IO if the file cannot be opened, PD_ERR_BAD_ARG on an unknown
 * section/key, a bad value or a failed check. On error *cfg is unspecified.
 */
pd_err pd_engine_config_load_ini(const char *path, pd_engine_config_t *cfg, int *errline);

/** As pd_engine_config_load_ini(), from a NUL-terminated string. */
pd_err pd_engine_config_load_ini_string(const char *text, pd_engine_config_t *cfg, int *errline);

/**
 * As pd_engine_config_load_ini(), and on error writes what is wrong into
 * why (cap bytes, NUL-terminated; may be NULL): the key, its value and
 * what it accepts, an unknown key, a file that cannot be read. A path
 * that is not a regular file (a directory) is PD_ERR_BAD_ARG.
 */
pd_err pd_engine_config_load_ini_why(const char *path, pd_engine_config_t *cfg, int *errline,
                                     char *why, size_t cap);

/** As pd_engine_config_load_ini_why(), from a NUL-terminated string. */
pd_err pd_engine_config_load_ini_string_why(const char *text, pd_engine_config_t *cfg, int *errline,
                                            char *why, size_t cap);

/**
 * A section of the same INI file that belongs to the program around the
 * engine (paidan-server keeps its flags under [server]): its keys go to
 * fn instead of being refused as unknown. fn returns 1 when it takes the
 * key and value, 0 when it refuses them; on 0 it sets *expect to what the
 * key accepts, or leaves it NULL for a key it does not know. The error
 * then reads as for the engine's own keys, with the line.
 */
typedef struct pd_ini_section_s {
    const char *name; /* the section, e.g. "server" */
    int (*fn)(void *ud, const char *key, const char *value, const char **expect);
    void *ud;
} pd_ini_section_t;

/** As pd_engine_config_load_ini_why(), with the keys of the section
 *  `extra` (may be NULL) handed to its callback, in file order. */
pd_err pd_engine_config_load_ini_with(const char *path, pd_engine_config_t *cfg,
                                      const pd_ini_section_t *extra, int *errline, char *why,
                                      size_t cap);

/* ---------------------------------------------------------------- engine */

typedef struct pd_engine_s pd_engine_t;

/**
 * Create an engine with an empty index.
 * @param cfg copied; NULL for the defaults.
 * @return PD_ERR_BAD_ARG on a bad config, PD_ERR_NOMEM on OOM (nothing leaks).
 * Caller frees with pd_engine_destroy().
 */
pd_err pd_engine_create(const pd_engine_config_t *cfg, pd_engine_t **out);

/** Free the engine, its index and all orders. NULL is fine. */
void pd_engine_destroy(pd_engine_t *e);

/** The engine's configuration (valid until pd_engine_destroy()). */
const pd_engine_config_t *pd_engine_get_config(const pd_engine_t *e);

/**
 * The engine's index, read-only, for plain queries (pd_index_nearest with
 * no hook, pd_index_get). Valid until pd_engine_destroy(); never modify it
 * directly, or the engine's records go out of step.
 */
const pd_index_t *pd_engine_get_index(const pd_engine_t *e);

/* ---------------------------------------------------------------- skills */

/** Number of named skills (bits 0..n-1 are valid). */
uint32_t pd_engine_skill_count(const pd_engine_t *e);

/** Name of skill bit `bit`; NULL if bit >= pd_engine_skill_count(). Static
 *  for the engine's lifetime. */
const char *pd_engine_skill_name(const pd_engine_t *e, uint32_t bit);

/** Bit of a skill name (exact, case-sensitive). @return PD_ERR_UNKNOWN_SKILL. */
pd_err pd_engine_skill_bit(const pd_engine_t *e, const char *name, uint32_t *bit);

/**
 * Mask of a list of skill names.
 * @return PD_ERR_UNKNOWN_SKILL on the first unknown name (*mask untouched).
 */
pd_err pd_engine_skills_from_names(const pd_engine_t *e, const char *const *names, size_t n,
                                   uint64_t *mask);

/**
 * Mask of a comma-separated list ("sanitation, medical-fitness"); blanks
 * around names are ignored, empty items are not allowed ("" gives mask 0).
 * @return PD_ERR_UNKNOWN_SKILL / PD_ERR_BAD_ARG (empty item, name too long).
 */
pd_err pd_engine_skills_parse(const pd_engine_t *e, const char *csv, uint64_t *mask);

/**
 * Write the comma-separated names of a mask (bit order, no blanks) into
 * buf, NUL-terminated; *len (may be NULL) gets the length without the NUL.
 * @return PD_ERR_UNKNOWN_SKILL if the mask has a bit past the named skills,
 * PD_ERR_BOUNDS if cap is too small (cap >= PD_MAX_SKILLS * PD_SKILL_NAME_MAX
 * always suffices).
 */
pd_err pd_engine_skills_to_string(const pd_engine_t *e, uint64_t mask, char *buf, size_t cap,
                                  size_t *len);

/** Local minute of week of `ms` under the engine's configured offset. */
int32_t pd_engine_week_minute(const pd_engine_t *e, int64_t ms);

/**
 * Hours of the local week covered by [start_ms, start_ms + duration_min),
 * via pd_week_window() under the configured offset.
 * @return PD_ERR_BAD_ARG unless 0 <= duration_min <= 7 days.
 */
pd_err pd_engine_week_window(const pd_engine_t *e, int64_t start_ms, int32_t duration_min,
                             pd_week_t *out);

/* ------------------------------------------------------------ volunteers */

/** A volunteer's record, kept by the engine beside the index. */
typedef struct pd_volunteer_record_s {
    uint32_t minutes_total;    /* minutes served, all time */
    uint32_t minutes_7d;       /* minutes served in the 7 local days ending today */
    double points;             /* points_per_hour x hours + points_per_rating_star x
                                  sum of ratings received */
    uint32_t stars;            /* 0..5, from star_hours */
    uint32_t rating_count;     /* ratings received */
    uint32_t rating_sum;       /* sum of ratings received (1..5 each) */
    double rating_mean;        /* rating_sum / rating_count; 0 when unrated */
    uint32_t orders_completed; /* orders served */
    uint32_t offers_received;  /* offers made to the volunteer */
    uint32_t offers_accepted;
    uint32_t offers_declined;
    uint32_t offers_expired;   /* let run past their deadline */
    uint32_t offers_withdrawn; /* withdrawn by the engine (grab lost, order closed) */
    uint32_t releases;         /* accepted, then withdrew (pd_engine_order_release) */
    uint32_t notified_count;   /* times returned by a marking mobilisation */
    int64_t last_notified_ms;  /* time of the last one; 0 if never */
    int64_t last_served_ms;    /* time of the last completion; 0 if never */
} pd_volunteer_record_t;

/** A volunteer as pd_engine_volunteer_get() returns it. */
typedef struct pd_volunteer_info_s {
    pd_volunteer_t v;          /* the index record; v.load = offers + accepted held */
    pd_volunteer_record_t rec; /* the engine's record, evaluated at `now` */
} pd_volunteer_info_t;

/** Fields of a partial update (pd_volunteer_patch_t.fields). */
enum {
    PD_VF_POS = 1u << 0,
    PD_VF_SKILLS = 1u << 1,
    PD_VF_TAGS = 1u << 2,
    PD_VF_WEEK = 1u << 3,
    PD_VF_MODE = 1u << 4,
    PD_VF_STATUS = 1u << 5,
    PD_VF_CAPACITY = 1u << 6,
    PD_VF__ALL = (1u << 7) - 1
};

/** A partial update: only the fields named in `fields` are read. */
typedef struct pd_volunteer_patch_s {
    uint32_t fields; /* PD_VF_* bits */
    pd_latlng_t pos;
    uint64_t skills;
    uint64_t tags;
    pd_week_t week;
    uint8_t mode;     /* pd_mode */
    uint8_t status;   /* pd_status */
    uint8_t capacity; /* >= 1 and >= the volunteer's current load */
} pd_volunteer_patch_t;

/**
 * Tidy the index (pd_index_optimize): reorder cells that changed a lot
 * since they were last tidied, so queries read fewer blocks. Answers, the
 * digest and the journal are unaffected. Incremental: sorts about `budget`
 * volunteers' worth of cells and goes on from there at the next call;
 * *sorted (may be NULL) is how many cells it sorted, 0 once nothing is
 * left to do. PD_ERR_NOMEM leaves the engine as it was.
 */
pd_err pd_engine_tidy(pd_engine_t *e, size_t budget, size_t *sorted);

/**
 * Ask for huge pages under the index's cells (pd_index_huge_pages): at
 * most `budget` 2 MiB pages a call; *done once a pass is over. Answers,
 * the digest and the journal are unaffected.
 */
void pd_engine_huge_pages(pd_engine_t *e, size_t budget, size_t *n_pages, bool *done);

/**
 * Make room for `more` more volunteers (index arrays and records) now: a
 * bulk load that knows its size avoids growing and copying them half way
 * (see pd_index_reserve). PD_ERR_LIMIT / PD_ERR_NOMEM; the engine is
 * unchanged but for what was already reserved.
 */
pd_err pd_engine_reserve(pd_engine_t *e, size_t more);

/**
 * Insert a volunteer, or replace every field of an existing one except its
 * load (which the engine owns) and its record (which is kept).
 * v->load is ignored. A new volunteer starts with an empty record.
 * @return PD_ERR_BAD_COORD / PD_ERR_BAD_ARG on a bad record,
 * PD_ERR_UNKNOWN_SKILL if a skill bit has no name, PD_ERR_ILLEGAL if the new
 * capacity is below the current load, PD_ERR_LIMIT for a new volunteer past
 * pd_engine_set_limits(), PD_ERR_NOMEM. Unchanged on error.
 */
pd_err pd_engine_volunteer_upsert(pd_engine_t *e, const pd_volunteer_t *v, int64_t now_ms);

/**
 * Change some fields of an existing volunteer (a position alone takes the
 * O(1) pd_index_move path).
 * @return PD_ERR_NOT_FOUND, PD_ERR_BAD_ARG (unknown field bits or a bad
 * value), PD_ERR_BAD_COORD, PD_ERR_UNKNOWN_SKILL, PD_ERR_ILLEGAL (capacity
 * below load), PD_ERR_NOMEM. Unchanged on error.
 */
pd_err pd_engine_volunteer_update(pd_engine_t *e, uint64_t id, const pd_volunteer_patch_t *p,
                                  int64_t now_ms);

/** Location ping: the hot path. @return PD_ERR_NOT_FOUND, PD_ERR_BAD_COORD, PD_ERR_NOMEM. */
pd_err pd_engine_volunteer_move(pd_engine_t *e, uint64_t id, pd_latlng_t pos, int64_t now_ms);

/**
 * Remove a volunteer and their record. Outstanding offers they hold are
 * withdrawn (PD_EVENT_OFFER_WITHDRAWN, reason volunteer_removed) and the
 * slots re-dispatched as after a decline (which may expire an order).
 * @return PD_ERR_NOT_FOUND; PD_ERR_ILLEGAL if the volunteer holds an
 * accepted order (cancel or complete it first); PD_ERR_NOMEM. Unchanged
 * on error.
 */
pd_err pd_engine_volunteer_remove(pd_engine_t *e, uint64_t id, int64_t now_ms);

/**
 * Copy a volunteer and their record out, with the 7-day sum taken at now_ms.
 * @return PD_ERR_NOT_FOUND.
 */
pd_err pd_engine_volunteer_get(const pd_engine_t *e, uint64_t id, int64_t now_ms,
                               pd_volunteer_info_t *out);

/** Number of volunteers. */
size_t pd_engine_volunteer_count(const pd_engine_t *e);

/**
 * Caps on what the engine keeps, for a program bounding its memory
 * (paidan-server's --max-volunteers, --max-orders): upserting a new
 * volunteer when max_volunteers are kept, or creating an order when
 * max_orders are kept (open and closed alike; purging closed orders makes
 * room), is PD_ERR_LIMIT and changes nothing. Updates, moves and the
 * order life cycle are not capped. 0 = no cap, the default. The caps are
 * not state: snapshots and the digest do not hold them, and a recovery
 * replays its journal before they are set, so what was taken once is
 * taken again whatever the caps are now.
 */
void pd_engine_set_limits(pd_engine_t *e, size_t max_volunteers, size_t max_orders);

/**
 * Call fn for every volunteer in slot order (records taken at now_ms);
 * fn returns false to stop. The engine must not be changed during the walk.
 */
void pd_engine_foreach_volunteer(const pd_engine_t *e, int64_t now_ms,
                                 bool (*fn)(void *ud, const pd_volunteer_info_t *vi), void *ud);

/* ---------------------------------------------------------------- orders */

/** The largest |time| in ms the engine takes (start_ms, now_ms): 2^52,
 * some 142,000 years either side of 1970. Every call that creates,
 * offers, answers, closes, removes, ticks or marks refuses a time beyond it with
 * PD_ERR_BAD_ARG and changes nothing. */
#define PD_TIME_MAX_MS ((int64_t)1 << 52)

/** What pd_engine_order_create() needs. Zero-initialise, then set fields. */
typedef struct pd_order_spec_s {
    uint64_t id;                 /* caller's id, unique among kept orders */
    pd_latlng_t at;              /* where the service is needed */
    uint64_t skills;             /* skills every slot needs (when slot_skills is NULL) */
    uint32_t need;               /* volunteers needed (when slot_skills is NULL); 0 = 1 */
    const uint64_t *slot_skills; /* optional: skills per slot, e.g. 4 x sanitation +
                                    1 x medical-fitness; copied */
    uint32_t n_slots;            /* length of slot_skills, 1..PD_ORDER_MAX_SLOTS */
    uint64_t tags;               /* tag bits every volunteer must have */
    int64_t start_ms;            /* service start (UTC ms) */
    int32_t duration_min;        /* service length, 0..7 days; the hours it covers must
                                    be in the volunteer's weekly schedule */
    int32_t budget_s;            /* ETA budget; 0 = config budget_s */
    uint8_t priority;            /* pd_priority */
    uint8_t mode;                /* pd_offer_mode */
    bool ignore_schedule;        /* true: do not require the schedule to cover the window */
} pd_order_spec_t;

/** An order as pd_engine_order_get() returns it. */
typedef struct pd_order_info_s {
    uint64_t id;
    pd_latlng_t at;
    uint64_t tags;
    int64_t start_ms;
    int32_t duration_min;
    int32_t budget_s; /* the effective budget */
    uint8_t priority; /* pd_priority */
    uint8_t mode;     /* pd_offer_mode */
    uint8_t state;    /* pd_order_state */
    uint8_t reason;   /* pd_reason (expired / cancelled), else none */
    uint8_t rating;   /* 1..5 once rated, else 0 */
    bool ignore_schedule;
    uint32_t n_slots;        /* volunteers needed */
    uint32_t n_accepted;     /* slots accepted (held now, or held at completion) */
    uint32_t n_live_offers;  /* outstanding offers */
    uint32_t n_offers_total; /* offers made so far (kept while the order is open) */
    uint32_t minutes_served; /* once completed */
    int64_t created_ms;
    int64_t dispatched_ms;    /* first dispatch; 0 if never */
    int64_t accepted_ms;      /* when every slot was accepted; 0 if not (yet) */
    int64_t closed_ms;        /* completed / cancelled / expired; 0 if open */
    int64_t rated_ms;         /* 0 if not rated */
    int64_t next_deadline_ms; /* earliest live offer deadline; INT64_MAX if none */
} pd_order_info_t;

/** One slot of an order. */
typedef struct pd_order_slot_s {
    uint64_t skills;        /* skills this slot needs */
    bool filled;            /* accepted by a volunteer */
    uint64_t volunteer_id;  /* who holds it (valid when filled) */
    uint32_t n_live_offers; /* outstanding offers for this slot */
} pd_order_slot_t;

/** One offer of an order. */
typedef struct pd_offer_s {
    uint64_t volunteer_id;
    uint32_t slot;
    uint8_t state;  /* pd_offer_state */
    uint8_t reason; /* pd_reason for withdrawn / released */
    int64_t offered_ms;
    int64_t deadline_ms;
} pd_offer_t;

/**
 * Create an order in state `created`. The spec and slot_skills are copied.
 * @return PD_ERR_EXISTS for a kept id, PD_ERR_BAD_COORD, PD_ERR_BAD_ARG
 * (need/n_slots out of range, duration, budget, priority, mode),
 * PD_ERR_UNKNOWN_SKILL, PD_ERR_LIMIT past pd_engine_set_limits(),
 * PD_ERR_NOMEM. Unchanged on error.
 */
pd_err pd_engine_order_create(pd_engine_t *e, const pd_order_spec_t *spec, int64_t now_ms);

/**
 * Dispatch a created order: offer each slot to its best candidate(s) by
 * the policy (one in sequential mode, grab_width in grab mode), never to a
 * volunteer already asked for this order. Slots are planned one after
 * another; when one comes up short, by a matching of distinct volunteers
 * to slots (a volunteer with two skills may serve either). If no choice
 * of distinct volunteers covers every slot, the order expires at once
 * (reason no_candidate) and no offer is made.
 * @param state_out (may be NULL) the order's state afterwards: offered or expired.
 * @return PD_ERR_NOT_FOUND, PD_ERR_ILLEGAL unless created, PD_ERR_NOMEM.
 */
pd_err pd_engine_order_dispatch(pd_engine_t *e, uint64_t order_id, int64_t now_ms,
                                pd_order_state *state_out);

/** pd_engine_order_create() then pd_engine_order_dispatch(); on a dispatch
 *  error the order is not created. */
pd_err pd_engine_order_create_dispatch(pd_engine_t *e, const pd_order_spec_t *spec, int64_t now_ms,
                                       pd_order_state *state_out);

/**
 * Volunteer accepts their live offer. In grab mode the slot's other live
 * offers are withdrawn (reason grab_lost). When the last slot fills, the
 * order becomes accepted.
 * @return PD_ERR_NOT_FOUND (order or volunteer unknown), PD_ERR_ILLEGAL when
 * the volunteer has no live offer on this order (never offered, already
 * answered, withdrawn, lost the grab race) or the offer's deadline has
 * passed (deadline_ms <= now_ms; the next tick expires it).
 */
pd_err pd_engine_order_accept(pd_engine_t *e, uint64_t order_id, uint64_t volunteer_id,
                              int64_t now_ms);

/**
 * Volunteer declines their live offer; the slot is re-offered to the next
 * candidate when it has no live offer left (which may expire the order,
 * reason exhausted). Errors as for accept.
 */
pd_err pd_engine_order_decline(pd_engine_t *e, uint64_t order_id, uint64_t volunteer_id,
                               int64_t now_ms);

/**
 * A volunteer who accepted a slot withdraws (退单: taken ill, held up):
 * their slot is released (event released, reason withdrew; their capacity
 * comes back and their record counts a release) and offered again to the
 * next candidates, as after a decline -- never to them again. An accepted
 * order goes back to offered until the slot is taken; if nobody is left for
 * it, the order expires (exhausted) and releases its other volunteers.
 * @return PD_ERR_NOT_FOUND (order or volunteer unknown), PD_ERR_ILLEGAL when
 * the order is not offered or accepted or the volunteer holds no accepted
 * slot on it, PD_ERR_BAD_ARG for a bad now_ms.
 */
pd_err pd_engine_order_release(pd_engine_t *e, uint64_t order_id, uint64_t volunteer_id,
                               int64_t now_ms);

/**
 * Cancel a created, offered or accepted order: live offers are withdrawn,
 * accepted volunteers released (capacity returned).
 * @return PD_ERR_NOT_FOUND, PD_ERR_ILLEGAL from any other state.
 */
pd_err pd_engine_order_cancel(pd_engine_t *e, uint64_t order_id, int64_t now_ms);

/**
 * Complete an accepted order: every volunteer holding a slot is credited
 * with the minutes served and released.
 * @param minutes_served -1 for the order's duration, else 0..PD_MAX_MINUTES_SERVED.
 * @return PD_ERR_NOT_FOUND, PD_ERR_ILLEGAL unless accepted, PD_ERR_BAD_ARG.
 */
pd_err pd_engine_order_complete(pd_engine_t *e, uint64_t order_id, int32_t minutes_served,
                                int64_t now_ms);

/**
 * Rate a completed order 1..5; the rating goes on every serving volunteer's
 * record (volunteers removed since are skipped).
 * @return PD_ERR_NOT_FOUND, PD_ERR_ILLEGAL unless completed, PD_ERR_BAD_ARG.
 */
pd_err pd_engine_order_rate(pd_engine_t *e, uint64_t order_id, int rating, int64_t now_ms);

/** Copy an order out. @return PD_ERR_NOT_FOUND. */
pd_err pd_engine_order_get(const pd_engine_t *e, uint64_t order_id, pd_order_info_t *out);

/**
 * Copy an order's slots out (n_slots of them, <= PD_ORDER_MAX_SLOTS).
 * @return PD_ERR_NOT_FOUND, PD_ERR_BOUNDS if cap < n_slots.
 */
pd_err pd_engine_order_slots(const pd_engine_t *e, uint64_t order_id, pd_order_slot_t *out,
                             size_t cap, size_t *n_out);

/**
 * The score policy `policy` gives the volunteer in index slot `vslot` for
 * a candidate ETA of eta_s at now_ms: eta_s plus the policy's bounded,
 * non-negative term (see docs/engine.md). Lower is better. This is the
 * ranking dispatch uses; a caller running its own pd_index_nearest (e.g.
 * the server's match.nearby) passes it through the query's score hook, so
 * the slot comes straight from the index and no id lookup is needed.
 * @return PD_ERR_BAD_ARG (policy or slot out of range), PD_ERR_NOT_FOUND
 * (free slot). Changes nothing.
 */
pd_err pd_engine_policy_score(const pd_engine_t *e, pd_policy policy, uint32_t vslot,
                              int64_t now_ms, double eta_s, double *score);

/**
 * Copy an order's offers out, in the order they were made. While the order
 * is open every offer is kept; when it closes only the accepted / released
 * ones are kept (to keep closed orders small). Size with n_offers_total.
 * @return PD_ERR_NOT_FOUND, PD_ERR_BOUNDS if cap is too small.
 */
pd_err pd_engine_order_offers(const pd_engine_t *e, uint64_t order_id, pd_offer_t *out, size_t cap,
                              size_t *n_out);

/**
 * The same offers a window at a time, without a buffer sized for all:
 * offers [first, first + cap) into out (fewer at the end), how many were
 * copied into *n_out and how many the order keeps into *total. Lets a
 * caller that must not fail after a write (the server's order view) walk
 * them with a buffer on its stack.
 * @return PD_ERR_NOT_FOUND.
 */
pd_err pd_engine_order_offers_from(const pd_engine_t *e, uint64_t order_id, size_t first,
                                   pd_offer_t *out, size_t cap, size_t *n_out, size_t *total);

/**
 * The best candidates a dispatch of `slot` would offer now (the volunteers
 * already asked for the order excluded), best first; changes nothing.
 * @return PD_ERR_NOT_FOUND, PD_ERR_BAD_ARG (slot, k == 0).
 */
pd_err pd_engine_order_candidates(const pd_engine_t *e, uint64_t order_id, uint32_t slot,
                                  int64_t now_ms, size_t k, pd_hit_t *out, size_t *n_out);

/**
 * Drop closed orders (completed, rated, cancelled, expired) whose closing
 * (or rating) time is before `before_ms`; their ids become free.
 * @param n_out number dropped; may be NULL.
 */
pd_err pd_engine_order_purge(pd_engine_t *e, int64_t before_ms, size_t *n_out);

/** Number of kept orders in state s (all kept orders if s == PD_ORDER__COUNT). */
size_t pd_engine_order_count(const pd_engine_t *e, pd_order_state s);

/**
 * Call fn for every kept order in creation order; fn returns false to stop.
 * The engine must not be changed during the walk.
 */
void pd_engine_foreach_order(const pd_engine_t *e, bool (*fn)(void *ud, const pd_order_info_t *oi),
                             void *ud);

/** Which orders pd_engine_order_list() hands over. Zero-initialise. */
typedef struct pd_order_filter_s {
    uint32_t states;   /* bit s: orders in state s (pd_order_state); 0 = every state */
    bool by_volunteer; /* only orders volunteer_id holds or was offered
                          (as kept: a closed order keeps only its served
                          and released volunteers); 0 is an id like any */
    uint64_t volunteer_id;
    int64_t created_from_ms; /* orders created at or after this time; 0 = any */
} pd_order_filter_t;

/**
 * The kept orders that pass f, in creation order, a page at a time: fn is
 * called for each until it returns false or `scan` orders have been looked
 * at (so a page costs a bounded time however few orders match).
 * @param after_id  NULL to start at the first order, else the id a
 *                  previous call left in *next_id: the walk goes on after it.
 * @param more      set when orders are left to look at; then *next_id is
 *                  where to go on from (the last order looked at).
 * @return PD_ERR_NOT_FOUND when after_id is no kept order (purged since:
 * start again), PD_ERR_BAD_ARG when scan is 0 or f names no state.
 */
pd_err pd_engine_order_list(const pd_engine_t *e, const pd_order_filter_t *f,
                            const uint64_t *after_id, size_t scan,
                            bool (*fn)(void *ud, const pd_order_info_t *oi), void *ud, bool *more,
                            uint64_t *next_id);

/* ----------------------------------------------------------------- clock */

/**
 * Expire every live offer whose deadline is <= now_ms (PD_EVENT_OFFER_EXPIRED)
 * and re-dispatch their slots; orders with nobody left expire (reason
 * exhausted). Orders are handled by priority (emergency first), then
 * deadline, then order id.
 * @param n_expired offers expired; may be NULL.
 * @return PD_ERR_NOMEM, with nothing changed (call again later).
 */
pd_err pd_engine_tick(pd_engine_t *e, int64_t now_ms, size_t *n_expired);

/**
 * A time no later than the earliest live offer deadline: when the caller
 * should tick next. @return PD_ERR_NOT_FOUND if no offer is live.
 */
pd_err pd_engine_next_deadline(const pd_engine_t *e, int64_t *deadline_ms);

/* ----------------------------------------------------------------- batch */

/** Which batch assignment to apply. */
typedef enum pd_batch_apply {
    PD_BATCH_APPLY_NONE = 0,    /* report only */
    PD_BATCH_APPLY_OPTIMAL = 1, /* make the optimal assignment's offers */
    PD_BATCH_APPLY_GREEDY = 2   /* make the greedy assignment's offers */
} pd_batch_apply;

/** One (slot, volunteer) pair of a batch assignment. */
typedef struct pd_batch_pair_s {
    uint64_t order_id;
    uint32_t slot;
    uint64_t volunteer_id;
    int64_t score_ms; /* bonus(priority) + budget + policy bound - policy score, ms */
} pd_batch_pair_t;

/** A batch request. Zero-initialise, then set what you need. */
typedef struct pd_batch_req_s {
    const uint64_t *order_ids; /* created orders, distinct; NULL = every created order */
    size_t n_orders;
    uint32_t k; /* candidates per slot; 0 = config batch_k */
    pd_batch_apply apply;
    pd_batch_pair_t *optimal; /* optional out: optimal pairs (by order, slot) */
    size_t optimal_cap;       /* room in optimal; >= total slots always suffices */
    pd_batch_pair_t *greedy;  /* optional out: greedy pairs */
    size_t greedy_cap;
} pd_batch_req_t;

/** What a batch found. */
typedef struct pd_batch_result_s {
    size_t n_orders;          /* orders in the batch */
    size_t n_slots;           /* slots in the batch */
    size_t n_edges;           /* qualified (slot, volunteer) pairs considered */
    size_t optimal_n;         /* pairs in the optimal assignment */
    int64_t optimal_score_ms; /* its total score */
    size_t greedy_n;          /* pairs in the greedy assignment */
    int64_t greedy_score_ms;  /* its total score (<= optimal_score_ms) */
    size_t n_dispatched;      /* orders dispatched when applying */
    size_t n_expired;         /* of those, expired for want of candidates */
    /* When the batch is refused for one of its orders (NOT_FOUND, ILLEGAL,
     * or BAD_ARG for an id given twice): which one. */
    bool refused;
    uint64_t refused_id;
} pd_batch_result_t;

/**
 * Assign a set of created orders at once, maximising the total score under
 * the volunteers' free capacities (a volunteer fills at most one slot of
 * an order). For every slot the k best candidates by the policy are found;
 * each qualified pair scores
 *   bonus_s[priority] + budget_s + policy_bound_s - policy_score_s   (> 0)
 * in integer milliseconds, where budget_s is the largest ETA budget of the
 * batch's orders (one figure for all) and policy_bound_s the largest value
 * the policy's non-distance term can take. The optimal assignment is a maximum-
 * weight flow (successive shortest paths on min-cost flow); greedy takes
 * pairs by falling score. When applying, every order the assignment fills
 * whole gets one offer per slot to its volunteers; every other order is
 * dispatched as usual, all its slots or none, by priority then request
 * order, and expires (reason no_candidate) if that fails.
 * @return PD_ERR_NOT_FOUND (unknown id), PD_ERR_ILLEGAL (an order not created),
 * PD_ERR_BAD_ARG (duplicate ids, k out of range), PD_ERR_LIMIT (the batch's
 * slots x k over PD_MAX_BATCH_PAIRS: a graph that size takes the solver a
 * second or more, and the caller's thread with it), PD_ERR_BOUNDS (an output
 * buffer too small for its assignment), PD_ERR_NOMEM. Unchanged on error.
 */
pd_err pd_engine_batch(pd_engine_t *e, const pd_batch_req_t *req, int64_t now_ms,
                       pd_batch_result_t *res);

/* ----------------------------------------------------------- mobilisation */

/** A mobilisation (一呼百应) request. Zero-initialise, then set fields. */
typedef struct pd_mobilise_s {
    pd_latlng_t at;
    uint64_t skills;     /* all required; 0 = any */
    uint64_t tags;       /* all required; 0 = any */
    double radius_m;     /* straight-line radius; <= 0 = none */
    double budget_s;     /* ETA budget; <= 0 = none (one of the two is required) */
    bool check_schedule; /* require [start_ms, +duration_min) in the schedule */
    int64_t start_ms;
    int32_t duration_min;
    bool include_unavailable; /* also busy / offline / full volunteers */
    bool mark_notified;       /* count the returned volunteers as notified at now_ms */
} pd_mobilise_t;

/**
 * Every qualified volunteer within the radius / budget: the `limit` nearest
 * by ETA (ties by id) into out, and the total that qualified.
 * @param out   room for `limit` hits; may be NULL when limit is 0 (count only).
 * @param total may be NULL.
 * @return PD_ERR_BAD_ARG / PD_ERR_BAD_COORD on a bad request,
 * PD_ERR_UNKNOWN_SKILL, PD_ERR_ILLEGAL with mark_notified from inside an
 * event callback (a read is fine there), PD_ERR_BAD_ARG for a marking call
 * whose now_ms is beyond PD_TIME_MAX_MS. Only the notified counters change.
 */
pd_err pd_engine_mobilise(pd_engine_t *e, const pd_mobilise_t *req, int64_t now_ms, pd_hit_t *out,
                          size_t limit, size_t *n_out, size_t *total);

/* ---------------------------------------------------------------- events */

/** An event. Only the fields its type names are meaningful; the rest are 0. */
typedef struct pd_event_s {
    uint8_t type;        /* pd_event_type */
    uint8_t order_state; /* pd_order_state right after this event's change (a
                            later event of the same call may change it again) */
    uint8_t reason;      /* pd_reason */
    uint8_t rating;      /* rated: 1..5 */
    bool has_volunteer;  /* volunteer_id and slot are meaningful */
    uint32_t slot;
    uint64_t order_id;
    uint64_t volunteer_id;
    int64_t at_ms;       /* now_ms of the call */
    int64_t deadline_ms; /* offered: the offer's deadline */
    uint32_t minutes;    /* completed: minutes served */
} pd_event_t;

/**
 * Event callback. Called synchronously, in a deterministic order, after the
 * mutating call that caused the events has finished changing the state
 * (so reading the engine from fn is fine). fn must not mutate the engine.
 * `ev` is valid only during the call.
 */
typedef void (*pd_event_fn)(void *ud, const pd_event_t *ev);

/** Set (or clear with NULL) the event callback. */
void pd_engine_set_event_cb(pd_engine_t *e, pd_event_fn fn, void *ud);

/* ------------------------------------------------------- stats & checking */

/** Counters for `stats`. */
typedef struct pd_engine_stats_s {
    size_t volunteers;
    size_t orders; /* kept orders */
    size_t orders_by_state[PD_ORDER__COUNT];
    size_t live_offers;
    uint64_t offers_made; /* since creation */
    uint64_t events;      /* emitted since creation */
    size_t memory;        /* bytes held by the engine and its index */
} pd_engine_stats_t;

/** Fill the counters. */
void pd_engine_get_stats(const pd_engine_t *e, pd_engine_stats_t *out);

/**
 * Digest of the whole state (volunteers with their records, orders with
 * their offers, counters), independent of insertion order and slot reuse:
 * the same commands give the same digest; equivalent histories (e.g.
 * volunteers upserted in another order) give the same digest.
 */
uint64_t pd_engine_digest(const pd_engine_t *e);

/**
 * Check every invariant (each volunteer's load equals the live offers plus
 * accepted slots they hold and is <= capacity; counters by state; id map;
 * order states agree with their slots). On failure returns false and names
 * the first broken invariant in *reason (a static string).
 */
bool pd_engine_validate(const pd_engine_t *e, const char **reason);

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_ENGINE_H */
