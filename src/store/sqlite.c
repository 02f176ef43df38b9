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
 * Schema (PRAGMA user_version; application_id 'OBOX'), built by the numbered
 * migrations below, each applied once in order (a new store gets them all
 * in one transaction; a store from an older outbox gets the ones it lacks;
 * a store from a newer outbox is refused with OB_ESCHEMA):
 *   1  the tables and indexes below
 *   2  jobs.meta: text the engine keeps for its user (callback URL, request
 *      fingerprint) and does not interpret
 *   jobs      one row per job; `seq` (rowid) is the insertion order, `id`
 *             the public UUIDv7 (same order, see base/id.c)
 *   payloads  the payload bytes, apart so that state changes do not rewrite
 *             large payloads
 *   errors    one row per failed attempt, the newest `errors_kept` kept
 * Indexes are partial where a state selects the rows, so each stays as
 * small as the set it serves:
 *   jobs_claim(priority DESC, run_at) WHERE available   - claims, any queue
 *   jobs_claim_queue(queue, priority DESC, run_at) ...  - claims, one queue
 *   jobs_due(run_at) WHERE scheduled or retryable       - promotion, wake-up
 *   jobs_lease(lease_until) WHERE running               - rescue
 *   jobs_finished(finished_at) WHERE final              - pruning
 *   jobs_state(state, id)                                - listing, counting
 * Queries name their index (INDEXED BY) so that a claim is always an index
 * seek plus `limit` steps, however many jobs are queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/base.h"
#include "store/store.h"

#define SCHEMA_VERSION 2
#define APPLICATION_ID 0x4f424f58 /* 'OBOX' */
#define MAX_READERS 8

const char *obi_store_sqlite_vfs = NULL;

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
};

/* Columns of a job snapshot, in this order, for get and list. */
#define JOB_COLS                                                                        \
    "seq, id, kind, queue, priority, state, attempt, max_attempts, timeout_ms, run_at, " \
    "created_at, attempted_at, finished_at, cancel_requested, unique_key, result, meta"
enum {
    C_SEQ, C_ID, C_KIND, C_QUEUE, C_PRIORITY, C_STATE, C_ATTEMPT, C_MAX_ATTEMPTS,
    C_TIMEOUT, C_RUN_AT, C_CREATED, C_ATTEMPTED, C_FINISHED, C_CANCEL, C_UNIQUE, C_RESULT,
    C_META
};

/* Writer statements, prepared once at open. */
enum {
    W_BEGIN, W_COMMIT, W_ROLLBACK, W_INSERT, W_INSERT_PAYLOAD, W_FIND_UNIQUE, W_LOAD,
    W_UPDATE, W_EXTEND, W_ADD_ERROR, W_TRIM_ERRORS, W_CAND_ALL, W_CAND_QUEUE, W_CLAIM_ONE,
    W_PAYLOAD, W_PROMOTE, W_NEXT_DUE, W_EXPIRED, W_EXPIRED_ALL, W_PRUNE_SELECT,
    W_DEL_JOB, W_DEL_PAYLOAD, W_DEL_ERRORS, W_COUNT_UNFINISHED, W_DATA_VERSION, W_COUNT
};

static const char *const writer_sql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_INSERT] = "INSERT INTO jobs(id, kind, queue, priority, state, max_attempts, timeout_ms,"
                 " run_at, created_at, unique_key, meta) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
    [W_INSERT_PAYLOAD] = "INSERT INTO payloads(seq, data) VALUES(?, ?)",
    [W_FIND_UNIQUE] = "SELECT id FROM jobs WHERE unique_key = ?",
    [W_LOAD] = "SELECT state, attempt, max_attempts, cancel_requested, kind, queue, run_at, meta"
               " FROM jobs WHERE id = ?",
    [W_UPDATE] = "UPDATE jobs SET state = ?3, attempt = ?4, max_attempts = ?5, run_at = ?6,"
                 " finished_at = ?7, cancel_requested = ?8, result = coalesce(?9, result),"
                 " lease_until = CASE WHEN ?3 = 3 THEN lease_until END"
                 " WHERE id = ?1 AND state = ?2 AND attempt = ?10 RETURNING seq",
    [W_EXTEND] = "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND state = 3 AND attempt = ?2",
    [W_ADD_ERROR] = "INSERT OR REPLACE INTO errors(seq, attempt, at, message) VALUES(?,?,?,?)",
    [W_TRIM_ERRORS] = "DELETE FROM errors WHERE seq = ? AND attempt <= ?",
    [W_CAND_ALL] = "SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_claim"
                   " WHERE state = 2 ORDER BY priority DESC, run_at, seq LIMIT ?",
    [W_CAND_QUEUE] = "SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_claim_queue"
                     " WHERE state = 2 AND queue = ? ORDER BY priority DESC, run_at, seq LIMIT ?",
    [W_CLAIM_ONE] = "UPDATE jobs SET state = 3, attempt = attempt + 1, attempted_at = ?2,"
                    " lease_until = ?2 + timeout_ms + ?3 WHERE seq = ?1 AND state = 2"
                    " RETURNING " JOB_COLS,
    [W_PAYLOAD] = "SELECT data FROM payloads WHERE seq = ?",
    [W_PROMOTE] = "UPDATE jobs SET state = 2 WHERE seq IN (SELECT seq FROM jobs INDEXED BY"
                  " jobs_due WHERE state IN (1, 4) AND state = ?3 AND run_at <= ?1"
                  " ORDER BY run_at LIMIT ?2) RETURNING id, attempt, kind, queue",
    [W_NEXT_DUE] = "SELECT run_at FROM jobs INDEXED BY jobs_due WHERE state IN (1, 4)"
                   " ORDER BY run_at LIMIT 1",
    [W_EXPIRED] = "SELECT id, attempt FROM jobs INDEXED BY jobs_lease WHERE state = 3"
                  " AND lease_until < ? ORDER BY lease_until LIMIT ?",
    [W_EXPIRED_ALL] = "SELECT id, attempt FROM jobs INDEXED BY jobs_lease WHERE state = 3"
                      " AND ?1 = ?1 LIMIT ?2",
    [W_PRUNE_SELECT] = "SELECT seq FROM jobs INDEXED BY jobs_finished WHERE state >= 5"
                       " AND finished_at < ? ORDER BY finished_at LIMIT ?",
    [W_DEL_JOB] = "DELETE FROM jobs WHERE seq = ?",
    [W_DEL_PAYLOAD] = "DELETE FROM payloads WHERE seq = ?",
    [W_DEL_ERRORS] = "DELETE FROM errors WHERE seq = ?",
    [W_COUNT_UNFINISHED] = "SELECT count(*) FROM jobs INDEXED BY jobs_state WHERE state < 5",
    [W_DATA_VERSION] = "PRAGMA data_version",
};

/* Reader statements, prepared once per reader connection. */
enum { R_BEGIN, R_END, R_GET, R_PAYLOAD, R_ERRORS, R_COUNT };
static const char *const reader_sql[R_COUNT] = {
    [R_BEGIN] = "BEGIN",
    [R_END] = "COMMIT",
    [R_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?",
    [R_PAYLOAD] = "SELECT data FROM payloads WHERE seq = ?",
    [R_ERRORS] = "SELECT attempt, at, message FROM errors WHERE seq = ? ORDER BY attempt",
};

typedef struct reader {
    sqlite3 *db;
    sqlite3_stmt *st[R_COUNT];
    struct reader *next;
} reader;

typedef struct sqlite_store {
    store base;
    char *path;
    int lock_fd;
    sqlite3 *w;
    sqlite3_stmt *ws[W_COUNT];
    pthread_mutex_t rmu;
    pthread_cond_t rfree;
    reader *idle; /* readers not in use */
    int nreaders; /* opened so far, <= MAX_READERS */
    int64_t data_version; /* as last seen by the writer */
} sqlite_store;

static const store_ops sqlite_ops;

/* ---- errors ---- */

/* Map an SQLite result code to an OB_E* code, logging what failed. */
static int sq_fail(sqlite3 *db, int rc, const char *what)
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

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_fail(db, rc, what);
}

static int exec(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(db, rc, sql);
}

/* ---- connections ---- */

static int open_conn(sqlite_store *s, bool writer, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(s->path, &db, flags, obi_store_sqlite_vfs);
    if (rc != SQLITE_OK) {
        int r = sq_fail(db, rc, s->path);
        sqlite3_close(db);
        return r;
    }
    sqlite3_extended_result_codes(db, 1);
    const char *pragmas = writer ? "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL;"
                                   " PRAGMA synchronous=FULL; PRAGMA cache_size=-8192;"
                                   " PRAGMA temp_store=MEMORY;"
                                 : "PRAGMA busy_timeout=5000; PRAGMA query_only=1;"
                                   " PRAGMA cache_size=-2048;";
    if ((rc = exec(db, pragmas))) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

static int prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n)
{
    for (int i = 0; i < n; i++) {
        if (!sql[i])
            continue;
        int rc = sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL);
        if (rc != SQLITE_OK)
            return sq_fail(db, rc, sql[i]);
    }
    return 0;
}

static void finalize_all(sqlite3_stmt **st, int n)
{
    for (int i = 0; i < n; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(db, rc, sql);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_fail(db, rc, sql);
}

/* Create the schema in a new file, bring an older one up to date, or
 * refuse a file that is not ours or is newer than we are. */
static int check_schema(sqlite_store *s)
{
    int64_t app, ver, ntables;
    int rc;
    if ((rc = query_int(s->w, "PRAGMA application_id", &app)) ||
        (rc = query_int(s->w, "PRAGMA user_version", &ver)) ||
        (rc = query_int(s->w, "SELECT count(*) FROM sqlite_schema", &ntables)))
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
    if ((rc = exec(s->w, "BEGIN IMMEDIATE")))
        return rc;
    for (int64_t v = ver + 1; v <= SCHEMA_VERSION && !rc; v++)
        rc = exec(s->w, migrations[v]);
    char set[128];
    snprintf(set, sizeof set, "PRAGMA application_id=%d; PRAGMA user_version=%d; COMMIT;",
             APPLICATION_ID, SCHEMA_VERSION);
    if (!rc)
        rc = exec(s->w, set);
    if (rc) {
        exec(s->w, "ROLLBACK");
        return rc;
    }
    if (ver)
        OB_INFO("sqlite: %s migrated from schema version %lld to %d", s->path, (long long)ver,
                SCHEMA_VERSION);
    return 0;
}

static int take_lock(sqlite_store *s)
{
    char lp[4096];
    if (snprintf(lp, sizeof lp, "%s.lock", s->path) >= (int)sizeof lp)
        return OB_EINVAL;
    s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        OB_ERROR("sqlite: cannot open %s: %s", lp, strerror(errno));
        return errno == ENOSPC ? OB_ENOSPC : OB_ESTORE;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        OB_ERROR("sqlite: %s is in use by another process", s->path);
        return errno == EWOULDBLOCK ? OB_ELOCKED : OB_ESTORE;
    }
    return 0;
}

static void sqlite_close(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    if (!s)
        return;
    while (s->idle) {
        reader *r = s->idle;
        s->idle = r->next;
        finalize_all(r->st, R_COUNT);
        sqlite3_close(r->db);
        free(r);
    }
    finalize_all(s->ws, W_COUNT);
    if (s->w)
        sqlite3_close(s->w);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->rmu);
    pthread_cond_destroy(&s->rfree);
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
    pthread_mutex_init(&s->rmu, NULL);
    pthread_cond_init(&s->rfree, NULL);
    int rc = OB_ENOMEM;
    if (!(s->path = strdup(path)))
        goto err;
    if ((rc = take_lock(s)) || (rc = open_conn(s, true, &s->w)) || (rc = check_schema(s)) ||
        (rc = prepare_all(s->w, writer_sql, s->ws, W_COUNT)))
        goto err;
    *out = &s->base;
    return 0;
err:
    sqlite_close(&s->base);
    return rc;
}

int obi_store_sqlite_migrate(const char *path, int *had, int *now)
{
    sqlite3 *db = NULL;
    int64_t v = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
        query_int(db, "PRAGMA user_version", &v); /* a new file: 0 */
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

/* ---- reader pool ---- */

static int reader_get(sqlite_store *s, reader **out)
{
    pthread_mutex_lock(&s->rmu);
    while (!s->idle && s->nreaders >= MAX_READERS)
        pthread_cond_wait(&s->rfree, &s->rmu);
    reader *r = s->idle;
    if (r) {
        s->idle = r->next;
        pthread_mutex_unlock(&s->rmu);
        *out = r;
        return 0;
    }
    s->nreaders++;
    pthread_mutex_unlock(&s->rmu);

    int rc = OB_ENOMEM;
    if (!(r = calloc(1, sizeof *r)) || (rc = open_conn(s, false, &r->db)) ||
        (rc = prepare_all(r->db, reader_sql, r->st, R_COUNT))) {
        if (r) {
            finalize_all(r->st, R_COUNT);
            sqlite3_close(r->db);
            free(r);
        }
        pthread_mutex_lock(&s->rmu);
        s->nreaders--;
        pthread_cond_signal(&s->rfree);
        pthread_mutex_unlock(&s->rmu);
        return rc;
    }
    *out = r;
    return 0;
}

static void reader_put(sqlite_store *s, reader *r)
{
    pthread_mutex_lock(&s->rmu);
    r->next = s->idle;
    s->idle = r;
    pthread_cond_signal(&s->rfree);
    pthread_mutex_unlock(&s->rmu);
}

/* ---- snapshots ---- */

static size_t col_len(sqlite3_stmt *st, int c) { return (size_t)sqlite3_column_bytes(st, c); }

static void copy_col(sqlite3_stmt *st, int c, void *dst)
{
    size_t n = col_len(st, c);
    if (n)
        memcpy(dst, sqlite3_column_blob(st, c), n);
}

/* Build a snapshot from a row of JOB_COLS at `st`, with the payload from
 * `pst` (a row of one blob, or NULL) and the errors from `est` (rows of
 * attempt, at, message, already stepped to its first row, or NULL). */
static ob_job *row_to_job(sqlite3_stmt *st, sqlite3_stmt *pst, sqlite3_stmt *est, int est_rc)
{
    job_sizes z = {
        .kind = col_len(st, C_KIND),
        .queue = col_len(st, C_QUEUE),
        .unique_key = col_len(st, C_UNIQUE),
        .result = col_len(st, C_RESULT),
        .meta = col_len(st, C_META),
        .has_meta = sqlite3_column_type(st, C_META) != SQLITE_NULL,
        .payload = pst ? col_len(pst, 0) : 0,
        .has_unique_key = sqlite3_column_type(st, C_UNIQUE) != SQLITE_NULL,
        .has_result = sqlite3_column_type(st, C_RESULT) != SQLITE_NULL,
        .has_payload = pst != NULL,
    };
    /* Errors are read before the block is sized; there are at most
     * errors_kept <= OB_ERRORS_KEPT_MAX of them. */
    struct err { int attempt; int64_t at; char *msg; size_t len; } errs[OB_ERRORS_KEPT_MAX];
    size_t nerr = 0;
    for (int rc = est_rc; est && rc == SQLITE_ROW && nerr < OB_ERRORS_KEPT_MAX; rc = sqlite3_step(est)) {
        size_t len = col_len(est, 2);
        char *m = malloc(len + 1);
        if (!m)
            break;
        copy_col(est, 2, m);
        errs[nerr] = (struct err){sqlite3_column_int(est, 0), sqlite3_column_int64(est, 1), m, len};
        z.errors_text += len;
        nerr++;
    }
    z.nerrors = nerr;
    ob_job *j = obi_job_alloc(&z);
    if (j) {
        memcpy(j->id.b, sqlite3_column_blob(st, C_ID), 16);
        copy_col(st, C_KIND, j->kind);
        copy_col(st, C_QUEUE, j->queue);
        if (j->unique_key)
            copy_col(st, C_UNIQUE, j->unique_key);
        if (j->result)
            copy_col(st, C_RESULT, j->result);
        if (j->meta)
            copy_col(st, C_META, j->meta);
        if (j->payload)
            copy_col(pst, 0, j->payload);
        j->priority = sqlite3_column_int(st, C_PRIORITY);
        j->state = (ob_state)sqlite3_column_int(st, C_STATE);
        j->attempt = sqlite3_column_int(st, C_ATTEMPT);
        j->max_attempts = sqlite3_column_int(st, C_MAX_ATTEMPTS);
        j->timeout_ms = sqlite3_column_int64(st, C_TIMEOUT);
        j->run_at_ms = sqlite3_column_int64(st, C_RUN_AT);
        j->created_at_ms = sqlite3_column_int64(st, C_CREATED);
        j->attempted_at_ms = sqlite3_column_int64(st, C_ATTEMPTED);
        j->finished_at_ms = sqlite3_column_int64(st, C_FINISHED);
        j->cancel_requested = sqlite3_column_int(st, C_CANCEL) != 0;
        for (size_t i = 0; i < nerr; i++)
            obi_job_place_error(j, i, errs[i].attempt, errs[i].at, errs[i].msg, errs[i].len);
    }
    for (size_t i = 0; i < nerr; i++)
        free(errs[i].msg);
    return j;
}

/* ---- writer calls ---- */

#define WS(s, k) ((s)->ws[k])

static int sqlite_begin(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    return step_done(s->w, WS(s, W_BEGIN), "begin");
}

static int sqlite_commit(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    return step_done(s->w, WS(s, W_COMMIT), "commit");
}

static void sqlite_rollback(store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    if (!sqlite3_get_autocommit(s->w)) /* an I/O error may have rolled back already */
        step_done(s->w, WS(s, W_ROLLBACK), "rollback");
}

static void bind_id(sqlite3_stmt *st, int i, const ob_id *id)
{
    sqlite3_bind_blob(st, i, id->b, 16, SQLITE_STATIC);
}

static void bind_text(sqlite3_stmt *st, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_new(sqlite3_stmt *st, const store_new *j)
{
    bind_id(st, 1, &j->id);
    bind_text(st, 2, j->kind);
    bind_text(st, 3, j->queue);
    sqlite3_bind_int(st, 4, j->priority);
    sqlite3_bind_int(st, 5, j->state);
    sqlite3_bind_int(st, 6, j->max_attempts);
    sqlite3_bind_int64(st, 7, j->timeout_ms);
    sqlite3_bind_int64(st, 8, j->run_at);
    sqlite3_bind_int64(st, 9, j->created_at);
    bind_text(st, 10, j->unique_key);
    bind_text(st, 11, j->meta);
}

static int insert_payload(sqlite3 *db, sqlite3_stmt *st, const store_new *j)
{
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(db));
    sqlite3_bind_blob64(st, 2, j->payload ? j->payload : "", j->payload_len, SQLITE_STATIC);
    return step_done(db, st, "insert payload");
}

static int sqlite_insert(store *base, const store_new *j)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_INSERT);
    bind_new(st, j);
    int rc = step_done(s->w, st, "insert job");
    return rc ? rc : insert_payload(s->w, WS(s, W_INSERT_PAYLOAD), j);
}

/* Transactional enqueue on the caller's connection (ob_enqueue_sqlite):
 * statements prepared for the call, since the connection is not ours. */
static int sqlite_insert_tx(store *base, void *conn, const store_new *j, ob_id *existing)
{
    (void)base;
    sqlite3 *db = conn;
    int64_t app = 0;
    int rc = query_int(db, "PRAGMA application_id", &app);
    if (!rc && app != APPLICATION_ID) {
        OB_ERROR("sqlite: ob_enqueue_sqlite: the connection is not to an outbox store");
        return OB_EINVAL;
    }
    sqlite3_stmt *ins = NULL, *pay = NULL, *find = NULL;
    const char *sql[3] = {writer_sql[W_INSERT], writer_sql[W_INSERT_PAYLOAD],
                          writer_sql[W_FIND_UNIQUE]};
    sqlite3_stmt **st[3] = {&ins, &pay, &find};
    for (int i = 0; i < 3 && !rc; i++) {
        int r = sqlite3_prepare_v2(db, sql[i], -1, st[i], NULL);
        if (r != SQLITE_OK)
            rc = sq_fail(db, r, sql[i]);
    }
    if (!rc && j->unique_key) {
        bind_text(find, 1, j->unique_key);
        int r = sqlite3_step(find);
        if (r == SQLITE_ROW) {
            memcpy(existing->b, sqlite3_column_blob(find, 0), 16);
            rc = STORE_EXISTS;
        } else if (r != SQLITE_DONE) {
            rc = sq_fail(db, r, "find unique key");
        }
    }
    if (!rc) {
        bind_new(ins, j);
        if (!(rc = step_done(db, ins, "insert job")))
            rc = insert_payload(db, pay, j);
    }
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(*st[i]);
    return rc;
}

static int sqlite_find_unique(store *base, const char *key, ob_id *id)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_FIND_UNIQUE);
    bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        memcpy(id->b, sqlite3_column_blob(st, 0), 16);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? OB_ENOTFOUND : sq_fail(s->w, rc, "find unique key");
}

static int sqlite_load(store *base, const ob_id *id, store_row *row)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_LOAD);
    bind_id(st, 1, id);
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
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? OB_ENOTFOUND : sq_fail(s->w, rc, "load job");
}

static int sqlite_update(store *base, const store_change *c)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_UPDATE);
    bind_id(st, 1, &c->id);
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
    bind_text(st, 9, c->result);
    sqlite3_bind_int(st, 10, c->from_attempt);
    int rc = sqlite3_step(st);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return OB_ESTATE;
    if (rc != SQLITE_ROW)
        return sq_fail(s->w, rc, "update job");
    if (!c->error)
        return 0;
    st = WS(s, W_ADD_ERROR);
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int(st, 2, c->error_attempt);
    sqlite3_bind_int64(st, 3, c->now);
    bind_text(st, 4, c->error);
    if ((rc = step_done(s->w, st, "add error")))
        return rc;
    st = WS(s, W_TRIM_ERRORS);
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int(st, 2, c->error_attempt - c->errors_kept);
    return step_done(s->w, st, "trim errors");
}

static int sqlite_extend(store *base, const ob_id *id, int attempt, int64_t lease_until)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_EXTEND);
    bind_id(st, 1, id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int64(st, 3, lease_until);
    int rc = step_done(s->w, st, "extend lease");
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

/* Append up to `limit` claim candidates of one queue (NULL: any) to c[*n]. */
static int candidates(sqlite_store *s, const char *queue, int limit, cand *c, int *n)
{
    sqlite3_stmt *st = WS(s, queue ? W_CAND_QUEUE : W_CAND_ALL);
    int i = 1;
    if (queue)
        bind_text(st, i++, queue);
    sqlite3_bind_int(st, i, limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        c[*n] = (cand){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 2),
                       sqlite3_column_int(st, 1)};
        (*n)++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : sq_fail(s->w, rc, "claim candidates");
}

/* Claim in two steps: gather the best `limit` candidates of each queue from
 * its index, merge them in claim order, and flip the first `limit` to
 * running one by one (each an index seek). */
static int sqlite_claim(store *base, const store_claim *c, ob_job **jobs, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    int nq = c->nqueues > 0 ? c->nqueues : 1;
    cand *cs = malloc(sizeof *cs * (size_t)c->limit * (size_t)nq);
    if (!cs)
        return OB_ENOMEM;
    int nc = 0, rc = 0;
    for (int q = 0; q < nq && !rc; q++)
        rc = candidates(s, c->nqueues > 0 ? c->queues[q] : NULL, c->limit, cs, &nc);
    if (c->nqueues > 1)
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
                rc = sq_fail(s->w, r2, "read payload");
            else if (!(jobs[*n] = row_to_job(up, pl, NULL, 0)))
                rc = OB_ENOMEM;
            else
                (*n)++;
            sqlite3_reset(pl);
        } else if (r1 != SQLITE_DONE) {
            rc = sq_fail(s->w, r1, "claim");
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
    return rc == SQLITE_DONE ? 0 : sq_fail(s->w, rc, "promote due jobs");
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
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_fail(s->w, rc, "next due");
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
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_fail(s->w, rc, "expired leases");
}

static int sqlite_prune(store *base, int64_t before, int limit, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    int64_t *seqs = malloc(sizeof *seqs * (size_t)limit);
    if (!seqs)
        return OB_ENOMEM;
    sqlite3_stmt *st = WS(s, W_PRUNE_SELECT);
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int(st, 2, limit);
    int rc, k = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && k < limit)
        seqs[k++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_fail(s->w, rc, "prune select");
    static const int dels[] = {W_DEL_JOB, W_DEL_PAYLOAD, W_DEL_ERRORS};
    for (int i = 0; i < k && !rc; i++) {
        for (size_t d = 0; d < 3 && !rc; d++) {
            sqlite3_bind_int64(WS(s, dels[d]), 1, seqs[i]);
            rc = step_done(s->w, WS(s, dels[d]), "prune");
        }
    }
    free(seqs);
    *n = rc ? 0 : k;
    return rc;
}

static int sqlite_count_unfinished(store *base, int64_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_COUNT_UNFINISHED);
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : sq_fail(s->w, rc, "count");
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

/* ---- reader calls ---- */

static int sqlite_get(store *base, const ob_id *id, ob_job **out)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = reader_get(s, &r);
    if (rc)
        return rc;
    sqlite3_stmt *g = r->st[R_GET], *p = r->st[R_PAYLOAD], *e = r->st[R_ERRORS];
    if ((rc = step_done(r->db, r->st[R_BEGIN], "begin read")))
        goto out;
    bind_id(g, 1, id);
    int r1 = sqlite3_step(g);
    if (r1 == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(g, C_SEQ);
        sqlite3_bind_int64(p, 1, seq);
        sqlite3_bind_int64(e, 1, seq);
        int r2 = sqlite3_step(p), r3 = sqlite3_step(e);
        if (r2 != SQLITE_ROW && r2 != SQLITE_DONE)
            rc = sq_fail(r->db, r2, "read payload");
        else if (r3 != SQLITE_ROW && r3 != SQLITE_DONE)
            rc = sq_fail(r->db, r3, "read errors");
        else if (!(*out = row_to_job(g, r2 == SQLITE_ROW ? p : NULL, e, r3)))
            rc = OB_ENOMEM;
        sqlite3_reset(p);
        sqlite3_reset(e);
    } else {
        rc = r1 == SQLITE_DONE ? OB_ENOTFOUND : sq_fail(r->db, r1, "read job");
    }
    sqlite3_reset(g);
    step_done(r->db, r->st[R_END], "end read");
out:
    reader_put(s, r);
    return rc;
}

/* list_one_fn: one list query on a reader inside its read transaction. */
static int list_one(void *ctx, int state, const ob_list_filter *f, const ob_id *after,
                    int limit, ob_job_page *l)
{
    sqlite3 *db = ctx;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT " JOB_COLS " FROM jobs INDEXED BY %s WHERE %s%s%s%s"
             " ORDER BY id DESC LIMIT ?5",
             state >= 0 ? "jobs_state" : "jobs_id", state >= 0 ? "state = ?1" : "?1 = ?1",
             after ? " AND id < ?2" : "", f->kind ? " AND kind = ?3" : "",
             f->queue ? " AND queue = ?4" : "");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(db, rc, "prepare list");
    sqlite3_bind_int(st, 1, state);
    if (after)
        bind_id(st, 2, after);
    bind_text(st, 3, f->kind);
    bind_text(st, 4, f->queue);
    sqlite3_bind_int(st, 5, limit + 1);
    int r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ob_job *j = row_to_job(st, NULL, NULL, 0);
        if (!j) {
            r = OB_ENOMEM;
            break;
        }
        l->jobs[l->n++] = j;
    }
    if (!r && rc != SQLITE_DONE)
        r = sq_fail(db, rc, "list");
    sqlite3_finalize(st);
    return r;
}

/* Every state's query in one read transaction: one snapshot. */
static int sqlite_list(store *base, const ob_list_filter *f, ob_job_page **out)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = reader_get(s, &r);
    if (rc)
        return rc;
    if (!(rc = step_done(r->db, r->st[R_BEGIN], "begin read"))) {
        rc = obi_store_list_run(f, list_one, r->db, out);
        step_done(r->db, r->st[R_END], "end read");
    }
    reader_put(s, r);
    return rc;
}

static int sqlite_counts(store *base, ob_count_fn fn, void *arg)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = reader_get(s, &r);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    const char *sql = "SELECT state, kind, queue, count(*), min(run_at) FROM jobs "
                      "GROUP BY state, kind, queue";
    rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            fn(arg, (ob_state)sqlite3_column_int(st, 0), (const char *)sqlite3_column_text(st, 1),
               (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3),
               sqlite3_column_int64(st, 4));
        sqlite3_finalize(st);
    }
    rc = rc == SQLITE_DONE ? 0 : sq_fail(r->db, rc, "count jobs");
    reader_put(s, r);
    return rc;
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
    .promote = sqlite_promote,
    .next_due = sqlite_next_due,
    .expired = sqlite_expired,
    .prune = sqlite_prune,
    .count_unfinished = sqlite_count_unfinished,
    .external = sqlite_external,
    .insert_tx = sqlite_insert_tx,
    .get = sqlite_get,
    .list = sqlite_list,
    .counts = sqlite_counts,
};
