/* log.c -- stderr logging with levels and UTC millisecond timestamps.
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so lines from the server never interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pd_log_level g_level = PD_LOG_INFO;
static bool g_journal; /* stderr is systemd's journal */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
/* syslog priorities, the "<N>" prefix journald reads (sd-daemon(3)) */
static const char *const journal_prio[] = {"<7>", "<6>", "<4>", "<3>"};

void pd_log_detect_journal(void) {
    /* systemd sets JOURNAL_STREAM=DEV:INODE for the stream it gave the
     * service; stderr may since have been redirected elsewhere. */
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    g_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void pd_log_set_level(pd_log_level level) {
    g_level = level;
}

pd_log_level pd_log_get_level(void) {
    return g_level;
}

const char *pd_log_level_name(pd_log_level level) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return level <= PD_LOG_ERROR ? names[level] : "?";
}

pd_err pd_log_level_from_name(const char *s, pd_log_level *out) {
    if (strcmp(s, "debug") == 0)
        *out = PD_LOG_DEBUG;
    else if (strcmp(s, "info") == 0)
        *out = PD_LOG_INFO;
    else if (strcmp(s, "warn") == 0 || strcmp(s, "warning") == 0)
        *out = PD_LOG_WARN;
    else if (strcmp(s, "error") == 0)
        *out = PD_LOG_ERROR;
    else
        return PD_ERR_BAD_ARG;
    return PD_OK;
}

int pd_log_enabled(pd_log_level level) {
    return level >= g_level;
}

void pd_log(pd_log_level level, const char *fmt, ...) {
    if (level < g_level) return;
    char line[1024];
    size_t n;
    if (g_journal) {
        /* the journal stamps each line itself; give it the priority */
        n = (size_t)snprintf(line, sizeof line, "%s", journal_prio[level]);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                              level_names[level]);
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (w < 0) w = 0;
    n += (size_t)w;
    if (n > sizeof(line) - 2) n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}
