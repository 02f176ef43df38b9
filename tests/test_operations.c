/*
 * test_operations.c - outboxd's commands for operators, as real processes:
 *
 *   check    a good setup passes and says what it would use; each kind of
 *            fault (a token file others can read, an unreachable relay, a
 *            store from a newer outbox, a bad value) fails and names it;
 *   backup   a running store copied while a client keeps enqueueing; the
 *            copy restored as the documented steps say, and served;
 *   migrate  --from sqlite --to postgres: 100,000 jobs in every state
 *            (with their errors, results, search terms), the queues'
 *            settings and a schedule; killed half-way and resumed; a third
 *            run changes nothing; the target agrees job by job (sums over
 *            every column), its counters agree (N1), and an engine on it
 *            rescues the jobs left running and runs the rest.
 *
 * Run twice by ctest: the SQLite tests, and (OB_TEST_STORE=postgres) the
 * migration, whose target is this test's own PostgreSQL schema.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "helpers.h"
#include "http_helpers.h"
#include "od_helpers.h"
#include "outbox/store.h"

/* ---- check ---- */

/* A port nothing listens on (bound to 0, then closed). */
static int a_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    ASSERT(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    ASSERT(getsockname(fd, (struct sockaddr *)&a, &n) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

TEST(check_passes_and_says_what_it_would_use)
{
    char *out;
    FILE *f = fopen("tokens", "w");
    fputs("# ops\n0123456789abcdef0123\n", f);
    fclose(f);
    chmod("tokens", 0600);
    f = fopen("od.conf", "w");
    fprintf(f, "listen = 0.0.0.0:8025\ntoken-file = %s/tokens\nstore = sqlite:%s/o.db\n"
               "smtp = file:%s/mail\nworkers = 3\n", test_dir(), test_dir(), test_dir());
    fclose(f);
    ASSERT_EQ(t_run(&out, "%s check --config od.conf 2>&1", OUTBOXD), 0);
    ASSERT(strstr(out, "ok   tokens") && strstr(out, "(1 line)"));
    ASSERT(strstr(out, "no outbox schema yet") && strstr(out, "3 workers"));
    ASSERT(strstr(out, "ready to start"));
    free(out);
    ASSERT(access("o.db", F_OK) != 0 && access("mail", F_OK) != 0); /* nothing made */
    ASSERT(access("outbox.secret", F_OK) != 0);
    /* a repeatable setting: the file's lines are one list; the
     * environment replaces it whole */
    ASSERT_EQ(t_run(&out, "openssl genpkey -algorithm ed25519 -out a.pem && cp a.pem b.pem && "
                          "chmod 600 a.pem b.pem && printf 'dkim = a.example:s:a.pem\n"
                          "dkim = b.example:s:b.pem\n' > k.conf"), 0);
    free(out);
    ASSERT_EQ(t_run(&out, "%s check --config k.conf 2>&1", OUTBOXD), 0);
    ASSERT(strstr(out, "ok   dkim             a.example:s:a.pem,b.example:s:b.pem") != NULL);
    free(out);
    ASSERT_EQ(t_run(&out, "OUTBOX_DKIM=c.example:s:b.pem %s check --config k.conf 2>&1", OUTBOXD), 0);
    ASSERT(strstr(out, "ok   dkim             c.example:s:b.pem\n") != NULL);
    free(out);
}

TEST(check_names_each_fault)
{
    char *out;
    FILE *f = fopen("tokens", "w");
    fputs("0123456789abcdef0123\n", f);
    fclose(f);
    chmod("tokens", 0644);
    ASSERT_EQ(t_run(&out, "%s check --token-file tokens 2>&1", OUTBOXD), 1);
    ASSERT(strstr(out, "FAIL tokens") != NULL);
    free(out);
    /* a relay that does not answer: a port nothing listens on */
    int port = a_free_port();
    ASSERT_EQ(t_run(&out, "%s check --smtp smtp://127.0.0.1:%d 2>&1", OUTBOXD, port), 1);
    ASSERT(strstr(out, "FAIL mail") && strstr(out, "cannot connect"));
    free(out);
    ASSERT_EQ(t_run(&out, "%s check --listen 0.0.0.0:8025 2>&1", OUTBOXD), 1);
    ASSERT(strstr(out, "FAIL listen") && strstr(out, "refused at start"));
    free(out);
    ASSERT_EQ(t_run(&out, "%s check --workers lots 2>&1", OUTBOXD), 2);
    ASSERT(strstr(out, "workers must be a number") != NULL);
    free(out);
    ASSERT_EQ(t_run(&out, "%s migrate --store sqlite:n.db >/dev/null && sqlite3 n.db "
                          "'PRAGMA user_version=99' && %s check --store sqlite:n.db 2>&1",
                    OUTBOXD, OUTBOXD), 1);
    ASSERT(strstr(out, "FAIL store") && strstr(out, "upgrade outboxd"));
    free(out);
    ASSERT_EQ(t_run(&out, "%s frobnicate 2>&1", OUTBOXD), 2);
    ASSERT(strstr(out, "unknown command") != NULL);
    free(out);
}

/* ---- backup ---- */

static int count_jobs(const char *path)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

TEST(backup_of_a_running_store_restores)
{
    od d = od_start("--workers 0");
    char body[256];
    for (int i = 0; i < 200; i++) {
        snprintf(body, sizeof body, "{\"kind\":\"http.request\",\"queue\":\"q\",\"payload\":"
                                    "{\"url\":\"http://127.0.0.1:9/%d\"}}", i);
        EXPECT(od_post(&d, "/v1/jobs", NULL, body), "202", "\"id\"");
    }
    /* a client enqueueing all through the backup */
    pid_t writer = fork();
    if (writer == 0) {
        for (int i = 0; i < 100000; i++) {
            char *o;
            t_run(&o, "curl -s -o /dev/null -H 'Content-Type: application/json' -d "
                      "'{\"kind\":\"http.request\",\"payload\":{\"url\":\"http://127.0.0.1:9/w\"}}' "
                      "%s/v1/jobs", d.url);
            free(o);
        }
        _exit(0);
    }
    h_sleep_ms(300);
    char *out;
    ASSERT_EQ(t_run(&out, "%s backup --store sqlite:./outbox.db --to ./copy.db 2>&1", OUTBOXD), 0);
    ASSERT(strstr(out, "backed up") && strstr(out, "checked"));
    free(out);
    kill(writer, SIGKILL);
    waitpid(writer, NULL, 0);
    ASSERT(access("copy.db.partial", F_OK) != 0);
    struct stat st;
    ASSERT_EQ(stat("copy.db", &st), 0);
    ASSERT_EQ(st.st_mode & 077, 0); /* the owner's only, like the store */
    int copied = count_jobs("copy.db");
    ASSERT(copied >= 200);
    /* a second backup to the same name is refused, the first left alone */
    ASSERT_EQ(t_run(&out, "%s backup --store sqlite:./outbox.db --to ./copy.db 2>&1", OUTBOXD), 1);
    ASSERT(strstr(out, "copy.db exists") != NULL);
    free(out);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    ASSERT(count_jobs("outbox.db") > copied); /* the writer went on meanwhile */

    /* restore, as README "Backups" says: stop, replace the file, remove
     * the -wal and -shm, start */
    ASSERT_EQ(t_run(&out, "mv copy.db outbox.db && rm -f outbox.db-wal outbox.db-shm"), 0);
    free(out);
    ASSERT_EQ(count_jobs("outbox.db"), copied);
    d = od_start("--workers 0");
    char *r;
    t_run(&r, "curl -s %s/v1/queues/q", d.url);
    ASSERT(strstr(r, "\"available\":200") != NULL);
    free(r);
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    /* a PostgreSQL store is pg_dump's */
    ASSERT_EQ(t_run(&out, "%s backup --store postgres://x@127.0.0.1:1/x --to p.db 2>&1", OUTBOXD), 1);
    ASSERT(strstr(out, "pg_dump") != NULL);
    free(out);
}

/* ---- migrate: 100,000 jobs in every state ---- */

#define N_DONE 40000
#define N_RETRY 10000
#define N_DISCARD 10000
#define N_LATER 10000
#define N_CANCEL 10000
#define N_RUNNING 10
#define N_HELD (100000 - N_DONE - N_RETRY - N_DISCARD - N_LATER - N_CANCEL - N_RUNNING)
#define N_ALL 100000

/* Enqueue n script jobs in transactions of the caller's own, 2,000 a
 * transaction (the engine's commits wait for each). */
static void add_many(ob_engine *e, sqlite3 *db, int n, const char *cmd, const char *queue,
                     int64_t run_at, const char *tag)
{
    char key[64], terms[64];
    ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < n; i++) {
        if (i && i % 2000 == 0) {
            ASSERT_EQ(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
            ob_engine_wake(e);
            h_sleep_ms(20); /* the engine's turn to write */
            ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        }
        snprintf(key, sizeof key, "%s-%d", tag, i);
        snprintf(terms, sizeof terms, "rcpt-%d@example.org\n%s", i, tag);
        ob_new_job j = {.kind = "script", .queue = queue, .payload = cmd,
                        .payload_len = strlen(cmd), .run_at_ms = run_at, .max_attempts = 3,
                        .unique_key = i % 10 == 0 ? key : NULL, .meta = i % 7 ? NULL : "{\"m\":1}",
                        .terms = i % 5 == 0 ? terms : NULL, .priority = i % 3,
                        .timeout_ms = 3600000};
        ob_id id;
        ASSERT_OK(ob_enqueue_sqlite(e, db, &j, &id, NULL));
    }
    ASSERT_EQ(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    ob_engine_wake(e);
}

static int64_t in_state(ob_engine *e, const char *queue, ob_state s)
{
    ob_queue_info q;
    if (ob_queue_get(e, queue, &q))
        return 0;
    return q.counts[s];
}

/* The source, made by an engine that then dies with N_RUNNING jobs
 * running (a crash: what migrate meets when outboxd died). */
static void make_source(const char *url, const char *path)
{
    pid_t p = fork();
    if (p) {
        int st;
        ASSERT_EQ(waitpid(p, &st, 0), p);
        ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        return;
    }
    ob_engine_opts o;
    h_fast_opts(&o);
    o.max_payload = 1 << 20;
    ob_engine *e;
    ASSERT_OK(ob_engine_open(url, &o, &e));
    ASSERT_OK(ob_engine_register(e, "script", h_script, NULL, NULL));
    ob_queue_settings qs = {.paused = true};
    ASSERT_OK(ob_queue_set(e, "held", &qs, OB_QUEUE_PAUSED, NULL, NULL));
    ob_queue_settings cap = {.concurrency = N_RUNNING, .rate_limit = 500, .rate_period_ms = 60000};
    ASSERT_OK(ob_queue_set(e, "capped", &cap, OB_QUEUE_CONCURRENCY | OB_QUEUE_RATE, NULL, NULL));
    ob_schedule s = {.name = "nightly", .cron = "0 3 * * *", .timezone = "Europe/Paris",
                     .job = {.kind = "script", .queue = "later", .payload = "done",
                             .payload_len = 4}};
    ASSERT_OK(ob_schedule_set(e, &s, NULL));
    const char *rk[] = {"a@example.com", "b@example.org", "c@xn--bcher-kva.example"};
    for (int i = 0; i < 3; i++) /* records (the suppression list) go too */
        ASSERT_OK(ob_record_put(e, "mail.suppressions", rk[i], "manual", "{\"note\":\"x\"}",
                                NULL, NULL));
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    int64_t later = ob_now_ms() + 86400000;
    add_many(e, db, N_DONE, "done:{\"sent\":true}", "done", 0, "done");
    add_many(e, db, N_RETRY, "retry:3600000", "retry", 0, "retry");
    add_many(e, db, N_DISCARD, "discard", "discard", 0, "discard");
    add_many(e, db, N_LATER, "done", "later", later, "later");
    add_many(e, db, N_CANCEL, "done", "cancel", later, "cancel");
    add_many(e, db, N_HELD, "done", "held", 0, "held");
    add_many(e, db, N_RUNNING, "hang-first:600000", "capped", 0, "running");
    sqlite3_close(db);
    ob_list_filter f = {.queue = "cancel"};
    ob_bulk_result br;
    do {
        ASSERT_OK(ob_jobs_bulk(e, OB_BULK_CANCEL, &f, NULL, 0, &br));
        f.cursor = br.next_cursor;
    } while (br.next_cursor[0]);
    ob_pool *pool = h_pool(e, 16, 64, NULL);
    int64_t end = ob_now_ms() + 240000;
    while ((in_state(e, "done", OB_COMPLETED) < N_DONE ||
            in_state(e, "retry", OB_RETRYABLE) < N_RETRY ||
            in_state(e, "discard", OB_DISCARDED) < N_DISCARD ||
            in_state(e, "capped", OB_RUNNING) < N_RUNNING) && ob_now_ms() < end)
        h_sleep_ms(200);
    ASSERT_EQ(in_state(e, "cancel", OB_CANCELLED), N_CANCEL);
    ASSERT_EQ(in_state(e, "capped", OB_RUNNING), N_RUNNING);
    ASSERT_EQ(in_state(e, "done", OB_COMPLETED), N_DONE);
    (void)pool;
    _exit(0); /* dies with its jobs running: no stop, no close */
}

/* A fingerprint of the jobs, the same SQL on both stores. */
static const char *const sums =
    "SELECT count(*), sum(attempt), sum(priority), sum(length(payload)), sum(length(result)),"
    " count(unique_key), sum(run_at %% 1000003), sum(coalesce(finished_at, 0) %% 1000003),"
    " count(meta), sum(length(kind) + length(queue)), sum(state * 7 + priority) FROM %s;"
    "SELECT count(*), sum(attempt), sum(length(message)), sum(at %% 1000003) FROM %s;"
    "SELECT count(*), sum(length(term)) FROM %s;"
    "SELECT queue, state, count(*) FROM %s GROUP BY 1, 2 ORDER BY 1, 2";

static void sqlite_sums(const char *path, char *out, size_t n)
{
    char sql[2048];
    snprintf(sql, sizeof sql, sums,
             "(SELECT j.*, p.data AS payload FROM jobs j JOIN payloads p ON p.seq = j.seq)",
             "errors", "terms", "jobs");
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    size_t len = 0;
    const char *tail = sql;
    while (*tail) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, tail, -1, &st, &tail) != SQLITE_OK)
            test_fail(__FILE__, __LINE__, "%s", sqlite3_errmsg(db));
        if (!st)
            break;
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < sqlite3_column_count(st); i++)
                len += (size_t)snprintf(out + len, n - len, "%s%c",
                                        (const char *)sqlite3_column_text(st, i) ?: "-",
                                        i + 1 < sqlite3_column_count(st) ? ' ' : '\n');
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

static void pg_sums(const char *url, char *out, size_t n)
{
    char sql[2048];
    snprintf(sql, sizeof sql, sums, "outbox_jobs", "outbox_errors", "outbox_terms", "outbox_jobs");
    PGconn *c = (PGconn *)test_pg_connect(url);
    size_t len = 0;
    for (char *q = strtok(sql, ";"); q; q = strtok(NULL, ";")) {
        PGresult *r = PQexec(c, q);
        ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
        for (int row = 0; row < PQntuples(r); row++)
            for (int i = 0; i < PQnfields(r); i++)
                len += (size_t)snprintf(out + len, n - len, "%s%c",
                                        PQgetisnull(r, row, i) ? "-" : PQgetvalue(r, row, i),
                                        i + 1 < PQnfields(r) ? ' ' : '\n');
        PQclear(r);
    }
    PQfinish(c);
}

static int64_t pg_int(const char *url, const char *sql)
{
    PGconn *c = (PGconn *)test_pg_connect(url);
    PGresult *r = PQexec(c, sql);
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* Start `outboxd migrate` and kill it once it has copied some batches. */
static void migrate_killed_midway(const char *from, const char *to)
{
    pid_t p = fork();
    if (p == 0) {
        freopen("migrate.err", "w", stderr);
        freopen("/dev/null", "w", stdout);
        execl(OUTBOXD, OUTBOXD, "migrate", "--from", from, "--to", to, (char *)NULL);
        _exit(127);
    }
    char buf[4096] = "";
    for (int64_t end = ob_now_ms() + 120000; ob_now_ms() < end; h_sleep_ms(20)) {
        FILE *f = fopen("migrate.err", "r");
        size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[got] = '\0';
        if (strstr(buf, "of 100000 jobs"))
            break;
    }
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    ASSERT(strstr(buf, "of 100000 jobs") != NULL);
}

TEST(migrate_100000_jobs_in_every_state_resumes_and_agrees)
{
    char from[1200], path[1100], to[1100], out_a[4096], out_b[4096], *out;
    snprintf(path, sizeof path, "%s/src.db", test_dir());
    snprintf(from, sizeof from, "sqlite:%s", path);
    snprintf(to, sizeof to, "%s", test_url("moved"));
    make_source(from, path);
    sqlite_sums(path, out_a, sizeof out_a);

    /* the source in use: refused */
    int lock = -1;
    {
        char lp[1200];
        snprintf(lp, sizeof lp, "%s.lock", path);
        lock = open(lp, O_RDWR);
        ASSERT(lock >= 0 && flock(lock, LOCK_EX) == 0);
        ASSERT_EQ(t_run(&out, "%s migrate --from '%s' --to '%s' 2>&1", OUTBOXD, from, to), 1);
        ASSERT(strstr(out, "in use") != NULL);
        free(out);
        close(lock);
    }

    migrate_killed_midway(from, to);
    int64_t first = pg_int(to, "SELECT count(*) FROM outbox_jobs");
    ASSERT(first > 0 && first < N_ALL);
    ASSERT_EQ(first % 2000, 0); /* whole batches, nothing half-written */

    int64_t t0 = ob_now_ms();
    ASSERT_EQ(t_run(&out, "%s migrate --from '%s' --to '%s' 2>&1", OUTBOXD, from, to), 0);
    printf("     the resumed migration copied %lld jobs in %lld ms\n", (long long)(N_ALL - first),
           (long long)(ob_now_ms() - t0));
    char want[256];
    snprintf(want, sizeof want, "100000 jobs: %lld copied, %lld already there",
             (long long)(N_ALL - first), (long long)first);
    /* (the settings went with the first run's first transactions) */
    if (!strstr(out, want) || !strstr(out, "0 queue settings, 0 schedules and 0 records (suppressions) copied"))
        test_fail(__FILE__, __LINE__, "want \"%s\", got: %s", want, out);
    free(out);
    ASSERT_EQ(t_run(&out, "%s migrate --from '%s' --to '%s' 2>&1", OUTBOXD, from, to), 0);
    ASSERT(strstr(out, "100000 jobs: 0 copied, 100000 already there") != NULL);
    free(out);
    ASSERT_EQ(pg_int(to, "SELECT count(*) FROM outbox_records WHERE set_name ="
                         " 'mail.suppressions' AND tag = 'manual' AND value = '{\"note\":\"x\"}'"
                         " AND created_at > 0"), 3);

    pg_sums(to, out_b, sizeof out_b);
    if (strcmp(out_a, out_b) != 0)
        test_fail(__FILE__, __LINE__, "source and target differ:\n%s---\n%s", out_a, out_b);
    ASSERT_EQ(pg_int(to, "SELECT count(*) FROM outbox_jobs WHERE state = 3 AND node IS NULL"),
              N_RUNNING);
    ASSERT_EQ(pg_int(to, "SELECT count(*) FROM outbox_jobs WHERE parked AND state = 2"), N_HELD);

    /* an engine on the target: its settings, its schedule, its counters;
     * the jobs left running are rescued and run again */
    ob_engine_opts o;
    h_fast_opts(&o);
    o.node_dead_ms = 2000; /* judge the rescue soon */
    o.rescue_interval_ms = 500;
    ob_engine *e;
    ASSERT_OK(ob_engine_open(to, &o, &e));
    ASSERT_OK(ob_engine_register(e, "script", h_script, NULL, NULL));
    ob_queue_info q;
    ASSERT_OK(ob_queue_get(e, "held", &q));
    ASSERT(q.settings.paused);
    ASSERT_EQ(q.counts[OB_AVAILABLE], N_HELD);
    ASSERT_OK(ob_queue_get(e, "capped", &q));
    ASSERT_EQ(q.settings.concurrency, N_RUNNING);
    ob_schedule_info si;
    ASSERT_OK(ob_schedule_get(e, "nightly", &si));
    ASSERT(!strcmp(si.timezone, "Europe/Paris"));
    ob_schedule_info_clear(&si);
    h_counts_agree(e);
    ob_job_page *pg;
    ob_list_filter f = {.term = "rcpt-5@example.org"};
    ASSERT_OK(ob_job_list(e, &f, &pg));
    ASSERT(pg->n >= 6); /* one a tagged batch */
    ob_job_page_free(pg);
    ob_pool *pool = h_pool(e, 8, 16, "capped");
    int64_t end = ob_now_ms() + 60000;
    while (in_state(e, "capped", OB_RUNNING) + in_state(e, "capped", OB_AVAILABLE) > 0 &&
           ob_now_ms() < end)
        h_sleep_ms(200);
    ASSERT_EQ(in_state(e, "capped", OB_RUNNING), 0);
    ob_pool_stop(pool, 10000);
    ob_engine_close(e);
}

static const test_case tests[] = {
    T_ONLY("sqlite", check_passes_and_says_what_it_would_use),
    T_ONLY("sqlite", check_names_each_fault),
    T_ONLY("sqlite", backup_of_a_running_store_restores),
    T_ONLY("postgres", migrate_100000_jobs_in_every_state_resumes_and_agrees),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
