/* jsource.c -- replay's journal source: the volunteers and orders that a
 * paidan-server data directory holds, read offline.
 *
 * The oldest snapshot that opens cleanly gives the volunteers it held; the
 * journal segments after it give, each stamped with the time the server
 * ran it, every volunteer.upsert (and imported volunteer), volunteer.update
 * and volunteer.remove, and every order.create (and imported order). The
 * replay applies the volunteers' events at their times, between the
 * orders. Accepts, declines, completions and ratings in the journal are
 * not replayed: the replay's response model answers instead, so every
 * policy meets the same demand. Orders already inside the snapshot are not
 * replayed.
 * Records that do not parse are counted and skipped, never fatal; a
 * segment that ends torn is read up to its last whole record.
 */
#include "jsource.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paidan/journal.h"

/* ------------------------------------------------------------- growth */

static pd_err push_vol(pd__jsource_t *js, const pd_volunteer_t *v) {
    if (js->nv == js->capv) {
        size_t cap = js->capv ? js->capv * 2 : 1024;
        pd_volunteer_t *p = realloc(js->vols, cap * sizeof *p);
        if (!p) return PD_ERR_NOMEM;
        js->vols = p;
        js->capv = cap;
    }
    js->vols[js->nv++] = *v;
    return PD_OK;
}

static pd_err push_vev(pd__jsource_t *js, const pd__jvol_ev_t *ev) {
    if (js->nvev == js->capvev) {
        size_t cap = js->capvev ? js->capvev * 2 : 1024;
        pd__jvol_ev_t *p = realloc(js->vev, cap * sizeof *p);
        if (!p) return PD_ERR_NOMEM;
        js->vev = p;
        js->capvev = cap;
    }
    js->vev[js->nvev++] = *ev;
    return PD_OK;
}

static pd_err push_upsert(pd__jsource_t *js, const pd_jrec_t *rec, const pd_volunteer_t *v) {
    pd__jvol_ev_t ev;
    memset(&ev, 0, sizeof ev);
    ev.ts_ms = rec->ts_ms;
    ev.seq = rec->seq;
    ev.kind = PD__JV_UPSERT;
    ev.v = *v;
    return push_vev(js, &ev);
}

static pd_err push_order(pd__jsource_t *js, const pd__rorder_t *o) {
    if (js->no == js->capo) {
        size_t cap = js->capo ? js->capo * 2 : 1024;
        pd__rorder_t *p = realloc(js->ords, cap * sizeof *p);
        if (!p) return PD_ERR_NOMEM;
        js->ords = p;
        js->capo = cap;
    }
    js->ords[js->no++] = *o;
    return PD_OK;
}

/* A team order's slot masks into the pool; *off says where they went. */
static pd_err push_slots(pd__jsource_t *js, const uint64_t *m, size_t n, uint32_t *off) {
    if (js->nslots + n > UINT32_MAX) return PD_ERR_NOMEM;
    if (js->nslots + n > js->capslots) {
        size_t cap = js->capslots ? js->capslots * 2 : 1024;
        while (cap < js->nslots + n) cap *= 2;
        uint64_t *p = realloc(js->slots, cap * sizeof *p);
        if (!p) return PD_ERR_NOMEM;
        js->slots = p;
        js->capslots = cap;
    }
    *off = (uint32_t)js->nslots;
    memcpy(js->slots + js->nslots, m, n * sizeof *m);
    js->nslots += n;
    return PD_OK;
}

/* ------------------------------------------------------- msgpack params */

typedef struct ctx_s {
    pd__jsource_t *js;
    const char *const *names;
    size_t n_names;
    uint64_t after_seq; /* records up to this seq are in the snapshot */
    /* Binary records (the snapshot's volunteers, imports) carry skill bits
     * of the server's configuration: bit i there is bit to[i] here (-1:
     * a name the replay's table lacks). Identity until a configuration is
     * read. */
    int8_t to[64];
} ctx_t;

/* The server's skill table (cfg) against the replay's, by name. */
static void map_skills(ctx_t *c, const pd_engine_config_t *cfg) {
    for (uint32_t i = 0; i < 64; i++) {
        c->to[i] = -1;
        if (i >= cfg->n_skills) continue;
        for (size_t j = 0; j < c->n_names && j < 64; j++) {
            if (c->names[j] && strcmp(c->names[j], cfg->skills[i]) == 0) {
                c->to[i] = (int8_t)j;
                break;
            }
        }
    }
}

/* A mask of the server's bits in the replay's; false when one of its
 * skills has no name here (the record is skipped, as a command naming an
 * unknown skill is). */
static bool remap(const ctx_t *c, uint64_t *mask) {
    uint64_t out = 0;
    for (uint64_t m = *mask; m; m &= m - 1) {
        int b = __builtin_ctzll(m);
        if (c->to[b] < 0) return false;
        out |= 1ULL << c->to[b];
    }
    *mask = out;
    return true;
}

static const msgpack_object *get(const msgpack_object *map, const char *key) {
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0) {
            const msgpack_object *v = &map->via.map.ptr[i].val;
            return v->type == MSGPACK_OBJECT_NIL ? NULL : v;
        }
    }
    return NULL;
}

static bool num(const msgpack_object *o, double *out) {
    if (!o) return false;
    switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            *out = (double)o->via.u64;
            return true;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            *out = (double)o->via.i64;
            return true;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            *out = o->via.f64;
            return true;
        default:
            return false;
    }
}

/* An id: a whole number as the protocol takes it -- an integer, or a
 * float with no fraction. Not through a double: ids above 2^53 (a
 * load run's, say) would round together and collide. */
static bool id_of(const msgpack_object *o, uint64_t *out) {
    if (!o) return false;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return true;
    }
    if ((o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) &&
        o->via.f64 >= 0 && o->via.f64 < 0x1p64 && o->via.f64 == floor(o->via.f64)) {
        *out = (uint64_t)o->via.f64;
        return true;
    }
    return false;
}

static double num_or(const msgpack_object *o, double dflt) {
    double v;
    return num(o, &v) ? v : dflt;
}

static bool str_is(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

/* A skill name (n bytes) to its bit in the replay's table. */
static bool skill_bit(const ctx_t *c, const char *p, size_t n, uint64_t *mask) {
    while (n && *p == ' ') p++, n--;
    while (n && p[n - 1] == ' ') n--;
    if (!n) return true;
    for (size_t i = 0; i < c->n_names && i < 64; i++) {
        if (c->names[i] && strlen(c->names[i]) == n && memcmp(c->names[i], p, n) == 0) {
            *mask |= 1ULL << i;
            return true;
        }
    }
    return false;
}

/* skills: an array of names or one comma-separated string. */
static bool skills_of(const ctx_t *c, const msgpack_object *o, uint64_t *mask) {
    *mask = 0;
    if (!o) return true;
    if (o->type == MSGPACK_OBJECT_STR) {
        const char *p = o->via.str.ptr, *end = p + o->via.str.size;
        while (p < end) {
            const char *q = memchr(p, ',', (size_t)(end - p));
            if (!q) q = end;
            if (!skill_bit(c, p, (size_t)(q - p), mask)) return false;
            p = q + 1;
        }
        return true;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) return false;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *s = &o->via.array.ptr[i];
        if (s->type != MSGPACK_OBJECT_STR || !skill_bit(c, s->via.str.ptr, s->via.str.size, mask))
            return false;
    }
    return true;
}

static bool pos_of(const msgpack_object *p, pd_latlng_t *out) {
    double lat, lon;
    return num(get(p, "lat"), &lat) && num(get(p, "lon"), &lon) &&
           pd_latlng_from_deg(lat, lon, out) == PD_OK;
}

/* tags: an array of bit numbers, or the mask as a number. */
static uint64_t tags_of(const msgpack_object *tags) {
    uint64_t mask = 0;
    if (tags && tags->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < tags->via.array.size; i++) {
            double b;
            if (num(&tags->via.array.ptr[i], &b) && b >= 0 && b < 64) mask |= 1ULL << (int)b;
        }
        return mask;
    }
    return (uint64_t)num_or(tags, 0);
}

/* An enum as the protocol takes it: a name of names[0..n) (pd_mode_name,
 * pd_status_name, ...) or its integer value (also as a whole float), so
 * `"status": 2` is offline here as it was on the server. */
static bool name_of(const msgpack_object *o, const char *(*name)(int), int n, uint8_t *out) {
    uint64_t v;
    if (o && o->type != MSGPACK_OBJECT_STR && id_of(o, &v)) {
        if (v >= (uint64_t)n) return false;
        *out = (uint8_t)v;
        return true;
    }
    for (int i = 0; i < n; i++) {
        if (str_is(o, name(i))) {
            *out = (uint8_t)i;
            return true;
        }
    }
    return false;
}

static const char *mode_name(int m) {
    return pd_mode_name((pd_mode)m);
}

static const char *status_name(int s) {
    return pd_status_name((pd_status)s);
}

static const char *priority_name(int p) {
    return pd_gen_priority_name((pd_gen_priority)p);
}

/* schedule: [[weekday, start_hour, end_hour], ...]. */
static bool week_of(const msgpack_object *sched, pd_week_t *week) {
    if (sched->type != MSGPACK_OBJECT_ARRAY) return false;
    *week = pd_week_none();
    for (uint32_t i = 0; i < sched->via.array.size; i++) {
        const msgpack_object *r = &sched->via.array.ptr[i];
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 3) return false;
        double d, s, e;
        if (!num(&r->via.array.ptr[0], &d) || !num(&r->via.array.ptr[1], &s) ||
            !num(&r->via.array.ptr[2], &e) ||
            pd_week_add_range(week, (int)d, (int)s, (int)e) != PD_OK)
            return false;
    }
    return true;
}

static bool volunteer_of(const ctx_t *c, const msgpack_object *p, pd_volunteer_t *v) {
    memset(v, 0, sizeof *v);
    if (!id_of(get(p, "id"), &v->id) || !pos_of(p, &v->pos)) return false;
    if (!skills_of(c, get(p, "skills"), &v->skills)) return false;
    v->tags = tags_of(get(p, "tags"));
    v->mode = PD_MODE_WALK;
    (void)name_of(get(p, "mode"), mode_name, PD_MODE__COUNT, &v->mode);
    v->status = PD_STATUS_ONLINE;
    (void)name_of(get(p, "status"), status_name, PD_STATUS__COUNT, &v->status);
    v->capacity = (uint8_t)num_or(get(p, "capacity"), 1);
    if (!v->capacity) v->capacity = 1;
    const msgpack_object *sched = get(p, "schedule");
    if (!sched)
        v->week = pd_week_all();
    else if (!week_of(sched, &v->week))
        return false;
    return pd_volunteer_check(v) == PD_OK;
}

/* volunteer.update: the id and the fields it sets. */
static bool patch_of(const ctx_t *c, const msgpack_object *p, uint64_t *id,
                     pd_volunteer_patch_t *pt) {
    memset(pt, 0, sizeof *pt);
    if (!id_of(get(p, "id"), id)) return false;
    if (get(p, "lat") || get(p, "lon")) {
        if (!pos_of(p, &pt->pos)) return false;
        pt->fields |= PD_VF_POS;
    }
    const msgpack_object *o;
    if ((o = get(p, "skills"))) {
        if (!skills_of(c, o, &pt->skills)) return false;
        pt->fields |= PD_VF_SKILLS;
    }
    if ((o = get(p, "tags"))) {
        pt->tags = tags_of(o);
        pt->fields |= PD_VF_TAGS;
    }
    if ((o = get(p, "schedule"))) {
        if (!week_of(o, &pt->week)) return false;
        pt->fields |= PD_VF_WEEK;
    }
    if ((o = get(p, "mode"))) {
        if (!name_of(o, mode_name, PD_MODE__COUNT, &pt->mode)) return false;
        pt->fields |= PD_VF_MODE;
    }
    if ((o = get(p, "status"))) {
        if (!name_of(o, status_name, PD_STATUS__COUNT, &pt->status)) return false;
        pt->fields |= PD_VF_STATUS;
    }
    if ((o = get(p, "capacity"))) {
        double cap;
        if (!num(o, &cap) || cap < 1 || cap > 255) return false;
        pt->capacity = (uint8_t)cap;
        pt->fields |= PD_VF_CAPACITY;
    }
    return true;
}

/* order.create's params as the server read them (api/m_order.c): the
 * tags, the ETA budget in seconds (0 = the engine's budget_min, as on the
 * server), ignore_schedule and a team's slots go to the engine as they
 * were. */
static pd_err order_of(const ctx_t *c, const msgpack_object *p, int64_t ts, pd__rorder_t *o,
                       bool *ok) {
    memset(o, 0, sizeof *o);
    *ok = false;
    pd_gen_order_t *g = &o->g;
    if (!id_of(get(p, "id"), &g->id) || !pos_of(p, &g->pos)) return PD_OK;
    g->created_ms = ts;
    if (!skills_of(c, get(p, "skills"), &g->skills)) return PD_OK;
    g->need = (uint32_t)num_or(get(p, "need"), 1);
    const msgpack_object *slots = get(p, "slots");
    uint64_t m[PD_ORDER_MAX_SLOTS];
    size_t n = 0;
    if (slots) {
        if (slots->type != MSGPACK_OBJECT_ARRAY) return PD_OK;
        for (uint32_t i = 0; i < slots->via.array.size; i++) {
            const msgpack_object *sl = &slots->via.array.ptr[i];
            uint64_t mask;
            double need = num_or(get(sl, "need"), 1);
            if (!skills_of(c, get(sl, "skills"), &mask) || need < 1 ||
                need > PD_ORDER_MAX_SLOTS - (double)n)
                return PD_OK;
            for (int k = 0; k < (int)need; k++) m[n++] = mask;
        }
        if (n == 0) return PD_OK;
        g->need = (uint32_t)n;
        g->skills = m[0];
    }
    if (g->need == 0) g->need = 1;
    g->start_ms = (int64_t)num_or(get(p, "start"), (double)ts);
    g->duration_min = (int32_t)num_or(get(p, "duration_min"), 60);
    double minutes = 0;
    if (get(p, "minutes") && (!num(get(p, "minutes"), &minutes) || !(minutes >= 1.0 / 60.0) ||
                              minutes > PD_GEN_MAX_BUDGET_MIN))
        return PD_OK;
    o->budget_s = (int32_t)(minutes * 60.0 + 0.5);
    g->budget_min = o->budget_s ? (o->budget_s + 59) / 60 : 15; /* for the check only */
    o->tags = tags_of(get(p, "tags"));
    const msgpack_object *ig = get(p, "ignore_schedule");
    o->ignore_schedule = ig && ig->type == MSGPACK_OBJECT_BOOLEAN && ig->via.boolean;
    const msgpack_object *pr = get(p, "priority");
    if (pr && !name_of(pr, priority_name, PD_GEN_PRIORITY__COUNT, &g->priority)) return PD_OK;
    if (pd_gen_order_check(g) != PD_OK) return PD_OK;
    if (n) {
        pd_err err = push_slots(c->js, m, n, &o->slot_off);
        if (err) return err;
        o->n_slots = (uint8_t)n;
    }
    *ok = true;
    return PD_OK;
}

/* ---------------------------------------------------------- the records */

static pd_err on_record(void *ud, const pd_jrec_t *rec) {
    ctx_t *c = ud;
    pd__jsource_t *js = c->js;
    if (rec->seq <= c->after_seq) return PD_OK;
    if (rec->type == PD_JREC_CONFIG) {
        pd_engine_config_t cfg;
        if (pd_engine_config_decode(rec->data, rec->len, &cfg) == PD_OK) map_skills(c, &cfg);
        return PD_OK;
    }
    if (rec->type == PD_JREC_VOLUNTEER) {
        pd_volunteer_t v;
        if (pd_jrec_volunteer_decode(rec->data, rec->len, &v) != PD_OK ||
            pd_volunteer_check(&v) != PD_OK || !remap(c, &v.skills)) {
            js->skipped++;
            return PD_OK;
        }
        return push_upsert(js, rec, &v);
    }
    if (rec->type == PD_JREC_ORDER) {
        pd_order_spec_t sp;
        memset(&sp, 0, sizeof sp);
        pd__rorder_t ro;
        memset(&ro, 0, sizeof ro);
        pd_gen_order_t *o = &ro.g;
        bool ok = pd_jrec_order_decode(rec->data, rec->len, &sp) == PD_OK && remap(c, &sp.skills);
        o->id = sp.id;
        o->created_ms = rec->ts_ms;
        o->pos = sp.at;
        o->skills = sp.skills;
        o->need = sp.need ? sp.need : 1;
        o->start_ms = sp.start_ms;
        o->duration_min = sp.duration_min;
        ro.budget_s = sp.budget_s > 0 ? sp.budget_s : 0;
        o->budget_min = ro.budget_s ? (ro.budget_s + 59) / 60 : 15; /* for the check only */
        o->priority = sp.priority;
        if (!ok || pd_gen_order_check(o) != PD_OK) {
            js->skipped++;
            return PD_OK;
        }
        return push_order(js, &ro);
    }
    if (rec->type != PD_JREC_COMMAND) return PD_OK;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    pd_err err = PD_OK;
    if (msgpack_unpack_next(&u, (const char *)rec->data, rec->len, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 2) {
        const msgpack_object *method = &u.data.via.array.ptr[0];
        const msgpack_object *params = &u.data.via.array.ptr[1];
        pd__jvol_ev_t ev;
        memset(&ev, 0, sizeof ev);
        ev.ts_ms = rec->ts_ms;
        ev.seq = rec->seq;
        if (str_is(method, "volunteer.upsert")) {
            pd_volunteer_t v;
            if (volunteer_of(c, params, &v))
                err = push_upsert(js, rec, &v);
            else
                js->skipped++;
        } else if (str_is(method, "volunteer.update")) {
            ev.kind = PD__JV_UPDATE;
            if (patch_of(c, params, &ev.v.id, &ev.patch))
                err = push_vev(js, &ev);
            else
                js->skipped++;
        } else if (str_is(method, "volunteer.remove")) {
            ev.kind = PD__JV_REMOVE;
            if (id_of(get(params, "id"), &ev.v.id))
                err = push_vev(js, &ev);
            else
                js->skipped++;
        } else if (str_is(method, "order.create")) {
            pd__rorder_t o;
            bool ok;
            err = order_of(c, params, rec->ts_ms, &o, &ok);
            if (!err && ok)
                err = push_order(js, &o);
            else if (!err)
                js->skipped++;
        }
    } else {
        js->skipped++;
    }
    msgpack_unpacked_destroy(&u);
    return err;
}

typedef struct snapvol_s {
    ctx_t *c;
    bool nomem;
} snapvol_t;

static bool vol_from_snapshot(void *ud, const pd_volunteer_info_t *vi) {
    snapvol_t *sv = ud;
    pd_volunteer_t v = vi->v;
    v.load = 0;
    if (!remap(sv->c, &v.skills)) {
        sv->c->js->skipped++;
        return true;
    }
    if (push_vol(sv->c->js, &v) == PD_OK) return true;
    sv->nomem = true;
    return false;
}

static int cmp_vev(const void *a, const void *b) {
    const pd__jvol_ev_t *x = a, *y = b;
    if (x->ts_ms != y->ts_ms) return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of dir starting with prefix and ending with suffix, sorted
 * (names carry zero-padded sequence numbers, so that is seq order). */
static size_t list(const char *dir, const char *prefix, const char *suffix, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *de;
    size_t lp = strlen(prefix), ls = strlen(suffix);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < lp + ls || strncmp(de->d_name, prefix, lp) || strcmp(de->d_name + l - ls, suffix))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        v[n] = strdup(de->d_name);
        if (v[n]) n++;
    }
    closedir(d);
    if (n > 1) qsort(v, n, sizeof *v, cmp_name);
    *out = v;
    return n;
}

static void list_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

pd_err pd__jsource_load(const char *dir, const char *const *names, size_t n_names,
                        pd__jsource_t *js, char *why, size_t cap) {
    memset(js, 0, sizeof *js);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, cap, "%s: cannot open the data directory: %s", dir, strerror(errno));
        return errno == ENOENT || errno == ENOTDIR ? PD_ERR_NOT_FOUND : PD_ERR_IO;
    }
    closedir(d);
    char **snaps, **segs;
    size_t ns = list(dir, "snap-", ".pds", &snaps);
    size_t nj = list(dir, "journal-", ".pdj", &segs);
    if (ns + nj == 0) {
        snprintf(why, cap, "%s: no snapshot or journal segment (snap-*.pds, journal-*.pdj)", dir);
        list_free(snaps, ns);
        list_free(segs, nj);
        return PD_ERR_NOT_FOUND;
    }
    ctx_t c = {js, names, n_names, 0, {0}};
    for (int i = 0; i < 64; i++) c.to[i] = (int8_t)i;
    char path[4096];
    pd_err err = PD_OK;
    /* The oldest snapshot that opens and decodes: the server keeps the
     * journal segments the older of its two snapshots needs, so this gives
     * the longest history of orders. */
    for (size_t i = 0; i < ns; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, snaps[i]);
        pd_snapshot_file_t f;
        if (pd_snapshot_file_open(path, &f, NULL) != PD_OK) continue;
        pd_engine_t *e = NULL;
        if (pd_engine_snapshot_restore(f.data, f.len, NULL, &e) == PD_OK) {
            c.after_seq = f.seq;
            map_skills(&c, pd_engine_get_config(e));
            snapvol_t sv = {&c, false};
            pd_engine_foreach_volunteer(e, f.ts_ms, vol_from_snapshot, &sv);
            pd_engine_destroy(e);
            pd_snapshot_file_close(&f);
            if (sv.nomem) {
                snprintf(why, cap, "out of memory reading %s", path);
                err = PD_ERR_NOMEM;
            }
            break;
        }
        pd_snapshot_file_close(&f);
    }
    /* Every record after the snapshot, without a hole, as the server's
     * recovery reads them: a history with a hole in it would give figures
     * of another history. */
    uint64_t expect = c.after_seq + 1;
    for (size_t i = 0; i < nj && !err; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, segs[i]);
        pd_jscan_t scan;
        memset(&scan, 0, sizeof scan);
        err = pd_journal_scan(path, on_record, &c, &scan);
        if (err == PD_ERR_CORRUPT) {
            snprintf(why, cap, "%s: bad segment header (%s)", path,
                     scan.why ? scan.why : "unreadable");
            break;
        }
        if (err) {
            snprintf(why, cap, "%s: %s", path, pd_strerror(err));
            break;
        }
        if (scan.first_seq > expect) {
            snprintf(why, cap,
                     "journal gap before %s: expected seq %llu, it starts at %llu (records "
                     "are missing)",
                     path, (unsigned long long)expect, (unsigned long long)scan.first_seq);
            err = PD_ERR_CORRUPT;
            break;
        }
        if (scan.how != PD_JSCAN_CLEAN && (scan.how == PD_JSCAN_CORRUPT || i + 1 < nj)) {
            snprintf(why, cap,
                     "journal %s is corrupt at offset %llu (%s) after seq %llu, with %llu bytes "
                     "after it%s",
                     path, (unsigned long long)scan.bad_offset, scan.why ? scan.why : "bad record",
                     (unsigned long long)scan.last_seq,
                     (unsigned long long)(scan.file_size - scan.end),
                     i + 1 < nj ? " and later segments" : "");
            err = PD_ERR_CORRUPT;
            break;
        }
        if (scan.n_records && scan.last_seq >= expect) expect = scan.last_seq + 1;
    }
    list_free(snaps, ns);
    list_free(segs, nj);
    /* By time, journal order between equal times (a server's clock may
     * step back a little between two records). */
    if (!err && js->nvev > 1) qsort(js->vev, js->nvev, sizeof *js->vev, cmp_vev);
    if (err) pd__jsource_free(js);
    return err;
}

void pd__jsource_free(pd__jsource_t *js) {
    free(js->vols);
    free(js->vev);
    free(js->ords);
    free(js->slots);
    memset(js, 0, sizeof *js);
}
