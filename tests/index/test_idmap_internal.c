/* test_idmap_internal.c -- the id -> slot map against a plain array, with
 * adversarial churn (deletes in the middle of probe runs, regrowth). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "paidan/alloc.h"
#include "paidan/idmap.h"
#include "test_rng.h"

#define N 20000

Test(idmap, random_churn_matches_array) {
    pd_rng_t r;
    pd_rng_seed(&r, pd_test_seed());
    uint64_t *ids = calloc(N, sizeof *ids); /* slot -> id, 0 = free */
    pd__idmap_t m;
    cr_assert_eq(pd__idmap_init(&m, 4), PD_OK);
    pd__idmap_keys_t keys = {(const char *)ids, sizeof *ids};
    size_t live = 0;
    for (int step = 0; step < 300000; step++) {
        uint32_t s = (uint32_t)pd_rng_below(&r, N);
        if (ids[s] == 0) {
            /* small id space too, so tags collide often */
            uint64_t id = step % 3 ? pd_rng_next(&r) | 1 : 1 + pd_rng_below(&r, 1000000);
            uint32_t found;
            if (pd__idmap_find(&m, keys, id, &found) == PD_OK) continue;
            cr_assert_eq(pd__idmap_reserve1(&m), PD_OK);
            ids[s] = id;
            pd__idmap_add(&m, id, s);
            live++;
        } else {
            cr_assert_eq(pd__idmap_del(&m, keys, ids[s]), PD_OK);
            cr_assert_eq(pd__idmap_del(&m, keys, ids[s]), PD_ERR_NOT_FOUND);
            ids[s] = 0;
            live--;
        }
        cr_assert_eq(m.n, live);
        if (step % 10000 == 0) {
            for (uint32_t i = 0; i < N; i++) {
                uint32_t found;
                if (ids[i]) {
                    cr_assert_eq(pd__idmap_find(&m, keys, ids[i], &found), PD_OK);
                    cr_assert_eq(found, i);
                }
            }
        }
    }
    pd__idmap_deinit(&m);
    free(ids);
}

Test(idmap, grow_failure_keeps_map) {
    uint64_t ids[64] = {0};
    pd__idmap_t m;
    cr_assert_eq(pd__idmap_init(&m, 16), PD_OK);
    pd__idmap_keys_t keys = {(const char *)ids, sizeof *ids};
    for (uint32_t i = 0; i < 64; i++) {
        pd_alloc_fail_after(0);
        pd_err err = pd__idmap_reserve1(&m);
        pd_alloc_fail_after(-1);
        if (err) {
            cr_assert_eq(err, PD_ERR_NOMEM);
            cr_assert_eq(pd__idmap_reserve1(&m), PD_OK);
        }
        ids[i] = 1000 + i * 7;
        pd__idmap_add(&m, ids[i], i);
        for (uint32_t j = 0; j <= i; j++) {
            uint32_t s;
            cr_assert_eq(pd__idmap_find(&m, keys, ids[j], &s), PD_OK);
            cr_assert_eq(s, j);
        }
    }
    pd__idmap_deinit(&m);
}

/* Every live id is found at its slot, every freed one is not. */
static void check_all(const pd__idmap_t *m, pd__idmap_keys_t keys, const uint64_t *ids,
                      const uint64_t *gone, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        uint32_t found;
        if (ids[i]) {
            cr_assert_eq(pd__idmap_find(m, keys, ids[i], &found), PD_OK, "id %llu lost",
                         (unsigned long long)ids[i]);
            cr_assert_eq(found, i);
        }
        if (gone[i]) cr_assert_eq(pd__idmap_find(m, keys, gone[i], &found), PD_ERR_NOT_FOUND);
    }
}

/* Growth one insert at a time is incremental: while the old table drains,
 * inserts, deletes (in either table), duplicate checks and lookups all
 * work, checked after every step; and the old table is gone before the
 * next growth. */
Test(idmap, incremental_growth_keeps_every_entry) {
    enum { M = 6000 };
    pd_rng_t r;
    pd_rng_seed(&r, pd_test_seed());
    /* slots 0..M-1 take the inserts, M..2M-1 the entries moved by set */
    uint64_t *ids = calloc(2 * M, sizeof *ids), *gone = calloc(2 * M, sizeof *gone);
    pd__idmap_t m;
    cr_assert_eq(pd__idmap_init(&m, 16), PD_OK);
    pd__idmap_keys_t keys = {(const char *)ids, sizeof *ids};
    uint32_t live = 0, growths = 0, drained_steps = 0;
    for (uint32_t s = 0; s < M; s++) {
        uint32_t cap = m.cap;
        bool was_draining = m.old != NULL;
        cr_assert_eq(pd__idmap_reserve1(&m), PD_OK);
        if (m.cap != cap) {
            cr_assert(!was_draining, "a growth started before the last one drained");
            growths++;
        }
        if (m.old) drained_steps++;
        uint64_t id = (uint64_t)(s + 1) << 20 | pd_rng_below(&r, 1u << 20); /* never reused */
        uint32_t dup;
        cr_assert_eq(pd__idmap_find(&m, keys, id, &dup), PD_ERR_NOT_FOUND);
        ids[s] = id;
        cr_assert_eq(pd__idmap_add_new(&m, keys, id, s), PD_OK);
        cr_assert_eq(pd__idmap_add_new(&m, keys, id, s), PD_ERR_EXISTS);
        live++;
        /* a delete now and then: while draining it may hit either table */
        if (pd_rng_below(&r, 3) == 0) {
            uint32_t v = (uint32_t)pd_rng_below(&r, s + 1);
            if (ids[v]) {
                cr_assert_eq(pd__idmap_del(&m, keys, ids[v]), PD_OK);
                gone[v] = ids[v];
                ids[v] = 0;
                live--;
            }
        }
        /* and a move now and then (pd__idmap_set), in either table */
        if (pd_rng_below(&r, 4) == 0) {
            uint32_t v = (uint32_t)pd_rng_below(&r, s + 1);
            if (ids[v]) {
                cr_assert_eq(pd__idmap_set(&m, keys, ids[v], M + v), PD_OK);
                ids[M + v] = ids[v];
                ids[v] = 0;
            }
        }
        cr_assert_eq(pd__idmap_set(&m, keys, id ^ 1ULL << 63, 0), PD_ERR_NOT_FOUND);
        cr_assert_eq(m.n, live);
        if (m.old || s % 500 == 0) check_all(&m, keys, ids, gone, 2 * M);
    }
    cr_assert_geq(growths, 5);
    cr_assert_gt(drained_steps, 0, "no insert ever saw a table draining");
    /* a bulk reserve finishes the draining and grows at once */
    cr_assert_eq(pd__idmap_reserve(&m, 100000), PD_OK);
    cr_assert_null(m.old);
    check_all(&m, keys, ids, gone, 2 * M);
    pd__idmap_deinit(&m);
    free(ids);
    free(gone);
}

/* An old table goes away even when nothing more is added: deletes drain
 * it too. */
Test(idmap, deletes_alone_drain_the_old_table) {
    enum { M = 2000 };
    uint64_t *ids = calloc(M, sizeof *ids);
    pd__idmap_t m;
    cr_assert_eq(pd__idmap_init(&m, 16), PD_OK);
    pd__idmap_keys_t keys = {(const char *)ids, sizeof *ids};
    uint32_t s = 0;
    /* insert until a growth has just started */
    for (; s < M; s++) {
        cr_assert_eq(pd__idmap_reserve1(&m), PD_OK);
        ids[s] = 0x1000 + s;
        pd__idmap_add(&m, ids[s], s);
        if (m.old && m.cap > 500) break;
    }
    cr_assert_not_null(m.old, "no growth in progress");
    uint32_t deletes = 0;
    for (uint32_t v = 0; v <= s && m.old; v++, deletes++)
        cr_assert_eq(pd__idmap_del(&m, keys, ids[v]), PD_OK);
    cr_assert_null(m.old, "the old table outlived %u deletes", deletes);
    for (uint32_t v = deletes; v <= s; v++) {
        uint32_t found;
        cr_assert_eq(pd__idmap_find(&m, keys, ids[v], &found), PD_OK);
        cr_assert_eq(found, v);
    }
    pd__idmap_deinit(&m);
    free(ids);
}
