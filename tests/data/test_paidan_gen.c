/* test_paidan_gen.c -- the paidan-gen command: its output is exactly the
 * library's, files and stdout go where the options say, progress lines
 * appear, and bad usage exits with status 2 and a message. The binary is
 * run as a real process (PD_GEN_EXE is set by tests/data/CMakeLists.txt). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "paidan/data.h"

/* Run paidan-gen with `args` through the shell; stdout into *out (caller
 * frees), stderr into *err (caller frees) if err is not NULL. Returns the
 * exit status. */
static int run(const char *args, char **out, size_t *out_len, char **err) {
    char err_path[] = "/tmp/pd_test_gen_err_XXXXXX";
    int fd = mkstemp(err_path);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", PD_GEN_EXE, args, err_path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, p)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    int status = pclose(p);
    buf[n] = 0;
    if (out) {
        *out = buf;
        if (out_len) *out_len = n;
    } else {
        free(buf);
    }
    if (err) {
        FILE *ef = fopen(err_path, "rb");
        cr_assert_not_null(ef);
        char *e = calloc(1, 1 << 14);
        size_t en = fread(e, 1, (1 << 14) - 1, ef);
        e[en] = 0;
        fclose(ef);
        *err = e;
    }
    unlink(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* What the library writes for a config, one format. */
static char *library_bytes(const pd_gen_config_t *cfg, pd_csv_kind kind, size_t *len) {
    char *buf = NULL;
    FILE *fp = open_memstream(&buf, len);
    pd_gen_t *g;
    cr_assert_eq(pd_gen_create(cfg, &g), PD_OK);
    pd_csv_writer_t *w;
    cr_assert_eq(pd_csv_writer_open_fp(fp, kind, pd_gen_skill_names(NULL),
                                       pd_gen_config_skill_count(cfg), &w),
                 PD_OK);
    if (kind == PD_CSV_VOLUNTEERS) {
        pd_volunteer_t v;
        while (pd_gen_next_volunteer(g, &v)) cr_assert_eq(pd_csv_write_volunteer(w, &v), PD_OK);
    } else {
        pd_gen_order_t o;
        while (pd_gen_next_order(g, &o)) cr_assert_eq(pd_csv_write_order(w, &o), PD_OK);
    }
    cr_assert_eq(pd_csv_writer_close(w), PD_OK);
    pd_gen_destroy(g);
    fclose(fp);
    return buf;
}

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = 0;
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

Test(paidan_gen, help_and_version) {
    char *out;
    cr_expect_eq(run("--help", &out, NULL, NULL), 0);
    cr_expect(strstr(out, "usage: paidan-gen") != NULL);
    cr_expect(strstr(out, "--orders-out FILE") != NULL);
    free(out);
    cr_expect_eq(run("-V", &out, NULL, NULL), 0);
    cr_expect_str_eq(out, "paidan-gen " PD_VERSION "\n");
    free(out);
}

Test(paidan_gen, stdout_is_exactly_the_library_output) {
    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cfg.seed = 5;
    cfg.volunteers = 700;
    cfg.center_lat = -12.5;
    cfg.center_lon = 130.75;
    cfg.size_km = 20;
    cfg.towns = 3;
    cfg.villages = 40;
    cfg.local_skills = 6;
    size_t want_len, got_len;
    char *want = library_bytes(&cfg, PD_CSV_VOLUNTEERS, &want_len);
    char *got;
    cr_assert_eq(run("--seed 5 --volunteers 700 --center -12.5,130.75 --size-km 20 --towns 3 "
                     "--villages 40 --local-skills 6",
                     &got, &got_len, NULL),
                 0);
    cr_expect(got_len == want_len && memcmp(got, want, want_len) == 0, "stdout differs");
    cr_expect(strstr(got, "local-6") != NULL, "a sixth local skill is used");
    free(want);
    free(got);

    /* Orders alone on stdout. */
    pd_gen_config_init(&cfg);
    cfg.seed = 8;
    cfg.orders = 400;
    cfg.days = 3;
    cfg.start_ms = 1700000000000LL;
    cfg.utc_offset_min = -300;
    want = library_bytes(&cfg, PD_CSV_ORDERS, &want_len);
    cr_assert_eq(run("--seed 8 --volunteers 0 --orders 400 --days 3 --start 1700000000000 "
                     "--utc-offset -300",
                     &got, &got_len, NULL),
                 0);
    cr_expect(got_len == want_len && memcmp(got, want, want_len) == 0, "stdout differs");
    free(want);
    free(got);
}

Test(paidan_gen, files_are_exactly_the_library_output) {
    char dir[] = "/tmp/pd_test_gen_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char args[1024], vpath[64], opath[64];
    snprintf(vpath, sizeof vpath, "%s/v.csv", dir);
    snprintf(opath, sizeof opath, "%s/o.csv", dir);
    snprintf(args, sizeof args, "--seed 3 --volunteers 3000 --orders 300 -o '%s' --orders-out '%s'",
             vpath, opath);
    char *out, *err;
    cr_assert_eq(run(args, &out, NULL, &err), 0, "stderr: %s", err);
    cr_expect_str_eq(out, "", "nothing on stdout");
    cr_expect_str_eq(err, "", "no progress below 10^6 records");
    free(out);
    free(err);

    pd_gen_config_t cfg;
    pd_gen_config_init(&cfg);
    cfg.seed = 3;
    cfg.volunteers = 3000;
    cfg.orders = 300;
    const char *paths[2] = {vpath, opath};
    for (int k = 0; k < 2; k++) {
        size_t want_len, got_len;
        char *want = library_bytes(&cfg, k ? PD_CSV_ORDERS : PD_CSV_VOLUNTEERS, &want_len);
        char *file = slurp(paths[k], &got_len);
        cr_expect(got_len == want_len && memcmp(file, want, want_len) == 0, "%s differs", paths[k]);
        free(want);
        free(file);
        unlink(paths[k]);
    }
    /* --orders-out alone means the default 10000 orders. */
    snprintf(args, sizeof args, "--volunteers 0 --orders-out '%s'", opath);
    cr_assert_eq(run(args, NULL, NULL, NULL), 0);
    pd_csv_reader_t *r;
    pd_csv_error_t e;
    cr_assert_eq(pd_csv_reader_open(opath, PD_CSV_ORDERS, pd_gen_skill_names(NULL), 12, &r, &e),
                 PD_OK, "%s", e.message);
    pd_gen_order_t o;
    bool got;
    uint64_t n = 0;
    while (pd_csv_read_order(r, &o, &got) == PD_OK && got) n++;
    cr_expect_eq(n, 10000);
    pd_csv_reader_close(r);
    unlink(opath);
    rmdir(dir);
}

/* One run of 10^6 records: the smallest that shows a progress line (it
 * takes a few seconds under the sanitizers, so there is only one). */
Test(paidan_gen, progress_every_million) {
    char *out, *err;
    cr_assert_eq(run("--volunteers 1000000 -o /dev/null", &out, NULL, &err), 0);
    cr_expect_str_eq(err, "paidan-gen: volunteers 1000000 / 1000000\n");
    cr_expect_str_eq(out, "");
    free(out);
    free(err);
    cr_assert_eq(run("-q --volunteers 10 -o /dev/null", NULL, NULL, &err), 0);
    cr_expect_str_eq(err, "");
    free(err);
}

/* A value out of range is named with its option and that option's range,
 * and no other option is blamed. */
Test(paidan_gen, range_errors_name_the_one_bad_option) {
    static const char *const options[] = {"--size-km", "--towns",        "--villages",  "--days",
                                          "--start",   "--local-skills", "--utc-offset"};
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"--size-km 0", "paidan-gen: bad --size-km '0' (km, 1..1000)\n"},
        {"--size-km 1000.5", "paidan-gen: bad --size-km '1000.5' (km, 1..1000)\n"},
        {"--towns 0", "paidan-gen: bad --towns '0' (1..1000)\n"},
        {"--towns 1001", "paidan-gen: bad --towns '1001' (1..1000)\n"},
        {"--villages 100001", "paidan-gen: bad --villages '100001' (0..100000)\n"},
        {"--local-skills 57", "paidan-gen: bad --local-skills '57' (0..56)\n"},
        {"--days 0", "paidan-gen: bad --days '0' (1..3660)\n"},
        {"--days 3661", "paidan-gen: bad --days '3661' (1..3660)\n"},
        {"--start 253402300800000",
         "paidan-gen: bad --start '253402300800000' (ms since the epoch, 0..253402300799999, "
         "the end of year 9999)\n"},
        {"--utc-offset 841", "paidan-gen: bad --utc-offset '841' (minutes, -720..840)\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = run(cases[i].args, &out, NULL, &err);
        cr_expect_eq(rc, 2, "%s: exit %d", cases[i].args, rc);
        cr_expect(strncmp(err, cases[i].message, strlen(cases[i].message)) == 0, "%s: stderr '%s'",
                  cases[i].args, err);
        for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
            if (strncmp(cases[i].args, options[k], strlen(options[k])) != 0)
                cr_expect(strstr(err, options[k]) == NULL, "%s: also names %s: '%s'", cases[i].args,
                          options[k], err);
        free(out);
        free(err);
    }
    /* The limits themselves are accepted. */
    char *out;
    cr_expect_eq(run("--volunteers 0 --orders 1 --days 1 --start 253402300799999 --size-km 1000 "
                     "--towns 1000 --villages 0 --local-skills 56",
                     &out, NULL, NULL),
                 0);
    cr_expect(strstr(out, "\n1,2534023") != NULL, "%s", out);
    free(out);
}

/* /dev/null (any character device) may take both streams: it is not "the
 * same file" the orders would overwrite the volunteers in. */
Test(paidan_gen, a_character_device_takes_both_streams) {
    char *out, *err;
    cr_expect_eq(
        run("--volunteers 10 --orders 5 -o /dev/null --orders-out /dev/null", &out, NULL, &err), 0,
        "stderr: %s", err);
    cr_expect_str_eq(out, "");
    cr_expect_str_eq(err, "");
    free(out);
    free(err);
}

Test(paidan_gen, usage_errors_exit_2) {
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"--volunteers abc", "bad --volunteers 'abc'"},
        {"--volunteers -5", "bad --volunteers"},
        {"--seed", "needs a value"},
        {"--center 95,0", "latitude -85..85"},
        {"--center 30.6", "bad --center"},
        {"--size-km 0", "bad --size-km '0' (km, 1..1000)"},
        {"--local-skills 57", "bad --local-skills '57' (0..56)"},
        {"--days 0", "bad --days '0' (1..3660)"},
        {"--utc-offset 9999", "bad --utc-offset"},
        {"--orders 5", "cannot both go to stdout"},
        {"-o - --orders-out -", "cannot both go to stdout"},
        {"-o /tmp/x.csv --orders-out /tmp/x.csv", "same file"},
        {"-o /tmp/x.csv --orders-out /tmp/../tmp/./x.csv", "same file"},
        {"--frobnicate", "unknown option '--frobnicate'"},
        {"extra", "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = run(cases[i].args, &out, NULL, &err);
        cr_expect_eq(rc, 2, "%s: exit %d", cases[i].args, rc);
        cr_expect(strstr(err, cases[i].needle) != NULL, "%s: stderr '%s'", cases[i].args, err);
        cr_expect(strstr(err, "try 'paidan-gen --help'") != NULL);
        cr_expect_str_eq(out, "", "%s wrote to stdout", cases[i].args);
        free(out);
        free(err);
    }
    /* a link to the other file, existing or yet to be made: the orders
     * would overwrite the volunteers */
    char dir[] = "/tmp/pd-gen-same-XXXXXX";
    cr_assert(mkdtemp(dir));
    char v[128], link[128], args[512];
    snprintf(v, sizeof v, "%s/v.csv", dir);
    snprintf(link, sizeof link, "%s/o.csv", dir);
    cr_assert(symlink("v.csv", link) == 0);
    snprintf(args, sizeof args, "--volunteers 10 --orders 5 -o %s --orders-out %s", v, link);
    for (int pass = 0; pass < 2; pass++) {
        char *out, *err;
        cr_expect_eq(run(args, &out, NULL, &err), 2, "pass %d", pass);
        cr_expect(strstr(err, "same file") != NULL, "%s", err);
        free(out);
        free(err);
        FILE *f = fopen(v, "w"); /* the second pass: the target exists */
        cr_assert(f);
        fclose(f);
    }
    unlink(link);
    unlink(v);
    rmdir(dir);

    char *err;
    cr_expect_eq(run("--volunteers 10 -o /nonexistent-dir/v.csv", NULL, NULL, &err), 1);
    cr_expect(strstr(err, "cannot create /nonexistent-dir/v.csv") != NULL, "%s", err);
    free(err);
}
