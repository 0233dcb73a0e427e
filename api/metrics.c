/* metrics.c -- the Prometheus text endpoint: GET /metrics over plain HTTP.
 *
 * Off by default; --metrics-port turns it on, bound to the same host as
 * the RPC socket. The HTTP side is deliberately tiny: read until the blank
 * line that ends the request head (at most 4 KiB, at most
 * METRICS_MAX_CONNS scrapers at once, each closed after
 * METRICS_TIMEOUT_MS), answer once with "Connection: close" and close.
 * Anything but GET (or HEAD) /metrics gets 404. The body is the same data
 * as `stats`, in the Prometheus text exposition format 0.0.4; method
 * latency is both a summary with the 0.5, 0.99 and 0.999 quantiles since
 * the start (as `stats` has them) and a histogram, whose buckets
 * Prometheus can take quantiles of over a window.
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "methods.h"
#include "paidan/alloc.h"
#include "persist.h"
#include "replicate.h"

#define METRICS_MAX_CONNS 16
#define METRICS_REQ_MAX 4096
#define METRICS_TIMEOUT_MS 5000

typedef struct mconn_s {
    uv_tcp_t tcp;     /* the socket; tcp.data = this */
    uv_timer_t timer; /* closes a scraper that stalls */
    pd_server_t *srv;
    struct mconn_s *next;      /* srv's list, see g_mconns */
    char req[METRICS_REQ_MAX]; /* the request head so far */
    size_t len;
    char *resp; /* the response, freed on close */
    size_t resp_len;
    uv_write_t wreq;
    int handles; /* handles still open (tcp, timer) */
    bool closing;
} mconn_t;

/* One server per process, so the scraper list can be file-level. */
static mconn_t *g_mconns;
static unsigned g_n_mconns;

static void mconn_free(uv_handle_t *h) {
    mconn_t *m = h->data;
    if (--m->handles > 0) return;
    for (mconn_t **pp = &g_mconns; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    g_n_mconns--;
    free(m->resp);
    pd_free(m);
}

static void mconn_close(mconn_t *m) {
    if (m->closing) return;
    m->closing = true;
    uv_close((uv_handle_t *)&m->timer, mconn_free);
    uv_close((uv_handle_t *)&m->tcp, mconn_free);
}

static void on_timeout(uv_timer_t *t) {
    mconn_close(t->data);
}

static void on_written(uv_write_t *req, int status) {
    (void)status;
    mconn_close(req->data);
}

/* ----------------------------------------------------------- exposition */

static void counter(FILE *f, const char *name, const char *help, uint64_t v) {
    fprintf(f, "# HELP paidan_%s %s\n# TYPE paidan_%s counter\npaidan_%s %llu\n", name, help, name,
            name, (unsigned long long)v);
}

/* A counter that is not a whole number (seconds). */
static void counter_f(FILE *f, const char *name, const char *help, double v) {
    fprintf(f, "# HELP paidan_%s %s\n# TYPE paidan_%s counter\npaidan_%s %.17g\n", name, help, name,
            name, v);
}

static void gauge(FILE *f, const char *name, const char *help, double v) {
    fprintf(f, "# HELP paidan_%s %s\n# TYPE paidan_%s gauge\npaidan_%s %.17g\n", name, help, name,
            name, v);
}

/* The same latencies as a histogram. The summary's quantiles cover every
 * call since the start, so after a day of traffic a slow five minutes
 * hardly moves them; buckets let Prometheus take quantiles over a window
 * (histogram_quantile(0.99, rate(..._bucket[5m]))) and add them up across
 * servers. The bounds are 2^k - 1 ns, 255 ns to 8.6 s: every power of two
 * starts a bucket of the server's histogram, so the counts are exact. */
#define DURATION_EXP_LO 8
#define DURATION_EXP_HI 33

static void write_duration_histogram(FILE *f, pd_server_t *srv) {
    fprintf(f,
            "# HELP paidan_method_duration_seconds Handler latency per method, as a histogram.\n"
            "# TYPE paidan_method_duration_seconds histogram\n");
    uint64_t under[DURATION_EXP_HI - DURATION_EXP_LO + 1];
    for (int i = 0; i < PD_MID__COUNT; i++) {
        const pd_hist_t *h = &srv->mstats[i].lat;
        const char *name = pd_methods[i].name;
        if (!h->count) continue;
        pd_hist_count_under(h, DURATION_EXP_LO, DURATION_EXP_HI, under);
        for (unsigned e = DURATION_EXP_LO; e <= DURATION_EXP_HI; e++)
            fprintf(f, "paidan_method_duration_seconds_bucket{method=\"%s\",le=\"%.10g\"} %llu\n",
                    name, (double)(((uint64_t)1 << e) - 1) / 1e9,
                    (unsigned long long)under[e - DURATION_EXP_LO]);
        fprintf(f, "paidan_method_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n", name,
                (unsigned long long)h->count);
        fprintf(f, "paidan_method_duration_seconds_sum{method=\"%s\"} %.9f\n", name,
                (double)h->sum_ns / 1e9);
        fprintf(f, "paidan_method_duration_seconds_count{method=\"%s\"} %llu\n", name,
                (unsigned long long)h->count);
    }
}

/* Replication (replicate.c): the role, whether it works, how far behind
 * the stream is -- what an alert on a primary or a replica watches. */
static void write_replication(FILE *f, pd_server_t *srv) {
    pd_repl_figures_t r;
    pd_repl_figures(srv, &r);
    gauge(f, "replication_role", "0 none, 1 primary (--replicate), 2 replica (--follow).", r.role);
    if (!r.role) return;
    gauge(f, "replication_healthy", "1 while connected to NATS and replicating.", r.healthy);
    gauge(f, "replication_seq",
          "Primary: the last journal record committed. Replica: the last record applied.",
          (double)r.seq);
    if (r.role == 1)
        gauge(f, "replication_stream_seq", "Primary: the last record the stream acknowledged.",
              (double)r.stream_seq);
    counter(f, "replication_records_total",
            "Primary: records the stream acknowledged. Replica: records applied.", r.records);
    counter(f, "replication_errors_total",
            "Primary: chunks published again after an error. Replica: 1 once it stopped applying.",
            r.errors);
}

/* The persistence figures `stats` reports (persist.c), so that a full
 * data directory or failing snapshots can be alerted on. */
static void write_persistence(FILE *f, pd_server_t *srv) {
    pd_persist_figures_t p;
    bool on = pd_persist_figures(srv, &p);
    gauge(f, "persistence_enabled", "1 when the server keeps a journal (--data-dir).", on);
    if (!on) return;
    gauge(f, "persistence_read_only", "1 while the data directory is full and writes are refused.",
          p.read_only);
    counter(f, "persistence_writes_refused_total",
            "Writes refused because the data directory was full.", p.writes_refused);
    gauge(f, "journal_bytes", "Bytes of records in the current journal segment.",
          (double)p.journal_bytes);
    counter(f, "journal_records_total", "Journal records appended by this process.", p.records);
    counter(f, "journal_tick_records_total", "Tick records appended by this process.",
            p.tick_records);
    counter(f, "journal_commits_total", "Journal commits.", p.commits);
    counter(f, "journal_syncs_total", "Journal fdatasync calls.", p.syncs);
    gauge(f, "journal_sync_max_seconds", "The longest journal fdatasync.", p.sync_max_us * 1e-6);
    gauge(f, "snapshot_running", "1 while a snapshot is being written.", p.snapshot_running);
    counter(f, "snapshots_total", "Snapshots written.", p.snapshots);
    counter(f, "snapshot_failures_total", "Snapshots that failed.", p.snapshot_failures);
    gauge(f, "last_snapshot_duration_seconds", "How long the newest snapshot took.",
          p.last_snapshot_ms * 1e-3);
    gauge(f, "recovery_duration_seconds", "How long the recovery at start took.",
          p.recovery_ms * 1e-3);
    gauge(f, "journal_reserved_bytes", "Journal bytes allocated ahead and not yet used.",
          (double)p.reserved_room);
}

static void write_metrics(FILE *f, pd_server_t *srv) {
    const pd_server_counters_t *n = &srv->n;
    pd_engine_stats_t es;
    pd_engine_get_stats(srv->engine, &es);
    gauge(f, "uptime_seconds", "Seconds since the server started.",
          (double)(uv_hrtime() - srv->started_hr) / 1e9);
    gauge(f, "connections", "Open client connections.", srv->n_conns);
    uint64_t subs = 0;
    for (const pd_conn_t *c = srv->subscribers; c; c = c->sub_next) subs++;
    gauge(f, "subscribers", "Connections with an event subscription.", (double)subs);
    counter(f, "connections_accepted_total", "Client connections accepted.", n->conns_accepted);
    counter(f, "connections_rejected_total", "Connections refused at the connection limit.",
            n->conns_rejected);
    counter(f, "requests_total", "Requests executed.", n->requests);
    counter(f, "errors_total", "Error replies.", n->errors);
    counter(f, "bad_requests_total", "Frames that were not requests.", n->bad_requests);
    counter(f, "unknown_methods_total", "Requests for unknown methods.", n->unknown_methods);
    counter(f, "auth_failures_total", "Failed or missing authentications.", n->auth_failures);
    counter(f, "protocol_errors_total", "Connections closed for undecodable bytes.",
            n->protocol_errors);
    counter(f, "frames_too_large_total", "Connections closed for oversized frames.",
            n->frames_too_large);
    counter(f, "output_cutoffs_total", "Connections closed for unread output.", n->output_cutoffs);
    counter(f, "idle_closed_total", "Connections closed by the idle timeout.", n->idle_closed);
    counter(f, "rate_limited_total", "Times a connection was paused by the rate limit.",
            n->rate_limited);
    counter(f, "received_bytes_total", "Bytes read from clients.", n->bytes_in);
    counter(f, "sent_bytes_total", "Bytes written to clients.", n->bytes_out);
    counter(f, "notifications_total", "Notifications queued to subscribers.", n->notifications);
    counter(f, "ticks_total", "Engine ticks run.", n->ticks);
    counter(f, "offers_expired_total", "Offers expired by ticks.", n->offers_expired);
    counter(f, "cells_tidied_total", "Index cells sorted by the tidier.", n->cells_tidied);
    counter(f, "huge_page_passes_total", "Passes over the index asking for huge pages.",
            n->huge_passes);
    counter(f, "orders_purged_total", "Closed orders dropped by --order-retention.",
            n->orders_purged);
    counter(f, "loop_stalls_total", "Event loop iterations over the stall threshold.",
            n->loop_stalls);
    counter_f(f, "loop_idle_seconds_total", "Time the event loop spent waiting for events.",
              (double)uv_metrics_idle_time(srv->loop) / 1e9);
    gauge(f, "loop_max_stall_seconds", "The longest event loop iteration over the threshold.",
          (double)n->max_stall_us / 1e6);
    gauge(f, "memory_rss_bytes", "Resident set size.", (double)pd_stats_rss_bytes());
    gauge(f, "engine_memory_bytes", "Bytes held by the engine and its index.", (double)es.memory);
    gauge(f, "volunteers", "Volunteers in the engine.", (double)es.volunteers);
    gauge(f, "live_offers", "Outstanding offers.", (double)es.live_offers);
    counter(f, "offers_made_total", "Offers made since start.", es.offers_made);
    counter(f, "events_total", "Engine events emitted since start.", es.events);
    fprintf(f, "# HELP paidan_orders Kept orders by state.\n# TYPE paidan_orders gauge\n");
    for (int s = 0; s < PD_ORDER__COUNT; s++)
        fprintf(f, "paidan_orders{state=\"%s\"} %zu\n", pd_order_state_name((pd_order_state)s),
                es.orders_by_state[s]);

    fprintf(f,
            "# HELP paidan_method_calls_total Calls per method.\n"
            "# TYPE paidan_method_calls_total counter\n");
    for (int i = 0; i < PD_MID__COUNT; i++)
        fprintf(f, "paidan_method_calls_total{method=\"%s\"} %llu\n", pd_methods[i].name,
                (unsigned long long)srv->mstats[i].calls);
    fprintf(f,
            "# HELP paidan_method_errors_total Error replies per method.\n"
            "# TYPE paidan_method_errors_total counter\n");
    for (int i = 0; i < PD_MID__COUNT; i++)
        fprintf(f, "paidan_method_errors_total{method=\"%s\"} %llu\n", pd_methods[i].name,
                (unsigned long long)srv->mstats[i].errors);
    fprintf(f,
            "# HELP paidan_method_latency_seconds Handler latency per method.\n"
            "# TYPE paidan_method_latency_seconds summary\n");
    static const double qs[] = {50, 99, 99.9};
    static const char *const qn[] = {"0.5", "0.99", "0.999"};
    for (int i = 0; i < PD_MID__COUNT; i++) {
        const pd_hist_t *h = &srv->mstats[i].lat;
        if (!h->count) continue;
        for (int q = 0; q < 3; q++)
            fprintf(f, "paidan_method_latency_seconds{method=\"%s\",quantile=\"%s\"} %.9f\n",
                    pd_methods[i].name, qn[q], (double)pd_hist_percentile(h, qs[q]) / 1e9);
        fprintf(f, "paidan_method_latency_seconds_sum{method=\"%s\"} %.9f\n", pd_methods[i].name,
                (double)h->sum_ns / 1e9);
        fprintf(f, "paidan_method_latency_seconds_count{method=\"%s\"} %llu\n", pd_methods[i].name,
                (unsigned long long)h->count);
    }
    write_duration_histogram(f, srv);
    write_persistence(f, srv);
    write_replication(f, srv);
}

/* Answer the request head in m->req; bad, when set, is the status of a
 * head that cannot be served (a NUL byte in it, or over the limit). */
static void respond(mconn_t *m, const char *bad) {
    pd_server_t *srv = m->srv;
    char *body = NULL;
    size_t body_len = 0;
    FILE *bf = open_memstream(&body, &body_len);
    const char *status = "200 OK";
    const char *ctype = "text/plain; version=0.0.4; charset=utf-8";
    /* HEAD is GET without the body (RFC 9110 9.3.2): probes and load
     * balancers use it to ask whether the endpoint is up. */
    bool head = !bad && strncmp(m->req, "HEAD ", 5) == 0;
    const char *path = bad                               ? ""
                       : head                            ? m->req + 5
                       : strncmp(m->req, "GET ", 4) == 0 ? m->req + 4
                                                         : "";
    bool found = strncmp(path, "/metrics ", 9) == 0 || strncmp(path, "/metrics?", 9) == 0;
    if (!bf) {
        mconn_close(m);
        return;
    }
    if (found) {
        if (!head) srv->n.metrics_scrapes++;
        write_metrics(bf, srv);
    } else if (bad) {
        status = bad;
        ctype = "text/plain; charset=utf-8";
        fprintf(bf, "%s\n", bad);
    } else {
        status = "404 Not Found";
        ctype = "text/plain; charset=utf-8";
        fputs("only GET /metrics (and HEAD) is served here\n", bf);
    }
    fclose(bf);
    FILE *rf = open_memstream(&m->resp, &m->resp_len);
    if (!rf) {
        free(body);
        mconn_close(m);
        return;
    }
    fprintf(rf,
            "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            status, ctype, body_len);
    if (!head) fwrite(body, 1, body_len, rf);
    fclose(rf);
    free(body);
    uv_read_stop((uv_stream_t *)&m->tcp);
    uv_buf_t b = uv_buf_init(m->resp, (unsigned)m->resp_len);
    m->wreq.data = m;
    if (uv_write(&m->wreq, (uv_stream_t *)&m->tcp, &b, 1, on_written) != 0) mconn_close(m);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    mconn_t *m = h->data;
    *buf = uv_buf_init(m->req + m->len, (unsigned)(sizeof(m->req) - 1 - m->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    mconn_t *m = st->data;
    if (nread < 0) {
        mconn_close(m);
        return;
    }
    /* A NUL byte would hide the end of the head from strstr; no request
     * that has one is served, so say so at once rather than at the
     * timeout. */
    bool nul = memchr(m->req + m->len, '\0', (size_t)nread) != NULL;
    m->len += (size_t)nread;
    m->req[m->len] = '\0';
    if (nul)
        respond(m, "400 Bad Request");
    else if (strstr(m->req, "\r\n\r\n") || strstr(m->req, "\n\n"))
        respond(m, NULL);
    else if (m->len >= sizeof(m->req) - 1)
        respond(m, "431 Request Header Fields Too Large");
}

static void on_connection(uv_stream_t *server, int status) {
    pd_server_t *srv = server->data;
    if (status < 0) return;
    mconn_t *m = pd_calloc(1, sizeof(*m));
    if (!m) return;
    m->srv = srv;
    uv_tcp_init(srv->loop, &m->tcp);
    uv_timer_init(srv->loop, &m->timer);
    m->tcp.data = m;
    m->timer.data = m;
    m->handles = 2;
    m->next = g_mconns;
    g_mconns = m;
    g_n_mconns++;
    if (uv_accept(server, (uv_stream_t *)&m->tcp) != 0 || g_n_mconns > METRICS_MAX_CONNS ||
        uv_read_start((uv_stream_t *)&m->tcp, on_alloc, on_read) != 0) {
        mconn_close(m);
        return;
    }
    uv_timer_start(&m->timer, on_timeout, METRICS_TIMEOUT_MS, 0);
}

pd_err pd_metrics_start(pd_server_t *srv, char *addr, size_t cap) {
    uv_tcp_init(srv->loop, &srv->metrics);
    srv->metrics.data = srv;
    pd_err err =
        pd_server_listen(srv, &srv->metrics, srv->cfg.host, srv->cfg.metrics_port, on_connection,
                         "--metrics-port", &srv->metrics_bound_port, addr, cap);
    if (err) {
        uv_close((uv_handle_t *)&srv->metrics, NULL);
        return err;
    }
    srv->metrics_on = true;
    return PD_OK;
}

void pd_metrics_stop(pd_server_t *srv) {
    if (!srv->metrics_on) return;
    srv->metrics_on = false;
    uv_close((uv_handle_t *)&srv->metrics, NULL);
    for (mconn_t *m = g_mconns; m; m = m->next) mconn_close(m);
}
