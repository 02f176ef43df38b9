/*
 * http_helpers.c - see http_helpers.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_helpers.h"

void t_opts(ob_http_opts *o)
{
    ob_http_opts_init(o);
    o->listen = "127.0.0.1:0";
    o->threads = 2;
    o->header_timeout_ms = 2000;
    o->body_timeout_ms = 2000;
    o->idle_timeout_ms = 3000;
}

int t_start(ob_http_server *s)
{
    ASSERT_OK(ob_http_server_start(s));
    int port = ob_http_server_port(s);
    ASSERT(port > 0);
    return port;
}

__attribute__((format(printf, 2, 0))) static int run_v(char **out, const char *fmt,
                                                        va_list ap)
{
    char cmd[8192];
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    FILE *p = popen(cmd, "r");
    ASSERT(p != NULL);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 2048)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int t_run(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_v(out, fmt, ap);
    va_end(ap);
    return rc;
}

int t_curl(char **out, int port, const char *fmt, ...)
{
    char args[6000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    (void)port; /* the URL is in args */
    return t_run(out, "curl -s -m 20 -o curl-body -w '%%{http_code}\n' %s; cat curl-body; "
                 "rm -f curl-body", args);
}

int t_try_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int t_connect(int port)
{
    int fd = t_try_connect(port);
    ASSERT(fd >= 0);
    return fd;
}

void t_send(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        ASSERT(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

void t_sends(int fd, const char *s) { t_send(fd, s, strlen(s)); }

/* Count complete responses in raw (Content-Length bodies only). */
static int complete(const char *raw, size_t n)
{
    int count = 0;
    const char *p = raw, *end = raw + n;
    while (p < end) {
        const char *hdr_end = strstr(p, "\r\n\r\n");
        if (!hdr_end)
            break;
        const char *cl = strcasestr(p, "Content-Length:");
        size_t len = cl && cl < hdr_end ? strtoul(cl + 15, NULL, 10) : 0;
        if ((size_t)(end - (hdr_end + 4)) < len)
            break;
        p = hdr_end + 4 + len;
        count++;
    }
    return count;
}

char *t_read(int fd, int want, int ms)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    struct pollfd pf = {fd, POLLIN, 0};
    while (n < cap - 1 && (want <= 0 || complete(buf, n) < want)) {
        buf[n] = '\0';
        if (poll(&pf, 1, ms) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

int t_statuses(const char *raw, int *st, int max)
{
    int k = 0;
    for (const char *p = raw; k < max && (p = strstr(p, "HTTP/1.1 ")); p += 9)
        st[k++] = atoi(p + 9);
    return k;
}

bool t_closed(int fd, int ms)
{
    struct pollfd pf = {fd, POLLIN, 0};
    int64_t until = ob_now_ms() + ms;
    char b[4096];
    while (ob_now_ms() < until) {
        if (poll(&pf, 1, 50) > 0) {
            ssize_t r = recv(fd, b, sizeof b, 0);
            if (r <= 0)
                return true;
        }
    }
    return false;
}
