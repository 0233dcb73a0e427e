/* test_args_internal.c -- pd_arg_echo(): client bytes made safe for error messages. */
#include <criterion/criterion.h>
#include <string.h>

#include "args.h"

static const char *echo(const char *s, size_t n, size_t cap) {
    static char out[128];
    return pd_arg_echo(out, cap, s, n);
}

Test(args, echo_keeps_valid_utf8) {
    cr_assert_str_eq(echo("tutoring", 8, 64), "tutoring");
    cr_assert_str_eq(echo("红色宣讲", strlen("红色宣讲"), 64), "红色宣讲");
    cr_assert_str_eq(echo("\xf0\x9f\x98\x80", 4, 64), "\xf0\x9f\x98\x80");
}

Test(args, echo_replaces_bad_bytes) {
    cr_assert_str_eq(echo("a\xff"
                          "b",
                          3, 64),
                     "a?b");
    cr_assert_str_eq(echo("\xc0\xaf", 2, 64), "??");      /* overlong */
    cr_assert_str_eq(echo("\xed\xa0\x80", 3, 64), "???"); /* surrogate */
    cr_assert_str_eq(echo("\xe4\xb8", 2, 64), "??");      /* truncated */
    cr_assert_str_eq(echo("x\0y\n", 4, 64), "x?y?");      /* NUL, control */
}

Test(args, echo_truncates_on_a_boundary) {
    /* 3-byte characters into 8 bytes of room: two fit (6 bytes + NUL). */
    cr_assert_str_eq(echo("中中中", 9, 8), "中中");
    cr_assert_str_eq(echo("abcdef", 6, 4), "abc");
    cr_assert_str_eq(echo("", 0, 4), "");
}
