/*
 * faulty_vfs.c - see faulty_vfs.h. A shim VFS: each file it opens is the
 * real file with our io_methods in front, which forward every call unless
 * a fault is switched on.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faulty_vfs.h"

atomic_int faulty_fail_write;
atomic_int faulty_fail_sync;
atomic_int faulty_syncs;
atomic_int faulty_snapshots;

/* Copy the file named path to PATH.durable, atomically, one at a time. */
static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;

static void snapshot(const char *path)
{
    pthread_mutex_lock(&snap_mu);
    char tmp[4200], dst[4200];
    snprintf(tmp, sizeof tmp, "%s.durable.tmp", path);
    snprintf(dst, sizeof dst, "%s.durable", path);
    int in = open(path, O_RDONLY), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static _Thread_local char buf[1 << 16];
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            abort();
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rename(tmp, dst) != 0)
        abort();
    pthread_mutex_unlock(&snap_mu);
}

void faulty_power_loss(const char *db)
{
    const char *suffix[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char path[4200], dur[4300];
        snprintf(path, sizeof path, "%s%s", db, suffix[i]);
        snprintf(dur, sizeof dur, "%s.durable", path);
        if (access(dur, F_OK) == 0) {
            if (rename(dur, path) != 0)
                abort();
        } else {
            unlink(path); /* never synced: it is not there after a power loss */
        }
    }
    char shm[4200];
    snprintf(shm, sizeof shm, "%s-shm", db);
    unlink(shm);
}

typedef struct ffile {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
    char path[512];
} ffile;

static sqlite3_vfs *real_vfs;
#define REAL(f) (((ffile *)(f))->real)

static int f_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int f_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int f_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    if (atomic_load(&faulty_fail_write))
        return SQLITE_FULL;
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
    if (atomic_load(&faulty_fail_sync))
        return SQLITE_IOERR_FSYNC;
    atomic_fetch_add(&faulty_syncs, 1);
    if (atomic_load(&faulty_snapshots) && ((ffile *)f)->path[0])
        snapshot(((ffile *)f)->path);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *s) { return REAL(f)->pMethods->xFileSize(REAL(f), s); }
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_check(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int f_fctl(sqlite3_file *f, int op, void *a) { return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_dev(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int f_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), o, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods f_methods = {
    3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock, f_unlock, f_check,
    f_fctl, f_sector, f_dev, f_shmmap, f_shmlock, f_shmbarrier, f_shmunmap, f_fetch, f_unfetch,
};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    (void)vfs;
    ffile *f = (ffile *)file;
    f->real = (sqlite3_file *)(f + 1);
    snprintf(f->path, sizeof f->path, "%s", name ? name : "");
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
    f->base.pMethods = rc == SQLITE_OK && f->real->pMethods ? &f_methods : NULL;
    return rc;
}

static sqlite3_vfs faulty;

void faulty_vfs_register(void)
{
    if (real_vfs)
        return;
    real_vfs = sqlite3_vfs_find(NULL);
    faulty = *real_vfs;
    faulty.zName = "faulty";
    faulty.szOsFile = (int)sizeof(ffile) + real_vfs->szOsFile;
    faulty.xOpen = f_open;
    faulty.pNext = NULL;
    sqlite3_vfs_register(&faulty, 0);
}

void faulty_durable_baseline(const char *db)
{
    const char *suffix[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char path[4200], dur[4300];
        snprintf(path, sizeof path, "%s%s", db, suffix[i]);
        snprintf(dur, sizeof dur, "%s.durable", path);
        if (access(path, F_OK) == 0)
            snapshot(path);
        else
            unlink(dur);
    }
}
