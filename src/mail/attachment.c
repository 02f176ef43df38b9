/*
 * attachment.c - a message's attachments from their JSON: each a file
 * name (no control characters, no slashes), a MIME type, and its content
 * in strict base64, decoded here and counted against the message's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mail/mail.h"

/* Strict base64 into a new buffer. Returns 0, OB_EINVAL or OB_ENOMEM. */
static int b64_decode(const char *s, size_t n, unsigned char **out, size_t *len)
{
    unsigned char *d = malloc(n / 4 * 3 + 1);
    if (!d)
        return OB_ENOMEM;
    int rc = ob_base64_decode(s, n, d, len);
    if (rc)
        free(d);
    else
        *out = d;
    return rc;
}

/* "type/subtype", tokens of RFC 2045 (no parameters). */
static bool content_type_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strlen(s) > 127)
        return false;
    for (const char *p = s; *p; p++)
        if (p != slash && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                            (*p >= '0' && *p <= '9') || strchr("!#$&^_.+-", *p)))
            return false;
    return true;
}

static int attachment(parser *ps, const json_t *v, const char *field, mail_attachment *a)
{
    char f[96];
    if (!json_is_object(v))
        return fail(ps, OB_EINVAL, field, "must be {filename, content_type, content}");
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m)
        if (strcmp(key, "filename") && strcmp(key, "content_type") && strcmp(key, "content")) {
            snprintf(f, sizeof f, "%s.%.24s", field, key);
            return fail(ps, OB_EINVAL, f, "unknown member (filename, content_type, content)");
        }
    const char *name = str(json_object_get(v, "filename"));
    snprintf(f, sizeof f, "%s.filename", field);
    if (!name || !*name || strlen(name) > 255 || !obi_mail_text_ok(name, strlen(name)) ||
        strpbrk(name, "/\\"))
        return fail(ps, OB_EINVAL, f, "a file name of 1-255 bytes, without control characters "
                                      "or slashes, is required");
    json_t *ctv = json_object_get(v, "content_type");
    const char *ct = ctv ? str(ctv) : "application/octet-stream";
    snprintf(f, sizeof f, "%s.content_type", field);
    if (!ct || !content_type_ok(ct))
        return fail(ps, OB_EINVAL, f, "a MIME type such as \"application/pdf\"");
    const char *b64 = str(json_object_get(v, "content"));
    snprintf(f, sizeof f, "%s.content", field);
    if (!b64)
        return fail(ps, OB_EINVAL, f, "base64 text is required");
    size_t n = strlen(b64);
    if (n / 4 * 3 > ps->l->max_attachment + 2)
        return fail(ps, OB_ETOOBIG, f, "larger than %zu bytes", ps->l->max_attachment);
    int rc = b64_decode(b64, n, &a->data, &a->len);
    if (rc)
        return fail(ps, rc, f, "not base64 (RFC 4648, padded, no line breaks)");
    if (a->len > ps->l->max_attachment)
        return fail(ps, OB_ETOOBIG, f, "larger than %zu bytes", ps->l->max_attachment);
    ps->size += a->len;
    a->filename = strdup(name);
    a->content_type = strdup(ct);
    if (!a->filename || !a->content_type)
        return fail(ps, OB_ENOMEM, field, "out of memory");
    return 0;
}

int obi_mail_attachments(parser *ps, ob_mail *m, const json_t *v)
{
    if (!v)
        return 0;
    if (!json_is_array(v))
        return fail(ps, OB_EINVAL, "attachments", "must be an array");
    size_t n = json_array_size(v);
    if (n > (size_t)ps->l->max_attachments)
        return fail(ps, OB_ETOOBIG, "attachments", "more than %d attachments",
                    ps->l->max_attachments);
    if (n && !(m->att = calloc(n, sizeof *m->att)))
        return fail(ps, OB_ENOMEM, "attachments", "out of memory");
    for (size_t i = 0; i < n; i++) {
        char field[48];
        snprintf(field, sizeof field, "attachments[%zu]", i);
        m->natt = i + 1;
        int rc = attachment(ps, json_array_get(v, i), field, &m->att[i]);
        if (rc)
            return rc;
    }
    return 0;
}
