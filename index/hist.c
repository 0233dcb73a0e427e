/* hist.c -- log-linear histogram; layout explained in paidan/hist.h. */
#include "paidan/hist.h"

#include <string.h>

static inline unsigned bucket_of(uint64_t v) {
    if (v < PD_HIST_EXACT) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 7 = log2(PD_HIST_EXACT) */
    unsigned sub = (unsigned)(v >> (e - PD_HIST_SUB_BITS)) & ((1u << PD_HIST_SUB_BITS) - 1);
    return PD_HIST_EXACT + (e - 7) * (1u << PD_HIST_SUB_BITS) + sub;
}

/* Largest value that falls in bucket b. */
static inline uint64_t bucket_top(unsigned b) {
    if (b < PD_HIST_EXACT) return b;
    unsigned i = b - PD_HIST_EXACT;
    unsigned e = 7 + (i >> PD_HIST_SUB_BITS);
    uint64_t sub = i & ((1u << PD_HIST_SUB_BITS) - 1);
    uint64_t lo = (1ULL << e) | (sub << (e - PD_HIST_SUB_BITS));
    return lo + (1ULL << (e - PD_HIST_SUB_BITS)) - 1;
}

void pd_hist_init(pd_hist_t *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void pd_hist_record(pd_hist_t *h, uint64_t v) {
    h->bucket[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void pd_hist_merge(pd_hist_t *dst, const pd_hist_t *src) {
    for (unsigned b = 0; b < PD_HIST_BUCKETS; b++) dst->bucket[b] += src->bucket[b];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t pd_hist_percentile(const pd_hist_t *h, double p) {
    if (h->count == 0) return 0;
    if (p <= 0) return h->min;
    /* !(p < 100) also takes NaN: converting NaN to an integer below is
     * undefined, and what came out depended on the compiler and CPU. */
    if (!(p < 100)) return h->max;
    /* rank = ceil(p/100 * count), at least 1 */
    double r = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r) rank++;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < PD_HIST_BUCKETS; b++) {
        seen += h->bucket[b];
        if (seen >= rank) {
            uint64_t top = bucket_top(b);
            return top > h->max ? h->max : top;
        }
    }
    return h->max;
}

double pd_hist_mean(const pd_hist_t *h) {
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
