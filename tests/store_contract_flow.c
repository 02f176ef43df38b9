/*
 * store_contract_flow.c - flow control on either store (part of the store
 * contract suite): a queue paused, capped and rate-limited through
 * ob_queue_set; the settings durable; a waiting job spends no attempt; a
 * paused queue's backlog parked and unparked in pages; bad settings
 * refused. Several nodes on one PostgreSQL: test_cluster.c.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "helpers.h"

/* "probe" jobs: count the handlers in flight per queue and the most seen;
 * the payload is how long to sleep, in ms. */
static atomic_int inflight, most;

static void probe(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    int now = atomic_fetch_add(&inflight, 1) + 1;
    int m = atomic_load(&most);
    while (now > m && !atomic_compare_exchange_weak(&most, &m, now))
        ;
    int ms = atoi((const char *)ob_ctx_job(ctx)->payload);
    if (ms > 0)
        h_sleep_ms(ms);
    atomic_fetch_sub(&inflight, 1);
    ob_ctx_done(ctx, NULL);
}

static ob_engine *open_probe(void)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ASSERT_OK(ob_engine_register(e, "probe", probe, NULL, NULL));
    atomic_store(&inflight, 0);
    atomic_store(&most, 0);
    return e;
}

static ob_id add(ob_engine *e, const char *kind, const char *queue, const char *payload)
{
    ob_new_job n = {.kind = kind, .queue = queue, .payload = payload,
                    .payload_len = strlen(payload)};
    return h_add_job(e, &n);
}

static void set(ob_engine *e, const char *queue, unsigned mask, ob_queue_settings st)
{
    ASSERT_OK(ob_queue_set(e, queue, &st, mask, NULL, NULL));
}

static ob_queue_info info(ob_engine *e, const char *queue)
{
    ob_queue_info q;
    ASSERT_OK(ob_queue_get(e, queue, &q));
    return q;
}

TEST(a_paused_queue_takes_jobs_and_starts_none_until_resumed_even_after_a_restart)
{
    ob_engine *e = open_probe();
    set(e, "mail", OB_QUEUE_PAUSED, (ob_queue_settings){.paused = true});
    ob_id m[5], d = add(e, "probe", "default", "0");
    for (int i = 0; i < 5; i++)
        m[i] = add(e, "probe", "mail", "0");
    h_pool(e, 4, 0, NULL);
    ob_job_free(h_wait(e, &d)); /* the other queue runs */
    h_sleep_ms(300);
    for (int i = 0; i < 5; i++) {
        ob_job *j = h_get(e, &m[i]);
        ASSERT_EQ(j->state, OB_AVAILABLE);
        ASSERT_EQ(j->attempt, 0);
        ob_job_free(j);
    }
    ob_queue_info q = info(e, "mail");
    ASSERT(q.settings.paused);
    ASSERT_EQ(q.counts[OB_AVAILABLE], 5);
    ASSERT(q.oldest_due_ms > 0 && q.updated_at_ms > 0);
    ob_engine_close(e);

    e = open_probe(); /* the setting is durable */
    ASSERT(info(e, "mail").settings.paused);
    h_pool(e, 4, 0, "mail"); /* a pool of that queue alone starts nothing either */
    h_sleep_ms(300);
    ASSERT_EQ(info(e, "mail").counts[OB_AVAILABLE], 5);
    set(e, "mail", OB_QUEUE_PAUSED, (ob_queue_settings){.paused = false});
    for (int i = 0; i < 5; i++) {
        ob_job *j = h_wait(e, &m[i]);
        ASSERT_EQ(j->state, OB_COMPLETED);
        ASSERT_EQ(j->attempt, 1);
        ob_job_free(j);
    }
    q = info(e, "mail");
    ASSERT(!q.settings.paused);
    ASSERT_EQ(q.updated_at_ms, 0); /* nothing set: the queue has no settings (F2) */
    ASSERT_EQ(q.counts[OB_COMPLETED], 5);
    ob_engine_close(e);
}

/* Enqueues in flight together (each commits with many others). */
typedef struct many {
    ob_id *ids;
    atomic_int n;
} many;

static void many_done(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)existed;
    many *m = arg;
    ASSERT_OK(rc);
    m->ids[atomic_fetch_add(&m->n, 1)] = *id;
}

TEST(a_paused_backlog_is_parked_in_pages_and_costs_other_queues_nothing)
{
    ob_engine *e = open_probe();
    enum { N = 2500 };
    ob_id *ids = calloc(N, sizeof *ids);
    many m = {.ids = ids};
    ob_new_job n = {.kind = "probe", .queue = "bulk", .priority = 5, .payload = "0",
                    .payload_len = 1};
    for (int i = 0; i < N; i++)
        ASSERT_OK(ob_enqueue_async(e, &n, many_done, &m));
    while (atomic_load(&m.n) < N)
        h_sleep_ms(5);
    set(e, "bulk", OB_QUEUE_PAUSED, (ob_queue_settings){.paused = true});
    h_pool(e, 2, 0, NULL);
    /* A job of another queue, of a lower priority, starts at once. */
    int64_t t0 = ob_now_ms();
    ob_id d = add(e, "probe", "default", "0");
    ob_job_free(h_wait(e, &d));
    ASSERT(ob_now_ms() - t0 < 2000);
    ASSERT_EQ(info(e, "bulk").counts[OB_AVAILABLE], N);
    set(e, "bulk", OB_QUEUE_PAUSED, (ob_queue_settings){.paused = false});
    for (int i = 0; i < N; i++)
        ob_job_free(h_wait(e, &ids[i]));
    ASSERT_EQ(info(e, "bulk").counts[OB_COMPLETED], N);
    free(ids);
    ob_engine_close(e);
}

TEST(a_concurrency_cap_is_never_exceeded_and_waiting_spends_no_attempt)
{
    ob_engine *e = open_probe();
    set(e, "cap", OB_QUEUE_CONCURRENCY, (ob_queue_settings){.concurrency = 3});
    enum { N = 24 };
    ob_id ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = add(e, "probe", "cap", "40");
    h_pool(e, 12, 0, NULL);
    for (int i = 0; i < N; i++) {
        ob_job *j = h_wait(e, &ids[i]);
        ASSERT_EQ(j->state, OB_COMPLETED);
        ASSERT_EQ(j->attempt, 1);
        ob_job_free(j);
    }
    ASSERT_EQ(atomic_load(&most), 3);
    ob_engine_close(e);
}

TEST(a_pool_of_named_queues_keeps_the_cap_and_runs_the_others_freely)
{
    ob_engine *e = open_probe();
    set(e, "cap", OB_QUEUE_CONCURRENCY, (ob_queue_settings){.concurrency = 1});
    ob_pool_opts po;
    ob_pool_opts_init(&po);
    po.workers = 8;
    po.queues[0] = "cap";
    po.queues[1] = "free";
    ob_pool *p;
    ASSERT_OK(ob_pool_start(e, &po, &p));
    enum { N = 8 };
    ob_id c[N], f[N];
    for (int i = 0; i < N; i++) {
        c[i] = add(e, "probe", "cap", "30");
        f[i] = add(e, "probe", "free", "300");
    }
    for (int i = 0; i < N; i++) {
        ob_job_free(h_wait(e, &c[i]));
        ob_job_free(h_wait(e, &f[i]));
    }
    /* the free queue's 7 slow jobs ran beside one capped job at a time */
    ASSERT(atomic_load(&most) >= 6);
    ob_engine_close(e);
}

TEST(a_finished_job_of_a_capped_queue_starts_the_next_at_once)
{
    ob_engine *e = open_probe();
    set(e, "one", OB_QUEUE_CONCURRENCY, (ob_queue_settings){.concurrency = 1});
    enum { N = 40 };
    ob_id ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = add(e, "probe", "one", "0");
    int64_t t0 = ob_now_ms();
    h_pool(e, 4, 0, NULL);
    for (int i = 0; i < N; i++)
        ob_job_free(h_wait(e, &ids[i]));
    /* no polling: 40 jobs one after the other take far less than 40
     * refresh intervals (1 s) */
    ASSERT(ob_now_ms() - t0 < 8000);
    ASSERT_EQ(atomic_load(&most), 1);
    ob_engine_close(e);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

TEST(a_rate_limit_paces_starts_within_each_period)
{
    ob_engine *e = open_probe();
    enum { LIMIT = 20, PERIOD = 1000, N = 50 };
    set(e, "paced", OB_QUEUE_RATE,
        (ob_queue_settings){.rate_limit = LIMIT, .rate_period_ms = PERIOD});
    ob_id ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = add(e, "probe", "paced", "0");
    h_pool(e, 8, 0, NULL);
    int64_t at[N];
    for (int i = 0; i < N; i++) {
        ob_job *j = h_wait(e, &ids[i]);
        ASSERT_EQ(j->attempt, 1);
        at[i] = j->attempted_at_ms; /* the claim's time: when it started */
        ob_job_free(j);
    }
    qsort(at, N, sizeof *at, cmp_i64);
    /* Never more than LIMIT in a period, and the i-th of a period no
     * earlier than (i - LIMIT/20) * PERIOD / LIMIT into it (the pace's lead). */
    int inwin = 0;
    for (int i = 0; i < N; i++) {
        if (i > 0 && at[i] / PERIOD != at[i - 1] / PERIOD)
            inwin = 0;
        ASSERT(inwin < LIMIT);
        ASSERT(at[i] % PERIOD >= (int64_t)(inwin - LIMIT / 20) * PERIOD / LIMIT);
        inwin++;
    }
    /* 50 starts at 20 a second: at least two period boundaries crossed */
    ASSERT(at[N - 1] / PERIOD - at[0] / PERIOD >= 2);
    ob_engine_close(e);
}

TEST(settings_are_checked_naming_the_member_and_cleared_by_zero)
{
    ob_engine *e = open_probe();
    ob_problem p;
    ob_queue_settings st = {.concurrency = -1};
    ASSERT_RC(ob_queue_set(e, "q", &st, OB_QUEUE_CONCURRENCY, NULL, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "concurrency");
    st = (ob_queue_settings){.rate_limit = 5, .rate_period_ms = 0};
    ASSERT_RC(ob_queue_set(e, "q", &st, OB_QUEUE_RATE, NULL, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "rate.period");
    st = (ob_queue_settings){.rate_limit = OB_RATE_LIMIT_MAX + 1, .rate_period_ms = 1000};
    ASSERT_RC(ob_queue_set(e, "q", &st, OB_QUEUE_RATE, NULL, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "rate.limit");
    ASSERT_RC(ob_queue_set(e, "no spaces", &st, OB_QUEUE_RATE, NULL, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "name");
    ASSERT_RC(ob_queue_set(e, "q", &st, 64, NULL, &p), OB_EINVAL);

    /* A change keeps the members the mask does not name. */
    ob_queue_settings after;
    st = (ob_queue_settings){.paused = true, .concurrency = 4, .rate_limit = 10,
                             .rate_period_ms = 60000};
    ASSERT_OK(ob_queue_set(e, "q", &st, OB_QUEUE_PAUSED | OB_QUEUE_CONCURRENCY | OB_QUEUE_RATE,
                           &after, NULL));
    st = (ob_queue_settings){.concurrency = 9};
    ASSERT_OK(ob_queue_set(e, "q", &st, OB_QUEUE_CONCURRENCY, &after, NULL));
    ASSERT(after.paused);
    ASSERT_EQ(after.concurrency, 9);
    ASSERT_EQ(after.rate_limit, 10);
    ASSERT_EQ(after.rate_period_ms, 60000);
    ob_queue_info *all;
    size_t n;
    ASSERT_OK(ob_queue_list(e, &all, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(all[0].name, "q");
    free(all);
    st = (ob_queue_settings){0};
    ASSERT_OK(ob_queue_set(e, "q", &st, OB_QUEUE_PAUSED | OB_QUEUE_CONCURRENCY | OB_QUEUE_RATE,
                           &after, NULL));
    ASSERT_OK(ob_queue_list(e, &all, &n));
    ASSERT_EQ(n, 0); /* no settings, no jobs: no queue */
    free(all);
    ob_engine_close(e);
}

/* "holder" jobs: the first attempt of "hold:MS" holds its key (or with
 * "holdq:MS" its queue) for MS; everything else answers done. */
static void holder(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *j = ob_ctx_job(ctx);
    const char *p = (const char *)j->payload;
    if (j->attempt == 1 && !strncmp(p, "hold", 4)) {
        bool q = p[4] == 'q';
        ob_ctx_retry_hold(ctx, atoi(p + (q ? 6 : 5)), q, "429 Too Many Requests");
        return;
    }
    ob_ctx_done(ctx, NULL);
}

static ob_id add_keyed(ob_engine *e, const char *kind, const char *queue, const char *key,
                       int priority, const char *payload)
{
    ob_new_job n = {.kind = kind, .queue = queue, .rate_key = key, .priority = priority,
                    .payload = payload, .payload_len = strlen(payload)};
    return h_add_job(e, &n);
}

static ob_job *wait_done(ob_engine *e, const ob_id *id)
{
    ob_job *j = h_wait(e, id);
    ASSERT_EQ(j->state, OB_COMPLETED);
    return j;
}

TEST(a_key_rate_limits_each_key_apart)
{
    ob_engine *e = open_probe();
    enum { LIMIT = 10, PERIOD = 1000, N = 25 };
    set(e, "hooks", OB_QUEUE_KEY_RATE,
        (ob_queue_settings){.key_rate_limit = LIMIT, .key_rate_period_ms = PERIOD});
    ob_id a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = add_keyed(e, "probe", "hooks", "https://a.example:443", 0, "0");
        b[i] = add_keyed(e, "probe", "hooks", "https://b.example:443", 0, "0");
    }
    ob_id free_job = add(e, "probe", "hooks", "0"); /* no key: a key of its own */
    h_pool(e, 8, 0, NULL);
    int64_t at[2][N];
    for (int i = 0; i < N; i++) {
        ob_job *j = wait_done(e, &a[i]);
        ASSERT_STREQ(j->rate_key, "https://a.example:443");
        at[0][i] = j->attempted_at_ms;
        ob_job_free(j);
        j = wait_done(e, &b[i]);
        at[1][i] = j->attempted_at_ms;
        ob_job_free(j);
    }
    ob_job_free(wait_done(e, &free_job));
    for (int k = 0; k < 2; k++) {
        qsort(at[k], N, sizeof at[k][0], cmp_i64);
        int inwin = 0;
        for (int i = 0; i < N; i++) {
            if (i > 0 && at[k][i] / PERIOD != at[k][i - 1] / PERIOD)
                inwin = 0;
            ASSERT(inwin < LIMIT);
            inwin++;
        }
        ASSERT(at[k][N - 1] / PERIOD - at[k][0] / PERIOD >= 2); /* 25 at 10 a second */
    }
    /* each key at its own rate: side by side, not one after the other */
    ASSERT(llabs(at[0][N - 1] - at[1][N - 1]) < PERIOD);
    ob_engine_close(e);
}

TEST(a_hold_stops_every_job_of_the_key_and_spends_none_of_their_attempts)
{
    ob_engine *e = open_probe();
    ASSERT_OK(ob_engine_register(e, "holder", holder, NULL, NULL));
    enum { N = 5 };
    ob_id first = add_keyed(e, "holder", "hooks", "a", 10, "hold:1500");
    ob_id a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = add_keyed(e, "holder", "hooks", "a", 0, "0");
        b[i] = add_keyed(e, "holder", "hooks", "b", 0, "0");
    }
    ob_pool *p = h_pool(e, 1, 0, NULL); /* the first runs first: it has the priority */
    for (int i = 0; i < N; i++)
        ob_job_free(wait_done(e, &b[i]));
    int64_t held_at = ob_now_ms();
    ob_key_hold *h;
    size_t nh;
    ASSERT_OK(ob_queue_holds(e, "hooks", &h, &nh));
    ASSERT_EQ(nh, 1);
    ASSERT_STREQ(h[0].key, "a");
    ASSERT(h[0].until_ms > held_at);
    int64_t until = h[0].until_ms;
    free(h);
    int waiting = 0; /* a job of key a may have been claimed with the first */
    for (int i = 0; i < N; i++) {
        ob_job *j = h_get(e, &a[i]);
        waiting += j->state == OB_AVAILABLE && j->attempt == 0;
        ob_job_free(j);
    }
    ASSERT(waiting >= N - 1);
    int after = 0;
    for (int i = 0; i < N; i++) {
        ob_job *j = wait_done(e, &a[i]);
        after += j->attempted_at_ms >= until;
        ASSERT_EQ(j->attempt, 1);
        ob_job_free(j);
    }
    ASSERT(after >= N - 1);
    ob_job *j = wait_done(e, &first);
    ASSERT_EQ(j->attempt, 2); /* its own attempt counted: it reached the destination */
    ASSERT_EQ(j->nerrors, 1);
    ASSERT_STREQ(j->errors[0].message, "429 Too Many Requests");
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    /* the hold over, the queue has no settings again (F2) */
    h_sleep_ms(1200);
    ob_queue_info *all;
    size_t n;
    ASSERT_OK(ob_queue_list(e, &all, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(all[0].updated_at_ms, 0);
    free(all);
    ob_engine_close(e);
}

TEST(a_hold_of_the_whole_queue_stops_it_and_shows)
{
    ob_engine *e = open_probe();
    ASSERT_OK(ob_engine_register(e, "holder", holder, NULL, NULL));
    ob_id first = add_keyed(e, "holder", "mail", NULL, 10, "holdq:1000");
    h_pool(e, 2, 0, NULL);
    for (int i = 0; i < 400 && info(e, "mail").hold_until_ms == 0; i++)
        h_sleep_ms(5);
    /* held: what comes now waits too, keyed or not */
    ob_id rest[3];
    for (int i = 0; i < 3; i++)
        rest[i] = add_keyed(e, "holder", "mail", i ? "x" : NULL, 0, "0");
    ob_id other = add(e, "probe", "default", "0");
    ob_job_free(wait_done(e, &other));
    ob_queue_info q = info(e, "mail");
    ASSERT(q.hold_until_ms > ob_now_ms());
    ASSERT_EQ(q.counts[OB_AVAILABLE], 3);
    int64_t until = q.hold_until_ms;
    for (int i = 0; i < 3; i++) {
        ob_job *j = wait_done(e, &rest[i]);
        ASSERT(j->attempted_at_ms >= until);
        ob_job_free(j);
    }
    ob_job_free(wait_done(e, &first));
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(a_key_rate_limits_each_key_apart),
    T(a_hold_stops_every_job_of_the_key_and_spends_none_of_their_attempts),
    T(a_hold_of_the_whole_queue_stops_it_and_shows),
    T(a_paused_queue_takes_jobs_and_starts_none_until_resumed_even_after_a_restart),
    T(a_paused_backlog_is_parked_in_pages_and_costs_other_queues_nothing),
    T(a_concurrency_cap_is_never_exceeded_and_waiting_spends_no_attempt),
    T(a_pool_of_named_queues_keeps_the_cap_and_runs_the_others_freely),
    T(a_finished_job_of_a_capped_queue_starts_the_next_at_once),
    T(a_rate_limit_paces_starts_within_each_period),
    T(settings_are_checked_naming_the_member_and_cleared_by_zero),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
