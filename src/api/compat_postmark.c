/*
 * compat_postmark.c - Postmark's email API, so code written against it
 * works with outboxd by changing the host and the token:
 *
 *   POST /email         one message: 200 {To, SubmittedAt, MessageID,
 *                       ErrorCode: 0, Message: "OK"} once it is durable
 *   POST /email/batch   up to 500 (a JSON array): 200 with one such result
 *                       a message, or {ErrorCode, Message} for a refused one
 *
 * Authentication: the X-Postmark-Server-Token header carries one of
 * outboxd's bearer tokens (api.c's gate checks it here instead of
 * Authorization). Each message becomes the same mail.send job as
 * POST /v1/messages (api_message_item: same validation, limits, signing,
 * durability); MessageID is the job's id, so /v1/messages/{MessageID}
 * shows each recipient's outcome.
 *
 * Fields, mapped to /v1/messages' members: From -> from; To, Cc, Bcc,
 * ReplyTo (comma-separated lists, "Name <a@b>" allowed, quotes respected)
 * -> to, cc, bcc, reply_to; Subject; TextBody -> text; HtmlBody -> html;
 * Headers [{Name, Value}] -> headers; Attachments [{Name, Content,
 * ContentType}] -> attachments; Tag -> tags; Metadata -> metadata;
 * MessageStream "outbound" (the only stream outbox has). What outbox cannot
 * honour is refused, never dropped: TrackOpens true, TrackLinks other than
 * "None", inline attachments (ContentID), other message streams, any
 * unknown field (templates are another endpoint).
 *
 * Errors are Postmark's shape, {ErrorCode, Message}: 300 an invalid
 * request (HTTP 422), 402 invalid JSON, 10 a bad or missing token (401),
 * 406 inactive recipients (HTTP 422): every recipient of the message is
 * on the suppression list ("Found inactive addresses: a, b." as Postmark
 * words it, which its SDKs parse). A message with some recipients left is
 * taken, and the suppressed ones are skipped at delivery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "outbox/util.h"

#define POSTMARK_BATCH_MAX 500

/* ---- answers ---- */

static json_t *submitted(const char *id, const char *to)
{
    char at[32];
    ob_time_format(ob_now_ms(), at);
    return json_pack("{s:s, s:s, s:s, s:i, s:s}", "To", to ? to : "", "SubmittedAt", at,
                     "MessageID", id, "ErrorCode", 0, "Message", "OK");
}

static json_t *accepted(const char *id, bool existed, const json_t *extra)
{
    (void)existed;
    return submitted(id, json_string_value(json_object_get(extra, "postmark_to")));
}

/* A member of /v1/messages named as Postmark names it: "to[2]" is "To[2]". */
static void postmark_field(const char *f, char *out, size_t n)
{
    static const char *const names[][2] = {
        {"from", "From"},       {"to", "To"},         {"cc", "Cc"},
        {"bcc", "Bcc"},         {"reply_to", "ReplyTo"}, {"subject", "Subject"},
        {"text", "TextBody"},   {"html", "HtmlBody"}, {"headers", "Headers"},
        {"attachments", "Attachments"}, {"tags", "Tag"}, {"metadata", "Metadata"}};
    size_t len = strcspn(f, "[.");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i][0]) == len && !strncmp(f, names[i][0], len)) {
            snprintf(out, n, "%s%s", names[i][1], f + len);
            return;
        }
    snprintf(out, n, "%s", f);
}

static json_t *refused(const api_error *e)
{
    if (e->code && strcmp(e->code, "inactive_recipient") == 0)
        return json_pack("{s:i, s:s}", "ErrorCode", 406, "Message", e->p.message);
    int code = e->status == 401 ? 10 : e->status >= 500 ? 500 : 300;
    char msg[700], field[160];
    postmark_field(e->p.field, field, sizeof field);
    if (e->p.field[0])
        snprintf(msg, sizeof msg, "Invalid email request: %s: %s", field, e->p.message);
    else
        snprintf(msg, sizeof msg, "%s%s", code == 300 ? "Invalid email request: " : "",
                 e->p.message);
    return json_pack("{s:i, s:s}", "ErrorCode", code, "Message", msg);
}

static json_t *batch(json_t *results) { return results; }

static const api_dialect postmark = {.accepted_status = 200, .accepted = accepted,
                                     .refused = refused, .batch = batch,
                                     .max_batch = POSTMARK_BATCH_MAX};

/* ---- fields ---- */

/* A comma-separated address list into a JSON array of strings: commas
 * inside quotes or angle brackets do not split. NULL when not a string. */
static json_t *address_list(const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s)
        return NULL;
    json_t *out = json_array();
    size_t n = strlen(s), start = 0;
    bool quoted = false;
    int angle = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? s[i] : ',';
        if (c == '"' && (i == 0 || s[i - 1] != '\\'))
            quoted = !quoted;
        else if (!quoted && c == '<')
            angle++;
        else if (!quoted && c == '>' && angle)
            angle--;
        if (c != ',' || quoted || angle)
            continue;
        size_t a = start, b = i;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        if (b > a)
            json_array_append_new(out, json_stringn(s + a, b - a));
        start = i + 1;
    }
    return out;
}

/* Headers [{Name, Value}] into {name: value}. */
static int headers(const json_t *v, json_t *msg, api_error *e)
{
    json_t *h;
    if (api_pairs(v, "Name", "Value", false, "Headers", &h, e))
        return -1;
    json_object_set_new(msg, "headers", h);
    return 0;
}

/* Attachments [{Name, Content, ContentType}] into ours. */
static int attachments(const json_t *v, json_t *msg, api_error *e)
{
    if (!json_is_array(v))
        return api_refuse(e, 422, "invalid", "Attachments", "an array of {Name, Content, ContentType}");
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        const char *cid = json_string_value(json_object_get(it, "ContentID"));
        if (cid && *cid) {
            json_decref(out);
            return api_refuse(e, 422, "invalid", "Attachments",
                              "item %zu: ContentID (inline attachments) is not supported by outbox", i);
        }
        json_t *name = json_object_get(it, "Name"), *content = json_object_get(it, "Content"),
               *type = json_object_get(it, "ContentType");
        if (!json_is_object(it) || !name || !content) {
            json_decref(out);
            return api_refuse(e, 422, "invalid", "Attachments", "item %zu: Name and Content "
                              "(base64) are required", i);
        }
        json_t *a = json_pack("{s:O, s:O}", "filename", name, "content", content);
        if (type)
            json_object_set(a, "content_type", type);
        json_array_append_new(out, a);
    }
    json_object_set_new(msg, "attachments", out);
    return 0;
}

/* Features outbox cannot honour: refused by name. */
static int unsupported(const json_t *body, api_error *e)
{
    json_t *opens = json_object_get(body, "TrackOpens"), *links = json_object_get(body, "TrackLinks"),
           *stream = json_object_get(body, "MessageStream");
    if (opens && !json_is_false(opens) && !json_is_null(opens))
        return api_refuse(e, 422, "invalid", "TrackOpens", "outbox does not track opens");
    if (links && !json_is_null(links) &&
        (!json_is_string(links) || strcasecmp(json_string_value(links), "None") != 0))
        return api_refuse(e, 422, "invalid", "TrackLinks", "outbox does not track links: None only");
    if (stream && !json_is_null(stream) &&
        (!json_is_string(stream) || strcmp(json_string_value(stream), "outbound") != 0))
        return api_refuse(e, 422, "invalid", "MessageStream",
                          "outbox has one stream, \"outbound\"");
    return 0;
}

/* Postmark's 406: every recipient of the message is suppressed (a message
 * with some left is taken; the suppressed ones are skipped). 0, or -1 with
 * *e (the item cleared). */
static int inactive(api *a, api_item *it, api_error *e)
{
    json_t *rcpts = json_object_get(it->p.extra, "recipients"), *x;
    size_t i, n = json_array_size(rcpts), found = 0;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    ob_record *rec = calloc(n ? n : 1, sizeof *rec);
    char list[600] = "";
    json_array_foreach(rcpts, i, x)
        if (keys && !(keys[i] = json_string_value(json_object_get(x, "address"))))
            n = 0;
    /* the list unreadable: taken, and delivery looks again */
    if (n && keys && rec && ob_record_get_many(a->o.engine, OB_SUPPRESSIONS, keys, n, rec) == 0)
        for (i = 0; i < n; i++) {
            size_t w = strlen(list);
            if (rec[i].value)
                snprintf(list + w, sizeof list - w, "%s%s", found++ ? ", " : "", keys[i]);
            ob_record_clear(&rec[i]);
        }
    free(keys);
    free(rec);
    if (!n || found < n) /* one to send to */
        return 0;
    api_item_clear(it);
    return api_refuse(e, 422, "inactive_recipient", NULL,
                      "You tried to send to recipient(s) that have been marked as inactive. "
                      "Found inactive addresses: %s. Inactive recipients are ones that have "
                      "generated a hard bounce, a spam complaint, or a manual suppression.",
                      list);
}

/* One Postmark message into the job (api_decode_fn). */
static int decode_tree(api *a, const json_t *body, api_item *it, api_error *e)
{
    static const char *const known[] = {"From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
                                        "TextBody", "HtmlBody", "Headers", "Attachments", "Tag",
                                        "Metadata", "MessageStream", "TrackOpens", "TrackLinks",
                                        NULL};
    *it = (api_item){0};
    if (!json_is_object(body))
        return api_refuse(e, 422, "invalid", NULL, "a message is a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(key, known[i]);
        if (!ok)
            return api_refuse(e, 422, "invalid", key, "not a field outbox takes (templates, "
                              "tracking and inline images are not supported)");
    }
    if (unsupported(body, e))
        return -1;
    json_t *msg = json_object();
    static const char *const map[][2] = {{"From", "from"}, {"Subject", "subject"},
                                         {"TextBody", "text"}, {"HtmlBody", "html"},
                                         {"Metadata", "metadata"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if ((v = json_object_get(body, map[i][0])) && !json_is_null(v))
            json_object_set(msg, map[i][1], v);
    if (!json_object_get(msg, "subject"))
        json_object_set_new(msg, "subject", json_string(""));
    static const char *const lists[][2] = {{"To", "to"}, {"Cc", "cc"}, {"Bcc", "bcc"},
                                           {"ReplyTo", "reply_to"}};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        if (!(v = json_object_get(body, lists[i][0])) || json_is_null(v))
            continue;
        json_t *l = address_list(v);
        if (!l) {
            json_decref(msg);
            return api_refuse(e, 422, "invalid", lists[i][0], "a comma-separated list of addresses");
        }
        json_object_set_new(msg, lists[i][1], l);
    }
    if ((v = json_object_get(body, "Tag")) && !json_is_null(v))
        json_object_set_new(msg, "tags", json_pack("[O]", v));
    if (((v = json_object_get(body, "Headers")) && !json_is_null(v) && headers(v, msg, e)) ||
        ((v = json_object_get(body, "Attachments")) && !json_is_null(v) && attachments(v, msg, e))) {
        json_decref(msg);
        return -1;
    }
    if (api_message_item(a, msg, 0, NULL, it, e) || inactive(a, it, e))
        return -1;
    const char *to = json_string_value(json_object_get(body, "To"));
    json_object_set_new(it->p.extra, "postmark_to", json_string(to ? to : ""));
    return 0;
}

static int decode(api *a, const jspan *body, api_item *it, api_error *e)
{
    return api_decode_tree(a, body, it, e, decode_tree);
}

static void post_email(ob_http_req *r, void *arg) { api_post_one_in(arg, r, decode, &postmark); }

static void post_batch(ob_http_req *r, void *arg)
{
    api_post_batch_in(arg, r, "Messages", decode, &postmark);
}

void api_postmark_unauthorized(ob_http_req *r, bool missing)
{
    json_t *v = json_pack("{s:i, s:s}", "ErrorCode", 10, "Message",
                          missing ? "No Account or Server API tokens were supplied in the HTTP "
                                    "headers. Please add a header for X-Postmark-Server-Token."
                                  : "Request does not contain a valid Server token.");
    ob_http_reply_json(r, 401, v);
    json_decref(v);
}

int api_postmark_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "POST", "/email", post_email, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "POST", "/email/batch", post_batch, OB_HTTP_JSON)))
        return rc;
    return 0;
}
