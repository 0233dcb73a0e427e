/* test_geo.c -- the distance metric against haversine, and the weekly
 * schedule helpers. The bound checked here is the one docs/index.md states. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "paidan/index.h"
#include "test_rng.h"

/* Relative error of the fast metric against haversine, for pairs up to
 * max_m apart, at latitudes within +-max_lat degrees. Returns the worst. */
static double worst_error(pd_rng_t *r, double max_m, double max_lat, int pairs) {
    double worst = 0;
    for (int i = 0; i < pairs; i++) {
        pd_latlng_t a, b;
        double lat = (pd_rng_unit(r) * 2 - 1) * max_lat;
        double lon = (pd_rng_unit(r) * 2 - 1) * 180;
        cr_assert_eq(pd_latlng_from_deg(lat, lon, &a), PD_OK);
        double d = pd_rng_unit(r) * max_m, bearing = pd_rng_unit(r) * 6.283185307179586;
        double dlat = d * cos(bearing) / 6371008.8 * 57.29577951308232;
        double dlon =
            d * sin(bearing) / (6371008.8 * cos(lat / 57.29577951308232)) * 57.29577951308232;
        double blat = lat + dlat, blon = lon + dlon;
        if (blat > 90 || blat < -90) continue;
        if (blon > 180) blon -= 360;
        if (blon < -180) blon += 360;
        cr_assert_eq(pd_latlng_from_deg(blat, blon, &b), PD_OK);
        double h = pd_latlng_haversine_m(a, b), f = pd_latlng_fast_m(a, b);
        if (h < 100) { /* micro-degree rounding dominates below this */
            cr_assert(fabs(f - h) < 0.2, "h %f f %f", h, f);
            continue;
        }
        double e = fabs(f - h) / h;
        if (e > worst) worst = e;
    }
    return worst;
}

Test(geo, fast_metric_within_documented_bound) {
    pd_rng_t r;
    pd_rng_seed(&r, pd_test_seed());
    double e20 = worst_error(&r, 20000, 70, 200000);
    double e50 = worst_error(&r, 50000, 70, 100000);
    fprintf(stderr,
            "fast metric worst relative error: %.2e below 20 km, %.2e below 50 km"
            " (|lat| <= 70)\n",
            e20, e50);
    cr_assert(e20 < 1e-4, "worst error below 20 km %.3e", e20); /* docs: < 0.01 % */
    cr_assert(e50 < 5e-4, "worst error below 50 km %.3e", e50);
}

/* The bound holds up to 85 degrees from the equator (index.h says so);
 * closer to a pole the metric degrades (docs/index.md). */
Test(geo, fast_metric_bound_holds_to_85_degrees) {
    pd_rng_t r;
    pd_rng_seed(&r, pd_test_seed() ^ 85);
    double e20 = worst_error(&r, 20000, 85, 50000);
    double e50 = worst_error(&r, 50000, 85, 50000);
    cr_assert(e20 < 1e-4, "worst error below 20 km %.3e", e20);
    cr_assert(e50 < 5e-4, "worst error below 50 km %.3e", e50);
    /* across the antimeridian near a pole, still fine at 85 degrees */
    pd_latlng_t a, b;
    cr_assert_eq(pd_latlng_from_deg(85, 179.9, &a), PD_OK);
    cr_assert_eq(pd_latlng_from_deg(85.05, -179.95, &b), PD_OK);
    double h = pd_latlng_haversine_m(a, b);
    cr_assert(fabs(pd_latlng_fast_m(a, b) - h) < 1e-4 * h);
}

Test(geo, haversine_known_distances) {
    pd_latlng_t a, b;
    /* one degree of latitude on the mean sphere */
    cr_assert_eq(pd_latlng_from_deg(0, 0, &a), PD_OK);
    cr_assert_eq(pd_latlng_from_deg(1, 0, &b), PD_OK);
    cr_assert_float_eq(pd_latlng_haversine_m(a, b), 111195.08, 0.1);
    /* across the antimeridian: 0.2 degrees of longitude at the equator */
    cr_assert_eq(pd_latlng_from_deg(0, 179.9, &a), PD_OK);
    cr_assert_eq(pd_latlng_from_deg(0, -179.9, &b), PD_OK);
    cr_assert_float_eq(pd_latlng_haversine_m(a, b), 22239.0, 1.0);
    cr_assert_float_eq(pd_latlng_fast_m(a, b), 22239.0, 1.0);
    /* the same point */
    cr_assert_float_eq(pd_latlng_fast_m(a, a), 0.0, 1e-9);
}

Test(geo, week_ranges_and_windows) {
    pd_week_t w = pd_week_none();
    cr_assert(pd_week_is_empty(&w));
    cr_assert_eq(pd_week_add_range(&w, 0, 18, 22), PD_OK); /* Mon 18-22 */
    cr_assert_eq(pd_week_add_range(&w, 7, 1, 2), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_week_add_range(&w, 0, 5, 5), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_week_add_range(&w, 0, -1, 5), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_week_add_range(&w, 0, 20, 25), PD_ERR_BAD_ARG);

    pd_week_t need;
    cr_assert_eq(pd_week_window(18 * 60, 120, &need), PD_OK); /* Mon 18:00-20:00 */
    cr_assert(pd_week_covers(&w, &need));
    cr_assert_eq(pd_week_window(18 * 60 + 30, 240, &need), PD_OK); /* to 22:30 */
    cr_assert_not(pd_week_covers(&w, &need));
    cr_assert_eq(pd_week_window(21 * 60, 60, &need), PD_OK); /* 21:00-22:00 exactly */
    cr_assert(pd_week_covers(&w, &need));
    cr_assert_eq(pd_week_window(21 * 60, 61, &need), PD_OK);
    cr_assert_not(pd_week_covers(&w, &need));
    cr_assert_eq(pd_week_window(21 * 60, 0, &need), PD_OK);
    cr_assert(pd_week_covers(&w, &need));

    /* wrapping past Sunday 24:00 into Monday */
    pd_week_t sun = pd_week_none();
    cr_assert_eq(pd_week_add_range(&sun, 6, 23, 24), PD_OK);
    cr_assert_eq(pd_week_add_range(&sun, 0, 0, 1), PD_OK);
    cr_assert_eq(pd_week_window(167 * 60 + 30, 60, &need), PD_OK);
    cr_assert(pd_week_covers(&sun, &need));
    cr_assert_eq(need.bits[0], 1ULL);

    pd_week_t all = pd_week_all();
    cr_assert_eq(pd_week_window(0, PD_WEEK_HOURS * 60, &need), PD_OK);
    cr_assert_eq(memcmp(&need, &all, sizeof need), 0);
    cr_assert_eq(pd_week_window(-1, 10, &need), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_week_window(PD_WEEK_HOURS * 60, 10, &need), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_week_window(0, -5, &need), PD_ERR_BAD_ARG);
}

Test(geo, names_round_trip) {
    for (int m = 0; m < PD_MODE__COUNT; m++) {
        pd_mode back;
        cr_assert_eq(pd_mode_from_name(pd_mode_name((pd_mode)m), &back), PD_OK);
        cr_assert_eq(back, m);
    }
    for (int s = 0; s < PD_STATUS__COUNT; s++) {
        pd_status back;
        cr_assert_eq(pd_status_from_name(pd_status_name((pd_status)s), &back), PD_OK);
        cr_assert_eq(back, s);
    }
    pd_mode m;
    cr_assert_eq(pd_mode_from_name("rocket", &m), PD_ERR_BAD_ARG);
    cr_assert_null(pd_mode_name((pd_mode)9));
    cr_assert_str_eq(pd_strerror(PD_ERR_BAD_COORD), "coordinates out of range");
    cr_assert_str_eq(pd_err_name(PD_ERR_NOT_FOUND), "NOT_FOUND");
    cr_assert_str_eq(pd_err_name((pd_err)999), "UNKNOWN");
}
