/*
 * scrub.c - text made safe to show: in a log line, or in a job's error that
 * clients read.
 *
 *   - Control characters (and DEL, and bytes that are not UTF-8) become
 *     \xNN, so nothing written into a line can end it and forge the next
 *     one.
 *   - A URL (SCHEME://...) loses its userinfo (user:password@), its query
 *     (?...) and its fragment: the places secrets ride in. What is left
 *     still says where a request went: scheme, host, port and path.
 *
 * A URL ends at white space, a quote, '<', '>' or the end of the text.
 */
#include <string.h>

#include "base/base.h"

static bool scheme_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '-' || c == '.';
}

static bool url_end(char c)
{
    return c == '\0' || c == ' ' || c == '"' || c == '\'' || c == '<' || c == '>' ||
           (unsigned char)c < 0x20 || c == 0x7f;
}

/* The length of the UTF-8 sequence at s (1..4), or 0 if it is not valid. */
static size_t utf8_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                          : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n || !ob_utf8_valid(s, len))
        return 0;
    return len;
}

typedef struct out {
    char *p;
    size_t n, cap; /* cap includes the NUL */
    bool full;     /* something did not fit: the rest is dropped */
} out;

/* Append n bytes, all or none (a character or an escape is never cut). */
static void put(out *o, const char *s, size_t n)
{
    if (o->full || o->n + n >= o->cap) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void put_escaped(out *o, unsigned char c)
{
    char e[5] = "\\x";
    ob_hex(&c, 1, e + 2);
    put(o, e, 4);
}

/* At s (n bytes left) a URL starts whose scheme is s[0..scheme): copy it
 * without userinfo, query and fragment; returns the bytes consumed. */
static size_t put_url(out *o, const char *s, size_t n, size_t scheme)
{
    size_t i = scheme + 3; /* past "://" */
    size_t auth = i;
    while (i < n && !url_end(s[i]) && s[i] != '/' && s[i] != '?' && s[i] != '#')
        i++;
    const char *at = NULL;
    for (size_t k = auth; k < i; k++)
        if (s[k] == '@')
            at = s + k;
    put(o, s, auth);
    size_t host = at ? (size_t)(at + 1 - s) : auth;
    size_t k = host;
    while (k < n && !url_end(s[k]) && s[k] != '?' && s[k] != '#')
        k++;
    for (size_t j = host; j < k; j++) /* the host and path: checked like any text */
        if ((unsigned char)s[j] >= 0x80)
            put_escaped(o, (unsigned char)s[j]);
        else
            put(o, s + j, 1);
    while (k < n && !url_end(s[k]))
        k++; /* the query and fragment: dropped */
    return k;
}

size_t ob_scrub(const char *s, size_t n, char *dst, size_t cap)
{
    if (!cap)
        return 0;
    out o = {dst, 0, cap, false};
    for (size_t i = 0; i < n && !o.full;) {
        if (s[i] == ':' && i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') {
            size_t b = o.n, start = i; /* a scheme just copied: look back for its start */
            while (start > 0 && b > 0 && scheme_char(s[start - 1]))
                start--, b--;
            o.n = b; /* with or without a scheme, what follows "://" is an authority */
            i = start + put_url(&o, s + start, n - start, i - start);
            continue;
        }
        size_t len = utf8_len(s + i, n - i);
        if (len == 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f))
            len = 0;
        if (len) {
            put(&o, s + i, len);
            i += len;
        } else {
            put_escaped(&o, (unsigned char)s[i]);
            i++;
        }
    }
    dst[o.n] = '\0';
    return o.n;
}

char *ob_url_shown(const char *url, char *dst, size_t cap)
{
    ob_scrub(url, strlen(url), dst, cap);
    return dst;
}
