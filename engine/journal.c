/* journal.c -- the journal: framed records in segment files, the writer
 * with its fsync policies, the reader that tells a torn tail from
 * corruption in the middle, and the data directory (lock, recovery,
 * rotation, pruning).
 *
 * Segment file. A 32-byte header, then records back to back:
 *
 *   header   0  magic "PDJOURNL"
 *            8  u32 version (1)
 *           12  u32 header size (32)
 *           16  u64 first seq
 *           24  u64 XXH3_64bits of bytes 0..24
 *   record   0  u64 XXH3_64bits of bytes 8 .. 32+len (frame fields and payload)
 *            8  u32 len (payload bytes)
 *           12  u16 type (PD_JREC_*)
 *           14  u16 flags (0)
 *           16  u64 seq
 *           24  i64 ts_ms
 *           32  payload
 *
 * One hash covers the length, the type, the seq, the time and the payload,
 * so any flipped bit in a record is caught, and a record is one contiguous
 * XXH3 call. Seqs run without gaps, so a stale or repeated record is caught
 * too.
 *
 * Writer. Appends go to a memory buffer; pd_journal_commit() hands the
 * buffer to write() once per batch (the server calls it once per loop
 * iteration), so the cost per append is a memcpy and a hash. Under
 * `always` the commit also fdatasync()s before returning, and the server
 * answers the batch only after that: group commit, one sync shared by
 * every client of the iteration. Under `everysec` a background thread
 * fdatasync()s whatever was written, once a second (redis's appendfsync
 * everysec). Under `no` the kernel writes back when it likes. A failed
 * write cuts the file back to the last whole record and breaks the
 * writer: the server must not acknowledge anything after that.
 *
 * Reader. pd_journal_scan() maps the file and walks it. At the first bad
 * record it searches the rest of the file for any valid record (a frame
 * whose checksum holds and whose seq follows): none means the tail was
 * torn by a crash mid-write (cut it, warn, go on); one means bytes in the
 * middle went bad (stop, or cut there if the operator says so).
 *
 * Data directory. Segments are named by their first seq and snapshots by
 * their seq, so a directory listing is the whole catalogue; see
 * paidan/journal.h for the layout and docs/operations.md for the rules.
 */
#define _GNU_SOURCE /* fallocate */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "paidan/alloc.h"

static const uint8_t SEG_MAGIC[8] = {'P', 'D', 'J', 'O', 'U', 'R', 'N', 'L'};

/* Bytes buffered before an append writes them out on its own. */
#define FLUSH_AT (1u << 20)

/* ================================================================ helpers */

pd_err pd__write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return PD_ERR_IO;
        }
        if (w == 0) {
            errno = EIO;
            return PD_ERR_IO;
        }
        b += w;
        n -= (size_t)w;
    }
    return PD_OK;
}

pd_err pd__fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PD_ERR_IO;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0 ? PD_OK : PD_ERR_IO;
}

void pd__dirname(const char *path, char *buf) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, PD_STORE_PATH_MAX, ".");
    } else if (slash == path) {
        snprintf(buf, PD_STORE_PATH_MAX, "/");
    } else {
        snprintf(buf, PD_STORE_PATH_MAX, "%.*s", (int)(slash - path), path);
    }
}

uint64_t pd__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *pd_fsync_policy_name(pd_fsync_policy p) {
    switch (p) {
        case PD_FSYNC_NO:
            return "no";
        case PD_FSYNC_EVERYSEC:
            return "everysec";
        case PD_FSYNC_ALWAYS:
            return "always";
        default:
            return NULL;
    }
}

pd_err pd_fsync_policy_from_name(const char *s, pd_fsync_policy *out) {
    for (int p = 0; p < PD_FSYNC__COUNT; p++) {
        if (s && strcmp(s, pd_fsync_policy_name((pd_fsync_policy)p)) == 0) {
            *out = (pd_fsync_policy)p;
            return PD_OK;
        }
    }
    return PD_ERR_BAD_ARG;
}

/* ================================================================= writer */

struct pd_journal_s {
    int fd;
    pd_fsync_policy policy;
    bool broken;       /* a write or sync failed: refuse appends */
    uint64_t next_seq; /* seq of the next append */
    uint64_t file_off; /* bytes handed to write() so far (header included) */
    uint64_t reserved; /* file bytes whose blocks are allocated ahead (pd_journal_reserve) */
    bool no_reserve;   /* the file system cannot allocate ahead */
    uint8_t *buf;      /* appended, not yet written */
    size_t len, cap;
    pd_journal_stats_t st; /* appends, bytes, writes, commits (this thread) */

    /* everysec: the background syncer. */
    bool thread_on;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;                   /* under mu */
    _Atomic uint64_t written;    /* file_off as the syncer sees it */
    _Atomic uint64_t synced;     /* bytes known to be on disk */
    _Atomic uint64_t bg_syncs;   /* syncs the thread made */
    _Atomic uint64_t bg_sync_ns; /* and their time */
    _Atomic uint64_t bg_max_ns;
    _Atomic int bg_failed; /* a background sync failed */
};

static pd_err do_sync(pd_journal_t *j) {
    uint64_t t0 = pd__now_ns();
    int rc;
    do {
        rc = fdatasync(j->fd);
    } while (rc != 0 && errno == EINTR);
    uint64_t dt = pd__now_ns() - t0;
    if (rc != 0) return PD_ERR_IO;
    j->st.syncs++;
    j->st.sync_ns += dt;
    if (dt > j->st.max_sync_ns) j->st.max_sync_ns = dt;
    atomic_store(&j->synced, j->file_off);
    return PD_OK;
}

static void *syncer_main(void *arg) {
    pd_journal_t *j = arg;
    pthread_mutex_lock(&j->mu);
    while (!j->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (j->stop) break;
        uint64_t w = atomic_load(&j->written);
        if (w <= atomic_load(&j->synced)) continue;
        pthread_mutex_unlock(&j->mu);
        uint64_t t0 = pd__now_ns();
        int rc;
        do {
            rc = fdatasync(j->fd);
        } while (rc != 0 && errno == EINTR);
        uint64_t dt = pd__now_ns() - t0;
        pthread_mutex_lock(&j->mu);
        if (rc != 0) {
            atomic_store(&j->bg_failed, 1);
            continue;
        }
        atomic_fetch_add(&j->bg_syncs, 1);
        atomic_fetch_add(&j->bg_sync_ns, dt);
        if (dt > atomic_load(&j->bg_max_ns)) atomic_store(&j->bg_max_ns, dt);
        if (w > atomic_load(&j->synced)) atomic_store(&j->synced, w);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static pd_err start_syncer(pd_journal_t *j) {
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) return PD_ERR_NOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) return PD_ERR_NOMEM;
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        pthread_cond_destroy(&j->cv);
        return PD_ERR_NOMEM;
    }
    /* The thread takes no signal: they are for the thread that runs the
     * event loop (a server's SIGHUP, blocked there for a moment while it
     * stops, would otherwise land here and take the default action). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&j->thread, NULL, syncer_main, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        return PD_ERR_NOMEM;
    }
    j->thread_on = true;
    return PD_OK;
}

static void stop_syncer(pd_journal_t *j) {
    if (!j->thread_on) return;
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    j->thread_on = false;
}

static void encode_seg_header(uint8_t h[PD_JOURNAL_HEADER_SIZE], uint64_t first_seq) {
    memcpy(h, SEG_MAGIC, 8);
    pd__put_u32(h + 8, PD_JOURNAL_VERSION);
    pd__put_u32(h + 12, PD_JOURNAL_HEADER_SIZE);
    pd__put_u64(h + 16, first_seq);
    pd__put_u64(h + 24, XXH3_64bits(h, 24));
}

/* Check a segment header; why names the problem. */
static pd_err decode_seg_header(const uint8_t *h, size_t n, uint64_t *first_seq, const char **why) {
    if (n < PD_JOURNAL_HEADER_SIZE) {
        *why = "file shorter than the header";
        return PD_ERR_CORRUPT;
    }
    if (memcmp(h, SEG_MAGIC, 8) != 0) {
        *why = "not a journal segment (bad magic)";
        return PD_ERR_CORRUPT;
    }
    if (pd__get_u64(h + 24) != XXH3_64bits(h, 24)) {
        *why = "header checksum mismatch";
        return PD_ERR_CORRUPT;
    }
    if (pd__get_u32(h + 8) != PD_JOURNAL_VERSION) {
        *why = "unsupported journal format version";
        return PD_ERR_CORRUPT;
    }
    if (pd__get_u32(h + 12) != PD_JOURNAL_HEADER_SIZE || pd__get_u64(h + 16) == 0) {
        *why = "bad header fields";
        return PD_ERR_CORRUPT;
    }
    *first_seq = pd__get_u64(h + 16);
    return PD_OK;
}

static pd_err journal_alloc(int fd, pd_fsync_policy policy, uint64_t off, uint64_t next_seq,
                            pd_journal_t **out) {
    pd_journal_t *j = pd_calloc(1, sizeof(*j));
    if (!j) return PD_ERR_NOMEM;
    j->fd = fd;
    j->policy = policy;
    j->next_seq = next_seq;
    j->file_off = off;
    atomic_init(&j->written, off);
    atomic_init(&j->synced, off);
    atomic_init(&j->bg_syncs, 0);
    atomic_init(&j->bg_sync_ns, 0);
    atomic_init(&j->bg_max_ns, 0);
    atomic_init(&j->bg_failed, 0);
    j->cap = 64 * 1024;
    j->buf = pd_malloc(j->cap);
    if (!j->buf) {
        pd_free(j);
        return PD_ERR_NOMEM;
    }
    if (policy == PD_FSYNC_EVERYSEC) {
        pd_err err = start_syncer(j);
        if (err) {
            pd_free(j->buf);
            pd_free(j);
            return err;
        }
    }
    *out = j;
    return PD_OK;
}

pd_err pd_journal_create(const char *path, pd_fsync_policy policy, uint64_t first_seq,
                         pd_journal_t **out) {
    if (!path || first_seq == 0 || (unsigned)policy >= PD_FSYNC__COUNT) return PD_ERR_BAD_ARG;
    char tmp[PD_STORE_PATH_MAX], dir[PD_STORE_PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) return PD_ERR_BAD_ARG;
    if (access(path, F_OK) == 0) {
        errno = EEXIST;
        return PD_ERR_IO;
    }
    /* Header first under a temporary name, then rename: a segment file
     * always has a whole header. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return PD_ERR_IO;
    uint8_t h[PD_JOURNAL_HEADER_SIZE];
    encode_seg_header(h, first_seq);
    pd__dirname(path, dir);
    if (pd__write_all(fd, h, sizeof(h)) || fdatasync(fd) != 0 || rename(tmp, path) != 0 ||
        pd__fsync_dir(dir)) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        return PD_ERR_IO;
    }
    pd_err err = journal_alloc(fd, policy, PD_JOURNAL_HEADER_SIZE, first_seq, out);
    if (err) {
        close(fd);
        unlink(path);
    }
    return err;
}

pd_err pd_journal_open_append(const char *path, pd_fsync_policy policy, uint64_t end,
                              uint64_t next_seq, pd_journal_t **out) {
    if (!path || next_seq == 0 || (unsigned)policy >= PD_FSYNC__COUNT) return PD_ERR_BAD_ARG;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return PD_ERR_IO;
    uint8_t h[PD_JOURNAL_HEADER_SIZE];
    ssize_t n = pread(fd, h, sizeof(h), 0);
    uint64_t first = 0;
    const char *why = NULL;
    if (n < 0) {
        close(fd);
        return PD_ERR_IO;
    }
    if (decode_seg_header(h, (size_t)n, &first, &why) || end < PD_JOURNAL_HEADER_SIZE ||
        next_seq < first) {
        close(fd);
        return PD_ERR_CORRUPT;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return PD_ERR_IO;
    }
    if ((uint64_t)sb.st_size != end) {
        if (ftruncate(fd, (off_t)end) != 0 || fdatasync(fd) != 0) {
            close(fd);
            return PD_ERR_IO;
        }
    } else if ((uint64_t)sb.st_blocks * 512 > end + 65536) {
        /* Blocks a killed writer had allocated ahead (pd_journal_reserve). */
        (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)end,
                        (off_t)((uint64_t)sb.st_blocks * 512 - end));
        (void)ftruncate(fd, (off_t)end);
    }
    if (lseek(fd, (off_t)end, SEEK_SET) < 0) {
        close(fd);
        return PD_ERR_IO;
    }
    pd_err err = journal_alloc(fd, policy, end, next_seq, out);
    if (err) close(fd);
    return err;
}

/* Hand the buffer to write(). On failure cut the file back to the last
 * whole record and break the journal. */
static pd_err write_out(pd_journal_t *j) {
    if (j->len == 0) return PD_OK;
    if (pd__write_all(j->fd, j->buf, j->len)) {
        int saved = errno;
        if (ftruncate(j->fd, (off_t)j->file_off) == 0) lseek(j->fd, (off_t)j->file_off, SEEK_SET);
        j->broken = true;
        errno = saved;
        return PD_ERR_IO;
    }
    j->st.writes++;
    j->file_off += j->len;
    j->len = 0;
    atomic_store(&j->written, j->file_off);
    return PD_OK;
}

pd_err pd_journal_append2(pd_journal_t *j, uint16_t type, int64_t ts_ms, const void *a, size_t alen,
                          const void *b, size_t blen, uint64_t *seq_out) {
    if (j->broken || atomic_load(&j->bg_failed)) {
        j->broken = true;
        return PD_ERR_IO;
    }
    if (alen > PD_JREC_MAX_LEN || blen > PD_JREC_MAX_LEN - alen) return PD_ERR_TOO_LARGE;
    size_t need = PD_JREC_HEADER_SIZE + alen + blen;
    if (j->len + need > j->cap) {
        if (j->len >= FLUSH_AT) {
            pd_err err = write_out(j);
            if (err) return err;
        }
        if (j->len + need > j->cap) {
            size_t cap = j->cap;
            while (cap < j->len + need) cap *= 2;
            uint8_t *nb = pd_realloc(j->buf, cap);
            if (!nb) return PD_ERR_NOMEM;
            j->buf = nb;
            j->cap = cap;
        }
    }
    uint8_t *r = j->buf + j->len;
    pd__put_u32(r + 8, (uint32_t)(alen + blen));
    pd__put_u16(r + 12, type);
    pd__put_u16(r + 14, 0);
    pd__put_u64(r + 16, j->next_seq);
    pd__put_u64(r + 24, (uint64_t)ts_ms);
    if (alen) memcpy(r + PD_JREC_HEADER_SIZE, a, alen);
    if (blen) memcpy(r + PD_JREC_HEADER_SIZE + alen, b, blen);
    pd__put_u64(r, XXH3_64bits(r + 8, need - 8));
    j->len += need;
    if (seq_out) *seq_out = j->next_seq;
    j->next_seq++;
    j->st.appends++;
    j->st.bytes += need;
    return PD_OK;
}

pd_err pd_journal_append(pd_journal_t *j, uint16_t type, int64_t ts_ms, const void *data,
                         size_t len, uint64_t *seq_out) {
    return pd_journal_append2(j, type, ts_ms, data, len, NULL, 0, seq_out);
}

pd_err pd_journal_commit(pd_journal_t *j) {
    if (j->broken) return PD_ERR_IO;
    if (j->len == 0 && (j->policy != PD_FSYNC_ALWAYS || atomic_load(&j->synced) == j->file_off))
        return PD_OK;
    j->st.commits++;
    pd_err err = write_out(j);
    if (err) return err;
    if (j->policy == PD_FSYNC_ALWAYS) {
        err = do_sync(j);
        if (err) j->broken = true;
    }
    return err;
}

pd_err pd_journal_sync(pd_journal_t *j) {
    if (j->broken) return PD_ERR_IO;
    pd_err err = write_out(j);
    if (!err) err = do_sync(j);
    if (err) j->broken = true;
    return err;
}

pd_err pd_journal_reserve(pd_journal_t *j, uint64_t more) {
    uint64_t end = pd_journal_size(j) + more;
    if (j->no_reserve || end <= j->reserved) return PD_OK;
    /* KEEP_SIZE: the blocks are allocated but the file's size stays where
     * the records end, so readers and recovery see nothing new. */
    int rc;
    do {
        rc = fallocate(j->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)end);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) {
        j->reserved = end;
        return PD_OK;
    }
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
        j->no_reserve = true;
        return PD_OK;
    }
    return PD_ERR_IO;
}

uint64_t pd_journal_room(const pd_journal_t *j) {
    uint64_t size = pd_journal_size(j);
    if (j->no_reserve) return UINT64_MAX;
    return j->reserved > size ? j->reserved - size : 0;
}

pd_err pd_journal_close(pd_journal_t *j) {
    if (!j) return PD_OK;
    stop_syncer(j);
    pd_err err = j->broken ? PD_ERR_IO : pd_journal_sync(j);
    /* Give back the blocks allocated ahead and never written: ext4 frees
     * them on a truncate to the same size, tmpfs on a punched hole. */
    if (j->reserved > j->file_off && !j->broken) {
        (void)fallocate(j->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)j->file_off,
                        (off_t)(j->reserved - j->file_off));
        (void)ftruncate(j->fd, (off_t)j->file_off);
    }
    if (close(j->fd) != 0 && !err) err = PD_ERR_IO;
    pd_free(j->buf);
    pd_free(j);
    return err;
}

uint64_t pd_journal_next_seq(const pd_journal_t *j) {
    return j->next_seq;
}

uint64_t pd_journal_size(const pd_journal_t *j) {
    return j->file_off + j->len;
}

size_t pd_journal_pending(const pd_journal_t *j) {
    return j->len;
}

void pd_journal_get_stats(const pd_journal_t *j, pd_journal_stats_t *out) {
    *out = j->st;
    out->syncs += atomic_load(&((pd_journal_t *)j)->bg_syncs);
    out->sync_ns += atomic_load(&((pd_journal_t *)j)->bg_sync_ns);
    uint64_t bgmax = atomic_load(&((pd_journal_t *)j)->bg_max_ns);
    if (bgmax > out->max_sync_ns) out->max_sync_ns = bgmax;
}

/* ================================================================= reader */

/* Check the frame at off: whole, in range, checksum good, seq as expected
 * (exact, or within [lo, hi] when resyncing). Returns the frame size, or 0
 * and why. */
static size_t check_frame(const uint8_t *base, uint64_t size, uint64_t off, uint64_t lo,
                          uint64_t hi, const char **why) {
    if (size - off < PD_JREC_HEADER_SIZE) {
        *why = "record header cut short";
        return 0;
    }
    const uint8_t *r = base + off;
    uint32_t len = pd__get_u32(r + 8);
    if (len > PD_JREC_MAX_LEN) {
        *why = "record length out of range";
        return 0;
    }
    if (size - off - PD_JREC_HEADER_SIZE < len) {
        *why = "record payload cut short";
        return 0;
    }
    uint64_t seq = pd__get_u64(r + 16);
    if (seq < lo || seq > hi) {
        /* Checked before the hash: cheap, and what makes resync fast. */
        *why = "record out of sequence";
        if (pd__get_u64(r) == XXH3_64bits(r + 8, (size_t)len + PD_JREC_HEADER_SIZE - 8)) return 0;
        *why = "record checksum mismatch";
        return 0;
    }
    if (pd__get_u64(r) != XXH3_64bits(r + 8, (size_t)len + PD_JREC_HEADER_SIZE - 8)) {
        *why = "record checksum mismatch";
        return 0;
    }
    if (pd__get_u16(r + 14) != 0) {
        *why = "unknown record flags";
        return 0;
    }
    return PD_JREC_HEADER_SIZE + (size_t)len;
}

pd_err pd_journal_scan(const char *path, pd_jrec_fn fn, void *ud, pd_jscan_t *out) {
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PD_ERR_IO;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return PD_ERR_IO;
    }
    uint64_t size = (uint64_t)sb.st_size;
    out->file_size = size;
    const uint8_t *base = NULL;
    if (size > 0) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return PD_ERR_IO;
        }
        base = m;
        madvise(m, size, MADV_SEQUENTIAL);
    }
    close(fd);

    pd_err err = decode_seg_header(base, size, &out->first_seq, &out->why);
    if (err) {
        if (base) munmap((void *)base, size);
        return err;
    }
    out->last_seq = out->first_seq - 1;
    uint64_t off = PD_JOURNAL_HEADER_SIZE;
    while (off < size) {
        const char *why = NULL;
        uint64_t want = out->last_seq + 1;
        size_t n = check_frame(base, size, off, want, want, &why);
        if (n == 0) {
            out->why = why;
            out->bad_offset = off;
            out->how = PD_JSCAN_TORN;
            /* Any valid record later on? Its seq must follow the last good
             * one, and there is at most one record per header's worth. */
            uint64_t hi = want + (size - off) / PD_JREC_HEADER_SIZE + 1;
            const char *ignored = NULL;
            for (uint64_t o = off + 1; o + PD_JREC_HEADER_SIZE <= size; o++) {
                if (check_frame(base, size, o, want, hi, &ignored)) {
                    out->how = PD_JSCAN_CORRUPT;
                    break;
                }
            }
            break;
        }
        if (fn) {
            pd_jrec_t rec = {.seq = want,
                             .ts_ms = (int64_t)pd__get_u64(base + off + 24),
                             .type = pd__get_u16(base + off + 12),
                             .len = (uint32_t)(n - PD_JREC_HEADER_SIZE),
                             .data = base + off + PD_JREC_HEADER_SIZE};
            err = fn(ud, &rec);
            if (err) {
                out->end = off;
                munmap((void *)base, size);
                return err;
            }
        }
        out->n_records++;
        out->last_seq = want;
        off += n;
    }
    out->end = out->how == PD_JSCAN_CLEAN ? size : out->bad_offset;
    if (base) munmap((void *)base, size);
    return PD_OK;
}

/* ========================================================= data directory */

/* One file of the catalogue. */
typedef struct entry_s {
    uint64_t seq; /* snapshot seq / segment first seq */
    char name[64];
} entry_t;

typedef struct catalogue_s {
    entry_t *snaps; /* by seq, ascending */
    size_t n_snaps;
    entry_t *segs; /* by first seq, ascending */
    size_t n_segs;
} catalogue_t;

struct pd_store_s {
    char dir[PD_STORE_PATH_MAX];
    pd_store_opts_t opts;
    int lock_fd;
    pd_journal_t *j;            /* the segment being appended to */
    uint64_t seg_first;         /* its first seq */
    pd_journal_stats_t closed;  /* counters of segments closed so far */
    uint64_t snap_seq;          /* newest snapshot on disk */
    pd_snapshot_writer_t *snap; /* in progress */
    uint64_t snap_pending_seq;
    uint64_t hold; /* segments with a record >= hold are kept; 0 = none */
    bool held;     /* pd_store_hold() was called (opts.keep_segments) */
};

static void slog(const pd_store_t *st, pd_store_level lv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void slog(const pd_store_t *st, pd_store_level lv, const char *fmt, ...) {
    if (!st->opts.log) return;
    char m[PD_STORE_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    st->opts.log(st->opts.log_ud, lv, m);
}

static void set_msg(char *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_msg(char *msg, const char *fmt, ...) {
    if (!msg) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, PD_STORE_MSG_MAX, fmt, ap);
    va_end(ap);
}

/* dir is at most PD_STORE_PATH_MAX - 128 bytes and names are short, so
 * this never truncates; if it did, the empty path would fail to open. */
static void path_of(const pd_store_t *st, const char *name, char *buf) {
    if (snprintf(buf, PD_STORE_PATH_MAX, "%s/%s", st->dir, name) >= PD_STORE_PATH_MAX) buf[0] = 0;
}

static void seg_name(uint64_t seq, char *buf) {
    snprintf(buf, 64, "journal-%020" PRIu64 ".pdj", seq);
}

static void snap_name(uint64_t seq, char *buf) {
    snprintf(buf, 64, "snap-%020" PRIu64 ".pds", seq);
}

void pd_store_opts_init(pd_store_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->fsync = PD_FSYNC_EVERYSEC;
}

/* mkdir -p */
static pd_err make_dirs(const char *dir) {
    char p[PD_STORE_PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p)) return PD_ERR_BAD_ARG;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return PD_ERR_IO;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return PD_ERR_IO;
    struct stat sb;
    if (stat(p, &sb) != 0) return PD_ERR_IO;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return PD_ERR_IO;
    }
    return PD_OK;
}

static int cmp_entry(const void *a, const void *b) {
    uint64_t x = ((const entry_t *)a)->seq, y = ((const entry_t *)b)->seq;
    return x < y ? -1 : x > y;
}

static void catalogue_free(catalogue_t *c) {
    pd_free(c->snaps);
    pd_free(c->segs);
    memset(c, 0, sizeof(*c));
}

static pd_err push_entry(entry_t **arr, size_t *n, uint64_t seq, const char *name) {
    entry_t *na = pd_realloc(*arr, (*n + 1) * sizeof(entry_t));
    if (!na) return PD_ERR_NOMEM;
    *arr = na;
    na[*n].seq = seq;
    snprintf(na[*n].name, sizeof(na[*n].name), "%s", name);
    (*n)++;
    return PD_OK;
}

/* Parse "<prefix><20 digits><suffix>" exactly. */
static bool parse_name(const char *name, const char *prefix, const char *suffix, uint64_t *seq) {
    size_t pl = strlen(prefix), sl = strlen(suffix), nl = strlen(name);
    if (nl != pl + 20 + sl || strncmp(name, prefix, pl) != 0 || strcmp(name + pl + 20, suffix))
        return false;
    uint64_t v = 0;
    for (size_t i = pl; i < pl + 20; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *seq = v;
    return true;
}

/* List snapshots and segments; with remove_tmp, delete *.tmp files. */
static pd_err catalogue_load(const pd_store_t *st, catalogue_t *c, bool remove_tmp) {
    memset(c, 0, sizeof(*c));
    DIR *d = opendir(st->dir);
    if (!d) return PD_ERR_IO;
    pd_err err = PD_OK;
    struct dirent *de;
    while (!err && (de = readdir(d)) != NULL) {
        uint64_t seq;
        size_t nl = strlen(de->d_name);
        if (parse_name(de->d_name, "snap-", ".pds", &seq)) {
            err = push_entry(&c->snaps, &c->n_snaps, seq, de->d_name);
        } else if (parse_name(de->d_name, "journal-", ".pdj", &seq)) {
            err = push_entry(&c->segs, &c->n_segs, seq, de->d_name);
        } else if (remove_tmp && nl > 4 && strcmp(de->d_name + nl - 4, ".tmp") == 0) {
            char p[PD_STORE_PATH_MAX];
            path_of(st, de->d_name, p);
            if (unlink(p) == 0) slog(st, PD_STORE_INFO, "removed unfinished file %s", p);
        }
    }
    closedir(d);
    if (err) {
        catalogue_free(c);
        return err;
    }
    if (c->n_snaps > 1) qsort(c->snaps, c->n_snaps, sizeof(entry_t), cmp_entry);
    if (c->n_segs > 1) qsort(c->segs, c->n_segs, sizeof(entry_t), cmp_entry);
    return PD_OK;
}

pd_err pd_store_open(const char *dir, const pd_store_opts_t *opts, pd_store_t **out, char *msg) {
    if (!dir || !*dir || strlen(dir) > PD_STORE_PATH_MAX - 128) {
        set_msg(msg, "data directory path empty or too long");
        return PD_ERR_BAD_ARG;
    }
    if (opts && (unsigned)opts->fsync >= PD_FSYNC__COUNT) {
        set_msg(msg, "bad fsync policy");
        return PD_ERR_BAD_ARG;
    }
    if (make_dirs(dir)) {
        set_msg(msg, "cannot create data directory %s: %s", dir, strerror(errno));
        return PD_ERR_IO;
    }
    pd_store_t *st = pd_calloc(1, sizeof(*st));
    if (!st) {
        set_msg(msg, "out of memory");
        return PD_ERR_NOMEM;
    }
    snprintf(st->dir, sizeof(st->dir), "%s", dir);
    if (opts)
        st->opts = *opts;
    else
        pd_store_opts_init(&st->opts);
    char lp[PD_STORE_PATH_MAX];
    path_of(st, "LOCK", lp);
    st->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0) {
        set_msg(msg, "cannot open %s: %s", lp, strerror(errno));
        pd_free(st);
        return PD_ERR_IO;
    }
    int locked = flock(st->lock_fd, LOCK_EX | LOCK_NB);
    for (uint32_t waited = 0; locked != 0 && errno == EWOULDBLOCK && waited < st->opts.lock_wait_ms;
         waited += 10) {
        usleep(10 * 1000);
        locked = flock(st->lock_fd, LOCK_EX | LOCK_NB);
    }
    if (locked != 0) {
        int saved = errno;
        char pid[32] = "";
        ssize_t n = pread(st->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (saved == EWOULDBLOCK) {
            set_msg(msg, "data directory %s is in use by another paidan-server (pid %s)", dir,
                    *pid ? pid : "?");
        } else {
            set_msg(msg, "cannot lock %s: %s", lp, strerror(saved));
        }
        close(st->lock_fd);
        pd_free(st);
        return saved == EWOULDBLOCK ? PD_ERR_LIMIT : PD_ERR_IO;
    }
    char pid[32];
    int pl = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(st->lock_fd, 0) != 0 || pwrite(st->lock_fd, pid, (size_t)pl, 0) != pl) {
        set_msg(msg, "cannot write %s: %s", lp, strerror(errno));
        close(st->lock_fd);
        pd_free(st);
        return PD_ERR_IO;
    }
    *out = st;
    return PD_OK;
}

const char *pd_store_dir(const pd_store_t *st) {
    return st->dir;
}

pd_journal_t *pd_store_journal(pd_store_t *st) {
    return st->j;
}

pd_fsync_policy pd_store_fsync(const pd_store_t *st) {
    return st->opts.fsync;
}

uint64_t pd_store_journal_bytes(const pd_store_t *st) {
    return st->j ? pd_journal_size(st->j) - PD_JOURNAL_HEADER_SIZE : 0;
}

uint64_t pd_store_snapshot_seq(const pd_store_t *st) {
    return st->snap_seq;
}

bool pd_store_snapshot_busy(const pd_store_t *st) {
    return st->snap != NULL;
}

static void add_stats(pd_journal_stats_t *a, const pd_journal_stats_t *b) {
    a->appends += b->appends;
    a->bytes += b->bytes;
    a->writes += b->writes;
    a->syncs += b->syncs;
    a->sync_ns += b->sync_ns;
    if (b->max_sync_ns > a->max_sync_ns) a->max_sync_ns = b->max_sync_ns;
    a->commits += b->commits;
}

void pd_store_get_stats(const pd_store_t *st, pd_journal_stats_t *out) {
    *out = st->closed;
    if (st->j) {
        pd_journal_stats_t s;
        pd_journal_get_stats(st->j, &s);
        add_stats(out, &s);
    }
}

/* ------------------------------------------------------------- recovery */

typedef struct replay_s {
    pd_jrec_fn apply;
    void *ud;
    uint64_t skip_upto; /* records <= this are in the snapshot */
    uint64_t expect;    /* next seq the state needs */
    uint64_t applied;
    const char *seg; /* file being read, for messages */
    pd_err apply_err;
    uint64_t bad_seq;
} replay_t;

static pd_err replay_one(void *ud, const pd_jrec_t *rec) {
    replay_t *r = ud;
    if (rec->seq <= r->skip_upto) return PD_OK;
    if (PD_NEVER(rec->seq != r->expect)) return PD_ERR_CORRUPT;
    pd_err err = r->apply ? r->apply(r->ud, rec) : PD_OK;
    if (err) {
        r->apply_err = err;
        r->bad_seq = rec->seq;
        return err;
    }
    r->expect++;
    r->applied++;
    return PD_OK;
}

/* Remove (or with truncate_corrupt keep nothing of) segments after index i. */
static pd_err drop_segments_after(pd_store_t *st, const catalogue_t *c, size_t i,
                                  pd_store_report_t *rep) {
    for (size_t k = i + 1; k < c->n_segs; k++) {
        char p[PD_STORE_PATH_MAX];
        path_of(st, c->segs[k].name, p);
        struct stat sb;
        if (stat(p, &sb) == 0) rep->corrupt_bytes += (uint64_t)sb.st_size;
        if (unlink(p) != 0) return PD_ERR_IO;
        slog(st, PD_STORE_WARN, "truncate-corrupt: removed later journal segment %s", p);
    }
    return pd__fsync_dir(st->dir);
}

static pd_err cut_file(const char *path, uint64_t end) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return PD_ERR_IO;
    int rc = ftruncate(fd, (off_t)end);
    if (rc == 0) rc = fdatasync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0 ? PD_OK : PD_ERR_IO;
}

/* Rename a bad snapshot to "<name>.corrupt": kept for a post-mortem, out of
 * the catalogue, so pruning never counts it as one of the two to keep. */
static void set_aside(const pd_store_t *st, const char *path) {
    char to[PD_STORE_PATH_MAX + 16];
    snprintf(to, sizeof(to), "%s.corrupt", path);
    if (rename(path, to) == 0) {
        slog(st, PD_STORE_WARN, "moved %s aside to %s", path, to);
        pd__fsync_dir(st->dir);
    }
}

/* Load the newest usable snapshot; sets rep and *from. */
static pd_err load_snapshot(pd_store_t *st, const catalogue_t *c, pd_store_load_fn load, void *ud,
                            pd_store_report_t *rep, uint64_t *from) {
    *from = 0;
    for (size_t k = c->n_snaps; k-- > 0;) {
        char p[PD_STORE_PATH_MAX];
        path_of(st, c->snaps[k].name, p);
        pd_snapshot_file_t f;
        const char *why = NULL;
        uint64_t t0 = pd__now_ns();
        pd_err err = pd_snapshot_file_open(p, &f, &why);
        if (err == PD_ERR_NOMEM) return err;
        if (!err && f.seq != c->snaps[k].seq) {
            why = "seq in the header does not match the file name";
            err = PD_ERR_CORRUPT;
            pd_snapshot_file_close(&f);
        }
        if (err) {
            slog(st, PD_STORE_WARN, "snapshot %s is unusable (%s); trying the previous one", p,
                 err == PD_ERR_IO ? strerror(errno) : why);
            rep->snapshots_skipped++;
            if (err == PD_ERR_CORRUPT) set_aside(st, p);
            continue;
        }
        err = load ? load(ud, f.data, (size_t)f.len, f.seq, f.ts_ms) : PD_OK;
        uint64_t len = f.len;
        pd_snapshot_file_close(&f);
        if (err == PD_ERR_NOMEM) return err;
        if (err) {
            slog(st, PD_STORE_WARN, "snapshot %s did not load (%s); trying the previous one", p,
                 pd_strerror(err));
            rep->snapshots_skipped++;
            set_aside(st, p);
            continue;
        }
        rep->from_snapshot = true;
        rep->snapshot_seq = c->snaps[k].seq;
        rep->snapshot_bytes = len;
        rep->snapshot_ns = pd__now_ns() - t0;
        st->snap_seq = c->snaps[k].seq;
        *from = c->snaps[k].seq;
        slog(st, PD_STORE_INFO, "loaded snapshot %s: seq %" PRIu64 ", %" PRIu64 " bytes, %.3f s", p,
             *from, len, (double)rep->snapshot_ns / 1e9);
        return PD_OK;
    }
    return PD_OK;
}

static void prune(pd_store_t *st);

pd_err pd_store_recover(pd_store_t *st, pd_store_load_fn load, pd_jrec_fn apply, void *ud,
                        pd_store_report_t *rep, char *msg) {
    pd_store_report_t dummy;
    if (!rep) rep = &dummy;
    memset(rep, 0, sizeof(*rep));
    if (PD_NEVER(st->j != NULL)) {
        set_msg(msg, "already recovered");
        return PD_ERR_ILLEGAL;
    }
    catalogue_t c;
    pd_err err = catalogue_load(st, &c, true);
    if (err) {
        set_msg(msg, "cannot list data directory %s: %s", st->dir,
                err == PD_ERR_NOMEM ? "out of memory" : strerror(errno));
        return err;
    }
    uint64_t from = 0;
    err = load_snapshot(st, &c, load, ud, rep, &from);
    if (err) {
        set_msg(msg, "out of memory loading a snapshot");
        catalogue_free(&c);
        return err;
    }
    if (!rep->from_snapshot && c.n_snaps > 0 && (c.n_segs == 0 || c.segs[0].seq != 1)) {
        set_msg(msg,
                "no usable snapshot in %s (%zu found, all corrupt) and the journal does not "
                "reach back to seq 1",
                st->dir, c.n_snaps);
        catalogue_free(&c);
        return PD_ERR_CORRUPT;
    }

    /* The first segment that can hold seq from + 1. */
    size_t first = 0;
    while (first + 1 < c.n_segs && c.segs[first + 1].seq <= from + 1) first++;
    if (c.n_segs && c.segs[first].seq > from + 1) {
        set_msg(msg,
                "journal gap in %s: the state ends at seq %" PRIu64
                " but the oldest segment needed, %s, starts at seq %" PRIu64,
                st->dir, from, c.segs[first].name, c.segs[first].seq);
        catalogue_free(&c);
        return PD_ERR_CORRUPT;
    }

    replay_t r = {.apply = apply, .ud = ud, .skip_upto = from, .expect = from + 1};
    uint64_t t0 = pd__now_ns();
    size_t last = c.n_segs; /* index of the segment to append to */
    pd_jscan_t last_scan;
    memset(&last_scan, 0, sizeof(last_scan));
    for (size_t i = first; i < c.n_segs; i++) {
        char p[PD_STORE_PATH_MAX];
        path_of(st, c.segs[i].name, p);
        r.seg = p;
        bool is_last = i + 1 == c.n_segs;
        if (i > first && c.segs[i].seq != r.expect) {
            /* A gap between segments (a segment lost or cut short). */
            if (!st->opts.truncate_corrupt) {
                set_msg(msg,
                        "journal gap before %s: expected seq %" PRIu64 ", it starts at %" PRIu64
                        " (start with --truncate-corrupt to drop it and every later segment)",
                        p, r.expect, c.segs[i].seq);
                catalogue_free(&c);
                return PD_ERR_CORRUPT;
            }
            err = drop_segments_after(st, &c, i - 1, rep);
            if (err) {
                set_msg(msg, "cannot remove segments after a gap: %s", strerror(errno));
                catalogue_free(&c);
                return err;
            }
            break;
        }
        pd_jscan_t sc;
        err = pd_journal_scan(p, replay_one, &r, &sc);
        rep->segments++;
        if (err && r.apply_err) {
            set_msg(msg, "replaying record seq %" PRIu64 " of %s at offset %" PRIu64 " failed: %s",
                    r.bad_seq, p, sc.end, pd_strerror(err));
            catalogue_free(&c);
            return err;
        }
        if (err == PD_ERR_CORRUPT) {
            /* A bad segment header: nothing in the file can be trusted. */
            if (!st->opts.truncate_corrupt) {
                set_msg(msg,
                        "journal segment %s has a bad header (%s); refusing to start (start "
                        "with --truncate-corrupt to drop it%s)",
                        p, sc.why, is_last ? "" : " and every later segment");
                catalogue_free(&c);
                return err;
            }
            rep->corrupt_bytes += sc.file_size;
            err = unlink(p) == 0 ? drop_segments_after(st, &c, i, rep) : PD_ERR_IO;
            if (err) {
                set_msg(msg, "cannot remove %s: %s", p, strerror(errno));
                catalogue_free(&c);
                return err;
            }
            slog(st, PD_STORE_WARN, "truncate-corrupt: removed %s (%s)", p, sc.why);
            break;
        }
        if (err) {
            set_msg(msg, "cannot read journal segment %s: %s", p, strerror(errno));
            catalogue_free(&c);
            return err;
        }
        last = i;
        last_scan = sc;
        if (sc.how == PD_JSCAN_CLEAN) continue;
        uint64_t dropped = sc.file_size - sc.end;
        if (sc.how == PD_JSCAN_TORN && is_last) {
            err = cut_file(p, sc.end);
            if (err) {
                set_msg(msg, "cannot cut the torn tail of %s: %s", p, strerror(errno));
                catalogue_free(&c);
                return err;
            }
            rep->torn_bytes += dropped;
            slog(st, PD_STORE_WARN,
                 "journal %s: torn tail at offset %" PRIu64 " (%s): dropped %" PRIu64
                 " bytes after the last whole record (seq %" PRIu64 ")",
                 p, sc.end, sc.why, dropped, sc.last_seq);
            last_scan.file_size = sc.end;
            last_scan.how = PD_JSCAN_CLEAN;
            break;
        }
        /* Corruption in the middle (or a torn segment with more after it). */
        if (!st->opts.truncate_corrupt) {
            set_msg(msg,
                    "journal %s is corrupt at offset %" PRIu64 " (%s) after seq %" PRIu64
                    ", with %" PRIu64
                    " bytes after it%s; refusing to start (start with --truncate-corrupt to cut "
                    "the journal there and lose what follows)",
                    p, sc.bad_offset, sc.why, sc.last_seq, dropped,
                    is_last ? "" : " and later segments");
            catalogue_free(&c);
            return PD_ERR_CORRUPT;
        }
        err = cut_file(p, sc.end);
        if (!err) err = drop_segments_after(st, &c, i, rep);
        if (err) {
            set_msg(msg, "cannot truncate %s: %s", p, strerror(errno));
            catalogue_free(&c);
            return err;
        }
        rep->corrupt_bytes += dropped;
        slog(st, PD_STORE_WARN,
             "truncate-corrupt: cut journal %s at offset %" PRIu64 " (%s): dropped %" PRIu64
             " bytes",
             p, sc.bad_offset, sc.why, dropped);
        last_scan.file_size = sc.end;
        last_scan.how = PD_JSCAN_CLEAN;
        break;
    }
    rep->replay_ns = pd__now_ns() - t0;
    rep->records = r.applied;
    rep->last_seq = r.expect - 1;
    if (rep->segments)
        slog(st, PD_STORE_INFO,
             "replayed %" PRIu64
             " journal records from %u segment(s) in %.3f s; state at seq "
             "%" PRIu64,
             r.applied, rep->segments, (double)rep->replay_ns / 1e9, rep->last_seq);

    /* Open the journal for appends: the last segment if it ends where the
     * state does, else a fresh one. */
    uint64_t next = r.expect;
    if (last < c.n_segs && last_scan.last_seq + 1 == next) {
        char p[PD_STORE_PATH_MAX];
        path_of(st, c.segs[last].name, p);
        err = pd_journal_open_append(p, st->opts.fsync, last_scan.file_size, next, &st->j);
        st->seg_first = c.segs[last].seq;
        if (err) set_msg(msg, "cannot open %s for appending: %s", p, pd_strerror(err));
    } else {
        if (last < c.n_segs && last_scan.n_records == 0) {
            /* An empty segment that does not start at next: not needed. */
            char p[PD_STORE_PATH_MAX];
            path_of(st, c.segs[last].name, p);
            unlink(p);
        }
        char name[64], p[PD_STORE_PATH_MAX];
        seg_name(next, name);
        path_of(st, name, p);
        err = pd_journal_create(p, st->opts.fsync, next, &st->j);
        st->seg_first = next;
        if (err) set_msg(msg, "cannot create journal segment %s: %s", p, strerror(errno));
    }
    catalogue_free(&c);
    /* A server killed just as a background snapshot finished never pruned
     * after it: do it now, from a state known to hold. */
    if (!err && rep->from_snapshot && !st->opts.keep_segments) prune(st);
    return err;
}

/* ------------------------------------------------------------ snapshots */

pd_err pd_store_snapshot_begin(pd_store_t *st, int64_t ts_ms, pd_snapshot_writer_t **w,
                               uint64_t *seq_out) {
    if (st->snap || !st->j) return PD_ERR_ILLEGAL;
    uint64_t next = pd_journal_next_seq(st->j);
    uint64_t seq = next - 1;
    pd_err err;
    if (next != st->seg_first) {
        /* Rotate: the new segment starts where the snapshot ends. */
        char name[64], p[PD_STORE_PATH_MAX];
        seg_name(next, name);
        path_of(st, name, p);
        err = pd_journal_sync(st->j);
        if (err) return err;
        pd_journal_t *nj = NULL;
        err = pd_journal_create(p, st->opts.fsync, next, &nj);
        if (err) return err;
        pd_journal_stats_t s;
        pd_journal_get_stats(st->j, &s);
        add_stats(&st->closed, &s);
        err = pd_journal_close(st->j);
        st->j = nj;
        st->seg_first = next;
        if (err) return err;
    }
    char name[64], p[PD_STORE_PATH_MAX];
    snap_name(seq, name);
    path_of(st, name, p);
    err = pd_snapshot_writer_create(p, seq, ts_ms, 0, &st->snap);
    if (err) return err;
    st->snap_pending_seq = seq;
    *w = st->snap;
    *seq_out = seq;
    return PD_OK;
}

/* Delete snapshots older than the newest two and the segments neither needs. */
static void prune(pd_store_t *st) {
    catalogue_t c;
    if (catalogue_load(st, &c, false)) return;
    if (c.n_snaps >= 2) {
        uint64_t keep_from = c.snaps[c.n_snaps - 2].seq;
        for (size_t k = 0; k + 2 < c.n_snaps; k++) {
            char p[PD_STORE_PATH_MAX];
            path_of(st, c.snaps[k].name, p);
            if (unlink(p) == 0) slog(st, PD_STORE_INFO, "removed old snapshot %s", p);
        }
        /* A segment's records end where the next segment starts. */
        bool keep_all = st->opts.keep_segments && !st->held;
        for (size_t k = 0; k + 1 < c.n_segs && !keep_all; k++) {
            if (c.segs[k + 1].seq - 1 > keep_from) break;
            if (st->hold && c.segs[k + 1].seq - 1 >= st->hold) break;
            char p[PD_STORE_PATH_MAX];
            path_of(st, c.segs[k].name, p);
            if (unlink(p) == 0) slog(st, PD_STORE_INFO, "removed old journal segment %s", p);
        }
        pd__fsync_dir(st->dir);
    }
    catalogue_free(&c);
}

void pd_store_hold(pd_store_t *st, uint64_t seq) {
    st->hold = seq;
    st->held = true;
}

void pd_store_snapshot_end(pd_store_t *st, bool ok) {
    if (PD_NEVER(!st->snap)) return;
    pd_snapshot_writer_destroy(st->snap);
    st->snap = NULL;
    if (!ok) return;
    char name[64], p[PD_STORE_PATH_MAX];
    snap_name(st->snap_pending_seq, name);
    path_of(st, name, p);
    if (access(p, F_OK) != 0) {
        slog(st, PD_STORE_ERROR, "snapshot %s reported done but is not there", p);
        return;
    }
    st->snap_seq = st->snap_pending_seq;
    prune(st);
}

pd_err pd_store_close(pd_store_t *st) {
    if (!st) return PD_OK;
    if (st->snap) pd_store_snapshot_end(st, false);
    pd_err err = pd_journal_close(st->j);
    close(st->lock_fd); /* releases the flock */
    pd_free(st);
    return err;
}

/* ------------------------------------------------------ imported records */

void pd_jrec_volunteer_encode(const pd_volunteer_t *v, uint8_t b[PD_JREC_VOLUNTEER_BYTES]) {
    pd__put_u64(b, v->id);
    pd__put_u32(b + 8, (uint32_t)v->pos.lat);
    pd__put_u32(b + 12, (uint32_t)v->pos.lon);
    pd__put_u64(b + 16, v->skills);
    pd__put_u64(b + 24, v->tags);
    for (int i = 0; i < 3; i++) pd__put_u64(b + 32 + 8 * i, v->week.bits[i]);
    b[56] = v->mode;
    b[57] = v->status;
    b[58] = v->capacity;
}

pd_err pd_jrec_volunteer_decode(const uint8_t *b, size_t len, pd_volunteer_t *v) {
    if (len != PD_JREC_VOLUNTEER_BYTES) return PD_ERR_CORRUPT;
    memset(v, 0, sizeof *v);
    v->id = pd__get_u64(b);
    v->pos.lat = (int32_t)pd__get_u32(b + 8);
    v->pos.lon = (int32_t)pd__get_u32(b + 12);
    v->skills = pd__get_u64(b + 16);
    v->tags = pd__get_u64(b + 24);
    for (int i = 0; i < 3; i++) v->week.bits[i] = pd__get_u64(b + 32 + 8 * i);
    v->mode = b[56];
    v->status = b[57];
    v->capacity = b[58];
    return PD_OK;
}

void pd_jrec_order_encode(const pd_order_spec_t *o, uint8_t b[PD_JREC_ORDER_BYTES]) {
    pd__put_u64(b, o->id);
    pd__put_u32(b + 8, (uint32_t)o->at.lat);
    pd__put_u32(b + 12, (uint32_t)o->at.lon);
    pd__put_u64(b + 16, o->skills);
    pd__put_u32(b + 24, o->need);
    pd__put_u64(b + 28, (uint64_t)o->start_ms);
    pd__put_u32(b + 36, (uint32_t)o->duration_min);
    pd__put_u32(b + 40, (uint32_t)o->budget_s);
    b[44] = o->priority;
}

pd_err pd_jrec_order_decode(const uint8_t *b, size_t len, pd_order_spec_t *o) {
    if (len != PD_JREC_ORDER_BYTES) return PD_ERR_CORRUPT;
    memset(o, 0, sizeof *o);
    o->id = pd__get_u64(b);
    o->at.lat = (int32_t)pd__get_u32(b + 8);
    o->at.lon = (int32_t)pd__get_u32(b + 12);
    o->skills = pd__get_u64(b + 16);
    o->need = pd__get_u32(b + 24);
    o->start_ms = (int64_t)pd__get_u64(b + 28);
    o->duration_min = (int32_t)pd__get_u32(b + 36);
    o->budget_s = (int32_t)pd__get_u32(b + 40);
    o->priority = b[44];
    return PD_OK;
}
