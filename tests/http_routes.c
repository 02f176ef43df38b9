/*
 * http_routes.c - the test server of test_http*.c: a server with the
 * routes the tests ask for (/hello, /items/{id}, /echo, /len, /noanswer,
 * /slow, /park, /later; see http_routes.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"
#include "http_helpers.h"
#include "http_routes.h"

/* ---- handlers ---- */

void t_hello(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_reply(r, 200, "text/plain", "ok", 2);
}

static void item(ob_http_req *r, void *arg)
{
    (void)arg;
    json_t *j = json_pack("{s:s, s:s?, s:s?}", "id", ob_http_param(r, "id"), "q",
                          ob_http_query(r, "x"), "h", ob_http_header(r, "x-test"));
    ob_http_reply_json(r, 200, j);
    json_decref(j);
}

void t_echo(ob_http_req *r, void *arg)
{
    (void)arg;
    json_t *body = ob_http_body_json(r);
    if (body)
        ob_http_reply_json(r, 200, body);
}

void t_length(ob_http_req *r, void *arg)
{
    (void)arg;
    size_t n;
    ob_http_body(r, &n);
    json_t *j = json_pack("{s:I}", "len", (json_int_t)n);
    ob_http_reply_json(r, 200, j);
    json_decref(j);
}

static void noanswer(ob_http_req *r, void *arg) { (void)r, (void)arg; }

static void slow(ob_http_req *r, void *arg)
{
    (void)arg;
    h_sleep_ms(400);
    ob_http_reply(r, 200, "text/plain", "slow", 4);
}

/* /park: suspend and leave the handle to the test. */
static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static ob_http_later *parked[64];
static int nparked;

static void park(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_later *l;
    int rc = ob_http_suspend(r, &l);
    if (rc == OB_EBUSY) {
        ob_http_reply_error(r, 503, "busy", "too many suspended requests", NULL);
        return;
    }
    ASSERT_OK(rc);
    pthread_mutex_lock(&park_mu);
    parked[nparked++] = l;
    pthread_mutex_unlock(&park_mu);
}

ob_http_later *t_wait_parked(int i)
{
    for (int t = 0; t < 500; t++) {
        pthread_mutex_lock(&park_mu);
        ob_http_later *l = nparked > i ? parked[i] : NULL;
        pthread_mutex_unlock(&park_mu);
        if (l)
            return l;
        h_sleep_ms(10);
    }
    test_fail(__FILE__, __LINE__, "no request was parked");
}

/* /later: suspend; another thread answers 100 ms later. */
static void *answer_later(void *arg)
{
    h_sleep_ms(100);
    ob_http_later *l = arg;
    ASSERT_OK(ob_http_later_set_header(l, "X-From", "another-thread"));
    ASSERT_OK(ob_http_later_reply(l, 200, "text/plain", "later", 5));
    return NULL;
}

static void later(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_later *l;
    ASSERT_OK(ob_http_suspend(r, &l));
    pthread_t t;
    pthread_create(&t, NULL, answer_later, l);
    pthread_detach(t);
}

ob_http_server *t_server(ob_http_opts *o)
{
    ob_http_opts def;
    if (!o) {
        t_opts(&def);
        o = &def;
    }
    ob_http_server *s;
    ASSERT_OK(ob_http_server_new(o, &s));
    ASSERT_OK(ob_http_route(s, "GET", "/hello", t_hello, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/items/{id}", item, NULL, 0));
    ASSERT_OK(ob_http_route(s, "POST", "/echo", t_echo, NULL, OB_HTTP_JSON));
    ASSERT_OK(ob_http_route(s, "POST", "/len", t_length, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/noanswer", noanswer, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/slow", slow, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/park", park, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/later", later, NULL, 0));
    return s;
}
