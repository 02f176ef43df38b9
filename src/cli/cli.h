/*
 * cli.h - what the files of the `outbox` command share: the HTTP call to
 * outboxd, argument walking, errors and exit codes. outbox.c holds the job
 * verbs and main; send.c holds `outbox send`.
 */
#ifndef OB_CLI_H
#define OB_CLI_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>

enum { EX_OK = 0, EX_FAILED = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_TIMEOUT = 4 };

extern const char *base_url; /* outboxd, e.g. "http://127.0.0.1:8025" */
extern const char *token;    /* bearer token, or NULL */
extern bool as_json;         /* --json: machine output */

typedef struct reply {
    long status; /* 0: unreachable */
    json_t *body; /* owned by the caller: json_decref */
    char err[CURL_ERROR_SIZE];
} reply;

/* One request. body: JSON to send (borrowed) or NULL. extra: a header. */
reply call(const char *method, const char *path, const json_t *body, const char *extra,
           long timeout_s);
/* Print why outboxd could not be reached; EX_UNREACHABLE. */
int unreachable(const reply *r);
/* Print an API error (code, message, field); EX_FAILED. */
int api_failed(const reply *r);
/* Print a usage error; EX_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void print_json(const json_t *v);
/* o[k] as a string, "-" when absent. */
const char *str(const json_t *o, const char *k);

typedef struct args {
    int argc;
    char **argv;
    int i;
} args;

/* The next argument, or NULL. */
const char *next(args *a);
/* Whether --help or -h is among the remaining arguments. */
bool wants_help(args *a);

/* Wait until the job at `path` (/v1/jobs/ID or /v1/messages/ID) is final
 * or limit seconds pass (< 0: for ever), with a progress line on a tty.
 * Returns EX_OK with *out the final job, EX_TIMEOUT, or the error's code. */
int wait_final(const char *path, const char *id, double limit, json_t **out);

/* send.c */
int send_mail(args *a);

#endif
