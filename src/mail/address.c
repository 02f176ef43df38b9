/*
 * address.c - one mail address, as a client writes it ("Ann <ann@example.com>"
 * or "ann@example.com"), parsed by GMime's address parser and checked
 * against what SMTP can carry:
 *
 *   - exactly one mailbox (no lists, no groups);
 *   - the display name (after GMime decodes any RFC 2047 words in it) is
 *     text without control characters, so it can never end a header line;
 *   - the local part is ASCII: a dot-atom or a quoted string (outbox does
 *     not speak SMTPUTF8), at most 64 bytes;
 *   - the domain is converted to its ASCII form by libidn2 (IDNA 2008, TR46
 *     non-transitional) and must then be a host name: labels of letters,
 *     digits and inner hyphens, 1-63 bytes each, at most 253 in all;
 *     address literals ([192.0.2.1]) are refused;
 *   - the whole address is at most MAIL_ADDR_MAX bytes.
 */
#include <gmime/gmime.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mail/mail.h"

bool obi_mail_text_ok(const char *s, size_t n)
{
    if (!ob_utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* A dot-atom ("ann.lee") or a quoted string ("\"ann lee\""), ASCII. */
static const char *local_problem(const char *s, size_t n)
{
    if (n == 0)
        return "the address has no local part (before the @)";
    if (n > 64)
        return "the local part (before the @) is longer than 64 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return "the local part (before the @) is not ASCII (SMTPUTF8 is not supported)";
    if (s[0] == '"') {
        if (n < 2 || s[n - 1] != '"')
            return "the local part has an unterminated quoted string";
        for (size_t i = 1; i < n - 1; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f || (c == '"' && s[i - 1] != '\\'))
                return "the local part's quoted string has a character it cannot hold";
            /* SMTP carries the address as RCPT TO:<...> SP parameters: a
             * space, '<' or '>' there would end the path or start a
             * parameter (NOTIFY=...) at the relay. */
            if (c == ' ' || c == '\t' || c == '<' || c == '>')
                return "the local part's quoted string holds a space, '<' or '>', which SMTP "
                       "commands cannot carry safely";
        }
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (i == 0 || i == n - 1 || s[i + 1] == '.')
                return "the local part has a misplaced dot";
        } else if (!atext((unsigned char)s[i])) {
            return "the local part has a character that needs quoting";
        }
    }
    return NULL;
}

/* A host name in ASCII. */
static const char *domain_problem(const char *d)
{
    size_t n = strlen(d), label = 0;
    if (n == 0)
        return "the address has no domain (after the @)";
    if (n > 253)
        return "the domain is longer than 253 bytes";
    for (size_t i = 0; i <= n; i++) {
        char c = d[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63)
                return "the domain has an empty label or one longer than 63 bytes";
            if (d[i - 1] == '-' || d[i - label] == '-')
                return "a label of the domain starts or ends with a hyphen";
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            label++;
        } else {
            return "the domain is not a host name";
        }
    }
    return NULL;
}

/* The domain in lower-case ASCII (punycode for IDN), malloc'd, or NULL
 * with *why. */
static char *ascii_domain(const char *d, const char **why)
{
    if (d[0] == '[') {
        *why = "address literals ([...]) are not accepted: give a domain";
        return NULL;
    }
    char *out = NULL;
    int rc = idn2_to_ascii_8z(d, &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        *why = "the domain is not a valid (internationalised) domain name";
        return NULL;
    }
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if ((*why = domain_problem(out))) {
        idn2_free(out);
        return NULL;
    }
    char *copy = strdup(out);
    idn2_free(out);
    if (!copy)
        *why = "out of memory";
    return copy;
}

/* Check the mailbox GMime found and fill *out. */
static int take_mailbox(InternetAddress *ia, mail_addr *out, const char **why)
{
    const char *name = internet_address_get_name(ia);
    const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
    if (!addr || !*addr) {
        *why = "no address found";
        return OB_EINVAL;
    }
    if (name && !obi_mail_text_ok(name, strlen(name))) {
        *why = "the display name has a control character";
        return OB_EINVAL;
    }
    const char *at = strrchr(addr, '@');
    if (!at) {
        *why = "the address has no @";
        return OB_EINVAL;
    }
    if ((*why = local_problem(addr, (size_t)(at - addr))))
        return OB_EINVAL;
    char *domain = ascii_domain(at + 1, why);
    if (!domain)
        return OB_EINVAL;
    size_t local = (size_t)(at - addr), n = local + 1 + strlen(domain);
    if (n > MAIL_ADDR_MAX) {
        free(domain);
        *why = "the address is longer than 254 bytes";
        return OB_EINVAL;
    }
    out->addr = malloc(n + 1);
    out->name = name && *name ? strdup(name) : NULL;
    if (!out->addr || (name && *name && !out->name)) {
        free(domain);
        obi_mail_addr_clear(out);
        *why = "out of memory";
        return OB_ENOMEM;
    }
    snprintf(out->addr, n + 1, "%.*s@%s", (int)local, addr, domain);
    free(domain);
    return 0;
}

/* What GMime should not be given: '[' or ']' outside a quoted string (an
 * address literal, refused anyway), a quoted string or a comment left
 * open, or a comment closed that never opened. GMime 3.2.13 leaks memory
 * on a literal followed by an unterminated comment, and on an unterminated
 * quote before a domain literal ("a:a@[](i): such input is refused before
 * it gets there. So is a second @ outside quotes and comments, which GMime
 * drops with what follows it. NULL, or why not. */
static const char *syntax_problem(const char *s)
{
    bool quoted = false;
    int comment = 0, ats = 0;
    for (; *s; s++) {
        if (*s == '\\' && (quoted || comment) && s[1])
            s++;
        else if (*s == '@' && !quoted && !comment && ++ats > 1)
            return "more than one @ outside quotes (GMime would take \"a@b@c\" as a@b)";
        else if (*s == '"' && !comment)
            quoted = !quoted;
        else if (!quoted && *s == '(')
            comment++;
        else if (!quoted && *s == ')' && --comment < 0)
            return "a ')' closes a comment that was never opened";
        else if (!quoted && !comment && (*s == '[' || *s == ']'))
            return "'[' and ']' belong in a quoted name; address literals are not accepted";
    }
    if (quoted)
        return "a quoted string is not closed (\")";
    return comment ? "a comment is not closed ('(' without ')')" : NULL;
}

int obi_mail_addr_parse(const char *s, mail_addr *out, const char **why)
{
    *out = (mail_addr){0};
    size_t n = strlen(s);
    if (n == 0) {
        *why = "empty";
        return OB_EINVAL;
    }
    if (n > 998 || !obi_mail_text_ok(s, n)) {
        *why = n > 998 ? "longer than 998 bytes" : "has a control character or invalid UTF-8";
        return OB_EINVAL;
    }
    if ((*why = syntax_problem(s)))
        return OB_EINVAL;
    InternetAddressList *l = internet_address_list_parse(NULL, s);
    int count = l ? internet_address_list_length(l) : 0;
    int rc = OB_EINVAL;
    if (count != 1) {
        *why = count ? "give one address per string" : "not a mail address";
    } else {
        InternetAddress *ia = internet_address_list_get_address(l, 0);
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            *why = "a group is not a mailbox";
        else
            rc = take_mailbox(ia, out, why);
    }
    if (l)
        g_object_unref(l);
    return rc;
}

int ob_mail_address_normal(const char *in, char *out, ob_problem *p)
{
    mail_addr a;
    const char *why;
    int rc = obi_mail_addr_parse(in ? in : "", &a, &why);
    if (rc)
        return obi_problem(p, rc, "address", "%s", why);
    snprintf(out, OB_MAIL_ADDR_MAX + 1, "%s", a.addr); /* take_mailbox: at most MAIL_ADDR_MAX */
    obi_mail_addr_clear(&a);
    return 0;
}

void obi_mail_addr_clear(mail_addr *a)
{
    free(a->name);
    free(a->addr);
    *a = (mail_addr){0};
}

int obi_mail_addr_set_name(mail_addr *a, const char *name, const char **why)
{
    size_t n = strlen(name);
    if (n > 998 || !obi_mail_text_ok(name, n)) {
        *why = "the name has a control character or invalid UTF-8, or is too long";
        return OB_EINVAL;
    }
    char *copy = n ? strdup(name) : NULL;
    if (n && !copy) {
        *why = "out of memory";
        return OB_ENOMEM;
    }
    free(a->name);
    a->name = copy;
    return 0;
}
