/* engine.c -- the engine object: lifecycle, skills by name, volunteers and
 * their records, the event queue, stats, the state digest and validation.
 *
 * Volunteers live in the index; their records live in e->recs, indexed by
 * the index slot (stable while the volunteer stays, reused after removal,
 * so a new volunteer's record is zeroed when the slot is handed out). The
 * record mirrors status, capacity and load, so changing the load is one
 * pd_index_set_state_slot call with no read and no id lookup.
 *
 * Events are queued during a call and delivered when it has finished
 * changing the state; the callback may read the engine but not change it
 * (a mutating call from inside it returns PD_ERR_ILLEGAL).
 *
 * The digest sums a hash per volunteer and per order (addition is
 * commutative), so it does not depend on slot numbers, array positions or
 * the order volunteers were inserted: only on the state itself.
 */
#include "paidan/engine.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "engine_int.h"
#include "paidan/alloc.h"

/* ------------------------------------------------------------ buffers */

pd_err pd__grow(void **buf, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return PD_OK;
    size_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / size) return PD_ERR_NOMEM;
        nc *= 2;
    }
    void *p = pd_realloc(*buf, nc * size);
    if (!p) return PD_ERR_NOMEM;
    pd_alloc_advise_huge(p, nc * size);
    *buf = p;
    *cap = nc;
    return PD_OK;
}

pd_err pd__events_reserve(pd_engine_t *e, size_t more) {
    return pd__grow((void **)&e->evq, &e->cap_ev, e->n_ev + more, sizeof *e->evq);
}

void pd__event_push(pd_engine_t *e, const pd_event_t *ev) {
    if (PD_NEVER(e->n_ev >= e->cap_ev)) return;
    e->evq[e->n_ev++] = *ev;
}

void pd__events_flush(pd_engine_t *e) {
    size_t n = e->n_ev;
    e->events_emitted += n;
    if (e->ev_fn && n) {
        e->delivering = true;
        for (size_t i = 0; i < n; i++) e->ev_fn(e->ev_ud, &e->evq[i]);
        e->delivering = false;
    }
    e->n_ev = 0;
}

void pd_engine_set_event_cb(pd_engine_t *e, pd_event_fn fn, void *ud) {
    e->ev_fn = fn;
    e->ev_ud = ud;
}

void pd__set_load(pd_engine_t *e, uint32_t vslot, uint8_t load) {
    pd__vrec_t *r = &e->recs[vslot];
    r->load = load;
    pd_err err = pd_index_set_state_slot(e->ix, vslot, (pd_status)r->status, r->capacity, load);
    (void)PD_NEVER(err != PD_OK);
}

/* ---------------------------------------------------------- lifecycle */

static double policy_bound(const pd_engine_config_t *c) {
    switch (c->policy) {
        case PD_POLICY_BALANCED:
            return c->balanced_weight_s_per_hour * c->balanced_cap_hours;
        case PD_POLICY_RATED:
            return c->rated_weight_s * 4.0; /* 5 - mean, mean >= 1 */
        default:
            return 0.0;
    }
}

pd_err pd_engine_create(const pd_engine_config_t *cfg, pd_engine_t **out) {
    pd_engine_config_t def;
    if (!cfg) {
        pd_engine_config_init(&def);
        cfg = &def;
    }
    pd_err err = pd_engine_config_check(cfg);
    if (err) return err;
    pd_engine_t *e = pd_calloc(1, sizeof *e);
    if (!e) return PD_ERR_NOMEM;
    e->cfg = *cfg;
    e->policy_bound_s = policy_bound(cfg);
    if ((err = pd_index_create(&cfg->index, &e->ix))) goto fail;
    if ((err = pd__idmap_init(&e->omap, 16))) goto fail;
    e->picks = pd_malloc(PD__MAX_PICKS * sizeof *e->picks);
    if (!e->picks) {
        err = PD_ERR_NOMEM;
        goto fail;
    }
    *out = e;
    return PD_OK;
fail:
    pd_engine_destroy(e);
    return err;
}

void pd_engine_destroy(pd_engine_t *e) {
    if (!e) return;
    for (uint32_t i = 0; i < e->n_orders; i++) pd__order_free(&e->orders[i]);
    pd_big_free(e->orders, e->cap_orders_sz * sizeof *e->orders);
    pd__idmap_deinit(&e->omap);
    pd_index_destroy(e->ix);
    pd_big_free(e->recs, (size_t)e->recs_cap * sizeof *e->recs);
    pd_free(e->due);
    pd_free(e->evq);
    pd_free(e->picks);
    pd_free(e->scratch_u32);
    pd_free(e->tick_due);
    pd_free(e->tick_orders);
    pd__batch_free(e);
    pd_free(e);
}

const pd_engine_config_t *pd_engine_get_config(const pd_engine_t *e) {
    return &e->cfg;
}

const pd_index_t *pd_engine_get_index(const pd_engine_t *e) {
    return e->ix;
}

/* ------------------------------------------------------------- skills */

uint32_t pd_engine_skill_count(const pd_engine_t *e) {
    return e->cfg.n_skills;
}

const char *pd_engine_skill_name(const pd_engine_t *e, uint32_t bit) {
    return bit < e->cfg.n_skills ? e->cfg.skills[bit] : NULL;
}

static pd_err skill_bit_n(const pd_engine_t *e, const char *name, size_t len, uint32_t *bit) {
    for (uint32_t i = 0; i < e->cfg.n_skills; i++) {
        if (strncmp(e->cfg.skills[i], name, len) == 0 && e->cfg.skills[i][len] == '\0') {
            *bit = i;
            return PD_OK;
        }
    }
    return PD_ERR_UNKNOWN_SKILL;
}

pd_err pd_engine_skill_bit(const pd_engine_t *e, const char *name, uint32_t *bit) {
    if (!name) return PD_ERR_BAD_ARG;
    size_t len = strlen(name);
    if (len == 0 || len >= PD_SKILL_NAME_MAX) return PD_ERR_UNKNOWN_SKILL;
    return skill_bit_n(e, name, len, bit);
}

pd_err pd_engine_skills_from_names(const pd_engine_t *e, const char *const *names, size_t n,
                                   uint64_t *mask) {
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bit;
        pd_err err = pd_engine_skill_bit(e, names[i], &bit);
        if (err) return err;
        m |= (uint64_t)1 << bit;
    }
    *mask = m;
    return PD_OK;
}

pd_err pd_engine_skills_parse(const pd_engine_t *e, const char *csv, uint64_t *mask) {
    if (!csv) return PD_ERR_BAD_ARG;
    uint64_t m = 0;
    const char *p = csv;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0') {
        *mask = 0;
        return PD_OK;
    }
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        const char *s = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > s && (end[-1] == ' ' || end[-1] == '\t')) end--;
        size_t len = (size_t)(end - s);
        if (len == 0 || len >= PD_SKILL_NAME_MAX) return PD_ERR_BAD_ARG;
        uint32_t bit;
        pd_err err = skill_bit_n(e, s, len, &bit);
        if (err) return err;
        m |= (uint64_t)1 << bit;
        if (*p == '\0') break;
        p++; /* the comma */
    }
    *mask = m;
    return PD_OK;
}

static bool skills_known(const pd_engine_t *e, uint64_t mask) {
    uint32_t n = e->cfg.n_skills;
    return n >= 64 || (mask >> n) == 0;
}

pd_err pd_engine_skills_to_string(const pd_engine_t *e, uint64_t mask, char *buf, size_t cap,
                                  size_t *len) {
    if (!skills_known(e, mask)) return PD_ERR_UNKNOWN_SKILL;
    size_t n = 0;
    for (uint32_t i = 0; i < e->cfg.n_skills; i++) {
        if (!(mask >> i & 1)) continue;
        size_t l = strlen(e->cfg.skills[i]);
        if (n + (n ? 1 : 0) + l + 1 > cap) return PD_ERR_BOUNDS;
        if (n) buf[n++] = ',';
        memcpy(buf + n, e->cfg.skills[i], l);
        n += l;
    }
    if (cap == 0) return PD_ERR_BOUNDS;
    buf[n] = '\0';
    if (len) *len = n;
    return PD_OK;
}

int32_t pd_engine_week_minute(const pd_engine_t *e, int64_t ms) {
    int32_t m = 0;
    pd_err err = pd_time_to_week_minute(ms, e->cfg.utc_offset_min, &m);
    (void)PD_NEVER(err != PD_OK);
    return m;
}

pd_err pd_engine_week_window(const pd_engine_t *e, int64_t start_ms, int32_t duration_min,
                             pd_week_t *out) {
    if (duration_min < 0 || duration_min > PD_WEEK_HOURS * 60) return PD_ERR_BAD_ARG;
    return pd_week_window(pd_engine_week_minute(e, start_ms), duration_min, out);
}

/* ---------------------------------------------------------- volunteers */

/* Room for a record at every slot the index may hand out in the next
 * `more` inserts. */
static pd_err recs_reserve(pd_engine_t *e, size_t more) {
    size_t need = (size_t)pd_index_slot_limit(e->ix) + more;
    if (need <= e->recs_cap) return PD_OK;
    size_t cap = e->recs_cap ? e->recs_cap : 64;
    while (cap < need) cap *= 2;
    if (cap > UINT32_MAX) return PD_ERR_LIMIT;
    /* Grown in place by the kernel (no copy), the new records zero pages
     * faulted in as they are first touched. */
    pd__vrec_t *r = pd_big_grow(e->recs, (size_t)e->recs_cap * sizeof *r, cap * sizeof *r);
    if (!r) return PD_ERR_NOMEM;
    e->recs = r;
    e->recs_cap = (uint32_t)cap;
    return PD_OK;
}

pd_err pd_engine_tidy(pd_engine_t *e, size_t budget, size_t *sorted) {
    return pd_index_optimize(e->ix, budget, sorted);
}

void pd_engine_huge_pages(pd_engine_t *e, size_t budget, size_t *n_pages, bool *done) {
    pd_index_huge_pages(e->ix, budget, n_pages, done);
}

pd_err pd_engine_reserve(pd_engine_t *e, size_t more) {
    if (more > (1u << 31)) return PD_ERR_LIMIT;
    pd_err err = pd_index_reserve(e->ix, more);
    if (!err) err = recs_reserve(e, more);
    return err;
}

pd_err pd_engine_volunteer_upsert(pd_engine_t *e, const pd_volunteer_t *v, int64_t now_ms) {
    (void)now_ms;
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!v) return PD_ERR_BAD_ARG;
    pd_err err = pd_volunteer_check(v);
    if (err) return err;
    if (!skills_known(e, v->skills)) return PD_ERR_UNKNOWN_SKILL;
    pd_volunteer_t nv = *v;
    uint32_t vslot;
    if (pd_index_get_slot(e->ix, v->id, &vslot) == PD_OK) {
        pd__vrec_t *r = &e->recs[vslot];
        if (v->capacity < r->load) return PD_ERR_ILLEGAL;
        nv.load = r->load;
        if ((err = pd_index_update(e->ix, &nv))) return err;
        r->status = nv.status;
        r->capacity = nv.capacity;
        return PD_OK;
    }
    if (e->max_vols && pd_index_count(e->ix) >= e->max_vols) return PD_ERR_LIMIT;
    if ((err = recs_reserve(e, 1))) return err;
    nv.load = 0;
    if ((err = pd_index_insert(e->ix, &nv))) return err;
    err = pd_index_get_slot(e->ix, v->id, &vslot);
    if (PD_NEVER(err) || PD_NEVER(vslot >= e->recs_cap)) {
        (void)pd_index_remove(e->ix, v->id);
        return PD_ERR_INTERNAL;
    }
    pd__vrec_t *r = &e->recs[vslot];
    memset(r, 0, sizeof *r);
    r->status = nv.status;
    r->capacity = nv.capacity;
    return PD_OK;
}

pd_err pd_engine_volunteer_update(pd_engine_t *e, uint64_t id, const pd_volunteer_patch_t *p,
                                  int64_t now_ms) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!p || (p->fields & ~(uint32_t)PD_VF__ALL)) return PD_ERR_BAD_ARG;
    if (p->fields == PD_VF_POS) return pd_engine_volunteer_move(e, id, p->pos, now_ms);
    pd_volunteer_t v;
    pd_err err = pd_index_get(e->ix, id, &v);
    if (err) return err;
    if (p->fields & PD_VF_POS) v.pos = p->pos;
    if (p->fields & PD_VF_SKILLS) v.skills = p->skills;
    if (p->fields & PD_VF_TAGS) v.tags = p->tags;
    if (p->fields & PD_VF_WEEK) v.week = p->week;
    if (p->fields & PD_VF_MODE) v.mode = p->mode;
    if (p->fields & PD_VF_STATUS) v.status = p->status;
    if (p->fields & PD_VF_CAPACITY) v.capacity = p->capacity;
    return pd_engine_volunteer_upsert(e, &v, now_ms);
}

pd_err pd_engine_volunteer_move(pd_engine_t *e, uint64_t id, pd_latlng_t pos, int64_t now_ms) {
    (void)now_ms;
    if (e->delivering) return PD_ERR_ILLEGAL;
    return pd_index_move(e->ix, id, pos);
}

pd_err pd_engine_volunteer_remove(pd_engine_t *e, uint64_t id, int64_t now_ms) {
    if (e->delivering) return PD_ERR_ILLEGAL;
    if (!pd__time_ok(now_ms)) return PD_ERR_BAD_ARG;
    uint32_t vslot;
    pd_err err = pd_index_get_slot(e->ix, id, &vslot);
    if (err) return err;
    pd__vrec_t *r = &e->recs[vslot];
    if (r->held) return PD_ERR_ILLEGAL;
    if (r->load) {
        if ((err = pd__withdraw_volunteer(e, id, now_ms))) return err;
    }
    err = pd_index_remove(e->ix, id);
    (void)PD_NEVER(err != PD_OK);
    memset(&e->recs[vslot], 0, sizeof e->recs[vslot]);
    pd__events_flush(e);
    return PD_OK;
}

pd_err pd_engine_volunteer_get(const pd_engine_t *e, uint64_t id, int64_t now_ms,
                               pd_volunteer_info_t *out) {
    uint32_t vslot;
    pd_err err = pd_index_get_slot(e->ix, id, &vslot);
    if (err) return err;
    if ((err = pd_index_get(e->ix, id, &out->v))) return err;
    pd__vrec_to_public(&e->recs[vslot], &e->cfg,
                       pd_time_to_local_day(now_ms, e->cfg.utc_offset_min), &out->rec);
    return PD_OK;
}

size_t pd_engine_volunteer_count(const pd_engine_t *e) {
    return pd_index_count(e->ix);
}

typedef struct walk_s {
    const pd_engine_t *e;
    int64_t day;
    bool (*fn)(void *ud, const pd_volunteer_info_t *vi);
    void *ud;
} walk_t;

static bool walk_one(void *ud, const pd_volunteer_t *v) {
    walk_t *w = ud;
    uint32_t vslot;
    if (PD_NEVER(pd_index_get_slot(w->e->ix, v->id, &vslot) != PD_OK)) return true;
    pd_volunteer_info_t vi;
    vi.v = *v;
    pd__vrec_to_public(&w->e->recs[vslot], &w->e->cfg, w->day, &vi.rec);
    return w->fn(w->ud, &vi);
}

void pd_engine_foreach_volunteer(const pd_engine_t *e, int64_t now_ms,
                                 bool (*fn)(void *ud, const pd_volunteer_info_t *vi), void *ud) {
    walk_t w = {e, pd_time_to_local_day(now_ms, e->cfg.utc_offset_min), fn, ud};
    pd_index_foreach(e->ix, walk_one, &w);
}

void pd_engine_set_limits(pd_engine_t *e, size_t max_volunteers, size_t max_orders) {
    e->max_vols = max_volunteers;
    e->max_orders = max_orders;
}

/* --------------------------------------------------------------- stats */

void pd_engine_get_stats(const pd_engine_t *e, pd_engine_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->volunteers = pd_index_count(e->ix);
    out->orders = e->n_orders;
    memcpy(out->orders_by_state, e->by_state, sizeof e->by_state);
    out->live_offers = e->live_offers;
    out->offers_made = e->offers_made;
    out->events = e->events_emitted;
    out->memory = sizeof *e + pd_index_memory(e->ix) + (size_t)e->recs_cap * sizeof *e->recs +
                  e->cap_orders_sz * sizeof *e->orders + pd__idmap_memory(&e->omap) + e->aux_bytes +
                  e->cap_due * sizeof *e->due + e->cap_ev * sizeof *e->evq +
                  PD__MAX_PICKS * sizeof *e->picks + e->cap_scratch_u32 * sizeof(uint32_t) +
                  e->cap_tick_due * sizeof *e->tick_due + pd__batch_memory(e);
}

/* -------------------------------------------------------------- digest */

typedef struct words_s {
    uint64_t w[64];
    size_t n;
} words_t;

static inline void put(words_t *b, uint64_t x) {
    if (PD_ALWAYS(b->n < sizeof b->w / sizeof b->w[0])) b->w[b->n++] = x;
}

static inline uint64_t words_hash(const words_t *b) {
    return XXH3_64bits(b->w, b->n * sizeof b->w[0]);
}

static uint64_t volunteer_hash(const pd_volunteer_t *v, const pd__vrec_t *r) {
    words_t b = {.n = 0};
    put(&b, v->id);
    put(&b, (uint64_t)(uint32_t)v->pos.lat << 32 | (uint32_t)v->pos.lon);
    put(&b, v->skills);
    put(&b, v->tags);
    for (int i = 0; i < 3; i++) put(&b, v->week.bits[i]);
    put(&b, (uint64_t)v->mode | (uint64_t)v->status << 8 | (uint64_t)v->capacity << 16 |
                (uint64_t)v->load << 24 | (uint64_t)r->held << 32);
    put(&b, r->minutes_total);
    put(&b, (uint64_t)r->rating_count << 32 | r->rating_sum);
    put(&b, r->orders_completed);
    put(&b, (uint64_t)r->offers_received << 32 | r->offers_accepted);
    put(&b, (uint64_t)r->offers_declined << 32 | r->offers_expired);
    put(&b, (uint64_t)r->offers_withdrawn << 32 | r->notified_count);
    /* only when there are any: a state without releases keeps the digest
     * it had before releases were counted */
    if (r->releases) put(&b, 0x52454c00ull << 32 | r->releases);
    put(&b, (uint64_t)r->last_notified_ms);
    put(&b, (uint64_t)r->last_served_ms);
    /* The day ring canonically: newest day, then days oldest to newest. */
    put(&b, (uint64_t)(int64_t)r->last_day);
    for (int64_t d = (int64_t)r->last_day - (PD__DAYS - 1); d <= r->last_day; d++) {
        int64_t m = d % PD__DAYS;
        put(&b, r->day_min[m < 0 ? m + PD__DAYS : m]);
    }
    return words_hash(&b);
}

static uint64_t order_hash(const pd__order_t *o) {
    words_t b = {.n = 0};
    put(&b, o->id);
    put(&b, (uint64_t)(uint32_t)o->at.lat << 32 | (uint32_t)o->at.lon);
    put(&b, o->tags);
    put(&b, (uint64_t)o->start_ms);
    put(&b, (uint64_t)o->created_ms);
    put(&b, (uint64_t)o->dispatched_ms);
    put(&b, (uint64_t)o->accepted_ms);
    put(&b, (uint64_t)o->closed_ms);
    put(&b, (uint64_t)o->rated_ms);
    put(&b, (uint64_t)(uint32_t)o->duration_min << 32 | (uint32_t)o->budget_s);
    put(&b, (uint64_t)o->minutes_served << 32 | o->n_offers);
    /* n_live's low byte here, its high byte beside ignore_schedule: the
     * words of an order with fewer than 256 live offers are as they were. */
    put(&b, (uint64_t)o->n_slots | (uint64_t)o->n_filled << 8 | (uint64_t)(o->n_live & 0xff) << 16 |
                (uint64_t)o->priority << 24 | (uint64_t)o->mode << 32 | (uint64_t)o->state << 40 |
                (uint64_t)o->reason << 48 | (uint64_t)o->rating << 56);
    put(&b, (uint64_t)o->ignore_schedule | (uint64_t)(o->n_live >> 8) << 8);
    uint64_t h = words_hash(&b);
    for (uint32_t s = 0; s < o->n_slots; s++) {
        uint64_t sk = pd__order_slot_skills(o, s);
        h = XXH3_64bits_withSeed(&sk, sizeof sk, h);
    }
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *en = &o->ent[i];
        uint64_t w[4] = {
            en->vol, (uint64_t)en->offered_ms, (uint64_t)en->deadline_ms,
            (uint64_t)en->slot | (uint64_t)en->state << 8 | (uint64_t)en->reason << 16};
        h = XXH3_64bits_withSeed(w, sizeof w, h);
    }
    return h;
}

typedef struct digest_walk_s {
    const pd_engine_t *e;
    uint64_t sum;
} digest_walk_t;

static bool digest_one(void *ud, const pd_volunteer_t *v) {
    digest_walk_t *d = ud;
    uint32_t vslot;
    if (PD_NEVER(pd_index_get_slot(d->e->ix, v->id, &vslot) != PD_OK)) return true;
    d->sum += volunteer_hash(v, &d->e->recs[vslot]);
    return true;
}

uint64_t pd_engine_digest(const pd_engine_t *e) {
    digest_walk_t d = {e, 0};
    pd_index_foreach(e->ix, digest_one, &d);
    uint64_t osum = 0;
    for (uint32_t i = 0; i < e->n_orders; i++) osum += order_hash(&e->orders[i]);
    uint64_t top[6] = {d.sum,       pd_index_count(e->ix), osum,
                       e->n_orders, e->live_offers,        e->offers_made};
    return XXH3_64bits(top, sizeof top);
}

/* ------------------------------------------------------------ validate */

/* Slot si against the index: the record mirrors it, and its load is what
 * the orders say. A slot state is O(1): no id lookup, no cell read. */
static const char *check_slot(const pd_engine_t *e, uint32_t si, const uint32_t *load,
                              const uint32_t *held, bool marks) {
    pd_slot_state_t st;
    if (pd_index_slot_state(e->ix, si, &st) != PD_OK) {
        return load[si] || held[si] ? "an order holds a free slot" : NULL;
    }
    const pd__vrec_t *r = &e->recs[si];
    if (r->load != st.load || r->status != st.status || r->capacity != st.capacity) {
        return "record mirror disagrees with the index";
    }
    if (st.load > st.capacity) return "load above capacity";
    if (load[si] != st.load) return "load differs from live offers plus accepted slots held";
    if (held[si] != r->held) return "held count differs from accepted slots";
    uint16_t mark;
    if (marks && (pd_index_get_mark(e->ix, si, &mark) != PD_OK || mark != pd__vrec_mark(r)))
        return "the index mark disagrees with the record";
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* `ids` has room for o->n_ent ids. */
static const char *check_order(const pd_engine_t *e, const pd__order_t *o, uint32_t pos,
                               uint32_t *load, uint32_t *held, uint64_t *ids) {
    uint32_t found;
    if (pd__order_find(e, o->id, &found) != PD_OK || found != pos) {
        return "order not reachable from its id";
    }
    if (o->state >= PD_ORDER__COUNT) return "order state out of range";
    if (o->n_slots < 1 || o->n_slots > PD_ORDER_MAX_SLOTS) return "order slot count";
    if (o->n_ent > o->cap_ent) return "order entries past capacity";
    /* The fields order.create checks: a restored order must pass them too,
     * or the next dispatch asks the index a question it refuses. */
    if (!pd_latlng_is_valid(o->at)) return "order location out of range";
    if (o->budget_s <= 0 || o->budget_s > 86400) return "order time budget out of range";
    if (o->duration_min < 0 || o->duration_min > PD_MAX_MINUTES_SERVED) {
        return "order duration out of range";
    }
    if (o->priority >= PD_PRIORITY__COUNT || o->mode >= PD_OFFER__COUNT || o->rating > 5) {
        return "order priority, offer mode or rating out of range";
    }
    if (o->n_filled > o->n_slots) return "order filled past its slots";
    bool open = pd__order_is_open(o);
    uint32_t filled[PD_ORDER_MAX_SLOTS] = {0}, live[PD_ORDER_MAX_SLOTS] = {0};
    uint32_t n_live = 0, n_filled = 0;
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *en = &o->ent[i];
        if (en->slot >= o->n_slots) return "entry slot out of range";
        ids[i] = en->vol;
        if (en->state == PD_OFFER_LIVE || (open && en->state == PD_OFFER_ACCEPTED)) {
            uint32_t vslot;
            if (pd_index_get_slot(e->ix, en->vol, &vslot) != PD_OK) {
                return "order holds a removed volunteer";
            }
            load[vslot]++;
            if (en->state == PD_OFFER_ACCEPTED) held[vslot]++;
        }
        if (en->state == PD_OFFER_LIVE) live[en->slot]++, n_live++;
        if (en->state == PD_OFFER_ACCEPTED) filled[en->slot]++, n_filled++;
    }
    /* Open orders: the entries are the excluded set, nobody twice. */
    uint32_t n_ids = open ? o->n_ent : 0;
    pd__sort(ids, n_ids, sizeof *ids, cmp_u64);
    for (uint32_t i = 1; i < n_ids; i++) {
        if (ids[i] == ids[i - 1]) return "volunteer asked twice for one order";
    }
    if (n_live != o->n_live) return "order live offer count";
    for (uint32_t s = 0; s < o->n_slots; s++) {
        if (filled[s] > 1) return "slot filled twice";
        if (filled[s] && live[s]) return "filled slot still has live offers";
    }
    switch (o->state) {
        case PD_ORDER_CREATED:
            if (o->n_ent) return "created order has offers";
            break;
        case PD_ORDER_OFFERED:
            if (n_filled != o->n_filled || n_filled >= o->n_slots) return "offered order fill";
            for (uint32_t s = 0; s < o->n_slots; s++) {
                if (!filled[s] && !live[s]) return "offered order with an uncovered slot";
            }
            break;
        case PD_ORDER_ACCEPTED:
            if (n_filled != o->n_slots || o->n_filled != o->n_slots) return "accepted order fill";
            break;
        case PD_ORDER_COMPLETED:
        case PD_ORDER_RATED:
            if (n_live) return "closed order with live offers";
            if (n_filled != o->n_slots) return "completed order lost its volunteers";
            break;
        default:
            if (n_live || n_filled) return "closed order still holds volunteers";
            break;
    }
    return NULL;
}

bool pd_engine_validate(const pd_engine_t *e, const char **reason) {
    return pd__engine_check(e, true, reason) == PD_OK;
}

pd_err pd__engine_check(const pd_engine_t *e, bool index_too, const char **reason) {
    const char *why = NULL;
    bool nomem = false;
    const char *ixwhy = NULL;
    size_t by_state[PD_ORDER__COUNT] = {0};
    size_t live = 0;
    uint32_t limit = pd_index_slot_limit(e->ix);
    uint32_t *load = NULL, *held = NULL;
    uint64_t *ids = NULL;
    uint32_t max_ent = 1;
    if (index_too && !pd_index_validate(e->ix, &ixwhy)) {
        why = ixwhy;
        goto out;
    }
    if (limit > e->recs_cap) {
        why = "records array shorter than the slot limit";
        goto out;
    }
    for (uint32_t i = 0; i < e->n_orders; i++) {
        if (e->orders[i].n_ent > max_ent) max_ent = e->orders[i].n_ent;
    }
    load = pd_calloc(limit + 1, sizeof *load);
    held = pd_calloc(limit + 1, sizeof *held);
    ids = pd_malloc(max_ent * sizeof *ids);
    if (!load || !held || !ids) {
        why = "validate: out of memory";
        nomem = true;
        goto out;
    }
    if (e->omap.n != e->n_orders) {
        why = "order map size";
        goto out;
    }
    for (uint32_t i = 0; i < e->n_orders && !why; i++) {
        const pd__order_t *o = &e->orders[i];
        /* each order's id is looked up: a cache miss, so ask ahead */
        if (i + 8 < e->n_orders) pd__idmap_prefetch(&e->omap, e->orders[i + 8].id);
        why = check_order(e, o, i, load, held, ids);
        if (!why) {
            by_state[o->state]++;
            live += o->n_live;
        }
    }
    if (why) goto out;
    if (memcmp(by_state, e->by_state, sizeof by_state) != 0) {
        why = "per-state order counters";
        goto out;
    }
    if (live != e->live_offers) {
        why = "live offer counter";
        goto out;
    }
    for (size_t i = 1; i < e->n_due; i++) {
        const pd__due_t *a = &e->due[(i - 1) / 2], *b = &e->due[i];
        if (b->deadline_ms < a->deadline_ms ||
            (b->deadline_ms == a->deadline_ms && b->order_id < a->order_id)) {
            why = "deadline heap out of order";
            goto out;
        }
    }
    for (uint32_t si = 0; si < limit && !why; si++) why = check_slot(e, si, load, held, index_too);
out:
    pd_free(load);
    pd_free(held);
    pd_free(ids);
    if (why && reason) *reason = why;
    return nomem ? PD_ERR_NOMEM : why ? PD_ERR_CORRUPT : PD_OK;
}
