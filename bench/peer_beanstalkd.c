/*
 * peer_beanstalkd.c - bench_engine's peer: the same measurements on
 * beanstalkd (in memory, and with its binlog fsynced on every write, -f0),
 * driven through beanstalk.c's client.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beanstalk.h"
#include "bench.h"

typedef struct peer {
    pid_t pid;
    int port;
    atomic_long deleted;
} peer;

static void peer_start(peer *p, bool binlog)
{
    char bdir[4300];
    snprintf(bdir, sizeof bdir, "%s/binlog", dir);
    if (binlog) {
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", bdir, bdir);
        if (system(cmd) != 0)
            exit(1);
    }
    p->pid = bk_start(binlog ? bdir : NULL, &p->port);
    atomic_store(&p->deleted, 0);
    if (p->pid < 0) {
        fprintf(stderr, "cannot start beanstalkd (is it installed? bench/engine installs it)\n");
        exit(1);
    }
}

static void *bk_producer(void *arg)
{
    worker_arg *a = arg;
    peer *p = a->ctx;
    bk_conn *c = malloc(sizeof *c);
    if (bk_connect(c, p->port))
        exit(1);
    while (!atomic_load(&stop)) {
        if (bk_put(c, payload, sizeof payload - 1, NULL))
            break;
        atomic_fetch_add(&a->count, 1);
    }
    bk_close(c);
    free(c);
    return NULL;
}

static void *bk_consumer(void *arg)
{
    worker_arg *a = arg;
    peer *p = a->ctx;
    bk_conn *c = malloc(sizeof *c);
    if (bk_connect(c, p->port))
        exit(1);
    uint64_t id;
    while (!atomic_load(&stop)) {
        int r = bk_reserve(c, 1, &id);
        if (r < 0)
            break;
        if (r == 0 && bk_delete(c, id) == 0)
            atomic_fetch_add(&p->deleted, 1);
    }
    bk_close(c);
    free(c);
    return NULL;
}

double bk_enqueue(bool binlog, int producers)
{
    peer p;
    peer_start(&p, binlog);
    double r = measure(producers, bk_producer, &p, NULL);
    bk_stop(p.pid);
    return r;
}

/* Producers and consumers together: measure() runs both kinds, the first
 * PRODUCERS threads put, the rest reserve+delete. */
static void *bk_mixed(void *arg)
{
    worker_arg *a = arg;
    return a->idx < PRODUCERS ? bk_producer(arg) : bk_consumer(arg);
}

double bk_lifecycle(bool binlog)
{
    peer p;
    peer_start(&p, binlog);
    double r = measure(PRODUCERS + WORKERS, bk_mixed, &p, &p.deleted);
    bk_stop(p.pid);
    return r;
}

typedef struct bk_lat {
    peer *p;
    atomic_int ready;
} bk_lat;

static void *bk_lat_consumer(void *arg)
{
    bk_lat *l = arg;
    bk_conn *c = malloc(sizeof *c);
    if (bk_connect(c, l->p->port))
        exit(1);
    atomic_store(&l->ready, 1);
    uint64_t id;
    while (!atomic_load(&stop)) {
        int r = bk_reserve(c, 1, &id);
        if (r < 0)
            break;
        if (r)
            continue;
        mark_started();
        bk_delete(c, id);
    }
    bk_close(c);
    free(c);
    return NULL;
}

void bk_latency(bool binlog, double *p50, double *p99)
{
    peer p;
    peer_start(&p, binlog);
    bk_lat l = {.p = &p};
    atomic_store(&stop, 0);
    pthread_t th;
    pthread_create(&th, NULL, bk_lat_consumer, &l);
    while (!atomic_load(&l.ready))
        sleep_s(0.001);
    sleep_s(0.05); /* let it block in reserve */
    bk_conn *c = malloc(sizeof *c);
    if (bk_connect(c, p.port))
        exit(1);
    static int64_t lat[LAT_SAMPLES];
    for (int i = 0; i < LAT_SAMPLES; i++) {
        int64_t t0 = now_us();
        bk_put(c, payload, sizeof payload - 1, NULL);
        lat[i] = wait_started() - t0;
        sleep_s(0.001);
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    bk_close(c);
    free(c);
    percentiles(lat, LAT_SAMPLES, p50, p99);
    bk_stop(p.pid);
}

static void bk_fill(peer *p, long n)
{
    bk_conn *c = malloc(sizeof *c);
    if (bk_connect(c, p->port) || bk_put_pipelined(c, payload, sizeof payload - 1, (int)n)) {
        fprintf(stderr, "beanstalkd fill failed\n");
        exit(1);
    }
    bk_close(c);
    free(c);
}

static double bk_drain_rate(peer *p)
{
    long start = atomic_load(&p->deleted);
    atomic_store(&stop, 0);
    pthread_t th[WORKERS];
    worker_arg a[WORKERS];
    double t0 = now_s();
    for (int i = 0; i < WORKERS; i++) {
        a[i] = (worker_arg){.ctx = p, .idx = i};
        pthread_create(&th[i], NULL, bk_consumer, &a[i]);
    }
    while (atomic_load(&p->deleted) - start < DRAIN)
        sleep_s(0.001);
    double t = now_s() - t0;
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    return DRAIN / t;
}

void bk_million(million_result *r)
{
    peer p;
    peer_start(&p, false);
    bk_fill(&p, DRAIN);
    r->claim_empty = bk_drain_rate(&p);
    bk_stop(p.pid);

    peer_start(&p, false);
    r->enq_empty = measure(PRODUCERS, bk_producer, &p, NULL);
    double t0 = now_s();
    bk_fill(&p, million);
    fprintf(stderr, "    beanstalkd: %ld queued in %.1f s\n", million, now_s() - t0);
    r->enq_full = measure(PRODUCERS, bk_producer, &p, NULL);
    r->claim_full = bk_drain_rate(&p);
    r->rss_kib = bk_rss_kib(p.pid);
    r->hwm_kib = r->rss_kib;
    bk_stop(p.pid);
}
