/*
 * test_cron.c - cron expressions (src/jobs/cron.c): what parses and what is
 * refused naming the field, the next times in UTC, Vixie's day rule, and
 * daylight saving in Europe/Berlin and America/New_York — the skipped hour
 * runs once at the jump, the repeated hour never runs twice.
 */
#include <string.h>

#include "helpers.h"
#include "outbox/cron.h"

/* "2026-03-29T01:00:00Z" in ms. */
static int64_t at(const char *rfc3339)
{
    int64_t ms;
    if (ob_time_parse(rfc3339, &ms))
        test_fail(__FILE__, __LINE__, "bad time %s", rfc3339);
    return ms;
}

TEST(cron_expressions_are_refused_naming_what_is_wrong)
{
    static const struct {
        const char *expr, *tz, *field, *says;
    } cases[] = {
        {"", NULL, "cron", "1-256 bytes"},
        {"* * * *", NULL, "cron", "five fields"},
        {"* * * * * * *", NULL, "cron", "got 7"},
        {"60 * * * *", NULL, "cron", "minute field: 60-60 is not within 0-59"},
        {"* 24 * * *", NULL, "cron", "hour field"},
        {"* * 0 * *", NULL, "cron", "day of month field"},
        {"* * * 13 *", NULL, "cron", "month field"},
        {"* * * * 8", NULL, "cron", "day of week field"},
        {"* * * * mon-", NULL, "cron", "a range needs an end"},
        {"5-1 * * * *", NULL, "cron", "5-1 is not within"},
        {"*/0 * * * *", NULL, "cron", "a step is 1-60"},
        {"1,,2 * * * *", NULL, "cron", "not a value"},
        {"1, * * * *", NULL, "cron", "not a list"},
        {"x * * * *", NULL, "cron", "not a value"},
        {"* * * foo *", NULL, "cron", "month field"},
        {"@reboot", NULL, "cron", "shorthands"},
        {"* * * * *\n", NULL, "cron", "printable"},
        {"* * * * *", "Mars/Olympus", "timezone", "unknown time zone"},
        {"* * * * *", "/etc/passwd", "timezone", "IANA"},
        {"* * * * *", "../../etc/localtime", "timezone", "IANA"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ob_cron *c = NULL;
        ob_problem p = {"", ""};
        int rc = ob_cron_parse(cases[i].expr, cases[i].tz, &c, &p);
        if (rc != OB_EINVAL || strcmp(p.field, cases[i].field) || !strstr(p.message, cases[i].says))
            test_fail(__FILE__, __LINE__, "\"%s\": rc %d, %s: %s", cases[i].expr, rc, p.field,
                      p.message);
    }
}

/* Each case: the expression, its zone, `after`, and the next times. */
typedef struct next_case {
    const char *what, *expr, *tz, *after;
    const char *next[4]; /* up to 4, NULL-terminated */
} next_case;

static void run_next(const next_case *t)
{
    ob_cron *c;
    ob_problem p;
    if (ob_cron_parse(t->expr, t->tz, &c, &p))
        test_fail(__FILE__, __LINE__, "%s: %s", t->what, p.message);
    int64_t from = at(t->after);
    for (int k = 0; k < 4 && t->next[k]; k++) {
        int64_t n;
        char got[32];
        if (ob_cron_next(c, from, &n) || n != at(t->next[k]))
            test_fail(__FILE__, __LINE__, "%s: tick %d: want %s, got %s", t->what, k + 1,
                      t->next[k], ob_time_format(n, got));
        from = n;
    }
    ob_cron_free(c);
}

TEST(next_times_follow_each_field_in_utc)
{
    static const next_case cases[] = {
        {"every 15 minutes", "*/15 * * * *", NULL, "2026-12-07T10:07:30Z",
         {"2026-12-07T10:15:00Z", "2026-12-07T10:30:00Z", "2026-12-07T10:45:00Z", "2026-12-07T11:00:00Z"}},
        {"exclusive of after", "0 * * * *", "UTC", "2026-12-07T10:00:00Z", {"2026-12-07T11:00:00Z"}},
        {"six fields: every 10 s", "*/10 * * * * *", NULL, "2026-12-07T10:00:05.500Z",
         {"2026-12-07T10:00:10Z", "2026-12-07T10:00:20Z"}},
        {"a list and a range", "0 9-10,17 * * *", NULL, "2026-12-07T10:30:00Z",
         {"2026-12-07T17:00:00Z", "2026-12-08T09:00:00Z", "2026-12-08T10:00:00Z"}},
        {"month and day names", "0 12 1 jan,JUL *", NULL, "2026-12-07T00:00:00Z",
         {"2027-01-01T12:00:00Z", "2027-07-01T12:00:00Z"}},
        {"weekdays by name, Sunday as 7", "0 8 * * mon-fri,7", NULL, "2026-12-11T09:00:00Z",
         {"2026-12-13T08:00:00Z", "2026-12-14T08:00:00Z"}},
        {"Vixie: the 13th or a Friday", "0 0 13 * fri", NULL, "2026-12-07T00:00:00Z",
         {"2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z", "2026-12-18T00:00:00Z"}},
        {"Vixie: day of week * leaves the 13th", "0 0 13 * *", NULL, "2026-12-07T00:00:00Z",
         {"2026-12-13T00:00:00Z", "2027-01-13T00:00:00Z"}},
        {"Vixie: */2 in day of month counts as *", "0 0 */2 * fri", NULL, "2026-12-07T00:00:00Z",
         {"2026-12-11T00:00:00Z", "2026-12-25T00:00:00Z"}},
        {"a/n runs to the end", "0 20/2 * * *", NULL, "2026-12-07T00:00:00Z",
         {"2026-12-07T20:00:00Z", "2026-12-07T22:00:00Z", "2026-12-08T20:00:00Z"}},
        {"leap day", "0 0 29 2 *", NULL, "2026-12-07T00:00:00Z", {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
        {"@hourly", "@hourly", NULL, "2026-12-07T10:59:59Z", {"2026-12-07T11:00:00Z"}},
        {"@weekly: Sunday midnight", "@weekly", NULL, "2026-12-07T00:00:00Z", {"2026-12-13T00:00:00Z"}},
        {"a fixed zone", "0 9 * * *", "Asia/Kolkata", "2026-12-07T00:00:00Z", {"2026-12-07T03:30:00Z"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_next(&cases[i]);
    ob_cron *c;
    ASSERT_OK(ob_cron_parse("0 0 30 2 *", NULL, &c, NULL)); /* February 30th */
    int64_t n;
    ASSERT_RC(ob_cron_next(c, at("2026-01-01T00:00:00Z"), &n), OB_ENOTFOUND);
    ob_cron_free(c);
}

TEST(daylight_saving_skips_run_once_and_repeats_never_twice)
{
    static const next_case cases[] = {
        /* Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z */
        {"Berlin spring: 02:30 does not exist, runs at the jump", "30 2 * * *", "Europe/Berlin",
         "2026-03-28T12:00:00Z", {"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
        {"Berlin spring: the skipped hour's ticks run once", "*/15 2 * * *", "Europe/Berlin",
         "2026-03-28T23:00:00Z", {"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"}},
        {"Berlin spring: hourly is 01:00 CET, the jump once, 04:00 CEST", "0 * * * *", "Europe/Berlin",
         "2026-03-28T23:30:00Z", {"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
        /* Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00Z */
        {"Berlin autumn: 02:30 runs at its first occurrence only", "30 2 * * *", "Europe/Berlin",
         "2026-10-24T12:00:00Z", {"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
        {"Berlin autumn: the repeated hour has no ticks of its own", "0,30 * * * *", "Europe/Berlin",
         "2026-10-25T00:45:00Z", {"2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z"}},
        /* New York, 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00Z */
        {"New York spring", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
         {"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
        /* New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST at 06:00Z */
        {"New York autumn", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
         {"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
        {"New York autumn, every 20 minutes", "*/20 * * * *", "America/New_York",
         "2026-11-01T05:50:00Z", {"2026-11-01T07:00:00Z", "2026-11-01T07:20:00Z"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_next(&cases[i]);
}

static const test_case tests[] = {
    T(cron_expressions_are_refused_naming_what_is_wrong),
    T(next_times_follow_each_field_in_utc),
    T(daylight_saving_skips_run_once_and_repeats_never_twice),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
