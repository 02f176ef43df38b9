/*
 * fuzz_mail.c - the mail part's validators and MIME builder, on inputs of
 * two shapes:
 *
 *   '{' ...   a /v1/messages body as JSON text (the decoder as the API
 *             calls it);
 *   other     fields separated by '\n' - from, to, subject, a header's
 *             name, its value, an attachment's file name and content type,
 *             the text - put into a message as raw bytes, so CR, LF, NUL,
 *             invalid UTF-8 and RFC 2047 words reach every validator.
 *
 * For every message ob_mail_parse accepts, it checks:
 *   - the built MIME has CRLF line ends only, no NUL, no line over 998;
 *   - its header block holds only the headers outbox writes and the custom
 *     names given: no injected header (a CR or LF smuggled through a name,
 *     a subject, a display name, a header value or a file name would
 *     start one); its boundaries are the stored random one;
 *   - GMime parses it back, with the same Message-ID;
 *   - the stored form parses back and builds the same bytes.
 * A message from example.com (or a subdomain) is DKIM-signed first (an
 * Ed25519 key made at start), so the signer's header and body splitting
 * and canonicalization (src/mail/dkim.c) run on every such message, and the
 * checks above hold for the signed bytes too.
 * The whole input, as one address, goes through ob_mail_address_normal
 * too: a normal form is at most OB_MAIL_ADDR_MAX bytes, has one '@', no
 * upper-case letter after it, and is its own normal form (idempotent).
 * A violation aborts.
 */
#include <gmime/gmime.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "outbox/mail.h"

static const char *const std_headers[] = {
    "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-Id", "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "DKIM-Signature", NULL};

static bool allowed(const char *name, size_t n, const json_t *custom)
{
    for (int i = 0; std_headers[i]; i++)
        if (strlen(std_headers[i]) == n && !strncasecmp(name, std_headers[i], n))
            return true;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)custom, key, v)
        if (strlen(key) == n && !strncasecmp(name, key, n))
            return true;
    return false;
}

/* Line ends, NUL, line length over the whole message; header names in
 * every header block (the message's and each part's). */
static void check_lines(const char *d, size_t len, const json_t *custom, const char *unique)
{
    char boundary[48]; /* "--=-" and the stored random part: mime.c's scheme */
    snprintf(boundary, sizeof boundary, "--=-%.32s", unique);
    bool in_headers = true;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (d[i] == '\0')
            abort();
        if (d[i] == '\r' && (i + 1 >= len || d[i + 1] != '\n'))
            abort(); /* a bare CR */
        if (d[i] != '\n')
            continue;
        if (i == 0 || d[i - 1] != '\r')
            abort(); /* a bare LF */
        size_t n = i - 1 - start;
        if (n > 998)
            abort();
        const char *line = d + start;
        if (in_headers && n == 0) {
            in_headers = false;
        } else if (in_headers && line[0] != ' ' && line[0] != '\t') {
            const char *colon = memchr(line, ':', n);
            if (!colon || !allowed(line, (size_t)(colon - line), custom))
                abort(); /* an injected header */
        } else if (!in_headers && n > strlen(boundary) && !strncmp(line, boundary, strlen(boundary))) {
            in_headers = true; /* a part's headers follow a boundary line */
        }
        start = i + 1;
    }
}

static void check(const ob_mail *m, const json_t *custom)
{
    char *d;
    size_t len;
    if (ob_mail_build(m, &d, &len))
        return; /* out of memory */
    json_t *stored = ob_mail_to_json(m);
    const char *unique = json_string_value(json_object_get(stored, "boundary"));
    if (stored && (!unique || strlen(unique) != 32))
        abort(); /* every accepted message gets a random boundary */
    check_lines(d, len, custom, unique ? unique : "");

    GMimeStream *s = g_mime_stream_mem_new_with_buffer(d, len);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *g = g_mime_parser_construct_message(p, NULL);
    if (!g)
        abort();
    const char *id = g_mime_message_get_message_id(g);
    const char *want = ob_mail_message_id(m);
    if (!id || strncmp(id, want + 1, strlen(want) - 2) || strlen(id) != strlen(want) - 2)
        abort();
    g_object_unref(g);
    g_object_unref(p);
    g_object_unref(s);

    ob_mail *again = NULL;
    char *d2;
    size_t len2;
    if (stored && ob_mail_parse(stored, OB_MAIL_STORED, NULL, &again, NULL))
        abort(); /* the stored form must parse */
    if (again && !ob_mail_build(again, &d2, &len2)) {
        if (len2 != len || memcmp(d, d2, len))
            abort(); /* a retry must send the same bytes */
        free(d2);
    }
    ob_mail_free(again);
    json_decref(stored);
    free(d);
}

/* Field i of the '\n'-separated input (as a JSON string of raw bytes). */
static json_t *field(const uint8_t *data, size_t size, int i)
{
    size_t start = 0;
    for (int k = 0; k < i && start <= size; k++) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        start = nl ? (size_t)(nl - data) + 1 : size + 1;
    }
    if (start > size)
        return json_stringn_nocheck("x@example.com", 13);
    const uint8_t *nl = memchr(data + start, '\n', size - start);
    size_t n = nl ? (size_t)(nl - data) - start : size - start;
    return json_stringn_nocheck((const char *)data + start, n);
}

static json_t *from_fields(const uint8_t *data, size_t size)
{
    json_t *m = json_object();
    json_object_set_new(m, "from", field(data, size, 0));
    json_object_set_new(m, "to", field(data, size, 1));
    json_object_set_new(m, "subject", field(data, size, 2));
    json_t *name = field(data, size, 3), *h = json_object();
    const char *k = json_string_value(name);
    if (k && strlen(k) == json_string_length(name) && *k)
        json_object_set_new(h, k, field(data, size, 4));
    json_decref(name);
    json_object_set_new(m, "headers", h);
    json_t *att = json_pack("{s:o, s:o, s:s}", "filename", field(data, size, 5), "content_type",
                            field(data, size, 6), "content", "aGk=");
    json_object_set_new(m, "attachments", json_pack("[o]", att));
    json_object_set_new(m, "text", field(data, size, 7));
    return m;
}

/* Keys for example.com: an Ed25519 key written to a private file. */
static ob_dkim *signer(void)
{
    char path[] = "/tmp/fuzz_mail_dkim_XXXXXX";
    int fd = mkstemp(path);
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    ob_dkim *d = NULL;
    if (!f || !k || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(f);
    EVP_PKEY_free(k);
    if (ob_dkim_new(&d) || ob_dkim_add(d, "example.com", "fuzz", path, NULL))
        abort();
    unlink(path);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The normal form of an address (the suppression list's key) is one. */
static void normal_form(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), n1[OB_MAIL_ADDR_MAX + 1], n2[OB_MAIL_ADDR_MAX + 1];
    if (!s)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    ob_problem p;
    if (ob_mail_address_normal(s, n1, &p) == 0) {
        const char *at = strrchr(n1, '@');
        if (!at || strlen(n1) > OB_MAIL_ADDR_MAX)
            abort();
        for (const char *c = at; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                abort();
        if (ob_mail_address_normal(n1, n2, &p) != 0 || strcmp(n1, n2) != 0)
            abort(); /* not idempotent */
    } else if (!p.message[0]) {
        abort();
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ob_dkim *dkim;
    if (!dkim) {
        ob_mail_init();
        dkim = signer();
    }
    json_t *in = size && data[0] == '{' ? json_loadb((const char *)data, size, 0, NULL)
                                        : from_fields(data, size);
    ob_mail *m = NULL;
    ob_problem p;
    if (in && ob_mail_parse(in, OB_MAIL_REQUEST, NULL, &m, &p) == 0) {
        const char *by;
        if (ob_mail_sign(m, dkim, &by) == 0 && by) {
            char *d;
            size_t len;
            if (!ob_mail_build(m, &d, &len)) {
                if (strncmp(d, "DKIM-Signature: v=1; a=ed25519-sha256;", 38) != 0)
                    abort(); /* signed: the signature comes first */
                free(d);
            }
        }
        check(m, json_object_get(in, "headers"));
        ob_mail_free(m);
    } else if (in && (!p.field[0] && !p.message[0])) {
        abort(); /* a refusal must say what is wrong */
    }
    json_decref(in);
    normal_form(data, size);
    return 0;
}
