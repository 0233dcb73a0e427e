/* assign.c -- batch assignment: maximum-weight assignment of slots to
 * volunteers under capacities, exactly (min-cost flow) and greedily.
 *
 * Network. Every slot has a supply of 1 that must reach the sink T. It can
 * go slot -> T directly (cost 0: the slot stays unassigned) or along an
 * edge: slot -> volunteer (cap 1, cost -score), or, for orders with more
 * than one slot, slot -> gv -> volunteer where gv is the (order, volunteer)
 * node whose arc to the volunteer has capacity 1, so nobody fills two
 * slots of one order; then volunteer -> T (cap = free capacity, cost 0). A
 * minimum-cost flow is a maximum-score assignment.
 *
 * Successive shortest paths, one slot at a time. With node potentials that
 * keep every residual arc's reduced cost >= 0 (the first ones are exact
 * shortest distances, computed in one pass because the network is
 * layered), the cheapest path from one slot to T is found by Dijkstra,
 * which stops as soon as T is settled; potentials then rise by
 * min(distance, distance to T), which keeps reduced costs >= 0, and one
 * unit goes along the path. Augmenting from any node with supply along a
 * shortest path preserves optimality (the reduced-cost optimality
 * conditions), and the direct slot -> T arc means every slot finds a path.
 * While the volunteers can take the orders, candidate sets overlap only
 * locally and each search touches a few nodes: a batch of 100 orders with
 * 8 candidates each costs a fraction of a millisecond. When they cannot,
 * a search sweeps the whole crowded region (every volunteer there is full,
 * and proving a slot better left out visits them all), reading every arc
 * of each volunteer it passes, one per slot that lists them. So each
 * node's arcs lie together in the arc array, read in one sweep: as linked
 * lists scattered over the array they cost a cache miss each, and 10,000
 * single orders against 2,000 volunteers at k = 64 took 51 s, now 3.3 s.
 *
 * Integer scores keep the optimum exact, so tests can compare it with a
 * brute-force enumeration to the unit.
 */
#include "assign.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "paidan/alloc.h"

#define INF INT64_MAX

void pd__aws_deinit(pd__aws_t *w) {
    pd_free(w->mem);
    w->mem = NULL;
    w->cap = 0;
}

/* Carve aligned arrays out of one block that grows as needed. */
typedef struct carve_s {
    char *base;
    size_t off;
} carve_t;

static void *take(carve_t *c, size_t bytes) {
    size_t off = (c->off + 15) & ~(size_t)15;
    c->off = off + bytes;
    return c->base ? c->base + off : NULL;
}

static pd_err ws_reserve(pd__aws_t *w, size_t bytes) {
    if (bytes <= w->cap && w->mem) return PD_OK; /* never hand out NULL arrays */
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < bytes) cap *= 2;
    void *m = pd_realloc(w->mem, cap);
    if (!m) return PD_ERR_NOMEM;
    w->mem = m;
    w->cap = cap;
    return PD_OK;
}

/* ---------------------------------------------------- (group, vol) nodes */

typedef struct gvkey_s {
    uint32_t group, vol, edge;
} gvkey_t;

static int cmp_gv(const void *a, const void *b) {
    const gvkey_t *x = a, *y = b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    if (x->vol != y->vol) return x->vol < y->vol ? -1 : 1;
    return x->edge < y->edge ? -1 : x->edge > y->edge;
}

/* gv_of[e] = dense id of edge e's (group, vol) pair; returns their count. */
static uint32_t number_gv(const pd__aprob_t *p, gvkey_t *keys, uint32_t *gv_of) {
    for (uint32_t i = 0; i < p->n_edges; i++) {
        keys[i].group = p->slot_group[p->edges[i].slot];
        keys[i].vol = p->edges[i].vol;
        keys[i].edge = i;
    }
    if (p->n_edges > 1) qsort(keys, p->n_edges, sizeof *keys, cmp_gv);
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->n_edges; i++) {
        if (i && (keys[i].group != keys[i - 1].group || keys[i].vol != keys[i - 1].vol)) n++;
        gv_of[keys[i].edge] = n;
    }
    return p->n_edges ? n + 1 : 0;
}

/* ---------------------------------------------------------------- greedy */

typedef struct gedge_s {
    int64_t score;
    uint32_t slot, vol, edge;
} gedge_t;

static int cmp_greedy(const void *a, const void *b) {
    const gedge_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->slot != y->slot) return x->slot < y->slot ? -1 : 1;
    return x->vol < y->vol ? -1 : x->vol > y->vol;
}

pd_err pd__assign_greedy(pd__aws_t *w, const pd__aprob_t *p, uint32_t *choice, int64_t *total) {
    carve_t c = {NULL, 0};
    size_t ne = p->n_edges;
    take(&c, ne * sizeof(gvkey_t));
    take(&c, ne * sizeof(uint32_t));
    take(&c, ne * sizeof(gedge_t));
    take(&c, (size_t)p->n_vols * sizeof(uint32_t));
    take(&c, ne * sizeof(bool));
    pd_err err = ws_reserve(w, c.off);
    if (err) return err;
    c.base = w->mem;
    c.off = 0;
    gvkey_t *keys = take(&c, ne * sizeof(gvkey_t));
    uint32_t *gv_of = take(&c, ne * sizeof(uint32_t));
    gedge_t *order = take(&c, ne * sizeof(gedge_t));
    uint32_t *left = take(&c, (size_t)p->n_vols * sizeof(uint32_t));
    bool *gv_used = take(&c, ne * sizeof(bool));

    uint32_t n_gv = number_gv(p, keys, gv_of);
    memset(gv_used, 0, n_gv * sizeof *gv_used);
    for (uint32_t v = 0; v < p->n_vols; v++) left[v] = p->vol_cap[v];
    for (uint32_t s = 0; s < p->n_slots; s++) choice[s] = PD__NO_EDGE;
    for (uint32_t i = 0; i < ne; i++) {
        order[i].score = p->edges[i].score;
        order[i].slot = p->edges[i].slot;
        order[i].vol = p->edges[i].vol;
        order[i].edge = i;
    }
    if (ne > 1) qsort(order, ne, sizeof *order, cmp_greedy);
    int64_t sum = 0;
    for (uint32_t i = 0; i < ne; i++) {
        const gedge_t *g = &order[i];
        if (g->score <= 0 || choice[g->slot] != PD__NO_EDGE || left[g->vol] == 0 ||
            gv_used[gv_of[g->edge]]) {
            continue;
        }
        choice[g->slot] = g->edge;
        left[g->vol]--;
        gv_used[gv_of[g->edge]] = true;
        sum += g->score;
    }
    *total = sum;
    return PD_OK;
}

/* -------------------------------------------------------------- optimal */

typedef struct arc_s {
    uint32_t to;
    uint32_t rev; /* the reverse arc */
    int32_t cap;
    int64_t cost;
} arc_t;

typedef struct hent_s {
    int64_t d;
    uint32_t node;
} hent_t;

static void hpush(hent_t *h, size_t *n, int64_t d, uint32_t node) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t q = (i - 1) / 2;
        if (h[q].d < d || (h[q].d == d && h[q].node <= node)) break;
        h[i] = h[q];
        i = q;
    }
    h[i].d = d;
    h[i].node = node;
}

static hent_t hpop(hent_t *h, size_t *n) {
    hent_t top = h[0];
    hent_t x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, b = i;
        const hent_t *best = &x;
        if (l < m && (h[l].d < best->d || (h[l].d == best->d && h[l].node < best->node))) {
            b = l;
            best = &h[l];
        }
        if (r < m && (h[r].d < best->d || (h[r].d == best->d && h[r].node < best->node))) b = r;
        if (b == i) break;
        h[i] = h[b];
        i = b;
    }
    if (m) h[i] = x;
    return top;
}

/* Group sizes: slots per group (groups are < n_slots). */
static void group_sizes(const pd__aprob_t *p, uint32_t *size) {
    for (uint32_t s = 0; s < p->n_slots; s++) size[s] = 0;
    for (uint32_t s = 0; s < p->n_slots; s++) {
        if (PD_ALWAYS(p->slot_group[s] < p->n_slots)) size[p->slot_group[s]]++;
    }
}

pd_err pd__assign_optimal(pd__aws_t *w, const pd__aprob_t *p, uint32_t *choice, int64_t *total) {
    size_t ne = p->n_edges, ns = p->n_slots, nv = p->n_vols;
    size_t nn_max = 1 + ns + ne + nv;
    size_t na_max = 2 * (ns + ne + ne + nv);
    carve_t c = {NULL, 0};
    take(&c, ne * sizeof(gvkey_t));
    take(&c, ne * sizeof(uint32_t));     /* gv of edge */
    take(&c, ns * sizeof(uint32_t));     /* group sizes */
    take(&c, ne * sizeof(uint32_t));     /* gv node of dense gv id */
    take(&c, nn_max * sizeof(uint32_t)); /* arcs per node, then end of its arcs */
    take(&c, na_max * sizeof(arc_t));
    take(&c, (nn_max + 1) * sizeof(uint32_t)); /* first arc of each node */
    take(&c, nn_max * sizeof(int64_t));        /* pot */
    take(&c, nn_max * sizeof(int64_t));        /* dist */
    take(&c, nn_max * sizeof(uint32_t));       /* prev arc */
    take(&c, nn_max * sizeof(uint8_t));        /* settled */
    take(&c, nn_max * sizeof(uint32_t));       /* touched list */
    take(&c, (na_max + 1) * sizeof(hent_t));
    take(&c, ne * sizeof(uint32_t)); /* arc of edge */
    pd_err err = ws_reserve(w, c.off);
    if (err) return err;
    c.base = w->mem;
    c.off = 0;
    gvkey_t *keys = take(&c, ne * sizeof(gvkey_t));
    uint32_t *gv_of = take(&c, ne * sizeof(uint32_t));
    uint32_t *gsize = take(&c, ns * sizeof(uint32_t));
    uint32_t *gv_node = take(&c, ne * sizeof(uint32_t));
    uint32_t *end = take(&c, nn_max * sizeof(uint32_t));
    arc_t *arcs = take(&c, na_max * sizeof(arc_t));
    uint32_t *start = take(&c, (nn_max + 1) * sizeof(uint32_t));
    int64_t *pot = take(&c, nn_max * sizeof(int64_t));
    int64_t *dist = take(&c, nn_max * sizeof(int64_t));
    uint32_t *prev = take(&c, nn_max * sizeof(uint32_t));
    uint8_t *settled = take(&c, nn_max * sizeof(uint8_t));
    uint32_t *touched = take(&c, nn_max * sizeof(uint32_t));
    hent_t *heap = take(&c, (na_max + 1) * sizeof(hent_t));
    uint32_t *arc_of_edge = take(&c, ne * sizeof(uint32_t));

    uint32_t n_gv = number_gv(p, keys, gv_of);
    group_sizes(p, gsize);
    /* Nodes: T, slots, volunteers, then gv nodes of multi-slot groups. */
    const uint32_t T = 0, slot0 = 1, vol0 = slot0 + (uint32_t)ns;
    uint32_t nn = vol0 + (uint32_t)nv;
    for (uint32_t g = 0; g < n_gv; g++) gv_node[g] = UINT32_MAX;
    for (uint32_t i = 0; i < ne; i++) {
        uint32_t gv = gv_of[keys[i].edge];
        if (gsize[keys[i].group] > 1 && gv_node[gv] == UINT32_MAX) gv_node[gv] = nn++;
    }
    /* Each node's arcs lie together (a search reads them in one sweep; a
     * volunteer is the tail of a reverse arc for every slot that lists
     * them), in the reverse of the order they are added, which breaks
     * ties: the least preferred first, the direct arc to T, then the
     * edges. Two passes: count them, then place them. */
    for (int place = 0; place < 2; place++) {
        if (!place) {
            for (uint32_t i = 0; i < nn; i++) end[i] = 0;
        } else {
            start[0] = 0;
            for (uint32_t i = 0; i < nn; i++) start[i + 1] = start[i] + end[i];
            for (uint32_t i = 0; i < nn; i++) end[i] = start[i + 1];
        }
        uint32_t fwd = 0;
#define ADD_ARC(u, v, cp, cs)                                  \
    do {                                                       \
        if (!place) {                                          \
            end[(u)]++;                                        \
            end[(v)]++;                                        \
        } else {                                               \
            fwd = --end[(u)];                                  \
            uint32_t rev_ = --end[(v)];                        \
            arcs[fwd] = (arc_t){(v), rev_, (cp), (cs)};        \
            arcs[rev_] = (arc_t){(u), fwd, 0, -(int64_t)(cs)}; \
        }                                                      \
    } while (0)
        for (uint32_t s = 0; s < ns; s++) ADD_ARC(slot0 + s, T, 1, 0);
        for (uint32_t v = 0; v < nv; v++) {
            int32_t cp = p->vol_cap[v] > INT32_MAX ? INT32_MAX : (int32_t)p->vol_cap[v];
            ADD_ARC(vol0 + v, T, cp, 0);
        }
        for (uint32_t i = 0; i < ne; i++) {
            if (i && gv_of[keys[i].edge] == gv_of[keys[i - 1].edge]) continue;
            uint32_t gn = gv_node[gv_of[keys[i].edge]];
            if (gn != UINT32_MAX) ADD_ARC(gn, vol0 + keys[i].vol, 1, 0);
        }
        for (uint32_t i = ne; i-- > 0;) {
            const pd__aedge_t *ed = &p->edges[i];
            uint32_t gn = gv_node[gv_of[i]];
            ADD_ARC(slot0 + ed->slot, gn != UINT32_MAX ? gn : vol0 + ed->vol, 1, -ed->score);
            arc_of_edge[i] = fwd;
        }
#undef ADD_ARC
    }

    /* Exact first potentials: shortest distances from a virtual source
     * joined to every slot at cost 0, layer by layer (slots, gv, vols, T). */
    for (uint32_t i = 0; i < nn; i++) pot[i] = INF;
    for (uint32_t s = 0; s < ns; s++) pot[slot0 + s] = 0;
    for (uint32_t i = 0; i < ne; i++) {
        uint32_t gn = gv_node[gv_of[i]];
        uint32_t to = gn != UINT32_MAX ? gn : vol0 + p->edges[i].vol;
        if (-p->edges[i].score < pot[to]) pot[to] = -p->edges[i].score;
    }
    for (uint32_t g = vol0 + (uint32_t)nv; g < nn; g++) {
        for (uint32_t a = start[g]; a < start[g + 1]; a++) {
            if (arcs[a].cap > 0 && pot[g] < pot[arcs[a].to]) pot[arcs[a].to] = pot[g];
        }
    }
    pot[T] = ns ? 0 : INF;
    for (uint32_t v = vol0; v < vol0 + nv; v++) {
        if (pot[v] < pot[T]) pot[T] = pot[v];
    }
    for (uint32_t i = 0; i < nn; i++) {
        if (pot[i] == INF) pot[i] = 0; /* unreachable: never relaxed */
    }
    for (uint32_t i = 0; i < nn; i++) {
        dist[i] = INF;
        settled[i] = 0;
    }

    int64_t cost = 0;
    for (uint32_t s = 0; s < ns; s++) {
        uint32_t src = slot0 + s, nt = 0;
        size_t hn = 0;
        dist[src] = 0;
        prev[src] = UINT32_MAX;
        touched[nt++] = src;
        hpush(heap, &hn, 0, src);
        while (hn) {
            hent_t h = hpop(heap, &hn);
            uint32_t u = h.node;
            if (settled[u] || h.d > dist[u]) continue;
            settled[u] = 1;
            if (u == T) break;
            for (uint32_t a = start[u]; a < start[u + 1]; a++) {
                if (arcs[a].cap <= 0) continue;
                uint32_t v = arcs[a].to;
                if (settled[v]) continue;
                int64_t rc = arcs[a].cost + pot[u] - pot[v];
                if (PD_NEVER(rc < 0)) rc = 0; /* potentials keep rc >= 0 */
                int64_t nd = h.d + rc;
                if (nd < dist[v]) {
                    if (dist[v] == INF) touched[nt++] = v;
                    dist[v] = nd;
                    prev[v] = a;
                    if (PD_ALWAYS(hn <= na_max)) hpush(heap, &hn, nd, v);
                }
            }
        }
        if (PD_NEVER(!settled[T])) break; /* the direct arc always reaches T */
        int64_t dT = dist[T];
        cost += dT + pot[T] - pot[src]; /* the path's true cost */
        /* pot[v] += min(d(v), dT) for every node, shifted by -dT so that
         * untouched nodes need no update: pot[v] += d(v) - dT if d(v) < dT. */
        for (uint32_t i = 0; i < nt; i++) {
            uint32_t v = touched[i];
            if (settled[v] && dist[v] < dT) pot[v] += dist[v] - dT;
        }
        for (uint32_t v = T; v != src;) {
            uint32_t a = prev[v];
            arcs[a].cap -= 1;
            arcs[arcs[a].rev].cap += 1;
            v = arcs[arcs[a].rev].to;
        }
        for (uint32_t i = 0; i < nt; i++) {
            dist[touched[i]] = INF;
            settled[touched[i]] = 0;
        }
    }

    int64_t sum = 0;
    for (uint32_t i = 0; i < ns; i++) choice[i] = PD__NO_EDGE;
    for (uint32_t i = 0; i < ne; i++) {
        if (arcs[arc_of_edge[i]].cap == 0) {
            choice[p->edges[i].slot] = i;
            sum += p->edges[i].score;
        }
    }
    (void)PD_NEVER(sum != -cost);
    *total = sum;
    return PD_OK;
}
