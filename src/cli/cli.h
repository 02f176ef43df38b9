/*
 * cli.h - what the files of the `outbox` command share: the HTTP call to
 * outboxd, option parsing, errors and exit codes (client.c). outbox.c holds
 * main and the job, message and health verbs; events.c `outbox events`;
 * send.c `outbox send`; queues.c `outbox queue`; schedules.c `outbox
 * schedule`.
 *
 * Options are parsed with getopt_long, as curl, git and gh users expect:
 * `--name value` or `--name=value`, options before or after operands,
 * `--` ends the options.
 */
#ifndef OB_CLI_H
#define OB_CLI_H

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>

enum {
    EX_OK = 0,
    EX_FAILED = 1,      /* the job failed, or the API refused the request */
    EX_USAGE = 2,
    EX_UNREACHABLE = 3, /* outboxd did not answer */
    EX_TIMEOUT = 4,
    EX_AUTH = 5,        /* outboxd refused the credentials (401) or the origin (403) */
};

extern const char *base_url; /* outboxd, e.g. "http://127.0.0.1:8025" */
extern const char *token;    /* bearer token, or NULL */
extern bool as_json;         /* --json: machine output */

/* A growing byte buffer (NUL-terminated). */
typedef struct buf {
    char *p;
    size_t n;
} buf;
/* libcurl's write callback appending to a buf. */
size_t cli_collect(char *d, size_t size, size_t nmemb, void *arg);

/* Set an option of handle c unless an earlier one failed: cc keeps the
 * first failure, which the caller reports instead of performing. */
#define SET(o, v) (cc = cc == CURLE_OK ? curl_easy_setopt(c, o, v) : cc)

/* "Accept: ACCEPT", the bearer token if there is one, and `extra`
 * (NULL-terminated, or NULL); the caller frees the list. */
struct curl_slist *request_headers(const char *accept, const char *const *extra);

typedef struct reply {
    long status;  /* 0: unreachable */
    json_t *body; /* owned by the caller: json_decref */
    char err[CURL_ERROR_SIZE];
} reply;

/* One request. body: JSON to send (borrowed) or NULL. headers: extra
 * "Name: value" lines, NULL-terminated (or NULL). */
reply call(const char *method, const char *path, const json_t *body, const char *const *headers,
           long timeout_s);
/* call(), with the two failures every verb handles alike reported here:
 * EX_OK with *r the answer (2xx; r->body owned by the caller), or, after
 * printing why, EX_UNREACHABLE or api_failed's code (nothing to free). */
int call_ok(const char *method, const char *path, const json_t *body,
            const char *const *headers, long timeout_s, reply *r);
/* Print why outboxd could not be reached; EX_UNREACHABLE. */
int unreachable(const reply *r);
/* Print an API error (status, code, message, field); EX_AUTH for 401 and
 * 403, else EX_FAILED. api_error: the same from a status and body. */
int api_failed(const reply *r);
int api_error(long status, const json_t *body);
/* Print a usage error; EX_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void print_json(const json_t *v);
/* o[k] as a string, "-" when absent; s, or otherwise when NULL. */
const char *str(const json_t *o, const char *k);
const char *either(const char *s, const char *otherwise);
/* Append "name=value&" (value escaped) to the query string q[cap]. false:
 * too long. */
bool query_add(char *q, size_t cap, const char *name, const char *value);

/* ---- options ---- */

/* The options of a job (job add; a schedule's job), as getopt_long
 * values, and what each sets in a POST /v1/jobs body. */
enum { A_QUEUE = 256, A_PRIORITY, A_PAYLOAD, A_PAYLOAD_FILE, A_DELAY, A_RUN_AT, A_MAX_ATTEMPTS,
       A_TIMEOUT, A_UNIQUE_KEY, A_IDEM, A_CALLBACK, A_RATE_KEY, A_WAIT };
/* Option c with value v into body (or *idem, *wait); EX_OK or a usage
 * error naming it for `verb`. */
int job_option(const char *verb, json_t *body, int c, const char *v, const char **idem,
               double *wait);

/* After the options: exactly one operand (`what`, for the error) into *out. */
int one_operand(int argc, char **argv, const char *verb, const char *what, const char **out);
/* A sub-verb taking one operand and no option but --help: EX_OK with *out
 * the operand, or EX_OK with *out NULL once `help` is printed, or a usage
 * error. */
int only_operand(int argc, char **argv, const char *verb, const char *help, const char *what,
                 const char **out);
/* METHOD /v1/COLLECTION/NAME[SUFFIX] (NAME escaped) with body (may be
 * NULL): the answer printed by print(answer, name) (with --json as JSON),
 * or print(NULL, name) for one without a body (a 204). EX_OK or
 * call_ok's error. */
int call_item(const char *method, const char *collection, const char *name, const char *suffix,
              const json_t *body, void (*print)(const json_t *v, const char *name));

#define HELP_OPT {"help", no_argument, NULL, 'h'}
#define END_OPT {NULL, 0, NULL, 0}

/* Start parsing argv (argv[0] the verb) with getopt_long. */
void opts_begin(void);
/* The next option of argv, as getopt_long returns it, or -1 at the end;
 * a bad option (unknown, or without its value) has been reported and is
 * returned as '?' (the caller returns EX_USAGE). Every table has
 * {"help", no_argument, NULL, 'h'}. */
int opts_next(int argc, char **argv, const char *verb, const struct option *opts);
/* A number option: EX_OK with *out, or a usage error naming it. */
int opt_long(const char *verb, const char *name, const char *v, long lo, long hi, long *out);
int opt_double(const char *verb, const char *name, const char *v, double lo, double hi,
               double *out);

/* Wait until the job at `path` (/v1/jobs/ID or /v1/messages/ID) is final
 * or limit seconds pass (< 0: for ever); on a terminal (stderr), a
 * progress line ticking every second. Returns EX_OK with *out the final
 * job, EX_TIMEOUT, or the error's code. */
int wait_final(const char *path, const char *id, double limit, json_t **out);

/* Print a message's recipients as a table (address, type, state, code,
 * reply), or the whole message with --json. */
void print_message(const json_t *msg);

/* send.c, events.c, queues.c */
int send_mail(int argc, char **argv);
int events(int argc, char **argv);
int queue_verb(int argc, char **argv);
int schedule_verb(int argc, char **argv);
int suppression_verb(int argc, char **argv); /* suppressions.c */

#endif
