/*
 * jobs.h - internals of the job engine, shared by its files:
 *
 *   lifecycle.c  the state machine: every transition a job can take, in one
 *                function, and the backoff schedule
 *   commit.c     the commit thread: the only writer to the store; batches
 *                operations from every thread into one transaction (group
 *                commit), claims jobs for idle workers, wakes scheduled
 *                jobs when due, rescues expired leases, prunes old jobs
 *   pool.c       worker pools and the handler's context (ob_ctx_*)
 *   notify.c     subscribers to state changes and ob_job_wait waiters
 *   engine.c     the public API: open/close, register, enqueue, get, list,
 *                wait, cancel, retry
 *
 * Locks, always taken in this order (never the reverse):
 *   engine.pools_mu -> pool.mu -> worker.mu -> commit.mu ; notify.mu
 * The commit thread never holds commit.mu while doing store work or taking
 * any other lock.
 */
#ifndef OB_JOBS_INTERNAL_H
#define OB_JOBS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "outbox/jobs.h"
#include "store/store.h"

/* ---- lifecycle.c ---- */

/* What happened to a job, from the life cycle's point of view. */
typedef enum lc_event {
    LC_DONE,     /* handler answered done */
    LC_RETRY,    /* handler answered retry (or did not answer) */
    LC_DISCARD,  /* handler answered discard */
    LC_SNOOZE,   /* handler answered snooze */
    LC_RESCUE,   /* its lease expired or its process died */
    LC_RELEASE,  /* claimed but never started (pool stopping) */
    LC_CANCEL,   /* ob_job_cancel */
    LC_REQUEUE,  /* ob_job_retry */
} lc_event;

typedef struct lc_input {
    lc_event ev;
    int attempt;          /* running events: the attempt the worker ran */
    int64_t delay_ms;     /* retry (< 0: backoff) and snooze */
    const char *error;    /* retry, discard, rescue */
    const char *result;   /* any answer of a running job (NULL: keep) */
    int64_t hold_until;   /* retry: also hold the job's rate key (or, with
                             hold_queue, its queue) until then (ms; 0: no) */
    bool hold_queue;
} lc_input;

/* Decide the change `in` makes to a job in `row`. Returns 1 with *c filled
 * (apply it with store->update), 0 if nothing changes (e.g. cancelling a
 * cancelled job), or OB_ESTATE if `in` is not allowed from row->state (or
 * is stale: a running event for another attempt). */
int obi_lifecycle_decide(const store_row *row, const ob_id *id, const lc_input *in,
                     const ob_backoff *backoff, int errors_kept, int64_t now, store_change *c);

/* Delay before retrying after failed attempt `attempt` (from 1). */
int64_t obi_backoff_delay(const ob_backoff *b, int attempt);

/* ---- new jobs (engine.c) ---- */

/* The job `j` (checked) describes, as a store keeps it: its kind's defaults
 * applied, "default" for no queue; strings and payload borrowed from j. The
 * id, state and times are set by obi_new_job_due and the caller. */
void obi_new_job_from(ob_engine *e, const ob_new_job *j, store_new *out);
/* Created now: scheduled if run_at is later, else available at once. */
void obi_new_job_due(store_new *j, int64_t now);
/* A copy of checked search terms, lower-cased as they are stored
 * (malloc'd; NULL on out of memory). */
char *obi_terms_lower(const char *terms);

/* ---- kinds (engine.c) ---- */

typedef struct job_kind {
    char name[OB_NAME_MAX + 1];
    ob_handler_fn fn;
    void *arg;
    ob_kind_opts opts;
} job_kind;

#define KINDS_MAX 256

/* The kind named `name`, or NULL. Lock-free: kinds are never removed. */
const job_kind *obi_engine_kind(ob_engine *e, const char *name);

/* ---- notify.c ---- */

/* A state change collected during a batch, published after its commit. */
typedef struct event_rec {
    ob_id id;
    ob_state state, from;
    int attempt;
    int64_t at;
    char kind[OB_NAME_MAX + 1];
    char queue[OB_NAME_MAX + 1];
    const char *error; /* borrowed from the batch, valid until published */
    char schedule[OB_NAME_MAX + 1]; /* a job a schedule made: its name; else "" */
    int64_t scheduled_for;
    int64_t due; /* a start: when the job was due (run_at); else 0 */
} event_rec;

typedef struct waiter waiter;
#define WAIT_BUCKETS 256

typedef struct notify {
    pthread_mutex_t mu;
    ob_subscription *subs;
    waiter *buckets[WAIT_BUCKETS];
    int nwaiters;
    int max_waiters;
    bool shutdown;
} notify;

void obi_notify_init(notify *n, int max_waiters);
void obi_notify_destroy(notify *n);
/* Publish committed changes: subscribers first, then final states wake
 * their waiters. Commit thread only. */
void obi_notify_publish(notify *n, const event_rec *ev, size_t count);
/* A committed change of a record (deleted: only set and key mean
 * anything) to the record subscribers. Commit thread only. */
void obi_notify_record(notify *n, const ob_record *r, bool deleted);
/* Another process made `id` final: wake its waiters, tell the subscribers
 * of every final state (ob_engine_subscribe_finals). Any thread. */
void obi_notify_remote_final(notify *n, const ob_id *id, ob_state state);
/* Wake every waiter with OB_ESHUTDOWN; refuse new ones. */
void obi_notify_shutdown(notify *n);
/* Wait for a job to become final. Registers before `check` reads the job so
 * that no change is missed; `check` returns 1 if the job is final, 0 if not,
 * or an error, which ends the wait. Returns 0 (final), OB_ETIMEDOUT,
 * OB_ESHUTDOWN, OB_EBUSY or check's error. */
int obi_notify_wait(notify *n, const ob_id *id, int64_t timeout_ms,
                int (*check)(void *arg), void *arg);

/* ---- commit.c ---- */

typedef struct op op;
typedef void (*op_done_fn)(op *o);

typedef enum op_type {
    OP_ENQUEUE, /* insert a job */
    OP_CHANGE,  /* a life-cycle event on one job */
    OP_LEASE,   /* a running attempt's lease moves to lease_until */
    OP_BARRIER, /* nothing: done() once every op queued before it is through */
    OP_QUEUE,   /* change a queue's settings (queues.c) */
    OP_SCHEDULE, /* set, pause, resume or delete a schedule (schedules.c) */
    OP_RECORD,  /* save or delete a record (records.c) */
} op_type;

/* One unit of work for the commit thread. Created by any thread, applied in
 * a batch, then `done` is called (commit thread) and owns the op. */
struct op {
    op *next;
    op_type type;
    bool external;   /* counted against max_inflight */
    int rc;          /* result, set before done() */
    op_done_fn done;
    void *arg;
    /* OP_ENQUEUE */
    store_new nj;    /* pointers into buf */
    bool existed;
    ob_enqueued_fn user_fn; /* ob_enqueue_async's callback */
    ob_changed_fn changed_fn; /* ob_job_*_async's callback */
    /* OP_CHANGE, OP_LEASE (in.attempt) */
    lc_input in;     /* strings point into buf */
    ob_state state_out;
    int64_t lease_until;
    /* OP_QUEUE: the change (q->name, the members qmask names), and the
     * settings after it, in the caller's memory */
    store_queue *q;
    unsigned qmask;
    /* OP_SCHEDULE: what to do (SCHED_*), to the schedule in the caller's
     * memory */
    store_schedule *sc;
    int sched_action;
    /* OP_RECORD: the record in the caller's memory; saved, or deleted
     * when rec_delete; rec_created set by a save */
    ob_record *rec;
    bool rec_delete;
    bool rec_created;
    /* both */
    ob_id id;
    char buf[];      /* payload, strings */
};

typedef struct ob_pool pool;
typedef struct batch batch;

/* A keyed queue's keys in the claim being made (queues.c). */
typedef struct flow_keys {
    store_key *k;       /* the waiting keys' rows, locked */
    int *room;          /* per key: starts it may still make */
    bool *dirty;        /* per key: its count changed (to save) */
    store_part_key *pk; /* a pool's request of them */
    int n;
} flow_keys;

/* Where the next claim of a keyed queue continues its scan of keys. */
typedef struct flow_cursor {
    char queue[OB_NAME_MAX + 1];
    char key[OB_RATE_KEY_MAX + 1]; /* "": from the start */
} flow_cursor;

/* Flow control's state (queues.c), the commit thread's alone (C4). */
typedef struct flow {
    store_queue *rows;  /* every queue's settings, as the last claim read them */
    int nrows;
    flow_keys *keys;    /* per row: NULL k unless the queue is keyed */
    flow_cursor *cur;
    int ncur;
    int64_t now;        /* of the claim being made */
    int known;          /* rows seen at the last read: 0, and claims skip reading */
    int *room;          /* per row: starts the claim being made may still make */
    bool *dirty;        /* per row: its rate's count changed (to save) */
    bool bound;         /* a limit held a claim back in this batch */
    int64_t next_at;    /* a rate's next start, a hold's end (timer: claim) */
    int64_t sweep_at;   /* a hold's end (timer: sweep) */
    bool sweep;         /* the park sweep has work (F3) */
    int64_t next_sweep; /* shared stores: the leader sweeps now and then */
} flow;

typedef struct commit {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the commit thread waits here */
    pthread_cond_t room; /* blocked enqueuers wait for max_inflight room */
    op *head, *tail;
    int inflight;        /* external ops queued or in a batch */
    bool kicked;         /* a pool has new demand */
    bool stopping;
    bool running;
    pthread_t thread;
    pthread_t writer;    /* the one thread that may run a batch now (C4) */
    /* commit-thread-only state */
    obi_idgen idgen;
    _Atomic int64_t unfinished; /* jobs not in a final state, as committed */
    _Atomic int last_rc;      /* result of the last commit (ob_engine_ready) */
    int64_t next_due;    /* earliest run_at of a scheduled/retryable job */
    int64_t next_rescue, next_prune, next_refresh, next_recount;
    int64_t next_sched;  /* a schedule's next tick, or the leader's next look */
    bool refreshing;     /* the store has `external`: refresh_shared runs */
    bool remote_work;    /* under mu: another process made work (store.wake) */
    int64_t remote_due;  /* under mu: ... or scheduled a job due then */
    bool rescue_all;     /* at open: every running job is an orphan */
    op *deferred;        /* worker answers whose commit failed, retried */
    int64_t deferred_at;
    int64_t fail_until;  /* the store is failing: timers wait until then */
    int64_t fail_backoff; /* ms, doubling while it fails; 0 when it works */
    batch *batch;
    flow fl;
    /* statistics (commit thread writes, anyone reads) */
    _Atomic uint64_t stat_commits, stat_ops, stat_commit_us, stat_batch_us;
    obi_hist h_commit, h_batch;
} commit;

/* Locks and conditions: before the store opens (its threads may wake us). */
void obi_commit_init(ob_engine *e);
int obi_commit_start(ob_engine *e);
/* Apply everything still queued, then stop the thread. */
void obi_commit_stop(ob_engine *e);
/* Free what obi_commit_init made: once the store is closed (it may wake us). */
void obi_commit_destroy(ob_engine *e);
/* Queue an op. External ops: OB_EBUSY if max_inflight are queued and
 * !block, else wait for room. OB_ESHUTDOWN once stopping. On error the op
 * is not taken (the caller frees it). */
int obi_commit_submit(ob_engine *e, op *o, bool block);
/* Submit and wait for the op's batch (blocking, with backpressure).
 * Returns o->rc or a submit error; the op remains the caller's. */
int obi_commit_submit_wait(ob_engine *e, op *o);
/* Wait until every op queued so far went through a batch (ops are applied
 * in queue order). */
int obi_commit_flush(ob_engine *e);
/* Tell the commit thread a pool wants jobs. */
void obi_commit_kick(ob_engine *e);
/* store.wake: another process made work (due 0) or scheduled a job. */
void obi_commit_wake(void *arg, int64_t due);
/* store.finished: another process made a job final. */
void obi_commit_finished(void *arg, const ob_id *id, ob_state state);
/* store.isolated: cancel running handlers, start nothing (pool.c). */
void obi_pool_isolated(void *arg, bool yes);

/* ---- pool.c ---- */

typedef struct worker worker;

struct ob_job_ctx {
    ob_job *job;              /* the claimed job, owned */
    worker *w;
    int64_t deadline;         /* wall ms */
    atomic_int cancel;        /* OB_CANCEL_REQUESTED / _SHUTDOWN */
    bool answered;
    lc_event ev;
    int64_t delay_ms;
    char *error;              /* owned */
    char *result;             /* owned */
    int64_t hold_ms;          /* ob_ctx_retry_hold: 0, or how long */
    bool hold_queue;
};

struct worker {
    pool *p;
    pthread_t thread;
    pthread_mutex_t mu;       /* guards ctx and sleeps */
    pthread_cond_t cv;
    ob_job_ctx *ctx;          /* the job being run, or NULL */
};

struct ob_pool {
    ob_engine *e;
    pool *next;               /* engine.pools, under engine.pools_mu */
    pthread_mutex_t mu;
    pthread_cond_t work;      /* workers wait for jobs here */
    pthread_cond_t exited;
    ob_job **ring;            /* claimed jobs not yet started: capacity slots */
    int ring_head, ring_len;
    int in_hand;              /* jobs claimed for this pool and not yet answered */
    int capacity;             /* workers + prefetch */
    int live;                 /* worker threads not yet exited */
    bool stopping;
    bool maybe_work;          /* commit thread only: a claim may find jobs */
    int nqueues;
    char *queues[OB_POOL_QUEUES_MAX];
    int nworkers;
    worker *workers;
};

/* Jobs the pool can take now (capacity - in_hand, 0 when stopping). */
int obi_pool_demand(pool *p);
/* Hand claimed jobs to the pool (commit thread, after their commit).
 * Jobs a stopping pool cannot take are released. Takes ownership. */
void obi_pool_deliver(pool *p, ob_job **jobs, int n);
/* Deliver a cancellation to the running attempt of `id`, if it runs here. */
void obi_pool_cancel_running(pool *p, const ob_id *id, int attempt);
/* Submit a release for a claimed job that will not run. Takes ownership. */
void obi_pool_release(ob_engine *e, ob_job *job);

/* ---- the engine ---- */

struct ob_engine {
    store *st;
    int64_t opened_at;          /* ms */
    ob_engine_opts o;
    commit c;
    notify n;
    pthread_mutex_t kinds_mu;  /* writers of kinds[] */
    _Atomic int nkinds;
    job_kind kinds[KINDS_MAX];
    pthread_mutex_t pools_mu;
    pool *pools;
    obi_hist h_start, h_run;    /* observed by workers */
    ob_final_fn on_final;      /* set before work starts */
    void *on_final_arg;
    atomic_bool isolated;      /* store.isolated: run nothing, give jobs back */
    pthread_mutex_t tx_mu;     /* transactional enqueues' ids */
    obi_idgen tx_idgen;
};

/* Allocate an OP_CHANGE for the job `id` carrying `in`; strings copied. */
op *obi_op_change_new(const ob_id *id, const lc_input *in);

#endif
