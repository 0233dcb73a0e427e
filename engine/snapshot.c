/* snapshot.c -- snapshots: the file container (atomic write, checksum,
 * checked read) and the engine's whole state as its payload (dump and
 * restore, digest-equal).
 *
 * File layout:
 *
 *   header   0  magic "PDSNAPSH"
 *            8  u32 version (1)
 *           12  u32 header size (48)
 *           16  u64 seq (the state holds journal records 1..seq)
 *           24  i64 ts_ms (time of the state)
 *           32  u64 flags (0)
 *           40  u64 XXH3_64bits of bytes 0..40
 *   payload     what the layer above wrote (the engine's state)
 *   trailer  0  u64 payload length
 *            8  u64 XXH3_64bits of the payload
 *           16  magic "PDSNAPEN"
 *
 * The payload's checksum sits in a trailer so the writer can stream: it
 * hashes as it writes (XXH3 streaming state, same digest as one call over
 * the whole payload) and never holds the payload in memory. The bytes go
 * to "<name>.tmp"; commit writes the trailer, fsyncs, renames over the
 * final name and fsyncs the directory, so a snapshot file either is whole
 * or does not exist under its name. The writer allocates everything at
 * creation, so a fork()ed child can use it without touching the allocator.
 *
 * Reading maps the file and checks header, trailer, length and checksum
 * before anything is handed out.
 *
 * The engine's state (section "engine state" below) is a flat dump of the
 * engine's own structures, field by field in little-endian, not a replay
 * of commands: restoring 10^6 volunteers is 10^6 index inserts and a copy
 * of their records, with no dispatch, no scoring, no events. What is
 * derived (the order id map, per-state counts, memory accounting) is
 * rebuilt; what carries history (counters, the deadline heap as it is,
 * the closed orders' kept offers) is copied. A restored engine has the
 * same pd_engine_digest() and answers every later command the same way:
 * ties are broken by id everywhere, never by slot. Volunteers are dumped
 * in slot order and re-inserted in grid order (cell row, then longitude),
 * which keeps the index's bit planes in cache while they are written: the
 * new slots differ from the old ones, and only walks in slot order
 * (pd_engine_foreach_volunteer) see another order.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "engine_int.h"
#include "journal.h"
#include "paidan/alloc.h"

static const uint8_t SNAP_MAGIC[8] = {'P', 'D', 'S', 'N', 'A', 'P', 'S', 'H'};
static const uint8_t SNAP_END[8] = {'P', 'D', 'S', 'N', 'A', 'P', 'E', 'N'};

/* ============================================================ container */

struct pd_snapshot_writer_s {
    int fd;
    bool failed;
    bool committed;
    uint64_t bytes; /* payload bytes so far */
    uint8_t *buf;   /* bufsize bytes */
    size_t len, cap;
    XXH3_state_t *xx; /* 64-byte aligned inside xx_mem */
    void *xx_mem;
    char path[PD_STORE_PATH_MAX];
    char tmp[PD_STORE_PATH_MAX];
    char dir[PD_STORE_PATH_MAX];
};

pd_err pd_snapshot_writer_create(const char *path, uint64_t seq, int64_t ts_ms, size_t bufsize,
                                 pd_snapshot_writer_t **out) {
    if (!path || strlen(path) + 5 > PD_STORE_PATH_MAX) return PD_ERR_BAD_ARG;
    if (bufsize == 0) bufsize = 1u << 20;
    if (bufsize < 4096) bufsize = 4096;
    pd_snapshot_writer_t *w = pd_calloc(1, sizeof(*w));
    if (!w) return PD_ERR_NOMEM;
    w->buf = pd_malloc(bufsize);
    w->xx_mem = pd_malloc(sizeof(XXH3_state_t) + 64);
    if (!w->buf || !w->xx_mem) {
        pd_free(w->buf);
        pd_free(w->xx_mem);
        pd_free(w);
        return PD_ERR_NOMEM;
    }
    w->xx = (XXH3_state_t *)(((uintptr_t)w->xx_mem + 63) & ~(uintptr_t)63);
    XXH3_INITSTATE(w->xx);
    XXH3_64bits_reset(w->xx);
    w->cap = bufsize;
    snprintf(w->path, sizeof(w->path), "%s", path);
    snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", path);
    pd__dirname(path, w->dir);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int saved = errno;
        pd_free(w->buf);
        pd_free(w->xx_mem);
        pd_free(w);
        errno = saved;
        return PD_ERR_IO;
    }
    uint8_t *h = w->buf;
    memcpy(h, SNAP_MAGIC, 8);
    pd__put_u32(h + 8, PD_SNAPSHOT_VERSION);
    pd__put_u32(h + 12, PD_SNAPSHOT_HEADER_SIZE);
    pd__put_u64(h + 16, seq);
    pd__put_u64(h + 24, (uint64_t)ts_ms);
    pd__put_u64(h + 32, 0);
    pd__put_u64(h + 40, XXH3_64bits(h, 40));
    w->len = PD_SNAPSHOT_HEADER_SIZE;
    *out = w;
    return PD_OK;
}

static pd_err wflush(pd_snapshot_writer_t *w) {
    if (w->len == 0) return PD_OK;
    if (pd__write_all(w->fd, w->buf, w->len)) {
        w->failed = true;
        return PD_ERR_IO;
    }
    w->len = 0;
    return PD_OK;
}

pd_err pd_snapshot_writer_write(pd_snapshot_writer_t *w, const void *p, size_t n) {
    if (w->failed || w->committed) return PD_ERR_IO;
    const uint8_t *b = p;
    XXH3_64bits_update(w->xx, b, n);
    w->bytes += n;
    while (n) {
        size_t room = w->cap - w->len;
        if (room == 0) {
            if (wflush(w)) return PD_ERR_IO;
            room = w->cap;
        }
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->len, b, k);
        w->len += k;
        b += k;
        n -= k;
    }
    return PD_OK;
}

pd_err pd_snapshot_writer_commit(pd_snapshot_writer_t *w) {
    if (w->failed || w->committed) return PD_ERR_IO;
    uint8_t t[PD_SNAPSHOT_TRAILER_SIZE];
    pd__put_u64(t, w->bytes);
    pd__put_u64(t + 8, XXH3_64bits_digest(w->xx));
    memcpy(t + 16, SNAP_END, 8);
    if (w->cap - w->len < sizeof(t) && wflush(w)) goto fail;
    memcpy(w->buf + w->len, t, sizeof(t));
    w->len += sizeof(t);
    if (wflush(w) || fsync(w->fd) != 0 || close(w->fd) != 0) goto fail;
    w->fd = -1;
    if (rename(w->tmp, w->path) != 0 || pd__fsync_dir(w->dir)) goto fail;
    w->committed = true;
    return PD_OK;
fail:
    w->failed = true;
    int saved = errno;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    unlink(w->tmp);
    errno = saved;
    return PD_ERR_IO;
}

void pd_snapshot_writer_destroy(pd_snapshot_writer_t *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (!w->committed) unlink(w->tmp);
    pd_free(w->buf);
    pd_free(w->xx_mem);
    pd_free(w);
}

uint64_t pd_snapshot_writer_bytes(const pd_snapshot_writer_t *w) {
    return w->bytes;
}

pd_err pd_snapshot_file_open(const char *path, pd_snapshot_file_t *out, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PD_ERR_IO;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return PD_ERR_IO;
    }
    size_t size = (size_t)sb.st_size;
    if (size < PD_SNAPSHOT_HEADER_SIZE + PD_SNAPSHOT_TRAILER_SIZE) {
        close(fd);
        *why = "file shorter than header and trailer";
        return PD_ERR_CORRUPT;
    }
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (m == MAP_FAILED) {
        errno = saved;
        return PD_ERR_IO;
    }
    const uint8_t *b = m;
    const uint8_t *t = b + size - PD_SNAPSHOT_TRAILER_SIZE;
    uint64_t len = size - PD_SNAPSHOT_HEADER_SIZE - PD_SNAPSHOT_TRAILER_SIZE;
    if (memcmp(b, SNAP_MAGIC, 8) != 0) {
        *why = "not a snapshot (bad magic)";
    } else if (pd__get_u64(b + 40) != XXH3_64bits(b, 40)) {
        *why = "header checksum mismatch";
    } else if (pd__get_u32(b + 8) != PD_SNAPSHOT_VERSION) {
        *why = "unsupported snapshot format version";
    } else if (pd__get_u32(b + 12) != PD_SNAPSHOT_HEADER_SIZE || pd__get_u64(b + 32) != 0) {
        *why = "bad header fields";
    } else if (memcmp(t + 16, SNAP_END, 8) != 0) {
        *why = "trailer missing (file cut short?)";
    } else if (pd__get_u64(t) != len) {
        *why = "payload length does not match the file size";
    } else {
        madvise(m, size, MADV_WILLNEED);
        if (pd__get_u64(t + 8) != XXH3_64bits(b + PD_SNAPSHOT_HEADER_SIZE, (size_t)len)) {
            *why = "payload checksum mismatch";
        } else {
            out->seq = pd__get_u64(b + 16);
            out->ts_ms = (int64_t)pd__get_u64(b + 24);
            out->data = b + PD_SNAPSHOT_HEADER_SIZE;
            out->len = len;
            out->map_ = m;
            out->map_len_ = size;
            return PD_OK;
        }
    }
    munmap(m, size);
    return PD_ERR_CORRUPT;
}

void pd_snapshot_file_close(pd_snapshot_file_t *f) {
    if (f->map_) munmap(f->map_, f->map_len_);
    memset(f, 0, sizeof(*f));
}

/* ========================================================= engine state */

#define ENGINE_MAGIC 0x53454450u /* "PDES" */
#define ENGINE_END 0x444e4550u   /* "PEND" */
#define ENGINE_VERSION 1u

/* The dump below writes these structs field by field. If one of them
 * changes, this file must change with it (and ENGINE_VERSION go up): the
 * build stops here until it does. A new field may instead take reserved
 * bytes, which older dumps hold as zero, when zero is what it was before
 * it existed (a volunteer's releases, at 135): no version change then. */
_Static_assert(sizeof(pd__vrec_t) == 80, "pd__vrec_t changed: update snapshot.c");
_Static_assert(sizeof(pd__offer_t) == 32, "pd__offer_t changed: update snapshot.c");
_Static_assert(sizeof(pd__order_t) == 128, "pd__order_t changed: update snapshot.c");
_Static_assert(sizeof(pd_engine_config_t) == 2208, "pd_engine_config_t changed: update snapshot.c");

/* Bytes of one volunteer and of one order's fixed part in the dump. A
 * volunteer starts with the journal's imported-volunteer record
 * (pd_jrec_volunteer_encode), then its load and the engine's record. */
#define VOL_BYTES 158
_Static_assert(PD_JREC_VOLUNTEER_BYTES == 59, "the dump's volunteer layout starts with it");
#define ORDER_BYTES 129
#define OFFER_BYTES 27

/* An encoder that batches small fields into a stack buffer and hands
 * full buffers to the writer, so the dump allocates nothing. */
typedef struct enc_s {
    pd_snapshot_writer_t *w;
    pd_err err;
    size_t n;
    uint8_t buf[64 * 1024];
} enc_t;

static uint8_t *enc_room(enc_t *e, size_t k) {
    if (e->n + k > sizeof(e->buf)) {
        if (!e->err) e->err = pd_snapshot_writer_write(e->w, e->buf, e->n);
        e->n = 0;
    }
    uint8_t *p = e->buf + e->n;
    e->n += k;
    return p;
}

static void enc_u8(enc_t *e, uint8_t v) {
    *enc_room(e, 1) = v;
}
static void enc_u32(enc_t *e, uint32_t v) {
    pd__put_u32(enc_room(e, 4), v);
}
static void enc_u64(enc_t *e, uint64_t v) {
    pd__put_u64(enc_room(e, 8), v);
}
static void enc_f64(enc_t *e, double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    enc_u64(e, u);
}

static void enc_config(enc_t *e, const pd_engine_config_t *c) {
    for (int m = 0; m < PD_MODE__COUNT; m++) enc_f64(e, c->index.speed_kmh[m]);
    enc_f64(e, c->index.detour);
    enc_u32(e, (uint32_t)c->index.cell_e6);
    enc_u32(e, (uint32_t)c->budget_s);
    enc_u32(e, (uint32_t)c->offer_timeout_s);
    enc_u32(e, c->grab_width);
    enc_u32(e, (uint32_t)c->policy);
    enc_f64(e, c->balanced_weight_s_per_hour);
    enc_f64(e, c->balanced_cap_hours);
    enc_f64(e, c->rated_weight_s);
    enc_f64(e, c->rated_neutral);
    for (int i = 0; i < PD_STAR_LEVELS; i++) enc_u32(e, c->star_hours[i]);
    enc_f64(e, c->points_per_hour);
    enc_f64(e, c->points_per_rating_star);
    enc_u32(e, (uint32_t)c->utc_offset_min);
    enc_u32(e, c->batch_k);
    for (int i = 0; i < PD_PRIORITY__COUNT; i++) enc_u32(e, (uint32_t)c->batch_bonus_s[i]);
    enc_u32(e, c->n_skills);
    for (uint32_t i = 0; i < c->n_skills && i < PD_MAX_SKILLS; i++) {
        size_t len = strnlen(c->skills[i], PD_SKILL_NAME_MAX - 1);
        enc_u8(e, (uint8_t)len);
        memcpy(enc_room(e, len), c->skills[i], len);
    }
}

static void dec_config(pd__rd_t *r, pd_engine_config_t *c) {
    pd_engine_config_init(c);
    for (int m = 0; m < PD_MODE__COUNT; m++) c->index.speed_kmh[m] = pd__rd_f64(r);
    c->index.detour = pd__rd_f64(r);
    c->index.cell_e6 = (int32_t)pd__rd_u32(r);
    c->budget_s = (int32_t)pd__rd_u32(r);
    c->offer_timeout_s = (int32_t)pd__rd_u32(r);
    c->grab_width = pd__rd_u32(r);
    uint32_t pol = pd__rd_u32(r);
    c->policy = pol < PD_POLICY__COUNT ? (pd_policy)pol : PD_POLICY__COUNT;
    c->balanced_weight_s_per_hour = pd__rd_f64(r);
    c->balanced_cap_hours = pd__rd_f64(r);
    c->rated_weight_s = pd__rd_f64(r);
    c->rated_neutral = pd__rd_f64(r);
    for (int i = 0; i < PD_STAR_LEVELS; i++) c->star_hours[i] = pd__rd_u32(r);
    c->points_per_hour = pd__rd_f64(r);
    c->points_per_rating_star = pd__rd_f64(r);
    c->utc_offset_min = (int32_t)pd__rd_u32(r);
    c->batch_k = pd__rd_u32(r);
    for (int i = 0; i < PD_PRIORITY__COUNT; i++) c->batch_bonus_s[i] = (int32_t)pd__rd_u32(r);
    c->n_skills = pd__rd_u32(r);
    if (c->n_skills > PD_MAX_SKILLS) {
        r->bad = true;
        c->n_skills = 0;
    }
    memset(c->skills, 0, sizeof(c->skills));
    for (uint32_t i = 0; i < c->n_skills; i++) {
        uint8_t len = pd__rd_u8(r);
        const uint8_t *q = len < PD_SKILL_NAME_MAX ? pd__rd_take(r, len) : NULL;
        if (!q) {
            r->bad = true;
            break;
        }
        memcpy(c->skills[i], q, len);
    }
}

static void enc_volunteer(enc_t *e, const pd_volunteer_t *v, const pd__vrec_t *rec) {
    uint8_t *p = enc_room(e, VOL_BYTES);
    /* the volunteer's own fields: the journal's imported-volunteer record */
    pd_jrec_volunteer_encode(v, p);
    p[59] = v->load;
    p[60] = rec->held;
    pd__put_u32(p + 61, rec->minutes_total);
    pd__put_u32(p + 65, rec->rating_count);
    pd__put_u32(p + 69, rec->rating_sum);
    pd__put_u32(p + 73, rec->orders_completed);
    pd__put_u32(p + 77, rec->offers_received);
    pd__put_u32(p + 81, rec->offers_accepted);
    pd__put_u32(p + 85, rec->offers_declined);
    pd__put_u32(p + 89, rec->offers_expired);
    pd__put_u32(p + 93, rec->offers_withdrawn);
    pd__put_u32(p + 97, rec->notified_count);
    pd__put_u64(p + 101, (uint64_t)rec->last_notified_ms);
    pd__put_u64(p + 109, (uint64_t)rec->last_served_ms);
    pd__put_u32(p + 117, (uint32_t)rec->last_day);
    for (int d = 0; d < PD__DAYS; d++) pd__put_u16(p + 121 + 2 * d, rec->day_min[d]);
    pd__put_u32(p + 135, rec->releases); /* zero in snapshots from before it */
    /* 139..157: reserved, zero. */
    memset(p + 139, 0, VOL_BYTES - 139);
}

static void dec_volunteer(const uint8_t *p, pd_volunteer_t *v) {
    (void)pd_jrec_volunteer_decode(p, PD_JREC_VOLUNTEER_BYTES, v); /* the length is right */
    v->load = p[59];
}

/* The engine's record of the volunteer at p (whose index fields are v). */
static void dec_record(const uint8_t *p, const pd_volunteer_t *v, pd__vrec_t *rec) {
    memset(rec, 0, sizeof(*rec));
    rec->held = p[60];
    rec->minutes_total = pd__get_u32(p + 61);
    rec->rating_count = pd__get_u32(p + 65);
    rec->rating_sum = pd__get_u32(p + 69);
    rec->orders_completed = pd__get_u32(p + 73);
    rec->offers_received = pd__get_u32(p + 77);
    rec->offers_accepted = pd__get_u32(p + 81);
    rec->offers_declined = pd__get_u32(p + 85);
    rec->offers_expired = pd__get_u32(p + 89);
    rec->offers_withdrawn = pd__get_u32(p + 93);
    rec->notified_count = pd__get_u32(p + 97);
    rec->last_notified_ms = (int64_t)pd__get_u64(p + 101);
    rec->last_served_ms = (int64_t)pd__get_u64(p + 109);
    rec->last_day = (int32_t)pd__get_u32(p + 117);
    for (int d = 0; d < PD__DAYS; d++) rec->day_min[d] = pd__get_u16(p + 121 + 2 * d);
    uint32_t releases = pd__get_u32(p + 135);
    rec->releases = releases < UINT16_MAX ? (uint16_t)releases : UINT16_MAX;
    rec->status = v->status;
    rec->capacity = v->capacity;
    rec->load = v->load;
}

static void enc_order(enc_t *e, const pd__order_t *o) {
    uint8_t *p = enc_room(e, ORDER_BYTES);
    pd__put_u64(p, o->id);
    pd__put_u32(p + 8, (uint32_t)o->at.lat);
    pd__put_u32(p + 12, (uint32_t)o->at.lon);
    pd__put_u64(p + 16, o->tags);
    pd__put_u64(p + 24, (uint64_t)o->start_ms);
    pd__put_u64(p + 32, (uint64_t)o->created_ms);
    pd__put_u64(p + 40, (uint64_t)o->dispatched_ms);
    pd__put_u64(p + 48, (uint64_t)o->accepted_ms);
    pd__put_u64(p + 56, (uint64_t)o->closed_ms);
    pd__put_u64(p + 64, (uint64_t)o->rated_ms);
    pd__put_u32(p + 72, (uint32_t)o->duration_min);
    pd__put_u32(p + 76, (uint32_t)o->budget_s);
    pd__put_u32(p + 80, o->minutes_served);
    pd__put_u32(p + 84, o->n_ent);
    pd__put_u32(p + 88, o->n_offers);
    p[92] = o->n_slots;
    p[93] = o->n_filled;
    p[94] = (uint8_t)o->n_live; /* its high byte at 109 */
    p[95] = o->priority;
    p[96] = o->mode;
    p[97] = o->state;
    p[98] = o->reason;
    p[99] = o->rating;
    p[100] = o->ignore_schedule;
    pd__put_u64(p + 101, o->n_slots == 1 ? o->skills.one : 0);
    /* 109: n_live's high byte (a grab team holds up to 32 x 32 offers;
     * snapshots from before it have 0 there); 110..128: reserved, zero. */
    memset(p + 109, 0, ORDER_BYTES - 109);
    p[109] = (uint8_t)(o->n_live >> 8);
    if (o->n_slots > 1)
        for (uint32_t s = 0; s < o->n_slots; s++) enc_u64(e, o->skills.many[s]);
    for (uint32_t i = 0; i < o->n_ent; i++) {
        const pd__offer_t *en = &o->ent[i];
        uint8_t *q = enc_room(e, OFFER_BYTES);
        pd__put_u64(q, en->vol);
        pd__put_u64(q + 8, (uint64_t)en->offered_ms);
        pd__put_u64(q + 16, (uint64_t)en->deadline_ms);
        q[24] = en->slot;
        q[25] = en->state;
        q[26] = en->reason;
    }
}

/* The volunteers go out cell by cell (pd_index_foreach_by_cell reads a
 * cell's bit planes once per 64 volunteers), so a restore that inserts them
 * in payload order rebuilds each cell in one go, in its own order. */
typedef struct dump_walk_s {
    enc_t *e;
    const pd_engine_t *eng;
} dump_walk_t;

static bool dump_one(void *ud, const pd_volunteer_t *v, uint32_t slot) {
    dump_walk_t *dw = ud;
    enc_volunteer(dw->e, v, &dw->eng->recs[slot]);
    return dw->e->err == PD_OK;
}

pd_err pd_engine_snapshot_write(const pd_engine_t *eng, pd_snapshot_writer_t *w) {
    /* The encoder is 64 KiB: on the stack of a forked child that is fine,
     * and it keeps the dump free of allocation. */
    enc_t e;
    e.w = w;
    e.err = PD_OK;
    e.n = 0;
    enc_u32(&e, ENGINE_MAGIC);
    enc_u32(&e, ENGINE_VERSION);
    enc_config(&e, &eng->cfg);
    enc_u64(&e, eng->offers_made);
    enc_u64(&e, eng->events_emitted);
    enc_u64(&e, (uint64_t)eng->live_offers);

    const pd_index_t *ix = eng->ix;
    enc_u64(&e, pd_index_count(ix));
    dump_walk_t dw = {&e, eng};
    pd_index_foreach_by_cell(ix, dump_one, &dw);
    enc_u64(&e, eng->n_orders);
    for (uint32_t i = 0; i < eng->n_orders && !e.err; i++) enc_order(&e, &eng->orders[i]);
    enc_u64(&e, eng->n_due);
    for (size_t i = 0; i < eng->n_due && !e.err; i++) {
        enc_u64(&e, (uint64_t)eng->due[i].deadline_ms);
        enc_u64(&e, eng->due[i].order_id);
    }
    enc_u32(&e, ENGINE_END);
    if (!e.err && e.n) e.err = pd_snapshot_writer_write(w, e.buf, e.n);
    return e.err;
}

/* Read the header and config of a payload. */
static pd_err dec_head(pd__rd_t *r, pd_engine_config_t *cfg) {
    if (pd__rd_u32(r) != ENGINE_MAGIC) return PD_ERR_CORRUPT;
    if (pd__rd_u32(r) != ENGINE_VERSION) return PD_ERR_CORRUPT;
    dec_config(r, cfg);
    if (r->bad) return PD_ERR_CORRUPT;
    return PD_OK;
}

bool pd_engine_config_same(const pd_engine_config_t *a, const pd_engine_config_t *b) {
    /* Compare what the dump stores, so padding and bytes past a skill
     * name's NUL do not count. Two encoders are 128 KiB: heap, not stack. */
    enc_t *x = pd_malloc(2 * sizeof(enc_t));
    if (!x) return false;
    x[0].w = x[1].w = NULL;
    x[0].err = x[1].err = PD_OK;
    x[0].n = x[1].n = 0;
    enc_config(&x[0], a);
    enc_config(&x[1], b);
    bool same = x[0].n == x[1].n && memcmp(x[0].buf, x[1].buf, x[0].n) == 0;
    pd_free(x);
    return same;
}

/* The configuration record: a tag and version, then the fields as the
 * snapshot stores them. */
#define CONFIG_MAGIC 0x47464350u /* "PCFG" */

pd_err pd_engine_config_encode(const pd_engine_config_t *c, uint8_t **out, size_t *len) {
    enc_t *x = pd_malloc(sizeof *x);
    if (!x) return PD_ERR_NOMEM;
    x->w = NULL;
    x->err = PD_OK;
    x->n = 0;
    enc_u32(x, CONFIG_MAGIC);
    enc_u32(x, ENGINE_VERSION);
    enc_config(x, c);
    uint8_t *b = pd_malloc(x->n);
    if (!b) {
        pd_free(x);
        return PD_ERR_NOMEM;
    }
    memcpy(b, x->buf, x->n);
    *out = b;
    *len = x->n;
    pd_free(x);
    return PD_OK;
}

pd_err pd_engine_config_decode(const uint8_t *p, size_t len, pd_engine_config_t *out) {
    pd__rd_t r = {p, p + len, false};
    if (pd__rd_u32(&r) != CONFIG_MAGIC || pd__rd_u32(&r) != ENGINE_VERSION) return PD_ERR_CORRUPT;
    dec_config(&r, out);
    if (r.bad || r.p != r.end) return PD_ERR_CORRUPT;
    return pd_engine_config_check(out) ? PD_ERR_CORRUPT : PD_OK;
}

pd_err pd_engine_snapshot_config(const uint8_t *p, size_t len, pd_engine_config_t *out) {
    pd__rd_t r = {p, p + len, false};
    pd_err err = dec_head(&r, out);
    if (err) return err;
    return pd_engine_config_check(out) ? PD_ERR_CORRUPT : PD_OK;
}

/* Skill bits the engine's configuration names. */
static uint64_t skill_mask(const pd_engine_t *e) {
    uint32_t n = e->cfg.n_skills;
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

static pd_err restore_orders(pd_engine_t *e, pd__rd_t *r, uint64_t n) {
    if (n > UINT32_MAX || n > (uint64_t)(r->end - r->p) / ORDER_BYTES) return PD_ERR_CORRUPT;
    if (n == 0) return PD_OK;
    e->orders = pd_big_alloc((size_t)n * sizeof(pd__order_t));
    if (!e->orders) return PD_ERR_NOMEM;
    e->cap_orders_sz = (size_t)n;
    pd_err err = pd__idmap_reserve(&e->omap, (uint32_t)n);
    if (err) return err;
    size_t live = 0;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p = pd__rd_take(r, ORDER_BYTES);
        if (!p) return PD_ERR_CORRUPT;
        pd__order_t *o = &e->orders[i];
        o->id = pd__get_u64(p);
        o->at.lat = (int32_t)pd__get_u32(p + 8);
        o->at.lon = (int32_t)pd__get_u32(p + 12);
        o->tags = pd__get_u64(p + 16);
        o->start_ms = (int64_t)pd__get_u64(p + 24);
        o->created_ms = (int64_t)pd__get_u64(p + 32);
        o->dispatched_ms = (int64_t)pd__get_u64(p + 40);
        o->accepted_ms = (int64_t)pd__get_u64(p + 48);
        o->closed_ms = (int64_t)pd__get_u64(p + 56);
        o->rated_ms = (int64_t)pd__get_u64(p + 64);
        o->duration_min = (int32_t)pd__get_u32(p + 72);
        o->budget_s = (int32_t)pd__get_u32(p + 76);
        o->minutes_served = pd__get_u32(p + 80);
        uint32_t n_ent = pd__get_u32(p + 84);
        o->n_offers = pd__get_u32(p + 88);
        o->n_slots = p[92];
        o->n_filled = p[93];
        o->n_live = (uint16_t)(p[94] | p[109] << 8);
        o->priority = p[95];
        o->mode = p[96];
        o->state = p[97];
        o->reason = p[98];
        o->rating = p[99];
        o->ignore_schedule = p[100] != 0;
        if (o->n_slots == 0 || o->n_slots > PD_ORDER_MAX_SLOTS || o->state >= PD_ORDER__COUNT ||
            o->n_filled > o->n_slots || n_ent > (uint64_t)(r->end - r->p) / OFFER_BYTES) {
            e->n_orders = (uint32_t)i;
            return PD_ERR_CORRUPT;
        }
        /* Count it now, so destroy frees what it owns if a later step fails. */
        e->n_orders = (uint32_t)i + 1;
        if (o->n_slots == 1) {
            o->skills.one = pd__get_u64(p + 101);
        } else {
            o->skills.many = pd_malloc((size_t)o->n_slots * sizeof(uint64_t));
            if (!o->skills.many) {
                o->n_slots = 1; /* nothing to free */
                return PD_ERR_NOMEM;
            }
            for (uint32_t s = 0; s < o->n_slots; s++) o->skills.many[s] = pd__rd_u64(r);
        }
        if (n_ent) {
            o->ent = pd_malloc((size_t)n_ent * sizeof(pd__offer_t));
            if (!o->ent) return PD_ERR_NOMEM;
            o->cap_ent = n_ent;
            for (uint32_t k = 0; k < n_ent; k++) {
                const uint8_t *q = pd__rd_take(r, OFFER_BYTES);
                if (!q) return PD_ERR_CORRUPT;
                pd__offer_t *en = &o->ent[k];
                memset(en, 0, sizeof(*en));
                en->vol = pd__get_u64(q);
                en->offered_ms = (int64_t)pd__get_u64(q + 8);
                en->deadline_ms = (int64_t)pd__get_u64(q + 16);
                en->slot = q[24];
                en->state = q[25];
                en->reason = q[26];
                if (en->slot >= o->n_slots || en->state >= PD_OFFER__STATE_COUNT)
                    return PD_ERR_CORRUPT;
            }
            o->n_ent = n_ent;
        }
        if (r->bad) return PD_ERR_CORRUPT;
        for (uint32_t s = 0; s < o->n_slots; s++)
            if (pd__order_slot_skills(o, s) & ~skill_mask(e)) return PD_ERR_UNKNOWN_SKILL;
        /* Ids are unique in a dump the checksum vouches for, so no lookup
         * first: at 10^6 orders that probe is a cache miss each. */
        pd__idmap_add(&e->omap, o->id, (uint32_t)i);
        e->by_state[o->state]++;
        e->aux_bytes += pd__order_bytes(o);
        live += o->n_live;
    }
    if (live != e->live_offers) return PD_ERR_CORRUPT;
    return PD_OK;
}

pd_err pd_engine_snapshot_restore(const uint8_t *p, size_t len, const pd_engine_config_t *cfg,
                                  pd_engine_t **out) {
    pd__rd_t r = {p, p + len, false};
    pd_engine_config_t saved;
    pd_err err = dec_head(&r, &saved);
    if (err) return err;
    pd_engine_t *e = NULL;
    err = pd_engine_create(cfg ? cfg : &saved, &e);
    if (err) return err == PD_ERR_BAD_ARG && !cfg ? PD_ERR_CORRUPT : err;
    e->offers_made = pd__rd_u64(&r);
    e->events_emitted = pd__rd_u64(&r);
    e->live_offers = (size_t)pd__rd_u64(&r);

    /* Volunteers. */
    uint64_t nv = pd__rd_u64(&r);
    if (r.bad || nv > (uint64_t)(r.end - r.p) / VOL_BYTES) {
        err = PD_ERR_CORRUPT;
        goto fail;
    }
    /* The payload lists the volunteers cell by cell (see dump_one): decoded
     * in one sequential pass and given to the index in one call, each cell
     * is built in one go, sized once, its bit planes in cache. The records
     * then go where the slots say, which a fresh index hands out in the
     * same order: a sequential pass again. */
    const uint8_t *vols = pd__rd_take(&r, (size_t)nv * VOL_BYTES);
    if (!vols) {
        err = PD_ERR_CORRUPT;
        goto fail;
    }
    pd_volunteer_t *vs = nv ? pd_malloc((size_t)nv * sizeof *vs) : NULL;
    uint32_t *slots = nv ? pd_malloc((size_t)nv * sizeof *slots) : NULL;
    if (nv && (!vs || !slots)) {
        err = PD_ERR_NOMEM;
        goto vols_done;
    }
    pd_alloc_advise_huge(vs, (size_t)nv * sizeof *vs);
    uint64_t known = skill_mask(e);
    for (uint64_t i = 0; i < nv && !err; i++) {
        dec_volunteer(vols + i * VOL_BYTES, &vs[i]);
        /* A configuration given now that drops a skill in use. */
        if (vs[i].skills & ~known) err = PD_ERR_UNKNOWN_SKILL;
    }
    if (err) goto vols_done;
    err = pd_index_insert_many(e->ix, vs, (size_t)nv, slots, NULL);
    if (err) {
        if (err != PD_ERR_NOMEM) err = PD_ERR_CORRUPT;
        goto vols_done;
    }
    size_t cap = 64;
    while (cap < (size_t)pd_index_slot_limit(e->ix) + 1) cap *= 2;
    e->recs = pd_big_alloc(cap * sizeof(pd__vrec_t));
    if (!e->recs) {
        err = PD_ERR_NOMEM;
        goto vols_done;
    }
    e->recs_cap = (uint32_t)cap;
    for (uint64_t i = 0; i < nv; i++) {
        pd__vrec_t *rec = &e->recs[slots[i]];
        dec_record(vols + i * VOL_BYTES, &vs[i], rec);
        if (rec->held > vs[i].load || vs[i].load > vs[i].capacity) {
            err = PD_ERR_CORRUPT;
            break;
        }
        uint16_t mark = pd__vrec_mark(rec);
        if (mark) pd_index_set_mark(e->ix, slots[i], mark);
    }
vols_done:
    pd_free(vs);
    pd_free(slots);
    if (err) goto fail;

    uint64_t no = pd__rd_u64(&r);
    if (r.bad) {
        err = PD_ERR_CORRUPT;
        goto fail;
    }
    err = restore_orders(e, &r, no);
    if (err) goto fail;

    uint64_t nd = pd__rd_u64(&r);
    if (r.bad || nd > (uint64_t)(r.end - r.p) / 16) {
        err = PD_ERR_CORRUPT;
        goto fail;
    }
    if (nd) {
        e->due = pd_malloc((size_t)nd * sizeof(pd__due_t));
        if (!e->due) {
            err = PD_ERR_NOMEM;
            goto fail;
        }
        e->cap_due = (size_t)nd;
        for (uint64_t i = 0; i < nd; i++) {
            e->due[i].deadline_ms = (int64_t)pd__rd_u64(&r);
            e->due[i].order_id = pd__rd_u64(&r);
        }
        e->n_due = (size_t)nd;
    }
    if (pd__rd_u32(&r) != ENGINE_END || r.bad || r.p != r.end) {
        err = PD_ERR_CORRUPT;
        goto fail;
    }
    /* Every field decoded above is in range, but the parts must also agree
     * (an order's live offer names a volunteer that exists and whose load
     * counts it, and so on): a payload that restores into a state the
     * engine would never reach is corrupt, not a state to run. */
    err = pd__engine_check(e, false, NULL);
    if (err) goto fail;
    *out = e;
    return PD_OK;
fail:
    pd_engine_destroy(e);
    return err;
}
