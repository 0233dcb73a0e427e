/* test_import.c -- the `import` method as an operator uses it: files that
 * are not what they should be (a lone-CR file, a wrong header, gigabytes
 * of nothing), what the reply tells about skipped and replaced lines, and
 * imported volunteers found by match.nearby and kept across a restart.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helper.h"

#define VHEAD "id,lat,lon,skills,tags,mode,schedule,capacity,status\n"

static const char *import_json(const char *path, const char *kind) {
    static char json[256];
    snprintf(json, sizeof(json), "{\"path\":\"%s\",\"kind\":\"%s\"}", path, kind);
    return json;
}

/* Element i of a msgpack array of strings, NUL-terminated (static). */
static const char *str_at(const msgpack_object *arr, size_t i) {
    static char buf[512];
    cr_assert(arr && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size);
    const msgpack_object *o = &arr->via.array.ptr[i];
    cr_assert_eq(o->type, MSGPACK_OBJECT_STR);
    snprintf(buf, sizeof(buf), "%.*s", (int)o->via.str.size, o->via.str.ptr);
    return buf;
}

/* A header, then `size` bytes of NULs (a sparse file: no disk used) or of
 * newlines: one line far over the limit, or nothing but blank lines. The
 * reader must pass over them a slice at a time, serving others meanwhile,
 * and must not take room for volunteers the file does not hold. */
static void big_empty_file(char *path, size_t cap, off_t size, bool newlines) {
    temp_file(path, cap, VHEAD);
    if (!newlines) {
        cr_assert_eq(truncate(path, size), 0);
        return;
    }
    FILE *fp = fopen(path, "ab");
    cr_assert_not_null(fp);
    static char nl[65536];
    memset(nl, '\n', sizeof(nl));
    for (off_t done = 0; done < size; done += (off_t)sizeof(nl))
        cr_assert_eq(fwrite(nl, 1, sizeof(nl), fp), sizeof(nl));
    cr_assert_eq(fclose(fp), 0);
}

static void import_serves_others(off_t size, bool newlines, size_t want_skipped) {
    srv_t s;
    srv_start(&s, NULL);
    char path[64];
    big_empty_file(path, sizeof(path), size, newlines);
    pd_client_t *a = srv_connect(&s), *b = srv_connect(&s);
    size_t len;
    const char *p = params_json(import_json(path, "volunteers"), &len);
    uint32_t id;
    cr_assert_eq(pd_client_send(a, "import", p, len, &id), PD_OK);
    cr_assert_eq(pd_client_flush(a), PD_OK);

    /* Read all at once, the file would answer `b` once at most while the
     * import runs (in the loop iteration that started it). */
    int answered_while_running = 0;
    for (;;) {
        bool ready = false;
        cr_assert_eq(pd_client_poll(a, 0, &ready), PD_OK);
        if (ready) break;
        answered_while_running += import_running(b);
    }
    pd_client_set_timeout(a, 60000);
    pd_msg_t m;
    cr_assert_eq(pd_client_read_response(a, &m), PD_OK, "%s", pd_client_last_error(a));
    cr_assert_eq(m.code, 0, "%s", m.message);
    cr_expect_eq(map_int(&m.result, "imported"), 0);
    cr_expect_eq(map_int(&m.result, "skipped"), (long long)want_skipped);
    cr_expect_geq(answered_while_running, 3, "the import held the loop: %d answers meanwhile",
                  answered_while_running);
    /* Nothing in the file: no room taken for millions of volunteers. */
    pd_msg_t st = call_ok(b, "stats", "");
    const msgpack_object *mem = pd_client_map_get(&st.result, "memory");
    cr_assert(mem);
    cr_expect_lt(map_int(mem, "engine_bytes"), 16ll << 20, "engine took %lld bytes",
                 map_int(mem, "engine_bytes"));
    pd_client_destroy(a);
    pd_client_destroy(b);
    unlink(path);
    srv_stop(&s);
}

Test(import, an_overlong_line_is_skipped_a_slice_at_a_time, .timeout = 120) {
    import_serves_others((off_t)256 << 20, false, 1);
}

Test(import, blank_lines_are_read_a_slice_at_a_time, .timeout = 120) {
    import_serves_others((off_t)32 << 20, true, 0);
}

/* A file saved with lone-CR line ends is one long line: refused as not a
 * paidan CSV, with the reason, and nothing read into the engine. */
Test(import, bad_headers_are_refused_with_the_reason, .timeout = 30) {
    srv_t s;
    srv_start(&s, NULL);
    pd_client_t *c = srv_connect(&s);
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"id,lat,lon,skills,tags,mode,schedule,capacity,status\r"
         "1,30.6,114.3,,0,walk,always,1,online\r",
         "lone CR"},
        {"id,lat,lon,skills,tags,mode,schedule,capacity,Status\n", "field 9 is 'Status'"},
        {"id,lat,lon,skills,tags,mode,schedule,capacity,status,\n", "found ','"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[64];
        temp_file(path, sizeof(path), cases[i].text);
        pd_msg_t m = call_err(c, "import", import_json(path, "volunteers"), PD_ERR_CORRUPT);
        cr_expect(strstr(m.message, cases[i].needle) != NULL, "case %zu: %s", i, m.message);
        unlink(path);
    }
    pd_msg_t st = call_ok(c, "stats", "");
    cr_expect_eq(map_int(pd_client_map_get(&st.result, "engine"), "volunteers"), 0);
    /* A NUL would make the path name another file. */
    call_err(c, "import", "{\"path\":\"/etc/hostname\\u0000.csv\"}", PD_ERR_BAD_ARG);
    pd_client_destroy(c);
    srv_stop(&s);
}

/* True if s[0..n) is well-formed UTF-8 (no overlong forms or surrogates
 * are produced by the server; this checks sequences and their lengths). */
static bool utf8_ok(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc0 ? 2 : 0;
        if (!len || i + len > n) return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80) return false;
        i += len;
    }
    return true;
}

/* An error message cut at its 255 bytes does not end inside a character:
 * an import naming a directory under a long Chinese path (the message
 * quotes the path), at every cut position. */
Test(import, a_long_error_message_stays_utf8, .timeout = 30) {
    srv_t s;
    srv_start(&s, NULL);
    pd_client_t *c = srv_connect(&s);
    char top[] = "/tmp/pd-import-utf8-XXXXXX";
    cr_assert_not_null(mkdtemp(top));
    char dirs[3][1024];
    for (int pad = 0; pad < 3; pad++) {
        /* top/<pad x's><40 x U+65B9>/<40 x U+65B9>: over 255 bytes */
        char seg[160];
        size_t j = (size_t)snprintf(seg, sizeof(seg), "%.*s", pad, "xx");
        for (int i = 0; i < 40; i++)
            j += (size_t)snprintf(seg + j, sizeof(seg) - j, "\xe6\x96\xb9");
        char *d = dirs[pad];
        snprintf(d, sizeof(dirs[0]), "%s/%s", top, seg);
        cr_assert_eq(mkdir(d, 0700), 0, "%s", d);
        size_t dl = strlen(d);
        snprintf(d + dl, sizeof(dirs[0]) - dl, "/%s", seg + pad);
        cr_assert_eq(mkdir(d, 0700), 0, "%s", d);
        char json[1200];
        snprintf(json, sizeof(json), "{\"path\":\"%s\"}", d);
        pd_msg_t m = call_err(c, "import", json, PD_ERR_BAD_ARG);
        size_t n = strlen(m.message);
        cr_assert_geq(n, 250, "the message was not cut: %s", m.message);
        cr_assert(utf8_ok(m.message, n), "pad %d: a message cut inside a character: %s", pad,
                  m.message);
    }
    for (int pad = 2; pad >= 0; pad--) {
        rmdir(dirs[pad]);
        *strrchr(dirs[pad], '/') = '\0';
        rmdir(dirs[pad]);
    }
    rmdir(top);
    pd_client_destroy(c);
    srv_stop(&s);
}

/* The reply says how many lines replaced a volunteer with the same id and
 * why the first ten skipped lines were skipped. */
Test(import, reply_names_replaced_and_skipped_lines, .timeout = 30) {
    srv_t s;
    srv_start(&s, NULL);
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof(text),
                                VHEAD
                                "1,30.6,114.3,tutoring,0,walk,always,1,online\n"
                                "2,30.6,114.3,juggling,0,walk,always,1,online\n"
                                "1,30.601,114.3,tutoring,0,walk,always,1,online\n");
    for (int i = 0; i < 12; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "%d,30.6,114.3,,0,walk,1:19-25,1,online\n", 10 + i);
    char path[64];
    temp_file(path, sizeof(path), text);
    pd_client_t *c = srv_connect(&s);
    pd_msg_t m = call_ok(c, "import", import_json(path, "volunteers"));
    cr_expect_eq(map_int(&m.result, "imported"), 2);
    cr_expect_eq(map_int(&m.result, "replaced"), 1);
    cr_expect_eq(map_int(&m.result, "skipped"), 13);
    cr_expect(pd_client_map_get(&m.result, "complete")->via.boolean);
    const msgpack_object *errs = pd_client_map_get(&m.result, "errors");
    cr_assert(errs && errs->type == MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(errs->via.array.size, 10, "the first ten");
    char want[128];
    snprintf(want, sizeof(want), "%s:3: field 4 'skills': unknown skill 'juggling'", path);
    cr_expect_str_eq(str_at(errs, 0), want);
    cr_expect(strstr(str_at(errs, 1), ":5: field 7 'schedule': range '1:19-25'"), "%s",
              str_at(errs, 1));
    /* The later line of id 1 is the one kept. */
    m = call_ok(c, "volunteer.get", "{\"id\":1}");
    cr_expect_float_eq(map_num(&m.result, "lat"), 30.601, 1e-9);

    /* Orders: the engine's refusals say which order and why. */
    char opath[64];
    temp_file(opath, sizeof(opath),
              "id,created,lat,lon,skills,need,start,duration_min,priority,minutes\n"
              "7,1709484654635,30.6,114.3,,33,1709600400000,120,normal,15\n"
              "8,1709484654635,30.6,114.3,,1,1709600400000,120,normal,15\n");
    m = call_ok(c, "import", import_json(opath, "orders"));
    cr_expect_eq(map_int(&m.result, "imported"), 1);
    cr_expect_eq(map_int(&m.result, "skipped"), 1);
    errs = pd_client_map_get(&m.result, "errors");
    cr_assert(errs && errs->type == MSGPACK_OBJECT_ARRAY && errs->via.array.size == 1);
    cr_expect(strstr(str_at(errs, 0), ":2: order 7: need 33 is above 32"), "%s", str_at(errs, 0));
    pd_client_destroy(c);
    unlink(path);
    unlink(opath);
    srv_stop(&s);
}

/* paidan-gen's output imported with --data-dir: every volunteer is found
 * by match.nearby, and all of them are there after a crash and restart. */
Test(import, generated_county_is_found_and_survives_a_restart, .timeout = 120) {
    char dir[] = "/tmp/pd-import-dir-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char csv[64];
    temp_file(csv, sizeof(csv), "");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' --seed 9 --volunteers 3000 --local-skills 0 -q -o '%s'",
             binary_path("data/paidan-gen"), csv);
    cr_assert_eq(system(cmd), 0, "%s", cmd);

    const char *args[] = {"--data-dir", dir, NULL};
    srv_t s;
    srv_start(&s, args);
    pd_client_t *c = srv_connect(&s);
    pd_msg_t m = call_ok(c, "import", import_json(csv, "volunteers"));
    cr_assert_eq(map_int(&m.result, "imported"), 3000);
    cr_expect_eq(map_int(&m.result, "replaced"), 0);
    cr_expect_eq(map_int(&m.result, "skipped"), 0);
    /* Volunteer 16 of every county: its own place, found there first. */
    m = call_ok(c, "volunteer.get", "{\"id\":16}");
    char q[160];
    snprintf(q, sizeof(q),
             "{\"lat\":%.6f,\"lon\":%.6f,\"k\":1,\"ignore_schedule\":true,"
             "\"include_unavailable\":true}",
             map_num(&m.result, "lat"), map_num(&m.result, "lon"));
    m = call_ok(c, "match.nearby", q);
    cr_assert_eq(m.result.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(m.result.via.array.size, 1);
    cr_expect_float_eq(map_num(&m.result.via.array.ptr[0], "distance_m"), 0, 1e-3);
    m = call_ok(c, "digest", "");
    uint64_t digest = pd_client_map_get(&m.result, "digest")->via.u64;
    pd_client_destroy(c);
    srv_stop_sig(&s, SIGKILL);

    srv_start(&s, args);
    c = srv_connect(&s);
    m = call_ok(c, "stats", "");
    cr_expect_eq(map_int(pd_client_map_get(&m.result, "engine"), "volunteers"), 3000);
    m = call_ok(c, "digest", "");
    cr_expect_eq(pd_client_map_get(&m.result, "digest")->via.u64, digest);
    pd_client_destroy(c);
    srv_stop(&s);
    unlink(csv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
