/*
 * bench_http.c - the HTTP server against nginx, measured in the same run
 * by the same client (wrk), on `GET /hello` with a 2-byte body.
 *
 * outbox's server runs in this process with --threads event-loop threads;
 * nginx (Debian) runs with as many worker processes, `return 200 "ok"`, no
 * access log, keep-alive without a request cap. wrk gets the same threads
 * and duration for both, at 1, 64 and 256 connections, in interleaved
 * rounds (outbox, then nginx, at each connection count); medians are
 * reported.
 *
 *   bench_http [--threads N] [--duration S] [--rounds R] [--wrk-threads N]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "outbox/http.h"

static int threads = 2, duration = 10, rounds = 1, wrk_threads = 2;

typedef struct result {
    double rps, p50, p99; /* requests/s; latency in ms */
} result;

static void hello(ob_http_req *r, void *arg)
{
    (void)arg;
    ob_http_reply(r, 200, "text/plain", "ok", 2);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

static double to_ms(const char *v)
{
    double x = atof(v);
    if (strstr(v, "us"))
        return x / 1000;
    if (strstr(v, "ms"))
        return x;
    if (strstr(v, "s"))
        return x * 1000;
    return x;
}

/* Run wrk against port with c connections; parse its report. */
static result run_wrk(int port, int c)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "wrk -t%d -c%d -d%ds --latency http://127.0.0.1:%d/hello 2>&1",
             c < wrk_threads ? c : wrk_threads, c, duration, port);
    FILE *p = popen(cmd, "r");
    result r = {0, 0, 0};
    char line[512], v[64];
    while (p && fgets(line, sizeof line, p)) {
        if (sscanf(line, " Requests/sec: %lf", &r.rps) == 1)
            continue;
        if (sscanf(line, " 50%% %63s", v) == 1)
            r.p50 = to_ms(v);
        else if (sscanf(line, " 99%% %63s", v) == 1)
            r.p99 = to_ms(v);
        else if (strstr(line, "Socket errors") || strstr(line, "Non-2xx"))
            fprintf(stderr, "    wrk: %s", line);
    }
    if (p)
        pclose(p);
    return r;
}

static pid_t start_nginx(const char *dir, int port)
{
    char conf[4200];
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        exit(1);
    fprintf(f,
            "worker_processes %d;\n"
            "pid %s/nginx.pid;\n"
            "error_log %s/error.log;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            "  access_log off;\n"
            "  keepalive_requests 100000000;\n"
            "  keepalive_timeout 60s;\n"
            "  client_body_temp_path %s;\n"
            "  server {\n"
            "    listen 127.0.0.1:%d;\n"
            "    location = /hello { default_type text/plain; return 200 \"ok\"; }\n"
            "  }\n"
            "}\n",
            threads, dir, dir, dir, port);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("nginx", "nginx", "-p", dir, "-c", conf, "-g", "daemon off;", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) { /* wait until it answers */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "curl -s -o /dev/null http://127.0.0.1:%d/hello", port);
        if (system(cmd) == 0)
            return pid;
        usleep(20000);
    }
    fprintf(stderr, "nginx did not start (see %s/error.log)\n", dir);
    exit(1);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--duration") && i + 1 < argc)
            duration = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--wrk-threads") && i + 1 < argc)
            wrk_threads = atoi(argv[++i]);
        else {
            printf("usage: bench_http [--threads N] [--duration S] [--rounds R] [--wrk-threads N]\n"
                   "  Needs wrk and nginx on PATH (bench/http installs them).\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (threads < 1 || duration < 1 || rounds < 1 || rounds > 9 || wrk_threads < 1)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    ob_log_set(NULL, NULL, OB_LOG_ERROR);

    char dir[] = "/tmp/outbox-bench-http-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int nport = free_port();
    pid_t nginx = start_nginx(dir, nport);

    ob_http_opts o;
    ob_http_opts_init(&o);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
    o.listen = listen;
    o.threads = threads;
    o.max_connections = 4096;
    /* no access log: at the ERROR level the default sink is skipped */
    ob_http_server *s;
    if (ob_http_server_new(&o, &s) || ob_http_route(s, "GET", "/hello", hello, NULL, 0) ||
        ob_http_server_start(s)) {
        fprintf(stderr, "cannot start the server\n");
        return 1;
    }
    int oport = ob_http_server_port(s);

    const int conns[] = {1, 64, 256};
    double rps[2][3][9], p50[2][3][9], p99[2][3][9];
    printf("bench_http: GET /hello (2-byte body), %d server threads / nginx workers, wrk %d "
           "threads, %d s per run, %d round(s)\n", threads, wrk_threads, duration, rounds);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 3; k++) {
            for (int who = 0; who < 2; who++) {
                fprintf(stderr, "  round %d/%d: %s, %d connections\n", r + 1, rounds,
                        who ? "nginx" : "outbox", conns[k]);
                result x = run_wrk(who ? nport : oport, conns[k]);
                rps[who][k][r] = x.rps, p50[who][k][r] = x.p50, p99[who][k][r] = x.p99;
            }
        }
    }
    printf("\n| connections | outbox req/s | nginx req/s | ratio | outbox p50 | nginx p50 | "
           "outbox p99 | nginx p99 | p99 ratio |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double ratio64 = 0, p99ratio64 = 0;
    for (int k = 0; k < 3; k++) {
        double ro = median(rps[0][k], rounds), rn = median(rps[1][k], rounds);
        double lo = median(p50[0][k], rounds), ln = median(p50[1][k], rounds);
        double qo = median(p99[0][k], rounds), qn = median(p99[1][k], rounds);
        printf("| %d | %.0f | %.0f | %.2fx | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.2fx |\n",
               conns[k], ro, rn, ro / rn, lo, ln, qo, qn, qo / qn);
        if (conns[k] == 64)
            ratio64 = ro / rn, p99ratio64 = qo / qn;
    }
    printf("\ntargets at 64 connections:\n");
    printf("  req/s >= 0.8x nginx: %.2fx  %s\n", ratio64, ratio64 >= 0.8 ? "met" : "MISSED");
    printf("  p99 <= 2x nginx: %.2fx  %s\n", p99ratio64, p99ratio64 <= 2 ? "met" : "MISSED");

    ob_http_server_free(s);
    kill(nginx, SIGQUIT);
    waitpid(nginx, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
