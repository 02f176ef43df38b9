/*
 * outbox/util.h - small helpers liboutbox uses everywhere and exports,
 * because programs built on it (outboxd among them) need the same ones:
 * random bytes for keys, UTF-8 checks, text made safe to show, and a
 * condition variable on the monotonic clock.
 */
#ifndef OUTBOX_UTIL_H
#define OUTBOX_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "outbox/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill buf with n random bytes from getrandom(2), retried on EINTR. Any
 * other failure aborts the process (with a line on stderr): callers make
 * keys with these bytes, and no weaker source is substituted. */
void ob_random_bytes(void *buf, size_t n);

/* Whether s[0..n) is valid UTF-8 (RFC 3629) without NUL. */
bool ob_utf8_valid(const char *s, size_t n);

/* n bytes of s made safe for a log line or an error a client reads, into
 * dst[cap] (NUL-terminated, cut at a character when it does not fit):
 * control characters, DEL and bytes that are not UTF-8 become \xNN; URLs
 * lose userinfo, query and fragment. Returns the length written. */
size_t ob_scrub(const char *s, size_t n, char *dst, size_t cap);
/* One URL as ob_scrub shows it, into dst[cap]. Returns dst. */
char *ob_url_shown(const char *url, char *dst, size_t cap);

/* Lower-case hex of n bytes into out[2n + 1] (NUL-terminated). Returns
 * out. */
char *ob_hex(const void *d, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int ob_hex_digit(char c);

/* Base64 (RFC 4648 section 4: padded, no line breaks). Encode n bytes
 * into out, which holds OB_BASE64_LEN(n) + 1 bytes; returns the length
 * written (NUL-terminated). */
#define OB_BASE64_LEN(n) (((n) + 2) / 3 * 4)
size_t ob_base64_encode(const void *d, size_t n, char *out);
/* Decode n characters of strict base64 (a multiple of 4, the alphabet
 * only, '=' only as padding, the bits padding leaves over zero) into out, which holds n / 4 * 3 bytes; *len
 * gets the byte count. Returns 0 or OB_EINVAL. */
int ob_base64_decode(const char *s, size_t n, unsigned char *out, size_t *len);

/* Initialise *c to time out on CLOCK_MONOTONIC (immune to wall-clock
 * steps); pthread_cond_init's return. */
int ob_cond_init_mono(pthread_cond_t *c);
/* The absolute CLOCK_MONOTONIC time `ms` from now, for
 * pthread_cond_timedwait on such a condition variable. */
struct timespec ob_mono_deadline(int64_t ms);

#ifdef __cplusplus
}
#endif
#endif
