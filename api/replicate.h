/* replicate.h -- the journal as a NATS JetStream stream: a primary
 * publishes every record it commits, replicas follow the stream.
 *
 * Private to api/. Matching is local, so a region runs one writing
 * engine (the primary, with --data-dir and --replicate URL) and as many
 * read-only replicas as its reads need (--follow URL). The stream is the
 * replicated log between them: JetStream keeps it (on disk, replicated
 * by Raft when the NATS cluster has several servers), a replica that
 * restarts reads it again from where its state starts, and a primary
 * whose stream fell behind (NATS was down) publishes what is missing
 * from its own journal segments.
 *
 * One message per journal record, on subject "paidan.<stream>.journal",
 * its data the record's sequence number, timestamp and type (18 bytes,
 * little-endian) then its payload, and its Nats-Msg-Id the sequence
 * number, so a record sent twice (a retry) is stored once. Replication is
 * asynchronous: a write is acknowledged once the primary's journal has
 * it (--fsync), and reaches the stream a little later; `stats` shows the
 * lag. docs/operations-server.md, "Replicas", is the user's guide.
 *
 * Threads: the primary publishes from a thread of its own, so the loop
 * never waits for NATS; a replica receives on the NATS library's thread
 * and applies on the loop, through the handlers recovery uses
 * (pd_persist_apply).
 */
#ifndef PAIDAN_API_REPLICATE_H
#define PAIDAN_API_REPLICATE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paidan/error.h"
#include "server.h"

/** Bytes before a record's payload in a stream message. */
#define PD_REPL_HEADER 18

/** The stream name used when --stream is not given. */
#define PD_REPL_DEFAULT_STREAM "paidan"

/** A valid stream name: 1..64 of A-Z a-z 0-9 _ -. */
bool pd_repl_stream_name_ok(const char *name);

/** Built with the NATS client (libnats)? */
bool pd_repl_available(void);

/**
 * Primary: connect to cfg.replicate, make sure the stream exists (created
 * with file storage if missing), compare its last record with the
 * journal's, and start publishing. Called after recovery, before
 * anything new is journaled. Refuses (logged) when NATS cannot be
 * reached, or when the stream holds records this journal does not (it
 * belongs to another primary, or the data directory is older than it).
 * @return PD_OK; PD_ERR_IO; PD_ERR_ILLEGAL (the stream is ahead);
 * PD_ERR_NOMEM.
 */
pd_err pd_repl_primary_start(pd_server_t *srv);

/** Primary, loop thread: record `seq` was appended to the journal (not
 *  yet committed). The payload is copied. */
void pd_repl_stage(pd_server_t *srv, uint64_t seq, uint16_t type, int64_t ts_ms, const void *data,
                   size_t len);

/** Primary, loop thread: everything staged is committed; publish it. */
void pd_repl_committed(pd_server_t *srv);

/** Primary: the first journal record the stream has not acknowledged
 *  (its segments must stay); 0 when nothing needs keeping (replication
 *  failed for good, or no primary). */
uint64_t pd_repl_needed_from(const pd_server_t *srv);

/**
 * Replica: connect to cfg.follow, load cfg.follow_snapshot if given, and
 * subscribe to the stream from the record after the state's. Records
 * are applied on the loop as they arrive. @return PD_OK; PD_ERR_IO (no
 * NATS, no stream); PD_ERR_NOT_FOUND (the stream no longer holds the
 * record after the snapshot's, or has none from the start); PD_ERR_CORRUPT
 * (a bad snapshot); PD_ERR_NOMEM.
 */
pd_err pd_repl_follow_start(pd_server_t *srv);

/** Is this server a replica (writes refused)? */
bool pd_repl_is_replica(const pd_server_t *srv);

/** Replica: the sequence number of the last record applied. */
uint64_t pd_repl_applied_seq(const pd_server_t *srv);

/** Stop: the primary publishes what is queued (bounded wait); a replica
 *  unsubscribes. Then free everything. Idempotent; NULL repl is fine. */
void pd_repl_stop(pd_server_t *srv);

/** Pack the `replication` section of `stats` (a map; {"role":"none"}
 *  without replication). */
void pd_repl_pack_stats(pd_server_t *srv, msgpack_packer *pk);

/** The figures /metrics shows. */
typedef struct pd_repl_figures_s {
    int role;            /* 0 none, 1 primary, 2 replica */
    bool healthy;        /* connected and not failed */
    uint64_t seq;        /* primary: committed; replica: applied */
    uint64_t stream_seq; /* primary: acknowledged by the stream */
    uint64_t records;    /* primary: published; replica: applied */
    uint64_t errors;     /* publish errors / records refused */
} pd_repl_figures_t;

void pd_repl_figures(pd_server_t *srv, pd_repl_figures_t *out);

#endif /* PAIDAN_API_REPLICATE_H */
