/*
 * apply.c - what each op changes in the store, inside the commit thread's
 * batch (commit.h): a new job inserted (or found by its unique key), a
 * life-cycle event decided (lifecycle.c) and applied, a lease extended;
 * and the follow-up job a final state may bring (ob_engine_on_final), in
 * the same transaction. Each function returns a store error (the batch
 * must abort) or 0; an op's own outcome goes to o->rc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/commit.h"

/* A batch changes few groups: a linear search from the last one found. */
void obi_batch_count(batch *b, const char *kind, const char *queue, ob_state state,
                     int64_t delta)
{
    for (int i = b->ncounts - 1; i >= 0; i--) {
        store_count *c = &b->counts[i];
        if (c->state == state && strcmp(c->queue, queue) == 0 && strcmp(c->kind, kind) == 0) {
            c->n += delta;
            return;
        }
    }
    if (!obi_count_append(&b->counts, &b->ncounts, &b->countcap, queue, kind, state, delta))
        b->counts_lost = true;
}

event_rec *obi_batch_event(batch *b, const ob_id *id, ob_state from, ob_state state, int attempt,
                           int64_t at, const char *kind, const char *queue, const char *error)
{
    if (from != state) {
        if (from)
            obi_batch_count(b, kind, queue, from, -1);
        obi_batch_count(b, kind, queue, state, 1);
    }
    if (b->nev == b->evcap) {
        size_t cap = b->evcap ? b->evcap * 2 : 256;
        event_rec *ev = realloc(b->ev, cap * sizeof *ev);
        if (!ev) {
            OB_ERROR("jobs: out of memory: a state-change event is lost");
            return NULL;
        }
        b->ev = ev;
        b->evcap = cap;
    }
    event_rec *r = &b->ev[b->nev++];
    r->id = *id;
    r->state = state;
    r->from = from;
    r->attempt = attempt;
    r->at = at;
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    snprintf(r->queue, sizeof r->queue, "%s", queue);
    r->error = error;
    r->schedule[0] = '\0';
    r->scheduled_for = 0;
    r->due = 0;
    return r;
}

static void due_at(commit *c, batch *b, int64_t t)
{
    if (t < c->next_due)
        c->next_due = t;
    if (t < b->new_due)
        b->new_due = t;
}

/* Each apply function returns a store error (the batch must abort) or 0;
 * the op's own outcome goes to o->rc. */

/* Insert a new job: id, state, counters, event. */
int obi_batch_insert(ob_engine *e, batch *b, store_new *j, int64_t now)
{
    store *s = e->st;
    commit *c = &e->c;
    obi_idgen_next(&c->idgen, &j->id);
    obi_new_job_due(j, now);
    int rc = s->ops->insert(s, j);
    if (rc)
        return rc; /* an error, or STORE_EXISTS */
    if (j->state == OB_SCHEDULED)
        due_at(c, b, j->run_at);
    else
        b->new_work = b->made_work = true;
    b->delta++;
    obi_batch_event(b, &j->id, 0, j->state, 0, now, j->kind, j->queue, NULL);
    return 0;
}

static int apply_enqueue(ob_engine *e, batch *b, op *o, int64_t now)
{
    store *s = e->st;
    bool full = e->c.unfinished + b->delta >= e->o.max_jobs;
    /* A shared store's insert finds a taken key itself (S6): one round trip
     * instead of two. */
    if (o->nj.unique_key && (s->exclusive || full)) {
        int rc = s->ops->find_unique(s, o->nj.unique_key, &o->id);
        if (rc == 0) {
            o->existed = true;
            return 0;
        }
        if (rc != OB_ENOTFOUND)
            return rc;
    }
    if (full) {
        o->rc = OB_EFULL;
        return 0;
    }
    int rc = obi_batch_insert(e, b, &o->nj, now);
    if (rc == STORE_EXISTS) { /* S6: another process committed the key */
        o->existed = true;
        return s->ops->find_unique(s, o->nj.unique_key, &o->id);
    }
    o->id = o->nj.id;
    return rc;
}

/* A job just became final in this batch: let the hook add its follow-up
 * to the same transaction (ob_engine_on_final). */
static int follow_up(ob_engine *e, batch *b, const ob_id *id, const store_row *row,
                     ob_state to, int attempt, int64_t now)
{
    ob_final f = {*id, row->kind, row->queue, row->has_meta ? row->meta : NULL, to, attempt};
    ob_new_job next = {0};
    if (!e->on_final(e->on_final_arg, &f, &next))
        return 0;
    char ids[OB_ID_STRLEN + 1];
    ob_problem p;
    int rc = ob_new_job_check(e, &next, &p);
    if (rc) {
        OB_ERROR("jobs: %s: follow-up job refused (%s: %s); skipped", ob_id_format(id, ids),
                 p.field, p.message);
        return 0;
    }
    if (next.unique_key) {
        ob_id existing;
        rc = e->st->ops->find_unique(e->st, next.unique_key, &existing);
        if (rc == 0)
            return 0; /* already there */
        if (rc != OB_ENOTFOUND)
            return rc;
    }
    store_new j;
    obi_new_job_from(e, &next, &j);
    char *terms = NULL;
    if (next.terms && !(j.terms = terms = obi_terms_lower(next.terms)))
        return OB_ENOMEM;
    rc = obi_batch_insert(e, b, &j, now);
    free(terms);
    return rc == STORE_EXISTS ? 0 : rc;
}

int obi_batch_change(ob_engine *e, batch *b, const ob_id *id, const lc_input *in, int64_t now,
                     int *result, ob_state *state_out, ob_state *was)
{
    store *s = e->st;
    store_row row;
    int rc = s->ops->load(s, id, &row);
    if (rc == OB_ENOTFOUND) {
        *result = OB_ENOTFOUND;
        return 0;
    }
    if (rc)
        return rc;
    *was = *state_out = row.state;
    const job_kind *k = obi_engine_kind(e, row.kind);
    const ob_backoff *bo = k ? &k->opts.backoff : &e->o.kind_defaults.backoff;
    store_change ch;
    int d = obi_lifecycle_decide(&row, id, in, bo, e->o.errors_kept, now, &ch);
    *result = d < 0 ? d : 0;
    if (d <= 0)
        return 0;
    rc = s->ops->update(s, &ch);
    if (rc == OB_ESTATE) { /* S3: moved on since load (another node) */
        *result = OB_ESTATE;
        return 0;
    }
    if (rc)
        return rc;
    *state_out = ch.to;
    bool fin_before = ob_state_is_final(row.state), fin_after = ob_state_is_final(ch.to);
    b->delta += (fin_before && !fin_after) - (!fin_before && fin_after);
    if (ch.to == OB_AVAILABLE)
        b->new_work = b->made_work = true;
    if (row.state == OB_RUNNING && ch.to != OB_RUNNING)
        obi_flow_finished(e, b, row.queue);
    if (in->hold_until &&
        (rc = obi_flow_hold(e, b, row.queue, in->hold_queue || !row.rate_key[0] ? NULL : row.rate_key,
                            in->hold_until, now)))
        return rc;
    if (ch.to == OB_SCHEDULED || ch.to == OB_RETRYABLE)
        due_at(&e->c, b, ch.run_at);
    if (ch.to != row.state)
        obi_batch_event(b, id, row.state, ch.to, ch.attempt, now, row.kind, row.queue, ch.error);
    if (!fin_before && fin_after && e->on_final)
        return follow_up(e, b, id, &row, ch.to, ch.attempt, now);
    return 0;
}

static int apply_change(ob_engine *e, batch *b, op *o, int64_t now)
{
    ob_state was;
    int rc = obi_batch_change(e, b, &o->id, &o->in, now, &o->rc, &o->state_out, &was);
    (void)was;
    if (!rc && o->rc == OB_ESTATE && o->in.ev != LC_CANCEL && o->in.ev != LC_REQUEUE &&
        o->in.ev != LC_RELEASE) {
        char ids[OB_ID_STRLEN + 1];
        OB_WARN("jobs: %s attempt %d: answer dropped, the attempt was rescued meanwhile",
                ob_id_format(&o->id, ids), o->in.attempt);
    }
    return rc;
}

static int apply_lease(ob_engine *e, op *o)
{
    int rc = e->st->ops->extend(e->st, &o->id, o->in.attempt, o->lease_until);
    o->rc = rc == OB_ESTATE ? rc : 0; /* no longer running: nothing to extend */
    return rc == OB_ESTATE ? 0 : rc;
}

int obi_batch_apply(ob_engine *e, batch *b, op *o, int64_t now)
{
    switch (o->type) {
    case OP_ENQUEUE: return apply_enqueue(e, b, o, now);
    case OP_CHANGE: return apply_change(e, b, o, now);
    case OP_LEASE: return apply_lease(e, o);
    case OP_QUEUE: return obi_flow_apply(e, b, o, now);
    case OP_SCHEDULE: return obi_schedule_apply(e, b, o, now);
    case OP_RECORD: return obi_record_apply(e, o, now);
    default: return 0; /* OP_BARRIER: nothing to apply */
    }
}
