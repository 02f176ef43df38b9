/*
 * pg.h - internals of the PostgreSQL store, shared by its files:
 *
 *   pg_conn.c   one connection that reconnects by itself, and the pipeline
 *               through which statements are sent: many deferred statements
 *               and one that is waited for share one round trip
 *   pg_schema.c the tables, their numbered migrations, the version check
 *   postgres.c  the store operations (store.h) on those tables
 *   pg_node.c   this process as a node of the cluster: its heartbeat, the
 *               leader lock, LISTEN for work made by other nodes, and the
 *               notifications it sends them after each commit
 *
 * Several outbox processes ("nodes") share one database. Every row a node
 * claims names it (outbox_jobs.node); each node heartbeats in outbox_nodes;
 * the node holding the leader advisory lock runs the cluster chores (rescue,
 * prune) and declares a node dead when its heartbeat is older than
 * node_dead_ms, database clock, so node clocks do not matter for it.
 */
#ifndef OB_STORE_PG_H
#define OB_STORE_PG_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "base/base.h"
#include "store/store.h"

#define PG_SCHEMA_VERSION 4
/* Advisory lock keys: (PG_LOCK_CLASS + n, hashtext(schema)). */
#define PG_LOCK_LEADER 0x4f424f58  /* 'OBOX': held by the leader's session */
#define PG_LOCK_CHORE 0x4f424f59   /* per transaction: one chore at a time */
#define PG_LOCK_MIGRATE 0x4f424f5a /* per transaction: one migrator at a time */
#define PG_LOCK_QUEUE 0x4f424f5b   /* per transaction and queue: one change at a time */

/* ---- pg_conn.c ---- */

/* What a deferred statement must return when its result is read: any
 * result, that many rows changed (n >= 0), or nothing that counts (a
 * hint: its failure is logged, not returned; D1 in pg_conn.c). */
enum { PQ_HINT = -2, PQ_ANY = -1, PQ_ONE_ROW_CHANGED = 1 };

#define PQ_PENDING_MAX 256 /* deferred statements before a sync is forced */

/* A statement set prepared on every (re)connection of a pgconn. */
typedef struct pg_stmts {
    int n;
    const char *const *sql;
} pg_stmts;

typedef struct pgconn {
    PGconn *c;
    const char *url;          /* borrowed from the store */
    const char *role;         /* for logs: "writer", "reader", "node" */
    const pg_stmts *stmts;    /* prepared as "s0", "s1", ... (may be NULL) */
    const char *setup;        /* SQL run first on every connection (may be NULL) */
    bool pipeline;            /* kept in pipeline mode between calls */
    int64_t retry_at;         /* broken: no attempt before this (ms) */
    int64_t backoff_ms;
    int64_t down_since;       /* ms, 0 while up */
    /* pipeline: expectations of the deferred statements sent so far */
    int npend;
    int pend[PQ_PENDING_MAX + 1];
    int pend_rc;              /* first failure among them */
    /* Called before anything is sent (may be NULL): sends what its owner
     * gathered, so that it goes first (I1 in pg_gather.c). */
    int (*before)(void *arg);
    void *before_arg;
    bool in_before;
} pgconn;

/* Make sure the connection is up: 0, or OB_EUNAVAIL (reconnecting with
 * backoff; the first failure of an outage is logged, and the recovery). */
int obi_pgc_ready(pgconn *p);
void obi_pgc_close(pgconn *p);
/* Map a failed result (or a NULL one) to an OB_E* code and log it; a lost
 * connection is closed so that the next obi_pgc_ready reconnects. */
int obi_pgc_fail(pgconn *p, const PGresult *r, const char *what);

/* Pipeline: send prepared statement `stmt` with text parameters (binary
 * where fmts[i] == 1; fmts may be NULL), results in binary. Deferred: its
 * result is checked against `expect` at the next obi_pgc_sync. */
int obi_pgc_defer(pgconn *p, int stmt, int n, const char *const *vals, const int *lens,
              const int *fmts, int expect);
/* Send `stmt` (or, if sql != NULL, that SQL unprepared) and wait: every
 * deferred result is read and checked first, then this one goes to *out
 * (owned by the caller: PQclear). Returns 0 or the first error. */
int obi_pgc_call(pgconn *p, int stmt, const char *sql, int n, const char *const *vals,
             const int *lens, const int *fmts, PGresult **out);
/* Read every deferred result: 0 or the first error. */
int obi_pgc_sync(pgconn *p);

/* Binary result fields. */
int64_t obi_pgv_int(const PGresult *r, int row, int col); /* int2/4/8, bool; NULL: 0 */
bool obi_pgv_null(const PGresult *r, int row, int col);
const char *obi_pgv_str(const PGresult *r, int row, int col, size_t *len);
void obi_pgv_id(const PGresult *r, int row, int col, ob_id *out);

/* Text parameters: a formatted integer in a small buffer. */
typedef struct pgnum {
    char s[24];
} pgnum;
const char *obi_pg_i64(pgnum *b, int64_t v);

/* ---- pg_schema.c ---- */

/* Create or migrate the schema on `c` (up to PG_SCHEMA_VERSION), or refuse
 * a newer one (OB_ESCHEMA). *from gets the version found (0: none). */
int obi_pg_schema_check(PGconn *c, int *from);

/* ---- pg_node.c ---- */

typedef struct pg_node {
    pgconn conn;
    pthread_t thread;
    bool running;
    int stop_fd;               /* eventfd: wakes the thread to stop */
    atomic_bool leader;        /* this session holds PG_LOCK_LEADER */
    atomic_llong up_since;     /* mono ms its connection last came up */
    atomic_llong beat_ok_at;   /* mono ms of the last heartbeat that committed */
    int64_t dead_ms, beat_ms;
    ob_id id;
    char idhex[33];
    char channel[128];         /* NOTIFY channel of this schema */
    int lock_key;              /* hashtext(schema) */
    store *st;                 /* for wake() */
} pg_node;

/* Act on one notification on the channel: "NODE DUE" (DUE 0: jobs are
 * available; else one is due then) or "NODE f ID:STATE,..." (jobs another
 * node made final). Anyone who may NOTIFY can send anything: what does not
 * parse is ignored. */
void obi_pg_node_hear(pg_node *n, const char *msg);
/* Register this node (its row) and start its thread. */
int obi_pg_node_start(pg_node *n, store *st);
/* Stop the thread, and remove this node's row. */
void obi_pg_node_stop(pg_node *n);

/* ---- the store (postgres.c) ---- */

#define MAX_READERS 8

/* A snapshot's columns, in this order (JOB_COLS), for claims and reads. */
#define JOB_COLS                                                                          \
    "j.id, j.kind, j.queue, j.priority, j.state, j.attempt, j.max_attempts, j.timeout_ms, " \
    "j.run_at, j.created_at, j.attempted_at, j.finished_at, j.cancel_requested, "           \
    "j.unique_key, j.result, j.meta, j.rate_key"
enum {
    C_ID, C_KIND, C_QUEUE, C_PRIORITY, C_STATE, C_ATTEMPT, C_MAX_ATTEMPTS, C_TIMEOUT,
    C_RUN_AT, C_CREATED, C_ATTEMPTED, C_FINISHED, C_CANCEL, C_UNIQUE, C_RESULT, C_META,
    C_RATE_KEY, C_EXTRA /* payload (claims), or errors as JSON (get) */
};
#define ID_PARAM(id) ((const char *)(id)->b)

/* ---- pg_gather.c: a batch's inserts and updates, one statement each ---- */

/* Make *buf hold at least `need` bytes (capacity doubling from 256). */
bool obi_pg_grow(char **buf, size_t *cap, size_t need);

#define GATHER_COLS 12 /* the most columns of a gathered statement */

/* One column's elements, in array_send's binary format. */
typedef struct pg_arr {
    char *buf;
    size_t len, cap;
    bool nulls;
} pg_arr;

/* Rows gathered for one statement: one array a column. */
typedef struct pg_rows {
    pg_arr col[GATHER_COLS];
    int n;
    size_t bytes;
} pg_rows;

typedef struct pg_gather {
    pg_rows ins;   /* INSERT_MANY_SQL's */
    pg_rows terms; /* TERMS_MANY_SQL's */
    pg_rows upd;   /* W_UPDATE_MANY's */
} pg_gather;

/* A row the batch locked (prefetch), kept current as the batch changes it. */
typedef struct held {
    ob_id id;
    store_row row;
} held;

/* insert_tx's statements, naming the schema and the channel (malloc'd). */
typedef struct pg_tx {
    char *insert, *find, *notify, *terms;
} pg_tx;

typedef struct pg_store pg_store;
struct pg_store {
    store base;
    char *url;
    store_opts o;
    pgconn w;            /* the commit thread's */
    pg_node node;
    pg_tx tx;            /* insert_tx's statements (pg_tx.c) */
    obi_readers readers;
    /* per transaction, commit thread only */
    held *held;
    int nheld, heldcap;
    int chore_lock;      /* -1: not asked yet, 0: another node has it, 1: ours */
    pg_gather gather;    /* rows gathered, not sent yet (pg_gather.c) */
    char *notes;         /* NOTIFY payloads of the transaction, each NUL-ended, */
    size_t notes_len, notes_cap; /* sent after its commit (pg_commit) */
};

/* Gather j's insert (no unique key), or a change of a row the batch holds;
 * sent before the writer's next statement (I1). 0, OB_ENOMEM, or a send's
 * error. */
int obi_pg_gather_insert(pg_store *s, const store_new *j);
int obi_pg_gather_update(pg_store *s, const store_change *c);
/* pgconn.before of the writer (arg: the pg_store): send what waits. */
int obi_pg_gather_flush(void *arg);
void obi_pg_gather_reset(pg_gather *g); /* drop what waits (a rollback) */
void obi_pg_gather_free(pg_gather *g);

/* ---- pg_node.c: notifications to the other nodes, sent after commit ---- */

/* Keep "work made" (due 0: available now) or "jobs made final" for after
 * the transaction's commit; obi_pg_notes_send sends them (deferred hints)
 * behind the COMMIT. 0 or OB_ENOMEM. */
int obi_pg_note_work(pg_store *s, int64_t due);
int obi_pg_note_finals(pg_store *s, const store_final *f, int n);
int obi_pg_notes_send(pg_store *s);

/* The writer's statements (their SQL: writer_sql in postgres.c). */
enum {
    W_BEGIN, W_COMMIT, W_ROLLBACK, W_INSERT, W_FIND_UNIQUE, W_LOAD, W_PREFETCH, W_UPDATE,
    W_ADD_ERROR, W_TRIM_ERRORS, W_EXTEND, W_CLAIM, W_CLAIM_QUEUE, W_CLAIM_QUEUES, W_CAND,
    W_CAND_QUEUES, W_CAND_PARTS, W_CAND_KEYS, W_CLAIM_IDS, W_CLAIMP_ALL, W_CLAIMP_Q,
    W_QUEUES_LOCK, W_RUNNING,
    W_QUEUE_SAVE, W_QUEUE_DELETE, W_KEYS_WAITING, W_KEYS_ENSURE, W_KEYS_LOCK, W_KEY_SAVE,
    W_KEYS_PRUNE, W_PROMOTE,
    W_NEXT_DUE, W_CHORE_LOCK, W_EXPIRED, W_BURY_NODES, W_PRUNE, W_COUNT_UNFINISHED, W_NOTIFY,
    W_COUNT_ADD, W_COUNT_FOLD, W_TERMS, W_INSERT_MANY, W_TERMS_MANY, W_UPDATE_MANY, W_COUNT
};

/* ---- pg_flow.c: claims with parts, queue settings, rate keys ---- */

/* A claim with parts (store_claim): in one statement when at most one part
 * is keyed, else candidates part by part. */
int obi_pg_claim_parts(pg_store *s, const store_claim *c, ob_job **jobs, int *n);
/* The claimed rows of r (cleared) into jobs[*n..], in claim order (S4). */
int obi_pg_take_claimed(PGresult *r, int limit, ob_job **jobs, int *n);
/* A text[] literal of queue names (malloc'd; NULL on out of memory). */
char *obi_pg_queue_array(const char *const *q, int n);
/* An array literal of n elements, each printed by put(ctx, i, dst) in at
 * most `each` bytes: {a,b,...} (malloc'd; NULL on out of memory). */
char *obi_pg_array_lit(int n, size_t each, void (*put)(const void *ctx, int i, char *dst),
                       const void *ctx);

/* ---- the insert (postgres.c) and transactional enqueue (pg_tx.c) ---- */

/* The insert, its tables prefixed by p (insert_tx names the schema). */
#define INSERT_SQL(p)                                                                        \
    "INSERT INTO " p "outbox_jobs(id, kind, queue, priority, state, max_attempts,"          \
    " timeout_ms, run_at, created_at, unique_key, meta, payload, rate_key, parked)"         \
    " VALUES($1::uuid, $2, $3, $4::int, $5::smallint, $6::int, $7::bigint,"                 \
    " $8::bigint, $9::bigint, $10, $11, $12::bytea, $13,"                                   \
    " EXISTS(SELECT 1 FROM " p "outbox_queues WHERE name = $3))" /* F3 */                   \
    " ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING"
/* insert_tx's: the job and its count (N1) in the caller's transaction, on a
 * row of the caller's backend (no two transactions share one). */
#define INSERT_TX_SQL(p)                                                                     \
    "WITH i AS (" INSERT_SQL(p) " RETURNING queue, kind, state) INSERT INTO " p               \
    "outbox_counts(node, queue, kind, state, n) SELECT 'tx:' || pg_backend_pid(), queue,"     \
    " kind, state, 1 FROM i ON CONFLICT (node, queue, kind, state)"                           \
    " DO UPDATE SET n = " p "outbox_counts.n + 1"
/* A job's search terms, '\n'-separated in $2 (p: as INSERT_SQL). */
#define TERMS_SQL(p)                                                                         \
    "INSERT INTO " p "outbox_terms(term, id) SELECT DISTINCT t, $1::uuid FROM"                 \
    " unnest(string_to_array($2, E'\\n')) t ON CONFLICT DO NOTHING"


/* INSERT_SQL for many rows without a unique key: one array a column
 * (pg_gather.c). */
#define INSERT_MANY_SQL                                                                      \
    "INSERT INTO outbox_jobs(id, kind, queue, priority, state, max_attempts, timeout_ms,"    \
    " run_at, created_at, meta, payload, rate_key, parked) SELECT u.*, EXISTS(SELECT 1 FROM" \
    " outbox_queues q WHERE q.name = u.queue) FROM unnest($1::uuid[], $2::text[],"          \
    " $3::text[], $4::int[], $5::smallint[], $6::int[], $7::bigint[], $8::bigint[],"        \
    " $9::bigint[], $10::text[], $11::bytea[], $12::text[]) u(id, kind, queue, priority,"   \
    " state, max_attempts, timeout_ms, run_at, created_at, meta, payload, rate_key)" /* F3 */
/* W_UPDATE for many rows the batch holds, each once (I2 in pg_gather.c). */
#define UPDATE_MANY_SQL                                                                      \
    "UPDATE outbox_jobs j SET state = u.st, attempt = u.att,"                                \
    " max_attempts = u.maxa, run_at = u.run_at, finished_at = u.fin,"                        \
    " cancel_requested = u.cancel, result = coalesce(u.result, j.result),"                   \
    " lease_until = CASE WHEN u.st = 3 THEN j.lease_until END,"                              \
    " node = CASE WHEN u.st = 3 THEN j.node END,"                                            \
    " parked = CASE WHEN u.st = 2 THEN EXISTS (SELECT 1 FROM outbox_queues q"                \
    " WHERE q.name = j.queue) ELSE j.parked END" /* F3 */                                    \
    " FROM unnest($1::uuid[], $2::smallint[], $3::smallint[], $4::int[],"                    \
    " $5::int[], $6::bigint[], $7::bigint[], $8::boolean[], $9::text[],"                     \
    " $10::int[]) u(id, from_st, st, att, maxa, run_at, fin, cancel, result,"                \
    " from_att) WHERE j.id = u.id AND j.state = u.from_st"                                   \
    " AND j.attempt = u.from_att"
/* TERMS_SQL for many jobs: their ids, and their terms '\n'-separated. */
#define TERMS_MANY_SQL                                                                       \
    "INSERT INTO outbox_terms(term, id) SELECT DISTINCT t, u.id FROM unnest($1::uuid[],"     \
    " $2::text[]) u(id, terms), unnest(string_to_array(u.terms, E'\\n')) t"                   \
    " ON CONFLICT DO NOTHING"

/* The 13 parameters of INSERT_SQL for j (b: room for its numbers). */
void obi_pg_insert_params(const store_new *j, pgnum b[6], const char *v[13], int len[13],
                          int fmt[13]);
int obi_pg_tx_init(pg_tx *tx, PGconn *c, const char *schema, const char *channel);
void obi_pg_tx_free(pg_tx *tx);
int obi_pg_insert_tx(store *base, void *conn, const store_new *j, ob_id *existing);

/* ---- pg_counts.c: the counters (N1 in store.h) ---- */

/* Add a batch's changes to this node's rows (one statement, deferred). */
int obi_pg_count_add(store *base, const store_count *d, int n);
/* The leader's fold: rows of nodes gone (and of transactional enqueues)
 * move into its own. */
int obi_pg_count_fold(pg_store *s);
int obi_pg_queues_lock(store *base, store_queue **rows, int *n);
int obi_pg_queue_load(store *base, const char *name, store_queue *q);
int obi_pg_queue_save(store *base, const store_queue *q);
int obi_pg_queue_delete(store *base, const char *name);
int obi_pg_park(store *base, const char *queue, bool park, int max, int *n);
int obi_pg_parked_orphans(store *base, char (*names)[OB_NAME_MAX + 1], int max, int *n);
int obi_pg_keys_waiting(store *base, const char *queue, const char *after,
                        char (*keys)[OB_RATE_KEY_MAX + 1], int max, int *n);
int obi_pg_keys_lock(store *base, const char *queue, store_key *rows, int n);
int obi_pg_key_save(store *base, const char *queue, const store_key *k);
int obi_pg_keys_prune(store *base, const char *queue, int64_t now, int64_t period_ms, int max,
                      int *n);

/* ---- pg_read.c ---- */

/* A snapshot from row i of r (JOB_COLS first). With `payload`, the
 * payload is the column after C_EXTRA's errors (get) or C_EXTRA itself
 * (claims); errors come as JSON [[attempt, at, message], ...], or NULL.
 * NULL on out of memory. */
ob_job *obi_pg_row_to_job(const PGresult *r, int i, bool payload, const char *errors_json);
/* The reader pool's calls (obi_readers_init). */
int obi_pg_reader_make(void *ctx, obi_reader **out);
int obi_pg_reader_ready(void *ctx, obi_reader *r);
void obi_pg_reader_destroy(obi_reader *r);
int obi_pg_get(store *base, const ob_id *id, ob_job **out);
int obi_pg_list(store *base, const ob_list_filter *f, ob_job_page **out);
int obi_pg_counts(store *base, ob_count_fn fn, void *arg);
int obi_pg_counts_scan(store *base, ob_count_fn fn, void *arg);
int obi_pg_oldest_due(store *base, const char *queue, int64_t *at);
int obi_pg_nodes(store *base, ob_node **rows, size_t *n);
int obi_pg_queues(store *base, store_queue **rows, int *n);
int obi_pg_keys_held(store *base, const char *queue, int64_t now, store_key **rows, int *n);

/* Columns of a queue's row (store_queue), in this order. */
#define PG_QUEUE_COLS                                                                      \
    "name, paused, concurrency, rate_limit, rate_period_ms, rate_window, rate_used,"        \
    " key_rate_limit, key_rate_period_ms, hold_until, key_hold_until, updated_at"
/* Rows of r (PG_QUEUE_COLS, then the running count if `counted`) into
 * *rows (malloc'd; NULL when none). */
int obi_pg_queue_rows(const PGresult *r, bool counted, store_queue **rows, int *n);
int obi_pg_schedules(store *base, store_schedule **rows, int *n);

/* ---- pg_schedules.c ---- */

#define PG_SCHED_COLS                                                                     \
    "name, cron, timezone, kind, queue, priority, payload, max_attempts, timeout_ms, meta," \
    " rate_key, missed, paused, next_at, last_at, last_job, updated_at"
int obi_pg_schedule_load(store *base, const char *name, store_schedule *out);
int obi_pg_schedule_save(store *base, const store_schedule *sc);
int obi_pg_schedule_delete(store *base, const char *name);
int obi_pg_schedules_due(store *base, int64_t now, store_schedule *out, int max, int *n);
int obi_pg_schedules_next(store *base, int64_t *next);
/* The rows of r (PG_SCHED_COLS; r is cleared) into *rows (malloc'd). */
int obi_pg_schedules_rows(PGresult *r, store_schedule **rows, int *n);

/* ---- pg_records.c ---- */

int obi_pg_record_save(store *base, const ob_record *r, bool *created);
int obi_pg_record_delete(store *base, const char *set, const char *key);
int obi_pg_records_get(store *base, const char *set, const char *const *keys, int n,
                       ob_record *out);
int obi_pg_records(store *base, const ob_record_filter *f, ob_record **rows, int *n);
/* Columns of a record (ob_record), in this order. */
#define PG_RECORD_COLS "set_name, key, tag, value, created_at, updated_at"
/* The records of set whose keys are in keys_json (a JSON array of
 * strings), one prepared read (pg_read.c); *out as obi_pgc_call. */
int obi_pg_records_read(store *base, const char *set, const char *keys_json, PGresult **out);
/* One unprepared read on a reader of the pool (pg_read.c); *out as
 * obi_pgc_call. */
int obi_pg_read(store *base, const char *sql, int n, const char *const *v, PGresult **out);

#endif
