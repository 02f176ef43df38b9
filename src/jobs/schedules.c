/*
 * schedules.c - cron schedules: a job template and a cron expression in a
 * time zone (outbox/cron.h), kept in the store (store_schedule), whose
 * ticks the commit thread of the leader turns into jobs (ob_schedule_*).
 *
 * Invariant T1: each tick makes at most one job, whatever happens. The
 * job of tick T of schedule S has the unique key "schedule:S:T", and is
 * inserted in the same transaction that moves S's next_at past T. A
 * leader that dies between the two leaves nothing (the transaction rolls
 * back); two leaders for a moment lock the schedule's row in turn (SKIP
 * LOCKED) and the second finds the key taken. Keys starting "schedule:"
 * are refused to anyone else (ob_new_job_check).
 *
 * Missed ticks: a tick is on time if its job can be made within
 * OB_SCHEDULE_LATE_MS of it; the leader's death costs less than that
 * (another takes the lead within a second), a downtime may not. Every
 * on-time tick makes its job; of the missed ones, `latest` makes one for
 * the most recent and `skip` none. So after an outage the schedule
 * catches up by at most one job, and a restart never floods.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/commit.h"
#include "outbox/cron.h"

#define DUE_MAX 16   /* schedules worked per batch */
#define TICKS_MAX 16     /* on-time ticks made per schedule and batch */
#define SCHED_POLL_MS 1000

enum { SCHED_SET, SCHED_PAUSE, SCHED_RESUME, SCHED_DELETE };

static const char key_prefix[] = "schedule:";

bool ob_job_schedule(const ob_job *j, char name[OB_NAME_MAX + 1], int64_t *tick_ms)
{
    const char *k = j ? j->unique_key : NULL;
    if (!k || strncmp(k, key_prefix, sizeof key_prefix - 1) != 0)
        return false;
    k += sizeof key_prefix - 1;
    const char *colon = strrchr(k, ':');
    if (!colon || colon == k || colon - k > OB_NAME_MAX)
        return false;
    char *end;
    long long t = strtoll(colon + 1, &end, 10);
    if (*end || t < 0)
        return false;
    memcpy(name, k, (size_t)(colon - k));
    name[colon - k] = '\0';
    *tick_ms = t;
    return true;
}

/* ---- a tick's job ---- */

/* The job of tick t (T1): inserted unless its key is taken. */
static int make(ob_engine *e, batch *b, store_schedule *sc, int64_t t, int64_t now)
{
    char key[OB_NAME_MAX + 48];
    snprintf(key, sizeof key, "%s%s:%" PRId64, key_prefix, sc->name, t);
    ob_id id;
    int rc = e->st->ops->find_unique(e->st, key, &id);
    if (rc != OB_ENOTFOUND)
        return rc; /* 0: made already (another leader, a moment ago) */
    store_new j = {.kind = sc->kind, .queue = sc->queue, .priority = sc->priority,
                   .payload = sc->payload, .payload_len = sc->payload_len,
                   .max_attempts = sc->max_attempts, .timeout_ms = sc->timeout_ms,
                   .unique_key = key, .meta = sc->meta, .rate_key = sc->rate_key};
    size_t nev = b->nev;
    rc = obi_batch_insert(e, b, &j, now);
    if (rc == STORE_EXISTS)
        return 0;
    if (rc)
        return rc;
    if (b->nev > nev) { /* the insert's event (unless out of memory lost it) */
        event_rec *ev = &b->ev[b->nev - 1];
        snprintf(ev->schedule, sizeof ev->schedule, "%s", sc->name);
        ev->scheduled_for = t;
    }
    sc->last_at = t;
    sc->last_job = j.id;
    sc->has_last_job = true;
    return 0;
}

/* The latest tick of c in [from, before), from being one. */
static int64_t last_before(const ob_cron *c, int64_t from, int64_t before)
{
    int64_t best = from, t;
    for (int64_t d = 1000; d < before - from; d *= 2) {
        if (ob_cron_next(c, before - d - 1, &t) == 0 && t < before) {
            best = t;
            break;
        }
    }
    while (ob_cron_next(c, best, &t) == 0 && t < before)
        best = t;
    return best;
}

/* Work one due schedule: its missed ticks by its rule, its on-time ones
 * each; *more when ticks are left for another batch. */
static int work(ob_engine *e, batch *b, store_schedule *sc, int64_t now, bool *more)
{
    ob_cron *c = NULL;
    ob_problem p;
    if (ob_cron_parse(sc->cron, sc->timezone, &c, &p)) { /* checked when set: tzdata changed? */
        OB_ERROR("schedule %s: %s: %s; paused", sc->name, p.field, p.message);
        sc->paused = true;
        return e->st->ops->schedule_save(e->st, sc);
    }
    int64_t t = sc->next_at, late = now - OB_SCHEDULE_LATE_MS;
    int rc = 0;
    if (t < late) {
        int64_t first = INT64_MAX;
        ob_cron_next(c, late - 1, &first);
        if (sc->missed == OB_MISSED_LATEST)
            rc = make(e, b, sc, last_before(c, t, late), now);
        OB_WARN("schedule %s: ticks from %" PRId64 " to before %" PRId64 " missed (no node "
                "made them in time); %s",
                sc->name, t, late,
                sc->missed == OB_MISSED_LATEST ? "one job made for the latest" : "skipped");
        t = first;
    }
    for (int n = 0; !rc && t <= now && n < TICKS_MAX; n++) {
        rc = make(e, b, sc, t, now);
        if (ob_cron_next(c, t, &t))
            t = INT64_MAX; /* no tick within eight years */
    }
    ob_cron_free(c);
    if (rc)
        return rc;
    *more |= t <= now;
    sc->next_at = t;
    return e->st->ops->schedule_save(e->st, sc);
}

int obi_schedules_run(ob_engine *e, batch *b, int64_t now, int64_t *next)
{
    store *s = e->st;
    store_schedule due[DUE_MAX];
    int n, rc = s->ops->schedules_due(s, now, due, DUE_MAX, &n);
    bool more = n == DUE_MAX;
    for (int i = 0; i < n; i++) {
        if (!rc)
            rc = work(e, b, &due[i], now, &more);
        obi_schedule_clear(&due[i]);
    }
    if (rc)
        return rc;
    b->chores_again |= more;
    rc = s->ops->schedules_next(s, next);
    if (!s->exclusive && *next > now + SCHED_POLL_MS)
        *next = now + SCHED_POLL_MS; /* schedules other nodes set */
    return rc;
}

/* ---- the op ---- */

static int first_tick(const store_schedule *sc, int64_t now, int64_t *t)
{
    ob_cron *c = NULL;
    int rc = ob_cron_parse(sc->cron, sc->timezone, &c, NULL);
    if (!rc && ob_cron_next(c, now, t))
        *t = INT64_MAX;
    ob_cron_free(c);
    return rc;
}

int obi_schedule_apply(ob_engine *e, batch *b, op *o, int64_t now)
{
    store *s = e->st;
    store_schedule *in = o->sc, old;
    e->c.next_sched = now; /* look again in this batch's chores */
    if (o->sched_action == SCHED_DELETE) {
        int rc = s->ops->schedule_delete(s, in->name);
        o->rc = rc == OB_ENOTFOUND ? rc : 0;
        return rc == OB_ENOTFOUND ? 0 : rc;
    }
    int rc = s->ops->schedule_load(s, in->name, &old);
    if (rc == OB_ENOTFOUND && o->sched_action != SCHED_SET) {
        o->rc = rc;
        return 0;
    }
    if (rc && rc != OB_ENOTFOUND)
        return rc;
    bool had = rc == 0;
    store_schedule sc = *in;
    if (o->sched_action != SCHED_SET) { /* pause or resume: the rest as it is */
        sc = old;
        sc.paused = o->sched_action == SCHED_PAUSE;
    }
    bool same = had && !old.paused && !sc.paused && !strcmp(old.cron, sc.cron) &&
                !strcmp(old.timezone, sc.timezone);
    if (same) { /* where it is stays: a tick about to be made is not lost */
        sc.next_at = old.next_at;
    } else if ((rc = first_tick(&sc, now, &sc.next_at))) {
        o->rc = rc;
        rc = 0;
    }
    if (had) {
        sc.last_at = old.last_at;
        sc.last_job = old.last_job;
        sc.has_last_job = old.has_last_job;
    }
    sc.updated_at = now;
    if (!o->rc)
        rc = s->ops->schedule_save(s, &sc);
    if (had)
        obi_schedule_clear(&old);
    (void)b;
    return rc;
}

/* ---- the calls ---- */

static int submit(ob_engine *e, store_schedule *sc, int action)
{
    op o = {.type = OP_SCHEDULE, .external = true, .sc = sc, .sched_action = action};
    return obi_commit_submit_wait(e, &o);
}

int ob_schedule_set(ob_engine *e, const ob_schedule *in, ob_problem *p)
{
    if (!e || !in)
        return OB_EINVAL;
    if (!ob_name_valid(in->name))
        return obi_problem(p, OB_EINVAL, "name", "1-%d characters of [A-Za-z0-9._-]",
                           OB_NAME_MAX);
    ob_cron *c = NULL;
    int rc = ob_cron_parse(in->cron, in->timezone, &c, p);
    ob_cron_free(c);
    if (rc)
        return rc;
    if (in->timezone && strlen(in->timezone) > OB_TZ_MAX)
        return obi_problem(p, OB_EINVAL, "timezone", "longer than %d bytes", OB_TZ_MAX);
    if (in->job.run_at_ms || in->job.unique_key)
        return obi_problem(p, OB_EINVAL, in->job.run_at_ms ? "job.run_at" : "job.unique_key",
                           "a schedule's job has neither: each tick makes one, now");
    if (in->missed != OB_MISSED_SKIP && in->missed != OB_MISSED_LATEST)
        return obi_problem(p, OB_EINVAL, "missed", "skip or latest");
    ob_problem jp;
    if ((rc = ob_new_job_check(e, &in->job, &jp))) {
        char field[sizeof jp.field + 8];
        snprintf(field, sizeof field, "job.%s", jp.field);
        return obi_problem(p, rc, field, "%s", jp.message);
    }
    store_schedule *rows;
    int n;
    if ((rc = e->st->ops->schedules(e->st, &rows, &n)))
        return rc;
    bool exists = false;
    for (int i = 0; i < n; i++) {
        exists |= strcmp(rows[i].name, in->name) == 0;
        obi_schedule_clear(&rows[i]);
    }
    free(rows);
    if (!exists && n >= OB_SCHEDULES_MAX)
        return obi_problem(p, OB_EFULL, "name", "%d schedules exist already", OB_SCHEDULES_MAX);
    store_new nj;
    obi_new_job_from(e, &in->job, &nj);
    store_schedule sc = {.priority = nj.priority, .payload = (unsigned char *)nj.payload,
                         .payload_len = nj.payload_len, .max_attempts = nj.max_attempts,
                         .timeout_ms = nj.timeout_ms, .meta = (char *)nj.meta,
                         .missed = in->missed, .paused = in->paused};
    snprintf(sc.name, sizeof sc.name, "%s", in->name);
    snprintf(sc.cron, sizeof sc.cron, "%s", in->cron);
    snprintf(sc.timezone, sizeof sc.timezone, "%s", in->timezone ? in->timezone : "");
    snprintf(sc.kind, sizeof sc.kind, "%s", nj.kind);
    snprintf(sc.queue, sizeof sc.queue, "%s", nj.queue);
    snprintf(sc.rate_key, sizeof sc.rate_key, "%s", nj.rate_key ? nj.rate_key : "");
    return submit(e, &sc, SCHED_SET);
}

int ob_schedule_pause(ob_engine *e, const char *name, bool paused)
{
    if (!e || !ob_name_valid(name))
        return OB_EINVAL;
    store_schedule sc = {.paused = paused};
    snprintf(sc.name, sizeof sc.name, "%s", name);
    return submit(e, &sc, paused ? SCHED_PAUSE : SCHED_RESUME);
}

int ob_schedule_delete(ob_engine *e, const char *name)
{
    if (!e || !ob_name_valid(name))
        return OB_EINVAL;
    store_schedule sc = {0};
    snprintf(sc.name, sizeof sc.name, "%s", name);
    return submit(e, &sc, SCHED_DELETE);
}

/* The template of a stored schedule as a snapshot (job.h). */
static ob_job *template_of(const store_schedule *sc)
{
    job_sizes z = {.kind = strlen(sc->kind), .queue = strlen(sc->queue),
                   .payload = sc->payload_len, .has_payload = true,
                   .meta = sc->meta ? strlen(sc->meta) : 0, .has_meta = sc->meta != NULL,
                   .rate_key = strlen(sc->rate_key)};
    ob_job *j = obi_job_alloc(&z);
    if (!j)
        return NULL;
    memcpy(j->kind, sc->kind, z.kind);
    memcpy(j->queue, sc->queue, z.queue);
    if (z.payload)
        memcpy(j->payload, sc->payload, z.payload);
    if (j->meta)
        memcpy(j->meta, sc->meta, z.meta);
    if (j->rate_key)
        memcpy(j->rate_key, sc->rate_key, z.rate_key);
    j->priority = sc->priority;
    j->max_attempts = sc->max_attempts;
    j->timeout_ms = sc->timeout_ms;
    j->state = OB_SCHEDULED;
    return j;
}

static int info_of(const store_schedule *sc, ob_schedule_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", sc->name);
    snprintf(out->cron, sizeof out->cron, "%s", sc->cron);
    snprintf(out->timezone, sizeof out->timezone, "%s", sc->timezone);
    out->missed = (ob_missed)sc->missed;
    out->paused = sc->paused;
    out->next_at_ms = sc->paused || sc->next_at == INT64_MAX ? 0 : sc->next_at;
    out->last_at_ms = sc->last_at;
    out->last_job = sc->last_job;
    out->has_last_job = sc->has_last_job;
    out->updated_at_ms = sc->updated_at;
    return (out->job = template_of(sc)) ? 0 : OB_ENOMEM;
}

void ob_schedule_info_clear(ob_schedule_info *s)
{
    if (s) {
        ob_job_free(s->job);
        s->job = NULL;
    }
}

void ob_schedule_list_free(ob_schedule_info *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        ob_schedule_info_clear(&v[i]);
    free(v);
}

int ob_schedule_list(ob_engine *e, ob_schedule_info **out, size_t *n)
{
    if (!e || !out || !n)
        return OB_EINVAL;
    store_schedule *rows;
    int nr, rc = e->st->ops->schedules(e->st, &rows, &nr);
    if (rc)
        return rc;
    ob_schedule_info *v = nr ? calloc((size_t)nr, sizeof *v) : NULL;
    if (nr && !v)
        rc = OB_ENOMEM;
    size_t k = 0;
    for (int i = 0; i < nr; i++) {
        if (!rc && !(rc = info_of(&rows[i], &v[k])))
            k++;
        obi_schedule_clear(&rows[i]);
    }
    free(rows);
    if (rc) {
        ob_schedule_list_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

int ob_schedule_get(ob_engine *e, const char *name, ob_schedule_info *out)
{
    if (!e || !out || !ob_name_valid(name))
        return OB_EINVAL;
    ob_schedule_info *all;
    size_t n;
    int rc = ob_schedule_list(e, &all, &n);
    if (rc)
        return rc;
    rc = OB_ENOTFOUND;
    for (size_t i = 0; i < n; i++) {
        if (rc && strcmp(all[i].name, name) == 0) {
            *out = all[i];
            all[i].job = NULL; /* given to out */
            rc = 0;
        }
    }
    ob_schedule_list_free(all, n);
    return rc;
}
