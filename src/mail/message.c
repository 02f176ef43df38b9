/*
 * message.c - a mail message: validated from the JSON a client sends, and
 * written back as the JSON a mail.send job stores (ob_mail_to_json), which
 * parses again to the same message.
 *
 * Everything that will become a header is checked here, before GMime sees
 * it: addresses (address.c), the subject, custom header names and values,
 * attachment file names and content types. None may hold a control
 * character but TAB (obi_mail_text_ok), so CR, LF and NUL cannot reach a
 * header. Bodies may hold any text; GMime encodes them. Every size and count
 * has a limit (ob_mail_limits); errors name the member that broke it.
 *
 * The stored form fixes what a retry must not change: message_id, date and
 * the MIME boundary are made once, at the first parse of a request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "mail/mail.h"

void ob_mail_limits_init(ob_mail_limits *l)
{
    *l = (ob_mail_limits){
        .max_recipients = 50,
        .max_subject = 998,
        .max_headers = 32,
        .max_attachments = 20,
        .max_attachment = 10u << 20,
        .max_size = 10u << 20,
        .max_tags = 10,
        .max_metadata = 2048,
    };
}

/* ---- addresses ---- */

/* "addr", "Name <addr>", or {"name": ..., "address": ...}. */
static int one_addr(parser *ps, const json_t *v, const char *field, mail_addr *out)
{
    const char *why, *s = str(v);
    int rc;
    if (s) {
        if ((rc = obi_mail_addr_parse(s, out, &why)))
            return fail(ps, rc, field, "%s", why);
        return 0;
    }
    if (!json_is_object(v))
        return fail(ps, OB_EINVAL, field, "an address: a string, or {\"name\", \"address\"}");
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m)
        if (strcmp(key, "name") && strcmp(key, "address"))
            return fail(ps, OB_EINVAL, field, "unknown member \"%.40s\" (name, address)", key);
    const char *addr = str(json_object_get(v, "address"));
    json_t *nv = json_object_get(v, "name");
    const char *name = str(nv);
    if (!addr)
        return fail(ps, OB_EINVAL, field, "\"address\" must be a string");
    if (nv && !name)
        return fail(ps, OB_EINVAL, field, "\"name\" must be a string");
    if ((rc = obi_mail_addr_parse(addr, out, &why)))
        return fail(ps, rc, field, "%s", why);
    if (out->name) {
        obi_mail_addr_clear(out);
        return fail(ps, OB_EINVAL, field, "\"address\" must be a bare address: put the name in \"name\"");
    }
    if (name && (rc = obi_mail_addr_set_name(out, name, &why))) {
        obi_mail_addr_clear(out);
        return fail(ps, rc, field, "%s", why);
    }
    return 0;
}

/* An address or an array of them, into m->list[which]. */
static int addr_list(parser *ps, ob_mail *m, const json_t *v, const char *name, int which)
{
    if (!v)
        return 0;
    bool many = json_is_array(v);
    size_t n = many ? json_array_size(v) : 1;
    if (which != MAIL_REPLY_TO) {
        ps->nrcpt_given += n;
        if (ps->nrcpt_given > (size_t)ps->l->max_recipients)
            return fail(ps, OB_ETOOBIG, name, "more than %d recipients in to, cc and bcc",
                        ps->l->max_recipients);
    } else if (n > 10) {
        return fail(ps, OB_ETOOBIG, name, "more than 10 addresses");
    }
    if (n == 0)
        return 0;
    if (!(m->list[which] = calloc(n, sizeof(mail_addr))))
        return fail(ps, OB_ENOMEM, name, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char field[48];
        snprintf(field, sizeof field, many ? "%s[%zu]" : "%s", name, i);
        int rc = one_addr(ps, many ? json_array_get(v, i) : v, field, &m->list[which][i]);
        if (rc)
            return rc;
        m->nlist[which] = i + 1;
    }
    return 0;
}

/* The envelope: to, cc, bcc in order, each address once. */
static int envelope(parser *ps, ob_mail *m)
{
    size_t n = m->nlist[MAIL_TO] + m->nlist[MAIL_CC] + m->nlist[MAIL_BCC];
    if (n == 0)
        return fail(ps, OB_EINVAL, "to", "at least one recipient (to, cc or bcc) is required");
    m->rcpt = calloc(n, sizeof *m->rcpt);
    m->rcpt_type = calloc(n, sizeof *m->rcpt_type);
    if (!m->rcpt || !m->rcpt_type)
        return fail(ps, OB_ENOMEM, "to", "out of memory");
    for (int t = MAIL_TO; t <= MAIL_BCC; t++)
        for (size_t i = 0; i < m->nlist[t]; i++) {
            char *a = m->list[t][i].addr;
            bool dup = false;
            for (size_t k = 0; k < m->nrcpt && !dup; k++)
                dup = strcmp(m->rcpt[k], a) == 0;
            if (!dup) {
                m->rcpt[m->nrcpt] = a;
                m->rcpt_type[m->nrcpt++] = t;
            }
        }
    return 0;
}

/* ---- text members ---- */

/* A string member: absent is fine unless required. `header`: it will be a
 * header, so control characters are refused. */
static int text(parser *ps, const json_t *in, const char *name, bool required, bool header,
                size_t max, char **out)
{
    json_t *v = json_object_get(in, name);
    if (!v) {
        if (required)
            return fail(ps, OB_EINVAL, name, "is required");
        return 0;
    }
    const char *s = str(v);
    if (!s)
        return fail(ps, OB_EINVAL, name, "must be a string without NUL characters");
    size_t n = strlen(s);
    if (n > max)
        return fail(ps, OB_ETOOBIG, name, "longer than %zu bytes", max);
    if (header && !obi_mail_text_ok(s, n))
        return fail(ps, OB_EINVAL, name, "must not hold control characters (CR, LF, ...)");
    if (!(*out = strdup(s)))
        return fail(ps, OB_ENOMEM, name, "out of memory");
    return 0;
}

/* Header names a client may not set: the message's own structure, and
 * what the relay adds. */
static bool header_reserved(const char *n)
{
    static const char *const names[] = {
        "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
        "mime-version", "return-path", "received", "delivered-to", "received-spf",
        "authentication-results", "dkim-signature", NULL};
    for (int i = 0; names[i]; i++)
        if (strcasecmp(n, names[i]) == 0)
            return true;
    /* and what relays and verifiers write: a client's copy could pass for
     * theirs (ARC-Seal, ARC-Authentication-Results, ...) */
    return strncasecmp(n, "content-", 8) == 0 || strncasecmp(n, "resent-", 7) == 0 ||
           strncasecmp(n, "arc-", 4) == 0;
}

static bool header_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64 || !((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z')))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}

static int headers(parser *ps, ob_mail *m, const json_t *v)
{
    if (!v)
        return 0;
    if (!json_is_object(v))
        return fail(ps, OB_EINVAL, "headers", "must be an object of header: value");
    size_t n = json_object_size(v);
    if (n > (size_t)ps->l->max_headers)
        return fail(ps, OB_ETOOBIG, "headers", "more than %d headers", ps->l->max_headers);
    if (n && !(m->headers = calloc(n, sizeof *m->headers)))
        return fail(ps, OB_ENOMEM, "headers", "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        char field[96];
        snprintf(field, sizeof field, "headers.%.80s", key);
        if (!header_name_ok(key))
            return fail(ps, OB_EINVAL, field, "a header name is a letter, then letters, digits "
                                              "and hyphens (at most 64)");
        if (header_reserved(key))
            return fail(ps, OB_EINVAL, field, "this header is set by outbox, not by a client");
        for (size_t i = 0; i < m->nheaders; i++)
            if (strcasecmp(m->headers[i].name, key) == 0)
                return fail(ps, OB_EINVAL, field, "given twice (header names ignore case)");
        const char *s = str(val);
        if (!s)
            return fail(ps, OB_EINVAL, field, "must be a string");
        size_t len = strlen(s);
        if (len > 998)
            return fail(ps, OB_ETOOBIG, field, "longer than 998 bytes");
        if (!obi_mail_text_ok(s, len))
            return fail(ps, OB_EINVAL, field, "must not hold control characters (CR, LF, ...)");
        mail_header *h = &m->headers[m->nheaders];
        h->name = strdup(key);
        h->value = strdup(s);
        m->nheaders++;
        if (!h->name || !h->value)
            return fail(ps, OB_ENOMEM, field, "out of memory");
    }
    return 0;
}

/* ---- metadata, tags, message id ---- */

static int extras(parser *ps, ob_mail *m, const json_t *in)
{
    json_t *md = json_object_get(in, "metadata"), *tags = json_object_get(in, "tags");
    if (md) {
        if (!json_is_object(md))
            return fail(ps, OB_EINVAL, "metadata", "must be an object");
        char *s = json_dumps(md, JSON_COMPACT);
        size_t n = s ? strlen(s) : 0;
        free(s);
        if (n > ps->l->max_metadata)
            return fail(ps, OB_ETOOBIG, "metadata", "larger than %zu bytes as JSON",
                        ps->l->max_metadata);
        m->metadata = json_incref(md);
    }
    if (tags) {
        if (!json_is_array(tags) || json_array_size(tags) > (size_t)ps->l->max_tags)
            return fail(ps, OB_EINVAL, "tags", "an array of at most %d names", ps->l->max_tags);
        size_t i;
        json_t *t;
        json_array_foreach(tags, i, t) {
            const char *s = str(t);
            if (!s || !ob_name_valid(s)) {
                char field[48];
                snprintf(field, sizeof field, "tags[%zu]", i);
                return fail(ps, OB_EINVAL, field, "1-64 characters of [A-Za-z0-9._-]");
            }
        }
        m->tags = json_incref(tags);
    }
    return 0;
}

/* "<" 32 random hex "@" the sender's domain ">". */
static char *make_message_id(const char *from)
{
    unsigned char r[16];
    ob_random_bytes(r, sizeof r);
    const char *domain = strrchr(from, '@') + 1;
    size_t n = strlen(domain) + 40;
    char *s = malloc(n);
    if (!s)
        return NULL;
    char hex[33];
    snprintf(s, n, "<%s@%s>", ob_hex(r, sizeof r, hex), domain);
    return s;
}

/* 32 random hex digits: the MIME boundaries' unique part, made from fresh
 * random bytes when the message is accepted and stored with it (so every
 * retry builds the same bytes, and no client can know or choose it). */
static void make_boundary(char out[33])
{
    unsigned char r[16];
    ob_random_bytes(r, sizeof r);
    ob_hex(r, sizeof r, out);
}

static bool boundary_ok(const char *s)
{
    return s && strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* What make_message_id makes: "<", 32 hex, "@", a domain (at most 253), ">"
 * is at most 288 bytes; 300 leaves room for ids made by earlier versions. */
static bool message_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 5 || n > 300 || s[0] != '<' || s[n - 1] != '>' || !strchr(s, '@'))
        return false;
    for (size_t i = 1; i < n - 1; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '<' || s[i] == '>')
            return false;
    return true;
}

/* A stored DKIM-Signature value: printable ASCII, folded only as CRLF and
 * a tab or space (it goes into the message as it is). */
static bool dkim_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 10 || n > 4096 || strncmp(s, "v=1;", 4) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' && s[i + 1] == '\n' && (s[i + 2] == '\t' || s[i + 2] == ' '))
            i += 2;
        else if (c < 0x20 ? c != '\t' : c >= 0x7f)
            return false;
    }
    return true;
}

static int identity(parser *ps, ob_mail *m, const json_t *in)
{
    json_t *id = json_object_get(in, "message_id"), *date = json_object_get(in, "date"),
           *boundary = json_object_get(in, "boundary"), *dkim = json_object_get(in, "dkim");
    if (ps->source == OB_MAIL_REQUEST) {
        if (id || date || boundary || dkim)
            return fail(ps, OB_EINVAL, id ? "message_id" : date ? "date" : boundary ? "boundary" : "dkim",
                        "unknown member (outbox sets it)");
        m->message_id = make_message_id(m->from.addr);
        m->date_ms = ob_now_ms();
        make_boundary(m->boundary);
        return m->message_id ? 0 : fail(ps, OB_ENOMEM, "message_id", "out of memory");
    }
    /* Messages stored by outbox before 0.2 have no boundary: mime.c then
     * derives it from the Message-ID, as they were built. */
    if (boundary && !boundary_ok(json_string_value(boundary)))
        return fail(ps, OB_EINVAL, "boundary", "32 lower-case hex digits");
    if (boundary)
        memcpy(m->boundary, json_string_value(boundary), 33);
    if (dkim && (!json_is_string(dkim) || !dkim_ok(json_string_value(dkim))))
        return fail(ps, OB_EINVAL, "dkim", "a DKIM-Signature field's value");
    if (dkim && !(m->dkim = strdup(json_string_value(dkim))))
        return fail(ps, OB_ENOMEM, "dkim", "out of memory");
    const char *s = str(id);
    if (!s || !message_id_ok(s))
        return fail(ps, OB_EINVAL, "message_id", "\"<left@right>\" is required");
    if (!json_is_integer(date) || json_integer_value(date) <= 0)
        return fail(ps, OB_EINVAL, "date", "milliseconds since the epoch are required");
    m->date_ms = json_integer_value(date);
    m->message_id = strdup(s);
    return m->message_id ? 0 : fail(ps, OB_ENOMEM, "message_id", "out of memory");
}

/* ---- the whole ---- */

static const char *const members[] = {"from", "to", "cc", "bcc", "reply_to", "subject", "text",
                                      "html", "headers", "attachments", "metadata", "tags",
                                      "message_id", "date", "boundary", "dkim", NULL};

static int members_known(parser *ps, const json_t *in)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v) {
        int i = 0;
        while (members[i] && strcmp(members[i], key))
            i++;
        if (!members[i])
            return fail(ps, OB_EINVAL, key, "unknown member");
    }
    return 0;
}

static int parse(parser *ps, const json_t *in, ob_mail *m)
{
    static const char *const lists[MAIL_LISTS] = {"to", "cc", "bcc", "reply_to"};
    int rc;
    if (!json_is_object(in))
        return fail(ps, OB_EINVAL, "", "the message must be a JSON object");
    if ((rc = members_known(ps, in)))
        return rc;
    json_t *from = json_object_get(in, "from");
    if (!from)
        return fail(ps, OB_EINVAL, "from", "is required");
    if ((rc = one_addr(ps, from, "from", &m->from)))
        return rc;
    for (int t = 0; t < MAIL_LISTS; t++)
        if ((rc = addr_list(ps, m, json_object_get(in, lists[t]), lists[t], t)))
            return rc;
    if ((rc = envelope(ps, m)) ||
        (rc = text(ps, in, "subject", true, true, ps->l->max_subject, &m->subject)) ||
        (rc = text(ps, in, "text", false, false, ps->l->max_size, &m->text)) ||
        (rc = text(ps, in, "html", false, false, ps->l->max_size, &m->html)))
        return rc;
    if (!m->text && !m->html)
        return fail(ps, OB_EINVAL, "text", "give text, html, or both");
    ps->size += (m->text ? strlen(m->text) : 0) + (m->html ? strlen(m->html) : 0);
    if ((rc = headers(ps, m, json_object_get(in, "headers"))) ||
        (rc = obi_mail_attachments(ps, m, json_object_get(in, "attachments"))) ||
        (rc = extras(ps, m, in)) || (rc = identity(ps, m, in)))
        return rc;
    if (ps->size > ps->l->max_size)
        return fail(ps, OB_ETOOBIG, "", "the message is larger than %zu bytes (bodies and "
                                        "attachments, decoded)", ps->l->max_size);
    return 0;
}

int ob_mail_parse(const json_t *in, int source, const ob_mail_limits *l, ob_mail **out,
                  ob_problem *p)
{
    ob_mail_limits defaults;
    if (!l) {
        ob_mail_limits_init(&defaults);
        l = &defaults;
    }
    ob_mail_init();
    parser ps = {.l = l, .source = source, .p = p};
    ob_mail *m = calloc(1, sizeof *m);
    if (!m)
        return fail(&ps, OB_ENOMEM, "", "out of memory");
    int rc = parse(&ps, in, m);
    if (rc) {
        ob_mail_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void ob_mail_free(ob_mail *m)
{
    if (!m)
        return;
    obi_mail_addr_clear(&m->from);
    for (int t = 0; t < MAIL_LISTS; t++) {
        for (size_t i = 0; i < m->nlist[t]; i++)
            obi_mail_addr_clear(&m->list[t][i]);
        free(m->list[t]);
    }
    free(m->rcpt);
    free(m->rcpt_type);
    free(m->dkim);
    free(m->subject);
    free(m->text);
    free(m->html);
    for (size_t i = 0; i < m->nheaders; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    for (size_t i = 0; i < m->natt; i++) {
        free(m->att[i].filename);
        free(m->att[i].content_type);
        free(m->att[i].data);
    }
    free(m->att);
    json_decref(m->metadata);
    json_decref(m->tags);
    free(m->message_id);
    free(m);
}

/* ---- out ---- */

static json_t *addr_json(const mail_addr *a)
{
    return json_pack("{s:s, s:s*}", "address", a->addr, "name", a->name);
}

static char *b64_encode(const unsigned char *d, size_t n)
{
    char *s = malloc(OB_BASE64_LEN(n) + 1);
    if (s)
        ob_base64_encode(d, n, s);
    return s;
}

json_t *ob_mail_to_json(const ob_mail *m)
{
    static const char *const lists[MAIL_LISTS] = {"to", "cc", "bcc", "reply_to"};
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "from", addr_json(&m->from));
    for (int t = 0; t < MAIL_LISTS; t++) {
        if (!m->nlist[t])
            continue;
        json_t *a = json_array();
        for (size_t i = 0; i < m->nlist[t]; i++)
            json_array_append_new(a, addr_json(&m->list[t][i]));
        json_object_set_new(o, lists[t], a);
    }
    json_object_set_new(o, "subject", json_string(m->subject));
    if (m->text)
        json_object_set_new(o, "text", json_string(m->text));
    if (m->html)
        json_object_set_new(o, "html", json_string(m->html));
    if (m->nheaders) {
        json_t *h = json_object();
        for (size_t i = 0; i < m->nheaders; i++)
            json_object_set_new(h, m->headers[i].name, json_string(m->headers[i].value));
        json_object_set_new(o, "headers", h);
    }
    if (m->natt) {
        json_t *a = json_array();
        for (size_t i = 0; i < m->natt; i++) {
            char *b64 = b64_encode(m->att[i].data, m->att[i].len);
            json_array_append_new(a, json_pack("{s:s, s:s, s:s?}", "filename", m->att[i].filename,
                                               "content_type", m->att[i].content_type,
                                               "content", b64));
            free(b64);
        }
        json_object_set_new(o, "attachments", a);
    }
    if (m->metadata)
        json_object_set(o, "metadata", m->metadata);
    if (m->tags)
        json_object_set(o, "tags", m->tags);
    json_object_set_new(o, "message_id", json_string(m->message_id));
    json_object_set_new(o, "date", json_integer(m->date_ms));
    if (m->boundary[0])
        json_object_set_new(o, "boundary", json_string(m->boundary));
    if (m->dkim)
        json_object_set_new(o, "dkim", json_string(m->dkim));
    /* Any member that failed to be made (out of memory) is missing, and
     * the stored form would not parse: refuse it here instead. */
    size_t want = 4 + (m->boundary[0] != '\0') + (m->dkim != NULL) + (m->text != NULL) + (m->html != NULL) + (m->nheaders > 0) + (m->natt > 0) +
                  (m->metadata != NULL) + (m->tags != NULL);
    for (int t = 0; t < MAIL_LISTS; t++)
        want += m->nlist[t] > 0;
    if (json_object_size(o) != want) {
        json_decref(o);
        return NULL;
    }
    return o;
}

const char *ob_mail_sender(const ob_mail *m) { return m->from.addr; }
size_t ob_mail_rcpt_count(const ob_mail *m) { return m->nrcpt; }
const char *ob_mail_rcpt(const ob_mail *m, size_t i) { return i < m->nrcpt ? m->rcpt[i] : NULL; }
const char *ob_mail_message_id(const ob_mail *m) { return m->message_id; }

const char *ob_mail_rcpt_type(const ob_mail *m, size_t i)
{
    static const char *const names[] = {"to", "cc", "bcc"};
    return i < m->nrcpt ? names[m->rcpt_type[i]] : NULL;
}
