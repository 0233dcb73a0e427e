/* test_utf8.c -- pd_utf8_len against a decoder written the other way
 * round (decode the code point, then check its range), over every
 * sequence of one to three bytes and a sweep of four-byte ones, plus the
 * cases RFC 3629 names. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "paidan/utf8.h"

/* The oracle: the length of a shortest-form encoding of a scalar value
 * that p[0..n) starts with, or 0. */
static size_t oracle(const unsigned char *p, size_t n) {
    if (p[0] < 0x80) return 1;
    size_t len = (p[0] & 0xe0) == 0xc0   ? 2
                 : (p[0] & 0xf0) == 0xe0 ? 3
                 : (p[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (!len || n < len) return 0;
    uint32_t cp = p[0] & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

Test(utf8, every_short_sequence_agrees_with_the_oracle) {
    unsigned char b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (unsigned char)x;
        cr_assert_eq(pd_utf8_len(b, 1), oracle(b, 1), "%02x", x);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (unsigned char)y;
            cr_assert_eq(pd_utf8_len(b, 2), oracle(b, 2), "%02x %02x", x, y);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (unsigned char)z;
                size_t got = pd_utf8_len(b, 3), want = oracle(b, 3);
                if (got != want) cr_assert_fail("%02x %02x %02x: %zu, not %zu", x, y, z, got, want);
            }
        }
    }
}

Test(utf8, four_byte_sequences_agree_with_the_oracle) {
    unsigned char b[4];
    for (unsigned x = 0xe8; x < 0x100; x++)
        for (unsigned y = 0; y < 256; y++)
            for (unsigned z = 0x70; z < 0xd0; z += 3)
                for (unsigned w = 0; w < 256; w++) {
                    b[0] = (unsigned char)x;
                    b[1] = (unsigned char)y;
                    b[2] = (unsigned char)z;
                    b[3] = (unsigned char)w;
                    size_t got = pd_utf8_len(b, 4), want = oracle(b, 4);
                    if (got != want)
                        cr_assert_fail("%02x %02x %02x %02x: %zu, not %zu", x, y, z, w, got, want);
                }
}

Test(utf8, the_named_cases) {
    static const struct {
        const char *bytes;
        size_t n, want;
    } cases[] = {
        {"A", 1, 1},
        {"\x7f", 1, 1},             /* a control character is still one byte */
        {"\xc3\xa9", 2, 2},         /* é */
        {"\xe6\x96\xb9", 3, 3},     /* 方 */
        {"\xf0\x9f\x98\x80", 4, 4}, /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
        {"\xc0\x80", 2, 0},         /* overlong NUL */
        {"\xe0\x80\xaf", 3, 0},     /* overlong '/' */
        {"\xf0\x80\x80\xaf", 4, 0}, /* overlong '/' */
        {"\xed\xa0\x80", 3, 0},     /* a surrogate */
        {"\xf4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
        {"\x80", 1, 0},             /* a stray continuation byte */
        {"\xe6\x96", 2, 0},         /* cut short */
        {"\xe6\x96\xb9", 2, 0},     /* cut short by n */
        {"\xfe", 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(pd_utf8_len((const unsigned char *)cases[i].bytes, cases[i].n), cases[i].want,
                     "case %zu", i);
}
