/*
 * mime.c - a validated message as MIME text, built by GMime 3:
 *
 *   text only             text/plain
 *   html only             text/html
 *   text and html         multipart/alternative (text first: the last part
 *                         is the preferred one)
 *   with attachments      multipart/mixed of the above, then each
 *                         attachment (base64, its file name RFC 2231
 *                         encoded by GMime when it is not ASCII)
 *
 * Text parts are us-ascii or utf-8 and take the encoding GMime judges best
 * under the 7-bit constraint: 7bit when they can, quoted-printable for
 * mostly-ASCII text or long lines, base64 otherwise, so no line of the
 * output exceeds SMTP's 998. Line ends in bodies (LF, CR or CRLF) become
 * CRLF, the canonical form, before encoding.
 * Subject, display names and custom headers become RFC 2047 encoded words
 * when they are not ASCII. Bcc recipients appear nowhere in the message:
 * they are only in the envelope; a message with Bcc recipients only says
 * "To: undisclosed-recipients:;". Message-ID and Date come from the
 * message (fixed when it was accepted), so a retry sends the same bytes,
 * and a DKIM signature made over them at acceptance (dkim.c) stays true: it
 * is put first, before the bytes it signs.
 */
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mail/mail.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void init_once(void) { g_mime_init(); }
void ob_mail_init(void) { pthread_once(&once, init_once); }

/* Text with every line ending CRLF: the canonical form of a text part,
 * which base64 and quoted-printable encode as they find it. */
static GByteArray *crlf(const char *s)
{
    size_t n = strlen(s);
    GByteArray *out = g_byte_array_sized_new((guint)(n + n / 16 + 2));
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            g_byte_array_append(out, (const guint8 *)"\r\n", 2);
            if (s[i] == '\r' && s[i + 1] == '\n')
                i++;
        } else {
            g_byte_array_append(out, (const guint8 *)&s[i], 1);
        }
    }
    return out;
}

static bool ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* A text part holding `text` as UTF-8 (us-ascii when it is), in the
 * encoding GMime judges best for 7-bit transport. */
static GMimeObject *text_part(const char *subtype, const char *text)
{
    GMimeTextPart *p = g_mime_text_part_new_with_subtype(subtype);
    GMimePart *part = GMIME_PART(p);
    GByteArray *bytes = crlf(text);
    GMimeStream *s = g_mime_stream_mem_new_with_byte_array(bytes); /* owns bytes */
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, w);
    g_object_unref(w);
    g_object_unref(s);
    g_mime_text_part_set_charset(p, ascii(text) ? "us-ascii" : "utf-8");
    g_mime_part_set_content_encoding(
        part, g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT));
    return GMIME_OBJECT(p);
}

static GMimeObject *attachment_part(const mail_attachment *a)
{
    GMimeContentType *ct = g_mime_content_type_parse(NULL, a->content_type);
    GMimePart *p = g_mime_part_new_with_type(g_mime_content_type_get_media_type(ct),
                                             g_mime_content_type_get_media_subtype(ct));
    g_object_unref(ct);
    g_mime_part_set_filename(p, a->filename);
    GMimeStream *s = g_mime_stream_mem_new_with_buffer((const char *)a->data, a->len);
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(p, w);
    g_object_unref(w);
    g_object_unref(s);
    g_mime_part_set_content_encoding(p, GMIME_CONTENT_ENCODING_BASE64);
    return GMIME_OBJECT(p);
}

/* Adopt `child` into `parent` (GMime takes its own reference). */
static void add(GMimeMultipart *parent, GMimeObject *child)
{
    g_mime_multipart_add(parent, child);
    g_object_unref(child);
}

/* A multipart whose boundary is the message's random boundary (made from
 * fresh random bytes when it was accepted, and stored with it): the same
 * on every build of the message (GMime's own is random, which would change
 * the bytes on a retry), and unknown to the client, who could otherwise
 * plant it in a 7bit body. Starting with "=-" it cannot occur in
 * quoted-printable or base64 text either. Messages stored before outbox
 * 0.2 have none and keep the boundary they were built with, made from
 * their Message-ID. */
static GMimeMultipart *multipart(const ob_mail *m, const char *subtype)
{
    GMimeMultipart *mp = g_mime_multipart_new_with_subtype(subtype);
    char b[96];
    snprintf(b, sizeof b, "=-%.32s-%s", m->boundary[0] ? m->boundary : m->message_id + 1, subtype);
    for (char *p = b; *p; p++)
        if (*p == '@' || *p == '>')
            *p = '.';
    g_mime_multipart_set_boundary(mp, b);
    return mp;
}

static GMimeObject *body(const ob_mail *m)
{
    GMimeObject *text = m->text ? text_part("plain", m->text) : NULL;
    GMimeObject *html = m->html ? text_part("html", m->html) : NULL;
    GMimeObject *b = text ? text : html;
    if (text && html) {
        GMimeMultipart *alt = multipart(m, "alternative");
        add(alt, text);
        add(alt, html);
        b = GMIME_OBJECT(alt);
    }
    if (!m->natt || !b)
        return b;
    GMimeMultipart *mixed = multipart(m, "mixed");
    add(mixed, b);
    for (size_t i = 0; i < m->natt; i++)
        add(mixed, attachment_part(&m->att[i]));
    return GMIME_OBJECT(mixed);
}

/* Text that holds "=?" could be read as RFC 2047 encoded words, which a
 * reader decodes: "=?UTF-8?Q?a=0D=0ABcc:...?=" in a subject would become a
 * CR LF and a Bcc line in its eyes. GMime writes such ASCII text as it is,
 * so it is encoded here, whole, as UTF-8 "B" words (45 bytes each, cut at
 * character boundaries: 75 characters a word at most); the reader decodes
 * them to the literal text. NULL when s needs nothing (g_free the rest). */
static char *literal_words(const char *s)
{
    if (!s || !strstr(s, "=?"))
        return NULL;
    GString *out = g_string_new(NULL);
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = n - i > 45 ? 45 : n - i;
        while (i + k < n && k > 0 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
            k--; /* do not cut a character */
        char b64[OB_BASE64_LEN(45) + 1];
        ob_base64_encode(s + i, k, b64);
        g_string_append_printf(out, "%s=?UTF-8?B?%s?=", i ? " " : "", b64);
        i += k;
    }
    return g_string_free(out, FALSE);
}

/* A mailbox whose name is encoded as UTF-8 words (GMime would pick
 * another charset it thinks best). */
static void add_mailbox(GMimeMessage *msg, GMimeAddressType type, const mail_addr *a)
{
    char *lit = literal_words(a->name);
    InternetAddress *ia = internet_address_mailbox_new(lit ? lit : a->name, a->addr);
    g_free(lit);
    internet_address_set_charset(ia, "utf-8");
    internet_address_list_add(g_mime_message_get_addresses(msg, type), ia);
    g_object_unref(ia);
}

static void headers(GMimeMessage *msg, const ob_mail *m)
{
    static const GMimeAddressType types[] = {
        [MAIL_TO] = GMIME_ADDRESS_TYPE_TO,
        [MAIL_CC] = GMIME_ADDRESS_TYPE_CC,
        [MAIL_REPLY_TO] = GMIME_ADDRESS_TYPE_REPLY_TO,
    };
    add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, &m->from);
    for (int t = 0; t < MAIL_LISTS; t++) {
        if (t == MAIL_BCC)
            continue; /* the envelope only */
        for (size_t i = 0; i < m->nlist[t]; i++)
            add_mailbox(msg, types[t], &m->list[t][i]);
    }
    if (!m->nlist[MAIL_TO] && !m->nlist[MAIL_CC]) /* Bcc only: a message without To looks forged */
        g_mime_object_append_header(GMIME_OBJECT(msg), "To", "undisclosed-recipients:;", NULL);
    char *lit = literal_words(m->subject);
    g_mime_message_set_subject(msg, lit ? lit : m->subject, "utf-8");
    g_free(lit);
    GDateTime *d = g_date_time_new_from_unix_utc(m->date_ms / 1000);
    g_mime_message_set_date(msg, d);
    g_date_time_unref(d);
    size_t n = strlen(m->message_id); /* "<id>": GMime adds the brackets */
    char *id = g_strndup(m->message_id + 1, n - 2);
    g_mime_message_set_message_id(msg, id);
    g_free(id);
    for (size_t i = 0; i < m->nheaders; i++) {
        lit = literal_words(m->headers[i].value);
        g_mime_object_append_header(GMIME_OBJECT(msg), m->headers[i].name,
                                    lit ? lit : m->headers[i].value, "utf-8");
        g_free(lit);
    }
}

int ob_mail_build(const ob_mail *m, char **out, size_t *len)
{
    ob_mail_init();
    GMimeObject *b = body(m);
    if (!b)
        return OB_ENOMEM;
    GMimeMessage *msg = g_mime_message_new(TRUE);
    headers(msg, m);
    g_mime_message_set_mime_part(msg, b);
    g_object_unref(b);

    GMimeFormatOptions *fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    GMimeStream *s = g_mime_stream_mem_new();
    ssize_t w = g_mime_object_write_to_stream(GMIME_OBJECT(msg), fo, s);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
    int rc = OB_ENOMEM;
    /* the signature made at acceptance, over exactly these bytes */
    size_t sig = m->dkim ? strlen("DKIM-Signature: \r\n") + strlen(m->dkim) : 0;
    if (w >= 0 && ba && (*out = malloc(sig + ba->len + 1))) {
        if (sig)
            snprintf(*out, sig + 1, "DKIM-Signature: %s\r\n", m->dkim);
        memcpy(*out + sig, ba->data, ba->len);
        (*out)[sig + ba->len] = '\0';
        *len = sig + ba->len;
        rc = 0;
    }
    g_object_unref(s);
    g_mime_format_options_free(fo);
    g_object_unref(msg);
    return rc;
}
