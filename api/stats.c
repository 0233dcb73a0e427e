/* stats.c -- log-linear latency histograms (see stats.h). */
#include "stats.h"

#include <stdio.h>
#include <unistd.h>

static unsigned bucket_of(uint64_t v) {
    if (v < PD_HIST_SUB) return (unsigned)v;
    if (v >= ((uint64_t)1 << (PD_HIST_MAX_EXP + 1))) v = ((uint64_t)1 << (PD_HIST_MAX_EXP + 1)) - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - PD_HIST_SUB_BITS)) & (PD_HIST_SUB - 1);
    return (e - PD_HIST_SUB_BITS + 1) * PD_HIST_SUB + sub;
}

/* Largest value that falls in bucket i. */
static uint64_t bucket_top(unsigned i) {
    if (i < PD_HIST_SUB) return i;
    unsigned e = i / PD_HIST_SUB + PD_HIST_SUB_BITS - 1;
    uint64_t sub = i % PD_HIST_SUB;
    uint64_t lo = (PD_HIST_SUB + sub) << (e - PD_HIST_SUB_BITS);
    return lo + ((uint64_t)1 << (e - PD_HIST_SUB_BITS)) - 1;
}

void pd_hist_add(pd_hist_t *h, uint64_t ns) {
    h->count++;
    h->sum_ns += ns;
    if (ns > h->max_ns) h->max_ns = ns;
    h->bucket[bucket_of(ns)]++;
}

uint64_t pd_hist_percentile(const pd_hist_t *h, double p) {
    if (h->count == 0) return 0;
    /* The nearest rank, ceil(p/100 * count). The product is inexact in
     * binary (99.9 / 100 * 1000 is 999.0000000000001), and a plain ceil
     * would then take the next sample up -- at p99.9 of 1000 calls, the
     * slowest one instead of the 999th. A margin far below one rank
     * keeps the rounding error from counting as a fraction. */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want - want * 1e-12) rank++;
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < PD_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max_ns ? top : h->max_ns;
        }
    }
    return h->max_ns;
}

void pd_hist_count_under(const pd_hist_t *h, unsigned exp_lo, unsigned exp_hi, uint64_t *out) {
    uint64_t n = 0;
    unsigned i = 0;
    for (unsigned e = exp_lo; e <= exp_hi; e++) {
        /* 2^e is the first value of its bucket, so the buckets before it
         * hold exactly the samples under it. */
        unsigned end = bucket_of((uint64_t)1 << e);
        for (; i < end; i++) n += h->bucket[i];
        out[e - exp_lo] = n;
    }
}

size_t pd_stats_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2) return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (size_t)resident * (size_t)(page > 0 ? page : 4096);
}
