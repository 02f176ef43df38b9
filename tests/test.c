/*
 * test.c - the harness behind test.h: fork per test, temp dir, timeout,
 * a summary line, exit status 0 only if every test passed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static char dir[4096];

const char *test_dir(void) { return dir; }

const char *test_store(void)
{
    const char *s = getenv("OB_TEST_STORE");
    return s && strcmp(s, "postgres") == 0 ? "postgres" : "sqlite";
}

const char *test_pg_base(void) { return getenv("OB_TEST_PG_URL"); }

struct pg_conn *test_pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        test_fail(__FILE__, __LINE__, "cannot connect to %s: %s", url, PQerrorMessage(c));
    return c;
}

/* A schema for this test and name: "t<pid>_<name, letters and digits>". */
static const char *pg_url(const char *name)
{
    static char url[4200];
    char schema[64];
    int n = snprintf(schema, sizeof schema, "t%d_", (int)getpid());
    for (const char *p = name; *p && n < (int)sizeof schema - 1; p++)
        schema[n++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
    schema[n] = '\0';
    PGconn *c = test_pg_connect(test_pg_base());
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", schema);
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        test_fail(__FILE__, __LINE__, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    snprintf(url, sizeof url, "%s?options=-csearch_path%%3D%s", test_pg_base(), schema);
    return url;
}

const char *test_url(const char *name)
{
    static char url[4200];
    if (strcmp(test_store(), "postgres") == 0)
        return pg_url(name);
    snprintf(url, sizeof url, "sqlite:%s/%s", dir, name);
    return url;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(1);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static int run_one(const test_case *t, int timeout)
{
    snprintf(dir, sizeof dir, "%s/ob-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(2);
        alarm((unsigned)timeout);
        t->fn();
        exit(0); /* not _exit: LeakSanitizer checks at exit */
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (ok)
        printf("ok   %-44s %8.1f ms\n", t->name, ms);
    else if (WIFSIGNALED(st))
        printf("FAIL %-44s killed by signal %d%s\n", t->name, WTERMSIG(st),
               WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
    else
        printf("FAIL %-44s exit %d\n", t->name, WEXITSTATUS(st));
    fflush(stdout);
    if (ok || !getenv("OB_TEST_KEEP"))
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("     kept %s\n", dir);
    return ok ? 0 : 1;
}

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Start a private PostgreSQL for this run; its directory, for stopping. */
static char pg_dir[4096];

static int pg_start(void)
{
    snprintf(pg_dir, sizeof pg_dir, "%s/ob-pg-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(pg_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[8400], url[512] = "";
    snprintf(cmd, sizeof cmd, "%s start %s %d", OB_PG_SERVER, pg_dir, test_free_port());
    FILE *f = popen(cmd, "r");
    if (!f || !fgets(url, sizeof url, f) || pclose(f) != 0) {
        fprintf(stderr, "could not start PostgreSQL (%s)\n", cmd);
        return 1;
    }
    url[strcspn(url, "\n")] = '\0';
    setenv("OB_TEST_PG_URL", url, 1);
    setenv("OB_TEST_PG_DIR", pg_dir, 1); /* tests that restart it */
    return 0;
}

static void pg_stop(void)
{
    if (!pg_dir[0])
        return;
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "%s stop %s; rm -rf %s", OB_PG_SERVER, pg_dir, pg_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not stop PostgreSQL in %s\n", pg_dir);
}

int test_main(int argc, char **argv, const test_case *tests, size_t n)
{
    int timeout = getenv("OB_TEST_TIMEOUT") ? atoi(getenv("OB_TEST_TIMEOUT")) : 120;
    int failed = 0, ran = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* GLib's slice allocator (GMime's objects) hands memory between threads
     * through per-thread caches the sanitizers cannot see into: ThreadSanitizer
     * reports races that are not ours, AddressSanitizer misses reuse. Plain
     * malloc for the tests and every process they start. */
    setenv("G_SLICE", "always-malloc", 0);
#ifdef OB_TSAN_SUPP
    const char *old = getenv("TSAN_OPTIONS");
    if (!old || !strstr(old, "suppressions=")) {
        char opts[2048];
        snprintf(opts, sizeof opts, "%s%ssuppressions=%s", old ? old : "", old && *old ? ":" : "",
                 OB_TSAN_SUPP);
        setenv("TSAN_OPTIONS", opts, 1);
    }
#endif
    const char *store = test_store();
    if (strcmp(store, "postgres") == 0 && !test_pg_base() && pg_start())
        return 1;
    int skipped = 0;
    for (size_t i = 0; i < n; i++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strncmp(argv[a], tests[i].name, strlen(argv[a])) == 0; /* a prefix picks */
        if (!wanted)
            continue;
        if (tests[i].only && strcmp(tests[i].only, store) != 0) {
            skipped++;
            continue;
        }
        ran++;
        failed += run_one(&tests[i], timeout);
    }
    pg_stop();
    printf("%d of %d tests passed on %s", ran - failed, ran, store);
    if (skipped)
        printf(" (%d about the other store only, not run)", skipped);
    printf("\n");
    return failed || ran == 0 ? 1 : 0;
}
