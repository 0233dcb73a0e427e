/* snapshot.h -- private to engine/: the cursor that reads a snapshot's
 * payload back, bounds-checked.
 *
 * Reading never trusts the bytes: every get checks that the bytes are
 * there, and a short or malformed payload sets `bad` and yields zeros, so
 * a decoder can read a whole section and check once at the end (the style
 * of a sticky stream error). The checksum of the container catches
 * accidental damage; this catches a payload that is well-formed for the
 * container but not for the decoder (a newer or foreign writer).
 */
#ifndef PAIDAN_ENGINE_SNAPSHOT_H
#define PAIDAN_ENGINE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "journal.h"

typedef struct pd__rd_s {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
    bool bad;           /* a read ran past the end (sticky) */
} pd__rd_t;

/* Take n bytes, or NULL (and bad) if fewer are left. */
static inline const uint8_t *pd__rd_take(pd__rd_t *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static inline uint8_t pd__rd_u8(pd__rd_t *r) {
    const uint8_t *q = pd__rd_take(r, 1);
    return q ? q[0] : 0;
}

static inline uint16_t pd__rd_u16(pd__rd_t *r) {
    const uint8_t *q = pd__rd_take(r, 2);
    return q ? pd__get_u16(q) : 0;
}

static inline uint32_t pd__rd_u32(pd__rd_t *r) {
    const uint8_t *q = pd__rd_take(r, 4);
    return q ? pd__get_u32(q) : 0;
}

static inline uint64_t pd__rd_u64(pd__rd_t *r) {
    const uint8_t *q = pd__rd_take(r, 8);
    return q ? pd__get_u64(q) : 0;
}

static inline double pd__rd_f64(pd__rd_t *r) {
    uint64_t u = pd__rd_u64(r);
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

#endif /* PAIDAN_ENGINE_SNAPSHOT_H */
