/* fuzz_snapshot.c -- the snapshot reader and the engine's state decoder.
 *
 * Recovery maps the newest snapshot, checks its header, trailer and
 * checksum (pd_snapshot_file_open), and builds an engine from its payload
 * (pd_engine_snapshot_restore), falling back to an older snapshot if
 * either refuses. A payload passes the checksum only if it was written
 * whole, so the decoder's real adversary is a bug or a format change; but
 * it must still refuse anything malformed with PD_ERR_CORRUPT, leak
 * nothing, and never hand back an engine that breaks its own invariants.
 *
 * Input byte 0 picks the mode:
 *   even: the rest is a payload for pd_engine_snapshot_restore(); an engine
 *         it returns must pass pd_engine_validate() and answer queries;
 *   odd:  the rest is a whole snapshot file for pd_snapshot_file_open(),
 *         whose payload, when it opens, is restored as above.
 * The seeds are real snapshots of a small county (make_seeds.sh).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paidan/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                    \
    do {                            \
        if (!(x)) __builtin_trap(); \
    } while (0)

static void restore(const uint8_t *p, size_t len) {
    pd_engine_t *e = NULL;
    pd_err err = pd_engine_snapshot_restore(p, len, NULL, &e);
    if (err) {
        CHECK(e == NULL);
        /* UNKNOWN_SKILL: a payload whose stored configuration names skills
         * badly is refused by the configuration check with that code
         * (regressions/snapshot/unknown-skill-in-config); recovery treats
         * every error alike, trying the previous snapshot. */
        CHECK(err == PD_ERR_CORRUPT || err == PD_ERR_NOMEM || err == PD_ERR_BAD_ARG ||
              err == PD_ERR_UNKNOWN_SKILL);
        return;
    }
    const char *why = NULL;
    if (!pd_engine_validate(e, &why)) {
        fprintf(stderr, "fuzz_snapshot: restored engine invalid: %s\n", why ? why : "?");
        abort();
    }
    /* It answers: a query and a tick over whatever was restored. */
    pd_query_t q;
    memset(&q, 0, sizeof(q));
    q.at.lat = 30600000;
    q.at.lon = 114300000;
    q.radius_m = 20000;
    pd_hit_t hits[8];
    size_t n = 0;
    (void)pd_index_nearest(pd_engine_get_index(e), &q, 8, hits, &n);
    size_t expired = 0;
    (void)pd_engine_tick(e, PD_TIME_MAX_MS, &expired);
    CHECK(pd_engine_validate(e, &why));
    pd_engine_destroy(e);
}

static char path[256];

static void remove_file(void) {
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!(data[0] & 1)) {
        restore(data + 1, size - 1);
        return 0;
    }
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/pd-fuzz-snapshot-%ld.pds", dir ? dir : "/tmp",
                 (long)getpid());
        atexit(remove_file);
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) abort();
    fclose(f);
    pd_snapshot_file_t sf;
    memset(&sf, 0, sizeof(sf));
    const char *why = NULL;
    pd_err err = pd_snapshot_file_open(path, &sf, &why);
    if (err) {
        CHECK(err == PD_ERR_CORRUPT || err == PD_ERR_IO);
        return 0;
    }
    CHECK(sf.len <= size);
    restore(sf.data, (size_t)sf.len);
    pd_snapshot_file_close(&sf);
    return 0;
}
