/* mix.h -- the command mix of paidan-bench load: which requests a run
 * sends, in what proportions ("nearby:70,update:25,order:5").
 * Private to bench/. */
#ifndef PAIDAN_BENCH_MIX_H
#define PAIDAN_BENCH_MIX_H

#include <stddef.h>

#include "paidan/error.h"

/* The commands a mix can name. Values index arrays; keep PING first. */
typedef enum pd__cmd {
    PD__CMD_PING = 0,   /* ping: the bare round trip */
    PD__CMD_NEARBY = 1, /* match.nearby: k nearest qualified for an order */
    PD__CMD_UPDATE = 2, /* volunteer.update with lat/lon: a location ping */
    PD__CMD_GET = 3,    /* volunteer.get: one record */
    PD__CMD_ORDER = 4,  /* the order life cycle: create, accept, complete, rate */
    PD__CMD__COUNT
} pd__cmd;

/* A parsed mix: relative weights, and their running sums for picking. */
typedef struct pd__mix_s {
    double weight[PD__CMD__COUNT]; /* as given; 0 = never sent */
    double cum[PD__CMD__COUNT];    /* cum[i] = (weight[0] + ... + weight[i]) / total */
    double total;                  /* sum of the weights, > 0 */
} pd__mix_t;

/* Name of a command as a mix spells it ("ping", "nearby", ...); NULL if
 * out of range. */
const char *pd__cmd_name(pd__cmd c);

/*
 * Parse "name:weight,name:weight,..." (a bare name means weight 1). Names:
 * ping, nearby, update, get, order. Weights are plain decimal numbers
 * (digits and at most one '.'), at least one of them > 0; a name may appear
 * once. Blanks around names and weights are ignored.
 * @param why on error, a one-line reason (NUL-terminated, cap bytes); may be NULL.
 * @return PD_OK, or PD_ERR_BAD_ARG with *out unspecified.
 */
pd_err pd__mix_parse(const char *spec, pd__mix_t *out, char *why, size_t cap);

/* The command for a uniform draw u in [0, 1): each command with
 * probability weight / total. */
pd__cmd pd__mix_pick(const pd__mix_t *m, double u);

/* The mix in canonical form ("nearby:70,update:25,order:5"), NUL-terminated. */
void pd__mix_to_string(const pd__mix_t *m, char *buf, size_t cap);

#endif /* PAIDAN_BENCH_MIX_H */
