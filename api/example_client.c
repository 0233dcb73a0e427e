/* example_client.c -- paidan's C client (paidan/client.h) in one page:
 * register a volunteer, pipeline two lookups, ask who is near, and read an
 * error. Run it against a live server:
 *
 *     paidan-server --port 7411 &
 *     build/release/api/paidan-example-c 127.0.0.1 7411
 *
 * Link with pd_client (and msgpack-c). Exits 0 when every step behaved as
 * expected. docs/protocol.md, "The C client", walks through it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paidan/client.h"

/* Pack a string key and its string value into a params map. */
static void kv_str(msgpack_packer *pk, const char *k, const char *v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void kv_num(msgpack_packer *pk, const char *k, double v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_double(pk, v);
}

/* One request, packed in place; the reply is read at once. */
static int upsert(pd_client_t *c, uint64_t id, double lat, double lon) {
    msgpack_packer *pk = pd_client_begin(c, "volunteer.upsert", NULL);
    msgpack_pack_map(pk, 6);
    msgpack_pack_str_with_body(pk, "id", 2);
    msgpack_pack_uint64(pk, id);
    kv_num(pk, "lat", lat);
    kv_num(pk, "lon", lon);
    msgpack_pack_str_with_body(pk, "skills", 6);
    msgpack_pack_array(pk, 1);
    msgpack_pack_str_with_body(pk, "elder-care", 10);
    kv_str(pk, "mode", "bike");
    msgpack_pack_str_with_body(pk, "tags", 4); /* a tag of the example's own, */
    msgpack_pack_array(pk, 1);                 /* so a busy server's volunteers */
    msgpack_pack_uint8(pk, 63);                /* do not crowd them out */
    pd_msg_t m;
    if (pd_client_end(c) || pd_client_flush(c) || pd_client_read_response(c, &m)) return -1;
    if (m.code) fprintf(stderr, "volunteer.upsert: error %" PRId64 ": %s\n", m.code, m.message);
    return m.code ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 7411;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s [HOST [PORT]]\n", argv[0]);
        return 2;
    }
    pd_client_t *c;
    if (pd_client_connect(host, (uint16_t)port, 5000, &c) != PD_OK) {
        fprintf(stderr, "%s\n", pd_client_connect_error());
        return 1;
    }
    const char *token = getenv("PAIDAN_TOKEN");
    if (token && *token) {
        msgpack_packer *pk = pd_client_begin(c, "auth", NULL);
        msgpack_pack_map(pk, 1);
        kv_str(pk, "token", token);
        if (pd_client_end(c)) goto io;
        pd_msg_t m;
        if (pd_client_flush(c) || pd_client_read_response(c, &m) || m.code) {
            fprintf(stderr, "auth refused\n");
            pd_client_destroy(c);
            return 1;
        }
    }
    int rc = 1;
    /* ids are the caller's; these two sit near a community centre */
    const uint64_t a = 900000901, b = 900000902;
    if (upsert(c, a, 30.6000, 114.3000) || upsert(c, b, 30.6040, 114.3030)) goto out;

    /* Pipelining: queue both lookups, send once, read the replies in order. */
    uint32_t ids[2];
    const uint64_t vols[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        msgpack_packer *pk = pd_client_begin(c, "volunteer.get", &ids[i]);
        msgpack_pack_map(pk, 1);
        msgpack_pack_str_with_body(pk, "id", 2);
        msgpack_pack_uint64(pk, vols[i]);
        if (pd_client_end(c)) goto io;
    }
    if (pd_client_flush(c)) goto io;
    for (int i = 0; i < 2; i++) {
        pd_msg_t m;
        if (pd_client_read_response(c, &m)) goto io;
        const msgpack_object *id = pd_client_map_get(&m.result, "id");
        if (m.msgid != ids[i] || m.code || !id || id->via.u64 != vols[i]) {
            fprintf(stderr, "volunteer.get %d: unexpected reply\n", i);
            goto out;
        }
    }

    /* Who, with the skill and our tag, can help near here, by ETA,
     * whatever their schedule? */
    msgpack_packer *pk = pd_client_begin(c, "match.nearby", NULL);
    msgpack_pack_map(pk, 6);
    kv_num(pk, "lat", 30.6010);
    kv_num(pk, "lon", 114.3010);
    kv_str(pk, "skills", "elder-care");
    msgpack_pack_str_with_body(pk, "tags", 4);
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint8(pk, 63);
    kv_num(pk, "k", 5);
    msgpack_pack_str_with_body(pk, "ignore_schedule", 15);
    msgpack_pack_true(pk);
    if (pd_client_end(c)) goto io;
    pd_msg_t m;
    if (pd_client_flush(c) || pd_client_read_response(c, &m)) goto io;
    if (m.code || m.result.type != MSGPACK_OBJECT_ARRAY) {
        fprintf(stderr, "match.nearby: error %" PRId64 ": %s\n", m.code, m.message);
        goto out;
    }
    int mine = 0;
    for (uint32_t i = 0; i < m.result.via.array.size; i++) {
        const msgpack_object *h = &m.result.via.array.ptr[i];
        const msgpack_object *hid = pd_client_map_get(h, "id");
        const msgpack_object *heta = pd_client_map_get(h, "eta_s");
        if (!hid || !heta) {
            fprintf(stderr, "match.nearby: a hit without id or eta_s\n");
            goto out;
        }
        uint64_t id = hid->via.u64;
        double eta = heta->via.f64;
        printf("nearby: volunteer %" PRIu64 ", %.0f s away\n", id, eta);
        mine += id == a || id == b;
    }
    if (mine != 2) {
        fprintf(stderr, "match.nearby: our two volunteers were not both found\n");
        goto out;
    }

    /* An error is a reply like any other: [code, message]. */
    pk = pd_client_begin(c, "order.get", NULL);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "id", 2);
    msgpack_pack_uint64(pk, 424242424242);
    if (pd_client_end(c)) goto io;
    if (pd_client_flush(c) || pd_client_read_response(c, &m)) goto io;
    printf("expected error: %" PRId64 " %s: %s\n", m.code, pd_err_name((pd_err)m.code), m.message);
    if (m.code != PD_ERR_NOT_FOUND) goto out;

    for (int i = 0; i < 2; i++) {
        pk = pd_client_begin(c, "volunteer.remove", NULL);
        msgpack_pack_map(pk, 1);
        msgpack_pack_str_with_body(pk, "id", 2);
        msgpack_pack_uint64(pk, vols[i]);
        if (pd_client_end(c)) goto io;
    }
    if (pd_client_flush(c) || pd_client_read_response(c, &m) || pd_client_read_response(c, &m))
        goto io;
    rc = 0;
    goto out;
io:
    fprintf(stderr, "connection: %s\n", pd_client_last_error(c));
out:
    pd_client_destroy(c);
    return rc;
}
