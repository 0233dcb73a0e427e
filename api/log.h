/* log.h -- the server's log: one line per event on stderr, with a UTC
 * timestamp and a level, filtered by --log-level (under systemd, the
 * level as the journal's priority: pd_log_detect_journal).
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

/** Under systemd, with stderr still the journal stream it gave
 *  (JOURNAL_STREAM), print lines as "<N>message": journald keeps the
 *  level as the entry's priority (`journalctl -p warning`) and stamps the
 *  time itself. Otherwise lines keep their own timestamp and level. */
void pd_log_detect_journal(void);

/** Set the lowest level that is printed (default PD_LOG_INFO). */
void pd_log_set_level(pd_log_level level);

/** The level set, and its name as --log-level takes it. */
pd_log_level pd_log_get_level(void);
const char *pd_log_level_name(pd_log_level level);

/** Parse "debug", "info", "warn"/"warning", "error". @return PD_ERR_BAD_ARG if unknown. */
pd_err pd_log_level_from_name(const char *s, pd_log_level *out);

/** True if `level` would be printed. */
int pd_log_enabled(pd_log_level level);

/** Print one line: "2024-03-04T08:00:00.123Z INFO message". */
void pd_log(pd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* PAIDAN_API_LOG_H */
