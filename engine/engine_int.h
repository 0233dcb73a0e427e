/* engine_int.h -- private to engine/: the engine's state and the helpers
 * its modules share.
 *
 * Layout. The engine owns one index. Beside it, an array of volunteer
 * records (record.h) indexed by the index's slot; an array of orders in
 * creation order with an id -> position map (paidan/idmap.h); a binary heap of
 * (deadline, order id) for tick; a queue of events delivered at the end of
 * each mutating call; and scratch buffers reused by dispatch and batch.
 *
 * Every mutating operation runs in three phases: plan (validate, find
 * candidates, nothing changes), reserve (grow every buffer the commit will
 * write to; a failure here leaves the state as it was, since only capacity
 * grew), commit (cannot fail). That is what makes "an error changes
 * nothing" hold, OOM included.
 */
#ifndef PAIDAN_ENGINE_ENGINE_INT_H
#define PAIDAN_ENGINE_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "paidan/engine.h"
#include "paidan/idmap.h"
#include "record.h"

/* One offer of an order (an "entry"): who was asked, for which slot, and
 * what became of it. Entries are never dropped while the order is open, so
 * they double as the order's excluded set. */
typedef struct pd__offer_s {
    uint64_t vol; /* volunteer id */
    int64_t offered_ms;
    int64_t deadline_ms;
    uint8_t slot;   /* slot index in the order */
    uint8_t state;  /* pd_offer_state */
    uint8_t reason; /* pd_reason for withdrawn / released */
} pd__offer_t;

/* One order. Slot skills live inline for single-volunteer orders. */
typedef struct pd__order_s {
    uint64_t id;
    pd_latlng_t at;
    uint64_t tags;
    int64_t start_ms;
    int64_t created_ms;
    int64_t dispatched_ms;
    int64_t accepted_ms;
    int64_t closed_ms;
    int64_t rated_ms;
    int32_t duration_min;
    int32_t budget_s;
    uint32_t minutes_served;
    uint32_t n_ent;    /* entries in use */
    uint32_t cap_ent;  /* entries allocated */
    uint32_t n_offers; /* offers ever made (entries shrink on close) */
    uint8_t n_slots;
    uint8_t n_filled; /* slots accepted */
    uint16_t n_live;  /* live offers: up to PD_ORDER_MAX_SLOTS x PD_MAX_GRAB_WIDTH */
    uint8_t priority;
    uint8_t mode;
    uint8_t state;
    uint8_t reason;
    uint8_t rating;
    bool ignore_schedule;
    union {
        uint64_t one;   /* n_slots == 1 */
        uint64_t *many; /* n_slots > 1, owned */
    } skills;
    pd__offer_t *ent; /* owned, cap_ent entries */
} pd__order_t;

static inline uint64_t pd__order_slot_skills(const pd__order_t *o, uint32_t s) {
    return o->n_slots == 1 ? o->skills.one : o->skills.many[s];
}

static inline bool pd__order_is_open(const pd__order_t *o) {
    return o->state == PD_ORDER_CREATED || o->state == PD_ORDER_OFFERED ||
           o->state == PD_ORDER_ACCEPTED;
}

/* A heap entry: order `id` may have a live offer due at `deadline_ms`.
 * Stale entries (offer answered, order closed) are skipped when popped. */
typedef struct pd__due_s {
    int64_t deadline_ms;
    uint64_t order_id;
} pd__due_t;

/* A planned offer: volunteer `vol` (index slot `vslot`) for order slot `slot`. */
typedef struct pd__pick_s {
    uint64_t vol;
    uint32_t vslot;
    uint32_t slot;
} pd__pick_t;

/* What the score hook sees: the engine, the order whose entries are
 * excluded (may be NULL), the picks already planned (excluded too) and the
 * local day for the 7-day sums. */
typedef struct pd__hookctx_s {
    const struct pd_engine_s *e;
    const pd__order_t *o;
    const pd__pick_t *picks;
    size_t n_picks;
    int64_t day;
} pd__hookctx_t;

#define PD__MAX_PICKS ((size_t)PD_ORDER_MAX_SLOTS * PD_MAX_GRAB_WIDTH)
#define PD__HITS (PD_MAX_BATCH_K > PD_MAX_GRAB_WIDTH ? PD_MAX_BATCH_K : PD_MAX_GRAB_WIDTH)

struct pd_engine_s {
    pd_engine_config_t cfg;
    pd_index_t *ix;
    double policy_bound_s; /* largest non-distance term of the policy */

    pd__vrec_t *recs; /* per index slot */
    uint32_t recs_cap;

    pd__order_t *orders; /* kept orders, creation order */
    uint32_t n_orders;
    size_t cap_orders_sz;
    pd__idmap_t omap; /* order id -> position in orders */
    size_t by_state[PD_ORDER__COUNT];
    size_t live_offers;
    uint64_t offers_made;
    uint64_t events_emitted;
    size_t aux_bytes; /* per-order blocks: entries and slot masks */

    pd__due_t *due; /* min-heap by (deadline, order id) */
    size_t n_due;
    size_t cap_due;

    pd_event_t *evq; /* events of the current call */
    size_t n_ev;
    size_t cap_ev;
    pd_event_fn ev_fn;
    void *ev_ud;
    bool delivering; /* inside the event callback */

    pd__pick_t *picks; /* planned offers, PD__MAX_PICKS of them */
    size_t n_picks;
    pd_hit_t hits[PD__HITS];
    uint32_t *scratch_u32; /* order positions (removal, batch) */
    size_t cap_scratch_u32;
    pd__due_t *tick_due; /* tick: popped heap entries */
    size_t cap_tick_due;
    void *tick_orders; /* tick: due orders (dispatch.c's type) */
    size_t cap_tick_orders;
    void *batch; /* batch workspace (batch.c), NULL until used */
    /* pd_engine_set_limits: caps on new volunteers and orders kept, 0 =
     * none. Not state: neither snapshotted nor in the digest. */
    size_t max_vols, max_orders;
};

/* A time the engine takes (start_ms, now_ms): |ms| <= PD_TIME_MAX_MS, so
 * a deadline (now + offer timeout) or a local day cannot overflow. */
static inline bool pd__time_ok(int64_t ms) {
    return ms >= -PD_TIME_MAX_MS && ms <= PD_TIME_MAX_MS;
}

/* qsort that accepts an empty (possibly NULL) array. */
static inline void pd__sort(void *base, size_t n, size_t size,
                            int (*cmp)(const void *, const void *)) {
    if (n > 1) qsort(base, n, size, cmp);
}

/* ---- engine.c */

/* Grow a buffer of `size`-byte elements to hold at least `need` (doubling).
 * On PD_ERR_NOMEM the buffer is as it was. */
pd_err pd__grow(void **buf, size_t *cap, size_t need, size_t size);
/* Make room for `more` queued events. */
pd_err pd__events_reserve(pd_engine_t *e, size_t more);
/* Queue an event (room reserved). */
void pd__event_push(pd_engine_t *e, const pd_event_t *ev);
/* Deliver and clear the queued events. */
void pd__events_flush(pd_engine_t *e);
/* pd_engine_validate, with the index's own check optional: a restore
 * builds its index through pd_index_insert, so only the engine's
 * cross-checks (orders against volunteers, counters) can fail there.
 * PD_OK, PD_ERR_CORRUPT (and *reason) or PD_ERR_NOMEM. */
pd_err pd__engine_check(const pd_engine_t *e, bool index_too, const char **reason);
/* Set a volunteer's load (index and mirror). */
void pd__set_load(pd_engine_t *e, uint32_t vslot, uint8_t load);

/* ---- order.c */

/* Position of an order by id; PD_ERR_NOT_FOUND. */
pd_err pd__order_find(const pd_engine_t *e, uint64_t id, uint32_t *pos);
/* Validate a spec and append the order in state created; unchanged on error. */
pd_err pd__order_add(pd_engine_t *e, const pd_order_spec_t *spec, int64_t now_ms);
/* Undo the last pd__order_add. */
void pd__order_drop_last(pd_engine_t *e);
/* Change an order's state, keeping the per-state counters. */
void pd__order_set_state(pd_engine_t *e, pd__order_t *o, pd_order_state s);
/* Free what an order owns. */
void pd__order_free(pd__order_t *o);
/* Bytes an order owns beside its struct. */
size_t pd__order_bytes(const pd__order_t *o);
/* Keep only a closed order's accepted / released entries, shrinking the block. */
void pd__order_compact(pd_engine_t *e, pd__order_t *o);
/* Fill an info struct. */
void pd__order_info(const pd__order_t *o, pd_order_info_t *out);

/* ---- dispatch.c */

/* Policy score of a candidate: ETA plus the bounded non-distance term. */
double pd__policy_score(const pd_engine_t *e, uint32_t vslot, int64_t day, double eta_s);
/* Weekly hours an order needs (empty when it ignores the schedule). */
pd_week_t pd__order_need(const pd_engine_t *e, const pd__order_t *o);
/* The index query for one slot of o, ranked and filtered by the hook. */
void pd__slot_query(const pd__order_t *o, uint32_t slot, const pd_week_t *need, pd__hookctx_t *ctx,
                    pd_query_t *q);
/* Offers per open slot: grab_width in grab mode, else 1. */
static inline uint32_t pd__order_width(const pd_engine_t *e, const pd__order_t *o) {
    return o->mode == PD_OFFER_GRAB ? e->cfg.grab_width : 1;
}
#define PD__NO_SLOT UINT32_MAX
/* Plan offers for every open slot of o (not filled, no live offer),
 * `width` per slot, appending to e->picks (always room). Returns the first
 * slot that found nobody, or PD__NO_SLOT. Changes nothing but e->picks. */
uint32_t pd__plan_open_slots(pd_engine_t *e, const pd__order_t *o, uint32_t width, int64_t now_ms);
/* Room for re-planning every slot of o and then closing it; adds the
 * events that may take to *events. */
pd_err pd__reserve_worst(pd_engine_t *e, pd__order_t *o, size_t *events);
/* Room for `more` entries on o. */
pd_err pd__reserve_entries(pd_engine_t *e, pd__order_t *o, size_t more);
/* Room for `more` heap entries. */
pd_err pd__reserve_due(pd_engine_t *e, size_t more);
/* Commit e->picks[from..n_picks) as live offers of o (room reserved). */
void pd__commit_picks(pd_engine_t *e, pd__order_t *o, size_t from, int64_t now_ms);
/* Close an open order as expired or cancelled: withdraw live offers,
 * release accepted volunteers, compact, queue the events (room reserved). */
void pd__order_close(pd_engine_t *e, pd__order_t *o, pd_order_state st, pd_reason why,
                     int64_t now_ms);
/* Withdraw the live offers volunteer `vol` holds and re-dispatch their
 * slots; all or nothing (PD_ERR_NOMEM leaves everything unchanged). */
pd_err pd__withdraw_volunteer(pd_engine_t *e, uint64_t vol, int64_t now_ms);

/* ---- batch.c */

/* Free the batch workspace. */
void pd__batch_free(pd_engine_t *e);
/* Bytes held by the batch workspace. */
size_t pd__batch_memory(const pd_engine_t *e);

#endif /* PAIDAN_ENGINE_ENGINE_INT_H */
