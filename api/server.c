/* server.c -- paidan-server's loop: listeners, timers, signals, events.
 *
 * Start-up creates the engine (from --config if given), optionally loads
 * volunteers from CSV, binds the RPC socket (and the /metrics socket when
 * asked) and prints "listening on HOST:PORT" on stdout for scripts and
 * tests. Binding beyond loopback without --token is refused: anyone who
 * can reach the port could otherwise move volunteers and orders.
 *
 * Timers: the engine tick (offer expiry and re-dispatch) runs every
 * --tick-ms with the wall clock; the idle sweep closes connections silent
 * for --idle-timeout (subscribers, which legitimately only listen, are
 * exempt, as in Redis). A prepare handle measures every loop iteration's
 * busy time (wall time minus uv_metrics_idle_time()) and logs stalls above
 * --stall-ms, like Redis's latency monitor.
 *
 * The tidier. Volunteers that move between cells loosen the cells' block
 * boxes, and a bulk load leaves every cell in arrival order; a query then
 * reads more blocks than it needs (match.nearby at 10^6 after a load took
 * 12 us server-side instead of 8). Every tick tries one slice of
 * pd_engine_tidy(); if it found cells to sort, an idle handle goes on a
 * slice per loop iteration (about TIDY_SLICE volunteers, a few ms, other
 * connections served in between) until a slice finds nothing left.
 *
 * Huge pages (--huge-pages). A query at 10^6 volunteers reads a few
 * hundred lines over as many 4 KiB pages, and on a VM each TLB miss costs
 * about what the read does. With the flag, once the tidier has nothing
 * left to sort (cells it sorts move to new memory), the allocator returns
 * its free pages and an idle handle asks for a huge page under each 2 MiB
 * of the cells (pd_engine_huge_pages), HUGE_SLICE pages per iteration so
 * other connections are served in between. Off by default: it costs
 * about a fifth more resident memory (docs/operations-server.md).
 *
 * Busy polling (--busy-poll-us). Sleeping in epoll and being woken by the
 * next request costs a VM more than the request itself: on the 2-core test
 * machine a 1-byte TCP ping-pong takes 31 us at p50 when both sides sleep
 * and 15 us when both poll. After each read an idle handle keeps libuv
 * polling with a zero timeout until --busy-poll-us have passed without a
 * read, then the loop sleeps as usual. It spends a core while requests keep
 * coming, for latency; off by default.
 *
 * Events from the engine arrive through its callback during a mutating
 * call; they are queued and published after the call's reply is packed,
 * so a client sees its own reply before the notifications it caused.
 */
#include "server.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "import.h"
#include "methods.h"
#include "metrics.h"
#include "notify.h"
#include "persist.h"
#include "replicate.h"
#ifdef PD_HAVE_DATA
#include "paidan/alloc.h"
#include "paidan/data.h"
#endif

#define LISTEN_BACKLOG 511

static const char *const event_names[PD_SERVER_EV__COUNT] = {
    [PD_EVENT_OFFERED] = "order.offered",
    [PD_EVENT_ACCEPTED] = "order.accepted",
    [PD_EVENT_DECLINED] = "order.declined",
    [PD_EVENT_OFFER_EXPIRED] = "order.offer_expired",
    [PD_EVENT_OFFER_WITHDRAWN] = "order.offer_withdrawn",
    [PD_EVENT_RELEASED] = "order.released",
    [PD_EVENT_EXPIRED] = "order.expired",
    [PD_EVENT_CANCELLED] = "order.cancelled",
    [PD_EVENT_COMPLETED] = "order.completed",
    [PD_EVENT_RATED] = "order.rated",
    [PD_SERVER_EV_PURGED] = "order.purged",
};

const char *pd_server_event_name(unsigned type) {
    return type < PD_SERVER_EV__COUNT ? event_names[type] : NULL;
}

void pd_server_config_init(pd_server_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->port = PD_SERVER_DEFAULT_PORT;
    cfg->max_frame = 1u << 20;
    cfg->max_conns = 10000;
    cfg->max_output = 64u << 20;
    cfg->idle_timeout_ms = 0;
    cfg->metrics_port = -1;
    cfg->tick_ms = 200;
    cfg->stall_ms = 100;
    cfg->fsync = PD_FSYNC_EVERYSEC;
    cfg->snapshot_bytes = 256u << 20;
}

int64_t pd_server_stamp(pd_server_t *srv) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (ms > srv->now_ms) srv->now_ms = ms;
    return srv->now_ms;
}

void *pd_server_scratch(pd_server_t *srv, size_t bytes) {
    if (bytes > srv->scratch_cap) {
        size_t cap = srv->scratch_cap ? srv->scratch_cap : 4096;
        while (cap < bytes) cap *= 2;
        void *p = pd_realloc(srv->scratch_mem, cap);
        if (!p) return NULL;
        srv->scratch_mem = p;
        srv->scratch_cap = cap;
    }
    return srv->scratch_mem;
}

/* --------------------------------------------------------------- output */

void pd_server_mark_dirty(pd_server_t *srv, pd_conn_t *c) {
    if (c->dirty || c->closing) return;
    c->dirty = true;
    c->dirty_next = srv->dirty;
    srv->dirty = c;
}

void pd_server_flush(pd_server_t *srv) {
    /* Replies wait for the journal: the commit (and the flush) happens once
     * at the end of this loop iteration, for every connection at once. */
    if (pd_persist_pending(srv)) {
        pd_persist_defer_flush(srv);
        return;
    }
    while (srv->dirty) {
        pd_conn_t *c = srv->dirty;
        srv->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        pd_conn_flush(c);
    }
}

/* --------------------------------------------------------------- events */

void pd_server_subscriber_update(pd_server_t *srv, pd_conn_t *c) {
    bool listed = c->sub_prev || c->sub_next || srv->subscribers == c;
    if (c->subs && !listed) {
        c->sub_prev = NULL;
        c->sub_next = srv->subscribers;
        if (srv->subscribers) srv->subscribers->sub_prev = c;
        srv->subscribers = c;
    } else if (!c->subs && listed) {
        if (c->sub_prev)
            c->sub_prev->sub_next = c->sub_next;
        else
            srv->subscribers = c->sub_next;
        if (c->sub_next) c->sub_next->sub_prev = c->sub_prev;
        c->sub_prev = c->sub_next = NULL;
    }
}

/* Queue ev for the subscribers (pd_server_publish sends it). */
static void queue_event(pd_server_t *srv, const pd_event_t *ev) {
    if (srv->n_events == srv->cap_events) {
        size_t cap = srv->cap_events ? srv->cap_events * 2 : 64;
        pd_event_t *p = pd_realloc(srv->events, cap * sizeof(*p));
        if (!p) {
            pd_log(PD_LOG_ERROR, "out of memory queueing an event; notification dropped");
            return;
        }
        srv->events = p;
        srv->cap_events = cap;
    }
    srv->events[srv->n_events++] = *ev;
}

static void on_engine_event(void *ud, const pd_event_t *ev) {
    pd_server_t *srv = ud;
    /* Recovery replays the journal through the engine before the server
     * serves: those events happened in an earlier life and were published
     * then. They are neither counted again nor sent. */
    if (!srv->running) return;
    srv->n.events++;
    if (srv->subscribers) queue_event(srv, ev);
}

/* order.purged rides the engine events' queue, in their struct: the count
 * in order_id, before_ms in deadline_ms, retention (1) or a request (0) in
 * reason. */
void pd_server_queue_purged(pd_server_t *srv, size_t n, int64_t before_ms, bool retention) {
    if (!srv->running || n == 0) return;
    srv->n.events++;
    if (!srv->subscribers) return;
    pd_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = PD_SERVER_EV_PURGED;
    ev.order_id = n;
    ev.deadline_ms = before_ms;
    ev.reason = retention;
    ev.at_ms = srv->now_ms;
    queue_event(srv, &ev);
}

void pd_server_set_engine(pd_server_t *srv, pd_engine_t *e) {
    pd_engine_destroy(srv->engine);
    srv->engine = e;
    pd_engine_set_event_cb(e, on_engine_event, srv);
}

static void pack_event(msgpack_packer *pk, const pd_event_t *ev) {
    if (ev->type == PD_SERVER_EV_PURGED) {
        msgpack_pack_map(pk, 4);
        pd_pack_kv_u64(pk, "count", ev->order_id);
        pd_pack_kv_i64(pk, "before_ms", ev->deadline_ms);
        pd_pack_kv_i64(pk, "at_ms", ev->at_ms);
        pd_pack_kv_str(pk, "by", ev->reason ? "retention" : "request");
        return;
    }
    unsigned n = 3;
    bool reason = ev->reason != PD_REASON_NONE;
    bool deadline = ev->type == PD_EVENT_OFFERED;
    bool minutes = ev->type == PD_EVENT_COMPLETED;
    bool rating = ev->type == PD_EVENT_RATED;
    n += reason + 2u * ev->has_volunteer + deadline + minutes + rating;
    msgpack_pack_map(pk, n);
    pd_pack_kv_u64(pk, "order", ev->order_id);
    const char *st = pd_order_state_name((pd_order_state)ev->order_state);
    pd_pack_kv_str(pk, "state", st ? st : "unknown");
    pd_pack_kv_i64(pk, "at_ms", ev->at_ms);
    if (reason) {
        const char *r = pd_reason_name((pd_reason)ev->reason);
        pd_pack_kv_str(pk, "reason", r ? r : "unknown");
    }
    if (ev->has_volunteer) {
        pd_pack_kv_u64(pk, "volunteer", ev->volunteer_id);
        pd_pack_kv_u64(pk, "slot", ev->slot);
    }
    if (deadline) pd_pack_kv_i64(pk, "deadline_ms", ev->deadline_ms);
    if (minutes) pd_pack_kv_u64(pk, "minutes", ev->minutes);
    if (rating) pd_pack_kv_u64(pk, "rating", ev->rating);
}

/* The event queue is freed after a burst larger than this. */
#define EVENTS_KEEP_MAX 4096

void pd_server_publish(pd_server_t *srv) {
    msgpack_packer spk;
    msgpack_packer_init(&spk, &srv->scratch, msgpack_sbuffer_write);
    for (size_t i = 0; i < srv->n_events; i++) {
        const pd_event_t *ev = &srv->events[i];
        if (ev->type >= PD_SERVER_EV__COUNT) continue;
        uint32_t bit = 1u << ev->type;
        srv->scratch.size = 0;
        pack_event(&spk, ev);
        const char *name = event_names[ev->type];
        for (pd_conn_t *c = srv->subscribers, *next; c; c = next) {
            next = c->sub_next; /* cutting c off unlinks it */
            if (!(c->subs & bit) || c->closing) continue;
            msgpack_pack_array(&c->pk, 3);
            msgpack_pack_uint8(&c->pk, 2);
            pd_pack_cstr(&c->pk, name);
            c->pk.callback(c->pk.data, srv->scratch.data, srv->scratch.size);
            srv->n.notifications++;
            pd_server_mark_dirty(srv, c);
            /* One call can raise a great many events (a dispatch.batch, a
             * tick expiring a surge of offers): judge --max-output as the
             * output grows, not once it is all queued, so a subscriber
             * that does not read costs at most the limit, not the burst. */
            if (pd_conn_pending(c) > srv->cfg.max_output || c->oom) pd_conn_check_output(c);
        }
    }
    srv->n_events = 0;
    for (pd_conn_t *c = srv->subscribers, *next; c; c = next) {
        next = c->sub_next;
        pd_conn_check_output(c);
    }
    if (srv->scratch.alloc > (1u << 20)) {
        msgpack_sbuffer_destroy(&srv->scratch);
        msgpack_sbuffer_init(&srv->scratch);
    }
    if (srv->cap_events > EVENTS_KEEP_MAX) {
        pd_free(srv->events);
        srv->events = NULL;
        srv->cap_events = 0;
    }
}

/* --------------------------------------------------------------- timers */

/* Volunteers' worth of cells the tidier sorts per slice (~0.65 us each). */
#define TIDY_SLICE 4096

/* 2 MiB pages asked for per slice of a --huge-pages pass: a page the
 * kernel has to copy takes 1-3 ms, one already huge a few us. */
#define HUGE_SLICE 2

static void on_huge_idle(uv_idle_t *h) {
    pd_server_t *srv = h->data;
    size_t n = 0;
    bool done = false;
    pd_engine_huge_pages(srv->engine, HUGE_SLICE, &n, &done);
    srv->n.huge_pages_asked += n;
    if (done) {
        srv->n.huge_passes++;
        uv_idle_stop(h);
    }
}

/* With --huge-pages, start a pass if cells moved since the last one began
 * and the tidier is not moving more. */
static void maybe_huge_pages(pd_server_t *srv) {
    if (!srv->cfg.huge_pages || !srv->huge_wanted || srv->stopping ||
        uv_is_active((uv_handle_t *)&srv->tidy_idle) ||
        uv_is_active((uv_handle_t *)&srv->huge_idle))
        return;
    srv->huge_wanted = false;
    pd_alloc_release_free(); /* else the pass fills the freed blocks' holes */
    uv_idle_start(&srv->huge_idle, on_huge_idle);
}

/* One slice of tidying; false when there was nothing left to sort. */
static bool tidy_slice(pd_server_t *srv) {
    size_t sorted = 0;
    pd_err err = pd_engine_tidy(srv->engine, TIDY_SLICE, &sorted);
    srv->n.cells_tidied += sorted;
    if (sorted) srv->huge_wanted = true;
    if (err) pd_log(PD_LOG_WARN, "tidying the index: %s", pd_strerror(err));
    return !err && sorted > 0;
}

static void on_tidy_idle(uv_idle_t *h) {
    pd_server_t *srv = h->data;
    if (!tidy_slice(srv)) uv_idle_stop(h);
}

/* --order-retention: now and then, drop the closed orders older than the
 * retention, through the same path as a client's order.purge {before_ms}
 * so the journal holds it and a recovery drops the same orders. */
static void maybe_purge(pd_server_t *srv, int64_t now) {
    double days = srv->cfg.order_retention_days;
    if (days <= 0 || now < srv->next_purge_ms || pd_persist_failed(srv)) return;
    int64_t keep_ms = (int64_t)(days * 86400000.0);
    /* once a minute, or four times a retention when that is shorter */
    int64_t every = keep_ms / 4 < 60000 ? keep_ms / 4 : 60000;
    srv->next_purge_ms = now + (every > 0 ? every : 1);
    int64_t before = now - keep_ms;
    if (before <= 0) return;
    /* like every write: room for its journal record first, or nothing (a
     * full data directory makes the server read-only, not a purge) */
    if (!pd_persist_may_write(srv, 64)) return;
    size_t n = 0;
    pd_err err = pd_engine_order_purge(srv->engine, before, &n);
    if (err) {
        pd_log(PD_LOG_WARN, "purging orders: %s", pd_strerror(err));
        return;
    }
    if (!n) return;
    msgpack_object_kv kv;
    kv.key.type = MSGPACK_OBJECT_STR;
    kv.key.via.str.ptr = "before_ms";
    kv.key.via.str.size = 9;
    kv.val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    kv.val.via.u64 = (uint64_t)before;
    msgpack_object params;
    params.type = MSGPACK_OBJECT_MAP;
    params.via.map.size = 1;
    params.via.map.ptr = &kv;
    if (srv->persist) pd_persist_record(srv, PD_MID_order_purge, &params);
    srv->n.orders_purged += n;
    pd_server_queue_purged(srv, n, before, true);
    pd_log(PD_LOG_DEBUG, "purged %zu closed orders older than %.3g days", n, days);
}

static void on_tick(uv_timer_t *t) {
    pd_server_t *srv = t->data;
    if (!uv_is_active((uv_handle_t *)&srv->tidy_idle) && tidy_slice(srv))
        uv_idle_start(&srv->tidy_idle, on_tidy_idle);
    maybe_huge_pages(srv);
    int64_t now = pd_server_stamp(srv);
    size_t expired = 0;
    /* A replica's ticks are the primary's, in the stream. */
    if (srv->cfg.follow) {
        pd_server_flush(srv);
        return;
    }
    /* Ticks only when an offer is due, journaled (persist.c). */
    pd_persist_tick(srv, now, &expired);
    srv->n.ticks++;
    srv->n.offers_expired += expired;
    maybe_purge(srv, now);
    if (srv->n_events) pd_server_publish(srv);
    if (pd_persist_pending(srv) && !pd_persist_commit(srv)) return;
    pd_server_flush(srv);
    pd_persist_maybe_snapshot(srv);
}

static void on_idle_sweep(uv_timer_t *t) {
    pd_server_t *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    for (pd_conn_t *c = srv->conns; c; c = c->next) {
        /* Subscribers only listen. A paused connection is not idle: the
         * server is holding it (its rate, an import it waits on), and its
         * clock starts again when it is resumed. */
        if (c->closing || c->subs || c->paused != PD_PAUSE_NONE) continue;
        if (now - c->last_active_ms >= srv->cfg.idle_timeout_ms) {
            srv->n.idle_closed++;
            pd_conn_close(c, PD_ERR_LIMIT, "idle timeout");
        }
    }
}

static void on_busy_poll(uv_idle_t *h) {
    pd_server_t *srv = h->data;
    if (uv_hrtime() >= srv->busy_until_hr) uv_idle_stop(h);
}

void pd_server_busy_poll(pd_server_t *srv) {
    if (!srv->cfg.busy_poll_us || srv->stopping) return;
    srv->busy_until_hr = uv_hrtime() + (uint64_t)srv->cfg.busy_poll_us * 1000u;
    if (!uv_is_active((uv_handle_t *)&srv->busy_poll)) uv_idle_start(&srv->busy_poll, on_busy_poll);
}

static void on_prepare(uv_prepare_t *p) {
    pd_server_t *srv = p->data;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(srv->loop);
    if (srv->last_prepare_hr) {
        uint64_t wall = now - srv->last_prepare_hr;
        uint64_t slept = idle - srv->last_idle_ns;
        uint64_t busy = wall > slept ? wall - slept : 0;
        if (srv->cfg.stall_ms && busy > (uint64_t)srv->cfg.stall_ms * 1000000u) {
            srv->n.loop_stalls++;
            if (busy / 1000 > srv->n.max_stall_us) srv->n.max_stall_us = busy / 1000;
            pd_log(PD_LOG_WARN, "event loop stalled for %" PRIu64 " ms", busy / 1000000u);
        }
    }
    srv->last_prepare_hr = now;
    srv->last_idle_ns = idle;
}

/* -------------------------------------------------------------- signals */

static void on_hangup(uv_signal_t *s, int signum) {
    (void)signum;
    pd_server_t *srv = s->data;
    if (srv->stopping) return;
    if (!srv->reload) {
        pd_log(PD_LOG_WARN, "received SIGHUP: nothing to reload yet");
        return;
    }
    pd_log(PD_LOG_INFO, "received SIGHUP: reading the settings again");
    srv->reload(srv);
}

static void on_signal(uv_signal_t *s, int signum) {
    pd_server_t *srv = s->data;
    pd_log(PD_LOG_INFO, "received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    pd_server_stop(srv);
}

/* ------------------------------------------------------------ listening */

static void on_connection(uv_stream_t *server, int status) {
    pd_server_t *srv = server->data;
    if (status < 0) {
        pd_log(PD_LOG_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    pd_conn_accept(srv);
    pd_server_flush(srv);
}

/* Parse host into an address; reports whether it is loopback. */
static pd_err resolve_host(const char *host, int port, struct sockaddr_storage *ss,
                           bool *loopback) {
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (uv_ip4_addr(host, port, a4) == 0) {
        *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
        return PD_OK;
    }
    if (uv_ip6_addr(host, port, a6) == 0) {
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
        return PD_OK;
    }
    return PD_ERR_BAD_ARG;
}

/* The replication settings that do not go together; each is logged.
 * @return the number of problems. */
static int check_replication(const pd_server_config_t *cfg) {
    int problems = 0;
    if ((cfg->replicate || cfg->follow) && !pd_repl_available()) {
        pd_log(PD_LOG_ERROR, "%s: this build has no NATS client (libnats)",
               cfg->replicate ? "--replicate" : "--follow");
        problems++;
    }
    if (cfg->replicate && !cfg->data_dir) {
        pd_log(PD_LOG_ERROR,
               "--replicate publishes the journal: it needs --data-dir (the segments are read "
               "back when the stream falls behind)");
        problems++;
    }
    if (cfg->follow) {
        /* A replica's state is the stream's and nothing else's. */
        const char *clash = cfg->replicate                  ? "--replicate"
                            : cfg->data_dir                 ? "--data-dir"
                            : cfg->load_volunteers          ? "--load-volunteers"
                            : cfg->order_retention_days > 0 ? "--order-retention"
                                                            : NULL;
        if (clash) {
            pd_log(PD_LOG_ERROR,
                   "--follow makes a read-only replica: %s would change its state (give it to "
                   "the primary)",
                   clash);
            problems++;
        }
    } else if (cfg->follow_snapshot) {
        pd_log(PD_LOG_ERROR, "--follow-snapshot is a replica's starting state: it needs --follow");
        problems++;
    }
    if (cfg->stream && !cfg->replicate && !cfg->follow)
        pd_log(PD_LOG_WARN, "--stream is given without --replicate or --follow: it does nothing");
    return problems;
}

int pd_server_check_config(const pd_server_config_t *cfg) {
    int problems = 0;
    struct sockaddr_storage ss;
    bool loopback = false;
    if (resolve_host(cfg->host, cfg->port, &ss, &loopback) != PD_OK) {
        pd_log(PD_LOG_ERROR, "bad --host '%s': give an IPv4 or IPv6 address", cfg->host);
        problems++;
    } else if (!loopback && !cfg->token) {
        pd_log(PD_LOG_ERROR,
               "--host %s is beyond loopback and no token is set (--token, token = in "
               "[server], or PAIDAN_TOKEN): the server would refuse to start",
               cfg->host);
        problems++;
    }
    if (cfg->port && cfg->metrics_port == cfg->port) {
        pd_log(PD_LOG_ERROR, "--metrics-port %d is --port too: give them different ports",
               cfg->port);
        problems++;
    }
    problems += check_replication(cfg);
    pd_engine_config_t ec;
    pd_engine_config_init(&ec);
    if (cfg->engine) ec = *cfg->engine;
    pd_engine_t *e = NULL;
    pd_err err = pd_engine_create(&ec, &e);
    if (err) {
        pd_log(PD_LOG_ERROR, "engine settings: %s", pd_strerror(err));
        problems++;
    }
    pd_engine_destroy(e);
    return problems;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t cap, int *port) {
    char ip[64] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof(ip));
        *port = ntohs(a->sin6_port);
        snprintf(buf, cap, "[%s]:%d", ip, *port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof(ip));
        *port = ntohs(a->sin_port);
        snprintf(buf, cap, "%s:%d", ip, *port);
    }
}

pd_err pd_server_listen(pd_server_t *srv, uv_tcp_t *tcp, const char *host, int port,
                        uv_connection_cb cb, const char *flag, int *bound_port, char *addr,
                        size_t cap) {
    struct sockaddr_storage ss;
    bool loopback;
    if (resolve_host(host, port, &ss, &loopback) != PD_OK) {
        pd_log(PD_LOG_ERROR, "bad --host '%s': give an IPv4 or IPv6 address", host);
        return PD_ERR_BAD_ARG;
    }
    int rc = uv_tcp_bind(tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, LISTEN_BACKLOG, cb);
    if (rc != 0) {
        pd_log(PD_LOG_ERROR, "cannot listen on %s port %d (%s): %s", host, port, flag,
               uv_strerror(rc));
        return PD_ERR_IO;
    }
    int sl = sizeof(ss);
    uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &sl);
    format_addr(&ss, addr, cap, bound_port);
    (void)srv;
    return PD_OK;
}

void pd_server_announce(const char *label, const char *addr) {
    printf("%s %s\n", label, addr);
    fflush(stdout);
    pd_log(PD_LOG_INFO, "%s %s", label, addr);
}

/* ----------------------------------------------------------- lifecycle */

#ifdef PD_HAVE_DATA
static pd_err load_volunteers(pd_server_t *srv, const char *path) {
    const pd_engine_config_t *ec = pd_engine_get_config(srv->engine);
    const char *names[PD_MAX_SKILLS];
    for (uint32_t i = 0; i < ec->n_skills; i++) names[i] = ec->skills[i];
    pd_csv_reader_t *r = NULL;
    pd_csv_error_t cerr;
    pd_err err = pd_csv_reader_open(path, PD_CSV_VOLUNTEERS, names, ec->n_skills, &r, &cerr);
    if (err) {
        pd_log(PD_LOG_ERROR, "--load-volunteers: %s", cerr.message);
        return err;
    }
    pd_import_reserve_for(srv, path);
    int64_t now = pd_server_stamp(srv);
    size_t loaded = 0, bad = 0, replaced = 0;
    for (;;) {
        pd_volunteer_t v;
        bool got = false;
        err = pd_csv_read_volunteer(r, &v, &got);
        if (err == PD_ERR_IO) {
            pd_log(PD_LOG_ERROR, "--load-volunteers: %s", pd_csv_reader_get_error(r)->message);
            break;
        }
        if (err) {
            if (bad++ < 10) pd_log(PD_LOG_WARN, "%s", pd_csv_reader_get_error(r)->message);
            continue;
        }
        if (!got) break;
        if (!pd_persist_may_write(srv, 64)) {
            pd_log(PD_LOG_ERROR, "--load-volunteers: data directory full (%s) after %zu volunteers",
                   pd_persist_full_reason(srv), loaded);
            err = PD_ERR_IO;
            break;
        }
        size_t before = pd_engine_volunteer_count(srv->engine);
        err = pd_engine_volunteer_upsert(srv->engine, &v, now);
        if (!err) pd_persist_record_volunteer(srv, &v);
        if (err == PD_ERR_NOMEM) break;
        /* An id already there (an earlier line, or the recovered state):
         * the line replaces it, as volunteer.upsert does. */
        if (!err && pd_engine_volunteer_count(srv->engine) == before && replaced++ < 10)
            pd_log(PD_LOG_WARN, "%s:%zu: volunteer %" PRIu64 " was already there: replaced", path,
                   pd_csv_reader_get_line(r), v.id);
        if (err) {
            /* ILLEGAL here: the line's capacity is below the offers and
             * orders the recovered volunteer holds now */
            if (bad++ < 10)
                pd_log(PD_LOG_WARN, "%s:%zu: volunteer %" PRIu64 ": %s", path,
                       pd_csv_reader_get_line(r), v.id,
                       err == PD_ERR_ILLEGAL
                           ? "capacity below the offers and orders they hold now: line skipped"
                           : pd_strerror(err));
            continue;
        }
        loaded++;
        if (loaded % 250000 == 0)
            pd_log(PD_LOG_INFO, "loading %s: %zu volunteers so far (line %zu)", path, loaded,
                   pd_csv_reader_get_line(r));
    }
    pd_csv_reader_close(r);
    if (err == PD_ERR_NOMEM || err == PD_ERR_IO) return err;
    pd_log(PD_LOG_INFO,
           "loaded %zu volunteers from %s (%zu lines skipped, %zu replaced a volunteer with the "
           "same id)",
           loaded, path, bad, replaced);
    return PD_OK;
}
#endif

/* The idle sweep, a few times per --idle-timeout (none without one). */
static void start_idle_sweep(pd_server_t *srv) {
    uv_timer_stop(&srv->idle_timer);
    if (!srv->cfg.idle_timeout_ms) return;
    uint64_t every = srv->cfg.idle_timeout_ms / 4;
    if (every < 20) every = 20;
    if (every > 1000) every = 1000;
    uv_timer_start(&srv->idle_timer, on_idle_sweep, every, every);
}

static bool str_differs(const char *a, const char *b) {
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* The engine settings `next` names (NULL: the defaults) differ from the
 * running engine's. */
static bool engine_config_differs(const pd_engine_t *e, const pd_engine_config_t *next) {
    pd_engine_config_t def;
    if (!next) {
        pd_engine_config_init(&def);
        next = &def;
    }
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    bool differs = true;
    if (pd_engine_config_encode(pd_engine_get_config(e), &a, &na) == PD_OK &&
        pd_engine_config_encode(next, &b, &nb) == PD_OK)
        differs = na != nb || memcmp(a, b, na) != 0;
    pd_free(a);
    pd_free(b);
    return differs;
}

pd_err pd_server_reload(pd_server_t *srv, const pd_server_config_t *next, pd_log_level level) {
    pd_server_config_t *cur = &srv->cfg;
    struct sockaddr_storage ss;
    bool loopback = true;
    if (resolve_host(cur->host, cur->port, &ss, &loopback) == PD_OK && !loopback && !next->token) {
        pd_log(PD_LOG_ERROR,
               "reload refused: the server listens on %s, beyond loopback, and the new "
               "settings have no token; nothing changed",
               cur->host);
        return PD_ERR_BAD_ARG;
    }
    pd_notify_reloading();
    unsigned changed = 0, waiting = 0;
#define LIVE(field, name, fmt, cast)                                              \
    if (next->field != cur->field) {                                              \
        pd_log(PD_LOG_INFO, "reload: %s " fmt " -> " fmt, name, (cast)cur->field, \
               (cast)next->field);                                                \
        cur->field = next->field;                                                 \
        changed++;                                                                \
    }
#define LATER(differs, name)                                                             \
    if (differs) {                                                                       \
        pd_log(PD_LOG_WARN, "reload: %s changed: the change waits for a restart", name); \
        waiting++;                                                                       \
    }
    if (str_differs(next->token, cur->token)) {
        pd_log(PD_LOG_INFO, "reload: the token %s (connections open now keep their standing)",
               !next->token  ? "was removed"
               : !cur->token ? "is now required"
                             : "changed");
        cur->token = next->token;
        changed++;
    }
    if (level != (pd_log_level)pd_log_get_level()) {
        pd_log(PD_LOG_INFO, "reload: log_level %s -> %s", pd_log_level_name(pd_log_get_level()),
               pd_log_level_name(level));
        pd_log_set_level(level);
        changed++;
    }
    LIVE(max_conns, "max_conns", "%u", unsigned)
    LIVE(max_frame, "max_frame (new connections)", "%zu", size_t)
    LIVE(max_output, "max_output", "%zu", size_t)
    LIVE(stall_ms, "stall_ms", "%u", unsigned)
    LIVE(busy_poll_us, "busy_poll_us", "%u", unsigned)
    LIVE(snapshot_bytes, "snapshot_bytes", "%llu", unsigned long long)
    if (next->max_volunteers != cur->max_volunteers || next->max_orders != cur->max_orders) {
        LIVE(max_volunteers, "max_volunteers", "%llu", unsigned long long)
        LIVE(max_orders, "max_orders", "%llu", unsigned long long)
        pd_engine_set_limits(srv->engine, (size_t)cur->max_volunteers, (size_t)cur->max_orders);
    }
    if (next->order_retention_days != cur->order_retention_days) {
        LIVE(order_retention_days, "order_retention (days)", "%g", double)
        srv->next_purge_ms = 0; /* look at once */
    }
    if (next->tick_ms != cur->tick_ms) {
        LIVE(tick_ms, "tick_ms", "%u", unsigned)
        uv_timer_start(&srv->tick_timer, on_tick, cur->tick_ms, cur->tick_ms);
    }
    if (next->idle_timeout_ms != cur->idle_timeout_ms) {
        LIVE(idle_timeout_ms, "idle_timeout (ms)", "%llu", unsigned long long)
        start_idle_sweep(srv);
    }
    LATER(str_differs(next->host, cur->host), "host")
    LATER(next->port != cur->port, "port")
    LATER(next->metrics_port != cur->metrics_port, "metrics_port")
    LATER(next->max_rps != cur->max_rps, "max_rps")
    LATER(next->huge_pages != cur->huge_pages, "huge_pages")
    LATER(str_differs(next->load_volunteers, cur->load_volunteers), "load_volunteers")
    LATER(str_differs(next->data_dir, cur->data_dir), "data_dir")
    LATER(next->fsync != cur->fsync, "fsync")
    LATER(next->truncate_corrupt != cur->truncate_corrupt, "truncate_corrupt")
    LATER(engine_config_differs(srv->engine, next->engine), "the engine's settings")
#undef LIVE
#undef LATER
    pd_log(PD_LOG_INFO, "reload: %u settings changed, %u waiting for a restart", changed, waiting);
    pd_notify_reloaded(srv);
    return PD_OK;
}

pd_err pd_server_start(pd_server_t *srv, uv_loop_t *loop, const pd_server_config_t *cfg) {
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->metrics_bound_port = -1;
    pd_methods_init();
    msgpack_sbuffer_init(&srv->scratch);
    if (!msgpack_zone_init(&srv->zone, 65536)) return PD_ERR_NOMEM;
    srv->zone_ok = true;
    srv->mstats = pd_calloc(PD_MID__COUNT, sizeof(*srv->mstats));
    if (!srv->mstats) return PD_ERR_NOMEM;

    struct sockaddr_storage ss;
    bool loopback = false;
    if (resolve_host(cfg->host, cfg->port, &ss, &loopback) != PD_OK) {
        pd_log(PD_LOG_ERROR, "bad --host '%s': give an IPv4 or IPv6 address", cfg->host);
        return PD_ERR_BAD_ARG;
    }
    if (check_replication(cfg)) return PD_ERR_BAD_ARG;
    if (!loopback && !cfg->token) {
        pd_log(PD_LOG_ERROR,
               "refusing to listen on %s without --token: clients beyond this machine "
               "must authenticate",
               cfg->host);
        return PD_ERR_BAD_ARG;
    }

    /* main() read --config once, its [server] flags and these settings
     * together, so the two cannot come from two versions of the file */
    pd_engine_config_t ec;
    pd_engine_config_init(&ec);
    if (cfg->engine) ec = *cfg->engine;
    pd_err err = pd_engine_create(&ec, &srv->engine);
    if (err) {
        pd_log(PD_LOG_ERROR, "engine: %s", pd_strerror(err));
        return err;
    }
    pd_engine_set_event_cb(srv->engine, on_engine_event, srv);
    srv->started_ms = (uint64_t)pd_server_stamp(srv);
    srv->started_hr = uv_hrtime();

    /* Catch SIGTERM/SIGINT before recovery and --load-volunteers, which
     * can take seconds, and before "listening on" is printed (a script may
     * signal as soon as it reads that line). libuv queues the signal and
     * the loop handles it once it runs: the start finishes what it is
     * doing, then stops cleanly, with its final snapshot. */
    uv_signal_init(loop, &srv->sig_term);
    srv->sig_term.data = srv;
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uv_signal_init(loop, &srv->sig_int);
    srv->sig_int.data = srv;
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    uv_signal_init(loop, &srv->sig_hup); /* before recovery: SIGHUP would kill */
    srv->sig_hup.data = srv;
    uv_signal_start(&srv->sig_hup, on_hangup, SIGHUP);

    if (cfg->data_dir) {
        pd_notify_status("recovering from %s", cfg->data_dir);
        err = pd_persist_start(srv);
        if (err) return err;
    }
    if (cfg->replicate) {
        pd_notify_status("connecting to NATS at %s", cfg->replicate);
        err = pd_repl_primary_start(srv);
        if (err) {
            pd_repl_stop(srv); /* its handles close in the loop run that follows */
            return err;
        }
    }
    if (cfg->data_dir) {
        err = pd_persist_settle(srv, &ec);
        if (err) return err;
    }
    if (cfg->follow) {
        pd_notify_status("following stream %s on %s", cfg->stream ? cfg->stream : "paidan",
                         cfg->follow);
        err = pd_repl_follow_start(srv);
        if (err) {
            pd_repl_stop(srv); /* its handles close in the loop run that follows */
            return err;
        }
    }

    if (cfg->load_volunteers) {
#ifdef PD_HAVE_DATA
        pd_notify_status("loading volunteers from %s", cfg->load_volunteers);
        err = load_volunteers(srv, cfg->load_volunteers);
        if (err) return err;
        /* With a data directory, each volunteer loaded went to the journal;
         * a snapshot then keeps the journal short. */
        if (srv->persist && !pd_persist_commit(srv)) return PD_ERR_IO;
        err = pd_persist_snapshot_now(srv);
        if (err) return err;
#else
        pd_log(PD_LOG_ERROR, "--load-volunteers: this build has no CSV reader (data layer)");
        return PD_ERR_BAD_ARG;
#endif
    }

    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    char addr[96], maddr[96];
    err = pd_server_listen(srv, &srv->listener, cfg->host, cfg->port, on_connection, "--port",
                           &srv->bound_port, addr, sizeof addr);
    if (err) {
        uv_close((uv_handle_t *)&srv->listener, NULL);
        return err;
    }
    if (cfg->metrics_port >= 0) {
        err = pd_metrics_start(srv, maddr, sizeof maddr);
        if (err) {
            uv_close((uv_handle_t *)&srv->listener, NULL);
            return err;
        }
    }
    /* Only now: a script that reads "listening on" may count on the server
     * running, metrics port included. */
    pd_server_announce("listening on", addr);
    if (cfg->metrics_port >= 0) pd_server_announce("metrics on", maddr);

    uv_timer_init(loop, &srv->tick_timer);
    srv->tick_timer.data = srv;
    uv_timer_start(&srv->tick_timer, on_tick, cfg->tick_ms, cfg->tick_ms);
    uv_timer_init(loop, &srv->idle_timer);
    srv->idle_timer.data = srv;
    uv_timer_init(loop, &srv->rate_timer); /* started by conn.c when one is paused */
    srv->rate_timer.data = srv;
    uv_idle_init(loop, &srv->turn_idle); /* likewise */
    srv->turn_idle.data = srv;
    uv_idle_init(loop, &srv->busy_poll); /* started by reads, with --busy-poll-us */
    srv->busy_poll.data = srv;
    uv_idle_init(loop, &srv->tidy_idle); /* started by the tick when cells need sorting */
    srv->tidy_idle.data = srv;
    uv_idle_init(loop, &srv->huge_idle); /* started by the tick, with --huge-pages */
    srv->huge_idle.data = srv;
    srv->huge_wanted = true; /* a first pass over what was loaded or restored */
    start_idle_sweep(srv);
    uv_prepare_init(loop, &srv->stall_check);
    srv->stall_check.data = srv;
    uv_prepare_start(&srv->stall_check, on_prepare);
    uv_unref((uv_handle_t *)&srv->stall_check);
    pd_persist_attach(srv);
    /* The caps bound requests, not what recovery and --load-volunteers
     * brought back: a write taken once is replayed whatever they are now. */
    pd_engine_set_limits(srv->engine, (size_t)cfg->max_volunteers, (size_t)cfg->max_orders);
    size_t nv = pd_engine_volunteer_count(srv->engine),
           no = pd_engine_order_count(srv->engine, PD_ORDER__COUNT);
    if (cfg->max_volunteers && nv > cfg->max_volunteers)
        pd_log(PD_LOG_WARN,
               "%zu volunteers, past --max-volunteers %llu: no new ones until some "
               "are removed",
               nv, (unsigned long long)cfg->max_volunteers);
    if (cfg->max_orders && no > cfg->max_orders)
        pd_log(PD_LOG_WARN,
               "%zu orders kept, past --max-orders %llu: no new ones until closed "
               "orders are purged",
               no, (unsigned long long)cfg->max_orders);
    srv->running = true;
    pd_log(PD_LOG_INFO,
           "paidan-server %s ready: %zu volunteers, max %u connections, frames <= %zu bytes%s",
           PD_VERSION, pd_engine_volunteer_count(srv->engine), cfg->max_conns, cfg->max_frame,
           cfg->token ? ", auth required" : "");
    pd_notify_ready(srv);
    return PD_OK;
}

void pd_server_stop(pd_server_t *srv) {
    if (srv->stopping || !srv->running) return;
    srv->stopping = true;
    pd_notify_stopping(srv);
    pd_notify_close(srv);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    if (srv->metrics_on) pd_metrics_stop(srv);
    for (pd_conn_t *c = srv->conns; c; c = c->next) {
        pd_conn_flush(c);
        pd_conn_close(c, PD_OK, "server shutting down");
    }
    pd_import_stop(srv); /* what it read stays, and goes into the last snapshot */
    pd_persist_stop(srv);
    pd_repl_stop(srv); /* after the last commit: the stream gets every record */
    pd_persist_close_handles(srv);
    uv_close((uv_handle_t *)&srv->tick_timer, NULL);
    uv_close((uv_handle_t *)&srv->idle_timer, NULL);
    uv_close((uv_handle_t *)&srv->rate_timer, NULL);
    uv_close((uv_handle_t *)&srv->turn_idle, NULL);
    uv_close((uv_handle_t *)&srv->busy_poll, NULL);
    uv_close((uv_handle_t *)&srv->tidy_idle, NULL);
    uv_close((uv_handle_t *)&srv->huge_idle, NULL);
    uv_close((uv_handle_t *)&srv->stall_check, NULL);
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    /* Closing the handle gives SIGHUP back its default action, which ends
     * the process: one now (a reload racing the stop, logrotate) would
     * kill it before it has closed the journal and exited 0. There is
     * nothing left to reload: ignore it, with SIGHUP blocked meanwhile so
     * that none lands between the two (the journal's syncer thread blocks
     * every signal; setting SIG_IGN drops one pending). */
    sigset_t hup, old;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, &old);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    signal(SIGHUP, SIG_IGN);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void pd_server_deinit(pd_server_t *srv) {
    pd_repl_stop(srv); /* a start that failed half way */
    pd_persist_deinit(srv);
    pd_engine_destroy(srv->engine);
    srv->engine = NULL;
    if (srv->zone_ok) msgpack_zone_destroy(&srv->zone);
    srv->zone_ok = false;
    msgpack_sbuffer_destroy(&srv->scratch);
    pd_free(srv->events);
    pd_free(srv->scratch_mem);
    pd_free(srv->mstats);
    srv->events = NULL;
    srv->scratch_mem = NULL;
    srv->mstats = NULL;
}
