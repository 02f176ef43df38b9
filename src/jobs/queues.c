/*
 * queues.c - flow control: a queue's settings (paused, concurrency, rate;
 * ob_queue_*), and how the commit thread's claim keeps them.
 *
 * The settings are rows of the store (store_queue), changed by an op of
 * the commit thread, so a change is durable when ob_queue_set returns and
 * every process sharing the store follows it. A queue with a row has its
 * available jobs parked (F3 in store.h): out of the claim indexes that an
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
#define KEYS_SCAN 256     /* keys of a keyed queue looked at per claim */

/* ---- the rate ---- */

/* A rate's count, moved to the period `now` falls in. Never back: a claim
 * whose `now` is before the period another node started — its batch began
 * before that node's commit, or its clock is behind — claims nothing (it
 * would stamp its jobs in a period whose count is closed). Returns
 * the starts the rate allows now: paced, the i-th start (from 0) of a
 * period no earlier than (i - limit/20)/limit of the way into it — a
 * twentieth ahead of the pace, so that claims a loaded machine makes late
 * in a period still use all of it; never more than `limit` a period. */
static int rate_room(int limit, int64_t period, int64_t *window, int *used, int64_t now)
{
    int64_t w = now - now % period;
    if (w > *window) {
        *window = w;
        *used = 0;
    }
    if (now < *window)
        return 0;
    int64_t t = now - *window;
    int64_t allowed = t * limit / period + 1 + limit / 20;
    if (allowed > limit)
        allowed = limit;
    return allowed > *used ? (int)(allowed - *used) : 0;
}

/* When a rate allows its next start (rate_room's pace, solved for t). */
static int64_t rate_next(int limit, int64_t period, int64_t window, int used)
{
    int64_t ahead = (int64_t)used - limit / 20;
    if (used >= limit)
        return window + period;
    return window + (ahead > 0 ? (ahead * period + limit - 1) / limit : 0);
}

static void timer_at(flow *f, int64_t t)
{
    if (t < f->next_at)
        f->next_at = t;
}

/* F2: whether a queue's row must exist at `now`. */
static bool limited(const store_queue *q, int64_t now)
{
    return q->paused || q->concurrency || q->rate_limit || q->key_rate_limit ||
           q->hold_until > now || q->key_hold_until > now;
}

/* Claimed per rate key: a key rate, or a key held. */
static bool keyed(const store_queue *q, int64_t now)
{
    return q->key_rate_limit || q->key_hold_until > now;
}

/* ---- the claim ---- */

/* The claim continues after the last key it saw of a queue, so that every
 * key of a queue with more than KEYS_SCAN of them gets its turn. */
static const char *cursor_of(flow *f, const char *queue)
{
    for (int i = 0; i < f->ncur; i++)
        if (strcmp(f->cur[i].queue, queue) == 0)
            return f->cur[i].key[0] ? f->cur[i].key : NULL;
    return NULL;
}

static void cursor_set(flow *f, const char *queue, const char *key)
{
    int i = 0;
    while (i < f->ncur && strcmp(f->cur[i].queue, queue) != 0)
        i++;
    if (i == f->ncur) {
        if (!key || f->ncur == OB_QUEUES_SET_MAX)
            return;
        flow_cursor *c = realloc(f->cur, (size_t)(f->ncur + 1) * sizeof *c);
        if (!c)
            return; /* only fairness is lost: the scan starts again */
        f->cur = c;
        snprintf(f->cur[f->ncur++].queue, sizeof c->queue, "%s", queue);
    }
    snprintf(f->cur[i].key, sizeof f->cur[i].key, "%s", key ? key : "");
}

/* A keyed queue: its waiting keys (up to KEYS_SCAN, after its cursor),
 * their rows locked, and each key's room. */
static int read_keys(ob_engine *e, int i, int64_t now)
{
    flow *f = &e->c.fl;
    flow_keys *fk = &f->keys[i];
    const store_queue *q = &f->rows[i];
    char (*names)[OB_RATE_KEY_MAX + 1] = malloc(KEYS_SCAN * sizeof *names);
    fk->k = calloc(KEYS_SCAN, sizeof *fk->k);
    fk->room = calloc(KEYS_SCAN, sizeof *fk->room);
    fk->pk = calloc(KEYS_SCAN, sizeof *fk->pk);
    fk->dirty = calloc(KEYS_SCAN, sizeof *fk->dirty);
    if (!names || !fk->k || !fk->room || !fk->pk || !fk->dirty) {
        free(names);
        return OB_ENOMEM;
    }
    int n, rc = e->st->ops->keys_waiting(e->st, q->name, cursor_of(f, q->name), names,
                                         KEYS_SCAN, &n);
    if (!rc && n == 0 && cursor_of(f, q->name)) /* the end: from the start again */
        rc = e->st->ops->keys_waiting(e->st, q->name, NULL, names, KEYS_SCAN, &n);
    if (!rc)
        cursor_set(f, q->name, n == KEYS_SCAN ? names[n - 1] : NULL);
    for (int k = 0; k < n; k++)
        snprintf(fk->k[k].key, sizeof fk->k[k].key, "%s", names[k]);
    free(names);
    if (!rc)
        rc = e->st->ops->keys_lock(e->st, q->name, fk->k, n);
    if (rc)
        return rc;
    fk->n = n;
    for (int k = 0; k < n; k++) {
        store_key *key = &fk->k[k];
        int room = INT_MAX;
        if (key->held_until > now) {
            room = 0;
            timer_at(f, key->held_until);
        } else if (q->key_rate_limit) {
            room = rate_room(q->key_rate_limit, q->key_rate_period_ms, &key->rate_window,
                             &key->rate_used, now);
        }
        fk->room[k] = room;
    }
    return 0;
}

static void free_keys(flow *f)
{
    for (int i = 0; f->keys && i < f->nrows; i++) {
        free(f->keys[i].k);
        free(f->keys[i].room);
        free(f->keys[i].pk);
        free(f->keys[i].dirty);
    }
    free(f->keys);
    f->keys = NULL;
}

void obi_flow_free(flow *f)
{
    free_keys(f);
    free(f->rows);
    free(f->room);
    free(f->dirty);
    free(f->cur);
}

int obi_flow_begin(ob_engine *e, int64_t now)
{
    flow *f = &e->c.fl;
    free_keys(f);
    free(f->rows);
    f->rows = NULL;
    f->nrows = 0;
    f->bound = false;
    f->now = now;
    if (!f->known)
        return 0;
    int rc = e->st->ops->queues_lock(e->st, &f->rows, &f->nrows);
    if (rc)
        return rc;
    if (f->nrows > f->known)
        f->known = f->nrows;
    if (f->nrows == 0)
        return 0;
    if (!(f->room = realloc(f->room, (size_t)f->nrows * sizeof *f->room)) ||
        !(f->dirty = realloc(f->dirty, (size_t)f->nrows * sizeof *f->dirty)) ||
        !(f->keys = calloc((size_t)f->nrows, sizeof *f->keys)))
        return OB_ENOMEM;
    memset(f->dirty, 0, (size_t)f->nrows * sizeof *f->dirty);
    for (int i = 0; i < f->nrows && !rc; i++) {
        store_queue *q = &f->rows[i];
        int room = q->paused ? 0 : INT_MAX;
        if (room && q->hold_until > now) {
            room = 0;
            timer_at(f, q->hold_until);
        }
        if (room && q->concurrency)
            room = q->running < q->concurrency ? q->concurrency - q->running : 0;
        if (room && q->rate_limit) {
            int r = rate_room(q->rate_limit, q->rate_period_ms, &q->rate_window, &q->rate_used,
                              now);
            room = r < room ? r : room;
        }
        f->room[i] = room;
        if (room && keyed(q, now))
            rc = read_keys(e, i, now);
    }
    return rc;
}

static int row_of(const flow *f, const char *queue)
{
    for (int i = 0; i < f->nrows; i++)
        if (strcmp(f->rows[i].name, queue) == 0)
            return i;
    return -1;
}

/* A limited queue the claim serves: a part if it has room (a keyed queue:
 * with the keys that have room). */
static void add_part(flow *f, int i, int want, store_part *parts, int *nparts)
{
    if (f->room[i] <= 0) {
        f->bound |= !f->rows[i].paused;
        return;
    }
    int lim = f->room[i] < want ? f->room[i] : want;
    if (!f->keys || !f->keys[i].k) {
        parts[(*nparts)++] = (store_part){f->rows[i].name, lim, NULL, 0};
        return;
    }
    flow_keys *fk = &f->keys[i];
    int nk = 0;
    for (int k = 0; k < fk->n; k++) {
        if (fk->room[k] <= 0) {
            f->bound = true;
            continue;
        }
        fk->pk[nk++] = (store_part_key){fk->k[k].key, fk->room[k] < lim ? fk->room[k] : lim};
    }
    if (nk > 0)
        parts[(*nparts)++] = (store_part){f->rows[i].name, lim, fk->pk, nk};
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

/* A job of keyed row i was claimed: its key's room shrinks. */
static void key_claimed(flow *f, int i, const ob_job *j)
{
    flow_keys *fk = &f->keys[i];
    const char *key = j->rate_key ? j->rate_key : "";
    for (int k = 0; k < fk->n; k++) {
        if (strcmp(fk->k[k].key, key) != 0)
            continue;
        assert(fk->room[k] > 0); /* F1 */
        fk->room[k]--;
        if (f->rows[i].key_rate_limit) {
            fk->k[k].rate_used++;
            fk->dirty[k] = true;
        }
        return;
    }
    assert(!"a keyed claim took a job of a key it did not ask for"); /* F1 */
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
        if (f->rows[i].rate_limit) {
            f->rows[i].rate_used++;
            f->dirty[i] = true;
        }
        if (f->room[i] == 0)
            f->bound = true;
        if (f->keys && f->keys[i].k)
            key_claimed(f, i, jobs[k]);
    }
}

/* Save a keyed row's counts; a timer for a key its rate held back. */
static int keys_end(ob_engine *e, int i)
{
    flow *f = &e->c.fl;
    flow_keys *fk = &f->keys[i];
    const store_queue *q = &f->rows[i];
    for (int k = 0; k < fk->n && q->key_rate_limit; k++) {
        int rc = fk->dirty[k] ? e->st->ops->key_save(e->st, q->name, &fk->k[k]) : 0;
        if (rc)
            return rc;
        if (fk->room[k] == 0 && fk->k[k].held_until <= f->now)
            timer_at(f, rate_next(q->key_rate_limit, q->key_rate_period_ms, fk->k[k].rate_window,
                                  fk->k[k].rate_used));
    }
    return 0;
}

int obi_flow_end(ob_engine *e, batch *b)
{
    flow *f = &e->c.fl;
    if (f->bound)
        b->flow_bound = true;
    for (int i = 0; i < f->nrows; i++) {
        store_queue *q = &f->rows[i];
        if (q->paused)
            continue;
        int rc = f->keys && f->keys[i].k ? keys_end(e, i) : 0;
        if (!rc && f->dirty[i])
            rc = e->st->ops->queue_save(e->st, q); /* the period's count */
        if (rc)
            return rc;
        if (q->rate_limit && f->room[i] == 0)
            timer_at(f, rate_next(q->rate_limit, q->rate_period_ms, q->rate_window,
                                  q->rate_used));
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

/* ---- holds ---- */

int obi_flow_hold(ob_engine *e, batch *b, const char *queue, const char *key, int64_t until,
                  int64_t now)
{
    store *s = e->st;
    store_queue *rows, q;
    int nrows, rc = s->ops->queues_lock(s, &rows, &nrows); /* every row, in order first */
    free(rows);
    if (rc)
        return rc;
    if ((rc = s->ops->queue_load(s, queue, &q)) == OB_ENOTFOUND) {
        memset(&q, 0, sizeof q);
        snprintf(q.name, sizeof q.name, "%s", queue);
    } else if (rc) {
        return rc;
    }
    if (!key) {
        if (until > q.hold_until)
            q.hold_until = until;
    } else {
        store_key k = {.key = ""};
        snprintf(k.key, sizeof k.key, "%s", key);
        if ((rc = s->ops->keys_lock(s, queue, &k, 1)))
            return rc;
        if (until > k.held_until)
            k.held_until = until;
        if (until > q.key_hold_until)
            q.key_hold_until = until;
        if ((rc = s->ops->key_save(s, queue, &k)))
            return rc;
    }
    q.updated_at = now;
    if ((rc = s->ops->queue_save(s, &q)))
        return rc;
    flow *f = &e->c.fl;
    f->known++;
    f->sweep = true;     /* its jobs are parked: claimed past the hold */
    timer_at(f, until);  /* then they start */
    if (until < f->sweep_at)
        f->sweep_at = until; /* and the row goes */
    (void)b;
    return 0;
}

/* ---- chores: the rate's timer, the park sweep ---- */

/* Delete the row of a queue whose holds ended and that has no setting
 * left (F2); park a page of each other queue's unparked jobs, and prune
 * its keys; unpark a page of each queue that has parked jobs and no row.
 * Another batch at once while pages come back full. */
static int sweep(ob_engine *e, batch *b, int64_t now)
{
    store *s = e->st;
    flow *f = &e->c.fl;
    store_queue *rows;
    int nrows, n, rc = s->ops->queues_lock(s, &rows, &nrows);
    if (rc)
        return rc;
    if (s->exclusive || nrows > f->known) /* (a shared store's refresh counts them all) */
        f->known = nrows;
    bool full = false;
    for (int i = 0; i < nrows && !rc; i++) {
        const store_queue *q = &rows[i];
        if (!limited(q, now)) {
            rc = s->ops->queue_delete(s, q->name);
            continue;
        }
        if (!(rc = s->ops->park(s, q->name, true, SWEEP_PAGE, &n)))
            full |= n == SWEEP_PAGE;
        if (!rc && !(rc = s->ops->keys_prune(s, q->name, now, q->key_rate_period_ms, SWEEP_PAGE,
                                             &n)))
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
    if (now >= f->next_at) { /* a rate's next start, a hold's end */
        f->next_at = INT64_MAX;
        b->new_work = true;
    }
    if (now >= f->sweep_at) { /* a hold ended: its row may go */
        f->sweep_at = INT64_MAX;
        f->sweep = true;
    }
    store *s = e->st;
    bool periodic = !s->exclusive && now >= f->next_sweep;
    if (periodic) {
        f->next_sweep = now + SWEEP_MS;
        periodic = !s->ops->leader || s->ops->leader(s);
    }
    return f->sweep || periodic ? sweep(e, b, now) : 0;
}

/* ---- settings: the op ---- */

int obi_flow_apply(ob_engine *e, batch *b, op *o, int64_t now)
{
    store *s = e->st;
    store_queue *in = o->q, q, *rows;
    int nrows, rc = s->ops->queues_lock(s, &rows, &nrows); /* every row, in order first */
    free(rows);
    if (!rc)
        rc = s->ops->queue_load(s, in->name, &q);
    if (rc == OB_ENOTFOUND) {
        memset(&q, 0, sizeof q);
        snprintf(q.name, sizeof q.name, "%s", in->name);
        if (nrows >= OB_QUEUES_SET_MAX && limited(in, now)) {
            o->rc = OB_EFULL;
            return 0;
        }
    } else if (rc) {
        return rc;
    }
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
    if (o->qmask & OB_QUEUE_KEY_RATE) {
        q.key_rate_limit = in->key_rate_limit;
        q.key_rate_period_ms = in->key_rate_limit ? in->key_rate_period_ms : 0;
    }
    q.updated_at = now;
    rc = limited(&q, now) ? s->ops->queue_save(s, &q) : s->ops->queue_delete(s, q.name); /* F2 */
    if (rc)
        return rc;
    *in = q;
    e->c.fl.known++;   /* the claim reads the rows again */
    e->c.fl.sweep = true;
    b->new_work = b->made_work = true; /* a resume, a raised limit */
    return 0;
}

/* ---- settings: the calls ---- */

static int check_rate(const char *what, int limit, int64_t period_ms, ob_problem *p)
{
    char field[24];
    if (limit == 0)
        return 0;
    if (limit < 0 || limit > OB_RATE_LIMIT_MAX) {
        snprintf(field, sizeof field, "%s.limit", what);
        return obi_problem(p, OB_EINVAL, field, "must be 1 to %d (0: no limit)",
                           OB_RATE_LIMIT_MAX);
    }
    if (period_ms < 1 || period_ms > OB_RATE_PERIOD_MAX_MS) {
        snprintf(field, sizeof field, "%s.period", what);
        return obi_problem(p, OB_EINVAL, field, "must be 1 ms to 1 day");
    }
    return 0;
}

static int check_settings(const char *name, const ob_queue_settings *st, unsigned mask,
                          ob_problem *p)
{
    if (!ob_name_valid(name))
        return obi_problem(p, OB_EINVAL, "name",
                           "a queue name is 1-%d characters of A-Z a-z 0-9 . _ -", OB_NAME_MAX);
    if (!st ||
        (mask & ~(OB_QUEUE_PAUSED | OB_QUEUE_CONCURRENCY | OB_QUEUE_RATE | OB_QUEUE_KEY_RATE)))
        return obi_problem(p, OB_EINVAL, "settings", "no settings, or an unknown member in mask");
    if ((mask & OB_QUEUE_CONCURRENCY) &&
        (st->concurrency < 0 || st->concurrency > OB_CONCURRENCY_MAX))
        return obi_problem(p, OB_EINVAL, "concurrency", "must be 1 to %d (0: no cap)",
                           OB_CONCURRENCY_MAX);
    int rc = 0;
    if (mask & OB_QUEUE_RATE)
        rc = check_rate("rate", st->rate_limit, st->rate_period_ms, p);
    if (!rc && (mask & OB_QUEUE_KEY_RATE))
        rc = check_rate("key_rate", st->key_rate_limit, st->key_rate_period_ms, p);
    return rc;
}

static void settings_of(const store_queue *q, ob_queue_settings *out)
{
    *out = (ob_queue_settings){q->paused,         q->concurrency,          q->rate_limit,
                               q->rate_period_ms, q->key_rate_limit, q->key_rate_period_ms};
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
                     .rate_limit = st->rate_limit, .rate_period_ms = st->rate_period_ms,
                     .key_rate_limit = st->key_rate_limit,
                     .key_rate_period_ms = st->key_rate_period_ms};
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
                       int64_t count)
{
    (void)kind;
    ob_queue_info *q = entry(arg, queue);
    if (q && state >= OB_STATE_MIN && state <= OB_STATE_MAX)
        q->counts[state] += count;
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
            q->hold_until_ms = rows[i].hold_until > ob_now_ms() ? rows[i].hold_until : 0;
        }
    }
    free(rows);
    if (!l.rc && (rc = e->st->ops->counts(e->st, count_into, &l)))
        l.rc = rc;
    for (size_t i = 0; i < l.n && !l.rc; i++)
        if (l.v[i].counts[OB_AVAILABLE] > 0)
            l.rc = e->st->ops->oldest_due(e->st, l.v[i].name, &l.v[i].oldest_due_ms);
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

int ob_queue_holds(ob_engine *e, const char *name, ob_key_hold **out, size_t *n)
{
    if (!e || !out || !n || !ob_name_valid(name))
        return OB_EINVAL;
    store_key *rows;
    int nr, rc = e->st->ops->keys_held(e->st, name, ob_now_ms(), &rows, &nr);
    if (rc)
        return rc;
    *out = NULL;
    *n = 0;
    if (nr > 0 && !(*out = calloc((size_t)nr, sizeof **out)))
        rc = OB_ENOMEM;
    for (int i = 0; !rc && i < nr; i++) {
        snprintf((*out)[i].key, sizeof (*out)[i].key, "%s", rows[i].key);
        (*out)[i].until_ms = rows[i].held_until;
    }
    *n = rc ? 0 : (size_t)nr;
    free(rows);
    return rc;
}
