/*
 * records.c - records (ob_record in outbox/job.h): small JSON documents
 * under a key in a named set, kept in the store beside the jobs, for what
 * a job kind remembers between jobs (the mail job's suppression list).
 *
 * Writes are ops of the commit thread (OP_RECORD), so a record is durable
 * when ob_record_put returns and its change is published to the record
 * subscribers after the commit, in commit order (obi_notify_record).
 * Reads and listings are readers' calls of the store.
 *
 * Invariant R1 (checked here, before anything reaches the store): a stored
 * record has a valid set name, a key of 1..OB_RECORD_KEY_MAX bytes of
 * UTF-8 without control characters, a tag that is "" or a name, and a
 * value that is a JSON object of at most OB_RECORD_VALUE_MAX bytes.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/commit.h"
#include "outbox/util.h"

static bool key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > OB_RECORD_KEY_MAX || !ob_utf8_valid(key, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
            return false;
    return true;
}

static bool value_valid(const char *value)
{
    size_t n = strlen(value);
    if (n > OB_RECORD_VALUE_MAX)
        return false;
    json_t *v = json_loadb(value, n, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(v);
    json_decref(v);
    return ok;
}

int obi_record_apply(ob_engine *e, op *o, int64_t now)
{
    store *s = e->st;
    int rc;
    if (o->rec_delete) {
        rc = s->ops->record_delete(s, o->rec->set, o->rec->key);
    } else {
        o->rec->updated_at_ms = now;
        rc = s->ops->record_save(s, o->rec, &o->rec_created);
        o->rec->created_at_ms = o->rec_created ? now : 0; /* 0: kept, not read */
    }
    if (rc == OB_ENOTFOUND) { /* the caller's answer, not the batch's failure */
        o->rc = rc;
        return 0;
    }
    return rc;
}

static int submit(ob_engine *e, ob_record *r, bool del, bool *created)
{
    op o = {.type = OP_RECORD, .external = true, .rec = r, .rec_delete = del};
    int rc = obi_commit_submit_wait(e, &o);
    if (created)
        *created = !rc && o.rec_created;
    return rc;
}

int ob_record_put(ob_engine *e, const char *set, const char *key, const char *tag,
                  const char *value, bool *created, ob_problem *p)
{
    if (!e)
        return OB_EINVAL;
    if (!ob_name_valid(set))
        return obi_problem(p, OB_EINVAL, "set", "1-%d characters of [A-Za-z0-9._-]",
                           OB_NAME_MAX);
    if (!key_valid(key))
        return obi_problem(p, OB_EINVAL, "key",
                           "1-%d bytes of UTF-8 without control characters", OB_RECORD_KEY_MAX);
    if (tag && tag[0] && !ob_name_valid(tag))
        return obi_problem(p, OB_EINVAL, "tag", "empty or 1-%d characters of [A-Za-z0-9._-]",
                           OB_NAME_MAX);
    if (!value)
        value = "{}";
    if (!value_valid(value))
        return obi_problem(p, OB_EINVAL, "value", "a JSON object of at most %d bytes",
                           OB_RECORD_VALUE_MAX);
    ob_record r = {.value = (char *)value};
    snprintf(r.set, sizeof r.set, "%s", set);
    snprintf(r.key, sizeof r.key, "%s", key);
    snprintf(r.tag, sizeof r.tag, "%s", tag ? tag : "");
    return submit(e, &r, false, created);
}

int ob_record_delete(ob_engine *e, const char *set, const char *key)
{
    if (!e || !ob_name_valid(set) || !key_valid(key))
        return OB_EINVAL;
    ob_record r = {0};
    snprintf(r.set, sizeof r.set, "%s", set);
    snprintf(r.key, sizeof r.key, "%s", key);
    return submit(e, &r, true, NULL);
}

int ob_record_get_many(ob_engine *e, const char *set, const char *const *keys, size_t n,
                       ob_record *out)
{
    if (!e || !out || !ob_name_valid(set) || n > OB_RECORD_LIST_MAX)
        return OB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!key_valid(keys[i]))
            return OB_EINVAL;
    return n ? e->st->ops->records_get(e->st, set, keys, (int)n, out) : 0;
}

int ob_record_get(ob_engine *e, const char *set, const char *key, ob_record *out)
{
    int rc = ob_record_get_many(e, set, &key, 1, out);
    return rc ? rc : out->value ? 0 : OB_ENOTFOUND;
}

int ob_record_list(ob_engine *e, const ob_record_filter *f, ob_record **out, size_t *n)
{
    if (!e || !f || !out || !n || !ob_name_valid(f->set) || f->limit < 0 ||
        f->limit > OB_RECORD_LIST_MAX || (f->after && strlen(f->after) > OB_RECORD_KEY_MAX) ||
        (f->contains && strlen(f->contains) > OB_RECORD_KEY_MAX) ||
        (f->tag && !ob_name_valid(f->tag) && f->tag[0]))
        return OB_EINVAL;
    ob_record_filter g = *f;
    if (!g.limit)
        g.limit = 100;
    if (g.contains && !g.contains[0])
        g.contains = NULL;
    int k = 0, rc = e->st->ops->records(e->st, &g, out, &k);
    *n = rc ? 0 : (size_t)k;
    return rc;
}

void ob_record_clear(ob_record *r)
{
    if (r) {
        free(r->value);
        r->value = NULL;
    }
}

void ob_record_list_free(ob_record *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].value);
    free(v);
}
