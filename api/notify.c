/* notify.c -- systemd's notify protocol for paidan-server (notify.h).
 *
 * libsystemd's sd_notify() does the talking (a datagram to the socket
 * named by NOTIFY_SOCKET). The timer runs only when someone listens: every
 * half watchdog interval when the unit sets WatchdogSec= (as sd_watchdog_
 * enabled(3) advises), else every STATUS_MS to keep the status line
 * current.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "server.h"

#ifdef PD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define STATUS_MS 10000

static bool listened_to(void) {
#ifdef PD_HAVE_SYSTEMD
    const char *s = getenv("NOTIFY_SOCKET");
    return s && *s;
#else
    return false;
#endif
}

static void send_line(const char *line) {
#ifdef PD_HAVE_SYSTEMD
    int r = sd_notify(0, line);
    if (r < 0) pd_log(PD_LOG_WARN, "sd_notify(%s): error %d", line, r);
#else
    (void)line;
#endif
}

void pd_notify_status(const char *fmt, ...) {
    if (!listened_to()) return;
    char line[256] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 7, sizeof line - 7, fmt, ap);
    va_end(ap);
    send_line(line);
}

static void status_now(pd_server_t *srv, double rps) {
    pd_notify_status("serving %zu volunteers, %zu orders, %u connections; %.0f requests/s",
                     pd_engine_volunteer_count(srv->engine),
                     pd_engine_order_count(srv->engine, PD_ORDER__COUNT), srv->n_conns, rps);
}

static void on_notify_timer(uv_timer_t *t) {
    pd_server_t *srv = t->data;
    if (srv->notify_watchdog) send_line("WATCHDOG=1");
    uint64_t now = uv_hrtime();
    if (now - srv->notify_status_hr >= (uint64_t)STATUS_MS * 1000000u) {
        double secs = (double)(now - srv->notify_status_hr) / 1e9;
        status_now(srv, (double)(srv->n.requests - srv->notify_requests) / secs);
        srv->notify_status_hr = now;
        srv->notify_requests = srv->n.requests;
    }
}

void pd_notify_ready(pd_server_t *srv) {
    if (!listened_to()) return;
    send_line("READY=1");
    status_now(srv, 0);
    uint64_t period_ms = STATUS_MS;
#ifdef PD_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        srv->notify_watchdog = true;
        uint64_t half = usec / 2000;
        period_ms = half < 1 ? 1 : half < period_ms ? half : period_ms;
        pd_log(PD_LOG_INFO, "watchdog: pinging systemd every %llu ms",
               (unsigned long long)period_ms);
    }
#endif
    uv_update_time(srv->loop); /* the start may have taken seconds */
    srv->notify_status_hr = uv_hrtime();
    srv->notify_requests = srv->n.requests;
    uv_timer_init(srv->loop, &srv->notify_timer);
    srv->notify_timer.data = srv;
    uv_timer_start(&srv->notify_timer, on_notify_timer, period_ms, period_ms);
    srv->notify_on = true;
}

void pd_notify_reloading(void) {
    if (listened_to()) send_line("RELOADING=1");
}

void pd_notify_reloaded(pd_server_t *srv) {
    if (!listened_to()) return;
    send_line("READY=1");
    status_now(srv, 0);
}

void pd_notify_stopping(pd_server_t *srv) {
    if (!listened_to()) return;
    send_line("STOPPING=1");
    pd_notify_status("stopping: closing connections, writing the last snapshot");
    if (srv->notify_on) uv_timer_stop(&srv->notify_timer);
}

void pd_notify_close(pd_server_t *srv) {
    if (!srv->notify_on) return;
    uv_close((uv_handle_t *)&srv->notify_timer, NULL);
    srv->notify_on = false;
}
