/* assign.h -- private to engine/: the batch assignment problem and its two
 * solvers, optimal (min-cost flow) and greedy.
 *
 * Slots (one per volunteer an order needs) are grouped by order; volunteers
 * have a free capacity; an edge (slot, volunteer) has an integer score > 0.
 * An assignment picks at most one edge per slot, at most cap(v) edges per
 * volunteer, and at most one edge per (group, volunteer) pair (nobody fills
 * two slots of one order). Both solvers maximise (optimal) or greedily
 * build (greedy) the total score of the picked edges.
 */
#ifndef PAIDAN_ENGINE_ASSIGN_H
#define PAIDAN_ENGINE_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "paidan/error.h"

#define PD__NO_EDGE UINT32_MAX

typedef struct pd__aedge_s {
    uint32_t slot; /* 0..n_slots-1 */
    uint32_t vol;  /* 0..n_vols-1 */
    int64_t score; /* > 0 */
} pd__aedge_t;

typedef struct pd__aprob_s {
    uint32_t n_slots;
    const uint32_t *slot_group; /* group of each slot */
    uint32_t n_vols;
    const uint32_t *vol_cap; /* free capacity of each volunteer */
    uint32_t n_edges;
    const pd__aedge_t *edges;
} pd__aprob_t;

/* Scratch reused across solves; zero-initialise, free with pd__aws_deinit. */
typedef struct pd__aws_s {
    void *mem; /* one block, carved per solve */
    size_t cap;
} pd__aws_t;

void pd__aws_deinit(pd__aws_t *w);

/* Optimal: choice[s] = index of slot s's edge, or PD__NO_EDGE; *total = sum
 * of chosen scores. Successive shortest paths with Dijkstra and potentials
 * on source -> slot -> (group, vol) -> vol -> sink. PD_ERR_NOMEM. */
pd_err pd__assign_optimal(pd__aws_t *w, const pd__aprob_t *p, uint32_t *choice, int64_t *total);

/* Greedy: edges by falling score (ties: slot, then volunteer), each taken
 * if its slot, volunteer and (group, volunteer) pair are still free. */
pd_err pd__assign_greedy(pd__aws_t *w, const pd__aprob_t *p, uint32_t *choice, int64_t *total);

#endif /* PAIDAN_ENGINE_ASSIGN_H */
