/*
 * later.c - suspended responses: a handle that any thread may answer once.
 *
 * State machine (one function changes it: `settle`, under l->mu):
 *
 *   SUSPENDED --holder answers-------------> ANSWERED  (connection resumed,
 *       |                                               answer sent)
 *       +------client left / timed out-----> GONE      (resumed to close or
 *       |                                               answer 504)
 *       +------server stopping-------------> SHUTDOWN  (resumed with 503)
 *
 * Two references: the server's (dropped when the response is done, by
 * obi_later_detach) and the holder's (dropped by the answer or ob_http_later_
 * drop). Whoever drops the last frees it, so the holder may answer after
 * the request, the connection or the whole server are gone: it is told so
 * (OB_EGONE, OB_ESHUTDOWN) and nothing else happens.
 *
 * `parked` says the connection is really suspended in libmicrohttpd: an
 * answer that comes before the handler has returned is simply kept, and
 * server.c sends it as soon as the handler returns, without suspending.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int obi_later_new(hreq *q, ob_http_later **out)
{
    ob_http_server *s = q->s;
    if (atomic_fetch_add(&s->nsuspended, 1) >= s->o.max_suspended) {
        atomic_fetch_sub(&s->nsuspended, 1);
        return OB_EBUSY;
    }
    ob_http_later *l = calloc(1, sizeof *l);
    if (!l) {
        atomic_fetch_sub(&s->nsuspended, 1);
        return OB_ENOMEM;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->refs = 2;
    l->state = LATER_SUSPENDED;
    l->q = q;
    q->later = l;
    *out = l;
    return 0;
}

void obi_later_unref(ob_http_later *l)
{
    pthread_mutex_lock(&l->mu);
    int left = --l->refs;
    pthread_mutex_unlock(&l->mu);
    if (left)
        return;
    obi_resp_clear(&l->r);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void obi_later_detach(ob_http_later *l)
{
    pthread_mutex_lock(&l->mu);
    ob_http_server *s = l->q ? l->q->s : NULL;
    l->q = NULL;
    if (l->state == LATER_SUSPENDED)
        l->state = LATER_GONE;
    pthread_mutex_unlock(&l->mu);
    if (s)
        atomic_fetch_sub(&s->nsuspended, 1);
    obi_later_unref(l);
}

/* Move a SUSPENDED handle to `to`, resuming its connection if it is
 * parked. Called with l->mu held. false if it had already settled. */
static bool settle(ob_http_later *l, later_state to)
{
    if (l->state != LATER_SUSPENDED)
        return false;
    l->state = to;
    if (l->parked && l->q) {
        l->parked = false;
        obi_server_resume(l->q);
    }
    return true;
}

bool obi_later_cut(ob_http_later *l, later_state state, int status, const char *code,
               const char *msg)
{
    pthread_mutex_lock(&l->mu);
    bool cut = l->state == LATER_SUSPENDED;
    if (cut) {
        obi_resp_clear(&l->r);
        if (status)
            obi_resp_set_error(&l->r, status, code, msg, NULL);
        settle(l, state);
    }
    pthread_mutex_unlock(&l->mu);
    return cut;
}

/* The holder's answer: `fill` writes it into l->r under the lock. */
static int finish(ob_http_later *l, int (*fill)(resp *, const void *), const void *arg)
{
    pthread_mutex_lock(&l->mu);
    int rc;
    switch (l->state) {
    case LATER_SUSPENDED:
        rc = fill(&l->r, arg);
        if (rc) /* cannot build it (bad status, OOM): the client still gets an answer */
            obi_resp_set_error(&l->r, 500, "internal", "the response could not be built", NULL);
        settle(l, LATER_ANSWERED);
        break;
    case LATER_SHUTDOWN:
        rc = OB_ESHUTDOWN;
        break;
    case LATER_GONE:
        rc = OB_EGONE;
        break;
    default:
        rc = OB_ESTATE;
        break;
    }
    pthread_mutex_unlock(&l->mu);
    obi_later_unref(l);
    return rc;
}

int ob_http_later_set_header(ob_http_later *l, const char *name, const char *value)
{
    pthread_mutex_lock(&l->mu);
    int rc = l->state == LATER_SUSPENDED ? obi_resp_add_header(&l->r, name, value)
             : l->state == LATER_SHUTDOWN ? OB_ESHUTDOWN
                                          : OB_EGONE;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

typedef struct plain {
    int status;
    const char *ctype;
    const void *body;
    size_t len;
} plain;

static int fill_plain(resp *r, const void *arg)
{
    const plain *p = arg;
    return obi_resp_set(r, p->status, p->ctype, p->body, p->len);
}

int ob_http_later_reply(ob_http_later *l, int status, const char *content_type,
                        const void *body, size_t len)
{
    plain p = {status, content_type, body, len};
    return finish(l, fill_plain, &p);
}

typedef struct json_arg {
    int status;
    const json_t *v;
} json_arg;

static int fill_json(resp *r, const void *arg)
{
    const json_arg *j = arg;
    return obi_resp_set_json(r, j->status, j->v);
}

int ob_http_later_reply_json(ob_http_later *l, int status, const json_t *v)
{
    json_arg j = {status, v};
    return finish(l, fill_json, &j);
}

typedef struct err_arg {
    int status;
    const char *code, *message, *field;
} err_arg;

static int fill_error(resp *r, const void *arg)
{
    const err_arg *e = arg;
    return obi_resp_set_error(r, e->status, e->code, e->message, e->field);
}

int ob_http_later_reply_error(ob_http_later *l, int status, const char *code,
                              const char *message, const char *field)
{
    err_arg e = {status, code, message, field};
    return finish(l, fill_error, &e);
}

void ob_http_later_drop(ob_http_later *l)
{
    err_arg e = {500, "internal", "the server gave up on this request", NULL};
    finish(l, fill_error, &e);
}
