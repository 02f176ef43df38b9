/*
 * smtp.c - the smtp: transport: messages to one relay through libesmtp,
 * with each recipient's reply.
 *
 * Sharing connections. A libesmtp session is one connection that carries a
 * list of messages and then quits. Callers of ob_transport_send (worker
 * threads, each blocked on its own message) put their message on a queue;
 * whoever finds fewer than pool_size sessions running becomes a runner: it
 * takes up to max_per_session queued messages (its own among them, or
 * older ones first), sends them all over one connection, hands every
 * message its replies, and wakes the waiters. So under load one connection
 * carries many messages, no more than pool_size connections are open, and
 * no thread exists only to send mail.
 *
 * Invariants (under tr->mu):
 *   Q1  an item is on the queue iff it is neither taken nor done;
 *   Q2  tr->sessions counts runners between taking items and finishing;
 *   Q3  an item's replies are written only by the runner that took it, and
 *       its owner reads them only after seeing done.
 *
 * Per recipient (collect()), in the order SMTP answers:
 *   MAIL FROM refused          every recipient gets that reply
 *   RCPT refused               that reply (4xx deferred, 5xx bounced)
 *   RCPT accepted              the reply to the end of DATA
 *   no reply at some stage     code 0 and what went wrong (deferred)
 *
 * TLS: STARTTLS is required unless the URL says starttls=no; the
 * certificate must verify against ca_file (or the system's CAs) and name
 * the host, else libesmtp refuses the session (its default for
 * SMTP_EV_INVALID_PEER_CERTIFICATE and _WRONG_PEER_CERTIFICATE), and every
 * recipient is deferred with the reason.
 */
#include <assert.h>
#include <stddef.h> /* before libesmtp.h, which uses size_t */
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <auth-client.h>
#include <libesmtp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mail/mail.h"

typedef struct item {
    const ob_envelope *env;
    ob_mail_reply *replies;
    bool taken, done;
    struct item *next;
    /* the runner's, while sending */
    smtp_message_t msg;
    smtp_recipient_t *rcpt;
} item;

typedef struct smtp_tr {
    smtp_target u;
    ob_transport_opts o;
    SSL_CTX *ssl;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a session ended */
    item *head, *tail;
    int sessions;
} smtp_tr;

/* ---- one session ---- */

/* The message body for libesmtp: all of it at once. libesmtp frees *ctx. */
static const char *message_cb(void **ctx, int *len, void *arg)
{
    item *it = arg;
    if (!*ctx && !(*ctx = calloc(1, sizeof(int))))
        return NULL;
    int *pos = *ctx;
    if (!len) { /* rewind */
        *pos = 0;
        return NULL;
    }
    if (*pos) {
        *len = 0;
        return NULL;
    }
    *pos = 1;
    *len = (int)it->env->len;
    return it->env->data;
}

typedef struct session_ctx {
    smtp_tr *tr;
    char tls_problem[160];
    bool in_auth;        /* the last command sent was AUTH (or its follow-up) */
    char auth_fail[200]; /* the relay's refusal of AUTH, or "" */
} session_ctx;

/* Watch the dialogue for one thing libesmtp does not report: a refused
 * AUTH. It would go on without it, and the relay would then refuse MAIL
 * FROM with a 5xx that bounces every recipient for a wrong password; a
 * failed AUTH defers them instead, as Postfix does. */
static void monitor_cb(const char *buf, int len, int writing, void *arg)
{
    session_ctx *c = arg;
    int n = len;
    while (n && (buf[n - 1] == '\r' || buf[n - 1] == '\n'))
        n--;
    bool secret = false;
    if (writing == SMTP_CB_WRITING) {
        if (len >= 5 && strncmp(buf, "AUTH ", 5) == 0)
            c->in_auth = true;
        else if (len >= 4 && (strncmp(buf, "MAIL", 4) == 0 || strncmp(buf, "QUIT", 4) == 0))
            c->in_auth = false;
        secret = c->in_auth;
    } else if (writing == SMTP_CB_READING && c->in_auth && len >= 3 &&
               (buf[0] == '4' || buf[0] == '5') && !c->auth_fail[0]) {
        snprintf(c->auth_fail, sizeof c->auth_fail, "AUTH refused by the relay: %.*s", n, buf);
    }
    if (writing != SMTP_CB_HEADERS) /* the dialogue, credentials hidden */
        OB_DEBUG("smtp %s %s %.*s", c->tr->u.host, writing == SMTP_CB_WRITING ? ">" : "<",
                 secret ? 8 : (n > 200 ? 200 : n), secret ? "(hidden)" : buf);
}

static void event_cb(smtp_session_t s, int event, void *arg, ...)
{
    (void)s;
    session_ctx *c = arg;
    switch (event) {
    case SMTP_EV_INVALID_PEER_CERTIFICATE:
        snprintf(c->tls_problem, sizeof c->tls_problem,
                 "TLS: the relay's certificate does not verify (give --smtp-ca?)");
        break;
    case SMTP_EV_NO_PEER_CERTIFICATE:
        snprintf(c->tls_problem, sizeof c->tls_problem, "TLS: the relay sent no certificate");
        break;
    case SMTP_EV_WRONG_PEER_CERTIFICATE:
        snprintf(c->tls_problem, sizeof c->tls_problem,
                 "TLS: the relay's certificate does not name %.100s", c->tr->u.host);
        break;
    case SMTP_EV_EXTNA_STARTTLS:
        snprintf(c->tls_problem, sizeof c->tls_problem,
                 "TLS: the relay does not offer STARTTLS, which is required (or ?starttls=no)");
        break;
    default:
        break;
    }
}

/* Why OpenSSL refused the relay's certificate during this thread's
 * handshake (the runner's: a session runs on one thread), or "". */
static _Thread_local char verify_failure[160];

static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok && !verify_failure[0])
        snprintf(verify_failure, sizeof verify_failure,
                 "TLS: the relay's certificate does not verify: %s (give --smtp-ca?)",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
    return ok;
}

/* libesmtp asks for the user and password: from the URL. */
static int auth_cb(auth_client_request_t req, char **result, int fields, void *arg)
{
    smtp_tr *tr = arg;
    for (int i = 0; i < fields; i++) {
        if (req[i].flags & AUTH_USER)
            result[i] = tr->u.user;
        else if (req[i].flags & AUTH_PASS)
            result[i] = tr->u.pass;
        else
            result[i] = ""; /* realm: none */
    }
    return 1;
}

static void set_timeouts(smtp_session_t s, const ob_transport_opts *o)
{
    const int f = Timeout_OVERRIDE_RFC2822_MINIMUM;
    smtp_set_timeout(s, Timeout_GREETING | f, (long)o->connect_timeout_ms); /* milliseconds */
    smtp_set_timeout(s, Timeout_ENVELOPE | f, (long)o->command_timeout_ms);
    smtp_set_timeout(s, Timeout_DATA | f, (long)o->command_timeout_ms);
    smtp_set_timeout(s, Timeout_TRANSFER | f, (long)o->data_timeout_ms);
    smtp_set_timeout(s, Timeout_DATA2 | f, (long)o->data_timeout_ms);
}

/* An RFC 3463 code at the start of the text ("4.3.0 ..."), whose class
 * agrees with the reply's: libesmtp parses it only when the server
 * advertises ENHANCEDSTATUSCODES, but many send it anyway. Its length, or 0. */
static size_t text_enhanced(const char *t, int code, char *out, size_t cap)
{
    int a, b, c, n = 0;
    if (sscanf(t, "%1d.%3d.%3d%n", &a, &b, &c, &n) != 3 || a != code / 100 ||
        (t[n] != ' ' && t[n] != '\0'))
        return 0;
    snprintf(out, cap, "%d.%d.%d", a, b, c);
    return (size_t)n;
}

static void copy_status(ob_mail_reply *r, const smtp_status_t *st)
{
    char enh[16] = "";
    const char *t = st->text ? st->text : "";
    if (st->enh_class)
        snprintf(enh, sizeof enh, "%d.%d.%d", st->enh_class, st->enh_subject, st->enh_detail);
    else
        text_enhanced(t, st->code, enh, sizeof enh);
    size_t n = strlen(t);
    while (n && (t[n - 1] == '\n' || t[n - 1] == '\r'))
        n--;
    obi_mail_reply_set(r, st->code, enh, "%.*s", (int)n, t);
    for (char *p = r->text; *p; p++) /* a multi-line reply: one line */
        if (*p == '\r' || *p == '\n')
            *p = ' ';
}

/* Each recipient's reply for a message of a finished session. */
static void collect(item *it, const session_ctx *c, const char *trouble)
{
    const smtp_status_t *mail = smtp_reverse_path_status(it->msg);
    const smtp_status_t *data = smtp_message_transfer_status(it->msg);
    for (size_t i = 0; i < it->env->nrcpts; i++) {
        ob_mail_reply *r = &it->replies[i];
        const smtp_status_t *rc = it->rcpt[i] ? smtp_recipient_status(it->rcpt[i]) : NULL;
        if (c->auth_fail[0])
            obi_mail_reply_set(r, 0, NULL, "%s", c->auth_fail);
        else if (mail && mail->code && (mail->code < 200 || mail->code >= 300))
            copy_status(r, mail);
        else if (rc && rc->code && (rc->code < 200 || rc->code >= 300))
            copy_status(r, rc);
        else if (rc && rc->code && data && data->code >= 200 && data->code != 354)
            copy_status(r, data);
        else
            obi_mail_reply_set(r, 0, NULL, "%s", trouble);
    }
}

/* The session's failure as a sentence, when it had one. */
static void trouble_text(const session_ctx *c, char *out, size_t cap)
{
    if (verify_failure[0] || c->tls_problem[0]) {
        snprintf(out, cap, "%s", verify_failure[0] ? verify_failure : c->tls_problem);
        return;
    }
    char buf[128];
    int e = smtp_errno();
    const char *why = e ? smtp_strerror(e, buf, sizeof buf) : NULL;
    snprintf(out, cap, "no reply from the relay %.100s:%d: %.120s", c->tr->u.host, c->tr->u.port,
             why ? why : "the session ended early");
}

/* Send the taken items over one connection; fill their replies. */
static void run_session(smtp_tr *tr, item **batch, int n)
{
    session_ctx c = {.tr = tr};
    smtp_session_t s = smtp_create_session();
    auth_context_t auth = NULL;
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%d", tr->u.host, tr->u.port);
    bool ok = s && smtp_set_server(s, hostport) && smtp_set_eventcb(s, event_cb, &c) &&
              smtp_set_monitorcb(s, monitor_cb, &c, 0);
    if (ok && tr->o.helo)
        ok = smtp_set_hostname(s, tr->o.helo);
    if (ok) {
        set_timeouts(s, &tr->o);
        smtp_starttls_enable(s, tr->u.starttls ? Starttls_REQUIRED : Starttls_DISABLED);
        if (tr->u.starttls)
            ok = smtp_starttls_set_ctx(s, tr->ssl);
    }
    if (ok && tr->u.user[0]) {
        auth = auth_create_context();
        ok = auth && auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0) &&
             auth_set_interact_cb(auth, auth_cb, tr) && smtp_auth_set_context(s, auth);
    }
    for (int i = 0; ok && i < n; i++) {
        item *it = batch[i];
        it->rcpt = calloc(it->env->nrcpts, sizeof *it->rcpt);
        ok = it->rcpt && (it->msg = smtp_add_message(s)) &&
             smtp_set_reverse_path(it->msg, it->env->from) &&
             smtp_set_messagecb(it->msg, message_cb, it);
        for (size_t k = 0; ok && k < it->env->nrcpts; k++)
            ok = (it->rcpt[k] = smtp_add_recipient(it->msg, it->env->rcpts[k])) != NULL;
    }
    verify_failure[0] = '\0';
    int started = ok ? smtp_start_session(s) : 0;
    OB_DEBUG("smtp %s: a session of %d message(s) ended (%s, smtp_errno %d)", tr->u.host, n,
             started ? "ran" : "failed", smtp_errno());
    char trouble[256];
    if (ok)
        trouble_text(&c, trouble, sizeof trouble);
    else
        snprintf(trouble, sizeof trouble, "cannot set up an SMTP session (out of memory?)");
    for (int i = 0; i < n; i++) {
        if (batch[i]->msg)
            collect(batch[i], &c, trouble);
        else
            for (size_t k = 0; k < batch[i]->env->nrcpts; k++)
                obi_mail_reply_set(&batch[i]->replies[k], 0, NULL, "%s", trouble);
        free(batch[i]->rcpt);
    }
    if (s)
        smtp_destroy_session(s);
    if (auth)
        auth_destroy_context(auth);
}

/* ---- the queue ---- */

/* Q1 and Q2, checked at each queue operation in debug builds (under
 * tr->mu): every queued item is untaken and not done, the tail is the
 * last, and sessions stay within 0..pool_size. */
static void check_queue(const smtp_tr *tr)
{
#ifndef NDEBUG
    const item *last = NULL;
    for (const item *it = tr->head; it; it = it->next) {
        assert(!it->taken && !it->done); /* Q1 */
        last = it;
    }
    assert(tr->tail == last);                                      /* Q1 */
    assert(tr->sessions >= 0 && tr->sessions <= tr->o.pool_size); /* Q2 */
#else
    (void)tr;
#endif
}

/* Take up to max_per_session items off the queue (Q1, Q2), send them, and
 * mark them done. Called and returns with tr->mu held. */
static void run(smtp_tr *tr)
{
    int n = 0, cap = tr->o.max_per_session;
    item *one, **batch = malloc((size_t)cap * sizeof *batch);
    if (!batch) { /* out of memory: one at a time still works */
        batch = &one;
        cap = 1;
    }
    while (tr->head && n < cap) {
        item *it = tr->head;
        tr->head = it->next;
        it->taken = true;
        batch[n++] = it;
    }
    if (!tr->head)
        tr->tail = NULL;
    tr->sessions++;
    check_queue(tr);
    pthread_mutex_unlock(&tr->mu);
    run_session(tr, batch, n);
    pthread_mutex_lock(&tr->mu);
    for (int i = 0; i < n; i++)
        batch[i]->done = true;
    tr->sessions--;
    check_queue(tr);
    pthread_cond_broadcast(&tr->cv);
    if (batch != &one)
        free(batch);
}

/* Remove an item nobody took (Q1). */
static void unqueue(smtp_tr *tr, item *it)
{
    item **pp = &tr->head, *prev = NULL;
    while (*pp && *pp != it) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = it->next;
        if (tr->tail == it)
            tr->tail = prev;
    }
    check_queue(tr);
}

static int smtp_send(ob_transport *t, const ob_envelope *env, ob_mail_reply *replies,
                     int64_t deadline_ms)
{
    smtp_tr *tr = t->impl;
    item it = {.env = env, .replies = replies};
    pthread_mutex_lock(&tr->mu);
    if (tr->tail)
        tr->tail->next = &it;
    else
        tr->head = &it;
    tr->tail = &it;
    check_queue(tr);
    while (!it.done) {
        if (!it.taken && tr->sessions < tr->o.pool_size) {
            run(tr);
            continue;
        }
        int64_t now = ob_now_ms();
        if (!it.taken && now >= deadline_ms) {
            unqueue(tr, &it);
            for (size_t i = 0; i < env->nrcpts; i++)
                obi_mail_reply_set(&replies[i], 0, NULL,
                               "timed out waiting for a connection to the relay "
                               "(all %d in use)", tr->o.pool_size);
            break;
        }
        int64_t wait = it.taken ? 1000 : deadline_ms - now;
        struct timespec ts = ob_mono_deadline(wait > 1000 ? 1000 : wait);
        pthread_cond_timedwait(&tr->cv, &tr->mu, &ts);
    }
    pthread_mutex_unlock(&tr->mu);
    return 0;
}

static void smtp_close(ob_transport *t)
{
    smtp_tr *tr = t->impl;
    pthread_mutex_lock(&tr->mu);
    while (tr->sessions > 0 || tr->head)
        pthread_cond_wait(&tr->cv, &tr->mu);
    pthread_mutex_unlock(&tr->mu);
    pthread_mutex_destroy(&tr->mu);
    pthread_cond_destroy(&tr->cv);
    SSL_CTX_free(tr->ssl);
    memset(&tr->u, 0, sizeof tr->u); /* the password */
    free(tr);
}

static const transport_ops ops = {.send = smtp_send, .close = smtp_close};

static pthread_once_t auth_once = PTHREAD_ONCE_INIT;
static void auth_init(void) { auth_client_init(); }

static SSL_CTX *tls_context(const ob_transport_opts *o, ob_problem *p)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        obi_problem(p, OB_EINVAL, "", "cannot make a TLS context");
        return NULL;
    }
    /* TLS 1.2 only. libesmtp 1.1 stalls under TLS 1.3: after the handshake
     * it waits for the relay with nothing to read (the relay's post-handshake
     * session tickets wake it, no reply follows), times out, and drops the
     * session. Measured against Postfix and aiosmtpd: 2 to 11 sessions in 12
     * lost with 1.3, none with 1.2. TLS 1.2 with its default ciphers is
     * sound (RFC 8996 retires only 1.0 and 1.1). */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb); /* libesmtp checks the host name */
    int ok = o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)
                        : SSL_CTX_set_default_verify_paths(ctx);
    if (!ok) {
        obi_problem(p, OB_EINVAL, "ca_file", "%s: cannot load it as PEM certificates",
                    o->ca_file ? o->ca_file : "(the system's)");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int obi_smtp_transport_open(ob_transport *t, const smtp_target *u, ob_problem *p)
{
    pthread_once(&auth_once, auth_init);
    smtp_tr *tr = calloc(1, sizeof *tr);
    if (!tr)
        return obi_problem(p, OB_ENOMEM, "", "out of memory");
    tr->u = *u;
    tr->o = t->o;
    if (u->starttls && !(tr->ssl = tls_context(&t->o, p))) {
        free(tr);
        return OB_EINVAL;
    }
    if (!u->starttls && u->user[0])
        ob_logf(OB_LOG_WARN, "smtp: AUTH without TLS: the password crosses the network in clear");
    pthread_mutex_init(&tr->mu, NULL);
    ob_cond_init_mono(&tr->cv);
    t->ops = &ops;
    t->impl = tr;
    return 0;
}
