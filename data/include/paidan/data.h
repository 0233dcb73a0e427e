/* data.h -- synthetic counties and the CSV formats of paidan.
 *
 * Two halves:
 *
 *  - The generator (pd_gen_*): a seeded, deterministic model of a county --
 *    towns and villages as clusters of people, volunteers with "8+N" skills
 *    of skewed popularity, weekly schedules heavy on evenings and weekends,
 *    and an order stream with daily and weekly rhythm. The same config
 *    gives the same bytes on every machine. Records are produced one at a
 *    time, so 10^7 volunteers need no buffer.
 *
 *  - The CSV formats (pd_csv_*): a streaming reader that names the line,
 *    the field and the reason of every error, and a fast writer. Both map
 *    skill bits to names through a table the caller gives.
 *
 * docs/data.md describes the model and both formats field by field.
 *
 * Ownership: the generator and the CSV objects are allocated by the
 * library and freed by their _destroy/_close function. Skill-name tables
 * handed to a reader or writer are not copied and must outlive it.
 */
#ifndef PAIDAN_DATA_H
#define PAIDAN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "paidan/error.h"
#include "paidan/index.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- skills */

/** Skill bits 0..7 are the 8 standing categories, in this order:
 * theory-policy, culture-arts, tutoring, medical-fitness, science-pop,
 * legal-aid, sanitation, poverty-relief. Local skills follow from bit 8:
 * red-heritage, family-values, civility, elder-care, then local-5 ... */
#define PD_GEN_STANDING_SKILLS 8
/** Most skills a county can have: one per bit of the skill mask. */
#define PD_GEN_MAX_SKILLS 64
/** Most local skills (PD_GEN_MAX_SKILLS - PD_GEN_STANDING_SKILLS). */
#define PD_GEN_MAX_LOCAL_SKILLS 56

/**
 * The generator's skill-name table: all PD_GEN_MAX_SKILLS names, bit i
 * named by entry i. A county with L local skills uses the first 8 + L.
 * @param n set to PD_GEN_MAX_SKILLS; may be NULL.
 * @return a static table; never NULL, never freed.
 */
const char *const *pd_gen_skill_names(size_t *n);

/* ------------------------------------------------------------------ tags */

#define PD_GEN_TAG_PARTY_MEMBER (1ULL << 0) /* member of the Party (党员) */
#define PD_GEN_TAG_YOUTH (1ULL << 1)        /* youth volunteer, under 35 */
#define PD_GEN_TAG_RETIRED (1ULL << 2)      /* retired; free in the daytime */
#define PD_GEN_TAG_DIALECT (1ULL << 3)      /* speaks the local dialect */
#define PD_GEN_TAG_FIRST_AID (1ULL << 4)    /* holds a first-aid certificate */
#define PD_GEN_TAG_COUNT 5

/**
 * Names of the generator's tag bits ("party-member", "youth", "retired",
 * "speaks-dialect", "first-aid"), entry i for bit i.
 * @param n set to PD_GEN_TAG_COUNT; may be NULL.
 * @return a static table; never NULL.
 */
const char *const *pd_gen_tag_names(size_t *n);

/* ---------------------------------------------------------------- orders */

/** Order priority. Values are stable (stored in CSV by name). */
typedef enum pd_gen_priority {
    PD_GEN_PRIORITY_NORMAL = 0,    /* an ordinary request */
    PD_GEN_PRIORITY_ELEVATED = 1,  /* a special group: elderly living alone,
                                      left-behind child, disabled, hardship */
    PD_GEN_PRIORITY_EMERGENCY = 2, /* an emergency: serve at once */
    PD_GEN_PRIORITY__COUNT
} pd_gen_priority;

/** Name of a priority ("normal", "elevated", "emergency"); NULL if out of range. */
const char *pd_gen_priority_name(pd_gen_priority p);

/** An order as the generator makes it and the orders CSV stores it. */
typedef struct pd_gen_order_s {
    uint64_t id;          /* 1..M in creation order */
    int64_t created_ms;   /* when the resident asked, ms since the Unix epoch */
    pd_latlng_t pos;      /* where the service is needed */
    uint64_t skills;      /* every one of these skill bits is required; 0 = any */
    uint32_t need;        /* volunteers wanted, >= 1 */
    int64_t start_ms;     /* when the service starts, ms since the Unix epoch */
    int32_t duration_min; /* how long it lasts, 0..10080 minutes */
    uint8_t priority;     /* pd_gen_priority */
    int32_t budget_min;   /* travel-time budget in minutes, 1..1440 (15 = the circle) */
} pd_gen_order_t;

/** Limits the CSV reader and writer enforce on an order. */
#define PD_GEN_MAX_NEED 65535
#define PD_GEN_MAX_DURATION_MIN 10080
#define PD_GEN_MAX_BUDGET_MIN 1440

/**
 * Check an order: valid position, need 1..PD_GEN_MAX_NEED, duration
 * 0..PD_GEN_MAX_DURATION_MIN, known priority, budget 1..PD_GEN_MAX_BUDGET_MIN.
 * @return PD_OK, PD_ERR_BAD_COORD or PD_ERR_BAD_ARG.
 */
pd_err pd_gen_order_check(const pd_gen_order_t *o);

struct pd_order_spec_s;

/**
 * An order as the engine takes it (paidan/engine.h): one slot per volunteer
 * needed, all with the order's skills; the budget in seconds; sequential
 * offers; an unknown priority becomes normal. An order needing more than
 * PD_ORDER_MAX_SLOTS volunteers is converted as it is; the engine refuses it.
 */
void pd_gen_order_spec(const pd_gen_order_t *o, struct pd_order_spec_s *out);

/* ------------------------------------------------------------- generator */

/** Limits of pd_gen_config_t, as pd_gen_config_check() applies them. */
#define PD_GEN_MAX_SIZE_KM 1000
#define PD_GEN_MAX_TOWNS 1000
#define PD_GEN_MAX_VILLAGES 100000
#define PD_GEN_MAX_DAYS 3660
/** The last ms of year 9999 (9999-12-31 23:59:59.999 UTC): the latest start. */
#define PD_GEN_MAX_START_MS 253402300799999LL
#define PD_GEN_MIN_UTC_OFFSET_MIN (-720)
#define PD_GEN_MAX_UTC_OFFSET_MIN 840

/** What county to make. Initialise with pd_gen_config_init(). */
typedef struct pd_gen_config_s {
    uint64_t seed;          /* any value; default 1 */
    uint64_t volunteers;    /* volunteers to produce, ids 1..N; default 10000 */
    uint64_t orders;        /* orders to produce, ids 1..M; default 10000 */
    double center_lat;      /* county centre, degrees; default 30.60 */
    double center_lon;      /* county centre, degrees; default 114.30 */
    double size_km;         /* side of the square county, 1..1000 km; default 50 */
    uint32_t towns;         /* towns (dense clusters), 1..1000; default 12 */
    uint32_t villages;      /* villages (small clusters), 0..100000; default 200 */
    double town_share;      /* share of people living in towns; default 0.55 */
    double scatter_share;   /* share scattered uniformly; default 0.08 (villages
                               hold the rest; with no villages, towns do) */
    uint32_t local_skills;  /* local skills after the 8 standing ones,
                               0..PD_GEN_MAX_LOCAL_SKILLS; default 4 */
    int64_t start_ms;       /* order stream start, ms since the epoch,
                               0..PD_GEN_MAX_START_MS; default 1709481600000 =
                               Monday 2024-03-04 00:00 UTC+8 */
    uint32_t days;          /* order stream length, 1..3660 days; default 7 */
    int32_t utc_offset_min; /* local time = UTC + this, -720..840; default 480 */
} pd_gen_config_t;

/** Fill cfg with the documented defaults. */
void pd_gen_config_init(pd_gen_config_t *cfg);

/**
 * Check a config against the ranges documented on its fields; the county
 * box must lie within latitude -85..85 and not cross the antimeridian.
 * @return PD_OK, PD_ERR_BAD_COORD (centre/box) or PD_ERR_BAD_ARG.
 */
pd_err pd_gen_config_check(const pd_gen_config_t *cfg);

/** Number of skills of a county: PD_GEN_STANDING_SKILLS + cfg->local_skills. */
size_t pd_gen_config_skill_count(const pd_gen_config_t *cfg);

typedef struct pd_gen_s pd_gen_t;

/**
 * Lay out a county (towns, villages, popularity tables) and get ready to
 * stream its volunteers and orders.
 * @param cfg copied; checked with pd_gen_config_check().
 * @param out the generator. Caller frees with pd_gen_destroy().
 * @return PD_ERR_BAD_ARG / PD_ERR_BAD_COORD on a bad config, PD_ERR_NOMEM on
 * OOM; *out is untouched on error.
 */
pd_err pd_gen_create(const pd_gen_config_t *cfg, pd_gen_t **out);

/** Free a generator. NULL is fine. */
void pd_gen_destroy(pd_gen_t *g);

/** The configuration the generator was created with. */
const pd_gen_config_t *pd_gen_get_config(const pd_gen_t *g);

/**
 * The next volunteer (ids 1, 2, ... in order; load is always 0).
 * @return true with *out filled, or false once cfg.volunteers have been
 * produced (*out untouched).
 */
bool pd_gen_next_volunteer(pd_gen_t *g, pd_volunteer_t *out);

/**
 * The next order, in non-decreasing created_ms order within
 * [cfg.start_ms, cfg.start_ms + cfg.days days).
 * @return true with *out filled, or false once cfg.orders have been
 * produced. The order stream is independent of the volunteer stream: the
 * two may be drawn in any interleaving with the same results.
 */
bool pd_gen_next_order(pd_gen_t *g, pd_gen_order_t *out);

/**
 * A point drawn from the county's population density (the benchmark puts
 * its queries where people live). Uses a stream of its own, so it never
 * changes the volunteers or orders produced.
 */
void pd_gen_random_point(pd_gen_t *g, pd_latlng_t *out);

/**
 * The county box: every generated position p has
 * sw.lat <= p.lat <= ne.lat and sw.lon <= p.lon <= ne.lon.
 */
void pd_gen_get_box(const pd_gen_t *g, pd_latlng_t *sw, pd_latlng_t *ne);

/** Kind of a populated place. */
typedef enum pd_gen_place_kind {
    PD_GEN_PLACE_TOWN = 0,    /* a town; place 0 is the county seat */
    PD_GEN_PLACE_VILLAGE = 1, /* a village */
} pd_gen_place_kind;

/** A populated place: a gaussian cluster of people. */
typedef struct pd_gen_place_s {
    uint8_t kind;       /* pd_gen_place_kind */
    pd_latlng_t center; /* the centre (where its service station would be) */
    double sigma_m;     /* standard deviation of the cluster, metres */
    double share;       /* share of the county's people living here, 0..1 */
} pd_gen_place_t;

/** Number of places: cfg.towns + cfg.villages (towns first). */
size_t pd_gen_place_count(const pd_gen_t *g);

/**
 * Copy place i out.
 * @return PD_ERR_NOT_FOUND if i >= pd_gen_place_count(g).
 */
pd_err pd_gen_get_place(const pd_gen_t *g, size_t i, pd_gen_place_t *out);

/* ------------------------------------------------------------------- CSV */

/** Which CSV format. */
typedef enum pd_csv_kind {
    PD_CSV_VOLUNTEERS = 0, /* id,lat,lon,skills,tags,mode,schedule,capacity,status */
    PD_CSV_ORDERS = 1,     /* id,created,lat,lon,skills,need,start,duration_min,priority,minutes */
} pd_csv_kind;

/** The header line of a format, without the newline; never NULL. */
const char *pd_csv_header(pd_csv_kind kind);

/** Longest line, in bytes without the newline, the reader accepts and
 * the writer produces: a line with 64 skill names of PD_CSV_NAME_MAX bytes
 * fits. Lines of generated data are far shorter (~90 bytes). */
#define PD_CSV_LINE_MAX 8192
/** Longest skill name a table may hold. */
#define PD_CSV_NAME_MAX 63

/** What went wrong, and where. The message counts fields from 1, as a
 * person would; `field` counts from 0, as the header's index does. */
typedef struct pd_csv_error_s {
    pd_err code;       /* the error returned, PD_OK if none yet */
    size_t line;       /* 1-based line number; 0 when about the whole file */
    int field;         /* 0-based field (column) index; -1 when about the line */
    char message[320]; /* "<source>:<line>: field 3 'lon': value '200.5' is
                          out of range -180..180" -- always NUL-terminated */
} pd_csv_error_t;

typedef struct pd_csv_reader_s pd_csv_reader_t;

/**
 * Open a CSV file and check its header line.
 * @param path  file to read.
 * @param kind  the format expected.
 * @param names skill-name table, entry i naming bit i; not copied, must
 *              outlive the reader. Names are non-empty, at most
 *              PD_CSV_NAME_MAX bytes, unique, without ',' '|' or spaces.
 * @param n_names entries in names, at most PD_GEN_MAX_SKILLS.
 * @param out   the reader. Caller frees with pd_csv_reader_close().
 * @param err   optional: on failure, the line, field and message.
 * @return PD_ERR_IO if the file cannot be opened or read, PD_ERR_CORRUPT for
 * an empty file or a wrong header, PD_ERR_BAD_ARG for a bad name table,
 * PD_ERR_NOMEM. On error *out is untouched and nothing stays open.
 */
pd_err pd_csv_reader_open(const char *path, pd_csv_kind kind, const char *const *names,
                          size_t n_names, pd_csv_reader_t **out, pd_csv_error_t *err);

/**
 * As pd_csv_reader_open(), over bytes in memory. `buf` is read in place
 * and must outlive the reader; error messages name the source "<memory>".
 */
pd_err pd_csv_reader_open_mem(const char *buf, size_t len, pd_csv_kind kind,
                              const char *const *names, size_t n_names, pd_csv_reader_t **out,
                              pd_csv_error_t *err);

/**
 * Read the next volunteer of a PD_CSV_VOLUNTEERS reader. Blank lines are
 * skipped; load is set to 0.
 * @param got set to true if *out was filled, false at the end of the file.
 * @return PD_OK; or, for a bad line, PD_ERR_CORRUPT (bad number, wrong field
 * count, bad name), PD_ERR_BAD_COORD (bad lat/lon), PD_ERR_UNKNOWN_SKILL,
 * PD_ERR_TOO_LARGE (line over PD_CSV_LINE_MAX) -- the line is consumed, so
 * calling again goes on with the next one; PD_ERR_IO on a read error (which
 * sticks); PD_ERR_BAD_ARG on a reader of the other kind. Details of the
 * last error are in pd_csv_reader_get_error().
 */
pd_err pd_csv_read_volunteer(pd_csv_reader_t *r, pd_volunteer_t *out, bool *got);

/** As pd_csv_read_volunteer(), for a PD_CSV_ORDERS reader. */
pd_err pd_csv_read_order(pd_csv_reader_t *r, pd_gen_order_t *out, bool *got);

/**
 * Bound the work of one read call, for a caller that must not block long
 * (the server's `import` runs between other clients' requests). With
 * bytes > 0, a call that has passed over that many bytes of blank lines,
 * or of an over-long line it is skipping, stops early: it returns PD_OK
 * with *got false and pd_csv_reader_paused() true; the next call goes on
 * where it stopped (an over-long line is still reported once; read from
 * memory, its end is found in one call). 0, the
 * default, is no bound: *got false then always means the end.
 */
void pd_csv_reader_set_step(pd_csv_reader_t *r, size_t bytes);

/** True if the last read call stopped early (pd_csv_reader_set_step())
 *  rather than at the end of the input: call again. */
bool pd_csv_reader_paused(const pd_csv_reader_t *r);

/** Line number of the last line read (the header is line 1). */
size_t pd_csv_reader_get_line(const pd_csv_reader_t *r);

/** The last error (code PD_OK if none); valid until the next call on r. */
const pd_csv_error_t *pd_csv_reader_get_error(const pd_csv_reader_t *r);

/** Close the file and free the reader. NULL is fine. */
void pd_csv_reader_close(pd_csv_reader_t *r);

/**
 * Format one volunteer as a CSV line with its newline, no NUL added.
 * Allocation-free; PD_CSV_LINE_MAX + 1 bytes always suffice.
 * @return PD_ERR_BOUNDS if cap is too small, PD_ERR_UNKNOWN_SKILL for a skill
 * bit past n_names, PD_ERR_BAD_COORD / PD_ERR_BAD_ARG for a record that
 * fails pd_volunteer_check(). Nothing meaningful is in buf on error.
 */
pd_err pd_csv_format_volunteer(const pd_volunteer_t *v, const char *const *names, size_t n_names,
                               char *buf, size_t cap, size_t *len);

/** As pd_csv_format_volunteer(), for an order checked by pd_gen_order_check(). */
pd_err pd_csv_format_order(const pd_gen_order_t *o, const char *const *names, size_t n_names,
                           char *buf, size_t cap, size_t *len);

typedef struct pd_csv_writer_s pd_csv_writer_t;

/**
 * Create a file (truncating it) and write the header line.
 * @param path file to write; NULL or "-" writes to stdout.
 * @param names as for pd_csv_reader_open(); must outlive the writer.
 * @param out the writer. Caller finishes with pd_csv_writer_close().
 * @return PD_ERR_IO if the file cannot be created, PD_ERR_BAD_ARG for a bad
 * name table, PD_ERR_NOMEM. On error *out is untouched.
 */
pd_err pd_csv_writer_open(const char *path, pd_csv_kind kind, const char *const *names,
                          size_t n_names, pd_csv_writer_t **out);

/**
 * As pd_csv_writer_open(), onto a stream the caller owns: the writer
 * flushes it on close but never closes it.
 */
pd_err pd_csv_writer_open_fp(FILE *fp, pd_csv_kind kind, const char *const *names, size_t n_names,
                             pd_csv_writer_t **out);

/**
 * Append one volunteer (buffered). Errors as for pd_csv_format_volunteer(),
 * plus PD_ERR_IO once a write failed; a rejected record writes nothing.
 */
pd_err pd_csv_write_volunteer(pd_csv_writer_t *w, const pd_volunteer_t *v);

/** Append one order (buffered); as pd_csv_write_volunteer(). */
pd_err pd_csv_write_order(pd_csv_writer_t *w, const pd_gen_order_t *o);

/**
 * Flush, close the file (unless the caller owns the stream) and free the
 * writer. NULL is fine.
 * @return PD_ERR_IO if any write, the flush or the close failed: the output
 * is then incomplete. The writer is freed either way.
 */
pd_err pd_csv_writer_close(pd_csv_writer_t *w);

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_DATA_H */
