/*
 * config.c - outboxd's settings: the table of every flag (its name, its
 * field, its range, its help line), and the sources they come from, later
 * ones winning: built-in defaults, the --config FILE, OUTBOX_* environment
 * variables, command-line flags. A bad value is refused naming where it
 * came from.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/outbound.h"

#include "config.h"

typedef struct opt {
    const char *name; /* flag without "--", config name; env: OUTBOX_ + upper */
    bool is_num;
    bool is_list;     /* repeatable: one source's values, comma-joined */
    size_t off, size;
    long min, max;
    const char *help;
} opt;

#define S(f) false, false, offsetof(config, f), sizeof(((config *)0)->f), 0, 0
#define L(f) false, true, offsetof(config, f), sizeof(((config *)0)->f), 0, 0
#define N(f, lo, hi) true, false, offsetof(config, f), 0, lo, hi
static const opt opts[] = {
    {"listen", S(listen), "HOST:PORT to serve on (default 127.0.0.1:8025)"},
    {"store", S(store), "where jobs live: sqlite:PATH (default sqlite:./outbox.db), or "
                        "postgres://USER@HOST:PORT/DB, shared by any number of outboxd"},
    {"node-dead", N(node_dead, 1, 3600), "postgres: seconds without a heartbeat after which "
                                         "a node is dead and its jobs rescued (default 15)"},
    {"token-file", S(token_file), "bearer tokens, one per line (mode 0600); required off "
                                  "loopback"},
    {"callback-secret-file", S(secret_file),
     "Standard Webhooks signing secrets, whsec_..., one per line, each signs (default "
     "./outbox.secret, created 0600 if missing)"},
    {"callback-payload", N(callback_payload, 0, 1), "1: callbacks carry the job's payload too "
                                                    "(default 0)"},
    {"http-allow", S(http_allow), "addresses outbound jobs may reach besides public ones: CIDR "
                                  "blocks and ADDRESS:PORT pairs, comma-separated"},
    {"http-max-timeout", N(http_max_timeout, 1, 86400), "longest http.request or callback, "
                                                        "seconds (default 300)"},
    {"log-file", S(log_file), "log here instead of stderr (SIGHUP reopens it)"},
    {"log-level", S(log_level), "debug, info, warn or error (default info)"},
    {"log-format", S(log_format), "text (default) or json: one JSON object a line"},
    {"workers", N(workers, 0, 1024), "worker threads running jobs (default 4; 0: store jobs, run none)"},
    {"threads", N(threads, 1, 256), "HTTP event-loop threads (default: CPUs)"},
    {"max-body", N(max_body, 1024, 64L << 20), "request body bytes (default 1 MiB; "
                                               "/v1/messages: what --max-message needs)"},
    {"max-batch-body", N(max_batch_body, 1024, 1L << 30), "body bytes of a /batch request "
                                                          "(default 16 MiB)"},
    {"max-body-total", N(max_body_total, 1L << 20, 1L << 30), "body bytes held by all "
                                                            "requests at once (default 256 "
                                                            "MiB; 503 past it)"},
    {"max-payload", N(max_payload, 1, 64L << 20), "POST /v1/jobs payload bytes (default 1 MiB)"},
    {"max-wait", N(max_wait, 0, 3600), "longest Prefer: wait, seconds (default 60)"},
    {"max-connections", N(max_connections, 1, 1000000), "HTTP connections (default 1024)"},
    {"max-connections-per-ip", N(max_connections_per_ip, 1, 1000000),
     "HTTP connections from one client address (default 256)"},
    {"header-timeout", N(header_timeout, 1, 600), "seconds a connection has to send a "
                                                  "request's headers (default 5)"},
    {"max-event-clients", N(max_event_clients, 0, 100000), "/v1/events connections at once "
                                                           "(default 64)"},
    {"smtp", S(smtp), "where mail goes: file:DIR (default file:./mail) or "
                      "smtp://[user:pass@]host[:port][?starttls=no]"},
    {"smtp-password-file", S(smtp_password_file), "the SMTP password (mode 0600), for a "
                                                  "--smtp URL with a user and no password"},
    {"smtp-ca", S(smtp_ca), "PEM CA bundle to verify the relay (default: the system's)"},
    {"smtp-helo", S(smtp_helo), "EHLO name (default: this host's name)"},
    {"smtp-pool", N(smtp_pool, 1, 256), "SMTP connections at once (default 4)"},
    {"smtp-timeout", N(smtp_timeout, 1, 3600), "seconds per SMTP command (default 60; the "
                                               "message itself gets twice)"},
    {"mail-retry-min", N(mail_retry_min, 1, 86400), "seconds to the first retry of a deferred "
                                                    "recipient (default 300)"},
    {"mail-retry-max", N(mail_retry_max, 1, 86400), "longest wait between retries (default 4000 s)"},
    {"mail-lifetime", N(mail_lifetime, 1, 100L * 86400), "seconds deferred before a recipient "
                                                         "bounces (default 5 days)"},
    {"max-recipients", N(max_recipients, 1, 10000), "recipients of one message (default 50)"},
    {"max-message", N(max_message, 1024, 48L << 20), "message bytes, bodies and attachments "
                                                     "decoded (default 10 MiB)"},
    {"max-batch", N(max_batch, 1, 10000), "items per /v1/jobs/batch or /v1/messages/batch "
                                          "(default 100)"},
    {"dkim", L(dkim), "DOMAIN:SELECTOR:KEYFILE: sign mail from DOMAIN (and its subdomains) "
                      "with this PEM key, RSA or Ed25519, mode 0600 (repeatable; env: "
                      "comma-separated)"},
};
#undef S
#undef L
#undef N
#define NOPTS (sizeof opts / sizeof *opts)

static void usage(FILE *f)
{
    fprintf(f, "usage: outboxd [--config FILE] [--NAME VALUE ...]\n"
               "       outboxd check [--config FILE] [--NAME VALUE ...]\n"
               "       outboxd migrate [--store URL]\n"
               "       outboxd migrate --from sqlite:PATH --to postgres://...\n"
               "       outboxd backup --to FILE [--store sqlite:PATH]\n"
               "  The outbox daemon: durable background jobs over a JSON HTTP API.\n\n"
               "  check    validate the settings, look at every file, the store and the\n"
               "           relay, print what would be used; start nothing (exit 1: a check\n"
               "           failed)\n"
               "  migrate  create the store's tables, or bring them up to this version, and\n"
               "           exit (outboxd also does this itself when it starts); with --from\n"
               "           and --to, copy every job, its history and result, the queues'\n"
               "           settings and the schedules of an embedded store into PostgreSQL\n"
               "           (stop outboxd first; run it again to resume: what is there stays)\n"
               "  backup   a consistent copy of the running embedded store into a new FILE\n"
               "           (restore: stop outboxd, put FILE in place of the store, remove\n"
               "           the store's -wal and -shm files, start)\n\n");
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(f, "  --%-22s %s\n", opts[i].name, opts[i].help);
    fprintf(f, "  --%-22s %s\n  --%-22s %s\n  --%-22s %s\n\n", "config FILE",
            "read \"name = value\" lines (names as above)", "help", "this text", "version",
            "print the version");
    fprintf(f, "Every option is also an environment variable: --max-body is OUTBOX_MAX_BODY.\n"
               "Precedence: flags, then environment, then the config file, then defaults.\n");
}

/* Which source is being read (1 the file, 2 the environment, 3 flags),
 * and which last set each list option: a list takes every value of one
 * source, and a later source replaces it whole. */
static int source, list_source[NOPTS];

/* Set option `name` to `value`; `where` names the source for errors. */
static bool set_opt(config *c, const char *name, const char *value, const char *where)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &opts[i];
        if (strcmp(o->name, name) != 0)
            continue;
        if (!o->is_num) {
            char *dst = (char *)c + o->off;
            bool append = o->is_list && list_source[i] == source && *dst;
            size_t have = append ? strlen(dst) + 1 : 0;
            if (have + strlen(value) >= o->size) {
                fprintf(stderr, "outboxd: %s: %s is too long\n", where, name);
                return false;
            }
            snprintf(dst + (have ? have - 1 : 0), o->size - (have ? have - 1 : 0), "%s%s",
                     append ? "," : "", value);
            list_source[i] = source;
            return true;
        }
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < o->min || v > o->max) {
            fprintf(stderr, "outboxd: %s: %s must be a number from %ld to %ld, not \"%s\"\n",
                    where, name, o->min, o->max, value);
            return false;
        }
        *(long *)((char *)c + o->off) = v;
        return true;
    }
    fprintf(stderr, "outboxd: %s: unknown option \"%s\" (see outboxd --help)\n", where, name);
    return false;
}

char *outboxd_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static bool read_config(config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "outboxd: cannot read config %s: %s\n", path, strerror(errno));
        return false;
    }
    char line[2048], where[1100];
    bool ok = true;
    for (int n = 1; ok && fgets(line, sizeof line, f); n++) {
        char *l = outboxd_trim(line);
        if (!*l || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        snprintf(where, sizeof where, "%s:%d", path, n);
        if (!eq) {
            fprintf(stderr, "outboxd: %s: expected \"name = value\"\n", where);
            ok = false;
            break;
        }
        *eq = '\0';
        ok = set_opt(c, outboxd_trim(l), outboxd_trim(eq + 1), where);
    }
    fclose(f);
    return ok;
}

static bool read_env(config *c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        char env[64] = "OUTBOX_";
        size_t k = 7;
        for (const char *p = opts[i].name; *p && k < sizeof env - 1; p++)
            env[k++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[k] = '\0';
        const char *v = getenv(env);
        if (v && !set_opt(c, opts[i].name, v, env))
            return false;
    }
    return true;
}

/* 0: ok; 1: exit 0 (help); 2: usage error. */
int outboxd_configure(config *c, int argc, char **argv)
{
    *c = (config){.workers = 4, .max_body = 1 << 20, .max_payload = 1 << 20, .max_wait = 60,
                  .max_connections = 1024, .threads = 0, .smtp_pool = 4, .smtp_timeout = 60,
                  .mail_retry_min = 300, .mail_retry_max = 4000, .mail_lifetime = 5 * 86400,
                  .max_recipients = 50, .max_message = 10 << 20, .max_batch = 100,
                  .node_dead = 15, .http_max_timeout = 300, .max_batch_body = 16 << 20,
                  .max_body_total = 256 << 20, .max_connections_per_ip = 256,
                  .header_timeout = 5, .max_event_clients = 64};
    snprintf(c->smtp, sizeof c->smtp, "file:./mail");
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8025");
    snprintf(c->store, sizeof c->store, "sqlite:./outbox.db");
    snprintf(c->secret_file, sizeof c->secret_file, "./outbox.secret");
    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->log_format, sizeof c->log_format, "text");
    const char *cfg = getenv("OUTBOX_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("outboxd %s\n", VERSION);
            return 1;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfg = argv[i + 1];
    }
    if (cfg)
        snprintf(c->config_file, sizeof c->config_file, "%s", cfg);
    memset(list_source, 0, sizeof list_source);
    source = 1;
    if (cfg && !read_config(c, cfg))
        return 2;
    source = 2;
    if (!read_env(c))
        return 2;
    source = 3;
    for (int i = 1; i < argc; i += 2) { /* --NAME VALUE pairs */
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "outboxd: expected --NAME VALUE, got \"%s\" (see outboxd --help)\n",
                    argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--config") != 0 && !set_opt(c, argv[i] + 2, argv[i + 1], "flag"))
            return 2;
    }
    return 0;
}

/* The host of a HOST:PORT or [V6]:PORT listen address, into host[n]. */
char *outboxd_listen_host(const char *listen, char *host, size_t n)
{
    snprintf(host, n, "%s", listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    size_t len = strlen(host);
    if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
        memmove(host, host + 1, len - 2);
        host[len - 2] = '\0';
    }
    return host;
}

/* Whether HOST:PORT names only loopback addresses (resolved, then each
 * checked: "127.corp.example" is a name like any other). */
bool outboxd_loopback(const char *listen)
{
    char host[256];
    return outbound_is_loopback_host(outboxd_listen_host(listen, host, sizeof host));
}
