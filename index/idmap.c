/* idmap.c -- id -> slot map for the index; see idmap.h for the layout. */
#include "paidan/idmap.h"

#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "paidan/alloc.h"

/* Steps of draining per reserve1 while growing: a step looks at one old
 * bucket or moves one entry, so an old table of cap buckets and 3/4 cap
 * entries takes 1.75 cap steps, cap / 9 inserts at 16 a time. A growth
 * makes the table half as large again, so the next one is 3/8 cap
 * inserts away: the old table is gone three times over by then. */
#define DRAIN_STEP 16
#define MIN_CAP 16

static inline uint32_t id_tag(uint64_t id) {
    return (uint32_t)(XXH3_64bits(&id, sizeof id) >> 32);
}

static inline uint64_t key_at(pd__idmap_keys_t k, uint32_t slot) {
    uint64_t id;
    memcpy(&id, k.base + (size_t)slot * k.stride, sizeof id);
    return id;
}

/* -------------------------------------------------- one table (b, cap) */

/* The home bucket of a tag: the tag scaled to the table (any size will
 * do, and the order of homes follows the order of tags). */
static inline uint32_t home_of(uint32_t tag, uint32_t cap) {
    return (uint32_t)(((uint64_t)tag * cap) >> 32);
}

static inline uint32_t next_of(uint32_t i, uint32_t cap) {
    return i + 1 == cap ? 0 : i + 1;
}

/* Steps from a forward to b, around the end of the table. */
static inline uint32_t dist(uint32_t a, uint32_t b, uint32_t cap) {
    return b >= a ? b - a : b + cap - a;
}

/* Where id sits in table b, or UINT32_MAX. */
static uint32_t t_find(const uint64_t *b, uint32_t cap, pd__idmap_keys_t keys, uint64_t id,
                       uint32_t tag) {
    for (uint32_t i = home_of(tag, cap);; i = next_of(i, cap)) {
        uint64_t e = b[i];
        if (!e) return UINT32_MAX;
        if ((uint32_t)(e >> 32) == tag && key_at(keys, (uint32_t)e - 1) == id) return i;
    }
}

/* Put entry e in the first empty bucket from its home. */
static void t_put(uint64_t *b, uint32_t cap, uint64_t e) {
    uint32_t i = home_of((uint32_t)(e >> 32), cap);
    while (b[i]) i = next_of(i, cap);
    b[i] = e;
}

/* Empty bucket i, pulling later members of the probe run into the hole
 * when their home is at or before it (cyclically): no tombstones. */
static void t_remove_at(uint64_t *b, uint32_t cap, uint32_t i) {
    uint32_t hole = i;
    for (uint32_t j = next_of(i, cap);; j = next_of(j, cap)) {
        uint64_t e = b[j];
        if (!e) break;
        uint32_t home = home_of((uint32_t)(e >> 32), cap);
        /* e may move to hole if home is not in (hole, j]. */
        if (dist(home, j, cap) >= dist(hole, j, cap)) {
            b[hole] = e;
            hole = j;
        }
    }
    b[hole] = 0;
}

/* ------------------------------------------------------- the growing */

/* Move entries of the old table into the new one, looking at up to
 * `budget` buckets (all of them for UINT32_MAX); frees the old table
 * once it is empty. */
static void drain(pd__idmap_t *m, uint32_t budget) {
    while (m->old && budget--) {
        if (m->cursor >= m->old_cap) {
            pd_big_free(m->old, (size_t)m->old_cap * sizeof *m->old);
            m->old = NULL;
            m->old_cap = m->cursor = 0;
            return;
        }
        uint64_t e = m->old[m->cursor];
        if (!e) {
            m->cursor++;
            continue;
        }
        /* the shift may bring another entry into the cursor's bucket: it
         * is looked at again */
        t_put(m->b, m->cap, e);
        t_remove_at(m->old, m->old_cap, m->cursor);
    }
}

static inline bool room_for(const pd__idmap_t *m, uint64_t need) {
    return need * 4 <= (uint64_t)m->cap * 3; /* load factor <= 3/4 */
}

/* A table for `need` entries at most 3/4 full, at least half as large
 * again as the one it replaces; 0 past the limit. */
static uint64_t cap_for(const pd__idmap_t *m, uint64_t need) {
    const uint64_t max = (uint64_t)1 << 31;
    uint64_t cap = (uint64_t)m->cap + m->cap / 2;
    uint64_t fit = (need * 4 + 2) / 3 + 1;
    if (fit > cap) cap = fit;
    if (cap > max && fit <= max && m->cap < max) cap = max; /* the last growth */
    return cap > max ? 0 : cap;
}

pd_err pd__idmap_init(pd__idmap_t *m, uint32_t cap_hint) {
    memset(m, 0, sizeof *m);
    uint32_t cap = cap_hint > MIN_CAP ? cap_hint : MIN_CAP;
    if (cap > (1u << 31)) cap = 1u << 31;
    m->b = pd_big_alloc((size_t)cap * sizeof *m->b);
    if (!m->b) return PD_ERR_NOMEM;
    m->cap = cap;
    return PD_OK;
}

void pd__idmap_deinit(pd__idmap_t *m) {
    if (m->b) pd_big_free(m->b, (size_t)m->cap * sizeof *m->b);
    if (m->old) pd_big_free(m->old, (size_t)m->old_cap * sizeof *m->old);
    memset(m, 0, sizeof *m);
}

pd_err pd__idmap_reserve(pd__idmap_t *m, uint32_t more) {
    uint64_t need = (uint64_t)m->n + more;
    if (room_for(m, need)) return PD_OK;
    uint64_t ncap = cap_for(m, need);
    if (!ncap) return PD_ERR_LIMIT;
    uint64_t *nb = pd_big_alloc(ncap * sizeof *nb);
    if (!nb) return PD_ERR_NOMEM;
    drain(m, UINT32_MAX);
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->b[i]) t_put(nb, (uint32_t)ncap, m->b[i]);
    pd_big_free(m->b, (size_t)m->cap * sizeof *m->b);
    m->b = nb;
    m->cap = (uint32_t)ncap;
    return PD_OK;
}

pd_err pd__idmap_reserve1(pd__idmap_t *m) {
    drain(m, DRAIN_STEP);
    if (room_for(m, (uint64_t)m->n + 1)) return PD_OK;
    uint64_t ncap = cap_for(m, (uint64_t)m->n + 1);
    if (!ncap) return PD_ERR_LIMIT;
    /* mapped fresh: zero pages, faulted in as the entries come, where a
     * calloc could have to clear reused memory first */
    uint64_t *nb = pd_big_alloc(ncap * sizeof *nb);
    if (!nb) return PD_ERR_NOMEM;
    drain(m, UINT32_MAX); /* not reached in practice: see DRAIN_STEP */
    m->old = m->b;
    m->old_cap = m->cap;
    m->cursor = 0;
    m->b = nb;
    m->cap = (uint32_t)ncap;
    drain(m, DRAIN_STEP);
    return PD_OK;
}

pd_err pd__idmap_find(const pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t *slot) {
    uint32_t tag = id_tag(id);
    uint32_t i = t_find(m->b, m->cap, keys, id, tag);
    if (i != UINT32_MAX) {
        *slot = (uint32_t)m->b[i] - 1;
        return PD_OK;
    }
    if (m->old && (i = t_find(m->old, m->old_cap, keys, id, tag)) != UINT32_MAX) {
        *slot = (uint32_t)m->old[i] - 1;
        return PD_OK;
    }
    return PD_ERR_NOT_FOUND;
}

void pd__idmap_add(pd__idmap_t *m, uint64_t id, uint32_t slot) {
    t_put(m->b, m->cap, ((uint64_t)id_tag(id) << 32) | (uint64_t)(slot + 1u));
    m->n++;
}

pd_err pd__idmap_add_new(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t slot) {
    uint32_t tag = id_tag(id);
    if (t_find(m->b, m->cap, keys, id, tag) != UINT32_MAX ||
        (m->old && t_find(m->old, m->old_cap, keys, id, tag) != UINT32_MAX))
        return PD_ERR_EXISTS;
    t_put(m->b, m->cap, ((uint64_t)tag << 32) | (uint64_t)(slot + 1u));
    m->n++;
    return PD_OK;
}

void pd__idmap_prefetch(const pd__idmap_t *m, uint64_t id) {
    uint32_t tag = id_tag(id);
    __builtin_prefetch(&m->b[home_of(tag, m->cap)]);
    if (m->old) __builtin_prefetch(&m->old[home_of(tag, m->old_cap)]);
}

pd_err pd__idmap_set(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t slot) {
    drain(m, DRAIN_STEP); /* so an old table goes even if nothing is added */
    uint32_t tag = id_tag(id);
    uint64_t *b = m->b;
    uint32_t i = t_find(m->b, m->cap, keys, id, tag);
    if (i == UINT32_MAX && m->old) {
        b = m->old;
        i = t_find(m->old, m->old_cap, keys, id, tag);
    }
    if (i == UINT32_MAX) return PD_ERR_NOT_FOUND;
    b[i] = ((uint64_t)tag << 32) | (uint64_t)(slot + 1u);
    return PD_OK;
}

pd_err pd__idmap_del(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id) {
    drain(m, DRAIN_STEP); /* so an old table goes even if nothing is added */
    uint32_t tag = id_tag(id);
    uint32_t i = t_find(m->b, m->cap, keys, id, tag);
    if (i != UINT32_MAX) {
        t_remove_at(m->b, m->cap, i);
    } else if (m->old && (i = t_find(m->old, m->old_cap, keys, id, tag)) != UINT32_MAX) {
        t_remove_at(m->old, m->old_cap, i);
    } else {
        return PD_ERR_NOT_FOUND;
    }
    m->n--;
    return PD_OK;
}

size_t pd__idmap_memory(const pd__idmap_t *m) {
    return ((size_t)m->cap + (m->old ? (size_t)m->old_cap : 0)) * sizeof *m->b;
}
