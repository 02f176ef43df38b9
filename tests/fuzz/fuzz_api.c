/*
 * fuzz_api.c - libFuzzer target: outboxd's API, every endpoint, with the
 * fuzzer's bytes where a client puts its own — request bodies, query
 * strings, path ids, and the headers the API reads (Idempotency-Key,
 * Prefer, Last-Event-ID, Authorization). The real routes run in-process on
 * a real engine (SQLite in a scratch directory; no workers, so no
 * http.request is ever performed) behind the real HTTP server, reached
 * over TCP like fuzz_wire.c. Unlike fuzz_wire, the target frames the HTTP
 * itself so that the fuzzer spends its effort on what our decoders see.
 *
 * /v1/messages and /v1/messages/batch are reached with a first byte from
 * 0xF0 (their jobs are stored, never sent: no workers). A first byte from
 * 0xE0 to 0xEF reaches flow control and schedules: PATCH /v1/queues/fuzzq
 * and PUT /v1/schedules/fuzzs with the rest as the body, GET
 * /v1/queues/A and GET /v1/schedules/A (a schedule acknowledged with 2xx
 * must read back). A first byte from 0xD0 to 0xDF reaches what the
 * dashboard adds: GET /v1/stats?A, GET /v1/messages/A/raw, POST
 * /v1/jobs/retry with the rest as the body (the bulk filter, search and
 * time range included), GET /v1/nodes. A first byte from 0xC0 to 0xCF
 * reaches the suppression list and the compatible mail APIs: PUT
 * /v1/suppressions/fuzz%40example.com with the rest as the body (an entry
 * acknowledged with 2xx must read back), GET /v1/suppressions?A, GET and
 * DELETE /v1/suppressions/A; POST /email, /email/batch (Postmark, its
 * token header), /emails and /emails/batch (Resend) with the rest as the
 * body (each MessageID or id acknowledged must read back).
 *
 * Input: one selector byte, then up to three parts split at '\n'
 * (or, for the POSTs, the whole rest as the body):
 *   A  the body (POST /v1/jobs), the query string, or the job id
 *      (empty: the id of the last job accepted, to reach existing jobs)
 *   B  Idempotency-Key, Last-Event-ID or Authorization, when not empty
 *   C  Prefer, when not empty
 *
 * What must hold: every answer is an HTTP/1.1 response that is not a 500
 * (a 500 means a handler failed to answer or an error went unmapped), and
 * a job acknowledged with 2xx can be read back — bad input never loses
 * an accepted job.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "fuzz_net.h"
#include "api/http_request.h"
#include "outbox/mailjob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-token-0123456789"

static int port;
static char last_id[OB_ID_STRLEN + 1];

static void setup(void)
{
    ob_log_set(NULL, NULL, OB_LOG_ERROR + 1);
    char dir[] = "/tmp/fuzz-api-XXXXXX", url[64];
    if (!mkdtemp(dir))
        abort();
    snprintf(url, sizeof url, "sqlite:%s/fuzz.db", dir);
    ob_engine_opts eo;
    ob_engine_opts_init(&eo);
    eo.max_payload = 8192;
    eo.max_jobs = 20000; /* a long run reaches "queue full" too */
    ob_engine *e;
    static webhook_keys keys;
    char mail[64], err[256];
    if (webhook_keys_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &keys, err, sizeof err))
        abort();
    hr_opts ho;
    hr_opts_init(&ho);
    ho.max_response = 4096;
    ho.max_redirects = 1;
    ho.keys = &keys;
    snprintf(mail, sizeof mail, "file:%s/mail", dir);
    static ob_mail_limits ml;
    ob_mail_limits_init(&ml);
    ob_transport *tr;
    ob_mail_job_opts mo = {.timeout_ms = 1000, .retry_min_ms = 1000, .retry_max_ms = 1000,
                           .lifetime_ms = 1000};
    ob_mailer *mailer;
    if (ob_engine_open(url, &eo, &e) || hr_register(e, &ho) ||
        ob_transport_open(mail, NULL, &tr, NULL))
        abort();
    if (ob_mail_job_register(e, tr, &mo, &mailer))
        abort();
    ob_http_opts o;
    ob_http_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.max_body = 16384;
    ob_http_server *s;
    static const char *const tokens[] = {TOKEN};
    api_opts ao;
    api_opts_init(&ao);
    ao.engine = e;
    ao.tokens = tokens;
    ao.ntokens = 1;
    ao.max_wait_ms = 20; /* Prefer: wait is honoured, briefly */
    ao.event_ring = 64;
    ao.max_event_clients = 4;
    ao.mail_limits = &ml;
    ao.max_batch = 4;
    api *a;
    if (ob_http_server_new(&o, &s) || api_new(s, &ao, &a) || ob_http_server_start(s))
        abort();
    port = ob_http_server_port(s);
}

/* Percent-encode p[0..n) into out, keeping `keep` and the unreserved set. */
static size_t encode(const uint8_t *p, size_t n, const char *keep, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++) {
        unsigned c = p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c && strchr("-._~", (int)c)) || (c && strchr(keep, (int)c)))
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, cap - k, "%%%02X", c);
    }
    out[k] = '\0';
    return k;
}

/* A header line "Name: value\r\n" when value is not empty; CR and NUL,
 * which no client can put in a header, are dropped. */
static size_t header(char *out, size_t cap, const char *name, const uint8_t *v, size_t n)
{
    if (!n)
        return 0;
    size_t k = (size_t)snprintf(out, cap, "%s: ", name);
    for (size_t i = 0; i < n && k + 3 < cap; i++)
        if (v[i] != '\r' && v[i] != '\0')
            out[k++] = (char)v[i];
    out[k++] = '\r';
    out[k++] = '\n';
    return k;
}

/* Send one request, read the answer (an event stream: what came at once). */
/* The last exchange, for the report of a failure: its request's head,
 * how it ended (the server closed, or 2 s of silence) and when. */
static char last_head[4096];
static const char *last_end;
static int64_t last_ms;


static char *exchange(const char *head, size_t hn, const uint8_t *body, size_t bn)
{
    snprintf(last_head, sizeof last_head, "%.*s", (int)hn, head);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a))
        abort();
    if (send(fd, head, hn, MSG_NOSIGNAL) == (ssize_t)hn && bn)
        (void)send(fd, body, bn, MSG_NOSIGNAL);
    static char buf[1 << 16];
    int64_t t0 = ob_now_ms();
    fuzz_read_answer(fd, buf, sizeof buf, &last_end);
    last_ms = ob_now_ms() - t0;
    fuzz_close_abortive(fd);
    return buf;
}

static int status_of(const char *raw)
{
    int st = strncmp(raw, "HTTP/1.1 ", 9) == 0 ? atoi(raw + 9) : 0;
    if (st < 200 || st >= 600 || st == 500) { /* not an HTTP response, none, or a 500 */
        fprintf(stderr, "fuzz_api: the request: %.2000s\nthe answer (%s, after %lld ms): %.2000s\n",
                last_head, last_end, (long long)last_ms, raw);
        abort();
    }
    return st;
}

/* The job with the id at p (the value after `key`), stored: it reads back. */
static void check_stored(const char *p, size_t key)
{
    if (strlen(p + key) < OB_ID_STRLEN)
        abort();
    memcpy(last_id, p + key, OB_ID_STRLEN);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "GET /v1/jobs/%s HTTP/1.1\r\nHost: f\r\nAuthorization: Bearer " TOKEN
                      "\r\nConnection: close\r\n\r\n", last_id);
    if (status_of(exchange(head, (size_t)hn, NULL, 0)) != 200)
        abort();
}

/* A 2xx to a POST: the job is there (for a batch: every job accepted),
 * its id after `key` ("\"id\":\"", or Postmark's "\"MessageID\":\""). */
static void check_accepted(const char *raw, bool batch, const char *key)
{
    size_t kn = strlen(key);
    const char *p = strstr(raw, key);
    if (!p && !batch)
        abort();
    static char copy[1 << 16];
    snprintf(copy, sizeof copy, "%s", raw); /* exchange() reuses its buffer */
    for (p = strstr(copy, key); p; p = strstr(p + kn, key))
        check_stored(p, kn);
}

static const uint8_t *part(const uint8_t **p, const uint8_t *end, size_t *n)
{
    const uint8_t *s = *p, *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    const uint8_t *e = nl ? nl : end;
    *n = (size_t)(e - s);
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!port)
        setup();
    if (size < 1)
        return 0;
    /* 0-7 as listed above; a first byte from 0xF0: POST /v1/messages (even)
     * or /v1/messages/batch (odd), the body the rest. */
    int sel = data[0] >= 0xF0   ? 8 + (data[0] & 1)
              : data[0] >= 0xE0 ? 10 + (data[0] & 3)
              : data[0] >= 0xD0 ? 14 + (data[0] & 3)
              : data[0] >= 0xC0 ? 18 + (data[0] & 7)
                                : data[0] % 8;
    const uint8_t *p = data + 1, *end = data + size;
    size_t an, bn, cn;
    const uint8_t *A = part(&p, end, &an), *B = part(&p, end, &bn), *C = part(&p, end, &cn);
    bool post = sel == 0 || sel == 7 || (sel >= 8 && sel <= 11) || sel == 16 || sel == 18 ||
                sel >= 22;
    if (post) { /* the body is the rest, newlines and all */
        A = data + 1;
        an = size - 1;
        bn = cn = 0;
    }
    char enc[8192], head[16384];
    if (((sel >= 2 && sel <= 4) || sel == 15) && an == 0 && last_id[0])
        snprintf(enc, sizeof enc, "%s", last_id);
    else
        encode(A, an, sel == 1 || sel == 5 || sel == 14 || sel == 19 ? "=&,:" : "", enc,
               sizeof enc);
    static const char *const fixed[] = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"};
    size_t hn;
    switch (sel) {
    case 0:
    case 7: /* with the headers POST /v1/jobs reads: body in A */
        hn = (size_t)snprintf(head, sizeof head,
                              "POST /v1/jobs HTTP/1.1\r\nHost: f\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n",
                              an);
        break;
    case 1:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/jobs?%s HTTP/1.1\r\nHost: f\r\n", enc);
        break;
    case 2:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/jobs/%s HTTP/1.1\r\nHost: f\r\n", enc);
        break;
    case 3:
    case 4:
        hn = (size_t)snprintf(head, sizeof head, "POST /v1/jobs/%s/%s HTTP/1.1\r\nHost: f\r\n"
                              "Content-Length: 0\r\n", enc, sel == 3 ? "cancel" : "retry");
        break;
    case 5:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/events?%s HTTP/1.1\r\nHost: f\r\n", enc);
        break;
    case 8:
    case 9:
        hn = (size_t)snprintf(head, sizeof head,
                              "POST /v1/messages%s HTTP/1.1\r\nHost: f\r\n"
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                              sel == 9 ? "/batch" : "", an);
        break;
    case 10:
    case 11:
        hn = (size_t)snprintf(head, sizeof head,
                              "%s HTTP/1.1\r\nHost: f\r\n"
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                              sel == 10 ? "PATCH /v1/queues/fuzzq" : "PUT /v1/schedules/fuzzs",
                              an);
        break;
    case 12:
    case 13:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/%s/%s HTTP/1.1\r\nHost: f\r\n",
                              sel == 12 ? "queues" : "schedules", enc);
        break;
    case 14:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/stats?%s HTTP/1.1\r\nHost: f\r\n", enc);
        break;
    case 15:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/messages/%s/raw HTTP/1.1\r\nHost: f\r\n",
                              enc);
        break;
    case 16:
        hn = (size_t)snprintf(head, sizeof head,
                              "POST /v1/jobs/retry HTTP/1.1\r\nHost: f\r\n"
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                              an);
        break;
    case 17:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/nodes HTTP/1.1\r\nHost: f\r\n");
        break;
    case 18:
    case 22:
    case 23:
    case 24:
    case 25: {
        static const char *const what[] = {"PUT /v1/suppressions/fuzz%40example.com",
                                           "POST /email", "POST /email/batch", "POST /emails",
                                           "POST /emails/batch"};
        hn = (size_t)snprintf(head, sizeof head,
                              "%s HTTP/1.1\r\nHost: f\r\nX-Postmark-Server-Token: " TOKEN "\r\n"
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                              what[sel == 18 ? 0 : sel - 21], an);
        break;
    }
    case 19:
        hn = (size_t)snprintf(head, sizeof head, "GET /v1/suppressions?%s HTTP/1.1\r\nHost: f\r\n",
                              enc);
        break;
    case 20:
    case 21:
        hn = (size_t)snprintf(head, sizeof head, "%s /v1/suppressions/%s HTTP/1.1\r\nHost: f\r\n",
                              sel == 20 ? "GET" : "DELETE", enc);
        break;
    default: /* 6: the fixed endpoints, with a fuzzed Authorization */
        hn = (size_t)snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: f\r\n",
                              fixed[an % 4]);
        break;
    }
    const char *bname = sel == 5 ? "Last-Event-ID" : sel == 6 ? "Authorization" : "Idempotency-Key";
    if (sel != 6)
        hn += (size_t)snprintf(head + hn, sizeof head - hn, "Authorization: Bearer " TOKEN "\r\n");
    hn += header(head + hn, sizeof head - hn - 64, bname, B, bn);
    hn += header(head + hn, sizeof head - hn - 64, "Prefer", C, cn);
    hn += (size_t)snprintf(head + hn, sizeof head - hn, "Connection: close\r\n\r\n");
    const char *raw = exchange(head, hn, post ? A : NULL, an);
    int st = status_of(raw);
    if (sel == 11 && st / 100 == 2) { /* the schedule is there */
        hn = (size_t)snprintf(head, sizeof head,
                              "GET /v1/schedules/fuzzs HTTP/1.1\r\nHost: f\r\nAuthorization: "
                              "Bearer " TOKEN "\r\nConnection: close\r\n\r\n");
        if (status_of(exchange(head, hn, NULL, 0)) != 200)
            abort();
    } else if (sel == 18 && st / 100 == 2) { /* the entry is there */
        hn = (size_t)snprintf(head, sizeof head,
                              "GET /v1/suppressions/fuzz%%40example.com HTTP/1.1\r\nHost: f\r\n"
                              "Authorization: Bearer " TOKEN "\r\nConnection: close\r\n\r\n");
        if (status_of(exchange(head, hn, NULL, 0)) != 200)
            abort();
    } else if (sel >= 22 && st / 100 == 2) {
        check_accepted(raw, sel == 23 || sel == 25, sel <= 23 ? "\"MessageID\":\"" : "\"id\":\"");
    } else if (post && sel != 10 && sel != 16 && sel != 18 && st / 100 == 2) {
        check_accepted(raw, sel == 9, "\"id\":\"");
    }
    return 0;
}
