/*
 * fuzz_wire.c - libFuzzer target: arbitrary bytes sent over TCP to a real
 * server (libmicrohttpd with our handlers behind it), so that whatever a
 * client can make reach our code — the checks on headers and bodies, the
 * copying into the arena, routing, JSON bodies, replies — gets the input.
 * Each input: connect, send it, half-close, read until the server closes or
 * goes quiet (libmicrohttpd may keep a half-closed connection open after
 * its last response until the idle timeout; our handlers answer at once).
 * The server must never crash, and what it sends must be HTTP/1.1
 * responses (or nothing).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_net.h"
#include "outbox/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int port;

static void echo(ob_http_req *r, void *arg)
{
    (void)arg;
    json_t *v = ob_http_body_json(r);
    if (v)
        ob_http_reply_json(r, 200, v);
}

static void item(ob_http_req *r, void *arg)
{
    (void)arg;
    json_t *j = json_pack("{s:s?, s:s?, s:s?}", "id", ob_http_param(r, "id"), "q",
                          ob_http_query(r, "q"), "h", ob_http_header(r, "X-H"));
    if (!j) /* a value that is not UTF-8 */
        ob_http_reply_error(r, 400, "bad", "not UTF-8", NULL);
    else
        ob_http_reply_json(r, 200, j);
    json_decref(j);
}

static void later(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_later *l;
    if (ob_http_suspend(r, &l) == 0)
        ob_http_later_reply(l, 202, "text/plain", "later", 5);
}

static void setup(void)
{
    ob_log_set(NULL, NULL, OB_LOG_ERROR + 1);
    ob_http_opts o;
    ob_http_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.max_body = 4096;
    o.max_header_bytes = 2048;
    o.max_headers = 20;
    o.header_timeout_ms = 500;
    o.body_timeout_ms = 500;
    ob_http_server *s;
    if (ob_http_server_new(&o, &s) || ob_http_route(s, "POST", "/echo", echo, NULL, OB_HTTP_JSON) ||
        ob_http_route(s, "GET", "/items/{id}", item, NULL, 0) ||
        ob_http_route(s, "GET", "/later", later, NULL, 0) || ob_http_server_start(s))
        abort();
    port = ob_http_server_port(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!port)
        setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a))
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server closed early (an error response): fine */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    static char buf[1 << 16];
    size_t n = fuzz_read_answer(fd, buf, sizeof buf, NULL);
    fuzz_close_abortive(fd);
    if (n && strncmp(buf, "HTTP/1.", 7) != 0)
        abort();
    return 0;
}
