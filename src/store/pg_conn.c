/*
 * pg_conn.c - one PostgreSQL connection of the store: it reconnects by
 * itself, and every statement goes through libpq's pipeline.
 *
 * Reconnecting. A connection that fails is closed; the next obi_pgc_ready()
 * tries again, no sooner than its backoff (100 ms doubling to 5 s) allows,
 * and meanwhile answers OB_EUNAVAIL at once, so callers fail fast (the API
 * answers 503) instead of queueing behind a dead server. TCP keepalives
 * and tcp_user_timeout bound how long a silent network can hold a call.
 * After a reconnect the statements are prepared again.
 *
 * The pipeline. Most writes of a batch need no answer before the next
 * statement can be sent: an insert, an update of a row the batch already
 * holds locked. They are sent deferred (obi_pgc_defer) and their results are
 * read, in order, with the next statement that is waited for (obi_pgc_call) or
 * at obi_pgc_sync — so a batch of a thousand enqueues costs one round trip,
 * not a thousand. Invariant D1: a deferred statement's failure is never
 * lost: it is the result of the obi_pgc_call/obi_pgc_sync that reads it (and the
 * engine then rolls the whole batch back) — but for a hint (PQ_HINT: a
 * NOTIFY sent after a commit), whose failure is logged and changes no
 * result. Once every statement that counts has been read, their outcome is
 * known: a connection lost after that (reading hints, or the sync) does
 * not make it unknown.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    OB_DEBUG("postgres: %s", msg);
}

const char *obi_pg_i64(pgnum *b, int64_t v)
{
    snprintf(b->s, sizeof b->s, "%" PRId64, v);
    return b->s;
}

void obi_pgc_close(pgconn *p)
{
    if (p->c)
        PQfinish(p->c);
    p->c = NULL;
    p->npend = 0;
    p->pend_rc = 0;
}

static int connect_now(pgconn *p)
{
    /* Our defaults come first: the URL may override any of them. The
     * application name says which connection it is (pg_stat_activity). */
    char app[64];
    snprintf(app, sizeof app, "outbox %s", p->role);
    const char *keys[] = {"application_name", "connect_timeout", "keepalives",
                          "keepalives_idle", "keepalives_interval", "keepalives_count",
                          "tcp_user_timeout", "dbname", NULL};
    const char *vals[] = {app, "5", "1", "5", "2", "3", "10000", p->url, NULL};
    p->c = PQconnectdbParams(keys, vals, 1);
    if (!p->c)
        return OB_ENOMEM;
    if (PQstatus(p->c) != CONNECTION_OK)
        return OB_EUNAVAIL;
    PQsetNoticeProcessor(p->c, quiet_notice, NULL);
    if (p->setup) {
        PGresult *set = PQexec(p->c, p->setup);
        bool set_ok = PQresultStatus(set) == PGRES_COMMAND_OK;
        PQclear(set);
        if (!set_ok)
            return OB_EUNAVAIL;
    }
    for (int i = 0; p->stmts && i < p->stmts->n; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        PGresult *r = PQprepare(p->c, name, p->stmts->sql[i], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            OB_ERROR("postgres: cannot prepare %s: %s", p->stmts->sql[i],
                     PQresultErrorMessage(r));
        PQclear(r);
        if (!ok)
            return OB_ESTORE;
    }
    if (p->pipeline && !PQenterPipelineMode(p->c))
        return OB_ESTORE;
    return 0;
}

/* An idle connection has nothing to read; if it has, the server has spoken
 * on its own: almost always a termination notice and the end (a restart,
 * pg_terminate_backend). Then it is dropped now, and replaced, rather than
 * failing the next statement. */
static void drop_if_closed(pgconn *p)
{
    struct pollfd pf = {PQsocket(p->c), POLLIN, 0};
    if (pf.fd < 0 || poll(&pf, 1, 0) != 1)
        return;
    if (!PQconsumeInput(p->c) || PQstatus(p->c) != CONNECTION_OK) {
        OB_INFO("postgres: %s connection was closed by the server; reconnecting", p->role);
        obi_pgc_close(p);
        p->retry_at = 0;
    }
}

int obi_pgc_ready(pgconn *p)
{
    if (p->c && PQstatus(p->c) == CONNECTION_OK && !p->npend)
        drop_if_closed(p);
    if (p->c && PQstatus(p->c) == CONNECTION_OK)
        return 0;
    int64_t now = ob_now_ms();
    if (now < p->retry_at)
        return OB_EUNAVAIL;
    obi_pgc_close(p);
    int rc = connect_now(p);
    if (rc) {
        if (!p->down_since) {
            p->down_since = now;
            OB_ERROR("postgres: %s connection failed: %s", p->role,
                     p->c ? PQerrorMessage(p->c) : "out of memory");
        }
        obi_pgc_close(p);
        p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (p->backoff_ms > BACKOFF_MAX_MS)
            p->backoff_ms = BACKOFF_MAX_MS;
        p->retry_at = now + p->backoff_ms;
        return rc == OB_ESTORE ? rc : OB_EUNAVAIL;
    }
    if (p->down_since)
        OB_INFO("postgres: %s connection is back after %.1f s", p->role,
                (double)(now - p->down_since) / 1000.0);
    p->down_since = 0;
    p->backoff_ms = 0;
    return 0;
}

int obi_pgc_fail(pgconn *p, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char msg[512]; /* libpq's message, on one line */
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : p->c ? PQerrorMessage(p->c) : "");
    for (char *m = msg; *m; m++)
        if (*m == '\n' || *m == '\t')
            *m = ' ';
    for (size_t n = strlen(msg); n && msg[n - 1] == ' ';)
        msg[--n] = '\0';
    bool lost = !p->c || PQstatus(p->c) != CONNECTION_OK ||
                (state && (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3) ||
                           !strcmp(state, "53300")));
    int rc = lost                                 ? OB_EUNAVAIL
             : state && !strcmp(state, "53100")   ? OB_ENOSPC
             : state && !strcmp(state, "53200")   ? OB_ENOMEM
                                                  : OB_ESTORE;
    if (lost) {
        if (!p->down_since) {
            p->down_since = ob_now_ms();
            OB_ERROR("postgres: %s connection lost (%s): %s", p->role, what, msg);
        }
        obi_pgc_close(p);
        p->retry_at = 0; /* try once at once; back off after that */
    } else {
        OB_ERROR("postgres: %s: %s [%s]", what, msg, state ? state : "-");
    }
    return rc;
}

static int send_stmt(pgconn *p, int stmt, const char *sql, int n, const char *const *vals,
                     const int *lens, const int *fmts)
{
    int ok;
    if (sql) {
        ok = PQsendQueryParams(p->c, sql, n, NULL, vals, lens, fmts, 1);
    } else {
        char name[16];
        snprintf(name, sizeof name, "s%d", stmt);
        ok = PQsendQueryPrepared(p->c, name, n, vals, lens, fmts, 1);
    }
    return ok ? 0 : obi_pgc_fail(p, NULL, sql ? sql : p->stmts->sql[stmt]);
}

/* Read one statement's results: the result (to *keep, or checked against
 * `expect` and freed), then the NULL that ends it. */
static int read_one(pgconn *p, int expect, PGresult **keep)
{
    PGresult *r = PQgetResult(p->c);
    if (!r)
        return obi_pgc_fail(p, NULL, "reading a result");
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st == PGRES_PIPELINE_ABORTED) {
        rc = OB_ESTORE; /* an earlier statement failed: already reported */
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && expect == PQ_HINT) {
        obi_pgc_fail(p, r, "a notification after the commit"); /* logged: a hint */
        rc = OB_ESTORE;
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = obi_pgc_fail(p, r, "statement");
    } else if (!keep && expect >= 0 && atol(PQcmdTuples(r)) != expect) {
        OB_ERROR("postgres: a row the batch holds changed under it (%s of %d rows)",
                 PQcmdTuples(r), expect);
        rc = OB_ESTORE;
    }
    if (keep && !rc)
        *keep = r;
    else
        PQclear(r);
    if (p->c && (r = PQgetResult(p->c)) != NULL) { /* the end of this statement */
        PQclear(r);
        if (!rc)
            rc = obi_pgc_fail(p, NULL, "unexpected extra result");
    }
    return rc;
}

/* Send a sync, then read the deferred results, then (if keep) the waited
 * statement's, then the sync's. */
static int sync_read(pgconn *p, PGresult **keep)
{
    if (!PQpipelineSync(p->c))
        return obi_pgc_fail(p, NULL, "pipeline sync");
    int rc = p->pend_rc;
    bool unread = false; /* a result that counts was never read (D1) */
    for (int i = 0; i < p->npend; i++) {
        bool hint = p->pend[i] == PQ_HINT;
        if (!p->c) {
            unread |= !hint;
            continue;
        }
        int r = read_one(p, p->pend[i], NULL);
        if (!rc && !hint)
            rc = r;
    }
    p->npend = 0;
    p->pend_rc = 0;
    if (keep && !p->c)
        unread = true;
    if (keep && p->c) {
        int r = read_one(p, PQ_ANY, rc ? NULL : keep);
        if (!rc)
            rc = r;
    }
    if (!p->c)
        return rc ? rc : unread ? OB_EUNAVAIL : 0;
    PGresult *s = PQgetResult(p->c);
    if (!s || PQresultStatus(s) != PGRES_PIPELINE_SYNC) {
        int r = obi_pgc_fail(p, s, "pipeline sync result"); /* logged */
        if (!rc && p->c)
            rc = r; /* a lost connection here changes no outcome read */
    }
    PQclear(s);
    if (rc && keep && *keep) {
        PQclear(*keep);
        *keep = NULL;
    }
    return rc;
}

/* Let the owner send what it gathered first (pgconn.before). */
static int before(pgconn *p)
{
    if (!p->before || p->in_before)
        return 0;
    p->in_before = true;
    int rc = p->before(p->before_arg);
    p->in_before = false;
    return rc;
}

int obi_pgc_sync(pgconn *p)
{
    int rc = before(p);
    if (rc)
        return rc;
    if (!p->c)
        return OB_EUNAVAIL;
    if (!p->npend)
        return 0;
    return sync_read(p, NULL);
}

int obi_pgc_defer(pgconn *p, int stmt, int n, const char *const *vals, const int *lens,
              const int *fmts, int expect)
{
    int rc = before(p);
    if (rc)
        return rc;
    if (!p->c)
        return OB_EUNAVAIL;
    if (p->npend == PQ_PENDING_MAX) {
        rc = sync_read(p, NULL);
        if (rc)
            return rc;
    }
    rc = send_stmt(p, stmt, NULL, n, vals, lens, fmts);
    if (!rc)
        p->pend[p->npend++] = expect;
    return rc;
}

int obi_pgc_call(pgconn *p, int stmt, const char *sql, int n, const char *const *vals,
             const int *lens, const int *fmts, PGresult **out)
{
    *out = NULL;
    int rc = before(p);
    if (rc)
        return rc;
    if (!p->c)
        return OB_EUNAVAIL;
    rc = send_stmt(p, stmt, sql, n, vals, lens, fmts);
    if (rc)
        return rc;
    return sync_read(p, out);
}

/* ---- binary fields ---- */

bool obi_pgv_null(const PGresult *r, int row, int col) { return PQgetisnull(r, row, col); }

int64_t obi_pgv_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
    switch (PQgetlength(r, row, col)) {
    case 1: return v[0];
    case 2: return (int16_t)(v[0] << 8 | v[1]);
    case 4: {
        uint32_t x;
        memcpy(&x, v, 4);
        return (int32_t)ntohl(x);
    }
    case 8: {
        uint64_t x;
        memcpy(&x, v, 8);
        return (int64_t)be64toh(x);
    }
    }
    return 0;
}

const char *obi_pgv_str(const PGresult *r, int row, int col, size_t *len)
{
    if (len)
        *len = (size_t)PQgetlength(r, row, col);
    return PQgetvalue(r, row, col);
}

void obi_pgv_id(const PGresult *r, int row, int col, ob_id *out)
{
    memset(out->b, 0, 16);
    if (PQgetlength(r, row, col) == 16)
        memcpy(out->b, PQgetvalue(r, row, col), 16);
}
