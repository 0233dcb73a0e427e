/* test_replay.c -- paidan-bench replay is deterministic: the same history
 * and seed give the same figures and the same engine state, under every
 * policy; another seed gives another story. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

static void generated(pd__replay_opts_t *o, uint64_t seed) {
    pd__replay_opts_init(o);
    o->gen_volunteers = 3000;
    o->gen_orders = 800;
    o->gen_days = 3;
    o->seed = seed;
    o->policies[0] = PD_POLICY_NEAREST;
    o->policies[1] = PD_POLICY_BALANCED;
    o->policies[2] = PD_POLICY_RATED;
    o->n_policies = 3;
}

static void run(const pd__replay_opts_t *o, pd__replay_result_t *rs) {
    char why[256] = "";
    pd_err err = pd__replay_run(o, rs, why, sizeof why);
    cr_assert_eq(err, PD_OK, "replay failed: %s (%s)", pd_strerror(err), why);
}

static void same(const pd__kpi_summary_t *a, const pd__kpi_summary_t *b) {
    cr_assert_eq(a->orders, b->orders);
    cr_assert_eq(a->filled, b->filled);
    cr_assert_eq(a->completed, b->completed);
    cr_assert_eq(a->rejected, b->rejected);
    cr_assert_eq(a->expired_total, b->expired_total);
    for (int r = 0; r < PD_REASON__COUNT; r++) cr_assert_eq(a->expired[r], b->expired[r]);
    /* Exact equality on purpose: the figures come from the same events. */
    cr_assert(a->fill_rate == b->fill_rate);
    cr_assert(a->tta_p50_s == b->tta_p50_s && a->tta_p90_s == b->tta_p90_s);
    cr_assert(a->eta_p50_s == b->eta_p50_s && a->eta_p90_s == b->eta_p90_s);
    cr_assert(a->in_circle_share == b->in_circle_share);
    cr_assert(a->gini_hours == b->gini_hours);
    cr_assert(a->served_share == b->served_share);
    cr_assert(a->hours_total == b->hours_total);
    cr_assert(a->rating_mean == b->rating_mean);
    cr_assert(a->offers_per_order == b->offers_per_order);
}

Test(replay, same_seed_same_report) {
    pd__replay_opts_t o;
    generated(&o, 7);
    pd__replay_result_t a[3], b[3];
    run(&o, a);
    run(&o, b);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(a[i].policy, o.policies[i]);
        same(&a[i].kpi, &b[i].kpi);
        cr_assert_eq(a[i].digest, b[i].digest, "policy %d: digest %llx vs %llx", i,
                     (unsigned long long)a[i].digest, (unsigned long long)b[i].digest);
        cr_assert_eq(a[i].kpi.orders, 800);
        cr_assert_gt(a[i].kpi.filled, 0);
        cr_assert_eq(a[i].volunteers, 3000);
        cr_assert_eq(a[i].n_tta, a[i].kpi.filled);
        cr_assert_eq(a[i].dispatch_ns->count, 800);
        /* Every order ends somewhere: filled, expired or refused. */
        cr_assert_eq(a[i].kpi.filled + a[i].kpi.expired_total + a[i].kpi.rejected, 800,
                     "policy %d: %llu filled + %llu expired + %llu rejected", i,
                     (unsigned long long)a[i].kpi.filled,
                     (unsigned long long)a[i].kpi.expired_total,
                     (unsigned long long)a[i].kpi.rejected);
        cr_assert_leq(a[i].kpi.completed, a[i].kpi.filled);
        cr_assert(a[i].kpi.gini_hours >= 0 && a[i].kpi.gini_hours < 1);
    }
    for (int i = 0; i < 3; i++) {
        pd__replay_result_deinit(&a[i]);
        pd__replay_result_deinit(&b[i]);
    }
}

Test(replay, another_seed_another_history) {
    pd__replay_opts_t o;
    generated(&o, 7);
    o.n_policies = 1;
    pd__replay_result_t a, b;
    run(&o, &a);
    o.seed = 8;
    run(&o, &b);
    cr_assert_neq(a.digest, b.digest);
    pd__replay_result_deinit(&a);
    pd__replay_result_deinit(&b);
}

Test(replay, sample_county_csv) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert_not_null(src, "PD_SOURCE_DIR is not set");
    char vol[4096], ord[4096];
    snprintf(vol, sizeof vol, "%s/data/sample/county-volunteers.csv", src);
    snprintf(ord, sizeof ord, "%s/data/sample/county-orders.csv", src);
    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.volunteers_csv = vol;
    o.orders_csv = ord;
    o.grab = true;
    pd__replay_result_t a, b;
    run(&o, &a);
    run(&o, &b);
    cr_assert_eq(a.kpi.orders, 2000);
    cr_assert_eq(a.volunteers, 5000);
    cr_assert_gt(a.kpi.filled, 0);
    cr_assert_eq(a.digest, b.digest);
    same(&a.kpi, &b.kpi);
    pd__replay_result_deinit(&a);
    pd__replay_result_deinit(&b);
}

Test(replay, bad_input_is_named) {
    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.volunteers_csv = "/nonexistent/volunteers.csv";
    o.orders_csv = "/nonexistent/orders.csv";
    pd__replay_result_t r;
    char why[256] = "";
    cr_assert_neq(pd__replay_run(&o, &r, why, sizeof why), PD_OK);
    cr_assert(strstr(why, "volunteers.csv") != NULL, "reason: %s", why);
    pd__replay_result_deinit(&r);
}
