/*
 * notify.c - who hears of committed state changes: subscribers (every
 * change, in commit order) and ob_job_wait waiters (one job reaching a
 * final state).
 *
 * Invariants
 *   N1  Only committed changes are published: the commit thread calls
 *       obi_notify_publish after store commit() returned 0.
 *   N2  A waiter registers before it reads the job, so a change committed
 *       between its read and its sleep still wakes it.
 *   N3  Subscriber callbacks run under mu, so once unsubscribe returns the
 *       callback is not running.
 * Waiters hash by the last byte of the id (random in a UUIDv7) into
 * WAIT_BUCKETS lists, so a publish costs O(waiters on that id's bucket).
 */
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"

struct ob_subscription {
    ob_event_fn fn;       /* NULL for a record subscriber */
    ob_record_fn rfn;     /* ... which has this instead */
    void *arg;
    bool finals;          /* final states only, this node's and others' */
    ob_subscription *next;
};

struct waiter {
    ob_id id;
    pthread_cond_t cv;
    bool fired;
    waiter *next;
};

void obi_notify_init(notify *n, int max_waiters)
{
    memset(n, 0, sizeof *n);
    pthread_mutex_init(&n->mu, NULL);
    n->max_waiters = max_waiters;
}

void obi_notify_destroy(notify *n)
{
    while (n->subs) {
        ob_subscription *s = n->subs;
        n->subs = s->next;
        free(s);
    }
    pthread_mutex_destroy(&n->mu);
}

static int subscribe(ob_engine *e, ob_event_fn fn, ob_record_fn rfn, void *arg, bool finals,
                     ob_subscription **out)
{
    if (!e || !(fn || rfn) || !out)
        return OB_EINVAL;
    ob_subscription *s = calloc(1, sizeof *s);
    if (!s)
        return OB_ENOMEM;
    s->fn = fn;
    s->rfn = rfn;
    s->arg = arg;
    s->finals = finals;
    pthread_mutex_lock(&e->n.mu);
    ob_subscription **p = &e->n.subs; /* append: callbacks in subscription order */
    while (*p)
        p = &(*p)->next;
    *p = s;
    pthread_mutex_unlock(&e->n.mu);
    *out = s;
    return 0;
}

int ob_engine_subscribe(ob_engine *e, ob_event_fn fn, void *arg, ob_subscription **out)
{
    return subscribe(e, fn, NULL, arg, false, out);
}

int ob_engine_subscribe_finals(ob_engine *e, ob_event_fn fn, void *arg, ob_subscription **out)
{
    return subscribe(e, fn, NULL, arg, true, out);
}

int ob_engine_subscribe_records(ob_engine *e, ob_record_fn fn, void *arg, ob_subscription **out)
{
    return fn ? subscribe(e, NULL, fn, arg, false, out) : OB_EINVAL;
}

void obi_notify_record(notify *n, const ob_record *r, bool deleted)
{
    pthread_mutex_lock(&n->mu);
    for (ob_subscription *s = n->subs; s; s = s->next)
        if (s->rfn)
            s->rfn(s->arg, r, deleted);
    pthread_mutex_unlock(&n->mu);
}

void ob_engine_unsubscribe(ob_engine *e, ob_subscription *s)
{
    if (!e || !s)
        return;
    pthread_mutex_lock(&e->n.mu);
    for (ob_subscription **p = &e->n.subs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            free(s);
            break;
        }
    }
    pthread_mutex_unlock(&e->n.mu);
}

static waiter **bucket(notify *n, const ob_id *id) { return &n->buckets[id->b[15] % WAIT_BUCKETS]; }

/* Wake the waiters of `id`. Called with mu held. */
static void fire(notify *n, const ob_id *id)
{
    if (!n->nwaiters)
        return;
    for (waiter *w = *bucket(n, id); w; w = w->next) {
        if (memcmp(w->id.b, id->b, 16) == 0) {
            w->fired = true;
            pthread_cond_signal(&w->cv);
        }
    }
}

void obi_notify_publish(notify *n, const event_rec *ev, size_t count)
{
    if (!count)
        return;
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < count; i++) {
        const event_rec *r = &ev[i];
        if (n->subs) {
            ob_event pub = {r->id,    r->kind,  r->queue, r->state,
                            r->from,  r->attempt, r->at, r->error,
                            false,    r->schedule[0] ? r->schedule : NULL, r->scheduled_for,
                            r->due};
            for (ob_subscription *s = n->subs; s; s = s->next)
                if (s->fn && (!s->finals || ob_state_is_final(r->state)))
                    s->fn(s->arg, &pub);
        }
        if (ob_state_is_final(r->state))
            fire(n, &r->id);
    }
    pthread_mutex_unlock(&n->mu);
}

void obi_notify_remote_final(notify *n, const ob_id *id, ob_state state)
{
    pthread_mutex_lock(&n->mu);
    ob_event pub = {.id = *id, .kind = "", .queue = "", .state = state, .at_ms = ob_now_ms(),
                    .remote = true};
    for (ob_subscription *s = n->subs; s; s = s->next)
        if (s->finals)
            s->fn(s->arg, &pub);
    fire(n, id);
    pthread_mutex_unlock(&n->mu);
}

void obi_notify_shutdown(notify *n)
{
    pthread_mutex_lock(&n->mu);
    n->shutdown = true;
    for (int b = 0; b < WAIT_BUCKETS; b++)
        for (waiter *w = n->buckets[b]; w; w = w->next)
            pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&n->mu);
}

static void unlink_waiter(notify *n, waiter *w)
{
    for (waiter **p = bucket(n, &w->id); *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    n->nwaiters--;
}

int obi_notify_wait(notify *n, const ob_id *id, int64_t timeout_ms, int (*check)(void *arg),
                void *arg)
{
    waiter w = {.id = *id};
    if (ob_cond_init_mono(&w.cv))
        return OB_ENOMEM;
    pthread_mutex_lock(&n->mu);
    int rc = n->shutdown ? OB_ESHUTDOWN : n->nwaiters >= n->max_waiters ? OB_EBUSY : 0;
    if (rc) {
        pthread_mutex_unlock(&n->mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    waiter **b = bucket(n, id);
    w.next = *b;
    *b = &w;
    n->nwaiters++;
    pthread_mutex_unlock(&n->mu);

    rc = check(arg); /* N2: after registering */
    pthread_mutex_lock(&n->mu);
    if (rc == 0) {
        struct timespec until = ob_mono_deadline(timeout_ms);
        while (!w.fired && !n->shutdown && rc == 0) {
            if (timeout_ms < 0)
                pthread_cond_wait(&w.cv, &n->mu);
            else if (pthread_cond_timedwait(&w.cv, &n->mu, &until))
                rc = OB_ETIMEDOUT;
        }
        if (w.fired)
            rc = 1;
        else if (n->shutdown)
            rc = OB_ESHUTDOWN;
    }
    unlink_waiter(n, &w);
    pthread_mutex_unlock(&n->mu);
    pthread_cond_destroy(&w.cv);
    return rc == 1 ? 0 : rc;
}
