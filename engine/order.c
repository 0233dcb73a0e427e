/* order.c -- orders as stored: creation, lookup, copies out, counters,
 * compaction of closed orders and purging.
 *
 * Orders live in one array in creation order, found by id through an id
 * map (paidan/idmap.h, the index's map for volunteers). An order is a
 * fixed-size struct plus its offers ("entries"); team orders also own
 * their per-slot skill masks. While an order is open every offer is kept:
 * the entries are the order's excluded set. Once it closes, only the
 * accepted (served) and released entries are kept and the block is
 * shrunk, so a closed single-volunteer order costs the struct and one
 * entry. Purging removes closed orders and closes the gaps, keeping the
 * array in creation order without allocating.
 */
#include "engine_int.h"

#include <string.h>

#include "paidan/alloc.h"

#define KEYS(e) ((pd__idmap_keys_t){(const char *)(e)->orders, sizeof(pd__order_t)})

pd_err pd__order_find(const pd_engine_t *e, uint64_t id, uint32_t *pos) {
    return pd__idmap_find(&e->omap, KEYS(e), id, pos);
}

void pd__order_set_state(pd_engine_t *e, pd__order_t *o, pd_order_state s) {
    e->by_state[o->state]--;
    e->by_state[s]++;
    o->state = (uint8_t)s;
}

void pd__order_free(pd__order_t *o) {
    if (o->n_slots > 1) pd_free(o->skills.many);
    pd_free(o->ent);
    o->ent = NULL;
    o->cap_ent = o->n_ent = 0;
}

size_t pd__order_bytes(const pd__order_t *o) {
    return (size_t)o->cap_ent * sizeof(pd__offer_t) +
           (o->n_slots > 1 ? (size_t)o->n_slots * sizeof(uint64_t) : 0);
}

void pd__order_compact(pd_engine_t *e, pd__order_t *o) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < o->n_ent; i++) {
        uint8_t st = o->ent[i].state;
        if (st == PD_OFFER_ACCEPTED || st == PD_OFFER_RELEASED) o->ent[n++] = o->ent[i];
    }
    o->n_ent = n;
    if (n == o->cap_ent) return;
    e->aux_bytes -= (size_t)o->cap_ent * sizeof(pd__offer_t);
    if (n == 0) {
        pd_free(o->ent);
        o->ent = NULL;
        o->cap_ent = 0;
    } else {
        pd__offer_t *p = pd_realloc(o->ent, (size_t)n * sizeof *p);
        if (p) { /* a failed shrink just keeps the larger block */
            o->ent = p;
            o->cap_ent = n;
        }
    }
    e->aux_bytes += (size_t)o->cap_ent * sizeof(pd__offer_t);
}

void pd__order_info(const pd__order_t *o, pd_order_info_t *out) {
    memset(out, 0, sizeof *out);
    out->id = o->id;
    out->at = o->at;
    out->tags = o->tags;
    out->start_ms = o->start_ms;
    out->duration_min = o->duration_min;
    out->budget_s = o->budget_s;
    out->priority = o->priority;
    out->mode = o->mode;
    out->state = o->state;
    out->reason = o->reason;
    out->rating = o->rating;
    out->ignore_schedule = o->ignore_schedule;
    out->n_slots = o->n_slots;
    out->n_accepted = o->n_filled;
    out->n_live_offers = o->n_live;
    out->n_offers_total = o->n_offers;
    out->minutes_served = o->minutes_served;
    out->created_ms = o->created_ms;
    out->dispatched_ms = o->dispatched_ms;
    out->accepted_ms = o->accepted_ms;
    out->closed_ms = o->closed_ms;
    out->rated_ms = o->rated_ms;
    out->next_deadline_ms = INT64_MAX;
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *en = &o->ent[i];
        if (en->state == PD_OFFER_LIVE && en->deadline_ms < out->next_deadline_ms) {
            out->next_deadline_ms = en->deadline_ms;
        }
    }
}

/* ------------------------------------------------------------------ create */

static pd_err check_skills(const pd_engine_t *e, uint64_t mask) {
    uint32_t n = e->cfg.n_skills;
    if (n < 64 && (mask >> n)) return PD_ERR_UNKNOWN_SKILL;
    return PD_OK;
}

pd_err pd__order_add(pd_engine_t *e, const pd_order_spec_t *spec, int64_t now_ms) {
    if (!spec) return PD_ERR_BAD_ARG;
    uint32_t pos;
    if (pd__order_find(e, spec->id, &pos) == PD_OK) return PD_ERR_EXISTS;
    if (!pd_latlng_is_valid(spec->at)) return PD_ERR_BAD_COORD;
    uint32_t n_slots;
    if (spec->slot_skills) {
        n_slots = spec->n_slots;
    } else {
        n_slots = spec->need ? spec->need : 1;
    }
    if (n_slots < 1 || n_slots > PD_ORDER_MAX_SLOTS) return PD_ERR_BAD_ARG;
    if (spec->duration_min < 0 || spec->duration_min > PD_MAX_MINUTES_SERVED) {
        return PD_ERR_BAD_ARG;
    }
    if (spec->budget_s < 0 || spec->budget_s > 86400) return PD_ERR_BAD_ARG;
    if (spec->priority >= PD_PRIORITY__COUNT || spec->mode >= PD_OFFER__COUNT) {
        return PD_ERR_BAD_ARG;
    }
    if (!pd__time_ok(spec->start_ms) || !pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    pd_err err;
    if (spec->slot_skills) {
        for (uint32_t i = 0; i < n_slots; i++) {
            if ((err = check_skills(e, spec->slot_skills[i]))) return err;
        }
    } else if ((err = check_skills(e, spec->skills))) {
        return err;
    }
    /* the cap after the checks: a bad order is told what is wrong with it */
    if (e->max_orders && e->n_orders >= e->max_orders) return PD_ERR_LIMIT;

    /* Reserve: the array, the map, the slot masks. */
    if (e->n_orders == UINT32_MAX - 1) return PD_ERR_LIMIT;
    if ((size_t)e->n_orders + 1 > e->cap_orders_sz) {
        /* a big array: grown by the kernel without a copy (pd_big_grow) */
        size_t cap = e->cap_orders_sz ? e->cap_orders_sz * 2 : 64;
        pd__order_t *no = pd_big_grow(e->orders, e->cap_orders_sz * sizeof *no, cap * sizeof *no);
        if (!no) return PD_ERR_NOMEM;
        e->orders = no;
        e->cap_orders_sz = cap;
    }
    if ((err = pd__idmap_reserve1(&e->omap))) return err;
    uint64_t *many = NULL;
    if (n_slots > 1) {
        many = pd_malloc((size_t)n_slots * sizeof *many);
        if (!many) return PD_ERR_NOMEM;
        for (uint32_t i = 0; i < n_slots; i++) {
            many[i] = spec->slot_skills ? spec->slot_skills[i] : spec->skills;
        }
        e->aux_bytes += (size_t)n_slots * sizeof *many;
    }

    /* Commit. */
    pd__order_t *o = &e->orders[e->n_orders];
    memset(o, 0, sizeof *o);
    o->id = spec->id;
    o->at = spec->at;
    o->tags = spec->tags;
    o->start_ms = spec->start_ms;
    o->created_ms = now_ms;
    o->duration_min = spec->duration_min;
    o->budget_s = spec->budget_s ? spec->budget_s : e->cfg.budget_s;
    o->n_slots = (uint8_t)n_slots;
    o->priority = spec->priority;
    o->mode = spec->mode;
    o->state = PD_ORDER_CREATED;
    o->reason = PD_REASON_NONE;
    o->ignore_schedule = spec->ignore_schedule;
    if (n_slots > 1) {
        o->skills.many = many;
    } else {
        o->skills.one = spec->slot_skills ? spec->slot_skills[0] : spec->skills;
    }
    pd__idmap_add(&e->omap, o->id, e->n_orders);
    e->n_orders++;
    e->by_state[PD_ORDER_CREATED]++;
    return PD_OK;
}

void pd__order_drop_last(pd_engine_t *e) {
    if (PD_NEVER(e->n_orders == 0)) return;
    pd__order_t *o = &e->orders[e->n_orders - 1];
    (void)PD_NEVER(pd__idmap_del(&e->omap, KEYS(e), o->id) != PD_OK);
    e->by_state[o->state]--;
    e->aux_bytes -= pd__order_bytes(o);
    pd__order_free(o);
    e->n_orders--;
}

/* ------------------------------------------------------------------ public */

pd_err pd_engine_order_create(pd_engine_t *e, const pd_order_spec_t *spec, int64_t now_ms) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    return pd__order_add(e, spec, now_ms);
}

pd_err pd_engine_order_get(const pd_engine_t *e, uint64_t order_id, pd_order_info_t *out) {
    uint32_t pos;
    pd_err err = pd__order_find(e, order_id, &pos);
    if (err) return err;
    pd__order_info(&e->orders[pos], out);
    return PD_OK;
}

pd_err pd_engine_order_slots(const pd_engine_t *e, uint64_t order_id, pd_order_slot_t *out,
                             size_t cap, size_t *n_out) {
    uint32_t pos;
    pd_err err = pd__order_find(e, order_id, &pos);
    if (err) return err;
    const pd__order_t *o = &e->orders[pos];
    if (cap < o->n_slots) return PD_ERR_BOUNDS;
    bool open = pd__order_is_open(o);
    for (uint32_t s = 0; s < o->n_slots; s++) {
        memset(&out[s], 0, sizeof out[s]);
        out[s].skills = pd__order_slot_skills(o, s);
    }
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *en = &o->ent[i];
        pd_order_slot_t *sl = &out[en->slot];
        if (en->state == PD_OFFER_LIVE) sl->n_live_offers++;
        /* Open orders: the holder. Completed / rated: who served. */
        if (en->state == PD_OFFER_ACCEPTED &&
            (open || o->state == PD_ORDER_COMPLETED || o->state == PD_ORDER_RATED)) {
            sl->filled = true;
            sl->volunteer_id = en->vol;
        }
    }
    if (n_out) *n_out = o->n_slots;
    return PD_OK;
}

static void offer_out(const pd__offer_t *en, pd_offer_t *out) {
    out->volunteer_id = en->vol;
    out->slot = en->slot;
    out->state = en->state;
    out->reason = en->reason;
    out->offered_ms = en->offered_ms;
    out->deadline_ms = en->deadline_ms;
}

pd_err pd_engine_order_offers(const pd_engine_t *e, uint64_t order_id, pd_offer_t *out, size_t cap,
                              size_t *n_out) {
    uint32_t pos;
    pd_err err = pd__order_find(e, order_id, &pos);
    if (err) return err;
    const pd__order_t *o = &e->orders[pos];
    if (cap < o->n_ent) return PD_ERR_BOUNDS;
    for (uint32_t i = 0; i < o->n_ent; i++) offer_out(&o->ent[i], &out[i]);
    if (n_out) *n_out = o->n_ent;
    return PD_OK;
}

pd_err pd_engine_order_offers_from(const pd_engine_t *e, uint64_t order_id, size_t first,
                                   pd_offer_t *out, size_t cap, size_t *n_out, size_t *total) {
    uint32_t pos;
    pd_err err = pd__order_find(e, order_id, &pos);
    if (err) return err;
    const pd__order_t *o = &e->orders[pos];
    size_t n = 0;
    for (size_t i = first; i < o->n_ent && n < cap; i++) offer_out(&o->ent[i], &out[n++]);
    if (n_out) *n_out = n;
    if (total) *total = o->n_ent;
    return PD_OK;
}

size_t pd_engine_order_count(const pd_engine_t *e, pd_order_state s) {
    if ((unsigned)s >= PD_ORDER__COUNT) return e->n_orders;
    return e->by_state[s];
}

void pd_engine_foreach_order(const pd_engine_t *e, bool (*fn)(void *ud, const pd_order_info_t *oi),
                             void *ud) {
    pd_order_info_t info;
    for (uint32_t i = 0; i < e->n_orders; i++) {
        pd__order_info(&e->orders[i], &info);
        if (!fn(ud, &info)) return;
    }
}

static bool order_names(const pd__order_t *o, uint64_t vol) {
    for (uint32_t i = 0; i < o->n_ent; i++)
        if (o->ent[i].vol == vol) return true;
    return false;
}

pd_err pd_engine_order_list(const pd_engine_t *e, const pd_order_filter_t *f,
                            const uint64_t *after_id, size_t scan,
                            bool (*fn)(void *ud, const pd_order_info_t *oi), void *ud, bool *more,
                            uint64_t *next_id) {
    const uint32_t all = (1u << PD_ORDER__COUNT) - 1;
    if (!f || !fn || !more || !next_id || scan == 0 || (f->states & ~all)) return PD_ERR_BAD_ARG;
    const uint32_t states = f->states ? f->states : all;
    uint32_t i = 0;
    if (after_id) {
        pd_err err = pd__order_find(e, *after_id, &i);
        if (err) return err;
        i++;
    }
    *more = false;
    *next_id = 0;
    pd_order_info_t info;
    for (; i < e->n_orders; i++) {
        const pd__order_t *o = &e->orders[i];
        bool go_on = true;
        if ((states >> o->state & 1) && o->created_ms >= f->created_from_ms &&
            (!f->by_volunteer || order_names(o, f->volunteer_id))) {
            pd__order_info(o, &info);
            go_on = fn(ud, &info);
        }
        if (!go_on || --scan == 0) {
            *more = i + 1 < e->n_orders;
            *next_id = o->id;
            return PD_OK;
        }
    }
    return PD_OK;
}

static bool purgeable(const pd__order_t *o, int64_t before_ms) {
    switch (o->state) {
        case PD_ORDER_COMPLETED:
        case PD_ORDER_CANCELLED:
        case PD_ORDER_EXPIRED:
            return o->closed_ms < before_ms;
        case PD_ORDER_RATED:
            return o->rated_ms < before_ms;
        default:
            return false;
    }
}

pd_err pd_engine_order_purge(pd_engine_t *e, int64_t before_ms, size_t *n_out) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    /* Pass 1: forget the ids while every position still holds its order. */
    size_t n = 0;
    for (uint32_t i = 0; i < e->n_orders; i++) {
        pd__order_t *o = &e->orders[i];
        if (!purgeable(o, before_ms)) continue;
        (void)PD_NEVER(pd__idmap_del(&e->omap, KEYS(e), o->id) != PD_OK);
        e->by_state[o->state]--;
        e->aux_bytes -= pd__order_bytes(o);
        pd__order_free(o);
        o->state = PD_ORDER__COUNT; /* mark: a gap */
        n++;
    }
    /* Pass 2: close the gaps in order. A moved order's bucket still names
     * its old position, which is not overwritten before the move (writes
     * only go to positions below the one being read). */
    if (n) {
        uint32_t w = 0;
        for (uint32_t r = 0; r < e->n_orders; r++) {
            if (e->orders[r].state == PD_ORDER__COUNT) continue;
            if (w != r) {
                e->orders[w] = e->orders[r];
                (void)PD_NEVER(pd__idmap_set(&e->omap, KEYS(e), e->orders[w].id, w) != PD_OK);
            }
            w++;
        }
        e->n_orders = w;
    }
    if (n_out) *n_out = n;
    return PD_OK;
}
