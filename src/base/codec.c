/*
 * codec.c - hex and base64, once for all of outbox (outbox/util.h).
 * Base64 is OpenSSL's (EVP_EncodeBlock, EVP_DecodeBlock); what is added
 * here is strictness on input: OpenSSL's decoder skips white space and
 * accepts '=' in odd places, and every base64 outbox reads (attachments,
 * webhook secrets) must be exactly RFC 4648 section 4, padded, one line.
 */
#include <openssl/evp.h>
#include <string.h>

#include "base/base.h"

static const char hexdigits[] = "0123456789abcdef";

char *ob_hex(const void *d, size_t n, char *out)
{
    const unsigned char *p = d;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[p[i] >> 4];
        out[2 * i + 1] = hexdigits[p[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

int ob_hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

size_t ob_base64_encode(const void *d, size_t n, char *out)
{
    if (n == 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)EVP_EncodeBlock((unsigned char *)out, d, (int)n);
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

int ob_base64_decode(const char *s, size_t n, unsigned char *out, size_t *len)
{
    if (n % 4 || n > (size_t)INT32_MAX)
        return OB_EINVAL;
    size_t pad = n && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64_char(s[i]))
            return OB_EINVAL;
    if (n && EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) < 0)
        return OB_EINVAL;
    *len = n / 4 * 3 - pad;
    return 0;
}
