/* journal.h -- durability: the journal (an append-only log of the commands
 * that changed the engine), snapshot files (the whole state at a journal
 * position) and the data directory that holds both.
 *
 * The journal logs commands, not state. Each record is an opaque payload
 * with a type, a sequence number and the timestamp the command ran with;
 * the layer above (paidan-server) puts the method name and its MessagePack
 * params in it and replays records through the same handlers at start-up.
 * Because the engine is deterministic and reads no clock, replay gives the
 * same state, and so the same pd_engine_digest().
 *
 * On disk, in the data directory:
 *
 *   LOCK                          flock()ed by the running server (holds its pid)
 *   snap-<seq>.pds                snapshot of the state after record <seq>
 *   journal-<seq>.pdj             journal segment whose first record is <seq>
 *   *.tmp                         unfinished writes, removed at start
 *
 * Sequence numbers start at 1 and have no gaps. A snapshot at seq S holds
 * the effect of records 1..S; recovery loads the newest valid snapshot and
 * replays every record after S. When a snapshot starts, the journal rotates
 * to a new segment; when it is safely on disk, snapshots older than the
 * previous one and the segments only they needed are deleted, so the
 * previous snapshot plus the journal after it always remain as a fallback.
 *
 * docs/operations.md describes the formats byte by byte, the fsync
 * policies and what each can lose on a power cut.
 *
 * Ownership: objects are allocated here and freed by their _destroy /
 * _close function; paths and payloads given to a call are copied or
 * consumed before it returns.
 */
#ifndef PAIDAN_JOURNAL_H
#define PAIDAN_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paidan/engine.h"
#include "paidan/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- constants */

#define PD_JOURNAL_VERSION 1        /* journal segment format version */
#define PD_SNAPSHOT_VERSION 1       /* snapshot container format version */
#define PD_JOURNAL_HEADER_SIZE 32   /* bytes of a segment's file header */
#define PD_JREC_HEADER_SIZE 32      /* bytes of a record's frame header */
#define PD_JREC_MAX_LEN (64u << 20) /* largest record payload */
#define PD_SNAPSHOT_HEADER_SIZE 48  /* bytes of a snapshot's file header */
#define PD_SNAPSHOT_TRAILER_SIZE 24 /* bytes of a snapshot's trailer */
#define PD_STORE_PATH_MAX 4096      /* longest path the store builds */
#define PD_STORE_MSG_MAX 512        /* longest error / log message */

/** When the journal reaches the disk. Values are stable. */
typedef enum pd_fsync_policy {
    PD_FSYNC_NO = 0,       /* write() per loop iteration; the OS flushes when it likes */
    PD_FSYNC_EVERYSEC = 1, /* write() per loop iteration, fdatasync once a second on a
                              background thread (the default) */
    PD_FSYNC_ALWAYS = 2,   /* write() and fdatasync before any reply is sent
                              (group commit: one fdatasync per loop iteration) */
    PD_FSYNC__COUNT
} pd_fsync_policy;

/** "no", "everysec", "always"; NULL if out of range. */
const char *pd_fsync_policy_name(pd_fsync_policy p);

/** Parse a policy name. @return PD_ERR_BAD_ARG if unknown. */
pd_err pd_fsync_policy_from_name(const char *s, pd_fsync_policy *out);

/** Record types. Values are stable (they are on disk). */
enum {
    PD_JREC_COMMAND = 1,   /* a mutating method: its name and params (api/ defines it) */
    PD_JREC_TICK = 2,      /* an engine tick that expired offers; no payload */
    PD_JREC_VOLUNTEER = 3, /* an imported volunteer (upsert), fields in binary */
    PD_JREC_ORDER = 4,     /* an imported order (create), fields in binary */
    PD_JREC_CONFIG = 5,    /* the engine configuration the records after it ran
                              under (pd_engine_config_encode) */
    PD_JREC__MAX = 0xffff
};

/** One journal record as the reader hands it out. */
typedef struct pd_jrec_s {
    uint64_t seq;        /* 1, 2, 3, ... without gaps */
    int64_t ts_ms;       /* the timestamp the command ran with */
    uint16_t type;       /* PD_JREC_* */
    uint32_t len;        /* payload bytes, <= PD_JREC_MAX_LEN */
    const uint8_t *data; /* payload; valid only during the callback */
} pd_jrec_t;

/*
 * The payloads of PD_JREC_VOLUNTEER and PD_JREC_ORDER: the fields,
 * little-endian, no MessagePack (an import can be millions of them). One
 * codec for the server that writes and replays them and for the tools that
 * read a journal (paidan-bench replay).
 */
#define PD_JREC_VOLUNTEER_BYTES 59
#define PD_JREC_ORDER_BYTES 45

/** Encode an imported volunteer (id, position, skills, tags, week, mode,
 *  status, capacity; not the load). */
void pd_jrec_volunteer_encode(const pd_volunteer_t *v, uint8_t out[PD_JREC_VOLUNTEER_BYTES]);

/** Decode one; PD_ERR_CORRUPT unless len is PD_JREC_VOLUNTEER_BYTES. The
 *  fields are not checked (pd_volunteer_check). */
pd_err pd_jrec_volunteer_decode(const uint8_t *b, size_t len, pd_volunteer_t *v);

/** Encode an imported order (id, place, skills, need, window, budget,
 *  priority). */
void pd_jrec_order_encode(const pd_order_spec_t *o, uint8_t out[PD_JREC_ORDER_BYTES]);

/** Decode one; PD_ERR_CORRUPT unless len is PD_JREC_ORDER_BYTES. */
pd_err pd_jrec_order_decode(const uint8_t *b, size_t len, pd_order_spec_t *o);

/* ----------------------------------------------------------- the writer */

typedef struct pd_journal_s pd_journal_t;

/** Counters of a journal writer (and of the store, summed over segments). */
typedef struct pd_journal_stats_s {
    uint64_t appends;     /* records appended */
    uint64_t bytes;       /* bytes appended (frames included) */
    uint64_t writes;      /* write() calls */
    uint64_t syncs;       /* fdatasync() calls */
    uint64_t sync_ns;     /* total time in fdatasync() */
    uint64_t max_sync_ns; /* the longest one */
    uint64_t commits;     /* pd_journal_commit() calls that had data */
} pd_journal_stats_t;

/**
 * Create a new, empty journal segment at `path` (which must not exist),
 * write and sync its header and the directory entry.
 * @param first_seq sequence number of the first record it will hold (>= 1).
 * @return PD_ERR_IO (the file exists or cannot be written), PD_ERR_NOMEM,
 * PD_ERR_BAD_ARG. Caller frees with pd_journal_close().
 */
pd_err pd_journal_create(const char *path, pd_fsync_policy policy, uint64_t first_seq,
                         pd_journal_t **out);

/**
 * Open an existing segment to append after its last whole record. The file
 * is cut to `end` bytes first (what pd_journal_scan() reported as whole).
 * @param next_seq the sequence number the next append gets.
 * @return PD_ERR_IO, PD_ERR_CORRUPT (bad header), PD_ERR_NOMEM.
 * Caller frees with pd_journal_close().
 */
pd_err pd_journal_open_append(const char *path, pd_fsync_policy policy, uint64_t end,
                              uint64_t next_seq, pd_journal_t **out);

/**
 * Append one record to the journal's buffer (nothing is written yet). The
 * payload is copied. Large buffers are written out on the way, so memory
 * stays bounded. Not thread-safe: one thread appends.
 * @param seq_out the record's sequence number; may be NULL.
 * @return PD_ERR_TOO_LARGE (len > PD_JREC_MAX_LEN), PD_ERR_NOMEM, PD_ERR_IO
 * (the journal failed before and refuses appends from then on). Nothing is
 * appended on error.
 */
pd_err pd_journal_append(pd_journal_t *j, uint16_t type, int64_t ts_ms, const void *data,
                         size_t len, uint64_t *seq_out);

/**
 * As pd_journal_append(), with the payload in two pieces (a header and a
 * body, say), either of which may be empty.
 */
pd_err pd_journal_append2(pd_journal_t *j, uint16_t type, int64_t ts_ms, const void *a, size_t alen,
                          const void *b, size_t blen, uint64_t *seq_out);

/**
 * Make what was appended durable as the policy says: write() it (every
 * policy), then fdatasync() under PD_FSYNC_ALWAYS. Under EVERYSEC the
 * background thread syncs within about a second. Call once per batch of
 * appends, before acknowledging any of them.
 * @return PD_ERR_IO: the journal is broken (it tried to cut the file back
 * to the last whole record) and every later append fails.
 */
pd_err pd_journal_commit(pd_journal_t *j);

/** write() and fdatasync() now, whatever the policy. @return PD_ERR_IO. */
pd_err pd_journal_sync(pd_journal_t *j);

/**
 * Sync, stop the background thread, close and free. NULL is fine.
 * @return PD_ERR_IO if the final sync failed (the journal is freed anyway).
 */
pd_err pd_journal_close(pd_journal_t *j);

/** Sequence number the next append gets. */
uint64_t pd_journal_next_seq(const pd_journal_t *j);

/** Bytes in the segment, header and buffered records included. */
uint64_t pd_journal_size(const pd_journal_t *j);

/** Bytes appended but not yet handed to write(). */
size_t pd_journal_pending(const pd_journal_t *j);

/**
 * Allocate the file's blocks for `more` bytes past what is appended
 * (fallocate with FALLOC_FL_KEEP_SIZE: the size, and so what a reader sees,
 * does not change). Appends into reserved room cannot fail for want of
 * space, so a writer that reserves before it acts can refuse work up front
 * when the disk is full instead of failing after it. A file system that
 * cannot allocate ahead counts as unlimited room.
 * @return PD_OK; PD_ERR_IO with errno set (ENOSPC: the disk is full).
 */
pd_err pd_journal_reserve(pd_journal_t *j, uint64_t more);

/** Reserved bytes not yet appended to; UINT64_MAX if reserving is not
 * supported here. Closing the journal gives the rest back. */
uint64_t pd_journal_room(const pd_journal_t *j);

/** The writer's counters. */
void pd_journal_get_stats(const pd_journal_t *j, pd_journal_stats_t *out);

/* ----------------------------------------------------------- the reader */

/** How a segment ended. */
typedef enum pd_jscan_end {
    PD_JSCAN_CLEAN = 0,  /* the last byte ends a whole record */
    PD_JSCAN_TORN = 1,   /* a torn tail: bytes after the last whole record hold no
                            further valid record (partial write, bad checksum at the end) */
    PD_JSCAN_CORRUPT = 2 /* corruption in the middle: a bad record with valid records
                            after it */
} pd_jscan_end;

/** What pd_journal_scan() found. */
typedef struct pd_jscan_s {
    uint64_t first_seq;  /* from the header */
    uint64_t n_records;  /* whole records before `end` */
    uint64_t last_seq;   /* seq of the last whole record; first_seq - 1 if none */
    uint64_t end;        /* offset just past the last whole record */
    uint64_t file_size;  /* bytes in the file */
    pd_jscan_end how;    /* how the segment ended */
    uint64_t bad_offset; /* TORN / CORRUPT: offset of the first bad record (== end) */
    const char *why;     /* TORN / CORRUPT: what was wrong with it (static) */
} pd_jscan_t;

/**
 * Callback for each whole record, in order. Return PD_OK to go on; any
 * error stops the scan and is returned by pd_journal_scan().
 */
typedef pd_err (*pd_jrec_fn)(void *ud, const pd_jrec_t *rec);

/**
 * Read a segment: check the header, then call fn (may be NULL) for every
 * whole record in order, up to the first bad one. A bad record is one whose
 * frame is cut short, whose length is out of range, whose checksum fails or
 * whose seq is not the next one. The bytes after it are searched for a
 * valid record: none means a torn tail, one means corruption in the middle.
 * The file is not changed.
 * @param out filled in full on PD_OK and as far as known on other errors.
 * @return PD_OK (also for TORN and CORRUPT: see out->how), PD_ERR_IO (cannot
 * read), PD_ERR_CORRUPT (no valid header), or what fn returned.
 */
pd_err pd_journal_scan(const char *path, pd_jrec_fn fn, void *ud, pd_jscan_t *out);

/* ------------------------------------------------------------ snapshots */

typedef struct pd_snapshot_writer_s pd_snapshot_writer_t;

/**
 * Start writing a snapshot to `path`: the bytes go to "<path>.tmp" and the
 * file appears under its name only once pd_snapshot_writer_commit() has
 * synced it. Everything is allocated here, so the writer can be used in a
 * child after fork() without allocating.
 * @param seq     journal position: the state holds records 1..seq.
 * @param ts_ms   time of the state (the last record's timestamp).
 * @param bufsize bytes buffered between write() calls (0 = 1 MiB).
 * @return PD_ERR_IO, PD_ERR_NOMEM. Caller frees with pd_snapshot_writer_destroy().
 */
pd_err pd_snapshot_writer_create(const char *path, uint64_t seq, int64_t ts_ms, size_t bufsize,
                                 pd_snapshot_writer_t **out);

/** Append payload bytes. @return PD_ERR_IO (the writer stays failed). */
pd_err pd_snapshot_writer_write(pd_snapshot_writer_t *w, const void *p, size_t n);

/**
 * Finish: trailer (payload length and checksum), fsync, rename over the
 * final name, fsync the directory. Allocates nothing.
 * @return PD_ERR_IO (the temporary file is removed).
 */
pd_err pd_snapshot_writer_commit(pd_snapshot_writer_t *w);

/**
 * Free the writer. If this process did not commit it, the temporary file
 * is removed (call it in a fork() parent only after the child has exited).
 * NULL is fine.
 */
void pd_snapshot_writer_destroy(pd_snapshot_writer_t *w);

/** Payload bytes written so far. */
uint64_t pd_snapshot_writer_bytes(const pd_snapshot_writer_t *w);

/** A snapshot file mapped for reading. */
typedef struct pd_snapshot_file_s {
    uint64_t seq;        /* journal position */
    int64_t ts_ms;       /* time of the state */
    const uint8_t *data; /* payload (read-only mapping) */
    uint64_t len;        /* payload bytes */
    void *map_;          /* private: the mapping */
    size_t map_len_;     /* private */
} pd_snapshot_file_t;

/**
 * Map a snapshot and check it whole: header, version, length and checksum.
 * @param why set on PD_ERR_CORRUPT to what was wrong (static); may be NULL.
 * @return PD_ERR_IO (cannot open / map), PD_ERR_CORRUPT. On success release
 * with pd_snapshot_file_close().
 */
pd_err pd_snapshot_file_open(const char *path, pd_snapshot_file_t *out, const char **why);

/** Unmap. Safe on a zeroed struct. */
void pd_snapshot_file_close(pd_snapshot_file_t *f);

/* ---------------------------------------------------------- engine state */

/**
 * Write the engine's whole state (configuration, counters, volunteers with
 * their records, orders with their offers, the deadline heap) as a snapshot
 * payload. Allocates nothing (uses 64 KiB of stack), so it is safe in a
 * fork()ed child; the engine is only read.
 * @return PD_ERR_IO from the writer.
 */
pd_err pd_engine_snapshot_write(const pd_engine_t *e, pd_snapshot_writer_t *w);

/**
 * Build a new engine from a payload written by pd_engine_snapshot_write().
 * The result has the same pd_engine_digest() as the engine that was
 * written, and answers every later command the same way.
 * @param cfg NULL to use the configuration stored in the payload, else the
 *            configuration to run with from now on (copied).
 * @return PD_ERR_CORRUPT (the payload does not decode or breaks an
 * invariant), PD_ERR_BAD_ARG (cfg fails its check), PD_ERR_NOMEM. Nothing
 * leaks on error. Caller frees with pd_engine_destroy().
 */
pd_err pd_engine_snapshot_restore(const uint8_t *p, size_t len, const pd_engine_config_t *cfg,
                                  pd_engine_t **out);

/**
 * Read only the configuration stored in a payload (to compare it with the
 * configuration a server starts with).
 * @return PD_ERR_CORRUPT.
 */
pd_err pd_engine_snapshot_config(const uint8_t *p, size_t len, pd_engine_config_t *out);

/**
 * The configuration as a PD_JREC_CONFIG payload: the fields a snapshot
 * stores. *out is allocated (pd_free), *len its bytes (a few KiB at most).
 * @return PD_ERR_NOMEM.
 */
pd_err pd_engine_config_encode(const pd_engine_config_t *c, uint8_t **out, size_t *len);

/**
 * Read a PD_JREC_CONFIG payload.
 * @return PD_ERR_CORRUPT (it does not decode, has bytes left over, or the
 * configuration fails pd_engine_config_check).
 */
pd_err pd_engine_config_decode(const uint8_t *p, size_t len, pd_engine_config_t *out);

/**
 * True if two configurations are the same in every field a snapshot
 * stores (padding and bytes after a skill name's NUL do not count).
 * False also when the comparison cannot allocate its 128 KiB of scratch.
 */
bool pd_engine_config_same(const pd_engine_config_t *a, const pd_engine_config_t *b);

/* -------------------------------------------------------- data directory */

/** Log levels of the store's messages. */
typedef enum pd_store_level {
    PD_STORE_INFO = 0,
    PD_STORE_WARN = 1,
    PD_STORE_ERROR = 2
} pd_store_level;

/** Where the store reports what it does (recovery steps, warnings). */
typedef void (*pd_store_log_fn)(void *ud, pd_store_level level, const char *msg);

/** Options of a data directory. Initialise with pd_store_opts_init(). */
typedef struct pd_store_opts_s {
    pd_fsync_policy fsync; /* default everysec */
    bool truncate_corrupt; /* cut the journal at a corruption in the middle instead
                              of refusing to start (records after it are lost) */
    uint32_t lock_wait_ms; /* keep trying the lock this long (a killed server's
                              snapshot child may hold it for a moment); 0 = once */
    pd_store_log_fn log;   /* may be NULL */
    void *log_ud;
    bool keep_segments; /* a reader outside the store still needs old segments
                           (a replication publisher): no pruning of segments
                           at recovery, and later only below pd_store_hold() */
} pd_store_opts_t;

/** Defaults: everysec, refuse to start on corruption, no lock wait, no log. */
void pd_store_opts_init(pd_store_opts_t *o);

typedef struct pd_store_s pd_store_t;

/**
 * Open a data directory: create it (and missing parents) if needed, take
 * an exclusive flock() on its LOCK file and write our pid there, remove
 * leftover *.tmp files. Nothing is read yet.
 * @return PD_ERR_LIMIT if another process holds the lock; PD_ERR_IO;
 * PD_ERR_NOMEM. The reason is in msg (may be NULL, PD_STORE_MSG_MAX bytes).
 * Caller frees with pd_store_close().
 */
pd_err pd_store_open(const char *dir, const pd_store_opts_t *opts, pd_store_t **out, char *msg);

/**
 * Restore state from a snapshot payload. Return PD_OK, or an error if the
 * payload cannot be restored (the store then tries the previous snapshot);
 * on error the callback must leave no partial state behind.
 */
typedef pd_err (*pd_store_load_fn)(void *ud, const uint8_t *payload, size_t len, uint64_t seq,
                                   int64_t ts_ms);

/** What recovery did. */
typedef struct pd_store_report_s {
    bool from_snapshot;         /* a snapshot was loaded */
    uint64_t snapshot_seq;      /* its position (0 if none) */
    uint64_t snapshot_bytes;    /* its payload size */
    uint32_t snapshots_skipped; /* newer snapshots that failed their check or load */
    uint32_t segments;          /* journal segments read */
    uint64_t records;           /* records replayed */
    uint64_t last_seq;          /* seq of the last record in the state */
    uint64_t torn_bytes;        /* bytes cut from a torn tail */
    uint64_t corrupt_bytes;     /* bytes dropped by truncate_corrupt */
    uint64_t snapshot_ns;       /* time spent loading the snapshot */
    uint64_t replay_ns;         /* time spent reading and replaying the journal */
} pd_store_report_t;

/**
 * Recover: pick the newest snapshot that passes its check and loads (older
 * ones are tried in turn), then replay every journal record after it, in
 * order, through `apply`. A torn tail of the last segment is cut at the
 * last whole record with a warning naming the bytes dropped. Corruption in
 * the middle (or a gap between segments) stops recovery with PD_ERR_CORRUPT
 * and a message naming the file and offset, unless opts.truncate_corrupt,
 * which cuts the journal there (dropping the later segments) and goes on.
 * Afterwards the journal is open for appends (pd_store_journal()).
 * With no snapshot and no journal, neither callback runs: a fresh start.
 * @return PD_OK, PD_ERR_CORRUPT, PD_ERR_IO, PD_ERR_NOMEM, or what a callback
 * returned (apply errors stop recovery). The reason is in msg (may be NULL).
 */
pd_err pd_store_recover(pd_store_t *st, pd_store_load_fn load, pd_jrec_fn apply, void *ud,
                        pd_store_report_t *rep, char *msg);

/** The journal to append to (valid after pd_store_recover() until the next
 *  rotation; do not close it). */
pd_journal_t *pd_store_journal(pd_store_t *st);

/** The data directory's path (as given). */
const char *pd_store_dir(const pd_store_t *st);

/** Bytes of journal written since the last snapshot began. */
uint64_t pd_store_journal_bytes(const pd_store_t *st);

/** Seq of the newest snapshot on disk (0 if none). */
uint64_t pd_store_snapshot_seq(const pd_store_t *st);

/** The fsync policy. */
pd_fsync_policy pd_store_fsync(const pd_store_t *st);

/** Counters summed over every segment this store wrote. */
void pd_store_get_stats(const pd_store_t *st, pd_journal_stats_t *out);

/**
 * Begin a snapshot of the current state: sync the journal, rotate it to a
 * new segment (the snapshot covers every record appended so far), and open
 * a writer for "snap-<seq>.pds". Write the state with the writer (in this
 * process or in a fork()ed child), commit it, then call
 * pd_store_snapshot_end().
 * @param ts_ms time of the state (the last record's timestamp).
 * @param seq_out the snapshot's position.
 * @return PD_ERR_ILLEGAL (one is already in progress), PD_ERR_IO,
 * PD_ERR_NOMEM; the journal keeps working on error. The writer is owned by
 * the store (freed by pd_store_snapshot_end()).
 */
pd_err pd_store_snapshot_begin(pd_store_t *st, int64_t ts_ms, pd_snapshot_writer_t **w,
                               uint64_t *seq_out);

/**
 * End the snapshot begun last, once it is committed (by this process or by
 * a child that has exited) or has failed. `ok` says which. The writer is
 * freed (and its temporary file removed if it is still there). On success,
 * snapshots older than the previous one and the journal segments that
 * neither kept snapshot needs are deleted.
 */
void pd_store_snapshot_end(pd_store_t *st, bool ok);

/**
 * Keep every journal segment holding a record at or after `seq` when
 * snapshots prune (0: no hold). With opts.keep_segments, set it before
 * each pd_store_snapshot_end(): until it is set nothing is pruned.
 */
void pd_store_hold(pd_store_t *st, uint64_t seq);

/** True between pd_store_snapshot_begin() and pd_store_snapshot_end(). */
bool pd_store_snapshot_busy(const pd_store_t *st);

/**
 * Close the journal (synced) and release the lock. NULL is fine.
 * @return PD_ERR_IO if the final sync failed.
 */
pd_err pd_store_close(pd_store_t *st);

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_JOURNAL_H */
