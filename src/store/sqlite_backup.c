/*
 * sqlite_backup.c - an embedded store looked at and copied from outside an
 * engine: probe (what the file is, whether a process has it open) and the
 * online backup (outboxd backup).
 *
 * The backup reads one snapshot: the source connection opens a read
 * transaction first and SQLite's backup steps run inside it, so the copy is
 * the store as of one commit however long it takes, and the daemon keeps
 * committing beside it (WAL: a reader never blocks the writer). The copy is
 * written to PATH.partial, checked with quick_check, fsync'd and renamed to
 * PATH, and the directory fsync'd: PATH is whole or absent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sq.h"

#define PAGES_A_STEP 1024

/* An existing outbox store at `path`, opened for reading only. */
static int open_existing(const char *path, sqlite3 **out)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        OB_ERROR("sqlite: %s: %s", path, strerror(errno));
        return errno == ENOENT ? OB_EINVAL : OB_ESTORE;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, obi_store_sqlite_vfs);
    if (rc != SQLITE_OK) {
        rc = obi_sq_fail(db, rc, path);
        sqlite3_close(db);
        return rc;
    }
    int64_t app = 0;
    if ((rc = obi_sq_exec(db, "PRAGMA busy_timeout=5000; PRAGMA query_only=1;")) ||
        (rc = obi_sq_query_int(db, "PRAGMA application_id", &app))) {
        sqlite3_close(db);
        return rc;
    }
    if (app != APPLICATION_ID) {
        OB_ERROR("sqlite: %s is not an outbox store", path);
        sqlite3_close(db);
        return OB_ESTORE;
    }
    *out = db;
    return 0;
}

/* Whether a process holds the store's lock (an outboxd, an engine). */
static bool in_use(const char *path)
{
    char lp[4096];
    snprintf(lp, sizeof lp, "%s.lock", path);
    int fd = open(lp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false; /* never opened by an engine */
    bool busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd); /* releases the shared lock, if it was taken */
    return busy;
}

int obi_store_sqlite_probe(const char *path, ob_store_info *out)
{
    *out = (ob_store_info){.known = SCHEMA_VERSION, .jobs = 0};
    if (access(path, F_OK) != 0)
        return 0; /* created at the first start */
    sqlite3 *db;
    int rc = open_existing(path, &db);
    if (rc)
        return rc;
    int64_t v = 0;
    out->exists = true;
    out->in_use = in_use(path);
    rc = obi_sq_query_int(db, "PRAGMA user_version", &v);
    out->version = (int)v;
    out->jobs = -1;
    if (!rc && v >= 1)
        rc = obi_sq_query_int(db, "SELECT count(*) FROM jobs", &out->jobs);
    sqlite3_close(db);
    return rc;
}

/* fsync a file or directory by name. */
static int sync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        OB_ERROR("sqlite: cannot sync %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return errno == ENOSPC ? OB_ENOSPC : OB_EIO;
    }
    close(fd);
    return 0;
}

/* The directory a file is in, for fsync after a rename. */
static void dir_of(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

/* The pages of `src` (inside its read transaction) into `dst`. */
static int copy_pages(sqlite3 *src, sqlite3 *dst, ob_progress_fn fn, void *arg)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b)
        return obi_sq_fail(dst, sqlite3_errcode(dst), "backup");
    int rc;
    while ((rc = sqlite3_backup_step(b, PAGES_A_STEP)) == SQLITE_OK || rc == SQLITE_BUSY ||
           rc == SQLITE_LOCKED) {
        if (fn)
            fn(arg, "pages", sqlite3_backup_pagecount(b) - sqlite3_backup_remaining(b),
               sqlite3_backup_pagecount(b));
        if (rc != SQLITE_OK)
            sqlite3_sleep(50);
    }
    if (fn)
        fn(arg, "pages", sqlite3_backup_pagecount(b), sqlite3_backup_pagecount(b));
    sqlite3_backup_finish(b);
    return rc == SQLITE_DONE ? 0 : obi_sq_fail(dst, rc, "backup");
}

/* The copy, checked: quick_check says "ok". */
static int check_copy(sqlite3 *dst, const char *path)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(dst, "PRAGMA quick_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return obi_sq_fail(dst, rc, "quick_check");
    rc = sqlite3_step(st);
    const unsigned char *said = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    bool ok = said && !strcmp((const char *)said, "ok");
    if (!ok)
        OB_ERROR("sqlite: the copy %s fails its check: %s", path, said ? (const char *)said : "?");
    sqlite3_finalize(st);
    return ok ? 0 : OB_ESTORE;
}

int obi_store_sqlite_backup(const char *path, const char *to, ob_progress_fn fn, void *arg)
{
    char part[4096];
    if (snprintf(part, sizeof part, "%s.partial", to) >= (int)sizeof part)
        return OB_EINVAL;
    if (access(to, F_OK) == 0) {
        OB_ERROR("backup: %s exists: remove it, or name another file", to);
        return OB_EINVAL;
    }
    sqlite3 *src, *dst = NULL;
    int rc = open_existing(path, &src);
    if (rc)
        return rc;
    unlink(part); /* a failed run's */
    int64_t dummy;
    if ((rc = obi_sq_exec(src, "BEGIN")) ||
        (rc = obi_sq_query_int(src, "SELECT count(*) FROM sqlite_schema", &dummy)))
        goto out; /* the snapshot is taken here, and held to the end */
    int orc = sqlite3_open_v2(part, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (orc != SQLITE_OK) {
        rc = obi_sq_fail(dst, orc, part);
        goto out;
    }
    if ((rc = copy_pages(src, dst, fn, arg)) || (rc = check_copy(dst, to)))
        goto out;
    sqlite3_close(dst);
    dst = NULL;
    char dir[4096];
    dir_of(to, dir, sizeof dir);
    if ((rc = sync_path(part, false)))
        goto out;
    if (rename(part, to) != 0) {
        OB_ERROR("backup: cannot rename %s to %s: %s", part, to, strerror(errno));
        rc = OB_EIO;
        goto out;
    }
    rc = sync_path(dir, true);
out:
    sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(src);
    if (dst)
        sqlite3_close(dst);
    if (rc)
        unlink(part);
    return rc;
}
