/*
 * store.h - the durable store behind the job engine: one interface, one
 * implementation per backend: sqlite.c (one process) and postgres.c (many
 * processes, "nodes", sharing one database; see pg.h).
 *
 * The engine owns all decisions (which state comes next, backoff, limits);
 * a store only keeps rows and answers queries. Its calls come in two kinds:
 *
 *   writer calls  made only by the engine's single commit thread, always
 *                 between begin() and commit()/rollback(). A batch of
 *                 enqueues and state changes from many threads shares one
 *                 transaction and so one fsync (group commit).
 *   reader calls  get/list/count, from any thread, each on a connection of
 *                 its own; they see only committed data.
 *
 * Invariants every store keeps:
 *   S1  commit() returns 0 only once the transaction is on stable storage.
 *   S2  On any error in a batch the engine calls rollback(); nothing of the
 *       batch is kept.
 *   S3  update() applies a change only if the job is still in the state and
 *       attempt the engine saw (compare-and-set), else OB_ESTATE: a stale
 *       answer (from a worker whose lease was rescued) never overwrites.
 *   S4  claim() returns jobs in claim order: priority descending, then
 *       run_at, then insertion order.
 *   S5  Errors: OB_ENOSPC, OB_EIO, OB_ESTORE, OB_ENOMEM, OB_EUNAVAIL
 *       (the database cannot be reached now), details logged.
 *   S6  A shared store (!exclusive) enforces unique keys itself: insert()
 *       answers STORE_EXISTS when another process committed the key first.
 *   N1  The counters (counts()) equal the jobs in each (queue, kind, state)
 *       once a transaction commits: the engine adds each batch's changes
 *       (count_add, in the batch's transaction: its inserts, state changes
 *       and the rows prune() reports gone); insert_tx adds its own job in
 *       the caller's transaction. Tests compare them with counts_scan().
 */
#ifndef OB_STORE_H
#define OB_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "outbox/job.h"
#include "outbox/store.h"

typedef struct store store;

/* A new job, as the commit thread inserts it. Pointers borrowed. */
typedef struct store_new {
    ob_id id;
    const char *kind;
    const char *queue;
    int priority;
    ob_state state; /* OB_SCHEDULED or OB_AVAILABLE */
    const void *payload;
    size_t payload_len;
    int64_t run_at;
    int64_t created_at;
    int max_attempts;
    int64_t timeout_ms;
    const char *unique_key; /* may be NULL */
    const char *meta;       /* may be NULL */
    const char *rate_key;   /* "" or NULL: none */
    const char *terms;      /* NULL or '\n'-separated, lower-cased, checked */
} store_new;

/* What the life cycle needs to know of a job to decide its next state. */
typedef struct store_row {
    ob_state state;
    int attempt;
    int max_attempts;
    int64_t run_at;
    bool cancel_requested;
    char kind[OB_NAME_MAX + 1];
    char queue[OB_NAME_MAX + 1];
    bool has_meta;
    char meta[OB_META_MAX + 1];
    char rate_key[OB_RATE_KEY_MAX + 1]; /* "": none */
} store_row;

/* One state change, applied if the job is still in (from, from_attempt).
 * Every listed field is written. Pointers borrowed. */
typedef struct store_change {
    ob_id id;
    ob_state from;
    int from_attempt;
    ob_state to;
    int attempt;
    int max_attempts;
    int64_t run_at;
    int64_t finished_at;   /* 0: not final */
    bool cancel_requested;
    const char *result;    /* NULL: leave as is */
    const char *error;     /* NULL: none; else recorded for error_attempt */
    int error_attempt;
    int errors_kept;       /* then errors of attempts <= error_attempt - errors_kept go */
    int64_t now;
} store_change;

/* A queue's settings, as the store keeps them: one row per queue that has
 * any (a queue without a row has none). Invariant F2 (queues.c decides
 * it): a row exists only while its queue is paused, limited or held. */
typedef struct store_queue {
    char name[OB_NAME_MAX + 1];
    bool paused;
    int concurrency;       /* 0: none */
    int rate_limit;        /* 0: none; else starts per rate_period_ms */
    int64_t rate_period_ms;
    int64_t rate_window;   /* start of the period rate_used counts in */
    int rate_used;         /* starts in that period */
    int key_rate_limit;    /* 0: none; else each rate key's starts per period */
    int64_t key_rate_period_ms;
    int64_t hold_until;    /* the whole queue starts nothing before (ms) */
    int64_t key_hold_until; /* some key of it may be held until then */
    int64_t updated_at;
    int running;           /* queues_lock, concurrency > 0: running now */
} store_queue;

/* A rate key of a queue, as the store keeps it (the keys table): its
 * count in the key rate's period, and its hold. */
typedef struct store_key {
    char key[OB_RATE_KEY_MAX + 1];
    int64_t rate_window;
    int rate_used;
    int64_t held_until;
} store_key;

/* A key of a part: at most `limit` parked jobs of that rate key. */
typedef struct store_part_key {
    const char *key;
    int limit;
} store_part_key;

/* Part of a claim: at most `limit` jobs of one limited queue, taken from
 * its parked jobs (see `parked` below); when `keys` is set, only jobs of
 * those rate keys, each at most its own limit (a keyed queue). */
typedef struct store_part {
    const char *queue;
    int limit;
    const store_part_key *keys;
    int nkeys;
} store_part;

/* A cron schedule, as the store keeps it: the job it makes at each tick
 * (its template), and where it is. Strings are copies; `payload` and
 * `meta` are malloc'd by the store's reads (obi_schedule_clear) and
 * borrowed for its writes. */
#define OB_TZ_MAX 64
typedef struct store_schedule {
    char name[OB_NAME_MAX + 1];
    char cron[256 + 1];
    char timezone[OB_TZ_MAX + 1]; /* "": UTC */
    char kind[OB_NAME_MAX + 1];
    char queue[OB_NAME_MAX + 1];
    int priority;
    unsigned char *payload;
    size_t payload_len;
    int max_attempts;
    int64_t timeout_ms;
    char *meta;                   /* or NULL */
    char rate_key[OB_RATE_KEY_MAX + 1]; /* "": none */
    int missed;                   /* ob_missed */
    bool paused;
    int64_t next_at;              /* its next tick (ms) */
    int64_t last_at;              /* the last tick that made a job; 0: none */
    ob_id last_job;
    bool has_last_job;
    int64_t updated_at;
} store_schedule;

/* A claim: up to `limit` available jobs become running with attempt + 1
 * and a lease until now + timeout + lease_grace_ms, the best `limit` in
 * claim order (S4) of:
 *   the main part  unparked jobs of the given queues (none: every queue),
 *                  skipping queues that have a row when `net` is set (a
 *                  shared store always skips them); none if main_off
 *   each part      up to parts[i].limit parked jobs of its queue
 *
 * Parking (invariant F3): an available job is `parked` while its queue has
 * a settings row. insert, update and promote set the flag from the table
 * in the same statement, and the sweep (park, parked_orphans) repairs what
 * a race with another process's change of the table left wrong. The claim
 * indexes of the main part hold unparked jobs only, so a paused or limited
 * queue's backlog costs an unlimited claim nothing. */
typedef struct store_claim {
    const char *const *queues;
    int nqueues;
    bool main_off;
    bool net;
    const store_part *parts;
    int nparts;
    int limit;
    int64_t now;
    int64_t lease_grace_ms;
} store_claim;

/* A job moved by a bulk transition (promote), for its event. */
typedef struct store_moved {
    ob_id id;
    ob_state from;
    int attempt;
    char kind[OB_NAME_MAX + 1];
    char queue[OB_NAME_MAX + 1];
} store_moved;

/* A change of `n` jobs to one (queue, kind, state) group's counter. */
typedef struct store_count {
    char queue[OB_NAME_MAX + 1];
    char kind[OB_NAME_MAX + 1];
    ob_state state;
    int64_t n;
} store_count;

/* prune(): a deleted job's group. */
typedef void (*store_gone_fn)(void *arg, const char *kind, const char *queue, ob_state state);

/* A running job found by expired(). */
typedef struct store_lease {
    ob_id id;
    int attempt;
} store_lease;

/* insert(): the unique key is taken by a job another process committed. */
#define STORE_EXISTS 1

/* What a store is opened with (from the engine's options). */
typedef struct store_opts {
    int64_t node_dead_ms; /* shared stores: a node silent this long is dead */
    void (*wake)(void *arg, int64_t due); /* becomes store.wake */
    void (*finished)(void *arg, const ob_id *id, ob_state state); /* store.finished */
    void (*isolated)(void *arg, bool yes);                        /* store.isolated */
    void *wake_arg;
} store_opts;

/* A job this batch made final, for the other processes' waiters. */
typedef struct store_final {
    ob_id id;
    ob_state state;
} store_final;

typedef struct store_ops {
    const char *name;
    void (*close)(store *s);

    /* writer calls */
    int (*begin)(store *s);
    int (*commit)(store *s);
    void (*rollback)(store *s);
    int (*insert)(store *s, const store_new *j);
    /* 0 and *id if a job holds `key`, OB_ENOTFOUND if none. */
    int (*find_unique)(store *s, const char *key, ob_id *id);
    int (*load)(store *s, const ob_id *id, store_row *row); /* OB_ENOTFOUND */
    int (*update)(store *s, const store_change *c);         /* OB_ESTATE (S3) */
    /* Move the lease of a running attempt to lease_until; OB_ESTATE if the
     * job is no longer running that attempt. */
    int (*extend)(store *s, const ob_id *id, int attempt, int64_t lease_until);
    /* Claimed jobs (payload included, errors not) in *jobs[0..*n), each
     * owned by the caller (ob_job_free). `jobs` has room for c->limit. */
    int (*claim)(store *s, const store_claim *c, ob_job **jobs, int *n);
    /* Up to `max` scheduled/retryable jobs due at `now` become available;
     * they are described in out[0..*n). */
    int (*promote)(store *s, int64_t now, store_moved *out, int max, int *n);
    /* Earliest run_at of a scheduled or retryable job, INT64_MAX if none. */
    int (*next_due)(store *s, int64_t *due);
    /* Running jobs whose lease ended before `now` (all running ones if
     * `all`), at most `max`, into out[0..*n). */
    int (*expired)(store *s, int64_t now, bool all, store_lease *out, int max, int *n);
    /* Delete up to `limit` final jobs finished before `before`; *n deleted,
     * each reported to gone() (N1). */
    int (*prune)(store *s, int64_t before, int limit, store_gone_fn gone, void *arg, int *n);
    /* Add d[0..n) to the counters (N1); entries with n == 0 are skipped. */
    int (*count_add)(store *s, const store_count *d, int n);
    /* Jobs not in a final state. */
    int (*count_unfinished)(store *s, int64_t *n);

    /* Queue settings (writer calls). Every queue's row, in name order,
     * into *rows (malloc'd, the caller frees; NULL when none), each with
     * `running` counted when it has a concurrency; a shared store locks the
     * rows until the batch ends, so that claims of a limited queue, and
     * changes to it, are serialised across processes. */
    int (*queues_lock)(store *s, store_queue **rows, int *n);
    /* One queue's row, locked; OB_ENOTFOUND if it has none. */
    int (*queue_load)(store *s, const char *name, store_queue *q);
    /* Write q's row (insert or replace); delete a queue's row. */
    int (*queue_save)(store *s, const store_queue *q);
    int (*queue_delete)(store *s, const char *name);
    /* The sweep (F3): park up to `max` unparked available jobs of `queue`
     * (park), or unpark as many parked ones; *n moved. */
    int (*park)(store *s, const char *queue, bool park, int max, int *n);
    /* Up to `max` queues that have parked jobs and no row (to unpark). */
    int (*parked_orphans)(store *s, char (*names)[OB_NAME_MAX + 1], int max, int *n);
    /* Rate keys (writer calls). Up to `max` distinct keys of `queue`'s
     * parked jobs, in key order, after `after` ("" first). */
    int (*keys_waiting)(store *s, const char *queue, const char *after,
                        char (*keys)[OB_RATE_KEY_MAX + 1], int max, int *n);
    /* The rows of these keys (rows[i].key set by the caller; a key without
     * a row reads as zeros), locked until the batch ends (shared store). */
    int (*keys_lock)(store *s, const char *queue, store_key *rows, int n);
    int (*key_save)(store *s, const char *queue, const store_key *k);
    /* Delete up to `max` rows of `queue` neither held nor counting after
     * `now` (a period of `period_ms`); *n deleted. */
    int (*keys_prune)(store *s, const char *queue, int64_t now, int64_t period_ms, int max,
                      int *n);

    /* Schedules (writer calls). One schedule, locked; OB_ENOTFOUND. */
    int (*schedule_load)(store *s, const char *name, store_schedule *out);
    int (*schedule_save)(store *s, const store_schedule *sc);
    int (*schedule_delete)(store *s, const char *name); /* OB_ENOTFOUND */
    /* Up to `max` unpaused schedules due at `now` (next_at <= now), locked
     * (another process's are skipped), into out[0..*n). */
    int (*schedules_due)(store *s, int64_t now, store_schedule *out, int max, int *n);
    /* The earliest next_at of an unpaused schedule; INT64_MAX if none. */
    int (*schedules_next)(store *s, int64_t *next);

    /* Records (writer calls): insert or replace r (a replaced row keeps
     * its created_at; r->updated_at_ms is the time of both on insert),
     * *created (may be NULL) whether the row is new; delete one
     * (OB_ENOTFOUND). */
    int (*record_save)(store *s, const ob_record *r, bool *created);
    int (*record_delete)(store *s, const char *set, const char *key);

    /* Optional writer calls (NULL: not needed by this store). */
    /* The batch is about to load and change these jobs: lock them and keep
     * their rows, so that load() costs nothing and update() of such a row
     * need not be waited for. */
    int (*prefetch)(store *s, const ob_id *ids, int n);
    /* Tell the other processes, as part of this transaction, that jobs
     * became available (due == 0) or that one is due at `due`. */
    int (*announce)(store *s, int64_t due);
    /* ... and that these jobs became final (their waiters may be there). */
    int (*announce_finals)(store *s, const store_final *f, int n);
    /* Whether this process runs the cluster's chores (rescue, prune) now. */
    bool (*leader)(store *s);
    /* 0 if the store is reachable, else the error (readiness). Any thread. */
    int (*health)(store *s);
    /* Whether another process or connection may have written since the
     * last call (then the engine looks again for work and counts). */
    bool (*external)(store *s);

    /* Transactional enqueue, any thread: insert `j` through the caller's own
     * connection `conn` (PGconn*, sqlite3*), inside the caller's open
     * transaction, so that the job commits or rolls back with it. 0, or
     * STORE_EXISTS with *existing set, or an error. */
    int (*insert_tx)(store *s, void *conn, const store_new *j, ob_id *existing);

    /* reader calls, any thread */
    int (*get)(store *s, const ob_id *id, ob_job **out);
    int (*list)(store *s, const ob_list_filter *f, ob_job_page **out);
    /* The counters (N1): one call per group with jobs (oldest: 0). */
    int (*counts)(store *s, ob_count_fn fn, void *arg);
    /* The same counted from the jobs (a scan: tests, repair). */
    int (*counts_scan)(store *s, ob_count_fn fn, void *arg);
    /* run_at of `queue`'s oldest available job, 0 if none (an index seek
     * per priority present). */
    int (*oldest_due)(store *s, const char *queue, int64_t *at);
    /* Every queue's settings row, in name order (*rows as queues_lock). */
    int (*queues)(store *s, store_queue **rows, int *n);
    /* Every schedule, in name order (*rows malloc'd; each row's payload
     * and meta too: obi_schedule_clear them). */
    int (*schedules)(store *s, store_schedule **rows, int *n);
    /* Optional (NULL: this process is the only one): the nodes sharing
     * the store, oldest first (*rows malloc'd). */
    int (*nodes)(store *s, ob_node **rows, size_t *n);
    /* The keys of `queue` held after `now`, in key order (*rows malloc'd). */
    int (*keys_held)(store *s, const char *queue, int64_t now, store_key **rows, int *n);
    /* The records of keys[0..n) in one read: out[i] the record of keys[i]
     * (its value malloc'd), or zeroed (value NULL) when there is none. A
     * listing as `f` asks (checked by the caller: set given, 1 <= limit <=
     * max), in key order bytewise, *rows malloc'd (NULL when none), each
     * value too. */
    int (*records_get)(store *s, const char *set, const char *const *keys, int n,
                       ob_record *out);
    int (*records)(store *s, const ob_record_filter *f, ob_record **rows, int *n);
} store_ops;

struct store {
    const store_ops *ops;
    /* true: one process owns the store, so every `running` job found at
     * open belongs to a dead process and is rescued at once. */
    bool exclusive;
    /* From store_opts, set before any thread of the store starts. A shared
     * store calls wake() from a thread of its own when another process made
     * work: due == 0, jobs became available; else a job is due at `due`
     * (ms). NULL: nobody to tell. */
    void (*wake)(void *arg, int64_t due);
    /* ... and finished() when another process made a job final; and
     * isolated(true) once this process has not reached the shared store for
     * half its dead interval (others may soon rescue its jobs), then
     * isolated(false) when it has again. */
    void (*finished)(void *arg, const ob_id *id, ob_state state);
    void (*isolated)(void *arg, bool yes);
    void *wake_arg;
};

/* Open the store a URL names. *out owns it: s->ops->close(s). `o` may be
 * NULL (defaults). Returns 0, OB_EINVAL (unknown scheme), OB_ELOCKED,
 * OB_ESCHEMA, OB_EUNAVAIL or a store error. */
int obi_store_open(const char *url, const store_opts *o, store **out);
/* Bring a store's schema up to this build's version (outboxd migrate):
 * *had gets the version found (0: none), *now the version it has now. */
int obi_store_migrate(const char *url, int *had, int *now);
/* The whole-store operations of outbox/store.h by backend (store.c
 * dispatches ob_store_probe and ob_store_backup; store_copy.c is
 * ob_store_copy). */
int obi_store_sqlite_probe(const char *path, ob_store_info *out);
int obi_store_pg_probe(const char *url, ob_store_info *out);
int obi_store_sqlite_backup(const char *path, const char *to, ob_progress_fn fn, void *arg);

/* Backends. */
int obi_store_sqlite_open(const char *path, store **out);
int obi_store_pg_open(const char *url, const store_opts *o, store **out);
int obi_store_sqlite_migrate(const char *path, int *had, int *now);
int obi_store_pg_migrate(const char *url, int *had, int *now);
/* Fault seam: the SQLite VFS the store opens files with (NULL: default).
 * Tests set it to a VFS that fails writes or fsyncs. */
extern const char *obi_store_sqlite_vfs;

/* ---- reader connections (store.c) ---- */

/* The first member of a store's reader: the pool's link. */
typedef struct obi_reader {
    struct obi_reader *next;
} obi_reader;

/* A pool of reader connections, the same for every store: at most `max`
 * are made (on demand, by make); a reader not in use waits in `idle`; a
 * caller finding none idle and `max` made waits for one. */
typedef struct obi_readers {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    obi_reader *idle;
    int made, max;
    void *ctx;
    /* A new reader (*out owned by the pool), or an error. */
    int (*make)(void *ctx, obi_reader **out);
    /* Make r usable (reconnect); on error r goes back to the pool, which
     * keeps it (it may carry a reconnect backoff). NULL: always usable. */
    int (*ready)(void *ctx, obi_reader *r);
    void (*destroy)(obi_reader *r);
} obi_readers;

void obi_readers_init(obi_readers *p, int max, void *ctx,
                      int (*make)(void *ctx, obi_reader **out),
                      int (*ready)(void *ctx, obi_reader *r), void (*destroy)(obi_reader *r));
/* A reader for one read, *out to be given back with obi_readers_put. */
int obi_readers_get(obi_readers *p, obi_reader **out);
void obi_readers_put(obi_readers *p, obi_reader *r);
/* Destroy every reader (none may be in use). */
void obi_readers_destroy(obi_readers *p);

/* ---- listing (store.c) ---- */

/* Append to l up to limit + 1 jobs of one state (-1: every state), newest
 * first, older than `after` (NULL: from the newest), matching f's kind and
 * queue. A store's own query, on its own connection `ctx`. */
typedef int (*list_one_fn)(void *ctx, int state, const ob_list_filter *f, const ob_id *after,
                           int limit, ob_job_page *l);
/* A listing, the same for every store: the cursor checked (OB_EINVAL), one
 * query per wanted state (so each runs down its own index), the results
 * merged newest first, cut at the limit, the next cursor set. */
int obi_store_list_run(const ob_list_filter *f, list_one_fn one, void *ctx, ob_job_page **out);
/* The lowest UUIDv7 of millisecond `ms` (a created_after/before bound). */
void obi_id_at(int64_t ms, ob_id *out);

/* ---- building ob_job snapshots (store.c) ---- */

/* Sizes of the variable parts of a job, to allocate it in one block. */
typedef struct job_sizes {
    size_t kind, queue, unique_key, payload, result, meta, rate_key; /* string lengths */
    size_t nerrors, errors_text;                                      /* count, total bytes */
    bool has_unique_key, has_payload, has_result, has_meta;           /* rate_key: if > 0 */
} job_sizes;

/* Allocate a zeroed ob_job with room for the parts in `z`; string fields
 * point at zeroed space of the right size (+ NUL), errors at an array of
 * z->nerrors entries whose messages the caller places with
 * obi_job_place_error(). Returns NULL on out of memory. */
ob_job *obi_job_alloc(const job_sizes *z);
/* Copy `msg` (len bytes) into the job's error area as error i. */
void obi_job_place_error(ob_job *j, size_t i, int attempt, int64_t at, const char *msg, size_t len);
/* Free a snapshot (ob_job_free), and a page of them (ob_job_page_free).
 * NULL is a no-op. */
void obi_job_release(ob_job *j);
void obi_job_page_release(ob_job_page *l);
/* Append the group (queue, kind, state) with n jobs to v[0..*len) (grown
 * by doubling; *cap its room). false on out of memory (nothing added). */
bool obi_count_append(store_count **v, int *len, int *cap, const char *queue, const char *kind,
                      ob_state state, int64_t n);
/* N1: whether the counters equal a count of the jobs (two reads: call it
 * when nothing writes). Logs each group that differs. */
bool obi_store_counts_agree(store *s);
/* Free what a read of a schedule allocated (payload, meta). */
void obi_schedule_clear(store_schedule *sc);

/* Free a snapshot, first overwriting it in debug builds (OB_POISON) so that
 * a pointer kept into it reads garbage, or crashes under ASan. NULL ok. */
void obi_job_free_poisoned(ob_job *j);

#endif
