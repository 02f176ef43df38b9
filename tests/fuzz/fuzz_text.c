/*
 * fuzz_text.c - libFuzzer target over the engine's text parsers and
 * validators: job ids, state names, queue/kind names, UTF-8 checking and
 * cleaning, and store URLs. Properties checked, not just "no crash":
 *   - an id that parses formats back to the same text, lower-cased;
 *   - a cleaned string is valid UTF-8 and no longer than its limit;
 *   - a valid name is 1..64 bytes of [A-Za-z0-9._-];
 *   - strict base64 that decodes encodes back to the same text, and hex of
 *     any bytes reads back to them (codec.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "outbox/jobs.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    ob_id id;
    if (ob_id_parse(s, &id) == 0) {
        char back[OB_ID_STRLEN + 1];
        ob_id_format(&id, back);
        for (int i = 0; i < OB_ID_STRLEN; i++)
            if (back[i] != tolower((unsigned char)s[i]))
                abort();
    }

    ob_state st;
    if (ob_state_parse(s, &st) == 0 && strcmp(ob_state_name(st), s) != 0)
        abort();

    if (ob_name_valid(s)) {
        size_t n = strlen(s);
        if (n < 1 || n > OB_NAME_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
            abort();
    }

    unsigned char *bin = malloc(size / 4 * 3 + 1);
    char *b64 = malloc(OB_BASE64_LEN(size) + 1), *hex = malloc(2 * size + 1);
    size_t blen;
    if (bin && b64 && ob_base64_decode(s, size, bin, &blen) == 0 &&
        (ob_base64_encode(bin, blen, b64) != size || memcmp(b64, s, size) != 0))
        abort(); /* strict base64 has exactly one spelling per byte string */
    if (hex) {
        ob_hex(data, size, hex);
        for (size_t i = 0; i < size; i++)
            if (ob_hex_digit(hex[2 * i]) * 16 + ob_hex_digit(hex[2 * i + 1]) != data[i])
                abort();
    }
    free(bin), free(b64), free(hex);

    size_t max = size ? data[0] % 64 : 0;
    char *clean = obi_utf8_clean_dup(s, max);
    if (clean) {
        size_t n = strlen(clean);
        if (n > max || !ob_utf8_valid(clean, n))
            abort();
        if (ob_utf8_valid(s, strlen(s)) && strlen(s) <= max && strcmp(clean, s) != 0)
            abort(); /* valid text within the limit passes unchanged */
        free(clean);
    }

    int64_t ms;
    if (ob_time_parse(s, &ms) == 0) { /* what parses formats back to the same instant */
        char back[32];
        int64_t again;
        if (ms > 253402300799999LL || ob_time_parse(ob_time_format(ms, back), &again) || again != ms)
            abort();
    }

    /* URLs of no store (neither sqlite: nor postgres://, which would open
     * or connect) must be refused without touching anything */
    if (strncmp(s, "sqlite:", 7) != 0 && strncmp(s, "postgres://", 11) != 0 &&
        strncmp(s, "postgresql://", 13) != 0) {
        store *out = NULL;
        if (obi_store_open(s, NULL, &out) != OB_EINVAL || out)
            abort();
    }
    free(s);
    return 0;
}
