/*
 * file.c - the file: transport. Each message becomes DIR/NAME.eml, exactly
 * the bytes SMTP would carry (CRLF lines, no dot-stuffing), written so that
 * a reader never sees half a file and a crash never loses one that was
 * reported delivered:
 *
 *   write DIR/.NAME.XXXXXX, fsync it, rename it to DIR/NAME.eml, fsync DIR.
 *
 * Every recipient then gets "250 2.0.0 written to DIR/NAME.eml". A retry of
 * the same message overwrites the same file (same name, same bytes).
 * Failure to write is "no reply" (deferred): the disk may come back.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "mail/mail.h"

typedef struct file_tr {
    char dir[PATH_MAX]; /* absolute: replies name the file wherever they are read */
    int dirfd;
} file_tr;

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write the message durably. 0, or an errno value. */
static int put(file_tr *f, const ob_envelope *env)
{
    char tmp[160], final[160];
    snprintf(tmp, sizeof tmp, ".%s.XXXXXX", env->name);
    snprintf(final, sizeof final, "%s.eml", env->name);
    /* mkstemp wants a path: make the temporary name under the directory's
     * fd by trying random suffixes with O_EXCL. */
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        size_t n = strlen(tmp);
        unsigned char r[6];
        ob_random_bytes(r, sizeof r);
        for (size_t i = 0; i < 6; i++)
            tmp[n - 6 + i] = "abcdefghijklmnopqrstuvwxyz0123456789"[r[i] % 36];
        fd = openat(f->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0 && errno != EEXIST)
            return errno;
    }
    if (fd < 0)
        return EEXIST;
    int err = 0;
    if (write_all(fd, env->data, env->len) || fsync(fd))
        err = errno;
    if (close(fd) && !err)
        err = errno;
    if (!err && renameat(f->dirfd, tmp, f->dirfd, final))
        err = errno;
    if (!err && fsync(f->dirfd))
        err = errno;
    if (err)
        unlinkat(f->dirfd, tmp, 0);
    return err;
}

static int file_send(ob_transport *t, const ob_envelope *env, ob_mail_reply *replies,
                     int64_t deadline_ms)
{
    (void)deadline_ms;
    file_tr *f = t->impl;
    if (!env->name || !name_ok(env->name))
        return OB_EINVAL;
    int err = put(f, env);
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (err)
            obi_mail_reply_set(&replies[i], 0, NULL, "cannot write %s/%s.eml: %s", f->dir, env->name,
                           strerror(err));
        else
            obi_mail_reply_set(&replies[i], 250, "2.0.0", "written to %s/%s.eml", f->dir, env->name);
    }
    return 0;
}

static void file_close(ob_transport *t)
{
    file_tr *f = t->impl;
    close(f->dirfd);
    free(f);
}

static const transport_ops ops = {.send = file_send, .close = file_close};

int obi_file_transport_open(ob_transport *t, const char *dir, ob_problem *p)
{
    file_tr *f = calloc(1, sizeof *f);
    if (!f)
        return obi_problem(p, OB_ENOMEM, "", "out of memory");
    if (!*dir || strlen(dir) >= sizeof f->dir) {
        free(f);
        return obi_problem(p, OB_EINVAL, "url", "file:DIR: the directory is empty or too long");
    }
    if (mkdir(dir, 0750) && errno != EEXIST) {
        obi_problem(p, OB_EINVAL, "url", "file:%s: cannot create it: %s", dir, strerror(errno));
        free(f);
        return OB_EINVAL;
    }
    if (!realpath(dir, f->dir)) {
        obi_problem(p, OB_EINVAL, "url", "file:%s: %s", dir, strerror(errno));
        free(f);
        return OB_EINVAL;
    }
    f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0) {
        obi_problem(p, OB_EINVAL, "url", "file:%s: %s", dir, strerror(errno));
        free(f);
        return OB_EINVAL;
    }
    t->ops = &ops;
    t->impl = f;
    return 0;
}
