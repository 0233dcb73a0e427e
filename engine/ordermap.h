/* ordermap.h -- private to engine/: open-addressing map from an order id
 * to the order's position in the engine's order array.
 *
 * Each bucket is one uint64: the upper 32 bits of the id's xxhash (the
 * tag) and position + 1 (0 marks an empty bucket). Ids are not stored:
 * a tag match is confirmed against the order array the caller passes in.
 * The home bucket is tag & mask, so growing needs no ids. Linear probing,
 * load factor at most 1/2, backward-shift deletion (no tombstones).
 */
#ifndef PAIDAN_ENGINE_ORDERMAP_H
#define PAIDAN_ENGINE_ORDERMAP_H

#include <stddef.h>
#include <stdint.h>

#include "paidan/error.h"

typedef struct pd__ordermap_s {
    uint64_t *b;   /* buckets */
    uint32_t mask; /* buckets - 1, a power of two minus one */
    uint32_t n;    /* entries */
} pd__ordermap_t;

/* Ids of positions: id of position p is *(const uint64_t *)(base + p * stride). */
typedef struct pd__ordermap_keys_s {
    const char *base;
    size_t stride;
} pd__ordermap_keys_t;

pd_err pd__ordermap_init(pd__ordermap_t *m);
void pd__ordermap_deinit(pd__ordermap_t *m);
/* Make room for `more` entries; PD_ERR_NOMEM leaves the map as it was. */
pd_err pd__ordermap_reserve(pd__ordermap_t *m, uint32_t more);
/* Position of id; PD_ERR_NOT_FOUND. */
pd_err pd__ordermap_find(const pd__ordermap_t *m, pd__ordermap_keys_t k, uint64_t id,
                         uint32_t *pos);
/* Start loading the bucket where id's probe run begins. */
void pd__ordermap_prefetch(const pd__ordermap_t *m, uint64_t id);
/* Add id -> pos (absent, room reserved). */
void pd__ordermap_add(pd__ordermap_t *m, uint64_t id, uint32_t pos);
/* Point a present id at a new position. */
void pd__ordermap_set(pd__ordermap_t *m, pd__ordermap_keys_t k, uint64_t id, uint32_t pos);
/* Remove a present id. */
void pd__ordermap_del(pd__ordermap_t *m, pd__ordermap_keys_t k, uint64_t id);
/* Bytes held. */
size_t pd__ordermap_memory(const pd__ordermap_t *m);

#endif /* PAIDAN_ENGINE_ORDERMAP_H */
