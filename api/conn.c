/* conn.c -- client connections: reading, framing, dispatch and writing.
 *
 * Reading. libuv asks for a buffer before each read (on_alloc). A
 * connection with no partial frame reads into the server's shared 64 KiB
 * buffer, and the frames in it are executed straight from there; only the
 * tail of a frame split across reads is copied into the connection's own
 * buffer, which later reads then append to. So a client doing small
 * request/response round trips never gets an input buffer of its own.
 *
 * Framing and limits. frame.c finds each frame's end and refuses frames
 * over --max-frame; either problem breaks the stream and the connection is
 * closed after a best-effort ["server.error", {code, message}]
 * notification. A frame that decodes but is not a well-formed request gets
 * an error reply and the connection goes on.
 *
 * Dispatch. Each request is [0, msgid, method, params]; params may be a
 * map, an array holding one map, or nil/[] for none. The reply header
 * [1, msgid, is packed first, then the handler packs error and result.
 * A client notification [2, method, params] runs the method and sends
 * nothing back (fire-and-forget location pings, say). Latency is measured
 * around the handler with uv_hrtime() into the method's histogram.
 *
 * Journaling. A write method that replied without error is appended to
 * the journal (persist.c) right after its handler; pd_conn_flush() commits
 * the journal before it writes anything, so no reply acknowledges a write
 * that is not yet in the journal as --fsync asks.
 *
 * Fair turns. The loop is shared, and libuv reads a readable socket up to
 * 32 times in a row, so a client that pipelines without pause (or floods
 * malformed frames) could otherwise hold the loop for a second or more
 * while every other client waits. A connection runs at most TURN_FRAMES
 * frames per turn; then it stops being read, what it sent stays in its
 * input buffer, and an idle handle gives it its next turn on the next loop
 * iteration, after the other connections have had theirs.
 *
 * Rate limit. With --max-rps each connection has a token bucket (refilled
 * at that rate, holding at most a tenth of a second's worth, at least one
 * frame). A frame, well-formed or not, takes a token before it runs; when
 * none is left the connection stops being read: the frames already
 * received wait in its input buffer, the kernel's buffers fill, and the
 * client's own writes block. That is backpressure rather than an error, so
 * a well-behaved client only slows down, and a flooding one costs the loop
 * nothing while it waits. The server's rate timer resumes it once the
 * bucket has refilled.
 *
 * Writing. Replies accumulate in `out`; pd_conn_flush() tries a direct
 * uv_try_write() first and hands only what the socket did not take to
 * uv_write(), swapping `out` with the in-flight buffer `wbuf` so nothing is
 * copied. Unsent bytes beyond --max-output cut the connection off: a client
 * that does not read its replies cannot make the server buffer without end.
 */
#include "conn.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "import.h"
#include "methods.h"
#include "paidan/alloc.h"
#include "persist.h"

/* Output buffers above this are freed once empty rather than kept. */
#define OUT_KEEP_MAX (256 * 1024)
/* Flush in the middle of a read once this much output has piled up. */
#define OUT_FLUSH_AT (64 * 1024)
/* Input buffers above this are freed once empty. */
#define IN_KEEP_MAX (1024 * 1024)
/* Frames a connection may run before the others get their turn. */
#define TURN_FRAMES 64

static void on_close(uv_handle_t *h);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void pause_unlink(pd_conn_t *c);
static bool rate_take(pd_conn_t *c);
static double rate_burst(uint32_t rps);
static void pause_conn(pd_conn_t *c, uint8_t why);
static void on_rate_timer(uv_timer_t *t);
static void on_turn_idle(uv_idle_t *h);

/* msgpack write callback: like msgpack_sbuffer_write, but remembers a
 * failure so the connection is closed instead of sending a torn frame. */
static int out_write(void *data, const char *buf, size_t len) {
    pd_conn_t *c = data;
    if (msgpack_sbuffer_write(&c->out, buf, len) != 0) {
        c->oom = true;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------- lifecycle */

void pd_conn_accept(pd_server_t *srv) {
    pd_conn_t *c = pd_calloc(1, sizeof(*c));
    if (!c) {
        pd_log(PD_LOG_ERROR, "out of memory accepting a connection");
        return;
    }
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    if (uv_tcp_init(srv->loop, &c->tcp) != 0) {
        pd_free(c);
        return;
    }
    c->tcp.data = c;
    msgpack_sbuffer_init(&c->out);
    msgpack_sbuffer_init(&c->wbuf);
    msgpack_packer_init(&c->pk, c, out_write);
    pd_frame_scan_init(&c->scan, srv->cfg.max_frame);
    c->authed = srv->cfg.token == NULL;
    c->last_active_ms = uv_now(srv->loop);
    c->tokens_ms = c->last_active_ms;
    c->tokens = srv->cfg.max_rps ? rate_burst(srv->cfg.max_rps) : 0.0;

    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;

    if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp) != 0) {
        pd_conn_close(c, PD_OK, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
            snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
            snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
        }
    }
    srv->n.conns_accepted++;
    if (srv->n_conns > srv->cfg.max_conns) {
        srv->n.conns_rejected++;
        pd_log(PD_LOG_WARN, "refusing %s: max connections (%u) reached", c->peer,
               srv->cfg.max_conns);
        pd_conn_close(c, PD_ERR_LIMIT, "max connections reached");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        pd_conn_close(c, PD_OK, "read start failed");
        return;
    }
    pd_log(PD_LOG_DEBUG, "conn %llu from %s", (unsigned long long)c->id, c->peer);
}

void pd_conn_close(pd_conn_t *c, pd_err code, const char *why) {
    if (c->closing) return;
    pd_server_t *srv = c->srv;
    c->closing = true;
    if (code != PD_OK && !c->writing) {
        /* The last word goes out behind the replies already packed (a
         * write pipelined before the bad frame, say), so, as in
         * pd_conn_flush(), the journal first: no reply leaves before the
         * journal holds what it acknowledges. A failed commit empties
         * every output (persist.c) and only the last word is left. */
        if (c->out.size && pd_persist_pending(srv)) pd_persist_commit(srv);
        /* A last word, if the socket takes it at once; never waited for. */
        size_t mark = c->out.size;
        msgpack_pack_array(&c->pk, 3);
        msgpack_pack_uint8(&c->pk, 2);
        pd_pack_cstr(&c->pk, "server.error");
        msgpack_pack_map(&c->pk, 2);
        pd_pack_kv_u64(&c->pk, "code", (uint64_t)code);
        pd_pack_kv_str(&c->pk, "message", why);
        if (!c->oom) {
            uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.size);
            int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (n > 0) srv->n.bytes_out += (uint64_t)n;
        }
        c->out.size = mark;
    }
    pd_log(code == PD_OK ? PD_LOG_DEBUG : PD_LOG_INFO, "conn %llu %s closed: %s",
           (unsigned long long)c->id, c->peer, why);
    if (c->subs) {
        c->subs = 0;
        pd_server_subscriber_update(srv, c);
    }
    if (c->paused == PD_PAUSE_DEFER) pd_import_conn_gone(srv, c);
    if (c->paused) pause_unlink(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_close(uv_handle_t *h) {
    pd_conn_t *c = h->data;
    pd_server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->n_conns--;
    if (c->dirty) {
        /* Still on the dirty list: it happens when flushing was held back
         * until the journal committed and the commit failed (persist.c
         * closes every connection then). Unlink; the list is short. */
        for (pd_conn_t **pp = &srv->dirty; *pp; pp = &(*pp)->dirty_next) {
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
        }
    }
    msgpack_sbuffer_destroy(&c->out);
    msgpack_sbuffer_destroy(&c->wbuf);
    pd_free(c->in);
    pd_free(c);
}

/* -------------------------------------------------------------- writing */

size_t pd_conn_pending(const pd_conn_t *c) {
    return c->out.size + (c->writing ? c->wbuf.size - c->woff : 0);
}

bool pd_conn_check_output(pd_conn_t *c) {
    if (c->closing) return false;
    if (c->oom) {
        pd_conn_close(c, PD_OK, "out of memory for output");
        return false;
    }
    if (pd_conn_pending(c) <= c->srv->cfg.max_output) return true;
    /* Judge only what the socket refuses: try to write the backlog first. */
    pd_conn_flush(c);
    if (c->closing) return false;
    if (pd_conn_pending(c) > c->srv->cfg.max_output) {
        c->srv->n.output_cutoffs++;
        pd_log(PD_LOG_WARN, "conn %llu %s cut off: %zu bytes of output unread (limit %zu)",
               (unsigned long long)c->id, c->peer, pd_conn_pending(c), c->srv->cfg.max_output);
        pd_conn_close(c, PD_OK, "output limit");
        return false;
    }
    return true;
}

static void shrink(msgpack_sbuffer *sb) {
    if (sb->alloc > OUT_KEEP_MAX) {
        msgpack_sbuffer_destroy(sb);
        msgpack_sbuffer_init(sb);
    }
}

static void on_write(uv_write_t *req, int status) {
    pd_conn_t *c = req->data;
    c->writing = false;
    if (status >= 0) c->srv->n.bytes_out += c->wbuf.size - c->woff;
    c->wbuf.size = 0;
    c->woff = 0;
    shrink(&c->wbuf);
    if (c->closing) return;
    if (status < 0) {
        pd_conn_close(c, PD_OK, uv_strerror(status));
        return;
    }
    pd_conn_flush(c);
}

void pd_conn_flush(pd_conn_t *c) {
    if (c->closing || c->writing || c->out.size == 0) return;
    /* Nothing leaves before the journal holds what it acknowledges. */
    if (pd_persist_pending(c->srv) && !pd_persist_commit(c->srv)) return;
    if (c->closing) return;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.size);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) {
        pd_conn_close(c, PD_OK, uv_strerror(n));
        return;
    }
    c->srv->n.bytes_out += (uint64_t)n;
    if ((size_t)n == c->out.size) {
        c->out.size = 0;
        shrink(&c->out);
        return;
    }
    /* The socket is full: the rest goes out asynchronously from wbuf. */
    msgpack_sbuffer t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.size = 0;
    c->woff = (size_t)n;
    uv_buf_t rest = uv_buf_init(c->wbuf.data + n, (unsigned)(c->wbuf.size - (size_t)n));
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &rest, 1, on_write);
    if (rc != 0) {
        c->wbuf.size = 0;
        pd_conn_close(c, PD_OK, uv_strerror(rc));
        return;
    }
    c->writing = true;
}

/* -------------------------------------------------------------- replies */

msgpack_packer *pd_reply_ok(pd_conn_t *c) {
    c->out.size = c->reply_mark;
    msgpack_pack_nil(&c->pk);
    c->replied = true;
    c->reply_err = PD_OK;
    return &c->pk;
}

/* A message cut at its buffer's end may stop inside a UTF-8 character (a
 * file name in Chinese, say); msgpack strings must be UTF-8, and strict
 * decoders refuse the reply: drop the incomplete character. */
static void trim_cut_utf8(char *s, size_t len) {
    size_t i = len, cont = 0;
    while (i > 0 && cont < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0) return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (need > 1 && cont + 1 < need) s[i - 1] = '\0';
}

void pd_reply_error(pd_conn_t *c, pd_err code, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) msg[0] = '\0';
    if (n >= (int)sizeof(msg)) trim_cut_utf8(msg, sizeof(msg) - 1);
    c->out.size = c->reply_mark;
    msgpack_pack_array(&c->pk, 2);
    msgpack_pack_uint32(&c->pk, (uint32_t)code);
    pd_pack_cstr(&c->pk, msg);
    msgpack_pack_nil(&c->pk);
    c->replied = true;
    c->reply_err = code;
}

/* ------------------------------------------------------------- dispatch */

static const msgpack_object empty_map = {.type = MSGPACK_OBJECT_MAP};

/* Begin a reply to msgid: [1, msgid, ... */
static void reply_begin(pd_conn_t *c, uint32_t msgid) {
    msgpack_pack_array(&c->pk, 4);
    msgpack_pack_uint8(&c->pk, 1);
    msgpack_pack_uint32(&c->pk, msgid);
    c->reply_mark = c->out.size;
    c->replied = false;
}

/* A frame that decodes but is not a usable request: reply, keep going. */
static void reply_bad_frame(pd_conn_t *c, uint32_t msgid, bool quiet, const char *why) {
    pd_server_t *srv = c->srv;
    srv->n.bad_requests++;
    srv->n.errors++;
    if (quiet) return;
    reply_begin(c, msgid);
    pd_reply_error(c, PD_ERR_BAD_REQUEST, "malformed request: %s", why);
}

static void execute(pd_conn_t *c, uint32_t msgid, const msgpack_object *method,
                    const msgpack_object *params, size_t frame_len, bool quiet) {
    pd_server_t *srv = c->srv;
    size_t start = c->out.size;
    srv->n.requests++;
    reply_begin(c, msgid);

    int mid = pd_method_lookup(method->via.str.ptr, method->via.str.size);
    /* Before auth, an unknown name is refused like a known one, so an
     * unauthenticated client cannot probe which methods exist. */
    if (!c->authed && (mid < 0 || !(pd_methods[mid].flags & PD_M_NOAUTH))) {
        srv->n.auth_failures++;
        srv->n.errors++;
        pd_reply_error(c, PD_ERR_UNAUTHORIZED, "authentication required: call auth {token}");
        goto done;
    }
    if (mid < 0) {
        srv->n.unknown_methods++;
        srv->n.errors++;
        char echo[72];
        pd_reply_error(c, PD_ERR_UNKNOWN_METHOD, "unknown method '%s'",
                       pd_arg_echo(echo, sizeof(echo), method->via.str.ptr, method->via.str.size));
        goto done;
    }
    const pd_method_t *m = &pd_methods[mid];
    const msgpack_object *p = params;
    if (p->type == MSGPACK_OBJECT_NIL ||
        (p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 0)) {
        p = &empty_map;
    } else if (p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1 &&
               p->via.array.ptr[0].type == MSGPACK_OBJECT_MAP) {
        p = &p->via.array.ptr[0];
    }
    pd_method_stats_t *ms = &srv->mstats[mid];
    if (p->type != MSGPACK_OBJECT_MAP) {
        ms->calls++;
        ms->errors++;
        srv->n.errors++;
        pd_reply_error(c, PD_ERR_BAD_ARG, "params must be a map of named arguments");
        goto done;
    }

    const bool writes = pd_method_call_writes(m, p);
    if (writes && srv->cfg.follow) {
        /* A replica's state is the stream's: it takes no writes of its own. */
        ms->calls++;
        ms->errors++;
        srv->n.errors++;
        pd_reply_error(c, PD_ERR_READ_ONLY,
                       "read-only replica of stream %s on %s: send %s to the primary",
                       srv->cfg.stream ? srv->cfg.stream : "paidan", srv->cfg.follow, m->name);
        goto done;
    }
    if (writes && !pd_persist_may_write(srv, frame_len)) {
        /* The journal has no room reserved for this write's record and
         * the disk gives no more: refuse before the engine sees it. */
        ms->calls++;
        ms->errors++;
        srv->n.errors++;
        pd_reply_error(c, PD_ERR_IO,
                       "data directory full (%s): writes are refused until space is freed; "
                       "reads are served",
                       pd_persist_full_reason(srv));
        goto done;
    }
    pd_server_stamp(srv);
    uint64_t t0 = uv_hrtime();
    m->fn(c, p);
    uint64_t t1 = uv_hrtime();
    if (c->deferring) {
        /* The handler answers later: nothing of this reply is kept, and
         * the connection waits (its own records go to the journal as the
         * handler makes them). */
        c->deferring = false;
        c->deferred_msgid = msgid;
        c->deferred_mid = mid;
        c->deferred_quiet = quiet;
        c->out.size = start;
        ms->calls++;
        pd_hist_add(&ms->lat, t1 - t0);
        pause_conn(c, PD_PAUSE_DEFER);
        if (srv->n_events) pd_server_publish(srv);
        return;
    }
    if (PD_NEVER(!c->replied)) pd_reply_error(c, PD_ERR_INTERNAL, "handler sent no reply");
    ms->calls++;
    pd_hist_add(&ms->lat, t1 - t0);
    if (c->reply_err != PD_OK) {
        ms->errors++;
        srv->n.errors++;
    } else if (writes && srv->persist) {
        /* Journaled before anything can acknowledge it (persist.c). */
        pd_persist_record(srv, mid, p);
    }
#ifndef NDEBUG
    /* Debug builds check that the handler packed exactly one reply frame. */
    pd_frame_scan_t check;
    size_t flen = 0;
    pd_frame_scan_init(&check, (size_t)-1);
    pd_err ferr =
        pd_frame_scan(&check, (const uint8_t *)c->out.data + start, c->out.size - start, &flen);
    assert(c->oom || (ferr == PD_OK && flen == c->out.size - start));
    (void)ferr;
#endif
done:
    if (quiet) c->out.size = start;
    if (srv->n_events) pd_server_publish(srv);
}

static void handle_frame(pd_conn_t *c, const char *data, size_t len) {
    pd_server_t *srv = c->srv;
    msgpack_object o;
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack(data, len, &off, &srv->zone, &o);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != len) {
        srv->n.protocol_errors++;
        pd_conn_close(c, rc == MSGPACK_UNPACK_NOMEM_ERROR ? PD_ERR_NOMEM : PD_ERR_BAD_REQUEST,
                      "undecodable MessagePack");
        msgpack_zone_clear(&srv->zone);
        return;
    }
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size == 0) {
        reply_bad_frame(c, 0, false, "a message is an array");
    } else {
        const msgpack_object *a = o.via.array.ptr;
        uint32_t n = o.via.array.size;
        bool id_ok =
            n >= 2 && a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[1].via.u64 <= UINT32_MAX;
        uint32_t msgid = id_ok ? (uint32_t)a[1].via.u64 : 0;
        if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            reply_bad_frame(c, msgid, false, "type must be 0 (request) or 2 (notification)");
        } else if (a[0].via.u64 == 0) {
            if (n != 4)
                reply_bad_frame(c, msgid, false, "a request is [0, msgid, method, params]");
            else if (!id_ok)
                reply_bad_frame(c, 0, false, "msgid must be an integer 0..2^32-1");
            else if (a[2].type != MSGPACK_OBJECT_STR)
                reply_bad_frame(c, msgid, false, "method must be a string");
            else
                execute(c, msgid, &a[2], &a[3], len, false);
        } else if (a[0].via.u64 == 2) {
            if (n == 3 && a[1].type == MSGPACK_OBJECT_STR)
                execute(c, 0, &a[1], &a[2], len, true);
            else
                reply_bad_frame(c, 0, true, "bad notification");
        } else {
            reply_bad_frame(c, msgid, false, "type must be 0 (request) or 2 (notification)");
        }
    }
    msgpack_zone_clear(&srv->zone);
}

/* -------------------------------------------------------------- reading */

static bool in_reserve(pd_conn_t *c, size_t need) {
    if (c->in_cap >= need) return true;
    size_t cap = c->in_cap ? c->in_cap : PD_SERVER_READ_CHUNK;
    while (cap < need) cap *= 2;
    char *p = pd_realloc(c->in, cap);
    if (!p) return false;
    c->in = p;
    c->in_cap = cap;
    return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    pd_conn_t *c = h->data;
    if (c->in_len == 0) {
        *buf = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
        return;
    }
    if (!in_reserve(c, c->in_len + PD_SERVER_READ_CHUNK)) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

/* Run the frames in data[0..len) and keep the rest for the next read.
 * `shared` says data is the server's read buffer (else it is c->in). */
static void feed(pd_conn_t *c, const char *data, size_t len, bool shared) {
    pd_server_t *srv = c->srv;
    size_t off = 0;
    unsigned turn = 0;
    while (!c->closing) {
        size_t flen = 0;
        pd_err err = pd_frame_scan(&c->scan, (const uint8_t *)data + off, len - off, &flen);
        if (err == PD_ERR_TOO_LARGE) {
            srv->n.frames_too_large++;
            char why[96];
            snprintf(why, sizeof(why), "frame larger than the limit of %zu bytes",
                     c->scan.max_frame);
            pd_conn_close(c, PD_ERR_TOO_LARGE, why);
            break;
        }
        if (err) {
            srv->n.protocol_errors++;
            pd_conn_close(c, PD_ERR_BAD_REQUEST,
                          c->scan.too_deep ? "MessagePack nested deeper than 32 levels"
                                           : "undecodable MessagePack");
            break;
        }
        if (flen == 0) break;
        /* The scanner is back at this frame's start: it runs on resume. */
        if (turn++ == TURN_FRAMES) {
            pause_conn(c, PD_PAUSE_TURN);
            break;
        }
        if (!rate_take(c)) {
            pause_conn(c, PD_PAUSE_RATE);
            break;
        }
        handle_frame(c, data + off, flen);
        off += flen;
        if (c->paused) break; /* a deferred reply: the rest waits for it */
        if (c->out.size >= OUT_FLUSH_AT) pd_conn_flush(c);
        if (!pd_conn_check_output(c)) break;
    }

    if (!c->closing) {
        size_t rest = len - off;
        if (shared) {
            if (rest > 0) {
                if (!in_reserve(c, rest + PD_SERVER_READ_CHUNK)) {
                    pd_conn_close(c, PD_ERR_NOMEM, "out of memory for input");
                } else {
                    memcpy(c->in, data + off, rest);
                    c->in_len = rest;
                }
            }
        } else {
            if (off > 0 && rest > 0) memmove(c->in, c->in + off, rest);
            c->in_len = rest;
            if (rest == 0 && c->in_cap > IN_KEEP_MAX) {
                pd_free(c->in);
                c->in = NULL;
                c->in_cap = 0;
            }
        }
    }
}

/* What the first bytes of a connection say about HTTP. */
typedef enum { HTTP_NO, HTTP_YES, HTTP_MAYBE } http_guess;

/* The first bytes of a connection are an HTTP request line (a browser,
 * curl, a load balancer's health check, a scraper pointed at the wrong
 * port). No request can start so: one begins with an array header, and
 * each of these letters would be read as a stray integer, answered with
 * one BAD_REQUEST each. HTTP_MAYBE: the bytes so far are the start of a
 * request line cut short (a first read of "GE"), so the next read
 * decides; at most 11 bytes wait. */
static http_guess looks_like_http(const char *p, size_t n) {
    /* the method and its space: the target may be a path, "*", or the
     * absolute URL a client sends to what it takes for a proxy */
    static const char *const verbs[] = {"GET ",   "HEAD ",    "POST ",    "PUT ",   "DELETE ",
                                        "PATCH ", "OPTIONS ", "CONNECT ", "TRACE ", "PRI * HTTP/2"};
    http_guess g = HTTP_NO;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        size_t k = strlen(verbs[i]);
        if (memcmp(p, verbs[i], n < k ? n : k) != 0) continue;
        if (n >= k) return HTTP_YES;
        g = HTTP_MAYBE;
    }
    return g;
}

/* Say so in HTTP, which the client understands, and close. */
static void refuse_http(pd_conn_t *c) {
    static const char body[] =
        "paidan-server speaks MessagePack-RPC on this port, not HTTP: see docs/protocol.md. "
        "Prometheus metrics are served on --metrics-port (GET /metrics).\n";
    char msg[512];
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    uv_buf_t b = uv_buf_init(msg, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w > 0) c->srv->n.bytes_out += (uint64_t)w;
    c->srv->n.protocol_errors++;
    pd_log(PD_LOG_INFO, "conn %llu %s: an HTTP request on the RPC port, answered 400",
           (unsigned long long)c->id, c->peer);
    pd_conn_close(c, PD_OK, "HTTP request on the RPC port");
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    pd_conn_t *c = st->data;
    pd_server_t *srv = c->srv;
    if (nread == 0) return;
    if (nread < 0) {
        pd_conn_close(c, PD_OK, nread == UV_EOF ? "closed by client" : uv_strerror((int)nread));
        pd_server_flush(srv);
        return;
    }
    srv->n.bytes_in += (uint64_t)nread;
    c->last_active_ms = uv_now(srv->loop);
    pd_server_busy_poll(srv);

    bool shared = buf->base == srv->rbuf;
    if (!c->spoke) {
        /* the bytes so far: this read, after any held back by the last */
        const char *head = shared ? buf->base : c->in;
        size_t n = shared ? (size_t)nread : c->in_len + (size_t)nread;
        http_guess g = looks_like_http(head, n);
        if (g == HTTP_MAYBE) {
            /* hold them, unscanned, until the next read says which */
            if (!shared) {
                c->in_len = n;
            } else if (!in_reserve(c, n + PD_SERVER_READ_CHUNK)) {
                pd_conn_close(c, PD_ERR_NOMEM, "out of memory for input");
                pd_server_flush(srv);
            } else {
                memcpy(c->in, head, n);
                c->in_len = n;
            }
            return;
        }
        c->spoke = true;
        if (g == HTTP_YES) {
            refuse_http(c);
            pd_server_flush(srv);
            return;
        }
    }
    if (shared) {
        feed(c, srv->rbuf, (size_t)nread, true);
    } else {
        c->in_len += (size_t)nread;
        feed(c, c->in, c->in_len, false);
    }
    if (!c->closing) pd_server_mark_dirty(srv, c);
    pd_server_flush(srv);
}

/* ----------------------------------------------------------- rate limit */

/* Bucket size: a tenth of a second's worth of frames, at least one. */
static double rate_burst(uint32_t rps) {
    return rps >= 10 ? (double)rps / 10.0 : 1.0;
}

/* Refill the bucket for the time since it was last filled. */
static void rate_refill(pd_conn_t *c) {
    uint32_t rps = c->srv->cfg.max_rps;
    uint64_t now = uv_now(c->srv->loop);
    if (now == c->tokens_ms) return;
    c->tokens += (double)(now - c->tokens_ms) * (double)rps / 1000.0;
    double burst = rate_burst(rps);
    if (c->tokens > burst) c->tokens = burst;
    c->tokens_ms = now;
}

/* True if one more frame may run now (and take its token). */
static bool rate_take(pd_conn_t *c) {
    if (c->srv->cfg.max_rps == 0) return true;
    if (c->tokens < 1.0) rate_refill(c);
    if (c->tokens < 1.0) return false;
    c->tokens -= 1.0;
    return true;
}

/* Stop reading c: until the next loop iteration (PD_PAUSE_TURN, resumed
 * by the idle handle) or until its bucket refills (PD_PAUSE_RATE, resumed
 * by the rate timer). */
static void pause_conn(pd_conn_t *c, uint8_t why) {
    pd_server_t *srv = c->srv;
    c->paused = why;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->pause_prev = NULL;
    c->pause_next = srv->paused;
    if (srv->paused) srv->paused->pause_prev = c;
    srv->paused = c;
    if (why == PD_PAUSE_TURN) {
        if (!uv_is_active((uv_handle_t *)&srv->turn_idle))
            uv_idle_start(&srv->turn_idle, on_turn_idle);
        return;
    }
    if (why == PD_PAUSE_DEFER) return;
    srv->n.rate_limited++;
    if (!uv_is_active((uv_handle_t *)&srv->rate_timer)) {
        uint64_t every = 1000u / srv->cfg.max_rps;
        if (every < 1) every = 1;
        if (every > 100) every = 100;
        uv_timer_start(&srv->rate_timer, on_rate_timer, every, every);
    }
}

static void pause_unlink(pd_conn_t *c) {
    pd_server_t *srv = c->srv;
    if (c->pause_prev)
        c->pause_prev->pause_next = c->pause_next;
    else
        srv->paused = c->pause_next;
    if (c->pause_next) c->pause_next->pause_prev = c->pause_prev;
    c->pause_prev = c->pause_next = NULL;
    c->paused = PD_PAUSE_NONE;
}

/* Resume a paused connection: run the frames it sent before it was paused
 * (it may pause again), then read it again. */
static void resume_conn(pd_conn_t *c) {
    pd_server_t *srv = c->srv;
    pause_unlink(c);
    c->last_active_ms = uv_now(srv->loop);
    if (c->in_len > 0) feed(c, c->in, c->in_len, false);
    if (c->closing) return;
    pd_server_mark_dirty(srv, c);
    if (!c->paused && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        pd_conn_close(c, PD_OK, "read start failed");
}

void pd_reply_defer(pd_conn_t *c) {
    c->deferring = true;
    c->replied = true;
    c->reply_err = PD_OK;
}

void pd_reply_deferred_begin(pd_conn_t *c) {
    c->deferred_start = c->out.size;
    reply_begin(c, c->deferred_msgid);
}

void pd_reply_deferred_done(pd_conn_t *c) {
    if (c->closing || c->paused != PD_PAUSE_DEFER) return;
    /* counted as a call when it was deferred; an error only now */
    if (c->reply_err != PD_OK) {
        c->srv->mstats[c->deferred_mid].errors++;
        c->srv->n.errors++;
    }
    if (c->deferred_quiet) c->out.size = c->deferred_start; /* a notification: no reply */
    resume_conn(c);
    pd_server_flush(c->srv);
}

/* Stop the handles that resume connections once nobody waits for them. */
static void pause_handles_update(pd_server_t *srv) {
    bool turn = false, rate = false;
    for (pd_conn_t *c = srv->paused; c && !(turn && rate); c = c->pause_next) {
        if (c->paused == PD_PAUSE_TURN) turn = true;
        if (c->paused == PD_PAUSE_RATE) rate = true;
    }
    if (!turn) uv_idle_stop(&srv->turn_idle);
    if (!rate) uv_timer_stop(&srv->rate_timer);
}

/* The next loop iteration: connections that used up their turn get
 * another. Those paused during this walk go to the head of the list, so
 * each gets one turn per iteration. */
static void on_turn_idle(uv_idle_t *h) {
    pd_server_t *srv = h->data;
    for (pd_conn_t *c = srv->paused, *next; c; c = next) {
        next = c->pause_next;
        if (c->closing || c->paused != PD_PAUSE_TURN) continue;
        resume_conn(c);
    }
    pause_handles_update(srv);
    pd_server_flush(srv);
}

/* The rate timer: resume the paused connections whose bucket refilled,
 * running the frames they had already sent, then reading them again. */
static void on_rate_timer(uv_timer_t *t) {
    pd_server_t *srv = t->data;
    for (pd_conn_t *c = srv->paused, *next; c; c = next) {
        next = c->pause_next;
        if (c->closing || c->paused != PD_PAUSE_RATE) continue;
        rate_refill(c);
        if (c->tokens < 1.0) continue;
        resume_conn(c);
    }
    pause_handles_update(srv);
    pd_server_flush(srv);
}
