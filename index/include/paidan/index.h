/* index.h -- the volunteer index: a sparse global geo grid with skill,
 * tag, schedule and availability filters, k-nearest and all-within queries.
 *
 * The index holds no clock and does no I/O. Positions are int32
 * micro-degrees; distances are metres on an equirectangular approximation
 * (see docs/index.md for the error bound); ETAs are seconds, computed as
 * distance x detour factor / speed of the volunteer's own travel mode.
 *
 * Ownership: the index copies everything it is given; nothing handed to it
 * needs to outlive the call. Query results go into caller-sized buffers and
 * the query path never allocates.
 */
#ifndef PAIDAN_INDEX_H
#define PAIDAN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paidan/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- basics */

/** Travel modes. Values are stable (stored in snapshots and CSV). */
typedef enum pd_mode {
    PD_MODE_WALK = 0,
    PD_MODE_BIKE = 1,
    PD_MODE_EBIKE = 2,
    PD_MODE_CAR = 3,
    PD_MODE__COUNT
} pd_mode;

/** Live status. Only ONLINE volunteers with capacity left qualify. */
typedef enum pd_status {
    PD_STATUS_ONLINE = 0,
    PD_STATUS_BUSY = 1,
    PD_STATUS_OFFLINE = 2,
    PD_STATUS__COUNT
} pd_status;

/** Name of a mode ("walk", "bike", "ebike", "car"); NULL if out of range. */
const char *pd_mode_name(pd_mode m);
/** Parse a mode name; PD_ERR_BAD_ARG if unknown. */
pd_err pd_mode_from_name(const char *s, pd_mode *out);
/** Name of a status ("online", "busy", "offline"); NULL if out of range. */
const char *pd_status_name(pd_status s);
/** Parse a status name; PD_ERR_BAD_ARG if unknown. */
pd_err pd_status_from_name(const char *s, pd_status *out);

/** A position in micro-degrees (1e-6 degree). */
typedef struct pd_latlng_s {
    int32_t lat; /* latitude, -90e6..90e6 */
    int32_t lon; /* longitude, -180e6..180e6 */
} pd_latlng_t;

/**
 * Convert degrees to a validated position.
 * @return PD_ERR_BAD_COORD if either value is not finite or out of range.
 */
pd_err pd_latlng_from_deg(double lat_deg, double lon_deg, pd_latlng_t *out);

/** True if the position is inside -90..90 / -180..180 degrees. */
bool pd_latlng_is_valid(pd_latlng_t p);

/** Great-circle distance in metres (haversine, mean Earth radius). */
double pd_latlng_haversine_m(pd_latlng_t a, pd_latlng_t b);

/**
 * Fast distance in metres: equirectangular approximation with the cosine
 * taken at the mean latitude (first-order), longitude difference wrapped
 * across the antimeridian. This is the metric every index query uses.
 * Within 0.01 % of haversine below 20 km and 0.05 % below 50 km while a
 * is within 85 degrees of the equator; it degrades towards the poles
 * (0.15 % and 1.2 % at 89 degrees, tens of percent for pairs across a
 * pole within 0.1 degree of it: docs/index.md, "The distance").
 */
double pd_latlng_fast_m(pd_latlng_t a, pd_latlng_t b);

/* -------------------------------------------------------------- schedule */

#define PD_WEEK_HOURS 168

/**
 * A weekly schedule: bit h (0..167) is hour h of the local week, where
 * hour 0 is Monday 00:00-01:00. Bits 168..191 are always zero.
 */
typedef struct pd_week_s {
    uint64_t bits[3];
} pd_week_t;

/** Every hour of the week set ("always available"). */
pd_week_t pd_week_all(void);
/** No hour set. */
pd_week_t pd_week_none(void);
/**
 * Set hours [start_hour, end_hour) of weekday `day` (0 = Monday).
 * @return PD_ERR_BAD_ARG unless 0 <= day <= 6 and 0 <= start < end <= 24.
 */
pd_err pd_week_add_range(pd_week_t *w, int day, int start_hour, int end_hour);
/**
 * The hours covered by a window of `duration_min` minutes starting at
 * `start_how_min` minutes into the local week (wrapping past Sunday).
 * A window of 0 minutes covers the one hour it starts in.
 * @return PD_ERR_BAD_ARG if start is outside the week or the duration is
 * negative or longer than a week.
 */
pd_err pd_week_window(int32_t start_how_min, int32_t duration_min, pd_week_t *out);
/** True if every hour of `need` is in `have`. */
static inline bool pd_week_covers(const pd_week_t *have, const pd_week_t *need) {
    return ((have->bits[0] & need->bits[0]) == need->bits[0]) &
           ((have->bits[1] & need->bits[1]) == need->bits[1]) &
           ((have->bits[2] & need->bits[2]) == need->bits[2]);
}
/** True if no hour is set. */
static inline bool pd_week_is_empty(const pd_week_t *w) {
    return (w->bits[0] | w->bits[1] | w->bits[2]) == 0;
}

/* ------------------------------------------------------------- volunteer */

/** A volunteer as the index sees it. */
typedef struct pd_volunteer_s {
    uint64_t id;      /* external id, any value */
    pd_latlng_t pos;  /* current position */
    uint64_t skills;  /* skill bits (up to 64 skills) */
    uint64_t tags;    /* tag bits (free use: groups, languages, ...) */
    pd_week_t week;   /* weekly availability */
    uint8_t mode;     /* pd_mode */
    uint8_t status;   /* pd_status */
    uint8_t capacity; /* orders at once, >= 1 */
    uint8_t load;     /* orders held now (offers + accepted), <= 255 */
} pd_volunteer_t;

/**
 * Check a volunteer record: valid position, mode, status, capacity >= 1,
 * and no bits past hour 167.
 * @return PD_OK, PD_ERR_BAD_COORD or PD_ERR_BAD_ARG.
 */
pd_err pd_volunteer_check(const pd_volunteer_t *v);

/* ----------------------------------------------------------------- index */

typedef struct pd_index_s pd_index_t;

/** Speeds and geometry of an index. */
typedef struct pd_index_config_s {
    double speed_kmh[PD_MODE__COUNT]; /* travel speed per mode, km/h, > 0 */
    double detour;                    /* road distance / straight line, >= 1 */
    int32_t cell_e6;                  /* cell height in micro-degrees of latitude */
} pd_index_config_t;

/** Defaults: walk 4.5, bike 12, e-bike 18, car 30 km/h; detour 1.3; cells 0.01 deg. */
void pd_index_config_init(pd_index_config_t *cfg);

/** @return PD_ERR_BAD_ARG if a speed, the detour or the cell size is out of range. */
pd_err pd_index_config_check(const pd_index_config_t *cfg);

/**
 * Create an empty index.
 * @param cfg copied; NULL for the defaults.
 * @return PD_ERR_BAD_ARG on a bad config, PD_ERR_NOMEM on OOM.
 * Caller frees with pd_index_destroy().
 */
pd_err pd_index_create(const pd_index_config_t *cfg, pd_index_t **out);

/** Free the index and everything in it. NULL is fine. */
void pd_index_destroy(pd_index_t *ix);

/** The configuration the index was created with. */
const pd_index_config_t *pd_index_get_config(const pd_index_t *ix);

/** Number of volunteers in the index. */
size_t pd_index_count(const pd_index_t *ix);

/**
 * Insert a new volunteer (O(1)).
 * @return PD_ERR_EXISTS if the id is present, PD_ERR_BAD_COORD/BAD_ARG on a
 * bad record, PD_ERR_LIMIT when the index is full (see pd_index_reserve),
 * PD_ERR_NOMEM on OOM. On error the index is unchanged.
 */
pd_err pd_index_insert(pd_index_t *ix, const pd_volunteer_t *v);

/**
 * Replace every field of an existing volunteer (O(1), moves cells if the
 * position changed). PD_ERR_NOT_FOUND if absent, PD_ERR_BAD_COORD/BAD_ARG
 * on a bad record, PD_ERR_LIMIT, PD_ERR_NOMEM; unchanged on error.
 */
pd_err pd_index_update(pd_index_t *ix, const pd_volunteer_t *v);

/** Insert or replace. */
pd_err pd_index_upsert(pd_index_t *ix, const pd_volunteer_t *v);

/**
 * Move a volunteer (location ping), O(1).
 * @return PD_ERR_NOT_FOUND, PD_ERR_BAD_COORD, PD_ERR_LIMIT, PD_ERR_NOMEM;
 * unchanged on error.
 */
pd_err pd_index_move(pd_index_t *ix, uint64_t id, pd_latlng_t pos);

/**
 * Set status, capacity and load of a volunteer (what the engine changes as
 * offers come and go). PD_ERR_BAD_ARG on a bad status or capacity 0 (a load
 * at or over the capacity is fine: the volunteer is then not available),
 * PD_ERR_NOT_FOUND if absent.
 */
pd_err pd_index_set_state(pd_index_t *ix, uint64_t id, pd_status status, uint8_t capacity,
                          uint8_t load);

/** The same by slot (pd_index_get_slot), without the id lookup.
 * PD_ERR_NOT_FOUND if the slot is free. */
pd_err pd_index_set_state_slot(pd_index_t *ix, uint32_t slot, pd_status status, uint8_t capacity,
                               uint8_t load);

/**
 * Make room for `more` more volunteers in the per-volunteer arrays (slots,
 * id map) now, so that inserting them does not grow and copy those arrays
 * on the way (a bulk load: reserving while the index is small costs
 * little; growing at 2^19 volunteers copies and rehashes all of them).
 * The index holds at most about 1.61 x 10^9 volunteers (the id map, three
 * quarters of 2^31 buckets): PD_ERR_LIMIT when count + more passes that
 * (or more slots than 2^31 would be handed out), PD_ERR_NOMEM; either
 * leaves the index as it was (what was already reserved stays).
 */
pd_err pd_index_reserve(pd_index_t *ix, size_t more);

/** Remove a volunteer, O(1). PD_ERR_NOT_FOUND if absent. */
pd_err pd_index_remove(pd_index_t *ix, uint64_t id);

/** Copy a volunteer's record out. PD_ERR_NOT_FOUND if absent. */
pd_err pd_index_get(const pd_index_t *ix, uint64_t id, pd_volunteer_t *out);

/**
 * The volunteer's slot: a small integer, stable while the volunteer stays
 * in the index and reused after removal; below pd_index_slot_limit(). Lets
 * a layer above keep per-volunteer data in a plain array.
 * @return PD_ERR_NOT_FOUND if absent.
 */
pd_err pd_index_get_slot(const pd_index_t *ix, uint64_t id, uint32_t *slot);

/** One more than the largest slot ever handed out. */
uint32_t pd_index_slot_limit(const pd_index_t *ix);

/** The id in a slot; PD_ERR_NOT_FOUND if the slot is free. */
pd_err pd_index_slot_id(const pd_index_t *ix, uint32_t slot, uint64_t *id);

/**
 * Call fn for every volunteer, in slot order. fn returns false to stop.
 * The index must not be changed during the walk.
 */
void pd_index_foreach(const pd_index_t *ix, bool (*fn)(void *ud, const pd_volunteer_t *v),
                      void *ud);

/* ------------------------------------------------------------------ bulk */

/**
 * Insert n new volunteers at once: what a restore or an import does. Much
 * faster than n pd_index_insert() calls: the volunteers are grouped by cell
 * first, each cell is sized once for all it receives, and the id map is
 * prefetched ahead. Within a cell the given order is kept; slots are handed
 * out cell by cell, and slots[i] (if slots is not NULL) receives vs[i]'s.
 * @return PD_ERR_BAD_COORD/BAD_ARG on a bad record, PD_ERR_EXISTS if an id
 * is present or given twice, PD_ERR_LIMIT, PD_ERR_NOMEM. On error the index
 * holds the same volunteers as before (*bad, if not NULL, is the position
 * of the record refused, or n when no single record is to blame; for an
 * id given twice, the later of the two). n == 0 does nothing (vs may then
 * be NULL).
 */
pd_err pd_index_insert_many(pd_index_t *ix, const pd_volunteer_t *vs, size_t n, uint32_t *slots,
                            size_t *bad);

/**
 * Call fn for every volunteer with its slot, cell by cell (cells in no
 * particular order, a cell's volunteers in its own order). For a full dump
 * this is much faster than pd_index_foreach(): each cell's bit planes are
 * read once for 64 volunteers at a time instead of once per volunteer, and
 * handing the volunteers back in this order to pd_index_insert_many()
 * rebuilds the same cells. fn returns false to stop. The index must not be
 * changed during the walk. Allocates nothing.
 */
void pd_index_foreach_by_cell(const pd_index_t *ix,
                              bool (*fn)(void *ud, const pd_volunteer_t *v, uint32_t slot),
                              void *ud);

/** What the index keeps per slot besides the cell: O(1), no cell read. */
typedef struct pd_slot_state_s {
    uint64_t id;
    uint8_t status; /* pd_status */
    uint8_t capacity;
    uint8_t load;
    uint8_t mode; /* pd_mode */
} pd_slot_state_t;

/** A slot's state; PD_ERR_NOT_FOUND if the slot is free. */
pd_err pd_index_slot_state(const pd_index_t *ix, uint32_t slot, pd_slot_state_t *out);

/**
 * A mark: 16 bits a layer above keeps beside each volunteer in the index,
 * in the same cache line as its position, and gets back in the score hook
 * (pd_score_fn), so ranking a candidate need not look anything up. The
 * index only stores it: 0 for a new volunteer, kept through updates,
 * moves and pd_index_optimize(); not in pd_index_foreach() or the bulk
 * calls (a restore sets the marks again). O(1).
 * @return PD_ERR_NOT_FOUND if the slot is free.
 */
pd_err pd_index_set_mark(pd_index_t *ix, uint32_t slot, uint16_t mark);

/** A slot's mark; PD_ERR_NOT_FOUND if the slot is free. */
pd_err pd_index_get_mark(const pd_index_t *ix, uint32_t slot, uint16_t *mark);

/* --------------------------------------------------------------- queries */

/**
 * Optional hook for a layer above: called for every candidate that passed
 * the index's own filters, with its slot, mark (pd_index_set_mark) and
 * ETA. Return false to reject it; otherwise set *score (lower is better)
 * to a value >= eta_s. Because the extra term is never negative, the ring
 * search can still stop early.
 */
typedef bool (*pd_score_fn)(void *ud, uint32_t slot, uint64_t id, uint16_t mark, double eta_s,
                            double distance_m, double *score);

/** What a query asks for. Zero-initialise, then set the fields you need. */
typedef struct pd_query_s {
    pd_latlng_t at;           /* where the service is needed */
    uint64_t skills;          /* all of these skill bits are required */
    uint64_t tags;            /* all of these tag bits are required */
    pd_week_t need;           /* hours that must be in the schedule; empty = any */
    double budget_s;          /* ETA budget in seconds; <= 0 = no time limit */
    double radius_m;          /* straight-line radius; <= 0 = no radius limit */
    bool include_unavailable; /* true: also busy/offline/full volunteers */
    pd_score_fn score;        /* optional ranking/rejection hook, may be NULL */
    void *score_ud;           /* passed to score */
} pd_query_t;

/* At least one of budget_s and radius_m must be set; these bound them. */
#define PD_QUERY_MAX_BUDGET_S (24.0 * 3600.0)
#define PD_QUERY_MAX_RADIUS_M 2000000.0

/** One result. */
typedef struct pd_hit_s {
    uint64_t id;      /* volunteer id */
    uint32_t slot;    /* volunteer slot (see pd_index_get_slot) */
    float distance_m; /* straight-line distance (fast metric) */
    float eta_s;      /* distance x detour / speed of the volunteer's mode */
    double score;     /* eta_s, or what the score hook said */
} pd_hit_t;

/**
 * The k best qualified volunteers, ordered by score (ETA unless a hook
 * ranks them), ties broken by id. Ring search around q->at that stops as
 * soon as no unvisited cell can beat the k-th best.
 * @param out  room for k hits.
 * @param n_out number written (<= k; fewer when fewer qualify).
 * @return PD_ERR_BAD_COORD / PD_ERR_BAD_ARG on a bad query (no budget and
 * no radius, or one out of range, or k == 0), nothing written.
 */
pd_err pd_index_nearest(const pd_index_t *ix, const pd_query_t *q, size_t k, pd_hit_t *out,
                        size_t *n_out);

/**
 * Every qualified volunteer within the budget/radius: the best `limit` of
 * them, sorted as for pd_index_nearest, and the total that qualified.
 * @param out   room for `limit` hits; may be NULL when limit is 0 (count only).
 * @param n_out number written (<= limit); required.
 * @param total number that qualified (may exceed limit); may be NULL.
 * @return PD_ERR_BAD_COORD / PD_ERR_BAD_ARG on a bad query, as for
 * pd_index_nearest (limit 0 is fine here), nothing written.
 */
pd_err pd_index_within(const pd_index_t *ix, const pd_query_t *q, size_t limit, pd_hit_t *out,
                       size_t *n_out, size_t *total);

/* ---------------------------------------------------------- maintenance */

/**
 * Tidy the index for faster queries: cells that changed a lot since they
 * were last tidied are reordered so that each block of 64 volunteers covers
 * a compact patch (a query then skips blocks far from it). Answers never
 * change; only their speed does. Incremental: works through at most about
 * `budget` volunteers and goes on from there at the next call, so a server
 * can call it from a timer. Allocates scratch memory for one cell.
 * @param n_sorted cells reordered by this call; may be NULL.
 * @return PD_ERR_NOMEM (the index is unchanged and still valid).
 */
pd_err pd_index_optimize(pd_index_t *ix, size_t budget, size_t *n_sorted);

/**
 * Ask for transparent huge pages under the cells' arrays
 * (pd_alloc_collapse_huge on each 2 MiB page they lie in). A query at
 * 10^6 volunteers reads a few hundred cache lines over as many 4 KiB
 * pages, and on a VM a TLB miss costs about what the read does: with huge
 * pages the tail of nearest and dispatch drops by a fifth to a half, for
 * about a fifth more resident memory (the pages' holes; docs/index.md).
 * For after a bulk load and pd_index_optimize(), which move every cell.
 * Incremental: at most `budget` pages per call, going on from there at
 * the next; *done is set when the call finished a pass over every cell
 * (the next call starts another). Answers never change.
 * @param n_pages pages asked for by this call; may be NULL.
 */
void pd_index_huge_pages(pd_index_t *ix, size_t budget, size_t *n_pages, bool *done);

/* ------------------------------------------------------------ debugging */

/** Memory held by the index, in bytes (its own accounting). */
size_t pd_index_memory(const pd_index_t *ix);

/**
 * Check every invariant of the index (maps agree, every volunteer in the
 * cell its position names, no stale slots). On failure returns false and
 * names the first broken invariant in *reason (a static string).
 */
bool pd_index_validate(const pd_index_t *ix, const char **reason);

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_INDEX_H */
