/*
 * msg_helpers.h - /v1/messages from the tests' side (msg_helpers.c), for
 * test_smtp.c and test_messages.c.
 */
#ifndef OB_TEST_MSG_HELPERS_H
#define OB_TEST_MSG_HELPERS_H

#include <jansson.h>
#include <stdbool.h>

#include "od_helpers.h"

/* The text of file DIR/NAME (malloc'd), or NULL; *len its length. */
char *m_slurp(const char *dir, const char *name, size_t *len);
/* METHOD PATH with headers and a JSON body (may be NULL): the response's
 * JSON (new reference; NULL if not JSON) and *status. */
json_t *m_call(const od *d, const char *method, const char *path, const char *headers,
               const char *body, int *status);
/* POST /v1/messages that must answer 202: the answer. */
json_t *m_send_ok(const od *d, const char *body);
/* o's string member k, or "". */
const char *m_str(const json_t *o, const char *k);
/* GET /v1/messages/ID until final (or 60 s); the message. */
json_t *m_final(const od *d, const char *id);
/* GET /v1/messages/ID until fn(message) holds (or 30 s). */
json_t *m_until(const od *d, const char *id, bool (*fn)(const json_t *));
/* The recipient `address` of a message (fails the test if none). */
json_t *m_rcpt(const json_t *msg, const char *address);
/* That recipient is in `state` with `code` and a reply holding `text`. */
void m_expect_rcpt(const json_t *msg, const char *address, const char *state, int code,
                   const char *text);
/* outboxd sending to smtp://[USERINFO]127.0.0.1:PORT[QUERY] (default
 * ?starttls=no), retrying after a second, with extra flags. */
od m_od_smtp(const char *userinfo, int port, const char *query, const char *extra);

#endif
