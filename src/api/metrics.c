/*
 * metrics.c - GET /metrics, Prometheus text exposition format 0.0.4:
 *
 *   outbox_jobs{state,kind,queue}                     gauge (the store's counters, cached)
 *   outbox_jobs_enqueued_total{kind,queue}            counter
 *   outbox_jobs_finished_total{kind,queue,state}      counter
 *   outbox_job_start_delay_seconds                    histogram (due -> handler start)
 *   outbox_job_run_seconds                            histogram (per attempt)
 *   outbox_store_commits_total                        counter
 *   outbox_store_commit_seconds                       histogram (fsync included)
 *   outbox_store_commit_ops                           histogram (operations per commit)
 *   outbox_http_responses_total{code}                 counter
 *   outbox_jobs_oldest_due_seconds{queue}             gauge (an index seek: "mail is stuck")
 *   outbox_http_request_duration_seconds              histogram
 *   outbox_mail_recipients_total{state}               counter (each attempt's replies)
 *   outbox_callback_failures_total                    counter
 *   outbox_build_info{version}                        gauge, 1
 *   process_cpu_seconds_total, process_resident_memory_bytes,
 *   process_virtual_memory_bytes, process_open_fds, process_max_fds,
 *   process_start_time_seconds                        the usual process metrics
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
#include <dirent.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/http_request.h"
#include "outbox/util.h"

#define QUEUES_MAX 240 /* (kind, queue) pairs with series of their own */
#define KINDS_MAX 16   /* kinds with an "_other" series */
#define MAX_SERIES (QUEUES_MAX + KINDS_MAX)
#define COUNTS_TTL_MS 1000

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
    struct row *rows;  /* the last store read (refresh_counts), under mu */
    int nrows;
    ob_queue_info *queues; /* ... and its queues (the oldest due job) */
    size_t nq;
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

/* The outbox_jobs gauges, from the store's counters: one row per (kind,
 * queue), with the same cap as the counters (pairs past it summed under
 * their kind's "_other"), every state counted (0 included: a series that
 * comes and goes breaks graphs and absent() alerts). */
typedef struct row {
    char kind[OB_NAME_MAX + 1], queue[OB_NAME_MAX + 1];
    int64_t n[OB_STATE_MAX + 1];
} row;

typedef struct scan {
    row *rows; /* MAX_SERIES */
    int nrows, nown;
} scan;

/* The row of (kind, queue), made if there is room: its own, or its kind's
 * "_other". NULL when even that is full. */
static row *row_of(scan *sc, const char *kind, const char *queue)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < sc->nrows; i++)
            if (!strcmp(sc->rows[i].kind, kind) && !strcmp(sc->rows[i].queue, queue))
                return &sc->rows[i];
        bool own = pass == 0 && strcmp(queue, "_other") != 0;
        if ((own && sc->nown < QUEUES_MAX) || (!own && sc->nrows < MAX_SERIES)) {
            row *r = &sc->rows[sc->nrows++];
            sc->nown += own;
            snprintf(r->kind, sizeof r->kind, "%s", kind);
            snprintf(r->queue, sizeof r->queue, "%s", queue);
            return r;
        }
        queue = "_other";
    }
    return NULL;
}

static void count_row(void *arg, ob_state st, const char *kind, const char *queue, int64_t n)
{
    row *r = row_of(arg, kind, queue);
    if (r && st >= OB_STATE_MIN && st <= OB_STATE_MAX)
        r->n[st] += n;
}

/* Scan again when the last scan is older than COUNTS_TTL_MS; the scan
 * holds scan_mu only. Pairs the counters know and the store no longer
 * holds keep their rows, at 0. */
static void refresh_counts(metrics *m)
{
    pthread_mutex_lock(&m->scan_mu);
    pthread_mutex_lock(&m->mu);
    bool fresh = m->rows && ob_mono_ms() - m->counts_at <= COUNTS_TTL_MS;
    pthread_mutex_unlock(&m->mu);
    scan sc = {fresh ? NULL : calloc(MAX_SERIES, sizeof *sc.rows), 0, 0};
    ob_queue_info *qs = NULL;
    size_t nq = 0;
    if (sc.rows && ob_job_counts(m->a->o.engine, count_row, &sc) == 0 &&
        ob_queue_list(m->a->o.engine, &qs, &nq) == 0) {
        pthread_mutex_lock(&m->mu);
        for (int i = 0; i < m->n; i++)
            row_of(&sc, m->s[i].kind, m->s[i].queue);
        free(m->rows);
        m->rows = sc.rows;
        m->nrows = sc.nrows;
        m->counts_at = ob_mono_ms();
        free(m->queues);
        m->queues = qs;
        m->nq = nq < QUEUES_MAX ? nq : QUEUES_MAX;
        qs = NULL;
        sc.rows = NULL;
        pthread_mutex_unlock(&m->mu);
    }
    free(sc.rows);
    free(qs);
    pthread_mutex_unlock(&m->scan_mu);
}

/* The gauges of the last scan. Under mu. */
static void put_counts(metrics *m, text *t)
{
    put(t, "# HELP outbox_jobs Jobs in the store by state, kind and queue.\n"
           "# TYPE outbox_jobs gauge\n");
    for (int i = 0; i < m->nrows; i++)
        for (int st = OB_STATE_MIN; st <= OB_STATE_MAX; st++)
            put(t, "outbox_jobs{state=\"%s\",kind=\"%s\",queue=\"%s\"} %lld\n",
                ob_state_name((ob_state)st), m->rows[i].kind, m->rows[i].queue,
                (long long)m->rows[i].n[st]);
    put(t, "# HELP outbox_jobs_oldest_due_seconds Seconds the oldest available job has waited "
           "to start (0: none), by queue.\n"
           "# TYPE outbox_jobs_oldest_due_seconds gauge\n");
    int64_t now = ob_now_ms();
    for (size_t i = 0; i < m->nq; i++) {
        int64_t due = m->queues[i].oldest_due_ms;
        put(t, "outbox_jobs_oldest_due_seconds{queue=\"%s\"} %.3f\n", m->queues[i].name,
            due && due < now ? (double)(now - due) / 1000.0 : 0.0);
    }
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

/* The standard process_* metrics of Prometheus client libraries, from
 * /proc: CPU, memory, file descriptors, start time. */
static void process_metrics(text *t)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        put(t, "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
               "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n",
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
    unsigned long long vsize = 0, rss = 0, start = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    char buf[1024];
    if (f && fgets(buf, sizeof buf, f)) {
        const char *p = strrchr(buf, ')'); /* the command may hold spaces */
        /* fields after ")": 3 state ... 22 starttime 23 vsize 24 rss */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                               "%*d %*d %*d %llu %llu %llu", &start, &vsize, &rss) == 3) {
            put(t, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                   "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
                   "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
                vsize, rss * (unsigned long long)page);
        }
    }
    if (f)
        fclose(f);
    unsigned long long btime = 0;
    if ((f = fopen("/proc/stat", "r"))) {
        while (fgets(buf, sizeof buf, f))
            if (sscanf(buf, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    if (btime && start && ticks > 0)
        put(t, "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
               "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
            (double)btime + (double)start / (double)ticks);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        fds += e->d_name[0] != '.';
    if (d) {
        closedir(d);
        put(t, "# HELP process_open_fds Number of open file descriptors.\n"
               "# TYPE process_open_fds gauge\nprocess_open_fds %d\n", fds - 1 /* ours */);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        put(t, "# HELP process_max_fds Maximum number of open file descriptors.\n"
               "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
            (unsigned long long)rl.rlim_cur);
}

static void get_metrics(ob_http_req *r, void *arg)
{
    api *a = arg;
    metrics *m = a->metrics;
    text t = {0};

    refresh_counts(m);
    pthread_mutex_lock(&m->mu);
    put_counts(m, &t);
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
    ob_histogram hd;
    ob_http_durations(m->srv, &hd);
    histogram(&t, "outbox_http_request_duration_seconds",
              "Seconds from a request's headers to its response done.", &hd);
    uint64_t rc[OB_RCPT_STATES] = {0}, added = 0, failed = 0;
    if (m->a->o.mailer) {
        ob_mailer_outcomes(m->a->o.mailer, rc);
        ob_mailer_suppressed(m->a->o.mailer, &added, &failed);
    }
    put(&t, "# HELP outbox_mail_recipients_total Recipients' outcomes of delivery attempts"
            " (suppressed: skipped, on the suppression list).\n"
            "# TYPE outbox_mail_recipients_total counter\n");
    for (int st = OB_RCPT_DELIVERED; st < OB_RCPT_STATES; st++)
        put(&t, "outbox_mail_recipients_total{state=\"%s\"} %llu\n",
            ob_rcpt_state_name((ob_rcpt_state)st), (unsigned long long)rc[st]);
    put(&t, "# HELP outbox_mail_suppressions_added_total Hard bounces put on the suppression"
            " list (result=failed: a store error kept one off it).\n"
            "# TYPE outbox_mail_suppressions_added_total counter\n"
            "outbox_mail_suppressions_added_total{result=\"ok\"} %llu\n"
            "outbox_mail_suppressions_added_total{result=\"failed\"} %llu\n",
        (unsigned long long)added, (unsigned long long)failed);
    put(&t, "# HELP outbox_callback_failures_total Callback attempts that did not deliver.\n"
            "# TYPE outbox_callback_failures_total counter\noutbox_callback_failures_total %llu\n",
        (unsigned long long)hr_callback_failures());
    put(&t, "# HELP outbox_build_info The running outboxd.\n# TYPE outbox_build_info gauge\n"
            "outbox_build_info{version=\"%s\"} 1\n", OB_VERSION);
    process_metrics(&t);
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
    free(m->rows);
    free(m->queues);
    free(m->s);
    free(m);
    a->metrics = NULL;
}
