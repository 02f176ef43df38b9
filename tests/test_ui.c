/*
 * test_ui.c - the dashboard in a real browser: tests/ui.js drives Debian's
 * Chromium (playwright-core) against the outboxd this file starts, with a
 * token. Screenshots go to the test's directory.
 */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "http_helpers.h"
#include "od_helpers.h"

#ifndef UI_JS
#error "UI_JS: tests/ui.js"
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
    od d = od_start("--token-file ./tokens --workers 0");
    char *out;
    int rc = t_run(&out, "NODE_PATH=%s node %s %s ui-token-0123456789abcdef %s 2>&1", NPM_TOOLS,
                   UI_JS, d.url, test_dir());
    printf("%s", out);
    ASSERT_EQ(rc, 0);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

static const test_case tests[] = {
    T(the_dashboard_works_in_a_real_browser),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
