/*
 * pg_counts.c - the PostgreSQL store's counters (N1 in store.h): how many
 * jobs each (queue, kind, state) has, without counting them.
 *
 * A counter shared by every node would be a row every batch of every node
 * locks until it commits: the nodes' commits would queue behind each other.
 * So each node adds its batches' changes to rows of its own (node =
 * its id), transactional enqueues to a row of their backend ('tx:PID': one
 * transaction at a time a backend), and a reader sums the rows of a group.
 * A node's row may go negative (it finished jobs another node enqueued);
 * only the sum means anything. The leader folds the rows of nodes no longer
 * registered (and the backends') into its own, now and then, so the table
 * stays about one row a group and a live node.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store/pg.h"

/* Names are [A-Za-z0-9._-]: quoted, nothing to escape. */
static void put_queue(const void *ctx, int i, char *dst)
{
    sprintf(dst, "\"%s\"", ((const store_count *)ctx)[i].queue);
}
static void put_kind(const void *ctx, int i, char *dst)
{
    sprintf(dst, "\"%s\"", ((const store_count *)ctx)[i].kind);
}
static void put_state(const void *ctx, int i, char *dst)
{
    sprintf(dst, "%d", (int)((const store_count *)ctx)[i].state);
}
static void put_n(const void *ctx, int i, char *dst)
{
    sprintf(dst, "%lld", (long long)((const store_count *)ctx)[i].n);
}

int obi_pg_count_add(store *base, const store_count *d, int n)
{
    pg_store *s = (pg_store *)base;
    void (*put[4])(const void *, int, char *) = {put_queue, put_kind, put_state, put_n};
    const size_t each[4] = {OB_NAME_MAX + 2, OB_NAME_MAX + 2, 4, 21};
    char *a[4] = {0};
    int rc = 0;
    for (int i = 0; i < 4 && !rc; i++)
        if (!(a[i] = obi_pg_array_lit(n, each[i], put[i], d)))
            rc = OB_ENOMEM;
    if (!rc) {
        const char *v[5] = {s->node.idhex, a[0], a[1], a[2], a[3]};
        rc = obi_pgc_defer(&s->w, W_COUNT_ADD, 5, v, NULL, NULL, PQ_ANY);
    }
    for (int i = 0; i < 4; i++)
        free(a[i]);
    return rc;
}

int obi_pg_count_fold(pg_store *s)
{
    const char *v = s->node.idhex;
    PGresult *r;
    int rc = obi_pgc_call(&s->w, W_COUNT_FOLD, NULL, 1, &v, NULL, NULL, &r);
    if (!rc)
        PQclear(r);
    return rc;
}
