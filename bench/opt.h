/* opt.h -- paidan-bench's command lines, read the same way in every mode:
 * whole numbers and decimals within a stated range, case lists that name
 * at least one known case, and one-line errors that name the option.
 *
 * Why one module: strtoull alone reads "-1" as 2^64 - 1, "2e6" as 2 and
 * "99999999999999999999" as 2^64 - 1, and strtod reads "nan" and "0x10";
 * each of those once started a run that measured nothing or never ended.
 * Every refusal here prints one line on stderr,
 *
 *     paidan-bench micro: bad value '0' for --cell-e6 (500..1000000)
 *
 * and the mode exits 2 (docs/bench.md). Private to bench/. */
#ifndef PAIDAN_BENCH_OPT_H
#define PAIDAN_BENCH_OPT_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a mode's parser needs to name things in its messages. */
typedef struct pd__opt_s {
    const char *mode;           /* "micro", "load", ... */
    const char *shorts;         /* the short options given to getopt_long */
    const struct option *longs; /* and the long ones */
} pd__opt_t;

/*
 * Get ready to parse argv of a mode: getopt starts over, and its own
 * messages ("unrecognized option '--bogus'") begin with
 * "paidan-bench MODE:" (argv[0] is pointed at a static string).
 */
void pd__opt_begin(const pd__opt_t *p, char **argv);

/* The option getopt_long returned as ch, as the user may have typed it:
 * "-n/--volunteers", "--cell-e6" or "-x". @return buf. */
const char *pd__opt_name(const pd__opt_t *p, int ch, char *buf, size_t cap);

/*
 * A whole number in [lo, hi]: digits only (no sign, blank or suffix) and
 * no overflow. On failure prints "bad value 'S' for NAME (LO..HI)".
 * @return true with *out set; false (*out unchanged) otherwise.
 */
bool pd__opt_u64(const pd__opt_t *p, int ch, const char *s, uint64_t lo, uint64_t hi,
                 uint64_t *out);

/* pd__opt_u64 into a uint32_t; hi must be <= UINT32_MAX. */
bool pd__opt_u32(const pd__opt_t *p, int ch, const char *s, uint32_t lo, uint32_t hi,
                 uint32_t *out);

/*
 * A finite decimal in [lo, hi] ("0.5", "2", "1e3"; not "nan", "inf",
 * "0x10" or anything with a blank or a suffix). On failure prints
 * "bad value 'S' for NAME (LO..HI)".
 */
bool pd__opt_num(const pd__opt_t *p, int ch, const char *s, double lo, double hi, double *out);

/* Print "bad value 'S' for NAME (allowed)" for a value that is not a
 * number (a name, a path). */
void pd__opt_bad(const pd__opt_t *p, int ch, const char *s, const char *allowed);

/*
 * A comma-separated list of `what`s ("case", "system"): at least one
 * name, each one of names[0..n). Stray commas are ignored. On failure
 * prints "bad value '' for NAME (...)" for an empty list, or "unknown
 * WHAT 'X' for NAME (a, b, ...)".
 */
bool pd__opt_list(const pd__opt_t *p, int ch, const char *s, const char *what,
                  const char *const *names, size_t n);

/* After a refused command line: "try 'paidan-bench MODE --help'". */
void pd__opt_try_help(const pd__opt_t *p);

#endif /* PAIDAN_BENCH_OPT_H */
