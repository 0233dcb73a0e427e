/* test_csv.c -- the CSV formats: exact output, round trips through files
 * and memory, every reader error with its line and field, garbage that
 * must not crash, and the sample county shipped in data/sample. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paidan/alloc.h"
#include "paidan/data.h"

static const char *const *names(void) {
    return pd_gen_skill_names(NULL);
}
#define N_NAMES 12

/* A temporary file holding nothing yet; caller unlinks. */
static void temp_path(char *path, size_t cap) {
    snprintf(path, cap, "/tmp/pd_test_csv_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
}

static void write_file(const char *path, const char *text, size_t len) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(text, 1, len, fp), len);
    fclose(fp);
}

static pd_csv_reader_t *open_mem(const char *text, pd_csv_kind kind) {
    pd_csv_reader_t *r = NULL;
    pd_csv_error_t err;
    pd_err e = pd_csv_reader_open_mem(text, strlen(text), kind, names(), N_NAMES, &r, &err);
    cr_assert_eq(e, PD_OK, "open: %s", err.message);
    return r;
}

static bool weeks_equal(const pd_week_t *a, const pd_week_t *b) {
    return a->bits[0] == b->bits[0] && a->bits[1] == b->bits[1] && a->bits[2] == b->bits[2];
}

static void expect_same_volunteer(const pd_volunteer_t *a, const pd_volunteer_t *b) {
    cr_expect_eq(a->id, b->id);
    cr_expect_eq(a->pos.lat, b->pos.lat, "id %llu lat", (unsigned long long)a->id);
    cr_expect_eq(a->pos.lon, b->pos.lon, "id %llu lon", (unsigned long long)a->id);
    cr_expect_eq(a->skills, b->skills);
    cr_expect_eq(a->tags, b->tags);
    cr_expect(weeks_equal(&a->week, &b->week), "id %llu week", (unsigned long long)a->id);
    cr_expect_eq(a->mode, b->mode);
    cr_expect_eq(a->status, b->status);
    cr_expect_eq(a->capacity, b->capacity);
    cr_expect_eq(b->load, 0);
}

static void expect_same_order(const pd_gen_order_t *a, const pd_gen_order_t *b) {
    cr_expect_eq(a->id, b->id);
    cr_expect_eq(a->created_ms, b->created_ms);
    cr_expect_eq(a->pos.lat, b->pos.lat);
    cr_expect_eq(a->pos.lon, b->pos.lon);
    cr_expect_eq(a->skills, b->skills);
    cr_expect_eq(a->need, b->need);
    cr_expect_eq(a->start_ms, b->start_ms);
    cr_expect_eq(a->duration_min, b->duration_min);
    cr_expect_eq(a->priority, b->priority);
    cr_expect_eq(a->budget_min, b->budget_min);
}

/* ------------------------------------------------------------- writing */

Test(csv, headers) {
    cr_expect_str_eq(pd_csv_header(PD_CSV_VOLUNTEERS),
                     "id,lat,lon,skills,tags,mode,schedule,capacity,status");
    cr_expect_str_eq(pd_csv_header(PD_CSV_ORDERS),
                     "id,created,lat,lon,skills,need,start,duration_min,priority,minutes");
}

Test(csv, format_volunteer_exactly) {
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = 7;
    v.pos.lat = 30600000;
    v.pos.lon = -1;
    v.skills = (1u << 6) | (1u << 0) | (1u << 11);
    v.tags = PD_GEN_TAG_PARTY_MEMBER | PD_GEN_TAG_DIALECT;
    v.mode = PD_MODE_EBIKE;
    v.status = PD_STATUS_BUSY;
    v.capacity = 2;
    cr_assert_eq(pd_week_add_range(&v.week, 0, 18, 22), PD_OK);
    cr_assert_eq(pd_week_add_range(&v.week, 5, 9, 17), PD_OK);
    cr_assert_eq(pd_week_add_range(&v.week, 6, 0, 1), PD_OK);
    cr_assert_eq(pd_week_add_range(&v.week, 6, 23, 24), PD_OK);
    char buf[PD_CSV_LINE_MAX + 1];
    size_t len;
    cr_assert_eq(pd_csv_format_volunteer(&v, names(), N_NAMES, buf, sizeof buf, &len), PD_OK);
    const char *want =
        "7,30.600000,-0.000001,theory-policy|sanitation|elder-care,9,ebike,"
        "0:18-22;5:9-17;6:0-1;6:23-24,2,busy\n";
    cr_expect_eq(len, strlen(want));
    cr_expect(memcmp(buf, want, len) == 0, "got %.*s", (int)len, buf);

    /* Too small a buffer, an unnamed skill bit, a bad record. */
    cr_expect_eq(pd_csv_format_volunteer(&v, names(), N_NAMES, buf, 20, &len), PD_ERR_BOUNDS);
    v.skills |= 1ULL << 12;
    cr_expect_eq(pd_csv_format_volunteer(&v, names(), N_NAMES, buf, sizeof buf, &len),
                 PD_ERR_UNKNOWN_SKILL);
    v.skills = 0;
    v.pos.lat = 91000000;
    cr_expect_eq(pd_csv_format_volunteer(&v, names(), N_NAMES, buf, sizeof buf, &len),
                 PD_ERR_BAD_COORD);
    v.pos.lat = 0;
    v.capacity = 0;
    cr_expect_eq(pd_csv_format_volunteer(&v, names(), N_NAMES, buf, sizeof buf, &len),
                 PD_ERR_BAD_ARG);
    v.capacity = 1;
    v.week = pd_week_all();
    cr_assert_eq(pd_csv_format_volunteer(&v, names(), N_NAMES, buf, sizeof buf, &len), PD_OK);
    cr_expect(memcmp(buf, "7,0.000000,-0.000001,,9,ebike,always,1,busy\n", len) == 0, "got %.*s",
              (int)len, buf);
}

Test(csv, format_order_exactly) {
    pd_gen_order_t o;
    memset(&o, 0, sizeof o);
    o.id = 12;
    o.created_ms = 1709481600000LL;
    o.pos.lat = -33450000;
    o.pos.lon = 180000000;
    o.skills = 1u << 2;
    o.need = 4;
    o.start_ms = 1709485200000LL;
    o.duration_min = 90;
    o.priority = PD_GEN_PRIORITY_EMERGENCY;
    o.budget_min = 30;
    char buf[256];
    size_t len;
    cr_assert_eq(pd_csv_format_order(&o, names(), N_NAMES, buf, sizeof buf, &len), PD_OK);
    const char *want =
        "12,1709481600000,-33.450000,180.000000,tutoring,4,1709485200000,90,"
        "emergency,30\n";
    cr_expect(len == strlen(want) && memcmp(buf, want, len) == 0, "got %.*s", (int)len, buf);
    o.need = 0;
    cr_expect_eq(pd_csv_format_order(&o, names(), N_NAMES, buf, sizeof buf, &len), PD_ERR_BAD_ARG);
    o.need = 1;
    o.budget_min = 0;
    cr_expect_eq(pd_csv_format_order(&o, names(), N_NAMES, buf, sizeof buf, &len), PD_ERR_BAD_ARG);
}

Test(csv, bad_name_tables_are_refused) {
    const char *dup[] = {"a", "b", "a"};
    const char *comma[] = {"a,b"};
    const char *space[] = {"a b"};
    const char *empty[] = {""};
    const char *utf8[] = {"理论宣讲", "文化文艺"};
    pd_csv_writer_t *w;
    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_expect_eq(pd_csv_writer_open_fp(stdout, PD_CSV_VOLUNTEERS, dup, 3, &w), PD_ERR_BAD_ARG);
    cr_expect_eq(pd_csv_writer_open_fp(stdout, PD_CSV_VOLUNTEERS, comma, 1, &w), PD_ERR_BAD_ARG);
    cr_expect_eq(pd_csv_writer_open_fp(stdout, PD_CSV_VOLUNTEERS, space, 1, &w), PD_ERR_BAD_ARG);
    cr_expect_eq(pd_csv_reader_open_mem("x", 1, PD_CSV_ORDERS, empty, 1, &r, &err), PD_ERR_BAD_ARG);
    cr_expect(strstr(err.message, "skill-name table") != NULL, "%s", err.message);
    cr_expect_eq(pd_csv_writer_open_fp(stdout, PD_CSV_VOLUNTEERS, names(), 65, &w), PD_ERR_BAD_ARG);
    /* Names in Chinese are fine. */
    const char *text =
        "id,lat,lon,skills,tags,mode,schedule,capacity,status\n"
        "1,30.1,114.2,文化文艺|理论宣讲,0,walk,always,1,online\n";
    cr_assert_eq(pd_csv_reader_open_mem(text, strlen(text), PD_CSV_VOLUNTEERS, utf8, 2, &r, &err),
                 PD_OK);
    pd_volunteer_t v;
    bool got;
    cr_assert_eq(pd_csv_read_volunteer(r, &v, &got), PD_OK);
    cr_expect(got);
    cr_expect_eq(v.skills, 3);
    pd_csv_reader_close(r);
}

Test(csv, write_to_a_full_disk_reports_io) {
    pd_csv_writer_t *w;
    cr_assert_eq(pd_csv_writer_open("/dev/full", PD_CSV_VOLUNTEERS, names(), N_NAMES, &w), PD_OK);
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cfg.volunteers = 5000;
    pd_gen_t *g;
    cr_assert_eq(pd_gen_create(&cfg, &g), PD_OK);
    pd_volunteer_t v;
    pd_err last = PD_OK;
    while (pd_gen_next_volunteer(g, &v) && last == PD_OK) last = pd_csv_write_volunteer(w, &v);
    pd_err closed = pd_csv_writer_close(w);
    cr_expect(last == PD_ERR_IO || closed == PD_ERR_IO);
    cr_expect_eq(closed, PD_ERR_IO);
    pd_gen_destroy(g);
    cr_expect_eq(pd_csv_writer_open("/nonexistent-dir/x.csv", PD_CSV_ORDERS, names(), N_NAMES, &w),
                 PD_ERR_IO);
}

/* ---------------------------------------------------------- round trips */

Test(csv, volunteers_round_trip_through_a_file) {
    char path[64];
    temp_path(path, sizeof path);
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cfg.seed = 99;
    cfg.volunteers = 6000; /* ~600 KB: many refills of the 64 KiB buffer */
    pd_gen_t *g;
    cr_assert_eq(pd_gen_create(&cfg, &g), PD_OK);
    pd_csv_writer_t *w;
    cr_assert_eq(pd_csv_writer_open(path, PD_CSV_VOLUNTEERS, names(), N_NAMES, &w), PD_OK);
    pd_volunteer_t v;
    while (pd_gen_next_volunteer(g, &v)) cr_assert_eq(pd_csv_write_volunteer(w, &v), PD_OK);
    cr_assert_eq(pd_csv_writer_close(w), PD_OK);
    pd_gen_destroy(g);

    cr_assert_eq(pd_gen_create(&cfg, &g), PD_OK);
    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_assert_eq(pd_csv_reader_open(path, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err), PD_OK,
                 "%s", err.message);
    pd_volunteer_t back;
    bool got;
    uint64_t n = 0;
    for (;;) {
        pd_err e = pd_csv_read_volunteer(r, &back, &got);
        cr_assert_eq(e, PD_OK, "%s", pd_csv_reader_get_error(r)->message);
        if (!got) break;
        cr_assert(pd_gen_next_volunteer(g, &v));
        expect_same_volunteer(&v, &back);
        n++;
        cr_assert_eq(pd_csv_reader_get_line(r), n + 1);
    }
    cr_expect_eq(n, 6000);
    cr_expect_not(pd_gen_next_volunteer(g, &v));
    /* The end is sticky. */
    cr_expect_eq(pd_csv_read_volunteer(r, &back, &got), PD_OK);
    cr_expect_not(got);
    pd_csv_reader_close(r);
    pd_gen_destroy(g);
    unlink(path);
}

Test(csv, orders_round_trip_through_memory) {
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cfg.seed = 5;
    cfg.orders = 4000;
    pd_gen_t *g;
    cr_assert_eq(pd_gen_create(&cfg, &g), PD_OK);
    pd_csv_writer_t *w;
    cr_assert_eq(pd_csv_writer_open_fp(fp, PD_CSV_ORDERS, names(), N_NAMES, &w), PD_OK);
    pd_gen_order_t o;
    while (pd_gen_next_order(g, &o)) cr_assert_eq(pd_csv_write_order(w, &o), PD_OK);
    cr_assert_eq(pd_csv_writer_close(w), PD_OK);
    fclose(fp);
    pd_gen_destroy(g);

    cr_assert_eq(pd_gen_create(&cfg, &g), PD_OK);
    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_assert_eq(pd_csv_reader_open_mem(buf, len, PD_CSV_ORDERS, names(), N_NAMES, &r, &err),
                 PD_OK);
    pd_gen_order_t back;
    bool got;
    uint64_t n = 0;
    while (pd_csv_read_order(r, &back, &got) == PD_OK && got) {
        cr_assert(pd_gen_next_order(g, &o));
        expect_same_order(&o, &back);
        n++;
    }
    cr_expect_eq(pd_csv_reader_get_error(r)->code, PD_OK);
    cr_expect_eq(n, 4000);
    pd_csv_reader_close(r);
    pd_gen_destroy(g);
    free(buf);
}

Test(csv, edge_values_round_trip) {
    const char *const *all = names();
    pd_volunteer_t vs[4];
    memset(vs, 0, sizeof vs);
    vs[0].id = UINT64_MAX;
    vs[0].pos.lat = -90000000;
    vs[0].pos.lon = 180000000;
    vs[0].skills = UINT64_MAX; /* every one of 64 skills */
    vs[0].tags = UINT64_MAX;
    vs[0].week = pd_week_none();
    vs[0].capacity = 255;
    vs[0].status = PD_STATUS_OFFLINE;
    vs[0].mode = PD_MODE_CAR;
    vs[1].id = 0;
    vs[1].pos.lat = 90000000;
    vs[1].pos.lon = -180000000;
    vs[1].week = pd_week_all();
    vs[1].capacity = 1;
    vs[2].id = 3;
    vs[2].pos.lat = -5; /* -0.000005 */
    vs[2].pos.lon = 999999;
    vs[2].capacity = 1;
    /* Every other hour of the week: the longest schedule there is. */
    for (int d = 0; d < 7; d++)
        for (int h = 0; h < 24; h += 2)
            cr_assert_eq(pd_week_add_range(&vs[2].week, d, h, h + 1), PD_OK);
    vs[3].id = 4;
    vs[3].capacity = 3;
    for (int d = 0; d < 7; d++) cr_assert_eq(pd_week_add_range(&vs[3].week, d, 0, 24), PD_OK);
    pd_week_t none_sunday = pd_week_all();
    none_sunday.bits[2] &= ~(0xFFFFFFULL << (6 * 24 - 128)); /* Sunday out */
    vs[3].week = none_sunday;

    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    pd_csv_writer_t *w;
    cr_assert_eq(pd_csv_writer_open_fp(fp, PD_CSV_VOLUNTEERS, all, 64, &w), PD_OK);
    for (int i = 0; i < 4; i++) cr_assert_eq(pd_csv_write_volunteer(w, &vs[i]), PD_OK, "%d", i);
    cr_assert_eq(pd_csv_writer_close(w), PD_OK);
    fclose(fp);
    cr_expect(strstr(buf, ",none,") != NULL);
    cr_expect(strstr(buf, ",always,") != NULL);
    cr_expect(strstr(buf, "-0.000005,0.999999") != NULL, "%s", buf);
    cr_expect(strstr(buf, "0:0-24;1:0-24;2:0-24;3:0-24;4:0-24;5:0-24,3,") != NULL, "%s", buf);

    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_assert_eq(pd_csv_reader_open_mem(buf, len, PD_CSV_VOLUNTEERS, all, 64, &r, &err), PD_OK);
    for (int i = 0; i < 4; i++) {
        pd_volunteer_t back;
        bool got;
        cr_assert_eq(pd_csv_read_volunteer(r, &back, &got), PD_OK, "%s",
                     pd_csv_reader_get_error(r)->message);
        cr_assert(got);
        expect_same_volunteer(&vs[i], &back);
    }
    pd_csv_reader_close(r);
    free(buf);

    /* Orders with times before the epoch and the widest values. */
    pd_gen_order_t o;
    memset(&o, 0, sizeof o);
    o.id = 1;
    o.created_ms = -86400000;
    o.start_ms = INT64_MAX;
    o.need = PD_GEN_MAX_NEED;
    o.duration_min = PD_GEN_MAX_DURATION_MIN;
    o.budget_min = PD_GEN_MAX_BUDGET_MIN;
    o.priority = PD_GEN_PRIORITY_ELEVATED;
    char line[PD_CSV_LINE_MAX + 1];
    size_t n;
    cr_assert_eq(pd_csv_format_order(&o, all, 64, line, sizeof line, &n), PD_OK);
    char text[PD_CSV_LINE_MAX + 200];
    int hn = snprintf(text, sizeof text, "%s\n", pd_csv_header(PD_CSV_ORDERS));
    memcpy(text + hn, line, n);
    text[hn + n] = 0;
    r = open_mem(text, PD_CSV_ORDERS);
    pd_gen_order_t back;
    bool got;
    cr_assert_eq(pd_csv_read_order(r, &back, &got), PD_OK, "%s",
                 pd_csv_reader_get_error(r)->message);
    cr_assert(got);
    expect_same_order(&o, &back);
    pd_csv_reader_close(r);
}

Test(csv, lenient_where_it_is_safe) {
    /* CRLF line ends, a byte-order mark, blank lines, no final newline,
     * fewer or more than six decimals (rounded half away from zero). */
    const char *text =
        "\xEF\xBB\xBFid,lat,lon,skills,tags,mode,schedule,capacity,status\r\n"
        "\r\n"
        "1,30.6,-114.12345649,sanitation,0,walk,0:18-22;0:20-23,1,online\r\n"
        "\n"
        "2,-0.0000005,0.0000004,,0,bike,none,1,busy";
    pd_csv_reader_t *r = open_mem(text, PD_CSV_VOLUNTEERS);
    pd_volunteer_t v;
    bool got;
    cr_assert_eq(pd_csv_read_volunteer(r, &v, &got), PD_OK, "%s",
                 pd_csv_reader_get_error(r)->message);
    cr_assert(got);
    cr_expect_eq(pd_csv_reader_get_line(r), 3);
    cr_expect_eq(v.pos.lat, 30600000);
    cr_expect_eq(v.pos.lon, -114123456);
    pd_week_t want = pd_week_none();
    pd_week_add_range(&want, 0, 18, 23);
    cr_expect(weeks_equal(&v.week, &want));
    cr_assert_eq(pd_csv_read_volunteer(r, &v, &got), PD_OK, "%s",
                 pd_csv_reader_get_error(r)->message);
    cr_assert(got);
    cr_expect_eq(pd_csv_reader_get_line(r), 5);
    cr_expect_eq(v.pos.lat, -1);
    cr_expect_eq(v.pos.lon, 0);
    cr_expect_eq(v.skills, 0);
    cr_expect(pd_week_is_empty(&v.week));
    cr_assert_eq(pd_csv_read_volunteer(r, &v, &got), PD_OK);
    cr_expect_not(got);
    pd_csv_reader_close(r);

    /* A header-only file is an empty list, not an error. */
    r = open_mem("id,created,lat,lon,skills,need,start,duration_min,priority,minutes\n",
                 PD_CSV_ORDERS);
    pd_gen_order_t o;
    cr_assert_eq(pd_csv_read_order(r, &o, &got), PD_OK);
    cr_expect_not(got);
    /* Asking an orders reader for a volunteer is a caller error. */
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_ERR_BAD_ARG);
    pd_csv_reader_close(r);
}

/* --------------------------------------------------------------- errors */

#define VHEAD "id,lat,lon,skills,tags,mode,schedule,capacity,status\n"
#define OHEAD "id,created,lat,lon,skills,need,start,duration_min,priority,minutes\n"
#define GOOD_V "1,30.600000,114.300000,tutoring,0,walk,always,1,online\n"
#define GOOD_O "1,1709481600000,30.6,114.3,tutoring,1,1709485200000,60,normal,15\n"

/* Read records of `text` until the first error, which must be `code` on
 * `line` in `field` with `needle` in the message. */
static void expect_error(const char *text, pd_csv_kind kind, pd_err code, size_t line, int field,
                         const char *needle) {
    pd_csv_reader_t *r = open_mem(text, kind);
    pd_err e;
    bool got;
    do {
        if (kind == PD_CSV_VOLUNTEERS) {
            pd_volunteer_t v;
            e = pd_csv_read_volunteer(r, &v, &got);
        } else {
            pd_gen_order_t o;
            e = pd_csv_read_order(r, &o, &got);
        }
    } while (e == PD_OK && got);
    const pd_csv_error_t *err = pd_csv_reader_get_error(r);
    cr_expect_eq(e, code, "want %s, got %s (%s) for:\n%s", pd_err_name(code), pd_err_name(e),
                 err->message, text);
    cr_expect_eq(err->code, code);
    cr_expect_eq(err->line, line, "line: %s", err->message);
    cr_expect_eq(err->field, field, "field: %s", err->message);
    cr_expect(strstr(err->message, needle) != NULL, "'%s' not in '%s'", needle, err->message);
    char at[32];
    snprintf(at, sizeof at, "<memory>:%zu:", line);
    cr_expect(strncmp(err->message, at, strlen(at)) == 0, "message '%s'", err->message);
    pd_csv_reader_close(r);
}

Test(csv, reader_errors_name_line_field_and_reason) {
    /* Bad numbers. */
    expect_error(VHEAD GOOD_V "2,30.6,114.3,tutoring,0,walk,always,abc,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 3, 7, "field 8 'capacity': 'abc' is not an unsigned integer");
    expect_error(VHEAD "x1,30.6,114.3,tutoring,0,walk,always,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 0, "'x1' is not an unsigned integer");
    expect_error(VHEAD "1,30.6,114.3,tutoring,-3,walk,always,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 4, "'tags'");
    expect_error(VHEAD "1,30.6,114.3,tutoring,0,walk,always,256,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 7, "out of range 1..255");
    expect_error(VHEAD "1,30.6,114.3,tutoring,0,walk,always,0,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 7, "out of range 1..255");
    expect_error(VHEAD "99999999999999999999,30.6,114.3,,0,walk,always,1,online\n",
                 PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 2, 0, "not an unsigned integer");
    /* Unknown skill, named. */
    expect_error(VHEAD GOOD_V GOOD_V "3,30.6,114.3,tutoring|juggling,0,walk,always,1,online\n",
                 PD_CSV_VOLUNTEERS, PD_ERR_UNKNOWN_SKILL, 4, 3, "unknown skill 'juggling'");
    expect_error(VHEAD "3,30.6,114.3,tutoring||civility,0,walk,always,1,online\n",
                 PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 2, 3, "empty skill name");
    expect_error(VHEAD "3,30.6,114.3,tutoring|,0,walk,always,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 3, "empty skill name");
    /* Coordinates: out of range, malformed. */
    expect_error(VHEAD GOOD_V "2,91.5,114.3,tutoring,0,walk,always,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_BAD_COORD, 3, 1, "field 2 'lat': value '91.5' is out of range -90..90");
    expect_error(VHEAD "2,30.6,-180.000001,,0,walk,always,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_BAD_COORD, 2, 2, "out of range -180..180");
    expect_error(VHEAD "2,12345678901,1,,0,walk,always,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_BAD_COORD, 2, 1, "out of range");
    const char *bad_lat[] = {"30.6.1", "nan", "1e5", " 30.6", "30.",
                             ".5",     "-",   "",    "+30.6", "30,6"};
    for (size_t i = 0; i < sizeof bad_lat / sizeof bad_lat[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, VHEAD "2,%s,114.3,,0,walk,always,1,online\n", bad_lat[i]);
        if (strchr(bad_lat[i], ','))
            expect_error(text, PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 2, -1, "expected 9 fields");
        else
            expect_error(text, PD_CSV_VOLUNTEERS, PD_ERR_BAD_COORD, 2, 1, "'lat'");
    }
    /* Wrong field counts. */
    expect_error(VHEAD GOOD_V "2,30.6,114.3,tutoring,0,walk,always,1\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 3, -1, "<memory>:3: expected 9 fields, found 8");
    expect_error(VHEAD "2,30.6,114.3,tutoring,0,walk,always,1,online,extra\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, -1, "expected 9 fields, found 10");
    expect_error(VHEAD "garbage\n", PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 2, -1,
                 "expected 9 fields, found 1");
    expect_error(VHEAD ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, -1, "found 41");
    /* Names and schedules. */
    expect_error(VHEAD "2,30.6,114.3,,0,jetpack,always,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 5, "unknown mode 'jetpack'");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,always,1,asleep\n", PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT,
                 2, 8, "unknown status 'asleep'");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,7:18-22,1,online\n", PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT,
                 2, 6, "weekday 0..6");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,0:22-18,1,online\n", PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT,
                 2, 6, "start < end <= 24");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,0:18-25,1,online\n", PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT,
                 2, 6, "start < end <= 24");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,0:18,1,online\n", PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 2,
                 6, "range '0:18' is not D:S-E");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,0:18-22;,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 6, "is not D:S-E");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,,1,online\n", PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 2, 6,
                 "empty schedule");
    expect_error(VHEAD "2,30.6,114.3,,0,walk,0:018-22,1,online\n", PD_CSV_VOLUNTEERS,
                 PD_ERR_CORRUPT, 2, 6, "is not D:S-E");
    /* A NUL byte inside a line. */
    static const char nul[] = VHEAD "2,30.6,114.3,,0,walk,al\0ways,1,online\n";
    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_assert_eq(
        pd_csv_reader_open_mem(nul, sizeof nul - 1, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err),
        PD_OK);
    pd_volunteer_t v;
    bool got;
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_ERR_CORRUPT);
    cr_expect(strstr(pd_csv_reader_get_error(r)->message, "NUL") != NULL);
    pd_csv_reader_close(r);
}

Test(csv, order_reader_errors) {
    expect_error(OHEAD GOOD_O "2,17094816OO000,30.6,114.3,tutoring,1,1,60,normal,15\n",
                 PD_CSV_ORDERS, PD_ERR_CORRUPT, 3, 1, "field 2 'created'");
    expect_error(OHEAD "2,1,30.6,114.3,tutoring,0,1,60,normal,15\n", PD_CSV_ORDERS, PD_ERR_CORRUPT,
                 2, 5, "'need'");
    expect_error(OHEAD "2,1,30.6,114.3,tutoring,1,1,10081,normal,15\n", PD_CSV_ORDERS,
                 PD_ERR_CORRUPT, 2, 7, "out of range 0..10080");
    expect_error(OHEAD "2,1,30.6,114.3,tutoring,1,1,60,urgent,15\n", PD_CSV_ORDERS, PD_ERR_CORRUPT,
                 2, 8, "unknown priority 'urgent'");
    expect_error(OHEAD "2,1,30.6,114.3,tutoring,1,1,60,normal,0\n", PD_CSV_ORDERS, PD_ERR_CORRUPT,
                 2, 9, "'minutes'");
    expect_error(OHEAD "2,1,-90.5,114.3,tutoring,1,1,60,normal,15\n", PD_CSV_ORDERS,
                 PD_ERR_BAD_COORD, 2, 2, "out of range -90..90");
    expect_error(OHEAD "2,1,30.6,114.3,dancing,1,1,60,normal,15\n", PD_CSV_ORDERS,
                 PD_ERR_UNKNOWN_SKILL, 2, 4, "unknown skill 'dancing'");
    expect_error(OHEAD "2,1,30.6,114.3,tutoring,1,-9223372036854775809,60,normal,15\n",
                 PD_CSV_ORDERS, PD_ERR_CORRUPT, 2, 6, "not an integer");
}

static void expect_open_error(const char *text, size_t len, pd_csv_kind kind, pd_err code,
                              size_t line, const char *needle) {
    static char sentinel;
    pd_csv_reader_t *const untouched = (pd_csv_reader_t *)&sentinel;
    pd_csv_reader_t *r = untouched;
    pd_csv_error_t err;
    cr_expect_eq(pd_csv_reader_open_mem(text, len, kind, names(), N_NAMES, &r, &err), code);
    cr_expect_eq(r, untouched);
    cr_expect_eq(err.code, code);
    cr_expect_eq(err.line, line, "line in '%s'", err.message);
    cr_expect(strstr(err.message, needle) != NULL, "'%s' not in '%s'", needle, err.message);
}

Test(csv, header_errors) {
    expect_open_error("", 0, PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 0, "<memory>: empty file");
    expect_open_error(NULL, 0, PD_CSV_ORDERS, PD_ERR_CORRUPT, 0, "empty file");
    expect_open_error(GOOD_V, strlen(GOOD_V), PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "<memory>:1: missing header: expected 'id,lat,lon");
    expect_open_error("\n" VHEAD, strlen(VHEAD) + 1, PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "missing header");
    expect_open_error("id,lat,lon\n", 11, PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "found 'id,lat,lon'");
    expect_open_error(OHEAD GOOD_O, strlen(OHEAD GOOD_O), PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "this is an orders file; expected volunteers");
    expect_open_error(VHEAD, strlen(VHEAD), PD_CSV_ORDERS, PD_ERR_CORRUPT, 1,
                      "this is a volunteers file; expected orders");

    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_expect_eq(
        pd_csv_reader_open("/nonexistent/v.csv", PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err),
        PD_ERR_IO);
    cr_expect(strstr(err.message, "/nonexistent/v.csv: cannot open: No such file") != NULL, "%s",
              err.message);
    /* A directory opens but cannot be read. */
    cr_expect_eq(pd_csv_reader_open("/", PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err), PD_ERR_IO);
    cr_expect(strstr(err.message, "/: read error") != NULL, "%s", err.message);
    char path[64];
    temp_path(path, sizeof path);
    cr_expect_eq(pd_csv_reader_open(path, PD_CSV_ORDERS, names(), N_NAMES, &r, &err),
                 PD_ERR_CORRUPT);
    cr_expect(strstr(err.message, "empty file") != NULL, "%s", err.message);
    cr_expect(strncmp(err.message, path, strlen(path)) == 0, "%s", err.message);
    unlink(path);
}

Test(csv, bad_lines_are_skipped_and_reading_goes_on) {
    const char *text = VHEAD GOOD_V
        "2,99,0,,0,walk,always,1,online\n"
        "\n"
        "3,0,0,,0,walk,always,1,zzz\n" GOOD_V;
    pd_csv_reader_t *r = open_mem(text, PD_CSV_VOLUNTEERS);
    pd_volunteer_t v;
    bool got;
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_OK);
    cr_expect(got);
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_ERR_BAD_COORD);
    cr_expect_eq(pd_csv_reader_get_error(r)->line, 3);
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_ERR_CORRUPT);
    cr_expect_eq(pd_csv_reader_get_error(r)->line, 5);
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_OK);
    cr_expect(got);
    cr_expect_eq(pd_csv_reader_get_line(r), 6);
    cr_expect_eq(pd_csv_reader_get_error(r)->code, PD_OK, "a good read clears the error");
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_OK);
    cr_expect_not(got);
    pd_csv_reader_close(r);
}

/* A line longer than PD_CSV_LINE_MAX, in memory and in a file (where it
 * spans several buffer fills), then a good line. */
Test(csv, overlong_lines_are_reported_and_skipped) {
    size_t big = 200000;
    size_t cap = strlen(VHEAD) + big + 2 * strlen(GOOD_V) + 8;
    char *text = malloc(cap);
    size_t n = (size_t)sprintf(text, "%s%s", VHEAD, GOOD_V);
    memset(text + n, '7', big);
    n += big;
    text[n++] = '\n';
    n += (size_t)sprintf(text + n, "%s", GOOD_V);

    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_assert_eq(pd_csv_reader_open_mem(text, n, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err),
                 PD_OK);
    char path[64];
    temp_path(path, sizeof path);
    write_file(path, text, n);
    pd_csv_reader_t *rf;
    cr_assert_eq(pd_csv_reader_open(path, PD_CSV_VOLUNTEERS, names(), N_NAMES, &rf, &err), PD_OK);
    pd_csv_reader_t *both[2] = {r, rf};
    for (int i = 0; i < 2; i++) {
        pd_volunteer_t v;
        bool got;
        cr_expect_eq(pd_csv_read_volunteer(both[i], &v, &got), PD_OK);
        cr_expect_eq(pd_csv_read_volunteer(both[i], &v, &got), PD_ERR_TOO_LARGE);
        const pd_csv_error_t *e = pd_csv_reader_get_error(both[i]);
        cr_expect_eq(e->line, 3, "reader %d: %s", i, e->message);
        cr_expect(strstr(e->message, "line longer than 8192 bytes") != NULL, "%s", e->message);
        cr_expect_eq(pd_csv_read_volunteer(both[i], &v, &got), PD_OK);
        cr_expect(got);
        cr_expect_eq(pd_csv_reader_get_line(both[i]), 4);
        cr_expect_eq(pd_csv_read_volunteer(both[i], &v, &got), PD_OK);
        cr_expect_not(got);
        pd_csv_reader_close(both[i]);
    }
    /* An overlong last line with no newline at all. */
    text[n - 1 - strlen(GOOD_V)] = 'x';
    n -= strlen(GOOD_V);
    write_file(path, text, n);
    cr_assert_eq(pd_csv_reader_open(path, PD_CSV_VOLUNTEERS, names(), N_NAMES, &rf, &err), PD_OK);
    pd_volunteer_t v;
    bool got;
    cr_expect_eq(pd_csv_read_volunteer(rf, &v, &got), PD_OK);
    cr_expect_eq(pd_csv_read_volunteer(rf, &v, &got), PD_ERR_TOO_LARGE);
    cr_expect_eq(pd_csv_read_volunteer(rf, &v, &got), PD_OK);
    cr_expect_not(got);
    pd_csv_reader_close(rf);
    unlink(path);
    free(text);
}

/* A header that is nearly right names the field that differs; a file
 * whose lines end in a lone CR (one long line), or whose first line is
 * over the limit, is refused at open as not a CSV of paidan's -- without
 * reading on through the rest of the file. */
Test(csv, header_errors_say_what_is_wrong) {
    expect_open_error("id,lat,lon,skills,tags,mode,schedule,capacity,Status\n", 54,
                      PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "<memory>:1: wrong header: field 9 is 'Status', expected 'status'");
    expect_open_error("id,lat,lon,skills,tags,mode,schedule,capacity,status,\r\n", 55,
                      PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "wrong header: found ',' after the 9 fields of");
    expect_open_error("id,lat, lon\n", 12, PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "field 3 is ' lon', expected 'lon'");
    const char *cr = "id,lat,lon,skills,tags,mode,schedule,capacity,status\r" GOOD_V;
    expect_open_error(cr, strlen(cr), PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                      "lines must end in LF or CRLF, not in a lone CR");

    /* 300 KB of lone-CR lines, or of one line with no end: CORRUPT (not
     * a too-long line to skip), from a file as from memory. */
    size_t n = 300000;
    char *text = malloc(n);
    for (int k = 0; k < 2; k++) {
        memset(text, 'x', n);
        if (k == 0)
            for (size_t i = 0; i + 64 < n; i += 64) memcpy(text + i, "1,2,3\r", 6);
        expect_open_error(text, n, PD_CSV_VOLUNTEERS, PD_ERR_CORRUPT, 1,
                          k == 0 ? "lone CR" : "missing header: line 1 is longer than 8192 bytes");
        char path[64];
        temp_path(path, sizeof path);
        write_file(path, text, n);
        pd_csv_reader_t *r;
        pd_csv_error_t err;
        cr_expect_eq(pd_csv_reader_open(path, PD_CSV_ORDERS, names(), N_NAMES, &r, &err),
                     PD_ERR_CORRUPT, "%s", err.message);
        cr_expect_eq(err.line, 1);
        unlink(path);
    }
    free(text);

    /* A read error says why. */
    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_expect_eq(pd_csv_reader_open("/", PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err), PD_ERR_IO);
    cr_expect(strstr(err.message, "/: read error: Is a directory") != NULL, "%s", err.message);
}

/* True if s is well-formed UTF-8. */
static bool valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int len = *p < 0x80             ? 1
                  : (*p & 0xe0) == 0xc0 ? 2
                  : (*p & 0xf0) == 0xe0 ? 3
                  : (*p & 0xf8) == 0xf0 ? 4
                                        : 0;
        if (len == 0 || (len == 2 && *p < 0xc2)) return false;
        for (int i = 1; i < len; i++)
            if ((p[i] & 0xc0) != 0x80) return false;
        p += len;
    }
    return true;
}

/* Messages are UTF-8 whatever the file holds: a skill written in GBK (a
 * spreadsheet saved in the local code page) shows as '?', and a long
 * UTF-8 value is cut between characters, not inside one. */
Test(csv, messages_are_utf8) {
    /* "测试" in GBK, then 20 three-byte characters (60 bytes) */
    const char *gbk = VHEAD "1,30.6,114.3,\xB2\xE2\xCA\xD4,0,walk,always,1,online\n";
    expect_error(gbk, PD_CSV_VOLUNTEERS, PD_ERR_UNKNOWN_SKILL, 2, 3, "unknown skill \'\?\?\?\?\'");
    char text[512];
    snprintf(text, sizeof text, "%s1,30.6,114.3,%s,0,walk,always,1,online\n", VHEAD,
             "\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B"
             "\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B"
             "\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B\xE6\xB5\x8B");
    pd_csv_reader_t *r = open_mem(text, PD_CSV_VOLUNTEERS);
    pd_volunteer_t v;
    bool got;
    cr_expect_eq(pd_csv_read_volunteer(r, &v, &got), PD_ERR_UNKNOWN_SKILL);
    const char *msg = pd_csv_reader_get_error(r)->message;
    cr_expect(valid_utf8(msg), "%s", msg);
    cr_expect(strstr(msg, "\xE6\xB5\x8B...'") != NULL, "%s", msg);
    pd_csv_reader_close(r);
    /* A header in GBK, and a file name that is not UTF-8. */
    pd_csv_error_t err;
    const char *head = "\xB1\xE0\xBA\xC5,lat\n";
    cr_expect_eq(
        pd_csv_reader_open_mem(head, strlen(head), PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err),
        PD_ERR_CORRUPT);
    cr_expect(valid_utf8(err.message), "%s", err.message);
    cr_expect(strstr(err.message, "found \'\?\?\?\?,lat\'") != NULL, "%s", err.message);
    cr_expect_eq(pd_csv_reader_open("/nonexistent/\xB2\xE2.csv", PD_CSV_VOLUNTEERS, names(),
                                    N_NAMES, &r, &err),
                 PD_ERR_IO);
    cr_expect(valid_utf8(err.message), "%s", err.message);
}

/* With a step, one read call passes over at most that many bytes of blank
 * lines or of an over-long line before it returns (paused), and reading on
 * gives exactly what an unbounded reader gives: the same records, the
 * over-long line reported once with its line number. */
static void read_with_step(const char *text, size_t len, bool from_file, size_t step, int *pauses,
                           int *records, size_t *too_large_line) {
    pd_csv_reader_t *r;
    pd_csv_error_t err;
    char path[64];
    if (from_file) {
        temp_path(path, sizeof path);
        write_file(path, text, len);
        cr_assert_eq(pd_csv_reader_open(path, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err), PD_OK,
                     "%s", err.message);
    } else {
        cr_assert_eq(
            pd_csv_reader_open_mem(text, len, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err), PD_OK,
            "%s", err.message);
    }
    pd_csv_reader_set_step(r, step);
    *pauses = *records = 0;
    *too_large_line = 0;
    for (int calls = 0;; calls++) {
        cr_assert_lt(calls, 100000);
        pd_volunteer_t v;
        bool got;
        pd_err e = pd_csv_read_volunteer(r, &v, &got);
        if (e == PD_ERR_TOO_LARGE) {
            cr_expect_eq(*too_large_line, 0, "reported twice");
            *too_large_line = pd_csv_reader_get_error(r)->line;
            continue;
        }
        cr_assert_eq(e, PD_OK, "%s", pd_csv_reader_get_error(r)->message);
        if (got) {
            cr_expect_eq(v.id, (uint64_t)*records + 1);
            ++*records;
        } else if (pd_csv_reader_paused(r)) {
            ++*pauses;
        } else {
            break;
        }
    }
    pd_csv_reader_close(r);
    if (from_file) unlink(path);
}

Test(csv, step_bounds_the_work_of_one_read) {
    /* header, 1, 1 MB of blank lines, 2, a 1 MB line, 3 */
    size_t big = 1 << 20, cap = 3 * big;
    char *text = malloc(cap);
    size_t n = (size_t)sprintf(text, "%s1,30.6,114.3,,0,walk,always,1,online\n", VHEAD);
    memset(text + n, '\n', big);
    n += big;
    n += (size_t)sprintf(text + n, "2,30.6,114.3,,0,walk,always,1,online\n");
    memset(text + n, '9', big);
    n += big;
    n += (size_t)sprintf(text + n, "\n3,30.6,114.3,,0,walk,always,1,online\n");
    for (int file = 0; file < 2; file++) {
        int pauses, records;
        size_t too_large;
        read_with_step(text, n, file, 64 * 1024, &pauses, &records, &too_large);
        cr_expect_eq(records, 3, "file %d", file);
        cr_expect_eq(too_large, 2 + big + 2, "file %d", file);
        /* 1 MB of blank lines, and from a file 1 MB of long line, 64 KiB
         * a call (in memory the long line's end is found at once) */
        int parts = file ? 2 : 1;
        cr_expect_geq(pauses, parts * 15, "file %d: %d pauses", file, pauses);
        cr_expect_leq(pauses, parts * 17, "file %d: %d pauses", file, pauses);
        /* No step: no pause, the same result. */
        read_with_step(text, n, file, 0, &pauses, &records, &too_large);
        cr_expect_eq(pauses, 0);
        cr_expect_eq(records, 3);
        cr_expect_eq(too_large, 2 + big + 2);
    }
    free(text);
}

/* Random garbage and random corruption of good files: the reader must
 * never crash or hang, and every error must carry a line and a message. */
Test(csv, garbage_never_crashes) {
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    char good[4096];
    int gn = snprintf(good, sizeof good, "%s%s%s%s", VHEAD, GOOD_V,
                      "2,-1.5,2.25,sanitation|civility,5,car,0:1-2;6:20-24,3,offline\n", GOOD_V);
    char buf[4096];
    const char alphabet[] = "0123456789,.-|:;\n\r aZ\xff";
    for (int round = 0; round < 3000; round++) {
        size_t n;
        if (round % 2) {
            memcpy(buf, good, (size_t)gn);
            n = (size_t)gn;
            for (int k = 0; k < 1 + round % 7; k++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                size_t at =
                    strlen(VHEAD) + (size_t)((s >> 33) % (uint64_t)(gn - (int)strlen(VHEAD)));
                buf[at] = alphabet[(s >> 20) % (sizeof alphabet - 1)];
            }
        } else {
            n = (size_t)sprintf(buf, "%s", VHEAD);
            size_t extra = (size_t)(round % 400);
            for (size_t k = 0; k < extra; k++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                buf[n++] = alphabet[(s >> 33) % (sizeof alphabet - 1)];
            }
        }
        pd_csv_reader_t *r;
        pd_csv_error_t err;
        if (pd_csv_reader_open_mem(buf, n, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err) != PD_OK)
            continue;
        for (int guard = 0; guard < 1000; guard++) {
            pd_volunteer_t v;
            bool got;
            pd_err e = pd_csv_read_volunteer(r, &v, &got);
            if (e) {
                const pd_csv_error_t *ee = pd_csv_reader_get_error(r);
                cr_assert_gt(ee->line, 1);
                cr_assert_gt(strlen(ee->message), 10);
                continue;
            }
            if (!got) break;
            cr_assert_eq(pd_volunteer_check(&v), PD_OK);
            cr_assert_eq(v.skills >> N_NAMES, 0);
        }
        pd_csv_reader_close(r);
    }
}

/* ------------------------------------------------------- the sample county */

static char *sample_path(const char *file) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert_not_null(src, "PD_SOURCE_DIR is not set");
    char *p = malloc(strlen(src) + strlen(file) + 32);
    sprintf(p, "%s/data/sample/%s", src, file);
    return p;
}

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

Test(csv, sample_county_parses) {
    char *vp = sample_path("county-volunteers.csv"), *op = sample_path("county-orders.csv");
    pd_csv_reader_t *r;
    pd_csv_error_t err;
    cr_assert_eq(pd_csv_reader_open(vp, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err), PD_OK, "%s",
                 err.message);
    pd_volunteer_t v;
    bool got;
    uint64_t n = 0;
    pd_err e;
    while ((e = pd_csv_read_volunteer(r, &v, &got)) == PD_OK && got) cr_assert_eq(v.id, ++n);
    cr_expect_eq(e, PD_OK, "%s", pd_csv_reader_get_error(r)->message);
    cr_expect_eq(n, 5000);
    pd_csv_reader_close(r);

    cr_assert_eq(pd_csv_reader_open(op, PD_CSV_ORDERS, names(), N_NAMES, &r, &err), PD_OK, "%s",
                 err.message);
    pd_gen_order_t o;
    n = 0;
    int64_t first = 0, last = 0;
    while ((e = pd_csv_read_order(r, &o, &got)) == PD_OK && got) {
        cr_assert_eq(o.id, ++n);
        if (n == 1) first = o.created_ms;
        last = o.created_ms;
    }
    cr_expect_eq(e, PD_OK, "%s", pd_csv_reader_get_error(r)->message);
    cr_expect_eq(n, 2000);
    cr_expect_gt(last - first, 6 * 86400000LL, "orders span 7 days");
    pd_csv_reader_close(r);
    free(vp);
    free(op);
}

/* The sample is exactly what the command in docs/data.md makes:
 *   paidan-gen --seed 20240304 --volunteers 5000 --orders 2000 --days 7 ...
 * If the generator's model changes, regenerate the sample. */
Test(csv, sample_county_matches_the_generator) {
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cfg.seed = 20240304;
    cfg.volunteers = 5000;
    cfg.orders = 2000;
    cfg.days = 7;
    pd_gen_t *g;
    cr_assert_eq(pd_gen_create(&cfg, &g), PD_OK);
    const char *files[2] = {"county-volunteers.csv", "county-orders.csv"};
    for (int k = 0; k < 2; k++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        pd_csv_writer_t *w;
        cr_assert_eq(
            pd_csv_writer_open_fp(fp, k ? PD_CSV_ORDERS : PD_CSV_VOLUNTEERS, names(), N_NAMES, &w),
            PD_OK);
        if (k == 0) {
            pd_volunteer_t v;
            while (pd_gen_next_volunteer(g, &v)) cr_assert_eq(pd_csv_write_volunteer(w, &v), PD_OK);
        } else {
            pd_gen_order_t o;
            while (pd_gen_next_order(g, &o)) cr_assert_eq(pd_csv_write_order(w, &o), PD_OK);
        }
        cr_assert_eq(pd_csv_writer_close(w), PD_OK);
        fclose(fp);
        char *path = sample_path(files[k]);
        size_t flen;
        char *file = slurp(path, &flen);
        cr_expect(flen == len && memcmp(file, buf, len) == 0,
                  "%s differs from the generator's output: regenerate it (docs/data.md)", path);
        cr_expect_lt(flen, 1000000, "%s should stay under 1 MB", path);
        free(file);
        free(path);
        free(buf);
    }
    pd_gen_destroy(g);
}

/* ------------------------------------------------------------------ OOM */

Test(csv, open_fails_cleanly_on_every_allocation) {
    char path[64], out[64];
    temp_path(path, sizeof path);
    temp_path(out, sizeof out);
    write_file(path, VHEAD GOOD_V, strlen(VHEAD GOOD_V));
    int opened_reader = 0, opened_writer = 0;
    for (long n = 0; n < 10; n++) {
        pd_csv_reader_t *r = NULL;
        pd_csv_error_t err;
        pd_alloc_fail_after(n);
        pd_err e = pd_csv_reader_open(path, PD_CSV_VOLUNTEERS, names(), N_NAMES, &r, &err);
        pd_alloc_fail_after(-1);
        if (e == PD_OK) {
            opened_reader++;
            pd_csv_reader_close(r);
        } else {
            cr_expect_eq(e, PD_ERR_NOMEM);
            cr_expect_eq(err.code, PD_ERR_NOMEM);
            cr_expect_null(r);
        }
        pd_csv_writer_t *w = NULL;
        pd_alloc_fail_after(n);
        e = pd_csv_writer_open(out, PD_CSV_ORDERS, names(), N_NAMES, &w);
        pd_alloc_fail_after(-1);
        if (e == PD_OK) {
            opened_writer++;
            cr_expect_eq(pd_csv_writer_close(w), PD_OK);
        } else {
            cr_expect_eq(e, PD_ERR_NOMEM);
            cr_expect_null(w);
        }
    }
    cr_expect_eq(opened_reader, 8, "the reader makes two allocations");
    cr_expect_eq(opened_writer, 8, "the writer makes two allocations");
    unlink(path);
    unlink(out);
}
