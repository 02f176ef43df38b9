/*
 * api.c - the API's frame: routes, authentication, the error shape, and the
 * endpoints that are not about jobs (/healthz, /readyz).
 *
 * Every request passes the gate (gate(), below) once its headers are in
 * and before its body is read: authentication, the loopback-only checks of
 * a tokenless outboxd, and the route's body limit.
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"

void api_opts_init(api_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_wait_ms = 60 * 1000;
    o->max_waiters = 10000;
    o->event_ring = 10000;
    o->max_event_clients = 64;
    o->max_job_payload = 1u << 20;
    o->max_batch = 100;
}

int api_status(int rc, const char **code)
{
    switch (rc) {
    case OB_ENOTFOUND: *code = "not_found"; return 404;
    case OB_ESTATE: *code = "conflict"; return 409;
    case OB_EINVAL: *code = "invalid"; return 422;
    case OB_ENOKIND: *code = "unknown_kind"; return 422;
    case OB_ETOOBIG: *code = "too_large"; return 413;
    case OB_EFULL: *code = "queue_full"; return 503;
    case OB_EBUSY: *code = "overloaded"; return 503;
    case OB_ESHUTDOWN: *code = "shutting_down"; return 503;
    default: *code = "store_unavailable"; return 503;
    }
}

/* (A 503 gets Retry-After from the server, whoever answers it.) */
void api_reply_rc(ob_http_req *r, int rc, const char *field)
{
    const char *code;
    int status = api_status(rc, &code);
    ob_http_reply_error(r, status, code, ob_strerror(rc), field);
}

void api_later_rc(ob_http_later *l, int rc, const char *field)
{
    const char *code;
    int status = api_status(rc, &code);
    ob_http_later_reply_error(l, status, code, ob_strerror(rc), field);
}

/* ---- the gate: every request, on its headers ---- */

/* Whether a Host header names this machine's loopback: 127.0.0.1, [::1]
 * or localhost, with any port. */
static bool loopback_host(const char *h)
{
    const char *end = h[0] == '[' ? strchr(h, ']') : h + strcspn(h, ":");
    if (!end)
        return false;
    if (h[0] == '[')
        end++;
    if (*end) { /* ":PORT" */
        const char *port = end + 1;
        size_t n = strlen(port);
        if (*end != ':' || n == 0 || n > 5 || strspn(port, "0123456789") != n)
            return false;
    }
    size_t hl = (size_t)(end - h);
    return (hl == 9 && strncmp(h, "127.0.0.1", 9) == 0) || (hl == 5 && strncmp(h, "[::1]", 5) == 0) ||
           (hl == 9 && strncasecmp(h, "localhost", 9) == 0);
}

/* Whether an Origin header is a page served from loopback. */
static bool loopback_origin(const char *o)
{
    const char *host = strncasecmp(o, "http://", 7) == 0    ? o + 7
                       : strncasecmp(o, "https://", 8) == 0 ? o + 8
                                                            : NULL;
    return host && !strchr(host, '/') && loopback_host(host);
}

static bool token_ok(api *a, const char *tok)
{
    unsigned char d[32];
    SHA256((const unsigned char *)tok, strlen(tok), d);
    int match = 0;
    for (int i = 0; i < a->o.ntokens; i++) /* every token, always: no early exit */
        match |= CRYPTO_memcmp(d, a->token_hash[i], 32) == 0;
    return match;
}

static bool authorized(api *a, ob_http_req *r)
{
    const char *h = ob_http_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    return token_ok(a, tok);
}

/* Postmark's clients send the token as X-Postmark-Server-Token. */
static bool postmark_route(const char *route)
{
    return strcmp(route, "/email") == 0 || strcmp(route, "/email/batch") == 0;
}

/* Resend's clients send Authorization: Bearer, and read its error shape. */
static bool resend_route(const char *route)
{
    return strcmp(route, "/emails") == 0 || strncmp(route, "/emails/", 8) == 0;
}

/* Before a request's body is read (Postmark's routes, compat_postmark.c,
 * take the token as X-Postmark-Server-Token and answer in its shape):
 *   - without tokens (loopback only), a Host that is not loopback or an
 *     Origin that is not: 403. A web page the operator visits could
 *     otherwise reach outboxd through the browser, by DNS rebinding (its
 *     own name resolving to 127.0.0.1) or a cross-origin form POST;
 *   - with tokens, every route but /healthz, /readyz, /v1/openapi.json
 *     (the contract: a client reads it before it has a token) and the
 *     dashboard's files under /ui (they hold no data; its page signs in) wants
 *     `Authorization: Bearer TOKEN` (401 with WWW-Authenticate). Tokens are
 *     compared as SHA-256 digests with CRYPTO_memcmp, so neither a token's
 *     bytes nor its length leak through timing;
 *   - the body limit of the route: batches and messages may be larger. */
static void gate(ob_http_req *r, void *arg)
{
    api *a = arg;
    const char *route = ob_http_route_pattern(r);
    if (!a->o.ntokens) {
        const char *host = ob_http_header(r, "Host"), *origin = ob_http_header(r, "Origin");
        if (host && !loopback_host(host)) {
            ob_http_reply_error(r, 403, "forbidden", "without tokens outboxd serves only "
                                "requests for 127.0.0.1, [::1] or localhost", "Host");
            return;
        }
        if (origin && !loopback_origin(origin)) {
            ob_http_reply_error(r, 403, "forbidden", "without tokens outboxd serves no request "
                                "from a web page of another origin", "Origin");
            return;
        }
    } else if (postmark_route(route)) {
        const char *tok = ob_http_header(r, "X-Postmark-Server-Token");
        if (!tok || !token_ok(a, tok)) {
            api_postmark_unauthorized(r, !tok);
            return;
        }
    } else if (resend_route(route) && !authorized(a, r)) {
        api_resend_unauthorized(r, !ob_http_header(r, "Authorization"));
        return;
    } else if (strcmp(route, "/healthz") != 0 && strcmp(route, "/readyz") != 0 &&
               strcmp(route, "/v1/openapi.json") != 0 && strncmp(route, "/ui", 3) != 0 &&
               !authorized(a, r)) {
        ob_http_set_header(r, "WWW-Authenticate", "Bearer realm=\"outbox\"");
        ob_http_reply_error(r, 401, "unauthorized", "a valid bearer token is required", NULL);
        return;
    }
    if (strcmp(route, "/v1/jobs/batch") == 0 || strcmp(route, "/v1/messages/batch") == 0 ||
        strcmp(route, "/email/batch") == 0 || strcmp(route, "/emails/batch") == 0) {
        if (a->o.max_batch_body)
            ob_http_set_max_body(r, a->o.max_batch_body);
    } else if ((strcmp(route, "/v1/messages") == 0 || strcmp(route, "/email") == 0 ||
                strcmp(route, "/emails") == 0) &&
               a->o.max_message_body) {
        ob_http_set_max_body(r, a->o.max_message_body);
    }
}

int api_route(api *a, ob_http_server *srv, const char *method, const char *path,
              ob_http_handler fn, unsigned flags)
{
    return ob_http_route(srv, method, path, fn, a, flags);
}

/* ---- health ---- */

static void healthz(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_reply(r, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void readyz(ob_http_req *r, void *arg)
{
    api *a = arg;
    int rc = ob_engine_ready(a->o.engine);
    const char *why = atomic_load(&a->draining) ? "draining" : rc ? ob_strerror(rc) : NULL;
    json_t *v = json_pack("{s:s, s:s?}", "status", why ? "unavailable" : "ready", "reason", why);
    ob_http_reply_json(r, why ? 503 : 200, v);
    json_decref(v);
}

void api_draining(api *a) { atomic_store(&a->draining, true); }

extern const unsigned char openapi_doc[]; /* docs/openapi.json, embedded */
extern const size_t openapi_doc_len;

static void openapi(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_reply(r, 200, "application/json", openapi_doc, openapi_doc_len);
}

int api_new(ob_http_server *srv, const api_opts *o, api **out)
{
    if (!srv || !o || !o->engine || !out || o->ntokens < 0)
        return OB_EINVAL;
    api *a = calloc(1, sizeof *a);
    if (!a)
        return OB_ENOMEM;
    a->o = *o;
    if (!a->o.policy)
        a->o.policy = outbound_public();
    if (o->ntokens) {
        a->token_hash = calloc((size_t)o->ntokens, sizeof *a->token_hash);
        if (!a->token_hash) {
            api_free(a);
            return OB_ENOMEM;
        }
        for (int i = 0; i < o->ntokens; i++) /* only digests are kept */
            SHA256((const unsigned char *)o->tokens[i], strlen(o->tokens[i]), a->token_hash[i]);
    }
    a->o.tokens = NULL;
    int rc = ob_http_set_gate(srv, gate, a);
    if (!rc)
        rc = waitlist_new(a, &a->w);
    if (!rc)
        rc = api_route(a, srv, "GET", "/healthz", healthz, 0);
    if (!rc)
        rc = api_route(a, srv, "GET", "/readyz", readyz, 0);
    if (!rc)
        rc = api_jobs_routes(a, srv);
    if (!rc)
        rc = api_bulk_routes(a, srv);
    if (!rc)
        rc = api_queues_routes(a, srv);
    if (!rc)
        rc = api_schedules_routes(a, srv);
    if (!rc)
        rc = api_ui_routes(a, srv);
    if (!rc && o->mail_limits)
        rc = api_messages_routes(a, srv);
    if (!rc && o->mail_limits)
        rc = api_suppressions_routes(a, srv);
    if (!rc && a->o.mail_limits)
        rc = api_postmark_routes(a, srv);
    if (!rc && a->o.mail_limits)
        rc = api_resend_routes(a, srv);
    if (!rc)
        rc = api_route(a, srv, "GET", "/v1/openapi.json", openapi, 0);
    if (!rc && (o->event_ring < 1 || o->max_event_clients < 0))
        rc = OB_EINVAL;
    if (!rc)
        rc = events_new(a, srv);
    if (!rc)
        rc = metrics_new(a, srv);
    if (!rc)
        rc = stats_new(a, srv);
    if (rc) {
        api_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void api_free(api *a)
{
    if (!a)
        return;
    stats_free(a);
    metrics_free(a);
    events_free(a);
    waitlist_free(a->w);
    free(a->token_hash);
    free(a);
}
