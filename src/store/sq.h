/*
 * sq.h - what the files of the SQLite store share (see sqlite.c): the
 * store's structure, the columns of a snapshot, and the helpers every file
 * uses. Internal to src/store.
 */
#ifndef OB_STORE_SQ_H
#define OB_STORE_SQ_H

#include <sqlite3.h>

#include "base/base.h"
#include "store/store.h"

#define SCHEMA_VERSION 5
#define APPLICATION_ID 0x4f424f58 /* 'OBOX' */
#define MAX_READERS 8

/* Take PATH.lock, the store's one-process lock (exclusive, not waiting):
 * *fd holds it until closed. Returns 0, OB_ELOCKED (in use) or an error. */
int obi_sq_lock(const char *path, int *fd);

/* Columns of a job snapshot, in this order, for get and list. */
#define JOB_COLS                                                                        \
    "seq, id, kind, queue, priority, state, attempt, max_attempts, timeout_ms, run_at, " \
    "created_at, attempted_at, finished_at, cancel_requested, unique_key, result, meta, rate_key"
enum {
    C_SEQ, C_ID, C_KIND, C_QUEUE, C_PRIORITY, C_STATE, C_ATTEMPT, C_MAX_ATTEMPTS,
    C_TIMEOUT, C_RUN_AT, C_CREATED, C_ATTEMPTED, C_FINISHED, C_CANCEL, C_UNIQUE, C_RESULT,
    C_META, C_RATE_KEY
};

/* Writer statements, prepared once at open. */
enum {
    W_BEGIN, W_COMMIT, W_ROLLBACK, W_INSERT, W_INSERT_PAYLOAD, W_FIND_UNIQUE, W_LOAD,
    W_UPDATE, W_EXTEND, W_ADD_ERROR, W_TRIM_ERRORS, W_CAND_ALL, W_CAND_ALL_NET, W_CAND_QUEUE,
    W_CAND_PARKED, W_CLAIM_ONE,
    W_PAYLOAD, W_PROMOTE, W_NEXT_DUE, W_EXPIRED, W_EXPIRED_ALL, W_PRUNE_SELECT,
    W_DEL_JOB, W_DEL_PAYLOAD, W_DEL_ERRORS, W_COUNT_UNFINISHED, W_DATA_VERSION, W_Q_ALL,
    W_Q_LOAD, W_Q_SAVE, W_Q_DELETE, W_PARK, W_UNPARK, W_ORPHANS, W_CAND_KEY, W_KEYS_WAITING,
    W_KEY_LOAD, W_KEY_SAVE, W_KEYS_PRUNE, W_COUNT_ADD, W_COUNT_ZERO, W_TERM_ADD, W_DEL_TERMS,
    W_COUNT
};

/* Columns of a queue's row (store_queue), in this order; a job counts
 * as running from the covering index jobs_lease. */
#define QUEUE_COLS                                                                          \
    "name, paused, concurrency, rate_limit, rate_period_ms, rate_window, rate_used,"       \
    " key_rate_limit, key_rate_period_ms, hold_until, key_hold_until,"                      \
    " updated_at, CASE WHEN concurrency > 0 THEN (SELECT count(*) FROM jobs INDEXED BY"      \
    " jobs_lease WHERE state = 3 AND queue = q.name) ELSE 0 END"

typedef struct sqlite_store {
    store base;
    char *path;
    int lock_fd;
    sqlite3 *w;
    sqlite3_stmt *ws[W_COUNT];
    obi_readers readers;  /* sqlite_read.c */
    int64_t data_version; /* as last seen by the writer */
} sqlite_store;

#define WS(s, k) ((s)->ws[k])

/* ---- sqlite.c ---- */

/* Map an SQLite result code to an OB_E* code, logging what failed. */
int obi_sq_fail(sqlite3 *db, int rc, const char *what);
/* Step st once and reset it: 0, or the error (logged as `what`). */
int obi_sq_step(sqlite3 *db, sqlite3_stmt *st, const char *what);
int obi_sq_exec(sqlite3 *db, const char *sql);
/* Open a connection to s's file: the writer (creates it; WAL, FULL sync)
 * or a reader (query only). */
int obi_sq_open(sqlite_store *s, bool writer, sqlite3 **out);
int obi_sq_prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n);
void obi_sq_finalize_all(sqlite3_stmt **st, int n);
void obi_sq_bind_id(sqlite3_stmt *st, int i, const ob_id *id);
void obi_sq_bind_text(sqlite3_stmt *st, int i, const char *t);
/* Column c of st's row as text into dst[cap] ("" for NULL; cut to fit). */
void obi_sq_text_col(sqlite3_stmt *st, int c, char *dst, size_t cap);

/* ---- sqlite_schema.c ---- */

/* The first column of sql's first row, as an integer (0 if none). */
int obi_sq_query_int(sqlite3 *db, const char *sql, int64_t *out);
/* Create the schema in a new file, bring an older one up to date, or
 * refuse a file that is not ours (OB_ESTORE) or is newer (OB_ESCHEMA). */
int obi_sq_check_schema(sqlite_store *s);

/* ---- sqlite_read.c ---- */

/* Build a snapshot from a row of JOB_COLS at `st`, with the payload from
 * `pst` (a row of one blob, or NULL) and the errors from `est` (rows of
 * attempt, at, message, already stepped to its first row, or NULL). NULL
 * on out of memory. */
ob_job *obi_sq_row_to_job(sqlite3_stmt *st, sqlite3_stmt *pst, sqlite3_stmt *est, int est_rc);
/* The reader pool of s (obi_readers_init's make and destroy). */
int obi_sq_reader_make(void *ctx, obi_reader **out);
void obi_sq_reader_destroy(obi_reader *r);
int obi_sq_get(store *base, const ob_id *id, ob_job **out);
int obi_sq_list(store *base, const ob_list_filter *f, ob_job_page **out);
int obi_sq_counts(store *base, ob_count_fn fn, void *arg);
int obi_sq_counts_scan(store *base, ob_count_fn fn, void *arg);
int obi_sq_oldest_due(store *base, const char *queue, int64_t *at);
/* The counter upsert (N1), shared by the writer and insert_tx. */
extern const char obi_sq_count_add_sql[];
/* A job's search terms (store_new.terms), by the insert of W_TERM_ADD's
 * SQL `st` on `db`. */
int obi_sq_insert_terms(sqlite3 *db, sqlite3_stmt *st, const store_new *j);
extern const char obi_sq_term_add_sql[];

/* ---- sqlite_queues.c: queue settings and the park sweep ---- */

int obi_sq_queues_lock(store *base, store_queue **rows, int *n);
int obi_sq_queue_load(store *base, const char *name, store_queue *q);
int obi_sq_queue_save(store *base, const store_queue *q);
int obi_sq_park(store *base, const char *queue, bool park, int max, int *n);
int obi_sq_parked_orphans(store *base, char (*names)[OB_NAME_MAX + 1], int max, int *n);
int obi_sq_queue_delete(store *base, const char *name);
int obi_sq_keys_waiting(store *base, const char *queue, const char *after,
                        char (*keys)[OB_RATE_KEY_MAX + 1], int max, int *n);
int obi_sq_keys_lock(store *base, const char *queue, store_key *rows, int n);
int obi_sq_key_save(store *base, const char *queue, const store_key *k);
int obi_sq_keys_prune(store *base, const char *queue, int64_t now, int64_t period_ms, int max,
                      int *n);
int obi_sq_keys_held(store *base, const char *queue, int64_t now, store_key **rows, int *n);

/* ---- sqlite_schedules.c ---- */

int obi_sq_schedule_load(store *base, const char *name, store_schedule *out);
int obi_sq_schedule_save(store *base, const store_schedule *sc);
int obi_sq_schedule_delete(store *base, const char *name);
int obi_sq_schedules_due(store *base, int64_t now, store_schedule *out, int max, int *n);
int obi_sq_schedules_next(store *base, int64_t *next);
int obi_sq_schedules_read(sqlite3 *db, store_schedule **rows, int *n);
int obi_sq_schedules(store *base, store_schedule **rows, int *n); /* reader (sqlite_read.c) */
int obi_sq_queues(store *base, store_queue **rows, int *n); /* reader */
/* ---- sqlite_records.c ---- */

/* Columns of a record (ob_record), in this order. */
#define RECORD_COLS "set_name, key, tag, value, created_at, updated_at"

int obi_sq_record_save(store *base, const ob_record *r, bool *created);
int obi_sq_record_delete(store *base, const char *set, const char *key);
/* Reads on a reader's connection `db` (in its read transaction): the
 * records of n keys (store_ops.records_get) by `st`, the reader's prepared
 * "SELECT RECORD_COLS ... WHERE set_name = ? AND key = ?" (reset here); a
 * listing (f checked; *rows malloc'd, each value too). */
int obi_sq_records_find(sqlite3 *db, sqlite3_stmt *st, const char *set, const char *const *keys,
                        int n, ob_record *out);
int obi_sq_records_read(sqlite3 *db, const ob_record_filter *f, ob_record **rows, int *n);
int obi_sq_records_get(store *base, const char *set, const char *const *keys, int n,
                       ob_record *out); /* reader */
int obi_sq_records(store *base, const ob_record_filter *f, ob_record **rows, int *n); /* reader */

/* Step st (QUEUE_COLS) to its end, the rows into *rows (malloc'd). */
int obi_sq_queue_rows(sqlite3 *db, sqlite3_stmt *st, store_queue **rows, int *n);

#endif
