/*
 * mail.h - what the files of src/mail share (the public side is
 * include/outbox/mail.h). The files:
 *
 *   address.c    one address: parsed by GMime, domain to punycode (libidn2)
 *   message.c    the message: JSON in and out, validation, limits
 *   mime.c       the message as MIME, built by GMime
 *   transport.c  the transport interface, URLs, reply states
 *   file.c       the file: transport (.eml files)
 *   smtp.c       the smtp: transport (libesmtp, connections shared)
 */
#ifndef OB_MAIL_INT_H
#define OB_MAIL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "outbox/mail.h"

/* ---- address.c ---- */

#define MAIL_ADDR_MAX 254 /* RFC 5321: a path is at most 256 with its <> */

typedef struct mail_addr {
    char *name; /* display name, UTF-8, or NULL; owned */
    char *addr; /* local@domain, ASCII (domain in punycode, lower case); owned */
} mail_addr;

/* Parse one address, "Name <local@domain>" or "local@domain". Returns 0,
 * or OB_EINVAL / OB_ENOMEM with *why (static storage). */
int obi_mail_addr_parse(const char *s, mail_addr *out, const char **why);
void obi_mail_addr_clear(mail_addr *a);
/* Replace a's display name by `name` ("" for none), taken literally (no
 * RFC 2047 decoding). Returns 0, or OB_EINVAL / OB_ENOMEM with *why. */
int obi_mail_addr_set_name(mail_addr *a, const char *name, const char **why);

/* Whether n bytes of s may become a header's value: valid UTF-8 with no
 * control character but TAB (so no CR, LF or NUL). */
bool obi_mail_text_ok(const char *s, size_t n);

/* ---- message.c ---- */

typedef struct mail_header {
    char *name, *value;
} mail_header;

typedef struct mail_attachment {
    char *filename, *content_type;
    unsigned char *data;
    size_t len;
} mail_attachment;

enum { MAIL_TO, MAIL_CC, MAIL_BCC, MAIL_REPLY_TO, MAIL_LISTS };

struct ob_mail {
    mail_addr from;
    mail_addr *list[MAIL_LISTS];
    size_t nlist[MAIL_LISTS];
    char **rcpt;       /* the envelope: to, cc, bcc, without duplicates */
    int *rcpt_type;    /* MAIL_TO, MAIL_CC or MAIL_BCC */
    size_t nrcpt;
    char *subject, *text, *html; /* text, html: NULL when absent */
    mail_header *headers;
    size_t nheaders;
    mail_attachment *att;
    size_t natt;
    json_t *metadata, *tags; /* or NULL */
    char *message_id;        /* "<...@...>" */
    int64_t date_ms;
    char boundary[33];       /* random hex, the boundaries' unique part; "" in
                                messages stored before outbox 0.2 */
    char *dkim;              /* the DKIM-Signature field's value (folded, CRLF
                                inside), made once at acceptance (ob_mail_sign);
                                NULL: unsigned */
};

/* ---- transport.c ---- */

typedef struct transport_ops {
    int (*send)(ob_transport *t, const ob_envelope *env, ob_mail_reply *replies,
                int64_t deadline_ms);
    void (*close)(ob_transport *t);
} transport_ops;

struct ob_transport {
    const transport_ops *ops;
    ob_transport_opts o;
    char name[640]; /* the URL without its password */
    void *impl;     /* the transport's own state */
};

/* Fill a reply: code, enhanced status (or NULL) and printf text. */
void obi_mail_reply_set(ob_mail_reply *r, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- message.c, attachment.c: parsing a message ---- */

/* The state of one ob_mail_parse. */
typedef struct parser {
    const ob_mail_limits *l;
    int source;
    ob_problem *p;
    size_t size; /* bodies and attachments so far */
    size_t nrcpt_given;
} parser;

/* Report what is wrong with the input and fail (obi_problem). */
#define fail(ps, rc, field, ...) obi_problem((ps)->p, rc, field, __VA_ARGS__)

/* A JSON string without NUL, or NULL (not a string, or it holds NUL). */
static inline const char *str(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

/* The "attachments" member v (NULL: none) into m. 0 or an error, with
 * ps->p filled in. */
int obi_mail_attachments(parser *ps, ob_mail *m, const json_t *v);

/* ---- file.c ---- */

/* The file: transport writing into dir (created if missing). */
int obi_file_transport_open(ob_transport *t, const char *dir, ob_problem *p);

/* ---- smtp.c ---- */

typedef struct smtp_target {
    char host[256];
    int port;
    char user[256], pass[256]; /* "" when not given */
    bool starttls;             /* required (true) or not used (false) */
} smtp_target;

int obi_smtp_transport_open(ob_transport *t, const smtp_target *u, ob_problem *p);

#endif
