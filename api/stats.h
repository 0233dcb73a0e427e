/* stats.h -- latency histograms and counters, measured the way Redis does.
 *
 * Private to api/. Every method has a pd_method_stats_t: calls, errors,
 * total time and a log-linear histogram of per-call latency, from which
 * `stats` and /metrics report percentiles (p50, p99, p99.9) like Redis's
 * latency_percentiles_usec. Recording is a few integer operations and no
 * allocation, so it stays on for every request.
 *
 * Histogram layout: values are nanoseconds. Below 16 ns each value has its
 * own bucket; above, each power of two is split into 16 equal buckets, so a
 * reported percentile is at most 6.25 % above the true value (it reports the
 * bucket's upper bound). Values of 2^41 ns (37 minutes) and more are
 * clamped into the last bucket. Every power of two starts a bucket, so the
 * number of samples under 2^k ns is exact (pd_hist_count_under): /metrics
 * exports those counts as the buckets of a Prometheus histogram.
 */
#ifndef PAIDAN_API_STATS_H
#define PAIDAN_API_STATS_H

#include <stddef.h>
#include <stdint.h>

#define PD_HIST_SUB_BITS 4
#define PD_HIST_SUB (1u << PD_HIST_SUB_BITS)
#define PD_HIST_MAX_EXP 40
#define PD_HIST_BUCKETS ((PD_HIST_MAX_EXP - PD_HIST_SUB_BITS + 2) * PD_HIST_SUB)

/** A latency histogram. Zero-initialised is empty. */
typedef struct pd_hist_s {
    uint64_t count;                   /* samples recorded */
    uint64_t sum_ns;                  /* their total */
    uint64_t max_ns;                  /* the largest */
    uint64_t bucket[PD_HIST_BUCKETS]; /* samples per bucket */
} pd_hist_t;

/** Record one sample of `ns` nanoseconds. */
void pd_hist_add(pd_hist_t *h, uint64_t ns);

/**
 * The value at percentile `p` (0 < p <= 100): the upper bound of the bucket
 * holding the sample of that rank, never above the recorded maximum.
 * @return 0 for an empty histogram.
 */
uint64_t pd_hist_percentile(const pd_hist_t *h, double p);

/**
 * Cumulative counts at powers of two: out[i] = the number of samples under
 * 2^(exp_lo + i) ns, for exp_lo <= exp_lo + i <= exp_hi. Exact, since every
 * power of two starts a bucket. One pass over the buckets.
 * @param out at least exp_hi - exp_lo + 1 entries, the caller's.
 * @pre exp_lo <= exp_hi <= PD_HIST_MAX_EXP.
 */
void pd_hist_count_under(const pd_hist_t *h, unsigned exp_lo, unsigned exp_hi, uint64_t *out);

/** Per-method statistics. */
typedef struct pd_method_stats_s {
    uint64_t calls;  /* calls answered (errors included) */
    uint64_t errors; /* calls answered with an error */
    pd_hist_t lat;   /* handler latency, ns */
} pd_method_stats_t;

/** Resident set size of this process in bytes (from /proc/self/statm); 0 if unknown. */
size_t pd_stats_rss_bytes(void);

#endif /* PAIDAN_API_STATS_H */
