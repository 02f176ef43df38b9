/*
 * server.c - the HTTP server on GNU libmicrohttpd (MHD): MHD does the
 * sockets, parsing, keep-alive, pipelining, chunked bodies and 100-continue
 * on an epoll thread pool; this file decides everything else.
 *
 * One request, as MHD's access handler sees it:
 *   1st call   headers are in: check limits (header count and size,
 *              connection limit), route, run the gate (it may refuse, or
 *              set the request's body limit), then check the body's size
 *              and media type and reserve its bytes against
 *              max_body_total. An error found now is answered at once only
 *              if a body follows (MHD then skips the body and closes);
 *              otherwise it waits for the last call, so keep-alive survives
 *              (answering on the 1st call loses it).
 *   body calls append to the arena (a body past max_body is skipped and
 *              answered 413).
 *   last call  run the handler; then answer, park (suspend) it, or — if it
 *              did neither — answer 500 and log the bug.
 *   resumed    a suspended request's answer (or 503/504, or a close).
 *   completed  access log; free the request.
 *
 * Connections and the watch thread, which does what MHD cannot (read
 * timeouts, clients that leave while suspended, suspensions nobody
 * answers), are in watch.c.
 *
 * Invariants
 *   H1, H2, W1: see watch.c.
 *   H3  Nothing is parked (suspended in MHD) once stopping is set: parking
 *       checks it under conns_mu, and stop cuts every parked request under
 *       conns_mu after setting it. So MHD_stop_daemon never meets a
 *       suspended connection.
 *   Lock order: conns_mu -> later.mu.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"

/* ---- options ---- */

void ob_http_opts_init(ob_http_opts *o)
{
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8080";
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n > 0 ? (int)n : 1;
    o->max_connections = 1024;
    o->max_header_bytes = 16 << 10;
    o->max_headers = 100;
    o->max_body = 1 << 20;
    o->header_timeout_ms = 10 * 1000;
    o->body_timeout_ms = 30 * 1000;
    o->idle_timeout_ms = 60 * 1000;
    o->max_suspended = 10000;
    o->suspend_timeout_ms = 10 * 60 * 1000;
    o->max_stream_buffer = 1 << 20;
    o->max_body_total = (size_t)256 << 20;
}

static const char *opts_bad(const ob_http_opts *o)
{
    if (!o->listen)
        return "listen";
    if (o->threads < 1 || o->threads > 256)
        return "threads (1..256)";
    if (o->max_connections < 1 || o->max_connections > 1000000)
        return "max_connections";
    if (o->max_header_bytes < 1024 || o->max_header_bytes > (1u << 20))
        return "max_header_bytes (1 KiB .. 1 MiB)";
    if (o->max_headers < 1 || o->max_headers > 10000)
        return "max_headers";
    if (o->max_body > ((size_t)1 << 30))
        return "max_body (.. 1 GiB)";
    if (o->header_timeout_ms < 1 || o->body_timeout_ms < 1 || o->idle_timeout_ms < 1000 ||
        o->suspend_timeout_ms < 1)
        return "timeouts (idle at least 1 s)";
    if (o->max_suspended < 0)
        return "max_suspended";
    if (o->max_stream_buffer < 1024)
        return "max_stream_buffer (at least 1 KiB)";
    if (o->max_body_total < 1024)
        return "max_body_total (at least 1 KiB)";
    if (o->max_connections_per_ip < 0)
        return "max_connections_per_ip";
    return NULL;
}

/* ---- access log ---- */

static void access_log(ob_http_server *s, hreq *q, const char *remote)
{
    if (!s->o.access_log && !ob_log_enabled(OB_LOG_INFO))
        return; /* nobody would read it: do not build it */
    double ms = (double)(obi_mono_us() - q->t0_us) / 1000.0;
    json_t *j = json_pack("{s:s, s:s, s:i, s:I, s:f, s:s}", "method", q->method, "path",
                          q->path, "status", q->status_sent, "bytes", (json_int_t)q->bytes_sent,
                          "ms", ms, "remote", remote);
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    ob_http_access a = {q->method, q->path, q->status_sent, q->bytes_sent, ms, remote,
                        line ? line : "{}"};
    if (s->o.access_log)
        s->o.access_log(s->o.access_log_arg, &a);
    else
        ob_logf(OB_LOG_INFO, "http: %s", a.line);
    free(line);
    json_decref(j);
}

/* ---- the request ---- */

typedef struct kv_copy {
    arena *a;
    const char **names, **values;
    int n, max;
    bool oom;
} kv_copy;

static enum MHD_Result count_kv(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind, (void)k, (void)v;
    (*(int *)cls)++;
    return MHD_YES;
}

static enum MHD_Result copy_kv(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    kv_copy *kc = cls;
    if (kc->n >= kc->max)
        return MHD_NO;
    const char *name = obi_arena_strndup(kc->a, k, strlen(k));
    const char *value = obi_arena_strndup(kc->a, v ? v : "", v ? strlen(v) : 0);
    if (!name || !value) {
        kc->oom = true;
        return MHD_NO;
    }
    kc->names[kc->n] = name;
    kc->values[kc->n++] = value;
    return MHD_YES;
}

/* Copy one kind of key-value pairs into the arena. false on OOM. */
static bool copy_values(hreq *q, enum MHD_ValueKind kind, int *n, const char ***names,
                        const char ***values)
{
    int count = 0;
    MHD_get_connection_values(q->mc, kind, count_kv, &count);
    kv_copy kc = {&q->mem, NULL, NULL, 0, count, false};
    if (count) {
        kc.names = obi_arena_alloc(&q->mem, sizeof *kc.names * (size_t)count);
        kc.values = obi_arena_alloc(&q->mem, sizeof *kc.values * (size_t)count);
        if (!kc.names || !kc.values)
            return false;
        MHD_get_connection_values(q->mc, kind, copy_kv, &kc);
    }
    *n = kc.n;
    *names = kc.names;
    *values = kc.values;
    return !kc.oom;
}

static void early(hreq *q, int status, const char *code, const char *msg, const char *field)
{
    if (!q->early_status) {
        q->early_status = status;
        q->early_code = code;
        q->early_msg = msg;
        q->early_field = field;
    }
}

static bool json_ctype(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Build the handler's view: everything it may read, copied. false: OOM.
 * Done once, for the gate (when there is one) or for the handler. */
static bool fill_view(hreq *q, const char *url, const char *method)
{
    ob_http_req *v = q->view;
    if (q->view_filled)
        return true;
    v->q = q;
    v->method = obi_arena_strndup(&q->mem, method, strlen(method));
    v->path = obi_arena_strndup(&q->mem, url, strlen(url));
    v->remote = obi_arena_strndup(&q->mem, q->c->remote, strlen(q->c->remote));
    for (int i = 0; i < v->m.nparams; i++)
        if (!(v->params[i] = obi_arena_strndup(&q->mem, v->m.val[i], v->m.len[i])))
            return false;
    for (int i = 0; i < v->m.nparams; i++)
        v->m.val[i] = v->params[i]; /* not into MHD's buffer */
    q->view_filled = v->method && v->path && v->remote &&
                     copy_values(q, MHD_HEADER_KIND, &v->nhdrs, &v->hdr_names, &v->hdr_values) &&
                     copy_values(q, MHD_GET_ARGUMENT_KIND, &v->nargs, &v->arg_names, &v->arg_values);
    return q->view_filled;
}

/* Hold n more body bytes against max_body_total. false: past it. */
static bool reserve(hreq *q, size_t n)
{
    ob_http_server *s = q->s;
    size_t before = atomic_fetch_add(&s->body_bytes, n);
    if (before + n > s->o.max_body_total) {
        atomic_fetch_sub(&s->body_bytes, n);
        return false;
    }
    q->reserved += n;
    return true;
}

static void release(hreq *q)
{
    atomic_fetch_sub(&q->s->body_bytes, q->reserved);
    q->reserved = 0;
}

/* The gate, on a routed request's headers. */
static void run_gate(hreq *q, const char *url, const char *method)
{
    ob_http_server *s = q->s;
    if (!fill_view(q, url, method)) {
        early(q, 500, "out_of_memory", "the request needs more memory than allowed", NULL);
        return;
    }
    q->in_gate = true;
    s->gate(q->view, s->gate_arg);
    q->in_gate = false;
}

/* Limits, routing and the gate, on the first call. Sets q->early_status
 * on a refusal, or the gate answers (q->answered). */
static void check_request(hreq *q, const char *url, const char *method)
{
    ob_http_server *s = q->s;
    ob_http_req *v = q->view;
    if (atomic_load(&s->stopping))
        early(q, 503, "shutting_down", "the server is shutting down", NULL);
    if (q->c->over_limit)
        early(q, 503, "too_many_connections", "the server is at its connection limit", NULL);
    const union MHD_ConnectionInfo *hi =
        MHD_get_connection_info(q->mc, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    int nh = 0;
    MHD_get_connection_values(q->mc, MHD_HEADER_KIND, count_kv, &nh);
    if ((hi && hi->header_size > s->o.max_header_bytes) || nh > s->o.max_headers)
        early(q, 431, "headers_too_large", "the request headers are too large or too many", NULL);

    const char *cl = MHD_lookup_connection_value(q->mc, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(q->mc, MHD_HEADER_KIND, "Transfer-Encoding");
    unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
    q->has_body = len > 0 || (te && strcasecmp(te, "identity") != 0);

    int rc = obi_router_match(&s->rt, method, url, &v->m);
    if (rc == OB_ENOTFOUND)
        early(q, 404, "not_found", "no such resource", NULL);
    else if (rc == OB_ESTATE)
        early(q, 405, "method_not_allowed", "the resource does not allow this method", NULL);
    else
        q->rt = v->m.r;
    if (q->rt && !q->early_status && s->gate)
        run_gate(q, url, method);
    if (q->answered || q->early_status)
        return;
    if (len > q->max_body)
        early(q, 413, "body_too_large", "the request body is larger than allowed", NULL);
    else if (len && !reserve(q, (size_t)len))
        early(q, 503, "busy", "the server holds too many request bodies; retry shortly", NULL);
    else
        q->body_expected = (size_t)len;
    if (q->rt && (q->rt->flags & OB_HTTP_JSON) && q->has_body &&
        !json_ctype(MHD_lookup_connection_value(q->mc, MHD_HEADER_KIND, "Content-Type")))
        early(q, 415, "unsupported_media_type", "the request body must be application/json",
              "Content-Type");
}

static hreq *hreq_new(ob_http_server *s, hconn *c, struct MHD_Connection *mc, const char *url,
                      const char *method)
{
    hreq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->s = s;
    q->c = c;
    q->mc = mc;
    q->t0_us = obi_mono_us();
    snprintf(q->method, sizeof q->method, "%s", method);
    snprintf(q->path, sizeof q->path, "%s", url);
    obi_arena_init(&q->mem, s->o.max_header_bytes * 4 + (64 << 10)); /* the body is apart */
    q->view = obi_arena_alloc(&q->mem, sizeof *q->view);
    if (!q->view) {
        obi_arena_free(&q->mem);
        free(q);
        return NULL;
    }
    q->view->q = q;
    q->max_body = s->o.max_body;
    atomic_fetch_add(&s->nactive, 1);
    return q;
}

static void hreq_free(hreq *q)
{
    obi_arena_free(&q->mem); /* runs free_body */
    release(q);
    obi_resp_clear(&q->r);
    free(q);
}

static void stream_response_freed(void *cls) { obi_stream_unref(cls); }

/* A streamed answer: MHD pulls the body from the stream; the stream is
 * registered for the watch thread and for stop. */
static struct MHD_Response *stream_response(hreq *q)
{
    struct MHD_Response *m = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 << 10, obi_stream_read, q->stream, stream_response_freed);
    if (!m)
        return NULL;
    pthread_mutex_lock(&q->s->conns_mu);
    q->c->q = q;
    pthread_mutex_unlock(&q->s->conns_mu);
    MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return m;
}

/* Hand q->r to MHD. */
static enum MHD_Result send_resp(hreq *q)
{
    resp *r = &q->r;
    if (!r->status)
        obi_resp_set_error(r, 500, "internal", "no response", NULL);
    struct MHD_Response *m =
        q->stream ? stream_response(q)
                  : MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!m)
        return MHD_NO;
    if (!q->stream)
        r->body = NULL; /* MHD frees it */
    if (r->ctype)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    bool retry_after = false;
    for (resp_hdr *h = r->hdrs; h; h = h->next) {
        MHD_add_response_header(m, h->name, h->value);
        retry_after |= strcasecmp(h->name, "Retry-After") == 0;
    }
    if (r->status == 503 && !retry_after) /* every 503 says when to come back */
        MHD_add_response_header(m, "Retry-After", "1");
    if (atomic_load(&q->s->stopping))
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
    q->status_sent = r->status;
    q->bytes_sent = r->len;
    atomic_fetch_add_explicit(&q->s->status_counts[r->status], 1, memory_order_relaxed);
    enum MHD_Result ok = MHD_queue_response(q->mc, (unsigned)r->status, m);
    MHD_destroy_response(m);
    obi_phase_set(q->c, PH_BUSY, 0);
    return ok;
}

static enum MHD_Result send_early(hreq *q)
{
    obi_resp_set_error(&q->r, q->early_status, q->early_code, q->early_msg, q->early_field);
    if (q->early_status == 405 && q->view->m.allow[0])
        obi_resp_add_header(&q->r, "Allow", q->view->m.allow);
    return send_resp(q);
}

/* Take the answer of a resumed (or quickly answered) suspension. MHD_NO:
 * the client is gone, close. */
static enum MHD_Result send_later(hreq *q)
{
    ob_http_later *l = q->later;
    pthread_mutex_lock(&l->mu);
    bool close_it = l->state == LATER_GONE && !l->r.status;
    obi_resp_clear(&q->r);
    q->r = l->r;
    memset(&l->r, 0, sizeof l->r);
    pthread_mutex_unlock(&l->mu);
    return close_it ? MHD_NO : send_resp(q);
}

/* The handler suspended: park the connection unless an answer already came
 * or the server is stopping (H3). */
static enum MHD_Result park(hreq *q)
{
    ob_http_server *s = q->s;
    ob_http_later *l = q->later;
    bool parked = false;
    pthread_mutex_lock(&s->conns_mu);
    pthread_mutex_lock(&l->mu);
    if (l->state == LATER_SUSPENDED && atomic_load(&s->stopping)) {
        obi_resp_set_error(&l->r, 503, "shutting_down", "the server is shutting down", NULL);
        l->state = LATER_SHUTDOWN;
    } else if (l->state == LATER_SUSPENDED) {
        q->c->q = q; /* for the watch thread and stop (under conns_mu) */
        obi_phase_set(q->c, PH_SUSPENDED, s->o.suspend_timeout_ms);
        MHD_suspend_connection(q->mc); /* the sweep watches it if it stays (W1) */
        l->parked = parked = true;
    }
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&s->conns_mu);
    return parked ? MHD_YES : send_later(q);
}

static enum MHD_Result run_handler(hreq *q)
{
    ob_http_req *v = q->view;
    q->rt->fn(v, q->rt->arg);
    obi_arena_poison(&q->mem); /* the request ends with its handler */
    if (q->answered)
        return send_resp(q);
    if (q->later)
        return park(q);
    OB_ERROR("http: %s %s: the handler returned without answering or suspending: "
             "answered 500", q->method, q->path);
    obi_resp_set_error(&q->r, 500, "internal", "the handler did not answer", NULL);
    return send_resp(q);
}

/* The last call: the whole request is in. */
static enum MHD_Result last_call(hreq *q)
{
    if (q->later)
        return send_later(q); /* resumed */
    if (q->answered)
        return send_resp(q);
    int from = q->has_body ? PH_BODY : PH_BUSY;
    if (from == PH_BODY && !obi_phase_move(q->c, PH_BODY, PH_BUSY, 0))
        return MHD_NO; /* the watch thread answered 408 */
    if (q->body_too_big)
        early(q, 413, "body_too_large", "the request body is larger than allowed", NULL);
    if (q->body_over_total)
        early(q, 503, "busy", "the server holds too many request bodies; retry shortly", NULL);
    if (q->early_status)
        return send_early(q);
    if (!fill_view(q, q->path, q->method)) {
        obi_resp_set_error(&q->r, 500, "out_of_memory", "the request needs more memory than allowed",
                       NULL);
        return send_resp(q);
    }
    return run_handler(q);
}

static void free_body(void *arg)
{
    hreq *q = arg;
    free(q->body);
    q->body = NULL;
    release(q);
}

/* Append to the body. Its buffer is apart from the arena, grown with
 * realloc (sized once when Content-Length was given), so a body may use
 * all of the request's max_body; like the arena it dies when the handler
 * returns. Its bytes are held against max_body_total: reserved whole when
 * the length was announced, else as they come. */
static void take_body(hreq *q, const char *data, size_t n)
{
    size_t max = q->max_body;
    if (q->body_too_big || q->body_over_total || q->body_len + n > max) {
        q->body_too_big = !q->body_over_total;
        return;
    }
    if (q->body_len + n > q->reserved) {
        size_t more = q->body_len + n - q->reserved;
        if (more < (64 << 10) && q->reserved + (64 << 10) <= max)
            more = 64 << 10; /* in steps, not a reservation per read */
        if (!reserve(q, more)) {
            q->body_over_total = true;
            return;
        }
    }
    if (q->body_len + n + 1 > q->body_cap) {
        size_t cap = q->body_cap ? q->body_cap * 2 : q->body_expected ? q->body_expected + 1 : 4096;
        while (cap < q->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *b = realloc(q->body, cap); /* on failure q->body is unchanged */
        if (b && !q->body && obi_arena_on_poison(&q->mem, free_body, q)) {
            free(b);
            b = NULL;
        }
        if (!b) {
            q->body_too_big = true; /* out of memory: refuse it, honestly */
            return;
        }
        q->body = b;
        q->body_cap = cap;
    }
    memcpy(q->body + q->body_len, data, n);
    q->body_len += n;
    q->body[q->body_len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    ob_http_server *s = cls;
    hreq *q = *con_cls;
    if (!q) { /* first call: headers are in */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        hconn *c = ci ? ci->socket_context : NULL;
        if (!c || !obi_phase_move(c, PH_HEADERS, PH_BUSY, 0))
            return MHD_NO; /* the watch thread answered 408 */
        if (!(q = hreq_new(s, c, mc, url, method)))
            return MHD_NO;
        *con_cls = q;
        check_request(q, url, method);
        if (q->has_body) {
            if (q->early_status)
                return send_early(q); /* MHD skips the body and closes */
            if (q->answered)
                return send_resp(q); /* the gate refused it: the body is not read */
            obi_phase_set(c, PH_BODY, s->o.body_timeout_ms);
        }
        return MHD_YES; /* answer later: keep-alive survives, 100-continue is sent */
    }
    if (*upload_size) {
        if (atomic_load(&q->c->phase) == PH_TIMEDOUT)
            return MHD_NO;
        take_body(q, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return last_call(q);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)mc, (void)why;
    ob_http_server *s = cls;
    hreq *q = *con_cls;
    if (!q)
        return;
    *con_cls = NULL;
    hconn *c = q->c;
    if (atomic_load(&c->phase) == PH_TIMEDOUT)
        q->status_sent = 408;
    access_log(s, q, c->remote);
    obi_hist_observe(&s->durations, (double)(obi_mono_us() - q->t0_us) / 1e6);
    if (q->later || q->stream) { /* only these were seen by the watch thread */
        pthread_mutex_lock(&s->conns_mu);
        c->q = NULL;
        pthread_mutex_unlock(&s->conns_mu);
    }
    if (q->later)
        obi_later_detach(q->later);
    if (q->stream) /* the response's free callback drops the server's reference */
        obi_stream_detach(q->stream);
    hreq_free(q);
    atomic_fetch_sub(&s->nactive, 1);
    /* The next request on this connection: idle time, then its headers. */
    if (atomic_load(&c->phase) != PH_TIMEDOUT)
        obi_phase_set(c, PH_HEADERS, s->o.idle_timeout_ms + s->o.header_timeout_ms);
}

/* ---- life ---- */

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt,
                                                          va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    ob_logf(OB_LOG_INFO, "http: libmicrohttpd: %s", line);
}

int ob_http_server_new(const ob_http_opts *opts, ob_http_server **out)
{
    if (!out)
        return OB_EINVAL;
    ob_http_opts def;
    if (!opts) {
        ob_http_opts_init(&def);
        opts = &def;
    }
    const char *bad = opts_bad(opts);
    if (bad) {
        OB_ERROR("http: invalid option: %s", bad);
        return OB_EINVAL;
    }
    ob_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return OB_ENOMEM;
    s->o = *opts;
    snprintf(s->listen_host, sizeof s->listen_host, "%s", opts->listen);
    s->o.listen = s->listen_host;
    s->watch_epfd = -1;
    s->durations.bounds = obi_hist_seconds;
    pthread_mutex_init(&s->conns_mu, NULL);
    *out = s;
    return 0;
}

int ob_http_route(ob_http_server *s, const char *method, const char *pattern,
                  ob_http_handler fn, void *arg, unsigned flags)
{
    if (!s || s->started)
        return OB_ESTATE;
    return obi_router_add(&s->rt, method, pattern, fn, arg, flags);
}

int ob_http_set_gate(ob_http_server *s, ob_http_handler gate, void *arg)
{
    if (!s || s->started)
        return OB_ESTATE;
    s->gate = gate;
    s->gate_arg = arg;
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT" into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1])
        return OB_EINVAL;
    size_t hn = (size_t)(colon - listen);
    if (listen[0] == '[' && colon[-1] == ']') {
        listen++;
        hn -= 2;
    }
    if (hn >= sizeof host)
        return OB_EINVAL;
    memcpy(host, listen, hn);
    host[hn] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return OB_EINVAL;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int ob_http_server_start(ob_http_server *s)
{
    if (!s || s->started)
        return OB_ESTATE;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_listen(s->o.listen, &ss, &sl)) {
        OB_ERROR("http: cannot use listen address \"%s\" (HOST:PORT or [IPv6]:PORT)", s->o.listen);
        return OB_EINVAL;
    }
    s->watch_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->watch_epfd < 0)
        return OB_EIO;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    size_t mem = s->o.max_header_bytes * 2 + (16 << 10);
    unsigned idle_s = (unsigned)((s->o.idle_timeout_ms + 999) / 1000);
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads, /* 1: no pool, one thread */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections + 16,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->o.max_connections_per_ip,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        obi_on_connection, s, MHD_OPTION_END); /* SO_REUSEADDR only: a second server on a port fails */
    if (!s->d) {
        int err = errno;
        OB_ERROR("http: cannot listen on %s: %s", s->o.listen, strerror(err));
        close(s->watch_epfd);
        s->watch_epfd = -1;
        return err == ENOMEM ? OB_ENOMEM : OB_EADDR;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    if (pthread_create(&s->watch, NULL, obi_watch_main, s)) {
        MHD_stop_daemon(s->d);
        s->d = NULL;
        return OB_ENOMEM;
    }
    s->started = true;
    return 0;
}

int ob_http_server_port(const ob_http_server *s) { return s ? s->port : 0; }

uint64_t ob_http_status_count(const ob_http_server *s, int status)
{
    if (!s || status < 100 || status > 599)
        return 0;
    return atomic_load_explicit(&((ob_http_server *)s)->status_counts[status], memory_order_relaxed);
}

void ob_http_durations(const ob_http_server *s, ob_histogram *out)
{
    obi_hist_read(&s->durations, out);
}

int ob_http_server_stop(ob_http_server *s, int64_t drain_ms)
{
    if (!s || !s->started || s->stopped)
        return 0;
    s->stopped = true;
    atomic_store(&s->stopping, true);
    /* No new connections: shut the listening socket down now (new clients
     * are refused at once), close it only after MHD_stop_daemon, as MHD
     * asks: a worker thread may still use the descriptor (TSan saw one's
     * epoll_ctl race with an early close). */
    MHD_socket lfd = MHD_quiesce_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET)
        shutdown(lfd, SHUT_RDWR);
    pthread_mutex_lock(&s->conns_mu); /* H3 */
    for (hconn *c = s->conns; c; c = c->next) {
        if (c->q && c->q->later)
            obi_later_cut(c->q->later, LATER_SHUTDOWN, 503, "shutting_down",
                      "the server is shutting down");
        if (c->q && c->q->stream)
            obi_stream_cut(c->q->stream, OB_ESHUTDOWN);
    }
    pthread_mutex_unlock(&s->conns_mu);
    int64_t until = ob_mono_ms() + drain_ms;
    while (atomic_load(&s->nactive) > 0 && ob_mono_ms() < until) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int rc = atomic_load(&s->nactive) > 0 ? OB_ETIMEDOUT : 0;
    if (rc)
        OB_WARN("http: stop: %d requests still in flight after %lld ms: closing them",
                atomic_load(&s->nactive), (long long)drain_ms);
    MHD_stop_daemon(s->d); /* closes the rest; joins its threads */
    s->d = NULL;
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    atomic_store(&s->watch_stop, true);
    pthread_join(s->watch, NULL);
    close(s->watch_epfd);
    s->watch_epfd = -1;
    return rc;
}

void ob_http_server_free(ob_http_server *s)
{
    if (!s)
        return;
    ob_http_server_stop(s, 5000);
    obi_router_free(&s->rt);
    pthread_mutex_destroy(&s->conns_mu);
    free(s);
}
