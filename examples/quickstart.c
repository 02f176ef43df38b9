/*
 * quickstart.c - liboutbox's job engine, embedded: the Q&A's "send the mail
 * in the background" done right, with no HTTP yet.
 *
 * It opens a store (sqlite:./outbox-example.db unless told otherwise),
 * registers a "welcome.mail" job kind whose handler pretends to talk to a
 * flaky mail relay, enqueues a handful of jobs that show each part of the
 * life cycle — a plain one, one that fails twice before it goes through,
 * one the relay rejects for good, one scheduled a second from now, a
 * duplicate caught by its unique key, and one cancelled before it runs —
 * then works them with a pool of threads and prints every state change as
 * the engine commits it. Exit status 0 when every job ended as expected.
 *
 *   quickstart [--store URL] [--help]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/jobs.h"

/* The handler: "send" a mail. The payload is "to-address,behaviour". */
static void send_welcome(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *job = ob_ctx_job(ctx);
    char to[128];
    const char *comma = strchr((const char *)job->payload, ',');
    const char *how = comma ? comma + 1 : "ok";
    snprintf(to, sizeof to, "%.*s", comma ? (int)(comma - (const char *)job->payload) : 127,
             (const char *)job->payload);

    if (strcmp(how, "flaky") == 0 && job->attempt < 3) {
        ob_ctx_retry(ctx, -1, "421 4.7.0 relay busy, try again later");
        return;
    }
    if (strcmp(how, "reject") == 0) {
        ob_ctx_discard(ctx, "550 5.1.1 recipient address rejected: user unknown");
        return;
    }
    char result[256];
    snprintf(result, sizeof result, "{\"to\":\"%s\",\"smtp\":\"250 2.0.0 queued\"}", to);
    ob_ctx_done(ctx, result);
}

static void print_event(void *arg, const ob_event *ev)
{
    (void)arg;
    char id[OB_ID_STRLEN + 1], at[32];
    printf("%s  %s  %-10s attempt %d%s%s\n", ob_time_format(ev->at_ms, at) + 11,
           ob_id_format(&ev->id, id), ob_state_name(ev->state), ev->attempt,
           ev->error ? "  error: " : "", ev->error ? ev->error : "");
    fflush(stdout);
}

static int enqueue(ob_engine *e, const char *payload, int64_t run_at, const char *key, ob_id *id)
{
    ob_new_job j = {.kind = "welcome.mail", .queue = "mail", .payload = payload,
                    .payload_len = strlen(payload) + 1, .run_at_ms = run_at, .unique_key = key};
    bool existed = false;
    int rc = ob_enqueue(e, &j, id, &existed);
    char s[OB_ID_STRLEN + 1];
    if (rc)
        fprintf(stderr, "enqueue %s: %s\n", payload, ob_strerror(rc));
    else
        printf("enqueued %-28s -> %s%s (durable)\n", payload, ob_id_format(id, s),
               existed ? " [existing job: unique key]" : "");
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: quickstart [--store URL]\n"
               "  Enqueue and work a few jobs that show the outbox job life cycle.\n"
               "  --store URL   where jobs live (default sqlite:./outbox-example.db)\n");
}

int main(int argc, char **argv)
{
    const char *url = "sqlite:./outbox-example.db";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }

    ob_engine_opts opts;
    ob_engine_opts_init(&opts);
    opts.kind_defaults.backoff.base_ms = 200; /* quick retries for the demo */
    opts.kind_defaults.max_attempts = 5;
    ob_engine *e;
    int rc = ob_engine_open(url, &opts, &e);
    if (rc) {
        fprintf(stderr, "cannot open %s: %s\n", url, ob_strerror(rc));
        return 1;
    }
    printf("store: %s\n", url);
    ob_subscription *sub;
    ob_engine_register(e, "welcome.mail", send_welcome, NULL, NULL);
    ob_engine_subscribe(e, print_event, NULL, &sub);

    ob_id plain, flaky, rejected, later, dup, cancelled;
    int64_t now = ob_now_ms();
    if (enqueue(e, "ann@example.org,ok", 0, NULL, &plain) ||
        enqueue(e, "bob@example.org,flaky", 0, NULL, &flaky) ||
        enqueue(e, "nobody@example.org,reject", 0, NULL, &rejected) ||
        enqueue(e, "cy@example.org,ok", now + 1000, NULL, &later) ||
        enqueue(e, "cy@example.org,ok", now + 1000, NULL, &later) || /* no key: a 2nd job */
        enqueue(e, "dee@example.org,ok", 0, "welcome:dee", &dup) ||
        enqueue(e, "dee@example.org,ok", 0, "welcome:dee", &dup) || /* same key: same job */
        enqueue(e, "eve@example.org,ok", now + 60000, NULL, &cancelled)) {
        ob_engine_close(e);
        return 1;
    }
    ob_state st;
    ob_job_cancel(e, &cancelled, &st);

    ob_pool_opts po;
    ob_pool_opts_init(&po);
    po.workers = 2;
    ob_pool *pool;
    if ((rc = ob_pool_start(e, &po, &pool))) {
        fprintf(stderr, "cannot start workers: %s\n", ob_strerror(rc));
        ob_engine_close(e);
        return 1;
    }

    struct { const char *what; ob_id *id; ob_state want; } expect[] = {
        {"plain mail", &plain, OB_COMPLETED},
        {"flaky relay, third attempt", &flaky, OB_COMPLETED},
        {"rejected recipient", &rejected, OB_DISCARDED},
        {"scheduled a second later", &later, OB_COMPLETED},
        {"deduplicated by unique key", &dup, OB_COMPLETED},
        {"cancelled before it ran", &cancelled, OB_CANCELLED},
    };
    int bad = 0;
    printf("\n%-30s %-10s %-8s %s\n", "job", "state", "attempts", "result or last error");
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++) {
        ob_job *j = NULL;
        rc = ob_job_wait(e, expect[i].id, 30000, &j);
        const char *detail = !j ? ob_strerror(rc)
                             : j->result ? j->result
                             : j->nerrors ? j->errors[j->nerrors - 1].message
                                          : "";
        printf("%-30s %-10s %-8d %s\n", expect[i].what, j ? ob_state_name(j->state) : "?",
               j ? j->attempt : 0, detail);
        bad += !j || j->state != expect[i].want;
        ob_job_free(j);
    }
    ob_pool_stop(pool, 5000);
    ob_engine_unsubscribe(e, sub);
    ob_engine_close(e);
    printf("\n%s\n", bad ? "some jobs did not end as expected" : "every job ended as expected");
    return bad ? 1 : 0;
}
