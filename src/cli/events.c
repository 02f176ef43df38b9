/*
 * events.c - `outbox events`: job state changes as outboxd commits them
 * (GET /v1/events, server-sent events), printed as they come. When the
 * connection drops it reconnects with backoff and resumes after the last
 * event seen (Last-Event-ID), until interrupted; --once stops instead. An
 * error answer is shown as the API gave it.
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
        return s->error.n < 65536 ? cli_collect(d, size, nmemb, &s->error) : 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\n') {
            sse_line(s);
        } else if (d[i] != '\r') {
            char ch = d[i];
            cli_collect(&ch, 1, 1, &s->line);
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

int events(int argc, char **argv)
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
