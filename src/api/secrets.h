/*
 * secrets.h - files that hold secrets, and the Standard Webhooks signing
 * keys (see secrets.c).
 */
#ifndef OB_API_SECRETS_H
#define OB_API_SECRETS_H

#include <stddef.h>
#include <stdint.h>

/* Read a secret-holding file (tokens, signing keys, a password): refused
 * unless it is a regular file, not a symbolic link, and not readable or
 * writable by group or others. 0 with *text (malloc'd, NUL-terminated; the
 * caller frees it), or -1 with a sentence in err[n]. At most 64 KiB. */
int secret_file_read(const char *path, char **text, char *err, size_t n);

/* Create `path` holding `text`, mode 0600, refusing to follow a symbolic
 * link or to replace anything (O_CREAT | O_EXCL | O_NOFOLLOW), written and
 * fsynced. 0, or -1 with err[n]. */
int secret_file_create(const char *path, const char *text, char *err, size_t n);

#define WEBHOOK_KEYS_MAX 16
#define WEBHOOK_KEY_MAX 64

/* Standard Webhooks signing keys: each line of the secret file is
 * "whsec_" + base64 of 24 to 64 bytes. Every key signs, so a key can be
 * added, receivers moved over, and the old one removed without a gap. */
typedef struct webhook_keys {
    unsigned char key[WEBHOOK_KEYS_MAX][WEBHOOK_KEY_MAX];
    size_t len[WEBHOOK_KEYS_MAX];
    int n;
} webhook_keys;

/* Parse the secret file's text (blank lines and "#" comments skipped). 0,
 * or -1 with err[n] naming the line. */
int webhook_keys_parse(const char *text, webhook_keys *k, char *err, size_t n);
/* A new secret line, "whsec_" + base64 of 32 random bytes, into out[n]
 * (n >= 64). */
void webhook_secret_new(char *out, size_t n);
/* The webhook-signature header value for id.timestamp.body: "v1,BASE64"
 * for each key, space-separated. malloc'd (the caller frees it), or NULL on
 * OOM. */
char *webhook_sign(const webhook_keys *k, const char *id, int64_t timestamp, const char *body,
                   size_t len);

#endif
