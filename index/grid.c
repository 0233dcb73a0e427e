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
 * Storage. A cell keeps parallel arrays (skills, tags, week, lat, lon,
 * slot, flags) in one allocation, so a query scans dense memory and runs
 * the cheapest test (skill mask) first. A volunteer's slot (a small stable
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
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "geo.h"
#include "idmap.h"
#include "paidan/alloc.h"

/* ------------------------------------------------------------- the types */

#define FLAG_AVAIL 0x01u /* online and load < capacity */
#define FLAG_MODE_SHIFT 1
#define FLAG_MODE_MASK 0x03u

typedef struct cell_s {
    uint64_t key;       /* packed (row, col) */
    uint32_t n;         /* volunteers in the cell */
    uint32_t cap;       /* room in the arrays */
    uint64_t *skills;   /* first array; the block's base pointer */
    uint64_t *tags;
    pd_week_t *week;
    int32_t *lat;
    int32_t *lon;
    uint32_t *slot;
    uint8_t *flags;     /* FLAG_AVAIL | mode << FLAG_MODE_SHIFT */
} cell_t;

#define CELL_ELEM_BYTES                                                          \
    (sizeof(uint64_t) * 2 + sizeof(pd_week_t) + sizeof(int32_t) * 2 + sizeof(uint32_t) + \
     sizeof(uint8_t))

typedef struct slot_s {
    uint64_t id;     /* external id (first: idmap reads it) */
    cell_t *cell;    /* NULL when the slot is free */
    uint32_t idx;    /* position in the cell; next free slot when free */
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

struct pd_index_s {
    pd_index_config_t cfg;
    double speed_mps[PD_MODE__COUNT];
    double vmax_mps;
    int32_t h;        /* cell height, micro-degrees */
    int32_t row_min;  /* row of latitude -90 */
    int32_t row_max;  /* row of latitude +90 */
    row_t *rows;      /* row_max - row_min + 1 entries */

    cell_t **cells;   /* open-addressing map of cells, NULL = empty bucket */
    uint32_t cells_mask;
    uint32_t ncells;

    slot_t *slots;
    uint32_t nslots;  /* high-water mark */
    uint32_t slots_cap;
    uint32_t free_slot; /* head of the free list, SLOT_NONE if empty */
    uint32_t count;   /* live volunteers */
    pd__idmap_t ids;
    size_t cell_bytes; /* bytes of cell arrays */
};

/* ---------------------------------------------------------- the geometry */

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

static inline uint64_t cell_key(int32_t r, int32_t c) {
    return ((uint64_t)(uint32_t)r << 32) | (uint32_t)c;
}

static inline uint32_t key_hash(uint64_t key) {
    return (uint32_t)XXH3_64bits(&key, sizeof key);
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
    cfg->cell_e6 = 5000;
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
            if (ix->cells[i]) {
                pd_free(ix->cells[i]->skills);
                pd_free(ix->cells[i]);
            }
        }
    }
    pd_free(ix->cells);
    pd_free(ix->slots);
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

static cell_t *cell_find(const pd_index_t *ix, uint64_t key) {
    for (uint32_t i = key_hash(key) & ix->cells_mask;; i = (i + 1) & ix->cells_mask) {
        cell_t *c = ix->cells[i];
        if (!c) return NULL;
        if (c->key == key) return c;
    }
}

static pd_err cells_grow(pd_index_t *ix) {
    uint32_t cap = ix->cells_mask + 1;
    if ((uint64_t)(ix->ncells + 1) * 2 <= cap) return PD_OK; /* load <= 1/2 */
    if (cap >= (1u << 30)) return PD_ERR_LIMIT;
    uint32_t ncap = cap * 2, nmask = ncap - 1;
    cell_t **nc = pd_calloc(ncap, sizeof *nc);
    if (!nc) return PD_ERR_NOMEM;
    for (uint32_t i = 0; i < cap; i++) {
        cell_t *c = ix->cells[i];
        if (!c) continue;
        uint32_t j = key_hash(c->key) & nmask;
        while (nc[j]) j = (j + 1) & nmask;
        nc[j] = c;
    }
    pd_free(ix->cells);
    ix->cells = nc;
    ix->cells_mask = nmask;
    return PD_OK;
}

/* Lay the arrays of a cell out in one block of `cap` elements; widest
 * first so every array is aligned. */
static void cell_layout(cell_t *c, char *block, uint32_t cap) {
    c->skills = (uint64_t *)block;
    c->tags = c->skills + cap;
    c->week = (pd_week_t *)(c->tags + cap);
    c->lat = (int32_t *)(c->week + cap);
    c->lon = c->lat + cap;
    c->slot = (uint32_t *)(c->lon + cap);
    c->flags = (uint8_t *)(c->slot + cap);
    c->cap = cap;
}

/* Make room for one more volunteer in c. NOMEM leaves c as it was. */
static pd_err cell_reserve1(pd_index_t *ix, cell_t *c) {
    if (c->n < c->cap) return PD_OK;
    uint32_t ncap = c->cap < 4 ? 4 : c->cap + c->cap / 2;
    char *block = pd_malloc((size_t)ncap * CELL_ELEM_BYTES);
    if (!block) return PD_ERR_NOMEM;
    cell_t old = *c;
    cell_layout(c, block, ncap);
    if (old.n) {
        memcpy(c->skills, old.skills, old.n * sizeof *c->skills);
        memcpy(c->tags, old.tags, old.n * sizeof *c->tags);
        memcpy(c->week, old.week, old.n * sizeof *c->week);
        memcpy(c->lat, old.lat, old.n * sizeof *c->lat);
        memcpy(c->lon, old.lon, old.n * sizeof *c->lon);
        memcpy(c->slot, old.slot, old.n * sizeof *c->slot);
        memcpy(c->flags, old.flags, old.n * sizeof *c->flags);
    }
    pd_free(old.skills);
    ix->cell_bytes += (size_t)(ncap - old.cap) * CELL_ELEM_BYTES;
    return PD_OK;
}

/* The cell for key, created (empty) if missing; *created says which. On
 * error nothing changed. The returned cell has room for one more. */
static pd_err cell_get_room(pd_index_t *ix, uint64_t key, cell_t **out, bool *created) {
    cell_t *c = cell_find(ix, key);
    *created = false;
    if (c) {
        pd_err err = cell_reserve1(ix, c);
        if (err) return err;
        *out = c;
        return PD_OK;
    }
    pd_err err = cells_grow(ix);
    if (err) return err;
    c = pd_calloc(1, sizeof *c);
    if (!c) return PD_ERR_NOMEM;
    c->key = key;
    err = cell_reserve1(ix, c);
    if (err) {
        pd_free(c);
        return err;
    }
    uint32_t i = key_hash(key) & ix->cells_mask;
    while (ix->cells[i]) i = (i + 1) & ix->cells_mask;
    ix->cells[i] = c;
    ix->ncells++;
    *created = true;
    *out = c;
    return PD_OK;
}

/* Unlink an empty cell from the map (backward-shift) and free it. */
static void cell_drop(pd_index_t *ix, cell_t *c) {
    uint32_t mask = ix->cells_mask;
    uint32_t i = key_hash(c->key) & mask;
    while (ix->cells[i] != c) i = (i + 1) & mask;
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        cell_t *e = ix->cells[j];
        if (!e) break;
        uint32_t home = key_hash(e->key) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            ix->cells[hole] = e;
            hole = j;
        }
    }
    ix->cells[hole] = NULL;
    ix->ncells--;
    ix->cell_bytes -= (size_t)c->cap * CELL_ELEM_BYTES;
    pd_free(c->skills);
    pd_free(c);
}

static inline uint8_t flags_of(const slot_t *s) {
    uint8_t avail = s->status == PD_STATUS_ONLINE && s->load < s->capacity;
    return (uint8_t)(avail | (s->mode << FLAG_MODE_SHIFT));
}

/* Append slot si with volunteer fields v to c (room reserved). */
static void cell_append(pd_index_t *ix, cell_t *c, uint32_t si, const pd_volunteer_t *v) {
    uint32_t i = c->n++;
    slot_t *s = &ix->slots[si];
    c->skills[i] = v->skills;
    c->tags[i] = v->tags;
    c->week[i] = v->week;
    c->lat[i] = v->pos.lat;
    c->lon[i] = v->pos.lon;
    c->slot[i] = si;
    c->flags[i] = flags_of(s);
    s->cell = c;
    s->idx = i;
}

/* Swap-remove position i of c; fixes the moved volunteer's slot. */
static void cell_take(pd_index_t *ix, cell_t *c, uint32_t i) {
    uint32_t last = --c->n;
    if (i != last) {
        c->skills[i] = c->skills[last];
        c->tags[i] = c->tags[last];
        c->week[i] = c->week[last];
        c->lat[i] = c->lat[last];
        c->lon[i] = c->lon[last];
        c->slot[i] = c->slot[last];
        c->flags[i] = c->flags[last];
        ix->slots[c->slot[i]].idx = i;
    }
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

static pd_err slots_reserve1(pd_index_t *ix) {
    if (ix->free_slot != SLOT_NONE || ix->nslots < ix->slots_cap) return PD_OK;
    if (ix->slots_cap >= (1u << 31)) return PD_ERR_LIMIT;
    uint32_t ncap = ix->slots_cap ? ix->slots_cap * 2 : 64;
    slot_t *ns = pd_realloc(ix->slots, (size_t)ncap * sizeof *ns);
    if (!ns) return PD_ERR_NOMEM;
    ix->slots = ns;
    ix->slots_cap = ncap;
    return PD_OK;
}

static uint32_t slot_alloc(pd_index_t *ix) {
    if (ix->free_slot != SLOT_NONE) {
        uint32_t si = ix->free_slot;
        ix->free_slot = ix->slots[si].idx;
        return si;
    }
    return ix->nslots++;
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
    bool created;
    if ((err = cell_get_room(ix, key_of_pos(ix, v->pos), &c, &created))) return err;
    si = slot_alloc(ix);
    slot_t *s = &ix->slots[si];
    s->id = v->id;
    s->status = v->status;
    s->capacity = v->capacity;
    s->load = v->load;
    s->mode = v->mode;
    cell_append(ix, c, si, v);
    pd__idmap_add(&ix->ids, v->id, si);
    ix->count++;
    return PD_OK;
}

/* Point slot si at cell key `key`, moving it if needed; on error unchanged. */
static pd_err slot_rehome(pd_index_t *ix, uint32_t si, uint64_t key, const pd_volunteer_t *v) {
    slot_t *s = &ix->slots[si];
    cell_t *old = s->cell;
    if (old->key == key) {
        uint32_t i = s->idx;
        old->skills[i] = v->skills;
        old->tags[i] = v->tags;
        old->week[i] = v->week;
        old->lat[i] = v->pos.lat;
        old->lon[i] = v->pos.lon;
        old->flags[i] = flags_of(s);
        return PD_OK;
    }
    cell_t *c;
    bool created;
    pd_err err = cell_get_room(ix, key, &c, &created);
    if (err) return err;
    cell_take(ix, old, s->idx);
    cell_append(ix, c, si, v);
    if (old->n == 0) cell_drop(ix, old);
    return PD_OK;
}

static void slot_read(const pd_index_t *ix, uint32_t si, pd_volunteer_t *out) {
    const slot_t *s = &ix->slots[si];
    const cell_t *c = s->cell;
    uint32_t i = s->idx;
    out->id = s->id;
    out->pos.lat = c->lat[i];
    out->pos.lon = c->lon[i];
    out->skills = c->skills[i];
    out->tags = c->tags[i];
    out->week = c->week[i];
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
        c->lat[s->idx] = pos.lat;
        c->lon[s->idx] = pos.lon;
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
    slot_t *s = &ix->slots[si];
    s->status = (uint8_t)status;
    s->capacity = capacity;
    s->load = load;
    s->cell->flags[s->idx] = flags_of(s);
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
    s->cell = NULL;
    s->id = 0;
    s->idx = ix->free_slot;
    ix->free_slot = si;
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

size_t pd_index_memory(const pd_index_t *ix) {
    return sizeof *ix + (size_t)(ix->row_max - ix->row_min + 1) * sizeof(row_t) +
           ((size_t)ix->cells_mask + 1) * sizeof(cell_t *) + (size_t)ix->ncells * sizeof(cell_t) +
           ix->cell_bytes + (size_t)ix->slots_cap * sizeof(slot_t) + pd__idmap_memory(&ix->ids);
}

/* ---------------------------------------------------------- the queries */

/* Everything a scan needs, computed once per query. */
typedef struct search_s {
    const pd_index_t *ix;
    const pd_query_t *q;
    int32_t qlat, qlon;
    double cos_q, sin_q;
    double max_d2[PD_MODE__COUNT]; /* per mode, radians^2, with slack */
    double extent_m;               /* farthest any mode may qualify */
    bool check_week;
    bool count_all;                /* within: count every hit, prune by extent only */
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

/* Scan one cell: filters cheapest first, then distance, then the hook. */
static void scan_cell(search_t *s, const cell_t *c) {
    const pd_query_t *q = s->q;
    const pd_index_t *ix = s->ix;
    const uint64_t qs = q->skills, qt = q->tags;
    const uint8_t need_avail = q->include_unavailable ? 0 : FLAG_AVAIL;
    for (uint32_t i = 0; i < c->n; i++) {
        if ((c->skills[i] & qs) != qs) continue;
        if ((c->tags[i] & qt) != qt) continue;
        uint8_t f = c->flags[i];
        if ((f & need_avail) != need_avail) continue;
        if (s->check_week && !pd_week_covers(&c->week[i], &q->need)) continue;
        unsigned mode = (f >> FLAG_MODE_SHIFT) & FLAG_MODE_MASK;
        double d2 = pd__fast_d2(s->qlat, s->qlon, s->cos_q, s->sin_q, c->lat[i], c->lon[i]);
        if (d2 > s->max_d2[mode]) continue;
        double dist = PD__EARTH_R_M * sqrt(d2);
        if (q->radius_m > 0 && dist > q->radius_m) continue;
        double eta = dist * ix->cfg.detour / ix->speed_mps[mode];
        if (q->budget_s > 0 && eta > q->budget_s) continue;
        pd_hit_t hit;
        hit.id = ix->slots[c->slot[i]].id;
        hit.slot = c->slot[i];
        hit.distance_m = (float)dist;
        hit.eta_s = (float)eta;
        hit.score = eta;
        /* The hook only adds, so a hit already slower than the k-th best
         * cannot enter; skip the hook for it. */
        if (!s->count_all && s->n == s->k && eta > s->heap[0].score) continue;
        if (q->score) {
            double sc = eta;
            if (!q->score(q->score_ud, hit.slot, hit.id, eta, dist, &sc)) continue;
            hit.score = sc < eta ? eta : sc;
        }
        if (s->n == s->k && s->k && !hit_worse(&s->heap[0], &hit)) {
            s->total++;
            continue;
        }
        heap_offer(s, &hit);
    }
}

/* Lower bound, in metres, on the distance from the query to any point of
 * cell (r, c), given the band's smallest cosine factor. */
static double cell_min_m(const search_t *s, int32_t r, int32_t c, const row_t *row, double kx) {
    const pd_index_t *ix = s->ix;
    double lo = (double)r * ix->h, hi = lo + ix->h;
    double dy = 0;
    if (s->qlat < lo) dy = lo - s->qlat;
    else if (s->qlat > hi) dy = s->qlat - hi;
    /* longitude interval of the column, measured from the query, wrapped */
    double clo = -180e6 + c * row->width_e6;
    double chi = clo + row->width_e6;
    double dx = 0;
    double x = s->qlon;
    if (x < clo || x > chi) {
        double a = fabs(x - clo), b = fabs(x - chi);
        a = fmin(a, 360e6 - a);
        b = fmin(b, 360e6 - b);
        dx = fmin(a, b);
    }
    dx *= kx;
    return PD__EARTH_R_M * PD__E6_TO_RAD * sqrt(dy * dy + dx * dx);
}

/* Current pruning threshold in metres at the fastest mode: a cell whose
 * nearest point is farther than this cannot hold a better hit. */
static inline double prune_m(const search_t *s) {
    double m = s->extent_m;
    if (!s->count_all && s->k && s->n == s->k) {
        double by_score = s->heap[0].score * s->ix->vmax_mps / s->ix->cfg.detour;
        if (by_score < m) m = by_score;
    }
    return m;
}

static void visit(search_t *s, int32_t r, int32_t c, const row_t *row, double kx) {
    double lim = prune_m(s);
    if (cell_min_m(s, r, c, row, kx) > lim * (1 + 1e-9)) return;
    const cell_t *cell = cell_find(s->ix, cell_key(r, c));
    if (cell) scan_cell(s, cell);
}

/* Circular column distance of c from c0 in a row of n columns. */
static inline int32_t col_dist(int32_t c, int32_t c0, int32_t n) {
    int32_t d = c > c0 ? c - c0 : c0 - c;
    return d < n - d ? d : n - d;
}

/* Scan the whole map, skipping the cells the rings already visited
 * (rows within d of row0 and columns within d of that row's c0). */
static void scan_rest(search_t *s, int32_t row0, int32_t d) {
    const pd_index_t *ix = s->ix;
    for (uint32_t i = 0; i <= ix->cells_mask; i++) {
        const cell_t *c = ix->cells[i];
        if (!c) continue;
        int32_t r = (int32_t)(uint32_t)(c->key >> 32);
        int32_t col = (int32_t)(uint32_t)c->key;
        const row_t *row = row_at(ix, r);
        if (abs(r - row0) <= d && col_dist(col, col_of(s->qlon, row->ncols), row->ncols) <= d)
            continue;
        double kx = fmin(row->cos_far, row_at(ix, row0)->cos_far);
        double lim = prune_m(s);
        if (cell_min_m(s, r, col, row, kx) > lim * (1 + 1e-9)) continue;
        scan_cell(s, c);
    }
}

static pd_err search_init(search_t *s, const pd_index_t *ix, const pd_query_t *q) {
    if (!pd_latlng_is_valid(q->at)) return PD_ERR_BAD_COORD;
    if (!isfinite(q->budget_s) || !isfinite(q->radius_m)) return PD_ERR_BAD_ARG;
    if (q->budget_s <= 0 && q->radius_m <= 0) return PD_ERR_BAD_ARG;
    if (q->budget_s > PD_QUERY_MAX_BUDGET_S || q->radius_m > PD_QUERY_MAX_RADIUS_M)
        return PD_ERR_BAD_ARG;
    if (q->need.bits[2] >> (PD_WEEK_HOURS - 128)) return PD_ERR_BAD_ARG;
    memset(s, 0, sizeof *s);
    s->ix = ix;
    s->q = q;
    s->qlat = q->at.lat;
    s->qlon = q->at.lon;
    double qr = q->at.lat * PD__E6_TO_RAD;
    s->cos_q = cos(qr);
    s->sin_q = sin(qr);
    s->check_week = !pd_week_is_empty(&q->need);
    s->extent_m = 0;
    for (int m = 0; m < PD_MODE__COUNT; m++) {
        double lim = INFINITY;
        if (q->radius_m > 0) lim = q->radius_m;
        if (q->budget_s > 0) lim = fmin(lim, q->budget_s * ix->speed_mps[m] / ix->cfg.detour);
        /* Pre-filter on d2 with a little slack; the exact test is in metres. */
        double rad = lim / PD__EARTH_R_M * (1 + 1e-9);
        s->max_d2[m] = rad * rad;
        if (lim > s->extent_m) s->extent_m = lim;
    }
    return PD_OK;
}

static int hit_cmp(const void *a, const void *b) {
    const pd_hit_t *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* The ring walk shared by nearest (early_stop) and within (no early stop). */
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
            double kx = fmin(row->cos_far, row_at(ix, row0)->cos_far);
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
        /* Bound on anything outside the (2d+1)-block just finished. */
        double lat_b = INFINITY;
        if (rlo > ix->row_min) lat_b = fmin(lat_b, (double)s->qlat - (double)rlo * ix->h);
        if (rhi < ix->row_max) lat_b = fmin(lat_b, (double)(rhi + 1) * ix->h - s->qlat);
        double lon_b = cols_left ? d * min_w * min_cos : INFINITY;
        double lb_m = PD__EARTH_R_M * PD__E6_TO_RAD * fmin(lat_b, lon_b) * (1 - 1e-9);
        if (!isfinite(lb_m) || lb_m > s->extent_m) return;
        if (early_stop && s->k && s->n == s->k &&
            s->heap[0].score < lb_m * ix->cfg.detour / ix->vmax_mps)
            return;
        /* The next ring costs about 8(d+1) lookups; once the rings have
         * cost more than the map has cells, scan the map for the rest. */
        if (visited + 8 * (uint64_t)(d + 1) > 2 * (uint64_t)ix->ncells + 64) {
            scan_rest(s, row0, d);
            return;
        }
    }
}

static void search_finish(search_t *s, pd_hit_t *out, size_t *n_out) {
    qsort(s->heap, s->n, sizeof *s->heap, hit_cmp);
    (void)out;
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
    search_finish(&s, out, n_out);
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
    search_finish(&s, out, n_out);
    if (total) *total = s.total;
    return PD_OK;
}

/* ------------------------------------------------------------ validation */

bool pd_index_validate(const pd_index_t *ix, const char **reason) {
    const char *why = NULL;
    uint64_t in_cells = 0;
    uint32_t ncells = 0;
    for (uint32_t i = 0; i <= ix->cells_mask && !why; i++) {
        const cell_t *c = ix->cells[i];
        if (!c) continue;
        ncells++;
        if (c->n == 0) why = "empty cell kept in the map";
        if (c->n > c->cap) why = "cell holds more than its capacity";
        if (cell_find(ix, c->key) != c) why = "cell not reachable from its key";
        for (uint32_t j = 0; j < c->n && !why; j++) {
            uint32_t si = c->slot[j];
            if (si >= ix->nslots) {
                why = "cell names a slot past the high-water mark";
                break;
            }
            const slot_t *s = &ix->slots[si];
            pd_latlng_t p = {c->lat[j], c->lon[j]};
            if (s->cell != c || s->idx != j) why = "slot does not point back to its cell";
            else if (key_of_pos(ix, p) != c->key) why = "volunteer in the wrong cell";
            else if (c->flags[j] != flags_of(s)) why = "cell flags disagree with the slot";
            else {
                uint32_t found;
                if (find_slot(ix, s->id, &found) != PD_OK || found != si)
                    why = "id map does not lead to the slot";
            }
        }
        in_cells += c->n;
    }
    if (!why && ncells != ix->ncells) why = "cell count wrong";
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
