/*
 * pg_schedules.c - the PostgreSQL store's cron schedules (outbox_schedules,
 * store_schedule), as sqlite_schedules.c is the embedded store's. A due
 * schedule is locked with SKIP LOCKED: two nodes that both think they
 * lead for a moment never work the same tick at once (and the tick's job
 * has a unique key besides). Statements are sent unprepared: schedules
 * change rarely and tick at most once a second each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

static void text_col(const PGresult *r, int i, int c, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", obi_pgv_str(r, i, c, NULL));
}

/* Row i of r (PG_SCHED_COLS) into *sc (payload and meta malloc'd). */
static int sched_row(const PGresult *r, int i, store_schedule *sc)
{
    memset(sc, 0, sizeof *sc);
    text_col(r, i, 0, sc->name, sizeof sc->name);
    text_col(r, i, 1, sc->cron, sizeof sc->cron);
    text_col(r, i, 2, sc->timezone, sizeof sc->timezone);
    text_col(r, i, 3, sc->kind, sizeof sc->kind);
    text_col(r, i, 4, sc->queue, sizeof sc->queue);
    sc->priority = (int)obi_pgv_int(r, i, 5);
    const char *pl = obi_pgv_str(r, i, 6, &sc->payload_len);
    if (!(sc->payload = malloc(sc->payload_len + 1)))
        return OB_ENOMEM;
    memcpy(sc->payload, pl, sc->payload_len);
    sc->payload[sc->payload_len] = '\0';
    sc->max_attempts = (int)obi_pgv_int(r, i, 7);
    sc->timeout_ms = obi_pgv_int(r, i, 8);
    if (!obi_pgv_null(r, i, 9) && !(sc->meta = strdup(obi_pgv_str(r, i, 9, NULL)))) {
        obi_schedule_clear(sc);
        return OB_ENOMEM;
    }
    text_col(r, i, 10, sc->rate_key, sizeof sc->rate_key);
    sc->missed = (int)obi_pgv_int(r, i, 11);
    sc->paused = obi_pgv_int(r, i, 12) != 0;
    sc->next_at = obi_pgv_int(r, i, 13);
    sc->last_at = obi_pgv_int(r, i, 14);
    if ((sc->has_last_job = !obi_pgv_null(r, i, 15)))
        obi_pgv_id(r, i, 15, &sc->last_job);
    sc->updated_at = obi_pgv_int(r, i, 16);
    return 0;
}

/* The rows of r into out[0..max) (or a malloc'd *grow when max < 0). */
static int rows_of(PGresult *r, store_schedule *out, int max, store_schedule **grow, int *n)
{
    int nr = PQntuples(r), rc = 0;
    *n = 0;
    if (max < 0) {
        max = nr;
        if (nr > 0 && !(out = *grow = calloc((size_t)nr, sizeof *out)))
            rc = OB_ENOMEM;
    }
    for (int i = 0; !rc && i < nr && *n < max; i++)
        if (!(rc = sched_row(r, i, &out[*n])))
            (*n)++;
    PQclear(r);
    if (rc) {
        while (*n > 0)
            obi_schedule_clear(&out[--*n]);
        if (grow) {
            free(*grow);
            *grow = NULL;
        }
    }
    return rc;
}

int obi_pg_schedule_load(store *base, const char *name, store_schedule *out)
{
    pg_store *s = (pg_store *)base;
    PGresult *r;
    int n, rc = obi_pgc_call(&s->w, 0,
                             "SELECT " PG_SCHED_COLS " FROM outbox_schedules WHERE name = $1"
                             " FOR UPDATE",
                             1, (const char *[]){name}, NULL, NULL, &r);
    if (!rc)
        rc = rows_of(r, out, 1, NULL, &n);
    return rc ? rc : n ? 0 : OB_ENOTFOUND;
}

int obi_pg_schedule_save(store *base, const store_schedule *sc)
{
    pg_store *s = (pg_store *)base;
    pgnum b[9];
    char last[OB_ID_STRLEN + 1];
    const char *v[17] = {sc->name,
                         sc->cron,
                         sc->timezone,
                         sc->kind,
                         sc->queue,
                         obi_pg_i64(&b[0], sc->priority),
                         sc->payload ? (const char *)sc->payload : "",
                         obi_pg_i64(&b[1], sc->max_attempts),
                         obi_pg_i64(&b[2], sc->timeout_ms),
                         sc->meta,
                         sc->rate_key,
                         obi_pg_i64(&b[3], sc->missed),
                         sc->paused ? "t" : "f",
                         obi_pg_i64(&b[4], sc->next_at),
                         obi_pg_i64(&b[5], sc->last_at),
                         sc->has_last_job ? ob_id_format(&sc->last_job, last) : NULL,
                         obi_pg_i64(&b[6], sc->updated_at)};
    int len[17] = {[6] = (int)sc->payload_len}, fmt[17] = {[6] = 1};
    PGresult *r;
    int rc = obi_pgc_call(
        &s->w, 0,
        "INSERT INTO outbox_schedules(" PG_SCHED_COLS ") VALUES($1, $2, $3, $4, $5, $6::int,"
        " $7::bytea, $8::int, $9::bigint, $10, $11, $12::smallint, $13::boolean, $14::bigint,"
        " $15::bigint, $16::uuid, $17::bigint) ON CONFLICT (name) DO UPDATE SET"
        " cron = excluded.cron, timezone = excluded.timezone, kind = excluded.kind,"
        " queue = excluded.queue, priority = excluded.priority, payload = excluded.payload,"
        " max_attempts = excluded.max_attempts, timeout_ms = excluded.timeout_ms,"
        " meta = excluded.meta, rate_key = excluded.rate_key, missed = excluded.missed,"
        " paused = excluded.paused, next_at = excluded.next_at, last_at = excluded.last_at,"
        " last_job = excluded.last_job, updated_at = excluded.updated_at",
        17, v, len, fmt, &r);
    PQclear(r);
    return rc;
}

int obi_pg_schedule_delete(store *base, const char *name)
{
    pg_store *s = (pg_store *)base;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, 0, "DELETE FROM outbox_schedules WHERE name = $1", 1,
                          (const char *[]){name}, NULL, NULL, &r);
    if (!rc && strcmp(PQcmdTuples(r), "0") == 0)
        rc = OB_ENOTFOUND;
    PQclear(r);
    return rc;
}

int obi_pg_schedules_due(store *base, int64_t now, store_schedule *out, int max, int *n)
{
    pg_store *s = (pg_store *)base;
    pgnum b[2];
    PGresult *r;
    *n = 0;
    int rc = obi_pgc_call(&s->w, 0,
                          "SELECT " PG_SCHED_COLS " FROM outbox_schedules WHERE NOT paused"
                          " AND next_at <= $1::bigint ORDER BY next_at LIMIT $2::int"
                          " FOR UPDATE SKIP LOCKED",
                          2, (const char *[]){obi_pg_i64(&b[0], now), obi_pg_i64(&b[1], max)},
                          NULL, NULL, &r);
    return rc ? rc : rows_of(r, out, max, NULL, n);
}

int obi_pg_schedules_next(store *base, int64_t *next)
{
    pg_store *s = (pg_store *)base;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, 0,
                          "SELECT min(next_at) FROM outbox_schedules WHERE NOT paused", 0, NULL,
                          NULL, NULL, &r);
    *next = !rc && !obi_pgv_null(r, 0, 0) ? obi_pgv_int(r, 0, 0) : INT64_MAX;
    PQclear(r);
    return rc;
}

int obi_pg_schedules_rows(PGresult *r, store_schedule **rows, int *n)
{
    *rows = NULL;
    return rows_of(r, NULL, -1, rows, n);
}
