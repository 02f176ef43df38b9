/*
 * test_messages.c - the /v1/messages API on the file: transport
 * (validation, batches, idempotency, waiting), the outcome pushed to a
 * callback and as an event, and `outbox send`: its output and exit codes.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
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

/* ---- the API on the file: transport ---- */

static int count_jobs(const od *d)
{
    int st;
    json_t *v = m_call(d, "GET", "/v1/jobs?limit=1000", NULL, NULL, &st);
    int n = (int)json_array_size(json_object_get(v, "jobs"));
    json_decref(v);
    return n;
}

static void expect_error(const od *d, const char *body, int status, const char *field)
{
    int st;
    json_t *v = m_call(d, "POST", "/v1/messages", NULL, body, &st);
    const char *f = m_str(json_object_get(v, "error"), "field");
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
    json_t *v = m_call(&d, "POST", "/v1/messages", "-H 'Prefer: wait=10'", "{" MSG "}", &st);
    ASSERT_EQ(st, 200);
    ASSERT_STREQ(m_str(v, "state"), "completed");
    /* one shape for a message, waited for or not: its own URL, its Message-ID on top */
    char own[128];
    snprintf(own, sizeof own, "/v1/messages/%s", m_str(v, "id"));
    ASSERT_STREQ(m_str(v, "status_url"), own);
    ASSERT(m_str(v, "message_id")[0] == '<');
    char where[600];
    snprintf(where, sizeof where, "written to %s/mail/", test_dir()); /* absolute */
    m_expect_rcpt(v, "b@example.com", "delivered", 250, where);
    char eml[128];
    snprintf(eml, sizeof eml, "%s.eml", m_str(v, "id"));
    char *file = m_slurp("mail", eml, NULL);
    ASSERT(file && strstr(file, "Subject: s\r\n"));
    free(file);
    json_decref(v);

    /* Idempotency-Key: the same message once. */
    json_t *a = m_call(&d, "POST", "/v1/messages", "-H 'Idempotency-Key: k1'", "{" MSG "}", &st);
    ASSERT_EQ(st, 202);
    snprintf(own, sizeof own, "/v1/messages/%s", m_str(a, "id"));
    ASSERT_STREQ(m_str(a, "status_url"), own);
    ASSERT(m_str(a, "message_id")[0] == '<');
    json_t *b = m_call(&d, "POST", "/v1/messages", "-H 'Idempotency-Key: k1'", "{" MSG "}", &st);
    ASSERT_EQ(st, 200);
    ASSERT_STREQ(m_str(a, "id"), m_str(b, "id"));
    json_decref(a);
    json_decref(b);

    /* A batch: each message on its own. */
    v = m_call(&d, "POST", "/v1/messages/batch", NULL,
             "{\"messages\":[{" MSG "},{\"from\":\"bad\"},{" MSG ",\"send_at\":"
             "\"2099-01-01T00:00:00Z\"}]}",
             &st);
    ASSERT_EQ(st, 200);
    json_t *r = json_object_get(v, "results");
    ASSERT_EQ(json_array_size(r), 3);
    ASSERT_STREQ(m_str(json_array_get(r, 0), "state"), "available");
    ASSERT_STREQ(m_str(json_object_get(json_array_get(r, 1), "error"), "field"), "from");
    ASSERT_STREQ(m_str(json_array_get(r, 2), "state"), "scheduled");
    json_decref(v);
    v = m_call(&d, "POST", "/v1/messages/batch", NULL,
             "[{" MSG "},{" MSG "},{" MSG "},{" MSG "}]", &st);
    ASSERT_EQ(st, 413);
    json_decref(v);
    v = m_call(&d, "GET", "/v1/messages/not-an-id", NULL, NULL, &st);
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
    od d = m_od_smtp(NULL, s.port, NULL, NULL);
    char cmd[256], body[512];
    snprintf(cmd, sizeof cmd, "timeout 4 curl -s -N '%s/v1/events?kind=mail.send' > ev.txt &",
             d.url);
    ASSERT_EQ(system(cmd), 0);
    h_sleep_ms(300);
    snprintf(body, sizeof body,
             "{\"from\":\"a@example.com\",\"to\":[\"ok-1@example.com\",\"rcpt550-1@example.com\"],"
             "\"subject\":\"s\",\"text\":\"t\",\"callback_url\":\"http://127.0.0.1:%d/cb\"}",
             cport);
    json_t *v = m_send_ok(&d, body);
    json_t *m = m_final(&d, m_str(v, "id"));
    ASSERT_STREQ(m_str(m, "state"), "completed");
    /* The callback: the message's job, each recipient's outcome in it. */
    bool got = false;
    for (int i = 0; i < 200 && !got; i++) {
        pthread_mutex_lock(&cb_mu);
        got = strstr(cb_body, m_str(v, "id")) && strstr(cb_body, "\"rcpt550-1@example.com\"") &&
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
    ASSERT(strstr(ev, m_str(v, "id")) && strstr(ev, "\"state\":\"completed\""));
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
    od d = m_od_smtp(NULL, s.port, NULL, NULL);
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
    char *eml = m_slurp(s.dir, "1.eml", NULL);
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
    eml = m_slurp(s.dir, "3.eml", NULL);
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

/* Both verifiers on a received message (test_dkim.c says more). */
static void verified(const char *file, const char *keys, const char *want)
{
    char *out;
    if (t_run(&out, "%s %s %s 2>&1", DKIM_VERIFY, file, keys) != 0 || !strstr(out, want))
        test_fail(__FILE__, __LINE__, "dkimpy: %s", out);
    free(out);
    if (t_run(&out, "NODE_PATH=%s node %s %s %s 2>&1", NPM_TOOLS, DKIM_VERIFY_JS, file, keys) != 0 ||
        !strstr(out, want))
        test_fail(__FILE__, __LINE__, "mailauth: %s", out);
    free(out);
}

TEST(dkim_signs_what_the_relay_receives_and_bad_keys_stop_the_start)
{
    char *out;
    ASSERT_EQ(t_run(&out, "openssl genrsa -out rsa.pem 2048 2>&1 && openssl genpkey -algorithm "
                          "ed25519 -out ed.pem && chmod 600 rsa.pem ed.pem"), 0);
    free(out);
    server s = relay_start("relay", NULL);
    char extra[512];
    snprintf(extra, sizeof extra, "--dkim example.com:r1:%s/rsa.pem --dkim example.org:e1:%s/ed.pem",
             test_dir(), test_dir());
    od d = m_od_smtp(NULL, s.port, NULL, extra);
    ASSERT_EQ(cli(&out, &d, "send --from 'Ann <ann@example.com>' --to ok-1@example.net "
                            "--subject 'signed' --text 'by RSA' --wait 20"), 0);
    free(out);
    ASSERT_EQ(cli(&out, &d, "send --from bob@mail.example.org --bcc ok-2@example.net "
                            "--subject 'signed too' --text 'by Ed25519' --wait 20"), 0);
    free(out);
    ASSERT_EQ(cli(&out, &d, "send --from carol@example.net --to ok-3@example.net "
                            "--subject 'not signed' --text 'no key' --wait 20"), 0);
    free(out);
    char keys[512], f1[600], f2[600];
    snprintf(keys, sizeof keys, "example.com:r1:rsa.pem example.org:e1:ed.pem");
    snprintf(f1, sizeof f1, "%s/1.eml", s.dir);
    snprintf(f2, sizeof f2, "%s/2.eml", s.dir);
    verified(f1, keys, "pass example.com rsa-sha256");
    verified(f2, keys, "pass example.org ed25519-sha256");
    char *eml = m_slurp(s.dir, "2.eml", NULL);
    ASSERT(eml && strstr(eml, "To: undisclosed-recipients: ;") && !strstr(eml, "ok-2@"));
    free(eml);
    eml = m_slurp(s.dir, "3.eml", NULL);
    ASSERT(eml && !strstr(eml, "DKIM-Signature"));
    free(eml);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    /* a key others can read: outboxd refuses to start, naming it */
    ASSERT_EQ(chmod("ed.pem", 0644), 0);
    ASSERT_EQ(t_run(&out, "timeout 20 %s --listen 127.0.0.1:0 --dkim example.org:e1:ed.pem 2>&1",
                    OUTBOXD), 2);
    ASSERT(strstr(out, "--dkim") && strstr(out, "ed.pem") && strstr(out, "readable by others"));
    free(out);
    ASSERT_EQ(t_run(&out, "%s check --dkim example.org:e1:ed.pem 2>&1", OUTBOXD), 1);
    ASSERT(strstr(out, "FAIL dkim") != NULL);
    free(out);
}

/* ---- suppressions ---- */

static json_t *sup_call(const od *d, const char *method, const char *path, const char *body,
                        int want)
{
    int st;
    json_t *v = m_call(d, method, path, NULL, body, &st);
    if (st != want) {
        char *s = v ? json_dumps(v, 0) : NULL;
        test_fail(__FILE__, __LINE__, "%s %s: want %d, got %d: %s", method, path, want, st,
                  s ? s : "");
    }
    return v;
}

TEST(a_hard_bounce_is_suppressed_and_the_list_is_kept_by_api_and_cli)
{
    server s = relay_start("relay", NULL);
    od d = m_od_smtp(NULL, s.port, NULL, NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "timeout 6 curl -s -N '%s/v1/events' > ev.txt &", d.url);
    ASSERT_EQ(system(cmd), 0);
    h_sleep_ms(300);

    /* a hard bounce puts the address on the list */
    json_t *v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"ok-1@example.com\","
                              "\"rcpt550-1@Example.COM\"],\"subject\":\"s\",\"text\":\"t\"}");
    json_t *m = m_final(&d, m_str(v, "id"));
    m_expect_rcpt(m, "rcpt550-1@example.com", "bounced", 550, "no such user");
    json_decref(m);
    json_t *e = sup_call(&d, "GET", "/v1/suppressions/rcpt550-1%40EXAMPLE.com", NULL, 200);
    ASSERT_STREQ(m_str(e, "address"), "rcpt550-1@example.com");
    ASSERT_STREQ(m_str(e, "reason"), "hard_bounce");
    ASSERT_EQ(json_integer_value(json_object_get(e, "code")), 550);
    ASSERT_STREQ(m_str(e, "enhanced"), "5.1.1");
    ASSERT_STREQ(m_str(e, "message_id"), m_str(v, "id"));
    json_decref(e);
    json_decref(v);

    /* later messages skip it: suppressed, no RCPT; all suppressed: discarded */
    v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":[\"ok-2@example.com\","
                      "\"rcpt550-1@example.com\"],\"subject\":\"s\",\"text\":\"t\"}");
    m = m_final(&d, m_str(v, "id"));
    ASSERT_STREQ(m_str(m, "state"), "completed");
    m_expect_rcpt(m, "rcpt550-1@example.com", "suppressed", 0, "suppressed (hard_bounce since");
    json_decref(m);
    json_decref(v);
    v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"rcpt550-1@example.com\","
                      "\"subject\":\"s\",\"text\":\"t\"}");
    m = m_final(&d, m_str(v, "id"));
    ASSERT_STREQ(m_str(m, "state"), "discarded");
    json_decref(m);
    json_decref(v);
    ASSERT_EQ(rcpt_count(&s, "rcpt550-1@Example.COM") + rcpt_count(&s, "rcpt550-1@example.com"),
              1);

    /* by hand: an unsubscribe, with a note; listed, filtered, paged */
    e = sup_call(&d, "PUT", "/v1/suppressions/Ann%40B%C3%BCcher.example",
                 "{\"reason\":\"unsubscribe\",\"note\":\"by phone\"}", 201);
    ASSERT_STREQ(m_str(e, "address"), "Ann@xn--bcher-kva.example");
    ASSERT_STREQ(m_str(e, "note"), "by phone");
    json_decref(e);
    json_decref(sup_call(&d, "PUT", "/v1/suppressions/Ann%40xn--bcher-kva.example",
                         "{\"reason\":\"unsubscribe\",\"note\":\"by phone\"}", 200));
    json_decref(sup_call(&d, "PUT", "/v1/suppressions/c%40example.net", "{}", 201));
    v = sup_call(&d, "GET", "/v1/suppressions?limit=2", NULL, 200);
    json_t *l = json_object_get(v, "suppressions");
    ASSERT_EQ(json_array_size(l), 2);
    ASSERT_STREQ(m_str(json_array_get(l, 0), "address"), "Ann@xn--bcher-kva.example");
    ASSERT_STREQ(m_str(json_array_get(l, 1), "reason"), "manual");
    char path[256];
    snprintf(path, sizeof path, "/v1/suppressions?limit=2&cursor=%s", m_str(v, "next_cursor"));
    json_decref(v);
    v = sup_call(&d, "GET", path, NULL, 200);
    l = json_object_get(v, "suppressions");
    ASSERT_EQ(json_array_size(l), 1);
    ASSERT_STREQ(m_str(json_array_get(l, 0), "address"), "rcpt550-1@example.com");
    ASSERT(json_is_null(json_object_get(v, "next_cursor")) ||
           !json_object_get(v, "next_cursor"));
    json_decref(v);
    v = sup_call(&d, "GET", "/v1/suppressions?reason=hard_bounce&address=%40EXAMPLE.com", NULL,
                 200);
    ASSERT_EQ(json_array_size(json_object_get(v, "suppressions")), 1);
    json_decref(v);
    /* what is refused */
    json_decref(sup_call(&d, "GET", "/v1/suppressions?reason=bounce", NULL, 422));
    json_decref(sup_call(&d, "GET", "/v1/suppressions?limit=0", NULL, 422));
    json_decref(sup_call(&d, "GET", "/v1/suppressions?cursor=%25%25", NULL, 422));
    json_decref(sup_call(&d, "PUT", "/v1/suppressions/nobody", "{}", 422));
    json_decref(sup_call(&d, "PUT", "/v1/suppressions/x%40example.com", "{\"why\":1}", 422));
    json_decref(sup_call(&d, "PUT", "/v1/suppressions/x%40example.com",
                         "{\"reason\":\"HardBounce\"}", 422));
    json_decref(sup_call(&d, "GET", "/v1/suppressions/x%40example.com", NULL, 404));
    json_decref(sup_call(&d, "DELETE", "/v1/suppressions/x%40example.com", NULL, 404));

    /* the CLI */
    char *out;
    ASSERT_EQ(cli(&out, &d, "suppression list"), 0);
    if (!strstr(out, "ADDRESS") || !strstr(out, "rcpt550-1@example.com") ||
        !strstr(out, "no such user") || !strstr(out, "by phone"))
        test_fail(__FILE__, __LINE__, "%s", out);
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression list --limit 1 --all --reason manual"), 0);
    ASSERT(strstr(out, "c@example.net") && !strstr(out, "rcpt550"));
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression list --limit 1"), 0);
    ASSERT(strstr(out, "(more: outbox suppression list --cursor "));
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression add d@Example.org --reason spam_complaint --note 'FBL'"),
              0);
    ASSERT(strstr(out, "d@example.org") && strstr(out, "spam_complaint") && strstr(out, "FBL"));
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression get rcpt550-1@example.com"), 0);
    ASSERT(strstr(out, "hard_bounce") && strstr(out, "550 5.1.1"));
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression add nobody"), 1);
    ASSERT(strstr(out, "address"));
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression add"), 2);
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression remove rcpt550-1@EXAMPLE.com"), 0);
    ASSERT(strstr(out, "removed"));
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression remove rcpt550-1@example.com"), 1);
    free(out);
    ASSERT_EQ(cli(&out, &d, "suppression --help"), 0);
    ASSERT(strstr(out, "hard_bounce"));
    free(out);

    /* reactivated: tried again */
    v = m_send_ok(&d, "{\"from\":\"a@example.com\",\"to\":\"rcpt550-1@example.com\","
                      "\"subject\":\"s\",\"text\":\"t\"}");
    m = m_final(&d, m_str(v, "id"));
    m_expect_rcpt(m, "rcpt550-1@example.com", "bounced", 550, "no such user");
    json_decref(m);
    json_decref(v);

    /* events and metrics */
    h_sleep_ms(300);
    t_run(&out, "cat ev.txt");
    if (!strstr(out, "event: suppression") || !strstr(out, "\"action\":\"added\"") ||
        !strstr(out, "\"action\":\"updated\"") || !strstr(out, "\"action\":\"removed\"") ||
        !strstr(out, "\"reason\":\"spam_complaint\""))
        test_fail(__FILE__, __LINE__, "events: %s", out);
    free(out);
    t_run(&out, "curl -s %s/metrics", d.url);
    if (!strstr(out, "outbox_mail_recipients_total{state=\"suppressed\"} 2") ||
        !strstr(out, "outbox_mail_suppressions_added_total{result=\"ok\"} 2"))
        test_fail(__FILE__, __LINE__, "metrics: %s", out);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&s);
}

static const test_case tests[] = {
    T(a_hard_bounce_is_suppressed_and_the_list_is_kept_by_api_and_cli),
    T(messages_api_validates_batches_and_waits),
    T(a_final_outcome_fires_the_callback_and_an_event),
    T(cli_send_shows_each_recipient_and_exits_by_outcome),
    T(dkim_signs_what_the_relay_receives_and_bad_keys_stop_the_start),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
