/*
 * outbox.c - the command-line client. It speaks only outboxd's HTTP API
 * (libcurl, jansson), never the engine: like curl's src/ uses only lib/.
 *
 *   outbox [--url URL] [--token T] [--json] VERB ...
 *     job add KIND [options]     enqueue; prints the id
 *     job get ID                 one job, with its attempts and result
 *     job list [filters]         jobs, newest first
 *     job wait ID [--timeout S]  until the job is final
 *     job cancel ID | job retry ID
 *     send [options]             a mail: POST /v1/messages (send.c)
 *     events [filters]           follow state changes as they happen
 *     health                     is outboxd alive and ready?
 *
 * Exit codes, for scripts: 0 ok, 1 the job failed (discarded, cancelled)
 * or the API refused, 2 usage, 3 outboxd unreachable, 4 timed out.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* "Accept: ACCEPT", and the bearer token if there is one; the caller
 * frees the list (curl_slist_free_all). */
static struct curl_slist *base_headers(const char *accept)
{
    char line[1100];
    snprintf(line, sizeof line, "Accept: %s", accept);
    struct curl_slist *h = curl_slist_append(NULL, line);
    if (token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, line);
    }
    return h;
}

/* One request. body: JSON to send (borrowed) or NULL. extra: a header. */
reply call(const char *method, const char *path, const json_t *body, const char *extra,
                  long timeout_s)
{
    reply r = {0};
    CURL *c = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    struct curl_slist *h = base_headers("application/json");
    if (extra)
        h = curl_slist_append(h, extra);
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

/* Print an API error; returns the exit code. */
int api_failed(const reply *r)
{
    json_t *e = json_object_get(r->body, "error");
    const char *field = json_string_value(json_object_get(e, "field"));
    fprintf(stderr, "outbox: %ld %s: %s%s%s\n", r->status,
            either(json_string_value(json_object_get(e, "code")), "error"),
            either(json_string_value(json_object_get(e, "message")), "(no message)"),
            field ? " — field: " : "", field ? field : "");
    return EX_FAILED;
}

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

/* ---- verbs ---- */

const char *next(args *a) { return a->i < a->argc ? a->argv[a->i++] : NULL; }

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "outbox: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see outbox --help)\n");
    va_end(ap);
    return EX_USAGE;
}

bool wants_help(args *a)
{
    for (int i = a->i; i < a->argc; i++)
        if (!strcmp(a->argv[i], "--help") || !strcmp(a->argv[i], "-h"))
            return true;
    return false;
}

static int job_add(args *a)
{
    if (wants_help(a)) {
        printf("usage: outbox job add KIND [--queue Q] [--priority N] [--payload JSON |\n"
               "         --payload-file FILE] [--delay S | --run-at TIME] [--max-attempts N]\n"
               "         [--timeout S] [--unique-key K] [--idempotency-key K]\n"
               "         [--callback-url URL] [--wait S]\n"
               "  Enqueue a job; prints its id once outboxd stored it. --wait S holds the\n"
               "  answer until the job is final (exit 0 completed, 1 failed) or S pass.\n");
        return EX_OK;
    }
    const char *kind = next(a);
    if (!kind || kind[0] == '-')
        return usage_error("job add: KIND is required");
    json_t *body = json_pack("{s:s}", "kind", kind);
    const char *idem = NULL, *wait = NULL, *opt;
    while ((opt = next(a))) {
        const char *v = next(a);
        if (!v) {
            json_decref(body);
            return usage_error("job add: %s needs a value", opt);
        }
        json_t *val = NULL;
        if (!strcmp(opt, "--queue") || !strcmp(opt, "--unique-key") ||
            !strcmp(opt, "--callback-url") || !strcmp(opt, "--run-at"))
            val = json_string(v);
        else if (!strcmp(opt, "--priority") || !strcmp(opt, "--max-attempts"))
            val = json_integer(atoll(v));
        else if (!strcmp(opt, "--delay") || !strcmp(opt, "--timeout"))
            val = json_real(atof(v));
        else if (!strcmp(opt, "--payload") || !strcmp(opt, "--payload-file")) {
            json_error_t err;
            val = !strcmp(opt, "--payload") ? json_loads(v, JSON_DECODE_ANY, &err)
                                            : json_load_file(v, JSON_DECODE_ANY, &err);
            if (!val) {
                json_decref(body);
                return usage_error("job add: %s is not JSON: %s", opt, err.text);
            }
            opt = "--payload";
        } else if (!strcmp(opt, "--idempotency-key")) {
            idem = v;
            continue;
        } else if (!strcmp(opt, "--wait")) {
            wait = v;
            continue;
        } else {
            json_decref(body);
            return usage_error("job add: unknown option %s", opt);
        }
        char key[64];
        snprintf(key, sizeof key, "%s", opt + 2);
        for (char *k = key; *k; k++)
            if (*k == '-')
                *k = '_';
        json_object_set_new(body, key, val);
    }
    char idh[300] = "", prefer[64];
    if (idem)
        snprintf(idh, sizeof idh, "Idempotency-Key: %s", idem);
    if (wait)
        snprintf(prefer, sizeof prefer, "Prefer: wait=%s", wait);
    reply r = call("POST", "/v1/jobs", body, wait ? prefer : idem ? idh : NULL,
                   wait ? atol(wait) + 30 : 30);
    json_decref(body);
    if (!r.status)
        return unreachable(&r);
    int rc = EX_OK;
    if (r.status >= 300)
        rc = api_failed(&r);
    else if (as_json)
        print_json(r.body);
    else if (wait && r.status == 200)
        print_job(r.body);
    else
        printf("%s\n", str(r.body, "id"));
    const char *st = json_string_value(json_object_get(r.body, "state"));
    if (!rc && wait && st && (!strcmp(st, "discarded") || !strcmp(st, "cancelled")))
        rc = EX_FAILED;
    else if (!rc && wait && r.status == 202)
        rc = EX_TIMEOUT;
    json_decref(r.body);
    return rc;
}

static int job_one(args *a, const char *method, const char *suffix, const char *help)
{
    if (wants_help(a)) {
        printf("%s", help);
        return EX_OK;
    }
    const char *id = next(a);
    if (!id || next(a))
        return usage_error("one job ID is expected");
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs/%.64s%s", id, suffix);
    reply r = call(method, path, NULL, NULL, 30);
    if (!r.status)
        return unreachable(&r);
    int rc = r.status >= 300 ? api_failed(&r) : EX_OK;
    if (!rc && (as_json || !*suffix))
        print_job(r.body);
    else if (!rc)
        printf("%s %s\n", str(r.body, "id"), str(r.body, "state"));
    json_decref(r.body);
    return rc;
}

/* The rest of the line as "--name value" pairs, each of `names` (NULL
 * ended), appended to out as a query string "name=value&". EX_OK or a
 * usage error naming the bad option. */
static int query_options(args *a, const char *verb, const char *const *names, char *out,
                         size_t cap)
{
    size_t len = strlen(out);
    const char *opt;
    while ((opt = next(a))) {
        const char *v = next(a);
        bool ok = false;
        for (size_t i = 0; v && names[i] && !ok; i++)
            ok = !strcmp(opt, names[i]);
        if (!ok)
            return usage_error("%s: bad option %s", verb, opt);
        char *esc = curl_easy_escape(NULL, v, 0);
        int n = esc ? snprintf(out + len, cap - len, "%s=%s&", opt + 2, esc) : -1;
        curl_free(esc);
        if (n < 0 || (size_t)n >= cap - len)
            return usage_error("%s: the options are too long", verb);
        len += (size_t)n;
    }
    return EX_OK;
}

static int job_list(args *a)
{
    if (wants_help(a)) {
        printf("usage: outbox job list [--state S[,S...]] [--kind K] [--queue Q]\n"
               "         [--limit N] [--cursor C]\n  Jobs, newest first.\n");
        return EX_OK;
    }
    static const char *const names[] = {"--state", "--kind", "--queue", "--limit", "--cursor", NULL};
    char path[1024] = "/v1/jobs?";
    int qrc = query_options(a, "job list", names, path, sizeof path);
    if (qrc)
        return qrc;
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
            printf("more: outbox job list --cursor %s\n", cur);
    }
    json_decref(r.body);
    return EX_OK;
}

int wait_final(const char *path, const char *id, double limit, json_t **out)
{
    bool tty = isatty(1);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double spent = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        double left = limit < 0 ? 30 : limit - spent;
        if (limit >= 0 && left <= 0) {
            if (tty)
                printf("\n");
            fprintf(stderr, "outbox: %s is not final after %.0f s\n", id, limit);
            return EX_TIMEOUT;
        }
        char prefer[64];
        snprintf(prefer, sizeof prefer, "Prefer: wait=%.0f", left > 30 ? 30 : left < 1 ? 1 : left);
        reply r = call("GET", path, NULL, prefer, 60);
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
                printf("\r\033[K");
            *out = r.body;
            return EX_OK;
        }
        if (tty) { /* a progress line, rewritten in place */
            printf("\r\033[Kwaiting for %s: %s, attempt %lld, %.0f s", id, st,
                   json_integer_value(json_object_get(r.body, "attempt")), spent);
            fflush(stdout);
        }
        json_decref(r.body);
    }
}

static int job_wait(args *a)
{
    if (wants_help(a)) {
        printf("usage: outbox job wait ID [--timeout S]\n"
               "  Wait until the job is final. Exit 0 completed, 1 discarded or cancelled,\n"
               "  4 if S seconds pass first (default: wait for ever).\n");
        return EX_OK;
    }
    const char *id = next(a), *opt = next(a);
    double limit = -1;
    if (opt && (!strcmp(opt, "--timeout")) && a->i < a->argc)
        limit = atof(next(a));
    else if (opt)
        return usage_error("job wait: bad option %s", opt);
    if (!id)
        return usage_error("job wait: ID is required");
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs/%.64s", id);
    json_t *job;
    int rc = wait_final(path, id, limit, &job);
    if (rc)
        return rc;
    rc = !strcmp(str(job, "state"), "completed") ? EX_OK : EX_FAILED;
    print_job(job);
    json_decref(job);
    return rc;
}

static int health(args *a)
{
    if (wants_help(a)) {
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

/* events: server-sent events, printed as they come. */
typedef struct sse {
    buf line;
} sse;

static size_t on_events(char *d, size_t size, size_t nmemb, void *arg)
{
    sse *s = arg;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '\n') {
            char c = d[i];
            collect(&c, 1, 1, &s->line);
            continue;
        }
        if (s->line.n > 5 && !strncmp(s->line.p, "data:", 5)) {
            json_t *ev = json_loads(s->line.p + 5, 0, NULL);
            if (as_json)
                printf("%s\n", s->line.p + 5);
            else if (ev)
                printf("%s  %s  %-16s %-10s %-10s attempt %lld%s%s\n", str(ev, "at"), str(ev, "id"),
                       str(ev, "kind"), str(ev, "queue"), str(ev, "state"),
                       json_integer_value(json_object_get(ev, "attempt")),
                       json_object_get(ev, "error") ? "  " : "",
                       either(json_string_value(json_object_get(ev, "error")), ""));
            fflush(stdout);
            json_decref(ev);
        }
        s->line.n = 0;
        if (s->line.p)
            s->line.p[0] = '\0';
    }
    return n;
}

static int events(args *a)
{
    if (wants_help(a)) {
        printf("usage: outbox events [--id ID] [--kind K] [--queue Q]\n"
               "  Follow job state changes as outboxd commits them (until interrupted).\n");
        return EX_OK;
    }
    static const char *const names[] = {"--id", "--kind", "--queue", NULL};
    char url[2048];
    snprintf(url, sizeof url, "%s/v1/events?", base_url);
    int qrc = query_options(a, "events", names, url, sizeof url);
    if (qrc)
        return qrc;
    CURL *c = curl_easy_init();
    char err[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = base_headers("text/event-stream");
    sse s = {0};
    CURLcode cc = !c ? CURLE_OUT_OF_MEMORY : CURLE_OK;
    SET(CURLOPT_URL, url);
    SET(CURLOPT_HTTPHEADER, h);
    SET(CURLOPT_WRITEFUNCTION, on_events);
    SET(CURLOPT_WRITEDATA, &s);
    SET(CURLOPT_ERRORBUFFER, err);
    SET(CURLOPT_FAILONERROR, 1L);
    CURLcode rc = cc == CURLE_OK ? curl_easy_perform(c) : cc;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(s.line.p);
    if (rc == CURLE_OK)
        return EX_OK;
    fprintf(stderr, "outbox: events: %s\n", err[0] ? err : curl_easy_strerror(rc));
    return status ? EX_FAILED : EX_UNREACHABLE;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: outbox [--url URL] [--token TOKEN] [--json] VERB [ARGS]\n"
            "  The command-line client of outboxd.\n\n"
            "  job add KIND [options]      enqueue a job (outbox job add --help)\n"
            "  job get ID                  show a job: state, attempts, errors, result\n"
            "  job list [filters]          jobs, newest first\n"
            "  job wait ID [--timeout S]   wait until the job is final\n"
            "  job cancel ID               cancel a job\n"
            "  job retry ID                run a discarded, cancelled or scheduled job now\n"
            "  send [options]              send a mail (outbox send --help)\n"
            "  events [filters]            follow state changes\n"
            "  health                      is outboxd alive and ready?\n\n"
            "  --url URL      outboxd (env OUTBOX_URL; default http://127.0.0.1:8025)\n"
            "  --token TOKEN  bearer token (env OUTBOX_TOKEN)\n"
            "  --json         machine-readable output (anywhere on the line)\n"
            "Exit codes: 0 ok, 1 job failed or request refused, 2 usage, 3 unreachable, "
            "4 timeout.\n");
}

int main(int argc, char **argv)
{
    if (getenv("OUTBOX_URL"))
        base_url = getenv("OUTBOX_URL");
    token = getenv("OUTBOX_TOKEN");
    int kept = 1; /* --json may also follow the verb: "outbox job get ID --json" */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else
            argv[kept++] = argv[i];
    argc = kept;
    args a = {argc, argv, 1};
    for (; a.i < argc && argv[a.i][0] == '-'; a.i++) {
        const char *o = argv[a.i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return EX_OK;
        } else if (!strcmp(o, "--url") && a.i + 1 < argc)
            base_url = argv[++a.i];
        else if (!strcmp(o, "--token") && a.i + 1 < argc)
            token = argv[++a.i];
        else
            return usage_error("unknown option %s", o);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *verb = next(&a), *sub;
    int rc;
    if (!verb) {
        usage(stderr);
        rc = EX_USAGE;
    } else if (!strcmp(verb, "health"))
        rc = health(&a);
    else if (!strcmp(verb, "events"))
        rc = events(&a);
    else if (!strcmp(verb, "send"))
        rc = send_mail(&a);
    else if (strcmp(verb, "job") != 0)
        rc = usage_error("unknown verb %s", verb);
    else if (!(sub = next(&a)))
        rc = usage_error("job: add, get, list, wait, cancel or retry");
    else if (!strcmp(sub, "add"))
        rc = job_add(&a);
    else if (!strcmp(sub, "get"))
        rc = job_one(&a, "GET", "", "usage: outbox job get ID\n  Show a job.\n");
    else if (!strcmp(sub, "list"))
        rc = job_list(&a);
    else if (!strcmp(sub, "wait"))
        rc = job_wait(&a);
    else if (!strcmp(sub, "cancel"))
        rc = job_one(&a, "POST", "/cancel", "usage: outbox job cancel ID\n  Cancel a job.\n");
    else if (!strcmp(sub, "retry"))
        rc = job_one(&a, "POST", "/retry", "usage: outbox job retry ID\n  Run a job again now.\n");
    else
        rc = usage_error("job: unknown verb %s", sub);
    curl_global_cleanup();
    return rc;
}
