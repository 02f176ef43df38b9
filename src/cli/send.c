/*
 * send.c - `outbox send`: a mail through outboxd's POST /v1/messages.
 *
 * The message comes from options (--from, --to, --subject, --text, files
 * to attach, ...), from a JSON file in the API's own form (--json-file), or
 * from an RFC 5322 file (--eml), which GMime reads into the same form:
 * From, To, Cc, Reply-To, Subject, the text and html bodies, attachments,
 * and every other header the API accepts (List-Unsubscribe, X-...). Options given with --json-file or --eml override
 * what the file says (--to adds recipients).
 *
 * --wait [S] holds until the message is final and prints each recipient's
 * outcome (the relay's code and reply). Exit 0 only when every recipient
 * was delivered; 1 when one bounced (or the request was refused); 4 when S
 * passed first.
 */
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"

static void help(void)
{
    printf("usage: outbox send [--from ADDR] --to ADDR [--to ADDR ...] [--cc ADDR] [--bcc ADDR]\n"
           "         [--reply-to ADDR] --subject TEXT (--text TEXT | --text-file FILE)\n"
           "         [--html-file FILE] [--attach FILE ...] [--header 'Name: value' ...]\n"
           "         [--send-at TIME] [--callback-url URL] [--idempotency-key K] [--wait [S]]\n"
           "       outbox send --json-file FILE [options]   the API's JSON form\n"
           "       outbox send --eml FILE [options]         an RFC 5322 message\n"
           "  Send a mail through outboxd. ADDR is \"name@example.com\" or\n"
           "  \"Name <name@example.com>\". --from defaults to $OUTBOX_FROM, else\n"
           "  outbox@localhost. --wait (S seconds, default 120) shows each recipient's\n"
           "  outcome; exit 0 only when every one was delivered.\n"
           "  (--json-file, not --json: --json is the machine-output flag.)\n");
}

/* The whole of a file (malloc'd, NUL-terminated), or NULL with a message. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "outbox: cannot read %s\n", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    size_t got;
    while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *t = cap < (64u << 20) ? realloc(s, cap *= 2) : NULL;
            if (!t) {
                fprintf(stderr, "outbox: %s is larger than 64 MiB\n", path);
                free(s);
                s = NULL;
            }
            s = t;
        }
    }
    fclose(f);
    if (s) {
        s[n] = '\0';
        if (len)
            *len = n;
    }
    return s;
}

static const char *content_type_of(const char *path)
{
    static const char *const map[][2] = {
        {".txt", "text/plain"},       {".html", "text/html"},      {".htm", "text/html"},
        {".csv", "text/csv"},         {".json", "application/json"}, {".pdf", "application/pdf"},
        {".zip", "application/zip"},  {".png", "image/png"},       {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},      {".gif", "image/gif"},       {".svg", "image/svg+xml"},
        {".ics", "text/calendar"},    {".xml", "application/xml"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot, map[i][0]))
            return map[i][1];
    return "application/octet-stream";
}

/* Append an attachment {filename, content_type, content} made from a file. */
static bool attach(json_t *msg, const char *path)
{
    size_t n;
    char *data = read_file(path, &n);
    if (!data)
        return false;
    gchar *b64 = g_base64_encode((const guchar *)data, n);
    free(data);
    const char *slash = strrchr(path, '/');
    json_t *list = json_object_get(msg, "attachments");
    if (!list)
        json_object_set_new(msg, "attachments", list = json_array());
    json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "filename", slash ? slash + 1 : path,
                                          "content_type", content_type_of(path), "content", b64));
    g_free(b64);
    return true;
}

static void add_address(json_t *msg, const char *list, const char *addr)
{
    json_t *l = json_object_get(msg, list);
    if (json_is_string(l)) { /* the JSON form allows one string: make it a list */
        json_t *arr = json_array();
        json_array_append(arr, l);
        json_object_set_new(msg, list, l = arr);
    } else if (!l) {
        json_object_set_new(msg, list, l = json_array());
    }
    json_array_append_new(l, json_string(addr));
}

/* ---- --eml ---- */

/* Headers outboxd writes itself, or that relays and verifiers write: the
 * API refuses them from a client (the list of src/mail/message.c, which
 * this client cannot include). Every other header of an .eml is kept
 * (List-Unsubscribe, List-Unsubscribe-Post, X-..., ...). */
static bool outbox_sets(const char *n)
{
    static const char *const names[] = {
        "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
        "mime-version", "return-path", "received", "delivered-to", "received-spf",
        "authentication-results", "dkim-signature", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcasecmp(n, names[i]))
            return true;
    return !strncasecmp(n, "content-", 8) || !strncasecmp(n, "resent-", 7) ||
           !strncasecmp(n, "arc-", 4);
}

static void eml_addresses(json_t *msg, GMimeMessage *m, GMimeAddressType type, const char *key)
{
    InternetAddressList *l = g_mime_message_get_addresses(m, type);
    for (int i = 0; l && i < internet_address_list_length(l); i++) {
        InternetAddress *ia = internet_address_list_get_address(l, i);
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            continue;
        const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
        const char *name = internet_address_get_name(ia);
        json_t *a = json_pack("{s:s}", "address", addr);
        if (name && *name)
            json_object_set_new(a, "name", json_string(name));
        if (type == GMIME_ADDRESS_TYPE_FROM) {
            json_object_set_new(msg, key, a);
            return;
        }
        json_t *arr = json_object_get(msg, key);
        if (!arr)
            json_object_set_new(msg, key, arr = json_array());
        json_array_append_new(arr, a);
    }
}

static void eml_part(GMimeObject *parent, GMimeObject *part, gpointer arg)
{
    (void)parent;
    json_t *msg = arg;
    if (!GMIME_IS_PART(part))
        return;
    GMimePart *p = GMIME_PART(part);
    GMimeContentType *ct = g_mime_object_get_content_type(part);
    const char *filename = g_mime_part_get_filename(p);
    bool text = !filename && g_mime_content_type_is_type(ct, "text", "plain") &&
                !json_object_get(msg, "text");
    bool html = !filename && g_mime_content_type_is_type(ct, "text", "html") &&
                !json_object_get(msg, "html");
    if (text || html) {
        char *s = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
        json_object_set_new(msg, text ? "text" : "html", json_string(s ? s : ""));
        g_free(s);
        return;
    }
    GMimeStream *out = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(p), out);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
    gchar *b64 = g_base64_encode(ba->data, ba->len);
    char *type = g_mime_content_type_get_mime_type(ct);
    json_t *list = json_object_get(msg, "attachments");
    if (!list)
        json_object_set_new(msg, "attachments", list = json_array());
    json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "filename",
                                          filename ? filename : "attachment", "content_type",
                                          type, "content", b64));
    g_free(type);
    g_free(b64);
    g_object_unref(out);
}

/* The API's JSON form of an RFC 5322 file, or NULL with a message. */
static json_t *from_eml(const char *path)
{
    g_mime_init();
    GMimeStream *s = g_mime_stream_file_open(path, "rb", NULL);
    if (!s) {
        fprintf(stderr, "outbox: cannot read %s\n", path);
        return NULL;
    }
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(s);
    if (!m) {
        fprintf(stderr, "outbox: %s is not a mail message\n", path);
        return NULL;
    }
    json_t *msg = json_object();
    eml_addresses(msg, m, GMIME_ADDRESS_TYPE_FROM, "from");
    eml_addresses(msg, m, GMIME_ADDRESS_TYPE_TO, "to");
    eml_addresses(msg, m, GMIME_ADDRESS_TYPE_CC, "cc");
    eml_addresses(msg, m, GMIME_ADDRESS_TYPE_REPLY_TO, "reply_to");
    const char *subject = g_mime_message_get_subject(m);
    json_object_set_new(msg, "subject", json_string(subject ? subject : ""));
    GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
    json_t *headers = json_object();
    for (int i = 0; i < g_mime_header_list_get_count(hl); i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h);
        if (!outbox_sets(name) && !json_object_get(headers, name))
            json_object_set_new(headers, name, json_string(g_mime_header_get_value(h)));
    }
    if (json_object_size(headers))
        json_object_set_new(msg, "headers", headers);
    else
        json_decref(headers);
    GMimeObject *body = g_mime_message_get_mime_part(m);
    if (GMIME_IS_MULTIPART(body))
        g_mime_multipart_foreach(GMIME_MULTIPART(body), eml_part, msg);
    else if (body)
        eml_part(NULL, body, msg);
    g_object_unref(m);
    return msg;
}

/* ---- the verb ---- */

/* EX_OK when every recipient was delivered, else EX_FAILED. */
static int outcome_rc(const json_t *msg)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(msg, "recipients"), i, r)
        if (strcmp(str(r, "state"), "delivered"))
            return EX_FAILED;
    return EX_OK;
}

enum { S_TO = 256, S_CC, S_BCC, S_REPLY_TO, S_FROM, S_SUBJECT, S_TEXT, S_SEND_AT, S_CALLBACK,
       S_TEXT_FILE, S_HTML_FILE, S_ATTACH, S_HEADER, S_IDEM, S_JSON_FILE, S_EML, S_WAIT };

/* One option into m (or the request's settings). EX_OK or an exit code. */
static int take_option(json_t *m, int c, const char *v, const char **idem)
{
    static const char *const keys[] = {[S_TO - S_TO] = "to", [S_CC - S_TO] = "cc",
                                       [S_BCC - S_TO] = "bcc", [S_REPLY_TO - S_TO] = "reply_to",
                                       [S_FROM - S_TO] = "from", [S_SUBJECT - S_TO] = "subject",
                                       [S_TEXT - S_TO] = "text", [S_SEND_AT - S_TO] = "send_at",
                                       [S_CALLBACK - S_TO] = "callback_url"};
    json_t *file = NULL;
    switch (c) {
    case S_TO: case S_CC: case S_BCC: case S_REPLY_TO:
        add_address(m, keys[c - S_TO], v);
        return EX_OK;
    case S_FROM: case S_SUBJECT: case S_TEXT: case S_SEND_AT: case S_CALLBACK:
        json_object_set_new(m, keys[c - S_TO], json_string(v));
        return EX_OK;
    case S_TEXT_FILE: case S_HTML_FILE: {
        char *text = read_file(v, NULL);
        if (!text)
            return EX_USAGE;
        json_object_set_new(m, c == S_TEXT_FILE ? "text" : "html", json_string(text));
        free(text);
        return EX_OK;
    }
    case S_ATTACH:
        return attach(m, v) ? EX_OK : EX_USAGE;
    case S_HEADER: {
        const char *colon = strchr(v, ':');
        if (!colon)
            return usage_error("send: --header wants 'Name: value'");
        json_t *h = json_object_get(m, "headers");
        if (!h)
            json_object_set_new(m, "headers", h = json_object());
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(colon - v), v);
        const char *val = colon + 1;
        while (*val == ' ')
            val++;
        json_object_set_new(h, name, json_string(val));
        return EX_OK;
    }
    case S_IDEM:
        *idem = v;
        return EX_OK;
    case S_JSON_FILE: {
        json_error_t e;
        if (!(file = json_load_file(v, 0, &e)) || !json_is_object(file)) {
            json_decref(file);
            return usage_error("send: %s: not a JSON object (%s)", v, e.text);
        }
        break;
    }
    case S_EML:
        if (!(file = from_eml(v)))
            return EX_USAGE;
        break;
    }
    json_object_update_missing(m, file); /* the file; options given before it win */
    json_decref(file);
    return EX_OK;
}

/* Options into msg; the request's extra settings into the out-params. */
static int parse_options(int argc, char **argv, json_t **msg, const char **idem, double *wait)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, S_TO}, {"cc", required_argument, NULL, S_CC},
        {"bcc", required_argument, NULL, S_BCC}, {"reply-to", required_argument, NULL, S_REPLY_TO},
        {"from", required_argument, NULL, S_FROM}, {"subject", required_argument, NULL, S_SUBJECT},
        {"text", required_argument, NULL, S_TEXT}, {"send-at", required_argument, NULL, S_SEND_AT},
        {"callback-url", required_argument, NULL, S_CALLBACK},
        {"text-file", required_argument, NULL, S_TEXT_FILE},
        {"html-file", required_argument, NULL, S_HTML_FILE},
        {"attach", required_argument, NULL, S_ATTACH}, {"header", required_argument, NULL, S_HEADER},
        {"idempotency-key", required_argument, NULL, S_IDEM},
        {"json-file", required_argument, NULL, S_JSON_FILE}, {"eml", required_argument, NULL, S_EML},
        {"wait", optional_argument, NULL, S_WAIT}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *msg = NULL;
    json_t *m = json_object();
    int c, rc = EX_OK;
    opts_begin();
    while (!rc && (c = opts_next(argc, argv, "send", opts)) != -1) {
        if (c == '?') {
            rc = EX_USAGE;
        } else if (c == 'h') {
            help();
            json_decref(m);
            return -1;
        } else if (c == S_WAIT) {
            /* --wait, --wait=S, or --wait S when S is a number */
            const char *v = optarg;
            if (!v && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
                v = argv[optind++];
            *wait = 120;
            if (v)
                rc = opt_double("send", "wait", v, 0.001, 86400, wait);
        } else {
            rc = take_option(m, c, optarg, idem);
        }
    }
    if (!rc && optind < argc)
        rc = usage_error("send: takes no operand (\"%s\"); give the message with options",
                         argv[optind]);
    if (rc) {
        json_decref(m);
        return rc;
    }
    if (!json_object_get(m, "from")) {
        const char *from = getenv("OUTBOX_FROM");
        json_object_set_new(m, "from", json_string(from && *from ? from : "outbox@localhost"));
    }
    *msg = m;
    return EX_OK;
}

int send_mail(int argc, char **argv)
{
    json_t *msg;
    const char *idem = NULL;
    double wait = -1;
    int rc = parse_options(argc, argv, &msg, &idem, &wait);
    if (rc)
        return rc < 0 ? EX_OK : rc; /* -1: --help was answered */
    char header[300] = "";
    if (idem)
        snprintf(header, sizeof header, "Idempotency-Key: %s", idem);
    const char *headers[] = {idem ? header : NULL, NULL};
    reply r;
    rc = call_ok("POST", "/v1/messages", msg, headers, 60, &r);
    json_decref(msg);
    if (rc)
        return rc;
    char id[64], path[128];
    snprintf(id, sizeof id, "%s", str(r.body, "id"));
    if (wait < 0) {
        if (as_json)
            print_json(r.body);
        else
            printf("%s\n", id);
        json_decref(r.body);
        return EX_OK;
    }
    json_decref(r.body);
    snprintf(path, sizeof path, "/v1/messages/%s", id);
    json_t *final;
    if ((rc = wait_final(path, id, wait, &final)))
        return rc;
    print_message(final);
    rc = outcome_rc(final);
    json_decref(final);
    return rc;
}
