/*
 * outbox/http.h - an HTTP/1.1 server library to embed, built on GNU
 * libmicrohttpd. It knows nothing of jobs.
 *
 * Each gotcha of the Q&A this part was born from is a rule here:
 *
 *   - A request is valid only while its handler runs. Everything derived
 *     from it (path, parameters, headers, body, parsed JSON, memory from
 *     ob_http_alloc) lives in the request's arena, which is poisoned when
 *     the handler returns (debug builds: a thread that kept a pointer
 *     crashes under ASan) and freed when the response is done.
 *   - A request is used only on the thread running its handler; nothing
 *     in it is parsed lazily behind the caller's back.
 *   - A handler must answer (ob_http_reply*) or suspend (ob_http_suspend)
 *     before it returns. One that does neither is a bug: the server
 *     answers 500 and logs it — never a silent 200.
 *   - To answer later (after a commit, when a job ends), suspend: the
 *     handle may be answered once from any thread; answering after the
 *     client left or the server shut down is harmless and reported
 *     (OB_EGONE / OB_ESHUTDOWN).
 *
 * Every limit has a default, an option, and its status code: header bytes
 * and count (431), body bytes (413), body bytes of all requests together
 * (503), media type (415), header and body read time (408, against
 * slowloris), idle keep-alive time, connections (503 beyond the limit),
 * connections per client address (closed), suspended responses
 * (ob_http_suspend: OB_EBUSY). A gate (ob_http_opts.gate) refuses before
 * the body is read.
 *
 * Errors follow outbox/common.h: 0 or a negative OB_E* code.
 */
#ifndef OUTBOX_HTTP_H
#define OUTBOX_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_http_server ob_http_server;
typedef struct ob_http_req ob_http_req;
typedef struct ob_http_later ob_http_later;

typedef void (*ob_http_handler)(ob_http_req *req, void *arg);

/* One access-log record, for ob_http_opts.access_log. Strings valid during
 * the call only. */
typedef struct ob_http_access {
    const char *method;
    const char *path;
    int status;         /* 0: no response was sent (client gone, timeout) */
    uint64_t bytes;     /* response body bytes */
    double ms;          /* from headers received to response done */
    const char *remote; /* "ip:port" */
    const char *line;   /* the whole record as one JSON line */
} ob_http_access;

typedef void (*ob_http_log_fn)(void *arg, const ob_http_access *a);

typedef struct ob_http_opts {
    const char *listen;        /* "HOST:PORT", "[V6]:PORT"; port 0: any; default "127.0.0.1:8080" */
    int threads;               /* event-loop threads running handlers; default: CPUs */
    int max_connections;       /* beyond it: 503 and close; default 1024 */
    size_t max_header_bytes;   /* request line + headers; 431; default 16 KiB */
    int max_headers;           /* count; 431; default 100 */
    size_t max_body;           /* 413; default 1 MiB */
    int64_t header_timeout_ms; /* all headers within; 408; default 10 s */
    int64_t body_timeout_ms;   /* the whole body within; 408; default 30 s */
    int64_t idle_timeout_ms;   /* keep-alive idle; closed silently; default 60 s */
    int max_suspended;         /* responses suspended at once; default 10,000 */
    int64_t suspend_timeout_ms; /* a suspended response unanswered this long
                                   gets 504; default 10 min */
    size_t max_stream_buffer;  /* bytes a stream may hold for a slow client; 1 MiB */
    size_t max_body_total;     /* body bytes held by all requests together (a body's
                                  length is reserved when it is announced); 503 past
                                  it; default 256 MiB */
    int max_connections_per_ip; /* connections from one client address; past it a new
                                   one is closed at once; default 0: no limit */
    ob_http_log_fn access_log; /* NULL: one INFO line per request via ob_log */
    void *access_log_arg;
} ob_http_opts;

void ob_http_opts_init(ob_http_opts *o);

/* The gate: authentication and other refusals that must not cost the body.
 * Set it before start (one per server; OB_ESTATE after start). It runs on
 * the event-loop thread for every request that matched a route,
 * once its headers are in, and sees the request as a handler does (method,
 * path, parameters, query, headers, ob_http_route_pattern) but without a
 * body. It may refuse by answering (ob_http_reply*, after
 * ob_http_set_header): the body is then never read (a connection that
 * announced one is closed after the answer). It may raise or lower this
 * request's body limit (ob_http_set_max_body). If it does not answer, the
 * request goes on to its handler. It may not suspend or stream. */
int ob_http_set_gate(ob_http_server *s, ob_http_handler gate, void *arg);
/* From the gate: this request's body limit (default opts.max_body; at most
 * 1 GiB). Returns 0, or OB_ESTATE outside the gate. */
int ob_http_set_max_body(ob_http_req *r, size_t max);

/* Create a server (not listening yet). `opts` NULL: defaults; copied.
 * *out owns it: ob_http_server_free(). Returns 0 or OB_EINVAL/OB_ENOMEM. */
int ob_http_server_new(const ob_http_opts *opts, ob_http_server **out);

/* Route flags. */
enum {
    OB_HTTP_JSON = 1, /* a request body must be application/json (else 415) */
};

/* Route METHOD PATTERN to fn. Patterns are absolute paths whose segments
 * are literals or {name} parameters: "/v1/jobs/{id}/cancel". A path that
 * matches no pattern gets 404; one that matches with another method, 405
 * with Allow. Call before start. `arg` is the caller's; strings copied. */
int ob_http_route(ob_http_server *s, const char *method, const char *pattern,
                  ob_http_handler fn, void *arg, unsigned flags);

/* Start listening and serving. Returns 0, OB_EINVAL (bad address) or
 * OB_EADDR (cannot bind: in use, or not permitted; the error is logged). */
int ob_http_server_start(ob_http_server *s);

/* The port actually bound (after start; useful with port 0). */
int ob_http_server_port(const ob_http_server *s);

/* Graceful stop: stop accepting; answer 503 to suspended responses; let
 * requests in flight finish for up to drain_ms, then close what is left.
 * Returns 0, or OB_ETIMEDOUT if connections had to be cut. Idempotent. */
int ob_http_server_stop(ob_http_server *s, int64_t drain_ms);

/* Responses sent with this status so far (100..599; 0 otherwise). */
uint64_t ob_http_status_count(const ob_http_server *s, int status);
/* Seconds from each request's headers to its response done (or the
 * client gone), as a histogram. */
void ob_http_durations(const ob_http_server *s, ob_histogram *out);

/* Stop (drain 5 s) if needed and free. NULL is a no-op. */
void ob_http_server_free(ob_http_server *s);

/* ---- the request (handler thread only, until the handler returns) ---- */

/* Every string and pointer returned below is the request's: borrowed,
 * valid until the handler returns. */

const char *ob_http_method(const ob_http_req *r);
const char *ob_http_path(const ob_http_req *r);   /* decoded, without the query */
const char *ob_http_remote(const ob_http_req *r); /* "ip:port" */
/* A {name} parameter of the matched pattern, or NULL. */
const char *ob_http_param(const ob_http_req *r, const char *name);
/* The route pattern the request matched ("/v1/jobs/{id}"). */
const char *ob_http_route_pattern(const ob_http_req *r);
/* A query argument (decoded), or NULL; the first if repeated. */
const char *ob_http_query(const ob_http_req *r, const char *name);
/* A request header, names compared case-insensitively, or NULL. */
const char *ob_http_header(const ob_http_req *r, const char *name);
/* The body (NUL-terminated after len bytes; NULL and 0 when none). */
const void *ob_http_body(const ob_http_req *r, size_t *len);
/* The body parsed as JSON (strict: duplicate keys and trailing garbage
 * refused). Borrowed: freed with the request. On bad JSON the request has
 * already been answered 400 {"error":{"code":"invalid_json",...}} and NULL
 * is returned: just return. */
json_t *ob_http_body_json(ob_http_req *r);
/* n bytes of request memory (zeroed), freed with the request. NULL on
 * OOM or past the request's memory limit. */
void *ob_http_alloc(ob_http_req *r, size_t n);

/* The checks the server applies to headers, for a caller that builds
 * requests of its own: whether s is a header name (an RFC 9110 token), and
 * a header value (no control character but TAB: no CR, LF, NUL or DEL). */
bool ob_http_header_name_ok(const char *s);
bool ob_http_header_value_ok(const char *s);

/* ---- answering ---- */

/* Add a response header (before the reply). Name: an HTTP token; value:
 * no CR, LF or NUL (OB_EINVAL). Copied. */
int ob_http_set_header(ob_http_req *r, const char *name, const char *value);
/* Answer. `content_type` NULL: none. The body is copied. Exactly one
 * answer per request: another returns OB_ESTATE. */
int ob_http_reply(ob_http_req *r, int status, const char *content_type, const void *body,
                  size_t len);
/* Answer with JSON (compact; `v` borrowed). */
int ob_http_reply_json(ob_http_req *r, int status, const json_t *v);
/* Answer {"error":{"code":code,"message":message,"field":field|null}}. */
int ob_http_reply_error(ob_http_req *r, int status, const char *code, const char *message,
                        const char *field);

/* Suspend: the handler returns without answering and *out is a handle to
 * answer later from any thread, exactly once, with ob_http_later_*reply
 * (or give it up with ob_http_later_drop). Returns 0, OB_EBUSY
 * (max_suspended reached: answer now instead) or OB_ESTATE (already
 * answered or suspended). */
int ob_http_suspend(ob_http_req *r, ob_http_later **out);

/* Answer a suspended request: the same answers as above, from any thread.
 * A request in its handler and a suspended one are two handles because
 * their lifetimes differ (the first dies with the handler; the second
 * lives until answered); both share one implementation.
 *
 * Add a header first: ob_http_later_set_header does not consume the
 * handle; 0, or OB_EGONE / OB_ESHUTDOWN as below (then answer anyway, or
 * drop: the handle must still be consumed). Header rules as
 * ob_http_set_header. */
int ob_http_later_set_header(ob_http_later *l, const char *name, const char *value);
/* Each reply consumes the handle, whatever it returns: 0 (the response
 * will be sent), OB_EGONE (the client left or the request timed out:
 * nothing is sent), OB_ESHUTDOWN (the server answered 503 at shutdown). */
int ob_http_later_reply(ob_http_later *l, int status, const char *content_type,
                        const void *body, size_t len);
int ob_http_later_reply_json(ob_http_later *l, int status, const json_t *v);
int ob_http_later_reply_error(ob_http_later *l, int status, const char *code,
                              const char *message, const char *field);
/* Give up: the server answers 500. Consumes the handle. */
void ob_http_later_drop(ob_http_later *l);

/* ---- streamed answers (server-sent events, say) ---- */

typedef struct ob_http_stream ob_http_stream;

/* Answer 200 with a body written over time (chunked), from any thread:
 * this is the request's answer, and the handler returns after it. Response
 * headers set before are sent. *out is the handle: write to it, then close
 * it (exactly once). Returns 0, OB_ESTATE (already answered) or OB_ENOMEM. */
int ob_http_stream_start(ob_http_req *r, const char *content_type, ob_http_stream **out);
/* Append bytes (copied). 0; OB_EBUSY when more than max_stream_buffer bytes
 * wait for a slow client (nothing appended: close it, the client may
 * reconnect); OB_EGONE when the client left; OB_ESHUTDOWN when the server
 * is stopping. */
int ob_http_stream_write(ob_http_stream *st, const void *data, size_t len);
/* End the body and give up the handle. */
void ob_http_stream_close(ob_http_stream *st);

#ifdef __cplusplus
}
#endif
#endif
