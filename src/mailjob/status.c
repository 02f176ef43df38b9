/*
 * status.c - a message job from the outside: making one (ob_mail_job_new,
 * ob_mail_enqueue*) and reading its recipients' outcome back
 * (ob_mail_status_get), both in the stored forms mailjob.c writes: the
 * payload is ob_mail_to_json's output, the result {"message_id",
 * "transport", "recipients": [...]}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mailjob/mailjob_int.h"

static const ob_mail_limits stored_limits = {
    .max_recipients = 1 << 20, .max_subject = 1 << 20,   .max_headers = 1 << 20,
    .max_attachments = 1 << 20, .max_attachment = 1u << 30, .max_size = 1u << 30,
    .max_tags = 1 << 20,       .max_metadata = 1u << 30,
};

int obi_mail_stored(const ob_job *j, ob_mail **m, ob_problem *p)
{
    json_error_t je;
    json_t *payload = json_loadb((const char *)j->payload, j->payload_len, 0, &je);
    if (!payload)
        return obi_problem(p, OB_EINVAL, "payload", "not JSON: %s", je.text);
    int rc = ob_mail_parse(payload, OB_MAIL_STORED, &stored_limits, m, p);
    json_decref(payload);
    return rc;
}

static ob_rcpt_state state_of(const char *s)
{
    for (int i = OB_RCPT_PENDING; i < OB_RCPT_STATES; i++)
        if (s && !strcmp(s, ob_rcpt_state_name((ob_rcpt_state)i)))
            return (ob_rcpt_state)i;
    return OB_RCPT_PENDING;
}

static void entry_load(ob_mail_rcpt_status *r, const json_t *e)
{
    r->state = state_of(json_string_value(json_object_get(e, "state")));
    r->attempts = (int)json_integer_value(json_object_get(e, "attempts"));
    const char *at = json_string_value(json_object_get(e, "updated_at"));
    if (!at || ob_time_parse(at, &r->updated_at_ms))
        r->updated_at_ms = 0;
    const char *enh = json_string_value(json_object_get(e, "enhanced"));
    const char *text = json_string_value(json_object_get(e, "reply"));
    r->reply.code = (int)json_integer_value(json_object_get(e, "code"));
    snprintf(r->reply.enhanced, sizeof r->reply.enhanced, "%s", enh ? enh : "");
    snprintf(r->reply.text, sizeof r->reply.text, "%s", text ? text : "");
}

void obi_mail_rcpts_load(const ob_mail *m, const char *result, ob_mail_rcpt_status *r)
{
    json_t *prev = result ? json_loads(result, 0, NULL) : NULL;
    json_t *list = json_object_get(prev, "recipients");
    for (size_t i = 0; i < ob_mail_rcpt_count(m); i++) {
        r[i] = (ob_mail_rcpt_status){.address = ob_mail_rcpt(m, i),
                                     .type = ob_mail_rcpt_type(m, i)};
        size_t k;
        json_t *e;
        json_array_foreach(list, k, e) {
            const char *a = json_string_value(json_object_get(e, "address"));
            if (a && !strcmp(a, r[i].address)) {
                entry_load(&r[i], e);
                break;
            }
        }
    }
    json_decref(prev);
}

/* ---- ob_mail_status_get: one block, the strings after the array ---- */

static char *put(char **p, const char *s)
{
    size_t n = strlen(s) + 1;
    char *r = memcpy(*p, s, n);
    *p += n;
    return r;
}

int ob_mail_status_get(const ob_job *j, ob_mail_status **out)
{
    if (!j || !out || strcmp(j->kind, OB_MAIL_KIND) != 0 || !j->payload)
        return OB_EINVAL;
    ob_mail *m;
    int rc = obi_mail_stored(j, &m, NULL);
    if (rc)
        return rc;
    size_t n = ob_mail_rcpt_count(m), strings = strlen(ob_mail_message_id(m)) + 1;
    for (size_t i = 0; i < n; i++)
        strings += strlen(ob_mail_rcpt(m, i)) + strlen(ob_mail_rcpt_type(m, i)) + 2;
    ob_mail_status *s = malloc(sizeof *s + n * sizeof *s->rcpts + strings);
    if (!s) {
        ob_mail_free(m);
        return OB_ENOMEM;
    }
    s->n = n;
    s->rcpts = (ob_mail_rcpt_status *)(s + 1);
    char *p = (char *)(s->rcpts + n);
    s->message_id = put(&p, ob_mail_message_id(m));
    obi_mail_rcpts_load(m, j->result, s->rcpts);
    for (size_t i = 0; i < n; i++) { /* borrowed from m until now: copy */
        s->rcpts[i].address = put(&p, s->rcpts[i].address);
        s->rcpts[i].type = put(&p, s->rcpts[i].type);
    }
    ob_mail_free(m);
    *out = s;
    return 0;
}

void ob_mail_status_free(ob_mail_status *s) { free(s); }

/* ---- enqueue ---- */

/* The message's search terms after its payload in one block: the payload,
 * NUL, the terms ('\n'-separated; those too long to be a term left out). */
static char *with_terms(const ob_mail *m, char *payload)
{
    const char *mid = ob_mail_message_id(m);
    size_t idlen = strlen(mid);
    if (idlen >= 2 && mid[0] == '<' && mid[idlen - 1] == '>')
        mid++, idlen -= 2;
    size_t n = ob_mail_rcpt_count(m), len = strlen(payload), size = len + 2 + idlen;
    for (size_t i = 0; i < n; i++)
        size += strlen(ob_mail_rcpt(m, i)) + 1;
    char *b = realloc(payload, size), *t;
    if (!b) {
        free(payload);
        return NULL;
    }
    t = b + len + 1;
    *t = '\0';
    for (size_t i = 0; i < n && i < OB_TERMS_MAX - 1; i++) {
        const char *a = ob_mail_rcpt(m, i);
        size_t al = strlen(a);
        if (al && al <= OB_TERM_MAX) {
            memcpy(t, a, al);
            t[al] = '\n';
            t += al + 1;
        }
    }
    if (idlen && idlen <= OB_TERM_MAX) {
        memcpy(t, mid, idlen);
        t += idlen;
    } else if (t > b + len + 1) {
        t--; /* the last '\n' */
    }
    *t = '\0';
    return b;
}

int ob_mail_job_new(const ob_mail *m, ob_new_job *j, char **payload)
{
    json_t *stored = ob_mail_to_json(m);
    *payload = stored ? json_dumps(stored, JSON_COMPACT) : NULL;
    json_decref(stored);
    if (*payload)
        *payload = with_terms(m, *payload);
    if (!*payload)
        return OB_ENOMEM;
    j->kind = OB_MAIL_KIND;
    if (!j->queue)
        j->queue = OB_MAIL_QUEUE;
    j->payload = *payload;
    j->payload_len = strlen(*payload);
    const char *terms = *payload + j->payload_len + 1;
    j->terms = *terms ? terms : NULL;
    return 0;
}

int ob_mail_enqueue(ob_engine *e, const ob_mail *m, const ob_new_job *tmpl, ob_id *id,
                    bool *existed)
{
    ob_new_job j = tmpl ? *tmpl : (ob_new_job){0};
    char *payload;
    int rc = ob_mail_job_new(m, &j, &payload);
    if (!rc)
        rc = ob_enqueue(e, &j, id, existed);
    free(payload);
    return rc;
}

int ob_mail_enqueue_json(ob_engine *e, const json_t *msg, const ob_mail_limits *l, ob_id *id,
                         ob_problem *p)
{
    ob_mail_limits d;
    if (!l) {
        ob_mail_limits_init(&d);
        l = &d;
    }
    ob_mail *m;
    int rc = ob_mail_parse(msg, OB_MAIL_REQUEST, l, &m, p);
    if (rc)
        return rc;
    rc = ob_mail_enqueue(e, m, NULL, id, NULL);
    ob_mail_free(m);
    if (rc)
        obi_problem(p, rc, "", "the message could not be stored: %s", ob_strerror(rc));
    return rc;
}

int ob_mail_job_raw(const ob_job *j, char **out, size_t *len)
{
    if (!j || !out || !len || strcmp(j->kind, OB_MAIL_KIND) != 0 || !j->payload)
        return OB_EINVAL;
    ob_mail *m;
    int rc = obi_mail_stored(j, &m, NULL);
    if (rc)
        return rc == OB_ENOMEM ? rc : OB_EINVAL;
    rc = ob_mail_build(m, out, len);
    ob_mail_free(m);
    return rc;
}
