/*
 * test_store_failure.c - the store fails; the engine tells the truth.
 *
 * A full filesystem (a real tiny tmpfs, or — where mounting is not allowed
 * — a file-size limit, which fails writes the same way), and a disk whose
 * fsync fails (the faulty VFS): enqueue returns an error and stores nothing
 * it acknowledged; every job acknowledged before is still there and intact;
 * a worker's answer that could not be committed is kept and committed once
 * the store works again; and the engine works again when the fault ends.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faulty_vfs.h"
#include "helpers.h"
#include "store/store.h"

#define PAYLOAD 4000

static void make_payload(int n, char *buf)
{
    for (int i = 0; i < PAYLOAD - 1; i++)
        buf[i] = (char)('a' + (n * 31 + i * 7) % 26);
    snprintf(buf, 24, "done:%d", n); /* the handler reads "done" */
    buf[strlen(buf)] = ' ';
    buf[PAYLOAD - 1] = '\0';
    memcpy(buf, "done", 4);
    buf[4] = '\0'; /* "done\0<n> <filler>": command, then a unique tail */
}

static void check_intact(ob_engine *e, const ob_id *ids, int n)
{
    char want[PAYLOAD];
    for (int i = 0; i < n; i++) {
        ob_job *j = h_get(e, &ids[i]);
        make_payload(i, want);
        ASSERT_EQ(j->payload_len, PAYLOAD);
        ASSERT(memcmp(j->payload, want, PAYLOAD) == 0);
        ob_job_free(j);
    }
}

/* Enqueue until the store refuses; returns how many were acknowledged. */
static int fill(ob_engine *e, ob_id *ids, int max, int *err)
{
    char buf[PAYLOAD];
    for (int i = 0; i < max; i++) {
        make_payload(i, buf);
        ob_new_job j = {.kind = "script", .payload = buf, .payload_len = PAYLOAD};
        int rc = ob_enqueue(e, &j, &ids[i], NULL);
        if (rc) {
            *err = rc;
            return i;
        }
    }
    *err = 0;
    return max;
}

TEST(full_disk_fails_enqueue_and_loses_nothing)
{
    char mnt[4200], filler[4300];
    snprintf(mnt, sizeof mnt, "%s/small", test_dir());
    mkdir(mnt, 0700);
    /* OB_TEST_NO_MOUNT=1 takes the fallback path even as root. */
    bool tmpfs = !getenv("OB_TEST_NO_MOUNT") && mount("tmpfs", mnt, "tmpfs", 0, "size=1536k") == 0;
    struct rlimit lim = {0};
    if (tmpfs) {
        printf("  using a 1.5 MiB tmpfs at %s, half of it held by a filler\n", mnt);
    } else {
        /* No CAP_SYS_ADMIN here: fail writes past 1 MiB with a file-size
         * limit instead (write(2) returns EFBIG, as it returns ENOSPC on a
         * full disk). */
        printf("  no tmpfs (%s): using RLIMIT_FSIZE = 1 MiB\n",
               getenv("OB_TEST_NO_MOUNT") ? "OB_TEST_NO_MOUNT" : strerror(errno));
        signal(SIGXFSZ, SIG_IGN);
        getrlimit(RLIMIT_FSIZE, &lim);
        struct rlimit small = {1 << 20, lim.rlim_max};
        ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    }
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    if (tmpfs) { /* room to give back later: enough for the WAL to grow by the
                    work that follows and to be checkpointed at close (256 KiB
                    was seen too little on a loaded machine) */
        FILE *f = fopen(filler, "w");
        static char block[768 << 10];
        ASSERT(f && fwrite(block, 1, sizeof block, f) == sizeof block);
        fclose(f);
    }
    char url[4300];
    snprintf(url, sizeof url, "sqlite:%s/jobs.db", mnt);
    ob_engine_opts o;
    h_fast_opts(&o);
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(url, &o, &e));
    ASSERT_OK(ob_engine_register(e, "script", h_script, NULL, NULL));

    static ob_id ids[2000];
    int err, n = fill(e, ids, 2000, &err);
    printf("  %d jobs acknowledged, then: %s\n", n, ob_strerror(err));
    ASSERT(n > 10 && n < 2000);
    ASSERT(err == OB_ENOSPC || err == OB_EIO);
    for (int k = 0; k < 5; k++) { /* it keeps failing honestly, it does not hang */
        int err2;
        ob_id dummy[1];
        ASSERT_EQ(fill(e, dummy, 1, &err2), 0);
        ASSERT(err2 == OB_ENOSPC || err2 == OB_EIO);
    }
    check_intact(e, ids, n);

    /* space comes back: the same engine works again */
    if (tmpfs)
        ASSERT_EQ(unlink(filler), 0);
    else
        ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ob_id more;
    char buf[PAYLOAD];
    make_payload(n, buf);
    ob_new_job j = {.kind = "script", .payload = buf, .payload_len = PAYLOAD};
    ASSERT_OK(ob_enqueue(e, &j, &more, NULL));
    ids[n++] = more;
    ob_pool *p = h_pool(e, 2, -1, NULL);
    ob_job_free(h_wait(e, &more));
    ob_pool_stop(p, 1000);
    ob_engine_close(e);

    ASSERT_OK(ob_engine_open(url, &o, &e)); /* and after a restart */
    check_intact(e, ids, n);
    ob_engine_close(e);
    if (tmpfs)
        umount(mnt);
}

TEST(failed_fsync_fails_the_batch_and_recovers)
{
    faulty_vfs_register();
    obi_store_sqlite_vfs = "faulty";
    ob_engine *e = h_open("jobs.db", NULL);
    static ob_id ids[50];
    int err;
    ASSERT_EQ(fill(e, ids, 20, &err), 20);
    atomic_store(&faulty_fail_sync, 1);
    ob_id lost;
    char buf[PAYLOAD];
    make_payload(20, buf);
    ob_new_job j = {.kind = "script", .payload = buf, .payload_len = PAYLOAD};
    ASSERT_RC(ob_enqueue(e, &j, &lost, NULL), OB_EIO);
    ASSERT_RC(ob_enqueue(e, &j, &lost, NULL), OB_EIO);
    atomic_store(&faulty_fail_sync, 0);
    ASSERT_OK(ob_enqueue(e, &j, &ids[20], NULL));
    check_intact(e, ids, 21);
    ob_engine_close(e);
    e = h_open("jobs.db", NULL);
    check_intact(e, ids, 21);
    ob_engine_close(e);
}

TEST(answer_whose_commit_failed_is_kept_and_committed_later)
{
    faulty_vfs_register();
    obi_store_sqlite_vfs = "faulty";
    ob_engine *e = h_open("jobs.db", NULL);
    ob_id id = h_add(e, "sleep:300");
    ob_pool *p = h_pool(e, 1, 0, NULL);
    while (h_starts(&id) == 0)
        h_sleep_ms(5);
    atomic_store(&faulty_fail_write, 1); /* the disk is full when the answer comes */
    h_sleep_ms(600);
    ob_job *j = h_get(e, &id);
    ASSERT_EQ(j->state, OB_RUNNING); /* not yet: the answer could not be stored */
    ob_job_free(j);
    atomic_store(&faulty_fail_write, 0);
    j = h_wait(e, &id); /* retried within a second */
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(h_starts(&id), 1);
    ob_job_free(j);
    ob_pool_stop(p, 1000);
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(full_disk_fails_enqueue_and_loses_nothing),
    T(failed_fsync_fails_the_batch_and_recovers),
    T(answer_whose_commit_failed_is_kept_and_committed_later),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
