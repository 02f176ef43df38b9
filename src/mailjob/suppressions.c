/*
 * suppressions.c - the suppression list (outbox/mailjob.h): addresses not
 * to send to, kept as records of the set OB_SUPPRESSIONS (outbox/job.h)
 * through the engine's public API, so that every node shares one list.
 *
 *   key    the address in normal form (ob_mail_address_normal)
 *   tag    the reason's name ("hard_bounce", ...), which listings filter by
 *   value  {"code": 550, "enhanced": "5.1.1", "reply": "...", "job": "ID",
 *           "note": "..."}, each member only when it has something
 *
 * Invariant S1 (ob_suppression_add): a key is always the normal form of an
 * address, so one address has one entry however it was written, and the
 * mail job finds an envelope address (already in normal form) by key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mailjob/mailjob_int.h"

static const char *const reason_names[] = {NULL, "hard_bounce", "spam_complaint", "unsubscribe",
                                           "manual"};
#define NREASONS (sizeof reason_names / sizeof *reason_names)

const char *ob_suppression_reason_name(ob_suppression_reason r)
{
    return r > 0 && (size_t)r < NREASONS ? reason_names[r] : NULL;
}

int ob_suppression_reason_parse(const char *name, ob_suppression_reason *out)
{
    for (size_t i = 1; name && i < NREASONS; i++)
        if (strcmp(name, reason_names[i]) == 0) {
            *out = (ob_suppression_reason)i;
            return 0;
        }
    return OB_EINVAL;
}

/* The record's value for s (malloc'd), or NULL on out of memory. */
static char *value_of(const ob_suppression *s)
{
    json_t *v = json_object();
    char reply[401], id[OB_ID_STRLEN + 1];
    if (s->reply.code || s->reply.text[0]) {
        ob_scrub(s->reply.text, strlen(s->reply.text), reply, sizeof reply);
        json_object_set_new(v, "code", json_integer(s->reply.code));
        if (s->reply.enhanced[0])
            json_object_set_new(v, "enhanced", json_string(s->reply.enhanced));
        json_object_set_new(v, "reply", json_string(reply));
    }
    if (s->has_job)
        json_object_set_new(v, "job", json_string(ob_id_format(&s->job, id)));
    if (s->note[0])
        json_object_set_new(v, "note", json_string(s->note));
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return text;
}

int ob_suppression_from_record(const ob_record *r, ob_suppression *out)
{
    memset(out, 0, sizeof *out);
    size_t kl = r ? strlen(r->key) : 0;
    if (!r || strcmp(r->set, OB_SUPPRESSIONS) != 0 || kl > OB_MAIL_ADDR_MAX ||
        ob_suppression_reason_parse(r->tag, &out->reason))
        return OB_EINVAL;
    memcpy(out->address, r->key, kl + 1);
    out->created_at_ms = r->created_at_ms;
    out->updated_at_ms = r->updated_at_ms;
    json_t *v = r->value ? json_loads(r->value, 0, NULL) : NULL;
    const char *s;
    out->reply.code = (int)json_integer_value(json_object_get(v, "code"));
    if ((s = json_string_value(json_object_get(v, "enhanced"))))
        snprintf(out->reply.enhanced, sizeof out->reply.enhanced, "%s", s);
    if ((s = json_string_value(json_object_get(v, "reply"))))
        snprintf(out->reply.text, sizeof out->reply.text, "%s", s);
    if ((s = json_string_value(json_object_get(v, "job"))))
        out->has_job = ob_id_parse(s, &out->job) == 0;
    if ((s = json_string_value(json_object_get(v, "note"))))
        snprintf(out->note, sizeof out->note, "%s", s);
    json_decref(v);
    return 0;
}

int ob_suppression_add(ob_engine *e, const ob_suppression *s, bool *created, ob_problem *p)
{
    char addr[OB_MAIL_ADDR_MAX + 1];
    const char *reason = s ? ob_suppression_reason_name(s->reason) : NULL;
    if (!e || !s)
        return OB_EINVAL;
    int rc = ob_mail_address_normal(s->address, addr, p);
    if (rc)
        return rc;
    if (!reason)
        return obi_problem(p, OB_EINVAL, "reason",
                           "one of hard_bounce, spam_complaint, unsubscribe, manual");
    size_t nl = strnlen(s->note, sizeof s->note);
    if (nl > OB_SUPPRESSION_NOTE_MAX || !ob_utf8_valid(s->note, nl))
        return obi_problem(p, OB_EINVAL, "note", "at most %d bytes of UTF-8",
                           OB_SUPPRESSION_NOTE_MAX);
    char *value = value_of(s);
    if (!value)
        return OB_ENOMEM;
    rc = ob_record_put(e, OB_SUPPRESSIONS, addr, reason, value, created, p);
    free(value);
    return rc;
}

int ob_suppression_remove(ob_engine *e, const char *address, ob_problem *p)
{
    char addr[OB_MAIL_ADDR_MAX + 1];
    int rc = ob_mail_address_normal(address, addr, p);
    return rc ? rc : ob_record_delete(e, OB_SUPPRESSIONS, addr);
}

int ob_suppression_get(ob_engine *e, const char *address, ob_suppression *out, ob_problem *p)
{
    char addr[OB_MAIL_ADDR_MAX + 1];
    ob_record r;
    int rc = ob_mail_address_normal(address, addr, p);
    if (rc || (rc = ob_record_get(e, OB_SUPPRESSIONS, addr, &r)))
        return rc;
    rc = ob_suppression_from_record(&r, out);
    ob_record_clear(&r);
    return rc;
}

int ob_suppression_list(ob_engine *e, const ob_suppression_filter *f, ob_suppression **out,
                        size_t *n)
{
    *out = NULL;
    *n = 0;
    char contains[OB_RECORD_KEY_MAX + 1];
    if (f->contains) { /* the domain's part of it in lower case, as keys have it */
        if (strlen(f->contains) > OB_RECORD_KEY_MAX)
            return OB_EINVAL;
        snprintf(contains, sizeof contains, "%s", f->contains);
        for (char *c = strchr(contains, '@'); c && *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    const char *tag = NULL;
    if (f->reason && !(tag = ob_suppression_reason_name(f->reason)))
        return OB_EINVAL;
    ob_record_filter rf = {.set = OB_SUPPRESSIONS, .tag = tag,
                           .contains = f->contains ? contains : NULL, .after = f->after,
                           .limit = f->limit};
    ob_record *v;
    size_t k;
    int rc = ob_record_list(e, &rf, &v, &k);
    if (rc)
        return rc;
    if (k && !(*out = calloc(k, sizeof **out)))
        rc = OB_ENOMEM;
    for (size_t i = 0; !rc && i < k; i++)
        if (ob_suppression_from_record(&v[i], &(*out)[*n]) == 0)
            (*n)++;
    ob_record_list_free(v, k);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}
