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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

typedef struct api_batch {
    ob_http_later *later;
    const api_dialect *dialect; /* NULL: outbox's answers */
    size_t n;
    char **results;   /* one per item, in order: its answer as JSON text, owned */
    atomic_int left;  /* B1 */
} api_batch;

typedef struct slot {
    api_batch *b;
    size_t i;
    const char *view;
    json_t *extra; /* owned, or NULL */
    bool scheduled;
} slot;

/* Item i's answer (taken; NULL: out of memory, answered as null). Each
 * slot is written once, by the thread that answers its item, before that
 * thread drops `left`: the last drop sees every slot (B1). */
static void set_result(api_batch *b, size_t i, char *text)
{
    assert(!b->results[i]);
    b->results[i] = text;
}

static void set_json(api_batch *b, size_t i, json_t *v)
{
    set_result(b, i, v ? json_dumps(v, JSON_COMPACT) : NULL);
    json_decref(v);
}

/* {"results": [...]}, printed from the items' texts. */
static char *results_text(api_batch *b, size_t *len)
{
    static const char open[] = "{\"results\":[", close[] = "]}";
    size_t n = sizeof open + sizeof close;
    for (size_t i = 0; i < b->n; i++)
        n += (b->results[i] ? strlen(b->results[i]) : 4) + 1;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    o = stpcpy(o, open);
    for (size_t i = 0; i < b->n; i++) {
        if (i)
            *o++ = ',';
        o = stpcpy(o, b->results[i] ? b->results[i] : "null");
    }
    o = stpcpy(o, close);
    *len = (size_t)(o - out);
    return out;
}

/* The dialect's answer around the items' answers, read back as trees (a
 * compatible endpoint's batch is small next to its messages' work). */
static void reply_dialect(api_batch *b)
{
    json_t *results = json_array();
    for (size_t i = 0; results && i < b->n; i++)
        json_array_append_new(results, b->results[i] ? json_loads(b->results[i], 0, NULL)
                                                     : json_null());
    json_t *v = results ? b->dialect->batch(results) : NULL;
    if (v)
        ob_http_later_reply_json(b->later, 200, v);
    else
        api_later_rc(b->later, OB_ENOMEM, NULL);
    json_decref(v);
}

static void batch_end(api_batch *b)
{
    int left = atomic_fetch_sub(&b->left, 1);
    assert(left >= 1); /* B1: never answered twice */
    if (left != 1)
        return;
    if (b->dialect) {
        reply_dialect(b);
    } else {
        size_t len;
        char *text = results_text(b, &len);
        if (text)
            ob_http_later_reply(b->later, 200, "application/json", text, len);
        else
            api_later_rc(b->later, OB_ENOMEM, NULL);
        free(text);
    }
    for (size_t i = 0; i < b->n; i++)
        free(b->results[i]);
    free(b->results);
    free(b);
}

static void refuse(api_batch *b, size_t i, const api_error *e)
{
    if (b->dialect) {
        set_json(b, i, b->dialect->refused(e));
        return;
    }
    set_json(b, i, json_pack("{s:{s:i, s:s, s:s, s:s?}}", "error", "status", e->status, "code",
                             e->code, "message", e->p.message, "field",
                             e->p.field[0] ? e->p.field : NULL));
}

/* Refused by the engine: its error, and why when the check said (why may
 * be NULL: the commit's answer says only rc). */
static void refuse_rc(api_batch *b, size_t i, int rc, const ob_problem *why)
{
    api_error e;
    const char *code;
    int status = api_status(rc, &code);
    bool said = why && why->message[0];
    api_refuse(&e, status, code, said ? why->field : NULL, "%s",
               said ? why->message : ob_strerror(rc));
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
            set_json(s->b, s->i, s->b->dialect->accepted(ids, existed, s->extra));
        } else {
            snprintf(url, sizeof url, "%s%s", s->view, ids);
            const char *state = existed ? "existing" : s->scheduled ? "scheduled" : "available";
            set_result(s->b, s->i, api_accepted_json(ids, state, url, s->extra));
        }
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

/* The batch's items: the body is {"<name>": [...]} or the array. */
static bool batch_list(api *a, ob_http_req *r, const jspan *body, const char *name,
                       const api_dialect *d, jspan *list, size_t *n)
{
    api_error e;
    int max = d && d->max_batch ? d->max_batch : a->o.max_batch;
    jspan v, other;
    if (body->type == J_ARRAY)
        *list = *body;
    else if (!jmembers(body, &name, 1, list, &other)) /* a member besides `name` */
        list->type = 0;
    *n = 0;
    if (list->type == J_ARRAY) {
        jiter it;
        jiter_init(&it, list);
        while (jiter_elem(&it, &v))
            ++*n;
    }
    if (ob_http_header(r, "Idempotency-Key"))
        api_refuse(&e, 400, "invalid", "Idempotency-Key",
                   d ? "outbox takes no Idempotency-Key on a batch: send the emails one by one "
                       "with a key each"
                     : "a batch takes no Idempotency-Key: give items a unique_key, or send them "
                       "one by one");
    else if (list->type != J_ARRAY)
        api_refuse(&e, 422, "invalid", name, "a batch is {\"%s\": [...]} (or the array)", name);
    else if (*n == 0 || *n > (size_t)max)
        api_refuse(&e, *n ? 413 : 422, *n ? "too_large" : "invalid", name, "from 1 to %d items",
                   max);
    else
        return true;
    api_reply_refused(r, &e, d);
    return false;
}

static api_batch *batch_begin(ob_http_req *r, size_t n)
{
    api_batch *b = calloc(1, sizeof *b);
    char **results = calloc(n, sizeof *results);
    int rc = b && results ? ob_http_suspend(r, &b->later) : OB_ENOMEM;
    if (rc) {
        free(b);
        free(results);
        api_reply_rc(r, rc, NULL);
        return NULL;
    }
    b->n = n;
    b->results = results;
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
    jspan body, list = {0}, v;
    size_t n;
    if (!api_body_scan(r, &body) || !batch_list(a, r, &body, name, d, &list, &n))
        return;
    api_batch *b = batch_begin(r, n);
    if (!b)
        return;
    b->dialect = d;
    jiter it;
    jiter_init(&it, &list);
    for (size_t i = 0; jiter_elem(&it, &v); i++) {
        api_item item;
        api_error e;
        if (decode(a, &v, &item, &e))
            refuse(b, i, &e);
        else
            batch_enqueue(a, b, i, &item.p);
        api_item_clear(&item);
    }
    batch_end(b);
}
