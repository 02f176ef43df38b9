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
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"

static const char *const known[] = {"kind", "queue", "priority", "payload", "run_at", "delay",
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
static bool get_int(const json_t *v, int *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t x = json_integer_value(v);
    if (x < INT32_MIN || x > INT32_MAX)
        return false;
    *out = (int)x;
    return true;
}

int api_decode_job(const json_t *body, int64_t now, api_job_in *out, const char **field,
                   const char **why)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(body))
        return fail(field, NULL, why, "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok)
            return fail(field, key, why, "unknown member");
    }
    ob_new_job *j = &out->j;
    v = json_object_get(body, "kind");
    if (!json_is_string(v))
        return fail(field, "kind", why, v ? "must be a string" : "is required");
    j->kind = json_string_value(v);
    if ((v = json_object_get(body, "queue"))) {
        if (!json_is_string(v))
            return fail(field, "queue", why, "must be a string");
        j->queue = json_string_value(v);
    }
    if ((v = json_object_get(body, "priority")) && !get_int(v, &j->priority))
        return fail(field, "priority", why, "must be an integer");
    if ((v = json_object_get(body, "max_attempts")) && !get_int(v, &j->max_attempts))
        return fail(field, "max_attempts", why, "must be an integer");
    if ((v = json_object_get(body, "max_attempts")) && j->max_attempts < 1)
        return fail(field, "max_attempts", why, "must be at least 1");
    if ((v = json_object_get(body, "timeout"))) {
        double t = json_number_value(v);
        if (!json_is_number(v) || !(t > 0) || t > 86400)
            return fail(field, "timeout", why, "must be a number of seconds, 0 < timeout <= 86400");
        j->timeout_ms = (int64_t)ceil(t * 1000);
    }
    const json_t *run_at = json_object_get(body, "run_at"), *delay = json_object_get(body, "delay");
    if (run_at && delay)
        return fail(field, "delay", why, "give run_at or delay, not both");
    if (run_at && (!json_is_string(run_at) || ob_time_parse(json_string_value(run_at), &j->run_at_ms)))
        return fail(field, "run_at", why, "must be an RFC 3339 date-time, e.g. 2026-11-25T04:00:00Z");
    if (delay) {
        double d = json_number_value(delay);
        if (!json_is_number(delay) || !(d >= 0) || d > 10.0 * 365 * 86400)
            return fail(field, "delay", why, "must be a number of seconds >= 0");
        j->run_at_ms = now + (int64_t)(d * 1000);
    }
    if ((v = json_object_get(body, "unique_key"))) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return fail(field, "unique_key", why, "must be a non-empty string");
        out->unique_key = json_string_value(v);
    }
    if ((v = json_object_get(body, "rate_key"))) {
        if (!json_is_string(v) || !ob_rate_key_valid(json_string_value(v)))
            return fail(field, "rate_key", why,
                        "must be 1-255 characters of printable ASCII without '\"' or '\\'");
        j->rate_key = json_string_value(v);
    }
    if ((v = json_object_get(body, "callback_url"))) {
        if (!json_is_string(v) || !api_url_ok(json_string_value(v)))
            return fail(field, "callback_url", why,
                        "must be an http:// or https:// URL, without user name or password");
        out->callback_url = json_string_value(v);
    }
    v = json_object_get(body, "payload");
    out->payload_text = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!out->payload_text)
        return fail(field, "payload", why, "cannot be encoded");
    j->payload = out->payload_text;
    j->payload_len = strlen(out->payload_text);
    return 0;
}

void api_job_in_clear(api_job_in *in)
{
    free(in->payload_text);
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
