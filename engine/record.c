/* record.c -- volunteers' service records: minutes, the 7-day ring of day
 * buckets, stars and points.
 *
 * The ring is exact at day granularity: "the last 7 days" at a time t are
 * the local calendar day of t and the six before it. A completion is
 * credited on the local day of its `now`. Buckets saturate at 65535 minutes
 * (45 days' worth, far more than a day holds), so no input can wrap them.
 */
#include "record.h"

#include <string.h>

static inline uint32_t day_idx(int64_t day) {
    int64_t m = day % PD__DAYS;
    return (uint32_t)(m < 0 ? m + PD__DAYS : m);
}

static bool ring_empty(const pd__vrec_t *r) {
    for (unsigned i = 0; i < PD__DAYS; i++) {
        if (r->day_min[i]) return false;
    }
    return true;
}

void pd__vrec_add_minutes(pd__vrec_t *r, int64_t day, uint32_t minutes) {
    int64_t last = r->last_day;
    if (day > last || ring_empty(r)) {
        /* An empty ring holds no day, so any day may start it: a fresh
         * record (last_day 0) credited before 1970-01-01 too. */
        if (day - last >= PD__DAYS || day < last) {
            memset(r->day_min, 0, sizeof r->day_min);
        } else {
            for (int64_t d = last + 1; d <= day; d++) r->day_min[day_idx(d)] = 0;
        }
        r->last_day = (int32_t)day;
    } else if (day <= last - PD__DAYS) {
        return; /* older than the ring keeps; only the total counts it */
    }
    uint32_t i = day_idx(day);
    uint32_t v = r->day_min[i] + minutes;
    r->day_min[i] = (uint16_t)(v > UINT16_MAX ? UINT16_MAX : v);
}

uint16_t pd__vrec_mark(const pd__vrec_t *r) {
    if (ring_empty(r)) return 0;
    if (r->last_day < 0 || r->last_day >= PD__MARK_UNKNOWN - 1) return PD__MARK_UNKNOWN;
    return (uint16_t)(r->last_day + 1);
}

uint32_t pd__vrec_minutes_7d(const pd__vrec_t *r, int64_t day) {
    int64_t last = r->last_day;
    int64_t lo = day - (PD__DAYS - 1), hi = day;
    if (lo < last - (PD__DAYS - 1)) lo = last - (PD__DAYS - 1);
    if (hi > last) hi = last;
    uint32_t sum = 0;
    for (int64_t d = lo; d <= hi; d++) sum += r->day_min[day_idx(d)];
    return sum;
}

uint32_t pd__stars(const pd_engine_config_t *cfg, uint32_t minutes_total) {
    uint32_t s = 0;
    for (uint32_t i = 0; i < PD_STAR_LEVELS; i++) {
        if ((uint64_t)minutes_total >= (uint64_t)cfg->star_hours[i] * 60u) s = i + 1;
    }
    return s;
}

void pd__vrec_to_public(const pd__vrec_t *r, const pd_engine_config_t *cfg, int64_t day,
                        pd_volunteer_record_t *out) {
    memset(out, 0, sizeof *out);
    out->minutes_total = r->minutes_total;
    out->minutes_7d = pd__vrec_minutes_7d(r, day);
    out->points = cfg->points_per_hour * (double)r->minutes_total / 60.0 +
                  cfg->points_per_rating_star * (double)r->rating_sum;
    out->stars = pd__stars(cfg, r->minutes_total);
    out->rating_count = r->rating_count;
    out->rating_sum = r->rating_sum;
    out->rating_mean = r->rating_count ? (double)r->rating_sum / r->rating_count : 0.0;
    out->orders_completed = r->orders_completed;
    out->offers_received = r->offers_received;
    out->offers_accepted = r->offers_accepted;
    out->offers_declined = r->offers_declined;
    out->offers_expired = r->offers_expired;
    out->offers_withdrawn = r->offers_withdrawn;
    out->releases = r->releases;
    out->notified_count = r->notified_count;
    out->last_notified_ms = r->last_notified_ms;
    out->last_served_ms = r->last_served_ms;
}
