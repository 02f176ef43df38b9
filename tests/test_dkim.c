/*
 * test_dkim.c - DKIM signing (src/mail/dkim.c), checked by two verifiers no
 * one here wrote, which must agree: Debian's dkimpy (tests/dkim_verify.py)
 * and the npm package mailauth (tests/dkim_verify.js), with the public keys
 * derived from the test's own keys (made by openssl in the test directory).
 *
 *   - RSA-2048 and Ed25519 signatures verify, relaxed/relaxed, From
 *     over-signed (h= names it once more than it occurs), the header set
 *     as documented;
 *   - the signature is made once: kept in the stored form, the message
 *     built again from it is byte for byte the same and still verifies; a
 *     client may not supply one;
 *   - a subdomain is signed by its parent's key; a domain without a key is
 *     not signed;
 *   - a message changed after signing fails the verifier (the test can
 *     fail);
 *   - bad keys are refused naming the file: readable by others, not a key,
 *     too short, missing; a bad spec;
 *   - a Bcc-only message says "To: undisclosed-recipients: ;" (an empty
 *     group, as GMime writes it), signed too.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "http_helpers.h"
#include "outbox/mail.h"
#include "test.h"

static ob_mail *parse(const char *json)
{
    json_error_t e;
    json_t *v = json_loads(json, 0, &e);
    ASSERT(v != NULL);
    ob_mail *m = NULL;
    ob_problem p;
    ASSERT_OK(ob_mail_parse(v, OB_MAIL_REQUEST, NULL, &m, &p));
    json_decref(v);
    return m;
}

static void key(const char *file, const char *kind)
{
    char *out;
    int rc = !strcmp(kind, "rsa")
                 ? t_run(&out, "openssl genrsa -out %s 2048 2>&1", file)
                 : !strcmp(kind, "rsa512") ? t_run(&out, "openssl genrsa -out %s 512 2>&1", file)
                                           : t_run(&out, "openssl genpkey -algorithm ed25519 -out %s 2>&1", file);
    ASSERT_EQ(rc, 0);
    free(out);
    ASSERT_EQ(chmod(file, 0600), 0);
}

/* Both verifiers on `file`: dkimpy, then mailauth (node). Their exit
 * statuses must agree; the status, and their output in *said. */
static int verify_file(const char *file, const char *keys, char **said)
{
    char *py, *js;
    int a = t_run(&py, "%s %s %s 2>&1", DKIM_VERIFY, file, keys);
    int b = t_run(&js, "NODE_PATH=%s node %s %s %s 2>&1", NPM_TOOLS, DKIM_VERIFY_JS, file, keys);
    if (a != b)
        test_fail(__FILE__, __LINE__, "the verifiers disagree on %s: dkimpy %d (%s), mailauth %d (%s)",
                  file, a, py, b, js);
    size_t n = strlen(py) + strlen(js) + 32;
    *said = malloc(n);
    snprintf(*said, n, "dkimpy: %smailauth: %s", py, js);
    free(py);
    free(js);
    return a;
}

/* Build m into `file`, and verify it with both. */
static int verify(const ob_mail *m, const char *file, const char *keys, char **said)
{
    char *data;
    size_t len;
    ASSERT_OK(ob_mail_build(m, &data, &len));
    FILE *f = fopen(file, "wb");
    ASSERT(f && fwrite(data, 1, len, f) == len);
    fclose(f);
    free(data);
    return verify_file(file, keys, said);
}

TEST(rsa_and_ed25519_signatures_verify_with_dkimpy)
{
    ob_mail_init();
    key("rsa.pem", "rsa");
    key("ed.pem", "ed25519");
    ob_dkim *d;
    ASSERT_OK(ob_dkim_new(&d));
    ob_problem p;
    ASSERT_OK(ob_dkim_add_spec(d, "example.com:s2048:rsa.pem", &p));
    ASSERT_OK(ob_dkim_add(d, "example.org", "ed", "ed.pem", &p));
    const char *keys = "example.com:s2048:rsa.pem example.org:ed:ed.pem";
    static const char *const cases[][3] = {
        {"{\"from\":\"Ann <ann@example.com>\",\"to\":\"b@example.net\",\"cc\":\"c@example.net\","
         "\"reply_to\":\"r@example.com\",\"subject\":\"Héllo  there\",\"text\":\"a\\n\\nb  \\n\\n\","
         "\"html\":\"<p>h</p>\",\"headers\":{\"List-Unsubscribe\":\"<https://example.com/u>\"}}",
         "example.com", "rsa-sha256"},
        {"{\"from\":\"ann@example.org\",\"to\":\"b@example.net\",\"subject\":\"s\",\"text\":\"t\","
         "\"attachments\":[{\"filename\":\"a.txt\",\"content_type\":\"text/plain\","
         "\"content\":\"aGVsbG8=\"}]}",
         "example.org", "ed25519-sha256"},
    };
    for (size_t i = 0; i < 2; i++) {
        ob_mail *m = parse(cases[i][0]);
        const char *by;
        ASSERT_OK(ob_mail_sign(m, d, &by));
        ASSERT_STREQ(by, cases[i][1]);
        char *said;
        if (verify(m, "m.eml", keys, &said) != 0)
            test_fail(__FILE__, __LINE__, "dkimpy: %s", said);
        char want[128];
        snprintf(want, sizeof want, "dkimpy: pass %s %s", cases[i][1], cases[i][2]);
        ASSERT(strstr(said, want) != NULL);
        snprintf(want, sizeof want, "mailauth: pass %s %s", cases[i][1], cases[i][2]);
        ASSERT(strstr(said, want) != NULL);
        free(said);
        /* relaxed/relaxed, From over-signed, the fields we sign */
        json_t *st = ob_mail_to_json(m);
        const char *sig = json_string_value(json_object_get(st, "dkim"));
        ASSERT(sig && strstr(sig, "c=relaxed/relaxed"));
        ASSERT(strstr(sig, "h=From:From:To:") && strstr(sig, "Subject") &&
               strstr(sig, "Message-ID") && strstr(sig, "Date") && strstr(sig, "MIME-Version"));
        if (i == 0)
            ASSERT(strstr(sig, "Cc") && strstr(sig, "Reply-To") && strstr(sig, "List-Unsubscribe"));
        /* once: signing again changes nothing; the stored form builds the
         * same bytes, which still verify */
        char *a, *b;
        size_t la, lb;
        ASSERT_OK(ob_mail_build(m, &a, &la));
        ASSERT_OK(ob_mail_sign(m, d, &by));
        ASSERT(by == NULL);
        ob_mail *again = NULL;
        ASSERT_OK(ob_mail_parse(st, OB_MAIL_STORED, NULL, &again, &p));
        ASSERT_OK(ob_mail_build(again, &b, &lb));
        ASSERT(la == lb && memcmp(a, b, la) == 0);
        ASSERT(strncmp(a, "DKIM-Signature: v=1;", 20) == 0);
        ASSERT_EQ(verify(again, "again.eml", keys, &said), 0);
        free(said);
        /* changed after signing: the verifier says so */
        char *out;
        ASSERT_EQ(t_run(&out, "sed -i 's/^Subject: .*/Subject: changed/' again.eml"), 0);
        free(out);
        ASSERT_EQ(verify_file("again.eml", keys, &said), 1);
        ASSERT(strstr(said, "fail") != NULL);
        free(said);
        free(a), free(b);
        json_decref(st);
        ob_mail_free(m), ob_mail_free(again);
    }
    ob_dkim_free(d);
}

TEST(a_parent_domains_key_signs_and_other_domains_are_not_signed)
{
    ob_mail_init();
    key("ed.pem", "ed25519");
    ob_dkim *d;
    ASSERT_OK(ob_dkim_new(&d));
    ASSERT_OK(ob_dkim_add_spec(d, "Example.COM:k1:ed.pem", NULL));
    ob_mail *m = parse("{\"from\":\"a@mail.example.com\",\"to\":\"b@example.net\",\"subject\":\"s\","
                       "\"text\":\"t\"}");
    const char *by;
    ASSERT_OK(ob_mail_sign(m, d, &by));
    ASSERT_STREQ(by, "example.com");
    char *said;
    ASSERT_EQ(verify(m, "m.eml", "example.com:k1:ed.pem", &said), 0);
    free(said);
    ob_mail_free(m);
    m = parse("{\"from\":\"a@notexample.com\",\"to\":\"b@example.net\",\"subject\":\"s\",\"text\":\"t\"}");
    ASSERT_OK(ob_mail_sign(m, d, &by));
    ASSERT(by == NULL);
    json_t *st = ob_mail_to_json(m);
    ASSERT(json_object_get(st, "dkim") == NULL);
    json_decref(st);
    ob_mail_free(m);
    ob_dkim_free(d);
    /* a client cannot plant a signature */
    json_t *v = json_loads("{\"from\":\"a@example.com\",\"to\":\"b@example.net\",\"subject\":\"s\","
                           "\"text\":\"t\",\"dkim\":\"v=1; a=rsa-sha256\"}", 0, NULL);
    ob_problem p;
    ASSERT_EQ(ob_mail_parse(v, OB_MAIL_REQUEST, NULL, &m, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "dkim");
    json_decref(v);
}

TEST(bad_keys_are_refused_naming_the_file)
{
    ob_mail_init();
    ob_dkim *d;
    ASSERT_OK(ob_dkim_new(&d));
    ob_problem p;
    key("open.pem", "ed25519");
    ASSERT_EQ(chmod("open.pem", 0644), 0);
    ASSERT_EQ(ob_dkim_add(d, "example.com", "s", "open.pem", &p), OB_EINVAL);
    ASSERT(strstr(p.message, "open.pem") && strstr(p.message, "readable by others"));
    FILE *f = fopen("junk.pem", "w");
    fputs("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    chmod("junk.pem", 0600);
    ASSERT_EQ(ob_dkim_add(d, "example.com", "s", "junk.pem", &p), OB_EINVAL);
    ASSERT(strstr(p.message, "junk.pem") && strstr(p.message, "not a PEM private key"));
    key("short.pem", "rsa512");
    ASSERT_EQ(ob_dkim_add(d, "example.com", "s", "short.pem", &p), OB_EINVAL);
    ASSERT(strstr(p.message, "short.pem") && strstr(p.message, "512-bit"));
    ASSERT_EQ(ob_dkim_add(d, "example.com", "s", "missing.pem", &p), OB_EINVAL);
    ASSERT(strstr(p.message, "missing.pem") != NULL);
    ASSERT_EQ(ob_dkim_add_spec(d, "example.com:onlytwo", &p), OB_EINVAL);
    ASSERT(strstr(p.message, "DOMAIN:SELECTOR:KEYFILE") != NULL);
    key("ok.pem", "ed25519");
    ASSERT_EQ(ob_dkim_add(d, "exa mple.com", "s", "ok.pem", &p), OB_EINVAL);
    ASSERT_EQ(ob_dkim_add(d, "example.com", "s;x", "ok.pem", &p), OB_EINVAL);
    ASSERT_OK(ob_dkim_add(d, "example.com", "s", "ok.pem", &p));
    ASSERT_EQ(ob_dkim_add(d, "EXAMPLE.com", "t", "ok.pem", &p), OB_EINVAL); /* one key a domain */
    ob_dkim_free(d);
}

TEST(a_bcc_only_message_says_undisclosed_recipients_and_is_signed)
{
    ob_mail_init();
    key("rsa.pem", "rsa");
    ob_dkim *d;
    ASSERT_OK(ob_dkim_new(&d));
    ASSERT_OK(ob_dkim_add_spec(d, "example.com:s:rsa.pem", NULL));
    ob_mail *m = parse("{\"from\":\"a@example.com\",\"bcc\":[\"x@example.net\",\"y@example.net\"],"
                       "\"subject\":\"s\",\"text\":\"t\"}");
    ASSERT_OK(ob_mail_sign(m, d, NULL));
    char *data;
    size_t len;
    ASSERT_OK(ob_mail_build(m, &data, &len));
    ASSERT(strstr(data, "\r\nTo: undisclosed-recipients: ;\r\n") != NULL); /* a group, empty */
    ASSERT(!strstr(data, "x@example.net") && !strstr(data, "y@example.net"));
    free(data);
    char *said;
    ASSERT_EQ(verify(m, "m.eml", "example.com:s:rsa.pem", &said), 0);
    free(said);
    ob_mail_free(m);
    ob_dkim_free(d);
}

static const test_case tests[] = {
    T(rsa_and_ed25519_signatures_verify_with_dkimpy),
    T(a_parent_domains_key_signs_and_other_domains_are_not_signed),
    T(bad_keys_are_refused_naming_the_file),
    T(a_bcc_only_message_says_undisclosed_recipients_and_is_signed),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
