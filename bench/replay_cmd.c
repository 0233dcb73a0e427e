/* replay_cmd.c -- the command line of `paidan-bench replay`: options, the
 * side-by-side table of the policies' figures, JSON and charts. The
 * simulation itself is in replay.c.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "opt.h"
#include "plot.h"
#include "replay.h"

#ifndef PD_SAMPLE_DIR
#define PD_SAMPLE_DIR "data/sample"
#endif

typedef struct replay_cmd_s {
    pd__replay_opts_t run;
    bool generate;
    bool json;
    bool quiet;
    const char *plot_dir;
    char vol_path[4096];
    char ord_path[4096];
    char policies[64];
} replay_cmd_t;

static void replay_usage(FILE *out) {
    fprintf(out,
            "usage: paidan-bench replay [options]\n"
            "input (default: the sample county, data/sample/county-*.csv):\n"
            "      --volunteers-csv F   volunteers CSV (data/ format)\n"
            "      --orders-csv F       orders CSV (data/ format)\n"
            "      --journal DIR        or a paidan-server data directory: the oldest\n"
            "                           snapshot's volunteers, then the journal's\n"
            "                           volunteer.upsert/update/remove and order.create\n"
            "                           in time order\n"
            "  -n, --volunteers N       generate a county of N volunteers instead ...\n"
            "  -o, --orders M           ... with M orders ...\n"
            "      --days D             ... over D days (default 7)\n"
            "  -s, --seed S             generator and response-model seed (default 1)\n"
            "engine:\n"
            "  -p, --policy LIST        policies side by side: nearest,balanced,rated\n"
            "                           (default balanced)\n"
            "      --grab               grab mode: offer to grab_width volunteers at once\n"
            "      --config INI         engine configuration (default: built-in); its\n"
            "                           utc_offset (+08:00) is the schedules' local time\n"
            "response model (for histories without responses):\n"
            "      --accept-base P      P(accept) before distance and load (default 0.85)\n"
            "      --accept-per-km X    minus X per km (default 0.04)\n"
            "      --accept-per-hour X  minus X per hour served in 7 days (default 0.02)\n"
            "      --no-answer P        P(offer left to expire) (default 0.10)\n"
            "      --response-median S  median answer delay, seconds (default 45)\n"
            "      --rate-share P       P(resident rates) (default 0.85)\n"
            "      --rating-quality W   share of the stars that is the volunteer's own\n"
            "                           quality, 0..1 (default 0.5; 0 = luck alone)\n"
            "      --withdraw P         P(a volunteer who accepted gives the slot back\n"
            "                           before the service starts: order.release)\n"
            "                           (default 0)\n"
            "output:\n"
            "      --json               one JSON object instead of the table\n"
            "      --plot DIR           write charts (gnuplot) and their data into DIR\n"
            "      --quiet              no progress bar\n"
            "  -h, --help               this text\n");
}

enum {
    OPT_VCSV = 256,
    OPT_OCSV,
    OPT_DAYS,
    OPT_GRAB,
    OPT_CONFIG,
    OPT_JOURNAL,
    OPT_ABASE,
    OPT_AKM,
    OPT_AHOUR,
    OPT_NOANS,
    OPT_RMED,
    OPT_RSHARE,
    OPT_RQUAL,
    OPT_WITHDRAW,
    OPT_JSON,
    OPT_PLOT,
    OPT_QUIET
};

static int parse_policies(const char *s, pd__replay_opts_t *o) {
    o->n_policies = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        pd_policy p;
        if (pd_policy_from_name(tok, &p) != PD_OK) {
            fprintf(stderr, "paidan-bench replay: unknown policy '%s' (nearest, balanced, rated)\n",
                    tok);
            return -1;
        }
        for (size_t i = 0; i < o->n_policies; i++) {
            if (o->policies[i] == p) {
                fprintf(stderr, "paidan-bench replay: policy '%s' named twice\n", tok);
                return -1;
            }
        }
        o->policies[o->n_policies++] = p;
    }
    if (!o->n_policies) {
        fprintf(stderr,
                "paidan-bench replay: bad value '%s' for -p/--policy (name at least one policy: "
                "nearest, balanced, rated)\n",
                s);
        return -1;
    }
    return 0;
}

/* The sample county: beside the sources, or under the working directory. */
static int find_sample(const char *file, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", PD_SAMPLE_DIR, file);
    if (access(out, R_OK) == 0) return 0;
    snprintf(out, cap, "data/sample/%s", file);
    if (access(out, R_OK) == 0) return 0;
    return -1;
}

/* One option's value into o; false (with the message printed) if bad. */
static bool parse_one(const pd__opt_t *p, int ch, const char *arg, replay_cmd_t *o) {
    pd__replay_model_t *m = &o->run.model;
    switch (ch) {
        case 'n':
            o->generate = true;
            return pd__opt_u64(p, ch, arg, 1, 100000000, &o->run.gen_volunteers);
        case 'o':
            o->generate = true;
            return pd__opt_u64(p, ch, arg, 1, 1000000000, &o->run.gen_orders);
        case OPT_DAYS:
            o->generate = true;
            return pd__opt_u32(p, ch, arg, 1, 3660, &o->run.gen_days);
        case 's':
            return pd__opt_u64(p, ch, arg, 0, UINT64_MAX, &o->run.seed);
        case 'p':
            if (strlen(arg) >= sizeof o->policies) {
                pd__opt_bad(p, ch, arg, "nearest, balanced, rated");
                return false;
            }
            snprintf(o->policies, sizeof o->policies, "%s", arg);
            return parse_policies(arg, &o->run) == 0;
        case OPT_ABASE:
            return pd__opt_num(p, ch, arg, 0, 1, &m->accept_base);
        case OPT_AKM:
            return pd__opt_num(p, ch, arg, 0, 10, &m->accept_per_km);
        case OPT_AHOUR:
            return pd__opt_num(p, ch, arg, 0, 10, &m->accept_per_hour);
        case OPT_NOANS:
            return pd__opt_num(p, ch, arg, 0, 1, &m->no_answer);
        case OPT_RMED:
            return pd__opt_num(p, ch, arg, 0.001, 86400, &m->response_median_s);
        case OPT_RSHARE:
            return pd__opt_num(p, ch, arg, 0, 1, &m->rate_share);
        case OPT_RQUAL:
            return pd__opt_num(p, ch, arg, 0, 1, &m->rating_quality);
        case OPT_WITHDRAW:
            return pd__opt_num(p, ch, arg, 0, 1, &m->withdraw);
        default:
            return false;
    }
}

static int parse_opts(int argc, char **argv, replay_cmd_t *o) {
    static const struct option longs[] = {{"volunteers-csv", required_argument, 0, OPT_VCSV},
                                          {"orders-csv", required_argument, 0, OPT_OCSV},
                                          {"volunteers", required_argument, 0, 'n'},
                                          {"orders", required_argument, 0, 'o'},
                                          {"days", required_argument, 0, OPT_DAYS},
                                          {"seed", required_argument, 0, 's'},
                                          {"policy", required_argument, 0, 'p'},
                                          {"grab", no_argument, 0, OPT_GRAB},
                                          {"config", required_argument, 0, OPT_CONFIG},
                                          {"journal", required_argument, 0, OPT_JOURNAL},
                                          {"accept-base", required_argument, 0, OPT_ABASE},
                                          {"accept-per-km", required_argument, 0, OPT_AKM},
                                          {"accept-per-hour", required_argument, 0, OPT_AHOUR},
                                          {"no-answer", required_argument, 0, OPT_NOANS},
                                          {"response-median", required_argument, 0, OPT_RMED},
                                          {"rate-share", required_argument, 0, OPT_RSHARE},
                                          {"rating-quality", required_argument, 0, OPT_RQUAL},
                                          {"withdraw", required_argument, 0, OPT_WITHDRAW},
                                          {"json", no_argument, 0, OPT_JSON},
                                          {"plot", required_argument, 0, OPT_PLOT},
                                          {"quiet", no_argument, 0, OPT_QUIET},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const pd__opt_t p = {"replay", "n:o:s:p:h", longs};
    pd__replay_opts_init(&o->run);
    snprintf(o->policies, sizeof o->policies, "balanced");
    pd__opt_begin(&p, argv);
    int ch;
    while ((ch = getopt_long(argc, argv, p.shorts, longs, NULL)) != -1) {
        switch (ch) {
            case OPT_VCSV:
                o->run.volunteers_csv = optarg;
                break;
            case OPT_OCSV:
                o->run.orders_csv = optarg;
                break;
            case OPT_JOURNAL:
                o->run.journal_dir = optarg;
                break;
            case OPT_GRAB:
                o->run.grab = true;
                break;
            case OPT_CONFIG:
                o->run.config_path = optarg;
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
            case 'h':
                replay_usage(stdout);
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
        fprintf(stderr, "paidan-bench replay: unexpected argument '%s'\n", argv[optind]);
        pd__opt_try_help(&p);
        return -1;
    }
    bool csv = o->run.volunteers_csv || o->run.orders_csv;
    if (o->run.journal_dir && (csv || o->generate)) {
        fprintf(stderr, "paidan-bench replay: give a journal, CSV files or a county, one only\n");
        return -1;
    }
    if (o->run.journal_dir) csv = true; /* the journal is the input: no sample */
    if (csv && o->generate) {
        fprintf(stderr, "paidan-bench replay: give CSV files or a county to generate, not both\n");
        return -1;
    }
    if (!o->run.journal_dir && csv && !(o->run.volunteers_csv && o->run.orders_csv)) {
        fprintf(stderr, "paidan-bench replay: give both --volunteers-csv and --orders-csv\n");
        pd__opt_try_help(&p);
        return -1;
    }
    if (!csv && !o->generate) {
        if (find_sample("county-volunteers.csv", o->vol_path, sizeof o->vol_path) ||
            find_sample("county-orders.csv", o->ord_path, sizeof o->ord_path)) {
            fprintf(stderr,
                    "paidan-bench replay: the sample county (data/sample) was not found; "
                    "give --volunteers-csv/--orders-csv or -n/-o\n");
            return -1;
        }
        o->run.volunteers_csv = o->vol_path;
        o->run.orders_csv = o->ord_path;
    }
    o->run.progress = !o->quiet;
    return 0;
}

/* ---------------------------------------------------------------- output */

/* Figures that are 0/0 for a run: no fills (time to accept, ETA, the
 * 15-minute share), no orders the engine took (fill rate, offers per
 * order), no volunteers or no hours served (Gini), no volunteers (served
 * share), no ratings (mean rating). The table prints them as "-", JSON as
 * null. */
enum { K_FILL, K_TTA, K_ETA, K_CIRCLE, K_GINI, K_SERVED, K_OFFERS, K_RATING };

static bool defined(const pd__replay_result_t *r, int which) {
    const pd__kpi_summary_t *k = &r->kpi;
    switch (which) {
        case K_FILL:
        case K_OFFERS:
            return k->orders > k->rejected;
        case K_TTA:
        case K_ETA:
        case K_CIRCLE:
            return k->filled > 0;
        case K_GINI:
            return r->volunteers_end > 0 && k->hours_total > 0;
        case K_SERVED:
            return r->volunteers_end > 0;
        case K_RATING:
            return r->rated > 0;
        default:
            return true;
    }
}

static void print_table(const replay_cmd_t *o, const pd__replay_result_t *rs, size_t n) {
    printf("%-30s", "policy");
    for (size_t i = 0; i < n; i++) printf(" %12s", pd_policy_name(rs[i].policy));
    printf("\n");
#define ROW(label, fmt, expr)                        \
    do {                                             \
        printf("%-30s", label);                      \
        for (size_t i = 0; i < n; i++) {             \
            const pd__kpi_summary_t *k = &rs[i].kpi; \
            const pd__replay_result_t *r = &rs[i];   \
            (void)k;                                 \
            (void)r;                                 \
            printf(" " fmt, expr);                   \
        }                                            \
        printf("\n");                                \
    } while (0)
/* A figure that may be undefined: "-" then. */
#define ROW_IF(label, which, fmt, expr)              \
    do {                                             \
        printf("%-30s", label);                      \
        for (size_t i = 0; i < n; i++) {             \
            const pd__kpi_summary_t *k = &rs[i].kpi; \
            if (defined(&rs[i], which))              \
                printf(" " fmt, expr);               \
            else                                     \
                printf(" %12s", "-");                \
        }                                            \
        printf("\n");                                \
    } while (0)
    ROW("orders", "%12llu", (unsigned long long)k->orders);
    ROW("duplicate ids skipped", "%12llu", (unsigned long long)r->duplicates);
    if (o->run.journal_dir)
        ROW("volunteer events refused", "%12llu", (unsigned long long)r->volunteer_events_refused);
    ROW_IF("fill rate", K_FILL, "%11.1f%%", k->fill_rate * 100);
    ROW_IF("time to accept p50 (s)", K_TTA, "%12.1f", k->tta_p50_s);
    ROW_IF("time to accept p90 (s)", K_TTA, "%12.1f", k->tta_p90_s);
    ROW_IF("ETA p50 (s)", K_ETA, "%12.1f", k->eta_p50_s);
    ROW_IF("ETA p90 (s)", K_ETA, "%12.1f", k->eta_p90_s);
    ROW_IF("inside the 15-minute circle", K_CIRCLE, "%11.1f%%", k->in_circle_share * 100);
    ROW_IF("Gini of hours", K_GINI, "%12.3f", k->gini_hours);
    ROW_IF("volunteers with an order", K_SERVED, "%11.1f%%", k->served_share * 100);
    ROW("hours served", "%12.1f", k->hours_total);
    ROW("expired: nobody qualified", "%12llu",
        (unsigned long long)k->expired[PD_REASON_NO_CANDIDATE]);
    ROW("expired: everyone said no", "%12llu", (unsigned long long)k->expired[PD_REASON_EXHAUSTED]);
    ROW("rejected by order.create", "%12llu", (unsigned long long)k->rejected);
    if (o->run.model.withdraw > 0)
        ROW("withdrew after accepting", "%12llu", (unsigned long long)k->releases);
    ROW_IF("offers per order", K_OFFERS, "%12.2f", k->offers_per_order);
    ROW_IF("mean rating", K_RATING, "%12.2f", k->rating_mean);
    ROW("orders/s replayed", "%12.0f", r->orders_per_s);
    ROW("engine digest", "%12llx", (unsigned long long)(r->digest & 0xffffffffffULL));
#undef ROW
#undef ROW_IF
}

/* A figure as JSON: the number with prec decimals, or null when undefined. */
static const char *jnum(char *buf, size_t cap, const pd__replay_result_t *r, int which, int prec,
                        double v) {
    if (!defined(r, which)) return "null";
    snprintf(buf, cap, "%.*f", prec, v);
    return buf;
}

static void kpis_json(const pd__replay_result_t *rs, size_t n, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "{");
    for (size_t i = 0; i < n && len < cap; i++) {
        const pd__replay_result_t *r = &rs[i];
        const pd__kpi_summary_t *k = &r->kpi;
        char b[10][40];
        len += (size_t)snprintf(
            buf + len, cap - len,
            "%s\"%s\":{\"orders\":%llu,\"duplicates\":%llu,\"volunteer_events_refused\":%llu,"
            "\"filled\":%llu,\"fill_rate\":%s,"
            "\"tta_p50_s\":%s,\"tta_p90_s\":%s,\"eta_p50_s\":%s,\"eta_p90_s\":%s,"
            "\"in_circle_share\":%s,\"gini_hours\":%s,\"served_share\":%s,\"hours_total\":%.3f,"
            "\"expired\":{\"no_candidate\":%llu,\"exhausted\":%llu,\"total\":%llu},"
            "\"rejected\":%llu,\"completed\":%llu,\"releases\":%llu,\"offers_per_order\":%s,"
            "\"rating_mean\":%s,\"volunteers\":%zu,\"orders_per_s\":%.1f,\"wall_s\":%.3f,"
            "\"virtual_days\":%.3f,\"digest\":\"%016llx\"}",
            i ? "," : "", pd_policy_name(r->policy), (unsigned long long)k->orders,
            (unsigned long long)r->duplicates, (unsigned long long)r->volunteer_events_refused,
            (unsigned long long)k->filled, jnum(b[0], 40, r, K_FILL, 6, k->fill_rate),
            jnum(b[1], 40, r, K_TTA, 3, k->tta_p50_s), jnum(b[2], 40, r, K_TTA, 3, k->tta_p90_s),
            jnum(b[3], 40, r, K_ETA, 3, k->eta_p50_s), jnum(b[4], 40, r, K_ETA, 3, k->eta_p90_s),
            jnum(b[5], 40, r, K_CIRCLE, 6, k->in_circle_share),
            jnum(b[6], 40, r, K_GINI, 6, k->gini_hours),
            jnum(b[7], 40, r, K_SERVED, 6, k->served_share), k->hours_total,
            (unsigned long long)k->expired[PD_REASON_NO_CANDIDATE],
            (unsigned long long)k->expired[PD_REASON_EXHAUSTED],
            (unsigned long long)k->expired_total, (unsigned long long)k->rejected,
            (unsigned long long)k->completed, (unsigned long long)k->releases,
            jnum(b[8], 40, r, K_OFFERS, 4, k->offers_per_order),
            jnum(b[9], 40, r, K_RATING, 4, k->rating_mean), r->volunteers, r->orders_per_s,
            r->wall_s, (double)(r->last_ms - r->first_ms) / 86400000.0,
            (unsigned long long)r->digest);
    }
    if (len < cap) snprintf(buf + len, cap - len, "}");
}

/* The charts; false (with a message) if they were not written. A figure
 * that is undefined for a policy is NaN in replay-kpis.dat (no bar); a
 * policy that filled nothing has no time-to-accept line, and when none
 * filled anything that chart says so instead of failing gnuplot on an
 * empty log axis (which used to stop the script: a 0-byte replay-tta.png
 * and no replay-dispatch at all). */
static bool plot(const replay_cmd_t *o, const pd__replay_result_t *rs, size_t n) {
    if (!pd__plot_begin(o->plot_dir)) return false;
    FILE *f = pd__plot_open(o->plot_dir, "replay-kpis.dat");
    if (!f) return false;
    fprintf(f, "# figure");
    for (size_t i = 0; i < n; i++) fprintf(f, " %s", pd_policy_name(rs[i].policy));
    fprintf(f, "\n");
    static const char *const labels[] = {"fill-rate", "inside-15-min", "volunteers-served",
                                         "Gini-of-hours"};
    static const int which[] = {K_FILL, K_CIRCLE, K_SERVED, K_GINI};
    for (int row = 0; row < 4; row++) {
        fprintf(f, "%s", labels[row]);
        for (size_t i = 0; i < n; i++) {
            const pd__kpi_summary_t *k = &rs[i].kpi;
            double v = row == 0   ? k->fill_rate
                       : row == 1 ? k->in_circle_share
                       : row == 2 ? k->served_share
                                  : k->gini_hours;
            if (defined(&rs[i], which[row]))
                fprintf(f, " %.4f", v);
            else
                fprintf(f, " NaN");
        }
        fprintf(f, "\n");
    }
    if (fclose(f) != 0) return false;
    const pd_hist_t *hs[PD_POLICY__COUNT];
    size_t with_tta = 0;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "replay-tta-%s.dat", pd_policy_name(rs[i].policy));
        f = pd__plot_open(o->plot_dir, name);
        if (!f) return false;
        fprintf(f, "# time_to_accept_s  share_of_filled_orders_at_or_below\n");
        for (size_t j = 0; j < rs[i].n_tta; j++)
            fprintf(f, "%.3f %.6f\n", rs[i].tta_s[j], (double)(j + 1) / (double)rs[i].n_tta);
        if (fclose(f) != 0) return false;
        hs[i] = rs[i].dispatch_ns;
        with_tta += rs[i].n_tta > 0;
    }
    if (pd__plot_percentile_data(o->plot_dir, "replay-dispatch.dat", hs, n)) return false;
    char body[8192];
    size_t len = (size_t)snprintf(body, sizeof body,
                                  "set output 'replay-kpis.'.ext\n"
                                  "set title 'paidan-bench replay: figures by policy'\n"
                                  "set style data histograms\nset style histogram clustered\n"
                                  "set style fill solid 0.8 border -1\nset yrange [0:1]\n"
                                  "set ylabel 'share (Gini: coefficient, 0 = equal)'\nplot ");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "%s'replay-kpis.dat' using %zu:xtic(1) title '%s'", i ? ", " : "",
                                i + 2, pd_policy_name(rs[i].policy));
    len += (size_t)snprintf(body + len, sizeof body - len,
                            "\nset style data lines\nset yrange [0:1]\n"
                            "set output 'replay-tta.'.ext\n"
                            "set title 'paidan-bench replay: time to accept (filled orders)'\n"
                            "set xlabel 'seconds from order to accept'\n"
                            "set ylabel 'share of filled orders'\n");
    if (with_tta == 0) {
        fprintf(stderr,
                "paidan-bench replay: no policy filled an order: replay-tta has no line to "
                "draw\n");
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "set xrange [1:1000]\nset logscale x\n"
                                "set label 1 'no filled orders: no time to accept' at graph "
                                "0.5, 0.5 center\nplot NaN notitle\n"
                                "unset label 1\nset xrange [*:*]\n");
    } else {
        len += (size_t)snprintf(body + len, sizeof body - len, "set logscale x\nplot ");
        size_t drawn = 0;
        for (size_t i = 0; i < n; i++) {
            if (!rs[i].n_tta) continue;
            len += (size_t)snprintf(body + len, sizeof body - len,
                                    "%s'replay-tta-%s.dat' using 1:2 with lines title '%s'",
                                    drawn++ ? ", " : "", pd_policy_name(rs[i].policy),
                                    pd_policy_name(rs[i].policy));
        }
        len += (size_t)snprintf(body + len, sizeof body - len, "\n");
    }
    len += (size_t)snprintf(body + len, sizeof body - len,
                            "unset logscale\nset yrange [*:*]\n"
                            "set output 'replay-dispatch.'.ext\n"
                            "set title 'paidan-bench replay: order.create + dispatch in the "
                            "engine'\n%splot ",
                            pd__plot_percentile_axes());
    for (size_t i = 0; i < n && len < sizeof body; i++)
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "%s'replay-dispatch.dat' using 2:%zu with linespoints title '%s'",
                                i ? ", " : "", i + 3, pd_policy_name(rs[i].policy));
    if (len < sizeof body) snprintf(body + len, sizeof body - len, "\n");
    return pd__plot_run(o->plot_dir, "replay", body, "replay-kpis,replay-tta,replay-dispatch") ==
           PD_OK;
}

/* The input in the params: what was replayed, not the generator's
 * defaults (a journal or CSV run once showed 5000 x 2000 over 7 days). */
static void input_params(pd__report_t *rep, const replay_cmd_t *o, const pd__replay_result_t *r) {
    if (o->run.journal_dir) {
        pd__report_param_str(rep, "journal", o->run.journal_dir);
        pd__report_param_u64(rep, "volunteers", r->volunteers);
        pd__report_param_u64(rep, "orders", r->kpi.orders);
        pd__report_param_num(rep, "days", (double)(r->last_ms - r->first_ms) / 86400000.0);
        pd__report_param_u64(rep, "records_skipped", r->input_skipped);
        pd__report_param_u64(rep, "volunteer_events", r->volunteer_events);
    } else if (o->run.volunteers_csv) {
        pd__report_param_str(rep, "volunteers_csv", o->run.volunteers_csv);
        pd__report_param_str(rep, "orders_csv", o->run.orders_csv);
        pd__report_param_u64(rep, "volunteers", r->volunteers);
        pd__report_param_u64(rep, "orders", r->kpi.orders);
    } else {
        pd__report_param_u64(rep, "volunteers", o->run.gen_volunteers);
        pd__report_param_u64(rep, "orders", o->run.gen_orders);
        pd__report_param_u64(rep, "days", o->run.gen_days);
    }
    pd__report_param_u64(rep, "duplicates", r->duplicates);
    /* The engine's configuration: schedules are read in its local time,
     * so the offset changes what a run means. */
    pd__report_param_str(rep, "config", o->run.config_path ? o->run.config_path : "defaults");
    pd__report_param_num(rep, "utc_offset_min", r->utc_offset_min);
}

/* One line on stderr when the input repeats order ids. */
static void say_duplicates(const pd__replay_result_t *r) {
    if (!r->duplicates) return;
    char ids[128] = "";
    for (size_t i = 0; i < r->n_dup_ids; i++)
        pd__appendf(ids, sizeof ids, "%s%llu", i ? ", " : "", (unsigned long long)r->dup_ids[i]);
    fprintf(stderr,
            "paidan-bench replay: skipped %llu order%s whose id came earlier in the input "
            "(ids %s%s); the first of each id is replayed\n",
            (unsigned long long)r->duplicates, r->duplicates == 1 ? "" : "s", ids,
            r->duplicates > r->n_dup_ids ? ", ..." : "");
}

int pd__bench_replay(int argc, char **argv) {
    replay_cmd_t o;
    memset(&o, 0, sizeof o);
    if (parse_opts(argc, argv, &o)) return 2;
    /* A --plot that cannot be written fails now, not after the run. */
    if (o.plot_dir && !pd__plot_begin(o.plot_dir)) return 1;
    pd__replay_result_t rs[PD_POLICY__COUNT];
    char why[512] = "";
    pd_err err = pd__replay_run(&o.run, rs, why, sizeof why);
    int rc = 0;
    if (err) {
        fprintf(stderr, "paidan-bench replay: %s\n", why[0] ? why : pd_strerror(err));
        rc = 1;
    } else {
        pd__report_t *rep = calloc(1, sizeof *rep);
        if (!rep) {
            rc = 1;
        } else {
            pd__report_init(rep, "replay", o.json);
            say_duplicates(&rs[0]);
            input_params(rep, &o, &rs[0]);
            pd__report_param_u64(rep, "seed", o.run.seed);
            pd__report_param_str(rep, "policies", o.policies);
            pd__report_param_str(rep, "offer_mode", o.run.grab ? "grab" : "sequential");
            const pd__replay_model_t *m = &o.run.model;
            pd__report_param_num(rep, "accept_base", m->accept_base);
            pd__report_param_num(rep, "accept_per_km", m->accept_per_km);
            pd__report_param_num(rep, "accept_per_hour", m->accept_per_hour);
            pd__report_param_num(rep, "no_answer", m->no_answer);
            pd__report_param_num(rep, "response_median_s", m->response_median_s);
            pd__report_param_num(rep, "rate_share", m->rate_share);
            pd__report_param_num(rep, "rating_quality", m->rating_quality);
            pd__report_param_num(rep, "withdraw", m->withdraw);
            for (size_t i = 0; i < o.run.n_policies; i++) {
                pd__result_t *r = pd__report_add(rep, pd_policy_name(rs[i].policy),
                                                 "order.create + dispatch in the engine");
                if (!r) continue;
                pd_hist_merge(r->hist, rs[i].dispatch_ns);
                r->busy_ns = r->wall_ns = (uint64_t)(rs[i].wall_s * 1e9);
            }
            if (o.json) {
                static char buf[16384];
                kpis_json(rs, o.run.n_policies, buf, sizeof buf);
                pd__report_extra(rep, "kpis", buf);
            } else {
                print_table(&o, rs, o.run.n_policies);
                printf("\nengine time per order (ops/s = orders replayed per wall second):\n");
            }
            pd__report_print(rep, stdout);
            if (rs[0].kpi.orders == 0) {
                fprintf(stderr,
                        "paidan-bench replay: nothing was replayed: the input has no "
                        "orders\n");
                rc = 1;
            } else if (o.plot_dir && !plot(&o, rs, o.run.n_policies)) {
                fprintf(stderr, "paidan-bench replay: the charts were not written to %s\n",
                        o.plot_dir);
                rc = 1;
            }
            pd__report_deinit(rep);
            free(rep);
        }
    }
    for (size_t i = 0; i < o.run.n_policies; i++) pd__replay_result_deinit(&rs[i]);
    return rc;
}
