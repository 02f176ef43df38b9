/*
 * store_copy.c - ob_store_copy: an embedded store's jobs, settings and
 * schedules moved into PostgreSQL (outboxd migrate --from --to), for the
 * day one machine is not enough.
 *
 * How: the source is locked (its one-process lock: no daemon may run on it
 * meanwhile) and read in one snapshot, jobs in the order of their rowid;
 * the target gets them in batches, each one transaction:
 *
 *   COPY the batch's rows into temporary tables (mv_*), then
 *   INSERT ... SELECT FROM mv_* ON CONFLICT DO NOTHING into the real ones,
 *   counting what was inserted into outbox_counts (node 'migrated': the
 *   leader folds it into its own row, N1), and a job's errors and search
 *   terms only when the job itself is in the target.
 *
 * A run that stops (killed, connection lost) has committed whole batches;
 * the next run finds those jobs present and leaves them (invariant X1:
 * running it again changes nothing that is there, and adds what is not —
 * idempotent and resumable). A job whose unique key already names another
 * job in the target is not copied: counted as a conflict and reported.
 *
 * Values go through COPY's text format: NULL is \N; text escapes backslash,
 * newline, carriage return and tab; a 16-byte id is 32 hex digits (uuid
 * input takes them without dashes); a payload is \\x and hex (bytea).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store/sq.h"

#define BATCH_JOBS 2000
#define BATCH_BYTES (32u << 20)

/* A table's rows, from SQLite to PostgreSQL. `select` yields the columns
 * of `cols` in order, each typed by a letter of `types` ('u': a 16-byte id
 * as uuid, 'b': bytes as bytea, 'v': a number or text as it is). For the
 * job-keyed tables, ?1 and ?2 bound the batch's rowids (lo, hi]. */
typedef struct table {
    const char *name, *select, *cols, *types, *insert;
} table;

#define JOB_COPY_COLS                                                                   \
    "id, kind, queue, priority, state, attempt, max_attempts, timeout_ms, run_at, "     \
    "created_at, attempted_at, finished_at, lease_until, cancel_requested, unique_key, " \
    "result, meta, payload, parked, rate_key"

/* The jobs: one batch a call, from rowid ?1, at most ?2; the first column
 * (the rowid) is the batch's key, not copied. */
static const table jobs_table = {
    "jobs",
    "SELECT j.seq, j.id, j.kind, j.queue, j.priority, j.state, j.attempt, j.max_attempts,"
    " j.timeout_ms, j.run_at, j.created_at, j.attempted_at, j.finished_at, j.lease_until,"
    " j.cancel_requested, j.unique_key, j.result, j.meta, p.data, j.parked, j.rate_key"
    " FROM jobs j JOIN payloads p ON p.seq = j.seq WHERE j.seq > ?1 ORDER BY j.seq LIMIT ?2",
    JOB_COPY_COLS, "uvvvvvvvvvvvvvvvvbvv",
    /* present: already there by id; the rest inserted or in conflict */
    "WITH present AS (SELECT count(*) AS n FROM mv_jobs m WHERE EXISTS"
    " (SELECT 1 FROM outbox_jobs j WHERE j.id = m.id)),"
    " ins AS (INSERT INTO outbox_jobs(" JOB_COPY_COLS ") SELECT " JOB_COPY_COLS
    " FROM mv_jobs ON CONFLICT DO NOTHING RETURNING queue, kind, state),"
    " c AS (INSERT INTO outbox_counts(node, queue, kind, state, n)"
    " SELECT 'migrated', queue, kind, state, count(*) FROM ins GROUP BY 2, 3, 4"
    " ON CONFLICT (node, queue, kind, state) DO UPDATE SET n = outbox_counts.n + excluded.n)"
    " SELECT (SELECT count(*) FROM ins), (SELECT n FROM present)",
};

static const table job_tables[] = {
    {"errors",
     "SELECT e.seq, j.id, e.attempt, e.at, e.message, e.started_at FROM errors e"
     " JOIN jobs j ON j.seq = e.seq WHERE e.seq > ?1 AND e.seq <= ?2",
     "id, attempt, at, message, started_at", "uvvvv",
     "INSERT INTO outbox_errors(id, attempt, at, message, started_at)"
     " SELECT m.id, m.attempt, m.at, m.message, m.started_at FROM mv_errors m"
     " WHERE EXISTS (SELECT 1 FROM outbox_jobs j WHERE j.id = m.id) ON CONFLICT DO NOTHING"},
    {"terms",
     "SELECT j.seq, t.term, t.id FROM jobs j JOIN terms t ON t.id = j.id"
     " WHERE j.seq > ?1 AND j.seq <= ?2",
     "term, id", "vu",
     "INSERT INTO outbox_terms(term, id) SELECT m.term, m.id FROM mv_terms m"
     " WHERE EXISTS (SELECT 1 FROM outbox_jobs j WHERE j.id = m.id) ON CONFLICT DO NOTHING"},
};

/* The settings: whole tables, before the jobs (a job's `parked` follows its
 * queue's row). The first column is a dummy key, as above. */
static const table settings_tables[] = {
    {"queues",
     "SELECT 0, name, paused, concurrency, rate_limit, rate_period_ms, rate_window, rate_used,"
     " key_rate_limit, key_rate_period_ms, hold_until, key_hold_until, updated_at FROM queues",
     "name, paused, concurrency, rate_limit, rate_period_ms, rate_window, rate_used,"
     " key_rate_limit, key_rate_period_ms, hold_until, key_hold_until, updated_at",
     "vvvvvvvvvvvv", NULL},
    {"keys",
     "SELECT 0, queue, key, rate_window, rate_used, held_until FROM keys",
     "queue, key, rate_window, rate_used, held_until", "vvvvv", NULL},
    {"schedules",
     "SELECT 0, name, cron, timezone, kind, queue, priority, payload, max_attempts, timeout_ms,"
     " meta, rate_key, missed, paused, next_at, last_at, last_job, updated_at FROM schedules",
     "name, cron, timezone, kind, queue, priority, payload, max_attempts, timeout_ms, meta,"
     " rate_key, missed, paused, next_at, last_at, last_job, updated_at",
     "vvvvvvbvvvvvvvvuv", NULL},
    {"records", "SELECT 0, set_name, key, tag, value, created_at, updated_at FROM records",
     "set_name, key, tag, value, created_at, updated_at", "vvvvvv", NULL},
};

typedef struct copier {
    sqlite3 *src;
    PGconn *dst;
    char *line;       /* one COPY line, grown as needed */
    size_t cap, len;
    ob_progress_fn fn;
    void *arg;
    ob_copy_stats *st;
    bool bad;         /* a value the target cannot take (logged) */
} copier;

/* ---- PostgreSQL ---- */

static int pg_fail(copier *c, PGresult *r, const char *what)
{
    OB_ERROR("migrate: postgres: %s: %s", what, r ? PQresultErrorMessage(r) : PQerrorMessage(c->dst));
    PQclear(r);
    return PQstatus(c->dst) == CONNECTION_OK ? OB_ESTORE : OB_EUNAVAIL;
}

/* Run sql; its result into *keep (may be NULL: cleared). */
static int pg_run(copier *c, const char *sql, PGresult **keep)
{
    PGresult *r = PQexec(c->dst, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        return pg_fail(c, r, sql);
    if (keep)
        *keep = r;
    else
        PQclear(r);
    return 0;
}

/* ---- one COPY line ---- */

static bool put(copier *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->line, cap);
        if (!p)
            return false;
        c->line = p;
        c->cap = cap;
    }
    memcpy(c->line + c->len, s, n);
    c->len += n;
    return true;
}

static bool put_hex(copier *c, const unsigned char *b, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char two[2] = {hex[b[i] >> 4], hex[b[i] & 15]};
        if (!put(c, two, 2))
            return false;
    }
    return true;
}

static bool put_text(copier *c, const unsigned char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\' ? "\\\\" : s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r"
                        : s[i] == '\t' ? "\\t" : NULL;
        if (!esc)
            continue;
        if (!put(c, (const char *)s + from, i - from) || !put(c, esc, 2))
            return false;
        from = i + 1;
    }
    return put(c, (const char *)s + from, n - from);
}

/* Column i (from 1: column 0 is the key) of the current row, typed t. */
static bool put_value(copier *c, sqlite3_stmt *st, int i, char t)
{
    int type = sqlite3_column_type(st, i);
    if (type == SQLITE_NULL)
        return put(c, "\\N", 2);
    if (t == 'u' || t == 'b') {
        const void *b = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        if (t == 'u' && n != 16) {
            OB_ERROR("migrate: a %d-byte id in the source (ids are 16)", (int)n);
            c->bad = true;
            return false;
        }
        return (t == 'u' || put(c, "\\\\x", 3)) && put_hex(c, b, n);
    }
    if (type == SQLITE_INTEGER) {
        char num[24];
        int n = snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_int64(st, i));
        return put(c, num, (size_t)n);
    }
    const unsigned char *s = sqlite3_column_text(st, i);
    return put_text(c, s, (size_t)sqlite3_column_bytes(st, i));
}

/* ---- a table's rows ---- */

/* Bind (lo, hi] (or lo and a row limit, for the jobs). */
static int bind_range(copier *c, sqlite3_stmt *st, int64_t lo, int64_t hi)
{
    sqlite3_reset(st);
    if (sqlite3_bind_parameter_count(st) >= 1 && sqlite3_bind_int64(st, 1, lo) != SQLITE_OK)
        return obi_sq_fail(c->src, sqlite3_errcode(c->src), "bind");
    if (sqlite3_bind_parameter_count(st) >= 2 && sqlite3_bind_int64(st, 2, hi) != SQLITE_OK)
        return obi_sq_fail(c->src, sqlite3_errcode(c->src), "bind");
    return 0;
}

/* COPY the rows of `st` (bound) into mv_NAME: all of them, or for the
 * jobs up to a batch's size; the last row's key in *last, the rows in
 * *rows. */
static int copy_rows(copier *c, const table *t, sqlite3_stmt *st, int64_t *last, int64_t *rows)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "COPY mv_%s(%s) FROM STDIN", t->name, t->cols);
    PGresult *r = PQexec(c->dst, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        return pg_fail(c, r, sql);
    PQclear(r);
    int rc = 0, step;
    size_t bytes = 0, ncols = strlen(t->types);
    *rows = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        c->len = 0;
        bool ok = true;
        for (size_t i = 0; ok && i < ncols; i++)
            ok = (i == 0 || put(c, "\t", 1)) && put_value(c, st, (int)i + 1, t->types[i]);
        if (!ok || !put(c, "\n", 1)) {
            rc = c->bad ? OB_ESTORE : OB_ENOMEM;
            break;
        }
        if (PQputCopyData(c->dst, c->line, (int)c->len) != 1) {
            rc = pg_fail(c, NULL, "COPY");
            break;
        }
        *last = sqlite3_column_int64(st, 0);
        bytes += c->len;
        if (++*rows >= BATCH_JOBS && t == &jobs_table) /* the LIMIT too */
            break;
        if (bytes >= BATCH_BYTES && t == &jobs_table)
            break;
    }
    if (!rc && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = obi_sq_fail(c->src, step, t->name);
    if (PQputCopyEnd(c->dst, rc ? "the source failed" : NULL) != 1 && !rc)
        rc = pg_fail(c, NULL, "COPY end");
    while ((r = PQgetResult(c->dst))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc)
            rc = pg_fail(c, r, sql);
        else
            PQclear(r);
    }
    return rc;
}

static int prepare(copier *c, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(c->src, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : obi_sq_fail(c->src, rc, sql);
}

/* A settings table, whole, in its own transaction: rows present kept. */
static int copy_settings(copier *c, const table *t, int64_t *copied)
{
    sqlite3_stmt *st;
    int64_t last, rows;
    PGresult *r = NULL;
    char ins[1024];
    snprintf(ins, sizeof ins, "INSERT INTO outbox_%s(%s) SELECT %s FROM mv_%s ON CONFLICT DO NOTHING",
             t->name, t->cols, t->cols, t->name);
    int rc = prepare(c, t->select, &st);
    if (rc)
        return rc;
    if (!(rc = pg_run(c, "BEGIN", NULL)) && !(rc = copy_rows(c, t, st, &last, &rows)) &&
        !(rc = pg_run(c, ins, &r))) {
        if (copied)
            *copied += strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        rc = pg_run(c, "COMMIT", NULL);
    }
    sqlite3_finalize(st);
    if (rc)
        PQclear(PQexec(c->dst, "ROLLBACK"));
    return rc;
}

/* One batch of jobs after rowid *lo, and their errors and terms: one
 * transaction. *lo moves to the batch's last rowid; *n gets its size. */
static int copy_batch(copier *c, sqlite3_stmt *jobs, sqlite3_stmt *const *per_job, int64_t *lo,
                      int64_t *n)
{
    int64_t hi = *lo, rows;
    PGresult *r = NULL;
    int rc;
    if ((rc = pg_run(c, "BEGIN", NULL)) || (rc = bind_range(c, jobs, *lo, BATCH_JOBS)) ||
        (rc = copy_rows(c, &jobs_table, jobs, &hi, n)) || !*n)
        goto out;
    if ((rc = pg_run(c, jobs_table.insert, &r)))
        goto out;
    int64_t inserted = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    int64_t present = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    for (size_t i = 0; !rc && i < sizeof job_tables / sizeof *job_tables; i++)
        if (!(rc = bind_range(c, per_job[i], *lo, hi)) &&
            !(rc = copy_rows(c, &job_tables[i], per_job[i], &(int64_t){0}, &rows)))
            rc = pg_run(c, job_tables[i].insert, NULL);
    if (!rc && !(rc = pg_run(c, "COMMIT", NULL))) {
        c->st->copied += inserted;
        c->st->present += present;
        c->st->conflicts += *n - inserted - present;
        *lo = hi;
    }
out:
    if (rc || !*n)
        PQclear(PQexec(c->dst, rc ? "ROLLBACK" : "COMMIT"));
    return rc;
}

/* Every job, batch by batch. */
static int copy_jobs(copier *c)
{
    sqlite3_stmt *jobs = NULL, *per_job[2] = {NULL, NULL};
    int rc = prepare(c, jobs_table.select, &jobs);
    for (size_t i = 0; !rc && i < 2; i++)
        rc = prepare(c, job_tables[i].select, &per_job[i]);
    int64_t lo = 0, n = 0, done = 0;
    while (!rc) {
        if ((rc = copy_batch(c, jobs, per_job, &lo, &n)) || !n)
            break;
        done += n;
        if (c->fn)
            c->fn(c->arg, "jobs", done, c->st->jobs);
    }
    sqlite3_finalize(jobs);
    for (size_t i = 0; i < 2; i++)
        sqlite3_finalize(per_job[i]);
    return rc;
}

/* ---- the two ends ---- */

/* The target: reachable, its schema made current, no node alive on it,
 * the temporary tables made. */
static int open_target(copier *c, const char *url)
{
    int had, now, rc;
    if ((rc = obi_store_pg_migrate(url, &had, &now)))
        return rc;
    c->dst = PQconnectdb(url);
    if (!c->dst || PQstatus(c->dst) != CONNECTION_OK) {
        OB_ERROR("migrate: cannot connect to the target: %s",
                 c->dst ? PQerrorMessage(c->dst) : "out of memory");
        return OB_EUNAVAIL;
    }
    PGresult *r = NULL;
    if ((rc = pg_run(c, "SELECT count(*) FROM outbox_nodes WHERE heartbeat_at >"
                        " now() - interval '30 seconds'", &r)))
        return rc;
    int live = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (live) {
        OB_ERROR("migrate: the target has %d live node%s (an outboxd runs on it): stop %s, or "
                 "wait 30 s after it stopped", live, live == 1 ? "" : "s", live == 1 ? "it" : "them");
        return OB_EBUSY;
    }
    return pg_run(c, "SET synchronous_commit = on;"
                     "CREATE TEMP TABLE mv_jobs (LIKE outbox_jobs) ON COMMIT DELETE ROWS;"
                     "CREATE TEMP TABLE mv_errors (LIKE outbox_errors) ON COMMIT DELETE ROWS;"
                     "CREATE TEMP TABLE mv_terms (LIKE outbox_terms) ON COMMIT DELETE ROWS;"
                     "CREATE TEMP TABLE mv_queues (LIKE outbox_queues) ON COMMIT DELETE ROWS;"
                     "CREATE TEMP TABLE mv_keys (LIKE outbox_keys) ON COMMIT DELETE ROWS;"
                     "CREATE TEMP TABLE mv_schedules (LIKE outbox_schedules) ON COMMIT DELETE ROWS;"
                     "CREATE TEMP TABLE mv_records (LIKE outbox_records) ON COMMIT DELETE ROWS;",
                  NULL);
}

/* The source: its schema made current (it is ours, and it exists), then
 * locked for the copy and read in one snapshot. */
static int open_source(copier *c, const char *path, int *lock)
{
    if (access(path, F_OK) != 0) {
        OB_ERROR("migrate: the source %s: %s", path, strerror(errno));
        return OB_EINVAL;
    }
    int had, now, rc;
    if ((rc = obi_store_sqlite_migrate(path, &had, &now)) || (rc = obi_sq_lock(path, lock)))
        return rc;
    int orc = sqlite3_open_v2(path, &c->src, SQLITE_OPEN_READWRITE, obi_store_sqlite_vfs);
    if (orc != SQLITE_OK)
        return obi_sq_fail(c->src, orc, path);
    return (rc = obi_sq_exec(c->src, "PRAGMA query_only=1; BEGIN")) ? rc
           : obi_sq_query_int(c->src, "SELECT count(*) FROM jobs", &c->st->jobs);
}

int ob_store_copy(const char *from, const char *to, ob_progress_fn fn, void *arg,
                  ob_copy_stats *st)
{
    ob_copy_stats mine;
    copier c = {.fn = fn, .arg = arg, .st = st ? st : &mine};
    *c.st = (ob_copy_stats){0};
    if (!from || !to || strncmp(from, "sqlite:", 7) != 0 || !from[7] ||
        (strncmp(to, "postgres://", 11) != 0 && strncmp(to, "postgresql://", 13) != 0)) {
        OB_ERROR("migrate: copies an embedded store into PostgreSQL: --from sqlite:PATH "
                 "--to postgres://...");
        return OB_EINVAL;
    }
    int lock = -1;
    int rc = open_source(&c, from + 7, &lock);
    if (!rc)
        rc = open_target(&c, to);
    for (size_t i = 0; !rc && i < sizeof settings_tables / sizeof *settings_tables; i++)
        rc = copy_settings(&c, &settings_tables[i],
                           i == 0 ? &c.st->queues : i == 2 ? &c.st->schedules
                                    : i == 3 ? &c.st->records : NULL);
    if (!rc)
        rc = copy_jobs(&c);
    if (c.src) {
        sqlite3_exec(c.src, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(c.src);
    }
    PQfinish(c.dst);
    if (lock >= 0)
        close(lock);
    free(c.line);
    return rc;
}
