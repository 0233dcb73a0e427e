/* mobilise.c -- mobilisation (一呼百应): everyone qualified within reach.
 *
 * One pd_index_within query with no hook, so results are ranked by ETA
 * alone (ties by id) and the total counts every qualified volunteer, not
 * only the `limit` returned. Marking them notified is the one change this
 * call makes: a counter and a timestamp on each returned volunteer's record.
 */
#include "engine_int.h"

#include <string.h>

pd_err pd_engine_mobilise(pd_engine_t *e, const pd_mobilise_t *req, int64_t now_ms, pd_hit_t *out,
                          size_t limit, size_t *n_out, size_t *total) {
    if (!req || (limit && !out)) return PD_ERR_BAD_ARG;
    /* Only marking writes: an event callback may read, mobilisations
     * included, but not mutate (the events it is handed would go stale). */
    if (e->delivering && req->mark_notified) return PD_ERR_ILLEGAL;
    /* Marking stores now_ms on the records: a time like any other call's. */
    if (req->mark_notified && !pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    uint32_t ns = e->cfg.n_skills;
    if (ns < 64 && (req->skills >> ns)) return PD_ERR_UNKNOWN_SKILL;
    pd_query_t q;
    memset(&q, 0, sizeof q);
    q.at = req->at;
    q.skills = req->skills;
    q.tags = req->tags;
    q.budget_s = req->budget_s;
    q.radius_m = req->radius_m;
    q.include_unavailable = req->include_unavailable;
    if (req->check_schedule) {
        pd_err err = pd_engine_week_window(e, req->start_ms, req->duration_min, &q.need);
        if (err) return err;
    }
    size_t n = 0, tot = 0;
    /* The index gets a real buffer even when only counting. */
    pd_err err = pd_index_within(e->ix, &q, limit, limit ? out : e->hits, &n, &tot);
    if (err) return err;
    if (req->mark_notified) {
        for (size_t i = 0; i < n; i++) {
            if (PD_NEVER(out[i].slot >= e->recs_cap)) continue;
            pd__vrec_t *r = &e->recs[out[i].slot];
            r->notified_count++;
            r->last_notified_ms = now_ms;
        }
    }
    if (n_out) *n_out = n;
    if (total) *total = tot;
    return PD_OK;
}
