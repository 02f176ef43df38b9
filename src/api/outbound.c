/*
 * outbound.c - the addresses outbound jobs (http.request, callbacks) may
 * connect to. A client that may enqueue must not be able to make outboxd
 * reach what only outboxd can reach: its own API, the machine's other
 * services, the private network, the cloud's metadata service.
 *
 * The rule, applied to the address actually connected (libcurl's
 * open-socket hook calls outbound_check for every address it tries, after
 * DNS, on every redirect), so that no spelling of a URL, no redirect and no
 * DNS answer gets around it:
 *
 *   1. outboxd's own listen address (with its port)      refused, always
 *   2. an --http-allow exception (block, or address:port) allowed
 *   3. an address of a class below                        refused
 *   4. anything else (a public address)                   allowed
 *
 * Classes refused (IPv4, and IPv6 with IPv4 inside — mapped ::ffff:0:0/96,
 * compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16 — judged by the IPv4
 * address inside):
 *   0.0.0.0/8 unspecified, 10/8 172.16/12 192.168/16 private (RFC 1918),
 *   100.64/10 shared (CGNAT), 127/8 loopback, 169.254/16 link-local (the
 *   metadata service 169.254.169.254), 224/4 multicast, 240/4 reserved and
 *   broadcast; ::/128 unspecified, ::1 loopback, fc00::/7 unique-local,
 *   fe80::/10 link-local, fec0::/10 site-local, ff00::/8 multicast.
 *
 * Addresses are compared in IPv6 form (an IPv4 address as ::ffff:a.b.c.d),
 * so an exception written for 127.0.0.1 also covers ::ffff:127.0.0.1.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/outbound.h"

void outbound_init(outbound *p)
{
    memset(p->allow, 0, sizeof p->allow);
    p->nallow = 0;
    atomic_init(&p->nself, 0);
}

const outbound *outbound_public(void)
{
    static const outbound none; /* zero: no exception, no own address */
    return &none;
}

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* A socket address in IPv6 form (16 bytes) and its port; false if it is
 * neither IPv4 nor IPv6. */
static bool to_v6(const struct sockaddr *sa, uint8_t out[16], int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(out, v4_mapped, 12);
        memcpy(out + 12, &s4->sin_addr, 4);
        *port = ntohs(s4->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(out, &s6->sin6_addr, 16);
        *port = ntohs(s6->sin6_port);
        return true;
    }
    return false;
}

static bool in_block(const uint8_t a[16], const uint8_t net[16], int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, net, (size_t)whole) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

static bool rule_matches(const net_rule *r, const uint8_t a[16], int port)
{
    return (r->port == 0 || r->port == port) && in_block(a, r->addr, r->bits);
}

/* The class of an IPv4 address that outbound jobs may not reach, or NULL. */
static const char *v4_class(const uint8_t b[4])
{
    if (b[0] == 0)
        return "unspecified (0.0.0.0/8)";
    if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168))
        return "private (RFC 1918)";
    if (b[0] == 100 && (b[1] & 0xc0) == 64)
        return "shared address space (100.64.0.0/10, CGNAT)";
    if (b[0] == 127)
        return "loopback";
    if (b[0] == 169 && b[1] == 254)
        return "link-local (169.254.0.0/16, the cloud metadata service among them)";
    if ((b[0] & 0xf0) == 224)
        return "multicast";
    if ((b[0] & 0xf0) == 240)
        return "reserved or broadcast (240.0.0.0/4)";
    return NULL;
}

static const char *v6_class(const uint8_t a[16])
{
    static const uint8_t zero[16], nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (memcmp(a, v4_mapped, 12) == 0)
        return v4_class(a + 12);
    if (memcmp(a, zero, 15) == 0 && a[15] <= 1)
        return a[15] ? "loopback" : "unspecified (::)";
    if (memcmp(a, zero, 12) == 0 || memcmp(a, nat64, 12) == 0) /* ::a.b.c.d, 64:ff9b::a.b.c.d */
        return v4_class(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:AABB:CCDD::/48 */
        return v4_class(a + 2);
    if ((a[0] & 0xfe) == 0xfc)
        return "unique-local (fc00::/7)";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link-local (fe80::/10)";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return "site-local (fec0::/10)";
    if (a[0] == 0xff)
        return "multicast";
    return NULL;
}

static const char *judge(const outbound *p, const uint8_t a[16], int port)
{
    int nself = atomic_load_explicit(&p->nself, memory_order_acquire);
    for (int i = 0; i < nself; i++)
        if (rule_matches(&p->self[i], a, port))
            return "outboxd's own address";
    for (int i = 0; i < p->nallow; i++)
        if (rule_matches(&p->allow[i], a, port))
            return NULL;
    return v6_class(a);
}

const char *outbound_check(const outbound *p, const struct sockaddr *sa)
{
    uint8_t a[16];
    int port;
    if (!to_v6(sa, a, &port))
        return "not an internet address";
    return judge(p, a, port);
}

/* ---- the exception list ---- */

/* A numeric address (IPv4 dotted quad or IPv6) into IPv6 form; *v4 says
 * which it was. */
static bool parse_addr(const char *s, uint8_t out[16], bool *v4)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memcpy(out, v4_mapped, 12);
        memcpy(out + 12, &a4, 4);
        *v4 = true;
        return true;
    }
    if (inet_pton(AF_INET6, s, &a6) == 1) {
        memcpy(out, &a6, 16);
        *v4 = false;
        return true;
    }
    return false;
}

static bool parse_num(const char *s, long lo, long hi, long *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5)
        return false;
    *out = strtol(s, NULL, 10);
    return *out >= lo && *out <= hi;
}

/* One item: "A/BITS", "A", "V4:PORT" or "[V6]:PORT". NULL, or why not. */
static const char *parse_rule(const char *item, net_rule *r)
{
    char buf[100];
    size_t len = strlen(item);
    if (len >= sizeof buf)
        return "too long";
    memcpy(buf, item, len + 1);
    *r = (net_rule){0};
    bool v4;
    long n;
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        if (!parse_addr(buf, r->addr, &v4))
            return "not a numeric IPv4 or IPv6 address before the /";
        if (!parse_num(slash + 1, 0, v4 ? 32 : 128, &n))
            return "the prefix length after / is not 0-32 (IPv4) or 0-128 (IPv6)";
        r->bits = (int)n + (v4 ? 96 : 0);
        uint8_t masked[16];
        memcpy(masked, r->addr, 16);
        for (int i = r->bits; i < 128; i++)
            masked[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
        if (memcmp(masked, r->addr, 16) != 0)
            return "the address has bits set past the prefix length (write the block's first "
                   "address, e.g. 10.0.0.0/8)";
        return NULL;
    }
    char *colon = strrchr(buf, ':');
    bool bracket = buf[0] == '[';
    if (bracket || (colon && strchr(buf, ':') == colon)) { /* [V6]:PORT or V4:PORT */
        char *end = bracket ? strchr(buf, ']') : colon;
        if (!end || (bracket && end[1] != ':') || !colon || colon < end)
            return "an address:port pair is A.B.C.D:PORT or [IPV6]:PORT";
        *end = '\0';
        if (!parse_addr(bracket ? buf + 1 : buf, r->addr, &v4) || v4 == bracket)
            return "not a numeric address before the port";
        if (!parse_num(colon + 1, 1, 65535, &n))
            return "the port is not 1-65535";
        r->bits = 128;
        r->port = (int)n;
        return NULL;
    }
    if (!parse_addr(buf, r->addr, &v4))
        return "not a CIDR block (10.0.0.0/8), an address, or ADDRESS:PORT";
    r->bits = 128;
    return NULL;
}

int outbound_allow(outbound *p, const char *list, char *err, size_t n)
{
    static const char seps[] = ", \t\r\n";
    net_rule rules[OUTBOUND_RULES_MAX];
    int count = 0;
    for (const char *s = list; s && *s;) {
        s += strspn(s, seps);
        size_t len = strcspn(s, seps);
        if (!len)
            break;
        char item[100];
        snprintf(item, sizeof item, "%.*s", (int)(len < 90 ? len : 90), s);
        const char *why = len > 90 ? "too long" : NULL;
        if (!why && p->nallow + count >= OUTBOUND_RULES_MAX)
            why = "too many exceptions (at most 256)";
        if (!why)
            why = parse_rule(item, &rules[count]);
        if (why) {
            snprintf(err, n, "--http-allow: \"%s\": %s", item, why);
            return -1;
        }
        count++;
        s += len;
    }
    memcpy(&p->allow[p->nallow], rules, sizeof *rules * (size_t)count);
    p->nallow += count;
    return 0;
}

/* ---- outboxd's own addresses ---- */

/* One writer at a time (outboxd's main thread). */
static int add_self_rule(outbound *p, const uint8_t a[16], int bits, int port)
{
    int n = atomic_load_explicit(&p->nself, memory_order_relaxed);
    if (n >= OUTBOUND_RULES_MAX)
        return -1;
    net_rule *r = &p->self[n];
    memcpy(r->addr, a, 16);
    r->bits = bits;
    r->port = port;
    atomic_store_explicit(&p->nself, n + 1, memory_order_release);
    return 0;
}

int outbound_add_self(outbound *p, const struct sockaddr *sa, int port)
{
    uint8_t a[16];
    int ignored;
    if (!to_v6(sa, a, &ignored))
        return -1;
    static const uint8_t zero[16];
    bool any = memcmp(a, zero, 16) == 0 || (memcmp(a, v4_mapped, 12) == 0 &&
                                            memcmp(a + 12, zero, 4) == 0);
    if (!any)
        return add_self_rule(p, a, 128, port);
    /* Every address of this host: loopback, and each interface's. */
    uint8_t lo4[16], lo6[16] = {[15] = 1};
    memcpy(lo4, v4_mapped, 12);
    memcpy(lo4 + 12, (uint8_t[]){127, 0, 0, 0}, 4);
    if (add_self_rule(p, lo4, 104, port) || add_self_rule(p, lo6, 128, port) ||
        add_self_rule(p, a, 128, port))
        return -1;
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0)
        return 0; /* loopback is covered; other interfaces are private addresses in most setups */
    int rc = 0;
    for (i = ifs; i && !rc; i = i->ifa_next)
        if (i->ifa_addr && to_v6(i->ifa_addr, a, &ignored))
            rc = add_self_rule(p, a, 128, port);
    freeifaddrs(ifs);
    return rc;
}

/* ---- URLs and host names ---- */

const char *outbound_check_host(const outbound *p, const char *host, int port, char *addr,
                                size_t n)
{
    /* curl normalises IPv4 spellings (127.1, 0x7f000001, 2130706433) to
     * dotted quads; IPv6 comes in brackets. */
    char h[64];
    size_t len = strlen(host);
    bool v6 = len > 2 && host[0] == '[' && host[len - 1] == ']';
    snprintf(h, sizeof h, "%.*s", v6 ? (int)(len - 2) : (int)len, v6 ? host + 1 : host);
    char *zone = strchr(h, '%');
    if (zone)
        *zone = '\0';
    uint8_t a[16];
    bool v4;
    if (len >= sizeof h || !parse_addr(h, a, &v4))
        return NULL; /* a name: judged when connecting */
    snprintf(addr, n, "%s", host);
    return judge(p, a, port);
}

const char *outbound_check_url(const outbound *p, const char *url, char *addr, size_t n)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    const char *why = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        why = outbound_check_host(p, host, atoi(port), addr, n);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return why;
}

bool outbound_is_loopback_host(const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai, *i;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
        return false;
    bool all = true;
    for (i = ai; i; i = i->ai_next) {
        uint8_t a[16];
        int port;
        const char *cls = to_v6(i->ai_addr, a, &port) ? v6_class(a) : NULL;
        all = all && cls && strcmp(cls, "loopback") == 0;
    }
    freeaddrinfo(ai);
    return all;
}
