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
 * The /v1/messages API on the file: transport is test_messages.c.
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
#include "msg_helpers.h"
#include "od_helpers.h"
#include "relay_helpers.h"
#include "outbox/mail.h"

#ifndef POSTFIX_RELAY
#error "POSTFIX_RELAY: the path of tests/postfix_relay.sh"
#endif


/* ---- tests ---- */

static bool settled(const json_t *m)
{
    size_t i;
    json_t *r;
    int n = 0;
    json_array_foreach(json_object_get(m, "recipients"), i, r)
        n += !strcmp(m_str(r, "state"), "delivered") || !strcmp(m_str(r, "state"), "bounced");
    return n == 3;
}

TEST(replies_per_recipient_and_retries_only_the_deferred)
{
    server s = relay_start("relay", NULL);
    od d = m_od_smtp(NULL, s.port, NULL, "--mail-lifetime 4");
    json_t *v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"ok-1@example.com\","
                            "\"rcpt550-1@example.com\",\"flaky2-1@example.com\"],"
                            "\"cc\":\"rcpt451-1@example.com\",\"subject\":\"s\",\"text\":\"t\"}");
    char id[64];
    snprintf(id, sizeof id, "%s", m_str(v, "id"));
    ASSERT_STREQ(m_str(m_rcpt(v, "ok-1@example.com"), "state"), "pending");
    json_decref(v);

    /* After the first attempts: the good ones are done, the rest waits. */
    json_t *m = m_until(&d, id, settled);
    m_expect_rcpt(m, "ok-1@example.com", "delivered", 250, "queued as");
    ASSERT_STREQ(m_str(m_rcpt(m, "ok-1@example.com"), "enhanced"), "2.0.0");
    m_expect_rcpt(m, "rcpt550-1@example.com", "bounced", 550, "no such user");
    ASSERT_STREQ(m_str(m_rcpt(m, "rcpt550-1@example.com"), "enhanced"), "5.1.1");
    m_expect_rcpt(m, "flaky2-1@example.com", "delivered", 250, NULL);
    ASSERT_EQ(json_integer_value(json_object_get(m_rcpt(m, "flaky2-1@example.com"), "attempts")),
              3);
    json_decref(m);

    /* The deferred one gives up after the lifetime: bounced, its last
     * reply kept; someone was delivered, so the message completed. */
    m = m_final(&d, id);
    ASSERT_STREQ(m_str(m, "state"), "completed");
    m_expect_rcpt(m, "rcpt451-1@example.com", "bounced", 451, "gave up after");
    ASSERT(strstr(m_str(m_rcpt(m, "rcpt451-1@example.com"), "reply"), "try again later"));

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
        ASSERT_OK(ob_time_parse(m_str(json_array_get(errors, i), "at"), &at));
        ASSERT(i == 0 || at - prev >= 850);
        prev = at;
    }
    ASSERT(strstr(m_str(json_array_get(errors, 0), "error"), "rcpt451-1@example.com: 451"));
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
        n += !strcmp(m_str(r, "state"), "delivered");
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
    od d = m_od_smtp(NULL, s.port, NULL, "--max-recipients 300");
    size_t cap = 64 << 10, n = 0;
    char *body = malloc(cap);
    n += (size_t)snprintf(body + n, cap - n, "{\"from\":\"a@example.com\",\"to\":[");
    for (int i = 0; i < 300; i++) /* even: accepted at once; odd: 451 once, then 250 */
        n += (size_t)snprintf(body + n, cap - n, "%s\"%s-%03d" PAD "\"", i ? "," : "",
                              i % 2 ? "flaky1" : "ok", i);
    snprintf(body + n, cap - n, "],\"subject\":\"s\",\"text\":\"t\"}");
    json_t *v = m_send_ok(&d, body);
    free(body);
    char id[64];
    snprintf(id, sizeof id, "%s", m_str(v, "id"));
    json_decref(v);
    json_t *m = m_until(&d, id, all_delivered);
    json_decref(m);
    m = m_final(&d, id);
    ASSERT_STREQ(m_str(m, "state"), "completed");
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
    od d = m_od_smtp(NULL, s.port, NULL, NULL);
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
    json_t *v = m_send_ok(&d, body);
    json_t *m = m_final(&d, m_str(v, "id"));
    ASSERT_STREQ(m_str(m, "state"), "completed");
    char *env = m_slurp(s.dir, "1.json", NULL);
    ASSERT(env);
    ASSERT(strstr(env, "\"ann@xn--bcher-kva.de\"") && strstr(env, "\"hidden@example.org\""));
    size_t len;
    char *eml = m_slurp(s.dir, "1.eml", &len);
    ASSERT(eml);
    ASSERT(!strstr(eml, "hidden@example.org"));

    /* GMime reads back what was sent. */
    GMimeMessage *g = t_mime_parse(eml, len);
    ASSERT_STREQ(g_mime_message_get_subject(g), "R\xc3\xa9sum\xc3\xa9 \xe2\x80\x94 ok");
    char mid[300];
    snprintf(mid, sizeof mid, "<%s>", g_mime_message_get_message_id(g));
    ASSERT_STREQ(mid, m_str(v, "message_id"));
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
    od d = m_od_smtp(NULL, s.port, NULL, "--mail-lifetime 3");
    json_t *a = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"data554-1@example.com\","
                            "\"x@example.com\"],\"subject\":\"s\",\"text\":\"t\"}");
    json_t *b = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"data451-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    json_t *c = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"drop-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    json_t *e = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"dropmid-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    /* 554 after DATA: every recipient bounced at once, the job discarded. */
    json_t *m = m_final(&d, m_str(a, "id"));
    ASSERT_STREQ(m_str(m, "state"), "discarded");
    ASSERT_EQ(json_integer_value(json_object_get(m, "attempt")), 1);
    m_expect_rcpt(m, "data554-1@example.com", "bounced", 554, "message refused");
    m_expect_rcpt(m, "x@example.com", "bounced", 554, "message refused");
    json_decref(m);
    /* 451 after DATA: deferred, retried, then given up (nobody delivered:
     * discarded). */
    m = m_final(&d, m_str(b, "id"));
    ASSERT_STREQ(m_str(m, "state"), "discarded");
    ASSERT(json_integer_value(json_object_get(m, "attempt")) >= 2);
    m_expect_rcpt(m, "data451-1@example.com", "bounced", 451, "gave up");
    json_decref(m);
    /* The connection dropped before the reply: no reply (code 0),
     * deferred, retried. */
    m = m_final(&d, m_str(c, "id"));
    ASSERT(json_integer_value(json_object_get(m, "attempt")) >= 2);
    m_expect_rcpt(m, "drop-1@example.com", "bounced", 0, "gave up");
    ASSERT(rcpt_count(&s, "drop-1@example.com") >= 2);
    json_decref(m);
    /* Hung up in the middle of the message: the same. */
    m = m_final(&d, m_str(e, "id"));
    m_expect_rcpt(m, "dropmid-1@example.com", "bounced", 0, "gave up");
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
    return json_integer_value(json_object_get(m_rcpt(m, "stall-1@example.com"), "attempts")) >= 1;
}

TEST(a_stall_past_the_timeout_defers)
{
    server s = relay_start("relay", "--stall 5");
    od d = m_od_smtp(NULL, s.port, NULL, "--smtp-timeout 1");
    json_t *v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"stall-1@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}");
    int64_t t0 = ob_now_ms();
    json_t *m = m_until(&d, m_str(v, "id"), tried_once);
    m_expect_rcpt(m, "stall-1@example.com", "deferred", 0, NULL);
    ASSERT(ob_now_ms() - t0 < 4500); /* the timeout, not the stall, ended it */
    json_decref(m);
    json_decref(v);
    od_stop(&d, SIGKILL);
    server_stop(&s);
}

static int lines(const char *dir, const char *name)
{
    size_t len;
    char *s = m_slurp(dir, name, &len);
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
    od d = m_od_smtp(NULL, s.port, NULL, "--workers 16 --smtp-pool 2");
    char body[8192];
    size_t w = (size_t)snprintf(body, sizeof body, "{\"messages\":[");
    for (int i = 0; i < 40; i++)
        w += (size_t)snprintf(body + w, sizeof body - w,
                              "%s{\"from\":\"a@example.com\",\"to\":\"m%d@example.com\","
                              "\"subject\":\"n%d\",\"text\":\"t\"}",
                              i ? "," : "", i, i);
    snprintf(body + w, sizeof body - w, "]}");
    int st;
    json_t *v = m_call(&d, "POST", "/v1/messages/batch", NULL, body, &st);
    ASSERT_EQ(st, 200);
    ASSERT(all_accepted(v));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(v, "results"), i, r) {
        json_t *m = m_final(&d, m_str(r, "id"));
        ASSERT_STREQ(m_str(m, "state"), "completed");
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
           strcmp(m_str(json_array_get(json_object_get(m, "recipients"), 0), "state"), "pending");
}

/* Send one message and wait for its first outcome. */
static json_t *first_outcome(const od *d)
{
    json_t *v = m_send_ok(d, "{\"from\":\"a@example.com\",\"to\":\"ok-1@example.com\","
                           "\"subject\":\"s\",\"text\":\"t\"}");
    json_t *m = m_until(d, m_str(v, "id"), attempted);
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
    m_expect_rcpt(m, "ok-1@example.com", "deferred", 0, "does not offer STARTTLS");
    json_decref(m);
    od_stop(&d, SIGKILL);
    server_stop(&plain);

    /* A self-signed certificate, not trusted. */
    server tls = relay_start("tls1", "--tls cert.pem key.pem --require-tls");
    snprintf(flags, sizeof flags, "--smtp smtp://localhost:%d --mail-retry-min 60 --store "
                                  "sqlite:./b.db", tls.port);
    d = od_start(flags);
    m = first_outcome(&d);
    m_expect_rcpt(m, "ok-1@example.com", "deferred", 0, "certificate does not verify");
    json_decref(m);
    od_stop(&d, SIGKILL);
    server_stop(&tls);

    /* Trusted with --smtp-ca: delivered over TLS. */
    tls = relay_start("tls2", "--tls cert.pem key.pem --require-tls");
    snprintf(flags, sizeof flags, "--smtp smtp://localhost:%d --smtp-ca cert.pem --store "
                                  "sqlite:./c.db", tls.port);
    d = od_start(flags);
    m = first_outcome(&d);
    m_expect_rcpt(m, "ok-1@example.com", "delivered", 250, NULL);
    json_decref(m);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&tls);
}

TEST(auth_success_and_refusal)
{
    server s = relay_start("relay", "--auth user:s3cret");
    od d = m_od_smtp("user:s3cret@", s.port, NULL, NULL);
    json_t *m = first_outcome(&d);
    m_expect_rcpt(m, "ok-1@example.com", "delivered", 250, NULL);
    json_decref(m);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);

    s = relay_start("relay2", "--auth user:s3cret");
    char flags[256];
    snprintf(flags, sizeof flags, "--smtp smtp://user:wrong@127.0.0.1:%d?starttls=no "
                                  "--mail-retry-min 60 --store sqlite:./b.db",
             s.port);
    d = od_start(flags);
    m = first_outcome(&d);
    /* A wrong password defers (the operator can fix it); it never bounces. */
    m_expect_rcpt(m, "ok-1@example.com", "deferred", 0, "AUTH refused by the relay: 535");
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
    od d = m_od_smtp(NULL, pf_port, NULL, NULL);
    json_t *v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"x@example.com\","
                            "\"y@example.net\"],\"subject\":\"via postfix\",\"text\":\"t\"}");
    json_t *m = m_final(&d, m_str(v, "id"));
    ASSERT_STREQ(m_str(m, "state"), "completed");
    m_expect_rcpt(m, "x@example.com", "delivered", 250, "queued as");
    m_expect_rcpt(m, "y@example.net", "delivered", 250, "queued as");
    /* Postfix hands it on to smtp-sink: the same Message-ID arrives. */
    bool arrived = false;
    for (int i = 0; i < 200 && !arrived; i++) {
        DIR *dd = opendir("sink");
        struct dirent *e;
        while (dd && (e = readdir(dd)))
            if (e->d_name[0] != '.') {
                char *f = m_slurp("sink", e->d_name, NULL);
                arrived = f && strstr(f, m_str(v, "message_id")) && strstr(f, "x@example.com");
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
    od d = m_od_smtp(NULL, s.port, NULL, NULL);
    json_t *v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"stallonce-1@example.com\","
                            "\"subject\":\"crash\",\"text\":\"t\"}");
    /* The relay holds the reply to DATA: kill outboxd while it waits. */
    for (int i = 0; i < 300 && rcpt_count(&s, "stallonce-1@example.com") == 0; i++)
        h_sleep_ms(10);
    ASSERT_EQ(rcpt_count(&s, "stallonce-1@example.com"), 1);
    h_sleep_ms(500);
    ASSERT_EQ(od_stop(&d, SIGKILL), 128 + SIGKILL);
    d = m_od_smtp(NULL, s.port, NULL, NULL);
    json_t *m = m_final(&d, m_str(v, "id"));
    ASSERT_STREQ(m_str(m, "state"), "completed");
    m_expect_rcpt(m, "stallonce-1@example.com", "delivered", 250, NULL);
    h_sleep_ms(3000); /* the first session's stall ends: its copy lands too */
    int copies = 0;
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d.eml", i);
        char *eml = m_slurp(s.dir, name, NULL);
        if (!eml)
            continue;
        copies++;
        ASSERT(strstr(eml, m_str(v, "message_id") + 1)); /* "<id@host>" without '<' */
        free(eml);
    }
    ASSERT(copies >= 1 && copies <= 2); /* at least once; never lost */
    json_decref(m);
    json_decref(v);
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
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
