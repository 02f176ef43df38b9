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

static ob_engine *open_mail_engine(ob_transport **t, ob_mailer **mj)
{
    char url[600];
    snprintf(url, sizeof url, "file:%s/mail", test_dir());
    ob_problem p;
    ASSERT_OK(ob_transport_open(url, NULL, t, &p));
    ob_engine_opts eo;
    ob_engine_opts_init(&eo);
    ob_mail_job_engine_opts(&eo, NULL);
    ASSERT(eo.max_payload >= (10u << 20) / 3 * 4 && eo.max_result >= 64u << 10);
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(test_url("mail.db"), &eo, &e));
    ASSERT_OK(ob_mail_job_register(e, *t, NULL, mj));
    return e;
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
    uint64_t out[4];
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
    char url[128];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d?starttls=no", relay.port);
    ob_transport *t;
    ob_problem p;
    ASSERT_OK(ob_transport_open(url, NULL, &t, &p));
    ob_engine_opts eo;
    ob_engine_opts_init(&eo);
    ob_mail_job_engine_opts(&eo, NULL);
    ob_engine *e = NULL;
    ASSERT_OK(ob_engine_open(test_url("mail.db"), &eo, &e));
    ob_mail_job_opts mo;
    ob_mail_job_opts_init(&mo);
    mo.retry_min_ms = 1500;
    ob_mailer *mj;
    ASSERT_OK(ob_mail_job_register(e, t, &mo, &mj));
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

static const test_case tests[] = {
    T(a_relay_saying_slow_down_holds_the_whole_mail_queue),
    T(a_message_enqueued_from_json_is_delivered_and_its_outcome_read_back),
    T(a_parsed_message_keeps_the_caller_s_job_members_and_reads_pending_before_it_runs),
    T(mail_job_calls_refuse_what_is_wrong_naming_it),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
