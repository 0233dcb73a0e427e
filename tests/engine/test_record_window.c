/* test_record_window.c -- a service record's 7-day sum against a model
 * that keeps every credit: for any day at or after the newest credit, the
 * minutes of that day and the six before it (each day saturating at
 * 65535), whatever the days are (before 1970 too) and in whatever order
 * they came; and stars and points from the totals. Set PD_SEED to replay.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "record.h"
#include "test_rng.h"

typedef struct credit_s {
    int64_t day;
    uint32_t minutes;
} credit_t;

static uint32_t model_7d(const credit_t *c, size_t n, int64_t day) {
    uint32_t sum = 0;
    for (int64_t d = day - (PD__DAYS - 1); d <= day; d++) {
        uint32_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (c[i].day == d) m += c[i].minutes;
        }
        sum += m > UINT16_MAX ? UINT16_MAX : m;
    }
    return sum;
}

static void run(pd_rng_t *rng, uint64_t seed, int64_t base) {
    for (int round = 0; round < 1000; round++) {
        pd__vrec_t r;
        memset(&r, 0, sizeof r);
        credit_t c[8];
        size_t n = 1 + pd_rng_below(rng, 8);
        int64_t newest = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            /* mostly forward in time, now and then a late report */
            c[i].day = base + (int64_t)pd_rng_below(rng, 16);
            c[i].minutes = pd_rng_below(rng, 8) ? 1 + (uint32_t)pd_rng_below(rng, 600) : 40000;
            pd__vrec_add_minutes(&r, c[i].day, c[i].minutes);
            if (c[i].day > newest) newest = c[i].day;
            /* A credit older than the newest by a week or more is only in the
             * total; the model drops it too. */
            for (size_t j = 0; j <= i; j++) {
                if (c[j].day <= newest - PD__DAYS) c[j].minutes = 0;
            }
            for (int64_t q = newest; q < newest + 9; q++) {
                cr_assert_eq(pd__vrec_minutes_7d(&r, q), model_7d(c, i + 1, q),
                             "seed %llu round %d credit %zu day %lld", (unsigned long long)seed,
                             round, i, (long long)q);
            }
        }
    }
}

Test(record_window, seven_days_against_a_model) {
    uint64_t seed = pd_test_seed() ^ 0x7d;
    pd_rng_t rng;
    pd_rng_seed(&rng, seed);
    run(&rng, seed, 19990); /* 2024 */
    run(&rng, seed, -12);   /* around 1970-01-01 */
}

/* A fresh record credited before 1970 (local day < 0) counts the minutes
 * in its week like any other day. */
Test(record_window, a_fresh_record_before_1970) {
    pd__vrec_t r;
    memset(&r, 0, sizeof r);
    pd__vrec_add_minutes(&r, -30, 45);
    cr_assert_eq(pd__vrec_minutes_7d(&r, -30), 45);
    cr_assert_eq(pd__vrec_minutes_7d(&r, -24), 45, "the seventh day still counts");
    cr_assert_eq(pd__vrec_minutes_7d(&r, -23), 0);
    cr_assert_eq(pd__vrec_mark(&r), PD__MARK_UNKNOWN); /* the mark cannot say: read it */
}
