/*
 * outbox/job.h - a job as data: its states, a snapshot of it, a page of
 * them and the filter that asks for one. No calls: what the engine
 * (outbox/jobs.h) hands out and what a store fills in, so that the store
 * needs nothing of the engine to describe a job.
 */
#ifndef OUTBOX_JOB_H
#define OUTBOX_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/id.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- states --------------------------------------------------------- */

typedef enum ob_state {
    OB_SCHEDULED = 1, /* run_at is in the future */
    OB_AVAILABLE = 2, /* ready to be claimed */
    OB_RUNNING = 3,   /* claimed by a worker, under a lease */
    OB_RETRYABLE = 4, /* failed, waiting for its backoff */
    OB_COMPLETED = 5, /* final: the handler answered done */
    OB_DISCARDED = 6, /* final: permanent error or attempts exhausted */
    OB_CANCELLED = 7, /* final: cancelled before it completed */
} ob_state;

#define OB_STATE_MIN OB_SCHEDULED
#define OB_STATE_MAX OB_CANCELLED

static inline bool ob_state_is_final(int s) { return s >= OB_COMPLETED && s <= OB_CANCELLED; }

/* ---- limits of a job ---- */

#define OB_PRIORITY_MIN (-1000)
#define OB_PRIORITY_MAX 1000
#define OB_UNIQUE_KEY_MAX 255 /* bytes */
#define OB_META_MAX 4096      /* bytes */
#define OB_RATE_KEY_MAX 255   /* bytes */
#define OB_ERRORS_KEPT_MAX 64 /* errors kept per job, at most */
#define OB_TERM_MAX 320       /* bytes of one search term */
#define OB_TERMS_MAX 1000     /* search terms of one job */

/* ---- a snapshot ----------------------------------------------------- */

typedef struct ob_attempt_error {
    int attempt;
    int64_t at_ms;         /* when it failed */
    int64_t started_at_ms; /* when that attempt started; 0: not known */
    char *message;
} ob_attempt_error;

/* A snapshot of a job. One allocation, owned by whoever received it: free it
 * with ob_job_free() (jobs.h). */
typedef struct ob_job {
    ob_id id;
    char *kind;
    char *queue;
    int priority;
    ob_state state;
    int attempt; /* attempts started so far */
    int max_attempts;
    int64_t timeout_ms;
    int64_t run_at_ms;       /* when it is (or was) due */
    int64_t created_at_ms;
    int64_t attempted_at_ms; /* 0: never */
    int64_t finished_at_ms;  /* 0: not final */
    bool cancel_requested;   /* running, and a cancel was asked for */
    char *unique_key;        /* NULL: none */
    unsigned char *payload;  /* payload_len bytes, followed by a NUL */
    size_t payload_len;
    char *result;            /* JSON text, or NULL */
    char *meta;              /* as enqueued, or NULL */
    char *rate_key;          /* NULL: none (the key_rate and holds of its queue) */
    size_t nerrors;          /* oldest first; at most errors_kept */
    ob_attempt_error *errors;
} ob_job;

/* ---- listing -------------------------------------------------------- */

#define OB_LIST_MAX 1000
#define OB_CURSOR_MAX 64

typedef struct ob_list_filter {
    unsigned states;    /* bit (1u << state) per wanted state; 0: all */
    const char *kind;   /* NULL: any */
    const char *queue;  /* NULL: any */
    int limit;          /* 1..OB_LIST_MAX; 0: 100 */
    const char *cursor; /* NULL: from the newest; else a next_cursor */
    /* Only jobs with the search term `term` (ob_new_job.terms; compared
     * after ASCII lower-casing) or with the unique key `unique_key`, when
     * either is set (an index seek: any size of store). */
    const char *term;
    const char *unique_key;
    /* Only jobs created in [created_after_ms, created_before_ms) (0: no
     * bound): ids are UUIDv7, so this is a range of the id index. */
    int64_t created_after_ms;
    int64_t created_before_ms;
} ob_list_filter;

typedef struct ob_job_page {
    size_t n;
    ob_job **jobs;                     /* newest first; payloads omitted */
    char next_cursor[OB_CURSOR_MAX];   /* "" when there are no more */
} ob_job_page;

/* A process working on the engine's store (a node). */
typedef struct ob_node {
    char id[33];             /* 32 hex digits; "" for an embedded store's only one */
    char host[256];
    int pid;
    int64_t started_at_ms;
    int64_t heartbeat_at_ms; /* last seen alive */
    bool leader;             /* runs the cluster's chores (rescue, prune, schedules) */
    bool self;               /* this engine */
} ob_node;

/* Called once per group of jobs of one state, kind and queue that has jobs
 * (ob_job_counts in jobs.h). kind and queue are valid only during the call. */
typedef void (*ob_count_fn)(void *arg, ob_state state, const char *kind, const char *queue,
                            int64_t n);

/* ---- records -------------------------------------------------------- */

/* A record: a small JSON document under a key in a named set, kept in the
 * store beside the jobs and shared by every node (ob_record_put in
 * jobs.h). A set is what one user keeps: the mail job's suppression list
 * is the set "mail.suppressions" (mailjob.h). */
#define OB_RECORD_KEY_MAX 320    /* bytes of a key: 1 or more, no control characters */
#define OB_RECORD_VALUE_MAX 4096 /* bytes of a value's JSON text */
#define OB_RECORD_LIST_MAX 1000  /* records in one listing */

typedef struct ob_record {
    char set[OB_NAME_MAX + 1];
    char key[OB_RECORD_KEY_MAX + 1];
    char tag[OB_NAME_MAX + 1]; /* what listings filter by; "" for none */
    char *value;               /* JSON text (an object); in a record handed out,
                                  malloc'd and the holder's (ob_record_clear) */
    int64_t created_at_ms;     /* first put */
    int64_t updated_at_ms;     /* last put */
} ob_record;

/* Which records a listing gives, in key order (bytewise). */
typedef struct ob_record_filter {
    const char *set;      /* required */
    const char *tag;      /* NULL: any */
    const char *contains; /* NULL: any; else keys containing these bytes */
    const char *after;    /* NULL: from the first key; else keys after it
                             (the last key of the page before) */
    int limit;            /* 1..OB_RECORD_LIST_MAX; 0: 100 */
} ob_record_filter;

#ifdef __cplusplus
}
#endif
#endif
