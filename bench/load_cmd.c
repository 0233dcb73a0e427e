/* load_cmd.c -- the command line of `paidan-bench load`: options, the
 * county set-up (generate or read, then volunteer.upsert into the server),
 * one run or a rate sweep, the report and the charts.
 *
 * The sweep finds the highest open-loop rate whose p99 stays under a
 * bound: a closed-loop run first measures what the server sustains (X),
 * then open-loop runs bisect [0, X] -- a rate passes when its p99 is under
 * the bound, it had no errors, and the server kept up (at least 95 % of
 * the offered rate was answered).
 *
 * With --replica HOST:PORT the run's target is a replicating primary and
 * replica.c watches a replica of it during the run: its lag, its catch-up
 * once the load ends, and the two digests (a difference fails the run).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "county.h"
#include "load.h"
#include "opt.h"
#include "plot.h"
#include "replica.h"

typedef struct load_cmd_s {
    pd__load_opts_t run;
    uint64_t volunteers;
    const char *csv;
    bool no_load;
    bool sweep;
    double p99_max_us;
    uint32_t sweep_steps;
    bool json;
    bool quiet;
    const char *plot_dir;
    char mix_text[256];
    char replica_host[256]; /* --replica: "" when not given */
    uint16_t replica_port;
    double replica_wait_s; /* --replica-wait */
} load_cmd_t;

static void load_usage(FILE *out) {
    fprintf(out,
            "usage: paidan-bench load [options]\n"
            "  -H, --host HOST        server address (default 127.0.0.1)\n"
            "  -p, --port PORT        server port (default 7411)\n"
            "  -a, --auth TOKEN       send `auth` with this token on every connection\n"
            "                         (default: $PAIDAN_TOKEN if set)\n"
            "  -c, --connections N    TCP connections (default 8)\n"
            "  -P, --pipeline N       requests in flight per connection (default 16)\n"
            "  -t, --threads N        event-loop threads (default 1)\n"
            "  -d, --duration SECS    measured time (default 10)\n"
            "  -N, --requests N       stop after N measured requests instead\n"
            "  -w, --warmup SECS      unmeasured time first (default 1)\n"
            "      --drain SECS       wait this long for replies after the end (default 2)\n"
            "  -R, --rate N           open loop: N requests/s in all (at most 10^9), latency\n"
            "                         from each request's intended send time (default 0 =\n"
            "                         closed loop)\n"
            "  -m, --mix SPEC         command mix, e.g. nearby:70,update:25,order:5\n"
            "                         (commands: ping nearby update get order; default\n"
            "                         nearby:70,update:25,order:5)\n"
            "  -n, --volunteers N     generated county size (default 100000, at most 10^8)\n"
            "  -s, --seed S           county and draw seed (default 1)\n"
            "      --csv FILE         take the county from a volunteers CSV instead\n"
            "      --no-load          do not upsert the county first (the server already\n"
            "                         has it, e.g. started with --load-volunteers)\n"
            "  -k, --k K              match.nearby k (default 10)\n"
            "      --policy NAME      match.nearby policy: nearest, balanced, rated\n"
            "                         (default: the server's)\n"
            "      --spin-us US       open loop: busy-wait the last US before each send\n"
            "                         instead of sleeping (precise pacing; costs CPU)\n"
            "      --busy-poll        never sleep: poll for replies instead of waiting to\n"
            "                         be woken (lowest latency; a core per thread)\n"
            "      --sweep            find the highest rate whose p99 stays under --p99-max-us\n"
            "      --p99-max-us US    the sweep's bound (default 1000)\n"
            "      --sweep-steps N    open-loop runs of the sweep (default 6, 1..20)\n"
            "      --json             one JSON object instead of the table\n"
            "      --plot DIR         write charts (gnuplot) and their data into DIR\n"
            "      --replica HOST:PORT  the target is a replicating primary (--replicate);\n"
            "                         watch this replica of it (--follow): its lag in\n"
            "                         records and ms during the run, its catch-up after\n"
            "                         it, then both digests at one seq (they must match)\n"
            "      --replica-wait SECS  how long the replica may take to catch up after\n"
            "                         the load (default 30)\n"
            "      --quiet            no progress on stderr\n"
            "  -h, --help             this text\n"
            "Exit status: 0 after a run; 1 when it could not be made (no server, auth\n"
            "refused, county unreadable), lost requests or connections, measured nothing,\n"
            "or --plot could not be written (error replies alone do not); with --replica\n"
            "also when the replica did not catch up in --replica-wait or its digest differs;\n"
            "2 on bad options.\n"
            "With -N the run gives up after --drain seconds without a reply.\n");
}

/* The highest open-loop rate taken: a thousand times what one generator
 * sends over loopback (about 10^6/s). Beyond it the schedule is a backlog
 * from the first microsecond and the run measures nothing but its own
 * queue. */
#define LOAD_MAX_RATE 1e9

/* The most volunteers a generated county may have (10^7 tested); far below
 * where n * sizeof overflows. */
#define LOAD_MAX_VOLUNTEERS 100000000ULL

enum {
    OPT_DRAIN = 256,
    OPT_CSV,
    OPT_NO_LOAD,
    OPT_SWEEP,
    OPT_P99,
    OPT_STEPS,
    OPT_JSON,
    OPT_PLOT,
    OPT_QUIET,
    OPT_SPIN,
    OPT_POLICY,
    OPT_BUSY_POLL,
    OPT_REPLICA,
    OPT_REPLICA_WAIT
};

/* --replica HOST:PORT ([V6]:PORT) into o; false (with the message) if bad. */
static bool parse_replica(const pd__opt_t *p, int ch, const char *arg, load_cmd_t *o) {
    const char *colon = strrchr(arg, ':');
    const char *h = arg;
    size_t hlen = colon ? (size_t)(colon - arg) : 0;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') h++, hlen -= 2;
    uint32_t port = 0;
    char *end = NULL;
    unsigned long v =
        colon && colon[1] >= '0' && colon[1] <= '9' ? strtoul(colon + 1, &end, 10) : 0;
    if (end && *end == '\0' && v >= 1 && v <= 65535) port = (uint32_t)v;
    if (!colon || hlen == 0 || hlen >= sizeof o->replica_host || !port) {
        pd__opt_bad(p, ch, arg, "HOST:PORT");
        return false;
    }
    memcpy(o->replica_host, h, hlen);
    o->replica_host[hlen] = '\0';
    o->replica_port = (uint16_t)port;
    return true;
}

/* One option's value into o; false (with the message printed) if bad. */
static bool parse_one(const pd__opt_t *p, int ch, const char *arg, load_cmd_t *o) {
    pd__load_opts_t *r = &o->run;
    uint32_t u = 0;
    switch (ch) {
        case 'p':
            if (!pd__opt_u32(p, ch, arg, 1, 65535, &u)) return false;
            r->port = (uint16_t)u;
            return true;
        case 'c':
            return pd__opt_u32(p, ch, arg, 1, 65535, &r->connections);
        case 'P':
            return pd__opt_u32(p, ch, arg, 1, 1u << 20, &r->pipeline);
        case 't':
            return pd__opt_u32(p, ch, arg, 1, 256, &r->threads);
        case 'd':
            return pd__opt_num(p, ch, arg, 0.001, 1e6, &r->duration_s);
        case 'N':
            return pd__opt_u64(p, ch, arg, 1, 1000000000000ULL, &r->requests);
        case 'w':
            return pd__opt_num(p, ch, arg, 0, 1e6, &r->warmup_s);
        case OPT_DRAIN:
            return pd__opt_num(p, ch, arg, 0, 1e6, &r->drain_s);
        case 'R':
            return pd__opt_num(p, ch, arg, 0, LOAD_MAX_RATE, &r->rate);
        case 'n':
            return pd__opt_u64(p, ch, arg, 1, LOAD_MAX_VOLUNTEERS, &o->volunteers);
        case 's':
            return pd__opt_u64(p, ch, arg, 0, UINT64_MAX, &r->seed);
        case 'k':
            return pd__opt_u32(p, ch, arg, 1, 1000, &r->k);
        case OPT_P99:
            return pd__opt_num(p, ch, arg, 1, 1e9, &o->p99_max_us);
        case OPT_STEPS:
            return pd__opt_u32(p, ch, arg, 1, 20, &o->sweep_steps);
        case OPT_SPIN:
            return pd__opt_num(p, ch, arg, 0, 1e6, &r->spin_us);
        case OPT_REPLICA:
            return parse_replica(p, ch, arg, o);
        case OPT_REPLICA_WAIT:
            return pd__opt_num(p, ch, arg, 0.001, 86400, &o->replica_wait_s);
        case OPT_POLICY:
            if (strcmp(arg, "nearest") && strcmp(arg, "balanced") && strcmp(arg, "rated")) {
                pd__opt_bad(p, ch, arg, "nearest, balanced, rated");
                return false;
            }
            r->policy = arg;
            return true;
        default:
            return false;
    }
}

static int parse_opts(int argc, char **argv, load_cmd_t *o) {
    static const struct option longs[] = {{"host", required_argument, 0, 'H'},
                                          {"port", required_argument, 0, 'p'},
                                          {"auth", required_argument, 0, 'a'},
                                          {"connections", required_argument, 0, 'c'},
                                          {"pipeline", required_argument, 0, 'P'},
                                          {"threads", required_argument, 0, 't'},
                                          {"duration", required_argument, 0, 'd'},
                                          {"requests", required_argument, 0, 'N'},
                                          {"warmup", required_argument, 0, 'w'},
                                          {"drain", required_argument, 0, OPT_DRAIN},
                                          {"rate", required_argument, 0, 'R'},
                                          {"mix", required_argument, 0, 'm'},
                                          {"volunteers", required_argument, 0, 'n'},
                                          {"seed", required_argument, 0, 's'},
                                          {"csv", required_argument, 0, OPT_CSV},
                                          {"no-load", no_argument, 0, OPT_NO_LOAD},
                                          {"k", required_argument, 0, 'k'},
                                          {"sweep", no_argument, 0, OPT_SWEEP},
                                          {"p99-max-us", required_argument, 0, OPT_P99},
                                          {"sweep-steps", required_argument, 0, OPT_STEPS},
                                          {"json", no_argument, 0, OPT_JSON},
                                          {"plot", required_argument, 0, OPT_PLOT},
                                          {"quiet", no_argument, 0, OPT_QUIET},
                                          {"spin-us", required_argument, 0, OPT_SPIN},
                                          {"busy-poll", no_argument, 0, OPT_BUSY_POLL},
                                          {"policy", required_argument, 0, OPT_POLICY},
                                          {"replica", required_argument, 0, OPT_REPLICA},
                                          {"replica-wait", required_argument, 0, OPT_REPLICA_WAIT},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const pd__opt_t p = {"load", "H:p:a:c:P:t:d:N:w:R:m:n:s:k:h", longs};
    pd__load_opts_init(&o->run);
    o->run.token = getenv("PAIDAN_TOKEN");
    if (o->run.token && !*o->run.token) o->run.token = NULL;
    o->volunteers = 100000;
    o->p99_max_us = 1000;
    o->sweep_steps = 6;
    o->replica_wait_s = 30;
    const char *mix = "nearby:70,update:25,order:5";
    pd__opt_begin(&p, argv);
    int ch;
    while ((ch = getopt_long(argc, argv, p.shorts, longs, NULL)) != -1) {
        switch (ch) {
            case 'H':
                o->run.host = optarg;
                break;
            case 'a':
                o->run.token = optarg;
                break;
            case 'm':
                mix = optarg;
                break;
            case OPT_CSV:
                o->csv = optarg;
                break;
            case OPT_NO_LOAD:
                o->no_load = true;
                break;
            case OPT_SWEEP:
                o->sweep = true;
                break;
            case OPT_JSON:
                o->json = true;
                break;
            case OPT_PLOT:
                o->plot_dir = optarg;
                break;
            case OPT_QUIET:
                o->quiet = true;
                break;
            case OPT_BUSY_POLL:
                o->run.busy_poll = true;
                break;
            case 'h':
                load_usage(stdout);
                exit(0);
            case '?':
            case ':':
                pd__opt_try_help(&p);
                return -1;
            default:
                if (!parse_one(&p, ch, optarg, o)) return -1;
                break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "paidan-bench load: unexpected argument '%s'\n", argv[optind]);
        pd__opt_try_help(&p);
        return -1;
    }
    char why[256];
    if (pd__mix_parse(mix, &o->run.mix, why, sizeof why)) {
        fprintf(stderr, "paidan-bench load: -m/--mix: %s\n", why);
        return -1;
    }
    pd__mix_to_string(&o->run.mix, o->mix_text, sizeof o->mix_text);
    o->run.progress = !o->quiet;
    if (o->replica_host[0] && o->sweep) {
        fprintf(stderr,
                "paidan-bench load: --replica watches one run; it does not go with --sweep\n");
        pd__opt_try_help(&p);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- report */

static const char *metric_note(pd__metric m, const load_cmd_t *o) {
    static char nearby[64];
    switch (m) {
        case PD__M_PING:
            return "bare round trip";
        case PD__M_NEARBY:
            snprintf(nearby, sizeof nearby, "%u nearest qualified: skills, window, budget",
                     o->run.k);
            return nearby;
        case PD__M_UPDATE:
            return "location ping, ~100 m hop";
        case PD__M_GET:
            return "one volunteer record";
        case PD__M_CREATE:
            return "create + dispatch";
        case PD__M_ACCEPT:
            return "accept by the volunteer offered";
        case PD__M_COMPLETE:
            return "complete: hours recorded";
        case PD__M_RATE:
            return "rate 1..5";
        case PD__M_ORDER:
            return "life cycle: create sent to rate answered";
        case PD__M_ALL:
            return o->run.rate > 0 ? "every request, from intended send time" : "every request";
        default:
            return "";
    }
}

static void add_params(pd__report_t *rep, const load_cmd_t *o) {
    pd__report_param_str(rep, "host", o->run.host);
    pd__report_param_num(rep, "port", o->run.port);
    pd__report_param_num(rep, "connections", o->run.connections);
    pd__report_param_num(rep, "pipeline", o->run.pipeline);
    pd__report_param_num(rep, "threads", o->run.threads);
    pd__report_param_str(rep, "loop", o->run.rate > 0 ? "open" : "closed");
    pd__report_param_num(rep, "rate", o->run.rate);
    pd__report_param_num(rep, "duration_s", o->run.requests ? 0 : o->run.duration_s);
    pd__report_param_num(rep, "requests", (double)o->run.requests);
    pd__report_param_num(rep, "warmup_s", o->run.warmup_s);
    pd__report_param_str(rep, "mix", o->mix_text);
    pd__report_param_num(rep, "k", o->run.k);
    if (o->run.policy) pd__report_param_str(rep, "policy", o->run.policy);
    if (o->run.spin_us > 0) pd__report_param_num(rep, "spin_us", o->run.spin_us);
    if (o->run.busy_poll) pd__report_param_num(rep, "busy_poll", 1);
    if (o->replica_host[0]) {
        char addr[300];
        snprintf(addr, sizeof addr, "%s:%u", o->replica_host, (unsigned)o->replica_port);
        pd__report_param_str(rep, "replica", addr);
    }
    pd__report_param_u64(rep, "seed", o->run.seed);
    if (o->csv)
        pd__report_param_str(rep, "county", o->csv);
    else
        pd__report_param_num(rep, "volunteers", (double)o->volunteers);
    pd__report_param_num(rep, "timer_overhead_ns", pd__bench_timer_overhead_ns());
}

/* A result row: latencies of the measured requests answered (whenever
 * the reply came), ops/s from `done`, the replies that came during the
 * measured phase of `secs`. */
static pd__result_t *add_row(pd__report_t *rep, const char *name, const char *note,
                             const pd_hist_t *h, uint64_t errors, uint64_t done, double secs) {
    pd__result_t *r = pd__report_add(rep, name, note);
    if (!r) return NULL;
    pd_hist_merge(r->hist, h);
    r->errors = errors;
    r->busy_ns = r->wall_ns = (uint64_t)(secs * 1e9);
    r->ops_given = true;
    r->ops = done;
    return r;
}

static void add_rows(pd__report_t *rep, const pd__load_out_t *out, const load_cmd_t *o) {
    for (int m = 0; m < PD__M__COUNT; m++) {
        if (m == PD__M_ALL) continue;
        if (!out->hist[m].count && !out->errors[m]) continue;
        add_row(rep, pd__metric_name((pd__metric)m), metric_note((pd__metric)m, o), &out->hist[m],
                out->errors[m], out->done[m], out->measured_s);
    }
    add_row(rep, "all", metric_note(PD__M_ALL, o), &out->hist[PD__M_ALL], out->errors[PD__M_ALL],
            out->done[PD__M_ALL], out->measured_s);
}

/* Replies per second to the mix's commands during the measured phase (the
 * open loop's "answered"). */
static double answered_per_s(const pd__load_out_t *out) {
    return out->measured_s > 0 ? (double)out->commands_done / out->measured_s : 0;
}

static void errors_json(const pd__load_out_t *out, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "{\"total\":%llu,\"by_code\":{",
                                  (unsigned long long)out->errors[PD__M_ALL]);
    bool first = true;
    for (unsigned k = 1; k < PD__LOAD_CODES && len < cap; k++) {
        if (!out->by_code[k]) continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\":%llu", first ? "" : ",",
                                pd__load_code_name(k), (unsigned long long)out->by_code[k]);
        first = false;
    }
    if (len < cap) snprintf(buf + len, cap - len, "}}");
}

static void add_extras(pd__report_t *rep, const pd__load_out_t *out, const load_cmd_t *o) {
    char buf[2048];
    errors_json(out, buf, sizeof buf);
    pd__report_extra(rep, "errors", buf);
    snprintf(buf, sizeof buf, "%u", out->conns_lost);
    pd__report_extra(rep, "connections_lost", buf);
    /* The percentiles are of the answered requests: a LOST one waited at
     * least until the end of the drain, so with any the tail is a floor. */
    pd__report_extra(rep, "latency_lower_bound", out->by_code[PD__LOAD_LOST] ? "true" : "false");
    if (o->run.rate > 0) {
        snprintf(buf, sizeof buf, "{\"offered_per_s\":%.1f,\"answered_per_s\":%.1f}", o->run.rate,
                 answered_per_s(out));
        pd__report_extra(rep, "open_loop", buf);
        snprintf(buf, sizeof buf, "{\"p50_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f}",
                 (double)pd_hist_percentile(&out->send_lag, 50) / 1000.0,
                 (double)pd_hist_percentile(&out->send_lag, 99) / 1000.0,
                 (double)out->send_lag.max / 1000.0);
        pd__report_extra(rep, "send_lag", buf);
    }
    if (o->run.mix.weight[PD__CMD_ORDER] > 0) {
        snprintf(buf, sizeof buf, "{\"completed\":%llu,\"expired\":%llu,\"unoffered\":%llu}",
                 (unsigned long long)out->orders_done, (unsigned long long)out->orders_expired,
                 (unsigned long long)out->orders_unoffered);
        pd__report_extra(rep, "orders", buf);
    }
    static char tl[40000];
    size_t len = 0;
    tl[len++] = '[';
    size_t n = out->n_secs < 300 ? out->n_secs : 300;
    for (size_t s = 0; s < n; s++) {
        const pd__load_sec_t *x = &out->secs[s];
        len += (size_t)snprintf(tl + len, sizeof tl - len,
                                "%s{\"t\":%zu,\"span_s\":%.3f,\"ops\":%llu,\"ops_per_s\":%.1f,"
                                "\"errors\":%llu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}",
                                s ? "," : "", s + 1, x->span_s, (unsigned long long)x->count,
                                x->span_s > 0 ? (double)x->count / x->span_s : 0,
                                (unsigned long long)x->errors, (double)x->p50_ns / 1000.0,
                                (double)x->p99_ns / 1000.0, (double)x->max_ns / 1000.0);
        if (len >= sizeof tl - 2) break;
    }
    if (len < sizeof tl - 1) {
        tl[len++] = ']';
        tl[len] = '\0';
        pd__report_extra(rep, "timeline", tl);
    }
}

static void print_summary(const pd__load_out_t *out, const load_cmd_t *o) {
    printf("errors: %llu", (unsigned long long)out->errors[PD__M_ALL]);
    for (unsigned k = 1; k < PD__LOAD_CODES; k++)
        if (out->by_code[k])
            printf("  %s %llu", pd__load_code_name(k), (unsigned long long)out->by_code[k]);
    if (out->conns_lost) printf("  (connections lost: %u)", out->conns_lost);
    printf("\n");
    if (out->by_code[PD__LOAD_LOST])
        printf(
            "latency: of the answered requests only; %llu got no reply, so the percentiles "
            "are lower bounds\n",
            (unsigned long long)out->by_code[PD__LOAD_LOST]);
    if (o->run.mix.weight[PD__CMD_ORDER] > 0)
        printf(
            "orders: %llu completed and rated, %llu expired (nobody qualified), "
            "%llu without a live offer\n",
            (unsigned long long)out->orders_done, (unsigned long long)out->orders_expired,
            (unsigned long long)out->orders_unoffered);
    if (o->run.rate > 0) {
        double got = answered_per_s(out);
        printf("open loop: offered %.0f req/s, answered %.0f req/s%s\n", o->run.rate, got,
               got < 0.95 * o->run.rate ? "  (the server did not keep up)" : "");
        if (out->send_lag.count == 0)
            printf("send lag: none of the requests due in the measured phase was sent\n");
        else
            printf(
                "send lag (actual - intended send time): p50 %.1f us, p99 %.1f us, max %.1f us\n",
                (double)pd_hist_percentile(&out->send_lag, 50) / 1000.0,
                (double)pd_hist_percentile(&out->send_lag, 99) / 1000.0,
                (double)out->send_lag.max / 1000.0);
    }
}

/* ----------------------------------------------------------------- plots */

/* The charts of one run; false (with a message) if they were not written. */
static bool plot_run(const load_cmd_t *o, const pd__load_out_t *out) {
    if (!pd__plot_begin(o->plot_dir)) return false;
    const pd_hist_t *hs[PD__M__COUNT];
    const char *names[PD__M__COUNT];
    size_t n = 0;
    hs[n] = &out->hist[PD__M_ALL];
    names[n++] = "all";
    for (int m = 0; m < PD__M__COUNT; m++) {
        if (m == PD__M_ALL || !out->hist[m].count) continue;
        hs[n] = &out->hist[m];
        names[n++] = pd__metric_name((pd__metric)m);
    }
    if (pd__plot_percentile_data(o->plot_dir, "load-percentiles.dat", hs, n)) return false;
    FILE *f = pd__plot_open(o->plot_dir, "load-timeline.dat");
    if (!f) return false;
    /* A last second the measured phase covered only part of plots its
     * rate (count / span), not its count as if it were a whole second. */
    fprintf(f, "# second  replies_per_s  errors  p50_us  p99_us  max_us\n");
    for (size_t s = 0; s < out->n_secs; s++)
        fprintf(f, "%zu %.1f %llu %.3f %.3f %.3f\n", s + 1,
                out->secs[s].span_s > 0 ? (double)out->secs[s].count / out->secs[s].span_s : 0,
                (unsigned long long)out->secs[s].errors, (double)out->secs[s].p50_ns / 1000.0,
                (double)out->secs[s].p99_ns / 1000.0, (double)out->secs[s].max_ns / 1000.0);
    if (fclose(f) != 0) return false;
    char body[8192];
    size_t len = (size_t)snprintf(body, sizeof body,
                                  "set output 'load-percentiles.'.ext\n"
                                  "set title 'paidan-bench load: latency by percentile (%s, %s "
                                  "loop)'\n%splot ",
                                  o->mix_text, o->run.rate > 0 ? "open" : "closed",
                                  pd__plot_percentile_axes());
    for (size_t i = 0; i < n && len < sizeof body; i++)
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "%s'load-percentiles.dat' using 2:%zu with linespoints title '%s'",
                                i ? ", " : "", i + 3, names[i]);
    snprintf(body + len, sizeof body - len,
             "\nunset logscale\nunset xtics\nset xtics\nset xrange [0.5:%zu.5]\n"
             "set output 'load-throughput.'.ext\n"
             "set title 'paidan-bench load: replies per second'\n"
             "set xlabel 'second of the measured phase'\nset ylabel 'replies/s'\n"
             "set yrange [0:*]\n"
             "plot 'load-timeline.dat' using 1:2 with linespoints title 'replies/s'\n"
             "set output 'load-p99.'.ext\n"
             "set title 'paidan-bench load: latency per second'\n"
             "set ylabel 'latency (us)'\n"
             "plot 'load-timeline.dat' using 1:5 with linespoints title 'p99', "
             "'load-timeline.dat' using 1:4 with linespoints title 'p50'\n",
             out->n_secs ? out->n_secs : 1);
    return pd__plot_run(o->plot_dir, "load", body, "load-percentiles,load-throughput,load-p99") ==
           PD_OK;
}

typedef struct probe_s {
    double rate; /* offered; 0 = the closed-loop run */
    double got;  /* answered per second */
    double p99_us;
    uint64_t errors;
    bool pass;
} probe_t;

/* The sweep's chart; false (with a message) if it was not written. */
static bool plot_sweep(const load_cmd_t *o, const probe_t *pr, size_t n) {
    if (!pd__plot_begin(o->plot_dir)) return false;
    FILE *f = pd__plot_open(o->plot_dir, "sweep.dat");
    if (!f) return false;
    fprintf(f, "# offered_per_s  answered_per_s  p99_us  pass\n");
    for (size_t i = 0; i < n; i++)
        if (pr[i].rate > 0)
            fprintf(f, "%.0f %.0f %.3f %d\n", pr[i].rate, pr[i].got, pr[i].p99_us, pr[i].pass);
    if (fclose(f) != 0) return false;
    char body[2048];
    snprintf(body, sizeof body,
             "set output 'sweep.'.ext\n"
             "set title 'paidan-bench load --sweep: p99 by offered rate (bound %.0f us)'\n"
             "set xlabel 'offered rate (requests/s)'\nset ylabel 'p99 (us)'\n"
             "set logscale y\n"
             "plot 'sweep.dat' using 1:3 with points pt 7 title 'p99', %.3f with lines "
             "title 'bound'\n",
             o->p99_max_us, o->p99_max_us);
    return pd__plot_run(o->plot_dir, "sweep", body, "sweep") == PD_OK;
}

/* ------------------------------------------------------------------- run */

/* Why a run's figures cannot be trusted, into why ("" if they can): lost
 * requests (no reply by the end of the drain), connections the server
 * closed, or no reply at all in the measured phase. */
static void run_verdict(const pd__load_out_t *out, char *why, size_t cap) {
    uint64_t lost = out->by_code[PD__LOAD_LOST];
    why[0] = '\0';
    if (lost && out->conns_lost)
        snprintf(why, cap, "%llu requests lost, %u connections closed by the server",
                 (unsigned long long)lost, out->conns_lost);
    else if (lost)
        snprintf(why, cap, "%llu requests lost: no reply by the end of the drain",
                 (unsigned long long)lost);
    else if (out->conns_lost)
        snprintf(why, cap, "%u connections closed by the server", out->conns_lost);
    else if (out->hist[PD__M_ALL].count == 0)
        snprintf(why, cap, "nothing was measured: no reply in the measured phase");
}

static int run_sweep(load_cmd_t *o, const pd__load_pool_t *pool) {
    probe_t pr[24];
    size_t np = 0;
    pd__report_t *rep = calloc(1, sizeof *rep);
    pd__load_out_t *out = malloc(sizeof *out);
    if (!rep || !out) {
        fprintf(stderr, "paidan-bench load: out of memory\n");
        free(rep);
        free(out);
        return 1;
    }
    pd__report_init(rep, "load", o->json);
    rep->wide = true;
    add_params(rep, o);
    pd__report_param_str(rep, "sweep", "p99");
    pd__report_param_num(rep, "p99_max_us", o->p99_max_us);
    char why[256] = "";
    pd__load_opts_t run = o->run;
    double best = 0, lo = 0, hi = 0, closed = 0;
    char ceiling_bad[160] = ""; /* why the closed-loop run measured no ceiling */
    int rc = 0;
    for (uint32_t step = 0; step <= o->sweep_steps; step++) {
        run.rate = step == 0 ? 0 : (lo > 0 ? (lo + hi) / 2 : (step == 1 ? 0.9 * hi : hi / 2));
        if (step > 0 && run.rate < 1) break;
        if (!o->quiet && step == 0) fprintf(stderr, "sweep: closed loop, to find the ceiling\n");
        if (!o->quiet && step > 0) fprintf(stderr, "sweep: open loop at %.0f req/s\n", run.rate);
        pd_err err = pd__load_run(&run, pool, out, why, sizeof why);
        if (err) {
            fprintf(stderr, "paidan-bench load: %s\n", why[0] ? why : pd_strerror(err));
            pd__load_out_deinit(out);
            rc = 1;
            break;
        }
        probe_t *p = &pr[np++];
        p->rate = run.rate;
        p->got = answered_per_s(out);
        p->p99_us = (double)pd_hist_percentile(&out->hist[PD__M_ALL], 99) / 1000.0;
        p->errors = out->errors[PD__M_ALL];
        char name[32], note[96];
        if (step == 0) {
            /* Open-loop steps may fail (finding where is the point), but a
             * ceiling measured with lost requests is not a ceiling. */
            run_verdict(out, ceiling_bad, sizeof ceiling_bad);
            closed = hi = p->got;
            p->pass = false;
            snprintf(name, sizeof name, "closed");
            snprintf(note, sizeof note, "closed loop: the ceiling");
        } else {
            p->pass = p->p99_us <= o->p99_max_us && p->errors == 0 && p->got >= 0.95 * run.rate;
            if (p->pass) {
                if (run.rate > best) best = run.rate;
                lo = run.rate;
            } else {
                hi = run.rate;
            }
            snprintf(name, sizeof name, "@%.0f", run.rate);
            snprintf(note, sizeof note, "open loop at %.0f/s: %s", run.rate,
                     p->pass ? "p99 under the bound" : "fails");
        }
        add_row(rep, name, note, &out->hist[PD__M_ALL], out->errors[PD__M_ALL],
                out->done[PD__M_ALL], out->measured_s);
        pd__load_out_deinit(out);
    }
    if (rc == 0) {
        char buf[4096];
        size_t len = (size_t)snprintf(buf, sizeof buf,
                                      "{\"p99_max_us\":%.3f,\"closed_loop_ops_per_s\":%.1f,"
                                      "\"best_rate\":%.1f,\"steps\":[",
                                      o->p99_max_us, closed, best);
        for (size_t i = 0; i < np && len < sizeof buf; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len,
                                    "%s{\"rate\":%.1f,\"ops_per_s\":%.1f,\"p99_us\":%.3f,"
                                    "\"errors\":%llu,\"pass\":%s}",
                                    i ? "," : "", pr[i].rate, pr[i].got, pr[i].p99_us,
                                    (unsigned long long)pr[i].errors,
                                    pr[i].rate > 0 && pr[i].pass ? "true" : "false");
        if (len < sizeof buf) snprintf(buf + len, sizeof buf - len, "]}");
        if (o->json) pd__report_extra(rep, "sweep", buf);
        pd__report_print(rep, stdout);
        if (!o->json)
            printf(
                "sweep: closed loop sustains %.0f req/s; highest open-loop rate with p99 <= "
                "%.0f us: %s%.0f req/s\n",
                closed, o->p99_max_us, best > 0 ? "" : "none found, below ",
                best > 0 ? best
                : lo > 0 ? lo
                         : hi);
        if (ceiling_bad[0]) {
            fprintf(stderr, "paidan-bench load: the closed-loop run of the sweep: %s\n",
                    ceiling_bad);
            rc = 1;
        }
        if (o->plot_dir && !plot_sweep(o, pr, np)) {
            fprintf(stderr, "paidan-bench load: the chart was not written to %s\n", o->plot_dir);
            rc = 1;
        }
    }
    pd__report_deinit(rep);
    free(rep);
    free(out);
    return rc;
}

static double tv_s(const struct timeval *tv) {
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* The server's own count of each method: calls and busy microseconds from
 * its `stats`, to tell the server's share of a round trip. */
#define SRV_METHODS 16
typedef struct srv_side_s {
    char name[40];
    double calls, usec, p50, p99;
} srv_side_t;

/* Read `stats` methods into out (up to SRV_METHODS); returns how many, 0
 * if the server could not be asked. */
static size_t server_side(const load_cmd_t *o, srv_side_t *out) {
    pd_client_t *cl = NULL;
    char why[128];
    if (pd__bench_connect(o->run.host, o->run.port, o->run.token, &cl, why, sizeof why)) return 0;
    /* The server's side is a bonus figure: a server that does not answer
     * (the reason a run lost its requests) must not hold the report up
     * for the client's default 30 s, twice. */
    pd_client_set_timeout(cl, 2000);
    pd_msg_t m;
    size_t n = 0;
    if (pd_client_call(cl, "stats", NULL, 0, &m) == PD_OK && m.code == 0) {
        const msgpack_object *ms = pd_client_map_get(&m.result, "methods");
        for (uint32_t i = 0;
             ms && ms->type == MSGPACK_OBJECT_MAP && i < ms->via.map.size && n < SRV_METHODS; i++) {
            const msgpack_object_kv *kv = &ms->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_MAP) continue;
            srv_side_t *x = &out[n++];
            memset(x, 0, sizeof *x);
            snprintf(x->name, sizeof x->name, "%.*s", (int)kv->key.via.str.size,
                     kv->key.via.str.ptr);
            const msgpack_object *v;
            if ((v = pd_client_map_get(&kv->val, "calls"))) x->calls = (double)v->via.u64;
            if ((v = pd_client_map_get(&kv->val, "usec")) && v->type == MSGPACK_OBJECT_FLOAT64)
                x->usec = v->via.f64;
            const msgpack_object *pc = pd_client_map_get(&kv->val, "latency_percentiles_usec");
            if (pc && (v = pd_client_map_get(pc, "p50")) && v->type == MSGPACK_OBJECT_FLOAT64)
                x->p50 = v->via.f64;
            if (pc && (v = pd_client_map_get(pc, "p99")) && v->type == MSGPACK_OBJECT_FLOAT64)
                x->p99 = v->via.f64;
        }
    }
    pd_client_destroy(cl);
    return n;
}

/* A time in µs with three significant digits or more (a p50 of 0.04 us
 * once printed as 0.0). */
static const char *us3(char *buf, size_t cap, double v) {
    if (v >= 100 || v <= 0)
        snprintf(buf, cap, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, cap, "%.1f", v);
    else if (v >= 1)
        snprintf(buf, cap, "%.2f", v);
    else
        snprintf(buf, cap, "%.3g", v);
    return buf;
}

/* The server's side of this run: per method, the calls and the mean time
 * of this run (from the counters before and after), and the percentiles
 * since the server started (its histograms are not reset). */
static void report_server_side(const load_cmd_t *o, pd__report_t *rep, const srv_side_t *a,
                               size_t na, const srv_side_t *b, size_t nb) {
    char buf[2048];
    size_t len = 0;
    len += (size_t)snprintf(buf + len, sizeof buf - len, "{");
    bool any = false;
    for (size_t j = 0; j < nb; j++) {
        double calls = b[j].calls, usec = b[j].usec;
        for (size_t i = 0; i < na; i++)
            if (strcmp(a[i].name, b[j].name) == 0) {
                calls -= a[i].calls;
                usec -= a[i].usec;
            }
        /* the generator's own calls: stats, config.get, --replica's digest */
        if (calls < 1 || strcmp(b[j].name, "stats") == 0 || strcmp(b[j].name, "config.get") == 0 ||
            strcmp(b[j].name, "digest") == 0)
            continue;
        if (o->json) {
            len += (size_t)snprintf(buf + len, sizeof buf - len,
                                    "%s\"%s\":{\"calls\":%.0f,\"us_per_call\":%.3f,"
                                    "\"p50_us_since_start\":%.3f,\"p99_us_since_start\":%.3f}",
                                    any ? "," : "", b[j].name, calls, usec / calls, b[j].p50,
                                    b[j].p99);
            if (len >= sizeof buf) len = sizeof buf - 1;
        } else {
            char t[3][32];
            printf(
                "server: %s %.0f calls, %s us per call in this run; since start p50 %s us, "
                "p99 %s us (its stats)\n",
                b[j].name, calls, us3(t[0], 32, usec / calls), us3(t[1], 32, b[j].p50),
                us3(t[2], 32, b[j].p99));
        }
        any = true;
    }
    if (o->json && len + 2 < sizeof buf) {
        buf[len++] = '}';
        buf[len] = '\0';
        pd__report_extra(rep, "server", buf);
    }
}

static int run_once(load_cmd_t *o, const pd__load_pool_t *pool) {
    pd__report_t *rep = calloc(1, sizeof *rep);
    pd__load_out_t *out = malloc(sizeof *out);
    if (!rep || !out) {
        fprintf(stderr, "paidan-bench load: out of memory\n");
        free(rep);
        free(out);
        return 1;
    }
    char why[256] = "";
    if (!o->quiet)
        fprintf(stderr, "load: %u connections x %u in flight, %s loop, %s\n", o->run.connections,
                o->run.pipeline, o->run.rate > 0 ? "open" : "closed", o->mix_text);
    srv_side_t before[SRV_METHODS], after[SRV_METHODS];
    size_t nbefore = server_side(o, before);
    pd__replica_t *rw = NULL;
    pd__replica_out_t rout;
    pd_err rerr = PD_OK;
    if (o->replica_host[0]) {
        rerr = pd__replica_create(o->run.host, o->run.port, o->replica_host, o->replica_port,
                                  o->run.token, &rw, why, sizeof why);
        if (!rerr) rerr = pd__replica_start(rw);
        if (rerr) {
            fprintf(stderr, "paidan-bench load: %s\n", why[0] ? why : pd_strerror(rerr));
            pd__replica_destroy(rw);
            free(out);
            free(rep);
            return 1;
        }
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t w0 = pd__bench_now_ns();
    pd_err err = pd__load_run(&o->run, pool, out, why, sizeof why);
    /* CPU over the time the run really took (warm-up, measured phase,
     * drain, connecting): over the nominal warm-up + duration a run that
     * overran showed more cores busy than the machine has. */
    double wall_s = (double)(pd__bench_now_ns() - w0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu_s =
        tv_s(&ru1.ru_utime) - tv_s(&ru0.ru_utime) + tv_s(&ru1.ru_stime) - tv_s(&ru0.ru_stime);
    double cores = wall_s > 0 ? cpu_s / wall_s : 0;
    if (rw) {
        uint64_t now = pd__bench_now_ns();
        uint64_t t_end = !err && out->t_last_reply_ns ? out->t_last_reply_ns : now;
        uint64_t t_meas = !err ? out->t_measure_ns : w0;
        pd__replica_stop(rw, t_meas, t_meas + (uint64_t)(out->measured_s * 1e9), t_end);
        if (!err) {
            if (!o->quiet) fprintf(stderr, "load: waiting for the replica to catch up\n");
            rerr = pd__replica_settle(rw, (int)(o->replica_wait_s * 1000), &rout);
        }
    }
    int rc = 0;
    if (err) {
        fprintf(stderr, "paidan-bench load: %s\n", why[0] ? why : pd_strerror(err));
        rc = 1;
    } else {
        pd__report_init(rep, "load", o->json);
        rep->wide = true;
        add_params(rep, o);
        add_rows(rep, out, o);
        /* What the generator itself cost: the proof it was not the bottleneck. */
        char cpu[256];
        snprintf(cpu, sizeof cpu,
                 "{\"cpu_s\":%.3f,\"cores_busy\":%.3f,\"us_per_request\":%.3f,\"wall_s\":%.3f,"
                 "\"replies\":%llu}",
                 cpu_s, cores, out->replies ? cpu_s * 1e6 / (double)out->replies : 0, wall_s,
                 (unsigned long long)out->replies);
        size_t nafter = server_side(o, after);
        if (o->json) {
            add_extras(rep, out, o);
            pd__report_extra(rep, "client", cpu);
            report_server_side(o, rep, before, nbefore, after, nafter);
            if (rw) {
                char rj[1024];
                pd__replica_json(rw, &rout, rj, sizeof rj);
                pd__report_extra(rep, "replica", rj);
            }
        }
        pd__report_print(rep, stdout);
        if (!o->json) report_server_side(o, rep, before, nbefore, after, nafter);
        if (!o->json) {
            print_summary(out, o);
            printf("client: %.2f s of CPU in %.2f s (%.2f cores busy over the run)\n", cpu_s,
                   wall_s, cores);
            if (rw) pd__replica_print(rw, &rout, stdout);
        }
        char bad[160];
        run_verdict(out, bad, sizeof bad);
        if (bad[0]) {
            fprintf(stderr, "paidan-bench load: %s\n", bad);
            rc = 1;
        }
        /* A replica that falls behind for good or holds another state is a
         * correctness failure, not a slow run. */
        if (rw && (rerr || rout.digest_match != 1)) {
            fprintf(stderr, "paidan-bench load: replica: %s\n",
                    rout.why[0] ? rout.why : pd_strerror(rerr));
            rc = 1;
        }
        if (o->plot_dir && !plot_run(o, out)) {
            fprintf(stderr, "paidan-bench load: the charts were not written to %s\n", o->plot_dir);
            rc = 1;
        }
        pd__report_deinit(rep);
    }
    pd__replica_destroy(rw);
    pd__load_out_deinit(out);
    free(out);
    free(rep);
    return rc;
}

int pd__bench_load(int argc, char **argv) {
    load_cmd_t o;
    memset(&o, 0, sizeof o);
    if (parse_opts(argc, argv, &o)) return 2;
    /* A --plot that cannot be written fails now, not after the run. */
    if (o.plot_dir && !pd__plot_begin(o.plot_dir)) return 1;
    bool ping_only = true;
    for (int c = 1; c < PD__CMD__COUNT; c++) ping_only &= !(o.run.mix.weight[c] > 0);

    pd__county_t county;
    memset(&county, 0, sizeof county);
    pd__names_t names;
    pd__names_from_generator(&names);
    pd__load_pool_t *pool = NULL;
    char why[512] = "";
    int rc = 0;
    if (!ping_only) {
        pd_err err;
        if (o.csv)
            err = pd__county_read_csv(&county, o.csv, 8192, o.run.seed, why, sizeof why);
        else
            err = pd__county_generate(&county, o.volunteers, 8192, o.run.seed);
        if (err && o.csv) {
            fprintf(stderr, "paidan-bench load: county: %s\n", why[0] ? why : pd_strerror(err));
            return 1;
        }
        if (err) {
            fprintf(stderr, "paidan-bench load: cannot generate a county of %llu volunteers: %s\n",
                    (unsigned long long)o.volunteers, pd_strerror(err));
            return 1;
        }
        pd_client_t *cl = NULL;
        err = pd__bench_connect(o.run.host, o.run.port, o.run.token, &cl, why, sizeof why);
        if (!err) err = pd__names_from_server(cl, &names, why, sizeof why);
        if (!err && !o.no_load) {
            if (!o.quiet)
                fprintf(stderr, "load: uploading %zu volunteers with volunteer.upsert\n", county.n);
            err = pd__county_upload(cl, &county, &names, !o.quiet, why, sizeof why);
        }
        pd_client_destroy(cl);
        if (err) {
            fprintf(stderr, "paidan-bench load: %s\n", why[0] ? why : pd_strerror(err));
            pd__county_deinit(&county);
            return 1;
        }
    }
    pd_err err = pd__load_pool_create(ping_only ? NULL : &county, &names, &o.run, &pool);
    if (err) {
        fprintf(stderr, "paidan-bench load: preparing requests: %s\n", pd_strerror(err));
        pd__county_deinit(&county);
        return 1;
    }
    rc = o.sweep ? run_sweep(&o, pool) : run_once(&o, pool);
    pd__load_pool_destroy(pool);
    pd__county_deinit(&county);
    return rc;
}
