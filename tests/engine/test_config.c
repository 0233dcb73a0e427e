/* test_config.c -- configuration (defaults, checks, paidan.ini with good
 * and bad keys and values, line numbers), skills by name, local time and
 * the names of the enums.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine_test.h"

Test(config, defaults) {
    pd_engine_config_t c;
    pd_engine_config_init(&c);
    cr_assert_eq(pd_engine_config_check(&c), PD_OK);
    cr_assert_eq(c.budget_s, 900);
    cr_assert_eq(c.offer_timeout_s, 120);
    cr_assert_eq(c.policy, PD_POLICY_BALANCED);
    cr_assert_eq(c.utc_offset_min, 480);
    cr_assert_eq(c.n_skills, 12);
    cr_assert_str_eq(c.skills[0], "theory-policy");
    cr_assert_str_eq(c.skills[7], "poverty-relief");
    cr_assert_str_eq(c.skills[11], "elder-care");
    cr_assert_eq(c.star_hours[0], 10);
    cr_assert_eq(c.star_hours[4], 600);
    pd_engine_config_t bad = c;
    bad.grab_width = 0;
    cr_assert_eq(pd_engine_config_check(&bad), PD_ERR_BAD_ARG);
    bad = c;
    bad.star_hours[2] = 40;
    cr_assert_eq(pd_engine_config_check(&bad), PD_ERR_BAD_ARG);
    bad = c;
    strcpy(bad.skills[3], "tutoring");
    cr_assert_eq(pd_engine_config_check(&bad), PD_ERR_BAD_ARG);
    bad = c;
    bad.index.detour = 0.5;
    cr_assert_eq(pd_engine_config_check(&bad), PD_ERR_BAD_ARG);
    pd_engine_t *e = NULL;
    cr_assert_eq(pd_engine_create(&bad, &e), PD_ERR_BAD_ARG);
    cr_assert_null(e);
}

Test(config, example_file_is_the_defaults) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert_not_null(src);
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/paidan.ini.example", src);
    pd_engine_config_t got, def;
    int line = -1;
    cr_assert_eq(pd_engine_config_load_ini(path, &got, &line), PD_OK, "line %d", line);
    cr_assert_eq(line, 0);
    pd_engine_config_init(&def);
    cr_assert_eq(memcmp(&got, &def, sizeof got), 0, "the example differs from the defaults");
}

Test(config, good_file) {
    const char *text =
        "# a county\n"
        "[speeds]\nwalk_kmh = 5\ncar_kmh=40.5\n"
        "[dispatch]\ndetour = 1.4\nbudget_min = 20\noffer_timeout_s = 90\n"
        "grab_width = 5\npolicy = rated\n"
        "[policy]\nrated_weight_s = 200 ; inline comment\nrated_neutral = 3.5\n"
        "[records]\nstar_hours = 5, 20, 60, 200, 500\npoints_per_hour = 2.5\n"
        "[time]\nutc_offset = -05:30\n"
        "[batch]\nk = 12\nemergency_bonus_s = 7200\n"
        "[skills]\nnames = a, b ,c\nadd = flood-rescue\n";
    pd_engine_config_t c;
    int line = -1;
    cr_assert_eq(pd_engine_config_load_ini_string(text, &c, &line), PD_OK, "line %d", line);
    cr_assert_float_eq(c.index.speed_kmh[PD_MODE_WALK], 5.0, 1e-12);
    cr_assert_float_eq(c.index.speed_kmh[PD_MODE_CAR], 40.5, 1e-12);
    cr_assert_float_eq(c.index.speed_kmh[PD_MODE_BIKE], 12.0, 1e-12); /* default kept */
    cr_assert_float_eq(c.index.detour, 1.4, 1e-12);
    cr_assert_eq(c.budget_s, 1200);
    cr_assert_eq(c.offer_timeout_s, 90);
    cr_assert_eq(c.grab_width, 5);
    cr_assert_eq(c.policy, PD_POLICY_RATED);
    cr_assert_float_eq(c.rated_weight_s, 200.0, 1e-12);
    cr_assert_float_eq(c.rated_neutral, 3.5, 1e-12);
    uint32_t want[5] = {5, 20, 60, 200, 500};
    cr_assert_arr_eq(c.star_hours, want, sizeof want);
    cr_assert_eq(c.utc_offset_min, -330);
    cr_assert_eq(c.batch_k, 12);
    cr_assert_eq(c.batch_bonus_s[PD_PRIORITY_EMERGENCY], 7200);
    cr_assert_eq(c.n_skills, 4);
    cr_assert_str_eq(c.skills[1], "b");
    cr_assert_str_eq(c.skills[3], "flood-rescue");
    pd_engine_t *e = mk_engine(&c);
    uint32_t bit;
    cr_assert_eq(pd_engine_skill_bit(e, "flood-rescue", &bit), PD_OK);
    cr_assert_eq(bit, 3);
    cr_assert_eq(pd_engine_skill_bit(e, "sanitation", &bit), PD_ERR_UNKNOWN_SKILL);
    pd_engine_destroy(e);
}

/* "[skills]" with names= then add= lines, 16 names a line: s0 .. s(n-1). */
static void many_skills(char *buf, size_t cap, int n) {
    snprintf(buf, cap, "[skills]\nnames = s0");
    for (int i = 1; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, i % 16 == 0 ? "\nadd = s%d" : ",s%d", i);
    }
    strcat(buf, "\n");
}

typedef struct bad_s {
    const char *text;
    int line;
    pd_err err;
} bad_t;

Test(config, bad_keys_and_values_name_their_line) {
    static const bad_t cases[] = {
        {"[dispatch]\ngrab_width = 3\nbogus = 1\n", 3, PD_ERR_BAD_ARG},
        {"[nowhere]\nk = 1\n", 2, PD_ERR_BAD_ARG},
        {"walk_kmh = 3\n", 1, PD_ERR_BAD_ARG}, /* no section */
        {"[speeds]\nwalk_kmh = fast\n", 2, PD_ERR_BAD_ARG},
        {"[speeds]\nwalk_kmh = 0\n", 2, PD_ERR_BAD_ARG},
        {"[speeds]\nwalk_kmh = 4.5km\n", 2, PD_ERR_BAD_ARG},
        {"[dispatch]\npolicy = fairest\n", 2, PD_ERR_BAD_ARG},
        {"[dispatch]\ngrab_width = 33\n", 2, PD_ERR_BAD_ARG},
        {"[dispatch]\noffer_timeout_s = 1.5\n", 2, PD_ERR_BAD_ARG},
        {"[dispatch]\ndetour = 0.9\n", 2, PD_ERR_BAD_ARG},
        {"[records]\n\nstar_hours = 10,50,40,300,600\n", 3, PD_ERR_BAD_ARG},
        {"[records]\nstar_hours = 10,50,100,300\n", 2, PD_ERR_BAD_ARG},
        {"[records]\nstar_hours = 10,50,100,300,600,900\n", 2, PD_ERR_BAD_ARG},
        {"[policy]\nrated_neutral = 6\n", 2, PD_ERR_BAD_ARG},
        {"[time]\nutc_offset = +15:00\n", 2, PD_ERR_BAD_ARG},
        {"[time]\nutc_offset = 08:60\n", 2, PD_ERR_BAD_ARG},
        {"[time]\nutc_offset = east\n", 2, PD_ERR_BAD_ARG},
        {"[skills]\nnames = a,,b\n", 2, PD_ERR_BAD_ARG},
        {"[skills]\nnames = a,b,\n", 2, PD_ERR_BAD_ARG},
        {"[skills]\nnames = a,b\nadd = a\n", 3, PD_ERR_BAD_ARG},
        {"[skills]\nnames = a name\n", 2, PD_ERR_BAD_ARG},
        {"[skills]\nnames = abcdefghijabcdefghijabcdefghij12\n", 2, PD_ERR_BAD_ARG},
        {"[batch]\nk = 0\n", 2, PD_ERR_BAD_ARG},
        {"[batch]\nelevated_bonus_s = -1\n", 2, PD_ERR_BAD_ARG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pd_engine_config_t c;
        int line = -1;
        pd_err err = pd_engine_config_load_ini_string(cases[i].text, &c, &line);
        cr_assert_eq(err, cases[i].err, "case %zu: %s", i, pd_err_name(err));
        cr_assert_eq(line, cases[i].line, "case %zu: line %d, want %d", i, line, cases[i].line);
    }
    /* 65 skills: the line that overflows (lines hold 200 bytes, so add=). */
    char big[4096];
    many_skills(big, sizeof big, 65);
    int line = -1;
    pd_engine_config_t c;
    cr_assert_eq(pd_engine_config_load_ini_string(big, &c, &line), PD_ERR_BAD_ARG);
    cr_assert_eq(line, 2 + 64 / 16);
    /* A line past 200 bytes is refused, not cut. */
    char longline[400] = "[skills]\nnames = s0";
    for (int i = 1; i < 60; i++) {
        snprintf(longline + strlen(longline), sizeof longline - strlen(longline), ",s%d", i);
    }
    strcat(longline, "\n");
    cr_assert_eq(pd_engine_config_load_ini_string(longline, &c, &line), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_engine_config_load_ini("/nonexistent/paidan.ini", &c, &line), PD_ERR_IO);
    cr_assert_eq(line, 0);
}

/* The reason names the key, its value and what it takes, so an operator
 * can fix the file from the message alone. */
Test(config, errors_say_what_is_wrong) {
    static const struct {
        const char *text;
        int line;
        const char *why;
    } cases[] = {
        {"[dispatch]\ngrab_width = 3\nbogus = 1\n", 3, "unknown key 'bogus' in [dispatch]"},
        {"[nowhere]\nk = 1\n", 2, "unknown key 'k' in [nowhere]"},
        {"[speeds]\nwalk_kmh = fast\n", 2, "bad value 'fast' for walk_kmh in [speeds]: km/h"},
        {"[speeds]\nwalk_kmh = 0\n", 2, "bad value '0' for walk_kmh in [speeds]: km/h, 0.1..1000"},
        /* the index takes cells of 0.0005 degrees and up: said at the key */
        {"[index]\ncell_deg = 0.0001\n", 2, "bad value '0.0001' for cell_deg in [index]"},
        {"[dispatch]\npolicy = fairest\n", 2, "nearest, balanced or rated"},
        {"[records]\n\nstar_hours = 10,50,40,300,600\n", 3, "five increasing whole hours"},
        /* the first bad key is the one reported, though parsing goes on */
        {"[batch]\nk = 1\nk = 0\nbogus = 2\n", 3, "bad value '0' for k in [batch]"},
        {"[speeds]\nthis line has no equals sign\nwalk_kmh = 0\n", 2, "not a [section]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pd_engine_config_t c;
        int line = -1;
        char why[200] = "unset";
        pd_err err =
            pd_engine_config_load_ini_string_why(cases[i].text, &c, &line, why, sizeof why);
        cr_assert_eq(err, PD_ERR_BAD_ARG, "case %zu: %s", i, pd_err_name(err));
        cr_assert_eq(line, cases[i].line, "case %zu: line %d", i, line);
        cr_assert(strstr(why, cases[i].why), "case %zu: '%s' lacks '%s'", i, why, cases[i].why);
    }
    /* A directory opens and reads as empty: refused, not the defaults. */
    pd_engine_config_t c;
    int line = -1;
    char why[200];
    cr_assert_eq(pd_engine_config_load_ini_why("/tmp", &c, &line, why, sizeof why), PD_ERR_BAD_ARG);
    cr_assert(strstr(why, "not a regular file"), "%s", why);
    cr_assert_eq(
        pd_engine_config_load_ini_why("/nonexistent/paidan.ini", &c, &line, why, sizeof why),
        PD_ERR_IO);
    cr_assert(strstr(why, "No such file"), "%s", why);
    /* fine files say nothing */
    why[0] = 'x';
    cr_assert_eq(
        pd_engine_config_load_ini_string_why("[batch]\nk = 4\n", &c, &line, why, sizeof why),
        PD_OK);
    cr_assert_str_eq(why, "");
}

Test(config, sixty_four_skills) {
    char big[4096];
    many_skills(big, sizeof big, 64);
    pd_engine_config_t c;
    int line = -1;
    cr_assert_eq(pd_engine_config_load_ini_string(big, &c, &line), PD_OK);
    pd_engine_t *e = mk_engine(&c);
    uint64_t m;
    cr_assert_eq(pd_engine_skills_parse(e, "s63, s0", &m), PD_OK);
    cr_assert_eq(m, (1ull << 63) | 1);
    pd_volunteer_t v = mk_vol(1, 0, ~0ull, 1);
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v, T0), PD_OK);
    pd_engine_destroy(e);
}

/* Load text, from a string and from a file, expecting err at line (and, if
 * why is set, a reason containing it). */
static void load_both(const char *text, size_t len, pd_err want, int want_line,
                      const char *want_why, pd_engine_config_t *c) {
    char path[] = "/tmp/pd-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    for (int from_file = 0; from_file < 2; from_file++) {
        if (!from_file && memchr(text, '\0', len)) continue; /* a string ends there */
        int line = -1;
        char why[256] = "";
        pd_err err = from_file
                         ? pd_engine_config_load_ini_why(path, c, &line, why, sizeof why)
                         : pd_engine_config_load_ini_string_why(text, c, &line, why, sizeof why);
        cr_assert_eq(err, want, "%s: %s (%s)", from_file ? "file" : "string", pd_err_name(err),
                     why);
        cr_assert_eq(line, want_line, "%s: line %d, want %d (%s)", from_file ? "file" : "string",
                     line, want_line, why);
        if (want_why) cr_assert(strstr(why, want_why), "'%s' lacks '%s'", why, want_why);
    }
    unlink(path);
}

/* Lines too long for libinih's 200-byte buffer used to reach it in pieces:
 * the tail of a long comment was read as a key (and applied), every line
 * number after it was off by one, and a long value was applied cut. */
Test(config, long_lines_keep_their_line_numbers) {
    pd_engine_config_t c;
    char pad[400];
    memset(pad, 'x', 250);
    pad[250] = '\0';
    char text[1024];
    /* a long comment, then a bad key on line 3 */
    snprintf(text, sizeof text, "; %s\n[batch]\nk = 0\n", pad);
    load_both(text, strlen(text), PD_ERR_BAD_ARG, 3, "bad value '0' for k", &c);
    /* a long comment whose tail looks like a key: still a comment */
    snprintf(text, sizeof text, "[speeds]\n# %.190s walk_kmh = 99\nbike_kmh = 11\n", pad);
    load_both(text, strlen(text), PD_OK, 0, NULL, &c);
    cr_assert_float_eq(c.index.speed_kmh[PD_MODE_WALK], 4.5, 1e-12);
    cr_assert_float_eq(c.index.speed_kmh[PD_MODE_BIKE], 11.0, 1e-12);
    /* a long key line is refused at its own line, and nothing of it is kept */
    snprintf(text, sizeof text, "[skills]\nadd = s%.240s\n[batch]\nk = 0\n", pad);
    load_both(text, strlen(text), PD_ERR_BAD_ARG, 2, "line over 199 bytes", &c);
    /* 199 bytes fit (with the newline's '\r' if any); 200 do not */
    for (int crlf = 0; crlf < 2; crlf++) {
        int body = 199 - crlf - (int)strlen("walk_kmh = 7 ; ");
        snprintf(text, sizeof text, "[speeds]\nwalk_kmh = 7 ; %.*s%s[batch]\nk = 5\n", body, pad,
                 crlf ? "\r\n" : "\n");
        load_both(text, strlen(text), PD_OK, 0, NULL, &c);
        cr_assert_float_eq(c.index.speed_kmh[PD_MODE_WALK], 7.0, 1e-12);
        cr_assert_eq(c.batch_k, 5);
        snprintf(text, sizeof text, "[speeds]\nwalk_kmh = 7 ; %.*s%s[batch]\nk = 5\n", body + 1,
                 pad, crlf ? "\r\n" : "\n");
        load_both(text, strlen(text), PD_ERR_BAD_ARG, 2, "line over 199 bytes", &c);
    }
    /* a NUL byte in a file is refused, not read up to */
    static const char nul[] = "[batch]\nk = 3\0 junk\nnormal_bonus_s = 5\n";
    load_both(nul, sizeof nul - 1, PD_ERR_BAD_ARG, 2, "NUL", &c);
}

/* An indented line is an ordinary line, not libinih's continuation of the
 * key before it (which replaced [skills] names= and overrode values). */
Test(config, indented_lines_are_not_continuations) {
    pd_engine_config_t c;
    const char *text = "[speeds]\n  walk_kmh = 5\n\tbike_kmh = 10\n";
    load_both(text, strlen(text), PD_OK, 0, NULL, &c);
    cr_assert_float_eq(c.index.speed_kmh[PD_MODE_WALK], 5.0, 1e-12);
    cr_assert_float_eq(c.index.speed_kmh[PD_MODE_BIKE], 10.0, 1e-12);
    text = "[skills]\nnames = a,b\n  c\n";
    load_both(text, strlen(text), PD_ERR_BAD_ARG, 3, "not a [section] or key = value line", &c);
    text = "[batch]\nk = 4\n    5\n";
    load_both(text, strlen(text), PD_ERR_BAD_ARG, 3, NULL, &c);
    /* a BOM, then an indented section */
    text = "\xEF\xBB\xBF  [batch]\n  k = 6\n";
    load_both(text, strlen(text), PD_OK, 0, NULL, &c);
    cr_assert_eq(c.batch_k, 6);
}

/* Values the keys' own words rule out. */
Test(config, odd_values) {
    pd_engine_config_t c;
    static const struct {
        const char *text;
        const char *why;
    } cases[] = {
        /* strtod reads hexadecimal; a config's numbers are decimal */
        {"[speeds]\nwalk_kmh = 0x5\n", "bad value '0x5' for walk_kmh"},
        {"[dispatch]\ndetour = 0x1p0\n", "bad value '0x1p0' for detour"},
        /* '|' separates names in the CSV files, whose reader then refuses
         * the whole table */
        {"[skills]\nnames = a|b\n", "bad value 'a|b' for names"},
        {"[skills]\nadd = flood|rescue\n", "bad value 'flood|rescue' for add"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load_both(cases[i].text, strlen(cases[i].text), PD_ERR_BAD_ARG, 2, cases[i].why, &c);
    }
    pd_engine_config_init(&c);
    strcpy(c.skills[2], "a|b");
    cr_assert_eq(pd_engine_config_check(&c), PD_ERR_BAD_ARG);
    /* still fine: decimals with exponents, UTF-8 names */
    const char *ok = "[speeds]\nwalk_kmh = 4.5e0\n[skills]\nnames = 助老,助残\n";
    load_both(ok, strlen(ok), PD_OK, 0, NULL, &c);
    cr_assert_str_eq(c.skills[1], "助残");
}

/* ------------------------------------------------------------------ skills */

Test(skills, names_and_masks) {
    pd_engine_t *e = mk_engine(NULL);
    cr_assert_eq(pd_engine_skill_count(e), 12);
    cr_assert_str_eq(pd_engine_skill_name(e, 6), "sanitation");
    cr_assert_null(pd_engine_skill_name(e, 12));
    uint32_t bit;
    cr_assert_eq(pd_engine_skill_bit(e, "medical-fitness", &bit), PD_OK);
    cr_assert_eq(bit, 3);
    cr_assert_eq(pd_engine_skill_bit(e, "Medical-Fitness", &bit), PD_ERR_UNKNOWN_SKILL);
    cr_assert_eq(pd_engine_skill_bit(e, "", &bit), PD_ERR_UNKNOWN_SKILL);
    uint64_t m = 77;
    cr_assert_eq(pd_engine_skills_parse(e, " sanitation ,medical-fitness", &m), PD_OK);
    cr_assert_eq(m, (1ull << 6) | (1ull << 3));
    cr_assert_eq(pd_engine_skills_parse(e, "", &m), PD_OK);
    cr_assert_eq(m, 0);
    m = 77;
    cr_assert_eq(pd_engine_skills_parse(e, "sanitation,juggling", &m), PD_ERR_UNKNOWN_SKILL);
    cr_assert_eq(m, 77);
    cr_assert_eq(pd_engine_skills_parse(e, "sanitation,,tutoring", &m), PD_ERR_BAD_ARG);
    const char *names[] = {"elder-care", "civility"};
    cr_assert_eq(pd_engine_skills_from_names(e, names, 2, &m), PD_OK);
    cr_assert_eq(m, (1ull << 11) | (1ull << 10));
    const char *bad[] = {"elder-care", "sky-diving"};
    cr_assert_eq(pd_engine_skills_from_names(e, bad, 2, &m), PD_ERR_UNKNOWN_SKILL);
    char buf[64];
    size_t len;
    cr_assert_eq(pd_engine_skills_to_string(e, (1ull << 6) | (1ull << 3), buf, sizeof buf, &len),
                 PD_OK);
    cr_assert_str_eq(buf, "medical-fitness,sanitation");
    cr_assert_eq(len, strlen(buf));
    cr_assert_eq(pd_engine_skills_to_string(e, 0, buf, sizeof buf, &len), PD_OK);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(pd_engine_skills_to_string(e, 1ull << 6, buf, 10, &len), PD_ERR_BOUNDS);
    cr_assert_eq(pd_engine_skills_to_string(e, 1ull << 6, buf, 11, &len), PD_OK);
    cr_assert_eq(pd_engine_skills_to_string(e, 1ull << 12, buf, sizeof buf, &len),
                 PD_ERR_UNKNOWN_SKILL);
    /* Unknown bits are refused wherever masks come in. */
    pd_volunteer_t v = mk_vol(1, 0, 1ull << 12, 1);
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v, T0), PD_ERR_UNKNOWN_SKILL);
    pd_engine_destroy(e);
}

/* -------------------------------------------------------------------- time */

Test(time, week_minutes) {
    int32_t m;
    cr_assert_eq(pd_time_to_week_minute(0, 0, &m), PD_OK);
    cr_assert_eq(m, 3 * 1440); /* 1970-01-01 was a Thursday */
    cr_assert_eq(pd_time_to_week_minute(T0, 480, &m), PD_OK);
    cr_assert_eq(m, 600); /* Monday 10:00 local */
    cr_assert_eq(pd_time_to_week_minute(T0, 0, &m), PD_OK);
    cr_assert_eq(m, 120); /* 02:00 UTC, Monday */
    cr_assert_eq(pd_time_to_week_minute(T0, -480, &m), PD_OK);
    cr_assert_eq(m, 10080 - 360); /* Sunday 18:00 */
    cr_assert_eq(pd_time_to_week_minute(-1, 0, &m), PD_OK);
    cr_assert_eq(m, 3 * 1440 - 1); /* Wednesday 23:59 */
    cr_assert_eq(pd_time_to_week_minute(T0 + 59999, 480, &m), PD_OK);
    cr_assert_eq(m, 600);
    cr_assert_eq(pd_time_to_week_minute(T0, 15 * 60, &m), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_time_to_local_day(0, 0), 0);
    cr_assert_eq(pd_time_to_local_day(-1, 0), -1);
    cr_assert_eq(pd_time_to_local_day(16 * 3600 * 1000LL, 480), 1);
    cr_assert_eq(pd_time_to_local_day(16 * 3600 * 1000LL - 1, 480), 0);

    pd_engine_t *e = mk_engine(NULL);
    cr_assert_eq(pd_engine_week_minute(e, T0), 600);
    pd_week_t w;
    /* Sunday 23:30 local for 90 minutes: Sunday hour 23 and Monday hours 0, 1. */
    int64_t sun = T0 - 630 * MIN_MS; /* Sunday 23:30 */
    cr_assert_eq(pd_engine_week_minute(e, sun), 10080 - 30);
    cr_assert_eq(pd_engine_week_window(e, sun, 90, &w), PD_OK);
    pd_week_t want = pd_week_none();
    cr_assert_eq(pd_week_add_range(&want, 6, 23, 24), PD_OK);
    cr_assert_eq(pd_week_add_range(&want, 0, 0, 1), PD_OK);
    cr_assert_eq(memcmp(&w, &want, sizeof w), 0);
    cr_assert_eq(pd_engine_week_window(e, sun, -1, &w), PD_ERR_BAD_ARG);
    pd_engine_destroy(e);
}

Test(time, schedule_decides_who_qualifies) {
    pd_engine_t *e = mk_engine(NULL);
    pd_volunteer_t v = mk_vol(1, 100, 1ull << 6, 1);
    v.week = pd_week_none();
    cr_assert_eq(pd_week_add_range(&v.week, 0, 9, 12), PD_OK); /* Monday 09-12 local */
    cr_assert_eq(pd_engine_volunteer_upsert(e, &v, T0), PD_OK);
    pd_order_spec_t s = mk_order(10, 1ull << 6);
    s.duration_min = 120; /* 10:00-12:00: fits */
    pd_order_state st;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_OFFERED);
    cr_assert_eq(pd_engine_order_cancel(e, 10, T0), PD_OK);
    s.id = 11;
    s.duration_min = 121; /* runs into 12:00 */
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_EXPIRED);
    s.id = 12;
    s.ignore_schedule = true;
    cr_assert_eq(pd_engine_order_create_dispatch(e, &s, T0, &st), PD_OK);
    cr_assert_eq(st, PD_ORDER_OFFERED);
    pd_engine_destroy(e);
}

Test(names, round_trip) {
    for (int p = 0; p < PD_POLICY__COUNT; p++) {
        pd_policy x;
        cr_assert_eq(pd_policy_from_name(pd_policy_name((pd_policy)p), &x), PD_OK);
        cr_assert_eq(x, p);
    }
    for (int p = 0; p < PD_PRIORITY__COUNT; p++) {
        pd_priority x;
        cr_assert_eq(pd_priority_from_name(pd_priority_name((pd_priority)p), &x), PD_OK);
        cr_assert_eq(x, p);
    }
    for (int p = 0; p < PD_OFFER__COUNT; p++) {
        pd_offer_mode x;
        cr_assert_eq(pd_offer_mode_from_name(pd_offer_mode_name((pd_offer_mode)p), &x), PD_OK);
        cr_assert_eq(x, p);
    }
    pd_policy x;
    cr_assert_eq(pd_policy_from_name("closest", &x), PD_ERR_BAD_ARG);
    cr_assert_eq(pd_policy_from_name(NULL, &x), PD_ERR_BAD_ARG);
    for (int s = 0; s < PD_ORDER__COUNT; s++)
        cr_assert_not_null(pd_order_state_name((pd_order_state)s));
    for (int s = 0; s < PD_OFFER__STATE_COUNT; s++)
        cr_assert_not_null(pd_offer_state_name((pd_offer_state)s));
    for (int s = 0; s < PD_REASON__COUNT; s++) cr_assert_not_null(pd_reason_name((pd_reason)s));
    for (int s = 0; s < PD_EVENT__COUNT; s++)
        cr_assert_not_null(pd_event_type_name((pd_event_type)s));
    cr_assert_null(pd_order_state_name(PD_ORDER__COUNT));
    cr_assert_null(pd_event_type_name(PD_EVENT__COUNT));
    cr_assert_str_eq(pd_reason_name(PD_REASON_GRAB_LOST), "grab_lost");
}

/* A section the caller reads (paidan-server's [server]): its keys go to
 * the callback in file order, around the engine's own; its refusals read
 * like the engine's, with the line. */
typedef struct seen_s {
    char keys[256];
    const char *refuse; /* a key to refuse */
    const char *expect; /* what to say it takes; NULL: unknown */
} seen_t;

static int take_key(void *ud, const char *key, const char *value, const char **expect) {
    seen_t *s = ud;
    if (s->refuse && strcmp(key, s->refuse) == 0) {
        *expect = s->expect;
        return 0;
    }
    size_t n = strlen(s->keys);
    snprintf(s->keys + n, sizeof s->keys - n, "%s=%s;", key, value);
    return 1;
}

static pd_err load_with(const char *text, pd_engine_config_t *c, seen_t *s, int *line, char *why,
                        size_t cap) {
    char path[] = "/tmp/pd_config_testXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    pd_ini_section_t sec = {"server", take_key, s};
    pd_err err = pd_engine_config_load_ini_with(path, c, s ? &sec : NULL, line, why, cap);
    unlink(path);
    return err;
}

Test(config, a_section_of_the_callers) {
    const char *text = "[server]\nport = 7411\n[batch]\nk = 4\n[server]\nmax_conns = 5\n";
    pd_engine_config_t c;
    int line = -1;
    char why[200];
    seen_t s = {.keys = ""};
    cr_assert_eq(load_with(text, &c, &s, &line, why, sizeof why), PD_OK, "%s", why);
    cr_assert_str_eq(s.keys, "port=7411;max_conns=5;");
    cr_assert_eq(c.batch_k, 4);
    /* a value the caller refuses: its line, the key and what it takes */
    seen_t bad = {.keys = "", .refuse = "max_conns", .expect = "1..1000000"};
    cr_assert_eq(load_with(text, &c, &bad, &line, why, sizeof why), PD_ERR_BAD_ARG);
    cr_assert_eq(line, 6);
    cr_assert_str_eq(why, "bad value '5' for max_conns in [server]: 1..1000000");
    /* a key the caller does not know */
    seen_t unknown = {.keys = "", .refuse = "port"};
    cr_assert_eq(load_with(text, &c, &unknown, &line, why, sizeof why), PD_ERR_BAD_ARG);
    cr_assert_eq(line, 2);
    cr_assert(strstr(why, "unknown key 'port' in [server]"), "%s", why);
    /* without the caller, the section is nobody's */
    cr_assert_eq(load_with(text, &c, NULL, &line, why, sizeof why), PD_ERR_BAD_ARG);
    cr_assert_eq(line, 2);
    /* a section without a name or a callback is a caller's mistake */
    pd_ini_section_t broken = {NULL, take_key, NULL};
    cr_assert_eq(pd_engine_config_load_ini_with("/tmp", &c, &broken, &line, why, sizeof why),
                 PD_ERR_BAD_ARG);
}
