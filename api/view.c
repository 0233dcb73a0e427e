/* view.c -- wire shapes of engine objects (see view.h). */
#include "view.h"

#include <stdint.h>
#include <string.h>

void pd_pack_skills(msgpack_packer *pk, const pd_engine_t *e, uint64_t mask) {
    uint32_t n = pd_engine_skill_count(e);
    uint32_t count = 0;
    for (uint32_t b = 0; b < n; b++) count += (mask >> b) & 1u;
    msgpack_pack_array(pk, count);
    for (uint32_t b = 0; b < n; b++)
        if ((mask >> b) & 1u) pd_pack_cstr(pk, pd_engine_skill_name(e, b));
}

void pd_pack_tags(msgpack_packer *pk, uint64_t mask) {
    msgpack_pack_array(pk, (uint32_t)__builtin_popcountll(mask));
    for (unsigned b = 0; b < 64; b++)
        if ((mask >> b) & 1u) msgpack_pack_uint8(pk, (uint8_t)b);
}

static bool week_has(const pd_week_t *w, int hour) {
    return (w->bits[hour / 64] >> (hour % 64)) & 1u;
}

void pd_pack_week(msgpack_packer *pk, const pd_week_t *w) {
    uint32_t runs = 0;
    for (int d = 0; d < 7; d++)
        for (int h = 0; h < 24; h++)
            if (week_has(w, d * 24 + h) && (h == 0 || !week_has(w, d * 24 + h - 1))) runs++;
    msgpack_pack_array(pk, runs);
    for (int d = 0; d < 7; d++) {
        int h = 0;
        while (h < 24) {
            if (!week_has(w, d * 24 + h)) {
                h++;
                continue;
            }
            int start = h;
            while (h < 24 && week_has(w, d * 24 + h)) h++;
            msgpack_pack_array(pk, 3);
            msgpack_pack_uint8(pk, (uint8_t)d);
            msgpack_pack_uint8(pk, (uint8_t)start);
            msgpack_pack_uint8(pk, (uint8_t)h);
        }
    }
}

void pd_pack_hit(msgpack_packer *pk, const pd_hit_t *h) {
    msgpack_pack_map(pk, 4);
    pd_pack_kv_u64(pk, "id", h->id);
    /* the index keeps these as floats: sent as float32 (5 bytes, not 9),
     * as docs/protocol.md says and paidan-cli prints them */
    pd_pack_cstr(pk, "eta_s");
    msgpack_pack_float(pk, h->eta_s);
    pd_pack_cstr(pk, "distance_m");
    msgpack_pack_float(pk, h->distance_m);
    pd_pack_kv_double(pk, "score", h->score);
}

void pd_reply_engine_error(pd_conn_t *c, pd_err err, const char *what, uint64_t id) {
    unsigned long long uid = (unsigned long long)id;
    switch (err) {
        case PD_ERR_NOT_FOUND:
            pd_reply_error(c, err, "%s %llu not found", what, uid);
            break;
        case PD_ERR_EXISTS:
            pd_reply_error(c, err, "%s %llu already exists", what, uid);
            break;
        case PD_ERR_LIMIT: {
            /* a cap of pd_engine_set_limits, if one is set and reached;
             * the engine has limits of its own too (2^31 offers of an
             * order), which the default message names */
            bool vol = strcmp(what, "volunteer") == 0;
            uint64_t cap = vol ? c->srv->cfg.max_volunteers : c->srv->cfg.max_orders;
            size_t kept = vol ? pd_engine_volunteer_count(c->srv->engine)
                              : pd_engine_order_count(c->srv->engine, PD_ORDER__COUNT);
            if (!cap || kept < cap) {
                pd_reply_error(c, err, "%s %llu: %s", what, uid, pd_strerror(err));
                break;
            }
            pd_reply_error(c, err, "%s %llu refused: the server keeps at most %llu %ss (%s); %s",
                           what, uid, (unsigned long long)cap, what,
                           vol ? "--max-volunteers" : "--max-orders",
                           vol ? "remove volunteers to make room"
                               : "purge closed orders (order.purge) to make room");
            break;
        }
        default:
            pd_reply_error(c, err, "%s %llu: %s", what, uid, pd_strerror(err));
    }
}

static void pack_name_or_nil(msgpack_packer *pk, const char *key, const char *name) {
    pd_pack_cstr(pk, key);
    if (name)
        pd_pack_cstr(pk, name);
    else
        msgpack_pack_nil(pk);
}

void pd_pack_order_fields(msgpack_packer *pk, const pd_order_info_t *oi) {
    pd_pack_kv_u64(pk, "id", oi->id);
    pack_name_or_nil(pk, "state", pd_order_state_name((pd_order_state)oi->state));
    pack_name_or_nil(pk, "reason", pd_reason_name((pd_reason)oi->reason));
    pd_pack_kv_double(pk, "lat", oi->at.lat / 1e6);
    pd_pack_kv_double(pk, "lon", oi->at.lon / 1e6);
    pd_pack_cstr(pk, "tags");
    pd_pack_tags(pk, oi->tags);
    pack_name_or_nil(pk, "priority", pd_priority_name((pd_priority)oi->priority));
    pack_name_or_nil(pk, "mode", pd_offer_mode_name((pd_offer_mode)oi->mode));
    pd_pack_kv_u64(pk, "need", oi->n_slots);
    pd_pack_kv_u64(pk, "accepted", oi->n_accepted);
    pd_pack_kv_u64(pk, "live_offers", oi->n_live_offers);
    pd_pack_kv_u64(pk, "offers_total", oi->n_offers_total);
    pd_pack_kv_i64(pk, "start_ms", oi->start_ms);
    pd_pack_kv_i64(pk, "duration_min", oi->duration_min);
    pd_pack_kv_i64(pk, "budget_s", oi->budget_s);
    pd_pack_kv_u64(pk, "minutes_served", oi->minutes_served);
    pd_pack_kv_u64(pk, "rating", oi->rating);
    pd_pack_kv_bool(pk, "ignore_schedule", oi->ignore_schedule);
    pd_pack_kv_i64(pk, "created_ms", oi->created_ms);
    pd_pack_kv_i64(pk, "dispatched_ms", oi->dispatched_ms);
    pd_pack_kv_i64(pk, "accepted_ms", oi->accepted_ms);
    pd_pack_kv_i64(pk, "closed_ms", oi->closed_ms);
    pd_pack_kv_i64(pk, "rated_ms", oi->rated_ms);
    pd_pack_cstr(pk, "next_deadline_ms");
    if (oi->next_deadline_ms == INT64_MAX)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_int64(pk, oi->next_deadline_ms);
}

void pd_reply_order(pd_conn_t *c, uint64_t id) {
    const pd_engine_t *e = c->srv->engine;
    pd_order_info_t oi;
    pd_err err = pd_engine_order_get(e, id, &oi);
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    pd_order_slot_t slots[PD_ORDER_MAX_SLOTS];
    size_t n_slots = 0;
    err = pd_engine_order_slots(e, id, slots, PD_ORDER_MAX_SLOTS, &n_slots);
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }
    /* The offers a window at a time through a buffer on the stack: this
     * view follows every order write, and nothing may fail once the write
     * is done (a write that replies an error is not journaled). */
    pd_offer_t offers[32];
    size_t n_offers = 0, total = 0;
    err = pd_engine_order_offers_from(e, id, 0, offers, 32, &n_offers, &total);
    if (err) {
        pd_reply_engine_error(c, err, "order", id);
        return;
    }

    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, PD_ORDER_FIELDS + 2);
    pd_pack_order_fields(pk, &oi);

    pd_pack_cstr(pk, "slots");
    msgpack_pack_array(pk, (uint32_t)n_slots);
    for (size_t i = 0; i < n_slots; i++) {
        msgpack_pack_map(pk, 3);
        pd_pack_cstr(pk, "skills");
        pd_pack_skills(pk, e, slots[i].skills);
        pd_pack_cstr(pk, "volunteer");
        if (slots[i].filled)
            msgpack_pack_uint64(pk, slots[i].volunteer_id);
        else
            msgpack_pack_nil(pk);
        pd_pack_kv_u64(pk, "live_offers", slots[i].n_live_offers);
    }
    pd_pack_cstr(pk, "offers");
    msgpack_pack_array(pk, (uint32_t)total);
    for (size_t at = 0; at < total;) {
        for (size_t i = 0; i < n_offers; i++) {
            const pd_offer_t *o = &offers[i];
            msgpack_pack_map(pk, 6);
            pd_pack_kv_u64(pk, "volunteer", o->volunteer_id);
            pd_pack_kv_u64(pk, "slot", o->slot);
            pack_name_or_nil(pk, "state", pd_offer_state_name((pd_offer_state)o->state));
            pack_name_or_nil(pk, "reason", pd_reason_name((pd_reason)o->reason));
            pd_pack_kv_i64(pk, "offered_ms", o->offered_ms);
            pd_pack_kv_i64(pk, "deadline_ms", o->deadline_ms);
        }
        at += n_offers;
        /* Cannot fail (nothing runs while the reply is packed); the frame
         * is kept whole if it did. */
        if (at < total &&
            PD_NEVER(pd_engine_order_offers_from(e, id, at, offers, 32, &n_offers, NULL) ||
                     n_offers == 0)) {
            for (; at < total; at++) msgpack_pack_nil(pk);
        }
    }
}
