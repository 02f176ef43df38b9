/*
 * sqlite.c - the embedded store: jobs in one SQLite database file.
 *
 * Durability: WAL journal with synchronous=FULL, so every COMMIT fsyncs the
 * WAL before it returns (invariant S1 of store.h). The engine's single
 * commit thread owns the writer connection and batches many operations into
 * each transaction; readers use connections of their own from a small pool
 * and see committed snapshots (WAL lets them run beside the writer).
 *
 * One process: the store takes an exclusive flock(2) on PATH.lock for as
 * long as it is open, so a second process gets OB_ELOCKED instead of two
 * writers fighting over SQLITE_BUSY, and every job found `running` at open
 * belongs to a dead process (store.exclusive).
 *
 * Files: sqlite.c (open, close, connections, the writer's calls),
 * sqlite_schema.c (the schema and its migrations), sqlite_read.c (the
 * readers: snapshots, get, list, counts); sq.h is what they share.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "store/sq.h"

const char *obi_store_sqlite_vfs = NULL;

static const char *const writer_sql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_INSERT] = "INSERT INTO jobs(id, kind, queue, priority, state, max_attempts, timeout_ms,"
                 " run_at, created_at, unique_key, meta, rate_key, parked)"
                 " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,"
                 " EXISTS(SELECT 1 FROM queues WHERE name = ?3))", /* F3 */
    [W_INSERT_PAYLOAD] = "INSERT INTO payloads(seq, data) VALUES(?, ?)",
    [W_FIND_UNIQUE] = "SELECT id FROM jobs WHERE unique_key = ?",
    [W_LOAD] = "SELECT state, attempt, max_attempts, cancel_requested, kind, queue, run_at, meta,"
               " rate_key FROM jobs WHERE id = ?",
    [W_UPDATE] = "UPDATE jobs SET state = ?3, attempt = ?4, max_attempts = ?5, run_at = ?6,"
                 " finished_at = ?7, cancel_requested = ?8, result = coalesce(?9, result),"
                 " lease_until = CASE WHEN ?3 = 3 THEN lease_until END,"
                 " parked = CASE WHEN ?3 = 2 THEN EXISTS(SELECT 1 FROM queues q"
                 " WHERE q.name = jobs.queue) ELSE parked END" /* F3 */
                 " WHERE id = ?1 AND state = ?2 AND attempt = ?10 RETURNING seq",
    [W_EXTEND] = "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND state = 3 AND attempt = ?2",
    [W_ADD_ERROR] = "INSERT OR REPLACE INTO errors(seq, attempt, at, message, started_at)"
                    " VALUES(?1, ?2, ?3, ?4, coalesce((SELECT attempted_at FROM jobs WHERE seq = ?1), 0))",
    [W_TRIM_ERRORS] = "DELETE FROM errors WHERE seq = ? AND attempt <= ?",
    [W_CAND_ALL] = "SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_claim"
                   " WHERE state = 2 AND parked = 0 ORDER BY priority DESC, run_at, seq LIMIT ?",
    [W_CAND_ALL_NET] = "SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_claim"
                       " WHERE state = 2 AND parked = 0 AND NOT EXISTS(SELECT 1 FROM queues q"
                       " WHERE q.name = jobs.queue) ORDER BY priority DESC, run_at, seq LIMIT ?",
    [W_CAND_QUEUE] = "SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_claim_queue"
                     " WHERE state = 2 AND parked = 0 AND queue = ?"
                     " ORDER BY priority DESC, run_at, seq LIMIT ?",
    [W_CAND_PARKED] = "SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_parked"
                      " WHERE state = 2 AND parked = 1 AND queue = ?"
                      " ORDER BY priority DESC, run_at, seq LIMIT ?",
    [W_CLAIM_ONE] = "UPDATE jobs SET state = 3, attempt = attempt + 1, attempted_at = ?2,"
                    " lease_until = ?2 + timeout_ms + ?3 WHERE seq = ?1 AND state = 2"
                    " RETURNING " JOB_COLS,
    [W_PAYLOAD] = "SELECT data FROM payloads WHERE seq = ?",
    [W_PROMOTE] = "UPDATE jobs SET state = 2, parked = EXISTS(SELECT 1 FROM queues q"
                  " WHERE q.name = jobs.queue) WHERE seq IN (SELECT seq FROM jobs INDEXED BY"
                  " jobs_due WHERE state IN (1, 4) AND state = ?3 AND run_at <= ?1"
                  " ORDER BY run_at LIMIT ?2) RETURNING id, attempt, kind, queue",
    [W_NEXT_DUE] = "SELECT run_at FROM jobs INDEXED BY jobs_due WHERE state IN (1, 4)"
                   " ORDER BY run_at LIMIT 1",
    [W_EXPIRED] = "SELECT id, attempt FROM jobs INDEXED BY jobs_lease WHERE state = 3"
                  " AND lease_until < ? ORDER BY lease_until LIMIT ?",
    [W_EXPIRED_ALL] = "SELECT id, attempt FROM jobs INDEXED BY jobs_lease WHERE state = 3"
                      " AND ?1 = ?1 LIMIT ?2",
    [W_PRUNE_SELECT] = "SELECT seq, kind, queue, state FROM jobs INDEXED BY jobs_finished"
                       " WHERE state >= 5"
                       " AND finished_at < ? ORDER BY finished_at LIMIT ?",
    [W_DEL_JOB] = "DELETE FROM jobs WHERE seq = ?",
    [W_DEL_PAYLOAD] = "DELETE FROM payloads WHERE seq = ?",
    [W_DEL_ERRORS] = "DELETE FROM errors WHERE seq = ?",
    [W_COUNT_UNFINISHED] = "SELECT count(*) FROM jobs INDEXED BY jobs_state WHERE state < 5",
    [W_DATA_VERSION] = "PRAGMA data_version",
    [W_Q_ALL] = "SELECT " QUEUE_COLS " FROM queues q ORDER BY name",
    [W_Q_LOAD] = "SELECT " QUEUE_COLS " FROM queues q WHERE name = ?",
    [W_Q_SAVE] = "INSERT OR REPLACE INTO queues(name, paused, concurrency, rate_limit,"
                 " rate_period_ms, rate_window, rate_used, key_rate_limit, key_rate_period_ms,"
                 " hold_until, key_hold_until, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
    [W_Q_DELETE] = "DELETE FROM queues WHERE name = ?",
    [W_PARK] = "UPDATE jobs SET parked = 1 WHERE seq IN (SELECT seq FROM jobs INDEXED BY"
               " jobs_claim_queue WHERE state = 2 AND parked = 0 AND queue = ?1 LIMIT ?2)",
    [W_UNPARK] = "UPDATE jobs SET parked = 0 WHERE seq IN (SELECT seq FROM jobs INDEXED BY"
                 " jobs_parked WHERE state = 2 AND parked = 1 AND queue = ?1 LIMIT ?2)",
    /* The queues of parked jobs, one index seek each (a loose index scan),
     * without a row. */
    [W_ORPHANS] = "WITH RECURSIVE p(name) AS (SELECT (SELECT min(queue) FROM jobs INDEXED BY"
                  " jobs_parked WHERE state = 2 AND parked = 1) UNION ALL SELECT (SELECT"
                  " min(queue) FROM jobs INDEXED BY jobs_parked WHERE state = 2 AND parked = 1"
                  " AND queue > p.name) FROM p WHERE p.name IS NOT NULL)"
                  " SELECT name FROM p WHERE name IS NOT NULL"
                  " AND name NOT IN (SELECT name FROM queues) LIMIT ?",
    [W_CAND_KEY] = "SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_parked_key"
                   " WHERE state = 2 AND parked = 1 AND queue = ? AND rate_key = ?"
                   " ORDER BY priority DESC, run_at, seq LIMIT ?",
    /* A queue's keys with parked jobs after ?2, one index seek each. */
    [W_KEYS_WAITING] = "WITH RECURSIVE k(key, n) AS (SELECT (SELECT min(rate_key) FROM jobs"
                       " INDEXED BY jobs_parked_key WHERE state = 2 AND parked = 1 AND queue = ?1"
                       " AND rate_key >= ?2 AND (?4 OR rate_key > ?2)), 1 UNION ALL SELECT (SELECT min(rate_key) FROM jobs"
                       " INDEXED BY jobs_parked_key WHERE state = 2 AND parked = 1 AND queue = ?1"
                       " AND rate_key > k.key), n + 1 FROM k WHERE k.key IS NOT NULL AND n < ?3)"
                       " SELECT key FROM k WHERE key IS NOT NULL",
    [W_KEY_LOAD] = "SELECT rate_window, rate_used, held_until FROM keys WHERE queue = ? AND key = ?",
    [W_KEY_SAVE] = "INSERT OR REPLACE INTO keys(queue, key, rate_window, rate_used, held_until)"
                   " VALUES(?,?,?,?,?)",
    [W_KEYS_PRUNE] = "DELETE FROM keys WHERE (queue, key) IN (SELECT queue, key FROM keys"
                     " WHERE queue = ?1 AND held_until <= ?2 AND rate_window + ?3 <= ?2 LIMIT ?4)",
    [W_COUNT_ADD] = obi_sq_count_add_sql,
    [W_COUNT_ZERO] = "DELETE FROM counts WHERE n = 0",
    [W_TERM_ADD] = obi_sq_term_add_sql,
    [W_DEL_TERMS] = "DELETE FROM terms WHERE id = (SELECT id FROM jobs WHERE seq = ?)",
};

const char obi_sq_term_add_sql[] = "INSERT OR IGNORE INTO terms(term, id) VALUES(?, ?)";
const char obi_sq_count_add_sql[] =
    "INSERT INTO counts(queue, kind, state, n) VALUES(?, ?, ?, ?)"
    " ON CONFLICT(queue, kind, state) DO UPDATE SET n = n + excluded.n";

static const store_ops sqlite_ops;

/* ---- errors ---- */

int obi_sq_fail(sqlite3 *db, int rc, const char *what)
{
    int prim = rc & 0xff;
    OB_ERROR("sqlite: %s: %s (%d)", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
    switch (prim) {
    case SQLITE_FULL: return OB_ENOSPC;
    case SQLITE_IOERR: return OB_EIO;
    case SQLITE_NOMEM: return OB_ENOMEM;
    default: return OB_ESTORE;
    }
}

int obi_sq_step(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : obi_sq_fail(db, rc, what);
}

int obi_sq_exec(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : obi_sq_fail(db, rc, sql);
}

/* ---- connections ---- */

int obi_sq_open(sqlite_store *s, bool writer, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(s->path, &db, flags, obi_store_sqlite_vfs);
    if (rc != SQLITE_OK) {
        int r = obi_sq_fail(db, rc, s->path);
        sqlite3_close(db);
        return r;
    }
    sqlite3_extended_result_codes(db, 1);
    const char *pragmas = writer ? "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL;"
                                   " PRAGMA synchronous=FULL; PRAGMA cache_size=-8192;"
                                   " PRAGMA temp_store=MEMORY;"
                                 : "PRAGMA busy_timeout=5000; PRAGMA query_only=1;"
                                   " PRAGMA cache_size=-2048;";
    if ((rc = obi_sq_exec(db, pragmas))) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

int obi_sq_prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n)
{
    for (int i = 0; i < n; i++) {
        if (!sql[i])
            continue;
        int rc = sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL);
        if (rc != SQLITE_OK)
            return obi_sq_fail(db, rc, sql[i]);
    }
    return 0;
}

void obi_sq_finalize_all(sqlite3_stmt **st, int n)
{
    for (int i = 0; i < n; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
}

int obi_sq_lock(const char *path, int *fd)
{
    char lp[4096];
    if (snprintf(lp, sizeof lp, "%s.lock", path) >= (int)sizeof lp)
        return OB_EINVAL;
    *fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) {
        OB_ERROR("sqlite: cannot open %s: %s", lp, strerror(errno));
        return errno == ENOSPC ? OB_ENOSPC : OB_ESTORE;
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        OB_ERROR("sqlite: %s is in use by another process", path);
        return e == EWOULDBLOCK ? OB_ELOCKED : OB_ESTORE;
    }
    return 0;
}

static int take_lock(sqlite_store *s) { return obi_sq_lock(s->path, &s->lock_fd); }

static void sqlite_close(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    if (!s)
        return;
    obi_readers_destroy(&s->readers);
    obi_sq_finalize_all(s->ws, W_COUNT);
    if (s->w)
        sqlite3_close(s->w);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->path);
    free(s);
}

int obi_store_sqlite_open(const char *path, store **out)
{
    sqlite_store *s = calloc(1, sizeof *s);
    if (!s)
        return OB_ENOMEM;
    s->base.ops = &sqlite_ops;
    s->base.exclusive = true;
    s->lock_fd = -1;
    obi_readers_init(&s->readers, MAX_READERS, s, obi_sq_reader_make, NULL,
                     obi_sq_reader_destroy);
    int rc = OB_ENOMEM;
    if (!(s->path = strdup(path)))
        goto err;
    if ((rc = take_lock(s)) || (rc = obi_sq_open(s, true, &s->w)) || (rc = obi_sq_check_schema(s)) ||
        (rc = obi_sq_prepare_all(s->w, writer_sql, s->ws, W_COUNT)))
        goto err;
    *out = &s->base;
    return 0;
err:
    sqlite_close(&s->base);
    return rc;
}

/* ---- writer calls ---- */

static int sqlite_begin(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    return obi_sq_step(s->w, WS(s, W_BEGIN), "begin");
}

static int sqlite_commit(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    return obi_sq_step(s->w, WS(s, W_COMMIT), "commit");
}

static void sqlite_rollback(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    if (!sqlite3_get_autocommit(s->w)) /* an I/O error may have rolled back already */
        obi_sq_step(s->w, WS(s, W_ROLLBACK), "rollback");
}

void obi_sq_bind_id(sqlite3_stmt *st, int i, const ob_id *id)
{
    sqlite3_bind_blob(st, i, id->b, 16, SQLITE_STATIC);
}

void obi_sq_text_col(sqlite3_stmt *st, int c, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, c);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

void obi_sq_bind_text(sqlite3_stmt *st, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_new(sqlite3_stmt *st, const store_new *j)
{
    obi_sq_bind_id(st, 1, &j->id);
    obi_sq_bind_text(st, 2, j->kind);
    obi_sq_bind_text(st, 3, j->queue);
    sqlite3_bind_int(st, 4, j->priority);
    sqlite3_bind_int(st, 5, j->state);
    sqlite3_bind_int(st, 6, j->max_attempts);
    sqlite3_bind_int64(st, 7, j->timeout_ms);
    sqlite3_bind_int64(st, 8, j->run_at);
    sqlite3_bind_int64(st, 9, j->created_at);
    obi_sq_bind_text(st, 10, j->unique_key);
    obi_sq_bind_text(st, 11, j->meta);
    obi_sq_bind_text(st, 12, j->rate_key ? j->rate_key : "");
}

static int insert_payload(sqlite3 *db, sqlite3_stmt *st, const store_new *j)
{
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(db));
    sqlite3_bind_blob64(st, 2, j->payload ? j->payload : "", j->payload_len, SQLITE_STATIC);
    return obi_sq_step(db, st, "insert payload");
}

int obi_sq_insert_terms(sqlite3 *db, sqlite3_stmt *st, const store_new *j)
{
    int rc = 0;
    for (const char *t = j->terms; t && !rc;) {
        size_t n = strcspn(t, "\n");
        sqlite3_bind_text(st, 1, t, (int)n, SQLITE_STATIC);
        obi_sq_bind_id(st, 2, &j->id);
        rc = obi_sq_step(db, st, "insert search terms");
        t = t[n] ? t + n + 1 : NULL;
    }
    return rc;
}

static int sqlite_insert(store *base, const store_new *j)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_INSERT);
    bind_new(st, j);
    int rc = obi_sq_step(s->w, st, "insert job");
    if (!rc)
        rc = insert_payload(s->w, WS(s, W_INSERT_PAYLOAD), j);
    return rc ? rc : obi_sq_insert_terms(s->w, WS(s, W_TERM_ADD), j);
}

/* Transactional enqueue on the caller's connection (ob_enqueue_sqlite):
 * statements prepared for the call, since the connection is not ours. */
static int count_add_one(sqlite3 *db, sqlite3_stmt *st, const store_count *c)
{
    obi_sq_bind_text(st, 1, c->queue);
    obi_sq_bind_text(st, 2, c->kind);
    sqlite3_bind_int(st, 3, (int)c->state);
    sqlite3_bind_int64(st, 4, c->n);
    return obi_sq_step(db, st, "count jobs");
}

static int sqlite_insert_tx(store *base, void *conn, const store_new *j, ob_id *existing)
{
    (void)base;
    sqlite3 *db = conn;
    int64_t app = 0;
    int rc = obi_sq_query_int(db, "PRAGMA application_id", &app);
    if (!rc && app != APPLICATION_ID) {
        OB_ERROR("sqlite: ob_enqueue_sqlite: the connection is not to an outbox store");
        return OB_EINVAL;
    }
    sqlite3_stmt *ins = NULL, *pay = NULL, *find = NULL, *cnt = NULL, *term = NULL;
    const char *sql[5] = {writer_sql[W_INSERT], writer_sql[W_INSERT_PAYLOAD],
                          writer_sql[W_FIND_UNIQUE], obi_sq_count_add_sql, obi_sq_term_add_sql};
    sqlite3_stmt **st[5] = {&ins, &pay, &find, &cnt, &term};
    for (int i = 0; i < 5 && !rc; i++) {
        int r = sqlite3_prepare_v2(db, sql[i], -1, st[i], NULL);
        if (r != SQLITE_OK)
            rc = obi_sq_fail(db, r, sql[i]);
    }
    if (!rc && j->unique_key) {
        obi_sq_bind_text(find, 1, j->unique_key);
        int r = sqlite3_step(find);
        if (r == SQLITE_ROW) {
            memcpy(existing->b, sqlite3_column_blob(find, 0), 16);
            rc = STORE_EXISTS;
        } else if (r != SQLITE_DONE) {
            rc = obi_sq_fail(db, r, "find unique key");
        }
    }
    if (!rc) {
        bind_new(ins, j);
        if (!(rc = obi_sq_step(db, ins, "insert job")))
            rc = insert_payload(db, pay, j);
        if (!rc)
            rc = obi_sq_insert_terms(db, term, j);
    }
    if (!rc) { /* N1, in the caller's transaction */
        store_count c = {.state = j->state, .n = 1};
        snprintf(c.queue, sizeof c.queue, "%s", j->queue);
        snprintf(c.kind, sizeof c.kind, "%s", j->kind);
        rc = count_add_one(db, cnt, &c);
    }
    for (int i = 0; i < 5; i++)
        sqlite3_finalize(*st[i]);
    return rc;
}

static int sqlite_find_unique(store *base, const char *key, ob_id *id)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_FIND_UNIQUE);
    obi_sq_bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        memcpy(id->b, sqlite3_column_blob(st, 0), 16);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? OB_ENOTFOUND : obi_sq_fail(s->w, rc, "find unique key");
}

static int sqlite_load(store *base, const ob_id *id, store_row *row)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_LOAD);
    obi_sq_bind_id(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row->state = (ob_state)sqlite3_column_int(st, 0);
        row->attempt = sqlite3_column_int(st, 1);
        row->max_attempts = sqlite3_column_int(st, 2);
        row->cancel_requested = sqlite3_column_int(st, 3) != 0;
        snprintf(row->kind, sizeof row->kind, "%s", (const char *)sqlite3_column_text(st, 4));
        snprintf(row->queue, sizeof row->queue, "%s", (const char *)sqlite3_column_text(st, 5));
        row->run_at = sqlite3_column_int64(st, 6);
        row->has_meta = sqlite3_column_type(st, 7) != SQLITE_NULL;
        snprintf(row->meta, sizeof row->meta, "%s",
                 row->has_meta ? (const char *)sqlite3_column_text(st, 7) : "");
        snprintf(row->rate_key, sizeof row->rate_key, "%s", (const char *)sqlite3_column_text(st, 8));
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? OB_ENOTFOUND : obi_sq_fail(s->w, rc, "load job");
}

static int sqlite_update(store *base, const store_change *c)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_UPDATE);
    obi_sq_bind_id(st, 1, &c->id);
    sqlite3_bind_int(st, 2, c->from);
    sqlite3_bind_int(st, 3, c->to);
    sqlite3_bind_int(st, 4, c->attempt);
    sqlite3_bind_int(st, 5, c->max_attempts);
    sqlite3_bind_int64(st, 6, c->run_at);
    if (c->finished_at)
        sqlite3_bind_int64(st, 7, c->finished_at);
    else
        sqlite3_bind_null(st, 7);
    sqlite3_bind_int(st, 8, c->cancel_requested);
    obi_sq_bind_text(st, 9, c->result);
    sqlite3_bind_int(st, 10, c->from_attempt);
    int rc = sqlite3_step(st);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return OB_ESTATE;
    if (rc != SQLITE_ROW)
        return obi_sq_fail(s->w, rc, "update job");
    if (!c->error)
        return 0;
    st = WS(s, W_ADD_ERROR);
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int(st, 2, c->error_attempt);
    sqlite3_bind_int64(st, 3, c->now);
    obi_sq_bind_text(st, 4, c->error);
    if ((rc = obi_sq_step(s->w, st, "add error")))
        return rc;
    st = WS(s, W_TRIM_ERRORS);
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int(st, 2, c->error_attempt - c->errors_kept);
    return obi_sq_step(s->w, st, "trim errors");
}

static int sqlite_extend(store *base, const ob_id *id, int attempt, int64_t lease_until)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_EXTEND);
    obi_sq_bind_id(st, 1, id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int64(st, 3, lease_until);
    int rc = obi_sq_step(s->w, st, "extend lease");
    return rc ? rc : sqlite3_changes(s->w) ? 0 : OB_ESTATE;
}

typedef struct cand {
    int64_t seq, run_at;
    int priority;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->run_at != y->run_at)
        return x->run_at < y->run_at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Append up to `limit` claim candidates from statement k (of one queue,
 * or NULL: any; of one rate key, or NULL) to c[*n]. */
static int candidates(sqlite_store *s, int k, const char *queue, const char *key, int limit,
                      cand *c, int *n)
{
    sqlite3_stmt *st = WS(s, k);
    int i = 1;
    if (queue)
        obi_sq_bind_text(st, i++, queue);
    if (key)
        obi_sq_bind_text(st, i++, key);
    sqlite3_bind_int(st, i, limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        c[*n] = (cand){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 2),
                       sqlite3_column_int(st, 1)};
        (*n)++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : obi_sq_fail(s->w, rc, "claim candidates");
}

/* Claim in two steps: gather the best candidates of each part of the
 * claim (store_claim) from its index, merge them in claim order, and flip
 * the first `limit` to running one by one (each an index seek). A part's
 * candidates are at most its limit, so no part gets more. */
static int sqlite_claim(store *base, const store_claim *c, ob_job **jobs, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    int nmain = c->main_off ? 0 : c->nqueues > 0 ? c->nqueues : 1;
    size_t cap = (size_t)c->limit * (size_t)nmain;
    for (int i = 0; i < c->nparts; i++) {
        cap += (size_t)c->parts[i].limit;
        for (int k = 0; k < c->parts[i].nkeys; k++)
            cap += (size_t)c->parts[i].keys[k].limit;
    }
    cand *cs = malloc(sizeof *cs * (cap ? cap : 1));
    if (!cs)
        return OB_ENOMEM;
    int nc = 0, rc = 0;
    int all = c->net ? W_CAND_ALL_NET : W_CAND_ALL;
    for (int q = 0; q < nmain && !rc; q++)
        rc = c->nqueues > 0
                 ? candidates(s, W_CAND_QUEUE, c->queues[q], NULL, c->limit, cs, &nc)
                 : candidates(s, all, NULL, NULL, c->limit, cs, &nc);
    for (int i = 0; i < c->nparts && !rc; i++) {
        const store_part *p = &c->parts[i];
        if (!p->keys) {
            rc = candidates(s, W_CAND_PARKED, p->queue, NULL, p->limit, cs, &nc);
            continue;
        }
        int before = nc; /* a keyed part: each key's best, then the part's best */
        for (int k = 0; k < p->nkeys && !rc; k++)
            rc = candidates(s, W_CAND_KEY, p->queue, p->keys[k].key, p->keys[k].limit, cs, &nc);
        if (nc - before > p->limit) {
            qsort(cs + before, (size_t)(nc - before), sizeof *cs, cand_cmp);
            nc = before + p->limit;
        }
    }
    if (nmain + c->nparts > 1 || (c->nparts == 1 && c->parts[0].keys))
        qsort(cs, (size_t)nc, sizeof *cs, cand_cmp);
    if (nc > c->limit)
        nc = c->limit;
    *n = 0;
    sqlite3_stmt *up = WS(s, W_CLAIM_ONE), *pl = WS(s, W_PAYLOAD);
    for (int i = 0; i < nc && !rc; i++) {
        sqlite3_bind_int64(up, 1, cs[i].seq);
        sqlite3_bind_int64(up, 2, c->now);
        sqlite3_bind_int64(up, 3, c->lease_grace_ms);
        int r1 = sqlite3_step(up);
        if (r1 == SQLITE_ROW) {
            sqlite3_bind_int64(pl, 1, cs[i].seq);
            int r2 = sqlite3_step(pl);
            if (r2 != SQLITE_ROW)
                rc = obi_sq_fail(s->w, r2, "read payload");
            else if (!(jobs[*n] = obi_sq_row_to_job(up, pl, NULL, 0)))
                rc = OB_ENOMEM;
            else
                (*n)++;
            sqlite3_reset(pl);
        } else if (r1 != SQLITE_DONE) {
            rc = obi_sq_fail(s->w, r1, "claim");
        }
        sqlite3_reset(up);
    }
    free(cs);
    if (rc) {
        while (*n > 0)
            obi_job_release(jobs[--*n]);
    }
    return rc;
}

/* Promote due jobs of one state (scheduled or retryable), so that each
 * moved job's previous state is known. */
static int promote_from(sqlite_store *s, ob_state from, int64_t now, store_moved *out, int max,
                        int *n)
{
    sqlite3_stmt *st = WS(s, W_PROMOTE);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, max - *n);
    sqlite3_bind_int(st, 3, from);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n >= max)
            continue; /* cannot happen: LIMIT */
        store_moved *m = &out[(*n)++];
        memcpy(m->id.b, sqlite3_column_blob(st, 0), 16);
        m->from = from;
        m->attempt = sqlite3_column_int(st, 1);
        snprintf(m->kind, sizeof m->kind, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(m->queue, sizeof m->queue, "%s", (const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : obi_sq_fail(s->w, rc, "promote due jobs");
}

static int sqlite_promote(store *base, int64_t now, store_moved *out, int max, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    *n = 0;
    int rc = promote_from(s, OB_SCHEDULED, now, out, max, n);
    if (!rc && *n < max)
        rc = promote_from(s, OB_RETRYABLE, now, out, max, n);
    return rc;
}

static int sqlite_next_due(store *base, int64_t *due)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_NEXT_DUE);
    int rc = sqlite3_step(st);
    *due = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MAX;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : obi_sq_fail(s->w, rc, "next due");
}

static int sqlite_expired(store *base, int64_t now, bool all, store_lease *out, int max, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, all ? W_EXPIRED_ALL : W_EXPIRED);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        memcpy(out[*n].id.b, sqlite3_column_blob(st, 0), 16);
        out[*n].attempt = sqlite3_column_int(st, 1);
        (*n)++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : obi_sq_fail(s->w, rc, "expired leases");
}

static int sqlite_prune(store *base, int64_t before, int limit, store_gone_fn gone, void *arg,
                        int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    int64_t *seqs = malloc(sizeof *seqs * (size_t)limit);
    if (!seqs)
        return OB_ENOMEM;
    sqlite3_stmt *st = WS(s, W_PRUNE_SELECT);
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int(st, 2, limit);
    int rc, k = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && k < limit) {
        seqs[k++] = sqlite3_column_int64(st, 0);
        gone(arg, (const char *)sqlite3_column_text(st, 1),
             (const char *)sqlite3_column_text(st, 2), (ob_state)sqlite3_column_int(st, 3));
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : obi_sq_fail(s->w, rc, "prune select");
    static const int dels[] = {W_DEL_TERMS, W_DEL_JOB, W_DEL_PAYLOAD, W_DEL_ERRORS};
    for (int i = 0; i < k && !rc; i++) {
        for (size_t d = 0; d < 4 && !rc; d++) {
            sqlite3_bind_int64(WS(s, dels[d]), 1, seqs[i]);
            rc = obi_sq_step(s->w, WS(s, dels[d]), "prune");
        }
    }
    free(seqs);
    *n = rc ? 0 : k;
    return rc;
}

static int sqlite_count_add(store *base, const store_count *d, int n)
{
    sqlite_store *s = (sqlite_store *)base;
    int rc = 0;
    bool fell = false;
    for (int i = 0; i < n && !rc; i++) {
        if (d[i].n) {
            rc = count_add_one(s->w, WS(s, W_COUNT_ADD), &d[i]);
            fell |= d[i].n < 0;
        }
    }
    /* A group that emptied loses its row (the table stays one row a group
     * that has jobs). */
    if (!rc && fell)
        rc = obi_sq_step(s->w, WS(s, W_COUNT_ZERO), "count jobs");
    return rc;
}

static int sqlite_count_unfinished(store *base, int64_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_COUNT_UNFINISHED);
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : obi_sq_fail(s->w, rc, "count");
}

/* Another connection committed (a transactional enqueue, ob_enqueue_sqlite)
 * since the last call: data_version moves only for others' commits. */
static bool sqlite_external(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_DATA_VERSION);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : s->data_version;
    sqlite3_reset(st);
    bool changed = v != s->data_version;
    s->data_version = v;
    return changed;
}

static const store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .insert = sqlite_insert,
    .find_unique = sqlite_find_unique,
    .load = sqlite_load,
    .update = sqlite_update,
    .extend = sqlite_extend,
    .claim = sqlite_claim,
    .queues_lock = obi_sq_queues_lock,
    .queue_load = obi_sq_queue_load,
    .queue_save = obi_sq_queue_save,
    .park = obi_sq_park,
    .parked_orphans = obi_sq_parked_orphans,
    .queue_delete = obi_sq_queue_delete,
    .keys_waiting = obi_sq_keys_waiting,
    .keys_lock = obi_sq_keys_lock,
    .key_save = obi_sq_key_save,
    .keys_prune = obi_sq_keys_prune,
    .schedule_load = obi_sq_schedule_load,
    .schedule_save = obi_sq_schedule_save,
    .schedule_delete = obi_sq_schedule_delete,
    .schedules_due = obi_sq_schedules_due,
    .schedules_next = obi_sq_schedules_next,
    .record_save = obi_sq_record_save,
    .record_delete = obi_sq_record_delete,
    .promote = sqlite_promote,
    .next_due = sqlite_next_due,
    .expired = sqlite_expired,
    .prune = sqlite_prune,
    .count_add = sqlite_count_add,
    .count_unfinished = sqlite_count_unfinished,
    .external = sqlite_external,
    .insert_tx = sqlite_insert_tx,
    .get = obi_sq_get,
    .list = obi_sq_list,
    .counts = obi_sq_counts,
    .counts_scan = obi_sq_counts_scan,
    .oldest_due = obi_sq_oldest_due,
    .queues = obi_sq_queues,
    .keys_held = obi_sq_keys_held,
    .schedules = obi_sq_schedules,
    .records_get = obi_sq_records_get,
    .records = obi_sq_records,
};
