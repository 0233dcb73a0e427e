/* cli.c -- paidan-cli: JSON for people, MessagePack-RPC for the server.
 *
 *   paidan-cli [-H host] [-p port] [-a token] [-t ms] [-f] METHOD ['{json params}']
 *   paidan-cli [-H host] [-p port] [-a token]            (lines "METHOD {json}" on stdin)
 *
 * One-shot mode prints the result as one line of JSON and exits 0; a server
 * error goes to stderr as "error CODE NAME: message" and the exit status is
 * 1; a connection or usage problem, or output that cannot be written (a
 * full disk), exits 2. With -f the tool stays and
 * prints notifications ("METHOD {json}") after the result until the server
 * closes the connection -- the way to watch events after `subscribe`.
 *
 * Interactive mode reads one command per line (blank lines and lines
 * starting with '#' are skipped), prints each result or error the same way,
 * and prints notifications that arrived in between as
 * "notification METHOD {json}"; an error names its input line. It goes on
 * after an error and exits 0 at end of input when every command succeeded,
 * 1 when one failed, 2 if the connection breaks. After a `subscribe`, one
 * last ping at the end of input brings in the notifications the last
 * command caused (the server sends them just after its reply).
 *
 * The token comes from -a or, so it stays out of `ps`, from PAIDAN_TOKEN.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "paidan/client.h"

#define CLI_DEFAULT_PORT 7411

static void usage(FILE *f) {
    fprintf(f,
            "usage: paidan-cli [options] METHOD ['{json params}']\n"
            "       paidan-cli [options]          (reads \"METHOD {json}\" lines from stdin)\n"
            "\n"
            "options:\n"
            "  -H, --host HOST      server address (default 127.0.0.1)\n"
            "  -p, --port PORT      server port (default %d)\n"
            "  -a, --auth TOKEN     send `auth {token}` first (default: $PAIDAN_TOKEN)\n"
            "  -t, --timeout MS     I/O timeout in milliseconds (default 10000, 0 = none)\n"
            "  -f, --follow         after the result, print notifications until closed\n"
            "  -h, --help           this text\n"
            "  -V, --version        print the version\n"
            "\n"
            "Results print as JSON on stdout; errors as \"error CODE NAME: message\" on\n"
            "stderr with exit status 1 (reading stdin: \"line N: error ...\", and exit 1\n"
            "at the end if any command failed). A connection or usage problem, or output\n"
            "that cannot be written, exits 2.\n",
            CLI_DEFAULT_PORT);
}

/* errno of the first failed write to stdout, 0 if none (main reports it) */
static int out_errno;

/* Flush stdout; false (and out_errno set) if any output was lost. */
static bool flush_out(void) {
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return true;
    if (!out_errno) out_errno = errno ? errno : EIO;
    return false;
}

/* line: the input line of the command (stdin mode), 0 for one-shot */
static void print_error(long line, int64_t code, const char *message) {
    if (line > 0) fprintf(stderr, "line %ld: ", line);
    fprintf(stderr, "error %lld %s: %s\n", (long long)code, pd_err_name((pd_err)code), message);
}

/* Pack params from JSON text (empty = {}); a top-level non-object is refused
 * here rather than by the server, with a clearer message. */
static bool params_from_json(long line, const char *text, msgpack_sbuffer *sb) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t n = strlen(text);
    size_t i = 0;
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
    if (i == n) return msgpack_pack_map(&pk, 0) == 0;
    const char *why = NULL;
    char err[128];
    if (text[i] != '{')
        why = "params must be a JSON object";
    else if (pd_json_to_msgpack(text, n, &pk, err, sizeof(err)) != PD_OK)
        why = err;
    if (why) {
        if (line > 0) fprintf(stderr, "line %ld: ", line);
        fprintf(stderr, "error: %s%s\n", why == err ? "bad JSON params: " : "", why);
        return false;
    }
    return true;
}

static void print_notification(const pd_msg_t *m, const char *prefix) {
    printf("%s%s ", prefix, m->method);
    pd_json_print(stdout, &m->params);
    fputc('\n', stdout);
}

/* Print notifications already buffered, without waiting. */
static int drain_notifications(pd_client_t *c) {
    for (;;) {
        bool ready = false;
        if (pd_client_poll(c, 0, &ready) != PD_OK) return 2;
        if (!ready) return 0;
        pd_msg_t m;
        pd_err err = pd_client_read(c, &m);
        if (err) {
            fprintf(stderr, "error: %s\n", pd_client_last_error(c));
            return 2;
        }
        if (m.type == PD_MSG_NOTIFICATION) print_notification(&m, "notification ");
    }
}

/* Run one command; 0 ok, 1 server error, 2 connection problem. line: its
 * input line in stdin mode, 0 for one-shot. */
static int run(pd_client_t *c, long line, const char *method, const char *json) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (!params_from_json(line, json, &sb)) {
        msgpack_sbuffer_destroy(&sb);
        return 1;
    }
    pd_msg_t reply;
    pd_err err = pd_client_call(c, method, sb.data, sb.size, &reply);
    msgpack_sbuffer_destroy(&sb);
    if (err) {
        if (line > 0) fprintf(stderr, "line %ld: ", line);
        fprintf(stderr, "error: %s (%s)\n", pd_strerror(err), pd_client_last_error(c));
        return 2;
    }
    if (reply.code) {
        print_error(line, reply.code, reply.message);
        return 1;
    }
    pd_json_print(stdout, &reply.result);
    fputc('\n', stdout);
    flush_out();
    return 0;
}

/* Print the notifications pd_client_call() kept while it waited. */
static void print_kept(pd_client_t *c) {
    while (pd_client_pending_notifications(c) > 0) {
        pd_msg_t m;
        if (pd_client_read(c, &m) != PD_OK) break;
        print_notification(&m, "notification ");
    }
}

static int interactive(pd_client_t *c) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    long lineno = 0;
    bool subscribed = false;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)n)) {
            /* the rest of the line would be dropped without a word */
            fprintf(stderr, "line %ld: error: NUL byte in the line\n", lineno);
            rc = 1;
            continue;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0' || *p == '#') continue;
        char *method = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        if (*p) *p++ = '\0';
        if (drain_notifications(c) == 2) {
            rc = 2;
            break;
        }
        int r = run(c, lineno, method, p);
        if (r == 2) {
            rc = 2;
            break;
        }
        if (r == 1) rc = 1; /* go on; the exit status says one failed */
        if (r == 0 && strcmp(method, "subscribe") == 0) subscribed = true;
        print_kept(c);
        if (!flush_out()) break; /* main reports it */
    }
    free(line);
    /* The server sends the notifications a request causes just after its
     * reply, so at the end of the input those of the last command may still
     * be on the way: a ping, answered after them, brings them in. */
    if (subscribed && rc != 2 && !out_errno) {
        pd_msg_t m;
        if (pd_client_call(c, "ping", NULL, 0, &m) == PD_OK) print_kept(c);
        flush_out();
    }
    return rc;
}

static int follow(pd_client_t *c) {
    pd_client_set_timeout(c, 0);
    for (;;) {
        pd_msg_t m;
        if (pd_client_read(c, &m) != PD_OK) return 0;
        if (m.type == PD_MSG_NOTIFICATION) {
            print_notification(&m, "");
            if (!flush_out()) return 0; /* main reports it */
        }
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = CLI_DEFAULT_PORT;
    const char *token = getenv("PAIDAN_TOKEN");
    if (token && !*token) token = NULL;
    long timeout_ms = 10000;
    bool follow_mode = false;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},
        {"auth", required_argument, NULL, 'a'}, {"timeout", required_argument, NULL, 't'},
        {"follow", no_argument, NULL, 'f'},     {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},    {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "+H:p:a:t:fhV", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
            case 'H':
                host = optarg;
                break;
            case 'p':
                port = strtol(optarg, &end, 10);
                if (end == optarg || *end || port <= 0 || port > 65535) {
                    fprintf(stderr, "paidan-cli: bad port '%s'\n", optarg);
                    return 2;
                }
                break;
            case 'a':
                token = optarg;
                break;
            case 't':
                errno = 0;
                timeout_ms = strtol(optarg, &end, 10);
                if (end == optarg || *end || errno || timeout_ms < 0 || timeout_ms > INT_MAX) {
                    fprintf(stderr, "paidan-cli: bad timeout '%s' (0..%d ms)\n", optarg, INT_MAX);
                    return 2;
                }
                break;
            case 'f':
                follow_mode = true;
                break;
            case 'h':
                usage(stdout);
                return 0;
            case 'V':
                printf("paidan-cli %s\n", PD_VERSION);
                return 0;
            default:
                /* getopt said what was wrong; the usage would bury it */
                fprintf(stderr, "try 'paidan-cli --help'\n");
                return 2;
        }
    }
    if (follow_mode && optind >= argc) {
        fprintf(stderr, "paidan-cli: -f needs a METHOD\ntry 'paidan-cli --help'\n");
        return 2;
    }
    if (argc - optind > 2) {
        fprintf(stderr,
                "paidan-cli: unexpected argument '%s' (params are one JSON object: quote it)\n"
                "try 'paidan-cli --help'\n",
                argv[optind + 2]);
        return 2;
    }
    pd_client_t *c;
    if (pd_client_connect(host, (uint16_t)port, (int)timeout_ms, &c) != PD_OK) {
        fprintf(stderr, "paidan-cli: %s\n", pd_client_connect_error());
        return 2;
    }
    int rc = 0;
    if (token) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "token", 5);
        msgpack_pack_str_with_body(&pk, token, strlen(token));
        pd_msg_t reply;
        pd_err err = pd_client_call(c, "auth", sb.data, sb.size, &reply);
        msgpack_sbuffer_destroy(&sb);
        if (err) {
            fprintf(stderr, "error: %s (%s)\n", pd_strerror(err), pd_client_last_error(c));
            rc = 2;
        } else if (reply.code) {
            print_error(0, reply.code, reply.message);
            rc = 1;
        }
    }
    if (rc == 0) {
        if (optind < argc) {
            rc = run(c, 0, argv[optind], optind + 1 < argc ? argv[optind + 1] : "");
            if (rc == 0 && follow_mode) rc = follow(c);
        } else {
            rc = interactive(c);
        }
    }
    pd_client_destroy(c);
    /* A result that could not be written is not a success (a full disk, a
     * closed stdout): say so, and exit as for a connection problem. */
    if (!flush_out()) {
        fprintf(stderr, "paidan-cli: writing the output: %s\n", strerror(out_errno));
        rc = 2;
    }
    return rc;
}
