/* test_stats_internal.c -- latency histograms (api/stats.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "stats.h"

Test(stats, empty_histogram) {
    pd_hist_t h;
    memset(&h, 0, sizeof(h));
    cr_assert_eq(pd_hist_percentile(&h, 50), 0);
}

Test(stats, small_values_are_exact) {
    pd_hist_t h;
    memset(&h, 0, sizeof(h));
    for (uint64_t v = 0; v < 16; v++) pd_hist_add(&h, v);
    cr_assert_eq(pd_hist_percentile(&h, 100), 15);
    cr_assert_eq(pd_hist_percentile(&h, 50), 7);
}

Test(stats, percentiles_within_bucket_error) {
    pd_hist_t h;
    memset(&h, 0, sizeof(h));
    for (uint64_t v = 1; v <= 100000; v++) pd_hist_add(&h, v * 100);
    cr_assert_eq(h.count, 100000);
    cr_assert_eq(h.max_ns, 10000000);
    double pcts[] = {50, 90, 99, 99.9, 100};
    for (int i = 0; i < 5; i++) {
        double want = pcts[i] / 100.0 * 10000000.0;
        double got = (double)pd_hist_percentile(&h, pcts[i]);
        cr_assert(got >= want * 0.999 && got <= want * 1.0625 + 100, "p%g: got %g want %g", pcts[i],
                  got, want);
    }
}

Test(stats, huge_values_clamped) {
    pd_hist_t h;
    memset(&h, 0, sizeof(h));
    pd_hist_add(&h, UINT64_MAX / 2);
    cr_assert_eq(h.count, 1);
    cr_assert_gt(pd_hist_percentile(&h, 50), 0);
}

Test(stats, rss_is_known) {
    cr_assert_gt(pd_stats_rss_bytes(), 0);
}

/* The nearest rank is ceil(p/100 * count), computed without letting the
 * binary rounding of 99.9 / 100 push it one sample up: of 1000 calls, the
 * 999th is the p99.9, so one slow call out of 1000 is not it. */
Test(stats, nearest_rank_is_not_pushed_up_by_rounding) {
    static const uint64_t counts[] = {1000, 2000, 3000, 10000, 100000};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        pd_hist_t h;
        memset(&h, 0, sizeof(h));
        for (uint64_t n = 0; n < counts[i] - counts[i] / 1000; n++) pd_hist_add(&h, 1000);
        for (uint64_t n = 0; n < counts[i] / 1000; n++) pd_hist_add(&h, 1000000);
        uint64_t p999 = pd_hist_percentile(&h, 99.9);
        cr_assert_lt(p999, 1100, "count %llu: p99.9 = %llu ns, the slow tail's bucket",
                     (unsigned long long)counts[i], (unsigned long long)p999);
        cr_assert_eq(pd_hist_percentile(&h, 100), 1000000);
    }
    /* And a fraction of a rank still rounds up: p50 of 3 samples is the 2nd. */
    pd_hist_t h;
    memset(&h, 0, sizeof(h));
    pd_hist_add(&h, 1);
    pd_hist_add(&h, 2);
    pd_hist_add(&h, 3);
    cr_assert_eq(pd_hist_percentile(&h, 50), 2);
    cr_assert_eq(pd_hist_percentile(&h, 99.9), 3);
}
