/*
 * http_helpers.h - for the HTTP tests: a server on a free 127.0.0.1 port,
 * curl run as a child process, and raw sockets for what curl will not do
 * (pipelining, trickling bytes, leaving mid-request).
 */
#ifndef OB_TEST_HTTP_HELPERS_H
#define OB_TEST_HTTP_HELPERS_H

#include "outbox/http.h"
#include "test.h"

/* Options with port 0 and short, test-sized timeouts. */
void t_opts(ob_http_opts *o);
/* Start s (routes already added); returns its port. */
int t_start(ob_http_server *s);
/* Run a shell command; its stdout (NUL-terminated, malloc'd) into *out.
 * Returns the exit status. */
int t_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run curl -s ARGS (in the test's directory); *out is "<status>\n<body>". */
int t_curl(char **out, int port, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int t_connect(int port);     /* fails the test when refused */
int t_try_connect(int port); /* -1 when refused (server being killed) */
void t_send(int fd, const void *p, size_t n);
void t_sends(int fd, const char *s);
/* Read until the peer closes, `want` responses are complete, or ms pass.
 * Returns the bytes read (NUL-terminated, malloc'd). */
char *t_read(int fd, int want, int ms);
/* Status codes of the responses in a raw read, in order; returns count. */
int t_statuses(const char *raw, int *st, int max);
/* Whether the peer closed fd within ms. */
bool t_closed(int fd, int ms);

#endif
