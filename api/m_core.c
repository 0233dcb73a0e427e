/* m_core.c -- handlers that concern the server rather than the engine:
 * ping, auth, stats, methods, config.get, subscribe, unsubscribe.
 *
 * `stats` reports what Redis's INFO and LATENCY report: counters,
 * per-method calls/time/percentiles, connections, memory, loop idle time,
 * and the engine's own counts.
 */
#include <string.h>

#include "args.h"
#include "import.h"
#include "methods.h"
#include "persist.h"
#include "replicate.h"

/* ---------------------------------------------------------- ping / auth */

void pd_m_ping(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    pd_pack_cstr(pd_reply_ok(c), "pong");
}

/* Compare without an early exit, so timing does not reveal a prefix. */
static bool token_equal(const char *want, const char *got, size_t got_len) {
    size_t wl = strlen(want);
    unsigned char diff = (unsigned char)(wl != got_len);
    for (size_t i = 0; i < got_len; i++) diff |= (unsigned char)(want[i % (wl ? wl : 1)] ^ got[i]);
    return diff == 0 && wl == got_len;
}

void pd_m_auth(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {"token", NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    const msgpack_object *t = pd_arg_find(params, "token");
    if (!t || t->type != MSGPACK_OBJECT_STR) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "'token' must be a string");
        return;
    }
    const char *want = c->srv->cfg.token;
    if (want && !token_equal(want, t->via.str.ptr, t->via.str.size)) {
        c->srv->n.auth_failures++;
        pd_reply_error(c, PD_ERR_UNAUTHORIZED, "invalid token");
        return;
    }
    c->authed = true;
    msgpack_pack_true(pd_reply_ok(c));
}

/* ---------------------------------------------------------------- stats */

static double ns_to_us(uint64_t ns) {
    return (double)ns / 1000.0;
}

void pd_m_stats(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    pd_server_t *srv = c->srv;
    pd_engine_stats_t es;
    pd_engine_get_stats(srv->engine, &es);
    const pd_server_counters_t *n = &srv->n;

    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 12);

    pd_pack_cstr(pk, "server");
    msgpack_pack_map(pk, 9);
    pd_pack_kv_str(pk, "version", PD_VERSION);
    pd_pack_kv_i64(pk, "pid", (int64_t)uv_os_getpid());
    pd_pack_kv_double(pk, "uptime_s", (double)(uv_hrtime() - srv->started_hr) / 1e9);
    pd_pack_kv_i64(pk, "now_ms", srv->now_ms);
    pd_pack_kv_i64(pk, "port", srv->bound_port);
    pd_pack_kv_u64(pk, "tick_ms", srv->cfg.tick_ms);
    pd_pack_kv_u64(pk, "busy_poll_us", srv->cfg.busy_poll_us);
    pd_pack_kv_bool(pk, "huge_pages", srv->cfg.huge_pages);
    pd_pack_kv_double(pk, "order_retention_days", srv->cfg.order_retention_days);

    pd_pack_cstr(pk, "connections");
    msgpack_pack_map(pk, 5);
    pd_pack_kv_u64(pk, "current", srv->n_conns);
    pd_pack_kv_u64(pk, "accepted", n->conns_accepted);
    pd_pack_kv_u64(pk, "rejected", n->conns_rejected);
    pd_pack_kv_u64(pk, "max", srv->cfg.max_conns);
    uint64_t subs = 0;
    for (pd_conn_t *s = srv->subscribers; s; s = s->sub_next) subs++;
    pd_pack_kv_u64(pk, "subscribers", subs);

    pd_pack_cstr(pk, "counters");
    msgpack_pack_map(pk, 21);
    pd_pack_kv_u64(pk, "requests", n->requests);
    pd_pack_kv_u64(pk, "errors", n->errors);
    pd_pack_kv_u64(pk, "bad_requests", n->bad_requests);
    pd_pack_kv_u64(pk, "unknown_methods", n->unknown_methods);
    pd_pack_kv_u64(pk, "auth_failures", n->auth_failures);
    pd_pack_kv_u64(pk, "protocol_errors", n->protocol_errors);
    pd_pack_kv_u64(pk, "frames_too_large", n->frames_too_large);
    pd_pack_kv_u64(pk, "output_cutoffs", n->output_cutoffs);
    pd_pack_kv_u64(pk, "idle_closed", n->idle_closed);
    pd_pack_kv_u64(pk, "rate_limited", n->rate_limited);
    pd_pack_kv_u64(pk, "bytes_in", n->bytes_in);
    pd_pack_kv_u64(pk, "bytes_out", n->bytes_out);
    pd_pack_kv_u64(pk, "notifications", n->notifications);
    pd_pack_kv_u64(pk, "events", n->events);
    pd_pack_kv_u64(pk, "ticks", n->ticks);
    pd_pack_kv_u64(pk, "offers_expired", n->offers_expired);
    pd_pack_kv_u64(pk, "metrics_scrapes", n->metrics_scrapes);
    pd_pack_kv_u64(pk, "cells_tidied", n->cells_tidied);
    pd_pack_kv_u64(pk, "huge_passes", n->huge_passes);
    pd_pack_kv_u64(pk, "huge_pages_asked", n->huge_pages_asked);
    pd_pack_kv_u64(pk, "orders_purged", n->orders_purged);

    uint64_t wall_ns = uv_hrtime() - srv->started_hr;
    uint64_t idle_ns = uv_metrics_idle_time(srv->loop);
    pd_pack_cstr(pk, "loop");
    msgpack_pack_map(pk, 5);
    pd_pack_kv_double(pk, "idle_time_ms", (double)idle_ns / 1e6);
    pd_pack_kv_double(pk, "busy_ratio", wall_ns ? 1.0 - (double)idle_ns / (double)wall_ns : 0.0);
    pd_pack_kv_u64(pk, "stalls", n->loop_stalls);
    pd_pack_kv_double(pk, "max_stall_ms", (double)n->max_stall_us / 1000.0);
    pd_pack_kv_u64(pk, "stall_threshold_ms", srv->cfg.stall_ms);

    pd_pack_cstr(pk, "import");
    pd_import_pack_stats(srv, pk);

    pd_pack_cstr(pk, "memory");
    msgpack_pack_map(pk, 2);
    pd_pack_kv_u64(pk, "rss_bytes", pd_stats_rss_bytes());
    pd_pack_kv_u64(pk, "engine_bytes", es.memory);

    pd_pack_cstr(pk, "engine");
    msgpack_pack_map(pk, 6);
    pd_pack_kv_u64(pk, "volunteers", es.volunteers);
    pd_pack_kv_u64(pk, "orders", es.orders);
    pd_pack_cstr(pk, "orders_by_state");
    msgpack_pack_map(pk, PD_ORDER__COUNT);
    for (int s = 0; s < PD_ORDER__COUNT; s++)
        pd_pack_kv_u64(pk, pd_order_state_name((pd_order_state)s), es.orders_by_state[s]);
    pd_pack_kv_u64(pk, "live_offers", es.live_offers);
    pd_pack_kv_u64(pk, "offers_made", es.offers_made);
    pd_pack_kv_u64(pk, "events", es.events);

    pd_pack_kv_u64(pk, "volunteers", es.volunteers);
    pd_pack_kv_u64(pk, "orders", es.orders);

    pd_pack_cstr(pk, "persistence");
    pd_persist_pack_stats(srv, pk);

    pd_pack_cstr(pk, "replication");
    pd_repl_pack_stats(srv, pk);

    uint32_t called = 0;
    for (int i = 0; i < PD_MID__COUNT; i++) called += srv->mstats[i].calls > 0;
    pd_pack_cstr(pk, "methods");
    msgpack_pack_map(pk, called);
    for (int i = 0; i < PD_MID__COUNT; i++) {
        const pd_method_stats_t *ms = &srv->mstats[i];
        if (!ms->calls) continue;
        pd_pack_cstr(pk, pd_methods[i].name);
        msgpack_pack_map(pk, 6);
        pd_pack_kv_u64(pk, "calls", ms->calls);
        pd_pack_kv_u64(pk, "errors", ms->errors);
        pd_pack_kv_double(pk, "usec", ns_to_us(ms->lat.sum_ns));
        pd_pack_kv_double(pk, "usec_per_call",
                          ms->lat.count ? ns_to_us(ms->lat.sum_ns) / (double)ms->lat.count : 0);
        pd_pack_kv_double(pk, "max_usec", ns_to_us(ms->lat.max_ns));
        pd_pack_cstr(pk, "latency_percentiles_usec");
        msgpack_pack_map(pk, 3);
        pd_pack_kv_double(pk, "p50", ns_to_us(pd_hist_percentile(&ms->lat, 50)));
        pd_pack_kv_double(pk, "p99", ns_to_us(pd_hist_percentile(&ms->lat, 99)));
        pd_pack_kv_double(pk, "p99.9", ns_to_us(pd_hist_percentile(&ms->lat, 99.9)));
    }
}

void pd_m_methods(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_array(pk, PD_MID__COUNT);
    for (int i = 0; i < PD_MID__COUNT; i++) pd_pack_cstr(pk, pd_methods[i].name);
}

void pd_m_config_get(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    pd_server_t *srv = c->srv;
    const pd_engine_config_t *ec = pd_engine_get_config(srv->engine);
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 13);
    pd_pack_cstr(pk, "skills");
    msgpack_pack_array(pk, ec->n_skills);
    for (uint32_t i = 0; i < ec->n_skills; i++) pd_pack_cstr(pk, ec->skills[i]);
    pd_pack_kv_str(pk, "policy", pd_policy_name(ec->policy));
    pd_pack_kv_i64(pk, "budget_s", ec->budget_s);
    pd_pack_kv_i64(pk, "offer_timeout_s", ec->offer_timeout_s);
    pd_pack_kv_u64(pk, "grab_width", ec->grab_width);
    /* what a policy adds to the ETA, so a client can read a score */
    pd_pack_cstr(pk, "policy_weights");
    msgpack_pack_map(pk, 4);
    pd_pack_kv_double(pk, "balanced_weight_s_per_hour", ec->balanced_weight_s_per_hour);
    pd_pack_kv_double(pk, "balanced_cap_hours", ec->balanced_cap_hours);
    pd_pack_kv_double(pk, "rated_weight_s", ec->rated_weight_s);
    pd_pack_kv_double(pk, "rated_neutral", ec->rated_neutral);
    pd_pack_cstr(pk, "speeds_kmh");
    msgpack_pack_map(pk, PD_MODE__COUNT);
    for (int m = 0; m < PD_MODE__COUNT; m++)
        pd_pack_kv_double(pk, pd_mode_name((pd_mode)m), ec->index.speed_kmh[m]);
    pd_pack_kv_double(pk, "detour", ec->index.detour);
    pd_pack_kv_i64(pk, "utc_offset_min", ec->utc_offset_min);
    pd_pack_cstr(pk, "star_hours");
    msgpack_pack_array(pk, PD_STAR_LEVELS);
    for (int i = 0; i < PD_STAR_LEVELS; i++) msgpack_pack_uint32(pk, ec->star_hours[i]);
    pd_pack_kv_u64(pk, "batch_k", ec->batch_k);
    pd_pack_cstr(pk, "limits");
    msgpack_pack_map(pk, 8);
    pd_pack_kv_u64(pk, "max_frame", srv->cfg.max_frame);
    pd_pack_kv_u64(pk, "max_output", srv->cfg.max_output);
    pd_pack_kv_u64(pk, "max_conns", srv->cfg.max_conns);
    pd_pack_kv_u64(pk, "idle_timeout_ms", srv->cfg.idle_timeout_ms);
    pd_pack_kv_u64(pk, "max_rps", srv->cfg.max_rps);
    pd_pack_kv_u64(pk, "tick_ms", srv->cfg.tick_ms);
    pd_pack_kv_u64(pk, "max_volunteers", srv->cfg.max_volunteers);
    pd_pack_kv_u64(pk, "max_orders", srv->cfg.max_orders);
    pd_pack_kv_bool(pk, "auth_required", srv->cfg.token != NULL);
}

/* ------------------------------------------------------------ subscribe */

/* Mask of event names: an array of "order.offered", ..., "order.*" or "*". */
static pd_err events_mask_or_reply(pd_conn_t *c, const msgpack_object *o, uint32_t *mask) {
    uint32_t m = 0;
    if (o->type != MSGPACK_OBJECT_ARRAY) goto bad;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *x = &o->via.array.ptr[i];
        if (x->type != MSGPACK_OBJECT_STR) goto bad;
        const char *s = x->via.str.ptr;
        uint32_t n = x->via.str.size;
        if ((n == 1 && s[0] == '*') || (n == 7 && memcmp(s, "order.*", 7) == 0)) {
            m |= (1u << PD_SERVER_EV__COUNT) - 1;
            continue;
        }
        bool found = false;
        for (unsigned t = 0; t < PD_SERVER_EV__COUNT && !found; t++) {
            const char *name = pd_server_event_name(t);
            if (strlen(name) == n && memcmp(name, s, n) == 0) {
                m |= 1u << t;
                found = true;
            }
        }
        if (!found) {
            char echo[64];
            pd_reply_error(c, PD_ERR_BAD_ARG, "unknown event '%s'",
                           pd_arg_echo(echo, sizeof(echo), s, n));
            return PD_ERR_BAD_ARG;
        }
    }
    *mask = m;
    return PD_OK;
bad:
    pd_reply_error(c, PD_ERR_BAD_ARG, "'events' must be an array of event names");
    return PD_ERR_BAD_ARG;
}

static void reply_subscriptions(pd_conn_t *c) {
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 1);
    pd_pack_cstr(pk, "events");
    msgpack_pack_array(pk, (uint32_t)__builtin_popcount(c->subs));
    for (unsigned t = 0; t < PD_SERVER_EV__COUNT; t++)
        if (c->subs & (1u << t)) pd_pack_cstr(pk, pd_server_event_name(t));
}

void pd_m_subscribe(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {"events", NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    const msgpack_object *ev = pd_arg_find(params, "events");
    if (!ev) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "missing argument 'events'");
        return;
    }
    uint32_t mask;
    if (events_mask_or_reply(c, ev, &mask)) return;
    c->subs |= mask;
    pd_server_subscriber_update(c->srv, c);
    reply_subscriptions(c);
}

void pd_m_unsubscribe(pd_conn_t *c, const msgpack_object *params) {
    static const char *const keys[] = {"events", NULL};
    if (pd_args_check_or_reply(c, params, keys)) return;
    const msgpack_object *ev = pd_arg_find(params, "events");
    uint32_t mask = (1u << PD_SERVER_EV__COUNT) - 1;
    if (ev && events_mask_or_reply(c, ev, &mask)) return;
    c->subs &= ~mask;
    pd_server_subscriber_update(c->srv, c);
    reply_subscriptions(c);
}
