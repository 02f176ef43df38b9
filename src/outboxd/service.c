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
 *
 * And its log: when stderr is the journal ($JOURNAL_STREAM names it) and
 * no log file or JSON is asked for, each line goes to the journal with
 * sd_journal_send: its priority, SYSLOG_IDENTIFIER=outboxd and, when the
 * line names a job, OUTBOX_JOB_ID (journalctl OUTBOX_JOB_ID=... finds a
 * job's whole story).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

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

/* ---- the journal ---- */

bool service_journal_stderr(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
           (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* The first job id (a UUID) in s, into id; false if none. */
static bool job_id_in(const char *s, char id[OB_ID_STRLEN + 1])
{
    for (const char *p = s; *p; p++) {
        ob_id v;
        if (isxdigit((unsigned char)*p) && (p == s || !isxdigit((unsigned char)p[-1])) &&
            strnlen(p, OB_ID_STRLEN) == OB_ID_STRLEN) {
            snprintf(id, OB_ID_STRLEN + 1, "%.*s", OB_ID_STRLEN, p);
            if (!ob_id_parse(id, &v))
                return true;
        }
    }
    return false;
}

void service_journal(ob_log_level level, const char *line)
{
    static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    /* "TIME LEVEL MESSAGE": the journal keeps its own time and priority */
    const char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    const char *msg = sp2 ? sp2 + 1 : line;
    char id[OB_ID_STRLEN + 1];
    int p = level >= OB_LOG_DEBUG && level <= OB_LOG_ERROR ? prio[level] : LOG_INFO;
    if (job_id_in(msg, id))
        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", p, "SYSLOG_IDENTIFIER=outboxd",
                        "OUTBOX_JOB_ID=%s", id, NULL);
    else
        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", p, "SYSLOG_IDENTIFIER=outboxd", NULL);
}
