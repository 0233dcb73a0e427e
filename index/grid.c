/* grid.c -- the volunteer index: a sparse global grid of cells keyed by
 * (row, column), each holding its volunteers as structure-of-arrays.
 *
 * Geometry. Rows are bands of cell_e6 micro-degrees of latitude (row r
 * covers [r*H, (r+1)*H)). Each row is cut into ncols(r) equal columns
 * around the whole globe, ncols(r) = floor(360 deg * cos(row centre) / H),
 * so cells are near square at every latitude and columns wrap cleanly at
 * the antimeridian. Only non-empty cells exist, in a hash map keyed by
 * (row, col): any region works, with no origin to configure.
 *
 * Storage. A cell keeps bit planes (hours of the week, availability,
 * modes, skills, tags: a bit per volunteer each) and a record per
 * volunteer (position, id, slot, mode, mark) in one allocation, so a query
 * ANDs the planes it needs and reads only the records of the volunteers
 * left standing. A volunteer's slot (a small stable
 * integer) holds its id, its cell and its position in the cell; the id ->
 * slot map is idmap.c. Insert, move, update and remove are O(1): a move
 * swap-removes from the old cell and appends to the new one.
 *
 * Queries. k-nearest walks rings of cells around the query's cell: ring d
 * is the border of the (2d+1) x (2d+1) block of cells, taken per row with
 * that row's own columns. After ring d, every unvisited volunteer is at
 * least lb(d) away (a bound computed from the row heights and the narrowest
 * column in the band), so the search stops once the k-th best score is
 * below the ETA of that bound at the fastest mode, or the bound passes the
 * search extent. If the rings would visit more cells than the map holds,
 * the rest of the search scans the map instead, so sparse data with a huge
 * budget stays cheap.
 */
#include "paidan/index.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "geo.h"
#include "paidan/alloc.h"
#include "paidan/idmap.h"

/* ------------------------------------------------------------- the types */

/* A cell keeps one bit per volunteer in each of these planes, as words of
 * 64 volunteers: a query ANDs the words of the planes it needs (skills,
 * the hours of its window, availability, modes still in reach) and only
 * the bits left standing become candidates. A cell of 500 volunteers
 * answers "who has skill 3, is free Tuesday 19:00-21:00 and is online"
 * from a handful of cache lines. */
#define PLANE_HOUR0 0u                              /* 168 planes: hour h of the week */
#define PLANE_AVAIL PD_WEEK_HOURS                   /* online and load < capacity */
#define PLANE_MODE0 (PLANE_AVAIL + 1u)              /* one plane per travel mode */
#define PLANE_SKILL0 (PLANE_MODE0 + PD_MODE__COUNT) /* then one per skill bit */
/* and after the skill planes, one per tag bit (tag_plane()) */

/* The header of a cell: one cache line (the allocator's 64-byte class is
 * line-aligned), so a query pays one miss for it. Its arrays share one
 * allocation, in this order: the planes, the boxes, the block modes (just
 * after the boxes, so the first boxes come with them), the records. */
typedef struct cell_s {
    uint64_t *planes;  /* cell_nplanes() * nblk words; the block's base */
    struct box_s *box; /* per block of 64: a box holding all its positions;
                          then per block a byte of modes, cell_bmodes() */
    struct rec_s *rec; /* what a candidate needs next: one cache line */
    uint64_t key;      /* packed (row, col) */
    uint32_t n;        /* volunteers in the cell */
    uint32_t nsk;      /* skill planes: bits 0..nsk-1 */
    uint32_t ntg;      /* tag planes: bits 0..ntg-1 */
    uint32_t nblk;     /* words per plane: ceil(cap / 64) */
    uint32_t cap;      /* room in the per-volunteer arrays */
    uint32_t churn;    /* writes since the cell was last sorted */
} cell_t;

_Static_assert(sizeof(cell_t) <= 64, "a cell header must fit one cache line");

/* A box around the positions of one block of 64 volunteers; the modes in
 * the block are in the cell's bmodes bytes, read first. Boxes only ever
 * grow as volunteers come and go; pd_index_optimize() sorts a churned cell
 * by mode and then along a Z-order curve, which makes them tight again: a
 * query in a dense cell reads only the blocks near it, and far out only
 * the blocks of fast modes. An empty box has lo > hi. */
typedef struct box_s {
    int32_t lat_lo, lat_hi;
    int32_t lon_lo, lon_hi;
} box_t;

_Static_assert(sizeof(box_t) % 8 == 0, "the records after the boxes must stay aligned");

static const box_t box_empty = {INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN};

static inline void box_add(box_t *b, int32_t lat, int32_t lon) {
    if (lat < b->lat_lo) b->lat_lo = lat;
    if (lat > b->lat_hi) b->lat_hi = lat;
    if (lon < b->lon_lo) b->lon_lo = lon;
    if (lon > b->lon_hi) b->lon_hi = lon;
}

/* Per volunteer, everything a candidate that passed the planes needs, in
 * one place, so it costs one cache miss rather than four. */
typedef struct rec_s {
    int32_t lat; /* micro-degrees */
    int32_t lon;
    uint64_t id;   /* external id (also in the slot) */
    uint32_t slot; /* the volunteer's slot */
    uint8_t mode;  /* pd_mode */
    uint8_t spare;
    uint16_t mark; /* the layer above's (pd_index_set_mark) */
} rec_t;

_Static_assert(sizeof(rec_t) == 24, "a record is 24 bytes");

/* Bits beyond n are zero in every plane: scans need no tail mask. */

/* Per block: bit m set if it may hold mode m (read before the box). */
static inline uint8_t *cell_bmodes(const cell_t *c) {
    return (uint8_t *)(c->box + c->nblk);
}

/* The block-mode bytes, rounded up so the records after them stay aligned. */
static inline size_t bmodes_bytes(size_t nblk) {
    return (nblk + 7) & ~(size_t)7;
}

#define CELL_ELEM_BYTES sizeof(struct rec_s)

static inline uint64_t *plane(const cell_t *c, unsigned p) {
    return c->planes + (size_t)p * c->nblk;
}

/* Planes of a cell: hours, availability, modes, skills, tags. */
static inline unsigned cell_nplanes(const cell_t *c) {
    return PLANE_SKILL0 + c->nsk + c->ntg;
}

/* The plane of tag bit t (t < c->ntg): tags are planes like skills, so a
 * query asking for tags drops the others before reading a record, and a
 * county's handful of tags costs a few bits a volunteer, not a word. */
static inline uint64_t *tag_plane(const cell_t *c, unsigned t) {
    return plane(c, PLANE_SKILL0 + c->nsk + t);
}

static inline void bit_put(uint64_t *w, uint32_t i, bool on) {
    uint64_t m = 1ULL << (i & 63);
    if (on)
        w[i >> 6] |= m;
    else
        w[i >> 6] &= ~m;
}

static inline bool bit_get(const uint64_t *w, uint32_t i) {
    return (w[i >> 6] >> (i & 63)) & 1;
}

static inline uint32_t skill_planes(uint64_t skills) {
    return skills ? 64u - (uint32_t)__builtin_clzll(skills) : 0u;
}

typedef struct slot_s {
    uint64_t id;  /* external id (first: idmap reads it) */
    cell_t *cell; /* NULL when the slot is free */
    uint32_t idx; /* position in the cell; next free slot when free */
    uint8_t status;
    uint8_t capacity;
    uint8_t load;
    uint8_t mode;
} slot_t;

#define SLOT_NONE UINT32_MAX

typedef struct row_s {
    double width_e6; /* column width in micro-degrees of longitude */
    double cos_far;  /* cos of the row edge farthest from the equator, >= 0 */
    int32_t ncols;   /* columns around the globe, >= 1 */
} row_t;

/* A bucket of the cell map: the key beside the pointer, so a probe reads
 * one cache line and never the cell itself. cell == NULL: empty. */
typedef struct bucket_s {
    uint64_t key;
    cell_t *cell;
} bucket_t;

struct pd_index_s {
    pd_index_config_t cfg;
    double speed_mps[PD_MODE__COUNT];
    double vmax_mps;
    int32_t h;              /* cell height, micro-degrees */
    int32_t row_min;        /* row of latitude -90 */
    int32_t row_max;        /* row of latitude +90 */
    row_t *rows;            /* row_max - row_min + 1 entries */
    struct bucket_s *cells; /* open-addressing map of cells */
    uint32_t cells_mask;
    uint32_t ncells;

    slot_t *slots;
    uint32_t nslots; /* high-water mark */
    uint32_t slots_cap;
    uint32_t free_slot; /* head of the free list, SLOT_NONE if empty */
    uint32_t count;     /* live volunteers */
    pd__idmap_t ids;
    size_t cell_bytes;       /* bytes of cell arrays */
    uint32_t opt_cursor;     /* where pd_index_optimize() goes on */
    uint32_t huge_cursor;    /* where pd_index_huge_pages() goes on */
    uintptr_t huge_resume;   /* the next page of the cell at huge_cursor, or 0 */
    uintptr_t huge_seen[64]; /* pages asked for in this pass, by page number mod 64 */
};

/* ---------------------------------------------------------- the geometry */

/* fmin/fmax without the libm call (no NaNs reach them). */
#define MIN2(a, b) ((a) < (b) ? (a) : (b))

static inline int32_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return (int32_t)q;
}

static inline const row_t *row_at(const pd_index_t *ix, int32_t r) {
    return &ix->rows[r - ix->row_min];
}

static inline int32_t row_of(const pd_index_t *ix, int32_t lat) {
    return floor_div(lat, ix->h);
}

static inline int32_t col_of(int32_t lon, int32_t ncols) {
    int64_t x = (int64_t)lon + PD__DEG_E6_HALF; /* 0 .. 360e6 */
    int64_t c = x * ncols / PD__DEG_E6_FULL;
    return (int32_t)(c >= ncols ? c - ncols : c);
}

/* A cell key packs the row plus a bias (bits 32..59) and the column
 * (bits 0..31). */
#define KEY_ROW_BIAS (1 << 24)

static inline uint64_t cell_key(int32_t r, int32_t c) {
    return ((uint64_t)(uint32_t)(r + KEY_ROW_BIAS) << 32) | (uint32_t)c;
}

static inline int32_t key_row(uint64_t k) {
    return (int32_t)((k >> 32) & 0x0FFFFFFF) - KEY_ROW_BIAS;
}

static inline int32_t key_col(uint64_t k) {
    return (int32_t)(uint32_t)k;
}

/* The cell map is probed for every ring position, so its hash is a cheap
 * full-avalanche mixer rather than a general-purpose hash. */
static inline uint32_t key_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static pd_err rows_build(pd_index_t *ix) {
    int32_t h = ix->h;
    ix->row_min = floor_div(-90000000, h);
    ix->row_max = floor_div(90000000, h);
    size_t n = (size_t)(ix->row_max - ix->row_min + 1);
    ix->rows = pd_calloc(n, sizeof *ix->rows);
    if (!ix->rows) return PD_ERR_NOMEM;
    for (int32_t r = ix->row_min; r <= ix->row_max; r++) {
        row_t *row = &ix->rows[r - ix->row_min];
        double lo = (double)r * h, hi = (double)(r + 1) * h;
        double centre = (lo + hi) * 0.5;
        if (centre > 90e6) centre = 90e6;
        if (centre < -90e6) centre = -90e6;
        double nc = floor(360e6 * cos(centre * PD__E6_TO_RAD) / h);
        row->ncols = nc < 1 ? 1 : (nc > 1e9 ? 1000000000 : (int32_t)nc);
        row->width_e6 = 360e6 / row->ncols;
        double far = fmax(fabs(lo), fabs(hi));
        if (far > 90e6) far = 90e6;
        double cf = cos(far * PD__E6_TO_RAD);
        row->cos_far = cf < 0 ? 0 : cf;
    }
    return PD_OK;
}

/* ------------------------------------------------------------ the config */

void pd_index_config_init(pd_index_config_t *cfg) {
    cfg->speed_kmh[PD_MODE_WALK] = 4.5;
    cfg->speed_kmh[PD_MODE_BIKE] = 12.0;
    cfg->speed_kmh[PD_MODE_EBIKE] = 18.0;
    cfg->speed_kmh[PD_MODE_CAR] = 30.0;
    cfg->detour = 1.3;
    cfg->cell_e6 = 10000;
}

pd_err pd_index_config_check(const pd_index_config_t *cfg) {
    for (int m = 0; m < PD_MODE__COUNT; m++) {
        double s = cfg->speed_kmh[m];
        if (!isfinite(s) || s <= 0 || s > 1000) return PD_ERR_BAD_ARG;
    }
    if (!isfinite(cfg->detour) || cfg->detour < 1.0 || cfg->detour > 10.0) return PD_ERR_BAD_ARG;
    if (cfg->cell_e6 < 500 || cfg->cell_e6 > 1000000) return PD_ERR_BAD_ARG;
    return PD_OK;
}

/* ------------------------------------------------------- create, destroy */

pd_err pd_index_create(const pd_index_config_t *cfg, pd_index_t **out) {
    pd_index_config_t def;
    if (!cfg) {
        pd_index_config_init(&def);
        cfg = &def;
    }
    pd_err err = pd_index_config_check(cfg);
    if (err) return err;
    pd_index_t *ix = pd_calloc(1, sizeof *ix);
    if (!ix) return PD_ERR_NOMEM;
    ix->cfg = *cfg;
    ix->h = cfg->cell_e6;
    ix->vmax_mps = 0;
    for (int m = 0; m < PD_MODE__COUNT; m++) {
        ix->speed_mps[m] = cfg->speed_kmh[m] / 3.6;
        if (ix->speed_mps[m] > ix->vmax_mps) ix->vmax_mps = ix->speed_mps[m];
    }
    ix->free_slot = SLOT_NONE;
    err = rows_build(ix);
    if (!err) err = pd__idmap_init(&ix->ids, 16);
    if (!err) {
        ix->cells = pd_calloc(16, sizeof *ix->cells);
        if (!ix->cells) err = PD_ERR_NOMEM;
        ix->cells_mask = 15;
    }
    if (err) {
        pd_index_destroy(ix);
        return err;
    }
    *out = ix;
    return PD_OK;
}

void pd_index_destroy(pd_index_t *ix) {
    if (!ix) return;
    if (ix->cells) {
        for (uint32_t i = 0; i <= ix->cells_mask; i++) {
            if (ix->cells[i].cell) {
                pd_free(ix->cells[i].cell->planes);
                pd_free(ix->cells[i].cell);
            }
        }
    }
    pd_free(ix->cells);
    pd_big_free(ix->slots, (size_t)ix->slots_cap * sizeof *ix->slots);
    pd_free(ix->rows);
    pd__idmap_deinit(&ix->ids);
    pd_free(ix);
}

const pd_index_config_t *pd_index_get_config(const pd_index_t *ix) {
    return &ix->cfg;
}

size_t pd_index_count(const pd_index_t *ix) {
    return ix->count;
}

/* ------------------------------------------------------------- cell map */

/* Find a cell given its key and the key's hash. */
static inline cell_t *cell_find_h(const pd_index_t *ix, uint64_t key, uint32_t h) {
    for (uint32_t i = h & ix->cells_mask;; i = (i + 1) & ix->cells_mask) {
        const bucket_t *b = &ix->cells[i];
        if (!b->cell) return NULL;
        if (b->key == key) return b->cell;
    }
}

static cell_t *cell_find(const pd_index_t *ix, uint64_t key) {
    return cell_find_h(ix, key, key_hash(key));
}

static pd_err cells_grow(pd_index_t *ix) {
    uint32_t cap = ix->cells_mask + 1;
    if ((uint64_t)(ix->ncells + 1) * 2 <= cap) return PD_OK; /* load <= 1/2 */
    if (cap >= (1u << 30)) return PD_ERR_LIMIT;
    uint32_t ncap = cap * 2, nmask = ncap - 1;
    bucket_t *nc = pd_calloc(ncap, sizeof *nc);
    if (!nc) return PD_ERR_NOMEM;
    for (uint32_t i = 0; i < cap; i++) {
        if (!ix->cells[i].cell) continue;
        uint32_t j = key_hash(ix->cells[i].key) & nmask;
        while (nc[j].cell) j = (j + 1) & nmask;
        nc[j] = ix->cells[i];
    }
    pd_free(ix->cells);
    ix->cells = nc;
    ix->cells_mask = nmask;
    return PD_OK;
}

/* Bytes of a cell's block for cap volunteers, nsk skill and ntg tag planes. */
static size_t cell_block_bytes(uint32_t cap, uint32_t nsk, uint32_t ntg) {
    size_t nblk = (cap + 63) / 64;
    return (PLANE_SKILL0 + nsk + ntg) * nblk * sizeof(uint64_t) + nblk * sizeof(box_t) +
           bmodes_bytes(nblk) + (size_t)cap * CELL_ELEM_BYTES;
}

/* Point c at a new zeroed block for cap volunteers, nsk skill and ntg tag
 * planes, with empty boxes; c's other fields are left alone. */
static pd_err cell_alloc_block(cell_t *c, uint32_t cap, uint32_t nsk, uint32_t ntg) {
    char *block = pd_calloc(1, cell_block_bytes(cap, nsk, ntg));
    if (!block) return PD_ERR_NOMEM;
    c->cap = cap;
    c->nsk = nsk;
    c->ntg = ntg;
    c->nblk = (cap + 63) / 64;
    c->planes = (uint64_t *)block;
    c->box = (box_t *)(c->planes + (size_t)cell_nplanes(c) * c->nblk);
    c->rec = (rec_t *)(cell_bmodes(c) + bmodes_bytes(c->nblk));
    for (uint32_t b = 0; b < c->nblk; b++) c->box[b] = box_empty;
    return PD_OK;
}

/* Make c hold at least `room` volunteers, `nsk` skill and `ntg` tag
 * planes, moving it to a new block if needed. NOMEM leaves c as it was. */
static pd_err cell_fit(pd_index_t *ix, cell_t *c, uint32_t room, uint32_t nsk, uint32_t ntg) {
    if (room <= c->cap && nsk <= c->nsk && ntg <= c->ntg) return PD_OK;
    if (room > (1u << 30)) return PD_ERR_LIMIT; /* cell_sort keys hold 30-bit positions */
    uint32_t ncap = c->cap, nnsk = nsk > c->nsk ? nsk : c->nsk;
    uint32_t nntg = ntg > c->ntg ? ntg : c->ntg;
    while (ncap < room) ncap = ncap < 4 ? 4 : ncap + ncap / 2;
    cell_t old = *c;
    pd_err err = cell_alloc_block(c, ncap, nnsk, nntg);
    if (err) return err;
    size_t bytes = cell_block_bytes(ncap, nnsk, nntg);
    if (old.planes) {
        for (unsigned p = 0; p < PLANE_SKILL0 + old.nsk; p++)
            memcpy(plane(c, p), plane(&old, p), old.nblk * sizeof(uint64_t));
        for (unsigned t = 0; t < old.ntg; t++)
            memcpy(tag_plane(c, t), tag_plane(&old, t), old.nblk * sizeof(uint64_t));
        memcpy(c->rec, old.rec, old.n * sizeof *c->rec);
        memcpy(c->box, old.box, old.nblk * sizeof *c->box);
        memcpy(cell_bmodes(c), cell_bmodes(&old), old.nblk);
        ix->cell_bytes -= cell_block_bytes(old.cap, old.nsk, old.ntg);
    }
    pd_free(old.planes);
    ix->cell_bytes += bytes;
    return PD_OK;
}

/* The cell for key, created (empty) if missing, with room for `more` more
 * volunteers with `nsk` skill and `ntg` tag planes. On error nothing
 * changed. */
static pd_err cell_get_room(pd_index_t *ix, uint64_t key, uint32_t more, uint32_t nsk, uint32_t ntg,
                            cell_t **out) {
    cell_t *c = cell_find(ix, key);
    if (c) {
        if (more > (1u << 30) - c->n) return PD_ERR_LIMIT;
        pd_err err = cell_fit(ix, c, c->n + more, nsk, ntg);
        if (err) return err;
        *out = c;
        return PD_OK;
    }
    pd_err err = cells_grow(ix);
    if (err) return err;
    c = pd_calloc(1, sizeof *c);
    if (!c) return PD_ERR_NOMEM;
    c->key = key;
    err = cell_fit(ix, c, more ? more : 1, nsk, ntg);
    if (err) {
        pd_free(c);
        return err;
    }
    uint32_t i = key_hash(key) & ix->cells_mask;
    while (ix->cells[i].cell) i = (i + 1) & ix->cells_mask;
    ix->cells[i].key = key;
    ix->cells[i].cell = c;
    ix->ncells++;
    *out = c;
    return PD_OK;
}

/* Unlink an empty cell from the map (backward-shift) and free it. */
static void cell_drop(pd_index_t *ix, cell_t *c) {
    uint32_t mask = ix->cells_mask;
    uint32_t i = key_hash(c->key) & mask;
    while (ix->cells[i].cell != c) i = (i + 1) & mask;
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        const bucket_t *e = &ix->cells[j];
        if (!e->cell) break;
        uint32_t home = key_hash(e->key) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            ix->cells[hole] = *e;
            hole = j;
        }
    }
    ix->cells[hole].cell = NULL;
    ix->cells[hole].key = 0;
    ix->ncells--;
    ix->cell_bytes -= cell_block_bytes(c->cap, c->nsk, c->ntg);
    pd_free(c->planes);
    pd_free(c);
}

static inline bool slot_avail(const slot_t *s) {
    return s->status == PD_STATUS_ONLINE && s->load < s->capacity;
}

/* Everything of v at position i of c but its hour, skill and tag planes. */
static void cell_write_fields(pd_index_t *ix, cell_t *c, uint32_t i, uint32_t si,
                              const pd_volunteer_t *v, uint16_t mark) {
    const slot_t *s = &ix->slots[si];
    if (slot_avail(s)) bit_put(plane(c, PLANE_AVAIL), i, true);
    bit_put(plane(c, PLANE_MODE0 + s->mode), i, true);
    c->rec[i].lat = v->pos.lat;
    c->rec[i].lon = v->pos.lon;
    box_add(&c->box[i >> 6], v->pos.lat, v->pos.lon);
    cell_bmodes(c)[i >> 6] |= (uint8_t)(1u << s->mode);
    c->churn++;
    c->rec[i].id = v->id;
    c->rec[i].slot = si;
    c->rec[i].mode = s->mode;
    c->rec[i].spare = 0;
    c->rec[i].mark = mark;
}

/* Write every field of volunteer v (slot si) at position i of c; the cell
 * must have room and enough skill and tag planes. */
static void cell_write(pd_index_t *ix, cell_t *c, uint32_t i, uint32_t si, const pd_volunteer_t *v,
                       bool fresh, uint16_t mark) {
    /* A fresh position (just appended) has every bit clear already; an
     * existing one is cleared first. Then only the set bits are written. */
    if (!fresh)
        for (unsigned p = 0; p < cell_nplanes(c); p++) bit_put(plane(c, p), i, false);
    for (unsigned w = 0; w < 3; w++)
        for (uint64_t b = v->week.bits[w]; b; b &= b - 1)
            bit_put(plane(c, PLANE_HOUR0 + w * 64 + (unsigned)__builtin_ctzll(b)), i, true);
    for (uint64_t b = v->skills; b; b &= b - 1)
        bit_put(plane(c, PLANE_SKILL0 + (unsigned)__builtin_ctzll(b)), i, true);
    for (uint64_t b = v->tags; b; b &= b - 1)
        bit_put(tag_plane(c, (unsigned)__builtin_ctzll(b)), i, true);
    cell_write_fields(ix, c, i, si, v, mark);
}

/* Transpose a 64 x 64 bit matrix in place: afterwards bit i of a[j] is
 * what bit j of a[i] was. Six rounds of swapping ever smaller blocks
 * (Hacker's Delight, 7-3): 384 word operations where moving the bits one
 * at a time costs one per set bit, and a schedule has dozens. This is how
 * whole blocks of 64 volunteers go into and out of the bit planes. */
static void transpose64(uint64_t a[64]) {
    uint64_t m = 0x00000000FFFFFFFFULL;
    for (unsigned j = 32; j != 0; j >>= 1, m ^= m << j) {
        for (unsigned k = 0; k < 64; k = ((k | j) + 1) & ~j) {
            uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
            a[k] ^= t << j;
            a[k | j] ^= t;
        }
    }
}

/* The hour, skill and tag plane words of block b of c as, per position j
 * of the block, the volunteer's week (wk[w][j] = week.bits[w]), skills
 * and tags. */
static void block_read(const cell_t *c, uint32_t b, uint64_t wk[3][64], uint64_t sk[64],
                       uint64_t tg[64]) {
    for (unsigned h = 0; h < 192; h++)
        wk[h >> 6][h & 63] = h < PD_WEEK_HOURS ? plane(c, PLANE_HOUR0 + h)[b] : 0;
    for (unsigned k = 0; k < 64; k++) sk[k] = k < c->nsk ? plane(c, PLANE_SKILL0 + k)[b] : 0;
    for (unsigned t = 0; t < 64; t++) tg[t] = t < c->ntg ? tag_plane(c, t)[b] : 0;
    for (unsigned w = 0; w < 3; w++) transpose64(wk[w]);
    transpose64(sk);
    if (c->ntg) transpose64(tg);
}

/* The reverse: OR per-position weeks, skills and tags into block b's
 * planes (positions not being written hold zeros). */
static void block_or(cell_t *c, uint32_t b, uint64_t wk[3][64], uint64_t sk[64], uint64_t tg[64]) {
    for (unsigned w = 0; w < 3; w++) transpose64(wk[w]);
    transpose64(sk);
    if (c->ntg) transpose64(tg);
    for (unsigned h = 0; h < PD_WEEK_HOURS; h++)
        if (wk[h >> 6][h & 63]) plane(c, PLANE_HOUR0 + h)[b] |= wk[h >> 6][h & 63];
    for (unsigned k = 0; k < c->nsk; k++)
        if (sk[k]) plane(c, PLANE_SKILL0 + k)[b] |= sk[k];
    for (unsigned t = 0; t < c->ntg; t++)
        if (tg[t]) tag_plane(c, t)[b] |= tg[t];
}

/* Append slot si with fields v and mark to c (room reserved). */
static void cell_append(pd_index_t *ix, cell_t *c, uint32_t si, const pd_volunteer_t *v,
                        uint16_t mark) {
    uint32_t i = c->n++;
    cell_write(ix, c, i, si, v, true, mark);
    ix->slots[si].cell = c;
    ix->slots[si].idx = i;
}

/* Swap-remove position i of c; fixes the moved volunteer's slot and clears
 * the freed position in every plane. */
static void cell_take(pd_index_t *ix, cell_t *c, uint32_t i) {
    uint32_t last = --c->n;
    unsigned np = cell_nplanes(c);
    if (i != last) {
        for (unsigned p = 0; p < np; p++) {
            uint64_t *w = plane(c, p);
            bit_put(w, i, bit_get(w, last));
        }
        c->rec[i] = c->rec[last];
        box_add(&c->box[i >> 6], c->rec[i].lat, c->rec[i].lon);
        cell_bmodes(c)[i >> 6] |= (uint8_t)(1u << c->rec[i].mode);
        ix->slots[c->rec[i].slot].idx = i;
    }
    for (unsigned p = 0; p < np; p++) bit_put(plane(c, p), last, false);
    if ((last & 63) == 0) {
        c->box[last >> 6] = box_empty;
        cell_bmodes(c)[last >> 6] = 0;
    }
    c->churn++;
}

static inline uint64_t key_of_pos(const pd_index_t *ix, pd_latlng_t p) {
    int32_t r = row_of(ix, p.lat);
    return cell_key(r, col_of(p.lon, row_at(ix, r)->ncols));
}

/* ------------------------------------------------------------ the slots */

static inline pd__idmap_keys_t id_keys(const pd_index_t *ix) {
    pd__idmap_keys_t k = {(const char *)ix->slots, sizeof(slot_t)};
    return k;
}

static pd_err find_slot(const pd_index_t *ix, uint64_t id, uint32_t *si) {
    return pd__idmap_find(&ix->ids, id_keys(ix), id, si);
}

/* Room in the slot array for `more` new slots past the high-water mark. */
static pd_err slots_reserve(pd_index_t *ix, size_t more) {
    if (ix->nslots + more <= ix->slots_cap) return PD_OK;
    if (ix->nslots + more > (1u << 31)) return PD_ERR_LIMIT;
    uint32_t ncap = ix->slots_cap ? ix->slots_cap : 64;
    while (ncap < ix->nslots + more) ncap *= 2;
    slot_t *ns =
        pd_big_grow(ix->slots, (size_t)ix->slots_cap * sizeof *ns, (size_t)ncap * sizeof *ns);
    if (!ns) return PD_ERR_NOMEM;
    ix->slots = ns;
    ix->slots_cap = ncap;
    return PD_OK;
}

static pd_err slots_reserve1(pd_index_t *ix) {
    return ix->free_slot != SLOT_NONE ? PD_OK : slots_reserve(ix, 1);
}

static uint32_t slot_alloc(pd_index_t *ix) {
    if (ix->free_slot != SLOT_NONE) {
        uint32_t si = ix->free_slot;
        ix->free_slot = ix->slots[si].idx;
        return si;
    }
    return ix->nslots++;
}

/* A slot for v (room reserved), its state set; not in a cell yet. */
static uint32_t slot_take(pd_index_t *ix, const pd_volunteer_t *v) {
    uint32_t si = slot_alloc(ix);
    slot_t *s = &ix->slots[si];
    s->id = v->id;
    s->status = v->status;
    s->capacity = v->capacity;
    s->load = v->load;
    s->mode = v->mode;
    return si;
}

/* Put slot si back on the free list. */
static void slot_free(pd_index_t *ix, uint32_t si) {
    slot_t *s = &ix->slots[si];
    s->cell = NULL;
    s->id = 0;
    s->idx = ix->free_slot;
    ix->free_slot = si;
}

/* ----------------------------------------------------------- the writes */

pd_err pd_index_insert(pd_index_t *ix, const pd_volunteer_t *v) {
    pd_err err = pd_volunteer_check(v);
    if (err) return err;
    uint32_t si;
    if (find_slot(ix, v->id, &si) == PD_OK) return PD_ERR_EXISTS;
    if ((err = pd__idmap_reserve1(&ix->ids))) return err;
    if ((err = slots_reserve1(ix))) return err;
    cell_t *c;
    if ((err = cell_get_room(ix, key_of_pos(ix, v->pos), 1, skill_planes(v->skills),
                             skill_planes(v->tags), &c)))
        return err;
    si = slot_take(ix, v);
    cell_append(ix, c, si, v, 0);
    pd__idmap_add(&ix->ids, v->id, si);
    ix->count++;
    return PD_OK;
}

/* Store v (already in slot si's state) in the cell of `key`, moving the
 * volunteer if the cell changes; on error nothing changed. */
static pd_err slot_rehome(pd_index_t *ix, uint32_t si, uint64_t key, const pd_volunteer_t *v) {
    slot_t *s = &ix->slots[si];
    cell_t *old = s->cell;
    const uint16_t mark = old->rec[s->idx].mark;
    if (old->key == key) {
        pd_err err = cell_fit(ix, old, old->n, skill_planes(v->skills), skill_planes(v->tags));
        if (err) return err;
        cell_write(ix, old, s->idx, si, v, false, mark);
        return PD_OK;
    }
    cell_t *c;
    pd_err err = cell_get_room(ix, key, 1, skill_planes(v->skills), skill_planes(v->tags), &c);
    if (err) return err;
    cell_take(ix, old, s->idx);
    cell_append(ix, c, si, v, mark);
    if (old->n == 0) cell_drop(ix, old);
    return PD_OK;
}

static void slot_read(const pd_index_t *ix, uint32_t si, pd_volunteer_t *out) {
    const slot_t *s = &ix->slots[si];
    const cell_t *c = s->cell;
    uint32_t i = s->idx;
    out->id = s->id;
    out->pos.lat = c->rec[i].lat;
    out->pos.lon = c->rec[i].lon;
    out->skills = 0;
    for (unsigned k = 0; k < c->nsk; k++)
        out->skills |= (uint64_t)bit_get(plane(c, PLANE_SKILL0 + k), i) << k;
    out->tags = 0;
    for (unsigned t = 0; t < c->ntg; t++) out->tags |= (uint64_t)bit_get(tag_plane(c, t), i) << t;
    out->week = pd_week_none();
    for (unsigned h = 0; h < PD_WEEK_HOURS; h++)
        out->week.bits[h >> 6] |= (uint64_t)bit_get(plane(c, PLANE_HOUR0 + h), i) << (h & 63);
    out->mode = s->mode;
    out->status = s->status;
    out->capacity = s->capacity;
    out->load = s->load;
}

pd_err pd_index_update(pd_index_t *ix, const pd_volunteer_t *v) {
    pd_err err = pd_volunteer_check(v);
    if (err) return err;
    uint32_t si;
    if ((err = find_slot(ix, v->id, &si))) return err;
    slot_t *s = &ix->slots[si];
    slot_t saved = *s;
    s->status = v->status;
    s->capacity = v->capacity;
    s->load = v->load;
    s->mode = v->mode;
    err = slot_rehome(ix, si, key_of_pos(ix, v->pos), v);
    if (err) *s = saved;
    return err;
}

pd_err pd_index_upsert(pd_index_t *ix, const pd_volunteer_t *v) {
    uint32_t si;
    if (find_slot(ix, v->id, &si) == PD_OK) return pd_index_update(ix, v);
    return pd_index_insert(ix, v);
}

pd_err pd_index_move(pd_index_t *ix, uint64_t id, pd_latlng_t pos) {
    if (!pd_latlng_is_valid(pos)) return PD_ERR_BAD_COORD;
    uint32_t si;
    pd_err err = find_slot(ix, id, &si);
    if (err) return err;
    slot_t *s = &ix->slots[si];
    cell_t *c = s->cell;
    uint64_t key = key_of_pos(ix, pos);
    if (c->key == key) { /* the common case: a ping inside the same cell */
        c->rec[s->idx].lat = pos.lat;
        c->rec[s->idx].lon = pos.lon;
        box_t *b = &c->box[s->idx >> 6];
        if (pos.lat < b->lat_lo || pos.lat > b->lat_hi || pos.lon < b->lon_lo ||
            pos.lon > b->lon_hi) {
            box_add(b, pos.lat, pos.lon);
            c->churn++;
        }
        return PD_OK;
    }
    pd_volunteer_t v;
    slot_read(ix, si, &v);
    v.pos = pos;
    return slot_rehome(ix, si, key, &v);
}

pd_err pd_index_set_state(pd_index_t *ix, uint64_t id, pd_status status, uint8_t capacity,
                          uint8_t load) {
    if ((unsigned)status >= PD_STATUS__COUNT || capacity == 0) return PD_ERR_BAD_ARG;
    uint32_t si;
    pd_err err = find_slot(ix, id, &si);
    if (err) return err;
    return pd_index_set_state_slot(ix, si, status, capacity, load);
}

pd_err pd_index_set_state_slot(pd_index_t *ix, uint32_t slot, pd_status status, uint8_t capacity,
                               uint8_t load) {
    if ((unsigned)status >= PD_STATUS__COUNT || capacity == 0) return PD_ERR_BAD_ARG;
    if (slot >= ix->nslots || !ix->slots[slot].cell) return PD_ERR_NOT_FOUND;
    slot_t *s = &ix->slots[slot];
    s->status = (uint8_t)status;
    s->capacity = capacity;
    s->load = load;
    bit_put(plane(s->cell, PLANE_AVAIL), s->idx, slot_avail(s));
    return PD_OK;
}

pd_err pd_index_remove(pd_index_t *ix, uint64_t id) {
    uint32_t si;
    pd_err err = find_slot(ix, id, &si);
    if (err) return err;
    slot_t *s = &ix->slots[si];
    cell_t *c = s->cell;
    pd__idmap_del(&ix->ids, id_keys(ix), id);
    cell_take(ix, c, s->idx);
    if (c->n == 0) cell_drop(ix, c);
    slot_free(ix, si);
    ix->count--;
    return PD_OK;
}

/* ------------------------------------------------------------ the reads */

pd_err pd_index_get(const pd_index_t *ix, uint64_t id, pd_volunteer_t *out) {
    uint32_t si;
    pd_err err = find_slot(ix, id, &si);
    if (err) return err;
    slot_read(ix, si, out);
    return PD_OK;
}

pd_err pd_index_get_slot(const pd_index_t *ix, uint64_t id, uint32_t *slot) {
    return find_slot(ix, id, slot);
}

uint32_t pd_index_slot_limit(const pd_index_t *ix) {
    return ix->nslots;
}

pd_err pd_index_slot_id(const pd_index_t *ix, uint32_t slot, uint64_t *id) {
    if (slot >= ix->nslots || !ix->slots[slot].cell) return PD_ERR_NOT_FOUND;
    *id = ix->slots[slot].id;
    return PD_OK;
}

void pd_index_foreach(const pd_index_t *ix, bool (*fn)(void *ud, const pd_volunteer_t *v),
                      void *ud) {
    for (uint32_t si = 0; si < ix->nslots; si++) {
        if (!ix->slots[si].cell) continue;
        pd_volunteer_t v;
        slot_read(ix, si, &v);
        if (!fn(ud, &v)) return;
    }
}

pd_err pd_index_slot_state(const pd_index_t *ix, uint32_t slot, pd_slot_state_t *out) {
    if (slot >= ix->nslots || !ix->slots[slot].cell) return PD_ERR_NOT_FOUND;
    const slot_t *s = &ix->slots[slot];
    out->id = s->id;
    out->status = s->status;
    out->capacity = s->capacity;
    out->load = s->load;
    out->mode = s->mode;
    return PD_OK;
}

pd_err pd_index_reserve(pd_index_t *ix, size_t more) {
    if (more > (1u << 31)) return PD_ERR_LIMIT;
    /* The id map first, as pd_index_insert_many does: it refuses what it
     * can never hold (3/4 of 2^31 entries) before the slots are grown. */
    pd_err err = pd__idmap_reserve(&ix->ids, (uint32_t)more);
    if (!err) err = slots_reserve(ix, more);
    return err;
}

pd_err pd_index_set_mark(pd_index_t *ix, uint32_t slot, uint16_t mark) {
    if (slot >= ix->nslots || !ix->slots[slot].cell) return PD_ERR_NOT_FOUND;
    const slot_t *s = &ix->slots[slot];
    s->cell->rec[s->idx].mark = mark;
    return PD_OK;
}

pd_err pd_index_get_mark(const pd_index_t *ix, uint32_t slot, uint16_t *mark) {
    if (slot >= ix->nslots || !ix->slots[slot].cell) return PD_ERR_NOT_FOUND;
    const slot_t *s = &ix->slots[slot];
    *mark = s->cell->rec[s->idx].mark;
    return PD_OK;
}

/* ------------------------------------------------------------------ bulk */

void pd_index_foreach_by_cell(const pd_index_t *ix,
                              bool (*fn)(void *ud, const pd_volunteer_t *v, uint32_t slot),
                              void *ud) {
    pd_volunteer_t vb[64];
    uint64_t wk[3][64], sk[64], tg[64];
    for (uint32_t ci = 0; ci <= ix->cells_mask; ci++) {
        const cell_t *c = ix->cells[ci].cell;
        if (!c) continue;
        for (uint32_t b = 0; b * 64 < c->n; b++) {
            uint32_t lo = b * 64, cnt = c->n - lo < 64 ? c->n - lo : 64;
            block_read(c, b, wk, sk, tg);
            for (uint32_t j = 0; j < cnt; j++) {
                const rec_t *r = &c->rec[lo + j];
                const slot_t *s = &ix->slots[r->slot];
                pd_volunteer_t *v = &vb[j];
                v->id = r->id;
                v->pos.lat = r->lat;
                v->pos.lon = r->lon;
                v->skills = sk[j];
                v->tags = tg[j];
                for (unsigned w = 0; w < 3; w++) v->week.bits[w] = wk[w][j];
                v->mode = s->mode;
                v->status = s->status;
                v->capacity = s->capacity;
                v->load = s->load;
            }
            for (uint32_t j = 0; j < cnt; j++)
                if (!fn(ud, &vb[j], c->rec[lo + j].slot)) return;
        }
    }
}

/* A group of the volunteers given to pd_index_insert_many: those of one
 * cell. */
typedef struct group_s {
    uint64_t key;
    cell_t *cell;
    uint32_t count; /* volunteers for it */
    uint32_t next;  /* the grouping pass: next position in the grouped order */
    uint32_t nsk;   /* skill planes they need */
    uint32_t ntg;   /* tag planes they need */
    bool created;   /* the cell did not exist before */
} group_t;

/* Cell key -> group, for the grouping pass. */
typedef struct groups_s {
    uint32_t *at; /* group + 1; 0: empty */
    uint32_t mask;
    group_t *g;
    uint32_t n, cap;
} groups_t;

static pd_err groups_rehash(groups_t *gs, uint32_t nslots) {
    uint32_t *at = pd_calloc(nslots, sizeof *at);
    if (!at) return PD_ERR_NOMEM;
    for (uint32_t i = 0; i < gs->n; i++) {
        uint32_t h = key_hash(gs->g[i].key) & (nslots - 1);
        while (at[h]) h = (h + 1) & (nslots - 1);
        at[h] = i + 1;
    }
    pd_free(gs->at);
    gs->at = at;
    gs->mask = nslots - 1;
    return PD_OK;
}

/* The group of key, added if new; UINT32_MAX on NOMEM. */
static uint32_t groups_get(groups_t *gs, uint64_t key) {
    uint32_t h = key_hash(key) & gs->mask;
    for (; gs->at[h]; h = (h + 1) & gs->mask)
        if (gs->g[gs->at[h] - 1].key == key) return gs->at[h] - 1;
    if (gs->n == gs->cap) {
        group_t *ng = pd_realloc(gs->g, (size_t)gs->cap * 2 * sizeof *ng);
        if (!ng) return UINT32_MAX;
        gs->g = ng;
        gs->cap *= 2;
    }
    if ((gs->n + 1) * 4 > (gs->mask + 1) * 3) {
        if (groups_rehash(gs, (gs->mask + 1) * 2)) return UINT32_MAX;
        return groups_get(gs, key);
    }
    gs->g[gs->n] = (group_t){key, NULL, 0, 0, 0, 0, false};
    gs->at[h] = gs->n + 1;
    return gs->n++;
}

/* Undo a pd_index_insert_many that gave slots and ids to order[0..done)
 * of vs (slots[] holds them) and made the cells of gs, before any volunteer
 * went into a cell: the ids and slots go, last first, then the new cells
 * (all still empty). */
static void insert_many_undo(pd_index_t *ix, const pd_volunteer_t *vs, const uint32_t *order,
                             const uint32_t *sis, size_t done, groups_t *gs) {
    while (done > 0) {
        done--;
        (void)pd__idmap_del(&ix->ids, id_keys(ix), vs[order[done]].id);
        slot_free(ix, sis[done]);
    }
    for (uint32_t k = 0; k < gs->n; k++) {
        cell_t *c = gs->g[k].cell;
        if (c && gs->g[k].created && c->n == 0) cell_drop(ix, c);
    }
}

/* The record to blame when vs[order[j]]'s id was refused: itself if the
 * id was in the index before, else the later (in vs) of it and the record
 * of the batch that took the id first (slots sis[0..j), given out in the
 * grouped order, not vs's). Only on the error path: a scan. */
static size_t insert_many_blame(const pd_index_t *ix, const pd_volunteer_t *vs,
                                const uint32_t *order, const uint32_t *sis, size_t j) {
    size_t at = order[j];
    uint32_t other;
    if (find_slot(ix, vs[at].id, &other) != PD_OK) return at;
    for (size_t i = 0; i < j; i++)
        if (sis[i] == other) return order[i] > at ? order[i] : at;
    return at;
}

/* Append vs[order[0..count)] (slots sis[]) to c, room reserved: hours,
 * skills and tags a block of 64 at a time through a transpose. */
static void cell_append_many(pd_index_t *ix, cell_t *c, const pd_volunteer_t *vs,
                             const uint32_t *order, const uint32_t *sis, uint32_t count) {
    uint32_t i0 = c->n, end = c->n + count;
    uint64_t wk[3][64], sk[64], tg[64];
    for (uint32_t b = i0 >> 6; b * 64 < end; b++) {
        uint32_t lo = b * 64 > i0 ? b * 64 : i0, hi = b * 64 + 64 < end ? b * 64 + 64 : end;
        memset(wk, 0, sizeof wk);
        memset(sk, 0, sizeof sk);
        memset(tg, 0, sizeof tg);
        for (uint32_t i = lo; i < hi; i++) {
            const pd_volunteer_t *v = &vs[order[i - i0]];
            for (unsigned w = 0; w < 3; w++) wk[w][i & 63] = v->week.bits[w];
            sk[i & 63] = v->skills;
            tg[i & 63] = v->tags;
            uint32_t si = sis[i - i0];
            cell_write_fields(ix, c, i, si, v, 0);
            ix->slots[si].cell = c;
            ix->slots[si].idx = i;
        }
        block_or(c, b, wk, sk, tg);
    }
    c->n = end;
}

/* Fault in a cell block about to be filled, in one call: a restore builds
 * some 100 MB of cells, and a page fault per 4 KiB page (a trap; in a VM,
 * into the hypervisor) costs more than the writes. */
static void populate(void *p, size_t n) {
#ifdef MADV_POPULATE_WRITE
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (end > a) (void)madvise((void *)a, end - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

pd_err pd_index_insert_many(pd_index_t *ix, const pd_volunteer_t *vs, size_t n, uint32_t *slots,
                            size_t *bad) {
    if (bad) *bad = n;
    if (n == 0) return PD_OK;
    if (n >= (1u << 31) || ix->nslots + n > (1u << 31)) return PD_ERR_LIMIT;
    pd_err err;
    for (size_t i = 0; i < n; i++) {
        if ((err = pd_volunteer_check(&vs[i]))) {
            if (bad) *bad = i;
            return err;
        }
    }
    if ((err = pd__idmap_reserve(&ix->ids, (uint32_t)n)) || (err = slots_reserve(ix, n))) {
        return err;
    }
    groups_t gs = {0};
    uint32_t *gid = pd_malloc(n * sizeof *gid);
    uint32_t *order = pd_malloc(n * sizeof *order);
    gs.g = pd_malloc(64 * sizeof *gs.g);
    gs.cap = 64;
    if (!gid || !order || !gs.g || groups_rehash(&gs, 128)) {
        err = PD_ERR_NOMEM;
        goto out;
    }
    /* Group by cell, sized once per cell; then a counting sort. */
    for (size_t i = 0; i < n; i++) {
        uint32_t k = groups_get(&gs, key_of_pos(ix, vs[i].pos));
        if (k == UINT32_MAX) {
            err = PD_ERR_NOMEM;
            goto out;
        }
        gid[i] = k;
        gs.g[k].count++;
        uint32_t nsk = skill_planes(vs[i].skills);
        if (nsk > gs.g[k].nsk) gs.g[k].nsk = nsk;
        uint32_t ntg = skill_planes(vs[i].tags);
        if (ntg > gs.g[k].ntg) gs.g[k].ntg = ntg;
    }
    uint32_t at = 0;
    for (uint32_t k = 0; k < gs.n; k++) {
        group_t *g = &gs.g[k];
        g->next = at;
        at += g->count;
        g->created = cell_find(ix, g->key) == NULL;
        if ((err = cell_get_room(ix, g->key, g->count, g->nsk, g->ntg, &g->cell))) {
            insert_many_undo(ix, vs, order, NULL, 0, &gs);
            goto out;
        }
        populate(g->cell->planes, cell_block_bytes(g->cell->cap, g->cell->nsk, g->cell->ntg));
    }
    for (size_t i = 0; i < n; i++) order[gs.g[gid[i]].next++] = (uint32_t)i;

    /* Slots and ids first (the only step that can fail: an id present or
     * given twice), then the cells, a group at a time. gid[] is reused for
     * the slots, in the grouped order. */
    uint32_t *sis = gid;
    for (uint32_t k = 0, at2 = 0; k < gs.n; k++) {
        gs.g[k].next = at2; /* first position of the group again */
        at2 += gs.g[k].count;
    }
    pd__idmap_keys_t keys = id_keys(ix);
    for (size_t j = 0; j < n; j++) {
        if (j + 8 < n) pd__idmap_prefetch(&ix->ids, vs[order[j + 8]].id);
        const pd_volunteer_t *v = &vs[order[j]];
        uint32_t si = slot_take(ix, v);
        if ((err = pd__idmap_add_new(&ix->ids, keys, v->id, si))) {
            slot_free(ix, si);
            if (bad) *bad = insert_many_blame(ix, vs, order, sis, j);
            insert_many_undo(ix, vs, order, sis, j, &gs);
            goto out;
        }
        sis[j] = si;
    }
    for (uint32_t k = 0; k < gs.n; k++) {
        const group_t *g = &gs.g[k];
        cell_append_many(ix, g->cell, vs, order + g->next, sis + g->next, g->count);
    }
    ix->count += (uint32_t)n;
    if (slots)
        for (size_t j = 0; j < n; j++) slots[order[j]] = sis[j];
out:
    pd_free(gid);
    pd_free(order);
    pd_free(gs.g);
    pd_free(gs.at);
    return err;
}

size_t pd_index_memory(const pd_index_t *ix) {
    return sizeof *ix + (size_t)(ix->row_max - ix->row_min + 1) * sizeof(row_t) +
           ((size_t)ix->cells_mask + 1) * sizeof(bucket_t) + (size_t)ix->ncells * sizeof(cell_t) +
           ix->cell_bytes + (size_t)ix->slots_cap * sizeof(slot_t) + pd__idmap_memory(&ix->ids);
}

/* ---------------------------------------------------------- the queries */

#define PENDING_MAX 64
#define POS_MAX 128
#define CAND_MAX 256

/* Everything a scan needs, computed once per query. */
typedef struct search_s {
    const pd_index_t *ix;
    const pd_query_t *q;
    int32_t qlat, qlon;
    double cos_q, sin_q;
    double reach_m[PD_MODE__COUNT]; /* farthest a volunteer of the mode may qualify */
    double max_d2[PD_MODE__COUNT];  /* the same in radians^2, with slack */
    double extent_m;                /* the largest reach */
    uint8_t req[64];                /* required skill bits */
    uint32_t nreq;
    uint32_t req_planes; /* skill planes a cell needs to hold any match */
    uint8_t reqt[64];    /* required tag bits */
    uint32_t nreqt;
    uint32_t reqt_planes;         /* tag planes a cell needs to hold any match */
    uint8_t hours[PD_WEEK_HOURS]; /* hours of the window */
    uint32_t nhours;
    bool count_all; /* within: count every hit, prune by reach only */
    /* cells found but not scanned yet: looked up and prefetched in a batch,
     * then scanned, so their cache misses overlap */
    struct {
        const cell_t *cell;
        double min_m;
        double kx;
    } pending[PENDING_MAX];
    uint32_t npending;
    /* ring positions queued for lookup, their buckets prefetched */
    struct {
        uint64_t key;
        uint32_t h;
        double min_m;
        double kx;
    } pos[POS_MAX];
    uint32_t npos;
    /* candidates that passed the planes, their records prefetched */
    struct {
        const cell_t *cell;
        uint32_t i;
    } cand[CAND_MAX];
    uint32_t ncand;
    bool done[PD_MODE__COUNT]; /* the ring walk is over for this mode */
    /* the bounded heap of results (in the caller's buffer) */
    pd_hit_t *heap;
    size_t k, n;
    size_t total;
} search_t;

static inline bool hit_worse(const pd_hit_t *a, const pd_hit_t *b) {
    return a->score > b->score || (a->score == b->score && a->id > b->id);
}

static void heap_sift_up(pd_hit_t *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hit_worse(&h[i], &h[p])) break;
        pd_hit_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static void heap_sift_down(pd_hit_t *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && hit_worse(&h[l], &h[m])) m = l;
        if (r < n && hit_worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        pd_hit_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static inline bool heap_full(const search_t *s) {
    return s->k && s->n == s->k;
}

static inline void heap_offer(search_t *s, const pd_hit_t *hit) {
    s->total++;
    if (s->n < s->k) {
        s->heap[s->n] = *hit;
        heap_sift_up(s->heap, s->n++);
    } else if (s->k && hit_worse(&s->heap[0], hit)) {
        s->heap[0] = *hit;
        heap_sift_down(s->heap, s->n, 0);
    }
}

/* How far a volunteer of mode m can be and still enter the results: its
 * reach, or, once the heap is full, the distance at which its ETA alone
 * passes the k-th best score. */
static inline double mode_limit_m(const search_t *s, unsigned m) {
    double lim = s->reach_m[m];
    if (!s->count_all && heap_full(s)) {
        double by_score = s->heap[0].score * s->ix->speed_mps[m] / s->ix->cfg.detour;
        if (by_score < lim) lim = by_score;
    }
    return lim;
}

/* Test the queued candidates: distance, ETA, the hook, the heap.
 * Their records were prefetched when they were queued, so the misses of a
 * whole batch overlap instead of coming one after another. */
static void flush_candidates(search_t *s) {
    const pd_query_t *q = s->q;
    const pd_index_t *ix = s->ix;
    for (uint32_t k = 0; k < s->ncand; k++) {
        const cell_t *c = s->cand[k].cell;
        uint32_t i = s->cand[k].i;
        const rec_t *rc = &c->rec[i];
        unsigned mode = rc->mode;
        double d2 = pd__fast_d2(s->qlat, s->qlon, s->cos_q, s->sin_q, rc->lat, rc->lon);
        if (d2 > s->max_d2[mode]) continue;
        double dist = PD__EARTH_R_M * sqrt(d2);
        if (q->radius_m > 0 && dist > q->radius_m) continue;
        double eta = dist * ix->cfg.detour / ix->speed_mps[mode];
        if (q->budget_s > 0 && eta > q->budget_s) continue;
        /* The hook only adds, so a hit already slower than the k-th best
         * cannot enter; skip the hook for it. */
        if (!s->count_all && heap_full(s) && eta > s->heap[0].score) continue;
        pd_hit_t hit;
        hit.slot = rc->slot;
        hit.id = rc->id;
        hit.distance_m = (float)dist;
        hit.eta_s = (float)eta;
        hit.score = eta;
        if (q->score) {
            double sc = eta;
            if (!q->score(q->score_ud, hit.slot, hit.id, rc->mark, eta, dist, &sc)) continue;
            hit.score = sc < eta ? eta : sc;
        }
        if (heap_full(s) && !hit_worse(&s->heap[0], &hit)) {
            s->total++;
            continue;
        }
        heap_offer(s, &hit);
    }
    s->ncand = 0;
}

/* False when nobody in c can have every skill and tag the query needs:
 * c has no plane for one of them. */
static inline bool cell_may_match(const search_t *s, const cell_t *c) {
    return s->req_planes <= c->nsk && s->reqt_planes <= c->ntg;
}

/* Scan one cell: AND the planes the query needs, word by word, and queue
 * the survivors. modes_ok has bit m set for every travel mode that may
 * still qualify in this cell. */
static void scan_cell(search_t *s, const cell_t *c, unsigned modes_ok, double kx) {
    const pd_query_t *q = s->q;
    if (!cell_may_match(s, c)) return;
    const uint32_t nblk = (c->n + 63) / 64;
    /* the modes' limits, fixed while the cell is scanned (hits are queued) */
    double lim[PD_MODE__COUNT];
    for (unsigned md = 0; md < PD_MODE__COUNT; md++)
        lim[md] = (modes_ok >> md & 1) ? mode_limit_m(s, md) * (1 + 1e-9) : -1;
    const double m_per_e6 = PD__EARTH_R_M * PD__E6_TO_RAD;
    for (uint32_t b = 0; b < nblk; b++) {
        unsigned bmodes = modes_ok & cell_bmodes(c)[b];
        if (!bmodes) continue;
        if (nblk > 1) {
            /* the block's box: a lower bound on its distance, per mode */
            const box_t *bx = &c->box[b];
            double gy = 0, gx = 0;
            if (bx->lat_lo > s->qlat)
                gy = (double)bx->lat_lo - s->qlat;
            else if (s->qlat > bx->lat_hi)
                gy = (double)s->qlat - bx->lat_hi;
            if (s->qlon < bx->lon_lo || s->qlon > bx->lon_hi) {
                double a = fabs((double)s->qlon - bx->lon_lo),
                       e = fabs((double)s->qlon - bx->lon_hi);
                a = MIN2(a, 360e6 - a);
                e = MIN2(e, 360e6 - e);
                gx = MIN2(a, e) * kx;
            }
            double lb = m_per_e6 * sqrt(gy * gy + gx * gx);
            for (unsigned md = 0; md < PD_MODE__COUNT; md++)
                if (lb > lim[md]) bmodes &= ~(1u << md);
            if (!bmodes) continue;
        }
        /* Every mode the block may hold is still in reach (after a sort
         * most blocks hold one mode): the mode planes cannot drop anyone. */
        const bool all_modes = bmodes == cell_bmodes(c)[b];
        uint64_t m;
        if (q->include_unavailable)
            m = (b + 1 < nblk || (c->n & 63) == 0) ? ~0ULL : (1ULL << (c->n & 63)) - 1;
        else
            m = plane(c, PLANE_AVAIL)[b];
        for (uint32_t j = 0; j < s->nreq && m; j++) m &= plane(c, PLANE_SKILL0 + s->req[j])[b];
        for (uint32_t j = 0; j < s->nreqt && m; j++) m &= tag_plane(c, s->reqt[j])[b];
        for (uint32_t j = 0; j < s->nhours && m; j++) m &= plane(c, PLANE_HOUR0 + s->hours[j])[b];
        if (!all_modes && m) {
            uint64_t mm = 0;
            for (unsigned md = 0; md < PD_MODE__COUNT; md++)
                if (bmodes >> md & 1) mm |= plane(c, PLANE_MODE0 + md)[b];
            m &= mm;
        }
        while (m) {
            uint32_t i = b * 64 + (uint32_t)__builtin_ctzll(m);
            m &= m - 1;
            __builtin_prefetch(&c->rec[i]);
            s->cand[s->ncand].cell = c;
            s->cand[s->ncand].i = i;
            if (++s->ncand == CAND_MAX) flush_candidates(s);
        }
    }
}

/* Lower bound, in metres, on the distance from the query to any point of
 * cell (r, c); kx is a lower bound on the longitude factor there. */
static double cell_min_m(const search_t *s, int32_t r, int32_t c, const row_t *row, double kx) {
    const pd_index_t *ix = s->ix;
    double lo = (double)r * ix->h, hi = lo + ix->h;
    double dy = 0;
    if (s->qlat < lo)
        dy = lo - s->qlat;
    else if (s->qlat > hi)
        dy = s->qlat - hi;
    /* longitude interval of the column, measured from the query, wrapped */
    double clo = -180e6 + c * row->width_e6;
    double chi = clo + row->width_e6;
    double dx = 0;
    double x = s->qlon;
    if (x < clo || x > chi) {
        double a = fabs(x - clo), b = fabs(x - chi);
        a = MIN2(a, 360e6 - a);
        b = MIN2(b, 360e6 - b);
        dx = MIN2(a, b);
    }
    dx *= kx;
    return PD__EARTH_R_M * PD__E6_TO_RAD * sqrt(dy * dy + dx * dx);
}

/* The travel modes that may still qualify at min_m metres. */
static inline unsigned modes_within(const search_t *s, double min_m) {
    unsigned ok = 0;
    for (unsigned m = 0; m < PD_MODE__COUNT; m++)
        if (!s->done[m] && min_m <= mode_limit_m(s, m) * (1 + 1e-9)) ok |= 1u << m;
    return ok;
}

/* Bring the plane words a query reads of cell c towards the cache. */
static inline void cell_prefetch(const search_t *s, const cell_t *c) {
    uint32_t nblk = (c->n + 63) / 64;
    __builtin_prefetch(cell_bmodes(c));
    if (nblk > 1)
        for (uint32_t b = 0; b < nblk; b += 4) __builtin_prefetch(&c->box[b]);
    for (uint32_t b = 0; b < nblk; b += 8) {
        __builtin_prefetch(plane(c, PLANE_AVAIL) + b);
        for (uint32_t j = 0; j < s->nreq; j++)
            __builtin_prefetch(plane(c, PLANE_SKILL0 + s->req[j]) + b);
        for (uint32_t j = 0; j < s->nreqt; j++) __builtin_prefetch(tag_plane(c, s->reqt[j]) + b);
        for (uint32_t j = 0; j < s->nhours && j < 4; j++)
            __builtin_prefetch(plane(c, PLANE_HOUR0 + s->hours[j]) + b);
    }
}

/* Scan the pending cells; the heap may have improved since they were
 * queued, so each is checked against the modes still in reach again. The
 * planes of every pending cell are prefetched first. */
static void flush_pending(search_t *s) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->npending; i++) {
        const cell_t *cell = s->pending[i].cell;
        if (!cell_may_match(s, cell)) continue;
        cell_prefetch(s, cell);
        s->pending[n++] = s->pending[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        unsigned ok = modes_within(s, s->pending[i].min_m);
        if (ok) scan_cell(s, s->pending[i].cell, ok, s->pending[i].kx);
    }
    s->npending = 0;
    flush_candidates(s);
}

/* Look up the queued ring positions (their buckets were prefetched when
 * they were queued) and queue the cells found, prefetching each cell. */
static void resolve_positions(search_t *s) {
    for (uint32_t i = 0; i < s->npos; i++) {
        const cell_t *cell = cell_find_h(s->ix, s->pos[i].key, s->pos[i].h);
        if (!cell) continue;
        __builtin_prefetch(cell);
        s->pending[s->npending].cell = cell;
        s->pending[s->npending].min_m = s->pos[i].min_m;
        s->pending[s->npending].kx = s->pos[i].kx;
        if (++s->npending == PENDING_MAX) flush_pending(s);
    }
    s->npos = 0;
}

/* Everything queued so far: positions, then cells, then candidates. */
static void flush_all(search_t *s) {
    resolve_positions(s);
    flush_pending(s);
}

/* Visit ring position (r, c): skip it on its lower bound alone when no
 * mode can reach it, before touching the map; otherwise queue it and
 * prefetch its bucket. Lookups, cell headers, planes and candidate records
 * are each fetched for a whole batch before any is used, so the cache
 * misses of a ring overlap instead of following one another. */
static void visit(search_t *s, int32_t r, int32_t c, const row_t *row, double kx) {
    double min_m = cell_min_m(s, r, c, row, kx);
    if (!modes_within(s, min_m)) return;
    uint64_t key = cell_key(r, c);
    uint32_t h = key_hash(key);
    __builtin_prefetch(&s->ix->cells[h & s->ix->cells_mask]);
    s->pos[s->npos].key = key;
    s->pos[s->npos].h = h;
    s->pos[s->npos].min_m = min_m;
    s->pos[s->npos].kx = kx;
    if (++s->npos == POS_MAX) resolve_positions(s);
}

/* Circular column distance of c from c0 in a row of n columns. */
static inline int32_t col_dist(int32_t c, int32_t c0, int32_t n) {
    int32_t d = c > c0 ? c - c0 : c0 - c;
    return d < n - d ? d : n - d;
}

/* Scan the whole map, skipping the positions the rings already visited
 * (rows within d of row0 and columns within d of that row's c0). */
static void scan_rest(search_t *s, int32_t row0, int32_t d) {
    const pd_index_t *ix = s->ix;
    for (uint32_t i = 0; i <= ix->cells_mask; i++) {
        const cell_t *c = ix->cells[i].cell;
        if (!c) continue;
        int32_t r = key_row(c->key), col = key_col(c->key);
        const row_t *row = row_at(ix, r);
        if (abs(r - row0) <= d && col_dist(col, col_of(s->qlon, row->ncols), row->ncols) <= d)
            continue;
        double kx = MIN2(row->cos_far, row_at(ix, row0)->cos_far);
        unsigned ok = modes_within(s, cell_min_m(s, r, col, row, kx));
        if (ok) scan_cell(s, c, ok, kx);
        flush_candidates(s);
    }
}

static pd_err search_init(search_t *s, const pd_index_t *ix, const pd_query_t *q) {
    if (!pd_latlng_is_valid(q->at)) return PD_ERR_BAD_COORD;
    if (!isfinite(q->budget_s) || !isfinite(q->radius_m)) return PD_ERR_BAD_ARG;
    if (q->budget_s <= 0 && q->radius_m <= 0) return PD_ERR_BAD_ARG;
    if (q->budget_s > PD_QUERY_MAX_BUDGET_S || q->radius_m > PD_QUERY_MAX_RADIUS_M)
        return PD_ERR_BAD_ARG;
    if (q->need.bits[2] >> (PD_WEEK_HOURS - 128)) return PD_ERR_BAD_ARG;
    /* Not a memset of the whole: its queues are ~10 KB, written before
     * they are read, and clearing them cost ~3 % of a query. */
    s->nreq = s->nhours = s->npending = s->npos = s->ncand = 0;
    memset(s->done, 0, sizeof s->done);
    s->count_all = false;
    s->heap = NULL;
    s->k = s->n = s->total = 0;
    s->ix = ix;
    s->q = q;
    s->qlat = q->at.lat;
    s->qlon = q->at.lon;
    double qr = q->at.lat * PD__E6_TO_RAD;
    s->cos_q = cos(qr);
    s->sin_q = sin(qr);
    for (unsigned k = 0; k < 64; k++)
        if (q->skills >> k & 1) s->req[s->nreq++] = (uint8_t)k;
    s->req_planes = skill_planes(q->skills);
    s->nreqt = 0;
    for (unsigned t = 0; t < 64; t++)
        if (q->tags >> t & 1) s->reqt[s->nreqt++] = (uint8_t)t;
    s->reqt_planes = skill_planes(q->tags);
    for (unsigned h = 0; h < PD_WEEK_HOURS; h++)
        if (q->need.bits[h >> 6] >> (h & 63) & 1) s->hours[s->nhours++] = (uint8_t)h;
    s->extent_m = 0;
    for (int m = 0; m < PD_MODE__COUNT; m++) {
        double lim = INFINITY;
        if (q->radius_m > 0) lim = q->radius_m;
        if (q->budget_s > 0) lim = MIN2(lim, q->budget_s * ix->speed_mps[m] / ix->cfg.detour);
        s->reach_m[m] = lim;
        /* Pre-filter on d2 with a little slack; the exact tests are on the
         * distance and the ETA, as the documented rules say. */
        double rad = lim / PD__EARTH_R_M * (1 + 1e-9);
        s->max_d2[m] = rad * rad;
        if (lim > s->extent_m) s->extent_m = lim;
    }
    return PD_OK;
}

/* The ring walk shared by nearest (early_stop) and within. Each travel
 * mode lives in cells of its own, and each mode stops on its own bound:
 * walkers are searched out to where a walker could still beat the k-th
 * best, cars out to where a car could. */
static void search_run(search_t *s, bool early_stop) {
    const pd_index_t *ix = s->ix;
    int32_t row0 = row_of(ix, s->qlat);
    uint64_t visited = 0;
    for (int32_t d = 0;; d++) {
        int32_t rlo = row0 - d, rhi = row0 + d;
        int32_t vlo = rlo < ix->row_min ? ix->row_min : rlo;
        int32_t vhi = rhi > ix->row_max ? ix->row_max : rhi;
        /* Smallest column width x cosine in the band: the longitude bound. */
        double min_w = INFINITY, min_cos = row_at(ix, row0)->cos_far;
        bool cols_left = false;
        for (int32_t r = vlo; r <= vhi; r++) {
            const row_t *row = row_at(ix, r);
            if (row->cos_far < min_cos) min_cos = row->cos_far;
            if (row->width_e6 < min_w) min_w = row->width_e6;
            if (2 * (int64_t)d + 1 < row->ncols) cols_left = true;
        }
        for (int32_t r = vlo; r <= vhi; r++) {
            const row_t *row = row_at(ix, r);
            int32_t n = row->ncols, c0 = col_of(s->qlon, n);
            double kx = MIN2(row->cos_far, row_at(ix, row0)->cos_far);
            if (r == rlo || r == rhi) {
                /* a full edge row: every column within d of c0, once */
                if (2 * (int64_t)d + 1 >= n) {
                    for (int32_t c = 0; c < n; c++) visit(s, r, c, row, kx);
                    visited += (uint64_t)n;
                } else {
                    for (int32_t dc = -d; dc <= d; dc++) {
                        int32_t c = c0 + dc;
                        c = c < 0 ? c + n : (c >= n ? c - n : c);
                        visit(s, r, c, row, kx);
                    }
                    visited += 2 * (uint64_t)d + 1;
                }
            } else if (2 * (int64_t)d <= n) {
                /* an inner row: the two columns at distance d (one if they
                 * coincide across the wrap) */
                int32_t a = c0 - d, b = c0 + d;
                a = a < 0 ? a + n : a;
                b = b >= n ? b - n : b;
                visit(s, r, a, row, kx);
                visited++;
                if (b != a) {
                    visit(s, r, b, row, kx);
                    visited++;
                }
            }
        }
        flush_all(s);
        /* Bound on anything outside the (2d+1)-block just finished. */
        double lat_b = INFINITY;
        if (rlo > ix->row_min) lat_b = MIN2(lat_b, (double)s->qlat - (double)rlo * ix->h);
        if (rhi < ix->row_max) lat_b = MIN2(lat_b, (double)(rhi + 1) * ix->h - s->qlat);
        double lon_b = cols_left ? d * min_w * min_cos : INFINITY;
        double lb_m = PD__EARTH_R_M * PD__E6_TO_RAD * MIN2(lat_b, lon_b) * (1 - 1e-9);
        bool all_done = true;
        for (unsigned m = 0; m < PD_MODE__COUNT; m++) {
            if (s->done[m]) continue;
            double lim = early_stop ? mode_limit_m(s, m) : s->reach_m[m];
            /* strict: a volunteer exactly at the bound could tie on score
             * and win on id */
            if (!isfinite(lb_m) || lb_m > lim)
                s->done[m] = true;
            else
                all_done = false;
        }
        if (all_done) return;
        /* The next ring costs about 8(d+1) positions; once the rings have
         * cost more than the map has cells, scan the map for the rest. */
        if (visited + 8 * (uint64_t)(d + 1) > 2 * (uint64_t)ix->ncells + 64) {
            scan_rest(s, row0, d);
            return;
        }
    }
}

/* Sort the heap in place, best first: pop the worst to the end, over and
 * over (heapsort; qsort may allocate, and the query path must not). */
static void search_finish(search_t *s, size_t *n_out) {
    for (size_t n = s->n; n > 1; n--) {
        pd_hit_t t = s->heap[0];
        s->heap[0] = s->heap[n - 1];
        s->heap[n - 1] = t;
        heap_sift_down(s->heap, n - 1, 0);
    }
    *n_out = s->n;
}

pd_err pd_index_nearest(const pd_index_t *ix, const pd_query_t *q, size_t k, pd_hit_t *out,
                        size_t *n_out) {
    if (k == 0) return PD_ERR_BAD_ARG;
    search_t s;
    pd_err err = search_init(&s, ix, q);
    if (err) return err;
    s.heap = out;
    s.k = k;
    search_run(&s, true);
    search_finish(&s, n_out);
    return PD_OK;
}

pd_err pd_index_within(const pd_index_t *ix, const pd_query_t *q, size_t limit, pd_hit_t *out,
                       size_t *n_out, size_t *total) {
    search_t s;
    pd_err err = search_init(&s, ix, q);
    if (err) return err;
    s.heap = out;
    s.k = limit;
    s.count_all = true;
    search_run(&s, false);
    search_finish(&s, n_out);
    if (total) *total = s.total;
    return PD_OK;
}

/* ---------------------------------------------------------- maintenance */

/* Spread the low 16 bits of x to the even bits of the result. */
static inline uint32_t spread16(uint32_t x) {
    x &= 0xFFFF;
    x = (x | (x << 8)) & 0x00FF00FF;
    x = (x | (x << 4)) & 0x0F0F0F0F;
    x = (x | (x << 2)) & 0x33333333;
    x = (x | (x << 1)) & 0x55555555;
    return x;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reorder cell c along a Z-order curve over its own area, so each block of
 * 64 covers a compact patch and its box is tight. NOMEM leaves c as it was. */
static pd_err cell_sort(pd_index_t *ix, cell_t *c) {
    uint32_t n = c->n;
    uint64_t *keys = pd_malloc((size_t)n * sizeof *keys);
    if (!keys) return PD_ERR_NOMEM;
    int32_t r = key_row(c->key);
    const row_t *row = row_at(ix, r);
    double lat0 = (double)r * ix->h, lon0 = -180e6 + key_col(c->key) * row->width_e6;
    for (uint32_t i = 0; i < n; i++) {
        double fy = ((double)c->rec[i].lat - lat0) / ix->h;
        double fx = ((double)c->rec[i].lon - lon0) / row->width_e6;
        fy = fy < 0 ? 0 : (fy > 1 ? 1 : fy);
        fx = fx < 0 ? 0 : (fx > 1 ? 1 : fx);
        uint32_t z = spread16((uint32_t)(fy * 65535.0)) << 1 | spread16((uint32_t)(fx * 65535.0));
        keys[i] = (uint64_t)c->rec[i].mode << 62 | (uint64_t)z << 30 | i;
    }
    qsort(keys, n, sizeof *keys, cmp_u64);
    cell_t nc = *c;
    /* The new block also drops the slack growth left: room for an eighth
     * more, in whole blocks of 64. */
    uint32_t cap = (n + n / 8 + 63) & ~63u;
    if (cap > c->cap) cap = c->cap;
    pd_err err = cell_alloc_block(&nc, cap, c->nsk, c->ntg);
    if (err) {
        pd_free(keys);
        return err;
    }
    unsigned np = cell_nplanes(c);
    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = (uint32_t)(keys[j] & ((1u << 30) - 1));
        for (unsigned p = 0; p < np; p++)
            if (bit_get(plane(c, p), i)) bit_put(plane(&nc, p), j, true);
        nc.rec[j] = c->rec[i];
        box_add(&nc.box[j >> 6], nc.rec[j].lat, nc.rec[j].lon);
        cell_bmodes(&nc)[j >> 6] |= (uint8_t)(1u << nc.rec[j].mode);
        ix->slots[nc.rec[j].slot].idx = j;
    }
    nc.churn = 0;
    pd_free(keys);
    pd_free(c->planes);
    ix->cell_bytes -= cell_block_bytes(c->cap, c->nsk, c->ntg);
    ix->cell_bytes += cell_block_bytes(nc.cap, nc.nsk, nc.ntg);
    *c = nc;
    return PD_OK;
}

pd_err pd_index_optimize(pd_index_t *ix, size_t budget, size_t *n_sorted) {
    size_t work = 0, sorted = 0;
    uint32_t cap = ix->cells_mask + 1;
    uint32_t k = 0;
    for (; k < cap && work < budget; k++) {
        cell_t *c = ix->cells[(ix->opt_cursor + k) & ix->cells_mask].cell;
        /* one block gains nothing; a cell is worth sorting again once a
         * quarter of it has changed */
        if (!c || c->n <= 64 || (uint64_t)c->churn * 4 < c->n) continue;
        pd_err err = cell_sort(ix, c);
        if (err) {
            ix->opt_cursor = (ix->opt_cursor + k) & ix->cells_mask;
            if (n_sorted) *n_sorted = sorted;
            return err;
        }
        work += c->n;
        sorted++;
    }
    ix->opt_cursor = (ix->opt_cursor + k) & ix->cells_mask;
    if (n_sorted) *n_sorted = sorted;
    return PD_OK;
}

/* ------------------------------------------------------------ validation */

void pd_index_huge_pages(pd_index_t *ix, size_t budget, size_t *n_pages, bool *done) {
    const uintptr_t H = (uintptr_t)2 << 20;
    size_t asked = 0;
    *done = false;
    if (budget == 0) budget = 1;
    while (asked < budget) {
        if (ix->huge_cursor > ix->cells_mask) {
            ix->huge_cursor = 0;
            ix->huge_resume = 0;
            memset(ix->huge_seen, 0, sizeof ix->huge_seen);
            *done = true;
            break;
        }
        const cell_t *c = ix->cells[ix->huge_cursor].cell;
        if (c) {
            uintptr_t a = (uintptr_t)c->planes, e = a + cell_block_bytes(c->cap, c->nsk, c->ntg);
            uintptr_t pg = a & ~(H - 1);
            /* a cell cut short by the budget goes on where it stopped,
             * unless it has moved since */
            if (ix->huge_resume > pg && ix->huge_resume < e) pg = ix->huge_resume;
            ix->huge_resume = 0;
            for (; pg < e && asked < budget; pg += H) {
                /* many cells share a page: ask once a pass (mostly) */
                uintptr_t *seen = &ix->huge_seen[(pg / H) & 63];
                if (*seen == pg) continue;
                *seen = pg;
                (void)pd_alloc_collapse_huge((const void *)pg);
                asked++;
            }
            if (pg < e) { /* out of budget inside this cell */
                ix->huge_resume = pg;
                break;
            }
        }
        ix->huge_cursor++;
    }
    if (n_pages) *n_pages = asked;
}

bool pd_index_validate(const pd_index_t *ix, const char **reason) {
    const char *why = NULL;
    uint64_t in_cells = 0;
    uint32_t ncells = 0;
    size_t bytes = 0;
    for (uint32_t i = 0; i <= ix->cells_mask && !why; i++) {
        const cell_t *c = ix->cells[i].cell;
        if (!c) continue;
        ncells++;
        bytes += cell_block_bytes(c->cap, c->nsk, c->ntg);
        if (c->n == 0) why = "empty cell kept in the map";
        if (c->n > c->cap) why = "cell holds more than its capacity";
        if (cell_find(ix, c->key) != c) why = "cell not reachable from its key";
        for (uint32_t j = 0; j < c->n && !why; j++) {
            uint32_t si = c->rec[j].slot;
            if (si >= ix->nslots) {
                why = "cell names a slot past the high-water mark";
                break;
            }
            const slot_t *s = &ix->slots[si];
            pd_latlng_t p = {c->rec[j].lat, c->rec[j].lon};
            if (s->cell != c || s->idx != j)
                why = "slot does not point back to its cell";
            else if (key_of_pos(ix, p) != c->key)
                why = "volunteer in the wrong cell";
            else if (bit_get(plane(c, PLANE_AVAIL), j) != slot_avail(s))
                why = "availability plane disagrees with the slot";
            else if (!bit_get(plane(c, PLANE_MODE0 + s->mode), j) || c->rec[j].mode != s->mode)
                why = "mode plane disagrees with the slot";
            else if (c->rec[j].id != s->id)
                why = "cell record names another id";
            else if (!(cell_bmodes(c)[j >> 6] >> s->mode & 1) || p.lat < c->box[j >> 6].lat_lo ||
                     p.lat > c->box[j >> 6].lat_hi || p.lon < c->box[j >> 6].lon_lo ||
                     p.lon > c->box[j >> 6].lon_hi)
                why = "volunteer outside its block's box";
            else {
                uint32_t found;
                if (find_slot(ix, s->id, &found) != PD_OK || found != si)
                    why = "id map does not lead to the slot";
            }
        }
        for (unsigned p = 0; p < cell_nplanes(c) && !why; p++)
            for (uint32_t j = c->n; j < c->nblk * 64; j++)
                if (bit_get(plane(c, p), j)) {
                    why = "a plane has a bit past the cell's volunteers";
                    break;
                }
        in_cells += c->n;
    }
    if (!why && ncells != ix->ncells) why = "cell count wrong";
    if (!why && bytes != ix->cell_bytes) why = "cell memory accounting wrong";
    if (!why && in_cells != ix->count) why = "cells hold a different number than count";
    if (!why && ix->ids.n != ix->count) why = "id map size differs from count";
    if (!why) {
        uint32_t nfree = 0;
        for (uint32_t f = ix->free_slot; f != SLOT_NONE && nfree <= ix->nslots;
             f = ix->slots[f].idx) {
            if (f >= ix->nslots || ix->slots[f].cell) {
                why = "free list holds a live or invalid slot";
                break;
            }
            nfree++;
        }
        if (!why && nfree + ix->count != ix->nslots) why = "free list and live slots do not add up";
    }
    if (reason) *reason = why;
    return why == NULL;
}
