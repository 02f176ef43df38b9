/*
 * od_helpers.h - outboxd as a real process for tests: start it on a free
 * 127.0.0.1 port in the test's directory, find its port in its log, stop
 * it with a signal and check how it ended.
 */
#ifndef OB_TEST_OD_HELPERS_H
#define OB_TEST_OD_HELPERS_H

#include <sys/types.h>

#include "test.h"

#ifndef OUTBOXD
#error "OUTBOXD: the path of the daemon"
#endif
#ifndef OUTBOX_CLI
#error "OUTBOX_CLI: the path of the command-line client"
#endif

typedef struct od {
    pid_t pid;
    int port;
    char url[64];
    char dir[1024]; /* where it runs: outboxd.log, outboxd.out (its stderr) */
} od;

/* Start outboxd with its defaults for tests (sqlite:./outbox.db, the log in
 * ./outboxd.log, port 0, and --http-allow 127.0.0.1/32: the tests' target
 * servers listen there) plus `extra`, space-separated "--name value" pairs
 * (may be NULL; a flag given again there wins). Waits until it serves. */
od od_start(const char *extra);
/* Send sig and wait; returns the exit status (or 128 + signal). A daemon
 * that died of another signal than the one sent (an assertion, a crash)
 * has the end of its stderr and log printed, for the failure to show why. */
int od_stop(od *d, int sig);
/* `outboxd migrate` on a store that does not exist yet: it creates the
 * schema, a second run has nothing to do; once bump(url) has made the
 * schema newer than this outboxd knows, both `migrate` and a start refuse
 * it, exit 1 and say so. */
void od_check_migrate(const char *url, void (*bump)(const char *url));
/* POST body (JSON) to PATH of d with extra curl arguments (headers; may be
 * NULL): "<status>\n<body>", malloc'd. */
char *od_post(const od *d, const char *path, const char *curl_args, const char *body);

/* A "<status>\n<body>" answer (taken and freed) must have this status and
 * hold `needle`. */
#define EXPECT(resp, code, needle)                                                         \
    do {                                                                                   \
        char *r_ = (resp);                                                                 \
        if (strncmp(r_, code "\n", strlen(code) + 1) != 0 || !strstr(r_, needle))          \
            test_fail(__FILE__, __LINE__, "want %s with %s, got: %.400s", code, needle, r_); \
        free(r_);                                                                          \
    } while (0)

/* The value of "key":"..." in a JSON text, into out. */
void od_json_str(const char *json, const char *key, char *out, size_t n);

#endif
