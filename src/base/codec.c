/*
 * codec.c - hex and base64, once for all of outbox (outbox/util.h).
 * Base64 is OpenSSL's (EVP_EncodeBlock, EVP_DecodeBlock); what is added
 * here is strictness on input: OpenSSL's decoder skips white space,
 * accepts '=' in odd places and ignores the bits padding leaves over, and
 * every base64 outbox reads (attachments, webhook secrets) must be exactly
 * RFC 4648 section 4, padded, one line, with those bits zero (section 3.5;
 * tests/fuzz/fuzz_text.c found the last).
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

/* The value of a base64 character, or -1. */
static int b64_value(char c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
           : c == '/'             ? 63
                                  : -1;
}

int ob_base64_decode(const char *s, size_t n, unsigned char *out, size_t *len)
{
    if (n % 4 || n > (size_t)INT32_MAX)
        return OB_EINVAL;
    size_t pad = n && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (b64_value(s[i]) < 0)
            return OB_EINVAL;
    /* the bits the padding leaves over are zero (RFC 4648 section 3.5):
     * one spelling per byte string */
    if (pad && (b64_value(s[n - pad - 1]) & (pad == 1 ? 3 : 15)))
        return OB_EINVAL;
    if (n && EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) < 0)
        return OB_EINVAL;
    *len = n / 4 * 3 - pad;
    return 0;
}
