/*
 * http_request.h - the http.request and outbox.callback job kinds (see
 * http_request.c).
 */
#ifndef OB_API_HTTP_REQUEST_H
#define OB_API_HTTP_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/jscan.h"
#include "api/outbound.h"
#include "api/secrets.h"
#include "outbox/jobs.h"

typedef struct hr_opts {
    size_t max_response;         /* response body bytes kept in the result (the rest is
                                    not read); default 64 KiB */
    int max_redirects;           /* default 5 */
    int64_t max_timeout_ms;      /* longest request (a payload's timeout, or the job's);
                                    default 300 s */
    const outbound *policy;      /* where requests may go; borrowed for the engine's life;
                                    NULL: public addresses only */
    const webhook_keys *keys;    /* signing keys (Standard Webhooks); borrowed */
    bool callback_payload;       /* callbacks carry the job's payload too */
} hr_opts;

void hr_opts_init(hr_opts *o);
/* Register both kinds and the on_final hook that adds callbacks. */
int hr_register(ob_engine *e, const hr_opts *o);
/* Callback attempts that did not deliver (refused, failed or answered
 * with an unexpected status), since start. */
uint64_t hr_callback_failures(void);
/* Check an http.request payload (a value jscan accepted) as its handler
 * will (after hr_register): 0 with its URL in url[ucap] (HR_URL_MAX + 1
 * is room enough), or OB_EINVAL with the member in field[cap] ("" for the
 * payload itself, "headers.Host", ...) and *why; OB_ENOMEM. */
#define HR_URL_MAX 2048
int hr_check_payload(const jspan *payload, char *field, size_t cap, const char **why,
                     char *url, size_t ucap);
/* Where an http(s) URL goes, parsed once (libcurl): its host as curl
 * gives it (an IPv6 address in brackets) and port (the default written
 * out), for outbound_check_host; and its origin "scheme://host:port" (lower
 * case), an http.request's rate key ("" when it is not a valid one). 0,
 * or -1 when the URL does not parse (or its host is longer than 255). */
typedef struct hr_target {
    char host[256];
    int port;
    char origin[OB_RATE_KEY_MAX + 1];
} hr_target;
int hr_target_of(const char *url, hr_target *t);

#endif
