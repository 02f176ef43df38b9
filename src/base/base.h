/*
 * base.h - internal helpers shared by every part of liboutbox: logging
 * macros, clocks, id generation, histograms and memory poisoning. The
 * helpers liboutbox also exports are in outbox/common.h, outbox/id.h and
 * outbox/util.h; this header adds what stays inside. Nothing here knows
 * about jobs, stores, HTTP or mail.
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
#include "outbox/id.h"
#include "outbox/util.h"

/* ---- errors (error.c) ---- */
/* Fill *p (when p is not NULL) with `field` (NULL: "") and the message;
 * returns rc, so that `return obi_problem(p, OB_EINVAL, "kind", "...")`
 * reports and fails in one line. */
int obi_problem(ob_problem *p, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- logging (log.c; ob_logf in outbox/common.h) ---- */
#define OB_DEBUG(...) ob_logf(OB_LOG_DEBUG, __VA_ARGS__)
#define OB_INFO(...) ob_logf(OB_LOG_INFO, __VA_ARGS__)
#define OB_WARN(...) ob_logf(OB_LOG_WARN, __VA_ARGS__)
#define OB_ERROR(...) ob_logf(OB_LOG_ERROR, __VA_ARGS__)

/* ---- clock (clock.c) ---- */
/* Monotonic microseconds, for measuring. */
int64_t obi_mono_us(void);

/* ---- ids (id.c) ---- */
/* State of a UUIDv7 generator. Not thread-safe: one per writer thread. */
typedef struct obi_idgen {
    int64_t last_ms;
    uint32_t counter; /* 12-bit rand_a used as a monotonic counter */
} obi_idgen;
/* Make the next id: strictly greater than every id this generator made,
 * even if the wall clock steps back. */
void obi_idgen_next(obi_idgen *g, ob_id *out);
/* Fault seam: what ob_random_bytes calls (getrandom); tests swap it. */
extern ssize_t (*obi_getrandom_hook)(void *buf, size_t n, unsigned flags);
/* Uniform double in [0, 1). */
double obi_random_unit(void);

/* ---- histograms (hist.c) ---- */
/* Lock-free: any thread may observe. */
typedef struct obi_hist {
    const double *bounds; /* OB_HIST_BUCKETS upper bounds, the last +Inf */
    _Atomic uint64_t counts[OB_HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_micro; /* sum, in millionths */
} obi_hist;
extern const double obi_hist_seconds[OB_HIST_BUCKETS]; /* 100 us .. 1 min */
extern const double obi_hist_sizes[OB_HIST_BUCKETS];   /* 1 .. 4096 */
void obi_hist_observe(obi_hist *h, double v);
void obi_hist_read(const obi_hist *h, ob_histogram *out);

/* ---- memory ---- */
/* Poison (debug builds) and free a buffer that handed-out pointers may still
 * reference: under ASan a later read crashes instead of reading reused
 * memory. */
void obi_poison_free(void *p, size_t n);

/* A malloc'd copy of the C string s, at most max bytes, cut at a character
 * boundary, with invalid UTF-8 bytes replaced by '?'. NULL on OOM. */
char *obi_utf8_clean_dup(const char *s, size_t max);

#endif
