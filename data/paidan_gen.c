/* paidan_gen.c -- paidan-gen: write a synthetic county as CSV.
 *
 * A thin command line over pd_gen_* and pd_csv_writer_*: parse the
 * options into a pd_gen_config_t, stream the volunteers to one file and
 * the orders to another. Records are never held in memory, so 10^7
 * volunteers take no more memory than ten. Exit status: 0 on success, 1
 * when writing fails, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paidan/data.h"

#ifndef PD_VERSION
#define PD_VERSION "unknown"
#endif

#define PROGRESS_EVERY 1000000ULL

static const char usage_text[] =
    "usage: paidan-gen [options]\n"
    "\n"
    "Write a synthetic county -- volunteers and an order stream -- as CSV\n"
    "(formats in docs/data.md). The same options give the same bytes on\n"
    "every machine.\n"
    "\n"
    "  --seed S            random seed (default 1)\n"
    "  --volunteers N      volunteers, ids 1..N (default 10000; 0 for none)\n"
    "  --orders M          orders, ids 1..M (default 10000 with --orders-out,\n"
    "                      else none)\n"
    "  --days D            length of the order stream in days, 1..3660 (default 7)\n"
    "  --start EPOCH_MS    start of the order stream, ms since the epoch,\n"
    "                      0..253402300799999 (end of year 9999) (default\n"
    "                      1709481600000, Mon 2024-03-04 00:00 UTC+8)\n"
    "  --utc-offset MIN    local time offset from UTC in minutes, -720..840\n"
    "                      (default 480)\n"
    "  --center LAT,LON    county centre in degrees (default 30.60,114.30)\n"
    "  --size-km K         side of the square county in km, 1..1000 (default 50)\n"
    "  --towns N           towns, 1..1000 (default 12)\n"
    "  --villages N        villages, 0..100000 (default 200)\n"
    "  --local-skills N    local skills after the 8 standing ones, 0..56\n"
    "                      (default 4)\n"
    "  -o FILE             volunteers CSV (default: stdout; '-' is stdout)\n"
    "  --orders-out FILE   orders CSV (default: stdout when the volunteers\n"
    "                      go to a file and --orders is given)\n"
    "  -q, --quiet         no progress lines on stderr\n"
    "  -h, --help          this help\n"
    "  -V, --version       print the version\n"
    "\n"
    "For 10^6 records or more a progress line goes to stderr every 10^6.\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("paidan-gen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\ntry 'paidan-gen --help'\n", stderr);
    va_end(ap);
    return 2;
}

static int parse_u64_arg(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_u32_arg(const char *s, uint32_t *out) {
    uint64_t v;
    if (parse_u64_arg(s, &v) || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_double_arg(const char *s, char stop, double *out, const char **rest) {
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || *end != stop || !isfinite(v)) return -1;
    *out = v;
    if (rest) *rest = end;
    return 0;
}

static void progress(const char *what, uint64_t done, uint64_t total, int quiet) {
    if (quiet || total < PROGRESS_EVERY || done % PROGRESS_EVERY != 0) return;
    fprintf(stderr, "paidan-gen: %s %" PRIu64 " / %" PRIu64 "\n", what, done, total);
}

static int write_volunteers(pd_gen_t *g, const char *path, int quiet) {
    const pd_gen_config_t *cfg = pd_gen_get_config(g);
    pd_csv_writer_t *w;
    pd_err err = pd_csv_writer_open(path, PD_CSV_VOLUNTEERS, pd_gen_skill_names(NULL),
                                    pd_gen_config_skill_count(cfg), &w);
    if (err) {
        fprintf(stderr, "paidan-gen: cannot create %s: %s\n", path ? path : "stdout",
                err == PD_ERR_IO ? strerror(errno) : pd_strerror(err));
        return 1;
    }
    pd_volunteer_t v;
    uint64_t n = 0;
    while (pd_gen_next_volunteer(g, &v)) {
        if ((err = pd_csv_write_volunteer(w, &v))) break;
        progress("volunteers", ++n, cfg->volunteers, quiet);
    }
    pd_err cerr = pd_csv_writer_close(w);
    if (err || cerr) {
        fprintf(stderr, "paidan-gen: writing volunteers to %s failed: %s\n", path ? path : "stdout",
                pd_strerror(err ? err : cerr));
        return 1;
    }
    return 0;
}

static int write_orders(pd_gen_t *g, const char *path, int quiet) {
    const pd_gen_config_t *cfg = pd_gen_get_config(g);
    pd_csv_writer_t *w;
    pd_err err = pd_csv_writer_open(path, PD_CSV_ORDERS, pd_gen_skill_names(NULL),
                                    pd_gen_config_skill_count(cfg), &w);
    if (err) {
        fprintf(stderr, "paidan-gen: cannot create %s: %s\n", path ? path : "stdout",
                err == PD_ERR_IO ? strerror(errno) : pd_strerror(err));
        return 1;
    }
    pd_gen_order_t o;
    uint64_t n = 0;
    while (pd_gen_next_order(g, &o)) {
        if ((err = pd_csv_write_order(w, &o))) break;
        progress("orders", ++n, cfg->orders, quiet);
    }
    pd_err cerr = pd_csv_writer_close(w);
    if (err || cerr) {
        fprintf(stderr, "paidan-gen: writing orders to %s failed: %s\n", path ? path : "stdout",
                pd_strerror(err ? err : cerr));
        return 1;
    }
    return 0;
}

/* Where a path leads: its directory resolved (links, "..", "./") and its
 * last name; false when the directory does not resolve. */
static bool resolve_path(const char *path, char *out, size_t cap) {
    char cur[PATH_MAX], a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur) return false;
    /* a link to a file yet to be made leads where its target will be */
    struct stat st;
    for (int hop = 0; hop < 8 && lstat(cur, &st) == 0 && S_ISLNK(st.st_mode); hop++) {
        char target[PATH_MAX];
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n < 0) return false;
        target[n] = '\0';
        snprintf(a, sizeof a, "%s", cur);
        if (target[0] == '/')
            snprintf(cur, sizeof cur, "%s", target);
        else if (snprintf(cur, sizeof cur, "%s/%s", dirname(a), target) >= (int)sizeof cur)
            return false;
    }
    snprintf(a, sizeof a, "%s", cur);
    snprintf(b, sizeof b, "%s", cur);
    if (!realpath(dirname(a), dir)) return false;
    return snprintf(out, cap, "%s/%s", dir, basename(b)) < (int)cap;
}

/* Do two output paths name one file: the same string, the same inode
 * (a link, another spelling of an existing file), or the same place for
 * files yet to be made ("./x.csv" and "/tmp/x.csv" run from /tmp). */
static bool same_file(const char *x, const char *y) {
    struct stat sx, sy;
    /* A character device (/dev/null, a terminal) takes both streams, one
     * after the other, without one overwriting the other. */
    if ((stat(x, &sx) == 0 && S_ISCHR(sx.st_mode)) || (stat(y, &sy) == 0 && S_ISCHR(sy.st_mode)))
        return false;
    if (strcmp(x, y) == 0) return true;
    if (stat(x, &sx) == 0 && stat(y, &sy) == 0)
        return sx.st_dev == sy.st_dev && sx.st_ino == sy.st_ino;
    char rx[PATH_MAX + 1], ry[PATH_MAX + 1];
    return resolve_path(x, rx, sizeof rx) && resolve_path(y, ry, sizeof ry) && strcmp(rx, ry) == 0;
}

static int is_stdout(const char *path) {
    return !path || strcmp(path, "-") == 0;
}

enum {
    OPT_SEED = 256,
    OPT_VOLUNTEERS,
    OPT_ORDERS,
    OPT_DAYS,
    OPT_START,
    OPT_UTC_OFFSET,
    OPT_CENTER,
    OPT_SIZE_KM,
    OPT_TOWNS,
    OPT_VILLAGES,
    OPT_LOCAL_SKILLS,
    OPT_ORDERS_OUT,
};

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"seed", required_argument, NULL, OPT_SEED},
        {"volunteers", required_argument, NULL, OPT_VOLUNTEERS},
        {"orders", required_argument, NULL, OPT_ORDERS},
        {"days", required_argument, NULL, OPT_DAYS},
        {"start", required_argument, NULL, OPT_START},
        {"utc-offset", required_argument, NULL, OPT_UTC_OFFSET},
        {"center", required_argument, NULL, OPT_CENTER},
        {"size-km", required_argument, NULL, OPT_SIZE_KM},
        {"towns", required_argument, NULL, OPT_TOWNS},
        {"villages", required_argument, NULL, OPT_VILLAGES},
        {"local-skills", required_argument, NULL, OPT_LOCAL_SKILLS},
        {"orders-out", required_argument, NULL, OPT_ORDERS_OUT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    const char *vol_path = NULL, *ord_path = NULL;
    int orders_given = 0, quiet = 0;

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:qhV", longopts, NULL)) != -1) {
        uint64_t u;
        const char *rest;
        switch (c) {
            case OPT_SEED:
                if (parse_u64_arg(optarg, &cfg.seed)) return usage_error("bad --seed '%s'", optarg);
                break;
            case OPT_VOLUNTEERS:
                if (parse_u64_arg(optarg, &cfg.volunteers))
                    return usage_error("bad --volunteers '%s'", optarg);
                break;
            case OPT_ORDERS:
                if (parse_u64_arg(optarg, &cfg.orders))
                    return usage_error("bad --orders '%s'", optarg);
                orders_given = 1;
                break;
            case OPT_DAYS:
                if (parse_u32_arg(optarg, &cfg.days) || cfg.days < 1 || cfg.days > PD_GEN_MAX_DAYS)
                    return usage_error("bad --days '%s' (1..%d)", optarg, PD_GEN_MAX_DAYS);
                break;
            case OPT_START:
                if (parse_u64_arg(optarg, &u) || u > (uint64_t)PD_GEN_MAX_START_MS)
                    return usage_error(
                        "bad --start '%s' (ms since the epoch, 0..%lld, "
                        "the end of year 9999)",
                        optarg, PD_GEN_MAX_START_MS);
                cfg.start_ms = (int64_t)u;
                break;
            case OPT_UTC_OFFSET: {
                errno = 0;
                char *end;
                long v = strtol(optarg, &end, 10);
                if (errno || !*optarg || *end || v < PD_GEN_MIN_UTC_OFFSET_MIN ||
                    v > PD_GEN_MAX_UTC_OFFSET_MIN)
                    return usage_error("bad --utc-offset '%s' (minutes, %d..%d)", optarg,
                                       PD_GEN_MIN_UTC_OFFSET_MIN, PD_GEN_MAX_UTC_OFFSET_MIN);
                cfg.utc_offset_min = (int32_t)v;
                break;
            }
            case OPT_CENTER:
                if (parse_double_arg(optarg, ',', &cfg.center_lat, &rest) ||
                    parse_double_arg(rest + 1, '\0', &cfg.center_lon, NULL))
                    return usage_error("bad --center '%s' (want LAT,LON)", optarg);
                break;
            case OPT_SIZE_KM:
                if (parse_double_arg(optarg, '\0', &cfg.size_km, NULL) ||
                    !(cfg.size_km >= 1.0 && cfg.size_km <= PD_GEN_MAX_SIZE_KM))
                    return usage_error("bad --size-km '%s' (km, 1..%d)", optarg,
                                       PD_GEN_MAX_SIZE_KM);
                break;
            case OPT_TOWNS:
                if (parse_u32_arg(optarg, &cfg.towns) || cfg.towns < 1 ||
                    cfg.towns > PD_GEN_MAX_TOWNS)
                    return usage_error("bad --towns '%s' (1..%d)", optarg, PD_GEN_MAX_TOWNS);
                break;
            case OPT_VILLAGES:
                if (parse_u32_arg(optarg, &cfg.villages) || cfg.villages > PD_GEN_MAX_VILLAGES)
                    return usage_error("bad --villages '%s' (0..%d)", optarg, PD_GEN_MAX_VILLAGES);
                break;
            case OPT_LOCAL_SKILLS:
                if (parse_u32_arg(optarg, &cfg.local_skills) ||
                    cfg.local_skills > PD_GEN_MAX_LOCAL_SKILLS)
                    return usage_error("bad --local-skills '%s' (0..%d)", optarg,
                                       PD_GEN_MAX_LOCAL_SKILLS);
                break;
            case OPT_ORDERS_OUT:
                ord_path = optarg;
                break;
            case 'o':
                vol_path = optarg;
                break;
            case 'q':
                quiet = 1;
                break;
            case 'h':
                fputs(usage_text, stdout);
                return 0;
            case 'V':
                printf("paidan-gen %s\n", PD_VERSION);
                return 0;
            case ':':
                return usage_error("option '%s' needs a value", argv[optind - 1]);
            default:
                return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);

    pd_err err = pd_gen_config_check(&cfg);
    if (err == PD_ERR_BAD_COORD)
        return usage_error("%s",
                           "the county must lie within latitude -85..85 and not cross "
                           "longitude 180: check --center and --size-km");
    /* Every option's own range was checked as it was read. */
    if (err) return usage_error("bad configuration: %s", pd_strerror(err));

    /* Which streams go where. */
    int want_vol = cfg.volunteers > 0 || vol_path;
    int want_ord = orders_given ? cfg.orders > 0 || ord_path : ord_path != NULL;
    if (want_ord && !ord_path && want_vol && is_stdout(vol_path))
        return usage_error("%s",
                           "volunteers and orders cannot both go to stdout: "
                           "give -o FILE or --orders-out FILE");
    if (want_vol && want_ord && is_stdout(vol_path) && is_stdout(ord_path))
        return usage_error("%s", "volunteers and orders cannot both go to stdout");
    if (want_vol && want_ord && vol_path && ord_path && !is_stdout(vol_path) &&
        !is_stdout(ord_path) && same_file(vol_path, ord_path))
        return usage_error("-o and --orders-out name the same file '%s'", vol_path);

    pd_gen_t *g;
    if ((err = pd_gen_create(&cfg, &g))) {
        fprintf(stderr, "paidan-gen: %s\n", pd_strerror(err));
        return 1;
    }
    int rc = 0;
    if (want_vol) rc = write_volunteers(g, vol_path, quiet);
    if (!rc && want_ord) rc = write_orders(g, ord_path, quiet);
    pd_gen_destroy(g);
    return rc;
}
