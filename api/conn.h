/* conn.h -- one client connection: framing, dispatch, replies, writes.
 *
 * Private to api/. A connection reads bytes, cuts them into frames
 * (frame.h), decodes each frame into the server's zone, executes it and
 * packs the reply into its output buffer. Replies leave in request order
 * because requests run one at a time on the loop thread.
 *
 * Handlers reply through pd_reply_ok() / pd_reply_error(); both rewind to
 * the start of the reply first, so a handler that finds an error after it
 * began packing a result still sends exactly one well-formed reply.
 */
#ifndef PAIDAN_API_CONN_H
#define PAIDAN_API_CONN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "frame.h"
#include "paidan/error.h"
#include "server.h"

/* Why a connection is not being read (conn.c, "Fair turns" and "Rate limit"). */
enum { PD_PAUSE_NONE = 0, PD_PAUSE_TURN = 1, PD_PAUSE_RATE = 2, PD_PAUSE_DEFER = 3 };

struct pd_conn_s {
    uv_tcp_t tcp;                       /* the socket; tcp.data = this */
    pd_server_t *srv;                   /* owner */
    uint64_t id;                        /* for the log */
    char peer[64];                      /* "addr:port", for the log */
    pd_conn_t *prev, *next;             /* srv->conns list */
    pd_conn_t *dirty_next;              /* srv->dirty list */
    pd_conn_t *sub_prev, *sub_next;     /* srv->subscribers list */
    pd_conn_t *pause_prev, *pause_next; /* srv->paused list */

    char *in; /* bytes of a frame split across reads */
    size_t in_len, in_cap;
    pd_frame_scan_t scan; /* scanner state of the pending frame */

    msgpack_sbuffer out;  /* replies and notifications not yet written */
    msgpack_packer pk;    /* packs into out */
    msgpack_sbuffer wbuf; /* bytes of the write in flight */
    size_t woff;          /* of wbuf, bytes uv_try_write already sent */
    uv_write_t wreq;
    bool writing; /* wreq in flight */

    size_t reply_mark; /* out.size where the current reply's error field starts */
    bool replied;      /* the handler replied */
    pd_err reply_err;  /* code it replied with (PD_OK for a result) */

    bool closing;            /* uv_close called */
    bool spoke;              /* its first bytes were judged (HTTP or not) */
    bool dirty;              /* on srv->dirty */
    bool authed;             /* passed `auth` (or no token needed) */
    bool oom;                /* an output buffer failed to grow */
    uint32_t subs;           /* subscribed events, bit per pd_event_type */
    uint64_t last_active_ms; /* uv_now() of the last read */
    double tokens;           /* --max-rps bucket: frames that may run now */
    uint64_t tokens_ms;      /* uv_now() when the bucket was last filled */
    uint8_t paused;          /* PD_PAUSE_*: reading stopped, on srv->paused */
    bool deferring;          /* the running handler called pd_reply_defer() */
    bool deferred_quiet;     /* the deferred call was a notification: no reply */
    uint32_t deferred_msgid; /* what the deferred reply answers */
    int deferred_mid;        /* the deferred call's method: its errors are counted at the reply */
    size_t deferred_start;   /* out.size where the deferred reply begins */
};

/**
 * For a handler that answers later (`import`): no reply now. The
 * connection runs none of its later requests (replies stay in order) until
 * pd_reply_deferred_done(); other connections are served meanwhile. When
 * the connection closes first, the handler's owner hears of it
 * (pd_import_conn_gone).
 */
void pd_reply_defer(pd_conn_t *c);

/** Begin the deferred reply; then pd_reply_ok() / pd_reply_error() as in a
 * handler, then pd_reply_deferred_done(). */
void pd_reply_deferred_begin(pd_conn_t *c);

/** The deferred reply is packed: send it and run the requests that waited. */
void pd_reply_deferred_done(pd_conn_t *c);

/** Accept a pending connection on the listener and start reading it. */
void pd_conn_accept(pd_server_t *srv);

/**
 * Close the connection (once). If `code` is not PD_OK a last notification
 * ["server.error", {code, message}] is attempted first, without blocking.
 */
void pd_conn_close(pd_conn_t *c, pd_err code, const char *why);

/** Write what is buffered (uv_try_write, then uv_write for the rest). */
void pd_conn_flush(pd_conn_t *c);

/** Unsent output bytes: buffered plus in flight. */
size_t pd_conn_pending(const pd_conn_t *c);

/**
 * Cut the connection off if its unsent output still exceeds --max-output
 * after a write attempt. @return false if the connection is (now) closing.
 */
bool pd_conn_check_output(pd_conn_t *c);

/**
 * Begin a successful reply: packs nil as the error and returns the packer
 * on which the handler packs exactly one result object.
 */
msgpack_packer *pd_reply_ok(pd_conn_t *c);

/** Reply with error [code, message]; rewinds anything packed for this reply. */
void pd_reply_error(pd_conn_t *c, pd_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Packing helpers for map entries. They are inline so that strlen() of a
 * literal key folds to a constant at the call site. */

/** Pack a NUL-terminated string. */
static inline void pd_pack_cstr(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/** Pack "key" then an unsigned integer. */
static inline void pd_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v) {
    pd_pack_cstr(pk, key);
    msgpack_pack_uint64(pk, v);
}

/** Pack "key" then a signed integer. */
static inline void pd_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t v) {
    pd_pack_cstr(pk, key);
    msgpack_pack_int64(pk, v);
}

/** Pack "key" then a double. */
static inline void pd_pack_kv_double(msgpack_packer *pk, const char *key, double v) {
    pd_pack_cstr(pk, key);
    msgpack_pack_double(pk, v);
}

/** Pack "key" then a string. */
static inline void pd_pack_kv_str(msgpack_packer *pk, const char *key, const char *v) {
    pd_pack_cstr(pk, key);
    pd_pack_cstr(pk, v);
}

/** Pack "key" then a boolean. */
static inline void pd_pack_kv_bool(msgpack_packer *pk, const char *key, bool v) {
    pd_pack_cstr(pk, key);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

#endif /* PAIDAN_API_CONN_H */
