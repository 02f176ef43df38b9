/*
 * bench_engine.c - the job engine against beanstalkd, measured in the same
 * run on the same machine (this machine is shared and noisy: read the
 * ratios, not the absolute numbers).
 *
 * Peers, started by this program on free 127.0.0.1 ports and driven over
 * their protocol by the same threads that drive outbox:
 *   beanstalkd -b DIR -f0   binlog, fsync on every write: durable like us
 *   beanstalkd              no binlog: memory only, the speed to beat
 *
 * Measurements (each over --seconds after a short warm-up; rates are the
 * median of --rounds rounds, outbox and its peers measured back to back in
 * each round, so that a slow spell of the shared disk hits all of them):
 *   durable enqueue/s         1 and 16 producer threads, blocking calls
 *   life cycle/s              16 producers + 16 workers: enqueue, claim,
 *                             no-op handler, complete (counted at commit)
 *   start latency p50/p99     enqueue -> handler start, idle queue
 *   1M queued vs small        enqueue/s (16 producers) and claim/s (drain
 *                             of 30,000 jobs by 16 workers: claim, no-op,
 *                             complete), and RSS
 *   flow control              the life cycle with no limits, with a cap, a
 *                             rate and a key rate set but not binding, and
 *                             with a cap of 16 for 16 workers; a rate of
 *                             1000/s on a backlog: starts per second
 *
 *   bench_engine [--seconds S] [--rounds R] [--million N] [--dir DIR] [--only WHAT]
 *   bench_engine --store postgres://... [--nodes N] [--only enqueue,life,latency]
 *
 * With --store, outbox runs on that PostgreSQL, as N engines (nodes, each
 * with its own connections, heartbeat and LISTEN) sharing a fresh schema;
 * producers and workers are spread over the nodes. Its peers on PostgreSQL
 * (graphile-worker, pg-boss) are run beside it by bench/engine --store, which
 * reads the "result" lines this prints.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "beanstalk.h"
#include "bench.h"
#include "outbox/jobs.h"


double seconds = 2.0;
int rounds = 3;
long million = 1000000;
char dir[4096];
static const char *only;
static const char *store_url; /* --store: PostgreSQL instead of SQLite files */
static int nodes = 1;
static int rate_seconds = 10; /* --rate-seconds: the rate accuracy window */
#define NODES_MAX 8
char payload[101];

atomic_int stop;
static atomic_long done_count;

/* ---- time ---- */

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static long self_rss_kib(void) { return bk_rss_kib(getpid()); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    double t[16];
    memcpy(t, v, sizeof *v * (size_t)n);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- running N threads for a measured window ---- */


/* Run n threads of fn, wait a warm-up, count `counter` (or the threads'
 * own counters when NULL) over the window, stop them; returns per second. */
double measure(int n, thread_fn fn, void *ctx, atomic_long *counter)
{
    pthread_t th[64];
    worker_arg a[64];
    atomic_store(&stop, 0);
    for (int i = 0; i < n; i++) {
        a[i].ctx = ctx;
        a[i].idx = i;
        atomic_init(&a[i].count, 0);
        pthread_create(&th[i], NULL, fn, &a[i]);
    }
    sleep_s(0.5);
    long c0 = 0, c1 = 0;
    for (int i = 0; i < n && !counter; i++)
        c0 += atomic_load(&a[i].count);
    if (counter)
        c0 = atomic_load(counter);
    double t0 = now_s();
    sleep_s(seconds);
    for (int i = 0; i < n && !counter; i++)
        c1 += atomic_load(&a[i].count);
    if (counter)
        c1 = atomic_load(counter);
    double t1 = now_s();
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    return (double)(c1 - c0) / (t1 - t0);
}

/* ---- outbox ---- */

static void noop(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    ob_ctx_done(ctx, NULL);
}

static void count_completed(void *arg, const ob_event *ev)
{
    (void)arg;
    if (ev->state == OB_COMPLETED)
        atomic_fetch_add(&done_count, 1);
}

/* A new, empty schema on the --store server for `name`; its URL. */
static void fresh_schema(const char *name, char *url, size_t cap)
{
    char schema[64], q[256];
    snprintf(schema, sizeof schema, "bench_%.*s", (int)strcspn(name, "."), name);
    PGconn *c = PQconnectdb(store_url);
    snprintf(q, sizeof q, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS %s CASCADE;"
                          " CREATE SCHEMA %s", schema, schema);
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s: %s", q, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
    snprintf(url, cap, "%s%coptions=-csearch_path%%3D%s", store_url,
             strchr(store_url, '?') ? '&' : '?', schema);
}

static ob_engine *open_engine(const char *url)
{
    ob_engine_opts o;
    ob_engine_opts_init(&o);
    o.max_jobs = 100 * 1000 * 1000;
    ob_engine *e;
    int rc = ob_engine_open(url, &o, &e);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", url, ob_strerror(rc));
        exit(1);
    }
    ob_engine_register(e, "noop", noop, NULL, NULL);
    return e;
}

/* The engines under test: one on a store of its own, or --nodes sharing a
 * PostgreSQL schema. */
typedef struct cluster {
    int n;
    ob_engine *e[NODES_MAX];
    ob_subscription *sub[NODES_MAX];
    ob_pool *pool[NODES_MAX];
} cluster;

static ob_engine *fresh_engine(const char *name, ob_subscription **sub);

static void cluster_open(cluster *c, const char *name, bool count)
{
    memset(c, 0, sizeof *c);
    if (!store_url) {
        c->n = 1;
        c->e[0] = fresh_engine(name, count ? &c->sub[0] : NULL);
        return;
    }
    char url[4400];
    fresh_schema(name, url, sizeof url);
    c->n = nodes;
    atomic_store(&done_count, 0);
    for (int i = 0; i < nodes; i++) {
        c->e[i] = open_engine(url);
        if (count)
            ob_engine_subscribe(c->e[i], count_completed, NULL, &c->sub[i]);
    }
}

static ob_pool *start_pool(ob_engine *e, int workers);

/* `workers` in all, spread over the nodes. */
static void cluster_pools(cluster *c, int workers)
{
    for (int i = 0; i < c->n; i++)
        c->pool[i] = start_pool(c->e[i], workers / c->n + (i < workers % c->n));
}

static void cluster_close(cluster *c)
{
    for (int i = 0; i < c->n; i++)
        ob_pool_stop(c->pool[i], 10000);
    for (int i = 0; i < c->n; i++) {
        ob_engine_unsubscribe(c->e[i], c->sub[i]);
        ob_engine_close(c->e[i]);
    }
}

static ob_engine *fresh_engine(const char *name, ob_subscription **sub)
{
    char path[4300], url[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const char *suffix[] = {"", "-wal", "-shm", ".lock"};
    for (int i = 0; i < 4; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    snprintf(url, sizeof url, "sqlite:%s", path);
    ob_engine *e = open_engine(url);
    atomic_store(&done_count, 0);
    if (sub)
        ob_engine_subscribe(e, count_completed, NULL, sub);
    return e;
}

static ob_new_job job(void)
{
    return (ob_new_job){.kind = "noop", .payload = payload, .payload_len = sizeof payload - 1};
}

static void *ob_producer(void *p)
{
    worker_arg *a = p;
    cluster *c = a->ctx;
    ob_engine *e = c->e[a->idx % c->n];
    ob_new_job j = job();
    while (!atomic_load(&stop)) {
        ob_id id;
        if (ob_enqueue(e, &j, &id, NULL) == 0)
            atomic_fetch_add(&a->count, 1);
    }
    return NULL;
}

static ob_pool *start_pool(ob_engine *e, int workers)
{
    ob_pool_opts po;
    ob_pool_opts_init(&po);
    po.workers = workers;
    ob_pool *p;
    if (ob_pool_start(e, &po, &p)) {
        fprintf(stderr, "pool start failed\n");
        exit(1);
    }
    return p;
}

static void batch_note(const cluster *c, const char *what)
{
    uint64_t ops = 0, commits = 0, us = 0, bus = 0;
    for (int i = 0; i < c->n; i++) {
        ob_engine_stats st;
        ob_engine_stats_get(c->e[i], &st);
        ops += st.ops, commits += st.commits, us += st.commit_us, bus += st.batch_us;
    }
    double n = (double)(commits ? commits : 1);
    printf("    outbox %-28s %8.1f ops/commit, %6.0f us/commit, %6.0f us/transaction\n", what,
           (double)ops / n, (double)us / n, (double)bus / n);
}

static double ours_enqueue(int producers)
{
    cluster c;
    cluster_open(&c, "enqueue.db", false);
    double r = measure(producers, ob_producer, &c, NULL);
    char what[64];
    snprintf(what, sizeof what, "enqueue, %d producer%s", producers, producers > 1 ? "s" : "");
    batch_note(&c, what);
    cluster_close(&c);
    return r;
}

static double ours_lifecycle(void)
{
    cluster c;
    cluster_open(&c, "life.db", true);
    cluster_pools(&c, WORKERS);
    double r = measure(PRODUCERS, ob_producer, &c, &done_count);
    batch_note(&c, "life cycle");
    cluster_close(&c);
    return r;
}

/* ---- flow control: limits that do not bind, a cap, a rate ---- */

enum { FLOW_NONE, FLOW_SET, FLOW_CAP };

static void set_queue(cluster *c, const ob_queue_settings *st, unsigned mask)
{
    ob_problem p;
    if (ob_queue_set(c->e[0], "default", st, mask, NULL, &p)) {
        fprintf(stderr, "ob_queue_set: %s: %s\n", p.field, p.message);
        exit(1);
    }
    if (c->n > 1)
        sleep_s(1.2); /* the other nodes read the settings at their refresh */
}

/* The life cycle with the queue unlimited (FLOW_NONE), with a cap, a rate
 * and a key rate set far above what it reaches (FLOW_SET), or with a cap
 * of as many jobs as there are workers (FLOW_CAP). */
static double ours_lifecycle_flow(int mode)
{
    cluster c;
    cluster_open(&c, "flow.db", true);
    ob_queue_settings st = {.concurrency = 100000, .rate_limit = 1000000, .rate_period_ms = 1000,
                            .key_rate_limit = 1000000, .key_rate_period_ms = 1000};
    if (mode == FLOW_SET)
        set_queue(&c, &st, OB_QUEUE_CONCURRENCY | OB_QUEUE_RATE | OB_QUEUE_KEY_RATE);
    st = (ob_queue_settings){.concurrency = WORKERS};
    if (mode == FLOW_CAP)
        set_queue(&c, &st, OB_QUEUE_CONCURRENCY);
    cluster_pools(&c, WORKERS);
    double r = measure(PRODUCERS, ob_producer, &c, &done_count);
    cluster_close(&c);
    return r;
}

#define RATE_SECS_MAX 120
static atomic_long starts[RATE_SECS_MAX];
static int64_t starts_t0; /* the second the count begins */
static atomic_long acked;

static void count_starts(void *arg, const ob_event *ev)
{
    (void)arg;
    int64_t s = ev->at_ms / 1000 - starts_t0;
    if (ev->state == OB_RUNNING && s >= 0 && s < RATE_SECS_MAX)
        atomic_fetch_add(&starts[s], 1);
}

static void acked_one(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)arg, (void)id, (void)existed;
    if (rc == 0)
        atomic_fetch_add(&acked, 1);
}

typedef struct rate_result {
    double mean;  /* starts a second, over the whole seconds */
    long most;    /* in any one second (aligned, as the limit counts) */
    int secs;
} rate_result;

/* A rate of `limit` a second on a backlog, every node's workers taking
 * from it for `secs` s: starts counted per second of the clock. */
static void rate_accuracy(int limit, int secs, rate_result *out)
{
    cluster c;
    cluster_open(&c, "rate.db", false);
    ob_queue_settings st = {.rate_limit = limit, .rate_period_ms = 1000};
    set_queue(&c, &st, OB_QUEUE_RATE);
    long want = (long)limit * (secs + 4);
    ob_new_job j = job();
    atomic_store(&acked, 0);
    for (long i = 0; i < want; i++)
        while (ob_enqueue_async(c.e[i % c.n], &j, acked_one, NULL) == OB_EBUSY)
            sleep_s(0.001);
    while (atomic_load(&acked) < want)
        sleep_s(0.01);
    for (int i = 0; i < RATE_SECS_MAX; i++)
        atomic_store(&starts[i], 0);
    ob_subscription *sub[NODES_MAX];
    starts_t0 = time(NULL) + 1;
    for (int i = 0; i < c.n; i++)
        ob_engine_subscribe(c.e[i], count_starts, NULL, &sub[i]);
    cluster_pools(&c, WORKERS);
    sleep_s(secs + 2.2);
    for (int i = 0; i < c.n; i++)
        ob_pool_stop(c.pool[i], 10000), c.pool[i] = NULL;
    for (int i = 0; i < c.n; i++)
        ob_engine_unsubscribe(c.e[i], sub[i]);
    long sum = 0;
    out->most = 0;
    for (int s = 1; s <= secs; s++) { /* second 0 may be partial */
        long n = atomic_load(&starts[s]);
        sum += n;
        if (n > out->most)
            out->most = n;
    }
    out->mean = (double)sum / secs;
    out->secs = secs;
    cluster_close(&c);
}

static void flow_figures(void)
{
    double none[16], set[16], cap[16];
    for (int r = 0; r < rounds; r++) {
        fprintf(stderr, "  round %d/%d: flow control\n", r + 1, rounds);
        none[r] = ours_lifecycle_flow(FLOW_NONE);
        set[r] = ours_lifecycle_flow(FLOW_SET);
        cap[r] = ours_lifecycle_flow(FLOW_CAP);
    }
    fprintf(stderr, "  rate accuracy, %d s\n", rate_seconds);
    rate_result rr;
    rate_accuracy(1000, rate_seconds, &rr);
    double n = median(none, rounds), s = median(set, rounds), k = median(cap, rounds);
    printf("\nflow control (%d node%s; life cycle: %d producers + %d workers, medians of %d):\n",
           nodes, nodes > 1 ? "s" : "", PRODUCERS, WORKERS, rounds);
    printf("| %-44s | %12s | %9s |\n", "figure", "jobs/s", "vs none");
    printf("|%s|%s|%s|\n", "----------------------------------------------", "--------------",
           "-----------");
    printf("| %-44s | %12.0f | %9s |\n", "life cycle, no limits", n, "1.00x");
    printf("| %-44s | %12.0f | %8.2fx |\n", "life cycle, cap + rate + key rate not binding", s,
           s / n);
    printf("| %-44s | %12.0f | %8.2fx |\n", "life cycle, cap 16 with 16 workers", k, k / n);
    printf("| %-44s | %12.1f | %+8.2f%% |\n", "rate 1000/s: starts a second (mean)", rr.mean,
           100 * (rr.mean - 1000) / 1000);
    printf("| %-44s | %12ld | %9s |\n", "rate 1000/s: most starts in one second", rr.most,
           rr.most <= 1000 ? "<= limit" : "OVER");
    printf("targets:\n  limits set, not binding: cost <= 10%%: %.1f%%  %s\n"
           "  cap 16, 16 workers: within 10%% of none: %.1f%%  %s\n"
           "  rate accuracy within 2%% over %d s: %+.2f%%, never over: %s\n",
           100 * (1 - s / n), s >= 0.9 * n ? "met" : "MISSED", 100 * (1 - k / n),
           k >= 0.9 * n ? "met" : "MISSED", rr.secs, 100 * (rr.mean - 1000) / 1000,
           rr.most <= 1000 && rr.mean >= 980 && rr.mean <= 1020 ? "met" : "MISSED");
}

static pthread_mutex_t lat_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lat_cv = PTHREAD_COND_INITIALIZER;
static int64_t lat_started;

void mark_started(void)
{
    int64_t t = now_us();
    pthread_mutex_lock(&lat_mu);
    lat_started = t;
    pthread_cond_signal(&lat_cv);
    pthread_mutex_unlock(&lat_mu);
}

static void mark_start(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    mark_started();
    ob_ctx_done(ctx, NULL);
}

int64_t wait_started(void)
{
    pthread_mutex_lock(&lat_mu);
    while (!lat_started)
        pthread_cond_wait(&lat_cv, &lat_mu);
    int64_t t = lat_started;
    lat_started = 0;
    pthread_mutex_unlock(&lat_mu);
    return t;
}

void percentiles(int64_t *v, int n, double *p50, double *p99)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    *p50 = (double)v[n / 2] / 1000.0;
    *p99 = (double)v[n * 99 / 100] / 1000.0;
}

/* Enqueue on the nodes in turn; the job starts on whichever is free. */
static void ours_latency(double *p50, double *p99)
{
    cluster c;
    cluster_open(&c, "latency.db", false);
    for (int i = 0; i < c.n; i++)
        ob_engine_register(c.e[i], "mark", mark_start, NULL, NULL);
    cluster_pools(&c, 4 * c.n);
    static int64_t lat[LAT_SAMPLES];
    ob_new_job j = job();
    j.kind = "mark";
    for (int i = 0; i < LAT_SAMPLES; i++) {
        int64_t t0 = now_us();
        ob_id id;
        ob_enqueue(c.e[i % c.n], &j, &id, NULL);
        lat[i] = wait_started() - t0;
        sleep_s(0.001); /* idle between jobs */
    }
    percentiles(lat, LAT_SAMPLES, p50, p99);
    cluster_close(&c);
}

static void fill_done(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)id, (void)existed;
    if (rc == 0)
        atomic_fetch_add((atomic_long *)arg, 1);
}

/* Enqueue n jobs as fast as the engine takes them (async, 4 threads). */
typedef struct filler {
    ob_engine *e;
    long n;
    atomic_long issued, acked;
} filler;

static void *fill_thread(void *p)
{
    filler *f = p;
    ob_new_job j = job();
    while (atomic_fetch_add(&f->issued, 1) < f->n) {
        while (ob_enqueue_async(f->e, &j, fill_done, &f->acked) == OB_EBUSY)
            sleep_s(0.0002);
    }
    return NULL;
}

static void fill(ob_engine *e, long n, const char *label)
{
    filler f = {.e = e, .n = n};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, fill_thread, &f);
    double t0 = now_s(), last = t0;
    while (atomic_load(&f.acked) < n) {
        sleep_s(0.05);
        if (now_s() - last >= 1.0 && n >= 100000) {
            last = now_s();
            fprintf(stderr, "\r    %s: %ld / %ld queued (%.0f/s)   ", label, atomic_load(&f.acked),
                    n, (double)atomic_load(&f.acked) / (last - t0));
        }
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    if (n >= 100000)
        fprintf(stderr, "\r    %s: %ld queued in %.1f s (%.0f/s)          \n", label, n,
                now_s() - t0, (double)n / (now_s() - t0));
}

/* Time 16 workers take to complete DRAIN jobs from e. */
static double drain_rate(ob_engine *e)
{
    long start = atomic_load(&done_count);
    double t0 = now_s();
    ob_pool *p = start_pool(e, WORKERS);
    while (atomic_load(&done_count) - start < DRAIN)
        sleep_s(0.001);
    double t = now_s() - t0;
    ob_pool_stop(p, 10000);
    return DRAIN / t;
}


static long self_hwm_kib(void)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* The large queue is filled once; then each round measures a fresh small
 * store and the large one back to back (enqueue for the window, then a
 * drain of DRAIN jobs: claim, no-op, complete), and the medians are kept. */
static void ours_million(million_result *r)
{
    ob_subscription *big_sub;
    ob_engine *big = fresh_engine("million.db", &big_sub);
    fill(big, million, "outbox");
    double ee[16], ef[16], ce[16], cf[16];
    for (int k = 0; k < rounds; k++) {
        fprintf(stderr, "  round %d/%d: small queue vs %ldk queued\n", k + 1, rounds, million / 1000);
        ob_subscription *sub;
        ob_engine *small = fresh_engine("small.db", &sub);
        cluster one = {.n = 1, .e = {small}}, bigc = {.n = 1, .e = {big}};
        ee[k] = measure(PRODUCERS, ob_producer, &one, NULL);
        fill(small, DRAIN, "small queue");
        ce[k] = drain_rate(small);
        ob_engine_unsubscribe(small, sub);
        ob_engine_close(small);
        ef[k] = measure(PRODUCERS, ob_producer, &bigc, NULL);
        long rss = self_rss_kib();
        if (rss > r->rss_kib)
            r->rss_kib = rss;
        atomic_store(&done_count, 0);
        cf[k] = drain_rate(big);
        rss = self_rss_kib();
        if (rss > r->rss_kib)
            r->rss_kib = rss;
    }
    r->enq_empty = median(ee, rounds), r->enq_full = median(ef, rounds);
    r->claim_empty = median(ce, rounds), r->claim_full = median(cf, rounds);
    r->hwm_kib = self_hwm_kib();
    ob_engine_unsubscribe(big, big_sub);
    ob_engine_close(big);
}

/* ---- the table ---- */

static void row(const char *what, double ours, double f0, double mem, const char *unit)
{
    char a[32], b[32];
    snprintf(a, sizeof a, f0 > 0 ? "%.2fx" : "-", f0 > 0 ? ours / f0 : 0);
    snprintf(b, sizeof b, mem > 0 ? "%.2fx" : "-", mem > 0 ? ours / mem : 0);
    printf("| %-38s | %12.0f | %14.0f | %14.0f | %9s | %9s | %s\n", what, ours, f0, mem, a, b,
           unit);
}

static bool want(const char *what) { return !only || strstr(only, what); }

static void usage(void)
{
    printf("usage: bench_engine [--seconds S] [--rounds R] [--million N] [--dir DIR] [--only LIST]\n"
           "       bench_engine --store postgres://... [--nodes N] [--seconds S] [--rounds R]\n"
           "  --seconds S   measuring window per figure (default 2)\n"
           "  --rounds R    rate figures are the median of R interleaved rounds (default 3)\n"
           "  --million N   jobs queued for the large-queue figures (default 1000000)\n"
           "  --dir DIR     where stores and the binlog go (default: a new dir in /var/tmp)\n"
           "  --only LIST   comma list of: enqueue,life,latency,million,flow\n"
           "  --rate-seconds S  flow: the rate accuracy window (default 10)\n"
           "  --store URL   outbox on this PostgreSQL (fresh schemas bench_*), no peers:\n"
           "                bench/engine --store runs graphile-worker and pg-boss beside it\n"
           "  --nodes N     with --store: N engines share the schema (default 1, at most 8)\n"
           "Needs beanstalkd on PATH (bench/engine installs it).\n");
}

/* --store: outbox alone on PostgreSQL; "result NAME VALUE" lines for
 * bench/engine, which puts them beside the peers'. */
static int pg_main(void)
{
    printf("bench_engine: outbox on PostgreSQL, %d node%s, medians of %d rounds of %.1f s, "
           "%d producers / %d workers\n", nodes, nodes > 1 ? "s" : "", rounds, seconds,
           PRODUCERS, WORKERS);
    double r1[16], r16[16], rl[16], p50 = 0, p99 = 0;
    for (int r = 0; r < rounds; r++) {
        if (want("enqueue")) {
            fprintf(stderr, "  round %d/%d: enqueue\n", r + 1, rounds);
            r1[r] = ours_enqueue(1);
            r16[r] = ours_enqueue(PRODUCERS);
        }
        if (want("life")) {
            fprintf(stderr, "  round %d/%d: life cycle\n", r + 1, rounds);
            rl[r] = ours_lifecycle();
        }
    }
    if (want("latency")) {
        fprintf(stderr, "  start latency\n");
        ours_latency(&p50, &p99);
    }
    if (want("enqueue")) {
        printf("result enqueue-1 %.0f\n", median(r1, rounds));
        printf("result enqueue-16 %.0f\n", median(r16, rounds));
    }
    if (want("life"))
        printf("result life %.0f\n", median(rl, rounds));
    if (want("latency"))
        printf("result latency-p50 %.3f\nresult latency-p99 %.3f\n", p50, p99);
    if (only && strstr(only, "flow")) /* not by default: bench/engine --store has peers to run */
        flow_figures();
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--million") && i + 1 < argc)
            million = atol(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--store") && i + 1 < argc)
            store_url = argv[++i];
        else if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
            nodes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rate-seconds") && i + 1 < argc)
            rate_seconds = atoi(argv[++i]);
        else {
            usage();
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (seconds <= 0 || million < DRAIN || rounds < 1 || rounds > 16 || nodes < 1 ||
        rate_seconds < 2 || rate_seconds > RATE_SECS_MAX - 8 ||
        nodes > NODES_MAX || (store_url && strncmp(store_url, "postgres", 8) != 0)) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(payload, 'p', sizeof payload - 1);
    memcpy(payload, "{\"to\":\"someone@example.org\",\"subject\":\"welcome\",\"pad\":\"", 56);
    payload[sizeof payload - 3] = '"';
    payload[sizeof payload - 2] = '}';
    if (store_url)
        return pg_main();
    bool made_dir = !dir[0];
    if (made_dir) {
        snprintf(dir, sizeof dir, "/var/tmp/outbox-bench-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    printf("bench_engine: medians of %d rounds of %.1f s, %d producers / %d workers, %zu-byte "
           "payloads, stores in %s\n", rounds, seconds, PRODUCERS, WORKERS, sizeof payload - 1, dir);

    double e1[3] = {0}, e16[3] = {0}, life[3] = {0}, p50[3] = {0}, p99[3] = {0};
    million_result mo = {0}, mb = {0};
    /* Rate figures: `rounds` rounds, each measuring outbox and both peers
     * back to back; the median of each is reported. */
    double r1[3][16], r16[3][16], rl[3][16];
    for (int r = 0; r < rounds; r++) {
        if (want("enqueue")) {
            fprintf(stderr, "  round %d/%d: enqueue, 1 producer\n", r + 1, rounds);
            r1[0][r] = ours_enqueue(1), r1[1][r] = bk_enqueue(true, 1), r1[2][r] = bk_enqueue(false, 1);
            fprintf(stderr, "  round %d/%d: enqueue, 16 producers\n", r + 1, rounds);
            r16[0][r] = ours_enqueue(PRODUCERS), r16[1][r] = bk_enqueue(true, PRODUCERS),
            r16[2][r] = bk_enqueue(false, PRODUCERS);
        }
        if (want("life")) {
            fprintf(stderr, "  round %d/%d: life cycle\n", r + 1, rounds);
            rl[0][r] = ours_lifecycle(), rl[1][r] = bk_lifecycle(true), rl[2][r] = bk_lifecycle(false);
        }
    }
    for (int k = 0; k < 3; k++) {
        e1[k] = median(r1[k], rounds);
        e16[k] = median(r16[k], rounds);
        life[k] = median(rl[k], rounds);
    }
    if (want("latency")) {
        fprintf(stderr, "  start latency\n");
        ours_latency(&p50[0], &p99[0]);
        bk_latency(true, &p50[1], &p99[1]);
        bk_latency(false, &p50[2], &p99[2]);
    }
    if (want("million")) {
        fprintf(stderr, "  %ld queued vs empty\n", million);
        ours_million(&mo);
        bk_million(&mb);
    }

    printf("\n| %-38s | %12s | %14s | %14s | %9s | %9s |\n", "figure", "outbox",
           "beanstalkd -f0", "beanstalkd mem", "vs -f0", "vs mem");
    printf("|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------",
           "--------------", "----------------", "----------------", "-----------",
           "-----------");
    if (want("enqueue")) {
        row("durable enqueue/s, 1 producer", e1[0], e1[1], e1[2], "");
        row("durable enqueue/s, 16 producers", e16[0], e16[1], e16[2], "");
    }
    if (want("life"))
        row("life cycle/s, 16 producers + 16 workers", life[0], life[1], life[2], "");
    if (want("latency")) {
        printf("| %-38s | %12.3f | %14.3f | %14.3f | %9s | %9s | ms\n", "start latency p50", p50[0],
               p50[1], p50[2], "", "");
        printf("| %-38s | %12.3f | %14.3f | %14.3f | %9s | %9s | ms\n", "start latency p99", p99[0],
               p99[1], p99[2], "", "");
    }
    if (want("million")) {
        char w[64];
        row("enqueue/s, empty queue", mo.enq_empty, 0, mb.enq_empty, "");
        snprintf(w, sizeof w, "enqueue/s, %ldk queued", million / 1000);
        row(w, mo.enq_full, 0, mb.enq_full, "");
        row("claim+complete/s, small queue", mo.claim_empty, 0, mb.claim_empty, "");
        snprintf(w, sizeof w, "claim+complete/s, %ldk queued", million / 1000);
        row(w, mo.claim_full, 0, mb.claim_full, "");
        printf("| %-38s | %12.1f | %14s | %14.1f | %9s | %9s | MiB\n", "RSS with the large queue",
               (double)mo.rss_kib / 1024, "", (double)mb.rss_kib / 1024, "", "");
    }

    printf("\ntargets:\n");
    if (want("enqueue")) {
        printf("  enqueue, 16 producers >= 1x beanstalkd mem: %.2fx  %s\n", e16[0] / e16[2],
               e16[0] >= e16[2] ? "met" : "MISSED");
        printf("  enqueue, 16 producers >= 10x beanstalkd -f0: %.1fx  %s\n", e16[0] / e16[1],
               e16[0] >= 10 * e16[1] ? "met" : "MISSED");
    }
    if (want("life"))
        printf("  life cycle >= 1x beanstalkd mem: %.2fx  %s\n", life[0] / life[2],
               life[0] >= life[2] ? "met" : "MISSED");
    if (want("latency"))
        printf("  start latency p99 < 5 ms: %.3f ms  %s\n", p99[0], p99[0] < 5 ? "met" : "MISSED");
    if (want("million")) {
        printf("  enqueue at %ldk >= 80%% of empty: %.0f%%  %s\n", million / 1000,
               100 * mo.enq_full / mo.enq_empty, mo.enq_full >= 0.8 * mo.enq_empty ? "met" : "MISSED");
        printf("  claim at %ldk >= 80%% of small queue: %.0f%%  %s\n", million / 1000,
               100 * mo.claim_full / mo.claim_empty,
               mo.claim_full >= 0.8 * mo.claim_empty ? "met" : "MISSED");
        printf("  RSS with %ldk queued < 64 MiB: %.1f MiB (peak %.1f)  %s\n", million / 1000,
               (double)mo.rss_kib / 1024, (double)mo.hwm_kib / 1024,
               mo.rss_kib < 64 * 1024 ? "met" : "MISSED");
    }
    if (want("flow"))
        flow_figures();
    if (made_dir) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
