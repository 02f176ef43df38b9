/*
 * secrets.c - the files outboxd keeps secrets in (bearer tokens, the
 * webhook signing keys, the SMTP password), and the keys themselves.
 *
 * A secret file is trusted only if nobody else could have read or changed
 * it: a regular file, opened without following a symbolic link, with no
 * permission for group or others. A file outboxd creates is made the same
 * way, atomically: O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, fsynced.
 *
 * Signing follows Standard Webhooks 1.0 (standardwebhooks.com): the signed
 * content is "ID.TIMESTAMP.BODY", the MAC HMAC-SHA256 with the key that
 * "whsec_BASE64" names, the header "v1,BASE64(MAC)", one per key,
 * space-separated.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/secrets.h"
#include "outbox/util.h"

#define SECRET_FILE_MAX (64 << 10)

int secret_file_read(const char *path, char **text, char *err, size_t n)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, n, "cannot read %s: %s", path,
                 errno == ELOOP ? "it is a symbolic link (give the file itself)" : strerror(errno));
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        why = "group or others may read or change it (chmod 600 it)";
    else if (st.st_size > SECRET_FILE_MAX)
        why = "larger than 64 KiB";
    char *buf = why ? NULL : malloc((size_t)st.st_size + 1);
    if (!why && !buf)
        why = "out of memory";
    ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    if (!why && got != st.st_size)
        why = got < 0 ? strerror(errno) : "it changed while being read";
    close(fd);
    if (why) {
        free(buf);
        snprintf(err, n, "refusing %s: %s", path, why);
        return -1;
    }
    buf[got] = '\0';
    *text = buf;
    return 0;
}

int secret_file_create(const char *path, const char *text, char *err, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, n, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok) {
        unlink(path);
        snprintf(err, n, "cannot write %s: %s", path, strerror(e));
        return -1;
    }
    return 0;
}

/* ---- Standard Webhooks keys ---- */

/* Strict padded base64 of 24..64 bytes into out; the byte count, or 0. */
static size_t b64_key(const char *s, size_t len, unsigned char out[WEBHOOK_KEY_MAX])
{
    if (len < 32 || len > 88)
        return 0;
    unsigned char buf[96];
    size_t bytes;
    if (ob_base64_decode(s, len, buf, &bytes) || bytes < 24 || bytes > WEBHOOK_KEY_MAX)
        return 0;
    memcpy(out, buf, bytes);
    return bytes;
}

int webhook_keys_parse(const char *text, webhook_keys *k, char *err, size_t n)
{
    memset(k, 0, sizeof *k);
    int line = 0;
    for (const char *s = text; *s;) {
        size_t len = strcspn(s, "\n");
        line++;
        const char *b = s, *e = s + len;
        s = *e ? e + 1 : e;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (b == e || *b == '#')
            continue;
        if (k->n == WEBHOOK_KEYS_MAX) {
            snprintf(err, n, "line %d: more than %d keys", line, WEBHOOK_KEYS_MAX);
            return -1;
        }
        size_t bytes = e - b > 6 && strncmp(b, "whsec_", 6) == 0
                           ? b64_key(b + 6, (size_t)(e - b - 6), k->key[k->n])
                           : 0;
        if (!bytes) {
            snprintf(err, n, "line %d is not a Standard Webhooks secret: \"whsec_\" and the "
                             "base64 of 24 to 64 random bytes (a file of another format: move it "
                             "away and outboxd makes a new one)", line);
            return -1;
        }
        k->len[k->n++] = bytes;
    }
    if (!k->n) {
        snprintf(err, n, "holds no secret");
        return -1;
    }
    return 0;
}

void webhook_secret_new(char *out, size_t n)
{
    unsigned char r[32];
    char b64[OB_BASE64_LEN(sizeof r) + 1];
    ob_random_bytes(r, sizeof r);
    ob_base64_encode(r, sizeof r, b64);
    snprintf(out, n, "whsec_%s\n", b64);
}

char *webhook_sign(const webhook_keys *k, const char *id, int64_t timestamp, const char *body,
                   size_t len)
{
    char head[128];
    int hl = snprintf(head, sizeof head, "%s.%lld.", id, (long long)timestamp);
    char *content = hl > 0 && (size_t)hl < sizeof head ? malloc((size_t)hl + len) : NULL;
    char *out = malloc((size_t)k->n * 48 + 1);
    if (!content || !out) {
        free(content);
        free(out);
        return NULL;
    }
    memcpy(content, head, (size_t)hl);
    if (len)
        memcpy(content + hl, body, len);
    char *w = out;
    for (int i = 0; i < k->n; i++) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        HMAC(EVP_sha256(), k->key[i], (int)k->len[i], (const unsigned char *)content,
             (size_t)hl + len, mac, &ml);
        w += sprintf(w, "%sv1,", i ? " " : "");
        w += ob_base64_encode(mac, ml, w);
    }
    *w = '\0';
    free(content);
    return out;
}
