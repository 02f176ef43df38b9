/*
 * msg_helpers.c - /v1/messages from the tests' side (msg_helpers.h): calls
 * with curl, waiting for a message's outcome, reading its recipients.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "http_helpers.h"
#include "msg_helpers.h"

/* The text of file DIR/NAME (malloc'd), or NULL. */
char *m_slurp(const char *dir, const char *name, size_t *len)
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
json_t *m_call(const od *d, const char *method, const char *path, const char *headers,
                    const char *body, int *status)
{
    char *out;
    if (body) {
        FILE *f = fopen("body.json", "w");
        fputs(body, f);
        fclose(f);
    }
    t_run(&out, "curl -s -m 60 -X %s -o resp -w '%%{http_code}\\n' %s %s '%s%s'; cat resp",
          method, body ? "-H 'Content-Type: application/json' --data-binary @body.json" : "",
          headers ? headers : "", d->url, path);
    *status = atoi(out);
    json_t *v = json_loads(strchr(out, '\n') + 1, 0, NULL);
    free(out);
    return v;
}

json_t *m_send_ok(const od *d, const char *body)
{
    int st;
    json_t *v = m_call(d, "POST", "/v1/messages", NULL, body, &st);
    if (st != 202 || !v)
        test_fail(__FILE__, __LINE__, "POST /v1/messages: %d", st);
    return v;
}

const char *m_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* GET /v1/messages/ID until final (or 60 s); the message. */
json_t *m_final(const od *d, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/messages/%s", id);
    for (int i = 0; i < 6; i++) {
        int st;
        json_t *v = m_call(d, "GET", path, "-H 'Prefer: wait=10'", NULL, &st);
        ASSERT_EQ(st, 200);
        const char *s = m_str(v, "state");
        if (!strcmp(s, "completed") || !strcmp(s, "discarded") || !strcmp(s, "cancelled"))
            return v;
        json_decref(v);
    }
    test_fail(__FILE__, __LINE__, "message %s not final after 60 s", id);
}

/* GET /v1/messages/ID until fn(message) holds (or 30 s). */
json_t *m_until(const od *d, const char *id, bool (*fn)(const json_t *))
{
    char path[128];
    snprintf(path, sizeof path, "/v1/messages/%s", id);
    for (int i = 0; i < 300; i++) {
        int st;
        json_t *v = m_call(d, "GET", path, NULL, NULL, &st);
        if (v && fn(v))
            return v;
        json_decref(v);
        h_sleep_ms(100);
    }
    test_fail(__FILE__, __LINE__, "message %s: the condition did not come in 30 s", id);
}

json_t *m_rcpt(const json_t *msg, const char *address)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(msg, "recipients"), i, r)
        if (!strcmp(m_str(r, "address"), address))
            return r;
    test_fail(__FILE__, __LINE__, "no recipient %s", address);
}

void m_expect_rcpt(const json_t *msg, const char *address, const char *state, int code,
                        const char *text)
{
    json_t *r = m_rcpt(msg, address);
    if (strcmp(m_str(r, "state"), state) || json_integer_value(json_object_get(r, "code")) != code ||
        (text && !strstr(m_str(r, "reply"), text))) {
        char *d = json_dumps(r, 0);
        test_fail(__FILE__, __LINE__, "%s: want %s %d \"%s\", got %s", address, state, code,
                  text ? text : "", d);
    }
}

static char smtp_flags[512];

/* outboxd sending to smtp://HOST:PORT with extra flags. */
od m_od_smtp(const char *userinfo, int port, const char *query, const char *extra)
{
    snprintf(smtp_flags, sizeof smtp_flags,
             "--smtp smtp://%s127.0.0.1:%d%s --mail-retry-min 1 --mail-retry-max 1 %s",
             userinfo ? userinfo : "", port, query ? query : "?starttls=no", extra ? extra : "");
    return od_start(smtp_flags);
}
