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
 *     queue list|get|pause|resume|set   queues and their settings (queues.c)
 *     schedule list|get|set|delete|pause|resume   cron schedules (schedules.c)
 *     suppression list|get|add|remove             the mail suppression list (suppressions.c)
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

/* ---- job add ---- */

static const char job_add_help[] =
    "usage: outbox job add KIND [--queue Q] [--priority N] [--payload JSON |\n"
    "         --payload-file FILE] [--delay S | --run-at TIME] [--max-attempts N]\n"
    "         [--timeout S] [--unique-key K] [--idempotency-key K]\n"
    "         [--callback-url URL] [--rate-key K] [--wait S]\n"
    "  Enqueue a job; prints its id once outboxd stored it. --wait S holds the\n"
    "  answer until the job is final (exit 0 completed, 1 failed, 4 still running\n"
    "  after S).\n";

int job_option(const char *verb, json_t *body, int c, const char *v, const char **idem,
               double *wait)
{
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
    case A_RATE_KEY: json_object_set_new(body, "rate_key", json_string(v)); break;
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
        {"rate-key", required_argument, NULL, A_RATE_KEY},
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
        rc = c == '?' ? EX_USAGE : job_option("job add", body, c, optarg, &idem, &wait);
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
    reply r;
    rc = call_ok("POST", "/v1/jobs", body, headers, (long)wait + 30, &r);
    json_decref(body);
    if (rc)
        return rc;
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
    if (as_json)
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
    const char *id;
    int rc = only_operand(argc, argv, verb, help, "an ID", &id);
    if (rc || !id)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "%s%.64s%s", prefix, id, suffix);
    reply r;
    if ((rc = call_ok(method, path, NULL, NULL, 30, &r)))
        return rc;
    if (!strcmp(prefix, "/v1/messages/"))
        print_message(r.body);
    else if (as_json || !*suffix)
        print_job(r.body);
    else
        printf("%s %s\n", str(r.body, "id"), str(r.body, "state"));
    json_decref(r.body);
    return rc;
}

/* ---- job retry, cancel: many at once ---- */

/* Whether a person at the terminal agrees to change every job. */
static bool confirmed(const char *verb)
{
    if (!isatty(0) || !isatty(2))
        return false;
    fprintf(stderr, "outbox: %s every job, of every state, kind and queue? [y/N] ", verb);
    char line[16];
    return fgets(line, sizeof line, stdin) && (line[0] == 'y' || line[0] == 'Y');
}

/* outbox job retry|cancel --state S --kind K --queue Q [--limit N] [--all]:
 * page after page of POST /v1/jobs/retry|cancel until the cursor ends. */
static int job_many(int argc, char **argv, const char *verb, const char *path)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'}, {"kind", required_argument, NULL, 'k'},
        {"queue", required_argument, NULL, 'q'}, {"limit", required_argument, NULL, 'l'},
        {"all", no_argument, NULL, 'a'},         HELP_OPT, END_OPT};
    char what[32];
    snprintf(what, sizeof what, "job %s", verb);
    json_t *filter = json_object();
    bool all = false;
    long limit = 1000;
    int c;
    opts_begin();
    while ((c = opts_next(argc, argv, what, opts)) != -1) {
        if (c == '?' || (c == 'l' && opt_long(what, "limit", optarg, 1, 1000, &limit))) {
            json_decref(filter);
            return EX_USAGE;
        }
        if (c == 'h') {
            printf("usage: outbox job %s ID\n"
                   "       outbox job %s [--state S[,S...]] [--kind K] [--queue Q] [--limit N] "
                   "[--all]\n  %s one job, or every job the filter names (newest first, N a "
                   "call; --all: no filter).\n",
                   verb, verb, !strcmp(verb, "retry") ? "Run again" : "Cancel");
            json_decref(filter);
            return EX_OK;
        }
        if (c == 'a')
            all = true;
        else if (c != 'l')
            json_object_set_new(filter, c == 's' ? "state" : c == 'k' ? "kind" : "queue",
                                json_string(optarg));
    }
    if (optind < argc) {
        json_decref(filter);
        return usage_error("%s: give one ID, or options (\"%s\")", what, argv[optind]);
    }
    if (json_object_size(filter) == 0 && !all && !confirmed(verb)) {
        json_decref(filter);
        return usage_error("%s: give an ID or a filter (--state, --kind, --queue), or --all",
                           what);
    }
    json_object_set_new(filter, "limit", json_integer(limit));
    bool tty = isatty(2) && !as_json;
    long long matched = 0, changed = 0;
    int rc = EX_OK;
    for (;;) {
        reply r;
        if ((rc = call_ok("POST", path, filter, NULL, 120, &r)))
            break;
        matched += json_integer_value(json_object_get(r.body, "matched"));
        changed += json_integer_value(json_object_get(r.body, "count"));
        json_t *next = json_object_get(r.body, "next_cursor");
        bool more = json_is_string(next);
        json_object_set(filter, "cursor", more ? next : json_null());
        json_decref(r.body);
        if (tty && more)
            fprintf(stderr, "\r\033[K%s: %lld of %lld jobs so far", what, changed, matched);
        if (!more)
            break;
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    json_decref(filter);
    if (rc)
        return rc;
    if (as_json)
        printf("{\"matched\":%lld,\"count\":%lld}\n", matched, changed);
    else
        printf("%s: %lld job%s changed (%lld matched; the others' state did not allow it)\n",
               what, changed, changed == 1 ? "" : "s", matched);
    return EX_OK;
}

/* ---- job list ---- */

/* outbox job list [filters]: GET /v1/jobs, one page, and the command for
 * the next. */
static int job_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'}, {"kind", required_argument, NULL, 'k'},
        {"queue", required_argument, NULL, 'q'}, {"limit", required_argument, NULL, 'l'},
        {"cursor", required_argument, NULL, 'c'}, {"search", required_argument, NULL, 'S'},
        {"after", required_argument, NULL, 'a'}, {"before", required_argument, NULL, 'b'},
        HELP_OPT, END_OPT};
    char path[1024] = "/v1/jobs?", again[1024] = "outbox job list";
    int c;
    long n;
    opts_begin();
    while ((c = opts_next(argc, argv, "job list", opts)) != -1) {
        if (c == '?')
            return EX_USAGE;
        if (c == 'h') {
            printf("usage: outbox job list [--state S[,S...]] [--kind K] [--queue Q]\n"
                   "         [--search TEXT] [--after TIME] [--before TIME] [--limit N]\n"
                   "         [--cursor C]\n"
                   "  Jobs, newest first. --search: an id, a unique key, or a term a job\n"
                   "  carries (a message's recipient or Message-ID); --after, --before:\n"
                   "  created in that range (RFC 3339, e.g. 2026-12-07T00:00:00Z).\n");
            return EX_OK;
        }
        const char *name = c == 's' ? "state" : c == 'k' ? "kind" : c == 'q' ? "queue"
                         : c == 'l' ? "limit" : c == 'S' ? "search" : c == 'a' ? "created_after"
                         : c == 'b' ? "created_before" : "cursor";
        if (c == 'l' && opt_long("job list", "limit", optarg, 1, 1000, &n))
            return EX_USAGE;
        if (!query_add(path, sizeof path, name, optarg))
            return usage_error("job list: the options are too long");
        const struct option *o = opts;
        while (o->name && o->val != c)
            o++;
        if (c != 'c') /* the next page keeps the filters and the limit */
            snprintf(again + strlen(again), sizeof again - strlen(again), " --%s '%s'", o->name,
                     optarg);
    }
    if (optind < argc)
        return usage_error("job list: takes no operand (\"%s\")", argv[optind]);
    reply r;
    int rc = call_ok("GET", path, NULL, NULL, 30, &r);
    if (rc)
        return rc;
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
    "  queue list|get|pause|resume|set  queues: jobs, pause, limits (outbox queue --help)\n"
    "  schedule list|get|set|delete|pause|resume  cron schedules (outbox schedule --help)\n"
    "  suppression list|get|add|remove  addresses mail is not sent to (outbox suppression --help)\n"
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
    if (!strcmp(v, "queue"))
        return queue_verb(2, again);
    if (!strcmp(v, "schedule"))
        return schedule_verb(2, again);
    if (!strcmp(v, "suppression"))
        return suppression_verb(2, again);
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
    bool one = argc >= 2 && argv[1][0] != '-'; /* an ID, else a filter */
    if (!strcmp(sub, "cancel"))
        return one ? one_job(argc, argv, "job cancel", "POST", "/v1/jobs/", "/cancel",
                             "usage: outbox job cancel ID\n  Cancel a job.\n")
                   : job_many(argc, argv, "cancel", "/v1/jobs/cancel");
    if (!strcmp(sub, "retry"))
        return one ? one_job(argc, argv, "job retry", "POST", "/v1/jobs/", "/retry",
                             "usage: outbox job retry ID\n  Run a job again now.\n")
                   : job_many(argc, argv, "retry", "/v1/jobs/retry");
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
    else if (!strcmp(verb, "queue"))
        rc = queue_verb(argc, argv);
    else if (!strcmp(verb, "schedule"))
        rc = schedule_verb(argc, argv);
    else if (!strcmp(verb, "suppression"))
        rc = suppression_verb(argc, argv);
    else if (!strcmp(verb, "help"))
        rc = help_verb(argc, argv);
    else
        rc = usage_error("unknown verb %s", verb);
    curl_global_cleanup();
    return rc;
}
