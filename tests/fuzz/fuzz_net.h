/*
 * fuzz_net.h - the client side of the fuzz targets that talk to a real
 * server over loopback (fuzz_api.c, fuzz_wire.c): reading an answer and
 * closing the connection. Header-only: each target is one program.
 */
#ifndef OB_FUZZ_NET_H
#define OB_FUZZ_NET_H

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Read what fd answers into buf[cap] (NUL-terminated): until the server
 * closes, 2 s pass before the first byte, or 30 ms of silence after one.
 * *end (may be NULL) says how it ended. Returns the length. libFuzzer's
 * timer (-timeout) interrupts the reads: EINTR is not an end. */
static size_t fuzz_read_answer(int fd, char *buf, size_t cap, const char **end)
{
    size_t n = 0;
    struct pollfd pf = {fd, POLLIN, 0};
    const char *why = "no answer within 2 s";
    while (n < cap - 1) {
        int pr = poll(&pf, 1, n ? 30 : 2000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            why = r == 0 ? "closed by the server" : strerror(errno);
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    if (end)
        *end = why;
    return n;
}

/* Close with a RST: the server closed first, and its side would wait in
 * TIME_WAIT; at thousands of connections a second the ephemeral ports wrap
 * onto such pairs within half a minute. The RST ends the server side's
 * TIME_WAIT (RFC 1337's assassination, which Linux allows by default). */
static void fuzz_close_abortive(int fd)
{
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
    close(fd);
}

#endif
