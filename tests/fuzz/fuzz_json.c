/*
 * fuzz_json.c - libFuzzer target holding jscan.c (JSON read in place) to
 * jansson, the parser it stands in for on the job endpoints. On every
 * input, with and without JSCAN_ANY:
 *   - jscan accepts exactly what json_loadb(JSON_REJECT_DUPLICATES
 *     [| JSON_DECODE_ANY]) accepts, except that an input with a NUL byte
 *     is always refused (jansson skips one after a number or literal);
 *   - what the walkers read back (members, elements, unescaped strings,
 *     numbers) is json_equal to jansson's tree;
 *   - every span lies inside the input (J1), and jget finds each member.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *lo, *hi;

static void inside(const jspan *s)
{
    if (s->p < lo || s->p + s->n > hi || s->n == 0)
        abort();
}

static json_t *tree(const jspan *top, const jspan *v)
{
    inside(v);
    jiter it;
    jspan k, e;
    json_t *out = NULL;
    char *b;
    switch (v->type) {
    case J_OBJECT:
        out = json_object();
        jiter_init(&it, v);
        while (jiter_member(&it, &k, &e)) {
            inside(&k);
            if (k.type != J_STRING || !(b = malloc(k.n)))
                abort();
            jstr(&k, b);
            jspan again;
            if (!jstr_is(&k, b) || !jget(v, b, &again) || again.p != e.p || again.n != e.n)
                abort();
            json_object_set_new(out, b, tree(top, &e));
            free(b);
        }
        break;
    case J_ARRAY:
        out = json_array();
        jiter_init(&it, v);
        while (jiter_elem(&it, &e))
            json_array_append_new(out, tree(top, &e));
        break;
    case J_STRING: {
        if (!(b = malloc(v->n)))
            abort();
        size_t n = jstr(v, b);
        if (memchr(b, '\0', n) || b[n] != '\0')
            abort();
        out = json_stringn(b, n); /* NULL (a mismatch below) if not UTF-8 */
        free(b);
        break;
    }
    case J_INTEGER: {
        int64_t i;
        if (!jint(v, &i))
            abort();
        out = json_integer(i);
        break;
    }
    case J_REAL:
        out = json_real(jnum(v));
        break;
    case J_TRUE:
        out = json_true();
        break;
    case J_FALSE:
        out = json_false();
        break;
    case J_NULL:
        out = json_null();
        break;
    }
    if (!out)
        abort();
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    lo = s;
    hi = s + size;
    for (int any = 0; any < 2; any++) {
        json_error_t jerr;
        json_t *j = json_loadb(s, size, JSON_REJECT_DUPLICATES | (any ? JSON_DECODE_ANY : 0), &jerr);
        jspan top;
        jscan_error err;
        int rc = jscan(s, size, any ? JSCAN_ANY : 0, &top, &err);
        bool nul = memchr(s, '\0', size) != NULL;
        if (nul ? rc == 0 : (rc == 0) != (j != NULL)) {
            fprintf(stderr, "jscan %s (%s at %zu), jansson %s (%s)\n", rc ? "refused" : "accepted",
                    rc ? err.why : "", rc ? err.at : 0, j ? "accepted" : "refused",
                    j ? "" : jerr.text);
            abort();
        }
        if (rc && err.at > size)
            abort();
        if (rc == 0) {
            json_t *mine = tree(&top, &top);
            if (!json_equal(mine, j))
                abort();
            json_decref(mine);
        }
        json_decref(j);
    }
    return 0;
}
