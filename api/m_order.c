/* m_order.c -- the order life cycle and batch dispatch:
 * order.create / dispatch / accept / decline / cancel / complete / rate /
 * get / candidates, dispatch.batch.
 *
 * Every order.* call that changes an order answers with the order as it is
 * afterwards (view.c, pd_reply_order), so a client never needs a second
 * round trip to learn the new state or the offers made.
 */
#include <string.h>

#include "args.h"
#include "methods.h"
#include "view.h"

#define CANDIDATES_MAX_K 1000
#define BATCH_MAX_ORDERS 100000
#define LIST_MAX_LIMIT 1000
/* Orders one order.list call looks at, at most, so a call holds the loop
 * a bounded time however few orders match (0.1-0.6 ms for 100,000 in a
 * throwaway probe); `next` says where to go on. */
#define LIST_SCAN 100000

static const char *const id_keys[] = {"id", NULL};

/* Expand `slots: [{skills, need?}, ...]` into one skill mask per slot. */
static pd_err slots_or_reply(pd_conn_t *c, const msgpack_object *o, uint64_t *out,
                             uint32_t *n_out) {
    const pd_engine_t *e = c->srv->engine;
    static const char *const slot_keys[] = {"skills", "need", NULL};
    uint32_t n = 0;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0) goto bad;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *s = &o->via.array.ptr[i];
        if (s->type != MSGPACK_OBJECT_MAP) goto bad;
        if (pd_args_check_in_or_reply(c, s, slot_keys, "slots")) return PD_ERR_BAD_ARG;
        const msgpack_object *sk = pd_arg_find(s, "skills");
        const msgpack_object *sn = pd_arg_find(s, "need");
        uint64_t mask = 0;
        int64_t need = 1;
        if (!sk) goto bad;
        pd_err err = pd_obj_skills_or_reply(c, sk, "slots[].skills", e, &mask);
        if (err) return err;
        if (sn && !pd_obj_to_i64(sn, 1, PD_ORDER_MAX_SLOTS, &need)) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "'slots[].need' must be an integer in 1..%d",
                           PD_ORDER_MAX_SLOTS);
            return PD_ERR_BAD_ARG;
        }
        if (n + (uint32_t)need > PD_ORDER_MAX_SLOTS) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "an order needs at most %d volunteers",
                           PD_ORDER_MAX_SLOTS);
            return PD_ERR_BAD_ARG;
        }
        for (int64_t j = 0; j < need; j++) out[n++] = mask;
    }
    *n_out = n;
    return PD_OK;
bad:
    pd_reply_error(c, PD_ERR_BAD_ARG,
                   "'slots' must be a non-empty array of {skills: [names], need?: n}");
    return PD_ERR_BAD_ARG;
}

void pd_m_order_create(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"id",       "lat",  "lon",      "skills",          "need",
                                       "slots",    "tags", "start",    "duration_min",    "minutes",
                                       "priority", "mode", "dispatch", "ignore_schedule", NULL};
    pd_engine_t *e = c->srv->engine;
    if (pd_args_check_or_reply(c, p, keys)) return;
    pd_order_spec_t spec;
    memset(&spec, 0, sizeof(spec));
    uint64_t slot_skills[PD_ORDER_MAX_SLOTS];
    int64_t need, start, dur;
    double minutes;
    int priority, mode;
    bool dispatch, ignore;
    if (pd_arg_get_u64_or_reply(c, p, "id", &spec.id)) return;
    if (pd_arg_get_latlng_or_reply(c, p, &spec.at)) return;
    const msgpack_object *slots = pd_arg_find(p, "slots");
    if (slots) {
        if (pd_arg_find(p, "skills") || pd_arg_find(p, "need")) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "give either 'slots' or 'skills'/'need', not both");
            return;
        }
        if (slots_or_reply(c, slots, slot_skills, &spec.n_slots)) return;
        spec.slot_skills = slot_skills;
    } else {
        if (!pd_arg_find(p, "skills")) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "missing argument 'skills'");
            return;
        }
        if (pd_arg_opt_skills_or_reply(c, p, "skills", e, &spec.skills)) return;
        if (pd_arg_opt_i64_or_reply(c, p, "need", 1, PD_ORDER_MAX_SLOTS, 1, &need)) return;
        spec.need = (uint32_t)need;
    }
    if (pd_arg_opt_tags_or_reply(c, p, "tags", &spec.tags)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "start", 0, PD_TIME_MAX_MS, c->srv->now_ms, &start)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "duration_min", 0, PD_WEEK_HOURS * 60, 60, &dur)) return;
    if (pd_arg_opt_double_or_reply(c, p, "minutes", 1.0 / 60.0, PD_QUERY_MAX_BUDGET_S / 60.0, 0,
                                   &minutes))
        return;
    if (pd_arg_opt_enum_or_reply(c, p, "priority", pd_parse_priority, PD_PRIORITY__COUNT,
                                 PD_PRIORITY_NORMAL, &priority, "normal, elevated, emergency"))
        return;
    if (pd_arg_opt_enum_or_reply(c, p, "mode", pd_parse_offer_mode, PD_OFFER__COUNT,
                                 PD_OFFER_SEQUENTIAL, &mode, "sequential, grab"))
        return;
    if (pd_arg_opt_bool_or_reply(c, p, "dispatch", true, &dispatch)) return;
    if (pd_arg_opt_bool_or_reply(c, p, "ignore_schedule", false, &ignore)) return;
    spec.start_ms = start;
    spec.duration_min = (int32_t)dur;
    spec.budget_s = (int32_t)(minutes * 60.0 + 0.5);
    spec.priority = (uint8_t)priority;
    spec.mode = (uint8_t)mode;
    spec.ignore_schedule = ignore;
    pd_err err = dispatch ? pd_engine_order_create_dispatch(e, &spec, c->srv->now_ms, NULL)
                          : pd_engine_order_create(e, &spec, c->srv->now_ms);
    if (err) {
        pd_reply_engine_error(c, err, "order", spec.id);
        return;
    }
    pd_reply_order(c, spec.id);
}

void pd_m_order_dispatch(pd_conn_t *c, const msgpack_object *p) {
    if (pd_args_check_or_reply(c, p, id_keys)) return;
    uint64_t id;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    pd_err err = pd_engine_order_dispatch(c->srv->engine, id, c->srv->now_ms, NULL);
    if (err == PD_ERR_ILLEGAL) {
        /* Not only "already dispatched": a created order cancelled before
         * its dispatch is closed without ever having been dispatched. */
        pd_order_info_t oi;
        const char *st = pd_engine_order_get(c->srv->engine, id, &oi) == PD_OK
                             ? pd_order_state_name((pd_order_state)oi.state)
                             : NULL;
        pd_reply_error(c, err,
                       "order %llu is %s: only a created order (dispatch: false) can be dispatched",
                       (unsigned long long)id, st ? st : "not created");
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    pd_reply_order(c, id);
}

typedef pd_err (*answer_fn)(pd_engine_t *, uint64_t, uint64_t, int64_t);

/* A volunteer's answer to an order (accept, decline, release): `holds`
 * says what an ILLEGAL one lacked. */
static void answer(pd_conn_t *c, const msgpack_object *p, answer_fn fn, const char *holds) {
    static const char *const keys[] = {"id", "volunteer", NULL};
    if (pd_args_check_or_reply(c, p, keys)) return;
    uint64_t id, vol;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    if (pd_arg_get_u64_or_reply(c, p, "volunteer", &vol)) return;
    pd_err err = fn(c->srv->engine, id, vol, c->srv->now_ms);
    if (err == PD_ERR_ILLEGAL) {
        pd_reply_error(c, err, "volunteer %llu holds no %s on order %llu", (unsigned long long)vol,
                       holds, (unsigned long long)id);
        return;
    }
    if (err == PD_ERR_NOT_FOUND) {
        pd_order_info_t oi;
        if (pd_engine_order_get(c->srv->engine, id, &oi) == PD_OK)
            pd_reply_engine_error(c, err, "volunteer", vol);
        else
            pd_reply_engine_error(c, err, "order", id);
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    pd_reply_order(c, id);
}

void pd_m_order_accept(pd_conn_t *c, const msgpack_object *p) {
    answer(c, p, pd_engine_order_accept, "live offer");
}

void pd_m_order_decline(pd_conn_t *c, const msgpack_object *p) {
    answer(c, p, pd_engine_order_decline, "live offer");
}

void pd_m_order_release(pd_conn_t *c, const msgpack_object *p) {
    answer(c, p, pd_engine_order_release, "accepted slot");
}

/* ILLEGAL from a state change: say which state the order is in. */
static void reply_illegal(pd_conn_t *c, uint64_t id, const char *verb) {
    pd_order_info_t oi;
    const char *st = "unknown";
    if (pd_engine_order_get(c->srv->engine, id, &oi) == PD_OK) {
        const char *n = pd_order_state_name((pd_order_state)oi.state);
        if (n) st = n;
    }
    pd_reply_error(c, PD_ERR_ILLEGAL, "order %llu is %s and cannot be %s", (unsigned long long)id,
                   st, verb);
}

void pd_m_order_cancel(pd_conn_t *c, const msgpack_object *p) {
    if (pd_args_check_or_reply(c, p, id_keys)) return;
    uint64_t id;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    pd_err err = pd_engine_order_cancel(c->srv->engine, id, c->srv->now_ms);
    if (err == PD_ERR_ILLEGAL) {
        reply_illegal(c, id, "cancelled");
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    pd_reply_order(c, id);
}

void pd_m_order_complete(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"id", "minutes_served", NULL};
    if (pd_args_check_or_reply(c, p, keys)) return;
    uint64_t id;
    int64_t minutes;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "minutes_served", 0, PD_MAX_MINUTES_SERVED, -1, &minutes))
        return;
    pd_err err = pd_engine_order_complete(c->srv->engine, id, (int32_t)minutes, c->srv->now_ms);
    if (err == PD_ERR_ILLEGAL) {
        reply_illegal(c, id, "completed (it must be accepted)");
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    pd_reply_order(c, id);
}

void pd_m_order_rate(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"id", "score", NULL};
    if (pd_args_check_or_reply(c, p, keys)) return;
    uint64_t id;
    int64_t score;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    if (pd_arg_get_i64_or_reply(c, p, "score", 1, 5, &score)) return;
    pd_err err = pd_engine_order_rate(c->srv->engine, id, (int)score, c->srv->now_ms);
    if (err == PD_ERR_ILLEGAL) {
        reply_illegal(c, id, "rated (it must be completed)");
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    pd_reply_order(c, id);
}

void pd_m_order_get(pd_conn_t *c, const msgpack_object *p) {
    if (pd_args_check_or_reply(c, p, id_keys)) return;
    uint64_t id;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    pd_reply_order(c, id);
}

/* "state": one state name or an array of them -> a bit per state. */
static pd_err states_or_reply(pd_conn_t *c, const msgpack_object *p, uint32_t *out) {
    *out = 0;
    const msgpack_object *o = pd_arg_find(p, "state");
    if (!o) return PD_OK;
    const msgpack_object *items = o;
    uint32_t n = 1;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        items = o->via.array.ptr;
        n = o->via.array.size;
        if (n == 0) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "'state' must name at least one state");
            return PD_ERR_BAD_ARG;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *it = &items[i];
        char name[16];
        pd_order_state s;
        bool ok = it->type == MSGPACK_OBJECT_STR && it->via.str.size < sizeof name &&
                  !memchr(it->via.str.ptr, '\0', it->via.str.size);
        if (ok) {
            memcpy(name, it->via.str.ptr, it->via.str.size);
            name[it->via.str.size] = '\0';
            ok = pd_order_state_from_name(name, &s) == PD_OK;
        }
        if (!ok) {
            pd_reply_error(c, PD_ERR_BAD_ARG,
                           "'state' must be created, offered, accepted, completed, rated, "
                           "cancelled or expired, or an array of them");
            return PD_ERR_BAD_ARG;
        }
        *out |= 1u << s;
    }
    return PD_OK;
}

typedef struct list_acc_s {
    pd_order_info_t *out;
    size_t n, limit;
} list_acc_t;

static bool list_take(void *ud, const pd_order_info_t *oi) {
    list_acc_t *a = ud;
    a->out[a->n++] = *oi;
    return a->n < a->limit;
}

void pd_m_order_list(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"state", "volunteer", "created_from",
                                       "after", "limit",     NULL};
    if (pd_args_check_or_reply(c, p, keys)) return;
    pd_order_filter_t f;
    memset(&f, 0, sizeof f);
    int64_t limit;
    uint64_t after = 0;
    if (states_or_reply(c, p, &f.states)) return;
    f.by_volunteer = pd_arg_find(p, "volunteer") != NULL;
    if (f.by_volunteer && pd_arg_get_u64_or_reply(c, p, "volunteer", &f.volunteer_id)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "created_from", 0, INT64_MAX / 2, 0, &f.created_from_ms))
        return;
    const bool has_after = pd_arg_find(p, "after") != NULL;
    if (has_after && pd_arg_get_u64_or_reply(c, p, "after", &after)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "limit", 1, LIST_MAX_LIMIT, 100, &limit)) return;
    list_acc_t acc = {pd_server_scratch(c->srv, (size_t)limit * sizeof(pd_order_info_t)), 0,
                      (size_t)limit};
    if (!acc.out) {
        pd_reply_error(c, PD_ERR_NOMEM, "out of memory");
        return;
    }
    uint64_t next = 0;
    bool more = false;
    pd_err err = pd_engine_order_list(c->srv->engine, &f, has_after ? &after : NULL, LIST_SCAN,
                                      list_take, &acc, &more, &next);
    if (err == PD_ERR_NOT_FOUND) {
        pd_reply_error(c, err, "order %llu (after) is no longer kept: list again without 'after'",
                       (unsigned long long)after);
        return;
    }
    if (err) {
        pd_reply_error(c, err, "order.list: %s", pd_strerror(err));
        return;
    }
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 2);
    pd_pack_cstr(pk, "orders");
    msgpack_pack_array(pk, (uint32_t)acc.n);
    for (size_t i = 0; i < acc.n; i++) {
        msgpack_pack_map(pk, PD_ORDER_FIELDS);
        pd_pack_order_fields(pk, &acc.out[i]);
    }
    pd_pack_cstr(pk, "next");
    if (more)
        msgpack_pack_uint64(pk, next);
    else
        msgpack_pack_nil(pk);
}

void pd_m_order_purge(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"before_ms", "older_than_days", NULL};
    if (pd_args_check_or_reply(c, p, keys)) return;
    const bool has_before = pd_arg_find(p, "before_ms") != NULL;
    if (has_before == (pd_arg_find(p, "older_than_days") != NULL)) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "give one of 'before_ms' and 'older_than_days'");
        return;
    }
    int64_t before;
    double days;
    if (has_before) {
        if (pd_arg_get_i64_or_reply(c, p, "before_ms", 0, INT64_MAX / 2, &before)) return;
    } else {
        if (pd_arg_opt_double_or_reply(c, p, "older_than_days", 0, 36500, 0, &days)) return;
        before = c->srv->now_ms - (int64_t)(days * 86400000.0);
        if (before < 0) before = 0; /* before 1970: the same as "nothing is that old" */
    }
    size_t n = 0;
    pd_err err = pd_engine_order_purge(c->srv->engine, before, &n);
    if (err) {
        pd_reply_error(c, err, "order.purge: %s", pd_strerror(err));
        return;
    }
    pd_server_queue_purged(c->srv, n, before, false);
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 2);
    pd_pack_kv_u64(pk, "purged", n);
    pd_pack_kv_i64(pk, "before_ms", before);
}

void pd_m_order_candidates(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"id", "slot", "k", NULL};
    if (pd_args_check_or_reply(c, p, keys)) return;
    uint64_t id;
    int64_t slot, k;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "slot", 0, PD_ORDER_MAX_SLOTS - 1, 0, &slot)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "k", 1, CANDIDATES_MAX_K, 10, &k)) return;
    /* A closed order is never dispatched again, and keeps only its
     * accepted offers: the volunteers who were asked would come back as
     * candidates. */
    pd_order_info_t oi;
    if (pd_engine_order_get(c->srv->engine, id, &oi) == PD_OK && oi.state >= PD_ORDER_COMPLETED) {
        const char *st = pd_order_state_name((pd_order_state)oi.state);
        pd_reply_error(c, PD_ERR_ILLEGAL, "order %llu is %s: a closed order has no candidates",
                       (unsigned long long)id, st ? st : "closed");
        return;
    }
    pd_hit_t *hits = pd_server_scratch(c->srv, (size_t)k * sizeof(pd_hit_t));
    if (!hits) {
        pd_reply_error(c, PD_ERR_NOMEM, "out of memory");
        return;
    }
    size_t n = 0;
    pd_err err = pd_engine_order_candidates(c->srv->engine, id, (uint32_t)slot, c->srv->now_ms,
                                            (size_t)k, hits, &n);
    if (err == PD_ERR_BAD_ARG) {
        pd_reply_error(c, err, "order %llu has no slot %lld", (unsigned long long)id,
                       (long long)slot);
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) pd_pack_hit(pk, &hits[i]);
}

/* ---------------------------------------------------------------- batch */

static pd_err parse_apply(const char *s, int *out) {
    if (strcmp(s, "none") == 0)
        *out = PD_BATCH_APPLY_NONE;
    else if (strcmp(s, "optimal") == 0)
        *out = PD_BATCH_APPLY_OPTIMAL;
    else if (strcmp(s, "greedy") == 0)
        *out = PD_BATCH_APPLY_GREEDY;
    else
        return PD_ERR_BAD_ARG;
    return PD_OK;
}

static void pack_pairs(msgpack_packer *pk, const pd_batch_pair_t *pairs, size_t n) {
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 4);
        pd_pack_kv_u64(pk, "order", pairs[i].order_id);
        pd_pack_kv_u64(pk, "slot", pairs[i].slot);
        pd_pack_kv_u64(pk, "volunteer", pairs[i].volunteer_id);
        pd_pack_kv_i64(pk, "score_ms", pairs[i].score_ms);
    }
}

/* The engine refused the batch for res->refused_id: say which and why. */
static void reply_batch_refusal(pd_conn_t *c, pd_err err, const pd_batch_result_t *res) {
    unsigned long long id = (unsigned long long)res->refused_id;
    if (err == PD_ERR_NOT_FOUND) {
        pd_reply_error(c, err, "order %llu in 'orders' not found", id);
    } else if (err == PD_ERR_BAD_ARG) {
        pd_reply_error(c, err, "order %llu is in 'orders' twice", id);
    } else {
        pd_order_info_t oi;
        const char *st = pd_engine_order_get(c->srv->engine, res->refused_id, &oi) == PD_OK
                             ? pd_order_state_name((pd_order_state)oi.state)
                             : NULL;
        pd_reply_error(c, err,
                       "order %llu is %s: a batch takes only created orders (dispatch: false)", id,
                       st ? st : "not created");
    }
}

void pd_m_dispatch_batch(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"orders", "policy", "apply", "k", NULL};
    pd_engine_t *e = c->srv->engine;
    const pd_engine_config_t *cfg = pd_engine_get_config(e);
    if (pd_args_check_or_reply(c, p, keys)) return;
    int policy, apply;
    int64_t k;
    if (pd_arg_opt_enum_or_reply(c, p, "policy", pd_parse_policy, PD_POLICY__COUNT,
                                 (int)cfg->policy, &policy, "nearest, balanced, rated"))
        return;
    if (policy != (int)cfg->policy) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "batch dispatch ranks by the configured policy '%s'",
                       pd_policy_name(cfg->policy));
        return;
    }
    /* names only: the integers would follow the engine's enum, not the
     * order the names are listed in */
    if (pd_arg_opt_enum_or_reply(c, p, "apply", parse_apply, 0, PD_BATCH_APPLY_OPTIMAL, &apply,
                                 "none, optimal, greedy"))
        return;
    if (pd_arg_opt_i64_or_reply(c, p, "k", 0, PD_MAX_BATCH_K, 0, &k)) return;

    const msgpack_object *orders = pd_arg_find(p, "orders");
    size_t n_orders;
    if (orders) {
        if (orders->type != MSGPACK_OBJECT_ARRAY || orders->via.array.size > BATCH_MAX_ORDERS) {
            pd_reply_error(c, PD_ERR_BAD_ARG, "'orders' must be an array of at most %d order ids",
                           BATCH_MAX_ORDERS);
            return;
        }
        n_orders = orders->via.array.size;
    } else {
        n_orders = pd_engine_order_count(e, PD_ORDER_CREATED);
    }
    /* Scratch: ids, then room for both assignments (one pair per slot;
     * the engine refuses more than PD_MAX_BATCH_PAIRS slots x k). */
    size_t max_pairs = (n_orders ? n_orders : 1) * PD_ORDER_MAX_SLOTS;
    if (max_pairs > PD_MAX_BATCH_PAIRS) max_pairs = PD_MAX_BATCH_PAIRS;
    size_t bytes = n_orders * sizeof(uint64_t) + 2 * max_pairs * sizeof(pd_batch_pair_t);
    char *mem = pd_server_scratch(c->srv, bytes);
    if (!mem) {
        pd_reply_error(c, PD_ERR_NOMEM, "out of memory");
        return;
    }
    pd_batch_pair_t *opt = (pd_batch_pair_t *)mem;
    pd_batch_pair_t *greedy = opt + max_pairs;
    uint64_t *ids = (uint64_t *)(greedy + max_pairs);
    pd_batch_req_t req;
    memset(&req, 0, sizeof(req));
    if (orders) {
        for (size_t i = 0; i < n_orders; i++) {
            if (!pd_obj_to_u64(&orders->via.array.ptr[i], &ids[i])) {
                pd_reply_error(c, PD_ERR_BAD_ARG, "'orders' must be an array of order ids");
                return;
            }
        }
        req.order_ids = ids;
        req.n_orders = n_orders;
    }
    req.k = (uint32_t)k;
    req.apply = (pd_batch_apply)apply;
    req.optimal = opt;
    req.optimal_cap = max_pairs;
    req.greedy = greedy;
    req.greedy_cap = max_pairs;
    pd_batch_result_t res;
    memset(&res, 0, sizeof(res));
    pd_err err = pd_engine_batch(e, &req, c->srv->now_ms, &res);
    if (res.refused) {
        reply_batch_refusal(c, err, &res);
        return;
    }
    if (err == PD_ERR_LIMIT) {
        pd_reply_error(c, err,
                       "batch too large: its slots times k = %u pass %d candidate pairs; send "
                       "fewer orders in 'orders', or a smaller k",
                       (unsigned)(k ? k : cfg->batch_k), PD_MAX_BATCH_PAIRS);
        return;
    }
    if (err) {
        pd_reply_error(c, err, "batch: %s", pd_strerror(err));
        return;
    }

    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 8);
    pd_pack_kv_u64(pk, "orders", res.n_orders);
    pd_pack_kv_u64(pk, "slots", res.n_slots);
    pd_pack_kv_u64(pk, "edges", res.n_edges);
    pd_pack_kv_str(pk, "applied",
                   apply == PD_BATCH_APPLY_OPTIMAL  ? "optimal"
                   : apply == PD_BATCH_APPLY_GREEDY ? "greedy"
                                                    : "none");
    pd_pack_cstr(pk, "optimal");
    msgpack_pack_map(pk, 3);
    pd_pack_kv_u64(pk, "count", res.optimal_n);
    pd_pack_kv_i64(pk, "score_ms", res.optimal_score_ms);
    pd_pack_cstr(pk, "pairs");
    pack_pairs(pk, opt, res.optimal_n);
    pd_pack_cstr(pk, "greedy");
    msgpack_pack_map(pk, 3);
    pd_pack_kv_u64(pk, "count", res.greedy_n);
    pd_pack_kv_i64(pk, "score_ms", res.greedy_score_ms);
    pd_pack_cstr(pk, "pairs");
    pack_pairs(pk, greedy, res.greedy_n);
    pd_pack_kv_u64(pk, "dispatched", res.n_dispatched);
    pd_pack_kv_u64(pk, "expired", res.n_expired);
}
