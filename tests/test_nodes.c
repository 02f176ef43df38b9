/*
 * test_nodes.c - several engines ("nodes") on one PostgreSQL database, in
 * this process and in forked ones: wake-ups between nodes, unique keys
 * across nodes, a dead node's jobs rescued by the leader and leadership
 * moving, the connection lost and found again, the schema version check.
 * PostgreSQL only (the SQLite store is one process by design).
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static void sql(const char *url, const char *q)
{
    PGconn *c = test_pg_connect(url);
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        test_fail(__FILE__, __LINE__, "%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static int64_t started_at(const ob_id *id, int attempt)
{
    for (int i = 0; i < atomic_load(&h_nlog) && i < H_LOG_MAX; i++)
        if (!memcmp(h_log[i].id.b, id->b, 16) && h_log[i].attempt == attempt)
            return h_log[i].at_ms;
    return 0;
}

TEST(work_enqueued_on_one_node_starts_on_another_at_once)
{
    ob_engine *a = h_open("jobs", NULL), *b = h_open("jobs", NULL);
    ob_pool *p = h_pool(b, 2, 0, NULL);
    h_sleep_ms(300); /* b has looked, found nothing, and waits */
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        int64_t t0 = ob_now_ms();
        ob_id id = h_add(a, "done"); /* a has no workers: only b can run it */
        ob_job_free(h_wait(b, &id));
        int64_t lat = started_at(&id, 1) - t0;
        if (lat > worst)
            worst = lat;
        h_sleep_ms(20);
    }
    printf("  worst enqueue-on-a to start-on-b: %lld ms\n", (long long)worst);
    /* Without NOTIFY it would be the refresh period, a second. (Typically
     * under 50 ms; 182 ms was seen under ASan beside the cluster test.) */
    ASSERT(worst < 400);
    ob_pool_stop(p, 1000);
    ob_engine_close(b);
    ob_engine_close(a);
}

/* A job scheduled on a node without workers is started by another node
 * when it is due (that node was told of the time, and sleeps until it). */
TEST(a_job_scheduled_on_one_node_starts_on_another_when_due)
{
    ob_engine *a = h_open("jobs", NULL), *b = h_open("jobs", NULL);
    ob_pool *p = h_pool(b, 1, 0, NULL);
    h_sleep_ms(300);
    ob_new_job j = {.kind = "script", .payload = "done", .payload_len = 5,
                    .run_at_ms = ob_now_ms() + 700};
    ob_id id = h_add_job(a, &j);
    ob_job_free(h_wait(b, &id));
    int64_t late = started_at(&id, 1) - j.run_at_ms;
    printf("  started %lld ms after it was due\n", (long long)late);
    ASSERT(late >= 0 && late < 150); /* without being told: up to the refresh, 1 s */
    ob_pool_stop(p, 1000);
    ob_engine_close(b);
    ob_engine_close(a);
}

/* "Did it happen?" asked on one node of a job another node ran: the wait
 * ends when the job does, not at its timeout. */
TEST(a_wait_on_one_node_ends_when_another_node_finishes_the_job)
{
    ob_engine *a = h_open("jobs", NULL), *b = h_open("jobs", NULL);
    ob_pool *p = h_pool(b, 1, 0, NULL);
    int64_t worst = 0;
    for (int i = 0; i < 10; i++) {
        ob_id id = h_add(a, "sleep:50");
        ob_job *j = NULL;
        ASSERT_OK(ob_job_wait(a, &id, 10000, &j)); /* a runs nothing */
        int64_t late = ob_now_ms() - j->finished_at_ms;
        ASSERT_EQ(j->state, OB_COMPLETED);
        ob_job_free(j);
        if (late > worst)
            worst = late;
    }
    printf("  the wait on the other node ended at most %lld ms after the job\n",
           (long long)worst);
    /* Told by NOTIFY it is a few ms; under a loaded CI machine (ASan, the
     * crash test beside it) one wait was seen at 276 ms. Below 800 ms it is
     * still the notification, not the 1 s refresh nor the 10 s timeout. */
    ASSERT(worst < 800);
    ob_pool_stop(p, 1000);
    ob_engine_close(b);
    ob_engine_close(a);
}

typedef struct racer {
    ob_engine *e;
    ob_id ids[50];
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    for (int k = 0; k < 50; k++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", k);
        ob_new_job j = {.kind = "script", .payload = "done", .payload_len = 5, .unique_key = key};
        ASSERT_OK(ob_enqueue(r->e, &j, &r->ids[k], NULL));
    }
    return NULL;
}

TEST(one_unique_key_on_two_nodes_makes_one_job)
{
    ob_engine *a = h_open("jobs", NULL), *b = h_open("jobs", NULL);
    racer rs[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        rs[i].e = i % 2 ? b : a;
        pthread_create(&t[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    for (int i = 1; i < 8; i++)
        for (int k = 0; k < 50; k++)
            ASSERT_EQ(memcmp(rs[i].ids[k].b, rs[0].ids[k].b, 16), 0);
    ob_list_filter f = {.limit = 1000};
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(a, &f, &pg));
    ASSERT_EQ(pg->n, 50);
    ob_job_page_free(pg);
    ob_engine_close(b);
    ob_engine_close(a);
}

/* A child process is the first node, so the leader, and runs a job that
 * hangs; it is killed. The second node must take the leadership and rescue
 * the job once the child's heartbeat is node_dead_ms old, not after the
 * job's timeout (a minute here). */
TEST(a_dead_nodes_jobs_are_rescued_and_the_leadership_moves)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.node_dead_ms = 1000;
    o.rescue_interval_ms = 100;
    o.kind_defaults.timeout_ms = 60000;
    char url[4200];
    snprintf(url, sizeof url, "%s", test_url("jobs")); /* the child's pid would differ */
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        ob_engine *c;
        ASSERT_OK(ob_engine_open(url, &o, &c));
        ASSERT_OK(ob_engine_register(c, "script", h_script, NULL, NULL));
        h_pool(c, 1, 0, NULL);
        h_add(c, "hang-first:600000");
        while (atomic_load(&h_nlog) == 0)
            h_sleep_ms(5);
        ASSERT_EQ(write(ready[1], "r", 1), 1);
        pause(); /* until killed */
    }
    char r;
    ASSERT_EQ(read(ready[0], &r, 1), 1);
    ob_engine *b = h_open("jobs", &o);
    ob_pool *p = h_pool(b, 1, 0, NULL);
    h_sleep_ms(300);
    ASSERT_EQ(atomic_load(&h_nlog), 0); /* the job is the child's, running */
    ob_node *nodes;
    size_t nn;
    ASSERT_OK(ob_engine_nodes(b, &nodes, &nn)); /* oldest first: the child leads */
    ASSERT_EQ(nn, 2);
    ASSERT(nodes[0].leader && !nodes[0].self && nodes[0].pid == child);
    ASSERT(!nodes[1].leader && nodes[1].self && nodes[1].pid == getpid());
    ASSERT(strlen(nodes[1].id) == 32 && nodes[1].heartbeat_at_ms > ob_now_ms() - 5000);
    free(nodes);
    kill(child, SIGKILL);
    int64_t killed = ob_now_ms();
    waitpid(child, NULL, 0);
    ob_list_filter f = {.limit = 10};
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(b, &f, &pg));
    ASSERT_EQ(pg->n, 1);
    ob_id id = pg->jobs[0]->id;
    ob_job_page_free(pg);
    ob_job *j = h_wait(b, &id);
    int64_t took = started_at(&id, 2) - killed;
    printf("  node killed; its job restarted on the other node after %lld ms "
           "(dead after 1000 ms)\n", (long long)took);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(j->attempt, 2);
    ASSERT_EQ(j->nerrors, 1);
    ASSERT(strstr(j->errors[0].message, "rescued"));
    /* Dead means its last heartbeat is node_dead_ms old. That beat came up to
     * a beat (node_dead_ms / 6) before the kill, more if the loaded machine
     * delayed it, so the rescue may come that much sooner than 1000 ms after
     * the kill; half the interval shows it waited for the heartbeat to age,
     * and the upper bound that it did not wait for the job's timeout. */
    ASSERT(took >= o.node_dead_ms / 2 && took < 3000);
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    for (int t = 0; t < 300; t++) { /* the dead one buried (after its job), b leads */
        ASSERT_OK(ob_engine_nodes(b, &nodes, &nn));
        if (nn == 1)
            break;
        free(nodes);
        h_sleep_ms(10);
    }
    ASSERT_EQ(nn, 1);
    ASSERT(nodes[0].leader && nodes[0].self);
    free(nodes);
    h_counts_agree(b); /* the dead node's counts still count */
    ob_engine_close(b);
}

/* A node cut off from the database (its heartbeat connection lost, and no
 * new connection allowed) while it runs a job: at half the dead interval it
 * cancels the handler, before the leader declares it dead and another node
 * runs the job — the two attempts never overlap. */
TEST(an_isolated_node_stops_its_jobs_before_another_node_takes_them)
{
    char role[32], url[4300], q[512];
    snprintf(role, sizeof role, "t%d_app", (int)getpid());
    const char *base = test_pg_base(), *own = test_url("jobs");
    snprintf(q, sizeof q, "CREATE ROLE %s LOGIN; GRANT ALL ON SCHEMA t%d_jobs TO %s", role,
             (int)getpid(), role);
    sql(base, q);
    /* node a as that role (limited below); node b as the superuser */
    snprintf(url, sizeof url, "postgres://%s@%s", role, strchr(own, '@') + 1);
    ob_engine_opts o;
    h_fast_opts(&o);
    o.node_dead_ms = 2000;
    o.rescue_interval_ms = 100;
    ob_engine *a;
    ASSERT_OK(ob_engine_open(url, &o, &a));
    ASSERT_OK(ob_engine_register(a, "script", h_script, NULL, NULL));
    ob_pool *pa = h_pool(a, 1, 0, NULL);
    ob_id id = h_add(a, "cancel-first");
    while (atomic_load(&h_nlog) == 0)
        h_sleep_ms(5);
    ob_engine *b = h_open("jobs", &o);
    ob_pool *pb = h_pool(b, 1, 0, NULL);
    /* The limit committed first, on its own: in one query string both run in
     * one implicit transaction, and the node's reconnect between the kill
     * and that commit succeeded (its heartbeats went on: not isolated). */
    snprintf(q, sizeof q, "ALTER ROLE %s CONNECTION LIMIT 0", role);
    sql(base, q);
    snprintf(q, sizeof q, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE usename = '%s' AND application_name = 'outbox node'", role);
    sql(base, q);
    int64_t cut = ob_now_ms();
    ob_job *j = h_wait(b, &id);
    int64_t second = started_at(&id, 2);
    printf("  cut off; its handler cancelled after %lld ms (%d), the job restarted on the "
           "other node after %lld ms\n", (long long)(atomic_load(&h_cancel_at) - cut),
           atomic_load(&h_cancel_seen), (long long)(second - cut));
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(j->attempt, 2);
    ASSERT_EQ(atomic_load(&h_cancel_seen), OB_CANCEL_ISOLATED);
    ASSERT(atomic_load(&h_cancel_at) <= second); /* never both at once */
    ob_job_free(j);
    snprintf(q, sizeof q, "ALTER ROLE %s CONNECTION LIMIT -1", role);
    sql(base, q);
    ob_pool_stop(pb, 1000);
    ob_pool_stop(pa, 1000);
    ob_engine_close(b);
    ob_engine_close(a);
}

/* Every connection of the node is cut (as a database restart or a network
 * failure would): calls fail with OB_EUNAVAIL, never succeed falsely, and
 * the node comes back by itself. */
TEST(a_node_whose_connections_are_cut_comes_back_by_itself)
{
    ob_engine *e = h_open("jobs", NULL);
    ob_pool *p = h_pool(e, 2, 0, NULL);
    ob_id first = h_add(e, "done");
    ob_job_free(h_wait(e, &first));
    sql(test_pg_base(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name LIKE 'outbox %'");
    int unavailable = 0, ok = 0;
    ob_id id;
    for (int i = 0; i < 400 && ok < 5; i++) {
        ob_new_job j = {.kind = "script", .payload = "done", .payload_len = 5};
        int rc = ob_enqueue(e, &j, &id, NULL);
        if (rc == OB_EUNAVAIL)
            unavailable++;
        else {
            ASSERT_OK(rc);
            ok++;
        }
        if (rc)
            h_sleep_ms(10);
    }
    printf("  %d enqueues refused as unavailable before the reconnect\n", unavailable);
    ASSERT_EQ(ok, 5);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ob_job_free(j);
    for (int i = 0; i < 100 && ob_engine_ready(e); i++)
        h_sleep_ms(20);
    ASSERT_OK(ob_engine_ready(e));
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(a_newer_schema_is_refused)
{
    ob_engine *e = h_open("jobs", NULL);
    ob_engine_close(e);
    const char *url = test_url("jobs");
    int had, now;
    ASSERT_OK(ob_store_migrate(url, &had, &now));
    ASSERT_EQ(had, now);
    sql(url, "UPDATE outbox_schema SET version = version + 1");
    ASSERT_RC(ob_engine_open(url, NULL, &e), OB_ESCHEMA);
    ASSERT_RC(ob_store_migrate(url, &had, &now), OB_ESCHEMA);
    const char *fresh = test_url("fresh");
    ASSERT_OK(ob_store_migrate(fresh, &had, &now));
    ASSERT_EQ(had, 0);
    ASSERT(now >= 1);
}

static const test_case tests[] = {
    T_ONLY("postgres", work_enqueued_on_one_node_starts_on_another_at_once),
    T_ONLY("postgres", a_job_scheduled_on_one_node_starts_on_another_when_due),
    T_ONLY("postgres", a_wait_on_one_node_ends_when_another_node_finishes_the_job),
    T_ONLY("postgres", one_unique_key_on_two_nodes_makes_one_job),
    T_ONLY("postgres", a_dead_nodes_jobs_are_rescued_and_the_leadership_moves),
    T_ONLY("postgres", an_isolated_node_stops_its_jobs_before_another_node_takes_them),
    T_ONLY("postgres", a_node_whose_connections_are_cut_comes_back_by_itself),
    T_ONLY("postgres", a_newer_schema_is_refused),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
