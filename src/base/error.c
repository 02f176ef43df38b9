/*
 * error.c - names of the OB_E* error codes, and filling in an ob_problem
 * (outbox/common.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "base/base.h"

const char *ob_strerror(int rc)
{
    switch (rc) {
    case OB_OK: return "ok";
    case OB_EINVAL: return "invalid argument";
    case OB_ENOMEM: return "out of memory";
    case OB_ENOTFOUND: return "no such job";
    case OB_ESTATE: return "the job's state does not allow this";
    case OB_EFULL: return "queue full";
    case OB_EBUSY: return "overloaded, try again later";
    case OB_ENOSPC: return "store: no space left on device";
    case OB_EIO: return "store: I/O error";
    case OB_ESTORE: return "store failure";
    case OB_ETIMEDOUT: return "timed out";
    case OB_ESHUTDOWN: return "shutting down";
    case OB_ETOOBIG: return "too large";
    case OB_ENOKIND: return "unknown job kind";
    case OB_ELOCKED: return "store in use by another process";
    case OB_ESCHEMA: return "store written by a newer version";
    case OB_EGONE: return "the client has gone";
    case OB_EADDR: return "cannot listen on the address (in use, or not permitted)";
    case OB_EUNAVAIL: return "store unavailable: the database cannot be reached; retry later";
    }
    return "unknown error";
}

int obi_problem(ob_problem *p, int rc, const char *field, const char *fmt, ...)
{
    if (!p)
        return rc;
    snprintf(p->field, sizeof p->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
    return rc;
}
