/*
 * sqlite_queues.c - the embedded store's queue settings (the queues
 * table, store_queue) and the park sweep that keeps P1 (store.h): an
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
    q->updated_at = sqlite3_column_int64(st, 7);
    q->running = sqlite3_column_int(st, 8);
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

int obi_sq_queue_save(store *base, const store_queue *q)
{
    sqlite_store *s = (sqlite_store *)base;
    if (!q->paused && !q->concurrency && !q->rate_limit) { /* Q1 */
        sqlite3_stmt *st = WS(s, W_Q_DELETE);
        obi_sq_bind_text(st, 1, q->name);
        return obi_sq_step(s->w, st, "delete queue");
    }
    sqlite3_stmt *st = WS(s, W_Q_SAVE);
    obi_sq_bind_text(st, 1, q->name);
    sqlite3_bind_int(st, 2, q->paused);
    sqlite3_bind_int(st, 3, q->concurrency);
    sqlite3_bind_int(st, 4, q->rate_limit);
    sqlite3_bind_int64(st, 5, q->rate_period_ms);
    sqlite3_bind_int64(st, 6, q->rate_window);
    sqlite3_bind_int(st, 7, q->rate_used);
    sqlite3_bind_int64(st, 8, q->updated_at);
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
