/* replica.h -- the replica a `paidan-bench load --replica` run watches:
 * how far a read-only replica (paidan-server --follow) trails the primary
 * the load writes to, how long it takes to catch up once the load ends,
 * and whether it then holds the same state (the two digests). Private to
 * bench/; docs/bench.md, "load output", describes the figures.
 *
 * Use: pd__replica_create() (connects to both, checks their roles), then
 * pd__replica_start() just before the load, pd__replica_stop() right after
 * it, pd__replica_settle() to wait for the replica and compare digests,
 * pd__replica_report() for the figures, pd__replica_destroy(). */
#ifndef PAIDAN_BENCH_REPLICA_H
#define PAIDAN_BENCH_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench.h"
#include "paidan/error.h"

/* How often the watcher reads both servers' sequence numbers. */
#define PD__REPLICA_EVERY_MS 50

typedef struct pd__replica_s pd__replica_t;

/* p50, p99 and max of one figure over the samples. */
typedef struct pd__replica_pct_s {
    double p50, p99, max;
} pd__replica_pct_t;

/* What a watched run found. */
typedef struct pd__replica_out_s {
    size_t samples;                /* samples in the measured phase */
    pd__replica_pct_t lag_records; /* primary committed_seq - replica applied_seq */
    pd__replica_pct_t lag_ms;      /* how long ago the primary committed the oldest
                                      record the replica had not applied (0 when it
                                      had them all) */
    pd__replica_pct_t unpublished; /* primary committed_seq - stream_seq: the part of
                                      the lag not yet in the stream */
    bool caught_up;                /* the replica reached the primary's seq in time */
    double catch_up_ms;            /* from the load's last reply to that moment */
    double apply_per_s;            /* records the replica applied per second, from the
                                      start of the load to when it caught up */
    double commit_per_s;           /* records the primary committed per second, from
                                      the start to the end of the load */
    uint64_t records;              /* records the primary committed during the load */
    uint64_t seq;                  /* the seq the digests were compared at (0: not) */
    int digest_match;              /* 1 equal, 0 different, -1 not compared */
    char why[1024];                /* why the watch failed ("" when it did not) */
} pd__replica_out_t;

/*
 * Connect to the primary and to the replica, and check that one says
 * role "primary" and the other "replica" in `stats`.
 * @param token sent with `auth` to both; NULL = none.
 * @return PD_OK; PD_ERR_IO (cannot connect), PD_ERR_BAD_ARG (a role is not
 *   what it should be) with why saying which; PD_ERR_NOMEM.
 * Caller frees with pd__replica_destroy() (also on error: *out may be set).
 */
pd_err pd__replica_create(const char *primary_host, uint16_t primary_port, const char *replica_host,
                          uint16_t replica_port, const char *token, pd__replica_t **out, char *why,
                          size_t cap);

/* Start sampling (a thread of its own with its own connections). */
pd_err pd__replica_start(pd__replica_t *r);

/* The load has ended: stop sampling. Times are on the monotonic clock
 * (pd__bench_now_ns): the measured phase ran from t_measure_ns to
 * t_measure_end_ns (only samples inside it count), and the load's last
 * reply came at t_end_ns (catch_up_ms counts from it). */
void pd__replica_stop(pd__replica_t *r, uint64_t t_measure_ns, uint64_t t_measure_end_ns,
                      uint64_t t_end_ns);

/*
 * Wait (at most timeout_ms) until the replica has applied every record
 * the primary committed, then read both digests at the same seq and
 * compute the figures into out.
 * @return PD_OK when the digests were compared (out->digest_match says
 *   how); PD_ERR_IO when the replica did not catch up in time, stopped
 *   applying, or a server stopped answering, with out->why saying which
 *   (the figures sampled during the load are still in out).
 */
pd_err pd__replica_settle(pd__replica_t *r, int timeout_ms, pd__replica_out_t *out);

/* The figures as a JSON object into buf. */
void pd__replica_json(const pd__replica_t *r, const pd__replica_out_t *out, char *buf, size_t cap);

/* The figures as plain lines on f. */
void pd__replica_print(const pd__replica_t *r, const pd__replica_out_t *out, FILE *f);

/* Stop the thread if it runs, close both connections, free. NULL is fine. */
void pd__replica_destroy(pd__replica_t *r);

#endif /* PAIDAN_BENCH_REPLICA_H */
