/* test_mix.c -- the command mix of paidan-bench load: good specs parse to
 * the right weights and draws, bad ones are refused with a reason. */
#include <criterion/criterion.h>
#include <string.h>

#include "mix.h"

Test(mix, parses_the_default_mix) {
    pd__mix_t m;
    char why[128] = "";
    cr_assert_eq(pd__mix_parse("nearby:70,update:25,order:5", &m, why, sizeof why), PD_OK, "%s",
                 why);
    cr_assert_float_eq(m.total, 100, 1e-12);
    cr_assert_float_eq(m.weight[PD__CMD_NEARBY], 70, 1e-12);
    cr_assert_float_eq(m.weight[PD__CMD_UPDATE], 25, 1e-12);
    cr_assert_float_eq(m.weight[PD__CMD_ORDER], 5, 1e-12);
    cr_assert_float_eq(m.weight[PD__CMD_PING], 0, 1e-12);
    cr_assert_float_eq(m.weight[PD__CMD_GET], 0, 1e-12);
    char s[128];
    pd__mix_to_string(&m, s, sizeof s);
    cr_assert_str_eq(s, "nearby:70,update:25,order:5");
}

Test(mix, bare_names_blanks_and_fractions) {
    pd__mix_t m;
    cr_assert_eq(pd__mix_parse("ping", &m, NULL, 0), PD_OK);
    cr_assert_float_eq(m.weight[PD__CMD_PING], 1, 1e-12);
    cr_assert_eq(pd__mix_parse(" ping : 2 , get:0.5 ", &m, NULL, 0), PD_OK);
    cr_assert_float_eq(m.weight[PD__CMD_PING], 2, 1e-12);
    cr_assert_float_eq(m.weight[PD__CMD_GET], 0.5, 1e-12);
    cr_assert_float_eq(m.total, 2.5, 1e-12);
    /* A zero weight is allowed as long as something else is not zero. */
    cr_assert_eq(pd__mix_parse("ping:0,order:1", &m, NULL, 0), PD_OK);
    cr_assert_eq(pd__mix_pick(&m, 0.0), PD__CMD_ORDER);
}

Test(mix, draws_follow_the_weights) {
    pd__mix_t m;
    cr_assert_eq(pd__mix_parse("nearby:70,update:25,order:5", &m, NULL, 0), PD_OK);
    cr_assert_eq(pd__mix_pick(&m, 0.0), PD__CMD_NEARBY);
    cr_assert_eq(pd__mix_pick(&m, 0.6999), PD__CMD_NEARBY);
    cr_assert_eq(pd__mix_pick(&m, 0.7), PD__CMD_UPDATE);
    cr_assert_eq(pd__mix_pick(&m, 0.9499), PD__CMD_UPDATE);
    cr_assert_eq(pd__mix_pick(&m, 0.95), PD__CMD_ORDER);
    cr_assert_eq(pd__mix_pick(&m, 0.999999999), PD__CMD_ORDER);
    /* Over many uniform draws the shares come out near the weights. */
    int count[PD__CMD__COUNT] = {0};
    for (int i = 0; i < 100000; i++) count[pd__mix_pick(&m, (i + 0.5) / 100000.0)]++;
    cr_assert_eq(count[PD__CMD_NEARBY], 70000);
    cr_assert_eq(count[PD__CMD_UPDATE], 25000);
    cr_assert_eq(count[PD__CMD_ORDER], 5000);
    cr_assert_eq(count[PD__CMD_PING] + count[PD__CMD_GET], 0);
}

static void refused(const char *spec, const char *reason_part) {
    pd__mix_t m;
    char why[160] = "";
    cr_assert_eq(pd__mix_parse(spec, &m, why, sizeof why), PD_ERR_BAD_ARG, "'%s' was accepted",
                 spec);
    cr_assert(strstr(why, reason_part) != NULL, "'%s': reason '%s' lacks '%s'", spec, why,
              reason_part);
}

Test(mix, refuses_bad_specs_with_a_reason) {
    refused("", "empty");
    refused(",ping", "empty item");
    refused("ping:1,", "empty item");
    refused("ping:1,,get:1", "empty item");
    refused("pong:1", "unknown command 'pong'");
    refused("nearby:1,nearby:2", "named twice");
    refused("ping:-1", "bad weight");
    refused("ping:abc", "bad weight");
    refused("ping:", "missing or bad weight");
    refused("ping:1e3", "bad weight");
    refused("ping:0x10", "bad weight");
    refused("ping:1.2.3", "bad weight");
    refused("ping:nan", "bad weight");
    refused("ping:0,get:0", "is 0");
    pd__mix_t m;
    cr_assert_eq(pd__mix_parse(NULL, &m, NULL, 0), PD_ERR_BAD_ARG);
}

Test(mix, names) {
    cr_assert_str_eq(pd__cmd_name(PD__CMD_PING), "ping");
    cr_assert_str_eq(pd__cmd_name(PD__CMD_ORDER), "order");
    cr_assert_null(pd__cmd_name(PD__CMD__COUNT));
}
