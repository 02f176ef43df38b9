/*
 * cron.c - cron expressions (outbox/cron.h): a parser into bit sets, one
 * per field, and the search for the next time they name.
 *
 * The search walks local wall-clock time, "naive" seconds that count as if
 * the zone were UTC, field by field: a month that does not match jumps to
 * the next month's first second, a day to the next midnight, an hour to
 * the next hour, a minute to the next minute, a second to the next second
 * the set holds. A local time that matches is then placed on the real
 * timeline by GLib's time zone (GTimeZone, from tzdata):
 *   - where the local time exists once, that instant;
 *   - where it exists twice (the clocks fell back), the earlier one; the
 *     search goes on past an instant that is not after `after`, so the
 *     second pass of a repeated hour makes no tick;
 *   - where it does not exist (the clocks sprang forward), the instant of
 *     the jump (g_time_zone_adjust_time moves it to the first local time
 *     after the gap); every tick in the gap lands there, as one.
 * The search gives up after eight years of local time (February 30th
 * never comes; a leap day every four years does).
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "outbox/cron.h"

struct ob_cron {
    uint64_t sec, min;  /* bit n: second or minute n */
    uint32_t hour, dom; /* bit n: hour n; day of month n (1..31) */
    uint16_t mon;       /* bit n: month n (1..12) */
    uint8_t dow;        /* bit n: day of week n (0: Sunday) */
    bool dom_star, dow_star;
    GTimeZone *tz;
};

/* ---- civil dates (proleptic Gregorian), on days since 1970-01-01 ---- */

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                  /* 0..399 */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* 0..365, from March */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* 0..146096 */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ---- parsing ---- */

typedef struct field {
    const char *name;
    int lo, hi;
    const char *const *names; /* three-letter names from `lo`, or NULL */
} field;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field fields[6] = {
    {"second", 0, 59, NULL},        {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},          {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names},  {"day of week", 0, 7, day_names},
};

/* A number or (where the field has them) a name at *s; advances *s. */
static bool value(const char **s, const field *f, int *out)
{
    const char *p = *s;
    if (*p >= '0' && *p <= '9') {
        long v = 0;
        while (*p >= '0' && *p <= '9' && v < 1000)
            v = v * 10 + (*p++ - '0');
        *out = (int)v;
        *s = p;
        return true;
    }
    for (int i = 0; f->names && f->names[i]; i++)
        if (strncasecmp(p, f->names[i], 3) == 0) {
            *out = f->lo + i;
            *s = p + 3;
            return true;
        }
    return false;
}

#define BAD(...) obi_problem(p, OB_EINVAL, "cron", __VA_ARGS__)

/* One field's text (NUL-terminated) into the bit set *bits. */
static int parse_field(const char *text, int k, uint64_t *bits, ob_problem *p)
{
    const field *f = &fields[k];
    const char *s = text;
    *bits = 0;
    for (;;) {
        int lo, hi, step = 1;
        if (*s == '*') {
            lo = f->lo, hi = f->hi;
            s++;
        } else {
            if (!value(&s, f, &lo))
                return BAD("the %s field: \"%s\" is not a value, range or *", f->name, text);
            hi = lo;
            if (*s == '-') {
                s++;
                if (!value(&s, f, &hi))
                    return BAD("the %s field: a range needs an end: \"%s\"", f->name, text);
            } else if (*s == '/') {
                hi = f->hi; /* a/n: from a to the end */
            }
            if (lo < f->lo || hi > f->hi || lo > hi)
                return BAD("the %s field: %d-%d is not within %d-%d", f->name, lo, hi, f->lo,
                           f->hi);
        }
        if (*s == '/') {
            s++;
            int n;
            if (!value(&s, &(field){f->name, 0, 0, NULL}, &n) || n < 1 || n > f->hi - f->lo + 1)
                return BAD("the %s field: a step is 1-%d", f->name, f->hi - f->lo + 1);
            step = n;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << (k == 5 && v == 7 ? 0 : v); /* Sunday is 0 and 7 */
        if (*s == '\0')
            return 0;
        if (*s++ != ',' || *s == '\0')
            return BAD("the %s field: \"%s\" is not a list of values, ranges or *", f->name,
                       text);
    }
}

static const struct {
    const char *name, *expr;
} shorthands[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* A zone name that GLib reads from tzdata: an IANA name, not a path. */
static bool zone_name_ok(const char *tz)
{
    size_t n = strlen(tz);
    if (n == 0 || n > 64 || tz[0] == '/' || strstr(tz, ".."))
        return false;
    return strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") == n;
}

static int parse_fields(const char *expr, ob_cron *c, ob_problem *p)
{
    char buf[OB_CRON_MAX + 1], *f[7];
    snprintf(buf, sizeof buf, "%s", expr);
    int n = 0;
    for (char *save, *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (n < 7)
            f[n++] = t;
    if (n != 5 && n != 6)
        return BAD("five fields (minute hour day-of-month month day-of-week), or six with "
                   "seconds first, or a shorthand such as @daily; got %d", n);
    uint64_t bits[6];
    int rc, first = n == 5 ? 1 : 0;
    bits[0] = 1; /* five fields: second 0 */
    for (int k = first; k < 6; k++)
        if ((rc = parse_field(f[k - first], k, &bits[k], p)))
            return rc;
    c->sec = bits[0], c->min = bits[1];
    c->hour = (uint32_t)bits[2], c->dom = (uint32_t)bits[3];
    c->mon = (uint16_t)bits[4], c->dow = (uint8_t)bits[5];
    c->dom_star = f[3 - first][0] == '*';
    c->dow_star = f[5 - first][0] == '*';
    return 0;
}

int ob_cron_parse(const char *expr, const char *tz, ob_cron **out, ob_problem *p)
{
    if (!expr || !out)
        return BAD("no expression");
    *out = NULL;
    size_t n = strlen(expr);
    if (n == 0 || n > OB_CRON_MAX)
        return BAD("an expression is 1-%d bytes", OB_CRON_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)expr[i] < 0x20 || (unsigned char)expr[i] > 0x7e) {
            if (expr[i] != '\t')
                return BAD("printable ASCII only");
        }
    if (!tz || !*tz)
        tz = "UTC";
    if (!zone_name_ok(tz))
        return obi_problem(p, OB_EINVAL, "timezone", "an IANA time zone name such as "
                                                      "Europe/Berlin or UTC");
    if (expr[0] == '@') {
        const char *full = NULL;
        for (size_t i = 0; i < sizeof shorthands / sizeof *shorthands; i++)
            if (strcasecmp(expr, shorthands[i].name) == 0)
                full = shorthands[i].expr;
        if (!full)
            return BAD("the shorthands are @yearly, @annually, @monthly, @weekly, @daily, "
                       "@midnight and @hourly");
        expr = full;
    }
    ob_cron *c = calloc(1, sizeof *c);
    if (!c)
        return obi_problem(p, OB_ENOMEM, "", "out of memory");
    int rc = parse_fields(expr, c, p);
    if (!rc && !(c->tz = g_time_zone_new_identifier(tz)))
        rc = obi_problem(p, OB_EINVAL, "timezone", "unknown time zone \"%s\" (tzdata names "
                                                   "such as Europe/Berlin)", tz);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void ob_cron_free(ob_cron *c)
{
    if (!c)
        return;
    g_time_zone_unref(c->tz);
    free(c);
}

/* ---- the next time ---- */

static bool day_matches(const ob_cron *c, int d, int wday)
{
    bool dom = c->dom >> d & 1, dow = c->dow >> wday & 1;
    return c->dom_star || c->dow_star ? dom && dow : dom || dow;
}

/* The instant of naive local time L (see the file's comment). */
static int64_t to_utc(GTimeZone *tz, int64_t L)
{
    int a = g_time_zone_find_interval(tz, G_TIME_TYPE_STANDARD, L);
    int b = g_time_zone_find_interval(tz, G_TIME_TYPE_DAYLIGHT, L);
    if (a < 0 && b < 0) {
        gint64 t = L;
        int i = g_time_zone_adjust_time(tz, G_TIME_TYPE_STANDARD, &t);
        return t - g_time_zone_get_offset(tz, i);
    }
    int64_t ua = a >= 0 ? L - g_time_zone_get_offset(tz, a) : INT64_MAX;
    int64_t ub = b >= 0 ? L - g_time_zone_get_offset(tz, b) : INT64_MAX;
    return ua < ub ? ua : ub;
}

/* The first set bit of `bits` at or above `from`, or -1. */
static int next_bit(uint64_t bits, int from)
{
    if (from > 63)
        return -1;
    uint64_t rest = bits >> from;
    return rest ? from + __builtin_ctzll(rest) : -1;
}

int ob_cron_next(const ob_cron *c, int64_t after_ms, int64_t *next_ms)
{
    int64_t after = floor_div(after_ms, 1000);
    int64_t t = after + 1;
    int i = g_time_zone_find_interval(c->tz, G_TIME_TYPE_UNIVERSAL, t);
    int64_t L = t + g_time_zone_get_offset(c->tz, i), end = L + 8 * 366 * 86400LL;
    while (L <= end) {
        int64_t days = floor_div(L, 86400), secs = L - days * 86400, y;
        int m, d, wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        civil_from_days(days, &y, &m, &d);
        int h = (int)(secs / 3600), mi = (int)(secs / 60 % 60), s = (int)(secs % 60);
        if (!(c->mon >> m & 1)) {
            L = days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400;
        } else if (!day_matches(c, d, wday)) {
            L = (days + 1) * 86400;
        } else if (!(c->hour >> h & 1)) {
            L = floor_div(L, 3600) * 3600 + 3600;
        } else if (!(c->min >> mi & 1)) {
            L = floor_div(L, 60) * 60 + 60;
        } else if ((s = next_bit(c->sec, s)) < 0) {
            L = floor_div(L, 60) * 60 + 60;
        } else {
            L = floor_div(L, 60) * 60 + s;
            int64_t u = to_utc(c->tz, L);
            if (u > after) {
                *next_ms = u * 1000;
                return 0;
            }
            L++; /* an earlier occurrence of a repeated local time: on */
        }
    }
    return OB_ENOTFOUND;
}
