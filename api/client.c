/* client.c -- the blocking MessagePack-RPC client (see paidan/client.h).
 *
 * Design: requests are packed into one send buffer and written by
 * pd_client_flush(), so a pipeline of N requests costs one write. Replies
 * are read into one input buffer; frame.c finds where each message ends and
 * msgpack_unpack() decodes exactly that frame into a zone that is cleared
 * before every read, so steady-state reading does not allocate. Timeouts
 * use poll() in front of each blocking send/recv.
 *
 * Notifications that arrive while pd_client_call() waits for its response
 * are copied as raw frames into a FIFO and decoded again when read.
 *
 * Allocation uses the C allocator directly (not pd_malloc): this is a
 * library for other programs, which choose their own malloc.
 */
#include "paidan/client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"

/* Replies are trusted more than requests, but still bounded. */
#define CLIENT_MAX_FRAME ((size_t)1 << 30)
#define CLIENT_READ_CHUNK 65536

typedef struct note_s {
    struct note_s *next; /* FIFO link */
    size_t len;          /* frame bytes that follow */
    char data[];         /* the raw frame */
} note_t;

struct pd_client_s {
    int fd;                 /* the connected socket */
    int timeout_ms;         /* I/O timeout, <= 0 = none */
    uint32_t next_msgid;    /* id of the next request */
    msgpack_sbuffer out;    /* queued requests */
    msgpack_packer pk;      /* packs into out */
    char *in;               /* received bytes */
    size_t in_off;          /* first unread byte */
    size_t in_len;          /* bytes held */
    size_t in_cap;          /* capacity of in */
    pd_frame_scan_t scan;   /* state of the frame being received */
    msgpack_zone zone;      /* decoded objects of the last message */
    note_t *head, *tail;    /* notifications kept by pd_client_call() */
    size_t n_notes;         /* length of that FIFO */
    note_t *held;           /* the kept frame being read now */
    size_t mark;            /* where the request of pd_client_begin() starts in out */
    pd_err broken;          /* not 0 once the byte stream cannot be parsed further */
    const char *broken_why; /* and why (static text) */
    char err[128];          /* text of the last error */
};

/* Record why a call fails (for pd_client_last_error()) and return err. */
static pd_err fail_with(pd_client_t *c, pd_err err, const char *what, int errnum) {
    if (errnum)
        snprintf(c->err, sizeof(c->err), "%s: %s", what, strerror(errnum));
    else
        snprintf(c->err, sizeof(c->err), "%s", what);
    return err;
}

static pd_err io_fail(pd_client_t *c, const char *what, int errnum) {
    return fail_with(c, PD_ERR_IO, what, errnum);
}

/* The bytes from `mark` to the end of the send buffer must be exactly one
 * MessagePack object (the request), or the server would read the stream
 * out of step: anything else is dropped. The scan also enforces the
 * protocol's nesting limit, which counts the request array itself. */
static pd_err check_request(pd_client_t *c, size_t mark) {
    pd_frame_scan_t scan;
    pd_frame_scan_init(&scan, SIZE_MAX);
    size_t have = c->out.size - mark, flen = 0;
    pd_err err = pd_frame_scan(&scan, (const uint8_t *)c->out.data + mark, have, &flen);
    if (err == PD_OK && flen == have) return PD_OK;
    c->out.size = mark;
    const char *why = scan.too_deep  ? "request nested deeper than the protocol allows"
                      : err != PD_OK ? "params are not valid MessagePack"
                      : flen == 0    ? "params are not one whole MessagePack object"
                                     : "params hold more than one MessagePack object";
    return fail_with(c, PD_ERR_BAD_ARG, why, 0);
}

/* poll() one descriptor; timeout_ms < 0 waits for ever, 0 does not wait. */
static int wait_fd(int fd, short events, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

static int connect_one(const struct addrinfo *ai, int timeout_ms) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) goto fail;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) goto fail;
        if (wait_fd(fd, POLLOUT, timeout_ms > 0 ? timeout_ms : -1) <= 0) {
            errno = ETIMEDOUT;
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) goto fail;
        if (soerr) {
            errno = soerr;
            goto fail;
        }
    }
    if (fcntl(fd, F_SETFL, fl) < 0) goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* Why the calling thread's last pd_client_connect failed. */
static _Thread_local char connect_err[160] = "no error";

const char *pd_client_connect_error(void) {
    return connect_err;
}

pd_err pd_client_connect(const char *host, uint16_t port, int timeout_ms, pd_client_t **out) {
    *out = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(connect_err, sizeof(connect_err), "cannot resolve %s: %s", host,
                 gai_strerror(gai));
        return PD_ERR_IO;
    }
    int fd = -1, why = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai, timeout_ms);
        if (fd < 0) why = errno;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (why == ETIMEDOUT)
            snprintf(connect_err, sizeof(connect_err), "connect to %s port %u: no answer in %d ms",
                     host, (unsigned)port, timeout_ms);
        else
            snprintf(connect_err, sizeof(connect_err), "connect to %s port %u: %s", host,
                     (unsigned)port, strerror(why));
        return PD_ERR_IO;
    }

    pd_client_t *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        snprintf(connect_err, sizeof(connect_err), "out of memory");
        return PD_ERR_NOMEM;
    }
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    c->next_msgid = 1;
    msgpack_sbuffer_init(&c->out);
    msgpack_packer_init(&c->pk, &c->out, msgpack_sbuffer_write);
    pd_frame_scan_init(&c->scan, CLIENT_MAX_FRAME);
    if (!msgpack_zone_init(&c->zone, 8192)) {
        close(fd);
        free(c);
        snprintf(connect_err, sizeof(connect_err), "out of memory");
        return PD_ERR_NOMEM;
    }
    snprintf(c->err, sizeof(c->err), "no error");
    snprintf(connect_err, sizeof(connect_err), "no error");
    *out = c;
    return PD_OK;
}

void pd_client_destroy(pd_client_t *c) {
    if (!c) return;
    close(c->fd);
    msgpack_sbuffer_destroy(&c->out);
    msgpack_zone_destroy(&c->zone);
    free(c->in);
    while (c->head) {
        note_t *n = c->head;
        c->head = n->next;
        free(n);
    }
    free(c->held);
    free(c);
}

int pd_client_fd(const pd_client_t *c) {
    return c->fd;
}

void pd_client_set_timeout(pd_client_t *c, int timeout_ms) {
    c->timeout_ms = timeout_ms;
}

const char *pd_client_last_error(const pd_client_t *c) {
    return c->err;
}

/* ------------------------------------------------------------- sending */

msgpack_packer *pd_client_begin(pd_client_t *c, const char *method, uint32_t *msgid) {
    c->mark = c->out.size;
    uint32_t id = c->next_msgid++;
    if (msgid) *msgid = id;
    size_t mlen = strlen(method);
    msgpack_pack_array(&c->pk, 4);
    msgpack_pack_uint8(&c->pk, 0);
    msgpack_pack_uint32(&c->pk, id);
    msgpack_pack_str(&c->pk, mlen);
    msgpack_pack_str_body(&c->pk, method, mlen);
    return &c->pk;
}

pd_err pd_client_end(pd_client_t *c) {
    return check_request(c, c->mark);
}

pd_err pd_client_send(pd_client_t *c, const char *method, const void *params, size_t len,
                      uint32_t *msgid) {
    if (!method) return fail_with(c, PD_ERR_BAD_ARG, "no method name", 0);
    size_t mark = c->out.size;
    msgpack_packer *pk = pd_client_begin(c, method, msgid);
    int rc;
    if (params && len)
        rc = msgpack_sbuffer_write(&c->out, params, len);
    else
        rc = msgpack_pack_map(pk, 0);
    if (rc != 0) {
        c->out.size = mark;
        return fail_with(c, PD_ERR_NOMEM, "out of memory", 0);
    }
    return check_request(c, mark);
}

pd_err pd_client_send_raw(pd_client_t *c, const void *bytes, size_t len) {
    return msgpack_sbuffer_write(&c->out, bytes, len) == 0 ? PD_OK : PD_ERR_NOMEM;
}

pd_err pd_client_flush(pd_client_t *c) {
    size_t off = 0;
    pd_err err = PD_OK;
    while (off < c->out.size) {
        if (c->timeout_ms > 0) {
            int r = wait_fd(c->fd, POLLOUT, c->timeout_ms);
            if (r <= 0) {
                err = r == 0 ? io_fail(c, "timed out writing", 0) : io_fail(c, "poll", errno);
                break;
            }
        }
        /* Without MSG_DONTWAIT a blocking send() waits until all of a big
         * request is taken, however long the peer does not read. */
        int flags = MSG_NOSIGNAL | (c->timeout_ms > 0 ? MSG_DONTWAIT : 0);
        ssize_t n = send(c->fd, c->out.data + off, c->out.size - off, flags);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            err = io_fail(c, "send", errno);
            break;
        }
        off += (size_t)n;
    }
    /* Keep only what was not sent: a later flush (after a timeout) must go
     * on where this one stopped, not send the first bytes again. */
    if (off > 0) {
        memmove(c->out.data, c->out.data + off, c->out.size - off);
        c->out.size -= off;
    }
    return err;
}

/* ------------------------------------------------------------- reading */

pd_err pd_client_poll(pd_client_t *c, int timeout_ms, bool *ready) {
    *ready = false;
    if (c->head || c->in_len > c->in_off) {
        *ready = true;
        return PD_OK;
    }
    int r = wait_fd(c->fd, POLLIN, timeout_ms <= 0 ? 0 : timeout_ms);
    if (r < 0) return io_fail(c, "poll", errno);
    *ready = r > 0;
    return PD_OK;
}

/* Receive more bytes into c->in, keeping the unread tail. */
static pd_err fill(pd_client_t *c) {
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_cap - c->in_len < CLIENT_READ_CHUNK) {
        size_t cap = c->in_cap ? c->in_cap * 2 : CLIENT_READ_CHUNK * 2;
        while (cap - c->in_len < CLIENT_READ_CHUNK) cap *= 2;
        char *p = realloc(c->in, cap);
        if (!p) return fail_with(c, PD_ERR_NOMEM, "out of memory", 0);
        c->in = p;
        c->in_cap = cap;
    }
    for (;;) {
        if (c->timeout_ms > 0) {
            int r = wait_fd(c->fd, POLLIN, c->timeout_ms);
            if (r == 0) return io_fail(c, "timed out reading", 0);
            if (r < 0) return io_fail(c, "poll", errno);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return PD_OK;
        }
        if (n == 0) return io_fail(c, "connection closed by server", 0);
        if (errno == EINTR) continue;
        return io_fail(c, "recv", errno);
    }
}

/* The next whole frame from the socket; it stays in c->in until the next fill. */
static pd_err next_frame(pd_client_t *c, const char **frame, size_t *len) {
    /* After a bad frame the stream has no next one: say so again. */
    if (c->broken) return fail_with(c, c->broken, c->broken_why, 0);
    for (;;) {
        size_t flen = 0;
        pd_err err = pd_frame_scan(&c->scan, (const uint8_t *)c->in + c->in_off,
                                   c->in_len - c->in_off, &flen);
        if (err) {
            c->broken = err;
            c->broken_why = err == PD_ERR_TOO_LARGE ? "server sent a message over 1 GiB"
                            : c->scan.too_deep      ? "server sent a message nested too deeply"
                                                    : "server sent bytes that are not MessagePack";
            return fail_with(c, err, c->broken_why, 0);
        }
        if (flen > 0) {
            *frame = c->in + c->in_off;
            *len = flen;
            c->in_off += flen;
            return PD_OK;
        }
        err = fill(c);
        if (err) return err;
    }
}

static char *zone_cstr(msgpack_zone *z, const msgpack_object *o) {
    const char *p = "";
    uint32_t n = 0;
    if (o->type == MSGPACK_OBJECT_STR) {
        p = o->via.str.ptr;
        n = o->via.str.size;
    }
    char *s = msgpack_zone_malloc(z, (size_t)n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Decode one frame into *msg (objects in c->zone). */
static pd_err decode(pd_client_t *c, const char *frame, size_t len, pd_msg_t *msg) {
    memset(msg, 0, sizeof(*msg));
    msg->message = "";
    msgpack_zone_clear(&c->zone);
    msgpack_object o;
    size_t off = 0;
    if (msgpack_unpack(frame, len, &off, &c->zone, &o) != MSGPACK_UNPACK_SUCCESS)
        return PD_ERR_BAD_REQUEST;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 3) return PD_ERR_BAD_REQUEST;
    const msgpack_object *a = o.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) return PD_ERR_BAD_REQUEST;
    if (a[0].via.u64 == PD_MSG_RESPONSE && o.via.array.size == 4) {
        if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX)
            return PD_ERR_BAD_REQUEST;
        msg->type = PD_MSG_RESPONSE;
        msg->msgid = (uint32_t)a[1].via.u64;
        msg->result = a[3];
        if (a[2].type == MSGPACK_OBJECT_NIL) return PD_OK;
        if (a[2].type != MSGPACK_OBJECT_ARRAY || a[2].via.array.size < 1) return PD_ERR_BAD_REQUEST;
        const msgpack_object *e = a[2].via.array.ptr;
        if (e[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[0].via.u64 <= INT32_MAX)
            msg->code = (int64_t)e[0].via.u64;
        else
            msg->code = PD_ERR_INTERNAL;
        if (msg->code == 0) msg->code = PD_ERR_INTERNAL;
        if (a[2].via.array.size > 1) {
            char *m = zone_cstr(&c->zone, &e[1]);
            if (!m) return PD_ERR_NOMEM;
            msg->message = m;
        }
        return PD_OK;
    }
    if (a[0].via.u64 == PD_MSG_NOTIFICATION && o.via.array.size == 3) {
        if (a[1].type != MSGPACK_OBJECT_STR) return PD_ERR_BAD_REQUEST;
        msg->type = PD_MSG_NOTIFICATION;
        char *m = zone_cstr(&c->zone, &a[1]);
        if (!m) return PD_ERR_NOMEM;
        msg->method = m;
        msg->params = a[2];
        return PD_OK;
    }
    return PD_ERR_BAD_REQUEST;
}

/* decode(), with the reason of a failure kept for pd_client_last_error(). */
static pd_err decode_msg(pd_client_t *c, const char *frame, size_t len, pd_msg_t *msg) {
    pd_err err = decode(c, frame, len, msg);
    if (err == PD_ERR_NOMEM) return fail_with(c, err, "out of memory", 0);
    if (err)
        return fail_with(c, err, "server sent a message that is not a response or a notification",
                         0);
    return PD_OK;
}

pd_err pd_client_read(pd_client_t *c, pd_msg_t *msg) {
    free(c->held);
    c->held = NULL;
    if (c->head) {
        note_t *n = c->head;
        c->head = n->next;
        if (!c->head) c->tail = NULL;
        c->n_notes--;
        c->held = n;
        return decode_msg(c, n->data, n->len, msg);
    }
    const char *frame;
    size_t len;
    pd_err err = next_frame(c, &frame, &len);
    if (err) return err;
    return decode_msg(c, frame, len, msg);
}

pd_err pd_client_read_response(pd_client_t *c, pd_msg_t *msg) {
    free(c->held);
    c->held = NULL;
    for (;;) {
        const char *frame;
        size_t len;
        pd_err err = next_frame(c, &frame, &len);
        if (err) return err;
        err = decode_msg(c, frame, len, msg);
        if (err) return err;
        if (msg->type == PD_MSG_RESPONSE) return PD_OK;
        note_t *n = malloc(sizeof(*n) + len);
        if (!n) return fail_with(c, PD_ERR_NOMEM, "out of memory", 0);
        n->next = NULL;
        n->len = len;
        memcpy(n->data, frame, len);
        if (c->tail)
            c->tail->next = n;
        else
            c->head = n;
        c->tail = n;
        c->n_notes++;
    }
}

pd_err pd_client_call(pd_client_t *c, const char *method, const void *params, size_t len,
                      pd_msg_t *reply) {
    uint32_t id;
    pd_err err = pd_client_send(c, method, params, len, &id);
    if (err) return err;
    err = pd_client_flush(c);
    if (err) return err;
    for (;;) {
        err = pd_client_read_response(c, reply);
        if (err) return err;
        if (reply->msgid == id) return PD_OK;
    }
}

size_t pd_client_pending_notifications(const pd_client_t *c) {
    return c->n_notes;
}

const msgpack_object *pd_client_map_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}
