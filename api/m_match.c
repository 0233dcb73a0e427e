/* m_match.c -- match.nearby and match.mobilize.
 *
 * match.nearby is the hot read: the k best qualified volunteers for a
 * place, time window and skill set. By default it ranks by ETA (policy
 * `nearest`), a plain index query; `balanced` and `rated` pass the
 * engine's own ranking (pd_engine_policy_score, by index slot) through
 * the index's score hook, as dispatch does.
 *
 * match.mobilize is the emergency call (一呼百应): every qualified volunteer
 * in a radius or time budget, thousands at a time, nearest first.
 */
#include <string.h>

#include "args.h"
#include "methods.h"
#include "view.h"

#define NEARBY_MAX_K 1000
#define MOBILIZE_MAX_LIMIT 100000
#define MOBILIZE_DEFAULT_LIMIT 1000

typedef struct policy_ctx_s {
    const pd_engine_t *e;
    pd_policy policy;
    int64_t now_ms;
} policy_ctx_t;

/* The index's score hook for balanced / rated: the engine's own ranking,
 * by the slot the index hands over. */
static bool policy_score(void *ud, uint32_t slot, uint64_t id, uint16_t mark, double eta_s,
                         double distance_m, double *score) {
    (void)id;
    (void)mark;
    (void)distance_m;
    const policy_ctx_t *pc = ud;
    return pd_engine_policy_score(pc->e, pc->policy, slot, pc->now_ms, eta_s, score) == PD_OK;
}

/* The hours a [start, start + duration) window needs, unless ignored.
 * Without default_now (match.mobilize) there is no window unless `start`
 * or `duration_min` is given; given either, the other takes its default. */
static pd_err window_or_reply(pd_conn_t *c, const msgpack_object *p, pd_week_t *need,
                              bool default_now) {
    const pd_engine_t *e = c->srv->engine;
    bool ignore;
    int64_t start, dur;
    if (pd_arg_opt_bool_or_reply(c, p, "ignore_schedule", false, &ignore)) return PD_ERR_BAD_ARG;
    if (pd_arg_opt_i64_or_reply(c, p, "start", 0, PD_TIME_MAX_MS, c->srv->now_ms, &start))
        return PD_ERR_BAD_ARG;
    if (pd_arg_opt_i64_or_reply(c, p, "duration_min", 0, PD_WEEK_HOURS * 60, 60, &dur))
        return PD_ERR_BAD_ARG;
    *need = pd_week_none();
    if (ignore || (!default_now && !pd_arg_find(p, "start") && !pd_arg_find(p, "duration_min")))
        return PD_OK;
    if (pd_engine_week_window(e, start, (int32_t)dur, need) != PD_OK) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'start'/'duration_min' do not make a time window");
        return PD_ERR_BAD_ARG;
    }
    return PD_OK;
}

void pd_m_match_nearby(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"lat",
                                       "lon",
                                       "skills",
                                       "tags",
                                       "k",
                                       "minutes",
                                       "radius_m",
                                       "start",
                                       "duration_min",
                                       "policy",
                                       "ignore_schedule",
                                       "include_unavailable",
                                       NULL};
    const pd_engine_t *e = c->srv->engine;
    const pd_engine_config_t *cfg = pd_engine_get_config(e);
    if (pd_args_check_or_reply(c, p, keys)) return;
    pd_query_t q;
    memset(&q, 0, sizeof(q));
    int64_t k;
    double minutes, radius;
    int policy;
    if (pd_arg_get_latlng_or_reply(c, p, &q.at)) return;
    if (pd_arg_opt_skills_or_reply(c, p, "skills", e, &q.skills)) return;
    if (pd_arg_opt_tags_or_reply(c, p, "tags", &q.tags)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "k", 1, NEARBY_MAX_K, 10, &k)) return;
    if (pd_arg_opt_double_or_reply(c, p, "minutes", 0.01, PD_QUERY_MAX_BUDGET_S / 60.0,
                                   cfg->budget_s / 60.0, &minutes))
        return;
    if (pd_arg_opt_double_or_reply(c, p, "radius_m", 0, PD_QUERY_MAX_RADIUS_M, 0, &radius)) return;
    if (window_or_reply(c, p, &q.need, true)) return;
    if (pd_arg_opt_enum_or_reply(c, p, "policy", pd_parse_policy, PD_POLICY__COUNT,
                                 PD_POLICY_NEAREST, &policy, "nearest, balanced, rated"))
        return;
    if (pd_arg_opt_bool_or_reply(c, p, "include_unavailable", false, &q.include_unavailable))
        return;
    q.budget_s = minutes * 60.0;
    q.radius_m = radius;
    policy_ctx_t pc = {e, (pd_policy)policy, c->srv->now_ms};
    if (policy != PD_POLICY_NEAREST) {
        q.score = policy_score;
        q.score_ud = &pc;
    }
    pd_hit_t *hits = pd_server_scratch(c->srv, (size_t)k * sizeof(pd_hit_t));
    if (!hits) {
        pd_reply_error(c, PD_ERR_NOMEM, "out of memory");
        return;
    }
    size_t n = 0;
    pd_err err = pd_index_nearest(pd_engine_get_index(e), &q, (size_t)k, hits, &n);
    if (err) {
        pd_reply_error(c, err, "nearby query: %s", pd_strerror(err));
        return;
    }
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) pd_pack_hit(pk, &hits[i]);
}

void pd_m_match_mobilize(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"lat",
                                       "lon",
                                       "radius_m",
                                       "minutes",
                                       "skills",
                                       "tags",
                                       "limit",
                                       "start",
                                       "duration_min",
                                       "ignore_schedule",
                                       "include_unavailable",
                                       "mark_notified",
                                       NULL};
    pd_engine_t *e = c->srv->engine;
    const pd_engine_config_t *cfg = pd_engine_get_config(e);
    if (pd_args_check_or_reply(c, p, keys)) return;
    pd_mobilise_t m;
    memset(&m, 0, sizeof(m));
    double minutes, radius;
    int64_t limit;
    if (pd_arg_get_latlng_or_reply(c, p, &m.at)) return;
    if (pd_arg_opt_double_or_reply(c, p, "radius_m", 0, PD_QUERY_MAX_RADIUS_M, 0, &radius)) return;
    if (pd_arg_opt_double_or_reply(c, p, "minutes", 0.01, PD_QUERY_MAX_BUDGET_S / 60.0, 0,
                                   &minutes))
        return;
    if (pd_arg_opt_skills_or_reply(c, p, "skills", e, &m.skills)) return;
    if (pd_arg_opt_tags_or_reply(c, p, "tags", &m.tags)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "limit", 0, MOBILIZE_MAX_LIMIT, MOBILIZE_DEFAULT_LIMIT,
                                &limit))
        return;
    pd_week_t need;
    if (window_or_reply(c, p, &need, false)) return;
    if (pd_arg_opt_bool_or_reply(c, p, "include_unavailable", false, &m.include_unavailable))
        return;
    if (pd_arg_opt_bool_or_reply(c, p, "mark_notified", false, &m.mark_notified)) return;
    if (radius <= 0 && minutes <= 0) minutes = cfg->budget_s / 60.0;
    m.radius_m = radius;
    m.budget_s = minutes * 60.0;
    if (!pd_week_is_empty(&need)) {
        m.check_schedule = true;
        pd_arg_opt_i64_or_reply(c, p, "start", 0, PD_TIME_MAX_MS, c->srv->now_ms, &m.start_ms);
        int64_t dur = 60;
        pd_arg_opt_i64_or_reply(c, p, "duration_min", 0, PD_WEEK_HOURS * 60, 60, &dur);
        m.duration_min = (int32_t)dur;
    }
    pd_hit_t *hits = pd_server_scratch(c->srv, (size_t)(limit ? limit : 1) * sizeof(pd_hit_t));
    if (!hits) {
        pd_reply_error(c, PD_ERR_NOMEM, "out of memory");
        return;
    }
    size_t n = 0, total = 0;
    pd_err err = pd_engine_mobilise(e, &m, c->srv->now_ms, hits, (size_t)limit, &n, &total);
    if (err) {
        pd_reply_error(c, err, "mobilize: %s", pd_strerror(err));
        return;
    }
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 2);
    pd_pack_kv_u64(pk, "count", total);
    pd_pack_cstr(pk, "volunteers");
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) pd_pack_hit(pk, &hits[i]);
}
