/* plot.h -- charts with gnuplot: paidan-bench writes data files and a
 * script into a directory and runs gnuplot there. PNG when gnuplot has a
 * PNG terminal (pngcairo, then png), SVG otherwise. Private to bench/. */
#ifndef PAIDAN_BENCH_PLOT_H
#define PAIDAN_BENCH_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "paidan/error.h"
#include "paidan/hist.h"

/* True if a gnuplot executable is on PATH. */
bool pd__plot_available(void);

/*
 * Get ready to plot into dir: create it if missing and check that it is a
 * directory this process can write. False (with a message on stderr) if
 * not. Modes call it before their run too, so a bad --plot fails at once
 * rather than after the measurement.
 */
bool pd__plot_begin(const char *dir);

/* Open dir/name for writing (a data file); NULL with a message on error. */
FILE *pd__plot_open(const char *dir, const char *name);

/*
 * Write dir/<name>.gp -- a preamble that picks the terminal and sets the
 * variable `ext`, then `body` -- and run gnuplot on it inside dir. Each
 * chart in body does `set output "<chart>.".ext`. Prints the charts it
 * made (listed in `charts`, comma-separated, without extension). Without
 * gnuplot on PATH it says so once ("skipping plots: ...") and returns
 * PD_OK: the data and the script are written, the charts are optional.
 * @return PD_OK, or PD_ERR_IO if the script cannot be written or gnuplot fails.
 */
pd_err pd__plot_run(const char *dir, const char *name, const char *body, const char *charts);

/*
 * Write a latency-by-percentile data file: one row per percentile from 0
 * to 99.999, with x = 1 / (1 - p/100) (so 90 %, 99 %, 99.9 % are evenly
 * spaced on a log axis) and the latency in microseconds of each histogram
 * (values in ns) in the next columns.
 */
pd_err pd__plot_percentile_data(const char *dir, const char *file, const pd_hist_t *const *hists,
                                size_t n);

/* The gnuplot lines (xtics, log axes, labels) of a latency-by-percentile
 * chart, to put before a `plot` command. */
const char *pd__plot_percentile_axes(void);

#endif /* PAIDAN_BENCH_PLOT_H */
