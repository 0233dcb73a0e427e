/* test_replica.c -- replication through NATS JetStream (api/replicate.c)
 * with real processes: a nats-server, a primary paidan-server --replicate
 * and replicas --follow, all on 127.0.0.1.
 *
 * What must hold (docs/operations-server.md, "Replicas"):
 *   - a replica that has applied record N has the primary's state at N:
 *     the same digest, the same match.nearby answers, the same order views;
 *     records of every kind cross the stream (the engine configuration, a
 *     CSV import, commands, the primary's ticks);
 *   - a replica refuses writes (READ_ONLY) and changes nothing;
 *   - a replica killed, a replica from a snapshot copy, NATS killed, the
 *     primary killed, a new primary taking over on an empty data directory:
 *     each ends with the replica at the primary's digest, the stream one
 *     message per journal record (no duplicate, no gap);
 *   - a data directory with another history than the stream's is refused,
 *     whichever of the two is longer, and the stream is left alone;
 *   - settings that do not go together are refused at start and by
 *     --check-config;
 *   - a replica's subscribers get the events of the records it applies,
 *     the primary's tick expiries included.
 *
 * Each test runs its own nats-server (a port it picks, its store under the
 * test's temporary directory), killed with the test (PR_SET_PDEATHSIG).
 * Server logs follow helper.h (PD_TEST_LOG); the nats-server logs are
 * appended to Testing/nats-server.log under PD_TEST_LOG. Set PD_SEED to
 * replay the write mix of converges_on_a_county.
 */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"
#include "test_rng.h"

#ifndef PD_NATS_SERVER
#define PD_NATS_SERVER "nats-server-NOTFOUND"
#endif

/* ------------------------------------------------------------- harness */

static char tmpdir[256];
static char ini[320]; /* the engine configuration every primary gets */

static struct {
    pid_t pid;     /* 0 when not running */
    int port;      /* its client port (kept over a restart) */
    int starts;    /* log files nats-1.log, nats-2.log, ... */
    char dir[300]; /* its JetStream store */
    char url[64];
} nats;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void nats_kill(int sig) {
    if (nats.pid <= 0) return;
    kill(nats.pid, sig);
    int status;
    waitpid(nats.pid, &status, 0);
    nats.pid = 0;
}

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pd-test-replica-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
    memset(&nats, 0, sizeof nats);
    snprintf(nats.dir, sizeof nats.dir, "%s/js", tmpdir);
    /* offers lapse after 1 s, so the primary's tick journals expiries */
    snprintf(ini, sizeof ini, "%s/engine.ini", tmpdir);
    FILE *f = fopen(ini, "w");
    cr_assert(f);
    fputs("[dispatch]\noffer_timeout_s = 1\n", f);
    fclose(f);
}

static void teardown(void) {
    nats_kill(SIGKILL);
    if (getenv("PD_TEST_LOG") && getenv("PD_BINARY_DIR")) {
        FILE *out = fopen(binary_path("Testing/nats-server.log"), "a");
        for (int i = 1; out && i <= nats.starts; i++) {
            char path[320];
            snprintf(path, sizeof path, "%s/nats-%d.log", tmpdir, i);
            char *log = file_text(path);
            fprintf(out, "==== %s\n%s", path, log);
            free(log);
        }
        if (out) fclose(out);
    }
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(replica, .init = setup, .fini = teardown, .timeout = 60);

/* Start nats-server with JetStream on port (-1: one it picks) and wait
 * until it is ready. The port is read from its own log, so the test never
 * talks to another process's server. */
static void nats_start(int port) {
    cr_assert(access(PD_NATS_SERVER, X_OK) == 0,
              "nats-server not found (CMake looked for it: '%s'): install it (scripts/deps.sh "
              "does) and run cmake again",
              PD_NATS_SERVER);
    char log[320], portarg[16];
    snprintf(log, sizeof log, "%s/nats-%d.log", tmpdir, ++nats.starts);
    snprintf(portarg, sizeof portarg, "%d", port);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execl(PD_NATS_SERVER, "nats-server", "-js", "-a", "127.0.0.1", "-p", portarg, "-sd",
              nats.dir, "-l", log, (char *)NULL);
        _exit(127);
    }
    nats.pid = pid;
    long long deadline = now_ms() + 10000;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            nats.pid = 0;
            char *text = file_text(log);
            cr_assert_fail("nats-server exited at start (status %d): %s", status, text);
        }
        char *text = file_text(log);
        static const char listening[] = "client connections on 127.0.0.1:";
        const char *l = strstr(text, listening);
        bool ready = l && strstr(text, "Server is ready");
        if (ready) nats.port = atoi(l + strlen(listening));
        free(text);
        if (ready) break;
        cr_assert(now_ms() < deadline, "nats-server not ready after 10 s (%s)", log);
        usleep(20000);
    }
    cr_assert(port < 0 || nats.port == port);
    snprintf(nats.url, sizeof nats.url, "nats://127.0.0.1:%d", nats.port);
}

/* The stream as NATS has it: message count and last stream sequence. */
static void stream_info(const char *stream, uint64_t *msgs, uint64_t *last) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(natsConnection_ConnectTo(&nc, nats.url), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
    cr_assert_eq(s, NATS_OK, "stream %s: %s (%d)", stream, natsStatus_GetText(s), (int)jerr);
    *msgs = si->State.Msgs;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* A stream message's journal record: its seq and type (the 18-byte
 * header api/replicate.h describes: seq, timestamp, type, little-endian). */
#define JREC_CONFIG 5 /* PD_JREC_CONFIG, engine/include/paidan/journal.h */

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Every message of stream "paidan", 1..n: message i holds journal record
 * i, so the stream has each record once, in order. With type, the type of
 * the last one. */
static void stream_walk(uint64_t n, int *type) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, nats.url), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    for (uint64_t i = 1; i <= n; i++) {
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetMsg(&m, js, "paidan", i, NULL, &jerr);
        cr_assert_eq(s, NATS_OK, "stream message %" PRIu64 ": %s", i, natsStatus_GetText(s));
        const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
        cr_assert_geq(natsMsg_GetDataLength(m), 18);
        cr_assert_eq(le64(d), i, "stream message %" PRIu64 " holds record %" PRIu64, i, le64(d));
        if (type && i == n) *type = d[16] | d[17] << 8;
        natsMsg_Destroy(m);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* Start a primary on dir (under tmpdir) replicating to nats, with the
 * engine configuration of `ini` and more args. */
static void primary_start(srv_t *s, const char *dir, const char *const *more) {
    char path[320];
    snprintf(path, sizeof path, "%s/%s", tmpdir, dir);
    const char *argv[32] = {"--data-dir", path, "--replicate", nats.url,
                            "--config",   ini,  "--tick-ms",   "50"};
    int n = 8;
    for (; more && *more && n < 31; more++) argv[n++] = *more;
    argv[n] = NULL;
    srv_start(s, argv);
}

static void replica_start(srv_t *s, const char *const *more) {
    const char *argv[32] = {"--follow", nats.url};
    int n = 2;
    for (; more && *more && n < 31; more++) argv[n++] = *more;
    argv[n] = NULL;
    srv_start(s, argv);
}

/* Run paidan-server with args, its log to log (truncated first); it must
 * exit within 10 s. Returns the wait status. */
static int run_refused(const char *const *args, const char *log) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    pid_t pid = srv_spawn(args, log, &fd);
    int status = 0;
    long long deadline = now_ms() + 10000;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(fd);
            char *text = file_text(log);
            cr_assert_fail("paidan-server was expected to refuse to start; its log:\n%s", text);
        }
        usleep(10000);
    }
    close(fd);
    return status;
}

static void expect_exit1(const char *const *args, const char *log, const char *says) {
    int status = run_refused(args, log);
    char *text = file_text(log);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s: status %d, log:\n%s", args[0],
              status, text);
    if (says) cr_assert(strstr(text, says), "the log does not say '%s':\n%s", says, text);
    free(text);
}

static void kill9(srv_t *s) {
    int status = srv_stop_sig(s, SIGKILL);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);
}

/* ------------------------------------------------------------- reading */

typedef struct dg_s {
    uint64_t digest, seq;
} dg_t;

static dg_t digest_of(const srv_t *s) {
    pd_client_t *c = srv_connect(s);
    pd_msg_t m = call_ok(c, "digest", "");
    dg_t d = {(uint64_t)map_int(&m.result, "digest"), (uint64_t)map_int(&m.result, "seq")};
    pd_client_destroy(c);
    return d;
}

/* stats.replication.<key>: an integer, or a bool as 0/1. */
static long long repl_stat(const srv_t *s, const char *key) {
    pd_client_t *c = srv_connect(s);
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *r = pd_client_map_get(&m.result, "replication");
    cr_assert(r, "no stats.replication");
    const msgpack_object *v = pd_client_map_get(r, key);
    cr_assert(v, "no stats.replication.%s", key);
    long long out = v->type == MSGPACK_OBJECT_BOOLEAN ? v->via.boolean : map_int(r, key);
    pd_client_destroy(c);
    return out;
}

static const char *repl_str(const srv_t *s, const char *key) {
    static char buf[512];
    pd_client_t *c = srv_connect(s);
    pd_msg_t m = call_ok(c, "stats", "");
    const msgpack_object *r = pd_client_map_get(&m.result, "replication");
    cr_assert(r, "no stats.replication");
    snprintf(buf, sizeof buf, "%s", map_str(r, key));
    pd_client_destroy(c);
    return buf;
}

/* Wait (at most timeout_ms) until the replica has applied the record the
 * primary is at, then assert the digests are equal. Returns the pair. */
static dg_t converge(const srv_t *p, const srv_t *r, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        dg_t a = digest_of(p); /* first: the replica can only catch up with it */
        dg_t b = digest_of(r);
        if (b.seq == a.seq) {
            cr_assert_eq(b.digest, a.digest,
                         "at record %" PRIu64 " the replica's digest %016" PRIx64
                         " differs from the primary's %016" PRIx64,
                         a.seq, b.digest, a.digest);
            cr_assert_not(repl_stat(r, "halted"));
            return a;
        }
        if (now_ms() > deadline) {
            cr_assert_fail("the replica is at record %" PRIu64 ", the primary at %" PRIu64
                           " after %d ms (replica halted %lld, error '%s')",
                           b.seq, a.seq, timeout_ms, repl_stat(r, "halted"), repl_str(r, "error"));
        }
        usleep(20000);
    }
}

/* match.nearby with json on both: the same ids in the same order. Returns
 * how many. */
static size_t same_nearby(const srv_t *p, const srv_t *r, const char *json) {
    pd_client_t *a = srv_connect(p), *b = srv_connect(r);
    pd_msg_t ma = call_ok(a, "match.nearby", json);
    pd_msg_t mb = call_ok(b, "match.nearby", json);
    cr_assert_eq(ma.result.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(mb.result.type, MSGPACK_OBJECT_ARRAY);
    size_t n = ma.result.via.array.size;
    cr_assert_eq(mb.result.via.array.size, n,
                 "match.nearby %s: %zu on the primary, %u on the replica", json, n,
                 mb.result.via.array.size);
    for (size_t i = 0; i < n; i++) {
        long long ia = map_int(&ma.result.via.array.ptr[i], "id");
        long long ib = map_int(&mb.result.via.array.ptr[i], "id");
        cr_assert_eq(ia, ib, "match.nearby %s: #%zu is %lld on the primary, %lld on the replica",
                     json, i, ia, ib);
    }
    pd_client_destroy(a);
    pd_client_destroy(b);
    return n;
}

/* order.get on both: the same order view, field for field. Returns its
 * state (static buffer). */
static const char *same_order(const srv_t *p, const srv_t *r, long long id) {
    static char state[32];
    char json[64];
    snprintf(json, sizeof json, "{\"id\":%lld}", id);
    pd_client_t *a = srv_connect(p), *b = srv_connect(r);
    pd_msg_t ma = call_ok(a, "order.get", json);
    pd_msg_t mb = call_ok(b, "order.get", json);
    if (!msgpack_object_equal(ma.result, mb.result)) {
        char ta[4096], tb[4096];
        msgpack_object_print_buffer(ta, sizeof ta, ma.result);
        msgpack_object_print_buffer(tb, sizeof tb, mb.result);
        cr_assert_fail("order %lld differs:\nprimary %s\nreplica %s", id, ta, tb);
    }
    snprintf(state, sizeof state, "%s", map_str(&ma.result, "state"));
    pd_client_destroy(a);
    pd_client_destroy(b);
    return state;
}

/* The volunteer holding a live offer in an order view, or -1. */
static long long live_offer(const msgpack_object *view) {
    const msgpack_object *offers = pd_client_map_get(view, "offers");
    cr_assert(offers && offers->type == MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < offers->via.array.size; i++) {
        const msgpack_object *o = &offers->via.array.ptr[i];
        if (obj_str_eq(pd_client_map_get(o, "state"), "live")) return map_int(o, "volunteer");
    }
    return -1;
}

static void upsert(pd_client_t *c, long long id, double lat, double lon, const char *skill) {
    char json[200];
    snprintf(json, sizeof json, "{\"id\":%lld,\"lat\":%.6f,\"lon\":%.6f,\"skills\":[\"%s\"]}", id,
             lat, lon, skill);
    call_ok(c, "volunteer.upsert", json);
}

/* n volunteers from id first on, around (30.6, 114.3). */
static void some_volunteers(pd_client_t *c, long long first, int n) {
    static const char *skills[] = {"tutoring", "sanitation", "elder-care"};
    for (int i = 0; i < n; i++)
        upsert(c, first + i, 30.597 + 0.0001 * (i % 60), 114.297 + 0.0001 * (i / 60),
               skills[i % 3]);
}

/* n location pings for volunteers first..first+span-1 (step varies them). */
static void some_moves(pd_client_t *c, long long first, int span, int n, int step) {
    for (int i = 0; i < n; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":%lld,\"lat\":%.6f,\"lon\":%.6f}", first + i % span,
                 30.597 + 0.00002 * ((i * 7 + step) % 300),
                 114.297 + 0.00002 * ((i * 13 + step) % 300));
        call_ok(c, "volunteer.update", json);
    }
}

/* An order near (30.6, 114.3), accepted and completed. */
static void served_order(pd_client_t *c, long long id, const char *skill) {
    char json[200];
    snprintf(
        json, sizeof json,
        "{\"id\":%lld,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"%s\"],\"ignore_schedule\":true}", id,
        skill);
    pd_msg_t m = call_ok(c, "order.create", json);
    long long v = live_offer(&m.result);
    cr_assert_geq(v, 0, "order %lld was not offered", id);
    snprintf(json, sizeof json, "{\"id\":%lld,\"volunteer\":%lld}", id, v);
    call_ok(c, "order.accept", json);
    snprintf(json, sizeof json, "{\"id\":%lld,\"minutes_served\":30}", id);
    call_ok(c, "order.complete", json);
}

/* ------------------------------------------------------ 1. converge */

/* The ids of data/sample/county-volunteers.csv, into ids (cap); returns
 * how many. */
static size_t county_ids(const char *csv, long long *ids, size_t cap) {
    FILE *f = fopen(csv, "r");
    cr_assert(f, "cannot open %s", csv);
    char line[1024];
    size_t n = 0;
    cr_assert(fgets(line, sizeof line, f)); /* header */
    while (n < cap && fgets(line, sizeof line, f)) ids[n++] = atoll(line);
    fclose(f);
    return n;
}

static void compare_nearby(const srv_t *p, const srv_t *r) {
    cr_assert_gt(
        same_nearby(p, r, "{\"lat\":30.6,\"lon\":114.3,\"k\":30,\"ignore_schedule\":true}"), 0,
        "an empty answer compares nothing");
    cr_assert_gt(same_nearby(p, r,
                             "{\"lat\":30.52,\"lon\":114.2,\"k\":25,\"ignore_schedule\":true,"
                             "\"skills\":[\"sanitation\"],\"minutes\":40}"),
                 0);
    same_nearby(p, r,
                "{\"lat\":30.7,\"lon\":114.45,\"k\":25,\"ignore_schedule\":true,"
                "\"policy\":\"balanced\",\"minutes\":60}");
    same_nearby(p, r,
                "{\"lat\":30.45,\"lon\":114.35,\"k\":50,\"ignore_schedule\":true,"
                "\"include_unavailable\":true,\"minutes\":60}");
}

Test(replica, converges_on_a_county) {
    uint64_t seed = pd_test_seed();
    cr_log_info("replica: seed %" PRIu64 " (PD_SEED replays)", seed);
    pd_rng_t rng;
    pd_rng_seed(&rng, seed);
    char csv[4096];
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src, "PD_SOURCE_DIR is not set (run through ctest)");
    snprintf(csv, sizeof csv, "%s/data/sample/county-volunteers.csv", src);
    static long long ids[6000];
    size_t n_ids = county_ids(csv, ids, 6000);
    cr_assert_gt(n_ids, 1000);

    nats_start(-1);
    srv_t p, r1, r2;
    const char *load[] = {"--load-volunteers", csv, NULL};
    primary_start(&p, "p", load);
    /* before the writes; its tick runs more often than the primary's, so
     * an offer would lapse on the replica first if it expired any itself */
    const char *fast_tick[] = {"--tick-ms", "10", NULL};
    replica_start(&r1, fast_tick);
    pd_client_t *c = srv_connect(&p);

    /* Location pings, status changes, new and removed volunteers. */
    for (int i = 0; i < 400; i++) {
        char json[160];
        long long id = ids[pd_rng_below(&rng, n_ids)];
        int kind = (int)pd_rng_below(&rng, 10);
        if (kind < 8)
            snprintf(json, sizeof json, "{\"id\":%lld,\"lat\":%.6f,\"lon\":%.6f}", id,
                     30.40 + 0.4 * pd_rng_unit(&rng), 114.05 + 0.5 * pd_rng_unit(&rng));
        else
            snprintf(json, sizeof json, "{\"id\":%lld,\"status\":\"%s\"}", id,
                     kind == 8 ? "offline" : "online");
        call_ok(c, "volunteer.update", json);
    }
    for (int i = 0; i < 20; i++)
        upsert(c, 900000 + i, 30.5 + 0.01 * i, 114.3, i % 2 ? "tutoring" : "elder-care");
    call_ok(c, "volunteer.remove", "{\"id\":900003}");
    call_ok(c, "volunteer.remove", "{\"id\":900004}");
    converge(&p, &r1, 10000);
    compare_nearby(&p, &r1);

    /* Orders through every path: served and rated, served, cancelled while
     * offered, declined then cancelled once accepted, released then
     * cancelled; a grab order and a team order. */
    static const char *skills[] = {"sanitation", "culture-arts", "elder-care", "theory-policy",
                                   "tutoring"};
    const int n_orders = 30;
    int served = 0;
    for (long long id = 1; id <= n_orders; id++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"id\":%lld,\"lat\":%.6f,\"lon\":%.6f,\"skills\":[\"%s\"],"
                 "\"ignore_schedule\":true,\"minutes\":30%s}",
                 id, 30.5 + 0.2 * pd_rng_unit(&rng), 114.2 + 0.2 * pd_rng_unit(&rng),
                 skills[pd_rng_below(&rng, 5)], id % 10 == 6 ? ",\"mode\":\"grab\"" : "");
        pd_msg_t m = call_ok(c, "order.create", json);
        long long v = live_offer(&m.result);
        if (v < 0) continue; /* expired: no candidate */
        char acc[96];
        snprintf(acc, sizeof acc, "{\"id\":%lld,\"volunteer\":%lld}", id, v);
        char idj[64];
        snprintf(idj, sizeof idj, "{\"id\":%lld}", id);
        switch (id % 5) {
            case 0:
            case 1:
                call_ok(c, "order.accept", acc);
                snprintf(json, sizeof json, "{\"id\":%lld,\"minutes_served\":%lld}", id, 20 + id);
                call_ok(c, "order.complete", json);
                if (id % 5 == 0) {
                    snprintf(json, sizeof json, "{\"id\":%lld,\"score\":%lld}", id,
                             1 + (id / 5) % 5);
                    call_ok(c, "order.rate", json);
                }
                served++;
                break;
            case 2:
                call_ok(c, "order.cancel", idj);
                break;
            case 3:
                m = call_ok(c, "order.decline", acc);
                v = live_offer(&m.result);
                if (v >= 0) {
                    snprintf(acc, sizeof acc, "{\"id\":%lld,\"volunteer\":%lld}", id, v);
                    call_ok(c, "order.accept", acc);
                    call_ok(c, "order.cancel", idj);
                }
                break;
            case 4:
                call_ok(c, "order.accept", acc);
                m = call_ok(c, "order.release", acc);
                if (obj_str_eq(pd_client_map_get(&m.result, "state"), "offered"))
                    call_ok(c, "order.cancel", idj);
                break;
        }
    }
    cr_assert_gt(served, 5, "too few orders found a volunteer to compare anything");
    call_ok(c, "order.create",
            "{\"id\":100,\"lat\":30.6,\"lon\":114.3,\"ignore_schedule\":true,\"minutes\":60,"
            "\"slots\":[{\"skills\":[\"sanitation\"],\"need\":2},{\"skills\":[\"elder-care\"]}]}");
    call_ok(c, "order.cancel", "{\"id\":100}");
    /* dispatched later: one by one, and as a batch */
    for (int id = 101; id <= 103; id++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"id\":%d,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"sanitation\"],"
                 "\"ignore_schedule\":true,\"dispatch\":false}",
                 id);
        call_ok(c, "order.create", json);
    }
    pd_msg_t m = call_ok(c, "order.dispatch", "{\"id\":101}");
    long long v = live_offer(&m.result);
    cr_assert_geq(v, 0, "order 101 was not offered");
    char acc[96];
    snprintf(acc, sizeof acc, "{\"id\":101,\"volunteer\":%lld}", v);
    call_ok(c, "order.accept", acc);
    call_ok(c, "order.complete", "{\"id\":101}");
    call_ok(c, "dispatch.batch", "{\"orders\":[102,103]}");
    call_ok(c, "order.cancel", "{\"id\":102}");
    call_ok(c, "order.cancel", "{\"id\":103}");
    call_ok(c, "match.mobilize",
            "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":800,\"mark_notified\":true}");

    /* An order whose offers lapse: two candidates far from the county,
     * each offer expired by the primary's tick, then the order. */
    upsert(c, 910001, 31.2, 115.2, "legal-aid");
    upsert(c, 910002, 31.2005, 115.2005, "legal-aid");
    m = call_ok(c, "order.create",
                "{\"id\":200,\"lat\":31.2,\"lon\":115.2,\"skills\":[\"legal-aid\"],"
                "\"ignore_schedule\":true}");
    cr_assert_geq(live_offer(&m.result), 910001);
    long long deadline = now_ms() + 10000;
    for (;;) {
        m = call_ok(c, "order.get", "{\"id\":200}");
        if (obj_str_eq(pd_client_map_get(&m.result, "state"), "expired")) break;
        cr_assert(now_ms() < deadline, "the primary's tick did not expire order 200");
        usleep(50000);
    }
    cr_assert_geq(stat_of(&p, "persistence", "tick_records"), 2);

    dg_t at = converge(&p, &r1, 10000);
    cr_log_info("replica: converged at record %" PRIu64 ", %d of %d orders served", at.seq, served,
                n_orders);
    compare_nearby(&p, &r1);
    for (long long id = 1; id <= n_orders; id++) same_order(&p, &r1, id);
    same_order(&p, &r1, 100);
    cr_assert_str_eq(same_order(&p, &r1, 101), "completed");
    same_order(&p, &r1, 102);
    same_order(&p, &r1, 103);
    cr_assert_str_eq(same_order(&p, &r1, 200), "expired");
    /* the engine configuration came with the stream, not from a flag */
    pd_client_t *rc = srv_connect(&r1);
    m = call_ok(rc, "config.get", "");
    cr_assert_eq(map_int(&m.result, "offer_timeout_s"), 1);
    pd_client_destroy(rc);

    /* A replica started after everything: the whole stream. */
    replica_start(&r2, NULL);
    dg_t at2 = converge(&p, &r2, 10000);
    cr_assert_eq(at2.seq, at.seq, "the primary wrote nothing since");
    compare_nearby(&p, &r2);
    for (long long id = 1; id <= n_orders; id += 3) same_order(&p, &r2, id);
    same_order(&p, &r2, 200);
    cr_assert_eq(repl_stat(&r2, "applied"), (long long)at.seq);
    cr_assert_eq(repl_stat(&r2, "applied_seq"), (long long)at.seq);
    cr_assert_eq(repl_stat(&r2, "duplicates"), 0);
    cr_assert_eq(repl_stat(&p, "lag_records"), 0);
    cr_assert_eq(repl_stat(&p, "stream_seq"), (long long)at.seq);
    uint64_t msgs, last;
    stream_info("paidan", &msgs, &last);
    cr_assert_eq(msgs, at.seq, "one message per journal record");
    cr_assert_eq(last, at.seq);

    pd_client_destroy(c);
    srv_stop(&r2);
    srv_stop(&r1);
    srv_stop(&p);
}

/* ------------------------------------------------- 2. writes refused */

Test(replica, refuses_writes) {
    cr_assert_eq(PD_ERR_READ_ONLY, 17, "a wire code is stable API");
    nats_start(-1);
    srv_t p, r;
    primary_start(&p, "p", NULL);
    pd_client_t *c = srv_connect(&p);
    some_volunteers(c, 1, 10);
    pd_msg_t m = call_ok(c, "order.create",
                         "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
                         "\"ignore_schedule\":true}");
    long long v = live_offer(&m.result);
    cr_assert_geq(v, 1);
    char acc[64];
    snprintf(acc, sizeof acc, "{\"id\":1,\"volunteer\":%lld}", v);
    call_ok(c, "order.accept", acc);
    replica_start(&r, NULL);
    dg_t before = converge(&p, &r, 10000);

    pd_client_t *rc = srv_connect(&r);
    const char *writes[][2] = {
        {"volunteer.upsert", "{\"id\":50,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}"},
        {"volunteer.update", "{\"id\":2,\"lat\":30.7,\"lon\":114.3}"},
        {"volunteer.remove", "{\"id\":3}"},
        {"order.create", "{\"id\":2,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"]}"},
        {"order.cancel", "{\"id\":1}"},
        {"match.mobilize", "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":500,\"mark_notified\":true}"},
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        m = call_err(rc, writes[i][0], writes[i][1], PD_ERR_READ_ONLY);
        cr_assert(strstr(m.message, writes[i][0]), "the message names the method: %s", m.message);
    }
    /* reads are served */
    call_ok(rc, "volunteer.get", "{\"id\":3}");
    call_ok(rc, "order.get", "{\"id\":1}");
    call_ok(rc, "match.mobilize", "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":500}");
    call_err(rc, "order.get", "{\"id\":2}", PD_ERR_NOT_FOUND);
    call_err(rc, "volunteer.get", "{\"id\":50}", PD_ERR_NOT_FOUND);
    m = call_ok(rc, "volunteer.get", "{\"id\":2}");
    cr_assert_float_eq(map_num(&m.result, "lat"), 30.5971, 1e-9, "the refused ping moved it");
    pd_client_destroy(rc);

    /* nothing changed, on either side */
    dg_t after = digest_of(&r);
    cr_assert_eq(after.seq, before.seq);
    cr_assert_eq(after.digest, before.digest);
    dg_t prim = digest_of(&p);
    cr_assert_eq(prim.seq, before.seq);
    cr_assert_eq(prim.digest, before.digest);
    cr_assert_eq(repl_stat(&r, "applied_seq"), (long long)before.seq);

    pd_client_destroy(c);
    srv_stop(&r);
    srv_stop(&p);
}

/* ------------------------------------------- 3. replica kill -9, restart */

/* NATS, a primary with volunteers 1..n and a replica following it;
 * returns a client of the primary. */
static pd_client_t *pair_start(srv_t *p, srv_t *r, int n) {
    nats_start(-1);
    primary_start(p, "p", NULL);
    pd_client_t *c = srv_connect(p);
    some_volunteers(c, 1, n);
    replica_start(r, NULL);
    return c;
}

Test(replica, replica_killed_and_restarted) {
    srv_t p, r;
    pd_client_t *c = pair_start(&p, &r, 200);
    some_moves(c, 1, 200, 300, 1);
    served_order(c, 1, "tutoring");
    converge(&p, &r, 10000);
    kill9(&r);

    /* the primary goes on; the replica misses all of it */
    some_moves(c, 1, 200, 300, 2);
    served_order(c, 2, "sanitation");
    call_ok(c, "volunteer.remove", "{\"id\":200}");
    replica_start(&r, NULL);
    dg_t at = converge(&p, &r, 10000);
    cr_assert_eq(repl_stat(&r, "applied_seq"), (long long)at.seq);
    cr_assert_eq(repl_stat(&r, "duplicates"), 0);
    same_order(&p, &r, 2);
    cr_assert_gt(
        same_nearby(&p, &r, "{\"lat\":30.6,\"lon\":114.3,\"k\":40,\"ignore_schedule\":true}"), 0);

    /* and keeps following */
    some_moves(c, 1, 150, 100, 3);
    converge(&p, &r, 10000);
    pd_client_destroy(c);
    srv_stop(&r);
    srv_stop(&p);
}

/* ------------------------------------------------ 4. --follow-snapshot */

Test(replica, follows_from_a_snapshot_copy) {
    nats_start(-1);
    srv_t p, r;
    primary_start(&p, "p", NULL);
    pd_client_t *c = srv_connect(&p);
    some_volunteers(c, 1, 300);
    some_moves(c, 1, 300, 200, 1);
    served_order(c, 1, "elder-care");
    pd_msg_t m = call_ok(c, "snapshot", "{\"wait\":true}");
    uint64_t snap_seq = (uint64_t)map_int(&m.result, "seq");
    cr_assert_eq(snap_seq, digest_of(&p).seq, "the snapshot is at the journal's position");

    /* the operator's copy of the primary's newest snapshot */
    char from[400], copy[320];
    snprintf(from, sizeof from, "%s/p/snap-%020" PRIu64 ".pds", tmpdir, snap_seq);
    snprintf(copy, sizeof copy, "%s/copy.pds", tmpdir);
    char *bytes = NULL;
    {
        FILE *f = fopen(from, "rb");
        cr_assert(f, "no %s", from);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        bytes = malloc((size_t)n);
        cr_assert_eq(fread(bytes, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        FILE *g = fopen(copy, "wb");
        cr_assert(g);
        cr_assert_eq(fwrite(bytes, 1, (size_t)n, g), (size_t)n);
        fclose(g);
        free(bytes);
    }

    some_moves(c, 1, 300, 150, 2);
    served_order(c, 2, "tutoring");
    call_ok(c, "volunteer.remove", "{\"id\":9}");
    const char *more[] = {"--follow-snapshot", copy, NULL};
    replica_start(&r, more);
    dg_t at = converge(&p, &r, 10000);
    long long applied = repl_stat(&r, "applied");
    cr_assert_eq(repl_stat(&r, "applied_seq"), (long long)at.seq);
    cr_assert_gt(snap_seq, 300, "the snapshot holds most of the history");
    cr_assert_eq(applied, (long long)(at.seq - snap_seq),
                 "only the records after the snapshot's (%" PRIu64
                 ") were applied: %lld of %" PRIu64,
                 snap_seq, applied, at.seq);
    cr_assert_eq(repl_stat(&r, "duplicates"), 0);
    same_order(&p, &r, 1);
    same_order(&p, &r, 2);
    pd_client_destroy(c);
    srv_stop(&r);
    srv_stop(&p);
}

/* ----------------------------------------------- 5. NATS kill -9, restart */

/* A primary with 100 volunteers and a replica in step with it, then
 * NATS killed: the writes that follow reach neither stream nor replica.
 * Returns NATS's port, for starting it again on the same store. */
static int in_step_then_nats_dies(srv_t *p, srv_t *r, pd_client_t **c) {
    *c = pair_start(p, r, 100);
    converge(p, r, 10000);
    int port = nats.port;
    nats_kill(SIGKILL);
    return port;
}

Test(replica, nats_killed_and_restarted) {
    srv_t p, r;
    pd_client_t *c;
    int port = in_step_then_nats_dies(&p, &r, &c);

    /* replication is asynchronous: the primary takes writes without NATS */
    some_moves(c, 1, 100, 200, 1);
    served_order(c, 1, "tutoring");
    served_order(c, 2, "sanitation");
    dg_t down = digest_of(&p);
    cr_assert_geq(repl_stat(&p, "lag_records"), 200, "the stream cannot have what came since");
    cr_assert_eq(repl_stat(&p, "committed_seq"), (long long)down.seq);
    long long deadline = now_ms() + 5000;
    while (repl_stat(&p, "connected")) {
        cr_assert(now_ms() < deadline, "the primary still says connected 5 s after NATS died");
        usleep(50000);
    }
    cr_assert_lt(digest_of(&r).seq, down.seq);

    nats_start(port); /* the same store */
    deadline = now_ms() + 20000;
    while (repl_stat(&p, "lag_records") != 0) {
        cr_assert(now_ms() < deadline, "lag_records is %lld 20 s after NATS came back (error '%s')",
                  repl_stat(&p, "lag_records"), repl_str(&p, "error"));
        usleep(50000);
    }
    cr_assert_eq(repl_stat(&p, "stream_seq"), repl_stat(&p, "committed_seq"));
    dg_t at = converge(&p, &r, 20000);
    cr_assert_geq(at.seq, down.seq);
    same_order(&p, &r, 2);

    some_moves(c, 1, 100, 50, 2);
    at = converge(&p, &r, 10000);
    uint64_t msgs, last;
    stream_info("paidan", &msgs, &last);
    cr_assert_eq(msgs, at.seq, "one message per journal record");
    cr_assert_eq(last, at.seq);
    stream_walk(at.seq, NULL);
    pd_client_destroy(c);
    srv_stop(&r);
    srv_stop(&p);
}

/* ------------------------------------------ 6. primary kill -9, restart */

Test(replica, primary_killed_and_restarted) {
    srv_t p, r;
    pd_client_t *c = pair_start(&p, &r, 200);

    /* a burst of pipelined pings; the kill lands while it is being
     * journaled and published */
    for (int i = 0; i < 3000; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":%d,\"lat\":%.6f,\"lon\":114.3}", 1 + i % 200,
                 30.55 + 0.00001 * i);
        size_t len;
        const char *params = params_json(json, &len);
        uint32_t id;
        cr_assert_eq(pd_client_send(c, "volunteer.update", params, len, &id), PD_OK);
    }
    cr_assert_eq(pd_client_flush(c), PD_OK);
    for (int i = 0; i < 500; i++) {
        pd_msg_t m;
        cr_assert_eq(pd_client_read(c, &m), PD_OK);
    }
    kill9(&p);
    pd_client_destroy(c);

    primary_start(&p, "p", NULL);
    dg_t at = converge(&p, &r, 10000);
    cr_assert_geq(at.seq, 701, "at least the acknowledged writes");
    c = srv_connect(&p);
    some_moves(c, 1, 200, 100, 1);
    served_order(c, 1, "tutoring");
    at = converge(&p, &r, 10000);
    cr_assert_eq(repl_stat(&p, "lag_records"), 0);

    /* Killed while NATS is down: what it journaled meanwhile never reached
     * the stream, and its restart publishes it from the journal segments. */
    int port = nats.port;
    nats_kill(SIGKILL);
    some_moves(c, 1, 200, 150, 2);
    served_order(c, 2, "sanitation");
    dg_t unpublished = digest_of(&p);
    cr_assert_geq(repl_stat(&p, "lag_records"), 150);
    kill9(&p);
    pd_client_destroy(c);
    nats_start(port);
    primary_start(&p, "p", NULL);
    at = converge(&p, &r, 20000);
    cr_assert_eq(at.seq, unpublished.seq);
    cr_assert_eq(at.digest, unpublished.digest);
    same_order(&p, &r, 2);
    c = srv_connect(&p);
    some_moves(c, 1, 200, 50, 3);
    at = converge(&p, &r, 10000);
    cr_assert_eq(repl_stat(&p, "lag_records"), 0);

    /* the stream: every record once, in order */
    uint64_t msgs, last;
    stream_info("paidan", &msgs, &last);
    cr_assert_eq(msgs, at.seq, "one message per journal record");
    cr_assert_eq(last, at.seq);
    stream_walk(at.seq, NULL);
    srv_t r2;
    replica_start(&r2, NULL);
    converge(&p, &r2, 10000);
    cr_assert_eq(repl_stat(&r2, "applied"), (long long)at.seq);
    cr_assert_eq(repl_stat(&r2, "duplicates"), 0);
    pd_client_destroy(c);
    srv_stop(&r2);
    srv_stop(&r);
    srv_stop(&p);
}

/* ------------------------------------------------------- 7. takeover */

Test(replica, takeover_on_an_empty_data_dir) {
    nats_start(-1);
    srv_t p1, p2, r;
    primary_start(&p1, "p1", NULL);
    pd_client_t *c = srv_connect(&p1);
    some_volunteers(c, 1, 150);
    some_moves(c, 1, 150, 200, 1);
    served_order(c, 1, "tutoring");
    replica_start(&r, NULL);
    dg_t before = converge(&p1, &r, 10000);
    pd_client_destroy(c);
    srv_stop(&p1);

    /* a new machine: an empty data directory, the same stream */
    primary_start(&p2, "p2", NULL);
    dg_t taken = digest_of(&p2);
    /* Its journal starts with the stream's records; a start without a
     * snapshot under the journal then snapshots and records the engine
     * configuration (pd_persist_settle), which changes no state. */
    cr_assert_eq(taken.digest, before.digest, "at %" PRIu64 ", was at %" PRIu64, taken.seq,
                 before.seq);
    if (taken.seq != before.seq) {
        cr_assert_eq(taken.seq, before.seq + 1,
                     "the stream's records were taken: at %" PRIu64 ", not %" PRIu64, taken.seq,
                     before.seq);
        int type = 0;
        stream_walk(taken.seq, &type);
        cr_assert_eq(type, JREC_CONFIG, "record %" PRIu64 " is of type %d", taken.seq, type);
    }
    cr_assert_eq(repl_stat(&p2, "committed_seq"), (long long)taken.seq);
    same_order(&p2, &r, 1);

    /* it writes after them, and the replica follows */
    c = srv_connect(&p2);
    some_moves(c, 1, 150, 100, 2);
    served_order(c, 2, "elder-care");
    dg_t at = converge(&p2, &r, 10000);
    cr_assert_gt(at.seq, taken.seq);
    same_order(&p2, &r, 2);
    stream_walk(at.seq, NULL);
    pd_client_destroy(c);
    srv_stop(&p2);

    /* what it took is in its own journal: it restarts to the same state */
    char dir[320];
    snprintf(dir, sizeof dir, "%s/p2", tmpdir);
    const char *plain[] = {"--data-dir", dir, "--config", ini, NULL};
    srv_start(&p2, plain);
    dg_t again = digest_of(&p2);
    cr_assert_eq(again.seq, at.seq);
    cr_assert_eq(again.digest, at.digest);
    srv_stop(&p2);
    srv_stop(&r);
}

/* ------------------------------------------------ 8. another history */

/* Stream "paidan" is written by a primary on data directory a (n_a
 * volunteers); data directory b by one without --replicate (n_b other
 * volunteers). b started with --replicate must be refused, the stream and
 * b left as they were. */
static void another_history(int n_a, int n_b) {
    nats_start(-1);
    srv_t a, b, r;
    primary_start(&a, "a", NULL);
    pd_client_t *c = srv_connect(&a);
    some_volunteers(c, 1, n_a);
    pd_client_destroy(c);
    replica_start(&r, NULL);
    dg_t stream_at = converge(&a, &r, 10000);
    srv_stop(&a);
    uint64_t msgs0, last0;
    stream_info("paidan", &msgs0, &last0);
    cr_assert_eq(msgs0, stream_at.seq);

    char dir[320], log[320];
    snprintf(dir, sizeof dir, "%s/b", tmpdir);
    snprintf(log, sizeof log, "%s/b.log", tmpdir);
    const char *plain[] = {"--data-dir", dir, "--config", ini, NULL};
    srv_start(&b, plain);
    c = srv_connect(&b);
    some_volunteers(c, 1000, n_b);
    pd_client_destroy(c);
    dg_t b_at = digest_of(&b);
    srv_stop(&b);
    cr_log_info("another history: stream at record %" PRIu64 ", journal at %" PRIu64, stream_at.seq,
                b_at.seq);

    const char *repl[] = {"--data-dir", dir, "--config", ini, "--replicate", nats.url, NULL};
    int status = run_refused(repl, log);
    char *text = file_text(log);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "status %d; log:\n%s", status, text);
    cr_assert(
        strstr(text, "written by another primary") || strstr(text, "refusing to write after it"),
        "the log does not say why:\n%s", text);
    free(text);

    /* the stream, a replica of it and b are as they were */
    uint64_t msgs, last;
    stream_info("paidan", &msgs, &last);
    cr_assert_eq(msgs, msgs0);
    cr_assert_eq(last, last0);
    usleep(300000);
    dg_t now = digest_of(&r);
    cr_assert_eq(now.seq, stream_at.seq);
    cr_assert_eq(now.digest, stream_at.digest);
    cr_assert_not(repl_stat(&r, "halted"));
    srv_stop(&r);
    srv_start(&b, plain);
    dg_t b_now = digest_of(&b);
    cr_assert_eq(b_now.seq, b_at.seq);
    cr_assert_eq(b_now.digest, b_at.digest);
    srv_stop(&b);
}

Test(replica, another_history_shorter_than_the_stream_is_refused) {
    another_history(8, 3);
}

Test(replica, another_history_longer_than_the_stream_is_refused) {
    another_history(3, 8);
}

Test(replica, another_history_as_long_as_the_stream_is_refused) {
    another_history(5, 5);
}

/* ------------------------------------------------ 9. settings refused */

Test(replica, settings_that_do_not_go_together_are_refused) {
    char dir[320], log[320], retention[] = "--order-retention";
    snprintf(dir, sizeof dir, "%s/d", tmpdir);
    snprintf(log, sizeof log, "%s/s.log", tmpdir);
    const char *url = "nats://127.0.0.1:4222"; /* never reached */
    const char *no_dir[] = {"--replicate", url, NULL};
    const char *with_dir[] = {"--follow", url, "--data-dir", dir, NULL};
    const char *snap_alone[] = {"--follow-snapshot", ini, NULL};
    const char *with_load[] = {"--follow", url, "--load-volunteers", ini, NULL};
    const char *with_repl[] = {"--follow", url, "--replicate", url, NULL};
    const char *with_ret[] = {"--follow", url, retention, "30", NULL};
    expect_exit1(no_dir, log, "needs --data-dir");
    expect_exit1(with_dir, log, "--follow makes a read-only replica: --data-dir");
    expect_exit1(snap_alone, log, "--follow-snapshot is a replica's starting state");
    expect_exit1(with_load, log, "--load-volunteers would change its state");
    expect_exit1(with_repl, log, "--replicate would change its state");
    expect_exit1(with_ret, log, "--order-retention would change its state");
    cr_assert_neq(access(dir, F_OK), 0, "a refused replica created its --data-dir");

    /* --check-config says the same */
    const char *const *sets[] = {no_dir, with_dir, snap_alone};
    for (size_t i = 0; i < 3; i++) {
        const char *argv[16];
        int n = 0;
        for (const char *const *a = sets[i]; *a; a++) argv[n++] = *a;
        argv[n++] = "--check-config";
        argv[n] = NULL;
        expect_exit1(argv, log, NULL);
    }

    /* a NATS without the stream; then no NATS at all */
    nats_start(-1);
    const char *no_stream[] = {"--follow", nats.url, "--stream", "other", NULL};
    expect_exit1(no_stream, log, "has no stream other");
    char url2[64];
    snprintf(url2, sizeof url2, "%s", nats.url);
    nats_kill(SIGKILL);
    const char *no_nats_r[] = {"--follow", url2, NULL};
    const char *no_nats_p[] = {"--data-dir", dir, "--replicate", url2, NULL};
    expect_exit1(no_nats_r, log, "cannot connect to NATS");
    expect_exit1(no_nats_p, log, "cannot connect to NATS");
}

/* --------------------------------------------- 10. events on a replica */

static pd_msg_t expect_event(pd_client_t *c, const char *name, long long order) {
    pd_msg_t m;
    cr_assert_eq(pd_client_read(c, &m), PD_OK, "waiting for %s: %s", name, pd_client_last_error(c));
    cr_assert_eq(m.type, PD_MSG_NOTIFICATION, "expected %s, got a response", name);
    cr_assert_str_eq(m.method, name);
    cr_assert_eq(map_int(&m.params, "order"), order, "%s", name);
    return m;
}

Test(replica, subscribers_get_the_events_it_applies) {
    nats_start(-1);
    srv_t p, r;
    /* The primary's tick is slow and the replica's fast: were the replica
     * to expire offers itself, it would do so first, and say so twice. */
    const char *slow_tick[] = {"--tick-ms", "400", NULL};
    const char *fast_tick[] = {"--tick-ms", "10", NULL};
    primary_start(&p, "p", slow_tick);
    pd_client_t *c = srv_connect(&p);
    upsert(c, 1, 30.6, 114.3, "tutoring");
    upsert(c, 2, 30.601, 114.3, "tutoring");
    upsert(c, 11, 31.2, 115.2, "legal-aid"); /* far from the others */
    upsert(c, 12, 31.2005, 115.2005, "legal-aid");
    replica_start(&r, fast_tick);
    converge(&p, &r, 10000);
    pd_client_t *sub = srv_connect(&r);
    pd_client_set_timeout(sub, 5000);
    call_ok(sub, "subscribe", "{\"events\":[\"order.*\"]}");

    pd_msg_t m = call_ok(c, "order.create",
                         "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
                         "\"ignore_schedule\":true}");
    long long v = live_offer(&m.result);
    cr_assert_geq(v, 1);
    long long deadline = map_int(&m.result, "next_deadline_ms");
    m = expect_event(sub, "order.offered", 1);
    cr_assert_eq(map_int(&m.params, "volunteer"), v);
    cr_assert_eq(map_int(&m.params, "deadline_ms"), deadline, "the primary's deadline");
    char json[96];
    snprintf(json, sizeof json, "{\"id\":1,\"volunteer\":%lld}", v);
    call_ok(c, "order.accept", json);
    m = expect_event(sub, "order.accepted", 1);
    cr_assert_eq(map_int(&m.params, "volunteer"), v);
    call_ok(c, "order.complete", "{\"id\":1,\"minutes_served\":45}");
    m = expect_event(sub, "order.completed", 1);
    cr_assert_eq(map_int(&m.params, "minutes"), 45);

    /* nobody answers: the primary's tick expires each offer, the replica
     * tells its subscribers (it runs no tick of its own) */
    m = call_ok(c, "order.create",
                "{\"id\":2,\"lat\":31.2,\"lon\":115.2,\"skills\":[\"legal-aid\"],"
                "\"ignore_schedule\":true}");
    long long first = live_offer(&m.result);
    long long second = first == 11 ? 12 : 11;
    cr_assert(first == 11 || first == 12);
    m = expect_event(sub, "order.offered", 2);
    cr_assert_eq(map_int(&m.params, "volunteer"), first);
    m = expect_event(sub, "order.offer_expired", 2);
    cr_assert_eq(map_int(&m.params, "volunteer"), first);
    m = expect_event(sub, "order.offered", 2);
    cr_assert_eq(map_int(&m.params, "volunteer"), second);
    m = expect_event(sub, "order.offer_expired", 2);
    cr_assert_eq(map_int(&m.params, "volunteer"), second);
    m = expect_event(sub, "order.expired", 2);
    cr_assert_str_eq(map_str(&m.params, "reason"), "exhausted");
    bool ready = true;
    cr_assert_eq(pd_client_poll(sub, 300, &ready), PD_OK);
    cr_assert_not(ready, "an event nobody caused");

    converge(&p, &r, 10000);
    cr_assert_eq(stat_of(&r, "counters", "notifications"), 8);
    pd_client_destroy(sub);
    pd_client_destroy(c);
    srv_stop(&r);
    srv_stop(&p);
}

/* Journal segments the stream still needs outlive snapshots: with NATS
 * away, two snapshots (each pruning what the one before it no longer
 * needs) and a kill -9 of the primary; the restarted primary can only
 * publish those records by reading them back from its segments. */
static int count_segments(const char *dir) {
    char path[320];
    snprintf(path, sizeof path, "%s/%s", tmpdir, dir);
    DIR *d = opendir(path);
    cr_assert(d, "cannot open %s", path);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strncmp(e->d_name, "journal-", 8) == 0;
    closedir(d);
    return n;
}

Test(replica, snapshots_keep_what_the_stream_lacks) {
    srv_t p, r;
    pd_client_t *c;
    int port = in_step_then_nats_dies(&p, &r, &c);

    some_moves(c, 1, 100, 200, 1);
    (void)call_ok(c, "snapshot", "{\"wait\":true}");
    some_moves(c, 1, 100, 200, 3);
    (void)call_ok(c, "snapshot", "{\"wait\":true}");
    some_moves(c, 1, 100, 200, 7);
    (void)call_ok(c, "snapshot", "{\"wait\":true}");
    cr_assert_geq(count_segments("p"), 3, "the segments the stream lacks were pruned");
    dg_t down = digest_of(&p);
    pd_client_destroy(c);
    kill9(&p);

    nats_start(port);
    primary_start(&p, "p", NULL);
    dg_t at = converge(&p, &r, 20000);
    cr_assert_geq(at.seq, down.seq);
    cr_assert_eq(repl_stat(&r, "halted"), 0);
    cr_assert_eq(repl_stat(&p, "failed"), 0);

    /* once the stream has them, a snapshot prunes as usual */
    c = srv_connect(&p);
    (void)call_ok(c, "snapshot", "{\"wait\":true}");
    (void)call_ok(c, "snapshot", "{\"wait\":true}");
    cr_assert_leq(count_segments("p"), 2, "segments the stream has are kept");
    pd_client_destroy(c);
    srv_stop(&r);
    srv_stop(&p);
}
