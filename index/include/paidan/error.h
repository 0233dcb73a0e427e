/* error.h -- paidan's error codes, defined once and shared by every layer.
 *
 * The codes are stable API: they travel on the wire as [code, message] and
 * clients switch on them. New codes are appended; none is ever renumbered.
 */
#ifndef PAIDAN_ERROR_H
#define PAIDAN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, code, message) */
#define PD_ERR_MAP(XX)                           \
    XX(OK, 0, "ok")                              \
    XX(BAD_ARG, 1, "bad argument")               \
    XX(UNKNOWN_METHOD, 2, "unknown method")      \
    XX(BAD_COORD, 3, "coordinates out of range") \
    XX(NOT_FOUND, 4, "not found")                \
    XX(EXISTS, 5, "already exists")              \
    XX(ILLEGAL, 6, "illegal state transition")   \
    XX(UNAUTHORIZED, 7, "unauthorized")          \
    XX(TOO_LARGE, 8, "too large")                \
    XX(LIMIT, 9, "limit reached")                \
    XX(NOMEM, 10, "out of memory")               \
    XX(BOUNDS, 11, "output buffer too small")    \
    XX(IO, 12, "i/o error")                      \
    XX(CORRUPT, 13, "corrupt data")              \
    XX(INTERNAL, 14, "internal error")           \
    XX(UNKNOWN_SKILL, 15, "unknown skill")       \
    XX(BAD_REQUEST, 16, "malformed request")     \
    XX(READ_ONLY, 17, "read-only replica")

typedef enum pd_err {
#define PD__ERR_ENUM(name, code, msg) PD_ERR_##name = code,
    PD_ERR_MAP(PD__ERR_ENUM)
#undef PD__ERR_ENUM
        PD_ERR__END
} pd_err;

#define PD_OK PD_ERR_OK

/** Human-readable message for an error code; never NULL. */
const char *pd_strerror(pd_err err);

/** Symbolic name of an error code ("NOT_FOUND"); never NULL. */
const char *pd_err_name(pd_err err);

/* Defensive branches: assert in debug builds, recover in release builds. */
#ifdef NDEBUG
#define PD_NEVER(x) (x)
#define PD_ALWAYS(x) (x)
#else
#include <assert.h>
#define PD_NEVER(x) ((x) ? (assert(0 && #x), 1) : 0)
#define PD_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#endif

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_ERROR_H */
