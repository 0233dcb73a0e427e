/* journal.c -- `paidan-bench journal`: what durability costs.
 *
 * Cases (--filter picks some):
 *
 *   append/no, append/everysec, append/always
 *       In-process pd_journal_append of a realistic record (a location
 *       ping: ["volunteer.update", {id, lat, lon}] in MessagePack), with a
 *       pd_journal_commit every --batch appends, as the server commits once
 *       per loop iteration. Appends/s is what one server thread can journal.
 *   acked/always, acked/everysec
 *       A real paidan-server (spawned here, --data-dir in the scratch
 *       directory) and --clients TCP connections, each keeping --pipeline
 *       location pings in flight for --seconds. Every reply is an
 *       acknowledged write: under `always` it left the server only after
 *       the fdatasync that covered it (group commit).
 *   snapshot
 *       An engine with --volunteers volunteers and --orders orders (a mix of
 *       created, offered, accepted, completed and rated), written as a
 *       snapshot in-process: pd_engine_snapshot_write + commit (fsync,
 *       rename). Also the fork() cost the server pays to do it in a child.
 *   recovery
 *       That snapshot plus --journal-records journal records recovered two
 *       ways: in-process (pd_store_recover + pd_engine_snapshot_restore, no
 *       replay handlers), and end to end: a paidan-server started on the
 *       data directory, timed from exec to its "listening on" line.
 *
 * Everything is written under --dir (default a fresh /tmp directory, removed
 * at the end unless --keep).
 *
 * A case that fails (a file it cannot create, a server that does not
 * start, errors in its row) makes the run exit 1, after the report of the
 * others. A case that cannot run because there is no paidan-server binary
 * is skipped with a message when it was not asked for by name, and is an
 * error when it was (--filter acked).
 */
#define _GNU_SOURCE /* nftw */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "opt.h"
#include "paidan/alloc.h"
#include "paidan/engine.h"
#include "paidan/journal.h"

/* Cases that spawn paidan-server, and the rest. */
static const char *const journal_cases[] = {"append", "acked", "snapshot", "recovery"};

typedef struct jopts_s {
    const char *filter;
    const char *dir;
    const char *server;
    bool keep;
    bool json;
    bool quiet;       /* no progress lines */
    bool have_server; /* o->server is executable: acked and recovery/server can run */
    uint64_t records;
    uint32_t batch;
    uint64_t volunteers;
    uint64_t orders;
    uint64_t journal_records;
    uint32_t clients;
    uint32_t pipeline;
    double seconds;
} jopts_t;

static void usage(FILE *out) {
    fprintf(out,
            "usage: paidan-bench journal [options]\n"
            "What durability costs. Cases (all by default):\n"
            "  append     in-process journal appends of a location-ping record, a commit\n"
            "             every --batch appends, per fsync policy: append/no,\n"
            "             append/everysec, append/always\n"
            "  acked      a paidan-server spawned on --dir, --clients TCP connections each\n"
            "             keeping --pipeline location pings in flight for --seconds; every\n"
            "             reply is an acknowledged write: acked/always, acked/everysec\n"
            "  snapshot   a state of --volunteers and --orders written as a snapshot\n"
            "  recovery   that snapshot plus --journal-records records recovered in-process\n"
            "             (recovery/engine) and by paidan-server (recovery/server)\n"
            "options:\n"
            "      --filter LIST        cases, comma-separated: append, acked, snapshot,\n"
            "                           recovery (default all)\n"
            "      --dir DIR            scratch directory, created if missing (default: a\n"
            "                           new one under /tmp, removed at the end)\n"
            "      --keep               keep the scratch directory\n"
            "      --records N          appends per append case (default 2000000; always\n"
            "                           stops at 400 commits)\n"
            "      --batch N            appends per commit (default 256)\n"
            "      --volunteers N       volunteers in the snapshot state (default 1000000)\n"
            "      --orders N           orders in the snapshot state (default 1000000)\n"
            "      --journal-records N  journal records after the snapshot (default 100000)\n"
            "      --clients N          TCP connections of acked (default 64, at most 2000)\n"
            "      --pipeline N         requests in flight per connection (default 16, at\n"
            "                           most 200)\n"
            "      --seconds S          measured time of each acked case (default 3)\n"
            "      --server PATH        paidan-server binary (default: ../api/paidan-server\n"
            "                           next to paidan-bench)\n"
            "      --json               one JSON object instead of the table\n"
            "      --quiet              no progress lines on stderr\n"
            "  -h, --help               this text\n"
            "Exit status: 0 every case measured; 1 a case failed, or a case asked for by\n"
            "name could not run, or nothing was measured; 2 a refused command line.\n");
}

/* ------------------------------------------------------------- helpers */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_tree(const char *dir) {
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void progress(const jopts_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void progress(const jopts_t *o, const char *fmt, ...) {
    if (o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "journal: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* "<dir>/<name>" into buf; an over-long path becomes "" (and fails to open). */
static void path_in(char *buf, size_t cap, const char *dir, const char *name) {
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap) buf[0] = '\0';
}

/* A location ping record as the server journals it; with upsert, the
 * volunteer.upsert that puts a volunteer (no skills) there instead. */
static size_t ping_record(msgpack_sbuffer *sb, uint64_t id, int32_t lat, int32_t lon, bool upsert) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    sb->size = 0;
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str(&pk, 16);
    msgpack_pack_str_body(&pk, upsert ? "volunteer.upsert" : "volunteer.update", 16);
    msgpack_pack_map(&pk, upsert ? 4 : 3);
    msgpack_pack_str(&pk, 2);
    msgpack_pack_str_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "lat", 3);
    msgpack_pack_double(&pk, lat / 1e6);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "lon", 3);
    msgpack_pack_double(&pk, lon / 1e6);
    if (upsert) {
        msgpack_pack_str(&pk, 6);
        msgpack_pack_str_body(&pk, "skills", 6);
        msgpack_pack_array(&pk, 0);
    }
    return sb->size;
}

/* ------------------------------------------------------- append cases */

/* One append case; false (with a message) if it failed. */
static bool bench_append(const jopts_t *o, pd__report_t *rep, pd_fsync_policy pol) {
    char path[4096], name[32], file[64];
    snprintf(file, sizeof(file), "append-%s.pdj", pd_fsync_policy_name(pol));
    path_in(path, sizeof(path), o->dir, file);
    snprintf(name, sizeof(name), "append/%s", pd_fsync_policy_name(pol));
    unlink(path);
    pd_journal_t *j = NULL;
    if (pd_journal_create(path, pol, 1, &j)) {
        fprintf(stderr, "journal: %s: cannot create %s: %s\n", name, path, strerror(errno));
        return false;
    }
    uint64_t n = o->records;
    /* `always` syncs once per batch: a few thousand syncs are enough. */
    if (pol == PD_FSYNC_ALWAYS && n > (uint64_t)o->batch * 400) n = (uint64_t)o->batch * 400;
    char note[96];
    snprintf(note, sizeof(note), "%" PRIu64 " appends, commit every %u", n, o->batch);
    pd__result_t *res = pd__report_add(rep, name, note);
    if (!res) {
        pd_journal_close(j);
        return false;
    }
    /* n appends exactly: the last commit may take fewer than --batch. */
    res->ops_given = true;
    res->ops = n;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pd__bench_rng_t rng;
    pd__bench_rng_seed(&rng, 1);
    uint64_t t_start = pd__bench_now_ns(), bytes = 0;
    for (uint64_t done = 0; done < n;) {
        uint32_t batch = n - done < o->batch ? (uint32_t)(n - done) : o->batch;
        uint64_t t0 = pd__bench_now_ns();
        for (uint32_t k = 0; k < batch; k++) {
            uint64_t r = pd__bench_rng_next(&rng);
            size_t len = ping_record(&sb, r % 1000000, 30000000 + (int32_t)(r >> 44),
                                     114000000 + (int32_t)((r >> 24) & 0xfffff), false);
            bytes += len + PD_JREC_HEADER_SIZE;
            if (pd_journal_append(j, PD_JREC_COMMAND, 1700000000000 + (int64_t)done, sb.data, len,
                                  NULL)) {
                res->errors++;
            }
        }
        if (pd_journal_commit(j)) res->errors++;
        uint64_t dt = pd__bench_now_ns() - t0;
        res->busy_ns += dt;
        pd_hist_record(res->hist, dt / batch);
        done += batch;
    }
    res->wall_ns = pd__bench_now_ns() - t_start;
    pd_journal_stats_t st;
    pd_journal_get_stats(j, &st);
    pd_journal_close(j);
    msgpack_sbuffer_destroy(&sb);
    double aps = (double)n * 1e9 / (double)res->busy_ns;
    progress(o, "%s: %.0f appends/s, %.1f MB/s, %" PRIu64 " syncs (avg %.2f ms)", name, aps,
             (double)bytes / 1e6 / ((double)res->busy_ns / 1e9), st.syncs,
             st.syncs ? (double)st.sync_ns / 1e6 / (double)st.syncs : 0.0);
    unlink(path);
    if (res->errors)
        fprintf(stderr, "journal: %s: %" PRIu64 " appends or commits failed\n", name, res->errors);
    return res->errors == 0;
}

/* --------------------------------------------------------- acked (TCP) */

typedef struct server_s {
    pid_t pid;
    int port;
    double start_s; /* exec to "listening on" */
} server_t;

/* Start paidan-server with args; wait for its listening line. */
static bool server_start(const jopts_t *o, const char *const *args, server_t *s) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    const char *argv[32];
    int n = 0;
    argv[n++] = o->server;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--log-level";
    argv[n++] = "warn";
    for (; args && *args && n < 30; args++) argv[n++] = *args;
    argv[n] = NULL;
    uint64_t t0 = pd__bench_now_ns();
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(o->server, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256];
    s->pid = pid;
    s->port = 0;
    while (f && fgets(line, sizeof(line), f)) {
        const char *colon = strrchr(line, ':');
        if (strncmp(line, "listening on ", 13) == 0 && colon) {
            s->port = atoi(colon + 1);
            break;
        }
    }
    s->start_s = (double)(pd__bench_now_ns() - t0) / 1e9;
    if (f) fclose(f);
    if (!s->port) {
        fprintf(stderr, "journal: %s did not start\n", o->server);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return false;
    }
    return true;
}

static void server_stop(server_t *s, int sig) {
    if (s->pid <= 0) return;
    kill(s->pid, sig);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

typedef struct client_s {
    int fd;
    msgpack_unpacker up;
    msgpack_sbuffer out;
    size_t out_off;
    uint32_t inflight;
    uint64_t sent_ns[256]; /* ring of send times by msgid % 256 */
    uint32_t next_id;
} client_t;

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void pack_request(client_t *c, const char *method, uint64_t id, int32_t lat, int32_t lon,
                         bool upsert) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, c->next_id);
    c->sent_ns[c->next_id % 256] = pd__bench_now_ns();
    c->next_id++;
    size_t ml = strlen(method);
    msgpack_pack_str(&pk, ml);
    msgpack_pack_str_body(&pk, method, ml);
    msgpack_pack_map(&pk, upsert ? 4 : 3);
    msgpack_pack_str(&pk, 2);
    msgpack_pack_str_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "lat", 3);
    msgpack_pack_double(&pk, lat / 1e6);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "lon", 3);
    msgpack_pack_double(&pk, lon / 1e6);
    if (upsert) {
        msgpack_pack_str(&pk, 6);
        msgpack_pack_str_body(&pk, "skills", 6);
        msgpack_pack_array(&pk, 0);
    }
    c->inflight++;
}

/* Write what is buffered; false on a broken connection. */
static bool client_write(client_t *c) {
    while (c->out_off < c->out.size) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.size - c->out_off, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
        c->out_off += (size_t)w;
    }
    c->out.size = 0;
    c->out_off = 0;
    return true;
}

/* Read replies; each is recorded (latency) and counted. Returns replies
 * read, or -1 on a broken connection. */
static long client_read(client_t *c, pd__result_t *res, uint64_t *errors) {
    long n = 0;
    for (;;) {
        if (!msgpack_unpacker_reserve_buffer(&c->up, 65536)) return -1;
        ssize_t r = recv(c->fd, msgpack_unpacker_buffer(&c->up), 65536, 0);
        if (r == 0) return -1;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        msgpack_unpacker_buffer_consumed(&c->up, (size_t)r);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        while (msgpack_unpacker_next(&c->up, &u) == MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *a = u.data.via.array.ptr;
            if (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 4) continue;
            uint32_t id = (uint32_t)a[1].via.u64;
            if (a[2].type != MSGPACK_OBJECT_NIL) (*errors)++;
            if (res) pd_hist_record(res->hist, pd__bench_now_ns() - c->sent_ns[id % 256]);
            c->inflight--;
            n++;
        }
        msgpack_unpacked_destroy(&u);
    }
    return n;
}

/* One acked case; false (with a message) if it failed. */
static bool bench_acked(const jopts_t *o, pd__report_t *rep, pd_fsync_policy pol) {
    char dd[4096], name[32], file[64];
    snprintf(file, sizeof(file), "acked-%s", pd_fsync_policy_name(pol));
    path_in(dd, sizeof(dd), o->dir, file);
    snprintf(name, sizeof(name), "acked/%s", pd_fsync_policy_name(pol));
    const char *args[] = {"--data-dir",  dd,     "--fsync", pd_fsync_policy_name(pol),
                          "--max-conns", "2000", NULL};
    server_t s;
    if (!server_start(o, args, &s)) return false;
    uint32_t nc = o->clients, pipe_n = o->pipeline;
    client_t *cs = calloc(nc, sizeof(client_t));
    struct pollfd *pf = calloc(nc, sizeof(struct pollfd));
    bool ok = cs && pf;
    /* The first `ready` clients have a socket and an unpacker: the ones to
     * tidy up, however far this got (out of descriptors, say). */
    uint32_t ready = 0;
    for (; ok && ready < nc; ready++) {
        client_t *c = &cs[ready];
        c->fd = connect_to(s.port);
        if (c->fd < 0 || !msgpack_unpacker_init(&c->up, 65536)) {
            if (c->fd >= 0) close(c->fd);
            ok = false;
            break;
        }
        msgpack_sbuffer_init(&c->out);
    }
    uint64_t errors = 0;
    /* The volunteers the pings move: 100 per client, upserted first. */
    for (uint32_t i = 0; i < nc && ok; i++) {
        for (uint32_t k = 0; k < 100; k++)
            pack_request(&cs[i], "volunteer.upsert", (uint64_t)i * 100 + k + 1, 30500000, 114300000,
                         true);
        ok = client_write(&cs[i]);
    }
    while (ok) {
        uint32_t busy = 0;
        for (uint32_t i = 0; i < nc; i++) {
            pf[i].fd = cs[i].fd;
            pf[i].events = POLLIN | (cs[i].out.size ? POLLOUT : 0);
            busy += cs[i].inflight > 0;
        }
        if (!busy) break;
        if (poll(pf, nc, 5000) <= 0) ok = false;
        for (uint32_t i = 0; i < nc && ok; i++) {
            if (pf[i].revents & POLLOUT) ok = client_write(&cs[i]);
            if (ok && (pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                ok = client_read(&cs[i], NULL, &errors) >= 0;
        }
    }
    char note[96];
    snprintf(note, sizeof(note), "%u clients x %u in flight, location pings", nc, pipe_n);
    pd__result_t *res = ok ? pd__report_add(rep, name, note) : NULL;
    if (res) {
        pd__bench_rng_t rng;
        pd__bench_rng_seed(&rng, 7);
        uint64_t t0 = pd__bench_now_ns(), end = t0 + (uint64_t)(o->seconds * 1e9), acked = 0;
        for (uint32_t i = 0; i < nc; i++) {
            while (cs[i].inflight < pipe_n) {
                uint64_t r = pd__bench_rng_next(&rng);
                pack_request(&cs[i], "volunteer.update", (uint64_t)i * 100 + r % 100 + 1,
                             30500000 + (int32_t)(r >> 48),
                             114300000 + (int32_t)((r >> 32) & 0xffff), false);
            }
            ok = ok && client_write(&cs[i]);
        }
        while (ok) {
            uint64_t now = pd__bench_now_ns();
            uint32_t busy = 0;
            for (uint32_t i = 0; i < nc; i++) {
                pf[i].fd = cs[i].fd;
                pf[i].events = POLLIN | (cs[i].out.size ? POLLOUT : 0);
                busy += cs[i].inflight > 0;
            }
            if (now >= end && !busy) break;
            if (poll(pf, nc, 5000) <= 0) {
                ok = false;
                break;
            }
            for (uint32_t i = 0; i < nc && ok; i++) {
                if (pf[i].revents & POLLOUT) ok = client_write(&cs[i]);
                if (!ok || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                long got = client_read(&cs[i], res, &errors);
                if (got < 0) {
                    ok = false;
                    break;
                }
                acked += (uint64_t)got;
                if (pd__bench_now_ns() < end) {
                    while (cs[i].inflight < pipe_n) {
                        uint64_t r = pd__bench_rng_next(&rng);
                        pack_request(&cs[i], "volunteer.update", (uint64_t)i * 100 + r % 100 + 1,
                                     30500000 + (int32_t)(r >> 48),
                                     114300000 + (int32_t)((r >> 32) & 0xffff), false);
                    }
                    ok = client_write(&cs[i]);
                }
            }
        }
        res->wall_ns = pd__bench_now_ns() - t0;
        res->busy_ns = res->wall_ns;
        res->errors = errors;
        if (!ok) res->errors++;
        progress(o, "%s: %.0f acknowledged writes/s (%u clients x %u), %" PRIu64 " errors", name,
                 (double)acked * 1e9 / (double)res->wall_ns, nc, pipe_n, errors);
    }
    if (!ok) fprintf(stderr, "journal: %s: a connection failed\n", name);
    if (ok && errors) fprintf(stderr, "journal: %s: %" PRIu64 " error replies\n", name, errors);
    for (uint32_t i = 0; i < ready; i++) {
        close(cs[i].fd);
        msgpack_unpacker_destroy(&cs[i].up);
        msgpack_sbuffer_destroy(&cs[i].out);
    }
    free(cs);
    free(pf);
    server_stop(&s, SIGKILL);
    return ok && errors == 0;
}

/* ------------------------------------------------- snapshot & recovery */

/* A county-sized state: volunteers around one city, orders in a realistic
 * mix of states. */
static pd_engine_t *build_state(const jopts_t *o) {
    pd_engine_t *e = NULL;
    if (pd_engine_create(NULL, &e)) return NULL;
    pd__bench_rng_t rng;
    pd__bench_rng_seed(&rng, 42);
    int64_t now = 1767225600000; /* 2026-01-01 */
    uint64_t t0 = pd__bench_now_ns();
    for (uint64_t i = 1; i <= o->volunteers; i++) {
        uint64_t r = pd__bench_rng_next(&rng);
        pd_volunteer_t v;
        memset(&v, 0, sizeof(v));
        v.id = i;
        v.pos.lat = 30300000 + (int32_t)(r % 600000);
        v.pos.lon = 114000000 + (int32_t)((r >> 20) % 600000);
        v.skills = (1ull << ((r >> 40) % 12)) | (1ull << ((r >> 44) % 12));
        v.week = pd_week_all();
        v.mode = (uint8_t)((r >> 50) % PD_MODE__COUNT);
        v.status = PD_STATUS_ONLINE;
        v.capacity = (uint8_t)(1 + (r >> 60) % 2);
        if (pd_engine_volunteer_upsert(e, &v, now)) {
            pd_engine_destroy(e);
            return NULL;
        }
    }
    progress(o, "%" PRIu64 " volunteers in %.1f s", o->volunteers,
             (double)(pd__bench_now_ns() - t0) / 1e9);
    t0 = pd__bench_now_ns();
    uint64_t dispatched = 0;
    for (uint64_t i = 1; i <= o->orders; i++) {
        uint64_t r = pd__bench_rng_next(&rng);
        pd_order_spec_t s;
        memset(&s, 0, sizeof(s));
        s.id = i;
        s.at.lat = 30300000 + (int32_t)(r % 600000);
        s.at.lon = 114000000 + (int32_t)((r >> 20) % 600000);
        s.skills = 1ull << ((r >> 40) % 12);
        s.start_ms = now + 3600000;
        s.duration_min = 60;
        s.ignore_schedule = true;
        now += 10;
        /* One order in five is dispatched; of those, most get answered. */
        if (r % 5 == 0) {
            pd_order_state st;
            if (pd_engine_order_create_dispatch(e, &s, now, &st)) continue;
            dispatched++;
            if (st != PD_ORDER_OFFERED || (r >> 8) % 4 == 0) continue;
            pd_offer_t of[8];
            size_t n = 0;
            if (pd_engine_order_offers(e, i, of, 8, &n) || n == 0) continue;
            if (pd_engine_order_accept(e, i, of[0].volunteer_id, now)) continue;
            if ((r >> 12) % 3 == 0) continue;
            if (pd_engine_order_complete(e, i, -1, now)) continue;
            if ((r >> 16) % 2) (void)pd_engine_order_rate(e, i, 1 + (int)((r >> 18) % 5), now);
        } else {
            (void)pd_engine_order_create(e, &s, now);
        }
    }
    progress(o, "%" PRIu64 " orders (%" PRIu64 " dispatched) in %.1f s", o->orders, dispatched,
             (double)(pd__bench_now_ns() - t0) / 1e9);
    return e;
}

/* What in-process recovery builds: the engine, and the records it saw. */
typedef struct rec_ud_s {
    pd_engine_t *e;
    uint64_t records;
} rec_ud_t;

static pd_err load_cb(void *ud, const uint8_t *p, size_t len, uint64_t seq, int64_t ts) {
    (void)seq;
    (void)ts;
    rec_ud_t *r = ud;
    return pd_engine_snapshot_restore(p, len, NULL, &r->e);
}

static pd_err count_cb(void *ud, const pd_jrec_t *r) {
    (void)r;
    ((rec_ud_t *)ud)->records++;
    return PD_OK;
}

/* The snapshot and recovery cases (those of do_snap, do_rec); their
 * figures beyond the rows go to JSON members, and as lines to notes for
 * the table. False (with a message) if a case failed. */
static bool bench_snapshot_recovery(const jopts_t *o, pd__report_t *rep, bool do_snap, bool do_rec,
                                    char *notes, size_t cap) {
    pd_engine_t *e = build_state(o);
    if (!e) {
        fprintf(stderr, "journal: cannot build the state (out of memory?)\n");
        return false;
    }
    uint64_t digest = pd_engine_digest(e);
    char dd[4096];
    path_in(dd, sizeof(dd), o->dir, "state");
    rm_tree(dd);
    pd_store_opts_t so;
    pd_store_opts_init(&so);
    pd_store_t *st = NULL;
    char msg[PD_STORE_MSG_MAX];
    if (pd_store_open(dd, &so, &st, msg) || pd_store_recover(st, NULL, NULL, NULL, NULL, msg)) {
        fprintf(stderr, "journal: %s\n", msg);
        pd_engine_destroy(e);
        return false;
    }
    /* Snapshot: in-process, as at shutdown; the fork cost separately. */
    pd_snapshot_writer_t *w = NULL;
    uint64_t seq = 0;
    uint64_t t0 = pd__bench_now_ns();
    pd_err err = pd_store_snapshot_begin(st, 0, &w, &seq);
    if (!err) err = pd_engine_snapshot_write(e, w);
    uint64_t bytes = w ? pd_snapshot_writer_bytes(w) : 0;
    uint64_t t_written = pd__bench_now_ns();
    if (!err) err = pd_snapshot_writer_commit(w);
    uint64_t t1 = pd__bench_now_ns();
    if (w) pd_store_snapshot_end(st, err == PD_OK);
    if (err) {
        fprintf(stderr, "journal: snapshot failed: %s\n", pd_strerror(err));
        pd_store_close(st);
        pd_engine_destroy(e);
        return false;
    }
    bool ok = true;
    char note[96], raw[512];
    if (do_snap) {
        snprintf(note, sizeof(note), "%" PRIu64 " vols + %" PRIu64 " orders, %.0f MB",
                 o->volunteers, o->orders, (double)bytes / 1e6);
        pd__result_t *res = pd__report_add(rep, "snapshot", note);
        if (res) {
            pd_hist_record(res->hist, t1 - t0);
            res->busy_ns = res->wall_ns = t1 - t0;
        }
        uint64_t f0 = pd__bench_now_ns();
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        uint64_t f1 = pd__bench_now_ns();
        if (pid > 0) waitpid(pid, NULL, 0);
        snprintf(raw, sizeof(raw),
                 "{\"bytes\":%" PRIu64
                 ",\"encode_s\":%.3f,\"fsync_rename_s\":%.3f,\"total_s\":%.3f,"
                 "\"fork_ms\":%.2f,\"rss_mb\":%.0f}",
                 bytes, (double)(t_written - t0) / 1e9, (double)(t1 - t_written) / 1e9,
                 (double)(t1 - t0) / 1e9, (double)(f1 - f0) / 1e6,
                 (double)pd__bench_rss_bytes() / 1e6);
        pd__report_extra(rep, "snapshot", raw);
        char line[256];
        snprintf(line, sizeof line,
                 "snapshot: %.0f MB in %.2f s (encode+write %.2f s, fsync+rename %.2f s); "
                 "fork() %.1f ms at %.0f MB RSS",
                 (double)bytes / 1e6, (double)(t1 - t0) / 1e9, (double)(t_written - t0) / 1e9,
                 (double)(t1 - t_written) / 1e9, (double)(f1 - f0) / 1e6,
                 (double)pd__bench_rss_bytes() / 1e6);
        progress(o, "%s", line);
        pd__appendf(notes, cap, "%s\n", line);
        ok &= res != NULL;
    }
    /* Journal after the snapshot: location pings of existing volunteers.
     * With none in the state, upserts that add them instead: a ping of an
     * unknown volunteer fails, and paidan-server refuses to start on a
     * journal whose records fail. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pd_journal_t *j = pd_store_journal(st);
    pd__bench_rng_t rng;
    pd__bench_rng_seed(&rng, 5);
    bool upsert = o->volunteers == 0;
    for (uint64_t i = 0; i < o->journal_records; i++) {
        uint64_t r = pd__bench_rng_next(&rng);
        size_t len = ping_record(&sb, upsert ? i + 1 : 1 + r % o->volunteers,
                                 30300000 + (int32_t)((r >> 8) % 600000),
                                 114000000 + (int32_t)((r >> 30) % 600000), upsert);
        pd_journal_append(j, PD_JREC_COMMAND, 1767225600000 + (int64_t)o->orders * 10 + (int64_t)i,
                          sb.data, len, NULL);
        if (i % 4096 == 0) pd_journal_commit(j);
    }
    msgpack_sbuffer_destroy(&sb);
    pd_store_close(st);
    size_t rss_state = (size_t)pd__bench_rss_bytes();
    pd_engine_destroy(e);

    if (do_rec) {
        /* In-process: snapshot load + restore + journal scan (no replay). */
        rec_ud_t ru = {NULL, 0};
        pd_store_report_t sr;
        t0 = pd__bench_now_ns();
        err = pd_store_open(dd, &so, &st, msg);
        if (!err) err = pd_store_recover(st, load_cb, count_cb, &ru, &sr, msg);
        t1 = pd__bench_now_ns();
        if (!err && st) pd_store_close(st);
        bool same = ru.e && pd_engine_digest(ru.e) == digest;
        pd_engine_destroy(ru.e);
        if (err || !same) {
            fprintf(stderr, "journal: recovery failed: %s\n", err ? msg : "digest differs");
            return false;
        }
        snprintf(note, sizeof(note), "snapshot restore + scan of %" PRIu64 " records", ru.records);
        pd__result_t *res = pd__report_add(rep, "recovery/engine", note);
        if (res) {
            pd_hist_record(res->hist, t1 - t0);
            res->busy_ns = res->wall_ns = t1 - t0;
        }
        ok &= res != NULL;
        progress(o,
                 "recovery in-process: %.2f s (snapshot %.2f s, journal scan %.3f s), "
                 "digest equal",
                 (double)(t1 - t0) / 1e9, (double)sr.snapshot_ns / 1e9, (double)sr.replay_ns / 1e9);
        double in_process_s = (double)(t1 - t0) / 1e9;
        int len =
            snprintf(raw, sizeof(raw),
                     "{\"in_process_s\":%.3f,\"journal_records\":%" PRIu64 ",\"rss_state_mb\":%.0f",
                     in_process_s, o->journal_records, (double)rss_state / 1e6);
        /* End to end: a server on that directory, exec to listening (when
         * there is a server binary: main() said so if not). */
        const char *args[] = {"--data-dir", dd, NULL};
        server_t s;
        if (!o->have_server) {
            pd__appendf(notes, cap,
                        "recovery: %.2f s in-process (%" PRIu64
                        " journal records); "
                        "paidan-server skipped\n",
                        in_process_s, o->journal_records);
        } else if (server_start(o, args, &s)) {
            snprintf(note, sizeof(note), "paidan-server start: snapshot + %" PRIu64 " replays",
                     o->journal_records);
            res = pd__report_add(rep, "recovery/server", note);
            uint64_t ns = (uint64_t)(s.start_s * 1e9);
            if (res) {
                pd_hist_record(res->hist, ns);
                res->busy_ns = res->wall_ns = ns;
            }
            ok &= res != NULL;
            progress(o, "recovery by paidan-server: listening after %.2f s", s.start_s);
            pd__appendf(notes, cap,
                        "recovery: %.2f s in-process, %.2f s by paidan-server (exec to listening), "
                        "snapshot + %" PRIu64 " journal records\n",
                        in_process_s, s.start_s, o->journal_records);
            if (len > 0 && (size_t)len < sizeof raw)
                snprintf(raw + len, sizeof raw - (size_t)len, ",\"server_s\":%.3f", s.start_s);
            server_stop(&s, SIGKILL);
        } else {
            ok = false; /* server_start said why */
        }
        len = (int)strlen(raw);
        if ((size_t)len + 1 < sizeof raw) snprintf(raw + len, sizeof raw - (size_t)len, "}");
        pd__report_extra(rep, "recovery", raw);
    }
    return ok;
}

/* ---------------------------------------------------------------- main */

static void default_server(char *buf, size_t cap) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        snprintf(buf, cap, "paidan-server");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    path_in(buf, cap, self, "../api/paidan-server");
}

enum {
    O_FILTER = 256,
    O_DIR,
    O_KEEP,
    O_RECORDS,
    O_BATCH,
    O_VOLS,
    O_ORDERS,
    O_JREC,
    O_CLIENTS,
    O_PIPE,
    O_SECS,
    O_SERVER,
    O_JSON,
    O_QUIET
};

/* One option's value into o; false (with the message printed) if bad. */
static bool parse_one(const pd__opt_t *p, int ch, const char *arg, jopts_t *o) {
    switch (ch) {
        case O_FILTER:
            o->filter = arg;
            return pd__opt_list(p, ch, arg, "case", journal_cases,
                                sizeof journal_cases / sizeof journal_cases[0]);
        case O_RECORDS:
            return pd__opt_u64(p, ch, arg, 1, 1000000000000ULL, &o->records);
        case O_BATCH:
            return pd__opt_u32(p, ch, arg, 1, 1000000, &o->batch);
        case O_VOLS:
            return pd__opt_u64(p, ch, arg, 0, 100000000, &o->volunteers);
        case O_ORDERS:
            return pd__opt_u64(p, ch, arg, 0, 100000000, &o->orders);
        case O_JREC:
            return pd__opt_u64(p, ch, arg, 0, 10000000000ULL, &o->journal_records);
        case O_CLIENTS:
            /* the spawned server is started with --max-conns 2000 */
            return pd__opt_u32(p, ch, arg, 1, 2000, &o->clients);
        case O_PIPE:
            /* client_t keeps the send times of 256 requests */
            return pd__opt_u32(p, ch, arg, 1, 200, &o->pipeline);
        case O_SECS:
            return pd__opt_num(p, ch, arg, 0.001, 86400, &o->seconds);
        default:
            return false;
    }
}

/* Options into o; 0, or 2 for a refused command line (said on stderr),
 * or -1 after --help. */
static int parse_opts(int argc, char **argv, jopts_t *o) {
    static const struct option lo[] = {{"filter", required_argument, NULL, O_FILTER},
                                       {"dir", required_argument, NULL, O_DIR},
                                       {"keep", no_argument, NULL, O_KEEP},
                                       {"records", required_argument, NULL, O_RECORDS},
                                       {"batch", required_argument, NULL, O_BATCH},
                                       {"volunteers", required_argument, NULL, O_VOLS},
                                       {"orders", required_argument, NULL, O_ORDERS},
                                       {"journal-records", required_argument, NULL, O_JREC},
                                       {"clients", required_argument, NULL, O_CLIENTS},
                                       {"pipeline", required_argument, NULL, O_PIPE},
                                       {"seconds", required_argument, NULL, O_SECS},
                                       {"server", required_argument, NULL, O_SERVER},
                                       {"json", no_argument, NULL, O_JSON},
                                       {"quiet", no_argument, NULL, O_QUIET},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const pd__opt_t p = {"journal", "h", lo};
    pd__opt_begin(&p, argv);
    int ch;
    while ((ch = getopt_long(argc, argv, p.shorts, lo, NULL)) != -1) {
        switch (ch) {
            case O_DIR:
                o->dir = optarg;
                break;
            case O_KEEP:
                o->keep = true;
                break;
            case O_SERVER:
                o->server = optarg;
                break;
            case O_JSON:
                o->json = true;
                break;
            case O_QUIET:
                o->quiet = true;
                break;
            case 'h':
                usage(stdout);
                return -1;
            case '?':
            case ':':
                pd__opt_try_help(&p);
                return 2;
            default:
                if (!parse_one(&p, ch, optarg, o)) return 2;
                break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "paidan-bench journal: unexpected argument '%s'\n", argv[optind]);
        pd__opt_try_help(&p);
        return 2;
    }
    return 0;
}

/* The scratch directory: made if missing, else it must be a directory we
 * can write (a file there made every case fail one by one). */
static bool scratch_ready(const char *dir) {
    struct stat st;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "paidan-bench journal: --dir %s: cannot create: %s\n", dir,
                strerror(errno));
        return false;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "paidan-bench journal: --dir %s: not a directory\n", dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "paidan-bench journal: --dir %s: cannot write there: %s\n", dir,
                strerror(errno));
        return false;
    }
    return true;
}

/* True if the --filter list names case (not just "all by default"). */
static bool named(const jopts_t *o, const char *c) {
    return o->filter && pd__bench_selected(o->filter, c);
}

int pd__bench_journal(int argc, char **argv) {
    jopts_t o = {.records = 2000000,
                 .batch = 256,
                 .volunteers = 1000000,
                 .orders = 1000000,
                 .journal_records = 100000,
                 .clients = 64,
                 .pipeline = 16,
                 .seconds = 3};
    static char server_buf[4096], dir_buf[4096];
    int prc = parse_opts(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    if (!o.server) {
        default_server(server_buf, sizeof(server_buf));
        o.server = server_buf;
    }
    bool do_append = pd__bench_selected(o.filter, "append");
    bool do_acked = pd__bench_selected(o.filter, "acked");
    bool do_snap = pd__bench_selected(o.filter, "snapshot");
    bool do_rec = pd__bench_selected(o.filter, "recovery");
    /* Cases that spawn paidan-server: an error when asked for by name,
     * skipped with a word otherwise; decided before anything runs. */
    o.have_server = access(o.server, X_OK) == 0;
    if (!o.have_server && (named(&o, "acked") || named(&o, "recovery"))) {
        fprintf(stderr,
                "paidan-bench journal: no paidan-server at %s (--server PATH): %s cannot run\n",
                o.server, named(&o, "acked") ? "acked" : "recovery/server");
        return 1;
    }
    if (!o.have_server && (do_acked || do_rec)) {
        fprintf(stderr, "journal: no paidan-server at %s (--server PATH); skipping acked%s\n",
                o.server, do_rec ? " and recovery/server" : "");
        do_acked = false;
    }
    bool made_dir = false;
    if (!o.dir) {
        snprintf(dir_buf, sizeof(dir_buf), "/tmp/paidan-bench-journal-XXXXXX");
        if (!mkdtemp(dir_buf)) {
            fprintf(stderr, "paidan-bench journal: cannot create a scratch directory: %s\n",
                    strerror(errno));
            return 1;
        }
        o.dir = dir_buf;
        made_dir = true;
    } else if (!scratch_ready(o.dir)) {
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    pd__report_t rep;
    pd__report_init(&rep, "journal", o.json);
    pd__report_param_num(&rep, "records", (double)o.records);
    pd__report_param_num(&rep, "batch", o.batch);
    pd__report_param_num(&rep, "volunteers", (double)o.volunteers);
    pd__report_param_num(&rep, "orders", (double)o.orders);
    pd__report_param_num(&rep, "journal_records", (double)o.journal_records);
    pd__report_param_num(&rep, "clients", o.clients);
    pd__report_param_num(&rep, "pipeline", o.pipeline);
    pd__report_param_num(&rep, "seconds", o.seconds);
    pd__report_param_str(&rep, "dir", o.dir);

    int failed = 0;
    char notes[1024] = "";
    if (do_append) {
        failed += !bench_append(&o, &rep, PD_FSYNC_NO);
        failed += !bench_append(&o, &rep, PD_FSYNC_EVERYSEC);
        failed += !bench_append(&o, &rep, PD_FSYNC_ALWAYS);
    }
    if (do_acked) {
        failed += !bench_acked(&o, &rep, PD_FSYNC_ALWAYS);
        failed += !bench_acked(&o, &rep, PD_FSYNC_EVERYSEC);
    }
    if (do_snap || do_rec)
        failed += !bench_snapshot_recovery(&o, &rep, do_snap, do_rec, notes, sizeof notes);

    pd__report_print(&rep, stdout);
    if (!o.json) fputs(notes, stdout);
    int rc = 0;
    if (rep.n_results == 0) {
        fprintf(stderr, "paidan-bench journal: nothing was measured (see above)\n");
        rc = 1;
    } else if (failed) {
        fprintf(stderr, "paidan-bench journal: not every case ran cleanly (see above)\n");
        rc = 1;
    }
    pd__report_deinit(&rep);
    if (made_dir && !o.keep) rm_tree(o.dir);
    return rc;
}
