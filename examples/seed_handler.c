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
 *       makes a message of the request (from --from), has the library
 *       validate it, copies its stored form into a mail.send job, enqueues
 *       it without blocking, suspends the response, and answers
 *       202 {"id","status_url"} only once the job is on disk — or 503 if it
 *       could not be stored. A worker delivers it (--smtp: an SMTP relay,
 *       or .eml files) and keeps each recipient's reply: deferred ones
 *       (4xx) are retried, bounced ones (5xx) are not.
 *   GET /jobs/{id}
 *       did it happen? The job's state, attempts, errors, and each
 *       recipient's outcome.
 *   POST /closure?foo=N
 *       the second handler: a value captured at enqueue (a copy), not a
 *       reference to the handler's variable, which changes afterwards.
 *
 *   seed_handler [--listen HOST:PORT] [--store URL] [--smtp URL] [--from ADDR]
 *                [--retry-min S] [--help]
 *
 * It prints "listening on HOST:PORT, mail to URL" once it serves; SIGINT/SIGTERM stop it
 * gracefully. The README's "The seed, done right" walks through each
 * gotcha and the line below that answers it.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox/http.h"
#include "outbox/jobs.h"
#include "outbox/mail.h"
#include "outbox/mailjob.h"

static ob_engine *engine;
static const char *from = "Seed handler <seed@example.com>";
static ob_mail_limits limits;

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

/* The message the request asks for: its to, subject and text, from us. A
 * member the handler does not take is refused rather than ignored. NULL
 * after answering why. */
static json_t *message_of(ob_http_req *req, const json_t *body)
{
    json_t *msg = json_pack("{s:s}", "from", from);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) {
        if (strcmp(k, "to") && strcmp(k, "subject") && strcmp(k, "text")) {
            ob_http_reply_error(req, 422, "invalid", "takes only to, subject and text", k);
            json_decref(msg);
            return NULL;
        }
        json_object_set(msg, k, v);
    }
    return msg;
}

static void post_mail(ob_http_req *req, void *arg)
{
    (void)arg;
    json_t *body = ob_http_body_json(req); /* lives as long as the request */
    if (!body)
        return; /* answered 400 already */
    json_t *msg = json_is_object(body) ? message_of(req, body) : NULL;
    if (!msg) {
        if (!json_is_object(body))
            ob_http_reply_error(req, 422, "invalid", "a JSON object is required", NULL);
        return;
    }
    /* The library validates it: addresses (IDN too), header safety, sizes. */
    ob_mail *m;
    ob_problem p;
    int rc = ob_mail_parse(msg, OB_MAIL_REQUEST, &limits, &m, &p);
    json_decref(msg);
    if (rc) {
        ob_http_reply_error(req, rc == OB_ETOOBIG ? 413 : 422, "invalid", p.message,
                            p.field[0] ? p.field : NULL);
        return;
    }
    /* The job gets a copy: the message's stored form (its Message-ID and
     * Date fixed now, so a retry sends the same bytes), copied again by the
     * engine; nothing of the request survives the handler. */
    ob_new_job job = {0};
    char *payload;
    rc = ob_mail_job_new(m, &job, &payload);
    ob_mail_free(m);
    ob_http_later *later;
    if (!rc)
        rc = ob_http_suspend(req, &later);
    if (rc) {
        free(payload);
        ob_http_reply_error(req, 503, "unavailable", ob_strerror(rc), NULL);
        return;
    }
    rc = ob_enqueue_async(engine, &job, mail_stored, later);
    free(payload); /* copied by the engine */
    if (rc) /* not accepted: the callback will not run, answer here */
        ob_http_later_reply_error(later, 503, "unavailable", ob_strerror(rc), NULL);
}

/* ---- GET /jobs/{id} ---- */

/* Each recipient of a message: the relay's reply to it, and where that
 * left it (delivered, deferred and to be retried, bounced). */
static json_t *recipients(const ob_job *j)
{
    ob_mail_status *st;
    if (ob_mail_status_get(j, &st))
        return NULL;
    json_t *list = json_array();
    for (size_t i = 0; i < st->n; i++) {
        const ob_mail_rcpt_status *r = &st->rcpts[i];
        json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:s, s:s, s:i}", "address",
                                              r->address, "state", ob_rcpt_state_name(r->state),
                                              "code", r->reply.code, "enhanced", r->reply.enhanced,
                                              "reply", r->reply.text, "attempts", r->attempts));
    }
    ob_mail_status_free(st);
    return list;
}

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
    json_t *v = json_pack("{s:s, s:s, s:i, s:o, s:o*, s:o*}", "kind", j->kind, "state",
                          ob_state_name(j->state), "attempt", j->attempt, "errors", errors,
                          "recipients", recipients(j), "result",
                          j->result && strcmp(j->kind, OB_MAIL_KIND) != 0
                              ? json_loads(j->result, 0, NULL) : NULL);
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
    fprintf(f, "usage: seed_handler [OPTIONS]\n"
               "  The Q&A's mail handler done right (see README, \"The seed, done right\").\n"
               "  --listen HOST:PORT  default 127.0.0.1:8080 (port 0: any free port)\n"
               "  --store URL         default sqlite:./seed.db\n"
               "  --smtp URL          where mail goes: smtp://[user:pass@]host[:port]"
               "[?starttls=no]\n"
               "                      or file:DIR (default file:./mail)\n"
               "  --from ADDRESS      the sender (default \"Seed handler "
               "<seed@example.com>\")\n"
               "  --retry-min S       seconds to the first retry of a deferred recipient "
               "(default 300)\n");
}

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "seed_handler: %s: %s\n", what, detail);
    return 1;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *store = "sqlite:./seed.db", *smtp = "file:./mail";
    ob_mail_job_opts mo;
    ob_mail_job_opts_init(&mo);
    static const struct option longs[] = {
        {"listen", required_argument, 0, 'l'}, {"store", required_argument, 0, 's'},
        {"smtp", required_argument, 0, 'm'},   {"from", required_argument, 0, 'f'},
        {"retry-min", required_argument, 0, 'r'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "h", longs, NULL)) != -1;) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 's': store = optarg; break;
        case 'm': smtp = optarg; break;
        case 'f': from = optarg; break;
        case 'r':
            mo.retry_min_ms = atol(optarg) * 1000;
            if (mo.retry_min_ms < 1000 || mo.retry_min_ms > mo.retry_max_ms)
                return fail("--retry-min", "must be 1-4000 seconds");
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    ob_log_set(NULL, NULL, OB_LOG_INFO);
    ob_mail_init();
    ob_mail_limits_init(&limits);
    ob_transport *transport;
    ob_problem p;
    if (ob_transport_open(smtp, NULL, &transport, &p))
        return fail("--smtp", p.message);
    json_t *probe = json_pack("{s:s, s:s, s:s, s:s}", "from", from, "to", "probe@example.com",
                              "subject", "", "text", "");
    ob_mail *m;
    int rc = ob_mail_parse(probe, OB_MAIL_REQUEST, &limits, &m, &p);
    json_decref(probe);
    if (rc)
        return fail("--from", p.message);
    ob_mail_free(m);

    ob_engine_opts eo;
    ob_engine_opts_init(&eo);
    ob_mail_job_engine_opts(&eo, &limits); /* room for the largest message and its outcome */
    if ((rc = ob_engine_open(store, &eo, &engine)))
        return fail(store, ob_strerror(rc));
    ob_mailer *mailer;
    ob_pool *pool;
    if ((rc = ob_mail_job_register(engine, transport, &mo, &mailer)) ||
        (rc = ob_engine_register(engine, "use.foo", use_foo, NULL, NULL)) ||
        (rc = ob_pool_start(engine, NULL, &pool)))
        return fail("cannot start the engine", ob_strerror(rc));

    ob_http_opts o;
    ob_http_opts_init(&o);
    o.listen = listen;
    ob_http_server *s;
    if ((rc = ob_http_server_new(&o, &s)) ||
        (rc = ob_http_route(s, "POST", "/mail", post_mail, NULL, OB_HTTP_JSON)) ||
        (rc = ob_http_route(s, "GET", "/jobs/{id}", get_job, NULL, 0)) ||
        (rc = ob_http_route(s, "POST", "/closure", post_closure, NULL, 0)) ||
        (rc = ob_http_server_start(s)))
        return fail(listen, ob_strerror(rc));
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char host[128];
    snprintf(host, sizeof host, "%s", listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    printf("listening on %s:%d, mail to %s\n", host, ob_http_server_port(s),
           ob_transport_name(transport));
    fflush(stdout);
    while (!stop)
        pause();
    ob_http_server_stop(s, 5000); /* suspended requests get 503, in-flight ones finish */
    ob_http_server_free(s);
    ob_pool_stop(pool, 5000);
    ob_engine_close(engine);
    ob_mailer_free(mailer);
    ob_transport_close(transport);
    return 0;
}
