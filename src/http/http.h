/*
 * http.h - internals of the HTTP server, shared by its files:
 *
 *   arena.c    per-request memory: bump allocation, cleanup hooks,
 *              poisoning when the handler returns
 *   router.c   METHOD + /path/{param} patterns, matching (pure: fuzzed)
 *   request.c  the request a handler sees, and the answers it gives
 *   later.c    suspended responses: the handle any thread may answer once
 *   server.c   libmicrohttpd: callbacks, limits, a request's phases, shutdown,
 *              the access log
 *   watch.c    connections, and the watch thread (read timeouts, clients gone
 *              while suspended, suspensions nobody answers)
 *
 * A request has two parts with two lifetimes:
 *   hreq        control block (malloc): what the server needs until the
 *               response is done — the pending response, the suspend
 *               handle, the access-log fields. Touched by the MHD thread,
 *               and under `later->mu` by whoever answers a suspension.
 *   ob_http_req the handler's view, in the arena: poisoned when the handler
 *               returns, freed when the response is done.
 */
#ifndef OB_HTTP_INTERNAL_H
#define OB_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "outbox/http.h"

/* ---- arena.c ---- */

typedef struct arena_chunk arena_chunk;
typedef struct arena_hook arena_hook;

typedef struct arena {
    arena_chunk *head;
    size_t total, limit;
    arena_hook *hooks;
    bool poisoned;
} arena;

void obi_arena_init(arena *a, size_t limit);
/* n zeroed bytes, 16-aligned; NULL past the limit or on OOM. */
void *obi_arena_alloc(arena *a, size_t n);
char *obi_arena_strndup(arena *a, const char *s, size_t n);
/* Run fn(arg) when the arena is poisoned (or freed). 0 or OB_ENOMEM. */
int obi_arena_on_poison(arena *a, void (*fn)(void *), void *arg);
/* The handler returned: run hooks, then make the memory unusable (ASan
 * poison; a 0xdb fill in other debug builds). */
void obi_arena_poison(arena *a);
void obi_arena_free(arena *a);

/* ---- router.c ---- */

#define ROUTE_PARAMS_MAX 8
#define ROUTE_SEGS_MAX 16

typedef struct route {
    char method[16];
    char *pattern;
    int nsegs;
    char *segs[ROUTE_SEGS_MAX]; /* literal, or the parameter name */
    bool param[ROUTE_SEGS_MAX];
    bool dir;                   /* the pattern ends in a slash */
    ob_http_handler fn;
    void *arg;
    unsigned flags;
} route;

typedef struct router {
    route *routes;
    int n, cap;
} router;

typedef struct route_match {
    const route *r;
    int nparams;
    const char *name[ROUTE_PARAMS_MAX]; /* borrowed from the route */
    const char *val[ROUTE_PARAMS_MAX];  /* into the path; not NUL-terminated */
    size_t len[ROUTE_PARAMS_MAX];
    char allow[96]; /* on 405: "GET, POST" */
} route_match;

/* 0, OB_EINVAL (bad method or pattern; logged) or OB_ENOMEM. */
int obi_router_add(router *rt, const char *method, const char *pattern, ob_http_handler fn,
               void *arg, unsigned flags);
/* 0 with *m set; OB_ENOTFOUND (404); OB_ESTATE (405, m->allow set). HEAD
 * matches GET routes. */
int obi_router_match(const router *rt, const char *method, const char *path, route_match *m);
void obi_router_free(router *rt);
/* Whether s is an HTTP token (RFC 9110 tchar+), as header names must be. */
bool obi_http_token(const char *s);
/* Whether s may be a header value: no CR, LF or NUL, no other control
 * characters but tab. */
bool obi_http_value_ok(const char *s);

/* ---- responses, shared by request.c and later.c ---- */

typedef struct resp_hdr {
    char *name, *value;
    struct resp_hdr *next;
} resp_hdr;

typedef struct resp {
    int status;       /* 0: none yet */
    char *ctype;
    resp_hdr *hdrs;
    char *body;
    size_t len;
} resp;

int obi_resp_add_header(resp *p, const char *name, const char *value);
/* Set status and a copy of body; 0 or OB_ENOMEM. */
int obi_resp_set(resp *p, int status, const char *ctype, const void *body, size_t len);
int obi_resp_set_json(resp *p, int status, const json_t *v);
int obi_resp_set_error(resp *p, int status, const char *code, const char *message, const char *field);
void obi_resp_clear(resp *p);

/* ---- the request ---- */

typedef struct hreq hreq;
typedef struct hconn hconn;

typedef enum later_state {
    LATER_SUSPENDED, /* waiting for an answer */
    LATER_ANSWERED,  /* answer stored, connection resumed */
    LATER_GONE,      /* client left or timed out: resumed to be closed */
    LATER_SHUTDOWN,  /* server stopping: resumed with 503 */
} later_state;

struct ob_http_later {
    pthread_mutex_t mu;
    int refs;            /* the server's and the holder's */
    later_state state;
    bool parked;         /* the connection is suspended in libmicrohttpd */
    hreq *q;             /* valid while the server holds its reference */
    resp r;              /* the answer, under mu until resumed */
};

struct ob_http_stream {
    pthread_mutex_t mu;
    int refs;            /* the server's and the holder's */
    hreq *q;             /* valid while the server holds its reference */
    char *buf;
    size_t off, len, cap;
    bool closed;         /* the holder ended the body */
    int gone;            /* 0, OB_EGONE or OB_ESHUTDOWN */
    bool parked;         /* suspended in libmicrohttpd's reader */
};

struct hreq {
    ob_http_server *s;
    hconn *c;
    struct MHD_Connection *mc;
    arena mem;
    ob_http_req *view;     /* in mem */
    const route *rt;
    int early_status;      /* an error found before the handler (431, 413, ...) */
    const char *early_code, *early_msg, *early_field;
    bool has_body, body_too_big, body_over_total, answered;
    bool in_gate;          /* the gate is running: it may answer, not suspend */
    bool view_filled;      /* the handler's view is built (fill_view) */
    char *body;            /* malloc'd, freed by a poison hook of mem */
    size_t body_len, body_cap, body_expected;
    size_t max_body;       /* this request's limit (the gate may change it) */
    size_t reserved;       /* bytes of s->body_bytes this request holds */
    resp r;                /* the answer of a handler that did not suspend */
    ob_http_later *later;  /* when suspended */
    ob_http_stream *stream; /* when streaming */
    /* access log */
    char method[16];
    char path[256];
    int status_sent;
    uint64_t bytes_sent;
    int64_t t0_us;
};

struct ob_http_req {
    hreq *q;
    const char *method, *path, *remote;
    route_match m;
    char *params[ROUTE_PARAMS_MAX];
    int nhdrs, nargs;
    const char **hdr_names, **hdr_values;
    const char **arg_names, **arg_values;
};

/* ---- server.c ---- */

struct ob_http_server {
    ob_http_opts o;
    router rt;
    ob_http_handler gate; /* or NULL */
    void *gate_arg;
    struct MHD_Daemon *d;
    int port;
    bool started, stopped;
    _Atomic bool stopping;
    _Atomic int nconns, nsuspended, nactive;
    _Atomic size_t body_bytes; /* request bodies held, against max_body_total */
    _Atomic uint64_t status_counts[600]; /* responses by status, for metrics */
    obi_hist durations;                   /* seconds, headers in to response done */
    pthread_mutex_t conns_mu; /* guards the conns list and every conn's fd use */
    hconn *conns;
    int watch_epfd;
    pthread_t watch;
    _Atomic bool watch_stop;
    char listen_host[128];
};

/* later.c */
int obi_later_new(hreq *q, ob_http_later **out);
/* Drop one reference; frees at zero. */
void obi_later_unref(ob_http_later *l);
/* The server side of a suspension ends (response done or connection
 * gone): clear the back pointer, drop the server's reference. */
void obi_later_detach(ob_http_later *l);
/* Resume the suspended connection of l with `state` (GONE or SHUTDOWN),
 * storing resp `r` for SHUTDOWN. false if l was no longer suspended. */
bool obi_later_cut(ob_http_later *l, later_state state, int status, const char *code,
               const char *msg);

/* ---- connections (watch.c) ---- */

enum {
    PH_HEADERS,   /* reading a request's headers (or idle between requests) */
    PH_BODY,      /* reading its body */
    PH_BUSY,      /* handler running, or answering */
    PH_SUSPENDED, /* parked, waiting for an answer */
    PH_TIMEDOUT,  /* the watch thread answered 408 */
};

struct hconn {
    hconn *next, *prev;      /* s->conns, under conns_mu */
    int fd;
    char remote[64];
    _Atomic int phase;
    _Atomic int64_t deadline; /* monotonic ms; 0: none */
    bool over_limit;
    bool watched;            /* fd in the watch epoll set (under the handle's mu, W1) */
    hreq *q;                 /* the request while it is parked (under conns_mu) */
};

static inline void obi_phase_set(hconn *c, int ph, int64_t timeout_ms)
{
    atomic_store(&c->deadline, timeout_ms ? ob_mono_ms() + timeout_ms : 0);
    atomic_store(&c->phase, ph);
}

/* Move c from `from` to `to` unless the watch thread timed it out (H2). */
static inline bool obi_phase_move(hconn *c, int from, int to, int64_t timeout_ms)
{
    int ph = from;
    if (!atomic_compare_exchange_strong(&c->phase, &ph, to))
        return false;
    atomic_store(&c->deadline, timeout_ms ? ob_mono_ms() + timeout_ms : 0);
    return true;
}

/* MHD's connection notification: an hconn made and listed, or unlisted
 * and freed (H1). */
void obi_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);
/* The watch thread (arg: the server), until s->watch_stop. */
void *obi_watch_main(void *arg);

/* server.c, for later.c and stream.c: stop watching a suspended
 * connection's socket, and resume it (MHD_resume_connection). Called with
 * the handle's mu held. */
void obi_server_resume(hreq *q);

/* stream.c */
void obi_stream_unref(ob_http_stream *st);
/* End a stream from the server side: OB_EGONE (the client left) or
 * OB_ESHUTDOWN. */
void obi_stream_cut(ob_http_stream *st, int why);
/* The request is done (its completion): forget it. */
void obi_stream_detach(ob_http_stream *st);
/* libmicrohttpd's content reader for a stream. */
ssize_t obi_stream_read(void *cls, uint64_t pos, char *buf, size_t max);

#endif
