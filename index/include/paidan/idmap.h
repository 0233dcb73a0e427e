/* idmap.h -- open-addressing map from a 64-bit id to a 32-bit slot.
 *
 * Internal to paidan (the pd__ prefix): the index maps volunteer ids to
 * slots with it, the engine order ids to positions in its order array.
 * Each bucket is one uint64: the upper 32 bits of the
 * id's xxhash (the "tag") and slot + 1 (0 marks an empty bucket). The map
 * does not store the ids themselves: the caller keeps them in an array
 * (base + slot * stride) and the map reads them to confirm a tag match.
 * That halves the memory of a key+value table, which matters at 10^7
 * volunteers. The home bucket is the tag scaled to the table ((tag * cap)
 * >> 32), so growing needs no ids and a table can be any size: it grows
 * by half.
 * Linear probing with backward-shift deletion: no tombstones.
 *
 * Growing one insert at a time (pd__idmap_reserve1) is incremental, as in
 * Redis's dict: the new table takes the inserts, and each reserve1, set
 * and delete moves a few entries of the old one over until it is empty;
 * lookups, sets and deletes look in both meanwhile. Moving 10^6 entries at once held an insert for
 * 45 ms, 1.5 * 10^6 for 90 ms. The old table is drained from bucket 0 up,
 * each entry taken out with the same backward shift, so every bucket
 * before the cursor is empty and no entry left there has its home before
 * the cursor: a probe from the home still finds it. A bulk reserve
 * (pd__idmap_reserve) finishes any draining and grows at once.
 */
#ifndef PAIDAN_IDMAP_H
#define PAIDAN_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "paidan/error.h"

typedef struct pd__idmap_s {
    uint64_t *b;      /* buckets, cap entries */
    uint32_t cap;     /* buckets */
    uint32_t n;       /* entries in use, in both tables */
    uint64_t *old;    /* while growing: the table being drained; else NULL */
    uint32_t old_cap; /* its buckets */
    uint32_t cursor;  /* its buckets before this one are empty */
} pd__idmap_t;

/* Where the ids live: id of slot s is *(uint64_t *)(base + s * stride). */
typedef struct pd__idmap_keys_s {
    const char *base;
    size_t stride;
} pd__idmap_keys_t;

pd_err pd__idmap_init(pd__idmap_t *m, uint32_t cap_hint);
void pd__idmap_deinit(pd__idmap_t *m);
/* Make room for one more entry, growing if needed (incrementally: a few
 * entries move per call). PD_ERR_NOMEM leaves the map as it was. */
pd_err pd__idmap_reserve1(pd__idmap_t *m);
/* Make room for `more` more entries (one growth at most, all at once). */
pd_err pd__idmap_reserve(pd__idmap_t *m, uint32_t more);
/* Find id; PD_ERR_NOT_FOUND if absent. */
pd_err pd__idmap_find(const pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t *slot);
/* Add id -> slot; the id must be absent and room reserved. */
void pd__idmap_add(pd__idmap_t *m, uint64_t id, uint32_t slot);
/* Add id -> slot unless id is present (PD_ERR_EXISTS): one probe run for
 * both. Room reserved. */
pd_err pd__idmap_add_new(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t slot);
/* Start loading the bucket where id's probe run begins. */
void pd__idmap_prefetch(const pd__idmap_t *m, uint64_t id);
/* Point a present id at another slot; PD_ERR_NOT_FOUND if absent. */
pd_err pd__idmap_set(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id, uint32_t slot);
/* Remove id; PD_ERR_NOT_FOUND if absent. */
pd_err pd__idmap_del(pd__idmap_t *m, pd__idmap_keys_t keys, uint64_t id);
/* Bytes of bucket memory. */
size_t pd__idmap_memory(const pd__idmap_t *m);

#endif /* PAIDAN_IDMAP_H */
