/*
 * pg_tx.c - transactional enqueue on PostgreSQL (ob_enqueue_pg): the job
 * inserted through the application's own connection, inside its open
 * transaction, so that the job commits or rolls back with the
 * application's data. The statements name the schema (the caller's
 * search_path is its own business) and are made once, at open; the job's
 * count (N1) and search terms go in the same transaction, and the NOTIFY
 * that wakes the nodes is delivered by PostgreSQL at the caller's commit,
 * and only then.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

__attribute__((format(printf, 1, 2))) static char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

int obi_pg_tx_init(pg_tx *tx, PGconn *c, const char *schema, const char *channel)
{
    char *qs = PQescapeIdentifier(c, schema, strlen(schema));
    char *qc = PQescapeLiteral(c, channel, strlen(channel));
    if (qs && qc) {
        tx->insert = str_printf(INSERT_TX_SQL("%1$s."), qs);
        tx->find = str_printf("SELECT id FROM %s.outbox_jobs WHERE unique_key = $1", qs);
        tx->notify = str_printf("SELECT pg_notify(%s, $1)", qc);
        tx->terms = str_printf(TERMS_SQL("%1$s."), qs);
    }
    PQfreemem(qs);
    PQfreemem(qc);
    return tx->insert && tx->find && tx->notify && tx->terms ? 0 : OB_ENOMEM;
}

void obi_pg_tx_free(pg_tx *tx)
{
    free(tx->insert);
    free(tx->find);
    free(tx->notify);
    free(tx->terms);
    memset(tx, 0, sizeof *tx);
}

int obi_pg_insert_tx(store *base, void *conn, const store_new *j, ob_id *existing)
{
    pg_store *s = (pg_store *)base;
    PGconn *c = conn;
    pgnum b[6];
    const char *v[13];
    int len[13], fmt[13];
    obi_pg_insert_params(j, b, v, len, fmt);
    PGresult *r = PQexecParams(c, s->tx.insert, 13, NULL, v, len, fmt, 1);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        OB_ERROR("postgres: transactional enqueue: %s", PQresultErrorMessage(r));
        rc = PQstatus(c) == CONNECTION_OK ? OB_ESTORE : OB_EUNAVAIL;
    } else if (strcmp(PQcmdTuples(r), "1") != 0) {
        rc = STORE_EXISTS;
    }
    PQclear(r);
    if (rc == STORE_EXISTS) {
        r = PQexecParams(c, s->tx.find, 1, NULL, &j->unique_key, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            OB_ERROR("postgres: transactional enqueue: %s", PQresultErrorMessage(r));
            rc = OB_ESTORE;
        } else {
            obi_pgv_id(r, 0, 0, existing);
        }
        PQclear(r);
        return rc;
    }
    if (rc)
        return rc;
    if (j->terms) {
        const char *tv[2] = {ID_PARAM(&j->id), j->terms};
        r = PQexecParams(c, s->tx.terms, 2, NULL, tv, (const int[]){16, 0}, (const int[]){1, 0}, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            OB_ERROR("postgres: transactional enqueue: %s", PQresultErrorMessage(r));
            rc = PQstatus(c) == CONNECTION_OK ? OB_ESTORE : OB_EUNAVAIL;
        }
        PQclear(r);
        if (rc)
            return rc;
    }
    /* Delivered at the caller's commit, and only then: nodes claim at once. */
    char msg[64];
    snprintf(msg, sizeof msg, "- %lld", (long long)(j->state == OB_AVAILABLE ? 0 : j->run_at));
    const char *mv = msg;
    r = PQexecParams(c, s->tx.notify, 1, NULL, &mv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        OB_ERROR("postgres: transactional enqueue: %s", PQresultErrorMessage(r));
        rc = OB_ESTORE;
    }
    PQclear(r);
    return rc;
}
