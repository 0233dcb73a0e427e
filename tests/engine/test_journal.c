/* test_journal.c -- the journal format, writer and reader, and the data
 * directory: lock, recovery from snapshot + journal, torn tails, corruption
 * in the middle, the truncate option, fallback to the previous snapshot,
 * rotation and pruning.
 *
 * No engine here: the "state" is a small model (a count and a running hash
 * of every payload applied) whose snapshot payload is those two numbers, so
 * each test can say exactly which records recovery must have replayed.
 */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <dirent.h>
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
#include <xxhash.h>

#include "paidan/alloc.h"
#include "paidan/journal.h"
#include "test_rng.h"

/* ------------------------------------------------------------- helpers */

static char tmpdir[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pd-test-journal-XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void) {
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *in_tmp(const char *name) {
    static char p[2][512];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
    return p[k];
}

static long file_size(const char *p) {
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0, "stat %s: %s", p, strerror(errno));
    return (long)sb.st_size;
}

static bool exists(const char *p) {
    return access(p, F_OK) == 0;
}

/* Payload of record i: deterministic bytes of a length that varies. */
static size_t payload(uint64_t i, uint8_t *buf, size_t cap) {
    size_t n = (size_t)((i * 7919) % 200);
    if (n > cap) n = cap;
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)(i * 31 + k);
    return n;
}

static void flip_byte(const char *p, long off) {
    int fd = open(p, O_RDWR);
    cr_assert(fd >= 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x10;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void cut(const char *p, long size) {
    cr_assert_eq(truncate(p, size), 0);
}

static void append_bytes(const char *p, const void *b, size_t n) {
    int fd = open(p, O_WRONLY | O_APPEND);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* Write a segment of n records (seq first..first+n-1); offsets[i] gets the
 * offset of record i (room for n + 1: the last is the file end). */
static void write_segment(const char *p, pd_fsync_policy pol, uint64_t first, uint64_t n,
                          long *offsets) {
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(p, pol, first, &j), PD_OK);
    uint8_t buf[256];
    long off = PD_JOURNAL_HEADER_SIZE;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = payload(first + i, buf, sizeof(buf));
        uint64_t seq = 0;
        cr_assert_eq(
            pd_journal_append(j, PD_JREC_COMMAND, (int64_t)(1000 + first + i), buf, len, &seq),
            PD_OK);
        cr_assert_eq(seq, first + i);
        if (offsets) offsets[i] = off;
        off += PD_JREC_HEADER_SIZE + (long)len;
        if (i % 7 == 0) cr_assert_eq(pd_journal_commit(j), PD_OK);
    }
    if (offsets) offsets[n] = off;
    cr_assert_eq((long)pd_journal_size(j), off);
    cr_assert_eq(pd_journal_close(j), PD_OK);
    cr_assert_eq(file_size(p), off);
}

/* A reader that checks every record against payload(). */
typedef struct check_s {
    uint64_t next;
    uint64_t n;
} check_t;

static pd_err check_rec(void *ud, const pd_jrec_t *r) {
    check_t *c = ud;
    uint8_t buf[256];
    size_t len = payload(r->seq, buf, sizeof(buf));
    cr_assert_eq(r->seq, c->next);
    cr_assert_eq(r->type, PD_JREC_COMMAND);
    cr_assert_eq(r->ts_ms, (int64_t)(1000 + r->seq));
    cr_assert_eq(r->len, len);
    cr_assert(len == 0 || memcmp(r->data, buf, len) == 0);
    c->next++;
    c->n++;
    return PD_OK;
}

TestSuite(journal, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------ format & reader */

Test(journal, policy_names) {
    for (int p = 0; p < PD_FSYNC__COUNT; p++) {
        pd_fsync_policy q;
        cr_assert_eq(pd_fsync_policy_from_name(pd_fsync_policy_name((pd_fsync_policy)p), &q),
                     PD_OK);
        cr_assert_eq((int)q, p);
    }
    pd_fsync_policy q;
    cr_assert_eq(pd_fsync_policy_from_name("sometimes", &q), PD_ERR_BAD_ARG);
    cr_assert_null(pd_fsync_policy_name(PD_FSYNC__COUNT));
}

Test(journal, round_trip_every_policy) {
    for (int pol = 0; pol < PD_FSYNC__COUNT; pol++) {
        char name[64];
        snprintf(name, sizeof(name), "seg-%d.pdj", pol);
        const char *p = in_tmp(name);
        long off[301];
        write_segment(p, (pd_fsync_policy)pol, 42, 300, off);
        check_t c = {.next = 42};
        pd_jscan_t sc;
        cr_assert_eq(pd_journal_scan(p, check_rec, &c, &sc), PD_OK);
        cr_assert_eq(sc.how, PD_JSCAN_CLEAN);
        cr_assert_eq(sc.first_seq, 42);
        cr_assert_eq(sc.n_records, 300);
        cr_assert_eq(sc.last_seq, 341);
        cr_assert_eq((long)sc.end, off[300]);
        cr_assert_eq(c.n, 300);
    }
}

Test(journal, append2_and_limits) {
    const char *p = in_tmp("a.pdj");
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(p, PD_FSYNC_NO, 1, &j), PD_OK);
    cr_assert_eq(pd_journal_create(p, PD_FSYNC_NO, 1, &(pd_journal_t *){NULL}), PD_ERR_IO,
                 "creating over an existing segment must fail");
    cr_assert_eq(pd_journal_append2(j, 7, 5, "abc", 3, "defg", 4, NULL), PD_OK);
    cr_assert_eq(pd_journal_append2(j, PD_JREC_TICK, 6, NULL, 0, NULL, 0, NULL), PD_OK);
    cr_assert_eq(pd_journal_append(j, 1, 7, "x", (size_t)PD_JREC_MAX_LEN + 1, NULL),
                 PD_ERR_TOO_LARGE);
    cr_assert_eq(pd_journal_next_seq(j), 3);
    cr_assert_eq(pd_journal_pending(j), 2 * PD_JREC_HEADER_SIZE + 7);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_pending(j), 0);
    pd_journal_stats_t s;
    pd_journal_get_stats(j, &s);
    cr_assert_eq(s.appends, 2);
    cr_assert_eq(s.writes, 1);
    cr_assert_eq(pd_journal_close(j), PD_OK);

    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_OK);
    cr_assert_eq(sc.n_records, 2);
    cr_assert_eq(sc.how, PD_JSCAN_CLEAN);
}

Test(journal, big_records_cross_the_buffer) {
    const char *p = in_tmp("big.pdj");
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(p, PD_FSYNC_EVERYSEC, 1, &j), PD_OK);
    size_t n = 3u << 20;
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 13);
    for (int k = 0; k < 3; k++) cr_assert_eq(pd_journal_append(j, 1, k, b, n, NULL), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);
    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_OK);
    cr_assert_eq(sc.n_records, 3);
    cr_assert_eq(sc.how, PD_JSCAN_CLEAN);
    free(b);
}

Test(journal, always_syncs_once_per_commit) {
    const char *p = in_tmp("g.pdj");
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(p, PD_FSYNC_ALWAYS, 1, &j), PD_OK);
    for (int batch = 0; batch < 5; batch++) {
        for (int i = 0; i < 50; i++) cr_assert_eq(pd_journal_append(j, 1, i, "x", 1, NULL), PD_OK);
        cr_assert_eq(pd_journal_commit(j), PD_OK);
    }
    cr_assert_eq(pd_journal_commit(j), PD_OK); /* nothing new: no sync */
    pd_journal_stats_t s;
    pd_journal_get_stats(j, &s);
    cr_assert_eq(s.appends, 250);
    cr_assert_eq(s.syncs, 5, "group commit: one sync per batch, got %" PRIu64, s.syncs);
    cr_assert_eq(pd_journal_close(j), PD_OK);
}

Test(journal, everysec_syncs_in_the_background) {
    const char *p = in_tmp("e.pdj");
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(p, PD_FSYNC_EVERYSEC, 1, &j), PD_OK);
    cr_assert_eq(pd_journal_append(j, 1, 1, "x", 1, NULL), PD_OK);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    pd_journal_stats_t s;
    for (int i = 0; i < 40; i++) {
        pd_journal_get_stats(j, &s);
        if (s.syncs) break;
        usleep(100 * 1000);
    }
    cr_assert_geq(s.syncs, 1, "the syncer made no fdatasync within 4 s");
    cr_assert_eq(pd_journal_close(j), PD_OK);
}

Test(journal, bad_header) {
    const char *p = in_tmp("h.pdj");
    write_segment(p, PD_FSYNC_NO, 1, 3, NULL);
    flip_byte(p, 17);
    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_ERR_CORRUPT);
    cr_assert_not_null(sc.why);
    cut(p, 10);
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_ERR_CORRUPT);
    cr_assert_eq(pd_journal_scan(in_tmp("missing.pdj"), NULL, NULL, &sc), PD_ERR_IO);
}

Test(journal, torn_tail_at_every_cut) {
    const char *p = in_tmp("t.pdj");
    long off[21];
    write_segment(p, PD_FSYNC_NO, 1, 20, off);
    /* Cut anywhere inside the last two records: the reader keeps exactly
     * the whole records before the cut and calls the rest a torn tail. */
    for (long c = off[18] + 1; c < off[20]; c++) {
        write_segment(in_tmp("t2.pdj"), PD_FSYNC_NO, 1, 20, NULL);
        cut(in_tmp("t2.pdj"), c);
        check_t ck = {.next = 1};
        pd_jscan_t sc;
        cr_assert_eq(pd_journal_scan(in_tmp("t2.pdj"), check_rec, &ck, &sc), PD_OK);
        long keep = c >= off[19] ? off[19] : off[18];
        uint64_t whole = c >= off[19] ? 19 : 18;
        if (c == off[19]) {
            cr_assert_eq(sc.how, PD_JSCAN_CLEAN);
        } else {
            cr_assert_eq(sc.how, PD_JSCAN_TORN, "cut at %ld", c);
            cr_assert_eq((long)sc.bad_offset, keep);
        }
        cr_assert_eq((long)sc.end, keep, "cut at %ld", c);
        cr_assert_eq(sc.n_records, whole);
        cr_assert_eq(ck.n, whole);
        remove(in_tmp("t2.pdj"));
    }
}

Test(journal, flipped_bit_in_last_record_is_a_torn_tail) {
    const char *p = in_tmp("f.pdj");
    long off[11];
    write_segment(p, PD_FSYNC_NO, 1, 10, off);
    pd_rng_t rng;
    pd_rng_seed(&rng, pd_test_seed());
    for (int trial = 0; trial < 50; trial++) {
        write_segment(in_tmp("f2.pdj"), PD_FSYNC_NO, 1, 10, NULL);
        long at = off[9] + (long)pd_rng_below(&rng, (uint64_t)(off[10] - off[9]));
        flip_byte(in_tmp("f2.pdj"), at);
        pd_jscan_t sc;
        cr_assert_eq(pd_journal_scan(in_tmp("f2.pdj"), NULL, NULL, &sc), PD_OK);
        cr_assert_eq(sc.how, PD_JSCAN_TORN, "flip at %ld (seed %" PRIu64 ")", at, pd_test_seed());
        cr_assert_eq(sc.n_records, 9);
        cr_assert_eq((long)sc.end, off[9]);
        remove(in_tmp("f2.pdj"));
    }
}

Test(journal, garbage_or_zeros_after_the_end_are_a_torn_tail) {
    const char *p = in_tmp("z.pdj");
    long off[6];
    write_segment(p, PD_FSYNC_NO, 1, 5, off);
    uint8_t zeros[4096] = {0};
    append_bytes(p, zeros, sizeof(zeros));
    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_OK);
    cr_assert_eq(sc.how, PD_JSCAN_TORN);
    cr_assert_eq((long)sc.end, off[5]);
    cr_assert_eq(sc.file_size - sc.end, sizeof(zeros));
}

Test(journal, flipped_bit_in_the_middle_is_corruption) {
    const char *p = in_tmp("m.pdj");
    long off[31];
    write_segment(p, PD_FSYNC_NO, 1, 30, off);
    pd_rng_t rng;
    pd_rng_seed(&rng, pd_test_seed() + 1);
    for (int trial = 0; trial < 60; trial++) {
        write_segment(in_tmp("m2.pdj"), PD_FSYNC_NO, 1, 30, NULL);
        uint64_t rec = pd_rng_below(&rng, 29); /* not the last */
        long at = off[rec] + (long)pd_rng_below(&rng, (uint64_t)(off[rec + 1] - off[rec]));
        flip_byte(in_tmp("m2.pdj"), at);
        check_t ck = {.next = 1};
        pd_jscan_t sc;
        cr_assert_eq(pd_journal_scan(in_tmp("m2.pdj"), check_rec, &ck, &sc), PD_OK);
        cr_assert_eq(sc.how, PD_JSCAN_CORRUPT,
                     "flip at %ld in record %" PRIu64 " (seed %" PRIu64 ")", at, rec,
                     pd_test_seed() + 1);
        cr_assert_eq((long)sc.bad_offset, off[rec]);
        cr_assert_eq(sc.n_records, rec);
        cr_assert_eq(ck.n, rec, "records before the bad one are all handed out");
        remove(in_tmp("m2.pdj"));
    }
}

static pd_err fail_fourth(void *ud, const pd_jrec_t *r) {
    (void)r;
    int *n = ud;
    return ++*n == 4 ? PD_ERR_NOMEM : PD_OK;
}

Test(journal, callback_error_is_returned) {
    const char *p = in_tmp("c.pdj");
    write_segment(p, PD_FSYNC_NO, 1, 10, NULL);
    int n = 0;
    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, fail_fourth, &n, &sc), PD_ERR_NOMEM);
    cr_assert_eq(n, 4);
    cr_assert_eq(sc.n_records, 3);
}

Test(journal, open_append_after_a_torn_tail) {
    const char *p = in_tmp("o.pdj");
    long off[9];
    write_segment(p, PD_FSYNC_NO, 1, 8, off);
    cut(p, off[8] - 3);
    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_OK);
    cr_assert_eq(sc.how, PD_JSCAN_TORN);
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_open_append(p, PD_FSYNC_ALWAYS, sc.end, sc.last_seq + 1, &j), PD_OK);
    uint8_t buf[256];
    for (uint64_t s = 8; s <= 12; s++) {
        size_t len = payload(s, buf, sizeof(buf));
        cr_assert_eq(pd_journal_append(j, PD_JREC_COMMAND, (int64_t)(1000 + s), buf, len, NULL),
                     PD_OK);
    }
    cr_assert_eq(pd_journal_close(j), PD_OK);
    check_t ck = {.next = 1};
    cr_assert_eq(pd_journal_scan(p, check_rec, &ck, &sc), PD_OK);
    cr_assert_eq(sc.how, PD_JSCAN_CLEAN);
    cr_assert_eq(ck.n, 12);
}

Test(journal, oom_changes_nothing) {
    const char *p = in_tmp("oom.pdj");
    for (long k = 0; k < 4; k++) {
        pd_journal_t *j = NULL;
        pd_alloc_fail_after(k);
        pd_err err = pd_journal_create(p, PD_FSYNC_NO, 1, &j);
        pd_alloc_fail_after(-1);
        if (err) {
            cr_assert_eq(err, PD_ERR_NOMEM);
            cr_assert(!exists(p), "a failed create leaves no segment");
            continue;
        }
        cr_assert_eq(pd_journal_close(j), PD_OK);
        remove(p);
    }
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(p, PD_FSYNC_NO, 1, &j), PD_OK);
    static uint8_t big[200000];
    pd_alloc_fail_after(0);
    cr_assert_eq(pd_journal_append(j, 1, 1, big, sizeof(big), NULL), PD_ERR_NOMEM);
    pd_alloc_fail_after(-1);
    cr_assert_eq(pd_journal_next_seq(j), 1);
    cr_assert_eq(pd_journal_append(j, 1, 1, big, sizeof(big), NULL), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);
    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_OK);
    cr_assert_eq(sc.n_records, 1);
}

/* -------------------------------------------------------- data directory */

/* The model state: records applied and a running hash of them. */
typedef struct model_s {
    uint64_t n;
    uint64_t h;
    uint64_t last_seq;
    int loads;
    uint64_t loaded_seq;
    bool fail_load; /* make load() fail */
} model_t;

static void model_apply(model_t *m, uint64_t seq, const void *p, size_t len) {
    m->n++;
    m->h = XXH3_64bits_withSeed(p, len, m->h ^ seq);
    m->last_seq = seq;
}

static pd_err m_apply(void *ud, const pd_jrec_t *r) {
    model_t *m = ud;
    cr_assert_eq(r->seq, m->last_seq + 1, "records in order without gaps");
    model_apply(m, r->seq, r->data, r->len);
    return PD_OK;
}

static pd_err m_load(void *ud, const uint8_t *p, size_t len, uint64_t seq, int64_t ts) {
    model_t *m = ud;
    (void)ts;
    if (m->fail_load || len != 16) return PD_ERR_CORRUPT;
    memcpy(&m->n, p, 8);
    memcpy(&m->h, p + 8, 8);
    m->last_seq = seq;
    m->loads++;
    m->loaded_seq = seq;
    return PD_OK;
}

typedef struct logbuf_s {
    char text[8192];
    int warns;
} logbuf_t;

static void m_log(void *ud, pd_store_level lv, const char *msg) {
    logbuf_t *l = ud;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof(l->text) - n, "%s\n", msg);
    if (lv >= PD_STORE_WARN) l->warns++;
}

static logbuf_t logs;

static pd_store_t *open_store(const char *dir, pd_fsync_policy pol, bool trunc) {
    pd_store_opts_t o;
    pd_store_opts_init(&o);
    o.fsync = pol;
    o.truncate_corrupt = trunc;
    o.log = m_log;
    o.log_ud = &logs;
    pd_store_t *st = NULL;
    char msg[PD_STORE_MSG_MAX] = "";
    cr_assert_eq(pd_store_open(dir, &o, &st, msg), PD_OK, "%s", msg);
    return st;
}

/* Open and recover, asserting success. */
static pd_store_t *recover(const char *dir, model_t *m, bool trunc, pd_store_report_t *rep) {
    memset(m, 0, sizeof(*m));
    memset(&logs, 0, sizeof(logs));
    pd_store_t *st = open_store(dir, PD_FSYNC_EVERYSEC, trunc);
    char msg[PD_STORE_MSG_MAX] = "";
    pd_err err = pd_store_recover(st, m_load, m_apply, m, rep, msg);
    cr_assert_eq(err, PD_OK, "recover: %s: %s", pd_err_name(err), msg);
    return st;
}

/* Append records first..last with payload(seq) and apply them to m. */
static void write_n(pd_store_t *st, model_t *m, uint64_t n) {
    uint8_t buf[256];
    pd_journal_t *j = pd_store_journal(st);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq = pd_journal_next_seq(j);
        size_t len = payload(seq, buf, sizeof(buf));
        uint64_t got = 0;
        cr_assert_eq(pd_journal_append(j, PD_JREC_COMMAND, (int64_t)(1000 + seq), buf, len, &got),
                     PD_OK);
        cr_assert_eq(got, seq);
        model_apply(m, seq, buf, len);
    }
    cr_assert_eq(pd_journal_commit(j), PD_OK);
}

static uint64_t snapshot(pd_store_t *st, const model_t *m) {
    pd_snapshot_writer_t *w = NULL;
    uint64_t seq = 0;
    cr_assert_eq(pd_store_snapshot_begin(st, 1234, &w, &seq), PD_OK);
    cr_assert(pd_store_snapshot_busy(st));
    cr_assert_eq(seq, m->last_seq);
    cr_assert_eq(pd_snapshot_writer_write(w, &m->n, 8), PD_OK);
    cr_assert_eq(pd_snapshot_writer_write(w, &m->h, 8), PD_OK);
    cr_assert_eq(pd_snapshot_writer_commit(w), PD_OK);
    pd_store_snapshot_end(st, true);
    cr_assert(!pd_store_snapshot_busy(st));
    cr_assert_eq(pd_store_snapshot_seq(st), seq);
    return seq;
}

static void assert_same(const model_t *a, const model_t *b) {
    cr_assert_eq(a->n, b->n, "records: %" PRIu64 " vs %" PRIu64, a->n, b->n);
    cr_assert_eq(a->h, b->h, "state hash differs");
    cr_assert_eq(a->last_seq, b->last_seq);
}

static int count_files(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

/* Path of the only/last segment in dir. */
static const char *last_segment(const char *dir) {
    static char best[512];
    char name[256] = "";
    DIR *d = opendir(dir);
    cr_assert(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "journal-", 8) == 0 && strcmp(de->d_name, name) > 0)
            snprintf(name, sizeof(name), "%s", de->d_name);
    closedir(d);
    cr_assert(name[0], "no segment in %s", dir);
    snprintf(best, sizeof(best), "%s/%s", dir, name);
    return best;
}

Test(journal, store_creates_missing_dirs_and_locks) {
    const char *dir = in_tmp("a/b/c");
    pd_store_t *st = open_store(dir, PD_FSYNC_NO, false);
    struct stat sb;
    cr_assert_eq(stat(dir, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));

    /* Another open of the same directory is refused, naming our pid. */
    pd_store_t *st2 = NULL;
    char msg[PD_STORE_MSG_MAX] = "";
    cr_assert_eq(pd_store_open(dir, NULL, &st2, msg), PD_ERR_LIMIT);
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
    cr_assert(strstr(msg, pid) && strstr(msg, "in use"), "message: %s", msg);

    /* ... also from another process. */
    pid_t child = fork();
    if (child == 0) {
        pd_store_t *s3 = NULL;
        _exit(pd_store_open(dir, NULL, &s3, NULL) == PD_ERR_LIMIT ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    cr_assert_eq(pd_store_close(st), PD_OK);
    st = open_store(dir, PD_FSYNC_NO, false); /* free again */
    cr_assert_eq(pd_store_close(st), PD_OK);

    /* A file where the directory should be. */
    int fd = open(in_tmp("afile"), O_CREAT | O_WRONLY, 0644);
    close(fd);
    cr_assert_eq(pd_store_open(in_tmp("afile"), NULL, &st2, msg), PD_ERR_IO);
}

Test(journal, store_fresh_then_replay) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_report_t rep;
    pd_store_t *st = recover(dir, &m, false, &rep);
    cr_assert(!rep.from_snapshot);
    cr_assert_eq(rep.records, 0);
    cr_assert_eq(m.n, 0);
    write_n(st, &want, 100);
    cr_assert_eq(pd_store_close(st), PD_OK);

    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(rep.records, 100);
    cr_assert_eq(rep.last_seq, 100);
    cr_assert_eq(rep.torn_bytes, 0);
    /* Appends go on from seq 101 in the same segment. */
    write_n(st, &want, 10);
    cr_assert_eq(pd_store_close(st), PD_OK);
    cr_assert_eq(count_files(dir, "journal-"), 1);
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_torn_tail_is_cut_with_a_warning) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 50);
    cr_assert_eq(pd_store_close(st), PD_OK);
    const char *seg = last_segment(dir);
    long size = file_size(seg);
    /* A partial record at the end, as a crash mid-write leaves it. */
    uint8_t junk[40];
    memset(junk, 0xab, sizeof(junk));
    junk[8] = 5; /* a small plausible length */
    junk[9] = junk[10] = junk[11] = 0;
    append_bytes(seg, junk, 25);

    pd_store_report_t rep;
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(rep.torn_bytes, 25);
    cr_assert_eq(logs.warns, 1);
    cr_assert(strstr(logs.text, "torn tail") && strstr(logs.text, "dropped 25 bytes"), "log: %s",
              logs.text);
    cr_assert_eq(file_size(seg), size, "the tail is cut off the file");
    write_n(st, &want, 5);
    cr_assert_eq(pd_store_close(st), PD_OK);
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(rep.torn_bytes, 0);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_truncated_last_record_loses_only_it) {
    const char *dir = in_tmp("d");
    model_t m, want = {0}, all = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 30);
    all = want;
    write_n(st, &all, 1);
    cr_assert_eq(pd_store_close(st), PD_OK);
    const char *seg = last_segment(dir);
    cut(seg, file_size(seg) - 1);
    pd_store_report_t rep;
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_gt(rep.torn_bytes, 0);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_corrupt_middle_refuses_then_truncates) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 40);
    cr_assert_eq(pd_store_close(st), PD_OK);
    const char *seg = last_segment(dir);
    char segpath[512];
    snprintf(segpath, sizeof(segpath), "%s", seg);
    /* Record 11's offset: replay the scan to find it. */
    long off[41];
    off[0] = PD_JOURNAL_HEADER_SIZE;
    uint8_t buf[256];
    for (uint64_t s = 1; s <= 40; s++)
        off[s] = off[s - 1] + PD_JREC_HEADER_SIZE + (long)payload(s, buf, sizeof(buf));
    flip_byte(segpath, off[10] + 20); /* inside record seq 11's frame */

    memset(&m, 0, sizeof(m));
    memset(&logs, 0, sizeof(logs));
    st = open_store(dir, PD_FSYNC_EVERYSEC, false);
    char msg[PD_STORE_MSG_MAX] = "";
    cr_assert_eq(pd_store_recover(st, m_load, m_apply, &m, NULL, msg), PD_ERR_CORRUPT);
    char at[64];
    snprintf(at, sizeof(at), "offset %ld", off[10]);
    cr_assert(strstr(msg, segpath) && strstr(msg, at) && strstr(msg, "--truncate-corrupt"),
              "message names file and offset: %s", msg);
    cr_assert_eq(pd_store_close(st), PD_OK);
    cr_assert_eq(file_size(segpath), off[40], "a refused start changes no file");

    /* With the flag: cut there, keep records 1..10, go on from 11. */
    pd_store_report_t rep;
    st = recover(dir, &m, true, &rep);
    cr_assert_eq(m.n, 10);
    cr_assert_eq(m.last_seq, 10);
    cr_assert_eq(rep.corrupt_bytes, (uint64_t)(off[40] - off[10]));
    cr_assert(strstr(logs.text, "truncate-corrupt"), "log: %s", logs.text);
    cr_assert_eq(file_size(segpath), off[10]);
    model_t again = m;
    write_n(st, &again, 3);
    cr_assert_eq(pd_store_close(st), PD_OK);
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &again);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_snapshot_then_journal) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_report_t rep;
    pd_store_t *st = recover(dir, &m, false, &rep);
    write_n(st, &want, 25);
    uint64_t s1 = snapshot(st, &want);
    cr_assert_eq(s1, 25);
    cr_assert_eq(pd_store_journal_bytes(st), 0, "the journal starts again at the snapshot");
    write_n(st, &want, 7);
    cr_assert_eq(pd_store_close(st), PD_OK);

    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert(rep.from_snapshot);
    cr_assert_eq(rep.snapshot_seq, 25);
    cr_assert_eq(rep.records, 7);
    cr_assert_eq(m.loads, 1);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_snapshot_with_nothing_new) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    cr_assert_eq(snapshot(st, &want), 0, "an empty state can be snapshotted (seq 0)");
    write_n(st, &want, 3);
    cr_assert_eq(snapshot(st, &want), 3);
    cr_assert_eq(snapshot(st, &want), 3, "again at the same position");
    cr_assert_eq(pd_store_close(st), PD_OK);
    pd_store_report_t rep;
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(rep.snapshot_seq, 3);
    cr_assert_eq(rep.records, 0);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_prunes_but_keeps_a_fallback) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    for (int round = 0; round < 5; round++) {
        write_n(st, &want, 10);
        snapshot(st, &want);
        cr_assert_leq(count_files(dir, "snap-"), 2);
    }
    write_n(st, &want, 4);
    cr_assert_eq(count_files(dir, "snap-"), 2);
    /* Segments kept: the one after the older snapshot, the current one. */
    cr_assert_eq(count_files(dir, "journal-"), 2);
    cr_assert_eq(pd_store_close(st), PD_OK);
    pd_store_report_t rep;
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(rep.snapshot_seq, 50);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_corrupt_snapshot_falls_back_to_the_previous) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 10);
    snapshot(st, &want);
    write_n(st, &want, 10);
    uint64_t s2 = snapshot(st, &want);
    write_n(st, &want, 5);
    cr_assert_eq(pd_store_close(st), PD_OK);

    char p[512];
    snprintf(p, sizeof(p), "%s/snap-%020" PRIu64 ".pds", dir, s2);
    flip_byte(p, PD_SNAPSHOT_HEADER_SIZE + 3);
    pd_store_report_t rep;
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(rep.snapshot_seq, 10);
    cr_assert_eq(rep.snapshots_skipped, 1);
    cr_assert_eq(rep.records, 15);
    cr_assert(strstr(logs.text, "unusable") && strstr(logs.text, p), "log: %s", logs.text);
    /* The bad file is set aside, so pruning keeps two good snapshots. */
    char aside[600];
    snprintf(aside, sizeof(aside), "%s.corrupt", p);
    cr_assert(exists(aside) && !exists(p));
    snapshot(st, &m);
    cr_assert_eq(count_files(dir, "snap-"), 3, "two snapshots and the one set aside");
    cr_assert_eq(pd_store_close(st), PD_OK);
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &want);
    cr_assert_eq(rep.snapshots_skipped, 0);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_unloadable_snapshot_falls_back_too) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 10);
    snapshot(st, &want);
    write_n(st, &want, 10);
    cr_assert_eq(pd_store_close(st), PD_OK);

    /* Every snapshot fails to load, and the journal still reaches seq 1:
     * a replay from the beginning. */
    memset(&m, 0, sizeof(m));
    m.fail_load = true;
    st = open_store(dir, PD_FSYNC_NO, false);
    pd_store_report_t rep;
    char msg[PD_STORE_MSG_MAX] = "";
    cr_assert_eq(pd_store_recover(st, m_load, m_apply, &m, &rep, msg), PD_OK, "%s", msg);
    cr_assert(!rep.from_snapshot);
    cr_assert_eq(rep.snapshots_skipped, 1);
    m.fail_load = false;
    assert_same(&m, &want);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_no_usable_snapshot_and_no_journal_start) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    for (int i = 0; i < 3; i++) {
        write_n(st, &want, 10);
        snapshot(st, &want);
    }
    cr_assert_eq(pd_store_close(st), PD_OK);
    /* Corrupt both remaining snapshots: the journal from seq 1 is gone. */
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "snap-", 5) == 0) {
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            flip_byte(p, 2);
        }
    }
    closedir(d);
    memset(&m, 0, sizeof(m));
    st = open_store(dir, PD_FSYNC_NO, false);
    char msg[PD_STORE_MSG_MAX] = "";
    cr_assert_eq(pd_store_recover(st, m_load, m_apply, &m, NULL, msg), PD_ERR_CORRUPT);
    cr_assert(strstr(msg, "no usable snapshot"), "%s", msg);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_gap_between_segments) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 10);
    snapshot(st, &want); /* seq 10; journal rotates to 11 */
    write_n(st, &want, 10);
    snapshot(st, &want); /* seq 20; rotates to 21 */
    write_n(st, &want, 10);
    cr_assert_eq(pd_store_close(st), PD_OK);
    /* Corrupt the newest snapshot (fallback to 10), and lose segment 11: a gap. */
    char p[512];
    snprintf(p, sizeof(p), "%s/snap-%020d.pds", dir, 20);
    flip_byte(p, 60);
    snprintf(p, sizeof(p), "%s/journal-%020d.pdj", dir, 11);
    cr_assert_eq(unlink(p), 0);
    memset(&m, 0, sizeof(m));
    st = open_store(dir, PD_FSYNC_NO, false);
    char msg[PD_STORE_MSG_MAX] = "";
    cr_assert_eq(pd_store_recover(st, m_load, m_apply, &m, NULL, msg), PD_ERR_CORRUPT);
    cr_assert(strstr(msg, "gap"), "%s", msg);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_removes_unfinished_files) {
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 5);
    /* A snapshot begun and never finished (the process died). */
    pd_snapshot_writer_t *w = NULL;
    uint64_t seq;
    cr_assert_eq(pd_store_snapshot_begin(st, 0, &w, &seq), PD_OK);
    cr_assert_eq(pd_snapshot_writer_write(w, "partial", 7), PD_OK);
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s/snap-%020" PRIu64 ".pds.tmp", dir, seq);
    cr_assert(exists(tmp));
    cr_assert_eq(pd_store_snapshot_begin(st, 0, &w, &seq), PD_ERR_ILLEGAL, "one at a time");
    /* Simulate the crash: copy the directory state by closing without end. */
    pd_store_snapshot_end(st, false);
    cr_assert(!exists(tmp), "a failed snapshot leaves no temporary file");
    int fd = open(tmp, O_CREAT | O_WRONLY, 0644);
    close(fd);
    cr_assert_eq(pd_store_close(st), PD_OK);
    st = recover(dir, &m, false, NULL);
    assert_same(&m, &want);
    cr_assert(!exists(tmp), "recovery removes *.tmp");
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_snapshot_ahead_of_the_journal) {
    /* Under fsync=no a power cut can lose journal records a snapshot
     * already holds: recovery starts a new segment after the snapshot. */
    const char *dir = in_tmp("d");
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    write_n(st, &want, 10);
    snapshot(st, &want);
    write_n(st, &want, 5);
    cr_assert_eq(pd_store_close(st), PD_OK);
    /* Lose records 11..15 and the segment that held them starts at 11. */
    const char *seg = last_segment(dir);
    cut(seg, PD_JOURNAL_HEADER_SIZE);
    pd_store_report_t rep;
    st = recover(dir, &m, false, &rep);
    cr_assert_eq(m.last_seq, 10);
    model_t w2 = m;
    write_n(st, &w2, 4);
    cr_assert_eq(pd_store_close(st), PD_OK);
    st = recover(dir, &m, false, &rep);
    assert_same(&m, &w2);
    cr_assert_eq(pd_store_close(st), PD_OK);
}

Test(journal, store_random_crash_points) {
    /* Write, snapshot now and then, cut the last segment at a random byte
     * (a crash mid-write), recover: the state is exactly the records whose
     * frames survived whole, and appending goes on. Many rounds. */
    const char *dir = in_tmp("d");
    pd_rng_t rng;
    pd_rng_seed(&rng, pd_test_seed() + 7);
    model_t m, want = {0};
    pd_store_t *st = recover(dir, &m, false, NULL);
    for (int round = 0; round < 40; round++) {
        uint64_t n = 1 + pd_rng_below(&rng, 30);
        uint8_t buf[256];
        pd_journal_t *j = pd_store_journal(st);
        /* Remember the state after each record to know what a cut keeps. */
        model_t steps[32];
        uint64_t ends[32];
        steps[0] = want;
        ends[0] = pd_journal_size(j);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t seq = pd_journal_next_seq(j);
            size_t len = payload(seq, buf, sizeof(buf));
            cr_assert_eq(
                pd_journal_append(j, PD_JREC_COMMAND, (int64_t)(1000 + seq), buf, len, NULL),
                PD_OK);
            model_apply(&want, seq, buf, len);
            steps[i + 1] = want;
            ends[i + 1] = pd_journal_size(j);
        }
        cr_assert_eq(pd_journal_commit(j), PD_OK);
        bool snapped = pd_rng_below(&rng, 4) == 0;
        if (snapped) snapshot(st, &want);
        char seg[512];
        snprintf(seg, sizeof(seg), "%s", last_segment(dir));
        cr_assert_eq(pd_store_close(st), PD_OK);
        long size = file_size(seg);
        long c = size;
        model_t expect = want;
        if (!snapped && pd_rng_below(&rng, 3) != 0) {
            c = (long)ends[0] + (long)pd_rng_below(&rng, (uint64_t)(size - (long)ends[0]));
            for (uint64_t i = n + 1; i-- > 0;) {
                if ((long)ends[i] <= c) {
                    expect = steps[i];
                    break;
                }
            }
            cut(seg, c);
        }
        pd_store_report_t rep;
        st = recover(dir, &m, false, &rep);
        assert_same(&m, &expect);
        if (!snapped) {
            uint64_t whole = 0;
            for (uint64_t i = 0; i <= n; i++)
                if ((long)ends[i] <= c) whole = ends[i];
            cr_assert_eq(rep.torn_bytes, (uint64_t)c - whole, "round %d", round);
        }
        want = expect;
    }
    cr_assert_eq(pd_store_close(st), PD_OK);
}

/* Space reserved ahead: the blocks are allocated, the size (what a reader
 * sees) does not move, appends use the room up, and closing gives back
 * what was never written. */
Test(journal, reserve_ahead_keeps_the_size_and_gives_back_the_rest) {
    const char *p = in_tmp("reserve.pdj");
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(p, PD_FSYNC_ALWAYS, 1, &j), PD_OK);
    uint64_t room0 = pd_journal_room(j);
    if (room0 == UINT64_MAX) {
        pd_journal_close(j);
        cr_skip_test("this file system cannot allocate ahead");
    }
    cr_assert_eq(room0, 0);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    long size0 = (long)sb.st_size, blocks0 = (long)sb.st_blocks;
    cr_assert_eq(pd_journal_reserve(j, 4 << 20), PD_OK);
    cr_assert_geq(pd_journal_room(j), 4u << 20);
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq((long)sb.st_size, size0, "reserving changed the size");
    cr_assert_geq((long)sb.st_blocks * 512, (4L << 20), "no blocks allocated");
    /* Reserving less than there is room for changes nothing. */
    uint64_t room = pd_journal_room(j);
    cr_assert_eq(pd_journal_reserve(j, 1000), PD_OK);
    cr_assert_eq(pd_journal_room(j), room);
    char rec[1000];
    memset(rec, 7, sizeof(rec));
    for (int i = 0; i < 100; i++)
        cr_assert_eq(pd_journal_append(j, PD_JREC_COMMAND, i, rec, sizeof(rec), NULL), PD_OK);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_room(j), room - 100 * (PD_JREC_HEADER_SIZE + sizeof(rec)));
    cr_assert_eq(pd_journal_close(j), PD_OK);
    cr_assert_eq(stat(p, &sb), 0);
    long want = size0 + 100 * (long)(PD_JREC_HEADER_SIZE + sizeof(rec));
    cr_assert_eq((long)sb.st_size, want);
    cr_assert_lt((long)sb.st_blocks * 512, want + (1L << 20),
                 "the unused reservation was kept: %ld blocks (%ld before)", (long)sb.st_blocks,
                 blocks0);
    pd_jscan_t sc;
    cr_assert_eq(pd_journal_scan(p, NULL, NULL, &sc), PD_OK);
    cr_assert_eq(sc.how, PD_JSCAN_CLEAN);
    cr_assert_eq(sc.n_records, 100);
}

/* The imported-record payloads: what the server writes, replays and
 * paidan-bench replay reads, field for field; a wrong length is refused. */
Test(journal, imported_records_round_trip) {
    pd_volunteer_t v, v2;
    memset(&v, 0, sizeof v);
    v.id = 0xFEDCBA9876543210ULL;
    v.pos.lat = -33868820;
    v.pos.lon = 151209296;
    v.skills = 0x8000000000000005ULL;
    v.tags = 0x0102030405060708ULL;
    v.week.bits[0] = ~0ULL;
    v.week.bits[1] = 0x5555555555555555ULL;
    v.week.bits[2] = 0xFFFFFFFFFFULL;
    v.mode = PD_MODE_EBIKE;
    v.status = PD_STATUS_BUSY;
    v.capacity = 3;
    v.load = 2; /* not recorded */
    uint8_t vb[PD_JREC_VOLUNTEER_BYTES];
    pd_jrec_volunteer_encode(&v, vb);
    cr_assert_eq(pd_jrec_volunteer_decode(vb, sizeof vb, &v2), PD_OK);
    v.load = 0;
    cr_assert_eq(memcmp(&v, &v2, sizeof v), 0);
    cr_assert_eq(pd_jrec_volunteer_decode(vb, sizeof vb - 1, &v2), PD_ERR_CORRUPT);

    pd_order_spec_t o, o2;
    memset(&o, 0, sizeof o);
    o.id = 77;
    o.at.lat = 30600000;
    o.at.lon = -114300000;
    o.skills = 0x12;
    o.need = 5;
    o.start_ms = 1709517600000LL;
    o.duration_min = 90;
    o.budget_s = 1200;
    o.priority = PD_PRIORITY_ELEVATED;
    uint8_t ob[PD_JREC_ORDER_BYTES];
    pd_jrec_order_encode(&o, ob);
    cr_assert_eq(pd_jrec_order_decode(ob, sizeof ob, &o2), PD_OK);
    cr_assert_eq(memcmp(&o, &o2, sizeof o), 0);
    cr_assert_eq(pd_jrec_order_decode(ob, sizeof ob + 1, &o2), PD_ERR_CORRUPT);
}
