/*
 * store.h - the durable store behind the job engine: one interface, one
 * implementation per backend (sqlite.c now; postgres later).
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
 *   S5  Errors: OB_ENOSPC, OB_EIO, OB_ESTORE, OB_ENOMEM (details logged).
 */
#ifndef OB_STORE_H
#define OB_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "outbox/jobs.h"

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

/* A claim: up to `limit` available jobs from the given queues (none: every
 * queue) become running with attempt + 1 and a lease until
 * now + timeout + lease_grace_ms. */
typedef struct store_claim {
    const char *const *queues;
    int nqueues;
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

/* A running job found by expired(). */
typedef struct store_lease {
    ob_id id;
    int attempt;
} store_lease;

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
    /* Delete up to `limit` final jobs finished before `before`; *n deleted. */
    int (*prune)(store *s, int64_t before, int limit, int *n);
    /* Jobs not in a final state. */
    int (*count_unfinished)(store *s, int64_t *n);

    /* reader calls, any thread */
    int (*get)(store *s, const ob_id *id, ob_job **out);
    int (*list)(store *s, const ob_list_filter *f, ob_job_page **out);
    int (*counts)(store *s, ob_count_fn fn, void *arg);
} store_ops;

struct store {
    const store_ops *ops;
    /* true: one process owns the store, so every `running` job found at
     * open belongs to a dead process and is rescued at once. */
    bool exclusive;
};

/* Open the store a URL names. *out owns it: s->ops->close(s).
 * Returns 0, OB_EINVAL (unknown scheme), OB_ELOCKED, OB_ESCHEMA or a store
 * error. */
int store_open(const char *url, store **out);

/* Backends. */
int store_sqlite_open(const char *path, store **out);
/* Fault seam: the SQLite VFS the store opens files with (NULL: default).
 * Tests set it to a VFS that fails writes or fsyncs. */
extern const char *store_sqlite_vfs;

/* ---- building ob_job snapshots (store.c) ---- */

/* Sizes of the variable parts of a job, to allocate it in one block. */
typedef struct job_sizes {
    size_t kind, queue, unique_key, payload, result, meta; /* string lengths, bytes */
    size_t nerrors, errors_text;                            /* count, total bytes */
    bool has_unique_key, has_payload, has_result, has_meta;
} job_sizes;

/* Allocate a zeroed ob_job with room for the parts in `z`; string fields
 * point at zeroed space of the right size (+ NUL), errors at an array of
 * z->nerrors entries whose messages the caller places with
 * job_place_error(). Returns NULL on out of memory. */
ob_job *job_alloc(const job_sizes *z);
/* Copy `msg` (len bytes) into the job's error area as error i. */
void job_place_error(ob_job *j, size_t i, int attempt, int64_t at, const char *msg, size_t len);
/* Free a snapshot, first overwriting it in debug builds (OB_POISON) so that
 * a pointer kept into it reads garbage, or crashes under ASan. NULL ok. */
void job_free_poisoned(ob_job *j);

#endif
