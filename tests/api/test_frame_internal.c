/* test_frame_internal.c -- the frame scanner (api/frame.c) against
 * msgpack-c's own decoder: same frame boundaries on every split, limits
 * enforced from headers, and random bytes never read out of bounds.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* A request with most MessagePack types in it. */
static void pack_sample(msgpack_sbuffer *sb) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 123456);
    msgpack_pack_str_with_body(&pk, "match.nearby", 12);
    msgpack_pack_map(&pk, 9);
    msgpack_pack_str_with_body(&pk, "lat", 3);
    msgpack_pack_double(&pk, 30.6);
    msgpack_pack_str_with_body(&pk, "lon", 3);
    msgpack_pack_float(&pk, 114.3f);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_int64(&pk, -5000000000LL);
    msgpack_pack_str_with_body(&pk, "u16", 3);
    msgpack_pack_uint16(&pk, 60000);
    msgpack_pack_str_with_body(&pk, "nil", 3);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "bin", 3);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\x02", 3);
    msgpack_pack_str_with_body(&pk, "ext", 3);
    msgpack_pack_ext_with_body(&pk, "abcd", 4, 7);
    msgpack_pack_str_with_body(&pk, "long", 4);
    static char longstr[300];
    memset(longstr, 'z', sizeof(longstr));
    msgpack_pack_str_with_body(&pk, longstr, sizeof(longstr));
    msgpack_pack_str_with_body(&pk, "skills", 6);
    msgpack_pack_array(&pk, 20);
    for (int i = 0; i < 20; i++) msgpack_pack_true(&pk);
}

Test(frame, whole_frame_matches_msgpack) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_sample(&sb);
    size_t want = sb.size;
    pack_sample(&sb); /* a second frame right behind it */
    pd_frame_scan_t s;
    pd_frame_scan_init(&s, 1 << 20);
    size_t len = 0;
    cr_assert_eq(pd_frame_scan(&s, (const uint8_t *)sb.data, sb.size, &len), PD_OK);
    cr_assert_eq(len, want);
    cr_assert_eq(pd_frame_scan(&s, (const uint8_t *)sb.data + len, sb.size - len, &len), PD_OK);
    cr_assert_eq(len, want);
    msgpack_sbuffer_destroy(&sb);
}

Test(frame, every_split_point) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_sample(&sb);
    pd_frame_scan_t s;
    pd_frame_scan_init(&s, 1 << 20);
    for (size_t avail = 1; avail <= sb.size; avail++) {
        /* Fresh copy of exactly avail bytes, so ASan sees any over-read. */
        uint8_t *p = malloc(avail);
        memcpy(p, sb.data, avail);
        size_t len = 99;
        cr_assert_eq(pd_frame_scan(&s, p, avail, &len), PD_OK);
        if (avail < sb.size)
            cr_assert_eq(len, 0, "complete after %zu of %zu bytes", avail, sb.size);
        else
            cr_assert_eq(len, sb.size);
        free(p);
    }
    msgpack_sbuffer_destroy(&sb);
}

Test(frame, size_limits) {
    pd_frame_scan_t s;
    size_t len;
    /* A str8 of 10 bytes is a 12-byte frame. */
    uint8_t str[12] = {0xd9, 10};
    pd_frame_scan_init(&s, 12);
    cr_assert_eq(pd_frame_scan(&s, str, 12, &len), PD_OK);
    cr_assert_eq(len, 12);
    pd_frame_scan_init(&s, 11);
    cr_assert_eq(pd_frame_scan(&s, str, 2, &len), PD_ERR_TOO_LARGE, "refused from the header");
    /* Containers claiming more elements than bytes left. */
    uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    pd_frame_scan_init(&s, 1 << 20);
    cr_assert_eq(pd_frame_scan(&s, arr, 5, &len), PD_ERR_TOO_LARGE);
    uint8_t map[] = {0xdf, 0x00, 0x08, 0x00, 0x00}; /* 2^19 pairs = 2^20 elements */
    pd_frame_scan_init(&s, 1 << 20);
    cr_assert_eq(pd_frame_scan(&s, map, 5, &len), PD_ERR_TOO_LARGE);
    /* An incomplete frame that has reached the limit. */
    uint8_t fix[8] = {0x9f, 1, 2, 3, 4, 5, 6, 7};
    pd_frame_scan_init(&s, 8);
    cr_assert_eq(pd_frame_scan(&s, fix, 8, &len), PD_ERR_TOO_LARGE);
}

Test(frame, never_used_byte) {
    pd_frame_scan_t s;
    size_t len;
    uint8_t b[] = {0x92, 0x01, 0xc1};
    pd_frame_scan_init(&s, 100);
    cr_assert_eq(pd_frame_scan(&s, b, 3, &len), PD_ERR_BAD_REQUEST);
    cr_assert(!s.too_deep);
}

Test(frame, depth_agrees_with_msgpack) {
    for (int depth = 1; depth <= 40; depth++) {
        uint8_t buf[64];
        memset(buf, 0x91, (size_t)depth);
        buf[depth] = 0x01;
        size_t n = (size_t)depth + 1;
        pd_frame_scan_t s;
        pd_frame_scan_init(&s, 1000);
        size_t len = 0;
        pd_err err = pd_frame_scan(&s, buf, n, &len);
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        msgpack_object o;
        size_t off = 0;
        msgpack_unpack_return rc = msgpack_unpack((const char *)buf, n, &off, &z, &o);
        msgpack_zone_destroy(&z);
        if (err == PD_OK) {
            cr_assert_eq(len, n);
            cr_assert_eq(rc, MSGPACK_UNPACK_SUCCESS,
                         "depth %d: scanner accepts, msgpack-c does not", depth);
        } else {
            cr_assert_eq(err, PD_ERR_BAD_REQUEST);
            cr_assert_gt(depth, PD_FRAME_MAX_DEPTH - 1);
            cr_assert(s.too_deep, "depth %d: the error names the nesting", depth);
        }
    }
}

Test(frame, random_bytes_are_safe) {
    unsigned seed = 12345;
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand_r(&seed) % 48) + 1;
        uint8_t *p = malloc(n);
        for (size_t i = 0; i < n; i++) {
            /* Bias towards small containers and short strings, so frames complete. */
            unsigned r = (unsigned)rand_r(&seed);
            p[i] = (r & 3) == 0 ? (uint8_t)(0x90 | (r >> 8 & 3)) : (uint8_t)(r >> 8);
        }
        pd_frame_scan_t s;
        pd_frame_scan_init(&s, 1 << 16);
        size_t len = 0;
        pd_err err = pd_frame_scan(&s, p, n, &len);
        if (err == PD_OK && len > 0) {
            cr_assert_leq(len, n);
            msgpack_object o;
            size_t off = 0;
            msgpack_zone_clear(&z);
            msgpack_unpack_return rc = msgpack_unpack((const char *)p, len, &off, &z, &o);
            cr_assert_eq(rc, MSGPACK_UNPACK_SUCCESS, "seed iteration %d: msgpack-c rc %d", iter,
                         rc);
            cr_assert_eq(off, len);
        }
        free(p);
    }
    msgpack_zone_destroy(&z);
}
