/*
 * test_mail.c - the mail part alone: validation (every refusal names its
 * field), the stored form (parses back to the same message), the MIME GMime
 * builds (parsed back by GMime: headers, bodies and attachments equal to
 * the input; no Bcc; CR/LF never in a header), and the file: transport.
 * SMTP delivery is tested against real servers in test_smtp.c.
 */
#include <gmime/gmime.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/mail.h"
#include "mime_helpers.h"
#include "test.h"

/* Parse JSON text as a request; the message or NULL with *p filled. */
static ob_mail *parse_text(const char *json, ob_problem *p)
{
    json_error_t e;
    json_t *v = json_loads(json, JSON_ALLOW_NUL, &e);
    if (!v)
        test_fail(__FILE__, __LINE__, "bad test JSON: %s: %s", e.text, json);
    ob_mail *m = NULL;
    memset(p, 0, sizeof *p);
    int rc = ob_mail_parse(v, OB_MAIL_REQUEST, NULL, &m, p);
    json_decref(v);
    if (rc)
        ASSERT(m == NULL);
    return m;
}

/* The request must be refused, naming `field`. */
static void refused(const char *json, const char *field)
{
    ob_problem p;
    ob_mail *m = parse_text(json, &p);
    if (m) {
        ob_mail_free(m);
        test_fail(__FILE__, __LINE__, "accepted, want refused at %s: %s", field, json);
    }
    if (strcmp(p.field, field) != 0)
        test_fail(__FILE__, __LINE__, "refused at \"%s\" (%s), want \"%s\": %s", p.field,
                  p.message, field, json);
    ASSERT(p.message[0]);
}

#define BASE "\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\""

TEST(a_valid_message_parses_with_its_envelope_and_a_message_id)
{
    ob_problem p;
    ob_mail *m = parse_text("{" BASE "}", &p);
    ASSERT(m);
    ASSERT_STREQ(ob_mail_sender(m), "a@example.com");
    ASSERT_EQ(ob_mail_rcpt_count(m), 1);
    ASSERT_STREQ(ob_mail_rcpt(m, 0), "b@example.com");
    ASSERT(strncmp(ob_mail_message_id(m), "<", 1) == 0);
    ASSERT(strstr(ob_mail_message_id(m), "@example.com>"));
    ob_mail_free(m);

    /* Names, lists, objects, IDN, duplicates removed from the envelope. */
    m = parse_text("{\"from\":{\"name\":\"Ann Lee\",\"address\":\"ann@example.com\"},"
                   "\"to\":[\"Bob <bob@Example.COM>\",\"\\\"Doe, J.\\\" <j@b\\u00fccher.de>\"],"
                   "\"cc\":\"bob@example.com\",\"bcc\":[\"hidden@example.org\"],"
                   "\"subject\":\"\",\"html\":\"<p>x</p>\"}",
                   &p);
    if (!m)
        test_fail(__FILE__, __LINE__, "%s: %s", p.field, p.message);
    ASSERT_EQ(ob_mail_rcpt_count(m), 3);
    ASSERT_STREQ(ob_mail_rcpt(m, 0), "bob@example.com");
    ASSERT_STREQ(ob_mail_rcpt(m, 1), "j@xn--bcher-kva.de");
    ASSERT_STREQ(ob_mail_rcpt(m, 2), "hidden@example.org");
    ASSERT_STREQ(ob_mail_rcpt_type(m, 2), "bcc");
    ob_mail_free(m);
}

TEST(invalid_messages_name_the_field)
{
    refused("[]", "");
    refused("{\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\"}", "from");
    refused("{" BASE ",\"x\":1}", "x");
    refused("{\"from\":\"a@example.com\",\"subject\":\"s\",\"text\":\"t\"}", "to");
    refused("{\"from\":\"a@example.com\",\"to\":[],\"subject\":\"s\",\"text\":\"t\"}", "to");
    refused("{\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"text\":\"t\"}", "subject");
    refused("{\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"subject\":\"s\"}", "text");
    refused("{\"from\":\"not an address\",\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\"}",
            "from");
    refused("{\"from\":\"a@example.com\",\"to\":[\"b@example.com\",\"c@\"],\"subject\":\"s\","
            "\"text\":\"t\"}",
            "to[1]");
    refused("{\"from\":\"a@example.com\",\"to\":\"a@b.com, c@d.com\",\"subject\":\"s\",\"text\":\"t\"}",
            "to");
    refused("{\"from\":\"a@example.com\",\"to\":\"group: a@b.com;\",\"subject\":\"s\",\"text\":\"t\"}",
            "to");
    refused("{\"from\":\"a@[127.0.0.1]\",\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\"}",
            "from");
    refused("{\"from\":\"j\\u00f6rg@example.com\",\"to\":\"b@example.com\",\"subject\":\"s\","
            "\"text\":\"t\"}",
            "from");
    refused("{\"from\":\"a@-bad-.com\",\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\"}",
            "from");
    refused("{\"from\":\"a..b@example.com\",\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"t\"}",
            "from");
    refused("{\"from\":{\"name\":\"x\\ny\",\"address\":\"a@example.com\"},\"to\":\"b@example.com\","
            "\"subject\":\"s\",\"text\":\"t\"}",
            "from");
    refused("{\"from\":{\"address\":\"A <a@example.com>\"},\"to\":\"b@example.com\","
            "\"subject\":\"s\",\"text\":\"t\"}",
            "from");
    /* Header injection, every way in. */
    refused("{\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"subject\":\"hi\\r\\nBcc: x@y.z\","
            "\"text\":\"t\"}",
            "subject");
    refused("{\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"subject\":\"a\\u0000b\","
            "\"text\":\"t\"}",
            "subject");
    refused("{\"from\":\"=?utf-8?q?x=0D=0ABcc:_y@z.com?= <a@example.com>\",\"to\":\"b@example.com\","
            "\"subject\":\"s\",\"text\":\"t\"}",
            "from");
    refused("{" BASE ",\"headers\":{\"X-A\":\"1\\r\\nBcc: x@y.z\"}}", "headers.X-A");
    refused("{" BASE ",\"headers\":{\"X-A\\r\\nBcc\":\"1\"}}", "headers.X-A\r\nBcc");
    refused("{" BASE ",\"headers\":{\"Bcc\":\"x@y.z\"}}", "headers.Bcc");
    refused("{" BASE ",\"headers\":{\"content-type\":\"text/html\"}}", "headers.content-type");
    refused("{" BASE ",\"headers\":{\"MIME-Version\":\"2\"}}", "headers.MIME-Version");
    refused("{" BASE ",\"headers\":{\"X-A\":\"1\",\"x-a\":\"2\"}}", "headers.x-a");
    refused("{" BASE ",\"headers\":{\"X-A\":1}}", "headers.X-A");
    refused("{" BASE ",\"attachments\":[{\"filename\":\"a\\nb\",\"content\":\"\"}]}",
            "attachments[0].filename");
    refused("{" BASE ",\"attachments\":[{\"filename\":\"../a\",\"content\":\"\"}]}",
            "attachments[0].filename");
    refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content\":\"!!!!\"}]}",
            "attachments[0].content");
    refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content\":\"QQ=\"}]}",
            "attachments[0].content");
    refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content_type\":\"text/plain; "
            "x=\\\"\\r\\n\\\"\",\"content\":\"\"}]}",
            "attachments[0].content_type");
    refused("{" BASE ",\"attachments\":[{\"filename\":\"a\",\"content\":\"\",\"x\":1}]}",
            "attachments[0].x");
    refused("{" BASE ",\"tags\":[\"a b\"]}", "tags[0]");
    refused("{" BASE ",\"metadata\":[]}", "metadata");
    refused("{" BASE ",\"message_id\":\"<a@b>\"}", "message_id");
}

TEST(a_message_past_a_limit_is_refused_naming_it)
{
    ob_mail_limits l;
    ob_mail_limits_init(&l);
    l.max_recipients = 2;
    l.max_size = 10;
    json_t *v = json_loads("{\"from\":\"a@example.com\",\"to\":[\"b@example.com\",\"c@example.com\"],"
                           "\"cc\":\"d@example.com\",\"subject\":\"s\",\"text\":\"t\"}",
                           0, NULL);
    ob_mail *m = NULL;
    ob_problem p;
    ASSERT_RC(ob_mail_parse(v, OB_MAIL_REQUEST, &l, &m, &p), OB_ETOOBIG);
    ASSERT_STREQ(p.field, "cc");
    json_decref(v);
    v = json_loads("{\"from\":\"a@example.com\",\"to\":\"b@example.com\",\"subject\":\"s\","
                   "\"text\":\"0123456789abc\"}",
                   0, NULL);
    ASSERT_RC(ob_mail_parse(v, OB_MAIL_REQUEST, &l, &m, &p), OB_ETOOBIG);
    ASSERT_STREQ(p.field, "text");
    json_decref(v);
}

/* Every physical line ends with CRLF, is at most 998 bytes, and no header
 * line is anything but a field or a continuation (no injected header). */
static void check_lines(const char *data, size_t len, const char *const *allowed)
{
    bool in_headers = true;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        ASSERT(i > 0 && data[i - 1] == '\r');
        size_t n = i - 1 - start;
        ASSERT(n <= 998);
        if (in_headers && n == 0)
            in_headers = false;
        else if (in_headers && data[start] != ' ' && data[start] != '\t') {
            const char *colon = memchr(data + start, ':', n);
            ASSERT(colon);
            bool ok = false;
            for (int k = 0; allowed[k] && !ok; k++)
                ok = (size_t)(colon - data - start) == strlen(allowed[k]) &&
                     strncasecmp(data + start, allowed[k], strlen(allowed[k])) == 0;
            if (!ok)
                test_fail(__FILE__, __LINE__, "unexpected header: %.*s", (int)n, data + start);
        }
        start = i + 1;
    }
    ASSERT(!in_headers);
}

static const char *const std_headers[] = {"From", "To", "Cc", "Reply-To", "Subject", "Date",
                                          "Message-Id", "MIME-Version", "Content-Type",
                                          "Content-Transfer-Encoding", "X-Campaign",
                                          "List-Unsubscribe", NULL};

TEST(a_built_message_parses_back_to_the_same_headers_bodies_and_attachments)
{
    ob_mail_init();
    unsigned char bin[3000];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 7 + 3);
    /* base64 of bin, made with GLib (not our encoder). */
    gchar *b64 = g_base64_encode(bin, sizeof bin);
    char long_line[1500];
    memset(long_line, 'x', sizeof long_line - 1);
    long_line[sizeof long_line - 1] = '\0';
    char *json = NULL;
    ASSERT(asprintf(&json,
                    "{\"from\":{\"name\":\"J\\u00f6rg M\\u00fcller\",\"address\":\"j@example.com\"},"
                    "\"to\":[\"Ann <ann@example.com>\"],\"cc\":\"cc@example.com\","
                    "\"bcc\":\"secret@example.org\",\"reply_to\":\"r@example.com\","
                    "\"subject\":\"Gr\\u00fc\\u00dfe \\u2014 a long subject that goes on and on "
                    "and on to make the header fold somewhere along the way\","
                    "\"text\":\"line one\\nline two\\r\\n. dot\\n%s\\nend \\u00e9\","
                    "\"html\":\"<p>h\\u00e9llo</p>\","
                    "\"headers\":{\"X-Campaign\":\"w\\u00e9ek 48\",\"List-Unsubscribe\":\"<mailto:u@example.com>\"},"
                    "\"attachments\":[{\"filename\":\"r\\u00e9sum\\u00e9.bin\","
                    "\"content_type\":\"application/octet-stream\",\"content\":\"%s\"}]}",
                    long_line, b64) > 0);
    ob_problem p;
    ob_mail *m = parse_text(json, &p);
    if (!m)
        test_fail(__FILE__, __LINE__, "%s: %s", p.field, p.message);
    char *data;
    size_t len;
    ASSERT_OK(ob_mail_build(m, &data, &len));
    ASSERT_EQ(strlen(data), len);
    check_lines(data, len, std_headers);
    ASSERT(!strstr(data, "secret@example.org"));
    ASSERT(!strstr(data, "Bcc"));

    GMimeMessage *msg = t_mime_parse(data, len);
    ASSERT_STREQ(g_mime_message_get_subject(msg),
                 "Gr\xc3\xbc\xc3\x9f" "e \xe2\x80\x94 a long subject that goes on and on and on "
                 "to make the header fold somewhere along the way");
    InternetAddressList *from = g_mime_message_get_from(msg);
    InternetAddress *f = internet_address_list_get_address(from, 0);
    ASSERT_STREQ(internet_address_get_name(f), "J\xc3\xb6rg M\xc3\xbc" "ller");
    char want_id[256];
    snprintf(want_id, sizeof want_id, "<%s>", g_mime_message_get_message_id(msg));
    ASSERT_STREQ(want_id, ob_mail_message_id(m));
    ASSERT_STREQ(g_mime_object_get_header(GMIME_OBJECT(msg), "X-Campaign"), "w\xc3\xa9" "ek 48");

    GMimeObject *top = g_mime_message_get_mime_part(msg);
    ASSERT(GMIME_IS_MULTIPART(top));
    ASSERT_EQ(g_mime_multipart_get_count(GMIME_MULTIPART(top)), 2);
    GMimeObject *alt = g_mime_multipart_get_part(GMIME_MULTIPART(top), 0);
    ASSERT(GMIME_IS_MULTIPART(alt));
    GMimeObject *tp = g_mime_multipart_get_part(GMIME_MULTIPART(alt), 0);
    char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(tp));
    char *want = NULL;
    ASSERT(asprintf(&want, "line one\r\nline two\r\n. dot\r\n%s\r\nend \xc3\xa9", long_line) > 0);
    ASSERT_STREQ(text, want);
    free(want);
    g_free(text);
    GMimeObject *att = g_mime_multipart_get_part(GMIME_MULTIPART(top), 1);
    ASSERT_STREQ(g_mime_part_get_filename(GMIME_PART(att)), "r\xc3\xa9sum\xc3\xa9.bin");
    size_t n;
    char *content = t_mime_content(att, &n);
    ASSERT_EQ(n, sizeof bin);
    ASSERT(memcmp(content, bin, n) == 0);
    free(content);
    g_object_unref(msg);

    /* The stored form parses back to a message that builds the same bytes. */
    json_t *stored = ob_mail_to_json(m);
    ASSERT(stored);
    ob_mail *again = NULL;
    if (ob_mail_parse(stored, OB_MAIL_STORED, NULL, &again, &p))
        test_fail(__FILE__, __LINE__, "stored form: %s: %s", p.field, p.message);
    char *data2;
    size_t len2;
    ASSERT_OK(ob_mail_build(again, &data2, &len2));
    ASSERT_EQ(len2, len);
    ASSERT(memcmp(data, data2, len) == 0);
    /* A request may not carry the stored-only members; a stored form must. */
    json_object_del(stored, "date");
    ob_mail *bad = NULL;
    ASSERT_RC(ob_mail_parse(stored, OB_MAIL_STORED, NULL, &bad, &p), OB_EINVAL);
    ASSERT_STREQ(p.field, "date");
    json_decref(stored);
    free(data2);
    ob_mail_free(again);
    free(data);
    ob_mail_free(m);
    free(json);
    g_free(b64);
}

TEST(simple_text_is_7bit)
{
    ob_problem p;
    ob_mail *m = parse_text("{" BASE "}", &p);
    char *data;
    size_t len;
    ASSERT_OK(ob_mail_build(m, &data, &len));
    ASSERT(strstr(data, "Content-Type: text/plain"));
    ASSERT(strstr(data, "\r\n\r\nt"));
    check_lines(data, len, std_headers);
    free(data);
    ob_mail_free(m);
}

TEST(file_transport_writes_eml)
{
    ob_transport *t;
    ob_problem p;
    char url[512];
    snprintf(url, sizeof url, "file:%s/mail", test_dir());
    ASSERT_OK(ob_transport_open(url, NULL, &t, &p));
    ASSERT_STREQ(ob_transport_name(t), url);
    const char *rcpts[] = {"a@example.com", "b@example.com"};
    ob_envelope env = {.from = "f@example.com", .rcpts = rcpts, .nrcpts = 2,
                       .data = "Subject: x\r\n\r\nbody\r\n", .len = 21, .name = "m1"};
    ob_mail_reply r[2];
    ASSERT_OK(ob_transport_send(t, &env, r, ob_now_ms() + 1000));
    ASSERT_EQ(r[0].code, 250);
    ASSERT_EQ(r[1].code, 250);
    ASSERT_STREQ(r[0].enhanced, "2.0.0");
    ASSERT_EQ(ob_mail_reply_state(&r[0]), OB_RCPT_DELIVERED);
    char path[600], buf[64] = "";
    snprintf(path, sizeof path, "%s/mail/m1.eml", test_dir());
    FILE *f = fopen(path, "rb");
    ASSERT(f);
    ASSERT_EQ(fread(buf, 1, sizeof buf, f), 21);
    fclose(f);
    ASSERT(memcmp(buf, env.data, 21) == 0);
    env.name = "../escape";
    ASSERT_RC(ob_transport_send(t, &env, r, ob_now_ms() + 1000), OB_EINVAL);
    ob_transport_close(t);

    /* A directory that cannot be made: refused at open, with the reason. */
    ASSERT_RC(ob_transport_open("file:/proc/nope/mail", NULL, &t, &p), OB_EINVAL);
    ASSERT(strstr(p.message, "/proc/nope/mail"));
    ASSERT_STREQ(p.field, "url");
}

TEST(transport_urls_are_parsed_and_shown_without_passwords_or_refused)
{
    ob_transport *t;
    ob_problem p;
    ob_transport_opts o;
    ob_transport_opts_init(&o);
    ASSERT_OK(ob_transport_open("smtp://user:p%40ss@relay.example.com:2525?starttls=no", &o, &t,
                                &p));
    ASSERT_STREQ(ob_transport_name(t), "smtp://user@relay.example.com:2525?starttls=no");
    ob_transport_close(t);
    ASSERT_OK(ob_transport_open("smtp://relay.example.com", &o, &t, &p));
    ASSERT_STREQ(ob_transport_name(t), "smtp://relay.example.com:587");
    ob_transport_close(t);
    const char *bad[] = {"smtp://", "smtp://h:0", "smtp://h:99999", "smtp://h:25?tls=1",
                         "smtp://u:%zz@h", "smtp://[::1]:25", "smtps://h", "http://h", "smtp://h h",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        p.message[0] = '\0';
        if (ob_transport_open(bad[i], &o, &t, &p) != OB_EINVAL)
            test_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
        ASSERT(p.message[0]);
        ASSERT_STREQ(p.field, "url");
    }
    o.ca_file = "/nonexistent.pem";
    ASSERT_RC(ob_transport_open("smtp://h", &o, &t, &p), OB_EINVAL);
    ASSERT(strstr(p.message, "/nonexistent.pem"));
    ASSERT_STREQ(p.field, "ca_file");
}

TEST(smtp_reply_codes_map_to_delivered_deferred_or_bounced)
{
    ob_mail_reply r = {.code = 250};
    ASSERT_EQ(ob_mail_reply_state(&r), OB_RCPT_DELIVERED);
    r.code = 451;
    ASSERT_EQ(ob_mail_reply_state(&r), OB_RCPT_DEFERRED);
    r.code = 0;
    ASSERT_EQ(ob_mail_reply_state(&r), OB_RCPT_DEFERRED);
    r.code = 550;
    ASSERT_EQ(ob_mail_reply_state(&r), OB_RCPT_BOUNCED);
    r.code = 354;
    ASSERT_EQ(ob_mail_reply_state(&r), OB_RCPT_DEFERRED);
    ASSERT_STREQ(ob_rcpt_state_name(OB_RCPT_BOUNCED), "bounced");
    ASSERT_STREQ(ob_rcpt_state_name(OB_RCPT_SUPPRESSED), "suppressed");
    ASSERT_STREQ(ob_rcpt_state_name((ob_rcpt_state)OB_RCPT_STATES), "unknown");
}

TEST(a_hard_bounce_is_a_5xx_about_the_address)
{
    struct {
        int code;
        const char *enhanced;
        bool hard;
    } c[] = {
        {550, "5.1.1", true},  {550, "", true},       {551, "5.1.6", true}, {552, "5.2.2", true},
        {550, "5.0.0", true},  {554, "5.4.4", true},  {552, "5.3.4", false},
        {554, "5.6.0", false}, {550, "5.7.1", false}, {500, "5.5.2", false},
        {451, "4.1.1", false}, {250, "2.0.0", false}, {0, "", false},
        {550, "5.12.1", false}, {550, "x", true},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        ob_mail_reply r = {.code = c[i].code};
        snprintf(r.enhanced, sizeof r.enhanced, "%s", c[i].enhanced);
        if (ob_mail_reply_hard(&r) != c[i].hard)
            test_fail(__FILE__, __LINE__, "%d %s: hard should be %d", c[i].code, c[i].enhanced,
                      c[i].hard);
    }
}

TEST(addresses_have_one_normal_form)
{
    struct {
        const char *in, *out;
    } ok[] = {
        {"ann@example.com", "ann@example.com"},
        {"Ann@EXAMPLE.Com", "Ann@example.com"},
        {"Ann Lee <ann@Example.com>", "ann@example.com"},
        {"x@Bücher.Example", "x@xn--bcher-kva.example"},
        {"x@xn--bcher-kva.example", "x@xn--bcher-kva.example"},
        {"\"a.b\"@example.com", "\"a.b\"@example.com"},
    };
    char out[OB_MAIL_ADDR_MAX + 1];
    ob_problem p;
    ob_mail_init();
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (ob_mail_address_normal(ok[i].in, out, &p))
            test_fail(__FILE__, __LINE__, "%s: %s", ok[i].in, p.message);
        ASSERT_STREQ(out, ok[i].out);
    }
    const char *bad[] = {"", "nobody", "a@b@c", "x@[192.0.2.1]", "a, b@example.com",
                         "é@example.com", "x@-bad-.example", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (ob_mail_address_normal(bad[i], out, &p) != OB_EINVAL)
            test_fail(__FILE__, __LINE__, "%s: taken as %s", bad[i] ? bad[i] : "NULL", out);
        ASSERT_STREQ(p.field, "address");
    }
}

/* Build a message from JSON and parse the bytes back with GMime. */
static GMimeMessage *built(const char *json, char **data)
{
    ob_problem p;
    ob_mail *m = parse_text(json, &p);
    if (!m)
        test_fail(__FILE__, __LINE__, "%s: %s: %s", p.field, p.message, json);
    size_t len;
    ASSERT_OK(ob_mail_build(m, data, &len));
    ob_mail_free(m);
    return t_mime_parse(*data, len);
}

TEST(text_that_looks_like_encoded_words_is_read_literally)
{
    ob_mail_init();
    /* decoded as RFC 2047, this would be "a\r\nBcc: x@evil.example" */
    const char *word = "=?UTF-8?Q?a=0D=0ABcc:_x@evil.example?=";
    char json[1024], *data;
    snprintf(json, sizeof json,
             "{\"from\":{\"name\":\"%s\",\"address\":\"a@example.com\"},"
             "\"to\":\"b@example.com\",\"subject\":\"hi %s there\",\"text\":\"t\","
             "\"headers\":{\"X-Note\":\"%s\"}}", word, word, word);
    GMimeMessage *msg = built(json, &data);
    char want[256];
    snprintf(want, sizeof want, "hi %s there", word);
    ASSERT_STREQ(g_mime_message_get_subject(msg), want);
    InternetAddressList *from = g_mime_message_get_from(msg);
    ASSERT_STREQ(internet_address_get_name(internet_address_list_get_address(from, 0)), word);
    /* GMime hands custom headers back decoded, as a reader shows them */
    ASSERT_STREQ(g_mime_object_get_header(GMIME_OBJECT(msg), "X-Note"), word);
    ASSERT(!strstr(data, "\r\nBcc") && !strstr(data, "evil.example?=")); /* encoded, not raw */
    free(data);
    g_object_unref(msg);
}

TEST(boundaries_are_random_and_kept_in_the_stored_form)
{
    ob_mail_init();
    const char *json = "{" BASE ",\"html\":\"<p>h</p>\"}";
    ob_problem p;
    ob_mail *a = parse_text(json, &p), *b = parse_text(json, &p);
    json_t *sa = ob_mail_to_json(a), *sb = ob_mail_to_json(b);
    const char *ba = json_string_value(json_object_get(sa, "boundary"));
    const char *bb = json_string_value(json_object_get(sb, "boundary"));
    ASSERT(ba && bb && strlen(ba) == 32 && strcmp(ba, bb) != 0);
    const char *id = ob_mail_message_id(a);
    char *data;
    size_t len;
    ASSERT_OK(ob_mail_build(a, &data, &len));
    char want[64];
    snprintf(want, sizeof want, "--=-%s-alternative", ba);
    ASSERT(strstr(data, want) != NULL);
    snprintf(want, sizeof want, "=-%.32s", id + 1); /* not the Message-ID's */
    ASSERT(!strstr(data, want));
    /* the stored form builds the same bytes; a client may not choose one */
    ob_mail *again = NULL;
    ASSERT_OK(ob_mail_parse(sa, OB_MAIL_STORED, NULL, &again, &p));
    char *data2;
    ASSERT_OK(ob_mail_build(again, &data2, &len));
    ASSERT_STREQ(data, data2);
    refused("{" BASE ",\"boundary\":\"0123456789abcdef0123456789abcdef\"}", "boundary");
    free(data), free(data2);
    json_decref(sa), json_decref(sb);
    ob_mail_free(a), ob_mail_free(b), ob_mail_free(again);
}

TEST(addresses_smtp_cannot_carry_and_relay_headers_are_refused)
{
    ob_mail_init();
    const char *to[] = {"\\\"a b\\\"@example.com", "\\\"a>b\\\"@example.com",
                        "\\\"a<b\\\"@example.com", "\\\"x> NOTIFY=NEVER\\\"@example.com",
                        "\\\"a:a@[](i", "a@b (comment", "a@b) x", "\\\"a@example.com"};
    for (size_t i = 0; i < sizeof to / sizeof *to; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"from\":\"a@example.com\",\"to\":\"%s\",\"subject\":\"s\","
                                    "\"text\":\"t\"}", to[i]);
        refused(json, "to");
    }
    char json[256];
    snprintf(json, sizeof json, "{\"from\":\"\\\"a:a@[](i\",\"to\":\"b@example.com\","
                                "\"subject\":\"s\",\"text\":\"t\"}");
    refused(json, "from");
    const char *reserved[] = {"Authentication-Results", "ARC-Seal", "arc-message-signature",
                              "DKIM-Signature", "Received", "Received-SPF", "Return-Path"};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        char field[64];
        snprintf(json, sizeof json, "{" BASE ",\"headers\":{\"%s\":\"x\"}}", reserved[i]);
        snprintf(field, sizeof field, "headers.%s", reserved[i]);
        refused(json, field);
    }
    /* a quoted local part without those is still fine */
    ob_problem p;
    ob_mail *m = parse_text("{\"from\":\"a@example.com\",\"to\":\"\\\"a.b+c\\\"@example.com\","
                            "\"subject\":\"s\",\"text\":\"t\"}", &p);
    ASSERT(m != NULL);
    ob_mail_free(m);
}

static const test_case tests[] = {
    T(text_that_looks_like_encoded_words_is_read_literally),
    T(boundaries_are_random_and_kept_in_the_stored_form),
    T(addresses_smtp_cannot_carry_and_relay_headers_are_refused),
    T(a_valid_message_parses_with_its_envelope_and_a_message_id), T(invalid_messages_name_the_field), T(a_message_past_a_limit_is_refused_naming_it),
    T(a_built_message_parses_back_to_the_same_headers_bodies_and_attachments),      T(simple_text_is_7bit),             T(file_transport_writes_eml),
    T(transport_urls_are_parsed_and_shown_without_passwords_or_refused),       T(smtp_reply_codes_map_to_delivered_deferred_or_bounced),
    T(a_hard_bounce_is_a_5xx_about_the_address),
    T(addresses_have_one_normal_form),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
