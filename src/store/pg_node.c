/*
 * pg_node.c - this process as one node of a cluster sharing a PostgreSQL
 * database: its heartbeat, the leader lock, and the wake-ups it hears.
 *
 * One thread, on a connection of its own:
 *   - heartbeat: every beat_ms (node_dead_ms / 6) it stamps its row in
 *     outbox_nodes with the database's clock. The leader declares a node
 *     dead once its stamp is older than node_dead_ms, rescues its running
 *     jobs then, and removes its row (postgres.c, G1).
 *   - leadership: while it is not the leader it tries the session advisory
 *     lock PG_LOCK_LEADER at every beat. The lock lives as long as this
 *     session: when the leader dies or loses its connection, PostgreSQL
 *     releases it and another node takes it at its next beat.
 *   - LISTEN on the schema's channel: other nodes (and transactional
 *     enqueues) NOTIFY when they make jobs available or schedule one; the
 *     engine is woken (store.wake) so that a job enqueued on one node starts
 *     on another without polling delay. Its own notifications are ignored.
 * After a reconnect it listens again and wakes the engine once, for what
 * it may have missed meanwhile.
 *
 * The notifications this node sends (the writer's: obi_pg_note_*) are
 * kept while a batch runs and sent after its commit (obi_pg_notes_send).
 * A NOTIFY inside the transaction would take PostgreSQL's notify lock at
 * commit and hold it through the WAL flush: every node's commits would
 * queue behind each other's fsyncs, none grouped (3 nodes: 860 µs a
 * commit; 700 with the notifications after it). After the COMMIT, each
 * runs in a transaction of its own that writes no WAL, so the lock is held
 * for microseconds; it is sent only if the COMMIT succeeded (the pipeline
 * aborts after a failure), is seen by the listeners after the data is,
 * and is a hint (PQ_HINT): a notification lost is work found at the next
 * refresh (chores.c) or a waiter woken by its timeout, never a change
 * lost.
 *
 * Isolation: a node that has not heartbeaten for half of node_dead_ms tells
 * the engine (store.isolated), which cancels its running handlers and
 * starts nothing more, so that by the time the leader declares it dead and
 * gives its jobs to others, they no longer run here (for handlers that
 * honour cancellation).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store/pg.h"

enum { N_BEAT, N_LEAD, N_LEAVE, N_COUNT };
static const char *const node_sql[N_COUNT] = {
    [N_BEAT] = ("INSERT INTO outbox_nodes(id, host, pid, backend) VALUES($1::uuid, $2, $3::int,"
                " pg_backend_pid()) ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(),"
                " backend = excluded.backend"),
    [N_LEAD] = "SELECT pg_try_advisory_lock($1::int, $2::int)",
    [N_LEAVE] = "DELETE FROM outbox_nodes WHERE id = $1::uuid",
};
static const pg_stmts node_stmts = {N_COUNT, node_sql};

static int64_t mono_ms(void) { return obi_mono_us() / 1000; }

static int simple(pg_node *n, int stmt, const char *sql, int np, const char *const *v,
                  const int *len, const int *fmt, PGresult **keep)
{
    PGresult *r;
    int rc = obi_pgc_call(&n->conn, stmt, sql, np, v, len, fmt, &r);
    if (keep && !rc)
        *keep = r;
    else
        PQclear(r);
    return rc;
}

static int beat(pg_node *n)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    pgnum b;
    const char *v[3] = {(const char *)n->id.b, host, obi_pg_i64(&b, getpid())};
    int len[3] = {16}, fmt[3] = {1};
    int rc = simple(n, N_BEAT, NULL, 3, v, len, fmt, NULL);
    if (rc)
        return rc;
    atomic_store(&n->beat_ok_at, mono_ms());
    if (atomic_load(&n->leader))
        return 0;
    pgnum k[2];
    const char *lv[2] = {obi_pg_i64(&k[0], PG_LOCK_LEADER), obi_pg_i64(&k[1], n->lock_key)};
    PGresult *r;
    if ((rc = simple(n, N_LEAD, NULL, 2, lv, NULL, NULL, &r)))
        return rc;
    if (obi_pgv_int(r, 0, 0)) {
        atomic_store(&n->leader, true);
        OB_INFO("postgres: node %s leads the cluster now (rescue, prune)", n->idhex);
    }
    PQclear(r);
    return 0;
}

static int listen_now(pg_node *n)
{
    char *q = PQescapeIdentifier(n->conn.c, n->channel, strlen(n->channel));
    if (!q)
        return OB_ENOMEM;
    char sql[256];
    snprintf(sql, sizeof sql, "LISTEN %s", q);
    PQfreemem(q);
    return simple(n, 0, sql, 0, NULL, NULL, NULL, NULL);
}

/* "ID:STATE,ID:STATE,...": jobs another node made final. */
static void take_finals(pg_node *n, const char *p)
{
    while (n->st->finished && strnlen(p, 34) == 34 && p[32] == ':') {
        ob_id id;
        unsigned byte;
        bool ok = true;
        for (int k = 0; k < 16 && ok; k++) {
            ok = sscanf(p + 2 * k, "%2x", &byte) == 1;
            id.b[k] = (uint8_t)byte;
        }
        int state = atoi(p + 33);
        if (ok && state >= OB_STATE_MIN && state <= OB_STATE_MAX &&
            ob_state_is_final((ob_state)state))
            n->st->finished(n->st->wake_arg, &id, (ob_state)state);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
}

void obi_pg_node_hear(pg_node *n, const char *msg)
{
    char who[40], what[24];
    if (sscanf(msg, "%39s %23s", who, what) != 2 || strcmp(who, n->idhex) == 0)
        return; /* not ours to hear, or our own */
    if (!strcmp(what, "f")) {
        const char *list = strstr(msg, " f ");
        if (list)
            take_finals(n, list + 3);
    } else if (n->st->wake) {
        long long due = atoll(what);
        n->st->wake(n->st->wake_arg, due > 0 ? due : 0);
    }
}

/* ---- what the writer tells the other nodes ---- */

/* Keep a notification for after the commit. */
static int note(pg_store *s, const char *msg)
{
    size_t n = strlen(msg) + 1;
    if (!obi_pg_grow(&s->notes, &s->notes_cap, s->notes_len + n))
        return OB_ENOMEM;
    memcpy(s->notes + s->notes_len, msg, n);
    s->notes_len += n;
    return 0;
}

int obi_pg_note_work(pg_store *s, int64_t due)
{
    char msg[64];
    snprintf(msg, sizeof msg, "%s %lld", s->node.idhex, (long long)due);
    return note(s, msg);
}

/* "NODE f ID:STATE,ID:STATE,..." in notifications of at most ~7,900 bytes
 * (PostgreSQL's limit is 8,000). */
int obi_pg_note_finals(pg_store *s, const store_final *f, int n)
{
    char msg[8000];
    int rc = 0;
    for (int i = 0; i < n && !rc;) {
        int len = snprintf(msg, sizeof msg, "%s f ", s->node.idhex);
        for (; i < n && len < (int)sizeof msg - 64; i++) {
            ob_hex(f[i].id.b, sizeof f[i].id.b, msg + len);
            len += 32;
            len += snprintf(msg + len, sizeof msg - (size_t)len, ":%d,", f[i].state);
        }
        msg[len - 1] = '\0'; /* the last comma */
        rc = note(s, msg);
    }
    return rc;
}

int obi_pg_notes_send(pg_store *s)
{
    int rc = 0;
    for (size_t at = 0; !rc && at < s->notes_len; at += strlen(s->notes + at) + 1) {
        const char *v[2] = {s->node.channel, s->notes + at};
        rc = obi_pgc_defer(&s->w, W_NOTIFY, 2, v, NULL, NULL, PQ_HINT);
    }
    return rc;
}

/* ---- what it hears ---- */

static void take_notifications(pg_node *n)
{
    PGnotify *m;
    while (n->conn.c && (m = PQnotifies(n->conn.c)) != NULL) {
        obi_pg_node_hear(n, m->extra);
        PQfreemem(m);
    }
}

static void lost(pg_node *n)
{
    if (atomic_exchange(&n->leader, false))
        OB_WARN("postgres: node %s lost its connection and leadership", n->idhex);
}

/* Tell the engine when this node crosses half its dead interval unheard. */
static void check_isolation(pg_node *n, bool *isolated)
{
    bool now = mono_ms() - atomic_load(&n->beat_ok_at) > n->dead_ms / 2;
    if (now == *isolated || !n->st->isolated)
        return;
    *isolated = now;
    if (now)
        OB_WARN("postgres: node %s has not reached the database for %lld ms: isolated, "
                "cancelling its running jobs", n->idhex, (long long)(n->dead_ms / 2));
    else
        OB_INFO("postgres: node %s reaches the database again", n->idhex);
    n->st->isolated(n->st->wake_arg, now);
}

static void *node_main(void *arg)
{
    pg_node *n = arg;
    bool listening = false, isolated = false;
    int64_t next_beat = mono_ms() + n->beat_ms;
    for (;;) {
        if (obi_pgc_ready(&n->conn)) {
            listening = false;
            lost(n);
        } else if (!listening) {
            if (listen_now(n) == 0) {
                listening = true;
                atomic_store(&n->up_since, mono_ms());
                if (n->st->wake) { /* catch up on what was missed while away */
                    n->st->wake(n->st->wake_arg, 0);
                    n->st->wake(n->st->wake_arg, 1);
                }
            }
        }
        int64_t now = mono_ms();
        if (now >= next_beat) {
            if (!n->conn.c || beat(n))
                lost(n);
            next_beat = now + n->beat_ms;
        }
        check_isolation(n, &isolated);
        take_notifications(n);
        struct pollfd pf[2] = {{n->stop_fd, POLLIN, 0}, {-1, POLLIN, 0}};
        if (n->conn.c && listening)
            pf[1].fd = PQsocket(n->conn.c);
        int64_t wait = next_beat - mono_ms();
        if (!n->conn.c && wait > 200)
            wait = 200; /* reconnecting */
        if (poll(pf, 2, wait < 0 ? 0 : (int)wait) < 0)
            continue;
        if (pf[0].revents)
            break;
        if (pf[1].revents && n->conn.c) {
            if (!PQconsumeInput(n->conn.c)) {
                obi_pgc_fail(&n->conn, NULL, "listening");
                listening = false;
                lost(n);
            }
        }
    }
    return NULL;
}

int obi_pg_node_start(pg_node *n, store *st)
{
    n->st = st;
    obi_idgen g = {0};
    obi_idgen_next(&g, &n->id);
    ob_random_bytes(n->id.b + 8, 8); /* two nodes started in one ms differ */
    ob_hex(n->id.b, sizeof n->id.b, n->idhex);
    n->beat_ms = n->dead_ms / 6;
    if (n->beat_ms < 100)
        n->beat_ms = 100;
    if (n->beat_ms > 5000)
        n->beat_ms = 5000;
    n->conn = (pgconn){.url = n->conn.url, .role = "node", .stmts = &node_stmts,
                       .pipeline = true};
    int rc = obi_pgc_ready(&n->conn);
    atomic_store(&n->up_since, mono_ms());
    if (!rc)
        rc = beat(n); /* G1: the row exists before anything is claimed */
    if (rc)
        return rc;
    if ((n->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0)
        return OB_ENOMEM;
    if (pthread_create(&n->thread, NULL, node_main, n)) {
        close(n->stop_fd);
        return OB_ENOMEM;
    }
    n->running = true;
    return 0;
}

void obi_pg_node_stop(pg_node *n)
{
    if (n->running) {
        uint64_t one = 1;
        if (write(n->stop_fd, &one, sizeof one) < 0) {
            /* cannot happen for an eventfd below its maximum */
        }
        pthread_join(n->thread, NULL);
        close(n->stop_fd);
        n->running = false;
    }
    if (n->conn.c) { /* leave: whatever still runs under our name is rescued at once */
        const char *v[1] = {(const char *)n->id.b};
        int len[1] = {16}, fmt[1] = {1};
        simple(n, N_LEAVE, NULL, 1, v, len, fmt, NULL);
    }
    obi_pgc_close(&n->conn);
}
