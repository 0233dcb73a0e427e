/* test_protocol.c -- bad input, limits, auth, idle timeout and shutdown of
 * a real paidan-server.
 *
 * Every bad input is followed by the same three checks: the connection
 * that sent it still answers (or, for a broken stream, was closed), a
 * second connection still answers, and the state is unchanged (the
 * volunteer seeded at the start reads back exactly as before).
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

/* A string literal and its length, NULs included. */
#define RAW(s) s, sizeof(s) - 1

static srv_t srv;

static const char *const small_frames[] = {"--max-frame", "4096", NULL};

static void start_small(void) {
    srv_start(&srv, small_frames);
}

static void stop(void) {
    srv_stop(&srv);
}

static const char *seed_json =
    "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"capacity\":2}";

static void seed(void) {
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "volunteer.upsert", seed_json);
    pd_client_destroy(c);
}

/* The seeded volunteer reads back unchanged and there is still one of them. */
static void check_unchanged(void) {
    pd_client_t *c = srv_connect(&srv);
    pd_msg_t m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_float_eq(map_num(&m.result, "lat"), 30.6, 1e-9);
    cr_assert_float_eq(map_num(&m.result, "lon"), 114.3, 1e-9);
    cr_assert_eq(map_int(&m.result, "capacity"), 2);
    cr_assert_str_eq(map_str(&m.result, "status"), "online");
    cr_assert_eq(pd_client_map_get(&m.result, "skills")->via.array.size, 1);
    m = call_ok(c, "stats", "");
    cr_assert_eq(map_int(&m.result, "volunteers"), 1);
    cr_assert_eq(map_int(&m.result, "orders"), 0);
    pd_client_destroy(c);
}

static void still_answers(pd_client_t *c) {
    pd_msg_t m = call_ok(c, "ping", "");
    cr_assert(obj_str_eq(&m.result, "pong"));
}

/* Send raw bytes and read one response. */
static pd_msg_t raw_roundtrip(pd_client_t *c, const void *bytes, size_t len) {
    cr_assert_eq(pd_client_send_raw(c, bytes, len), PD_OK);
    cr_assert_eq(pd_client_flush(c), PD_OK);
    pd_msg_t m;
    cr_assert_eq(pd_client_read(c, &m), PD_OK, "no reply: %s", pd_client_last_error(c));
    cr_assert_eq(m.type, PD_MSG_RESPONSE);
    return m;
}

TestSuite(bad_input, .init = start_small, .fini = stop, .timeout = 30);

Test(bad_input, frames_that_are_not_requests) {
    seed();
    pd_client_t *c = srv_connect(&srv);
    static const struct {
        const char *bytes;
        size_t len;
        uint32_t msgid;
        const char *what;
    } cases[] = {
        {RAW("\x81\xa1"
             "a\x01"),
         0, "a map"},
        {RAW("\x05"), 0, "an integer"},
        {RAW("\xa3"
             "abc"),
         0, "a string"},
        {RAW("\xc0"), 0, "nil"},
        {RAW("\x90"), 0, "an empty array"},
        {RAW("\x94\x05\x07\xa4ping\x80"), 7, "type 5"},
        {RAW("\x94\xa1x\x07\xa4ping\x80"), 7, "a string type"},
        {RAW("\x93\x00\x07\xa4ping"), 7, "a request of 3 elements"},
        {RAW("\x95\x00\x07\xa4ping\x80\x80"), 7, "a request of 5 elements"},
        {RAW("\x94\x00\xff\xa4ping\x80"), 0, "a negative msgid"},
        {RAW("\x94\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa4ping\x80"), 0,
         "a msgid over 32 bits"},
        {RAW("\x94\x00\xa1x\xa4ping\x80"), 0, "a string msgid"},
        {RAW("\x94\x00\x07\x05\x80"), 7, "a method that is not a string"},
        {RAW("\x94\x01\x07\xc0\xc0"), 7, "a response from the client"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_msg_t m = raw_roundtrip(c, cases[i].bytes, cases[i].len);
        cr_assert_eq(m.code, PD_ERR_BAD_REQUEST, "%s: code %lld", cases[i].what, (long long)m.code);
        cr_assert_eq(m.msgid, cases[i].msgid, "%s: msgid %u", cases[i].what, m.msgid);
        still_answers(c);
    }
    /* A malformed client notification gets no reply at all. */
    pd_client_send_raw(c, RAW("\x92\x02\x05"));
    still_answers(c);
    pd_client_t *other = srv_connect(&srv);
    still_answers(other);
    pd_client_destroy(other);
    pd_client_destroy(c);
    check_unchanged();
}

Test(bad_input, bad_params_and_methods) {
    seed();
    pd_client_t *c = srv_connect(&srv);
    static const struct {
        const char *bytes;
        size_t len;
    } params_not_map[] = {
        {RAW("\x94\x00\x07\xa4ping\x05")},         /* an integer */
        {RAW("\x94\x00\x07\xa4ping\xa1x")},        /* a string */
        {RAW("\x94\x00\x07\xa4ping\x92\x01\x02")}, /* an array of two */
        {RAW("\x94\x00\x07\xa4ping\x91\x05")},     /* an array holding a non-map */
    };
    for (int i = 0; i < 4; i++) {
        pd_msg_t m = raw_roundtrip(c, params_not_map[i].bytes, params_not_map[i].len);
        cr_assert_eq(m.code, PD_ERR_BAD_ARG);
        cr_assert_eq(m.msgid, 7);
    }
    /* params as an array holding one map is accepted. */
    pd_msg_t m = raw_roundtrip(c, RAW("\x94\x00\x07\xadvolunteer.get\x91\x81\xa2id\x01"));
    cr_assert_eq(m.code, 0);

    /* A float that is not finite is a bad coordinate, as one out of range is. */
    static const struct {
        const char *bytes;
        size_t len;
    } not_finite[] = {
        {RAW("\x94\x00\x07\xb0volunteer.upsert\x84\xa2id\x01\xa3lat"
             "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\xa3lon\x72\xa6skills\x90")},
        {RAW("\x94\x00\x07\xacmatch.nearby\x82\xa3lat\x1e\xa3lon"
             "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00")},
        {RAW("\x94\x00\x07\xacorder.create\x84\xa2id\x05\xa3lat\xca\x7f\xc0\x00\x00"
             "\xa3lon\x72\xa6skills\x90")},
        {RAW("\x94\x00\x07\xb0volunteer.update\x83\xa2id\x01\xa3lat\x1e\xa3lon"
             "\xcb\xff\xf0\x00\x00\x00\x00\x00\x00")},
    };
    for (size_t i = 0; i < sizeof(not_finite) / sizeof(not_finite[0]); i++) {
        m = raw_roundtrip(c, not_finite[i].bytes, not_finite[i].len);
        cr_assert_eq(m.code, PD_ERR_BAD_COORD, "case %zu: code %lld", i, (long long)m.code);
        still_answers(c);
    }

    call_err(c, "no.such.method", "", PD_ERR_UNKNOWN_METHOD);
    call_err(c, "", "", PD_ERR_UNKNOWN_METHOD);
    call_err(c, "PING", "", PD_ERR_UNKNOWN_METHOD);
    /* Echoed bytes that are not UTF-8 come back replaced, never raw. */
    m = call_err(c, "bad\xff\xfe", "", PD_ERR_UNKNOWN_METHOD);
    cr_assert(strstr(m.message, "'bad?\?'"), "%s", m.message);
    m = call_err(c, "match.nearby", "{\"lat\":30,\"lon\":114,\"skills\":[\"\u00ff\"]}",
                 PD_ERR_UNKNOWN_SKILL);
    cr_assert(strstr(m.message, "'\xc3\xbf'"), "%s", m.message);

    struct {
        const char *method;
        const char *json;
        int code;
    } cases[] = {
        /* wrong types */
        {"volunteer.upsert", "{\"id\":1,\"lat\":\"30\",\"lon\":114,\"skills\":[]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":-1,\"lat\":30,\"lon\":114,\"skills\":[]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":1.5,\"lat\":30,\"lon\":114,\"skills\":[]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":5}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[5]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[],\"mode\":\"jet\"}",
         PD_ERR_BAD_ARG},
        {"volunteer.update", "{\"id\":1,\"status\":true}", PD_ERR_BAD_ARG},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"k\":\"ten\"}", PD_ERR_BAD_ARG},
        {"order.create", "{\"id\":5,\"lat\":30,\"lon\":114,\"skills\":[],\"dispatch\":1}",
         PD_ERR_BAD_ARG},
        {"subscribe", "{\"events\":\"order.offered\"}", PD_ERR_BAD_ARG},
        {"auth", "{\"token\":5}", PD_ERR_BAD_ARG},
        /* missing keys */
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"skills\":[]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"lat\":30,\"lon\":114,\"skills\":[]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114}", PD_ERR_BAD_ARG},
        {"volunteer.get", "", PD_ERR_BAD_ARG},
        {"match.nearby", "{\"lat\":30}", PD_ERR_BAD_ARG},
        {"order.create", "{\"id\":5,\"lat\":30,\"lon\":114}", PD_ERR_BAD_ARG},
        {"order.accept", "{\"id\":5}", PD_ERR_BAD_ARG},
        {"order.rate", "{\"id\":5}", PD_ERR_BAD_ARG},
        {"volunteer.update", "{\"id\":1,\"lat\":31}", PD_ERR_BAD_ARG},
        /* out of range */
        {"volunteer.upsert", "{\"id\":1,\"lat\":91,\"lon\":114,\"skills\":[]}", PD_ERR_BAD_COORD},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":-181,\"skills\":[]}", PD_ERR_BAD_COORD},
        {"volunteer.update", "{\"id\":1,\"lat\":30,\"lon\":1e300}", PD_ERR_BAD_COORD},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[],\"capacity\":0}",
         PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[],\"capacity\":256}",
         PD_ERR_BAD_ARG},
        {"volunteer.upsert",
         "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[],\"schedule\":[[7,0,1]]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert",
         "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[],\"schedule\":[[0,10,9]]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert",
         "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[],\"schedule\":[[0,0,25]]}", PD_ERR_BAD_ARG},
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[],\"tags\":[64]}",
         PD_ERR_BAD_ARG},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"k\":0}", PD_ERR_BAD_ARG},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"k\":100000}", PD_ERR_BAD_ARG},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"minutes\":-1}", PD_ERR_BAD_ARG},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"policy\":\"random\"}", PD_ERR_BAD_ARG},
        {"match.mobilize", "{\"lat\":30,\"lon\":114,\"limit\":1000000}", PD_ERR_BAD_ARG},
        {"order.create", "{\"id\":5,\"lat\":30,\"lon\":114,\"skills\":[],\"need\":33}",
         PD_ERR_BAD_ARG},
        {"order.create", "{\"id\":5,\"lat\":30,\"lon\":114,\"skills\":[],\"duration_min\":-5}",
         PD_ERR_BAD_ARG},
        {"order.create", "{\"id\":5,\"lat\":30,\"lon\":114,\"skills\":[],\"priority\":7}",
         PD_ERR_BAD_ARG},
        {"order.rate", "{\"id\":5,\"score\":6}", PD_ERR_BAD_ARG},
        {"order.complete", "{\"id\":5,\"minutes_served\":-2}", PD_ERR_BAD_ARG},
        /* unknown skills, unknown and repeated argument names */
        {"volunteer.upsert", "{\"id\":1,\"lat\":30,\"lon\":114,\"skills\":[\"juggling\"]}",
         PD_ERR_UNKNOWN_SKILL},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"skills\":\"tutoring,\"}", PD_ERR_UNKNOWN_SKILL},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"kk\":1}", PD_ERR_BAD_ARG},
        {"match.nearby", "{\"lat\":30,\"lon\":114,\"lat\":31}", PD_ERR_BAD_ARG},
        {"ping", "{\"x\":1}", PD_ERR_BAD_ARG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        call_err(c, cases[i].method, cases[i].json, cases[i].code);
        still_answers(c);
    }
    pd_client_t *other = srv_connect(&srv);
    still_answers(other);
    pd_client_destroy(other);
    pd_client_destroy(c);
    check_unchanged();
    /* None of the rejected orders exists. */
    c = srv_connect(&srv);
    call_err(c, "order.get", "{\"id\":5}", PD_ERR_NOT_FOUND);
    pd_client_destroy(c);
}

/* A broken stream closes that connection only. */
static void expect_closed_after(const void *bytes, size_t len, int code) {
    seed();
    pd_client_t *c = srv_connect(&srv);
    pd_client_t *other = srv_connect(&srv);
    still_answers(c);
    pd_client_send_raw(c, bytes, len);
    cr_assert_eq(pd_client_flush(c), PD_OK);
    int got = 0;
    cr_assert(wait_closed(c, 5000, &got), "connection was not closed");
    if (code) cr_assert_eq(got, code, "server.error code %d, want %d", got, code);
    still_answers(other);
    pd_client_destroy(other);
    pd_client_destroy(c);
    check_unchanged();
}

Test(bad_input, undecodable_byte_closes) {
    expect_closed_after(RAW("\xc1"), PD_ERR_BAD_REQUEST);
}

Test(bad_input, undecodable_inside_request_closes) {
    expect_closed_after(RAW("\x94\x00\x07\xc1"), PD_ERR_BAD_REQUEST);
}

Test(bad_input, frame_over_limit_closes) {
    static char big[8000];
    big[0] = (char)0xda; /* str16 of 7997 bytes > --max-frame 4096 */
    big[1] = (char)(7997 >> 8);
    big[2] = (char)(7997 & 0xff);
    memset(big + 3, 'x', sizeof(big) - 3);
    expect_closed_after(big, sizeof(big), PD_ERR_TOO_LARGE);
}

Test(bad_input, huge_container_header_closes) {
    /* array32 of 2^32-1 elements: refused from its 5-byte header. */
    expect_closed_after(RAW("\xdd\xff\xff\xff\xff"), PD_ERR_TOO_LARGE);
}

Test(bad_input, deep_nesting_closes) {
    char deep[40];
    memset(deep, 0x91, sizeof(deep)); /* 40 nested one-element arrays */
    expect_closed_after(deep, sizeof(deep), PD_ERR_BAD_REQUEST);
}

/* A plain TCP connection to the server, for bytes no client would send. */
static int raw_socket(void) {
    return tcp_connect(srv.port);
}

/* Waiting until the server has read bytes another connection sent: its
 * counters.bytes_in, less what the stats calls that watch it cost (each
 * over a fresh connection, the same every time). */
typedef struct read_bytes_s {
    long long base, per_call;
} read_bytes_t;

static read_bytes_t read_bytes_begin(void) {
    long long b0 = stat_of(&srv, "counters", "bytes_in");
    long long b1 = stat_of(&srv, "counters", "bytes_in");
    read_bytes_t rb = {b1, b1 - b0};
    return rb;
}

static void read_bytes_wait(const read_bytes_t *rb, long long n) {
    long long t0 = now_ms();
    for (long long k = 1;; k++) {
        if (stat_of(&srv, "counters", "bytes_in") - rb->base - k * rb->per_call >= n) return;
        cr_assert_lt(now_ms() - t0, 10000, "the server never read the %lld bytes", n);
        usleep(1000);
    }
}

/* An HTTP request on the RPC port (curl, a browser, a health check
 * pointed at the wrong port) gets one HTTP answer saying what the port
 * speaks, and the connection is closed; before, each byte of the request
 * line decoded as a stray integer and got a BAD_REQUEST of its own. */
Test(bad_input, http_request_gets_an_http_answer) {
    seed();
    pd_client_t *other = srv_connect(&srv);
    pd_msg_t m = call_ok(other, "stats", "");
    long long errs0 = map_int(pd_client_map_get(&m.result, "counters"), "protocol_errors");
    int fd = raw_socket();
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    char buf[2048];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    cr_assert(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "%s", buf);
    cr_assert(strstr(buf, "speaks MessagePack-RPC on this port"), "%s", buf);
    cr_assert(strstr(buf, "--metrics-port"), "%s", buf);
    still_answers(other);
    m = call_ok(other, "stats", "");
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "counters"), "protocol_errors"), errs0 + 1);
    pd_client_destroy(other);
    check_unchanged();
}

/* An HTTP request line cut across two reads ("GE", then "T http://...",
 * the form a client sends to what it takes for a proxy) is still an HTTP
 * request: one 400, not a MessagePack error per letter. The
 * test waits until the server has read the first two bytes on their own
 * (counters.bytes_in, less the stats calls' own requests). */
Test(bad_input, http_request_split_across_reads) {
    seed();
    int fd = raw_socket();
    read_bytes_t rb = read_bytes_begin();
    cr_assert_eq(write(fd, "GE", 2), 2);
    read_bytes_wait(&rb, 2);
    /* the absolute form a client sends to a proxy: "GET http://..." */
    static const char rest[] = "T http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    cr_assert_eq(write(fd, rest, sizeof(rest) - 1), (ssize_t)(sizeof(rest) - 1));
    /* a MessagePack error reply per letter would not end in EOF: judge
     * the first bytes before reading on */
    char buf[8192];
    size_t got = 0;
    ssize_t n;
    while (got < 26 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) got += (size_t)n;
    cr_assert(got >= 26 && strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0,
              "not an HTTP answer (%zu bytes, the first 0x%02x)", got, (unsigned char)buf[0]);
    while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    cr_assert(strstr(buf, "speaks MessagePack-RPC on this port"), "%s", buf);
    pd_client_t *other = srv_connect(&srv);
    still_answers(other);
    pd_client_destroy(other);
    check_unchanged();
}

/* A request in the absolute form a client sends to what it takes for a
 * proxy (http_proxy pointed at the RPC port) is HTTP too. */
Test(bad_input, http_proxy_form_gets_an_http_answer) {
    seed();
    int fd = raw_socket();
    static const char req[] = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    char buf[64];
    size_t got = 0;
    ssize_t n;
    while (got < 26 && (n = read(fd, buf + got, sizeof(buf) - got)) > 0) got += (size_t)n;
    close(fd);
    cr_assert(got >= 26 && strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0,
              "not an HTTP answer (%zu bytes, the first 0x%02x)", got, (unsigned char)buf[0]);
    check_unchanged();
}

/* The bytes held back while the first read could still be HTTP ("P",
 * the start of POST or PUT) are not lost when the next read shows a
 * request line that is not HTTP: they are read as MessagePack. */
Test(bad_input, held_first_bytes_read_as_messagepack) {
    seed();
    int fd = raw_socket();
    read_bytes_t rb = read_bytes_begin();
    cr_assert_eq(write(fd, "P", 1), 1); /* 0x50: a positive fixint */
    read_bytes_wait(&rb, 1);
    /* then a ping: [0, 7, "ping", {}] */
    static const char ping[] = "\x94\x00\x07\xa4ping\x80";
    cr_assert_eq(write(fd, ping, sizeof(ping) - 1), (ssize_t)(sizeof(ping) - 1));
    /* two replies: BAD_REQUEST for the stray integer (msgid 0), then pong */
    unsigned char buf[512];
    size_t got = 0;
    ssize_t n;
    while (!memmem(buf, got, "pong", 4) && got < sizeof(buf) &&
           (n = read(fd, buf + got, sizeof(buf) - got)) > 0)
        got += (size_t)n;
    close(fd);
    cr_assert(memmem(buf, got, "a message is an array", 21), "no error for the stray byte");
    cr_assert(memmem(buf, got, "pong", 4), "no pong");
    cr_assert_eq(buf[0], 0x94); /* a MessagePack reply, not HTTP */
    check_unchanged();
}

Test(bad_input, frame_split_byte_by_byte) {
    seed();
    pd_client_t *c = srv_connect(&srv);
    size_t len;
    const char *p = params_json("{\"id\":1}", &len);
    uint32_t id;
    pd_client_send(c, "volunteer.get", p, len, &id);
    msgpack_sbuffer copy;
    msgpack_sbuffer_init(&copy);
    /* Re-queue the request one byte per write. */
    pd_client_t *raw = srv_connect(&srv);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &copy, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 42);
    msgpack_pack_str_with_body(&pk, "volunteer.get", 13);
    msgpack_sbuffer_write(&copy, p, len);
    for (size_t i = 0; i < copy.size; i++) {
        pd_client_send_raw(raw, copy.data + i, 1);
        cr_assert_eq(pd_client_flush(raw), PD_OK);
        usleep(1000);
    }
    pd_msg_t m;
    cr_assert_eq(pd_client_read(raw, &m), PD_OK);
    cr_assert_eq(m.msgid, 42);
    cr_assert_eq(m.code, 0);
    cr_assert_eq(map_int(&m.result, "id"), 1);
    msgpack_sbuffer_destroy(&copy);
    pd_client_destroy(raw);
    pd_client_destroy(c);
}

/* ---------------------------------------------------------------- auth */

static void start_token(void) {
    static const char *const args[] = {"--token", "s3cret", NULL};
    srv_start(&srv, args);
}

Test(auth, required_when_token_set, .init = start_token, .fini = stop, .timeout = 30) {
    pd_client_t *c = srv_connect(&srv);
    still_answers(c); /* ping needs no auth */
    /* nor can an unauthenticated client tell which methods exist */
    call_err(c, "no.such.method", "", PD_ERR_UNAUTHORIZED);
    call_err(c, "stats", "", PD_ERR_UNAUTHORIZED);
    call_err(c, "volunteer.upsert", seed_json, PD_ERR_UNAUTHORIZED);
    call_err(c, "auth", "{\"token\":\"wrong\"}", PD_ERR_UNAUTHORIZED);
    call_err(c, "auth", "{\"token\":\"s3cre\"}", PD_ERR_UNAUTHORIZED);
    call_err(c, "auth", "{\"token\":\"s3crett\"}", PD_ERR_UNAUTHORIZED);
    call_err(c, "stats", "", PD_ERR_UNAUTHORIZED);
    pd_msg_t m = call_ok(c, "auth", "{\"token\":\"s3cret\"}");
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_BOOLEAN);
    call_ok(c, "volunteer.upsert", seed_json);
    m = call_ok(c, "stats", "");
    cr_assert_geq(map_int(pd_client_map_get(&m.result, "counters"), "auth_failures"), 7);
    call_err(c, "no.such.method", "", PD_ERR_UNKNOWN_METHOD);
    /* Another connection starts unauthenticated. */
    pd_client_t *other = srv_connect(&srv);
    call_err(other, "volunteer.get", "{\"id\":1}", PD_ERR_UNAUTHORIZED);
    pd_client_destroy(other);
    pd_client_destroy(c);
}

Test(auth, not_needed_without_token, .init = start_small, .fini = stop, .timeout = 30) {
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "stats", "");
    call_ok(c, "auth", "{\"token\":\"anything\"}");
    pd_client_destroy(c);
}

Test(auth, refuses_beyond_loopback_without_token, .timeout = 30) {
    static const char *const args[] = {"--host", "0.0.0.0", NULL};
    int status = srv_run_expect_exit(args);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 1);
}

Test(auth, refuses_bad_flags, .timeout = 30) {
    static const char *const a1[] = {"--max-frame", "12q", NULL};
    static const char *const a2[] = {"--bogus", NULL};
    static const char *const a3[] = {"--host", "not-an-ip", NULL};
    int s = srv_run_expect_exit(a1);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 2);
    s = srv_run_expect_exit(a2);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 2);
    s = srv_run_expect_exit(a3);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 1);
    /* under a millisecond would round to 0, which means never */
    static const char *const a6[] = {"--idle-timeout", "0.0000001", NULL};
    s = srv_run_expect_exit(a6);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 2);
    static const char *const a9[] = {"--order-retention", "0x10", NULL};
    s = srv_run_expect_exit(a9);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 2);
    /* a positive retention under a second rounds to 0 ms: every closed
     * order would go at once, the opposite of 0 (keep them all) */
    static const char *const a11[] = {"--order-retention", "1e-300", NULL};
    s = srv_run_expect_exit(a11);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 2);
    static const char *const a12[] = {"--order-retention", "0.00001", NULL}; /* 0.86 s */
    s = srv_run_expect_exit(a12);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 2);
    /* a count takes no size suffix: "1k" connections is a typo, not 1024 */
    static const char *const a10[] = {"--max-conns", "1k", NULL};
    s = srv_run_expect_exit(a10);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 2);
    /* -V and -h, as the other tools take them */
    char out[4096];
    static const char *const a7[] = {"-V", NULL};
    s = srv_run_expect_exit_out(a7, out, sizeof out);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 0);
    cr_assert(strncmp(out, "paidan-server ", 14) == 0, "%s", out);
    static const char *const a8[] = {"-h", NULL};
    s = srv_run_expect_exit_out(a8, out, sizeof out);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 0);
    cr_assert(strstr(out, "usage: paidan-server"), "%s", out);
    /* a directory for --config is refused, not read as an empty file */
    static const char *const a4[] = {"--config", "/tmp", NULL};
    s = srv_run_expect_exit(a4);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 1);
    /* a metrics port in use: no "listening on" line, which would tell a
     * script the server had started */
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(busy, (struct sockaddr *)&a, sizeof a) == 0 && listen(busy, 1) == 0);
    socklen_t al = sizeof a;
    getsockname(busy, (struct sockaddr *)&a, &al);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    const char *const a5[] = {"--metrics-port", port, NULL};
    s = srv_run_expect_exit_out(a5, out, sizeof out);
    close(busy);
    cr_assert(WIFEXITED(s) && WEXITSTATUS(s) == 1);
    cr_assert(!strstr(out, "listening on"), "printed '%s'", out);
}

/* --------------------------------------------------------------- limits */

static void start_limits(void) {
    static const char *const args[] = {"--max-conns", "3", "--max-output", "64k", NULL};
    srv_start(&srv, args);
}

Test(limits, max_connections_refused, .init = start_limits, .fini = stop, .timeout = 30) {
    pd_client_t *cs[3];
    for (int i = 0; i < 3; i++) {
        cs[i] = srv_connect(&srv);
        still_answers(cs[i]);
    }
    pd_client_t *extra = srv_connect(&srv); /* the kernel accepts; the server refuses */
    int code = 0;
    cr_assert(wait_closed(extra, 5000, &code), "4th connection was not closed");
    cr_assert_eq(code, PD_ERR_LIMIT);
    pd_client_destroy(extra);
    for (int i = 0; i < 3; i++) still_answers(cs[i]);
    pd_client_destroy(cs[0]);
    /* A slot is free again once one closes. */
    long long deadline = now_ms() + 5000;
    for (;;) {
        pd_client_t *again = srv_connect(&srv);
        pd_msg_t m;
        size_t len;
        const char *p = params_json("", &len);
        pd_err err = pd_client_call(again, "ping", p, len, &m);
        pd_client_destroy(again);
        if (err == PD_OK) break;
        cr_assert_lt(now_ms(), deadline, "no connection accepted after one closed");
        usleep(20000);
    }
    pd_msg_t m = call_ok(cs[1], "stats", "");
    cr_assert_geq(map_int(pd_client_map_get(&m.result, "connections"), "rejected"), 1);
    for (int i = 1; i < 3; i++) pd_client_destroy(cs[i]);
}

Test(limits, slow_reader_cut_off, .init = start_limits, .fini = stop, .timeout = 30) {
    pd_client_t *c = srv_connect(&srv);
    /* 1000 volunteers, then mobilisations that return all of them (~50 KB
     * each) without reading a byte of the replies. */
    size_t len;
    char json[160];
    for (int i = 1; i <= 1000; i++) {
        snprintf(json, sizeof(json),
                 "{\"id\":%d,\"lat\":%.4f,\"lon\":114.3,\"skills\":[\"tutoring\"]}", i,
                 30.6 + i * 1e-5);
        const char *p = params_json(json, &len);
        pd_client_send(c, "volunteer.upsert", p, len, NULL);
    }
    cr_assert_eq(pd_client_flush(c), PD_OK);
    for (int i = 0; i < 1000; i++) {
        pd_msg_t m;
        cr_assert_eq(pd_client_read(c, &m), PD_OK);
        cr_assert_eq(m.code, 0);
    }
    const char *p =
        params_json("{\"lat\":30.6,\"lon\":114.3,\"radius_m\":10000,\"limit\":1000}", &len);
    for (int i = 0; i < 400; i++) {
        pd_client_send(c, "match.mobilize", p, len, NULL);
        if (pd_client_flush(c) != PD_OK) break; /* already cut off */
    }
    long long deadline = now_ms() + 10000;
    while (stat_of(&srv, "counters", "output_cutoffs") < 1) {
        cr_assert_lt(now_ms(), deadline, "slow reader was not cut off");
        usleep(20000);
    }
    cr_assert(wait_closed(c, 5000, NULL));
    pd_client_destroy(c);
    pd_client_t *other = srv_connect(&srv);
    still_answers(other);
    pd_client_destroy(other);
}

static void start_idle(void) {
    static const char *const args[] = {"--idle-timeout", "0.3", NULL};
    srv_start(&srv, args);
}

Test(limits, idle_timeout, .init = start_idle, .fini = stop, .timeout = 30) {
    pd_client_t *idle = srv_connect(&srv);
    pd_client_t *busy = srv_connect(&srv);
    pd_client_t *sub = srv_connect(&srv);
    still_answers(idle);
    call_ok(sub, "subscribe", "{\"events\":[\"*\"]}");
    long long start = now_ms();
    while (now_ms() - start < 1200) {
        still_answers(busy);
        usleep(50000);
    }
    int code = 0;
    cr_assert(wait_closed(idle, 3000, &code), "idle connection was not closed");
    cr_assert_eq(code, PD_ERR_LIMIT);
    still_answers(busy);
    still_answers(sub); /* subscribers only listen: exempt */
    cr_assert_geq(stat_of(&srv, "counters", "idle_closed"), 1);
    pd_client_destroy(idle);
    pd_client_destroy(busy);
    pd_client_destroy(sub);
}

/* A connection the server pauses (its rate spent) is not idle: its
 * pipelined requests are all answered, however long the pause. */
static void start_idle_rate(void) {
    static const char *const args[] = {"--idle-timeout", "0.3", "--max-rps", "4", NULL};
    srv_start(&srv, args);
}

Test(limits, paused_is_not_idle, .init = start_idle_rate, .fini = stop, .timeout = 30) {
    pd_client_t *c = srv_connect(&srv);
    size_t len;
    const char *p = params_json("", &len);
    for (int i = 0; i < 8; i++) cr_assert_eq(pd_client_send(c, "ping", p, len, NULL), PD_OK);
    cr_assert_eq(pd_client_flush(c), PD_OK);
    long long t0 = now_ms();
    for (int i = 0; i < 8; i++) {
        pd_msg_t m;
        cr_assert_eq(pd_client_read(c, &m), PD_OK, "ping %d lost: %s", i, pd_client_last_error(c));
        cr_assert_eq(m.type, PD_MSG_RESPONSE, "ping %d: a notification (closed?)", i);
        cr_assert_eq(m.code, 0);
    }
    /* 8 at 4 a second: the pauses outlasted the idle timeout */
    cr_assert_geq(now_ms() - t0, 1000);
    cr_assert_eq(stat_of(&srv, "counters", "idle_closed"), 0);
    pd_client_destroy(c);
}

/* ------------------------------------------------------------- shutdown */

Test(shutdown, sigterm_exits_zero_with_clients, .timeout = 30) {
    srv_start(&srv, NULL);
    pd_client_t *c = srv_connect(&srv);
    pd_client_t *sub = srv_connect(&srv);
    call_ok(c, "volunteer.upsert", seed_json);
    call_ok(sub, "subscribe", "{\"events\":[\"*\"]}");
    /* A request in flight, not yet read. */
    size_t len;
    const char *p = params_json("", &len);
    pd_client_send(c, "ping", p, len, NULL);
    pd_client_flush(c);
    int status = srv_stop_sig(&srv, SIGTERM);
    cr_assert(WIFEXITED(status), "status %d", status);
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert(wait_closed(sub, 5000, NULL));
    pd_client_destroy(c);
    pd_client_destroy(sub);
}

Test(shutdown, sigint_exits_zero, .timeout = 30) {
    srv_start(&srv, NULL);
    pd_client_t *c = srv_connect(&srv);
    still_answers(c);
    int status = srv_stop_sig(&srv, SIGINT);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
    pd_client_destroy(c);
}

/* ------------------------------------------------- what protocol.md says */

TestSuite(documented, .init = start_small, .fini = stop, .timeout = 30);

static void expect_hit_types(const msgpack_object *hits) {
    cr_assert_eq(hits->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_gt(hits->via.array.size, 0);
    for (uint32_t i = 0; i < hits->via.array.size; i++) {
        const msgpack_object *h = &hits->via.array.ptr[i];
        cr_assert_eq(pd_client_map_get(h, "eta_s")->type, MSGPACK_OBJECT_FLOAT32);
        cr_assert_eq(pd_client_map_get(h, "distance_m")->type, MSGPACK_OBJECT_FLOAT32);
        cr_assert_eq(pd_client_map_get(h, "score")->type, MSGPACK_OBJECT_FLOAT64);
    }
}

/* "eta_s and distance_m are sent as 32-bit floats ... and score as a
 * 64-bit one": in every reply that holds hits. */
Test(documented, hit_eta_and_distance_are_float32) {
    seed();
    pd_client_t *c = srv_connect(&srv);
    pd_msg_t m = call_ok(c, "match.nearby", "{\"lat\":30.601,\"lon\":114.301}");
    expect_hit_types(&m.result);
    m = call_ok(c, "match.mobilize", "{\"lat\":30.601,\"lon\":114.301,\"radius_m\":2000}");
    expect_hit_types(pd_client_map_get(&m.result, "volunteers"));
    call_ok(c, "order.create",
            "{\"id\":5,\"lat\":30.601,\"lon\":114.301,\"skills\":[],\"dispatch\":false}");
    m = call_ok(c, "order.candidates", "{\"id\":5}");
    expect_hit_types(&m.result);
    pd_client_destroy(c);
}

/* ILLEGAL for a capacity below what the volunteer holds says so, and
 * nothing changes. */
Test(documented, capacity_below_load_is_named) {
    seed(); /* volunteer 1, capacity 2 */
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "order.create", "{\"id\":5,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}");
    call_ok(c, "order.create", "{\"id\":6,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}");
    pd_msg_t m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&m.result, "load"), 2);
    m = call_err(c, "volunteer.update", "{\"id\":1,\"capacity\":1}", PD_ERR_ILLEGAL);
    cr_assert(strstr(m.message, "holds 2") && strstr(m.message, "'capacity' 1"), "%s", m.message);
    m = call_err(c, "volunteer.upsert",
                 "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"capacity\":1}",
                 PD_ERR_ILLEGAL);
    cr_assert(strstr(m.message, "holds 2") && strstr(m.message, "'capacity' 1"), "%s", m.message);
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(map_int(&m.result, "capacity"), 2);
    cr_assert_eq(pd_client_map_get(&m.result, "skills")->via.array.size, 1);
    pd_client_destroy(c);
}

/* A refused dispatch.batch names the order that made it refuse, and
 * dispatches nothing. */
Test(documented, batch_refusal_names_the_order) {
    seed();
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "order.create",
            "{\"id\":20,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"dispatch\":false}");
    call_ok(c, "order.create",
            "{\"id\":21,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"dispatch\":false}");
    call_ok(c, "order.create", "{\"id\":22,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}");
    pd_msg_t m = call_err(c, "dispatch.batch", "{\"orders\":[20,99]}", PD_ERR_NOT_FOUND);
    cr_assert(strstr(m.message, "order 99 "), "%s", m.message);
    m = call_err(c, "dispatch.batch", "{\"orders\":[20,22]}", PD_ERR_ILLEGAL);
    cr_assert(strstr(m.message, "order 22 is offered"), "%s", m.message);
    m = call_err(c, "dispatch.batch", "{\"orders\":[21,20,21]}", PD_ERR_BAD_ARG);
    cr_assert(strstr(m.message, "order 21 "), "%s", m.message);
    m = call_ok(c, "order.list", "{\"state\":\"created\"}");
    cr_assert_eq(pd_client_map_get(&m.result, "orders")->via.array.size, 2);
    pd_client_destroy(c);
}

/* match.mobilize checks schedules when given a window: `duration_min`
 * alone is the window from now, not an argument ignored. */
Test(documented, mobilize_duration_alone_checks_schedules) {
    pd_client_t *c = srv_connect(&srv);
    /* an empty schedule: never available */
    call_ok(c, "volunteer.upsert",
            "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"schedule\":[]}");
    pd_msg_t m = call_ok(c, "match.mobilize", "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":1000}");
    cr_assert_eq(map_int(&m.result, "count"), 1);
    m = call_ok(c, "match.mobilize",
                "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":1000,\"duration_min\":30}");
    cr_assert_eq(map_int(&m.result, "count"), 0);
    m = call_ok(c, "match.mobilize",
                "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":1000,\"duration_min\":30,"
                "\"ignore_schedule\":true}");
    cr_assert_eq(map_int(&m.result, "count"), 1);
    pd_client_destroy(c);
}

/* order.candidates excludes the volunteers already asked; a closed order
 * has forgotten most of them (it keeps only accepted offers), so asking is
 * refused rather than answered with volunteers who declined. */
Test(documented, candidates_of_a_closed_order_refused) {
    seed();
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "order.create", "{\"id\":5,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}");
    pd_msg_t m = call_ok(c, "order.decline", "{\"id\":5,\"volunteer\":1}");
    cr_assert_str_eq(map_str(&m.result, "state"), "expired"); /* nobody left */
    call_ok(c, "order.create",
            "{\"id\":6,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"dispatch\":false}");
    m = call_ok(c, "order.candidates", "{\"id\":6}");
    cr_assert_eq(m.result.via.array.size, 1);
    call_ok(c, "order.cancel", "{\"id\":6}");
    m = call_err(c, "order.candidates", "{\"id\":5}", PD_ERR_ILLEGAL);
    cr_assert(strstr(m.message, "order 5 is expired"), "%s", m.message);
    m = call_err(c, "order.candidates", "{\"id\":6}", PD_ERR_ILLEGAL);
    cr_assert(strstr(m.message, "order 6 is cancelled"), "%s", m.message);
    pd_client_destroy(c);
}

/* ----------------------------------------------------------------- fuzz */

/* Mutated requests, one per connection (the write side is shut right
 * after, so an incomplete frame never stalls the test). The server must
 * survive every one of them, keep answering, and exit cleanly; debug
 * builds also assert that every reply it packs is one well-formed frame. */
Test(fuzz, mutated_requests, .init = start_small, .fini = stop, .timeout = 30) {
    static const struct {
        const char *method;
        const char *json;
    } templates[] = {
        {"volunteer.upsert",
         "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"tags\":[1],"
         "\"mode\":\"bike\",\"schedule\":[[0,8,12]],\"capacity\":2,\"status\":\"online\"}"},
        {"volunteer.update", "{\"id\":1,\"lat\":30.61,\"lon\":114.31}"},
        {"volunteer.get", "{\"id\":1}"},
        {"match.nearby",
         "{\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"k\":5,\"minutes\":15,"
         "\"policy\":\"balanced\",\"start\":1709517600000,\"duration_min\":60}"},
        {"match.mobilize", "{\"lat\":30.6,\"lon\":114.3,\"radius_m\":2000,\"limit\":10}"},
        {"order.create",
         "{\"id\":7,\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"need\":1,"
         "\"priority\":\"elevated\",\"mode\":\"grab\",\"minutes\":20}"},
        {"order.create",
         "{\"id\":8,\"lat\":30.6,\"lon\":114.3,\"slots\":[{\"skills\":[\"tutoring\"],\"need\":2}],"
         "\"dispatch\":false}"},
        {"order.accept", "{\"id\":7,\"volunteer\":1}"},
        {"order.complete", "{\"id\":7,\"minutes_served\":30}"},
        {"order.rate", "{\"id\":7,\"score\":4}"},
        {"dispatch.batch", "{\"orders\":[8],\"apply\":\"greedy\",\"k\":4}"},
        {"subscribe", "{\"events\":[\"order.offered\",\"*\"]}"},
        {"stats", ""},
        {"config.get", ""},
    };
    const size_t nt = sizeof(templates) / sizeof(templates[0]);
    unsigned seed = 20240304;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int iter = 0; iter < 1500; iter++) {
        size_t t = (size_t)rand_r(&seed) % nt;
        size_t len;
        const char *p = params_json(templates[t].json, &len);
        sb.size = 0;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_uint32(&pk, (uint32_t)iter);
        msgpack_pack_str_with_body(&pk, templates[t].method, strlen(templates[t].method));
        msgpack_sbuffer_write(&sb, p, len);
        int flips = 1 + rand_r(&seed) % 3;
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)rand_r(&seed) % sb.size;
            switch (rand_r(&seed) % 4) {
                case 0:
                    sb.data[at] = (char)rand_r(&seed);
                    break;
                case 1:
                    sb.data[at] ^= (char)(1u << (rand_r(&seed) % 8));
                    break;
                case 2:
                    sb.data[at] = (char)(0xc0 + rand_r(&seed) % 0x40);
                    break;
                default:
                    sb.size = at + 1;
                    break; /* truncate */
            }
        }
        /* Plain checks in this loop: a Criterion assertion per iteration
         * floods the runner with events. */
        pd_client_t *c = NULL;
        if (pd_client_connect("127.0.0.1", (uint16_t)srv.port, 5000, &c) != PD_OK)
            cr_assert_fail("iteration %d: cannot connect: is the server alive?", iter);
        pd_client_send_raw(c, sb.data, sb.size);
        pd_client_flush(c);
        shutdown(pd_client_fd(c), SHUT_WR);
        pd_client_set_timeout(c, 5000);
        for (;;) {
            pd_msg_t m;
            pd_err err = pd_client_read(c, &m);
            if (err == PD_ERR_IO) {
                if (strstr(pd_client_last_error(c), "timed out"))
                    cr_assert_fail("iteration %d: server did not close", iter);
                break;
            }
            if (err != PD_OK) cr_assert_fail("iteration %d: unreadable reply", iter);
        }
        pd_client_destroy(c);
        if (iter % 250 == 0) {
            pd_client_t *probe = srv_connect(&srv);
            still_answers(probe);
            pd_client_destroy(probe);
        }
    }
    msgpack_sbuffer_destroy(&sb);
    pd_client_t *probe = srv_connect(&srv);
    still_answers(probe);
    call_ok(probe, "stats", "");
    pd_client_destroy(probe);
}
