/*
 * sqlite_records.c - the embedded store's records (the records table,
 * ob_record in outbox/job.h): saved and deleted by the commit thread,
 * read and listed by readers. A record is one row keyed by (set, key);
 * listings run down the primary key, or the (set, tag, key) index when a
 * tag is asked for, so a page costs an index seek and `limit` steps
 * (plus the rows a `contains` filter skips).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sq.h"


/* A row of RECORD_COLS into *r (its value malloc'd). */
static int record_row(sqlite3_stmt *st, ob_record *r)
{
    memset(r, 0, sizeof *r);
    obi_sq_text_col(st, 0, r->set, sizeof r->set);
    obi_sq_text_col(st, 1, r->key, sizeof r->key);
    obi_sq_text_col(st, 2, r->tag, sizeof r->tag);
    const unsigned char *v = sqlite3_column_text(st, 3);
    if (!(r->value = strdup(v ? (const char *)v : "{}")))
        return OB_ENOMEM;
    r->created_at_ms = sqlite3_column_int64(st, 4);
    r->updated_at_ms = sqlite3_column_int64(st, 5);
    return 0;
}

int obi_sq_record_save(store *base, const ob_record *r, bool *created)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st;
    /* the commit thread is the only writer: what it reads here stays so */
    int rc = sqlite3_prepare_v2(s->w, "SELECT count(*) FROM records WHERE set_name = ?"
                                " AND key = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(s->w, rc, "save record");
    obi_sq_bind_text(st, 1, r->set);
    obi_sq_bind_text(st, 2, r->key);
    rc = sqlite3_step(st);
    bool fresh = rc == SQLITE_ROW && sqlite3_column_int(st, 0) == 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return obi_sq_fail(s->w, rc, "save record");
    if (created)
        *created = fresh;
    rc = sqlite3_prepare_v2(s->w, "INSERT INTO records(" RECORD_COLS ")"
                            " VALUES(?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(set_name, key)"
                            " DO UPDATE SET tag = excluded.tag, value = excluded.value,"
                            " updated_at = excluded.updated_at", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(s->w, rc, "save record");
    obi_sq_bind_text(st, 1, r->set);
    obi_sq_bind_text(st, 2, r->key);
    obi_sq_bind_text(st, 3, r->tag);
    obi_sq_bind_text(st, 4, r->value);
    sqlite3_bind_int64(st, 5, r->updated_at_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : obi_sq_fail(s->w, rc, "save record");
}

int obi_sq_record_delete(store *base, const char *set, const char *key)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->w, "DELETE FROM records WHERE set_name = ? AND key = ?", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(s->w, rc, "delete record");
    obi_sq_bind_text(st, 1, set);
    obi_sq_bind_text(st, 2, key);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return obi_sq_fail(s->w, rc, "delete record");
    return sqlite3_changes(s->w) ? 0 : OB_ENOTFOUND;
}

/* Step st to its end (or `max` rows), the rows into *rows (malloc'd). */
static int record_rows(sqlite3 *db, sqlite3_stmt *st, int max, ob_record **rows, int *n)
{
    int rc, r = 0;
    *rows = NULL;
    *n = 0;
    if (max > 0 && !(*rows = calloc((size_t)max, sizeof **rows)))
        r = OB_ENOMEM;
    while (!r && *n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        if (!(r = record_row(st, &(*rows)[*n])))
            (*n)++;
    if (!r && *n < max && rc != SQLITE_DONE)
        r = obi_sq_fail(db, rc, "records");
    sqlite3_finalize(st);
    if (r) {
        while (*n > 0)
            free((*rows)[--*n].value);
        free(*rows);
        *rows = NULL;
    }
    return r;
}

int obi_sq_records_find(sqlite3 *db, sqlite3_stmt *st, const char *set, const char *const *keys,
                        int n, ob_record *out)
{
    memset(out, 0, (size_t)n * sizeof *out);
    int rc, r = 0;
    for (int i = 0; i < n && !r; i++) { /* a primary-key seek each */
        sqlite3_reset(st);
        obi_sq_bind_text(st, 1, set);
        obi_sq_bind_text(st, 2, keys[i]);
        if ((rc = sqlite3_step(st)) == SQLITE_ROW)
            r = record_row(st, &out[i]);
        else if (rc != SQLITE_DONE)
            r = obi_sq_fail(db, rc, "record");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (r)
        for (int i = 0; i < n; i++) {
            free(out[i].value);
            out[i] = (ob_record){0};
        }
    return r;
}

int obi_sq_records_read(sqlite3 *db, const ob_record_filter *f, ob_record **rows, int *n)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT " RECORD_COLS " FROM records WHERE set_name = ?1%s%s%s"
             " ORDER BY set_name, key LIMIT ?5",
             f->tag ? " AND tag = ?2" : "", f->contains ? " AND instr(key, ?3) > 0" : "",
             f->after ? " AND key > ?4" : "");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(db, rc, "records");
    obi_sq_bind_text(st, 1, f->set);
    obi_sq_bind_text(st, 2, f->tag);
    obi_sq_bind_text(st, 3, f->contains);
    obi_sq_bind_text(st, 4, f->after);
    sqlite3_bind_int(st, 5, f->limit);
    return record_rows(db, st, f->limit, rows, n);
}
