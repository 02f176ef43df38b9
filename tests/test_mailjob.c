/*
 * test_mailjob.c - mail as a job from C (outbox/mailjob.h), as an embedder
 * uses it: a message enqueued from JSON or from a parsed ob_mail, delivered
 * by the library's mail.send through the file transport, its outcome read
 * back per recipient; and what the calls refuse.
 */
#include <string.h>

#include "helpers.h"
#include "outbox/mailjob.h"
#include "relay_helpers.h"

/* An engine sized for mail with mail.send registered (`mo`: NULL for the
 * defaults), delivering to `url` (NULL: file:./mail of the test). */
static ob_engine *open_mail_engine_at(const char *url, const ob_mail_job_opts *mo,
                                      ob_transport **t, ob_mailer **mj)
{
    char file[600];
    snprintf(file, sizeof file, "file:%s/mail", test_dir());
    ob_problem p;
    ASSERT_OK(ob_transport_open(url ? url : file, NULL, t, &p));
    ob_engine_opts eo;
    ob_engine_opts_init(&eo);
    ob_mail_job_engine_opts(&eo, NULL);
    ASSERT(eo.max_payload >= (10u << 20) / 3 * 4 && eo.max_result >= 64u << 10);
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(test_url("mail.db"), &eo, &e));
    ASSERT_OK(ob_mail_job_register(e, *t, mo, mj));
    return e;
}

static ob_engine *open_mail_engine(ob_transport **t, ob_mailer **mj)
{
    return open_mail_engine_at(NULL, NULL, t, mj);
}

/* The same, delivering to `relay` over SMTP without TLS. */
static ob_engine *open_relay_engine(const server *relay, const ob_mail_job_opts *mo,
                                    ob_transport **t, ob_mailer **mj)
{
    char url[128];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d?starttls=no", relay->port);
    return open_mail_engine_at(url, mo, t, mj);
}

TEST(a_message_enqueued_from_json_is_delivered_and_its_outcome_read_back)
{
    ob_mail_init();
    ob_transport *t;
    ob_mailer *mj;
    ob_engine *e = open_mail_engine(&t, &mj);
    ob_pool *pool = h_pool(e, 2, 0, NULL);
    json_t *msg = json_pack("{s:s, s:[s, s], s:s, s:s, s:s}", "from", "app@example.org", "to",
                            "ann@example.org", "bob@example.org", "cc", "cy@example.org",
                            "subject", "Welcome", "text", "Hello!");
    ob_id id;
    ob_problem p;
    ASSERT_OK(ob_mail_enqueue_json(e, msg, NULL, &id, &p));
    json_decref(msg);
    ob_job *j;
    ASSERT_OK(ob_job_wait(e, &id, 20000, &j));
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_STREQ(j->kind, OB_MAIL_KIND);
    ASSERT_STREQ(j->queue, OB_MAIL_QUEUE);
    ob_mail_status *st;
    ASSERT_OK(ob_mail_status_get(j, &st));
    ASSERT_EQ(st->n, 3);
    ASSERT(strncmp(st->message_id, "<", 1) == 0 && strstr(st->message_id, "@example.org>"));
    const char *want[3][2] = {{"ann@example.org", "to"}, {"bob@example.org", "to"},
                              {"cy@example.org", "cc"}};
    for (size_t i = 0; i < 3; i++) {
        ASSERT_STREQ(st->rcpts[i].address, want[i][0]);
        ASSERT_STREQ(st->rcpts[i].type, want[i][1]);
        ASSERT_EQ(st->rcpts[i].state, OB_RCPT_DELIVERED);
        ASSERT_EQ(st->rcpts[i].reply.code, 250);
        ASSERT_EQ(st->rcpts[i].attempts, 1);
        ASSERT(st->rcpts[i].updated_at_ms > 0);
    }
    ob_mail_status_free(st);
    ob_job_free(j);
    uint64_t out[OB_RCPT_STATES];
    ob_mailer_outcomes(mj, out);
    ASSERT_EQ(out[OB_RCPT_DELIVERED], 3);
    ASSERT_EQ(out[OB_RCPT_BOUNCED], 0);
    ob_pool_stop(pool, 5000);
    ob_engine_close(e);
    ob_mailer_free(mj);
    ob_transport_close(t);
}

TEST(a_parsed_message_keeps_the_caller_s_job_members_and_reads_pending_before_it_runs)
{
    ob_mail_init();
    ob_transport *t;
    ob_mailer *mj;
    ob_engine *e = open_mail_engine(&t, &mj);
    json_t *msg = json_pack("{s:s, s:s, s:s, s:s}", "from", "app@example.org", "to",
                            "ann@example.org", "subject", "Later", "text", "t");
    ob_mail *m;
    ASSERT_OK(ob_mail_parse(msg, OB_MAIL_REQUEST, NULL, &m, NULL));
    json_decref(msg);
    ob_new_job tmpl = {.queue = "newsletters", .priority = 7, .unique_key = "welcome:ann",
                       .run_at_ms = ob_now_ms() + 3600000};
    ob_id id, again;
    bool existed = true;
    ASSERT_OK(ob_mail_enqueue(e, m, &tmpl, &id, &existed));
    ASSERT(!existed);
    ASSERT_OK(ob_mail_enqueue(e, m, &tmpl, &again, &existed)); /* the same key: that job */
    ASSERT(existed && memcmp(id.b, again.b, 16) == 0);
    ob_mail_free(m);
    ob_job *j;
    ASSERT_OK(ob_job_get(e, &id, &j));
    ASSERT_EQ(j->state, OB_SCHEDULED);
    ASSERT_STREQ(j->queue, "newsletters");
    ASSERT_EQ(j->priority, 7);
    ob_mail_status *st;
    ASSERT_OK(ob_mail_status_get(j, &st)); /* no attempt yet: every recipient pending */
    ASSERT_EQ(st->n, 1);
    ASSERT_EQ(st->rcpts[0].state, OB_RCPT_PENDING);
    ASSERT_EQ(st->rcpts[0].attempts, 0);
    ob_mail_status_free(st);
    ob_job_free(j);
    ob_engine_close(e);
    ob_mailer_free(mj);
    ob_transport_close(t);
}

TEST(mail_job_calls_refuse_what_is_wrong_naming_it)
{
    ob_mail_init();
    ob_transport *t;
    ob_mailer *mj, *twice;
    ob_engine *e = open_mail_engine(&t, &mj);
    ASSERT_RC(ob_mail_job_register(e, t, NULL, &twice), OB_EINVAL); /* registered already */
    ob_mail_job_opts o;
    ob_mail_job_opts_init(&o);
    o.retry_max_ms = o.retry_min_ms - 1;
    ASSERT_RC(ob_mail_job_register(e, t, &o, &twice), OB_EINVAL);
    json_t *bad = json_pack("{s:s, s:s, s:s}", "from", "app@example.org", "to", "nobody",
                            "subject", "s");
    ob_id id;
    ob_problem p = {"", ""};
    ASSERT_RC(ob_mail_enqueue_json(e, bad, NULL, &id, &p), OB_EINVAL);
    ASSERT(strncmp(p.field, "to", 2) == 0 && p.message[0]);
    json_decref(bad);
    ob_mail_limits l;
    ob_mail_limits_init(&l);
    l.max_recipients = 1;
    json_t *many = json_pack("{s:s, s:[s, s], s:s, s:s}", "from", "app@example.org", "to",
                             "a@example.org", "b@example.org", "subject", "s", "text", "t");
    ASSERT_RC(ob_mail_enqueue_json(e, many, &l, &id, &p), OB_ETOOBIG);
    json_decref(many);
    /* a job that is not a message has no mail status */
    ASSERT_OK(ob_engine_register(e, "script", h_script, NULL, NULL));
    ob_id other = h_add(e, "done");
    ob_job *j;
    ASSERT_OK(ob_job_get(e, &other, &j));
    ob_mail_status *st;
    ASSERT_RC(ob_mail_status_get(j, &st), OB_EINVAL);
    ob_job_free(j);
    ob_engine_close(e);
    ob_mailer_free(mj);
    ob_transport_close(t);
}

/* A relay that answers 421 4.7.0 asks its senders to slow down: the
 * message that got it is retried, and the whole mail queue waits with it,
 * spending none of the other messages' attempts. */
TEST(a_relay_saying_slow_down_holds_the_whole_mail_queue)
{
    ob_mail_init();
    server relay = relay_start("relay", NULL);
    ob_mail_job_opts mo;
    ob_mail_job_opts_init(&mo);
    mo.retry_min_ms = 1500;
    ob_transport *t;
    ob_mailer *mj;
    ob_engine *e = open_relay_engine(&relay, &mo, &t, &mj);
    ob_problem p;
    ob_pool *pool = h_pool(e, 2, 0, NULL);
    json_t *msg = json_pack("{s:s, s:s, s:s, s:s}", "from", "app@example.org", "to",
                            "slow1-ann@example.org", "subject", "first", "text", "1");
    ob_id first, later[3];
    ASSERT_OK(ob_mail_enqueue_json(e, msg, NULL, &first, &p));
    json_decref(msg);
    ob_queue_info q;
    for (int i = 0; i < 400; i++) {
        ASSERT_OK(ob_queue_get(e, OB_MAIL_QUEUE, &q));
        if (q.hold_until_ms)
            break;
        h_sleep_ms(10);
    }
    ASSERT(q.hold_until_ms > ob_now_ms());
    for (int i = 0; i < 3; i++) {
        msg = json_pack("{s:s, s:s, s:s, s:s}", "from", "app@example.org", "to",
                        "bob@example.org", "subject", "later", "text", "2");
        ASSERT_OK(ob_mail_enqueue_json(e, msg, NULL, &later[i], &p));
        json_decref(msg);
    }
    h_sleep_ms(500);
    ASSERT_EQ(rcpt_count(&relay, "bob@example.org"), 0); /* held */
    for (int i = 0; i < 3; i++) {
        ob_job *j;
        ASSERT_OK(ob_job_wait(e, &later[i], 20000, &j));
        ASSERT_EQ(j->state, OB_COMPLETED);
        ASSERT_EQ(j->attempt, 1);
        ASSERT(j->attempted_at_ms >= q.hold_until_ms);
        ob_job_free(j);
    }
    ob_job *j;
    ASSERT_OK(ob_job_wait(e, &first, 20000, &j));
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(j->attempt, 2);
    ob_job_free(j);
    ASSERT_EQ(rcpt_count(&relay, "slow1-ann@example.org"), 2);
    ob_pool_stop(pool, 5000);
    ob_engine_close(e);
    ob_mailer_free(mj);
    ob_transport_close(t);
    server_stop(&relay);
}

/* Send a message from app@example.org to the recipients (a NULL-ended
 * list) and wait for it to be final. */
static ob_job *send_wait(ob_engine *e, const char *const *to)
{
    json_t *list = json_array();
    for (; *to; to++)
        json_array_append_new(list, json_string(*to));
    json_t *msg = json_pack("{s:s, s:o, s:s, s:s}", "from", "app@example.org", "to", list,
                            "subject", "s", "text", "t");
    ob_id id;
    ob_problem p;
    ASSERT_OK(ob_mail_enqueue_json(e, msg, NULL, &id, &p));
    json_decref(msg);
    ob_job *j;
    ASSERT_OK(ob_job_wait(e, &id, 20000, &j));
    return j;
}

static ob_mail_rcpt_status rcpt_of(const ob_job *j, size_t i)
{
    ob_mail_status *st;
    ASSERT_OK(ob_mail_status_get(j, &st));
    ASSERT(i < st->n);
    ob_mail_rcpt_status r = st->rcpts[i];
    r.address = r.type = NULL; /* they live in st */
    ob_mail_status_free(st);
    return r;
}

/* A hard bounce puts the address on the suppression list; later messages
 * skip it (no RCPT), in any case of its domain; one with only suppressed
 * recipients is discarded saying so; a 5xx about the message (554 5.6.0)
 * suppresses nobody; a removed address is tried again. */
TEST(a_hard_bounce_suppresses_the_address_for_later_messages)
{
    ob_mail_init();
    server relay = relay_start("relay", NULL);
    ob_transport *t;
    ob_mailer *mj;
    ob_engine *e = open_relay_engine(&relay, NULL, &t, &mj);
    ob_problem p;
    ob_pool *pool = h_pool(e, 2, 0, NULL);

    ob_job *j = send_wait(e, (const char *[]){"rcpt550-x@example.org", "ann@example.org", NULL});
    ASSERT_EQ(j->state, OB_COMPLETED);
    ASSERT_EQ(rcpt_of(j, 0).state, OB_RCPT_BOUNCED);
    ob_id first = j->id;
    ob_job_free(j);
    ob_suppression s;
    ASSERT_OK(ob_suppression_get(e, "rcpt550-x@EXAMPLE.org", &s, &p));
    ASSERT_STREQ(s.address, "rcpt550-x@example.org");
    ASSERT_EQ(s.reason, OB_SUPPRESS_HARD_BOUNCE);
    ASSERT_EQ(s.reply.code, 550);
    ASSERT_STREQ(s.reply.enhanced, "5.1.1");
    ASSERT(strstr(s.reply.text, "no such user") != NULL);
    ASSERT(s.has_job && memcmp(s.job.b, first.b, 16) == 0);
    ASSERT(s.created_at_ms > 0);

    j = send_wait(e, (const char *[]){"rcpt550-x@Example.ORG", "bob@example.org", NULL});
    ASSERT_EQ(j->state, OB_COMPLETED);
    ob_mail_rcpt_status r = rcpt_of(j, 0);
    ASSERT_EQ(r.state, OB_RCPT_SUPPRESSED);
    ASSERT_EQ(r.attempts, 0);
    ASSERT_EQ(r.reply.code, 0);
    ASSERT(strstr(r.reply.text, "suppressed (hard_bounce since ") != NULL);
    ASSERT(strstr(r.reply.text, "no such user") != NULL);
    ASSERT_EQ(rcpt_of(j, 1).state, OB_RCPT_DELIVERED);
    ob_job_free(j);
    ASSERT_EQ(rcpt_count(&relay, "rcpt550-x@example.org"), 1); /* the first message only */

    j = send_wait(e, (const char *[]){"rcpt550-x@example.org", NULL});
    ASSERT_EQ(j->state, OB_DISCARDED);
    ASSERT(j->nerrors > 0 && strstr(j->errors[j->nerrors - 1].message,
                                    "1 recipient suppressed; rcpt550-x@example.org: suppressed"));
    ob_job_free(j);

    j = send_wait(e, (const char *[]){"data554-y@example.org", NULL}); /* the message refused */
    ASSERT_EQ(j->state, OB_DISCARDED);
    ASSERT_EQ(rcpt_of(j, 0).reply.code, 554);
    ob_job_free(j);
    ASSERT_RC(ob_suppression_get(e, "data554-y@example.org", &s, &p), OB_ENOTFOUND);

    uint64_t out[OB_RCPT_STATES], added, failed;
    ob_mailer_outcomes(mj, out);
    ASSERT_EQ(out[OB_RCPT_SUPPRESSED], 2);
    ASSERT_EQ(out[OB_RCPT_BOUNCED], 2);
    ob_mailer_suppressed(mj, &added, &failed);
    ASSERT_EQ(added, 1);
    ASSERT_EQ(failed, 0);

    ASSERT_OK(ob_suppression_remove(e, "rcpt550-x@example.ORG", &p)); /* reactivated */
    ASSERT_RC(ob_suppression_remove(e, "rcpt550-x@example.org", &p), OB_ENOTFOUND);
    j = send_wait(e, (const char *[]){"rcpt550-x@example.org", NULL});
    ASSERT_EQ(rcpt_of(j, 0).state, OB_RCPT_BOUNCED); /* tried again, and back on the list */
    ob_job_free(j);
    ASSERT_EQ(rcpt_count(&relay, "rcpt550-x@example.org"), 2);
    ASSERT_OK(ob_suppression_get(e, "rcpt550-x@example.org", &s, &p));
    ob_pool_stop(pool, 5000);
    ob_engine_close(e);
    ob_mailer_free(mj);
    ob_transport_close(t);
    server_stop(&relay);
}

/* Entries made by hand: any form of an address, one normal form; filters;
 * what is refused. */
TEST(suppressions_are_added_listed_and_removed_by_hand)
{
    ob_mail_init();
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(test_url("mail.db"), NULL, &e));
    ob_problem p;
    ob_suppression s = {.reason = OB_SUPPRESS_UNSUBSCRIBE};
    snprintf(s.address, sizeof s.address, "Ann <Ann@Bücher.Example>");
    snprintf(s.note, sizeof s.note, "asked by phone");
    bool created = false;
    ASSERT_OK(ob_suppression_add(e, &s, &created, &p));
    ASSERT(created);
    ASSERT_OK(ob_suppression_add(e, &s, &created, &p));
    ASSERT(!created);
    const char *more[] = {"b@example.com", "c@example.com", "d@example.net"};
    for (int i = 0; i < 3; i++) {
        ob_suppression m = {.reason = i == 2 ? OB_SUPPRESS_COMPLAINT : OB_SUPPRESS_MANUAL};
        snprintf(m.address, sizeof m.address, "%s", more[i]);
        ASSERT_OK(ob_suppression_add(e, &m, NULL, &p));
    }
    ob_suppression got;
    /* the local part is compared as written (it may be case-sensitive) */
    ASSERT_RC(ob_suppression_get(e, "ann@BÜCHER.example", &got, &p), OB_ENOTFOUND);
    ASSERT_OK(ob_suppression_get(e, "Ann@bücher.example", &got, &p));
    ASSERT_STREQ(got.address, "Ann@xn--bcher-kva.example");
    ASSERT_EQ(got.reason, OB_SUPPRESS_UNSUBSCRIBE);
    ASSERT_STREQ(got.note, "asked by phone");
    ASSERT_EQ(got.reply.code, 0);
    ASSERT(!got.has_job);
    ob_suppression *v;
    size_t n;
    ASSERT_OK(ob_suppression_list(e, &(ob_suppression_filter){0}, &v, &n));
    ASSERT_EQ(n, 4);
    ASSERT_STREQ(v[0].address, "Ann@xn--bcher-kva.example"); /* bytewise: 'A' < 'b' */
    ASSERT_STREQ(v[3].address, "d@example.net");
    free(v);
    ASSERT_OK(ob_suppression_list(e, &(ob_suppression_filter){.contains = "@EXAMPLE.com",
                                                             .limit = 1}, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(v[0].address, "b@example.com");
    ob_suppression_filter f = {.contains = "@example.com", .after = "b@example.com", .limit = 1};
    free(v);
    ASSERT_OK(ob_suppression_list(e, &f, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(v[0].address, "c@example.com");
    free(v);
    ASSERT_OK(ob_suppression_list(e, &(ob_suppression_filter){.reason = OB_SUPPRESS_COMPLAINT},
                                  &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(v[0].address, "d@example.net");
    free(v);

    ob_suppression bad = {.reason = OB_SUPPRESS_MANUAL};
    snprintf(bad.address, sizeof bad.address, "not an address");
    ASSERT_RC(ob_suppression_add(e, &bad, NULL, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "address");
    snprintf(bad.address, sizeof bad.address, "x@[192.0.2.1]");
    ASSERT_RC(ob_suppression_add(e, &bad, NULL, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "address");
    snprintf(bad.address, sizeof bad.address, "x@example.com");
    bad.reason = 9;
    ASSERT_RC(ob_suppression_add(e, &bad, NULL, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "reason");
    ASSERT_RC(ob_suppression_remove(e, "nobody@example.com", &p), OB_ENOTFOUND);
    ASSERT_RC(ob_suppression_get(e, "", &got, &p), OB_EINVAL);
    ob_suppression_reason rr;
    ASSERT_OK(ob_suppression_reason_parse("spam_complaint", &rr));
    ASSERT_EQ(rr, OB_SUPPRESS_COMPLAINT);
    ASSERT_RC(ob_suppression_reason_parse("HardBounce", &rr), OB_EINVAL);
    ASSERT_OK(ob_suppression_remove(e, "Ann@Bücher.example", &p));
    ASSERT_RC(ob_suppression_get(e, "Ann@xn--bcher-kva.example", &got, &p), OB_ENOTFOUND);
    ob_engine_close(e);
}

static const test_case tests[] = {
    T(a_hard_bounce_suppresses_the_address_for_later_messages),
    T(suppressions_are_added_listed_and_removed_by_hand),
    T(a_relay_saying_slow_down_holds_the_whole_mail_queue),
    T(a_message_enqueued_from_json_is_delivered_and_its_outcome_read_back),
    T(a_parsed_message_keeps_the_caller_s_job_members_and_reads_pending_before_it_runs),
    T(mail_job_calls_refuse_what_is_wrong_naming_it),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
