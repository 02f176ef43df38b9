/*
 * test_outboxd.c - outboxd end to end: a real daemon on a free port, driven
 * by curl and by the `outbox` client, calling a target server of ours that
 * answers 200, fails, throttles, 404s and sleeps on demand. What an attacker
 * would try (SSRF, forged callbacks, ...) is in test_hardening.c.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"
#include "http_helpers.h"
#include "od_helpers.h"

/* ---- the target server: what http.request jobs and callbacks call ---- */

static atomic_int flaky_calls, busy_calls;

static void t_ok(ob_http_req *r, void *a)
{
    (void)a;
    ob_http_reply(r, 200, "application/json", "{\"ok\":true}", 11);
}

static void t_flaky(ob_http_req *r, void *a) /* fails twice, then works */
{
    (void)a;
    if (atomic_fetch_add(&flaky_calls, 1) < 2)
        ob_http_reply(r, 500, "text/plain", "down", 4);
    else
        ob_http_reply(r, 200, "text/plain", "up", 2);
}

static void t_busy(ob_http_req *r, void *a) /* 429 once, with Retry-After */
{
    (void)a;
    if (atomic_fetch_add(&busy_calls, 1) == 0) {
        ob_http_set_header(r, "Retry-After", "1");
        ob_http_reply(r, 429, "text/plain", "slow down", 9);
    } else {
        ob_http_reply(r, 200, "text/plain", "ok", 2);
    }
}

static void t_missing(ob_http_req *r, void *a)
{
    (void)a;
    ob_http_reply(r, 404, "text/plain", "no", 2);
}

static void t_slow(ob_http_req *r, void *a)
{
    (void)a;
    h_sleep_ms(1500);
    ob_http_reply(r, 200, "text/plain", "late", 4);
}

static void t_echo(ob_http_req *r, void *a) /* "Content-Type|body" */
{
    (void)a;
    size_t n;
    const char *body = ob_http_body(r, &n), *ct = ob_http_header(r, "Content-Type");
    char out[512];
    int m = snprintf(out, sizeof out, "%s|%.*s", ct ? ct : "", (int)(n < 400 ? n : 400),
                     body ? body : "");
    ob_http_reply(r, 201, "text/plain", out, (size_t)m);
}

static ob_http_server *target(int *port)
{
    ob_http_opts o;
    t_opts(&o);
    o.threads = 4;
    ob_http_server *s;
    ASSERT_OK(ob_http_server_new(&o, &s));
    ASSERT_OK(ob_http_route(s, "GET", "/ok", t_ok, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/flaky", t_flaky, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/busy", t_busy, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/missing", t_missing, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/slow", t_slow, NULL, 0));
    ASSERT_OK(ob_http_route(s, "POST", "/echo", t_echo, NULL, 0));
    *port = t_start(s);
    return s;
}

/* POST a job: returns "<status>\n<body>" (malloc'd). */
static char *post(const od *d, const char *headers, const char *body)
{
    return od_post(d, "/v1/jobs", headers, body);
}

static char *get(const od *d, const char *path)
{
    char *out;
    t_curl(&out, d->port, "%s%s", d->url, path);
    return out;
}

/* Wait until GET /v1/jobs/ID is final; returns its body. */
static char *until_final(const od *d, const char *id)
{
    char path[128], *out;
    snprintf(path, sizeof path, "-H 'Prefer: wait=20' %s/v1/jobs/%s", d->url, id);
    t_curl(&out, d->port, "%s", path);
    if (!strstr(out, "\"state\":\"completed\"") && !strstr(out, "\"state\":\"discarded\"") &&
        !strstr(out, "\"state\":\"cancelled\""))
        test_fail(__FILE__, __LINE__, "job %s not final: %.300s", id, out);
    return out;
}

static int job_count(const od *d)
{
    char *out = get(d, "/v1/jobs?limit=1000");
    int n = 0;
    for (const char *p = out; (p = strstr(p, "\"status_url\"")); p++)
        n++;
    free(out);
    return n;
}


/* ---- the API ---- */

TEST(job_endpoints_answer_and_refuse_naming_the_field)
{
    od d = od_start(NULL);
    char *out = post(&d, NULL, "{\"kind\":\"http.request\",\"delay\":3600,"
                               "\"payload\":{\"url\":\"http://127.0.0.1:1/\"}}");
    ASSERT(strncmp(out, "202\n", 4) == 0 && strstr(out, "\"state\":\"scheduled\""));
    char id[64], path[128];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    EXPECT(get(&d, path), "200", "\"payload\":{\"url\":\"http://127.0.0.1:1/\"}");
    EXPECT(get(&d, path), "200", "\"rate_key\":\"http://127.0.0.1:1\""); /* its origin */
    out = post(&d, NULL, "{\"kind\":\"http.request\",\"delay\":3600,"
                         "\"payload\":{\"url\":\"HTTP://Example.COM/x?y\"}}");
    ASSERT(strstr(out, "202\n") == out);
    char other[80];
    snprintf(other, sizeof other, "/v1/jobs/");
    od_json_str(out, "id", other + strlen(other), sizeof other - strlen(other));
    free(out);
    EXPECT(get(&d, other), "200", "\"rate_key\":\"http://example.com:80\"");
    EXPECT(get(&d, "/v1/jobs?state=scheduled"), "200", id);
    EXPECT(get(&d, "/v1/jobs?state=completed"), "200", "\"jobs\":[]");
    char *o;
    t_curl(&o, d.port, "-X POST %s%s/cancel", d.url, path);
    EXPECT(o, "200", "\"state\":\"cancelled\"");
    t_curl(&o, d.port, "-X POST %s%s/retry", d.url, path);
    EXPECT(o, "200", "\"state\":\"available\"");
    t_curl(&o, d.port, "-X POST %s/v1/jobs/01890000-0000-7000-8000-000000000000/cancel", d.url);
    EXPECT(o, "404", "\"field\":\"id\"");
    EXPECT(get(&d, "/v1/jobs/not-an-id"), "400", "\"field\":\"id\"");
    EXPECT(get(&d, "/v1/jobs?state=finished"), "400", "\"field\":\"state\"");
    EXPECT(get(&d, "/v1/jobs?limit=0"), "400", "\"field\":\"limit\"");
    EXPECT(get(&d, "/v1/jobs?cursor=zzz"), "400", "\"field\":\"cursor\"");
    EXPECT(get(&d, "/healthz"), "200", "\"ok\"");
    EXPECT(get(&d, "/readyz"), "200", "\"ready\"");
    EXPECT(get(&d, "/nope"), "404", "not_found");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    d = od_start("--workers 0"); /* stores jobs, runs none */
    out = post(&d, NULL, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:1/\"}}");
    od_json_str(out, "id", id, sizeof id);
    free(out);
    h_sleep_ms(300);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    EXPECT(get(&d, path), "200", "\"state\":\"available\"");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(a_batch_of_jobs_is_stored_item_by_item)
{
    od d = od_start("--workers 0 --max-batch 4");
    char *out;
    t_run(&out, "curl -s -m 30 -w '\\n%%{http_code}' -H 'Content-Type: application/json' "
                "-d '{\"jobs\":[{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:1/\"}},"
                "{\"kind\":\"nope\"},{\"kind\":\"http.request\",\"unique_key\":\"u1\","
                "\"payload\":{\"url\":\"http://127.0.0.1:1/\"}},{\"kind\":\"http.request\","
                "\"unique_key\":\"u1\",\"payload\":{\"url\":\"http://127.0.0.1:1/\"}}]}' "
                "%s/v1/jobs/batch",
          d.url);
    json_t *v = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    ASSERT(strstr(out, "\n200"));
    json_t *r = json_object_get(v, "results");
    ASSERT_EQ(json_array_size(r), 4);
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(r, 0), "state")), "available");
    json_t *e = json_object_get(json_array_get(r, 1), "error");
    ASSERT(e && json_integer_value(json_object_get(e, "status")) >= 400);
    ASSERT_STREQ(json_string_value(json_object_get(e, "field")), "kind");
    /* One unique key, twice in the batch: one job, named by both. */
    const char *u1 = json_string_value(json_object_get(json_array_get(r, 2), "id"));
    const char *u2 = json_string_value(json_object_get(json_array_get(r, 3), "id"));
    ASSERT(u1 && u2 && strcmp(u1, u2) == 0);
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(r, 3), "state")), "existing");
    json_decref(v);
    free(out);
    ASSERT_EQ(job_count(&d), 2);
    /* Too many, or none: refused whole. */
    EXPECT(od_post(&d, "/v1/jobs/batch", NULL, "[{},{},{},{},{}]"), "413", "\"field\":\"jobs\"");
    EXPECT(od_post(&d, "/v1/jobs/batch", NULL, "{\"jobs\":[]}"), "422", "\"field\":\"jobs\"");
    /* the shape: {"jobs": [...]} alone, or the array */
    EXPECT(od_post(&d, "/v1/jobs/batch", NULL, "{}"), "422", "a batch is");
    EXPECT(od_post(&d, "/v1/jobs/batch", NULL, "{\"jobs\":{}}"), "422", "a batch is");
    EXPECT(od_post(&d, "/v1/jobs/batch", NULL, "{\"jobs\":[{}],\"x\":1}"), "422", "a batch is");
    EXPECT(od_post(&d, "/v1/jobs/batch", NULL, "{\"items\":[{}]}"), "422", "a batch is");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(bad_input_is_a_clear_4xx_and_stores_nothing)
{
    od d = od_start("--max-body 100000 --max-payload 5000");
    struct { const char *body, *code, *needle; } cases[] = {
        {"{", "400", "invalid_json"},
        {"[1,2]", "422", "must be a JSON object"},
        {"{}", "422", "\"field\":\"kind\""},
        {"{\"kind\":7}", "422", "\"field\":\"kind\""},
        {"{\"kind\":\"nope\"}", "422", "unknown_kind"},
        {"{\"kind\":\"http.request\",\"colour\":1}", "422", "\"code\":\"unknown_field\""},
        {"{\"kind\":\"http.request\",\"priority\":\"high\"}", "422", "\"field\":\"priority\""},
        {"{\"kind\":\"http.request\",\"priority\":5000,\"payload\":{\"url\":\"http://a\"}}", "422", "\"field\":\"priority\""},
        {"{\"kind\":\"http.request\",\"delay\":1,\"run_at\":\"2030-01-01T00:00:00Z\"}", "422", "\"field\":\"delay\""},
        {"{\"kind\":\"http.request\",\"run_at\":\"tomorrow\"}", "422", "\"field\":\"run_at\""},
        {"{\"kind\":\"http.request\",\"timeout\":-1}", "422", "\"field\":\"timeout\""},
        {"{\"kind\":\"http.request\",\"callback_url\":\"ftp://x/y\"}", "422", "\"field\":\"callback_url\""},
        {"{\"kind\":\"http.request\",\"payload\":{}}", "422", "\"field\":\"payload.url\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"file:///etc/passwd\"}}", "422", "\"field\":\"payload.url\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"x\":1}}", "422", "\"field\":\"payload.x\""},
        {"{\"kind\":\"http.request\",\"unique_key\":\"\"}", "422", "\"field\":\"unique_key\""},
        {"{\"kind\":\"http.request\",\"queue\":\"a b\",\"payload\":{\"url\":\"http://a\"}}", "422", "\"field\":\"queue\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"headers\":{\"Host\":\"x\"}}}", "422", "\"field\":\"payload.headers.Host\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"headers\":{\"X-A\":1}}}", "422", "\"field\":\"payload.headers.X-A\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"headers\":[]}}", "422", "\"field\":\"payload.headers\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"expect_status\":99}}", "422", "\"field\":\"payload.expect_status\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"expect_status\":[]}}", "422", "\"field\":\"payload.expect_status\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"expect_status\":\"200\"}}", "422", "\"field\":\"payload.expect_status\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"expect_status\":[200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216]}}", "422", "up to 16"},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"sign\":\"yes\"}}", "422", "\"field\":\"payload.sign\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"method\":\"post\"}}", "422", "\"field\":\"payload.method\""},
        {"{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"timeout\":0}}", "422", "\"field\":\"payload.timeout\""},
        {"{\"k\\u0069nd\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"\\u0078\":1}}", "422", "\"field\":\"payload.x\""},
        {"{\"kind\":\"http.request\",\"payload\":[1]}", "422", "\"field\":\"payload\""},
        {"{\"kind\":\"http.\xff\"}", "400", "invalid_json"}, /* not UTF-8 */
        {"{\"kind\":\"x\",\"kind\":\"y\"}", "400", "duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = post(&d, NULL, cases[i].body);
        if (strncmp(out, cases[i].code, 3) != 0 || !strstr(out, cases[i].needle))
            test_fail(__FILE__, __LINE__, "%s: want %s %s, got %.300s", cases[i].body,
                      cases[i].code, cases[i].needle, out);
        free(out);
    }
    char *out;
    ASSERT_EQ(t_run(NULL, "head -c 6000 /dev/zero | tr '\\0' a > big.txt && printf "
                          "'{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://a\",\"body\":\"%%s\"}}' "
                          "\"$(cat big.txt)\" > payload.json"), 0);
    t_curl(&out, d.port, "-H 'Content-Type: application/json' --data-binary @payload.json %s/v1/jobs",
           d.url);
    EXPECT(out, "413", "\"field\":\"payload\"");
    ASSERT_EQ(t_run(NULL, "head -c 200000 /dev/zero | tr '\\0' ' ' > huge.json"), 0);
    t_curl(&out, d.port, "-H 'Content-Type: application/json' --data-binary @huge.json %s/v1/jobs",
           d.url);
    EXPECT(out, "413", "body_too_large");
    t_curl(&out, d.port, "-H 'Content-Type: text/plain' -d '{}' %s/v1/jobs", d.url);
    EXPECT(out, "415", "\"field\":\"Content-Type\"");
    t_curl(&out, d.port, "-H \"X-Big: $(head -c 40000 /dev/zero | tr '\\0' a)\" %s/v1/jobs", d.url);
    EXPECT(out, "431", "");
    ASSERT_EQ(job_count(&d), 0); /* nothing refused was stored */
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(idempotency_key_same_body_same_job_other_body_409)
{
    od d = od_start(NULL);
    const char *body = "{\"kind\":\"http.request\",\"delay\":3600,\"payload\":{\"url\":\"http://a\"}}";
    char *a = post(&d, "-H 'Idempotency-Key: order-1'", body);
    char *b = post(&d, "-H 'Idempotency-Key: order-1'", body);
    ASSERT(strncmp(a, "202\n", 4) == 0);
    ASSERT(strncmp(b, "200\n", 4) == 0);
    char ia[64], ib[64];
    od_json_str(a, "id", ia, sizeof ia);
    od_json_str(b, "id", ib, sizeof ib);
    ASSERT_STREQ(ia, ib);
    free(a);
    free(b);
    EXPECT(post(&d, "-H 'Idempotency-Key: order-1'",
                "{\"kind\":\"http.request\",\"delay\":60,\"payload\":{\"url\":\"http://b\"}}"),
           "409", "\"field\":\"Idempotency-Key\"");
    /* 20 identical requests at once: one job */
    FILE *f = fopen("same.json", "w");
    fputs(body, f);
    fclose(f);
    char *out;
    ASSERT_EQ(t_run(&out, "for i in $(seq 20); do curl -s -m 20 -o r$i -w '%%{http_code}\\n' "
                          "-H 'Content-Type: application/json' -H 'Idempotency-Key: burst' "
                          "--data-binary @same.json %s/v1/jobs & done; wait; "
                          "cat r* | grep -o '\"id\":\"[^\"]*\"' | sort -u | wc -l",
                    d.url),
              0);
    ASSERT(strstr(out, "\n1\n") != NULL || strncmp(out + strlen(out) - 2, "1\n", 2) == 0);
    ASSERT(!strstr(out, "409") && !strstr(out, "5"));
    free(out);
    ASSERT_EQ(job_count(&d), 2);
    /* unique_key in the body: the existing job, whatever the body */
    a = post(&d, NULL, "{\"kind\":\"http.request\",\"unique_key\":\"u1\",\"delay\":60,"
                       "\"payload\":{\"url\":\"http://a\"}}");
    b = post(&d, NULL, "{\"kind\":\"http.request\",\"unique_key\":\"u1\",\"delay\":99,"
                       "\"payload\":{\"url\":\"http://b\"}}");
    ASSERT(strncmp(a, "202\n", 4) == 0 && strncmp(b, "200\n", 4) == 0 && strstr(b, "\"unique_key\":\"u1\""));
    free(a);
    free(b);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(prefer_wait_holds_until_final_or_times_out)
{
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start(NULL);
    char body[256];
    snprintf(body, sizeof body,
             "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:%d/ok\"}}", tport);
    char *out = post(&d, "-H 'Prefer: wait=10'", body);
    EXPECT(out, "200", "\"state\":\"completed\"");
    snprintf(body, sizeof body,
             "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:%d/slow\"}}", tport);
    int64_t t0 = ob_mono_ms();
    out = post(&d, "-H 'Prefer: wait=0.4'", body);
    ASSERT(ob_mono_ms() - t0 >= 400 && ob_mono_ms() - t0 < 1400);
    ASSERT(strncmp(out, "202\n", 4) == 0 && strstr(out, "\"state\":\"running\""));
    char id[64];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    out = until_final(&d, id); /* GET with Prefer: wait */
    ASSERT(strstr(out, "\"state\":\"completed\"") && strstr(out, "late"));
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

TEST(http_requests_complete_retry_or_discard_by_the_status_they_get)
{
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start(NULL);
    struct { const char *path, *extra, *state, *needle; int attempt; } cases[] = {
        {"/ok", "", "completed", "\"status\":200", 1},
        {"/flaky", "", "completed", "\"body\":\"up\"", 3},          /* 500, 500, 200 */
        {"/busy", "", "completed", "\"status\":200", 2},            /* 429 Retry-After 1 */
        {"/missing", "", "discarded", "HTTP 404", 1},               /* not worth retrying */
        {"/slow", ",\"timeout\":0.3", "discarded", "imeout", 1},   /* too slow, max_attempts 1 */
        /* a JSON body goes as the bytes given, as application/json; 201 expected */
        {"/echo", ",\"method\":\"POST\",\"body\":{\"a\": [1, \"\\u00e9\"]},\"expect_status\":[200,201]",
         "completed", "application/json|{\\\"a\\\": [1, \\\"\\\\u00e9\\\"]}", 1},
        /* a string body as its text, with the payload's own Content-Type */
        {"/echo", ",\"method\":\"POST\",\"headers\":{\"content-type\":\"text/x-a\"},"
                  "\"body\":\"caf\\u00e9\",\"expect_status\":201",
         "completed", "text/x-a|caf\u00e9", 1},
    };
    enum { N = sizeof cases / sizeof *cases };
    char ids[N][64];
    for (int i = 0; i < N; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"kind\":\"http.request\",\"max_attempts\":%d,\"payload\":{\"url\":"
                 "\"http://127.0.0.1:%d%s\"%s}}",
                 i == 4 ? 1 : 5, tport, cases[i].path, cases[i].extra);
        char *out = post(&d, NULL, body);
        if (strncmp(out, "202\n", 4) != 0)
            test_fail(__FILE__, __LINE__, "%s: %.300s", body, out);
        od_json_str(out, "id", ids[i], sizeof ids[i]);
        free(out);
    }
    for (int i = 0; i < N; i++) {
        char *out = until_final(&d, ids[i]);
        char st[32], want[64];
        od_json_str(out, "state", st, sizeof st);
        snprintf(want, sizeof want, "\"attempt\":%d,", cases[i].attempt);
        if (strcmp(st, cases[i].state) || !strstr(out, cases[i].needle) || !strstr(out, want))
            test_fail(__FILE__, __LINE__, "%s: %.500s", cases[i].path, out);
        free(out);
    }
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

TEST(events_stream_and_resume)
{
    od d = od_start(NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "timeout 3 curl -s -N %s/v1/events > ev1.txt &", d.url);
    ASSERT_EQ(system(cmd), 0);
    h_sleep_ms(300);
    char *out = post(&d, NULL, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:1/\"},"
                               "\"max_attempts\":1}"), id[64];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    free(until_final(&d, id));
    h_sleep_ms(200);
    char *ev;
    t_run(&ev, "cat ev1.txt");
    ASSERT(strstr(ev, "event: job") && strstr(ev, id) && strstr(ev, "\"state\":\"available\"") &&
           strstr(ev, "\"state\":\"running\"") && strstr(ev, "\"state\":\"discarded\""));
    char first[32];
    const char *p = strstr(ev, "id: ");
    ASSERT(p);
    snprintf(first, sizeof first, "%.*s", (int)strcspn(p + 4, "\n"), p + 4);
    free(ev);
    /* resume after the first event: the rest, again, in order */
    t_run(&ev, "timeout 1 curl -s -N -H 'Last-Event-ID: %s' '%s/v1/events?id=%s'", first, d.url, id);
    ASSERT(!strstr(ev, "\"state\":\"available\"") && strstr(ev, "\"state\":\"running\"") &&
           strstr(ev, "\"state\":\"discarded\""));
    free(ev);
    t_run(&ev, "timeout 1 curl -s -N -H 'Last-Event-ID: 1' %s/v1/events", d.url);
    ASSERT(strstr(ev, "event: reset") != NULL);
    free(ev);
    /* changes while nobody listens are kept as facts and rendered when
     * first read (E1 in events.c): the same events, the error quoted */
    h_sleep_ms(1500); /* the first stream (3 s) has ended */
    out = post(&d, NULL, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:1/\"},"
                         "\"max_attempts\":1}");
    char id2[64];
    od_json_str(out, "id", id2, sizeof id2);
    free(out);
    free(until_final(&d, id2));
    t_run(&ev, "timeout 1 curl -s -N -H 'Last-Event-ID: %s' '%s/v1/events?id=%s'", first, d.url, id2);
    ASSERT(strstr(ev, id2) && strstr(ev, "\"state\":\"available\"") &&
           strstr(ev, "\"state\":\"running\"") && strstr(ev, "\"state\":\"discarded\",") &&
           strstr(ev, "\"error\":\"") && !strstr(ev, id));
    free(ev);
    t_curl(&ev, d.port, "'%s/v1/events?id=nope'", d.url);
    EXPECT(ev, "400", "\"field\":\"id\"");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(bearer_tokens_guard_all_but_health)
{
    FILE *f = fopen("tokens", "w");
    fputs("# ops\nsecret-token-0123456789\n\nother-token-abcdefghijk\n", f);
    fclose(f);
    chmod("tokens", 0600);
    od d = od_start("--token-file ./tokens");
    EXPECT(get(&d, "/healthz"), "200", "ok");
    EXPECT(get(&d, "/readyz"), "200", "ready");
    char *out;
    t_run(&out, "curl -s -D - %s/v1/jobs", d.url);
    ASSERT(strncmp(out, "HTTP/1.1 401", 12) == 0 && strcasestr(out, "WWW-Authenticate: Bearer"));
    free(out);
    t_curl(&out, d.port, "-H 'Authorization: Bearer wrong-token-xxxxxxxxx' %s/metrics", d.url);
    EXPECT(out, "401", "unauthorized");
    t_curl(&out, d.port, "-H 'Authorization: Bearer other-token-abcdefghijk' %s/v1/jobs", d.url);
    EXPECT(out, "200", "\"jobs\"");
    t_curl(&out, d.port, "%s/v1/openapi.json", d.url); /* the contract, before a token */
    EXPECT(out, "200", "\"openapi\"");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    /* no tokens, not loopback: refused before it listens */
    ASSERT_EQ(t_run(&out, "%s --listen 0.0.0.0:0 --log-file x.log 2>&1", OUTBOXD), 2);
    ASSERT(strstr(out, "without authentication") != NULL);
    free(out);
    ASSERT_EQ(t_run(&out, "echo short > bad && chmod 600 bad && %s --token-file ./bad 2>&1", OUTBOXD), 1);
    ASSERT(strstr(out, "16-512") != NULL);
    free(out);
}

TEST(metrics_pass_promtool_and_openapi_is_served)
{
    od d = od_start(NULL);
    free(post(&d, NULL, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:1/\"}}"));
    h_sleep_ms(200);
    char *out;
    ASSERT_EQ(t_run(&out, "curl -s %s/metrics > m.txt && promtool check metrics < m.txt 2>&1 && "
                          "grep -c '^outbox_' m.txt", d.url), 0);
    free(out);
    t_run(&out, "grep -E 'outbox_jobs_enqueued_total\\{kind=\"http.request\",queue=\"default\"\\} 1|"
                "outbox_http_responses_total\\{code=\"202\"\\}' m.txt | wc -l");
    ASSERT_EQ(atoi(out), 2);
    free(out);
    /* As operators alert on it: every state of a known kind and queue,
     * 0 included; the oldest due job; buckets past 10 s; mail, callbacks,
     * HTTP durations, the build and the process. */
    static const char *const want[] = {
        "outbox_jobs{state=\"cancelled\",kind=\"http.request\",queue=\"default\"} 0",
        "outbox_jobs{state=\"completed\",kind=\"http.request\",queue=\"default\"} 0",
        "outbox_jobs_oldest_due_seconds{queue=\"default\"} ",
        "outbox_job_run_seconds_bucket{le=\"300\"}",
        "outbox_http_request_duration_seconds_count ",
        "outbox_mail_recipients_total{state=\"bounced\"} 0",
        "outbox_callback_failures_total 0",
        "outbox_build_info{version=\"0.1.0\"} 1",
        "process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
        "process_max_fds ", "process_start_time_seconds ", NULL};
    ASSERT_EQ(t_run(&out, "cat m.txt"), 0);
    for (int i = 0; want[i]; i++)
        if (!strstr(out, want[i]))
            test_fail(__FILE__, __LINE__, "/metrics lacks %s", want[i]);
    free(out);
    ASSERT_EQ(t_run(&out, "curl -s %s/v1/openapi.json | cmp - %s && echo same", d.url, OPENAPI_DOC), 0);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);

    /* a job due and not started: the oldest-due gauge grows ("mail is stuck") */
    d = od_start("--workers 0");
    free(post(&d, NULL, "{\"kind\":\"http.request\",\"queue\":\"q\",\"payload\":{\"url\":"
                        "\"http://127.0.0.1:1/\"}}"));
    h_sleep_ms(1500);
    t_run(&out, "curl -s %s/metrics | sed -n 's/^outbox_jobs_oldest_due_seconds{"
                "queue=\"q\"} //p'", d.url);
    printf("  oldest due: %s", out);
    ASSERT(atof(out) >= 1.0);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(signals_hup_reopens_the_log_term_drains)
{
    od d = od_start(NULL);
    ASSERT_EQ(rename("outboxd.log", "outboxd.log.1"), 0);
    kill(d.pid, SIGHUP);
    h_sleep_ms(300);
    char *out;
    ASSERT_EQ(t_run(&out, "grep -c 'log reopened' outboxd.log"), 0);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGINT), 0);
    ASSERT_EQ(t_run(&out, "grep -c 'stopped' outboxd.log"), 0);
    free(out);
}

static void newer_sqlite(const char *url)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(url + strlen("sqlite:"), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

TEST(migrate_creates_then_refuses_a_newer_schema)
{
    od_check_migrate(test_url("m.db"), newer_sqlite);
}

/* ---- the command-line client ---- */

static int cli(char **out, const od *d, const char *args)
{
    return t_run(out, "OUTBOX_URL=%s %s %s", d ? d->url : "http://127.0.0.1:1", OUTBOX_CLI, args);
}

TEST(cli_verbs_and_exit_codes)
{
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start(NULL);
    char *out, args[512], id[64];
    snprintf(args, sizeof args, "job add http.request --payload '{\"url\":\"http://127.0.0.1:%d/ok\"}'",
             tport);
    ASSERT_EQ(cli(&out, &d, args), 0);
    snprintf(id, sizeof id, "%.36s", out);
    free(out);
    snprintf(args, sizeof args, "job wait %s --timeout 20", id);
    ASSERT_EQ(cli(&out, &d, args), 0);
    ASSERT(strstr(out, "state       completed") != NULL);
    free(out);
    snprintf(args, sizeof args, "--json job get %s", id);
    ASSERT_EQ(cli(&out, &d, args), 0);
    ASSERT(strstr(out, "\"status\": 200") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "job list --state completed"), 0);
    ASSERT(strstr(out, id) && strstr(out, "STATE"));
    free(out);
    snprintf(args, sizeof args, "job list --search %s --after 2020-01-01T00:00:00Z", id);
    ASSERT_EQ(cli(&out, &d, args), 0); /* found by its id, in the range */
    ASSERT(strstr(out, id));
    free(out);
    ASSERT_EQ(cli(&out, &d, "job list --search nobody@example.org --before 2020-01-01T00:00:00Z"), 0);
    ASSERT(!strstr(out, "http.request"));
    free(out);
    snprintf(args, sizeof args, "job add http.request --max-attempts 1 --wait 20 --payload "
                                "'{\"url\":\"http://127.0.0.1:%d/missing\"}'", tport);
    ASSERT_EQ(cli(&out, &d, args), 1); /* the job failed */
    ASSERT(strstr(out, "discarded") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "job add http.request --delay 3600 --payload '{\"url\":\"http://a\"}'"), 0);
    snprintf(id, sizeof id, "%.36s", out);
    free(out);
    snprintf(args, sizeof args, "job wait %s --timeout 0.5", id);
    ASSERT_EQ(cli(&out, &d, args), 4); /* timeout */
    free(out);
    snprintf(args, sizeof args, "job cancel %s", id);
    ASSERT_EQ(cli(&out, &d, args), 0);
    ASSERT(strstr(out, "cancelled") != NULL);
    free(out);
    snprintf(args, sizeof args, "job retry %s", id);
    ASSERT_EQ(cli(&out, &d, args), 0);
    free(out);
    ASSERT_EQ(cli(&out, &d, "job get 01890000-0000-7000-8000-000000000000"), 1);
    free(out);
    ASSERT_EQ(cli(&out, &d, "health"), 0);
    ASSERT(strstr(out, "ready: yes") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, NULL, "health 2>&1"), 3); /* unreachable */
    free(out);
    ASSERT_EQ(cli(&out, &d, "job frobnicate 2>&1"), 2); /* usage */
    free(out);
    const char *verbs[] = {"--help", "job add --help", "job get --help", "job list --help",
                           "job wait --help", "job cancel --help", "job retry --help",
                           "events --help", "health --help"};
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++) {
        ASSERT_EQ(cli(&out, &d, verbs[i]), 0);
        ASSERT(strstr(out, "usage:") != NULL);
        free(out);
    }
    /* events: follows a job added while it listens; --json after the verb */
    ASSERT_EQ(t_run(&out, "(OUTBOX_URL=%s timeout 2 %s events --kind http.request --json > ev.txt &); "
                          "sleep 0.5; OUTBOX_URL=%s %s job add http.request --delay 60 "
                          "--payload '{\"url\":\"http://a\"}'; sleep 2",
                    d.url, OUTBOX_CLI, d.url, OUTBOX_CLI), 0);
    snprintf(id, sizeof id, "%.36s", out);
    free(out);
    ASSERT_EQ(t_run(&out, "grep -c '\"id\":\"%s\".*\"state\":\"scheduled\"' ev.txt", id), 0);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

/* The client's options, to the habits of curl, git and gh. */
TEST(cli_options_numbers_keys_auth_and_pages)
{
    int fd = open("tokens", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0 && write(fd, "cli-token-0123456789ab\n", 23) == 23);
    close(fd);
    od d = od_start("--token-file ./tokens --workers 0");
    char *out, args[512], id[64], id2[64];
    /* the token from a private file; a 401 has its own exit code */
    ASSERT_EQ(cli(&out, &d, "job list 2>&1"), 5);
    ASSERT(strstr(out, "401") && strstr(out, "--token-file"));
    free(out);
    ASSERT_EQ(t_run(&out, "%s --url=%s --token-file=tokens job list", OUTBOX_CLI, d.url), 0);
    free(out);
    ASSERT_EQ(t_run(&out, "chmod 644 tokens; %s --url %s --token-file tokens job list 2>&1; "
                          "rc=$?; chmod 600 tokens; exit $rc", OUTBOX_CLI, d.url), 2);
    ASSERT(strstr(out, "group or others"));
    free(out);
#define CLI(...) (snprintf(args, sizeof args, "OUTBOX_TOKEN_FILE=tokens OUTBOX_URL=%s %s " __VA_ARGS__), \
                  t_run(&out, "%s", args))
    /* an Idempotency-Key and a wait together: both sent, so one job */
    ASSERT_EQ(CLI("job add http.request --idempotency-key k7 --wait 1 --payload "
                  "'{\"url\":\"http://127.0.0.1:9/\"}' --json", d.url, OUTBOX_CLI), 4);
    ASSERT(strstr(out, "\"id\": \""));
    snprintf(id, sizeof id, "%.36s", strstr(out, "\"id\": \"") + 7);
    free(out);
    ASSERT_EQ(CLI("job add --wait=1 --json --payload='{\"url\":\"http://127.0.0.1:9/\"}' "
                  "--idempotency-key k7 http.request", d.url, OUTBOX_CLI), 4); /* the same */
    ASSERT(strstr(out, "\"id\": \""));
    snprintf(id2, sizeof id2, "%.36s", strstr(out, "\"id\": \"") + 7);
    free(out);
    ASSERT_STREQ(id, id2);
    /* numbers are numbers */
    ASSERT_EQ(CLI("job add http.request --priority abc 2>&1", d.url, OUTBOX_CLI), 2);
    ASSERT(strstr(out, "--priority"));
    free(out);
    ASSERT_EQ(CLI("job add http.request --delay xyz 2>&1", d.url, OUTBOX_CLI), 2);
    free(out);
    ASSERT_EQ(CLI("job wait --timeout soon %s 2>&1", d.url, OUTBOX_CLI, id), 2);
    free(out);
    /* options after operands, and "--" */
    ASSERT_EQ(CLI("job wait --timeout 0.3 %s 2>&1", d.url, OUTBOX_CLI, id), 4);
    ASSERT(strstr(out, "not final"));
    ASSERT(!strstr(out, "waiting for")); /* no progress line off a terminal */
    free(out);
    ASSERT_EQ(CLI("job get -- %s", d.url, OUTBOX_CLI, id), 0);
    free(out);
    /* the next page keeps the filters and the limit */
    for (int i = 0; i < 3; i++)
        free(od_post(&d, "/v1/jobs", "-H 'Authorization: Bearer cli-token-0123456789ab'",
                     "{\"kind\":\"http.request\",\"queue\":\"p\",\"payload\":{\"url\":"
                     "\"http://127.0.0.1:9/\"}}"));
    ASSERT_EQ(CLI("job list --queue p --limit 2", d.url, OUTBOX_CLI), 0);
    ASSERT(strstr(out, "more: outbox job list --queue 'p' --limit '2' --cursor "));
    free(out);
    /* help, version */
    ASSERT_EQ(CLI("help", d.url, OUTBOX_CLI), 0);
    ASSERT(strstr(out, "usage: outbox"));
    free(out);
    ASSERT_EQ(CLI("help job add", d.url, OUTBOX_CLI), 0);
    ASSERT(strstr(out, "usage: outbox job add"));
    free(out);
    ASSERT_EQ(CLI("job --help", d.url, OUTBOX_CLI), 0);
    free(out);
    ASSERT_EQ(CLI("--version", d.url, OUTBOX_CLI), 0);
    ASSERT(strstr(out, "outbox 0.1.0"));
    free(out);
#undef CLI
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* events: the server's error shown; reconnects across a restart and
 * resumes after the last event; --once stops at the first disconnect. */
TEST(cli_events_show_errors_and_reconnect)
{
    od d = od_start(NULL);
    char *out, listen[64], cmd[1024];
    ASSERT_EQ(cli(&out, &d, "events --id nope 2>&1"), 1);
    ASSERT(strstr(out, "400") && strstr(out, "field: id"));
    free(out);
    snprintf(listen, sizeof listen, "--listen 127.0.0.1:%d", d.port);
    snprintf(cmd, sizeof cmd, "(OUTBOX_URL=%s timeout 12 %s events --json > ev.txt 2> ev.err &); "
                              "(OUTBOX_URL=%s timeout 12 %s events --once > once.txt 2>&1; "
                              "echo \"exit $?\" >> once.txt) &", d.url, OUTBOX_CLI, d.url, OUTBOX_CLI);
    ASSERT_EQ(system(cmd), 0);
    h_sleep_ms(500);
    free(post(&d, NULL, "{\"kind\":\"http.request\",\"queue\":\"before\",\"delay\":60,"
                        "\"payload\":{\"url\":\"http://127.0.0.1:9/\"}}"));
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    h_sleep_ms(700);
    d = od_start(listen); /* the same address again */
    h_sleep_ms(2500);     /* the client's backoff */
    free(post(&d, NULL, "{\"kind\":\"http.request\",\"queue\":\"after\",\"delay\":60,"
                        "\"payload\":{\"url\":\"http://127.0.0.1:9/\"}}"));
    h_sleep_ms(700);
    ASSERT_EQ(t_run(&out, "cat ev.txt ev.err once.txt"), 0);
    ASSERT(strstr(out, "\"queue\":\"before\"") && strstr(out, "\"queue\":\"after\""));
    ASSERT(strstr(out, "\n{\"id\"") || !strncmp(out, "{\"id\"", 6)); /* no leading space */
    ASSERT(strstr(out, "reconnecting"));
    ASSERT(strstr(out, "exit 0")); /* --once ended with the first connection */
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* ---- kill -9 under load: no 2xx'd job is lost ---- */

typedef struct loader {
    int port;
    int fd; /* log of acknowledged ids */
    atomic_bool *stop;
} loader;

static void *load(void *arg)
{
    loader *l = arg;
    while (!atomic_load(l->stop)) {
        int fd = t_try_connect(l->port);
        if (fd < 0)
            continue; /* killed: wait for stop */
        const char *body = "{\"kind\":\"http.request\",\"delay\":3600,\"payload\":{\"url\":\"http://a\"}}";
        char req[512];
        int n = snprintf(req, sizeof req,
                         "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            close(fd);
            continue;
        }
        char *raw = t_read(fd, 1, 2000);
        close(fd);
        const char *idp = strstr(raw, "\"id\":\"");
        if (strncmp(raw, "HTTP/1.1 202", 12) == 0 && idp) {
            char line[64];
            int k = snprintf(line, sizeof line, "%.36s\n", idp + 6);
            if (write(l->fd, line, (size_t)k) != k)
                _exit(3);
        }
        free(raw);
    }
    return NULL;
}

static int cycles = 10;

TEST(kill_9_under_load_loses_no_acknowledged_job)
{
    int fd = open("acked.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    unsigned seed = (unsigned)ob_now_ms();
    srand(seed);
    printf("  %d cycles, seed %u\n", cycles, seed);
    for (int c = 0; c < cycles; c++) {
        od d = od_start(NULL);
        atomic_bool stop = false;
        loader l = {d.port, fd, &stop};
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&th[i], NULL, load, &l);
        h_sleep_ms(200 + rand() % 500);
        ASSERT_EQ(od_stop(&d, SIGKILL), 128 + SIGKILL);
        atomic_store(&stop, true);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
    }
    close(fd);
    od d = od_start(NULL); /* every acknowledged job is there */
    FILE *f = fopen("acked.log", "r");
    char line[64];
    int n = 0, conn = t_connect(d.port); /* one keep-alive connection: thousands of GETs */
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strlen(line) != 36)
            continue;
        char req[128];
        int k = snprintf(req, sizeof req, "GET /v1/jobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", line);
        t_send(conn, req, (size_t)k);
        char *out = t_read(conn, 1, 5000);
        if (strncmp(out, "HTTP/1.1 200", 12) != 0)
            test_fail(__FILE__, __LINE__, "acknowledged job %s: %.200s", line, out);
        free(out);
        n++;
    }
    close(conn);
    fclose(f);
    printf("  %d acknowledged jobs all present after %d kills\n", n, cycles);
    ASSERT(n >= cycles);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* The dead-letter queue, as an operator empties it: the discarded jobs of
 * a queue retried page by page through the API, then with the client. */
TEST(final_jobs_are_retried_and_cancelled_in_bulk_page_by_page)
{
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start("--workers 0"); /* nothing runs: states stay as set */
    char body[256], *out;
    for (int i = 0; i < 5; i++) { /* discarded by hand: cancelled, as a DLQ of them */
        snprintf(body, sizeof body, "{\"kind\":\"http.request\",\"queue\":\"hooks\","
                                    "\"payload\":{\"url\":\"http://127.0.0.1:%d/ok\"}}", tport);
        EXPECT(od_post(&d, "/v1/jobs", NULL, body), "202", "\"state\"");
    }
    t_run(&out, "curl -s -H 'Content-Type: application/json' -d '{\"queue\":\"hooks\"}' "
                "%s/v1/jobs/cancel", d.url);
    ASSERT(strstr(out, "\"matched\":5,\"count\":5,\"next_cursor\":null") != NULL);
    free(out);
    char cursor[64] = "", req[256];
    int pages = 0, total = 0;
    do { /* two a page */
        snprintf(req, sizeof req, "{\"state\":\"cancelled\",\"limit\":2%s%s%s}",
                 cursor[0] ? ",\"cursor\":\"" : "", cursor, cursor[0] ? "\"" : "");
        t_run(&out, "curl -s -H 'Content-Type: application/json' -d '%s' %s/v1/jobs/retry", req,
              d.url);
        int count = 0;
        ASSERT(sscanf(strstr(out, "\"count\":"), "\"count\":%d", &count) == 1);
        total += count;
        const char *nc = strstr(out, "\"next_cursor\":\"");
        if (nc)
            snprintf(cursor, sizeof cursor, "%.36s", nc + 15);
        else
            cursor[0] = '\0';
        free(out);
        pages++;
    } while (cursor[0] && pages < 10);
    ASSERT_EQ(total, 5);
    ASSERT_EQ(pages, 3);
    /* the client does the same, following the cursor itself */
    ASSERT_EQ(cli(&out, &d, "job cancel --queue hooks --limit 2"), 0);
    ASSERT(strstr(out, "job cancel: 5 jobs changed (5 matched") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "--json job retry --state cancelled"), 0);
    ASSERT(strstr(out, "{\"matched\":5,\"count\":5}") != NULL);
    free(out);
    /* no filter, no terminal: refused rather than retrying everything */
    ASSERT_EQ(cli(&out, &d, "job retry < /dev/null"), 2);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

TEST(queues_are_paused_limited_and_listed_over_http_and_the_cli)
{
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start(NULL);
    char *out, body[256], id[64];
    ASSERT_EQ(cli(&out, &d, "queue pause hooks"), 0);
    ASSERT(strstr(out, "paused      yes") != NULL);
    free(out);
    snprintf(body, sizeof body, "{\"kind\":\"http.request\",\"queue\":\"hooks\","
                                "\"payload\":{\"url\":\"http://127.0.0.1:%d/ok\"}}", tport);
    out = od_post(&d, "/v1/jobs", NULL, body);
    ASSERT(strstr(out, "\"id\":\"") != NULL);
    snprintf(id, sizeof id, "%.36s", strstr(out, "\"id\":\"") + 6);
    free(out);
    usleep(500000); /* a paused queue starts nothing */
    ASSERT_EQ(cli(&out, &d, "queue list"), 0);
    ASSERT(strstr(out, "QUEUE") != NULL);
    const char *row = strstr(out, "hooks");
    ASSERT(row && strncmp(row, "hooks                yes", 24) == 0);
    ASSERT(strstr(row, "        1 ") != NULL); /* available */
    free(out);
    ASSERT_EQ(cli(&out, &d, "queue set hooks --concurrency 1 --rate 100/1s"), 0);
    ASSERT(strstr(out, "concurrency 1\nrate        100/1s") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "queue set hooks --rate 1/week"), 2); /* refused before asking */
    free(out);
    ASSERT_EQ(cli(&out, &d, "queue resume hooks"), 0);
    ASSERT(strstr(out, "paused      no") != NULL);
    free(out);
    char args[128];
    snprintf(args, sizeof args, "job wait %s --timeout 10", id);
    ASSERT_EQ(cli(&out, &d, args), 0);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    d = od_start(NULL); /* the settings are in the store */
    ASSERT_EQ(cli(&out, &d, "--json queue get hooks"), 0);
    ASSERT(strstr(out, "\"concurrency\": 1,") != NULL);
    ASSERT(strstr(out, "\"completed\": 1,") != NULL);
    free(out);
    EXPECT(od_post(&d, "/v1/queues/hooks", "-X PATCH", "{\"concurrency\":0}"), "422", "concurrency");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

TEST(schedules_run_over_http_and_the_cli)
{
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start(NULL);
    char *out, args[512];
    snprintf(args, sizeof args, "schedule set tick --cron '* * * * * *' --kind http.request "
                                "--payload '{\"url\":\"http://127.0.0.1:%d/ok\"}' --queue ticks",
             tport);
    ASSERT_EQ(cli(&out, &d, args), 0);
    ASSERT(strstr(out, "cron        * * * * * * (UTC)") != NULL);
    ASSERT(strstr(out, "next runs   ") != NULL);
    free(out);
    usleep(2600000);
    ASSERT_EQ(cli(&out, &d, "schedule list"), 0);
    ASSERT(strstr(out, "tick ") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "--json job list --queue ticks"), 0);
    ASSERT(strstr(out, "\"schedule\": \"tick\"") != NULL);
    ASSERT(strstr(out, "\"scheduled_for\": \"") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "schedule pause tick"), 0);
    ASSERT(strstr(out, "paused      yes") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "schedule delete tick"), 0);
    free(out);
    ASSERT_EQ(cli(&out, &d, "schedule get tick 2>&1"), 1);
    ASSERT(strstr(out, "no such schedule") != NULL);
    free(out);
    ASSERT_EQ(cli(&out, &d, "schedule set x --cron '0 3 * *' --kind http.request 2>&1"), 1);
    ASSERT(strstr(out, "422 invalid") != NULL);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

TEST(the_dashboard_is_served_from_the_binary_with_a_strict_policy)
{
    FILE *f = fopen("tokens", "w");
    fputs("secret-token-0123456789\n", f);
    fclose(f);
    chmod("tokens", 0600);
    od d = od_start("--token-file ./tokens");
    char *out;
    t_run(&out, "curl -s -D - -o /dev/null %s/ui", d.url);
    ASSERT(strncmp(out, "HTTP/1.1 308", 12) == 0 && strcasestr(out, "Location: /ui/"));
    free(out);
    /* the page needs no token (it holds no data); the API does */
    t_run(&out, "curl -s -D - %s/ui/", d.url);
    ASSERT(strncmp(out, "HTTP/1.1 200", 12) == 0);
    ASSERT(strcasestr(out, "Content-Type: text/html; charset=utf-8") != NULL);
    ASSERT(strcasestr(out, "Content-Security-Policy: default-src 'none'; script-src 'self';") != NULL);
    ASSERT(strstr(out, "frame-ancestors 'none'") != NULL);
    ASSERT(strcasestr(out, "X-Content-Type-Options: nosniff") != NULL);
    ASSERT(strstr(out, "<script type=\"module\" src=\"app.js\"></script>") != NULL);
    ASSERT(strstr(out, "<script>") == NULL); /* no inline script: the policy would refuse it */
    free(out);
    t_run(&out, "curl -s -D - -o /dev/null %s/ui/app.js", d.url);
    ASSERT(strncmp(out, "HTTP/1.1 200", 12) == 0);
    ASSERT(strcasestr(out, "Content-Type: text/javascript") != NULL);
    const char *et = strcasestr(out, "ETag: \"");
    ASSERT(et != NULL);
    char etag[32];
    snprintf(etag, sizeof etag, "%.18s", et + 6);
    free(out);
    t_run(&out, "curl -s -D - -o /dev/null -H 'If-None-Match: %s' %s/ui/app.js", etag, d.url);
    ASSERT(strncmp(out, "HTTP/1.1 304", 12) == 0); /* unchanged: no body again */
    free(out);
    t_run(&out, "curl -s -o /dev/null -w '%%{http_code}' %s/ui/nope.js", d.url);
    ASSERT_STREQ(out, "404");
    free(out);
    t_run(&out, "curl -s -o /dev/null -w '%%{http_code}' %s/v1/queues", d.url);
    ASSERT_STREQ(out, "401");
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

static const test_case tests[] = {
    T(the_dashboard_is_served_from_the_binary_with_a_strict_policy),
    T(schedules_run_over_http_and_the_cli),
    T(queues_are_paused_limited_and_listed_over_http_and_the_cli),
    T(final_jobs_are_retried_and_cancelled_in_bulk_page_by_page),
    T(job_endpoints_answer_and_refuse_naming_the_field),
    T(a_batch_of_jobs_is_stored_item_by_item),
    T(bad_input_is_a_clear_4xx_and_stores_nothing),
    T(idempotency_key_same_body_same_job_other_body_409),
    T(prefer_wait_holds_until_final_or_times_out),
    T(http_requests_complete_retry_or_discard_by_the_status_they_get),
    T(events_stream_and_resume),
    T(bearer_tokens_guard_all_but_health),
    T(metrics_pass_promtool_and_openapi_is_served),
    T(signals_hup_reopens_the_log_term_drains),
    T(migrate_creates_then_refuses_a_newer_schema),
    T(cli_verbs_and_exit_codes),
    T(cli_options_numbers_keys_auth_and_pages),
    T(cli_events_show_errors_and_reconnect),
    T(kill_9_under_load_loses_no_acknowledged_job),
};

int main(int argc, char **argv)
{
    if (getenv("OB_KILL_CYCLES"))
        cycles = atoi(getenv("OB_KILL_CYCLES"));
    return test_main(argc, argv, tests, NTESTS(tests));
}
