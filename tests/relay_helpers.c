/*
 * relay_helpers.c - real SMTP servers for the tests: tests/smtp_relay.py
 * (aiosmtpd, scripted by recipient) started in the test's directory on a
 * free port, and what it saw.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "relay_helpers.h"

#ifndef SMTP_RELAY
#error "SMTP_RELAY: the path of tests/smtp_relay.py"
#endif

pid_t t_spawn(char *const argv[], const char *out)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    ASSERT(pid > 0);
    return pid;
}

/* Start smtp_relay.py keeping its mail in ./NAME, with `args` (space
 * separated, may be NULL). Waits for its READY line. */
server relay_start(const char *name, const char *args)
{
    server s = {0};
    snprintf(s.dir, sizeof s.dir, "%s", name);
    mkdir(name, 0755);
    char buf[1024], out[128];
    snprintf(buf, sizeof buf, "--dir %s %s", name, args ? args : "");
    snprintf(out, sizeof out, "%s.out", name);
    char *argv[32] = {"/usr/bin/python3", SMTP_RELAY};
    int argc = 2;
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    s.pid = t_spawn(argv, out);
    for (int i = 0; i < 1000 && !s.port; i++) {
        FILE *f = fopen(out, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "READY ", 6))
                s.port = atoi(line + 6);
        if (f)
            fclose(f);
        int st;
        if (!s.port && waitpid(s.pid, &st, WNOHANG) == s.pid)
            test_fail(__FILE__, __LINE__, "smtp_relay.py exited; see %s", out);
        if (!s.port)
            h_sleep_ms(10);
    }
    ASSERT(s.port > 0);
    return s;
}

void server_stop(server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

int free_port(void)
{
    int port = test_free_port();
    ASSERT(port > 0);
    return port;
}

/* How many times the relay saw RCPT for `address`. */
int rcpt_count(const server *s, const char *address)
{
    char path[128], line[512];
    snprintf(path, sizeof path, "%s/rcpt.log", s->dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    size_t len = strlen(address);
    while (f && fgets(line, sizeof line, f))
        n += !strncmp(line, address, len) && line[len] == ' ';
    if (f)
        fclose(f);
    return n;
}
