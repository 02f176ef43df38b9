/*
 * commands.c - outboxd's commands besides serving: `migrate` (a store's
 * schema made current, or with --from and --to an embedded store moved into
 * PostgreSQL), `backup` (a consistent copy of a running embedded store) and
 * `check` (the configuration validated, every file and the store and relay
 * looked at, what would be used printed; nothing started, nothing made).
 *
 * Each prints what it did on stdout, errors on stderr, and returns the exit
 * status: 0 done, 1 failed (said why), 2 a usage error. Long work reports
 * progress on stderr: a line rewritten in place on a terminal, a line every
 * tenth otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/outbound.h"
#include "api/secrets.h"
#include "outbox/jobs.h"
#include "outbox/mail.h"
#include "outbox/store.h"
#include "outbox/util.h"

#include "commands.h"

/* ---- progress ---- */

typedef struct progress {
    bool tty;
    int tenth; /* the last tenth printed (not on a terminal) */
    const char *verb;
} progress;

static void show_progress(void *arg, const char *what, int64_t done, int64_t total)
{
    progress *p = arg;
    int tenth = total > 0 ? (int)(done * 10 / total) : 10;
    if (p->tty) {
        fprintf(stderr, "\r%s: %lld of %lld %s (%d%%)", p->verb, (long long)done, (long long)total,
                what, total > 0 ? (int)(done * 100 / total) : 100);
        if (done >= total)
            fputc('\n', stderr);
    } else if (tenth > p->tenth || done >= total) {
        if (tenth <= p->tenth)
            return;
        p->tenth = tenth;
        fprintf(stderr, "%s: %lld of %lld %s\n", p->verb, (long long)done, (long long)total, what);
    }
}

static progress progress_for(const char *verb)
{
    return (progress){.tty = isatty(STDERR_FILENO) == 1, .tenth = -1, .verb = verb};
}

/* ---- migrate ---- */

static int schema(const char *url)
{
    int had = 0, now = 0;
    char buf[1100];
    const char *store = ob_url_shown(url, buf, sizeof buf);
    int rc = ob_store_migrate(url, &had, &now);
    if (rc) {
        fprintf(stderr, "outboxd: migrate %s: %s\n", store, ob_strerror(rc));
        return 1;
    }
    if (had == now)
        printf("outboxd: %s is at schema version %d: nothing to do\n", store, now);
    else if (!had)
        printf("outboxd: %s: schema created at version %d\n", store, now);
    else
        printf("outboxd: %s: schema migrated from version %d to %d\n", store, had, now);
    return 0;
}

static int move(const char *from, const char *to)
{
    char b1[1100], b2[1100];
    const char *f = ob_url_shown(from, b1, sizeof b1), *t = ob_url_shown(to, b2, sizeof b2);
    progress p = progress_for("migrate");
    ob_copy_stats st;
    int rc = ob_store_copy(from, to, show_progress, &p, &st);
    if (rc) {
        fprintf(stderr, "outboxd: migrate from %s to %s: %s (%lld jobs copied before it stopped; "
                        "run it again to go on)\n", f, t, ob_strerror(rc), (long long)st.copied);
        return 1;
    }
    printf("outboxd: migrated %s to %s: %lld jobs: %lld copied, %lld already there", f, t,
           (long long)st.jobs, (long long)st.copied, (long long)st.present);
    if (st.conflicts)
        printf(", %lld NOT copied (their unique key names another job in the target)",
               (long long)st.conflicts);
    printf("; %lld queue settings, %lld schedules and %lld records (suppressions) copied\n",
           (long long)st.queues, (long long)st.schedules, (long long)st.records);
    printf("outboxd: start outboxd with the target as its --store; %s is left as it was "
           "(keep it until the new store has proved itself)\n", from + 7);
    return st.conflicts ? 1 : 0;
}

int outboxd_migrate(const config *c, const char *from, const char *to)
{
    if (!from && !to)
        return schema(c->store);
    if (!from || !to) {
        fprintf(stderr, "outboxd: migrate: give both --from sqlite:PATH and --to "
                        "postgres://... (or neither, to migrate --store's schema)\n");
        return 2;
    }
    return move(from, to);
}

/* ---- backup ---- */

int outboxd_backup(const config *c, const char *to)
{
    if (!to || !*to) {
        fprintf(stderr, "outboxd: backup: give --to FILE\n");
        return 2;
    }
    char buf[1100];
    const char *store = ob_url_shown(c->store, buf, sizeof buf);
    progress p = progress_for("backup");
    int rc = ob_store_backup(c->store, to, show_progress, &p);
    if (rc) {
        fprintf(stderr, "outboxd: backup of %s to %s: %s\n", store, to, ob_strerror(rc));
        return 1;
    }
    struct stat st;
    printf("outboxd: backed up %s to %s (%lld bytes, checked)\n", store, to,
           stat(to, &st) == 0 ? (long long)st.st_size : -1LL);
    return 0;
}

/* ---- DKIM keys ---- */

int outboxd_dkim(const config *c, ob_dkim **out)
{
    *out = NULL;
    if (!c->dkim[0])
        return 0;
    ob_dkim *d;
    if (ob_dkim_new(&d))
        return OB_ENOMEM;
    char list[sizeof c->dkim];
    snprintf(list, sizeof list, "%s", c->dkim);
    ob_problem p;
    for (char *save, *spec = strtok_r(list, ",", &save); spec; spec = strtok_r(NULL, ",", &save)) {
        int rc = ob_dkim_add_spec(d, outboxd_trim(spec), &p);
        if (rc) {
            fprintf(stderr, "outboxd: --dkim: %s\n", p.message);
            ob_dkim_free(d);
            return rc;
        }
    }
    *out = d;
    return 0;
}

/* ---- check ---- */

typedef struct checker {
    int failed;
} checker;

static void say(checker *k, bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(checker *k, bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-4s %-16s ", ok ? "ok" : "FAIL", what);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    if (!ok)
        k->failed++;
}

/* A private file's lines (tokens, secrets): readable, not shared. */
static void check_secret_file(checker *k, const char *what, const char *path, bool may_be_missing)
{
    char *text = NULL, err[1200];
    if (may_be_missing && access(path, F_OK) != 0 && errno == ENOENT) {
        say(k, true, what, "%s (missing: created, mode 0600, at the first start)", path);
        return;
    }
    if (secret_file_read(path, &text, err, sizeof err)) {
        say(k, false, what, "%s", err);
        return;
    }
    int lines = 0;
    for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"))
        lines += *outboxd_trim(l) && *outboxd_trim(l) != '#';
    say(k, true, what, "%s (%d line%s)", path, lines, lines == 1 ? "" : "s");
    free(text);
}

static void check_store(checker *k, const char *url)
{
    char buf[1100];
    const char *shown = ob_url_shown(url, buf, sizeof buf);
    ob_store_info in;
    int rc = ob_store_probe(url, &in);
    if (rc) {
        say(k, false, "store", "%s: %s", shown, ob_strerror(rc));
        return;
    }
    if (!in.exists) {
        say(k, true, "store", "%s: reachable, no outbox schema yet (created at start, version %d)",
            shown, in.known);
        return;
    }
    bool newer = in.version > in.known;
    say(k, !newer, "store", "%s: schema version %d%s, %lld jobs%s%s", shown, in.version,
        newer ? " is newer than this outboxd knows: upgrade outboxd"
        : in.version < in.known ? " (migrated at start)" : "",
        (long long)in.jobs, in.in_use ? ", in use by a running outboxd" : "",
        in.live_nodes ? ", live nodes on it" : "");
    if (in.live_nodes)
        printf("     %-16s %d node%s with a heartbeat in the last 30 s\n", "", in.live_nodes,
               in.live_nodes == 1 ? "" : "s");
}

/* One line from HOST:PORT within 5 s: the relay's greeting. */
static bool greeting(const char *host, const char *port, char *line, size_t n)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        snprintf(line, n, "cannot resolve %.200s", host);
        return false;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bool ok = false;
    int err = fd < 0 ? errno : 0;
    if (!err && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        err = errno;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof err;
    if (!err && poll(&p, 1, 5000) != 1)
        err = ETIMEDOUT;
    if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        snprintf(line, n, "cannot connect: %s", strerror(err));
    } else {
        p.events = POLLIN;
        ssize_t got = poll(&p, 1, 5000) == 1 ? recv(fd, line, n - 1, 0) : -1;
        ok = got > 3 && !strncmp(line, "220", 3);
        if (got > 0) {
            line[got] = '\0';
            line[strcspn(line, "\r\n")] = '\0';
        } else {
            snprintf(line, n, "connected, but no greeting within 5 s");
        }
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return ok;
}

static void check_mail(checker *k, const config *c)
{
    if (!strncmp(c->smtp, "file:", 5)) {
        const char *dir = c->smtp + 5;
        struct stat st;
        bool exists = stat(dir, &st) == 0;
        bool ok = exists ? S_ISDIR(st.st_mode) && access(dir, W_OK) == 0 : *dir != '\0';
        say(k, ok, "mail", "%s: %s", c->smtp, !exists ? "missing: created at start"
                                              : ok     ? "a writable directory"
                                                       : "not a directory this user can write to");
        return;
    }
    ob_transport_opts to;
    ob_transport_opts_init(&to);
    to.ca_file = c->smtp_ca[0] ? c->smtp_ca : NULL;
    to.password = c->smtp_password_file[0] ? "checked-apart" : NULL;
    ob_transport *t = NULL;
    ob_problem why;
    if (ob_transport_open(c->smtp, &to, &t, &why)) {
        say(k, false, "mail", "--smtp: %s", why.message);
        return;
    }
    char name[1100], line[512];
    snprintf(name, sizeof name, "%s", ob_transport_name(t)); /* smtp://[user@]host:port[?...] */
    ob_transport_close(t);
    char *host = strchr(name + 7, '@') ? strchr(name + 7, '@') + 1 : name + 7;
    host[strcspn(host, "?")] = '\0';
    char *colon = strrchr(host, ':');
    *colon = '\0';
    bool ok = greeting(host, colon + 1, line, sizeof line);
    say(k, ok, "mail", "smtp relay %s port %s: %s", host, colon + 1, line);
}

int outboxd_check(const config *c)
{
    const char *config_file = c->config_file[0] ? c->config_file : NULL;
    checker k = {0};
    printf("outboxd %s: checking%s%s\n", OB_VERSION, config_file ? " " : "",
           config_file ? config_file : " (no config file: flags, environment, defaults)");
    say(&k, true, "config", "%s", config_file ? "read, every setting valid" : "every setting valid");
    bool lo = outboxd_loopback(c->listen);
    if (!c->token_file[0])
        say(&k, lo, "listen", "%s: %s", c->listen,
            lo ? "loopback, no tokens: anyone on this host may call the API"
               : "not loopback, and no --token-file: refused at start");
    else
        say(&k, true, "listen", "%s%s", c->listen, lo ? " (loopback)" : "");
    if (c->token_file[0])
        check_secret_file(&k, "tokens", c->token_file, false);
    check_secret_file(&k, "callback secret", c->secret_file, true);
    if (c->smtp_password_file[0])
        check_secret_file(&k, "smtp password", c->smtp_password_file, false);
    outbound policy;
    char err[1200];
    outbound_init(&policy);
    say(&k, outbound_allow(&policy, c->http_allow, err, sizeof err) == 0, "http-allow", "%s",
        c->http_allow[0] ? c->http_allow : "(none: outbound jobs reach public addresses only)");
    check_store(&k, c->store);
    check_mail(&k, c);
    if (c->dkim[0]) {
        ob_dkim *d;
        int rc = outboxd_dkim(c, &d);
        say(&k, !rc, "dkim", "%s", rc ? "a key is refused (above)" : c->dkim);
        ob_dkim_free(d);
    }
    char threads[32];
    snprintf(threads, sizeof threads, c->threads ? "%ld" : "one a CPU", c->threads);
    printf("     %-16s %ld workers, HTTP threads: %s, request bodies up to %ld bytes, %ld "
           "connections\n", "would run", c->workers, threads, c->max_body, c->max_connections);
    if (k.failed)
        printf("outboxd: %d check%s failed\n", k.failed, k.failed == 1 ? "" : "s");
    else
        printf("outboxd: ready to start\n");
    return k.failed ? 1 : 0;
}
