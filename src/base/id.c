/*
 * id.c - job ids: UUIDv7 (RFC 9562 section 5.7) generation, formatting and
 * parsing, and the small random source behind ids and backoff jitter.
 *
 * Layout of an id (big-endian):
 *   48 bits unix_ts_ms | 4 bits version (7) | 12 bits rand_a |
 *    2 bits variant (10) | 62 bits rand_b
 * rand_a is used as a monotonic counter (RFC 9562 6.2, method 1): within one
 * millisecond each id adds one; when it would overflow, or the wall clock
 * steps back, the generator borrows the next millisecond. So ids from one
 * generator strictly increase, which keeps the store's id index append-only.
 *
 * Randomness: ids and jitter need unpredictability, not secrecy, so a
 * splitmix64 stream per thread, seeded from getrandom(2), is enough.
 * ob_random_bytes (secrets, MIME boundaries) reads getrandom(2) itself,
 * retries when a signal interrupts it, and aborts on any other failure:
 * there is no fallback to weaker bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/base.h"

ssize_t (*obi_getrandom_hook)(void *buf, size_t n, unsigned flags) = getrandom;

static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_seeded;

void ob_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = obi_getrandom_hook(p, n, 0); /* blocks until the pool is ready, once at boot */
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* Keys and boundaries are made from these bytes: no weak
             * substitute, ever. getrandom(2) fails only without kernel
             * support (ENOSYS) or on a bad pointer. */
            char msg[160];
            int len = snprintf(msg, sizeof msg, "outbox: getrandom failed: %s; no random bytes, "
                               "stopping\n", r < 0 ? strerror(errno) : "no bytes");
            if (len > 0 && write(2, msg, (size_t)len) < 0) {
                /* nowhere to report it */
            }
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        ob_random_bytes(&rng_state, sizeof rng_state);
        rng_seeded = true;
    }
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double obi_random_unit(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }

void obi_idgen_next(obi_idgen *g, ob_id *out)
{
    int64_t now = ob_now_ms();
    if (now > g->last_ms) {
        g->last_ms = now;
        g->counter = (uint32_t)(rng_next() & 0x7ff); /* leave half for bursts */
    } else if (++g->counter > 0xfff) {
        g->last_ms++;
        g->counter = 0;
    }
    uint64_t ts = (uint64_t)g->last_ms;
    uint64_t r = rng_next();
    for (int i = 0; i < 6; i++)
        out->b[i] = (unsigned char)(ts >> (40 - 8 * i));
    out->b[6] = (unsigned char)(0x70 | (g->counter >> 8));
    out->b[7] = (unsigned char)(g->counter & 0xff);
    out->b[8] = (unsigned char)(0x80 | (r & 0x3f));
    for (int i = 9; i < 16; i++)
        out->b[i] = (unsigned char)(r >> (8 * (i - 8)));
}

char *ob_id_format(const ob_id *id, char out[OB_ID_STRLEN + 1])
{
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        ob_hex(&id->b[i], 1, p);
        p += 2;
    }
    return out;
}

int ob_id_parse(const char *s, ob_id *out)
{
    if (!s || !out)
        return OB_EINVAL;
    ob_id id;
    int k = 0;
    for (int i = 0; i < OB_ID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return OB_EINVAL;
            continue;
        }
        int hi = ob_hex_digit(s[i]);
        if (hi < 0)
            return OB_EINVAL;
        int lo = ob_hex_digit(s[++i]);
        if (lo < 0)
            return OB_EINVAL;
        id.b[k++] = (unsigned char)(hi << 4 | lo);
    }
    if (s[OB_ID_STRLEN] != '\0')
        return OB_EINVAL;
    *out = id;
    return 0;
}

bool ob_name_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok || n >= OB_NAME_MAX)
            return false;
    }
    return n > 0;
}

void obi_poison_free(void *p, size_t n)
{
#ifdef OB_POISON
    if (p)
        memset(p, 0xdb, n);
#else
    (void)n;
#endif
    free(p);
}
