/*
 * test_base.c - the pieces under the engine, tested alone: ids, random
 * bytes, UTF-8, scrubbed text, time formatting, backoff, and the
 * life-cycle transition table.
 */
#include <errno.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "jobs/jobs.h"
#include "test.h"

TEST(id_format_and_parse_round_trip)
{
    obi_idgen g = {0};
    for (int i = 0; i < 1000; i++) {
        ob_id a, b;
        obi_idgen_next(&g, &a);
        char s[OB_ID_STRLEN + 1];
        ob_id_format(&a, s);
        ASSERT_EQ(strlen(s), 36);
        ASSERT_OK(ob_id_parse(s, &b));
        ASSERT(memcmp(a.b, b.b, 16) == 0);
    }
    ob_id x;
    ASSERT_OK(ob_id_parse("0192F7D2-8C1E-7B3A-9F00-5E2D1C3B4A59", &x)); /* upper case */
    const char *bad[] = {"", "0192f7d2", "0192f7d2-8c1e-7b3a-9f00-5e2d1c3b4a5",
                         "0192f7d2-8c1e-7b3a-9f00-5e2d1c3b4a590", "0192f7d2x8c1e-7b3a-9f00-5e2d1c3b4a59",
                         "0192f7d2-8c1e-7b3a-9f00-5e2d1c3b4a5g", "{192f7d2-8c1e-7b3a-9f00-5e2d1c3b4a59"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_RC(ob_id_parse(bad[i], &x), OB_EINVAL);
    ASSERT_RC(ob_id_parse(NULL, &x), OB_EINVAL);
}

TEST(ids_increase_within_a_millisecond_and_across_clock_steps)
{
    obi_idgen g = {0};
    ob_id prev;
    obi_idgen_next(&g, &prev);
    for (int i = 0; i < 100000; i++) { /* far more than 4096 per ms: borrows ms */
        ob_id id;
        obi_idgen_next(&g, &id);
        ASSERT(memcmp(prev.b, id.b, 16) < 0);
        prev = id;
    }
    g.last_ms += 3600 * 1000; /* as if the clock stepped back an hour */
    ob_id later;
    obi_idgen_next(&g, &later);
    ASSERT(memcmp(prev.b, later.b, 16) < 0);
}

TEST(utf8_check_refuses_truncated_overlong_surrogate_out_of_range_and_nul)
{
    ASSERT(ob_utf8_valid("plain", 5));
    ASSERT(ob_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    ASSERT(!ob_utf8_valid("\xc3", 1));             /* truncated */
    ASSERT(!ob_utf8_valid("\xc0\xaf", 2));         /* overlong */
    ASSERT(!ob_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    ASSERT(!ob_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    ASSERT(!ob_utf8_valid("a\0b", 3));             /* NUL */
    ASSERT(!ob_utf8_valid("\xff", 1));
}

TEST(utf8_clean_dup_cuts_at_characters_and_replaces_bad_bytes)
{
    char *s = obi_utf8_clean_dup("ab\xff" "c", 100);
    ASSERT_STREQ(s, "ab?c");
    free(s);
    s = obi_utf8_clean_dup("\xe2\x82\xac\xe2\x82\xac", 4); /* cut inside the 2nd euro */
    ASSERT_STREQ(s, "\xe2\x82\xac");
    free(s);
    s = obi_utf8_clean_dup("hello", 3);
    ASSERT_STREQ(s, "hel");
    free(s);
}

TEST(time_format_is_rfc3339_utc)
{
    char b[32];
    ASSERT_STREQ(ob_time_format(0, b), "1970-01-01T00:00:00.000Z");
    ASSERT_STREQ(ob_time_format(1795579200123LL, b), "2026-11-25T04:00:00.123Z");
    ASSERT_STREQ(ob_time_format(-5, b), "1970-01-01T00:00:00.000Z");
    ASSERT_STREQ(ob_time_format(INT64_MAX, b), "9999-12-31T23:59:59.999Z");
}

TEST(time_parse_is_rfc3339)
{
    int64_t ms;
    ASSERT_OK(ob_time_parse("2026-11-25T04:00:00.123Z", &ms));
    ASSERT_EQ(ms, 1795579200123LL);
    ASSERT_OK(ob_time_parse("2026-11-25T05:30:00+01:30", &ms));
    ASSERT_EQ(ms, 1795579200000LL);
    ASSERT_OK(ob_time_parse("2026-11-24T23:00:00.5-05:00", &ms));
    ASSERT_EQ(ms, 1795579200500LL);
    ASSERT_OK(ob_time_parse("1970-01-01T00:00:00Z", &ms));
    ASSERT_EQ(ms, 0);
    ASSERT_OK(ob_time_parse("2024-02-29T00:00:00Z", &ms));
    char b[32];
    for (int64_t t = 0; t < 253402300799999LL; t += 86400000LL * 367 + 3723456) {
        ASSERT_OK(ob_time_parse(ob_time_format(t, b), &ms)); /* round trip */
        ASSERT_EQ(ms, t);
    }
    const char *bad[] = {"", "2026-11-25", "2026-11-25 04:00:00Z", "2026-13-01T00:00:00Z",
                         "2023-02-29T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T04:00:00",
                         "2026-11-25T04:00:00.Z", "2026-11-25T04:00:00Zjunk", "1969-12-31T23:59:59Z",
                         "2026-11-25T04:00:00+1:00", "x026-11-25T04:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ob_time_parse(bad[i], &ms) != OB_EINVAL)
            test_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
}

TEST(names_are_bounded_and_plain)
{
    ASSERT(ob_name_valid("mail.send"));
    ASSERT(ob_name_valid("a-b_c.9"));
    ASSERT(!ob_name_valid(""));
    ASSERT(!ob_name_valid(NULL));
    ASSERT(!ob_name_valid("has space"));
    ASSERT(!ob_name_valid("new\nline"));
    ASSERT(!ob_name_valid("\xc3\xa9"));
    char n[OB_NAME_MAX + 2];
    memset(n, 'a', sizeof n);
    n[OB_NAME_MAX] = '\0';
    ASSERT(ob_name_valid(n));
    n[OB_NAME_MAX] = 'a';
    n[OB_NAME_MAX + 1] = '\0';
    ASSERT(!ob_name_valid(n));
}

TEST(state_names_round_trip)
{
    for (int s = OB_STATE_MIN; s <= OB_STATE_MAX; s++) {
        ob_state back;
        ASSERT_OK(ob_state_parse(ob_state_name(s), &back));
        ASSERT_EQ(back, s);
    }
    ob_state x;
    ASSERT_RC(ob_state_parse("finished", &x), OB_EINVAL);
    ASSERT_STREQ(ob_state_name(0), "unknown");
    ASSERT(ob_state_is_final(OB_COMPLETED) && ob_state_is_final(OB_CANCELLED));
    ASSERT(!ob_state_is_final(OB_RUNNING) && !ob_state_is_final(0));
}

TEST(backoff_grows_exponentially_to_its_cap_with_bounded_jitter)
{
    ob_backoff b = {.base_ms = 1000, .factor = 2.0, .max_ms = 60000, .jitter = 0};
    ASSERT_EQ(obi_backoff_delay(&b, 1), 1000);
    ASSERT_EQ(obi_backoff_delay(&b, 2), 2000);
    ASSERT_EQ(obi_backoff_delay(&b, 5), 16000);
    ASSERT_EQ(obi_backoff_delay(&b, 7), 60000);
    ASSERT_EQ(obi_backoff_delay(&b, 1000), 60000); /* no overflow */
    b.jitter = 0.2;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d = obi_backoff_delay(&b, 3);
        ASSERT(d >= 3200 && d <= 4800);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    ASSERT(lo < 3500 && hi > 4500); /* it does spread */
}

/* ---- the life-cycle table ---- */

typedef struct lc_case {
    const char *name;
    ob_state state;
    int attempt, max_attempts;
    bool cancel_requested;
    lc_event ev;
    int ev_attempt;
    int want;          /* 1 change, 0 none, or an error */
    ob_state to;
    int to_attempt;
    bool error_kept;
} lc_case;

static const lc_case lc_cases[] = {
    {"done completes", OB_RUNNING, 1, 3, false, LC_DONE, 1, 1, OB_COMPLETED, 1, false},
    {"done wins over cancel", OB_RUNNING, 1, 3, true, LC_DONE, 1, 1, OB_COMPLETED, 1, false},
    {"retry with attempts left", OB_RUNNING, 1, 3, false, LC_RETRY, 1, 1, OB_RETRYABLE, 1, true},
    {"retry on the last attempt", OB_RUNNING, 3, 3, false, LC_RETRY, 3, 1, OB_DISCARDED, 3, true},
    {"retry after cancel asked", OB_RUNNING, 1, 3, true, LC_RETRY, 1, 1, OB_CANCELLED, 1, true},
    {"discard", OB_RUNNING, 1, 3, false, LC_DISCARD, 1, 1, OB_DISCARDED, 1, true},
    {"snooze gives the attempt back", OB_RUNNING, 2, 3, false, LC_SNOOZE, 2, 1, OB_SCHEDULED, 1, false},
    {"snooze after cancel asked", OB_RUNNING, 2, 3, true, LC_SNOOZE, 2, 1, OB_CANCELLED, 2, false},
    {"rescue with attempts left", OB_RUNNING, 1, 3, false, LC_RESCUE, 1, 1, OB_AVAILABLE, 1, true},
    {"rescue of the last attempt", OB_RUNNING, 3, 3, false, LC_RESCUE, 3, 1, OB_DISCARDED, 3, true},
    {"rescue after cancel asked", OB_RUNNING, 1, 3, true, LC_RESCUE, 1, 1, OB_CANCELLED, 1, true},
    {"release gives the attempt back", OB_RUNNING, 1, 3, false, LC_RELEASE, 1, 1, OB_AVAILABLE, 0, false},
    {"stale answer", OB_RUNNING, 2, 3, false, LC_DONE, 1, OB_ESTATE, 0, 0, false},
    {"answer to a job no longer running", OB_AVAILABLE, 1, 3, false, LC_DONE, 1, OB_ESTATE, 0, 0, false},
    {"cancel scheduled", OB_SCHEDULED, 0, 3, false, LC_CANCEL, 0, 1, OB_CANCELLED, 0, false},
    {"cancel available", OB_AVAILABLE, 0, 3, false, LC_CANCEL, 0, 1, OB_CANCELLED, 0, false},
    {"cancel retryable", OB_RETRYABLE, 1, 3, false, LC_CANCEL, 0, 1, OB_CANCELLED, 1, false},
    {"cancel running asks", OB_RUNNING, 1, 3, false, LC_CANCEL, 0, 1, OB_RUNNING, 1, false},
    {"cancel running twice", OB_RUNNING, 1, 3, true, LC_CANCEL, 0, 0, OB_RUNNING, 1, false},
    {"cancel cancelled", OB_CANCELLED, 0, 3, false, LC_CANCEL, 0, 0, OB_CANCELLED, 0, false},
    {"cancel completed", OB_COMPLETED, 1, 3, false, LC_CANCEL, 0, OB_ESTATE, 0, 0, false},
    {"cancel discarded", OB_DISCARDED, 3, 3, false, LC_CANCEL, 0, OB_ESTATE, 0, 0, false},
    {"requeue discarded", OB_DISCARDED, 3, 3, false, LC_REQUEUE, 0, 1, OB_AVAILABLE, 3, false},
    {"requeue cancelled", OB_CANCELLED, 0, 3, false, LC_REQUEUE, 0, 1, OB_AVAILABLE, 0, false},
    {"requeue scheduled", OB_SCHEDULED, 0, 3, false, LC_REQUEUE, 0, 1, OB_AVAILABLE, 0, false},
    {"requeue retryable", OB_RETRYABLE, 1, 3, false, LC_REQUEUE, 0, 1, OB_AVAILABLE, 1, false},
    {"requeue available", OB_AVAILABLE, 0, 3, false, LC_REQUEUE, 0, 0, OB_AVAILABLE, 0, false},
    {"requeue running", OB_RUNNING, 1, 3, false, LC_REQUEUE, 0, OB_ESTATE, 0, 0, false},
    {"requeue completed", OB_COMPLETED, 1, 3, false, LC_REQUEUE, 0, OB_ESTATE, 0, 0, false},
};

TEST(every_life_cycle_transition_decides_as_the_table_says)
{
    ob_backoff b = {.base_ms = 1000, .factor = 2, .max_ms = 10000, .jitter = 0};
    ob_id id = {{1}};
    for (size_t i = 0; i < sizeof lc_cases / sizeof *lc_cases; i++) {
        const lc_case *t = &lc_cases[i];
        store_row row = {.state = t->state, .attempt = t->attempt, .max_attempts = t->max_attempts,
                         .run_at = 5, .cancel_requested = t->cancel_requested};
        lc_input in = {.ev = t->ev, .attempt = t->ev_attempt, .delay_ms = -1, .error = "boom"};
        store_change c;
        int got = obi_lifecycle_decide(&row, &id, &in, &b, 10, 100000, &c);
        if (got != t->want)
            test_fail(__FILE__, __LINE__, "%s: decide %d, want %d", t->name, got, t->want);
        if (got != 1)
            continue;
        if (c.to != t->to || c.attempt != t->to_attempt || (c.error != NULL) != t->error_kept)
            test_fail(__FILE__, __LINE__, "%s: -> %s attempt %d error %s", t->name,
                      ob_state_name(c.to), c.attempt, c.error ? c.error : "-");
        ASSERT_EQ(c.from, t->state);
        ASSERT_EQ(c.from_attempt, t->attempt);
        ASSERT_EQ(c.finished_at != 0, ob_state_is_final(c.to));
        if (c.to == OB_RETRYABLE)
            ASSERT_EQ(c.run_at, 100000 + 1000 * (1 << (t->attempt - 1)));
        if (t->ev == LC_REQUEUE)
            ASSERT(c.max_attempts >= c.attempt + 1);
    }
}

TEST(retry_delay_from_handler_overrides_backoff)
{
    ob_backoff b = {.base_ms = 1000, .factor = 2, .max_ms = 10000, .jitter = 0};
    ob_id id = {{1}};
    store_row row = {.state = OB_RUNNING, .attempt = 1, .max_attempts = 3};
    lc_input in = {.ev = LC_RETRY, .attempt = 1, .delay_ms = 0, .error = "x"};
    store_change c;
    ASSERT_EQ(obi_lifecycle_decide(&row, &id, &in, &b, 10, 500, &c), 1);
    ASSERT_EQ(c.run_at, 500);
}

/* ---- random bytes: retried on EINTR, never replaced by weaker ones ---- */

static int interrupted;

static ssize_t interrupted_twice(void *buf, size_t n, unsigned flags)
{
    if (interrupted++ < 2) {
        errno = EINTR;
        return -1;
    }
    return getrandom(buf, n < 5 ? n : 5, flags); /* short reads too */
}

static ssize_t no_getrandom(void *buf, size_t n, unsigned flags)
{
    (void)buf, (void)n, (void)flags;
    errno = ENOSYS;
    return -1;
}

TEST(random_bytes_retry_interruptions_and_never_fall_back)
{
    unsigned char a[32] = {0}, zero[32] = {0};
    obi_getrandom_hook = interrupted_twice;
    ob_random_bytes(a, sizeof a);
    ASSERT(interrupted >= 2 && memcmp(a, zero, sizeof a) != 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* a failure other than EINTR: no clock bytes, the process stops */
        obi_getrandom_hook = no_getrandom;
        ob_random_bytes(a, sizeof a);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    obi_getrandom_hook = getrandom;
}

/* ---- text shown in logs and errors ---- */

TEST(scrubbed_text_has_no_control_characters_and_urls_no_secrets)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain text", "plain text"},
        {"a\nb\r\nc\td\x7f", "a\\x0ab\\x0d\\x0ac\\x09d\\x7f"},
        {"bad \xff\xfe utf-8, good \xc3\xa9", "bad \\xff\\xfe utf-8, good \xc3\xa9"},
        {"GET https://user:pw@example.com:8443/p/a?token=s3cret#frag failed",
         "GET https://example.com:8443/p/a failed"},
        {"postgres://outbox:secret@db:5432/outbox?password=x&sslmode=require",
         "postgres://db:5432/outbox"},
        {"\"http://a@b/c?d\" and ftp://h/x", "\"http://b/c\" and ftp://h/x"},
        {"no scheme ://u:p@h/x?y", "no scheme ://h/x"},
        {"sqlite:./outbox.db", "sqlite:./outbox.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[256];
        ob_scrub(cases[i].in, strlen(cases[i].in), out, sizeof out);
        ASSERT_STREQ(out, cases[i].out);
    }
    char tiny[7]; /* cut at a whole character or escape, NUL-terminated */
    ASSERT_EQ(ob_scrub("ab\ncd", 5, tiny, sizeof tiny), 6);
    ASSERT_STREQ(tiny, "ab\\x0a");
    ASSERT_EQ(ob_scrub("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, tiny, sizeof tiny), 6);
}

TEST(base64_is_strict_and_hex_reads_back)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: refused */
    } cases[] = {
        {"", ""},           {"Zg==", "f"},   {"Zm8=", "fo"},   {"Zm9v", "foo"},
        {"Zm9vYg==", "foob"}, {"Zh==", NULL}, {"Zm9=", NULL},   /* pad bits not zero */
        {"Zg=", NULL},      {"Zg", NULL},    {"Z===", NULL},   {"Zm 9v", NULL},
        {"Zm9v\n", NULL},   {"Z=g=", NULL},  {"Zm9v====", NULL}, {"Zm-v", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char bin[16];
        size_t n;
        int rc = ob_base64_decode(cases[i].in, strlen(cases[i].in), bin, &n);
        if (cases[i].out ? rc || n != strlen(cases[i].out) || memcmp(bin, cases[i].out, n)
                         : rc != OB_EINVAL)
            test_fail(__FILE__, __LINE__, "\"%s\": rc %d", cases[i].in, rc);
        char back[32];
        if (cases[i].out && (ob_base64_encode(bin, n, back) != strlen(cases[i].in) ||
                             strcmp(back, cases[i].in)))
            test_fail(__FILE__, __LINE__, "\"%s\" encodes back as \"%s\"", cases[i].in, back);
    }
    char hex[9];
    ASSERT_STREQ(ob_hex("\x00\x9f\xff\x10", 4, hex), "009fff10");
    ASSERT_EQ(ob_hex_digit('F'), 15);
    ASSERT_EQ(ob_hex_digit('g'), -1);
}

static const test_case tests[] = {
    T(base64_is_strict_and_hex_reads_back),
    T(random_bytes_retry_interruptions_and_never_fall_back),
    T(scrubbed_text_has_no_control_characters_and_urls_no_secrets),
    T(id_format_and_parse_round_trip),
    T(ids_increase_within_a_millisecond_and_across_clock_steps),
    T(utf8_check_refuses_truncated_overlong_surrogate_out_of_range_and_nul),
    T(utf8_clean_dup_cuts_at_characters_and_replaces_bad_bytes),
    T(time_format_is_rfc3339_utc),
    T(time_parse_is_rfc3339),
    T(names_are_bounded_and_plain),
    T(state_names_round_trip),
    T(backoff_grows_exponentially_to_its_cap_with_bounded_jitter),
    T(every_life_cycle_transition_decides_as_the_table_says),
    T(retry_delay_from_handler_overrides_backoff),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
