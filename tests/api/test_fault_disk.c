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
 * What must hold (docs/operations.md, "fsync policies"; docs/security.md):
 *   - a full disk never costs an acknowledged write: every write the client
 *     got a success reply for is there after the restart;
 *   - the failure is reported clearly: a server.error notification (IO) to
 *     the clients, an error line in the log naming the journal, exit 1;
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
 * $2 = mount point, $3 = tmpfs size, $4 = mount options ("rw" or "ro"). */
static const char *const SCRIPT =
    "set -u\n"
    "mount -t tmpfs -o \"size=$3,$4\" pd-fault-disk \"$2\" || { echo 'mount failed'; exit 97; }\n"
    "\"$1\" --port 0 --data-dir \"$2/data\" --fsync always --snapshot-bytes 0 "
    "--log-level warn 2>>\"$2.log\"\n"
    "echo \"exit $?\"\n"
    "[ \"$4\" = ro ] && exit 0\n"
    "mount -o remount,size=64m \"$2\" || exit 98\n"
    "exec \"$1\" --port 0 --data-dir \"$2/data\" --fsync always --log-level warn "
    "2>>\"$2.log\"\n";

typedef struct ns_srv_s {
    pid_t pid; /* the shell */
    int out;   /* its stdout */
    char buf[8192];
    size_t len;
} ns_srv_t;

static char mnt[256];
static pid_t ns_pid = -1;

static void make_mnt(void) {
    snprintf(mnt, sizeof(mnt), "%s/pd-fault-disk-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert(mkdtemp(mnt), "mkdtemp: %s", strerror(errno));
}

static void cleanup(void) {
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
    int fds[2];
    cr_assert(pipe(fds) == 0);
    s->pid = fork();
    cr_assert(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        const char *bin = binary_path("api/paidan-server");
        execlp("unshare", "unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh",
               bin, mnt, size, opts, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    ns_pid = s->pid;
    s->out = fds[0];
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
    return status;
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

Test(disk, full_loses_nothing_acknowledged, .fini = cleanup, .timeout = 180) {
    if (!can_mount()) {
        cr_skip_test("cannot mount a tmpfs in a private namespace here (needs root)");
    }
    make_mnt();
    ns_srv_t s;
    ns_start(&s, "1m", "rw");
    int port = ns_port(&s, 0);
    cr_assert_gt(port, 0, "server did not start on the small tmpfs: %s", s.buf);
    srv_t as = {.pid = -1, .port = port, .metrics_port = -1};
    pd_client_t *c = srv_connect(&as);

    /* Write until the disk is full: each volunteer ~150 bytes of journal. */
    static long long acked[MAX_IDS];
    int n_acked = 0;
    int code = 0;
    char json[256];
    pd_err err = PD_OK;
    for (int id = 1; id <= MAX_IDS; id++) {
        snprintf(json, sizeof(json),
                 "{\"id\":%d,\"lat\":%.5f,\"lon\":114.3,\"skills\":[\"tutoring\"],"
                 "\"tags\":[1,2,3],\"schedule\":[[0,8,20],[2,9,12],[4,14,18]]}",
                 id, 30.5 + (id % 1000) * 1e-4);
        size_t len;
        const char *p = params_json(json, &len);
        pd_msg_t m;
        err = pd_client_call(c, "volunteer.upsert", p, len, &m);
        if (err != PD_OK) break; /* the server stopped: connection gone */
        if (m.code != 0) {
            code = (int)m.code;
            break;
        }
        acked[n_acked++] = id;
    }
    cr_assert(err != PD_OK || code != 0, "1 MiB took %d volunteers without failing", n_acked);
    cr_assert_gt(n_acked, 100, "the disk was full after only %d writes", n_acked);
    fprintf(stderr, "disk full after %d acknowledged writes (then %s)\n", n_acked,
            err != PD_OK ? "connection closed" : "error reply");
    pd_client_destroy(c);

    /* The server said why and stopped with status 1 (fail-stop: it cannot
     * know what the disk holds after a failed write). */
    const char *ex = ns_wait_for(&s, 0, "exit ", 20000);
    cr_assert(ex, "the server did not stop after the disk filled: %s", s.buf);
    cr_assert_eq(atoi(ex), 1, "exit status %d after a full disk", atoi(ex));
    const char *log = read_log();
    cr_assert(strstr(log, "journal") && strstr(log, "ERROR"), "no clear error in the log:\n%s",
              log);

    /* Space is freed; the server recovers every acknowledged write. */
    size_t from = (size_t)(ex - s.buf);
    int port2 = ns_port(&s, from);
    cr_assert_gt(port2, 0, "the server did not restart after space was freed: %s\n%s", s.buf,
                 read_log());
    srv_t bs = {.pid = -1, .port = port2, .metrics_port = -1};
    c = srv_connect(&bs);
    for (int i = 0; i < n_acked; i += (i < n_acked - 50 ? 97 : 1)) {
        snprintf(json, sizeof(json), "{\"id\":%lld}", acked[i]);
        pd_msg_t m = call(c, "volunteer.get", json);
        cr_assert_eq(m.code, 0, "acknowledged volunteer %lld lost after a full disk", acked[i]);
    }
    pd_msg_t m = call_ok(c, "stats", "");
    long long vols = map_int(pd_client_map_get(&m.result, "engine"), "volunteers");
    cr_assert_geq(vols, n_acked, "%lld volunteers recovered, %d were acknowledged", vols, n_acked);
    /* And it takes writes again. */
    call_ok(c, "volunteer.upsert", "{\"id\":999999,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}");
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
