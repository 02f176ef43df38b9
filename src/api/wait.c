/*
 * wait.c - `Prefer: wait=N`: hold a response until its job is final or N
 * seconds pass, without a thread per waiting client.
 *
 * A held response is an entry (job id, suspended-response handle,
 * deadline) in a hash of lists. An engine subscription to final states
 * (this node's and, on PostgreSQL, the other nodes') moves the entries of a
 * job that becomes final to a ready list; one thread answers the ready
 * ones (reading the job, rendering it) and times out the late ones. The
 * subscription runs on the engine's commit thread (or the store's, for
 * other nodes' jobs), so it only moves pointers.
 *
 * No missed wake-up: an entry is registered before its job is read, and
 * the event for a job that was already final when read is not needed.
 * Bounded: max_waiters entries; past it a request is answered at once
 * with the job as it is.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/util.h"

#define BUCKETS 256

typedef struct wentry {
    ob_id id;
    ob_http_later *l;
    int64_t deadline; /* monotonic ms */
    int timeout_status;
    struct wentry *next;
} wentry;

struct waitlist {
    api *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wentry *b[BUCKETS];
    wentry *ready;
    int n;
    bool stop;
    pthread_t thread;
    ob_subscription *sub;
};

static wentry **bucket(waitlist *w, const ob_id *id) { return &w->b[id->b[15] % BUCKETS]; }

/* Answer one entry with the job as it is now. */
static void answer(waitlist *w, wentry *e, bool final)
{
    ob_job *j = NULL;
    int rc = ob_job_get(w->a->o.engine, &e->id, &j);
    if (rc) {
        api_later_rc(e->l, rc, NULL);
    } else {
        json_t *v = api_job_json(j, true);
        ob_http_later_set_header(e->l, "Location", json_string_value(json_object_get(v, "status_url")));
        if (!final)
            ob_http_later_set_header(e->l, "Preference-Applied", "wait");
        ob_http_later_reply_json(e->l, final || ob_state_is_final(j->state) ? 200 : e->timeout_status,
                                 v); /* OB_EGONE if the client left: fine */
        json_decref(v);
        ob_job_free(j);
    }
    free(e);
}

/* Move the entries of `id` to the ready list. Called with mu held. */
static int make_ready(waitlist *w, const ob_id *id)
{
    int moved = 0;
    for (wentry **p = bucket(w, id); *p;) {
        wentry *e = *p;
        if (memcmp(e->id.b, id->b, 16) == 0) {
            *p = e->next;
            e->next = w->ready;
            e->deadline = 0; /* final */
            w->ready = e;
            w->n--;
            moved++;
        } else {
            p = &e->next;
        }
    }
    return moved;
}

static void on_event(void *arg, const ob_event *ev)
{
    waitlist *w = arg;
    if (!ob_state_is_final(ev->state))
        return;
    pthread_mutex_lock(&w->mu);
    if (w->n && make_ready(w, &ev->id))
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Move timed-out entries to the ready list (deadline kept: not final). */
static void expire(waitlist *w, int64_t now)
{
    for (int i = 0; i < BUCKETS; i++) {
        for (wentry **p = &w->b[i]; *p;) {
            wentry *e = *p;
            if (e->deadline <= now) {
                *p = e->next;
                e->next = w->ready;
                w->ready = e;
                w->n--;
            } else {
                p = &e->next;
            }
        }
    }
}

static void *wait_main(void *arg)
{
    waitlist *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        if (!w->ready) {
            struct timespec ts = ob_mono_deadline(100);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        if (w->n)
            expire(w, ob_mono_ms());
        wentry *list = w->ready;
        w->ready = NULL;
        pthread_mutex_unlock(&w->mu);
        while (list) {
            wentry *e = list;
            list = e->next;
            answer(w, e, e->deadline == 0);
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void waitlist_add(waitlist *w, const ob_id *id, ob_http_later *l, int64_t wait_ms,
                  int timeout_status)
{
    wentry *e = calloc(1, sizeof *e);
    if (!e) {
        api_later_rc(l, OB_ENOMEM, NULL);
        return;
    }
    *e = (wentry){*id, l, ob_mono_ms() + wait_ms, timeout_status, NULL};
    pthread_mutex_lock(&w->mu);
    if (w->n >= w->a->o.max_waiters || w->stop) { /* full: answer now, as it is */
        e->deadline = ob_mono_ms();
        e->next = w->ready;
        w->ready = e;
    } else {
        wentry **b = bucket(w, id);
        e->next = *b;
        *b = e;
        w->n++;
    }
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    /* Registered: now the job may be read. Already final? Ready it. */
    ob_job *j = NULL;
    if (ob_job_get(w->a->o.engine, id, &j) == 0 && ob_state_is_final(j->state)) {
        pthread_mutex_lock(&w->mu);
        if (make_ready(w, id))
            pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    ob_job_free(j);
}

int waitlist_new(api *a, waitlist **out)
{
    waitlist *w = calloc(1, sizeof *w);
    if (!w)
        return OB_ENOMEM;
    w->a = a;
    pthread_mutex_init(&w->mu, NULL);
    ob_cond_init_mono(&w->cv);
    int rc = ob_engine_subscribe_finals(a->o.engine, on_event, w, &w->sub);
    if (!rc && pthread_create(&w->thread, NULL, wait_main, w))
        rc = OB_ENOMEM;
    if (rc) {
        ob_engine_unsubscribe(a->o.engine, w->sub);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void waitlist_free(waitlist *w)
{
    if (!w)
        return;
    ob_engine_unsubscribe(w->a->o.engine, w->sub);
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    expire(w, INT64_MAX); /* what is left is answered as it is (or dropped if gone) */
    while (w->ready) {
        wentry *e = w->ready;
        w->ready = e->next;
        answer(w, e, false);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
