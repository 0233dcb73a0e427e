/* plot.c -- running gnuplot for paidan-bench's --plot.
 *
 * gnuplot is optional (Debian gnuplot-nox): without it a run still
 * reports and writes the data and the script, and says in one line why
 * there are no charts. Data files are plain whitespace-separated columns,
 * kept beside the charts so they can be re-plotted by hand (here or on a
 * machine with gnuplot). A directory or a file that cannot be written is
 * an error: the user asked for that output. gnuplot runs in the plot
 * directory (a child process with that working directory), so scripts
 * name files relatively and paths need no quoting.
 */
#include "plot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

bool pd__plot_available(void) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char buf[4096];
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len && len + 9 < sizeof buf) {
            memcpy(buf, p, len);
            memcpy(buf + len, "/gnuplot", 9);
            if (access(buf, X_OK) == 0) return true;
        }
        if (!e) break;
        p = e + 1;
    }
    return false;
}

bool pd__plot_begin(const char *dir) {
    struct stat st;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "paidan-bench: --plot %s: cannot create the directory: %s\n", dir,
                strerror(errno));
        return false;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "paidan-bench: --plot %s: not a directory\n", dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "paidan-bench: --plot %s: cannot write there: %s\n", dir, strerror(errno));
        return false;
    }
    return true;
}

FILE *pd__plot_open(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "paidan-bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static const char preamble[] =
    "# written by paidan-bench; run with: gnuplot <this file>, in this directory\n"
    "ext = 'svg'\n"
    "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
    "  set terminal pngcairo size 960,540 noenhanced font ',10'; ext = 'png'\n"
    "} else {\n"
    "  if (strstrt(GPVAL_TERMINALS, ' png ') > 0) {\n"
    "    set terminal png size 960,540 noenhanced; ext = 'png'\n"
    "  } else {\n"
    "    set terminal svg size 960,540 noenhanced\n"
    "  }\n"
    "}\n"
    "set grid\n"
    "set key top left\n";

pd_err pd__plot_run(const char *dir, const char *name, const char *body, const char *charts) {
    char script[256];
    snprintf(script, sizeof script, "%s.gp", name);
    FILE *f = pd__plot_open(dir, script);
    if (!f) return PD_ERR_IO;
    fputs(preamble, f);
    fputs(body, f);
    if (fclose(f) != 0) {
        fprintf(stderr, "paidan-bench: cannot write %s/%s\n", dir, script);
        return PD_ERR_IO;
    }
    if (!pd__plot_available()) {
        fprintf(stderr,
                "paidan-bench: skipping plots: gnuplot not found on PATH "
                "(Debian: apt-get install gnuplot-nox); the data and %s are in %s\n",
                script, dir);
        return PD_OK;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return PD_ERR_IO;
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(127);
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "paidan-bench: gnuplot failed on %s/%s\n", dir, script);
        return PD_ERR_IO;
    }
    /* Name what was made. */
    for (const char *p = charts; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char path[4096];
        const char *exts[] = {"png", "svg"};
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%.*s.%s", dir, (int)len, p, exts[i]);
            if (access(path, R_OK) == 0) {
                fprintf(stderr, "paidan-bench: wrote %s\n", path);
                break;
            }
        }
        if (!e) break;
        p = e + 1;
    }
    return PD_OK;
}

pd_err pd__plot_percentile_data(const char *dir, const char *file, const pd_hist_t *const *hists,
                                size_t n) {
    static const double ps[] = {0,    10,    25,   50,    75,     90,    95,     97.5,  99,
                                99.5, 99.75, 99.9, 99.95, 99.975, 99.99, 99.995, 99.999};
    FILE *f = pd__plot_open(dir, file);
    if (!f) return PD_ERR_IO;
    fprintf(f, "# percentile  x=1/(1-p)  latency_us per series\n");
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        fprintf(f, "%g %.6g", ps[i], 1.0 / (1.0 - ps[i] / 100.0));
        for (size_t j = 0; j < n; j++)
            fprintf(f, " %.3f", (double)pd_hist_percentile(hists[j], ps[i]) / 1000.0);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "paidan-bench: cannot write %s/%s\n", dir, file);
        return PD_ERR_IO;
    }
    return PD_OK;
}

const char *pd__plot_percentile_axes(void) {
    return "set logscale x\n"
           "set logscale y\n"
           /* Tic labels are format strings to gnuplot: %% prints a percent sign. */
           "set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, "
           "'99.99%%' 10000, '99.999%%' 100000)\n"
           "set xlabel 'percentile'\n"
           "set ylabel 'latency (us)'\n";
}
