/*
 * store_contract_limits.c - what the engine refuses and what it bounds, on
 * either store (part of the store contract suite): input checks naming the
 * field, the unfinished-job limit, unique keys (also under a race), error
 * history and size, retention, listing with a cursor, and the SQLite
 * store's refusal of files it should not touch.
 */
#include <pthread.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <string.h>

#include "helpers.h"

typedef struct check_case {
    const char *name;
    ob_new_job job;
    int rc;
    const char *field;
} check_case;

static char big_key[OB_UNIQUE_KEY_MAX + 2];

TEST(bad_input_is_refused_naming_the_field)
{
    memset(big_key, 'k', sizeof big_key - 1);
    ob_engine_opts o;
    h_fast_opts(&o);
    o.max_payload = 100;
    ob_engine *e = h_open("jobs.db", &o);
    char payload[101] = {0};
    const check_case cases[] = {
        {"no kind", {.kind = NULL}, OB_EINVAL, "kind"},
        {"kind with space", {.kind = "a b"}, OB_EINVAL, "kind"},
        {"unregistered kind", {.kind = "nobody"}, OB_ENOKIND, "kind"},
        {"queue with slash", {.kind = "script", .queue = "a/b"}, OB_EINVAL, "queue"},
        {"empty queue", {.kind = "script", .queue = ""}, OB_EINVAL, "queue"},
        {"priority too high", {.kind = "script", .priority = 1001}, OB_EINVAL, "priority"},
        {"priority too low", {.kind = "script", .priority = -1001}, OB_EINVAL, "priority"},
        {"payload too big", {.kind = "script", .payload = payload, .payload_len = 101}, OB_ETOOBIG, "payload"},
        {"payload NULL with length", {.kind = "script", .payload_len = 3}, OB_EINVAL, "payload"},
        {"negative run_at", {.kind = "script", .run_at_ms = -1}, OB_EINVAL, "run_at"},
        {"run_at past year 9999", {.kind = "script", .run_at_ms = 253402300800000LL}, OB_EINVAL, "run_at"},
        {"max_attempts 1001", {.kind = "script", .max_attempts = 1001}, OB_EINVAL, "max_attempts"},
        {"negative timeout", {.kind = "script", .timeout_ms = -5}, OB_EINVAL, "timeout"},
        {"timeout over a day", {.kind = "script", .timeout_ms = 86400001}, OB_EINVAL, "timeout"},
        {"empty unique key", {.kind = "script", .unique_key = ""}, OB_EINVAL, "unique_key"},
        {"unique key not UTF-8", {.kind = "script", .unique_key = "k\xff"}, OB_EINVAL, "unique_key"},
        {"unique key too long", {.kind = "script", .unique_key = big_key}, OB_ETOOBIG, "unique_key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const check_case *c = &cases[i];
        ob_problem p = {"", ""};
        int rc = ob_new_job_check(e, &c->job, &p);
        if (rc != c->rc || strcmp(p.field, c->field) != 0 || !p.message[0])
            test_fail(__FILE__, __LINE__, "%s: %s field %s: %s", c->name, ob_strerror(rc),
                      p.field, p.message);
        ob_id id;
        ASSERT_RC(ob_enqueue(e, &c->job, &id, NULL), c->rc); /* enqueue checks the same */
    }
    ob_new_job ok = {.kind = "script", .payload = payload, .payload_len = 100};
    ASSERT_OK(ob_new_job_check(e, &ok, NULL));
    ob_engine_stats st;
    ob_engine_stats_get(e, &st);
    ASSERT_EQ(st.unfinished, 0); /* nothing refused was stored */
    ob_engine_close(e);
}

TEST(bad_options_are_refused)
{
    ob_engine_opts o;
    ob_engine *e = NULL;
    ob_engine_opts_init(&o);
    o.errors_kept = 0;
    ASSERT_RC(ob_engine_open(test_url("a.db"), &o, &e), OB_EINVAL);
    ob_engine_opts_init(&o);
    o.max_payload = 65u << 20;
    ASSERT_RC(ob_engine_open(test_url("a.db"), &o, &e), OB_EINVAL);
    ob_engine_opts_init(&o);
    o.kind_defaults.backoff.factor = 0.5;
    ASSERT_RC(ob_engine_open(test_url("a.db"), &o, &e), OB_EINVAL);
    ASSERT_RC(ob_engine_open("postgres-ish://x", NULL, &e), OB_EINVAL);
    ASSERT_RC(ob_engine_open("sqlite:", NULL, &e), OB_EINVAL);
    ASSERT(e == NULL);
    ASSERT_OK(ob_engine_open(test_url("a.db"), NULL, &e));
    ASSERT_RC(ob_engine_register(e, "x y", h_script, NULL, NULL), OB_EINVAL);
    ASSERT_OK(ob_engine_register(e, "x", h_script, NULL, NULL));
    ASSERT_RC(ob_engine_register(e, "x", h_script, NULL, NULL), OB_EINVAL); /* twice */
    ob_pool_opts po;
    ob_pool_opts_init(&po);
    po.workers = 0;
    ob_pool *p = NULL;
    ASSERT_RC(ob_pool_start(e, &po, &p), OB_EINVAL);
    ob_pool_opts_init(&po);
    po.queues[0] = "bad queue";
    ASSERT_RC(ob_pool_start(e, &po, &p), OB_EINVAL);
    ob_engine_close(e);
}

TEST(queue_full_is_an_error_until_jobs_finish)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.max_jobs = 3;
    ob_engine *e = h_open("jobs.db", &o);
    ob_id ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = h_add(e, "done");
    ob_new_job n = {.kind = "script", .payload = "done", .payload_len = 5};
    ob_id id;
    ASSERT_RC(ob_enqueue(e, &n, &id, NULL), OB_EFULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_job_free(h_wait(e, &ids[0]));
    ASSERT_OK(ob_enqueue(e, &n, &id, NULL));
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
    /* the count is rebuilt at open */
    e = h_open("jobs.db", &o);
    ob_engine_stats st;
    ob_engine_stats_get(e, &st);
    ob_job_page *pg;
    ob_list_filter f = {.states = 1u << OB_AVAILABLE | 1u << OB_RUNNING | 1u << OB_RETRYABLE | 1u << OB_SCHEDULED};
    ASSERT_OK(ob_job_list(e, &f, &pg));
    ASSERT_EQ(st.unfinished, pg->n);
    ASSERT(pg->n <= 3);
    ob_job_page_free(pg);
    ob_engine_close(e);
}

TEST(unique_key_returns_the_existing_job)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_new_job n = {.kind = "script", .payload = "done", .payload_len = 5, .unique_key = "welcome-mail:7"};
    ob_id a, b, c;
    bool existed;
    ASSERT_OK(ob_enqueue(e, &n, &a, &existed));
    ASSERT(!existed);
    ASSERT_OK(ob_enqueue(e, &n, &b, &existed));
    ASSERT(existed);
    ASSERT(memcmp(a.b, b.b, 16) == 0);
    n.unique_key = "welcome-mail:8";
    ASSERT_OK(ob_enqueue(e, &n, &c, &existed));
    ASSERT(!existed);
    ASSERT(memcmp(a.b, c.b, 16) != 0);
    ob_engine_stats st;
    ob_engine_stats_get(e, &st);
    ASSERT_EQ(st.unfinished, 2);
    ob_engine_close(e);
}

typedef struct racer {
    ob_engine *e;
    ob_id id;
    bool existed;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    ob_new_job n = {.kind = "script", .payload = "done", .payload_len = 5, .unique_key = "same"};
    ASSERT_OK(ob_enqueue(r->e, &n, &r->id, &r->existed));
    return NULL;
}

TEST(unique_key_holds_under_concurrent_enqueues)
{
    ob_engine *e = h_open("jobs.db", NULL);
    enum { N = 16 };
    pthread_t t[N];
    racer r[N];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++) {
            r[i] = (racer){.e = e};
            pthread_create(&t[i], NULL, race, &r[i]);
        }
        int created = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(t[i], NULL);
            created += !r[i].existed;
            ASSERT(memcmp(r[i].id.b, r[0].id.b, 16) == 0);
        }
        ASSERT_EQ(created, round == 0 ? 1 : 0);
    }
    ob_engine_stats st;
    ob_engine_stats_get(e, &st);
    ASSERT_EQ(st.unfinished, 1);
    ob_engine_close(e);
}

TEST(error_history_is_bounded_and_messages_truncated)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.errors_kept = 3;
    o.max_error = 100;
    ob_engine *e = h_open("jobs.db", &o);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.kind = "script", .payload = "retry:0", .payload_len = 8, .max_attempts = 7};
    ob_id id = h_add_job(e, &n);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_DISCARDED);
    ASSERT_EQ(j->nerrors, 3);
    ASSERT_EQ(j->errors[0].attempt, 5);
    ASSERT_EQ(j->errors[2].attempt, 7);
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

static void long_error(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    static char msg[5000];
    memset(msg, 'e', sizeof msg - 1);
    msg[0] = '\xff'; /* not UTF-8: replaced */
    ob_ctx_discard(ctx, msg);
}

TEST(long_error_is_truncated_to_valid_utf8)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.max_error = 100;
    ob_engine *e = h_open("jobs.db", &o);
    ASSERT_OK(ob_engine_register(e, "long", long_error, NULL, NULL));
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.kind = "long"};
    ob_id id = h_add_job(e, &n);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(strlen(j->errors[0].message), 100);
    ASSERT_EQ(j->errors[0].message[0], '?');
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(finished_jobs_are_pruned_after_retention)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.retention_ms = 200;
    o.prune_interval_ms = 50;
    o.prune_batch = 2; /* several batches */
    ob_engine *e = h_open("jobs.db", &o);
    ob_pool *p = h_pool(e, 2, -1, NULL);
    ob_id done[5];
    for (int i = 0; i < 5; i++)
        done[i] = h_add(e, "done");
    ob_new_job later = {.kind = "script", .payload = "done", .payload_len = 5,
                        .run_at_ms = ob_now_ms() + 3600000};
    ob_id waiting = h_add_job(e, &later);
    for (int i = 0; i < 5; i++)
        ob_job_free(h_wait(e, &done[i]));
    ob_job *j = NULL;
    /* until every one is gone, up to 6 s: two workers finish them in any
     * order, and prune takes the oldest finished first */
    for (int t = 0, left = 5; t < 600 && left; t++) {
        left = 0;
        for (int i = 0; i < 5; i++) {
            if (ob_job_get(e, &done[i], &j) != OB_ENOTFOUND)
                left++;
            ob_job_free(j);
            j = NULL;
        }
        if (left)
            h_sleep_ms(10);
    }
    for (int i = 0; i < 5; i++)
        ASSERT_RC(ob_job_get(e, &done[i], &j), OB_ENOTFOUND);
    ob_job_free(h_get(e, &waiting)); /* unfinished jobs stay */
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

static void count_to(void *arg, ob_state st, const char *kind, const char *queue, int64_t n)
{
    (void)kind;
    if (strcmp(queue, "c") == 0)
        ((int64_t *)arg)[st] += n;
}

/* N1: every way a job comes, changes state or goes is counted. */
TEST(the_counters_follow_every_change)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.retention_ms = 300;
    o.prune_interval_ms = 50;
    o.prune_batch = 3;
    ob_engine *e = h_open("jobs.db", &o);
    static const char *const scripts[] = {"done", "fail-until:2", "discard", "retry:3600000"};
    for (int i = 0; i < 12; i++) {
        ob_new_job j = {.queue = "c", .payload = scripts[i % 4],
                        .payload_len = strlen(scripts[i % 4]) + 1};
        h_add_job(e, &j);
    }
    ob_new_job later = {.queue = "c", .payload = "done", .payload_len = 5,
                        .run_at_ms = ob_now_ms() + 3600000};
    ob_id waiting = h_add_job(e, &later), cancelled = h_add_job(e, &later);
    ASSERT_OK(ob_job_cancel(e, &cancelled, NULL));
    ob_new_job soon = {.queue = "c", .payload = "done", .payload_len = 5,
                       .run_at_ms = ob_now_ms() + 100};
    ob_id promoted = h_add_job(e, &soon);
    ob_pool *p = h_pool(e, 4, 0, "c");
    ob_job_free(h_wait(e, &promoted));
    int64_t n[OB_STATE_MAX + 1] = {0};
    for (int t = 0; t < 300; t++) { /* the finished ones pruned: up to 3 s */
        memset(n, 0, sizeof n);
        ASSERT_OK(ob_job_counts(e, count_to, n));
        if (n[OB_RETRYABLE] == 3 && n[OB_SCHEDULED] == 1 && !n[OB_COMPLETED] && !n[OB_DISCARDED] &&
            !n[OB_CANCELLED])
            break;
        h_sleep_ms(10);
    }
    ASSERT_EQ(n[OB_RETRYABLE], 3);
    ASSERT_EQ(n[OB_SCHEDULED], 1);
    ASSERT_EQ(n[OB_COMPLETED] + n[OB_DISCARDED] + n[OB_CANCELLED] + n[OB_AVAILABLE], 0);
    ob_pool_stop(p, 1000);
    h_counts_agree(e);
    ob_job_free(h_get(e, &waiting));
    ob_engine_close(e);
}

static size_t listed(ob_engine *e, ob_list_filter f, ob_id *first)
{
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(e, &f, &pg));
    size_t n = pg->n;
    if (n && first)
        *first = pg->jobs[0]->id;
    ob_job_page_free(pg);
    return n;
}

/* A job is found by its terms (whatever their case), its unique key, the
 * time it was made; pruned, by nothing. */
TEST(jobs_are_found_by_term_unique_key_and_time)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.retention_ms = 200;
    o.prune_interval_ms = 50;
    ob_engine *e = h_open("jobs.db", &o);
    int64_t t0 = ob_now_ms();
    ob_new_job a = {.payload = "retry:3600000", .payload_len = 14,
                    .terms = "Ann@Example.org\nmsg-1@example.org"};
    ob_id ida = h_add_job(e, &a);
    h_sleep_ms(5);
    int64_t t1 = ob_now_ms();
    ob_new_job b = {.payload = "done", .payload_len = 5, .terms = "bob@example.org\nann@example.org",
                    .unique_key = "order-9"};
    ob_id idb = h_add_job(e, &b), got;
    for (int i = 0; i < 50; i++) /* others, without terms */
        h_add(e, "retry:3600000");
    ASSERT_EQ(listed(e, (ob_list_filter){.term = "ANN@example.ORG"}, &got), 2);
    ASSERT(!memcmp(got.b, idb.b, 16)); /* newest first */
    ASSERT_EQ(listed(e, (ob_list_filter){.term = "msg-1@example.org"}, &got), 1);
    ASSERT(!memcmp(got.b, ida.b, 16));
    ASSERT_EQ(listed(e, (ob_list_filter){.unique_key = "order-9"}, &got), 1);
    ASSERT(!memcmp(got.b, idb.b, 16));
    ASSERT_EQ(listed(e, (ob_list_filter){.term = "order-9", .unique_key = "order-9"}, NULL), 1);
    ASSERT_EQ(listed(e, (ob_list_filter){.term = "ann@example.org", .limit = 1,
                                         .states = 1u << OB_AVAILABLE}, NULL), 1);
    ASSERT_EQ(listed(e, (ob_list_filter){.term = "nobody@example.org"}, NULL), 0);
    ASSERT_EQ(listed(e, (ob_list_filter){.created_after_ms = t0, .created_before_ms = t1,
                                         .limit = 100}, &got), 1);
    ASSERT(!memcmp(got.b, ida.b, 16));
    ASSERT_EQ(listed(e, (ob_list_filter){.created_after_ms = t1, .limit = 100}, NULL), 51);
    ob_problem p;
    ob_new_job bad = {.kind = "script", .terms = "a\n\nb"};
    ASSERT_RC(ob_new_job_check(e, &bad, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "terms");
    bad.terms = "tab\there";
    ASSERT_RC(ob_new_job_check(e, &bad, &p), OB_EINVAL);
    /* b completes and is pruned: its terms go with it */
    ob_pool *pool = h_pool(e, 2, 0, NULL);
    ob_job_free(h_wait(e, &idb));
    ob_job *j = NULL;
    for (int t = 0; t < 300 && ob_job_get(e, &idb, &j) != OB_ENOTFOUND; t++) {
        ob_job_free(j);
        j = NULL;
        h_sleep_ms(10);
    }
    ASSERT_EQ(listed(e, (ob_list_filter){.term = "bob@example.org"}, NULL), 0);
    ASSERT_EQ(listed(e, (ob_list_filter){.term = "ann@example.org"}, NULL), 1);
    ob_pool_stop(pool, 1000);
    ob_engine_close(e);
}

TEST(list_pages_newest_first_with_filters)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ASSERT_OK(ob_engine_register(e, "other", h_script, NULL, NULL));
    enum { N = 30 };
    ob_id ids[N];
    for (int i = 0; i < N; i++) {
        ob_new_job n = {.kind = i % 3 ? "script" : "other", .queue = i % 2 ? "odd" : "even",
                        .payload = "done", .payload_len = 5,
                        .run_at_ms = i % 5 == 0 ? ob_now_ms() + 3600000 : 0};
        ids[i] = h_add_job(e, &n);
    }
    /* every job once, newest first, in pages of 7 */
    ob_list_filter f = {.limit = 7};
    char cursor[OB_CURSOR_MAX] = "";
    int seen = 0, pages = 0;
    for (;;) {
        f.cursor = cursor;
        ob_job_page *pg;
        ASSERT_OK(ob_job_list(e, &f, &pg));
        pages++;
        for (size_t i = 0; i < pg->n; i++, seen++) {
            ASSERT(memcmp(pg->jobs[i]->id.b, ids[N - 1 - seen].b, 16) == 0);
            ASSERT(pg->jobs[i]->payload == NULL);
        }
        snprintf(cursor, sizeof cursor, "%s", pg->next_cursor);
        ob_job_page_free(pg);
        if (!cursor[0])
            break;
    }
    ASSERT_EQ(seen, N);
    ASSERT_EQ(pages, 5);

    /* by state set, kind and queue, across pages */
    f = (ob_list_filter){.states = 1u << OB_SCHEDULED | 1u << OB_AVAILABLE, .kind = "script",
                         .queue = "odd", .limit = 2};
    int want = 0;
    for (int i = 0; i < N; i++)
        want += (i % 3 != 0) && (i % 2 == 1);
    cursor[0] = '\0';
    seen = 0;
    ob_id prev;
    memset(prev.b, 0xff, 16);
    do {
        f.cursor = cursor;
        ob_job_page *pg;
        ASSERT_OK(ob_job_list(e, &f, &pg));
        for (size_t i = 0; i < pg->n; i++, seen++) {
            ob_job *j = pg->jobs[i];
            ASSERT_STREQ(j->kind, "script");
            ASSERT_STREQ(j->queue, "odd");
            ASSERT(memcmp(j->id.b, prev.b, 16) < 0);
            prev = j->id;
        }
        snprintf(cursor, sizeof cursor, "%s", pg->next_cursor);
        ob_job_page_free(pg);
    } while (cursor[0]);
    ASSERT_EQ(seen, want);

    f = (ob_list_filter){.states = 1u << OB_SCHEDULED};
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(e, &f, &pg));
    ASSERT_EQ(pg->n, N / 5);
    ob_job_page_free(pg);

    f = (ob_list_filter){.cursor = "not-a-cursor"};
    ASSERT_RC(ob_job_list(e, &f, &pg), OB_EINVAL);
    f = (ob_list_filter){.limit = OB_LIST_MAX + 1};
    ASSERT_RC(ob_job_list(e, &f, &pg), OB_EINVAL);
    f = (ob_list_filter){.states = 1u << 9};
    ASSERT_RC(ob_job_list(e, &f, &pg), OB_EINVAL);
    ob_engine_close(e);
}

TEST(second_open_of_a_store_is_refused)
{
    ob_engine *a = h_open("jobs.db", NULL), *b = NULL;
    ASSERT_RC(ob_engine_open(test_url("jobs.db"), NULL, &b), OB_ELOCKED);
    ob_engine_close(a);
    ASSERT_OK(ob_engine_open(test_url("jobs.db"), NULL, &b)); /* released on close */
    ob_engine_close(b);
}

static void sql(const char *path, const char *stmt)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, stmt, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

TEST(foreign_and_newer_files_are_refused)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/other.db", test_dir());
    sql(path, "CREATE TABLE mine(x)");
    ob_engine *e = NULL;
    ASSERT_RC(ob_engine_open(test_url("other.db"), NULL, &e), OB_ESTORE);

    ASSERT_OK(ob_engine_open(test_url("jobs.db"), NULL, &e));
    ob_engine_close(e);
    snprintf(path, sizeof path, "%s/jobs.db", test_dir());
    sql(path, "PRAGMA user_version = 99");
    e = NULL;
    ASSERT_RC(ob_engine_open(test_url("jobs.db"), NULL, &e), OB_ESCHEMA);
    ASSERT(e == NULL);
}

/* What version 1 of each store was: no meta (SQLite), no queue settings,
 * no parked jobs, the claim indexes over every available job, no
 * counters, no records. */
static const char sqlite_v1[] =
    "DROP TABLE records; DROP TABLE counts; DROP TABLE terms; ALTER TABLE errors DROP COLUMN started_at; DROP TABLE queues; DROP TABLE keys; DROP TABLE schedules; DROP INDEX jobs_claim; DROP INDEX jobs_claim_queue;"
    "DROP INDEX jobs_parked; DROP INDEX jobs_parked_key; DROP INDEX jobs_lease;"
    "ALTER TABLE jobs DROP COLUMN parked; ALTER TABLE jobs DROP COLUMN rate_key;"
    "ALTER TABLE jobs DROP COLUMN meta;"
    "CREATE INDEX jobs_claim ON jobs(priority DESC, run_at) WHERE state = 2;"
    "CREATE INDEX jobs_claim_queue ON jobs(queue, priority DESC, run_at) WHERE state = 2;"
    "CREATE INDEX jobs_lease ON jobs(lease_until) WHERE state = 3; PRAGMA user_version = 1";
static const char pg_v1[] =
    "DROP TABLE outbox_records; DROP TABLE outbox_counts; DROP TABLE outbox_terms; ALTER TABLE outbox_errors DROP COLUMN started_at; ALTER TABLE outbox_nodes DROP COLUMN backend; DROP TABLE outbox_queues; DROP TABLE outbox_keys; DROP TABLE outbox_schedules; ALTER TABLE outbox_jobs DROP COLUMN parked;"
    "ALTER TABLE outbox_jobs DROP COLUMN rate_key;"
    "CREATE INDEX outbox_jobs_claim ON outbox_jobs(priority DESC, run_at, id) WHERE state = 2;"
    "CREATE INDEX outbox_jobs_claim_queue ON outbox_jobs(queue, priority DESC, run_at, id)"
    " WHERE state = 2; DELETE FROM outbox_schema WHERE version > 1";

static void downgrade(const char *url)
{
    if (strcmp(test_store(), "sqlite") == 0) {
        sql(url + strlen("sqlite:"), sqlite_v1);
        return;
    }
    PGconn *c = test_pg_connect(url);
    PGresult *r = PQexec(c, pg_v1);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        test_fail(__FILE__, __LINE__, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

TEST(store_from_an_older_version_is_migrated)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_id old = h_add(e, "done");
    ob_engine_close(e);
    char url[4200];
    snprintf(url, sizeof url, "%s", test_url("jobs.db"));
    downgrade(url);
    e = h_open("jobs.db", NULL); /* migrates */
    ob_job *j = h_get(e, &old);
    ASSERT(j->meta == NULL);
    ASSERT_STREQ((char *)j->payload, "done");
    ASSERT_EQ(j->state, OB_AVAILABLE);
    ob_job_free(j);
    ob_new_job n = {.kind = "script", .payload = "done", .payload_len = 5,
                    .meta = "{\"callback_url\":\"http://x\"}"};
    ob_id id = h_add_job(e, &n);
    j = h_get(e, &id);
    ASSERT_STREQ(j->meta, "{\"callback_url\":\"http://x\"}");
    ob_job_free(j);
    ob_queue_info qi; /* the counters, counted by the migration, then kept */
    ASSERT_OK(ob_queue_get(e, "default", &qi));
    ASSERT_EQ(qi.counts[OB_AVAILABLE], 2);
    /* The new tables work, and the job from before runs. */
    ob_queue_settings st = {.concurrency = 2};
    ASSERT_OK(ob_queue_set(e, "default", &st, OB_QUEUE_CONCURRENCY, NULL, NULL));
    ASSERT_OK(ob_record_put(e, "test.set", "k", NULL, NULL, NULL, NULL));
    h_pool(e, 2, 0, NULL);
    ob_job_free(h_wait(e, &old));
    ob_job_free(h_wait(e, &id));
    ob_engine_close(e);
}

TEST(meta_is_bounded_and_utf8)
{
    ob_engine *e = h_open("jobs.db", NULL);
    static char big[OB_META_MAX + 2];
    memset(big, 'm', OB_META_MAX + 1);
    ob_problem p;
    ob_new_job n = {.kind = "script", .meta = big};
    ASSERT_RC(ob_new_job_check(e, &n, &p), OB_ETOOBIG);
    ASSERT_STREQ(p.field, "meta");
    n.meta = "\xff";
    ASSERT_RC(ob_new_job_check(e, &n, &p), OB_EINVAL);
    big[OB_META_MAX] = '\0';
    n.meta = big;
    ASSERT_OK(ob_new_job_check(e, &n, NULL));
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(bad_input_is_refused_naming_the_field),
    T(bad_options_are_refused),
    T(queue_full_is_an_error_until_jobs_finish),
    T(unique_key_returns_the_existing_job),
    T(unique_key_holds_under_concurrent_enqueues),
    T(error_history_is_bounded_and_messages_truncated),
    T(long_error_is_truncated_to_valid_utf8),
    T(finished_jobs_are_pruned_after_retention),
    T(the_counters_follow_every_change),
    T(jobs_are_found_by_term_unique_key_and_time),
    T(list_pages_newest_first_with_filters),
    T_ONLY("sqlite", second_open_of_a_store_is_refused),
    T_ONLY("sqlite", foreign_and_newer_files_are_refused),
    T(store_from_an_older_version_is_migrated),
    T(meta_is_bounded_and_utf8),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
