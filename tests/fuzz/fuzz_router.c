/*
 * fuzz_router.c - libFuzzer target over the HTTP server's own parsing:
 * the router (method + path against a table of patterns), the header name
 * and value checks, and the error-JSON builder. Properties checked:
 *   - a match's parameters are non-empty pieces of the path, without '/';
 *   - a pattern with a trailing slash (/ui/) matches that path alone;
 *   - a 405's Allow list is never empty;
 *   - an error body is always valid JSON, whatever bytes the message has;
 *   - a value passing obi_http_value_ok has no CR, LF or NUL.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static router rt;

static void nop(ob_http_req *r, void *arg) { (void)r, (void)arg; }

static void setup(void)
{
    ob_log_set(NULL, NULL, OB_LOG_ERROR + 1);
    const char *routes[][2] = {
        {"GET", "/"}, {"GET", "/v1/jobs"}, {"POST", "/v1/jobs"}, {"GET", "/v1/jobs/{id}"},
        {"POST", "/v1/jobs/{id}/cancel"}, {"GET", "/a/{x}/b/{y}"}, {"DELETE", "/a/{x}"},
        {"GET", "/ui/"}, {"GET", "/ui/{file}"},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (obi_router_add(&rt, routes[i][0], routes[i][1], nop, NULL, 0))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rt.n)
        setup();
    /* method \0 path \0 rest */
    char *buf = malloc(size + 3);
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *method = buf, *path = buf + strlen(buf) + 1;
    const char *rest = path + strlen(path) + 1;
    if (path > buf + size)
        path = "";
    if (rest > buf + size)
        rest = "";

    route_match m;
    int rc = obi_router_match(&rt, method, path, &m);
    if (rc == 0) {
        if (m.r->dir && strcmp(path, "/ui/") != 0)
            abort();
        for (int i = 0; i < m.nparams; i++) {
            if (m.len[i] == 0 || memchr(m.val[i], '/', m.len[i]) || m.val[i] < path ||
                m.val[i] + m.len[i] > path + strlen(path))
                abort();
        }
    } else if (rc == OB_ESTATE && !m.allow[0]) {
        abort();
    }

    if (obi_http_value_ok(rest) && strpbrk(rest, "\r\n"))
        abort();
    (void)obi_http_token(rest);

    resp r = {0};
    if (obi_resp_set_error(&r, 400, method, rest, path) == 0) {
        json_error_t err;
        json_t *v = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, &err);
        if (!v)
            abort();
        json_decref(v);
    }
    obi_resp_clear(&r);
    free(buf);
    return 0;
}
