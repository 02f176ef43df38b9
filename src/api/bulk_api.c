/*
 * bulk_api.c - POST /v1/jobs/retry and POST /v1/jobs/cancel: many jobs at
 * once, the operator's dead-letter tools (ob_jobs_bulk_async).
 *
 *   {"state": "discarded" | ["discarded", ...], "kind", "queue", "search",
 *    "created_after", "created_before", "limit": 1..1000, "cursor"}
 *                                        a page of the filter (newest first,
 *                                        as GET /v1/jobs lists it)
 *   {"ids": ["<uuid>", ...]}             or these jobs (at most 1000)
 *
 * → 200 {"matched", "count" (changed), "next_cursor" (null when done)}, once
 * every change is durable. A job whose state forbids the change (running,
 * completed) is matched and not counted. Past the page, the answer's
 * cursor continues: one call never makes more than a page of changes, and
 * those go through the commit thread's ordinary batches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

typedef struct bulk_req {
    ob_list_filter f;
    ob_id ids[OB_LIST_MAX];
    size_t nids;
    char cursor[OB_CURSOR_MAX];
    char term[OB_TERM_MAX + 1], key[OB_UNIQUE_KEY_MAX + 8];
} bulk_req;

/* "search" as GET /v1/jobs takes it (but an id: give "ids"). */
static int decode_search(const json_t *v, bulk_req *q, api_error *e)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > OB_TERM_MAX)
        return api_refuse(e, 422, "invalid", "search", "1 to %d bytes", OB_TERM_MAX);
    if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
        snprintf(q->term, sizeof q->term, "%.*s", (int)n - 2, s + 1);
    else
        snprintf(q->term, sizeof q->term, "%s", s);
    q->f.term = q->term;
    if (n <= OB_UNIQUE_KEY_MAX) {
        snprintf(q->key, sizeof q->key, "key:%s", s);
        q->f.unique_key = q->key;
    }
    return 0;
}

static int decode_times(const json_t *body, bulk_req *q, api_error *e)
{
    static const char *const names[2] = {"created_after", "created_before"};
    int64_t *out[2] = {&q->f.created_after_ms, &q->f.created_before_ms};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(body, names[i]);
        if (v && (!json_is_string(v) || ob_time_parse(json_string_value(v), out[i]) || *out[i] <= 0))
            return api_refuse(e, 422, "invalid", names[i], "an RFC 3339 date-time");
    }
    return 0;
}

static int decode_state(const json_t *v, unsigned *mask, api_error *e)
{
    long m = 0;
    if (json_is_string(v)) {
        m = api_states(json_string_value(v));
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        size_t i;
        json_t *s;
        json_array_foreach(v, i, s) {
            long one = json_is_string(s) ? api_states(json_string_value(s)) : -1;
            m = one < 0 || m < 0 ? -1 : m | one;
        }
    } else {
        m = -1;
    }
    if (m <= 0)
        return api_refuse(e, 422, "invalid", "state", "a job state, a comma list or an array "
                                                      "of them (discarded, cancelled, ...)");
    *mask = (unsigned)m;
    return 0;
}

static int decode_ids(const json_t *v, bulk_req *q, api_error *e)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > OB_LIST_MAX)
        return api_refuse(e, 422, "invalid", "ids", "an array of 1-%d job ids", OB_LIST_MAX);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || ob_id_parse(json_string_value(s), &q->ids[i])) {
            char field[32];
            snprintf(field, sizeof field, "ids[%zu]", i);
            return api_refuse(e, 422, "invalid", field, "not a job id (a UUID)");
        }
    }
    q->nids = json_array_size(v);
    return 0;
}

/* The body into *q. 0, or -1 with *e. */
static int decode(const json_t *body, bulk_req *q, api_error *e)
{
    *q = (bulk_req){.f = {.limit = OB_LIST_MAX}};
    if (!json_is_object(body))
        return api_refuse(e, 422, "invalid", NULL, "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "state") && strcmp(key, "kind") && strcmp(key, "queue") &&
            strcmp(key, "ids") && strcmp(key, "limit") && strcmp(key, "cursor") &&
            strcmp(key, "search") && strcmp(key, "created_after") && strcmp(key, "created_before"))
            return api_refuse(e, 422, "unknown_field", key, "unknown member");
    }
    if ((v = json_object_get(body, "ids"))) {
        if (json_object_size(body) != 1)
            return api_refuse(e, 422, "invalid", "ids", "give ids or a filter, not both");
        return decode_ids(v, q, e);
    }
    if ((v = json_object_get(body, "state")) && decode_state(v, &q->f.states, e))
        return -1;
    if (((v = json_object_get(body, "search")) && decode_search(v, q, e)) ||
        decode_times(body, q, e))
        return -1;
    static const char *const names[] = {"kind", "queue"};
    for (int i = 0; i < 2; i++) {
        const char *s = json_string_value(json_object_get(body, names[i]));
        if (json_object_get(body, names[i]) && !ob_name_valid(s))
            return api_refuse(e, 422, "invalid", names[i],
                              "1-64 characters of [A-Za-z0-9._-]");
        if (i == 0)
            q->f.kind = s;
        else
            q->f.queue = s;
    }
    if ((v = json_object_get(body, "limit"))) {
        json_int_t n = json_integer_value(v);
        if (!json_is_integer(v) || n < 1 || n > OB_LIST_MAX)
            return api_refuse(e, 422, "invalid", "limit", "an integer from 1 to %d", OB_LIST_MAX);
        q->f.limit = (int)n;
    }
    if ((v = json_object_get(body, "cursor")) && !json_is_null(v)) {
        ob_id id;
        if (!json_is_string(v) || ob_id_parse(json_string_value(v), &id))
            return api_refuse(e, 422, "invalid", "cursor", "a next_cursor from an answer");
        snprintf(q->cursor, sizeof q->cursor, "%s", json_string_value(v));
        q->f.cursor = q->cursor;
    }
    return 0;
}

/* The engine is done (commit thread): answer the suspended request. */
static void done(void *arg, const ob_bulk_result *res)
{
    ob_http_later *l = arg;
    if (res->rc) {
        api_later_rc(l, res->rc, NULL);
        return;
    }
    json_t *v = json_pack("{s:i, s:i, s:s?}", "matched", res->matched, "count", res->changed,
                          "next_cursor", res->next_cursor[0] ? res->next_cursor : NULL);
    ob_http_later_reply_json(l, 200, v);
    json_decref(v);
}

static void bulk(ob_http_req *r, api *a, ob_bulk_action action)
{
    json_t *body = ob_http_body_json(r);
    if (!body)
        return;
    bulk_req *q = malloc(sizeof *q);
    api_error e;
    if (!q) {
        api_reply_rc(r, OB_ENOMEM, NULL);
        return;
    }
    if (decode(body, q, &e)) {
        ob_http_reply_error(r, e.status, e.code, e.p.message, e.p.field[0] ? e.p.field : NULL);
        free(q);
        return;
    }
    ob_http_later *l;
    int rc = ob_http_suspend(r, &l);
    if (rc) {
        api_reply_rc(r, rc, NULL);
        free(q);
        return;
    }
    rc = ob_jobs_bulk_async(a->o.engine, action, q->nids ? NULL : &q->f,
                            q->nids ? q->ids : NULL, q->nids, done, l);
    if (rc)
        api_later_rc(l, rc, NULL);
    free(q);
}

static void retry_many(ob_http_req *r, void *arg) { bulk(r, arg, OB_BULK_RETRY); }
static void cancel_many(ob_http_req *r, void *arg) { bulk(r, arg, OB_BULK_CANCEL); }

int api_bulk_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "POST", "/v1/jobs/retry", retry_many, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "POST", "/v1/jobs/cancel", cancel_many, OB_HTTP_JSON)))
        return rc;
    return 0;
}
