/* test_idmap_internal.c -- the id -> slot map against a plain array, with
 * adversarial churn (deletes in the middle of probe runs, regrowth). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "paidan/alloc.h"
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
