/*
 * test_hardening.c - outboxd against the clients it must not trust: each
 * finding of the security review (issue 12) as an attack on a real daemon.
 * A client allowed to enqueue must not reach loopback or private addresses
 * in any spelling, by redirect or by DNS, nor outboxd itself; may not
 * enqueue outboxd's own job kinds; cannot make a tokenless outboxd serve a
 * web page (Host, Origin); cannot cost it memory before authenticating or
 * starve it of connections; cannot forge, replay or read callbacks (they
 * are Standard Webhooks, verified by the `standardwebhooks` npm package);
 * cannot smuggle requests through http.request's headers, forge log lines
 * or find secrets in logs. Secret files must be private, and are created
 * so.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"
#include "http_helpers.h"
#include "od_helpers.h"

#ifndef VERIFY_WEBHOOK
#error "VERIFY_WEBHOOK: tests/verify_webhook.js"
#endif
#ifndef NPM_TOOLS
#error "NPM_TOOLS: where scripts/test installs tests/npm's packages"
#endif

/* A flag that leaves no loopback exception: the test's defaults allow
 * 127.0.0.1/32 (od_helpers.h); this overrides them with an address no test
 * uses (TEST-NET-1). */
#define NO_EXCEPTIONS "--http-allow 192.0.2.1/32"


/* ---- the target: what jobs and callbacks reach ---- */

#define HOOKS_MAX 8
typedef struct delivery {
    char id[128], timestamp[32], signature[1024];
    char *body;
} delivery;

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static delivery hooks[HOOKS_MAX];
static atomic_int nhooks, hook_calls;

static void t_ok(ob_http_req *r, void *a)
{
    (void)a;
    ob_http_reply(r, 200, "text/plain", "ok", 2);
}

/* 302 to ?to=URL */
static void t_redirect(ob_http_req *r, void *a)
{
    (void)a;
    const char *to = ob_http_query(r, "to");
    ob_http_set_header(r, "Location", to ? to : "/ok");
    ob_http_reply(r, 302, NULL, NULL, 0);
}

/* 500 with a body that tries to forge a log line */
static void t_fail(ob_http_req *r, void *a)
{
    (void)a;
    const char *b = "oops\n2026-01-01T00:00:00.000Z info FORGED line\r\nX";
    ob_http_reply(r, 500, "text/plain", b, strlen(b));
}

/* 10 MiB */
static void t_big(ob_http_req *r, void *a)
{
    (void)a;
    size_t n = 10u << 20;
    char *b = malloc(n);
    memset(b, 'x', n);
    ob_http_reply(r, 200, "text/plain", b, n);
    free(b);
}

/* Records each delivery; the first call of all gets 503. */
static void t_hook(ob_http_req *r, void *a)
{
    (void)a;
    if (atomic_fetch_add(&hook_calls, 1) == 0) {
        ob_http_reply(r, 503, "text/plain", "not yet", 7);
        return;
    }
    size_t n;
    const char *body = ob_http_body(r, &n);
    pthread_mutex_lock(&hook_mu);
    int i = atomic_load(&nhooks);
    if (i < HOOKS_MAX) {
        delivery *d = &hooks[i];
        const char *id = ob_http_header(r, "webhook-id"), *ts = ob_http_header(r, "webhook-timestamp"),
                   *sig = ob_http_header(r, "webhook-signature");
        snprintf(d->id, sizeof d->id, "%s", id ? id : "");
        snprintf(d->timestamp, sizeof d->timestamp, "%s", ts ? ts : "");
        snprintf(d->signature, sizeof d->signature, "%s", sig ? sig : "");
        d->body = strndup(body ? body : "", n);
        atomic_store(&nhooks, i + 1);
    }
    pthread_mutex_unlock(&hook_mu);
    ob_http_reply(r, 204, NULL, NULL, 0);
}

static ob_http_server *target(int *port)
{
    ob_http_opts o;
    t_opts(&o);
    o.threads = 4;
    ob_http_server *s;
    ASSERT_OK(ob_http_server_new(&o, &s));
    ASSERT_OK(ob_http_route(s, "GET", "/ok", t_ok, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/redirect", t_redirect, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/fail", t_fail, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/big", t_big, NULL, 0));
    ASSERT_OK(ob_http_route(s, "POST", "/hook", t_hook, NULL, 0));
    *port = t_start(s);
    return s;
}

/* ---- talking to outboxd ---- */

static char *job_post(const od *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *job_post(const od *d, const char *fmt, ...)
{
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return od_post(d, "/v1/jobs", NULL, body);
}

/* The job once final (Prefer: wait, up to outboxd's 60 s: a loaded
 * machine under ASan once took more than 20), as JSON text. */
static char *final(const od *d, const char *id)
{
    char *out;
    t_run(&out, "curl -s -m 75 -o curl-body -w '%%{http_code}\n' -H 'Prefer: wait=60' "
                "%s/v1/jobs/%s; cat curl-body; rm -f curl-body", d->url, id);
    if (!strstr(out, "\"state\":\"completed\"") && !strstr(out, "\"state\":\"discarded\""))
        test_fail(__FILE__, __LINE__, "job %s not final: %.400s", id, out);
    return out;
}

/* Enqueue an http.request to url (202 expected) and return its final form. */
static char *run_request(const od *d, const char *url, char *id, size_t idn)
{
    char *out = job_post(d, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"%s\"}}", url);
    if (strncmp(out, "202\n", 4) != 0)
        test_fail(__FILE__, __LINE__, "%s: want 202, got %.300s", url, out);
    od_json_str(out, "id", id, idn);
    free(out);
    return final(d, id);
}

/* ---- finding 1: SSRF ---- */

TEST(literal_internal_addresses_are_refused_at_enqueue_in_every_spelling)
{
    od d = od_start(NO_EXCEPTIONS);
    char own[64];
    snprintf(own, sizeof own, "http://127.0.0.1:%d/metrics", d.port);
    const char *urls[] = {
        own, "http://0x7f000001/", "http://2130706433/", "http://127.1/", "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::1]/", "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://172.16.5.4/",
        "http://192.168.1.1/", "http://100.64.0.1/", "http://[fd00::1]/", "http://[fe80::1]/",
        "http://224.0.0.1/", "http://255.255.255.255/", "http://[64:ff9b::7f00:1]/",
        "http://[2002:a00:1::]/", "https://127.0.0.1:8443/", "http://%31%32%37.0.0.1/",
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        char *out = job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"%s\"}}", urls[i]);
        if (strncmp(out, "422\n", 4) || !strstr(out, "\"field\":\"payload.url\""))
            test_fail(__FILE__, __LINE__, "%s: want 422 on payload.url, got %.300s", urls[i], out);
        free(out);
        out = job_post(&d, "{\"kind\":\"noop\",\"callback_url\":\"%s\"}", urls[i]);
        if (strncmp(out, "422\n", 4) || !strstr(out, "\"field\":\"callback_url\""))
            test_fail(__FILE__, __LINE__, "%s: want 422 on callback_url, got %.300s", urls[i], out);
        free(out);
    }
    /* userinfo is refused outright: credentials go in headers */
    EXPECT(job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://x@example.com/\"}}"),
           "422", "user name or password");
    EXPECT(od_post(&d, "/v1/messages", NULL,
                "{\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\","
                "\"callback_url\":\"http://169.254.169.254/\"}"),
           "422", "\"field\":\"callback_url\"");
    char *out = od_post(&d, "/v1/jobs/batch", NULL,
                     "{\"jobs\":[{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://10.1.2.3/\"}}]}");
    ASSERT(strstr(out, "payload.url") && strstr(out, "private"));
    free(out);
    /* nothing was stored */
    t_curl(&out, d.port, "%s/v1/jobs", d.url);
    EXPECT(out, "200", "{\"jobs\":[]");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(names_redirects_and_our_own_address_are_judged_on_connect)
{
    int tport, other;
    ob_http_server *t = target(&tport), *t2 = target(&other);
    char args[128], url[512], id[64];
    snprintf(args, sizeof args, "--http-allow 127.0.0.1:%d", tport); /* only the first target */
    od d = od_start(args);
    char cases[3][256];
    snprintf(cases[0], sizeof cases[0], "http://localhost:%d/ok", other); /* a name for loopback */
    snprintf(cases[1], sizeof cases[1], "http://127.0.0.1:%d/redirect?to=http://127.0.0.1:%d/ok",
             tport, other); /* a redirect into loopback */
    snprintf(cases[2], sizeof cases[2],
             "http://127.0.0.1:%d/redirect?to=http://localhost:%d/metrics", tport, d.port);
    for (size_t i = 0; i < 3; i++) {
        char *out = run_request(&d, cases[i], id, sizeof id);
        if (!strstr(out, "\"state\":\"discarded\"") || !strstr(out, "\"attempt\":1,") ||
            !strstr(out, "refused:") || (!strstr(out, "is loopback") && !strstr(out, "own address")))
            test_fail(__FILE__, __LINE__, "%s: want discarded after one refused attempt: %.600s",
                      cases[i], out);
        free(out);
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", tport); /* the exception works */
    char *out = run_request(&d, url, id, sizeof id);
    ASSERT(strstr(out, "\"state\":\"completed\"") != NULL);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);

    /* With loopback allowed, outboxd itself is still no target. */
    od d2 = od_start("--http-allow 127.0.0.0/8,::1");
    snprintf(url, sizeof url, "{\"kind\":\"http.request\",\"payload\":{\"url\":"
                              "\"http://[::ffff:127.0.0.1]:%d/metrics\"}}", d2.port);
    EXPECT(od_post(&d2, "/v1/jobs", NULL, url), "422", "outboxd's own address");
    snprintf(url, sizeof url, "http://localhost:%d/metrics", d2.port);
    out = run_request(&d2, url, id, sizeof id);
    ASSERT(strstr(out, "\"state\":\"discarded\"") && strstr(out, "own address"));
    ASSERT(!strstr(out, "outbox_jobs")); /* the metrics were never read */
    free(out);
    ASSERT_EQ(od_stop(&d2, SIGTERM), 0);
    ob_http_server_free(t);
    ob_http_server_free(t2);
}

TEST(http_allow_refuses_a_bad_list_at_start)
{
    char *out;
    const char *bad[] = {"10.0.0.1/8", "10.0.0.0/33", "localhost:80", "1.2.3.4:0", "[::1]80",
                         "[1.2.3.4]:80", "1.2.3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_EQ(t_run(&out, "timeout 10 %s --listen 127.0.0.1:0 --callback-secret-file ./s --http-allow '%s' "
                              "2>&1", OUTBOXD, bad[i]), 2);
        if (!strstr(out, "--http-allow") || !strstr(out, bad[i]))
            test_fail(__FILE__, __LINE__, "%s: %s", bad[i], out);
        free(out);
    }
}

/* ---- finding 2: outboxd's own job kinds ---- */

TEST(internal_kinds_are_not_the_clients_to_enqueue)
{
    od d = od_start(NULL);
    EXPECT(job_post(&d, "{\"kind\":\"outbox.callback\",\"payload\":{\"job\":"
                        "\"01a21216-0000-7000-8000-000000000000\",\"url\":\"http://127.0.0.1:9/\"}}"),
           "422", "\"field\":\"kind\"");
    EXPECT(job_post(&d, "{\"kind\":\"outbox.anything\"}"), "422", "\"field\":\"kind\"");
    EXPECT(job_post(&d, "{\"kind\":\"mail.send\",\"payload\":{\"from\":\"a@example.com\","
                        "\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\"}}"),
           "422", "POST /v1/messages");
    char *out = od_post(&d, "/v1/jobs/batch", NULL, "{\"jobs\":[{\"kind\":\"mail.send\"}]}");
    ASSERT(strstr(out, "\"field\":\"kind\"") != NULL);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* ---- finding 3: a tokenless outboxd and web pages ---- */

TEST(without_tokens_only_loopback_hosts_and_origins_are_served)
{
    od d = od_start("--workers 0");
    char *out = job_post(&d, "{\"kind\":\"http.request\",\"delay\":3600,\"payload\":{\"url\":"
                             "\"http://127.0.0.1:9/\"}}"), id[64], args[256];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    const char *bad[][2] = {{"Host", "attacker.example"}, {"Host", "attacker.example:80"},
                            {"Host", "127.0.0.1.nip.io"}, {"Host", "127.corp.example"},
                            {"Origin", "http://attacker.example"}, {"Origin", "null"},
                            {"Origin", "http://127.0.0.1.attacker.example"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "-X POST -H '%s: %s' %s/v1/jobs/%s/cancel", bad[i][0],
                 bad[i][1], d.url, id);
        t_curl(&out, d.port, "%s", args);
        char field[32];
        snprintf(field, sizeof field, "\"field\":\"%s\"", bad[i][0]);
        if (strncmp(out, "403\n", 4) || !strstr(out, field))
            test_fail(__FILE__, __LINE__, "%s: %s: want 403, got %.300s", bad[i][0], bad[i][1], out);
        free(out);
    }
    /* a cross-origin form POST (no JSON content type needed to be refused) */
    t_curl(&out, d.port, "-H 'Origin: http://attacker.example' -d 'kind=x' %s/v1/jobs", d.url);
    EXPECT(out, "403", "Origin");
    /* the job was not cancelled by any of them */
    t_curl(&out, d.port, "%s/v1/jobs/%s", d.url, id);
    EXPECT(out, "200", "\"state\":\"scheduled\"");
    const char *good[][2] = {{"Host", "localhost:1234"}, {"Host", "[::1]:8025"},
                             {"Host", "LOCALHOST"}, {"Origin", "http://127.0.0.1:8025"},
                             {"Origin", "http://localhost"}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        t_curl(&out, d.port, "-H '%s: %s' %s/v1/jobs/%s", good[i][0], good[i][1], d.url, id);
        if (strncmp(out, "200\n", 4))
            test_fail(__FILE__, __LINE__, "%s: %s: want 200, got %.300s", good[i][0], good[i][1], out);
        free(out);
    }
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* ---- findings 4 and 5: bodies before authentication, connections ---- */

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void write_private(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

#define TOKEN "token-0123456789abcdef"

TEST(no_body_byte_is_read_before_authentication)
{
    write_private("tokens", TOKEN "\n");
    od d = od_start("--token-file ./tokens --workers 0");
    long before = rss_kib(d.pid);
    int fds[12];
    for (int i = 0; i < 12; i++) { /* each announces 15 MB and sends none of it */
        fds[i] = t_connect(d.port);
        t_sends(fds[i], "POST /v1/jobs HTTP/1.1\r\nHost: outbox.example\r\nContent-Type: "
                        "application/json\r\nContent-Length: 15000000\r\n\r\n");
    }
    for (int i = 0; i < 12; i++) {
        char *raw = t_read(fds[i], 1, 3000);
        if (strncmp(raw, "HTTP/1.1 401", 12) != 0)
            test_fail(__FILE__, __LINE__, "connection %d: want 401 at once, got %.200s", i, raw);
        free(raw);
        ASSERT(t_closed(fds[i], 2000)); /* the announced body is never read */
        close(fds[i]);
    }
    long after = rss_kib(d.pid);
    printf("  RSS %ld KiB before, %ld KiB after 12 unauthenticated 15 MB bodies\n", before, after);
    ASSERT(after - before < 8 * 1024);

    /* Authenticated: 1 MiB by default; batches and messages may be larger. */
    char *big = malloc(3u << 20);
    memset(big, ' ', 3u << 20);
    int n = snprintf(big, 64, "{\"kind\":\"noop\",\"payload\":\"");
    big[n] = 'x';
    strcpy(big + (2u << 20), "\"}");
    char *out = od_post(&d, "/v1/jobs", "-H 'Authorization: Bearer " TOKEN "'", big);
    EXPECT(out, "413", "body_too_large");
    snprintf(big, 64, "{\"jobs\":[{\"kind\":\"noop\",\"payload\":\"");
    big[strlen(big)] = 'x';
    strcpy(big + (2u << 20), "\"}]}");
    out = od_post(&d, "/v1/jobs/batch", "-H 'Authorization: Bearer " TOKEN "'", big);
    ASSERT(strncmp(out, "413", 3) != 0); /* read, then judged on what it holds */
    free(out);
    free(big);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(bodies_held_at_once_are_bounded)
{
    write_private("tokens", TOKEN "\n");
    od d = od_start("--token-file ./tokens --workers 0 --max-body-total 1048576 "
                    "--max-batch-body 800000");
    const char *head = "POST /v1/jobs/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                       "\r\nContent-Type: application/json\r\nContent-Length: 700000\r\n\r\n{";
    int a = t_connect(d.port), b = t_connect(d.port);
    t_sends(a, head); /* holds 700,000 bytes of the 1 MiB */
    h_sleep_ms(200);
    t_sends(b, head);
    char *raw = t_read(b, 1, 3000);
    if (strncmp(raw, "HTTP/1.1 503", 12) != 0 || !strstr(raw, "\"busy\""))
        test_fail(__FILE__, __LINE__, "want 503 busy, got %.200s", raw);
    free(raw);
    close(a); /* its reservation goes with it */
    close(b);
    h_sleep_ms(300);
    char *out = od_post(&d, "/v1/jobs/batch", "-H 'Authorization: Bearer " TOKEN "'",
                     "{\"jobs\":[{\"kind\":\"http.request\",\"payload\":{\"url\":"
                     "\"http://127.0.0.1:9/\"}}]}");
    EXPECT(out, "200", "\"id\"");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

TEST(one_address_cannot_take_every_connection)
{
    od d = od_start("--max-connections-per-ip 20 --header-timeout 2");
    int fds[60], closed = 0;
    for (int i = 0; i < 60; i++)
        fds[i] = t_connect(d.port);
    for (int i = 0; i < 60; i++)
        closed += t_closed(fds[i], i < 20 ? 50 : 1000);
    printf("  %d of 60 idle connections from 127.0.0.1 closed at once\n", closed);
    ASSERT(closed >= 40);
    /* another client address is still served meanwhile */
    char *out;
    t_curl(&out, d.port, "--interface 127.0.0.2 %s/healthz", d.url);
    EXPECT(out, "200", "ok");
    /* and the idle ones that got in go after the header timeout */
    int gone = 0;
    for (int i = 0; i < 60; i++) {
        gone += t_closed(fds[i], 4000);
        close(fds[i]);
    }
    ASSERT_EQ(gone, 60);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* ---- finding 6: Standard Webhooks ---- */

/* Verify delivery d with `secret` by the npm verifier; its output into
 * *out. Returns the exit status. */
static int verify(const delivery *d, const char *secret, const char *body, long offset,
                  const char *timestamp, char **out)
{
    FILE *f = fopen("hook-headers.json", "w");
    fprintf(f, "{\"webhook-id\":\"%s\",\"webhook-timestamp\":\"%s\",\"webhook-signature\":\"%s\"}",
            d->id, timestamp ? timestamp : d->timestamp, d->signature);
    fclose(f);
    f = fopen("hook-body", "w");
    fputs(body ? body : d->body, f);
    fclose(f);
    return t_run(out, "NODE_PATH=%s node %s '%s' hook-headers.json hook-body %ld 2>&1",
                 NPM_TOOLS, VERIFY_WEBHOOK, secret, offset);
}

static void wait_hooks(int n)
{
    for (int i = 0; i < 1000 && atomic_load(&nhooks) < n; i++)
        h_sleep_ms(20);
    ASSERT_EQ(atomic_load(&nhooks), n);
}

TEST(callbacks_are_standard_webhooks_signed_by_every_key)
{
    char npm_check[600];
    snprintf(npm_check, sizeof npm_check, "%s/standardwebhooks", NPM_TOOLS);
    if (access(npm_check, R_OK) != 0)
        test_fail(__FILE__, __LINE__, "%s is missing: scripts/test installs it (npm ci in "
                  "tests/npm)", npm_check);
    const char *old_key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *new_key = "whsec_dGhpcyBpcyB0aGUgbmV3IGtleSwgMzIgYnl0ZXMhIQ==";
    char keys[256];
    snprintf(keys, sizeof keys, "# rotating: the old key goes once receivers moved\n%s\n%s\n",
             old_key, new_key);
    write_private("secret", keys);
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start(NULL);
    char *out = job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":"
                             "\"http://127.0.0.1:%d/ok\",\"headers\":{\"Authorization\":"
                             "\"Bearer PAYLOAD-SECRET\"}},\"callback_url\":\"http://127.0.0.1:%d/hook\"}",
                         tport, tport), id[64];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    free(final(&d, id));
    wait_hooks(1); /* after a 503 and a retry */
    delivery *h = &hooks[0];
    ASSERT(strstr(h->body, "\"type\":\"job.completed\"") && strstr(h->body, id) &&
           strstr(h->body, "\"timestamp\":\"") && strstr(h->body, "\"data\":{"));
    ASSERT(!strstr(h->body, "PAYLOAD-SECRET") && !strstr(h->body, "\"payload\""));
    /* webhook-id: the callback job's id, the same on the retry */
    t_curl(&out, d.port, "'%s/v1/jobs?kind=outbox.callback'", d.url);
    ASSERT(strstr(out, h->id) && strstr(out, "\"attempt\":2"));
    free(out);
    ASSERT(strchr(h->signature, ' ') != NULL); /* one signature per key */
    ASSERT_EQ(verify(h, old_key, NULL, 0, NULL, &out), 0);
    ASSERT(strstr(out, "verified job.completed"));
    free(out);
    ASSERT_EQ(verify(h, new_key, NULL, 0, NULL, &out), 0);
    free(out);
    /* a key it was not signed with; a stale delivery; a replay with a
     * fresh timestamp; a changed body */
    ASSERT_EQ(verify(h, "whsec_c29tZW9uZSBlbHNlJ3Mga2V5LCAyNCBieXRlcw==", NULL, 0, NULL, &out), 1);
    free(out);
    ASSERT_EQ(verify(h, new_key, NULL, 600, NULL, &out), 1);
    ASSERT(strstr(out, "refused"));
    free(out);
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)(ob_now_ms() / 1000 + 1));
    ASSERT_EQ(verify(h, new_key, NULL, 0, now, &out), 1);
    free(out);
    char *forged = strdup(h->body);
    memcpy(strstr(forged, "completed"), "cancelled", 9);
    ASSERT_EQ(verify(h, new_key, forged, 0, NULL, &out), 1);
    free(out);
    free(forged);

    /* An http.request asking to be signed: the application's own webhook. */
    out = job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"method\":\"POST\",\"url\":"
                       "\"http://127.0.0.1:%d/hook\",\"body\":{\"order\":42},\"sign\":true}}", tport);
    od_json_str(out, "id", id, sizeof id);
    free(out);
    free(final(&d, id));
    wait_hooks(2);
    ASSERT_STREQ(hooks[1].id, id);
    ASSERT_STREQ(hooks[1].body, "{\"order\":42}");
    ASSERT_EQ(verify(&hooks[1], old_key, NULL, 0, NULL, &out), 0);
    free(out);
    EXPECT(job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:%d/hook\","
                        "\"sign\":true,\"headers\":{\"webhook-id\":\"x\"}}}", tport),
           "422", "payload.headers.webhook-id");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

/* ---- finding 8: secrets at rest ---- */

static int mode_of(const char *path)
{
    struct stat st;
    ASSERT(stat(path, &st) == 0);
    return (int)(st.st_mode & 0777);
}

TEST(secret_files_are_private_or_refused)
{
    od d = od_start("--smtp file:./mail");
    char *out = od_post(&d, "/v1/messages", NULL, "{\"from\":\"a@example.com\",\"to\":\"b@example.com\","
                                               "\"subject\":\"s\",\"text\":\"t\"}"), id[64];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    free(final(&d, id));
    char eml[128];
    snprintf(eml, sizeof eml, "mail/%s.eml", id);
    const char *files[] = {"secret", "outbox.db", "outbox.db-wal", "outbox.db.lock", "outboxd.log",
                           eml};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (mode_of(files[i]) & 077)
            test_fail(__FILE__, __LINE__, "%s has mode %o", files[i], mode_of(files[i]));
    FILE *f = fopen("secret", "r");
    char line[128];
    ASSERT(f && fgets(line, sizeof line, f) && strncmp(line, "whsec_", 6) == 0);
    fclose(f);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);

    struct {
        const char *setup, *flags, *says;
    } bad[] = {
        {"printf '" TOKEN "\\n' > tk && chmod 644 tk", "--token-file tk", "group or others"},
        {"cp secret s2 && chmod 640 s2", "--callback-secret-file s2", "group or others"},
        {"ln -s secret s3", "--callback-secret-file s3", "symbolic link"},
        {"printf '0123456789abcdef0123456789abcdef\\n' > s4 && chmod 600 s4",
         "--callback-secret-file s4", "whsec_"},
        {"printf 'pw\\n' > pw && chmod 604 pw",
         "--smtp smtp://u@127.0.0.1:1?starttls=no --smtp-password-file pw", "group or others"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = t_run(&out, "%s && timeout 10 %s --listen 127.0.0.1:0 --callback-secret-file ./secret %s 2>&1",
                       bad[i].setup, OUTBOXD, bad[i].flags);
        if (rc != 1 || !strstr(out, bad[i].says))
            test_fail(__FILE__, __LINE__, "%s: want exit 1 saying %s, got %d: %s", bad[i].flags,
                      bad[i].says, rc, out);
        free(out);
    }
}

/* ---- findings 8, 9: what logs and errors show ---- */

TEST(logs_and_errors_hold_no_secret_and_no_forged_line)
{
    int tport;
    ob_http_server *t = target(&tport);
    write_private("pw", "relay-password-42\n");
    od d = od_start("--smtp smtp://relayuser@127.0.0.1:1?starttls=no --smtp-password-file pw "
                    "--log-level debug");
    char *out = job_post(&d, "{\"kind\":\"http.request\",\"max_attempts\":1,\"payload\":{\"url\":"
                             "\"http://127.0.0.1:%d/fail?token=QUERY-SECRET#frag\"},"
                             "\"callback_url\":\"http://127.0.0.1:%d/ok?sig=CB-SECRET\"}",
                         tport, tport), id[64];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    out = final(&d, id);
    const char *errors = strstr(out, "\"errors\":"); /* the payload is the client's own: shown */
    ASSERT(errors && strstr(errors, "HTTP 500") && !strstr(errors, "QUERY-SECRET"));
    ASSERT(strstr(errors, "\\\\x0a") != NULL); /* the body's LF, escaped */
    free(out);
    h_sleep_ms(500);
    ASSERT_EQ(t_run(&out, "cat outboxd.log; ps -ef"), 0);
    ASSERT(!strstr(out, "QUERY-SECRET") && !strstr(out, "CB-SECRET") &&
           !strstr(out, "relay-password-42"));
    ASSERT(!strstr(out, "\nFORGED") && !strstr(out, "\n2026-01-01T00:00:00.000Z"));
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);

    /* a store URL's password, in userinfo or query, is not shown either */
    ASSERT_EQ(t_run(&out, "timeout 20 %s --store 'postgres://u:STORE-SECRET@127.0.0.1:1/db?"
                          "password=QUERY-PW' --listen 127.0.0.1:0 --callback-secret-file ./secret "
                          "2>&1", OUTBOXD), 1);
    ASSERT(strstr(out, "cannot open the store postgres://127.0.0.1:1/db") != NULL);
    ASSERT(!strstr(out, "STORE-SECRET") && !strstr(out, "QUERY-PW"));
    free(out);

    /* --log-format json: one JSON object a line */
    d = od_start("--log-format json");
    free(job_post(&d, "{\"kind\":\"noop\"}"));
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ASSERT_EQ(t_run(&out, "/usr/bin/python3 -c 'import json,sys\n"
                          "n=0\n"
                          "for l in open(\"outboxd.log\"):\n"
                          "  o=json.loads(l); assert set(o)=={\"time\",\"level\",\"msg\"}, o; n+=1\n"
                          "print(n)' 2>&1"), 0);
    ASSERT(atoi(out) >= 3);
    free(out);
    ob_http_server_free(t);
}

/* ---- finding 10: smuggling through http.request ---- */

TEST(request_headers_that_could_smuggle_are_refused)
{
    od d = od_start(NULL);
    const char *names[] = {"Content-Length", "Transfer-Encoding", "Host", "Connection",
                           "transfer-encoding", "Upgrade", "TE"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *out = job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":"
                                 "\"http://127.0.0.1:9/\",\"headers\":{\"%s\":\"5\"}}}", names[i]);
        char field[80];
        snprintf(field, sizeof field, "\"field\":\"payload.headers.%s\"", names[i]);
        if (strncmp(out, "422\n", 4) || !strstr(out, field))
            test_fail(__FILE__, __LINE__, "%s: %.300s", names[i], out);
        free(out);
    }
    const char *bad_names[] = {"X\\u000bY", "X\\u007fY", "X\\u0001Y", "X Y", "X:Y", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        char *out = job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":"
                                 "\"http://127.0.0.1:9/\",\"headers\":{\"%s\":\"v\"}}}", bad_names[i]);
        if (strncmp(out, "422\n", 4) || !strstr(out, "payload.headers"))
            test_fail(__FILE__, __LINE__, "name %s: %.300s", bad_names[i], out);
        free(out);
    }
    const char *bad_values[] = {"a\\r\\nX-Injected: 1", "a\\u007fb", "a\\u000bb", "a\\nb"};
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++) {
        char *out = job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":"
                                 "\"http://127.0.0.1:9/\",\"headers\":{\"X-A\":\"%s\"}}}", bad_values[i]);
        if (strncmp(out, "422\n", 4) || !strstr(out, "payload.headers.X-A"))
            test_fail(__FILE__, __LINE__, "value %s: %.300s", bad_values[i], out);
        free(out);
    }
    EXPECT(job_post(&d, "{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:9/\","
                        "\"timeout\":301}}"), "422", "--http-max-timeout");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* ---- finding 15a: a large response ---- */

TEST(a_large_response_is_kept_truncated_and_not_read_to_the_end)
{
    int tport;
    ob_http_server *t = target(&tport);
    od d = od_start(NULL);
    char url[128], id[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big", tport);
    int64_t t0 = ob_mono_ms();
    char *out = run_request(&d, url, id, sizeof id);
    printf("  10 MiB response: job final after %lld ms\n", (long long)(ob_mono_ms() - t0));
    ASSERT(strstr(out, "\"state\":\"completed\"") && strstr(out, "\"body_truncated\":true") &&
           strstr(out, "\"status\":200"));
    const char *b = strstr(out, "\"body\":\"");
    ASSERT(b);
    ASSERT_EQ(strspn(b + 8, "x"), 64 << 10);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ob_http_server_free(t);
}

/* ---- finding 13: metrics label sets ---- */

TEST(metrics_series_are_capped_whatever_the_queue_names)
{
    od d = od_start("--workers 0");
    char body[64 * 1024];
    for (int round = 0; round < 4; round++) {
        int n = snprintf(body, sizeof body, "{\"jobs\":[");
        for (int i = 0; i < 100; i++)
            n += snprintf(body + n, sizeof body - (size_t)n, "%s{\"kind\":\"http.request\",\"queue\":\"q%d-%d\","
                          "\"payload\":{\"url\":\"http://127.0.0.1:9/\"}}",
                          i ? "," : "", round, i);
        snprintf(body + n, sizeof body - (size_t)n, "]}");
        free(od_post(&d, "/v1/jobs/batch", NULL, body));
    }
    char *out;
    t_curl(&out, d.port, "%s/metrics", d.url);
    int series = 0, gauge = 0;
    for (char *p = out; (p = strstr(p, "\noutbox_jobs_enqueued_total{")); p++)
        series++;
    for (char *p = out; (p = strstr(p, "\noutbox_jobs{state=\"scheduled\",")); p++)
        gauge++; /* one a (kind, queue): every state has its line */
    printf("  400 queues: %d enqueued series, %d gauge series\n", series, gauge);
    ASSERT(series <= 257 && gauge <= 257);
    ASSERT(strstr(out, "queue=\"_other\"") != NULL);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

/* ---- finding 12: "loopback" is what a name resolves to ---- */

TEST(a_tokenless_outboxd_listens_only_on_names_that_resolve_to_loopback)
{
    char *out;
    ASSERT_EQ(t_run(&out, "timeout 10 %s --listen 127.corp.example.invalid:0 --log-file x.log "
                          "--callback-secret-file ./s 2>&1", OUTBOXD), 2);
    ASSERT(strstr(out, "without authentication") != NULL);
    free(out);
    ASSERT_EQ(t_run(&out, "timeout 10 %s --listen 0.0.0.0:0 --log-file x.log "
                          "--callback-secret-file ./s 2>&1", OUTBOXD), 2);
    free(out);
}

/* ---- finding 13: event stream slots ---- */

TEST(event_stream_slots_are_configurable)
{
    od d = od_start("--max-event-clients 1");
    char cmd[256], *out;
    snprintf(cmd, sizeof cmd, "timeout 3 curl -s -N %s/v1/events > ev.txt &", d.url);
    ASSERT_EQ(system(cmd), 0);
    h_sleep_ms(500);
    t_curl(&out, d.port, "-m 2 %s/v1/events", d.url);
    EXPECT(out, "503", "error");
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

static const test_case tests[] = {
    T(a_tokenless_outboxd_listens_only_on_names_that_resolve_to_loopback),
    T(event_stream_slots_are_configurable),
    T(literal_internal_addresses_are_refused_at_enqueue_in_every_spelling),
    T(names_redirects_and_our_own_address_are_judged_on_connect),
    T(http_allow_refuses_a_bad_list_at_start),
    T(internal_kinds_are_not_the_clients_to_enqueue),
    T(without_tokens_only_loopback_hosts_and_origins_are_served),
    T(no_body_byte_is_read_before_authentication),
    T(bodies_held_at_once_are_bounded),
    T(one_address_cannot_take_every_connection),
    T(callbacks_are_standard_webhooks_signed_by_every_key),
    T(secret_files_are_private_or_refused),
    T(logs_and_errors_hold_no_secret_and_no_forged_line),
    T(request_headers_that_could_smuggle_are_refused),
    T(a_large_response_is_kept_truncated_and_not_read_to_the_end),
    T(metrics_series_are_capped_whatever_the_queue_names),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
