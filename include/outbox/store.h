/*
 * outbox/store.h - a whole store, from outside an engine: look at one
 * (ob_store_probe), back an embedded one up while it runs (ob_store_backup),
 * and move an embedded store's jobs into PostgreSQL (ob_store_copy). These
 * are what `outboxd check`, `outboxd backup` and `outboxd migrate --from
 * --to` do; an embedding program can do them too. (Creating or migrating a
 * schema: ob_store_migrate in outbox/jobs.h.)
 */
#ifndef OUTBOX_STORE_H
#define OUTBOX_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "outbox/common.h"

/* Called on long work: `done` of `total` units of `what` (pages, jobs),
 * at most a few times a second and once at the end. */
typedef void (*ob_progress_fn)(void *arg, const char *what, int64_t done, int64_t total);

/* What a store is, found without changing it (ob_store_probe). */
typedef struct ob_store_info {
    bool exists;     /* SQLite: the file exists; PostgreSQL: the schema has outbox tables */
    bool in_use;     /* SQLite: a process has it open (its lock is taken) */
    int version;     /* its schema version (0: none yet) */
    int known;       /* the version this outbox would bring it to */
    int live_nodes;  /* PostgreSQL: nodes with a heartbeat in the last 30 s */
    int64_t jobs;    /* jobs in it */
} ob_store_info;

/* Look at a store: reachable, its schema, whether in use. Creates nothing.
 * Returns 0, OB_EINVAL (bad URL), OB_EUNAVAIL (cannot connect), OB_ESTORE
 * (not an outbox store); the message is logged. */
int ob_store_probe(const char *url, ob_store_info *out);

/* A consistent copy of an embedded store into a new file at `path`, made
 * while the store may be in use (SQLite's online backup, one read
 * snapshot), checked (quick_check) and fsync'd before it appears under its
 * name. Refuses a `path` that exists. `fn` may be NULL. Returns 0,
 * OB_EINVAL (not sqlite:, path exists), OB_ENOSPC, OB_EIO or OB_ESTORE. */
int ob_store_backup(const char *url, const char *path, ob_progress_fn fn, void *arg);

/* What ob_store_copy did. */
typedef struct ob_copy_stats {
    int64_t jobs;        /* jobs in the source */
    int64_t copied;      /* of them, written to the target by this run */
    int64_t present;     /* already in the target (an earlier run's): left as they are */
    int64_t conflicts;   /* not copied: their unique key is another job's in the target */
    int64_t queues, schedules; /* settings rows copied (those present are left) */
    int64_t records;           /* records copied (suppressions; those present are left) */
} ob_copy_stats;

/* Copy every job of an embedded store (`from`, sqlite:PATH), with its
 * payload, attempts' errors, result and search terms, and the queues'
 * settings, the schedules and the records (ob_record), into a PostgreSQL store (`to`; its schema is
 * created or migrated). The source must not be in use (its lock is taken
 * for the copy); the target must have no live node. Idempotent and
 * resumable: each batch is one transaction, and what the target already
 * holds is left as it is. Jobs left running by a process that died are
 * copied running without a node: the target's leader rescues them. `fn`
 * may be NULL; `st` (may be NULL) gets the tally. Returns 0, OB_EINVAL,
 * OB_ELOCKED (the source is in use), OB_EBUSY (the target has live nodes),
 * OB_EUNAVAIL, OB_ESCHEMA or a store error. */
int ob_store_copy(const char *from, const char *to, ob_progress_fn fn, void *arg,
                  ob_copy_stats *st);

#endif
