/*
 * store_contract_tx.c - transactional enqueue (ob_enqueue_pg,
 * ob_enqueue_sqlite): an application enqueues inside its own transaction,
 * on its own connection, and the job exists if and only if that
 * transaction commits. Run on both stores (OB_TEST_STORE), each with its
 * own kind of connection.
 */
#include <libpq-fe.h>
#include <sqlite3.h>

#include "helpers.h"

/* The application's own connection to the engine's database. */
typedef struct app {
    PGconn *pg;
    sqlite3 *db;
} app;

static bool on_pg(void) { return strcmp(test_store(), "postgres") == 0; }

static app app_open(const char *url)
{
    app a = {0};
    if (on_pg())
        a.pg = test_pg_connect(url);
    else {
        ASSERT_EQ(sqlite3_open(url + strlen("sqlite:"), &a.db), SQLITE_OK);
        sqlite3_busy_timeout(a.db, 5000); /* the engine writes to the file too */
    }
    return a;
}

static void app_exec(app *a, const char *sql)
{
    if (a->pg) {
        PGresult *r = PQexec(a->pg, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            test_fail(__FILE__, __LINE__, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        char *err = NULL;
        if (sqlite3_exec(a->db, sql, NULL, NULL, &err) != SQLITE_OK)
            test_fail(__FILE__, __LINE__, "%s: %s", sql, err);
    }
}

static long app_count(app *a, const char *sql)
{
    long n = -1;
    if (a->pg) {
        PGresult *r = PQexec(a->pg, sql);
        ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
        n = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
    } else {
        sqlite3_stmt *st;
        ASSERT_EQ(sqlite3_prepare_v2(a->db, sql, -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

static int app_enqueue(ob_engine *e, app *a, ob_new_job *j, ob_id *id, bool *existed)
{
    if (!j->kind)
        j->kind = "script";
    return a->pg ? ob_enqueue_pg(e, (struct pg_conn *)a->pg, j, id, existed)
                 : ob_enqueue_sqlite(e, (struct sqlite3 *)a->db, j, id, existed);
}

static void app_close(app *a)
{
    PQfinish(a->pg);
    sqlite3_close(a->db);
}

static size_t jobs_listed(ob_engine *e)
{
    ob_list_filter f = {.limit = 100};
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(e, &f, &pg));
    size_t n = pg->n;
    ob_job_page_free(pg);
    return n;
}

TEST(rollback_leaves_no_job_and_commit_leaves_exactly_one)
{
    ob_engine *e = h_open("app.db", NULL);
    ob_pool *p = h_pool(e, 2, 0, NULL);
    app a = app_open(test_url("app.db"));
    app_exec(&a, "CREATE TABLE orders(n integer)");

    app_exec(&a, "BEGIN");
    app_exec(&a, "INSERT INTO orders VALUES (1)");
    ob_new_job j = {.payload = "done", .payload_len = 5, .terms = "Tx@Example.org"};
    ob_id gone, kept;
    ASSERT_OK(app_enqueue(e, &a, &j, &gone, NULL));
    app_exec(&a, "ROLLBACK");
    ob_engine_wake(e);
    h_sleep_ms(300);
    ob_job *got = NULL;
    ASSERT_RC(ob_job_get(e, &gone, &got), OB_ENOTFOUND);
    ASSERT_EQ(jobs_listed(e), 0);
    ASSERT_EQ(app_count(&a, "SELECT count(*) FROM orders"), 0);

    app_exec(&a, "BEGIN");
    app_exec(&a, "INSERT INTO orders VALUES (2)");
    ASSERT_OK(app_enqueue(e, &a, &j, &kept, NULL));
    app_exec(&a, "COMMIT");
    ob_engine_wake(e);
    got = h_wait(e, &kept);
    ASSERT_EQ(got->state, OB_COMPLETED);
    ASSERT_EQ(got->attempt, 1);
    ob_job_free(got);
    ASSERT_EQ(jobs_listed(e), 1);
    ASSERT_EQ(h_starts(&kept), 1);
    ASSERT_EQ(app_count(&a, "SELECT count(*) FROM orders"), 1);
    app_close(&a);
    ob_pool_stop(p, 1000);
    h_counts_agree(e); /* the job counted in the app's transaction, once */
    ob_list_filter f = {.term = "tx@example.org"}; /* its terms kept, the rolled back's not */
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(e, &f, &pg));
    ASSERT_EQ(pg->n, 1);
    ASSERT(!memcmp(pg->jobs[0]->id.b, kept.b, 16));
    ob_job_page_free(pg);
    ob_engine_close(e);
}

/* PostgreSQL: the commit itself tells the nodes (NOTIFY). SQLite: the
 * engine notices another connection's commit (data_version) within about
 * a second, even when nobody calls ob_engine_wake. */
TEST(a_committed_job_starts_without_being_told)
{
    ob_engine *e = h_open("app.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    h_sleep_ms(300); /* the pool has looked, found nothing, and sleeps */
    app a = app_open(test_url("app.db"));
    app_exec(&a, "BEGIN");
    ob_new_job j = {.payload = "done", .payload_len = 5};
    ob_id id;
    ASSERT_OK(app_enqueue(e, &a, &j, &id, NULL));
    app_exec(&a, "COMMIT");
    int64_t committed = ob_now_ms();
    ob_job_free(h_wait(e, &id));
    ob_pool_stop(p, 1000);
    int64_t started = 0;
    for (int i = 0; i < atomic_load(&h_nlog); i++)
        if (!memcmp(h_log[i].id.b, id.b, 16))
            started = h_log[i].at_ms;
    printf("  started %lld ms after the application's commit\n",
           (long long)(started - committed));
    ASSERT(started - committed < (on_pg() ? 250 : 2500));
    app_close(&a);
    ob_engine_close(e);
}

TEST(a_unique_key_taken_returns_that_job_inside_the_transaction)
{
    ob_engine *e = h_open("app.db", NULL);
    ob_new_job j = {.payload = "done", .payload_len = 5, .unique_key = "order-7"};
    ob_id first = h_add_job(e, &j), again;
    app a = app_open(test_url("app.db"));
    app_exec(&a, "BEGIN");
    bool existed = false;
    ASSERT_OK(app_enqueue(e, &a, &j, &again, &existed));
    app_exec(&a, "COMMIT");
    ASSERT(existed);
    ASSERT_EQ(memcmp(first.b, again.b, 16), 0);
    ASSERT_EQ(jobs_listed(e), 1);
    app_close(&a);
    ob_engine_close(e);
}

TEST(bad_jobs_and_the_wrong_connection_are_refused)
{
    ob_engine *e = h_open("app.db", NULL);
    app a = app_open(test_url("app.db"));
    ob_new_job bad = {.kind = "no such kind", .payload = "x", .payload_len = 1};
    ob_id id;
    ASSERT_RC(app_enqueue(e, &a, &bad, &id, NULL), OB_EINVAL);
    ob_new_job nokind = {.kind = "unregistered", .payload = "x", .payload_len = 1};
    ASSERT_RC(app_enqueue(e, &a, &nokind, &id, NULL), OB_ENOKIND);
    ob_new_job j = {.kind = "script", .payload = "done", .payload_len = 5};
    /* the other store's function: refused, nothing touched */
    if (on_pg())
        ASSERT_RC(ob_enqueue_sqlite(e, (struct sqlite3 *)(void *)a.pg, &j, &id, NULL), OB_EINVAL);
    else
        ASSERT_RC(ob_enqueue_pg(e, (struct pg_conn *)(void *)a.db, &j, &id, NULL), OB_EINVAL);
    ASSERT_EQ(jobs_listed(e), 0);
    app_close(&a);
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(rollback_leaves_no_job_and_commit_leaves_exactly_one),
    T(a_committed_job_starts_without_being_told),
    T(a_unique_key_taken_returns_that_job_inside_the_transaction),
    T(bad_jobs_and_the_wrong_connection_are_refused),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
