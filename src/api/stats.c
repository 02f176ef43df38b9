/*
 * stats.c - GET /v1/stats and GET /v1/nodes: what the dashboard's overview
 * shows beside the queues. The version, the store and its health; the
 * nodes sharing the store (which one leads, when each was last heard); and
 * the last minutes of this node's work, a second a slot: jobs started and
 * finished, and how long the started ones had waited since they were due
 * (the start latency: the first sign of a queue that cannot keep up).
 *
 * The history comes from the engine's events (ob_engine_subscribe, on the
 * commit thread), so it costs a lock and a few additions per state change
 * and nothing per request; it is this process's, as /metrics is. Each
 * queue has a ring of STATS_SLOTS seconds; a slot is reused when its
 * second comes round again (its `sec` tells a stale slot from a current
 * one). Queues past STATS_QUEUES share one ring, "_other", so a client
 * inventing queue names cannot grow the memory.
 *
 *   GET /v1/stats?seconds=N  (1..300, default 300)
 *   {"version", "store", "ready", "reason", "now", "seconds",
 *    "total": H, "queues": {"NAME": H, ...}}
 *   H = {"started": [n, ...], "finished": [...], "wait_avg": [s, ...],
 *        "wait_max": [...]}: oldest first, one a second, ending now.
 *   GET /v1/nodes
 *   {"nodes": [{"id", "host", "pid", "started_at", "heartbeat_at",
 *               "leader", "self"}, ...]}
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/util.h"

#define STATS_SLOTS 300 /* seconds kept */
#define STATS_QUEUES 64 /* queues with a ring of their own */

typedef struct slot {
    int64_t sec; /* the second (Unix time) this slot counts; else stale */
    uint32_t started, finished;
    uint32_t wait_max_ms;
    uint64_t wait_sum_ms;
} slot;

typedef struct ring {
    char queue[OB_NAME_MAX + 1];
    slot s[STATS_SLOTS];
} ring;

struct stats {
    pthread_mutex_t mu;
    ob_subscription *sub;
    int n;                          /* rings in use; [n-1] may be "_other" */
    ring r[STATS_QUEUES + 1];
};

/* The ring of `queue`, made if there is room, else "_other"'s. Under mu. */
static ring *ring_of(stats *st, const char *queue)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->r[i].queue, queue) == 0)
            return &st->r[i];
    if (st->n >= STATS_QUEUES)
        queue = "_other";
    for (int i = STATS_QUEUES; i < st->n; i++)
        if (strcmp(st->r[i].queue, queue) == 0)
            return &st->r[i];
    ring *g = &st->r[st->n++];
    snprintf(g->queue, sizeof g->queue, "%s", queue);
    return g;
}

static slot *slot_at(ring *g, int64_t sec)
{
    slot *s = &g->s[sec % STATS_SLOTS];
    if (s->sec != sec)
        *s = (slot){.sec = sec};
    return s;
}

static void on_event(void *arg, const ob_event *ev)
{
    bool start = ev->state == OB_RUNNING, fin = ob_state_is_final(ev->state);
    if (!start && !fin)
        return;
    stats *st = arg;
    int64_t sec = ev->at_ms / 1000;
    pthread_mutex_lock(&st->mu);
    slot *s = slot_at(ring_of(st, ev->queue), sec);
    if (fin) {
        s->finished++;
    } else {
        s->started++;
        int64_t w = ev->due_ms && ev->at_ms > ev->due_ms ? ev->at_ms - ev->due_ms : 0;
        uint32_t wms = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
        s->wait_sum_ms += wms;
        if (wms > s->wait_max_ms)
            s->wait_max_ms = wms;
    }
    pthread_mutex_unlock(&st->mu);
}

/* A slot's view of second `sec` (zeros when stale), added into *sum. */
static void add_slot(slot *sum, const ring *g, int64_t sec)
{
    const slot *s = &g->s[sec % STATS_SLOTS];
    if (s->sec != sec)
        return;
    sum->started += s->started;
    sum->finished += s->finished;
    sum->wait_sum_ms += s->wait_sum_ms;
    if (s->wait_max_ms > sum->wait_max_ms)
        sum->wait_max_ms = s->wait_max_ms;
}

/* H of the rings [from, to) over `secs` seconds ending at `now`. Under mu. */
static json_t *history(const stats *st, int from, int to, int64_t now, int secs)
{
    json_t *started = json_array(), *finished = json_array(), *avg = json_array(),
           *max = json_array();
    for (int64_t sec = now - secs + 1; sec <= now; sec++) {
        slot sum = {0};
        for (int i = from; i < to; i++)
            add_slot(&sum, &st->r[i], sec);
        json_array_append_new(started, json_integer(sum.started));
        json_array_append_new(finished, json_integer(sum.finished));
        json_array_append_new(avg, json_real(sum.started ? (double)sum.wait_sum_ms /
                                                               sum.started / 1000.0
                                                         : 0.0));
        json_array_append_new(max, json_real(sum.wait_max_ms / 1000.0));
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "started", started, "finished", finished,
                     "wait_avg", avg, "wait_max", max);
}

static void get_stats(ob_http_req *r, void *arg)
{
    api *a = arg;
    stats *st = a->stats;
    const char *q = ob_http_query(r, "seconds");
    int secs = STATS_SLOTS;
    if (q) {
        char *end;
        long v = strtol(q, &end, 10);
        if (*end || end == q || v < 1 || v > STATS_SLOTS) {
            ob_http_reply_error(r, 422, "invalid", "seconds must be 1..300", "seconds");
            return;
        }
        secs = (int)v;
    }
    int64_t now_ms = ob_now_ms(), now = now_ms / 1000;
    int rc = ob_engine_ready(a->o.engine);
    char at[32];
    json_t *queues = json_object();
    pthread_mutex_lock(&st->mu);
    json_t *total = history(st, 0, st->n, now, secs);
    for (int i = 0; i < st->n; i++)
        json_object_set_new(queues, st->r[i].queue, history(st, i, i + 1, now, secs));
    pthread_mutex_unlock(&st->mu);
    json_t *v = json_pack("{s:s, s:s, s:b, s:s?, s:s, s:i, s:o, s:o}", "version", OB_VERSION,
                          "store", ob_engine_store_name(a->o.engine), "ready", rc == 0,
                          "reason", rc ? ob_strerror(rc) : NULL, "now",
                          ob_time_format(now_ms, at), "seconds", secs, "total", total, "queues",
                          queues);
    ob_http_reply_json(r, v ? 200 : 500, v);
    json_decref(v);
}

static void get_nodes(ob_http_req *r, void *arg)
{
    api *a = arg;
    ob_node *nodes;
    size_t n;
    int rc = ob_engine_nodes(a->o.engine, &nodes, &n);
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char started[32], beat[32];
        const ob_node *d = &nodes[i];
        json_array_append_new(
            list, json_pack("{s:s?, s:s, s:i, s:s, s:s, s:b, s:b}", "id", d->id[0] ? d->id : NULL,
                            "host", d->host, "pid", d->pid, "started_at",
                            ob_time_format(d->started_at_ms, started), "heartbeat_at",
                            ob_time_format(d->heartbeat_at_ms, beat), "leader", d->leader, "self",
                            d->self));
    }
    free(nodes);
    json_t *v = json_pack("{s:o}", "nodes", list);
    ob_http_reply_json(r, 200, v);
    json_decref(v);
}

int stats_new(api *a, ob_http_server *srv)
{
    stats *st = calloc(1, sizeof *st);
    if (!st)
        return OB_ENOMEM;
    pthread_mutex_init(&st->mu, NULL);
    a->stats = st;
    int rc = ob_engine_subscribe(a->o.engine, on_event, st, &st->sub);
    if (!rc)
        rc = api_route(a, srv, "GET", "/v1/stats", get_stats, 0);
    if (!rc)
        rc = api_route(a, srv, "GET", "/v1/nodes", get_nodes, 0);
    return rc;
}

void stats_free(api *a)
{
    stats *st = a->stats;
    if (!st)
        return;
    ob_engine_unsubscribe(a->o.engine, st->sub);
    pthread_mutex_destroy(&st->mu);
    free(st);
    a->stats = NULL;
}
