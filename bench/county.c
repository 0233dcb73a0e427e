/* county.c -- volunteers and query places for the network benchmarks.
 *
 * A county is held in memory as plain pd_volunteer_t records so that the
 * same data can be loaded into paidan-server, Redis, PostGIS and Tarantool, and so
 * that location pings can move a volunteer near where they are. Orders
 * and query places come from the generator of paidan/data.h: its order
 * stream gives realistic skills, start times and durations; its population
 * density gives places where residents ask for help.
 */
#include "county.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pd_err set_why(char *why, size_t cap, pd_err err, const char *msg) {
    if (why && cap) snprintf(why, cap, "%s", msg);
    return err;
}

static pd_err make_gen(pd__county_t *c, uint64_t vols, uint64_t orders, uint64_t seed) {
    pd_gen_config_t g;
    pd_gen_config_init(&g);
    g.seed = seed;
    g.volunteers = vols;
    g.orders = orders ? orders : 1;
    return pd_gen_create(&g, &c->gen);
}

pd_err pd__county_generate(pd__county_t *c, uint64_t n, uint64_t orders, uint64_t seed) {
    memset(c, 0, sizeof *c);
    pd__bench_rng_seed(&c->rng, seed);
    pd_err err = make_gen(c, n, orders, seed);
    if (err) return err;
    c->vols = malloc((n ? n : 1) * sizeof *c->vols);
    if (!c->vols) {
        pd__county_deinit(c);
        return PD_ERR_NOMEM;
    }
    while (c->n < n && pd_gen_next_volunteer(c->gen, &c->vols[c->n])) c->n++;
    return PD_OK;
}

pd_err pd__county_read_csv(pd__county_t *c, const char *path, uint64_t orders, uint64_t seed,
                           char *why, size_t cap) {
    memset(c, 0, sizeof *c);
    pd__bench_rng_seed(&c->rng, seed);
    c->from_csv = true;
    pd_err err = make_gen(c, 1, orders, seed);
    if (err) return set_why(why, cap, err, "generator");
    size_t n_names;
    const char *const *names = pd_gen_skill_names(&n_names);
    pd_csv_reader_t *r = NULL;
    pd_csv_error_t cerr;
    err = pd_csv_reader_open(path, PD_CSV_VOLUNTEERS, names, n_names, &r, &cerr);
    if (err) {
        pd__county_deinit(c);
        return set_why(why, cap, err, cerr.message);
    }
    size_t cap_v = 4096;
    c->vols = malloc(cap_v * sizeof *c->vols);
    for (;;) {
        if (!c->vols) {
            err = PD_ERR_NOMEM;
            break;
        }
        bool got = false;
        pd_volunteer_t v;
        err = pd_csv_read_volunteer(r, &v, &got);
        if (err) {
            set_why(why, cap, err, pd_csv_reader_get_error(r)->message);
            break;
        }
        if (!got) break;
        if (c->n == cap_v) {
            cap_v *= 2;
            pd_volunteer_t *p = realloc(c->vols, cap_v * sizeof *p);
            if (!p) {
                err = PD_ERR_NOMEM;
                break;
            }
            c->vols = p;
        }
        c->vols[c->n++] = v;
    }
    pd_csv_reader_close(r);
    if (!err && c->n == 0) err = set_why(why, cap, PD_ERR_CORRUPT, "no volunteers in the file");
    if (err) pd__county_deinit(c);
    return err;
}

void pd__county_deinit(pd__county_t *c) {
    free(c->vols);
    pd_gen_destroy(c->gen);
    memset(c, 0, sizeof *c);
}

void pd__county_point(pd__county_t *c, pd_latlng_t *out) {
    if (!c->from_csv || c->n == 0) {
        pd_gen_random_point(c->gen, out);
        return;
    }
    /* Around a volunteer: a square of +-0.009 degrees (about 1 km). */
    const pd_volunteer_t *v = &c->vols[pd__bench_rng_next(&c->rng) % c->n];
    pd_latlng_t p = v->pos;
    p.lat += (int32_t)(pd__bench_rng_next(&c->rng) % 18001) - 9000;
    p.lon += (int32_t)(pd__bench_rng_next(&c->rng) % 18001) - 9000;
    if (!pd_latlng_is_valid(p)) p = v->pos;
    *out = p;
}

bool pd__county_order(pd__county_t *c, pd_gen_order_t *out) {
    if (!pd_gen_next_order(c->gen, out)) return false;
    if (c->from_csv) pd__county_point(c, &out->pos);
    return true;
}

size_t pd__county_skill_bits(const pd__county_t *c) {
    uint64_t all = 0;
    for (size_t i = 0; i < c->n; i++) all |= c->vols[i].skills;
    return all ? 64u - (size_t)__builtin_clzll(all) : 0;
}

void pd__names_from_generator(pd__names_t *names) {
    size_t n;
    const char *const *g = pd_gen_skill_names(&n);
    memset(names, 0, sizeof *names);
    for (size_t i = 0; i < n && i < PD_GEN_MAX_SKILLS; i++) {
        snprintf(names->buf[i], sizeof names->buf[i], "%s", g[i]);
        names->ptr[i] = names->buf[i];
    }
    names->n = n < PD_GEN_MAX_SKILLS ? n : PD_GEN_MAX_SKILLS;
}

pd_err pd__names_from_server(pd_client_t *cl, pd__names_t *names, char *why, size_t cap) {
    pd_msg_t m;
    pd_err err = pd_client_call(cl, "config.get", NULL, 0, &m);
    if (err) return set_why(why, cap, err, pd_client_last_error(cl));
    if (m.code) {
        if (why && cap) snprintf(why, cap, "config.get: %s", m.message);
        return (pd_err)m.code;
    }
    const msgpack_object *sk = pd_client_map_get(&m.result, "skills");
    if (!sk || sk->type != MSGPACK_OBJECT_ARRAY)
        return set_why(why, cap, PD_ERR_CORRUPT, "config.get: no 'skills' array");
    memset(names, 0, sizeof *names);
    for (uint32_t i = 0; i < sk->via.array.size && i < PD_GEN_MAX_SKILLS; i++) {
        const msgpack_object *s = &sk->via.array.ptr[i];
        if (s->type != MSGPACK_OBJECT_STR || s->via.str.size > PD_CSV_NAME_MAX)
            return set_why(why, cap, PD_ERR_CORRUPT, "config.get: a skill is not a short string");
        memcpy(names->buf[i], s->via.str.ptr, s->via.str.size);
        names->buf[i][s->via.str.size] = '\0';
        names->ptr[i] = names->buf[i];
        names->n = i + 1;
    }
    return PD_OK;
}

static void pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void pd__pack_skills(msgpack_packer *pk, uint64_t mask, const pd__names_t *names) {
    uint64_t m = names->n >= 64 ? mask : mask & ((1ULL << names->n) - 1);
    msgpack_pack_array(pk, (size_t)__builtin_popcountll(m));
    for (unsigned b = 0; b < 64; b++)
        if (m >> b & 1) pack_str(pk, names->ptr[b]);
}

static bool hour_set(const pd_week_t *w, int h) {
    return (w->bits[h >> 6] >> (h & 63)) & 1;
}

void pd__pack_week(msgpack_packer *pk, const pd_week_t *w) {
    size_t runs = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass) msgpack_pack_array(pk, runs);
        for (int d = 0; d < 7; d++) {
            int h = 0;
            while (h < 24) {
                if (!hour_set(w, d * 24 + h)) {
                    h++;
                    continue;
                }
                int s = h;
                while (h < 24 && hour_set(w, d * 24 + h)) h++;
                if (!pass) {
                    runs++;
                } else {
                    msgpack_pack_array(pk, 3);
                    msgpack_pack_int(pk, d);
                    msgpack_pack_int(pk, s);
                    msgpack_pack_int(pk, h);
                }
            }
        }
    }
}

void pd__pack_volunteer(msgpack_packer *pk, const pd_volunteer_t *v, const pd__names_t *names) {
    msgpack_pack_map(pk, 9);
    pack_str(pk, "id");
    msgpack_pack_uint64(pk, v->id);
    pack_str(pk, "lat");
    msgpack_pack_double(pk, v->pos.lat / 1e6);
    pack_str(pk, "lon");
    msgpack_pack_double(pk, v->pos.lon / 1e6);
    pack_str(pk, "skills");
    pd__pack_skills(pk, v->skills, names);
    pack_str(pk, "tags");
    msgpack_pack_uint64(pk, v->tags);
    pack_str(pk, "mode");
    const char *mode = pd_mode_name((pd_mode)v->mode);
    pack_str(pk, mode ? mode : "walk");
    pack_str(pk, "schedule");
    pd__pack_week(pk, &v->week);
    pack_str(pk, "capacity");
    msgpack_pack_uint8(pk, v->capacity);
    pack_str(pk, "status");
    const char *st = pd_status_name((pd_status)v->status);
    pack_str(pk, st ? st : "online");
}

pd_err pd__county_upload(pd_client_t *cl, const pd__county_t *c, const pd__names_t *names,
                         bool progress, char *why, size_t cap) {
    enum { BATCH = 1000 };
    size_t bits = pd__county_skill_bits(c);
    if (bits > names->n) {
        if (why && cap)
            snprintf(why, cap, "the county uses skill bit %zu but the server names only %zu skills",
                     bits - 1, names->n);
        return PD_ERR_UNKNOWN_SKILL;
    }
    uint64_t t0 = pd__bench_now_ns(), last = t0;
    for (size_t i = 0; i < c->n; i += BATCH) {
        size_t end = i + BATCH < c->n ? i + BATCH : c->n;
        for (size_t j = i; j < end; j++) {
            msgpack_packer *pk = pd_client_begin(cl, "volunteer.upsert", NULL);
            pd__pack_volunteer(pk, &c->vols[j], names);
            pd_client_end(cl);
        }
        pd_err err = pd_client_flush(cl);
        if (err) return set_why(why, cap, err, pd_client_last_error(cl));
        for (size_t j = i; j < end; j++) {
            pd_msg_t m;
            err = pd_client_read_response(cl, &m);
            if (err) return set_why(why, cap, err, pd_client_last_error(cl));
            if (m.code) {
                if (why && cap)
                    snprintf(why, cap, "volunteer.upsert %llu: %s",
                             (unsigned long long)c->vols[j].id, m.message);
                /* Drain the rest of the batch so the connection stays usable. */
                for (size_t k = j + 1; k < end; k++)
                    if (pd_client_read_response(cl, &m)) break;
                return (pd_err)m.code ? (pd_err)m.code : PD_ERR_INTERNAL;
            }
        }
        uint64_t now = pd__bench_now_ns();
        if (progress && (now - last > 1000000000ULL || end == c->n)) {
            fprintf(stderr, "load: %zu/%zu volunteers uploaded (%.1f s)\n", end, c->n,
                    (double)(now - t0) / 1e9);
            last = now;
        }
    }
    return PD_OK;
}

pd_err pd__bench_connect(const char *host, uint16_t port, const char *token, pd_client_t **out,
                         char *why, size_t cap) {
    pd_client_t *cl = NULL;
    pd_err err = pd_client_connect(host, port, 5000, &cl);
    if (err) {
        if (why && cap) snprintf(why, cap, "%s", pd_client_connect_error());
        return err;
    }
    pd_client_set_timeout(cl, 30000);
    if (token) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        pack_str(&pk, "token");
        pack_str(&pk, token);
        pd_msg_t m;
        err = pd_client_call(cl, "auth", sb.data, sb.size, &m);
        msgpack_sbuffer_destroy(&sb);
        if (!err && m.code) {
            if (why && cap) snprintf(why, cap, "auth refused: %s", m.message);
            err = (pd_err)m.code;
        } else if (err && why && cap) {
            snprintf(why, cap, "auth: %s", pd_client_last_error(cl));
        }
        if (err) {
            pd_client_destroy(cl);
            return err;
        }
    }
    *out = cl;
    return PD_OK;
}
