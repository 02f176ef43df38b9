/*
 * mime_helpers.h - reading built mail back with GMime, for the tests.
 */
#ifndef OB_TEST_MIME_HELPERS_H
#define OB_TEST_MIME_HELPERS_H

#include <gmime/gmime.h>
#include <stddef.h>

/* Parse len bytes of MIME text; fails the test if GMime cannot. The
 * message is the caller's: g_object_unref. */
GMimeMessage *t_mime_parse(const char *data, size_t len);
/* The decoded content of a leaf part, NUL-terminated, malloc'd; *len its
 * length. */
char *t_mime_content(GMimeObject *part, size_t *len);

#endif
