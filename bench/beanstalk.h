/*
 * beanstalk.h - just enough of the beanstalkd protocol (doc/protocol.txt in
 * beanstalkd) to drive it as a peer in bench/: put, reserve, delete, and
 * starting/stopping a server on a free 127.0.0.1 port.
 */
#ifndef OB_BENCH_BEANSTALK_H
#define OB_BENCH_BEANSTALK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct bk_conn {
    int fd;
    char buf[1 << 16];
    size_t len, off;
} bk_conn;

/* Start beanstalkd on a free port; `binlog_dir` NULL means no binlog, else
 * binlog there with fsync on every write (-f0). Returns its pid, or -1. */
pid_t bk_start(const char *binlog_dir, int *port);
void bk_stop(pid_t pid);
/* Resident memory of a process, in KiB (from /proc). */
long bk_rss_kib(pid_t pid);

int bk_connect(bk_conn *c, int port); /* 0 or -1 */
void bk_close(bk_conn *c);
/* One put, waiting for INSERTED. 0 or -1. */
int bk_put(bk_conn *c, const void *data, size_t n, uint64_t *id);
/* Send `count` puts back to back, then read all replies. 0 or -1. */
int bk_put_pipelined(bk_conn *c, const void *data, size_t n, int count);
/* reserve-with-timeout: 0 with *id, 1 on timeout, -1 on error. The body is
 * read and dropped. */
int bk_reserve(bk_conn *c, int timeout_s, uint64_t *id);
int bk_delete(bk_conn *c, uint64_t id);

#endif
