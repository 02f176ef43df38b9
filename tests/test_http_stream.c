/*
 * test_http_stream.c - streamed answers (ob_http_stream_*) against real
 * clients: written from another thread while curl reads them, a client
 * that leaves, a client too slow for the backlog, and the server shutting
 * down under an open stream.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"
#include "http_helpers.h"

#define URL "http://127.0.0.1:%d"

/* ---- streams ---- */

static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;
static ob_http_stream *the_stream;

static void *write_ticks(void *arg)
{
    ob_http_stream *st = arg;
    for (int i = 0; i < 5; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "tick %d\n", i);
        ASSERT_OK(ob_http_stream_write(st, line, (size_t)n));
        h_sleep_ms(50);
    }
    ob_http_stream_close(st);
    return NULL;
}

static void ticks(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_stream *st;
    ASSERT_OK(ob_http_set_header(r, "X-Stream", "yes"));
    ASSERT_OK(ob_http_stream_start(r, "text/plain", &st));
    pthread_t t;
    pthread_create(&t, NULL, write_ticks, st);
    pthread_detach(t);
}

static void hold_stream(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_stream *st;
    ASSERT_OK(ob_http_stream_start(r, "text/event-stream", &st));
    pthread_mutex_lock(&st_mu);
    the_stream = st;
    pthread_mutex_unlock(&st_mu);
}

static ob_http_stream *wait_stream(void)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&st_mu);
        ob_http_stream *st = the_stream;
        pthread_mutex_unlock(&st_mu);
        if (st)
            return st;
        h_sleep_ms(10);
    }
    test_fail(__FILE__, __LINE__, "no stream started");
}

static ob_http_server *stream_server(ob_http_opts *o)
{
    ob_http_opts def;
    if (!o) {
        t_opts(&def);
        o = &def;
    }
    ob_http_server *s;
    ASSERT_OK(ob_http_server_new(o, &s));
    ASSERT_OK(ob_http_route(s, "GET", "/ticks", ticks, NULL, 0));
    ASSERT_OK(ob_http_route(s, "GET", "/hold", hold_stream, NULL, 0));
    return s;
}

TEST(stream_written_from_another_thread)
{
    ob_http_server *s = stream_server(NULL);
    int port = t_start(s);
    char *out;
    t_run(&out, "curl -s -N -D - " URL "/ticks", port);
    ASSERT(strcasestr(out, "Transfer-Encoding: chunked") && strcasestr(out, "X-Stream: yes"));
    ASSERT(strstr(out, "\r\n\r\ntick 0\ntick 1\ntick 2\ntick 3\ntick 4\n") != NULL);
    free(out);
    ob_http_server_free(s);
}

TEST(stream_notices_the_client_leaving)
{
    ob_http_server *s = stream_server(NULL);
    int port = t_start(s);
    int fd = t_connect(port);
    t_sends(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    ob_http_stream *st = wait_stream();
    ASSERT_OK(ob_http_stream_write(st, "data: 1\n\n", 9));
    char *raw = t_read(fd, 0, 300);
    ASSERT(strstr(raw, "data: 1") != NULL);
    free(raw);
    close(fd); /* gone while the stream is idle (parked) */
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        h_sleep_ms(20);
        rc = ob_http_stream_write(st, "data: 2\n\n", 9);
    }
    ASSERT_RC(rc, OB_EGONE);
    ob_http_stream_close(st);
    ob_http_server_free(s);
}

TEST(stream_backlog_is_bounded)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_stream_buffer = 4096;
    ob_http_server *s = stream_server(&o);
    int port = t_start(s);
    int fd = t_connect(port);
    int small = 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    t_sends(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    ob_http_stream *st = wait_stream();
    static char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    int rc = 0, n = 0;
    while (rc == 0 && n < 100000) { /* the client reads nothing */
        rc = ob_http_stream_write(st, chunk, sizeof chunk);
        n++;
    }
    ASSERT_RC(rc, OB_EBUSY);
    printf("  %d KB sent before the backlog filled\n", n);
    ob_http_stream_close(st);
    close(fd);
    ob_http_server_free(s);
}

TEST(stream_ends_at_shutdown)
{
    ob_http_server *s = stream_server(NULL);
    int port = t_start(s);
    int fd = t_connect(port);
    t_sends(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    ob_http_stream *st = wait_stream();
    ASSERT_OK(ob_http_stream_write(st, "data: 1\n\n", 9));
    ASSERT_OK(ob_http_server_stop(s, 3000)); /* ends the stream, does not wait for it */
    ASSERT_RC(ob_http_stream_write(st, "x", 1), OB_ESHUTDOWN);
    char *raw = t_read(fd, 0, 1000);
    if (!strstr(raw, "data: 1") || !strstr(raw, "\r\n0\r\n\r\n")) /* the last chunk */
        test_fail(__FILE__, __LINE__, "got [%s]", raw);
    free(raw);
    ob_http_stream_close(st);
    close(fd);
    ob_http_server_free(s);
}

static const test_case tests[] = {
    T(stream_written_from_another_thread),
    T(stream_notices_the_client_leaving),
    T(stream_backlog_is_bounded),
    T(stream_ends_at_shutdown),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
