/* idmap.c -- id -> slot map for the index; see idmap.h for the layout. */
#include "paidan/idmap.h"

#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "paidan/alloc.h"

/* Steps of draining per reserve1 while growing: a step looks at one old
 * bucket or moves one entry, so an old table of cap buckets and 3/4 cap
 * entries takes 1.75 cap steps, cap / 9 inserts at 16 a time. The next
 * growth is 3/4 of the new cap (1.5 cap) inserts away. */
#define DRAIN_STEP 16

static inline uint32_t id_tag(uint64_t id) {
    return (uint32_t)(XXH3_64bits(&id, sizeof id) >> 32);
}

static inline uint64_t key_at(pd__idmap_keys_t k, uint32_t slot) {
    uint64_t id;
    memcpy(&id, k.base + (size_t)slot * k.stride, sizeof id);
    return id;
}

/* ------------------------------------------------- one table (b, mask) */

/* Where id sits in table b, or UINT32_MAX. */
static uint32_t t_find(const uint64_t *b, uint32_t mask, pd__idmap_keys_t keys, uint64_t id,
                       uint32_t tag) {
    for (uint32_t i = tag & mask;; i = (i + 1) & mask) {
        uint64_t e = b[i];
        if (!e) return UINT32_MAX;
        if ((uint32_t)(e >> 32) == tag && key_at(keys, (uint32_t)e - 1) == id) return i;
    }
}

/* Put entry e in the first empty bucket from its home. */
static void t_put(uint64_t *b, uint32_t mask, uint64_t e) {
    uint32_t i = (uint32_t)(e >> 32) & mask;
    while (b[i]) i = (i + 1) & mask;
    b[i] = e;
}

/* Empty bucket i, pulling later members of the probe run into the hole
 * when their home is at or before it (cyclically): no tombstones. */
static void t_remove_at(uint64_t *b, uint32_t mask, uint32_t i) {
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        uint64_t e = b[j];
        if (!e) break;
        uint32_t home = (uint32_t)(e >> 32) & mask;
        /* e may move to hole if home is not in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
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
        if (m->cursor > m->old_mask) {
            pd_big_free(m->old, ((size_t)m->old_mask + 1) * sizeof *m->old);
            m->old = NULL;
            m->old_mask = m->cursor = 0;
            return;
        }
        uint64_t e = m->old[m->cursor];
        if (!e) {
            m->cursor++;
            continue;
        }
        /* the shift may bring another entry into the cursor's bucket: it
         * is looked at again */
        t_put(m->b, m->mask, e);
        t_remove_at(m->old, m->old_mask, m->cursor);
    }
}

static inline bool room_for(const pd__idmap_t *m, uint64_t need) {
    return need * 4 <= ((uint64_t)m->mask + 1) * 3; /* load factor <= 3/4 */
}

pd_err pd__idmap_init(pd__idmap_t *m, uint32_t cap_hint) {
    uint32_t cap = 16;
    while (cap < cap_hint && cap < (1u << 31)) cap <<= 1;
    memset(m, 0, sizeof *m);
    m->b = pd_big_alloc((size_t)cap * sizeof *m->b);
    if (!m->b) return PD_ERR_NOMEM;
    m->mask = cap - 1;
    return PD_OK;
}

void pd__idmap_deinit(pd__idmap_t *m) {
    if (m->b) pd_big_free(m->b, ((size_t)m->mask + 1) * sizeof *m->b);
    if (m->old) pd_big_free(m->old, ((size_t)m->old_mask + 1) * sizeof *m->old);
    memset(m, 0, sizeof *m);
}

pd_err pd__idmap_reserve(pd__idmap_t *m, uint32_t more) {
    uint64_t need = (uint64_t)m->n + more;
    if (room_for(m, need)) return PD_OK;
    uint64_t cap = (uint64_t)m->mask + 1;
    uint64_t ncap = cap * 2;
    while (need * 4 > ncap * 3) ncap *= 2;
    if (ncap > (1ULL << 31)) return PD_ERR_LIMIT;
    uint64_t *nb = pd_big_alloc(ncap * sizeof *nb);
    if (!nb) return PD_ERR_NOMEM;
    drain(m, UINT32_MAX);
    uint32_t nmask = (uint32_t)(ncap - 1);
    for (uint64_t i = 0; i < cap; i++)
        if (m->b[i]) t_put(nb, nmask, m->b[i]);
    pd_big_free(m->b, cap * sizeof *m->b);
    m->b = nb;
    m->mask = nmask;
    return PD_OK;
}

pd_err pd__idmap_reserve1(pd__idmap_t *m) {
    drain(m, DRAIN_STEP);
    if (room_for(m, (uint64_t)m->n + 1)) return PD_OK;
    uint64_t ncap = ((uint64_t)m->mask + 1) * 2;
    if (ncap > (1ULL << 31)) return PD_ERR_LIMIT;
    /* mapped fresh: zero pages, faulted in as the entries come, where a
     * calloc could have to clear reused memory first */
    uint64_t *nb = pd_big_alloc(ncap * sizeof *nb);
    if (!nb) return PD_ERR_NOMEM;
    drain(m, UINT32_MAX); /* not reached in practice: see DRAIN_STEP */
    m->old = m->b;
    m->old_mask = m->mask;
    m->cursor = 0;
    m->b = nb;
    m->mask = (uint32_t)(ncap - 1);
    drain(m, DRAIN_STEP);
    return PD_OK;
}

pd_err pd__idmap_find(const pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t *slot) {
    uint32_t tag = id_tag(id);
    uint32_t i = t_find(m->b, m->mask, keys, id, tag);
    if (i != UINT32_MAX) {
        *slot = (uint32_t)m->b[i] - 1;
        return PD_OK;
    }
    if (m->old && (i = t_find(m->old, m->old_mask, keys, id, tag)) != UINT32_MAX) {
        *slot = (uint32_t)m->old[i] - 1;
        return PD_OK;
    }
    return PD_ERR_NOT_FOUND;
}

void pd__idmap_add(pd__idmap_t *m, uint64_t id, uint32_t slot) {
    t_put(m->b, m->mask, ((uint64_t)id_tag(id) << 32) | (uint64_t)(slot + 1u));
    m->n++;
}

pd_err pd__idmap_add_new(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t slot) {
    uint32_t tag = id_tag(id);
    if (t_find(m->b, m->mask, keys, id, tag) != UINT32_MAX ||
        (m->old && t_find(m->old, m->old_mask, keys, id, tag) != UINT32_MAX))
        return PD_ERR_EXISTS;
    t_put(m->b, m->mask, ((uint64_t)tag << 32) | (uint64_t)(slot + 1u));
    m->n++;
    return PD_OK;
}

void pd__idmap_prefetch(const pd__idmap_t *m, uint64_t id) {
    uint32_t tag = id_tag(id);
    __builtin_prefetch(&m->b[tag & m->mask]);
    if (m->old) __builtin_prefetch(&m->old[tag & m->old_mask]);
}

pd_err pd__idmap_set(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t slot) {
    uint32_t tag = id_tag(id);
    uint64_t *b = m->b;
    uint32_t i = t_find(m->b, m->mask, keys, id, tag);
    if (i == UINT32_MAX && m->old) {
        b = m->old;
        i = t_find(m->old, m->old_mask, keys, id, tag);
    }
    if (i == UINT32_MAX) return PD_ERR_NOT_FOUND;
    b[i] = ((uint64_t)tag << 32) | (uint64_t)(slot + 1u);
    return PD_OK;
}

pd_err pd__idmap_del(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id) {
    uint32_t tag = id_tag(id);
    uint32_t i = t_find(m->b, m->mask, keys, id, tag);
    if (i != UINT32_MAX) {
        t_remove_at(m->b, m->mask, i);
    } else if (m->old && (i = t_find(m->old, m->old_mask, keys, id, tag)) != UINT32_MAX) {
        t_remove_at(m->old, m->old_mask, i);
    } else {
        return PD_ERR_NOT_FOUND;
    }
    m->n--;
    return PD_OK;
}

size_t pd__idmap_memory(const pd__idmap_t *m) {
    return ((size_t)m->mask + 1 + (m->old ? (size_t)m->old_mask + 1 : 0)) * sizeof *m->b;
}
