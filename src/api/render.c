/*
 * render.c - a job as the API shows it:
 *
 *   {"id", "kind", "queue", "priority", "state", "attempt", "max_attempts",
 *    "timeout" (s), "run_at", "created_at", "attempted_at", "finished_at"
 *    (RFC 3339 or null), "cancel_requested", "unique_key", "callback_url",
 *    "result" (JSON or null), "status_url" (a message's: /v1/messages/ID),
 *    and with detail: "payload" (JSON; "payload_base64" if the bytes are
 *    not JSON), "errors": [{"attempt", "at", "error", "started_at",
 *    "duration"}]; a message also
 *    "message_id" and "recipients"}
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/mailjob.h"
#include "outbox/util.h"

static json_t *time_or_null(int64_t ms)
{
    char b[32];
    return ms ? json_string(ob_time_format(ms, b)) : json_null();
}

const char *api_unique_key(const char *stored)
{
    if (!stored)
        return NULL;
    if (strncmp(stored, "key:", 4) == 0)
        return stored + 4;
    if (strncmp(stored, "idem:", 5) == 0)
        return NULL; /* an Idempotency-Key is the client's, not the job's */
    return stored;
}

static json_t *base64(const unsigned char *p, size_t n)
{
    char *out = malloc(OB_BASE64_LEN(n) + 1);
    if (!out)
        return NULL;
    size_t len = ob_base64_encode(p, n, out);
    json_t *s = json_stringn(out, len);
    free(out);
    return s;
}

/* A mail.send job shows its Message-ID, each recipient's state, and its
 * attachments by size rather than content. */
static void mail_view(json_t *v, const ob_job *j)
{
    json_t *mid = json_object_get(json_object_get(v, "payload"), "message_id");
    if (json_is_string(mid))
        json_object_set(v, "message_id", mid);
    json_t *atts = json_object_get(json_object_get(v, "payload"), "attachments");
    size_t i;
    json_t *a;
    json_array_foreach(atts, i, a) {
        size_t n = json_string_length(json_object_get(a, "content"));
        const char *c = json_string_value(json_object_get(a, "content"));
        size_t pad = n >= 2 && c[n - 1] == '=' ? (c[n - 2] == '=' ? 2 : 1) : 0;
        json_object_set_new(a, "size", json_integer((json_int_t)(n / 4 * 3 - pad)));
        json_object_del(a, "content");
    }
    ob_mail_status *s;
    if (ob_mail_status_get(j, &s) == 0) {
        json_object_set_new(v, "recipients", api_rcpts_json(s->rcpts, s->n));
        ob_mail_status_free(s);
    }
}

json_t *api_rcpts_json(const ob_mail_rcpt_status *r, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        json_t *e = json_pack("{s:s, s:s, s:s, s:i}", "address", r[i].address, "type", r[i].type,
                              "state", ob_rcpt_state_name(r[i].state), "attempts", r[i].attempts);
        if (e && r[i].state != OB_RCPT_PENDING) {
            char at[32];
            json_object_set_new(e, "code", json_integer(r[i].reply.code));
            if (r[i].reply.enhanced[0])
                json_object_set_new(e, "enhanced", json_string(r[i].reply.enhanced));
            json_object_set_new(e, "reply", json_string(r[i].reply.text));
            json_object_set_new(e, "updated_at",
                                json_string(ob_time_format(r[i].updated_at_ms, at)));
        }
        json_array_append_new(list, e);
    }
    return list;
}

json_t *api_job_json(const ob_job *j, bool with_detail)
{
    char id[OB_ID_STRLEN + 1], url[64];
    ob_id_format(&j->id, id);
    /* a message's own URL, wherever it is shown: one shape for a message */
    snprintf(url, sizeof url, "%s%s", strcmp(j->kind, "mail.send") == 0 ? "/v1/messages/" : "/v1/jobs/",
             id);
    json_t *meta = j->meta ? json_loads(j->meta, 0, NULL) : NULL;
    json_t *cb = json_object_get(meta, "callback_url");
    json_t *result = j->result ? json_loads(j->result, JSON_DECODE_ANY, NULL) : NULL;
    json_t *v = json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:f, s:o, s:o, s:o, s:o, s:b, s:s?, s:s?, s:O?, s:o?,"
        " s:s}",
        "id", id, "kind", j->kind, "queue", j->queue, "priority", j->priority, "state",
        ob_state_name(j->state), "attempt", j->attempt, "max_attempts", j->max_attempts,
        "timeout", (double)j->timeout_ms / 1000.0, "run_at", time_or_null(j->run_at_ms),
        "created_at", time_or_null(j->created_at_ms), "attempted_at",
        time_or_null(j->attempted_at_ms), "finished_at", time_or_null(j->finished_at_ms),
        "cancel_requested", j->cancel_requested, "unique_key", api_unique_key(j->unique_key),
        "rate_key", j->rate_key, "callback_url", cb, "result", result, "status_url", url);
    json_decref(meta);
    char sched[OB_NAME_MAX + 1];
    int64_t tick;
    if (v && ob_job_schedule(j, sched, &tick)) /* made by a schedule: which, and for when */
        json_object_update_new(v, json_pack("{s:s, s:o}", "schedule", sched, "scheduled_for",
                                            time_or_null(tick)));
    if (!v || !with_detail)
        return v;
    if (j->payload) {
        json_t *p = json_loadb((const char *)j->payload, j->payload_len,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (p)
            json_object_set_new(v, "payload", p);
        else
            json_object_set_new(v, "payload_base64", base64(j->payload, j->payload_len));
    }
    json_t *errors = json_array();
    char at[32];
    for (size_t i = 0; i < j->nerrors; i++) {
        const ob_attempt_error *e = &j->errors[i];
        int64_t began = e->started_at_ms > 0 && e->started_at_ms <= e->at_ms ? e->started_at_ms : 0;
        json_array_append_new(errors, json_pack("{s:i, s:s, s:s, s:o, s:o}", "attempt", e->attempt,
                                                "at", ob_time_format(e->at_ms, at), "error",
                                                e->message, "started_at", time_or_null(began),
                                                "duration", began ? json_real((double)(e->at_ms -
                                                began) / 1000.0) : json_null()));
    }
    json_object_set_new(v, "errors", errors);
    if (strcmp(j->kind, "mail.send") == 0)
        mail_view(v, j);
    return v;
}
