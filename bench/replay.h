/* replay.h -- the engine of paidan-bench replay: historical (or
 * generated) orders through the dispatch engine in virtual time, under
 * one or several policies, with a seeded model of how volunteers answer.
 * Separate from its command line so tests can run it. Private to bench/. */
#ifndef PAIDAN_BENCH_REPLAY_H
#define PAIDAN_BENCH_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kpi.h"
#include "paidan/data.h"
#include "paidan/engine.h"
#include "paidan/hist.h"

/* How volunteers answer offers, and residents rate, when the history does
 * not say. All draws for an (order, volunteer) pair come from a generator
 * seeded by (seed, order, volunteer), so the same volunteer asked for the
 * same order answers the same way under every policy. */
typedef struct pd__replay_model_s {
    double accept_base;           /* P(accept) before the terms below, default 0.85 */
    double accept_per_km;         /* minus this per km of straight-line distance, 0.04 */
    double accept_per_hour;       /* minus this per hour served in the last 7 days, 0.02 */
    double accept_min;            /* P(accept) never below this, 0.05 */
    double no_answer;             /* P(the offer is left to expire), 0.10 */
    double response_median_s;     /* answer delay: log-normal, median 45 s ... */
    double response_sigma;        /* ... and sigma 0.8 (of the log) */
    double rate_share;            /* P(the resident rates), 0.85 */
    double rating_delay_median_s; /* rating delay: log-normal, median 3600 s, sigma 1 */
    double rating_p[5];           /* P(rating = 1..5): .02 .03 .08 .25 .62 */
    double rating_quality;        /* share of a rating that is the volunteers'
                                     own quality, 0..1, default 0.5 */
    double withdraw;              /* P(a volunteer who accepted withdraws before
                                     the service starts: order.release), 0 */
} pd__replay_model_t;

/* The defaults listed above. */
void pd__replay_model_init(pd__replay_model_t *m);

/* Where the history comes from. */
typedef struct pd__replay_opts_s {
    const char *volunteers_csv; /* volunteers CSV (data/ format) ... */
    const char *orders_csv;     /* ... and orders CSV; both NULL = generate */
    const char *journal_dir;    /* or a paidan-server data directory (bench/jsource.c) */
    uint64_t gen_volunteers;    /* generated county: volunteers, orders, days */
    uint64_t gen_orders;
    uint32_t gen_days;
    uint64_t seed;                        /* generator and response model seed */
    const char *config_path;              /* engine INI; NULL = defaults */
    pd_policy policies[PD_POLICY__COUNT]; /* to compare, in this order */
    size_t n_policies;
    bool grab; /* grab mode (offer to grab_width at once) */
    pd__replay_model_t model;
    bool progress; /* progress bar on stderr (a terminal only) */
} pd__replay_opts_t;

/* Set the defaults: sample county CSVs unset (generated 5000 x 2000 over
 * 7 days, seed 1), policy balanced, sequential offers, default model. */
void pd__replay_opts_init(pd__replay_opts_t *o);

/* One policy's replay. */
typedef struct pd__replay_result_s {
    pd_policy policy;
    pd__kpi_summary_t kpi;             /* the figures (deterministic for a seed) */
    uint64_t digest;                   /* pd_engine_digest() at the end (deterministic) */
    size_t volunteers;                 /* in the engine when the orders began */
    size_t volunteers_end;             /* in the engine at the end (the Gini's V) */
    uint64_t rated;                    /* orders rated (mean rating undefined when 0) */
    uint64_t input_skipped;            /* journal source: records that did not parse */
    uint64_t volunteer_events;         /* journal source: upserts, updates, removals replayed */
    uint64_t volunteer_events_refused; /* of those, what the replay's engine refused */
    uint64_t duplicates;               /* orders skipped: their id came earlier in the input */
    uint64_t dup_ids[4];               /* the first few of those ids, in input order */
    size_t n_dup_ids;                  /* how many of dup_ids are set */
    int32_t utc_offset_min;            /* the engine's local time offset (schedules) */
    int64_t first_ms, last_ms; /* virtual time replayed (created of the first and last order) */
    double wall_s;             /* wall time of the replay loop */
    double orders_per_s;       /* orders replayed per wall second */
    pd_hist_t *dispatch_ns;    /* wall ns of each order.create + dispatch, owned */
    double *tta_s;             /* sorted times to accept, owned (for charts) */
    size_t n_tta;
} pd__replay_result_t;

/*
 * Replay under each policy of o (fresh engine each time, same history).
 * @param out room for o->n_policies results; free each with
 *   pd__replay_result_deinit() (also after an error).
 * @return PD_OK; PD_ERR_IO / PD_ERR_CORRUPT / ... for unreadable input
 * (why names the file, line and field); PD_ERR_BAD_ARG for a bad config;
 * PD_ERR_NOMEM.
 */
pd_err pd__replay_run(const pd__replay_opts_t *o, pd__replay_result_t *out, char *why, size_t cap);

/* Free what a result owns. */
void pd__replay_result_deinit(pd__replay_result_t *r);

#endif /* PAIDAN_BENCH_REPLAY_H */
