/*
 * hist.c - fixed-bucket histograms for metrics: observing is a handful of
 * relaxed atomic adds, so hot paths (every commit, every job) can afford it.
 */
#include <math.h>

#include "base/base.h"

/* Seconds up to 300: an SMTP attempt may take 4 commands of 60 s and its
 * data 120 s; an http.request up to --http-max-timeout (300 s). */
const double obi_hist_seconds[OB_HIST_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                 0.005,  0.01,    0.025,  0.05,  0.1,
                                                 0.25,   0.5,     1,      2.5,   5,
                                                 10,     30,      120,    300,   INFINITY};
const double obi_hist_sizes[OB_HIST_BUCKETS] = {1,     2,     4,     8,     16,    32,   64,
                                               128,   256,   512,   1024,  2048,  4096, 8192,
                                               16384, 32768, 65536, 131072, 262144, INFINITY};

void obi_hist_observe(obi_hist *h, double v)
{
    int i = 0;
    while (i < OB_HIST_BUCKETS - 1 && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(v > 0 ? v * 1e6 : 0), memory_order_relaxed);
}

void obi_hist_read(const obi_hist *h, ob_histogram *out)
{
    for (int i = 0; i < OB_HIST_BUCKETS; i++) {
        out->bounds[i] = h->bounds[i];
        out->counts[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    }
    out->count = atomic_load_explicit(&h->count, memory_order_relaxed);
    out->sum = (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6;
}
