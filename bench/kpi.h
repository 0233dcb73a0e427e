/* kpi.h -- the figures a replay reports for a dispatch policy, computed
 * from plain numbers so they can be checked by hand. Private to bench/. */
#ifndef PAIDAN_BENCH_KPI_H
#define PAIDAN_BENCH_KPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paidan/engine.h"
#include "paidan/error.h"

/* The 15-minute service circle, in seconds of ETA. */
#define PD__KPI_CIRCLE_S 900.0

/* A growing array of doubles (samples for exact percentiles). */
typedef struct pd__samples_s {
    double *v;  /* values, owned */
    size_t n;   /* how many */
    size_t cap; /* room */
} pd__samples_t;

/* Append a value. @return PD_ERR_NOMEM (the array is unchanged). */
pd_err pd__samples_add(pd__samples_t *s, double x);
/* Free the values. */
void pd__samples_deinit(pd__samples_t *s);

/*
 * Nearest-rank percentile of n values (sorted in place, ascending): the
 * smallest value with at least p % of the values at or below it; p <= 0
 * gives the minimum, p >= 100 the maximum. 0 when n == 0.
 */
double pd__percentile(double *v, size_t n, double p);

/*
 * Gini coefficient of n non-negative values (sorted in place):
 *   G = sum_i sum_j |x_i - x_j| / (2 n^2 mean)
 *     = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n     (i = 1..n, ascending)
 * 0 = everyone equal, (n-1)/n = one holds everything. 0 when n == 0 or
 * every value is 0.
 */
double pd__gini(double *x, size_t n);

/* Counters and samples of one replay, fed as the engine's events arrive. */
typedef struct pd__kpi_s {
    uint64_t orders;                    /* orders submitted */
    uint64_t rejected;                  /* refused by order.create (bad record) */
    uint64_t filled;                    /* every slot accepted */
    uint64_t in_circle;                 /* filled, every volunteer's ETA <= 15 min */
    uint64_t completed;                 /* served */
    uint64_t rated;                     /* rated by the resident */
    uint64_t rating_sum;                /* sum of ratings */
    uint64_t expired[PD_REASON__COUNT]; /* expired orders by reason */
    uint64_t offers;                    /* offers made */
    uint64_t offers_accepted, offers_declined, offers_expired;
    uint64_t releases;   /* accepted slots given back (reason withdrew) */
    pd__samples_t tta_s; /* time to accept (filled orders), s */
    pd__samples_t eta_s; /* ETA of each filled order (its slowest
                            volunteer), s */
} pd__kpi_t;

/* Zero a KPI accumulator (caller memory). */
void pd__kpi_init(pd__kpi_t *k);
/* Free its samples. */
void pd__kpi_deinit(pd__kpi_t *k);

/* An order was filled: every slot accepted `tta_s` seconds after it was
 * created; `eta_s` is the largest ETA among its volunteers. */
pd_err pd__kpi_filled(pd__kpi_t *k, double tta_s, double eta_s);

/* The summary of a replay. */
typedef struct pd__kpi_summary_s {
    uint64_t orders; /* submitted */
    uint64_t filled;
    double fill_rate; /* filled / (orders - rejected) */
    double tta_p50_s, tta_p90_s;
    double eta_p50_s, eta_p90_s;
    double in_circle_share;  /* in_circle / filled */
    double gini_hours;       /* Gini of hours served over all volunteers */
    double served_share;     /* volunteers with >= 1 completed order / volunteers */
    double hours_total;      /* hours served in all */
    double rating_mean;      /* rating_sum / rated */
    double offers_per_order; /* offers / (orders - rejected) */
    uint64_t expired_total;
    uint64_t expired[PD_REASON__COUNT];
    uint64_t rejected;
    uint64_t completed;
    uint64_t releases; /* accepted slots given back by their volunteers */
} pd__kpi_summary_t;

/*
 * Summarise: percentiles of the samples (which are sorted in place), and
 * the fairness figures from the hours each volunteer served
 * (`hours[i]`, n_volunteers of them, sorted in place) and the number of
 * volunteers who completed at least one order (n_served).
 */
void pd__kpi_summarise(pd__kpi_t *k, double *hours, size_t n_volunteers, size_t n_served,
                       pd__kpi_summary_t *out);

#endif /* PAIDAN_BENCH_KPI_H */
