/* helper.h -- start a real paidan-server for a test and talk to it.
 *
 * Tests go through a real socket to a real process (house style 20): the
 * server binary comes from $PD_BINARY_DIR/api/paidan-server, listens on a
 * port the OS picks, and the helper reads the "listening on HOST:PORT" line
 * from its stdout. The child gets PR_SET_PDEATHSIG, so a test that fails
 * half-way never leaves a server behind. Server logs go to
 * $PD_BINARY_DIR/Testing/api-server.log when PD_TEST_LOG is set, else
 * nowhere.
 */
#ifndef PAIDAN_TESTS_API_HELPER_H
#define PAIDAN_TESTS_API_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "paidan/client.h"

/** A running server. */
typedef struct srv_s {
    pid_t pid;        /* the server process */
    int port;         /* its RPC port */
    int metrics_port; /* its /metrics port, or -1 */
} srv_t;

/** The whole file, NUL-terminated, malloc'd ("" if it cannot be read). */
char *file_text(const char *path);

/** Path of a built binary: $PD_BINARY_DIR/<rel>. Static buffer. */
const char *binary_path(const char *rel);

/**
 * Start paidan-server --port 0 plus `args` (NULL-terminated, may be NULL)
 * and wait for its listening line (and the metrics line when
 * --metrics-port is among args). Fails the test if it does not start.
 */
void srv_start(srv_t *s, const char *const *args);

/**
 * Fork and exec paidan-server --port 0 followed by args; its stderr goes to
 * log (appended; NULL: Testing/api-server.log under PD_TEST_LOG, else
 * /dev/null). Returns the pid; *out_fd is the read end of its stdout.
 */
pid_t srv_spawn(const char *const *args, const char *log, int *out_fd);

/**
 * Start paidan-server with args and return its exit status without
 * waiting for a listening line (for servers expected to refuse to start).
 */
int srv_run_expect_exit(const char *const *args);
/** As srv_run_expect_exit(), and what it printed on stdout goes to out. */
int srv_run_expect_exit_out(const char *const *args, char *out, size_t cap);

/** Send SIGTERM (or `sig`) and wait up to 10 s; returns the wait status. */
int srv_stop_sig(srv_t *s, int sig);

/** srv_stop_sig(s, SIGTERM), asserting a clean exit status 0. */
void srv_stop(srv_t *s);

/** Connect to the server (5 s timeout); fails the test on error. */
pd_client_t *srv_connect(const srv_t *s);

/** Pack JSON params (a JSON object, or "" for {}) into a static buffer. */
const char *params_json(const char *json, size_t *len);

/** Call `method` with JSON params; fails the test on a transport error. */
pd_msg_t call(pd_client_t *c, const char *method, const char *json);

/** Call and assert success (code 0); returns the reply. */
pd_msg_t call_ok(pd_client_t *c, const char *method, const char *json);

/** Call and assert the error code; returns the reply. */
pd_msg_t call_err(pd_client_t *c, const char *method, const char *json, int code);

/** stats.import.running; while an import runs, asserts stats.import also
 *  has what its reply will say so far (path, imported, replaced, skipped,
 *  seconds). */
bool import_running(pd_client_t *c);

/** Integer value of key in a map (asserts it is there and an integer). */
long long map_int(const msgpack_object *map, const char *key);

/** Double value of key in a map (integer or float). */
double map_num(const msgpack_object *map, const char *key);

/** String value of key in a map, NUL-terminated copy in a static buffer. */
const char *map_str(const msgpack_object *map, const char *key);

/** True if a NUL-terminated string equals a msgpack str. */
bool obj_str_eq(const msgpack_object *o, const char *s);

/** Stats counter: stats.<section>.<key> as an integer, over a fresh connection. */
long long stat_of(const srv_t *s, const char *section, const char *key);

/**
 * Read until the server closes the connection (EOF), for at most
 * timeout_ms. Returns true if it closed; notifications read meanwhile are
 * discarded, but *last_error_code gets the code of a "server.error"
 * notification if one came (else 0). last_error_code may be NULL.
 */
bool wait_closed(pd_client_t *c, int timeout_ms, int *last_error_code);

/** Milliseconds on a monotonic clock. */
long long now_ms(void);

/** A new file under /tmp holding text, its name in path (cap bytes, at
 *  least 32); the caller unlinks it. */
void temp_file(char *path, size_t cap, const char *text);

/** A plain TCP connection to 127.0.0.1:port (for bytes no client sends). */
int tcp_connect(int port);

/**
 * Connect to 127.0.0.1:port, send len bytes of req, read until the server
 * closes (at most cap-1 bytes, NUL-terminated in buf). Returns the length.
 */
size_t tcp_exchange(int port, const void *req, size_t len, char *buf, size_t cap);

#endif /* PAIDAN_TESTS_API_HELPER_H */
