/*
 * test_http.c - the HTTP server against real clients: curl (keep-alive,
 * chunked uploads, 100-continue, parallel connections) and raw sockets
 * (pipelining, slow clients, clients that leave). Every limit is hit and
 * must answer with its status; suspended responses are answered from other
 * threads, after the client left, and at shutdown.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "helpers.h"
#include "http_helpers.h"
#include "http_routes.h"

#define URL "http://127.0.0.1:%d"

/* ---- routing and the request ---- */

TEST(routes_params_query_and_headers)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    char *out;
    ASSERT_EQ(t_curl(&out, port, "-H 'X-Test: t' '" URL "/items/42?x=y%%20z'", port), 0);
    ASSERT_STREQ(out, "200\n{\"id\":\"42\",\"q\":\"y z\",\"h\":\"t\"}");
    free(out);
    ASSERT_EQ(t_curl(&out, port, URL "/hello", port), 0);
    ASSERT_STREQ(out, "200\nok");
    free(out);
    ASSERT_EQ(t_run(&out, "curl -s -I " URL "/hello | head -1", port), 0); /* HEAD */
    ASSERT(strncmp(out, "HTTP/1.1 200", 12) == 0);
    free(out);
    ob_http_server_free(s);
}

TEST(unknown_path_is_404_and_wrong_method_405_with_allow)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    char *out;
    t_curl(&out, port, URL "/nope", port);
    ASSERT_STREQ(out, "404\n{\"error\":{\"code\":\"not_found\",\"message\":\"no such resource\","
                      "\"field\":null}}");
    free(out);
    t_curl(&out, port, "-X DELETE " URL "/hello", port);
    ASSERT(strncmp(out, "405\n", 4) == 0);
    free(out);
    t_run(&out, "curl -s -D - -o /dev/null -X DELETE " URL "/hello | grep -i '^allow:'", port);
    ASSERT(strstr(out, "GET, HEAD") != NULL);
    free(out);
    t_curl(&out, port, URL "/items/", port); /* an empty parameter matches nothing */
    ASSERT(strncmp(out, "404\n", 4) == 0);
    free(out);
    ob_http_server_free(s);
}

TEST(json_bodies_are_strict_and_typed)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    char *out;
    t_curl(&out, port, "-H 'Content-Type: application/json' -d '{\"a\":[1,2]}' " URL "/echo", port);
    ASSERT_STREQ(out, "200\n{\"a\":[1,2]}");
    free(out);
    t_curl(&out, port, "-H 'Content-Type: application/json' -d '{\"a\":1,\"a\":2}' " URL "/echo",
           port);
    ASSERT(strncmp(out, "400\n{\"error\":{\"code\":\"invalid_json\"", 34) == 0);
    ASSERT(strstr(out, "duplicate") != NULL);
    free(out);
    t_curl(&out, port, "-H 'Content-Type: application/json' -d '{\"a\":' " URL "/echo", port);
    ASSERT(strncmp(out, "400\n", 4) == 0);
    free(out);
    t_curl(&out, port, "-H 'Content-Type: text/plain' -d '{}' " URL "/echo", port);
    ASSERT(strncmp(out, "415\n{\"error\":{\"code\":\"unsupported_media_type\"", 44) == 0);
    free(out);
    ob_http_server_free(s);
}

/* ---- connections ---- */

TEST(keep_alive_reuses_the_connection)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    char *out;
    ASSERT_EQ(t_run(&out, "curl -s -o /dev/null -o /dev/null -o /dev/null -w '%%{num_connects} ' "
                          URL "/hello " URL "/nope " URL "/hello",
                    port, port, port),
              0);
    ASSERT_STREQ(out, "1 0 0 "); /* one connection, three requests (a 404 keeps it too) */
    free(out);
    ob_http_server_free(s);
}

TEST(pipelined_requests_are_answered_in_order)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    int fd = t_connect(port);
    t_sends(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /items/7 HTTP/1.1\r\nHost: x\r\n\r\n");
    char *raw = t_read(fd, 3, 5000);
    int st[4];
    ASSERT_EQ(t_statuses(raw, st, 4), 3);
    ASSERT_EQ(st[0], 200);
    ASSERT_EQ(st[1], 404);
    ASSERT_EQ(st[2], 200);
    if (!strstr(raw, "{\"id\":\"7\",\"q\":null,\"h\":null}"))
        test_fail(__FILE__, __LINE__, "raw: %s", raw);
    free(raw);
    close(fd);
    ob_http_server_free(s);
}

TEST(chunked_upload_and_100_continue)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    ASSERT_EQ(t_run(NULL, "head -c 300000 /dev/urandom > big.bin"), 0);
    char *out;
    t_curl(&out, port, "-H 'Transfer-Encoding: chunked' --data-binary @big.bin " URL "/len", port);
    ASSERT_STREQ(out, "200\n{\"len\":300000}");
    free(out);
    t_curl(&out, port, "-H 'Expect: 100-continue' --data-binary @big.bin " URL "/len", port);
    ASSERT_STREQ(out, "200\n{\"len\":300000}");
    free(out);
    ob_http_server_free(s);
}

TEST(four_hundred_parallel_requests_all_get_200)
{
    ob_http_server *s = t_server(NULL);
    int port = t_start(s);
    char *out;
    ASSERT_EQ(t_run(&out, "curl -s --no-progress-meter -Z --parallel-max 100 -o /dev/null -w '%%{http_code}\\n' "
                          "'" URL "/hello?n=[1-400]' | sort | uniq -c",
                    port),
              0);
    ASSERT(strstr(out, "400 200") != NULL);
    free(out);
    ob_http_server_free(s);
}

/* ---- limits ---- */

TEST(too_many_or_too_large_headers_get_431)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_headers = 20;
    o.max_header_bytes = 4096;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    char many[4096] = "";
    for (int i = 0; i < 25; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "-H 'X-H%d: v' ", i);
    const struct {
        const char *what, *args;
    } cases[] = {
        {"25 headers, 20 allowed", many},
        {"a 5000-byte header, 4096 allowed", "-H \"X-Big: $(head -c 5000 /dev/zero | tr '\\0' a)\""},
        /* past libmicrohttpd's own buffer: it answers 431 itself */
        {"a 60000-byte header", "-H \"X-Big: $(head -c 60000 /dev/zero | tr '\\0' a)\""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *out;
        t_curl(&out, port, "%s " URL "/hello", cases[k].args, port);
        if (strncmp(out, "431\n", 4) != 0)
            test_fail(__FILE__, __LINE__, "%s: %.60s", cases[k].what, out);
        if (k < 2 && !strstr(out, "\"code\":\"headers_too_large\""))
            test_fail(__FILE__, __LINE__, "%s: %.80s", cases[k].what, out);
        free(out);
    }
    ob_http_server_free(s);
}

TEST(too_large_body_gets_413_without_reading_it)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_body = 100000;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    ASSERT_EQ(t_run(NULL, "head -c 5000000 /dev/zero > big.bin"), 0);
    char *out;
    /* With Content-Length and 100-continue: refused before the body is sent. */
    t_run(&out, "curl -s -m 20 -o /dev/null -w '%%{http_code} %%{size_upload}' "
                "-H 'Expect: 100-continue' --data-binary @big.bin " URL "/len", port);
    int code;
    long up;
    ASSERT_EQ(sscanf(out, "%d %ld", &code, &up), 2);
    ASSERT_EQ(code, 413);
    ASSERT(up < 5000000);
    free(out);
    /* Chunked: the size is known only while reading; still 413. */
    t_curl(&out, port, "-H 'Transfer-Encoding: chunked' --data-binary @big.bin " URL "/len", port);
    ASSERT(strncmp(out, "413\n{\"error\":{\"code\":\"body_too_large\"", 36) == 0);
    free(out);
    ob_http_server_free(s);
}

TEST(body_just_under_the_limit_is_taken_chunked_or_not)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_body = 1 << 20;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    ASSERT_EQ(t_run(NULL, "head -c %d /dev/zero > edge.bin", (1 << 20) - 1), 0);
    char *out;
    t_curl(&out, port, "-H 'Transfer-Encoding: chunked' --data-binary @edge.bin " URL "/len", port);
    ASSERT_STREQ(out, "200\n{\"len\":1048575}");
    free(out);
    t_curl(&out, port, "--data-binary @edge.bin " URL "/len", port);
    ASSERT_STREQ(out, "200\n{\"len\":1048575}");
    free(out);
    ob_http_server_free(s);
}

/* Slowloris: a client that sends a byte now and then is never idle, so
 * only a deadline for the whole part stops it. */
TEST(trickled_headers_or_body_get_408_by_their_deadline)
{
    static const struct {
        const char *what, *start, *trickle;
        bool headers; /* the header deadline, else the body's */
    } cases[] = {
        {"headers", "GET /hello HTTP/1.1\r\nHost: x\r\n", "X", true},
        {"body", "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc", "d", false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        ob_http_opts o;
        t_opts(&o);
        if (cases[k].headers)
            o.header_timeout_ms = 800;
        else
            o.body_timeout_ms = 800;
        ob_http_server *s = t_server(&o);
        int port = t_start(s);
        int fd = t_connect(port);
        int64_t t0 = ob_mono_ms();
        t_sends(fd, cases[k].start);
        for (int i = 0; i < 8; i++) { /* a byte every 250 ms: never idle, never done */
            h_sleep_ms(250);
            if (send(fd, cases[k].trickle, 1, MSG_NOSIGNAL) < 0)
                break;
        }
        char *raw = t_read(fd, 1, 3000);
        if (strncmp(raw, "HTTP/1.1 408", 12) != 0 || !strstr(raw, "request_timeout"))
            test_fail(__FILE__, __LINE__, "trickled %s: %.60s", cases[k].what, raw);
        ASSERT(ob_mono_ms() - t0 < 3500);
        free(raw);
        ASSERT(t_closed(fd, 2000));
        close(fd);
        ob_http_server_free(s);
    }
}

TEST(idle_keep_alive_connection_is_closed)
{
    ob_http_opts o;
    t_opts(&o);
    o.idle_timeout_ms = 1000;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    int fd = t_connect(port);
    t_sends(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char *raw = t_read(fd, 1, 2000);
    ASSERT(strncmp(raw, "HTTP/1.1 200", 12) == 0);
    free(raw);
    ASSERT(!t_closed(fd, 400)); /* kept alive ... */
    ASSERT(t_closed(fd, 3000)); /* ... until idle */
    close(fd);
    ob_http_server_free(s);
}

TEST(connections_past_the_limit_get_503)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_connections = 2;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    int a = t_connect(port), b = t_connect(port);
    h_sleep_ms(100);
    int c = t_connect(port);
    t_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char *raw = t_read(c, 1, 2000);
    ASSERT(strncmp(raw, "HTTP/1.1 503", 12) == 0);
    ASSERT(strstr(raw, "too_many_connections") != NULL);
    free(raw);
    close(a);
    close(b);
    close(c);
    h_sleep_ms(200);
    char *out;
    t_curl(&out, port, URL "/hello", port); /* room again */
    ASSERT_STREQ(out, "200\nok");
    free(out);
    ob_http_server_free(s);
}

/* ---- the gate ---- */

static atomic_int gate_calls, len_calls;

/* Refuses without "X-Key: k"; /len may take 3 MB. */
static void gate(ob_http_req *r, void *arg)
{
    (void)arg;
    atomic_fetch_add(&gate_calls, 1);
    ASSERT(ob_http_body(r, NULL) == NULL); /* no body yet */
    ob_http_later *l;
    ASSERT_RC(ob_http_suspend(r, &l), OB_ESTATE);
    const char *k = ob_http_header(r, "X-Key");
    if (!k || strcmp(k, "k") != 0) {
        ob_http_set_header(r, "WWW-Authenticate", "Key");
        ob_http_reply_error(r, 401, "unauthorized", "no key", "X-Key");
        return;
    }
    if (strcmp(ob_http_route_pattern(r), "/len") == 0)
        ASSERT_OK(ob_http_set_max_body(r, 3000000));
}

static void counted_length(ob_http_req *r, void *arg)
{
    atomic_fetch_add(&len_calls, 1);
    t_length(r, arg);
}

TEST(a_gate_refuses_on_the_headers_without_reading_the_body)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_body = 1000;
    ob_http_server *s;
    ASSERT_OK(ob_http_server_new(&o, &s));
    ASSERT_OK(ob_http_route(s, "POST", "/len", counted_length, NULL, 0));
    ASSERT_OK(ob_http_route(s, "POST", "/echo", t_echo, NULL, OB_HTTP_JSON));
    ASSERT_OK(ob_http_set_gate(s, gate, NULL));
    int port = t_start(s);
    ASSERT_RC(ob_http_set_gate(s, gate, NULL), OB_ESTATE); /* before start only */
    /* 50 MB announced, none sent: refused at once, connection closed */
    int fd = t_connect(port);
    t_sends(fd, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n");
    char *raw = t_read(fd, 1, 2000);
    ASSERT(strncmp(raw, "HTTP/1.1 401", 12) == 0 && strstr(raw, "WWW-Authenticate: Key"));
    free(raw);
    ASSERT(t_closed(fd, 2000));
    close(fd);
    /* without a body the refusal keeps the connection */
    fd = t_connect(port);
    t_sends(fd, "POST /len HTTP/1.1\r\nHost: x\r\n\r\nPOST /len HTTP/1.1\r\nHost: x\r\nX-Key: k\r\n\r\n");
    raw = t_read(fd, 2, 2000);
    int st[2];
    ASSERT_EQ(t_statuses(raw, st, 2), 2);
    ASSERT_EQ(st[0], 401);
    ASSERT_EQ(st[1], 200);
    free(raw);
    close(fd);
    /* the gate's limit for this route: 2 MB passes here, not on /echo */
    ASSERT_EQ(t_run(NULL, "head -c 2000000 /dev/zero > two.bin"), 0);
    char *out;
    t_curl(&out, port, "-H 'X-Key: k' --data-binary @two.bin " URL "/len", port);
    ASSERT_STREQ(out, "200\n{\"len\":2000000}");
    free(out);
    t_curl(&out, port, "-H 'X-Key: k' -H 'Content-Type: application/json' --data-binary @two.bin "
                       URL "/echo", port);
    ASSERT(strncmp(out, "413\n", 4) == 0);
    free(out);
    ASSERT_EQ(atomic_load(&len_calls), 2);
    ASSERT(atomic_load(&gate_calls) >= 5);
    ob_http_server_free(s);
}

TEST(bodies_held_by_all_requests_are_bounded)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_body = 900000;
    o.max_body_total = 1 << 20;
    o.threads = 4;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    const char *head = "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 600000\r\n\r\nxx";
    int a = t_connect(port);
    t_sends(a, head); /* holds 600,000 of 1 MiB while it trickles */
    h_sleep_ms(100);
    int b = t_connect(port);
    t_sends(b, head);
    char *raw = t_read(b, 1, 2000);
    ASSERT(strncmp(raw, "HTTP/1.1 503", 12) == 0 && strstr(raw, "\"busy\""));
    free(raw);
    close(b);
    /* chunked bodies are counted as they come */
    ASSERT_EQ(t_run(NULL, "head -c 800000 /dev/zero > c.bin"), 0);
    char *out;
    t_curl(&out, port, "-H 'Transfer-Encoding: chunked' --data-binary @c.bin " URL "/len", port);
    ASSERT(strncmp(out, "503\n", 4) == 0);
    free(out);
    close(a); /* its bytes are released with it */
    h_sleep_ms(200);
    t_curl(&out, port, "-H 'Transfer-Encoding: chunked' --data-binary @c.bin " URL "/len", port);
    ASSERT_STREQ(out, "200\n{\"len\":800000}");
    free(out);
    ob_http_server_free(s);
}

TEST(connections_per_client_address_are_limited)
{
    ob_http_opts o;
    t_opts(&o);
    o.max_connections_per_ip = 3;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = t_connect(port);
    int closed = 0;
    for (int i = 0; i < 5; i++)
        closed += t_closed(fds[i], 300);
    ASSERT_EQ(closed, 2);
    char *out;
    t_curl(&out, port, "--interface 127.0.0.2 " URL "/hello", port);
    ASSERT_STREQ(out, "200\nok");
    free(out);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    ob_http_server_free(s);
}

/* ---- the request ends with its handler ---- */

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

#ifdef T_ASAN
static ob_http_req *volatile kept_req;
static const char *volatile kept_path;

static void keep(ob_http_req *r, void *arg)
{
    (void)arg;
    kept_req = r;
    kept_path = ob_http_path(r);
    ob_http_reply(r, 200, "text/plain", "kept", 4);
}

TEST(request_kept_past_handler_crashes_under_asan)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        ob_http_opts o;
        t_opts(&o);
        ob_http_server *s;
        ASSERT_OK(ob_http_server_new(&o, &s));
        ASSERT_OK(ob_http_route(s, "GET", "/keep", keep, NULL, 0));
        int port = t_start(s);
        char *out;
        t_curl(&out, port, URL "/keep", port);
        ASSERT_STREQ(out, "200\nkept");
        /* the bug: another thread reads the request after its handler returned */
        printf("path: %s\n", kept_path);
        _exit(0);
    }
    close(pipefd[1]);
    static char out[1 << 16];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(pipefd[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    int st;
    waitpid(pid, &st, 0);
    ASSERT(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
    ASSERT(strstr(out, "use-after-poison") != NULL || strstr(out, "use-after-free") != NULL);
}
#endif

/* ---- access log ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[16][512];
static int nlog;

static void collect(void *arg, const ob_http_access *a)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    if (nlog < 16)
        snprintf(log_lines[nlog++], sizeof log_lines[0], "%s", a->line);
    pthread_mutex_unlock(&log_mu);
}

TEST(one_access_log_line_per_request)
{
    ob_http_opts o;
    t_opts(&o);
    o.access_log = collect;
    ob_http_server *s = t_server(&o);
    int port = t_start(s);
    char *out;
    t_run(&out, "curl -s -o /dev/null -o /dev/null " URL "/hello " URL "/nope", port, port);
    free(out);
    ob_http_server_free(s);
    ASSERT_EQ(nlog, 2);
    ASSERT(strstr(log_lines[0], "\"method\":\"GET\"") && strstr(log_lines[0], "\"path\":\"/hello\""));
    ASSERT(strstr(log_lines[0], "\"status\":200") && strstr(log_lines[0], "\"bytes\":2"));
    ASSERT(strstr(log_lines[1], "\"status\":404") && strstr(log_lines[1], "\"remote\":\"127.0.0.1:"));
}

TEST(bad_routes_and_options_are_refused)
{
    ob_http_server *s;
    ob_http_opts o;
    t_opts(&o);
    o.threads = 0;
    ASSERT_RC(ob_http_server_new(&o, &s), OB_EINVAL);
    t_opts(&o);
    ASSERT_OK(ob_http_server_new(&o, &s));
    ASSERT_RC(ob_http_route(s, "GET", "no-slash", t_hello, NULL, 0), OB_EINVAL);
    ASSERT_RC(ob_http_route(s, "GET", "/a//", t_hello, NULL, 0), OB_EINVAL); /* an empty segment */
    ASSERT_OK(ob_http_route(s, "GET", "/a/", t_hello, NULL, 0)); /* a directory: /a/ alone */
    ASSERT_RC(ob_http_route(s, "GET", "/a/{}", t_hello, NULL, 0), OB_EINVAL);
    ASSERT_RC(ob_http_route(s, "G T", "/a", t_hello, NULL, 0), OB_EINVAL);
    ASSERT_OK(ob_http_route(s, "GET", "/", t_hello, NULL, 0));
    ob_http_server_free(s);
    t_opts(&o);
    o.listen = "nowhere";
    ASSERT_OK(ob_http_server_new(&o, &s));
    ASSERT_RC(ob_http_server_start(s), OB_EINVAL);
    ob_http_server_free(s);
    /* a port in use: refused, not shared (no SO_REUSEPORT) */
    t_opts(&o);
    ob_http_server *first;
    ASSERT_OK(ob_http_server_new(&o, &first));
    ASSERT_OK(ob_http_server_start(first));
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ob_http_server_port(first));
    o.listen = addr;
    ASSERT_OK(ob_http_server_new(&o, &s));
    ASSERT_RC(ob_http_server_start(s), OB_EADDR);
    ob_http_server_free(s);
    ob_http_server_free(first);
}

static const test_case tests[] = {
    T(a_gate_refuses_on_the_headers_without_reading_the_body),
    T(bodies_held_by_all_requests_are_bounded),
    T(connections_per_client_address_are_limited),
    T(routes_params_query_and_headers),
    T(unknown_path_is_404_and_wrong_method_405_with_allow),
    T(json_bodies_are_strict_and_typed),
    T(keep_alive_reuses_the_connection),
    T(pipelined_requests_are_answered_in_order),
    T(chunked_upload_and_100_continue),
    T(four_hundred_parallel_requests_all_get_200),
    T(too_many_or_too_large_headers_get_431),
    T(too_large_body_gets_413_without_reading_it),
    T(body_just_under_the_limit_is_taken_chunked_or_not),
    T(trickled_headers_or_body_get_408_by_their_deadline),
    T(idle_keep_alive_connection_is_closed),
    T(connections_past_the_limit_get_503),
#ifdef T_ASAN
    T(request_kept_past_handler_crashes_under_asan),
#endif
    T(one_access_log_line_per_request),
    T(bad_routes_and_options_are_refused),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
