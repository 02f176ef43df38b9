/*
 * http_request.c - two job kinds that make HTTP requests with libcurl:
 *
 *   http.request     payload {method, url, headers, body, timeout,
 *                    expect_status, sign}; the response (status, headers,
 *                    body up to a limit) is the job's result. With "sign":
 *                    true the request carries Standard Webhooks headers
 *                    (webhook-id: the job's id, webhook-timestamp,
 *                    webhook-signature), so outboxd can deliver an
 *                    application's own webhooks.
 *   outbox.callback  payload {job, url}: POST what became of a job to its
 *                    callback_url, as a Standard Webhooks message:
 *                    {type: "job.STATE", timestamp, data: the job without
 *                    its payload}, webhook-id the callback job's id (the
 *                    same on every retry, so a receiver can drop
 *                    duplicates). Added by the engine in the same commit as
 *                    the job's end (ob_engine_on_final), so a callback
 *                    cannot be lost between the two.
 *
 * Where requests may go: only to addresses outbound.c allows, checked on
 * the address actually connected (the open-socket hook), so redirects and
 * DNS answers are judged too. A refused connection discards the job: its
 * URL will not become allowed by waiting.
 *
 * Outcome of a request (perform()):
 *   expected status (default any 2xx)      done, with the response
 *   429 or 503 with Retry-After            retry then, and hold every job of
 *                                          its rate key (the origin) until
 *                                          then, spending none of theirs
 *   429 without, 408, 5xx, network or TLS  retry with backoff
 *   any other status                       discard: retrying will not help
 *   bad payload, bad URL, not http(s),
 *   an address outbound.c refuses          discard
 * Redirects are followed up to max_redirects, http and https only. The
 * response body is read up to max_response bytes and the transfer then
 * stopped; the kept part is the result's body, "body_truncated" says so.
 * Cancellation and the attempt's deadline abort the transfer.
 *
 * Errors show URLs without userinfo and query, and response text scrubbed
 * of control characters (base/scrub.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "api/api.h"
#include "api/http_request.h"
#include "outbox/util.h"

static hr_opts opt;
static ob_engine *engine;

void hr_opts_init(hr_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_response = 64 << 10;
    o->max_redirects = 5;
    o->max_timeout_ms = 300 * 1000;
}

/* ---- one transfer ---- */

typedef struct xfer {
    char *body;
    size_t n, cap, max;
    bool truncated;
    json_t *hdrs;
    char refused[160]; /* why a connection was refused, or "" */
    ob_job_ctx *ctx;
} xfer;

/* Keep at most x->max body bytes; past them, stop the transfer (returning
 * less than given makes curl end it with CURLE_WRITE_ERROR). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    xfer *x = arg;
    size_t n = size * nmemb, room = x->max - x->n;
    size_t take = n < room ? n : room;
    if (x->n + take + 1 > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4096;
        while (cap < x->n + take + 1)
            cap *= 2;
        char *p = realloc(x->body, cap);
        if (!p)
            return 0; /* aborts the transfer */
        x->body = p;
        x->cap = cap;
    }
    memcpy(x->body + x->n, data, take);
    x->n += take;
    x->body[x->n] = '\0';
    if (take < n) {
        x->truncated = true;
        return 0; /* enough: the rest is not read */
    }
    return n;
}

/* The last response's headers (libcurl keeps them: curl_easy_nextheader)
 * into x->hdrs, names lower-cased, at most 64 of them, values of valid
 * UTF-8 cut at 1023 bytes. Repeated names keep the last value. */
static void collect_headers(CURL *c, xfer *x)
{
    struct curl_header *h = NULL;
    int n = 0;
    while (n < 64 && (h = curl_easy_nextheader(c, CURLH_HEADER, -1, h))) {
        char name[128];
        size_t nl = strlen(h->name), vl = strlen(h->value);
        if (nl >= sizeof name)
            continue;
        for (size_t i = 0; i <= nl; i++)
            name[i] = (char)(h->name[i] >= 'A' && h->name[i] <= 'Z' ? h->name[i] + 32 : h->name[i]);
        if (vl > 1023)
            vl = 1023;
        while (vl && !ob_utf8_valid(h->value, vl)) /* a cut character: shorter */
            vl--;
        json_t *v = ob_utf8_valid(h->value, vl) ? json_stringn(h->value, vl) : NULL;
        if (v && json_object_set_new(x->hdrs, name, v) == 0)
            n++;
    }
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return ob_ctx_cancelled(arg) ? 1 : 0;
}

/* libcurl's open-socket hook: every address it is about to connect to,
 * first request or redirect, passes outbound_check or is not connected. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    xfer *x = arg;
    (void)purpose;
    const char *why = outbound_check(opt.policy, &a->addr);
    if (!why)
        return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (a->family == AF_INET) {
        const struct sockaddr_in *s = (const void *)&a->addr;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
    } else if (a->family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)&a->addr;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
    }
    snprintf(x->refused, sizeof x->refused, "%s%s%s port %d is %s", a->family == AF_INET6 ? "[" : "",
             host, a->family == AF_INET6 ? "]" : "", port, why);
    return CURL_SOCKET_BAD;
}

/* One curl handle per worker thread, kept between requests so that
 * connections to the same host are reused; cleaned up when the thread
 * ends. */
static pthread_key_t curl_key;

static void curl_free_handle(void *c) { curl_easy_cleanup(c); }

static CURL *curl_for_thread(void)
{
    CURL *c = pthread_getspecific(curl_key);
    if (c) {
        curl_easy_reset(c);
        return c;
    }
    if ((c = curl_easy_init()))
        pthread_setspecific(curl_key, c);
    return c;
}

/* Milliseconds to wait from the last response's Retry-After (seconds, or
 * an HTTP date read by curl_getdate), at most a day; -1: none or
 * unreadable. */
static int64_t retry_after_ms(CURL *c)
{
    struct curl_header *h;
    if (curl_easy_header(c, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -1;
    char *end;
    long s = strtol(h->value, &end, 10);
    if (end != h->value && *end == '\0' && s >= 0)
        return s > 86400 ? 86400000 : (int64_t)s * 1000;
    time_t at = curl_getdate(h->value, NULL);
    if (at < 0)
        return -1;
    int64_t d = (int64_t)at * 1000 - ob_now_ms();
    return d < 0 ? 0 : d > 86400000 ? 86400000 : d;
}

int hr_target_of(const char *url, hr_target *t)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        strlen(host) < sizeof t->host) {
        strcpy(t->host, host);
        t->port = atoi(port);
        int n = snprintf(t->origin, sizeof t->origin, "%s://%s:%s", scheme, host, port);
        for (char *p = t->origin; n > 0 && *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (n < 0 || (size_t)n >= sizeof t->origin || !ob_rate_key_valid(t->origin))
            t->origin[0] = '\0';
        rc = 0;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

#define MAX_HEADERS 64

/* A decoded payload. Its strings point into the decoder's text buffer, a
 * JSON body into the payload itself. */
typedef struct request {
    const char *method, *url;
    const char *hname[MAX_HEADERS], *hvalue[MAX_HEADERS]; /* the payload's headers */
    int nheaders;
    bool has_ctype;   /* one of them is Content-Type (any case) */
    struct curl_slist *headers;
    const char *body; /* NULL: none; not NUL-terminated when JSON */
    size_t body_len;
    bool body_json;   /* the body is JSON (sent as the bytes it is in the payload) */
    int64_t timeout_ms;
    int expect[16];
    int nexpect;
    bool sign;
} request;

static bool expected(const request *rq, long status)
{
    if (!rq->nexpect)
        return status >= 200 && status < 300;
    for (int i = 0; i < rq->nexpect; i++)
        if (rq->expect[i] == status)
            return true;
    return false;
}

/* Set every option of the transfer; the first that fails is returned. */
static CURLcode setup(CURL *c, const request *rq, xfer *x, char *err)
{
    int64_t left = ob_ctx_deadline(x->ctx) - ob_now_ms();
    int64_t t = rq->timeout_ms > 0 ? rq->timeout_ms : opt.max_timeout_ms;
    if (t > left)
        t = left;
    CURLcode cc;
#define SET(o, v)                                                                       \
    do {                                                                                \
        if ((cc = curl_easy_setopt(c, o, v)) != CURLE_OK)                               \
            return cc;                                                                  \
    } while (0)
    SET(CURLOPT_ERRORBUFFER, err);
    SET(CURLOPT_URL, rq->url);
    SET(CURLOPT_CUSTOMREQUEST, rq->method);
    if (rq->body) {
        SET(CURLOPT_POSTFIELDS, rq->body);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    } else if (strcmp(rq->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    }
    SET(CURLOPT_HTTPHEADER, rq->headers);
    SET(CURLOPT_TIMEOUT_MS, (long)(t > 1 ? t : 1));
    SET(CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROXY, ""); /* no proxy from the environment: connect where the policy says */
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SET(CURLOPT_OPENSOCKETDATA, x);
    SET(CURLOPT_FOLLOWLOCATION, opt.max_redirects > 0 ? 1L : 0L);
    SET(CURLOPT_MAXREDIRS, (long)opt.max_redirects);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_USERAGENT, "outbox/0.1");
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, x->ctx);
#undef SET
    return CURLE_OK;
}

/* The result: {status, headers, body (the first `keep` bytes, when the
 * body is UTF-8; else its size as body_bytes), body_truncated}. */
static char *result_text(long status, const xfer *x, size_t keep, bool headers)
{
    json_t *res = json_pack("{s:i}", "status", (int)status);
    if (headers)
        json_object_set(res, "headers", x->hdrs);
    if (x->n && ob_utf8_valid(x->body, x->n))
        json_object_set_new(res, "body", json_stringn(x->body, keep));
    else if (x->n)
        json_object_set_new(res, "body_bytes", json_integer((json_int_t)x->n));
    json_object_set_new(res, "body_truncated", json_boolean(x->truncated || keep < x->n));
    char *text = res ? json_dumps(res, JSON_COMPACT) : NULL;
    json_decref(res);
    return text;
}

/* Answer done with the response as the result. One too large to keep
 * keeps less of the body (halved, at a character boundary, until it
 * fits), then no headers. */
static void answer_done(ob_job_ctx *ctx, long status, const xfer *x)
{
    size_t keep = x->n;
    bool headers = true;
    for (;;) {
        char *text = result_text(status, x, keep, headers);
        int rc = text ? ob_ctx_done(ctx, text) : OB_ENOMEM;
        free(text);
        if (rc == 0)
            return;
        if (rc != OB_ETOOBIG)
            break;
        if (keep) {
            keep /= 2;
            while (keep && (x->body[keep] & 0xc0) == 0x80)
                keep--;
        } else if (headers) {
            headers = false;
        } else {
            break;
        }
    }
    ob_ctx_done(ctx, "{\"status\":0,\"note\":\"the response is too large to keep\"}");
}

static _Atomic uint64_t callback_failures;

uint64_t hr_callback_failures(void) { return atomic_load(&callback_failures); }

/* Perform rq and answer the job. Returns whether it answered done. */
static bool perform(ob_job_ctx *ctx, const request *rq)
{
    CURL *c = curl_for_thread();
    char url[300], msg[1400], err[CURL_ERROR_SIZE] = "";
    ob_url_shown(rq->url, url, sizeof url);
    if (!c) {
        ob_ctx_retry(ctx, -1, "cannot create an HTTP client");
        return false;
    }
    bool ok = false;
    xfer x = {.max = opt.max_response, .hdrs = json_object(), .ctx = ctx};
    CURLcode cc = x.hdrs ? setup(c, rq, &x, err) : CURLE_OUT_OF_MEMORY;
    if (cc != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s %s: cannot set up the request: %s", rq->method, url,
                 curl_easy_strerror(cc));
        ob_ctx_retry(ctx, -1, msg);
    } else {
        cc = curl_easy_perform(c);
        collect_headers(c, &x);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (cc == CURLE_WRITE_ERROR && x.truncated)
            cc = CURLE_OK; /* we stopped reading at max_response */
        if (cc != CURLE_OK && x.refused[0]) {
            snprintf(msg, sizeof msg, "%s %s: refused: %s; outbound jobs may reach only public "
                     "addresses (--http-allow names exceptions)", rq->method, url, x.refused);
            ob_ctx_discard(ctx, msg);
        } else if (cc != CURLE_OK) {
            char why[400];
            ob_scrub(err[0] ? err : curl_easy_strerror(cc), strlen(err[0] ? err : curl_easy_strerror(cc)),
                     why, sizeof why);
            snprintf(msg, sizeof msg, "%s %s: %s", rq->method, url, why);
            if (cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT)
                ob_ctx_discard(ctx, msg);
            else
                ob_ctx_retry(ctx, -1, msg);
        } else if (expected(rq, status)) {
            answer_done(ctx, status, &x);
            ok = true;
        } else {
            char excerpt[820] = "";
            if (x.n)
                ob_scrub(x.body, x.n < 200 ? x.n : 200, excerpt, sizeof excerpt);
            snprintf(msg, sizeof msg, "HTTP %ld from %s %s%s%s", status, rq->method, url,
                     excerpt[0] ? ": " : "", excerpt);
            int64_t ra = status == 429 || status == 503 ? retry_after_ms(c) : -1;
            if (ra >= 0) /* the destination says when: every job to it waits */
                ob_ctx_retry_hold(ctx, ra, false, msg);
            else if (status == 429 || status == 408 || status >= 500)
                ob_ctx_retry(ctx, -1, msg);
            else
                ob_ctx_discard(ctx, msg);
        }
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL); /* rq->headers dies with the caller */
    free(x.body);
    json_decref(x.hdrs);
    return ok;
}

/* ---- the request's headers ---- */

/* Headers the URL, the body and the connection decide: a client setting
 * them could split one request into several (smuggling) or retarget it. */
static bool header_reserved(const char *n, bool sign)
{
    static const char *const names[] = {"host", "content-length", "transfer-encoding",
                                        "connection", "upgrade", "te", "trailer", "keep-alive",
                                        "proxy-connection", NULL};
    for (int i = 0; names[i]; i++)
        if (strcasecmp(n, names[i]) == 0)
            return true;
    return sign && strncasecmp(n, "webhook-", 8) == 0;
}

/* Append "Name: value"; false on OOM. */
static bool add_header(struct curl_slist **l, const char *name, const char *value)
{
    char line[4200];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(*l, line);
    if (n)
        *l = n;
    return n != NULL;
}

/* The Standard Webhooks headers for a message with this id and body. */
static bool add_signature(struct curl_slist **l, const char *id, const char *body, size_t len)
{
    int64_t ts = ob_now_ms() / 1000;
    char tss[24];
    snprintf(tss, sizeof tss, "%lld", (long long)ts);
    char *sig = webhook_sign(opt.keys, id, ts, body, len);
    bool ok = sig && add_header(l, "webhook-id", id) && add_header(l, "webhook-timestamp", tss) &&
              add_header(l, "webhook-signature", sig);
    free(sig);
    return ok;
}

/* ---- http.request ---- */

#define FAIL(f, w)                                                                      \
    do {                                                                                \
        snprintf(field, cap, "%s", (f));                                                \
        *why = (w);                                                                     \
        return OB_EINVAL;                                                               \
    } while (0)


static int check_headers(const jspan *v, request *rq, char **cursor, char *field, size_t cap,
                         const char **why)
{
    if (v->type != J_OBJECT)
        FAIL("headers", "an object of header names to string values");
    jiter it;
    jspan kn, kv;
    jiter_init(&it, v);
    while (jiter_member(&it, &kn, &kv)) {
        if (rq->nheaders == MAX_HEADERS)
            FAIL("headers", "at most 64 headers");
        const char *hn = jstr_take(&kn, cursor);
        char f[160];
        snprintf(f, sizeof f, "headers.%.100s", hn);
        if (!ob_http_header_name_ok(hn) || strlen(hn) > 100)
            FAIL(f, "a header name is an HTTP token (letters, digits, !#$%&'*+-.^_`|~) of at "
                    "most 100 characters");
        const char *s = kv.type == J_STRING ? jstr_take(&kv, cursor) : NULL;
        if (!s || !ob_http_header_value_ok(s) || strlen(s) > 4000) /* jscan: no NUL inside */
            FAIL(f, "a header value is a string of at most 4000 bytes without control "
                    "characters (CR, LF, NUL, ...)");
        if (header_reserved(hn, rq->sign))
            FAIL(f, rq->sign && strncasecmp(hn, "webhook-", 8) == 0
                        ? "set by outbox when the request is signed"
                        : "set by outbox from the URL, the body and the connection; a request "
                          "may not set it");
        rq->has_ctype |= strcasecmp(hn, "Content-Type") == 0;
        rq->hname[rq->nheaders] = hn;
        rq->hvalue[rq->nheaders++] = s;
    }
    return 0;
}

static int check_expect(const jspan *v, request *rq, char *field, size_t cap, const char **why)
{
    jiter it;
    jspan e = *v; /* one code, or each of a list */
    bool list = v->type == J_ARRAY;
    if (list)
        jiter_init(&it, v);
    for (bool more = !list || jiter_elem(&it, &e); more; more = list && jiter_elem(&it, &e)) {
        int64_t x;
        if (rq->nexpect == 16)
            FAIL("expect_status", "a status code or a list of up to 16");
        if (!jint(&e, &x) || x < 100 || x > 599)
            FAIL("expect_status", "status codes are integers from 100 to 599");
        rq->expect[rq->nexpect++] = (int)x;
    }
    if (!rq->nexpect)
        FAIL("expect_status", "a status code or a list of up to 16");
    return 0;
}

enum { M_METHOD, M_URL, M_HEADERS, M_BODY, M_TIMEOUT, M_EXPECT, M_SIGN, M_N };

/* Decode payload p (a value jscan accepted) into *rq, its strings into
 * text (room for p->n bytes: always enough, jscan.h). */
static int hr_decode(const jspan *p, request *rq, char *text_buf, char *field, size_t cap,
                     const char **why)
{
    static const char *const known[M_N] = {"method", "url", "headers", "body", "timeout",
                                            "expect_status", "sign"};
    memset(rq, 0, sizeof *rq);
    field[0] = '\0';
    char *cursor = text_buf;
    if (p->type != J_OBJECT)
        FAIL("", "the payload must be a JSON object");
    jspan m[M_N] = {0}, unknown, v;
    if (!jmembers(p, known, M_N, m, &unknown))
        FAIL(jstr_take(&unknown, &cursor), "unknown member");
    if (m[M_URL].type != J_STRING || !api_url_ok(rq->url = jstr_take(&m[M_URL], &cursor)))
        FAIL("url", "an http:// or https:// URL without user name or password is required "
                    "(credentials go in an Authorization header)");
    rq->method = m[M_METHOD].type == J_STRING ? jstr_take(&m[M_METHOD], &cursor) : "GET";
    if (m[M_METHOD].type && (m[M_METHOD].type != J_STRING || !rq->method[0] ||
                             strlen(rq->method) > 16 ||
                             strspn(rq->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(rq->method)))
        FAIL("method", "an upper-case HTTP method, e.g. POST");
    if (m[M_SIGN].type && m[M_SIGN].type != J_TRUE && m[M_SIGN].type != J_FALSE)
        FAIL("sign", "true or false");
    rq->sign = m[M_SIGN].type == J_TRUE;
    if (m[M_HEADERS].type && check_headers(&m[M_HEADERS], rq, &cursor, field, cap, why))
        return OB_EINVAL;
    if ((v = m[M_BODY]).type == J_STRING) {
        rq->body = cursor;
        rq->body_len = jstr(&v, cursor);
        cursor += rq->body_len + 1;
    } else if (v.type) { /* JSON: sent as the bytes the client gave */
        rq->body = v.p;
        rq->body_len = v.n;
        rq->body_json = true;
    }
    if ((v = m[M_TIMEOUT]).type) {
        double t = v.type == J_INTEGER || v.type == J_REAL ? jnum(&v) : NAN;
        if (!(t > 0) || t * 1000 > (double)opt.max_timeout_ms) {
            static _Thread_local char w[96];
            snprintf(w, sizeof w, "seconds, 0 < timeout <= %lld (--http-max-timeout)",
                     (long long)(opt.max_timeout_ms / 1000));
            FAIL("timeout", w);
        }
        rq->timeout_ms = (int64_t)(t * 1000);
    }
    if (m[M_EXPECT].type && check_expect(&m[M_EXPECT], rq, field, cap, why))
        return OB_EINVAL;
    return 0;
}
#undef FAIL

/* The request's header list: the payload's, then what outbox adds. false
 * on OOM (*l then holds what was made: free it). */
static bool build_headers(request *rq, const ob_job *job)
{
    for (int i = 0; i < rq->nheaders; i++)
        if (!add_header(&rq->headers, rq->hname[i], rq->hvalue[i]))
            return false;
    if (rq->body_json && !rq->has_ctype &&
        !add_header(&rq->headers, "Content-Type", "application/json"))
        return false;
    char id[OB_ID_STRLEN + 1];
    return !rq->sign ||
           add_signature(&rq->headers, ob_id_format(&job->id, id), rq->body ? rq->body : "",
                         rq->body_len);
}

/* Scan and decode an http.request payload: 0 with *rq (its strings in
 * *text: free it), or OB_EINVAL / OB_ENOMEM with field and *why. */
static int decode_payload(const void *payload, size_t len, request *rq, char **text_buf,
                          char *field, size_t cap, const char **why)
{
    static _Thread_local char w[120];
    jspan p;
    jscan_error err;
    field[0] = '\0';
    if (jscan(payload, len, JSCAN_ANY, &p, &err)) {
        snprintf(w, sizeof w, "not JSON: %s at byte %zu", err.why, err.at);
        *why = w;
        *text_buf = NULL;
        return OB_EINVAL;
    }
    if (!(*text_buf = malloc(p.n + 1))) {
        *why = "out of memory";
        return OB_ENOMEM;
    }
    return hr_decode(&p, rq, *text_buf, field, cap, why);
}

static void http_request(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *job = ob_ctx_job(ctx);
    request rq;
    char *text_buf, msg[400], field[160];
    const char *why;
    int rc = decode_payload(job->payload, job->payload_len, &rq, &text_buf, field, sizeof field,
                            &why);
    if (rc == OB_ENOMEM) {
        ob_ctx_retry(ctx, -1, "out of memory");
    } else if (rc) {
        snprintf(msg, sizeof msg, "bad http.request payload%s%s: %s", field[0] ? " member " : "",
                 field, why);
        ob_ctx_discard(ctx, msg);
    } else if (!build_headers(&rq, job)) {
        ob_ctx_retry(ctx, -1, "out of memory");
    } else {
        perform(ctx, &rq);
    }
    if (!rc)
        curl_slist_free_all(rq.headers);
    free(text_buf);
}

int hr_check_payload(const jspan *payload, char *field, size_t cap, const char **why,
                     char *url, size_t ucap)
{
    request rq;
    char *text_buf;
    int rc = decode_payload(payload->p, payload->n, &rq, &text_buf, field, cap, why);
    if (!rc && (size_t)snprintf(url, ucap, "%s", rq.url) >= ucap) {
        snprintf(field, cap, "url");
        *why = "the URL is too long";
        rc = OB_EINVAL;
    }
    free(text_buf);
    return rc;
}

/* ---- outbox.callback ---- */

/* The Standard Webhooks message for a finished job: {type, timestamp,
 * data}, data the job as GET /v1/jobs/ID shows it, without the payload
 * unless callback_payload. malloc'd text, or NULL on OOM. */
static char *callback_body(const ob_job *j)
{
    json_t *data = api_job_json(j, true);
    if (!data)
        return NULL;
    if (!opt.callback_payload) {
        json_object_del(data, "payload");
        json_object_del(data, "payload_base64");
    }
    char type[48], at[32];
    snprintf(type, sizeof type, "job.%s", ob_state_name(j->state));
    json_t *msg = json_pack("{s:s, s:s, s:o}", "type", type, "timestamp",
                            ob_time_format(j->finished_at_ms ? j->finished_at_ms : ob_now_ms(), at),
                            "data", data);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    return body;
}

static void callback(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *job = ob_ctx_job(ctx);
    json_t *p = json_loadb((const char *)job->payload, job->payload_len, 0, NULL);
    ob_id id;
    const char *url = json_string_value(json_object_get(p, "url"));
    if (!url || ob_id_parse(json_string_value(json_object_get(p, "job")), &id)) {
        ob_ctx_discard(ctx, "bad outbox.callback payload");
        json_decref(p);
        return;
    }
    ob_job *j = NULL;
    int rc = ob_job_get(engine, &id, &j);
    if (rc) {
        char msg[128];
        snprintf(msg, sizeof msg, "cannot read the job: %s", ob_strerror(rc));
        if (rc == OB_ENOTFOUND)
            ob_ctx_discard(ctx, msg);
        else
            ob_ctx_retry(ctx, -1, msg);
        json_decref(p);
        return;
    }
    char *body = callback_body(j), cid[OB_ID_STRLEN + 1];
    request rq = {.method = "POST", .url = url, .body = body, .body_len = body ? strlen(body) : 0};
    if (!body || !add_header(&rq.headers, "Content-Type", "application/json") ||
        !add_signature(&rq.headers, ob_id_format(&job->id, cid), body, rq.body_len))
        ob_ctx_retry(ctx, -1, "out of memory");
    else if (!perform(ctx, &rq))
        atomic_fetch_add(&callback_failures, 1);
    curl_slist_free_all(rq.headers);
    free(body);
    ob_job_free(j);
    json_decref(p);
}

/* The engine's on_final hook: a job with a callback_url gets an
 * outbox.callback job, in the same commit as its end. */
static bool on_final(void *arg, const ob_final *f, ob_new_job *next)
{
    (void)arg;
    if (!f->meta || strcmp(f->kind, "outbox.callback") == 0)
        return false;
    json_t *m = json_loads(f->meta, 0, NULL);
    const char *url = json_string_value(json_object_get(m, "callback_url"));
    bool add = url != NULL;
    if (add) {
        static _Thread_local char payload[2200], key[OB_UNIQUE_KEY_MAX + 1], term[48];
        char ids[OB_ID_STRLEN + 1];
        ob_id_format(&f->id, ids);
        json_t *pl = json_pack("{s:s, s:s}", "job", ids, "url", url);
        char *text = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
        add = text && strlen(text) < sizeof payload;
        if (add) {
            snprintf(payload, sizeof payload, "%s", text);
            snprintf(key, sizeof key, "callback:%s:%d:%s", ids, f->attempt, ob_state_name(f->state));
            snprintf(term, sizeof term, "callback:%s", ids); /* a job's callbacks: ?search= */
            *next = (ob_new_job){.kind = "outbox.callback", .queue = "callbacks",
                                 .payload = payload, .payload_len = strlen(payload),
                                 .unique_key = key, .terms = term};
        }
        free(text);
        json_decref(pl);
    }
    json_decref(m);
    return add;
}

int hr_register(ob_engine *e, const hr_opts *o)
{
    static bool inited;
    if (!o->keys || o->keys->n < 1 || o->max_response < 1 || o->max_timeout_ms < 1000)
        return OB_EINVAL;
    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return OB_ENOMEM;
        pthread_key_create(&curl_key, curl_free_handle);
        inited = true;
    }
    opt = *o;
    if (!opt.policy)
        opt.policy = outbound_public();
    engine = e;
    int rc = ob_engine_register(e, "http.request", http_request, NULL, NULL);
    if (!rc)
        rc = ob_engine_register(e, "outbox.callback", callback, NULL, NULL);
    if (!rc)
        ob_engine_on_final(e, on_final, NULL);
    return rc;
}
