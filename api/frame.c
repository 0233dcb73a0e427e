/* frame.c -- incremental MessagePack frame scanner (see frame.h).
 *
 * The scanner reads only type headers: a header is either a scalar whose
 * payload is skipped, or a container that opens a level with a count of
 * elements still due. An element completing at depth 0 completes the frame.
 * State survives between calls, so each byte is examined once however the
 * frame is split across reads.
 */
#include "frame.h"

#include <string.h>

void pd_frame_scan_init(pd_frame_scan_t *s, size_t max_frame) {
    memset(s, 0, sizeof(*s));
    s->max_frame = max_frame;
}

static uint64_t be_read(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* One element finished at the current level; returns 1 if the frame did. */
static int element_done(pd_frame_scan_t *s) {
    while (s->depth > 0) {
        if (--s->left[s->depth - 1] > 0) return 0;
        s->depth--;
    }
    return 1;
}

/* How a header byte is laid out: bytes of header after the type byte that
 * hold a big-endian length (lenb), extra header bytes (ext type), a fixed
 * payload, and whether it opens a container (1 = array, 2 = map). */
typedef struct hdr_s {
    uint8_t lenb;  /* bytes of length field after the type byte */
    uint8_t extra; /* further header bytes after the length (ext type) */
    uint8_t fixed; /* fixed payload bytes */
    uint8_t open;  /* 0 scalar, 1 array, 2 map */
} hdr_t;

static int classify(uint8_t b, hdr_t *h, uint64_t *inline_n) {
    memset(h, 0, sizeof(*h));
    *inline_n = 0;
    if (b <= 0x7f || b >= 0xe0) return 0;
    if (b <= 0x8f) {
        h->open = 2;
        *inline_n = b & 0x0f;
        return 0;
    }
    if (b <= 0x9f) {
        h->open = 1;
        *inline_n = b & 0x0f;
        return 0;
    }
    if (b <= 0xbf) {
        h->fixed = b & 0x1f;
        return 0;
    }
    switch (b) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
            return 0;
        case 0xc1:
            return -1;
        case 0xc4:
        case 0xd9:
            h->lenb = 1;
            return 0;
        case 0xc5:
        case 0xda:
            h->lenb = 2;
            return 0;
        case 0xc6:
        case 0xdb:
            h->lenb = 4;
            return 0;
        case 0xc7:
            h->lenb = 1;
            h->extra = 1;
            return 0;
        case 0xc8:
            h->lenb = 2;
            h->extra = 1;
            return 0;
        case 0xc9:
            h->lenb = 4;
            h->extra = 1;
            return 0;
        case 0xca:
        case 0xce:
        case 0xd2:
            h->fixed = 4;
            return 0;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            h->fixed = 8;
            return 0;
        case 0xcc:
        case 0xd0:
            h->fixed = 1;
            return 0;
        case 0xcd:
        case 0xd1:
            h->fixed = 2;
            return 0;
        case 0xd4:
            h->fixed = 2;
            return 0;
        case 0xd5:
            h->fixed = 3;
            return 0;
        case 0xd6:
            h->fixed = 5;
            return 0;
        case 0xd7:
            h->fixed = 9;
            return 0;
        case 0xd8:
            h->fixed = 17;
            return 0;
        case 0xdc:
            h->lenb = 2;
            h->open = 1;
            return 0;
        case 0xdd:
            h->lenb = 4;
            h->open = 1;
            return 0;
        case 0xde:
            h->lenb = 2;
            h->open = 2;
            return 0;
        case 0xdf:
            h->lenb = 4;
            h->open = 2;
            return 0;
        default:
            return -1;
    }
}

pd_err pd_frame_scan(pd_frame_scan_t *s, const uint8_t *buf, size_t avail, size_t *len) {
    size_t pos = s->pos;
    *len = 0;
    for (;;) {
        if (s->skip > 0) {
            size_t have = avail - pos;
            if (have < s->skip) {
                pos += have;
                s->skip -= have;
                break;
            }
            pos += (size_t)s->skip;
            s->skip = 0;
            if (element_done(s)) goto complete;
            continue;
        }
        if (pos >= avail) break;
        /* The frame is not complete, so it is longer than pos: at the limit
         * it is too large, whatever the bytes after it hold. Checking here
         * keeps the scanner within max_frame bytes even when a read brought
         * more, so the verdict does not depend on how the bytes arrived. */
        if (pos >= s->max_frame) return PD_ERR_TOO_LARGE;

        hdr_t h;
        uint64_t n;
        if (classify(buf[pos], &h, &n) != 0) return PD_ERR_BAD_REQUEST;
        size_t hlen = 1u + h.lenb + h.extra;
        if (avail - pos < hlen) break;
        if (h.lenb) n = be_read(buf + pos + 1, h.lenb);
        pos += hlen;
        size_t room = pos <= s->max_frame ? s->max_frame - pos : 0;

        if (h.open) {
            uint64_t elems = h.open == 2 ? n * 2 : n;
            if (elems > room) return PD_ERR_TOO_LARGE;
            /* Empty containers count too: msgpack-c refuses to open one
             * past its stack as well. */
            if (s->depth >= PD_FRAME_MAX_DEPTH) {
                s->too_deep = true;
                return PD_ERR_BAD_REQUEST;
            }
            if (elems == 0) {
                if (element_done(s)) goto complete;
                continue;
            }
            s->left[s->depth++] = elems;
            continue;
        }
        uint64_t payload = h.fixed ? h.fixed : n;
        if (payload > room) return PD_ERR_TOO_LARGE;
        if (payload > 0) {
            s->skip = payload;
            continue;
        }
        if (element_done(s)) goto complete;
    }
    /* Need more bytes. A frame that already filled its limit cannot end. */
    if (pos >= s->max_frame) return PD_ERR_TOO_LARGE;
    s->pos = pos;
    return PD_OK;

complete:
    if (pos > s->max_frame) return PD_ERR_TOO_LARGE;
    *len = pos;
    s->pos = 0;
    s->skip = 0;
    s->depth = 0;
    return PD_OK;
}
