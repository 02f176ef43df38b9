/*
 * postgres.c - the shared store: jobs in a PostgreSQL database that several
 * outbox processes (nodes) use at once: open, close, and the writer's calls.
 * Tables: pg_schema.c; connections and the pipeline: pg_conn.c; membership
 * and leadership: pg_node.c; readers: pg_read.c; claims with parts, queue
 * settings and rate keys (flow control): pg_flow.c; schedules:
 * pg_schedules.c; the counters: pg_counts.c; transactional enqueue:
 * pg_tx.c; a batch's inserts and updates gathered into one statement each:
 * pg_gather.c; the notifications sent after a commit: pg_node.c. The
 * writer's statements are all here (writer_sql), but for the inserts' and
 * the gathered ones', which pg.h keeps for insert_tx and pg_gather.c too.
 *
 * Durability: a commit returns once PostgreSQL reports it committed, which
 * with its defaults (fsync, synchronous_commit on) means flushed to its WAL
 * (S1). What "durable" means beyond that is the server's configuration.
 *
 * How a batch of the commit thread becomes few round trips:
 *   - inserts without a unique key, and every statement on a row the batch
 *     locked first (prefetch), are deferred: sent, not waited for (D1 in
 *     pg_conn.c keeps their failures);
 *   - a claim is one statement: UPDATE ... FROM (SELECT ... ORDER BY claim
 *     order LIMIT n FOR UPDATE SKIP LOCKED), so nodes claiming together
 *     never wait on each other or take the same job;
 *   - the rows of the batch's answers and cancels are read and locked by
 *     one statement (prefetch), in id order, so two batches lock in the
 *     same order, and an update of a locked row cannot miss (S3 holds
 *     because nobody else can change the row until we commit).
 *
 * Invariants of the shared store:
 *   G1  Every running job names the node that claimed it; a node's row
 *       exists before it claims (obi_pg_node_start) and is removed only once
 *       none of its jobs runs.
 *   G2  Rescue and prune run in a transaction holding the chore advisory
 *       lock, so no two nodes run them at once even while leadership moves.
 *   G3  Unique keys are a unique index: two nodes enqueueing one key make
 *       one job; the second insert waits for the first to commit and then
 *       answers STORE_EXISTS (S6).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

#define ROW_COLS                                                                           \
    "id, state, attempt, max_attempts, cancel_requested, kind, queue, run_at, meta, rate_key"
/* Unparked available jobs of `where`'s queues in claim order, skipping
 * queues with a row (the net: F3 may lag another node's change), locked. */
#define CAND(cols, where, lim)                                                              \
    "SELECT " cols " FROM outbox_jobs WHERE state = 2 AND NOT parked" where                 \
    " AND NOT EXISTS (SELECT 1 FROM outbox_queues q WHERE q.name = outbox_jobs.queue)"     \
    " ORDER BY priority DESC, run_at, id LIMIT " lim " FOR UPDATE SKIP LOCKED"
#define FLIP                                                                                \
    "UPDATE outbox_jobs j SET state = 3, attempt = j.attempt + 1, attempted_at = $1::bigint," \
    " lease_until = $1::bigint + j.timeout_ms + $2::bigint, node = $3::uuid"
/* A claim with parts, in one statement: the candidates of the main part,
 * of the unlimited-key parts, and of (at most) one keyed part, each
 * locked and cut to its limit, merged in claim order, the best flipped. */
#define CLAIMP(mainq)                                                                        \
    FLIP " FROM (SELECT id FROM (SELECT * FROM (SELECT id, priority, run_at FROM outbox_jobs" \
    " WHERE state = 2 AND NOT parked AND $5::boolean" mainq                                    \
    " AND NOT EXISTS (SELECT 1 FROM outbox_queues q WHERE q.name = outbox_jobs.queue)"       \
    " ORDER BY priority DESC, run_at, id LIMIT $4::int FOR UPDATE SKIP LOCKED) m"           \
    " UNION ALL SELECT c.id, c.priority, c.run_at FROM unnest($6::text[], $7::int[]) p(q, n)" \
    " CROSS JOIN LATERAL (SELECT id, priority, run_at FROM outbox_jobs WHERE state = 2"      \
    " AND parked AND queue = p.q ORDER BY priority DESC, run_at, id LIMIT p.n"                \
    " FOR UPDATE SKIP LOCKED) c"                                                              \
    " UNION ALL SELECT * FROM (SELECT c.id, c.priority, c.run_at FROM"                        \
    " unnest($9::text[], $10::int[]) p(k, n) CROSS JOIN LATERAL (SELECT id, priority, run_at" \
    " FROM outbox_jobs WHERE state = 2 AND parked AND queue = $8 AND rate_key = p.k"          \
    " ORDER BY priority DESC, run_at, id LIMIT p.n FOR UPDATE SKIP LOCKED) c"                 \
    " ORDER BY 2 DESC, 3, 1 LIMIT $11::int) k) u ORDER BY priority DESC, run_at, id"          \
    " LIMIT $4::int) c WHERE j.id = c.id AND j.state = 2 RETURNING " JOB_COLS ", j.payload"
#define CLAIM(where)                                                                       \
    FLIP " FROM (" CAND("id", where, "$4::int") ") c"                                        \
    " WHERE j.id = c.id RETURNING " JOB_COLS ", j.payload"
#define INTERVAL_MS(p) " now() - " p "::bigint * interval '1 millisecond'"
static const char *const writer_sql[W_COUNT] = {
    [W_BEGIN] = "BEGIN",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_INSERT] = INSERT_SQL(""),
    [W_FIND_UNIQUE] = "SELECT id FROM outbox_jobs WHERE unique_key = $1",
    [W_LOAD] = "SELECT " ROW_COLS " FROM outbox_jobs WHERE id = $1::uuid",
    [W_PREFETCH] = "SELECT " ROW_COLS " FROM outbox_jobs WHERE id = ANY($1::uuid[])"
                   " ORDER BY id FOR UPDATE",
    [W_UPDATE] = "UPDATE outbox_jobs SET state = $3::smallint, attempt = $4::int,"
                 " max_attempts = $5::int, run_at = $6::bigint, finished_at = $7::bigint,"
                 " cancel_requested = $8::boolean, result = coalesce($9::text, result),"
                 " lease_until = CASE WHEN $3::smallint = 3 THEN lease_until END,"
                 " node = CASE WHEN $3::smallint = 3 THEN node END,"
                 " parked = CASE WHEN $3::smallint = 2 THEN EXISTS (SELECT 1 FROM outbox_queues q"
                 " WHERE q.name = outbox_jobs.queue) ELSE parked END" /* F3 */
                 " WHERE id = $1::uuid AND state = $2::smallint AND attempt = $10::int",
    [W_ADD_ERROR] = "INSERT INTO outbox_errors(id, attempt, at, message, started_at)"
                    " VALUES($1::uuid, $2::int, $3::bigint, $4, coalesce((SELECT attempted_at FROM"
                    " outbox_jobs WHERE id = $1::uuid), 0)) ON CONFLICT (id, attempt)"
                    " DO UPDATE SET at = excluded.at, message = excluded.message,"
                    " started_at = excluded.started_at",
    [W_TRIM_ERRORS] = "DELETE FROM outbox_errors WHERE id = $1::uuid AND attempt <= $2::int",
    [W_EXTEND] = "UPDATE outbox_jobs SET lease_until = $3::bigint"
                 " WHERE id = $1::uuid AND state = 3 AND attempt = $2::int",
    [W_CLAIM] = CLAIM(""),
    [W_CLAIM_QUEUE] = CLAIM(" AND queue = $5"),
    [W_CLAIM_QUEUES] = CLAIM(" AND queue = ANY($5::text[])"),
    /* A claim with parts (store_claim): candidates locked, merged here,
     * the best flipped by id. */
    [W_CAND] = CAND("id, priority, run_at", "", "$1::int"),
    [W_CAND_QUEUES] = CAND("id, priority, run_at", " AND queue = ANY($2::text[])", "$1::int"),
    [W_CAND_PARTS] = "SELECT c.id, c.priority, c.run_at FROM unnest($1::text[], $2::int[])"
                     " p(q, n) CROSS JOIN LATERAL (SELECT id, priority, run_at FROM outbox_jobs"
                     " WHERE state = 2 AND parked AND queue = p.q ORDER BY priority DESC,"
                     " run_at, id LIMIT p.n FOR UPDATE SKIP LOCKED) c",
    [W_CAND_KEYS] = "SELECT c.id, c.priority, c.run_at FROM unnest($2::text[], $3::int[])"
                    " p(k, n) CROSS JOIN LATERAL (SELECT id, priority, run_at FROM outbox_jobs"
                    " WHERE state = 2 AND parked AND queue = $1 AND rate_key = p.k"
                    " ORDER BY priority DESC, run_at, id LIMIT p.n FOR UPDATE SKIP LOCKED) c",
    [W_CLAIMP_ALL] = CLAIMP(""),
    [W_CLAIMP_Q] = CLAIMP(" AND queue = ANY($12::text[])"),
    [W_CLAIM_IDS] = FLIP " WHERE j.id = ANY($4::uuid[]) AND j.state = 2"
                    " RETURNING " JOB_COLS ", j.payload",
    /* Locked first; counted after, by a statement whose snapshot is
     * taken once the locks are ours (a claim that held them committed).
     * (Skipping rows another node holds, SKIP LOCKED, was measured: the
     * retries cost more than the wait, 0.31x against 0.49x.) */
    [W_QUEUES_LOCK] = "SELECT " PG_QUEUE_COLS " FROM outbox_queues ORDER BY name FOR UPDATE",
    [W_RUNNING] = "SELECT queue, count(*) FROM outbox_jobs WHERE state = 3"
                  " AND queue = ANY($1::text[]) GROUP BY queue",
    [W_QUEUE_SAVE] = "INSERT INTO outbox_queues(" PG_QUEUE_COLS ") VALUES($1, $2::boolean,"
                     " $3::int, $4::int, $5::bigint, $6::bigint, $7::int, $8::int, $9::bigint,"
                     " $10::bigint, $11::bigint, $12::bigint) ON CONFLICT (name) DO UPDATE SET"
                     " paused = excluded.paused, concurrency = excluded.concurrency,"
                     " rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms,"
                     " rate_window = excluded.rate_window, rate_used = excluded.rate_used,"
                     " key_rate_limit = excluded.key_rate_limit,"
                     " key_rate_period_ms = excluded.key_rate_period_ms,"
                     " hold_until = excluded.hold_until, key_hold_until = excluded.key_hold_until,"
                     " updated_at = excluded.updated_at",
    [W_QUEUE_DELETE] = "DELETE FROM outbox_queues WHERE name = $1",
    /* A queue's keys with parked jobs after $2, one index seek each. */
    [W_KEYS_WAITING] = "WITH RECURSIVE k(key, n) AS (SELECT (SELECT min(rate_key) FROM outbox_jobs"
                       " WHERE state = 2 AND parked AND queue = $1 AND rate_key >= $2"
                       " AND ($4::boolean OR rate_key > $2)), 1 UNION ALL SELECT (SELECT"
                       " min(rate_key) FROM outbox_jobs WHERE state = 2 AND parked AND queue = $1"
                       " AND rate_key > k.key), n + 1 FROM k WHERE k.key IS NOT NULL"
                       " AND n < $3::int) SELECT key FROM k WHERE key IS NOT NULL",
    /* Rows to lock for keys that have none yet; then the rows, in key order. */
    [W_KEYS_ENSURE] = "INSERT INTO outbox_keys(queue, key, rate_window, rate_used, held_until)"
                      " SELECT $1, k, 0, 0, 0 FROM unnest($2::text[]) k ON CONFLICT DO NOTHING",
    [W_KEYS_LOCK] = "SELECT key, rate_window, rate_used, held_until FROM outbox_keys"
                    " WHERE queue = $1 AND key = ANY($2::text[]) ORDER BY key FOR UPDATE",
    [W_KEY_SAVE] = "INSERT INTO outbox_keys(queue, key, rate_window, rate_used, held_until)"
                   " VALUES($1, $2, $3::bigint, $4::int, $5::bigint) ON CONFLICT (queue, key)"
                   " DO UPDATE SET rate_window = excluded.rate_window,"
                   " rate_used = excluded.rate_used, held_until = excluded.held_until",
    [W_KEYS_PRUNE] = "DELETE FROM outbox_keys WHERE (queue, key) IN (SELECT queue, key FROM"
                     " outbox_keys WHERE queue = $1 AND held_until <= $2::bigint"
                     " AND rate_window + $3::bigint <= $2::bigint LIMIT $4::int"
                     " FOR UPDATE SKIP LOCKED)",
    [W_PROMOTE] = "WITH c AS (SELECT id, state FROM outbox_jobs WHERE state IN (1, 4)"
                  " AND run_at <= $1::bigint ORDER BY run_at LIMIT $2::int"
                  " FOR UPDATE SKIP LOCKED)"
                  " UPDATE outbox_jobs j SET state = 2, parked = EXISTS (SELECT 1 FROM"
                  " outbox_queues q WHERE q.name = j.queue) FROM c WHERE j.id = c.id"
                  " RETURNING j.id, c.state, j.attempt, j.kind, j.queue",
    [W_NEXT_DUE] = "SELECT min(run_at) FROM outbox_jobs WHERE state IN (1, 4)",
    [W_CHORE_LOCK] = "SELECT pg_try_advisory_xact_lock($1::int, $2::int)",
    [W_EXPIRED] = "SELECT j.id, j.attempt FROM outbox_jobs j"
                  " LEFT JOIN outbox_nodes n ON n.id = j.node WHERE j.state = 3"
                  " AND (j.lease_until < $1::bigint OR ($4::boolean AND (n.id IS NULL"
                  " OR n.heartbeat_at <" INTERVAL_MS("$2") ")))"
                  " ORDER BY j.lease_until LIMIT $3::int FOR UPDATE OF j SKIP LOCKED",
    [W_BURY_NODES] = "DELETE FROM outbox_nodes n WHERE n.heartbeat_at <" INTERVAL_MS("$1")
                     " AND NOT EXISTS (SELECT 1 FROM outbox_jobs j"
                     " WHERE j.state = 3 AND j.node = n.id)"
                     " RETURNING n.id, n.host, n.pid",
    [W_PRUNE] = "WITH d AS (SELECT id FROM outbox_jobs WHERE state >= 5"
                " AND finished_at < $1::bigint ORDER BY finished_at LIMIT $2::int),"
                " e AS (DELETE FROM outbox_errors WHERE id IN (SELECT id FROM d)),"
                " t AS (DELETE FROM outbox_terms WHERE id IN (SELECT id FROM d))"
                " DELETE FROM outbox_jobs WHERE id IN (SELECT id FROM d)"
                " RETURNING kind, queue, state",
    [W_COUNT_UNFINISHED] = "SELECT count(*) FROM outbox_jobs WHERE state < 5",
    [W_NOTIFY] = "SELECT pg_notify($1, $2)",
    [W_TERMS] = TERMS_SQL(""),
    [W_INSERT_MANY] = INSERT_MANY_SQL,
    [W_TERMS_MANY] = TERMS_MANY_SQL,
    [W_UPDATE_MANY] = UPDATE_MANY_SQL,
    [W_COUNT_ADD] = "INSERT INTO outbox_counts(node, queue, kind, state, n) SELECT $1, q, k, s, n"
                    " FROM unnest($2::text[], $3::text[], $4::smallint[], $5::bigint[])"
                    " u(q, k, s, n) WHERE n <> 0 ON CONFLICT (node, queue, kind, state)"
                    " DO UPDATE SET n = outbox_counts.n + excluded.n",
    /* Rows of nodes not alive (gone, or a transaction's) into $1's; then
     * $1's empty rows. Rows a transaction still holds are skipped. */
    [W_COUNT_FOLD] = "WITH d AS (DELETE FROM outbox_counts WHERE (node, queue, kind, state) IN"
                     " (SELECT node, queue, kind, state FROM outbox_counts WHERE node <> $1"
                     " AND node NOT IN (SELECT replace(id::text, '-', '') FROM outbox_nodes)"
                     " LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING queue, kind, state, n),"
                     " z AS (DELETE FROM outbox_counts WHERE node = $1 AND n = 0)"
                     " INSERT INTO outbox_counts(node, queue, kind, state, n)"
                     " SELECT $1, queue, kind, state, sum(n) FROM d GROUP BY 2, 3, 4"
                     " ON CONFLICT (node, queue, kind, state)"
                     " DO UPDATE SET n = outbox_counts.n + excluded.n",
};
static const pg_stmts writer_stmts = {W_COUNT, writer_sql};

/* A prepared statement soon runs on a generic plan, made once from the
 * table's size at that time: one made while the table was empty (a
 * sequential scan) would stay while it grows to millions of rows. The
 * writer's statements all have an index to use: forbid the scan, and use
 * the generic plans always (planning each execution costs more than the
 * execution; left to choose, PostgreSQL re-planned W_UPDATE every time, its
 * CASE on a parameter making every custom plan look cheaper). No JIT: a
 * forbidden scan (the few rows of outbox_schedules) is costed at 1e10,
 * which made PostgreSQL compile such a query, ~100 ms, on the writer.
 * Readers are planned each time (pg_read.c). */
static const char writer_setup[] =
    "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan; SET jit = off";


static const store_ops pg_ops;

/* ---- parameters ---- */

static const int id_fmt_1[1] = {1}, id_len_1[1] = {16};

static void row_from(const PGresult *r, int i, store_row *row, ob_id *id)
{
    obi_pgv_id(r, i, 0, id);
    row->state = (ob_state)obi_pgv_int(r, i, 1);
    row->attempt = (int)obi_pgv_int(r, i, 2);
    row->max_attempts = (int)obi_pgv_int(r, i, 3);
    row->cancel_requested = obi_pgv_int(r, i, 4) != 0;
    snprintf(row->kind, sizeof row->kind, "%s", obi_pgv_str(r, i, 5, NULL));
    snprintf(row->queue, sizeof row->queue, "%s", obi_pgv_str(r, i, 6, NULL));
    row->run_at = obi_pgv_int(r, i, 7);
    row->has_meta = !obi_pgv_null(r, i, 8);
    snprintf(row->meta, sizeof row->meta, "%s", row->has_meta ? obi_pgv_str(r, i, 8, NULL) : "");
    snprintf(row->rate_key, sizeof row->rate_key, "%s", obi_pgv_str(r, i, 9, NULL));
}

/* ---- open and close ---- */

static void pg_close(store *base)
{
    pg_store *s = (pg_store *)base;
    if (!s)
        return;
    obi_pg_node_stop(&s->node);
    obi_readers_destroy(&s->readers);
    obi_pgc_close(&s->w);
    obi_pg_gather_free(&s->gather);
    free(s->notes);
    free(s->held);
    obi_pg_tx_free(&s->tx);
    free(s->url);
    free(s);
}

/* A new string (malloc'd), or NULL. */
/* Schema check and the names that depend on the schema, on a plain
 * connection of its own. */
static int prepare_schema(pg_store *s, int *from)
{
    PGconn *c = PQconnectdb(s->url);
    int rc = 0;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        OB_ERROR("postgres: cannot connect: %s", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return OB_EUNAVAIL;
    }
    if ((rc = obi_pg_schema_check(c, from)))
        goto out;
    PGresult *r = PQexec(c, "SELECT current_schema(), hashtext(current_schema())");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQgetisnull(r, 0, 0)) {
        OB_ERROR("postgres: no current schema (check search_path)");
        PQclear(r);
        rc = OB_ESTORE;
        goto out;
    }
    const char *schema = PQgetvalue(r, 0, 0);
    s->node.lock_key = atoi(PQgetvalue(r, 0, 1));
    snprintf(s->node.channel, sizeof s->node.channel, "outbox.%.100s", schema);
    rc = obi_pg_tx_init(&s->tx, c, schema, s->node.channel);
    PQclear(r);
out:
    PQfinish(c);
    return rc;
}

int obi_store_pg_open(const char *url, const store_opts *o, store **out)
{
    pg_store *s = calloc(1, sizeof *s);
    if (!s)
        return OB_ENOMEM;
    s->base.ops = &pg_ops;
    s->base.exclusive = false;
    s->o.node_dead_ms = o && o->node_dead_ms ? o->node_dead_ms : 15000;
    s->base.wake = o ? o->wake : NULL;
    s->base.finished = o ? o->finished : NULL;
    s->base.isolated = o ? o->isolated : NULL;
    s->base.wake_arg = o ? o->wake_arg : NULL;
    obi_readers_init(&s->readers, MAX_READERS, s, obi_pg_reader_make, obi_pg_reader_ready,
                     obi_pg_reader_destroy);
    int rc = OB_ENOMEM, from;
    if (!(s->url = strdup(url)))
        goto err;
    s->w = (pgconn){.url = s->url, .role = "writer", .stmts = &writer_stmts, .pipeline = true,
                    .setup = writer_setup, .before = obi_pg_gather_flush, .before_arg = s};
    if ((rc = prepare_schema(s, &from)) || (rc = obi_pgc_ready(&s->w)))
        goto err;
    s->node.dead_ms = s->o.node_dead_ms;
    s->node.conn.url = s->url;
    if ((rc = obi_pg_node_start(&s->node, &s->base)))
        goto err;
    *out = &s->base;
    return 0;
err:
    pg_close(&s->base);
    return rc;
}

int obi_store_pg_migrate(const char *url, int *had, int *now)
{
    PGconn *c = PQconnectdb(url);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        OB_ERROR("postgres: cannot connect: %s", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return OB_EUNAVAIL;
    }
    int rc = obi_pg_schema_check(c, had);
    *now = rc ? *had : PG_SCHEMA_VERSION;
    PQfinish(c);
    return rc;
}

/* ---- writer calls ---- */

static int pg_begin(store *base)
{
    pg_store *s = (pg_store *)base;
    s->nheld = 0;
    s->notes_len = 0;
    s->chore_lock = -1;
    int rc = obi_pgc_ready(&s->w);
    return rc ? rc : obi_pgc_defer(&s->w, W_BEGIN, 0, NULL, NULL, NULL, PQ_ANY);
}

/* The commit, then the transaction's notifications (pg_node.c), in one
 * round trip. */
static int pg_commit(store *base)
{
    pg_store *s = (pg_store *)base;
    int rc = obi_pgc_defer(&s->w, W_COMMIT, 0, NULL, NULL, NULL, PQ_ANY);
    if (!rc)
        rc = obi_pg_notes_send(s);
    if (!rc)
        rc = obi_pgc_sync(&s->w);
    s->notes_len = 0;
    s->nheld = 0;
    return rc;
}

static void pg_rollback(store *base)
{
    pg_store *s = (pg_store *)base;
    s->nheld = 0;
    s->notes_len = 0;
    obi_pg_gather_reset(&s->gather); /* never sent */
    if (!s->w.c)
        return; /* the connection is gone, and the transaction with it */
    PGresult *r;
    obi_pgc_sync(&s->w); /* drain what is in flight; its errors are known */
    if (s->w.c && obi_pgc_call(&s->w, W_ROLLBACK, NULL, 0, NULL, NULL, NULL, &r) == 0)
        PQclear(r);
}

/* One insert's parameters; `b` holds the numbers. */
void obi_pg_insert_params(const store_new *j, pgnum b[6], const char *v[13], int len[13],
                          int fmt[13])
{
    memset(fmt, 0, 13 * sizeof *fmt);
    memset(len, 0, 13 * sizeof *len);
    v[0] = ID_PARAM(&j->id), len[0] = 16, fmt[0] = 1;
    v[1] = j->kind;
    v[2] = j->queue;
    v[3] = obi_pg_i64(&b[0], j->priority);
    v[4] = obi_pg_i64(&b[1], j->state);
    v[5] = obi_pg_i64(&b[2], j->max_attempts);
    v[6] = obi_pg_i64(&b[3], j->timeout_ms);
    v[7] = obi_pg_i64(&b[4], j->run_at);
    v[8] = obi_pg_i64(&b[5], j->created_at);
    v[9] = j->unique_key;
    v[10] = j->meta;
    v[11] = j->payload ? (const char *)j->payload : "", len[11] = (int)j->payload_len, fmt[11] = 1;
    v[12] = j->rate_key ? j->rate_key : "";
}

static int pg_insert(store *base, const store_new *j)
{
    pg_store *s = (pg_store *)base;
    if (!j->unique_key)
        return obi_pg_gather_insert(s, j); /* with its terms (pg_gather.c) */
    pgnum b[6];
    const char *v[13];
    int len[13], fmt[13];
    obi_pg_insert_params(j, b, v, len, fmt);
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_INSERT, NULL, 13, v, len, fmt, &r);
    if (!rc && strcmp(PQcmdTuples(r), "1") != 0)
        rc = STORE_EXISTS; /* G3: another node committed the key first */
    PQclear(r);
    if (rc || !j->terms)
        return rc;
    const char *tv[2] = {ID_PARAM(&j->id), j->terms};
    return obi_pgc_defer(&s->w, W_TERMS, 2, tv, (const int[]){16, 0}, (const int[]){1, 0}, PQ_ANY);
}

static int pg_find_unique(store *base, const char *key, ob_id *id)
{
    pg_store *s = (pg_store *)base;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_FIND_UNIQUE, NULL, 1, &key, NULL, NULL, &r);
    if (!rc && PQntuples(r) == 0)
        rc = OB_ENOTFOUND;
    if (!rc)
        obi_pgv_id(r, 0, 0, id);
    PQclear(r);
    return rc;
}

static int held_cmp(const void *a, const void *b)
{
    return memcmp(((const held *)a)->id.b, ((const held *)b)->id.b, 16);
}

static held *held_find(pg_store *s, const ob_id *id)
{
    held key = {.id = *id};
    return s->nheld ? bsearch(&key, s->held, (size_t)s->nheld, sizeof key, held_cmp) : NULL;
}

static int pg_prefetch(store *base, const ob_id *ids, int n)
{
    pg_store *s = (pg_store *)base;
    if (n <= 0)
        return 0;
    /* A uuid[] literal: {8-4-4-4-12,...} */
    char *arr = malloc((size_t)n * 37 + 3);
    if (!arr)
        return OB_ENOMEM;
    char *p = arr;
    *p++ = '{';
    for (int i = 0; i < n; i++) {
        ob_id_format(&ids[i], p);
        p += OB_ID_STRLEN;
        *p++ = i + 1 < n ? ',' : '}';
    }
    *p = '\0';
    const char *v = arr;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_PREFETCH, NULL, 1, &v, NULL, NULL, &r);
    free(arr);
    if (rc)
        return rc;
    int nr = PQntuples(r);
    if (nr > s->heldcap) {
        held *h = realloc(s->held, (size_t)nr * sizeof *h);
        if (!h) {
            PQclear(r);
            return OB_ENOMEM;
        }
        s->held = h;
        s->heldcap = nr;
    }
    for (int i = 0; i < nr; i++)
        row_from(r, i, &s->held[i].row, &s->held[i].id);
    s->nheld = nr;
    qsort(s->held, (size_t)nr, sizeof *s->held, held_cmp);
    PQclear(r);
    return 0;
}

static int pg_load(store *base, const ob_id *id, store_row *row)
{
    pg_store *s = (pg_store *)base;
    held *h = held_find(s, id);
    if (h) {
        *row = h->row;
        return 0;
    }
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_LOAD, NULL, 1, (const char *[]){ID_PARAM(id)}, id_len_1,
                      id_fmt_1, &r);
    if (!rc && PQntuples(r) == 0)
        rc = OB_ENOTFOUND;
    if (!rc) {
        ob_id got;
        row_from(r, 0, row, &got);
    }
    PQclear(r);
    return rc;
}

static int pg_update(store *base, const store_change *c)
{
    pg_store *s = (pg_store *)base;
    pgnum b[8];
    const char *v[10] = {
        ID_PARAM(&c->id), obi_pg_i64(&b[0], c->from), obi_pg_i64(&b[1], c->to),
        obi_pg_i64(&b[2], c->attempt), obi_pg_i64(&b[3], c->max_attempts), obi_pg_i64(&b[4], c->run_at),
        c->finished_at ? obi_pg_i64(&b[5], c->finished_at) : NULL, c->cancel_requested ? "t" : "f",
        c->result, obi_pg_i64(&b[6], c->from_attempt),
    };
    int len[10] = {16}, fmt[10] = {1};
    held *h = held_find(s, &c->id);
    int rc;
    if (h) { /* locked by this batch: cannot miss, need not be waited for */
        rc = obi_pg_gather_update(s, c);
        h->row.state = c->to;
        h->row.attempt = c->attempt;
        h->row.max_attempts = c->max_attempts;
        h->row.run_at = c->run_at;
        h->row.cancel_requested = c->cancel_requested;
    } else {
        PGresult *r;
        rc = obi_pgc_call(&s->w, W_UPDATE, NULL, 10, v, len, fmt, &r);
        if (!rc && strcmp(PQcmdTuples(r), "1") != 0)
            rc = OB_ESTATE;
        PQclear(r);
    }
    if (rc || !c->error)
        return rc;
    const char *ve[4] = {ID_PARAM(&c->id), obi_pg_i64(&b[0], c->error_attempt),
                         obi_pg_i64(&b[1], c->now), c->error};
    int le[4] = {16}, fe[4] = {1};
    if ((rc = obi_pgc_defer(&s->w, W_ADD_ERROR, 4, ve, le, fe, PQ_ANY)))
        return rc;
    ve[1] = obi_pg_i64(&b[2], c->error_attempt - c->errors_kept);
    return obi_pgc_defer(&s->w, W_TRIM_ERRORS, 2, ve, le, fe, PQ_ANY);
}

/* A lease that no longer exists needs no moving: the answer is not needed
 * (the engine ignores OB_ESTATE here), so the statement is not waited for. */
static int pg_extend(store *base, const ob_id *id, int attempt, int64_t lease_until)
{
    pg_store *s = (pg_store *)base;
    pgnum b[2];
    const char *v[3] = {ID_PARAM(id), obi_pg_i64(&b[0], attempt), obi_pg_i64(&b[1], lease_until)};
    int len[3] = {16}, fmt[3] = {1};
    return obi_pgc_defer(&s->w, W_EXTEND, 3, v, len, fmt, PQ_ANY);
}

static int pg_claim(store *base, const store_claim *c, ob_job **jobs, int *n)
{
    pg_store *s = (pg_store *)base;
    *n = 0;
    if (c->nparts > 0 || c->main_off)
        return obi_pg_claim_parts(s, c, jobs, n);
    pgnum b[3];
    char *qa = NULL;
    const char *v[5] = {obi_pg_i64(&b[0], c->now), obi_pg_i64(&b[1], c->lease_grace_ms),
                        ID_PARAM(&s->node.id), obi_pg_i64(&b[2], c->limit), NULL};
    int len[5] = {0, 0, 16}, fmt[5] = {0, 0, 1};
    int stmt = W_CLAIM, np = 4;
    if (c->nqueues == 1) {
        stmt = W_CLAIM_QUEUE, v[4] = c->queues[0], np = 5;
    } else if (c->nqueues > 1) {
        if (!(qa = obi_pg_queue_array(c->queues, c->nqueues)))
            return OB_ENOMEM;
        stmt = W_CLAIM_QUEUES, v[4] = qa, np = 5;
    }
    PGresult *r;
    int rc = obi_pgc_call(&s->w, stmt, NULL, np, v, len, fmt, &r);
    free(qa);
    return rc ? rc : obi_pg_take_claimed(r, c->limit, jobs, n);
}

static int pg_promote(store *base, int64_t now, store_moved *out, int max, int *n)
{
    pg_store *s = (pg_store *)base;
    pgnum b[2];
    const char *v[2] = {obi_pg_i64(&b[0], now), obi_pg_i64(&b[1], max)};
    PGresult *r;
    *n = 0;
    int rc = obi_pgc_call(&s->w, W_PROMOTE, NULL, 2, v, NULL, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        store_moved *m = &out[(*n)++];
        obi_pgv_id(r, i, 0, &m->id);
        m->from = (ob_state)obi_pgv_int(r, i, 1);
        m->attempt = (int)obi_pgv_int(r, i, 2);
        snprintf(m->kind, sizeof m->kind, "%s", obi_pgv_str(r, i, 3, NULL));
        snprintf(m->queue, sizeof m->queue, "%s", obi_pgv_str(r, i, 4, NULL));
    }
    PQclear(r);
    return 0;
}

static int pg_next_due(store *base, int64_t *due)
{
    pg_store *s = (pg_store *)base;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_NEXT_DUE, NULL, 0, NULL, NULL, NULL, &r);
    if (!rc)
        *due = obi_pgv_null(r, 0, 0) ? INT64_MAX : obi_pgv_int(r, 0, 0);
    PQclear(r);
    return rc;
}

/* G2: the chore lock, once per transaction. 1 if this batch may run them. */
static int chore_lock(pg_store *s)
{
    if (s->chore_lock >= 0)
        return s->chore_lock;
    pgnum b[2];
    const char *v[2] = {obi_pg_i64(&b[0], PG_LOCK_CHORE), obi_pg_i64(&b[1], s->node.lock_key)};
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_CHORE_LOCK, NULL, 2, v, NULL, NULL, &r);
    if (rc)
        return rc;
    s->chore_lock = obi_pgv_int(r, 0, 0) != 0;
    PQclear(r);
    return s->chore_lock;
}

/* Remove the rows of dead nodes none of whose jobs still runs (G1). */
static int bury_nodes(pg_store *s)
{
    pgnum b;
    const char *v = obi_pg_i64(&b, s->o.node_dead_ms);
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_BURY_NODES, NULL, 1, &v, NULL, NULL, &r);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        ob_id id;
        char ids[OB_ID_STRLEN + 1];
        obi_pgv_id(r, i, 0, &id);
        OB_WARN("postgres: node %s (%s, pid %d) stopped heartbeating: declared dead",
                ob_id_format(&id, ids), obi_pgv_str(r, i, 1, NULL), (int)obi_pgv_int(r, i, 2));
    }
    PQclear(r);
    return rc;
}

static int pg_expired(store *base, int64_t now, bool all, store_lease *out, int max, int *n)
{
    pg_store *s = (pg_store *)base;
    (void)all; /* shared: nothing found at open is known to be orphaned */
    *n = 0;
    int rc = chore_lock(s);
    if (rc <= 0)
        return rc;
    /* A leader judges other nodes only once its own connection has been up
     * for a dead interval: after an outage (a database restart), the others
     * need that long to heartbeat again, and must not be declared dead for
     * the database's silence. A takeover by a node that was connected all
     * along judges at once. */
    bool judge = obi_mono_us() / 1000 - atomic_load(&s->node.up_since) >= s->o.node_dead_ms;
    pgnum b[3];
    const char *v[4] = {obi_pg_i64(&b[0], now), obi_pg_i64(&b[1], s->o.node_dead_ms),
                        obi_pg_i64(&b[2], max), judge ? "t" : "f"};
    PGresult *r;
    if ((rc = obi_pgc_call(&s->w, W_EXPIRED, NULL, 4, v, NULL, NULL, &r)))
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        obi_pgv_id(r, i, 0, &out[*n].id);
        out[*n].attempt = (int)obi_pgv_int(r, i, 1);
        (*n)++;
    }
    PQclear(r);
    return *n < max && judge ? bury_nodes(s) : 0;
}

static int pg_prune(store *base, int64_t before, int limit, store_gone_fn gone, void *arg,
                    int *n)
{
    pg_store *s = (pg_store *)base;
    *n = 0;
    int rc = chore_lock(s);
    if (rc <= 0)
        return rc;
    if ((rc = obi_pg_count_fold(s)))
        return rc;
    pgnum b[2];
    const char *v[2] = {obi_pg_i64(&b[0], before), obi_pg_i64(&b[1], limit)};
    PGresult *r;
    if ((rc = obi_pgc_call(&s->w, W_PRUNE, NULL, 2, v, NULL, NULL, &r)))
        return rc;
    *n = PQntuples(r);
    for (int i = 0; i < *n; i++)
        gone(arg, obi_pgv_str(r, i, 0, NULL), obi_pgv_str(r, i, 1, NULL),
             (ob_state)obi_pgv_int(r, i, 2));
    PQclear(r);
    return 0;
}

static int pg_count_unfinished(store *base, int64_t *n)
{
    pg_store *s = (pg_store *)base;
    int rc = obi_pgc_ready(&s->w);
    PGresult *r;
    if (!rc)
        rc = obi_pgc_call(&s->w, W_COUNT_UNFINISHED, NULL, 0, NULL, NULL, NULL, &r);
    if (rc)
        return rc;
    *n = obi_pgv_int(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_announce(store *base, int64_t due)
{
    return obi_pg_note_work((pg_store *)base, due);
}

static int pg_announce_finals(store *base, const store_final *f, int n)
{
    return obi_pg_note_finals((pg_store *)base, f, n);
}

static bool pg_external(store *base)
{
    (void)base;
    return true; /* other nodes write all the time */
}

static bool pg_leader(store *base) { return atomic_load(&((pg_store *)base)->node.leader); }

static int pg_health(store *base)
{
    pg_store *s = (pg_store *)base;
    int64_t ok = atomic_load(&s->node.beat_ok_at);
    /* Two heartbeats missed: the database is not answering this node. */
    return obi_mono_us() / 1000 - ok > 2 * s->node.beat_ms + 1000 ? OB_EUNAVAIL : 0;
}

/* ---- transactional enqueue ---- */

static const store_ops pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .insert = pg_insert,
    .find_unique = pg_find_unique,
    .load = pg_load,
    .update = pg_update,
    .extend = pg_extend,
    .claim = pg_claim,
    .queues_lock = obi_pg_queues_lock,
    .queue_load = obi_pg_queue_load,
    .queue_save = obi_pg_queue_save,
    .park = obi_pg_park,
    .parked_orphans = obi_pg_parked_orphans,
    .queue_delete = obi_pg_queue_delete,
    .keys_waiting = obi_pg_keys_waiting,
    .keys_lock = obi_pg_keys_lock,
    .key_save = obi_pg_key_save,
    .keys_prune = obi_pg_keys_prune,
    .schedule_load = obi_pg_schedule_load,
    .schedule_save = obi_pg_schedule_save,
    .schedule_delete = obi_pg_schedule_delete,
    .schedules_due = obi_pg_schedules_due,
    .schedules_next = obi_pg_schedules_next,
    .record_save = obi_pg_record_save,
    .record_delete = obi_pg_record_delete,
    .promote = pg_promote,
    .next_due = pg_next_due,
    .expired = pg_expired,
    .prune = pg_prune,
    .count_add = obi_pg_count_add,
    .count_unfinished = pg_count_unfinished,
    .prefetch = pg_prefetch,
    .announce = pg_announce,
    .announce_finals = pg_announce_finals,
    .leader = pg_leader,
    .health = pg_health,
    .external = pg_external,
    .insert_tx = obi_pg_insert_tx,
    .get = obi_pg_get,
    .list = obi_pg_list,
    .counts = obi_pg_counts,
    .counts_scan = obi_pg_counts_scan,
    .oldest_due = obi_pg_oldest_due,
    .nodes = obi_pg_nodes,
    .queues = obi_pg_queues,
    .keys_held = obi_pg_keys_held,
    .schedules = obi_pg_schedules,
    .records_get = obi_pg_records_get,
    .records = obi_pg_records,
};
