/*
 * http_request.h - the http.request and outbox.callback job kinds (see
 * http_request.c).
 */
#ifndef OB_API_HTTP_REQUEST_H
#define OB_API_HTTP_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "outbox/jobs.h"

typedef struct hr_opts {
    size_t max_response;         /* response body bytes kept in the result */
    int max_redirects;
    const unsigned char *secret; /* HMAC key for callbacks; borrowed for the engine's life */
    size_t secret_len;
} hr_opts;

/* Register both kinds and the on_final hook that adds callbacks. */
int hr_register(ob_engine *e, const hr_opts *o);
/* Check an http.request payload as its handler will: 0, or OB_EINVAL with
 * *field (a member, or NULL) and *why. */
int hr_check_payload(const json_t *payload, const char **field, const char **why);

#endif
