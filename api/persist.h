/* persist.h -- paidan-server's durability: the data directory, the journal
 * of every mutating request, group commit, snapshots in a forked child,
 * and recovery at start.
 *
 * Private to api/. The engine layer owns the formats (paidan/journal.h);
 * this module decides what goes in them and when. Each request that
 * changed the engine (a PD_M_WRITE method that replied without error) is
 * appended as a record [method name, params] with the timestamp it ran
 * with; state-changing ticks are appended as tick records. Before any
 * reply leaves the server, the journal is committed: write(), plus
 * fdatasync() under --fsync always, once for all the replies of a loop
 * iteration (group commit). At start the newest valid snapshot is loaded
 * and the journal after it is replayed through the same handlers with the
 * recorded timestamps, which rebuilds the same state because the engine is
 * deterministic.
 */
#ifndef PAIDAN_API_PERSIST_H
#define PAIDAN_API_PERSIST_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "paidan/journal.h"
#include "server.h"

/**
 * Open --data-dir (creating it, refusing it if another server holds its
 * lock) and recover the engine into srv->engine; pd_persist_settle()
 * then reconciles the configuration (`ini` is what --config asked for:
 * if the recovered state ran under another one, the state is carried
 * over to `ini` and snapshotted) and takes a first snapshot if there is
 * none. Logs every step.
 * @return PD_OK; PD_ERR_LIMIT (locked), PD_ERR_CORRUPT (refused, the
 * reason logged), PD_ERR_IO, PD_ERR_NOMEM. On error srv->persist may be
 * set; pd_persist_deinit() frees it.
 */
pd_err pd_persist_start(pd_server_t *srv);

/**
 * After pd_persist_start() (and, with --replicate, after the records the
 * stream had beyond the journal were taken): carry the state over to
 * `ini` if it ran under another engine configuration, and snapshot it
 * and journal the configuration if there is no snapshot under the
 * journal yet. @return as pd_persist_start().
 */
pd_err pd_persist_settle(pd_server_t *srv, const pd_engine_config_t *ini);

/** Install the loop handles (the end-of-iteration commit, the snapshot
 *  child's timer) once the server is about to serve. */
void pd_persist_attach(pd_server_t *srv);

/** Write a snapshot now, in this process (after an import at start). No-op
 *  without --data-dir. @return PD_ERR_IO, PD_ERR_ILLEGAL. */
pd_err pd_persist_snapshot_now(pd_server_t *srv);

/** Append the request that just succeeded (method id, its params map). */
void pd_persist_record(pd_server_t *srv, int mid, const msgpack_object *params);

/** Append a volunteer just imported (upserted) outside a request: CSV at
 *  start or the `import` method. No-op without --data-dir. */
void pd_persist_record_volunteer(pd_server_t *srv, const pd_volunteer_t *v);

/* Journal an imported order (a compact record, like a volunteer's). */
void pd_persist_record_order(pd_server_t *srv, const pd_order_spec_t *o);

/** The journal broke: nothing more is acknowledged (false without one). */
bool pd_persist_failed(const pd_server_t *srv);

/** A snapshot is being written (by a child or in process). */
bool pd_persist_snapshot_running(const pd_server_t *srv);

/** Sequence number of the last journal record; 0 without --data-dir. */
uint64_t pd_persist_last_seq(const pd_server_t *srv);

/** Run the engine tick if an offer is due, journaling it. */
void pd_persist_tick(pd_server_t *srv, int64_t now, size_t *expired);

/* May a write whose request is `bytes` long be executed? Makes sure the
 * journal has room reserved for its record; false when the data
 * directory is full (the server is then read-only until a reservation
 * succeeds again; pd_persist_full_reason says why). True without a data
 * directory. */
bool pd_persist_may_write(pd_server_t *srv, size_t bytes);

/* strerror of what made the server read-only, or NULL if it is not. */
const char *pd_persist_full_reason(const pd_server_t *srv);

/** True if records were appended and not yet committed. */
bool pd_persist_pending(const pd_server_t *srv);

/**
 * Commit the journal (write, and fdatasync under `always`) before replies
 * are written. On failure the server stops without acknowledging anything
 * more. @return false if the commit failed.
 */
bool pd_persist_commit(pd_server_t *srv);

/** Ask for the commit-then-flush at the end of this loop iteration. */
void pd_persist_defer_flush(pd_server_t *srv);

/** After a flush: start a background snapshot if the journal grew past
 *  --snapshot-bytes. */
void pd_persist_maybe_snapshot(pd_server_t *srv);

/** Clean shutdown: stop a running child, commit, snapshot in-process. */
void pd_persist_stop(pd_server_t *srv);

/** Close the loop handles (from pd_server_stop). */
void pd_persist_close_handles(pd_server_t *srv);

/** Close the store (releasing the lock) and free. Idempotent. */
void pd_persist_deinit(pd_server_t *srv);

/* Applying journal records outside recovery (a replica, replicate.c):
 * the same handlers, with the record's timestamp; the events they raise
 * are left in srv->events for the caller to publish. */
typedef struct pd_replay_s pd_replay_t;
pd_replay_t *pd_replay_new(pd_server_t *srv);
/** @return PD_OK; PD_ERR_CORRUPT (the record does not apply: logged);
 *  PD_ERR_NOMEM. */
pd_err pd_replay_apply(pd_replay_t *rp, const pd_jrec_t *rec);
void pd_replay_free(pd_replay_t *rp);

/** Replace the engine with the state of a snapshot file; *seq is the
 *  record it stands at. @return PD_ERR_IO, PD_ERR_CORRUPT (logged). */
pd_err pd_persist_load_snapshot(pd_server_t *srv, const char *path, uint64_t *seq);

/** Append a record that was just applied (taken from the stream), with
 *  its own timestamp; it must get the sequence number it carries.
 *  @return PD_ERR_INTERNAL if it would not; journal errors. */
pd_err pd_persist_append_applied(pd_server_t *srv, const pd_jrec_t *rec);

/** The persistence figures `stats` and /metrics report. */
typedef struct pd_persist_figures_s {
    uint64_t journal_bytes, next_seq, records, tick_records, commits, syncs;
    double sync_avg_us, sync_max_us;
    uint64_t snapshot_seq;
    bool snapshot_running;
    uint64_t snapshots, snapshot_failures;
    double last_snapshot_ms, recovery_ms;
    bool read_only;
    uint64_t writes_refused, reserved_room;
} pd_persist_figures_t;

/** The figures; false (out untouched) without --data-dir. */
bool pd_persist_figures(pd_server_t *srv, pd_persist_figures_t *out);

/** Pack the `persistence` section of `stats` (a map). */
void pd_persist_pack_stats(pd_server_t *srv, msgpack_packer *pk);

#endif /* PAIDAN_API_PERSIST_H */
