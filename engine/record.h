/* record.h -- private to engine/: a volunteer's service record.
 *
 * One record per index slot, in a plain array beside the index. The 7-day
 * sum is kept exactly per local day in a ring of seven day buckets: bucket
 * d % 7 holds the minutes served on local day d, for the seven days ending
 * at `last_day` (the newest day anything was recorded). Older days fall out
 * as newer ones are written. Points and stars are not stored: they are
 * functions of the totals and the configuration.
 */
#ifndef PAIDAN_ENGINE_RECORD_H
#define PAIDAN_ENGINE_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "paidan/engine.h"

#define PD__DAYS 7

typedef struct pd__vrec_s {
    uint32_t minutes_total;
    uint32_t rating_count;
    uint32_t rating_sum;
    uint32_t orders_completed;
    uint32_t offers_received;
    uint32_t offers_accepted;
    uint32_t offers_declined;
    uint32_t offers_expired;
    uint32_t offers_withdrawn;
    uint32_t notified_count;
    int64_t last_notified_ms;
    int64_t last_served_ms;
    int32_t last_day;           /* newest local day with a bucket */
    uint16_t day_min[PD__DAYS]; /* minutes on day d at [d % 7], saturating */
    uint8_t status;             /* mirror of the index: pd_status */
    uint8_t capacity;           /* mirror of the index */
    uint8_t load;               /* mirror of the index: live offers + held */
    uint8_t held;               /* accepted slots held */
    uint16_t releases;          /* accepted, then withdrew; saturating (it fits
                                   the record's padding: 80 bytes stay 80) */
} pd__vrec_t;

/* Credit `minutes` served on local day `day`. */
void pd__vrec_add_minutes(pd__vrec_t *r, int64_t day, uint32_t minutes);

/* Minutes served on local days day-6 .. day. */
uint32_t pd__vrec_minutes_7d(const pd__vrec_t *r, int64_t day);

/* What the engine keeps of a record in the index, as the volunteer's mark
 * (pd_index_set_mark), so that scoring a candidate for the balanced policy
 * does not read the record: 0 when its day ring holds no minutes, else
 * last_day + 1, or PD__MARK_UNKNOWN when that does not fit 16 bits. */
#define PD__MARK_UNKNOWN UINT16_MAX
uint16_t pd__vrec_mark(const pd__vrec_t *r);

/* True when a record with this mark served nothing on local days day-6 ..
 * day, so pd__vrec_minutes_7d() is 0 without reading it; false when it
 * cannot tell. */
static inline bool pd__mark_idle_7d(uint16_t mark, int64_t day) {
    if (mark == 0) return true;
    if (mark == PD__MARK_UNKNOWN) return false;
    return day - ((int64_t)mark - 1) >= PD__DAYS;
}

/* Star level 0..5 for a total of minutes. */
uint32_t pd__stars(const pd_engine_config_t *cfg, uint32_t minutes_total);

/* Public view of a record at local day `day`. */
void pd__vrec_to_public(const pd__vrec_t *r, const pd_engine_config_t *cfg, int64_t day,
                        pd_volunteer_record_t *out);

#endif /* PAIDAN_ENGINE_RECORD_H */
