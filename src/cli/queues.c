/*
 * queues.c - `outbox queue`: see every queue, pause and resume one, cap
 * its concurrency and limit its rate (GET /v1/queues, PATCH
 * /v1/queues/NAME).
 *
 *   outbox queue list
 *   outbox queue get NAME
 *   outbox queue pause NAME | resume NAME
 *   outbox queue set NAME [--concurrency N|none] [--rate N/PERIOD|none]
 *                         [--key-rate N/PERIOD|none]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char queue_help[] =
    "usage: outbox queue list\n"
    "       outbox queue get NAME\n"
    "       outbox queue pause NAME | resume NAME\n"
    "       outbox queue set NAME [--concurrency N|none] [--rate N/PERIOD|none]\n"
    "                             [--key-rate N/PERIOD|none]\n"
    "  Queues: their jobs by state, and their settings, which every outboxd\n"
    "  sharing the store follows. A paused queue takes jobs and starts none;\n"
    "  --concurrency caps the jobs running at once, --rate the starts per\n"
    "  PERIOD (seconds, or with s, m or h: 10/1s, 600/1m), --key-rate the\n"
    "  starts per PERIOD of each rate key (destination) apart; none clears one.\n";

static long long count(const json_t *q, const char *state)
{
    return json_integer_value(json_object_get(json_object_get(q, "counts"), state));
}

/* "N/PERIOD" of a queue's rate (`which`: "rate" or "key_rate"), or "-". */
static const char *rate_text(const json_t *q, const char *which, char *b, size_t n)
{
    const json_t *r = json_object_get(q, which);
    if (!json_is_object(r))
        return "-";
    snprintf(b, n, "%lld/%gs", json_integer_value(json_object_get(r, "limit")),
             json_number_value(json_object_get(r, "period")));
    return b;
}

static const char *conc_text(const json_t *q, char *b, size_t n)
{
    const json_t *c = json_object_get(q, "concurrency");
    if (!json_is_integer(c))
        return "-";
    snprintf(b, n, "%lld", json_integer_value(c));
    return b;
}

static const char *age_text(const json_t *q, char *b, size_t n)
{
    const json_t *a = json_object_get(q, "oldest_due_age");
    if (!json_is_number(a))
        return "-";
    snprintf(b, n, "%.1fs", json_number_value(a));
    return b;
}

static void print_queue(const json_t *q)
{
    char r[48], c[24], a[32];
    printf("queue       %s\npaused      %s\nconcurrency %s\nrate        %s\n", str(q, "name"),
           json_is_true(json_object_get(q, "paused")) ? "yes" : "no", conc_text(q, c, sizeof c),
           rate_text(q, "rate", r, sizeof r));
    printf("jobs        %lld available, %lld running, %lld scheduled, %lld retryable,\n"
           "            %lld completed, %lld discarded, %lld cancelled\n",
           count(q, "available"), count(q, "running"), count(q, "scheduled"),
           count(q, "retryable"), count(q, "completed"), count(q, "discarded"),
           count(q, "cancelled"));
    char kr[48];
    printf("key rate    %s\n", rate_text(q, "key_rate", kr, sizeof kr));
    printf("oldest due  %s\nchanged     %s\n", age_text(q, a, sizeof a),
           either(json_string_value(json_object_get(q, "updated_at")), "never"));
    const char *held = json_string_value(json_object_get(q, "held_until"));
    if (held)
        printf("held        the whole queue, until %s\n", held);
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(q, "held_keys"), i, h)
        printf("held        %s, until %s\n", str(h, "key"), str(h, "until"));
}

static int queue_list(void)
{
    reply r;
    int rc = call_ok("GET", "/v1/queues", NULL, NULL, 60, &r);
    if (rc)
        return rc;
    if (as_json) {
        print_json(r.body);
        json_decref(r.body);
        return EX_OK;
    }
    printf("%-20s %-6s %6s %12s %9s %8s %9s %9s %9s\n", "QUEUE", "PAUSED", "CONC", "RATE",
           "AVAILABLE", "RUNNING", "RETRYABLE", "DISCARDED", "OLDEST");
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(r.body, "queues"), i, q) {
        char rb[48], cb[24], ab[32];
        printf("%-20.64s %-6s %6s %12s %9lld %8lld %9lld %9lld %9s\n", str(q, "name"),
               json_is_true(json_object_get(q, "paused")) ? "yes" : "no",
               conc_text(q, cb, sizeof cb), rate_text(q, "rate", rb, sizeof rb), count(q, "available"),
               count(q, "running"), count(q, "retryable"), count(q, "discarded"),
               age_text(q, ab, sizeof ab));
    }
    json_decref(r.body);
    return EX_OK;
}

/* GET (body NULL) or PATCH one queue, and print it. */
static void queue_shown(const json_t *q, const char *name)
{
    (void)name;
    if (q)
        print_queue(q);
}

static int queue_call(const char *name, const json_t *body)
{
    return call_item(body ? "PATCH" : "GET", "queues", name, "", body, queue_shown);
}

/* "N/PERIOD" (PERIOD seconds, or a number with s, m or h) or "none". */
static int parse_rate(const char *opt, const char *v, json_t **out)
{
    if (!strcmp(v, "none")) {
        *out = json_null();
        return EX_OK;
    }
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '/' || n < 1 || n > 1000000)
        return usage_error("queue set: --%s %s: N/PERIOD, N from 1 to 1000000 (e.g. 10/1s)", opt,
                           v);
    const char *p = end + 1;
    double s = strtod(p, &end);
    double unit = !strcmp(end, "") || !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60
                : !strcmp(end, "h")                     ? 3600
                                                        : 0;
    if (end == p && *end && unit) /* "10/s": one of the unit */
        s = 1;
    if (!unit || !(s > 0) || s * unit > 86400)
        return usage_error("queue set: --%s %s: PERIOD is seconds, or a number with s, m or h, "
                           "up to a day", opt, v);
    *out = json_pack("{s:i, s:f}", "limit", (json_int_t)n, "period", s * unit);
    return EX_OK;
}

static int queue_set(int argc, char **argv)
{
    static const struct option opts[] = {{"concurrency", required_argument, NULL, 'c'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"key-rate", required_argument, NULL, 'k'}, HELP_OPT,
                                         END_OPT};
    json_t *body = json_object();
    int c, rc = EX_OK;
    opts_begin();
    while (!rc && (c = opts_next(argc, argv, "queue set", opts)) != -1) {
        long n;
        json_t *v = NULL;
        if (c == '?') {
            rc = EX_USAGE;
        } else if (c == 'h') {
            printf("%s", queue_help);
            json_decref(body);
            return EX_OK;
        } else if (c == 'c' && !strcmp(optarg, "none")) {
            json_object_set_new(body, "concurrency", json_null());
        } else if (c == 'c') {
            if (!(rc = opt_long("queue set", "concurrency", optarg, 1, 100000, &n)))
                json_object_set_new(body, "concurrency", json_integer(n));
        } else if (!(rc = parse_rate(c == 'r' ? "rate" : "key-rate", optarg, &v))) {
            json_object_set_new(body, c == 'r' ? "rate" : "key_rate", v);
        }
    }
    const char *name = NULL;
    if (!rc)
        rc = one_operand(argc, argv, "queue set", "a queue NAME", &name);
    if (!rc && json_object_size(body) == 0)
        rc = usage_error("queue set: give --concurrency, --rate or --key-rate");
    if (!rc)
        rc = queue_call(name, body);
    json_decref(body);
    return rc;
}

/* get, pause, resume: a NAME and no option. */
static int queue_one(int argc, char **argv, const char *what, const json_t *body)
{
    const char *name;
    int rc = only_operand(argc, argv, what, queue_help, "a queue NAME", &name);
    return rc || !name ? rc : queue_call(name, body);
}

int queue_verb(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("queue: list, get, pause, resume or set");
    const char *sub = argv[1];
    argc--, argv++;
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        printf("%s", queue_help);
        return EX_OK;
    }
    if (!strcmp(sub, "list")) {
        if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("%s", queue_help);
            return EX_OK;
        }
        if (argc > 1)
            return usage_error("queue list: takes nothing (\"%s\")", argv[1]);
        return queue_list();
    }
    if (!strcmp(sub, "get"))
        return queue_one(argc, argv, "queue get", NULL);
    if (!strcmp(sub, "pause") || !strcmp(sub, "resume")) {
        json_t *b = json_pack("{s:b}", "paused", !strcmp(sub, "pause"));
        int rc = queue_one(argc, argv, !strcmp(sub, "pause") ? "queue pause" : "queue resume", b);
        json_decref(b);
        return rc;
    }
    if (!strcmp(sub, "set"))
        return queue_set(argc, argv);
    return usage_error("queue: unknown verb %s (list, get, pause, resume, set)", sub);
}
