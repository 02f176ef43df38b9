/*
 * dkim.c - DKIM signatures (RFC 6376; Ed25519 keys, RFC 8463), made with
 * OpenSSL: the keys by signing domain (ob_dkim), and ob_mail_sign, which
 * signs a message once, when it is accepted.
 *
 * Why OpenSSL and not libopendkim: Debian 12's libopendkim (2.11.0 beta)
 * leaks its Ed25519 signing state in every dkim_free() (ASan measured
 * ~1.2 KB a message; fixed upstream only in 2026, OpenDKIM PR #321), which
 * a daemon signing millions of messages cannot carry. Signing is small:
 * relaxed canonicalization (canon.c-sized code below), two SHA-256 hashes
 * and one signature; two independent verifiers (dkimpy, mailauth) check it
 * in the tests, and a fuzz target runs the canonicalization.
 *
 *   body hash   bh = base64(SHA-256(relaxed body))
 *   header hash the fields of h=, each taken bottom-up (the last instance
 *               not used yet; a name listed once more than it occurs, as
 *               From is, signs its absence), relaxed, then this
 *               DKIM-Signature field with an empty b=, relaxed, without
 *               its final CRLF
 *   b=          RSA: PKCS#1 v1.5 over SHA-256 of that; Ed25519: PureEdDSA
 *               over the SHA-256 hash of it (RFC 8463 section 3)
 *
 * The signature covers the message exactly as ob_mail_build makes it
 * (Message-ID, Date and the boundaries are fixed at acceptance), and is
 * kept in the stored form (ob_mail.dkim): every attempt sends the same
 * bytes under the same signature, and ob_mail_build puts it first.
 *
 * Which key: the From domain's, else its nearest parent's that has one (a
 * key for example.com signs mail.example.com). Signed fields: SIGNED
 * below, those present, with From over-signed.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "mail/mail.h"

#define KEY_FILE_MAX (64 << 10)

/* The fields signed when present, in this order (h= names them as the
 * message spells them); From once more, over-signed. */
static const char *const SIGNED[] = {"From", "To", "Cc", "Reply-To", "Subject", "Date",
                                     "Message-ID", "MIME-Version", "Content-Type",
                                     "Content-Transfer-Encoding", "In-Reply-To", "References",
                                     "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"};
#define NSIGNED (sizeof SIGNED / sizeof *SIGNED)
#define MAX_FIELDS 256 /* header fields of a message looked at */

typedef struct dkim_key {
    char domain[256];
    char selector[64];
    EVP_PKEY *pkey;
    bool ed25519;
} dkim_key;

struct ob_dkim {
    dkim_key *keys;
    size_t n;
};

int ob_dkim_new(ob_dkim **out)
{
    ob_dkim *d = calloc(1, sizeof *d);
    if (!d)
        return OB_ENOMEM;
    *out = d;
    return 0;
}

void ob_dkim_free(ob_dkim *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        EVP_PKEY_free(d->keys[i].pkey);
    free(d->keys);
    free(d);
}

/* The key file: a regular file no one else may read, PEM, under 64 KiB. */
static int read_key(const char *path, char **out, ob_problem *p)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return obi_problem(p, OB_EINVAL, "dkim", "%s: %s", path, strerror(e));
    }
    int rc = 0;
    if (!S_ISREG(st.st_mode))
        rc = obi_problem(p, OB_EINVAL, "dkim", "%s is not a regular file", path);
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        rc = obi_problem(p, OB_EINVAL, "dkim", "%s is readable by others (mode %03o): chmod 600 it",
                         path, (unsigned)(st.st_mode & 0777));
    else if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX)
        rc = obi_problem(p, OB_EINVAL, "dkim", "%s: not a key (%lld bytes)", path,
                         (long long)st.st_size);
    char *buf = rc ? NULL : malloc((size_t)st.st_size + 1);
    if (!rc && !buf)
        rc = obi_problem(p, OB_ENOMEM, "dkim", "out of memory");
    ssize_t got = rc ? 0 : read(fd, buf, (size_t)st.st_size);
    if (!rc && got != st.st_size)
        rc = obi_problem(p, OB_EINVAL, "dkim", "%s: short read", path);
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *out = buf;
    return 0;
}

/* The key: RSA of 1024 bits or more (RFC 8301), or Ed25519. */
static int load_key(const char *path, const char *pem, dkim_key *out, ob_problem *p)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!k)
        return obi_problem(p, OB_EINVAL, "dkim", "%s: not a PEM private key", path);
    int rc = 0, type = EVP_PKEY_get_base_id(k);
    if (type == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) >= 1024)
        out->ed25519 = false;
    else if (type == EVP_PKEY_ED25519)
        out->ed25519 = true;
    else if (type == EVP_PKEY_RSA)
        rc = obi_problem(p, OB_EINVAL, "dkim", "%s: a %d-bit RSA key (1024 at least; 2048 is "
                         "usual)", path, EVP_PKEY_get_bits(k));
    else
        rc = obi_problem(p, OB_EINVAL, "dkim", "%s: neither an RSA nor an Ed25519 key", path);
    if (rc)
        EVP_PKEY_free(k);
    else
        out->pkey = k;
    return rc;
}

static bool label_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n || n > max || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return false;
    return true;
}

int ob_dkim_add(ob_dkim *d, const char *domain, const char *selector, const char *keyfile,
                ob_problem *p)
{
    if (!d || !domain || !selector || !keyfile)
        return obi_problem(p, OB_EINVAL, "dkim", "DOMAIN:SELECTOR:KEYFILE");
    if (!label_ok(domain, 253) || !strchr(domain, '.'))
        return obi_problem(p, OB_EINVAL, "dkim", "\"%.80s\" is not a domain (ASCII; an IDN "
                           "in punycode)", domain);
    if (!label_ok(selector, 63))
        return obi_problem(p, OB_EINVAL, "dkim", "\"%.80s\" is not a selector", selector);
    for (size_t i = 0; i < d->n; i++)
        if (!strcasecmp(d->keys[i].domain, domain))
            return obi_problem(p, OB_EINVAL, "dkim", "%s has a key already", domain);
    char *pem = NULL;
    dkim_key k = {0};
    int rc = read_key(keyfile, &pem, p);
    if (rc)
        return rc;
    rc = load_key(keyfile, pem, &k, p);
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    if (rc)
        return rc;
    dkim_key *v = realloc(d->keys, (d->n + 1) * sizeof *v);
    if (!v) {
        EVP_PKEY_free(k.pkey);
        return obi_problem(p, OB_ENOMEM, "dkim", "out of memory");
    }
    d->keys = v;
    snprintf(k.domain, sizeof k.domain, "%s", domain);
    for (char *c = k.domain; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    snprintf(k.selector, sizeof k.selector, "%s", selector);
    d->keys[d->n++] = k;
    return 0;
}

int ob_dkim_add_spec(ob_dkim *d, const char *spec, ob_problem *p)
{
    char buf[4096];
    if (!spec || snprintf(buf, sizeof buf, "%s", spec) >= (int)sizeof buf)
        return obi_problem(p, OB_EINVAL, "dkim", "DOMAIN:SELECTOR:KEYFILE");
    char *sel = strchr(buf, ':'), *file = sel ? strchr(sel + 1, ':') : NULL;
    if (!sel || !file || !file[1])
        return obi_problem(p, OB_EINVAL, "dkim", "\"%.200s\": expected DOMAIN:SELECTOR:KEYFILE",
                           spec);
    *sel++ = '\0';
    *file++ = '\0';
    return ob_dkim_add(d, buf, sel, file, p);
}

/* The key for `domain`: its own, else its nearest parent's. */
static const dkim_key *key_for(const ob_dkim *d, const char *domain)
{
    for (const char *s = domain; s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL)
        for (size_t i = 0; i < d->n; i++)
            if (!strcasecmp(d->keys[i].domain, s))
                return &d->keys[i];
    return NULL;
}


/* ---- canonicalization (RFC 6376 section 3.4.2, 3.4.4: relaxed) ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static bool wsp(char c) { return c == ' ' || c == '\t'; }

/* A header field ("Name: value", folded lines inside, no final CRLF),
 * relaxed: the name lower-cased, the value unfolded, white space runs one
 * space, none at the ends of the value, none around the colon; CRLF after. */
static void canon_header(const char *f, size_t n, buf *out)
{
    const char *colon = memchr(f, ':', n);
    if (!colon)
        return;
    const char *ne = colon;
    while (ne > f && wsp(ne[-1]))
        ne--;
    for (const char *c = f; c < ne; c++) {
        char l = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        put(out, &l, 1);
    }
    put(out, ":", 1);
    bool space = false, started = false;
    for (const char *c = colon + 1; c < f + n; c++) {
        if (*c == '\r' || *c == '\n' || wsp(*c)) { /* folds and white space */
            space = started;
            continue;
        }
        if (space)
            put(out, " ", 1);
        put(out, c, 1);
        space = false;
        started = true;
    }
    put(out, "\r\n", 2);
}

/* The body (CRLF lines), relaxed: white space at line ends removed, runs of
 * it one space, empty lines at the end removed; a non-empty body ends with
 * CRLF. */
static void canon_body(const char *b, size_t n, buf *out)
{
    size_t pending = 0; /* empty lines seen and not yet written */
    const char *end = b + n;
    while (b < end) {
        const char *e = b;
        while (e < end && *e != '\r' && *e != '\n')
            e++;
        const char *last = e; /* the line without its trailing white space */
        while (last > b && wsp(last[-1]))
            last--;
        if (last == b) {
            pending += e < end; /* empty (or white space only): written only if a line follows */
        } else {
            for (; pending; pending--)
                put(out, "\r\n", 2);
            bool space = false;
            for (const char *c = b; c < last; c++) {
                if (wsp(*c)) {
                    space = true;
                    continue;
                }
                if (space)
                    put(out, " ", 1);
                put(out, c, 1);
                space = false;
            }
            put(out, "\r\n", 2);
        }
        if (e < end && *e == '\r' && e + 1 < end && e[1] == '\n')
            e++;
        b = e < end ? e + 1 : e;
    }
}

/* ---- signing ---- */

typedef struct field {
    const char *p; /* "Name: value" with its folds, no final CRLF */
    size_t n, name;
    bool used;
} field;

/* The message's header fields (at most MAX_FIELDS) and where the body
 * starts. false: not a message (no blank line). */
static bool split(const char *raw, size_t len, field *f, size_t *nf, const char **body)
{
    const char *end = raw + len, *h = raw;
    *nf = 0;
    while (h + 1 < end && !(h[0] == '\r' && h[1] == '\n')) {
        const char *e = h;
        for (;;) { /* a field ends at a CRLF not followed by white space */
            e = memchr(e, '\r', (size_t)(end - e));
            if (!e || e + 2 >= end || !wsp(e[2]))
                break;
            e += 2;
        }
        const char *colon = e ? memchr(h, ':', (size_t)(e - h)) : NULL;
        if (!e || !colon || *nf == MAX_FIELDS)
            return false;
        f[(*nf)++] = (field){h, (size_t)(e - h), (size_t)(colon - h), false};
        h = e + 2;
    }
    *body = h + 2 <= end ? h + 2 : end;
    return h + 1 < end;
}

static bool named(const field *f, const char *name)
{
    return strlen(name) == f->name && !strncasecmp(f->p, name, f->name);
}

static bool digest(const char *d, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    return EVP_Digest(d, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32;
}

/* The signature of `data` (base64, malloc'd), as the key's algorithm wants. */
static char *sign_data(const dkim_key *k, const char *data, size_t n)
{
    unsigned char h[32], sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL;
    if (ok && k->ed25519) /* RFC 8463: PureEdDSA over the SHA-256 of the data */
        ok = digest(data, n, h) && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, h, sizeof h) == 1;
    else if (ok)
        ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data, n) == 1;
    EVP_MD_CTX_free(ctx);
    char *b64 = ok ? malloc(OB_BASE64_LEN(siglen) + 1) : NULL;
    if (b64)
        ob_base64_encode(sig, siglen, b64);
    return b64;
}

/* The DKIM-Signature value for the message `raw`, malloc'd; NULL on OOM
 * or a message that is not one. */
static char *signature(const dkim_key *k, const char *raw, size_t len)
{
    field f[MAX_FIELDS];
    size_t nf;
    const char *body;
    if (!split(raw, len, f, &nf, &body))
        return NULL;
    buf cb = {0}, hd = {0}, val = {0};
    canon_body(body, (size_t)(raw + len - body), &cb);
    unsigned char bh[32];
    char bh64[OB_BASE64_LEN(32) + 1];
    if (cb.oom || !digest(cb.p ? cb.p : "", cb.len, bh)) {
        free(cb.p);
        return NULL;
    }
    ob_base64_encode(bh, sizeof bh, bh64);
    free(cb.p);

    /* h=: each signed name once per instance, From once more */
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)(ob_now_ms() / 1000));
    put(&val, "v=1; a=", 7);
    const char *a = k->ed25519 ? "ed25519-sha256" : "rsa-sha256";
    put(&val, a, strlen(a));
    put(&val, "; c=relaxed/relaxed; d=", 23);
    put(&val, k->domain, strlen(k->domain));
    put(&val, "; s=", 4);
    put(&val, k->selector, strlen(k->selector));
    put(&val, ";\r\n\tt=", 6);
    put(&val, t, strlen(t));
    put(&val, "; bh=", 5);
    put(&val, bh64, strlen(bh64));
    put(&val, ";\r\n\th=", 6);
    bool first = true;
    for (size_t s = 0; s < NSIGNED; s++) {
        int times = 0;
        for (size_t i = 0; i < nf; i++)
            times += named(&f[i], SIGNED[s]);
        times += s == 0; /* From, over-signed */
        for (int i = 0; i < times; i++) {
            /* the header hash: the last instance not used yet (none: absent) */
            for (size_t j = nf; j-- > 0;)
                if (!f[j].used && named(&f[j], SIGNED[s])) {
                    f[j].used = true;
                    canon_header(f[j].p, f[j].n, &hd);
                    break;
                }
            if (!first)
                put(&val, ":", 1);
            put(&val, SIGNED[s], strlen(SIGNED[s]));
            first = false;
        }
    }
    put(&val, ";\r\n\tb=", 6);
    /* the field itself, b= empty, relaxed, without its final CRLF */
    buf self = {0};
    put(&self, "DKIM-Signature: ", 16);
    put(&self, val.p ? val.p : "", val.len);
    canon_header(self.p ? self.p : "", self.len, &hd);
    free(self.p);
    char *b64 = NULL;
    if (!hd.oom && !val.oom && hd.len >= 2)
        b64 = sign_data(k, hd.p, hd.len - 2);
    free(hd.p);
    if (!b64) {
        free(val.p);
        return NULL;
    }
    for (size_t i = 0, n = strlen(b64); i < n; i += 64) { /* folded, 64 a line */
        if (i)
            put(&val, "\r\n\t ", 4);
        put(&val, b64 + i, n - i < 64 ? n - i : 64);
    }
    free(b64);
    if (val.oom) {
        free(val.p);
        return NULL;
    }
    return val.p;
}

int ob_mail_sign(ob_mail *m, const ob_dkim *d, const char **domain)
{
    if (domain)
        *domain = NULL;
    if (!m || !d || m->dkim)
        return 0; /* nothing to sign with, or signed already (once) */
    const char *at = strrchr(m->from.addr, '@');
    const dkim_key *key = at ? key_for(d, at + 1) : NULL;
    if (!key)
        return 0;
    char *raw;
    size_t len;
    int rc = ob_mail_build(m, &raw, &len);
    if (rc)
        return rc;
    m->dkim = signature(key, raw, len);
    free(raw);
    if (!m->dkim) {
        OB_ERROR("dkim: cannot sign %s for %s", m->message_id, key->domain);
        return OB_ENOMEM;
    }
    if (domain)
        *domain = key->domain;
    return 0;
}
