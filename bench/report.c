/* report.c -- clock, memory readings and the report format of
 * paidan-bench: one JSON object per run ({"mode", "params", "machine",
 * "results", ...}) or a table for people. */
#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

uint64_t pd__bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t pd__bench_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (got != 2) return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double pd__bench_timer_overhead_ns(void) {
    enum { N = 1001 };
    uint64_t d[N];
    for (int i = 0; i < N; i++) {
        uint64_t t0 = pd__bench_now_ns();
        uint64_t t1 = pd__bench_now_ns();
        d[i] = t1 - t0;
    }
    qsort(d, N, sizeof d[0], cmp_u64);
    return (double)d[N / 2];
}

void pd__appendf(char *buf, size_t cap, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* The first line of a file, trimmed, JSON-safe; "" if unreadable. */
static void read_line(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(out, (int)cap, f)) out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = ' ';
}

/* Where a run happens: a figure means little without the machine and how
 * busy it was (shared VMs; docs/bench.md). */
static void machine_of(char *out, size_t cap) {
    char cpu[128] = "", thp[128] = "", load[128] = "", line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            while (*v == ' ' || *v == '\t') v++;
            snprintf(cpu, sizeof cpu, "%s", v);
            cpu[strcspn(cpu, "\n")] = '\0';
            for (char *p = cpu; *p; p++)
                if (*p == '"' || *p == '\\') *p = ' ';
            break;
        }
    if (f) fclose(f);
    read_line("/sys/kernel/mm/transparent_hugepage/enabled", line, sizeof line);
    const char *a = strchr(line, '['), *z = a ? strchr(a, ']') : NULL;
    if (a && z) snprintf(thp, sizeof thp, "%.*s", (int)(z - a - 1), a + 1);
    read_line("/proc/loadavg", load, sizeof load);
    double l1 = 0;
    if (sscanf(load, "%lf", &l1) != 1) l1 = -1;
    struct utsname u;
    if (uname(&u) != 0) snprintf(u.release, sizeof u.release, "?");
    time_t now = time(NULL);
    struct tm tm;
    char when[32] = "";
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(out, cap,
             "\"cpu\":\"%s\",\"cpus\":%ld,\"kernel\":\"%s\",\"thp\":\"%s\",\"loadavg_1m\":%.2f,"
             "\"started\":\"%s\"",
             cpu, sysconf(_SC_NPROCESSORS_ONLN), u.release, thp, l1, when);
}

void pd__report_init(pd__report_t *r, const char *mode, bool json) {
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->json = json;
    machine_of(r->machine, sizeof r->machine);
}

void pd__report_param_num(pd__report_t *r, const char *key, double v) {
    /* Whole numbers print whole (a seed of 12345678901 once came out as
     * 12345678900 under %.10g); others in the fewest digits that read
     * back as the same double. */
    char num[40];
    if (v == floor(v) && fabs(v) < 1e17) {
        snprintf(num, sizeof num, "%.0f", v);
    } else {
        snprintf(num, sizeof num, "%.15g", v);
        if (strtod(num, NULL) != v) snprintf(num, sizeof num, "%.17g", v);
    }
    pd__appendf(r->params, sizeof r->params, "%s\"%s\":%s", r->params[0] ? "," : "", key, num);
}

void pd__report_param_u64(pd__report_t *r, const char *key, uint64_t v) {
    pd__appendf(r->params, sizeof r->params, "%s\"%s\":%llu", r->params[0] ? "," : "", key,
                (unsigned long long)v);
}

void pd__report_param_str(pd__report_t *r, const char *key, const char *v) {
    pd__appendf(r->params, sizeof r->params, "%s\"%s\":\"%s\"", r->params[0] ? "," : "", key, v);
}

void pd__report_extra(pd__report_t *r, const char *key, const char *raw) {
    pd__appendf(r->extra, sizeof r->extra, ",\"%s\":%s", key, raw);
}

pd__result_t *pd__report_add(pd__report_t *r, const char *name, const char *note) {
    if (r->n_results >= sizeof r->results / sizeof r->results[0]) return NULL;
    pd__result_t *res = &r->results[r->n_results];
    memset(res, 0, sizeof *res);
    res->hist = malloc(sizeof *res->hist);
    if (!res->hist) return NULL;
    pd_hist_init(res->hist);
    snprintf(res->name, sizeof res->name, "%s", name);
    snprintf(res->note, sizeof res->note, "%s", note ? note : "");
    res->ops_per_run = 1;
    r->n_results++;
    return res;
}

void pd__report_deinit(pd__report_t *r) {
    for (size_t i = 0; i < r->n_results; i++) free(r->results[i].hist);
    r->n_results = 0;
}

static double us(uint64_t ns) {
    return (double)ns / 1000.0;
}

static double ops_per_s(const pd__result_t *res) {
    if (!res->busy_ns) return 0;
    if (res->ops_given) return (double)res->ops * 1e9 / (double)res->busy_ns;
    return (double)res->hist->count * res->ops_per_run * 1e9 / (double)res->busy_ns;
}

/* A latency figure in µs with prec decimals, or `none` when the row
 * measured nothing: a 0 would read as an instant answer. */
static const char *lat(char *buf, size_t cap, const pd_hist_t *h, double pct, int prec,
                       const char *none) {
    if (!h->count) return none;
    uint64_t ns = pct < 0 ? h->max : pd_hist_percentile(h, pct);
    snprintf(buf, cap, "%.*f", prec, us(ns));
    return buf;
}

void pd__report_print(const pd__report_t *r, FILE *out) {
    char b[7][32];
    if (r->json) {
        fprintf(out, "{\"mode\":\"%s\",\"params\":{%s},\"machine\":{%s},\"results\":[", r->mode,
                r->params, r->machine);
        for (size_t i = 0; i < r->n_results; i++) {
            const pd__result_t *res = &r->results[i];
            const pd_hist_t *h = res->hist;
            char mean[32] = "null";
            if (h->count) snprintf(mean, sizeof mean, "%.3f", pd_hist_mean(h) / 1000.0);
            fprintf(out,
                    "%s{\"name\":\"%s\",\"count\":%llu,\"ops_per_s\":%.1f,\"mean_us\":%s,"
                    "\"p50_us\":%s,\"p90_us\":%s,\"p99_us\":%s,\"p999_us\":%s,"
                    "\"p9999_us\":%s,\"max_us\":%s,\"errors\":%llu,\"wall_s\":%.3f,"
                    "\"note\":\"%s\"}",
                    i ? "," : "", res->name, (unsigned long long)h->count, ops_per_s(res), mean,
                    lat(b[0], 32, h, 50, 3, "null"), lat(b[1], 32, h, 90, 3, "null"),
                    lat(b[2], 32, h, 99, 3, "null"), lat(b[3], 32, h, 99.9, 3, "null"),
                    lat(b[4], 32, h, 99.99, 3, "null"), lat(b[5], 32, h, -1, 3, "null"),
                    (unsigned long long)res->errors, (double)res->wall_ns / 1e9, res->note);
        }
        fprintf(out, "]%s}\n", r->extra);
        return;
    }
    fprintf(out, "paidan-bench %s  {%s}\nmachine  {%s}\n", r->mode, r->params, r->machine);
    if (r->wide) {
        fprintf(out, "%-16s %10s %12s %9s %9s %9s %9s %10s %10s %8s  %s\n", "case", "count",
                "ops/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "p99.99 us", "max us", "errors",
                "what");
        for (size_t i = 0; i < r->n_results; i++) {
            const pd__result_t *res = &r->results[i];
            const pd_hist_t *h = res->hist;
            fprintf(out, "%-16s %10llu %12.0f %9s %9s %9s %9s %10s %10s %8llu  %s\n", res->name,
                    (unsigned long long)h->count, ops_per_s(res), lat(b[0], 32, h, 50, 1, "-"),
                    lat(b[1], 32, h, 90, 1, "-"), lat(b[2], 32, h, 99, 1, "-"),
                    lat(b[3], 32, h, 99.9, 1, "-"), lat(b[4], 32, h, 99.99, 1, "-"),
                    lat(b[5], 32, h, -1, 1, "-"), (unsigned long long)res->errors, res->note);
        }
        return;
    }
    fprintf(out, "%-16s %10s %12s %9s %9s %9s %9s %10s  %s\n", "case", "count", "ops/s", "p50 us",
            "p90 us", "p99 us", "p99.9 us", "max us", "what");
    for (size_t i = 0; i < r->n_results; i++) {
        const pd__result_t *res = &r->results[i];
        const pd_hist_t *h = res->hist;
        fprintf(out, "%-16s %10llu %12.0f %9s %9s %9s %9s %10s  %s\n", res->name,
                (unsigned long long)h->count, ops_per_s(res), lat(b[0], 32, h, 50, 3, "-"),
                lat(b[1], 32, h, 90, 3, "-"), lat(b[2], 32, h, 99, 3, "-"),
                lat(b[3], 32, h, 99.9, 3, "-"), lat(b[4], 32, h, -1, 3, "-"), res->note);
    }
    /* The extra members are JSON: under a table each mode prints their
     * figures as lines of its own. */
}

bool pd__bench_isatty(FILE *f) {
    return isatty(fileno(f)) == 1;
}

void pd__bench_rng_seed(pd__bench_rng_t *r, uint64_t seed) {
    r->s = pd__bench_mix64(seed, 0x6A09E667F3BCC909ULL);
    if (!r->s) r->s = 0x9E3779B97F4A7C15ULL;
}

uint64_t pd__bench_rng_next(pd__bench_rng_t *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

double pd__bench_rng_unit(pd__bench_rng_t *r) {
    return (double)(pd__bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t pd__bench_mix64(uint64_t a, uint64_t b) {
    uint64_t z = a + 0x9E3779B97F4A7C15ULL * (b + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

bool pd__bench_selected(const char *filter, const char *name) {
    if (!filter || !*filter) return true;
    size_t n = strlen(name);
    for (const char *p = filter; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}
