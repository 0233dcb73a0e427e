/* server.h -- paidan-server: one libuv loop serving MessagePack-RPC.
 *
 * Private to api/. The server owns the engine, the listening sockets, the
 * connections (conn.h), the tick and idle timers, the signal handlers and
 * the statistics. Everything runs on one thread, like Redis: requests are
 * executed one at a time in the order they arrive, so the engine needs no
 * locks and pipelined requests are answered in order.
 *
 * Output is batched: handlers pack replies and notifications into the
 * connection's output buffer and mark it dirty; pd_server_flush() writes
 * every dirty connection at the end of each libuv callback, so a read of
 * many pipelined requests costs one write.
 */
#ifndef PAIDAN_API_SERVER_H
#define PAIDAN_API_SERVER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"
#include "paidan/engine.h"
#include "paidan/journal.h"
#include "stats.h"

#define PD_SERVER_DEFAULT_PORT 7411
#define PD_SERVER_READ_CHUNK 65536

typedef struct pd_conn_s pd_conn_t;
typedef struct pd_server_s pd_server_t;
typedef struct pd_persist_s pd_persist_t;

/** What the command line sets. Initialise with pd_server_config_init(). */
typedef struct pd_server_config_s {
    const char *host;         /* address to bind, default 127.0.0.1 */
    int port;                 /* 0 = chosen by the OS */
    const char *token;        /* shared secret for `auth`; NULL = none */
    size_t max_frame;         /* largest request frame, bytes */
    uint32_t max_conns;       /* simultaneous client connections */
    size_t max_output;        /* unsent bytes per connection before it is cut off */
    uint64_t idle_timeout_ms; /* close connections silent this long; 0 = never */
    uint32_t max_rps;         /* frames per second per connection; 0 = no limit */
    int metrics_port;         /* Prometheus endpoint; -1 = off, 0 = OS-chosen */
    uint32_t tick_ms;         /* engine tick period */
    uint32_t stall_ms;        /* loop iterations busier than this are logged */
    uint32_t busy_poll_us;    /* keep polling this long after a read; 0 = sleep at once */
    const char *config_path;  /* --config, for the log; NULL = none */
    const pd_engine_config_t
        *engine;                 /* its engine settings, read once by main(); NULL = defaults */
    const char *load_volunteers; /* CSV of volunteers to load at start, or NULL */
    const char *data_dir;        /* journal and snapshots; NULL = keep nothing on disk */
    pd_fsync_policy fsync;       /* --fsync: always, everysec (default), no */
    uint64_t snapshot_bytes;     /* snapshot when the journal passes this; 0 = never */
    bool truncate_corrupt;       /* cut a journal corrupt in the middle instead of refusing */
    bool huge_pages;             /* back the index's cells with huge pages (server.c) */
    double order_retention_days; /* purge closed orders this old; 0 = keep them all */
    uint64_t max_volunteers;     /* new volunteers past this many are refused; 0 = no cap */
    uint64_t max_orders;         /* new orders past this many kept are refused; 0 = no cap */
    const char *replicate;       /* NATS URL: publish the journal to a stream, or NULL */
    const char *follow;          /* NATS URL: be a read-only replica of a stream, or NULL */
    const char *stream;          /* the stream's name; NULL = "paidan" */
    const char *follow_snapshot; /* a replica's starting state (a snapshot file), or NULL */
} pd_server_config_t;

/* Events a connection can subscribe to: the engine's (pd_event_type),
 * then the server's own. */
#define PD_SERVER_EV_PURGED PD_EVENT__COUNT /* order.purged: closed orders dropped */
#define PD_SERVER_EV__COUNT (PD_EVENT__COUNT + 1)

/** Global counters shown by `stats` and /metrics. */
typedef struct pd_server_counters_s {
    uint64_t conns_accepted;   /* connections accepted */
    uint64_t conns_rejected;   /* refused: max connections */
    uint64_t requests;         /* frames executed (requests + client notifications) */
    uint64_t errors;           /* error replies, all causes */
    uint64_t bad_requests;     /* decodable frames that are not requests */
    uint64_t unknown_methods;  /* requests naming no method */
    uint64_t auth_failures;    /* wrong tokens and calls before auth */
    uint64_t protocol_errors;  /* connections closed for undecodable bytes */
    uint64_t frames_too_large; /* connections closed for an oversized frame */
    uint64_t output_cutoffs;   /* connections closed for unread output */
    uint64_t idle_closed;      /* connections closed by the idle timeout */
    uint64_t rate_limited;     /* times a connection was paused by --max-rps */
    uint64_t bytes_in;         /* bytes read from clients */
    uint64_t bytes_out;        /* bytes written to clients */
    uint64_t notifications;    /* notifications queued to subscribers */
    uint64_t events;           /* engine events raised while serving (not replayed) */
    uint64_t ticks;            /* engine ticks run */
    uint64_t offers_expired;   /* offers expired by ticks */
    uint64_t loop_stalls;      /* loop iterations over stall_ms */
    uint64_t max_stall_us;     /* the longest one */
    uint64_t metrics_scrapes;  /* /metrics requests served */
    uint64_t cells_tidied;     /* index cells sorted by the tidier (server.c) */
    uint64_t huge_passes;      /* --huge-pages passes over the cells finished */
    uint64_t huge_pages_asked; /* 2 MiB pages asked for in them */
    uint64_t orders_purged;    /* closed orders dropped by --order-retention (server.c) */
} pd_server_counters_t;

struct pd_server_s {
    uv_loop_t *loop;
    pd_server_config_t cfg;
    pd_engine_t *engine; /* owned */
    uv_tcp_t listener;   /* the RPC socket */
    uv_tcp_t metrics;    /* the /metrics socket (if enabled) */
    bool metrics_on;
    uv_timer_t tick_timer;      /* runs pd_engine_tick() */
    uv_timer_t idle_timer;      /* closes idle connections */
    uv_timer_t rate_timer;      /* resumes connections paused by --max-rps */
    uv_idle_t turn_idle;        /* resumes connections that used up their turn */
    uv_prepare_t stall_check;   /* measures each loop iteration */
    uv_idle_t busy_poll;        /* keeps the loop polling after a read (--busy-poll-us) */
    uv_idle_t tidy_idle;        /* tidies the index a slice per iteration while it needs it */
    uv_idle_t huge_idle;        /* --huge-pages: a pass over the cells, a slice per iteration */
    bool huge_wanted;           /* cells moved since the last pass began */
    int64_t next_purge_ms;      /* --order-retention: when to look for old orders next */
    struct pd_import_s *import; /* the `import` running, or NULL (import.c) */
    uint64_t busy_until_hr;     /* ... until then */
    uv_signal_t sig_term, sig_int, sig_hup;
    void (*reload)(pd_server_t *srv); /* SIGHUP: main() reads the settings again */
    bool running;                     /* started successfully */
    bool stopping;                    /* pd_server_stop() called */
    bool zone_ok;                     /* zone initialised */
    int bound_port;                   /* the RPC port actually bound */
    int metrics_bound_port;           /* the metrics port actually bound */

    pd_conn_t *conns; /* every open connection (doubly linked) */
    uint32_t n_conns;
    uint64_t next_conn_id;
    pd_conn_t *dirty;       /* connections with output to flush */
    pd_conn_t *subscribers; /* connections with a subscription */
    pd_conn_t *paused;      /* connections not being read for a while (conn.c) */

    char rbuf[PD_SERVER_READ_CHUNK]; /* shared read buffer (see conn.c) */
    msgpack_zone zone;               /* decoded request objects; cleared per frame */
    int64_t now_ms;                  /* wall clock stamped on the current request */

    pd_event_t *events; /* engine events not yet published */
    size_t n_events, cap_events;
    msgpack_sbuffer scratch; /* notification params, packed once */

    void *scratch_mem; /* per-request scratch (hits, offers, pairs) */
    size_t scratch_cap;

    uint64_t started_ms;      /* wall clock at start */
    uint64_t started_hr;      /* uv_hrtime() at start */
    uint64_t last_prepare_hr; /* stall detection state */
    uint64_t last_idle_ns;
    pd_server_counters_t n;    /* counters */
    pd_method_stats_t *mstats; /* one per method of methods.def */
    pd_persist_t *persist;     /* durability (persist.h); NULL without --data-dir */
    struct pd_repl_s *repl;    /* replication (replicate.h); NULL without it */
    bool fatal;                /* stopped on an error (the journal failed): exit 1 */

    /* systemd's notify protocol (notify.c), when NOTIFY_SOCKET is set */
    uv_timer_t notify_timer;   /* watchdog pings and status refreshes */
    bool notify_on;            /* notify_timer initialised */
    bool notify_watchdog;      /* the unit set WatchdogSec= */
    uint64_t notify_status_hr; /* when the status line was last sent */
    uint64_t notify_requests;  /* n.requests then */
};

/** Defaults: 127.0.0.1:7411, 1 MiB frames, 10000 connections, 64 MiB
 *  output, no idle timeout, no request rate limit, no metrics, 200 ms
 *  ticks, 100 ms stalls. */
void pd_server_config_init(pd_server_config_t *cfg);

/**
 * Create the engine, bind the sockets and install timers and signals on
 * `loop`. Prints "listening on HOST:PORT" on stdout once bound.
 * @return PD_OK; PD_ERR_BAD_ARG (bad host, token missing beyond loopback,
 * bad engine config); PD_ERR_IO (bind/listen failed); PD_ERR_NOMEM. The
 * reason is logged. On error everything created so far is closed again
 * (run the loop to let the handles finish closing) and *srv can be freed.
 */
pd_err pd_server_start(pd_server_t *srv, uv_loop_t *loop, const pd_server_config_t *cfg);

/**
 * Check what pd_server_start() would check of `cfg` before binding: the
 * host, the token a host beyond loopback needs, the ports, the engine
 * settings (by creating an engine and dropping it). Each problem is logged.
 * @return the number of problems (0 = it would start, as far as these go).
 */
int pd_server_check_config(const pd_server_config_t *cfg);

/**
 * Take the settings a reload (SIGHUP) read: those that can change while
 * the server runs take effect now -- the token (for connections opened
 * from now on), the log level, max_conns, max_frame (new connections),
 * max_output, idle_timeout, tick_ms, stall_ms, busy_poll_us,
 * order_retention, max_volunteers, max_orders, snapshot_bytes; each change
 * is logged. A change to any other setting, or to the engine's settings
 * (next->engine), is logged as waiting for a restart. `next` is not kept;
 * its strings must outlive the server.
 * @return PD_OK; PD_ERR_BAD_ARG when the new settings would leave a server
 * bound beyond loopback without a token (logged; nothing changed).
 */
pd_err pd_server_reload(pd_server_t *srv, const pd_server_config_t *next, pd_log_level level);

/** Stop: close the listeners, every connection, timers and signals. Idempotent. */
void pd_server_stop(pd_server_t *srv);

/**
 * Bind and listen `tcp` on host:port; the address bound ("HOST:PORT") goes
 * to addr. `flag` names the option the port came from, for the error.
 * @return PD_ERR_BAD_ARG for a host that is not an IP address, PD_ERR_IO if
 * bind or listen fails (logged).
 */
pd_err pd_server_listen(pd_server_t *srv, uv_tcp_t *tcp, const char *host, int port,
                        uv_connection_cb cb, const char *flag, int *bound_port, char *addr,
                        size_t cap);

/**
 * Print "<label> <addr>" on stdout -- the line tests and scripts read to
 * learn an OS-chosen port -- once every listener is bound, so the line
 * means the server has started.
 */
void pd_server_announce(const char *label, const char *addr);

/** Replace the engine (recovery): the old one is destroyed, the event
 *  callback installed on the new one, which the server now owns. */
void pd_server_set_engine(pd_server_t *srv, pd_engine_t *e);

/** Free what the server owns (after the loop has finished). */
void pd_server_deinit(pd_server_t *srv);

/** Wall clock in ms since the epoch, never going backwards; stored in srv->now_ms. */
int64_t pd_server_stamp(pd_server_t *srv);

/** Bytes came in: with --busy-poll-us, keep the loop polling (not
 * sleeping) for that long, so the next request is seen without a wake-up. */
void pd_server_busy_poll(pd_server_t *srv);

/** Queue `c` for the next pd_server_flush(). */
void pd_server_mark_dirty(pd_server_t *srv, pd_conn_t *c);

/** Write out every dirty connection. */
void pd_server_flush(pd_server_t *srv);

/** Send the engine events queued by the last engine call to their subscribers. */
void pd_server_publish(pd_server_t *srv);

/**
 * Scratch memory for one request, at least `bytes`, reused across requests.
 * @return NULL on OOM. Valid until the next call.
 */
void *pd_server_scratch(pd_server_t *srv, size_t bytes);

/** Add/remove a connection from the subscriber list (by its subs mask). */
void pd_server_subscriber_update(pd_server_t *srv, pd_conn_t *c);

/** Event names on the wire ("order.offered", ...), by pd_event_type. */
const char *pd_server_event_name(unsigned type);

/**
 * Queue an order.purged notification for the subscribers: n closed orders
 * dropped, closed before before_ms, by a request or by --order-retention.
 * Sent with the call's other events (pd_server_publish).
 */
void pd_server_queue_purged(pd_server_t *srv, size_t n, int64_t before_ms, bool retention);

#endif /* PAIDAN_API_SERVER_H */
