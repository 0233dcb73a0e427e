/* frame.h -- finds where one MessagePack object ends in a byte stream.
 *
 * Private to api/: shared by the server and the client library.
 *
 * TCP delivers bytes, not messages. Before a frame is decoded we walk its
 * type headers to learn its exact length, incrementally, so a frame that
 * trickles in one byte at a time is scanned once, not once per read. The
 * walk is also where the limits live: a frame longer than `max_frame` is
 * refused as soon as its prefix shows it, and so is a container header that
 * declares more elements than the rest of the frame could hold (each element
 * takes at least one byte). That second rule matters because msgpack-c
 * allocates a container's element array from the header alone: without it a
 * five-byte "array of 2^32 elements" would ask for 96 GiB.
 *
 * Once a frame is known complete, the caller decodes exactly those bytes
 * with msgpack_unpack() into a zone it reuses, so steady-state decoding does
 * not allocate.
 */
#ifndef PAIDAN_API_FRAME_H
#define PAIDAN_API_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "paidan/error.h"

/* Deepest nesting accepted; msgpack-c's own decoder stops at 32 too. */
#define PD_FRAME_MAX_DEPTH 32

/** Incremental scanner state; one per stream. Zero-initialise, then set max_frame. */
typedef struct pd_frame_scan_s {
    size_t max_frame;                  /* largest frame accepted, bytes */
    size_t pos;                        /* bytes of the current frame scanned */
    uint64_t skip;                     /* payload bytes still to step over */
    uint32_t depth;                    /* open containers */
    uint64_t left[PD_FRAME_MAX_DEPTH]; /* elements still due in each one */
    bool too_deep;                     /* the error was the nesting, not the bytes */
} pd_frame_scan_t;

/** Prepare a scanner for a new stream. */
void pd_frame_scan_init(pd_frame_scan_t *s, size_t max_frame);

/**
 * Continue scanning the frame that starts at `buf`.
 * @param buf   the first byte of the current frame.
 * @param avail bytes available from `buf` (>= what was passed last time).
 * @param len   set to the frame's length when it is complete.
 * @return PD_OK with *len > 0 when a whole frame is in `buf` (the scanner
 *   is then ready for the next frame); PD_OK with *len == 0 when more bytes
 *   are needed; PD_ERR_TOO_LARGE when the frame exceeds max_frame;
 *   PD_ERR_BAD_REQUEST when the bytes are not MessagePack (0xc1) or nest
 *   deeper than PD_FRAME_MAX_DEPTH. After an error the stream is broken.
 */
pd_err pd_frame_scan(pd_frame_scan_t *s, const uint8_t *buf, size_t avail, size_t *len);

#endif /* PAIDAN_API_FRAME_H */
