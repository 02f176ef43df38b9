/*
 * jscan.h - JSON read in place. ob_jscan validates a whole document and
 * hands back where its top value lies; the other calls walk a value that
 * ob_jscan accepted, member by member, without building a tree or copying
 * a byte. The job endpoints use it to store a payload as the bytes that
 * came in and to decode a 1,000-object batch without 1,000 mallocs.
 *
 * What it accepts is exactly what jansson's json_loadb accepts with
 * JSON_REJECT_DUPLICATES (and JSON_DECODE_ANY when OB_JSCAN_ANY is given),
 * with one exception: a NUL byte is refused wherever it is (jansson skips
 * one after a number or a literal). tests/fuzz/fuzz_json.c holds it to
 * that on every input, and checks the values read back equal jansson's.
 *
 * Spans point into the caller's buffer: they live as long as it does.
 */
#ifndef OB_JSCAN_H
#define OB_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ob_jtype {
    OB_J_OBJECT = 1,
    OB_J_ARRAY,
    OB_J_STRING,
    OB_J_INTEGER, /* no fraction or exponent; fits int64_t (checked) */
    OB_J_REAL,    /* finite as a double (checked) */
    OB_J_TRUE,
    OB_J_FALSE,
    OB_J_NULL,
} ob_jtype;

/* A value's text: [p, p + n), a string with its quotes. */
typedef struct ob_jspan {
    const char *p;
    size_t n;
    ob_jtype type;
} ob_jspan;

#define OB_JSCAN_ANY 1u /* any value at the top, not only an object or array */
#define OB_JSCAN_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct ob_jscan_error {
    size_t at;      /* byte offset where the document went wrong */
    char why[80];   /* e.g. "duplicate object key" */
} ob_jscan_error;

/* Validate buf[0, len) as one JSON document. 0 and *top, or -1 and *err. */
int ob_jscan(const char *buf, size_t len, unsigned flags, ob_jspan *top, ob_jscan_error *err);

/* A walk over an object's members or an array's elements (of a value
 * ob_jscan accepted). */
typedef struct ob_jiter {
    const char *p, *end;
} ob_jiter;
void ob_jiter_init(ob_jiter *it, const ob_jspan *container);
/* The next member (key is a string span), or false at the end. */
bool ob_jiter_member(ob_jiter *it, ob_jspan *key, ob_jspan *value);
/* The next element, or false at the end. */
bool ob_jiter_elem(ob_jiter *it, ob_jspan *value);

/* An object's member named `name` (compared unescaped): true and *value. */
bool ob_jget(const ob_jspan *obj, const char *name, ob_jspan *value);

/* A string's value, unescaped, into out (room for s->n bytes: always
 * enough) and NUL-terminated; returns its length. Never has a NUL inside. */
size_t ob_jstr(const ob_jspan *s, char *out);
/* Whether string s is `lit` once unescaped. */
bool ob_jstr_is(const ob_jspan *s, const char *lit);
/* A number's value (integer or real). */
double ob_jnum(const ob_jspan *s);
/* An integer's value; false when s is not an OB_J_INTEGER. */
bool ob_jint(const ob_jspan *s, int64_t *out);

#endif
