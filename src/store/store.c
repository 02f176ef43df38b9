/*
 * store.c - what all stores share: choosing a backend by URL, the pool of
 * reader connections, listing, checking the counters (N1), and building
 * ob_job snapshots as single allocations (so ob_job_free is one free()).
 *
 * Layout of a snapshot block:
 *   job_block | ob_attempt_error[nerrors] | kind\0 | queue\0 | unique_key\0 |
 *   payload\0 | result\0 | meta\0 | rate_key\0 | error messages\0...
 * The hidden cursor in job_block lets the store place error messages one at
 * a time as it reads them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "store/store.h"

typedef struct job_block {
    ob_job job; /* first: a block pointer is an ob_job pointer */
    char *err_cursor;
    size_t size;
} job_block;

/* Which backend a URL names: 's' (sqlite), 'p' (postgres), or 0 (logged). */
static int scheme(const char *url)
{
    if (strncmp(url, "sqlite:", 7) == 0) {
        if (url[7] != '\0')
            return 's';
        OB_ERROR("store: \"sqlite:\" needs a path, e.g. sqlite:./outbox.db");
        return 0;
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return 'p';
    OB_ERROR("store: unsupported URL \"%.64s\" (expected sqlite:PATH or postgres://...)", url);
    return 0;
}

int obi_store_open(const char *url, const store_opts *o, store **out)
{
    if (!url || !out)
        return OB_EINVAL;
    switch (scheme(url)) {
    case 's': return obi_store_sqlite_open(url + 7, out);
    case 'p': return obi_store_pg_open(url, o, out);
    }
    return OB_EINVAL;
}

int obi_store_migrate(const char *url, int *had, int *now)
{
    if (!url)
        return OB_EINVAL;
    switch (scheme(url)) {
    case 's': return obi_store_sqlite_migrate(url + 7, had, now);
    case 'p': return obi_store_pg_migrate(url, had, now);
    }
    return OB_EINVAL;
}

int ob_store_probe(const char *url, ob_store_info *out)
{
    if (!url || !out)
        return OB_EINVAL;
    switch (scheme(url)) {
    case 's': return obi_store_sqlite_probe(url + 7, out);
    case 'p': return obi_store_pg_probe(url, out);
    }
    return OB_EINVAL;
}

int ob_store_backup(const char *url, const char *path, ob_progress_fn fn, void *arg)
{
    if (!url || !path || !*path)
        return OB_EINVAL;
    switch (scheme(url)) {
    case 's': return obi_store_sqlite_backup(url + 7, path, fn, arg);
    case 'p':
        OB_ERROR("backup: %s is a PostgreSQL store: back it up with pg_dump (or your "
                 "PostgreSQL backups)", "the store");
        return OB_EINVAL;
    }
    return OB_EINVAL;
}

/* ---- reader connections ---- */

void obi_readers_init(obi_readers *p, int max, void *ctx,
                      int (*make)(void *ctx, obi_reader **out),
                      int (*ready)(void *ctx, obi_reader *r), void (*destroy)(obi_reader *r))
{
    *p = (obi_readers){.max = max, .ctx = ctx, .make = make, .ready = ready, .destroy = destroy};
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
}

int obi_readers_get(obi_readers *p, obi_reader **out)
{
    pthread_mutex_lock(&p->mu);
    while (!p->idle && p->made >= p->max)
        pthread_cond_wait(&p->freed, &p->mu);
    obi_reader *r = p->idle;
    if (r)
        p->idle = r->next;
    else
        p->made++; /* reserved: made below, outside the lock */
    pthread_mutex_unlock(&p->mu);
    int rc = r ? 0 : p->make(p->ctx, &r);
    if (rc) {
        pthread_mutex_lock(&p->mu);
        p->made--;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    if (p->ready && (rc = p->ready(p->ctx, r))) {
        obi_readers_put(p, r);
        return rc;
    }
    *out = r;
    return 0;
}

void obi_readers_put(obi_readers *p, obi_reader *r)
{
    pthread_mutex_lock(&p->mu);
    r->next = p->idle;
    p->idle = r;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

void obi_readers_destroy(obi_readers *p)
{
    while (p->idle) {
        obi_reader *r = p->idle;
        p->idle = r->next;
        p->destroy(r);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->freed);
}

/* ---- listing ---- */

static int id_desc(const void *a, const void *b)
{
    const ob_job *x = *(ob_job *const *)a, *y = *(ob_job *const *)b;
    return -memcmp(x->id.b, y->id.b, 16);
}

void obi_id_at(int64_t ms, ob_id *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < 6; k++)
        out->b[k] = (uint8_t)((uint64_t)ms >> (40 - 8 * k));
}

int obi_store_list_run(const ob_list_filter *f, list_one_fn one, void *ctx, ob_job_page **out)
{
    int limit = f->limit;
    ob_id after;
    bool has_after = f->cursor && f->cursor[0];
    if (has_after && ob_id_parse(f->cursor, &after))
        return OB_EINVAL;
    int nstates = 0;
    for (int st = OB_STATE_MIN; st <= OB_STATE_MAX; st++)
        nstates += (f->states >> st) & 1;
    ob_job_page *l = calloc(1, sizeof *l);
    if (l)
        l->jobs = calloc((size_t)(limit + 1) * (size_t)(nstates ? nstates : 1), sizeof *l->jobs);
    if (!l || !l->jobs) {
        obi_job_page_release(l);
        return OB_ENOMEM;
    }
    const ob_id *a = has_after ? &after : NULL;
    int rc = nstates ? 0 : one(ctx, -1, f, a, limit, l);
    for (int st = OB_STATE_MIN; st <= OB_STATE_MAX && nstates && !rc; st++)
        if ((f->states >> st) & 1)
            rc = one(ctx, st, f, a, limit, l);
    if (rc) {
        obi_job_page_release(l);
        return rc;
    }
    qsort(l->jobs, l->n, sizeof *l->jobs, id_desc);
    if (l->n > (size_t)limit) {
        while (l->n > (size_t)limit)
            obi_job_release(l->jobs[--l->n]);
        ob_id_format(&l->jobs[l->n - 1]->id, l->next_cursor);
    }
    *out = l;
    return 0;
}

static char *take(char **p, size_t n)
{
    char *r = *p;
    *p += n + 1; /* room for the NUL; the block is zeroed */
    return r;
}

ob_job *obi_job_alloc(const job_sizes *z)
{
    size_t total = sizeof(job_block) + z->nerrors * sizeof(ob_attempt_error) + z->kind + 1 +
                   z->queue + 1 + z->unique_key + 1 + z->payload + 1 + z->result + 1 +
                   z->meta + 1 + z->rate_key + 1 + z->errors_text + z->nerrors;
    job_block *b = calloc(1, total);
    if (!b)
        return NULL;
    b->size = total;
    ob_job *j = &b->job;
    char *p = (char *)(b + 1);
    if (z->nerrors) {
        j->errors = (ob_attempt_error *)p;
        j->nerrors = z->nerrors;
        p += z->nerrors * sizeof(ob_attempt_error);
    }
    j->kind = take(&p, z->kind);
    j->queue = take(&p, z->queue);
    char *uk = take(&p, z->unique_key);
    j->unique_key = z->has_unique_key ? uk : NULL;
    unsigned char *pl = (unsigned char *)take(&p, z->payload);
    j->payload = z->has_payload ? pl : NULL;
    j->payload_len = z->has_payload ? z->payload : 0;
    char *res = take(&p, z->result);
    j->result = z->has_result ? res : NULL;
    char *meta = take(&p, z->meta);
    j->meta = z->has_meta ? meta : NULL;
    char *rk = take(&p, z->rate_key);
    j->rate_key = z->rate_key ? rk : NULL;
    b->err_cursor = p;
    return j;
}

void obi_job_place_error(ob_job *j, size_t i, int attempt, int64_t at, const char *msg, size_t len)
{
    job_block *b = (job_block *)j;
    ob_attempt_error *e = &j->errors[i];
    e->attempt = attempt;
    e->at_ms = at;
    e->message = b->err_cursor;
    memcpy(b->err_cursor, msg, len);
    b->err_cursor[len] = '\0';
    b->err_cursor += len + 1;
}

void obi_job_release(ob_job *job) { free(job); }

void obi_job_free_poisoned(ob_job *j)
{
    if (j)
        obi_poison_free(j, ((job_block *)j)->size);
}

void obi_job_page_release(ob_job_page *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        obi_job_release(l->jobs[i]);
    free(l->jobs);
    free(l);
}

void obi_schedule_clear(store_schedule *sc)
{
    free(sc->payload);
    free(sc->meta);
    sc->payload = NULL;
    sc->meta = NULL;
    sc->payload_len = 0;
}

/* ---- N1: the counters against a count ---- */

bool obi_count_append(store_count **v, int *len, int *cap, const char *queue, const char *kind,
                      ob_state state, int64_t n)
{
    if (*len == *cap) {
        int room = *cap ? *cap * 2 : 16;
        store_count *nv = realloc(*v, (size_t)room * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = room;
    }
    store_count *c = &(*v)[(*len)++];
    snprintf(c->queue, sizeof c->queue, "%s", queue);
    snprintf(c->kind, sizeof c->kind, "%s", kind);
    c->state = state;
    c->n = n;
    return true;
}

typedef struct tally {
    store_count *v;
    int n, cap;
    bool lost;
} tally;

static void tally_add(void *arg, ob_state state, const char *kind, const char *queue, int64_t n)
{
    tally *t = arg;
    if (!obi_count_append(&t->v, &t->n, &t->cap, queue, kind, state, n))
        t->lost = true;
}

static int group_order(const void *a, const void *b)
{
    const store_count *x = a, *y = b;
    int c = strcmp(x->queue, y->queue);
    if (!c)
        c = strcmp(x->kind, y->kind);
    return c ? c : (int)x->state - (int)y->state;
}

bool obi_store_counts_agree(store *s)
{
    tally kept = {0}, counted = {0};
    bool ok = s->ops->counts(s, tally_add, &kept) == 0 &&
              s->ops->counts_scan(s, tally_add, &counted) == 0 && !kept.lost && !counted.lost;
    if (ok) {
        if (kept.n)
            qsort(kept.v, (size_t)kept.n, sizeof *kept.v, group_order);
        if (counted.n)
            qsort(counted.v, (size_t)counted.n, sizeof *counted.v, group_order);
        for (int i = 0, j = 0; i < kept.n || j < counted.n;) {
            int c = i == kept.n ? 1 : j == counted.n ? -1 : group_order(&kept.v[i], &counted.v[j]);
            const store_count *g = c <= 0 ? &kept.v[i] : &counted.v[j];
            int64_t have = c <= 0 ? kept.v[i].n : 0, want = c >= 0 ? counted.v[j].n : 0;
            if (have != want) {
                OB_ERROR("store: N1: %s/%s/state %d counted %lld, the jobs are %lld", g->queue, g->kind,
                         (int)g->state, (long long)have, (long long)want);
                ok = false;
            }
            i += c <= 0;
            j += c >= 0;
        }
    }
    free(kept.v);
    free(counted.v);
    return ok;
}
