/* json.h -- JSON <-> MessagePack for paidan-cli.
 *
 * Private to api/. People type JSON, the server speaks MessagePack; these
 * two functions are the whole bridge. JSON numbers without a fraction or
 * exponent become integers, others doubles; strings are UTF-8 with every
 * JSON escape (including \u surrogate pairs) decoded; at most 31 arrays
 * and objects nest, so that the value fits in a request as params. On
 * output, bin data prints as a hex string, ext values as {"ext": type,
 * "hex": "..."}, non-string map keys as their JSON text in a string, NaN and
 * the infinities as null, and bytes of a string that are not UTF-8 as
 * U+FFFD: the output is always valid JSON.
 */
#ifndef PAIDAN_API_JSON_H
#define PAIDAN_API_JSON_H

#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>

#include "paidan/error.h"

/**
 * Parse one JSON value (surrounding whitespace allowed, nothing else) and
 * pack it onto `pk`.
 * @param errbuf on failure, a message naming the byte offset; may be NULL.
 * @return PD_OK; PD_ERR_BAD_ARG on a syntax error (nothing packed);
 *   PD_ERR_NOMEM.
 */
pd_err pd_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, char *errbuf,
                          size_t errlen);

/** Print `o` as compact JSON on `f` (no trailing newline). */
void pd_json_print(FILE *f, const msgpack_object *o);

#endif /* PAIDAN_API_JSON_H */
