/*
 * queues_api.c - GET /v1/queues, GET /v1/queues/{name}, PATCH
 * /v1/queues/{name}: every queue's settings and jobs, and the operator's
 * controls (ob_queue_set): pause, a concurrency cap, a rate limit.
 *
 * A queue in an answer:
 *   {"name", "paused", "concurrency" (null: no cap),
 *    "rate", "key_rate" ({"limit", "period" (seconds)} or null),
 *    "held_until" (the whole queue held by its destination, or null),
 *    "held_keys" [{"key", "until"}] (GET /v1/queues/{name} only),
 *    "counts" {state: n, ...}, "oldest_due_age" (seconds the oldest
 *    available job has waited, or null), "updated_at" (settings, or null)}
 * PATCH takes any of paused, concurrency, rate, key_rate (null clears a
 * limit) and answers 200 with the queue once the change is durable.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/util.h"

static json_t *rate_json(int limit, int64_t period_ms)
{
    return limit ? json_pack("{s:i, s:f}", "limit", limit, "period", (double)period_ms / 1000.0)
                 : json_null();
}

static json_t *time_or_null(int64_t ms)
{
    char at[32];
    return ms ? json_string(ob_time_format(ms, at)) : json_null();
}

static json_t *queue_json(const ob_queue_info *q, int64_t now)
{
    const ob_queue_settings *s = &q->settings;
    json_t *counts = json_object();
    for (int st = OB_STATE_MIN; st <= OB_STATE_MAX; st++)
        json_object_set_new(counts, ob_state_name(st), json_integer(q->counts[st]));
    json_t *rate = rate_json(s->rate_limit, s->rate_period_ms);
    json_t *age = q->counts[OB_AVAILABLE] && q->oldest_due_ms
                      ? json_real((double)(now > q->oldest_due_ms ? now - q->oldest_due_ms : 0) /
                                  1000.0)
                      : json_null();
    return json_pack("{s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", q->name, "paused",
                     s->paused, "concurrency",
                     s->concurrency ? json_integer(s->concurrency) : json_null(), "rate", rate,
                     "key_rate", rate_json(s->key_rate_limit, s->key_rate_period_ms),
                     "held_until", time_or_null(q->hold_until_ms), "counts", counts,
                     "oldest_due_age", age, "updated_at", time_or_null(q->updated_at_ms));
}

static void list_queues(ob_http_req *r, void *arg)
{
    api *a = arg;
    ob_queue_info *all;
    size_t n;
    int rc = ob_queue_list(a->o.engine, &all, &n);
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    int64_t now = ob_now_ms();
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, queue_json(&all[i], now));
    free(all);
    json_t *v = json_pack("{s:o}", "queues", arr);
    ob_http_reply_json(r, 200, v);
    json_decref(v);
}

static void reply_queue(ob_http_req *r, api *a, const char *name)
{
    ob_queue_info q;
    int rc = ob_queue_get(a->o.engine, name, &q);
    if (rc) {
        api_reply_rc(r, rc, rc == OB_EINVAL ? "name" : NULL);
        return;
    }
    ob_key_hold *h;
    size_t nh;
    if ((rc = ob_queue_holds(a->o.engine, name, &h, &nh))) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    json_t *v = queue_json(&q, ob_now_ms()), *held = json_array();
    for (size_t i = 0; i < nh; i++)
        json_array_append_new(held, json_pack("{s:s, s:o}", "key", h[i].key, "until",
                                              time_or_null(h[i].until_ms)));
    free(h);
    json_object_set_new(v, "held_keys", held);
    ob_http_reply_json(r, 200, v);
    json_decref(v);
}

static void get_queue(ob_http_req *r, void *arg)
{
    const char *name = ob_http_param(r, "name");
    if (!ob_name_valid(name)) {
        ob_http_reply_error(r, 422, "invalid", "a queue name is 1-64 characters of [A-Za-z0-9._-]",
                            "name");
        return;
    }
    reply_queue(r, arg, name);
}

/* "rate" or "key_rate" (`what`): {"limit": 1..OB_RATE_LIMIT_MAX,
 * "period": seconds} or null, into *limit and *period_ms. */
static int decode_rate(const char *what, const json_t *v, int *limit, int64_t *period_ms,
                       api_error *e)
{
    char field[24];
    if (json_is_null(v))
        return 0;
    const char *key;
    json_t *m;
    if (!json_is_object(v))
        return api_refuse(e, 422, "invalid", what, "{\"limit\": N, \"period\": seconds} or null");
    json_object_foreach((json_t *)v, key, m) {
        if (strcmp(key, "limit") && strcmp(key, "period"))
            return api_refuse(e, 422, "unknown_field", what, "unknown member %s", key);
    }
    json_t *lim = json_object_get(v, "limit"), *per = json_object_get(v, "period");
    snprintf(field, sizeof field, "%s.limit", what);
    if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
        json_integer_value(lim) > OB_RATE_LIMIT_MAX)
        return api_refuse(e, 422, "invalid", field, "an integer from 1 to %d", OB_RATE_LIMIT_MAX);
    double sec = json_number_value(per);
    snprintf(field, sizeof field, "%s.period", what);
    if (!json_is_number(per) || !(sec >= 0.001) || sec > OB_RATE_PERIOD_MAX_MS / 1000)
        return api_refuse(e, 422, "invalid", field, "seconds, from 0.001 to %d (a day)",
                          OB_RATE_PERIOD_MAX_MS / 1000);
    *limit = (int)json_integer_value(lim);
    *period_ms = (int64_t)llround(sec * 1000.0);
    return 0;
}

/* The body into *s and *mask. 0, or -1 with *e. */
static int decode_patch(const json_t *body, ob_queue_settings *s, unsigned *mask, api_error *e)
{
    *s = (ob_queue_settings){0};
    *mask = 0;
    if (!json_is_object(body))
        return api_refuse(e, 422, "invalid", NULL, "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "paused") == 0) {
            if (!json_is_boolean(v))
                return api_refuse(e, 422, "invalid", key, "true or false");
            s->paused = json_is_true(v);
            *mask |= OB_QUEUE_PAUSED;
        } else if (strcmp(key, "concurrency") == 0) {
            json_int_t n = json_integer_value(v);
            if (!json_is_null(v) && (!json_is_integer(v) || n < 1 || n > OB_CONCURRENCY_MAX))
                return api_refuse(e, 422, "invalid", key,
                                  "an integer from 1 to %d, or null for no cap",
                                  OB_CONCURRENCY_MAX);
            s->concurrency = (int)n;
            *mask |= OB_QUEUE_CONCURRENCY;
        } else if (strcmp(key, "rate") == 0) {
            if (decode_rate(key, v, &s->rate_limit, &s->rate_period_ms, e))
                return -1;
            *mask |= OB_QUEUE_RATE;
        } else if (strcmp(key, "key_rate") == 0) {
            if (decode_rate(key, v, &s->key_rate_limit, &s->key_rate_period_ms, e))
                return -1;
            *mask |= OB_QUEUE_KEY_RATE;
        } else {
            return api_refuse(e, 422, "unknown_field", key, "unknown member");
        }
    }
    return 0;
}

static void patch_queue(ob_http_req *r, void *arg)
{
    api *a = arg;
    const char *name = ob_http_param(r, "name");
    json_t *body = ob_http_body_json(r);
    if (!body)
        return;
    ob_queue_settings s;
    unsigned mask;
    api_error e;
    if (decode_patch(body, &s, &mask, &e)) {
        ob_http_reply_error(r, e.status, e.code, e.p.message, e.p.field[0] ? e.p.field : NULL);
        return;
    }
    ob_problem p = {.field = "", .message = ""};
    int rc = ob_queue_set(a->o.engine, name, &s, mask, NULL, &p);
    if (rc == OB_EINVAL || rc == OB_EFULL) {
        ob_http_reply_error(r, rc == OB_EFULL ? 409 : 422, rc == OB_EFULL ? "full" : "invalid",
                            p.message, p.field[0] ? p.field : NULL);
        return;
    }
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    reply_queue(r, a, name);
}

int api_queues_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "GET", "/v1/queues", list_queues, 0)) ||
        (rc = api_route(a, srv, "GET", "/v1/queues/{name}", get_queue, 0)) ||
        (rc = api_route(a, srv, "PATCH", "/v1/queues/{name}", patch_queue, OB_HTTP_JSON)))
        return rc;
    return 0;
}
