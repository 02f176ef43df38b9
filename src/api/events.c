/*
 * events.c - GET /v1/events: job state changes as server-sent events.
 *
 *   id: 1795579200123000
 *   event: job
 *   data: {"id":"…","kind":"…","queue":"…","state":"completed","attempt":1,"at":"…"}
 *
 * A change of the mail suppression list (a record subscription) is
 *
 *   event: suppression
 *   data: {"action":"added"|"updated"|"removed","address":"…","at":"…",
 *          "suppression":{the entry, as GET /v1/suppressions/{address}}}
 *
 * (no "suppression" when removed); a client filtering by id, kind or queue
 * does not get these.
 *
 * Every committed change (an engine subscription, on the commit thread) is
 * kept in a ring of the last `ring` events and written to each connected
 * client whose filter (id, kind, queue) it matches. A job's change is
 * rendered once, when the first client needs it (E1): with nobody
 * connected the commit thread only copies its facts.
 *
 * Resume: a client that reconnects with Last-Event-ID (header, or
 * ?last_event_id=) gets the events after it from the ring, then the live
 * ones, with nothing lost or repeated in between (replay and registration
 * happen under the ring's lock). If the events it missed have left the
 * ring — or come from before this process started — it first gets
 *   event: reset
 * saying so, and should re-read what it cares about.
 *
 * Sequence numbers start at this process's start time in microseconds, so
 * they keep growing across restarts.
 *
 * Bounded: the ring, the number of clients (503 past it), and each
 * client's backlog (a client too slow to read is disconnected; it may
 * reconnect and resume). A comment line every 15 s keeps idle connections
 * alive through proxies and finds clients that left.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/util.h"

#define KEEPALIVE_MS 15000

/* A kept event. A job's change is kept as its facts and rendered the first
 * time a client needs it (E1: msg is NULL only for a job event nobody has
 * read yet), so that a server nobody watches does not print every change
 * of every job on the commit thread. */
typedef struct ev_rec {
    uint64_t seq;
    ob_id id;
    char kind[OB_NAME_MAX + 1], queue[OB_NAME_MAX + 1];
    char *msg; /* the whole SSE message, or NULL (E1) */
    size_t len;
    /* a job's change, until rendered */
    ob_state state;
    int attempt;
    int64_t at_ms, scheduled_for_ms;
    char schedule[OB_NAME_MAX + 1]; /* "" when no schedule made the job */
    char *error;                    /* owned, or NULL */
} ev_rec;

typedef struct client {
    ob_http_stream *st;
    bool by_id;
    ob_id id;
    char kind[OB_NAME_MAX + 1], queue[OB_NAME_MAX + 1];
    struct client *next;
} client;

typedef struct events events;

struct events {
    api *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ev_rec *ring;
    int cap, head, count; /* head: the oldest */
    uint64_t next_seq;
    client *clients;
    int nclients;
    ob_subscription *sub, *rsub;
    pthread_t keepalive;
    bool keepalive_started;
    bool stop;
};

static bool matches(const client *c, const ev_rec *r)
{
    return (!c->by_id || memcmp(c->id.b, r->id.b, 16) == 0) &&
           (!c->kind[0] || strcmp(c->kind, r->kind) == 0) &&
           (!c->queue[0] || strcmp(c->queue, r->queue) == 0);
}

/* Write to every client (or those matching r); drop the ones that fail.
 * Called with mu held. */
static void fan_out(events *ev, const ev_rec *r, const char *msg, size_t len)
{
    for (client **p = &ev->clients; *p;) {
        client *c = *p;
        if ((r && !matches(c, r)) || ob_http_stream_write(c->st, msg, len) == 0) {
            p = &c->next;
            continue;
        }
        *p = c->next; /* gone, shutting down, or too slow: let it go */
        ob_http_stream_close(c->st);
        free(c);
        ev->nclients--;
    }
}

/* The next slot of the ring (the oldest goes when it is full), cleared;
 * called with mu held. */
static ev_rec *ring_next(events *ev)
{
    ev_rec *r = &ev->ring[(ev->head + ev->count) % ev->cap];
    if (ev->count == ev->cap) {
        free(r->msg);
        free(r->error);
        ev->head = (ev->head + 1) % ev->cap;
    } else {
        ev->count++;
    }
    *r = (ev_rec){.seq = ev->next_seq++};
    return r;
}

/* Frame `data` as event `name` into r->msg (NULL on OOM: the event is
 * lost to clients, as a write they could not take would be). */
static void frame(ev_rec *r, const char *name, const char *data)
{
    size_t cap = strlen(data) + 64;
    r->msg = malloc(cap);
    r->len = r->msg ? (size_t)snprintf(r->msg, cap, "id: %llu\nevent: %s\ndata: %s\n\n",
                                       (unsigned long long)r->seq, name, data)
                    : 0;
}

/* Render a job event's facts (E1). Printed, not built with jansson: kinds,
 * queues and schedule names are names ([A-Za-z0-9._-], checked when
 * stored), nothing to escape; an error is free text, quoted by jansson. */
static void render_job(ev_rec *r)
{
    char id[OB_ID_STRLEN + 1], at[32], sf[32], data[512];
    json_t *js = r->error ? json_string(r->error) : NULL;
    char *err = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    int n = snprintf(data, sizeof data,
                     "{\"id\":\"%s\",\"kind\":\"%s\",\"queue\":\"%s\",\"state\":\"%s\","
                     "\"attempt\":%d,\"at\":\"%s\"",
                     ob_id_format(&r->id, id), r->kind, r->queue, ob_state_name(r->state),
                     r->attempt, ob_time_format(r->at_ms, at));
    if (r->schedule[0]) /* a job a schedule made: which, and for when */
        n += snprintf(data + n, sizeof data - (size_t)n,
                      ",\"schedule\":\"%s\",\"scheduled_for\":\"%s\"", r->schedule,
                      ob_time_format(r->scheduled_for_ms, sf));
    assert(n > 0 && (size_t)n < sizeof data - 2); /* names are at most OB_NAME_MAX */
    if (!err) {
        snprintf(data + n, sizeof data - (size_t)n, "}");
        frame(r, "job", data);
        return;
    }
    size_t cap = (size_t)n + strlen(err) + 16;
    char *all = malloc(cap);
    if (all) {
        snprintf(all, cap, "%s,\"error\":%s}", data, err);
        frame(r, "job", all);
    }
    free(all);
    free(err);
}

/* A job's change (commit thread): kept as facts; rendered and written now
 * only when a client is connected. */
static void on_event(void *arg, const ob_event *e)
{
    events *ev = arg;
    assert(ob_name_valid(e->kind) && ob_name_valid(e->queue));
    assert(!e->schedule || ob_name_valid(e->schedule));
    pthread_mutex_lock(&ev->mu);
    ev_rec *r = ring_next(ev);
    r->id = e->id;
    snprintf(r->kind, sizeof r->kind, "%s", e->kind);
    snprintf(r->queue, sizeof r->queue, "%s", e->queue);
    r->state = e->state;
    r->attempt = e->attempt;
    r->at_ms = e->at_ms;
    if (e->schedule) {
        snprintf(r->schedule, sizeof r->schedule, "%s", e->schedule);
        r->scheduled_for_ms = e->scheduled_for_ms;
    }
    r->error = e->error ? strdup(e->error) : NULL;
    if (ev->clients) {
        render_job(r);
        if (r->msg)
            fan_out(ev, r, r->msg, r->len);
    }
    pthread_mutex_unlock(&ev->mu);
}

static void push(events *ev, const ob_id *id, const char *kind, const char *queue,
                 const char *name, json_t *d);

/* A change of the suppression list (a record of its set). */
static void on_record(void *arg, const ob_record *rec, bool deleted)
{
    events *ev = arg;
    ob_suppression s;
    if (strcmp(rec->set, OB_SUPPRESSIONS) != 0)
        return;
    char at[32];
    json_t *d = json_pack("{s:s, s:s, s:s}", "action",
                          deleted ? "removed" : rec->created_at_ms ? "added" : "updated",
                          "address", rec->key, "at", ob_time_format(ob_now_ms(), at));
    if (d && !deleted && ob_suppression_from_record(rec, &s) == 0)
        json_object_set_new(d, "suppression", api_suppression_json(&s));
    push(ev, &(ob_id){{0}}, "", "", "suppression", d);
}

/* Event `name` with data d (taken): rendered, kept and written. */
static void push(events *ev, const ob_id *id, const char *kind, const char *queue,
                 const char *name, json_t *d)
{
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (!data)
        return;
    pthread_mutex_lock(&ev->mu);
    ev_rec *r = ring_next(ev);
    r->id = *id;
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    snprintf(r->queue, sizeof r->queue, "%s", queue);
    frame(r, name, data);
    if (r->msg)
        fan_out(ev, r, r->msg, r->len);
    pthread_mutex_unlock(&ev->mu);
    free(data);
}

static void *keepalive_main(void *arg)
{
    events *ev = arg;
    pthread_mutex_lock(&ev->mu);
    while (!ev->stop) {
        struct timespec ts = ob_mono_deadline(KEEPALIVE_MS);
        pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
        if (!ev->stop && ev->clients)
            fan_out(ev, NULL, ": keepalive\n\n", 13);
    }
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

/* Replay what the client missed, under mu. */
static void replay(events *ev, client *c, uint64_t last)
{
    uint64_t oldest = ev->count ? ev->ring[ev->head].seq : ev->next_seq;
    if (last + 1 < oldest || last >= ev->next_seq) {
        char msg[256];
        int n = snprintf(msg, sizeof msg,
                         "event: reset\ndata: {\"reason\":\"the events after %llu are no longer "
                         "kept; re-read the jobs you follow\",\"oldest\":%llu}\n\n",
                         (unsigned long long)last, (unsigned long long)oldest);
        ob_http_stream_write(c->st, msg, (size_t)n);
        last = oldest ? oldest - 1 : 0;
    }
    for (int i = 0; i < ev->count; i++) {
        ev_rec *r = &ev->ring[(ev->head + i) % ev->cap];
        if (r->seq <= last || !matches(c, r))
            continue;
        if (!r->msg) /* E1: first read */
            render_job(r);
        if (r->msg && ob_http_stream_write(c->st, r->msg, r->len))
            break; /* too much for its backlog: it will be dropped by the next fan-out */
    }
}

static void get_events(ob_http_req *r, void *arg)
{
    api *a = arg;
    events *ev = a->ev;
    client *c = calloc(1, sizeof *c);
    if (!c) {
        api_reply_rc(r, OB_ENOMEM, NULL);
        return;
    }
    const char *id = ob_http_query(r, "id"), *kind = ob_http_query(r, "kind"),
               *queue = ob_http_query(r, "queue");
    const char *last = ob_http_header(r, "Last-Event-ID");
    if (!last)
        last = ob_http_query(r, "last_event_id");
    char *end = NULL;
    unsigned long long from = last ? strtoull(last, &end, 10) : 0;
    const char *bad = id && ob_id_parse(id, &c->id) ? "id"
                      : kind && !ob_name_valid(kind) ? "kind"
                      : queue && !ob_name_valid(queue) ? "queue"
                      : last && (!*last || *end) ? "Last-Event-ID"
                                                 : NULL;
    if (bad) {
        free(c);
        ob_http_reply_error(r, 400, "invalid", "not a valid filter or event id", bad);
        return;
    }
    c->by_id = id != NULL;
    snprintf(c->kind, sizeof c->kind, "%s", kind ? kind : "");
    snprintf(c->queue, sizeof c->queue, "%s", queue ? queue : "");
    pthread_mutex_lock(&ev->mu);
    int rc = ev->nclients >= a->o.max_event_clients ? OB_EBUSY : 0;
    if (!rc)
        rc = ob_http_stream_start(r, "text/event-stream", &c->st);
    if (rc) {
        pthread_mutex_unlock(&ev->mu);
        free(c);
        api_reply_rc(r, rc, NULL);
        return;
    }
    ob_http_stream_write(c->st, "retry: 2000\n\n", 13);
    if (last)
        replay(ev, c, from);
    c->next = ev->clients;
    ev->clients = c;
    ev->nclients++;
    pthread_mutex_unlock(&ev->mu);
}

int events_new(api *a, ob_http_server *srv)
{
    events *ev = calloc(1, sizeof *ev);
    if (!ev)
        return OB_ENOMEM;
    ev->a = a;
    ev->cap = a->o.event_ring;
    ev->ring = calloc((size_t)ev->cap, sizeof *ev->ring);
    ev->next_seq = (uint64_t)ob_now_ms() * 1000;
    pthread_mutex_init(&ev->mu, NULL);
    ob_cond_init_mono(&ev->cv);
    a->ev = ev;
    int rc = ev->ring ? 0 : OB_ENOMEM;
    if (!rc)
        rc = ob_engine_subscribe(a->o.engine, on_event, ev, &ev->sub);
    if (!rc)
        rc = ob_engine_subscribe_records(a->o.engine, on_record, ev, &ev->rsub);
    if (!rc && pthread_create(&ev->keepalive, NULL, keepalive_main, ev))
        rc = OB_ENOMEM;
    ev->keepalive_started = !rc;
    if (!rc)
        rc = api_route(a, srv, "GET", "/v1/events", get_events, 0);
    return rc;
}

void events_free(api *a)
{
    events *ev = a->ev;
    if (!ev)
        return;
    ob_engine_unsubscribe(a->o.engine, ev->sub);
    ob_engine_unsubscribe(a->o.engine, ev->rsub);
    pthread_mutex_lock(&ev->mu);
    ev->stop = true;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    if (ev->keepalive_started)
        pthread_join(ev->keepalive, NULL);
    while (ev->clients) {
        client *c = ev->clients;
        ev->clients = c->next;
        ob_http_stream_close(c->st);
        free(c);
    }
    for (int i = 0; i < ev->count; i++) {
        ev_rec *r = &ev->ring[(ev->head + i) % ev->cap];
        free(r->msg);
        free(r->error);
    }
    free(ev->ring);
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    free(ev);
    a->ev = NULL;
}
