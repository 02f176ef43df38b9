/*
 * decode.c - request bodies into engine calls, strictly: every member of a
 * POST /v1/jobs body is known and of its type, or the request is refused
 * naming the member. Nothing here touches the engine or the network, so
 * the fuzz target (tests/fuzz/fuzz_api.c) drives it directly.
 *
 *   {kind: string, queue?: string, priority?: integer, payload?: any,
 *    run_at?: RFC 3339 string | delay?: seconds >= 0 (not both),
 *    max_attempts?: integer, timeout?: seconds > 0, unique_key?: string,
 *    callback_url?: http(s) URL, rate_key?: string}
 *
 * Ranges (name lengths, priority, attempts, timeout, sizes) are the
 * engine's to check (ob_new_job_check); types, presence and formats are
 * checked here.
 *
 * The body is read in place (jscan.c): one pass over its members, strings
 * unescaped into one buffer, and the payload left where it is, so that the
 * job stores the bytes the client sent.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"

/* The members a job may have; known[] in the same order. */
enum { K_KIND, K_QUEUE, K_PRIORITY, K_PAYLOAD, K_RUN_AT, K_DELAY, K_MAX_ATTEMPTS, K_TIMEOUT,
       K_UNIQUE_KEY, K_CALLBACK_URL, K_RATE_KEY, K_N };
static const char *const known[K_N] = {"kind", "queue", "priority", "payload", "run_at", "delay",
                                       "max_attempts", "timeout", "unique_key", "callback_url",
                                       "rate_key"};

static int fail(const char **field, const char *f, const char **why, const char *w)
{
    *field = f;
    *why = w;
    return OB_EINVAL;
}

bool api_url_ok(const char *s)
{
    if (!s || strlen(s) > 2048)
        return false;
    const char *rest = strncasecmp(s, "https://", 8) == 0  ? s + 8
                       : strncasecmp(s, "http://", 7) == 0 ? s + 7
                                                           : NULL;
    if (!rest || !*rest || *rest == '/' || *rest == '?' || *rest == '#')
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    size_t authority = strcspn(rest, "/?#");
    return memchr(rest, '@', authority) == NULL; /* no user:password@ */
}

/* A JSON integer that fits an int. */
static bool get_int(const jspan *v, int *out)
{
    int64_t x;
    if (!jint(v, &x) || x < INT32_MIN || x > INT32_MAX)
        return false;
    *out = (int)x;
    return true;
}

static bool is_num(const jspan *v) { return v->type == J_INTEGER || v->type == J_REAL; }

int api_decode_job(const jspan *body, int64_t now, api_job_in *out, const char **field,
                   const char **why)
{
    memset(out, 0, sizeof *out);
    if (body->type != J_OBJECT)
        return fail(field, NULL, why, "the body must be a JSON object");
    /* every string of the body, unescaped, fits in as many bytes (jscan.h) */
    char *cursor = out->text = malloc(body->n);
    if (!cursor)
        return fail(field, NULL, why, "out of memory");
    jspan m[K_N] = {0}, unknown, *v;
    if (!jmembers(body, known, K_N, m, &unknown))
        return fail(field, jstr_take(&unknown, &cursor), why, "unknown member");
    ob_new_job *j = &out->j;
    v = &m[K_KIND];
    if (v->type != J_STRING)
        return fail(field, "kind", why, v->type ? "must be a string" : "is required");
    j->kind = jstr_take(v, &cursor);
    if ((v = &m[K_QUEUE])->type) {
        if (v->type != J_STRING)
            return fail(field, "queue", why, "must be a string");
        j->queue = jstr_take(v, &cursor);
    }
    if (m[K_PRIORITY].type && !get_int(&m[K_PRIORITY], &j->priority))
        return fail(field, "priority", why, "must be an integer");
    if (m[K_MAX_ATTEMPTS].type && !get_int(&m[K_MAX_ATTEMPTS], &j->max_attempts))
        return fail(field, "max_attempts", why, "must be an integer");
    if (m[K_MAX_ATTEMPTS].type && j->max_attempts < 1)
        return fail(field, "max_attempts", why, "must be at least 1");
    if ((v = &m[K_TIMEOUT])->type) {
        double t = is_num(v) ? jnum(v) : NAN;
        if (!(t > 0) || t > 86400)
            return fail(field, "timeout", why, "must be a number of seconds, 0 < timeout <= 86400");
        j->timeout_ms = (int64_t)ceil(t * 1000);
    }
    const jspan *run_at = &m[K_RUN_AT], *delay = &m[K_DELAY];
    if (run_at->type && delay->type)
        return fail(field, "delay", why, "give run_at or delay, not both");
    if (run_at->type &&
        (run_at->type != J_STRING || ob_time_parse(jstr_take(run_at, &cursor), &j->run_at_ms)))
        return fail(field, "run_at", why, "must be an RFC 3339 date-time, e.g. 2026-11-25T04:00:00Z");
    if (delay->type) {
        double d = is_num(delay) ? jnum(delay) : NAN;
        if (!(d >= 0) || d > 10.0 * 365 * 86400)
            return fail(field, "delay", why, "must be a number of seconds >= 0");
        j->run_at_ms = now + (int64_t)(d * 1000);
    }
    if ((v = &m[K_UNIQUE_KEY])->type) {
        if (v->type != J_STRING || v->n == 2)
            return fail(field, "unique_key", why, "must be a non-empty string");
        out->unique_key = jstr_take(v, &cursor);
    }
    if ((v = &m[K_RATE_KEY])->type) {
        if (v->type != J_STRING || !ob_rate_key_valid(j->rate_key = jstr_take(v, &cursor)))
            return fail(field, "rate_key", why,
                        "must be 1-255 characters of printable ASCII without '\"' or '\\'");
    }
    if ((v = &m[K_CALLBACK_URL])->type) {
        if (v->type != J_STRING || !api_url_ok(out->callback_url = jstr_take(v, &cursor)))
            return fail(field, "callback_url", why,
                        "must be an http:// or https:// URL, without user name or password");
    }
    /* the payload: the bytes that came (J1: a whole value), not a copy */
    out->payload = m[K_PAYLOAD].type ? m[K_PAYLOAD] : (jspan){"null", 4, J_NULL};
    j->payload = out->payload.p;
    j->payload_len = out->payload.n;
    return 0;
}

void api_job_in_clear(api_job_in *in)
{
    free(in->text);
    memset(in, 0, sizeof *in);
}

int64_t api_prefer_wait(const char *prefer)
{
    /* Prefer: respond-async, wait=10 — tokens separated by commas or
     * semicolons; we look for wait=<seconds>. */
    for (const char *p = prefer; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == ';' || *p == '\t')
            p++;
        if (strncasecmp(p, "wait", 4) == 0) {
            const char *q = p + 4;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ')
                    q++;
                char *end;
                double s = strtod(q, &end);
                if (end != q && s > 0 && s < 1e6)
                    return (int64_t)(s * 1000);
            }
        }
        p += strcspn(p, ",;");
    }
    return 0;
}

long api_states(const char *list)
{
    long mask = 0;
    char name[32];
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof name)
            return -1;
        memcpy(name, p, n);
        name[n] = '\0';
        ob_state st;
        if (ob_state_parse(name, &st))
            return -1;
        mask |= 1L << st;
        p += n;
        if (*p == ',' && !*++p)
            return -1;
    }
    return mask;
}

int api_pairs(const json_t *v, const char *kn, const char *vn, bool value_optional,
              const char *field, json_t **out, api_error *e)
{
    if (!json_is_array(v))
        return api_refuse(e, 422, "invalid", field, "an array of {%s, %s}", kn, vn);
    json_t *o = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        const char *name = json_string_value(json_object_get(it, kn));
        json_t *value = json_object_get(it, vn);
        if (!name || (value ? !json_is_string(value) : !value_optional) ||
            json_object_size(it) != 1u + (value != NULL)) {
            json_decref(o);
            return api_refuse(e, 422, "invalid", field, "item %zu: {%s, %s}, strings", i, kn, vn);
        }
        json_object_set_new(o, name, value ? json_incref(value) : json_string(""));
    }
    *out = o;
    return 0;
}
