/*
 * sqlite_schedules.c - the embedded store's cron schedules (the schedules
 * table, store_schedule): read, written and found due by the commit
 * thread (the engine's schedules.c decides what a tick makes), and listed
 * by readers. Schedules change rarely and tick at most once a second
 * each, so statements are prepared per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sq.h"

#define SCHED_COLS                                                                        \
    "name, cron, timezone, kind, queue, priority, payload, max_attempts, timeout_ms, meta," \
    " rate_key, missed, paused, next_at, last_at, last_job, updated_at"

/* A row of SCHED_COLS into *sc (payload and meta malloc'd). */
static int sched_row(sqlite3_stmt *st, store_schedule *sc)
{
    memset(sc, 0, sizeof *sc);
    obi_sq_text_col(st, 0, sc->name, sizeof sc->name);
    obi_sq_text_col(st, 1, sc->cron, sizeof sc->cron);
    obi_sq_text_col(st, 2, sc->timezone, sizeof sc->timezone);
    obi_sq_text_col(st, 3, sc->kind, sizeof sc->kind);
    obi_sq_text_col(st, 4, sc->queue, sizeof sc->queue);
    sc->priority = sqlite3_column_int(st, 5);
    sc->payload_len = (size_t)sqlite3_column_bytes(st, 6);
    if (!(sc->payload = malloc(sc->payload_len + 1)))
        return OB_ENOMEM;
    if (sc->payload_len)
        memcpy(sc->payload, sqlite3_column_blob(st, 6), sc->payload_len);
    sc->payload[sc->payload_len] = '\0';
    sc->max_attempts = sqlite3_column_int(st, 7);
    sc->timeout_ms = sqlite3_column_int64(st, 8);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL &&
        !(sc->meta = strdup((const char *)sqlite3_column_text(st, 9)))) {
        obi_schedule_clear(sc);
        return OB_ENOMEM;
    }
    obi_sq_text_col(st, 10, sc->rate_key, sizeof sc->rate_key);
    sc->missed = sqlite3_column_int(st, 11);
    sc->paused = sqlite3_column_int(st, 12) != 0;
    sc->next_at = sqlite3_column_int64(st, 13);
    sc->last_at = sqlite3_column_int64(st, 14);
    if ((sc->has_last_job = sqlite3_column_bytes(st, 15) == 16))
        memcpy(sc->last_job.b, sqlite3_column_blob(st, 15), 16);
    sc->updated_at = sqlite3_column_int64(st, 16);
    return 0;
}

/* Run `sql` (bound by `bind`) and collect its rows, up to `max` into the
 * caller's out[] (or, with max < 0, into a malloc'd *grow). */
static int collect(sqlite3 *db, const char *sql, void (*bind)(sqlite3_stmt *, const void *),
                   const void *arg, store_schedule *out, int max, store_schedule **grow, int *n)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(db, rc, "schedules");
    if (bind)
        bind(st, arg);
    int cap = 0, r = 0;
    *n = 0;
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW && (max < 0 || *n < max)) {
        if (max < 0 && *n == cap) {
            cap = cap ? cap * 2 : 8;
            store_schedule *v = realloc(*grow, (size_t)cap * sizeof *v);
            if (!v) {
                r = OB_ENOMEM;
                break;
            }
            *grow = v;
        }
        store_schedule *sc = max < 0 ? &(*grow)[*n] : &out[*n];
        if (!(r = sched_row(st, sc)))
            (*n)++;
    }
    sqlite3_finalize(st);
    if (!r && rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = obi_sq_fail(db, rc, "schedules");
    if (r) {
        for (int i = 0; i < *n; i++)
            obi_schedule_clear(max < 0 ? &(*grow)[i] : &out[i]);
        *n = 0;
    }
    return r;
}

static void bind_name(sqlite3_stmt *st, const void *name) { obi_sq_bind_text(st, 1, name); }
static void bind_now(sqlite3_stmt *st, const void *now)
{
    sqlite3_bind_int64(st, 1, *(const int64_t *)now);
}

int obi_sq_schedule_load(store *base, const char *name, store_schedule *out)
{
    sqlite_store *s = (sqlite_store *)base;
    int n, rc = collect(s->w, "SELECT " SCHED_COLS " FROM schedules WHERE name = ?", bind_name,
                        name, out, 1, NULL, &n);
    return rc ? rc : n ? 0 : OB_ENOTFOUND;
}

int obi_sq_schedule_save(store *base, const store_schedule *sc)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st;
    const char *sql = "INSERT OR REPLACE INTO schedules(" SCHED_COLS ")"
                      " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    int rc = sqlite3_prepare_v2(s->w, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(s->w, rc, "save schedule");
    obi_sq_bind_text(st, 1, sc->name);
    obi_sq_bind_text(st, 2, sc->cron);
    obi_sq_bind_text(st, 3, sc->timezone);
    obi_sq_bind_text(st, 4, sc->kind);
    obi_sq_bind_text(st, 5, sc->queue);
    sqlite3_bind_int(st, 6, sc->priority);
    sqlite3_bind_blob64(st, 7, sc->payload ? (const void *)sc->payload : "", sc->payload_len,
                        SQLITE_STATIC);
    sqlite3_bind_int(st, 8, sc->max_attempts);
    sqlite3_bind_int64(st, 9, sc->timeout_ms);
    obi_sq_bind_text(st, 10, sc->meta);
    obi_sq_bind_text(st, 11, sc->rate_key);
    sqlite3_bind_int(st, 12, sc->missed);
    sqlite3_bind_int(st, 13, sc->paused);
    sqlite3_bind_int64(st, 14, sc->next_at);
    sqlite3_bind_int64(st, 15, sc->last_at);
    if (sc->has_last_job)
        obi_sq_bind_id(st, 16, &sc->last_job);
    else
        sqlite3_bind_null(st, 16);
    sqlite3_bind_int64(st, 17, sc->updated_at);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : obi_sq_fail(s->w, rc, "save schedule");
}

int obi_sq_schedule_delete(store *base, const char *name)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->w, "DELETE FROM schedules WHERE name = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(s->w, rc, "delete schedule");
    obi_sq_bind_text(st, 1, name);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return obi_sq_fail(s->w, rc, "delete schedule");
    return sqlite3_changes(s->w) ? 0 : OB_ENOTFOUND;
}

int obi_sq_schedules_due(store *base, int64_t now, store_schedule *out, int max, int *n)
{
    sqlite_store *s = (sqlite_store *)base;
    return collect(s->w,
                   "SELECT " SCHED_COLS " FROM schedules WHERE paused = 0 AND next_at <= ?"
                   " ORDER BY next_at",
                   bind_now, &now, out, max, NULL, n);
}

int obi_sq_schedules_next(store *base, int64_t *next)
{
    sqlite_store *s = (sqlite_store *)base;
    int64_t v, none;
    int rc = obi_sq_query_int(s->w, "SELECT count(*) = 0 FROM schedules WHERE paused = 0", &none);
    if (!rc)
        rc = obi_sq_query_int(s->w, "SELECT min(next_at) FROM schedules WHERE paused = 0", &v);
    *next = rc || none ? INT64_MAX : v;
    return rc;
}

/* A reader: every schedule. */
int obi_sq_schedules_read(sqlite3 *db, store_schedule **rows, int *n)
{
    *rows = NULL;
    int rc = collect(db, "SELECT " SCHED_COLS " FROM schedules ORDER BY name", NULL, NULL, NULL,
                     -1, rows, n);
    if (rc) {
        free(*rows);
        *rows = NULL;
    }
    return rc;
}
