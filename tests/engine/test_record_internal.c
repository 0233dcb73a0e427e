/* test_record_internal.c -- a service record's mark (what the engine keeps
 * of it in the index) against the record itself.
 *
 * Random credits on random local days, then, for days around them, the
 * mark must never claim an idle week for a record with minutes in it
 * (pd__vrec_minutes_7d is the oracle), must be 0 exactly when the day
 * ring is empty, and must say idle whenever the last credit is a week or
 * more behind. Set PD_SEED to replay.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "record.h"
#include "test_rng.h"

static void check_days(const pd__vrec_t *r, int64_t from, int64_t to, uint64_t seed) {
    uint16_t mark = pd__vrec_mark(r);
    bool empty = true;
    for (unsigned i = 0; i < PD__DAYS; i++) empty &= r->day_min[i] == 0;
    cr_assert_eq(mark == 0, empty, "seed %llu: mark %u, ring %s", (unsigned long long)seed, mark,
                 empty ? "empty" : "not empty");
    for (int64_t day = from; day <= to; day++) {
        uint32_t m7 = pd__vrec_minutes_7d(r, day);
        if (pd__mark_idle_7d(mark, day))
            cr_assert_eq(m7, 0, "seed %llu: mark %u says day %lld is idle, record has %u min",
                         (unsigned long long)seed, mark, (long long)day, m7);
        if (!empty && mark != PD__MARK_UNKNOWN && day >= r->last_day + PD__DAYS)
            cr_assert(pd__mark_idle_7d(mark, day), "seed %llu: a week after the last credit",
                      (unsigned long long)seed);
    }
}

Test(record, mark_agrees_with_the_record) {
    uint64_t seed = pd_test_seed();
    pd_rng_t rng;
    pd_rng_seed(&rng, seed);
    for (int round = 0; round < 2000; round++) {
        pd__vrec_t r;
        memset(&r, 0, sizeof r);
        int64_t base = 20000 + (int64_t)pd_rng_below(&rng, 400); /* days since 1970 */
        check_days(&r, base - 10, base + 10, seed);
        int credits = (int)pd_rng_below(&rng, 6);
        for (int c = 0; c < credits; c++) {
            int64_t day = base + (int64_t)pd_rng_below(&rng, 20);
            uint32_t minutes =
                (uint32_t)pd_rng_below(&rng, 3) ? (uint32_t)pd_rng_below(&rng, 300) : 0;
            pd__vrec_add_minutes(&r, day, minutes);
            check_days(&r, base - 10, base + 40, seed);
        }
    }
}

Test(record, mark_edges) {
    pd__vrec_t r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(pd__vrec_mark(&r), 0);
    pd__vrec_add_minutes(&r, 20000, 30);
    cr_assert_eq(pd__vrec_mark(&r), 20001);
    cr_assert(!pd__mark_idle_7d(20001, 20000));
    cr_assert(!pd__mark_idle_7d(20001, 20006), "the seventh day still counts");
    cr_assert(pd__mark_idle_7d(20001, 20007));
    cr_assert(!pd__mark_idle_7d(20001, 19990), "a day before the credit: read the record");
    /* days that do not fit 16 bits: the mark cannot tell */
    memset(&r, 0, sizeof r);
    pd__vrec_add_minutes(&r, 70000, 5);
    cr_assert_eq(pd__vrec_mark(&r), PD__MARK_UNKNOWN);
    cr_assert(!pd__mark_idle_7d(PD__MARK_UNKNOWN, 90000));
    memset(&r, 0, sizeof r);
    r.last_day = -3; /* before 1970 */
    r.day_min[4] = 10;
    cr_assert_eq(pd__vrec_mark(&r), PD__MARK_UNKNOWN);
}
