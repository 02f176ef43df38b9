/*
 * chores.c - the commit thread's work that is due by time rather than
 * asked for, each run inside a batch (commit.h) when its timer says so:
 *
 *   promote   scheduled and retryable jobs whose time came become available
 *   rescue    running jobs whose lease expired are rescued (leader only)
 *   prune     finished jobs older than the retention are deleted (leader only)
 *   refresh   on a shared store: look again for work and due times other
 *             processes made, whether queues have settings, and recount
 *             the unfinished jobs
 *   flow      a rate's next start; the park sweep (queues.c)
 *   schedules the jobs of the cron schedules whose tick came (leader only;
 *             schedules.c)
 *
 * A chore that hits its per-batch cap asks for another batch at once
 * (b->chores_again) instead of waiting for its interval.
 */
#include <stdio.h>
#include <stdlib.h>

#include "jobs/commit.h"

#define REFRESH_MS 1000  /* look for work other processes made (shared) */
#define RECOUNT_MS 10000 /* recount unfinished jobs (shared) */
#define SCHED_POLL_MS 1000 /* shared: the leader looks for schedules others set */

/* Whether a chore whose timer is *next runs now. A chore for the leader
 * alone, on a process that does not lead, moves its timer on instead. */
static bool due(ob_engine *e, int64_t *next, int64_t now, int64_t interval, bool leader_only)
{
    if (now < *next)
        return false;
    if (leader_only && e->st->ops->leader && !e->st->ops->leader(e->st)) {
        *next = now + interval;
        return false;
    }
    return true;
}

/* A chore ran: when it hit its per-batch cap (`full`), another batch runs
 * it again at once; else it waits its interval. Returns `full`. */
static bool rearm(batch *b, int64_t *next, int64_t now, int64_t interval, bool full)
{
    if (full)
        b->chores_again = true;
    else
        *next = now + interval;
    return full;
}

static int promote_due(ob_engine *e, batch *b, int64_t now)
{
    commit *c = &e->c;
    if (now < c->next_due)
        return 0;
    int n, rc = e->st->ops->promote(e->st, now, b->moved, PROMOTE_MAX, &n);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        store_moved *m = &b->moved[i];
        obi_batch_event(b, &m->id, m->from, OB_AVAILABLE, m->attempt, now, m->kind, m->queue, NULL);
    }
    if (n > 0)
        b->new_work = b->made_work = true;
    if (n == PROMOTE_MAX)
        b->chores_again = true;
    return e->st->ops->next_due(e->st, &c->next_due);
}

static const char rescue_error[] =
    "lease expired: the worker died, hung past its timeout, or its node stopped "
    "heartbeating; attempt rescued";

static int rescue_expired(ob_engine *e, batch *b, int64_t now)
{
    commit *c = &e->c;
    if (!due(e, &c->next_rescue, now, e->o.rescue_interval_ms, true))
        return 0;
    int n, rc = e->st->ops->expired(e->st, now, c->rescue_all, b->leases, RESCUE_MAX, &n);
    if (rc)
        return rc;
    for (int i = 0; i < n && !rc; i++) {
        lc_input in = {.ev = LC_RESCUE, .attempt = b->leases[i].attempt, .delay_ms = -1,
                       .error = rescue_error};
        int result;
        ob_state to, was;
        rc = obi_batch_change(e, b, &b->leases[i].id, &in, now, &result, &to, &was);
        if (!rc && !result) {
            char ids[OB_ID_STRLEN + 1];
            OB_WARN("jobs: %s attempt %d rescued: lease expired -> %s",
                    ob_id_format(&b->leases[i].id, ids), in.attempt, ob_state_name(to));
        }
    }
    if (!rearm(b, &c->next_rescue, now, e->o.rescue_interval_ms, n == RESCUE_MAX))
        c->rescue_all = false;
    return rc;
}

static void pruned(void *arg, const char *kind, const char *queue, ob_state state)
{
    obi_batch_count(arg, kind, queue, state, -1);
}

static int prune_old(ob_engine *e, batch *b, int64_t now)
{
    commit *c = &e->c;
    if (!due(e, &c->next_prune, now, e->o.prune_interval_ms, true))
        return 0;
    int n, rc = e->st->ops->prune(e->st, now - e->o.retention_ms, e->o.prune_batch, pruned, b,
                                  &n);
    if (rc)
        return rc;
    rearm(b, &c->next_prune, now, e->o.prune_interval_ms, n == e->o.prune_batch);
    if (n)
        OB_DEBUG("jobs: pruned %d finished jobs", n);
    return 0;
}

/* Other processes share the store (or wrote to it: transactional enqueue):
 * look again for available work and the earliest due job, now and then,
 * whatever notifications were missed; recount the unfinished jobs. */
static int refresh_shared(ob_engine *e, batch *b, int64_t now)
{
    commit *c = &e->c;
    store *s = e->st;
    if (!s->ops->external || !due(e, &c->next_refresh, now, REFRESH_MS, false))
        return 0;
    c->next_refresh = now + REFRESH_MS; /* first: the timer must move on */
    if (!s->ops->external(s))
        return 0;
    b->new_work = true;
    store_queue *rows;
    int rc = s->ops->queues(s, &rows, &c->fl.known);
    free(rows);
    if (!rc)
        rc = s->ops->next_due(s, &c->next_due);
    if (rc || !due(e, &c->next_recount, now, RECOUNT_MS, false))
        return rc;
    c->next_recount = now + RECOUNT_MS;
    if (!(rc = s->ops->count_unfinished(s, &b->count)))
        b->recounted = true;
    return rc;
}

int obi_chores_run(ob_engine *e, batch *b, int64_t now)
{
    int rc = promote_due(e, b, now);
    if (!rc)
        rc = rescue_expired(e, b, now);
    if (!rc)
        rc = prune_old(e, b, now);
    if (!rc)
        rc = refresh_shared(e, b, now);
    if (!rc)
        rc = obi_flow_chores(e, b, now);
    commit *c = &e->c;
    if (!rc && due(e, &c->next_sched, now, SCHED_POLL_MS, true))
        rc = obi_schedules_run(e, b, now, &c->next_sched);
    return rc;
}
