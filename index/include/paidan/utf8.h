/* utf8.h -- the one UTF-8 check the layers share: messages and printed
 * values quote users' bytes (CSV fields, paths, method names, replies), and
 * MessagePack strings and JSON must stay UTF-8 whatever those bytes were.
 */
#ifndef PAIDAN_UTF8_H
#define PAIDAN_UTF8_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Length (1..4) of the well-formed UTF-8 sequence at p[0..n), or 0 if
 * there is none: a stray continuation byte, a sequence cut short by n, an
 * overlong form, a surrogate (U+D800..U+DFFF) or past U+10FFFF. An ASCII
 * byte, control characters included, is a sequence of 1. n >= 1.
 */
size_t pd_utf8_len(const unsigned char *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* PAIDAN_UTF8_H */
