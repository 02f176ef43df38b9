/*
 * pg_schema.c - the PostgreSQL store's tables and their migrations.
 *
 * Tables live in the connection's current schema (set one with the URL's
 * options=-csearch_path=NAME), all prefixed outbox_ so that they sit beside
 * an application's own tables: transactional enqueue (ob_enqueue_pg) wants
 * them in the application's database.
 *
 *   outbox_schema  one row: the version of the migrations applied
 *   outbox_jobs    one row per job, payload included (PostgreSQL moves a
 *                  large one out of line by itself, and an update that
 *                  does not touch it does not copy it)
 *   outbox_errors  one row per failed attempt, the newest errors_kept kept
 *   outbox_nodes   one row per live outbox process and its heartbeat
 *   outbox_queues  one row per queue that is paused, limited or held
 *                  (version 2; with outbox_jobs.parked, F3 in store.h, the
 *                  claim indexes partial on it, and outbox_jobs.rate_key)
 *   outbox_keys    one row per rate key being counted or held (version 2)
 *   outbox_schedules  one row per cron schedule (version 2)
 *   outbox_records one row per record (ob_record; version 4)
 *
 * Times are milliseconds since the epoch (bigint), as the engine keeps them;
 * only heartbeats use the database's clock. Indexes are partial where a
 * state selects the rows, as in the SQLite store (see sqlite.c).
 *
 * Migrations are numbered and applied in order, each once, in one
 * transaction under a session advisory lock taken before it begins, so
 * that nodes starting together migrate once and the others see the result. Never edit a released migration: add one. A schema newer
 * than this outbox is refused (OB_ESCHEMA): an old node must not write to
 * tables whose meaning it does not know.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

static const char migration_1[] =
    "CREATE TABLE outbox_jobs("
    " id uuid PRIMARY KEY,"
    " kind text NOT NULL,"
    " queue text NOT NULL,"
    " priority integer NOT NULL,"
    " state smallint NOT NULL,"
    " attempt integer NOT NULL DEFAULT 0,"
    " max_attempts integer NOT NULL,"
    " timeout_ms bigint NOT NULL,"
    " run_at bigint NOT NULL,"
    " created_at bigint NOT NULL,"
    " attempted_at bigint,"
    " finished_at bigint,"
    " lease_until bigint,"
    " node uuid,"
    " cancel_requested boolean NOT NULL DEFAULT false,"
    " unique_key text,"
    " result text,"
    " meta text,"
    " payload bytea NOT NULL);"
    "CREATE TABLE outbox_errors(id uuid NOT NULL, attempt integer NOT NULL,"
    " at bigint NOT NULL, message text NOT NULL, PRIMARY KEY(id, attempt));"
    "CREATE TABLE outbox_nodes(id uuid PRIMARY KEY, host text NOT NULL, pid integer NOT NULL,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " heartbeat_at timestamptz NOT NULL DEFAULT now());"
    "CREATE UNIQUE INDEX outbox_jobs_unique ON outbox_jobs(unique_key)"
    " WHERE unique_key IS NOT NULL;"
    "CREATE INDEX outbox_jobs_claim ON outbox_jobs(priority DESC, run_at, id) WHERE state = 2;"
    "CREATE INDEX outbox_jobs_claim_queue ON outbox_jobs(queue, priority DESC, run_at, id)"
    " WHERE state = 2;"
    "CREATE INDEX outbox_jobs_due ON outbox_jobs(run_at) WHERE state IN (1, 4);"
    "CREATE INDEX outbox_jobs_running ON outbox_jobs(lease_until) WHERE state = 3;"
    "CREATE INDEX outbox_jobs_finished ON outbox_jobs(finished_at) WHERE state >= 5;"
    "CREATE INDEX outbox_jobs_state ON outbox_jobs(state, id);";

static const char migration_2[] =
    "CREATE TABLE outbox_queues(name text PRIMARY KEY, paused boolean NOT NULL,"
    " concurrency integer NOT NULL, rate_limit integer NOT NULL, rate_period_ms bigint NOT NULL,"
    " rate_window bigint NOT NULL, rate_used integer NOT NULL, key_rate_limit integer NOT NULL,"
    " key_rate_period_ms bigint NOT NULL, hold_until bigint NOT NULL,"
    " key_hold_until bigint NOT NULL, updated_at bigint NOT NULL);"
    "CREATE TABLE outbox_keys(queue text NOT NULL, key text NOT NULL,"
    " rate_window bigint NOT NULL, rate_used integer NOT NULL, held_until bigint NOT NULL,"
    " PRIMARY KEY(queue, key));"
    "ALTER TABLE outbox_jobs ADD COLUMN parked boolean NOT NULL DEFAULT false;"
    "ALTER TABLE outbox_jobs ADD COLUMN rate_key text NOT NULL DEFAULT '';"
    "CREATE INDEX outbox_jobs_parked_key ON outbox_jobs(queue, rate_key, priority DESC, run_at,"
    " id) WHERE state = 2 AND parked;"
    "CREATE TABLE outbox_schedules(name text PRIMARY KEY, cron text NOT NULL,"
    " timezone text NOT NULL, kind text NOT NULL, queue text NOT NULL, priority integer NOT NULL,"
    " payload bytea NOT NULL, max_attempts integer NOT NULL, timeout_ms bigint NOT NULL,"
    " meta text, rate_key text NOT NULL, missed smallint NOT NULL, paused boolean NOT NULL,"
    " next_at bigint NOT NULL, last_at bigint NOT NULL, last_job uuid,"
    " updated_at bigint NOT NULL);"
    "DROP INDEX outbox_jobs_claim; DROP INDEX outbox_jobs_claim_queue;"
    "CREATE INDEX outbox_jobs_claim ON outbox_jobs(priority DESC, run_at, id)"
    " WHERE state = 2 AND NOT parked;"
    "CREATE INDEX outbox_jobs_claim_queue ON outbox_jobs(queue, priority DESC, run_at, id)"
    " WHERE state = 2 AND NOT parked;"
    "CREATE INDEX outbox_jobs_parked ON outbox_jobs(queue, priority DESC, run_at, id)"
    " WHERE state = 2 AND parked;";

/* N1: the counters, one row a node and group (no two nodes write one
 * row); counted once here (node 'migrated': the leader folds it). */
static const char migration_3[] =
    "ALTER TABLE outbox_nodes ADD COLUMN backend integer;" /* who holds the leader lock */
    "CREATE TABLE outbox_counts(node text NOT NULL, queue text NOT NULL, kind text NOT NULL,"
    " state smallint NOT NULL, n bigint NOT NULL, PRIMARY KEY(node, queue, kind, state));"
    "INSERT INTO outbox_counts SELECT 'migrated', queue, kind, state, count(*)"
    " FROM outbox_jobs GROUP BY 2, 3, 4;"
    /* what a job can be found by (ob_new_job.terms) */
    "CREATE TABLE outbox_terms(term text NOT NULL, id uuid NOT NULL, PRIMARY KEY(term, id));"
    "CREATE INDEX outbox_terms_id ON outbox_terms(id);"
    /* each failed attempt's start, beside its end: its duration */
    "ALTER TABLE outbox_errors ADD COLUMN started_at bigint NOT NULL DEFAULT 0;";

/* Records (ob_record): keyed documents beside the jobs; keys bytewise. */
static const char migration_4[] =
    "CREATE TABLE outbox_records(set_name text NOT NULL, key text COLLATE \"C\" NOT NULL,"
    " tag text NOT NULL, value text NOT NULL, created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL, PRIMARY KEY(set_name, key));"
    "CREATE INDEX outbox_records_tag ON outbox_records(set_name, tag, key);";

static const char *const migrations[PG_SCHEMA_VERSION + 1] = {
    [1] = migration_1,
    [2] = migration_2,
    [3] = migration_3,
    [4] = migration_4,
};

static int exec_ok(PGconn *c, const char *sql, PGresult **keep)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        OB_ERROR("postgres: %.80s...: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        return PQstatus(c) == CONNECTION_OK ? OB_ESTORE : OB_EUNAVAIL;
    }
    if (keep)
        *keep = r;
    else
        PQclear(r);
    return 0;
}

/* The version recorded in this schema; 0 if there is no outbox table. */
static int read_version(PGconn *c, int *ver)
{
    PGresult *r;
    int rc = exec_ok(c, "SELECT to_regclass('outbox_schema') IS NOT NULL", &r);
    if (rc)
        return rc;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    *ver = 0;
    if (!exists)
        return 0;
    if ((rc = exec_ok(c, "SELECT max(version) FROM outbox_schema", &r)))
        return rc;
    *ver = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static int newer(int ver)
{
    OB_ERROR("postgres: the database has outbox schema version %d; this outbox knows %d:"
             " upgrade outbox", ver, PG_SCHEMA_VERSION);
    return OB_ESCHEMA;
}

int obi_pg_schema_check(PGconn *c, int *from)
{
    int ver, rc;
    if ((rc = read_version(c, &ver)))
        return rc;
    *from = ver;
    if (ver == PG_SCHEMA_VERSION)
        return 0;
    if (ver > PG_SCHEMA_VERSION)
        return newer(ver);
    /* A session lock, taken before the transaction: the transaction that
     * starts after the wait sees the tables another node committed
     * meanwhile. (Waiting inside a transaction for a transaction-level lock
     * does not: the backend keeps the catalog entries it looked up before
     * the wait, "no outbox_schema" among them, and CREATE TABLE then meets
     * the other node's table.) */
    char lock[160], unlock[160];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%d, hashtext(current_schema()))",
             PG_LOCK_MIGRATE);
    snprintf(unlock, sizeof unlock,
             "SELECT pg_advisory_unlock(%d, hashtext(current_schema()))", PG_LOCK_MIGRATE);
    if ((rc = exec_ok(c, lock, NULL)))
        return rc;
    if (!(rc = exec_ok(c, "BEGIN", NULL)) && !(rc = read_version(c, &ver)) && ver == 0)
        rc = exec_ok(c, "CREATE TABLE outbox_schema(version integer NOT NULL)", NULL);
    for (int v = ver + 1; !rc && v <= PG_SCHEMA_VERSION; v++) {
        char set[96];
        snprintf(set, sizeof set, "INSERT INTO outbox_schema VALUES (%d)", v);
        if (!(rc = exec_ok(c, migrations[v], NULL)))
            rc = exec_ok(c, set, NULL);
    }
    if (!rc && ver > PG_SCHEMA_VERSION) /* a newer node migrated while we waited */
        rc = newer(ver);
    if (!rc)
        rc = exec_ok(c, "COMMIT", NULL);
    if (rc)
        PQclear(PQexec(c, "ROLLBACK"));
    PQclear(PQexec(c, unlock)); /* or the session's end releases it */
    if (rc)
        return rc;
    *from = ver;
    if (ver < PG_SCHEMA_VERSION)
        OB_INFO("postgres: outbox schema %s version %d", ver ? "migrated to" : "created at",
                PG_SCHEMA_VERSION);
    return 0;
}

int obi_store_pg_probe(const char *url, ob_store_info *out)
{
    *out = (ob_store_info){.known = PG_SCHEMA_VERSION};
    PGconn *c = PQconnectdb(url);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        OB_ERROR("postgres: cannot connect: %s", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return OB_EUNAVAIL;
    }
    PGresult *r = NULL;
    int rc = read_version(c, &out->version);
    out->exists = out->version > 0;
    if (!rc && out->version >= 3 &&
        !(rc = exec_ok(c, "SELECT (SELECT count(*) FROM outbox_nodes WHERE heartbeat_at >"
                          " now() - interval '30 seconds'),"
                          " (SELECT coalesce(sum(n), 0) FROM outbox_counts)", &r))) {
        out->live_nodes = atoi(PQgetvalue(r, 0, 0));
        out->jobs = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}
