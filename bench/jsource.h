/* jsource.h -- the journal source of paidan-bench replay: volunteers and
 * orders read offline from a paidan-server data directory (see jsource.c).
 * Private to bench/. */
#ifndef PAIDAN_BENCH_JSOURCE_H
#define PAIDAN_BENCH_JSOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "paidan/data.h"
#include "paidan/engine.h"

/* What the journal did to a volunteer, at its time. */
typedef enum pd__jv_kind { PD__JV_UPSERT, PD__JV_UPDATE, PD__JV_REMOVE } pd__jv_kind;

typedef struct pd__jvol_ev_s {
    int64_t ts_ms;              /* when the server ran it */
    uint64_t seq;               /* its journal record: ties keep journal order */
    uint8_t kind;               /* pd__jv_kind */
    pd_volunteer_t v;           /* upsert: the volunteer; update, remove: v.id */
    pd_volunteer_patch_t patch; /* update: the fields it set */
} pd__jvol_ev_t;

typedef struct pd__jsource_s {
    pd_volunteer_t *vols; /* the snapshot's volunteers: there before anything */
    size_t nv, capv, iv;  /* count, room, next to hand out */
    pd__jvol_ev_t *vev;   /* the journal's upserts, updates and removals, by time */
    size_t nvev, capvev;
    pd_gen_order_t *ords; /* the journal's orders, in time order */
    size_t no, capo, io;
    uint64_t skipped; /* records that did not parse (or named unknown skills) */
} pd__jsource_t;

/**
 * Read dir: the oldest snapshot that decodes, then every journal segment
 * after it. names maps skill bits to names (the replay engine's table).
 * @return PD_ERR_NOT_FOUND (nothing in dir), PD_ERR_IO / PD_ERR_CORRUPT
 * (a segment cannot be read; why names it), PD_ERR_NOMEM. Free with
 * pd__jsource_free(), also after an error.
 */
pd_err pd__jsource_load(const char *dir, const char *const *names, size_t n_names,
                        pd__jsource_t *js, char *why, size_t cap);

/** Free what a journal source holds. */
void pd__jsource_free(pd__jsource_t *js);

#endif /* PAIDAN_BENCH_JSOURCE_H */
