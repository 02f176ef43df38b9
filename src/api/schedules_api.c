/*
 * schedules_api.c - /v1/schedules: cron schedules (ob_schedule_*) over
 * HTTP.
 *
 *   PUT    /v1/schedules/{name}   {"cron", "timezone"?, "job": {as POST
 *                                  /v1/jobs, without run_at, delay or
 *                                  unique_key}, "missed"?: "skip"|"latest",
 *                                  "paused"?} → 200 (replaced) or 201
 *   GET    /v1/schedules          {"schedules": [...]}
 *   GET    /v1/schedules/{name}   the schedule, with its next five runs
 *   DELETE /v1/schedules/{name}   204 (the jobs it made stay)
 *   POST   /v1/schedules/{name}/pause | /resume  → 200 with the schedule
 *
 * A schedule in an answer: {"name", "cron", "timezone", "job": {"kind",
 * "queue", "priority", "payload", "max_attempts", "timeout",
 * "callback_url", "rate_key"}, "missed", "paused", "next_run_at",
 * "next_runs" (GET of one: five), "last_run_at", "last_job_id",
 * "updated_at"}.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/cron.h"
#include "outbox/util.h"

#define NEXT_RUNS 5

static json_t *time_or_null(int64_t ms)
{
    char at[32];
    return ms ? json_string(ob_time_format(ms, at)) : json_null();
}

static json_t *template_json(const ob_job *j)
{
    json_t *payload = json_loadb((const char *)j->payload, j->payload_len, JSON_DECODE_ANY, NULL);
    json_t *meta = j->meta ? json_loads(j->meta, 0, NULL) : NULL;
    json_t *v = json_pack("{s:s, s:s, s:i, s:o, s:i, s:f, s:O?, s:s?}", "kind", j->kind, "queue",
                          j->queue, "priority", j->priority, "payload",
                          payload ? payload : json_null(), "max_attempts", j->max_attempts,
                          "timeout", (double)j->timeout_ms / 1000.0, "callback_url",
                          json_object_get(meta, "callback_url"), "rate_key", j->rate_key);
    json_decref(meta);
    return v;
}

static json_t *schedule_json(const ob_schedule_info *s, bool runs)
{
    char last[OB_ID_STRLEN + 1];
    json_t *v = json_pack(
        "{s:s, s:s, s:s, s:o, s:s, s:b, s:o, s:o, s:s?, s:o}", "name", s->name, "cron", s->cron,
        "timezone", s->timezone[0] ? s->timezone : "UTC", "job", template_json(s->job), "missed",
        s->missed == OB_MISSED_LATEST ? "latest" : "skip", "paused", s->paused, "next_run_at",
        time_or_null(s->next_at_ms), "last_run_at", time_or_null(s->last_at_ms), "last_job_id",
        s->has_last_job ? ob_id_format(&s->last_job, last) : NULL, "updated_at",
        time_or_null(s->updated_at_ms));
    if (!runs || !v)
        return v;
    json_t *next = json_array();
    ob_cron *c = NULL;
    if (!s->paused && ob_cron_parse(s->cron, s->timezone, &c, NULL) == 0) {
        int64_t t = s->next_at_ms ? s->next_at_ms - 1 : ob_now_ms();
        for (int i = 0; i < NEXT_RUNS && ob_cron_next(c, t, &t) == 0; i++)
            json_array_append_new(next, time_or_null(t));
    }
    ob_cron_free(c);
    json_object_set_new(v, "next_runs", next);
    return v;
}

static bool name_ok(ob_http_req *r, const char *name)
{
    if (ob_name_valid(name))
        return true;
    ob_http_reply_error(r, 422, "invalid", "a schedule name is 1-64 characters of [A-Za-z0-9._-]",
                        "name");
    return false;
}

/* Answer an engine error, naming a missing schedule as one. */
static void refuse(ob_http_req *r, int rc)
{
    if (rc == OB_ENOTFOUND)
        ob_http_reply_error(r, 404, "not_found", "no such schedule", "name");
    else
        api_reply_rc(r, rc, NULL);
}

static void reply_schedule(ob_http_req *r, api *a, const char *name, int status)
{
    ob_schedule_info s;
    int rc = ob_schedule_get(a->o.engine, name, &s);
    if (rc) {
        refuse(r, rc);
        return;
    }
    json_t *v = schedule_json(&s, true);
    ob_schedule_info_clear(&s);
    ob_http_reply_json(r, status, v);
    json_decref(v);
}

static void list_schedules(ob_http_req *r, void *arg)
{
    api *a = arg;
    ob_schedule_info *all;
    size_t n;
    int rc = ob_schedule_list(a->o.engine, &all, &n);
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, schedule_json(&all[i], false));
    ob_schedule_list_free(all, n);
    json_t *v = json_pack("{s:o}", "schedules", arr);
    ob_http_reply_json(r, 200, v);
    json_decref(v);
}

static void get_schedule(ob_http_req *r, void *arg)
{
    const char *name = ob_http_param(r, "name");
    if (name_ok(r, name))
        reply_schedule(r, arg, name, 200);
}

/* The PUT body into *s (the job via it), or -1 with *e. */
static int decode_put(api *a, const json_t *body, ob_schedule *s, api_item *it, api_error *e)
{
    if (!json_is_object(body))
        return api_refuse(e, 422, "invalid", NULL, "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "cron") && strcmp(key, "timezone") && strcmp(key, "job") &&
            strcmp(key, "missed") && strcmp(key, "paused"))
            return api_refuse(e, 422, "unknown_field", key, "unknown member");
    }
    if (!json_is_string(v = json_object_get(body, "cron")))
        return api_refuse(e, 422, "invalid", "cron", "a cron expression (a string) is required");
    s->cron = json_string_value(v);
    if ((v = json_object_get(body, "timezone")) && !json_is_null(v)) {
        if (!json_is_string(v))
            return api_refuse(e, 422, "invalid", "timezone", "an IANA zone, e.g. Europe/Berlin");
        s->timezone = json_string_value(v);
    }
    if ((v = json_object_get(body, "missed"))) {
        const char *m = json_string_value(v);
        if (!m || (strcmp(m, "skip") && strcmp(m, "latest")))
            return api_refuse(e, 422, "invalid", "missed", "skip or latest");
        s->missed = strcmp(m, "latest") == 0 ? OB_MISSED_LATEST : OB_MISSED_SKIP;
    }
    if ((v = json_object_get(body, "paused"))) {
        if (!json_is_boolean(v))
            return api_refuse(e, 422, "invalid", "paused", "true or false");
        s->paused = json_is_true(v);
    }
    const json_t *job = json_object_get(body, "job");
    if (!json_is_object(job))
        return api_refuse(e, 422, "invalid", "job", "the job each run makes (an object, as the "
                                                    "body of POST /v1/jobs)");
    static const char *const not_here[] = {"run_at", "delay", "unique_key"};
    for (size_t i = 0; i < 3; i++) {
        char field[32];
        snprintf(field, sizeof field, "job.%s", not_here[i]);
        if (json_object_get(job, not_here[i]))
            return api_refuse(e, 422, "invalid", field, "each run makes its job now, with a key "
                                                        "of its own: not in a schedule's job");
    }
    /* decoded as POST /v1/jobs decodes it: from text (a schedule is rare) */
    char *text = json_dumps(job, JSON_COMPACT);
    jspan span;
    jscan_error err;
    if (!text || jscan(text, strlen(text), 0, &span, &err)) {
        free(text);
        return api_refuse(e, 500, "out_of_memory", NULL, "out of memory");
    }
    int rc = api_decode_job_item(a, &span, it, e);
    it->payload = text; /* what it->p.j.payload points into */
    if (rc) {
        if (e->p.field[0]) { /* the member is the job's */
            char field[sizeof e->p.field + 8];
            snprintf(field, sizeof field, "job.%s", e->p.field);
            snprintf(e->p.field, sizeof e->p.field, "%.*s", (int)sizeof e->p.field - 1, field);
        }
        return -1;
    }
    s->job = it->p.j;
    return 0;
}

static void put_schedule(ob_http_req *r, void *arg)
{
    api *a = arg;
    const char *name = ob_http_param(r, "name");
    json_t *body = ob_http_body_json(r);
    if (!body || !name_ok(r, name))
        return;
    ob_schedule s = {.name = name};
    api_item it = {0};
    api_error e;
    if (decode_put(a, body, &s, &it, &e)) {
        api_item_clear(&it);
        ob_http_reply_error(r, e.status, e.code, e.p.message, e.p.field[0] ? e.p.field : NULL);
        return;
    }
    char *meta = api_make_meta(it.p.callback_url, NULL);
    s.job.meta = meta;
    ob_schedule_info old;
    bool existed = ob_schedule_get(a->o.engine, name, &old) == 0;
    if (existed)
        ob_schedule_info_clear(&old);
    ob_problem p = {.field = "", .message = ""};
    int rc = ob_schedule_set(a->o.engine, &s, &p);
    free(meta);
    api_item_clear(&it);
    if (rc == OB_EINVAL || rc == OB_ENOKIND || rc == OB_ETOOBIG) {
        const char *code;
        int status = api_status(rc, &code);
        ob_http_reply_error(r, status, code, p.message, p.field[0] ? p.field : NULL);
        return;
    }
    if (rc == OB_EFULL) {
        ob_http_reply_error(r, 409, "full", p.message, "name");
        return;
    }
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    reply_schedule(r, a, name, existed ? 200 : 201);
}

static void delete_schedule(ob_http_req *r, void *arg)
{
    api *a = arg;
    const char *name = ob_http_param(r, "name");
    if (!name_ok(r, name))
        return;
    int rc = ob_schedule_delete(a->o.engine, name);
    if (rc)
        refuse(r, rc);
    else
        ob_http_reply(r, 204, NULL, NULL, 0);
}

static void pause_or_resume(ob_http_req *r, api *a, bool paused)
{
    const char *name = ob_http_param(r, "name");
    if (!name_ok(r, name))
        return;
    int rc = ob_schedule_pause(a->o.engine, name, paused);
    if (rc)
        refuse(r, rc);
    else
        reply_schedule(r, a, name, 200);
}

static void pause_schedule(ob_http_req *r, void *arg) { pause_or_resume(r, arg, true); }
static void resume_schedule(ob_http_req *r, void *arg) { pause_or_resume(r, arg, false); }

int api_schedules_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "GET", "/v1/schedules", list_schedules, 0)) ||
        (rc = api_route(a, srv, "GET", "/v1/schedules/{name}", get_schedule, 0)) ||
        (rc = api_route(a, srv, "PUT", "/v1/schedules/{name}", put_schedule, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "DELETE", "/v1/schedules/{name}", delete_schedule, 0)) ||
        (rc = api_route(a, srv, "POST", "/v1/schedules/{name}/pause", pause_schedule, 0)) ||
        (rc = api_route(a, srv, "POST", "/v1/schedules/{name}/resume", resume_schedule, 0)))
        return rc;
    return 0;
}
