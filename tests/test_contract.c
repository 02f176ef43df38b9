/*
 * test_contract.c - the API contract: tests/contract.js drives every
 * endpoint of a real outboxd to each answer it can give and validates
 * every response (status, required headers, body) against
 * docs/openapi.json with ajv, so that the document and the daemon cannot
 * drift apart. This file starts the daemons it needs: one with a token and
 * small limits (every error within reach), one without tokens (the 403s).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_helpers.h"
#include "od_helpers.h"

#ifndef CONTRACT_JS
#error "CONTRACT_JS: tests/contract.js"
#endif

TEST(every_answer_of_every_endpoint_matches_the_document)
{
    char check[600];
    snprintf(check, sizeof check, "%s/ajv", NPM_TOOLS);
    if (access(check, R_OK) != 0)
        test_fail(__FILE__, __LINE__, "%s is missing: scripts/test installs it (npm ci in tests/npm)",
                  check);
    int fd = open("tokens", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0 && write(fd, "contract-token-0123456789\n", 26) == 26);
    close(fd);
    od d = od_start("--token-file ./tokens --max-event-clients 0 --max-payload 5000 "
                    "--max-recipients 2 --max-batch 4 --smtp file:./mail");
    ASSERT_EQ(mkdir("open", 0700), 0);
    ASSERT_EQ(chdir("open"), 0);
    od open = od_start("--workers 0");
    ASSERT_EQ(chdir(".."), 0);
    char *out;
    int rc = t_run(&out, "NODE_PATH=%s node %s %s contract-token-0123456789 %s %s 2>&1", NPM_TOOLS,
                   CONTRACT_JS, d.url, open.url, OPENAPI_DOC);
    printf("%s", out);
    ASSERT_EQ(rc, 0);
    free(out);
    ASSERT_EQ(od_stop(&open, SIGTERM), 0);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
}

static const test_case tests[] = {
    T(every_answer_of_every_endpoint_matches_the_document),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
