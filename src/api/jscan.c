/*
 * jscan.c - JSON read in place (see jscan.h for what and why).
 *
 * jscan is a recursive-descent validator over the bytes; it allocates
 * only for the duplicate-key check (a stack of the keys of the objects
 * being read, popped as each closes). The walkers below it trust their
 * input, because only a span jscan accepted may be handed to them: they
 * find a value's end by counting brackets outside strings.
 *
 * Where jansson's rules are not the RFC's, jansson's are followed (the fuzz
 * target compares the two on every input):
 *   - an integer (no fraction, no exponent) must fit int64_t, a real must
 *     not overflow a double;
 *   - \u0000 is refused in every string, key or value;
 *   - a \u escape of a lone surrogate is refused, so is invalid UTF-8
 *     (overlong forms, surrogates, beyond U+10FFFF);
 *   - a literal is a run of ASCII letters that must be true, false or null;
 *   - values nest at most JSCAN_MAX_DEPTH deep, the top value at 1.
 * Keys are compared once unescaped ("a" and "\u0061" are duplicates).
 *
 * Invariant J1: a span that jscan or a walker hands out starts at the
 * value's first byte and ends after its last, within the document.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/jscan.h"

typedef struct jkey {
    uint64_t hash;
    const char *p; /* the unescaped key: into the document, or `owned` */
    size_t n;
    char *owned;
} jkey;

typedef struct scan {
    const char *buf, *p, *end;
    jkey *keys; /* the keys of every object still open, innermost last */
    size_t nkeys, cap;
    jscan_error *err;
} scan;

static int bad(scan *s, const char *at, const char *why)
{
    s->err->at = (size_t)(at - s->buf);
    snprintf(s->err->why, sizeof s->err->why, "%s", why);
    return -1;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

/* The value of 4 hex digits at p (p + 4 <= end), or -1. */
static int hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = is_digit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* The length of the UTF-8 sequence at p, or 0 when it is not one jansson
 * takes: no overlong form, no surrogate, nothing beyond U+10FFFF. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (!n || (size_t)(end - p) < n)
        return 0;
    uint32_t v = c & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return n;
}

/* ---- validation ---- */

/* A string at s->p (its opening quote); *esc: whether it has escapes. */
static int scan_string(scan *s, bool *esc)
{
    *esc = false;
    for (s->p++;;) {
        if (s->p >= s->end)
            return bad(s, s->p, "premature end of input in a string");
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return bad(s, s->p, c ? "control character in a string" : "NUL byte");
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)s->p, (const unsigned char *)s->end);
            if (!n)
                return bad(s, s->p, "invalid UTF-8");
            s->p += n;
            continue;
        }
        if (c != '\\') {
            s->p++;
            continue;
        }
        *esc = true;
        char e = s->end - s->p > 1 ? s->p[1] : '\0';
        if (e != 'u') {
            if (!e || !strchr("\"\\/bfnrt", e))
                return bad(s, s->p, "invalid escape");
            s->p += 2;
            continue;
        }
        int u = hex4(s->p + 2, s->end);
        if (u < 0)
            return bad(s, s->p, "invalid escape");
        if (u == 0)
            return bad(s, s->p, "\\u0000 is not allowed");
        if (u >= 0xDC00 && u <= 0xDFFF)
            return bad(s, s->p, "invalid Unicode: a lone low surrogate");
        s->p += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            int lo = s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u'
                         ? hex4(s->p + 2, s->end) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return bad(s, s->p, "invalid Unicode: a high surrogate without its pair");
            s->p += 6;
        }
    }
}

static const char *digits(const char *p, const char *end)
{
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* A number at s->p; checks its value as jansson does. */
static int scan_number(scan *s, jtype *type)
{
    const char *start = s->p, *p = s->p, *end = s->end;
    if (*p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return bad(s, p, "invalid number");
    p = *p == '0' ? p + 1 : digits(p, end);
    if (p < end && is_digit(*p))
        return bad(s, p, "invalid number: a leading zero");
    bool real = false;
    if (p < end && *p == '.') {
        if (++p >= end || !is_digit(*p))
            return bad(s, p, "invalid number: no digit after '.'");
        p = digits(p, end);
        real = true;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return bad(s, p, "invalid number: no digit in the exponent");
        p = digits(p, end);
        real = true;
    }
    s->p = p;
    *type = real ? J_REAL : J_INTEGER;
    size_t n = (size_t)(p - start);
    if (!real && n > 24) /* no leading zeros: > 20 digits cannot fit */
        return bad(s, start, "too big integer");
    char tmp[64], *b = n < sizeof tmp ? tmp : malloc(n + 1);
    if (!b)
        return bad(s, start, "out of memory");
    memcpy(b, start, n);
    b[n] = '\0';
    errno = 0;
    int rc = 0;
    if (!real) {
        (void)strtoll(b, NULL, 10);
        if (errno == ERANGE)
            rc = bad(s, start, "too big integer");
    } else {
        double d = strtod(b, NULL);
        if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
            rc = bad(s, start, "real number overflow");
    }
    if (b != tmp)
        free(b);
    return rc;
}

static size_t unescape(const char *p, size_t n, char *out);

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    return h;
}

/* Push the key whose string (quotes included) is [p, p + n). */
static int push_key(scan *s, const char *p, size_t n, bool esc)
{
    if (s->nkeys == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        jkey *k = realloc(s->keys, cap * sizeof *k);
        if (!k)
            return bad(s, p, "out of memory");
        s->keys = k;
        s->cap = cap;
    }
    jkey k = {.p = p + 1, .n = n - 2};
    if (esc) {
        if (!(k.owned = malloc(n)))
            return bad(s, p, "out of memory");
        k.n = unescape(p + 1, n - 2, k.owned);
        k.p = k.owned;
    }
    k.hash = fnv1a(k.p, k.n);
    s->keys[s->nkeys++] = k;
    return 0;
}

static int key_cmp(const void *x, const void *y)
{
    const jkey *a = x, *b = y;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    return memcmp(a->p, b->p, a->n);
}

/* Whether two keys of the object whose keys start at `base` are equal;
 * pops them. Sorting keeps a 100,000-key object from costing n^2. */
static bool pop_keys_dup(scan *s, size_t base)
{
    jkey *k = s->keys + base;
    size_t n = s->nkeys - base;
    bool dup = false;
    if (n <= 8) {
        for (size_t i = 0; i < n && !dup; i++)
            for (size_t j = i + 1; j < n && !dup; j++)
                dup = key_cmp(&k[i], &k[j]) == 0;
    } else {
        qsort(k, n, sizeof *k, key_cmp);
        for (size_t i = 1; i < n && !dup; i++)
            dup = key_cmp(&k[i - 1], &k[i]) == 0;
    }
    for (size_t i = 0; i < n; i++)
        free(k[i].owned);
    s->nkeys = base;
    return dup;
}

static int scan_value(scan *s, jspan *v, unsigned depth);

static int scan_array(scan *s, unsigned depth)
{
    s->p = skip_ws(s->p + 1, s->end);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (;;) {
        jspan v;
        if (scan_value(s, &v, depth + 1))
            return -1;
        s->p = skip_ws(s->p, s->end);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        if (s->p >= s->end || *s->p != ',')
            return bad(s, s->p, "',' or ']' expected");
        s->p = skip_ws(s->p + 1, s->end);
    }
}

static int scan_object(scan *s, unsigned depth)
{
    size_t base = s->nkeys;
    s->p = skip_ws(s->p + 1, s->end);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"')
            return bad(s, s->p, "string or '}' expected");
        const char *k = s->p;
        bool esc;
        jspan v;
        if (scan_string(s, &esc) || push_key(s, k, (size_t)(s->p - k), esc))
            return -1;
        s->p = skip_ws(s->p, s->end);
        if (s->p >= s->end || *s->p != ':')
            return bad(s, s->p, "':' expected");
        s->p = skip_ws(s->p + 1, s->end);
        if (scan_value(s, &v, depth + 1))
            return -1;
        s->p = skip_ws(s->p, s->end);
        if (s->p < s->end && *s->p == '}')
            break;
        if (s->p >= s->end || *s->p != ',')
            return bad(s, s->p, "',' or '}' expected");
        s->p = skip_ws(s->p + 1, s->end);
    }
    const char *close = s->p++;
    return pop_keys_dup(s, base) ? bad(s, close, "duplicate object key") : 0;
}

static int scan_literal(scan *s, jtype *type)
{
    const char *q = s->p;
    while (q < s->end && is_alpha(*q))
        q++;
    size_t n = (size_t)(q - s->p);
    if (n == 4 && memcmp(s->p, "true", 4) == 0)
        *type = J_TRUE;
    else if (n == 5 && memcmp(s->p, "false", 5) == 0)
        *type = J_FALSE;
    else if (n == 4 && memcmp(s->p, "null", 4) == 0)
        *type = J_NULL;
    else
        return bad(s, s->p, "invalid token");
    s->p = q;
    return 0;
}

static int scan_value(scan *s, jspan *v, unsigned depth)
{
    if (depth > JSCAN_MAX_DEPTH)
        return bad(s, s->p, "maximum parsing depth reached");
    if (s->p >= s->end)
        return bad(s, s->p, "premature end of input");
    v->p = s->p;
    bool esc;
    int rc;
    char c = *s->p;
    if (c == '{') {
        v->type = J_OBJECT;
        rc = scan_object(s, depth);
    } else if (c == '[') {
        v->type = J_ARRAY;
        rc = scan_array(s, depth);
    } else if (c == '"') {
        v->type = J_STRING;
        rc = scan_string(s, &esc);
    } else if (c == '-' || is_digit(c)) {
        rc = scan_number(s, &v->type);
    } else if (is_alpha(c)) {
        rc = scan_literal(s, &v->type);
    } else {
        rc = bad(s, s->p, c ? "invalid token" : "NUL byte");
    }
    v->n = (size_t)(s->p - v->p);
    return rc;
}

int jscan(const char *buf, size_t len, unsigned flags, jspan *top, jscan_error *err)
{
    scan s = {.buf = buf, .p = buf, .end = buf + len, .err = err};
    s.p = skip_ws(s.p, s.end);
    int rc;
    if (!(flags & JSCAN_ANY) && (s.p >= s.end || (*s.p != '{' && *s.p != '[')))
        rc = bad(&s, s.p, s.p < s.end ? "'[' or '{' expected" : "premature end of input");
    else
        rc = scan_value(&s, top, 1);
    if (!rc && (s.p = skip_ws(s.p, s.end)) < s.end)
        rc = bad(&s, s.p, *s.p ? "end of input expected" : "NUL byte");
    for (size_t i = 0; i < s.nkeys; i++) /* left by an error */
        free(s.keys[i].owned);
    free(s.keys);
    return rc;
}

/* ---- walking what jscan accepted ---- */

/* Past the string at p: its closing quote is the first one after an even
 * run of backslashes (memchr does the long plain stretches). */
static const char *skip_string(const char *p, const char *end)
{
    for (const char *q = p + 1;; q++) {
        q = memchr(q, '"', (size_t)(end - q));
        assert(q); /* J1 */
        const char *b = q;
        while (b[-1] == '\\')
            b--;
        if ((q - b) % 2 == 0)
            return q + 1;
    }
}

/* The value at p: its span, and where it ends. */
static const char *skip_value(const char *p, const char *end, jspan *v)
{
    const char *q;
    v->p = p;
    switch (*p) {
    case '"':
        v->type = J_STRING;
        q = skip_string(p, end);
        break;
    case '{':
    case '[':
        v->type = *p == '{' ? J_OBJECT : J_ARRAY;
        q = p;
        for (int depth = 0;;) {
            char c = *q;
            if (c == '"') {
                q = skip_string(q, end);
                continue;
            }
            q++;
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                break;
        }
        break;
    case 't':
    case 'n':
        v->type = *p == 't' ? J_TRUE : J_NULL;
        q = p + 4;
        break;
    case 'f':
        v->type = J_FALSE;
        q = p + 5;
        break;
    default:
        v->type = J_INTEGER;
        for (q = p; q < end && (is_digit(*q) || *q == '-' || *q == '+' || *q == '.' ||
                                *q == 'e' || *q == 'E'); q++)
            if (*q == '.' || *q == 'e' || *q == 'E')
                v->type = J_REAL;
    }
    assert(q <= end); /* J1 */
    v->n = (size_t)(q - p);
    return q;
}

void jiter_init(jiter *it, const jspan *c)
{
    assert(c->type == J_OBJECT || c->type == J_ARRAY);
    it->p = c->p + 1;
    it->end = c->p + c->n - 1; /* the closing bracket */
}

/* Past the separator before the next item; false at the end. */
static bool next_item(jiter *it)
{
    it->p = skip_ws(it->p, it->end);
    if (it->p < it->end && *it->p == ',')
        it->p = skip_ws(it->p + 1, it->end);
    return it->p < it->end;
}

bool jiter_elem(jiter *it, jspan *value)
{
    if (!next_item(it))
        return false;
    it->p = skip_value(it->p, it->end, value);
    return true;
}

bool jiter_member(jiter *it, jspan *key, jspan *value)
{
    if (!next_item(it))
        return false;
    it->p = skip_value(it->p, it->end, key);
    it->p = skip_ws(it->p, it->end);
    assert(*it->p == ':');
    it->p = skip_value(skip_ws(it->p + 1, it->end), it->end, value);
    return true;
}

bool jmembers(const jspan *obj, const char *const *names, size_t n, jspan *out, jspan *unknown)
{
    jiter it;
    jspan k, v;
    jiter_init(&it, obj);
    while (jiter_member(&it, &k, &v)) {
        size_t i = 0;
        while (i < n && !jstr_is(&k, names[i]))
            i++;
        if (i == n) {
            *unknown = k;
            return false;
        }
        out[i] = v;
    }
    return true;
}

bool jget(const jspan *obj, const char *name, jspan *value)
{
    jiter it;
    jspan k;
    jiter_init(&it, obj);
    while (jiter_member(&it, &k, value))
        if (jstr_is(&k, name))
            return true;
    return false;
}

static size_t put_utf8(uint32_t u, char *out)
{
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xC0 | u >> 6);
        out[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (char)(0xE0 | u >> 12);
        out[1] = (char)(0x80 | (u >> 6 & 0x3F));
        out[2] = (char)(0x80 | (u & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | u >> 18);
    out[1] = (char)(0x80 | (u >> 12 & 0x3F));
    out[2] = (char)(0x80 | (u >> 6 & 0x3F));
    out[3] = (char)(0x80 | (u & 0x3F));
    return 4;
}

/* A validated string's inside [p, p + n) unescaped into out: never longer
 * (an escape of 2, 6 or 12 bytes becomes 1, at most 3, or 4). */
static size_t unescape(const char *p, size_t n, char *out)
{
    const char *end = p + n;
    char *o = out;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t plain = (size_t)((bs ? bs : end) - p);
        memcpy(o, p, plain);
        o += plain;
        p += plain;
        if (!bs)
            break;
        char e = p[1];
        p += 2;
        if (e != 'u') {
            *o++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
                   : e == 't' ? '\t' : e;
            continue;
        }
        uint32_t u = (uint32_t)hex4(p, end);
        p += 4;
        if (u >= 0xD800 && u <= 0xDBFF) {
            u = 0x10000 + ((u - 0xD800) << 10) + ((uint32_t)hex4(p + 2, end) - 0xDC00);
            p += 6;
        }
        o += put_utf8(u, o);
    }
    return (size_t)(o - out);
}

size_t jstr(const jspan *s, char *out)
{
    assert(s->type == J_STRING && s->n >= 2);
    size_t n = unescape(s->p + 1, s->n - 2, out);
    out[n] = '\0';
    return n;
}

const char *jstr_take(const jspan *s, char **cursor)
{
    char *out = *cursor;
    *cursor += jstr(s, out) + 1;
    return out;
}

bool jstr_is(const jspan *s, const char *lit)
{
    if (s->type != J_STRING)
        return false;
    size_t n = strlen(lit);
    if (!memchr(s->p + 1, '\\', s->n - 2))
        return s->n - 2 == n && memcmp(s->p + 1, lit, n) == 0;
    if (s->n - 2 < n) /* unescaping only shortens */
        return false;
    char tmp[256], *b = s->n <= sizeof tmp ? tmp : malloc(s->n);
    bool eq = b && jstr(s, b) == n && memcmp(b, lit, n) == 0;
    if (b != tmp)
        free(b);
    return eq;
}

/* The number's text NUL-terminated in tmp (or malloc'd); NULL on OOM. */
static char *number_text(const jspan *s, char *tmp, size_t cap)
{
    char *b = s->n < cap ? tmp : malloc(s->n + 1);
    if (b) {
        memcpy(b, s->p, s->n);
        b[s->n] = '\0';
    }
    return b;
}

double jnum(const jspan *s)
{
    assert(s->type == J_INTEGER || s->type == J_REAL);
    char tmp[64], *b = number_text(s, tmp, sizeof tmp);
    double d = b ? strtod(b, NULL) : NAN;
    if (b != tmp)
        free(b);
    return d;
}

bool jint(const jspan *s, int64_t *out)
{
    if (s->type != J_INTEGER)
        return false;
    char tmp[32], *b = number_text(s, tmp, sizeof tmp);
    if (!b)
        return false;
    *out = strtoll(b, NULL, 10);
    if (b != tmp)
        free(b);
    return true;
}
