/*
 * stream.c - streamed answers: a body that any thread writes over time
 * (server-sent events are built on it).
 *
 * libmicrohttpd pulls the body through obi_stream_read(). While the buffer has
 * bytes it gets them; when it is empty the reader parks the connection
 * (MHD_suspend_connection, allowed in a content reader) and the next write
 * resumes it. A parked stream's socket is watched like a suspended
 * response's, so a client that leaves is noticed even when nothing is
 * being written.
 *
 * Two references (the server's, dropped when libmicrohttpd frees the
 * response; the holder's, dropped by ob_http_stream_close) and one lock, as for
 * suspended responses (later.c). The buffer is bounded (max_stream_buffer):
 * a client that does not read is not allowed to make the server hold an
 * unbounded backlog for it.
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int ob_http_stream_start(ob_http_req *r, const char *content_type, ob_http_stream **out)
{
    hreq *q = r->q;
    if (q->answered || q->later || q->in_gate)
        return OB_ESTATE;
    ob_http_stream *st = calloc(1, sizeof *st);
    if (!st)
        return OB_ENOMEM;
    int rc = obi_resp_set(&q->r, 200, content_type, NULL, 0);
    if (rc) {
        free(st);
        return rc;
    }
    pthread_mutex_init(&st->mu, NULL);
    st->refs = 2;
    st->q = q;
    q->stream = st;
    q->answered = true;
    *out = st;
    return 0;
}

void obi_stream_unref(ob_http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left)
        return;
    free(st->buf);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Wake the reader if it is parked. Called with st->mu held. */
static void wake(ob_http_stream *st)
{
    if (st->parked && st->q) {
        st->parked = false;
        obi_server_resume(st->q);
    }
}

int ob_http_stream_write(ob_http_stream *st, const void *data, size_t len)
{
    pthread_mutex_lock(&st->mu);
    int rc = st->gone ? st->gone : st->closed ? OB_ESTATE : 0;
    size_t max = st->q ? st->q->s->o.max_stream_buffer : 0;
    if (!rc && st->len - st->off + len > max)
        rc = OB_EBUSY;
    if (!rc && st->len + len > st->cap) {
        if (st->off) { /* drop what was read */
            memmove(st->buf, st->buf + st->off, st->len - st->off);
            st->len -= st->off;
            st->off = 0;
        }
        if (st->len + len > st->cap) {
            size_t cap = st->cap ? st->cap : 4096;
            while (cap < st->len + len)
                cap *= 2;
            char *b = realloc(st->buf, cap);
            if (b) {
                st->buf = b;
                st->cap = cap;
            } else {
                rc = OB_ENOMEM;
            }
        }
    }
    if (!rc) {
        memcpy(st->buf + st->len, data, len);
        st->len += len;
        wake(st);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void ob_http_stream_close(ob_http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    st->closed = true;
    wake(st);
    pthread_mutex_unlock(&st->mu);
    obi_stream_unref(st);
}

void obi_stream_cut(ob_http_stream *st, int why)
{
    pthread_mutex_lock(&st->mu);
    if (!st->gone)
        st->gone = why;
    wake(st);
    pthread_mutex_unlock(&st->mu);
}

void obi_stream_detach(ob_http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    st->q = NULL; /* the request is done; the response may still be freed later */
    if (!st->gone)
        st->gone = OB_EGONE;
    pthread_mutex_unlock(&st->mu);
}

ssize_t obi_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    ob_http_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    ssize_t n;
    if (st->off < st->len) {
        size_t k = st->len - st->off < max ? st->len - st->off : max;
        memcpy(buf, st->buf + st->off, k);
        st->off += k;
        if (st->off == st->len)
            st->off = st->len = 0;
        n = (ssize_t)k;
    } else if (st->gone == OB_EGONE) {
        n = MHD_CONTENT_READER_END_WITH_ERROR; /* the client left: close */
    } else if (st->closed || st->gone) {
        n = MHD_CONTENT_READER_END_OF_STREAM; /* the end, or shutdown: end cleanly */
    } else if (st->q) {
        MHD_suspend_connection(st->q->mc); /* nothing to send: wait for a write */
        st->parked = true;
        n = 0;
    } else {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}
