/*
 * outbox/mailjob.h - mail as a job: the "mail.send" job kind, which
 * delivers a stored message through a transport and keeps each recipient's
 * outcome, and the calls that enqueue a message and read that outcome.
 *
 * This is what outboxd's /v1/messages is made of, usable from any C
 * program that embeds the engine:
 *
 *   ob_mail_job_register   mail.send on an engine, through a transport
 *   ob_mail_enqueue        a validated message becomes a durable job
 *   ob_mail_status_get     each recipient's state and the relay's reply
 *
 * A message job behaves like Postfix's queue: each attempt sends only to
 * the recipients still pending or deferred (a 4xx or no reply); the others
 * keep the reply that made them final (2xx delivered, 5xx bounced).
 *
 *   some recipient deferred, lifetime left    retried after the backoff
 *                                             (retry_min doubling to retry_max)
 *     ... with 421 or 4.7.x (slow down)       and the whole queue held for
 *                                             retry_min (ob_ctx_retry_hold)
 *   some deferred, lifetime spent             they become bounced ("gave up")
 *   nobody deferred, someone delivered        completed
 *   nobody deferred, nobody delivered         discarded (all bounced)
 *
 * The payload is the message's stored form (ob_mail_to_json): its
 * Message-ID, Date and MIME boundaries are fixed at enqueue, so every
 * attempt sends the same bytes and a duplicate is recognisable. The outcome
 * of every recipient is stored with each attempt's answer, so a crash loses
 * at most the attempt in flight: delivery is at least once, never lost.
 *
 * Threads: as jobs.h. Call ob_mail_init() before anything here.
 */
#ifndef OUTBOX_MAILJOB_H
#define OUTBOX_MAILJOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/common.h"
#include "outbox/jobs.h"
#include "outbox/mail.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_MAIL_KIND "mail.send" /* the job kind */
#define OB_MAIL_QUEUE "mail"     /* the queue ob_mail_enqueue uses by default */

typedef struct ob_mail_job_opts {
    int64_t timeout_ms;   /* one attempt; default 10 minutes */
    int64_t retry_min_ms; /* first retry of a deferred recipient; default 300 s */
    int64_t retry_max_ms; /* retries at most this far apart; default 4000 s */
    int64_t lifetime_ms;  /* deferred this long after enqueue: bounced; default 5 days */
} ob_mail_job_opts;

/* Fill `o` with the defaults above (Postfix's). */
void ob_mail_job_opts_init(ob_mail_job_opts *o);

/* Make the engine's limits fit messages within `l` (NULL: the defaults of
 * ob_mail_limits_init): max_payload holds the
 * stored form of the largest message (attachments in base64), max_result
 * the outcome of every recipient. Only raises them. Call before
 * ob_engine_open. */
void ob_mail_job_engine_opts(ob_engine_opts *eo, const ob_mail_limits *l);

/* The registration: what the handler needs, and the counters of outcomes. */
typedef struct ob_mailer ob_mailer;

/* Register mail.send on `e`, delivering through `t`. `o` may be NULL for
 * the defaults; it is copied. The transport is borrowed: keep it open
 * until the engine is closed. On success *out owns the registration:
 * free it with ob_mailer_free() after ob_engine_close(). Returns 0,
 * OB_EINVAL (a bad option, or mail.send already registered) or OB_ENOMEM. */
int ob_mail_job_register(ob_engine *e, ob_transport *t, const ob_mail_job_opts *o,
                         ob_mailer **out);
/* NULL is a no-op. */
void ob_mailer_free(ob_mailer *m);

/* Recipients' outcomes since registration, indexed by ob_rcpt_state: each
 * attempt's reply per recipient (delivered, deferred, bounced), and the
 * recipients that bounced for being deferred too long. out[0] is 0. */
void ob_mailer_outcomes(const ob_mailer *m, uint64_t out[4]);

/* ---- enqueue -------------------------------------------------------- */

/* Prepare the job that sends `m`: j->kind is OB_MAIL_KIND, j->queue
 * OB_MAIL_QUEUE unless already set, j->payload the message's stored form
 * and j->terms what the job can be found by (each recipient's address and
 * the Message-ID without its angle brackets: ob_list_filter.term), both
 * in *payload (malloc'd: free it after the enqueue). The other members of *j (run_at_ms, priority, unique_key, meta ...) are the
 * caller's and left as they are. Enqueue it with ob_enqueue or
 * ob_enqueue_async. Returns 0 or OB_ENOMEM (then *payload is NULL). */
int ob_mail_job_new(const ob_mail *m, ob_new_job *j, char **payload);

/* Enqueue `m` and wait until it is durable, as ob_enqueue does. `tmpl`
 * (NULL: none) gives the job's other members, see ob_mail_job_new. *id and
 * *existed as for ob_enqueue. Returns 0 or ob_enqueue's errors. */
int ob_mail_enqueue(ob_engine *e, const ob_mail *m, const ob_new_job *tmpl, ob_id *id,
                    bool *existed);

/* Validate `msg` (ob_mail_parse with OB_MAIL_REQUEST and `l`; NULL: the
 * defaults) and enqueue it as ob_mail_enqueue does. Returns 0; OB_EINVAL or
 * OB_ETOOBIG with *p naming the member (p may be NULL); or an enqueue
 * error (then *p names "" and says which). */
int ob_mail_enqueue_json(ob_engine *e, const json_t *msg, const ob_mail_limits *l, ob_id *id,
                         ob_problem *p);

/* ---- did it happen? ------------------------------------------------- */

/* One recipient of a message job. */
typedef struct ob_mail_rcpt_status {
    const char *address;   /* as in the envelope (punycode domain) */
    const char *type;      /* "to", "cc" or "bcc" */
    ob_rcpt_state state;   /* OB_RCPT_PENDING until an attempt reached it */
    ob_mail_reply reply;   /* the last reply (code 0 and "" while pending) */
    int attempts;          /* attempts that tried this recipient */
    int64_t updated_at_ms; /* when the reply came; 0 while pending */
} ob_mail_rcpt_status;

/* A message job's outcome. One allocation: free it with
 * ob_mail_status_free(); the strings live in it. */
typedef struct ob_mail_status {
    const char *message_id; /* "<...@...>" */
    size_t n;
    ob_mail_rcpt_status *rcpts; /* in envelope order */
} ob_mail_status;

/* Read the outcome of the message job `j` (a snapshot from ob_job_get or
 * ob_job_wait): from its result once an attempt ran, else every recipient
 * pending. On success *out is owned by the caller. Returns 0, OB_EINVAL
 * (j is not a message job) or OB_ENOMEM. */
int ob_mail_status_get(const ob_job *j, ob_mail_status **out);
/* The message a mail.send job sends, as MIME (ob_mail_build of its stored
 * payload; j must have its payload: ob_job_get): *out malloc'd, the
 * caller's, *len bytes. Returns 0, OB_EINVAL (not a message job) or
 * OB_ENOMEM. */
int ob_mail_job_raw(const ob_job *j, char **out, size_t *len);
/* NULL is a no-op. */
void ob_mail_status_free(ob_mail_status *s);

#ifdef __cplusplus
}
#endif
#endif
