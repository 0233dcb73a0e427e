/* fuzz_journal.c -- the journal reader on arbitrary segment files.
 *
 * Recovery reads journal segments that a crash, a full disk or a faulty
 * disk may have left in any state, so pd_journal_scan() must take any bytes:
 * never read outside the file, never loop, hand out only whole records with
 * consecutive sequence numbers, and say how the segment ended (clean, torn
 * tail, or corruption in the middle) consistently with what it handed out.
 *
 * Random bytes almost never carry valid XXH3 checksums, which would keep
 * the fuzzer at the first record. So in "fix-up" mode (input byte 0 odd)
 * the harness first recomputes the header checksum and the checksum of
 * every record it can walk by its length field, as a writer would have,
 * and only then scans: the fuzzer then explores lengths, sequence numbers,
 * flags, torn tails and resynchronisation. In raw mode (byte 0 even) the
 * bytes are scanned as they are. The file lives in /dev/shm (or $TMPDIR).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "paidan/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                    \
    do {                            \
        if (!(x)) __builtin_trap(); \
    } while (0)

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recompute the checksums a writer would have written (journal.c layout). */
static void fix_up(uint8_t *b, size_t size) {
    if (size < PD_JOURNAL_HEADER_SIZE) return;
    put_u64(b + 24, XXH3_64bits(b, 24));
    size_t off = PD_JOURNAL_HEADER_SIZE;
    while (size - off >= PD_JREC_HEADER_SIZE) {
        uint32_t len = get_u32(b + off + 8);
        if (len > size - off - PD_JREC_HEADER_SIZE) break;
        put_u64(b + off, XXH3_64bits(b + off + 8, (size_t)len + PD_JREC_HEADER_SIZE - 8));
        off += PD_JREC_HEADER_SIZE + len;
    }
}

typedef struct seen_s {
    uint64_t n;
    uint64_t next_seq;
    uint64_t bytes;
} seen_t;

static pd_err on_rec(void *ud, const pd_jrec_t *rec) {
    seen_t *s = ud;
    if (s->n == 0) s->next_seq = rec->seq;
    CHECK(rec->seq == s->next_seq);
    CHECK(rec->len <= PD_JREC_MAX_LEN);
    /* Touch every payload byte: ASan checks they are inside the file. */
    uint8_t x = 0;
    for (uint32_t i = 0; i < rec->len; i++) x ^= rec->data[i];
    (void)x;
    s->n++;
    s->next_seq++;
    s->bytes += PD_JREC_HEADER_SIZE + rec->len;
    return PD_OK;
}

static char path[256];

static void remove_file(void) {
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/pd-fuzz-journal-%ld.pdj", dir ? dir : "/tmp",
                 (long)getpid());
        atexit(remove_file);
    }
    bool fix = data[0] & 1;
    size_t len = size - 1;
    uint8_t *b = malloc(len ? len : 1);
    if (!b) return 0;
    memcpy(b, data + 1, len);
    if (fix) fix_up(b, len);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (len && fwrite(b, 1, len, f) != len) abort();
    fclose(f);
    free(b);

    seen_t seen = {0, 0, 0};
    pd_jscan_t sc;
    memset(&sc, 0, sizeof(sc));
    pd_err err = pd_journal_scan(path, on_rec, &seen, &sc);
    if (err == PD_ERR_CORRUPT || err == PD_ERR_IO) {
        CHECK(seen.n == 0);
        return 0;
    }
    CHECK(err == PD_OK);
    CHECK(sc.file_size == len);
    CHECK(sc.n_records == seen.n);
    CHECK(sc.end == PD_JOURNAL_HEADER_SIZE + seen.bytes);
    CHECK(sc.end <= sc.file_size);
    CHECK(sc.last_seq == sc.first_seq + sc.n_records - 1);
    if (seen.n) CHECK(seen.next_seq - 1 == sc.last_seq);
    if (sc.how == PD_JSCAN_CLEAN) {
        CHECK(sc.end == sc.file_size);
    } else {
        CHECK(sc.how == PD_JSCAN_TORN || sc.how == PD_JSCAN_CORRUPT);
        CHECK(sc.bad_offset == sc.end && sc.end < sc.file_size);
        CHECK(sc.why != NULL);
    }
    return 0;
}
