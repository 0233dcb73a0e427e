/* hist.h -- a log-linear latency histogram (HdrHistogram-like), shared by
 * paidan-bench and the server's per-method statistics.
 *
 * Values are unsigned 64-bit (nanoseconds by convention). Values below 128
 * are counted exactly; above, each power of two is cut into 128 sub-buckets,
 * so a reported percentile is within 1/128 (0.8 %) of the true value.
 * Fixed size (about 58 KiB), no allocation after init: recording is a few
 * instructions. The caller owns the struct; nothing to free.
 */
#ifndef PAIDAN_HIST_H
#define PAIDAN_HIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_HIST_SUB_BITS 7
#define PD_HIST_EXACT 128
#define PD_HIST_BUCKETS (PD_HIST_EXACT + (64 - 7) * (1 << PD_HIST_SUB_BITS))

typedef struct pd_hist_s {
    uint64_t count;                   /* values recorded */
    uint64_t sum;                     /* their sum (wraps after 2^64) */
    uint64_t min;                     /* smallest, UINT64_MAX when empty */
    uint64_t max;                     /* largest, 0 when empty */
    uint64_t bucket[PD_HIST_BUCKETS]; /* counts per bucket */
} pd_hist_t;

/** Empty the histogram (caller memory). */
void pd_hist_init(pd_hist_t *h);

/** Record one value. */
void pd_hist_record(pd_hist_t *h, uint64_t v);

/** Add every count of src into dst. */
void pd_hist_merge(pd_hist_t *dst, const pd_hist_t *src);

/**
 * The value at percentile p (0..100): the upper edge of the bucket holding
 * that rank, capped at the maximum seen. 0 when empty. p <= 0 gives the
 * minimum seen, p >= 100 (and NaN) the maximum.
 */
uint64_t pd_hist_percentile(const pd_hist_t *h, double p);

/** Mean of the recorded values; 0 when empty. */
double pd_hist_mean(const pd_hist_t *h);

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_HIST_H */
