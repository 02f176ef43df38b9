/*
 * test_http_later.c - suspended responses against real clients: the limit
 * on how many, a handler that never answers (500), answers from another
 * thread, after the client left (reported), never (504), at shutdown
 * (503, in-flight requests finish), and from many threads at once.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"
#include "http_helpers.h"
#include "http_routes.h"

#define URL "http://127.0.0.1:%d"

TEST(suspended_responses_are_limited)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_suspended = 1;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    int fd = t_connect(port);
    t_sends(fd, "GET /park HTTP/1.1\r\nHost: x\r\n\r\n");
    ob_http_later *l = t_wait_parked(0);
    char *out;
    t_curl(&out, port, URL "/park", port);
    ASSERT(strncmp(out, "503\n{\"error\":{\"code\":\"busy\"", 27) == 0);
    free(out);
    ASSERT_OK(ob_http_later_reply(l, 200, "text/plain", "done", 4));
    char *raw = t_read(fd, 1, 2000);
    ASSERT(strstr(raw, "\r\n\r\ndone") != NULL);
    free(raw);
    close(fd);
    ob_http_server_free(s);
}

/* ---- honest answers and suspension ---- */

TEST(handler_that_never_answers_gets_500)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    char *out;
    t_curl(&out, port, URL "/noanswer", port);
    ASSERT(strncmp(out, "500\n{\"error\":{\"code\":\"internal\"", 30) == 0);
    free(out);
    ob_http_server_free(s);
}

TEST(suspended_response_answered_from_another_thread)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    char *out;
    int64_t t0 = ob_mono_ms();
    t_run(&out, "curl -s -D - " URL "/later", port);
    ASSERT(ob_mono_ms() - t0 >= 100);
    ASSERT(strncmp(out, "HTTP/1.1 200", 12) == 0);
    ASSERT(strcasestr(out, "X-From: another-thread") != NULL);
    ASSERT(strstr(out, "\r\n\r\nlater") != NULL);
    free(out);
    ob_http_server_free(s);
}

TEST(answer_after_the_client_left_is_reported)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    int fd = t_connect(port);
    t_sends(fd, "GET /park HTTP/1.1\r\nHost: x\r\n\r\n");
    ob_http_later *l = t_wait_parked(0);
    close(fd);
    h_sleep_ms(300); /* the watch thread sees the close */
    ASSERT_RC(ob_http_later_reply(l, 200, "text/plain", "late", 4), OB_EGONE);
    char *out;
    t_curl(&out, port, URL "/hello", port); /* and the server is fine */
    ASSERT_STREQ(out, "200\nok");
    free(out);
    ob_http_server_free(s);
}

TEST(unanswered_suspension_times_out_with_504)
{
    ob_http_opts o;
    t_opts(&o);
    o.suspend_timeout_ms = 300;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    char *out;
    t_curl(&out, port, URL "/park", port);
    ASSERT(strncmp(out, "504\n{\"error\":{\"code\":\"timeout\"", 29) == 0);
    free(out);
    ASSERT_RC(ob_http_later_reply(t_wait_parked(0), 200, NULL, NULL, 0), OB_EGONE);
    ob_http_server_free(s);
}

typedef struct stopper {
    ob_http_server *s;
    int rc;
} stopper;

static void *stop_it(void *arg)
{
    stopper *st = arg;
    st->rc = ob_http_server_stop(st->s, 3000);
    return NULL;
}

TEST(graceful_shutdown_finishes_in_flight_and_503s_suspended)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    int slowfd = t_connect(port), parkfd = t_connect(port);
    t_sends(parkfd, "GET /park HTTP/1.1\r\nHost: x\r\n\r\n");
    ob_http_later *l = t_wait_parked(0);
    t_sends(slowfd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(100); /* /slow is in its handler */
    stopper st = {s, -1};
    pthread_t t;
    pthread_create(&t, NULL, stop_it, &st);
    char *raw = t_read(parkfd, 1, 3000);
    ASSERT(strncmp(raw, "HTTP/1.1 503", 12) == 0);
    ASSERT(strstr(raw, "shutting_down") != NULL);
    ASSERT(strstr(raw, "Retry-After: 1\r\n") != NULL); /* every 503 says when */
    free(raw);
    raw = t_read(slowfd, 1, 3000);
    ASSERT(strncmp(raw, "HTTP/1.1 200", 12) == 0);
    ASSERT(strstr(raw, "\r\n\r\nslow") != NULL);
    free(raw);
    pthread_join(t, NULL);
    ASSERT_OK(st.rc);
    ASSERT_RC(ob_http_later_reply(l, 200, NULL, NULL, 0), OB_ESHUTDOWN);
    char *out;
    ASSERT(t_run(&out, "curl -s -m 2 " URL "/hello", port) != 0); /* not accepting */
    free(out);
    close(slowfd);
    close(parkfd);
    ob_http_server_free(s);
}

/* /many?n=N: suspended, answered "N" by one of several threads. The value
 * is copied out of the request: the request dies when the handler returns. */
typedef struct pending {
    ob_http_later *l;
    char n[16];
    struct pending *next;
} pending;

static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pend_cv = PTHREAD_COND_INITIALIZER;
static pending *pend_head;
static bool pend_stop;

static void many(ob_http_req *r, void *arg)
{
    (void)arg;
    pending *p = calloc(1, sizeof *p);
    snprintf(p->n, sizeof p->n, "%s", ob_http_query(r, "n") ? ob_http_query(r, "n") : "?");
    ASSERT_OK(ob_http_suspend(r, &p->l));
    pthread_mutex_lock(&pend_mu);
    p->next = pend_head; /* LIFO: answers come back out of order */
    pend_head = p;
    pthread_cond_signal(&pend_cv);
    pthread_mutex_unlock(&pend_mu);
}

static void *answerer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&pend_mu);
        while (!pend_head && !pend_stop)
            pthread_cond_wait(&pend_cv, &pend_mu);
        pending *p = pend_head;
        if (p)
            pend_head = p->next;
        pthread_mutex_unlock(&pend_mu);
        if (!p)
            return NULL;
        ASSERT_OK(ob_http_later_reply(p->l, 200, "text/plain", p->n, strlen(p->n)));
        free(p);
    }
}

TEST(suspend_and_resume_from_many_threads)
{
    ob_http_server *s = t_server(NULL);
    ASSERT_RC(ob_http_route(s, "GET", "/many", many, NULL, 0), 0);
    int port = t_start(s);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, answerer, NULL);
    char *out;
    ASSERT_EQ(t_run(&out, "curl -s --no-progress-meter -Z --parallel-max 64 "
                          "-o 'many_#1' '" URL "/many?n=[1-300]' && cat many_* | wc -c",
                    port),
              0);
    free(out);
    for (int n = 1; n <= 300; n++) {
        char name[32], want[16], got[16] = "";
        snprintf(name, sizeof name, "many_%d", n);
        snprintf(want, sizeof want, "%d", n);
        FILE *f = fopen(name, "r");
        ASSERT(f != NULL);
        ASSERT(fgets(got, sizeof got, f) != NULL);
        fclose(f);
        ASSERT_STREQ(got, want);
    }
    pthread_mutex_lock(&pend_mu);
    pend_stop = true;
    pthread_cond_broadcast(&pend_cv);
    pthread_mutex_unlock(&pend_mu);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    ob_http_server_free(s);
}

static const test_case tests[] = {
    T(suspended_responses_are_limited),
    T(handler_that_never_answers_gets_500),
    T(suspended_response_answered_from_another_thread),
    T(answer_after_the_client_left_is_reported),
    T(unanswered_suspension_times_out_with_504),
    T(graceful_shutdown_finishes_in_flight_and_503s_suspended),
    T(suspend_and_resume_from_many_threads),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
