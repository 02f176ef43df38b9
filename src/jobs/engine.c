/*
 * engine.c - the job engine's public API (outbox/jobs.h): opening and
 * closing, job kinds, enqueue, and the calls that read or change one job.
 *
 * Everything that writes goes to the commit thread as an op (commit.c);
 * the blocking calls here queue an op and sleep until its done() says the
 * batch holding it committed — which is what makes "success means durable"
 * true. Reads go straight to the store's reader connections.
 *
 * Input is checked here, at the entry point, before anything is queued:
 * names, sizes, ranges, UTF-8. A check failure names the field.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/jobs.h"

/* ---- options ---- */

void ob_engine_opts_init(ob_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_payload = 1 << 20;
    o->max_result = 64 << 10;
    o->max_error = 1 << 10;
    o->errors_kept = 20;
    o->max_jobs = 10 * 1000 * 1000;
    o->max_inflight = 65536;
    o->max_batch = 1024;
    o->max_waiters = 10000;
    o->retention_ms = 7LL * 24 * 3600 * 1000;
    o->prune_batch = 1000;
    o->prune_interval_ms = 60 * 1000;
    o->lease_grace_ms = 30 * 1000;
    o->rescue_interval_ms = 5 * 1000;
    o->node_dead_ms = 15 * 1000;
    o->kind_defaults = (ob_kind_opts){
        .timeout_ms = 60 * 1000,
        .max_attempts = 25,
        .backoff = {.base_ms = 1000, .factor = 2.0, .max_ms = 3600 * 1000, .jitter = 0.2},
    };
}

#define DAY_MS (24LL * 3600 * 1000)

static bool kind_opts_ok(const ob_kind_opts *k)
{
    const ob_backoff *b = &k->backoff;
    return k->timeout_ms >= 1 && k->timeout_ms <= DAY_MS && k->max_attempts >= 1 &&
           k->max_attempts <= 1000 && b->base_ms >= 0 && b->factor >= 1.0 && b->factor <= 100 &&
           b->max_ms >= b->base_ms && b->jitter >= 0 && b->jitter <= 1;
}

static const char *engine_opts_bad(const ob_engine_opts *o)
{
    if (o->max_payload < 1 || o->max_payload > (64u << 20))
        return "max_payload (1 B .. 64 MiB)";
    if (o->max_result > (16u << 20))
        return "max_result (.. 16 MiB)";
    if (o->max_error < 16 || o->max_error > (64u << 10))
        return "max_error (16 B .. 64 KiB)";
    if (o->errors_kept < 1 || o->errors_kept > OB_ERRORS_KEPT_MAX)
        return "errors_kept (1 .. 64)";
    if (o->max_jobs < 1)
        return "max_jobs (>= 1)";
    if (o->max_inflight < 1 || o->max_batch < 1 || o->max_batch > 65536 || o->max_waiters < 1)
        return "max_inflight, max_batch (1 .. 65536) or max_waiters";
    if (o->retention_ms < 0 || o->prune_batch < 1 || o->prune_batch > 100000 ||
        o->prune_interval_ms < 1)
        return "retention_ms, prune_batch (1 .. 100000) or prune_interval_ms";
    if (o->lease_grace_ms < 0 || o->rescue_interval_ms < 1)
        return "lease_grace_ms or rescue_interval_ms";
    if (o->node_dead_ms < 300 || o->node_dead_ms > 3600 * 1000)
        return "node_dead_ms (300 ms .. 1 h)";
    if (!kind_opts_ok(&o->kind_defaults))
        return "kind_defaults";
    return NULL;
}

/* ---- open and close ---- */

int ob_engine_open(const char *url, const ob_engine_opts *opts, ob_engine **out)
{
    if (!url || !out)
        return OB_EINVAL;
    ob_engine *e = calloc(1, sizeof *e);
    if (!e)
        return OB_ENOMEM;
    if (opts)
        e->o = *opts;
    else
        ob_engine_opts_init(&e->o);
    const char *bad = engine_opts_bad(&e->o);
    if (bad) {
        OB_ERROR("jobs: invalid engine option: %s", bad);
        free(e);
        return OB_EINVAL;
    }
    pthread_mutex_init(&e->kinds_mu, NULL);
    pthread_mutex_init(&e->pools_mu, NULL);
    pthread_mutex_init(&e->tx_mu, NULL);
    e->h_start.bounds = e->h_run.bounds = obi_hist_seconds;
    e->opened_at = ob_now_ms();
    obi_notify_init(&e->n, e->o.max_waiters);
    obi_commit_init(e);
    store_opts so = {.node_dead_ms = e->o.node_dead_ms, .wake = obi_commit_wake,
                     .finished = obi_commit_finished, .isolated = obi_pool_isolated, .wake_arg = e};
    int rc = obi_store_open(url, &so, &e->st);
    if (!rc)
        rc = obi_commit_start(e);
    if (rc) {
        ob_engine_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

void ob_engine_close(ob_engine *e)
{
    if (!e)
        return;
    for (;;) {
        pthread_mutex_lock(&e->pools_mu);
        pool *p = e->pools;
        pthread_mutex_unlock(&e->pools_mu);
        if (!p)
            break;
        ob_pool_stop(p, 30 * 1000);
    }
    obi_notify_shutdown(&e->n);
    obi_commit_stop(e);
    /* N1, checked where nothing else can be writing. */
    assert(!e->st || !e->st->exclusive || obi_store_counts_agree(e->st));
    if (e->st)
        e->st->ops->close(e->st);
    obi_commit_destroy(e);
    obi_notify_destroy(&e->n);
    pthread_mutex_destroy(&e->kinds_mu);
    pthread_mutex_destroy(&e->pools_mu);
    pthread_mutex_destroy(&e->tx_mu);
    free(e);
}

void ob_engine_stats_get(ob_engine *e, ob_engine_stats *out)
{
    out->commits = atomic_load(&e->c.stat_commits);
    out->ops = atomic_load(&e->c.stat_ops);
    out->commit_us = atomic_load(&e->c.stat_commit_us);
    out->batch_us = atomic_load(&e->c.stat_batch_us);
    out->unfinished = atomic_load(&e->c.unfinished);
    obi_hist_read(&e->c.h_commit, &out->commit_seconds);
    obi_hist_read(&e->c.h_batch, &out->batch_ops);
    obi_hist_read(&e->h_start, &out->start_delay);
    obi_hist_read(&e->h_run, &out->run_seconds);
}

int ob_job_counts(ob_engine *e, ob_count_fn fn, void *arg)
{
    if (!e || !fn)
        return OB_EINVAL;
    return e->st->ops->counts(e->st, fn, arg);
}

void ob_engine_on_final(ob_engine *e, ob_final_fn fn, void *arg)
{
    e->on_final = fn;
    e->on_final_arg = arg;
}

/* ---- kinds ---- */

const job_kind *obi_engine_kind(ob_engine *e, const char *name)
{
    int n = atomic_load_explicit(&e->nkinds, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(e->kinds[i].name, name) == 0)
            return &e->kinds[i];
    return NULL;
}

int ob_engine_register(ob_engine *e, const char *name, ob_handler_fn fn, void *arg,
                       const ob_kind_opts *opts)
{
    if (!e || !fn || !ob_name_valid(name) || (opts && !kind_opts_ok(opts)))
        return OB_EINVAL;
    pthread_mutex_lock(&e->kinds_mu);
    int n = atomic_load(&e->nkinds), rc = 0;
    if (obi_engine_kind(e, name))
        rc = OB_EINVAL;
    else if (n == KINDS_MAX)
        rc = OB_EFULL;
    else {
        job_kind *k = &e->kinds[n];
        snprintf(k->name, sizeof k->name, "%s", name);
        k->fn = fn;
        k->arg = arg;
        k->opts = opts ? *opts : e->o.kind_defaults;
        atomic_store_explicit(&e->nkinds, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&e->kinds_mu);
    return rc;
}

/* ---- checking input ---- */

#define RUN_AT_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* '\n'-separated terms, each 1..OB_TERM_MAX bytes of UTF-8 without
 * control characters, at most OB_TERMS_MAX. */
static int terms_check(const char *t, ob_problem *p)
{
    int n = 0;
    for (const char *s = t;; n++) {
        size_t len = strcspn(s, "\n");
        if (len == 0 || len > OB_TERM_MAX || !ob_utf8_valid(s, len))
            return obi_problem(p, len > OB_TERM_MAX ? OB_ETOOBIG : OB_EINVAL, "terms",
                               "term %d: 1-%d bytes of UTF-8", n + 1, OB_TERM_MAX);
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return obi_problem(p, OB_EINVAL, "terms", "term %d has a control character",
                                   n + 1);
        if (n + 1 > OB_TERMS_MAX)
            return obi_problem(p, OB_ETOOBIG, "terms", "more than %d terms", OB_TERMS_MAX);
        if (!s[len])
            return 0;
        s += len + 1;
    }
}

int ob_new_job_check(ob_engine *e, const ob_new_job *j, ob_problem *p)
{
    if (!e || !j)
        return obi_problem(p, OB_EINVAL, "", "no engine or no job");
    if (!ob_name_valid(j->kind))
        return obi_problem(p, OB_EINVAL, "kind", "a kind is 1-%d characters of [A-Za-z0-9._-]",
                           OB_NAME_MAX);
    if (!obi_engine_kind(e, j->kind))
        return obi_problem(p, OB_ENOKIND, "kind", "no handler is registered for this kind");
    if (j->queue && !ob_name_valid(j->queue))
        return obi_problem(p, OB_EINVAL, "queue", "a queue is 1-%d characters of [A-Za-z0-9._-]",
                           OB_NAME_MAX);
    if (j->priority < OB_PRIORITY_MIN || j->priority > OB_PRIORITY_MAX)
        return obi_problem(p, OB_EINVAL, "priority", "from %d to %d", OB_PRIORITY_MIN,
                           OB_PRIORITY_MAX);
    if (!j->payload && j->payload_len)
        return obi_problem(p, OB_EINVAL, "payload", "no bytes for a length of %zu",
                           j->payload_len);
    if (j->payload_len > e->o.max_payload)
        return obi_problem(p, OB_ETOOBIG, "payload", "larger than %zu bytes", e->o.max_payload);
    if (j->run_at_ms < 0 || j->run_at_ms > RUN_AT_MAX)
        return obi_problem(p, OB_EINVAL, "run_at", "out of range (0 to year 9999)");
    if (j->max_attempts < 0 || j->max_attempts > 1000)
        return obi_problem(p, OB_EINVAL, "max_attempts", "from 1 to 1000 (0: the kind's)");
    if (j->timeout_ms < 0 || j->timeout_ms > DAY_MS)
        return obi_problem(p, OB_EINVAL, "timeout", "from 1 ms to 24 h (0: the kind's)");
    if (j->unique_key) {
        size_t n = strlen(j->unique_key);
        if (n > OB_UNIQUE_KEY_MAX)
            return obi_problem(p, OB_ETOOBIG, "unique_key", "longer than %d bytes",
                               OB_UNIQUE_KEY_MAX);
        if (n == 0 || !ob_utf8_valid(j->unique_key, n))
            return obi_problem(p, OB_EINVAL, "unique_key", "not empty, and UTF-8");
        if (strncmp(j->unique_key, "schedule:", 9) == 0)
            return obi_problem(p, OB_EINVAL, "unique_key",
                               "keys starting \"schedule:\" are the schedules' own");
    }
    if (j->meta) {
        size_t n = strlen(j->meta);
        if (n > OB_META_MAX)
            return obi_problem(p, OB_ETOOBIG, "meta", "longer than %d bytes", OB_META_MAX);
        if (!ob_utf8_valid(j->meta, n))
            return obi_problem(p, OB_EINVAL, "meta", "not UTF-8");
    }
    if (j->rate_key && !ob_rate_key_valid(j->rate_key))
        return obi_problem(p, OB_EINVAL, "rate_key",
                           "1-%d characters of printable ASCII, without '\"' or '\\'",
                           OB_RATE_KEY_MAX);
    return j->terms ? terms_check(j->terms, p) : 0;
}

/* Lower-case the ASCII letters of s in place (search terms). */
static void ascii_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

char *obi_terms_lower(const char *terms)
{
    char *t = strdup(terms);
    if (t)
        ascii_lower(t);
    return t;
}

bool ob_rate_key_valid(const char *k)
{
    size_t n = 0;
    for (; k[n]; n++)
        if (k[n] < 0x21 || k[n] > 0x7e || k[n] == '"' || k[n] == '\\')
            return false;
    return n >= 1 && n <= OB_RATE_KEY_MAX;
}

/* ---- ops ---- */

static char *put(char **p, const void *src, size_t n)
{
    char *r = *p;
    if (n)
        memcpy(r, src, n);
    *p += n;
    return r;
}

static char *put_str(char **p, const char *s)
{
    return s ? put(p, s, strlen(s) + 1) : NULL;
}

static size_t str_size(const char *s) { return s ? strlen(s) + 1 : 0; }

void obi_new_job_from(ob_engine *e, const ob_new_job *j, store_new *out)
{
    const job_kind *k = obi_engine_kind(e, j->kind);
    *out = (store_new){
        .kind = j->kind, .queue = j->queue ? j->queue : "default", .priority = j->priority,
        .payload = j->payload, .payload_len = j->payload_len, .run_at = j->run_at_ms,
        .max_attempts = j->max_attempts ? j->max_attempts : k->opts.max_attempts,
        .timeout_ms = j->timeout_ms ? j->timeout_ms : k->opts.timeout_ms,
        .unique_key = j->unique_key, .meta = j->meta, .rate_key = j->rate_key,
        .terms = j->terms,
    };
}

void obi_new_job_due(store_new *j, int64_t now)
{
    j->created_at = now;
    j->state = j->run_at > now ? OB_SCHEDULED : OB_AVAILABLE;
    if (j->state == OB_AVAILABLE)
        j->run_at = now;
}

/* A new enqueue op: the payload and strings copied into the op. */
static op *op_enqueue_new(ob_engine *e, const ob_new_job *j)
{
    store_new from;
    obi_new_job_from(e, j, &from);
    op *o = malloc(sizeof *o + from.payload_len + str_size(from.kind) + str_size(from.queue) +
                   str_size(from.unique_key) + str_size(from.meta) + str_size(from.rate_key) +
                   str_size(from.terms));
    if (!o)
        return NULL;
    memset(o, 0, sizeof *o);
    char *p = o->buf;
    store_new *nj = &o->nj;
    *nj = from;
    nj->payload = put(&p, from.payload, from.payload_len);
    nj->kind = put_str(&p, from.kind);
    nj->queue = put_str(&p, from.queue);
    nj->unique_key = put_str(&p, from.unique_key);
    nj->meta = put_str(&p, from.meta);
    nj->rate_key = put_str(&p, from.rate_key);
    char *terms = put_str(&p, from.terms);
    if (terms)
        ascii_lower(terms);
    nj->terms = terms;
    o->type = OP_ENQUEUE;
    o->external = true;
    return o;
}

static void op_free(op *o) { free(o); }

op *obi_op_change_new(const ob_id *id, const lc_input *in)
{
    op *o = malloc(sizeof *o + str_size(in->error) + str_size(in->result));
    if (!o)
        return NULL;
    memset(o, 0, sizeof *o);
    char *p = o->buf;
    o->type = OP_CHANGE;
    o->id = *id;
    o->in = *in;
    o->in.error = put_str(&p, in->error);
    o->in.result = put_str(&p, in->result);
    o->done = op_free;
    return o;
}

/* ---- enqueue ---- */

/* Check `j` and make its op; *out is then the caller's. */
static int enqueue_op(ob_engine *e, const ob_new_job *j, op **out)
{
    int rc = ob_new_job_check(e, j, NULL);
    if (rc)
        return rc;
    return (*out = op_enqueue_new(e, j)) ? 0 : OB_ENOMEM;
}

int ob_enqueue(ob_engine *e, const ob_new_job *j, ob_id *id, bool *existed)
{
    op *o;
    int rc = enqueue_op(e, j, &o);
    if (rc)
        return rc;
    rc = obi_commit_submit_wait(e, o);
    if (!rc) {
        if (id)
            *id = o->id;
        if (existed)
            *existed = o->existed;
    }
    free(o);
    return rc;
}

static void enqueue_async_done(op *o)
{
    o->user_fn(o->arg, o->rc, o->rc ? NULL : &o->id, o->existed);
    free(o);
}

int ob_enqueue_async(ob_engine *e, const ob_new_job *j, ob_enqueued_fn done, void *arg)
{
    if (!done)
        return OB_EINVAL;
    op *o;
    int rc = enqueue_op(e, j, &o);
    if (rc)
        return rc;
    o->user_fn = done;
    o->arg = arg;
    o->done = enqueue_async_done;
    rc = obi_commit_submit(e, o, false);
    if (rc)
        free(o);
    return rc;
}

/* ---- one job ---- */

int ob_job_get(ob_engine *e, const ob_id *id, ob_job **out)
{
    if (!e || !id || !out)
        return OB_EINVAL;
    return e->st->ops->get(e->st, id, out);
}

/* Queue a cancel or requeue and wait for it. */
/* The op of a cancel or retry asked for from outside the engine. */
static op *change_op(const ob_id *id, lc_event ev)
{
    lc_input in = {.ev = ev};
    op *o = obi_op_change_new(id, &in);
    if (o)
        o->external = true;
    return o;
}

static int change(ob_engine *e, const ob_id *id, lc_event ev, ob_state *state)
{
    op *o = e && id ? change_op(id, ev) : NULL;
    if (!o)
        return e && id ? OB_ENOMEM : OB_EINVAL;
    int rc = obi_commit_submit_wait(e, o);
    if (!rc && state)
        *state = o->state_out;
    free(o);
    return rc;
}

static void changed_done(op *o)
{
    o->changed_fn(o->arg, o->rc, o->state_out);
    free(o);
}

static int change_async(ob_engine *e, const ob_id *id, lc_event ev, ob_changed_fn done, void *arg)
{
    op *o = e && id && done ? change_op(id, ev) : NULL;
    if (!o)
        return e && id && done ? OB_ENOMEM : OB_EINVAL;
    o->changed_fn = done;
    o->arg = arg;
    o->done = changed_done;
    int rc = obi_commit_submit(e, o, false);
    if (rc)
        free(o);
    return rc;
}

int ob_job_cancel_async(ob_engine *e, const ob_id *id, ob_changed_fn done, void *arg)
{
    return change_async(e, id, LC_CANCEL, done, arg);
}

int ob_job_retry_async(ob_engine *e, const ob_id *id, ob_changed_fn done, void *arg)
{
    return change_async(e, id, LC_REQUEUE, done, arg);
}

int ob_engine_ready(ob_engine *e)
{
    if (!e)
        return OB_EINVAL;
    pthread_mutex_lock(&e->c.mu);
    bool stopping = e->c.stopping;
    pthread_mutex_unlock(&e->c.mu);
    if (stopping)
        return OB_ESHUTDOWN;
    int rc = atomic_load(&e->c.last_rc);
    if (!rc && e->st->ops->health)
        rc = e->st->ops->health(e->st);
    return rc;
}

const char *ob_engine_store_name(ob_engine *e) { return e ? e->st->ops->name : ""; }

int ob_engine_nodes(ob_engine *e, ob_node **out, size_t *n)
{
    if (!e || !out || !n)
        return OB_EINVAL;
    if (e->st->ops->nodes)
        return e->st->ops->nodes(e->st, out, n);
    ob_node *me = calloc(1, sizeof *me);
    if (!me)
        return OB_ENOMEM;
    gethostname(me->host, sizeof me->host - 1);
    me->pid = (int)getpid();
    me->started_at_ms = e->opened_at;
    me->heartbeat_at_ms = ob_now_ms();
    me->leader = me->self = true;
    *out = me;
    *n = 1;
    return 0;
}

int ob_store_migrate(const char *url, int *had, int *now)
{
    if (!url || !had || !now)
        return OB_EINVAL;
    return obi_store_migrate(url, had, now);
}

void ob_engine_wake(ob_engine *e)
{
    if (!e)
        return;
    obi_commit_wake(e, 0); /* jobs may be available */
    obi_commit_wake(e, 1); /* ... or scheduled: look at the store's timers again */
}

/* ---- transactional enqueue ---- */

static int enqueue_tx(ob_engine *e, const char *store_name, void *conn, const ob_new_job *j,
                      ob_id *id, bool *existed)
{
    if (!e || !conn)
        return OB_EINVAL;
    if (strcmp(e->st->ops->name, store_name) != 0 || !e->st->ops->insert_tx) {
        OB_ERROR("jobs: a transactional enqueue for a %s store, on an engine whose store "
                 "is %s", store_name, e->st->ops->name);
        return OB_EINVAL;
    }
    int rc = ob_new_job_check(e, j, NULL);
    if (rc)
        return rc;
    store_new nj;
    obi_new_job_from(e, j, &nj);
    obi_new_job_due(&nj, ob_now_ms());
    char *terms = NULL;
    if (j->terms && !(nj.terms = terms = obi_terms_lower(j->terms)))
        return OB_ENOMEM;
    pthread_mutex_lock(&e->tx_mu);
    obi_idgen_next(&e->tx_idgen, &nj.id);
    pthread_mutex_unlock(&e->tx_mu);
    ob_id existing;
    rc = e->st->ops->insert_tx(e->st, conn, &nj, &existing);
    free(terms);
    if (rc < 0)
        return rc;
    if (id)
        *id = rc == STORE_EXISTS ? existing : nj.id;
    if (existed)
        *existed = rc == STORE_EXISTS;
    return 0;
}

int ob_enqueue_pg(ob_engine *e, struct pg_conn *conn, const ob_new_job *j, ob_id *id,
                  bool *existed)
{
    return enqueue_tx(e, "postgres", conn, j, id, existed);
}

int ob_enqueue_sqlite(ob_engine *e, struct sqlite3 *db, const ob_new_job *j, ob_id *id,
                      bool *existed)
{
    return enqueue_tx(e, "sqlite", db, j, id, existed);
}

int ob_job_cancel(ob_engine *e, const ob_id *id, ob_state *state)
{
    return change(e, id, LC_CANCEL, state);
}

int ob_job_retry(ob_engine *e, const ob_id *id, ob_state *state)
{
    return change(e, id, LC_REQUEUE, state);
}

typedef struct wait_arg {
    ob_engine *e;
    const ob_id *id;
    ob_job *snap;
} wait_arg;

/* Read the job afresh: 1 if final, 0 if not, or an error. */
static int wait_check(void *arg)
{
    wait_arg *w = arg;
    ob_job_free(w->snap);
    w->snap = NULL;
    int rc = ob_job_get(w->e, w->id, &w->snap);
    return rc ? rc : ob_state_is_final(w->snap->state);
}

int ob_job_wait(ob_engine *e, const ob_id *id, int64_t timeout_ms, ob_job **out)
{
    if (!e || !id || !out)
        return OB_EINVAL;
    wait_arg w = {e, id, NULL};
    int rc = obi_notify_wait(&e->n, id, timeout_ms, wait_check, &w);
    bool have = w.snap && (rc == OB_ETIMEDOUT || rc == OB_ESHUTDOWN || rc == 0);
    if (have && !(rc == 0 && ob_state_is_final(w.snap->state))) {
        int r = wait_check(&w); /* woken: read what the commit left */
        if (r < 0)
            rc = r;
    }
    if (rc != 0 && rc != OB_ETIMEDOUT && rc != OB_ESHUTDOWN) {
        ob_job_free(w.snap);
        return rc;
    }
    *out = w.snap;
    return rc;
}

/* ---- lists ---- */

int ob_job_list(ob_engine *e, const ob_list_filter *f, ob_job_page **out)
{
    if (!e || !f || !out)
        return OB_EINVAL;
    ob_list_filter g = *f;
    if (g.limit == 0)
        g.limit = 100;
    unsigned all = ((1u << (OB_STATE_MAX + 1)) - 1) & ~((1u << OB_STATE_MIN) - 1);
    if (g.limit < 0 || g.limit > OB_LIST_MAX || (g.states & ~all) ||
        (g.kind && !ob_name_valid(g.kind)) || (g.queue && !ob_name_valid(g.queue)))
        return OB_EINVAL;
    ob_id cur;
    if (g.cursor && g.cursor[0] && ob_id_parse(g.cursor, &cur))
        return OB_EINVAL;
    char term[OB_TERM_MAX + 1];
    if (g.term) { /* terms are stored lower-cased */
        size_t n = strlen(g.term);
        if (n == 0 || n > OB_TERM_MAX)
            return OB_EINVAL;
        memcpy(term, g.term, n + 1);
        ascii_lower(term);
        g.term = term;
    }
    if ((g.unique_key && !g.unique_key[0]) || g.created_after_ms < 0 ||
        g.created_before_ms < 0)
        return OB_EINVAL;
    return e->st->ops->list(e->st, &g, out);
}

/* Snapshots are the store's allocations (one block each). */
void ob_job_free(ob_job *job) { obi_job_release(job); }
void ob_job_page_free(ob_job_page *l) { obi_job_page_release(l); }
