/*
 * store_contract_engine.c - the job engine's life cycle, end to end, on
 * either store (part of the store contract suite): every answer a handler
 * can give, schedules, priorities, queues, cancellation, timeouts, rescue of
 * hung workers, operator retry, events and waiting.
 */
#include <pthread.h>

#include "base/base.h"
#include "helpers.h"

TEST(enqueue_is_durable_and_reads_back)
{
    ob_engine *e = h_open("jobs.db", NULL);
    const unsigned char bytes[] = {0, 1, 2, 0xff, 0, 'x'};
    ob_new_job j = {.kind = "script", .queue = "mail", .priority = 7, .payload = bytes,
                    .payload_len = sizeof bytes, .max_attempts = 3, .timeout_ms = 1234,
                    .unique_key = "order-42"};
    ob_id id;
    bool existed = true;
    int64_t before = ob_now_ms();
    ASSERT_OK(ob_enqueue(e, &j, &id, &existed));
    ASSERT(!existed);
    ob_engine_close(e); /* success meant durable: a fresh engine must see it */

    e = h_open("jobs.db", NULL);
    ob_job *g = h_get(e, &id);
    ASSERT_STREQ(g->kind, "script");
    ASSERT_STREQ(g->queue, "mail");
    ASSERT_EQ(g->priority, 7);
    ASSERT_EQ(g->state, OB_AVAILABLE);
    ASSERT_EQ(g->attempt, 0);
    ASSERT_EQ(g->max_attempts, 3);
    ASSERT_EQ(g->timeout_ms, 1234);
    ASSERT_STREQ(g->unique_key, "order-42");
    ASSERT_EQ(g->payload_len, sizeof bytes);
    ASSERT(memcmp(g->payload, bytes, sizeof bytes) == 0);
    ASSERT(g->created_at_ms >= before && g->created_at_ms <= ob_now_ms());
    ASSERT_EQ(g->finished_at_ms, 0);
    ASSERT(g->result == NULL);
    ASSERT_EQ(g->nerrors, 0);
    ob_job_free(g);
    ob_engine_close(e);
}

TEST(ids_are_uuidv7_in_enqueue_order)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_id prev = {{0}};
    for (int i = 0; i < 200; i++) {
        ob_id id = h_add(e, "done");
        ASSERT((id.b[6] >> 4) == 7);      /* version */
        ASSERT((id.b[8] & 0xc0) == 0x80); /* variant */
        ASSERT(memcmp(prev.b, id.b, 16) < 0);
        prev = id;
    }
    ob_engine_close(e);
}

typedef struct stash {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    ob_id id;
} stash;

static void stash_done(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)existed;
    stash *s = arg;
    ASSERT_OK(rc);
    pthread_mutex_lock(&s->mu);
    s->id = *id;
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

TEST(async_enqueue_copies_payload_and_calls_back_after_commit)
{
    ob_engine *e = h_open("jobs.db", NULL);
    stash st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, {{0}}};
    char *buf = strdup("done:{\"n\":1}");
    ob_new_job j = {.kind = "script", .payload = buf, .payload_len = strlen(buf) + 1};
    ASSERT_OK(ob_enqueue_async(e, &j, stash_done, &st));
    memset(buf, 'X', strlen(buf)); /* the caller's buffer is theirs again at once */
    free(buf);
    pthread_mutex_lock(&st.mu);
    while (!st.done)
        pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);
    ob_job *g = h_get(e, &st.id);
    ASSERT_STREQ((char *)g->payload, "done:{\"n\":1}");
    ob_job_free(g);
    ob_engine_close(e);
}

/* Many jobs enqueued at once land in few batches, which a store may write
 * as one statement (pg_gather.c): every field of every job must read back
 * as it was given, NULs in payloads, absent meta, terms and all, across
 * more rows than one statement takes. */
#define MANY 1300
typedef struct many {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    ob_id id[MANY];
} many;

static void many_done(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)existed;
    ASSERT_OK(rc);
    many *m = arg;
    pthread_mutex_lock(&m->mu);
    m->id[m->done++] = *id;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void many_job(int i, ob_new_job *j, unsigned char *payload, char *meta, char *terms)
{
    size_t n = (size_t)(i % 7) * 3; /* 0, 3, ... 18 bytes, some NULs */
    for (size_t k = 0; k < n; k++)
        payload[k] = (unsigned char)(k % 3 ? 'a' + i % 26 : 0);
    snprintf(meta, 32, "{\"i\":%d}", i);
    snprintf(terms, 64, "job-%d@example.org\nall@example.org", i);
    *j = (ob_new_job){.kind = "script", .queue = i % 2 ? "odd" : "even", .priority = i % 5,
                      .payload = payload, .payload_len = n, .max_attempts = 1 + i % 9,
                      .timeout_ms = 1000 + i, .meta = i % 3 ? meta : NULL,
                      .rate_key = i % 4 ? NULL : "example.org", .terms = i % 2 ? terms : NULL,
                      .run_at_ms = i % 10 ? 0 : ob_now_ms() + 3600000};
}

TEST(many_jobs_in_few_batches_read_back_field_by_field)
{
    ob_engine *e = h_open("jobs.db", NULL);
    static many m = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {{{0}}}};
    unsigned char payload[32];
    char meta[32], terms[64];
    for (int i = 0; i < MANY; i++) {
        ob_new_job j;
        many_job(i, &j, payload, meta, terms);
        int rc;
        while ((rc = ob_enqueue_async(e, &j, many_done, &m)) == OB_EBUSY)
            h_sleep_ms(1);
        ASSERT_OK(rc);
    }
    pthread_mutex_lock(&m.mu);
    while (m.done < MANY)
        pthread_cond_wait(&m.cv, &m.mu);
    pthread_mutex_unlock(&m.mu);
    ob_engine_close(e); /* durable: a fresh engine must see every field */

    e = h_open("jobs.db", NULL);
    int64_t now = ob_now_ms();
    for (int k = 0; k < MANY; k++) {
        ob_job *g = h_get(e, &m.id[k]);
        int i = (int)g->timeout_ms - 1000; /* callbacks come in commit order */
        ASSERT(i >= 0 && i < MANY);
        ob_new_job j;
        many_job(i, &j, payload, meta, terms);
        ASSERT_STREQ(g->kind, "script");
        ASSERT_STREQ(g->queue, j.queue);
        ASSERT_EQ(g->priority, j.priority);
        ASSERT_EQ(g->max_attempts, j.max_attempts);
        ASSERT_EQ(g->state, j.run_at_ms ? OB_SCHEDULED : OB_AVAILABLE);
        ASSERT(j.run_at_ms ? g->run_at_ms > now : g->run_at_ms <= now);
        ASSERT_EQ(g->payload_len, j.payload_len);
        ASSERT(memcmp(g->payload, payload, j.payload_len) == 0);
        if (j.meta)
            ASSERT_STREQ(g->meta, meta);
        else
            ASSERT(g->meta == NULL);
        if (j.rate_key)
            ASSERT_STREQ(g->rate_key, "example.org");
        else
            ASSERT(g->rate_key == NULL);
        ASSERT(g->unique_key == NULL);
        ob_job_free(g);
    }
    ob_list_filter f = {.term = "all@example.org", .limit = OB_LIST_MAX};
    char cursor[OB_CURSOR_MAX];
    size_t found = 0;
    for (;;) {
        ob_job_page *pg;
        ASSERT_OK(ob_job_list(e, &f, &pg));
        found += pg->n;
        bool more = pg->next_cursor[0] != '\0';
        if (more)
            f.cursor = strcpy(cursor, pg->next_cursor);
        ob_job_page_free(pg);
        if (!more)
            break;
    }
    ASSERT_EQ(found, MANY / 2);
    f = (ob_list_filter){.term = "job-1299@example.org"};
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(e, &f, &pg));
    ASSERT_EQ(pg->n, 1);
    ob_job_page_free(pg);
    h_counts_agree(e);
    ob_engine_close(e);
}

/* What each answer of a handler makes of a job, as the life cycle says
 * (src/jobs/lifecycle.c): the "script" kind of tests/helpers.c answers
 * as its payload says. */
TEST(each_answer_ends_the_job_as_the_life_cycle_says)
{
    static const struct {
        const char *script;
        int max_attempts;
        ob_state state;
        int attempt, nerrors, starts;
        const char *result, *first_error, *last_error; /* NULL: not checked */
        int64_t min_ms;                                /* at least this long */
    } cases[] = {
        {"done:{\"sent\":3}", 0, OB_COMPLETED, 1, 0, 1, "{\"sent\":3}", NULL, NULL, 0},
        {"fail-until:3", 0, OB_COMPLETED, 3, 2, 3, NULL, "failure 1", "failure 2", 0},
        {"retry:0", 3, OB_DISCARDED, 3, 3, 3, NULL, NULL, NULL, 0}, /* out of attempts */
        {"discard", 0, OB_DISCARDED, 1, 1, 1, NULL, "bad input", "bad input", 0},
        {"snooze-once:200", 0, OB_COMPLETED, 1, 0, 2, NULL, NULL, NULL, 200}, /* uncounted */
        {"noanswer", 2, OB_DISCARDED, 2, 2, 2, NULL, "handler returned without an answer",
         "handler returned without an answer", 0}, /* a failure, never a success */
    };
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 2, 0, NULL);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int64_t t0 = ob_now_ms();
        ob_new_job n = {.payload = cases[k].script, .payload_len = strlen(cases[k].script) + 1,
                        .max_attempts = cases[k].max_attempts};
        ob_id id = h_add_job(e, &n);
        ob_job *j = h_wait(e, &id);
        const char *why = j->state != cases[k].state               ? "state"
                          : j->attempt != cases[k].attempt         ? "attempt"
                          : (int)j->nerrors != cases[k].nerrors    ? "errors"
                          : h_starts(&id) != cases[k].starts       ? "starts"
                          : j->finished_at_ms - t0 < cases[k].min_ms ? "too soon"
                          : NULL;
        if (!why && cases[k].result && (!j->result || strcmp(j->result, cases[k].result)))
            why = "result";
        if (!why && cases[k].first_error && strcmp(j->errors[0].message, cases[k].first_error))
            why = "first error";
        if (!why && cases[k].last_error &&
            strcmp(j->errors[j->nerrors - 1].message, cases[k].last_error))
            why = "last error";
        for (size_t i = 1; !why && i < j->nerrors; i++)
            if (j->errors[i].attempt <= j->errors[i - 1].attempt ||
                j->errors[i].at_ms < j->errors[i - 1].at_ms)
                why = "errors out of order";
        if (!why && ob_state_is_final(j->state) &&
            !(j->finished_at_ms >= j->attempted_at_ms && j->attempted_at_ms > 0))
            why = "times";
        if (why)
            test_fail(__FILE__, __LINE__, "%s: %s (state %s, attempt %d, %zu errors)",
                      cases[k].script, why, ob_state_name(j->state), j->attempt, j->nerrors);
        ob_job_free(j);
    }
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(second_answer_is_refused)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_id id = h_add(e, "twice");
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(atomic_load(&h_second_answer_rc), OB_ESTATE);
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

static void bad_result(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    ASSERT_RC(ob_ctx_done(ctx, "{\"a\":1,\"a\":2}"), OB_EINVAL); /* duplicate key */
    ASSERT_RC(ob_ctx_done(ctx, "{not json"), OB_EINVAL);
    static char big[70 * 1024];
    memset(big, ' ', sizeof big - 3);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    ASSERT_RC(ob_ctx_done(ctx, big), OB_ETOOBIG);
    ASSERT_OK(ob_ctx_done(ctx, "[1,2]"));
}

TEST(result_must_be_json_within_limit)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ASSERT_OK(ob_engine_register(e, "bad-result", bad_result, NULL, NULL));
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.kind = "bad-result"};
    ob_id id = h_add_job(e, &n);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_STREQ(j->result, "[1,2]");
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

/* Progress across attempts: each attempt reads what the last one kept and
 * keeps one more ("n"), with its retry; the third completes with done(NULL),
 * which keeps the staged result. */
static void counting(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *j = ob_ctx_job(ctx);
    int n = 0;
    if (j->result)
        ASSERT_EQ(sscanf(j->result, "{\"n\":%d}", &n), 1);
    ASSERT_EQ(n, j->attempt - 1);
    char buf[32];
    snprintf(buf, sizeof buf, "{\"n\":%d}", n + 1);
    ASSERT_RC(ob_ctx_set_result(ctx, "{bad"), OB_EINVAL);
    ASSERT_OK(ob_ctx_set_result(ctx, buf));
    if (n + 1 < 3)
        ASSERT_OK(ob_ctx_retry(ctx, 0, "not yet"));
    else
        ASSERT_OK(ob_ctx_done(ctx, NULL));
    ASSERT_RC(ob_ctx_set_result(ctx, "{}"), OB_ESTATE);
}

TEST(a_result_kept_with_a_retry_reaches_the_next_attempt)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ASSERT_OK(ob_engine_register(e, "counting", counting, NULL, NULL));
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.kind = "counting"};
    ob_id id = h_add_job(e, &n);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(j->attempt, 3);
    ASSERT_STREQ(j->result, "{\"n\":3}");
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(scheduled_job_wakes_when_due)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    h_sleep_ms(50); /* idle: nothing polls */
    int64_t due = ob_now_ms() + 400;
    ob_new_job n = {.payload = "done", .payload_len = 5, .run_at_ms = due};
    ob_id id = h_add_job(e, &n);
    ob_job *s = h_get(e, &id);
    ASSERT_EQ(s->state, OB_SCHEDULED);
    ASSERT_EQ(s->run_at_ms, due);
    ob_job_free(s);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(atomic_load(&h_nlog), 1);
    int64_t late = h_log[0].at_ms - due;
    printf("  started %lld ms after due\n", (long long)late);
    ASSERT(late >= 0);
    ASSERT(late < 100); /* woken by its timer, not by a poll */
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(claims_take_highest_priority_then_earliest)
{
    ob_engine *e = h_open("jobs.db", NULL);
    int prio[] = {0, 5, -3, 5, 100, 0, -1000, 1000};
    ob_id ids[8];
    for (int i = 0; i < 8; i++) {
        ob_new_job n = {.payload = "done", .payload_len = 5, .priority = prio[i]};
        ids[i] = h_add_job(e, &n);
    }
    ob_pool *p = h_pool(e, 1, 0, NULL); /* one at a time: the order is the claim order */
    for (int i = 0; i < 8; i++)
        ob_job_free(h_wait(e, &ids[i]));
    ob_pool_stop(p, 1000);
    int want[] = {7, 4, 1, 3, 0, 5, 2, 6}; /* by priority, ties in enqueue order */
    ASSERT_EQ(atomic_load(&h_nlog), 8);
    for (int i = 0; i < 8; i++)
        ASSERT(memcmp(h_log[i].id.b, ids[want[i]].b, 16) == 0);
    ob_engine_close(e);
}

TEST(pools_work_only_their_queues)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_new_job a = {.queue = "a", .payload = "done", .payload_len = 5};
    ob_new_job b = {.queue = "b", .payload = "done", .payload_len = 5};
    ob_id ia = h_add_job(e, &a), ib = h_add_job(e, &b);
    ob_pool *p = h_pool(e, 2, -1, "a");
    ob_job_free(h_wait(e, &ia));
    h_sleep_ms(100);
    ob_job *jb = h_get(e, &ib);
    ASSERT_EQ(jb->state, OB_AVAILABLE);
    ob_job_free(jb);
    ob_pool *q = h_pool(e, 1, 0, "b");
    ob_job_free(h_wait(e, &ib));
    ob_pool_stop(p, 1000);
    ob_pool_stop(q, 1000);
    ob_engine_close(e);
}

TEST(a_job_not_yet_running_is_cancelled_at_once_and_again_is_a_no_op)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_id id = h_add(e, "done");
    ob_new_job later = {.payload = "done", .payload_len = 5, .run_at_ms = ob_now_ms() + 60000};
    ob_id sid = h_add_job(e, &later);
    ob_state st;
    ASSERT_OK(ob_job_cancel(e, &id, &st));
    ASSERT_EQ(st, OB_CANCELLED);
    ASSERT_OK(ob_job_cancel(e, &sid, &st));
    ASSERT_EQ(st, OB_CANCELLED);
    ASSERT_OK(ob_job_cancel(e, &id, &st)); /* again: no-op */
    ASSERT_EQ(st, OB_CANCELLED);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    h_sleep_ms(100);
    ASSERT_EQ(h_starts(&id), 0);
    ob_job *j = h_get(e, &id);
    ASSERT_EQ(j->state, OB_CANCELLED);
    ASSERT(j->finished_at_ms > 0);
    ob_job_free(j);
    ob_id missing;
    ASSERT_OK(ob_id_parse("01890000-0000-7000-8000-000000000000", &missing));
    ASSERT_RC(ob_job_cancel(e, &missing, NULL), OB_ENOTFOUND);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(cancel_of_finished_job_is_refused)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_id id = h_add(e, "done");
    ob_job_free(h_wait(e, &id));
    ASSERT_RC(ob_job_cancel(e, &id, NULL), OB_ESTATE);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(cancel_reaches_running_handler)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_id id = h_add(e, "wait-cancel");
    while (h_starts(&id) == 0)
        h_sleep_ms(5);
    ob_state st;
    ASSERT_OK(ob_job_cancel(e, &id, &st));
    ASSERT_EQ(st, OB_RUNNING);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(atomic_load(&h_cancel_seen), OB_CANCEL_REQUESTED);
    ASSERT_EQ(j->state, OB_CANCELLED);
    ASSERT_EQ(j->nerrors, 1);
    ASSERT_STREQ(j->errors[0].message, "cancelled: 1");
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(timeout_is_delivered_and_recorded)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.payload = "sleep:10000", .payload_len = 12, .timeout_ms = 200,
                    .max_attempts = 1};
    int64_t t0 = ob_mono_ms();
    ob_id id = h_add_job(e, &n);
    ob_job *j = h_wait(e, &id);
    ASSERT(ob_mono_ms() - t0 < 5000);
    ASSERT_EQ(atomic_load(&h_cancel_seen), OB_CANCEL_TIMEOUT);
    ASSERT_EQ(j->state, OB_DISCARDED);
    ASSERT_STREQ(j->errors[0].message, "timed out after 200 ms: stopped early");
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(hung_handler_is_rescued_and_its_late_answer_dropped)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.lease_grace_ms = 100;
    o.rescue_interval_ms = 50;
    ob_engine *e = h_open("jobs.db", &o);
    ob_pool *p = h_pool(e, 2, 0, NULL);
    ob_new_job n = {.payload = "hang-first:1500", .payload_len = 16, .timeout_ms = 100};
    ob_id id = h_add_job(e, &n);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(j->attempt, 2); /* the hung attempt counted */
    ASSERT_EQ(j->nerrors, 1);
    ASSERT_EQ(j->errors[0].attempt, 1);
    ASSERT(strstr(j->errors[0].message, "lease expired") != NULL);
    ob_job_free(j);
    ASSERT_OK(ob_pool_stop(p, 5000)); /* the hung worker answers late ... */
    j = h_get(e, &id);                /* ... and its answer changes nothing */
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(j->attempt, 2);
    ASSERT_EQ(h_starts(&id), 2);
    ob_job_free(j);
    ob_engine_close(e);
}

/* A prefetched job waits in the pool's ring behind a slow one. Its lease,
 * taken at claim, must not run out while it then runs for its timeout:
 * a healthy job is never rescued. */
TEST(prefetched_job_keeps_its_lease_while_it_runs)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.lease_grace_ms = 200;
    o.rescue_interval_ms = 20;
    ob_engine *e = h_open("jobs.db", &o);
    ob_new_job n = {.payload = "hang-first:450", .payload_len = 15, .timeout_ms = 600};
    ob_id a = h_add_job(e, &n), b = h_add_job(e, &n);
    ob_pool *p = h_pool(e, 1, 1, NULL); /* claims both; b waits ~450 ms */
    ob_job *ja = h_wait(e, &a), *jb = h_wait(e, &b);
    ASSERT_EQ(ja->state, OB_COMPLETED);
    ASSERT_EQ(jb->state, OB_COMPLETED);
    ASSERT_EQ(ja->attempt, 1);
    ASSERT_EQ(jb->attempt, 1); /* b ran from ~450 to ~900 ms: past claim + 800 */
    ASSERT_EQ(jb->nerrors, 0);
    ASSERT_EQ(h_starts(&b), 1);
    ob_job_free(ja);
    ob_job_free(jb);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(retry_requeues_a_discarded_job)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.payload = "fail-until:2", .payload_len = 13, .max_attempts = 1};
    ob_id id = h_add_job(e, &n);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_DISCARDED);
    ob_job_free(j);
    ob_state st;
    ASSERT_OK(ob_job_retry(e, &id, &st));
    ASSERT_EQ(st, OB_AVAILABLE);
    j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(j->attempt, 2);
    ASSERT_EQ(j->max_attempts, 2);
    ASSERT_EQ(j->nerrors, 1);
    ob_job_free(j);
    ASSERT_RC(ob_job_retry(e, &id, NULL), OB_ESTATE); /* completed stays completed */
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(retry_runs_a_scheduled_job_now)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.payload = "done", .payload_len = 5, .run_at_ms = ob_now_ms() + 3600000};
    ob_id id = h_add_job(e, &n);
    ob_state st;
    ASSERT_OK(ob_job_retry(e, &id, &st));
    ASSERT_EQ(st, OB_AVAILABLE);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

TEST(wait_times_out_with_current_state)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_id id = h_add(e, "done");
    ob_job *j = NULL;
    int64_t t0 = ob_mono_ms();
    ASSERT_RC(ob_job_wait(e, &id, 150, &j), OB_ETIMEDOUT);
    ASSERT(ob_mono_ms() - t0 >= 150);
    ASSERT(j && j->state == OB_AVAILABLE);
    ob_job_free(j);
    ob_id missing;
    ASSERT_OK(ob_id_parse("01890000-0000-7000-8000-000000000000", &missing));
    j = NULL;
    ASSERT_RC(ob_job_wait(e, &missing, 10, &j), OB_ENOTFOUND);
    ASSERT(j == NULL);
    ob_engine_close(e);
}

typedef struct seen {
    pthread_mutex_t mu;
    int n;
    ob_id ids[64];
    ob_state states[64];
} seen;

static void on_event(void *arg, const ob_event *ev)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (s->n < 64) {
        s->ids[s->n] = ev->id;
        s->states[s->n++] = ev->state;
    }
    pthread_mutex_unlock(&s->mu);
}

TEST(events_follow_the_life_cycle_in_order)
{
    ob_engine *e = h_open("jobs.db", NULL);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ob_new_job n = {.payload = "fail-until:2", .payload_len = 13,
                    .run_at_ms = ob_now_ms() + 100};
    ob_subscription *sub;
    ASSERT_OK(ob_engine_subscribe(e, on_event, &s, &sub));
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_id id = h_add_job(e, &n);
    ob_job_free(h_wait(e, &id));
    ob_pool_stop(p, 1000);
    ob_engine_unsubscribe(e, sub);
    ob_state want[] = {OB_SCHEDULED, OB_AVAILABLE, OB_RUNNING, OB_RETRYABLE,
                       OB_AVAILABLE, OB_RUNNING, OB_COMPLETED};
    ASSERT_EQ(s.n, 7);
    for (int i = 0; i < 7; i++) {
        ASSERT(memcmp(s.ids[i].b, id.b, 16) == 0);
        ASSERT_EQ(s.states[i], want[i]);
    }
    ob_engine_close(e);
}

TEST(pool_stop_gives_back_unstarted_jobs_uncounted)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_id ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = h_add(e, "sleep:300");
    ob_pool *p = h_pool(e, 1, 5, NULL); /* claims all six, runs one */
    while (atomic_load(&h_nlog) == 0)
        h_sleep_ms(5);
    ASSERT_OK(ob_pool_stop(p, 5000));
    int completed = 0, available = 0;
    for (int i = 0; i < 6; i++) {
        ob_job *j = h_get(e, &ids[i]);
        completed += j->state == OB_COMPLETED;
        if (j->state == OB_AVAILABLE) {
            available++;
            ASSERT_EQ(j->attempt, 0);
        }
        ob_job_free(j);
    }
    ASSERT_EQ(completed, 1);
    ASSERT_EQ(available, 5);
    ob_engine_close(e);
}

TEST(pool_stop_cancels_handlers_after_drain)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_id id = h_add(e, "wait-cancel");
    while (h_starts(&id) == 0)
        h_sleep_ms(5);
    ASSERT_RC(ob_pool_stop(p, 100), OB_ETIMEDOUT);
    ASSERT_EQ(atomic_load(&h_cancel_seen), OB_CANCEL_SHUTDOWN);
    ob_engine_close(e);
    e = h_open("jobs.db", NULL);
    ob_job *j = h_get(e, &id); /* its retry answer was committed at close */
    ASSERT(j->state == OB_RETRYABLE || j->state == OB_AVAILABLE); /* backoff may be over */
    ASSERT_EQ(j->attempt, 1);
    ASSERT_STREQ(j->errors[0].message, "cancelled: 3");
    ob_job_free(j);
    ob_engine_close(e);
}

TEST(unknown_kind_in_store_is_retried_not_lost)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_engine_close(e);
    /* A store holding a kind this process has no handler for (registered
     * by an earlier version, say): enqueue it under a handler, reopen
     * without one. */
    ob_engine_opts o;
    h_fast_opts(&o);
    ASSERT_OK(ob_engine_open(test_url("jobs.db"), &o, &e));
    ASSERT_OK(ob_engine_register(e, "gone", h_script, NULL, NULL));
    ob_new_job n = {.kind = "gone", .payload = "done", .payload_len = 5, .max_attempts = 2};
    ob_id id = h_add_job(e, &n);
    ob_engine_close(e);
    ASSERT_OK(ob_engine_open(test_url("jobs.db"), &o, &e));
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_job *j = h_wait(e, &id);
    ASSERT_EQ(j->state, OB_DISCARDED);
    ASSERT_STREQ(j->errors[0].message, "no handler is registered for kind \"gone\"");
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OB_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define OB_ASAN 1
#endif

#ifdef OB_ASAN
#include <sys/wait.h>
#include <unistd.h>

static const unsigned char *volatile kept;

static void keeper(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    kept = ob_ctx_job(ctx)->payload; /* the bug: a pointer outliving the handler */
    ob_ctx_done(ctx, NULL);
}

/* The Q&A's "request values are only valid until the handler returns",
 * made loud: the job is freed (and poisoned) when the handler returns, so
 * a read through a kept pointer is a crash under ASan, in a child process
 * that this test expects to die with ASan's report. */
TEST(payload_kept_past_handler_crashes_under_asan)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        ob_engine *e = h_open("jobs.db", NULL);
        ASSERT_OK(ob_engine_register(e, "keeper", keeper, NULL, NULL));
        ob_pool *p = h_pool(e, 1, 0, NULL);
        ob_new_job n = {.kind = "keeper", .payload = "secret", .payload_len = 7};
        ob_id id = h_add_job(e, &n);
        ob_job_free(h_wait(e, &id));
        ob_pool_stop(p, 1000);
        printf("read after handler: %d\n", kept[0]); /* must not get here */
        _exit(0);
    }
    close(pipefd[1]);
    static char out[65536];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(pipefd[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    int st;
    waitpid(pid, &st, 0);
    ASSERT(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
    ASSERT(strstr(out, "heap-use-after-free") != NULL);
    ASSERT(strstr(out, "keeper") != NULL || strstr(out, "obi_job_free_poisoned") != NULL);
}
#endif

static bool follow(void *arg, const ob_final *f, ob_new_job *next)
{
    char *key = arg; /* room for the key, owned by the test */
    if (!f->meta || strcmp(f->meta, "follow-me") != 0)
        return false;
    char ids[OB_ID_STRLEN + 1];
    snprintf(key, 64, "after:%s", ob_id_format(&f->id, ids));
    *next = (ob_new_job){.kind = "script", .payload = "done", .payload_len = 5,
                         .unique_key = key};
    return true;
}

TEST(final_hook_adds_a_follow_up_in_the_same_commit)
{
    ob_engine *e = h_open("jobs.db", NULL);
    static char key[64];
    ob_engine_on_final(e, follow, key);
    ob_pool *p = h_pool(e, 1, 0, NULL);
    ob_new_job n = {.kind = "script", .payload = "discard", .payload_len = 8, .meta = "follow-me"};
    ob_id id = h_add_job(e, &n);
    ob_job_free(h_wait(e, &id)); /* discarded: final too */
    ob_pool_stop(p, 1000);
    ob_list_filter f = {.limit = 10};
    ob_job_page *pg;
    ASSERT_OK(ob_job_list(e, &f, &pg));
    ASSERT_EQ(pg->n, 2);
    ob_job *after = pg->jobs[0]; /* newest first */
    char want[64], ids[OB_ID_STRLEN + 1];
    snprintf(want, sizeof want, "after:%s", ob_id_format(&id, ids));
    ASSERT_STREQ(after->unique_key, want);
    ob_id aid = after->id;
    ob_job_page_free(pg);
    p = h_pool(e, 1, 0, NULL);
    ob_job *j = h_wait(e, &aid);
    ASSERT_EQ(j->state, OB_COMPLETED); /* the follow-up has no meta: no follow-up of its own */
    ob_job_free(j);
    ob_state st;
    ASSERT_OK(ob_job_retry(e, &id, &st)); /* the first runs and ends again ... */
    ob_job_free(h_wait(e, &id));
    ob_pool_stop(p, 1000);
    ASSERT_OK(ob_job_list(e, &f, &pg));
    ASSERT_EQ(pg->n, 2); /* ... and its follow-up is not duplicated (unique key) */
    ob_job_page_free(pg);
    ob_engine_close(e);
}

/* An engine with nothing to do sleeps: a few timer batches a second at
 * most (the refresh), never a loop. */
TEST(an_idle_engine_sleeps)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 2, 0, NULL);
    ob_id id = h_add(e, "done");
    ob_job_free(h_wait(e, &id));
    ob_engine_stats a, b;
    ob_engine_stats_get(e, &a);
    h_sleep_ms(2500);
    ob_engine_stats_get(e, &b);
    printf("  %llu commits in 2.5 s idle\n", (unsigned long long)(b.commits - a.commits));
    ASSERT(b.commits - a.commits <= 6);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

static int count_in(ob_engine *e, ob_state state, const char *queue)
{
    ob_list_filter f = {.states = 1u << state, .queue = queue, .limit = OB_LIST_MAX};
    ob_job_page *page;
    ASSERT_OK(ob_job_list(e, &f, &page));
    int n = (int)page->n;
    ob_job_page_free(page);
    return n;
}

TEST(bulk_retry_and_cancel_go_page_by_page_and_skip_what_their_state_forbids)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_pool *p = h_pool(e, 2, 0, "a");
    ob_id ids[25], done_id;
    for (int i = 0; i < 25; i++) {
        ob_new_job n = {.queue = "a", .payload = "discard", .payload_len = 8};
        ids[i] = h_add_job(e, &n);
    }
    ob_new_job ok = {.queue = "a", .payload = "done", .payload_len = 5};
    done_id = h_add_job(e, &ok);
    for (int i = 0; i < 25; i++)
        ob_job_free(h_wait(e, &ids[i]));
    ob_job_free(h_wait(e, &done_id));
    ob_pool_stop(p, 1000); /* what is retried stays available */
    for (int i = 0; i < 5; i++) {
        ob_new_job later = {.queue = "b", .payload = "done", .payload_len = 5,
                            .run_at_ms = ob_now_ms() + 3600000};
        h_add_job(e, &later);
    }
    /* retry the discarded ones, ten a call, following the cursor */
    ob_list_filter f = {.states = 1u << OB_DISCARDED, .limit = 10};
    ob_bulk_result r;
    char cursor[OB_CURSOR_MAX] = "";
    int calls = 0, changed = 0;
    do {
        f.cursor = cursor;
        ASSERT_OK(ob_jobs_bulk(e, OB_BULK_RETRY, &f, NULL, 0, &r));
        ASSERT_EQ(r.matched, r.changed);
        changed += r.changed;
        memcpy(cursor, r.next_cursor, sizeof cursor);
        calls++;
    } while (cursor[0] && calls < 10);
    ASSERT_EQ(changed, 25);
    ASSERT_EQ(calls, 3);
    ASSERT_EQ(count_in(e, OB_AVAILABLE, "a"), 25);
    ASSERT_EQ(count_in(e, OB_DISCARDED, NULL), 0);
    /* cancel a queue's scheduled jobs */
    ob_list_filter fb = {.queue = "b"};
    ASSERT_OK(ob_jobs_bulk(e, OB_BULK_CANCEL, &fb, NULL, 0, &r));
    ASSERT_EQ(r.changed, 5);
    ASSERT_EQ(r.next_cursor[0], '\0');
    ASSERT_EQ(count_in(e, OB_CANCELLED, "b"), 5);
    /* by ids: a completed job is not retried, and a missing one is skipped */
    ob_id two[2] = {done_id, {{0}}};
    ASSERT_OK(ob_jobs_bulk(e, OB_BULK_RETRY, NULL, two, 2, &r));
    ASSERT_EQ(r.matched, 2);
    ASSERT_EQ(r.changed, 0);
    /* bad calls are refused */
    ob_list_filter bad = {.states = 1u << 30};
    ASSERT_RC(ob_jobs_bulk(e, OB_BULK_RETRY, &bad, NULL, 0, &r), OB_EINVAL);
    ASSERT_RC(ob_jobs_bulk(e, (ob_bulk_action)9, &f, NULL, 0, &r), OB_EINVAL);
    ASSERT_RC(ob_jobs_bulk(e, OB_BULK_CANCEL, NULL, two, OB_LIST_MAX + 1, &r), OB_EINVAL);
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(bulk_retry_and_cancel_go_page_by_page_and_skip_what_their_state_forbids),
    T(each_answer_ends_the_job_as_the_life_cycle_says),
    T(an_idle_engine_sleeps),
#ifdef OB_ASAN
    T(payload_kept_past_handler_crashes_under_asan),
#endif
    T(enqueue_is_durable_and_reads_back),
    T(ids_are_uuidv7_in_enqueue_order),
    T(async_enqueue_copies_payload_and_calls_back_after_commit),
    T(many_jobs_in_few_batches_read_back_field_by_field),
    T(second_answer_is_refused),
    T(result_must_be_json_within_limit), T(a_result_kept_with_a_retry_reaches_the_next_attempt),
    T(scheduled_job_wakes_when_due),
    T(claims_take_highest_priority_then_earliest),
    T(pools_work_only_their_queues),
    T(a_job_not_yet_running_is_cancelled_at_once_and_again_is_a_no_op),
    T(cancel_of_finished_job_is_refused),
    T(cancel_reaches_running_handler),
    T(timeout_is_delivered_and_recorded),
    T(hung_handler_is_rescued_and_its_late_answer_dropped),
    T(prefetched_job_keeps_its_lease_while_it_runs),
    T(retry_requeues_a_discarded_job),
    T(retry_runs_a_scheduled_job_now),
    T(wait_times_out_with_current_state),
    T(events_follow_the_life_cycle_in_order),
    T(pool_stop_gives_back_unstarted_jobs_uncounted),
    T(pool_stop_cancels_handlers_after_drain),
    T(unknown_kind_in_store_is_retried_not_lost),
    T(final_hook_adds_a_follow_up_in_the_same_commit),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
