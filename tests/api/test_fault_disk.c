/* test_fault_disk.c -- paidan-server with a data directory that fills up or
 * cannot be written.
 *
 * The data directory is a small tmpfs mounted in a private mount namespace
 * (`unshare -m`), so the test needs root but leaves nothing mounted behind:
 * the mount goes when the last process in the namespace exits. A shell in
 * the namespace runs the server, reports its exit status on stdout, grows
 * the tmpfs ("the operator freed some space") and starts the server again
 * on the same directory, which recovers from it.
 *
 * What must hold (docs/operations.md, "A full disk"; docs/security.md):
 *   - a full disk refuses writes up front, with a clear error (IO, "data
 *     directory full"), and goes on serving reads: the journal's space is
 *     reserved ahead of the records, so nothing is applied that the
 *     journal could not take;
 *   - it never costs an acknowledged write: every write the client got a
 *     success reply for is there after a restart;
 *   - once space is freed the server takes writes again by itself;
 *   - the --order-retention purge is a write like the others: none while
 *     the disk is full, then it catches up, journaled;
 *   - a data directory that cannot be written at all is refused at start
 *     with exit 1 and a message, before anything is served.
 * Skipped (with a message) where unshare or mount is not permitted.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

/* A shell script run in a private mount namespace. $1 = server binary,
 * $2 = mount point, $3 = tmpfs size, $4 = mount options ("rw" or "ro").
 * With "rw" the server runs in the background; the test drives the rest
 * through the shell's stdin: the first line frees half a MiB (remounts at
 * 1.5 MiB: less than a --max-frame), the second plenty, the third stops
 * the server with SIGTERM and starts it again on the same directory. */
static const char *const SCRIPT =
    "set -u\n"
    "mount -t tmpfs -o \"size=$3,$4\" pd-fault-disk \"$2\" || { echo 'mount failed'; exit 97; }\n"
    "if [ \"$4\" = ro ]; then\n"
    "  \"$1\" --port 0 --data-dir \"$2/data\" --log-level warn 2>>\"$2.log\"\n"
    "  echo \"exit $?\"; exit 0\n"
    "fi\n"
    "\"$1\" --port 0 --data-dir \"$2/data\" --fsync always --snapshot-bytes 0 "
    "--order-retention 0.0001 --tick-ms 50 --log-level info 2>>\"$2.log\" &\n"
    "pid=$!\n"
    "echo \"pid $pid\"\n"
    "read cmd\n"
    "mount -o remount,size=1536k \"$2\" || exit 98\n"
    "echo grown\n"
    "read cmd\n"
    "mount -o remount,size=64m \"$2\" || exit 98\n"
    "echo roomy\n"
    "read cmd\n"
    "kill -TERM $pid; wait $pid; echo \"exit $?\"\n"
    "exec \"$1\" --port 0 --data-dir \"$2/data\" --fsync always --log-level warn "
    "2>>\"$2.log\"\n";

typedef struct ns_srv_s {
    pid_t pid; /* the shell */
    int out;   /* its stdout */
    int in;    /* its stdin */
    char buf[8192];
    size_t len;
} ns_srv_t;

static char mnt[256];
static pid_t ns_pid = -1;
static pid_t bg_pid = -1; /* the server the shell started in the background */

static void make_mnt(void) {
    snprintf(mnt, sizeof(mnt), "%s/pd-fault-disk-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert(mkdtemp(mnt), "mkdtemp: %s", strerror(errno));
}

static void cleanup(void) {
    if (bg_pid > 0) {
        kill(bg_pid, SIGKILL);
        bg_pid = -1;
    }
    if (ns_pid > 0) {
        kill(ns_pid, SIGKILL);
        waitpid(ns_pid, NULL, 0);
        ns_pid = -1;
    }
    if (!mnt[0]) return;
    char log[300];
    snprintf(log, sizeof(log), "%s.log", mnt);
    unlink(log);
    rmdir(mnt); /* empty: the tmpfs lived in the namespace only */
}

static void ns_start(ns_srv_t *s, const char *size, const char *opts) {
    int fds[2], ins[2];
    cr_assert(pipe(fds) == 0 && pipe(ins) == 0);
    s->pid = fork();
    cr_assert(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        dup2(ins[0], STDIN_FILENO);
        close(fds[0]);
        close(fds[1]);
        close(ins[0]);
        close(ins[1]);
        const char *bin = binary_path("api/paidan-server");
        execlp("unshare", "unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh",
               bin, mnt, size, opts, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    close(ins[0]);
    ns_pid = s->pid;
    s->out = fds[0];
    s->in = ins[1];
    s->len = 0;
    s->buf[0] = '\0';
}

/* Read the shell's stdout until `what` appears after `from`; returns a
 * pointer just past it, or NULL at EOF or timeout. */
static const char *ns_wait_for(ns_srv_t *s, size_t from, const char *what, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        const char *hit = strstr(s->buf + from, what);
        if (hit) {
            const char *nl = strchr(hit, '\n');
            if (nl) return hit + strlen(what);
        }
        long long left = deadline - now_ms();
        if (left <= 0) return NULL;
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        ssize_t n = read(s->out, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
        if (n <= 0) return NULL;
        s->len += (size_t)n;
        s->buf[s->len] = '\0';
    }
}

static int ns_port(ns_srv_t *s, size_t from) {
    const char *p = ns_wait_for(s, from, "listening on ", 20000);
    if (!p) return -1;
    const char *nl = strchr(p, '\n');
    const char *colon = p;
    for (const char *q = p; q < nl; q++)
        if (*q == ':') colon = q;
    return atoi(colon + 1);
}

static int ns_finish(ns_srv_t *s) {
    int status = 0;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &status, 0);
    ns_pid = -1;
    close(s->out);
    close(s->in);
    return status;
}

static void ns_say(ns_srv_t *s, const char *line) {
    cr_assert_eq(write(s->in, line, strlen(line)), (ssize_t)strlen(line));
}

/* One upsert; the reply code (0 = acknowledged). */
static int upsert(pd_client_t *c, int id) {
    char json[256];
    snprintf(json, sizeof(json),
             "{\"id\":%d,\"lat\":%.5f,\"lon\":114.3,\"skills\":[\"tutoring\"],"
             "\"tags\":[1,2,3],\"schedule\":[[0,8,20],[2,9,12],[4,14,18]]}",
             id, 30.5 + (id % 1000) * 1e-4);
    pd_msg_t m = call(c, "volunteer.upsert", json);
    if (m.code) {
        cr_assert_eq(m.code, PD_ERR_IO, "write refused with %lld: %s", (long long)m.code,
                     m.message);
        cr_assert(strstr(m.message, "data directory full"), "%s", m.message);
    }
    return (int)m.code;
}

static const msgpack_object *persistence(pd_client_t *c) {
    static pd_msg_t m;
    m = call_ok(c, "stats", "");
    const msgpack_object *p = pd_client_map_get(&m.result, "persistence");
    cr_assert(p);
    return p;
}

static bool read_only(pd_client_t *c) {
    const msgpack_object *v = pd_client_map_get(persistence(c), "read_only");
    cr_assert(v && v->type == MSGPACK_OBJECT_BOOLEAN);
    return v->via.boolean;
}

/* True if this machine lets us mount a tmpfs in a private namespace. */
static bool can_mount(void) {
    int rc = system(
        "unshare -m --propagation private sh -c "
        "'d=$(mktemp -d) && mount -t tmpfs -o size=64k x \"$d\" && umount \"$d\"; "
        "r=$?; rmdir \"$d\"; exit $r' >/dev/null 2>&1");
    return rc == 0;
}

static const char *read_log(void) {
    static char buf[65536];
    char path[300];
    snprintf(path, sizeof(path), "%s.log", mnt);
    FILE *f = fopen(path, "rb");
    if (!f) return "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

#define MAX_IDS 200000

Test(disk, full_refuses_writes_serves_reads_loses_nothing, .fini = cleanup, .timeout = 180) {
    if (!can_mount()) {
        cr_skip_test("cannot mount a tmpfs in a private namespace here (needs root)");
    }
    make_mnt();
    ns_srv_t s;
    ns_start(&s, "1m", "rw");
    const char *pp = ns_wait_for(&s, 0, "pid ", 20000);
    cr_assert(pp, "no server pid: %s", s.buf);
    bg_pid = atoi(pp);
    int port = ns_port(&s, 0);
    cr_assert_gt(port, 0, "server did not start on the small tmpfs: %s\n%s", s.buf, read_log());
    srv_t as = {.pid = -1, .port = port, .metrics_port = -1};
    pd_client_t *c = srv_connect(&as);
    /* A closed order that the retention (8.64 s; checked every 2.16 s)
     * would purge while the disk is full below */
    call_ok(c, "order.create",
            "{\"id\":77,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],"
            "\"dispatch\":false}");
    call_ok(c, "order.cancel", "{\"id\":77}");
    long long closed_at = now_ms();

    /* Write until the disk is full: each volunteer ~200 bytes of journal. */
    static long long acked[MAX_IDS];
    int n_acked = 0, id = 1;
    for (; id <= MAX_IDS; id++) {
        if (upsert(c, id) != 0) break;
        acked[n_acked++] = id;
    }
    cr_assert_leq(id, MAX_IDS, "1 MiB took %d volunteers without refusing one", n_acked);
    cr_assert_gt(n_acked, 100, "the disk was full after only %d writes", n_acked);
    fprintf(stderr, "disk full after %d acknowledged writes\n", n_acked);

    /* Still refused, said in the stats; reads are served meanwhile. */
    cr_assert_eq(upsert(c, id), PD_ERR_IO);
    cr_assert(read_only(c));
    cr_assert_geq(map_int(persistence(c), "writes_refused"), 2);
    char json[128];
    for (int i = 0; i < n_acked; i += 37) {
        snprintf(json, sizeof(json), "{\"id\":%lld}", acked[i]);
        call_ok(c, "volunteer.get", json);
    }
    pd_msg_t m = call_ok(c, "match.nearby",
                         "{\"lat\":30.55,\"lon\":114.3,\"skills\":[\"tutoring\"],\"k\":5,"
                         "\"ignore_schedule\":true}");
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_gt(m.result.via.array.size, 0, "reads found nothing");
    /* a mobilisation is a read unless it marks volunteers notified */
    m = call_ok(c, "match.mobilize",
                "{\"lat\":30.55,\"lon\":114.3,\"radius_m\":20000,\"limit\":3}");
    cr_assert_gt(map_int(&m.result, "count"), 0, "mobilize found nobody");
    call_err(c, "match.mobilize",
             "{\"lat\":30.55,\"lon\":114.3,\"radius_m\":20000,\"limit\":3,\"mark_notified\":true}",
             PD_ERR_IO);
    /* An import takes nothing either: its reply, which comes later, is
     * the error, and is counted as one with the method's. */
    char csv[64];
    temp_file(csv, sizeof(csv),
              "id,lat,lon,skills,tags,mode,schedule,capacity,status\n"
              "900001,30.55,114.3,tutoring,0,walk,always,1,online\n");
    pd_msg_t st = call_ok(c, "stats", "");
    long long errors0 = map_int(pd_client_map_get(&st.result, "counters"), "errors");
    snprintf(json, sizeof(json), "{\"path\":\"%s\"}", csv);
    call_err(c, "import", json, PD_ERR_IO);
    unlink(csv);
    st = call_ok(c, "stats", "");
    const msgpack_object *imp =
        pd_client_map_get(pd_client_map_get(&st.result, "methods"), "import");
    cr_assert(imp);
    cr_assert_eq(map_int(imp, "calls"), 1);
    cr_assert_eq(map_int(imp, "errors"), 1);
    cr_assert_eq(map_int(pd_client_map_get(&st.result, "counters"), "errors"), errors0 + 1);
    /* A snapshot cannot even start (no room for the journal's next
     * segment): an error, logged and counted. */
    call_err(c, "snapshot", "{\"wait\":true}", PD_ERR_IO);
    cr_assert_geq(map_int(persistence(c), "snapshot_failures"), 1);
    const char *log = read_log();
    cr_assert(strstr(log, "ERROR") && strstr(log, "cannot reserve journal space"),
              "no clear error in the log:\n%s", log);
    cr_assert(strstr(log, "snapshot cannot start"), "no word of the snapshot:\n%s", log);
    /* past the retention and two checks, still full: the purge waits with
     * the other writes (unless filling the disk took longer than the
     * retention, when the purge rightly came first) */
    if (now_ms() - closed_at < 8000) {
        while (now_ms() - closed_at < 8640 + 4500) usleep(100000);
        cr_assert(read_only(c));
        call_ok(c, "order.get", "{\"id\":77}");
    } else {
        fprintf(stderr, "filling the disk took %lld ms: the purge may have come first\n",
                now_ms() - closed_at);
    }

    /* Half a MiB is freed, less than a whole frame: within a few seconds
     * writes are taken again. */
    ns_say(&s, "grow\n");
    cr_assert(ns_wait_for(&s, 0, "grown", 20000), "the tmpfs did not grow: %s", s.buf);
    long long deadline = now_ms() + 10000;
    while (upsert(c, id) != 0) {
        cr_assert(now_ms() < deadline, "still refusing writes 10 s after space was freed");
        usleep(100000);
    }
    acked[n_acked++] = id;
    cr_assert(!read_only(c));
    deadline = now_ms() + 15000;
    while (call(c, "order.get", "{\"id\":77}").code != PD_ERR_NOT_FOUND) {
        cr_assert(now_ms() < deadline,
                  "the retention did not purge order 77 once writes were back");
        usleep(100000);
    }
    log = read_log();
    cr_assert(strstr(log, "accepting writes"), "no word that writes are back:\n%s", log);
    pd_client_destroy(c);
    /* room for the restart's snapshot and journal below */
    ns_say(&s, "grow more\n");
    cr_assert(ns_wait_for(&s, 0, "roomy", 20000), "the tmpfs did not grow: %s", s.buf);

    /* A clean stop and a start on the same directory: every acknowledged
     * write is there. */
    size_t from = s.len;
    ns_say(&s, "stop\n");
    const char *ex = ns_wait_for(&s, from, "exit ", 20000);
    cr_assert(ex, "the server did not stop: %s", s.buf);
    cr_assert_eq(atoi(ex), 0, "exit status %d after SIGTERM\n%s", atoi(ex), read_log());
    bg_pid = -1;
    int port2 = ns_port(&s, (size_t)(ex - s.buf));
    cr_assert_gt(port2, 0, "the server did not start again: %s\n%s", s.buf, read_log());
    srv_t bs = {.pid = -1, .port = port2, .metrics_port = -1};
    c = srv_connect(&bs);
    for (int i = 0; i < n_acked; i += (i < n_acked - 50 ? 97 : 1)) {
        snprintf(json, sizeof(json), "{\"id\":%lld}", acked[i]);
        pd_msg_t g = call(c, "volunteer.get", json);
        cr_assert_eq(g.code, 0, "acknowledged volunteer %lld lost after a full disk", acked[i]);
    }
    call_err(c, "order.get", "{\"id\":77}", PD_ERR_NOT_FOUND); /* the purge was journaled */
    m = call_ok(c, "stats", "");
    long long vols = map_int(pd_client_map_get(&m.result, "engine"), "volunteers");
    cr_assert_eq(vols, n_acked, "%lld volunteers recovered, %d were acknowledged", vols, n_acked);
    pd_client_destroy(c);
    ns_finish(&s);
}

Test(disk, unwritable_data_dir_refused_at_start, .fini = cleanup, .timeout = 180) {
    if (!can_mount()) {
        cr_skip_test("cannot mount a tmpfs in a private namespace here (needs root)");
    }
    make_mnt();
    ns_srv_t s;
    ns_start(&s, "1m", "ro");
    const char *ex = ns_wait_for(&s, 0, "exit ", 20000);
    cr_assert(ex, "no exit status: %s", s.buf);
    cr_assert(!strstr(s.buf, "listening on"), "the server served on a read-only data dir");
    cr_assert_eq(atoi(ex), 1, "exit status %d on a read-only data dir", atoi(ex));
    const char *log = read_log();
    cr_assert(strstr(log, "ERROR"), "no error in the log:\n%s", log);
    ns_finish(&s);
}
