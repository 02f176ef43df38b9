/*
 * seed_handler.c - the two handlers of the Q&A this project grew from
 * (../shared/seed/question-and-answer.txt), done right with liboutbox.
 *
 * The Go code started `go sendMail()` and answered "Mail will be delivered
 * shortly..": the goroutine shared the request with a handler that had
 * already returned, the mail was lost if the process died, and the client
 * heard "success" whether or not anything happened. Here:
 *
 *   POST /mail {"to","subject","text"}
 *       copies what it needs out of the request into a job payload,
 *       enqueues it without blocking, suspends the response, and answers
 *       202 {"id","status_url"} only once the job is on disk — or 503 if it
 *       could not be stored. A worker "sends" the mail (appends it to
 *       mail.log) and records the outcome.
 *   GET /jobs/{id}
 *       did it happen? The job's state, attempts, errors and result.
 *   POST /closure?foo=N
 *       the second handler: a value captured at enqueue (a copy), not a
 *       reference to the handler's variable, which changes afterwards.
 *
 *   seed_handler [--listen HOST:PORT] [--store URL] [--help]
 *
 * It prints "listening on HOST:PORT" once it serves; SIGINT/SIGTERM stop it
 * gracefully. The README's "The seed, done right" walks through each
 * gotcha and the line below that answers it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox/http.h"
#include "outbox/jobs.h"

static ob_engine *engine;

/* ---- the job: send the mail ---- */

static void send_mail(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    const ob_job *job = ob_ctx_job(ctx);
    json_error_t err;
    json_t *m = json_loadb((const char *)job->payload, job->payload_len, 0, &err);
    if (!m) {
        ob_ctx_discard(ctx, "the payload is not JSON"); /* permanent: retrying cannot help */
        return;
    }
    FILE *f = fopen("mail.log", "a");
    if (!f) {
        ob_ctx_retry(ctx, -1, "cannot open mail.log"); /* transient: try again later */
        json_decref(m);
        return;
    }
    char id[OB_ID_STRLEN + 1];
    fprintf(f, "%s to=%s subject=%s\n", ob_id_format(&job->id, id),
            json_string_value(json_object_get(m, "to")),
            json_string_value(json_object_get(m, "subject")));
    fclose(f);
    ob_ctx_done(ctx, "{\"delivered\":true}");
    json_decref(m);
}

/* The closure variant's job: it sees the value copied at enqueue. */
static void use_foo(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    char result[64];
    snprintf(result, sizeof result, "{\"foo_seen_by_job\":%.20s}",
             (const char *)ob_ctx_job(ctx)->payload);
    ob_ctx_done(ctx, result);
}

/* ---- POST /mail ---- */

/* Called by the engine once the job is durable (or could not be stored),
 * on its commit thread: answer the suspended request now. */
static void mail_stored(void *arg, int rc, const ob_id *id, bool existed)
{
    (void)existed;
    ob_http_later *later = arg;
    if (rc) {
        ob_http_later_reply_error(later, 503, "unavailable", ob_strerror(rc), NULL);
        return;
    }
    char ids[OB_ID_STRLEN + 1], url[64];
    ob_id_format(id, ids);
    snprintf(url, sizeof url, "/jobs/%s", ids);
    json_t *j = json_pack("{s:s, s:s, s:s}", "id", ids, "state", "available", "status_url", url);
    ob_http_later_set_header(later, "Location", url);
    ob_http_later_reply_json(later, 202, j); /* a client that left gets nothing: harmless */
    json_decref(j);
}

static void post_mail(ob_http_req *req, void *arg)
{
    (void)arg;
    json_t *body = ob_http_body_json(req); /* lives as long as the request */
    if (!body)
        return; /* answered 400 already */
    const char *field = NULL;
    json_t *to = json_object_get(body, "to"), *subject = json_object_get(body, "subject"),
           *text = json_object_get(body, "text");
    if (!json_is_string(to) || !strchr(json_string_value(to), '@'))
        field = "to";
    else if (!json_is_string(subject))
        field = "subject";
    else if (!json_is_string(text))
        field = "text";
    if (field) {
        ob_http_reply_error(req, 422, "invalid", "a string is required here", field);
        return;
    }
    /* The job gets a copy: the payload is serialised here and copied by the
     * engine; nothing of the request survives the handler. */
    char *payload = json_dumps(body, JSON_COMPACT);
    ob_new_job job = {.kind = "mail.send", .queue = "mail", .payload = payload,
                      .payload_len = payload ? strlen(payload) : 0};
    ob_http_later *later;
    int rc = payload ? ob_http_suspend(req, &later) : OB_ENOMEM;
    if (rc) {
        free(payload);
        ob_http_reply_error(req, 503, "unavailable", "too many requests waiting", NULL);
        return;
    }
    rc = ob_enqueue_async(engine, &job, mail_stored, later);
    free(payload); /* copied by the engine */
    if (rc) /* not accepted: the callback will not run, answer here */
        ob_http_later_reply_error(later, 503, "unavailable", ob_strerror(rc), NULL);
}

/* ---- GET /jobs/{id} ---- */

static void get_job(ob_http_req *req, void *arg)
{
    (void)arg;
    ob_id id;
    ob_job *j;
    if (ob_id_parse(ob_http_param(req, "id"), &id)) {
        ob_http_reply_error(req, 400, "invalid", "not a job id", "id");
        return;
    }
    int rc = ob_job_get(engine, &id, &j);
    if (rc) {
        ob_http_reply_error(req, rc == OB_ENOTFOUND ? 404 : 503,
                            rc == OB_ENOTFOUND ? "not_found" : "unavailable", ob_strerror(rc),
                            NULL);
        return;
    }
    json_t *errors = json_array();
    for (size_t i = 0; i < j->nerrors; i++)
        json_array_append_new(errors, json_pack("{s:i, s:s}", "attempt", j->errors[i].attempt,
                                                "error", j->errors[i].message));
    json_t *v = json_pack("{s:s, s:s, s:i, s:o, s:o?}", "kind", j->kind, "state",
                          ob_state_name(j->state), "attempt", j->attempt, "errors", errors,
                          "result", j->result ? json_loads(j->result, 0, NULL) : NULL);
    ob_http_reply_json(req, 200, v);
    json_decref(v);
    ob_job_free(j);
}

/* ---- POST /closure?foo=N ---- */

static void post_closure(ob_http_req *req, void *arg)
{
    (void)arg;
    const char *q = ob_http_query(req, "foo");
    long long foo = q ? atoll(q) : 0;
    char payload[32];
    snprintf(payload, sizeof payload, "%lld", foo); /* the value, copied now */
    ob_new_job job = {.kind = "use.foo", .payload = payload, .payload_len = strlen(payload) + 1};
    ob_id id;
    int rc = ob_enqueue(engine, &job, &id, NULL); /* short: blocking is fine for a demo */
    foo++; /* the handler goes on changing its variable; the job does not see it */
    if (rc) {
        ob_http_reply_error(req, 503, "unavailable", ob_strerror(rc), NULL);
        return;
    }
    char ids[OB_ID_STRLEN + 1];
    json_t *v = json_pack("{s:s, s:I, s:s}", "id", ob_id_format(&id, ids), "foo_in_handler_now",
                          (json_int_t)foo, "note", "the job sees the value at enqueue");
    ob_http_reply_json(req, 202, v);
    json_decref(v);
}

/* ---- main ---- */

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig, stop = 1; }

static void usage(FILE *f)
{
    fprintf(f, "usage: seed_handler [--listen HOST:PORT] [--store URL]\n"
               "  The Q&A's mail handler done right (see README, \"The seed, done right\").\n"
               "  --listen HOST:PORT  default 127.0.0.1:8080 (port 0: any free port)\n"
               "  --store URL         default sqlite:./seed.db\n");
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *store = "sqlite:./seed.db";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen = argv[++i];
        } else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
            store = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    ob_log_set(NULL, NULL, OB_LOG_INFO);
    int rc = ob_engine_open(store, NULL, &engine);
    if (rc) {
        fprintf(stderr, "seed_handler: cannot open %s: %s\n", store, ob_strerror(rc));
        return 1;
    }
    ob_engine_register(engine, "mail.send", send_mail, NULL, NULL);
    ob_engine_register(engine, "use.foo", use_foo, NULL, NULL);
    ob_pool *pool;
    ob_pool_start(engine, NULL, &pool);

    ob_http_opts o;
    ob_http_opts_init(&o);
    o.listen = listen;
    ob_http_server *s;
    if ((rc = ob_http_server_new(&o, &s)) ||
        (rc = ob_http_route(s, "POST", "/mail", post_mail, NULL, OB_HTTP_JSON)) ||
        (rc = ob_http_route(s, "GET", "/jobs/{id}", get_job, NULL, 0)) ||
        (rc = ob_http_route(s, "POST", "/closure", post_closure, NULL, 0)) ||
        (rc = ob_http_server_start(s))) {
        fprintf(stderr, "seed_handler: cannot serve on %s: %s\n", listen, ob_strerror(rc));
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char host[128];
    snprintf(host, sizeof host, "%s", listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    printf("listening on %s:%d\n", host, ob_http_server_port(s));
    fflush(stdout);
    while (!stop)
        pause();
    ob_http_server_stop(s, 5000); /* suspended requests get 503, in-flight ones finish */
    ob_http_server_free(s);
    ob_pool_stop(pool, 5000);
    ob_engine_close(engine);
    return 0;
}
