/*
 * metrics.c - GET /metrics, Prometheus text exposition format 0.0.4:
 *
 *   outbox_jobs{state,kind,queue}                     gauge (a store scan, cached)
 *   outbox_jobs_enqueued_total{kind,queue}            counter
 *   outbox_jobs_finished_total{kind,queue,state}      counter
 *   outbox_job_start_delay_seconds                    histogram (due -> handler start)
 *   outbox_job_run_seconds                            histogram (per attempt)
 *   outbox_store_commits_total                        counter
 *   outbox_store_commit_seconds                       histogram (fsync included)
 *   outbox_store_commit_ops                           histogram (operations per commit)
 *   outbox_http_responses_total{code}                 counter
 *
 * Counters by kind and queue are fed by engine events. Queue names come
 * from clients, so the label sets are capped: the first QUEUES_MAX (kind,
 * queue) pairs get series of their own; every later one counts under
 * queue="_other" of its kind (kinds are bounded: only registered ones can
 * be enqueued), in the counters and in the outbox_jobs gauge alike.
 *
 * Locks: `mu` guards the counters; the commit thread takes it for each
 * event, so it is never held across a store scan. The gauge's scan runs
 * under `scan_mu` alone (one scan at a time), and its text is swapped in
 * under `mu`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "base/base.h"

#define QUEUES_MAX 240 /* (kind, queue) pairs with series of their own */
#define KINDS_MAX 16   /* kinds with an "_other" series */
#define MAX_SERIES (QUEUES_MAX + KINDS_MAX)
#define COUNTS_TTL_MS 10000

typedef struct series {
    char kind[OB_NAME_MAX + 1], queue[OB_NAME_MAX + 1];
    uint64_t enqueued;
    uint64_t finished[OB_STATE_MAX + 1];
} series;

struct metrics {
    api *a;
    ob_http_server *srv;
    pthread_mutex_t mu, scan_mu;
    series *s;
    int n, nqueues; /* series, and those of a pair of their own */
    ob_subscription *sub;
    char *counts;      /* the outbox_jobs block, cached */
    size_t counts_len;
    int64_t counts_at; /* monotonic ms */
};

/* A growing text buffer. */
typedef struct text {
    char *p;
    size_t n, cap;
    bool oom;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if (t->p && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap <= t->n + (size_t)k)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static series *lookup(metrics *m, const char *kind, const char *queue)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->s[i].kind, kind) && !strcmp(m->s[i].queue, queue))
            return &m->s[i];
    return NULL;
}

static series *add(metrics *m, const char *kind, const char *queue)
{
    if (m->n == MAX_SERIES)
        return NULL;
    series *s = &m->s[m->n++];
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    snprintf(s->queue, sizeof s->queue, "%s", queue);
    return s;
}

/* The series of (kind, queue): its own while there is room, else its
 * kind's "_other". Under mu. */
static series *find(metrics *m, const char *kind, const char *queue)
{
    series *s = lookup(m, kind, queue);
    if (s)
        return s;
    if (m->nqueues < QUEUES_MAX && strcmp(queue, "_other") != 0) {
        m->nqueues++;
        return add(m, kind, queue);
    }
    return (s = lookup(m, kind, "_other")) ? s : add(m, kind, "_other");
}

static void on_event(void *arg, const ob_event *ev)
{
    metrics *m = arg;
    bool enq = ev->from == 0, fin = ob_state_is_final(ev->state);
    if (!enq && !fin)
        return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, ev->kind, ev->queue);
    if (s && enq)
        s->enqueued++;
    if (s && fin)
        s->finished[ev->state]++;
    pthread_mutex_unlock(&m->mu);
}

/* The outbox_jobs gauge, built from a store scan: the same cap as the
 * counters, pairs past it summed under their kind's "_other". */
typedef struct scan {
    text t;
    char (*pairs)[2][OB_NAME_MAX + 1];
    int npairs;
    struct {
        char kind[OB_NAME_MAX + 1];
        int64_t n[OB_STATE_MAX + 1];
    } other[KINDS_MAX];
    int nother;
} scan;

static void count_row(void *arg, ob_state st, const char *kind, const char *queue, int64_t n)
{
    scan *sc = arg;
    int i = 0;
    while (i < sc->npairs && (strcmp(sc->pairs[i][0], kind) || strcmp(sc->pairs[i][1], queue)))
        i++;
    if (i == sc->npairs && sc->npairs < QUEUES_MAX) {
        snprintf(sc->pairs[i][0], OB_NAME_MAX + 1, "%s", kind);
        snprintf(sc->pairs[i][1], OB_NAME_MAX + 1, "%s", queue);
        sc->npairs++;
    }
    if (i < sc->npairs) {
        put(&sc->t, "outbox_jobs{state=\"%s\",kind=\"%s\",queue=\"%s\"} %lld\n",
            ob_state_name(st), kind, queue, (long long)n);
        return;
    }
    int k = 0;
    while (k < sc->nother && strcmp(sc->other[k].kind, kind))
        k++;
    if (k == sc->nother && sc->nother < KINDS_MAX)
        snprintf(sc->other[sc->nother++].kind, OB_NAME_MAX + 1, "%s", kind);
    if (k < sc->nother)
        sc->other[k].n[st] += n;
}

/* The gauge's text, scanned again when older than COUNTS_TTL_MS; the scan
 * holds scan_mu only. */
static void refresh_counts(metrics *m)
{
    pthread_mutex_lock(&m->scan_mu);
    pthread_mutex_lock(&m->mu);
    bool fresh = m->counts && ob_mono_ms() - m->counts_at <= COUNTS_TTL_MS;
    pthread_mutex_unlock(&m->mu);
    scan *sc = fresh ? NULL : calloc(1, sizeof *sc);
    if (sc && (sc->pairs = calloc(QUEUES_MAX, sizeof *sc->pairs))) {
        put(&sc->t, "# HELP outbox_jobs Jobs in the store by state, kind and queue.\n"
                    "# TYPE outbox_jobs gauge\n");
        if (ob_job_counts(m->a->o.engine, count_row, sc) == 0) {
            for (int k = 0; k < sc->nother; k++)
                for (int st = OB_STATE_MIN; st <= OB_STATE_MAX; st++)
                    if (sc->other[k].n[st])
                        put(&sc->t, "outbox_jobs{state=\"%s\",kind=\"%s\",queue=\"_other\"} "
                                    "%lld\n", ob_state_name((ob_state)st), sc->other[k].kind,
                            (long long)sc->other[k].n[st]);
            if (!sc->t.oom) {
                pthread_mutex_lock(&m->mu);
                free(m->counts);
                m->counts = sc->t.p;
                m->counts_len = sc->t.n;
                m->counts_at = ob_mono_ms();
                sc->t.p = NULL;
                pthread_mutex_unlock(&m->mu);
            }
        }
    }
    if (sc) {
        free(sc->t.p);
        free(sc->pairs);
        free(sc);
    }
    pthread_mutex_unlock(&m->scan_mu);
}

static void histogram(text *t, const char *name, const char *help, const ob_histogram *h)
{
    put(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < OB_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        if (i == OB_HIST_BUCKETS - 1)
            put(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        else
            put(t, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    put(t, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static void get_metrics(ob_http_req *r, void *arg)
{
    api *a = arg;
    metrics *m = a->metrics;
    text t = {0};

    refresh_counts(m);
    pthread_mutex_lock(&m->mu);
    if (m->counts)
        put(&t, "%.*s", (int)m->counts_len, m->counts);
    put(&t, "# HELP outbox_jobs_enqueued_total Jobs enqueued.\n"
            "# TYPE outbox_jobs_enqueued_total counter\n");
    for (int i = 0; i < m->n; i++)
        put(&t, "outbox_jobs_enqueued_total{kind=\"%s\",queue=\"%s\"} %llu\n", m->s[i].kind,
            m->s[i].queue, (unsigned long long)m->s[i].enqueued);
    put(&t, "# HELP outbox_jobs_finished_total Jobs that reached a final state.\n"
            "# TYPE outbox_jobs_finished_total counter\n");
    for (int i = 0; i < m->n; i++)
        for (int st = OB_COMPLETED; st <= OB_CANCELLED; st++)
            if (m->s[i].finished[st])
                put(&t, "outbox_jobs_finished_total{kind=\"%s\",queue=\"%s\",state=\"%s\"} %llu\n",
                    m->s[i].kind, m->s[i].queue, ob_state_name(st),
                    (unsigned long long)m->s[i].finished[st]);
    pthread_mutex_unlock(&m->mu);

    ob_engine_stats es;
    ob_engine_stats_get(a->o.engine, &es);
    histogram(&t, "outbox_job_start_delay_seconds",
              "Seconds from a job being due to its handler starting.", &es.start_delay);
    histogram(&t, "outbox_job_run_seconds", "Seconds a handler ran, per attempt.", &es.run_seconds);
    put(&t, "# HELP outbox_store_commits_total Store transactions committed.\n"
            "# TYPE outbox_store_commits_total counter\noutbox_store_commits_total %llu\n",
        (unsigned long long)es.commits);
    histogram(&t, "outbox_store_commit_seconds", "Seconds per store commit, fsync included.",
              &es.commit_seconds);
    histogram(&t, "outbox_store_commit_ops",
              "Operations (enqueues, answers, ...) per store commit: the group-commit batch.",
              &es.batch_ops);
    put(&t, "# HELP outbox_jobs_unfinished Jobs not yet in a final state.\n"
            "# TYPE outbox_jobs_unfinished gauge\noutbox_jobs_unfinished %lld\n",
        (long long)es.unfinished);
    put(&t, "# HELP outbox_http_responses_total HTTP responses sent, by status code.\n"
            "# TYPE outbox_http_responses_total counter\n");
    for (int code = 100; code <= 599; code++) {
        uint64_t n = ob_http_status_count(m->srv, code);
        if (n)
            put(&t, "outbox_http_responses_total{code=\"%d\"} %llu\n", code, (unsigned long long)n);
    }
    if (t.oom)
        api_reply_rc(r, OB_ENOMEM, NULL);
    else
        ob_http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", t.p, t.n);
    free(t.p);
}

int metrics_new(api *a, ob_http_server *srv)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->s = calloc(MAX_SERIES, sizeof *m->s))) {
        free(m);
        return OB_ENOMEM;
    }
    m->a = a;
    m->srv = srv;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->scan_mu, NULL);
    a->metrics = m;
    int rc = ob_engine_subscribe(a->o.engine, on_event, m, &m->sub);
    if (!rc)
        rc = api_route(a, srv, "GET", "/metrics", get_metrics, 0);
    return rc;
}

void metrics_free(api *a)
{
    metrics *m = a->metrics;
    if (!m)
        return;
    ob_engine_unsubscribe(a->o.engine, m->sub);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->scan_mu);
    free(m->counts);
    free(m->s);
    free(m);
    a->metrics = NULL;
}
