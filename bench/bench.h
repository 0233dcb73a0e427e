/* bench.h -- the pieces shared by paidan-bench's modes: the clock, memory
 * readings, named cases and the report (a table for people, JSON for
 * machines). Private to bench/. */
#ifndef PAIDAN_BENCH_BENCH_H
#define PAIDAN_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "paidan/hist.h"

/* Monotonic nanoseconds. */
uint64_t pd__bench_now_ns(void);
/* Resident set size of this process in bytes (0 if unknown). */
uint64_t pd__bench_rss_bytes(void);
/* What one clock read costs, in ns (median of many). */
double pd__bench_timer_overhead_ns(void);

/* One measured result: a histogram of per-operation latencies. */
typedef struct pd__result_s {
    char name[32];
    pd_hist_t *hist;    /* ns per operation */
    uint64_t busy_ns;   /* sum of the measured operation times */
    uint64_t wall_ns;   /* wall time of the measured loop */
    double ops_per_run; /* operations per recorded sample (1 unless batched) */
    char note[96];      /* what the case did, one line */
    uint64_t errors;    /* operations that failed (load: error replies, lost requests) */
    bool ops_given;     /* ops/s = ops / busy_ns instead of count x ops_per_run / busy_ns */
    uint64_t ops;       /* load: replies received during the measured phase */
} pd__result_t;

/* A report: parameters (key, JSON value) and results, printed at the end. */
typedef struct pd__report_s {
    const char *mode;
    char params[2048]; /* JSON members, "k":v,... */
    char extra[65536]; /* more top-level JSON members, without braces */
    pd__result_t results[32];
    size_t n_results;
    bool json;
    bool wide;         /* table: also the p99.99 and errors columns */
    char machine[640]; /* where and when it ran, JSON members (pd__report_init) */
} pd__report_t;

void pd__report_init(pd__report_t *r, const char *mode, bool json);
/* Append printf-style text to the NUL-terminated buf of cap bytes; what
 * does not fit is cut. */
void pd__appendf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A number param: whole values (|v| < 1e17) exactly, others in the
 * fewest digits that read back as v. A u64 through a double loses digits
 * above 2^53: use pd__report_param_u64 for seeds and counts. */
void pd__report_param_num(pd__report_t *r, const char *key, double v);
/* An unsigned integer param, every digit. */
void pd__report_param_u64(pd__report_t *r, const char *key, uint64_t v);
void pd__report_param_str(pd__report_t *r, const char *key, const char *v);
/* Append a top-level JSON member "key": raw (raw must be valid JSON).
 * Printed with --json only: a mode prints the same figures as plain lines
 * under its table. */
void pd__report_extra(pd__report_t *r, const char *key, const char *raw);
/* A new result slot (its histogram initialised); NULL when full. */
pd__result_t *pd__report_add(pd__report_t *r, const char *name, const char *note);
void pd__report_print(const pd__report_t *r, FILE *out);
void pd__report_deinit(pd__report_t *r);

/* True if name passes a --filter list ("nearest,move"); NULL passes all.
 * Lists are checked when parsed (pd__opt_list in opt.h). */
bool pd__bench_selected(const char *filter, const char *name);

/* True if the stream is a terminal (progress lines go there only). */
bool pd__bench_isatty(FILE *f);

/* A small seeded generator (xorshift64*), for choices that must repeat. */
typedef struct pd__bench_rng_s {
    uint64_t s; /* state, never 0 */
} pd__bench_rng_t;

/* Seed a generator; any seed (0 included) gives a valid state. */
void pd__bench_rng_seed(pd__bench_rng_t *r, uint64_t seed);
/* The next 64 random bits. */
uint64_t pd__bench_rng_next(pd__bench_rng_t *r);
/* Uniform in [0, 1). */
double pd__bench_rng_unit(pd__bench_rng_t *r);
/* Mix two words into one well-spread word (splitmix64 finaliser). */
uint64_t pd__bench_mix64(uint64_t a, uint64_t b);

int pd__bench_micro(int argc, char **argv);
int pd__bench_load(int argc, char **argv);
int pd__bench_replay(int argc, char **argv);
int pd__bench_compare(int argc, char **argv);
int pd__bench_journal(int argc, char **argv);

#endif /* PAIDAN_BENCH_BENCH_H */
