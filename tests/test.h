/*
 * test.h - the test harness. A test file lists its tests in a table and
 * calls test_main(); each test runs in a forked child, in a fresh temporary
 * directory (its cwd), under a timeout, so one crash or hang fails one test
 * and state never leaks between tests.
 *
 *   TEST(enqueue_is_durable) { ... ASSERT_EQ(a, b); ... }
 *   static const test_case tests[] = { T(enqueue_is_durable), ... };
 *   int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
 *
 * `./test_x name` runs one test; OB_TEST_TIMEOUT (seconds) changes the
 * timeout (default 120).
 *
 * The store. OB_TEST_STORE=postgres runs the same tests on PostgreSQL (the
 * contract suite: what one store promises, the other must too): the
 * harness starts a private server (tests/pg_server.sh) for the run, unless
 * OB_TEST_PG_URL names one, and test_url() gives each test a schema of its
 * own. Tests that are about one store only are listed with T_ONLY(store,
 * name); the others are skipped, and counted as skipped, on the other one.
 */
#ifndef OB_TEST_H
#define OB_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/jobs.h"

typedef struct test_case {
    const char *name;
    void (*fn)(void);
    const char *only; /* NULL, or the one store ("sqlite", "postgres") it is about */
} test_case;

#define TEST(name) static void name(void)
#define T(name) {#name, name, NULL}
#define T_ONLY(store, name) {#name, name, store}
#define NTESTS(t) (sizeof(t) / sizeof((t)[0]))

int test_main(int argc, char **argv, const test_case *tests, size_t n);
/* The running test's temporary directory (absolute). */
const char *test_dir(void);
/* The store the tests run on: "sqlite" (default) or "postgres". */
const char *test_store(void);
/* A store URL for `name`, in a static buffer: "sqlite:<test_dir>/<name>",
 * or a PostgreSQL URL whose schema (created here) belongs to this test and
 * name. */
const char *test_url(const char *name);
/* The PostgreSQL server's base URL (postgres store only), and a connection
 * to `url` for a test's own SQL (fails the test if it cannot connect). */
const char *test_pg_base(void);
/* A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
 * released): for a server a test starts itself. 0 if none was found. */
int test_free_port(void);
struct pg_conn *test_pg_connect(const char *url);
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define ASSERT(c)                                                                     \
    do {                                                                              \
        if (!(c))                                                                     \
            test_fail(__FILE__, __LINE__, "assertion failed: %s", #c);                \
    } while (0)
#define ASSERT_EQ(a, b)                                                               \
    do {                                                                              \
        long long a_ = (long long)(a), b_ = (long long)(b);                           \
        if (a_ != b_)                                                                 \
            test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);  \
    } while (0)
#define ASSERT_OK(expr)                                                               \
    do {                                                                              \
        int rc_ = (expr);                                                             \
        if (rc_ != 0)                                                                 \
            test_fail(__FILE__, __LINE__, "%s: %d (%s)", #expr, rc_, ob_strerror(rc_)); \
    } while (0)
#define ASSERT_RC(expr, want)                                                         \
    do {                                                                              \
        int rc_ = (expr), w_ = (want);                                                \
        if (rc_ != w_)                                                                \
            test_fail(__FILE__, __LINE__, "%s: %d (%s), want %d (%s)", #expr, rc_,    \
                      ob_strerror(rc_), w_, ob_strerror(w_));                         \
    } while (0)
#define ASSERT_STREQ(a, b)                                                            \
    do {                                                                              \
        const char *a_ = (a), *b_ = (b);                                              \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                        \
            test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,       \
                      a_ ? a_ : "(null)", b_ ? b_ : "(null)");                        \
    } while (0)

#endif
