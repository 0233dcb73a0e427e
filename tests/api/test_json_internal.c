/* test_json_internal.c -- paidan-cli's JSON <-> MessagePack bridge (api/json.c). */
#include <criterion/criterion.h>
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
