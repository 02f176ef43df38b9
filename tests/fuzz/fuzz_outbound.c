/*
 * fuzz_outbound.c - what decides where outbound jobs may go, and what is
 * shown of untrusted text:
 *
 *   - outbound_allow: any --http-allow text; a refusal must name the item,
 *     and an accepted list must never open outboxd's own address;
 *   - outbound_check on addresses made from the input, with and without
 *     the parsed exceptions: a loopback, private, link-local or mapped form
 *     of one is never allowed by an empty policy;
 *   - outbound_check_url on the input as a URL (curl's parser);
 *   - ob_scrub: its output is valid UTF-8 with no control character, and a
 *     URL's userinfo never survives it;
 *   - webhook_keys_parse on the input as a secret file.
 * A violation aborts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/outbound.h"
#include "api/secrets.h"
#include "base/base.h"

static void check_scrub(const uint8_t *data, size_t size)
{
    char out[512];
    size_t n = ob_scrub((const char *)data, size, out, sizeof out);
    if (n >= sizeof out || out[n] != '\0' || strlen(out) != n || !ob_utf8_valid(out, n))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            abort(); /* a control character could forge a log line */
    const char *u = strstr(out, "://");
    if (u && u > out && strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.", u[-1])) {
        size_t auth = strcspn(u + 3, "/?# \"'<>\\");
        if (memchr(u + 3, '@', auth))
            abort(); /* userinfo shown */
    }
}

/* Every IPv4 address of these blocks, in any form, stays refused. */
static void check_classes(const outbound *empty, const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    static const uint8_t firsts[] = {0, 10, 127, 169, 172, 192, 100, 224, 240, 255};
    uint8_t b[4] = {firsts[data[0] % sizeof firsts], data[1], data[2], data[3]};
    if (b[0] == 169)
        b[1] = 254;
    if (b[0] == 172)
        b[1] = (uint8_t)(16 | (b[1] & 15));
    if (b[0] == 192)
        b[1] = 168;
    if (b[0] == 100)
        b[1] = (uint8_t)(64 | (b[1] & 63));
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(80)};
    memcpy(&s4.sin_addr, b, 4);
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
    uint8_t *a = s6.sin6_addr.s6_addr;
    a[10] = a[11] = 0xff; /* ::ffff:a.b.c.d */
    memcpy(a + 12, b, 4);
    if (!outbound_check(empty, (struct sockaddr *)&s4) ||
        !outbound_check(empty, (struct sockaddr *)&s6))
        abort();
    memset(a, 0, 16); /* 64:ff9b::a.b.c.d */
    a[1] = 0x64, a[2] = 0xff, a[3] = 0x9b;
    memcpy(a + 12, b, 4);
    if (!outbound_check(empty, (struct sockaddr *)&s6))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static outbound empty, p;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    check_scrub(data, size);
    check_classes(&empty, data, size);

    outbound_init(&p);
    char err[256];
    if (outbound_allow(&p, text, err, sizeof err) != 0) {
        if (!strstr(err, "--http-allow"))
            abort(); /* a refusal names the option and the item */
    } else {
        struct sockaddr_in self = {.sin_family = AF_INET, .sin_port = htons(8025)};
        inet_pton(AF_INET, "127.0.0.1", &self.sin_addr);
        if (outbound_add_self(&p, (struct sockaddr *)&self, 8025) ||
            !outbound_check(&p, (struct sockaddr *)&self))
            abort(); /* no exception opens outboxd itself */
    }
    char addr[80];
    outbound_check_url(&empty, text, addr, sizeof addr);

    webhook_keys k;
    if (webhook_keys_parse(text, &k, err, sizeof err) == 0 && (k.n < 1 || k.len[0] < 24))
        abort();
    free(text);
    return 0;
}
