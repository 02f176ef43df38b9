/*
 * fuzz_json.c - libFuzzer target holding jscan.c (JSON read in place) to
 * jansson, the parser it stands in for on the job endpoints. On every
 * input, with and without OB_JSCAN_ANY:
 *   - ob_jscan accepts exactly what json_loadb(JSON_REJECT_DUPLICATES
 *     [| JSON_DECODE_ANY]) accepts, except that an input with a NUL byte
 *     is always refused (jansson skips one after a number or literal);
 *   - what the walkers read back (members, elements, unescaped strings,
 *     numbers) is json_equal to jansson's tree;
 *   - every span lies inside the input (J1), and ob_jget finds each member.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *lo, *hi;

static void inside(const ob_jspan *s)
{
    if (s->p < lo || s->p + s->n > hi || s->n == 0)
        abort();
}

static json_t *tree(const ob_jspan *top, const ob_jspan *v)
{
    inside(v);
    ob_jiter it;
    ob_jspan k, e;
    json_t *out = NULL;
    char *b;
    switch (v->type) {
    case OB_J_OBJECT:
        out = json_object();
        ob_jiter_init(&it, v);
        while (ob_jiter_member(&it, &k, &e)) {
            inside(&k);
            if (k.type != OB_J_STRING || !(b = malloc(k.n)))
                abort();
            ob_jstr(&k, b);
            ob_jspan again;
            if (!ob_jstr_is(&k, b) || !ob_jget(v, b, &again) || again.p != e.p || again.n != e.n)
                abort();
            json_object_set_new(out, b, tree(top, &e));
            free(b);
        }
        break;
    case OB_J_ARRAY:
        out = json_array();
        ob_jiter_init(&it, v);
        while (ob_jiter_elem(&it, &e))
            json_array_append_new(out, tree(top, &e));
        break;
    case OB_J_STRING: {
        if (!(b = malloc(v->n)))
            abort();
        size_t n = ob_jstr(v, b);
        if (memchr(b, '\0', n) || b[n] != '\0')
            abort();
        out = json_stringn(b, n); /* NULL (a mismatch below) if not UTF-8 */
        free(b);
        break;
    }
    case OB_J_INTEGER: {
        int64_t i;
        if (!ob_jint(v, &i))
            abort();
        out = json_integer(i);
        break;
    }
    case OB_J_REAL:
        out = json_real(ob_jnum(v));
        break;
    case OB_J_TRUE:
        out = json_true();
        break;
    case OB_J_FALSE:
        out = json_false();
        break;
    case OB_J_NULL:
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
        ob_jspan top;
        ob_jscan_error err;
        int rc = ob_jscan(s, size, any ? OB_JSCAN_ANY : 0, &top, &err);
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
