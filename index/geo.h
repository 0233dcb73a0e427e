/* geo.h -- the distance metric shared by the index and its callers.
 *
 * Private to index/. The query path and pd_latlng_fast_m() both go through
 * pd__fast_d2(), so an oracle that calls pd_latlng_fast_m() sees exactly the
 * same floating-point values as the index does.
 */
#ifndef PAIDAN_INDEX_GEO_H
#define PAIDAN_INDEX_GEO_H

#include <math.h>
#include <stdint.h>

#define PD__EARTH_R_M 6371008.8
#define PD__E6_TO_RAD (3.14159265358979323846 / 180e6)
#define PD__DEG_E6_FULL 360000000LL
#define PD__DEG_E6_HALF 180000000LL

/* Longitude difference b - a in micro-degrees, wrapped into [-180, 180]. */
static inline int64_t pd__dlon_e6(int32_t a, int32_t b) {
    int64_t d = (int64_t)b - (int64_t)a;
    if (d > PD__DEG_E6_HALF) d -= PD__DEG_E6_FULL;
    if (d < -PD__DEG_E6_HALF) d += PD__DEG_E6_FULL;
    return d;
}

/* Squared angular distance (radians^2) from a query point with latitude
 * q_lat (micro-degrees), cos/sin of that latitude, to (lat, lon). The
 * longitude term uses the cosine at the mean latitude, to first order:
 * cos(q + dy/2) ~ cos q - sin q * dy/2. That keeps the error second-order
 * in the latitude difference without a cos() per candidate. */
static inline double pd__fast_d2(int32_t q_lat, int32_t q_lon, double cos_q, double sin_q,
                                 int32_t lat, int32_t lon) {
    double dy = (double)((int64_t)lat - (int64_t)q_lat) * PD__E6_TO_RAD;
    double dx = (double)pd__dlon_e6(q_lon, lon) * PD__E6_TO_RAD;
    double kx = cos_q - sin_q * dy * 0.5;
    if (kx < 0) kx = 0;
    dx *= kx;
    return dy * dy + dx * dx;
}

#endif /* PAIDAN_INDEX_GEO_H */
