/*
 * messages_api.c - /v1/messages: mail as a job.
 *
 *   POST /v1/messages        one message: validated (ob_mail_parse), stored
 *                            as a mail.send job whose payload is the
 *                            message's stored form; 202 once durable, with
 *                            the recipients (all "pending"), exactly as
 *                            POST /v1/jobs (Idempotency-Key, Prefer: wait).
 *   POST /v1/messages/batch  up to max_batch messages, each validated and
 *                            stored on its own (batch.c): one result per
 *                            message, in order, answered once every
 *                            accepted one is durable.
 *   GET  /v1/messages/{id}   the job, with each recipient's state (404 for
 *                            a job that is not a message).
 *   GET  /v1/messages/{id}/raw  the message as MIME (message/rfc822, to
 *                            save as .eml): as outboxd builds it to send.
 *
 * Beside the message's own members (include/outbox/mail.h) a request may
 * carry send_at (RFC 3339: when to send) and callback_url (POSTed the job
 * once final, as for /v1/jobs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/util.h"

/* {message_id, recipients (all pending)} for the 202 body. */
static json_t *extra_members(const ob_mail *m)
{
    size_t n = ob_mail_rcpt_count(m);
    ob_mail_rcpt_status *r = calloc(n, sizeof *r);
    if (!r)
        return NULL;
    for (size_t i = 0; i < n; i++)
        r[i] = (ob_mail_rcpt_status){.address = ob_mail_rcpt(m, i),
                                     .type = ob_mail_rcpt_type(m, i)};
    json_t *v = json_pack("{s:s, s:o?}", "message_id", ob_mail_message_id(m), "recipients",
                          api_rcpts_json(r, n));
    free(r);
    return v;
}

/* Decode one message (api_decode_fn). */
static int decode_tree(api *a, const json_t *body, api_item *it, api_error *e)
{
    *it = (api_item){0};
    if (!json_is_object(body))
        return api_refuse(e, 422, "invalid", NULL, "a message is a JSON object");
    json_t *send_at = json_object_get(body, "send_at"), *cb = json_object_get(body, "callback_url");
    int64_t run_at = 0;
    if (send_at && (!json_is_string(send_at) || ob_time_parse(json_string_value(send_at), &run_at)))
        return api_refuse(e, 422, "invalid", "send_at",
                          "must be an RFC 3339 date-time, e.g. 2026-11-25T04:00:00Z");
    if (cb && (!json_is_string(cb) || !api_url_ok(json_string_value(cb))))
        return api_refuse(e, 422, "invalid", "callback_url",
                          "must be an http:// or https:// URL, without user name or password");
    char field[40];
    const char *why;
    if (api_url_refused(a, json_string_value(cb), "callback_url", field, sizeof field, &why))
        return api_refuse(e, 422, "invalid", field, "%s", why);
    json_t *msg = json_copy((json_t *)body); /* shallow: drop the job's members */
    if (!msg)
        return api_refuse(e, 503, "no_memory", NULL, "out of memory");
    json_object_del(msg, "send_at");
    json_object_del(msg, "callback_url");
    return api_message_item(a, msg, run_at, json_string_value(cb), it, e);
}

static int decode(api *a, const jspan *body, api_item *it, api_error *e)
{
    return api_decode_tree(a, body, it, e, decode_tree);
}

int api_message_item(api *a, json_t *msg, int64_t run_at, const char *callback_url, api_item *it,
                     api_error *e)
{
    *it = (api_item){0};
    ob_mail *m = NULL;
    int rc = ob_mail_parse(msg, OB_MAIL_REQUEST, a->o.mail_limits, &m, &e->p);
    json_decref(msg);
    if (!rc && a->o.dkim && (rc = ob_mail_sign(m, a->o.dkim, NULL))) { /* once, before it is stored */
        ob_mail_free(m);
        return api_refuse(e, 503, "no_memory", NULL, "cannot sign the message: out of memory");
    }
    if (rc == OB_ENOMEM)
        return api_refuse(e, 503, "no_memory", NULL, "out of memory");
    if (rc) {
        e->status = rc == OB_ETOOBIG ? 413 : 422;
        e->code = rc == OB_ETOOBIG ? "too_large" : "invalid";
        return -1;
    }
    it->p = (api_post){.j = {.run_at_ms = run_at}, .callback_url = callback_url,
                       .view = "/v1/messages/"};
    rc = ob_mail_job_new(m, &it->p.j, &it->payload);
    it->p.extra = extra_members(m);
    ob_mail_free(m);
    if (rc || !it->p.extra)
        return api_refuse(e, 503, "no_memory", NULL, "out of memory");
    return 0;
}

static void post_message(ob_http_req *r, void *arg) { api_post_one(arg, r, decode); }

/* POST /v1/messages/batch: {"messages": [...]}, each as for POST /v1/messages. */
static void post_batch(ob_http_req *r, void *arg) { api_post_batch(arg, r, "messages", decode); }

/* ---- GET /v1/messages/{id} ---- */

static void get_message(ob_http_req *r, void *arg) { api_get_job(arg, r, OB_MAIL_KIND); }

static void get_raw(ob_http_req *r, void *arg)
{
    api *a = arg;
    const char *ids = ob_http_param(r, "id");
    ob_id id;
    if (ob_id_parse(ids, &id)) {
        ob_http_reply_error(r, 400, "invalid", "not a job id", "id");
        return;
    }
    ob_job *j = NULL;
    int rc = ob_job_get(a->o.engine, &id, &j);
    if (!rc && strcmp(j->kind, OB_MAIL_KIND) != 0)
        rc = OB_ENOTFOUND;
    char *mime = NULL;
    size_t len = 0;
    if (!rc)
        rc = ob_mail_job_raw(j, &mime, &len);
    ob_job_free(j);
    if (rc == OB_EINVAL) {
        ob_http_reply_error(r, 500, "internal", "the stored message does not parse", NULL);
        return;
    }
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    char disp[80];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.eml\"", ids);
    ob_http_set_header(r, "Content-Disposition", disp);
    ob_http_reply(r, 200, "message/rfc822", mime, len);
    free(mime);
}

int api_messages_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "POST", "/v1/messages", post_message, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "POST", "/v1/messages/batch", post_batch, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "GET", "/v1/messages/{id}", get_message, 0)) ||
        (rc = api_route(a, srv, "GET", "/v1/messages/{id}/raw", get_raw, 0)))
        return rc;
    return 0;
}
