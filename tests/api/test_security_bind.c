/* test_security_bind.c -- the server will not listen beyond loopback
 * without a token (docs/security.md, "The boundary").
 *
 * Kept apart from test_security.c: run in parallel with the other tests
 * there, this one made Criterion's own runner leak 48 bytes at exit, which
 * LeakSanitizer (rightly strict in scripts/test.sh) reports.
 */
#include <criterion/criterion.h>
#include <sys/wait.h>

#include "helper.h"

static int exit_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(bind, beyond_loopback_needs_a_token, .timeout = 60) {
    /* Any address that is not loopback is refused without a token before
     * anything is bound (exit 1), including the IPv4-mapped loopback form,
     * which IPv6 stacks may route beyond the machine. */
    static const char *const hosts[] = {"0.0.0.0", "::", "::ffff:127.0.0.1", "192.0.2.1",
                                        "10.0.0.1"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        const char *args[] = {"--host", hosts[i], NULL};
        cr_assert_eq(exit_code(srv_run_expect_exit(args)), 1,
                     "--host %s without a token did not exit 1", hosts[i]);
    }
    /* Loopback needs none: all of 127/8, and the name localhost. */
    static const char *const ok_hosts[] = {"127.0.0.2", "localhost"};
    static const char *const ok_addrs[] = {"127.0.0.2", "127.0.0.1"};
    for (size_t i = 0; i < sizeof(ok_hosts) / sizeof(ok_hosts[0]); i++) {
        const char *args[] = {"--host", ok_hosts[i], NULL};
        srv_t s;
        srv_start(&s, args);
        /* One round trip first: the listening line is printed a moment
         * before the signal handlers are installed. */
        pd_client_t *c = NULL;
        cr_assert_eq(pd_client_connect(ok_addrs[i], (uint16_t)s.port, 5000, &c), PD_OK);
        call_ok(c, "ping", "");
        pd_client_destroy(c);
        srv_stop(&s);
    }
    /* An empty token is no token. */
    static const char *const empty[] = {"--host", "0.0.0.0", "--token", "", NULL};
    cr_assert_eq(exit_code(srv_run_expect_exit(empty)), 2);
}
