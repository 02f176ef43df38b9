/*
 * bulk.c - retry or cancel many jobs at once (ob_jobs_bulk*): a page of
 * the listing (or a list of ids) chooses them, and each becomes an
 * ordinary change op. They go through the commit thread in its usual
 * batches, beside enqueues and answers, so no commit carries more than
 * max_batch of them and nothing stalls behind a large operation; the
 * caller continues with the cursor the result gives.
 *
 * Invariant K1: `done` is called exactly once, when the last op issued has
 * been answered and issuing is over (the issuer holds one count of
 * `pending` until it has issued every op, as batch.c's B1).
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"

typedef struct bulk {
    pthread_mutex_t mu;
    int pending; /* ops issued and not yet answered, + 1 while issuing (K1) */
    ob_bulk_result r;
    ob_bulk_fn done;
    void *arg;
} bulk;

static void finish(bulk *b)
{
    pthread_mutex_lock(&b->mu);
    int left = --b->pending;
    assert(left >= 0); /* K1 */
    pthread_mutex_unlock(&b->mu);
    if (left)
        return;
    ob_bulk_result r = b->r;
    ob_bulk_fn done = b->done;
    void *arg = b->arg;
    pthread_mutex_destroy(&b->mu);
    free(b);
    done(arg, &r);
}

/* One change answered (commit thread): counted when it changed the job;
 * a job whose state does not allow it (OB_ESTATE) or that is gone is
 * skipped; anything else is the result's error. */
static void changed(void *arg, int rc, ob_state state)
{
    (void)state;
    bulk *b = arg;
    pthread_mutex_lock(&b->mu);
    if (rc == 0)
        b->r.changed++;
    else if (rc != OB_ESTATE && rc != OB_ENOTFOUND && !b->r.rc)
        b->r.rc = rc;
    pthread_mutex_unlock(&b->mu);
    finish(b);
}

/* Issue the change of each id; stop at the first the engine does not take
 * (OB_EBUSY, OB_ESHUTDOWN): the cursor then points at the last one taken,
 * so that continuing from it comes back to the rest. */
static void issue(ob_engine *e, bulk *b, ob_bulk_action a, const ob_id *ids, size_t n,
                  bool paged)
{
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&b->mu);
        b->pending++;
        b->r.matched++;
        pthread_mutex_unlock(&b->mu);
        int rc = a == OB_BULK_RETRY ? ob_job_retry_async(e, &ids[i], changed, b)
                                    : ob_job_cancel_async(e, &ids[i], changed, b);
        if (rc) {
            pthread_mutex_lock(&b->mu);
            b->pending--;
            b->r.matched--;
            if (!b->r.rc)
                b->r.rc = rc;
            if (paged && i > 0)
                ob_id_format(&ids[i - 1], b->r.next_cursor);
            else if (paged)
                b->r.next_cursor[0] = '\0';
            pthread_mutex_unlock(&b->mu);
            return;
        }
    }
}

int ob_jobs_bulk_async(ob_engine *e, ob_bulk_action a, const ob_list_filter *f,
                       const ob_id *ids, size_t nids, ob_bulk_fn done, void *arg)
{
    if (!e || !done || (a != OB_BULK_RETRY && a != OB_BULK_CANCEL) || (!f && !ids) ||
        nids > OB_LIST_MAX || (ids && !nids))
        return OB_EINVAL;
    ob_job_page *page = NULL;
    if (!ids) {
        ob_list_filter g = *f;
        if (g.limit == 0)
            g.limit = OB_LIST_MAX;
        int rc = ob_job_list(e, &g, &page);
        if (rc)
            return rc;
    }
    size_t n = page ? page->n : nids;
    ob_id *list = malloc((n ? n : 1) * sizeof *list);
    bulk *b = calloc(1, sizeof *b);
    if (!list || !b) {
        free(list), free(b);
        ob_job_page_free(page);
        return OB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        list[i] = page ? page->jobs[i]->id : ids[i];
    if (page)
        memcpy(b->r.next_cursor, page->next_cursor, sizeof b->r.next_cursor);
    ob_job_page_free(page);
    pthread_mutex_init(&b->mu, NULL);
    b->pending = 1; /* the issuer's (K1) */
    b->done = done;
    b->arg = arg;
    issue(e, b, a, list, n, ids == NULL);
    free(list);
    finish(b);
    return 0;
}

/* ---- the blocking form ---- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    ob_bulk_result r;
} waiter;

static void wake(void *arg, const ob_bulk_result *r)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->r = *r;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ob_jobs_bulk(ob_engine *e, ob_bulk_action a, const ob_list_filter *f, const ob_id *ids,
                 size_t nids, ob_bulk_result *out)
{
    waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = ob_jobs_bulk_async(e, a, f, ids, nids, wake, &w);
    if (!rc) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        *out = w.r;
        rc = w.r.rc;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
