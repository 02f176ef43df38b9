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

typedef struct problem {
    int status;
    const char *code;
    char message[200];
    char field[100];
} problem;

static int refuse(problem *e, int status, const char *code, const char *field, const char *msg)
{
    e->status = status;
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field);
    snprintf(e->message, sizeof e->message, "%s", msg);
    return -1;
}

/* A decoded message: what api_enqueue takes, and what it owns. */
typedef struct msg_in {
    api_post p;
    char *payload;
} msg_in;

static void msg_in_clear(msg_in *in)
{
    free(in->payload);
    json_decref(in->p.extra);
    *in = (msg_in){0};
}

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

/* Decode one message (a JSON value) into *in. 0, or -1 with *e. */
static int decode(api *a, const json_t *body, msg_in *in, problem *e)
{
    *in = (msg_in){0};
    if (!json_is_object(body))
        return refuse(e, 422, "invalid", "", "a message is a JSON object");
    json_t *msg = json_copy((json_t *)body); /* shallow: drop the job's members */
    if (!msg)
        return refuse(e, 503, "no_memory", "", "out of memory");
    json_t *send_at = json_object_get(body, "send_at"), *cb = json_object_get(body, "callback_url");
    json_object_del(msg, "send_at");
    json_object_del(msg, "callback_url");
    int64_t run_at = 0;
    if (send_at && (!json_is_string(send_at) || ob_time_parse(json_string_value(send_at), &run_at))) {
        json_decref(msg);
        return refuse(e, 422, "invalid", "send_at",
                      "must be an RFC 3339 date-time, e.g. 2026-11-25T04:00:00Z");
    }
    if (cb && (!json_is_string(cb) || !api_url_ok(json_string_value(cb)))) {
        json_decref(msg);
        return refuse(e, 422, "invalid", "callback_url",
                      "must be an http:// or https:// URL, without user name or password");
    }
    char field[40];
    const char *why;
    if (api_url_refused(a, json_string_value(cb), "callback_url", field, sizeof field, &why)) {
        json_decref(msg);
        return refuse(e, 422, "invalid", field, why);
    }
    ob_mail *m = NULL;
    ob_problem p;
    int rc = ob_mail_parse(msg, OB_MAIL_REQUEST, a->o.mail_limits, &m, &p);
    json_decref(msg);
    if (rc == OB_ENOMEM)
        return refuse(e, 503, "no_memory", "", "out of memory");
    if (rc)
        return refuse(e, rc == OB_ETOOBIG ? 413 : 422, rc == OB_ETOOBIG ? "too_large" : "invalid",
                      p.field, p.message);
    in->p.j = (ob_new_job){.run_at_ms = run_at};
    rc = ob_mail_job_new(m, &in->p.j, &in->payload);
    in->p.extra = extra_members(m);
    ob_mail_free(m);
    if (rc || !in->p.extra) {
        msg_in_clear(in);
        return refuse(e, 503, "no_memory", "", "out of memory");
    }
    in->p.callback_url = json_string_value(cb);
    in->p.view = "/v1/messages/";
    return 0;
}

static void post_message(ob_http_req *r, void *arg)
{
    api *a = arg;
    json_t *body = ob_http_body_json(r);
    if (!body)
        return;
    msg_in in;
    problem e;
    if (decode(a, body, &in, &e)) {
        ob_http_reply_error(r, e.status, e.code, e.message, e.field[0] ? e.field : NULL);
        return;
    }
    api_enqueue(a, r, &in.p); /* takes in.p.extra */
    msg_in_clear(&in);
}

/* ---- POST /v1/messages/batch (batch.c) ---- */

static void post_batch(ob_http_req *r, void *arg)
{
    api *a = arg;
    json_t *body = ob_http_body_json(r);
    const json_t *list = body ? api_batch_list(a, r, body, "messages") : NULL;
    api_batch *b = list ? api_batch_begin(r, json_array_size(list)) : NULL;
    if (!b)
        return;
    for (size_t i = 0; i < json_array_size(list); i++) {
        msg_in in;
        problem e;
        if (decode(a, json_array_get(list, i), &in, &e)) {
            api_batch_refuse(b, i, e.status, e.code, e.message, e.field);
            continue;
        }
        api_batch_enqueue(a, b, i, &in.p);
        msg_in_clear(&in);
    }
    api_batch_end(b);
}

/* ---- GET /v1/messages/{id} ---- */

static void get_message(ob_http_req *r, void *arg) { api_get_job(arg, r, OB_MAIL_KIND); }

int api_messages_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "POST", "/v1/messages", post_message, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "POST", "/v1/messages/batch", post_batch, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "GET", "/v1/messages/{id}", get_message, 0)))
        return rc;
    return 0;
}
