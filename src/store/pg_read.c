/*
 * pg_read.c - the shared store's readers: connections of their own, from
 * the pool every store shares (store.c), planned for each query with its
 * parameters; and what they read: a job with its errors and payload, a
 * page of a listing, the counts. Also the snapshot every read and claim
 * builds from a row.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

/* Readers (lists, counts) are planned each time, with their parameters:
 * a generic plan made while a table was small would stay (postgres.c). */
static const char reader_setup[] = "SET plan_cache_mode = force_custom_plan";

enum { R_GET, R_COUNTS, R_COUNTS_SCAN, R_OLDEST, R_NODES, R_QUEUES, R_HELD, R_SCHEDULES, R_RECORDS,
       R_COUNT };

/* The oldest run_at of a queue's available jobs in one claim index (parked
 * or not): ordered by priority, then run_at, its first entry of each
 * priority present is that priority's oldest; the priorities are walked
 * one seek each (a loose index scan). */
#define OLDEST(pk)                                                                           \
    "(WITH RECURSIVE p(pr) AS (SELECT (SELECT max(priority) FROM outbox_jobs WHERE state = 2" \
    " AND " pk " AND queue = $1) UNION ALL SELECT (SELECT max(priority) FROM outbox_jobs"     \
    " WHERE state = 2 AND " pk " AND queue = $1 AND priority < p.pr) FROM p"                  \
    " WHERE p.pr IS NOT NULL) SELECT min((SELECT min(run_at) FROM outbox_jobs WHERE state = 2" \
    " AND " pk " AND queue = $1 AND priority = p.pr)) FROM p WHERE p.pr IS NOT NULL)"
static const char *const reader_sql[R_COUNT] = {
    [R_GET] = "SELECT " JOB_COLS ", (SELECT json_agg(json_build_array(e.attempt, e.at,"
              " e.message, e.started_at) ORDER BY e.attempt) FROM outbox_errors e WHERE e.id = j.id)::text,"
              " j.payload FROM outbox_jobs j WHERE j.id = $1::uuid",
    [R_COUNTS] = "SELECT state, kind, queue, sum(n)::bigint FROM outbox_counts GROUP BY 1, 2, 3"
                 " HAVING sum(n) <> 0",
    /* The leader: the node whose session (backend) holds the leader lock. */
    [R_NODES] = "SELECT replace(n.id::text, '-', ''), n.host, n.pid,"
                " (extract(epoch FROM n.started_at) * 1000)::bigint,"
                " (extract(epoch FROM n.heartbeat_at) * 1000)::bigint, EXISTS(SELECT 1 FROM"
                " pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = n.backend"
                " AND l.classid = $1::int::oid AND l.objid = $2::int::oid AND l.objsubid = 2)"
                " FROM outbox_nodes n ORDER BY n.started_at, n.id",
    [R_COUNTS_SCAN] = "SELECT state, kind, queue, count(*) FROM outbox_jobs GROUP BY 1, 2, 3",
    [R_OLDEST] = "SELECT coalesce(least(" OLDEST("parked") ", " OLDEST("NOT parked") "), 0)",
    [R_QUEUES] = "SELECT " PG_QUEUE_COLS ", CASE WHEN concurrency > 0 THEN (SELECT count(*)"
                 " FROM outbox_jobs j WHERE j.state = 3 AND j.queue = q.name) ELSE 0 END"
                 " FROM outbox_queues q ORDER BY name",
    [R_SCHEDULES] = "SELECT " PG_SCHED_COLS " FROM outbox_schedules ORDER BY name",
    [R_HELD] = "SELECT key, rate_window, rate_used, held_until FROM outbox_keys"
               " WHERE queue = $1 AND held_until > $2::bigint ORDER BY key LIMIT 1000",
    /* records by key, the keys a JSON array (a lookup on every message sent:
     * the suppression list) */
    [R_RECORDS] = "SELECT " PG_RECORD_COLS " FROM outbox_records WHERE set_name = $1"
                  " AND key IN (SELECT jsonb_array_elements_text($2::jsonb))",
};
static const pg_stmts reader_stmts = {R_COUNT, reader_sql};

typedef struct reader {
    obi_reader link; /* first: the pool's */
    pgconn conn;
} reader;

static const int id_fmt_1[1] = {1}, id_len_1[1] = {16};

ob_job *obi_pg_row_to_job(const PGresult *r, int i, bool payload, const char *errors_json)
{
    size_t lk, lq, lu = 0, lr = 0, lm = 0, lp = 0;
    const char *kind = obi_pgv_str(r, i, C_KIND, &lk), *queue = obi_pgv_str(r, i, C_QUEUE, &lq);
    const char *uk = obi_pgv_str(r, i, C_UNIQUE, &lu), *res = obi_pgv_str(r, i, C_RESULT, &lr);
    const char *meta = obi_pgv_str(r, i, C_META, &lm);
    size_t lrk = 0;
    const char *rk = obi_pgv_str(r, i, C_RATE_KEY, &lrk);
    const char *pl = payload ? obi_pgv_str(r, i, C_EXTRA + (errors_json ? 1 : 0), &lp) : NULL;
    json_t *errs = errors_json ? json_loads(errors_json, 0, NULL) : NULL;
    job_sizes z = {
        .kind = lk, .queue = lq, .unique_key = lu, .result = lr, .meta = lm, .payload = lp,
        .has_unique_key = !obi_pgv_null(r, i, C_UNIQUE), .has_result = !obi_pgv_null(r, i, C_RESULT),
        .has_meta = !obi_pgv_null(r, i, C_META), .has_payload = payload, .rate_key = lrk,
        .nerrors = json_is_array(errs) ? json_array_size(errs) : 0,
    };
    if (z.nerrors > OB_ERRORS_KEPT_MAX)
        z.nerrors = OB_ERRORS_KEPT_MAX;
    for (size_t k = 0; k < z.nerrors; k++)
        z.errors_text += json_string_length(json_array_get(json_array_get(errs, k), 2));
    ob_job *j = obi_job_alloc(&z);
    if (j) {
        obi_pgv_id(r, i, C_ID, &j->id);
        memcpy(j->kind, kind, lk);
        memcpy(j->queue, queue, lq);
        if (j->unique_key)
            memcpy(j->unique_key, uk, lu);
        if (j->result)
            memcpy(j->result, res, lr);
        if (j->meta)
            memcpy(j->meta, meta, lm);
        if (j->rate_key)
            memcpy(j->rate_key, rk, lrk);
        if (j->payload && lp)
            memcpy(j->payload, pl, lp);
        j->priority = (int)obi_pgv_int(r, i, C_PRIORITY);
        j->state = (ob_state)obi_pgv_int(r, i, C_STATE);
        j->attempt = (int)obi_pgv_int(r, i, C_ATTEMPT);
        j->max_attempts = (int)obi_pgv_int(r, i, C_MAX_ATTEMPTS);
        j->timeout_ms = obi_pgv_int(r, i, C_TIMEOUT);
        j->run_at_ms = obi_pgv_int(r, i, C_RUN_AT);
        j->created_at_ms = obi_pgv_int(r, i, C_CREATED);
        j->attempted_at_ms = obi_pgv_int(r, i, C_ATTEMPTED);
        j->finished_at_ms = obi_pgv_int(r, i, C_FINISHED);
        j->cancel_requested = obi_pgv_int(r, i, C_CANCEL) != 0;
        for (size_t k = 0; k < z.nerrors; k++) {
            json_t *e = json_array_get(errs, k);
            json_t *m = json_array_get(e, 2);
            obi_job_place_error(j, k, (int)json_integer_value(json_array_get(e, 0)),
                            json_integer_value(json_array_get(e, 1)), json_string_value(m),
                            json_string_length(m));
            j->errors[k].started_at_ms = json_integer_value(json_array_get(e, 3));
        }
    }
    json_decref(errs);
    return j;
}

/* The reader pool's calls (store.c): a reader is made unconnected, and
 * connected (again) when taken; one that cannot connect stays in the pool,
 * keeping its reconnect backoff. */
int obi_pg_reader_make(void *ctx, obi_reader **out)
{
    pg_store *s = ctx;
    reader *r = calloc(1, sizeof *r);
    if (!r)
        return OB_ENOMEM;
    r->conn = (pgconn){.url = s->url, .role = "reader", .stmts = &reader_stmts,
                       .pipeline = true, .setup = reader_setup};
    *out = &r->link;
    return 0;
}

int obi_pg_reader_ready(void *ctx, obi_reader *r)
{
    (void)ctx;
    return obi_pgc_ready(&((reader *)r)->conn);
}

void obi_pg_reader_destroy(obi_reader *r)
{
    obi_pgc_close(&((reader *)r)->conn);
    free(r);
}

/* A read on a reader: when its connection turns out to have been lost (a
 * restart, a terminated backend), once more on a new one — a read can be
 * repeated, unlike a batch of writes. */
static int rcall(pgconn *c, int stmt, const char *sql, int n, const char *const *v,
                 const int *len, const int *fmt, PGresult **out)
{
    int rc = obi_pgc_call(c, stmt, sql, n, v, len, fmt, out);
    if (rc == OB_EUNAVAIL && !c->c && obi_pgc_ready(c) == 0)
        rc = obi_pgc_call(c, stmt, sql, n, v, len, fmt, out);
    return rc;
}

/* One read on a reader of the pool. *out as obi_pgc_call. */
static int reader_call(pg_store *s, int stmt, const char *sql, int n, const char *const *v,
                       const int *len, const int *fmt, PGresult **out)
{
    obi_reader *r;
    int rc = obi_readers_get(&s->readers, &r);
    if (rc)
        return rc;
    rc = rcall(&((reader *)r)->conn, stmt, sql, n, v, len, fmt, out);
    obi_readers_put(&s->readers, r);
    return rc;
}

int obi_pg_get(store *base, const ob_id *id, ob_job **out)
{
    PGresult *r = NULL;
    int rc = reader_call((pg_store *)base, R_GET, NULL, 1, (const char *[]){ID_PARAM(id)},
                         id_len_1, id_fmt_1, &r);
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = OB_ENOTFOUND;
    else if (!(*out = obi_pg_row_to_job(r, 0, true,
                                 obi_pgv_null(r, 0, C_EXTRA) ? "[]" : obi_pgv_str(r, 0, C_EXTRA, NULL))))
        rc = OB_ENOMEM;
    PQclear(r);
    return rc;
}

/* list_one_fn: one list query (each on a reader of its own: a listing is
 * not one snapshot here, as it is not over HTTP pages either). */
static int list_one(void *ctx, int state, const ob_list_filter *f, const ob_id *after,
                    int limit, ob_job_page *l)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " JOB_COLS " FROM outbox_jobs j WHERE %s%s%s%s%s%s%s"
             " ORDER BY j.id DESC LIMIT $5::int",
             state >= 0 ? "j.state = $1::smallint" : "$1::smallint IS NOT NULL",
             after ? " AND j.id < $2::uuid" : " AND $2::uuid IS NULL",
             f->kind ? " AND j.kind = $3" : " AND $3::text IS NULL",
             f->queue ? " AND j.queue = $4" : " AND $4::text IS NULL",
             f->term || f->unique_key
                 ? " AND j.id IN (SELECT id FROM outbox_terms WHERE term = $6::text"
                   " UNION ALL SELECT id FROM outbox_jobs WHERE unique_key = $7::text)"
                 : " AND $6::text IS NULL AND $7::text IS NULL",
             f->created_after_ms ? " AND j.id >= $8::uuid" : " AND $8::uuid IS NOT NULL",
             f->created_before_ms ? " AND j.id < $9::uuid" : " AND $9::uuid IS NOT NULL");
    pgnum b[2];
    ob_id lo, hi;
    obi_id_at(f->created_after_ms, &lo);
    obi_id_at(f->created_before_ms, &hi);
    const char *v[9] = {obi_pg_i64(&b[0], state), after ? ID_PARAM(after) : NULL, f->kind, f->queue,
                        obi_pg_i64(&b[1], limit + 1), f->term, f->unique_key, ID_PARAM(&lo),
                        ID_PARAM(&hi)};
    int len[9] = {0, 16, 0, 0, 0, 0, 0, 16, 16}, fmt[9] = {0, 1, 0, 0, 0, 0, 0, 1, 1};
    PGresult *r = NULL;
    int rc = reader_call(ctx, 0, sql, 9, v, len, fmt, &r);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        ob_job *j = obi_pg_row_to_job(r, i, false, NULL);
        if (!j)
            rc = OB_ENOMEM;
        else
            l->jobs[l->n++] = j;
    }
    PQclear(r);
    return rc;
}

int obi_pg_list(store *base, const ob_list_filter *f, ob_job_page **out)
{
    return obi_store_list_run(f, list_one, base, out);
}

static int count_rows(store *base, int stmt, ob_count_fn fn, void *arg)
{
    PGresult *r = NULL;
    int rc = reader_call((pg_store *)base, stmt, NULL, 0, NULL, NULL, NULL, &r);
    for (int i = 0; !rc && i < PQntuples(r); i++)
        fn(arg, (ob_state)obi_pgv_int(r, i, 0), obi_pgv_str(r, i, 1, NULL),
           obi_pgv_str(r, i, 2, NULL), obi_pgv_int(r, i, 3));
    PQclear(r);
    return rc;
}

int obi_pg_counts(store *base, ob_count_fn fn, void *arg)
{
    return count_rows(base, R_COUNTS, fn, arg);
}

int obi_pg_counts_scan(store *base, ob_count_fn fn, void *arg)
{
    return count_rows(base, R_COUNTS_SCAN, fn, arg);
}

int obi_pg_nodes(store *base, ob_node **rows, size_t *n)
{
    pg_store *s = (pg_store *)base;
    pgnum b[2];
    const char *v[2] = {obi_pg_i64(&b[0], PG_LOCK_LEADER), obi_pg_i64(&b[1], s->node.lock_key)};
    PGresult *r = NULL;
    int rc = reader_call(s, R_NODES, NULL, 2, v, NULL, NULL, &r);
    int nr = rc ? 0 : PQntuples(r);
    *rows = NULL;
    *n = 0;
    if (nr && !(*rows = calloc((size_t)nr, sizeof **rows)))
        rc = OB_ENOMEM;
    for (int i = 0; !rc && i < nr; i++) {
        ob_node *d = &(*rows)[i];
        snprintf(d->id, sizeof d->id, "%s", obi_pgv_str(r, i, 0, NULL));
        snprintf(d->host, sizeof d->host, "%s", obi_pgv_str(r, i, 1, NULL));
        d->pid = (int)obi_pgv_int(r, i, 2);
        d->started_at_ms = obi_pgv_int(r, i, 3);
        d->heartbeat_at_ms = obi_pgv_int(r, i, 4);
        d->leader = obi_pgv_int(r, i, 5) != 0;
        d->self = strcmp(d->id, s->node.idhex) == 0;
        (*n)++;
    }
    PQclear(r);
    return rc;
}

int obi_pg_oldest_due(store *base, const char *queue, int64_t *at)
{
    PGresult *r = NULL;
    int rc = reader_call((pg_store *)base, R_OLDEST, NULL, 1, &queue, NULL, NULL, &r);
    *at = rc ? 0 : obi_pgv_int(r, 0, 0);
    PQclear(r);
    return rc;
}

int obi_pg_queue_rows(const PGresult *r, bool counted, store_queue **rows, int *n)
{
    int nr = PQntuples(r);
    *rows = NULL;
    *n = 0;
    if (nr == 0)
        return 0;
    store_queue *v = calloc((size_t)nr, sizeof *v);
    if (!v)
        return OB_ENOMEM;
    for (int i = 0; i < nr; i++) {
        store_queue *q = &v[i];
        snprintf(q->name, sizeof q->name, "%s", obi_pgv_str(r, i, 0, NULL));
        q->paused = obi_pgv_int(r, i, 1) != 0;
        q->concurrency = (int)obi_pgv_int(r, i, 2);
        q->rate_limit = (int)obi_pgv_int(r, i, 3);
        q->rate_period_ms = obi_pgv_int(r, i, 4);
        q->rate_window = obi_pgv_int(r, i, 5);
        q->rate_used = (int)obi_pgv_int(r, i, 6);
        q->key_rate_limit = (int)obi_pgv_int(r, i, 7);
        q->key_rate_period_ms = obi_pgv_int(r, i, 8);
        q->hold_until = obi_pgv_int(r, i, 9);
        q->key_hold_until = obi_pgv_int(r, i, 10);
        q->updated_at = obi_pgv_int(r, i, 11);
        q->running = counted ? (int)obi_pgv_int(r, i, 12) : 0;
    }
    *rows = v;
    *n = nr;
    return 0;
}

int obi_pg_queues(store *base, store_queue **rows, int *n)
{
    PGresult *r = NULL;
    int rc = reader_call((pg_store *)base, R_QUEUES, NULL, 0, NULL, NULL, NULL, &r);
    if (!rc)
        rc = obi_pg_queue_rows(r, true, rows, n);
    PQclear(r);
    return rc;
}

int obi_pg_keys_held(store *base, const char *queue, int64_t now, store_key **rows, int *n)
{
    pgnum b;
    PGresult *r = NULL;
    *rows = NULL;
    *n = 0;
    int rc = reader_call((pg_store *)base, R_HELD, NULL, 2,
                         (const char *[]){queue, obi_pg_i64(&b, now)}, NULL, NULL, &r);
    int nr = rc ? 0 : PQntuples(r);
    if (nr > 0 && !(*rows = calloc((size_t)nr, sizeof **rows)))
        rc = OB_ENOMEM;
    for (int i = 0; !rc && i < nr; i++) {
        store_key *k = &(*rows)[(*n)++];
        snprintf(k->key, sizeof k->key, "%s", obi_pgv_str(r, i, 0, NULL));
        k->rate_window = obi_pgv_int(r, i, 1);
        k->rate_used = (int)obi_pgv_int(r, i, 2);
        k->held_until = obi_pgv_int(r, i, 3);
    }
    PQclear(r);
    return rc;
}

int obi_pg_schedules(store *base, store_schedule **rows, int *n)
{
    PGresult *r = NULL;
    *rows = NULL;
    *n = 0;
    int rc = reader_call((pg_store *)base, R_SCHEDULES, NULL, 0, NULL, NULL, NULL, &r);
    return rc ? rc : obi_pg_schedules_rows(r, rows, n);
}

int obi_pg_read(store *base, const char *sql, int n, const char *const *v, PGresult **out)
{
    return reader_call((pg_store *)base, 0, sql, n, v, NULL, NULL, out);
}

int obi_pg_records_read(store *base, const char *set, const char *keys_json, PGresult **out)
{
    return reader_call((pg_store *)base, R_RECORDS, NULL, 2, (const char *[]){set, keys_json},
                       NULL, NULL, out);
}
