/*
 * service.c - outboxd under a service manager: systemd's notification
 * protocol through libsystemd (sd_notify). Without $NOTIFY_SOCKET (a
 * terminal, a test, another init) every call does nothing.
 *
 *   READY=1        once the server listens and the workers run: with
 *                  Type=notify, units ordered after outboxd start only then
 *   RELOADING=1    on SIGHUP, then READY=1 once the log is reopened
 *   STOPPING=1     when a stop begins (drain: requests, then workers)
 *   WATCHDOG=1     with WatchdogSec=, from the main loop, every half of the
 *                  period, and only while the engine is ready (its store
 *                  takes commits): a wedged main loop or a store failing
 *                  for longer than the period gets outboxd restarted
 *   STATUS=...     a line `systemctl status` shows
 */
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "service.h"

static uint64_t watchdog_usec;

void service_init(void)
{
    if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
        watchdog_usec = 0;
}

int64_t service_tick_ms(void)
{
    return watchdog_usec ? (int64_t)(watchdog_usec / 2000) : -1;
}

void service_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void service_reloading(void) { sd_notify(0, "RELOADING=1"); }

void service_stopping(void) { sd_notify(0, "STOPPING=1\nSTATUS=draining requests and workers"); }

void service_tick(ob_engine *e)
{
    if (watchdog_usec && ob_engine_ready(e) == 0)
        sd_notify(0, "WATCHDOG=1");
}
