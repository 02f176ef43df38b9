/*
 * outbox/mail.h - mail: a message validated from JSON, built as MIME with
 * GMime, and handed to a transport (SMTP through libesmtp, or .eml files)
 * that answers with each recipient's reply.
 *
 * The parts, each usable alone:
 *
 *   ob_mail_parse     JSON -> a validated message (ob_mail), or the field
 *                     that is wrong and why. Addresses are parsed by GMime,
 *                     domains converted to punycode by libidn2.
 *   ob_mail_to_json   the message's stored form: what a mail.send job
 *                     carries, with its Message-ID and Date fixed, so every
 *                     retry sends the same bytes.
 *   ob_mail_build     the message as MIME (CRLF lines), via GMime.
 *   ob_transport_*    delivery of built bytes to an envelope's recipients.
 *
 * Promise (header injection): no CR, LF or NUL from the input reaches a
 * header of a built message. ob_mail_parse refuses them in every value that
 * becomes a header (and every control character but TAB); GMime encodes
 * what remains. tests/fuzz/fuzz_mail.c checks the promise on the output.
 *
 * Threads: ob_mail_* functions are thread-safe on distinct messages;
 * ob_transport_send may be called from many threads at once.
 */
#ifndef OUTBOX_MAIL_H
#define OUTBOX_MAIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Call once before anything below, from one thread (it initialises GMime).
 * Idempotent. */
void ob_mail_init(void);

/* ---- the message ---------------------------------------------------- */

typedef struct ob_mail_limits {
    int max_recipients;     /* to + cc + bcc; default 50 */
    size_t max_subject;     /* bytes; default 998 */
    int max_headers;        /* custom headers; default 32 */
    int max_attachments;    /* default 20 */
    size_t max_attachment;  /* bytes of one attachment, decoded; default 10 MiB */
    size_t max_size;        /* text + html + attachments, decoded; default 10 MiB */
    int max_tags;           /* default 10 */
    size_t max_metadata;    /* bytes of metadata as JSON; default 2 KiB */
} ob_mail_limits;

void ob_mail_limits_init(ob_mail_limits *l);

typedef struct ob_mail ob_mail;

/* Where an ob_mail_parse input comes from. */
enum {
    OB_MAIL_REQUEST = 0, /* a client's: message_id and date are refused, then made */
    OB_MAIL_STORED = 1,  /* ob_mail_to_json's output: they are required */
};

/* Parse and validate `in`, a JSON object:
 *   from        "Name <addr>" or "addr" (required)
 *   to, cc, bcc a string or an array of them (at least one recipient)
 *   reply_to    a string or an array of them
 *   subject     string (required; may be empty)
 *   text, html  strings (at least one)
 *   headers     {name: value}: custom headers, safe names only
 *   attachments [{filename, content_type, content (base64)}]
 *   metadata    object, tags [string]: kept, never sent
 * Unknown members are refused. On success *out owns the message (free it
 * with ob_mail_free) and returns 0; else OB_EINVAL or OB_ETOOBIG with *p
 * filled in (p may be NULL). */
int ob_mail_parse(const json_t *in, int source, const ob_mail_limits *l, ob_mail **out,
                  ob_problem *p);
/* NULL is a no-op. */
void ob_mail_free(ob_mail *m);

/* The stored form (OB_MAIL_STORED): a new reference, or NULL on OOM. */
json_t *ob_mail_to_json(const ob_mail *m);

/* The envelope: the sender's address and every recipient's (to, cc, bcc in
 * that order; duplicates removed). Strings are borrowed from the message. */
const char *ob_mail_sender(const ob_mail *m);
size_t ob_mail_rcpt_count(const ob_mail *m);
const char *ob_mail_rcpt(const ob_mail *m, size_t i);
/* "to", "cc" or "bcc". */
const char *ob_mail_rcpt_type(const ob_mail *m, size_t i);
/* "<...@...>", borrowed. */
const char *ob_mail_message_id(const ob_mail *m);

/* Build the message as MIME text with CRLF line ends: *out is malloc'd and
 * owned by the caller, *len its length (it is also NUL-terminated).
 * Returns 0 or OB_ENOMEM. */
int ob_mail_build(const ob_mail *m, char **out, size_t *len);

/* ---- DKIM signing (RFC 6376; Ed25519 keys: RFC 8463) ---------------- */

/* Signing keys by domain. Made at start, then read by any thread. */
typedef struct ob_dkim ob_dkim;

/* An empty set of keys: *out is the caller's (ob_dkim_free). Returns 0 or
 * OB_ENOMEM. */
int ob_dkim_new(ob_dkim **out);
/* NULL is a no-op. */
void ob_dkim_free(ob_dkim *d);
/* Add the key that signs for `domain` (and the subdomains that have none of
 * their own) with `selector` (its public key is at
 * SELECTOR._domainkey.DOMAIN): `keyfile` is a PEM private key, RSA (1024
 * bits or more; 2048 is usual) or Ed25519, in a regular file only its
 * owner can read. Returns 0, or OB_EINVAL with *p (may be NULL) saying
 * what is wrong with it, naming the file. */
int ob_dkim_add(ob_dkim *d, const char *domain, const char *selector, const char *keyfile,
                ob_problem *p);
/* The same, from "DOMAIN:SELECTOR:KEYFILE" (outboxd's --dkim). */
int ob_dkim_add_spec(ob_dkim *d, const char *spec, ob_problem *p);
/* Sign `m` with the key of its From domain (or the nearest parent domain
 * with a key), relaxed/relaxed, over From, To, Cc, Reply-To, Subject, Date,
 * Message-ID, the MIME fields, In-Reply-To, References and the List-*
 * fields, From over-signed. The signature becomes part of the message: its
 * stored form keeps it, and ob_mail_build puts it first, so every attempt
 * sends the same signed bytes. Call it once, when the message is accepted;
 * a message signed already, or whose domain has no key, is left as it is.
 * *domain (may be NULL) gets the signing domain (borrowed from d), or NULL
 * when not signed. Returns 0, OB_ENOMEM or OB_EINVAL (the signer refused:
 * logged). */
int ob_mail_sign(ob_mail *m, const ob_dkim *d, const char **domain);

/* ---- delivery ------------------------------------------------------- */

/* A server's reply to one recipient. code 0: no reply (connection, TLS or
 * timeout trouble); `text` then says what happened. */
#define OB_MAIL_REPLY_MAX 512
typedef struct ob_mail_reply {
    int code;          /* 250, 451, 550, ...; 0 */
    char enhanced[16]; /* "2.0.0", or "" */
    char text[OB_MAIL_REPLY_MAX];
} ob_mail_reply;

typedef enum ob_rcpt_state {
    OB_RCPT_PENDING = 0,
    OB_RCPT_DELIVERED = 1, /* 2xx: the relay took responsibility */
    OB_RCPT_DEFERRED = 2,  /* 4xx or no reply: try again later */
    OB_RCPT_BOUNCED = 3,   /* 5xx, or deferred for too long: final */
    OB_RCPT_SUPPRESSED = 4, /* on the suppression list: not sent to; final */
} ob_rcpt_state;
#define OB_RCPT_STATES 5 /* the states above: an array indexed by them */

/* The state a reply puts a recipient in (never SUPPRESSED: that is
 * decided before sending, mailjob.h). */
ob_rcpt_state ob_mail_reply_state(const ob_mail_reply *r);
/* "pending", "delivered", "deferred", "bounced", "suppressed". */
const char *ob_rcpt_state_name(ob_rcpt_state s);
/* Whether a reply is a hard bounce, one that says the address itself will
 * not take mail: a 5xx whose enhanced status (RFC 3463) is absent or of
 * class 5.0, 5.1 (addressing), 5.2 (mailbox) or 5.4 (routing). The
 * classes that speak of the message or the sender, not the address, are
 * not: 5.3 (system: too big), 5.5 (protocol), 5.6 (content), 5.7
 * (policy, security). */
bool ob_mail_reply_hard(const ob_mail_reply *r);

/* ---- addresses ------------------------------------------------------ */

#define OB_MAIL_ADDR_MAX 254 /* bytes of an address (RFC 5321's path, less <>) */

/* The normal form outbox compares addresses in (the envelope's, and the
 * suppression list's keys): the local part as written (RFC 5321 lets a
 * mailbox's local part be case-sensitive), "@", the domain in lower-case
 * ASCII, an internationalised one in punycode (IDNA 2008, UTS #46
 * non-transitional): "Ann@Bücher.Example" -> "Ann@xn--bcher-kva.example".
 * `in` is "local@domain" or "Name <local@domain>"; `out` has room for
 * OB_MAIL_ADDR_MAX + 1. Returns 0, or OB_EINVAL (*p, may be NULL: field
 * "address" and why) or OB_ENOMEM. */
int ob_mail_address_normal(const char *in, char *out, ob_problem *p);

typedef struct ob_transport ob_transport;

typedef struct ob_transport_opts {
    int pool_size;              /* SMTP connections at once; default 4 */
    int max_per_session;        /* messages sent over one connection; default 100 */
    int64_t connect_timeout_ms; /* and the greeting; default 30 s */
    int64_t command_timeout_ms; /* each envelope command; default 60 s */
    int64_t data_timeout_ms;    /* the message and the final reply; default 120 s */
    const char *ca_file;        /* PEM CA bundle for TLS; NULL: the system's */
    const char *helo;           /* EHLO name; NULL: the host's name */
    const char *password;       /* the SMTP password, when the URL names a user but
                                   no password (so it need not appear in a command
                                   line); NULL: the URL's. Read during open only */
} ob_transport_opts;

void ob_transport_opts_init(ob_transport_opts *o);

/* Open a transport:
 *   file:DIR                            each message written to DIR/NAME.eml
 *                                       (temp file, fsync, rename)
 *   smtp://[user:pass@]host[:port][?starttls=no]
 *                                       SMTP, port 587 by default, STARTTLS
 *                                       required unless starttls=no
 * User and password are percent-decoded; certificates are verified against
 * ca_file (or the system's store) and the host name. On success *out owns
 * the transport (ob_transport_close). Returns 0, or OB_EINVAL / OB_ENOMEM
 * with *p (may be NULL) naming "url", "password", "ca_file" or "opts" and
 * why. */
int ob_transport_open(const char *url, const ob_transport_opts *o, ob_transport **out,
                      ob_problem *p);

/* The URL without its password, for logs and /readyz. Borrowed. */
const char *ob_transport_name(const ob_transport *t);

/* What to send: the built message, its sender and the recipients to try
 * (all borrowed for the call). `name` is a file-safe name for the message
 * ([A-Za-z0-9._-], the file transport's file name). */
typedef struct ob_envelope {
    const char *from;
    const char *const *rcpts;
    size_t nrcpts;
    const char *data;
    size_t len;
    const char *name;
} ob_envelope;

/* Deliver `env` and fill replies[0..nrcpts) with each recipient's reply.
 * Blocks until the relay answered, failed, or deadline_ms (absolute, ms
 * since the epoch) passed. Messages sent from many threads at once share
 * connections (up to pool_size, max_per_session messages each). Returns 0
 * (every reply filled in: look at each) or OB_EINVAL. */
int ob_transport_send(ob_transport *t, const ob_envelope *env, ob_mail_reply *replies,
                      int64_t deadline_ms);

/* Waits for sends in progress. NULL is a no-op. */
void ob_transport_close(ob_transport *t);

#ifdef __cplusplus
}
#endif
#endif
