/*
 * pg_flow.c - the PostgreSQL store's part of flow control (docs/FLOW.md):
 * claims with parts (a limited queue's parked jobs, each rate key's), the
 * queue settings rows and their locks, the rate keys' rows, and the park
 * sweep (F3 in store.h). The statements are the writer's (writer_sql in
 * postgres.c); this file builds their array parameters and reads their
 * rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

static int claim_order(const void *a, const void *b)
{
    const ob_job *x = *(ob_job *const *)a, *y = *(ob_job *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->run_at_ms != y->run_at_ms)
        return x->run_at_ms < y->run_at_ms ? -1 : 1;
    return memcmp(x->id.b, y->id.b, 16);
}

char *obi_pg_array_lit(int n, size_t each, void (*put)(const void *ctx, int i, char *dst),
                       const void *ctx)
{
    char *a = malloc((size_t)n * (each + 1) + 3), *p = a;
    if (!a)
        return NULL;
    *p++ = '{';
    for (int i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        put(ctx, i, p);
        p += strlen(p);
    }
    *p++ = '}';
    *p = '\0';
    return a;
}

/* Names are [A-Za-z0-9._-]: quoted, nothing to escape. */
static void put_name(const void *ctx, int i, char *dst)
{
    sprintf(dst, "\"%s\"", ((const char *const *)ctx)[i]);
}
static void put_part_name(const void *ctx, int i, char *dst)
{
    sprintf(dst, "\"%s\"", ((const store_part *)ctx)[i].queue);
}
static void put_part_limit(const void *ctx, int i, char *dst)
{
    sprintf(dst, "%d", ((const store_part *)ctx)[i].limit);
}
static void put_row_name(const void *ctx, int i, char *dst)
{
    sprintf(dst, "\"%s\"", ((const store_queue *)ctx)[i].name);
}
static void put_id(const void *ctx, int i, char *dst)
{
    ob_id_format(&((const ob_id *)ctx)[i], dst);
}

char *obi_pg_queue_array(const char *const *q, int n)
{
    return obi_pg_array_lit(n, OB_NAME_MAX + 2, put_name, q);
}

/* The claimed rows of r into jobs[*n..], in claim order (S4). */
int obi_pg_take_claimed(PGresult *r, int limit, ob_job **jobs, int *n)
{
    int rc = 0, nr = PQntuples(r);
    for (int i = 0; i < nr && *n < limit; i++) {
        if (!(jobs[*n] = obi_pg_row_to_job(r, i, true, NULL))) {
            rc = OB_ENOMEM;
            break;
        }
        (*n)++;
    }
    PQclear(r);
    if (rc) {
        while (*n > 0)
            obi_job_release(jobs[--*n]);
        return rc;
    }
    qsort(jobs, (size_t)*n, sizeof *jobs, claim_order); /* S4 */
    return 0;
}

typedef struct cand {
    ob_id id;
    int64_t run_at;
    int priority;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->run_at != y->run_at)
        return x->run_at < y->run_at ? -1 : 1;
    return memcmp(x->id.b, y->id.b, 16);
}

static void add_cands(PGresult *r, cand *c, int *n)
{
    for (int i = 0; i < PQntuples(r); i++) {
        obi_pgv_id(r, i, 0, &c[*n].id);
        c[*n].priority = (int)obi_pgv_int(r, i, 1);
        c[*n].run_at = obi_pgv_int(r, i, 2);
        (*n)++;
    }
    PQclear(r);
}

/* The main part's candidates (store_claim), locked, into c[*n..]. */
static int main_cands(pg_store *s, const store_claim *c, cand *cs, int *nc)
{
    if (c->main_off)
        return 0;
    pgnum b;
    char *qa = NULL;
    const char *v[2] = {obi_pg_i64(&b, c->limit), NULL};
    if (c->nqueues > 0 && !(v[1] = qa = obi_pg_queue_array(c->queues, c->nqueues)))
        return OB_ENOMEM;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, c->nqueues > 0 ? W_CAND_QUEUES : W_CAND, NULL,
                          c->nqueues > 0 ? 2 : 1, v, NULL, NULL, &r);
    free(qa);
    if (!rc)
        add_cands(r, cs, nc);
    return rc;
}

static void put_key_name(const void *ctx, int i, char *dst)
{
    sprintf(dst, "\"%s\"", ((const store_part_key *)ctx)[i].key);
}
static void put_key_limit(const void *ctx, int i, char *dst)
{
    sprintf(dst, "%d", ((const store_part_key *)ctx)[i].limit);
}

static int cand_cmp(const void *a, const void *b);

/* A keyed part: each key's best, then the part's best `limit`. */
static int keyed_cands(pg_store *s, const store_part *p, cand *cs, int *nc)
{
    char *ka = obi_pg_array_lit(p->nkeys, OB_RATE_KEY_MAX + 2, put_key_name, p->keys);
    char *la = obi_pg_array_lit(p->nkeys, 12, put_key_limit, p->keys);
    int rc = OB_ENOMEM, before = *nc;
    PGresult *r;
    if (ka && la && !(rc = obi_pgc_call(&s->w, W_CAND_KEYS, NULL, 3,
                                        (const char *[]){p->queue, ka, la}, NULL, NULL, &r)))
        add_cands(r, cs, nc);
    free(ka);
    free(la);
    if (!rc && *nc - before > p->limit) {
        qsort(cs + before, (size_t)(*nc - before), sizeof *cs, cand_cmp);
        *nc = before + p->limit;
    }
    return rc;
}

static int part_cands(pg_store *s, const store_claim *c, cand *cs, int *nc)
{
    store_part *plain = malloc((size_t)c->nparts * sizeof *plain);
    int np = 0, rc = plain ? 0 : OB_ENOMEM;
    for (int i = 0; i < c->nparts && !rc; i++) {
        if (c->parts[i].keys)
            rc = keyed_cands(s, &c->parts[i], cs, nc);
        else
            plain[np++] = c->parts[i];
    }
    char *qa = NULL, *la = NULL;
    if (!rc && np > 0) {
        qa = obi_pg_array_lit(np, OB_NAME_MAX + 2, put_part_name, plain);
        la = obi_pg_array_lit(np, 12, put_part_limit, plain);
        PGresult *r;
        if (!qa || !la)
            rc = OB_ENOMEM;
        else if (!(rc = obi_pgc_call(&s->w, W_CAND_PARTS, NULL, 2, (const char *[]){qa, la},
                                     NULL, NULL, &r)))
            add_cands(r, cs, nc);
    }
    free(qa);
    free(la);
    free(plain);
    return rc;
}

/* A claim with parts: the candidates of every part, locked (others skip
 * them), merged in claim order; the best `limit` flipped by id. A part
 * gives at most its limit, so no part gets more. Three round trips. */
static int claim_parts(pg_store *s, const store_claim *c, ob_job **jobs, int *n)
{
    size_t cap = c->main_off ? 0 : (size_t)c->limit;
    for (int i = 0; i < c->nparts; i++) {
        cap += (size_t)c->parts[i].limit;
        for (int k = 0; k < c->parts[i].nkeys; k++)
            cap += (size_t)c->parts[i].keys[k].limit;
    }
    cand *cs = malloc((cap ? cap : 1) * sizeof *cs);
    if (!cs)
        return OB_ENOMEM;
    int nc = 0;
    int rc = main_cands(s, c, cs, &nc);
    if (!rc)
        rc = part_cands(s, c, cs, &nc);
    qsort(cs, (size_t)nc, sizeof *cs, cand_cmp);
    if (nc > c->limit)
        nc = c->limit;
    ob_id *ids = malloc((size_t)(nc ? nc : 1) * sizeof *ids);
    for (int i = 0; ids && i < nc; i++)
        ids[i] = cs[i].id;
    free(cs);
    char *ia = ids ? obi_pg_array_lit(nc, OB_ID_STRLEN, put_id, ids) : NULL;
    free(ids);
    if (!rc && !ia)
        rc = OB_ENOMEM;
    if (rc || nc == 0) {
        free(ia);
        return rc;
    }
    pgnum b[3];
    const char *v[4] = {obi_pg_i64(&b[0], c->now), obi_pg_i64(&b[1], c->lease_grace_ms),
                        ID_PARAM(&s->node.id), ia};
    int len[4] = {0, 0, 16}, fmt[4] = {0, 0, 1};
    PGresult *r;
    rc = obi_pgc_call(&s->w, W_CLAIM_IDS, NULL, 4, v, len, fmt, &r);
    free(ia);
    return rc ? rc : obi_pg_take_claimed(r, c->limit, jobs, n);
}

/* A claim with parts and at most one keyed part: one round trip. */
static int claim_one_go(pg_store *s, const store_claim *c, ob_job **jobs, int *n)
{
    store_part *plain = malloc((size_t)(c->nparts + 1) * sizeof *plain);
    const store_part *keyed = NULL;
    int np = 0;
    for (int i = 0; plain && i < c->nparts; i++) {
        if (c->parts[i].keys)
            keyed = &c->parts[i];
        else
            plain[np++] = c->parts[i];
    }
    char *pq = plain ? obi_pg_array_lit(np, OB_NAME_MAX + 2, put_part_name, plain) : NULL;
    char *pl = plain ? obi_pg_array_lit(np, 12, put_part_limit, plain) : NULL;
    char *kq = obi_pg_array_lit(keyed ? keyed->nkeys : 0, OB_RATE_KEY_MAX + 2, put_key_name,
                         keyed ? keyed->keys : NULL);
    char *kl = obi_pg_array_lit(keyed ? keyed->nkeys : 0, 12, put_key_limit, keyed ? keyed->keys : NULL);
    char *mq = c->nqueues > 0 ? obi_pg_queue_array(c->queues, c->nqueues) : NULL;
    int rc = OB_ENOMEM;
    if (plain && pq && pl && kq && kl && (c->nqueues == 0 || mq)) {
        pgnum b[4];
        const char *v[12] = {obi_pg_i64(&b[0], c->now), obi_pg_i64(&b[1], c->lease_grace_ms),
                             ID_PARAM(&s->node.id), obi_pg_i64(&b[2], c->limit),
                             c->main_off ? "f" : "t", pq, pl, keyed ? keyed->queue : "", kq, kl,
                             obi_pg_i64(&b[3], keyed ? keyed->limit : 0), mq};
        int len[12] = {0, 0, 16}, fmt[12] = {0, 0, 1};
        PGresult *r;
        rc = obi_pgc_call(&s->w, c->nqueues > 0 ? W_CLAIMP_Q : W_CLAIMP_ALL, NULL,
                          c->nqueues > 0 ? 12 : 11, v, len, fmt, &r);
        if (!rc)
            rc = obi_pg_take_claimed(r, c->limit, jobs, n);
    }
    free(plain), free(pq), free(pl), free(kq), free(kl), free(mq);
    return rc;
}


/* ---- queue settings (store_queue) and the park sweep (F3) ---- */

/* Every row, locked in name order (so that nodes lock alike), then the
 * running jobs of the queues that have a concurrency. */
int obi_pg_queues_lock(store *base, store_queue **rows, int *n)
{
    pg_store *s = (pg_store *)base;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_QUEUES_LOCK, NULL, 0, NULL, NULL, NULL, &r);
    if (!rc)
        rc = obi_pg_queue_rows(r, false, rows, n);
    PQclear(r);
    bool capped = false;
    for (int i = 0; i < *n; i++)
        capped |= (*rows)[i].concurrency > 0;
    if (rc || !capped)
        return rc;
    char *qa = obi_pg_array_lit(*n, OB_NAME_MAX + 2, put_row_name, *rows);
    if (!qa)
        rc = OB_ENOMEM;
    else
        rc = obi_pgc_call(&s->w, W_RUNNING, NULL, 1, (const char *[]){qa}, NULL, NULL, &r);
    free(qa);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        const char *q = obi_pgv_str(r, i, 0, NULL);
        for (int k = 0; k < *n; k++)
            if (strcmp((*rows)[k].name, q) == 0)
                (*rows)[k].running = (int)obi_pgv_int(r, i, 1);
    }
    if (!rc)
        PQclear(r);
    if (rc) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

/* A change of one queue: serialised with the others of that queue by a
 * transaction lock (a row may not exist yet to lock). */
int obi_pg_queue_load(store *base, const char *name, store_queue *q)
{
    pg_store *s = (pg_store *)base;
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d, hashtext($1))", PG_LOCK_QUEUE);
    PGresult *r;
    int rc = obi_pgc_call(&s->w, 0, lock, 1, (const char *[]){name}, NULL, NULL, &r);
    if (rc)
        return rc;
    PQclear(r);
    rc = obi_pgc_call(&s->w, 0,
                      "SELECT " PG_QUEUE_COLS " FROM outbox_queues WHERE name = $1 FOR UPDATE", 1,
                      (const char *[]){name}, NULL, NULL, &r);
    if (rc)
        return rc;
    store_queue *rows;
    int nr;
    rc = obi_pg_queue_rows(r, false, &rows, &nr);
    PQclear(r);
    if (!rc && nr == 0)
        rc = OB_ENOTFOUND;
    if (!rc)
        *q = rows[0];
    free(rows);
    return rc;
}

int obi_pg_queue_delete(store *base, const char *name)
{
    pg_store *s = (pg_store *)base;
    return obi_pgc_defer(&s->w, W_QUEUE_DELETE, 1, (const char *[]){name}, NULL, NULL, PQ_ANY);
}

int obi_pg_queue_save(store *base, const store_queue *q)
{
    pg_store *s = (pg_store *)base;
    pgnum b[10];
    const char *v[12] = {q->name, q->paused ? "t" : "f", obi_pg_i64(&b[0], q->concurrency),
                         obi_pg_i64(&b[1], q->rate_limit), obi_pg_i64(&b[2], q->rate_period_ms),
                         obi_pg_i64(&b[3], q->rate_window), obi_pg_i64(&b[4], q->rate_used),
                         obi_pg_i64(&b[5], q->key_rate_limit),
                         obi_pg_i64(&b[6], q->key_rate_period_ms),
                         obi_pg_i64(&b[7], q->hold_until), obi_pg_i64(&b[8], q->key_hold_until),
                         obi_pg_i64(&b[9], q->updated_at)};
    return obi_pgc_defer(&s->w, W_QUEUE_SAVE, 12, v, NULL, NULL, PQ_ANY);
}

static void put_key(const void *ctx, int i, char *dst)
{
    sprintf(dst, "\"%s\"", ((const store_key *)ctx)[i].key);
}

int obi_pg_keys_waiting(store *base, const char *queue, const char *after,
                           char (*keys)[OB_RATE_KEY_MAX + 1], int max, int *n)
{
    pg_store *s = (pg_store *)base;
    pgnum b;
    PGresult *r;
    *n = 0;
    const char *v[4] = {queue, after ? after : "", obi_pg_i64(&b, max), after ? "f" : "t"};
    int rc = obi_pgc_call(&s->w, W_KEYS_WAITING, NULL, 4, v, NULL, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        snprintf(keys[(*n)++], OB_RATE_KEY_MAX + 1, "%s", obi_pgv_str(r, i, 0, NULL));
    PQclear(r);
    return 0;
}

/* Keys are printable ASCII without '"' or '\' (ob_new_job_check): quoted
 * as they are in an array literal. */
int obi_pg_keys_lock(store *base, const char *queue, store_key *rows, int n)
{
    pg_store *s = (pg_store *)base;
    if (n == 0)
        return 0;
    char *ka = obi_pg_array_lit(n, OB_RATE_KEY_MAX + 2, put_key, rows);
    if (!ka)
        return OB_ENOMEM;
    const char *v[2] = {queue, ka};
    PGresult *r;
    int rc = obi_pgc_defer(&s->w, W_KEYS_ENSURE, 2, v, NULL, NULL, PQ_ANY);
    if (!rc)
        rc = obi_pgc_call(&s->w, W_KEYS_LOCK, NULL, 2, v, NULL, NULL, &r);
    free(ka);
    if (rc)
        return rc;
    for (int k = 0; k < n; k++)
        rows[k].rate_window = rows[k].rate_used = 0, rows[k].held_until = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *key = obi_pgv_str(r, i, 0, NULL);
        for (int k = 0; k < n; k++) {
            if (strcmp(rows[k].key, key) == 0) {
                rows[k].rate_window = obi_pgv_int(r, i, 1);
                rows[k].rate_used = (int)obi_pgv_int(r, i, 2);
                rows[k].held_until = obi_pgv_int(r, i, 3);
            }
        }
    }
    PQclear(r);
    return 0;
}

int obi_pg_key_save(store *base, const char *queue, const store_key *k)
{
    pg_store *s = (pg_store *)base;
    pgnum b[3];
    const char *v[5] = {queue, k->key, obi_pg_i64(&b[0], k->rate_window),
                        obi_pg_i64(&b[1], k->rate_used), obi_pg_i64(&b[2], k->held_until)};
    return obi_pgc_defer(&s->w, W_KEY_SAVE, 5, v, NULL, NULL, PQ_ANY);
}

int obi_pg_keys_prune(store *base, const char *queue, int64_t now, int64_t period_ms, int max,
                         int *n)
{
    pg_store *s = (pg_store *)base;
    pgnum b[3];
    const char *v[4] = {queue, obi_pg_i64(&b[0], now), obi_pg_i64(&b[1], period_ms),
                        obi_pg_i64(&b[2], max)};
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_KEYS_PRUNE, NULL, 4, v, NULL, NULL, &r);
    *n = rc ? 0 : atoi(PQcmdTuples(r));
    PQclear(r);
    return rc;
}

/* Rows another batch holds are skipped: that batch sets their flag if it
 * makes them available, and the next sweep finds the others. */
int obi_pg_park(store *base, const char *queue, bool park, int max, int *n)
{
    pg_store *s = (pg_store *)base;
    pgnum b;
    PGresult *r;
    const char *sql =
        park ? "UPDATE outbox_jobs SET parked = true WHERE id IN (SELECT id FROM outbox_jobs"
               " WHERE state = 2 AND NOT parked AND queue = $1 LIMIT $2::int"
               " FOR UPDATE SKIP LOCKED)"
             : "UPDATE outbox_jobs SET parked = false WHERE id IN (SELECT id FROM outbox_jobs"
               " WHERE state = 2 AND parked AND queue = $1 LIMIT $2::int FOR UPDATE SKIP LOCKED)";
    int rc = obi_pgc_call(&s->w, 0, sql, 2, (const char *[]){queue, obi_pg_i64(&b, max)}, NULL,
                          NULL, &r);
    *n = rc ? 0 : atoi(PQcmdTuples(r));
    if (!rc)
        PQclear(r);
    return rc;
}

int obi_pg_parked_orphans(store *base, char (*names)[OB_NAME_MAX + 1], int max, int *n)
{
    pg_store *s = (pg_store *)base;
    pgnum b;
    PGresult *r;
    *n = 0;
    int rc = obi_pgc_call(
        &s->w, 0,
        "WITH RECURSIVE p(name) AS (SELECT (SELECT min(queue) FROM outbox_jobs WHERE state = 2"
        " AND parked) UNION ALL SELECT (SELECT min(queue) FROM outbox_jobs WHERE state = 2"
        " AND parked AND queue > p.name) FROM p WHERE p.name IS NOT NULL)"
        " SELECT name FROM p WHERE name IS NOT NULL"
        " AND name NOT IN (SELECT name FROM outbox_queues) LIMIT $1::int",
        1, (const char *[]){obi_pg_i64(&b, max)}, NULL, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        snprintf(names[(*n)++], OB_NAME_MAX + 1, "%s", obi_pgv_str(r, i, 0, NULL));
    PQclear(r);
    return 0;
}

int obi_pg_claim_parts(pg_store *s, const store_claim *c, ob_job **jobs, int *n)
{
    int nkeyed = 0;
    for (int i = 0; i < c->nparts; i++)
        nkeyed += c->parts[i].keys != NULL;
    return nkeyed <= 1 ? claim_one_go(s, c, jobs, n) : claim_parts(s, c, jobs, n);
}
