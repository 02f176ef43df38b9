/*
 * pg_gather.c - the writer's row statements gathered into one statement
 * each: a batch's inserts of jobs without a unique key become one INSERT
 * ... SELECT FROM unnest(arrays) (and their search terms one more), and its
 * updates of rows the batch holds (locked by the prefetch) one UPDATE ...
 * FROM unnest(arrays), instead of a statement (an executor start, its
 * messages) each. bench/RESULTS.md has what it saved.
 *
 * A row is encoded when it is added, into one binary array a column
 * (PostgreSQL's array_send format: no quoting of payloads), and nothing of
 * the caller's is kept. What is gathered is sent (deferred, in the
 * pipeline) before anything else the writer sends (pgconn.before), and
 * when GATHER_ROWS rows or GATHER_BYTES bytes wait. Invariants:
 *   I1  Every statement the writer sends after a row was gathered is sent
 *       after that row's statement: it sees the change exactly as if it
 *       had been sent alone (a load, a cancel, a claim in the same
 *       transaction), and a failure of the statement fails the batch.
 *   I2  A gathered update names each row once (a second change of a row
 *       first sends the first), and must change exactly its n rows: the
 *       rows are locked by this transaction, so fewer is a broken
 *       invariant (S3), reported and the batch failed, as one row's was.
 * A rollback drops what waits (obi_pg_gather_reset); nothing of it was
 * sent. Jobs with a unique key keep their own insert: a conflict is an
 * answer (STORE_EXISTS), not a failure; rows the batch does not hold keep
 * their own update, waited for (OB_ESTATE when it changed nothing).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

#define GATHER_ROWS 512          /* rows a statement at most */
#define GATHER_BYTES (8u << 20)  /* payload and text bytes a statement, about */
#define ARR_HEAD 20              /* ndim, flags, element type, size, lower bound */

/* Element types (pg_type.oid) of each statement's arrays, in its order. */
enum { T_BOOL = 16, T_BYTEA = 17, T_INT8 = 20, T_INT2 = 21, T_INT4 = 23, T_TEXT = 25,
       T_UUID = 2950 };
static const unsigned ins_types[] = {T_UUID, T_TEXT, T_TEXT, T_INT4, T_INT2, T_INT4,
                                     T_INT8, T_INT8, T_INT8, T_TEXT, T_BYTEA, T_TEXT};
static const unsigned terms_types[] = {T_UUID, T_TEXT};
static const unsigned upd_types[] = {T_UUID, T_INT2, T_INT2, T_INT4, T_INT4,
                                     T_INT8, T_INT8, T_BOOL, T_TEXT, T_INT4};
_Static_assert(sizeof ins_types / sizeof *ins_types <= GATHER_COLS, "columns");
_Static_assert(sizeof upd_types / sizeof *upd_types <= GATHER_COLS, "columns");

/* ---- one column: a binary array ---- */

bool obi_pg_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return false;
    *buf = b;
    *cap = c;
    return true;
}

/* Room for `more` bytes at the end of a. Once a has a buffer, its first
 * ARR_HEAD bytes are the header's (written by arr_finish). */
static bool arr_room(pg_arr *a, size_t more)
{
    size_t len = a->buf ? a->len : ARR_HEAD;
    if (!obi_pg_grow(&a->buf, &a->cap, len + more))
        return false;
    a->len = len;
    return true;
}

static void put32(char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

/* Append one element: `len` bytes, or NULL (v == NULL). */
static bool arr_add(pg_arr *a, const void *v, size_t len)
{
    if (!arr_room(a, 4 + (v ? len : 0)))
        return false;
    put32(a->buf + a->len, v ? (uint32_t)len : UINT32_MAX); /* -1: NULL */
    a->len += 4;
    if (v) {
        memcpy(a->buf + a->len, v, len);
        a->len += len;
    } else {
        a->nulls = true;
    }
    return true;
}

static bool arr_int(pg_arr *a, int64_t v, int size)
{
    char b[8];
    if (size == 8) {
        uint64_t x = htobe64((uint64_t)v);
        memcpy(b, &x, 8);
    } else if (size == 4) {
        put32(b, (uint32_t)(int32_t)v);
    } else if (size == 2) {
        uint16_t x = htons((uint16_t)(int16_t)v);
        memcpy(b, &x, 2);
    } else {
        b[0] = (char)(v != 0);
    }
    return arr_add(a, b, (size_t)size);
}

static bool arr_str(pg_arr *a, const char *s) /* NULL: NULL */
{
    return arr_add(a, s, s ? strlen(s) : 0);
}

/* Write a's header: one dimension of n elements of type `type`. */
static bool arr_finish(pg_arr *a, int n, unsigned type)
{
    if (!arr_room(a, 0))
        return false;
    put32(a->buf, 1);
    put32(a->buf + 4, a->nulls);
    put32(a->buf + 8, type);
    put32(a->buf + 12, (uint32_t)n);
    put32(a->buf + 16, 1);
    return true;
}

/* ---- a set of rows: one array a column ---- */

static void rows_clear(pg_rows *r)
{
    for (int i = 0; i < GATHER_COLS; i++) {
        r->col[i].len = r->col[i].buf ? ARR_HEAD : 0;
        r->col[i].nulls = false;
    }
    r->n = 0;
    r->bytes = 0;
}

static void rows_free(pg_rows *r)
{
    for (int i = 0; i < GATHER_COLS; i++)
        free(r->col[i].buf);
}

/* Send r's rows as `stmt` (deferred, expecting `expect` rows changed). */
static int rows_send(pg_store *s, pg_rows *r, int stmt, const unsigned *types, int ncols,
                     int expect)
{
    const char *v[GATHER_COLS];
    int len[GATHER_COLS], fmt[GATHER_COLS];
    for (int i = 0; i < ncols; i++) {
        if (!arr_finish(&r->col[i], r->n, types[i]))
            return OB_ENOMEM;
        v[i] = r->col[i].buf, len[i] = (int)r->col[i].len, fmt[i] = 1;
    }
    return obi_pgc_defer(&s->w, stmt, ncols, v, len, fmt, expect);
}

/* ---- the writer's gathered statements ---- */

void obi_pg_gather_reset(pg_gather *g)
{
    rows_clear(&g->ins);
    rows_clear(&g->terms);
    rows_clear(&g->upd);
}

void obi_pg_gather_free(pg_gather *g)
{
    rows_free(&g->ins);
    rows_free(&g->terms);
    rows_free(&g->upd);
    memset(g, 0, sizeof *g);
}

#define NCOLS(t) ((int)(sizeof t / sizeof *t))

/* pgconn.before of the writer, also called when a set is full: send what
 * waits (I1). Whatever the outcome, nothing waits after: a failure fails
 * the batch. Its own sends must not call it again (pgconn.in_before). */
int obi_pg_gather_flush(void *arg)
{
    pg_store *s = arg;
    pg_gather *g = &s->gather;
    bool nested = s->w.in_before;
    s->w.in_before = true;
    int rc = 0;
    if (g->ins.n)
        rc = rows_send(s, &g->ins, W_INSERT_MANY, ins_types, NCOLS(ins_types), PQ_ANY);
    if (!rc && g->terms.n)
        rc = rows_send(s, &g->terms, W_TERMS_MANY, terms_types, NCOLS(terms_types), PQ_ANY);
    if (!rc && g->upd.n) /* I2 */
        rc = rows_send(s, &g->upd, W_UPDATE_MANY, upd_types, NCOLS(upd_types), g->upd.n);
    obi_pg_gather_reset(g);
    s->w.in_before = nested;
    return rc;
}

/* A row was added to r: send everything when r is full. */
static int added(pg_store *s, pg_rows *r, size_t bytes)
{
    r->n++;
    r->bytes += bytes;
    return r->n >= GATHER_ROWS || r->bytes >= GATHER_BYTES ? obi_pg_gather_flush(s) : 0;
}

/* Out of memory with a column one element longer than another: drop
 * everything; the batch fails and is rolled back whole. */
static int lost(pg_store *s)
{
    obi_pg_gather_reset(&s->gather);
    return OB_ENOMEM;
}

int obi_pg_gather_insert(pg_store *s, const store_new *j)
{
    pg_gather *g = &s->gather;
    pg_arr *c = g->ins.col;
    const char *payload = j->payload ? (const char *)j->payload : "";
    bool ok = arr_add(&c[0], j->id.b, 16) && arr_str(&c[1], j->kind) &&
              arr_str(&c[2], j->queue) && arr_int(&c[3], j->priority, 4) &&
              arr_int(&c[4], j->state, 2) && arr_int(&c[5], j->max_attempts, 4) &&
              arr_int(&c[6], j->timeout_ms, 8) && arr_int(&c[7], j->run_at, 8) &&
              arr_int(&c[8], j->created_at, 8) && arr_str(&c[9], j->meta) &&
              arr_add(&c[10], payload, j->payload_len) &&
              arr_str(&c[11], j->rate_key ? j->rate_key : "");
    if (ok && j->terms) {
        ok = arr_add(&g->terms.col[0], j->id.b, 16) && arr_str(&g->terms.col[1], j->terms);
        if (ok)
            g->terms.n++;
    }
    if (!ok)
        return lost(s);
    size_t bytes = j->payload_len + (j->meta ? strlen(j->meta) : 0) +
                   (j->terms ? strlen(j->terms) : 0);
    return added(s, &g->ins, bytes);
}

/* Is row `id` among r's (column 0: the ids)? */
static bool has_id(const pg_rows *r, const ob_id *id)
{
    const char *p = r->col[0].buf + ARR_HEAD;
    for (int i = 0; i < r->n; i++, p += 4 + 16)
        if (!memcmp(p + 4, id->b, 16))
            return true;
    return false;
}

int obi_pg_gather_update(pg_store *s, const store_change *ch)
{
    pg_gather *g = &s->gather;
    if (g->upd.n && has_id(&g->upd, &ch->id)) { /* I2 */
        int rc = obi_pg_gather_flush(s);
        if (rc)
            return rc;
    }
    pg_arr *c = g->upd.col;
    bool ok = arr_add(&c[0], ch->id.b, 16) && arr_int(&c[1], ch->from, 2) &&
              arr_int(&c[2], ch->to, 2) && arr_int(&c[3], ch->attempt, 4) &&
              arr_int(&c[4], ch->max_attempts, 4) && arr_int(&c[5], ch->run_at, 8) &&
              (ch->finished_at ? arr_int(&c[6], ch->finished_at, 8) : arr_add(&c[6], NULL, 0)) &&
              arr_int(&c[7], ch->cancel_requested, 1) && arr_str(&c[8], ch->result) &&
              arr_int(&c[9], ch->from_attempt, 4);
    if (!ok)
        return lost(s);
    return added(s, &g->upd, ch->result ? strlen(ch->result) : 0);
}
