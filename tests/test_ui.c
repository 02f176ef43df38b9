/*
 * test_ui.c - the dashboard in a real browser: tests/ui.js drives Debian's
 * Chromium (playwright-core) against the outboxd this file starts, with a
 * token, two workers, mail to a real SMTP relay (smtp_relay.py on aiosmtpd:
 * 250 to most recipients, 550 to rcpt550-*) and outbound HTTP allowed to
 * loopback, where ui.js runs the webhook target its jobs call.
 * Screenshots go to UI_SHOTS (the build tree's ui-shots/, kept after the
 * test: docs/img/ holds the README's copy).
 */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "http_helpers.h"
#include "od_helpers.h"
#include "relay_helpers.h"

#ifndef UI_JS
#error "UI_JS: tests/ui.js"
#endif
#ifndef UI_SHOTS
#error "UI_SHOTS: where the screenshots go"
#endif

TEST(the_dashboard_works_in_a_real_browser)
{
    char check[600];
    snprintf(check, sizeof check, "%s/playwright-core", NPM_TOOLS);
    if (access(check, R_OK) != 0 || access("/usr/bin/chromium", X_OK) != 0)
        test_fail(__FILE__, __LINE__, "%s or /usr/bin/chromium is missing: scripts/test installs "
                  "them", check);
    int fd = open("tokens", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0 && write(fd, "ui-token-0123456789abcdef\n", 26) == 26);
    close(fd);
    server relay = relay_start("relay", NULL);
    char flags[512];
    snprintf(flags, sizeof flags,
             "--token-file ./tokens --workers 2 --http-allow 127.0.0.1/32 "
             "--smtp smtp://127.0.0.1:%d?starttls=no --mail-retry-min 1 --mail-retry-max 1",
             relay.port);
    od d = od_start(flags);
    char *out;
    ASSERT_EQ(t_run(NULL, "mkdir -p %s", UI_SHOTS), 0);
    int rc = t_run(&out, "NODE_PATH=%s node %s %s ui-token-0123456789abcdef %s 2>&1", NPM_TOOLS,
                   UI_JS, d.url, UI_SHOTS);
    printf("%s", out);
    ASSERT_EQ(rc, 0);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    server_stop(&relay);
}

static const test_case tests[] = {
    T(the_dashboard_works_in_a_real_browser),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
