/*
 * outbox.c - the command-line client. It speaks only outboxd's HTTP API
 * (libcurl, jansson), never the engine: like curl's src/ uses only lib/.
 *
 *   outbox [--url URL] [--token T | --token-file F] [--json] VERB ...
 *     job add KIND [options]     enqueue; prints the id
 *     job get ID                 one job, with its attempts and result
 *     job list [filters]         jobs, newest first
 *     job wait ID [--timeout S]  until the job is final
 *     job cancel ID | job retry ID
 *     message get ID             a message and each recipient's outcome
 *     send [options]             a mail: POST /v1/messages (send.c)
 *     events [filters] [--once]  follow state changes, reconnecting
 *     health                     is outboxd alive and ready?
 *     help [VERB]                usage
 *
 * Exit codes, for scripts: 0 ok, 1 the job failed (discarded, cancelled)
 * or the API refused, 2 usage, 3 outboxd unreachable, 4 timed out, 5
 * authentication refused.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

const char *base_url = "http://127.0.0.1:8025";
const char *token;
bool as_json;

/* ---- HTTP ---- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t collect(char *d, size_t size, size_t nmemb, void *arg)
{
    buf *b = arg;
    size_t n = size * nmemb;
    char *p = realloc(b->p, b->n + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, d, n);
    b->n += n;
    p[b->n] = '\0';
    b->p = p;
    return n;
}

/* Set an option of handle c unless an earlier one failed: cc keeps the
 * first failure, which the caller reports instead of performing. */
#define SET(o, v) (cc = cc == CURLE_OK ? curl_easy_setopt(c, o, v) : cc)

/* "Accept: ACCEPT", the bearer token if there is one, and `extra`
 * (NULL-terminated, or NULL); the caller frees the list. */
static struct curl_slist *request_headers(const char *accept, const char *const *extra)
{
    char line[1100];
    snprintf(line, sizeof line, "Accept: %s", accept);
    struct curl_slist *h = curl_slist_append(NULL, line);
    if (token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, line);
    }
    for (int i = 0; extra && extra[i]; i++)
        h = curl_slist_append(h, extra[i]);
    return h;
}

reply call(const char *method, const char *path, const json_t *body, const char *const *headers,
           long timeout_s)
{
    reply r = {0};
    CURL *c = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    struct curl_slist *h = request_headers("application/json", headers);
    char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    buf b = {0};
    CURLcode cc = !c ? CURLE_OUT_OF_MEMORY : CURLE_OK;
    if (text)
        SET(CURLOPT_POSTFIELDS, text);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_CUSTOMREQUEST, method);
    SET(CURLOPT_HTTPHEADER, h);
    SET(CURLOPT_WRITEFUNCTION, collect);
    SET(CURLOPT_WRITEDATA, &b);
    SET(CURLOPT_TIMEOUT, timeout_s);
    SET(CURLOPT_CONNECTTIMEOUT, 5L);
    SET(CURLOPT_ERRORBUFFER, r.err);
    SET(CURLOPT_NOSIGNAL, 1L);
    if (cc != CURLE_OK)
        snprintf(r.err, sizeof r.err, "cannot set up the request: %s", curl_easy_strerror(cc));
    else if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
    }
    free(b.p);
    free(text);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

int unreachable(const reply *r)
{
    fprintf(stderr, "outbox: cannot reach %s: %s\n", base_url, r->err[0] ? r->err : "no answer");
    return EX_UNREACHABLE;
}

static const char *either(const char *s, const char *otherwise) { return s ? s : otherwise; }

static int api_error(long status, const json_t *body)
{
    json_t *e = json_object_get(body, "error");
    const char *field = json_string_value(json_object_get(e, "field"));
    fprintf(stderr, "outbox: %ld %s: %s%s%s\n", status,
            either(json_string_value(json_object_get(e, "code")), "error"),
            either(json_string_value(json_object_get(e, "message")), "(no message)"),
            field ? " — field: " : "", field ? field : "");
    if (status == 401)
        fprintf(stderr, "outbox: give a token with --token-file FILE, --token or OUTBOX_TOKEN\n");
    return status == 401 || status == 403 ? EX_AUTH : EX_FAILED;
}

int api_failed(const reply *r) { return api_error(r->status, r->body); }

/* ---- output ---- */

void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    printf("%s\n", s ? s : "null");
    free(s);
}

const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void print_job(const json_t *j)
{
    if (as_json) {
        print_json(j);
        return;
    }
    printf("id          %s\nkind        %s\nqueue       %s\nstate       %s\n", str(j, "id"),
           str(j, "kind"), str(j, "queue"), str(j, "state"));
    printf("attempt     %lld of %lld\ncreated     %s\nrun at      %s\nfinished    %s\n",
           json_integer_value(json_object_get(j, "attempt")),
           json_integer_value(json_object_get(j, "max_attempts")), str(j, "created_at"),
           str(j, "run_at"), str(j, "finished_at"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "errors"), i, e)
        printf("error       attempt %lld at %s: %s\n", json_integer_value(json_object_get(e, "attempt")),
               str(e, "at"), str(e, "error"));
    json_t *res = json_object_get(j, "result");
    if (res && !json_is_null(res)) {
        char *s = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("result      %s\n", s);
        free(s);
    }
}

void print_message(const json_t *msg)
{
    if (as_json) {
        print_json(msg);
        return;
    }
    printf("message %s: %s%s%s\n", str(msg, "id"), str(msg, "state"),
           json_object_get(msg, "message_id") ? "  " : "",
           json_object_get(msg, "message_id") ? str(msg, "message_id") : "");
    printf("  %-10s %-40s %-4s  %s\n", "STATE", "ADDRESS", "TYPE", "REPLY");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(msg, "recipients"), i, r) {
        json_t *code = json_object_get(r, "code");
        printf("  %-10s %-40s %-4s  ", str(r, "state"), str(r, "address"), str(r, "type"));
        if (code)
            printf("%lld %s%s%s", json_integer_value(code),
                   json_object_get(r, "enhanced") ? str(r, "enhanced") : "",
                   json_object_get(r, "enhanced") ? " " : "", str(r, "reply"));
        printf("\n");
    }
}

/* ---- options ---- */

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "outbox: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see outbox help)\n");
    va_end(ap);
    return EX_USAGE;
}

void opts_begin(void)
{
    optind = 0; /* glibc: start again, from argv[1] */
    opterr = 0;
}

int opts_next(int argc, char **argv, const char *verb, const struct option *opts)
{
    int c = getopt_long(argc, argv, ":h", opts, NULL);
    if (c == '?' || c == ':') {
        const char *bad = argv[optind - 1];
        if (c == ':')
            usage_error("%s: %s needs a value", verb, bad);
        else
            usage_error("%s: unknown option %s", verb, optopt ? (char[]){'-', (char)optopt, 0} : bad);
        return '?';
    }
    return c;
}

int opt_long(const char *verb, const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return usage_error("%s: --%s must be a whole number from %ld to %ld, not \"%s\"", verb,
                           name, lo, hi, v);
    *out = x;
    return EX_OK;
}

int opt_double(const char *verb, const char *name, const char *v, double lo, double hi,
               double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
        return usage_error("%s: --%s must be a number from %g to %g, not \"%s\"", verb, name, lo,
                           hi, v);
    *out = x;
    return EX_OK;
}

/* The one operand a verb takes (an id, a kind), or a usage error. */
static int one_operand(int argc, char **argv, const char *verb, const char *what,
                       const char **out)
{
    if (optind != argc - 1)
        return usage_error("%s: %s %s", verb, optind >= argc ? "needs" : "takes one", what);
    *out = argv[optind];
    return EX_OK;
}

#define HELP_OPT {"help", no_argument, NULL, 'h'}
#define END_OPT {NULL, 0, NULL, 0}

/* ---- job add ---- */

static const char job_add_help[] =
    "usage: outbox job add KIND [--queue Q] [--priority N] [--payload JSON |\n"
    "         --payload-file FILE] [--delay S | --run-at TIME] [--max-attempts N]\n"
    "         [--timeout S] [--unique-key K] [--idempotency-key K]\n"
    "         [--callback-url URL] [--wait S]\n"
    "  Enqueue a job; prints its id once outboxd stored it. --wait S holds the\n"
    "  answer until the job is final (exit 0 completed, 1 failed, 4 still running\n"
    "  after S).\n";

enum { A_QUEUE = 256, A_PRIORITY, A_PAYLOAD, A_PAYLOAD_FILE, A_DELAY, A_RUN_AT, A_MAX_ATTEMPTS,
       A_TIMEOUT, A_UNIQUE_KEY, A_IDEM, A_CALLBACK, A_WAIT };

static int job_add_option(json_t *body, int c, const char *v, const char **idem, double *wait)
{
    const char *verb = "job add";
    json_error_t err;
    json_t *val = NULL;
    long n;
    double d;
    int rc = EX_OK;
    switch (c) {
    case A_QUEUE: val = json_string(v); json_object_set_new(body, "queue", val); break;
    case A_RUN_AT: json_object_set_new(body, "run_at", json_string(v)); break;
    case A_UNIQUE_KEY: json_object_set_new(body, "unique_key", json_string(v)); break;
    case A_CALLBACK: json_object_set_new(body, "callback_url", json_string(v)); break;
    case A_IDEM: *idem = v; break;
    case A_PRIORITY:
        if (!(rc = opt_long(verb, "priority", v, -1000, 1000, &n)))
            json_object_set_new(body, "priority", json_integer(n));
        break;
    case A_MAX_ATTEMPTS:
        if (!(rc = opt_long(verb, "max-attempts", v, 1, 1000000, &n)))
            json_object_set_new(body, "max_attempts", json_integer(n));
        break;
    case A_DELAY:
        if (!(rc = opt_double(verb, "delay", v, 0, 10.0 * 365 * 86400, &d)))
            json_object_set_new(body, "delay", json_real(d));
        break;
    case A_TIMEOUT:
        if (!(rc = opt_double(verb, "timeout", v, 0.001, 86400, &d)))
            json_object_set_new(body, "timeout", json_real(d));
        break;
    case A_WAIT: rc = opt_double(verb, "wait", v, 1, 3600, wait); break;
    case A_PAYLOAD:
    case A_PAYLOAD_FILE:
        val = c == A_PAYLOAD ? json_loads(v, JSON_DECODE_ANY, &err)
                             : json_load_file(v, JSON_DECODE_ANY, &err);
        if (!val)
            return usage_error("%s: --%s is not JSON: %s", verb,
                               c == A_PAYLOAD ? "payload" : "payload-file", err.text);
        json_object_set_new(body, "payload", val);
        break;
    }
    return rc;
}

static int job_add(int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, A_QUEUE},
        {"priority", required_argument, NULL, A_PRIORITY},
        {"payload", required_argument, NULL, A_PAYLOAD},
        {"payload-file", required_argument, NULL, A_PAYLOAD_FILE},
        {"delay", required_argument, NULL, A_DELAY},
        {"run-at", required_argument, NULL, A_RUN_AT},
        {"max-attempts", required_argument, NULL, A_MAX_ATTEMPTS},
        {"timeout", required_argument, NULL, A_TIMEOUT},
        {"unique-key", required_argument, NULL, A_UNIQUE_KEY},
        {"idempotency-key", required_argument, NULL, A_IDEM},
        {"callback-url", required_argument, NULL, A_CALLBACK},
        {"wait", required_argument, NULL, A_WAIT},
        HELP_OPT, END_OPT};
    json_t *body = json_object();
    const char *idem = NULL, *kind;
    double wait = 0;
    int c, rc = EX_OK;
    opts_begin();
    while (!rc && (c = opts_next(argc, argv, "job add", opts)) != -1) {
        if (c == 'h') {
            printf("%s", job_add_help);
            json_decref(body);
            return EX_OK;
        }
        rc = c == '?' ? EX_USAGE : job_add_option(body, c, optarg, &idem, &wait);
    }
    if (!rc)
        rc = one_operand(argc, argv, "job add", "a KIND", &kind);
    if (rc) {
        json_decref(body);
        return rc;
    }
    json_object_set_new(body, "kind", json_string(kind));
    char idh[300], prefer[64];
    const char *headers[3] = {NULL};
    int nh = 0;
    if (idem) {
        snprintf(idh, sizeof idh, "Idempotency-Key: %s", idem);
        headers[nh++] = idh;
    }
    if (wait > 0) {
        snprintf(prefer, sizeof prefer, "Prefer: wait=%g", wait);
        headers[nh++] = prefer;
    }
    reply r = call("POST", "/v1/jobs", body, headers, (long)wait + 30);
    json_decref(body);
    if (!r.status)
        return unreachable(&r);
    const char *st = json_string_value(json_object_get(r.body, "state"));
    bool final = st && (!strcmp(st, "completed") || !strcmp(st, "discarded") ||
                        !strcmp(st, "cancelled"));
    if (r.status == 200 && wait > 0 && !final) { /* an existing job, not done: wait for it */
        char id[64], path[128];
        snprintf(id, sizeof id, "%s", str(r.body, "id"));
        snprintf(path, sizeof path, "/v1/jobs/%s", id);
        json_t *done = NULL;
        rc = wait_final(path, id, wait, &done);
        if (rc && rc != EX_TIMEOUT) {
            json_decref(r.body);
            return rc;
        }
        if (done) { /* else it timed out: shown as it was */
            json_decref(r.body);
            r.body = done;
        }
        st = json_string_value(json_object_get(r.body, "state"));
    }
    if (r.status >= 300)
        rc = api_failed(&r);
    else if (as_json)
        print_json(r.body);
    else if (wait > 0 && r.status == 200 && rc != EX_TIMEOUT)
        print_job(r.body);
    else
        printf("%s\n", str(r.body, "id"));
    if (!rc && wait > 0 && st && (!strcmp(st, "discarded") || !strcmp(st, "cancelled")))
        rc = EX_FAILED;
    else if (!rc && wait > 0 && (r.status == 202 || (st && strcmp(st, "completed"))))
        rc = EX_TIMEOUT;
    json_decref(r.body);
    return rc;
}

/* ---- job get, cancel, retry; message get ---- */

static int one_job(int argc, char **argv, const char *verb, const char *method,
                   const char *prefix, const char *suffix, const char *help)
{
    static const struct option opts[] = {HELP_OPT, END_OPT};
    int c;
    const char *id;
    opts_begin();
    while ((c = opts_next(argc, argv, verb, opts)) != -1) {
        if (c == '?')
            return EX_USAGE;
        printf("%s", help);
        return EX_OK;
    }
    int rc = one_operand(argc, argv, verb, "an ID", &id);
    if (rc)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "%s%.64s%s", prefix, id, suffix);
    reply r = call(method, path, NULL, NULL, 30);
    if (!r.status)
        return unreachable(&r);
    rc = r.status >= 300 ? api_failed(&r) : EX_OK;
    if (!rc && !strcmp(prefix, "/v1/messages/"))
        print_message(r.body);
    else if (!rc && (as_json || !*suffix))
        print_job(r.body);
    else if (!rc)
        printf("%s %s\n", str(r.body, "id"), str(r.body, "state"));
    json_decref(r.body);
    return rc;
}

/* ---- job list ---- */

/* Append "name=value&" (escaped) to a query string. false: too long. */
static bool query_add(char *q, size_t cap, const char *name, const char *value)
{
    char *esc = curl_easy_escape(NULL, value, 0);
    size_t len = strlen(q);
    int n = esc ? snprintf(q + len, cap - len, "%s=%s&", name, esc) : -1;
    curl_free(esc);
    return n >= 0 && (size_t)n < cap - len;
}

static int job_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'}, {"kind", required_argument, NULL, 'k'},
        {"queue", required_argument, NULL, 'q'}, {"limit", required_argument, NULL, 'l'},
        {"cursor", required_argument, NULL, 'c'}, HELP_OPT, END_OPT};
    char path[1024] = "/v1/jobs?", again[1024] = "outbox job list";
    int c;
    long n;
    opts_begin();
    while ((c = opts_next(argc, argv, "job list", opts)) != -1) {
        if (c == '?')
            return EX_USAGE;
        if (c == 'h') {
            printf("usage: outbox job list [--state S[,S...]] [--kind K] [--queue Q]\n"
                   "         [--limit N] [--cursor C]\n  Jobs, newest first.\n");
            return EX_OK;
        }
        const char *name = c == 's' ? "state" : c == 'k' ? "kind" : c == 'q' ? "queue"
                         : c == 'l' ? "limit" : "cursor";
        if (c == 'l' && opt_long("job list", "limit", optarg, 1, 1000, &n))
            return EX_USAGE;
        if (!query_add(path, sizeof path, name, optarg))
            return usage_error("job list: the options are too long");
        if (c != 'c') /* the next page keeps the filters and the limit */
            snprintf(again + strlen(again), sizeof again - strlen(again), " --%s '%s'", name,
                     optarg);
    }
    if (optind < argc)
        return usage_error("job list: takes no operand (\"%s\")", argv[optind]);
    reply r = call("GET", path, NULL, NULL, 30);
    if (!r.status)
        return unreachable(&r);
    if (r.status >= 300) {
        int rc = api_failed(&r);
        json_decref(r.body);
        return rc;
    }
    if (as_json) {
        print_json(r.body);
    } else {
        printf("%-36s  %-16s %-10s %-10s %7s  %s\n", "ID", "KIND", "QUEUE", "STATE", "ATTEMPT",
               "CREATED");
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(r.body, "jobs"), i, j)
            printf("%-36s  %-16.16s %-10.10s %-10s %7lld  %s\n", str(j, "id"), str(j, "kind"),
                   str(j, "queue"), str(j, "state"),
                   json_integer_value(json_object_get(j, "attempt")), str(j, "created_at"));
        const char *cur = json_string_value(json_object_get(r.body, "next_cursor"));
        if (cur)
            printf("more: %s --cursor %s\n", again, cur);
    }
    json_decref(r.body);
    return EX_OK;
}

/* ---- job wait ---- */

static double since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

int wait_final(const char *path, const char *id, double limit, json_t **out)
{
    bool tty = isatty(2) && !as_json; /* progress is for a person, on stderr */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        double spent = since(&t0), left = limit < 0 ? 30 : limit - spent;
        if (limit >= 0 && left <= 0) {
            if (tty)
                fprintf(stderr, "\r\033[K");
            fprintf(stderr, "outbox: %s is not final after %g s\n", id, limit);
            return EX_TIMEOUT;
        }
        /* on a terminal, a long poll of a second at a time: the line ticks */
        double w = tty ? 1 : left > 30 ? 30 : left;
        char prefer[64];
        snprintf(prefer, sizeof prefer, "Prefer: wait=%.3f", w < 0.001 ? 0.001 : w);
        const char *headers[] = {prefer, NULL};
        reply r = call("GET", path, NULL, headers, 60);
        if (!r.status)
            return unreachable(&r);
        if (r.status >= 300) {
            int rc = api_failed(&r);
            json_decref(r.body);
            return rc;
        }
        const char *st = str(r.body, "state");
        if (!strcmp(st, "completed") || !strcmp(st, "discarded") || !strcmp(st, "cancelled")) {
            if (tty)
                fprintf(stderr, "\r\033[K");
            *out = r.body;
            return EX_OK;
        }
        if (tty)
            fprintf(stderr, "\r\033[Kwaiting for %s: %s, attempt %lld, %.0f s", id, st,
                    json_integer_value(json_object_get(r.body, "attempt")), since(&t0));
        json_decref(r.body);
    }
}

static int job_wait(int argc, char **argv)
{
    static const struct option opts[] = {{"timeout", required_argument, NULL, 't'}, HELP_OPT,
                                         END_OPT};
    double limit = -1;
    const char *id;
    int c;
    opts_begin();
    while ((c = opts_next(argc, argv, "job wait", opts)) != -1) {
        if (c == '?')
            return EX_USAGE;
        if (c == 'h') {
            printf("usage: outbox job wait ID [--timeout S]\n"
                   "  Wait until the job is final. Exit 0 completed, 1 discarded or cancelled,\n"
                   "  4 if S seconds pass first (default: wait for ever).\n");
            return EX_OK;
        }
        if (opt_double("job wait", "timeout", optarg, 0, 1e9, &limit))
            return EX_USAGE;
    }
    int rc = one_operand(argc, argv, "job wait", "an ID", &id);
    if (rc)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs/%.64s", id);
    json_t *job;
    if ((rc = wait_final(path, id, limit, &job)))
        return rc;
    rc = !strcmp(str(job, "state"), "completed") ? EX_OK : EX_FAILED;
    print_job(job);
    json_decref(job);
    return rc;
}

/* ---- health ---- */

static int health(int argc, char **argv)
{
    static const struct option opts[] = {HELP_OPT, END_OPT};
    int c;
    opts_begin();
    while ((c = opts_next(argc, argv, "health", opts)) != -1) {
        if (c == '?')
            return EX_USAGE;
        printf("usage: outbox health\n  Exit 0 when outboxd is alive and ready, 1 when alive but\n"
               "  not ready, 3 when it cannot be reached.\n");
        return EX_OK;
    }
    reply live = call("GET", "/healthz", NULL, NULL, 10);
    if (!live.status)
        return unreachable(&live);
    reply ready = call("GET", "/readyz", NULL, NULL, 10);
    if (as_json)
        print_json(ready.body);
    else
        printf("alive: %s\nready: %s%s%s\n", live.status == 200 ? "yes" : "no",
               ready.status == 200 ? "yes" : "no", ready.status == 200 ? "" : " — ",
               ready.status == 200 ? "" : str(ready.body, "reason"));
    json_decref(live.body);
    json_decref(ready.body);
    return ready.status == 200 ? EX_OK : EX_FAILED;
}

/* ---- events ---- */

/* One connection's stream: lines parsed as they come, the last event id
 * kept for the next connection; an error answer's body collected. */
typedef struct sse {
    CURL *c;
    buf line, error;
    long status;
    char last_id[32];
    int events;
} sse;

static void sse_line(sse *s)
{
    const char *l = s->line.p ? s->line.p : "";
    if (!strncmp(l, "id:", 3)) {
        snprintf(s->last_id, sizeof s->last_id, "%s", l + 3 + (l[3] == ' '));
    } else if (!strncmp(l, "data:", 5)) {
        const char *data = l + 5 + (l[5] == ' ');
        json_t *ev = json_loads(data, 0, NULL);
        s->events++;
        if (as_json)
            printf("%s\n", data);
        else if (ev)
            printf("%s  %s  %-16s %-10s %-10s attempt %lld%s%s\n", str(ev, "at"), str(ev, "id"),
                   str(ev, "kind"), str(ev, "queue"), str(ev, "state"),
                   json_integer_value(json_object_get(ev, "attempt")),
                   json_object_get(ev, "error") ? "  " : "",
                   either(json_string_value(json_object_get(ev, "error")), ""));
        fflush(stdout);
        json_decref(ev);
    } else if (!strncmp(l, "event: reset", 12)) {
        fprintf(stderr, "outbox: events: outboxd no longer has the events since the last one "
                        "seen: re-read what you follow\n");
    }
    s->line.n = 0;
    if (s->line.p)
        s->line.p[0] = '\0';
}

static size_t on_events(char *d, size_t size, size_t nmemb, void *arg)
{
    sse *s = arg;
    size_t n = size * nmemb;
    if (!s->status)
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status >= 300) /* an error answer: keep it to show */
        return s->error.n < 65536 ? collect(d, size, nmemb, &s->error) : 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\n') {
            sse_line(s);
        } else if (d[i] != '\r') {
            char ch = d[i];
            collect(&ch, 1, 1, &s->line);
        }
    }
    return n;
}

/* One connection: EX_OK when the stream ended (outboxd stopped or the
 * connection broke), EX_UNREACHABLE, or an API error's code (*final). */
static int events_once(const char *url, sse *s, bool *final)
{
    char last[64];
    snprintf(last, sizeof last, "Last-Event-ID: %s", s->last_id);
    const char *extra[] = {s->last_id[0] ? last : NULL, NULL};
    struct curl_slist *h = request_headers("text/event-stream", extra);
    char err[CURL_ERROR_SIZE] = "";
    CURL *c = s->c = curl_easy_init();
    s->status = 0;
    s->error.n = 0;
    CURLcode cc = !c ? CURLE_OUT_OF_MEMORY : CURLE_OK;
    SET(CURLOPT_URL, url);
    SET(CURLOPT_HTTPHEADER, h);
    SET(CURLOPT_WRITEFUNCTION, on_events);
    SET(CURLOPT_WRITEDATA, s);
    SET(CURLOPT_ERRORBUFFER, err);
    SET(CURLOPT_CONNECTTIMEOUT, 5L);
    CURLcode rc = cc == CURLE_OK ? curl_easy_perform(c) : cc;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (s->status >= 300) {
        json_t *body = s->error.p ? json_loads(s->error.p, 0, NULL) : NULL;
        int code = api_error(s->status, body);
        json_decref(body);
        *final = s->status != 503; /* unavailable (draining, full): try again */
        return code;
    }
    if (rc == CURLE_OK || s->status)
        return EX_OK;
    fprintf(stderr, "outbox: events: %s\n", err[0] ? err : curl_easy_strerror(rc));
    return EX_UNREACHABLE;
}

static int events(int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'}, {"kind", required_argument, NULL, 'k'},
        {"queue", required_argument, NULL, 'q'}, {"once", no_argument, NULL, 'o'},
        HELP_OPT, END_OPT};
    char url[2048];
    bool once = false;
    int c;
    snprintf(url, sizeof url, "%s/v1/events?", base_url);
    opts_begin();
    while ((c = opts_next(argc, argv, "events", opts)) != -1) {
        if (c == '?')
            return EX_USAGE;
        if (c == 'h') {
            printf("usage: outbox events [--id ID] [--kind K] [--queue Q] [--once]\n"
                   "  Follow job state changes as outboxd commits them, until interrupted.\n"
                   "  When the connection drops it reconnects (backoff up to 10 s) and resumes\n"
                   "  after the last event seen (Last-Event-ID); --once stops instead.\n");
            return EX_OK;
        }
        if (c == 'o')
            once = true;
        else if (!query_add(url, sizeof url, c == 'i' ? "id" : c == 'k' ? "kind" : "queue", optarg))
            return usage_error("events: the options are too long");
    }
    if (optind < argc)
        return usage_error("events: takes no operand (\"%s\")", argv[optind]);
    sse s = {0};
    double backoff = 0.5;
    int rc;
    for (;;) {
        bool final = false;
        int seen = s.events;
        rc = events_once(url, &s, &final);
        if (once || final)
            break;
        if (s.events > seen)
            backoff = 0.5; /* it worked for a while: start the backoff again */
        fprintf(stderr, "outbox: events: disconnected; reconnecting in %g s\n", backoff);
        struct timespec ts = {(time_t)backoff, (long)((backoff - (double)(long)backoff) * 1e9)};
        nanosleep(&ts, NULL);
        backoff = backoff * 2 > 10 ? 10 : backoff * 2;
    }
    free(s.line.p);
    free(s.error.p);
    return rc;
}

/* ---- main ---- */

static const char usage_text[] =
    "usage: outbox [--url URL] [--token TOKEN | --token-file FILE] [--json] VERB [ARGS]\n"
    "  The command-line client of outboxd.\n\n"
    "  job add KIND [options]      enqueue a job (outbox job add --help)\n"
    "  job get ID                  show a job: state, attempts, errors, result\n"
    "  job list [filters]          jobs, newest first\n"
    "  job wait ID [--timeout S]   wait until the job is final\n"
    "  job cancel ID               cancel a job\n"
    "  job retry ID                run a discarded, cancelled or scheduled job now\n"
    "  message get ID              a message and each recipient's outcome\n"
    "  send [options]              send a mail (outbox send --help)\n"
    "  events [filters]            follow state changes\n"
    "  health                      is outboxd alive and ready?\n"
    "  help [VERB]                 this text, or a verb's\n\n"
    "  --url URL          outboxd (env OUTBOX_URL; default http://127.0.0.1:8025)\n"
    "  --token TOKEN      bearer token (env OUTBOX_TOKEN; visible in ps: prefer --token-file)\n"
    "  --token-file FILE  the token, first line of a file (env OUTBOX_TOKEN_FILE)\n"
    "  --json             machine-readable output (anywhere on the line)\n"
    "  --version          print the version\n"
    "Options take \"--name value\" or \"--name=value\", before or after operands; \"--\"\n"
    "ends them. Exit codes: 0 ok, 1 job failed or request refused, 2 usage,\n"
    "3 unreachable, 4 timeout, 5 authentication refused.\n";

static const char job_help[] =
    "usage: outbox job add|get|list|wait|cancel|retry ...\n"
    "  outbox job VERB --help for each.\n";

/* The token from a file: its first line that is not blank or a comment.
 * Refused if others may read the file. */
static int read_token_file(const char *path)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        return usage_error("--token-file %s: %s", path, strerror(errno));
    }
    if (st.st_mode & 077) {
        fclose(f);
        return usage_error("--token-file %s: group or others may read it (chmod 600 it)", path);
    }
    static char line[1024];
    char *t = NULL;
    while (!t && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *s = line + strspn(line, " \t");
        if (*s && *s != '#')
            t = s;
    }
    fclose(f);
    if (!t)
        return usage_error("--token-file %s holds no token", path);
    token = t;
    return EX_OK;
}

/* Global options, up to the verb. EX_OK, or an exit code (help,
 * version, usage) with *done. */
static int global_options(int argc, char **argv, bool *done)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'}, {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'f'}, {"version", no_argument, NULL, 'v'},
        HELP_OPT, END_OPT};
    int c;
    *done = true;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (c) {
        case 'u': base_url = optarg; break;
        case 't': token = optarg; break;
        case 'f': {
            int rc = read_token_file(optarg);
            if (rc)
                return rc;
            break;
        }
        case 'v': printf("outbox %s\n", OB_VERSION); return EX_OK;
        case 'h': printf("%s", usage_text); return EX_OK;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    *done = false;
    return EX_OK;
}

static int help_verb(int argc, char **argv)
{
    if (argc < 2) {
        printf("%s", usage_text);
        return EX_OK;
    }
    const char *v = argv[1];
    if (!strcmp(v, "job") && argc > 2) {
        char *sub[] = {argv[2], "--help", NULL};
        if (!strcmp(argv[2], "add"))
            return job_add(2, sub);
        if (!strcmp(argv[2], "list"))
            return job_list(2, sub);
        if (!strcmp(argv[2], "wait"))
            return job_wait(2, sub);
    }
    if (!strcmp(v, "job")) {
        printf("%s", job_help);
        return EX_OK;
    }
    char *again[] = {argv[1], "--help", NULL};
    if (!strcmp(v, "send"))
        return send_mail(2, again);
    if (!strcmp(v, "events"))
        return events(2, again);
    if (!strcmp(v, "health"))
        return health(2, again);
    printf("%s", usage_text);
    return EX_OK;
}

static int job_verb(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("job: add, get, list, wait, cancel or retry");
    const char *sub = argv[1];
    argc--, argv++;
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        printf("%s", job_help);
        return EX_OK;
    }
    if (!strcmp(sub, "add"))
        return job_add(argc, argv);
    if (!strcmp(sub, "get"))
        return one_job(argc, argv, "job get", "GET", "/v1/jobs/", "",
                       "usage: outbox job get ID\n  Show a job.\n");
    if (!strcmp(sub, "list"))
        return job_list(argc, argv);
    if (!strcmp(sub, "wait"))
        return job_wait(argc, argv);
    if (!strcmp(sub, "cancel"))
        return one_job(argc, argv, "job cancel", "POST", "/v1/jobs/", "/cancel",
                       "usage: outbox job cancel ID\n  Cancel a job.\n");
    if (!strcmp(sub, "retry"))
        return one_job(argc, argv, "job retry", "POST", "/v1/jobs/", "/retry",
                       "usage: outbox job retry ID\n  Run a job again now.\n");
    return usage_error("job: unknown verb %s", sub);
}

static int message_verb(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "get") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("usage: outbox message get ID\n  A message: its state, Message-ID and each "
                   "recipient's outcome.\n");
            return EX_OK;
        }
        return usage_error("message: get ID");
    }
    return one_job(argc - 1, argv + 1, "message get", "GET", "/v1/messages/", "",
                   "usage: outbox message get ID\n  A message: its state, Message-ID and each "
                   "recipient's outcome.\n");
}

int main(int argc, char **argv)
{
    if (getenv("OUTBOX_URL"))
        base_url = getenv("OUTBOX_URL");
    token = getenv("OUTBOX_TOKEN");
    int kept = 1; /* --json may also follow the verb: "outbox job get ID --json" */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { /* the rest is operands */
            while (i < argc)
                argv[kept++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = NULL;
    bool done;
    const char *tf = getenv("OUTBOX_TOKEN_FILE");
    int rc = tf && *tf && !getenv("OUTBOX_TOKEN") ? read_token_file(tf) : EX_OK;
    if (rc || (rc = global_options(argc, argv, &done)) || done)
        return rc;
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        fprintf(stderr, "%s", usage_text);
        return EX_USAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *verb = argv[0];
    if (!strcmp(verb, "health"))
        rc = health(argc, argv);
    else if (!strcmp(verb, "events"))
        rc = events(argc, argv);
    else if (!strcmp(verb, "send"))
        rc = send_mail(argc, argv);
    else if (!strcmp(verb, "job"))
        rc = job_verb(argc, argv);
    else if (!strcmp(verb, "message"))
        rc = message_verb(argc, argv);
    else if (!strcmp(verb, "help"))
        rc = help_verb(argc, argv);
    else
        rc = usage_error("unknown verb %s", verb);
    curl_global_cleanup();
    return rc;
}
