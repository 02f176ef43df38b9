/*
 * pg_records.c - the PostgreSQL store's records (outbox_records,
 * ob_record), as sqlite_records.c is the embedded store's. Keys sort
 * bytewise (COLLATE "C") whatever the database's collation, so a listing
 * pages the same on both stores. Statements are sent unprepared: records
 * change at the pace of bounces and operators, not of jobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/pg.h"

#define RECORD_COLS PG_RECORD_COLS

int obi_pg_record_save(store *base, const ob_record *r, bool *created)
{
    pg_store *s = (pg_store *)base;
    pgnum b;
    const char *v[5] = {r->set, r->key, r->tag, r->value, obi_pg_i64(&b, r->updated_at_ms)};
    PGresult *res;
    /* xmax is 0 in a row this statement inserted, set in one it updated */
    int rc = obi_pgc_call(&s->w, 0,
                          "INSERT INTO outbox_records(" RECORD_COLS ") VALUES($1, $2, $3, $4,"
                          " $5::bigint, $5::bigint) ON CONFLICT (set_name, key) DO UPDATE SET"
                          " tag = excluded.tag, value = excluded.value,"
                          " updated_at = excluded.updated_at RETURNING xmax = 0",
                          5, v, NULL, NULL, &res);
    if (!rc && created)
        *created = PQntuples(res) == 1 && obi_pgv_int(res, 0, 0) != 0;
    PQclear(res);
    return rc;
}

int obi_pg_record_delete(store *base, const char *set, const char *key)
{
    pg_store *s = (pg_store *)base;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, 0, "DELETE FROM outbox_records WHERE set_name = $1 AND key = $2",
                          2, (const char *[]){set, key}, NULL, NULL, &r);
    if (!rc && strcmp(PQcmdTuples(r), "0") == 0)
        rc = OB_ENOTFOUND;
    PQclear(r);
    return rc;
}

/* The rows of r (RECORD_COLS; r is cleared) into *rows (malloc'd). */
static int record_rows(PGresult *r, ob_record **rows, int *n)
{
    int nr = PQntuples(r), rc = 0;
    *rows = NULL;
    *n = 0;
    if (nr > 0 && !(*rows = calloc((size_t)nr, sizeof **rows)))
        rc = OB_ENOMEM;
    for (int i = 0; !rc && i < nr; i++) {
        ob_record *x = &(*rows)[i];
        snprintf(x->set, sizeof x->set, "%s", obi_pgv_str(r, i, 0, NULL));
        snprintf(x->key, sizeof x->key, "%s", obi_pgv_str(r, i, 1, NULL));
        snprintf(x->tag, sizeof x->tag, "%s", obi_pgv_str(r, i, 2, NULL));
        if (!(x->value = strdup(obi_pgv_str(r, i, 3, NULL))))
            rc = OB_ENOMEM;
        x->created_at_ms = obi_pgv_int(r, i, 4);
        x->updated_at_ms = obi_pgv_int(r, i, 5);
        if (!rc)
            (*n)++;
    }
    PQclear(r);
    if (rc) {
        while (*n > 0)
            free((*rows)[--*n].value);
        free(*rows);
        *rows = NULL;
    }
    return rc;
}

int obi_pg_records_get(store *base, const char *set, const char *const *keys, int n,
                       ob_record *out)
{
    memset(out, 0, (size_t)n * sizeof *out);
    json_t *arr = json_array(); /* the keys as one parameter, escaped by jansson */
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(keys[i]));
    char *list = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!list)
        return OB_ENOMEM;
    PGresult *r;
    int nr, rc = obi_pg_records_read(base, set, list, &r);
    free(list);
    ob_record *rows;
    if (rc || (rc = record_rows(r, &rows, &nr)))
        return rc;
    for (int i = 0; i < n && !rc; i++) /* each key its row (few keys: a scan) */
        for (int k = 0; k < nr && !rc; k++)
            if (strcmp(rows[k].key, keys[i]) == 0) {
                out[i] = rows[k];
                if (!(out[i].value = strdup(rows[k].value)))
                    rc = OB_ENOMEM;
                break;
            }
    for (int k = 0; k < nr; k++)
        free(rows[k].value);
    free(rows);
    if (rc)
        for (int i = 0; i < n; i++) {
            free(out[i].value);
            out[i] = (ob_record){0};
        }
    return rc;
}

int obi_pg_records(store *base, const ob_record_filter *f, ob_record **rows, int *n)
{
    char sql[512];
    pgnum b;
    snprintf(sql, sizeof sql,
             "SELECT " RECORD_COLS " FROM outbox_records WHERE set_name = $1%s%s%s"
             " ORDER BY set_name, key LIMIT $5::int",
             f->tag ? " AND tag = $2" : " AND $2::text IS NULL",
             f->contains ? " AND strpos(key, $3) > 0" : " AND $3::text IS NULL",
             f->after ? " AND key > $4" : " AND $4::text IS NULL");
    PGresult *r;
    int rc = obi_pg_read(base, sql, 5,
                         (const char *[]){f->set, f->tag, f->contains, f->after,
                                          obi_pg_i64(&b, f->limit)},
                         &r);
    return rc ? rc : record_rows(r, rows, n);
}
