/*
 * base.h - internal helpers shared by every part of liboutbox: logging
 * macros, the monotonic clock, id generation and small memory utilities.
 * Nothing here knows about jobs, stores or HTTP.
 */
#ifndef OB_BASE_H
#define OB_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <time.h>

#include "outbox/common.h"
#include "outbox/jobs.h"

/* ---- errors (error.c) ---- */
/* Fill *p (when p is not NULL) with `field` (NULL: "") and the message;
 * returns rc, so that `return obi_problem(p, OB_EINVAL, "kind", "...")`
 * reports and fails in one line. */
int obi_problem(ob_problem *p, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- logging (log.c) ---- */
void ob_logf(ob_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define OB_DEBUG(...) ob_logf(OB_LOG_DEBUG, __VA_ARGS__)
#define OB_INFO(...) ob_logf(OB_LOG_INFO, __VA_ARGS__)
#define OB_WARN(...) ob_logf(OB_LOG_WARN, __VA_ARGS__)
#define OB_ERROR(...) ob_logf(OB_LOG_ERROR, __VA_ARGS__)
/* Whether a line at `level` would be written (to skip costly formatting). */
bool ob_log_enabled(ob_log_level level);

/* ---- clock (clock.c) ---- */
/* Monotonic milliseconds and microseconds, for timeouts and measuring. */
int64_t ob_mono_ms(void);
int64_t obi_mono_us(void);
/* The absolute CLOCK_MONOTONIC time `ms` from now, for pthread_cond_timedwait
 * on a condition variable created with ob_cond_init_mono(). */
struct timespec ob_mono_deadline(int64_t ms);
#include <pthread.h>
int ob_cond_init_mono(pthread_cond_t *c);

/* ---- ids (id.c) ---- */
/* State of a UUIDv7 generator. Not thread-safe: one per writer thread. */
typedef struct ob_idgen {
    int64_t last_ms;
    uint32_t counter; /* 12-bit rand_a used as a monotonic counter */
} ob_idgen;
/* Make the next id: strictly greater than every id this generator made,
 * even if the wall clock steps back. */
void obi_idgen_next(ob_idgen *g, ob_id *out);
/* Fill buf with n random bytes from getrandom(2), retried on EINTR. Any
 * other failure aborts the process (with a line on stderr): callers make
 * keys with these bytes, and no weaker source is substituted. */
void ob_random_bytes(void *buf, size_t n);
/* Fault seam: what ob_random_bytes calls (getrandom); tests swap it. */
extern ssize_t (*obi_getrandom_hook)(void *buf, size_t n, unsigned flags);
/* Uniform double in [0, 1). */
double obi_random_unit(void);

/* ---- histograms (hist.c) ---- */
/* Lock-free: any thread may observe. */
typedef struct ob_hist {
    const double *bounds; /* OB_HIST_BUCKETS upper bounds, the last +Inf */
    _Atomic uint64_t counts[OB_HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_micro; /* sum, in millionths */
} ob_hist;
extern const double obi_hist_seconds[OB_HIST_BUCKETS]; /* 100 us .. 1 min */
extern const double obi_hist_sizes[OB_HIST_BUCKETS];   /* 1 .. 4096 */
void obi_hist_observe(ob_hist *h, double v);
void obi_hist_read(const ob_hist *h, ob_histogram *out);

/* ---- memory ---- */
/* Poison (debug builds) and free a buffer that handed-out pointers may still
 * reference: under ASan a later read crashes instead of reading reused
 * memory. */
void obi_poison_free(void *p, size_t n);

/* Whether s[0..n) is valid UTF-8 without NUL. */
bool ob_utf8_valid(const char *s, size_t n);
/* A malloc'd copy of the C string s, at most max bytes, cut at a character
 * boundary, with invalid UTF-8 bytes replaced by '?'. NULL on OOM. */
char *obi_utf8_clean_dup(const char *s, size_t max);

/* ---- text to show (scrub.c) ---- */
/* n bytes of s made safe for a log line or an error a client reads, into
 * dst[cap] (NUL-terminated, cut at a character when it does not fit):
 * control characters, DEL and bytes that are not UTF-8 become \xNN; URLs
 * lose userinfo, query and fragment. Returns the length written. */
size_t ob_scrub(const char *s, size_t n, char *dst, size_t cap);
/* One URL as ob_scrub shows it. Returns dst. */
char *ob_url_shown(const char *url, char *dst, size_t cap);

/* Names: 1..OB_NAME_MAX characters of [A-Za-z0-9._-]. */
bool ob_name_valid(const char *s);

#endif
