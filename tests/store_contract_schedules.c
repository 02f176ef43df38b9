/*
 * store_contract_schedules.c - cron schedules on either store (part of the
 * store contract suite): one job per tick, each carrying its schedule and
 * tick (in the job and in its event); a restart after downtime follows
 * `missed`; replaced, paused, resumed and deleted schedules; what
 * ob_schedule_set refuses. Several nodes with their leader killed:
 * test_cluster.c.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "helpers.h"

static void quick(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    ob_ctx_done(ctx, NULL);
}

static ob_engine *open_sched(void)
{
    ob_engine *e = h_open("jobs.db", NULL);
    ASSERT_OK(ob_engine_register(e, "tick", quick, NULL, NULL));
    return e;
}

static void set(ob_engine *e, const char *name, const char *cron, ob_missed missed)
{
    ob_schedule s = {.name = name, .cron = cron, .missed = missed,
                     .job = {.kind = "tick", .queue = "cron", .payload = "{}", .payload_len = 2}};
    ob_problem p;
    int rc = ob_schedule_set(e, &s, &p);
    if (rc)
        test_fail(__FILE__, __LINE__, "ob_schedule_set: %s: %s", p.field, p.message);
}

/* The ticks (ms) of schedule `name`'s jobs, sorted; *n of them. */
static int64_t *ticks_of(ob_engine *e, const char *name, int *n)
{
    int64_t *t = calloc(4096, sizeof *t);
    *n = 0;
    ob_list_filter f = {.kind = "tick", .limit = OB_LIST_MAX};
    ob_job_page *pg;
    char cursor[OB_CURSOR_MAX] = "";
    do {
        f.cursor = cursor[0] ? cursor : NULL;
        ASSERT_OK(ob_job_list(e, &f, &pg));
        for (size_t i = 0; i < pg->n; i++) {
            char s[OB_NAME_MAX + 1];
            int64_t tick;
            ASSERT(ob_job_schedule(pg->jobs[i], s, &tick));
            if (strcmp(s, name) == 0 && *n < 4096)
                t[(*n)++] = tick;
        }
        snprintf(cursor, sizeof cursor, "%s", pg->next_cursor);
        ob_job_page_free(pg);
    } while (cursor[0]);
    for (int i = 1; i < *n; i++) /* insertion sort: few */
        for (int k = i; k > 0 && t[k - 1] > t[k]; k--) {
            int64_t x = t[k];
            t[k] = t[k - 1];
            t[k - 1] = x;
        }
    return t;
}

static atomic_int scheduled_events;
static _Atomic int64_t last_event_tick;

static void on_event(void *arg, const ob_event *ev)
{
    (void)arg;
    if (ev->from == 0 && ev->schedule && strcmp(ev->schedule, "every") == 0) {
        atomic_fetch_add(&scheduled_events, 1);
        atomic_store(&last_event_tick, ev->scheduled_for_ms);
    }
}

TEST(a_schedule_makes_one_job_per_tick_and_its_jobs_and_events_say_which)
{
    ob_engine *e = open_sched();
    ob_subscription *sub;
    ASSERT_OK(ob_engine_subscribe(e, on_event, NULL, &sub));
    h_pool(e, 2, 0, NULL);
    int64_t t0 = ob_now_ms();
    set(e, "every", "* * * * * *", OB_MISSED_SKIP); /* every second */
    h_sleep_ms(3500);
    int n;
    int64_t *t = ticks_of(e, "every", &n);
    ASSERT(n >= 3 && n <= 4);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(t[i] % 1000, 0);
        ASSERT(t[i] > t0 && t[i] <= ob_now_ms());
        if (i)
            ASSERT_EQ(t[i] - t[i - 1], 1000); /* every tick, once */
    }
    ASSERT(atomic_load(&scheduled_events) >= 3);
    ob_schedule_info si;
    ASSERT_OK(ob_schedule_get(e, "every", &si));
    ASSERT_STREQ(si.cron, "* * * * * *");
    ASSERT_STREQ(si.job->kind, "tick");
    ASSERT_STREQ(si.job->queue, "cron");
    ASSERT(si.has_last_job && si.last_at_ms >= t[n - 1]);
    ASSERT(si.next_at_ms > si.last_at_ms);
    ob_schedule_info_clear(&si);
    free(t);
    ob_engine_unsubscribe(e, sub);
    ob_engine_close(e);
}

/* The ticks of `name` made after `down`: consecutive seconds from the
 * first, which is returned. */
static int64_t first_after(ob_engine *e, const char *name, int64_t down)
{
    int n, k = 0;
    int64_t *t = ticks_of(e, name, &n), first = 0;
    for (int i = 0; i < n; i++) {
        if (t[i] <= down)
            continue;
        if (k++ == 0)
            first = t[i];
        else
            ASSERT_EQ(t[i] - t[i - 1], 1000);
    }
    free(t);
    ASSERT(k >= 2);
    return first;
}

TEST(a_restart_after_downtime_follows_missed)
{
    ob_engine *e = open_sched();
    set(e, "skip", "* * * * * *", OB_MISSED_SKIP);
    set(e, "latest", "* * * * * *", OB_MISSED_LATEST);
    h_pool(e, 2, 0, NULL);
    h_sleep_ms(1200);
    ob_engine_close(e);
    int64_t down = ob_now_ms();
    h_sleep_ms(OB_SCHEDULE_LATE_MS + 4000); /* longer than a tick may be late */
    int64_t up = ob_now_ms();
    e = open_sched();
    h_pool(e, 2, 0, NULL);
    h_sleep_ms(2000);
    /* The first tick a node processes at P >= up may make on time is the
     * first at or after P - LATE; the missed ones are before it. */
    int64_t skip = first_after(e, "skip", down), latest = first_after(e, "latest", down);
    ASSERT(skip >= up - OB_SCHEDULE_LATE_MS); /* skip: none of the missed ticks */
    /* latest: one, the most recent missed tick, then on time from there */
    ASSERT(latest < up - OB_SCHEDULE_LATE_MS + 1000 && latest >= up - OB_SCHEDULE_LATE_MS - 2000);
    ASSERT(latest - down >= 2000); /* the ticks before it were not made */
    ASSERT(skip - latest >= 1000);
    ob_engine_close(e);
}

TEST(schedules_are_replaced_paused_resumed_and_deleted)
{
    ob_engine *e = open_sched();
    set(e, "s", "0 0 1 1 *", OB_MISSED_SKIP); /* new year */
    ob_schedule_info si;
    ASSERT_OK(ob_schedule_get(e, "s", &si));
    int64_t next = si.next_at_ms;
    ASSERT(next > ob_now_ms());
    ob_schedule_info_clear(&si);
    set(e, "s", "0 0 1 1 *", OB_MISSED_LATEST); /* the same cron keeps its place */
    ASSERT_OK(ob_schedule_get(e, "s", &si));
    ASSERT_EQ(si.next_at_ms, next);
    ASSERT_EQ(si.missed, OB_MISSED_LATEST);
    ob_schedule_info_clear(&si);
    ASSERT_OK(ob_schedule_pause(e, "s", true));
    ASSERT_OK(ob_schedule_get(e, "s", &si));
    ASSERT(si.paused && si.next_at_ms == 0);
    ob_schedule_info_clear(&si);
    ASSERT_OK(ob_schedule_pause(e, "s", false));
    ASSERT_OK(ob_schedule_get(e, "s", &si));
    ASSERT(!si.paused && si.next_at_ms == next);
    ob_schedule_info_clear(&si);
    ob_schedule_info *all;
    size_t n;
    ASSERT_OK(ob_schedule_list(e, &all, &n));
    ASSERT_EQ(n, 1);
    ob_schedule_list_free(all, n);
    ASSERT_OK(ob_schedule_delete(e, "s"));
    ASSERT_RC(ob_schedule_delete(e, "s"), OB_ENOTFOUND);
    ASSERT_RC(ob_schedule_pause(e, "s", true), OB_ENOTFOUND);
    ASSERT_RC(ob_schedule_get(e, "s", &si), OB_ENOTFOUND);
    ob_engine_close(e);
}

TEST(bad_schedules_are_refused_naming_the_member)
{
    ob_engine *e = open_sched();
    ob_problem p;
    ob_schedule s = {.name = "x", .cron = "61 * * * *", .job = {.kind = "tick"}};
    ASSERT_RC(ob_schedule_set(e, &s, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "cron");
    s.cron = "@daily";
    s.timezone = "Mars/Olympus";
    ASSERT_RC(ob_schedule_set(e, &s, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "timezone");
    s.timezone = "Europe/Berlin";
    s.job.kind = "nope";
    ASSERT_RC(ob_schedule_set(e, &s, &p), OB_ENOKIND);
    ASSERT_STREQ(p.field, "job.kind");
    s.job.kind = "tick";
    s.job.unique_key = "k";
    ASSERT_RC(ob_schedule_set(e, &s, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "job.unique_key");
    s.job.unique_key = NULL;
    s.missed = 7;
    ASSERT_RC(ob_schedule_set(e, &s, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "missed");
    s.missed = OB_MISSED_SKIP;
    s.name = "no spaces";
    ASSERT_RC(ob_schedule_set(e, &s, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "name");
    /* the schedules' keys are theirs */
    ob_new_job j = {.kind = "tick", .unique_key = "schedule:x:1000"};
    ASSERT_RC(ob_new_job_check(e, &j, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "unique_key");
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(a_schedule_makes_one_job_per_tick_and_its_jobs_and_events_say_which),
    T(a_restart_after_downtime_follows_missed),
    T(schedules_are_replaced_paused_resumed_and_deleted),
    T(bad_schedules_are_refused_naming_the_member),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
