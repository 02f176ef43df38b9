/*
 * ui.c - GET /ui/: the dashboard, served from the assets embedded in the
 * binary (ui.h; the files are in ui/). Nothing to install beside outboxd,
 * nothing fetched from elsewhere: it works offline.
 *
 *   /ui          308 to /ui/
 *   /ui/         index.html
 *   /ui/{file}   an asset, or 404
 *
 * Every answer carries a strict Content-Security-Policy (scripts, styles
 * and requests only from outboxd itself, no inline script, no framing of
 * the dashboard: frame-ancestors 'none'), nosniff and no-referrer. Assets
 * are cached and revalidated by ETag (If-None-Match: 304), so a reload
 * costs a few bytes. The assets need no token (they hold no data: the
 * page signs in, and every call it makes is authenticated like any other).
 */
#include <string.h>

#include "api/api.h"
#include "api/ui.h"

#define CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"         \
    " connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self';"             \
    " frame-ancestors 'none'"

static void secure(ob_http_req *r)
{
    ob_http_set_header(r, "Content-Security-Policy", CSP);
    ob_http_set_header(r, "X-Content-Type-Options", "nosniff");
    ob_http_set_header(r, "Referrer-Policy", "no-referrer");
    ob_http_set_header(r, "X-Frame-Options", "DENY");
}

static void serve(ob_http_req *r, const char *name)
{
    for (int i = 0; i < obi_ui_nassets; i++) {
        const obi_ui_asset *a = &obi_ui_assets[i];
        if (strcmp(a->name, name) != 0)
            continue;
        secure(r);
        ob_http_set_header(r, "ETag", a->etag);
        ob_http_set_header(r, "Cache-Control", "no-cache"); /* revalidate: 304 when unchanged */
        const char *inm = ob_http_header(r, "If-None-Match");
        if (inm && strstr(inm, a->etag))
            ob_http_reply(r, 304, NULL, NULL, 0);
        else
            ob_http_reply(r, 200, a->type, a->data, a->len);
        return;
    }
    secure(r);
    ob_http_reply_error(r, 404, "not_found", "no such file of the dashboard", NULL);
}

static void ui_root(ob_http_req *r, void *arg)
{
    (void)arg;
    secure(r);
    ob_http_set_header(r, "Location", "/ui/");
    ob_http_reply(r, 308, NULL, NULL, 0);
}

static void ui_index(ob_http_req *r, void *arg)
{
    (void)arg;
    serve(r, "index.html");
}

static void ui_file(ob_http_req *r, void *arg)
{
    (void)arg;
    serve(r, ob_http_param(r, "file"));
}

int api_ui_routes(api *a, ob_http_server *srv)
{
    int rc;
    if ((rc = api_route(a, srv, "GET", "/ui", ui_root, 0)) ||
        (rc = api_route(a, srv, "GET", "/ui/", ui_index, 0)) ||
        (rc = api_route(a, srv, "GET", "/ui/{file}", ui_file, 0)))
        return rc;
    return 0;
}
