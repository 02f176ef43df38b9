/*
 * transport.c - what every transport shares: the URL that names one, the
 * interface (transport_ops), and what a reply means for a recipient.
 *
 * Reply policy (ob_mail_reply_state), as Postfix applies it to a relay:
 *   2xx          delivered: the relay took responsibility
 *   4xx, none    deferred: try again later (no reply = the connection, TLS
 *                or a timeout failed, and nothing was promised)
 *   5xx          bounced: the relay refused for good
 * Anything else a server might send (1xx, 3xx in the wrong place) is
 * treated as deferred: it promised nothing, and retrying is the safe side.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mail/mail.h"

void ob_transport_opts_init(ob_transport_opts *o)
{
    *o = (ob_transport_opts){
        .pool_size = 4,
        .max_per_session = 100,
        .connect_timeout_ms = 30000,
        .command_timeout_ms = 60000,
        .data_timeout_ms = 120000,
    };
}

ob_rcpt_state ob_mail_reply_state(const ob_mail_reply *r)
{
    if (r->code >= 200 && r->code < 300)
        return OB_RCPT_DELIVERED;
    if (r->code >= 500 && r->code < 600)
        return OB_RCPT_BOUNCED;
    return OB_RCPT_DEFERRED;
}

const char *ob_rcpt_state_name(ob_rcpt_state s)
{
    static const char *const names[OB_RCPT_STATES] = {"pending", "delivered", "deferred",
                                                      "bounced", "suppressed"};
    return s >= OB_RCPT_PENDING && s < OB_RCPT_STATES ? names[s] : "unknown";
}

bool ob_mail_reply_hard(const ob_mail_reply *r)
{
    if (r->code < 500 || r->code > 599)
        return false;
    const char *e = r->enhanced;
    if (e[0] != '5' || e[1] != '.' || e[2] < '0' || e[2] > '9') /* absent: the code says it */
        return true;
    int subject = atoi(e + 2);
    return subject == 0 || subject == 1 || subject == 2 || subject == 4;
}

void obi_mail_reply_set(ob_mail_reply *r, int code, const char *enhanced, const char *fmt, ...)
{
    r->code = code;
    snprintf(r->enhanced, sizeof r->enhanced, "%s", enhanced ? enhanced : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
}

/* ---- URLs ---- */

/* Percent-decode n bytes of s into out[cap]; false if malformed, too long
 * or it decodes to a control character. */
static bool unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = ob_hex_digit(s[i + 1]), lo = ob_hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || w + 1 >= cap)
            return false;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    return true;
}

#define URL_ERR(...) obi_problem(why, OB_EINVAL, "url", __VA_ARGS__)

/* smtp://[user[:pass]@]host[:port][?starttls=no] into *u. */
static int parse_smtp(const char *url, smtp_target *u, ob_problem *why)
{
    *u = (smtp_target){.port = 587, .starttls = true};
    const char *p = url + strlen("smtp://");
    const char *q = strchr(p, '?');
    const char *end = q ? q : p + strlen(p);
    const char *at = memrchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *ue = colon ? colon : at;
        if (!unescape(p, (size_t)(ue - p), u->user, sizeof u->user) ||
            (colon && !unescape(colon + 1, (size_t)(at - colon - 1), u->pass, sizeof u->pass)))
            return URL_ERR("the user or password is malformed (percent-encode :@/?%%)");
        if (!u->user[0])
            return URL_ERR("the user is empty");
        p = at + 1;
    }
    if (*p == '[')
        return URL_ERR("IPv6 literals are not supported: give a host name");
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *he = colon ? colon : end;
    if (he == p || (size_t)(he - p) >= sizeof u->host)
        return URL_ERR("the host is missing or too long");
    for (const char *c = p; c < he; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-'))
            return URL_ERR("the host has a character a host name cannot");
    memcpy(u->host, p, (size_t)(he - p));
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e != end || port < 1 || port > 65535)
            return URL_ERR("the port must be 1-65535");
        u->port = (int)port;
    }
    if (q) {
        if (strcmp(q, "?starttls=no") && strcmp(q, "?starttls=yes"))
            return URL_ERR("the only option is ?starttls=no (or =yes, the default)");
        u->starttls = strcmp(q, "?starttls=no") != 0;
    }
    return 0;
}

int ob_transport_open(const char *url, const ob_transport_opts *o, ob_transport **out,
                      ob_problem *why)
{
    ob_mail_init();
    ob_transport *t = calloc(1, sizeof *t);
    if (!t)
        return obi_problem(why, OB_ENOMEM, "", "out of memory");
    if (o)
        t->o = *o;
    else
        ob_transport_opts_init(&t->o);
    if (t->o.pool_size < 1 || t->o.pool_size > 256 || t->o.max_per_session < 1 ||
        t->o.max_per_session > 10000 || t->o.connect_timeout_ms < 1 ||
        t->o.command_timeout_ms < 1 || t->o.data_timeout_ms < 1) {
        free(t);
        return obi_problem(why, OB_EINVAL, "opts", "transport options out of range (pool 1-256, per session 1-10000, "
                       "timeouts > 0)");
    }
    int rc;
    if (strncmp(url, "file:", 5) == 0) {
        snprintf(t->name, sizeof t->name, "%s", url);
        rc = obi_file_transport_open(t, url + 5, why);
    } else if (strncmp(url, "smtp://", 7) == 0) {
        smtp_target u;
        rc = parse_smtp(url, &u, why);
        if (!rc && t->o.password) { /* kept out of the URL, and so out of `ps` */
            if (!u.user[0] || u.pass[0] || strlen(t->o.password) >= sizeof u.pass)
                rc = obi_problem(why, OB_EINVAL, "password", !u.user[0] ? "a password needs a user in the URL "
                                          "(smtp://USER@host)"
                             : u.pass[0] ? "give the password in the URL or apart, "
                                           "not both"
                                         : "the SMTP password is too long");
            else
                snprintf(u.pass, sizeof u.pass, "%s", t->o.password);
        }
        t->o.password = NULL; /* not kept: the target holds it now */
        if (!rc) {
            snprintf(t->name, sizeof t->name, "smtp://%s%s%s:%d%s", u.user, u.user[0] ? "@" : "",
                     u.host, u.port, u.starttls ? "" : "?starttls=no");
            rc = obi_smtp_transport_open(t, &u, why);
        }
        memset(&u, 0, sizeof u); /* the password */
    } else if (strncmp(url, "smtps://", 8) == 0) {
        rc = URL_ERR("smtps:// (implicit TLS, port 465) is not supported: libesmtp "
                     "speaks STARTTLS only; use smtp://HOST:587");
    } else {
        rc = URL_ERR("give file:DIR or smtp://[user:pass@]host[:port][?starttls=no]");
    }
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

const char *ob_transport_name(const ob_transport *t) { return t->name; }

int ob_transport_send(ob_transport *t, const ob_envelope *env, ob_mail_reply *replies,
                      int64_t deadline_ms)
{
    if (!env->from || !env->data || !env->nrcpts || !env->rcpts)
        return OB_EINVAL;
    for (size_t i = 0; i < env->nrcpts; i++)
        obi_mail_reply_set(&replies[i], 0, NULL, "not attempted");
    return t->ops->send(t, env, replies, deadline_ms);
}

void ob_transport_close(ob_transport *t)
{
    if (!t)
        return;
    t->ops->close(t);
    free(t);
}
