/* test_security.c -- the server's security boundary, over real sockets.
 *
 * What docs/security.md promises, checked: the shared token gates every
 * method but ping and auth, and no near miss of it (a prefix, one byte
 * longer or shorter, one byte off, an embedded NUL) gets in; --max-rps
 * paces a client that sends faster than allowed without dropping or
 * reordering its requests, and without slowing anyone else; the engine takes no
 * personal data (names, phone numbers, addresses are unknown arguments);
 * and the docs describe each limit. That the server will not listen
 * beyond loopback without a token is in test_security_bind.c.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

static srv_t srv;

static void stop(void) {
    srv_stop(&srv);
}

/* ------------------------------------------------------------------ auth */

#define TOKEN "s3cret-token-123"

static void start_token(void) {
    static const char *const args[] = {"--token", TOKEN, NULL};
    srv_start(&srv, args);
}

/* Call auth with a token of exactly `len` bytes (it may hold a NUL). */
static pd_msg_t auth_bytes(pd_client_t *c, const char *tok, size_t len) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 5);
    msgpack_pack_str_body(&pk, "token", 5);
    msgpack_pack_str(&pk, len);
    msgpack_pack_str_body(&pk, tok, len);
    pd_msg_t m;
    cr_assert_eq(pd_client_call(c, "auth", sb.data, sb.size, &m), PD_OK);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

Test(auth, no_near_miss_of_the_token_gets_in, .init = start_token, .fini = stop, .timeout = 30) {
    pd_client_t *c = srv_connect(&srv);
    call_ok(c, "ping", "");
    call_err(c, "stats", "", PD_ERR_UNAUTHORIZED);
    call_err(c, "volunteer.upsert", "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}",
             PD_ERR_UNAUTHORIZED);
    static const char *const misses[] = {"",
                                         "s",
                                         "s3cret-token-12",
                                         "s3cret-token-1234",
                                         "x3cret-token-123",
                                         "s3cret-token-124",
                                         "S3CRET-TOKEN-123",
                                         "s3cret-token-123s3cret-token-123"};
    int n = (int)(sizeof(misses) / sizeof(misses[0]));
    for (int i = 0; i < n; i++) {
        pd_msg_t m = auth_bytes(c, misses[i], strlen(misses[i]));
        cr_assert_eq(m.code, PD_ERR_UNAUTHORIZED, "token '%s' was accepted", misses[i]);
        call_err(c, "stats", "", PD_ERR_UNAUTHORIZED);
    }
    /* The right bytes followed by a NUL are not the token. */
    pd_msg_t m = auth_bytes(c, TOKEN "\0", sizeof(TOKEN));
    cr_assert_eq(m.code, PD_ERR_UNAUTHORIZED, "token with a trailing NUL was accepted");
    call_err(c, "auth", "{\"token\":123}", PD_ERR_BAD_ARG);

    m = auth_bytes(c, TOKEN, strlen(TOKEN));
    cr_assert_eq(m.code, 0, "the right token was refused: %s", m.message);
    m = call_ok(c, "stats", "");
    /* n misses, the NUL one, and the three calls before auth at least. */
    cr_assert_geq(map_int(pd_client_map_get(&m.result, "counters"), "auth_failures"), n + 1);

    /* Authentication is per connection. */
    pd_client_t *other = srv_connect(&srv);
    call_err(other, "stats", "", PD_ERR_UNAUTHORIZED);
    pd_client_destroy(other);
    pd_client_destroy(c);
}

/* ------------------------------------------------------------ rate limit */

static void start_rps(void) {
    static const char *const args[] = {"--max-rps", "100", NULL};
    srv_start(&srv, args);
}

Test(rate, max_rps_paces_a_client_without_losing_or_reordering, .init = start_rps, .fini = stop,
     .timeout = 60) {
    pd_client_t *fast = srv_connect(&srv);
    pd_client_t *calm = srv_connect(&srv);
    size_t len;
    const char *p = params_json("", &len);
    /* 150 pipelined pings at 100/s with a burst of 10: at least 1.4 s. */
    long long t0 = now_ms();
    for (uint32_t i = 0; i < 150; i++) cr_assert_eq(pd_client_send(fast, "ping", p, len, NULL), 0);
    cr_assert_eq(pd_client_flush(fast), PD_OK);

    /* Meanwhile another connection is served at once. */
    usleep(200000);
    long long c0 = now_ms();
    call_ok(calm, "ping", "");
    long long calm_ms = now_ms() - c0;
    cr_assert_lt(calm_ms, 500, "a calm client waited %lld ms behind a paced one", calm_ms);

    pd_client_set_timeout(fast, 10000);
    uint32_t prev = 0;
    for (int i = 0; i < 150; i++) {
        pd_msg_t m;
        cr_assert_eq(pd_client_read_response(fast, &m), PD_OK, "reply %d lost", i);
        cr_assert_eq(m.code, 0);
        if (i > 0) cr_assert_gt(m.msgid, prev, "replies out of order");
        prev = m.msgid;
    }
    long long took = now_ms() - t0;
    cr_assert_geq(took, 1200, "150 requests at --max-rps 100 took only %lld ms", took);
    pd_msg_t m = call_ok(calm, "stats", "");
    cr_assert_gt(map_int(pd_client_map_get(&m.result, "counters"), "rate_limited"), 0);
    m = call_ok(calm, "config.get", "");
    cr_assert_eq(map_int(pd_client_map_get(&m.result, "limits"), "max_rps"), 100);
    pd_client_destroy(fast);
    pd_client_destroy(calm);
}

static int exit_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(rate, bad_values_refused, .timeout = 30) {
    static const char *const bad[] = {"-1", "abc", "1k", "", "100000001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *args[] = {"--max-rps", bad[i], NULL};
        cr_assert_eq(exit_code(srv_run_expect_exit(args)), 2, "--max-rps '%s' accepted", bad[i]);
    }
}

/* ------------------------------------------------------- data protection */

static void start_plain(void) {
    srv_start(&srv, NULL);
}

Test(privacy, no_personal_data_is_taken, .init = start_plain, .fini = stop, .timeout = 30) {
    pd_client_t *c = srv_connect(&srv);
    static const char *const fields[] = {"name", "phone", "address", "id_card", "note"};
    char json[256];
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"%s\":\"x\"}", fields[i]);
        call_err(c, "volunteer.upsert", json, PD_ERR_BAD_ARG);
        snprintf(json, sizeof(json),
                 "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[],\"%s\":\"x\"}", fields[i]);
        call_err(c, "order.create", json, PD_ERR_BAD_ARG);
    }
    /* What is kept is ids and matching attributes. */
    call_ok(c, "volunteer.upsert", "{\"id\":1,\"lat\":30.6,\"lon\":114.3,\"skills\":[]}");
    pd_msg_t m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < m.result.via.map.size; i++) {
        const msgpack_object *k = &m.result.via.map.ptr[i].key;
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
            cr_assert(!obj_str_eq(k, fields[f]), "volunteer.get returned '%s'", fields[f]);
    }
    pd_client_destroy(c);
}

/* ------------------------------------------------------------------ docs */

static char *read_doc(const char *rel) {
    static char path[4096];
    const char *dir = getenv("PD_SOURCE_DIR");
    cr_assert(dir, "PD_SOURCE_DIR is not set (run through ctest)");
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

Test(docs, security_md_covers_every_limit, .timeout = 30) {
    char *doc = read_doc("docs/security.md");
    static const char *const items[] = {
        "--token",   "--host",         "--max-frame",    "--max-conns",  "--max-output",
        "--max-rps", "--idle-timeout", "constant time",  "Threat model", "Data protection",
        "names",     "phone",          "scripts/fuzz.sh"};
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        cr_expect(strstr(doc, items[i]), "docs/security.md lacks %s", items[i]);
    doc = read_doc("docs/operations-server.md");
    cr_expect(strstr(doc, "--max-rps"), "docs/operations-server.md lacks --max-rps");
}
