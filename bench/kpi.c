/* kpi.c -- replay figures: exact percentiles, the Gini coefficient and
 * the per-policy summary. Everything here is arithmetic on numbers handed
 * in, with no engine and no clock, so tests can check it against sums
 * done by hand. Percentiles are exact (nearest rank over every sample),
 * not histogram buckets: a replay is deterministic, and its figures
 * should be too, to the last digit.
 */
#include "kpi.h"

#include <stdlib.h>
#include <string.h>

pd_err pd__samples_add(pd__samples_t *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v) return PD_ERR_NOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return PD_OK;
}

void pd__samples_deinit(pd__samples_t *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double pd__percentile(double *v, size_t n, double p) {
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_double);
    if (p <= 0) return v[0];
    if (p >= 100) return v[n - 1];
    double r = p / 100.0 * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r) rank++;
    if (rank == 0) rank = 1;
    return v[rank - 1];
}

double pd__gini(double *x, size_t n) {
    if (n == 0) return 0;
    qsort(x, n, sizeof *x, cmp_double);
    double sum = 0, weighted = 0;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        weighted += (double)(i + 1) * x[i];
    }
    if (!(sum > 0)) return 0;
    double nn = (double)n;
    return 2.0 * weighted / (nn * sum) - (nn + 1.0) / nn;
}

void pd__kpi_init(pd__kpi_t *k) {
    memset(k, 0, sizeof *k);
}

void pd__kpi_deinit(pd__kpi_t *k) {
    pd__samples_deinit(&k->tta_s);
    pd__samples_deinit(&k->eta_s);
}

pd_err pd__kpi_filled(pd__kpi_t *k, double tta_s, double eta_s) {
    pd_err err = pd__samples_add(&k->tta_s, tta_s);
    if (err) return err;
    err = pd__samples_add(&k->eta_s, eta_s);
    if (err) {
        k->tta_s.n--;
        return err;
    }
    k->filled++;
    if (eta_s <= PD__KPI_CIRCLE_S) k->in_circle++;
    return PD_OK;
}

void pd__kpi_summarise(pd__kpi_t *k, double *hours, size_t n_volunteers, size_t n_served,
                       pd__kpi_summary_t *out) {
    memset(out, 0, sizeof *out);
    out->orders = k->orders;
    out->filled = k->filled;
    out->rejected = k->rejected;
    out->completed = k->completed;
    out->releases = k->releases;
    uint64_t accepted_orders = k->orders - k->rejected;
    out->fill_rate = accepted_orders ? (double)k->filled / (double)accepted_orders : 0;
    out->offers_per_order = accepted_orders ? (double)k->offers / (double)accepted_orders : 0;
    out->tta_p50_s = pd__percentile(k->tta_s.v, k->tta_s.n, 50);
    out->tta_p90_s = pd__percentile(k->tta_s.v, k->tta_s.n, 90);
    out->eta_p50_s = pd__percentile(k->eta_s.v, k->eta_s.n, 50);
    out->eta_p90_s = pd__percentile(k->eta_s.v, k->eta_s.n, 90);
    out->in_circle_share = k->filled ? (double)k->in_circle / (double)k->filled : 0;
    out->rating_mean = k->rated ? (double)k->rating_sum / (double)k->rated : 0;
    for (int r = 0; r < PD_REASON__COUNT; r++) {
        out->expired[r] = k->expired[r];
        out->expired_total += k->expired[r];
    }
    double total = 0;
    for (size_t i = 0; i < n_volunteers; i++) total += hours[i];
    out->hours_total = total;
    out->served_share = n_volunteers ? (double)n_served / (double)n_volunteers : 0;
    out->gini_hours = pd__gini(hours, n_volunteers);
}
