/*
 * test_smtp.c - mail end to end, with real processes: outboxd, driven with
 * curl and the CLI, delivering to real SMTP servers started on free
 * 127.0.0.1 ports in the test's directory:
 *
 *   tests/smtp_relay.py   aiosmtpd scripted by recipient (4xx/5xx at RCPT or
 *                         after DATA, a dropped connection, a stall),
 *                         STARTTLS with a certificate made here by openssl,
 *                         AUTH; it keeps every message and every RCPT
 *   Postfix               a private instance (tests/postfix_relay.sh)
 *                         relaying into Postfix's smtp-sink
 *
 * and the /v1/messages API itself (validation, batch, idempotency, wait)
 * on the file: transport.
 */
#include <dirent.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "http_helpers.h"
#include "mime_helpers.h"
#include "od_helpers.h"
#include "relay_helpers.h"
#include "outbox/mail.h"

#ifndef POSTFIX_RELAY
#error "POSTFIX_RELAY: the path of tests/postfix_relay.sh"
#endif


/* The text of file DIR/NAME (malloc'd), or NULL. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    if (len)
        *len = got;
    return s;
}

/* ---- the API ---- */

/* METHOD PATH with headers and a JSON body (may be NULL): the response's
 * JSON (new reference; NULL if not JSON) and *status. */
static json_t *call(const od *d, const char *method, const char *path, const char *headers,
                    const char *body, int *status)
{
    char *out;
    if (body) {
        FILE *f = fopen("body.json", "w");
        fputs(body, f);
        fclose(f);
    }
    t_run(&out, "curl -s -m 60 -X %s -o resp -w '%%{http_code}\\n' %s %s %s%s; cat resp",
          method, body ? "-H 'Content-Type: application/json' --data-binary @body.json" : "",
          headers ? headers : "", d->url, path);
    *status = atoi(out);
    json_t *v = json_loads(strchr(out, '\n') + 1, 0, NULL);
    free(out);
    return v;
}

static json_t *send_ok(const od *d, const char *body)
{
    int st;
    json_t *v = call(d, "POST", "/v1/messages", NULL, body, &st);
    if (st != 202 || !v)
        test_fail(__FILE__, __LINE__, "POST /v1/messages: %d", st);
    return v;
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* GET /v1/messages/ID until final (or 60 s); the message. */
static json_t *final(const od *d, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/messages/%s", id);
    for (int i = 0; i < 6; i++) {
        int st;
        json_t *v = call(d, "GET", path, "-H 'Prefer: wait=10'", NULL, &st);
        ASSERT_EQ(st, 200);
        const char *s = str(v, "state");
        if (!strcmp(s, "completed") || !strcmp(s, "discarded") || !strcmp(s, "cancelled"))
            return v;
        json_decref(v);
    }
    test_fail(__FILE__, __LINE__, "message %s not final after 60 s", id);
}

/* GET /v1/messages/ID until fn(message) holds (or 30 s). */
static json_t *until(const od *d, const char *id, bool (*fn)(const json_t *))
{
    char path[128];
    snprintf(path, sizeof path, "/v1/messages/%s", id);
    for (int i = 0; i < 300; i++) {
        int st;
        json_t *v = call(d, "GET", path, NULL, NULL, &st);
        if (v && fn(v))
            return v;
        json_decref(v);
        h_sleep_ms(100);
    }
    test_fail(__FILE__, __LINE__, "message %s: the condition did not come in 30 s", id);
}

static json_t *rcpt(const json_t *msg, const char *address)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(msg, "recipients"), i, r)
        if (!strcmp(str(r, "address"), address))
            return r;
    test_fail(__FILE__, __LINE__, "no recipient %s", address);
}

static void expect_rcpt(const json_t *msg, const char *address, const char *state, int code,
                        const char *text)
{
    json_t *r = rcpt(msg, address);
    if (strcmp(str(r, "state"), state) || json_integer_value(json_object_get(r, "code")) != code ||
        (text && !strstr(str(r, "reply"), text))) {
        char *d = json_dumps(r, 0);
        test_fail(__FILE__, __LINE__, "%s: want %s %d \"%s\", got %s", address, state, code,
                  text ? text : "", d);
    }
}

static char smtp_flags[512];

/* outboxd sending to smtp://HOST:PORT with extra flags. */
static od od_smtp(const char *userinfo, int port, const char *query, const char *extra)
{
    snprintf(smtp_flags, sizeof smtp_flags,
             "--smtp smtp://%s127.0.0.1:%d%s --mail-retry-min 1 --mail-retry-max 1 %s",
             userinfo ? userinfo : "", port, query ? query : "?starttls=no", extra ? extra : "");
    return od_start(smtp_flags);
}

/* ---- tests ---- */

static bool settled(const json_t *m)
{
    size_t i;
    json_t *r;
    int n = 0;
    json_array_foreach(json_object_get(m, "recipients"), i, r)
        n += !strcmp(str(r, "state"), "delivered") || !strcmp(str(r, "state"), "bounced");
    return n == 3;
}

TEST(replies_per_recipient_and_retries_only_the_deferred)
{
    server s = relay_start("relay", NULL);
    od d = od_smtp(NULL, s.port, NULL, "--mail-lifetime 4");
    json_t *v = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"ok-1@example.com\","
                            "\"rcpt550-1@example.com\",\"flaky2-1@example.com\"],"
                            "\"cc\":\"rcpt451-1@example.com\",\"subject\":\"s\",\"text\":\"t\"}");
    char id[64];
    snprintf(id, sizeof id, "%s", str(v, "id"));
    ASSERT_STREQ(str(rcpt(v, "ok-1@example.com"), "state"), "pending");
    json_decref(v);

    /* After the first attempts: the good ones are done, the rest waits. */
    json_t *m = until(&d, id, settled);
    expect_rcpt(m, "ok-1@example.com", "delivered", 250, "queued as");
    ASSERT_STREQ(str(rcpt(m, "ok-1@example.com"), "enhanced"), "2.0.0");
    expect_rcpt(m, "rcpt550-1@example.com", "bounced", 550, "no such user");
    ASSERT_STREQ(str(rcpt(m, "rcpt550-1@example.com"), "enhanced"), "5.1.1");
    expect_rcpt(m, "flaky2-1@example.com", "delivered", 250, NULL);
    ASSERT_EQ(json_integer_value(json_object_get(rcpt(m, "flaky2-1@example.com"), "attempts")),
              3);
    json_decref(m);

    /* The deferred one gives up after the lifetime: bounced, its last
     * reply kept; someone was delivered, so the message completed. */
    m = final(&d, id);
    ASSERT_STREQ(str(m, "state"), "completed");
    expect_rcpt(m, "rcpt451-1@example.com", "bounced", 451, "gave up after");
    ASSERT(strstr(str(rcpt(m, "rcpt451-1@example.com"), "reply"), "try again later"));

    /* Each retry went only to who was still deferred. */
    ASSERT_EQ(rcpt_count(&s, "ok-1@example.com"), 1);
    ASSERT_EQ(rcpt_count(&s, "rcpt550-1@example.com"), 1);
    ASSERT_EQ(rcpt_count(&s, "flaky2-1@example.com"), 3);
    int tries = rcpt_count(&s, "rcpt451-1@example.com");
    ASSERT(tries >= 3);
    /* The schedule: each attempt's error, about a second (the backoff's
     * minimum here) or more apart. */
    json_t *errors = json_object_get(m, "errors");
    ASSERT((int)json_array_size(errors) == tries - 1); /* the last attempt completed */
    int64_t prev = 0;
    for (size_t i = 0; i < json_array_size(errors); i++) {
        int64_t at;
        ASSERT_OK(ob_time_parse(str(json_array_get(errors, i), "at"), &at));
        ASSERT(i == 0 || at - prev >= 850);
        prev = at;
    }
    ASSERT(strstr(str(json_array_get(errors, 0), "error"), "rcpt451-1@example.com: 451"));
    json_decref(m);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

static bool all_delivered(const json_t *m)
{
    size_t i;
    json_t *r;
    int n = 0;
    json_array_foreach(json_object_get(m, "recipients"), i, r)
        n += !strcmp(str(r, "state"), "delivered");
    return n == 300;
}

/* The outcome of 300 recipients must be stored (the limits fit each
 * other), or the retry of the deferred half would send to the delivered
 * half again. Addresses of a realistic length: 300 outcomes are then more
 * than the engine's default 64 KiB of result. */
#define PAD ".a-long-newsletter-subscriber-name@mail.subsidiary.example-company.com"
TEST(three_hundred_recipients_keep_their_outcome_and_only_the_deferred_are_retried)
{
    server s = relay_start("relay", NULL);
    od d = od_smtp(NULL, s.port, NULL, "--max-recipients 300");
    size_t cap = 64 << 10, n = 0;
    char *body = malloc(cap);
    n += (size_t)snprintf(body + n, cap - n, "{\"from\":\"a@example.com\",\"to\":[");
    for (int i = 0; i < 300; i++) /* even: accepted at once; odd: 451 once, then 250 */
        n += (size_t)snprintf(body + n, cap - n, "%s\"%s-%03d" PAD "\"", i ? "," : "",
                              i % 2 ? "flaky1" : "ok", i);
    snprintf(body + n, cap - n, "],\"subject\":\"s\",\"text\":\"t\"}");
    json_t *v = send_ok(&d, body);
    free(body);
    char id[64];
    snprintf(id, sizeof id, "%s", str(v, "id"));
    json_decref(v);
    json_t *m = until(&d, id, all_delivered);
    json_decref(m);
    m = final(&d, id);
    ASSERT_STREQ(str(m, "state"), "completed");
    ASSERT_EQ(json_array_size(json_object_get(m, "recipients")), 300);
    for (int i = 0; i < 300; i++) {
        char a[128];
        snprintf(a, sizeof a, "%s-%03d" PAD, i % 2 ? "flaky1" : "ok", i);
        if (rcpt_count(&s, a) != (i % 2 ? 2 : 1))
            test_fail(__FILE__, __LINE__, "%s was sent %d times", a, rcpt_count(&s, a));
    }
    json_decref(m);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

/* ---- round trip ---- */

TEST(round_trip_headers_bodies_attachments_equal_the_input)
{
    server s = relay_start("relay", NULL);
    od d = od_smtp(NULL, s.port, NULL, NULL);
    unsigned char bin[5000];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 31 + 7);
    gchar *b64 = g_base64_encode(bin, sizeof bin);
    char *body;
    ASSERT(asprintf(&body,
                    "{\"from\":\"J\\u00f6rg <j@example.com>\",\"to\":\"Ann <ann@b\\u00fccher.de>\","
                    "\"bcc\":\"hidden@example.org\",\"subject\":\"R\\u00e9sum\\u00e9 \\u2014 ok\","
                    "\"text\":\"line 1\\n.\\nline 3 \\u00e9\",\"html\":\"<p>h\\u00e9</p>\","
                    "\"headers\":{\"X-Tag\":\"v1\"},\"attachments\":[{\"filename\":\"data.bin\","
                    "\"content_type\":\"application/octet-stream\",\"content\":\"%s\"}]}",
                    b64) > 0);
    json_t *v = send_ok(&d, body);
    json_t *m = final(&d, str(v, "id"));
    ASSERT_STREQ(str(m, "state"), "completed");
    char *env = slurp(s.dir, "1.json", NULL);
    ASSERT(env);
    ASSERT(strstr(env, "\"ann@xn--bcher-kva.de\"") && strstr(env, "\"hidden@example.org\""));
    size_t len;
    char *eml = slurp(s.dir, "1.eml", &len);
    ASSERT(eml);
    ASSERT(!strstr(eml, "hidden@example.org"));

    /* GMime reads back what was sent. */
    GMimeMessage *g = t_mime_parse(eml, len);
    ASSERT_STREQ(g_mime_message_get_subject(g), "R\xc3\xa9sum\xc3\xa9 \xe2\x80\x94 ok");
    char mid[300];
    snprintf(mid, sizeof mid, "<%s>", g_mime_message_get_message_id(g));
    ASSERT_STREQ(mid, str(v, "message_id"));
    ASSERT_STREQ(g_mime_object_get_header(GMIME_OBJECT(g), "X-Tag"), "v1");
    GMimeObject *top = g_mime_message_get_mime_part(g);
    GMimeObject *alt = g_mime_multipart_get_part(GMIME_MULTIPART(top), 0);
    char *text = g_mime_text_part_get_text(
        GMIME_TEXT_PART(g_mime_multipart_get_part(GMIME_MULTIPART(alt), 0)));
    ASSERT_STREQ(text, "line 1\r\n.\r\nline 3 \xc3\xa9");
    g_free(text);
    size_t n;
    char *att = t_mime_content(g_mime_multipart_get_part(GMIME_MULTIPART(top), 1), &n);
    ASSERT_EQ(n, sizeof bin);
    ASSERT(memcmp(att, bin, n) == 0);
    free(att);
    g_object_unref(g);

    /* And so does Python's email package, on the sink's side (its
     * get_content() keeps the line end that belongs to the boundary:
     * stripped). */
    char *py;
    ASSERT_EQ(t_run(&py,
                    "/usr/bin/python3 -c 'import email, email.policy, hashlib, sys\n"
                    "m = email.message_from_binary_file(open(\"%s/1.eml\", \"rb\"), "
                    "policy=email.policy.default)\n"
                    "print(m[\"subject\"]); print(m[\"from\"].addresses[0].display_name)\n"
                    "print(m.get_body((\"plain\",)).get_content().rstrip(\"\\n\").replace(\"\\n\", \"|\"))\n"
                    "a = next(m.iter_attachments()); print(a.get_filename())\n"
                    "print(hashlib.sha256(a.get_content()).hexdigest())'",
                    s.dir),
              0);
    char hexd[65];
    GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(ck, bin, sizeof bin);
    snprintf(hexd, sizeof hexd, "%s", g_checksum_get_string(ck));
    g_checksum_free(ck);
    char want[512];
    snprintf(want, sizeof want,
             "R\xc3\xa9sum\xc3\xa9 \xe2\x80\x94 ok\nJ\xc3\xb6rg\nline 1|.|line 3 \xc3\xa9\n"
             "data.bin\n%s\n",
             hexd);
    ASSERT_STREQ(py, want);
    free(py);
    free(eml);
    free(env);
    json_decref(m);
    json_decref(v);
    free(body);
    g_free(b64);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

/* ---- faults after DATA, and timeouts ---- */

TEST(faults_after_data_defer_or_bounce_every_recipient)
{
    server s = relay_start("relay", NULL);
    od d = od_smtp(NULL, s.port, NULL, "--mail-lifetime 3");
    json_t *a = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"data554-1@example.com\","
                            "\"x@example.com\"],\"subject\":\"s\",\"text\":\"t\"}");
    json_t *b = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"data451-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    json_t *c = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"drop-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    json_t *e = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"dropmid-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    /* 554 after DATA: every recipient bounced at once, the job discarded. */
    json_t *m = final(&d, str(a, "id"));
    ASSERT_STREQ(str(m, "state"), "discarded");
    ASSERT_EQ(json_integer_value(json_object_get(m, "attempt")), 1);
    expect_rcpt(m, "data554-1@example.com", "bounced", 554, "message refused");
    expect_rcpt(m, "x@example.com", "bounced", 554, "message refused");
    json_decref(m);
    /* 451 after DATA: deferred, retried, then given up (nobody delivered:
     * discarded). */
    m = final(&d, str(b, "id"));
    ASSERT_STREQ(str(m, "state"), "discarded");
    ASSERT(json_integer_value(json_object_get(m, "attempt")) >= 2);
    expect_rcpt(m, "data451-1@example.com", "bounced", 451, "gave up");
    json_decref(m);
    /* The connection dropped before the reply: no reply (code 0),
     * deferred, retried. */
    m = final(&d, str(c, "id"));
    ASSERT(json_integer_value(json_object_get(m, "attempt")) >= 2);
    expect_rcpt(m, "drop-1@example.com", "bounced", 0, "gave up");
    ASSERT(rcpt_count(&s, "drop-1@example.com") >= 2);
    json_decref(m);
    /* Hung up in the middle of the message: the same. */
    m = final(&d, str(e, "id"));
    expect_rcpt(m, "dropmid-1@example.com", "bounced", 0, "gave up");
    ASSERT(rcpt_count(&s, "dropmid-1@example.com") >= 2);
    json_decref(m);
    json_decref(e);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

static bool tried_once(const json_t *m)
{
    return json_integer_value(json_object_get(rcpt(m, "stall-1@example.com"), "attempts")) >= 1;
}

TEST(a_stall_past_the_timeout_defers)
{
    server s = relay_start("relay", "--stall 5");
    od d = od_smtp(NULL, s.port, NULL, "--smtp-timeout 1");
    json_t *v = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"stall-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    int64_t t0 = ob_now_ms();
    json_t *m = until(&d, str(v, "id"), tried_once);
    expect_rcpt(m, "stall-1@example.com", "deferred", 0, NULL);
    ASSERT(ob_now_ms() - t0 < 4500); /* the timeout, not the stall, ended it */
    json_decref(m);
    json_decref(v);
    od_stop(&d, SIGKILL);
    server_stop(&s);
}

static int lines(const char *dir, const char *name)
{
    size_t len;
    char *s = slurp(dir, name, &len);
    int n = 0;
    for (size_t i = 0; s && i < len; i++)
        n += s[i] == '\n';
    free(s);
    return n;
}

/* Every result of a batch was accepted. */
static bool all_accepted(const json_t *v)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(v, "results"), i, r)
        if (!json_object_get(r, "id"))
            return false;
    return i > 0;
}

TEST(many_messages_share_few_connections)
{
    server s = relay_start("relay", NULL);
    od d = od_smtp(NULL, s.port, NULL, "--workers 16 --smtp-pool 2");
    char body[8192];
    size_t w = (size_t)snprintf(body, sizeof body, "{\"messages\":[");
    for (int i = 0; i < 40; i++)
        w += (size_t)snprintf(body + w, sizeof body - w,
                              "%s{\"from\":\"a@example.com\",\"to\":\"m%d@example.com\","
                              "\"subject\":\"n%d\",\"text\":\"t\"}",
                              i ? "," : "", i, i);
    snprintf(body + w, sizeof body - w, "]}");
    int st;
    json_t *v = call(&d, "POST", "/v1/messages/batch", NULL, body, &st);
    ASSERT_EQ(st, 200);
    ASSERT(all_accepted(v));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(v, "results"), i, r) {
        json_t *m = final(&d, str(r, "id"));
        ASSERT_STREQ(str(m, "state"), "completed");
        json_decref(m);
    }
    json_decref(v);
    ASSERT_EQ(lines(s.dir, "rcpt.log"), 40); /* each recipient once */
    int sessions = lines(s.dir, "sessions.log");
    ASSERT(sessions >= 1 && sessions < 40); /* connections carried several messages */
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

/* ---- TLS and AUTH ---- */

static void make_cert(void)
{
    char *out;
    ASSERT_EQ(t_run(&out, "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out "
                          "cert.pem -days 2 -subj /CN=localhost "
                          "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>&1"),
              0);
    free(out);
}

static bool attempted(const json_t *m)
{
    return json_integer_value(json_object_get(m, "attempt")) >= 1 &&
           strcmp(str(json_array_get(json_object_get(m, "recipients"), 0), "state"), "pending");
}

/* Send one message and wait for its first outcome. */
static json_t *first_outcome(const od *d)
{
    json_t *v = send_ok(d, "{\"from\":\"a@example.com\",\"to\":\"ok-1@example.com\","
                           "\"subject\":\"s\",\"text\":\"t\"}");
    json_t *m = until(d, str(v, "id"), attempted);
    json_decref(v);
    return m;
}

TEST(starttls_is_required_and_verified)
{
    make_cert();
    /* A relay without STARTTLS, while it is required. */
    server plain = relay_start("plain", NULL);
    char flags[256];
    snprintf(flags, sizeof flags, "--smtp smtp://localhost:%d --mail-retry-min 60", plain.port);
    od d = od_start(flags);
    json_t *m = first_outcome(&d);
    expect_rcpt(m, "ok-1@example.com", "deferred", 0, "does not offer STARTTLS");
    json_decref(m);
    od_stop(&d, SIGKILL);
    server_stop(&plain);

    /* A self-signed certificate, not trusted. */
    server tls = relay_start("tls1", "--tls cert.pem key.pem --require-tls");
    snprintf(flags, sizeof flags, "--smtp smtp://localhost:%d --mail-retry-min 60 --store "
                                  "sqlite:./b.db", tls.port);
    d = od_start(flags);
    m = first_outcome(&d);
    expect_rcpt(m, "ok-1@example.com", "deferred", 0, "certificate does not verify");
    json_decref(m);
    od_stop(&d, SIGKILL);
    server_stop(&tls);

    /* Trusted with --smtp-ca: delivered over TLS. */
    tls = relay_start("tls2", "--tls cert.pem key.pem --require-tls");
    snprintf(flags, sizeof flags, "--smtp smtp://localhost:%d --smtp-ca cert.pem --store "
                                  "sqlite:./c.db", tls.port);
    d = od_start(flags);
    m = first_outcome(&d);
    expect_rcpt(m, "ok-1@example.com", "delivered", 250, NULL);
    json_decref(m);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&tls);
}

TEST(auth_success_and_refusal)
{
    server s = relay_start("relay", "--auth user:s3cret");
    od d = od_smtp("user:s3cret@", s.port, NULL, NULL);
    json_t *m = first_outcome(&d);
    expect_rcpt(m, "ok-1@example.com", "delivered", 250, NULL);
    json_decref(m);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);

    s = relay_start("relay2", "--auth user:s3cret");
    snprintf(smtp_flags, sizeof smtp_flags, "--smtp smtp://user:wrong@127.0.0.1:%d?starttls=no "
                                            "--mail-retry-min 60 --store sqlite:./b.db",
             s.port);
    d = od_start(smtp_flags);
    m = first_outcome(&d);
    /* A wrong password defers (the operator can fix it); it never bounces. */
    expect_rcpt(m, "ok-1@example.com", "deferred", 0, "AUTH refused by the relay: 535");
    json_decref(m);
    od_stop(&d, SIGKILL);
    server_stop(&s);
}

/* ---- Postfix ---- */

TEST(postfix_relays_our_mail_into_smtp_sink)
{
    int sink_port = free_port(), pf_port = free_port();
    char dir[600], cmd[1400], *out;
    snprintf(dir, sizeof dir, "%s/pf", test_dir());
    chmod(test_dir(), 0755); /* Postfix's processes (user postfix) work in here */
    mkdir("sink", 0777);
    chmod("sink", 0777);
    char sink_addr[64];
    snprintf(sink_addr, sizeof sink_addr, "127.0.0.1:%d", sink_port);
    char *sargv[] = {"/usr/sbin/smtp-sink", "-u", "postfix", "-d", "sink/%M.", sink_addr, "100",
                     NULL};
    pid_t sink = t_spawn(sargv, "sink.out");
    snprintf(cmd, sizeof cmd, "script -qec '%s start %s %d %d' /dev/null 2>&1", POSTFIX_RELAY,
             dir, pf_port, sink_port);
    if (t_run(&out, "%s", cmd) != 0)
        test_fail(__FILE__, __LINE__, "postfix did not start: %s", out);
    free(out);
    od d = od_smtp(NULL, pf_port, NULL, NULL);
    json_t *v = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"x@example.com\","
                            "\"y@example.net\"],\"subject\":\"via postfix\",\"text\":\"t\"}");
    json_t *m = final(&d, str(v, "id"));
    ASSERT_STREQ(str(m, "state"), "completed");
    expect_rcpt(m, "x@example.com", "delivered", 250, "queued as");
    expect_rcpt(m, "y@example.net", "delivered", 250, "queued as");
    /* Postfix hands it on to smtp-sink: the same Message-ID arrives. */
    bool arrived = false;
    for (int i = 0; i < 200 && !arrived; i++) {
        DIR *dd = opendir("sink");
        struct dirent *e;
        while (dd && (e = readdir(dd)))
            if (e->d_name[0] != '.') {
                char *f = slurp("sink", e->d_name, NULL);
                arrived = f && strstr(f, str(v, "message_id")) && strstr(f, "x@example.com");
                free(f);
            }
        if (dd)
            closedir(dd);
        if (!arrived)
            h_sleep_ms(50);
    }
    ASSERT(arrived);
    json_decref(m);
    json_decref(v);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    snprintf(cmd, sizeof cmd, "%s stop %s", POSTFIX_RELAY, dir);
    t_run(&out, "%s", cmd);
    free(out);
    kill(sink, SIGTERM);
    waitpid(sink, NULL, 0);
}

/* ---- crash mid-delivery ---- */

TEST(kill_9_during_data_then_restart_delivers_with_the_same_message_id)
{
    server s = relay_start("relay", "--stall 3");
    od d = od_smtp(NULL, s.port, NULL, NULL);
    json_t *v = send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"stallonce-1@example.com\","
                            "\"subject\":\"crash\",\"text\":\"t\"}");
    /* The relay holds the reply to DATA: kill outboxd while it waits. */
    for (int i = 0; i < 300 && rcpt_count(&s, "stallonce-1@example.com") == 0; i++)
        h_sleep_ms(10);
    ASSERT_EQ(rcpt_count(&s, "stallonce-1@example.com"), 1);
    h_sleep_ms(500);
    ASSERT_EQ(od_stop(&d, SIGKILL), 128 + SIGKILL);
    d = od_smtp(NULL, s.port, NULL, NULL);
    json_t *m = final(&d, str(v, "id"));
    ASSERT_STREQ(str(m, "state"), "completed");
    expect_rcpt(m, "stallonce-1@example.com", "delivered", 250, NULL);
    h_sleep_ms(3000); /* the first session's stall ends: its copy lands too */
    int copies = 0;
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d.eml", i);
        char *eml = slurp(s.dir, name, NULL);
        if (!eml)
            continue;
        copies++;
        ASSERT(strstr(eml, str(v, "message_id") + 1)); /* "<id@host>" without '<' */
        free(eml);
    }
    ASSERT(copies >= 1 && copies <= 2); /* at least once; never lost */
    json_decref(m);
    json_decref(v);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

/* ---- the API on the file: transport ---- */

static int count_jobs(const od *d)
{
    int st;
    json_t *v = call(d, "GET", "/v1/jobs?limit=1000", NULL, NULL, &st);
    int n = (int)json_array_size(json_object_get(v, "jobs"));
    json_decref(v);
    return n;
}

static void expect_error(const od *d, const char *body, int status, const char *field)
{
    int st;
    json_t *v = call(d, "POST", "/v1/messages", NULL, body, &st);
    const char *f = str(json_object_get(v, "error"), "field");
    if (st != status || strcmp(f, field)) {
        char *s = v ? json_dumps(v, 0) : NULL;
        test_fail(__FILE__, __LINE__, "want %d at \"%s\", got %d: %s", status, field, st,
                  s ? s : "(not JSON)");
    }
    json_decref(v);
}

#define MSG "\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\""

TEST(messages_api_validates_batches_and_waits)
{
    od d = od_start("--max-recipients 3 --max-message 2000 --max-batch 3");
    expect_error(&d, "{\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\"}", 422, "from");
    expect_error(&d, "{\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"text\":\"t\","
                     "\"subject\":\"x\\r\\nBcc: evil@example.com\"}",
                 422, "subject");
    expect_error(&d, "{" MSG ",\"headers\":{\"Content-Type\":\"text/html\"}}", 422,
                 "headers.Content-Type");
    expect_error(&d, "{" MSG ",\"cc\":[\"c@example.com\",\"d@example.com\",\"e@example.com\"]}",
                 413, "cc");
    expect_error(&d, "{" MSG ",\"send_at\":\"tomorrow\"}", 422, "send_at");
    expect_error(&d, "{" MSG ",\"callback_url\":\"ftp://x\"}", 422, "callback_url");
    expect_error(&d, "{" MSG ",\"attachments\":[{\"filename\":\"a\",\"content\":\"@@@@\"}]}", 422,
                 "attachments[0].content");
    expect_error(&d, "{" MSG ",\"bogus\":1}", 422, "bogus");
    ASSERT_EQ(count_jobs(&d), 0);

    /* Accepted: 202 with the recipients, then delivered to ./mail. */
    int st;
    json_t *v = call(&d, "POST", "/v1/messages", "-H 'Prefer: wait=10'", "{" MSG "}", &st);
    ASSERT_EQ(st, 200);
    ASSERT_STREQ(str(v, "state"), "completed");
    /* one shape for a message, waited for or not: its own URL, its Message-ID on top */
    char own[128];
    snprintf(own, sizeof own, "/v1/messages/%s", str(v, "id"));
    ASSERT_STREQ(str(v, "status_url"), own);
    ASSERT(str(v, "message_id")[0] == '<');
    char where[600];
    snprintf(where, sizeof where, "written to %s/mail/", test_dir()); /* absolute */
    expect_rcpt(v, "b@example.com", "delivered", 250, where);
    char eml[128];
    snprintf(eml, sizeof eml, "%s.eml", str(v, "id"));
    char *file = slurp("mail", eml, NULL);
    ASSERT(file && strstr(file, "Subject: s\r\n"));
    free(file);
    json_decref(v);

    /* Idempotency-Key: the same message once. */
    json_t *a = call(&d, "POST", "/v1/messages", "-H 'Idempotency-Key: k1'", "{" MSG "}", &st);
    ASSERT_EQ(st, 202);
    snprintf(own, sizeof own, "/v1/messages/%s", str(a, "id"));
    ASSERT_STREQ(str(a, "status_url"), own);
    ASSERT(str(a, "message_id")[0] == '<');
    json_t *b = call(&d, "POST", "/v1/messages", "-H 'Idempotency-Key: k1'", "{" MSG "}", &st);
    ASSERT_EQ(st, 200);
    ASSERT_STREQ(str(a, "id"), str(b, "id"));
    json_decref(a);
    json_decref(b);

    /* A batch: each message on its own. */
    v = call(&d, "POST", "/v1/messages/batch", NULL,
             "{\"messages\":[{" MSG "},{\"from\":\"bad\"},{" MSG ",\"send_at\":"
             "\"2099-01-01T00:00:00Z\"}]}",
             &st);
    ASSERT_EQ(st, 200);
    json_t *r = json_object_get(v, "results");
    ASSERT_EQ(json_array_size(r), 3);
    ASSERT_STREQ(str(json_array_get(r, 0), "state"), "available");
    ASSERT_STREQ(str(json_object_get(json_array_get(r, 1), "error"), "field"), "from");
    ASSERT_STREQ(str(json_array_get(r, 2), "state"), "scheduled");
    json_decref(v);
    v = call(&d, "POST", "/v1/messages/batch", NULL,
             "[{" MSG "},{" MSG "},{" MSG "},{" MSG "}]", &st);
    ASSERT_EQ(st, 413);
    json_decref(v);
    v = call(&d, "GET", "/v1/messages/not-an-id", NULL, NULL, &st);
    ASSERT_EQ(st, 400);
    json_decref(v);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* ---- the outcome, pushed ---- */

static pthread_mutex_t cb_mu = PTHREAD_MUTEX_INITIALIZER;
static char cb_body[65536];

static void on_callback(ob_http_req *r, void *a)
{
    (void)a;
    size_t n;
    const void *body = ob_http_body(r, &n);
    pthread_mutex_lock(&cb_mu);
    snprintf(cb_body, sizeof cb_body, "%.*s", (int)n, (const char *)body);
    pthread_mutex_unlock(&cb_mu);
    ob_http_reply(r, 204, NULL, NULL, 0);
}

TEST(a_final_outcome_fires_the_callback_and_an_event)
{
    ob_http_opts o;
    t_opts(&o);
    ob_http_server *cb;
    ASSERT_OK(ob_http_server_new(&o, &cb));
    ASSERT_OK(ob_http_route(cb, "POST", "/cb", on_callback, NULL, 0));
    int cport = t_start(cb);
    server s = relay_start("relay", NULL);
    od d = od_smtp(NULL, s.port, NULL, NULL);
    char cmd[256], body[512];
    snprintf(cmd, sizeof cmd, "timeout 4 curl -s -N '%s/v1/events?kind=mail.send' > ev.txt &",
             d.url);
    ASSERT_EQ(system(cmd), 0);
    h_sleep_ms(300);
    snprintf(body, sizeof body,
             "{\"from\":\"a@example.com\",\"to\":[\"ok-1@example.com\",\"rcpt550-1@example.com\"],"
             "\"subject\":\"s\",\"text\":\"t\",\"callback_url\":\"http://127.0.0.1:%d/cb\"}",
             cport);
    json_t *v = send_ok(&d, body);
    json_t *m = final(&d, str(v, "id"));
    ASSERT_STREQ(str(m, "state"), "completed");
    /* The callback: the message's job, each recipient's outcome in it. */
    bool got = false;
    for (int i = 0; i < 200 && !got; i++) {
        pthread_mutex_lock(&cb_mu);
        got = strstr(cb_body, str(v, "id")) && strstr(cb_body, "\"rcpt550-1@example.com\"") &&
              strstr(cb_body, "\"bounced\"") && strstr(cb_body, "\"delivered\"");
        pthread_mutex_unlock(&cb_mu);
        if (!got)
            h_sleep_ms(20);
    }
    ASSERT(got);
    /* The event stream saw it complete. */
    h_sleep_ms(300);
    char *ev;
    t_run(&ev, "cat ev.txt");
    ASSERT(strstr(ev, str(v, "id")) && strstr(ev, "\"state\":\"completed\""));
    free(ev);
    json_decref(m);
    json_decref(v);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
    ob_http_server_free(cb);
}

/* ---- outbox send ---- */

static int cli(char **out, const od *d, const char *args)
{
    return t_run(out, "%s --url %s %s 2>&1", OUTBOX_CLI, d->url, args);
}

TEST(cli_send_shows_each_recipient_and_exits_by_outcome)
{
    server s = relay_start("relay", NULL);
    od d = od_smtp(NULL, s.port, NULL, NULL);
    char *out;
    FILE *f = fopen("report.csv", "w");
    fputs("a,b\n1,2\n", f);
    fclose(f);
    ASSERT_EQ(cli(&out, &d, "send --from 'Ann <ann@example.com>' --to ok-1@example.com "
                            "--subject 'the report' --text 'see attached' --attach report.csv "
                            "--header 'X-Run: 7' --wait 20"),
              0);
    if (!strstr(out, "delivered") || !strstr(out, "ok-1@example.com") || !strstr(out, "250"))
        test_fail(__FILE__, __LINE__, "%s", out);
    free(out);
    char *eml = slurp(s.dir, "1.eml", NULL);
    ASSERT(eml && strstr(eml, "X-Run: 7") && strstr(eml, "filename=report.csv") &&
           strstr(eml, "Subject: the report"));
    free(eml);

    /* One bounce: the outcome is shown, and the exit code says so. */
    ASSERT_EQ(cli(&out, &d, "send --from ann@example.com --to ok-2@example.com --to "
                            "rcpt550-2@example.com --subject s --text t --wait 20"),
              1);
    ASSERT(strstr(out, "bounced") && strstr(out, "550 5.1.1"));
    free(out);

    /* --eml: a message file read by GMime, sent as is. */
    f = fopen("in.eml", "w");
    fputs("From: Bob <bob@example.com>\r\nTo: ok-3@example.com\r\nSubject: from a file\r\n"
          "X-Origin: eml\r\nList-Unsubscribe: <https://example.com/u/1>\r\n"
          "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
          "Received: from somewhere\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
          "hello there\r\n",
          f);
    fclose(f);
    ASSERT_EQ(cli(&out, &d, "send --eml in.eml"), 0); /* prints the id */
    char mid[64];
    snprintf(mid, sizeof mid, "%.36s", out);
    free(out);
    char args[128];
    snprintf(args, sizeof args, "job wait %s --timeout 20", mid);
    ASSERT_EQ(cli(&out, &d, args), 0);
    free(out);
    eml = slurp(s.dir, "3.eml", NULL);
    ASSERT(eml && strstr(eml, "Subject: from a file") && strstr(eml, "X-Origin: eml") &&
           strstr(eml, "hello there"));
    /* every header the API accepts is kept (RFC 8058's one-click pair among them) */
    ASSERT(strstr(eml, "List-Unsubscribe: <https://example.com/u/1>") &&
           strstr(eml, "List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    ASSERT(!strstr(eml, "from somewhere")); /* what relays write is not a client's */
    free(eml);
    /* message get: the recipients as a table */
    snprintf(args, sizeof args, "message get %s", mid);
    ASSERT_EQ(cli(&out, &d, args), 0);
    ASSERT(strstr(out, "ADDRESS") && strstr(out, "ok-3@example.com") && strstr(out, "delivered") &&
           strstr(out, "250"));
    free(out);

    /* Refused input: exit 1 and the field named; usage errors exit 2. */
    ASSERT_EQ(cli(&out, &d, "send --to nobody --subject s --text t"), 1);
    ASSERT(strstr(out, "to[0]"));
    free(out);
    ASSERT_EQ(cli(&out, &d, "send --to a@example.com --bogus x"), 2);
    free(out);
    ASSERT_EQ(cli(&out, &d, "send --help"), 0);
    ASSERT(strstr(out, "--attach"));
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

static const test_case tests[] = {
    T(three_hundred_recipients_keep_their_outcome_and_only_the_deferred_are_retried),
    T(replies_per_recipient_and_retries_only_the_deferred),
    T(round_trip_headers_bodies_attachments_equal_the_input),
    T(faults_after_data_defer_or_bounce_every_recipient),
    T(a_stall_past_the_timeout_defers),
    T(many_messages_share_few_connections),
    T(starttls_is_required_and_verified),
    T(auth_success_and_refusal),
    T(postfix_relays_our_mail_into_smtp_sink),
    T(kill_9_during_data_then_restart_delivers_with_the_same_message_id),
    T(messages_api_validates_batches_and_waits),
    T(cli_send_shows_each_recipient_and_exits_by_outcome),
    T(a_final_outcome_fires_the_callback_and_an_event),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
