/*
 * suppressions.c - `outbox suppression`: the mail suppression list
 * (/v1/suppressions).
 *
 *   outbox suppression list [--address PART] [--reason R] [--limit N]
 *          [--cursor C] [--all]
 *   outbox suppression get ADDRESS
 *   outbox suppression add ADDRESS [--reason R] [--note TEXT]
 *   outbox suppression remove ADDRESS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char suppression_help[] =
    "usage: outbox suppression list [--address PART] [--reason R] [--limit N]\n"
    "         [--cursor C] [--all]\n"
    "       outbox suppression get ADDRESS\n"
    "       outbox suppression add ADDRESS [--reason R] [--note TEXT]\n"
    "       outbox suppression remove ADDRESS\n"
    "  Addresses outbox does not send to. A hard bounce (a 5xx about the\n"
    "  address) adds one by itself; add one by hand for an unsubscribe or a\n"
    "  complaint; remove one to send to it again. R is hard_bounce,\n"
    "  spam_complaint, unsubscribe or manual (add's default). Addresses are\n"
    "  compared with the domain in lower case and IDN in punycode.\n"
    "  list: --address keeps those containing PART, a page of --limit (100) at\n"
    "  a time; --all follows every page.\n";

static void print_entry(const json_t *s)
{
    printf("address     %s\nreason      %s\nsince       %s\nupdated     %s\n", str(s, "address"),
           str(s, "reason"), str(s, "created_at"), str(s, "updated_at"));
    if (json_object_get(s, "code"))
        printf("reply       %lld %s %s\n", json_integer_value(json_object_get(s, "code")),
               either(json_string_value(json_object_get(s, "enhanced")), ""), str(s, "reply"));
    if (json_object_get(s, "message_id"))
        printf("message     %s\n", str(s, "message_id"));
    if (json_object_get(s, "note"))
        printf("note        %s\n", str(s, "note"));
}

enum { P_ADDRESS = 512, P_REASON, P_LIMIT, P_CURSOR, P_ALL, P_NOTE };

/* One page of the listing (query q, cursor appended); *next gets its
 * next_cursor (malloc'd) or NULL. */
static int list_page(const char *q, const char *cursor, bool header, char **next)
{
    char path[2048], query[1800];
    snprintf(query, sizeof query, "%s", q);
    if (cursor && !query_add(query, sizeof query, "cursor", cursor))
        return usage_error("suppression list: the cursor is too long");
    snprintf(path, sizeof path, "/v1/suppressions?%s", query);
    reply r;
    int rc = call_ok("GET", path, NULL, NULL, 60, &r);
    if (rc)
        return rc;
    const char *nc = json_string_value(json_object_get(r.body, "next_cursor"));
    *next = nc ? strdup(nc) : NULL;
    if (as_json) {
        print_json(r.body);
    } else {
        if (header)
            printf("%-40s %-15s %-24s %s\n", "ADDRESS", "REASON", "SINCE", "REPLY OR NOTE");
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(r.body, "suppressions"), i, s) {
            char why[600];
            if (json_object_get(s, "code"))
                snprintf(why, sizeof why, "%lld %s", json_integer_value(json_object_get(s, "code")),
                         str(s, "reply"));
            else
                snprintf(why, sizeof why, "%s", json_object_get(s, "note") ? str(s, "note") : "-");
            printf("%-40.254s %-15s %-24s %.200s\n", str(s, "address"), str(s, "reason"),
                   str(s, "created_at"), why);
        }
    }
    json_decref(r.body);
    return EX_OK;
}

static int suppression_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"address", required_argument, NULL, P_ADDRESS}, {"reason", required_argument, NULL, P_REASON},
        {"limit", required_argument, NULL, P_LIMIT},     {"cursor", required_argument, NULL, P_CURSOR},
        {"all", no_argument, NULL, P_ALL},               HELP_OPT, END_OPT};
    char q[1024] = "";
    const char *cursor = NULL;
    bool all = false;
    long limit;
    int c, rc = EX_OK;
    opts_begin();
    while (!rc && (c = opts_next(argc, argv, "suppression list", opts)) != -1) {
        switch (c) {
        case '?': return EX_USAGE;
        case 'h': printf("%s", suppression_help); return EX_OK;
        case P_ADDRESS: rc = query_add(q, sizeof q, "address", optarg) ? EX_OK
                                : usage_error("suppression list: --address is too long"); break;
        case P_REASON: rc = query_add(q, sizeof q, "reason", optarg) ? EX_OK
                               : usage_error("suppression list: --reason is too long"); break;
        case P_LIMIT:
            if (!(rc = opt_long("suppression list", "limit", optarg, 1, 1000, &limit)))
                query_add(q, sizeof q, "limit", optarg);
            break;
        case P_CURSOR: cursor = optarg; break;
        case P_ALL: all = true; break;
        }
    }
    if (!rc && optind < argc)
        rc = usage_error("suppression list: takes no operand (\"%s\")", argv[optind]);
    char *owned = NULL; /* the cursor of the page before, when it was ours */
    for (bool first = true; !rc; first = false) {
        char *next = NULL;
        rc = list_page(q, cursor, first, &next);
        free(owned);
        cursor = owned = next;
        if (!next || !all)
            break;
    }
    if (!rc && owned && !all && !as_json)
        fprintf(stderr, "(more: outbox suppression list --cursor %s, or --all)\n", owned);
    free(owned);
    return rc;
}

static void entry_shown(const json_t *s, const char *address)
{
    if (s)
        print_entry(s);
    else
        printf("%s removed from the suppression list: mail goes to it again\n", address);
}

/* METHOD /v1/suppressions/ADDRESS (with body), printing the entry. */
static int suppression_call(const char *method, const char *address, const json_t *body)
{
    return call_item(method, "suppressions", address, "", body, entry_shown);
}

static int suppression_add(int argc, char **argv)
{
    static const struct option opts[] = {{"reason", required_argument, NULL, P_REASON},
                                         {"note", required_argument, NULL, P_NOTE}, HELP_OPT,
                                         END_OPT};
    json_t *body = json_object();
    int c, rc = EX_OK;
    opts_begin();
    while (!rc && (c = opts_next(argc, argv, "suppression add", opts)) != -1) {
        switch (c) {
        case '?': rc = EX_USAGE; break;
        case 'h':
            printf("%s", suppression_help);
            json_decref(body);
            return EX_OK;
        case P_REASON: json_object_set_new(body, "reason", json_string(optarg)); break;
        case P_NOTE: json_object_set_new(body, "note", json_string(optarg)); break;
        }
    }
    const char *address = NULL;
    if (!rc)
        rc = one_operand(argc, argv, "suppression add", "an ADDRESS", &address);
    if (!rc)
        rc = suppression_call("PUT", address, body);
    json_decref(body);
    return rc;
}

/* get, remove: an ADDRESS and no option. */
static int suppression_one(int argc, char **argv, const char *what, const char *method)
{
    const char *address;
    int rc = only_operand(argc, argv, what, suppression_help, "an ADDRESS", &address);
    return rc || !address ? rc : suppression_call(method, address, NULL);
}

int suppression_verb(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("suppression: list, get, add or remove");
    const char *sub = argv[1];
    argc--, argv++;
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        printf("%s", suppression_help);
        return EX_OK;
    }
    if (!strcmp(sub, "list"))
        return suppression_list(argc, argv);
    if (!strcmp(sub, "add"))
        return suppression_add(argc, argv);
    if (!strcmp(sub, "get"))
        return suppression_one(argc, argv, "suppression get", "GET");
    if (!strcmp(sub, "remove"))
        return suppression_one(argc, argv, "suppression remove", "DELETE");
    return usage_error("suppression: unknown verb %s (list, get, add, remove)", sub);
}
