/* main.c -- paidan-server's command line: parse flags, run the loop, exit.
 *
 * Exit status: 0 after a clean stop (SIGTERM/SIGINT), 1 when start-up
 * fails (bad config, port in use, token missing beyond loopback, a data
 * directory locked or corrupt) or the journal fails while serving, 2 on a
 * usage error. docs/operations-server.md documents every flag.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paidan/alloc.h"
#include "replicate.h"
#include "server.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: paidan-server [options]\n"
            "\n"
            "  --host ADDR            address to bind (default 127.0.0.1; beyond loopback\n"
            "                         requires --token)\n"
            "  --port N               port (default %d; 0 = chosen by the OS)\n"
            "  --config FILE          configuration (INI): the engine's settings, and any\n"
            "                         of these flags under [server] (max_conns = 100);\n"
            "                         a flag given here wins over the file\n"
            "  --token TOKEN          shared secret clients send with `auth`\n"
            "                         (or set PAIDAN_TOKEN in the environment)\n"
            "  --max-frame SIZE       largest request frame (default 1M)\n"
            "  --max-conns N          simultaneous connections (default 10000)\n"
            "  --max-output SIZE      unsent reply bytes per connection before it is\n"
            "                         cut off (default 64M)\n"
            "  --idle-timeout SECS    close connections silent this long (default 0 = never)\n"
            "  --max-rps N            frames per second per connection; a connection over\n"
            "                         it is paused, not read (default 0 = no limit)\n"
            "  --max-volunteers N     refuse new volunteers (LIMIT) past N kept, to bound\n"
            "                         memory (default 0 = no cap)\n"
            "  --max-orders N         refuse new orders past N kept, closed ones included\n"
            "                         until purged (default 0 = no cap)\n"
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
            "  --replicate URL        publish the journal to a NATS JetStream stream\n"
            "                         (nats://host:port); needs --data-dir\n"
            "  --follow URL           be a read-only replica of the stream on that NATS\n"
            "                         server: apply its records as they come, answer\n"
            "                         reads, refuse writes (READ_ONLY)\n"
            "  --stream NAME          the stream's name (default paidan)\n"
            "  --follow-snapshot FILE a replica's starting state: a copy of the primary's\n"
            "                         snap-*.pds; the stream is read from the record after\n"
            "  --log-level LEVEL      debug, info, warn or error (default info)\n"
            "  --check-config         check the settings (flags, --config, PAIDAN_TOKEN)\n"
            "                         and the paths they name, print the settings in\n"
            "                         effect as a [server] section, and exit: 0 if the\n"
            "                         server would start with them, 1 if not\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n"
            "\n"
            "SIZE takes a k, m or g suffix (powers of 1024). A switch takes an optional\n"
            "=true or =false (--huge-pages=false undoes huge_pages = true in --config).\n"
            "Once bound, the server prints \"listening on HOST:PORT\" on stdout.\n"
            "SIGTERM or SIGINT stops it cleanly; SIGHUP reads the settings again\n"
            "(docs/operations-server.md).\n",
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

/* A boolean word of the config file: true/false, yes/no, on/off, 1/0. */
static int parse_switch(const char *s, bool *out) {
    static const char *const words[][2] = {
        {"true", "false"}, {"yes", "no"}, {"on", "off"}, {"1", "0"}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        for (int j = 0; j < 2; j++) {
            if (strcasecmp(s, words[i][j]) == 0) {
                *out = j == 0;
                return 0;
            }
        }
    }
    return -1;
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
    OPT_MAX_VOLUNTEERS,
    OPT_MAX_ORDERS,
    OPT_REPLICATE,
    OPT_FOLLOW,
    OPT_STREAM,
    OPT_FOLLOW_SNAPSHOT,
    OPT_CHECK,
    OPT_HELP,
    OPT_VERSION
};

/* The flags, by long name; the [server] section of --config takes the
 * same names with '_' for '-' (host, max_conns, ...). */
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
    /* switches take an optional =false, to undo a true in the file */
    {"huge-pages", optional_argument, NULL, OPT_HUGE},
    {"order-retention", required_argument, NULL, OPT_RETENTION},
    {"load-volunteers", required_argument, NULL, OPT_LOAD},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"snapshot-bytes", required_argument, NULL, OPT_SNAPSHOT_BYTES},
    {"truncate-corrupt", optional_argument, NULL, OPT_TRUNCATE_CORRUPT},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"max-volunteers", required_argument, NULL, OPT_MAX_VOLUNTEERS},
    {"max-orders", required_argument, NULL, OPT_MAX_ORDERS},
    {"replicate", required_argument, NULL, OPT_REPLICATE},
    {"follow", required_argument, NULL, OPT_FOLLOW},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"follow-snapshot", required_argument, NULL, OPT_FOLLOW_SNAPSHOT},
    {"check-config", no_argument, NULL, OPT_CHECK},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0}};

/* Everything the settings are made of, read together (read_settings):
 * the [server] and engine sections of --config, PAIDAN_TOKEN, the flags.
 * The settings point into file_values, so a settings_t is kept while
 * the server points into it (prune_settings): after a reload (SIGHUP)
 * an older one may still hold its host or data_dir, a newer one only
 * its token. The rest go at exit. */
typedef struct settings_s {
    pd_server_config_t cfg;
    pd_engine_config_t ecfg; /* cfg.engine points here with --config */
    pd_log_level log_level;
    const char *config; /* --config, or NULL */
    bool check_only;    /* --check-config */
    char *file_values[OPT_VERSION + 1];
    struct settings_s *older;
} settings_t;

/*
 * Apply one setting, from the command line or the config file. v is the
 * value (for a switch: NULL for a bare flag on the command line, else a
 * boolean word, from the file or after '='). Strings are kept by
 * pointer: v must outlive the server.
 * @return NULL, or what the setting accepts when v is not that.
 */
static const char *apply_opt(settings_t *st, int opt, const char *v) {
    pd_server_config_t *cfg = &st->cfg;
    unsigned long long n;
    switch (opt) {
        case OPT_HOST:
            if (!*v) return "an address";
            cfg->host = v;
            return NULL;
        case OPT_PORT:
            if (parse_count(v, 0, 65535, &n)) return "0..65535";
            cfg->port = (int)n;
            return NULL;
        case OPT_CONFIG:
            cfg->config_path = v;
            return NULL;
        case OPT_TOKEN:
            if (!*v) return "a non-empty token";
            cfg->token = v;
            return NULL;
        case OPT_MAX_FRAME:
            if (parse_size(v, 64, 1ull << 30, &n)) return "a size of 64 bytes..1g";
            cfg->max_frame = (size_t)n;
            return NULL;
        case OPT_MAX_CONNS:
            if (parse_count(v, 1, 1000000, &n)) return "1..1000000";
            cfg->max_conns = (uint32_t)n;
            return NULL;
        case OPT_MAX_OUTPUT:
            if (parse_size(v, 1024, 1ull << 40, &n)) return "a size 1k..1024g";
            cfg->max_output = (size_t)n;
            return NULL;
        case OPT_IDLE: {
            char *end;
            double secs = strtod(v, &end);
            /* under a millisecond would round to 0, which means never */
            if (!plain_decimal(v) || *end || end == v || !(secs >= 0) || secs > 1e7 ||
                (secs > 0 && secs < 0.001))
                return "seconds, 0.001..1e7, 0 = never";
            cfg->idle_timeout_ms = (uint64_t)(secs * 1000.0 + 0.5);
            return NULL;
        }
        case OPT_MAX_RPS:
            if (parse_count(v, 0, 100000000, &n)) return "0..100000000, 0 = no limit";
            cfg->max_rps = (uint32_t)n;
            return NULL;
        case OPT_METRICS:
            if (parse_count(v, 0, 65535, &n)) return "0..65535";
            cfg->metrics_port = (int)n;
            return NULL;
        case OPT_TICK:
            if (parse_count(v, 1, 60000, &n)) return "1..60000";
            cfg->tick_ms = (uint32_t)n;
            return NULL;
        case OPT_STALL:
            if (parse_count(v, 0, 3600000, &n)) return "0..3600000";
            cfg->stall_ms = (uint32_t)n;
            return NULL;
        case OPT_BUSY_POLL:
            if (parse_count(v, 0, 1000000, &n)) return "0..1000000";
            cfg->busy_poll_us = (uint32_t)n;
            return NULL;
        case OPT_HUGE:
        case OPT_TRUNCATE_CORRUPT: {
            bool on = true;
            if (v && parse_switch(v, &on)) return "true or false (also yes/no, on/off, 1/0)";
            if (opt == OPT_HUGE)
                cfg->huge_pages = on;
            else
                cfg->truncate_corrupt = on;
            return NULL;
        }
        case OPT_RETENTION: {
            char *end;
            double days = strtod(v, &end);
            /* a positive retention under a second would purge every
             * closed order at once (it rounds to 0 ms), the opposite
             * of what 0 means */
            if (!plain_decimal(v) || *end || end == v || !(days >= 0) || days > 36500 ||
                (days > 0 && days * 86400.0 < 1))
                return "days 0..36500, 0 = keep every order, else at least 1 s (0.0000116)";
            cfg->order_retention_days = days;
            return NULL;
        }
        case OPT_LOAD:
            if (!*v) return "a CSV file";
            cfg->load_volunteers = v;
            return NULL;
        case OPT_DATA_DIR:
            if (!*v) return "a directory";
            cfg->data_dir = v;
            return NULL;
        case OPT_FSYNC:
            if (pd_fsync_policy_from_name(v, &cfg->fsync)) return "always, everysec or no";
            return NULL;
        case OPT_SNAPSHOT_BYTES:
            if (parse_size(v, 0, 1ull << 50, &n)) return "a size, 0 = never";
            cfg->snapshot_bytes = n;
            return NULL;
        case OPT_MAX_VOLUNTEERS:
        case OPT_MAX_ORDERS:
            /* the id maps top out at about 1.6e9 entries */
            if (parse_count(v, 0, 1000000000, &n)) return "0..1000000000, 0 = no cap";
            if (opt == OPT_MAX_VOLUNTEERS)
                cfg->max_volunteers = n;
            else
                cfg->max_orders = n;
            return NULL;
        case OPT_REPLICATE:
        case OPT_FOLLOW:
            if (!*v || strchr(v, ' ')) return "a NATS URL (nats://host:port, several with ',')";
            if (opt == OPT_REPLICATE)
                cfg->replicate = v;
            else
                cfg->follow = v;
            return NULL;
        case OPT_STREAM:
            if (!pd_repl_stream_name_ok(v)) return "a stream name: 1-64 of A-Z a-z 0-9 _ -";
            cfg->stream = v;
            return NULL;
        case OPT_FOLLOW_SNAPSHOT:
            if (!*v) return "a snapshot file";
            cfg->follow_snapshot = v;
            return NULL;
        case OPT_LOG:
            if (pd_log_level_from_name(v, &st->log_level)) return "debug, info, warn or error";
            return NULL;
        default:
            return "nothing: not a setting";
    }
}

/* A key of the [server] section of --config; its value is kept in
 * st->file_values, one per setting. */
static int on_server_key(void *ud, const char *key, const char *value, const char **expect) {
    settings_t *st = ud;
    char flag[32];
    size_t n = strlen(key);
    if (n >= sizeof flag) return 0;
    for (size_t i = 0; i <= n; i++) flag[i] = key[i] == '_' ? '-' : key[i];
    for (const struct option *o = opts; o->name; o++) {
        /* config, help and version make no sense inside the file; a
         * key with '-' is not the file's spelling */
        if (strcmp(o->name, flag) != 0 || strchr(key, '-') || o->val == OPT_CONFIG ||
            o->val == OPT_CHECK || o->val == OPT_HELP || o->val == OPT_VERSION)
            continue;
        char *copy = strdup(value);
        if (!copy) return 0;
        const char *bad = apply_opt(st, o->val, copy);
        if (bad) {
            free(copy);
            *expect = bad;
            return 0;
        }
        free(st->file_values[o->val]);
        st->file_values[o->val] = copy;
        return 1;
    }
    return 0;
}

/* The --config file given on the command line, if any: found before the
 * flags are applied, so that flags override the file. NULL as well when
 * --help or --version is asked for: those answer whatever the file holds,
 * even when it is missing or broken. */
static const char *find_config(int argc, char **argv) {
    const char *path = NULL;
    bool info = false;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        if (ch == OPT_CONFIG) path = optarg;
        if (ch == 'h' || ch == 'V' || ch == OPT_HELP || ch == OPT_VERSION) info = true;
    }
    if (info) path = NULL;
    opterr = 1;
    optind = 0; /* glibc: start the next getopt_long afresh */
    return path;
}

/* A path the server will need: a directory it can create or write
 * (parent_ok: it may not exist yet) or a file it can read. */
static int check_path(const char *flag, const char *path, bool dir) {
    struct stat st;
    if (stat(path, &st) == 0) {
        if (dir && !S_ISDIR(st.st_mode)) {
            pd_log(PD_LOG_ERROR, "%s %s: not a directory", flag, path);
            return 1;
        }
        if (!dir && !S_ISREG(st.st_mode)) {
            pd_log(PD_LOG_ERROR, "%s %s: not a regular file", flag, path);
            return 1;
        }
        if (access(path, dir ? (R_OK | W_OK | X_OK) : R_OK) != 0) {
            pd_log(PD_LOG_ERROR, "%s %s: %s for this user", flag, path, strerror(errno));
            return 1;
        }
        return 0;
    }
    if (errno != ENOENT || !dir) {
        pd_log(PD_LOG_ERROR, "%s %s: %s", flag, path, strerror(errno));
        return 1;
    }
    /* created at start: its parent must let us */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* "dir/" */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    if (access(parent, W_OK | X_OK) != 0) {
        pd_log(PD_LOG_ERROR, "%s %s: missing, and it cannot be created in %s: %s", flag, path,
               parent, strerror(errno));
        return 1;
    }
    return 0;
}

/* A number as the shortest decimal that reads back as the same double
 * (%g alone keeps 6 digits: 1.23456789 came back as 1.23457). */
static void print_double(const char *key, double v) {
    char buf[64];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    printf("%s = %s\n", key, buf);
}

/* A string setting as a line of the [server] section. libinih cuts a
 * value at a ';' after a blank, trims blanks at either end and reads a
 * line at a time: a value (from a flag) with any of those would read back
 * as another one, so it is printed as a comment, with a warning. */
static void print_str(const char *key, const char *v) {
    size_t n = strlen(v);
    bool odd = n == 0 || isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]) ||
               v[0] == ';' || strpbrk(v, "\r\n");
    for (size_t i = 1; i < n && !odd; i++) odd = v[i] == ';' && isspace((unsigned char)v[i - 1]);
    if (!odd) {
        printf("%s = %s\n", key, v);
        return;
    }
    pd_log(PD_LOG_WARN,
           "%s '%s' cannot be written in a config file (blanks at an end, a ';' after a blank, "
           "a line break): it is printed as a comment",
           key, v);
    printf("# %s cannot be written here as it is: ", key);
    for (size_t i = 0; i < n; i++) putchar(v[i] == '\n' || v[i] == '\r' ? ' ' : v[i]);
    putchar('\n');
}

/* --check-config: what a start would refuse, then the settings in
 * effect, as the [server] section that would give them. */
static int check_config(pd_server_config_t *cfg, const char *config) {
    int problems = pd_server_check_config(cfg);
    if (cfg->data_dir) problems += check_path("--data-dir", cfg->data_dir, true);
    if (cfg->load_volunteers)
        problems += check_path("--load-volunteers", cfg->load_volunteers, false);
    if (cfg->follow_snapshot)
        problems += check_path("--follow-snapshot", cfg->follow_snapshot, false);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max < (rlim_t)cfg->max_conns + 64)
        pd_log(PD_LOG_WARN,
               "the open file limit (hard %llu) holds fewer than --max-conns %u: the server "
               "would lower --max-conns (LimitNOFILE= in a systemd unit)",
               (unsigned long long)rl.rlim_max, cfg->max_conns);
    printf("# paidan-server %s: %s%s%s\n", PD_VERSION,
           problems ? "the server would not start with these settings" : "settings OK",
           config ? ", read with " : "", config ? config : "");
    printf("[server]\n");
    print_str("host", cfg->host);
    printf("port = %d\n", cfg->port);
    if (cfg->token)
        printf("# token is set (%zu characters; not shown)\n", strlen(cfg->token));
    else
        printf("# token is not set\n");
    printf("max_frame = %zu\nmax_conns = %u\nmax_output = %zu\n", cfg->max_frame, cfg->max_conns,
           cfg->max_output);
    printf("idle_timeout = %.3f\nmax_rps = %u\n", (double)cfg->idle_timeout_ms / 1000.0,
           cfg->max_rps);
    printf("max_volunteers = %llu\nmax_orders = %llu\n", (unsigned long long)cfg->max_volunteers,
           (unsigned long long)cfg->max_orders);
    if (cfg->metrics_port >= 0)
        printf("metrics_port = %d\n", cfg->metrics_port);
    else
        printf("# metrics_port is off\n");
    printf("tick_ms = %u\nstall_ms = %u\nbusy_poll_us = %u\n", cfg->tick_ms, cfg->stall_ms,
           cfg->busy_poll_us);
    printf("huge_pages = %s\n", cfg->huge_pages ? "true" : "false");
    print_double("order_retention", cfg->order_retention_days);
    if (cfg->load_volunteers) print_str("load_volunteers", cfg->load_volunteers);
    if (cfg->data_dir)
        print_str("data_dir", cfg->data_dir);
    else
        printf("# data_dir is not set: nothing is kept on disk\n");
    printf("fsync = %s\nsnapshot_bytes = %llu\n", pd_fsync_policy_name(cfg->fsync),
           (unsigned long long)cfg->snapshot_bytes);
    printf("truncate_corrupt = %s\n", cfg->truncate_corrupt ? "true" : "false");
    if (cfg->replicate) print_str("replicate", cfg->replicate);
    if (cfg->follow) print_str("follow", cfg->follow);
    if (cfg->stream) print_str("stream", cfg->stream);
    if (cfg->follow_snapshot) print_str("follow_snapshot", cfg->follow_snapshot);
    printf("log_level = %s\n", pd_log_level_name(pd_log_get_level()));
    return problems ? 1 : 0;
}

static void settings_free(settings_t *st) {
    while (st) {
        settings_t *older = st->older;
        for (size_t i = 0; i <= OPT_VERSION; i++) free(st->file_values[i]);
        free(st);
        st = older;
    }
}

/* What read_settings found. */
enum { READ_OK, READ_DONE, READ_BAD, READ_USAGE };

/* Read the settings: the [server] section of the config file, then
 * PAIDAN_TOKEN, then the flags -- the last word wins. READ_DONE after
 * --help or --version (printed), READ_BAD for a config file that does not
 * read (logged), READ_USAGE for a bad flag (said on stderr). */
static int read_settings(int argc, char **argv, settings_t *st) {
    pd_server_config_init(&st->cfg);
    st->log_level = PD_LOG_INFO;
    st->config = find_config(argc, argv);
    if (st->config) {
        pd_ini_section_t sec = {"server", on_server_key, st};
        int line = 0;
        char why[256];
        if (pd_engine_config_load_ini_with(st->config, &st->ecfg, &sec, &line, why, sizeof why)) {
            if (line)
                pd_log(PD_LOG_ERROR, "--config %s:%d: %s", st->config, line, why);
            else
                pd_log(PD_LOG_ERROR, "--config %s: %s", st->config, why);
            return READ_BAD;
        }
        st->cfg.engine = &st->ecfg;
        struct stat sb;
        if (st->file_values[OPT_TOKEN] && stat(st->config, &sb) == 0 && (sb.st_mode & 044))
            pd_log(PD_LOG_WARN,
                   "--config %s holds the token and other users may read it (mode %03o): "
                   "chmod 600 it, or give the token in PAIDAN_TOKEN (under the systemd "
                   "unit: /etc/paidan/token.env)",
                   st->config, (unsigned)(sb.st_mode & 0777));
    }
    const char *env_token = getenv("PAIDAN_TOKEN");
    if (env_token && *env_token) st->cfg.token = env_token;

    int ch;
    while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        if (ch == 'h') ch = OPT_HELP;
        if (ch == 'V') ch = OPT_VERSION;
        if (ch == OPT_HELP) {
            usage(stdout);
            return READ_DONE;
        }
        if (ch == OPT_VERSION) {
            printf("paidan-server %s\n", PD_VERSION);
            return READ_DONE;
        }
        if (ch == OPT_CHECK) {
            st->check_only = true;
            continue;
        }
        const struct option *o = opts;
        while (o->name && o->val != ch) o++;
        if (!o->name) {
            /* getopt said what was wrong; the whole usage would bury it */
            fprintf(stderr, "try 'paidan-server --help'\n");
            return READ_USAGE;
        }
        const char *bad = apply_opt(st, ch, o->has_arg ? optarg : NULL);
        if (bad) {
            char flag[40];
            snprintf(flag, sizeof flag, "--%s", o->name);
            bad_value(flag, optarg, bad);
            return READ_USAGE;
        }
    }
    int rest = optind;
    optind = 0; /* glibc: a reload reads the flags afresh */
    if (rest < argc) {
        fprintf(stderr, "paidan-server: unexpected argument '%s'\ntry 'paidan-server --help'\n",
                argv[rest]);
        return READ_USAGE;
    }
    return READ_OK;
}

/* The command line and the settings in use, for a reload. */
static int g_argc;
static char **g_argv;
static settings_t *g_settings;

/* Whether the server's settings point into st: at a string of its
 * config file, or at its engine settings. */
static bool settings_in_use(const settings_t *st, const pd_server_config_t *cfg) {
    if (cfg->engine == &st->ecfg) return true;
    const char *const used[] = {
        cfg->host,      cfg->token,  cfg->config_path, cfg->load_volunteers, cfg->data_dir,
        cfg->replicate, cfg->follow, cfg->stream,      cfg->follow_snapshot};
    for (size_t u = 0; u < sizeof used / sizeof used[0]; u++) {
        for (size_t i = 0; i <= OPT_VERSION; i++) {
            if (used[u] && used[u] == st->file_values[i]) return true;
        }
    }
    return false;
}

/* Free the settings the server no longer points into. A reload takes
 * from the new settings only what changed (numbers by value, the token
 * by pointer): kept whole, every SIGHUP cost some kilobytes until exit
 * (5000 of them, 25 MB). */
static void prune_settings(const pd_server_config_t *cfg) {
    settings_t **at = &g_settings;
    while (*at) {
        settings_t *st = *at;
        if (settings_in_use(st, cfg)) {
            at = &st->older;
            continue;
        }
        *at = st->older;
        st->older = NULL;
        settings_free(st);
    }
}

/* SIGHUP: read the settings again, as at start, and let the server take
 * what it can change while it runs (pd_server_reload). */
static void on_reload(pd_server_t *srv) {
    settings_t *st = calloc(1, sizeof *st);
    if (!st) {
        pd_log(PD_LOG_ERROR, "reload: out of memory; nothing changed");
        return;
    }
    int r = read_settings(g_argc, g_argv, st);
    if (r != READ_OK) {
        pd_log(PD_LOG_ERROR, "reload refused: the settings do not read (above); nothing changed");
        settings_free(st);
        return;
    }
    fit_fd_limit(&st->cfg);
    if (pd_server_reload(srv, &st->cfg, st->log_level) != PD_OK) {
        settings_free(st);
        return;
    }
    st->older = g_settings;
    g_settings = st;
    prune_settings(&srv->cfg);
}

int main(int argc, char **argv) {
    pd_log_detect_journal();
    settings_t *st = calloc(1, sizeof *st);
    if (!st) return 1;
    g_argc = argc;
    g_argv = argv;
    g_settings = st;
    int r = read_settings(argc, argv, st);
    if (r != READ_OK) {
        settings_free(st);
        return r == READ_DONE ? 0 : r == READ_BAD ? 1 : 2;
    }
    pd_log_set_level(st->log_level);
    pd_server_config_t cfg = st->cfg;
    if (st->check_only) {
        int rc = check_config(&cfg, st->config);
        settings_free(st);
        return rc;
    }

    signal(SIGPIPE, SIG_IGN);
    fit_fd_limit(&cfg);

    uv_loop_t *loop = uv_default_loop();
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    pd_server_t *srv = pd_calloc(1, sizeof(*srv));
    if (!srv) {
        pd_log(PD_LOG_ERROR, "out of memory");
        settings_free(g_settings);
        return 1;
    }
    pd_err err = pd_server_start(srv, loop, &cfg);
    if (err) {
        uv_run(loop, UV_RUN_NOWAIT);
        pd_server_deinit(srv);
        uv_loop_close(loop);
        pd_free(srv);
        settings_free(g_settings);
        return 1;
    }
    srv->reload = on_reload; /* SIGHUP, once the loop runs */
    uv_run(loop, UV_RUN_DEFAULT);
    bool fatal = srv->fatal;
    pd_server_deinit(srv);
    if (uv_loop_close(loop) != 0) pd_log(PD_LOG_WARN, "handles still open at exit");
    pd_free(srv);
    settings_free(g_settings);
    pd_log(fatal ? PD_LOG_ERROR : PD_LOG_INFO, fatal ? "stopped on an error" : "stopped");
    return fatal ? 1 : 0;
}
