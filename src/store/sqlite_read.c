/*
 * sqlite_read.c - the embedded store's readers: connections of their own
 * (WAL lets them read committed snapshots beside the writer), from the
 * pool every store shares (store.c), and what they read: a job with its
 * payload and errors, a page of a listing, the counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sq.h"

/* Reader statements, prepared once per reader connection. */
enum { R_BEGIN, R_END, R_GET, R_PAYLOAD, R_ERRORS, R_RECORD, R_COUNT };
static const char *const reader_sql[R_COUNT] = {
    [R_BEGIN] = "BEGIN",
    [R_END] = "COMMIT",
    [R_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?",
    [R_PAYLOAD] = "SELECT data FROM payloads WHERE seq = ?",
    [R_ERRORS] = "SELECT attempt, at, message, started_at FROM errors WHERE seq = ? ORDER BY attempt",
    /* a record by key: a lookup on every message sent (the suppression
     * list), so prepared once a reader */
    [R_RECORD] = "SELECT " RECORD_COLS " FROM records WHERE set_name = ? AND key = ?",
};

typedef struct reader {
    obi_reader link; /* first: the pool's */
    sqlite3 *db;
    sqlite3_stmt *st[R_COUNT];
} reader;

int obi_sq_reader_make(void *ctx, obi_reader **out)
{
    sqlite_store *s = ctx;
    reader *r = calloc(1, sizeof *r);
    if (!r)
        return OB_ENOMEM;
    int rc = obi_sq_open(s, false, &r->db);
    if (!rc)
        rc = obi_sq_prepare_all(r->db, reader_sql, r->st, R_COUNT);
    if (rc) {
        obi_sq_reader_destroy(&r->link);
        return rc;
    }
    *out = &r->link;
    return 0;
}

void obi_sq_reader_destroy(obi_reader *link)
{
    reader *r = (reader *)link;
    obi_sq_finalize_all(r->st, R_COUNT);
    sqlite3_close(r->db);
    free(r);
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
ob_job *obi_sq_row_to_job(sqlite3_stmt *st, sqlite3_stmt *pst, sqlite3_stmt *est, int est_rc)
{
    job_sizes z = {
        .kind = col_len(st, C_KIND),
        .queue = col_len(st, C_QUEUE),
        .unique_key = col_len(st, C_UNIQUE),
        .result = col_len(st, C_RESULT),
        .meta = col_len(st, C_META),
        .has_meta = sqlite3_column_type(st, C_META) != SQLITE_NULL,
        .rate_key = col_len(st, C_RATE_KEY),
        .payload = pst ? col_len(pst, 0) : 0,
        .has_unique_key = sqlite3_column_type(st, C_UNIQUE) != SQLITE_NULL,
        .has_result = sqlite3_column_type(st, C_RESULT) != SQLITE_NULL,
        .has_payload = pst != NULL,
    };
    /* Errors are read before the block is sized; there are at most
     * errors_kept <= OB_ERRORS_KEPT_MAX of them. */
    struct err { int attempt; int64_t at; char *msg; size_t len; int64_t started; }
        errs[OB_ERRORS_KEPT_MAX];
    size_t nerr = 0;
    for (int rc = est_rc; est && rc == SQLITE_ROW && nerr < OB_ERRORS_KEPT_MAX; rc = sqlite3_step(est)) {
        size_t len = col_len(est, 2);
        char *m = malloc(len + 1);
        if (!m)
            break;
        copy_col(est, 2, m);
        errs[nerr] = (struct err){sqlite3_column_int(est, 0), sqlite3_column_int64(est, 1), m, len,
                                  sqlite3_column_int64(est, 3)};
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
        if (j->rate_key)
            copy_col(st, C_RATE_KEY, j->rate_key);
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
        for (size_t i = 0; i < nerr; i++) {
            obi_job_place_error(j, i, errs[i].attempt, errs[i].at, errs[i].msg, errs[i].len);
            j->errors[i].started_at_ms = errs[i].started;
        }
    }
    for (size_t i = 0; i < nerr; i++)
        free(errs[i].msg);
    return j;
}

/* ---- reader calls ---- */

/* A reader of the pool, inside a read transaction: one snapshot for all
 * that is read until read_end. 0 with *out, or an error. */
static int read_begin(sqlite_store *s, reader **out)
{
    obi_reader *link;
    int rc = obi_readers_get(&s->readers, &link);
    if (rc)
        return rc;
    reader *r = (reader *)link;
    if ((rc = obi_sq_step(r->db, r->st[R_BEGIN], "begin read"))) {
        obi_readers_put(&s->readers, link);
        return rc;
    }
    *out = r;
    return 0;
}

static void read_end(sqlite_store *s, reader *r)
{
    obi_sq_step(r->db, r->st[R_END], "end read");
    obi_readers_put(&s->readers, &r->link);
}

int obi_sq_get(store *base, const ob_id *id, ob_job **out)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    sqlite3_stmt *g = r->st[R_GET], *p = r->st[R_PAYLOAD], *e = r->st[R_ERRORS];
    obi_sq_bind_id(g, 1, id);
    int r1 = sqlite3_step(g);
    if (r1 == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(g, C_SEQ);
        sqlite3_bind_int64(p, 1, seq);
        sqlite3_bind_int64(e, 1, seq);
        int r2 = sqlite3_step(p), r3 = sqlite3_step(e);
        if (r2 != SQLITE_ROW && r2 != SQLITE_DONE)
            rc = obi_sq_fail(r->db, r2, "read payload");
        else if (r3 != SQLITE_ROW && r3 != SQLITE_DONE)
            rc = obi_sq_fail(r->db, r3, "read errors");
        else if (!(*out = obi_sq_row_to_job(g, r2 == SQLITE_ROW ? p : NULL, e, r3)))
            rc = OB_ENOMEM;
        sqlite3_reset(p);
        sqlite3_reset(e);
    } else {
        rc = r1 == SQLITE_DONE ? OB_ENOTFOUND : obi_sq_fail(r->db, r1, "read job");
    }
    sqlite3_reset(g);
    read_end(s, r);
    return rc;
}

/* list_one_fn: one list query on a reader inside its read transaction. */
static int list_one(void *ctx, int state, const ob_list_filter *f, const ob_id *after,
                    int limit, ob_job_page *l)
{
    sqlite3 *db = ctx;
    bool search = f->term || f->unique_key; /* then from the jobs found, by id */
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " JOB_COLS " FROM jobs INDEXED BY %s WHERE %s%s%s%s%s%s%s"
             " ORDER BY id DESC LIMIT ?5",
             state >= 0 && !search ? "jobs_state" : "jobs_id",
             state >= 0 ? "state = ?1" : "?1 = ?1", after ? " AND id < ?2" : "",
             f->kind ? " AND kind = ?3" : "", f->queue ? " AND queue = ?4" : "",
             search ? " AND id IN (SELECT id FROM terms WHERE term = ?6"
                      " UNION ALL SELECT id FROM jobs WHERE unique_key = ?7)"
                    : "",
             f->created_after_ms ? " AND id >= ?8" : "", f->created_before_ms ? " AND id < ?9" : "");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(db, rc, "prepare list");
    sqlite3_bind_int(st, 1, state);
    if (after)
        obi_sq_bind_id(st, 2, after);
    obi_sq_bind_text(st, 3, f->kind);
    obi_sq_bind_text(st, 4, f->queue);
    sqlite3_bind_int(st, 5, limit + 1);
    obi_sq_bind_text(st, 6, f->term);
    obi_sq_bind_text(st, 7, f->unique_key);
    ob_id lo, hi;
    obi_id_at(f->created_after_ms, &lo);
    obi_id_at(f->created_before_ms, &hi);
    obi_sq_bind_id(st, 8, &lo);
    obi_sq_bind_id(st, 9, &hi);
    int r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ob_job *j = obi_sq_row_to_job(st, NULL, NULL, 0);
        if (!j) {
            r = OB_ENOMEM;
            break;
        }
        l->jobs[l->n++] = j;
    }
    if (!r && rc != SQLITE_DONE)
        r = obi_sq_fail(db, rc, "list");
    sqlite3_finalize(st);
    return r;
}

/* Every state's query in one read transaction: one snapshot. */
int obi_sq_list(store *base, const ob_list_filter *f, ob_job_page **out)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    rc = obi_store_list_run(f, list_one, r->db, out);
    read_end(s, r);
    return rc;
}

/* Rows of (state, kind, queue, n) from `sql`, one call of fn each. */
static int count_rows(sqlite_store *s, const char *sql, ob_count_fn fn, void *arg)
{
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            fn(arg, (ob_state)sqlite3_column_int(st, 0), (const char *)sqlite3_column_text(st, 1),
               (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3));
        sqlite3_finalize(st);
    }
    rc = rc == SQLITE_DONE ? 0 : obi_sq_fail(r->db, rc, "count jobs");
    read_end(s, r);
    return rc;
}

int obi_sq_counts(store *base, ob_count_fn fn, void *arg)
{
    return count_rows((sqlite_store *)base,
                      "SELECT state, kind, queue, n FROM counts WHERE n <> 0", fn, arg);
}

int obi_sq_counts_scan(store *base, ob_count_fn fn, void *arg)
{
    return count_rows((sqlite_store *)base,
                      "SELECT state, kind, queue, count(*) FROM jobs GROUP BY 1, 2, 3", fn, arg);
}

/* The oldest run_at of a queue's available jobs in one claim index (ix,
 * parked or not): the index is ordered by priority, then run_at, so the
 * oldest of each priority present is its first entry; the priorities are
 * walked one seek each (a loose index scan). */
#define OLDEST(ix, pk)                                                                          \
    "SELECT (WITH RECURSIVE p(pr) AS (SELECT (SELECT max(priority) FROM jobs INDEXED BY " ix \
    " WHERE state = 2 AND parked = " pk " AND queue = ?1) UNION ALL SELECT (SELECT"          \
    " max(priority) FROM jobs INDEXED BY " ix " WHERE state = 2 AND parked = " pk            \
    " AND queue = ?1 AND priority < p.pr) FROM p WHERE p.pr IS NOT NULL)"                     \
    " SELECT min((SELECT min(run_at) FROM jobs INDEXED BY " ix " WHERE state = 2"             \
    " AND parked = " pk " AND queue = ?1 AND priority = p.pr)) FROM p WHERE p.pr IS NOT NULL) t"

int obi_sq_oldest_due(store *base, const char *queue, int64_t *at)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    const char *sql = "SELECT coalesce(min(t), 0) FROM (" OLDEST("jobs_claim_queue", "0")
                      " UNION ALL " OLDEST("jobs_parked", "1") ")";
    *at = 0;
    rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        obi_sq_bind_text(st, 1, queue);
        if ((rc = sqlite3_step(st)) == SQLITE_ROW)
            *at = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    rc = rc == SQLITE_ROW ? 0 : obi_sq_fail(r->db, rc, "oldest due job");
    read_end(s, r);
    return rc;
}

int obi_sq_queues(store *base, store_queue **rows, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    const char *sql = "SELECT " QUEUE_COLS " FROM queues q ORDER BY name";
    rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = obi_sq_queue_rows(r->db, st, rows, n);
        sqlite3_finalize(st);
    } else {
        rc = obi_sq_fail(r->db, rc, "read queues");
    }
    read_end(s, r);
    return rc;
}

int obi_sq_keys_held(store *base, const char *queue, int64_t now, store_key **rows, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    *rows = NULL;
    *n = 0;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    const char *sql = "SELECT key, rate_window, rate_used, held_until FROM keys"
                      " WHERE queue = ? AND held_until > ? ORDER BY key LIMIT 1000";
    rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        rc = obi_sq_fail(r->db, rc, "held keys");
        read_end(s, r);
        return rc;
    }
    obi_sq_bind_text(st, 1, queue);
    sqlite3_bind_int64(st, 2, now);
    int cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            store_key *v = realloc(*rows, (size_t)cap * sizeof *v);
            if (!v) {
                rc = SQLITE_NOMEM;
                break;
            }
            *rows = v;
        }
        store_key *k = &(*rows)[(*n)++];
        snprintf(k->key, sizeof k->key, "%s", (const char *)sqlite3_column_text(st, 0));
        k->rate_window = sqlite3_column_int64(st, 1);
        k->rate_used = sqlite3_column_int(st, 2);
        k->held_until = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    rc = rc == SQLITE_DONE ? 0 : obi_sq_fail(r->db, rc, "held keys");
    if (rc) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    read_end(s, r);
    return rc;
}

int obi_sq_schedules(store *base, store_schedule **rows, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    rc = obi_sq_schedules_read(r->db, rows, n);
    read_end(s, r);
    return rc;
}

int obi_sq_records_get(store *base, const char *set, const char *const *keys, int n,
                       ob_record *out)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    rc = obi_sq_records_find(r->db, r->st[R_RECORD], set, keys, n, out);
    read_end(s, r);
    return rc;
}

int obi_sq_records(store *base, const ob_record_filter *f, ob_record **rows, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    reader *r;
    int rc = read_begin(s, &r);
    if (rc)
        return rc;
    rc = obi_sq_records_read(r->db, f, rows, n);
    read_end(s, r);
    return rc;
}
