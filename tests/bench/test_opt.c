/* test_opt.c -- the numbers and lists of paidan-bench's command lines
 * (bench/opt.c): what strtoull and strtod alone would let through --
 * signs, overflow, suffixes, "nan", hex -- is refused with one line that
 * names the option and the range, and nothing is written on refusal. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdint.h>
#include <string.h>

#include "opt.h"

static const struct option longs[] = {{"volunteers", required_argument, 0, 'n'},
                                      {"cell-e6", required_argument, 0, 'C'},
                                      {"drain", required_argument, 0, 300},
                                      {"filter", required_argument, 0, 'f'},
                                      {0, 0, 0, 0}};
/* 'C' is the code of a long-only option, not a short one. */
static const pd__opt_t p = {"micro", "n:f:", longs};

static void quiet_stderr(void) {
    cr_redirect_stderr();
}

TestSuite(opt, .init = quiet_stderr);

Test(opt, names_the_option_as_typed) {
    char buf[64];
    cr_assert_str_eq(pd__opt_name(&p, 'n', buf, sizeof buf), "-n/--volunteers");
    cr_assert_str_eq(pd__opt_name(&p, 'C', buf, sizeof buf), "--cell-e6");
    cr_assert_str_eq(pd__opt_name(&p, 300, buf, sizeof buf), "--drain");
}

Test(opt, whole_numbers_in_range_only) {
    uint64_t v = 7;
    cr_assert(pd__opt_u64(&p, 'n', "0", 0, 10, &v));
    cr_assert_eq(v, 0);
    cr_assert(pd__opt_u64(&p, 'n', "18446744073709551615", 0, UINT64_MAX, &v));
    cr_assert_eq(v, UINT64_MAX);
    static const char *const bad[] = {
        "", "-1", "+1", " 1", "1 ", "1x", "2e6", "0x10", "1.5", "11", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        cr_assert_not(pd__opt_u64(&p, 'n', bad[i], 0, 10, &v), "'%s' accepted", bad[i]);
        cr_assert_eq(v, 7, "'%s' wrote the value", bad[i]);
    }
    uint32_t u = 3;
    cr_assert_not(pd__opt_u32(&p, 'C', "499", 500, 1000000, &u));
    cr_assert(pd__opt_u32(&p, 'C', "500", 500, 1000000, &u));
    cr_assert_eq(u, 500);
}

Test(opt, decimals_in_range_only) {
    double d = 7;
    cr_assert(pd__opt_num(&p, 300, "0.5", 0, 10, &d));
    cr_assert_eq(d, 0.5);
    cr_assert(pd__opt_num(&p, 300, "1e1", 0, 10, &d));
    cr_assert_eq(d, 10);
    static const char *const bad[] = {"", "-1", "nan", "inf", "0x1", "1e400", "1 ", "1s", "11"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = 7;
        cr_assert_not(pd__opt_num(&p, 300, bad[i], 0, 10, &d), "'%s' accepted", bad[i]);
        cr_assert_eq(d, 7, "'%s' wrote the value", bad[i]);
    }
}

Test(opt, a_list_names_at_least_one_known_case) {
    static const char *const cases[] = {"nearest", "move"};
    cr_assert(pd__opt_list(&p, 'f', "nearest", "case", cases, 2));
    cr_assert(pd__opt_list(&p, 'f', "move,nearest,", "case", cases, 2));
    cr_assert_not(pd__opt_list(&p, 'f', "", "case", cases, 2));
    cr_assert_not(pd__opt_list(&p, 'f', ",", "case", cases, 2));
    cr_assert_not(pd__opt_list(&p, 'f', "nearest,neerest", "case", cases, 2));
    cr_assert_not(pd__opt_list(&p, 'f', "near", "case", cases, 2));
}

/* The message: one line, the mode, the value, the option and the range. */
Test(opt, the_message_names_option_and_range, .init = cr_redirect_stderr) {
    uint32_t u = 0;
    cr_assert_not(pd__opt_u32(&p, 'C', "0", 500, 1000000, &u));
    fflush(stderr);
    cr_assert_stderr_eq_str("paidan-bench micro: bad value '0' for --cell-e6 (500..1000000)\n");
}
