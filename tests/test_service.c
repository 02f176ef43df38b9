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
 */
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
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
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
