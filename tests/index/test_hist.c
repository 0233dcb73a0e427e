/* test_hist.c -- the histogram's percentiles against a sorted array. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "paidan/hist.h"
#include "test_rng.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(hist, percentiles_within_one_percent) {
    pd_rng_t r;
    pd_rng_seed(&r, pd_test_seed());
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof *v);
    pd_hist_t *h = malloc(sizeof *h);
    pd_hist_init(h);
    for (int i = 0; i < N; i++) {
        /* log-uniform from 1 ns to ~1 s */
        v[i] = (uint64_t)1 << pd_rng_below(&r, 30);
        v[i] += pd_rng_below(&r, v[i]);
        pd_hist_record(h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t exact = v[(size_t)((ps[i] / 100.0) * N + 0.999999) - 1];
        uint64_t got = pd_hist_percentile(h, ps[i]);
        cr_assert(got >= exact, "p%g: %lu < exact %lu", ps[i], got, exact);
        cr_assert(got - exact <= exact / 128 + 1, "p%g: %lu vs exact %lu", ps[i], got, exact);
    }
    cr_assert_eq(pd_hist_percentile(h, 100), v[N - 1]);
    cr_assert_eq(pd_hist_percentile(h, 0), v[0]);
    cr_assert_eq(h->count, N);

    pd_hist_t *h2 = malloc(sizeof *h2);
    pd_hist_init(h2);
    pd_hist_record(h2, 5);
    pd_hist_merge(h2, h);
    cr_assert_eq(h2->count, N + 1);
    cr_assert_eq(h2->min, v[0] < 5 ? v[0] : 5);
    free(h2);
    free(h);
    free(v);
}

Test(hist, empty_and_exact_small_values) {
    pd_hist_t h;
    pd_hist_init(&h);
    cr_assert_eq(pd_hist_percentile(&h, 50), 0);
    cr_assert_eq(pd_hist_mean(&h), 0.0);
    for (uint64_t i = 1; i <= 100; i++) pd_hist_record(&h, i);
    cr_assert_eq(pd_hist_percentile(&h, 50), 50);
    cr_assert_eq(pd_hist_percentile(&h, 99), 99);
    cr_assert_float_eq(pd_hist_mean(&h), 50.5, 1e-9);
}

/* The ends of the value range and of p: 0 and UINT64_MAX land in their
 * own buckets, p <= 0 is the minimum, p >= 100 and NaN the maximum (NaN
 * used to reach a float-to-integer conversion, undefined behaviour). */
Test(hist, extreme_values_and_percentiles) {
    pd_hist_t *h = malloc(sizeof *h);
    pd_hist_init(h);
    cr_assert_eq(pd_hist_percentile(h, NAN), 0);
    pd_hist_record(h, UINT64_MAX);
    cr_assert_eq(pd_hist_percentile(h, 50), UINT64_MAX);
    cr_assert_eq(pd_hist_percentile(h, 0), UINT64_MAX);
    pd_hist_record(h, 0);
    cr_assert_eq(h->min, 0);
    cr_assert_eq(h->max, UINT64_MAX);
    cr_assert_eq(pd_hist_percentile(h, 0), 0);
    cr_assert_eq(pd_hist_percentile(h, -1), 0);
    cr_assert_eq(pd_hist_percentile(h, 50), 0);
    cr_assert_eq(pd_hist_percentile(h, 50.0001), UINT64_MAX);
    cr_assert_eq(pd_hist_percentile(h, 100), UINT64_MAX);
    cr_assert_eq(pd_hist_percentile(h, 1e300), UINT64_MAX);
    cr_assert_eq(pd_hist_percentile(h, INFINITY), UINT64_MAX);
    cr_assert_eq(pd_hist_percentile(h, -INFINITY), 0);
    cr_assert_eq(pd_hist_percentile(h, NAN), UINT64_MAX);
    free(h);
}
