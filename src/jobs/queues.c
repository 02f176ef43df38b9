/*
 * queues.c - flow control: a queue's settings (paused, concurrency, rate;
 * ob_queue_*), and how the commit thread's claim keeps them.
 *
 * The settings are rows of the store (store_queue), changed by an op of
 * the commit thread, so a change is durable when ob_queue_set returns and
 * every process sharing the store follows it. A queue with a row has its
 * available jobs parked (P1 in store.h): out of the claim indexes that an
 * unlimited claim runs down, so that a paused or limited queue's backlog
 * costs the other queues nothing. The sweep here moves the backlog in
 * pages when a queue gains or loses its row.
 *
 * A claim (commit.c's claim_for_pools) goes:
 *   1. flow_begin   every row, read (and locked, on a shared store) in
 *                   the claim's transaction; each queue's room: paused 0,
 *                   else concurrency - running and the rate's starts left
 *   2. flow_request per pool: the unlimited queues as the main part, each
 *                   limited one it serves as a part of at most its room
 *   3. flow_claimed the rooms shrink by what was claimed, across pools
 *   4. flow_end     the rates' counts saved; a timer for the next start of
 *                   a queue whose rate held a claim back
 * Because every claim of a limited queue holds its row's lock (PostgreSQL)
 * or the one writer (SQLite) from step 1 to its commit, the running count
 * and the rate's count it sees are exact: invariant F1, no claim makes a
 * queue exceed its concurrency or its rate, on any number of nodes. The
 * lock is per queue and taken once per batch (which claims as many jobs
 * as there is room for), not per job: nodes contend only on the queues
 * they limit.
 *
 * A job that waits for room stays available and keeps its attempts; it
 * starts when room comes: a finished job of a capped queue makes work in
 * its batch (flow_finished), and a rate's next start is a timer.
 */
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/commit.h"

#define SWEEP_PAGE 1000   /* jobs parked or unparked per queue and batch */
#define SWEEP_MS 1000     /* shared stores: the leader's sweep interval */
#define ORPHANS_MAX 16    /* queues unparked per batch */

/* ---- the rate ---- */

/* Move q's count to the period `now` falls in (never back: a node whose
 * clock is behind counts in the period another started). Returns the
 * starts the rate allows now: paced, the i-th start (from 0) of a period
 * no earlier than i/limit of the way into it. */
static int rate_room(store_queue *q, int64_t now)
{
    int64_t p = q->rate_period_ms, w = now - now % p;
    if (w > q->rate_window) {
        q->rate_window = w;
        q->rate_used = 0;
    }
    int64_t t = now > q->rate_window ? now - q->rate_window : 0;
    int64_t allowed = t * q->rate_limit / p + 1;
    if (allowed > q->rate_limit)
        allowed = q->rate_limit;
    return allowed > q->rate_used ? (int)(allowed - q->rate_used) : 0;
}

/* When q's rate allows its next start. */
static int64_t rate_next(const store_queue *q)
{
    int64_t p = q->rate_period_ms, n = q->rate_limit;
    if (q->rate_used >= n)
        return q->rate_window + p;
    return q->rate_window + ((int64_t)q->rate_used * p + n - 1) / n;
}

static bool limited(const store_queue *q) { return q->paused || q->concurrency || q->rate_limit; }

/* ---- the claim ---- */

int obi_flow_begin(ob_engine *e, int64_t now)
{
    flow *f = &e->c.fl;
    free(f->rows);
    f->rows = NULL;
    f->nrows = 0;
    f->bound = false;
    if (!f->known)
        return 0;
    int rc = e->st->ops->queues_lock(e->st, &f->rows, &f->nrows);
    if (rc)
        return rc;
    f->known = f->nrows;
    if (f->nrows > 0 && !(f->room = realloc(f->room, (size_t)f->nrows * sizeof *f->room)))
        return OB_ENOMEM;
    for (int i = 0; i < f->nrows; i++) {
        store_queue *q = &f->rows[i];
        int room = q->paused ? 0 : INT_MAX;
        if (room && q->concurrency)
            room = q->running < q->concurrency ? q->concurrency - q->running : 0;
        if (room && q->rate_limit) {
            int r = rate_room(q, now);
            room = r < room ? r : room;
        }
        f->room[i] = room;
    }
    return 0;
}

static int row_of(const flow *f, const char *queue)
{
    for (int i = 0; i < f->nrows; i++)
        if (strcmp(f->rows[i].name, queue) == 0)
            return i;
    return -1;
}

/* A limited queue the claim serves: a part if it has room. */
static void add_part(flow *f, int i, int want, store_part *parts, int *nparts)
{
    if (f->room[i] <= 0) {
        f->bound |= !f->rows[i].paused;
        return;
    }
    int lim = f->room[i] < want ? f->room[i] : want;
    parts[(*nparts)++] = (store_part){f->rows[i].name, lim};
}

void obi_flow_request(ob_engine *e, pool *p, int want, store_claim *req, store_part *parts,
                      const char **mainq)
{
    flow *f = &e->c.fl;
    req->queues = (const char *const *)p->queues;
    req->nqueues = p->nqueues;
    req->main_off = false;
    req->net = f->nrows > 0;
    req->parts = parts;
    req->nparts = 0;
    if (f->nrows == 0)
        return;
    if (p->nqueues == 0) {
        for (int i = 0; i < f->nrows; i++)
            add_part(f, i, want, parts, &req->nparts);
        return;
    }
    int nmain = 0;
    for (int k = 0; k < p->nqueues; k++) {
        int i = row_of(f, p->queues[k]);
        if (i < 0)
            mainq[nmain++] = p->queues[k];
        else
            add_part(f, i, want, parts, &req->nparts);
    }
    req->queues = mainq;
    req->nqueues = nmain;
    req->main_off = nmain == 0;
}

void obi_flow_claimed(ob_engine *e, ob_job *const *jobs, int n)
{
    flow *f = &e->c.fl;
    for (int k = 0; k < n && f->nrows; k++) {
        int i = row_of(f, jobs[k]->queue);
        if (i < 0)
            continue;
        assert(f->room[i] > 0 && !f->rows[i].paused); /* F1 */
        f->room[i]--;
        if (f->rows[i].rate_limit)
            f->rows[i].rate_used++;
        if (f->room[i] == 0)
            f->bound = true;
    }
}

int obi_flow_end(ob_engine *e, batch *b)
{
    flow *f = &e->c.fl;
    if (f->bound)
        b->flow_bound = true;
    for (int i = 0; i < f->nrows; i++) {
        store_queue *q = &f->rows[i];
        if (!q->rate_limit || q->paused)
            continue;
        int rc = e->st->ops->queue_save(e->st, q); /* the period's count */
        if (rc)
            return rc;
        if (f->room[i] == 0) {
            int64_t t = rate_next(q);
            if (t < f->next_at)
                f->next_at = t;
        }
    }
    return 0;
}

void obi_flow_finished(ob_engine *e, batch *b, const char *queue)
{
    flow *f = &e->c.fl;
    int i = row_of(f, queue);
    if (i >= 0 && f->rows[i].concurrency)
        b->new_work = b->made_work = true; /* room for the next, here or elsewhere */
}

/* ---- chores: the rate's timer, the park sweep ---- */

/* Park a page of each limited queue's unparked jobs, unpark a page of
 * each queue that has parked jobs and no row. Another batch at once while
 * pages come back full. */
static int sweep(ob_engine *e, batch *b)
{
    store *s = e->st;
    flow *f = &e->c.fl;
    store_queue *rows;
    int nrows, n, rc = s->ops->queues_lock(s, &rows, &nrows);
    if (rc)
        return rc;
    f->known = nrows;
    bool full = false;
    for (int i = 0; i < nrows && !rc; i++) {
        if (!(rc = s->ops->park(s, rows[i].name, true, SWEEP_PAGE, &n)))
            full |= n == SWEEP_PAGE;
    }
    free(rows);
    char names[ORPHANS_MAX][OB_NAME_MAX + 1];
    int norph = 0;
    if (!rc)
        rc = s->ops->parked_orphans(s, names, ORPHANS_MAX, &norph);
    full |= norph == ORPHANS_MAX;
    for (int i = 0; i < norph && !rc; i++) {
        if (!(rc = s->ops->park(s, names[i], false, SWEEP_PAGE, &n))) {
            full |= n == SWEEP_PAGE;
            if (n)
                b->new_work = b->made_work = true;
        }
    }
    if (!rc) {
        f->sweep = full;
        b->chores_again |= full;
    }
    return rc;
}

int obi_flow_chores(ob_engine *e, batch *b, int64_t now)
{
    flow *f = &e->c.fl;
    if (now >= f->next_at) {
        f->next_at = INT64_MAX;
        b->new_work = true;
    }
    store *s = e->st;
    bool periodic = !s->exclusive && now >= f->next_sweep;
    if (periodic) {
        f->next_sweep = now + SWEEP_MS;
        periodic = !s->ops->leader || s->ops->leader(s);
    }
    return f->sweep || periodic ? sweep(e, b) : 0;
}

/* ---- settings: the op ---- */

int obi_flow_apply(ob_engine *e, batch *b, op *o, int64_t now)
{
    store *s = e->st;
    store_queue *in = o->q, q;
    int rc = s->ops->queue_load(s, in->name, &q);
    if (rc == OB_ENOTFOUND) {
        memset(&q, 0, sizeof q);
        snprintf(q.name, sizeof q.name, "%s", in->name);
    } else if (rc) {
        return rc;
    }
    bool was = rc == 0;
    if (o->qmask & OB_QUEUE_PAUSED)
        q.paused = in->paused;
    if (o->qmask & OB_QUEUE_CONCURRENCY)
        q.concurrency = in->concurrency;
    if ((o->qmask & OB_QUEUE_RATE) &&
        (q.rate_limit != in->rate_limit || q.rate_period_ms != in->rate_period_ms)) {
        q.rate_limit = in->rate_limit;
        q.rate_period_ms = in->rate_limit ? in->rate_period_ms : 0;
        q.rate_window = q.rate_used = 0;
    }
    if (!was && limited(&q)) {
        store_queue *rows;
        int nrows;
        if ((rc = s->ops->queues_lock(s, &rows, &nrows)))
            return rc;
        free(rows);
        if (nrows >= OB_QUEUES_SET_MAX) {
            o->rc = OB_EFULL;
            return 0;
        }
    }
    q.updated_at = now;
    if ((rc = s->ops->queue_save(s, &q)))
        return rc;
    *in = q;
    e->c.fl.known++;   /* the claim reads the rows again */
    e->c.fl.sweep = true;
    b->new_work = b->made_work = true; /* a resume, a raised limit */
    return 0;
}

/* ---- settings: the calls ---- */

static int check_settings(const char *name, const ob_queue_settings *st, unsigned mask,
                          ob_problem *p)
{
    if (!ob_name_valid(name))
        return obi_problem(p, OB_EINVAL, "name",
                           "a queue name is 1-%d characters of A-Z a-z 0-9 . _ -", OB_NAME_MAX);
    if (!st || (mask & ~(OB_QUEUE_PAUSED | OB_QUEUE_CONCURRENCY | OB_QUEUE_RATE)))
        return obi_problem(p, OB_EINVAL, "settings", "no settings, or an unknown member in mask");
    if ((mask & OB_QUEUE_CONCURRENCY) &&
        (st->concurrency < 0 || st->concurrency > OB_CONCURRENCY_MAX))
        return obi_problem(p, OB_EINVAL, "concurrency", "must be 1 to %d (0: no cap)",
                           OB_CONCURRENCY_MAX);
    if (!(mask & OB_QUEUE_RATE) || st->rate_limit == 0)
        return 0;
    if (st->rate_limit < 0 || st->rate_limit > OB_RATE_LIMIT_MAX)
        return obi_problem(p, OB_EINVAL, "rate.limit", "must be 1 to %d (0: no limit)",
                           OB_RATE_LIMIT_MAX);
    if (st->rate_period_ms < 1 || st->rate_period_ms > OB_RATE_PERIOD_MAX_MS)
        return obi_problem(p, OB_EINVAL, "rate.period", "must be 1 ms to 1 day");
    return 0;
}

static void settings_of(const store_queue *q, ob_queue_settings *out)
{
    *out = (ob_queue_settings){q->paused, q->concurrency, q->rate_limit, q->rate_period_ms};
}

int ob_queue_set(ob_engine *e, const char *name, const ob_queue_settings *st, unsigned mask,
                 ob_queue_settings *after, ob_problem *p)
{
    if (!e)
        return OB_EINVAL;
    int rc = check_settings(name, st, mask, p);
    if (rc)
        return rc;
    store_queue q = {.paused = st->paused, .concurrency = st->concurrency,
                     .rate_limit = st->rate_limit, .rate_period_ms = st->rate_period_ms};
    snprintf(q.name, sizeof q.name, "%s", name);
    op o = {.type = OP_QUEUE, .external = true, .q = &q, .qmask = mask};
    rc = obi_commit_submit_wait(e, &o);
    if (rc == OB_EFULL)
        obi_problem(p, rc, "name", "%d queues have settings already; clear some first",
                    OB_QUEUES_SET_MAX);
    if (!rc && after)
        settings_of(&q, after);
    return rc;
}

/* ob_queue_list's gathering: one entry per queue, kept in name order. */
typedef struct qlist {
    ob_queue_info *v;
    size_t n, cap;
    int rc;
} qlist;

static ob_queue_info *entry(qlist *l, const char *name)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(l->v[mid].name, name);
        if (c == 0)
            return &l->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ob_queue_info *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->rc = OB_ENOMEM;
            return NULL;
        }
        l->v = v;
        l->cap = cap;
    }
    memmove(&l->v[lo + 1], &l->v[lo], (l->n - lo) * sizeof *l->v);
    l->n++;
    memset(&l->v[lo], 0, sizeof l->v[lo]);
    snprintf(l->v[lo].name, sizeof l->v[lo].name, "%s", name);
    return &l->v[lo];
}

static void count_into(void *arg, ob_state state, const char *kind, const char *queue,
                       int64_t count, int64_t oldest)
{
    (void)kind;
    ob_queue_info *q = entry(arg, queue);
    if (!q || state < OB_STATE_MIN || state > OB_STATE_MAX)
        return;
    q->counts[state] += count;
    if (state == OB_AVAILABLE && oldest > 0 && (!q->oldest_due_ms || oldest < q->oldest_due_ms))
        q->oldest_due_ms = oldest;
}

int ob_queue_list(ob_engine *e, ob_queue_info **out, size_t *n)
{
    if (!e || !out || !n)
        return OB_EINVAL;
    store_queue *rows;
    int nrows;
    int rc = e->st->ops->queues(e->st, &rows, &nrows);
    if (rc)
        return rc;
    qlist l = {0};
    for (int i = 0; i < nrows && !l.rc; i++) {
        ob_queue_info *q = entry(&l, rows[i].name);
        if (q) {
            settings_of(&rows[i], &q->settings);
            q->updated_at_ms = rows[i].updated_at;
        }
    }
    free(rows);
    if (!l.rc && (rc = e->st->ops->counts(e->st, count_into, &l)))
        l.rc = rc;
    if (l.rc) {
        free(l.v);
        return l.rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

int ob_queue_get(ob_engine *e, const char *name, ob_queue_info *out)
{
    if (!e || !out || !ob_name_valid(name))
        return OB_EINVAL;
    ob_queue_info *all;
    size_t n;
    int rc = ob_queue_list(e, &all, &n);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].name, name) == 0)
            *out = all[i];
    free(all);
    return 0;
}
