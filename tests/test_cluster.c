/*
 * test_cluster.c - outboxd processes sharing one PostgreSQL: the cluster as
 * it is deployed. Jobs are http.request calls to a receiver in this
 * process, which records every execution (the job's number, from its
 * body), so that "exactly once", "no gaps" and "rescued in time" are
 * checked against what really ran, not against what the store says.
 *
 *   three nodes, 100,000 jobs: each ran exactly once, none is missing
 *   kill -9 a node, then the leader: the last node takes the lead and
 *     restarts their jobs within the dead-node interval; all complete
 *   PostgreSQL restarted under load: enqueues answer 503 meanwhile, never
 *     a 2xx for a job that is then lost; the nodes recover by themselves
 *
 * PostgreSQL only: the harness starts the server (OB_TEST_STORE=postgres).
 */
#include <curl/curl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "http_helpers.h"
#include "od_helpers.h"
#include "outbox/http.h"

#define NJOBS 100000

/* ---- the receiver: every execution of every job ---- */

static atomic_int runs[NJOBS];          /* executions of job n */
static _Atomic int64_t first_at[NJOBS]; /* ms of its first and last start */
static _Atomic int64_t last_at[NJOBS];
static atomic_int total_runs;

static int job_number(ob_http_req *r)
{
    size_t len;
    const char *b = ob_http_body(r, &len);
    int n = b && len > 2 && !strncmp(b, "n=", 2) ? atoi(b + 2) : -1;
    return n >= 0 && n < NJOBS ? n : -1;
}

static void record(int n)
{
    int64_t now = ob_now_ms(), zero = 0;
    atomic_compare_exchange_strong(&first_at[n], &zero, now);
    atomic_store(&last_at[n], now);
    atomic_fetch_add(&runs[n], 1);
    atomic_fetch_add(&total_runs, 1);
}

static void on_run(ob_http_req *r, void *arg)
{
    (void)arg;
    int n = job_number(r);
    if (n >= 0)
        record(n);
    ob_http_reply(r, n >= 0 ? 200 : 400, "text/plain", "ok", 2);
}

typedef struct slow {
    ob_http_later *l;
    int ms;
} slow;

static void *answer_later(void *arg)
{
    slow *s = arg;
    h_sleep_ms(s->ms);
    ob_http_later_reply(s->l, 200, "text/plain", "ok", 2);
    free(s);
    return NULL;
}

/* A job that takes ?ms= to answer: slow work a node is killed in. */
static void on_slow(ob_http_req *r, void *arg)
{
    (void)arg;
    int n = job_number(r);
    if (n >= 0)
        record(n);
    slow *s = malloc(sizeof *s);
    s->ms = atoi(ob_http_query(r, "ms") ? ob_http_query(r, "ms") : "1000");
    pthread_t t;
    if (ob_http_suspend(r, &s->l) == 0 && pthread_create(&t, NULL, answer_later, s) == 0)
        pthread_detach(t);
}

/* Requests in flight at /hold, and the most seen at once. */
static atomic_int held_now, held_most;

static void *release_later(void *arg)
{
    slow *s = arg;
    h_sleep_ms(s->ms);
    atomic_fetch_sub(&held_now, 1);
    ob_http_later_reply(s->l, 200, "text/plain", "ok", 2);
    free(s);
    return NULL;
}

/* As /slow, counting the requests in flight (the cap a queue keeps). */
static void on_hold(ob_http_req *r, void *arg)
{
    (void)arg;
    int n = job_number(r);
    if (n >= 0)
        record(n);
    int now = atomic_fetch_add(&held_now, 1) + 1, m = atomic_load(&held_most);
    while (now > m && !atomic_compare_exchange_weak(&held_most, &m, now))
        ;
    slow *s = malloc(sizeof *s);
    s->ms = atoi(ob_http_query(r, "ms") ? ob_http_query(r, "ms") : "50");
    pthread_t t;
    if (ob_http_suspend(r, &s->l) == 0 && pthread_create(&t, NULL, release_later, s) == 0)
        pthread_detach(t);
}

/* A destination that says "429, come back in 2 s" to its first request. */
static atomic_int limited_said;
static _Atomic int64_t limited_at; /* when it said it */

static void on_limited(ob_http_req *r, void *arg)
{
    (void)arg;
    int n = job_number(r);
    if (n >= 0)
        record(n);
    if (atomic_fetch_add(&limited_said, 1) == 0) {
        atomic_store(&limited_at, ob_now_ms());
        ob_http_set_header(r, "Retry-After", "2");
        ob_http_reply(r, 429, "text/plain", "slow down", 9);
        return;
    }
    h_sleep_ms(20);
    ob_http_reply(r, 200, "text/plain", "ok", 2);
}

static void quiet(void *arg, const ob_http_access *a) { (void)arg, (void)a; }

static int receiver(ob_http_server **out)
{
    ob_http_opts o;
    ob_http_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.max_connections = 4096;
    o.access_log = quiet;
    ASSERT_OK(ob_http_server_new(&o, out));
    ASSERT_OK(ob_http_route(*out, "POST", "/run", on_run, NULL, 0));
    ASSERT_OK(ob_http_route(*out, "POST", "/slow", on_slow, NULL, 0));
    ASSERT_OK(ob_http_route(*out, "POST", "/hold", on_hold, NULL, 0));
    ASSERT_OK(ob_http_route(*out, "POST", "/limited", on_limited, NULL, 0));
    ASSERT_OK(ob_http_server_start(*out));
    return ob_http_server_port(*out);
}

/* ---- the nodes ---- */

/* Start outboxd in its own directory nodeI (its log, its secret). */
static od node_start(int i, const char *url, const char *extra)
{
    char dir[32], args[6000];
    snprintf(dir, sizeof dir, "node%d", i);
    mkdir(dir, 0755);
    ASSERT_EQ(chdir(dir), 0);
    snprintf(args, sizeof args, "--store %s %s", url, extra);
    od d = od_start(args);
    ASSERT_EQ(chdir(".."), 0);
    return d;
}

static bool log_has(int i, const char *what)
{
    char path[64], line[2048];
    snprintf(path, sizeof path, "node%d/outboxd.log", i);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* Lines of node i's log holding `what`: how many, and the times of the
 * first and last (ms since the epoch, from their timestamps). */
static int log_times(int i, const char *what, int64_t *first, int64_t *last)
{
    char path[64], line[2048];
    snprintf(path, sizeof path, "node%d/outboxd.log", i);
    FILE *f = fopen(path, "r");
    int n = 0;
    *first = INT64_MAX, *last = 0;
    while (f && fgets(line, sizeof line, f)) {
        struct tm tm = {0};
        int ms = 0;
        if (!strstr(line, what) || !strptime(line, "%Y-%m-%dT%H:%M:%S", &tm) ||
            sscanf(line + 20, "%d", &ms) != 1)
            continue;
        int64_t t = (int64_t)timegm(&tm) * 1000 + ms;
        *first = t < *first ? t : *first;
        *last = t > *last ? t : *last;
        n++;
    }
    if (f)
        fclose(f);
    return n;
}

/* ---- HTTP client (libcurl) ---- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_data(char *d, size_t size, size_t n, void *arg)
{
    buf *b = arg;
    char *p = realloc(b->p, b->n + size * n + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, d, size * n);
    b->p = p;
    b->n += size * n;
    b->p[b->n] = '\0';
    return size * n;
}

/* POST (body != NULL) or GET; returns the status (0: no answer), body into
 * *out if not NULL (malloc'd). */
static long http(CURL *c, const char *url, const char *body, char **out)
{
    buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    if (out)
        *out = b.p;
    else
        free(b.p);
    return status;
}

/* The queue of the jobs enqueue_range makes, and their rate key (NULL:
 * the default, the receiver's origin). */
static const char *job_queue = "default";
static const char *job_rate_key = NULL;

/* The JSON of job n: POST n=N to the receiver's path. */
static int job_json(char *p, size_t cap, int port, const char *path, int n)
{
    return snprintf(p, cap,
                    "{\"kind\":\"http.request\",\"queue\":\"%s\",%s%s%s\"payload\":{"
                    "\"method\":\"POST\",\"url\":\"http://127.0.0.1:%d%s\",\"headers\":{"
                    "\"Content-Type\":\"text/plain\"},\"body\":\"n=%d\"}}",
                    job_queue, job_rate_key ? "\"rate_key\":\"" : "",
                    job_rate_key ? job_rate_key : "", job_rate_key ? "\"," : "", port, path, n);
}

/* Enqueue jobs [from, to) through node d, 100 per batch request. */
static void enqueue_range(CURL *c, const od *d, int port, const char *path, int from, int to)
{
    char url[128];
    snprintf(url, sizeof url, "%s/v1/jobs/batch", d->url);
    size_t cap = 100 * 256 + 64;
    char *body = malloc(cap);
    for (int n = from; n < to; n += 100) {
        size_t k = (size_t)snprintf(body, cap, "{\"jobs\":[");
        for (int i = n; i < n + 100 && i < to; i++) {
            if (i > n)
                body[k++] = ',';
            k += (size_t)job_json(body + k, cap - k, port, path, i);
        }
        snprintf(body + k, cap - k, "]}");
        char *resp = NULL;
        long st = http(c, url, body, &resp);
        if (st != 200 || strstr(resp ? resp : "", "\"error\""))
            test_fail(__FILE__, __LINE__, "batch at %d: %ld %.300s", n, st, resp ? resp : "");
        free(resp);
    }
    free(body);
}

static long count_sql(const char *url, const char *q)
{
    PGconn *c = test_pg_connect(url);
    PGresult *r = PQexec(c, q);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(c);
    return n;
}

/* Wait until `want` jobs are completed (up to `secs`); returns the count. */
static long wait_completed(const char *url, long want, int secs)
{
    long n = 0;
    for (int i = 0; i < secs * 10 && n < want; i++) {
        n = count_sql(url, "SELECT count(*) FROM outbox_jobs WHERE state = 5" /* completed */);
        if (n < want)
            h_sleep_ms(100);
    }
    return n;
}

/* The completed-jobs counter of one node's /metrics. */
static long completed_here(CURL *c, const od *d)
{
    char url[128], *m = NULL;
    snprintf(url, sizeof url, "%s/metrics", d->url);
    http(c, url, NULL, &m);
    long total = 0;
    for (const char *p = m; p && (p = strstr(p, "outbox_jobs_finished_total{")); p++) {
        const char *eol = strchr(p, '\n');
        const char *st = strstr(p, "state=\"completed\"");
        if (st && (!eol || st < eol))
            total += atol(strchr(st, '}') + 1);
    }
    free(m);
    return total;
}

TEST(three_nodes_run_100k_jobs_each_exactly_once)
{
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("cluster");
    od d[3];
    for (int i = 0; i < 3; i++)
        d[i] = node_start(i, url, "--workers 16");
    CURL *c = curl_easy_init();
    int64_t t0 = ob_now_ms();
    for (int k = 0; k < NJOBS / 1000; k++) /* round robin, 1000 jobs a turn */
        enqueue_range(c, &d[k % 3], port, "/run", k * 1000, (k + 1) * 1000);
    int64_t t1 = ob_now_ms();
    long done = wait_completed(url, NJOBS, 300);
    int64_t t2 = ob_now_ms();
    printf("  %d jobs enqueued in %.1f s, all completed after %.1f s\n", NJOBS,
           (double)(t1 - t0) / 1e3, (double)(t2 - t0) / 1e3);
    ASSERT_EQ(done, NJOBS);
    h_sleep_ms(200); /* the last answers' requests have been counted */
    int missing = 0, twice = 0;
    for (int n = 0; n < NJOBS; n++) {
        missing += runs[n] == 0;
        twice += runs[n] > 1;
    }
    printf("  executions: %d (missing %d, more than once %d)\n", atomic_load(&total_runs),
           missing, twice);
    ASSERT_EQ(missing, 0);
    ASSERT_EQ(twice, 0);
    long per[3], sum = 0;
    for (int i = 0; i < 3; i++) {
        per[i] = completed_here(c, &d[i]);
        sum += per[i];
    }
    printf("  completed per node: %ld %ld %ld\n", per[0], per[1], per[2]);
    ASSERT_EQ(sum, NJOBS);
    for (int i = 0; i < 3; i++)
        ASSERT(per[i] > 0);
    curl_easy_cleanup(c);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(od_stop(&d[i], SIGTERM), 0);
    ob_http_server_free(rcv);
}

TEST(a_killed_node_and_a_killed_leader_are_replaced)
{
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("cluster");
    od d[3];
    for (int i = 0; i < 3; i++) /* node0 is first: the leader */
        d[i] = node_start(i, url, "--workers 4 --node-dead 2");
    ASSERT(log_has(0, "leads the cluster now"));
    CURL *c = curl_easy_init();
    char path[64];
    snprintf(path, sizeof path, "/slow?ms=1500");
    enqueue_range(c, &d[2], port, path, 0, 40);
    h_sleep_ms(500); /* twelve jobs running, four on each node */
    ASSERT_EQ(od_stop(&d[1], SIGKILL), 128 + SIGKILL);
    int64_t killed1 = ob_now_ms();
    h_sleep_ms(700);
    ASSERT_EQ(od_stop(&d[0], SIGKILL), 128 + SIGKILL);
    int64_t killed0 = ob_now_ms();
    long done = wait_completed(url, 40, 60);
    ASSERT_EQ(done, 40);
    ASSERT(log_has(2, "leads the cluster now"));
    /* The dead nodes' jobs, rescued by the new leader (node 2's log): each
     * after its node's dead interval (2 s), and the last within that
     * interval, a heartbeat (takeover) and a rescue round of the last death. */
    int64_t first, last;
    int rescued = log_times(2, "rescued", &first, &last), again = 0;
    for (int n = 0; n < 40; n++)
        again += runs[n] >= 2;
    printf("  %d jobs of the killed nodes rescued: %lld ms after the first death to %lld ms "
           "after the second (dead after 2000 ms); %d ran again\n",
           rescued, (long long)(first - killed1), (long long)(last - killed0), again);
    ASSERT(again >= 4);
    ASSERT(rescued >= again); /* and jobs claimed ahead (prefetched), not started */
    /* its last heartbeat may be up to a beat (dead / 6) older than the kill */
    ASSERT(first - killed1 >= 1000);
    ASSERT(last - killed0 < 2000 + 1500);
    ASSERT_EQ(count_sql(url, "SELECT count(*) FROM outbox_jobs WHERE state <> 5"), 0);
    curl_easy_cleanup(c);
    ASSERT_EQ(od_stop(&d[2], SIGTERM), 0);
    ob_http_server_free(rcv);
}

/* ---- a database restart under load ---- */

typedef struct loader {
    const od *d;
    int port;
    atomic_bool stop;
    int accepted, refused, other;
    char (*ids)[OB_ID_STRLEN + 1];
} loader;

static void *load(void *arg)
{
    loader *l = arg;
    CURL *c = curl_easy_init();
    char url[128], body[512];
    snprintf(url, sizeof url, "%s/v1/jobs", l->d->url);
    for (int n = 0; n < 20000 && !atomic_load(&l->stop); n++) {
        job_json(body, sizeof body, l->port, "/run", n);
        char *resp = NULL;
        long st = http(c, url, body, &resp);
        if (st == 202 || st == 200)
            od_json_str(resp, "id", l->ids[l->accepted++], OB_ID_STRLEN + 1);
        else if (st == 503)
            l->refused++, h_sleep_ms(20);
        else
            l->other++;
        free(resp);
    }
    curl_easy_cleanup(c);
    return NULL;
}

static bool ready(CURL *c, const od *d)
{
    char url[128];
    snprintf(url, sizeof url, "%s/readyz", d->url);
    return http(c, url, NULL, NULL) == 200;
}

/* /readyz of a node, every 50 ms until stopped: how often it failed. */
typedef struct prober {
    const od *d;
    atomic_bool stop;
    int failed;
} prober;

static void *probe(void *arg)
{
    prober *p = arg;
    CURL *c = curl_easy_init();
    while (!atomic_load(&p->stop)) {
        p->failed += !ready(c, p->d);
        h_sleep_ms(50);
    }
    curl_easy_cleanup(c);
    return NULL;
}

TEST(a_database_restart_under_load_loses_no_accepted_job)
{
    const char *pgdir = getenv("OB_TEST_PG_DIR");
    if (!pgdir)
        test_fail(__FILE__, __LINE__, "needs the server the harness starts (OB_TEST_PG_URL unset)");
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("cluster");
    od d[2];
    loader l[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        d[i] = node_start(i, url, "--workers 4 --node-dead 5");
        l[i] = (loader){.d = &d[i], .port = port, .ids = calloc(20000, OB_ID_STRLEN + 1)};
        pthread_create(&t[i], NULL, load, &l[i]);
    }
    h_sleep_ms(1500);
    prober pr = {.d = &d[0]};
    pthread_t pt;
    pthread_create(&pt, NULL, probe, &pr);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "%s restart %s", OB_PG_SERVER, pgdir);
    int64_t r0 = ob_now_ms();
    ASSERT_EQ(system(cmd), 0);
    printf("  PostgreSQL restarted in %lld ms\n", (long long)(ob_now_ms() - r0));
    CURL *c = curl_easy_init();
    for (int i = 0; i < 2; i++) { /* back by itself: no restart of outboxd */
        int k = 0;
        while (k++ < 200 && !ready(c, &d[i]))
            h_sleep_ms(50);
        ASSERT(ready(c, &d[i]));
    }
    atomic_store(&pr.stop, true);
    pthread_join(pt, NULL);
    printf("  /readyz failed %d times during the outage\n", pr.failed);
    ASSERT(pr.failed > 0);
    h_sleep_ms(1500); /* and takes work again */
    for (int i = 0; i < 2; i++) {
        atomic_store(&l[i].stop, true);
        pthread_join(t[i], NULL);
    }
    int accepted = l[0].accepted + l[1].accepted, refused = l[0].refused + l[1].refused;
    printf("  accepted %d, refused with 503 %d, other %d\n", accepted, refused,
           l[0].other + l[1].other);
    ASSERT(refused > 0);
    ASSERT_EQ(l[0].other + l[1].other, 0);
    /* At least those: an enqueue whose commit reached the database just as
     * the connection broke was answered 503 and exists all the same (the
     * outcome is unknown to the node; unique keys make retries safe). */
    ASSERT(wait_completed(url, accepted, 60) >= accepted);
    /* Every job that got a 2xx exists and completed. */
    PGconn *pg = test_pg_connect(url);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < l[i].accepted; k++) {
            const char *v = l[i].ids[k];
            PGresult *r = PQexecParams(pg, "SELECT state FROM outbox_jobs WHERE id = $1::uuid", 1,
                                       NULL, &v, NULL, NULL, 0);
            if (PQntuples(r) != 1 || atoi(PQgetvalue(r, 0, 0)) != OB_COMPLETED)
                test_fail(__FILE__, __LINE__, "accepted job %s: %s", v,
                          PQntuples(r) ? PQgetvalue(r, 0, 0) : "missing");
            PQclear(r);
        }
    PQfinish(pg);
    curl_easy_cleanup(c);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(od_stop(&d[i], SIGTERM), 0);
        free(l[i].ids);
    }
    ob_http_server_free(rcv);
}

static void newer_pg(const char *url)
{
    ASSERT(count_sql(url, "UPDATE outbox_schema SET version = version + 1 RETURNING version") > 1);
}

TEST(migrate_creates_then_refuses_a_newer_schema)
{
    od_check_migrate(test_url("m"), newer_pg);
}

/* ---- nodes started at the same moment on an empty database ---- */

/* Start five outboxd (or `outboxd migrate`) on `url` at once, each in its
 * own directory, the servers for 3 s; returns the lines of the output
 * files holding `what`, and fails the test unless every one ends as
 * `want_exit` (124: still serving when timeout stopped it). */
static int five_at_once(const char *url, const char *verb, int want_exit, const char *what)
{
    char *out;
    ASSERT_EQ(t_run(&out,
                    "for i in 1 2 3 4 5; do mkdir -p five$i; (cd five$i && timeout 3 %s %s "
                    "--store '%s' --listen 127.0.0.1:0 --callback-secret-file ./s --smtp file:./m "
                    "> out 2>&1; echo \"exit $?\" >> out) & done; wait; cat five*/out",
                    OUTBOXD, verb, url), 0);
    char want[32];
    snprintf(want, sizeof want, "exit %d\n", want_exit);
    int exits = 0, found = 0;
    for (const char *p = out; (p = strstr(p, want)); p++)
        exits++;
    for (const char *p = out; (p = strstr(p, what)); p++)
        found++;
    if (exits != 5)
        test_fail(__FILE__, __LINE__, "%s: %d of 5 ended with %s%s", verb, exits, want, out);
    free(out);
    ASSERT_EQ(t_run(NULL, "rm -rf five*"), 0);
    return found;
}

TEST(five_nodes_started_together_on_an_empty_database_all_come_up)
{
    const char *base = test_pg_base();
    for (int round = 0; round < 3; round++) {
        /* a fresh schema (search_path), and a fresh database */
        char name[16];
        snprintf(name, sizeof name, "five%d", round);
        const char *schema_url = test_url(name);
        ASSERT_EQ(five_at_once(schema_url, "", 124, "schema created at version"), 1);
        char db[64], db_url[512];
        snprintf(db, sizeof db, "five_%d_%d", (int)getpid(), round);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        ASSERT_EQ(count_sql(base, sql), -1); /* a command: no tuples */
        snprintf(db_url, sizeof db_url, "%.*s/%s", (int)(strrchr(base, '/') - base), base, db);
        ASSERT_EQ(five_at_once(db_url, "", 124, "schema created at version"), 1);
        /* and five `outboxd migrate` at once on another fresh database */
        snprintf(sql, sizeof sql, "CREATE DATABASE %s_m", db);
        ASSERT_EQ(count_sql(base, sql), -1);
        snprintf(db_url, sizeof db_url, "%.*s/%s_m", (int)(strrchr(base, '/') - base), base, db);
        ASSERT_EQ(five_at_once(db_url, "migrate", 0, "schema created at version"), 1);
    }
}

/* ---- a database that stays away ---- */

static long cpu_ticks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    char line[1024];
    long ut = 0, st = 0;
    if (f && fgets(line, sizeof line, f)) {
        const char *p = strrchr(line, ')');
        if (p)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st);
    }
    if (f)
        fclose(f);
    return ut + st;
}

/* While its database is down a node sleeps between tries (no spinning on
 * due jobs), and SIGTERM still stops it promptly. */
TEST(a_node_whose_database_stays_down_sleeps_and_stops)
{
    int port = test_free_port(); /* not a port derived from the pid: it may be taken */
    char *out, dir[600];
    snprintf(dir, sizeof dir, "%s/pg", test_dir());
    ASSERT_EQ(chmod(test_dir(), 0755), 0); /* the postgres user enters it */
    ASSERT_EQ(t_run(&out, "%s start %s %d", OB_PG_SERVER, dir, port), 0);
    out[strcspn(out, "\n")] = '\0';
    char url[256];
    snprintf(url, sizeof url, "%s", out);
    free(out);
    od d = node_start(0, url, "--workers 2");
    for (int i = 0; i < 3; i++) /* due jobs: each wants a commit */
        free(od_post(&d, "/v1/jobs", NULL, "{\"kind\":\"http.request\",\"delay\":0.5,"
                                           "\"payload\":{\"url\":\"http://127.0.0.1:9/\"}}"));
    ASSERT_EQ(t_run(NULL, "%s stop %s", OB_PG_SERVER, dir), 0);
    h_sleep_ms(2000);
    long t0 = cpu_ticks(d.pid);
    h_sleep_ms(4000);
    long used = cpu_ticks(d.pid) - t0;
    long hz = sysconf(_SC_CLK_TCK);
    printf("  database down: %ld ticks of CPU in 4 s (%ld a second)\n", used, hz);
    ASSERT(used < hz / 2); /* under an eighth of a core */
    int64_t t = ob_now_ms();
    ASSERT_EQ(od_stop(&d, SIGTERM), 0);
    printf("  stopped in %lld ms\n", (long long)(ob_now_ms() - t));
    ASSERT(ob_now_ms() - t < 15000);
}

/* PATCH /v1/queues/NAME through node d. */
static void queue_patch(CURL *c, const od *d, const char *name, const char *body)
{
    char url[160], *resp = NULL;
    snprintf(url, sizeof url, "%s/v1/queues/%s", d->url, name);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
    long st = http(c, url, body, &resp);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    if (st != 200)
        test_fail(__FILE__, __LINE__, "PATCH %s: %ld %.300s", name, st, resp ? resp : "");
    free(resp);
}

TEST(a_concurrency_cap_holds_across_three_nodes_and_is_used_fully)
{
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("cap");
    od d[3];
    for (int i = 0; i < 3; i++)
        d[i] = node_start(i, url, "--workers 16");
    CURL *c = curl_easy_init();
    queue_patch(c, &d[0], "capped", "{\"concurrency\":16}");
    job_queue = "capped";
    enum { N = 1200, MS = 50 };
    int64_t t0 = ob_now_ms();
    for (int i = 0; i < 3; i++)
        enqueue_range(c, &d[i], port, "/hold?ms=50", i * N / 3, (i + 1) * N / 3);
    ASSERT_EQ(wait_completed(url, N, 120), N);
    double secs = (double)(ob_now_ms() - t0) / 1e3, ideal = (double)N * MS / 16 / 1e3;
    printf("  %d jobs of %d ms, cap 16 on 3 nodes of 16 workers: %.2f s (%.0f%% of the "
           "cap's ideal %.2f s); most in flight %d\n",
           N, MS, secs, 100 * ideal / secs, ideal, atomic_load(&held_most));
    ASSERT(atomic_load(&held_most) <= 16); /* never exceeded */
    ASSERT_EQ(atomic_load(&held_most), 16); /* and used */
    ASSERT(ideal / secs > 0.6);            /* loosely here: bench/engine measures it */
    /* no attempt was spent waiting */
    ASSERT_EQ(count_sql(url, "SELECT count(*) FROM outbox_jobs WHERE attempt <> 1"), 0);
    job_queue = "default";
    curl_easy_cleanup(c);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(od_stop(&d[i], SIGTERM), 0);
    ob_http_server_free(rcv);
}

/* Starts per period (claim times, the nodes' common clock) of the jobs
 * `where` selects: *over gets the periods above `limit`, and the mean of
 * the whole periods (not the first and the last) is returned. */
static double starts_per_period(const char *url, const char *where, long limit, int *nper,
                                int *over)
{
    char q[512];
    snprintf(q, sizeof q, "SELECT attempted_at / 1000, count(*) FROM outbox_jobs"
                          " WHERE attempt > 0 AND %s GROUP BY 1 ORDER BY 1", where);
    PGconn *pg = test_pg_connect(url);
    PGresult *r = PQexec(pg, q);
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    long inner = 0;
    *nper = PQntuples(r);
    *over = 0;
    for (int i = 0; i < *nper; i++) {
        long n = atol(PQgetvalue(r, i, 1));
        *over += n > limit;
        if (i > 0 && i < *nper - 1)
            inner += n;
    }
    PQclear(r);
    PQfinish(pg);
    return *nper > 2 ? (double)inner / (*nper - 2) : 0;
}

TEST(a_rate_limit_holds_across_three_nodes_in_every_period)
{
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("rate");
    od d[3];
    for (int i = 0; i < 3; i++)
        d[i] = node_start(i, url, "--workers 8");
    CURL *c = curl_easy_init();
    enum { LIMIT = 100, KLIMIT = 40, SECS = 30, N = LIMIT * (SECS + 3), K = KLIMIT * (SECS + 3) };
    /* a queue limited as a whole, and one limited per key, at once */
    queue_patch(c, &d[1], "paced", "{\"rate\":{\"limit\":100,\"period\":1}}");
    queue_patch(c, &d[2], "keyed", "{\"key_rate\":{\"limit\":40,\"period\":1}}");
    for (int i = 0; i < 3; i++) { /* a backlog for the whole run */
        job_queue = "paced";
        enqueue_range(c, &d[i], port, "/run", i * N / 3, (i + 1) * N / 3);
        job_queue = "keyed";
        job_rate_key = "k1";
        enqueue_range(c, &d[i], port, "/run", N + i * K / 3, N + (i + 1) * K / 3);
        job_rate_key = "k2";
        enqueue_range(c, &d[i], port, "/run", N + K + i * K / 3, N + K + (i + 1) * K / 3);
        job_rate_key = NULL;
    }
    h_sleep_ms(SECS * 1000);
    queue_patch(c, &d[2], "paced", "{\"paused\":true}");
    queue_patch(c, &d[0], "keyed", "{\"paused\":true}");
    h_sleep_ms(500);
    int nper, over;
    double rate = starts_per_period(url, "queue = 'paced'", LIMIT, &nper, &over);
    printf("  rate: %d periods, %d over the limit; %.2f starts a second in the %d whole ones "
           "(limit %d: %+.2f%%)\n",
           nper, over, rate, nper - 2, LIMIT, 100 * (rate - LIMIT) / LIMIT);
    ASSERT_EQ(over, 0);
    ASSERT(nper >= SECS - 1);
    /* Never over (F1), and nearly all of it used. A start the pace puts
     * near a period's end slips to the next period when the nodes' claim
     * cycle, taken in turn under the queue row's lock, is slow: in Release
     * (bench/engine) the rate is 1,000.0 a second; under ASan, alone, 96.3
     * to 100 were measured, lowest in a clean run on a busy shared machine
     * (each PostgreSQL batch also upserts its counters, N1: issue 19's to
     * win back). The bound is the pacing's, under ASan; never-over is F1. */
    ASSERT(rate >= LIMIT * 0.95 && rate <= LIMIT * 1.02);
    for (int k = 1; k <= 2; k++) {
        char where[96];
        snprintf(where, sizeof where, "queue = 'keyed' AND rate_key = 'k%d'", k);
        rate = starts_per_period(url, where, KLIMIT, &nper, &over);
        printf("  key_rate, key k%d: %d periods, %d over; %.2f a second (limit %d: %+.2f%%)\n",
               k, nper, over, rate, KLIMIT, 100 * (rate - KLIMIT) / KLIMIT);
        ASSERT_EQ(over, 0);
        ASSERT(rate >= KLIMIT * 0.98 && rate <= KLIMIT * 1.02);
    }
    job_queue = "default";
    curl_easy_cleanup(c);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(od_stop(&d[i], SIGTERM), 0);
    ob_http_server_free(rcv);
}

TEST(a_queue_paused_on_one_node_starts_nothing_on_any_until_resumed_on_another)
{
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("pause");
    od d[3];
    for (int i = 0; i < 3; i++)
        d[i] = node_start(i, url, "--workers 4");
    CURL *c = curl_easy_init();
    queue_patch(c, &d[0], "held", "{\"paused\":true}");
    job_queue = "held";
    for (int i = 0; i < 3; i++)
        enqueue_range(c, &d[i], port, "/run", i * 100, (i + 1) * 100);
    h_sleep_ms(1500); /* longer than a node's refresh */
    ASSERT_EQ(atomic_load(&total_runs), 0);
    ASSERT_EQ(count_sql(url, "SELECT count(*) FROM outbox_jobs WHERE state = 2"), 300);
    queue_patch(c, &d[2], "held", "{\"paused\":false}");
    ASSERT_EQ(wait_completed(url, 300, 60), 300);
    job_queue = "default";
    curl_easy_cleanup(c);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(od_stop(&d[i], SIGTERM), 0);
    ob_http_server_free(rcv);
}

TEST(a_429_with_retry_after_holds_its_whole_key_on_every_node_and_spends_no_other_attempt)
{
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("held");
    od d[3];
    for (int i = 0; i < 3; i++)
        d[i] = node_start(i, url, "--workers 2");
    CURL *c = curl_easy_init();
    enum { N = 60 };
    job_queue = "hooks";
    for (int i = 0; i < 3; i++) /* the origin 127.0.0.1:port is their key */
        enqueue_range(c, &d[i], port, "/limited", i * N / 3, (i + 1) * N / 3);
    ASSERT_EQ(wait_completed(url, N, 60), N);
    int64_t t429 = atomic_load(&limited_at), during = 0, first_after = INT64_MAX;
    for (int n = 0; n < N; n++) {
        int64_t f = atomic_load(&first_at[n]), l = atomic_load(&last_at[n]);
        /* a request sent after the hold committed and before it ended */
        for (int64_t t = f;; t = l) {
            if (t > t429 + 300 && t < t429 + 2000)
                during++;
            if (t > t429 + 300 && t < first_after)
                first_after = t;
            if (t == l)
                break;
        }
    }
    printf("  429 at +0; requests while held (after +300 ms): %lld; the first after it at "
           "+%lld ms\n", (long long)during, (long long)(first_after - t429));
    ASSERT_EQ(during, 0);
    ASSERT(first_after >= t429 + 2000);
    /* one attempt more for the job that got the 429; none for the others */
    ASSERT_EQ(count_sql(url, "SELECT count(*) FROM outbox_jobs WHERE attempt = 2"), 1);
    ASSERT_EQ(count_sql(url, "SELECT count(*) FROM outbox_jobs WHERE attempt = 1"), N - 1);
    job_queue = "default";
    curl_easy_cleanup(c);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(od_stop(&d[i], SIGTERM), 0);
    ob_http_server_free(rcv);
}

/* PUT a JSON body to node d's path; the status. */
static long put_json(CURL *c, const od *d, const char *path, const char *body)
{
    char url[200], *resp = NULL;
    snprintf(url, sizeof url, "%s%s", d->url, path);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, body ? "PUT" : "DELETE");
    long st = http(c, url, body, &resp);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    free(resp);
    return st;
}

TEST(a_schedule_makes_one_job_per_tick_while_a_node_and_then_the_leader_are_killed)
{
    ob_http_server *rcv;
    int port = receiver(&rcv);
    const char *url = test_url("sched");
    od d[3];
    for (int i = 0; i < 3; i++) /* node0 is first: the leader */
        d[i] = node_start(i, url, "--workers 2 --node-dead 2");
    ASSERT(log_has(0, "leads the cluster now"));
    CURL *c = curl_easy_init();
    char body[512];
    snprintf(body, sizeof body, "{\"cron\":\"* * * * * *\",\"missed\":\"latest\",\"job\":{"
                                "\"kind\":\"http.request\",\"payload\":{\"method\":\"POST\","
                                "\"url\":\"http://127.0.0.1:%d/run\",\"body\":\"n=0\"}}}", port);
    ASSERT_EQ(put_json(c, &d[2], "/v1/schedules/every", body), 201);
    h_sleep_ms(3200);
    ASSERT_EQ(od_stop(&d[1], SIGKILL), 128 + SIGKILL);
    h_sleep_ms(3000);
    ASSERT_EQ(od_stop(&d[0], SIGKILL), 128 + SIGKILL); /* the leader */
    h_sleep_ms(4000);
    ASSERT_EQ(put_json(c, &d[2], "/v1/schedules/every", NULL), 204);
    ASSERT(log_has(2, "leads the cluster now"));
    long n = count_sql(url, "SELECT count(*) FROM outbox_jobs WHERE unique_key LIKE 'schedule:%'");
    long distinct = count_sql(url, "SELECT count(DISTINCT unique_key) FROM outbox_jobs"
                                   " WHERE unique_key LIKE 'schedule:%'");
    long span = count_sql(url, "SELECT (max(substring(unique_key from '[0-9]+$')::bigint) -"
                               " min(substring(unique_key from '[0-9]+$')::bigint)) / 1000 + 1"
                               " FROM outbox_jobs WHERE unique_key LIKE 'schedule:%'");
    printf("  %ld jobs for %ld ticks (%ld distinct), a node and then the leader killed\n", n,
           span, distinct);
    ASSERT_EQ(n, distinct); /* no tick twice */
    ASSERT_EQ(n, span);     /* no tick missing: the takeover is faster than a tick may be late */
    ASSERT(n >= 9);
    curl_easy_cleanup(c);
    ASSERT_EQ(od_stop(&d[2], SIGTERM), 0);
    ob_http_server_free(rcv);
}

static const test_case tests[] = {
    T_ONLY("postgres", a_schedule_makes_one_job_per_tick_while_a_node_and_then_the_leader_are_killed),
    T_ONLY("postgres", a_429_with_retry_after_holds_its_whole_key_on_every_node_and_spends_no_other_attempt),
    T_ONLY("postgres", a_queue_paused_on_one_node_starts_nothing_on_any_until_resumed_on_another),
    T_ONLY("postgres", a_concurrency_cap_holds_across_three_nodes_and_is_used_fully),
    T_ONLY("postgres", a_rate_limit_holds_across_three_nodes_in_every_period),
    T_ONLY("postgres", a_node_whose_database_stays_down_sleeps_and_stops),
    T_ONLY("postgres", five_nodes_started_together_on_an_empty_database_all_come_up),
    T_ONLY("postgres", three_nodes_run_100k_jobs_each_exactly_once),
    T_ONLY("postgres", a_killed_node_and_a_killed_leader_are_replaced),
    T_ONLY("postgres", a_database_restart_under_load_loses_no_accepted_job),
    T_ONLY("postgres", migrate_creates_then_refuses_a_newer_schema),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
