/*
 * store_contract_concurrency.c - many threads at once, counted, on either
 * store (part of the store contract suite). Run under TSan too.
 *
 * every_job_completes_exactly_once: N producer threads enqueue (blocking
 * and async) while M workers in two pools run them and other threads read,
 * list, wait and cancel; at the end every enqueued job has run exactly
 * once unless it was cancelled before it ran, the counts add up, and the
 * engine says nothing is unfinished.
 *
 * a_bulk_retry_of_a_large_dead_letter_queue_keeps_commits_short: the
 * discarded jobs of a queue retried in pages of 1,000 while a producer goes
 * on enqueueing: every one is retried, and no commit, and no enqueue,
 * waits long behind the bulk work.
 */
#include <pthread.h>
#include <string.h>

#include "base/base.h"
#include "helpers.h"

enum { PRODUCERS = 8, PER_PRODUCER = 1500, TOTAL = PRODUCERS * PER_PRODUCER };

static atomic_int runs[TOTAL];
static ob_id ids[TOTAL];
static atomic_int acked;
static atomic_int stop_readers;

static void count(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    int n = atoi((const char *)ob_ctx_job(ctx)->payload);
    atomic_fetch_add(&runs[n], 1);
    if (n % 97 == 0 && ob_ctx_job(ctx)->attempt == 1)
        ob_ctx_retry(ctx, 0, "every 97th fails once"); /* retries share the load */
    else
        ob_ctx_done(ctx, NULL);
}

/* A slower job, so that a backlog builds and cancels meet every state. */
static void count_slow(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    int n = atoi((const char *)ob_ctx_job(ctx)->payload);
    atomic_fetch_add(&runs[n], 1);
    if (ob_ctx_sleep(ctx, 1))
        ob_ctx_retry(ctx, -1, "cancelled while running");
    else
        ob_ctx_done(ctx, NULL);
}

typedef struct prod {
    ob_engine *e;
    int t;
} prod;

static void async_acked(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)existed;
    ASSERT_OK(rc);
    ids[(intptr_t)arg] = *id;
    atomic_fetch_add(&acked, 1);
}

static void *producer(void *arg)
{
    prod *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        int n = p->t * PER_PRODUCER + i;
        char buf[16];
        snprintf(buf, sizeof buf, "%d", n);
        ob_new_job j = {.kind = "count", .queue = n % 2 ? "odd" : "even",
                        .payload = buf, .payload_len = strlen(buf) + 1, .priority = n % 5};
        if (i % 3 == 0) {
            int rc;
            while ((rc = ob_enqueue_async(p->e, &j, async_acked, (void *)(intptr_t)n)) == OB_EBUSY)
                sched_yield();
            ASSERT_OK(rc);
        } else {
            ASSERT_OK(ob_enqueue(p->e, &j, &ids[n], NULL));
            atomic_fetch_add(&acked, 1);
        }
    }
    return NULL;
}

static void *reader(void *arg)
{
    ob_engine *e = arg;
    while (!atomic_load(&stop_readers)) {
        int k = atomic_load(&acked);
        if (k == 0)
            continue;
        ob_job_page *pg;
        ob_list_filter f = {.limit = 20, .queue = "odd"};
        ASSERT_OK(ob_job_list(e, &f, &pg));
        for (size_t i = 0; i < pg->n; i++) {
            ob_job *j = NULL;
            ASSERT_OK(ob_job_get(e, &pg->jobs[i]->id, &j));
            ob_job_free(j);
        }
        if (pg->n) {
            ob_job *w = NULL;
            int rc = ob_job_wait(e, &pg->jobs[0]->id, 5, &w);
            ASSERT(rc == 0 || rc == OB_ETIMEDOUT);
            ob_job_free(w);
        }
        ob_job_page_free(pg);
    }
    return NULL;
}

TEST(every_job_completes_exactly_once)
{
    ob_engine_opts o;
    h_fast_opts(&o);
    o.max_inflight = 256; /* small, so async producers meet backpressure */
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(test_url("c.db"), &o, &e));
    ob_kind_opts ko = o.kind_defaults;
    ko.backoff.base_ms = 0;
    ASSERT_OK(ob_engine_register(e, "count", count, NULL, &ko));
    ob_pool *odd = h_pool(e, 4, -1, "odd");
    ob_pool *all = h_pool(e, 4, 2, NULL);
    pthread_t pt[PRODUCERS], rt[2];
    prod p[PRODUCERS];
    for (int i = 0; i < 2; i++)
        pthread_create(&rt[i], NULL, reader, e);
    for (int t = 0; t < PRODUCERS; t++) {
        p[t] = (prod){e, t};
        pthread_create(&pt[t], NULL, producer, &p[t]);
    }
    for (int t = 0; t < PRODUCERS; t++)
        pthread_join(pt[t], NULL);
    while (atomic_load(&acked) < TOTAL)
        h_sleep_ms(5);
    for (int n = 0; n < TOTAL; n++)
        ob_job_free(h_wait(e, &ids[n]));
    atomic_store(&stop_readers, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(rt[i], NULL);
    ASSERT_OK(ob_pool_stop(odd, 5000));
    ASSERT_OK(ob_pool_stop(all, 5000));

    int total = 0;
    for (int n = 0; n < TOTAL; n++) {
        int want = n % 97 == 0 ? 2 : 1;
        if (atomic_load(&runs[n]) != want)
            test_fail(__FILE__, __LINE__, "job %d ran %d times, want %d", n,
                      atomic_load(&runs[n]), want);
        total += want;
        ob_job *j = h_get(e, &ids[n]);
        ASSERT_EQ(j->state, OB_COMPLETED);
        ASSERT_EQ(j->attempt, want);
        ob_job_free(j);
    }
    ob_engine_stats st;
    ob_engine_stats_get(e, &st);
    ASSERT_EQ(st.unfinished, 0);
    printf("  %d jobs, %d runs, %llu commits (%.1f ops per commit)\n", TOTAL, total,
           (unsigned long long)st.commits, (double)st.ops / (double)(st.commits ? st.commits : 1));
    ob_engine_close(e);
}

/* Cancels race with claims: each job ends either cancelled (never ran, or
 * ran and answered after the cancel) or completed — never both, never lost. */
static void *canceller(void *arg)
{
    ob_engine *e = arg;
    for (int n = 0; n < 2000; n += 3) {
        while (atomic_load(&acked) <= n)
            sched_yield();
        ob_state st;
        int rc = ob_job_cancel(e, &ids[n], &st);
        ASSERT(rc == 0 || rc == OB_ESTATE);
    }
    return NULL;
}

static void *slow_producer(void *arg)
{
    ob_engine *e = arg;
    for (int n = 0; n < 2000; n++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", n);
        ob_new_job j = {.kind = "slow", .payload = buf, .payload_len = strlen(buf) + 1};
        ASSERT_OK(ob_enqueue(e, &j, &ids[n], NULL));
        atomic_fetch_add(&acked, 1);
    }
    return NULL;
}

TEST(cancel_races_with_workers_without_loss)
{
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(test_url("c.db"), NULL, &e));
    ASSERT_OK(ob_engine_register(e, "slow", count_slow, NULL, NULL));
    ob_pool *pool = h_pool(e, 2, -1, NULL);
    pthread_t a, b;
    pthread_create(&a, NULL, slow_producer, e);
    pthread_create(&b, NULL, canceller, e);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    int completed = 0, cancelled = 0;
    for (int n = 0; n < 2000; n++) {
        ob_job *j = h_wait(e, &ids[n]);
        completed += j->state == OB_COMPLETED;
        cancelled += j->state == OB_CANCELLED;
        ASSERT(j->state == OB_COMPLETED || j->state == OB_CANCELLED);
        if (j->state == OB_COMPLETED)
            ASSERT_EQ(atomic_load(&runs[n]), 1);
        else
            ASSERT(atomic_load(&runs[n]) <= 1);
        ob_job_free(j);
    }
    printf("  %d completed, %d cancelled\n", completed, cancelled);
    ASSERT_EQ(completed + cancelled, 2000);
    ASSERT(cancelled > 0);
    ob_pool_stop(pool, 1000);
    ob_engine_close(e);
}

#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#ifdef T_TSAN
enum { DLQ = 5000 }; /* ThreadSanitizer runs ten times slower */
#else
enum { DLQ = 50000 };
#endif

static atomic_int dlq_acked;
static atomic_bool dlq_stop;
static _Atomic int64_t enqueue_worst_us;

static void dlq_acked_fn(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)arg, (void)id, (void)existed;
    ASSERT_OK(rc);
    atomic_fetch_add(&dlq_acked, 1);
}

static void discard(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    ob_ctx_discard(ctx, "dead letter");
}

static void count_state(void *arg, ob_state st, const char *kind, const char *queue, int64_t n)
{
    (void)kind;
    if (st == OB_DISCARDED && strcmp(queue, "dlq") == 0)
        *(int64_t *)arg += n;
}

static int64_t discarded(ob_engine *e)
{
    int64_t n = 0;
    ASSERT_OK(ob_job_counts(e, count_state, &n));
    return n;
}

/* Enqueues one job at a time for as long as the bulk work goes on. */
static void *steady_producer(void *arg)
{
    ob_engine *e = arg;
    while (!atomic_load(&dlq_stop)) {
        ob_new_job j = {.kind = "script", .queue = "other", .payload = "done", .payload_len = 5};
        ob_id id;
        int64_t t0 = obi_mono_us();
        ASSERT_OK(ob_enqueue(e, &j, &id, NULL));
        int64_t us = obi_mono_us() - t0;
        if (us > atomic_load(&enqueue_worst_us))
            atomic_store(&enqueue_worst_us, us);
        h_sleep_ms(2);
    }
    return NULL;
}

/* The slowest commit observed since `before` (the histogram's upper bound). */
static double worst_commit(const ob_histogram *before, const ob_histogram *after)
{
    double worst = 0;
    for (int i = 0; i < OB_HIST_BUCKETS; i++)
        if (after->counts[i] > before->counts[i])
            worst = after->bounds[i];
    return worst;
}

TEST(a_bulk_retry_of_a_large_dead_letter_queue_keeps_commits_short)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ASSERT_OK(ob_engine_register(e, "dead", discard, NULL, NULL));
    for (int i = 0; i < DLQ; i++) {
        ob_new_job j = {.kind = "dead", .queue = "dlq"};
        int rc;
        while ((rc = ob_enqueue_async(e, &j, dlq_acked_fn, NULL)) == OB_EBUSY)
            h_sleep_ms(1);
        ASSERT_OK(rc);
    }
    while (atomic_load(&dlq_acked) < DLQ)
        h_sleep_ms(10);
    ob_pool *p = h_pool(e, 4, -1, "dlq");
    for (int i = 0; i < 600 && discarded(e) < DLQ; i++)
        h_sleep_ms(100);
    ASSERT_EQ(discarded(e), DLQ);
    ob_pool_stop(p, 1000); /* what is retried stays available */

    ob_engine_stats before, after;
    ob_engine_stats_get(e, &before);
    pthread_t steady;
    pthread_create(&steady, NULL, steady_producer, e);
    ob_list_filter f = {.states = 1u << OB_DISCARDED, .queue = "dlq"};
    char cursor[OB_CURSOR_MAX] = "";
    int calls = 0, changed = 0;
    int64_t t0 = ob_mono_ms();
    do {
        ob_bulk_result r;
        f.cursor = cursor;
        ASSERT_OK(ob_jobs_bulk(e, OB_BULK_RETRY, &f, NULL, 0, &r));
        changed += r.changed;
        memcpy(cursor, r.next_cursor, sizeof cursor);
        calls++;
    } while (cursor[0] && calls < DLQ / 1000 + 5);
    int64_t ms = ob_mono_ms() - t0;
    atomic_store(&dlq_stop, true);
    pthread_join(steady, NULL);
    ob_engine_stats_get(e, &after);
    double worst = worst_commit(&before.commit_seconds, &after.commit_seconds);
    printf("  %d retried in %d calls, %lld ms; the slowest commit <= %.3f s, the slowest "
           "enqueue beside it %.1f ms\n", changed, calls, (long long)ms, worst,
           (double)atomic_load(&enqueue_worst_us) / 1000);
    ASSERT_EQ(changed, DLQ);
    ASSERT_EQ(discarded(e), 0);
    ASSERT(worst <= 1.0);                               /* no commit stalls behind it */
    ASSERT(atomic_load(&enqueue_worst_us) < 2000000);   /* nor does an enqueue */
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(a_bulk_retry_of_a_large_dead_letter_queue_keeps_commits_short),
    T(every_job_completes_exactly_once),
    T(cancel_races_with_workers_without_loss),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
