/*
 * fuzz_cron.c - libFuzzer target over cron expressions and time zones
 * (src/jobs/cron.c). The first byte picks a zone (among them ones with
 * 30-minute daylight saving and odd offsets), the next eight a start time
 * between 1970 and 2200, the rest is the expression. Properties, not just
 * "no crash": what parses gives times strictly after their start, each
 * next one strictly after the one before, within the eight years the
 * search is bounded by, and the same answer when asked again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const zones[] = {"UTC", "Europe/Berlin", "America/New_York",
                                    "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham",
                                    "America/Santiago", "", "Nope/Nowhere", "../etc"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9 || size > 9 + OB_CRON_MAX + 8)
        return 0;
    const char *tz = zones[data[0] % (sizeof zones / sizeof *zones)];
    uint64_t r;
    memcpy(&r, data + 1, 8);
    int64_t after = (int64_t)(r % (7258118400000ULL)); /* 1970 .. 2200, ms */
    char expr[OB_CRON_MAX + 16];
    memcpy(expr, data + 9, size - 9);
    expr[size - 9] = '\0';
    ob_cron *c;
    ob_problem p;
    if (ob_cron_parse(expr, tz, &c, &p)) {
        if (!p.message[0])
            abort(); /* every refusal says why */
        return 0;
    }
    int64_t prev = after;
    for (int i = 0; i < 3; i++) {
        int64_t n, again;
        if (ob_cron_next(c, prev, &n))
            break;
        if (n <= prev || n - prev > 8LL * 366 * 86400 * 1000 + 86400 * 1000 || n % 1000)
            abort();
        if (ob_cron_next(c, prev, &again) || again != n)
            abort();
        prev = n;
    }
    ob_cron_free(c);
    return 0;
}
