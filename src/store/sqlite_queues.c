/*
 * sqlite_queues.c - the embedded store's queue settings (the queues
 * table, store_queue) and the park sweep that keeps F3 (store.h): an
 * available job is parked while its queue has a row.
 *
 * One process writes this store, and insert, update and promote set
 * `parked` from the table in the same statement (sqlite.c), so the sweep
 * here only has the backlog to move when a queue gains or loses its row:
 * a page at a time, each in one batch of the commit thread, so that
 * pausing a queue of a million jobs never holds the writer for long.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sq.h"

/* A row of QUEUE_COLS at st into q. */
static void queue_row(sqlite3_stmt *st, store_queue *q)
{
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", (const char *)sqlite3_column_text(st, 0));
    q->paused = sqlite3_column_int(st, 1) != 0;
    q->concurrency = sqlite3_column_int(st, 2);
    q->rate_limit = sqlite3_column_int(st, 3);
    q->rate_period_ms = sqlite3_column_int64(st, 4);
    q->rate_window = sqlite3_column_int64(st, 5);
    q->rate_used = sqlite3_column_int(st, 6);
    q->key_rate_limit = sqlite3_column_int(st, 7);
    q->key_rate_period_ms = sqlite3_column_int64(st, 8);
    q->hold_until = sqlite3_column_int64(st, 9);
    q->key_hold_until = sqlite3_column_int64(st, 10);
    q->updated_at = sqlite3_column_int64(st, 11);
    q->running = sqlite3_column_int(st, 12);
}

int obi_sq_queue_rows(sqlite3 *db, sqlite3_stmt *st, store_queue **rows, int *n)
{
    store_queue *v = NULL;
    int cap = 0, rc;
    *rows = NULL;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            store_queue *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                sqlite3_reset(st);
                free(v);
                return OB_ENOMEM;
            }
            v = nv;
        }
        queue_row(st, &v[(*n)++]);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(v);
        *n = 0;
        return obi_sq_fail(db, rc, "read queues");
    }
    *rows = v;
    return 0;
}

/* One writer: nothing to lock beyond the batch's own transaction. */
int obi_sq_queues_lock(store *base, store_queue **rows, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    return obi_sq_queue_rows(s->w, WS(s, W_Q_ALL), rows, n);
}

int obi_sq_queue_load(store *base, const char *name, store_queue *q)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_Q_LOAD);
    obi_sq_bind_text(st, 1, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        queue_row(st, q);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? OB_ENOTFOUND : obi_sq_fail(s->w, rc, "load queue");
}

int obi_sq_queue_delete(store *base, const char *name)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_Q_DELETE);
    obi_sq_bind_text(st, 1, name);
    return obi_sq_step(s->w, st, "delete queue");
}

int obi_sq_queue_save(store *base, const store_queue *q)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_Q_SAVE);
    obi_sq_bind_text(st, 1, q->name);
    sqlite3_bind_int(st, 2, q->paused);
    sqlite3_bind_int(st, 3, q->concurrency);
    sqlite3_bind_int(st, 4, q->rate_limit);
    sqlite3_bind_int64(st, 5, q->rate_period_ms);
    sqlite3_bind_int64(st, 6, q->rate_window);
    sqlite3_bind_int(st, 7, q->rate_used);
    sqlite3_bind_int(st, 8, q->key_rate_limit);
    sqlite3_bind_int64(st, 9, q->key_rate_period_ms);
    sqlite3_bind_int64(st, 10, q->hold_until);
    sqlite3_bind_int64(st, 11, q->key_hold_until);
    sqlite3_bind_int64(st, 12, q->updated_at);
    return obi_sq_step(s->w, st, "save queue");
}

int obi_sq_park(store *base, const char *queue, bool park, int max, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, park ? W_PARK : W_UNPARK);
    obi_sq_bind_text(st, 1, queue);
    sqlite3_bind_int(st, 2, max);
    int rc = obi_sq_step(s->w, st, park ? "park jobs" : "unpark jobs");
    *n = rc ? 0 : sqlite3_changes(s->w);
    return rc;
}

int obi_sq_parked_orphans(store *base, char (*names)[OB_NAME_MAX + 1], int max, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_ORPHANS);
    sqlite3_bind_int(st, 1, max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
        snprintf(names[(*n)++], OB_NAME_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : obi_sq_fail(s->w, rc, "parked queues");
}

/* ---- rate keys ---- */

int obi_sq_keys_waiting(store *base, const char *queue, const char *after,
                        char (*keys)[OB_RATE_KEY_MAX + 1], int max, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_KEYS_WAITING);
    obi_sq_bind_text(st, 1, queue);
    obi_sq_bind_text(st, 2, after ? after : "");
    sqlite3_bind_int(st, 3, max);
    sqlite3_bind_int(st, 4, after == NULL); /* from the start: "" (no key) too */
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
        snprintf(keys[(*n)++], OB_RATE_KEY_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : obi_sq_fail(s->w, rc, "waiting keys");
}

int obi_sq_keys_lock(store *base, const char *queue, store_key *rows, int n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_KEY_LOAD);
    int rc = SQLITE_DONE;
    for (int i = 0; i < n && (rc == SQLITE_DONE || rc == SQLITE_ROW); i++) {
        obi_sq_bind_text(st, 1, queue);
        obi_sq_bind_text(st, 2, rows[i].key);
        rc = sqlite3_step(st);
        rows[i].rate_window = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        rows[i].rate_used = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : 0;
        rows[i].held_until = rc == SQLITE_ROW ? sqlite3_column_int64(st, 2) : 0;
        sqlite3_reset(st);
    }
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : obi_sq_fail(s->w, rc, "load key");
}

int obi_sq_key_save(store *base, const char *queue, const store_key *k)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_KEY_SAVE);
    obi_sq_bind_text(st, 1, queue);
    obi_sq_bind_text(st, 2, k->key);
    sqlite3_bind_int64(st, 3, k->rate_window);
    sqlite3_bind_int(st, 4, k->rate_used);
    sqlite3_bind_int64(st, 5, k->held_until);
    return obi_sq_step(s->w, st, "save key");
}

int obi_sq_keys_prune(store *base, const char *queue, int64_t now, int64_t period_ms, int max,
                      int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st = WS(s, W_KEYS_PRUNE);
    obi_sq_bind_text(st, 1, queue);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, period_ms);
    sqlite3_bind_int(st, 4, max);
    int rc = obi_sq_step(s->w, st, "prune keys");
    *n = rc ? 0 : sqlite3_changes(s->w);
    return rc;
}
