/*
 * helpers.c - see helpers.h.
 */
#include <pthread.h>
#include <time.h>

#include "helpers.h"
#include "jobs/jobs.h" /* h_counts_agree: the engine's store */

h_start h_log[H_LOG_MAX];
atomic_int h_nlog;
pthread_mutex_t h_log_mu = PTHREAD_MUTEX_INITIALIZER;
atomic_int h_cancel_seen;
atomic_int h_second_answer_rc = 1;
_Atomic int64_t h_cancel_at;

void h_sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static bool cmd(const char *payload, const char *name, const char **arg)
{
    size_t n = strlen(name);
    if (strncmp(payload, name, n) != 0 || (payload[n] != '\0' && payload[n] != ':'))
        return false;
    *arg = payload[n] == ':' ? payload + n + 1 : NULL;
    return true;
}

void h_script(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *j = ob_ctx_job(ctx);
    const char *p = (const char *)j->payload, *a;
    pthread_mutex_lock(&h_log_mu);
    int k = atomic_load(&h_nlog);
    if (k < H_LOG_MAX) {
        h_start *s = &h_log[k];
        s->id = j->id;
        s->attempt = j->attempt;
        s->priority = j->priority;
        s->at_ms = ob_now_ms();
        snprintf(s->payload, sizeof s->payload, "%s", p);
        atomic_store(&h_nlog, k + 1);
    }
    pthread_mutex_unlock(&h_log_mu);
    char why[64];
    if (cmd(p, "done", &a))
        ob_ctx_done(ctx, a);
    else if (cmd(p, "retry", &a))
        ob_ctx_retry(ctx, a ? atoll(a) : -1, "asked to retry");
    else if (cmd(p, "fail-until", &a)) {
        if (j->attempt < atoi(a)) {
            snprintf(why, sizeof why, "failure %d", j->attempt);
            ob_ctx_retry(ctx, 0, why);
        } else
            ob_ctx_done(ctx, "{\"ok\":true}");
    } else if (cmd(p, "discard", &a))
        ob_ctx_discard(ctx, "bad input");
    else if (cmd(p, "snooze-once", &a)) {
        if (h_starts(&j->id) == 1)
            ob_ctx_snooze(ctx, atoll(a));
        else
            ob_ctx_done(ctx, NULL);
    } else if (cmd(p, "sleep", &a)) {
        int c = ob_ctx_sleep(ctx, atoll(a));
        atomic_store(&h_cancel_seen, c);
        if (c)
            ob_ctx_retry(ctx, -1, "stopped early");
        else
            ob_ctx_done(ctx, NULL);
    } else if (cmd(p, "cancel-first", &a) && j->attempt > 1) {
        ob_ctx_done(ctx, NULL);
    } else if (cmd(p, "wait-cancel", &a) || cmd(p, "cancel-first", &a)) {
        int c;
        while (!(c = ob_ctx_sleep(ctx, 60000))) {
        }
        atomic_store(&h_cancel_seen, c);
        atomic_store(&h_cancel_at, ob_now_ms());
        snprintf(why, sizeof why, "cancelled: %d", c);
        ob_ctx_retry(ctx, -1, why);
    } else if (cmd(p, "hang-first", &a)) {
        if (j->attempt == 1)
            h_sleep_ms(atoll(a));
        ob_ctx_done(ctx, NULL);
    } else if (cmd(p, "noanswer", &a)) {
        /* nothing: a bug the engine must not take for success */
    } else if (cmd(p, "twice", &a)) {
        ob_ctx_done(ctx, NULL);
        atomic_store(&h_second_answer_rc, ob_ctx_done(ctx, NULL));
    } else
        ob_ctx_discard(ctx, "unknown script command");
}

void h_fast_opts(ob_engine_opts *o)
{
    ob_engine_opts_init(o);
    o->kind_defaults.backoff.base_ms = 10;
    o->kind_defaults.backoff.max_ms = 50;
    o->kind_defaults.max_attempts = 5;
    o->kind_defaults.timeout_ms = 30000;
}

ob_engine *h_open(const char *name, const ob_engine_opts *o)
{
    ob_engine_opts def;
    if (!o) {
        h_fast_opts(&def);
        o = &def;
    }
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(test_url(name), o, &e));
    ASSERT_OK(ob_engine_register(e, "script", h_script, NULL, NULL));
    return e;
}

ob_id h_add_job(ob_engine *e, ob_new_job *j)
{
    ob_id id;
    if (!j->kind)
        j->kind = "script";
    ASSERT_OK(ob_enqueue(e, j, &id, NULL));
    return id;
}

ob_id h_add(ob_engine *e, const char *payload)
{
    ob_new_job j = {.kind = "script", .payload = payload, .payload_len = strlen(payload) + 1};
    return h_add_job(e, &j);
}

ob_job *h_wait(ob_engine *e, const ob_id *id)
{
    ob_job *j = NULL;
    int rc = ob_job_wait(e, id, 30000, &j);
    if (rc) {
        char s[OB_ID_STRLEN + 1];
        test_fail(__FILE__, __LINE__, "wait %s: %s (state %s)", ob_id_format(id, s),
                  ob_strerror(rc), j ? ob_state_name(j->state) : "-");
    }
    return j;
}

ob_job *h_get(ob_engine *e, const ob_id *id)
{
    ob_job *j = NULL;
    ASSERT_OK(ob_job_get(e, id, &j));
    return j;
}

int h_starts(const ob_id *id)
{
    pthread_mutex_lock(&h_log_mu);
    int n = 0, total = atomic_load(&h_nlog);
    for (int i = 0; i < total && i < H_LOG_MAX; i++)
        n += memcmp(h_log[i].id.b, id->b, 16) == 0;
    pthread_mutex_unlock(&h_log_mu);
    return n;
}

ob_pool *h_pool(ob_engine *e, int workers, int prefetch, const char *queue)
{
    ob_pool_opts po;
    ob_pool_opts_init(&po);
    po.workers = workers;
    po.prefetch = prefetch;
    po.queues[0] = queue;
    ob_pool *p = NULL;
    ASSERT_OK(ob_pool_start(e, &po, &p));
    return p;
}

void h_counts_agree(ob_engine *e)
{
    if (!obi_store_counts_agree(e->st))
        test_fail(__FILE__, __LINE__, "the store's counters differ from its jobs (N1; see above)");
}
