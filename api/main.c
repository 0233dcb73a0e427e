/* main.c -- paidan-server's command line: parse flags, run the loop, exit.
 *
 * Exit status: 0 after a clean stop (SIGTERM/SIGINT), 1 when start-up
 * fails (bad config, port in use, token missing beyond loopback, a data
 * directory locked or corrupt) or the journal fails while serving, 2 on a
 * usage error. docs/operations-server.md documents every flag.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "paidan/alloc.h"
#include "server.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: paidan-server [options]\n"
            "\n"
            "  --host ADDR            address to bind (default 127.0.0.1; beyond loopback\n"
            "                         requires --token)\n"
            "  --port N               port (default %d; 0 = chosen by the OS)\n"
            "  --config FILE          engine configuration (INI)\n"
            "  --token TOKEN          shared secret clients send with `auth`\n"
            "                         (or set PAIDAN_TOKEN in the environment)\n"
            "  --max-frame SIZE       largest request frame (default 1M)\n"
            "  --max-conns N          simultaneous connections (default 10000)\n"
            "  --max-output SIZE      unsent reply bytes per connection before it is\n"
            "                         cut off (default 64M)\n"
            "  --idle-timeout SECS    close connections silent this long (default 0 = never)\n"
            "  --max-rps N            frames per second per connection; a connection over\n"
            "                         it is paused, not read (default 0 = no limit)\n"
            "  --metrics-port N       serve Prometheus text on GET /metrics (default off;\n"
            "                         0 = chosen by the OS)\n"
            "  --tick-ms N            engine tick period (default 200)\n"
            "  --stall-ms N           log event-loop iterations busier than this\n"
            "                         (default 100, 0 = off)\n"
            "  --busy-poll-us N       after a read, poll instead of sleeping for N\n"
            "                         microseconds: lower latency for a core's worth of\n"
            "                         CPU while requests keep coming (default 0 = off)\n"
            "  --huge-pages           back the index with huge pages once it settles:\n"
            "                         a shorter query tail for ~20%% more memory (off)\n"
            "  --order-retention DAYS drop closed orders this many days after they\n"
            "                         closed (or were rated), journaled like an\n"
            "                         order.purge (default 0 = keep every order)\n"
            "  --load-volunteers CSV  load volunteers from a CSV file at start\n"
            "  --data-dir DIR         keep a journal and snapshots in DIR (created if\n"
            "                         missing; one server per directory); recover from\n"
            "                         it at start. Without it nothing is kept on disk\n"
            "  --fsync POLICY         always, everysec (default) or no: when the journal\n"
            "                         reaches the disk (docs/operations.md)\n"
            "  --snapshot-bytes SIZE  snapshot when the journal grows past SIZE\n"
            "                         (default 256m; 0 = only on request and at stop)\n"
            "  --truncate-corrupt     start even if the journal is corrupt in the middle,\n"
            "                         cutting it there (what follows is lost)\n"
            "  --log-level LEVEL      debug, info, warn or error (default info)\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n"
            "\n"
            "SIZE takes a k, m or g suffix (powers of 1024). Once bound, the server prints\n"
            "\"listening on HOST:PORT\" on stdout.\n",
            PD_SERVER_DEFAULT_PORT);
}

/* An integer with an optional k/m/g suffix. */
static int parse_size(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-') return -1;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift) end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end != '\0') return -1;
    if (v > (max >> shift)) return -1;
    v <<= shift;
    if (v < min) return -1;
    *out = v;
    return 0;
}

/* A plain integer: a count, a port or a time, where a size suffix would
 * only hide a typo. */
static int parse_count(const char *s, unsigned long long min, unsigned long long max,
                       unsigned long long *out) {
    if (strpbrk(s, "kKmMgGbB")) return -1;
    return parse_size(s, min, max, out);
}

/* A plain decimal ("1.5", "2e3"): strtod alone also takes "0x10", "inf"
 * and leading blanks. */
static bool plain_decimal(const char *s) {
    return *s && strspn(s, "0123456789.eE+-") == strlen(s);
}

static int bad_value(const char *flag, const char *value, const char *expect) {
    fprintf(stderr, "paidan-server: bad value '%s' for %s: expected %s\n", value, flag, expect);
    return 2;
}

/* Make sure the descriptor limit can hold max_conns; lower max_conns if not. */
static void fit_fd_limit(pd_server_config_t *cfg) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = (rlim_t)cfg->max_conns + 64;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        uint32_t fit = rl.rlim_cur > 128 ? (uint32_t)(rl.rlim_cur - 64) : 64;
        pd_log(PD_LOG_WARN, "open file limit %llu: lowering --max-conns from %u to %u",
               (unsigned long long)rl.rlim_cur, cfg->max_conns, fit);
        cfg->max_conns = fit;
    }
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_CONFIG,
    OPT_TOKEN,
    OPT_MAX_FRAME,
    OPT_MAX_CONNS,
    OPT_MAX_OUTPUT,
    OPT_IDLE,
    OPT_MAX_RPS,
    OPT_METRICS,
    OPT_TICK,
    OPT_STALL,
    OPT_BUSY_POLL,
    OPT_HUGE,
    OPT_RETENTION,
    OPT_LOAD,
    OPT_DATA_DIR,
    OPT_FSYNC,
    OPT_SNAPSHOT_BYTES,
    OPT_TRUNCATE_CORRUPT,
    OPT_LOG,
    OPT_HELP,
    OPT_VERSION
};

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"max-rps", required_argument, NULL, OPT_MAX_RPS},
        {"metrics-port", required_argument, NULL, OPT_METRICS},
        {"tick-ms", required_argument, NULL, OPT_TICK},
        {"stall-ms", required_argument, NULL, OPT_STALL},
        {"busy-poll-us", required_argument, NULL, OPT_BUSY_POLL},
        {"huge-pages", no_argument, NULL, OPT_HUGE},
        {"order-retention", required_argument, NULL, OPT_RETENTION},
        {"load-volunteers", required_argument, NULL, OPT_LOAD},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"fsync", required_argument, NULL, OPT_FSYNC},
        {"snapshot-bytes", required_argument, NULL, OPT_SNAPSHOT_BYTES},
        {"truncate-corrupt", no_argument, NULL, OPT_TRUNCATE_CORRUPT},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    pd_server_config_t cfg;
    pd_server_config_init(&cfg);
    const char *env_token = getenv("PAIDAN_TOKEN");
    if (env_token && *env_token) cfg.token = env_token;

    int ch;
    while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        if (ch == 'h') ch = OPT_HELP;
        if (ch == 'V') ch = OPT_VERSION;
        unsigned long long v;
        switch (ch) {
            case OPT_HOST:
                cfg.host = optarg;
                break;
            case OPT_PORT:
                if (parse_count(optarg, 0, 65535, &v))
                    return bad_value("--port", optarg, "0..65535");
                cfg.port = (int)v;
                break;
            case OPT_CONFIG:
                cfg.config_path = optarg;
                break;
            case OPT_TOKEN:
                if (!*optarg) return bad_value("--token", optarg, "a non-empty token");
                cfg.token = optarg;
                break;
            case OPT_MAX_FRAME:
                if (parse_size(optarg, 64, 1ull << 30, &v))
                    return bad_value("--max-frame", optarg, "a size of 64 bytes..1g");
                cfg.max_frame = (size_t)v;
                break;
            case OPT_MAX_CONNS:
                if (parse_count(optarg, 1, 1000000, &v))
                    return bad_value("--max-conns", optarg, "1..1000000");
                cfg.max_conns = (uint32_t)v;
                break;
            case OPT_MAX_OUTPUT:
                if (parse_size(optarg, 1024, 1ull << 40, &v))
                    return bad_value("--max-output", optarg, "a size 1k..1024g");
                cfg.max_output = (size_t)v;
                break;
            case OPT_IDLE: {
                char *end;
                double secs = strtod(optarg, &end);
                /* under a millisecond would round to 0, which means never */
                if (!plain_decimal(optarg) || *end || end == optarg || !(secs >= 0) || secs > 1e7 ||
                    (secs > 0 && secs < 0.001))
                    return bad_value("--idle-timeout", optarg, "seconds, 0.001..1e7, 0 = never");
                cfg.idle_timeout_ms = (uint64_t)(secs * 1000.0 + 0.5);
                break;
            }
            case OPT_MAX_RPS:
                if (parse_count(optarg, 0, 100000000, &v))
                    return bad_value("--max-rps", optarg, "0..100000000, 0 = no limit");
                cfg.max_rps = (uint32_t)v;
                break;
            case OPT_METRICS:
                if (parse_count(optarg, 0, 65535, &v))
                    return bad_value("--metrics-port", optarg, "0..65535");
                cfg.metrics_port = (int)v;
                break;
            case OPT_TICK:
                if (parse_count(optarg, 1, 60000, &v))
                    return bad_value("--tick-ms", optarg, "1..60000");
                cfg.tick_ms = (uint32_t)v;
                break;
            case OPT_STALL:
                if (parse_count(optarg, 0, 3600000, &v))
                    return bad_value("--stall-ms", optarg, "0..3600000");
                cfg.stall_ms = (uint32_t)v;
                break;
            case OPT_BUSY_POLL:
                if (parse_count(optarg, 0, 1000000, &v))
                    return bad_value("--busy-poll-us", optarg, "0..1000000");
                cfg.busy_poll_us = (uint32_t)v;
                break;
            case OPT_HUGE:
                cfg.huge_pages = true;
                break;
            case OPT_RETENTION: {
                char *end;
                double days = strtod(optarg, &end);
                /* a positive retention under a second would purge every
                 * closed order at once (it rounds to 0 ms), the opposite
                 * of what 0 means */
                if (!plain_decimal(optarg) || *end || end == optarg || !(days >= 0) ||
                    days > 36500 || (days > 0 && days * 86400.0 < 1))
                    return bad_value("--order-retention", optarg,
                                     "days 0..36500, 0 = keep every order, else at least 1 s "
                                     "(0.0000116)");
                cfg.order_retention_days = days;
                break;
            }
            case OPT_LOAD:
                cfg.load_volunteers = optarg;
                break;
            case OPT_DATA_DIR:
                if (!*optarg) return bad_value("--data-dir", optarg, "a directory");
                cfg.data_dir = optarg;
                break;
            case OPT_FSYNC:
                if (pd_fsync_policy_from_name(optarg, &cfg.fsync))
                    return bad_value("--fsync", optarg, "always, everysec or no");
                break;
            case OPT_SNAPSHOT_BYTES:
                if (parse_size(optarg, 0, 1ull << 50, &v))
                    return bad_value("--snapshot-bytes", optarg, "a size, 0 = never");
                cfg.snapshot_bytes = v;
                break;
            case OPT_TRUNCATE_CORRUPT:
                cfg.truncate_corrupt = true;
                break;
            case OPT_LOG: {
                pd_log_level lv;
                if (pd_log_level_from_name(optarg, &lv))
                    return bad_value("--log-level", optarg, "debug, info, warn or error");
                pd_log_set_level(lv);
                break;
            }
            case OPT_HELP:
                usage(stdout);
                return 0;
            case OPT_VERSION:
                printf("paidan-server %s\n", PD_VERSION);
                return 0;
            default:
                /* getopt said what was wrong; the whole usage would bury it */
                fprintf(stderr, "try 'paidan-server --help'\n");
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "paidan-server: unexpected argument '%s'\ntry 'paidan-server --help'\n",
                argv[optind]);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    fit_fd_limit(&cfg);

    uv_loop_t *loop = uv_default_loop();
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    pd_server_t *srv = pd_calloc(1, sizeof(*srv));
    if (!srv) {
        pd_log(PD_LOG_ERROR, "out of memory");
        return 1;
    }
    pd_err err = pd_server_start(srv, loop, &cfg);
    if (err) {
        uv_run(loop, UV_RUN_NOWAIT);
        pd_server_deinit(srv);
        uv_loop_close(loop);
        pd_free(srv);
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    bool fatal = srv->fatal;
    pd_server_deinit(srv);
    if (uv_loop_close(loop) != 0) pd_log(PD_LOG_WARN, "handles still open at exit");
    pd_free(srv);
    pd_log(fatal ? PD_LOG_ERROR : PD_LOG_INFO, fatal ? "stopped on an error" : "stopped");
    return fatal ? 1 : 0;
}
