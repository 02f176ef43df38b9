/*
 * pool.c - worker pools: threads that run handlers on claimed jobs, and the
 * context a handler sees (ob_ctx_*).
 *
 * A pool never touches the store. The commit thread claims jobs for it
 * (up to capacity = workers + prefetch, minus jobs in hand) and delivers
 * them into the pool's ring after their claim committed; a worker takes one,
 * runs the handler, and queues the answer as an op — it does not wait for
 * that commit, so the next job starts at once (the answer is durable within
 * one commit, and if the process dies first the job is rescued: at least
 * once).
 *
 * Invariants
 *   P1  in_hand = jobs in the ring + jobs being run; in_hand <= capacity.
 *   P2  Every claimed job gets exactly one answer op: the handler's, a
 *       synthesised retry (no answer, no handler), or a release (never
 *       started, pool stopping).
 *   P3  A job snapshot handed to a handler is freed (poisoned in debug
 *       builds) when the handler returns.
 */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"

/* P1, checked in debug builds wherever in_hand changes (under p->mu). */
static void check_p1(const pool *p)
{
    assert(p->ring_len >= 0 && p->in_hand >= p->ring_len && p->in_hand <= p->capacity); /* P1 */
    (void)p;
}

void ob_pool_opts_init(ob_pool_opts *o)
{
    memset(o, 0, sizeof *o);
    o->workers = 4;
    o->prefetch = -1; /* = workers */
}

/* ---- handler context ---- */

const ob_job *ob_ctx_job(const ob_job_ctx *ctx) { return ctx->job; }
int64_t ob_ctx_deadline(const ob_job_ctx *ctx) { return ctx->deadline; }

int ob_ctx_cancelled(const ob_job_ctx *ctx)
{
    int c = atomic_load_explicit(&((ob_job_ctx *)ctx)->cancel, memory_order_acquire);
    if (c)
        return c;
    return ob_now_ms() >= ctx->deadline ? OB_CANCEL_TIMEOUT : OB_CANCEL_NONE;
}

int ob_ctx_sleep(ob_job_ctx *ctx, int64_t ms)
{
    worker *w = ctx->w;
    int64_t left = ctx->deadline - ob_now_ms();
    if (ms > left)
        ms = left;
    struct timespec until = ob_mono_deadline(ms);
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&ctx->cancel) && ms > 0) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return ob_ctx_cancelled(ctx);
}

static int answer(ob_job_ctx *ctx, lc_event ev, int64_t delay_ms, const char *error)
{
    if (ctx->answered)
        return OB_ESTATE;
    if (error) {
        ctx->error = obi_utf8_clean_dup(error, ctx->w->p->e->o.max_error);
        if (!ctx->error)
            return OB_ENOMEM;
    }
    ctx->answered = true;
    ctx->ev = ev;
    ctx->delay_ms = delay_ms;
    return 0;
}

/* Check a result and keep it (replacing one kept before) for the answer. */
static int stage_result(ob_job_ctx *ctx, const char *result_json)
{
    size_t n = strlen(result_json);
    if (n > ctx->w->p->e->o.max_result)
        return OB_ETOOBIG;
    json_error_t err;
    json_t *v = json_loadb(result_json, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (!v)
        return OB_EINVAL;
    json_decref(v);
    char *copy = strdup(result_json);
    if (!copy)
        return OB_ENOMEM;
    free(ctx->result);
    ctx->result = copy;
    return 0;
}

int ob_ctx_set_result(ob_job_ctx *ctx, const char *result_json)
{
    if (ctx->answered)
        return OB_ESTATE;
    return stage_result(ctx, result_json);
}

int ob_ctx_done(ob_job_ctx *ctx, const char *result_json)
{
    if (ctx->answered)
        return OB_ESTATE;
    int rc = result_json ? stage_result(ctx, result_json) : 0;
    return rc ? rc : answer(ctx, LC_DONE, 0, NULL);
}

int ob_ctx_retry(ob_job_ctx *ctx, int64_t delay_ms, const char *error)
{
    return answer(ctx, LC_RETRY, delay_ms < 0 ? -1 : delay_ms, error ? error : "retry requested");
}

int ob_ctx_discard(ob_job_ctx *ctx, const char *error)
{
    return answer(ctx, LC_DISCARD, 0, error ? error : "discarded by handler");
}

int ob_ctx_snooze(ob_job_ctx *ctx, int64_t delay_ms)
{
    return answer(ctx, LC_SNOOZE, delay_ms < 0 ? 0 : delay_ms, NULL);
}

#define HOLD_MAX_MS (24 * 3600 * 1000LL) /* a destination asking for more gets a day */

int ob_ctx_retry_hold(ob_job_ctx *ctx, int64_t delay_ms, bool whole_queue, const char *error)
{
    if (delay_ms < 1)
        delay_ms = 1;
    if (delay_ms > HOLD_MAX_MS)
        delay_ms = HOLD_MAX_MS;
    int rc = answer(ctx, LC_RETRY, delay_ms, error ? error : "held by its destination");
    if (!rc) {
        ctx->hold_ms = delay_ms;
        ctx->hold_queue = whole_queue || !ctx->job->rate_key;
    }
    return rc;
}

/* ---- running one job ---- */

/* The answer op for a finished attempt (P2). NULL on out of memory. */
static op *answer_op(ob_job_ctx *ctx, const job_kind *k)
{
    ob_job *job = ctx->job;
    lc_input in = {.ev = ctx->ev, .attempt = job->attempt, .delay_ms = ctx->delay_ms,
                   .error = ctx->error, .result = ctx->result,
                   .hold_until = ctx->hold_ms ? ob_now_ms() + ctx->hold_ms : 0,
                   .hold_queue = ctx->hold_queue};
    char msg[256];
    if (!k) {
        snprintf(msg, sizeof msg, "no handler is registered for kind \"%s\"", job->kind);
        in = (lc_input){.ev = LC_RETRY, .attempt = job->attempt, .delay_ms = -1, .error = msg};
    } else if (!ctx->answered) {
        in = (lc_input){.ev = LC_RETRY, .attempt = job->attempt, .delay_ms = -1,
                        .error = "handler returned without an answer"};
    }
    char *timed = NULL;
    int64_t late = ob_now_ms() - ctx->deadline;
    if (in.ev != LC_DONE && in.ev != LC_SNOOZE && late >= 0 && in.error) {
        size_t n = strlen(in.error) + 64;
        if ((timed = malloc(n)))
            snprintf(timed, n, "timed out after %lld ms: %s", (long long)job->timeout_ms, in.error);
        in.error = timed ? timed : in.error;
    }
    op *o = obi_op_change_new(&job->id, &in);
    free(timed);
    return o;
}

/* A job's lease began at its claim. One that waited in the ring long
 * enough to eat into its grace gets its lease moved to start + timeout +
 * grace, so that running for its whole timeout never looks like a hang
 * (the op is queued before the answer, and commits long before the old
 * lease ends). Jobs that start at once — the usual case — cost nothing. */
static void renew_lease(ob_engine *e, const ob_job *job, int64_t now)
{
    if (now - job->attempted_at_ms <= e->o.lease_grace_ms / 2)
        return;
    lc_input in = {.attempt = job->attempt};
    op *o = obi_op_change_new(&job->id, &in);
    if (!o)
        return; /* the claim's lease stands: at worst a rescue */
    o->type = OP_LEASE;
    o->lease_until = now + job->timeout_ms + e->o.lease_grace_ms;
    if (obi_commit_submit(e, o, false))
        free(o);
}

static void run_job(worker *w, ob_job *job)
{
    pool *p = w->p;
    ob_engine *e = p->e;
    int64_t now = ob_now_ms();
    renew_lease(e, job, now);
    ob_job_ctx ctx = {.job = job, .w = w, .deadline = now + job->timeout_ms};
    atomic_init(&ctx.cancel, OB_CANCEL_NONE);
    pthread_mutex_lock(&w->mu);
    w->ctx = &ctx;
    pthread_mutex_unlock(&w->mu);

    const job_kind *k = obi_engine_kind(e, job->kind);
    obi_hist_observe(&e->h_start, now > job->run_at_ms ? (double)(now - job->run_at_ms) / 1000 : 0);
    int64_t t0 = obi_mono_us();
    if (k)
        k->fn(&ctx, k->arg);
    obi_hist_observe(&e->h_run, (double)(obi_mono_us() - t0) / 1e6);

    pthread_mutex_lock(&w->mu);
    w->ctx = NULL;
    pthread_mutex_unlock(&w->mu);

    op *o = answer_op(&ctx, k);
    pthread_mutex_lock(&p->mu);
    p->in_hand--; /* before the op wakes the commit thread: it sees the room */
    check_p1(p);
    pthread_mutex_unlock(&p->mu);
    char ids[OB_ID_STRLEN + 1];
    if (!o)
        OB_ERROR("jobs: %s: out of memory: answer lost, the job will be rescued",
                 ob_id_format(&job->id, ids));
    else if (obi_commit_submit(e, o, false)) {
        OB_ERROR("jobs: %s: answer not accepted (closing); the job will be rescued",
                 ob_id_format(&job->id, ids));
        free(o);
    }
    free(ctx.error);
    free(ctx.result);
    obi_job_free_poisoned(job); /* P3 */
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->p;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->ring_len && !p->stopping)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stopping)
            break;
        ob_job *job = p->ring[p->ring_head];
        p->ring_head = (p->ring_head + 1) % p->capacity;
        p->ring_len--;
        pthread_mutex_unlock(&p->mu);
        if (atomic_load(&p->e->isolated)) { /* another node may have it soon */
            obi_pool_release(p->e, job);
            pthread_mutex_lock(&p->mu);
            p->in_hand--;
            check_p1(p);
            continue;
        }
        run_job(w, job);
        pthread_mutex_lock(&p->mu);
    }
    p->live--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the commit thread's side ---- */

int obi_pool_demand(pool *p)
{
    pthread_mutex_lock(&p->mu);
    int d = p->stopping ? 0 : p->capacity - p->in_hand;
    pthread_mutex_unlock(&p->mu);
    return d;
}

void obi_pool_release(ob_engine *e, ob_job *job)
{
    lc_input in = {.ev = LC_RELEASE, .attempt = job->attempt};
    op *o = obi_op_change_new(&job->id, &in);
    if (o && obi_commit_submit(e, o, false) == 0) {
        ob_job_free(job);
        return;
    }
    free(o);
    char ids[OB_ID_STRLEN + 1];
    OB_WARN("jobs: %s: could not give back an unstarted job; it will be rescued",
            ob_id_format(&job->id, ids));
    ob_job_free(job);
}

void obi_pool_deliver(pool *p, ob_job **jobs, int n)
{
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < n; i++)
            obi_pool_release(p->e, jobs[i]);
        return;
    }
    for (int i = 0; i < n; i++) {
        assert(p->in_hand < p->capacity); /* P1: the commit thread claimed only the room */
        p->ring[(p->ring_head + p->ring_len++) % p->capacity] = jobs[i];
        p->in_hand++;
    }
    check_p1(p);
    if (n == 1)
        pthread_cond_signal(&p->work);
    else
        pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
}

static void cancel_worker(worker *w, const ob_id *id, int attempt, int why)
{
    pthread_mutex_lock(&w->mu);
    ob_job_ctx *ctx = w->ctx;
    if (ctx && (!id || (memcmp(ctx->job->id.b, id->b, 16) == 0 &&
                        (attempt < 0 || ctx->job->attempt == attempt)))) {
        atomic_store_explicit(&ctx->cancel, why, memory_order_release);
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

void obi_pool_isolated(void *arg, bool yes)
{
    ob_engine *e = arg;
    atomic_store(&e->isolated, yes);
    if (!yes)
        return;
    pthread_mutex_lock(&e->pools_mu);
    for (pool *p = e->pools; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < p->nworkers; i++)
            cancel_worker(&p->workers[i], NULL, -1, OB_CANCEL_ISOLATED);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&e->pools_mu);
}

void obi_pool_cancel_running(pool *p, const ob_id *id, int attempt)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        cancel_worker(&p->workers[i], id, attempt, OB_CANCEL_REQUESTED);
    pthread_mutex_unlock(&p->mu);
}

/* ---- start and stop ---- */

static int check_opts(const ob_pool_opts *o, int *nqueues)
{
    if (o->workers < 1 || o->workers > 1024 || o->prefetch > 4096) {
        OB_ERROR("jobs: pool: workers must be 1..1024 and prefetch at most 4096");
        return OB_EINVAL;
    }
    int n = 0;
    while (n < OB_POOL_QUEUES_MAX && o->queues[n]) {
        if (!ob_name_valid(o->queues[n])) {
            OB_ERROR("jobs: pool: invalid queue name \"%.80s\"", o->queues[n]);
            return OB_EINVAL;
        }
        n++;
    }
    *nqueues = n;
    return 0;
}

static void pool_free(pool *p)
{
    for (int i = 0; i < p->nworkers; i++) {
        pthread_mutex_destroy(&p->workers[i].mu);
        pthread_cond_destroy(&p->workers[i].cv);
    }
    for (int i = 0; i < p->nqueues; i++)
        free(p->queues[i]);
    free(p->workers);
    free(p->ring);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->exited);
    free(p);
}

static void join_all(pool *p, int started)
{
    for (int i = 0; i < started; i++)
        pthread_join(p->workers[i].thread, NULL);
}

int ob_pool_start(ob_engine *e, const ob_pool_opts *opts, ob_pool **out)
{
    ob_pool_opts def;
    if (!opts) {
        ob_pool_opts_init(&def);
        opts = &def;
    }
    int nq = 0;
    if (!e || !out)
        return OB_EINVAL;
    int rc = check_opts(opts, &nq);
    if (rc)
        return rc;
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return OB_ENOMEM;
    p->e = e;
    p->nworkers = opts->workers;
    p->capacity = opts->workers + (opts->prefetch < 0 ? opts->workers : opts->prefetch);
    p->maybe_work = true;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    ob_cond_init_mono(&p->exited);
    p->ring = calloc((size_t)p->capacity, sizeof *p->ring);
    p->workers = calloc((size_t)p->nworkers, sizeof *p->workers);
    bool ok = p->ring && p->workers;
    for (int i = 0; i < nq && ok; i++, p->nqueues++)
        ok = (p->queues[i] = strdup(opts->queues[i])) != NULL;
    if (!ok) {
        pool_free(p);
        return OB_ENOMEM;
    }
    int started = 0;
    for (; started < p->nworkers; started++) {
        worker *w = &p->workers[started];
        w->p = p;
        pthread_mutex_init(&w->mu, NULL);
        ob_cond_init_mono(&w->cv);
        pthread_mutex_lock(&p->mu);
        p->live++;
        pthread_mutex_unlock(&p->mu);
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            pthread_mutex_lock(&p->mu);
            p->live--;
            p->stopping = true;
            pthread_cond_broadcast(&p->work);
            pthread_mutex_unlock(&p->mu);
            join_all(p, started);
            p->nworkers = started + 1; /* destroy what was initialised */
            pool_free(p);
            return OB_ENOMEM;
        }
    }
    pthread_mutex_lock(&e->pools_mu);
    p->next = e->pools;
    e->pools = p;
    pthread_mutex_unlock(&e->pools_mu);
    obi_commit_kick(e);
    *out = p;
    return 0;
}

int ob_pool_stop(ob_pool *p, int64_t drain_ms)
{
    if (!p)
        return 0;
    ob_engine *e = p->e;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    /* Give back what no worker started (uncounted). */
    while (p->ring_len) {
        ob_job *job = p->ring[p->ring_head];
        p->ring_head = (p->ring_head + 1) % p->capacity;
        p->ring_len--;
        p->in_hand--;
        check_p1(p);
        obi_pool_release(e, job);
    }
    struct timespec until = ob_mono_deadline(drain_ms);
    while (p->live > 0 && rc == 0)
        if (pthread_cond_timedwait(&p->exited, &p->mu, &until) == ETIMEDOUT)
            rc = OB_ETIMEDOUT;
    if (p->live > 0) {
        OB_WARN("jobs: pool stop: %d handlers still running after %lld ms; cancelling them",
                p->live, (long long)drain_ms);
        for (int i = 0; i < p->nworkers; i++)
            cancel_worker(&p->workers[i], NULL, -1, OB_CANCEL_SHUTDOWN);
        while (p->live > 0)
            pthread_cond_wait(&p->exited, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    join_all(p, p->nworkers);

    pthread_mutex_lock(&e->pools_mu);
    for (pool **pp = &e->pools; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pthread_mutex_unlock(&e->pools_mu);
    pool_free(p);
    obi_commit_flush(e); /* the pool's answers and releases are through */
    return rc;
}
