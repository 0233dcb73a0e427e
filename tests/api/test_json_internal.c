/* test_json_internal.c -- paidan-cli's JSON <-> MessagePack bridge (api/json.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* JSON -> msgpack -> JSON, as a malloc'd string (NULL on a parse error). */
static char *roundtrip(const char *json) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[128];
    if (pd_json_to_msgpack(json, strlen(json), &pk, err, sizeof(err)) != PD_OK) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    pd_json_print(f, &o);
    fclose(f);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static void same(const char *in, const char *want) {
    char *got = roundtrip(in);
    cr_assert(got, "failed to parse %s", in);
    cr_assert_str_eq(got, want);
    free(got);
}

Test(json, values_round_trip) {
    same("{}", "{}");
    same(" [ ] ", "[]");
    same("{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}",
         "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}");
    same("-42", "-42");
    same("18446744073709551615", "18446744073709551615");
    same("30.6", "30.6");
    same("1e3", "1000");
    same("0.1", "0.1");
    same("-2.5e-3", "-0.0025");
    same("[[0,8,12],[5,0,24]]", "[[0,8,12],[5,0,24]]");
}

Test(json, strings_and_escapes) {
    same("\"a\\\"b\\\\c\\/d\\n\\t\"", "\"a\\\"b\\\\c/d\\n\\t\"");
    same("\"\\u00e9\\u4e2d\"", "\"\xc3\xa9\xe4\xb8\xad\"");
    same("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
    same("\"\\u0001\"", "\"\\u0001\"");
    same("\"志愿者\"", "\"志愿者\"");
}

Test(json, syntax_errors) {
    static const char *const bad[] = {
        "",        "{",           "}",           "[1,]",  "{\"a\"}", "{\"a\":}", "{a:1}",
        "tru",     "nul",         "01",          "1.",    "1e",      "-",        "\"abc",
        "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "[1 2]", "{} {}",   "\"a\nb\"", "1e999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *got = roundtrip(bad[i]);
        cr_assert_null(got, "accepted bad JSON %s -> %s", bad[i], got ? got : "");
    }
}

Test(json, deep_nesting_refused) {
    char buf[300];
    memset(buf, '[', 100);
    memset(buf + 100, ']', 100);
    buf[200] = '\0';
    cr_assert_null(roundtrip(buf));
    memset(buf, '[', 30);
    memset(buf + 30, ']', 30);
    buf[60] = '\0';
    char *ok = roundtrip(buf);
    cr_assert_not_null(ok);
    free(ok);
}

/* A float32 (the server sends ETAs and distances so) prints as the
 * shortest decimal that reads back as the same float, not as the float's
 * exact binary value; a float64 keeps its own shortest form. */
Test(json, float32_prints_shortest) {
    static const struct {
        float v;
        const char *want;
    } cases[] = {
        {152.58154296875f, "152.58154"},
        {146.7130126953125f, "146.71301"},
        {0.1f, "0.1"},
        {-3.25f, "-3.25"},
        {1e-7f, "1e-07"},
        {12.0f, "12"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_float(&pk, cases[i].v);
        msgpack_pack_double(&pk, (double)cases[i].v);
        msgpack_zone z;
        msgpack_zone_init(&z, 256);
        size_t off = 0;
        msgpack_object o32, o64;
        cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &z, &o32), MSGPACK_UNPACK_EXTRA_BYTES);
        cr_assert_eq(o32.type, MSGPACK_OBJECT_FLOAT32);
        cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &z, &o64), MSGPACK_UNPACK_SUCCESS);
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);
        pd_json_print(f, &o32);
        fclose(f);
        cr_assert_str_eq(out, cases[i].want);
        cr_assert_eq(strtof(out, NULL), cases[i].v);
        free(out);
        /* the same value as a double needs every digit to read back */
        f = open_memstream(&out, &n);
        pd_json_print(f, &o64);
        fclose(f);
        cr_assert_eq(strtod(out, NULL), (double)cases[i].v, "%s", out);
        free(out);
        msgpack_zone_destroy(&z);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* Params nest at most 31 deep: the request array around them is the
 * protocol's 32nd level, and deeper frames make the server hang up. */
Test(json, depth_fits_a_request) {
    char buf[100];
    memset(buf, '[', 31);
    memset(buf + 31, ']', 31);
    buf[62] = '\0';
    char *ok = roundtrip(buf);
    cr_assert_not_null(ok);
    free(ok);
    memset(buf, '[', 32);
    memset(buf + 32, ']', 32);
    buf[64] = '\0';
    cr_assert_null(roundtrip(buf));
}

/* A number is valid JSON however many digits it has. */
Test(json, long_numbers) {
    char buf[200] = "0.";
    memset(buf + 2, '0', 80);
    strcpy(buf + 82, "15");
    char *got = roundtrip(buf);
    cr_assert_not_null(got);
    cr_assert_eq(strtod(got, NULL), 1.5e-81, "%s", got);
    free(got);
    buf[0] = '1';
    memset(buf + 1, '0', 99);
    buf[100] = '\0';
    got = roundtrip(buf); /* past 64 bits: a double */
    cr_assert_not_null(got);
    cr_assert_eq(strtod(got, NULL), 1e99, "%s", got);
    free(got);
}

static char *print_obj(const msgpack_object *o) {
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    pd_json_print(f, o);
    fclose(f);
    return out;
}

/* The output is valid JSON whatever the server sent: bytes that are not
 * UTF-8 print as U+FFFD, well-formed sequences as they are. */
Test(json, output_is_valid_utf8) {
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"\xff", "\"\\ufffd\""},
        {"a\xc3", "\"a\\ufffd\""},                                /* truncated */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                       /* overlong '/' */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},            /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* past U+10FFFF */
        {"\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xe2\x82\xac\xf0\x9f\x98\x80\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msgpack_object o = {.type = MSGPACK_OBJECT_STR};
        o.via.str.ptr = cases[i].in;
        o.via.str.size = (uint32_t)strlen(cases[i].in);
        char *got = print_obj(&o);
        cr_assert_str_eq(got, cases[i].want, "case %zu", i);
        free(got);
    }
}

/* What JSON has no word for: NaN and infinities print as null, other map
 * keys as their JSON in a string, bin as hex, ext as an object. */
Test(json, output_of_other_types) {
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64};
    o.via.f64 = NAN;
    char *got = print_obj(&o);
    cr_assert_str_eq(got, "null");
    free(got);
    o.via.f64 = -INFINITY;
    got = print_obj(&o);
    cr_assert_str_eq(got, "null");
    free(got);
    msgpack_object_kv kv[2] = {
        {.key = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 1},
         .val = {.type = MSGPACK_OBJECT_BIN, .via.bin = {.size = 2, .ptr = "\x01\xff"}}},
        {.key = {.type = MSGPACK_OBJECT_NIL},
         .val = {.type = MSGPACK_OBJECT_EXT, .via.ext = {.type = 5, .size = 1, .ptr = "\x0a"}}},
    };
    o.type = MSGPACK_OBJECT_MAP;
    o.via.map.size = 2;
    o.via.map.ptr = kv;
    got = print_obj(&o);
    cr_assert_str_eq(got, "{\"1\":\"01ff\",\"null\":{\"ext\":5,\"hex\":\"0a\"}}");
    free(got);
}
