/*
 * outbox/id.h - job ids and names: what every part of outbox uses to name
 * a job, a kind and a queue.
 */
#ifndef OUTBOX_ID_H
#define OUTBOX_ID_H

#include <stdbool.h>

#include "outbox/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A job id: a UUIDv7 (RFC 9562), time-ordered. Ids made by one engine
 * increase strictly in the order the jobs were stored. */
typedef struct ob_id {
    unsigned char b[16];
} ob_id;

#define OB_ID_STRLEN 36 /* "0192f7d2-8c1e-7b3a-9f00-5e2d1c3b4a59" */

/* Write the canonical lower-case form and a NUL into out[37]. Returns out. */
char *ob_id_format(const ob_id *id, char out[OB_ID_STRLEN + 1]);
/* Parse the canonical form (either case, exactly 36 characters).
 * Returns 0, or OB_EINVAL if `s` is not a UUID. */
int ob_id_parse(const char *s, ob_id *out);

#define OB_NAME_MAX 64 /* kind and queue names */

/* Whether s is a name: 1..OB_NAME_MAX characters of [A-Za-z0-9._-].
 * NULL is not. */
bool ob_name_valid(const char *s);

#ifdef __cplusplus
}
#endif
#endif
