/* week.c -- from UTC timestamps to the local week the schedules speak.
 *
 * Schedules are local weekly hours (index.h: hour 0 = Monday 00:00 local).
 * A timestamp is shifted by the configured UTC offset and reduced modulo
 * the week; 1970-01-01 was a Thursday, day 3 of a Monday-based week. All
 * divisions floor, so times before 1970 work too.
 */
#include "paidan/engine.h"

#define MS_PER_MIN 60000
#define MIN_PER_DAY 1440
#define MIN_PER_WEEK (7 * MIN_PER_DAY)
#define EPOCH_WEEKDAY 3 /* Thursday, Monday = 0 */
#define MAX_OFFSET_MIN (14 * 60)

static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static inline int64_t floor_mod(int64_t a, int64_t b) {
    return a - floor_div(a, b) * b;
}

pd_err pd_time_to_week_minute(int64_t ms, int32_t utc_offset_min, int32_t *out) {
    if (utc_offset_min < -MAX_OFFSET_MIN || utc_offset_min > MAX_OFFSET_MIN) {
        return PD_ERR_BAD_ARG;
    }
    int64_t minutes = floor_div(ms, MS_PER_MIN) + utc_offset_min;
    *out = (int32_t)floor_mod(minutes + (int64_t)EPOCH_WEEKDAY * MIN_PER_DAY, MIN_PER_WEEK);
    return PD_OK;
}

int64_t pd_time_to_local_day(int64_t ms, int32_t utc_offset_min) {
    int64_t minutes = floor_div(ms, MS_PER_MIN) + utc_offset_min;
    return floor_div(minutes, MIN_PER_DAY);
}
