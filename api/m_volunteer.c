/* m_volunteer.c -- volunteer.upsert / update / remove / get.
 *
 * volunteer.update with nothing but lat/lon is the location ping, the
 * hottest write: it goes straight to pd_engine_volunteer_move() and
 * replies `true`, with no lookups beyond the engine's own.
 */
#include <string.h>

#include "args.h"
#include "methods.h"
#include "view.h"

/* ILLEGAL from an upsert or update: the new capacity is below what the
 * volunteer holds now (the engine's only refusal of that kind). */
static void reply_capacity_below_load(pd_conn_t *c, uint64_t id, int64_t cap) {
    pd_volunteer_info_t vi;
    unsigned load = 0;
    if (pd_engine_volunteer_get(c->srv->engine, id, c->srv->now_ms, &vi) == PD_OK) load = vi.v.load;
    pd_reply_error(c, PD_ERR_ILLEGAL,
                   "volunteer %llu holds %u offers and orders now: 'capacity' %lld is below that",
                   (unsigned long long)id, load, (long long)cap);
}

static const char *const volunteer_keys[] = {"id",   "lat",      "lon",      "skills", "tags",
                                             "mode", "schedule", "capacity", "status", NULL};

void pd_m_volunteer_upsert(pd_conn_t *c, const msgpack_object *p) {
    pd_engine_t *e = c->srv->engine;
    if (pd_args_check_or_reply(c, p, volunteer_keys)) return;
    pd_volunteer_t v;
    memset(&v, 0, sizeof(v));
    int64_t cap;
    int mode, status;
    if (pd_arg_get_u64_or_reply(c, p, "id", &v.id)) return;
    if (pd_arg_get_latlng_or_reply(c, p, &v.pos)) return;
    if (!pd_arg_find(p, "skills")) {
        pd_reply_error(c, PD_ERR_BAD_ARG, "missing argument 'skills'");
        return;
    }
    if (pd_arg_opt_skills_or_reply(c, p, "skills", e, &v.skills)) return;
    if (pd_arg_opt_tags_or_reply(c, p, "tags", &v.tags)) return;
    if (pd_arg_opt_enum_or_reply(c, p, "mode", pd_parse_mode, PD_MODE__COUNT, PD_MODE_WALK, &mode,
                                 "walk, bike, ebike, car"))
        return;
    if (pd_arg_opt_week_or_reply(c, p, "schedule", &v.week)) return;
    if (pd_arg_opt_i64_or_reply(c, p, "capacity", 1, 255, 1, &cap)) return;
    if (pd_arg_opt_enum_or_reply(c, p, "status", pd_parse_status, PD_STATUS__COUNT,
                                 PD_STATUS_ONLINE, &status, "online, busy, offline"))
        return;
    v.mode = (uint8_t)mode;
    v.status = (uint8_t)status;
    v.capacity = (uint8_t)cap;
    pd_volunteer_t old;
    bool created = pd_index_get(pd_engine_get_index(e), v.id, &old) != PD_OK;
    pd_err err = pd_engine_volunteer_upsert(e, &v, c->srv->now_ms);
    if (err == PD_ERR_ILLEGAL) {
        reply_capacity_below_load(c, v.id, cap);
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "volunteer", v.id);
        return;
    }
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 2);
    pd_pack_kv_u64(pk, "id", v.id);
    pd_pack_kv_bool(pk, "created", created);
}

void pd_m_volunteer_update(pd_conn_t *c, const msgpack_object *p) {
    pd_engine_t *e = c->srv->engine;
    if (pd_args_check_or_reply(c, p, volunteer_keys)) return;
    uint64_t id;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    pd_volunteer_patch_t patch;
    memset(&patch, 0, sizeof(patch));
    bool has_pos;
    if (pd_arg_opt_latlng_or_reply(c, p, &patch.pos, &has_pos)) return;
    pd_err err;
    if (has_pos && p->via.map.size == 3) {
        err = pd_engine_volunteer_move(e, id, patch.pos, c->srv->now_ms);
        if (err) {
            pd_reply_engine_error(c, err, "volunteer", id);
            return;
        }
        msgpack_pack_true(pd_reply_ok(c));
        return;
    }
    if (has_pos) patch.fields |= PD_VF_POS;
    if (pd_arg_find(p, "skills")) {
        if (pd_arg_opt_skills_or_reply(c, p, "skills", e, &patch.skills)) return;
        patch.fields |= PD_VF_SKILLS;
    }
    if (pd_arg_find(p, "tags")) {
        if (pd_arg_opt_tags_or_reply(c, p, "tags", &patch.tags)) return;
        patch.fields |= PD_VF_TAGS;
    }
    if (pd_arg_find(p, "mode")) {
        int mode;
        if (pd_arg_opt_enum_or_reply(c, p, "mode", pd_parse_mode, PD_MODE__COUNT, 0, &mode,
                                     "walk, bike, ebike, car"))
            return;
        patch.mode = (uint8_t)mode;
        patch.fields |= PD_VF_MODE;
    }
    if (pd_arg_find(p, "schedule")) {
        if (pd_arg_opt_week_or_reply(c, p, "schedule", &patch.week)) return;
        patch.fields |= PD_VF_WEEK;
    }
    if (pd_arg_find(p, "capacity")) {
        int64_t cap;
        if (pd_arg_opt_i64_or_reply(c, p, "capacity", 1, 255, 1, &cap)) return;
        patch.capacity = (uint8_t)cap;
        patch.fields |= PD_VF_CAPACITY;
    }
    if (pd_arg_find(p, "status")) {
        int status;
        if (pd_arg_opt_enum_or_reply(c, p, "status", pd_parse_status, PD_STATUS__COUNT, 0, &status,
                                     "online, busy, offline"))
            return;
        patch.status = (uint8_t)status;
        patch.fields |= PD_VF_STATUS;
    }
    err = pd_engine_volunteer_update(e, id, &patch, c->srv->now_ms);
    if (err == PD_ERR_ILLEGAL) {
        reply_capacity_below_load(c, id, patch.capacity);
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "volunteer", id);
        return;
    }
    msgpack_pack_true(pd_reply_ok(c));
}

void pd_m_volunteer_remove(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"id", NULL};
    if (pd_args_check_or_reply(c, p, keys)) return;
    uint64_t id;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    pd_err err = pd_engine_volunteer_remove(c->srv->engine, id, c->srv->now_ms);
    if (err == PD_ERR_ILLEGAL) {
        pd_reply_error(c, err,
                       "volunteer %llu holds an accepted order: cancel or complete it first",
                       (unsigned long long)id);
        return;
    }
    if (err) {
        pd_reply_engine_error(c, err, "volunteer", id);
        return;
    }
    msgpack_pack_true(pd_reply_ok(c));
}

void pd_m_volunteer_get(pd_conn_t *c, const msgpack_object *p) {
    static const char *const keys[] = {"id", NULL};
    const pd_engine_t *e = c->srv->engine;
    if (pd_args_check_or_reply(c, p, keys)) return;
    uint64_t id;
    if (pd_arg_get_u64_or_reply(c, p, "id", &id)) return;
    pd_volunteer_info_t vi;
    pd_err err = pd_engine_volunteer_get(e, id, c->srv->now_ms, &vi);
    if (err) {
        pd_reply_engine_error(c, err, "volunteer", id);
        return;
    }
    const pd_volunteer_t *v = &vi.v;
    const pd_volunteer_record_t *r = &vi.rec;
    msgpack_packer *pk = pd_reply_ok(c);
    msgpack_pack_map(pk, 27);
    pd_pack_kv_u64(pk, "id", v->id);
    pd_pack_kv_double(pk, "lat", v->pos.lat / 1e6);
    pd_pack_kv_double(pk, "lon", v->pos.lon / 1e6);
    pd_pack_cstr(pk, "skills");
    pd_pack_skills(pk, e, v->skills);
    pd_pack_cstr(pk, "tags");
    pd_pack_tags(pk, v->tags);
    pd_pack_kv_str(pk, "mode", pd_mode_name((pd_mode)v->mode));
    pd_pack_cstr(pk, "schedule");
    pd_pack_week(pk, &v->week);
    pd_pack_kv_u64(pk, "capacity", v->capacity);
    pd_pack_kv_u64(pk, "load", v->load);
    pd_pack_kv_str(pk, "status", pd_status_name((pd_status)v->status));
    pd_pack_kv_double(pk, "hours", r->minutes_total / 60.0);
    pd_pack_kv_double(pk, "hours_7d", r->minutes_7d / 60.0);
    pd_pack_kv_u64(pk, "minutes_total", r->minutes_total);
    pd_pack_kv_double(pk, "points", r->points);
    pd_pack_kv_u64(pk, "stars", r->stars);
    pd_pack_kv_double(pk, "rating", r->rating_mean);
    pd_pack_kv_u64(pk, "rating_count", r->rating_count);
    pd_pack_kv_u64(pk, "orders_completed", r->orders_completed);
    pd_pack_kv_u64(pk, "offers_received", r->offers_received);
    pd_pack_kv_u64(pk, "offers_accepted", r->offers_accepted);
    pd_pack_kv_u64(pk, "offers_declined", r->offers_declined);
    pd_pack_kv_u64(pk, "offers_expired", r->offers_expired);
    pd_pack_kv_u64(pk, "offers_withdrawn", r->offers_withdrawn);
    pd_pack_kv_u64(pk, "releases", r->releases);
    pd_pack_kv_u64(pk, "notified_count", r->notified_count);
    pd_pack_kv_i64(pk, "last_notified_ms", r->last_notified_ms);
    pd_pack_kv_i64(pk, "last_served_ms", r->last_served_ms);
}
