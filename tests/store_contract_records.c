/*
 * store_contract_records.c - records (ob_record_*) on either store (part
 * of the store contract suite): put, replace (created_at kept), get,
 * delete; listings in bytewise key order, paged, by tag, by a part of the
 * key; durable across a reopen; subscribers told of each committed change
 * in order; and what ob_record_put refuses, naming the member.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "helpers.h"

#define SET "test.set"

static void put(ob_engine *e, const char *key, const char *tag, const char *value, bool want_new)
{
    bool created = !want_new;
    ob_problem p;
    int rc = ob_record_put(e, SET, key, tag, value, &created, &p);
    if (rc)
        test_fail(__FILE__, __LINE__, "ob_record_put %s: %s: %s", key, p.field, p.message);
    ASSERT_EQ(created, want_new);
}

TEST(a_record_is_put_replaced_read_and_deleted)
{
    ob_engine *e = h_open("jobs.db", NULL);
    put(e, "a@example.com", "hard-bounce", "{\"reply\":\"550 no\"}", true);
    ob_record r;
    ASSERT_OK(ob_record_get(e, SET, "a@example.com", &r));
    ASSERT_STREQ(r.set, SET);
    ASSERT_STREQ(r.key, "a@example.com");
    ASSERT_STREQ(r.tag, "hard-bounce");
    ASSERT_STREQ(r.value, "{\"reply\":\"550 no\"}");
    ASSERT(r.created_at_ms > 0 && r.updated_at_ms == r.created_at_ms);
    int64_t created = r.created_at_ms;
    ob_record_clear(&r);
    ASSERT(r.value == NULL);
    h_sleep_ms(5);
    put(e, "a@example.com", "manual", NULL, false); /* a replacement keeps created_at */
    ASSERT_OK(ob_record_get(e, SET, "a@example.com", &r));
    ASSERT_STREQ(r.tag, "manual");
    ASSERT_STREQ(r.value, "{}");
    ASSERT_EQ(r.created_at_ms, created);
    ASSERT(r.updated_at_ms > created);
    ob_record_clear(&r);
    ASSERT_RC(ob_record_get(e, SET, "b@example.com", &r), OB_ENOTFOUND);
    ASSERT_RC(ob_record_get(e, "other.set", "a@example.com", &r), OB_ENOTFOUND);
    /* many in one read: each key its record, or none; a key twice, twice */
    put(e, "c@example.com", "t", "{\"c\":1}", true);
    const char *keys[] = {"b@example.com", "c@example.com", "a@example.com", "c@example.com"};
    ob_record many[4];
    ASSERT_OK(ob_record_get_many(e, SET, keys, 4, many));
    ASSERT(many[0].value == NULL && many[0].key[0] == '\0');
    ASSERT_STREQ(many[1].key, "c@example.com");
    ASSERT_STREQ(many[1].value, "{\"c\":1}");
    ASSERT_STREQ(many[2].tag, "manual");
    ASSERT_STREQ(many[3].value, "{\"c\":1}");
    for (int i = 0; i < 4; i++)
        ob_record_clear(&many[i]);
    ASSERT_OK(ob_record_get_many(e, SET, keys, 0, many));
    const char *bad[] = {"ok@example.com", ""};
    ASSERT_RC(ob_record_get_many(e, SET, bad, 2, many), OB_EINVAL);
    ASSERT_OK(ob_record_delete(e, SET, "a@example.com"));
    ASSERT_RC(ob_record_delete(e, SET, "a@example.com"), OB_ENOTFOUND);
    ASSERT_RC(ob_record_get(e, SET, "a@example.com", &r), OB_ENOTFOUND);
    ob_engine_close(e);
}

/* Every key of the listing f gives, page by page, joined with ','. */
static void list_all(ob_engine *e, ob_record_filter f, char *out, size_t cap)
{
    char after[OB_RECORD_KEY_MAX + 1] = "";
    size_t w = 0;
    out[0] = '\0';
    for (;;) {
        f.after = after[0] ? after : NULL;
        ob_record *v;
        size_t n;
        ASSERT_OK(ob_record_list(e, &f, &v, &n));
        for (size_t i = 0; i < n; i++)
            w += (size_t)snprintf(out + w, cap - w, "%s%s", w ? "," : "", v[i].key);
        if (n)
            snprintf(after, sizeof after, "%s", v[n - 1].key);
        ob_record_list_free(v, n);
        if (n < (size_t)f.limit)
            break;
    }
}

TEST(listings_are_in_bytewise_key_order_paged_and_filtered)
{
    ob_engine *e = h_open("jobs.db", NULL);
    const char *keys[] = {"b@x.org", "A@x.org", "c@y.org", "a@x.org", "é@x.org", "Z@y.org"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        put(e, keys[i], i % 2 ? "manual" : "hard-bounce", NULL, true);
    ASSERT_OK(ob_record_put(e, "other.set", "a@x.org", NULL, NULL, NULL, NULL));
    char got[1024];
    list_all(e, (ob_record_filter){.set = SET, .limit = 2}, got, sizeof got);
    ASSERT_STREQ(got, "A@x.org,Z@y.org,a@x.org,b@x.org,c@y.org,é@x.org");
    list_all(e, (ob_record_filter){.set = SET, .limit = 100}, got, sizeof got);
    ASSERT_STREQ(got, "A@x.org,Z@y.org,a@x.org,b@x.org,c@y.org,é@x.org");
    list_all(e, (ob_record_filter){.set = SET, .tag = "manual", .limit = 1}, got, sizeof got);
    ASSERT_STREQ(got, "A@x.org,Z@y.org,a@x.org");
    list_all(e, (ob_record_filter){.set = SET, .contains = "@y.", .limit = 5}, got, sizeof got);
    ASSERT_STREQ(got, "Z@y.org,c@y.org");
    list_all(e, (ob_record_filter){.set = SET, .contains = "@x", .tag = "hard-bounce", .limit = 5},
             got, sizeof got);
    ASSERT_STREQ(got, "b@x.org,é@x.org");
    list_all(e, (ob_record_filter){.set = "empty.set", .limit = 5}, got, sizeof got);
    ASSERT_STREQ(got, "");
    ob_record *v;
    size_t n;
    ASSERT_RC(ob_record_list(e, &(ob_record_filter){.set = SET, .limit = OB_RECORD_LIST_MAX + 1},
                             &v, &n), OB_EINVAL);
    ASSERT_RC(ob_record_list(e, &(ob_record_filter){.set = "bad set"}, &v, &n), OB_EINVAL);
    ASSERT_OK(ob_record_list(e, &(ob_record_filter){.set = SET}, &v, &n)); /* limit 0: 100 */
    ASSERT_EQ(n, 6);
    ob_record_list_free(v, n);
    ob_engine_close(e);
}

TEST(records_survive_a_reopen)
{
    ob_engine *e = h_open("jobs.db", NULL);
    put(e, "kept@example.com", "t", "{\"n\":1}", true);
    ob_engine_close(e);
    e = h_open("jobs.db", NULL);
    ob_record r;
    ASSERT_OK(ob_record_get(e, SET, "kept@example.com", &r));
    ASSERT_STREQ(r.value, "{\"n\":1}");
    ob_record_clear(&r);
    ob_engine_close(e);
}

static char seen[1024];

static void on_record(void *arg, const ob_record *r, bool deleted)
{
    (void)arg;
    size_t w = strlen(seen);
    snprintf(seen + w, sizeof seen - w, "%s%s %s %s", w ? ";" : "", deleted ? "-" : "+", r->key,
             deleted ? "" : r->tag);
}

TEST(subscribers_hear_each_committed_change_in_order)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_subscription *sub;
    ASSERT_OK(ob_engine_subscribe_records(e, on_record, NULL, &sub));
    put(e, "one@x.org", "a", NULL, true);
    put(e, "two@x.org", "b", NULL, true);
    put(e, "one@x.org", "c", NULL, false);
    ASSERT_OK(ob_record_delete(e, SET, "two@x.org"));
    ASSERT_RC(ob_record_delete(e, SET, "two@x.org"), OB_ENOTFOUND); /* no change: no event */
    ob_engine_unsubscribe(e, sub);
    put(e, "three@x.org", "d", NULL, true); /* after unsubscribing: not heard */
    ASSERT_STREQ(seen, "+ one@x.org a;+ two@x.org b;+ one@x.org c;- two@x.org ");
    ob_engine_close(e);
}

TEST(bad_records_are_refused_naming_the_member)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ob_problem p;
    char big[OB_RECORD_VALUE_MAX + 16], longkey[OB_RECORD_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    snprintf(big, sizeof big, "{\"x\":\"%*s\"}", OB_RECORD_VALUE_MAX, "");
    struct {
        const char *set, *key, *tag, *value, *field;
    } bad[] = {
        {"", "k", NULL, NULL, "set"},
        {"a b", "k", NULL, NULL, "set"},
        {SET, "", NULL, NULL, "key"},
        {SET, "a\nb", NULL, NULL, "key"},
        {SET, "\xff\xfe", NULL, NULL, "key"},
        {SET, longkey, NULL, NULL, "key"},
        {SET, "k", "no spaces", NULL, "tag"},
        {SET, "k", NULL, "[1]", "value"},
        {SET, "k", NULL, "{\"a\":1,\"a\":2}", "value"},
        {SET, "k", NULL, "{", "value"},
        {SET, "k", NULL, big, "value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_RC(ob_record_put(e, bad[i].set, bad[i].key, bad[i].tag, bad[i].value, NULL, &p),
                  OB_EINVAL);
        ASSERT_STREQ(p.field, bad[i].field);
    }
    longkey[OB_RECORD_KEY_MAX] = '\0'; /* the longest key is taken */
    ASSERT_OK(ob_record_put(e, SET, longkey, NULL, NULL, NULL, &p));
    ob_record *v;
    size_t n;
    ASSERT_OK(ob_record_list(e, &(ob_record_filter){.set = SET}, &v, &n));
    ASSERT_EQ(n, 1);
    ob_record_list_free(v, n);
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(a_record_is_put_replaced_read_and_deleted),
    T(listings_are_in_bytewise_key_order_paged_and_filtered),
    T(records_survive_a_reopen),
    T(subscribers_hear_each_committed_change_in_order),
    T(bad_records_are_refused_naming_the_member),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
