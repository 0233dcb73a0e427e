/* dispatch.c -- offers and the order state machine: dispatch, accept,
 * decline, cancel, complete, rate, tick, and withdrawal on volunteer removal.
 *
 * Candidates. A slot's candidates come from pd_index_nearest with a score
 * hook: the hook rejects every volunteer already in the order's entries
 * (asked before, in any slot, whatever they answered) or already picked in
 * the current plan, and adds the policy's non-distance term (>= 0, bounded)
 * to the ETA. The index itself only returns online volunteers with
 * capacity left whose skills, tags, schedule and ETA budget fit.
 *
 * All or nothing. An order is served whole or not at all: when some open
 * slot (not filled, no live offer) finds nobody, the order expires and
 * every live offer is withdrawn and every accepted volunteer released. A
 * first dispatch that cannot cover every slot therefore makes no offer.
 *
 * Phases. Each call plans (nothing changes), reserves (only capacities
 * grow), then commits (cannot fail) and flushes the queued events; see
 * engine_int.h. Calls that touch several orders (tick, volunteer removal)
 * reserve the worst case for all of them before committing any.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "paidan/alloc.h"

#define NO_SLOT PD__NO_SLOT

/* ------------------------------------------------------------- the policy */

/* The score of a candidate under policy p: its ETA plus the policy's
 * bounded, non-negative term. */
static double policy_score(const pd_engine_t *e, pd_policy p, uint32_t vslot, int64_t day,
                           double eta_s) {
    const pd__vrec_t *r = &e->recs[vslot];
    switch (p) {
        case PD_POLICY_BALANCED: {
            double h = pd__vrec_minutes_7d(r, day) / 60.0;
            if (h > e->cfg.balanced_cap_hours) h = e->cfg.balanced_cap_hours;
            return eta_s + e->cfg.balanced_weight_s_per_hour * h;
        }
        case PD_POLICY_RATED: {
            double mean =
                r->rating_count ? (double)r->rating_sum / r->rating_count : e->cfg.rated_neutral;
            return eta_s + e->cfg.rated_weight_s * (5.0 - mean);
        }
        default:
            return eta_s;
    }
}

double pd__policy_score(const pd_engine_t *e, uint32_t vslot, int64_t day, double eta_s) {
    return policy_score(e, e->cfg.policy, vslot, day, eta_s);
}

pd_err pd_engine_policy_score(const pd_engine_t *e, pd_policy policy, uint32_t vslot,
                              int64_t now_ms, double eta_s, double *score) {
    if ((unsigned)policy >= PD_POLICY__COUNT || vslot >= e->recs_cap) return PD_ERR_BAD_ARG;
    uint64_t id;
    if (pd_index_slot_id(e->ix, vslot, &id) != PD_OK) return PD_ERR_NOT_FOUND;
    *score =
        policy_score(e, policy, vslot, pd_time_to_local_day(now_ms, e->cfg.utc_offset_min), eta_s);
    return PD_OK;
}

static bool score_hook(void *ud, uint32_t vslot, uint64_t id, uint16_t mark, double eta_s,
                       double distance_m, double *score) {
    (void)distance_m;
    const pd__hookctx_t *c = ud;
    if (c->o) {
        for (uint32_t i = 0; i < c->o->n_ent; i++) {
            if (c->o->ent[i].vol == id) return false;
        }
    }
    for (size_t i = 0; i < c->n_picks; i++) {
        if (c->picks[i].vol == id) return false;
    }
    if (PD_NEVER(vslot >= c->e->recs_cap)) return false;
    /* Most candidates served nobody this week: their mark says so, and
     * their record (a cache miss each) is not read. */
    if (c->e->cfg.policy == PD_POLICY_BALANCED && pd__mark_idle_7d(mark, c->day)) {
        *score = eta_s;
        return true;
    }
    *score = pd__policy_score(c->e, vslot, c->day, eta_s);
    return true;
}

pd_week_t pd__order_need(const pd_engine_t *e, const pd__order_t *o) {
    pd_week_t w = pd_week_none();
    if (!o->ignore_schedule) {
        pd_err err = pd_engine_week_window(e, o->start_ms, o->duration_min, &w);
        if (PD_NEVER(err)) w = pd_week_none();
    }
    return w;
}

void pd__slot_query(const pd__order_t *o, uint32_t slot, const pd_week_t *need, pd__hookctx_t *ctx,
                    pd_query_t *q) {
    memset(q, 0, sizeof *q);
    q->at = o->at;
    q->skills = pd__order_slot_skills(o, slot);
    q->tags = o->tags;
    q->need = *need;
    q->budget_s = o->budget_s;
    q->score = score_hook;
    q->score_ud = ctx;
}

/* ------------------------------------------------------------- planning */

/* Per slot: filled? live offers? */
static void slot_status(const pd__order_t *o, bool filled[], uint32_t live[]) {
    for (uint32_t s = 0; s < o->n_slots; s++) {
        filled[s] = false;
        live[s] = 0;
    }
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *en = &o->ent[i];
        if (en->state == PD_OFFER_ACCEPTED) filled[en->slot] = true;
        if (en->state == PD_OFFER_LIVE) live[en->slot]++;
    }
}

/* Slot s's best `want` candidates (none the picks so far hold) appended
 * to e->picks; returns how many. */
static size_t pick_slot(pd_engine_t *e, const pd__order_t *o, uint32_t s, uint32_t want,
                        const pd_week_t *need, pd__hookctx_t *ctx) {
    ctx->n_picks = e->n_picks;
    pd_query_t q;
    pd__slot_query(o, s, need, ctx, &q);
    size_t n = 0;
    pd_err err = pd_index_nearest(e->ix, &q, want, e->hits, &n);
    if (PD_NEVER(err)) n = 0;
    for (size_t i = 0; i < n; i++) {
        pd__pick_t *p = &e->picks[e->n_picks++];
        p->vol = e->hits[i].id;
        p->vslot = e->hits[i].slot;
        p->slot = s;
    }
    return n;
}

/* The open slots' candidate lists of a matched plan: for each, up to
 * n_open candidates (ranked) ignoring the other slots' picks. A slot with
 * fewer holds every volunteer qualified for it; one with n_open always
 * keeps one the other n_open - 1 slots did not take. So the lists have a
 * matching that covers every slot exactly when the whole county has one. */
typedef struct match_s {
    uint32_t n_open;
    uint32_t n_cand[PD_ORDER_MAX_SLOTS];                    /* per open slot */
    uint64_t cand[PD_ORDER_MAX_SLOTS][PD_ORDER_MAX_SLOTS];  /* volunteer ids, best first */
    uint32_t vslot[PD_ORDER_MAX_SLOTS][PD_ORDER_MAX_SLOTS]; /* their index slots */
    uint32_t got[PD_ORDER_MAX_SLOTS];                       /* matched: index in cand, or NONE */
    bool seen[PD_ORDER_MAX_SLOTS];                          /* this augmenting search */
} match_t;

#define NONE UINT32_MAX

/* The open slot holding volunteer `id`, or NONE. */
static uint32_t match_owner(const match_t *m, uint64_t id) {
    for (uint32_t k = 0; k < m->n_open; k++) {
        if (m->got[k] != NONE && m->cand[k][m->got[k]] == id) return k;
    }
    return NONE;
}

/* Kuhn's augmenting path from open slot k: its candidates in rank order,
 * each free one taken, each taken one freed by moving its holder on. */
static bool match_augment(match_t *m, uint32_t k) {
    for (uint32_t j = 0; j < m->n_cand[k]; j++) {
        uint32_t h = match_owner(m, m->cand[k][j]);
        if (h != NONE) {
            if (m->seen[h]) continue;
            m->seen[h] = true;
            if (!match_augment(m, h)) continue;
        }
        m->got[k] = j;
        return true;
    }
    return false;
}

/* The plan when slot by slot fell short at open[short_k]: one volunteer
 * per open slot by a matching, then (grab) up to width - 1 more each, slot
 * by slot, from whoever is left. Returns a slot the matching cannot cover
 * (open[short_k] first, when nobody at all qualifies for it), or NO_SLOT;
 * picks from e->n_picks on. */
static uint32_t plan_matched(pd_engine_t *e, const pd__order_t *o, const uint32_t *open,
                             uint32_t n_open, uint32_t short_k, uint32_t width,
                             const pd_week_t *need, pd__hookctx_t *ctx) {
    match_t m;
    m.n_open = n_open;
    const size_t base = e->n_picks;
    ctx->n_picks = base;
    for (uint32_t i = 0; i < n_open; i++) {
        uint32_t k = i == 0 ? short_k : i <= short_k ? i - 1 : i;
        m.got[k] = NONE;
        pd_query_t q;
        pd__slot_query(o, open[k], need, ctx, &q);
        size_t n = 0;
        pd_err err = pd_index_nearest(e->ix, &q, n_open, e->hits, &n);
        if (PD_NEVER(err)) n = 0;
        if (n == 0) return open[k];
        m.n_cand[k] = (uint32_t)n;
        for (size_t j = 0; j < n; j++) {
            m.cand[k][j] = e->hits[j].id;
            m.vslot[k][j] = e->hits[j].slot;
        }
    }
    for (uint32_t k = 0; k < n_open; k++) {
        memset(m.seen, 0, sizeof m.seen);
        if (!match_augment(&m, k)) return open[k];
    }
    for (uint32_t k = 0; k < n_open; k++) {
        pd__pick_t *p = &e->picks[e->n_picks++];
        p->vol = m.cand[k][m.got[k]];
        p->vslot = m.vslot[k][m.got[k]];
        p->slot = open[k];
    }
    for (uint32_t k = 0; k < n_open && width > 1; k++)
        pick_slot(e, o, open[k], width - 1, need, ctx);
    return NO_SLOT;
}

/* Plan offers for every open slot of o (not filled, no live offer),
 * appending to e->picks (room for PD_ORDER_MAX_SLOTS x PD_MAX_GRAB_WIDTH is
 * always there). `width` candidates per slot. Returns the first slot that
 * found nobody, or NO_SLOT. Changes nothing but e->picks.
 *
 * Slots are planned one after another, each taking its best `width`
 * candidates that the slots before it did not take. That can fall short
 * where a team could be served: a sanitation and a medical slot whose
 * nearest volunteer has both skills gave them to the sanitation slot and
 * found nobody for the medical one. So when a slot falls short, the plan
 * is made again by a matching (plan_matched): the order is short only if
 * no choice of distinct volunteers covers every open slot. */
uint32_t pd__plan_open_slots(pd_engine_t *e, const pd__order_t *o, uint32_t width, int64_t now_ms) {
    bool filled[PD_ORDER_MAX_SLOTS];
    uint32_t live[PD_ORDER_MAX_SLOTS];
    slot_status(o, filled, live);
    uint32_t open[PD_ORDER_MAX_SLOTS], n_open = 0;
    for (uint32_t s = 0; s < o->n_slots; s++) {
        if (!filled[s] && !live[s]) open[n_open++] = s;
    }
    pd_week_t need = pd__order_need(e, o);
    pd__hookctx_t ctx = {e, o, e->picks, 0, pd_time_to_local_day(now_ms, e->cfg.utc_offset_min)};
    const size_t base = e->n_picks;
    for (uint32_t k = 0; k < n_open; k++) {
        if (pick_slot(e, o, open[k], width, &need, &ctx) == 0) {
            e->n_picks = base;
            if (k == 0) return open[k]; /* nobody took anyone from it */
            uint32_t short_slot = plan_matched(e, o, open, n_open, k, width, &need, &ctx);
            if (short_slot != NO_SLOT) e->n_picks = base;
            return short_slot;
        }
    }
    return NO_SLOT;
}

/* ------------------------------------------------------------ reserving */

pd_err pd__reserve_entries(pd_engine_t *e, pd__order_t *o, size_t more) {
    size_t need = (size_t)o->n_ent + more;
    if (need <= o->cap_ent) return PD_OK;
    if (need > UINT32_MAX / 2) return PD_ERR_LIMIT;
    size_t cap = o->cap_ent ? (size_t)o->cap_ent * 2 : 2;
    while (cap < need) cap *= 2;
    pd__offer_t *p = pd_realloc(o->ent, cap * sizeof *p);
    if (!p) return PD_ERR_NOMEM;
    e->aux_bytes += (cap - o->cap_ent) * sizeof *p;
    o->ent = p;
    o->cap_ent = (uint32_t)cap;
    return PD_OK;
}

pd_err pd__reserve_due(pd_engine_t *e, size_t more) {
    return pd__grow((void **)&e->due, &e->cap_due, e->n_due + more, sizeof *e->due);
}

/* Events a close of o can queue: one per entry plus the order's own. */
static size_t close_events(const pd__order_t *o) {
    return (size_t)o->n_ent + 1;
}

/* Worst case of re-planning every slot of o and then closing it. */
pd_err pd__reserve_worst(pd_engine_t *e, pd__order_t *o, size_t *events) {
    size_t offers = (size_t)o->n_slots * pd__order_width(e, o);
    pd_err err = pd__reserve_entries(e, o, offers);
    if (err) return err;
    *events += (size_t)o->n_ent * 2 + offers * 2 + 2;
    return PD_OK;
}

/* ------------------------------------------------------------- the heap */

static inline bool due_less(const pd__due_t *a, const pd__due_t *b) {
    return a->deadline_ms < b->deadline_ms ||
           (a->deadline_ms == b->deadline_ms && a->order_id < b->order_id);
}

static void due_push(pd_engine_t *e, int64_t deadline_ms, uint64_t order_id) {
    if (PD_NEVER(e->n_due >= e->cap_due)) return;
    size_t i = e->n_due++;
    pd__due_t x = {deadline_ms, order_id};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!due_less(&x, &e->due[p])) break;
        e->due[i] = e->due[p];
        i = p;
    }
    e->due[i] = x;
}

static pd__due_t due_pop(pd_engine_t *e) {
    pd__due_t top = e->due[0];
    pd__due_t x = e->due[--e->n_due];
    size_t n = e->n_due, i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const pd__due_t *best = &x;
        if (l < n && due_less(&e->due[l], best)) m = l, best = &e->due[l];
        if (r < n && due_less(&e->due[r], best)) m = r;
        if (m == i) break;
        e->due[i] = e->due[m];
        i = m;
    }
    if (n) e->due[i] = x;
    return top;
}

pd_err pd_engine_next_deadline(const pd_engine_t *e, int64_t *deadline_ms) {
    if (e->n_due == 0 || e->live_offers == 0) return PD_ERR_NOT_FOUND;
    *deadline_ms = e->due[0].deadline_ms;
    return PD_OK;
}

/* ------------------------------------------------------------ committing */

static void push_vol_event(pd_engine_t *e, pd_event_type t, const pd__order_t *o,
                           const pd__offer_t *en, pd_reason why, int64_t now_ms) {
    pd_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = (uint8_t)t;
    ev.order_state = o->state;
    ev.reason = (uint8_t)why;
    ev.has_volunteer = true;
    ev.slot = en->slot;
    ev.order_id = o->id;
    ev.volunteer_id = en->vol;
    ev.at_ms = now_ms;
    if (t == PD_EVENT_OFFERED) ev.deadline_ms = en->deadline_ms;
    pd__event_push(e, &ev);
}

static void push_order_event(pd_engine_t *e, pd_event_type t, const pd__order_t *o,
                             int64_t now_ms) {
    pd_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = (uint8_t)t;
    ev.order_state = o->state;
    ev.reason = o->reason;
    ev.order_id = o->id;
    ev.at_ms = now_ms;
    ev.rating = o->rating;
    ev.minutes = o->minutes_served;
    pd__event_push(e, &ev);
}

/* The volunteer's record, or NULL if they are gone. */
static pd__vrec_t *vol_rec(pd_engine_t *e, uint64_t vol, uint32_t *vslot) {
    if (pd_index_get_slot(e->ix, vol, vslot) != PD_OK) return NULL;
    if (PD_NEVER(*vslot >= e->recs_cap)) return NULL;
    return &e->recs[*vslot];
}

/* Give back one unit of a volunteer's capacity. */
static void release_unit(pd_engine_t *e, uint64_t vol, pd__vrec_t **rec_out) {
    uint32_t vslot;
    pd__vrec_t *r = vol_rec(e, vol, &vslot);
    if (rec_out) *rec_out = r;
    if (PD_NEVER(!r) || PD_NEVER(r->load == 0)) return;
    pd__set_load(e, vslot, (uint8_t)(r->load - 1));
}

/* Live offer en of o ends in state st (expired, declined, withdrawn). */
static void end_live(pd_engine_t *e, pd__order_t *o, pd__offer_t *en, pd_offer_state st,
                     pd_reason why) {
    en->state = (uint8_t)st;
    en->reason = (uint8_t)why;
    o->n_live--;
    e->live_offers--;
    pd__vrec_t *r;
    release_unit(e, en->vol, &r);
    if (!r) return;
    if (st == PD_OFFER_DECLINED) r->offers_declined++;
    if (st == PD_OFFER_EXPIRED) r->offers_expired++;
    if (st == PD_OFFER_WITHDRAWN) r->offers_withdrawn++;
}

void pd__commit_picks(pd_engine_t *e, pd__order_t *o, size_t from, int64_t now_ms) {
    if (from >= e->n_picks) return;
    int64_t deadline = now_ms + (int64_t)e->cfg.offer_timeout_s * 1000;
    if (o->state == PD_ORDER_CREATED) {
        pd__order_set_state(e, o, PD_ORDER_OFFERED);
        o->dispatched_ms = now_ms;
    }
    for (size_t i = from; i < e->n_picks; i++) {
        const pd__pick_t *p = &e->picks[i];
        if (PD_NEVER(o->n_ent >= o->cap_ent)) return;
        pd__offer_t *en = &o->ent[o->n_ent++];
        en->vol = p->vol;
        en->offered_ms = now_ms;
        en->deadline_ms = deadline;
        en->slot = (uint8_t)p->slot;
        en->state = PD_OFFER_LIVE;
        en->reason = PD_REASON_NONE;
        o->n_live++;
        o->n_offers++;
        e->live_offers++;
        e->offers_made++;
        pd__vrec_t *r = &e->recs[p->vslot];
        r->offers_received++;
        pd__set_load(e, p->vslot, (uint8_t)(r->load + 1));
        push_vol_event(e, PD_EVENT_OFFERED, o, en, PD_REASON_NONE, now_ms);
    }
    due_push(e, deadline, o->id);
}

void pd__order_close(pd_engine_t *e, pd__order_t *o, pd_order_state st, pd_reason why,
                     int64_t now_ms) {
    pd__order_set_state(e, o, st);
    o->reason = (uint8_t)why;
    o->closed_ms = now_ms;
    if (o->dispatched_ms == 0 && st == PD_ORDER_EXPIRED) o->dispatched_ms = now_ms;
    for (uint32_t i = 0; i < o->n_ent; i++) {
        pd__offer_t *en = &o->ent[i];
        if (en->state == PD_OFFER_LIVE) {
            end_live(e, o, en, PD_OFFER_WITHDRAWN, PD_REASON_ORDER_CLOSED);
            push_vol_event(e, PD_EVENT_OFFER_WITHDRAWN, o, en, PD_REASON_ORDER_CLOSED, now_ms);
        } else if (en->state == PD_OFFER_ACCEPTED) {
            en->state = PD_OFFER_RELEASED;
            en->reason = PD_REASON_ORDER_CLOSED;
            pd__vrec_t *r;
            release_unit(e, en->vol, &r);
            if (r && PD_ALWAYS(r->held > 0)) r->held--;
            push_vol_event(e, PD_EVENT_RELEASED, o, en, PD_REASON_ORDER_CLOSED, now_ms);
        }
    }
    pd__order_compact(e, o);
    push_order_event(e, st == PD_ORDER_EXPIRED ? PD_EVENT_EXPIRED : PD_EVENT_CANCELLED, o, now_ms);
}

/* Commit the plan in e->picks, or expire o (`if_short`) when the plan left
 * a slot with nobody (short_slot != NO_SLOT); the picks are used up. */
static void apply_plan(pd_engine_t *e, pd__order_t *o, uint32_t short_slot, pd_reason if_short,
                       int64_t now_ms) {
    if (short_slot != NO_SLOT) {
        pd__order_close(e, o, PD_ORDER_EXPIRED, if_short, now_ms);
    } else {
        pd__commit_picks(e, o, 0, now_ms);
    }
    e->n_picks = 0;
}

/* Re-plan o's open slots and commit, or expire o if a slot finds nobody.
 * Room must be reserved (pd__reserve_worst). */
static void refill(pd_engine_t *e, pd__order_t *o, int64_t now_ms, pd_reason if_short) {
    e->n_picks = 0;
    uint32_t short_slot = pd__plan_open_slots(e, o, pd__order_width(e, o), now_ms);
    apply_plan(e, o, short_slot, if_short, now_ms);
}

/* Room for committing a plan of n offers on o (its entries and deadline)
 * and for `events` events; on failure the plan's picks are dropped and
 * nothing has changed. */
static pd_err reserve_replan(pd_engine_t *e, pd__order_t *o, size_t n, size_t events) {
    pd_err err;
    if ((err = pd__reserve_entries(e, o, n)) || (err = pd__reserve_due(e, 1)) ||
        (err = pd__events_reserve(e, events)))
        e->n_picks = 0;
    return err;
}

/* ----------------------------------------------------------------- calls */

static pd_err find_open(pd_engine_t *e, uint64_t order_id, pd__order_t **out) {
    uint32_t pos;
    pd_err err = pd__order_find(e, order_id, &pos);
    if (err) return err;
    *out = &e->orders[pos];
    return PD_OK;
}

pd_err pd_engine_order_dispatch(pd_engine_t *e, uint64_t order_id, int64_t now_ms,
                                pd_order_state *state_out) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    pd__order_t *o;
    pd_err err = find_open(e, order_id, &o);
    if (err) return err;
    if (o->state != PD_ORDER_CREATED) return PD_ERR_ILLEGAL;
    e->n_picks = 0;
    uint32_t short_slot = pd__plan_open_slots(e, o, pd__order_width(e, o), now_ms);
    size_t n = short_slot == NO_SLOT ? e->n_picks : 0;
    if ((err = reserve_replan(e, o, n, n + close_events(o)))) return err;
    apply_plan(e, o, short_slot, PD_REASON_NO_CANDIDATE, now_ms);
    if (state_out) *state_out = (pd_order_state)o->state;
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_order_create_dispatch(pd_engine_t *e, const pd_order_spec_t *spec, int64_t now_ms,
                                       pd_order_state *state_out) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    pd_err err = pd__order_add(e, spec, now_ms);
    if (err) return err;
    err = pd_engine_order_dispatch(e, spec->id, now_ms, state_out);
    if (err) pd__order_drop_last(e);
    return err;
}

/* The live offer of `vol` on an offered order, checked for the deadline. */
static pd_err find_live(pd_engine_t *e, uint64_t order_id, uint64_t vol, int64_t now_ms,
                        pd__order_t **o_out, pd__offer_t **en_out) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    pd__order_t *o;
    pd_err err = find_open(e, order_id, &o);
    if (err) return err;
    uint32_t vslot;
    if ((err = pd_index_get_slot(e->ix, vol, &vslot))) return err;
    if (o->state != PD_ORDER_OFFERED) return PD_ERR_ILLEGAL;
    for (uint32_t i = 0; i < o->n_ent; i++) {
        pd__offer_t *en = &o->ent[i];
        if (en->vol != vol) continue;
        if (en->state != PD_OFFER_LIVE || en->deadline_ms <= now_ms) return PD_ERR_ILLEGAL;
        *o_out = o;
        *en_out = en;
        return PD_OK;
    }
    return PD_ERR_ILLEGAL;
}

pd_err pd_engine_order_accept(pd_engine_t *e, uint64_t order_id, uint64_t volunteer_id,
                              int64_t now_ms) {
    pd__order_t *o;
    pd__offer_t *en;
    pd_err err = find_live(e, order_id, volunteer_id, now_ms, &o, &en);
    if (err) return err;
    if ((err = pd__events_reserve(e, (size_t)o->n_live + 1))) return err;
    en->state = PD_OFFER_ACCEPTED;
    o->n_live--;
    e->live_offers--;
    o->n_filled++;
    uint32_t vslot;
    pd__vrec_t *r = vol_rec(e, volunteer_id, &vslot);
    if (PD_ALWAYS(r)) {
        r->held++;
        r->offers_accepted++;
    }
    if (o->n_filled == o->n_slots) {
        pd__order_set_state(e, o, PD_ORDER_ACCEPTED);
        o->accepted_ms = now_ms;
    }
    push_vol_event(e, PD_EVENT_ACCEPTED, o, en, PD_REASON_NONE, now_ms);
    /* First accept wins the slot: the slot's other live offers go. */
    for (uint32_t i = 0; i < o->n_ent; i++) {
        pd__offer_t *x = &o->ent[i];
        if (x->state != PD_OFFER_LIVE || x->slot != en->slot) continue;
        end_live(e, o, x, PD_OFFER_WITHDRAWN, PD_REASON_GRAB_LOST);
        push_vol_event(e, PD_EVENT_OFFER_WITHDRAWN, o, x, PD_REASON_GRAB_LOST, now_ms);
    }
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_order_decline(pd_engine_t *e, uint64_t order_id, uint64_t volunteer_id,
                               int64_t now_ms) {
    pd__order_t *o;
    pd__offer_t *en;
    pd_err err = find_live(e, order_id, volunteer_id, now_ms, &o, &en);
    if (err) return err;
    /* Plan as if the offer were gone: the slot needs a new candidate only
     * when no other live offer covers it. The decliner is excluded (entry). */
    bool others = false;
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *x = &o->ent[i];
        if (x != en && x->state == PD_OFFER_LIVE && x->slot == en->slot) others = true;
    }
    e->n_picks = 0;
    uint32_t short_slot = NO_SLOT;
    if (!others) {
        uint8_t saved = en->state;
        en->state = PD_OFFER_DECLINED; /* seen as not live while planning */
        short_slot = pd__plan_open_slots(e, o, pd__order_width(e, o), now_ms);
        en->state = saved;
    }
    size_t n = short_slot == NO_SLOT ? e->n_picks : 0;
    size_t at = (size_t)(en - o->ent); /* reserving may move the entries */
    if ((err = reserve_replan(e, o, n, 1 + n + close_events(o)))) return err;
    en = &o->ent[at];
    end_live(e, o, en, PD_OFFER_DECLINED, PD_REASON_NONE);
    push_vol_event(e, PD_EVENT_DECLINED, o, en, PD_REASON_NONE, now_ms);
    apply_plan(e, o, short_slot, PD_REASON_EXHAUSTED, now_ms);
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_order_release(pd_engine_t *e, uint64_t order_id, uint64_t volunteer_id,
                               int64_t now_ms) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    pd__order_t *o;
    pd_err err = find_open(e, order_id, &o);
    if (err) return err;
    uint32_t vslot;
    if ((err = pd_index_get_slot(e->ix, volunteer_id, &vslot))) return err;
    if (o->state != PD_ORDER_OFFERED && o->state != PD_ORDER_ACCEPTED) return PD_ERR_ILLEGAL;
    pd__offer_t *en = NULL;
    for (uint32_t i = 0; i < o->n_ent && !en; i++)
        if (o->ent[i].vol == volunteer_id && o->ent[i].state == PD_OFFER_ACCEPTED) en = &o->ent[i];
    if (!en) return PD_ERR_ILLEGAL;
    /* Plan the slot as if it were open again (accepting withdrew its other
     * offers). The volunteer keeps an entry, so is not asked again. */
    e->n_picks = 0;
    en->state = PD_OFFER_RELEASED;
    uint32_t short_slot = pd__plan_open_slots(e, o, pd__order_width(e, o), now_ms);
    en->state = PD_OFFER_ACCEPTED;
    size_t n = short_slot == NO_SLOT ? e->n_picks : 0;
    size_t at = (size_t)(en - o->ent); /* reserving may move the entries */
    if ((err = reserve_replan(e, o, n, 1 + n + close_events(o)))) return err;
    en = &o->ent[at];
    en->state = PD_OFFER_RELEASED;
    en->reason = PD_REASON_WITHDREW;
    o->n_filled--;
    pd__vrec_t *r;
    release_unit(e, volunteer_id, &r);
    if (PD_ALWAYS(r)) {
        if (PD_ALWAYS(r->held > 0)) r->held--;
        if (r->releases < UINT16_MAX) r->releases++;
    }
    if (o->state == PD_ORDER_ACCEPTED) {
        pd__order_set_state(e, o, PD_ORDER_OFFERED);
        o->accepted_ms = 0; /* set again when the slot is taken */
    }
    push_vol_event(e, PD_EVENT_RELEASED, o, en, PD_REASON_WITHDREW, now_ms);
    apply_plan(e, o, short_slot, PD_REASON_EXHAUSTED, now_ms);
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_order_cancel(pd_engine_t *e, uint64_t order_id, int64_t now_ms) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    pd__order_t *o;
    pd_err err = find_open(e, order_id, &o);
    if (err) return err;
    if (!pd__order_is_open(o)) return PD_ERR_ILLEGAL;
    if ((err = pd__events_reserve(e, close_events(o)))) return err;
    pd__order_close(e, o, PD_ORDER_CANCELLED, PD_REASON_CANCELLED, now_ms);
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_order_complete(pd_engine_t *e, uint64_t order_id, int32_t minutes_served,
                                int64_t now_ms) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    pd__order_t *o;
    pd_err err = find_open(e, order_id, &o);
    if (err) return err;
    if (minutes_served < -1 || minutes_served > PD_MAX_MINUTES_SERVED) return PD_ERR_BAD_ARG;
    if (o->state != PD_ORDER_ACCEPTED) return PD_ERR_ILLEGAL;
    if ((err = pd__events_reserve(e, 1))) return err;
    uint32_t m = minutes_served < 0 ? (uint32_t)o->duration_min : (uint32_t)minutes_served;
    int64_t day = pd_time_to_local_day(now_ms, e->cfg.utc_offset_min);
    for (uint32_t i = 0; i < o->n_ent; i++) {
        pd__offer_t *en = &o->ent[i];
        if (en->state != PD_OFFER_ACCEPTED) continue;
        pd__vrec_t *r;
        release_unit(e, en->vol, &r);
        if (PD_NEVER(!r)) continue;
        if (PD_ALWAYS(r->held > 0)) r->held--;
        r->minutes_total = r->minutes_total > UINT32_MAX - m ? UINT32_MAX : r->minutes_total + m;
        pd__vrec_add_minutes(r, day, m);
        pd_index_set_mark(e->ix, (uint32_t)(r - e->recs), pd__vrec_mark(r));
        r->orders_completed++;
        r->last_served_ms = now_ms;
    }
    pd__order_set_state(e, o, PD_ORDER_COMPLETED);
    o->minutes_served = m;
    o->closed_ms = now_ms;
    pd__order_compact(e, o);
    push_order_event(e, PD_EVENT_COMPLETED, o, now_ms);
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_order_rate(pd_engine_t *e, uint64_t order_id, int rating, int64_t now_ms) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    pd__order_t *o;
    pd_err err = find_open(e, order_id, &o);
    if (err) return err;
    if (rating < 1 || rating > 5) return PD_ERR_BAD_ARG;
    if (o->state != PD_ORDER_COMPLETED) return PD_ERR_ILLEGAL;
    if ((err = pd__events_reserve(e, 1))) return err;
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *en = &o->ent[i];
        if (en->state != PD_OFFER_ACCEPTED) continue;
        uint32_t vslot;
        pd__vrec_t *r = vol_rec(e, en->vol, &vslot);
        if (!r) continue; /* removed since */
        r->rating_count++;
        r->rating_sum += (uint32_t)rating;
    }
    pd__order_set_state(e, o, PD_ORDER_RATED);
    o->rating = (uint8_t)rating;
    o->rated_ms = now_ms;
    push_order_event(e, PD_EVENT_RATED, o, now_ms);
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_order_candidates(const pd_engine_t *e, uint64_t order_id, uint32_t slot,
                                  int64_t now_ms, size_t k, pd_hit_t *out, size_t *n_out) {
    uint32_t pos;
    pd_err err = pd__order_find(e, order_id, &pos);
    if (err) return err;
    const pd__order_t *o = &e->orders[pos];
    if (slot >= o->n_slots || k == 0) return PD_ERR_BAD_ARG;
    pd_week_t need = pd__order_need(e, o);
    pd__hookctx_t ctx = {e, o, NULL, 0, pd_time_to_local_day(now_ms, e->cfg.utc_offset_min)};
    pd_query_t q;
    pd__slot_query(o, slot, &need, &ctx, &q);
    return pd_index_nearest(e->ix, &q, k, out, n_out);
}

/* ------------------------------------------------------------------ tick */

typedef struct due_order_s {
    uint32_t pos;
    uint8_t priority;
    int64_t first_due;
    uint64_t id;
} due_order_t;

static int cmp_due_id(const void *a, const void *b) {
    const pd__due_t *x = a, *y = b;
    if (x->order_id != y->order_id) return x->order_id < y->order_id ? -1 : 1;
    return x->deadline_ms < y->deadline_ms ? -1 : x->deadline_ms > y->deadline_ms;
}

static int cmp_due_order(const void *a, const void *b) {
    const due_order_t *x = a, *y = b;
    if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
    if (x->first_due != y->first_due) return x->first_due < y->first_due ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

pd_err pd_engine_tick(pd_engine_t *e, int64_t now_ms, size_t *n_expired) {
    if (n_expired) *n_expired = 0;
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    if (e->n_due == 0 || e->due[0].deadline_ms > now_ms) return PD_OK;
    /* Pop every due entry into scratch; a failed reserve pushes them back
     * (the heap keeps its capacity, so that cannot fail). */
    pd_err err = pd__grow((void **)&e->tick_due, &e->cap_tick_due, e->n_due, sizeof(pd__due_t));
    if (err) return err;
    err = pd__grow((void **)&e->tick_orders, &e->cap_tick_orders, e->n_due, sizeof(due_order_t));
    if (err) return err;
    pd__due_t *popped = e->tick_due;
    size_t n_pop = 0;
    while (e->n_due && e->due[0].deadline_ms <= now_ms) popped[n_pop++] = due_pop(e);
    pd__sort(popped, n_pop, sizeof *popped, cmp_due_id);
    due_order_t *list = e->tick_orders;
    size_t n_list = 0;
    for (size_t i = 0; i < n_pop; i++) {
        if (i && popped[i].order_id == popped[i - 1].order_id) continue;
        uint32_t pos;
        if (pd__order_find(e, popped[i].order_id, &pos) != PD_OK) continue;
        const pd__order_t *o = &e->orders[pos];
        if (o->state != PD_ORDER_OFFERED) continue;
        int64_t first = INT64_MAX;
        for (uint32_t j = 0; j < o->n_ent; j++) {
            const pd__offer_t *en = &o->ent[j];
            if (en->state == PD_OFFER_LIVE && en->deadline_ms <= now_ms &&
                en->deadline_ms < first) {
                first = en->deadline_ms;
            }
        }
        if (first == INT64_MAX) continue; /* stale: answered since */
        list[n_list].pos = pos;
        list[n_list].priority = o->priority;
        list[n_list].first_due = first;
        list[n_list].id = o->id;
        n_list++;
    }
    pd__sort(list, n_list, sizeof *list, cmp_due_order);

    /* Reserve the worst case for every listed order. */
    size_t events = 0;
    for (size_t i = 0; i < n_list && !err; i++) {
        err = pd__reserve_worst(e, &e->orders[list[i].pos], &events);
    }
    if (!err) err = pd__reserve_due(e, n_list);
    if (!err) err = pd__events_reserve(e, events);
    if (err) {
        for (size_t i = 0; i < n_pop; i++) due_push(e, popped[i].deadline_ms, popped[i].order_id);
        return err;
    }

    /* Every due offer expires before any order is refilled, so a volunteer
     * freed by this tick is free for the most urgent order, whichever
     * order held them. */
    size_t expired = 0;
    for (size_t i = 0; i < n_list; i++) {
        pd__order_t *o = &e->orders[list[i].pos];
        for (uint32_t j = 0; j < o->n_ent; j++) {
            pd__offer_t *en = &o->ent[j];
            if (en->state != PD_OFFER_LIVE || en->deadline_ms > now_ms) continue;
            end_live(e, o, en, PD_OFFER_EXPIRED, PD_REASON_NONE);
            push_vol_event(e, PD_EVENT_OFFER_EXPIRED, o, en, PD_REASON_NONE, now_ms);
            expired++;
        }
    }
    for (size_t i = 0; i < n_list; i++)
        refill(e, &e->orders[list[i].pos], now_ms, PD_REASON_EXHAUSTED);
    if (n_expired) *n_expired = expired;
    pd__events_flush(e);
    return PD_OK;
}

/* ------------------------------------------------------ volunteer removal */

pd_err pd__withdraw_volunteer(pd_engine_t *e, uint64_t vol, int64_t now_ms) {
    /* The orders holding a live offer of vol, in creation order. */
    size_t n = 0;
    pd_err err = pd__grow((void **)&e->scratch_u32, &e->cap_scratch_u32,
                          e->by_state[PD_ORDER_OFFERED], sizeof(uint32_t));
    if (err) return err;
    for (uint32_t i = 0; i < e->n_orders; i++) {
        const pd__order_t *o = &e->orders[i];
        if (o->state != PD_ORDER_OFFERED) continue;
        for (uint32_t j = 0; j < o->n_ent; j++) {
            if (o->ent[j].vol == vol && o->ent[j].state == PD_OFFER_LIVE) {
                if (PD_ALWAYS(n < e->cap_scratch_u32)) e->scratch_u32[n++] = i;
                break;
            }
        }
    }
    size_t events = 0;
    for (size_t i = 0; i < n && !err; i++) {
        err = pd__reserve_worst(e, &e->orders[e->scratch_u32[i]], &events);
    }
    if (!err) err = pd__reserve_due(e, n);
    if (!err) err = pd__events_reserve(e, events);
    if (err) return err;
    for (size_t i = 0; i < n; i++) {
        pd__order_t *o = &e->orders[e->scratch_u32[i]];
        for (uint32_t j = 0; j < o->n_ent; j++) {
            pd__offer_t *en = &o->ent[j];
            if (en->vol != vol || en->state != PD_OFFER_LIVE) continue;
            end_live(e, o, en, PD_OFFER_WITHDRAWN, PD_REASON_VOLUNTEER_REMOVED);
            push_vol_event(e, PD_EVENT_OFFER_WITHDRAWN, o, en, PD_REASON_VOLUNTEER_REMOVED, now_ms);
        }
        refill(e, o, now_ms, PD_REASON_EXHAUSTED);
    }
    return PD_OK;
}
