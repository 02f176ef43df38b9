/*
 * http_request.c - two job kinds that make HTTP requests with libcurl:
 *
 *   http.request     payload {method, url, headers, body, timeout,
 *                    expect_status}; the response (status, headers, body up
 *                    to a limit) is the job's result.
 *   outbox.callback  payload {job, url}: POST the final state of a job to
 *                    its callback_url, signed X-Outbox-Signature:
 *                    sha256=HMAC-SHA256(secret, body). Added by the engine
 *                    in the same commit as the job's end (ob_engine_on_final),
 *                    so a callback cannot be lost between the two.
 *
 * Outcome of a request (outcome()):
 *   expected status (default any 2xx)      done, with the response
 *   429                                    retry after Retry-After (or backoff)
 *   408, 5xx, network or TLS trouble       retry with backoff
 *   any other status                       discard: retrying will not help
 *   bad payload, bad URL, not http(s)      discard
 * Redirects are followed up to max_redirects, http and https only.
 * Cancellation and the attempt's deadline abort the transfer.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/api.h"
#include "api/http_request.h"
#include "base/base.h"

static hr_opts opt;
static ob_engine *engine;

/* ---- the request ---- */

typedef struct buf {
    char *p;
    size_t n, cap, max;
    bool truncated;
} buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    buf *b = arg;
    size_t n = size * nmemb, room = b->max - b->n;
    size_t take = n < room ? n : room;
    if (take < n)
        b->truncated = true;
    if (b->n + take + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + take + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0; /* aborts the transfer */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, take);
    b->n += take;
    b->p[b->n] = '\0';
    return n;
}

typedef struct resp_hdrs {
    json_t *obj;
    char retry_after[64];
    int count;
} resp_hdrs;

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    resp_hdrs *h = arg;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new response (redirect): start over */
        json_object_clear(h->obj);
        h->retry_after[0] = '\0';
        h->count = 0;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon || h->count >= 64)
        return n;
    char name[128], value[1024];
    size_t nl = (size_t)(colon - data), vl = n - nl - 1;
    if (nl >= sizeof name)
        return n;
    memcpy(name, data, nl);
    name[nl] = '\0';
    const char *v = colon + 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= sizeof value)
        vl = sizeof value - 1;
    memcpy(value, v, vl);
    value[vl] = '\0';
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    if (strcmp(name, "retry-after") == 0)
        snprintf(h->retry_after, sizeof h->retry_after, "%.63s", value);
    json_t *s = json_stringn_nocheck(value, vl);
    if (s && ob_utf8_valid(value, vl)) {
        json_object_set_new(h->obj, name, s);
        h->count++;
    } else {
        json_decref(s);
    }
    return n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return ob_ctx_cancelled(arg) ? 1 : 0;
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

/* Seconds to wait from a Retry-After value (seconds or an HTTP date); -1:
 * none or unreadable. */
static int64_t retry_after_ms(const char *v)
{
    if (!v[0])
        return -1;
    char *end;
    long s = strtol(v, &end, 10);
    if (*end == '\0' && s >= 0)
        return s > 86400 ? 86400000 : (int64_t)s * 1000;
    struct tm tm = {0};
    if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
        int64_t at = (int64_t)timegm(&tm) * 1000, d = at - ob_now_ms();
        return d < 0 ? 0 : d > 86400000 ? 86400000 : d;
    }
    return -1;
}

typedef struct request {
    const char *method, *url;
    struct curl_slist *headers;
    const char *body;
    size_t body_len;
    int64_t timeout_ms;
    int expect[16];
    int nexpect;
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

/* Perform rq and answer the job. */
static void perform(ob_job_ctx *ctx, const request *rq)
{
    CURL *c = curl_for_thread();
    if (!c) {
        ob_ctx_retry(ctx, -1, "cannot create an HTTP client");
        return;
    }
    buf body = {.max = opt.max_response};
    resp_hdrs hdrs = {.obj = json_object()};
    char err[CURL_ERROR_SIZE] = "";
    int64_t left = ob_ctx_deadline(ctx) - ob_now_ms();
    int64_t t = rq->timeout_ms > 0 && rq->timeout_ms < left ? rq->timeout_ms : left;
    curl_easy_setopt(c, CURLOPT_URL, rq->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    if (rq->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    } else if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, rq->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(t > 1 ? t : 1));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, opt.max_redirects > 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)opt.max_redirects);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "outbox/0.1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, ctx);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    char msg[1400];
    if (cc != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s %s: %s", rq->method, rq->url, err[0] ? err : curl_easy_strerror(cc));
        if (cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT)
            ob_ctx_discard(ctx, msg);
        else
            ob_ctx_retry(ctx, -1, msg);
    } else if (expected(rq, status)) {
        json_t *res = json_pack("{s:i, s:O}", "status", (int)status, "headers", hdrs.obj);
        if (body.n && ob_utf8_valid(body.p, body.n))
            json_object_set_new(res, "body", json_stringn(body.p, body.n));
        else if (body.n)
            json_object_set_new(res, "body_bytes", json_integer((json_int_t)body.n));
        json_object_set_new(res, "body_truncated", json_boolean(body.truncated));
        char *text = json_dumps(res, JSON_COMPACT);
        if (!text || ob_ctx_done(ctx, text))
            ob_ctx_done(ctx, "{\"status\":0,\"note\":\"result too large to keep\"}");
        free(text);
        json_decref(res);
    } else {
        snprintf(msg, sizeof msg, "HTTP %ld from %s %s%s%.200s", status, rq->method, rq->url,
                 body.n ? ": " : "", body.n && ob_utf8_valid(body.p, body.n) ? body.p : "");
        if (status == 429)
            ob_ctx_retry(ctx, retry_after_ms(hdrs.retry_after), msg);
        else if (status == 408 || status >= 500)
            ob_ctx_retry(ctx, -1, msg);
        else
            ob_ctx_discard(ctx, msg);
    }
    free(body.p);
    json_decref(hdrs.obj);
}

/* ---- http.request ---- */

static int hr_decode(const json_t *p, request *rq, char **owned_body, const char **field,
              const char **why)
{
    static const char *const known[] = {"method", "url", "headers", "body", "timeout",
                                        "expect_status"};
    memset(rq, 0, sizeof *rq);
    *owned_body = NULL;
    *field = NULL;
    if (!json_is_object(p)) {
        *why = "the payload must be a JSON object";
        return OB_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)p, key, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok) {
            *field = key;
            *why = "unknown member";
            return OB_EINVAL;
        }
    }
#define BAD(f, w)                                                                       \
    do {                                                                                \
        *field = (f);                                                                   \
        *why = (w);                                                                     \
        return OB_EINVAL;                                                               \
    } while (0)
    v = json_object_get(p, "url");
    if (!json_is_string(v) || !api_url_ok(json_string_value(v)))
        BAD("url", "an http:// or https:// URL is required");
    rq->url = json_string_value(v);
    v = json_object_get(p, "method");
    rq->method = v ? json_string_value(v) : "GET";
    if (v && (!json_is_string(v) || !rq->method[0] || strlen(rq->method) > 16 ||
              strspn(rq->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(rq->method)))
        BAD("method", "an upper-case HTTP method, e.g. POST");
    bool has_ctype = false;
    if ((v = json_object_get(p, "headers"))) {
        if (!json_is_object(v))
            BAD("headers", "an object of header names to string values");
        json_t *hv;
        const char *hn;
        json_object_foreach(v, hn, hv) {
            const char *s = json_string_value(hv);
            if (!s || strpbrk(s, "\r\n") || !hn[0] || strpbrk(hn, " :\r\n\t") || strlen(hn) > 100 ||
                strlen(s) > 4000)
                BAD("headers", "header names are tokens and values are strings without CR/LF");
            has_ctype |= strcasecmp(hn, "Content-Type") == 0;
        }
    }
    if ((v = json_object_get(p, "body"))) {
        if (json_is_string(v)) {
            rq->body = json_string_value(v);
            rq->body_len = json_string_length(v);
        } else {
            *owned_body = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            rq->body = *owned_body;
            rq->body_len = *owned_body ? strlen(*owned_body) : 0;
        }
    }
    if ((v = json_object_get(p, "timeout"))) {
        double t = json_number_value(v);
        if (!json_is_number(v) || !(t > 0) || t > 86400)
            BAD("timeout", "seconds, 0 < timeout <= 86400");
        rq->timeout_ms = (int64_t)(t * 1000);
    }
    if ((v = json_object_get(p, "expect_status"))) {
        json_t *one = json_is_array(v) ? NULL : v;
        size_t n = one ? 1 : json_array_size(v);
        if ((!one && !json_is_array(v)) || n == 0 || n > 16)
            BAD("expect_status", "a status code or a list of up to 16");
        for (size_t i = 0; i < n; i++) {
            json_t *s = one ? one : json_array_get(v, i);
            json_int_t x = json_integer_value(s);
            if (!json_is_integer(s) || x < 100 || x > 599)
                BAD("expect_status", "status codes are integers from 100 to 599");
            rq->expect[rq->nexpect++] = (int)x;
        }
    }
#undef BAD
    /* headers into a curl list: built last, nothing to free on refusal */
    if ((v = json_object_get(p, "headers"))) {
        json_t *hv;
        const char *hn;
        json_object_foreach(v, hn, hv) {
            char line[4200];
            snprintf(line, sizeof line, "%s: %s", hn, json_string_value(hv));
            rq->headers = curl_slist_append(rq->headers, line);
        }
    }
    if (rq->body && !json_is_string(json_object_get(p, "body")) && !has_ctype)
        rq->headers = curl_slist_append(rq->headers, "Content-Type: application/json");
    return 0;
}

static void http_request(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *job = ob_ctx_job(ctx);
    json_error_t jerr;
    json_t *p = json_loadb((const char *)job->payload, job->payload_len, 0, &jerr);
    request rq;
    char *owned = NULL, msg[300];
    const char *field = NULL, *why = "the payload is not JSON";
    if (!p || hr_decode(p, &rq, &owned, &field, &why)) {
        snprintf(msg, sizeof msg, "bad http.request payload%s%s: %s", field ? " member " : "",
                 field ? field : "", why);
        ob_ctx_discard(ctx, msg);
    } else {
        perform(ctx, &rq);
        curl_slist_free_all(rq.headers);
    }
    free(owned);
    json_decref(p);
}

int hr_check_payload(const json_t *payload, const char **field, const char **why)
{
    request rq;
    char *owned;
    int rc = hr_decode(payload, &rq, &owned, field, why);
    if (!rc)
        curl_slist_free_all(rq.headers);
    free(owned);
    return rc;
}

/* ---- outbox.callback ---- */

static void sign(const char *body, size_t n, char out[80])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), opt.secret, (int)opt.secret_len, (const unsigned char *)body, n, mac, &len);
    static const char h[] = "0123456789abcdef";
    char *o = out + sprintf(out, "sha256=");
    for (unsigned i = 0; i < len; i++) {
        *o++ = h[mac[i] >> 4];
        *o++ = h[mac[i] & 15];
    }
    *o = '\0';
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
    json_t *v = api_job_json(j, true);
    char *body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    if (!body) {
        ob_ctx_retry(ctx, -1, "out of memory");
    } else {
        char sig[80], hdr[128], jid[OB_ID_STRLEN + 1];
        sign(body, strlen(body), sig);
        request rq = {.method = "POST", .url = url, .body = body, .body_len = strlen(body)};
        rq.headers = curl_slist_append(NULL, "Content-Type: application/json");
        snprintf(hdr, sizeof hdr, "X-Outbox-Signature: %s", sig);
        rq.headers = curl_slist_append(rq.headers, hdr);
        snprintf(hdr, sizeof hdr, "X-Outbox-Job: %s", ob_id_format(&id, jid));
        rq.headers = curl_slist_append(rq.headers, hdr);
        snprintf(hdr, sizeof hdr, "X-Outbox-Event: job.%s", ob_state_name(j->state));
        rq.headers = curl_slist_append(rq.headers, hdr);
        perform(ctx, &rq);
        curl_slist_free_all(rq.headers);
    }
    free(body);
    json_decref(v);
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
        static _Thread_local char payload[2200], key[OB_UNIQUE_KEY_MAX + 1];
        char ids[OB_ID_STRLEN + 1];
        ob_id_format(&f->id, ids);
        json_t *pl = json_pack("{s:s, s:s}", "job", ids, "url", url);
        char *text = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
        add = text && strlen(text) < sizeof payload;
        if (add) {
            snprintf(payload, sizeof payload, "%s", text);
            snprintf(key, sizeof key, "callback:%s:%d:%s", ids, f->attempt, ob_state_name(f->state));
            *next = (ob_new_job){.kind = "outbox.callback", .queue = "callbacks",
                                 .payload = payload, .payload_len = strlen(payload),
                                 .unique_key = key};
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
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        pthread_key_create(&curl_key, curl_free_handle);
        inited = true;
    }
    opt = *o;
    engine = e;
    int rc = ob_engine_register(e, "http.request", http_request, NULL, NULL);
    if (!rc)
        rc = ob_engine_register(e, "outbox.callback", callback, NULL, NULL);
    if (!rc)
        ob_engine_on_final(e, on_final, NULL);
    return rc;
}
