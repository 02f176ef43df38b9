/*
 * suppressions_api.c - /v1/suppressions: the mail suppression list
 * (ob_suppression_* in outbox/mailjob.h) over HTTP.
 *
 *   GET    /v1/suppressions            {"suppressions": [...], "next_cursor"}
 *          ?address=PART               entries whose address contains PART
 *          &reason=hard_bounce|spam_complaint|unsubscribe|manual
 *          &limit=1..1000 (100)  &cursor=a next_cursor
 *   GET    /v1/suppressions/{address}  one entry, or 404
 *   PUT    /v1/suppressions/{address}  {"reason"?: (manual), "note"?}
 *                                      → 201 (added) or 200 (updated)
 *   DELETE /v1/suppressions/{address}  204: reactivated (mail goes to it
 *                                      again), or 404
 *
 * An entry: {"address" (normal form), "reason", "code", "enhanced",
 * "reply" (a hard bounce: the relay's reply), "message_id" (the job that
 * bounced), "note", "created_at", "updated_at"}; members without a value
 * are left out. An address in a path or filter may be in any form
 * (domain in any case, IDN in Unicode): it is compared in the normal form.
 * Each change is an event on /v1/events (events.c).
 *
 * The cursor is the last address of the page, base64: opaque to clients,
 * exact for the next page (keys are unique and listed in key order).
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/util.h"

json_t *api_suppression_json(const ob_suppression *s)
{
    char at[32], up[32], id[OB_ID_STRLEN + 1];
    json_t *v = json_pack("{s:s, s:s, s:s, s:s}", "address", s->address, "reason",
                          ob_suppression_reason_name(s->reason), "created_at",
                          ob_time_format(s->created_at_ms, at), "updated_at",
                          ob_time_format(s->updated_at_ms, up));
    if (v && (s->reply.code || s->reply.text[0])) {
        json_object_set_new(v, "code", json_integer(s->reply.code));
        if (s->reply.enhanced[0])
            json_object_set_new(v, "enhanced", json_string(s->reply.enhanced));
        json_object_set_new(v, "reply", json_string(s->reply.text));
    }
    if (v && s->has_job)
        json_object_set_new(v, "message_id", json_string(ob_id_format(&s->job, id)));
    if (v && s->note[0])
        json_object_set_new(v, "note", json_string(s->note));
    return v;
}

/* Answer an engine error, naming a missing entry as one and a bad address
 * with what is wrong with it. */
static void refuse(ob_http_req *r, int rc, const ob_problem *p)
{
    if (rc == OB_ENOTFOUND)
        ob_http_reply_error(r, 404, "not_found", "this address is not suppressed", "address");
    else if (rc == OB_EINVAL && p->field[0])
        ob_http_reply_error(r, 422, "invalid", p->message, p->field);
    else
        api_reply_rc(r, rc, NULL);
}

/* The listing's filter from the query into *f (cursor decoded into
 * after[]); false once it answered 422. */
static bool list_filter(ob_http_req *r, ob_suppression_filter *f, char *after, size_t cap)
{
    const char *v;
    if ((v = ob_http_query(r, "address")) && v[0])
        f->contains = v;
    if ((v = ob_http_query(r, "reason")) && ob_suppression_reason_parse(v, &f->reason)) {
        ob_http_reply_error(r, 422, "invalid",
                            "one of hard_bounce, spam_complaint, unsubscribe, manual", "reason");
        return false;
    }
    if ((v = ob_http_query(r, "limit"))) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || end == v || n < 1 || n > OB_RECORD_LIST_MAX) {
            ob_http_reply_error(r, 422, "invalid", "1 to 1000", "limit");
            return false;
        }
        f->limit = (int)n;
    }
    if ((v = ob_http_query(r, "cursor")) && v[0]) {
        size_t n = strlen(v), len = 0;
        if (n > (cap - 1) / 3 * 4 || ob_base64_decode(v, n, (unsigned char *)after, &len) ||
            len == 0 || len >= cap || memchr(after, 0, len)) {
            ob_http_reply_error(r, 422, "invalid", "not a cursor this API gave", "cursor");
            return false;
        }
        after[len] = '\0';
        f->after = after;
    }
    return true;
}

static void list_suppressions(ob_http_req *r, void *arg)
{
    api *a = arg;
    ob_suppression_filter f = {.limit = 100};
    char after[OB_RECORD_KEY_MAX + 4];
    if (!list_filter(r, &f, after, sizeof after))
        return;
    ob_suppression *v;
    size_t n;
    int rc = ob_suppression_list(a->o.engine, &f, &v, &n);
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, api_suppression_json(&v[i]));
    char cursor[(OB_MAIL_ADDR_MAX + 2) / 3 * 4 + 1] = "";
    if (n == (size_t)f.limit) /* a full page: there may be more */
        cursor[ob_base64_encode(v[n - 1].address, strlen(v[n - 1].address), cursor)] = '\0';
    free(v);
    json_t *out = json_pack("{s:o, s:s?}", "suppressions", arr, "next_cursor",
                            cursor[0] ? cursor : NULL);
    ob_http_reply_json(r, 200, out);
    json_decref(out);
}

static void reply_entry(ob_http_req *r, api *a, const char *address, int status)
{
    ob_suppression s;
    ob_problem p = {"", ""};
    int rc = ob_suppression_get(a->o.engine, address, &s, &p);
    if (rc) {
        refuse(r, rc, &p);
        return;
    }
    json_t *v = api_suppression_json(&s);
    ob_http_reply_json(r, status, v);
    json_decref(v);
}

static void get_suppression(ob_http_req *r, void *arg)
{
    reply_entry(r, arg, ob_http_param(r, "address"), 200);
}

/* Text without control characters (jansson's strings are UTF-8). */
static bool text_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* The PUT body into *s; false once it answered 422. */
static bool decode_put(ob_http_req *r, const json_t *body, ob_suppression *s)
{
    const char *key;
    json_t *v;
    if (!json_is_object(body)) {
        ob_http_reply_error(r, 422, "invalid", "the body must be a JSON object", NULL);
        return false;
    }
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "reason") && strcmp(key, "note")) {
            ob_http_reply_error(r, 422, "unknown_field", "unknown member", key);
            return false;
        }
    }
    s->reason = OB_SUPPRESS_MANUAL;
    if ((v = json_object_get(body, "reason")) &&
        ob_suppression_reason_parse(json_string_value(v), &s->reason)) {
        ob_http_reply_error(r, 422, "invalid",
                            "one of hard_bounce, spam_complaint, unsubscribe, manual", "reason");
        return false;
    }
    if ((v = json_object_get(body, "note")) && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) > OB_SUPPRESSION_NOTE_MAX ||
            !text_ok(json_string_value(v))) {
            ob_http_reply_error(r, 422, "invalid", "text of at most 500 bytes, without control "
                                                   "characters", "note");
            return false;
        }
        snprintf(s->note, sizeof s->note, "%s", json_string_value(v));
    }
    return true;
}

static void put_suppression(ob_http_req *r, void *arg)
{
    api *a = arg;
    const char *address = ob_http_param(r, "address");
    size_t len;
    ob_suppression s = {0};
    json_t *body = NULL;
    if (ob_http_body(r, &len) && len && !(body = ob_http_body_json(r)))
        return; /* answered: not JSON */
    if (body && !decode_put(r, body, &s))
        return;
    if (!body)
        s.reason = OB_SUPPRESS_MANUAL;
    if (strlen(address) > OB_MAIL_ADDR_MAX) {
        ob_http_reply_error(r, 422, "invalid", "an address is at most 254 bytes", "address");
        return;
    }
    snprintf(s.address, sizeof s.address, "%s", address);
    bool created = false;
    ob_problem p = {"", ""};
    int rc = ob_suppression_add(a->o.engine, &s, &created, &p);
    if (rc)
        refuse(r, rc, &p);
    else
        reply_entry(r, a, address, created ? 201 : 200);
}

static void delete_suppression(ob_http_req *r, void *arg)
{
    api *a = arg;
    ob_problem p = {"", ""};
    int rc = ob_suppression_remove(a->o.engine, ob_http_param(r, "address"), &p);
    if (rc)
        refuse(r, rc, &p);
    else
        ob_http_reply(r, 204, NULL, NULL, 0);
}

int api_suppressions_routes(api *a, ob_http_server *srv)
{
    int rc = api_route(a, srv, "GET", "/v1/suppressions", list_suppressions, 0);
    if (!rc)
        rc = api_route(a, srv, "GET", "/v1/suppressions/{address}", get_suppression, 0);
    if (!rc)
        rc = api_route(a, srv, "PUT", "/v1/suppressions/{address}", put_suppression,
                       OB_HTTP_JSON);
    if (!rc)
        rc = api_route(a, srv, "DELETE", "/v1/suppressions/{address}", delete_suppression, 0);
    return rc;
}
