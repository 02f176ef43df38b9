/*
 * commit.h - what the files of the commit thread share: the batch being
 * built, and the calls that apply ops and chores to it. Only the commit
 * thread touches any of it (C4).
 *
 *   commit.c  the thread: takes ops, runs a batch, commits, answers
 *   apply.c   an op's change to the store (enqueue, answers, cancel, ...)
 *   chores.c  what is due by time: promote, rescue, prune, refresh
 */
#ifndef OB_JOBS_COMMIT_H
#define OB_JOBS_COMMIT_H

#include "jobs/jobs.h"

#define PROMOTE_MAX 1000 /* jobs promoted per batch */
#define RESCUE_MAX 256   /* leases rescued per batch */

typedef struct claim_rec {
    pool *p;
    ob_job **jobs;
    int n;
} claim_rec;

/* What one batch carries besides its ops. Reused from batch to batch. */
struct batch {
    event_rec *ev;
    size_t nev, evcap;
    int64_t delta;      /* change to `unfinished` if this batch commits */
    bool new_work;      /* a job became available: pools may claim */
    bool made_work;     /* ... because of this batch (others are told) */
    int64_t new_due;    /* earliest run_at this batch scheduled */
    bool recounted;     /* `unfinished` was counted: set, not added to */
    int64_t count;
    bool chores_again;  /* a chore hit its per-batch cap: run another batch */
    bool flow_bound;    /* a queue's limit held a claim back (queues.c) */
    claim_rec *claims;
    int nclaims, claimcap;
    ob_id *ids;         /* prefetch */
    int idcap;
    store_count *counts; /* the counters' changes (N1 in store.h) */
    int ncounts, countcap;
    bool counts_lost;   /* out of memory counting: the batch must abort */
    store_final *finals; /* announce */
    int fincap;
    store_moved moved[PROMOTE_MAX];
    store_lease leases[RESCUE_MAX];
};

/* ---- apply.c ---- */

/* Count `delta` jobs into (queue, kind, state) for the store's counters. */
void obi_batch_count(batch *b, const char *kind, const char *queue, ob_state state,
                     int64_t delta);
/* Record a state change (and count it), published once the batch commits.
 * Returns the event (to add to; valid until the next one), or NULL if out
 * of memory lost it (the count is kept). */
event_rec *obi_batch_event(batch *b, const ob_id *id, ob_state from, ob_state state, int attempt,
                           int64_t at, const char *kind, const char *queue, const char *error);
/* Decide and apply one life-cycle event to one job. *result gets the
 * outcome for the caller (0, OB_ENOTFOUND, OB_ESTATE), *state_out the
 * job's state afterwards, *was the state before. Returns a store error
 * (the batch must abort) or 0. */
int obi_batch_change(ob_engine *e, batch *b, const ob_id *id, const lc_input *in, int64_t now,
                     int *result, ob_state *state_out, ob_state *was);
/* Insert a new job (its id, state and times set here), count it, record
 * its event (the batch's last). 0, STORE_EXISTS, or a store error. */
int obi_batch_insert(ob_engine *e, batch *b, store_new *j, int64_t now);
/* Apply op o (its outcome to o->rc). Returns a store error or 0. */
int obi_batch_apply(ob_engine *e, batch *b, op *o, int64_t now);

/* ---- chores.c ---- */

/* Run every chore that is due at `now` into the batch; sets
 * b->chores_again when one hit its per-batch cap. Returns a store error or
 * 0. */
int obi_chores_run(ob_engine *e, batch *b, int64_t now);

/* ---- queues.c: flow control ---- */

/* Read every queue's settings for this batch's claim (locked on a shared
 * store) and the room of each. Returns a store error or 0. */
int obi_flow_begin(ob_engine *e, int64_t now);
/* Fill req's queues and parts for pool p wanting `want` jobs: parts[]
 * and mainq[] have room for every row and every queue of p. */
void obi_flow_request(ob_engine *e, pool *p, int want, store_claim *req, store_part *parts,
                      const char **mainq);
/* Jobs were claimed: their queues' room shrinks. */
void obi_flow_claimed(ob_engine *e, ob_job *const *jobs, int n);
/* Save the rates' counts; set the timer of a rate that held a claim back. */
int obi_flow_end(ob_engine *e, batch *b);
/* A running job of `queue` finished in this batch. */
void obi_flow_finished(ob_engine *e, batch *b, const char *queue);
/* The rate's timer and the park sweep, as chores. */
int obi_flow_chores(ob_engine *e, batch *b, int64_t now);
/* Hold every job of `queue`'s rate `key` (NULL: the whole queue) until
 * `until` (ms): they stay available, spend nothing, start after it. */
int obi_flow_hold(ob_engine *e, batch *b, const char *queue, const char *key, int64_t until,
                  int64_t now);
/* Free the flow's state. */
void obi_flow_free(flow *f);
/* ---- schedules.c ---- */

/* Make the jobs of the schedules whose tick came; *next gets when to look
 * again. Returns a store error or 0. */
int obi_schedules_run(ob_engine *e, batch *b, int64_t now, int64_t *next);
/* Apply an OP_SCHEDULE. */
int obi_schedule_apply(ob_engine *e, batch *b, op *o, int64_t now);

/* ---- records.c ---- */

/* Apply an OP_RECORD. */
int obi_record_apply(ob_engine *e, op *o, int64_t now);

/* Apply an OP_QUEUE. */
int obi_flow_apply(ob_engine *e, batch *b, op *o, int64_t now);

#endif
