/*
 * log.c - the library's one log sink. Lines are formatted here (time,
 * level, message) and handed whole to the sink, so a sink never sees a
 * half line and stderr lines from several threads do not interleave.
 *
 * Every message is scrubbed (scrub.c) on its way: a control character
 * from a client, a job's error or a response body is escaped, so it cannot
 * end the line and forge another one; URLs lose their userinfo and query.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

static ob_log_fn sink_fn;
static void *sink_arg;
static ob_log_level sink_min = OB_LOG_WARN;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ob_log_set(ob_log_fn fn, void *arg, ob_log_level min_level)
{
    sink_fn = fn;
    sink_arg = arg;
    sink_min = min_level;
}

bool ob_log_enabled(ob_log_level level) { return level >= sink_min; }

void ob_logf(ob_log_level level, const char *fmt, ...)
{
    if (level < sink_min)
        return;
    char msg[2048], line[4096], ts[32];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    int n = snprintf(line, sizeof line, "%s %s ", ob_time_format(ob_now_ms(), ts),
                     level_names[level]);
    ob_scrub(msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1, line + n,
             sizeof line - (size_t)n - 1);
    if (sink_fn) {
        sink_fn(sink_arg, level, line);
        return;
    }
    size_t end = strlen(line);
    line[end] = '\n'; /* ob_scrub left room: end < sizeof line - 1 */
    if (write(2, line, end + 1) < 0) {
        /* nowhere left to report it */
    }
}
