/*
 * test.c - the harness behind test.h: fork per test, temp dir, timeout,
 * a summary line, exit status 0 only if every test passed.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static char dir[4096];

const char *test_dir(void) { return dir; }

const char *test_url(const char *name)
{
    static char url[4200];
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
    for (size_t i = 0; i < n; i++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strncmp(argv[a], tests[i].name, strlen(argv[a])) == 0; /* a prefix picks */
        if (!wanted)
            continue;
        ran++;
        failed += run_one(&tests[i], timeout);
    }
    printf("%d of %d tests passed\n", ran - failed, ran);
    return failed || ran == 0 ? 1 : 0;
}
