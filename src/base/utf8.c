/*
 * utf8.c - checking and cleaning UTF-8 (RFC 3629). Text that leaves the
 * engine (error messages, unique keys) ends up in JSON, which must be valid
 * UTF-8, so it is checked where it enters.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

/* Length of the valid UTF-8 character at s (n bytes left), or 0. Rejects
 * overlong forms, surrogates, code points above U+10FFFF and NUL. */
static size_t char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min, cp;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool ob_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = char_len(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

char *obi_utf8_clean_dup(const char *s, size_t max)
{
    size_t n = strlen(s);
    bool cut = n > max;
    if (cut)
        n = max;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = char_len(p + i, n - i);
        if (k) {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        } else if (cut && n - i < 4 && (p[i] & 0xc0) == 0xc0) {
            break; /* a character cut by the limit: drop it */
        } else {
            out[o++] = '?';
            i++;
        }
    }
    out[o] = '\0';
    return out;
}
