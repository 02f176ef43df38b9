/*
 * outboxd.c - the daemon: the job engine, the HTTP server and its JSON
 * API, tokens and secrets, logs, signals. Its settings: config.c.
 *
 * Without bearer tokens outboxd serves loopback only and says so; it
 * refuses to listen elsewhere without them.
 *
 * Signals are taken by the main thread alone (sigwait; every other thread
 * blocks them): SIGTERM/SIGINT stop gracefully — /readyz turns 503, the
 * server stops accepting and answers 503 to new requests and to held ones,
 * requests in flight finish, workers drain, the store closes, exit 0.
 * SIGHUP reopens the log file. Under systemd (Type=notify) it says when
 * it is ready, reloading and stopping, and feeds the watchdog (service.c).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/http_request.h"
#include "api/outbound.h"
#include "api/secrets.h"
#include "outbox/util.h"
#include "outbox/http.h"
#include "outbox/jobs.h"

#include "commands.h"
#include "config.h"
#include "service.h"

/* ---- tokens, secrets, loopback ---- */

/* The bearer tokens of a private file, one a line. Returns the count, or
 * -1 after saying why. */
static int read_tokens(const char *path, char ***out)
{
    char *text, err[1200];
    if (secret_file_read(path, &text, err, sizeof err)) {
        fprintf(stderr, "outboxd: token file: %s\n", err);
        return -1;
    }
    char **t = NULL;
    int n = 0, ln = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        ln++;
        char *s = outboxd_trim(line);
        if (!*s || *s == '#')
            continue;
        size_t len = strlen(s);
        bool ok = len >= 16 && len <= 512;
        for (size_t i = 0; ok && i < len; i++)
            ok = s[i] > 0x20 && s[i] < 0x7f;
        char **grown = ok ? realloc(t, sizeof *t * (size_t)(n + 1)) : NULL;
        if (!grown || !(grown[n] = strdup(s))) {
            fprintf(stderr, ok ? "outboxd: out of memory\n"
                               : "outboxd: %s: a token line is 16-512 printable characters "
                                 "without spaces\n", path);
            if (grown)
                t = grown;
            for (int i = 0; i < n; i++)
                free(t[i]);
            free(t);
            free(text);
            return -1;
        }
        t = grown;
        n++;
    }
    (void)ln;
    free(text);
    if (!n) {
        fprintf(stderr, "outboxd: %s holds no token\n", path);
        return -1;
    }
    *out = t;
    return n;
}

/* The webhook signing keys: the file's, created (0600, a fresh whsec_
 * secret) if missing. */
static bool read_secret(const char *path, webhook_keys *keys)
{
    char *text = NULL, err[1200];
    struct stat st;
    if (lstat(path, &st) != 0 && errno == ENOENT) {
        char line[96];
        webhook_secret_new(line, sizeof line);
        if (secret_file_create(path, line, err, sizeof err)) {
            fprintf(stderr, "outboxd: callback secret: %s\n", err);
            return false;
        }
        ob_logf(OB_LOG_INFO, "outboxd: created the callback signing secret %s", path);
    }
    if (secret_file_read(path, &text, err, sizeof err)) {
        fprintf(stderr, "outboxd: callback secret: %s\n", err);
        return false;
    }
    int rc = webhook_keys_parse(text, keys, err, sizeof err);
    free(text);
    if (rc)
        fprintf(stderr, "outboxd: callback secret %s: %s\n", path, err);
    return rc == 0;
}

/* The SMTP password: the first line of a private file, malloc'd. */
static char *read_password(const char *path)
{
    char *text, err[1200];
    if (secret_file_read(path, &text, err, sizeof err)) {
        fprintf(stderr, "outboxd: smtp password: %s\n", err);
        return NULL;
    }
    text[strcspn(text, "\r\n")] = '\0';
    if (!text[0]) {
        fprintf(stderr, "outboxd: %s holds no password\n", path);
        free(text);
        return NULL;
    }
    return text;
}

/* ---- logging ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;
static const char *log_path;
static bool log_json;
static bool log_journal; /* stderr is the journal: native fields (service.c) */

/* A line from ob_log ("TIME LEVEL MESSAGE", control characters already
 * escaped) as written: itself, or {"time","level","msg"} with
 * --log-format json. */
static void log_line(void *arg, ob_log_level level, const char *line)
{
    (void)arg;
    if (log_journal && !log_fp) {
        service_journal(level, line);
        return;
    }
    char *json = NULL;
    if (log_json) {
        const char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        json_t *o = sp2 ? json_pack("{s:s%, s:s%, s:s}", "time", line, (size_t)(sp1 - line),
                                    "level", sp1 + 1, (size_t)(sp2 - sp1 - 1), "msg", sp2 + 1)
                        : json_pack("{s:s}", "msg", line);
        json = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    pthread_mutex_lock(&log_mu);
    FILE *f = log_fp ? log_fp : stderr;
    fprintf(f, "%s\n", json ? json : line);
    fflush(f);
    pthread_mutex_unlock(&log_mu);
    free(json);
}

/* A command's log: the message alone, on stderr ("outboxd: ..."). */
static void command_log(void *arg, ob_log_level level, const char *line)
{
    (void)arg;
    (void)level;
    const char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    fprintf(stderr, "outboxd: %s\n", sp2 ? sp2 + 1 : line);
}

static bool reopen_log(void)
{
    if (!log_path)
        return true;
    FILE *f = fopen(log_path, "a");
    if (!f) {
        fprintf(stderr, "outboxd: cannot open log %s: %s\n", log_path, strerror(errno));
        return false;
    }
    pthread_mutex_lock(&log_mu);
    if (log_fp)
        fclose(log_fp);
    log_fp = f;
    pthread_mutex_unlock(&log_mu);
    return true;
}

/* One line per state change, with the job's id. */
static void log_event(void *arg, const ob_event *ev)
{
    (void)arg;
    char id[OB_ID_STRLEN + 1];
    ob_logf(OB_LOG_INFO, "job %s %s queue=%s %s attempt=%d%s%s", ob_id_format(&ev->id, id), ev->kind, ev->queue,
            ob_state_name(ev->state), ev->attempt, ev->error ? " error=" : "",
            ev->error ? ev->error : "");
}

static int level_of(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(s, names[i]))
            return i;
    return -1;
}

/* ---- main ---- */

/* The store URL for logs: without userinfo and query (a password may be
 * in either). */
static const char *shown(const char *url, char *buf, size_t n) { return ob_url_shown(url, buf, n); }

/* outboxd's own listen address(es), bound to `port`, made never a target
 * of outbound jobs. false after saying why. */
static bool add_self(outbound *p, const char *listen, int port)
{
    char host[256];
    outboxd_listen_host(listen, host, sizeof host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai, *i;
    if (getaddrinfo(host[0] ? host : NULL, "0", &hints, &ai) != 0) {
        fprintf(stderr, "outboxd: cannot resolve %s\n", host);
        return false;
    }
    bool ok = true;
    for (i = ai; i && ok; i = i->ai_next)
        ok = outbound_add_self(p, i->ai_addr, port) == 0;
    freeaddrinfo(ai);
    if (!ok)
        fprintf(stderr, "outboxd: too many addresses on this host\n");
    return ok;
}

/* The command (argv[1] when it is one) and its own flags, --from and
 * --to, taken out of argv; the rest are settings. false: a usage error. */
static bool command(int *argc, char **argv, const char **cmd, const char **from, const char **to)
{
    static const char *const cmds[] = {"check", "migrate", "backup"};
    *cmd = *from = *to = NULL;
    if (*argc < 2 || argv[1][0] == '-')
        return true;
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(argv[1], cmds[i]))
            *cmd = cmds[i];
    if (!*cmd) {
        fprintf(stderr, "outboxd: unknown command \"%s\" (check, migrate or backup; see "
                        "outboxd --help)\n", argv[1]);
        return false;
    }
    int n = 1;
    for (int i = 2; i < *argc; i++) {
        bool own = i + 1 < *argc && strcmp(*cmd, "check") != 0 &&
                   (!strcmp(argv[i], "--to") || (!strcmp(argv[i], "--from") && !strcmp(*cmd, "migrate")));
        if (own) {
            *(argv[i][2] == 't' ? to : from) = argv[i + 1];
            i++;
        } else {
            argv[n++] = argv[i];
        }
    }
    *argc = n;
    return true;
}

int main(int argc, char **argv)
{
    config c;
    const char *cmd, *from, *dest;
    if (!command(&argc, argv, &cmd, &from, &dest))
        return 2;
    umask(077); /* the store, its WAL and lock, mail files, backups, logs: the owner's only */
    int rc = outboxd_configure(&c, argc, argv);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (cmd) { /* the store's messages to stderr, without a time: a command's output */
        ob_log_set(command_log, NULL, OB_LOG_WARN);
        if (!strcmp(cmd, "check"))
            return outboxd_check(&c);
        if (!strcmp(cmd, "backup"))
            return outboxd_backup(&c, dest);
        return outboxd_migrate(&c, from, dest);
    }
    int level = level_of(c.log_level);
    if (level < 0) {
        fprintf(stderr, "outboxd: --log-level: debug, info, warn or error\n");
        return 2;
    }
    if (strcmp(c.log_format, "text") != 0 && strcmp(c.log_format, "json") != 0) {
        fprintf(stderr, "outboxd: --log-format: text or json\n");
        return 2;
    }
    log_json = strcmp(c.log_format, "json") == 0;
    log_journal = !log_json && !c.log_file[0] && service_journal_stderr();
    log_path = c.log_file[0] ? c.log_file : NULL;
    if (!reopen_log())
        return 1;
    ob_log_set(log_line, NULL, (ob_log_level)level);

    /* Everything made from here on is released at `out`, in reverse. */
    char **tokens = NULL;
    int ntokens = 0;
    static webhook_keys keys;     /* borrowed by the job kinds for the engine's life */
    static outbound policy;
    char *smtp_password = NULL;
    ob_transport *transport = NULL;
    ob_mailer *mailer = NULL;
    ob_dkim *dkim = NULL;
    ob_engine *e = NULL;
    ob_subscription *logsub = NULL;
    ob_pool *pool = NULL;
    ob_http_server *srv = NULL;
    api *a = NULL;
    char err[1200];
    outbound_init(&policy);
    if (outbound_allow(&policy, c.http_allow, err, sizeof err)) {
        fprintf(stderr, "outboxd: %s\n", err);
        rc = 2;
        goto out;
    }
    if (c.token_file[0] && (ntokens = read_tokens(c.token_file, &tokens)) < 0) {
        ntokens = 0;
        rc = 1;
        goto out;
    }
    if (!ntokens && !outboxd_loopback(c.listen)) {
        fprintf(stderr, "outboxd: refusing to serve %s without authentication: give "
                        "--token-file, or listen on a loopback address\n", c.listen);
        rc = 2;
        goto out;
    }
    if (!read_secret(c.secret_file, &keys) ||
        (c.smtp_password_file[0] && !(smtp_password = read_password(c.smtp_password_file)))) {
        rc = 1;
        goto out;
    }

    /* Signals: this thread waits for them; every thread made from here
     * on inherits the block. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    ob_mail_init();
    ob_transport_opts to;
    ob_transport_opts_init(&to);
    to.pool_size = (int)c.smtp_pool;
    to.command_timeout_ms = c.smtp_timeout * 1000;
    to.connect_timeout_ms = c.smtp_timeout * 1000;
    to.data_timeout_ms = 2 * c.smtp_timeout * 1000;
    to.ca_file = c.smtp_ca[0] ? c.smtp_ca : NULL;
    to.helo = c.smtp_helo[0] ? c.smtp_helo : NULL;
    to.password = smtp_password;
    ob_problem why;
    if (ob_transport_open(c.smtp, &to, &transport, &why)) {
        const char *flag = !strcmp(why.field, "ca_file")    ? "--smtp-ca"
                           : !strcmp(why.field, "password") ? "--smtp-password-file"
                                                            : "--smtp";
        fprintf(stderr, "outboxd: %s: %s\n", flag, why.message);
        transport = NULL;
        rc = 2;
        goto out;
    }
    if ((rc = outboxd_dkim(&c, &dkim))) {
        rc = rc == OB_ENOMEM ? 1 : 2;
        goto out;
    }
    ob_mail_limits ml;
    ob_mail_limits_init(&ml);
    ml.max_recipients = (int)c.max_recipients;
    ml.max_size = ml.max_attachment = (size_t)c.max_message;

    /* Limits made to fit each other: the engine's hold the stored form of
     * the largest message and every recipient's outcome. */
    ob_engine_opts eo;
    ob_engine_opts_init(&eo);
    eo.max_payload = (size_t)c.max_payload;
    ob_mail_job_engine_opts(&eo, &ml);
    ob_engine_opts fit = {0}; /* what a message alone needs: its body limit */
    ob_mail_job_engine_opts(&fit, &ml);
    size_t mail_payload = fit.max_payload;
    eo.node_dead_ms = c.node_dead * 1000;
    if (eo.rescue_interval_ms > eo.node_dead_ms / 3) /* a dead node's jobs: rescued soon after */
        eo.rescue_interval_ms = eo.node_dead_ms / 3;
    char store_buf[1100];
    const char *store = shown(c.store, store_buf, sizeof store_buf);
    if ((rc = ob_engine_open(c.store, &eo, &e))) {
        fprintf(stderr, "outboxd: cannot open the store %s: %s\n", store, ob_strerror(rc));
        e = NULL;
        rc = 1;
        goto out;
    }
    hr_opts ho;
    hr_opts_init(&ho);
    ho.max_timeout_ms = c.http_max_timeout * 1000;
    ho.policy = &policy;
    ho.keys = &keys;
    ho.callback_payload = c.callback_payload != 0;
    ob_mail_job_opts mo = {.timeout_ms = 4 * to.data_timeout_ms + 60000,
                           .retry_min_ms = c.mail_retry_min * 1000,
                           .retry_max_ms = c.mail_retry_max * 1000,
                           .lifetime_ms = c.mail_lifetime * 1000};
    if ((rc = hr_register(e, &ho)) || (rc = ob_mail_job_register(e, transport, &mo, &mailer)) ||
        (rc = ob_engine_subscribe(e, log_event, NULL, &logsub))) {
        fprintf(stderr, "outboxd: cannot start the engine: %s\n", ob_strerror(rc));
        rc = 1;
        goto out;
    }

    ob_http_opts hopts;
    ob_http_opts_init(&hopts);
    hopts.listen = c.listen;
    if (c.threads)
        hopts.threads = (int)c.threads;
    hopts.max_body = (size_t)c.max_body;
    hopts.max_body_total = (size_t)c.max_body_total;
    hopts.max_connections = (int)c.max_connections;
    hopts.max_connections_per_ip = (int)c.max_connections_per_ip;
    hopts.header_timeout_ms = c.header_timeout * 1000;
    api_opts ao;
    api_opts_init(&ao);
    ao.engine = e;
    ao.tokens = (const char *const *)tokens;
    ao.ntokens = ntokens;
    ao.max_wait_ms = c.max_wait * 1000;
    ao.max_job_payload = (size_t)c.max_payload;
    ao.mail_limits = &ml;
    ao.mailer = mailer;
    ao.dkim = dkim;
    ao.max_batch = (int)c.max_batch;
    ao.max_batch_body = (size_t)c.max_batch_body;
    ao.max_message_body = mail_payload > (size_t)c.max_body ? mail_payload : (size_t)c.max_body;
    ao.max_event_clients = (int)c.max_event_clients;
    ao.policy = &policy;
    if ((rc = ob_http_server_new(&hopts, &srv)) || (rc = api_new(srv, &ao, &a)) ||
        (rc = ob_http_server_start(srv))) {
        fprintf(stderr, "outboxd: cannot serve on %s: %s\n", c.listen, ob_strerror(rc));
        rc = 1;
        goto out;
    }
    /* Our own address is known now (port 0 picks one): never a target.
     * Workers start only then, so no job runs before the rule holds. */
    ob_pool_opts po;
    ob_pool_opts_init(&po);
    po.workers = (int)c.workers;
    if (!add_self(&policy, c.listen, ob_http_server_port(srv))) {
        rc = 1;
        goto out;
    }
    if (c.workers > 0 && (rc = ob_pool_start(e, &po, &pool))) {
        fprintf(stderr, "outboxd: cannot start the workers: %s\n", ob_strerror(rc));
        rc = 1;
        goto out;
    }
    char host[256];
    snprintf(host, sizeof host, "%s", c.listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    ob_logf(OB_LOG_INFO, "outboxd %s listening on http://%s:%d (store %s, %ld workers, mail to %s, %s)",
            VERSION, host, ob_http_server_port(srv), store, c.workers,
            ob_transport_name(transport),
            ntokens ? "bearer tokens required" : "no authentication: loopback only");
    char status[320];
    snprintf(status, sizeof status, "listening on %s:%d, %ld workers", host,
             ob_http_server_port(srv), c.workers);
    service_init();
    service_ready(status);
    int64_t tick = service_tick_ms();
    for (;;) {
        int sig;
        if (tick > 0) { /* the watchdog: fed between signals */
            struct timespec ts = {tick / 1000, (tick % 1000) * 1000000};
            service_tick(e);
            if ((sig = sigtimedwait(&sigs, NULL, &ts)) < 0)
                continue;
        } else if (sigwait(&sigs, &sig)) {
            continue;
        }
        if (sig == SIGHUP) {
            service_reloading();
            reopen_log();
            ob_logf(OB_LOG_INFO, "outboxd: log reopened");
            service_ready(status);
            continue;
        }
        service_stopping();
        ob_logf(OB_LOG_INFO, "outboxd: %s: stopping (draining requests and workers)", strsignal(sig));
        break;
    }
    api_draining(a);
    ob_http_server_stop(srv, 10 * 1000);
    rc = 0;
out:
    api_free(a);
    ob_http_server_free(srv);
    ob_pool_stop(pool, 30 * 1000);
    if (e) {
        ob_engine_unsubscribe(e, logsub);
        ob_engine_close(e);
    }
    ob_mailer_free(mailer);
    ob_transport_close(transport);
    ob_dkim_free(dkim);
    if (!rc)
        ob_logf(OB_LOG_INFO, "outboxd: stopped");
    for (int i = 0; i < ntokens; i++)
        free(tokens[i]);
    free(tokens);
    if (smtp_password) {
        memset(smtp_password, 0, strlen(smtp_password));
        free(smtp_password);
    }
    memset(&keys, 0, sizeof keys);
    if (log_fp)
        fclose(log_fp);
    return rc;
}
