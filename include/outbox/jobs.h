/*
 * outbox/jobs.h - the job engine: durable enqueue, worker pools, retries
 * with backoff, schedules, priorities, queues, timeouts, cancellation,
 * unique keys and crash rescue, over a store named by a URL.
 *
 * Promises
 *   - An enqueue succeeds only after the job is on stable storage (the
 *     store's commit, fsync included, has returned). Concurrent enqueues
 *     share one commit (group commit).
 *   - Execution is at-least-once: a job whose worker died or hung is
 *     rescued and run again, with the lost attempt counted.
 *   - Payloads are bytes copied at enqueue: the caller's buffer may be
 *     freed as soon as the call returns.
 *   - Nothing grows without bound: payload, result and error sizes, the
 *     number of unfinished jobs, operations in flight, waiters and the
 *     history of errors per job all have limits (ob_engine_opts).
 *
 * Life cycle (see src/jobs/lifecycle.c for the full transition table)
 *
 *   scheduled --due--> available --claim--> running --done--> completed
 *                          ^                   |
 *                          +--- retryable <----+--retry-->  (attempts left)
 *                                              +--retry/discard--> discarded
 *   any unfinished state --cancel--> cancelled
 *   running, lease expired --rescue--> available (attempt counted)
 *
 * Threads: every function here is thread-safe, except that
 * ob_engine_close() must not race with other calls on the same engine.
 * Callbacks (ob_enqueued_fn, ob_event_fn) run on the engine's commit
 * thread: they must be short and must not call blocking engine functions
 * (ob_enqueue, ob_job_wait, ob_pool_stop); ob_enqueue_async is fine.
 */
#ifndef OUTBOX_JOBS_H
#define OUTBOX_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/common.h"
#include "outbox/id.h"
#include "outbox/job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- states --------------------------------------------------------- */

/* "scheduled", "available", ...; "unknown" for anything else. */
const char *ob_state_name(int state);
/* Parse a state name. Returns 0 or OB_EINVAL. */
int ob_state_parse(const char *name, ob_state *out);

/* ---- engine --------------------------------------------------------- */

typedef struct ob_engine ob_engine;

/* Exponential backoff with jitter: the delay before retry n (n = the
 * attempt that failed, from 1) is
 *     min(max_ms, base_ms * factor^(n-1)) * (1 + jitter * u),  u in [-1, 1)
 */
typedef struct ob_backoff {
    int64_t base_ms; /* default 1000 */
    double factor;   /* default 2.0, >= 1 */
    int64_t max_ms;  /* default 3600000 (1 hour) */
    double jitter;   /* default 0.2, in [0, 1] */
} ob_backoff;

/* Defaults of a job kind; a job may override timeout and max_attempts. */
typedef struct ob_kind_opts {
    int64_t timeout_ms; /* per attempt; default 60000 */
    int max_attempts;   /* default 25 */
    ob_backoff backoff;
} ob_kind_opts;

typedef struct ob_engine_opts {
    size_t max_payload;         /* bytes; default 1 MiB, at most 64 MiB */
    size_t max_result;          /* bytes of result JSON; default 64 KiB */
    size_t max_error;           /* bytes kept of one error message; default 1 KiB */
    int errors_kept;            /* per job, the newest are kept; default 20, 1..OB_ERRORS_KEPT_MAX */
    int64_t max_jobs;           /* unfinished jobs in the store; default 10,000,000 */
    int max_inflight;           /* enqueues, cancels, retries waiting for a commit; default 65,536 */
    int max_batch;              /* operations per commit; default 1024 */
    int max_waiters;            /* concurrent ob_job_wait calls; default 10,000 */
    int64_t retention_ms;       /* finished jobs are pruned after; default 7 days */
    int prune_batch;            /* rows deleted per commit while pruning; default 1000 */
    int64_t prune_interval_ms;  /* default 60000 */
    int64_t lease_grace_ms;     /* lease = timeout + grace; default 30000 */
    int64_t rescue_interval_ms; /* how often expired leases are looked for; default 5000 */
    int64_t node_dead_ms;       /* postgres: a node silent this long is dead and its
                                   running jobs are rescued; default 15000 */
    ob_kind_opts kind_defaults; /* used by ob_engine_register(…, NULL) */
} ob_engine_opts;

/* Fill `o` with the defaults above. */
void ob_engine_opts_init(ob_engine_opts *o);

/* Open an engine on a store:
 *   "sqlite:PATH"   embedded SQLite database at PATH (created if missing);
 *                   one process at a time (a second open answers OB_ELOCKED).
 *                   Jobs left `running` by a process that died are rescued
 *                   at open.
 *   "postgres://USER@HOST:PORT/DB?options=-csearch_path%3DSCHEMA" (any libpq
 *                   URL) a PostgreSQL database that any number of processes,
 *                   on any machines, share: each is a node; jobs a dead node
 *                   left running are rescued node_dead_ms after its last
 *                   heartbeat. Tables go to the current schema.
 * Either schema is created, or migrated from an older outbox, at open.
 * `opts` may be NULL for the defaults; it is copied.
 * On success *out owns the engine: release it with ob_engine_close().
 * Returns 0, OB_EINVAL (bad URL or option), OB_ELOCKED, OB_ESCHEMA, or a
 * store error; the message is logged. */
int ob_engine_open(const char *url, const ob_engine_opts *opts, ob_engine **out);

/* Create a store's schema, or migrate it to this version, without opening
 * an engine (ob_engine_open does the same itself). *had gets the version
 * found (0: none), *now the version it has now. Returns 0, OB_EINVAL (bad
 * URL), OB_ESCHEMA (newer than this outbox), OB_ELOCKED (SQLite: in use),
 * OB_EUNAVAIL or a store error. */
int ob_store_migrate(const char *url, int *had, int *now);

/* Whether the engine can take work: 0, or the error of its last store
 * commit (the store is failing), OB_EUNAVAIL (the database does not answer
 * this node's heartbeat), or OB_ESHUTDOWN (closing). */
int ob_engine_ready(ob_engine *e);

/* The nodes of the engine's store (a shared store's, from their heartbeats;
 * an embedded store has this process only), oldest first: *out (malloc'd,
 * the caller frees it) gets *n of them. Returns 0 or a store error. */
int ob_engine_nodes(ob_engine *e, ob_node **out, size_t *n);
/* The store's kind: "sqlite" or "postgres". */
const char *ob_engine_store_name(ob_engine *e);

/* Counters of the commit thread, for benchmarks and metrics. */
typedef struct ob_engine_stats {
    uint64_t commits;   /* store transactions committed */
    uint64_t ops;       /* operations they carried (enqueues, answers, ...) */
    uint64_t commit_us; /* total time in commit, fsync included */
    uint64_t batch_us;  /* total time of the committed transactions, begin to
                           commit: what the statements before it cost too */
    int64_t unfinished; /* jobs not in a final state */
    ob_histogram commit_seconds; /* each commit, fsync included */
    ob_histogram batch_ops;      /* operations per commit that carried any */
    ob_histogram start_delay;    /* seconds from due (run_at) to handler start */
    ob_histogram run_seconds;    /* handler run time, per attempt */
} ob_engine_stats;

/* Jobs counted by state, kind and queue: the store's counters, kept in the
 * transactions that change the jobs (cheap at any size: one row a group). */
int ob_job_counts(ob_engine *e, ob_count_fn fn, void *arg);
void ob_engine_stats_get(ob_engine *e, ob_engine_stats *out);

/* Stop every pool still running (draining, see ob_pool_stop), commit
 * everything accepted, and free the engine. Enqueues that were accepted
 * but not yet committed complete with OB_ESHUTDOWN if the store fails.
 * NULL is a no-op. */
void ob_engine_close(ob_engine *e);

/* ---- job kinds and handlers ----------------------------------------- */

typedef struct ob_job_ctx ob_job_ctx;

/* A handler runs one attempt of one job on a worker thread. It must answer
 * exactly once with one of ob_ctx_done / ob_ctx_retry / ob_ctx_discard /
 * ob_ctx_snooze before returning. A handler that returns without answering
 * is a bug: the attempt counts as failed ("handler returned without an
 * answer") and is retried — never a silent success. */
typedef void (*ob_handler_fn)(ob_job_ctx *ctx, void *arg);

/* Register the handler of `kind` (1-64 characters of [A-Za-z0-9._-]).
 * `opts` NULL means the engine's kind_defaults; it is copied. `arg` is
 * passed to every call and is owned by the caller, who keeps it alive
 * until the engine is closed. Registering a kind twice answers
 * OB_EINVAL. Enqueue refuses kinds that are not registered (OB_ENOKIND). */
int ob_engine_register(ob_engine *e, const char *kind, ob_handler_fn fn, void *arg,
                       const ob_kind_opts *opts);

/* ---- enqueue -------------------------------------------------------- */

/* What to enqueue. Zero-initialise it and set what you need; all pointers
 * are borrowed for the duration of the call only. */
typedef struct ob_new_job {
    const char *kind;       /* required, registered */
    const char *queue;      /* NULL: "default"; 1-64 of [A-Za-z0-9._-] */
    int priority;           /* higher runs first; OB_PRIORITY_MIN..MAX */
    const void *payload;    /* copied; may be NULL when payload_len is 0 */
    size_t payload_len;     /* <= max_payload */
    int64_t run_at_ms;      /* 0 or past: now; otherwise scheduled */
    int max_attempts;       /* 0: the kind's default; 1..1000 */
    int64_t timeout_ms;     /* 0: the kind's default; else 1 ms .. 24 h */
    const char *unique_key; /* NULL, or 1-255 bytes of UTF-8: at most one
                               job with this key exists until it is pruned
                               ("schedule:..." is the schedules') */
    const char *meta;       /* NULL, or up to OB_META_MAX bytes of UTF-8 that the
                               engine stores with the job and never interprets */
    const char *rate_key;   /* NULL, or 1-255 of printable ASCII but '"' and '\\':
                               the destination, for its queue's key_rate and
                               holds (ob_ctx_retry_hold) */
    const char *terms;      /* NULL, or what the job can be found by
                               (ob_list_filter.term): terms separated by '\n',
                               each 1-OB_TERM_MAX bytes of UTF-8 without control
                               characters, at most OB_TERMS_MAX; stored
                               lower-cased (ASCII), pruned with the job */
} ob_new_job;

/* Check `j` as enqueue would, without storing anything. Returns 0 or
 * OB_EINVAL / OB_ETOOBIG / OB_ENOKIND, and then *p (p may be NULL) names
 * the offending member ("kind", "queue", "payload", ...) and why. */
int ob_new_job_check(ob_engine *e, const ob_new_job *j, ob_problem *p);
/* Whether k is a rate key: 1-OB_RATE_KEY_MAX of printable ASCII (0x21 to
 * 0x7e) without '"' or '\\' (an origin, a host, a relay's name). */
bool ob_rate_key_valid(const char *k);

/* Enqueue and wait until the job is durable. On success *id is the new
 * job's id, or — when unique_key already names a job — that job's id with
 * *existed set (nothing new is stored). `existed` may be NULL.
 * Blocks while max_inflight enqueues are pending (backpressure).
 * Returns 0, a check error (see ob_new_job_check), OB_EFULL, OB_ESHUTDOWN,
 * or a store error (OB_ENOSPC, OB_EIO, OB_ESTORE): then nothing is stored. */
int ob_enqueue(ob_engine *e, const ob_new_job *j, ob_id *id, bool *existed);

/* Called once the outcome of an ob_enqueue_async is known: rc is 0 and `id`
 * the job's id (borrowed for the call), or rc is an error and id is NULL. */
typedef void (*ob_enqueued_fn)(void *arg, int rc, const ob_id *id, bool existed);

/* Non-blocking enqueue. Returns 0 when accepted: `done` will be called
 * exactly once, on the commit thread, after the commit (or its failure).
 * Returns an error without calling `done` when the job fails its check,
 * the engine is closing (OB_ESHUTDOWN), or max_inflight enqueues are
 * already pending (OB_EBUSY: answer "try later", do not block). */
int ob_enqueue_async(ob_engine *e, const ob_new_job *j, ob_enqueued_fn done, void *arg);

/* ---- transactional enqueue ---------------------------------------------
 * Enqueue inside the caller's own open transaction, on the caller's own
 * connection to the engine's database, so that the job exists if and only
 * if the caller's transaction commits:
 *
 *   PQexec(conn, "BEGIN");
 *   PQexec(conn, "INSERT INTO orders ...");
 *   ob_enqueue_pg(e, conn, &job, &id, NULL);
 *   PQexec(conn, "COMMIT");      // the job exists now, with the order
 *
 * The job is inserted with the caller's connection: it is durable when the
 * caller's COMMIT returns, not when this call does; a ROLLBACK leaves no
 * trace. Unique keys hold as for ob_enqueue (a key already taken gives
 * that job's id and *existed). The engine's max_jobs is not checked.
 * PostgreSQL: the tables are found in the schema the engine uses; nodes
 * are told at COMMIT (NOTIFY) and claim at once.
 * SQLite: `db` must be a connection to the engine's database file, with a
 * busy timeout (sqlite3_busy_timeout: the engine writes to the file too);
 * call ob_engine_wake(e) after COMMIT for the job to start at once (else
 * the engine notices within about a second).
 * Returns 0, a check error (ob_new_job_check), OB_EINVAL (the engine's
 * store is of the other kind), or a store error — then abort the
 * transaction: the statement failed inside it. */
struct pg_conn; /* libpq's PGconn */
struct sqlite3; /* SQLite's sqlite3 */
int ob_enqueue_pg(ob_engine *e, struct pg_conn *conn, const ob_new_job *j, ob_id *id,
                  bool *existed);
int ob_enqueue_sqlite(ob_engine *e, struct sqlite3 *db, const ob_new_job *j, ob_id *id,
                      bool *existed);
/* Look again for work and timers now: after a transactional enqueue was
 * committed. Any thread. */
void ob_engine_wake(ob_engine *e);

/* ---- looking at jobs ------------------------------------------------ */

/* Free a snapshot (ob_job_get, ob_job_wait). NULL is a no-op. */
void ob_job_free(ob_job *job);

/* Read a job. On success *out is a snapshot owned by the caller.
 * Returns 0, OB_ENOTFOUND, or a store error. */
int ob_job_get(ob_engine *e, const ob_id *id, ob_job **out);

/* Wait up to timeout_ms (< 0: forever) for the job to reach a final state.
 * Returns 0 with *out the final snapshot; OB_ETIMEDOUT with *out the
 * current snapshot; OB_ENOTFOUND; OB_EBUSY (max_waiters reached);
 * OB_ESHUTDOWN (*out current snapshot); or a store error (*out NULL).
 * *out, when set, is owned by the caller. */
int ob_job_wait(ob_engine *e, const ob_id *id, int64_t timeout_ms, ob_job **out);

/* Cancel a job. Unfinished, not running: it becomes cancelled. Running:
 * the cancellation is recorded and delivered to its handler
 * (ob_ctx_cancelled); if the handler then answers anything but done, the
 * job ends cancelled. Already cancelled: no-op. Completed or discarded:
 * OB_ESTATE. On success *state (may be NULL) is the state after the call.
 * The change is durable when this returns. */
int ob_job_cancel(ob_engine *e, const ob_id *id, ob_state *state);

/* Run a job again now. Discarded or cancelled: back to available, with one
 * more attempt allowed if its attempts were exhausted. Scheduled or
 * retryable: available now. Available: no-op. Running or completed:
 * OB_ESTATE. Durable when this returns; *state as for cancel. */
int ob_job_retry(ob_engine *e, const ob_id *id, ob_state *state);

/* Non-blocking cancel and retry: `done` is called once, on the commit
 * thread, after the change is durable (rc 0, state the job's state then) or
 * refused (rc as for the blocking forms). Returns 0 when accepted, or an
 * error without calling `done` (OB_EBUSY, OB_ESHUTDOWN, ...). */
typedef void (*ob_changed_fn)(void *arg, int rc, ob_state state);
int ob_job_cancel_async(ob_engine *e, const ob_id *id, ob_changed_fn done, void *arg);
int ob_job_retry_async(ob_engine *e, const ob_id *id, ob_changed_fn done, void *arg);

/* List jobs, newest first, with keyset pagination: pass next_cursor back
 * to get the following page. Payload and errors are not filled in (use
 * ob_job_get). On success *out is owned by the caller: ob_job_page_free.
 * Returns 0, OB_EINVAL (bad filter or cursor) or a store error. */
int ob_job_list(ob_engine *e, const ob_list_filter *f, ob_job_page **out);
/* Free a page and every snapshot in it. NULL is a no-op. */
void ob_job_page_free(ob_job_page *l);

/* ---- many jobs at once ------------------------------------------------ */

typedef enum ob_bulk_action { OB_BULK_RETRY = 1, OB_BULK_CANCEL = 2 } ob_bulk_action;

/* What a bulk call did. */
typedef struct ob_bulk_result {
    int rc;      /* 0, or the error that stopped it (the changes before it hold) */
    int matched; /* jobs chosen (a page of the filter, or the ids) and tried */
    int changed; /* of those, changed; the others' state did not allow it (a
                    completed job is not retried) or they were gone */
    char next_cursor[OB_CURSOR_MAX]; /* a filter's next page; "" when done or for ids */
} ob_bulk_result;

typedef void (*ob_bulk_fn)(void *arg, const ob_bulk_result *r);

/* Retry (as ob_job_retry) or cancel (as ob_job_cancel) many jobs: the ids
 * given (nids of them, at most OB_LIST_MAX; f ignored), or else one page
 * of the listing filter f (newest first; f->limit 0 means OB_LIST_MAX).
 * Each change is an ordinary operation of the commit thread, so no commit
 * carries more than max_batch of them and enqueues go on meanwhile;
 * continue with r.next_cursor as f->cursor until it is "". Durable when
 * `done` is called: once, on the commit thread (or on this one when there
 * was nothing to do). Returns 0 (done will be called), or OB_EINVAL (bad
 * filter, ids or action) / a listing error without calling done. */
int ob_jobs_bulk_async(ob_engine *e, ob_bulk_action a, const ob_list_filter *f,
                       const ob_id *ids, size_t nids, ob_bulk_fn done, void *arg);
/* The same, waiting: *out as done would get it; returns out->rc (or the
 * error of the call). Must not be called from a callback. */
int ob_jobs_bulk(ob_engine *e, ob_bulk_action a, const ob_list_filter *f, const ob_id *ids,
                 size_t nids, ob_bulk_result *out);

/* ---- queues: pause, concurrency, rate -------------------------------- */

/* A queue's settings, kept in the store, so that every process sharing it
 * (every node of a PostgreSQL store) follows them. A job waiting for its
 * queue stays available and spends no attempt. */
typedef struct ob_queue_settings {
    bool paused;            /* start nothing (running jobs finish; enqueues
                               are taken) */
    int concurrency;        /* at most this many of the queue's jobs running
                               at once, on every node together; 0: no cap */
    int rate_limit;         /* at most this many starts in each period of
                               rate_period_ms (periods aligned to the epoch),
                               evenly paced within it: the i-th start of a
                               period comes no earlier than i/rate_limit of
                               the way into it, less a twentieth of the
                               period (a lead, so that late claims still use
                               the whole period); 0: no limit */
    int64_t rate_period_ms;
    int key_rate_limit;     /* the same, for each rate key of the queue apart
                               (ob_new_job.rate_key; http.request: the
                               target's origin); 0: no limit */
    int64_t key_rate_period_ms;
} ob_queue_settings;

#define OB_QUEUES_SET_MAX 1000          /* queues with settings */
#define OB_CONCURRENCY_MAX 100000
#define OB_RATE_LIMIT_MAX 1000000
#define OB_RATE_PERIOD_MAX_MS 86400000 /* a day */

/* Which members of ob_queue_settings ob_queue_set changes. */
#define OB_QUEUE_PAUSED 1u
#define OB_QUEUE_CONCURRENCY 2u
#define OB_QUEUE_RATE 4u /* rate_limit and rate_period_ms */
#define OB_QUEUE_KEY_RATE 8u /* key_rate_limit and key_rate_period_ms */

/* A queue: its settings and its jobs. */
typedef struct ob_queue_info {
    char name[OB_NAME_MAX + 1];
    ob_queue_settings settings;
    int64_t updated_at_ms;            /* settings last changed; 0: never set */
    int64_t counts[OB_STATE_MAX + 1]; /* jobs by state (index: ob_state) */
    int64_t oldest_due_ms;            /* run_at of the oldest available job; 0: none */
    int64_t hold_until_ms;            /* the whole queue is held until then; 0: not */
} ob_queue_info;

/* A rate key held (ob_ctx_retry_hold) until a time. */
typedef struct ob_key_hold {
    char key[OB_RATE_KEY_MAX + 1];
    int64_t until_ms;
} ob_key_hold;

/* Change the members of queue `name`'s settings that `mask` names to
 * those of *s (the others stay); durable when it returns. A queue whose
 * settings are all cleared (not paused, no limit) has none again.
 * *after (may be NULL) gets the settings now. Returns 0, OB_EINVAL (bad
 * name or value; *p names it, p may be NULL), OB_EFULL (already
 * OB_QUEUES_SET_MAX queues have settings), OB_ESHUTDOWN or a store error.
 * Jobs of a queue just paused or limited are moved aside ("parked") in
 * bounded steps after the change; until then a claim skips them. */
int ob_queue_set(ob_engine *e, const char *name, const ob_queue_settings *s, unsigned mask,
                 ob_queue_settings *after, ob_problem *p);
/* Every queue that has settings or jobs, in name order: *out (malloc'd,
 * the caller frees it; NULL when none) gets *n of them. The counts are the
 * store's counters (ob_job_counts); the oldest due job is an index seek per
 * priority a queue's available jobs have. Returns 0 or a store error. */
int ob_queue_list(ob_engine *e, ob_queue_info **out, size_t *n);
/* One queue (a name without settings or jobs gives zeros). Returns 0,
 * OB_EINVAL (bad name) or a store error. */
int ob_queue_get(ob_engine *e, const char *name, ob_queue_info *out);
/* The rate keys of queue `name` held now, in key order (at most 1000):
 * *out (malloc'd; NULL when none) gets *n of them. 0 or a store error. */
int ob_queue_holds(ob_engine *e, const char *name, ob_key_hold **out, size_t *n);

/* ---- schedules: cron ---------------------------------------------------- */

/* What a schedule does with the ticks no node could make in time (within
 * OB_SCHEDULE_LATE_MS: after a downtime; a leader's death costs less). */
typedef enum ob_missed {
    OB_MISSED_SKIP = 0,   /* none of them makes a job */
    OB_MISSED_LATEST = 1, /* the most recent of them makes one */
} ob_missed;

#define OB_SCHEDULE_LATE_MS 5000
#define OB_SCHEDULES_MAX 10000

/* A schedule: at each tick of `cron` (outbox/cron.h) in `timezone`, the
 * job `job` is enqueued, exactly once (on every node of a shared store
 * together, whatever dies), with the unique key "schedule:NAME:TICK_MS"
 * (ob_job_schedule reads it back). Pointers are borrowed for the call. */
typedef struct ob_schedule {
    const char *name;     /* 1-64 of [A-Za-z0-9._-] */
    const char *cron;
    const char *timezone; /* an IANA zone ("Europe/Berlin"); NULL or "": UTC */
    ob_new_job job;       /* checked as ob_new_job_check does; no run_at, no
                             unique_key (each tick's job has its own) */
    ob_missed missed;
    bool paused;
} ob_schedule;

/* Create or replace the schedule s->name; durable when it returns. A
 * replacement with the same cron and zone keeps its place (the next tick
 * is not lost); another starts from now. Returns 0, OB_EINVAL (with *p
 * naming "name", "cron", "timezone", "missed" or "job.MEMBER"), OB_ENOKIND,
 * OB_EFULL (OB_SCHEDULES_MAX), OB_ESHUTDOWN or a store error. */
int ob_schedule_set(ob_engine *e, const ob_schedule *s, ob_problem *p);
/* Pause (no ticks) or resume (from the next tick after now). 0,
 * OB_ENOTFOUND, OB_EINVAL or a store error. */
int ob_schedule_pause(ob_engine *e, const char *name, bool paused);
/* 0, OB_ENOTFOUND, OB_EINVAL or a store error. Jobs it made stay. */
int ob_schedule_delete(ob_engine *e, const char *name);

typedef struct ob_schedule_info {
    char name[OB_NAME_MAX + 1];
    char cron[256 + 1];
    char timezone[64 + 1]; /* "": UTC */
    ob_missed missed;
    bool paused;
    ob_job *job;           /* the template (kind, queue, priority, payload,
                              max_attempts, timeout_ms, meta, rate_key); owned */
    int64_t next_at_ms;    /* its next tick; 0 when paused or none */
    int64_t last_at_ms;    /* the last tick that made a job; 0: none yet */
    ob_id last_job;        /* ... and that job, if has_last_job */
    bool has_last_job;
    int64_t updated_at_ms;
} ob_schedule_info;

/* Every schedule, in name order: *out (free with ob_schedule_list_free)
 * gets *n. One schedule into *out (ob_schedule_info_clear it), or
 * OB_ENOTFOUND. */
int ob_schedule_list(ob_engine *e, ob_schedule_info **out, size_t *n);
int ob_schedule_get(ob_engine *e, const char *name, ob_schedule_info *out);
void ob_schedule_info_clear(ob_schedule_info *s);
void ob_schedule_list_free(ob_schedule_info *v, size_t n);
/* Whether j was made by a schedule: true with its name and tick. */
bool ob_job_schedule(const ob_job *j, char name[OB_NAME_MAX + 1], int64_t *tick_ms);

/* ---- events --------------------------------------------------------- */

/* A committed state change. Strings are valid only during the callback. */
typedef struct ob_event {
    ob_id id;
    const char *kind;
    const char *queue;
    ob_state state; /* the new state */
    ob_state from;  /* the state before; 0 for a new job */
    int attempt;
    int64_t at_ms;
    const char *error; /* the error recorded with this change, or NULL */
    bool remote;       /* made by another node (ob_engine_subscribe_finals only):
                          kind and queue are "", from and attempt 0 */
    const char *schedule;     /* a new job a schedule made: its name; else NULL */
    int64_t scheduled_for_ms; /* ... and the tick it was made for */
    int64_t due_ms;           /* a start (to OB_RUNNING): when the job was due, its
                                 run_at (at_ms - due_ms: how long it waited); else 0 */
} ob_event;

typedef void (*ob_event_fn)(void *arg, const ob_event *ev);
typedef struct ob_subscription ob_subscription;

/* Call `fn` after each commit, once per state change it made, in commit
 * order, on the commit thread. *out owns the subscription: end it with
 * ob_engine_unsubscribe() before the engine closes or `arg` dies. */
int ob_engine_subscribe(ob_engine *e, ob_event_fn fn, void *arg, ob_subscription **out);
/* Call `fn` for every job that reaches a final state: those this engine
 * commits (as above) and, on a shared store (postgres), those other nodes
 * commit (ev->remote, told by NOTIFY, on a thread of the store). What a
 * "did it happen?" wait listens to. End it with ob_engine_unsubscribe. */
int ob_engine_subscribe_finals(ob_engine *e, ob_event_fn fn, void *arg,
                               ob_subscription **out);
/* After this returns `fn` is not running and will not be called. NULL is a
 * no-op. */
void ob_engine_unsubscribe(ob_engine *e, ob_subscription *s);

/* ---- records: small documents kept beside the jobs ------------------ */

/* Records (ob_record in job.h) are what a job kind keeps between jobs and
 * shares with every node: the mail job's suppression list is a set of
 * them. Writes go through the commit thread like every change (durable
 * when they return, in commit order with the jobs); reads are a reader's.
 *
 * Create or replace the record (set, key): `set` a name (1-64 of
 * [A-Za-z0-9._-]), `key` 1-OB_RECORD_KEY_MAX bytes of UTF-8 without
 * control characters, `tag` NULL, "" or a name, `value` a JSON object of
 * at most OB_RECORD_VALUE_MAX bytes (NULL: {}). A replacement keeps the
 * record's created_at. *created (may be NULL) whether it is new. Returns
 * 0, OB_EINVAL (*p names "set", "key", "tag" or "value"; p may be NULL),
 * OB_ESHUTDOWN or a store error. */
int ob_record_put(ob_engine *e, const char *set, const char *key, const char *tag,
                  const char *value, bool *created, ob_problem *p);
/* Delete the record: 0, OB_ENOTFOUND, OB_EINVAL or a store error. */
int ob_record_delete(ob_engine *e, const char *set, const char *key);
/* One record into *out (its value the caller's: ob_record_clear):
 * 0, OB_ENOTFOUND, OB_EINVAL or a store error. */
int ob_record_get(ob_engine *e, const char *set, const char *key, ob_record *out);
/* The records of keys[0..n) (n <= OB_RECORD_LIST_MAX) in one read: out[i]
 * is keys[i]'s record (ob_record_clear each), or zeroed with value NULL
 * when it has none. 0, OB_EINVAL (a bad set or key) or a store error. */
int ob_record_get_many(ob_engine *e, const char *set, const char *const *keys, size_t n,
                       ob_record *out);
/* Records as f asks, in key order: *out (ob_record_list_free; NULL when
 * none) gets *n of them; a page is full when *n == f->limit (continue with
 * after = the last key). 0, OB_EINVAL (a bad filter) or a store error. */
int ob_record_list(ob_engine *e, const ob_record_filter *f, ob_record **out, size_t *n);
/* Free a record's value (the record stays, value NULL); a listing. */
void ob_record_clear(ob_record *r);
void ob_record_list_free(ob_record *v, size_t n);

/* Called once per committed change of a record by this engine, in commit
 * order, on the commit thread: the record as saved (created_at_ms 0 when
 * it replaced one), or (deleted) with only set and key. Valid during the
 * call only. */
typedef void (*ob_record_fn)(void *arg, const ob_record *r, bool deleted);
/* Subscribe to record changes; end it with ob_engine_unsubscribe. */
int ob_engine_subscribe_records(ob_engine *e, ob_record_fn fn, void *arg, ob_subscription **out);

/* ---- follow-up jobs ------------------------------------------------- */

/* A job that just reached a final state, inside the commit that makes it
 * so. Strings valid during the call only. */
typedef struct ob_final {
    ob_id id;
    const char *kind;
    const char *queue;
    const char *meta; /* or NULL */
    ob_state state;
    int attempt;
} ob_final;

/* Return true and fill *next to enqueue a follow-up job IN THE SAME
 * TRANSACTION as the final state: it exists if and only if the job's end
 * was stored (a callback that cannot be lost by a crash in between). The
 * strings *next points to must live until the function returns; they are
 * copied. A follow-up that fails its checks is logged and skipped; one
 * whose unique_key exists already is not added again. Runs on the commit
 * thread: no blocking engine calls. */
typedef bool (*ob_final_fn)(void *arg, const ob_final *f, ob_new_job *next);

/* Set the hook (one per engine; NULL removes it). Call before work starts. */
void ob_engine_on_final(ob_engine *e, ob_final_fn fn, void *arg);

/* ---- workers -------------------------------------------------------- */

typedef struct ob_pool ob_pool;

#define OB_POOL_QUEUES_MAX 16

typedef struct ob_pool_opts {
    int workers;                              /* threads; default 4, at most 1024 */
    int prefetch;                             /* jobs claimed ahead; default = workers */
    const char *queues[OB_POOL_QUEUES_MAX];   /* NULL-terminated; queues[0] NULL: every queue */
} ob_pool_opts;

void ob_pool_opts_init(ob_pool_opts *o);

/* Start a pool of worker threads that claim jobs (highest priority first,
 * then earliest run_at) from the given queues and run their handlers.
 * Several pools may run on one engine (e.g. one per queue). On success
 * *out owns the pool: ob_pool_stop() it. */
int ob_pool_start(ob_engine *e, const ob_pool_opts *opts, ob_pool **out);

/* Graceful stop: claim nothing more, give back jobs claimed but not
 * started (uncounted), let running handlers finish for up to drain_ms;
 * then deliver cancellation (OB_CANCEL_SHUTDOWN) and wait for them to
 * return — handlers must honour cancellation. Returns once the pool's
 * answers and give-backs are committed, and frees the pool. Returns 0, or
 * OB_ETIMEDOUT if handlers had to be cancelled. NULL is a no-op. Must not
 * be called from a handler or a callback. */
int ob_pool_stop(ob_pool *p, int64_t drain_ms);

/* ---- inside a handler ----------------------------------------------- */

/* The job being run. Valid until the handler returns (and then poisoned in
 * debug builds): copy what must outlive it. `errors` is not filled in. */
const ob_job *ob_ctx_job(const ob_job_ctx *ctx);

/* Absolute deadline of this attempt (ms since the epoch). */
int64_t ob_ctx_deadline(const ob_job_ctx *ctx);

/* OB_CANCEL_ISOLATED: this node has not reached the shared store for half
 * its dead interval; soon another node may take the job. Stop, and answer
 * retry: the answer is stored when the store answers again. */
enum {
    OB_CANCEL_NONE = 0,
    OB_CANCEL_REQUESTED = 1,
    OB_CANCEL_TIMEOUT = 2,
    OB_CANCEL_SHUTDOWN = 3,
    OB_CANCEL_ISOLATED = 4,
};
/* Whether the handler should stop: 0, or why (OB_CANCEL_*). Cheap. */
int ob_ctx_cancelled(const ob_job_ctx *ctx);

/* Sleep up to ms, waking early on cancellation. Returns ob_ctx_cancelled. */
int ob_ctx_sleep(ob_job_ctx *ctx, int64_t ms);

/* Answers. Exactly one per attempt; a second answer returns OB_ESTATE and
 * is ignored. Strings are copied (the caller keeps ownership).
 *   done:    completed; `result_json` is NULL or a JSON text of at most
 *            max_result bytes (else OB_EINVAL / OB_ETOOBIG and no answer
 *            is recorded: answer again).
 *   retry:   this attempt failed with `error`; run again after delay_ms
 *            (< 0: the kind's backoff) if attempts remain, else discarded.
 *   discard: permanent failure with `error`: discarded now.
 *   snooze:  not a failure: run again after delay_ms; the attempt is not
 *            counted.
 * Errors longer than max_error bytes are truncated. */
int ob_ctx_done(ob_job_ctx *ctx, const char *result_json);
/* Keep `result_json` (as for done) to be stored with this attempt's answer,
 * whichever it is: a handler that makes progress over several attempts
 * (mail: which recipients were delivered) records it with a retry, and the
 * next attempt reads it back as ob_ctx_job(ctx)->result. done with a
 * non-NULL result replaces it. Returns 0, OB_EINVAL, OB_ETOOBIG, or
 * OB_ESTATE after the answer. */
int ob_ctx_set_result(ob_job_ctx *ctx, const char *result_json);
int ob_ctx_retry(ob_job_ctx *ctx, int64_t delay_ms, const char *error);
int ob_ctx_discard(ob_job_ctx *ctx, const char *error);
int ob_ctx_snooze(ob_job_ctx *ctx, int64_t delay_ms);
/* Retry as ob_ctx_retry (this attempt counts: it reached the destination),
 * and hold back every other job of this job's rate key — or, with
 * `whole_queue`, of its queue — for delay_ms: they stay available and
 * spend no attempt until then, on every node. What a 429 or 503 with
 * Retry-After, or a relay's 421, asks of a sender. A job without a rate
 * key holds its whole queue. */
int ob_ctx_retry_hold(ob_job_ctx *ctx, int64_t delay_ms, bool whole_queue, const char *error);

#ifdef __cplusplus
}
#endif
#endif
