/*
 * bench_dkim.c - what DKIM signing costs a message, against libopendkim
 * (the peer, signing the same bytes in the same run):
 *
 *   build only        ob_mail_build of the message (what an unsigned
 *                     acceptance does to it: nothing; shown as the base)
 *   outbox RSA-2048   ob_mail_sign: build, canonicalize, hash, sign
 *   outbox Ed25519    the same with an Ed25519 key
 *   libopendkim ...   the built bytes signed by libopendkim 2.11 (Debian
 *                     12's), both algorithms, with the same header list
 *
 * Each row: messages a second on one thread and microseconds a message,
 * the median of R rounds of N messages. The message: a 1 KB text and html
 * mail with two recipients (bench/post_message.lua's size).
 *
 *   bench_dkim [--messages N] [--rounds R]
 *
 * Run it with bench/dkim (installs the peer, makes the keys, builds
 * Release). Needs the key files rsa.pem and ed.pem in the current
 * directory.
 */
#include <opendkim/dkim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outbox/mail.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#define MESSAGE                                                                              \
    "{\"from\":\"Ann <ann@example.com>\",\"to\":[\"bob@example.net\",\"carol@example.net\"],"  \
    "\"subject\":\"Your order has shipped\",\"text\":\"%s\",\"html\":\"<p>%s</p>\"}"

static ob_mail *message(void)
{
    char body[520], json[2048];
    memset(body, 'x', sizeof body - 1);
    for (size_t i = 60; i < sizeof body - 1; i += 61)
        body[i] = ' ';
    body[sizeof body - 1] = '\0';
    snprintf(json, sizeof json, MESSAGE, body, body);
    json_t *v = json_loads(json, 0, NULL);
    ob_mail *m = NULL;
    if (!v || ob_mail_parse(v, OB_MAIL_REQUEST, NULL, &m, NULL))
        abort();
    json_decref(v);
    return m;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_dkim: %s: run it through bench/dkim\n", path);
        exit(1);
    }
    static char buf[3][16384];
    static int i;
    char *b = buf[i++ % 3];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

typedef double (*run_fn)(int n, void *arg);

/* ---- outbox ---- */

typedef struct ours {
    ob_dkim *d; /* NULL: build only */
} ours;

static double run_ours(int n, void *arg)
{
    ours *o = arg;
    ob_mail *tmpl = message();
    json_t *stored = ob_mail_to_json(tmpl);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        ob_mail *m;
        if (ob_mail_parse(stored, OB_MAIL_STORED, NULL, &m, NULL))
            abort();
        char *raw;
        size_t len;
        if (o->d) {
            const char *by;
            if (ob_mail_sign(m, o->d, &by) || !by)
                abort();
        } else if (!ob_mail_build(m, &raw, &len)) {
            free(raw);
        }
        ob_mail_free(m);
    }
    double t = now_s() - t0;
    json_decref(stored);
    ob_mail_free(tmpl);
    return t;
}

/* ---- the peer: libopendkim ---- */

typedef struct peer {
    DKIM_LIB *lib;
    const char *key;
    dkim_alg_t alg;
} peer;

static const char *SIGNED[] = {"from", "to", "cc", "reply-to", "subject", "date", "message-id",
                               "mime-version", "content-type", "content-transfer-encoding",
                               "in-reply-to", "references", "list-unsubscribe",
                               "list-unsubscribe-post", "list-id", NULL};
static const char *OVER[] = {"from", NULL};

static void sign_peer(peer *p, const char *raw, size_t len)
{
    DKIM_STAT st;
    DKIM *k = dkim_sign(p->lib, (const u_char *)"bench", NULL, (dkim_sigkey_t)p->key,
                        (const u_char *)"s", (const u_char *)"example.com", DKIM_CANON_RELAXED,
                        DKIM_CANON_RELAXED, p->alg, -1, &st);
    const char *end = raw + len, *h = raw;
    while (k && h + 1 < end && !(h[0] == '\r' && h[1] == '\n')) {
        const char *e = h;
        for (;;) {
            e = memchr(e, '\r', (size_t)(end - e));
            if (!e || e + 2 >= end || !(e[2] == ' ' || e[2] == '\t'))
                break;
            e += 2;
        }
        dkim_header(k, (u_char *)h, (size_t)(e - h));
        h = e + 2;
    }
    _Bool tk;
    u_char *sig;
    size_t sl;
    if (!k || dkim_eoh(k) || dkim_body(k, (u_char *)h + 2, (size_t)(end - h - 2)) ||
        dkim_eom(k, &tk) || dkim_getsighdr_d(k, 16, &sig, &sl))
        abort();
    dkim_free(k);
}

static double run_peer(int n, void *arg)
{
    peer *p = arg;
    ob_mail *tmpl = message();
    json_t *stored = ob_mail_to_json(tmpl);
    double t0 = now_s();
    for (int i = 0; i < n; i++) { /* the same work as ours: parse, build, sign */
        ob_mail *m;
        char *raw;
        size_t len;
        if (ob_mail_parse(stored, OB_MAIL_STORED, NULL, &m, NULL) || ob_mail_build(m, &raw, &len))
            abort();
        sign_peer(p, raw, len);
        free(raw);
        ob_mail_free(m);
    }
    double t = now_s() - t0;
    json_decref(stored);
    ob_mail_free(tmpl);
    return t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(run_fn fn, void *arg, int n, int rounds)
{
    double t[32];
    fn(n / 10 + 1, arg); /* warm */
    for (int r = 0; r < rounds; r++)
        t[r] = fn(n, arg);
    qsort(t, (size_t)rounds, sizeof *t, cmp);
    return t[rounds / 2];
}

int main(int argc, char **argv)
{
    int n = 2000, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--messages"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
    }
    if (n < 1 || rounds < 1 || rounds > 31) {
        fprintf(stderr, "usage: bench_dkim [--messages N] [--rounds 1-31]\n");
        return 2;
    }
    ob_mail_init();
    ob_dkim *rsa, *ed;
    if (ob_dkim_new(&rsa) || ob_dkim_add(rsa, "example.com", "s", "rsa.pem", NULL) ||
        ob_dkim_new(&ed) || ob_dkim_add(ed, "example.com", "s", "ed.pem", NULL)) {
        fprintf(stderr, "bench_dkim: rsa.pem and ed.pem (mode 0600): run it through bench/dkim\n");
        return 1;
    }
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, SIGNED, sizeof(char **));
    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, OVER, sizeof(char **));
    ours base = {NULL}, o_rsa = {rsa}, o_ed = {ed};
    peer p_rsa = {lib, slurp("rsa.pem"), DKIM_SIGN_RSASHA256};
    peer p_ed = {lib, slurp("ed.pem"), DKIM_SIGN_ED25519SHA256};
    struct {
        const char *name;
        run_fn fn;
        void *arg;
    } rows[] = {{"build only (unsigned)", run_ours, &base},
                {"outbox RSA-2048", run_ours, &o_rsa},
                {"libopendkim RSA-2048", run_peer, &p_rsa},
                {"outbox Ed25519", run_ours, &o_ed},
                {"libopendkim Ed25519", run_peer, &p_ed}};
    printf("DKIM signing, one thread, %d messages a round, median of %d rounds\n", n, rounds);
    printf("%-24s %12s %10s %12s\n", "", "msg/s", "us/msg", "sign us/msg");
    double base_us = 0;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        double t = median(rows[i].fn, rows[i].arg, n, rounds);
        double us = t / n * 1e6;
        if (i == 0)
            base_us = us;
        printf("%-24s %12.0f %10.1f %12.1f\n", rows[i].name, n / t, us, i ? us - base_us : 0.0);
    }
    ob_dkim_free(rsa);
    ob_dkim_free(ed);
    dkim_close(lib);
    return 0;
}
