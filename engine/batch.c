/* batch.c -- batch dispatch: assign a set of created orders at once.
 *
 * 1. Candidate graph: for every slot of every order, the k best candidates
 *    by the policy (pd_index_nearest with the policy hook); consecutive
 *    slots of one order with the same skills share one query. Each pair
 *    scores, in integer milliseconds,
 *        bonus_s[priority] + budget_s + policy_bound_s - policy_score_s,
 *    at least 1, where budget_s is the largest ETA budget of the batch's
 *    orders (the same for every pair, so a longer budget buys an order
 *    nothing), so the score falls as ETA and load rise, every qualified
 *    pair is worth taking, and a priority bonus lifts special-group and
 *    emergency orders above normal ones.
 * 2. Solve: optimal (assign.c, min-cost flow) and greedy, on the same
 *    graph, with each volunteer's free capacity (capacity - load).
 * 3. Apply (optional), in two phases so the assignment's capacity is never
 *    taken by something else first: (a) every order the assignment fills
 *    whole gets one offer per slot to its volunteers, orders by priority
 *    then request order; (b) every other order (unassigned, or a team the
 *    assignment filled only in part) is dispatched as usual, all its slots
 *    or none, in the same order, and one with a slot nobody can take
 *    expires (reason no_candidate). No order holds a volunteer it cannot
 *    use, so nothing an expiry frees is lost to an order dispatched
 *    before it. Room for the worst case is reserved before (a).
 */
#include "engine_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "paidan/alloc.h"

typedef struct vkey_s {
    uint64_t id;
    uint32_t vslot;
} vkey_t;

typedef struct batch_ws_s {
    pd__aws_t aws;
    uint32_t *opos; /* order positions in the batch */
    size_t cap_opos;
    uint32_t *sorted; /* scratch: sorted positions / apply order */
    size_t cap_sorted;
    uint32_t *slot_group; /* per slot: index into opos */
    size_t cap_slot_group;
    uint32_t *slot_idx; /* per slot: slot number inside its order */
    size_t cap_slot_idx;
    pd__aedge_t *edges;
    size_t cap_edges;
    uint32_t *edge_vslot; /* per edge: index slot of the volunteer */
    size_t cap_edge_vslot;
    uint64_t *edge_vid; /* per edge: volunteer id */
    size_t cap_edge_vid;
    vkey_t *vols; /* distinct volunteers, by id */
    size_t cap_vols;
    uint32_t *vol_cap;
    size_t cap_vol_cap;
    uint32_t *choice_opt;
    size_t cap_choice_opt;
    uint32_t *choice_greedy;
    size_t cap_choice_greedy;
    size_t *first; /* apply: first slot of each order */
    size_t cap_first;
} batch_ws_t;

void pd__batch_free(pd_engine_t *e) {
    batch_ws_t *w = e->batch;
    if (!w) return;
    pd__aws_deinit(&w->aws);
    pd_free(w->opos);
    pd_free(w->sorted);
    pd_free(w->slot_group);
    pd_free(w->slot_idx);
    pd_free(w->edges);
    pd_free(w->edge_vslot);
    pd_free(w->edge_vid);
    pd_free(w->vols);
    pd_free(w->vol_cap);
    pd_free(w->choice_opt);
    pd_free(w->choice_greedy);
    pd_free(w->first);
    pd_free(w);
    e->batch = NULL;
}

size_t pd__batch_memory(const pd_engine_t *e) {
    const batch_ws_t *w = e->batch;
    if (!w) return 0;
    return sizeof *w + w->aws.cap +
           (w->cap_opos + w->cap_sorted + w->cap_slot_group + w->cap_slot_idx + w->cap_edge_vslot +
            w->cap_vol_cap + w->cap_choice_opt + w->cap_choice_greedy) *
               sizeof(uint32_t) +
           w->cap_edges * sizeof(pd__aedge_t) + w->cap_edge_vid * sizeof(uint64_t) +
           w->cap_vols * sizeof(vkey_t) + w->cap_first * sizeof(size_t);
}

#define GROW(w, field, need) \
    pd__grow((void **)&(w)->field, &(w)->cap_##field, (need), sizeof *(w)->field)

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Name the order that refuses the batch (res->refused_id); returns err. */
static pd_err refuse(pd_batch_result_t *res, uint64_t id, pd_err err) {
    res->refused = true;
    res->refused_id = id;
    return err;
}

/* The batch's order positions into w->opos, checked. */
static pd_err collect_orders(pd_engine_t *e, batch_ws_t *w, const pd_batch_req_t *req,
                             size_t *n_out, pd_batch_result_t *res) {
    size_t n = 0;
    pd_err err;
    if (!req->order_ids) {
        if ((err = GROW(w, opos, e->by_state[PD_ORDER_CREATED]))) return err;
        for (uint32_t i = 0; i < e->n_orders; i++) {
            if (e->orders[i].state == PD_ORDER_CREATED) w->opos[n++] = i;
        }
        *n_out = n;
        return PD_OK;
    }
    if ((err = GROW(w, opos, req->n_orders)) || (err = GROW(w, sorted, req->n_orders))) {
        return err;
    }
    for (size_t i = 0; i < req->n_orders; i++) {
        uint32_t pos;
        if ((err = pd__order_find(e, req->order_ids[i], &pos)))
            return refuse(res, req->order_ids[i], err);
        if (e->orders[pos].state != PD_ORDER_CREATED)
            return refuse(res, req->order_ids[i], PD_ERR_ILLEGAL);
        w->opos[n++] = pos;
    }
    if (n) memcpy(w->sorted, w->opos, n * sizeof *w->sorted);
    pd__sort(w->sorted, n, sizeof *w->sorted, cmp_u32);
    for (size_t i = 1; i < n; i++) {
        if (w->sorted[i] == w->sorted[i - 1])
            return refuse(res, e->orders[w->sorted[i]].id, PD_ERR_BAD_ARG);
    }
    *n_out = n;
    return PD_OK;
}

/* base_s is the largest ETA budget of the batch's orders, not the order's
 * own: with its own, an order with a longer budget would outscore, for the
 * same volunteer at the same ETA, an order of higher priority. */
static int64_t pair_score_ms(const pd_engine_t *e, const pd__order_t *o, int32_t base_s,
                             double score_s) {
    double s = (double)e->cfg.batch_bonus_s[o->priority] + base_s + e->policy_bound_s - score_s;
    int64_t ms = (int64_t)llround(s * 1000.0);
    return ms < 1 ? 1 : ms;
}

/* Build the candidate graph: slots, edges (vol = index slot for now). */
static pd_err build_graph(pd_engine_t *e, batch_ws_t *w, size_t n_orders, uint32_t k,
                          int64_t now_ms, size_t *ns_out, size_t *ne_out) {
    size_t ns = 0;
    int32_t base_s = 0;
    for (size_t g = 0; g < n_orders; g++) {
        const pd__order_t *o = &e->orders[w->opos[g]];
        ns += o->n_slots;
        if (o->budget_s > base_s) base_s = o->budget_s;
    }
    pd_err err;
    if ((err = GROW(w, slot_group, ns)) || (err = GROW(w, slot_idx, ns)) ||
        (err = GROW(w, choice_opt, ns)) || (err = GROW(w, choice_greedy, ns))) {
        return err;
    }
    int64_t day = pd_time_to_local_day(now_ms, e->cfg.utc_offset_min);
    size_t s = 0, ne = 0;
    for (size_t g = 0; g < n_orders; g++) {
        const pd__order_t *o = &e->orders[w->opos[g]];
        pd_week_t need = pd__order_need(e, o);
        pd__hookctx_t ctx = {e, o, NULL, 0, day};
        size_t prev_from = 0, prev_n = 0;
        for (uint32_t j = 0; j < o->n_slots; j++, s++) {
            w->slot_group[s] = (uint32_t)g;
            w->slot_idx[s] = j;
            /* The edges grow with the candidates found, not by slots x k
             * up front (a thousand 32-person teams at k = 64 reserved
             * 57 MB, found or not). */
            size_t from = ne;
            if ((err = GROW(w, edges, ne + k)) || (err = GROW(w, edge_vslot, ne + k)) ||
                (err = GROW(w, edge_vid, ne + k))) {
                return err;
            }
            if (j && pd__order_slot_skills(o, j) == pd__order_slot_skills(o, j - 1)) {
                for (size_t i = 0; i < prev_n; i++, ne++) {
                    w->edges[ne] = w->edges[prev_from + i];
                    w->edges[ne].slot = (uint32_t)s;
                    w->edge_vslot[ne] = w->edge_vslot[prev_from + i];
                    w->edge_vid[ne] = w->edge_vid[prev_from + i];
                }
            } else {
                pd_query_t q;
                pd__slot_query(o, j, &need, &ctx, &q);
                size_t n = 0;
                err = pd_index_nearest(e->ix, &q, k, e->hits, &n);
                if (PD_NEVER(err)) n = 0;
                for (size_t i = 0; i < n; i++, ne++) {
                    w->edges[ne].slot = (uint32_t)s;
                    w->edges[ne].vol = e->hits[i].slot;
                    w->edges[ne].score = pair_score_ms(e, o, base_s, e->hits[i].score);
                    w->edge_vslot[ne] = e->hits[i].slot;
                    w->edge_vid[ne] = e->hits[i].id;
                }
            }
            prev_from = from;
            prev_n = ne - from;
        }
    }
    *ns_out = ns;
    *ne_out = ne;
    return PD_OK;
}

/* Distinct volunteers -> 0..n_vols-1 in id order (not slot order, which
 * depends on history: ties must break the same way in equivalent states),
 * with their free capacities. */
static int cmp_vid(const void *a, const void *b) {
    const vkey_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static pd_err number_vols(pd_engine_t *e, batch_ws_t *w, size_t ne, size_t *nv_out) {
    pd_err err;
    if ((err = GROW(w, vols, ne)) || (err = GROW(w, vol_cap, ne))) return err;
    for (size_t i = 0; i < ne; i++) {
        w->vols[i].id = w->edge_vid[i];
        w->vols[i].vslot = w->edge_vslot[i];
    }
    pd__sort(w->vols, ne, sizeof *w->vols, cmp_vid);
    size_t nv = 0;
    for (size_t i = 0; i < ne; i++) {
        if (nv == 0 || w->vols[nv - 1].id != w->vols[i].id) w->vols[nv++] = w->vols[i];
    }
    for (size_t i = 0; i < nv; i++) {
        const pd__vrec_t *r = &e->recs[w->vols[i].vslot];
        w->vol_cap[i] = r->capacity > r->load ? (uint32_t)(r->capacity - r->load) : 0;
    }
    for (size_t i = 0; i < ne; i++) {
        vkey_t key = {w->edge_vid[i], 0};
        const vkey_t *hit = nv ? bsearch(&key, w->vols, nv, sizeof *w->vols, cmp_vid) : NULL;
        w->edges[i].vol = PD_ALWAYS(hit != NULL) ? (uint32_t)(hit - w->vols) : 0;
    }
    *nv_out = nv;
    return PD_OK;
}

static size_t write_pairs(const pd_engine_t *e, const batch_ws_t *w, const uint32_t *choice,
                          size_t ns, pd_batch_pair_t *out) {
    size_t n = 0;
    for (size_t s = 0; s < ns; s++) {
        uint32_t ei = choice[s];
        if (ei == PD__NO_EDGE) continue;
        if (out) {
            out[n].order_id = e->orders[w->opos[w->slot_group[s]]].id;
            out[n].slot = w->slot_idx[s];
            out[n].volunteer_id = w->edge_vid[ei];
            out[n].score_ms = w->edges[ei].score;
        }
        n++;
    }
    return n;
}

/* Apply order: priority (highest first), then position in the request,
 * packed in one sortable key. */
#define GROUP_BITS 28
static inline uint32_t apply_key(uint8_t priority, size_t g) {
    return (uint32_t)(PD_PRIORITY__COUNT - 1 - priority) << GROUP_BITS | (uint32_t)g;
}

/* Offer o's open slots as a dispatch would; false (and nothing changed)
 * when a slot has nobody. */
static bool dispatch_open(pd_engine_t *e, pd__order_t *o, int64_t now_ms) {
    e->n_picks = 0;
    if (pd__plan_open_slots(e, o, pd__order_width(e, o), now_ms) != PD__NO_SLOT) return false;
    pd__commit_picks(e, o, 0, now_ms);
    return true;
}

/* Whether the assignment gives every slot of order g a volunteer. */
static bool filled_whole(const batch_ws_t *w, const uint32_t *choice, size_t g) {
    for (size_t s = w->first[g]; s < w->first[g + 1]; s++) {
        if (choice[s] == PD__NO_EDGE) return false;
    }
    return true;
}

static pd_err apply(pd_engine_t *e, batch_ws_t *w, const uint32_t *choice, size_t n_orders,
                    int64_t now_ms, pd_batch_result_t *res) {
    if (n_orders >= ((size_t)1 << GROUP_BITS)) return PD_ERR_LIMIT;
    pd_err err;
    if ((err = GROW(w, sorted, n_orders)) || (err = GROW(w, first, n_orders + 1))) return err;
    size_t events = 0;
    w->first[0] = 0;
    for (size_t g = 0; g < n_orders; g++) {
        pd__order_t *o = &e->orders[w->opos[g]];
        size_t more = (size_t)o->n_slots * (pd__order_width(e, o) + 1);
        if ((err = pd__reserve_entries(e, o, more))) return err;
        events += more * 2 + 2;
        w->sorted[g] = apply_key(o->priority, g);
        w->first[g + 1] = w->first[g] + o->n_slots;
    }
    if ((err = pd__reserve_due(e, 2 * n_orders)) || (err = pd__events_reserve(e, events))) {
        return err;
    }
    pd__sort(w->sorted, n_orders, sizeof *w->sorted, cmp_u32);
    const uint32_t gmask = ((uint32_t)1 << GROUP_BITS) - 1;

    /* (a) the assignment's offers, to the orders it fills whole. */
    for (size_t i = 0; i < n_orders; i++) {
        size_t g = w->sorted[i] & gmask;
        pd__order_t *o = &e->orders[w->opos[g]];
        if (!filled_whole(w, choice, g)) continue;
        e->n_picks = 0;
        for (size_t s = w->first[g]; s < w->first[g + 1]; s++) {
            uint32_t ei = choice[s];
            pd__pick_t *p = &e->picks[e->n_picks++];
            p->vol = w->edge_vid[ei];
            p->vslot = w->edge_vslot[ei];
            p->slot = w->slot_idx[s];
        }
        pd__commit_picks(e, o, 0, now_ms);
    }
    /* (b) every other order as a normal dispatch of all its slots, in the
     * same order: whole, or (holding no offer) expired at once. A team the
     * assignment filled only in part holds nobody meanwhile, so two such
     * teams cannot block each other into both expiring. */
    for (size_t i = 0; i < n_orders; i++) {
        uint32_t g = w->sorted[i] & gmask;
        pd__order_t *o = &e->orders[w->opos[g]];
        res->n_dispatched++;
        if (filled_whole(w, choice, g) || dispatch_open(e, o, now_ms)) continue;
        pd__order_close(e, o, PD_ORDER_EXPIRED, PD_REASON_NO_CANDIDATE, now_ms);
        res->n_expired++;
    }
    e->n_picks = 0;
    return PD_OK;
}

pd_err pd_engine_batch(pd_engine_t *e, const pd_batch_req_t *req, int64_t now_ms,
                       pd_batch_result_t *res) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!req || !res) return PD_ERR_BAD_ARG;
    res->refused = false;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG; /* offers' deadlines */
    if (req->apply > PD_BATCH_APPLY_GREEDY) return PD_ERR_BAD_ARG;
    uint32_t k = req->k ? req->k : e->cfg.batch_k;
    if (k > PD_MAX_BATCH_K) return PD_ERR_BAD_ARG;
    if (!req->order_ids && req->n_orders) return PD_ERR_BAD_ARG;
    if (!e->batch) {
        e->batch = pd_calloc(1, sizeof(batch_ws_t));
        if (!e->batch) return PD_ERR_NOMEM;
    }
    batch_ws_t *w = e->batch;
    size_t n_orders, ns, ne, nv;
    pd_err err;
    if ((err = collect_orders(e, w, req, &n_orders, res))) return err;
    /* Bound the graph before building it: the solver's time grows faster
     * than its size where orders crowd the same volunteers. */
    uint64_t slots = 0;
    for (size_t g = 0; g < n_orders; g++) slots += e->orders[w->opos[g]].n_slots;
    if (slots * k > PD_MAX_BATCH_PAIRS) return PD_ERR_LIMIT;
    if ((err = build_graph(e, w, n_orders, k, now_ms, &ns, &ne))) return err;
    if ((err = number_vols(e, w, ne, &nv))) return err;
    if (ns > UINT32_MAX || ne > UINT32_MAX) return PD_ERR_LIMIT;
    pd__aprob_t prob = {(uint32_t)ns, w->slot_group, (uint32_t)nv,
                        w->vol_cap,   (uint32_t)ne,  w->edges};
    pd_batch_result_t r;
    memset(&r, 0, sizeof r);
    r.n_orders = n_orders;
    r.n_slots = ns;
    r.n_edges = ne;
    if ((err = pd__assign_optimal(&w->aws, &prob, w->choice_opt, &r.optimal_score_ms))) {
        return err;
    }
    if ((err = pd__assign_greedy(&w->aws, &prob, w->choice_greedy, &r.greedy_score_ms))) {
        return err;
    }
    r.optimal_n = write_pairs(e, w, w->choice_opt, ns, NULL);
    r.greedy_n = write_pairs(e, w, w->choice_greedy, ns, NULL);
    if (req->optimal && r.optimal_n > req->optimal_cap) return PD_ERR_BOUNDS;
    if (req->greedy && r.greedy_n > req->greedy_cap) return PD_ERR_BOUNDS;
    if (req->apply != PD_BATCH_APPLY_NONE) {
        const uint32_t *choice =
            req->apply == PD_BATCH_APPLY_OPTIMAL ? w->choice_opt : w->choice_greedy;
        if ((err = apply(e, w, choice, n_orders, now_ms, &r))) return err;
    }
    if (req->optimal) write_pairs(e, w, w->choice_opt, ns, req->optimal);
    if (req->greedy) write_pairs(e, w, w->choice_greedy, ns, req->greedy);
    *res = r;
    pd__events_flush(e);
    return PD_OK;
}
