/* client.h -- the paidan C client: MessagePack-RPC over a blocking TCP socket.
 *
 * One pd_client_t is one connection; use it from one thread at a time. It
 * speaks the protocol of docs/protocol.md:
 *   request      [0, msgid, method, params]
 *   response     [1, msgid, error, result]   error = nil | [code, message]
 *   notification [2, method, params]
 *
 * Three ways to use it:
 *   - pd_client_call(): send one request and wait for its response.
 *   - pipelining: pd_client_send() (or pd_client_begin()/pd_client_end())
 *     any number of times, pd_client_flush(), then pd_client_read() once per
 *     request; responses come back in request order.
 *   - notifications: after a `subscribe` call, pd_client_read() also returns
 *     notifications; pd_client_call() keeps any that arrive while it waits
 *     and pd_client_read() hands them out first.
 *
 * Memory: objects a read returns (result, params, strings in them) point
 * into the client's own buffers and stay valid until the next call to
 * pd_client_read(), pd_client_call() or pd_client_destroy() on that client.
 * Copy what you need to keep.
 *
 * The library depends on msgpack-c and the index layer's error codes only,
 * not on the engine.
 */
#ifndef PAIDAN_CLIENT_H
#define PAIDAN_CLIENT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paidan/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Message types on the wire. */
typedef enum pd_msg_type {
    PD_MSG_REQUEST = 0,
    PD_MSG_RESPONSE = 1,
    PD_MSG_NOTIFICATION = 2
} pd_msg_type;

/** One message read from the server. */
typedef struct pd_msg_s {
    pd_msg_type type;      /* PD_MSG_RESPONSE or PD_MSG_NOTIFICATION */
    uint32_t msgid;        /* response: the request's msgid */
    int64_t code;          /* response: 0, or the server's error code (pd_err) */
    const char *message;   /* response error message, NUL-terminated; "" when ok */
    const char *method;    /* notification: event name, NUL-terminated */
    msgpack_object result; /* response: the result (nil on error) */
    msgpack_object params; /* notification: its params */
} pd_msg_t;

typedef struct pd_client_s pd_client_t;

/**
 * Connect to a server.
 * @param host       IPv4/IPv6 literal or host name.
 * @param port       TCP port.
 * @param timeout_ms connect and I/O timeout; <= 0 waits for ever.
 * @param out        the new client.
 * @return PD_OK; PD_ERR_IO if the host does not resolve, the connection is
 *   refused or the timeout passes; PD_ERR_NOMEM.
 * Caller frees with pd_client_destroy(). Nothing is allocated on failure.
 */
pd_err pd_client_connect(const char *host, uint16_t port, int timeout_ms, pd_client_t **out);

/**
 * Why the calling thread's last pd_client_connect() failed, e.g.
 * "connect to 127.0.0.1 port 7411: Connection refused" or "cannot resolve
 * db1: Name or service not known"; "no error" after a success. Never NULL;
 * valid until the thread's next pd_client_connect().
 */
const char *pd_client_connect_error(void);

/** Close the connection and free the client. NULL is fine. */
void pd_client_destroy(pd_client_t *c);

/** The socket, for callers that poll it themselves (still owned by c). */
int pd_client_fd(const pd_client_t *c);

/** Set the I/O timeout used by reads and flushes; <= 0 waits for ever. */
void pd_client_set_timeout(pd_client_t *c, int timeout_ms);

/**
 * A short text for the last error a call on c returned (e.g. "timed out
 * reading", "connection closed by server", "server sent bytes that are not
 * MessagePack"); never NULL. Owned by c.
 */
const char *pd_client_last_error(const pd_client_t *c);

/**
 * Start a request in the send buffer: packs [0, msgid, method, and returns
 * a packer on which the caller packs exactly one params object (a map).
 * Finish with pd_client_end(). Nothing is sent until pd_client_flush().
 * @pre method is not NULL.
 * @param msgid set to the id chosen for this request; may be NULL.
 * @return a packer owned by c, valid until pd_client_end().
 */
msgpack_packer *pd_client_begin(pd_client_t *c, const char *method, uint32_t *msgid);

/**
 * Finish the request started by pd_client_begin(), checking that exactly
 * one whole params object was packed.
 * @return PD_OK; PD_ERR_BAD_ARG if none, part of one or more than one was
 *   packed, or the request nests deeper than the protocol allows (32
 *   levels, the request array included): the request is then dropped from
 *   the send buffer, so the stream stays in step.
 */
pd_err pd_client_end(pd_client_t *c);

/**
 * Queue a request whose params are already MessagePack bytes (one map, or
 * NULL/0 for an empty map). Nothing is sent until pd_client_flush().
 * @return PD_OK; PD_ERR_BAD_ARG if method is NULL or the bytes are not
 *   exactly one MessagePack object (or nest too deeply, as for
 *   pd_client_end()); PD_ERR_NOMEM. On failure nothing is queued.
 */
pd_err pd_client_send(pd_client_t *c, const char *method, const void *params, size_t len,
                      uint32_t *msgid);

/**
 * Queue raw bytes as they are (for tests that send malformed frames).
 * @return PD_OK or PD_ERR_NOMEM.
 */
pd_err pd_client_send_raw(pd_client_t *c, const void *bytes, size_t len);

/**
 * Write everything queued.
 * @return PD_OK or PD_ERR_IO. After a failure the bytes not yet sent stay
 *   queued (a timeout can be retried with another flush).
 */
pd_err pd_client_flush(pd_client_t *c);

/**
 * Wait until there is something to read: a kept notification, received
 * bytes, or a readable socket (which may also mean the server closed it).
 * A message that is only partly received can still make the next read wait.
 * @param timeout_ms how long to wait; <= 0 does not wait.
 * @param ready set to true if one is buffered or the socket is readable.
 * @return PD_OK, or PD_ERR_IO if polling failed.
 */
pd_err pd_client_poll(pd_client_t *c, int timeout_ms, bool *ready);

/**
 * Read the next message (a queued notification first, then the socket).
 * Returns responses and notifications alike.
 * @return PD_OK; PD_ERR_IO on a closed/broken connection or timeout (a
 *   read that timed out can be retried); PD_ERR_BAD_REQUEST if the server
 *   sent something that is not a message; PD_ERR_TOO_LARGE for a message
 *   over 1 GiB; PD_ERR_NOMEM. After bytes that are not MessagePack or a
 *   message too large, every later read returns the same error (the stream
 *   cannot be resynchronised: reconnect). What *msg points into is valid
 *   until the next read.
 */
pd_err pd_client_read(pd_client_t *c, pd_msg_t *msg);

/**
 * Read the next response, keeping notifications that arrive first for later
 * pd_client_read() calls.
 */
pd_err pd_client_read_response(pd_client_t *c, pd_msg_t *msg);

/**
 * Send one request and wait for its response (flushes anything queued
 * before it; responses to those earlier requests are skipped over).
 * @param params MessagePack bytes of one map; NULL/0 for an empty map.
 * @param reply  the response; reply->code != 0 means the server returned an
 *   error, which is not a failure of this function.
 * @return PD_OK when a response arrived; PD_ERR_IO / PD_ERR_NOMEM /
 *   PD_ERR_BAD_REQUEST otherwise.
 */
pd_err pd_client_call(pd_client_t *c, const char *method, const void *params, size_t len,
                      pd_msg_t *reply);

/** Number of notifications kept by pd_client_call() and not read yet. */
size_t pd_client_pending_notifications(const pd_client_t *c);

/**
 * Look up a key in a map object (string keys). NULL if absent or if `map`
 * is not a map. The result points into `map`.
 */
const msgpack_object *pd_client_map_get(const msgpack_object *map, const char *key);

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_CLIENT_H */
