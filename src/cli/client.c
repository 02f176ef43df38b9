/*
 * client.c - what every verb of the `outbox` command uses: the HTTP call
 * to outboxd (libcurl), API errors and their exit codes, output (JSON,
 * messages as tables), option parsing (getopt_long) and waiting for a job
 * to be final.
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

size_t cli_collect(char *d, size_t size, size_t nmemb, void *arg)
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

/* "Accept: ACCEPT", the bearer token if there is one, and `extra`
 * (NULL-terminated, or NULL); the caller frees the list. */
struct curl_slist *request_headers(const char *accept, const char *const *extra)
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
    SET(CURLOPT_WRITEFUNCTION, cli_collect);
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

int call_ok(const char *method, const char *path, const json_t *body,
            const char *const *headers, long timeout_s, reply *r)
{
    *r = call(method, path, body, headers, timeout_s);
    if (!r->status)
        return unreachable(r);
    if (r->status < 300)
        return EX_OK;
    int rc = api_failed(r);
    json_decref(r->body);
    r->body = NULL;
    return rc;
}

int unreachable(const reply *r)
{
    fprintf(stderr, "outbox: cannot reach %s: %s\n", base_url, r->err[0] ? r->err : "no answer");
    return EX_UNREACHABLE;
}

const char *either(const char *s, const char *otherwise) { return s ? s : otherwise; }

int api_error(long status, const json_t *body)
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
bool query_add(char *q, size_t cap, const char *name, const char *value)
{
    char *esc = curl_easy_escape(NULL, value, 0);
    size_t len = strlen(q);
    int n = esc ? snprintf(q + len, cap - len, "%s=%s&", name, esc) : -1;
    curl_free(esc);
    return n >= 0 && (size_t)n < cap - len;
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
        reply r;
        int rc = call_ok("GET", path, NULL, headers, 60, &r);
        if (rc)
            return rc;
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

int one_operand(int argc, char **argv, const char *verb, const char *what, const char **out)
{
    if (optind != argc - 1)
        return usage_error("%s: %s %s", verb, optind >= argc ? "needs" : "takes one", what);
    *out = argv[optind];
    return EX_OK;
}

int only_operand(int argc, char **argv, const char *verb, const char *help, const char *what,
                 const char **out)
{
    static const struct option opts[] = {HELP_OPT, END_OPT};
    int c;
    *out = NULL;
    opts_begin();
    while ((c = opts_next(argc, argv, verb, opts)) != -1) {
        if (c == '?')
            return EX_USAGE;
        printf("%s", help);
        return EX_OK;
    }
    return one_operand(argc, argv, verb, what, out);
}

int call_item(const char *method, const char *collection, const char *name, const char *suffix,
              const json_t *body, void (*print)(const json_t *v, const char *name))
{
    char path[1200], *esc = curl_easy_escape(NULL, name, 0);
    snprintf(path, sizeof path, "/v1/%s/%.900s%s", collection, esc ? esc : "", suffix);
    curl_free(esc);
    reply r;
    int rc = call_ok(method, path, body, NULL, 60, &r);
    if (rc)
        return rc;
    if (!r.body)
        print(NULL, name);
    else if (as_json)
        print_json(r.body);
    else
        print(r.body, name);
    json_decref(r.body);
    return EX_OK;
}
