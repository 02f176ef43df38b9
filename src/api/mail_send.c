/*
 * mail_send.c - the mail.send job kind: deliver a stored message (the
 * payload, ob_mail_to_json's form) through the configured transport and
 * keep each recipient's outcome in the job's result:
 *
 *   {"message_id": "<...>", "transport": "smtp://relay:587",
 *    "recipients": [{"address", "type", "state", "code", "enhanced",
 *                    "reply", "attempts", "updated_at"}, ...]}
 *
 * Each attempt sends only to recipients still pending or deferred (the
 * result of the attempt before says who), then, like Postfix:
 *
 *   some recipient deferred, lifetime left    retry after the kind's backoff
 *   some deferred, lifetime spent             they become bounced ("gave up")
 *   nobody deferred, someone delivered        completed
 *   nobody deferred, nobody delivered         discarded (all bounced)
 *
 * The result is stored with every answer (ob_ctx_set_result), so a crash
 * between attempts loses at most the attempt in flight, which then runs
 * again: delivery is at least once, never lost. The result always fits:
 * each recipient's entry is bounded (its reply kept to RCPT_REPLY_KEPT
 * bytes, scrubbed) and outboxd sizes the engine's max_result with
 * ms_result_max. Should it still not be stored, the job is not retried:
 * a retry that does not know who was delivered would send to them again. The message's bytes are
 * the same on every attempt (Message-ID, Date and boundaries are fixed in
 * the payload), so a duplicate is recognisable by its Message-ID.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/mail_send.h"
#include "base/base.h"

static ms_opts opt;
static _Atomic uint64_t outcomes[OB_RCPT_BOUNCED + 1]; /* recipients' replies, by state */

void ms_outcomes(uint64_t out[4])
{
    for (int i = 0; i <= OB_RCPT_BOUNCED; i++)
        out[i] = atomic_load(&outcomes[i]);
}

/* A recipient's reply kept in the result, in bytes (scrubbed of control
 * characters first): with the address (at most 254, escaped at most 2x)
 * and the other members, an entry is under RCPT_ENTRY_MAX as JSON. */
#define RCPT_REPLY_KEPT 400
#define RCPT_ENTRY_MAX 1600

size_t ms_result_max(int max_recipients)
{
    size_t n = (size_t)(max_recipients > 0 ? max_recipients : 1) * RCPT_ENTRY_MAX + 8192;
    size_t lo = 64u << 10, hi = 16u << 20;
    return n < lo ? lo : n > hi ? hi : n;
}

/* A stored message was checked against the limits when it was accepted:
 * reading it back must not refuse it because the limits changed since. */
static const ob_mail_limits stored_limits = {
    .max_recipients = 1 << 20, .max_subject = 1 << 20,   .max_headers = 1 << 20,
    .max_attachments = 1 << 20, .max_attachment = 1u << 30, .max_size = 1u << 30,
    .max_tags = 1 << 20,       .max_metadata = 1u << 30,
};

typedef struct rcpt {
    const char *address, *type;
    ob_rcpt_state state;
    ob_mail_reply reply;
    int attempts;
    int64_t updated_at;
} rcpt;

static ob_rcpt_state state_of(const char *s)
{
    for (int i = OB_RCPT_PENDING; i <= OB_RCPT_BOUNCED; i++)
        if (s && !strcmp(s, ob_rcpt_state_name((ob_rcpt_state)i)))
            return (ob_rcpt_state)i;
    return OB_RCPT_PENDING;
}

static void reply_set(ob_mail_reply *r, int code, const char *enhanced, const char *text)
{
    r->code = code;
    snprintf(r->enhanced, sizeof r->enhanced, "%s", enhanced ? enhanced : "");
    snprintf(r->text, sizeof r->text, "%s", text);
}

static void reply_from_json(ob_mail_reply *r, const json_t *e)
{
    const char *enh = json_string_value(json_object_get(e, "enhanced"));
    const char *text = json_string_value(json_object_get(e, "reply"));
    reply_set(r, (int)json_integer_value(json_object_get(e, "code")), enh, text ? text : "");
}

/* Fill r[] from the message's envelope and the previous attempt's result
 * (matched by address; anything not found there is pending). */
static void load(const ob_mail *m, const char *result, rcpt *r)
{
    json_t *prev = result ? json_loads(result, 0, NULL) : NULL;
    json_t *list = json_object_get(prev, "recipients");
    for (size_t i = 0; i < ob_mail_rcpt_count(m); i++) {
        r[i] = (rcpt){.address = ob_mail_rcpt(m, i), .type = ob_mail_rcpt_type(m, i)};
        size_t k;
        json_t *e;
        json_array_foreach(list, k, e) {
            const char *a = json_string_value(json_object_get(e, "address"));
            if (!a || strcmp(a, r[i].address))
                continue;
            r[i].state = state_of(json_string_value(json_object_get(e, "state")));
            r[i].attempts = (int)json_integer_value(json_object_get(e, "attempts"));
            const char *at = json_string_value(json_object_get(e, "updated_at"));
            if (!at || ob_time_parse(at, &r[i].updated_at))
                r[i].updated_at = 0;
            reply_from_json(&r[i].reply, e);
            break;
        }
    }
    json_decref(prev);
}

/* The result JSON text (malloc'd), or NULL on OOM. */
static char *result_text(const ob_mail *m, const rcpt *r, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_pack("{s:s, s:s, s:s, s:i}", "address", r[i].address, "type", r[i].type,
                              "state", ob_rcpt_state_name(r[i].state), "attempts", r[i].attempts);
        if (r[i].state != OB_RCPT_PENDING) {
            json_object_set_new(e, "code", json_integer(r[i].reply.code));
            char reply[RCPT_REPLY_KEPT + 1];
            ob_scrub(r[i].reply.text, strlen(r[i].reply.text), reply, sizeof reply);
            if (r[i].reply.enhanced[0])
                json_object_set_new(e, "enhanced", json_string(r[i].reply.enhanced));
            json_object_set_new(e, "reply", json_string(reply));
            char at[32];
            json_object_set_new(e, "updated_at", json_string(ob_time_format(r[i].updated_at, at)));
        }
        json_array_append_new(list, e);
    }
    json_t *v = json_pack("{s:s, s:s, s:o}", "message_id", ob_mail_message_id(m), "transport",
                          ob_transport_name(opt.transport), "recipients", list);
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return s;
}

/* Send to the recipients not yet final; record their replies. */
static void attempt(ob_job_ctx *ctx, const ob_mail *m, rcpt *r, size_t n)
{
    const ob_job *j = ob_ctx_job(ctx);
    char *data;
    size_t len;
    const char **to = malloc(n * sizeof *to);
    ob_mail_reply *replies = calloc(n, sizeof *replies);
    size_t *idx = malloc(n * sizeof *idx), k = 0;
    if (!to || !replies || !idx || ob_mail_build(m, &data, &len)) {
        free(to), free(replies), free(idx);
        for (size_t i = 0; i < n; i++)
            if (r[i].state == OB_RCPT_PENDING || r[i].state == OB_RCPT_DEFERRED) {
                r[i].state = OB_RCPT_DEFERRED;
                reply_set(&r[i].reply, 0, NULL, "out of memory building the message");
            }
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (r[i].state == OB_RCPT_PENDING || r[i].state == OB_RCPT_DEFERRED) {
            to[k] = r[i].address;
            idx[k++] = i;
        }
    char name[OB_ID_STRLEN + 1];
    ob_envelope env = {.from = ob_mail_sender(m), .rcpts = to, .nrcpts = k, .data = data,
                       .len = len, .name = ob_id_format(&j->id, name)};
    int64_t now = ob_now_ms();
    if (k && ob_transport_send(opt.transport, &env, replies, ob_ctx_deadline(ctx)) == 0) {
        for (size_t i = 0; i < k; i++) {
            rcpt *x = &r[idx[i]];
            x->reply = replies[i];
            x->state = ob_mail_reply_state(&replies[i]);
            atomic_fetch_add(&outcomes[x->state], 1);
            x->attempts++;
            x->updated_at = now;
        }
    }
    free(data), free(to), free(replies), free(idx);
}

/* Deferred for longer than the lifetime: bounced, keeping the last reply. */
static void give_up(const ob_job *j, rcpt *r, size_t n)
{
    int64_t age = ob_now_ms() - j->created_at_ms;
    if (age < opt.lifetime_ms)
        return;
    for (size_t i = 0; i < n; i++) {
        if (r[i].state != OB_RCPT_DEFERRED)
            continue;
        char text[OB_MAIL_REPLY_MAX];
        snprintf(text, sizeof text, "gave up after %lld s deferred; last reply: %.400s",
                 (long long)(age / 1000), r[i].reply.text);
        r[i].state = OB_RCPT_BOUNCED;
        atomic_fetch_add(&outcomes[OB_RCPT_BOUNCED], 1);
        snprintf(r[i].reply.text, sizeof r[i].reply.text, "%s", text);
    }
}

/* The error an attempt records: who is deferred or bounced, and why. */
static void summary(const rcpt *r, size_t n, ob_rcpt_state which, char *out, size_t cap)
{
    size_t w = 0, count = 0;
    for (size_t i = 0; i < n; i++)
        count += r[i].state == which;
    w += (size_t)snprintf(out, cap, "%zu recipient%s %s", count, count == 1 ? "" : "s",
                          ob_rcpt_state_name(which));
    for (size_t i = 0; i < n && w < cap; i++)
        if (r[i].state == which)
            w += (size_t)snprintf(out + w, cap - w, "; %s: %d %s", r[i].address, r[i].reply.code,
                                  r[i].reply.text);
}

static void handler(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *j = ob_ctx_job(ctx);
    json_t *payload = json_loadb((const char *)j->payload, j->payload_len, 0, NULL);
    ob_mail *m = NULL;
    ob_mail_problem p = {{0}, {0}};
    if (!payload || ob_mail_parse(payload, OB_MAIL_STORED, &stored_limits, &m, &p)) {
        char err[300];
        snprintf(err, sizeof err, "the stored message does not parse: %s: %s", p.field,
                 p.message);
        ob_ctx_discard(ctx, err);
        json_decref(payload);
        return;
    }
    json_decref(payload);
    size_t n = ob_mail_rcpt_count(m);
    rcpt *r = calloc(n, sizeof *r);
    if (!r) {
        ob_ctx_retry(ctx, -1, "out of memory");
        ob_mail_free(m);
        return;
    }
    load(m, j->result, r);
    attempt(ctx, m, r, n);
    give_up(j, r, n);

    size_t delivered = 0, deferred = 0;
    for (size_t i = 0; i < n; i++) {
        delivered += r[i].state == OB_RCPT_DELIVERED;
        deferred += r[i].state == OB_RCPT_DEFERRED;
    }
    char *result = result_text(m, r, n), err[1024];
    int rc = result ? ob_ctx_set_result(ctx, result) : OB_ENOMEM;
    if (rc && deferred) {
        snprintf(err, sizeof err, "the outcome of each recipient could not be stored (%s): not "
                 "retried, so that %zu delivered recipient%s do not get the message twice; %zu "
                 "left deferred", ob_strerror(rc), delivered, delivered == 1 ? "" : "s", deferred);
        ob_ctx_discard(ctx, err);
    } else if (deferred) {
        summary(r, n, OB_RCPT_DEFERRED, err, sizeof err);
        ob_ctx_retry(ctx, -1, err);
    } else if (delivered) {
        ob_ctx_done(ctx, NULL);
    } else {
        summary(r, n, OB_RCPT_BOUNCED, err, sizeof err);
        ob_ctx_discard(ctx, err);
    }
    free(result);
    free(r);
    ob_mail_free(m);
}

json_t *ms_recipients(const ob_job *j)
{
    json_t *result = j->result ? json_loads(j->result, 0, NULL) : NULL;
    json_t *list = json_incref(json_object_get(result, "recipients"));
    json_decref(result);
    if (list)
        return list;
    json_t *payload = json_loadb((const char *)j->payload, j->payload_len, 0, NULL);
    ob_mail *m = NULL;
    if (!payload || ob_mail_parse(payload, OB_MAIL_STORED, &stored_limits, &m, NULL)) {
        json_decref(payload);
        return NULL;
    }
    json_decref(payload);
    list = ms_pending(m);
    ob_mail_free(m);
    return list;
}

json_t *ms_pending(const ob_mail *m)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < ob_mail_rcpt_count(m); i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:i}", "address",
                                              ob_mail_rcpt(m, i), "type", ob_mail_rcpt_type(m, i),
                                              "state", "pending", "attempts", 0));
    return list;
}

int ms_register(ob_engine *e, const ms_opts *o)
{
    opt = *o;
    ob_kind_opts k = {
        .timeout_ms = o->timeout_ms,
        .max_attempts = 1000, /* the lifetime decides when to give up */
        .backoff = {.base_ms = o->retry_min_ms, .factor = 2.0, .max_ms = o->retry_max_ms,
                    .jitter = 0.1},
    };
    return ob_engine_register(e, "mail.send", handler, NULL, &k);
}
