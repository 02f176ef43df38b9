/*
 * beanstalk.c - see beanstalk.h. Blocking sockets, one connection per
 * thread, a read buffer per connection; replies are parsed line by line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "beanstalk.h"

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

pid_t bk_start(const char *binlog_dir, int *port)
{
    *port = free_port();
    if (*port < 0)
        return -1;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", *port);
    pid_t pid = fork();
    if (pid == 0) {
        if (binlog_dir)
            execlp("beanstalkd", "beanstalkd", "-l", "127.0.0.1", "-p", ps, "-b", binlog_dir,
                   "-f0", "-z", "65535", (char *)NULL);
        else
            execlp("beanstalkd", "beanstalkd", "-l", "127.0.0.1", "-p", ps, "-z", "65535",
                   (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* up to 5 s to listen */
        int fd = dial(*port);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

void bk_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

long bk_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

int bk_connect(bk_conn *c, int port)
{
    c->len = c->off = 0;
    c->fd = dial(port);
    return c->fd < 0 ? -1 : 0;
}

void bk_close(bk_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int send_all(bk_conn *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = write(c->fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read one reply line (without CRLF) into line[cap]. 0 or -1. */
static int read_line(bk_conn *c, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
        if (nl) {
            size_t n = (size_t)(nl - (c->buf + c->off));
            if (n && nl[-1] == '\r')
                n--;
            if (n >= cap)
                n = cap - 1;
            memcpy(line, c->buf + c->off, n);
            line[n] = '\0';
            c->off = (size_t)(nl - c->buf) + 1;
            return 0;
        }
        if (c->off) {
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        if (c->len == sizeof c->buf)
            return -1;
        ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
    }
}

/* Skip n bytes of body plus its CRLF. */
static int skip_body(bk_conn *c, size_t n)
{
    n += 2;
    while (n) {
        size_t have = c->len - c->off;
        if (have) {
            size_t k = have < n ? have : n;
            c->off += k;
            n -= k;
            continue;
        }
        c->off = c->len = 0;
        ssize_t r = read(c->fd, c->buf, sizeof c->buf);
        if (r <= 0)
            return -1;
        c->len = (size_t)r;
    }
    return 0;
}

static size_t put_cmd(char *out, size_t cap, const void *data, size_t n)
{
    int h = snprintf(out, cap, "put 1024 0 60 %zu\r\n", n);
    memcpy(out + h, data, n);
    memcpy(out + h + n, "\r\n", 2);
    return (size_t)h + n + 2;
}

int bk_put(bk_conn *c, const void *data, size_t n, uint64_t *id)
{
    char cmd[4096], line[128];
    if (n > sizeof cmd - 64)
        return -1;
    size_t len = put_cmd(cmd, sizeof cmd, data, n);
    unsigned long long v;
    if (send_all(c, cmd, len) || read_line(c, line, sizeof line) ||
        sscanf(line, "INSERTED %llu", &v) != 1)
        return -1;
    if (id)
        *id = v;
    return 0;
}

int bk_put_pipelined(bk_conn *c, const void *data, size_t n, int count)
{
    char cmd[4096], line[128];
    size_t len = put_cmd(cmd, sizeof cmd, data, n);
    size_t per = (sizeof(c->buf) / 2) / len;
    char *out = malloc(per * len);
    if (!out)
        return -1;
    for (size_t i = 0; i < per; i++)
        memcpy(out + i * len, cmd, len);
    int rc = 0;
    for (int done = 0; done < count && !rc;) {
        int k = count - done < (int)per ? count - done : (int)per;
        rc = send_all(c, out, (size_t)k * len);
        for (int i = 0; i < k && !rc; i++)
            rc = read_line(c, line, sizeof line) || strncmp(line, "INSERTED", 8) != 0;
        done += k;
    }
    free(out);
    return rc ? -1 : 0;
}

int bk_reserve(bk_conn *c, int timeout_s, uint64_t *id)
{
    char cmd[64], line[128];
    int n = snprintf(cmd, sizeof cmd, "reserve-with-timeout %d\r\n", timeout_s);
    if (send_all(c, cmd, (size_t)n) || read_line(c, line, sizeof line))
        return -1;
    if (strcmp(line, "TIMED_OUT") == 0)
        return 1;
    unsigned long long v;
    size_t len;
    if (sscanf(line, "RESERVED %llu %zu", &v, &len) != 2 || skip_body(c, len))
        return -1;
    *id = v;
    return 0;
}

int bk_delete(bk_conn *c, uint64_t id)
{
    char cmd[64], line[128];
    int n = snprintf(cmd, sizeof cmd, "delete %llu\r\n", (unsigned long long)id);
    if (send_all(c, cmd, (size_t)n) || read_line(c, line, sizeof line))
        return -1;
    return strcmp(line, "DELETED") == 0 ? 0 : -1;
}
