/*
 * schedules.c - `outbox schedule`: cron schedules (/v1/schedules).
 *
 *   outbox schedule list
 *   outbox schedule get NAME
 *   outbox schedule set NAME --cron EXPR --kind KIND [job options]
 *          [--timezone TZ] [--missed skip|latest] [--paused]
 *   outbox schedule delete NAME | pause NAME | resume NAME
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char schedule_help[] =
    "usage: outbox schedule list\n"
    "       outbox schedule get NAME\n"
    "       outbox schedule set NAME --cron EXPR --kind KIND [--timezone TZ]\n"
    "         [--missed skip|latest] [--paused] [--queue Q] [--priority N]\n"
    "         [--payload JSON | --payload-file FILE] [--max-attempts N] [--timeout S]\n"
    "         [--callback-url URL] [--rate-key K]\n"
    "       outbox schedule delete NAME | pause NAME | resume NAME\n"
    "  Cron schedules: each tick makes one job, once, on however many outboxd\n"
    "  share the store. EXPR has five fields (minute hour day month weekday) or\n"
    "  six with seconds first, or @hourly, @daily ...; TZ is an IANA zone\n"
    "  (default UTC). --missed: what ticks no node could make in time (after a\n"
    "  downtime) do: skip (default) makes none, latest one for the most recent.\n";

static const char *when(const json_t *s, const char *k)
{
    return either(json_string_value(json_object_get(s, k)), "-");
}

static void print_schedule(const json_t *s)
{
    const json_t *j = json_object_get(s, "job");
    printf("schedule    %s\ncron        %s (%s)\nmissed      %s\npaused      %s\n", str(s, "name"),
           str(s, "cron"), str(s, "timezone"), str(s, "missed"),
           json_is_true(json_object_get(s, "paused")) ? "yes" : "no");
    char *payload = json_dumps(json_object_get(j, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
    printf("job         %s on queue %s, priority %lld, payload %s\n", str(j, "kind"),
           str(j, "queue"), json_integer_value(json_object_get(j, "priority")),
           payload ? payload : "-");
    free(payload);
    printf("last run    %s (job %s)\n", when(s, "last_run_at"), when(s, "last_job_id"));
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(s, "next_runs"), i, t)
        printf("%s %s\n", i ? "           " : "next runs  ", json_string_value(t));
    if (json_array_size(json_object_get(s, "next_runs")) == 0)
        printf("next runs   -\n");
}

static int schedule_list(void)
{
    reply r;
    int rc = call_ok("GET", "/v1/schedules", NULL, NULL, 60, &r);
    if (rc)
        return rc;
    if (as_json) {
        print_json(r.body);
        json_decref(r.body);
        return EX_OK;
    }
    printf("%-20s %-18s %-16s %-16s %-6s %-24s %s\n", "SCHEDULE", "CRON", "TIMEZONE", "KIND",
           "PAUSED", "NEXT RUN", "LAST RUN");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(r.body, "schedules"), i, s)
        printf("%-20.64s %-18.40s %-16.40s %-16.64s %-6s %-24s %s\n", str(s, "name"),
               str(s, "cron"), str(s, "timezone"), str(json_object_get(s, "job"), "kind"),
               json_is_true(json_object_get(s, "paused")) ? "yes" : "no", when(s, "next_run_at"),
               when(s, "last_run_at"));
    json_decref(r.body);
    return EX_OK;
}

/* METHOD /v1/schedules/NAME[SUFFIX] (with body), printing the schedule. */
static void schedule_shown(const json_t *s, const char *name)
{
    if (s)
        print_schedule(s);
    else
        printf("schedule %s deleted\n", name);
}

static int schedule_call(const char *method, const char *name, const char *suffix,
                         const json_t *body)
{
    return call_item(method, "schedules", name, suffix, body, schedule_shown);
}

enum { S_CRON = 512, S_TZ, S_MISSED, S_PAUSED, S_KIND };

static int schedule_set(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cron", required_argument, NULL, S_CRON},
        {"timezone", required_argument, NULL, S_TZ},
        {"missed", required_argument, NULL, S_MISSED},
        {"paused", no_argument, NULL, S_PAUSED},
        {"kind", required_argument, NULL, S_KIND},
        {"queue", required_argument, NULL, A_QUEUE},
        {"priority", required_argument, NULL, A_PRIORITY},
        {"payload", required_argument, NULL, A_PAYLOAD},
        {"payload-file", required_argument, NULL, A_PAYLOAD_FILE},
        {"max-attempts", required_argument, NULL, A_MAX_ATTEMPTS},
        {"timeout", required_argument, NULL, A_TIMEOUT},
        {"callback-url", required_argument, NULL, A_CALLBACK},
        {"rate-key", required_argument, NULL, A_RATE_KEY},
        HELP_OPT, END_OPT};
    json_t *body = json_object(), *job = json_object();
    json_object_set(body, "job", job);
    int c, rc = EX_OK;
    opts_begin();
    while (!rc && (c = opts_next(argc, argv, "schedule set", opts)) != -1) {
        switch (c) {
        case '?': rc = EX_USAGE; break;
        case 'h':
            printf("%s", schedule_help);
            json_decref(job);
            json_decref(body);
            return EX_OK;
        case S_CRON: json_object_set_new(body, "cron", json_string(optarg)); break;
        case S_TZ: json_object_set_new(body, "timezone", json_string(optarg)); break;
        case S_PAUSED: json_object_set_new(body, "paused", json_true()); break;
        case S_KIND: json_object_set_new(job, "kind", json_string(optarg)); break;
        case S_MISSED:
            if (strcmp(optarg, "skip") && strcmp(optarg, "latest"))
                rc = usage_error("schedule set: --missed is skip or latest");
            else
                json_object_set_new(body, "missed", json_string(optarg));
            break;
        default: rc = job_option("schedule set", job, c, optarg, NULL, NULL); break;
        }
    }
    const char *name = NULL;
    if (!rc)
        rc = one_operand(argc, argv, "schedule set", "a schedule NAME", &name);
    if (!rc && (!json_object_get(body, "cron") || !json_object_get(job, "kind")))
        rc = usage_error("schedule set: --cron and --kind are required");
    if (!rc)
        rc = schedule_call("PUT", name, "", body);
    json_decref(job);
    json_decref(body);
    return rc;
}

/* get, delete, pause, resume: a NAME and no option. */
static int schedule_one(int argc, char **argv, const char *what, const char *method,
                        const char *suffix)
{
    const char *name;
    int rc = only_operand(argc, argv, what, schedule_help, "a schedule NAME", &name);
    return rc || !name ? rc : schedule_call(method, name, suffix, NULL);
}

int schedule_verb(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("schedule: list, get, set, delete, pause or resume");
    const char *sub = argv[1];
    argc--, argv++;
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        printf("%s", schedule_help);
        return EX_OK;
    }
    if (!strcmp(sub, "list")) {
        if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("%s", schedule_help);
            return EX_OK;
        }
        return argc > 1 ? usage_error("schedule list: takes nothing (\"%s\")", argv[1])
                        : schedule_list();
    }
    if (!strcmp(sub, "set"))
        return schedule_set(argc, argv);
    if (!strcmp(sub, "get"))
        return schedule_one(argc, argv, "schedule get", "GET", "");
    if (!strcmp(sub, "delete"))
        return schedule_one(argc, argv, "schedule delete", "DELETE", "");
    if (!strcmp(sub, "pause"))
        return schedule_one(argc, argv, "schedule pause", "POST", "/pause");
    if (!strcmp(sub, "resume"))
        return schedule_one(argc, argv, "schedule resume", "POST", "/resume");
    return usage_error("schedule: unknown verb %s (list, get, set, delete, pause, resume)", sub);
}
