/* replay.c -- historical orders through the engine, in virtual time.
 *
 * A discrete-event simulation around the real engine (pd_engine_*). Three
 * kinds of things happen, and the earliest goes first:
 *
 *   - an offer deadline passes: pd_engine_tick() expires it and the engine
 *     re-dispatches (the engine says when with pd_engine_next_deadline());
 *   - a simulated answer, completion or rating falls due (a binary heap of
 *     events ordered by time, then by the order they were scheduled);
 *   - the next order of the history arrives: order.create + dispatch.
 *
 * Ties go in that order. Engine events (offered, accepted, expired, ...)
 * arrive through the engine's callback during each call; they are queued
 * and handled after the call returns, since the callback must not change
 * the engine. An offer is answered by the response model (replay.h): left
 * to expire, accepted or declined after a log-normal delay; an accepted
 * order completes `duration_min` after its start (or after the accept, if
 * later), and is rated some time after that.
 *
 * Nothing reads a clock except the wall-time figures (orders per second,
 * dispatch latency), so a replay is deterministic: same input, same seed,
 * same figures and the same engine digest.
 *
 * Orders come from an order source (CSV, generator or a server's journal,
 * jsource.c). CSV and journal orders are read whole, repeated ids dropped
 * (the first of each kept, the rest counted) and stably sorted by created
 * time before the loop, so each order is created at its own time.
 */
#include "replay.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "jsource.h"

void pd__replay_model_init(pd__replay_model_t *m) {
    m->accept_base = 0.85;
    m->accept_per_km = 0.04;
    m->accept_per_hour = 0.02;
    m->accept_min = 0.05;
    m->no_answer = 0.10;
    m->response_median_s = 45;
    m->response_sigma = 0.8;
    m->rate_share = 0.85;
    m->rating_delay_median_s = 3600;
    static const double p[5] = {0.02, 0.03, 0.08, 0.25, 0.62};
    memcpy(m->rating_p, p, sizeof p);
    m->rating_quality = 0.5;
    m->withdraw = 0;
}

void pd__replay_opts_init(pd__replay_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->gen_volunteers = 5000;
    o->gen_orders = 2000;
    o->gen_days = 7;
    o->seed = 1;
    o->policies[0] = PD_POLICY_BALANCED;
    o->n_policies = 1;
    pd__replay_model_init(&o->model);
}

void pd__replay_result_deinit(pd__replay_result_t *r) {
    free(r->dispatch_ns);
    free(r->tta_s);
    r->dispatch_ns = NULL;
    r->tta_s = NULL;
    r->n_tta = 0;
}

__attribute__((format(printf, 4, 5))) static pd_err fail(char *why, size_t cap, pd_err err,
                                                         const char *fmt, ...) {
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* --------------------------------------------------------------- sources */

/* Where volunteers and orders come from. The CSV and journal sources
 * hand out their orders from one array, read whole, rid of repeated ids
 * and sorted by creation time before the replay starts (prepare_orders);
 * the generator's stream is sorted and its ids 1..M by construction, so it
 * streams. */
typedef struct source_s {
    pd_csv_reader_t *vol_csv;
    pd_csv_reader_t *ord_csv;
    pd_gen_t *gen;
    pd__jsource_t js;         /* the journal source's records */
    pd__rorder_t *ords;       /* CSV, journal: every order to replay, in time order */
    const uint64_t *slots;    /* journal: team orders' slot masks */
    bool js_orders;           /* ords are a journal's: ids may be taken again */
    size_t no, io;            /* how many, next to hand out */
    bool own_ords;            /* ords is ours to free (else js.ords) */
    const pd__jvol_ev_t *vev; /* journal: what happened to volunteers, by time */
    size_t nvev, ivev;
    uint64_t total_orders; /* expected, for the progress bar; 0 if unknown */
    /* The next order, or false at the end; errors name the place. */
    pd_err (*next_order)(struct source_s *s, pd__rorder_t *out, bool *got, char *why, size_t cap);
    pd_err (*next_volunteer)(struct source_s *s, pd_volunteer_t *out, bool *got, char *why,
                             size_t cap);
} source_t;

static pd_err arr_next_order(source_t *s, pd__rorder_t *out, bool *got, char *why, size_t cap) {
    (void)why;
    (void)cap;
    *got = s->io < s->no;
    if (*got) *out = s->ords[s->io++];
    return PD_OK;
}

static pd_err csv_next_volunteer(source_t *s, pd_volunteer_t *out, bool *got, char *why,
                                 size_t cap) {
    pd_err err = pd_csv_read_volunteer(s->vol_csv, out, got);
    if (err) return fail(why, cap, err, "%s", pd_csv_reader_get_error(s->vol_csv)->message);
    return PD_OK;
}

/* A CSV's or the generator's order as the replay creates it. */
static void rorder_of(const pd_gen_order_t *g, pd__rorder_t *out) {
    memset(out, 0, sizeof *out);
    out->g = *g;
    out->budget_s = g->budget_min * 60;
}

static pd_err gen_next_order(source_t *s, pd__rorder_t *out, bool *got, char *why, size_t cap) {
    (void)why;
    (void)cap;
    pd_gen_order_t g;
    *got = pd_gen_next_order(s->gen, &g);
    if (*got) rorder_of(&g, out);
    return PD_OK;
}

static pd_err gen_next_volunteer(source_t *s, pd_volunteer_t *out, bool *got, char *why,
                                 size_t cap) {
    (void)why;
    (void)cap;
    *got = pd_gen_next_volunteer(s->gen, out);
    return PD_OK;
}

static pd_err js_next_volunteer(source_t *s, pd_volunteer_t *out, bool *got, char *why,
                                size_t cap) {
    (void)why;
    (void)cap;
    *got = s->js.iv < s->js.nv;
    if (*got) *out = s->js.vols[s->js.iv++];
    return PD_OK;
}

/* ------------------------------------------------- repeats and order */

/* A set of order ids: open addressing, linear probing, 0 marks a free
 * slot (id 0 has its own flag). */
typedef struct idset_s {
    uint64_t *slot;
    size_t mask;
    bool has_zero;
} idset_t;

/* Add id; *seen says whether it was there already. */
static void idset_add(idset_t *h, uint64_t id, bool *seen) {
    if (id == 0) {
        *seen = h->has_zero;
        h->has_zero = true;
        return;
    }
    size_t i = (size_t)pd__bench_mix64(id, 0) & h->mask;
    while (h->slot[i] && h->slot[i] != id) i = (i + 1) & h->mask;
    *seen = h->slot[i] == id;
    h->slot[i] = id;
}

/* Drop every order whose id came earlier in v (input order), keeping the
 * first; count them and note the first few ids in res. With `renumber`
 * (a journal: the server takes an id again once its order was purged, so
 * a repeat there is a new order) a repeat gets a fresh id instead. */
static pd_err drop_repeats(pd__rorder_t *v, size_t *n, bool renumber, pd__replay_result_t *res) {
    size_t cap = 16;
    while (cap < *n * 2) cap *= 2;
    idset_t h = {calloc(cap, sizeof(uint64_t)), cap - 1, false};
    if (!h.slot) return PD_ERR_NOMEM;
    uint64_t fresh = 0;
    for (size_t i = 0; i < *n; i++)
        if (v[i].g.id > fresh) fresh = v[i].g.id;
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        bool seen;
        idset_add(&h, v[i].g.id, &seen);
        if (seen && renumber) {
            /* the next id past the largest that is free (n < 2^63 ids,
             * so this ends) */
            do idset_add(&h, ++fresh, &seen);
            while (seen);
            v[i].g.id = fresh;
        }
        if (!seen) {
            v[kept++] = v[i];
            continue;
        }
        if (res->n_dup_ids < sizeof res->dup_ids / sizeof res->dup_ids[0])
            res->dup_ids[res->n_dup_ids++] = v[i].g.id;
        res->duplicates++;
    }
    free(h.slot);
    *n = kept;
    return PD_OK;
}

/* Sort by created_ms, stable (equal times keep input order): a bottom-up
 * merge sort, after a pass that finds most histories sorted already. */
static pd_err sort_by_created(pd__rorder_t *v, size_t n) {
    size_t i = 1;
    while (i < n && v[i - 1].g.created_ms <= v[i].g.created_ms) i++;
    if (i >= n) return PD_OK;
    pd__rorder_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return PD_ERR_NOMEM;
    pd__rorder_t *a = v, *b = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t x = lo, y = mid, k = lo;
            while (x < mid && y < hi)
                b[k++] = a[y].g.created_ms < a[x].g.created_ms ? a[y++] : a[x++];
            while (x < mid) b[k++] = a[x++];
            while (y < hi) b[k++] = a[y++];
        }
        pd__rorder_t *t = a;
        a = b;
        b = t;
    }
    if (a != v) memcpy(v, a, n * sizeof *v);
    free(tmp);
    return PD_OK;
}

/* The whole orders CSV into s->ords. */
static pd_err csv_read_orders(source_t *s, char *why, size_t cap) {
    size_t room = 0;
    s->own_ords = true;
    for (;;) {
        pd_gen_order_t o;
        bool got = false;
        pd_err err = pd_csv_read_order(s->ord_csv, &o, &got);
        if (err) return fail(why, cap, err, "%s", pd_csv_reader_get_error(s->ord_csv)->message);
        if (!got) return PD_OK;
        if (s->no == room) {
            size_t n = room ? room * 2 : 1024;
            pd__rorder_t *p = realloc(s->ords, n * sizeof *p);
            if (!p) return fail(why, cap, PD_ERR_NOMEM, "out of memory reading the orders");
            s->ords = p;
            room = n;
        }
        rorder_of(&o, &s->ords[s->no++]);
    }
}

/* Repeated ids out, then time order: what the replay hands the engine.
 * A created time the engine cannot run at (|t| > 2^52 ms) stops the
 * replay: virtual time would jump there (or past INT64_MAX, where the
 * loop ends and the order was silently lost). */
static pd_err prepare_orders(source_t *s, const char *input, pd__replay_result_t *res, char *why,
                             size_t cap) {
    for (size_t i = 0; i < s->no; i++) {
        int64_t t = s->ords[i].g.created_ms;
        if (t > PD_TIME_MAX_MS || t < -PD_TIME_MAX_MS)
            return fail(why, cap, PD_ERR_BAD_ARG,
                        "%s: order %llu: created %lld ms is outside the engine's time range "
                        "(-2^52..2^52 ms)",
                        input, (unsigned long long)s->ords[i].g.id, (long long)t);
    }
    pd_err err = drop_repeats(s->ords, &s->no, s->js_orders, res);
    if (!err) err = sort_by_created(s->ords, s->no);
    if (err) return fail(why, cap, err, "out of memory sorting the orders");
    s->total_orders = s->no;
    s->next_order = arr_next_order;
    return PD_OK;
}

static void source_close(source_t *s) {
    if (s->own_ords) free(s->ords);
    pd_csv_reader_close(s->vol_csv);
    pd_csv_reader_close(s->ord_csv);
    pd_gen_destroy(s->gen);
    pd__jsource_free(&s->js);
    memset(s, 0, sizeof *s);
}

static pd_err source_open(const pd__replay_opts_t *o, const char *const *names, size_t n_names,
                          source_t *s, pd__replay_result_t *res, char *why, size_t cap) {
    memset(s, 0, sizeof *s);
    if (o->journal_dir) {
        pd_err err = pd__jsource_load(o->journal_dir, names, n_names, &s->js, why, cap);
        if (err) {
            source_close(s);
            return err;
        }
        s->next_volunteer = js_next_volunteer;
        s->vev = s->js.vev;
        s->nvev = s->js.nvev;
        s->ords = s->js.ords;
        s->no = s->js.no;
        s->slots = s->js.slots;
        s->js_orders = true;
        err = prepare_orders(s, o->journal_dir, res, why, cap);
        if (err) source_close(s);
        return err;
    }
    if (o->volunteers_csv || o->orders_csv) {
        if (!o->volunteers_csv || !o->orders_csv)
            return fail(why, cap, PD_ERR_BAD_ARG, "give both a volunteers CSV and an orders CSV");
        pd_csv_error_t ce;
        pd_err err = pd_csv_reader_open(o->volunteers_csv, PD_CSV_VOLUNTEERS, names, n_names,
                                        &s->vol_csv, &ce);
        if (err) return fail(why, cap, err, "%s", ce.message);
        err = pd_csv_reader_open(o->orders_csv, PD_CSV_ORDERS, names, n_names, &s->ord_csv, &ce);
        if (err) {
            source_close(s);
            return fail(why, cap, err, "%s", ce.message);
        }
        s->next_volunteer = csv_next_volunteer;
        err = csv_read_orders(s, why, cap);
        if (!err) err = prepare_orders(s, o->orders_csv, res, why, cap);
        if (err) source_close(s);
        return err;
    }
    pd_gen_config_t g;
    pd_gen_config_init(&g);
    g.seed = o->seed;
    g.volunteers = o->gen_volunteers;
    g.orders = o->gen_orders;
    g.days = o->gen_days;
    pd_err err = pd_gen_create(&g, &s->gen);
    if (err) return fail(why, cap, err, "generator: bad county settings");
    s->next_order = gen_next_order;
    s->next_volunteer = gen_next_volunteer;
    s->total_orders = o->gen_orders;
    return PD_OK;
}

/* ------------------------------------------------------------ event heap */

enum { EV_ACCEPT, EV_DECLINE, EV_COMPLETE, EV_RATE, EV_RELEASE };

typedef struct ev_s {
    int64_t t;    /* virtual ms */
    uint64_t seq; /* scheduling order, for ties */
    uint64_t order;
    uint64_t volunteer;
    uint8_t kind;
    uint8_t rating;
    /* EV_COMPLETE: the fill it completes (the order's accepted_ms then; a
     * release and a new fill make it stale) and that fill's figures */
    int64_t filled_ms;
    double tta_s, eta_s;
} ev_t;

typedef struct sim_s {
    pd_engine_t *e;
    const pd__replay_opts_t *o;
    const pd__replay_model_t *m;
    double speed_mps[PD_MODE__COUNT];
    double detour;
    pd__kpi_t kpi;
    ev_t *heap;
    size_t n_heap, cap_heap;
    uint64_t seq;
    pd_event_t *pend; /* engine events of the current call */
    size_t n_pend, cap_pend;
    bool oom;
} sim_t;

static bool ev_less(const ev_t *a, const ev_t *b) {
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void heap_push(sim_t *s, ev_t ev) {
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 1024;
        ev_t *h = realloc(s->heap, cap * sizeof *h);
        if (!h) {
            s->oom = true;
            return;
        }
        s->heap = h;
        s->cap_heap = cap;
    }
    ev.seq = s->seq++;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&ev, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = ev;
}

static ev_t heap_pop(sim_t *s) {
    ev_t top = s->heap[0];
    ev_t last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const ev_t *best = &last;
        if (l < n && ev_less(&s->heap[l], best)) m = l, best = &s->heap[l];
        if (r < n && ev_less(&s->heap[r], best)) m = r;
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* ---------------------------------------------------------------- model */

static void on_engine_event(void *ud, const pd_event_t *ev) {
    sim_t *s = ud;
    if (s->n_pend == s->cap_pend) {
        size_t cap = s->cap_pend ? s->cap_pend * 2 : 64;
        pd_event_t *p = realloc(s->pend, cap * sizeof *p);
        if (!p) {
            s->oom = true;
            return;
        }
        s->pend = p;
        s->cap_pend = cap;
    }
    s->pend[s->n_pend++] = *ev;
}

/* A standard normal draw (Box-Muller). */
static double normal(pd__bench_rng_t *r) {
    double u1 = pd__bench_rng_unit(r), u2 = pd__bench_rng_unit(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int64_t lognormal_ms(pd__bench_rng_t *r, double median_s, double sigma) {
    double x = median_s * exp(sigma * normal(r));
    if (x > 30.0 * 86400) x = 30.0 * 86400;
    return (int64_t)(x * 1000.0) + 1;
}

/* ETA of a volunteer to a place, in seconds, as the index computes it. */
static double eta_s(const sim_t *s, const pd_volunteer_t *v, pd_latlng_t at) {
    double d = pd_latlng_fast_m(v->pos, at);
    unsigned mode = v->mode < PD_MODE__COUNT ? v->mode : 0;
    return d * s->detour / s->speed_mps[mode];
}

static void on_offered(sim_t *s, const pd_event_t *ev) {
    const pd__replay_model_t *m = s->m;
    s->kpi.offers++;
    pd_order_info_t oi;
    pd_volunteer_info_t vi;
    if (pd_engine_order_get(s->e, ev->order_id, &oi) ||
        pd_engine_volunteer_get(s->e, ev->volunteer_id, ev->at_ms, &vi))
        return;
    pd__bench_rng_t r;
    pd__bench_rng_seed(
        &r, pd__bench_mix64(pd__bench_mix64(s->o->seed, ev->order_id), ev->volunteer_id));
    if (pd__bench_rng_unit(&r) < m->no_answer) return;
    double km = pd_latlng_fast_m(vi.v.pos, oi.at) / 1000.0;
    double p = m->accept_base - m->accept_per_km * km -
               m->accept_per_hour * (double)vi.rec.minutes_7d / 60.0;
    if (p < m->accept_min) p = m->accept_min;
    if (p > 1) p = 1;
    bool accept = pd__bench_rng_unit(&r) < p;
    int64_t t = ev->at_ms + lognormal_ms(&r, m->response_median_s, m->response_sigma);
    if (t >= ev->deadline_ms) return; /* too slow: the offer expires first */
    ev_t x = {t, 0, ev->order_id, ev->volunteer_id, accept ? EV_ACCEPT : EV_DECLINE, 0, 0, 0, 0};
    heap_push(s, x);
}

static void on_filled(sim_t *s, const pd_event_t *ev) {
    pd_order_info_t oi;
    if (pd_engine_order_get(s->e, ev->order_id, &oi)) return;
    pd_order_slot_t slots[PD_ORDER_MAX_SLOTS];
    size_t n = 0;
    double worst = 0;
    if (pd_engine_order_slots(s->e, ev->order_id, slots, PD_ORDER_MAX_SLOTS, &n) == PD_OK) {
        for (size_t i = 0; i < n; i++) {
            pd_volunteer_info_t vi;
            if (!slots[i].filled ||
                pd_engine_volunteer_get(s->e, slots[i].volunteer_id, ev->at_ms, &vi))
                continue;
            double x = eta_s(s, &vi.v, oi.at);
            if (x > worst) worst = x;
        }
    }
    /* Counted as filled when this fill is served: a volunteer who
     * withdraws (--withdraw) undoes it, and the order is filled again, or
     * not at all. */
    int64_t begin = oi.start_ms > ev->at_ms ? oi.start_ms : ev->at_ms;
    ev_t x = {begin + (int64_t)oi.duration_min * 60000,
              0,
              ev->order_id,
              0,
              EV_COMPLETE,
              0,
              oi.accepted_ms,
              (double)(ev->at_ms - oi.created_ms) / 1000.0,
              worst};
    heap_push(s, x);
}

/* With --withdraw: a volunteer who accepted may give the slot back
 * (order.release) between their accept and the service's start. Drawn
 * from (seed, order, volunteer), the same under every policy. */
static void maybe_withdraw(sim_t *s, const pd_event_t *ev) {
    const pd__replay_model_t *m = s->m;
    if (m->withdraw <= 0 || !ev->has_volunteer) return;
    pd__bench_rng_t r;
    pd__bench_rng_seed(&r, pd__bench_mix64(pd__bench_mix64(s->o->seed, ev->order_id),
                                           ev->volunteer_id ^ 0x57445257));
    if (pd__bench_rng_unit(&r) >= m->withdraw) return;
    pd_order_info_t oi;
    if (pd_engine_order_get(s->e, ev->order_id, &oi)) return;
    int64_t first = ev->at_ms + 60000, last = oi.start_ms > first ? oi.start_ms : first;
    int64_t t = first + (int64_t)(pd__bench_rng_unit(&r) * (double)(last - first));
    ev_t x = {t, 0, ev->order_id, ev->volunteer_id, EV_RELEASE, 0, 0, 0, 0};
    heap_push(s, x);
}

/* A volunteer's quality, in [0, 1): fixed for a seed, the same under
 * every policy. */
static double quality(uint64_t seed, uint64_t vol) {
    pd__bench_rng_t r;
    pd__bench_rng_seed(&r, pd__bench_mix64(pd__bench_mix64(seed, vol), 0x5155414c));
    return pd__bench_rng_unit(&r);
}

static void on_completed(sim_t *s, const pd_event_t *ev) {
    const pd__replay_model_t *m = s->m;
    s->kpi.completed++;
    pd__bench_rng_t r;
    pd__bench_rng_seed(&r, pd__bench_mix64(pd__bench_mix64(s->o->seed, ev->order_id), 0x52415445));
    if (pd__bench_rng_unit(&r) >= m->rate_share) return;
    /* The stars come from the order's draw and the serving volunteers'
     * mean quality: u' = (1 - w) u + w q, read through the cumulative
     * rating_p, so a better volunteer tends to better stars and a policy
     * that picks them (rated) shows in the mean rating. */
    double u = pd__bench_rng_unit(&r), acc = 0;
    if (m->rating_quality > 0) {
        pd_order_slot_t sl[PD_ORDER_MAX_SLOTS];
        size_t n = 0;
        double q = 0;
        size_t nq = 0;
        if (pd_engine_order_slots(s->e, ev->order_id, sl, PD_ORDER_MAX_SLOTS, &n) != PD_OK) n = 0;
        for (size_t i = 0; i < n; i++) {
            if (!sl[i].filled) continue;
            q += quality(s->o->seed, sl[i].volunteer_id);
            nq++;
        }
        if (nq) u = (1 - m->rating_quality) * u + m->rating_quality * (q / (double)nq);
    }
    uint8_t rating = 5;
    for (int i = 0; i < 5; i++) {
        acc += m->rating_p[i];
        if (u < acc) {
            rating = (uint8_t)(i + 1);
            break;
        }
    }
    int64_t t = ev->at_ms + lognormal_ms(&r, m->rating_delay_median_s, 1.0);
    ev_t x = {t, 0, ev->order_id, 0, EV_RATE, rating, 0, 0, 0};
    heap_push(s, x);
}

/* Handle the engine events queued by the last call. */
static void drain_events(sim_t *s) {
    for (size_t i = 0; i < s->n_pend; i++) {
        const pd_event_t *ev = &s->pend[i];
        switch (ev->type) {
            case PD_EVENT_OFFERED:
                on_offered(s, ev);
                break;
            case PD_EVENT_ACCEPTED:
                s->kpi.offers_accepted++;
                maybe_withdraw(s, ev);
                if (ev->order_state == PD_ORDER_ACCEPTED) on_filled(s, ev);
                break;
            case PD_EVENT_RELEASED:
                if (ev->reason == PD_REASON_WITHDREW) s->kpi.releases++;
                break;
            case PD_EVENT_DECLINED:
                s->kpi.offers_declined++;
                break;
            case PD_EVENT_OFFER_EXPIRED:
                s->kpi.offers_expired++;
                break;
            case PD_EVENT_EXPIRED:
                if (ev->reason < PD_REASON__COUNT) s->kpi.expired[ev->reason]++;
                break;
            case PD_EVENT_COMPLETED:
                on_completed(s, ev);
                break;
            case PD_EVENT_RATED:
                s->kpi.rated++;
                s->kpi.rating_sum += ev->rating;
                break;
            default:
                break;
        }
    }
    s->n_pend = 0;
}

static void handle(sim_t *s, const ev_t *ev) {
    /* A call refused here is part of the story, not a failure: the offer
     * was withdrawn meanwhile (grab lost, order expired), or the order
     * was purged before its rating came. */
    switch (ev->kind) {
        case EV_ACCEPT:
            pd_engine_order_accept(s->e, ev->order, ev->volunteer, ev->t);
            break;
        case EV_DECLINE:
            pd_engine_order_decline(s->e, ev->order, ev->volunteer, ev->t);
            break;
        case EV_COMPLETE: {
            pd_order_info_t oi;
            if (pd_engine_order_get(s->e, ev->order, &oi) || oi.state != PD_ORDER_ACCEPTED ||
                oi.accepted_ms != ev->filled_ms)
                break; /* a fill undone by a release: its own completion is due */
            if (pd_engine_order_complete(s->e, ev->order, -1, ev->t) == PD_OK &&
                pd__kpi_filled(&s->kpi, ev->tta_s, ev->eta_s))
                s->oom = true;
            break;
        }
        case EV_RELEASE:
            pd_engine_order_release(s->e, ev->order, ev->volunteer, ev->t);
            break;
        case EV_RATE:
            pd_engine_order_rate(s->e, ev->order, ev->rating, ev->t);
            break;
        default:
            break;
    }
    drain_events(s);
}

/* ------------------------------------------------------------------- run */

/* Apply what the journal did to a volunteer. True if the replay's engine
 * refused it: an update or removal of a volunteer it does not hold, an
 * upsert or update its state cannot take (a capacity below the load the
 * replay gave them). A removal of a volunteer who holds an order the
 * replay accepted is refused by the engine; they go offline instead, so
 * they get nothing new, and that counts as refused too. */
static bool apply_volunteer_event(pd_engine_t *e, const pd__jvol_ev_t *ve, int64_t now) {
    pd_err err = PD_OK;
    switch (ve->kind) {
        case PD__JV_UPSERT:
            err = pd_engine_volunteer_upsert(e, &ve->v, now);
            break;
        case PD__JV_UPDATE:
            err = pd_engine_volunteer_update(e, ve->v.id, &ve->patch, now);
            break;
        case PD__JV_REMOVE:
            err = pd_engine_volunteer_remove(e, ve->v.id, now);
            if (err == PD_ERR_ILLEGAL) {
                pd_volunteer_patch_t off = {.fields = PD_VF_STATUS, .status = PD_STATUS_OFFLINE};
                (void)pd_engine_volunteer_update(e, ve->v.id, &off, now);
            }
            break;
        default:
            break;
    }
    return err != PD_OK;
}

typedef struct hours_ctx_s {
    double *hours;
    size_t n;
    size_t served;
} hours_ctx_t;

static bool collect_hours(void *ud, const pd_volunteer_info_t *vi) {
    hours_ctx_t *h = ud;
    h->hours[h->n++] = (double)vi->rec.minutes_total / 60.0;
    h->served += vi->rec.orders_completed > 0;
    return true;
}

static void progress_bar(const char *policy, uint64_t done, uint64_t total, bool final) {
    int width = 30;
    double f = total ? (double)done / (double)total : 0;
    if (f > 1) f = 1;
    int fill = (int)(f * width);
    fprintf(stderr, "\rreplay %-9s [", policy);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %3.0f%%  %llu/%llu orders", f * 100.0, (unsigned long long)done,
            (unsigned long long)total);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static pd_err replay_one(const pd__replay_opts_t *o, const pd_engine_config_t *base,
                         pd_policy policy, pd__replay_result_t *res, char *why, size_t cap) {
    memset(res, 0, sizeof *res);
    res->policy = policy;
    res->utc_offset_min = base->utc_offset_min;
    res->dispatch_ns = malloc(sizeof *res->dispatch_ns);
    if (!res->dispatch_ns) return PD_ERR_NOMEM;
    pd_hist_init(res->dispatch_ns);

    pd_engine_config_t cfg = *base;
    cfg.policy = policy;
    sim_t s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.m = &o->model;
    s.detour = cfg.index.detour;
    for (int i = 0; i < PD_MODE__COUNT; i++) s.speed_mps[i] = cfg.index.speed_kmh[i] / 3.6;
    pd__kpi_init(&s.kpi);
    pd_err err = pd_engine_create(&cfg, &s.e);
    if (err) return fail(why, cap, err, "engine: bad configuration");
    pd_engine_set_event_cb(s.e, on_engine_event, &s);

    const char *names[PD_MAX_SKILLS];
    for (uint32_t i = 0; i < cfg.n_skills; i++) names[i] = cfg.skills[i];
    source_t src;
    err = source_open(o, names, cfg.n_skills, &src, res, why, cap);
    if (err) {
        pd_engine_destroy(s.e);
        return err;
    }

    /* The volunteers there from the start (a CSV's, a generated county's,
     * a snapshot's); a journal's own come at their times below. */
    for (;;) {
        pd_volunteer_t v;
        bool got = false;
        err = src.next_volunteer(&src, &v, &got, why, cap);
        if (err || !got) break;
        pd_err e2 = pd_engine_volunteer_upsert(s.e, &v, 0);
        if (e2) {
            err = fail(why, cap, e2, "volunteer %llu refused by the engine: %s",
                       (unsigned long long)v.id, pd_strerror(e2));
            break;
        }
    }
    res->volunteers = pd_engine_volunteer_count(s.e);
    res->input_skipped = src.js.skipped;
    res->volunteer_events = src.nvev;

    bool bar = o->progress && pd__bench_isatty(stderr);
    const char *pname = pd_policy_name(policy);
    uint64_t wall0 = pd__bench_now_ns(), last_bar = wall0;
    int64_t now = INT64_MIN;
    pd__rorder_t ord;
    bool have = false;
    if (!err) err = src.next_order(&src, &ord, &have, why, cap);
    uint64_t since_purge = 0;
    bool started = false; /* first_ms is set (a created time may be 0) */
    while (!err && !s.oom) {
        int64_t t_tick = INT64_MAX, t_ev = INT64_MAX, t_ord = INT64_MAX;
        pd_engine_next_deadline(s.e, &t_tick);
        if (s.n_heap) t_ev = s.heap[0].t;
        /* What the journal did to a volunteer comes first at its time (a
         * platform registers a volunteer, then sends the orders). */
        if (src.ivev < src.nvev) {
            const pd__jvol_ev_t *ve = &src.vev[src.ivev];
            int64_t t_vol = ve->ts_ms > now ? ve->ts_ms : now;
            if (t_vol <= t_tick && t_vol <= t_ev && (!have || t_vol <= ord.g.created_ms)) {
                now = t_vol;
                if (apply_volunteer_event(s.e, ve, now)) res->volunteer_events_refused++;
                drain_events(&s);
                src.ivev++;
                continue;
            }
        }
        /* Orders come sorted by created time and everything else waits
         * for the next order's time, so now never passes it: the order is
         * created at its historical time, and time to accept counts from
         * there. */
        if (have) t_ord = ord.g.created_ms > now ? ord.g.created_ms : now;
        int64_t t = t_tick < t_ev ? t_tick : t_ev;
        if (t_ord < t) t = t_ord;
        if (t == INT64_MAX) break;
        if (t > now) now = t;
        if (t_tick <= t_ev && t_tick <= t_ord) {
            err = pd_engine_tick(s.e, now, NULL);
            drain_events(&s);
            continue;
        }
        if (t_ev <= t_ord) {
            ev_t ev = heap_pop(&s);
            ev.t = now;
            handle(&s, &ev);
            continue;
        }
        /* The next order arrives. */
        if (!started) {
            started = true;
            res->first_ms = now;
            res->volunteers = pd_engine_volunteer_count(s.e);
        }
        pd_order_spec_t spec;
        pd_gen_order_spec(&ord.g, &spec);
        spec.budget_s = ord.budget_s;
        spec.tags = ord.tags;
        spec.ignore_schedule = ord.ignore_schedule;
        if (ord.n_slots) {
            spec.slot_skills = src.slots + ord.slot_off;
            spec.n_slots = ord.n_slots;
            spec.skills = 0;
            spec.need = 0;
        }
        spec.mode = o->grab ? PD_OFFER_GRAB : PD_OFFER_SEQUENTIAL;
        s.kpi.orders++;
        uint64_t c0 = pd__bench_now_ns();
        pd_err ce = pd_engine_order_create_dispatch(s.e, &spec, now, NULL);
        uint64_t c1 = pd__bench_now_ns();
        pd_hist_record(res->dispatch_ns, c1 - c0);
        if (ce) s.kpi.rejected++;
        drain_events(&s);
        res->last_ms = now;
        /* Keep the engine small on long histories: closed orders older
         * than three days (ratings come within hours) go. */
        if (++since_purge == 4096) {
            since_purge = 0;
            pd_engine_order_purge(s.e, now - 3LL * 86400000, NULL);
        }
        if (bar && (s.kpi.orders & 255) == 0) {
            uint64_t w = pd__bench_now_ns();
            if (w - last_bar > 100000000ULL) {
                progress_bar(pname, s.kpi.orders, src.total_orders, false);
                last_bar = w;
            }
        }
        err = src.next_order(&src, &ord, &have, why, cap);
    }
    if (bar)
        progress_bar(pname, s.kpi.orders, src.total_orders ? src.total_orders : s.kpi.orders, true);
    if (!err && s.oom) err = fail(why, cap, PD_ERR_NOMEM, "out of memory");
    res->wall_s = (double)(pd__bench_now_ns() - wall0) / 1e9;
    res->orders_per_s = res->wall_s > 0 ? (double)s.kpi.orders / res->wall_s : 0;

    if (!err) {
        size_t nv = pd_engine_volunteer_count(s.e);
        hours_ctx_t hc = {malloc((nv ? nv : 1) * sizeof(double)), 0, 0};
        if (!hc.hours) {
            err = PD_ERR_NOMEM;
        } else {
            pd_engine_foreach_volunteer(s.e, now, collect_hours, &hc);
            pd__kpi_summarise(&s.kpi, hc.hours, hc.n, hc.served, &res->kpi);
            res->volunteers_end = hc.n;
            res->rated = s.kpi.rated;
            free(hc.hours);
            res->digest = pd_engine_digest(s.e);
            /* Keep the (now sorted) times to accept for the charts. */
            res->tta_s = s.kpi.tta_s.v;
            res->n_tta = s.kpi.tta_s.n;
            s.kpi.tta_s.v = NULL;
            s.kpi.tta_s.n = s.kpi.tta_s.cap = 0;
        }
    }
    source_close(&src);
    pd_engine_destroy(s.e);
    pd__kpi_deinit(&s.kpi);
    free(s.heap);
    free(s.pend);
    return err;
}

/* Any key of paidan-server's [server] section: not the replay's to judge. */
static int skip_key(void *ud, const char *key, const char *value, const char **expect) {
    (void)ud, (void)key, (void)value, (void)expect;
    return 1;
}

pd_err pd__replay_run(const pd__replay_opts_t *o, pd__replay_result_t *out, char *why, size_t cap) {
    for (size_t i = 0; i < o->n_policies; i++) memset(&out[i], 0, sizeof out[i]);
    pd_engine_config_t cfg;
    if (o->config_path) {
        int line = 0;
        char what[256];
        /* the deployment's file may hold paidan-server's [server]
         * section: the server's business, not the replay's */
        pd_ini_section_t server = {"server", skip_key, NULL};
        pd_err err =
            pd_engine_config_load_ini_with(o->config_path, &cfg, &server, &line, what, sizeof what);
        if (err) {
            if (why && cap) {
                if (line > 0)
                    snprintf(why, cap, "--config %s:%d: %s", o->config_path, line, what);
                else
                    snprintf(why, cap, "--config %s: %s", o->config_path, what);
            }
            return err;
        }
    } else {
        /* Name every skill bit as the generator (and the sample data) do. */
        pd_engine_config_init(&cfg);
        size_t n;
        const char *const *g = pd_gen_skill_names(&n);
        if (n > PD_MAX_SKILLS) n = PD_MAX_SKILLS;
        for (size_t i = 0; i < n; i++) snprintf(cfg.skills[i], sizeof cfg.skills[i], "%s", g[i]);
        cfg.n_skills = (uint32_t)n;
    }
    for (size_t i = 0; i < o->n_policies; i++) {
        pd_err err = replay_one(o, &cfg, o->policies[i], &out[i], why, cap);
        if (err) return err;
    }
    return PD_OK;
}
