/*
 * request.c - the request as a handler sees it, and the answers it gives.
 *
 * Everything here runs on the thread that runs the handler, between the
 * handler's start and its return; nothing is parsed lazily: headers, query
 * arguments, parameters and the body were copied into the arena before the
 * handler was called (server.c), and parsing the body as JSON is an
 * explicit call whose result lives as long as the arena.
 *
 * An answer is stored in the request's `resp` and turned into a
 * libmicrohttpd response by server.c after the handler returns. Bodies and
 * headers are copied: the caller's buffers are its own again at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

/* ---- accessors ---- */

const char *ob_http_method(const ob_http_req *r) { return r->method; }
const char *ob_http_path(const ob_http_req *r) { return r->path; }
const char *ob_http_remote(const ob_http_req *r) { return r->remote; }

const char *ob_http_route_pattern(const ob_http_req *r) { return r->m.r ? r->m.r->pattern : NULL; }

int ob_http_set_max_body(ob_http_req *r, size_t max)
{
    if (!r->q->in_gate || max > ((size_t)1 << 30))
        return r->q->in_gate ? OB_EINVAL : OB_ESTATE;
    r->q->max_body = max;
    return 0;
}

const char *ob_http_param(const ob_http_req *r, const char *name)
{
    for (int i = 0; name && i < r->m.nparams; i++)
        if (strcmp(r->m.name[i], name) == 0)
            return r->params[i];
    return NULL;
}

static const char *find(const char **names, const char **values, int n, const char *name,
                        bool icase)
{
    for (int i = 0; name && i < n; i++)
        if (icase ? strcasecmp(names[i], name) == 0 : strcmp(names[i], name) == 0)
            return values[i];
    return NULL;
}

const char *ob_http_query(const ob_http_req *r, const char *name)
{
    return find(r->arg_names, r->arg_values, r->nargs, name, false);
}

const char *ob_http_header(const ob_http_req *r, const char *name)
{
    return find(r->hdr_names, r->hdr_values, r->nhdrs, name, true);
}

const void *ob_http_body(const ob_http_req *r, size_t *len)
{
    if (len)
        *len = r->q->body_len;
    return r->q->body_len ? r->q->body : NULL;
}

void *ob_http_alloc(ob_http_req *r, size_t n) { return obi_arena_alloc(&r->q->mem, n); }

static void decref(void *v) { json_decref(v); }

json_t *ob_http_body_json(ob_http_req *r)
{
    hreq *q = r->q;
    json_error_t err;
    json_t *v = NULL;
    if (q->body_len)
        v = json_loadb(q->body, q->body_len, JSON_REJECT_DUPLICATES, &err);
    else
        snprintf(err.text, sizeof err.text, "the request has no body");
    if (v && obi_arena_on_poison(&q->mem, decref, v)) {
        json_decref(v);
        ob_http_reply_error(r, 500, "out_of_memory", "out of memory", NULL);
        return NULL;
    }
    if (!v) {
        char msg[256];
        if (q->body_len)
            snprintf(msg, sizeof msg, "the body is not valid JSON: %s (line %d, column %d)",
                     err.text, err.line, err.column);
        else
            snprintf(msg, sizeof msg, "a JSON body is required");
        ob_http_reply_error(r, 400, "invalid_json", msg, NULL);
    }
    return v;
}

/* ---- responses ---- */

int obi_resp_add_header(resp *p, const char *name, const char *value)
{
    if (!obi_http_token(name) || !obi_http_value_ok(value))
        return OB_EINVAL;
    resp_hdr *h = malloc(sizeof *h);
    if (!h)
        return OB_ENOMEM;
    h->name = strdup(name);
    h->value = strdup(value);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        free(h);
        return OB_ENOMEM;
    }
    h->next = p->hdrs;
    p->hdrs = h;
    return 0;
}

int obi_resp_set(resp *p, int status, const char *ctype, const void *body, size_t len)
{
    if (status < 100 || status > 599 || (ctype && !obi_http_value_ok(ctype)) || (!body && len))
        return OB_EINVAL;
    char *b = malloc(len + 1), *c = ctype ? strdup(ctype) : NULL;
    if (!b || (ctype && !c)) {
        free(b);
        free(c);
        return OB_ENOMEM;
    }
    if (len)
        memcpy(b, body, len);
    b[len] = '\0';
    free(p->body);
    free(p->ctype);
    p->body = b;
    p->len = len;
    p->ctype = c;
    p->status = status;
    return 0;
}

int obi_resp_set_json(resp *p, int status, const json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!text)
        return v ? OB_ENOMEM : OB_EINVAL;
    int rc = obi_resp_set(p, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

int obi_resp_set_error(resp *p, int status, const char *code, const char *message, const char *field)
{
    json_t *e = json_pack("{s:{s:s, s:s, s:s?}}", "error", "code", code ? code : "error",
                          "message", message ? message : "", "field", field);
    if (!e) /* not UTF-8, say: still an honest error */
        e = json_pack("{s:{s:s, s:s, s:n}}", "error", "code", "error", "message",
                      "(message not valid UTF-8)", "field");
    int rc = e ? obi_resp_set_json(p, status, e) : OB_ENOMEM;
    json_decref(e);
    return rc;
}

void obi_resp_clear(resp *p)
{
    while (p->hdrs) {
        resp_hdr *h = p->hdrs;
        p->hdrs = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
    free(p->body);
    free(p->ctype);
    memset(p, 0, sizeof *p);
}

/* ---- answering now ---- */

static int answer_check(ob_http_req *r)
{
    hreq *q = r->q;
    return q->answered || q->later ? OB_ESTATE : 0;
}

int ob_http_set_header(ob_http_req *r, const char *name, const char *value)
{
    int rc = answer_check(r);
    return rc ? rc : obi_resp_add_header(&r->q->r, name, value);
}

static int answered(ob_http_req *r, int rc)
{
    if (!rc)
        r->q->answered = true;
    return rc;
}

int ob_http_reply(ob_http_req *r, int status, const char *content_type, const void *body,
                  size_t len)
{
    int rc = answer_check(r);
    return rc ? rc : answered(r, obi_resp_set(&r->q->r, status, content_type, body, len));
}

int ob_http_reply_json(ob_http_req *r, int status, const json_t *v)
{
    int rc = answer_check(r);
    return rc ? rc : answered(r, obi_resp_set_json(&r->q->r, status, v));
}

int ob_http_reply_error(ob_http_req *r, int status, const char *code, const char *message,
                        const char *field)
{
    int rc = answer_check(r);
    return rc ? rc : answered(r, obi_resp_set_error(&r->q->r, status, code, message, field));
}

int ob_http_suspend(ob_http_req *r, ob_http_later **out)
{
    int rc = r->q->in_gate ? OB_ESTATE : answer_check(r);
    if (rc)
        return rc;
    return obi_later_new(r->q, out);
}
