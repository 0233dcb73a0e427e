/* load.h -- the engine of paidan-bench load: a libuv TCP load generator
 * for paidan-server, separate from its command line so tests can drive it
 * against a fake server. Private to bench/. */
#ifndef PAIDAN_BENCH_LOAD_H
#define PAIDAN_BENCH_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "county.h"
#include "mix.h"
#include "paidan/error.h"
#include "paidan/hist.h"

/* What a run measures: one histogram per request kind, the order life
 * cycle end to end, and everything together. */
typedef enum pd__metric {
    PD__M_PING = 0,
    PD__M_NEARBY,
    PD__M_UPDATE,
    PD__M_GET,
    PD__M_CREATE,   /* order.create (with dispatch) */
    PD__M_ACCEPT,   /* order.accept by the volunteer offered */
    PD__M_COMPLETE, /* order.complete */
    PD__M_RATE,     /* order.rate */
    PD__M_ORDER,    /* the whole life cycle: create sent (intended) to rate answered */
    PD__M_ALL,      /* every request */
    PD__M__COUNT
} pd__metric;

/* Result row names: "ping", "nearby", "update", "get", "order.create",
 * "order.accept", "order.complete", "order.rate", "order", "all". */
const char *pd__metric_name(pd__metric m);

/* Error slots: server codes 0..PD_ERR__END-1, then these two. */
#define PD__LOAD_LOST PD_ERR__END        /* no reply: connection lost or drain timed out */
#define PD__LOAD_OTHER (PD_ERR__END + 1) /* a reply whose error was not [code, message] */
#define PD__LOAD_CODES (PD_ERR__END + 2)

/* Name of an error slot ("NOT_FOUND", ..., "LOST", "OTHER"). */
const char *pd__load_code_name(unsigned code);

/* How to run. Set every field (pd__load_opts_init gives the defaults). */
typedef struct pd__load_opts_s {
    const char *host;     /* server address, default 127.0.0.1 */
    uint16_t port;        /* default 7411 */
    const char *token;    /* sent with `auth` on every connection; NULL = none */
    uint32_t connections; /* TCP connections, default 8 */
    uint32_t pipeline;    /* requests in flight per connection, default 16 */
    uint32_t threads;     /* event loops (threads), default 1 */
    double duration_s;    /* measured time, default 10 */
    double warmup_s;      /* unmeasured time before it, default 1 */
    double drain_s;       /* how long to wait for replies after the end, default 2 */
    uint64_t requests;    /* > 0: stop after this many measured requests instead */
    double rate;          /* open loop: requests/s over all connections; 0 = closed loop */
    double spin_us;       /* open loop: busy-wait this long before each send instead of
                             sleeping through it (precise pacing, costs CPU); default 0 */
    bool busy_poll;       /* never sleep while running: poll for replies without a
                             wake-up (lowest latency, a core per thread) */
    pd__mix_t mix;        /* command mix */
    uint32_t k;           /* match.nearby k, default 10 */
    const char *policy;   /* match.nearby policy name; NULL = the server's */
    uint64_t seed;        /* draws of commands and payloads, default 1 */
    bool progress;        /* a live line on stderr */
} pd__load_opts_t;

/* The defaults listed on the fields (mix: ping only). */
void pd__load_opts_init(pd__load_opts_t *o);

/* Request payloads prepared before a run (params maps packed once). */
typedef struct pd__load_pool_s pd__load_pool_t;

/*
 * Pack payloads for every command of the mix from a county: nearby
 * queries at populated places with the order stream's skills and time
 * windows, location pings of ~100 m, record reads, orders.
 * @param c county; NULL is fine when the mix is ping only.
 * Caller frees with pd__load_pool_destroy().
 */
pd_err pd__load_pool_create(pd__county_t *c, const pd__names_t *names, const pd__load_opts_t *o,
                            pd__load_pool_t **out);

/* Free a pool; NULL is fine. */
void pd__load_pool_destroy(pd__load_pool_t *p);

/* One second of the measured phase. */
typedef struct pd__load_sec_s {
    uint64_t count;  /* replies to measured requests received in that second */
    double span_s;   /* how much of it the measured phase covered: 1, or less
                        for the last (rates are count / span_s) */
    uint64_t errors; /* of which errors */
    uint64_t p50_ns; /* their latencies */
    uint64_t p99_ns;
    uint64_t max_ns;
} pd__load_sec_t;

/* What a run measured. */
typedef struct pd__load_out_s {
    pd_hist_t hist[PD__M__COUNT];     /* latency, ns, from the intended send time */
    pd_hist_t send_lag;               /* open loop: how late requests left, ns
                                         (included in the latencies above) */
    uint64_t errors[PD__M__COUNT];    /* failed requests per metric */
    uint64_t by_code[PD__LOAD_CODES]; /* failed requests per error slot */
    uint64_t orders_done;             /* life cycles completed and rated */
    uint64_t orders_expired;          /* order.create found nobody (expired) */
    uint64_t orders_unoffered;        /* created but with no live offer to accept */
    uint64_t commands_done;           /* replies to commands drawn from the mix (order
                                         steps after order.create not counted) that
                                         came during the measured phase, whenever they
                                         were due: what an open loop's offered rate is
                                         compared with */
    uint64_t done[PD__M__COUNT];      /* replies received during the measured phase,
                                         whenever they were due (not those of the
                                         drain): the throughput the server delivered
                                         is done / measured_s; `order`: cycles whose
                                         order.rate reply came then */
    uint64_t replies;                 /* every reply of the run, warm-up and drain
                                         included (the generator's CPU per request) */
    double measured_s;                /* length of the measured phase: -d (a closed
                                         loop whose connections all closed: until
                                         then); -N: to the last reply */
    uint32_t conns_lost;              /* connections the server closed */
    uint64_t t_measure_ns;            /* when the measured phase began (monotonic
                                         ns, pd__bench_now_ns's clock) */
    uint64_t t_last_reply_ns;         /* when the run's last reply came (0: none) */
    pd__load_sec_t *secs;             /* time series, owned */
    size_t n_secs;
} pd__load_out_t;

/*
 * Connect, run, disconnect. Blocks for warm-up + duration (+ drain).
 * @param pool payloads; may be NULL for a ping-only mix.
 * @param out  filled; caller frees with pd__load_out_deinit() (also on error).
 * @return PD_OK; PD_ERR_IO if a connection or `auth` fails (why says which);
 * PD_ERR_BAD_ARG on bad options; PD_ERR_NOMEM.
 */
pd_err pd__load_run(const pd__load_opts_t *o, const pd__load_pool_t *pool, pd__load_out_t *out,
                    char *why, size_t cap);

/* Free what pd__load_run() put in out. */
void pd__load_out_deinit(pd__load_out_t *out);

#endif /* PAIDAN_BENCH_LOAD_H */
