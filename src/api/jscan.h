/*
 * jscan.h - JSON read in place. jscan validates a whole document and
 * hands back where its top value lies; the other calls walk a value that
 * jscan accepted, member by member, without building a tree or copying
 * a byte. The job endpoints use it to store a payload as the bytes that
 * came in and to decode a 1,000-object batch without 1,000 mallocs.
 *
 * What it accepts is exactly what jansson's json_loadb accepts with
 * JSON_REJECT_DUPLICATES (and JSON_DECODE_ANY when JSCAN_ANY is given),
 * with one exception: a NUL byte is refused wherever it is (jansson skips
 * one after a number or a literal). tests/fuzz/fuzz_json.c holds it to
 * that on every input, and checks the values read back equal jansson's.
 *
 * Spans point into the caller's buffer: they live as long as it does.
 */
#ifndef OB_API_JSCAN_H
#define OB_API_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum jtype {
    J_OBJECT = 1,
    J_ARRAY,
    J_STRING,
    J_INTEGER, /* no fraction or exponent; fits int64_t (checked) */
    J_REAL,    /* finite as a double (checked) */
    J_TRUE,
    J_FALSE,
    J_NULL,
} jtype;

/* A value's text: [p, p + n), a string with its quotes. */
typedef struct jspan {
    const char *p;
    size_t n;
    jtype type;
} jspan;

#define JSCAN_ANY 1u /* any value at the top, not only an object or array */
#define JSCAN_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct jscan_error {
    size_t at;      /* byte offset where the document went wrong */
    char why[80];   /* e.g. "duplicate object key" */
} jscan_error;

/* Validate buf[0, len) as one JSON document. 0 and *top, or -1 and *err. */
int jscan(const char *buf, size_t len, unsigned flags, jspan *top, jscan_error *err);

/* A walk over an object's members or an array's elements (of a value
 * jscan accepted). */
typedef struct jiter {
    const char *p, *end;
} jiter;
void jiter_init(jiter *it, const jspan *container);
/* The next member (key is a string span), or false at the end. */
bool jiter_member(jiter *it, jspan *key, jspan *value);
/* The next element, or false at the end. */
bool jiter_elem(jiter *it, jspan *value);

/* An object's members sorted by name into out[i] for names[i] (type 0 for
 * a name absent; no member twice: jscan refused duplicates). true, or
 * false with *unknown the key of the first member not among names. */
bool jmembers(const jspan *obj, const char *const *names, size_t n, jspan *out, jspan *unknown);
/* An object's member named `name` (compared unescaped): true and *value. */
bool jget(const jspan *obj, const char *name, jspan *value);

/* A string's value, unescaped, into out (room for s->n bytes: always
 * enough) and NUL-terminated; returns its length. Never has a NUL inside. */
size_t jstr(const jspan *s, char *out);
/* The same at *cursor, which then moves past its NUL: for a decoder that
 * keeps a document's strings in one buffer as long as the document (the
 * strings of a value, unescaped, never take more bytes than the value). */
const char *jstr_take(const jspan *s, char **cursor);
/* Whether string s is `lit` once unescaped. */
bool jstr_is(const jspan *s, const char *lit);
/* A number's value (integer or real). */
double jnum(const jspan *s);
/* An integer's value; false when s is not an J_INTEGER. */
bool jint(const jspan *s, int64_t *out);

#endif
