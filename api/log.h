/* log.h -- the server's log: one line per event on stderr, with a UTC
 * timestamp and a level, filtered by --log-level.
 *
 * Private to api/. Never called on the request hot path: the server logs
 * connections, limits, stalls and lifecycle, not requests.
 */
#ifndef PAIDAN_API_LOG_H
#define PAIDAN_API_LOG_H

#include "paidan/error.h"

typedef enum pd_log_level {
    PD_LOG_DEBUG = 0,
    PD_LOG_INFO = 1,
    PD_LOG_WARN = 2,
    PD_LOG_ERROR = 3
} pd_log_level;

/** Set the lowest level that is printed (default PD_LOG_INFO). */
void pd_log_set_level(pd_log_level level);

/** Parse "debug", "info", "warn"/"warning", "error". @return PD_ERR_BAD_ARG if unknown. */
pd_err pd_log_level_from_name(const char *s, pd_log_level *out);

/** True if `level` would be printed. */
int pd_log_enabled(pd_log_level level);

/** Print one line: "2024-03-04T08:00:00.123Z INFO message". */
void pd_log(pd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* PAIDAN_API_LOG_H */
