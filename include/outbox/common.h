/*
 * outbox/common.h - what every part of liboutbox shares: the error
 * convention, logging and the clock.
 *
 * Error convention: every public function that can fail returns an int,
 * 0 (OB_OK) on success or one of the negative OB_E* codes below, and
 * ob_strerror() names it. Unless a function says otherwise, on failure
 * nothing changed and no output parameter was written.
 */
#ifndef OUTBOX_COMMON_H
#define OUTBOX_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    OB_OK = 0,
    OB_EINVAL = -1,     /* an argument is invalid (see the field it names) */
    OB_ENOMEM = -2,     /* out of memory */
    OB_ENOTFOUND = -3,  /* no such job */
    OB_ESTATE = -4,     /* the job's state does not allow this */
    OB_EFULL = -5,      /* queue full: the limit of unfinished jobs is reached */
    OB_EBUSY = -6,      /* overloaded: too many operations in flight, retry later */
    OB_ENOSPC = -7,     /* store: no space left on device */
    OB_EIO = -8,        /* store: I/O error */
    OB_ESTORE = -9,     /* store: other failure (corrupt, cannot open, ...) */
    OB_ETIMEDOUT = -10, /* the wait ended before the event */
    OB_ESHUTDOWN = -11, /* the engine is closing */
    OB_ETOOBIG = -12,   /* a value exceeds its size limit */
    OB_ENOKIND = -13,   /* no handler is registered for this job kind */
    OB_ELOCKED = -14,   /* the store is in use by another process */
    OB_ESCHEMA = -15,   /* the store was written by a newer outbox */
    OB_EGONE = -16,     /* the client has gone (closed, or its request timed out) */
    OB_EADDR = -17,     /* cannot listen on the address (in use, or not permitted) */
    OB_EUNAVAIL = -18,  /* store: the database cannot be reached now; retry later */
};

/* What is wrong with an input, for the one who sent it: the member it
 * names ("kind", "to[2]", "headers.X-Foo"; "" when it is the whole input)
 * and a sentence. Every call that judges an input takes an `ob_problem *`
 * (NULL when the caller does not want it) and fills it in whenever it
 * returns an error. Plain data: nothing to free. */
typedef struct ob_problem {
    char field[96];
    char message[256];
} ob_problem;

/* Name of an OB_E* code, e.g. "queue full". Never NULL; static storage. */
const char *ob_strerror(int rc);

/* Logging. The library logs rare events (a job rescued, a store error, a
 * stale answer dropped) through one sink. By default lines at
 * OB_LOG_WARN and above go to stderr. */
typedef enum { OB_LOG_DEBUG, OB_LOG_INFO, OB_LOG_WARN, OB_LOG_ERROR } ob_log_level;
typedef void (*ob_log_fn)(void *arg, ob_log_level level, const char *line);

/* Replace the sink (NULL restores stderr) and the minimum level. The sink
 * may be called from any thread; `line` is valid only during the call.
 * Not thread-safe against concurrent logging: call at start-up. */
void ob_log_set(ob_log_fn fn, void *arg, ob_log_level min_level);
/* Write a line through the sink, as the library does: scrubbed (control
 * characters escaped, URLs without credentials), at most 4 KiB, with a
 * timestamp and the level when the sink is stderr. Any thread. */
void ob_logf(ob_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether a line at `level` would be written (to skip costly formatting). */
bool ob_log_enabled(ob_log_level level);

/* A fixed-bucket histogram of seconds (or counts), for metrics. Buckets
 * are cumulative in Prometheus' sense when rendered; here counts[i] is the
 * number of observations <= bounds[i] and > bounds[i-1]; the last bound is
 * +Inf. */
#define OB_HIST_BUCKETS 20
typedef struct ob_histogram {
    double bounds[OB_HIST_BUCKETS];
    uint64_t counts[OB_HIST_BUCKETS];
    uint64_t count;
    double sum;
} ob_histogram;

/* Monotonic milliseconds (CLOCK_MONOTONIC): for timeouts and measuring. */
int64_t ob_mono_ms(void);

/* Wall-clock time in milliseconds since the Unix epoch. Job times (run_at,
 * created_at, ...) are in this unit. */
int64_t ob_now_ms(void);

/* Format a millisecond timestamp as RFC 3339 UTC with milliseconds,
 * "2026-11-25T04:00:00.123Z" (24 characters). `out` must hold 32 bytes.
 * Returns `out`. */
char *ob_time_format(int64_t ms, char out[32]);

/* Parse an RFC 3339 date-time, "2026-11-25T04:00:00Z", with optional
 * fractional seconds (milliseconds kept) and a "Z" or "+HH:MM"/"-HH:MM"
 * offset, into milliseconds since the epoch (UTC). Years 1970..9999.
 * Returns 0, or OB_EINVAL for anything else. */
int ob_time_parse(const char *s, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif
