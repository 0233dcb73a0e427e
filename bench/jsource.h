/* jsource.h -- the journal source of paidan-bench replay: volunteers and
 * orders read offline from a paidan-server data directory (see jsource.c).
 * Private to bench/. */
#ifndef PAIDAN_BENCH_JSOURCE_H
#define PAIDAN_BENCH_JSOURCE_H

#include <stdbool.h>
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

/* An order as the replay creates it: the fields of the CSV format (g), and
 * what only a server's order.create can say. The CSV and generator orders
 * have tags 0, budget_s = g.budget_min * 60, no slots. */
typedef struct pd__rorder_s {
    pd_gen_order_t g;     /* id, created, place, skills, need, window, priority */
    uint64_t tags;        /* tag bits every volunteer needs */
    int32_t budget_s;     /* ETA budget, seconds; 0 = the engine's budget_min */
    bool ignore_schedule; /* the window need not be in the schedule */
    uint8_t n_slots;      /* team order: slot skill masks at slot_off; 0 = g.skills x g.need */
    uint32_t slot_off;    /* into pd__jsource_t.slots */
} pd__rorder_t;

typedef struct pd__jsource_s {
    pd_volunteer_t *vols; /* the snapshot's volunteers: there before anything */
    size_t nv, capv, iv;  /* count, room, next to hand out */
    pd__jvol_ev_t *vev;   /* the journal's upserts, updates and removals, by time */
    size_t nvev, capvev;
    pd__rorder_t *ords; /* the journal's orders, in journal order */
    size_t no, capo, io;
    uint64_t *slots; /* team orders' slot skill masks (pd__rorder_t.slot_off) */
    size_t nslots, capslots;
    uint64_t skipped; /* records that did not parse (or named unknown skills) */
} pd__jsource_t;

/**
 * Read dir: the oldest snapshot that decodes, then every journal segment
 * after it. names maps skill bits to names (the replay engine's table).
 * The segments must hold every record after the snapshot, as the server's
 * recovery requires: a gap, a bad header or corruption in the middle is an
 * error; only the last segment may end torn (a crash, or a server still
 * writing), and is read up to its last whole record.
 * @return PD_ERR_NOT_FOUND (nothing in dir, or no dir), PD_ERR_IO (dir or
 * a segment cannot be read), PD_ERR_CORRUPT (a hole in the history; why
 * names the file, offset and what was wrong), PD_ERR_NOMEM. Free with
 * pd__jsource_free(), also after an error.
 */
pd_err pd__jsource_load(const char *dir, const char *const *names, size_t n_names,
                        pd__jsource_t *js, char *why, size_t cap);

/** Free what a journal source holds. */
void pd__jsource_free(pd__jsource_t *js);

#endif /* PAIDAN_BENCH_JSOURCE_H */
