/* test_metrics.c -- the /metrics endpoint as Prometheus reads it.
 *
 * Each test starts paidan-server with --metrics-port 0, makes calls over
 * the protocol and scrapes over plain HTTP. The exposition is checked the
 * way promtool and the Prometheus parser would: every sample belongs to a
 * family with one HELP and one TYPE line before it, no series twice,
 * counters end in _total, a summary's quantiles are ordered, a
 * histogram's buckets are cumulative with +Inf equal to _count. The
 * numbers are checked against the calls made and against `stats`.
 */
#define _GNU_SOURCE /* nftw */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helper.h"

static srv_t msrv;
static char page[1 << 18];

static void start_metrics(void) {
    static const char *const args[] = {"--metrics-port", "0", NULL};
    srv_start(&msrv, args);
    cr_assert_gt(msrv.metrics_port, 0);
}

static void stop_metrics(void) {
    srv_stop(&msrv);
}

/* Send req and read the answer until the server closes; returns its length. */
static size_t http(int port, const char *req, char *buf, size_t cap) {
    return tcp_exchange(port, req, strlen(req), buf, cap);
}

/* GET /metrics; returns the body (in page), asserting a 200. */
static const char *scrape(void) {
    http(msrv.metrics_port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", page, sizeof(page));
    cr_assert(strncmp(page, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.80s", page);
    const char *body = strstr(page, "\r\n\r\n");
    cr_assert(body);
    return body + 4;
}

/* The value of the sample named exactly `series` (name and labels), or NAN. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ') return strtod(l + n + 1, NULL);
    return NAN;
}

/* ----------------------------------------------------- exposition check */

#define MAX_FAMILIES 256
#define MAX_SERIES 4096

typedef struct family_s {
    char name[96];
    char type[16];
    int helps, types;
} family_t;

static family_t *find_family(family_t *fs, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(fs[i].name) == len && strncmp(fs[i].name, name, len) == 0) return &fs[i];
    return NULL;
}

static bool has_suffix(const char *name, size_t len, const char *suf) {
    size_t s = strlen(suf);
    return len > s && strncmp(name + len - s, suf, s) == 0;
}

/* The family a sample belongs to: its name, or for a summary or a
 * histogram its name without _sum, _count or _bucket. */
static family_t *family_of(family_t *fs, int n, const char *name, size_t len) {
    static const char *const sufs[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        if (!has_suffix(name, len, sufs[i])) continue;
        family_t *f = find_family(fs, n, name, len - strlen(sufs[i]));
        if (f && (strcmp(f->type, "summary") == 0 || strcmp(f->type, "histogram") == 0)) return f;
    }
    return find_family(fs, n, name, len);
}

/* Check the text format, line by line; returns the number of samples. */
static int check_exposition(const char *text) {
    static family_t fs[MAX_FAMILIES];
    static char series[MAX_SERIES][160];
    int nf = 0, ns = 0;
    const family_t *current = NULL;
    memset(fs, 0, sizeof(fs));
    for (const char *l = text; *l;) {
        const char *end = strchr(l, '\n');
        cr_assert(end, "the text ends with a newline");
        size_t len = (size_t)(end - l);
        if (strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0) {
            const char *name = l + 7, *sp = memchr(name, ' ', (size_t)(end - name));
            cr_assert(sp, "%.*s", (int)len, l);
            family_t *f = find_family(fs, nf, name, (size_t)(sp - name));
            if (!f) {
                cr_assert_lt(nf, MAX_FAMILIES);
                f = &fs[nf++];
                cr_assert_lt((size_t)(sp - name), sizeof(f->name));
                memcpy(f->name, name, (size_t)(sp - name));
            }
            if (l[2] == 'H') {
                f->helps++;
            } else {
                f->types++;
                snprintf(f->type, sizeof(f->type), "%.*s", (int)(end - sp - 1), sp + 1);
                cr_assert(strcmp(f->type, "counter") == 0 || strcmp(f->type, "gauge") == 0 ||
                              strcmp(f->type, "summary") == 0 || strcmp(f->type, "histogram") == 0,
                          "%.*s", (int)len, l);
                bool total = has_suffix(f->name, strlen(f->name), "_total");
                cr_assert_eq(total, strcmp(f->type, "counter") == 0,
                             "a counter, and only a counter, ends in _total: %.*s", (int)len, l);
            }
            cr_assert(f->helps <= 1 && f->types <= 1, "HELP or TYPE twice: %.*s", (int)len, l);
            current = f;
        } else {
            cr_assert_neq(*l, '#', "%.*s", (int)len, l);
            size_t name_len = strcspn(l, "{ ");
            const family_t *f = family_of(fs, nf, l, name_len);
            cr_assert(f && f->types == 1, "sample before its TYPE: %.*s", (int)len, l);
            cr_assert_eq(f, current, "a family's samples are together: %.*s", (int)len, l);
            const char *sp = memrchr(l, ' ', len);
            cr_assert(sp);
            char *vend;
            double v = strtod(sp + 1, &vend);
            cr_assert_eq(vend, end, "value: %.*s", (int)len, l);
            cr_assert(v >= 0, "%.*s", (int)len, l);
            cr_assert_lt(ns, MAX_SERIES);
            cr_assert_lt((size_t)(sp - l), sizeof(series[0]));
            snprintf(series[ns], sizeof(series[0]), "%.*s", (int)(sp - l), l);
            for (int i = 0; i < ns; i++)
                cr_assert_str_neq(series[i], series[ns], "series twice: %s", series[ns]);
            ns++;
        }
        l = end + 1;
    }
    for (int i = 0; i < nf; i++)
        cr_assert(fs[i].helps == 1 && fs[i].types == 1, "%s: HELP and TYPE", fs[i].name);
    return ns;
}

/* ------------------------------------------------------------------ tests */

static void make_calls(pd_client_t *c) {
    for (int i = 0; i < 40; i++) call_ok(c, "ping", "");
    for (int i = 0; i < 7; i++) call_ok(c, "match.nearby", "{\"lat\":30.6,\"lon\":114.3}");
    for (int i = 0; i < 3; i++) call_err(c, "volunteer.get", "{\"id\":12345}", PD_ERR_NOT_FOUND);
    call_err(c, "no.such.method", "", PD_ERR_UNKNOWN_METHOD);
}

Test(metrics, exposition_is_well_formed, .init = start_metrics, .fini = stop_metrics,
     .timeout = 30) {
    check_exposition(scrape()); /* a fresh server */
    pd_client_t *c = srv_connect(&msrv);
    make_calls(c);
    const char *text = scrape();
    int n = check_exposition(text);
    cr_assert_gt(n, 50);
    pd_client_destroy(c);
}

/* The latency of each method called is a summary (quantiles since the
 * start) and a histogram (buckets Prometheus can rate over a window), and
 * the two agree with each other and with the calls made. */
Test(metrics, latency_summary_and_histogram_agree, .init = start_metrics, .fini = stop_metrics,
     .timeout = 30) {
    pd_client_t *c = srv_connect(&msrv);
    make_calls(c);
    const char *text = scrape();
    static const char *const methods[] = {"ping", "match.nearby", "volunteer.get"};
    static const double calls[] = {40, 7, 3};
    char key[160];
    for (int m = 0; m < 3; m++) {
        const char *mn = methods[m];
        snprintf(key, sizeof(key), "paidan_method_calls_total{method=\"%s\"}", mn);
        cr_assert_eq(sample(text, key), calls[m], "%s", key);
        snprintf(key, sizeof(key), "paidan_method_latency_seconds_count{method=\"%s\"}", mn);
        cr_assert_eq(sample(text, key), calls[m], "%s", key);
        snprintf(key, sizeof(key), "paidan_method_duration_seconds_count{method=\"%s\"}", mn);
        cr_assert_eq(sample(text, key), calls[m], "%s", key);
        snprintf(key, sizeof(key), "paidan_method_duration_seconds_sum{method=\"%s\"}", mn);
        double hsum = sample(text, key);
        snprintf(key, sizeof(key), "paidan_method_latency_seconds_sum{method=\"%s\"}", mn);
        cr_assert_eq(hsum, sample(text, key), "%s", key);

        double q[3];
        static const char *const qn[] = {"0.5", "0.99", "0.999"};
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key),
                     "paidan_method_latency_seconds{method=\"%s\",quantile=\"%s\"}", mn, qn[i]);
            q[i] = sample(text, key);
            cr_assert(q[i] > 0, "%s", key);
        }
        cr_assert(q[0] <= q[1] && q[1] <= q[2], "%s: quantiles out of order", mn);

        /* Buckets: ascending bounds, cumulative counts, +Inf = _count; the
         * median lies in the first bucket holding half the calls. */
        snprintf(key, sizeof(key), "paidan_method_duration_seconds_bucket{method=\"%s\",le=\"", mn);
        size_t kl = strlen(key);
        double prev_le = 0, prev_n = 0, inf = NAN, median_le = NAN;
        int buckets = 0;
        for (const char *l = strstr(text, key); l; l = strstr(l + 1, key)) {
            const char *le = l + kl;
            double n = strtod(strchr(le, ' ') + 1, NULL);
            cr_assert_geq(n, prev_n, "%s: buckets not cumulative at %.20s", mn, le);
            prev_n = n;
            if (strncmp(le, "+Inf\"", 5) == 0) {
                inf = n;
                continue;
            }
            double b = strtod(le, NULL);
            cr_assert_gt(b, prev_le, "%s: bounds not ascending at %.20s", mn, le);
            prev_le = b;
            buckets++;
            if (isnan(median_le) && n >= calls[m] / 2) median_le = b;
        }
        cr_assert_gt(buckets, 10, "%s: histogram buckets", mn);
        cr_assert_eq(inf, calls[m], "%s: +Inf bucket", mn);
        cr_assert(!isnan(median_le), "%s: no bucket holds half the calls", mn);
        cr_assert(q[0] <= median_le, "%s: p50 %g above the bucket bound %g", mn, q[0], median_le);
    }
    pd_client_destroy(c);
}

/* Counters go up by what happened, never down, and say what `stats` says. */
Test(metrics, counters_match_calls_and_stats, .init = start_metrics, .fini = stop_metrics,
     .timeout = 30) {
    pd_client_t *c = srv_connect(&msrv);
    const char *t1 = scrape();
    double req1 = sample(t1, "paidan_requests_total");
    double err1 = sample(t1, "paidan_errors_total");
    double unk1 = sample(t1, "paidan_unknown_methods_total");
    make_calls(c);
    const char *t2 = scrape();
    cr_assert_eq(sample(t2, "paidan_requests_total") - req1, 51);
    cr_assert_eq(sample(t2, "paidan_errors_total") - err1, 4);
    cr_assert_eq(sample(t2, "paidan_unknown_methods_total") - unk1, 1);
    cr_assert_eq(sample(t2, "paidan_method_errors_total{method=\"volunteer.get\"}"), 3);
    cr_assert_eq(sample(t2, "paidan_connections"), 1);
    cr_assert_eq(sample(t2, "paidan_connections_accepted_total"),
                 (double)stat_of(&msrv, "connections", "accepted") - 1);
    /* stat_of opened (and closed) a connection of its own. */
    cr_assert_eq(sample(scrape(), "paidan_requests_total"),
                 (double)stat_of(&msrv, "counters", "requests") - 1);
    pd_client_destroy(c);
}

/* The connections and subscribers gauges come down when clients leave. */
Test(metrics, gauges_follow_disconnects, .init = start_metrics, .fini = stop_metrics,
     .timeout = 30) {
    pd_client_t *c = srv_connect(&msrv);
    pd_client_t *s = srv_connect(&msrv);
    call_ok(s, "subscribe", "{\"events\":[\"*\"]}");
    const char *text = scrape();
    cr_assert_eq(sample(text, "paidan_connections"), 2);
    cr_assert_eq(sample(text, "paidan_subscribers"), 1);
    pd_client_destroy(s);
    /* The server sees the close when it next reads; a ping over the other
     * connection is answered after that read, or soon after. */
    long long deadline = now_ms() + 5000;
    do {
        call_ok(c, "ping", "");
        text = scrape();
    } while (sample(text, "paidan_subscribers") != 0 && now_ms() < deadline);
    cr_assert_eq(sample(text, "paidan_subscribers"), 0);
    cr_assert_eq(sample(text, "paidan_connections"), 1);
    pd_client_destroy(c);
}

/* HEAD gets the headers of GET (its Content-Length) and no body; other
 * paths and methods a 404. */
Test(metrics, head_and_other_requests, .init = start_metrics, .fini = stop_metrics, .timeout = 30) {
    static char head[4096];
    size_t n =
        http(msrv.metrics_port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", head, sizeof(head));
    cr_assert(strncmp(head, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.80s", head);
    cr_assert(strstr(head, "Content-Length: "));
    const char *end = strstr(head, "\r\n\r\n");
    cr_assert(end);
    cr_assert_eq((size_t)(end + 4 - head), n, "HEAD got a body");
    cr_assert_gt(strtoul(strstr(head, "Content-Length: ") + 16, NULL, 10), 1000);

    http(msrv.metrics_port, "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", page, sizeof(page));
    cr_assert(strncmp(page, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.80s", page);
    static const char *const others[] = {
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "GET /metricsx HTTP/1.1\r\n\r\n",
        "HEAD / HTTP/1.1\r\n\r\n", "get /metrics HTTP/1.1\r\n\r\n"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        http(msrv.metrics_port, others[i], page, sizeof(page));
        cr_assert(strncmp(page, "HTTP/1.1 404", 12) == 0, "%s: %.80s", others[i], page);
    }
    /* Only the GETs counted as scrapes. */
    pd_client_t *c = srv_connect(&msrv);
    pd_msg_t m = call_ok(c, "stats", "");
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "counters"), "metrics_scrapes"), 1);
    pd_client_destroy(c);
}

/* ------------------------------------------------------------ --data-dir */

static char data_dir[] = "/tmp/pd_metrics_testXXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void start_durable(void) {
    cr_assert(mkdtemp(data_dir));
    const char *const args[] = {"--metrics-port", "0", "--data-dir", data_dir, NULL};
    srv_start(&msrv, args);
}

static void stop_durable(void) {
    srv_stop(&msrv);
    nftw(data_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* With --data-dir the journal and snapshots are there to alert on (a full
 * data directory refuses writes; failing snapshots), and they agree with
 * stats -> persistence. */
Test(metrics, persistence_with_data_dir, .init = start_durable, .fini = stop_durable,
     .timeout = 60) {
    pd_client_t *c = srv_connect(&msrv);
    const char *text = scrape();
    cr_assert_eq(sample(text, "paidan_persistence_enabled"), 1);
    cr_assert_eq(sample(text, "paidan_persistence_read_only"), 0);
    double snaps = sample(text, "paidan_snapshots_total");
    cr_assert(snaps >= 0);
    for (int i = 0; i < 5; i++)
        call_ok(c, "volunteer.upsert",
                "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"mode\":\"walk\"}");
    call_ok(c, "snapshot", "{\"wait\":true}");
    text = scrape();
    check_exposition(text);
    cr_assert_eq(sample(text, "paidan_snapshots_total"), snaps + 1);
    cr_assert_eq(sample(text, "paidan_snapshot_failures_total"), 0);
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *p = pd_client_map_get(&m.result, "persistence");
    cr_assert(p);
    cr_assert_eq(sample(text, "paidan_journal_records_total"), (double)map_int(p, "records"));
    cr_assert_geq(sample(text, "paidan_journal_records_total"), 5);
    cr_assert_eq(sample(text, "paidan_journal_commits_total"), (double)map_int(p, "commits"));
    cr_assert_eq(sample(text, "paidan_snapshots_total"), (double)map_int(p, "snapshots"));
    cr_assert_lt(fabs(sample(text, "paidan_last_snapshot_duration_seconds") -
                      map_num(p, "last_snapshot_ms") / 1e3),
                 1e-9);
    pd_client_destroy(c);
}

Test(metrics, persistence_off_without_data_dir, .init = start_metrics, .fini = stop_metrics,
     .timeout = 30) {
    const char *text = scrape();
    cr_assert_eq(sample(text, "paidan_persistence_enabled"), 0);
    cr_assert(isnan(sample(text, "paidan_journal_records_total")));
}
