/* county.h -- the county a network benchmark works on: volunteers to load
 * into a server (or a rival system) and a stream of places and orders to
 * query with. Generated (paidan/data.h) or read from a volunteers CSV.
 * Private to bench/. */
#ifndef PAIDAN_BENCH_COUNTY_H
#define PAIDAN_BENCH_COUNTY_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "paidan/client.h"
#include "paidan/data.h"

/* A county in memory. */
typedef struct pd__county_s {
    pd_volunteer_t *vols; /* the volunteers, owned */
    size_t n;             /* how many */
    pd_gen_t *gen;        /* order stream and population points, owned */
    bool from_csv;        /* volunteers came from a CSV: points are drawn around them */
    pd__bench_rng_t rng;  /* for those points */
} pd__county_t;

/* Skill names by bit: what the server (or the generator) calls each bit. */
typedef struct pd__names_s {
    char buf[PD_GEN_MAX_SKILLS][PD_CSV_NAME_MAX + 1]; /* the names */
    const char *ptr[PD_GEN_MAX_SKILLS];               /* ptr[i] = buf[i] */
    size_t n;                                         /* bits named */
} pd__names_t;

/* Generate n volunteers (and an order stream of `orders`) with a seed.
 * Caller frees with pd__county_deinit(). */
pd_err pd__county_generate(pd__county_t *c, uint64_t n, uint64_t orders, uint64_t seed);

/* Read volunteers from a CSV (data/ format, generator skill names); the
 * order stream comes from a generator with `seed`. On error *why says
 * which line and field. Caller frees with pd__county_deinit(). */
pd_err pd__county_read_csv(pd__county_t *c, const char *path, uint64_t orders, uint64_t seed,
                           char *why, size_t cap);

/* Free what the county holds. */
void pd__county_deinit(pd__county_t *c);

/* A place where people live: the generator's density, or (CSV county) a
 * volunteer's position moved up to ~1 km. */
void pd__county_point(pd__county_t *c, pd_latlng_t *out);

/* The next order of the stream, its position a county point; false when
 * the stream is exhausted. */
bool pd__county_order(pd__county_t *c, pd_gen_order_t *out);

/* The generator's names (64 of them), which the sample data and the
 * server's default configuration share for their first 12 bits. */
void pd__names_from_generator(pd__names_t *names);

/* Ask a server for its skill names (config.get). */
pd_err pd__names_from_server(pd_client_t *cl, pd__names_t *names, char *why, size_t cap);

/* Pack skills as an array of names (bits past names->n are dropped). */
void pd__pack_skills(msgpack_packer *pk, uint64_t mask, const pd__names_t *names);

/* Pack a weekly schedule as [[weekday, start_hour, end_hour], ...]. */
void pd__pack_week(msgpack_packer *pk, const pd_week_t *w);

/* Pack the params map of volunteer.upsert for v. */
void pd__pack_volunteer(msgpack_packer *pk, const pd_volunteer_t *v, const pd__names_t *names);

/* Highest skill bit any volunteer has, +1 (0 when nobody has a skill). */
size_t pd__county_skill_bits(const pd__county_t *c);

/*
 * Load every volunteer into a server with pipelined volunteer.upsert
 * calls (batches of 1000). Prints progress on stderr when `progress`.
 * @return PD_OK; PD_ERR_IO on a transport error; or the first error code
 * the server returned, with *why naming the volunteer.
 */
pd_err pd__county_upload(pd_client_t *cl, const pd__county_t *c, const pd__names_t *names,
                         bool progress, char *why, size_t cap);

/* Connect with pd_client and authenticate when token is non-NULL. On
 * error *why says what failed. Caller frees with pd_client_destroy(). */
pd_err pd__bench_connect(const char *host, uint16_t port, const char *token, pd_client_t **out,
                         char *why, size_t cap);

#endif /* PAIDAN_BENCH_COUNTY_H */
