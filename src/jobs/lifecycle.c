/*
 * lifecycle.c - the job state machine. Every transition the engine makes
 * to a single job is decided here, in obi_lifecycle_decide(); the two bulk
 * transitions (due -> available, available -> running) are fixed SQL in
 * the store and are listed here for completeness.
 *
 *   from                    event                       to
 *   ----------------------  --------------------------  ---------------------------
 *   (new)                   enqueue, run_at > now       scheduled
 *   (new)                   enqueue                     available
 *   scheduled, retryable    due (store promote)         available
 *   available               claim (store claim)         running, attempt + 1
 *   running                 done                        completed
 *   running                 retry, attempts left        retryable, run_at = now + delay
 *   running                 retry, attempts exhausted   discarded
 *   running                 discard                     discarded
 *   running                 snooze                      scheduled, attempt - 1
 *   running                 any but done, cancel asked  cancelled
 *   running                 rescue, attempts left       available (attempt stays counted)
 *   running                 rescue, exhausted           discarded
 *   running                 rescue, cancel asked        cancelled
 *   running                 release (never started)     available, attempt - 1, same run_at
 *   scheduled, available,   cancel                      cancelled
 *     retryable
 *   running                 cancel                      running, cancel_requested
 *   cancelled               cancel                      (no change)
 *   discarded, cancelled    requeue (ob_job_retry)      available, >= 1 attempt left
 *   scheduled, retryable    requeue                     available, run_at = now
 *   available               requeue                     (no change)
 *
 * Running events carry the attempt the worker ran; if the job has since
 * moved on (rescued and claimed again, say) the event is stale and refused
 * with OB_ESTATE, so a late answer never overwrites a newer attempt.
 */
#include <math.h>
#include <string.h>

#include "jobs/jobs.h"

static const char *const state_names[] = {
    [OB_SCHEDULED] = "scheduled", [OB_AVAILABLE] = "available", [OB_RUNNING] = "running",
    [OB_RETRYABLE] = "retryable", [OB_COMPLETED] = "completed", [OB_DISCARDED] = "discarded",
    [OB_CANCELLED] = "cancelled",
};

const char *ob_state_name(int state)
{
    if (state < OB_STATE_MIN || state > OB_STATE_MAX)
        return "unknown";
    return state_names[state];
}

int ob_state_parse(const char *name, ob_state *out)
{
    for (int s = OB_STATE_MIN; name && s <= OB_STATE_MAX; s++) {
        if (strcmp(name, state_names[s]) == 0) {
            *out = (ob_state)s;
            return 0;
        }
    }
    return OB_EINVAL;
}

int64_t obi_backoff_delay(const ob_backoff *b, int attempt)
{
    double d = (double)b->base_ms * pow(b->factor, attempt > 1 ? attempt - 1 : 0);
    if (!(d < (double)b->max_ms)) /* also catches overflow to inf */
        d = (double)b->max_ms;
    d *= 1.0 + b->jitter * (2.0 * obi_random_unit() - 1.0);
    return d < 0 ? 0 : (int64_t)d;
}

/* Start *c as "no field changes" for the job in `row`. */
static void keep(const store_row *row, const ob_id *id, int64_t now, store_change *c)
{
    memset(c, 0, sizeof *c);
    c->id = *id;
    c->from = c->to = row->state;
    c->from_attempt = c->attempt = row->attempt;
    c->max_attempts = row->max_attempts;
    c->run_at = row->run_at;
    c->cancel_requested = row->cancel_requested;
    c->now = now;
}

static void finish(store_change *c, ob_state to)
{
    c->to = to;
    c->finished_at = c->now;
    c->cancel_requested = false;
}

/* The end of a failed attempt: error recorded, then retryable, discarded or
 * cancelled. `delay` < 0 means the kind's backoff. */
static void failed(const store_row *row, const lc_input *in, const ob_backoff *b,
                   store_change *c, bool permanent)
{
    c->error = in->error;
    c->error_attempt = row->attempt;
    if (row->cancel_requested)
        finish(c, OB_CANCELLED);
    else if (permanent || row->attempt >= row->max_attempts)
        finish(c, OB_DISCARDED);
    else {
        c->to = OB_RETRYABLE;
        c->run_at = c->now + (in->delay_ms >= 0 ? in->delay_ms : obi_backoff_delay(b, row->attempt));
    }
}

static int decide_running(const store_row *row, const lc_input *in, const ob_backoff *b,
                          store_change *c)
{
    if (row->state != OB_RUNNING || row->attempt != in->attempt)
        return OB_ESTATE; /* stale: the attempt was rescued or released */
    c->result = in->result; /* any answer may carry one (ob_ctx_set_result) */
    switch (in->ev) {
    case LC_DONE:
        finish(c, OB_COMPLETED);
        return 1;
    case LC_RETRY:
        failed(row, in, b, c, false);
        return 1;
    case LC_DISCARD:
        failed(row, in, b, c, true);
        return 1;
    case LC_SNOOZE:
        if (row->cancel_requested) {
            finish(c, OB_CANCELLED);
            return 1;
        }
        c->to = OB_SCHEDULED;
        c->attempt = row->attempt - 1;
        c->run_at = c->now + (in->delay_ms > 0 ? in->delay_ms : 0);
        return 1;
    case LC_RESCUE:
        failed(row, in, b, c, false);
        if (c->to == OB_RETRYABLE) { /* rescued jobs go straight back */
            c->to = OB_AVAILABLE;
            c->run_at = c->now;
        }
        return 1;
    case LC_RELEASE:
        c->to = OB_AVAILABLE;
        c->attempt = row->attempt - 1; /* and its place in line (run_at) kept */
        return 1;
    default:
        return OB_ESTATE;
    }
}

int obi_lifecycle_decide(const store_row *row, const ob_id *id, const lc_input *in,
                     const ob_backoff *backoff, int errors_kept, int64_t now, store_change *c)
{
    keep(row, id, now, c);
    c->errors_kept = errors_kept;
    switch (in->ev) {
    case LC_CANCEL:
        switch (row->state) {
        case OB_SCHEDULED:
        case OB_AVAILABLE:
        case OB_RETRYABLE:
            finish(c, OB_CANCELLED);
            return 1;
        case OB_RUNNING:
            if (row->cancel_requested)
                return 0;
            c->cancel_requested = true;
            return 1;
        case OB_CANCELLED:
            return 0;
        default:
            return OB_ESTATE;
        }
    case LC_REQUEUE:
        switch (row->state) {
        case OB_DISCARDED:
        case OB_CANCELLED:
            if (c->max_attempts < row->attempt + 1)
                c->max_attempts = row->attempt + 1;
            c->to = OB_AVAILABLE;
            c->run_at = now;
            return 1;
        case OB_SCHEDULED:
        case OB_RETRYABLE:
            c->to = OB_AVAILABLE;
            c->run_at = now;
            return 1;
        case OB_AVAILABLE:
            return 0;
        default:
            return OB_ESTATE;
        }
    default:
        return decide_running(row, in, backoff, c);
    }
}
