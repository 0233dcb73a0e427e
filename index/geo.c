/* geo.c -- positions, distances, weekly schedules and the small enums of
 * the index: everything about a volunteer that is not the grid itself. */
#include "geo.h"

#include <math.h>
#include <string.h>

#include "paidan/index.h"

/* ------------------------------------------------------------ positions */

bool pd_latlng_is_valid(pd_latlng_t p) {
    return p.lat >= -90000000 && p.lat <= 90000000 && p.lon >= -180000000 && p.lon <= 180000000;
}

pd_err pd_latlng_from_deg(double lat_deg, double lon_deg, pd_latlng_t *out) {
    if (!isfinite(lat_deg) || !isfinite(lon_deg)) return PD_ERR_BAD_COORD;
    if (lat_deg < -90.0 || lat_deg > 90.0 || lon_deg < -180.0 || lon_deg > 180.0)
        return PD_ERR_BAD_COORD;
    out->lat = (int32_t)lround(lat_deg * 1e6);
    out->lon = (int32_t)lround(lon_deg * 1e6);
    return PD_OK;
}

double pd_latlng_haversine_m(pd_latlng_t a, pd_latlng_t b) {
    double la = a.lat * PD__E6_TO_RAD, lb = b.lat * PD__E6_TO_RAD;
    double dla = lb - la;
    double dlo = (double)pd__dlon_e6(a.lon, b.lon) * PD__E6_TO_RAD;
    double s1 = sin(dla * 0.5), s2 = sin(dlo * 0.5);
    double h = s1 * s1 + cos(la) * cos(lb) * s2 * s2;
    if (h > 1) h = 1;
    return 2.0 * PD__EARTH_R_M * asin(sqrt(h));
}

double pd_latlng_fast_m(pd_latlng_t a, pd_latlng_t b) {
    double qr = a.lat * PD__E6_TO_RAD;
    return PD__EARTH_R_M * sqrt(pd__fast_d2(a.lat, a.lon, cos(qr), sin(qr), b.lat, b.lon));
}

/* ------------------------------------------------------------- schedules */

pd_week_t pd_week_all(void) {
    pd_week_t w = {{~0ULL, ~0ULL, (1ULL << (PD_WEEK_HOURS - 128)) - 1}};
    return w;
}

pd_week_t pd_week_none(void) {
    pd_week_t w = {{0, 0, 0}};
    return w;
}

static void week_set(pd_week_t *w, int h) {
    w->bits[h >> 6] |= 1ULL << (h & 63);
}

pd_err pd_week_add_range(pd_week_t *w, int day, int start_hour, int end_hour) {
    if (day < 0 || day > 6 || start_hour < 0 || end_hour > 24 || start_hour >= end_hour)
        return PD_ERR_BAD_ARG;
    for (int h = start_hour; h < end_hour; h++) week_set(w, day * 24 + h);
    return PD_OK;
}

pd_err pd_week_window(int32_t start_how_min, int32_t duration_min, pd_week_t *out) {
    const int32_t week_min = PD_WEEK_HOURS * 60;
    if (start_how_min < 0 || start_how_min >= week_min) return PD_ERR_BAD_ARG;
    if (duration_min < 0 || duration_min > week_min) return PD_ERR_BAD_ARG;
    *out = pd_week_none();
    int32_t first = start_how_min / 60;
    /* The last minute covered is start + duration - 1 (a 0-minute window
     * covers its starting hour). */
    int32_t last = (start_how_min + (duration_min ? duration_min - 1 : 0)) / 60;
    if (last - first >= PD_WEEK_HOURS) last = first + PD_WEEK_HOURS - 1;
    for (int32_t h = first; h <= last; h++) week_set(out, h % PD_WEEK_HOURS);
    return PD_OK;
}

/* ------------------------------------------------------------- the enums */

static const char *const mode_names[PD_MODE__COUNT] = {"walk", "bike", "ebike", "car"};
static const char *const status_names[PD_STATUS__COUNT] = {"online", "busy", "offline"};

const char *pd_mode_name(pd_mode m) {
    return (unsigned)m < PD_MODE__COUNT ? mode_names[m] : NULL;
}

pd_err pd_mode_from_name(const char *s, pd_mode *out) {
    for (int i = 0; i < PD_MODE__COUNT; i++) {
        if (strcmp(s, mode_names[i]) == 0) {
            *out = (pd_mode)i;
            return PD_OK;
        }
    }
    return PD_ERR_BAD_ARG;
}

const char *pd_status_name(pd_status s) {
    return (unsigned)s < PD_STATUS__COUNT ? status_names[s] : NULL;
}

pd_err pd_status_from_name(const char *s, pd_status *out) {
    for (int i = 0; i < PD_STATUS__COUNT; i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (pd_status)i;
            return PD_OK;
        }
    }
    return PD_ERR_BAD_ARG;
}

pd_err pd_volunteer_check(const pd_volunteer_t *v) {
    if (!pd_latlng_is_valid(v->pos)) return PD_ERR_BAD_COORD;
    if (v->mode >= PD_MODE__COUNT || v->status >= PD_STATUS__COUNT) return PD_ERR_BAD_ARG;
    if (v->capacity == 0) return PD_ERR_BAD_ARG;
    if (v->week.bits[2] >> (PD_WEEK_HOURS - 128)) return PD_ERR_BAD_ARG;
    return PD_OK;
}
