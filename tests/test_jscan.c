/*
 * test_jscan.c - JSON read in place (src/api/jscan.c): chosen documents
 * judged as jansson judges them (tests/fuzz/fuzz_json.c does it for any),
 * jansson's depth limit to the value, a duplicate key among thousands, a
 * NUL byte refused, and the walkers reading members, strings and numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/jscan.h"
#include "test.h"

/* jscan against jansson on one document. */
static void jscan_agrees(const char *doc, size_t n, unsigned flags)
{
    json_error_t je;
    json_t *j = json_loadb(doc, n, JSON_REJECT_DUPLICATES | (flags ? JSON_DECODE_ANY : 0), &je);
    jspan top;
    jscan_error err;
    int rc = jscan(doc, n, flags, &top, &err);
    if ((rc == 0) != (j != NULL))
        test_fail(__FILE__, __LINE__, "%.60s: jscan %s (%s), jansson %s (%s)", doc,
                  rc ? "refused" : "accepted", rc ? err.why : "", j ? "accepted" : "refused",
                  j ? "" : je.text);
    json_decref(j);
}

TEST(jscan_accepts_what_jansson_accepts_and_reads_values_in_place)
{
    const char *docs[] = {
        "{}", "[]", " [ 1 , 2 ] ", "{\"a\":{\"b\":[true,false,null]}}", "[-0,0.5e-3,1E+2]",
        "[9223372036854775807]", "[-9223372036854775808]", "[9223372036854775808]", "[1e309]",
        "[1e-400]", "[01]", "[1.]", "[.5]", "[-]", "[1e]", "[+1]", "[\"\\ud83d\\ude00\"]",
        "[\"\\ud83d\"]", "[\"\\ude00\"]", "[\"\\u0000\"]", "{\"\\u0000\":1}", "[\"\\x\"]",
        "[\"\\u12\"]", "[\"a\tb\"]", "[\"\xc3\xa9\"]", "[\"\xc3\"]", "[\"\xc0\x80\"]",
        "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}", "{\"a\":{\"a\":1},\"b\":{\"a\":1}}", "[nul]", "[truex]",
        "[true false]", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "{1:2}", "[", "{", "\"s\"", "1",
        "", "  ", "[] x", "[]\n\t ", "\xef\xbb\xbf[]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        jscan_agrees(docs[i], strlen(docs[i]), 0);
        jscan_agrees(docs[i], strlen(docs[i]), JSCAN_ANY);
    }
    /* depth: jansson's limit is 2048 values deep, the top one at 1 */
    for (int depth = 2047; depth <= 2049; depth++) {
        char *d = malloc(2 * (size_t)depth + 1);
        memset(d, '[', (size_t)depth);
        memset(d + depth, ']', (size_t)depth);
        jscan_agrees(d, 2 * (size_t)depth, 0);
        free(d);
    }
    /* a many-key object: the duplicate is found however far apart */
    char big[64 * 1024] = "{";
    for (int i = 0; i < 3000; i++)
        sprintf(big + strlen(big), "\"k%d\":%d,", i, i);
    strcat(big, "\"k1234\":0}");
    jscan_agrees(big, strlen(big), 0);
    /* a NUL byte is refused, even where jansson would skip it */
    jspan top, v, k;
    jscan_error err;
    ASSERT(jscan("[1\0]", 4, 0, &top, &err) != 0);
    /* walking: members, unescaped strings, numbers */
    const char *doc = " {\"kind\" : \"a\\u00e9\\n\", \"n\":-12, \"r\":2.5, \"p\":{\"x\":[1,{}]}} ";
    ASSERT_EQ(jscan(doc, strlen(doc), 0, &top, &err), 0);
    ASSERT(top.p == doc + 1 && top.type == J_OBJECT && top.p[top.n - 1] == '}');
    char buf[64];
    ASSERT(jget(&top, "kind", &v) && v.type == J_STRING);
    ASSERT_EQ(jstr(&v, buf), 4);
    ASSERT_STREQ(buf, "a\xc3\xa9\n");
    ASSERT(jstr_is(&v, "a\xc3\xa9\n") && !jstr_is(&v, "a"));
    char *cursor = buf; /* strings one after another in one buffer */
    const char *first = jstr_take(&v, &cursor), *second = jstr_take(&v, &cursor);
    ASSERT(first == buf && second == buf + 5 && cursor == buf + 10);
    ASSERT_STREQ(second, "a\xc3\xa9\n");
    int64_t i64;
    ASSERT(jget(&top, "n", &v) && jint(&v, &i64) && i64 == -12);
    ASSERT(jget(&top, "r", &v) && v.type == J_REAL && !jint(&v, &i64) && jnum(&v) == 2.5);
    ASSERT(jget(&top, "p", &v) && v.n == strlen("{\"x\":[1,{}]}") &&
           memcmp(v.p, "{\"x\":[1,{}]}", v.n) == 0);
    ASSERT(!jget(&top, "missing", &v));
    static const char *const names[] = {"r", "kind", "n", "p"};
    jspan m[4] = {0}, unknown;
    ASSERT(jmembers(&top, names, 4, m, &unknown) && m[0].type == J_REAL && m[3].type == J_OBJECT);
    ASSERT(!jmembers(&top, names, 3, m, &unknown) && jstr_is(&unknown, "p"));
    jiter it;
    int members = 0;
    jiter_init(&it, &top);
    while (jiter_member(&it, &k, &v))
        members++;
    ASSERT_EQ(members, 4);
    /* an error names the byte */
    ASSERT(jscan("{\"a\":1,\"a\":2}", 13, 0, &top, &err) != 0);
    ASSERT_STREQ(err.why, "duplicate object key");
    ASSERT(jscan("[1,x]", 5, 0, &top, &err) != 0 && err.at == 3);
}

static const test_case tests[] = {
    T(jscan_accepts_what_jansson_accepts_and_reads_values_in_place),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
