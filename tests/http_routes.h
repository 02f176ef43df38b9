/*
 * http_routes.h - the test server of test_http*.c (http_routes.c).
 *
 *   GET  /hello         200 {"hello":"world"}
 *   GET  /items/{id}    the parameter and the query back
 *   POST /echo          the JSON body back (application/json only)
 *   POST /len           the body's length
 *   GET  /noanswer      a handler that neither answers nor suspends
 *   GET  /slow          answers after a while
 *   GET  /park          suspends and leaves the handle to the test
 *                       (t_wait_parked)
 *   GET  /later         suspends; another thread answers 100 ms later
 */
#ifndef OB_TEST_HTTP_ROUTES_H
#define OB_TEST_HTTP_ROUTES_H

#include "outbox/http.h"

/* The handlers of /hello, /echo and /len, to route elsewhere. */
void t_hello(ob_http_req *r, void *arg);
void t_echo(ob_http_req *r, void *arg);
void t_length(ob_http_req *r, void *arg);
/* A server with those routes (not started); o NULL: t_opts. */
ob_http_server *t_server(ob_http_opts *o);
/* The i-th request /park suspended (waits for it). */
ob_http_later *t_wait_parked(int i);

#endif
