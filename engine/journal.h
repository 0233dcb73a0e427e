/* journal.h -- private to engine/: the little-endian codecs and the file
 * helpers that journal.c (segments, the data directory) and snapshot.c
 * (snapshot files, the engine's state) share.
 *
 * Every integer on disk is little-endian and unaligned; the codecs below
 * compile to plain loads and stores on x86-64 and arm64. File helpers
 * retry on EINTR and turn errno into PD_ERR_IO at the call site, as the
 * house style asks; the errno value is left for the caller's message.
 */
#ifndef PAIDAN_ENGINE_JOURNAL_H
#define PAIDAN_ENGINE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "paidan/error.h"
#include "paidan/journal.h"

static inline void pd__put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void pd__put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void pd__put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t pd__get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t pd__get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline uint64_t pd__get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Write all n bytes at the file offset (retrying short writes and EINTR).
 * Returns PD_ERR_IO with errno set. */
pd_err pd__write_all(int fd, const void *p, size_t n);

/* fsync a directory, so a create / rename / unlink inside it is durable. */
pd_err pd__fsync_dir(const char *dir);

/* The directory part of a path ("." if none) into buf (PD_STORE_PATH_MAX). */
void pd__dirname(const char *path, char *buf);

/* Monotonic clock in nanoseconds. */
uint64_t pd__now_ns(void);

#endif /* PAIDAN_ENGINE_JOURNAL_H */
