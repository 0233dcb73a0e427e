/* notify.h -- paidan-server and its service manager: systemd's notify
 * protocol (sd_notify(3)), for a unit with Type=notify.
 *
 * Private to api/. The server says READY=1 once it listens (after
 * recovery and --load-volunteers, which can take seconds), STOPPING=1 when
 * a signal stops it, a STATUS= line along the way (`systemctl status`
 * shows it), and WATCHDOG=1 from a loop timer when the unit sets
 * WatchdogSec=: a loop stuck in one place stops the pings, and systemd
 * restarts the server. Started any other way (no NOTIFY_SOCKET in the
 * environment), or built without libsystemd, every call does nothing.
 */
#ifndef PAIDAN_API_NOTIFY_H
#define PAIDAN_API_NOTIFY_H

typedef struct pd_server_s pd_server_t;

/** STATUS=<formatted text>: what the server is doing, in a few words. */
void pd_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** READY=1 with a status line of what is served; starts the timer that
 *  pings the watchdog and refreshes the status. */
void pd_notify_ready(pd_server_t *srv);

/** RELOADING=1: a reload (SIGHUP) begins. */
void pd_notify_reloading(void);

/** READY=1 again, with the status line, once a reload is done. */
void pd_notify_reloaded(pd_server_t *srv);

/** STOPPING=1, and the timer stops. */
void pd_notify_stopping(pd_server_t *srv);

/** Close the timer's handle (with the server's other handles). */
void pd_notify_close(pd_server_t *srv);

#endif /* PAIDAN_API_NOTIFY_H */
