/* test_example_client.c -- scripts/example_client.py, the Python example of
 * docs/protocol.md, runs against a live server and exits 0. Skipped when
 * Python's msgpack module (Debian: python3-msgpack) is not installed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

static const char *python(void) {
    /* Debian's interpreter first: python3-msgpack installs for it. */
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    for (int i = 0; i < 2; i++) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "%s -c 'import msgpack' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) return cands[i];
    }
    return NULL;
}

Test(example_client, runs_against_server, .timeout = 30) {
    const char *py = python();
    if (!py) cr_skip_test("python3 with msgpack is not installed");
    srv_t srv;
    srv_start(&srv, NULL);
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s/scripts/example_client.py --port %d >/dev/null", py, src,
             srv.port);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "example_client.py failed (%d)",
              status);
    srv_stop(&srv);
}
