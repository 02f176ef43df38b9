/*
 * mail_send.h - the mail.send job kind (see mail_send.c) and the
 * /v1/messages endpoints (messages_api.c).
 */
#ifndef OB_API_MAIL_SEND_H
#define OB_API_MAIL_SEND_H

#include <jansson.h>

#include "outbox/jobs.h"
#include "outbox/mail.h"

typedef struct ms_opts {
    ob_transport *transport;      /* borrowed for the engine's life */
    int64_t timeout_ms;           /* per attempt */
    int64_t retry_min_ms;         /* first retry after (Postfix: 300 s) */
    int64_t retry_max_ms;         /* retries at most this far apart (Postfix: 4000 s) */
    int64_t lifetime_ms;          /* deferred this long: bounced (Postfix: 5 days) */
} ms_opts;

/* The engine's max_result that holds the outcome of max_recipients
 * recipients (at least 64 KiB, at most 16 MiB). */
size_t ms_result_max(int max_recipients);
/* Recipient outcomes since start, indexed by ob_rcpt_state: each attempt's
 * reply per recipient (delivered, deferred, bounced), and recipients that
 * bounced for being deferred too long. */
void ms_outcomes(uint64_t out[4]);
/* Register mail.send. */
int ms_register(ob_engine *e, const ms_opts *o);

/* The recipients of a mail.send job as the API shows them: from its result
 * once an attempt ran, else every envelope recipient "pending". A new
 * reference, or NULL if the payload is not a stored message. */
json_t *ms_recipients(const ob_job *j);
/* Every envelope recipient of m, "pending" (a new reference; NULL on OOM). */
json_t *ms_pending(const ob_mail *m);

#endif
