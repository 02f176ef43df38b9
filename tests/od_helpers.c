/*
 * od_helpers.c - see od_helpers.h.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "http_helpers.h"
#include "od_helpers.h"

od od_start(const char *extra)
{
    char args[2048];
    snprintf(args, sizeof args,
             "--listen 127.0.0.1:0 --store sqlite:./outbox.db --log-file ./outboxd.log "
             "--callback-secret-file ./secret --workers 4 --http-allow 127.0.0.1/32 %s",
             extra ? extra : "");
    char *argv[64] = {"outboxd"};
    int argc = 1;
    for (char *t = strtok(args, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    unlink("outboxd.log");
    fflush(stdout);
    od d = {0};
    if (!getcwd(d.dir, sizeof d.dir))
        d.dir[0] = '\0';
    d.pid = fork();
    if (d.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test takes its daemon with it */
        int fd = open("outboxd.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(OUTBOXD, argv);
        _exit(127);
    }
    for (int i = 0; i < 1000 && !d.port; i++) {
        FILE *f = fopen("outboxd.log", "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "listening on http://127.0.0.1:");
            if (p)
                d.port = atoi(p + strlen("listening on http://127.0.0.1:"));
        }
        if (f)
            fclose(f);
        int st;
        if (!d.port && waitpid(d.pid, &st, WNOHANG) == d.pid)
            test_fail(__FILE__, __LINE__, "outboxd exited at start (status %d); see outboxd.log",
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        if (!d.port)
            h_sleep_ms(10);
    }
    ASSERT(d.port > 0);
    snprintf(d.url, sizeof d.url, "http://127.0.0.1:%d", d.port);
    return d;
}

int od_stop(od *d, int sig)
{
    kill(d->pid, sig);
    int st;
    waitpid(d->pid, &st, 0);
    if ((WIFSIGNALED(st) && WTERMSIG(st) != sig) || (WIFEXITED(st) && WEXITSTATUS(st) >= 128)) {
        char *out;
        printf("  outboxd (pid %d) in %s ended with status %d after signal %d; its stderr and "
               "log end:\n", (int)d->pid, d->dir, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
               sig);
        t_run(&out, "tail -n 30 '%s/outboxd.out'; tail -n 30 '%s/outboxd.log'", d->dir, d->dir);
        printf("%s", out);
        free(out);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void od_check_migrate(const char *url, void (*bump)(const char *url))
{
    char *out;
    ASSERT_EQ(t_run(&out, "%s migrate --store '%s' 2>&1", OUTBOXD, url), 0);
    ASSERT(strstr(out, "schema created at version") != NULL);
    free(out);
    ASSERT_EQ(t_run(&out, "%s migrate --store '%s' 2>&1", OUTBOXD, url), 0);
    ASSERT(strstr(out, "nothing to do") != NULL);
    free(out);
    bump(url);
    ASSERT_EQ(t_run(&out, "%s migrate --store '%s' 2>&1", OUTBOXD, url), 1);
    ASSERT(strstr(out, "upgrade outbox") && strstr(out, "written by a newer version"));
    free(out);
    /* timeout: a daemon that started anyway would serve until killed (124) */
    ASSERT_EQ(t_run(&out, "timeout 20 %s --store '%s' --listen 127.0.0.1:0 "
                          "--callback-secret-file ./secret --smtp file:./mail 2>&1",
                    OUTBOXD, url), 1);
    ASSERT(strstr(out, "cannot open the store") && strstr(out, "upgrade outbox"));
    free(out);
}

char *od_post(const od *d, const char *path, const char *curl_args, const char *body)
{
    char *out;
    FILE *f = fopen("body.json", "w");
    ASSERT(f != NULL);
    fputs(body, f);
    fclose(f);
    t_run(&out, "curl -s -m 30 -o resp -w '%%{http_code}\\n' -H 'Content-Type: application/json' "
                "%s --data-binary @body.json %s%s; cat resp",
          curl_args ? curl_args : "", d->url, path);
    return out;
}

void od_json_str(const char *json, const char *key, char *out, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p)
        test_fail(__FILE__, __LINE__, "no \"%s\" in %.200s", key, json ? json : "(null)");
    p += strlen(pat);
    size_t k = strcspn(p, "\"");
    ASSERT(k < n);
    memcpy(out, p, k);
    out[k] = '\0';
}
