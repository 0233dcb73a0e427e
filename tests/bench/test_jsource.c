/* test_jsource.c -- replay's journal source on a journal written here by
 * hand: upserts and orders as the server journals them (MessagePack
 * [method, params] and the binary import records), plus records it must
 * skip; then a replay from that directory gives the same figures twice. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsource.h"
#include "paidan/alloc.h"
#include "paidan/journal.h"
#include "replay.h"

static const char *const names[] = {"theory-policy", "culture-arts", "tutoring"};

static void append_cmd(pd_journal_t *j, int64_t ts, const char *method, const char *json_like,
                       void (*pack_params)(msgpack_packer *pk)) {
    (void)json_like;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    pack_params(&pk);
    cr_assert_eq(pd_journal_append(j, PD_JREC_COMMAND, ts, sb.data, sb.size, NULL), PD_OK);
    msgpack_sbuffer_destroy(&sb);
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void kv_num(msgpack_packer *pk, const char *k, double v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_double(pk, v);
}

static int vol_id;
static void pack_vol(msgpack_packer *pk) {
    msgpack_pack_map(pk, 6);
    kv_num(pk, "id", vol_id);
    kv_num(pk, "lat", 30.6 + vol_id * 0.001);
    kv_num(pk, "lon", 114.3);
    msgpack_pack_str_with_body(pk, "skills", 6);
    msgpack_pack_array(pk, 1);
    msgpack_pack_str_with_body(pk, "tutoring", 8);
    kv_str(pk, "mode", "bike");
    msgpack_pack_str_with_body(pk, "schedule", 8);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 5);
    msgpack_pack_int(pk, 8);
    msgpack_pack_int(pk, 20);
}

/* Order ids above 2^53, as a load run's are: read through a double they
 * would round together. */
#define BIG_ID (((uint64_t)1 << 60) + 1)

static int order_id;
static void pack_order(msgpack_packer *pk) {
    msgpack_pack_map(pk, 7);
    msgpack_pack_str_with_body(pk, "id", 2);
    msgpack_pack_uint64(pk, BIG_ID + (uint64_t)order_id);
    kv_num(pk, "lat", 30.605);
    kv_num(pk, "lon", 114.301);
    kv_str(pk, "skills", "tutoring");
    kv_num(pk, "start", 1709949600000.0); /* Saturday 2024-03-09 10:00 +08:00 */
    kv_num(pk, "duration_min", 60);
    kv_str(pk, "priority", order_id % 2 ? "elevated" : "normal");
}

static void pack_bad_order(msgpack_packer *pk) { /* unknown skill: skipped */
    msgpack_pack_map(pk, 4);
    kv_num(pk, "id", 999);
    kv_num(pk, "lat", 30.6);
    kv_num(pk, "lon", 114.3);
    kv_str(pk, "skills", "juggling");
}

static void pack_accept(msgpack_packer *pk) { /* ignored: the model answers */
    msgpack_pack_map(pk, 2);
    kv_num(pk, "id", 1);
    kv_num(pk, "volunteer", 1);
}

static char dir[256];

/* A fresh directory /tmp/pd-jsource-<name>-<pid> in dir, holding one new
 * journal segment from seq 1. */
static pd_journal_t *new_journal(const char *name) {
    snprintf(dir, sizeof dir, "/tmp/pd-jsource-%s-%d", name, (int)getpid());
    char cmd[1024], path[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/journal-%020d.pdj", dir, 1);
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(path, PD_FSYNC_NO, 1, &j), PD_OK);
    return j;
}

static void write_journal(void) {
    pd_journal_t *j = new_journal("mixed");
    int64_t ts = 1709863200000LL; /* Friday 2024-03-08 10:00 +08:00 */
    for (vol_id = 1; vol_id <= 20; vol_id++) append_cmd(j, ts, "volunteer.upsert", "", pack_vol);
    /* an imported volunteer: the binary layout of api/persist.c */
    uint8_t b[59] = {0};
    b[0] = 21;
    int32_t lat = 30604000, lon = 114300000;
    memcpy(b + 8, &lat, 4);
    memcpy(b + 12, &lon, 4);
    b[16] = 4; /* tutoring */
    memset(b + 32, 0xff, 16);
    b[48] = 0xff; /* hours 128..135 */
    b[56] = PD_MODE_WALK;
    b[57] = PD_STATUS_ONLINE;
    b[58] = 1;
    cr_assert_eq(pd_journal_append(j, PD_JREC_VOLUNTEER, ts, b, sizeof b, NULL), PD_OK);
    for (order_id = 1; order_id <= 30; order_id++)
        append_cmd(j, ts + order_id * 60000, "order.create", "", pack_order);
    append_cmd(j, ts + 31 * 60000, "order.create", "", pack_bad_order);
    append_cmd(j, ts + 32 * 60000, "order.accept", "", pack_accept);
    uint8_t junk[3] = {0xc1, 0xc1, 0xc1}; /* not MessagePack */
    cr_assert_eq(pd_journal_append(j, PD_JREC_COMMAND, ts, junk, sizeof junk, NULL), PD_OK);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);
}

static void remove_dir(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A day in which volunteers come, go offline and leave between orders. */
static uint64_t ev_id;
static const char *ev_status;
static void pack_vol_at_centre(msgpack_packer *pk) {
    msgpack_pack_map(pk, 5);
    kv_num(pk, "id", (double)ev_id);
    kv_num(pk, "lat", 30.6);
    kv_num(pk, "lon", 114.3);
    kv_str(pk, "skills", "tutoring");
    kv_str(pk, "mode", "bike");
}
static void pack_status(msgpack_packer *pk) {
    msgpack_pack_map(pk, 2);
    kv_num(pk, "id", (double)ev_id);
    kv_str(pk, "status", ev_status);
}
static void pack_bad_update(msgpack_packer *pk) { /* no such mode: skipped */
    msgpack_pack_map(pk, 2);
    kv_num(pk, "id", (double)ev_id);
    kv_str(pk, "mode", "rocket");
}
static void pack_id(msgpack_packer *pk) {
    msgpack_pack_map(pk, 1);
    kv_num(pk, "id", (double)ev_id);
}
static void pack_near_order(msgpack_packer *pk) {
    msgpack_pack_map(pk, 6);
    kv_num(pk, "id", (double)ev_id);
    kv_num(pk, "lat", 30.601);
    kv_num(pk, "lon", 114.3);
    kv_str(pk, "skills", "tutoring");
    kv_num(pk, "duration_min", 30);
    msgpack_pack_str_with_body(pk, "ignore_schedule", 15);
    msgpack_pack_true(pk);
}

static void write_day(void) {
    pd_journal_t *j = new_journal("day");
    const int64_t t0 = 1709863200000LL, H = 3600000LL;
    ev_id = 100; /* before anyone has joined */
    append_cmd(j, t0, "order.create", "", pack_near_order);
    ev_id = 8;
    append_cmd(j, t0 + H, "volunteer.upsert", "", pack_vol_at_centre);
    ev_id = 101; /* volunteer 8 is there */
    append_cmd(j, t0 + H + 60000, "order.create", "", pack_near_order);
    ev_id = 8;
    ev_status = "offline";
    append_cmd(j, t0 + 3 * H, "volunteer.update", "", pack_status);
    append_cmd(j, t0 + 3 * H, "volunteer.update", "", pack_bad_update);
    ev_id = 102; /* volunteer 8 is offline */
    append_cmd(j, t0 + 4 * H, "order.create", "", pack_near_order);
    ev_id = 9;
    append_cmd(j, t0 + 5 * H, "volunteer.upsert", "", pack_vol_at_centre);
    ev_id = 103; /* volunteer 9 is there */
    append_cmd(j, t0 + 5 * H + 60000, "order.create", "", pack_near_order);
    ev_id = 9;
    append_cmd(j, t0 + 8 * H, "volunteer.remove", "", pack_id);
    ev_id = 104; /* 9 left, 8 offline */
    append_cmd(j, t0 + 9 * H, "order.create", "", pack_near_order);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);
}

/* The journal's volunteer events happen at their times: an order created
 * before anyone joined, while the only volunteer was offline, or after the
 * other had left finds nobody; the two in between find someone. */
Test(jsource, volunteers_come_and_go_at_their_times) {
    write_day();
    pd__jsource_t js;
    char why[256] = "";
    cr_assert_eq(pd__jsource_load(dir, names, 3, &js, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(js.nv, 0, "no snapshot: nobody is there from the start");
    cr_assert_eq(js.nvev, 4);
    cr_assert_eq(js.skipped, 1, "the update naming no mode");
    cr_assert_eq(js.vev[0].kind, PD__JV_UPSERT);
    cr_assert_eq(js.vev[1].kind, PD__JV_UPDATE);
    cr_assert_eq(js.vev[1].patch.fields, PD_VF_STATUS);
    cr_assert_eq(js.vev[1].patch.status, PD_STATUS_OFFLINE);
    cr_assert_eq(js.vev[3].kind, PD__JV_REMOVE);
    cr_assert_eq(js.vev[3].v.id, 9);
    pd__jsource_free(&js);

    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.journal_dir = dir;
    o.policies[0] = PD_POLICY_NEAREST;
    o.n_policies = 1;
    pd__replay_result_t r;
    cr_assert_eq(pd__replay_run(&o, &r, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(r.kpi.orders, 5);
    cr_assert_eq(r.volunteer_events, 4);
    cr_assert_eq(r.volunteer_events_refused, 0);
    cr_assert_eq(r.volunteers, 0, "nobody when the first order came");
    cr_assert_eq(r.kpi.expired[PD_REASON_NO_CANDIDATE], 3, "orders 100, 102 and 104 find nobody");
    cr_assert_eq(r.kpi.rejected, 0);
    pd__replay_result_deinit(&r);
    remove_dir();
}

Test(jsource, reads_upserts_orders_and_skips_the_rest) {
    write_journal();
    pd__jsource_t js;
    char why[256] = "";
    cr_assert_eq(pd__jsource_load(dir, names, 3, &js, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(js.nv, 0); /* no snapshot */
    cr_assert_eq(js.nvev, 21);
    cr_assert_eq(js.no, 30);
    cr_assert_eq(js.skipped, 2); /* the unknown skill and the junk */
    cr_assert_eq(js.vev[0].v.id, 1);
    cr_assert_eq(js.vev[0].v.skills, 4);
    cr_assert_eq(js.vev[0].v.mode, PD_MODE_BIKE);
    pd_week_t need;
    cr_assert_eq(pd_week_window((5 * 24 + 9) * 60, 60, &need), PD_OK); /* Sat 9:00 */
    cr_assert(pd_week_covers(&js.vev[0].v.week, &need));
    cr_assert_eq(js.vev[20].v.id, 21);
    cr_assert_eq(js.vev[20].v.pos.lat, 30604000);
    for (size_t i = 0; i < js.no; i++)
        cr_assert_eq(js.ords[i].g.id, BIG_ID + 1 + i, "order %zu: id %" PRIu64, i, js.ords[i].g.id);
    cr_assert_eq(js.ords[0].g.created_ms, 1709863200000LL + 60000);
    cr_assert_eq(js.ords[0].g.priority, PD_GEN_PRIORITY_ELEVATED);
    cr_assert_eq(js.ords[29].g.duration_min, 60);
    pd__jsource_free(&js);

    pd__jsource_t none;
    cr_assert_eq(pd__jsource_load("/nonexistent-paidan-dir", names, 3, &none, why, sizeof why),
                 PD_ERR_NOT_FOUND);
    pd__jsource_free(&none);
    remove_dir();
}

Test(jsource, replay_from_a_journal_is_deterministic) {
    write_journal();
    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.journal_dir = dir;
    o.policies[0] = PD_POLICY_NEAREST;
    o.policies[1] = PD_POLICY_BALANCED;
    o.n_policies = 2;
    pd__replay_result_t a[2], b[2];
    char why[256] = "";
    cr_assert_eq(pd__replay_run(&o, a, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(pd__replay_run(&o, b, why, sizeof why), PD_OK, "%s", why);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(a[i].digest, b[i].digest);
        cr_assert_eq(a[i].volunteers, 21);
        pd__replay_result_deinit(&a[i]);
        pd__replay_result_deinit(&b[i]);
    }
    remove_dir();
}

/* ================================ what the server read, read the same */

static void kv_int(msgpack_packer *pk, const char *k, int64_t v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_int64(pk, v);
}
static void key(msgpack_packer *pk, const char *k) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
}
static void pack_never_available(msgpack_packer *pk) { /* schedule []: never */
    key(pk, "schedule");
    msgpack_pack_array(pk, 0);
}
static void pack_offline_by_number(msgpack_packer *pk) {
    msgpack_pack_map(pk, 7);
    kv_num(pk, "id", 1);
    kv_num(pk, "lat", 30.6);
    kv_num(pk, "lon", 114.3);
    kv_str(pk, "skills", "tutoring");
    kv_int(pk, "status", 2); /* offline, by its integer value */
    kv_int(pk, "mode", 3);   /* car */
    pack_never_available(pk);
}
static void pack_vol_skill(msgpack_packer *pk) {
    msgpack_pack_map(pk, 5);
    kv_num(pk, "id", (double)ev_id);
    kv_num(pk, "lat", 30.6);
    kv_num(pk, "lon", 114.3);
    kv_str(pk, "skills", ev_status);
    pack_never_available(pk);
}
/* An order at 30.601,114.3 (111 m from the volunteers: some 90 s by bike,
 * 116 s on foot) that ignores schedules; which = what else it asks. */
static int which;
static void pack_order_with(msgpack_packer *pk) {
    msgpack_pack_map(pk, which && which != 3 ? 7 : 6);
    kv_num(pk, "id", (double)ev_id);
    kv_num(pk, "lat", 30.601);
    kv_num(pk, "lon", 114.3);
    if (which == 3) {
        key(pk, "slots"); /* one tutor and one theory-policy volunteer */
        msgpack_pack_array(pk, 2);
        msgpack_pack_map(pk, 1);
        kv_str(pk, "skills", "tutoring");
        msgpack_pack_map(pk, 1);
        kv_str(pk, "skills", "theory-policy");
    } else {
        kv_str(pk, "skills", "tutoring");
    }
    kv_int(pk, "duration_min", 30);
    key(pk, "ignore_schedule");
    msgpack_pack_true(pk);
    if (which == 1) { /* a tag nobody has */
        key(pk, "tags");
        msgpack_pack_array(pk, 1);
        msgpack_pack_int(pk, 3);
    } else if (which == 2) { /* a 30-second budget: nobody is that close */
        kv_num(pk, "minutes", 0.5);
    } else if (which == 4) {
        kv_int(pk, "priority", 2); /* emergency, by its integer value */
    }
}

/* The journal holds params as the server took them, and the replay reads
 * them the same way: enums by their integer values (a volunteer upserted
 * with "status": 2 used to replay online), and an order's tags,
 * ignore_schedule, fractional budget and team slots (they used to be
 * dropped, or the order skipped, or the slots' skills merged into one
 * set every volunteer needed). Everyone accepts at once here. */
Test(jsource, orders_and_volunteers_as_the_server_read_them) {
    pd_journal_t *j = new_journal("params");
    const int64_t t0 = 1709863200000LL, M = 60000;
    append_cmd(j, t0, "volunteer.upsert", "", pack_offline_by_number);
    ev_id = 100, which = 0; /* only volunteer 1, offline: nobody */
    append_cmd(j, t0 + M, "order.create", "", pack_order_with);
    ev_id = 2, ev_status = "tutoring";
    append_cmd(j, t0 + 2 * M, "volunteer.upsert", "", pack_vol_skill);
    ev_id = 3, ev_status = "theory-policy";
    append_cmd(j, t0 + 2 * M, "volunteer.upsert", "", pack_vol_skill);
    ev_id = 101, which = 1; /* the tag: nobody */
    append_cmd(j, t0 + 3 * M, "order.create", "", pack_order_with);
    ev_id = 102, which = 2; /* 30 s: nobody */
    append_cmd(j, t0 + 4 * M, "order.create", "", pack_order_with);
    ev_id = 103, which = 3; /* the team: volunteers 2 and 3 */
    append_cmd(j, t0 + 5 * M, "order.create", "", pack_order_with);
    ev_id = 104, which = 4; /* later, volunteer 2 again */
    append_cmd(j, t0 + 300 * M, "order.create", "", pack_order_with);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);

    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.journal_dir = dir;
    o.policies[0] = PD_POLICY_NEAREST;
    o.n_policies = 1;
    o.model.accept_base = 1;
    o.model.accept_per_km = 0;
    o.model.accept_per_hour = 0;
    o.model.no_answer = 0;
    pd__replay_result_t r;
    char why[256] = "";
    cr_assert_eq(pd__replay_run(&o, &r, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(r.input_skipped, 0, "every record parses");
    cr_assert_eq(r.kpi.orders, 5);
    cr_assert_eq(r.kpi.rejected, 0);
    cr_assert_eq(r.kpi.expired[PD_REASON_NO_CANDIDATE], 3, "orders 100, 101, 102 find nobody");
    cr_assert_eq(r.kpi.filled, 2, "the team and the last order");
    cr_assert_eq(r.kpi.completed, 2);
    cr_assert(r.kpi.hours_total == 1.5, "two volunteers 30 min, one 30 min: %f", r.kpi.hours_total);
    pd__replay_result_deinit(&r);
    remove_dir();
}

/* ========================================== a history with a hole in it */

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0xff, f);
    cr_assert_eq(fclose(f), 0);
}

/* The server refuses to start on a journal corrupt in the middle, or with
 * a gap between segments; the replay used to read on past the hole (or
 * stop at it) without a word and report figures of another history. A
 * torn tail of the last segment -- a crash, or a server still writing --
 * is read up to its last whole record, as the server does. */
Test(jsource, a_hole_in_the_journal_is_an_error) {
    write_journal();
    char seg[512], why[512] = "";
    snprintf(seg, sizeof seg, "%s/journal-%020d.pdj", dir, 1);
    struct stat st;
    cr_assert_eq(stat(seg, &st), 0);
    pd__jsource_t js;

    /* a torn tail: fine, the last order is gone */
    cr_assert_eq(truncate(seg, st.st_size - 2), 0);
    cr_assert_eq(pd__jsource_load(dir, names, 3, &js, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(js.no, 30, "the orders come before the torn record");
    pd__jsource_free(&js);

    /* a flipped byte in the middle: an error naming the file and offset */
    flip_byte(seg, 200);
    cr_assert_eq(pd__jsource_load(dir, names, 3, &js, why, sizeof why), PD_ERR_CORRUPT);
    cr_assert(strstr(why, "journal-00000000000000000001.pdj is corrupt at offset"), "%s", why);
    pd__jsource_free(&js);
    flip_byte(seg, 200);

    /* a gap: the next segment starts past the records there are */
    write_journal();
    char seg2[512];
    snprintf(seg2, sizeof seg2, "%s/journal-%020d.pdj", dir, 500);
    pd_journal_t *j = NULL;
    cr_assert_eq(pd_journal_create(seg2, PD_FSYNC_NO, 500, &j), PD_OK);
    ev_id = 900, which = 0;
    append_cmd(j, 1709863200000LL, "order.create", "", pack_order_with);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);
    cr_assert_eq(pd__jsource_load(dir, names, 3, &js, why, sizeof why), PD_ERR_CORRUPT);
    cr_assert(strstr(why, "journal gap before"), "%s", why);
    pd__jsource_free(&js);

    /* a missing directory says so */
    cr_assert_eq(pd__jsource_load("/nonexistent-paidan-dir", names, 3, &js, why, sizeof why),
                 PD_ERR_NOT_FOUND);
    cr_assert(strstr(why, "No such file or directory"), "%s", why);
    pd__jsource_free(&js);
    remove_dir();
}

/* Imported records carry skill bits of the server's configuration, which
 * need not be the replay's: the journal's configuration record maps them
 * by name, and a skill the replay does not know skips the record. */
static void append_import(pd_journal_t *j, uint64_t id, uint64_t skills) {
    pd_volunteer_t v;
    memset(&v, 0, sizeof v);
    v.id = id;
    v.pos.lat = 30600000;
    v.pos.lon = 114300000;
    v.skills = skills;
    v.mode = PD_MODE_BIKE;
    v.status = PD_STATUS_ONLINE;
    v.capacity = 1;
    v.week = pd_week_all();
    uint8_t b[PD_JREC_VOLUNTEER_BYTES];
    pd_jrec_volunteer_encode(&v, b);
    cr_assert_eq(pd_journal_append(j, PD_JREC_VOLUNTEER, 1709863200000LL, b, sizeof b, NULL),
                 PD_OK);
}

Test(jsource, skill_bits_of_the_servers_configuration_map_by_name) {
    pd_journal_t *j = new_journal("skills");
    append_import(j, 1, 1ULL << 1); /* before any configuration: bits as they are */
    pd_engine_config_t cfg;
    pd_engine_config_init(&cfg);
    cfg.n_skills = 3;
    memset(cfg.skills, 0, sizeof cfg.skills);
    strcpy(cfg.skills[0], "zeta");
    strcpy(cfg.skills[1], "tutoring");
    strcpy(cfg.skills[2], "theory-policy");
    uint8_t *enc = NULL;
    size_t len = 0;
    cr_assert_eq(pd_engine_config_encode(&cfg, &enc, &len), PD_OK);
    cr_assert_eq(pd_journal_append(j, PD_JREC_CONFIG, 1709863200000LL, enc, len, NULL), PD_OK);
    pd_free(enc);
    append_import(j, 2, 1ULL << 1);                 /* tutoring: bit 2 here */
    append_import(j, 3, 1ULL << 0);                 /* zeta: unknown here, skipped */
    append_import(j, 4, (1ULL << 1) | (1ULL << 2)); /* tutoring + theory-policy */
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);

    pd__jsource_t js;
    char why[256] = "";
    cr_assert_eq(pd__jsource_load(dir, names, 3, &js, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(js.nvev, 3);
    cr_assert_eq(js.skipped, 1);
    cr_assert_eq(js.vev[0].v.id, 1);
    cr_assert_eq(js.vev[0].v.skills, 1ULL << 1);
    cr_assert_eq(js.vev[1].v.id, 2);
    cr_assert_eq(js.vev[1].v.skills, 1ULL << 2);
    cr_assert_eq(js.vev[2].v.id, 4);
    cr_assert_eq(js.vev[2].v.skills, (1ULL << 2) | 1ULL);
    pd__jsource_free(&js);
    remove_dir();
}

/* The server takes an order id again once its order was purged: in a
 * journal a repeated id is a new order, replayed under a fresh id, not a
 * duplicate to skip. */
Test(jsource, an_id_taken_again_after_a_purge_is_a_new_order) {
    pd_journal_t *j = new_journal("reuse");
    int64_t ts = 1709863200000LL;
    for (vol_id = 1; vol_id <= 20; vol_id++) append_cmd(j, ts, "volunteer.upsert", "", pack_vol);
    for (int round = 0; round < 2; round++)
        for (order_id = 1; order_id <= 10; order_id++)
            append_cmd(j, ts + (round * 10 + order_id) * 60000, "order.create", "", pack_order);
    cr_assert_eq(pd_journal_commit(j), PD_OK);
    cr_assert_eq(pd_journal_close(j), PD_OK);
    pd__replay_opts_t o;
    pd__replay_opts_init(&o);
    o.journal_dir = dir;
    pd__replay_result_t r;
    char why[256] = "";
    cr_assert_eq(pd__replay_run(&o, &r, why, sizeof why), PD_OK, "%s", why);
    cr_assert_eq(r.duplicates, 0);
    cr_assert_eq(r.kpi.orders, 20);
    pd__replay_result_deinit(&r);
    remove_dir();
}
