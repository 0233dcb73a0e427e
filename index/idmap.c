/* idmap.c -- id -> slot map for the index; see idmap.h for the layout. */
#include "idmap.h"

#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "paidan/alloc.h"

static inline uint32_t id_tag(uint64_t id) {
    return (uint32_t)(XXH3_64bits(&id, sizeof id) >> 32);
}

static inline uint64_t key_at(pd__idmap_keys_t k, uint32_t slot) {
    uint64_t id;
    memcpy(&id, k.base + (size_t)slot * k.stride, sizeof id);
    return id;
}

pd_err pd__idmap_init(pd__idmap_t *m, uint32_t cap_hint) {
    uint32_t cap = 16;
    while (cap < cap_hint && cap < (1u << 31)) cap <<= 1;
    m->b = pd_calloc(cap, sizeof *m->b);
    if (!m->b) return PD_ERR_NOMEM;
    m->mask = cap - 1;
    m->n = 0;
    return PD_OK;
}

void pd__idmap_deinit(pd__idmap_t *m) {
    pd_free(m->b);
    m->b = NULL;
    m->n = 0;
}

pd_err pd__idmap_reserve(pd__idmap_t *m, uint32_t more) {
    uint64_t cap = (uint64_t)m->mask + 1;
    uint64_t need = (uint64_t)m->n + more;
    /* Keep the load factor at or below 3/4. */
    if (need * 4 <= cap * 3) return PD_OK;
    uint64_t ncap = cap * 2;
    while (need * 4 > ncap * 3) ncap *= 2;
    if (ncap > (1ULL << 31)) return PD_ERR_LIMIT;
    uint64_t *nb = pd_calloc(ncap, sizeof *nb);
    if (!nb) return PD_ERR_NOMEM;
    pd_alloc_advise_huge(nb, ncap * sizeof *nb);
    uint32_t nmask = (uint32_t)(ncap - 1);
    for (uint64_t i = 0; i < cap; i++) {
        uint64_t e = m->b[i];
        if (!e) continue;
        uint32_t j = (uint32_t)(e >> 32) & nmask;
        while (nb[j]) j = (j + 1) & nmask;
        nb[j] = e;
    }
    pd_free(m->b);
    m->b = nb;
    m->mask = nmask;
    return PD_OK;
}

pd_err pd__idmap_reserve1(pd__idmap_t *m) {
    return pd__idmap_reserve(m, 1);
}

pd_err pd__idmap_find(const pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t *slot) {
    uint32_t tag = id_tag(id);
    for (uint32_t i = tag & m->mask;; i = (i + 1) & m->mask) {
        uint64_t e = m->b[i];
        if (!e) return PD_ERR_NOT_FOUND;
        if ((uint32_t)(e >> 32) == tag) {
            uint32_t s = (uint32_t)e - 1;
            if (key_at(keys, s) == id) {
                *slot = s;
                return PD_OK;
            }
        }
    }
}

void pd__idmap_add(pd__idmap_t *m, uint64_t id, uint32_t slot) {
    uint32_t tag = id_tag(id);
    uint32_t i = tag & m->mask;
    while (m->b[i]) i = (i + 1) & m->mask;
    m->b[i] = ((uint64_t)tag << 32) | (uint64_t)(slot + 1u);
    m->n++;
}

pd_err pd__idmap_add_new(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t slot) {
    uint32_t tag = id_tag(id);
    uint32_t i = tag & m->mask;
    for (;; i = (i + 1) & m->mask) {
        uint64_t e = m->b[i];
        if (!e) break;
        if ((uint32_t)(e >> 32) == tag && key_at(keys, (uint32_t)e - 1) == id) {
            return PD_ERR_EXISTS;
        }
    }
    m->b[i] = ((uint64_t)tag << 32) | (uint64_t)(slot + 1u);
    m->n++;
    return PD_OK;
}

void pd__idmap_prefetch(const pd__idmap_t *m, uint64_t id) {
    __builtin_prefetch(&m->b[id_tag(id) & m->mask]);
}

pd_err pd__idmap_del(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id) {
    uint32_t tag = id_tag(id);
    uint32_t i = tag & m->mask;
    for (;; i = (i + 1) & m->mask) {
        uint64_t e = m->b[i];
        if (!e) return PD_ERR_NOT_FOUND;
        if ((uint32_t)(e >> 32) == tag && key_at(keys, (uint32_t)e - 1) == id) break;
    }
    /* Backward-shift: pull later members of the probe run into the hole
     * when their home is at or before it (cyclically). */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & m->mask;; j = (j + 1) & m->mask) {
        uint64_t e = m->b[j];
        if (!e) break;
        uint32_t home = (uint32_t)(e >> 32) & m->mask;
        /* e may move to hole if home is not in (hole, j]. */
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->b[hole] = e;
            hole = j;
        }
    }
    m->b[hole] = 0;
    m->n--;
    return PD_OK;
}

size_t pd__idmap_memory(const pd__idmap_t *m) {
    return ((size_t)m->mask + 1) * sizeof *m->b;
}
