/*
 * test_seed_handler.c - examples/seed_handler, run as a program and driven
 * with curl: the mail is acknowledged (202) only once stored, delivered
 * over SMTP to a real relay (tests/smtp_relay.py) with each recipient's
 * reply — a 550 bounces one, a 451 is retried — and can be followed to
 * that outcome; bad input is refused naming the field, the closure variant
 * shows value semantics, a store that cannot take the job makes it answer
 * 503 (never a 202 for a job that is not stored), and SIGTERM stops it
 * cleanly.
 */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "http_helpers.h"
#include "relay_helpers.h"

#ifndef SEED_HANDLER
#error "SEED_HANDLER: the path of the example binary"
#endif

typedef struct proc {
    pid_t pid;
    int port;
    FILE *out;
} proc;

/* Start the example in the test directory, its mail going to `smtp`
 * (NULL: its default, file:./mail); fsize_limit > 0 caps the size of any
 * file it writes (a disk that fills up). */
static proc start_to(const char *smtp, long fsize_limit)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    fflush(stdout);
    proc x = {0};
    x.pid = fork();
    if (x.pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        if (fsize_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit r = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            setrlimit(RLIMIT_FSIZE, &r);
        }
        execl(SEED_HANDLER, "seed_handler", "--listen", "127.0.0.1:0", "--store",
              "sqlite:./seed.db", "--retry-min", "1", smtp ? "--smtp" : (char *)NULL, smtp,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    x.out = fdopen(p[0], "r");
    char line[256];
    ASSERT(fgets(line, sizeof line, x.out) != NULL);
    ASSERT_EQ(sscanf(line, "listening on 127.0.0.1:%d", &x.port), 1);
    return x;
}

static proc start(long fsize_limit) { return start_to(NULL, fsize_limit); }

static void stop(proc *x)
{
    kill(x->pid, SIGTERM);
    int st;
    waitpid(x->pid, &st, 0);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    fclose(x->out);
}

/* The value of "key":"..." in a JSON text (enough for these answers). */
static void json_str(const char *json, const char *key, char *out, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    ASSERT(p != NULL);
    p += strlen(pat);
    size_t k = strcspn(p, "\"");
    ASSERT(k < n);
    memcpy(out, p, k);
    out[k] = '\0';
}

#define URL "http://127.0.0.1:%d"

static char *wait_done(int port, const char *id)
{
    for (int i = 0; i < 200; i++) {
        char *out;
        t_curl(&out, port, URL "/jobs/%s", port, id);
        if (strstr(out, "\"state\":\"completed\"") || strstr(out, "\"state\":\"discarded\""))
            return out;
        free(out);
        h_sleep_ms(20);
    }
    test_fail(__FILE__, __LINE__, "job %s did not finish", id);
}

TEST(mail_is_acknowledged_once_stored_and_can_be_followed)
{
    proc x = start(0);
    char *out, id[64];
    t_run(&out, "curl -s -D - -H 'Content-Type: application/json' "
                "-d '{\"to\":\"ann@example.org\",\"subject\":\"hi\",\"text\":\"hello\"}' " URL "/mail",
          x.port);
    ASSERT(strncmp(out, "HTTP/1.1 202", 12) == 0);
    json_str(strstr(out, "\r\n\r\n"), "id", id, sizeof id);
    ASSERT(strcasestr(out, "Location: /jobs/") != NULL);
    free(out);
    out = wait_done(x.port, id);
    ASSERT(strstr(out, "\"state\":\"completed\"") != NULL);
    ASSERT(strstr(out, "\"address\":\"ann@example.org\",\"state\":\"delivered\",\"code\":250"));
    free(out);
    /* the file transport: the message, built, named after its job */
    ASSERT_EQ(t_run(&out, "grep -c '^Subject: hi' mail/%s.eml", id), 0);
    free(out);
    stop(&x);
}

TEST(mail_goes_over_smtp_with_each_recipients_reply)
{
    server relay = relay_start("relay", NULL);
    char smtp[64], *out, id[64];
    snprintf(smtp, sizeof smtp, "smtp://127.0.0.1:%d?starttls=no", relay.port);
    proc x = start_to(smtp, 0);
    t_run(&out, "curl -s -H 'Content-Type: application/json' -d '{\"to\":[\"ann@example.org\","
                "\"rcpt550-bob@example.org\",\"flaky1-cy@example.org\"],\"subject\":\"hi\","
                "\"text\":\"hello\"}' " URL "/mail", x.port);
    json_str(out, "id", id, sizeof id);
    free(out);
    out = wait_done(x.port, id); /* cy is deferred once, retried a second later */
    printf("  %s\n", out);
    ASSERT(strstr(out, "\"state\":\"completed\",\"attempt\":2") != NULL);
    ASSERT(strstr(out, "\"address\":\"ann@example.org\",\"state\":\"delivered\",\"code\":250"));
    ASSERT(strstr(out, "\"address\":\"rcpt550-bob@example.org\",\"state\":\"bounced\","
                       "\"code\":550,\"enhanced\":\"5.1.1\""));
    ASSERT(strstr(out, "\"address\":\"flaky1-cy@example.org\",\"state\":\"delivered\","
                       "\"code\":250"));
    free(out);
    /* the bounced and the delivered were asked once; only the deferred again */
    ASSERT_EQ(rcpt_count(&relay, "ann@example.org"), 1);
    ASSERT_EQ(rcpt_count(&relay, "rcpt550-bob@example.org"), 1);
    ASSERT_EQ(rcpt_count(&relay, "flaky1-cy@example.org"), 2);
    /* the relay holds the message, from the default sender */
    ASSERT_EQ(t_run(&out, "grep -l '^Subject: hi' relay/*.eml | wc -l"), 0);
    ASSERT(atoi(out) == 2);
    free(out);
    ASSERT_EQ(t_run(NULL, "grep -q 'seed@example.com' relay/1.json"), 0);
    stop(&x);
    server_stop(&relay);
}

TEST(bad_mail_is_refused_naming_the_field)
{
    proc x = start(0);
    char *out;
    t_curl(&out, x.port, "-H 'Content-Type: application/json' -d '{\"to\":\"nobody\"}' " URL "/mail",
           x.port);
    ASSERT(strncmp(out, "422\n", 4) == 0 && strstr(out, "\"field\":\"to\""));
    free(out);
    t_curl(&out, x.port, "-H 'Content-Type: application/json' -d '{\"to\":\"a@b\"}' " URL "/mail",
           x.port);
    ASSERT(strncmp(out, "422\n", 4) == 0 && strstr(out, "\"field\":\"subject\""));
    free(out);
    t_curl(&out, x.port, "-H 'Content-Type: text/plain' -d 'hi' " URL "/mail", x.port);
    ASSERT(strncmp(out, "415\n", 4) == 0);
    free(out);
    t_curl(&out, x.port, "-H 'Content-Type: application/json' -d '{' " URL "/mail", x.port);
    ASSERT(strncmp(out, "400\n", 4) == 0 && strstr(out, "invalid_json"));
    free(out);
    stop(&x);
}

TEST(closure_variant_copies_the_value)
{
    proc x = start(0);
    char *out, id[64];
    t_curl(&out, x.port, "-X POST '" URL "/closure?foo=41'", x.port);
    ASSERT(strncmp(out, "202\n", 4) == 0 && strstr(out, "\"foo_in_handler_now\":42"));
    json_str(out, "id", id, sizeof id);
    free(out);
    out = wait_done(x.port, id);
    ASSERT(strstr(out, "\"foo_seen_by_job\":41") != NULL);
    free(out);
    stop(&x);
}

TEST(store_that_cannot_take_the_job_means_503_never_202)
{
    ASSERT_EQ(t_run(NULL, "head -c 150000 /dev/zero | tr '\\0' a > text.txt && "
                          "printf '{\"to\":\"a@b\",\"subject\":\"s\",\"text\":\"%%s\"}' "
                          "\"$(cat text.txt)\" > big.json"),
              0);
    proc x = start(1 << 20); /* files may not grow past 1 MiB */
    char acked[32][64];
    int n202 = 0, n503 = 0;
    for (int i = 0; i < 30 && !n503; i++) {
        char *out;
        t_curl(&out, x.port, "-H 'Content-Type: application/json' --data-binary @big.json " URL
                             "/mail", x.port);
        if (strncmp(out, "202\n", 4) == 0)
            json_str(out, "id", acked[n202++], sizeof acked[0]);
        else if (strncmp(out, "503\n", 4) == 0)
            n503++;
        else
            test_fail(__FILE__, __LINE__, "unexpected answer: %.80s", out);
        free(out);
    }
    printf("  %d mails acknowledged, then 503\n", n202);
    ASSERT(n202 > 0 && n503 == 1);
    stop(&x);
    x = start(0); /* every acknowledged mail is there and gets sent */
    for (int i = 0; i < n202; i++) {
        char *out = wait_done(x.port, acked[i]);
        ASSERT(strstr(out, "\"state\":\"completed\"") != NULL);
        free(out);
    }
    stop(&x);
}

static const test_case tests[] = {
    T(mail_is_acknowledged_once_stored_and_can_be_followed),
    T(mail_goes_over_smtp_with_each_recipients_reply),
    T(bad_mail_is_refused_naming_the_field),
    T(closure_variant_copies_the_value),
    T(store_that_cannot_take_the_job_means_503_never_202),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
