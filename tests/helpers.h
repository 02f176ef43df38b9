/*
 * helpers.h - what the engine tests share: an engine in the test's
 * directory with the "script" job kind, whose handler does what the
 * payload says, and records every attempt it starts.
 *
 * Payload commands ("cmd" or "cmd:arg"):
 *   done[:JSON]        answer done (with a result)
 *   retry[:MS]         answer retry (after MS, else backoff)
 *   fail-until:N       retry until attempt N, then done
 *   discard            answer discard
 *   snooze-once:MS     snooze on the first start, then done
 *   sleep:MS           sleep MS (waking on cancel), then done unless cancelled
 *   wait-cancel        sleep until cancelled; answer retry("cancelled: <why>")
 *   cancel-first       attempt 1 as wait-cancel (and h_cancel_at set when it
 *                      stops); later attempts answer done at once
 *   hang-first:MS      attempt 1 blocks MS ignoring cancellation, then done;
 *                      later attempts answer done at once
 *   noanswer           return without answering
 *   twice              answer done twice (the second must be refused)
 */
#ifndef OB_TEST_HELPERS_H
#define OB_TEST_HELPERS_H

#include <stdatomic.h>

#include "outbox/jobs.h"
#include "test.h"

/* Every start of the script handler, in order. */
#define H_LOG_MAX 4096
typedef struct h_start {
    ob_id id;
    int attempt;
    int priority;
    int64_t at_ms;
    char payload[64];
} h_start;
extern h_start h_log[H_LOG_MAX]; /* read it once the pools are stopped */
extern atomic_int h_nlog;
extern atomic_int h_cancel_seen;  /* last OB_CANCEL_* a handler observed */
extern atomic_int h_second_answer_rc;
extern _Atomic int64_t h_cancel_at;   /* ms when a cancel-first handler stopped */

void h_script(ob_job_ctx *ctx, void *arg);

/* Open `name` in the test dir with options `o` (NULL: defaults tuned for
 * tests: fast backoff) and register "script". */
ob_engine *h_open(const char *name, const ob_engine_opts *o);
void h_fast_opts(ob_engine_opts *o);
/* Enqueue a script job with this payload on the default queue. */
ob_id h_add(ob_engine *e, const char *payload);
ob_id h_add_job(ob_engine *e, ob_new_job *j);
/* The store's counters equal a count of its jobs (N1); call when the
 * engine writes nothing (pools stopped). Fails the test if not. */
void h_counts_agree(ob_engine *e);
/* Wait (up to 30 s) for the job to be final; returns the snapshot. */
ob_job *h_wait(ob_engine *e, const ob_id *id);
/* Current snapshot. */
ob_job *h_get(ob_engine *e, const ob_id *id);
/* Number of starts recorded for id. */
int h_starts(const ob_id *id);
ob_pool *h_pool(ob_engine *e, int workers, int prefetch, const char *queue);
void h_sleep_ms(int64_t ms);

#endif
