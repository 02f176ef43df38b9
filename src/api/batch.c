/*
 * batch.c - many jobs in one request: POST /v1/jobs/batch and
 * POST /v1/messages/batch. Each item is decoded by its endpoint and stored
 * on its own (a bad item does not stop the others); the answer, 200 with
 * one result per item in order, goes out once every accepted item is
 * durable. A result is what the single POST would have answered — {id,
 * state, status_url, ...} — or {"error": {status, code, message, field}}.
 *
 * Items are enqueued with ob_enqueue_async, so all of a batch's items
 * usually share one commit and one fsync.
 *
 * Invariant B1: the batch is answered exactly once, by whoever drops
 * `left` to zero; the handler holds one count until it has issued every
 * item, so an early engine answer cannot reply before the last item went
 * in.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

typedef struct api_batch {
    ob_http_later *later;
    const api_dialect *dialect; /* NULL: outbox's answers */
    pthread_mutex_t mu;
    json_t *results;  /* one per item, in order */
    atomic_int left;  /* B1 */
} api_batch;

typedef struct slot {
    api_batch *b;
    size_t i;
    const char *view;
    json_t *extra; /* owned, or NULL */
    bool scheduled;
} slot;

static void set_result(api_batch *b, size_t i, json_t *v)
{
    pthread_mutex_lock(&b->mu);
    json_array_set_new(b->results, i, v ? v : json_null());
    pthread_mutex_unlock(&b->mu);
}

static void batch_end(api_batch *b)
{
    int left = atomic_fetch_sub(&b->left, 1);
    assert(left >= 1); /* B1: never answered twice */
    if (left != 1)
        return;
    json_t *v = b->dialect ? b->dialect->batch(b->results) : json_pack("{s:o}", "results", b->results);
    ob_http_later_reply_json(b->later, 200, v);
    json_decref(v);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void refuse(api_batch *b, size_t i, const api_error *e)
{
    if (b->dialect) {
        set_result(b, i, b->dialect->refused(e));
        return;
    }
    set_result(b, i, json_pack("{s:{s:i, s:s, s:s, s:s?}}", "error", "status", e->status, "code",
                               e->code, "message", e->p.message, "field",
                               e->p.field[0] ? e->p.field : NULL));
}

/* Refused by the engine: its error, and why when the check said. */
static void refuse_rc(api_batch *b, size_t i, int rc, const ob_problem *why)
{
    api_error e;
    const char *code;
    int status = api_status(rc, &code);
    api_refuse(&e, status, code, why->field, "%s", why->message[0] ? why->message : ob_strerror(rc));
    refuse(b, i, &e);
}

/* The engine's answer for one item (commit thread). */
static void enqueued(void *arg, int rc, const ob_id *id, bool existed)
{
    slot *s = arg;
    if (rc) {
        refuse_rc(s->b, s->i, rc, NULL);
    } else {
        char ids[OB_ID_STRLEN + 1], url[64];
        ob_id_format(id, ids);
        if (s->b->dialect) {
            set_result(s->b, s->i, s->b->dialect->accepted(ids, existed, s->extra));
            batch_end(s->b);
            json_decref(s->extra);
            free(s);
            return;
        }
        snprintf(url, sizeof url, "%s%s", s->view, ids);
        const char *state = existed ? "existing" : s->scheduled ? "scheduled" : "available";
        json_t *v = json_pack("{s:s, s:s, s:s}", "id", ids, "state", state, "status_url", url);
        if (v && s->extra)
            json_object_update(v, s->extra);
        set_result(s->b, s->i, v);
    }
    batch_end(s->b);
    json_decref(s->extra);
    free(s);
}

static void batch_enqueue(api *a, api_batch *b, size_t i, api_post *p)
{
    char key[OB_UNIQUE_KEY_MAX + 16];
    if (p->unique_key) {
        if (snprintf(key, sizeof key, "key:%s", p->unique_key) >= (int)sizeof key) {
            api_error e;
            api_refuse(&e, 413, "too_large", "unique_key", "unique_key is too long");
            refuse(b, i, &e);
            return;
        }
        p->j.unique_key = key;
    }
    char *meta = api_make_meta(p->callback_url, NULL);
    p->j.meta = meta;
    ob_problem why = {"", ""};
    slot *s = NULL;
    int rc = ob_new_job_check(a->o.engine, &p->j, &why);
    if (!rc && !(s = calloc(1, sizeof *s)))
        rc = OB_ENOMEM;
    if (!rc) {
        *s = (slot){.b = b, .i = i, .view = p->view, .extra = p->extra,
                    .scheduled = p->j.run_at_ms > ob_now_ms()};
        p->extra = NULL;
        atomic_fetch_add(&b->left, 1);
        if ((rc = ob_enqueue_async(a->o.engine, &p->j, enqueued, s))) {
            atomic_fetch_sub(&b->left, 1);
            p->extra = s->extra;
            free(s);
        }
    }
    if (rc)
        refuse_rc(b, i, rc, &why);
    free(meta);
}

static const json_t *batch_list(api *a, ob_http_req *r, const json_t *body, const char *name,
                                const api_dialect *d)
{
    api_error e;
    int max = d && d->max_batch ? d->max_batch : a->o.max_batch;
    const json_t *list = json_is_array(body) ? body : json_object_get(body, name);
    size_t n = json_array_size(list);
    if (ob_http_header(r, "Idempotency-Key"))
        api_refuse(&e, 400, "invalid", "Idempotency-Key",
                   d ? "outbox takes no Idempotency-Key on a batch: send the emails one by one "
                       "with a key each"
                     : "a batch takes no Idempotency-Key: give items a unique_key, or send them "
                       "one by one");
    else if (!json_is_array(list) || (list != body && json_object_size(body) != 1))
        api_refuse(&e, 422, "invalid", name, "a batch is {\"%s\": [...]} (or the array)", name);
    else if (n == 0 || n > (size_t)max)
        api_refuse(&e, n ? 413 : 422, n ? "too_large" : "invalid", name, "from 1 to %d items", max);
    else
        return list;
    api_reply_refused(r, &e, d);
    return NULL;
}

static api_batch *batch_begin(ob_http_req *r, size_t n)
{
    api_batch *b = calloc(1, sizeof *b);
    json_t *results = json_array();
    for (size_t i = 0; results && i < n; i++)
        json_array_append_new(results, json_null());
    int rc = b && results ? ob_http_suspend(r, &b->later) : OB_ENOMEM;
    if (rc) {
        free(b);
        json_decref(results);
        api_reply_rc(r, rc, NULL);
        return NULL;
    }
    b->results = results;
    pthread_mutex_init(&b->mu, NULL);
    atomic_init(&b->left, 1); /* the handler's hold (B1) */
    return b;
}

void api_post_batch(api *a, ob_http_req *r, const char *name, api_decode_fn decode)
{
    api_post_batch_in(a, r, name, decode, NULL);
}

void api_post_batch_in(api *a, ob_http_req *r, const char *name, api_decode_fn decode,
                       const api_dialect *d)
{
    json_t *body = ob_http_body_json(r);
    const json_t *list = body ? batch_list(a, r, body, name, d) : NULL;
    api_batch *b = list ? batch_begin(r, json_array_size(list)) : NULL;
    if (!b)
        return;
    b->dialect = d;
    for (size_t i = 0; i < json_array_size(list); i++) {
        api_item it;
        api_error e;
        if (decode(a, json_array_get(list, i), &it, &e))
            refuse(b, i, &e);
        else
            batch_enqueue(a, b, i, &it.p);
        api_item_clear(&it);
    }
    batch_end(b);
}
