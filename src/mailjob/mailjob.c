/*
 * mailjob.c - the mail.send job kind (outbox/mailjob.h): deliver a stored
 * message (the payload, ob_mail_to_json's form) through a transport and
 * keep each recipient's outcome in the job's result:
 *
 *   {"message_id": "<...>", "transport": "smtp://relay:587",
 *    "recipients": [{"address", "type", "state", "code", "enhanced",
 *                    "reply", "attempts", "updated_at"}, ...]}
 *
 * Each attempt sends only to recipients still pending or deferred (the
 * result of the attempt before says who); what follows is the table in
 * outbox/mailjob.h.
 *
 * The result is stored with every answer (ob_ctx_set_result), so a crash
 * between attempts loses at most the attempt in flight, which then runs
 * again. The result always fits: each recipient's entry is bounded (its
 * reply kept to RCPT_REPLY_KEPT bytes, scrubbed) and
 * ob_mail_job_engine_opts sizes the engine's max_result for the most
 * recipients. Should it still not be stored, the job is not retried: a
 * retry that does not know who was delivered would send to them again.
 *
 * Invariant M1 (checked in debug builds after each attempt): a recipient
 * final before the attempt (delivered, bounced, suppressed) is not sent to
 * again and keeps its reply. By construction (answer()): the job is
 * retried only while some recipient is deferred.
 *
 * Suppressions (suppressions.c): before an attempt, each recipient still
 * to be tried is looked up on the list (its envelope address is the
 * normal form, the list's key): found, it becomes suppressed without an
 * SMTP attempt. After it, each hard bounce of this attempt is added to
 * the list before the attempt answers, so a message accepted after the
 * answer is skipped for that address.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mailjob/mailjob_int.h"

struct ob_mailer {
    ob_mail_job_opts o;
    ob_transport *t;                               /* borrowed */
    ob_engine *e;                                  /* borrowed: the suppression list's */
    _Atomic uint64_t outcomes[OB_RCPT_STATES];     /* recipients' replies, by state */
    _Atomic uint64_t suppress_added, suppress_failed;
};

void ob_mail_job_opts_init(ob_mail_job_opts *o)
{
    *o = (ob_mail_job_opts){.timeout_ms = 10 * 60 * 1000, .retry_min_ms = 300 * 1000,
                            .retry_max_ms = 4000 * 1000, .lifetime_ms = 5LL * 86400 * 1000};
}

void ob_mailer_outcomes(const ob_mailer *m, uint64_t out[OB_RCPT_STATES])
{
    for (int i = 0; i < OB_RCPT_STATES; i++)
        out[i] = atomic_load(&m->outcomes[i]);
}

void ob_mailer_suppressed(const ob_mailer *m, uint64_t *added, uint64_t *failed)
{
    *added = atomic_load(&m->suppress_added);
    *failed = atomic_load(&m->suppress_failed);
}

/* A recipient's reply kept in the result, in bytes (scrubbed of control
 * characters first): with the address (at most 254, escaped at most 2x)
 * and the other members, an entry is under RCPT_ENTRY_MAX as JSON. */
#define RCPT_REPLY_KEPT 400
#define RCPT_ENTRY_MAX 1600

void ob_mail_job_engine_opts(ob_engine_opts *eo, const ob_mail_limits *l)
{
    ob_mail_limits d;
    if (!l) {
        ob_mail_limits_init(&d);
        l = &d;
    }
    /* the decoded size in base64 (4/3) and the JSON around it */
    size_t payload = l->max_size / 3 * 4 + (1u << 20);
    size_t result = (size_t)(l->max_recipients > 0 ? l->max_recipients : 1) * RCPT_ENTRY_MAX + 8192;
    size_t lo = 64u << 10, hi = 16u << 20;
    result = result < lo ? lo : result > hi ? hi : result;
    if (eo->max_payload < payload)
        eo->max_payload = payload;
    if (eo->max_result < result)
        eo->max_result = result;
}

static void reply_set(ob_mail_reply *r, int code, const char *enhanced, const char *text)
{
    r->code = code;
    snprintf(r->enhanced, sizeof r->enhanced, "%s", enhanced ? enhanced : "");
    snprintf(r->text, sizeof r->text, "%s", text);
}

static bool unfinished(const ob_mail_rcpt_status *r)
{
    return r->state == OB_RCPT_PENDING || r->state == OB_RCPT_DEFERRED;
}

/* The result JSON text (malloc'd), or NULL on OOM. */
static char *result_text(const ob_mailer *mj, const ob_mail *m, const ob_mail_rcpt_status *r,
                         size_t n)
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
            json_object_set_new(e, "updated_at",
                                json_string(ob_time_format(r[i].updated_at_ms, at)));
        }
        json_array_append_new(list, e);
    }
    json_t *v = json_pack("{s:s, s:s, s:o}", "message_id", ob_mail_message_id(m), "transport",
                          ob_transport_name(mj->t), "recipients", list);
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return s;
}

/* Send to the recipients not yet final; record their replies. */
static void attempt(ob_mailer *mj, ob_job_ctx *ctx, const ob_mail *m, ob_mail_rcpt_status *r,
                    size_t n)
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
            if (unfinished(&r[i])) {
                r[i].state = OB_RCPT_DEFERRED;
                reply_set(&r[i].reply, 0, NULL, "out of memory building the message");
            }
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (unfinished(&r[i])) {
            to[k] = r[i].address;
            idx[k++] = i;
        }
    char name[OB_ID_STRLEN + 1];
    ob_envelope env = {.from = ob_mail_sender(m), .rcpts = to, .nrcpts = k, .data = data,
                       .len = len, .name = ob_id_format(&j->id, name)};
    int64_t now = ob_now_ms();
    if (k && ob_transport_send(mj->t, &env, replies, ob_ctx_deadline(ctx)) == 0) {
        for (size_t i = 0; i < k; i++) {
            ob_mail_rcpt_status *x = &r[idx[i]];
            x->reply = replies[i];
            x->state = ob_mail_reply_state(&replies[i]);
            atomic_fetch_add(&mj->outcomes[x->state], 1);
            x->attempts++;
            x->updated_at_ms = now;
        }
    }
    free(data), free(to), free(replies), free(idx);
}

/* A recipient whose address is on the list (rec->value set) becomes
 * suppressed, its reply saying since when and why. */
static void suppress_one(ob_mailer *mj, ob_mail_rcpt_status *r, const ob_record *rec)
{
    ob_suppression s;
    if (!rec->value || ob_suppression_from_record(rec, &s))
        return; /* not there, or not an entry this build knows: no reason to skip anyone */
    char since[32];
    r->state = OB_RCPT_SUPPRESSED;
    r->reply.code = 0;
    r->reply.enhanced[0] = '\0';
    snprintf(r->reply.text, sizeof r->reply.text, "suppressed (%s since %s)%s%.400s",
             ob_suppression_reason_name(s.reason), ob_time_format(s.created_at_ms, since),
             s.reply.text[0] ? ": " : "", s.reply.text);
    r->updated_at_ms = ob_now_ms();
    atomic_fetch_add(&mj->outcomes[OB_RCPT_SUPPRESSED], 1);
}

/* Recipients still to be tried that are on the suppression list become
 * suppressed (one read for them all). 0, or the error reading the list
 * (then nobody is sent to: the attempt is retried). */
static int check_suppressed(ob_mailer *mj, ob_mail_rcpt_status *r, size_t n)
{
    size_t room = n ? n : 1, k = 0;
    const char **keys = malloc(room * sizeof *keys);
    size_t *at = malloc(room * sizeof *at);
    ob_record *found = calloc(room, sizeof *found);
    int rc = keys && at && found ? 0 : OB_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++)
        if (unfinished(&r[i])) {
            keys[k] = r[i].address;
            at[k++] = i;
        }
    if (!rc)
        rc = ob_record_get_many(mj->e, OB_SUPPRESSIONS, keys, k, found);
    for (size_t j = 0; !rc && j < k; j++)
        suppress_one(mj, &r[at[j]], &found[j]);
    for (size_t j = 0; found && j < k; j++)
        ob_record_clear(&found[j]);
    free(keys), free(at), free(found);
    return rc;
}

/* Put the recipients this attempt hard-bounced on the suppression list. A
 * failure is logged and counted: the bounce itself is in the result. */
static void add_bounced(ob_mailer *mj, const ob_job *j, const ob_mail_rcpt_status *before,
                        const ob_mail_rcpt_status *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r[i].state != OB_RCPT_BOUNCED || before[i].state == OB_RCPT_BOUNCED ||
            r[i].attempts == before[i].attempts || !ob_mail_reply_hard(&r[i].reply))
            continue;
        ob_suppression s = {.reason = OB_SUPPRESS_HARD_BOUNCE, .reply = r[i].reply,
                            .job = j->id, .has_job = true};
        snprintf(s.address, sizeof s.address, "%s", r[i].address);
        ob_problem p;
        int rc = ob_suppression_add(mj->e, &s, NULL, &p);
        if (rc) {
            atomic_fetch_add(&mj->suppress_failed, 1);
            OB_ERROR("mail: %s hard-bounced (%d %s) but could not be suppressed: %s",
                     r[i].address, r[i].reply.code, r[i].reply.enhanced, ob_strerror(rc));
        } else {
            atomic_fetch_add(&mj->suppress_added, 1);
        }
    }
}

/* Deferred for longer than the lifetime: bounced, keeping the last reply. */
static void give_up(ob_mailer *mj, const ob_job *j, ob_mail_rcpt_status *r, size_t n)
{
    int64_t age = ob_now_ms() - j->created_at_ms;
    if (age < mj->o.lifetime_ms)
        return;
    for (size_t i = 0; i < n; i++) {
        if (r[i].state != OB_RCPT_DEFERRED)
            continue;
        char text[OB_MAIL_REPLY_MAX];
        snprintf(text, sizeof text, "gave up after %lld s deferred; last reply: %.400s",
                 (long long)(age / 1000), r[i].reply.text);
        r[i].state = OB_RCPT_BOUNCED;
        atomic_fetch_add(&mj->outcomes[OB_RCPT_BOUNCED], 1);
        snprintf(r[i].reply.text, sizeof r[i].reply.text, "%s", text);
    }
}

/* Append to out (a string) what an attempt records as its error: who is
 * deferred, bounced or suppressed, and why. Nothing when nobody is. */
static void summary(const ob_mail_rcpt_status *r, size_t n, ob_rcpt_state which, char *out,
                    size_t cap)
{
    size_t w = strlen(out), count = 0;
    if (w + 1 >= cap)
        return;
    for (size_t i = 0; i < n; i++)
        count += r[i].state == which;
    if (!count)
        return;
    w += (size_t)snprintf(out + w, cap - w, "%s%zu recipient%s %s", w ? "; " : "", count,
                          count == 1 ? "" : "s", ob_rcpt_state_name(which));
    for (size_t i = 0; i < n && w < cap; i++) /* w past cap: cut, and the loop ends */
        if (r[i].state == which && which == OB_RCPT_SUPPRESSED)
            w += (size_t)snprintf(out + w, cap - w, "; %s: %s", r[i].address, r[i].reply.text);
        else if (r[i].state == which)
            w += (size_t)snprintf(out + w, cap - w, "; %s: %d %s", r[i].address, r[i].reply.code,
                                  r[i].reply.text);
}

#ifndef NDEBUG
/* M1: an attempt leaves a recipient that was final before it as it was. */
static void check_m1(const ob_mail_rcpt_status *before, const ob_mail_rcpt_status *after,
                     size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!unfinished(&before[i]))
            assert(after[i].state == before[i].state && after[i].attempts == before[i].attempts &&
                   after[i].reply.code == before[i].reply.code); /* M1 */
}
#endif

/* Whether the relay asked us to slow down: a deferred recipient answered
 * 421 (the relay closes the session) or an enhanced status 4.7.x. */
static bool slow_down(const ob_mail_rcpt_status *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].state == OB_RCPT_DEFERRED &&
            (r[i].reply.code == 421 || strncmp(r[i].reply.enhanced, "4.7.", 4) == 0))
            return true;
    return false;
}

/* Answer the attempt from the recipients' states (the table in mailjob.h). */
static void answer(ob_job_ctx *ctx, ob_mailer *mj, const ob_mail *m, const ob_mail_rcpt_status *r,
                   size_t n)
{
    size_t delivered = 0, deferred = 0;
    for (size_t i = 0; i < n; i++) {
        delivered += r[i].state == OB_RCPT_DELIVERED;
        deferred += r[i].state == OB_RCPT_DEFERRED;
    }
    char *result = result_text(mj, m, r, n), err[1024];
    int rc = result ? ob_ctx_set_result(ctx, result) : OB_ENOMEM;
    if (rc && deferred) {
        snprintf(err, sizeof err, "the outcome of each recipient could not be stored (%s): not "
                 "retried, so that %zu delivered recipient%s do not get the message twice; %zu "
                 "left deferred", ob_strerror(rc), delivered, delivered == 1 ? "" : "s", deferred);
        ob_ctx_discard(ctx, err);
    } else if (deferred) {
        err[0] = '\0';
        summary(r, n, OB_RCPT_DEFERRED, err, sizeof err);
        if (slow_down(r, n)) /* as Postfix does with a site that says so: all of it waits */
            ob_ctx_retry_hold(ctx, mj->o.retry_min_ms, true, err);
        else
            ob_ctx_retry(ctx, -1, err);
    } else if (delivered) {
        ob_ctx_done(ctx, NULL);
    } else { /* all bounced or suppressed */
        err[0] = '\0';
        summary(r, n, OB_RCPT_BOUNCED, err, sizeof err);
        summary(r, n, OB_RCPT_SUPPRESSED, err, sizeof err);
        ob_ctx_discard(ctx, err);
    }
    free(result);
}

static void handler(ob_job_ctx *ctx, void *arg)
{
    ob_mailer *mj = arg;
    const ob_job *j = ob_ctx_job(ctx);
    ob_mail *m = NULL;
    ob_problem p;
    int rc = obi_mail_stored(j, &m, &p);
    if (rc) {
        char err[400];
        snprintf(err, sizeof err, "the stored message does not parse: %s: %s", p.field,
                 p.message);
        if (rc == OB_ENOMEM)
            ob_ctx_retry(ctx, -1, "out of memory");
        else
            ob_ctx_discard(ctx, err);
        return;
    }
    size_t n = ob_mail_rcpt_count(m);
    ob_mail_rcpt_status *r = calloc(n, sizeof *r);
    if (!r) {
        ob_ctx_retry(ctx, -1, "out of memory");
        ob_mail_free(m);
        return;
    }
    obi_mail_rcpts_load(m, j->result, r);
    ob_mail_rcpt_status *before = malloc(n * sizeof *before); /* who this attempt changed */
    if (!before) {
        ob_ctx_retry(ctx, -1, "out of memory");
        free(r);
        ob_mail_free(m);
        return;
    }
    memcpy(before, r, n * sizeof *r);
    rc = check_suppressed(mj, r, n);
    if (rc) {
        char err[200];
        snprintf(err, sizeof err, "the suppression list could not be read (%s): nobody was sent "
                 "to", ob_strerror(rc));
        ob_ctx_retry(ctx, -1, err);
    } else {
        attempt(mj, ctx, m, r, n);
        give_up(mj, j, r, n);
#ifndef NDEBUG
        check_m1(before, r, n);
#endif
        add_bounced(mj, j, before, r, n);
        answer(ctx, mj, m, r, n);
    }
    free(before);
    free(r);
    ob_mail_free(m);
}

int ob_mail_job_register(ob_engine *e, ob_transport *t, const ob_mail_job_opts *o,
                         ob_mailer **out)
{
    ob_mail_job_opts d;
    if (!o) {
        ob_mail_job_opts_init(&d);
        o = &d;
    }
    if (!e || !t || !out || o->timeout_ms < 1 || o->retry_min_ms < 1 ||
        o->retry_max_ms < o->retry_min_ms || o->lifetime_ms < 1)
        return OB_EINVAL;
    ob_mailer *mj = calloc(1, sizeof *mj);
    if (!mj)
        return OB_ENOMEM;
    mj->o = *o;
    mj->t = t;
    mj->e = e;
    ob_kind_opts k = {
        .timeout_ms = o->timeout_ms,
        .max_attempts = 1000, /* the lifetime decides when to give up */
        .backoff = {.base_ms = o->retry_min_ms, .factor = 2.0, .max_ms = o->retry_max_ms,
                    .jitter = 0.1},
    };
    int rc = ob_engine_register(e, OB_MAIL_KIND, handler, mj, &k);
    if (rc) {
        free(mj);
        return rc;
    }
    *out = mj;
    return 0;
}

void ob_mailer_free(ob_mailer *m) { free(m); }
