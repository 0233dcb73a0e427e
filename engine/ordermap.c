/* ordermap.c -- order id -> position, open addressing on xxhash.
 *
 * See ordermap.h for the bucket layout. Finding an id costs one hash and,
 * at load <= 1/2, about 1.5 probes; each tag match is confirmed by reading
 * the id from the order array, which also lets a bucket stay 8 bytes.
 */
#include "ordermap.h"

#include <stdbool.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "paidan/alloc.h"

#define MIN_BUCKETS 16u

static inline uint32_t tag_of(uint64_t id) {
    return (uint32_t)(XXH3_64bits(&id, sizeof id) >> 32);
}

static inline uint64_t key_at(pd__ordermap_keys_t k, uint32_t pos) {
    uint64_t id;
    memcpy(&id, k.base + (size_t)pos * k.stride, sizeof id);
    return id;
}

pd_err pd__ordermap_init(pd__ordermap_t *m) {
    m->b = pd_calloc(MIN_BUCKETS, sizeof *m->b);
    if (!m->b) return PD_ERR_NOMEM;
    m->mask = MIN_BUCKETS - 1;
    m->n = 0;
    return PD_OK;
}

void pd__ordermap_deinit(pd__ordermap_t *m) {
    pd_free(m->b);
    m->b = NULL;
    m->mask = 0;
    m->n = 0;
}

static void put(uint64_t *b, uint32_t mask, uint64_t bucket) {
    uint32_t i = (uint32_t)(bucket >> 32) & mask;
    while (b[i]) i = (i + 1) & mask;
    b[i] = bucket;
}

pd_err pd__ordermap_reserve(pd__ordermap_t *m, uint32_t more) {
    uint64_t want = (uint64_t)m->n + more;
    uint64_t cap = (uint64_t)m->mask + 1;
    if (want * 2 <= cap) return PD_OK;
    while (want * 2 > cap) cap *= 2;
    if (cap > ((uint64_t)1 << 31)) return PD_ERR_LIMIT;
    uint64_t *nb = pd_calloc((size_t)cap, sizeof *nb);
    pd_alloc_advise_huge(nb, (size_t)cap * sizeof *nb);
    if (!nb) return PD_ERR_NOMEM;
    uint32_t nmask = (uint32_t)(cap - 1);
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (m->b[i]) put(nb, nmask, m->b[i]);
    }
    pd_free(m->b);
    m->b = nb;
    m->mask = nmask;
    return PD_OK;
}

/* Bucket index of id, or UINT32_MAX. */
static uint32_t locate(const pd__ordermap_t *m, pd__ordermap_keys_t k, uint64_t id) {
    uint32_t tag = tag_of(id);
    uint32_t i = tag & m->mask;
    for (;;) {
        uint64_t bk = m->b[i];
        if (!bk) return UINT32_MAX;
        if ((uint32_t)(bk >> 32) == tag && key_at(k, (uint32_t)bk - 1) == id) return i;
        i = (i + 1) & m->mask;
    }
}

pd_err pd__ordermap_find(const pd__ordermap_t *m, pd__ordermap_keys_t k, uint64_t id,
                         uint32_t *pos) {
    uint32_t i = locate(m, k, id);
    if (i == UINT32_MAX) return PD_ERR_NOT_FOUND;
    *pos = (uint32_t)m->b[i] - 1;
    return PD_OK;
}

void pd__ordermap_prefetch(const pd__ordermap_t *m, uint64_t id) {
    __builtin_prefetch(&m->b[tag_of(id) & m->mask]);
}

void pd__ordermap_add(pd__ordermap_t *m, uint64_t id, uint32_t pos) {
    put(m->b, m->mask, ((uint64_t)tag_of(id) << 32) | ((uint64_t)pos + 1));
    m->n++;
}

void pd__ordermap_set(pd__ordermap_t *m, pd__ordermap_keys_t k, uint64_t id, uint32_t pos) {
    uint32_t i = locate(m, k, id);
    if (PD_NEVER(i == UINT32_MAX)) return;
    m->b[i] = (m->b[i] & 0xffffffff00000000ull) | ((uint64_t)pos + 1);
}

void pd__ordermap_del(pd__ordermap_t *m, pd__ordermap_keys_t k, uint64_t id) {
    uint32_t i = locate(m, k, id);
    if (PD_NEVER(i == UINT32_MAX)) return;
    /* Backward shift: pull later members of the cluster into the hole when
     * their home does not lie cyclically in (hole, j]. */
    uint32_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        uint64_t bk = m->b[j];
        if (!bk) break;
        uint32_t home = (uint32_t)(bk >> 32) & m->mask;
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->b[hole] = bk;
            hole = j;
        }
    }
    m->b[hole] = 0;
    m->n--;
}

size_t pd__ordermap_memory(const pd__ordermap_t *m) {
    return ((size_t)m->mask + 1) * sizeof *m->b;
}
