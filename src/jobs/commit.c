/*
 * commit.c - the commit thread: the one writer to the store.
 *
 * Every change to the store goes through here as an `op` (enqueue, a
 * worker's answer, cancel, retry, release, a lease renewed at start;
 * applied by apply.c). Threads queue ops and go on (or
 * wait for their op's done callback); the commit thread takes everything
 * queued — up to max_batch — and applies it in ONE transaction, then one
 * commit, so one fsync acknowledges every op that arrived while the
 * previous commit was in flight (group commit: batches grow with the load,
 * and cost one fsync each however large).
 *
 * A batch, in order:
 *   1. begin
 *   2. apply each op (a refused op — queue full, stale answer — fails alone)
 *   3. chores that are due (chores.c): promote due jobs, rescue expired leases, prune
 *      (the last two only on the leader of a shared store), and refresh
 *      what other processes may have changed (timers, counts)
 *   4. claim jobs for every pool with free capacity and possibly work
 *      (none while the store says this process is cut off: C5)
 *   5. tell other processes of new work (shared stores), commit — only
 *      now is anything acknowledged (invariant C1)
 *   6. hand claimed jobs to workers, deliver cancellations, publish events,
 *      call each op's done()
 * If any store call or the commit fails, the batch is rolled back whole:
 * external ops (enqueue, cancel, retry) fail with the store's error; worker
 * answers and releases are kept and retried a second later (C2), since the
 * work they report was done; claims are dropped (the jobs stay available),
 * or given back when the commit's outcome is unknown (a lost connection).
 *
 * Invariants
 *   C1  An op's done() is called with rc 0 only after the store commit that
 *       holds its change returned 0.
 *   C2  No worker answer is dropped while the engine runs: it is committed,
 *       refused as stale (its lease was rescued), or retried.
 *   C3  `unfinished` is the number of unfinished jobs this engine committed,
 *       made exact again by a recount where others write too (a shared
 *       store, a transactional enqueue: between recounts their jobs may
 *       finish here before they were counted, so it is not checked >= 0);
 *       enqueue refuses with OB_EFULL once it reaches max_jobs.
 *   C4  Only this thread touches the store's writer side, the idgen, the
 *       timers and pool.maybe_work (before the thread starts, obi_commit_start
 *       does, on the opening thread).
 *   C5  No claim while store.health fails: a node that cannot heartbeat
 *       may be declared dead, and its jobs rescued, at any moment.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/commit.h"

#define DEFER_MS 1000    /* retry of answers whose commit failed */
#define FAIL_MIN_MS 50   /* a failing store: chores retried after this, */
#define FAIL_MAX_MS 1000 /* doubling up to this (new operations go at once) */

/* ---- claims ---- */

/* S4, on every claim in debug builds: jobs come in claim order. */
static void check_claim_order(ob_job *const *jobs, int n)
{
    for (int i = 1; i < n; i++)
        assert(jobs[i - 1]->priority > jobs[i]->priority ||
               (jobs[i - 1]->priority == jobs[i]->priority &&
                jobs[i - 1]->run_at_ms <= jobs[i]->run_at_ms)); /* S4 */
    (void)jobs, (void)n;
}

/* Claim for one pool wanting `want` jobs, within its queues' limits. */
static int claim_for(ob_engine *e, batch *b, pool *p, int want, int64_t now)
{
    flow *f = &e->c.fl;
    ob_job **jobs = malloc((size_t)want * sizeof *jobs);
    store_part *parts = malloc((size_t)(f->nrows + 1) * sizeof *parts);
    const char **mainq = malloc((size_t)(p->nqueues + 1) * sizeof *mainq);
    int n = 0, rc = jobs && parts && mainq ? 0 : OB_ENOMEM;
    store_claim req = {.limit = want, .now = now, .lease_grace_ms = e->o.lease_grace_ms};
    if (!rc) {
        obi_flow_request(e, p, want, &req, parts, mainq);
        if (!req.main_off || req.nparts > 0)
            rc = e->st->ops->claim(e->st, &req, jobs, &n);
    }
    free(parts);
    free(mainq);
    if (rc || n == 0) {
        free(jobs);
        if (!rc && want > 0)
            p->maybe_work = false;
        return rc;
    }
    check_claim_order(jobs, n);
    obi_flow_claimed(e, jobs, n);
    if (n < want)
        p->maybe_work = false;
    for (int i = 0; i < n; i++) {
        event_rec *ev = obi_batch_event(b, &jobs[i]->id, OB_AVAILABLE, OB_RUNNING,
                                        jobs[i]->attempt, now, jobs[i]->kind, jobs[i]->queue, NULL);
        if (ev)
            ev->due = jobs[i]->run_at_ms;
    }
    b->claims[b->nclaims++] = (claim_rec){p, jobs, n};
    return 0;
}

/* Claim for every pool that has room and may find work. Called with
 * engine.pools_mu held (until the claims are delivered). */
static int claim_for_pools(ob_engine *e, batch *b, int64_t now)
{
    if (e->st->ops->health && e->st->ops->health(e->st))
        return 0; /* C5 */
    int npools = 0;
    for (pool *p = e->pools; p; p = p->next)
        npools++;
    if (npools > b->claimcap) {
        claim_rec *cr = realloc(b->claims, (size_t)npools * sizeof *cr);
        if (!cr)
            return OB_ENOMEM;
        b->claims = cr;
        b->claimcap = npools;
    }
    bool read = false;
    int rc = 0;
    for (pool *p = e->pools; p && !rc; p = p->next) {
        if (b->new_work)
            p->maybe_work = true;
        int want = p->maybe_work ? obi_pool_demand(p) : 0;
        if (want <= 0)
            continue;
        if (!read && (rc = obi_flow_begin(e, now)))
            break;
        read = true;
        rc = claim_for(e, b, p, want, now);
    }
    return rc || !read ? rc : obi_flow_end(e, b);
}

/* The commit's outcome is unknown (the connection to the database broke
 * during it): the claims may have committed. Give each job back (a release
 * op, retried until the store answers, C2): if the claim did commit, the
 * job is available again at once instead of waiting out its lease; if it
 * did not, the release finds the job moved on and does nothing. */
static void give_back_claims(ob_engine *e, batch *b)
{
    for (int i = 0; i < b->nclaims; i++) {
        for (int k = 0; k < b->claims[i].n; k++)
            obi_pool_release(e, b->claims[i].jobs[k]);
        free(b->claims[i].jobs);
    }
    b->nclaims = 0;
}

static void drop_claims(batch *b)
{
    for (int i = 0; i < b->nclaims; i++) {
        for (int k = 0; k < b->claims[i].n; k++)
            ob_job_free(b->claims[i].jobs[k]);
        free(b->claims[i].jobs);
    }
    b->nclaims = 0;
}

/* Tell the other processes of work this batch made that our pools did not
 * take: some pool that serves every queue found less than it wanted means
 * nothing is left. (A pool with no room, or stopping, keeps maybe_work set
 * when there is new work, so it never counts as drained.) */
static int announce(ob_engine *e, batch *b)
{
    store *s = e->st;
    if (!s->ops->announce)
        return 0;
    /* (A claim a queue's limit held back drained nothing.) */
    bool drained = false;
    for (pool *p = e->pools; p && !drained && !b->flow_bound; p = p->next)
        drained = p->nqueues == 0 && !p->maybe_work; /* maybe_work: this thread's (C4) */
    int rc = 0;
    if (b->made_work && !drained)
        rc = s->ops->announce(s, 0);
    if (!rc && b->new_due != INT64_MAX)
        rc = s->ops->announce(s, b->new_due);
    if (rc || !s->ops->announce_finals)
        return rc;
    int n = 0;
    for (size_t i = 0; i < b->nev; i++)
        n += ob_state_is_final(b->ev[i].state);
    if (n > b->fincap) {
        store_final *f = realloc(b->finals, (size_t)n * sizeof *f);
        if (!f)
            return OB_ENOMEM;
        b->finals = f;
        b->fincap = n;
    }
    n = 0;
    for (size_t i = 0; i < b->nev; i++)
        if (ob_state_is_final(b->ev[i].state))
            b->finals[n++] = (store_final){b->ev[i].id, b->ev[i].state};
    return n ? s->ops->announce_finals(s, b->finals, n) : 0;
}

/* ---- the batch ---- */

/* Let the store lock and read, in one go, the jobs the ops will change. */
static int prefetch(ob_engine *e, batch *b, op *ops)
{
    store *s = e->st;
    if (!s->ops->prefetch)
        return 0;
    int n = 0;
    for (op *o = ops; o; o = o->next)
        n += o->type == OP_CHANGE;
    if (n == 0)
        return 0;
    if (n > b->idcap) {
        ob_id *ids = realloc(b->ids, (size_t)n * sizeof *ids);
        if (!ids)
            return OB_ENOMEM;
        b->ids = ids;
        b->idcap = n;
    }
    n = 0;
    for (op *o = ops; o; o = o->next)
        if (o->type == OP_CHANGE)
            b->ids[n++] = o->id;
    return s->ops->prefetch(s, b->ids, n);
}

static int apply_all(ob_engine *e, batch *b, op *ops, int64_t now)
{
    int rc = e->st->ops->begin(e->st);
    if (!rc)
        rc = prefetch(e, b, ops);
    for (op *o = ops; o && !rc; o = o->next)
        rc = obi_batch_apply(e, b, o, now);
    if (!rc)
        rc = obi_chores_run(e, b, now);
    return rc;
}

static void deliver_cancels(ob_engine *e, op *ops)
{
    for (op *o = ops; o; o = o->next) {
        if (o->type == OP_CHANGE && o->in.ev == LC_CANCEL && !o->rc && o->state_out == OB_RUNNING) {
            for (pool *p = e->pools; p; p = p->next)
                obi_pool_cancel_running(p, &o->id, -1);
        }
    }
}

/* Hand out everything a committed batch produced. */
static void after_commit(ob_engine *e, batch *b, op *ops)
{
    for (int i = 0; i < b->nclaims; i++) {
        obi_pool_deliver(b->claims[i].p, b->claims[i].jobs, b->claims[i].n);
        free(b->claims[i].jobs);
    }
    b->nclaims = 0;
    deliver_cancels(e, ops);
    pthread_mutex_unlock(&e->pools_mu);
    e->c.unfinished = b->recounted ? b->count : e->c.unfinished + b->delta;
    obi_notify_publish(&e->n, b->ev, b->nev);
    for (op *o = ops; o; o = o->next)
        if (o->type == OP_RECORD && !o->rc)
            obi_notify_record(&e->n, o->rec, o->rec_delete);
}

/* The batch failed: roll back, keep worker answers for later (C2), fail
 * the rest. Returns the ops that must still be completed. */
static op *after_failure(ob_engine *e, batch *b, op *ops, int rc)
{
    commit *c = &e->c;
    e->st->ops->rollback(e->st);
    if (rc == OB_EUNAVAIL)
        give_back_claims(e, b);
    else
        drop_claims(b);
    pthread_mutex_unlock(&e->pools_mu);
    op *fail = NULL, **ft = &fail;
    for (op *o = ops, *next; o; o = next) {
        next = o->next;
        o->next = NULL;
        /* A barrier is answered with the failure, not kept: its waiter
         * (a pool stopping) must not wait for as long as the store is
         * down. What was before it stays deferred, and is retried. */
        if (!o->external && o->type != OP_BARRIER) {
            o->next = c->deferred;
            c->deferred = o;
        } else {
            o->rc = rc;
            *ft = o;
            ft = &o->next;
        }
    }
    if (c->deferred)
        c->deferred_at = ob_now_ms() + DEFER_MS;
    /* Timers may have moved within the failed batch; look again soon. */
    int64_t retry = ob_now_ms() + DEFER_MS;
    if (c->next_rescue > retry)
        c->next_rescue = retry;
    return fail;
}

/* The batch's changes to the counters, in its transaction (N1). */
static int count_add(ob_engine *e, batch *b)
{
    if (b->counts_lost) {
        OB_ERROR("jobs: out of memory counting a batch's jobs; the batch is retried");
        return OB_ENOMEM;
    }
    return b->ncounts ? e->st->ops->count_add(e->st, b->counts, b->ncounts) : 0;
}

/* Run one batch: apply `ops` and due chores, claim, commit, hand out.
 * Calls every op's done(). Returns the commit's result. */
static int run_batch(ob_engine *e, op *ops, bool remote_work)
{
    commit *c = &e->c;
    batch *b = c->batch;
    b->nev = 0;
    b->delta = 0;
    b->new_work = remote_work;
    b->made_work = false;
    b->new_due = INT64_MAX;
    b->recounted = false;
    b->chores_again = false;
    b->flow_bound = false;
    b->ncounts = 0;
    b->counts_lost = false;
    assert(pthread_equal(pthread_self(), c->writer)); /* C4 */
    int64_t now = ob_now_ms(), t_begin = obi_mono_us();
    int rc = apply_all(e, b, ops, now);
    pthread_mutex_lock(&e->pools_mu);
    if (!rc)
        rc = claim_for_pools(e, b, now);
    if (!rc)
        rc = announce(e, b);
    if (!rc)
        rc = count_add(e, b);
    int64_t t0 = obi_mono_us();
    if (!rc)
        rc = e->st->ops->commit(e->st);
    op *done = ops;
    atomic_store(&c->last_rc, rc);
    if (!rc) {
        int nops = 0;
        for (op *o = ops; o; o = o->next)
            nops++;
        int64_t t_end = obi_mono_us(), us = t_end - t0;
        c->stat_commits++;
        c->stat_ops += (uint64_t)nops;
        c->stat_commit_us += (uint64_t)us;
        c->stat_batch_us += (uint64_t)(t_end - t_begin);
        obi_hist_observe(&c->h_commit, (double)us / 1e6);
        if (nops) /* a commit of claims alone carries no operation */
            obi_hist_observe(&c->h_batch, nops);
        after_commit(e, b, ops);
    } else {
        done = after_failure(e, b, ops, rc);
    }
    int external = 0;
    for (op *o = done, *next; o; o = next) {
        next = o->next;
        assert(!rc || o->rc); /* C1: no success without the commit */
        external += o->external;
        o->done(o); /* gives the op away */
    }
    if (external) {
        pthread_mutex_lock(&c->mu);
        c->inflight -= external;
        pthread_cond_broadcast(&c->room);
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* ---- the thread ---- */

/* When the thread must run without an operation: the first timer, but
 * not before fail_until while the store fails (its chores would fail
 * again at once, and the thread would spin). */
static int64_t next_timer(const commit *c)
{
    int64_t t = c->next_due;
    if (c->next_rescue < t)
        t = c->next_rescue;
    if (c->next_prune < t)
        t = c->next_prune;
    if (c->refreshing && c->next_refresh < t)
        t = c->next_refresh;
    if (c->deferred && c->deferred_at < t)
        t = c->deferred_at;
    if (c->fl.next_at < t)
        t = c->fl.next_at;
    if (c->fl.sweep_at < t)
        t = c->fl.sweep_at;
    if (c->next_sched < t)
        t = c->next_sched;
    return t < c->fail_until ? c->fail_until : t;
}

/* Take up to max ops from the queue; with the deferred answers first when
 * their time has come. Called with c->mu held. */
static op *take_ops(commit *c, int max, int64_t now)
{
    op *head = NULL, **tail = &head;
    if (c->deferred && now >= c->deferred_at) {
        head = c->deferred;
        c->deferred = NULL;
        while (*tail)
            tail = &(*tail)->next;
    }
    for (int n = 0; c->head && n < max; n++) {
        op *o = c->head;
        c->head = o->next;
        o->next = NULL;
        *tail = o;
        tail = &o->next;
    }
    if (!c->head)
        c->tail = NULL;
    return head;
}

static void *commit_main(void *arg)
{
    ob_engine *e = arg;
    commit *c = &e->c;
    c->writer = pthread_self(); /* C4: the batches are this thread's now */
    bool again = false;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int64_t now = ob_now_ms();
        while (!c->head && !c->kicked && !c->stopping && !again && next_timer(c) > now) {
            int64_t wait = next_timer(c) - now;
            struct timespec ts = ob_mono_deadline(wait > 3600000 ? 3600000 : wait);
            pthread_cond_timedwait(&c->wake, &c->mu, &ts);
            now = ob_now_ms();
        }
        bool stopping = c->stopping;
        op *ops = take_ops(c, e->o.max_batch, now);
        c->kicked = false;
        bool remote = c->remote_work;
        c->remote_work = false;
        if (c->remote_due < c->next_due)
            c->next_due = c->remote_due;
        c->remote_due = INT64_MAX;
        pthread_mutex_unlock(&c->mu);
        if (stopping && !ops) {
            if (c->deferred && c->deferred_at > now) {
                c->deferred_at = now; /* one last try, at once */
                continue;
            }
            break;
        }
        int rc = run_batch(e, ops, remote);
        again = !rc && c->batch->chores_again;
        if (rc) {
            c->fail_backoff = c->fail_backoff ? c->fail_backoff * 2 : FAIL_MIN_MS;
            if (c->fail_backoff > FAIL_MAX_MS)
                c->fail_backoff = FAIL_MAX_MS;
            c->fail_until = ob_now_ms() + c->fail_backoff;
        } else {
            c->fail_backoff = c->fail_until = 0;
        }
        if (stopping && rc && c->deferred && !c->head) {
            break; /* the store fails and we are closing: give up on them */
        }
    }
    int lost = 0;
    for (op *o = c->deferred, *next; o; o = next) {
        next = o->next;
        o->rc = OB_ESHUTDOWN;
        o->done(o);
        lost++;
    }
    c->deferred = NULL;
    if (lost)
        OB_ERROR("jobs: %d answers could not be stored before closing; "
                 "those jobs stay running and are rescued at the next open", lost);
    return NULL;
}

/* ---- interface ---- */

int obi_commit_submit(ob_engine *e, op *o, bool block)
{
    commit *c = &e->c;
    pthread_mutex_lock(&c->mu);
    while (o->external && block && c->inflight >= e->o.max_inflight && !c->stopping)
        pthread_cond_wait(&c->room, &c->mu);
    int rc = c->stopping ? OB_ESHUTDOWN
             : o->external && c->inflight >= e->o.max_inflight ? OB_EBUSY
                                                                : 0;
    if (!rc) {
        o->next = NULL;
        if (c->tail)
            c->tail->next = o;
        else
            c->head = o;
        c->tail = o;
        c->inflight += o->external;
        pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Blocking calls: the op's done() wakes the caller, who then owns the op. */
typedef struct syncer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} syncer;

static void sync_done(op *o)
{
    syncer *s = o->arg;
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int obi_commit_submit_wait(ob_engine *e, op *o)
{
    syncer s = {.done = false};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    o->arg = &s;
    o->done = sync_done;
    int rc = obi_commit_submit(e, o, true);
    if (!rc) {
        pthread_mutex_lock(&s.mu);
        while (!s.done)
            pthread_cond_wait(&s.cv, &s.mu);
        pthread_mutex_unlock(&s.mu);
        rc = o->rc;
    }
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    return rc;
}

int obi_commit_flush(ob_engine *e)
{
    op o = {.type = OP_BARRIER};
    return obi_commit_submit_wait(e, &o);
}

void obi_commit_finished(void *arg, const ob_id *id, ob_state state)
{
    ob_engine *e = arg;
    obi_notify_remote_final(&e->n, id, state);
}

void obi_commit_wake(void *arg, int64_t due)
{
    ob_engine *e = arg;
    commit *c = &e->c;
    pthread_mutex_lock(&c->mu);
    if (due == 0)
        c->remote_work = true;
    else if (due < c->remote_due)
        c->remote_due = due;
    c->kicked = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
}

void obi_commit_kick(ob_engine *e)
{
    commit *c = &e->c;
    pthread_mutex_lock(&c->mu);
    c->kicked = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
}

void obi_commit_init(ob_engine *e)
{
    commit *c = &e->c;
    pthread_mutex_init(&c->mu, NULL);
    c->h_commit.bounds = obi_hist_seconds;
    c->h_batch.bounds = obi_hist_sizes;
    ob_cond_init_mono(&c->wake);
    pthread_cond_init(&c->room, NULL);
    c->remote_due = INT64_MAX;
    c->fl.next_at = c->fl.sweep_at = INT64_MAX;
    c->next_sched = 0; /* look at once */
}

int obi_commit_start(ob_engine *e)
{
    commit *c = &e->c;
    int rc;
    if (!(c->batch = calloc(1, sizeof *c->batch)))
        return OB_ENOMEM;
    c->refreshing = e->st->ops->external != NULL;
    int64_t unfinished;
    if ((rc = e->st->ops->count_unfinished(e->st, &unfinished)) ||
        (rc = e->st->ops->next_due(e->st, &c->next_due)))
        return rc;
    c->unfinished = unfinished;
    /* Flow control: whether any queue has settings; and a sweep, which
     * finishes one a stop interrupted. */
    store_queue *rows;
    if ((rc = e->st->ops->queues(e->st, &rows, &c->fl.known)))
        return rc;
    free(rows);
    c->fl.sweep = true;
    /* Rescue what a dead process left running, now, so that the caller of
     * ob_engine_open sees a consistent store. */
    c->rescue_all = e->st->exclusive;
    c->next_rescue = 0;
    c->next_prune = ob_now_ms() + e->o.prune_interval_ms;
    c->writer = pthread_self(); /* C4: until the thread starts, the opener's */
    do {
        rc = run_batch(e, NULL, false);
    } while (!rc && c->batch->chores_again);
    if (rc)
        return rc;
    if (pthread_create(&c->thread, NULL, commit_main, e))
        return OB_ENOMEM;
    c->running = true;
    return 0;
}

void obi_commit_stop(ob_engine *e)
{
    commit *c = &e->c;
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_broadcast(&c->wake);
        pthread_cond_broadcast(&c->room);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        c->running = false;
    }
    if (c->batch) {
        free(c->batch->ids);
        free(c->batch->finals);
        free(c->batch->ev);
        free(c->batch->counts);
        free(c->batch->claims);
        free(c->batch);
        c->batch = NULL;
    }
    obi_flow_free(&c->fl);
    c->fl = (flow){.next_at = INT64_MAX, .sweep_at = INT64_MAX};
}

void obi_commit_destroy(ob_engine *e)
{
    commit *c = &e->c;
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->room);
    pthread_mutex_destroy(&c->mu);
}
