/*
 * router.c - which handler serves METHOD /path. A pattern is an absolute
 * path of segments, each a literal or a {name} parameter, and may end in
 * a slash (it then matches that path with the slash only: /ui/); matching walks
 * the path's segments once per route (routes are few; no allocation). A
 * path no pattern matches is a 404; a path some pattern matches, but not
 * for this method, is a 405 with the methods that would do (RFC 9110
 * 15.5.6). HEAD is served by GET routes.
 *
 * Pure functions of their inputs: the fuzz target drives them directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

bool obi_http_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("!#$%&'*+-.^_`|~", c);
        if (!ok || c == 0)
            return false;
    }
    return true;
}

bool obi_http_value_ok(const char *s)
{
    if (!s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

bool ob_http_header_name_ok(const char *s) { return obi_http_token(s); }
bool ob_http_header_value_ok(const char *s) { return obi_http_value_ok(s); }

static bool param_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static bool literal_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '{' || s[i] == '}' || (unsigned char)s[i] <= 0x20 || s[i] == '?')
            return false;
    return n > 0;
}

/* Split pattern into r->segs. 0 or OB_EINVAL. */
static int parse_pattern(route *r, const char *pattern)
{
    if (pattern[0] != '/')
        return OB_EINVAL;
    const char *p = pattern + 1;
    r->nsegs = 0;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (r->nsegs == ROUTE_SEGS_MAX)
            return OB_EINVAL;
        bool param = n >= 2 && p[0] == '{' && p[n - 1] == '}';
        if (param ? !param_name_ok(p + 1, n - 2) : !literal_ok(p, n))
            return OB_EINVAL;
        char *seg = param ? strndup(p + 1, n - 2) : strndup(p, n);
        if (!seg)
            return OB_ENOMEM;
        r->param[r->nsegs] = param;
        r->segs[r->nsegs++] = seg;
        if (!end)
            break;
        p = end + 1;
        if (!*p) { /* a trailing slash: a directory's path */
            r->dir = true;
            break;
        }
    }
    int nparams = 0;
    for (int i = 0; i < r->nsegs; i++)
        nparams += r->param[i];
    return nparams <= ROUTE_PARAMS_MAX ? 0 : OB_EINVAL;
}

static void route_clear(route *r)
{
    for (int i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    free(r->pattern);
}

int obi_router_add(router *rt, const char *method, const char *pattern, ob_http_handler fn,
               void *arg, unsigned flags)
{
    if (!method || !obi_http_token(method) || strlen(method) >= sizeof rt->routes[0].method ||
        !pattern || !fn) {
        OB_ERROR("http: bad route %s %s", method ? method : "(null)", pattern ? pattern : "(null)");
        return OB_EINVAL;
    }
    if (rt->n == rt->cap) {
        int cap = rt->cap ? rt->cap * 2 : 16;
        route *nr = realloc(rt->routes, (size_t)cap * sizeof *nr);
        if (!nr)
            return OB_ENOMEM;
        rt->routes = nr;
        rt->cap = cap;
    }
    route *r = &rt->routes[rt->n];
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", method);
    r->fn = fn;
    r->arg = arg;
    r->flags = flags;
    int rc = (r->pattern = strdup(pattern)) ? parse_pattern(r, pattern) : OB_ENOMEM;
    if (rc) {
        if (rc == OB_EINVAL)
            OB_ERROR("http: bad route pattern \"%s\" (absolute path; literal or {name} "
                     "segments)", pattern);
        route_clear(r);
        return rc;
    }
    rt->n++;
    return 0;
}

void obi_router_free(router *rt)
{
    for (int i = 0; i < rt->n; i++)
        route_clear(&rt->routes[i]);
    free(rt->routes);
    memset(rt, 0, sizeof *rt);
}

/* Whether path matches r's segments; fills m's parameters when it does. */
static bool path_matches(const route *r, const char *path, route_match *m)
{
    if (path[0] != '/')
        return false;
    const char *p = path + 1;
    int nparams = 0;
    for (int i = 0; i < r->nsegs; i++) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0)
            return false;
        if (r->param[i]) {
            m->name[nparams] = r->segs[i];
            m->val[nparams] = p;
            m->len[nparams++] = n;
        } else if (strlen(r->segs[i]) != n || memcmp(r->segs[i], p, n) != 0) {
            return false;
        }
        if (!end)
            return i == r->nsegs - 1 && !r->dir;
        p = end + 1;
        if (i == r->nsegs - 1 && r->dir)
            return *p == '\0';
    }
    return r->nsegs == 0 && *p == '\0';
}

static bool method_is(const route *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

static void allow_add(route_match *m, const char *method)
{
    if (strstr(m->allow, method))
        return;
    size_t n = strlen(m->allow);
    snprintf(m->allow + n, sizeof m->allow - n, "%s%s", n ? ", " : "", method);
}

int obi_router_match(const router *rt, const char *method, const char *path, route_match *m)
{
    memset(m, 0, sizeof *m);
    bool other = false;
    for (int i = 0; i < rt->n; i++) {
        const route *r = &rt->routes[i];
        route_match t;
        memset(&t, 0, sizeof t);
        if (!path_matches(r, path, &t))
            continue;
        if (method_is(r, method)) {
            t.r = r;
            for (int k = 0; k < ROUTE_PARAMS_MAX && t.name[k]; k++)
                t.nparams++;
            memcpy(t.allow, m->allow, sizeof t.allow);
            *m = t;
            return 0;
        }
        other = true;
        allow_add(m, r->method);
        if (strcmp(r->method, "GET") == 0)
            allow_add(m, "HEAD");
    }
    return other ? OB_ESTATE : OB_ENOTFOUND;
}
