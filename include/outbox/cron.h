/*
 * outbox/cron.h - cron expressions in a time zone: parse one, and find the
 * next time it names. What schedules are made of.
 *
 * An expression has five fields, or six with seconds first:
 *
 *   [second] minute hour day-of-month month day-of-week
 *    0-59    0-59   0-23  1-31        1-12  0-7 (0 and 7: Sunday)
 *
 * Each field is `*`, a value, a range `a-b`, or a list of them separated
 * by commas; any of these may take a step `/n` (`*` / `a-b` / `a` every
 * n, `a/n` meaning a to the field's end). Months and days of the week may
 * be named by their first three letters (jan..dec, sun..sat), in any case.
 * The shorthands @yearly (@annually), @monthly, @weekly, @daily
 * (@midnight) and @hourly stand for their usual five fields.
 *
 * Day of month and day of week follow Vixie cron: when both are
 * restricted (neither starts with `*`), a day matches if either does;
 * otherwise the restricted one alone decides.
 *
 * Times are local to an IANA time zone ("Europe/Berlin"; Debian's tzdata)
 * and daylight saving is handled so that a tick never runs twice:
 *   - a local time the clocks skip (spring forward) runs once, at the
 *     instant the clocks jump (every tick in the skipped hour runs then, as
 *     one);
 *   - a local time the clocks repeat (fall back) runs at its first
 *     occurrence only: the repeated hour has no ticks of its own.
 *
 * Thread-safe: a parsed expression is immutable.
 */
#ifndef OUTBOX_CRON_H
#define OUTBOX_CRON_H

#include <stdint.h>

#include "outbox/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_CRON_MAX 256 /* bytes of an expression */

typedef struct ob_cron ob_cron;

/* Parse `expr` for the zone `tz` (NULL or "": UTC). On success *out owns
 * the result (ob_cron_free). Returns 0, OB_ENOMEM, or OB_EINVAL with *p
 * (may be NULL) naming "cron" (and which field, in the message) or
 * "timezone". */
int ob_cron_parse(const char *expr, const char *tz, ob_cron **out, ob_problem *p);
/* (*out is NULL on failure.) */

/* The first time after `after_ms` (ms since the epoch, exclusive) that c
 * names, in whole seconds, into *next_ms. Returns 0, or OB_ENOTFOUND when
 * it names no time within the next eight years (February 30th). */
int ob_cron_next(const ob_cron *c, int64_t after_ms, int64_t *next_ms);

/* NULL is a no-op. */
void ob_cron_free(ob_cron *c);

#ifdef __cplusplus
}
#endif
#endif
