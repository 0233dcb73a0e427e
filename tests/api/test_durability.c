/* test_durability.c -- a real paidan-server on a data directory, killed.
 *
 * The crash cycles run write load at --fsync always (location moves of a
 * set of volunteers, each write a new "version" of its position; orders
 * created and dispatched), kill -9 the server at a random moment from a
 * separate process, restart it on the same directory and check against a
 * model: every acknowledged write is there, and each volunteer is at its
 * acknowledged version or at one sent after it (never older, never
 * something else); every acknowledged order exists, and every order that
 * exists is whole (created and dispatched, or nothing). Four suites of 25
 * cycles each: plain, with snapshots requested in the load, with snapshots
 * triggered by a tiny --snapshot-bytes (forked children killed mid-write),
 * and with short offer timeouts so ticks are journaled.
 *
 * Then the file-level cases: the state digest after recovery equals the one
 * before the crash (with and without snapshots, a snapshot child running at
 * the kill); a truncated or bit-flipped journal tail is cut with a warning
 * naming the bytes dropped; corruption in the middle refuses to start with
 * the file and offset, and --truncate-corrupt starts anyway; a corrupt
 * snapshot falls back to the previous one; a locked directory is refused;
 * a missing one is created. Set PD_SEED to replay.
 */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"
#include "test_rng.h"

/* ------------------------------------------------------------- harness */

static char tmpdir[256];
static char datadir[300];
static char logpath[300];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pd-test-durability-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
    snprintf(datadir, sizeof(datadir), "%s/data", tmpdir);
    snprintf(logpath, sizeof(logpath), "%s/server.log", tmpdir);
}

static void teardown(void) {
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(durability, .init = setup, .fini = teardown, .timeout = 120);

/* Start paidan-server on datadir with more args; its stderr goes to
 * logpath (appended). Returns the pid and the read end of its stdout. */
static pid_t spawn_server(const char *const *args, int *out_fd) {
    const char *argv[40];
    int n = 0;
    argv[n++] = "--data-dir";
    argv[n++] = datadir;
    for (; args && *args && n < 39; args++) argv[n++] = *args;
    argv[n] = NULL;
    return srv_spawn(argv, logpath, out_fd);
}

static void start(srv_t *s, const char *const *args) {
    int fd;
    s->pid = spawn_server(args, &fd);
    s->port = -1;
    s->metrics_port = -1;
    char buf[4096];
    size_t len = 0;
    long long deadline = now_ms() + 30000;
    while (s->port < 0) {
        long long left = deadline - now_ms();
        cr_assert(left > 0, "paidan-server did not start");
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        cr_assert(n > 0, "paidan-server exited before listening (see %s)", logpath);
        len += (size_t)n;
        buf[len] = '\0';
        const char *l = strstr(buf, "listening on ");
        const char *nl = l ? strchr(l, '\n') : NULL;
        if (nl) {
            const char *colon = l;
            for (const char *q = l; q < nl; q++)
                if (*q == ':') colon = q;
            s->port = atoi(colon + 1);
        }
    }
    close(fd);
}

/* Run a server expected to refuse to start; returns its exit status. */
static int run_refused(const char *const *args) {
    int fd;
    pid_t pid = spawn_server(args, &fd);
    int status = 0;
    long long deadline = now_ms() + 15000;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(fd);
            cr_assert_fail("paidan-server was expected to refuse to start");
        }
        usleep(10000);
    }
    close(fd);
    return status;
}

static void kill9(srv_t *s) {
    kill(s->pid, SIGKILL);
    int status = 0;
    waitpid(s->pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);
}

static void truncate_log(void) {
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) close(fd);
}

static uint64_t digest_of(const srv_t *s, uint64_t *seq) {
    pd_client_t *c = srv_connect(s);
    pd_msg_t m = call_ok(c, "digest", "");
    uint64_t d = (uint64_t)map_int(&m.result, "digest");
    if (seq) *seq = (uint64_t)map_int(&m.result, "seq");
    pd_client_destroy(c);
    return d;
}

/* Path of the newest (or, with oldest, the oldest) file starting with prefix. */
static void find_file(const char *prefix, bool oldest, char *out, size_t cap) {
    DIR *d = opendir(datadir);
    cr_assert(d);
    char best[256] = "";
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || strstr(de->d_name, ".tmp") ||
            n >= sizeof(best))
            continue;
        if (!best[0] || (oldest ? strcmp(de->d_name, best) < 0 : strcmp(de->d_name, best) > 0))
            snprintf(best, sizeof(best), "%s", de->d_name);
    }
    closedir(d);
    cr_assert(best[0], "no %s* in %s", prefix, datadir);
    snprintf(out, cap, "%s/%s", datadir, best);
}

static long fsize(const char *p) {
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    return (long)sb.st_size;
}

static void flip(const char *p, long off) {
    int fd = open(p, O_RDWR);
    cr_assert(fd >= 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x20;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* A config file name in tmpdir holding text; its path in path. */
static void write_ini(char *path, size_t cap, const char *name, const char *text) {
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* ------------------------------------------------------------ the model */

/* A journal segment's header (PD_JOURNAL_HEADER_SIZE in paidan/journal.h). */
#define SEG_HEADER 32

#define NV 40           /* volunteers moved by the load */
#define MAX_ORDERS 4000 /* orders created over all cycles of a suite */

typedef struct model_s {
    uint32_t acked[NV + 1];        /* acknowledged version of each volunteer's position */
    uint32_t sent[NV + 1];         /* newest version sent */
    uint8_t order[MAX_ORDERS + 1]; /* 0 never sent, 1 sent, 2 acknowledged */
    uint32_t next_order;
    uint64_t acks, sends; /* totals, for the report */
} model_t;

/* Version v of volunteer id: a position only that version has. */
static void pos_of(uint32_t id, uint32_t v, char *json, size_t cap) {
    snprintf(json, cap, "{\"id\":%u,\"lat\":%.6f,\"lon\":%.6f}", id, 30.0 + v * 1e-5,
             114.0 + id * 1e-3);
}

static uint32_t version_at(double lat) {
    return (uint32_t)llround((lat - 30.0) * 1e5);
}

/* Every volunteer starts at version 1, acknowledged. */
static void seed_model(const srv_t *s, model_t *m) {
    memset(m, 0, sizeof(*m));
    m->next_order = 1;
    pd_client_t *c = srv_connect(s);
    for (uint32_t id = 1; id <= NV; id++) {
        char j[256];
        snprintf(j, sizeof(j),
                 "{\"id\":%u,\"lat\":%.6f,\"lon\":%.6f,\"skills\":[\"sanitation\"],"
                 "\"capacity\":100}",
                 id, 30.0 + 1e-5, 114.0 + id * 1e-3);
        call_ok(c, "volunteer.upsert", j);
        m->acked[id] = m->sent[id] = 1;
    }
    pd_client_destroy(c);
}

/* Check the restarted server against the model, then make the model what
 * the server holds (an unacknowledged write that survived is now fact). */
static void check_model(const srv_t *s, model_t *m, int cycle) {
    pd_client_t *c = srv_connect(s);
    for (uint32_t id = 1; id <= NV; id++) {
        char j[64];
        snprintf(j, sizeof(j), "{\"id\":%u}", id);
        pd_msg_t r = call_ok(c, "volunteer.get", j);
        uint32_t v = version_at(map_num(&r.result, "lat"));
        cr_assert(v >= m->acked[id] && v <= m->sent[id],
                  "cycle %d: volunteer %u at version %u; acknowledged %u, newest sent %u", cycle,
                  id, v, m->acked[id], m->sent[id]);
        m->acked[id] = m->sent[id] = v;
    }
    for (uint32_t o = 1; o < m->next_order; o++) {
        char j[64];
        snprintf(j, sizeof(j), "{\"id\":%u}", o);
        pd_msg_t r = call(c, "order.get", j);
        if (r.code == PD_ERR_NOT_FOUND) {
            cr_assert_neq(m->order[o], 2, "cycle %d: acknowledged order %u lost", cycle, o);
            m->order[o] = 0;
            continue;
        }
        cr_assert_eq(r.code, 0);
        cr_assert_neq(m->order[o], 0, "cycle %d: order %u exists but was never created", cycle, o);
        /* Whole: created with dispatch means offered (with offers) or
         * expired, never a bare `created`. */
        const char *st = map_str(&r.result, "state");
        cr_assert(strcmp(st, "created") != 0, "cycle %d: order %u half-applied (created)", cycle,
                  o);
        if (strcmp(st, "offered") == 0)
            cr_assert_geq(map_int(&r.result, "offers_total"), 1, "order %u offered without offers",
                          o);
        m->order[o] = 2;
    }
    /* Nothing past what was sent. */
    char j[64];
    snprintf(j, sizeof(j), "{\"id\":%u}", m->next_order);
    call_err(c, "order.get", j, PD_ERR_NOT_FOUND);
    pd_client_destroy(c);
}

typedef struct sent_s {
    uint32_t kind; /* 0 move, 1 order, 2 snapshot */
    uint32_t id;
    uint32_t version;
} sent_t;

/* Drive pipelined writes on c until the connection dies (the killer
 * struck). The caller connects before arming the killer: a connect that
 * raced the kill would fail for the wrong reason. */
static void load_until_killed(pd_client_t *c, model_t *m, pd_rng_t *rng, bool snapshots) {
    pd_client_set_timeout(c, 10000);
    sent_t batch[16];
    for (;;) {
        uint32_t n = 1 + (uint32_t)pd_rng_below(rng, 16);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t r = (uint32_t)pd_rng_below(rng, 100);
            char j[256];
            uint32_t msgid;
            if (snapshots && r < 2) {
                batch[i] = (sent_t){2, 0, 0};
                size_t len;
                const char *p = params_json("", &len);
                cr_assert_eq(pd_client_send(c, "snapshot", p, len, &msgid), PD_OK);
            } else if (r < 25 && m->next_order < MAX_ORDERS) {
                uint32_t o = m->next_order++;
                m->order[o] = 1;
                batch[i] = (sent_t){1, o, 0};
                snprintf(j, sizeof(j),
                         "{\"id\":%u,\"lat\":30.0,\"lon\":114.0,\"skills\":[\"sanitation\"],"
                         "\"dispatch\":true,\"ignore_schedule\":true}",
                         o);
                size_t len;
                const char *p = params_json(j, &len);
                cr_assert_eq(pd_client_send(c, "order.create", p, len, &msgid), PD_OK);
            } else {
                uint32_t id = 1 + (uint32_t)pd_rng_below(rng, NV);
                uint32_t v = ++m->sent[id];
                batch[i] = (sent_t){0, id, v};
                pos_of(id, v, j, sizeof(j));
                size_t len;
                const char *p = params_json(j, &len);
                cr_assert_eq(pd_client_send(c, "volunteer.update", p, len, &msgid), PD_OK);
            }
            m->sends++;
        }
        if (pd_client_flush(c) != PD_OK) break;
        bool dead = false;
        for (uint32_t i = 0; i < n; i++) {
            pd_msg_t r;
            if (pd_client_read(c, &r) != PD_OK) {
                dead = true;
                break;
            }
            if (batch[i].kind == 2) continue; /* a snapshot may be busy: fine */
            cr_assert_eq(r.code, 0, "write refused: %s", r.message);
            m->acks++;
            if (batch[i].kind == 0) {
                if (batch[i].version > m->acked[batch[i].id])
                    m->acked[batch[i].id] = batch[i].version;
            } else {
                m->order[batch[i].id] = 2;
            }
        }
        if (dead) break;
    }
    pd_client_destroy(c);
}

/* Wait for the data directory's lock to be free (a snapshot child of the
 * killed server dies with it, a moment later). */
static void wait_unlocked(void) {
    char p[400];
    snprintf(p, sizeof(p), "%s/LOCK", datadir);
    int fd = open(p, O_RDWR);
    if (fd < 0) return;
    long long deadline = now_ms() + 5000;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        cr_assert(now_ms() < deadline, "the lock stayed held after the kill");
        usleep(5000);
    }
    flock(fd, LOCK_UN);
    close(fd);
}

static void crash_cycles(int cycles, const char *const *args, bool snapshots, uint64_t seed) {
    pd_rng_t rng;
    pd_rng_seed(&rng, seed);
    model_t *m = calloc(1, sizeof(*m));
    srv_t s;
    start(&s, args);
    seed_model(&s, m);
    for (int cycle = 0; cycle < cycles; cycle++) {
        pd_client_t *c = srv_connect(&s);
        /* The killer: a separate process, a random moment into the load. */
        useconds_t delay = (useconds_t)(2000 + pd_rng_below(&rng, 40000));
        pid_t killer = fork();
        cr_assert(killer >= 0);
        if (killer == 0) {
            usleep(delay);
            kill(s.pid, SIGKILL);
            _exit(0);
        }
        load_until_killed(c, m, &rng, snapshots);
        waitpid(killer, NULL, 0);
        int status = 0;
        waitpid(s.pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "seed %" PRIu64 " cycle %d: the server was not killed", seed,
                  cycle);
        wait_unlocked();
        start(&s, args);
        check_model(&s, m, cycle);
    }
    fprintf(stderr,
            "durability: seed %" PRIu64 ": %d kill -9 cycles, %" PRIu64 " writes sent, %" PRIu64
            " acknowledged, %u orders\n",
            seed, cycles, m->sends, m->acks, m->next_order - 1);
    srv_stop(&s);
    /* A clean stop snapshots; the state is still what the model says. */
    start(&s, args);
    check_model(&s, m, cycles);
    srv_stop(&s);
    free(m);
}

/* --------------------------------------------------------- crash cycles */

Test(durability, kill9_cycles_plain) {
    const char *args[] = {"--fsync", "always", NULL};
    crash_cycles(25, args, false, pd_test_seed());
}

Test(durability, kill9_cycles_with_snapshots) {
    const char *args[] = {"--fsync", "always", NULL};
    crash_cycles(25, args, true, pd_test_seed() + 1);
}

Test(durability, kill9_cycles_size_triggered_snapshots) {
    /* Every few KiB of journal forks a snapshot child: kills land while
     * children write, rotate, prune. */
    const char *args[] = {"--fsync", "always", "--snapshot-bytes", "4k", NULL};
    crash_cycles(25, args, false, pd_test_seed() + 2);
}

Test(durability, kill9_cycles_with_expiring_offers) {
    /* Offers expire after 1 s, so ticks change state and are journaled. */
    char ini[400];
    write_ini(ini, sizeof(ini), "short.ini", "[dispatch]\noffer_timeout_s = 1\n");
    const char *args[] = {"--fsync", "always", "--config", ini, "--tick-ms", "20", NULL};
    crash_cycles(25, args, false, pd_test_seed() + 3);
}

/* ------------------------------------------------------- digest & files */

/* Some writes through one connection, all acknowledged. */
static void write_some(const srv_t *s, uint32_t from, uint32_t n) {
    pd_client_t *c = srv_connect(s);
    for (uint32_t i = from; i < from + n; i++) {
        char j[256];
        snprintf(j, sizeof(j), "{\"id\":%u,\"lat\":%.6f,\"lon\":114.3,\"skills\":[\"sanitation\"]}",
                 i, 30.6 + i * 1e-4);
        call_ok(c, "volunteer.upsert", j);
        if (i % 3 == 0) {
            snprintf(j, sizeof(j),
                     "{\"id\":%u,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
                     "\"dispatch\":true}",
                     i);
            call_ok(c, "order.create", j);
        }
    }
    pd_client_destroy(c);
}

static long long volunteers_of(const srv_t *s) {
    return stat_of(s, "engine", "volunteers");
}

Test(durability, digest_equal_after_kill9) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    for (int round = 0; round < 6; round++) {
        write_some(&s, (uint32_t)round * 100 + 1, 30);
        pd_client_t *c = srv_connect(&s);
        if (round % 3 == 1) call_ok(c, "snapshot", "{\"wait\":true}");
        if (round % 3 == 2) call_ok(c, "snapshot", ""); /* a child may still be writing */
        pd_client_destroy(c);
        uint64_t seq0, seq1;
        uint64_t before = digest_of(&s, &seq0);
        kill9(&s);
        wait_unlocked();
        start(&s, args);
        uint64_t after = digest_of(&s, &seq1);
        cr_assert_eq(after, before, "round %d: digest %016" PRIx64 " before, %016" PRIx64 " after",
                     round, before, after);
        cr_assert_eq(seq1, seq0, "round %d: journal position", round);
    }
    srv_stop(&s);
    start(&s, args);
    cr_assert_eq(volunteers_of(&s), 6 * 30);
    srv_stop(&s);
}

Test(durability, torn_tail_is_cut_with_a_warning) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    write_some(&s, 1, 20);
    uint64_t d20 = digest_of(&s, NULL);
    write_some(&s, 22, 1); /* volunteer 22, the last record */
    kill9(&s);
    char seg[512];
    find_file("journal-", false, seg, sizeof(seg));
    /* Cut the last record short by a few bytes. */
    cr_assert_eq(truncate(seg, fsize(seg) - 5), 0);
    truncate_log();
    start(&s, args);
    cr_assert_eq(digest_of(&s, NULL), d20, "everything but the torn record");
    char *log = file_text(logpath);
    cr_assert(strstr(log, "torn tail") && strstr(log, "dropped") && strstr(log, seg), "log: %s",
              log);
    free(log);
    /* It goes on appending after the cut. */
    write_some(&s, 21, 2);
    uint64_t d = digest_of(&s, NULL);
    kill9(&s);
    start(&s, args);
    cr_assert_eq(digest_of(&s, NULL), d);
    srv_stop(&s);
}

Test(durability, bit_flip_in_the_last_record) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    write_some(&s, 1, 10);
    uint64_t d10 = digest_of(&s, NULL);
    write_some(&s, 11, 1);
    kill9(&s);
    char seg[512];
    find_file("journal-", false, seg, sizeof(seg));
    flip(seg, fsize(seg) - 3);
    truncate_log();
    start(&s, args);
    cr_assert_eq(digest_of(&s, NULL), d10);
    char *log = file_text(logpath);
    cr_assert(strstr(log, "torn tail") && strstr(log, "checksum"), "log: %s", log);
    free(log);
    srv_stop(&s);
}

Test(durability, corrupt_middle_refuses_then_truncates) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    write_some(&s, 1, 30);
    kill9(&s);
    char seg[512];
    find_file("journal-", false, seg, sizeof(seg));
    long size = fsize(seg);
    long at = SEG_HEADER + (size - SEG_HEADER) / 3;
    flip(seg, at);
    truncate_log();
    int st = run_refused(args);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
    char *log = file_text(logpath);
    cr_assert(
        strstr(log, seg) && strstr(log, "corrupt at offset") && strstr(log, "--truncate-corrupt"),
        "the refusal names file and offset: %s", log);
    free(log);
    cr_assert_eq(fsize(seg), size, "a refused start changes nothing");

    const char *targs[] = {"--fsync", "always", "--truncate-corrupt", NULL};
    truncate_log();
    start(&s, targs);
    long long n = volunteers_of(&s);
    cr_assert(n > 0 && n < 30, "records before the corruption kept: %lld", n);
    log = file_text(logpath);
    cr_assert(strstr(log, "truncate-corrupt"), "log: %s", log);
    free(log);
    srv_stop(&s);
    start(&s, args); /* and the directory is clean again */
    cr_assert_eq(volunteers_of(&s), n);
    srv_stop(&s);
}

/* Kill s, flip a byte in the middle of the newest snapshot (its path in
 * snap), start again with args on an empty log: the state must be the one
 * before the kill, from the previous snapshot and the journal after it. */
static void restart_without_newest_snapshot(srv_t *s, const char *const *args, char *snap,
                                            size_t cap) {
    uint64_t before = digest_of(s, NULL);
    kill9(s);
    find_file("snap-", false, snap, cap);
    flip(snap, fsize(snap) / 2);
    truncate_log();
    start(s, args);
    cr_assert_eq(digest_of(s, NULL), before, "the previous snapshot + the journal after it");
}

Test(durability, corrupt_snapshot_falls_back_to_the_previous) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    write_some(&s, 1, 10);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "snapshot", "{\"wait\":true}");
    pd_client_destroy(c);
    write_some(&s, 11, 10);
    c = srv_connect(&s);
    call_ok(c, "snapshot", "{\"wait\":true}");
    pd_client_destroy(c);
    write_some(&s, 21, 10);
    char snap[512];
    restart_without_newest_snapshot(&s, args, snap, sizeof snap);
    char *log = file_text(logpath);
    cr_assert(strstr(log, "unusable") && strstr(log, snap), "log: %s", log);
    free(log);
    srv_stop(&s);
}

/* Files a kill left behind (here: a third, older snapshot, as when the
 * server died between a background snapshot's end and its prune) are
 * pruned at the next start. */
Test(durability, recovery_prunes_what_a_kill_left) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    for (uint32_t round = 0; round < 2; round++) {
        write_some(&s, round * 10 + 1, 10);
        pd_client_t *c = srv_connect(&s);
        call_ok(c, "snapshot", "{\"wait\":true}");
        pd_client_destroy(c);
    }
    uint64_t before = digest_of(&s, NULL);
    kill9(&s);
    char oldest[512], extra[600];
    find_file("snap-", true, oldest, sizeof(oldest));
    snprintf(extra, sizeof(extra), "%s/snap-00000000000000000000.pds", datadir);
    cr_assert_neq(strcmp(oldest, extra), 0, "the seq-0 snapshot was pruned already");
    char *bytes = file_text(oldest);
    FILE *f = fopen(extra, "wb");
    cr_assert(f);
    fwrite(bytes, 1, (size_t)fsize(oldest), f);
    fclose(f);
    free(bytes);
    start(&s, args);
    cr_assert_eq(digest_of(&s, NULL), before);
    cr_assert_neq(access(extra, F_OK), 0, "the third snapshot is still there after a start");
    cr_assert_eq(access(oldest, F_OK), 0, "the previous snapshot was pruned too");
    srv_stop(&s);
}

Test(durability, locked_directory_is_refused) {
    const char *args[] = {NULL};
    srv_t s;
    start(&s, args);
    truncate_log();
    int st = run_refused(args);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *log = file_text(logpath);
    char pid[64];
    snprintf(pid, sizeof(pid), "pid %d", (int)s.pid);
    cr_assert(strstr(log, "in use") && strstr(log, pid), "log: %s", log);
    free(log);
    srv_stop(&s);
}

Test(durability, missing_directory_is_created) {
    snprintf(datadir, sizeof(datadir), "%s/a/b/c", tmpdir);
    const char *args[] = {"--fsync", "no", NULL};
    srv_t s;
    start(&s, args);
    write_some(&s, 1, 3);
    srv_stop(&s);
    struct stat sb;
    cr_assert_eq(stat(datadir, &sb), 0);
    start(&s, args);
    cr_assert_eq(volunteers_of(&s), 3);
    srv_stop(&s);
}

Test(durability, everysec_survives_kill9) {
    /* A process crash (not a power cut) loses nothing under everysec or
     * no: write() happened before the reply. */
    for (int k = 0; k < 2; k++) {
        const char *args[] = {"--fsync", k ? "no" : "everysec", NULL};
        srv_t s;
        start(&s, args);
        write_some(&s, (uint32_t)k * 100 + 1, 20);
        uint64_t d = digest_of(&s, NULL);
        kill9(&s);
        start(&s, args);
        cr_assert_eq(digest_of(&s, NULL), d, "fsync %s", args[1]);
        srv_stop(&s);
    }
}

Test(durability, journaled_ticks_replay_to_the_same_digest) {
    /* Offers expire after 1 s; with nobody else to ask, each order then
     * expires too. Those changes come from ticks, not requests: without
     * tick records the replay would leave the offers live. */
    char ini[400];
    write_ini(ini, sizeof(ini), "short.ini", "[dispatch]\noffer_timeout_s = 1\n");
    const char *args[] = {"--fsync", "always", "--config", ini, "--tick-ms", "20", NULL};
    srv_t s;
    start(&s, args);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],\"capacity\":10}");
    for (int o = 1; o <= 5; o++) {
        char j[256];
        snprintf(j, sizeof(j),
                 "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
                 "\"dispatch\":true,\"ignore_schedule\":true}",
                 o);
        call_ok(c, "order.create", j);
    }
    long long deadline = now_ms() + 10000;
    for (;;) {
        pd_msg_t r = call_ok(c, "order.get", "{\"id\":5}");
        if (strcmp(map_str(&r.result, "state"), "expired") == 0) break;
        cr_assert(now_ms() < deadline, "the offers never expired");
        usleep(50000);
    }
    pd_client_destroy(c);
    cr_assert_geq(stat_of(&s, "persistence", "tick_records"), 1);
    uint64_t before = digest_of(&s, NULL);
    kill9(&s);
    start(&s, args);
    cr_assert_eq(digest_of(&s, NULL), before, "ticks replayed");
    c = srv_connect(&s);
    pd_msg_t r = call_ok(c, "order.get", "{\"id\":3}");
    cr_assert_str_eq(map_str(&r.result, "state"), "expired");
    pd_client_destroy(c);
    srv_stop(&s);
}

/* An offer answered before its deadline leaves that deadline in the
 * engine's heap (stale entries are skipped when popped). When it passes
 * while another offer is live, the tick finds nothing due: no offer
 * expires, nothing changes, so no tick record goes to the journal (and
 * no sync under --fsync always). Only order 2's own expiry is one. */
Test(durability, answered_offers_leave_no_tick_records) {
    char ini[400];
    write_ini(ini, sizeof(ini), "two.ini", "[dispatch]\noffer_timeout_s = 2\n");
    const char *args[] = {"--fsync", "always", "--config", ini, "--tick-ms", "20", NULL};
    srv_t s;
    start(&s, args);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}");
    call_ok(c, "volunteer.upsert",
            "{\"id\":2,\"lat\":30.601,\"lon\":114.3,\"skills\":[\"sanitation\"]}");
    call_ok(c, "order.create",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
            "\"ignore_schedule\":true}");
    call_ok(c, "order.accept", "{\"id\":1,\"volunteer\":1}");
    /* order 2's offer (to volunteer 2, the only one free) lapses a second
     * after order 1's answered one would have */
    usleep(1000000);
    call_ok(c, "order.create",
            "{\"id\":2,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
            "\"ignore_schedule\":true}");
    long long deadline = now_ms() + 10000;
    for (;;) {
        pd_msg_t r = call_ok(c, "order.get", "{\"id\":2}");
        if (strcmp(map_str(&r.result, "state"), "expired") == 0) break;
        cr_assert(now_ms() < deadline, "order 2's offer never expired");
        usleep(50000);
    }
    pd_client_destroy(c);
    cr_assert_eq(stat_of(&s, "persistence", "tick_records"), 1,
                 "a tick that changed nothing was journaled");
    uint64_t before = digest_of(&s, NULL);
    kill9(&s);
    start(&s, args);
    cr_assert_eq(digest_of(&s, NULL), before);
    srv_stop(&s);
}

/* A mobilisation that marks nobody is a read: not journaled (so it does
 * not wait for a sync). One that marks volunteers notified is a write,
 * and the marks survive a kill -9. */
Test(durability, only_marking_mobilisations_are_journaled) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"]}");
    long long r0 = stat_of(&s, "persistence", "records");
    static const char *const reads[] = {
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":1000}",
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":1000,\"mark_notified\":false}",
        "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":1000,\"mark_notified\":null}",
    };
    for (int i = 0; i < 3; i++) {
        pd_msg_t m = call_ok(c, "match.mobilize", reads[i]);
        cr_assert_eq(map_int(&m.result, "count"), 1);
    }
    cr_assert_eq(stat_of(&s, "persistence", "records"), r0, "a plain mobilisation was journaled");
    call_ok(c, "match.mobilize",
            "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":1000,\"mark_notified\":true}");
    cr_assert_eq(stat_of(&s, "persistence", "records"), r0 + 1);
    pd_client_destroy(c);
    kill9(&s);
    wait_unlocked();
    start(&s, args);
    c = srv_connect(&s);
    pd_msg_t g = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&g.result, "notified_count"), 1);
    pd_client_destroy(c);
    srv_stop(&s);
}

/* SIGTERM while --load-volunteers runs is a clean stop: the load
 * finishes, the server stops with exit 0, and every volunteer is there
 * at the next start (it was killed half way through the load, before). */
Test(durability, sigterm_during_load_is_a_clean_stop) {
    char csv[400], cmd[1200];
    snprintf(csv, sizeof(csv), "%s/v.csv", tmpdir);
    snprintf(cmd, sizeof(cmd), "'%s' -q --volunteers 300000 -o '%s'",
             binary_path("data/paidan-gen"), csv);
    cr_assert_eq(system(cmd), 0, "paidan-gen failed");
    const char *args[] = {"--load-volunteers", csv, "--fsync", "everysec", NULL};
    int fd;
    pid_t pid = spawn_server(args, &fd);
    /* the progress line comes at 250,000: signal in the middle of the load */
    long long deadline = now_ms() + 60000;
    for (;;) {
        char *log = file_text(logpath);
        bool mid = log && strstr(log, "volunteers so far");
        free(log);
        if (mid) break;
        int status;
        cr_assert(waitpid(pid, &status, WNOHANG) == 0, "the server exited during the load");
        cr_assert(now_ms() < deadline, "no progress line from the load");
        usleep(2000);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d after SIGTERM", status);
    wait_unlocked();
    srv_t s;
    start(&s, NULL);
    cr_assert_eq(volunteers_of(&s), 300000);
    srv_stop(&s);
}

/* A SIGHUP while the server stops (a reload racing `systemctl stop`,
 * logrotate) changes nothing: the stop goes on to exit 0. Closing the
 * signal handle gave SIGHUP back its default action, so one in the last
 * moments killed the server before it had closed the journal. */
Test(durability, sighup_while_stopping_is_ignored) {
    char csv[400], cmd[1200];
    snprintf(csv, sizeof(csv), "%s/v.csv", tmpdir);
    snprintf(cmd, sizeof(cmd), "'%s' -q --volunteers 300000 -o '%s'",
             binary_path("data/paidan-gen"), csv);
    cr_assert_eq(system(cmd), 0, "paidan-gen failed");
    const char *args[] = {"--load-volunteers", csv, "--fsync", "everysec", NULL};
    for (int round = 0; round < 3; round++) {
        srv_t s;
        start(&s, args);
        kill(s.pid, SIGTERM);
        /* SIGHUP after SIGHUP until it is gone */
        int status = 0;
        long long deadline = now_ms() + 60000;
        while (waitpid(s.pid, &status, WNOHANG) == 0) {
            cr_assert(now_ms() < deadline, "the server did not stop");
            kill(s.pid, SIGHUP);
            usleep(200);
        }
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "round %d: status %d (signal %d) after SIGTERM and SIGHUPs", round, status,
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        wait_unlocked();
        args[0] = "--fsync"; /* the volunteers are in the data directory now */
        args[1] = "everysec";
        args[2] = NULL;
    }
}

Test(durability, config_change_is_carried_over_or_refused) {
    const char *plain[] = {"--fsync", "no", NULL};
    srv_t s;
    start(&s, plain);
    write_some(&s, 1, 10);
    srv_stop(&s);

    /* Another grab width: the state is carried over and snapshotted. */
    char ini[400];
    write_ini(ini, sizeof(ini), "grab.ini", "[dispatch]\ngrab_width = 7\n");
    const char *grab[] = {"--fsync", "no", "--config", ini, NULL};
    truncate_log();
    start(&s, grab);
    cr_assert_eq(volunteers_of(&s), 10);
    pd_client_t *c = srv_connect(&s);
    pd_msg_t r = call_ok(c, "config.get", "");
    cr_assert_eq(map_int(&r.result, "grab_width"), 7, "the new configuration is in force");
    pd_client_destroy(c);
    char *log = file_text(logpath);
    cr_assert(strstr(log, "carrying it over"), "log: %s", log);
    free(log);
    uint64_t dig = digest_of(&s, NULL);
    kill9(&s);
    start(&s, grab); /* no change this time */
    cr_assert_eq(digest_of(&s, NULL), dig);
    srv_stop(&s);

    /* A configuration without the skill the volunteers have: refused. */
    write_ini(ini, sizeof(ini), "skills.ini", "[skills]\nnames = tutoring\n");
    const char *few[] = {"--config", ini, NULL};
    truncate_log();
    int st = run_refused(few);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
    log = file_text(logpath);
    cr_assert(strstr(log, "cannot carry the state over"), "log: %s", log);
    free(log);
}

/* A configuration change is a journal record, not only a snapshot: if the
 * snapshot taken under the new configuration is lost, the recovery from
 * the one before replays the older records under the old configuration
 * and the newer ones under the new. */
Test(durability, config_change_survives_losing_its_snapshot) {
    const char *plain[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, plain);
    write_some(&s, 1, 10);
    srv_stop(&s); /* a clean stop: the restart snapshots at the same seq */

    char ini[400];
    write_ini(ini, sizeof(ini), "slow.ini",
              "[speeds]\nwalk_kmh = 1.0\n[skills]\nadd = flood-rescue\n");
    const char *slow[] = {"--fsync", "always", "--config", ini, NULL};
    start(&s, slow);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "volunteer.upsert",
            "{\"id\":500,\"lat\":30.7,\"lon\":114.3,\"skills\":[\"flood-rescue\"],"
            "\"mode\":\"walk\"}");
    /* ~450 m away: a walker at 4.5 km/h is in reach, at 1 km/h not */
    pd_msg_t r = call_ok(c, "order.create",
                         "{\"id\":500,\"lat\":30.704,\"lon\":114.3,\"skills\":[\"flood-rescue\"]}");
    cr_assert_str_eq(map_str(&r.result, "state"), "expired");
    pd_client_destroy(c);
    char snap[512];
    restart_without_newest_snapshot(&s, slow, snap, sizeof snap);
    c = srv_connect(&s);
    r = call_ok(c, "order.get", "{\"id\":500}");
    cr_assert_str_eq(map_str(&r.result, "state"), "expired");
    r = call_ok(c, "volunteer.get", "{\"id\":500}");
    pd_client_destroy(c);
    char *log = file_text(logpath);
    cr_assert(strstr(log, "unusable") && strstr(log, "switching to it"), "log: %s", log);
    free(log);
    srv_stop(&s);
}

Test(durability, import_is_durable_before_its_reply) {
    const char *args[] = {"--fsync", "always", NULL};
    srv_t s;
    start(&s, args);
    char vpath[4096], opath[4096], j[8400];
    snprintf(vpath, sizeof(vpath), "%s/data/sample/county-volunteers.csv", getenv("PD_SOURCE_DIR"));
    snprintf(opath, sizeof(opath), "%s/data/sample/county-orders.csv", getenv("PD_SOURCE_DIR"));
    pd_client_t *c = srv_connect(&s);
    snprintf(j, sizeof(j), "{\"path\":\"%s\"}", vpath);
    pd_msg_t r = call_ok(c, "import", j);
    long long nv = map_int(&r.result, "imported");
    cr_assert_gt(nv, 100);
    cr_assert_gt(map_int(&r.result, "seq"), 0, "a snapshot made it durable");
    snprintf(j, sizeof(j), "{\"path\":\"%s\",\"kind\":\"orders\"}", opath);
    r = call_ok(c, "import", j);
    long long no = map_int(&r.result, "imported");
    cr_assert_gt(no, 100);
    call_err(c, "import", "{\"path\":\"/nonexistent.csv\"}", PD_ERR_IO);
    call_err(c, "import", "{\"path\":\"x\",\"kind\":\"teams\"}", PD_ERR_BAD_ARG);
    call_err(c, "import", "{\"path\":\"/dev/zero\"}", PD_ERR_BAD_ARG);
    call_err(c, "import", "{\"path\":\"/tmp\"}", PD_ERR_BAD_ARG);
    pd_client_destroy(c);
    uint64_t before = digest_of(&s, NULL);
    kill9(&s);
    start(&s, args);
    cr_assert_eq(digest_of(&s, NULL), before);
    cr_assert_eq(volunteers_of(&s), nv);
    cr_assert_eq(stat_of(&s, "engine", "orders"), no);
    srv_stop(&s);
}

/* A connection that pipelines more than a turn's frames (64) is resumed
 * by an idle handle, before the loop polls; the replies of its last turn
 * wait for the journal's commit at the end of that iteration, which must
 * not wait for the poll to see the next timer (the tick, a minute away
 * here): it used to, and each such batch stalled until the next tick. */
Test(durability, a_resumed_connection_is_answered_without_waiting_for_a_timer) {
    const char *args[] = {"--fsync", "everysec", "--tick-ms", "60000", NULL};
    srv_t s;
    start(&s, args);
    pd_client_t *c = srv_connect(&s);
    pd_client_set_timeout(c, 10000);
    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < 200; i++) {
            char j[160];
            snprintf(j, sizeof(j),
                     "{\"id\":%u,\"lat\":%.4f,\"lon\":114.3,\"skills\":[\"sanitation\"]}", i + 1,
                     30.6 + round * 0.001);
            size_t len;
            const char *p = params_json(j, &len);
            uint32_t id;
            cr_assert_eq(pd_client_send(c, "volunteer.upsert", p, len, &id), PD_OK);
        }
        cr_assert_eq(pd_client_flush(c), PD_OK);
        for (int i = 0; i < 200; i++) {
            pd_msg_t m;
            cr_assert_eq(pd_client_read(c, &m), PD_OK, "round %d, reply %d: %s", round, i,
                         pd_client_last_error(c));
            cr_assert_eq(m.code, 0);
        }
    }
    pd_client_destroy(c);
    srv_stop(&s);
}

/* Orders dropped by --order-retention stay dropped after a crash: the
 * purge is journaled like a client's order.purge, so a recovery replays it
 * and reaches the same digest. */
Test(durability, retention_purge_survives_kill9) {
    const char *args[] = {"--fsync", "always", "--order-retention", "0.00002", "--tick-ms",
                          "50",      NULL}; /* 1.7 s */
    srv_t s;
    start(&s, args);
    pd_client_t *c = srv_connect(&s);
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],\"capacity\":5}");
    for (int i = 1; i <= 3; i++) {
        char j[160];
        snprintf(j, sizeof j,
                 "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
                 "\"dispatch\":false}",
                 i);
        call_ok(c, "order.create", j);
    }
    call_ok(c, "order.cancel", "{\"id\":1}");
    call_ok(c, "order.cancel", "{\"id\":2}");
    /* wait for the retention to drop the two cancelled ones */
    long long deadline = now_ms() + 20000;
    for (;;) {
        pd_msg_t m = call(c, "order.get", "{\"id\":2}");
        if (m.code == PD_ERR_NOT_FOUND) break;
        cr_assert_lt(now_ms(), deadline, "order 2 was not purged");
        usleep(100000);
    }
    call_err(c, "order.get", "{\"id\":1}", PD_ERR_NOT_FOUND);
    pd_msg_t m = call_ok(c, "order.get", "{\"id\":3}"); /* open: kept */
    cr_assert_str_eq(map_str(&m.result, "state"), "created");
    cr_assert_eq(stat_of(&s, "counters", "orders_purged"), 2);
    pd_client_destroy(c);
    uint64_t before = digest_of(&s, NULL);
    kill9(&s);
    wait_unlocked();
    const char *plain[] = {"--fsync", "always", NULL}; /* no retention: only the journal purges */
    start(&s, plain);
    cr_assert_eq(digest_of(&s, NULL), before);
    c = srv_connect(&s);
    call_err(c, "order.get", "{\"id\":1}", PD_ERR_NOT_FOUND);
    call_ok(c, "order.get", "{\"id\":3}");
    pd_client_destroy(c);
    srv_stop(&s);
}
