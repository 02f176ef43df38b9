/*
 * test_service.c - outboxd under systemd, without systemd (CI has no
 * init): the notification protocol read from a socket of our own, as
 * systemd would read it, and the unit checked by systemd's own tools.
 *
 *   - READY=1 once it serves; WATCHDOG=1 at half the WatchdogSec period;
 *     SIGHUP: RELOADING=1, then READY=1; SIGTERM: STOPPING=1, exit 0.
 *   - systemd/outboxd.service: `systemd-analyze verify` clean, and
 *     `systemd-analyze security` rating it OK or better (the score is
 *     printed).
 *   - systemd/outboxd.conf, the example config, is one outboxd takes.
 *   - with stderr the journal, the log goes through the journal's protocol
 *     with PRIORITY, SYSLOG_IDENTIFIER and OUTBOX_JOB_ID.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http_helpers.h"
#include "od_helpers.h"

#ifndef UNIT_IN
#error "UNIT_IN: systemd/outboxd.service.in"
#endif
#ifndef CONF
#error "CONF: systemd/outboxd.conf"
#endif

/* Datagrams received within ms, appended to buf. */
static void drain(int fd, int64_t ms, char *buf, size_t cap)
{
    int64_t end = ob_now_ms() + ms;
    struct timeval tv = {0, 20000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (ob_now_ms() < end) {
        size_t n = strlen(buf);
        ssize_t r = recv(fd, buf + n, cap - n - 2, 0);
        if (r > 0) {
            buf[n + (size_t)r] = '\n';
            buf[n + (size_t)r + 1] = '\0';
        }
    }
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

TEST(it_tells_systemd_ready_reloading_stopping_and_feeds_the_watchdog)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", test_dir());
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    setenv("WATCHDOG_USEC", "400000", 1); /* fed every 200 ms */
    od d = od_start(NULL);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    static char got[65536];
    got[0] = '\0';
    drain(fd, 1000, got, sizeof got);
    ASSERT(strstr(got, "READY=1") && strstr(got, "STATUS=listening on 127.0.0.1:"));
    int beats = count(got, "WATCHDOG=1");
    printf("  in the first second: READY, %d watchdog beats\n", beats);
    ASSERT(beats >= 3 && beats <= 7);
    got[0] = '\0';
    ASSERT_EQ(kill(d.pid, SIGHUP), 0);
    drain(fd, 500, got, sizeof got);
    const char *rel = strstr(got, "RELOADING=1"), *ready = rel ? strstr(rel, "READY=1") : NULL;
    ASSERT(rel && ready); /* reloading, then ready again */
    got[0] = '\0';
    ASSERT_EQ(kill(d.pid, SIGTERM), 0);
    drain(fd, 500, got, sizeof got);
    ASSERT(strstr(got, "STOPPING=1"));
    ASSERT_EQ(od_stop(&d, 0), 0);
    close(fd);
}

TEST(the_unit_verifies_and_is_rated_ok_or_better)
{
    char *out;
    ASSERT_EQ(t_run(NULL, "sed 's|@OB_SBINDIR@|%s|' %s > outboxd.service", OUTBOXD_DIR,
                    UNIT_IN), 0);
    int rc = t_run(&out, "systemd-analyze verify --man=no ./outboxd.service 2>&1");
    printf("%s", out);
    ASSERT_EQ(rc, 0);
    ASSERT(out[0] == '\0'); /* not even a warning */
    free(out);
    ASSERT_EQ(t_run(&out, "systemd-analyze security --offline=true --no-pager ./outboxd.service "
                          "2>&1 | tail -n 1"), 0);
    printf("  %s", out);
    ASSERT(strstr(out, "Overall exposure level for outboxd.service:"));
    ASSERT(strstr(out, " OK") || strstr(out, " SAFE"));
    free(out);
}

/* A bound datagram socket at path (made fresh), or -1. */
static int dgram_at(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Under systemd, stderr is the journal: outboxd logs through the journal's
 * own protocol, each line with its priority and the job it names. Read
 * here from the journal's socket (CI has no journald: the test is it), or,
 * where a journald runs, back from journalctl. */
TEST(its_log_goes_to_the_journal_with_priority_and_job_id)
{
    static const char jpath[] = "/run/systemd/journal/socket";
    /* a journald answers at its socket; a file left by a test that died
     * does not */
    int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un ja = {.sun_family = AF_UNIX};
    snprintf(ja.sun_path, sizeof ja.sun_path, "%s", jpath);
    bool real = connect(probe, (struct sockaddr *)&ja, sizeof ja) == 0;
    close(probe);
    int jfd = -1;
    if (!real) {
        ASSERT_EQ(t_run(NULL, "mkdir -p /run/systemd/journal"), 0);
        ASSERT((jfd = dgram_at(jpath)) >= 0);
    }
    char npath[600];
    snprintf(npath, sizeof npath, "%s/notify", test_dir());
    int nfd = dgram_at(npath);
    ASSERT(nfd >= 0);
    int err = open("stderr.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct stat st;
    ASSERT(err >= 0 && fstat(err, &st) == 0);
    char stream[64];
    snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(err, STDERR_FILENO);
        setenv("JOURNAL_STREAM", stream, 1);
        setenv("NOTIFY_SOCKET", npath, 1);
        execl(OUTBOXD, OUTBOXD, "--listen", "127.0.0.1:0", "--workers", "0", (char *)NULL);
        _exit(127);
    }
    close(err);
    static char got[65536];
    got[0] = '\0';
    drain(nfd, 3000, got, sizeof got); /* READY, and the port in its status */
    const char *at = strstr(got, "STATUS=listening on 127.0.0.1:");
    ASSERT(at);
    int port = atoi(at + strlen("STATUS=listening on 127.0.0.1:"));
    char *out;
    ASSERT_EQ(t_run(&out, "curl -s -H 'Content-Type: application/json' -d "
                          "'{\"kind\":\"http.request\",\"payload\":{\"url\":\"https://example.com/\"}}' "
                          "http://127.0.0.1:%d/v1/jobs", port), 0);
    char id[40];
    od_json_str(out, "id", id, sizeof id);
    free(out);
    ASSERT(strlen(id) == 36);
    if (!real) {
        got[0] = '\0';
        drain(jfd, 1000, got, sizeof got);
        char want[96];
        snprintf(want, sizeof want, "OUTBOX_JOB_ID=%s", id);
        ASSERT(strstr(got, want) && strstr(got, "PRIORITY=6") &&
               strstr(got, "SYSLOG_IDENTIFIER=outboxd") && strstr(got, "MESSAGE=job "));
        ASSERT(strstr(got, "MESSAGE=outboxd 0.") && strstr(got, "listening on"));
    } else {
        usleep(1000 * 1000);
        ASSERT_EQ(t_run(&out, "journalctl --no-pager -o cat _PID=%d OUTBOX_JOB_ID=%s", (int)pid, id),
                  0);
        ASSERT(strstr(out, "job ") && strstr(out, id));
        free(out);
    }
    ASSERT_EQ(t_run(&out, "cat stderr.txt"), 0); /* nothing went to plain stderr */
    ASSERT(out[0] == '\0');
    free(out);
    kill(pid, SIGTERM);
    int ws;
    waitpid(pid, &ws, 0);
    ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    if (jfd >= 0) {
        close(jfd);
        unlink(jpath);
    }
    close(nfd);
}

/* The config the package installs is one outboxd takes (every name and
 * value checked at start: a bad line refuses to start, naming it). */
TEST(the_shipped_config_is_valid)
{
    ASSERT_EQ(t_run(NULL, "sed 's|/var/lib/outbox/|./|' %s > outboxd.conf", CONF), 0);
    od d = od_start("--config ./outboxd.conf");
    char *out;
    ASSERT_EQ(t_run(&out, "cat outboxd.log"), 0);
    ASSERT(strstr(out, "mail to file:./mail") && strstr(out, "4 workers"));
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

static const test_case tests[] = {
    T(it_tells_systemd_ready_reloading_stopping_and_feeds_the_watchdog),
    T(the_unit_verifies_and_is_rated_ok_or_better),
    T(the_shipped_config_is_valid),
    T(its_log_goes_to_the_journal_with_priority_and_job_id),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
