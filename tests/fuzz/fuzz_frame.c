/* fuzz_frame.c -- the incremental frame scanner against itself and msgpack-c.
 *
 * The server and the client cut a byte stream into MessagePack frames with
 * pd_frame_scan() before decoding them (api/frame.h). This target checks,
 * on arbitrary bytes, that:
 *   - the scanner never reads outside what it is given, never loops, and
 *     gives the same answer (frame length or error) whether the bytes
 *     arrive at once or in small pieces, as TCP may deliver them;
 *   - every frame it calls complete decodes with msgpack_unpack() to
 *     exactly that many bytes, with memory bounded by the frame's size
 *     (the guard against a small header claiming a huge container).
 *
 * Input: byte 0 picks the frame limit (64 bytes .. 64 KiB), byte 1 the
 * piece size of the incremental feed (1 .. 256 bytes); the rest is the
 * stream, frames back to back, as the server reads it.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                    \
    do {                            \
        if (!(x)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t max_frame = (size_t)64 << (data[0] % 11);
    size_t piece = 1u + data[1];
    const uint8_t *stream = data + 2;
    size_t len = size - 2;

    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096)) return 0;
    pd_frame_scan_t whole, inc;
    pd_frame_scan_init(&whole, max_frame);
    pd_frame_scan_init(&inc, max_frame);

    size_t off = 0;
    while (off < len) {
        size_t avail = len - off;
        size_t flen_whole = 0;
        pd_err err_whole = pd_frame_scan(&whole, stream + off, avail, &flen_whole);

        /* The same bytes, a piece at a time, as successive reads. */
        size_t flen_inc = 0, fed = 0;
        pd_err err_inc = PD_OK;
        while (fed < avail) {
            fed = fed + piece < avail ? fed + piece : avail;
            err_inc = pd_frame_scan(&inc, stream + off, fed, &flen_inc);
            if (err_inc || flen_inc) break;
        }
        CHECK(err_inc == err_whole);
        CHECK(flen_inc == flen_whole);
        if (err_whole || flen_whole == 0) break;
        CHECK(flen_whole <= avail && flen_whole <= max_frame);

        msgpack_object o;
        size_t used = 0;
        msgpack_unpack_return rc =
            msgpack_unpack((const char *)stream + off, flen_whole, &used, &zone, &o);
        CHECK(rc == MSGPACK_UNPACK_SUCCESS);
        CHECK(used == flen_whole);
        msgpack_zone_clear(&zone);
        off += flen_whole;
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
