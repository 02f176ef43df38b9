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
 *   nobody deferred, nobody delivered         discarded (all bounced or
 *                                             suppressed)
 *
 * Suppressions: before each attempt, a recipient still to be tried whose
 * address is on the suppression list (below) becomes `suppressed`, with no
 * SMTP attempt; a recipient whose reply is a hard bounce
 * (ob_mail_reply_hard: a 5xx about the address) is added to the list, so
 * later messages skip it. An address stays on the list until removed.
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
 * attempt's reply per recipient (delivered, deferred, bounced), the
 * recipients that bounced for being deferred too long, and those skipped
 * for being suppressed. out[0] is 0. */
void ob_mailer_outcomes(const ob_mailer *m, uint64_t out[OB_RCPT_STATES]);
/* Addresses this registration added to the suppression list (hard
 * bounces), and hard bounces it could not add (a store error, logged). */
void ob_mailer_suppressed(const ob_mailer *m, uint64_t *added, uint64_t *failed);

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

/* ---- suppressions: addresses not to send to ------------------------- */

/* The suppression list is a set of records (outbox/job.h) in the engine's
 * store, shared by every node: its key an address in normal form
 * (ob_mail_address_normal: domain case-folded, IDN in punycode), its tag
 * the reason. Every call takes an address in any form and compares it in
 * the normal one. */
#define OB_SUPPRESSIONS "mail.suppressions" /* the record set */
#define OB_SUPPRESSION_NOTE_MAX 500         /* bytes of an operator's note */

typedef enum ob_suppression_reason {
    OB_SUPPRESS_HARD_BOUNCE = 1, /* "hard_bounce": the relay said the address takes no mail */
    OB_SUPPRESS_COMPLAINT = 2,   /* "spam_complaint": the recipient complained */
    OB_SUPPRESS_UNSUBSCRIBE = 3, /* "unsubscribe": the recipient asked not to be mailed */
    OB_SUPPRESS_MANUAL = 4,      /* "manual": an operator said so */
} ob_suppression_reason;

/* The reason's name, or NULL for a value not above; and back (0 or
 * OB_EINVAL). */
const char *ob_suppression_reason_name(ob_suppression_reason r);
int ob_suppression_reason_parse(const char *name, ob_suppression_reason *out);

typedef struct ob_suppression {
    char address[OB_MAIL_ADDR_MAX + 1];  /* normal form */
    ob_suppression_reason reason;
    ob_mail_reply reply;                 /* a hard bounce: the relay's reply; else code 0, "" */
    ob_id job;                           /* a hard bounce: the message job it came from, */
    bool has_job;                        /* if has_job */
    char note[OB_SUPPRESSION_NOTE_MAX + 1]; /* an operator's words, or "" */
    int64_t created_at_ms;               /* on the list since */
    int64_t updated_at_ms;               /* last added again (a later bounce, a change) */
} ob_suppression;

/* Put s->address on the list (or update its entry: the first created_at
 * stays) with s->reason, s->reply, s->job and s->note; durable when it
 * returns. *created (may be NULL): whether it was not on the list. Returns
 * 0, OB_EINVAL (*p names "address", "reason", "note"; p may be NULL),
 * OB_ESHUTDOWN or a store error. */
int ob_suppression_add(ob_engine *e, const ob_suppression *s, bool *created, ob_problem *p);
/* Take `address` off the list (reactivate it): 0, OB_ENOTFOUND, OB_EINVAL
 * (*p says why) or a store error. */
int ob_suppression_remove(ob_engine *e, const char *address, ob_problem *p);
/* The list's entry for `address` into *out: 0, OB_ENOTFOUND, OB_EINVAL
 * (*p) or a store error. */
int ob_suppression_get(ob_engine *e, const char *address, ob_suppression *out, ob_problem *p);

/* Which entries a listing gives: in address order (bytewise). */
typedef struct ob_suppression_filter {
    const char *contains;         /* NULL: any; else addresses containing it
                                     (compared with the normal form: an
                                     "@Example.COM" matches "@example.com") */
    ob_suppression_reason reason; /* 0: any */
    const char *after;            /* NULL: from the first; else the last
                                     address of the page before */
    int limit;                    /* 1..OB_RECORD_LIST_MAX; 0: 100 */
} ob_suppression_filter;

/* *out (malloc'd: free(); NULL when none) gets *n entries; the page is
 * full when *n == limit. 0, OB_EINVAL or a store error. */
int ob_suppression_list(ob_engine *e, const ob_suppression_filter *f, ob_suppression **out,
                        size_t *n);
/* A record of the set OB_SUPPRESSIONS as an entry (for
 * ob_engine_subscribe_records): 0, or OB_EINVAL when r is not one. */
int ob_suppression_from_record(const ob_record *r, ob_suppression *out);

#ifdef __cplusplus
}
#endif
#endif
