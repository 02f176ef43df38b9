/*
 * clock.c - wall and monotonic clocks. Job times are wall-clock
 * milliseconds (they are stored and shown); waits use the monotonic clock
 * so that a wall-clock step neither shortens nor stretches them.
 */
#include <time.h>

#include "base/base.h"

int64_t ob_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ob_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t obi_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timespec ob_mono_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms < 0)
        ms = 0;
    if (ms > (int64_t)365 * 24 * 3600 * 1000)
        ms = (int64_t)365 * 24 * 3600 * 1000;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int ob_cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a))
        return OB_ENOMEM;
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return rc ? OB_ENOMEM : 0;
}

char *ob_time_format(int64_t ms, char out[32])
{
    if (ms < 0)
        ms = 0;
    if (ms > 253402300799999) /* 9999-12-31T23:59:59.999Z */
        ms = 253402300799999;
    time_t s = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    out[n] = '.';
    out[n + 1] = (char)('0' + frac / 100);
    out[n + 2] = (char)('0' + frac / 10 % 10);
    out[n + 3] = (char)('0' + frac % 10);
    out[n + 4] = 'Z';
    out[n + 5] = '\0';
    return out;
}

/* Read exactly n digits at *p. -1 if they are not there. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

static int64_t days_from_civil(int y, int m, int d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic
     * Gregorian date. */
    y -= m <= 2;
    int era = y / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

int ob_time_parse(const char *s, int64_t *ms)
{
    if (!s || !ms)
        return OB_EINVAL;
    const char *p = s;
    int y = digits(&p, 4);
    if (y < 1970 || *p++ != '-')
        return OB_EINVAL;
    int mo = digits(&p, 2);
    if (mo < 1 || mo > 12 || *p++ != '-')
        return OB_EINVAL;
    int d = digits(&p, 2);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return OB_EINVAL;
    if (*p != 'T' && *p != 't')
        return OB_EINVAL;
    p++;
    int h = digits(&p, 2);
    if (h < 0 || h > 23 || *p++ != ':')
        return OB_EINVAL;
    int mi = digits(&p, 2);
    if (mi < 0 || mi > 59 || *p++ != ':')
        return OB_EINVAL;
    int sec = digits(&p, 2);
    if (sec < 0 || sec > 60) /* 60: a leap second, read as :59.999 */
        return OB_EINVAL;
    int frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return OB_EINVAL;
        for (; n < 3; n++)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = digits(&p, 2);
        if (oh < 0 || oh > 23 || *p++ != ':')
            return OB_EINVAL;
        int om = digits(&p, 2);
        if (om < 0 || om > 59)
            return OB_EINVAL;
        off = sign * ((int64_t)oh * 60 + om) * 60 * 1000;
    } else {
        return OB_EINVAL;
    }
    if (*p)
        return OB_EINVAL;
    if (sec == 60) {
        sec = 59;
        frac = 999;
    }
    int64_t t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
    t = t * 1000 + frac - off;
    if (t < 0)
        return OB_EINVAL;
    *ms = t;
    return 0;
}
