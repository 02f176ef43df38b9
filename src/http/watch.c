/*
 * watch.c - the server's connections, and the watch thread.
 *
 * Every connection MHD opens gets an hconn (obi_on_connection), on the
 * server's list under conns_mu, with its phase and the deadline of that
 * phase. The watch thread does what MHD cannot:
 *   - read timeouts: MHD's own timeout is idle time, which a client
 *     sending a byte now and then (slowloris) never reaches; a connection
 *     whose headers or body are not all in by their deadline gets a 408
 *     written on its socket and is shut down;
 *   - clients that leave while their response is suspended (MHD does not
 *     watch suspended sockets): their sockets go in an epoll set for
 *     EPOLLRDHUP once a sweep finds them still parked (W1); the handle is
 *     then settled GONE and the connection resumed to be closed;
 *   - suspended responses nobody answered within suspend_timeout get 504.
 *
 * Invariants
 *   H1  A connection's fd is used outside MHD only under conns_mu, and MHD
 *       announces a close (NOTIFY_CONNECTION CLOSED, which takes conns_mu)
 *       before it closes the fd.
 *   H2  The watch thread and the access handler race for a reading
 *       connection with a compare-and-swap on its phase (obi_phase_move):
 *       only the winner answers (408, or the normal response).
 *   W1  A parked connection's socket is in the watch set only while it is
 *       parked: added by a sweep under the handle's mu if still parked,
 *       removed by obi_server_resume under the same mu (watch_parked).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"

#define WATCH_TICK_MS 50

void obi_server_resume(hreq *q)
{
    hconn *c = q->c;
    if (c->watched) {
        epoll_ctl(q->s->watch_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        c->watched = false;
    }
    MHD_resume_connection(q->mc);
}

static void server_watch(hreq *q)
{
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = q->c};
    q->c->watched = epoll_ctl(q->s->watch_epfd, EPOLL_CTL_ADD, q->c->fd, &ev) == 0;
}

void obi_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    ob_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        hconn *c = calloc(1, sizeof *c);
        if (!c)
            return; /* the first call finds no context and closes */
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        c->fd = fi ? fi->connect_fd : -1;
        if (ai && ai->client_addr) {
            char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
            socklen_t len = ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                   : sizeof(struct sockaddr_in);
            getnameinfo(ai->client_addr, len, host, sizeof host, port, sizeof port,
                        NI_NUMERICHOST | NI_NUMERICSERV);
            snprintf(c->remote, sizeof c->remote, "%s:%s", host, port);
        }
        c->over_limit = atomic_fetch_add(&s->nconns, 1) >= s->o.max_connections;
        obi_phase_set(c, PH_HEADERS, s->o.header_timeout_ms);
        pthread_mutex_lock(&s->conns_mu);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        pthread_mutex_unlock(&s->conns_mu);
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        hconn *c = *socket_context;
        if (!c)
            return;
        pthread_mutex_lock(&s->conns_mu); /* H1: before MHD closes the fd */
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        if (c->watched)
            epoll_ctl(s->watch_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        pthread_mutex_unlock(&s->conns_mu);
        atomic_fetch_sub(&s->nconns, 1);
        free(c);
        *socket_context = NULL;
    }
}

static const char timeout_408[] =
    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
    "Content-Length: 96\r\n\r\n"
    "{\"error\":{\"code\":\"request_timeout\",\"message\":\"the request was not received in time\",\"field\":null}}";

/* A reading connection ran out of time: answer 408 on its socket and shut it
 * down, unless the access handler got there first (H2). Under conns_mu. */
static void time_out(ob_http_server *s, hconn *c, int phase)
{
    if (!obi_phase_move(c, phase, PH_TIMEDOUT, 0))
        return;
    atomic_fetch_add_explicit(&s->status_counts[408], 1, memory_order_relaxed);
    if (write(c->fd, timeout_408, sizeof timeout_408 - 1) < 0) {
        /* the client is gone already */
    }
    shutdown(c->fd, SHUT_RDWR); /* MHD sees the end and closes (H1) */
    if (phase == PH_HEADERS) /* no request record exists yet: log it here */
        OB_INFO("http: %s: 408, the request headers were not received in time", c->remote);
    (void)s;
}

/* W1: a parked connection's socket is put in the watch set lazily, by the
 * sweep that finds it still parked, not when it parks: most suspensions
 * (an enqueue waiting for its commit) end within a millisecond or two, and
 * an epoll_ctl ADD and DEL per request cost more than they buy. A client
 * that leaves is noticed within a tick or two. The check and the ADD are
 * under the handle's mu, as is the DEL in obi_server_resume, so a resumed
 * connection is never added. Under conns_mu. */
static void watch_parked(hconn *c)
{
    hreq *q = c->q;
    if (q->later) {
        pthread_mutex_lock(&q->later->mu);
        if (q->later->parked && !c->watched)
            server_watch(q);
        pthread_mutex_unlock(&q->later->mu);
    } else if (q->stream) {
        pthread_mutex_lock(&q->stream->mu);
        if (q->stream->parked && !c->watched)
            server_watch(q);
        pthread_mutex_unlock(&q->stream->mu);
    }
}

static void sweep(ob_http_server *s)
{
    int64_t now = ob_mono_ms();
    pthread_mutex_lock(&s->conns_mu);
    for (hconn *c = s->conns; c; c = c->next) {
        if (c->q)
            watch_parked(c);
        int64_t dl = atomic_load(&c->deadline);
        if (!dl || now < dl)
            continue;
        int ph = atomic_load(&c->phase);
        if (ph == PH_HEADERS || ph == PH_BODY)
            time_out(s, c, ph);
        else if (ph == PH_SUSPENDED && c->q && c->q->later &&
                 obi_later_cut(c->q->later, LATER_GONE, 504, "timeout",
                           "no answer came in time for this request"))
            atomic_store(&c->deadline, 0);
    }
    pthread_mutex_unlock(&s->conns_mu);
}

void *obi_watch_main(void *arg)
{
    ob_http_server *s = arg;
    struct epoll_event ev[64];
    while (!atomic_load(&s->watch_stop)) {
        int n = epoll_wait(s->watch_epfd, ev, 64, WATCH_TICK_MS);
        if (n > 0) {
            pthread_mutex_lock(&s->conns_mu);
            for (int i = 0; i < n; i++) {
                hconn *c = ev[i].data.ptr; /* registered: not closed (H1) */
                for (hconn *x = s->conns; x; x = x->next) {
                    if (x != c || !c->q)
                        continue;
                    if (c->q->later) /* client left */
                        obi_later_cut(c->q->later, LATER_GONE, 0, NULL, NULL);
                    if (c->q->stream)
                        obi_stream_cut(c->q->stream, OB_EGONE);
                }
            }
            pthread_mutex_unlock(&s->conns_mu);
        }
        sweep(s);
    }
    return NULL;
}
