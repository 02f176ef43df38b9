/*
 * api.h - outboxd's JSON HTTP API, on the HTTP server (src/http) and the
 * job engine (src/jobs). Its files:
 *
 *   api.c      routes, authentication, errors, /healthz, /readyz
 *   decode.c   strict decoding of request bodies into engine calls (pure:
 *              fuzzed)
 *   render.c   jobs as JSON
 *   jobs_api.c /v1/jobs and its members
 *   batch.c    /v1/jobs/batch, /v1/messages/batch: many items, one request
 *   bulk_api.c /v1/jobs/retry, /v1/jobs/cancel: many jobs changed at once
 *   messages_api.c  /v1/messages: the mail.send job kind (src/mailjob)
 *   wait.c     `Prefer: wait=N`: holding a response until a job is final,
 *              with no thread blocked per waiting client
 *   events.c   GET /v1/events: state changes as server-sent events
 *   metrics.c  GET /metrics: Prometheus text format
 *   stats.c    GET /v1/stats, /v1/nodes: version, health, nodes, the last
 *              minutes' starts, finishes and start latency
 *   http_request.c  the http.request and outbox.callback job kinds
 *
 * The API owns no job state: everything lives in the engine; what the
 * engine does not interpret (callback URL, request fingerprint) rides in a
 * job's `meta`.
 */
#ifndef OB_API_H
#define OB_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/jscan.h"
#include "api/outbound.h"
#include "outbox/http.h"
#include "outbox/jobs.h"
#include "outbox/mail.h"
#include "outbox/mailjob.h"

typedef struct api api;

typedef struct api_opts {
    ob_engine *engine;
    const char *const *tokens; /* bearer tokens (copied); ntokens 0: no auth */
    int ntokens;
    int64_t max_wait_ms;       /* cap of Prefer: wait; default 60 s */
    int max_waiters;           /* responses held by Prefer: wait; default 10,000 */
    int event_ring;            /* events kept for Last-Event-ID; default 10,000 */
    int max_event_clients;     /* /v1/events connections; default 64 */
    size_t max_job_payload;    /* POST /v1/jobs payload bytes; default 1 MiB */
    const ob_mail_limits *mail_limits; /* NULL: no /v1/messages */
    const ob_mailer *mailer;   /* mail.send's registration (outcome counters); NULL: none */
    const ob_dkim *dkim;       /* messages are signed at acceptance with these keys;
                                  borrowed; NULL: unsigned */
    int max_batch;             /* items per /v1/jobs/batch, /v1/messages/batch; default 100 */
    size_t max_batch_body;     /* body bytes of a /batch request; 0: the server's max_body */
    size_t max_message_body;   /* body bytes of POST /v1/messages; 0: the server's max_body */
    const outbound *policy;       /* where outbound jobs may go (literal addresses in
                                      URLs are refused at enqueue); borrowed; NULL:
                                      public addresses only */
} api_opts;

void api_opts_init(api_opts *o);
/* Register every route on srv (before it starts), and the gate every
 * request passes before its body is read (ob_http_set_gate). *out is owned
 * by the caller: api_free after the server stopped. */
int api_new(ob_http_server *srv, const api_opts *o, api **out);
/* The server is draining: /readyz answers 503. */
void api_draining(api *a);
void api_free(api *a);

/* ---- decode.c ---- */

/* A POST /v1/jobs body, decoded. Pointers into the json_t it came from,
 * except the owned payload text. */
typedef struct api_job_in {
    ob_new_job j;             /* its strings point into `text`, its payload into the body */
    char *text;               /* owned: the body's strings, unescaped */
    jspan payload;            /* the payload's bytes as they came (null when absent) */
    const char *callback_url; /* or NULL */
    const char *unique_key;   /* as given, or NULL */
} api_job_in;

/* Decode `body` (a value jscan accepted) as a new job. Returns 0, or an
 * error with *field (the offending member, or NULL for the body; valid
 * until api_job_in_clear) and *why (a message, static storage). Unknown
 * members are refused. `now` resolves "delay". Clear *out either way. */
int api_decode_job(const jspan *body, int64_t now, api_job_in *out, const char **field,
                   const char **why);
void api_job_in_clear(api_job_in *in);
/* Whether s is an http:// or https:// URL with a host, of sane length,
 * printable ASCII, without userinfo (credentials belong in headers, not in
 * URLs that end up in logs and job listings). */
bool api_url_ok(const char *s);
/* Parse "Prefer: wait=N" (RFC 7240); 0 when absent or invalid, else ms. */
int64_t api_prefer_wait(const char *prefer);
/* Parse a comma list of state names into a bitmask; -1 if one is bad. */
long api_states(const char *list);

/* ---- render.c ---- */

/* The job as the API shows it. New reference; NULL on OOM. `with_detail`:
 * payload and errors too. */
json_t *api_job_json(const ob_job *j, bool with_detail);
/* Recipients' outcomes as the API shows them (the shape of mail.send's
 * stored result). New reference; NULL on OOM. */
json_t *api_rcpts_json(const ob_mail_rcpt_status *r, size_t n);
/* The public form of a stored unique key (without the API's prefix). */
const char *api_unique_key(const char *stored);

/* ---- api.c, for the others ---- */

struct api {
    api_opts o;
    unsigned char (*token_hash)[32];
    _Atomic bool draining;
    struct waitlist *w;
    struct events *ev;
    struct metrics *metrics;
    struct stats *stats;
};

/* Register a route: fn gets the api as its argument. Every route is
 * behind the gate (api.c): authentication, and without tokens the
 * loopback Host and Origin checks, all before the body is read. */
int api_route(api *a, ob_http_server *srv, const char *method, const char *path,
              ob_http_handler fn, unsigned flags);


/* Answer the error an engine call returned. */
void api_reply_rc(ob_http_req *r, int rc, const char *field);
void api_later_rc(ob_http_later *l, int rc, const char *field);
/* Status and code of an engine error. */
int api_status(int rc, const char **code);

/* ---- jobs_api.c ---- */
int api_jobs_routes(api *a, ob_http_server *srv);

typedef struct api_error api_error;

/* How an endpoint that speaks another service's API answers (compat_*.c):
 * from the facts the native answers come from. NULL: outbox's own. */
typedef struct api_dialect {
    int accepted_status; /* of a single POST's answer: 200 */
    /* an item stored (or, existed, the job a repeated key names): its
     * answer, a new reference; `extra` is the item's (may be NULL) */
    json_t *(*accepted)(const char *id, bool existed, const json_t *extra);
    /* an item refused: its answer, a new reference (status: e->status) */
    json_t *(*refused)(const api_error *e);
    /* a batch's answer around its results (taken) */
    json_t *(*batch)(json_t *results);
    int max_batch;       /* items a batch may hold (0: --max-batch) */
} api_dialect;

/* A job to enqueue from a POST, decoded and checked by its endpoint. */
typedef struct api_post {
    ob_new_job j;
    const char *callback_url; /* or NULL */
    const char *unique_key;   /* the body's unique_key, or NULL */
    const char *view;         /* the status URL's prefix: "/v1/jobs/", "/v1/messages/" */
    json_t *extra;            /* owned (taken by api_enqueue): members added to the
                                 202 body, or NULL */
    const api_dialect *dialect; /* NULL: answer as outbox does */
} api_post;

/* Why an item a client posted is refused: the HTTP status, the error
 * code, and the member and sentence. */
struct api_error {
    int status;
    const char *code;
    ob_problem p;
};
/* Fill *e (field NULL: the whole item); returns -1. */
int api_refuse(api_error *e, int status, const char *code, const char *field, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

/* One item of a POST, decoded by its endpoint: the job and what holds its
 * memory. Clear it whatever the decoding answered. */
typedef struct api_item {
    api_post p;
    char *payload; /* owned: the bytes p.j.payload points at, or NULL (the body's) */
    char *text;    /* owned: the strings p points at, or NULL */
    json_t *tree;  /* owned: a decoded body p's strings point into, or NULL */
    char rate_key[OB_RATE_KEY_MAX + 1]; /* a default p.j.rate_key points at */
} api_item;
void api_item_clear(api_item *it);
/* An endpoint's decoder: 0 with *it filled, or -1 with *e (and *it
 * cleared). */
typedef int (*api_decode_fn)(api *a, const jspan *body, api_item *it, api_error *e);
/* For decoders that read a tree: `body` as one (a new reference; NULL on
 * OOM, with *e). */
json_t *api_tree(const jspan *body, api_error *e);
/* A decoder over a tree, as an api_decode_fn: `body` made a tree, kept in
 * it->tree (what `fn` took from it stays valid), then given to fn. */
typedef int (*api_decode_tree_fn)(api *a, const json_t *body, api_item *it, api_error *e);
int api_decode_tree(api *a, const jspan *body, api_item *it, api_error *e, api_decode_tree_fn fn);
/* The answer to an accepted item as JSON text: {"id", "state",
 * "status_url"} and extra's members (extra may be NULL); malloc'd, NULL on
 * OOM. */
char *api_accepted_json(const char *id, const char *state, const char *url, const json_t *extra);
/* The request's body scanned (jscan): true and *top, or false answered
 * (400 invalid_json, naming the byte). */
bool api_body_scan(ob_http_req *r, jspan *top);
/* POST of one item: decoded by `decode`, then refused or enqueued
 * (api_enqueue). */
void api_post_one(api *a, ob_http_req *r, api_decode_fn decode);
/* The same, answered in `d`'s dialect (d may be NULL). */
void api_post_one_in(api *a, ob_http_req *r, api_decode_fn decode, const api_dialect *d);
/* Answer e (an item refused before the engine saw it) in d's dialect, or
 * outbox's own (d NULL). */
void api_reply_refused(ob_http_req *r, const api_error *e, const api_dialect *d);

/* A message as the API takes it (ob_mail_parse's members; `msg` is taken),
 * to be sent at run_at (0: now) with an optional callback: validated,
 * signed (DKIM), made into *it as POST /v1/messages does, its 202 members
 * (message_id, recipients) in it->p.extra. 0, or -1 with *e. The
 * compatible endpoints (compat_*.c) make `msg` from their own fields. */
int api_message_item(api *a, json_t *msg, int64_t run_at, const char *callback_url, api_item *it,
                     api_error *e);

/* Enqueue p for request r and answer it once the job is durable (202),
 * with Idempotency-Key and Prefer: wait honoured; or answer the error. */
void api_enqueue(api *a, ob_http_req *r, api_post *p);
/* The meta a job carries for the API: {"callback_url","request_sha256"}
 * (either may be NULL), malloc'd; NULL when both are (or out of memory). */
char *api_make_meta(const char *callback_url, const char *sha);
/* Whether `url` (NULL: no) names a literal address the outbound policy
 * refuses, so the job would only be discarded: then true, with field[cap]
 * = name and *why the sentence (thread-local storage). */
bool api_url_refused(api *a, const char *url, const char *name, char *field, size_t cap,
                     const char **why);
/* GET of the job named by the "id" parameter (404 unless of `kind`, when
 * not NULL), with Prefer: wait. */
void api_get_job(api *a, ob_http_req *r, const char *kind);

/* ---- batch.c: many items in one request ---- */
/* POST .../batch, {"NAME": [...]} (or the array): each item decoded by
 * `decode` and stored on its own, as api_post_one would; one result per
 * item, in order, answered once every accepted item is durable. */
void api_post_batch(api *a, ob_http_req *r, const char *name, api_decode_fn decode);
/* The same, answered in `d`'s dialect (d may be NULL). */
void api_post_batch_in(api *a, ob_http_req *r, const char *name, api_decode_fn decode,
                       const api_dialect *d);

/* ---- bulk_api.c: POST /v1/jobs/retry, /v1/jobs/cancel ---- */
int api_bulk_routes(api *a, ob_http_server *srv);

/* ---- queues_api.c: GET /v1/queues[/{name}], PATCH /v1/queues/{name} ---- */
int api_queues_routes(api *a, ob_http_server *srv);

/* ---- stats.c: GET /v1/stats, GET /v1/nodes ---- */
typedef struct stats stats;
int stats_new(api *a, ob_http_server *srv);
void stats_free(api *a);

/* ---- ui.c: the dashboard, /ui/ ---- */
int api_ui_routes(api *a, ob_http_server *srv);

/* ---- schedules_api.c: /v1/schedules ---- */
int api_schedules_routes(api *a, ob_http_server *srv);
/* A POST /v1/jobs body as a job (kind, payload, callback_url, rate_key
 * and all the checks of that endpoint), for whoever takes one. */
int api_decode_job_item(api *a, const jspan *body, api_item *it, api_error *e);

/* ---- messages_api.c ---- */
int api_messages_routes(api *a, ob_http_server *srv);

/* ---- compat_postmark.c: POST /email, /email/batch (Postmark's API) ---- */
int api_postmark_routes(api *a, ob_http_server *srv);
/* 401 in Postmark's shape: no X-Postmark-Server-Token, or a bad one. */
void api_postmark_unauthorized(ob_http_req *r, bool missing);

/* ---- compat_resend.c: /emails, /emails/batch, GET /emails/{id} ---- */
int api_resend_routes(api *a, ob_http_server *srv);

/* An array of {kn: string, vn: string} pairs (vn may be missing when
 * value_optional: "") into a new object {name: value} in *out; 0, or -1
 * with *e naming `field` (decode.c; the compatible APIs' headers and
 * tags). */
int api_pairs(const json_t *v, const char *kn, const char *vn, bool value_optional,
              const char *field, json_t **out, api_error *e);

/* ---- suppressions_api.c ---- */
int api_suppressions_routes(api *a, ob_http_server *srv);
/* An entry of the suppression list as the API shows it. New reference. */
json_t *api_suppression_json(const ob_suppression *s);
/* 401 (no key) or 403 (a bad one) in Resend's shape. */
void api_resend_unauthorized(ob_http_req *r, bool missing);

/* ---- events.c ---- */
int events_new(api *a, ob_http_server *srv);
void events_free(api *a);

/* ---- metrics.c ---- */
typedef struct metrics metrics;
int metrics_new(api *a, ob_http_server *srv);
void metrics_free(api *a);

/* ---- wait.c ---- */
typedef struct waitlist waitlist;
int waitlist_new(api *a, waitlist **out);
void waitlist_free(waitlist *w);
/* Hold `l` until job `id` is final (answer 200 with it) or wait_ms pass
 * (answer `timeout_status` with its current state). Takes the handle: it
 * is answered in every case. */
void waitlist_add(waitlist *w, const ob_id *id, ob_http_later *l, int64_t wait_ms,
                  int timeout_status);

#endif
