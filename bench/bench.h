/*
 * bench.h - what bench_engine.c and its peer (peer_beanstalkd.c) share:
 * the run's settings, the clock, a measured window of N threads, and the
 * start-latency probe.
 */
#ifndef OB_BENCH_H
#define OB_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define PRODUCERS 16
#define WORKERS 16
#define DRAIN 30000
#define LAT_SAMPLES 1000

extern double seconds;   /* each measured window */
extern int rounds;
extern long million;     /* the large queue */
extern char dir[4096];   /* where files go */
extern char payload[101]; /* every job's payload */
extern atomic_int stop;  /* threads of a window stop when set */

double now_s(void);
int64_t now_us(void);
void sleep_s(double s);

typedef struct worker_arg {
    void *ctx;
    int idx;
    atomic_long count;
} worker_arg;
typedef void *(*thread_fn)(void *);
/* Run n threads of fn, wait a warm-up, count `counter` (or the threads'
 * own counters when NULL) over the window, stop them; returns per second. */
double measure(int n, thread_fn fn, void *ctx, atomic_long *counter);

/* The start-latency probe: a handler (or consumer) marks when a job
 * started; the producer waits for the mark. */
void mark_started(void);
int64_t wait_started(void);
void percentiles(int64_t *v, int n, double *p50, double *p99);

typedef struct million_result {
    double enq_empty, enq_full, claim_empty, claim_full;
    long rss_kib, hwm_kib;
} million_result;

/* peer_beanstalkd.c: binlog false is in memory, true is -f0. */
double bk_enqueue(bool binlog, int producers);
double bk_lifecycle(bool binlog);
void bk_latency(bool binlog, double *p50, double *p99);
void bk_million(million_result *r);

#endif
