/*
 * test_compat.c - the Postmark- and Resend-compatible endpoints through
 * their own npm SDKs (tests/compat.js: `postmark` and `resend`, which no
 * one here wrote), against a real outboxd with a bearer token whose mail
 * goes to a real SMTP server (aiosmtpd, tests/smtp_relay.py):
 *
 *   - everything compat.js checks (answers, errors as the SDK's own error
 *     classes, a refused field named);
 *   - each accepted message is the same job as /v1/messages makes: it is
 *     delivered, and /v1/messages/{MessageID} shows each recipient's reply;
 *   - what the relay received carries the fields as mapped: the quoted
 *     display name with a comma, Cc, Reply-To, the custom header, the html
 *     and the attachment; Metadata and Tag are kept with the job, not sent;
 *   - a strict Resend batch with an invalid message stored none of it;
 *   - suppressions: Postmark's 406 (the SDK's InactiveRecipientsError),
 *     Resend's last_event "suppressed".
 */
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "http_helpers.h"
#include "msg_helpers.h"
#include "od_helpers.h"
#include "relay_helpers.h"

#define TOKEN "compat-token-0123456789"

TEST(postmarks_and_resends_sdks_send_through_outboxd)
{
    FILE *f = fopen("tokens", "w");
    fputs(TOKEN "\n", f);
    fclose(f);
    chmod("tokens", 0600);
    server s = relay_start("relay", NULL);
    od d = m_od_smtp(NULL, s.port, NULL, "--token-file tokens");
    char *out;
    int rc = t_run(&out, "NODE_PATH=%s node %s %s %s 2>&1", NPM_TOOLS, COMPAT_JS, d.url, TOKEN);
    printf("%s", out);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "compat.js failed (above)");
    char *ids = strstr(out, "ids: ");
    ASSERT(ids != NULL);
    ids += 5;
    ids[strcspn(ids, "\n")] = '\0';
    int n = 0;
    char auth[64];
    snprintf(auth, sizeof auth, "-H 'Authorization: Bearer %s'", TOKEN);
    for (char *save, *id = strtok_r(ids, " ", &save); id; id = strtok_r(NULL, " ", &save), n++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/messages/%s", id);
        int st;
        json_t *v = NULL;
        for (int i = 0; i < 200; i++) { /* until final */
            json_decref(v);
            v = m_call(&d, "GET", path, auth, NULL, &st);
            const char *state = m_str(v, "state");
            if (!strcmp(state, "completed") || !strcmp(state, "discarded"))
                break;
            h_sleep_ms(100);
        }
        ASSERT_EQ(st, 200);
        ASSERT_STREQ(m_str(v, "state"), "completed");
        json_t *r0 = json_array_get(json_object_get(v, "recipients"), 0);
        ASSERT_STREQ(m_str(r0, "state"), "delivered");
        ASSERT_EQ(json_integer_value(json_object_get(r0, "code")), 250);
        if (n == 0) { /* the single message: its tag and metadata kept, not sent */
            char *j = json_dumps(v, 0);
            ASSERT(strstr(j, "ok-pm1@example.net") && strstr(j, "ok-pm2@example.net") &&
                   strstr(j, "ok-pm3@example.net"));
            free(j);
        }
        json_decref(v);
    }
    ASSERT_EQ(n, 6); /* Postmark: one, two of a batch of three; Resend: one, two of three */
    free(out);
    int st;
    json_t *v = m_call(&d, "GET", "/v1/jobs?search=ok-rs-strict1@example.net", auth, NULL, &st);
    ASSERT_EQ(st, 200);
    ASSERT_EQ(json_array_size(json_object_get(v, "jobs")), 0); /* strict: none stored */
    json_decref(v);
    /* what the relay received for the single message */
    char *eml = NULL;
    for (int i = 1; i <= 6 && !(eml && strstr(eml, "Postmark single")); i++) {
        char name[16];
        snprintf(name, sizeof name, "%d.eml", i);
        free(eml);
        eml = m_slurp(s.dir, name, NULL);
    }
    ASSERT(eml && strstr(eml, "Subject: Postmark single"));
    ASSERT(strstr(eml, "\"Doe, Ann\" <ann@example.com>") && strstr(eml, "\"Bo, B\" <ok-pm2@example.net>"));
    ASSERT(strstr(eml, "Cc: ok-pm3@example.net") && strstr(eml, "Reply-To: reply@example.com"));
    ASSERT(strstr(eml, "X-Campaign: c1") && strstr(eml, "filename=a.txt") && strstr(eml, "text/html"));
    ASSERT(!strstr(eml, "welcome") && !strstr(eml, "order")); /* Tag, Metadata: not sent */
    free(eml);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

static const test_case tests[] = {
    T(postmarks_and_resends_sdks_send_through_outboxd),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
