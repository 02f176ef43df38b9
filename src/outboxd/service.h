/*
 * service.h - outboxd and its service manager (service.c): sd_notify's
 * READY, RELOADING, STOPPING, WATCHDOG and STATUS.
 */
#ifndef OB_OUTBOXD_SERVICE_H
#define OB_OUTBOXD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "outbox/common.h"
#include "outbox/id.h"
#include "outbox/jobs.h"

/* Read $WATCHDOG_USEC (and $WATCHDOG_PID): call once, at start. */
void service_init(void);
/* How often (ms) the main loop must call service_tick; -1: never. */
int64_t service_tick_ms(void);
void service_ready(const char *status);
void service_reloading(void);
void service_stopping(void);
/* WATCHDOG=1, if the watchdog is on and the engine is ready. */
void service_tick(ob_engine *e);
/* Whether stderr is the journal ($JOURNAL_STREAM). */
bool service_journal_stderr(void);
/* Send one ob_log line ("TIME LEVEL MESSAGE") to the journal. */
void service_journal(ob_log_level level, const char *line);

#endif
