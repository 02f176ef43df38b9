/*
 * relay_helpers.h - real SMTP servers for the tests (relay_helpers.c).
 */
#ifndef OB_TEST_RELAY_HELPERS_H
#define OB_TEST_RELAY_HELPERS_H

#include <sys/types.h>

typedef struct server {
    pid_t pid;
    int port;
    char dir[64];
} server;

/* Run argv (argv[0] a path) in a child that dies with the test, its
 * output into the file `out`. */
pid_t t_spawn(char *const argv[], const char *out);
/* Start smtp_relay.py keeping its mail in ./NAME, with `args` (space
 * separated, may be NULL). Waits for its READY line. */
server relay_start(const char *name, const char *args);
void server_stop(server *s);
/* A port free on 127.0.0.1 now. */
int free_port(void);
/* How many times the relay saw RCPT for `address`. */
int rcpt_count(const server *s, const char *address);

#endif
