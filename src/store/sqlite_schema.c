/*
 * sqlite_schema.c - the embedded store's schema, and the migrations that
 * build it.
 *
 * Schema (PRAGMA user_version; application_id 'OBOX'), built by the numbered
 * migrations below, each applied once in order (a new store gets them all
 * in one transaction; a store from an older outbox gets the ones it lacks;
 * a store from a newer outbox is refused with OB_ESCHEMA):
 *   1  the tables and indexes below
 *   2  jobs.meta: text the engine keeps for its user (callback URL, request
 *      fingerprint) and does not interpret
 *   3  flow control: the queues table (a queue's settings and holds), the
 *      keys table (a rate key's count and hold), the schedules table; jobs.parked (F3 in
 *      store.h) and the claim indexes partial on it; jobs.rate_key ('':
 *      none); jobs_parked and jobs_parked_key, the claim indexes of limited
 *      queues; jobs_lease carries the queue, so that counting a queue's
 *      running jobs reads the index alone
 *   jobs      one row per job; `seq` (rowid) is the insertion order, `id`
 *             the public UUIDv7 (same order, see base/id.c)
 *   payloads  the payload bytes, apart so that state changes do not rewrite
 *             large payloads
 *   errors    one row per failed attempt, the newest `errors_kept` kept
 *   queues    one row per queue that is paused, limited or held (store_queue)
 *   keys      one row per rate key being counted or held (store_key)
 *   schedules one row per cron schedule (store_schedule)
 *   records   one row per record (ob_record; migration 5), keyed (set, key)
 * Indexes are partial where a state selects the rows, so each stays as
 * small as the set it serves:
 *   jobs_claim(priority DESC, run_at) WHERE available, not parked
 *                                                        - claims, any queue
 *   jobs_claim_queue(queue, priority DESC, run_at) ...  - claims, one queue
 *   jobs_parked(queue, priority DESC, run_at) WHERE available, parked
 *                                                        - claims, limited queues
 *   jobs_parked_key(queue, rate_key, priority DESC, run_at) ... - per key
 *   jobs_due(run_at) WHERE scheduled or retryable       - promotion, wake-up
 *   jobs_lease(lease_until, queue) WHERE running        - rescue, concurrency
 *   jobs_finished(finished_at) WHERE final              - pruning
 *   jobs_state(state, id)                                - listing, counting
 * Queries name their index (INDEXED BY) so that a claim is always an index
 * seek plus `limit` steps, however many jobs are queued.
 */
#include <stdio.h>

#include "store/sq.h"

/* Migration 1. Never edit a migration once released: add one. */
static const char schema_v1[] =
    "CREATE TABLE jobs("
    " seq INTEGER PRIMARY KEY,"
    " id BLOB NOT NULL,"
    " kind TEXT NOT NULL,"
    " queue TEXT NOT NULL,"
    " priority INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL,"
    " timeout_ms INTEGER NOT NULL,"
    " run_at INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " attempted_at INTEGER,"
    " finished_at INTEGER,"
    " lease_until INTEGER,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " unique_key TEXT,"
    " result TEXT);"
    "CREATE TABLE payloads(seq INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE errors(seq INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " at INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY(seq, attempt)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX jobs_id ON jobs(id);"
    "CREATE UNIQUE INDEX jobs_unique ON jobs(unique_key) WHERE unique_key IS NOT NULL;"
    "CREATE INDEX jobs_claim ON jobs(priority DESC, run_at) WHERE state = 2;"
    "CREATE INDEX jobs_claim_queue ON jobs(queue, priority DESC, run_at) WHERE state = 2;"
    "CREATE INDEX jobs_due ON jobs(run_at) WHERE state IN (1, 4);"
    "CREATE INDEX jobs_lease ON jobs(lease_until) WHERE state = 3;"
    "CREATE INDEX jobs_finished ON jobs(finished_at) WHERE state >= 5;"
    "CREATE INDEX jobs_state ON jobs(state, id);";

static const char *const migrations[SCHEMA_VERSION + 1] = {
    [1] = schema_v1,
    [2] = "ALTER TABLE jobs ADD COLUMN meta TEXT;",
    [3] = "CREATE TABLE queues(name TEXT PRIMARY KEY, paused INTEGER NOT NULL,"
          " concurrency INTEGER NOT NULL, rate_limit INTEGER NOT NULL,"
          " rate_period_ms INTEGER NOT NULL, rate_window INTEGER NOT NULL,"
          " rate_used INTEGER NOT NULL, key_rate_limit INTEGER NOT NULL,"
          " key_rate_period_ms INTEGER NOT NULL, hold_until INTEGER NOT NULL,"
          " key_hold_until INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;"
          "CREATE TABLE keys(queue TEXT NOT NULL, key TEXT NOT NULL,"
          " rate_window INTEGER NOT NULL, rate_used INTEGER NOT NULL,"
          " held_until INTEGER NOT NULL, PRIMARY KEY(queue, key)) WITHOUT ROWID;"
          "ALTER TABLE jobs ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;"
          "ALTER TABLE jobs ADD COLUMN rate_key TEXT NOT NULL DEFAULT '';"
          "CREATE INDEX jobs_parked_key ON jobs(queue, rate_key, priority DESC, run_at)"
          " WHERE state = 2 AND parked = 1;"
          "CREATE TABLE schedules(name TEXT PRIMARY KEY, cron TEXT NOT NULL,"
          " timezone TEXT NOT NULL, kind TEXT NOT NULL, queue TEXT NOT NULL,"
          " priority INTEGER NOT NULL, payload BLOB NOT NULL, max_attempts INTEGER NOT NULL,"
          " timeout_ms INTEGER NOT NULL, meta TEXT, rate_key TEXT NOT NULL,"
          " missed INTEGER NOT NULL, paused INTEGER NOT NULL, next_at INTEGER NOT NULL,"
          " last_at INTEGER NOT NULL, last_job BLOB, updated_at INTEGER NOT NULL) WITHOUT ROWID;"
          "DROP INDEX jobs_claim; DROP INDEX jobs_claim_queue; DROP INDEX jobs_lease;"
          "CREATE INDEX jobs_claim ON jobs(priority DESC, run_at) WHERE state = 2 AND parked = 0;"
          "CREATE INDEX jobs_claim_queue ON jobs(queue, priority DESC, run_at)"
          " WHERE state = 2 AND parked = 0;"
          "CREATE INDEX jobs_parked ON jobs(queue, priority DESC, run_at)"
          " WHERE state = 2 AND parked = 1;"
          "CREATE INDEX jobs_lease ON jobs(lease_until, queue) WHERE state = 3;",
    /* N1: the counters, counted once here, kept by every change after. */
    [4] = "CREATE TABLE counts(queue TEXT NOT NULL, kind TEXT NOT NULL, state INTEGER NOT NULL,"
          " n INTEGER NOT NULL, PRIMARY KEY(queue, kind, state)) WITHOUT ROWID;"
          "INSERT INTO counts SELECT queue, kind, state, count(*) FROM jobs GROUP BY 1, 2, 3;"
          /* what a job can be found by (ob_new_job.terms) */
          "CREATE TABLE terms(term TEXT NOT NULL, id BLOB NOT NULL, PRIMARY KEY(term, id))"
          " WITHOUT ROWID;"
          "CREATE INDEX terms_id ON terms(id);"
          /* each failed attempt's start, beside its end: its duration */
          "ALTER TABLE errors ADD COLUMN started_at INTEGER NOT NULL DEFAULT 0;",
    /* records (ob_record): keyed documents beside the jobs */
    [5] = "CREATE TABLE records(set_name TEXT NOT NULL, key TEXT NOT NULL, tag TEXT NOT NULL,"
          " value TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
          " PRIMARY KEY(set_name, key)) WITHOUT ROWID;"
          "CREATE INDEX records_tag ON records(set_name, tag, key);",
};

int obi_sq_query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(db, rc, sql);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : obi_sq_fail(db, rc, sql);
}

/* Create the schema in a new file, bring an older one up to date, or
 * refuse a file that is not ours or is newer than we are. */
int obi_sq_check_schema(sqlite_store *s)
{
    int64_t app, ver, ntables;
    int rc;
    if ((rc = obi_sq_query_int(s->w, "PRAGMA application_id", &app)) ||
        (rc = obi_sq_query_int(s->w, "PRAGMA user_version", &ver)) ||
        (rc = obi_sq_query_int(s->w, "SELECT count(*) FROM sqlite_schema", &ntables)))
        return rc;
    if (app == APPLICATION_ID && ver == SCHEMA_VERSION)
        return 0;
    if (app == APPLICATION_ID && ver > SCHEMA_VERSION) {
        OB_ERROR("sqlite: %s has schema version %lld; this outbox knows %d: upgrade outbox",
                 s->path, (long long)ver, SCHEMA_VERSION);
        return OB_ESCHEMA;
    }
    if (app != APPLICATION_ID && (app != 0 || ntables != 0)) {
        OB_ERROR("sqlite: %s is not an outbox store (it holds other data)", s->path);
        return OB_ESTORE;
    }
    if (app != APPLICATION_ID)
        ver = 0; /* a new, empty file */
    if ((rc = obi_sq_exec(s->w, "BEGIN IMMEDIATE")))
        return rc;
    for (int64_t v = ver + 1; v <= SCHEMA_VERSION && !rc; v++)
        rc = obi_sq_exec(s->w, migrations[v]);
    char set[128];
    snprintf(set, sizeof set, "PRAGMA application_id=%d; PRAGMA user_version=%d; COMMIT;",
             APPLICATION_ID, SCHEMA_VERSION);
    if (!rc)
        rc = obi_sq_exec(s->w, set);
    if (rc) {
        obi_sq_exec(s->w, "ROLLBACK");
        return rc;
    }
    if (ver)
        OB_INFO("sqlite: %s migrated from schema version %lld to %d", s->path, (long long)ver,
                SCHEMA_VERSION);
    return 0;
}

int obi_store_sqlite_migrate(const char *path, int *had, int *now)
{
    sqlite3 *db = NULL;
    int64_t v = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
        obi_sq_query_int(db, "PRAGMA user_version", &v); /* a new file: 0 */
    sqlite3_close(db);
    *had = *now = (int)v;
    store *s;
    int rc = obi_store_sqlite_open(path, &s); /* migrates, or refuses a newer file */
    if (rc)
        return rc;
    s->ops->close(s);
    *now = SCHEMA_VERSION;
    return 0;
}
