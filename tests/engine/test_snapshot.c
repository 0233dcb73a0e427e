/* test_snapshot.c -- the snapshot container: streaming write, atomic
 * commit, the checks on read (header, trailer, length, checksum), and an
 * unfinished writer leaving nothing behind.
 */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "paidan/alloc.h"
#include "paidan/journal.h"
#include "test_rng.h"

static char tmpdir[256];
static char path[512];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pd-test-snapshot-XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/snap-1.pds", tmpdir);
}

static void teardown(void) {
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 60);

static uint8_t *random_bytes(size_t n, uint64_t seed) {
    uint8_t *b = malloc(n ? n : 1);
    pd_rng_t r;
    pd_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)pd_rng_next(&r);
    return b;
}

/* Write `n` bytes in pieces of random size through a small buffer. */
static void write_snapshot(const char *p, const uint8_t *b, size_t n, uint64_t seq, int64_t ts) {
    bool existed = access(p, F_OK) == 0;
    pd_snapshot_writer_t *w = NULL;
    cr_assert_eq(pd_snapshot_writer_create(p, seq, ts, 4096, &w), PD_OK);
    pd_rng_t r;
    pd_rng_seed(&r, n);
    size_t off = 0;
    while (off < n) {
        size_t k = 1 + (size_t)pd_rng_below(&r, 10000);
        if (k > n - off) k = n - off;
        cr_assert_eq(pd_snapshot_writer_write(w, b + off, k), PD_OK);
        off += k;
    }
    cr_assert_eq(pd_snapshot_writer_bytes(w), n);
    if (!existed) cr_assert_eq(access(p, F_OK), -1, "nothing under the final name before commit");
    cr_assert_eq(pd_snapshot_writer_commit(w), PD_OK);
    pd_snapshot_writer_destroy(w);
}

Test(snapshot, round_trip) {
    size_t sizes[] = {0, 1, 4095, 4096, 4097, 100000, 1u << 20};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t *b = random_bytes(sizes[k], k);
        write_snapshot(path, b, sizes[k], 77 + k, -5);
        pd_snapshot_file_t f;
        const char *why = NULL;
        cr_assert_eq(pd_snapshot_file_open(path, &f, &why), PD_OK, "size %zu: %s", sizes[k], why);
        cr_assert_eq(f.seq, 77 + k);
        cr_assert_eq(f.ts_ms, -5);
        cr_assert_eq(f.len, sizes[k]);
        cr_assert(sizes[k] == 0 || memcmp(f.data, b, sizes[k]) == 0);
        pd_snapshot_file_close(&f);
        pd_snapshot_file_close(&f); /* safe twice */
        char tmp[600];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        cr_assert_eq(access(tmp, F_OK), -1);
        free(b);
    }
}

static long fsize(const char *p) {
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    return (long)sb.st_size;
}

Test(snapshot, every_damaged_byte_is_caught) {
    size_t n = 3000;
    uint8_t *b = random_bytes(n, 9);
    write_snapshot(path, b, n, 5, 6);
    long size = fsize(path);
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    /* Flip one bit at a time, everywhere: header, payload, trailer. */
    for (long off = 0; off < size; off += (off < 64 || off > size - 64) ? 1 : 37) {
        uint8_t c;
        cr_assert_eq(pread(fd, &c, 1, off), 1);
        uint8_t d = c ^ 0x04;
        cr_assert_eq(pwrite(fd, &d, 1, off), 1);
        pd_snapshot_file_t f;
        const char *why = NULL;
        cr_assert_eq(pd_snapshot_file_open(path, &f, &why), PD_ERR_CORRUPT, "flip at %ld", off);
        cr_assert_not_null(why);
        cr_assert_eq(pwrite(fd, &c, 1, off), 1);
    }
    close(fd);
    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(path, &f, NULL), PD_OK, "restored bytes read again");
    pd_snapshot_file_close(&f);
    free(b);
}

Test(snapshot, cut_short_or_grown) {
    size_t n = 5000;
    uint8_t *b = random_bytes(n, 3);
    write_snapshot(path, b, n, 1, 1);
    long size = fsize(path);
    long cuts[] = {0, 10, PD_SNAPSHOT_HEADER_SIZE, size / 2, size - 1};
    for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
        write_snapshot(path, b, n, 1, 1);
        cr_assert_eq(truncate(path, cuts[k]), 0);
        pd_snapshot_file_t f;
        const char *why = NULL;
        cr_assert_eq(pd_snapshot_file_open(path, &f, &why), PD_ERR_CORRUPT, "cut at %ld", cuts[k]);
    }
    write_snapshot(path, b, n, 1, 1);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, "xyz", 3), 3);
    close(fd);
    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(path, &f, NULL), PD_ERR_CORRUPT);
    cr_assert_eq(pd_snapshot_file_open("/nonexistent/x.pds", &f, NULL), PD_ERR_IO);
    free(b);
}

Test(snapshot, unfinished_writer_leaves_nothing) {
    pd_snapshot_writer_t *w = NULL;
    cr_assert_eq(pd_snapshot_writer_create(path, 1, 1, 0, &w), PD_OK);
    cr_assert_eq(pd_snapshot_writer_write(w, "abc", 3), PD_OK);
    pd_snapshot_writer_destroy(w);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    cr_assert_eq(access(tmp, F_OK), -1);
    cr_assert_eq(access(path, F_OK), -1);
    pd_snapshot_writer_destroy(NULL);
}

Test(snapshot, commit_replaces_atomically) {
    uint8_t *a = random_bytes(1000, 1), *b = random_bytes(2000, 2);
    write_snapshot(path, a, 1000, 1, 1);
    write_snapshot(path, b, 2000, 2, 2);
    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(path, &f, NULL), PD_OK);
    cr_assert_eq(f.seq, 2);
    cr_assert_eq(f.len, 2000);
    cr_assert(memcmp(f.data, b, 2000) == 0);
    pd_snapshot_file_close(&f);
    free(a);
    free(b);
}

Test(snapshot, writer_in_a_forked_child) {
    /* The server's way: create in the parent, write and commit in a child,
     * free in the parent after the child exited. */
    uint8_t *b = random_bytes(50000, 4);
    pd_snapshot_writer_t *w = NULL;
    cr_assert_eq(pd_snapshot_writer_create(path, 9, 9, 0, &w), PD_OK);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        pd_alloc_fail_after(0); /* the child must not allocate */
        int ok =
            pd_snapshot_writer_write(w, b, 50000) == PD_OK && pd_snapshot_writer_commit(w) == PD_OK;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pd_snapshot_writer_destroy(w);
    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(path, &f, NULL), PD_OK, "the parent's destroy keeps it");
    cr_assert_eq(f.len, 50000);
    pd_snapshot_file_close(&f);
    free(b);
}

Test(snapshot, create_fails_cleanly) {
    pd_snapshot_writer_t *w = NULL;
    cr_assert_eq(pd_snapshot_writer_create("/nonexistent/dir/s.pds", 1, 1, 0, &w), PD_ERR_IO);
    for (long k = 0; k < 3; k++) {
        pd_alloc_fail_after(k);
        pd_err err = pd_snapshot_writer_create(path, 1, 1, 0, &w);
        pd_alloc_fail_after(-1);
        if (err == PD_OK) {
            pd_snapshot_writer_destroy(w);
            continue;
        }
        cr_assert_eq(err, PD_ERR_NOMEM);
    }
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    cr_assert_eq(access(tmp, F_OK), -1);
}

/* ========================================================= engine state */

#include "engine_test.h"

/* A random command driver: the same rng state on two engines in the same
 * state must give the same commands, answers and events. */
typedef struct drv_s {
    pd_engine_t *e;
    pd_rng_t rng;
    int64_t now;
    uint64_t next_vol, next_order;
    uint64_t ev_hash;
} drv_t;

static void drv_event(void *ud, const pd_event_t *ev) {
    drv_t *d = ud;
    uint64_t w[6] = {ev->type | (uint64_t)ev->order_state << 8 | (uint64_t)ev->reason << 16,
                     ev->order_id,
                     ev->has_volunteer ? ev->volunteer_id + 1 : 0,
                     (uint64_t)ev->at_ms,
                     (uint64_t)ev->deadline_ms,
                     (uint64_t)ev->slot << 32 | ev->minutes};
    for (int i = 0; i < 6; i++) d->ev_hash = (d->ev_hash ^ w[i]) * 0x100000001b3ULL;
}

static pd_volunteer_t drv_vol(pd_rng_t *r, uint64_t id) {
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = id;
    v.pos.lat = LAT0 + (int32_t)pd_rng_range(r, -15000, 15000);
    v.pos.lon = LON0 + (int32_t)pd_rng_range(r, -15000, 15000);
    v.skills = 1 + pd_rng_below(r, 15);
    v.tags = pd_rng_below(r, 4) == 0;
    v.week = pd_week_all();
    if (pd_rng_below(r, 3) == 0) {
        v.week = pd_week_none();
        for (int day = 0; day < 7; day++) (void)pd_week_add_range(&v.week, day, 8, 20);
    }
    v.mode = (uint8_t)pd_rng_below(r, PD_MODE__COUNT);
    v.status = pd_rng_below(r, 8) == 0 ? PD_STATUS_OFFLINE : PD_STATUS_ONLINE;
    v.capacity = (uint8_t)(1 + pd_rng_below(r, 3));
    return v;
}

/* A recent order in state st, if any. */
static uint64_t drv_order(drv_t *d, pd_order_state st) {
    uint64_t n = d->next_order - 1;
    for (uint64_t k = 0; k < 40 && k < n; k++) {
        uint64_t id = n - k;
        pd_order_info_t oi;
        if (pd_engine_order_get(d->e, id, &oi) == PD_OK && oi.state == st) return id;
    }
    return n ? 1 + pd_rng_below(&d->rng, n) : 1;
}

static uint64_t drv_offered(drv_t *d, uint64_t o) {
    pd_offer_t of[256];
    size_t n = 0;
    if (pd_engine_order_offers(d->e, o, of, 256, &n) == PD_OK) {
        for (size_t i = 0; i < n; i++)
            if (of[i].state == PD_OFFER_LIVE) return of[i].volunteer_id;
    }
    return 1 + pd_rng_below(&d->rng, d->next_vol);
}

/* A volunteer holding an accepted slot of o, or anyone. */
static uint64_t drv_accepted(drv_t *d, uint64_t o) {
    pd_offer_t of[256];
    size_t n = 0;
    if (pd_engine_order_offers(d->e, o, of, 256, &n) == PD_OK) {
        for (size_t i = 0; i < n; i++)
            if (of[i].state == PD_OFFER_ACCEPTED) return of[i].volunteer_id;
    }
    return 1 + pd_rng_below(&d->rng, d->next_vol);
}

static pd_err drv_step(drv_t *d) {
    pd_rng_t *r = &d->rng;
    d->now += (int64_t)pd_rng_below(r, 30000);
    int c = (int)pd_rng_below(r, 100);
    if (c < 15) {
        pd_volunteer_t v = drv_vol(r, d->next_vol++);
        return pd_engine_volunteer_upsert(d->e, &v, d->now);
    }
    if (c < 20) {
        pd_latlng_t p = {LAT0 + (int32_t)pd_rng_range(r, -15000, 15000),
                         LON0 + (int32_t)pd_rng_range(r, -15000, 15000)};
        return pd_engine_volunteer_move(d->e, 1 + pd_rng_below(r, d->next_vol), p, d->now);
    }
    if (c < 23) return pd_engine_volunteer_remove(d->e, 1 + pd_rng_below(r, d->next_vol), d->now);
    if (c < 40) {
        pd_order_spec_t o;
        memset(&o, 0, sizeof o);
        uint64_t slots[4];
        o.id = d->next_order++;
        o.at.lat = LAT0 + (int32_t)pd_rng_range(r, -15000, 15000);
        o.at.lon = LON0 + (int32_t)pd_rng_range(r, -15000, 15000);
        o.skills = 1ull << pd_rng_below(r, 4);
        if (pd_rng_below(r, 4) == 0) {
            o.n_slots = (uint32_t)(2 + pd_rng_below(r, 3));
            for (uint32_t i = 0; i < o.n_slots; i++) slots[i] = 1ull << pd_rng_below(r, 4);
            o.slot_skills = slots;
        }
        o.start_ms = d->now + (int64_t)pd_rng_below(r, 24) * 3600 * 1000;
        o.duration_min = (int32_t)pd_rng_below(r, 120);
        o.priority = (uint8_t)pd_rng_below(r, PD_PRIORITY__COUNT);
        o.mode = (uint8_t)pd_rng_below(r, PD_OFFER__COUNT);
        o.ignore_schedule = pd_rng_below(r, 3) == 0;
        return pd_engine_order_create_dispatch(d->e, &o, d->now, NULL);
    }
    if (c < 60) {
        uint64_t o = drv_order(d, PD_ORDER_OFFERED);
        return pd_engine_order_accept(d->e, o, drv_offered(d, o), d->now);
    }
    if (c < 67) {
        uint64_t o = drv_order(d, PD_ORDER_OFFERED);
        return pd_engine_order_decline(d->e, o, drv_offered(d, o), d->now);
    }
    if (c < 68) {
        uint64_t o = drv_order(d, PD_ORDER_ACCEPTED);
        return pd_engine_order_release(d->e, o, drv_accepted(d, o), d->now);
    }
    if (c < 70) return pd_engine_order_cancel(d->e, drv_order(d, PD_ORDER_ACCEPTED), d->now);
    if (c < 80) return pd_engine_order_complete(d->e, drv_order(d, PD_ORDER_ACCEPTED), -1, d->now);
    if (c < 86) {
        return pd_engine_order_rate(d->e, drv_order(d, PD_ORDER_COMPLETED),
                                    (int)pd_rng_range(r, 1, 5), d->now);
    }
    if (c < 96) {
        d->now += (int64_t)pd_rng_below(r, 200000);
        return pd_engine_tick(d->e, d->now, NULL);
    }
    pd_mobilise_t m;
    memset(&m, 0, sizeof m);
    m.at.lat = LAT0;
    m.at.lon = LON0;
    m.radius_m = 2000;
    m.mark_notified = true;
    pd_hit_t h[16];
    size_t n, tot;
    return pd_engine_mobilise(d->e, &m, d->now, h, 16, &n, &tot);
}

/* Snapshot an engine to `p` and restore it. */
static pd_engine_t *round_trip_engine(const pd_engine_t *e, const char *p,
                                      const pd_engine_config_t *cfg) {
    pd_snapshot_writer_t *w = NULL;
    cr_assert_eq(pd_snapshot_writer_create(p, 1, 1, 0, &w), PD_OK);
    cr_assert_eq(pd_engine_snapshot_write(e, w), PD_OK);
    cr_assert_eq(pd_snapshot_writer_commit(w), PD_OK);
    pd_snapshot_writer_destroy(w);
    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(p, &f, NULL), PD_OK);
    pd_engine_t *r = NULL;
    pd_err err = pd_engine_snapshot_restore(f.data, (size_t)f.len, cfg, &r);
    cr_assert_eq(err, PD_OK, "restore: %s", pd_err_name(err));
    pd_snapshot_file_close(&f);
    return r;
}

Test(snapshot, engine_round_trip_then_same_future) {
    uint64_t seed = pd_test_seed();
    drv_t a;
    memset(&a, 0, sizeof a);
    a.e = mk_engine(NULL);
    pd_rng_seed(&a.rng, seed);
    a.now = T0;
    a.next_vol = a.next_order = 1;
    pd_engine_set_event_cb(a.e, drv_event, &a);
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 400; i++) (void)drv_step(&a);
        drv_t b = a;
        b.e = round_trip_engine(a.e, path, NULL);
        pd_engine_set_event_cb(b.e, drv_event, &b);
        cr_assert_eq(pd_engine_digest(b.e), pd_engine_digest(a.e), "seed %" PRIu64 " round %d",
                     seed, round);
        check_valid(b.e, seed, round);
        pd_engine_stats_t sa, sb;
        pd_engine_get_stats(a.e, &sa);
        pd_engine_get_stats(b.e, &sb);
        cr_assert_eq(sa.volunteers, sb.volunteers);
        cr_assert_eq(sa.orders, sb.orders);
        cr_assert_eq(sa.live_offers, sb.live_offers);
        cr_assert_eq(sa.offers_made, sb.offers_made);
        cr_assert_eq(sa.events, sb.events);
        for (int s = 0; s < PD_ORDER__COUNT; s++)
            cr_assert_eq(sa.orders_by_state[s], sb.orders_by_state[s]);
        /* The same commands from here on give the same answers, events
         * and state on both. */
        for (int i = 0; i < 300; i++) {
            drv_t a2 = a;
            pd_err ea = drv_step(&a);
            pd_err eb = drv_step(&b);
            (void)a2;
            cr_assert_eq(ea, eb, "seed %" PRIu64 " round %d step %d", seed, round, i);
            cr_assert_eq(a.ev_hash, b.ev_hash, "events differ at step %d", i);
            cr_assert_eq(pd_engine_digest(a.e), pd_engine_digest(b.e), "step %d", i);
        }
        pd_engine_destroy(b.e);
    }
    pd_engine_destroy(a.e);
}

Test(snapshot, engine_empty_and_config) {
    pd_engine_config_t cfg;
    pd_engine_config_init(&cfg);
    cfg.grab_width = 5;
    cfg.policy = PD_POLICY_RATED;
    cfg.utc_offset_min = -300;
    snprintf(cfg.skills[cfg.n_skills++], PD_SKILL_NAME_MAX, "boat-rescue");
    pd_engine_t *e = mk_engine(&cfg);
    pd_engine_t *r = round_trip_engine(e, path, NULL);
    cr_assert_eq(pd_engine_digest(r), pd_engine_digest(e));
    const pd_engine_config_t *rc = pd_engine_get_config(r);
    cr_assert_eq(rc->grab_width, 5);
    cr_assert_eq(rc->policy, PD_POLICY_RATED);
    cr_assert_eq(rc->utc_offset_min, -300);
    cr_assert_eq(rc->n_skills, cfg.n_skills);
    cr_assert_str_eq(rc->skills[cfg.n_skills - 1], "boat-rescue");
    pd_engine_destroy(r);

    /* Restoring under a given config uses it. */
    pd_engine_config_t other;
    pd_engine_config_init(&other);
    other.n_skills = cfg.n_skills;
    memcpy(other.skills, cfg.skills, sizeof cfg.skills);
    r = round_trip_engine(e, path, &other);
    cr_assert_eq(pd_engine_get_config(r)->grab_width, other.grab_width);
    pd_engine_destroy(r);

    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(path, &f, NULL), PD_OK);
    pd_engine_config_t got;
    cr_assert_eq(pd_engine_snapshot_config(f.data, (size_t)f.len, &got), PD_OK);
    cr_assert_eq(got.grab_width, 5);
    pd_snapshot_file_close(&f);
    pd_engine_destroy(e);
}

Test(snapshot, engine_bad_payloads_are_refused) {
    drv_t a;
    memset(&a, 0, sizeof a);
    a.e = mk_engine(NULL);
    pd_rng_seed(&a.rng, pd_test_seed() + 3);
    a.now = T0;
    a.next_vol = a.next_order = 1;
    for (int i = 0; i < 300; i++) (void)drv_step(&a);
    pd_engine_t *r = round_trip_engine(a.e, path, NULL);
    pd_engine_destroy(r);
    pd_snapshot_file_t f;
    cr_assert_eq(pd_snapshot_file_open(path, &f, NULL), PD_OK);
    size_t len = (size_t)f.len;
    uint8_t *buf = malloc(len);
    /* Every prefix is refused, and nothing leaks (ASan checks that). */
    for (size_t cut = 0; cut < len; cut += 1 + cut / 3) {
        pd_engine_t *x = NULL;
        cr_assert_eq(pd_engine_snapshot_restore(f.data, cut, NULL, &x), PD_ERR_CORRUPT,
                     "prefix %zu of %zu", cut, len);
    }
    /* Trailing bytes too. */
    memcpy(buf, f.data, len);
    pd_engine_t *x = NULL;
    cr_assert_eq(pd_engine_snapshot_restore(buf, len - 1, NULL, &x), PD_ERR_CORRUPT);
    /* OOM at every allocation of a restore changes nothing and leaks nothing. */
    bool restored = false;
    for (long k = 0; k < 100000 && !restored; k++) {
        pd_alloc_fail_after(k);
        pd_err err = pd_engine_snapshot_restore(f.data, len, NULL, &x);
        pd_alloc_fail_after(-1);
        if (err == PD_OK) {
            cr_assert_eq(pd_engine_digest(x), pd_engine_digest(a.e));
            pd_engine_destroy(x);
            restored = true;
            continue;
        }
        cr_assert_eq(err, PD_ERR_NOMEM, "k=%ld: %s", k, pd_err_name(err));
    }
    cr_assert(restored);
    free(buf);
    pd_snapshot_file_close(&f);
    pd_engine_destroy(a.e);
}
