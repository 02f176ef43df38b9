/*
 * compat_resend.c - Resend's email API, so code written against it works
 * with outboxd by changing the base URL (RESEND_BASE_URL) and the key:
 *
 *   POST /emails         one message: 200 {"id"} once it is durable;
 *                        Idempotency-Key as Resend has it (the same key
 *                        and body: the same id; another body: 409)
 *   POST /emails/batch   up to 100 (a JSON array). x-batch-validation:
 *                        strict (the default) refuses the whole batch when
 *                        one message is invalid, storing none: 422;
 *                        permissive stores the valid ones: 200 {"data":
 *                        [{"id"}...], "errors": [{"index", "message"}]}
 *   GET  /emails/{id}    {"object": "email", id, from, to, cc, bcc,
 *                        reply_to, subject, html, text, created_at,
 *                        scheduled_at, last_event}
 *
 * last_event: queued, scheduled, delivery_delayed, delivered, bounced,
 * canceled, or suppressed (every recipient was on the suppression list:
 * nothing was sent, as Resend's email.suppressed).
 *
 * Authentication is outboxd's own (Authorization: Bearer), answered in
 * Resend's shape here. Each message becomes the same mail.send job as
 * POST /v1/messages (api_message_item); its id is the job's, so
 * /v1/messages/{id} shows each recipient's reply.
 *
 * Fields: from, to, cc, bcc, reply_to (a string or an array), subject,
 * html, text, headers {name: value}, attachments [{filename, content
 * (base64), content_type}], tags [{name, value}] (kept with the job as
 * metadata {"tags": {name: value}}), scheduled_at (ISO 8601). Refused by name, never dropped: react,
 * template, topic_id, an attachment's path (a URL to fetch) or content_id,
 * natural-language scheduled_at, any unknown field.
 *
 * Errors are Resend's shape: {"statusCode", "name", "message"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "outbox/mailjob.h"
#include "outbox/util.h"

#define RESEND_BATCH_MAX 100

/* ---- answers ---- */

static const char *error_name(int status)
{
    switch (status) {
    case 401: return "missing_api_key";
    case 403: return "invalid_api_key";
    case 404: return "not_found";
    case 409: return "invalid_idempotent_request";
    case 413:
    case 422: return "validation_error";
    case 429: return "rate_limit_exceeded";
    default: return status >= 500 ? "application_error" : "validation_error";
    }
}

static json_t *error_json(int status, const char *field, const char *message)
{
    char msg[700];
    if (field && *field)
        snprintf(msg, sizeof msg, "%s: %s", field, message);
    else
        snprintf(msg, sizeof msg, "%s", message);
    return json_pack("{s:i, s:s, s:s}", "statusCode", status, "name", error_name(status),
                     "message", msg);
}

static json_t *accepted(const char *id, bool existed, const json_t *extra)
{
    (void)existed;
    (void)extra;
    return json_pack("{s:s}", "id", id);
}

static json_t *refused(const api_error *e)
{
    return error_json(e->status, e->p.field, e->p.message);
}

/* Permissive: the stored ones' ids in "data", the refused ones by index. */
static json_t *batch(json_t *results)
{
    json_t *data = json_array(), *errors = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r) {
        if (json_object_get(r, "id"))
            json_array_append(data, r);
        else
            json_array_append_new(errors, json_pack("{s:I, s:O}", "index", (json_int_t)i, "message",
                                                    json_object_get(r, "message")));
    }
    json_decref(results);
    return json_pack("{s:o, s:o}", "data", data, "errors", errors);
}

static const api_dialect resend = {.accepted_status = 200, .accepted = accepted,
                                   .refused = refused, .batch = batch,
                                   .max_batch = RESEND_BATCH_MAX};

void api_resend_unauthorized(ob_http_req *r, bool missing)
{
    json_t *v = error_json(missing ? 401 : 403, NULL,
                           missing ? "Missing API key in the authorization header. Include the "
                                     "following header Authorization: Bearer YOUR_API_KEY in the "
                                     "request."
                                   : "API key is invalid");
    ob_http_reply_json(r, missing ? 401 : 403, v);
    json_decref(v);
}

/* ---- fields ---- */

static int attachments(const json_t *v, json_t *msg, api_error *e)
{
    if (!json_is_array(v))
        return api_refuse(e, 422, "invalid", "attachments", "an array of {filename, content}");
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        const char *key;
        json_t *m;
        json_t *a = json_object();
        json_object_foreach(it, key, m) {
            if (json_is_null(m))
                continue;
            const char *ours = !strcmp(key, "filename")       ? "filename"
                               : !strcmp(key, "content")      ? "content"
                               : !strcmp(key, "content_type") ? "content_type"
                                                              : NULL;
            if (!ours) {
                json_decref(a);
                json_decref(out);
                return api_refuse(e, 422, "invalid", "attachments",
                                  "item %zu: %s is not supported by outbox (give content, "
                                  "base64)", i, key);
            }
            json_object_set(a, ours, m);
        }
        json_array_append_new(out, a);
    }
    json_object_set_new(msg, "attachments", out);
    return 0;
}

/* Tags [{name, value?}] kept as metadata {"tags": {name: value}}. */
static int tags(const json_t *v, json_t *msg, api_error *e)
{
    json_t *out;
    if (api_pairs(v, "name", "value", true, "tags", &out, e))
        return -1;
    json_object_set_new(msg, "metadata", json_pack("{s:o}", "tags", out));
    return 0;
}

/* One Resend message into the job (api_decode_fn). */
static int decode_tree(api *a, const json_t *body, api_item *it, api_error *e)
{
    static const char *const direct[] = {"from", "to", "cc", "bcc", "reply_to", "subject",
                                         "html", "text", "headers", NULL};
    *it = (api_item){0};
    if (!json_is_object(body))
        return api_refuse(e, 422, "invalid", NULL, "an email is a JSON object");
    json_t *msg = json_object();
    int64_t run_at = 0;
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (json_is_null(v))
            continue;
        bool done = false;
        for (int i = 0; direct[i] && !done; i++)
            if ((done = !strcmp(key, direct[i])))
                json_object_set(msg, key, v);
        if (done)
            continue;
        if (!strcmp(key, "attachments"))
            rc = attachments(v, msg, e);
        else if (!strcmp(key, "tags"))
            rc = tags(v, msg, e);
        else if (!strcmp(key, "scheduled_at"))
            rc = json_is_string(v) && !ob_time_parse(json_string_value(v), &run_at)
                     ? 0
                     : api_refuse(e, 422, "invalid", "scheduled_at", "an ISO 8601 date-time "
                                  "(2026-12-08T09:00:00Z); natural language is not supported");
        else
            rc = api_refuse(e, 422, "invalid", key, "not supported by outbox (react, templates "
                            "and topics are Resend's)");
        if (rc)
            break;
    }
    if (rc) {
        json_decref(msg);
        return -1;
    }
    if (!json_object_get(msg, "subject"))
        json_object_set_new(msg, "subject", json_string(""));
    return api_message_item(a, msg, run_at, NULL, it, e);
}

static int decode(api *a, const jspan *body, api_item *it, api_error *e)
{
    return api_decode_tree(a, body, it, e, decode_tree);
}

static void post_email(ob_http_req *r, void *arg) { api_post_one_in(arg, r, decode, &resend); }

/* Strict (the default): every message is checked before any is stored;
 * one invalid message refuses the batch, naming it. */
static void post_batch(ob_http_req *r, void *arg)
{
    api *a = arg;
    const char *mode = ob_http_header(r, "x-batch-validation");
    api_error e;
    if (mode && strcasecmp(mode, "strict") != 0 && strcasecmp(mode, "permissive") != 0) {
        api_refuse(&e, 422, "invalid", "x-batch-validation", "strict or permissive");
        api_reply_refused(r, &e, &resend);
        return;
    }
    json_t *body = ob_http_body_json(r);
    if (!body)
        return;
    if (!mode || !strcasecmp(mode, "strict")) {
        size_t i;
        json_t *m;
        json_array_foreach(json_is_array(body) ? body : NULL, i, m) {
            api_item it;
            int rc = decode_tree(a, m, &it, &e);
            api_item_clear(&it);
            if (rc) {
                char field[sizeof e.p.field];
                snprintf(field, sizeof field, "%s", e.p.field);
                snprintf(e.p.field, sizeof e.p.field, "[%zu]%s%.*s", i, field[0] ? "." : "",
                         (int)sizeof field - 24, field);
                api_reply_refused(r, &e, &resend);
                return;
            }
        }
    }
    api_post_batch_in(a, r, "emails", decode, &resend);
}

/* Resend's last_event for a message job: its state, and "suppressed" for
 * one discarded with every recipient on the suppression list. */
static const char *last_event(const ob_job *j)
{
    ob_mail_status *st;
    bool all = false;
    if (j->state == OB_DISCARDED && ob_mail_status_get(j, &st) == 0) {
        all = st->n > 0;
        for (size_t i = 0; i < st->n; i++)
            all &= st->rcpts[i].state == OB_RCPT_SUPPRESSED;
        ob_mail_status_free(st);
    }
    switch (all ? 0 : j->state) {
    case 0: return "suppressed";
    case OB_SCHEDULED: return "scheduled";
    case OB_RETRYABLE: return "delivery_delayed";
    case OB_COMPLETED: return "delivered";
    case OB_DISCARDED: return "bounced";
    case OB_CANCELLED: return "canceled";
    default: return "queued";
    }
}

/* A stored address ({address, name}) as Resend shows it: "Name <addr>"
 * or "addr". */
static json_t *address(const json_t *a)
{
    const char *n = json_string_value(json_object_get(a, "name"));
    const char *addr = json_string_value(json_object_get(a, "address"));
    char s[800];
    if (n && *n)
        snprintf(s, sizeof s, "%s <%s>", n, addr ? addr : "");
    else
        snprintf(s, sizeof s, "%s", addr ? addr : "");
    return json_string(s);
}

/* A stored address list as strings; null when absent. */
static json_t *addresses(const json_t *stored, const char *name)
{
    json_t *v = json_object_get(stored, name);
    if (!v)
        return json_null();
    json_t *out = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(v, i, a)
        json_array_append_new(out, address(a));
    return out;
}

static void get_email(ob_http_req *r, void *arg)
{
    api *a = arg;
    ob_id id;
    ob_job *j = NULL;
    int rc = ob_id_parse(ob_http_param(r, "id"), &id) ? OB_ENOTFOUND : ob_job_get(a->o.engine, &id, &j);
    if (!rc && strcmp(j->kind, OB_MAIL_KIND) != 0)
        rc = OB_ENOTFOUND;
    json_t *stored = rc ? NULL : json_loadb((const char *)j->payload, j->payload_len, 0, NULL);
    if (rc || !stored) {
        json_t *v = error_json(rc == OB_ENOTFOUND ? 404 : 500, NULL,
                               rc == OB_ENOTFOUND ? "Email not found" : "cannot read the email");
        ob_http_reply_json(r, rc == OB_ENOTFOUND ? 404 : 500, v);
        json_decref(v);
        ob_job_free(j);
        return;
    }
    char ids[OB_ID_STRLEN + 1], created[32], sched[32];
    ob_id_format(&j->id, ids);
    ob_time_format(j->created_at_ms, created);
    ob_time_format(j->run_at_ms, sched);
    json_t *v = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:O?, s:O?, s:O?, s:s, s:s?, s:s}",
                          "object", "email", "id", ids, "from",
                          address(json_object_get(stored, "from")), "to", addresses(stored, "to"), "cc", addresses(stored, "cc"), "bcc",
                          addresses(stored, "bcc"), "reply_to", addresses(stored, "reply_to"),
                          "subject", json_object_get(stored, "subject"), "html",
                          json_object_get(stored, "html"), "text", json_object_get(stored, "text"),
                          "created_at", created, "scheduled_at",
                          j->state == OB_SCHEDULED ? sched : NULL, "last_event",
                          last_event(j));
    ob_http_reply_json(r, 200, v);
    json_decref(v);
    json_decref(stored);
    ob_job_free(j);
}

int api_resend_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "POST", "/emails", post_email, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "POST", "/emails/batch", post_batch, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "GET", "/emails/{id}", get_email, 0)))
        return rc;
    return 0;
}
