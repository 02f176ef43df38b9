/*
 * jobs_api.c - /v1/jobs: enqueue, read, list, cancel, retry.
 *
 * POST /v1/jobs never blocks an HTTP thread on a commit: the handler checks
 * the request, suspends the response and enqueues with ob_enqueue_async; the
 * engine calls back once the job is on disk (or could not be stored), and
 * the callback answers — so one fsync acknowledges every request that
 * arrived during the previous one. Cancel and retry work the same way.
 *
 * Idempotency: an Idempotency-Key header becomes the job's unique key
 * ("idem:KEY"), and the SHA-256 of the request body rides in the job's meta.
 * A repeat with the same key and the same body gets the existing job (200);
 * with another body, 409. A `unique_key` member ("key:KEY") returns the
 * existing job without comparing bodies, as the engine promises.
 */
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/http_request.h"
#include "outbox/util.h"

/* ---- enqueueing: POST /v1/jobs, and /v1/messages through api_enqueue ---- */

typedef struct enq {
    api *a;
    ob_http_later *later;
    int64_t wait_ms;
    bool idempotent;       /* keyed by Idempotency-Key: compare bodies */
    char sha[65];          /* of the request body */
    bool scheduled;
    const char *view;      /* "/v1/jobs/" or "/v1/messages/" */
    json_t *extra;         /* owned: members added to the 202 body, or NULL */
    const api_dialect *dialect; /* NULL: outbox's answers */
} enq;

/* An engine error as an item's refusal (its status, code and sentence). */
static void error_of(int rc, const char *field, const char *message, api_error *e)
{
    const char *code;
    int status = api_status(rc, &code);
    api_refuse(e, status, code, field, "%s", message && message[0] ? message : ob_strerror(rc));
}

/* The engine refused or failed: answered in the request's dialect. */
static void later_failed(enq *q, int rc)
{
    if (!q->dialect) {
        api_later_rc(q->later, rc, NULL);
        return;
    }
    api_error e;
    error_of(rc, NULL, NULL, &e);
    json_t *v = q->dialect->refused(&e);
    ob_http_later_reply_json(q->later, e.status, v);
    json_decref(v);
}

char *api_accepted_json(const char *id, const char *state, const char *url, const json_t *extra)
{
    if (extra) { /* a message: its members too */
        json_t *v = json_pack("{s:s, s:s, s:s}", "id", id, "state", state, "status_url", url);
        char *text = v && json_object_update(v, (json_t *)extra) == 0 ? json_dumps(v, JSON_COMPACT)
                                                                     : NULL;
        json_decref(v);
        return text;
    }
    /* The hot path, on the commit thread: printed, not built with jansson
     * (an id is hex and dashes, a state and a URL ours: nothing to escape). */
    char body[192];
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"state\":\"%s\",\"status_url\":\"%s\"}", id,
             state, url);
    return strdup(body);
}

/* Stored (or existing): answered in the request's dialect. */
static void later_accepted(enq *q, const ob_id *id, bool existed)
{
    char ids[OB_ID_STRLEN + 1];
    ob_id_format(id, ids);
    json_t *v = q->dialect->accepted(ids, existed, q->extra);
    ob_http_later_reply_json(q->later, existed ? 200 : q->dialect->accepted_status, v);
    json_decref(v);
}


/* The existing job a repeated key named: 200 with it, or 409 when an
 * Idempotency-Key came back with another body. */
static void answer_existing(enq *q, const ob_id *id)
{
    ob_job *j = NULL;
    int rc = ob_job_get(q->a->o.engine, id, &j);
    if (rc) {
        api_later_rc(q->later, rc, NULL);
        return;
    }
    json_t *meta = q->idempotent && j->meta ? json_loads(j->meta, 0, NULL) : NULL;
    const char *sha = json_string_value(json_object_get(meta, "request_sha256"));
    if (q->idempotent && (!sha || strcmp(sha, q->sha) != 0) && q->dialect) {
        api_error e;
        api_refuse(&e, 409, "idempotency_key_reused", "Idempotency-Key",
                   "this Idempotency-Key was used with another request body");
        json_t *v = q->dialect->refused(&e);
        ob_http_later_reply_json(q->later, 409, v);
        json_decref(v);
    } else if (q->idempotent && (!sha || strcmp(sha, q->sha) != 0)) {
        ob_http_later_reply_error(q->later, 409, "idempotency_key_reused",
                                  "this Idempotency-Key was used with another request body",
                                  "Idempotency-Key");
    } else if (q->dialect) {
        later_accepted(q, id, true);
    } else { /* a message answers as a message: its recipients and Message-ID */
        json_t *v = api_job_json(j, strcmp(j->kind, "mail.send") == 0);
        ob_http_later_set_header(q->later, "Location", json_string_value(json_object_get(v, "status_url")));
        ob_http_later_reply_json(q->later, 200, v);
        json_decref(v);
    }
    json_decref(meta);
    ob_job_free(j);
}

/* The engine's answer: the job is durable, refused, or could not be stored.
 * Runs on the engine's commit thread: short work only. */
static void enqueued(void *arg, int rc, const ob_id *id, bool existed)
{
    enq *q = arg;
    if (rc)
        later_failed(q, rc);
    else if (existed)
        answer_existing(q, id);
    else if (q->dialect)
        later_accepted(q, id, false);
    else if (q->wait_ms > 0)
        waitlist_add(q->a->w, id, q->later, q->wait_ms, 202);
    else {
        char ids[OB_ID_STRLEN + 1], url[64];
        ob_id_format(id, ids);
        snprintf(url, sizeof url, "%s%s", q->view, ids);
        const char *state = q->scheduled ? "scheduled" : "available";
        ob_http_later_set_header(q->later, "Location", url);
        char *body = api_accepted_json(ids, state, url, q->extra);
        if (body)
            ob_http_later_reply(q->later, 202, "application/json", body, strlen(body));
        else
            api_later_rc(q->later, OB_ENOMEM, NULL);
        free(body);
    }
    json_decref(q->extra);
    free(q);
}

char *api_make_meta(const char *callback_url, const char *sha)
{
    if (!callback_url && !sha)
        return NULL;
    json_t *m = json_pack("{s:s?, s:s?}", "callback_url", callback_url, "request_sha256", sha);
    char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    return s;
}

static bool idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x21 || k[i] > 0x7e)
            return false;
    return true;
}

/* The job's unique key from the Idempotency-Key header ("idem:KEY", and
 * *sha the body's digest) or the body's unique_key ("key:KEY"). Answers
 * and returns false on a bad one. */
static bool unique_key(ob_http_req *r, const api_post *p, char *key, size_t cap, char *sha)
{
    const char *idem = ob_http_header(r, "Idempotency-Key");
    api_error e;
    if (idem && p->unique_key) {
        api_refuse(&e, 422, "invalid", "unique_key", "give unique_key or an Idempotency-Key, not both");
        api_reply_refused(r, &e, p->dialect);
        return false;
    }
    if (idem && !idem_key_ok(idem)) {
        api_refuse(&e, 400, "invalid", "Idempotency-Key", "1 to 200 printable ASCII characters");
        api_reply_refused(r, &e, p->dialect);
        return false;
    }
    if (idem) {
        size_t len;
        const void *raw = ob_http_body(r, &len);
        unsigned char d[32];
        SHA256(raw, len, d);
        ob_hex(d, 32, sha);
        snprintf(key, cap, "idem:%s", idem);
    } else if (p->unique_key && snprintf(key, cap, "key:%s", p->unique_key) >= (int)cap) {
        api_refuse(&e, 413, "too_large", "unique_key", "unique_key is too long");
        api_reply_refused(r, &e, p->dialect);
        return false;
    }
    return true;
}

int api_refuse(api_error *e, int status, const char *code, const char *field, const char *fmt, ...)
{
    e->status = status;
    e->code = code;
    snprintf(e->p.field, sizeof e->p.field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->p.message, sizeof e->p.message, fmt, ap);
    va_end(ap);
    return -1;
}

void api_item_clear(api_item *it)
{
    free(it->payload);
    free(it->text);
    json_decref(it->tree);
    json_decref(it->p.extra);
    *it = (api_item){0};
}

json_t *api_tree(const jspan *body, api_error *e)
{
    json_t *v = json_loadb(body->p, body->n, JSON_DECODE_ANY, NULL); /* valid: only OOM fails */
    if (!v)
        api_refuse(e, 500, "out_of_memory", NULL, "out of memory");
    return v;
}

int api_decode_tree(api *a, const jspan *body, api_item *it, api_error *e, api_decode_tree_fn fn)
{
    json_t *tree = api_tree(body, e);
    int rc = tree ? fn(a, tree, it, e) : (*it = (api_item){0}, -1);
    it->tree = tree; /* taken */
    return rc;
}

bool api_body_scan(ob_http_req *r, jspan *top)
{
    size_t len;
    const char *body = ob_http_body(r, &len);
    jscan_error err;
    if (!body) {
        ob_http_reply_error(r, 400, "invalid_json", "a JSON body is required", NULL);
        return false;
    }
    if (jscan(body, len, 0, top, &err)) {
        char msg[160];
        snprintf(msg, sizeof msg, "the body is not valid JSON: %s at byte %zu", err.why, err.at);
        ob_http_reply_error(r, 400, "invalid_json", msg, NULL);
        return false;
    }
    return true;
}

void api_reply_refused(ob_http_req *r, const api_error *e, const api_dialect *d)
{
    if (!d) {
        ob_http_reply_error(r, e->status, e->code, e->p.message, e->p.field[0] ? e->p.field : NULL);
        return;
    }
    json_t *v = d->refused(e);
    ob_http_reply_json(r, e->status, v);
    json_decref(v);
}

void api_post_one_in(api *a, ob_http_req *r, api_decode_fn decode, const api_dialect *d)
{
    jspan body;
    if (!api_body_scan(r, &body))
        return;
    api_item it;
    api_error e;
    if (decode(a, &body, &it, &e)) {
        api_reply_refused(r, &e, d);
    } else {
        it.p.dialect = d;
        api_enqueue(a, r, &it.p); /* takes it.p.extra */
    }
    api_item_clear(&it);
}

void api_post_one(api *a, ob_http_req *r, api_decode_fn decode) { api_post_one_in(a, r, decode, NULL); }

void api_enqueue(api *a, ob_http_req *r, api_post *p)
{
    char key[OB_UNIQUE_KEY_MAX + 16] = "", sha[65] = "";
    if (!unique_key(r, p, key, sizeof key, sha))
        return;
    if (key[0])
        p->j.unique_key = key;
    char *meta = api_make_meta(p->callback_url, sha[0] ? sha : NULL);
    p->j.meta = meta;
    ob_problem why;
    int rc = ob_new_job_check(a->o.engine, &p->j, &why);
    api_error e;
    if (rc) {
        error_of(rc, why.field, why.message, &e);
        api_reply_refused(r, &e, p->dialect);
        free(meta);
        return;
    }
    enq *q = calloc(1, sizeof *q);
    rc = q ? ob_http_suspend(r, &q->later) : OB_ENOMEM;
    if (rc) {
        free(q);
        error_of(rc, NULL, NULL, &e);
        api_reply_refused(r, &e, p->dialect);
        free(meta);
        return;
    }
    q->dialect = p->dialect;
    q->a = a;
    q->idempotent = sha[0] != '\0';
    memcpy(q->sha, sha, sizeof sha);
    q->scheduled = p->j.run_at_ms > ob_now_ms();
    q->view = p->view;
    q->extra = p->extra;
    p->extra = NULL;
    int64_t w = api_prefer_wait(ob_http_header(r, "Prefer"));
    q->wait_ms = w > a->o.max_wait_ms ? a->o.max_wait_ms : w;
    if ((rc = ob_enqueue_async(a->o.engine, &p->j, enqueued, q))) {
        later_failed(q, rc); /* not accepted: answer here */
        json_decref(q->extra);
        free(q);
    }
    free(meta);
}

/* Refused as class `cls` (NULL: not refused): the field and sentence. */
static bool refused_as(const char *cls, const char *addr, const char *name, char *field,
                       size_t cap, const char **why)
{
    static _Thread_local char msg[200];
    if (!cls)
        return false;
    snprintf(msg, sizeof msg, "%.64s is %s: outbound jobs may reach only public addresses "
             "(--http-allow names exceptions)", addr, cls);
    snprintf(field, cap, "%s", name);
    *why = msg;
    return true;
}

bool api_url_refused(api *a, const char *url, const char *name, char *field, size_t cap,
                        const char **why)
{
    char addr[80];
    const char *cls = url ? outbound_check_url(a->o.policy, url, addr, sizeof addr) : NULL;
    return refused_as(cls, addr, name, field, cap, why);
}

/* Job kinds a client may not enqueue here: outbox's own (outbox.*, made by
 * outboxd: a callback signs another job's detail), and mail.send, whose
 * payload only POST /v1/messages validates and makes. */
static const char *kind_refused(const char *kind)
{
    if (strncmp(kind, "outbox.", 7) == 0)
        return "outbox.* kinds are outboxd's own: it makes them itself";
    if (strcmp(kind, "mail.send") == 0)
        return "mail is sent with POST /v1/messages, which validates the message and makes "
               "its mail.send job";
    return NULL;
}

/* Decode one job of a POST (api_decode_fn). */
int api_decode_job_item(api *a, const jspan *body, api_item *it, api_error *e)
{
    *it = (api_item){0};
    api_job_in in;
    const char *f = NULL, *why;
    if (api_decode_job(body, ob_now_ms(), &in, &f, &why)) {
        api_refuse(e, 422, f && strcmp(why, "unknown member") == 0 ? "unknown_field" : "invalid",
                   f, "%s", why);
        api_job_in_clear(&in); /* f may point into it */
        return -1;
    }
    it->text = in.text; /* taken */
    it->p = (api_post){.j = in.j, .callback_url = in.callback_url, .unique_key = in.unique_key,
                       .view = "/v1/jobs/"};
    char field[200];
    if ((why = kind_refused(in.j.kind)))
        return api_refuse(e, 422, "invalid", "kind", "%s", why);
    if (in.j.payload_len > a->o.max_job_payload)
        return api_refuse(e, 413, "too_large", "payload",
                          "the payload is larger than --max-payload");
    if (api_url_refused(a, in.callback_url, "callback_url", field, sizeof field, &why))
        return api_refuse(e, 422, "invalid", field, "%s", why);
    if (strcmp(in.j.kind, "http.request") != 0)
        return 0;
    char sub[160], url[HR_URL_MAX + 1];
    int rc = hr_check_payload(&in.payload, sub, sizeof sub, &why, url, sizeof url);
    if (rc == OB_ENOMEM)
        return api_refuse(e, 503, "no_memory", NULL, "out of memory");
    if (rc) {
        snprintf(field, sizeof field, "payload%s%s", sub[0] ? "." : "", sub);
        return api_refuse(e, 422, "invalid", field, "%s", why);
    }
    hr_target t; /* one parse of the URL for both what follows */
    if (hr_target_of(url, &t))
        return 0; /* as the worker will find: it discards the job, naming the URL */
    char addr[80];
    if (refused_as(outbound_check_host(a->o.policy, t.host, t.port, addr, sizeof addr), addr,
                   "payload.url", field, sizeof field, &why))
        return api_refuse(e, 422, "invalid", field, "%s", why);
    /* the destination's origin: its key for the queue's key_rate and holds */
    if (!it->p.j.rate_key && t.origin[0]) {
        memcpy(it->rate_key, t.origin, sizeof it->rate_key);
        it->p.j.rate_key = it->rate_key;
    }
    return 0;
}

static void post_job(ob_http_req *r, void *arg) { api_post_one(arg, r, api_decode_job_item); }

/* POST /v1/jobs/batch: {"jobs": [...]}, each as for POST /v1/jobs. */
static void post_jobs_batch(ob_http_req *r, void *arg)
{
    api_post_batch(arg, r, "jobs", api_decode_job_item);
}

/* ---- GET /v1/jobs/{id} ---- */

static bool parse_id(ob_http_req *r, ob_id *id)
{
    if (ob_id_parse(ob_http_param(r, "id"), id) == 0)
        return true;
    ob_http_reply_error(r, 400, "invalid", "not a job id (a UUID)", "id");
    return false;
}

void api_get_job(api *a, ob_http_req *r, const char *kind)
{
    ob_id id;
    if (!parse_id(r, &id))
        return;
    int64_t w = api_prefer_wait(ob_http_header(r, "Prefer"));
    ob_job *j = NULL;
    int rc = ob_job_get(a->o.engine, &id, &j);
    if (!rc && kind && strcmp(j->kind, kind) != 0) {
        ob_job_free(j);
        rc = OB_ENOTFOUND;
    }
    if (rc) {
        api_reply_rc(r, rc, rc == OB_ENOTFOUND ? "id" : NULL);
        return;
    }
    if (w > 0 && !ob_state_is_final(j->state)) {
        ob_http_later *l;
        if (ob_http_suspend(r, &l) == 0) {
            ob_job_free(j);
            waitlist_add(a->w, &id, l, w > a->o.max_wait_ms ? a->o.max_wait_ms : w, 200);
            return;
        }
    }
    json_t *v = api_job_json(j, true);
    ob_http_reply_json(r, 200, v);
    json_decref(v);
    ob_job_free(j);
}

static void get_job(ob_http_req *r, void *arg) { api_get_job(arg, r, NULL); }

/* ---- GET /v1/jobs ---- */

/* The list's answer: {"jobs": [...], "next_cursor"}. Takes pg. */
static void reply_page(ob_http_req *r, ob_job_page *pg)
{
    json_t *jobs = json_array();
    for (size_t i = 0; i < pg->n; i++)
        json_array_append_new(jobs, api_job_json(pg->jobs[i], false));
    json_t *v = json_pack("{s:o, s:s?}", "jobs", jobs, "next_cursor",
                          pg->next_cursor[0] ? pg->next_cursor : NULL);
    ob_http_reply_json(r, 200, v);
    json_decref(v);
    ob_job_page_free(pg);
}

/* A search that is a job's id: that job, if the other filters take it.
 * Whether it answered. */
static bool search_by_id(api *a, ob_http_req *r, const ob_list_filter *f, const char *search)
{
    ob_id id;
    if (ob_id_parse(search, &id))
        return false;
    ob_job *j = NULL;
    int rc = ob_job_get(a->o.engine, &id, &j);
    if (rc && rc != OB_ENOTFOUND) {
        api_reply_rc(r, rc, NULL);
        return true;
    }
    bool keep = j && (!f->states || (f->states >> j->state) & 1) &&
                (!f->kind || !strcmp(f->kind, j->kind)) &&
                (!f->queue || !strcmp(f->queue, j->queue)) &&
                (!f->created_after_ms || j->created_at_ms >= f->created_after_ms) &&
                (!f->created_before_ms || j->created_at_ms < f->created_before_ms);
    ob_job_page *pg = calloc(1, sizeof *pg);
    ob_job **one = calloc(1, sizeof *one);
    if (!pg || !one) {
        free(pg);
        free(one);
        ob_job_free(j);
        api_reply_rc(r, OB_ENOMEM, NULL);
        return true;
    }
    pg->jobs = one;
    if (keep)
        one[pg->n++] = j;
    else
        ob_job_free(j);
    reply_page(r, pg);
    return true;
}

static void list_jobs(ob_http_req *r, void *arg)
{
    api *a = arg;
    ob_list_filter f = {0};
    const char *s = ob_http_query(r, "state"), *lim = ob_http_query(r, "limit");
    long mask = s ? api_states(s) : 0;
    if (mask < 0) {
        ob_http_reply_error(r, 400, "invalid", "a comma list of job states", "state");
        return;
    }
    f.states = (unsigned)mask;
    f.kind = ob_http_query(r, "kind");
    f.queue = ob_http_query(r, "queue");
    f.cursor = ob_http_query(r, "cursor");
    static const char *const times[2] = {"created_after", "created_before"};
    int64_t *bound[2] = {&f.created_after_ms, &f.created_before_ms};
    for (int i = 0; i < 2; i++) {
        const char *t = ob_http_query(r, times[i]);
        if (t && (ob_time_parse(t, bound[i]) || *bound[i] <= 0)) {
            ob_http_reply_error(r, 400, "invalid", "an RFC 3339 date-time, e.g. "
                                "2026-11-25T04:00:00Z", times[i]);
            return;
        }
    }
    const char *search = ob_http_query(r, "search");
    char term[OB_TERM_MAX + 1], key[OB_UNIQUE_KEY_MAX + 8];
    if (search) {
        size_t n = strlen(search);
        if (n == 0 || n > OB_TERM_MAX) {
            ob_http_reply_error(r, 400, "invalid", "1 to 320 bytes", "search");
            return;
        }
        if (search_by_id(a, r, &f, search))
            return;
        if (n >= 2 && search[0] == '<' && search[n - 1] == '>') /* a Message-ID as written */
            snprintf(term, sizeof term, "%.*s", (int)n - 2, search + 1);
        else
            snprintf(term, sizeof term, "%s", search);
        f.term = term;
        if (n <= OB_UNIQUE_KEY_MAX && snprintf(key, sizeof key, "key:%s", search) > 0)
            f.unique_key = key;
    }
    if (lim) {
        char *end;
        long n = strtol(lim, &end, 10);
        if (*end || n < 1 || n > OB_LIST_MAX) {
            ob_http_reply_error(r, 400, "invalid", "an integer from 1 to 1000", "limit");
            return;
        }
        f.limit = (int)n;
    }
    ob_job_page *pg;
    int rc = ob_job_list(a->o.engine, &f, &pg);
    if (rc == OB_EINVAL) {
        const char *field = f.cursor && *f.cursor ? "cursor" : f.kind ? "kind" : "queue";
        ob_http_reply_error(r, 400, "invalid", "a filter is not valid", field);
        return;
    }
    if (rc) {
        api_reply_rc(r, rc, NULL);
        return;
    }
    reply_page(r, pg);
}

/* ---- POST /v1/jobs/{id}/cancel, /retry ---- */

typedef struct chg {
    ob_http_later *later;
    char id[OB_ID_STRLEN + 1];
} chg;

static void changed(void *arg, int rc, ob_state state)
{
    chg *c = arg;
    if (rc == OB_ESTATE)
        ob_http_later_reply_error(c->later, 409, "conflict",
                                  "the job's state does not allow this", NULL);
    else if (rc)
        api_later_rc(c->later, rc, rc == OB_ENOTFOUND ? "id" : NULL);
    else {
        json_t *v = json_pack("{s:s, s:s}", "id", c->id, "state", ob_state_name(state));
        ob_http_later_reply_json(c->later, 200, v);
        json_decref(v);
    }
    free(c);
}

static void change(ob_http_req *r, api *a, bool cancel)
{
    ob_id id;
    if (!parse_id(r, &id))
        return;
    chg *c = calloc(1, sizeof *c);
    int rc = c ? ob_http_suspend(r, &c->later) : OB_ENOMEM;
    if (rc) {
        free(c);
        api_reply_rc(r, rc, NULL);
        return;
    }
    ob_id_format(&id, c->id);
    rc = cancel ? ob_job_cancel_async(a->o.engine, &id, changed, c)
                : ob_job_retry_async(a->o.engine, &id, changed, c);
    if (rc) {
        api_later_rc(c->later, rc, NULL);
        free(c);
    }
}

static void cancel_job(ob_http_req *r, void *arg) { change(r, arg, true); }
static void retry_job(ob_http_req *r, void *arg) { change(r, arg, false); }

int api_jobs_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "POST", "/v1/jobs", post_job, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "POST", "/v1/jobs/batch", post_jobs_batch, OB_HTTP_JSON)) ||
        (rc = api_route(a, srv, "GET", "/v1/jobs", list_jobs, 0)) ||
        (rc = api_route(a, srv, "GET", "/v1/jobs/{id}", get_job, 0)) ||
        (rc = api_route(a, srv, "POST", "/v1/jobs/{id}/cancel", cancel_job, 0)) ||
        (rc = api_route(a, srv, "POST", "/v1/jobs/{id}/retry", retry_job, 0)))
        return rc;
    return 0;
}
