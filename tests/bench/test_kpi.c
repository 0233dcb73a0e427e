/* test_kpi.c -- replay figures on tiny histories checked by hand. */
#include <criterion/criterion.h>

#include "kpi.h"

Test(kpi, gini_by_hand) {
    /* sorted 0,0,1,3: sum 4, sum i*x = 3*1 + 4*3 = 15,
     * G = 2*15/(4*4) - 5/4 = 0.625; also sum |xi-xj| over ordered pairs
     * = 20, / (2 * 16 * mean 1) = 0.625. */
    double a[] = {3, 0, 1, 0};
    cr_assert_float_eq(pd__gini(a, 4), 0.625, 1e-12);
    double equal[] = {5, 5, 5};
    cr_assert_float_eq(pd__gini(equal, 3), 0.0, 1e-12);
    double one[] = {0, 4, 0, 0};
    cr_assert_float_eq(pd__gini(one, 4), 0.75, 1e-12); /* (n-1)/n: one holds all */
    double zero[] = {0, 0};
    cr_assert_float_eq(pd__gini(zero, 2), 0.0, 1e-12);
    cr_assert_float_eq(pd__gini(NULL, 0), 0.0, 1e-12);
    double two[] = {1, 3}; /* |1-3| * 2 / (2 * 4 * 2) = 0.25 */
    cr_assert_float_eq(pd__gini(two, 2), 0.25, 1e-12);
}

Test(kpi, nearest_rank_percentiles) {
    double v[] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    cr_assert_float_eq(pd__percentile(v, 10, 50), 5, 1e-12);
    cr_assert_float_eq(pd__percentile(v, 10, 90), 9, 1e-12);
    cr_assert_float_eq(pd__percentile(v, 10, 95), 10, 1e-12); /* rank ceil(9.5) = 10 */
    cr_assert_float_eq(pd__percentile(v, 10, 0), 1, 1e-12);
    cr_assert_float_eq(pd__percentile(v, 10, 100), 10, 1e-12);
    cr_assert_float_eq(pd__percentile(v, 10, 1), 1, 1e-12);
    cr_assert_float_eq(pd__percentile(NULL, 0, 50), 0, 1e-12);
    double one[] = {42};
    cr_assert_float_eq(pd__percentile(one, 1, 50), 42, 1e-12);
}

Test(kpi, summary_of_a_tiny_history) {
    /* Five orders: one refused by order.create; three filled after 60,
     * 120 and 30 s with ETAs 300, 1200 and 900 s; one expired with nobody
     * qualified. 9 offers. Four volunteers served 0, 0, 1 and 3 hours; two
     * of them completed an order. Two ratings, 5 and 4. */
    pd__kpi_t k;
    pd__kpi_init(&k);
    k.orders = 5;
    k.rejected = 1;
    k.offers = 9;
    k.expired[PD_REASON_NO_CANDIDATE] = 1;
    k.completed = 3;
    k.rated = 2;
    k.rating_sum = 9;
    cr_assert_eq(pd__kpi_filled(&k, 60, 300), PD_OK);
    cr_assert_eq(pd__kpi_filled(&k, 120, 1200), PD_OK);
    cr_assert_eq(pd__kpi_filled(&k, 30, 900), PD_OK); /* exactly on the circle: inside */
    cr_assert_eq(k.filled, 3);
    cr_assert_eq(k.in_circle, 2);
    double hours[] = {0, 3, 0, 1};
    pd__kpi_summary_t s;
    pd__kpi_summarise(&k, hours, 4, 2, &s);
    cr_assert_eq(s.orders, 5);
    cr_assert_eq(s.filled, 3);
    cr_assert_float_eq(s.fill_rate, 0.75, 1e-12); /* 3 / (5 - 1) */
    cr_assert_float_eq(s.tta_p50_s, 60, 1e-12);   /* 30 60 120: rank 2 */
    cr_assert_float_eq(s.tta_p90_s, 120, 1e-12);  /* rank ceil(2.7) = 3 */
    cr_assert_float_eq(s.eta_p50_s, 900, 1e-12);  /* 300 900 1200 */
    cr_assert_float_eq(s.eta_p90_s, 1200, 1e-12);
    cr_assert_float_eq(s.in_circle_share, 2.0 / 3.0, 1e-12);
    cr_assert_float_eq(s.gini_hours, 0.625, 1e-12);
    cr_assert_float_eq(s.served_share, 0.5, 1e-12);
    cr_assert_float_eq(s.hours_total, 4, 1e-12);
    cr_assert_float_eq(s.rating_mean, 4.5, 1e-12);
    cr_assert_float_eq(s.offers_per_order, 9.0 / 4.0, 1e-12);
    cr_assert_eq(s.expired_total, 1);
    cr_assert_eq(s.expired[PD_REASON_NO_CANDIDATE], 1);
    cr_assert_eq(s.rejected, 1);
    cr_assert_eq(s.completed, 3);
    pd__kpi_deinit(&k);
}

Test(kpi, empty_history_is_all_zero) {
    pd__kpi_t k;
    pd__kpi_init(&k);
    pd__kpi_summary_t s;
    pd__kpi_summarise(&k, NULL, 0, 0, &s);
    cr_assert_float_eq(s.fill_rate, 0, 1e-12);
    cr_assert_float_eq(s.tta_p50_s, 0, 1e-12);
    cr_assert_float_eq(s.gini_hours, 0, 1e-12);
    cr_assert_float_eq(s.served_share, 0, 1e-12);
    pd__kpi_deinit(&k);
}
