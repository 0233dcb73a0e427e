/* utf8.c -- see paidan/utf8.h. The ranges of the second byte rule out the
 * overlong forms, the surrogates and what lies past U+10FFFF (RFC 3629,
 * section 4). */
#include "paidan/utf8.h"

size_t pd_utf8_len(const unsigned char *p, size_t n) {
    unsigned char b = p[0], lo = 0x80, hi = 0xbf; /* the second byte's range */
    size_t len;
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        if (b == 0xe0) lo = 0xa0;
        if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        if (b == 0xf0) lo = 0x90;
        if (b == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return len;
}
