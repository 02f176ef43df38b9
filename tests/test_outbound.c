/*
 * test_outbound.c - where outbound jobs may connect (src/api/outbound.c),
 * alone: every class of address refused, in IPv4 and in each IPv6 form
 * that carries IPv4; the --http-allow list (blocks, address:port pairs,
 * refusals naming the item); outboxd's own address above every exception;
 * literal hosts in URLs judged in every spelling curl accepts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "api/outbound.h"
#include "test.h"

/* An address from text, with a port. */
static struct sockaddr_storage addr(const char *s, int port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else {
        ASSERT(inet_pton(AF_INET6, s, &s6->sin6_addr) == 1);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    }
    return ss;
}

static const char *judge(const outbound *p, const char *a, int port)
{
    struct sockaddr_storage ss = addr(a, port);
    return outbound_check(p, (struct sockaddr *)&ss);
}

TEST(every_internal_class_is_refused_and_public_addresses_are_not)
{
    outbound p;
    outbound_init(&p);
    static const struct {
        const char *a, *cls;
    } refused[] = {
        {"127.0.0.1", "loopback"}, {"127.255.1.2", "loopback"}, {"::1", "loopback"},
        {"::ffff:127.0.0.1", "loopback"}, {"::127.0.0.1", "loopback"},
        {"64:ff9b::7f00:1", "loopback"}, {"2002:7f00:1::1", "loopback"},
        {"10.1.2.3", "private"}, {"172.16.0.1", "private"}, {"172.31.255.255", "private"},
        {"192.168.0.1", "private"}, {"::ffff:10.0.0.1", "private"},
        {"169.254.169.254", "link-local"}, {"fe80::1", "link-local"},
        {"100.64.0.1", "CGNAT"}, {"100.127.255.255", "CGNAT"},
        {"fc00::1", "unique-local"}, {"fd12:3456::1", "unique-local"}, {"fec0::1", "site-local"},
        {"0.0.0.0", "unspecified"}, {"0.1.2.3", "unspecified"}, {"::", "unspecified"},
        {"224.0.0.1", "multicast"}, {"239.1.2.3", "multicast"}, {"ff02::1", "multicast"},
        {"255.255.255.255", "broadcast"}, {"240.0.0.1", "reserved"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        const char *why = judge(&p, refused[i].a, 80);
        if (!why || !strstr(why, refused[i].cls))
            test_fail(__FILE__, __LINE__, "%s: want %s, got %s", refused[i].a, refused[i].cls,
                      why ? why : "allowed");
    }
    static const char *const allowed[] = {"93.184.215.14", "1.1.1.1", "172.15.255.255",
                                          "172.32.0.1", "100.63.255.255", "100.128.0.1",
                                          "169.253.1.1", "223.255.255.255",
                                          "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
                                          "::ffff:8.8.8.8", "2002:808:808::1"};
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (judge(&p, allowed[i], 443))
            test_fail(__FILE__, __LINE__, "%s refused: %s", allowed[i], judge(&p, allowed[i], 443));
}

TEST(exceptions_open_blocks_and_pairs_but_never_outboxd_itself)
{
    outbound p;
    outbound_init(&p);
    char err[256];
    ASSERT_EQ(outbound_allow(&p, "10.0.0.0/8, 127.0.0.1:8080\n[::1]:9000 fd00::/16 192.168.1.7",
                             err, sizeof err), 0);
    ASSERT_EQ(p.nallow, 5);
    ASSERT(!judge(&p, "10.200.3.4", 1));
    ASSERT(!judge(&p, "::ffff:10.200.3.4", 1)); /* the same address, mapped */
    ASSERT(!judge(&p, "127.0.0.1", 8080));
    ASSERT(judge(&p, "127.0.0.1", 8081));      /* a pair opens its port only */
    ASSERT(!judge(&p, "::1", 9000));
    ASSERT(judge(&p, "::1", 8080));
    ASSERT(!judge(&p, "fd00:0:1::2", 443));
    ASSERT(judge(&p, "fd01::2", 443));
    ASSERT(!judge(&p, "192.168.1.7", 25));
    ASSERT(judge(&p, "192.168.1.8", 25));
    /* outboxd on 0.0.0.0:8080: every address of this host with that port */
    struct sockaddr_storage any = addr("0.0.0.0", 0);
    ASSERT_EQ(outbound_add_self(&p, (struct sockaddr *)&any, 8080), 0);
    ASSERT(strstr(judge(&p, "127.0.0.1", 8080), "own address"));
    ASSERT(strstr(judge(&p, "127.0.0.2", 8080), "own address"));
    ASSERT(strstr(judge(&p, "::1", 8080), "own address"));
    ASSERT(!judge(&p, "10.1.1.1", 8081));

    static const char *const bad[] = {"10.0.0.1/8", "10.0.0.0/33", "fd00::/129", "localhost",
                                      "1.2.3.4:0", "1.2.3.4:65536", "[1.2.3.4]:80", "::1]:80",
                                      "[::1]80", "1.2.3", "10.0.0.0/", "/8", "01.2.3.4"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        outbound q;
        outbound_init(&q);
        ASSERT_EQ(outbound_allow(&q, bad[i], err, sizeof err), -1);
        if (!strstr(err, "--http-allow") || !strstr(err, bad[i]))
            test_fail(__FILE__, __LINE__, "%s: %s", bad[i], err);
        ASSERT_EQ(q.nallow, 0);
    }
    outbound q;
    outbound_init(&q);
    ASSERT_EQ(outbound_allow(&q, "10.0.0.0/8,bogus", err, sizeof err), -1);
    ASSERT_EQ(q.nallow, 0); /* all or nothing */
    ASSERT_EQ(outbound_allow(&q, "  ,, ", err, sizeof err), 0);
    ASSERT_EQ(q.nallow, 0);
}

TEST(literal_hosts_in_urls_are_judged_in_every_spelling)
{
    outbound p;
    outbound_init(&p);
    static const char *const urls[] = {
        "http://127.0.0.1/", "http://127.1/", "http://0x7f000001/", "http://2130706433/",
        "http://0177.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://[::1]:8025/x",
        "https://[fe80::1%25eth0]/", "http://%31%32%37.0.0.1/", "HTTP://10.0.0.1/",
    };
    char a[80];
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++)
        if (!outbound_check_url(&p, urls[i], a, sizeof a))
            test_fail(__FILE__, __LINE__, "%s allowed", urls[i]);
    static const char *const names[] = {"http://localhost/", "http://example.com/",
                                        "http://127.0.0.1.nip.io/", "http://93.184.215.14/"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) /* judged when connecting */
        ASSERT(outbound_check_url(&p, names[i], a, sizeof a) == NULL);
    char err[128];
    ASSERT_EQ(outbound_allow(&p, "127.0.0.1:8080", err, sizeof err), 0);
    ASSERT(!outbound_check_url(&p, "http://127.1:8080/", a, sizeof a));
    ASSERT(outbound_check_url(&p, "http://127.1/", a, sizeof a)); /* port 80 */
}

TEST(only_loopback_names_count_as_loopback)
{
    ASSERT(outbound_is_loopback_host("127.0.0.1"));
    ASSERT(outbound_is_loopback_host("::1"));
    ASSERT(outbound_is_loopback_host("localhost"));
    ASSERT(!outbound_is_loopback_host("127.corp.example.invalid"));
    ASSERT(!outbound_is_loopback_host("0.0.0.0"));
    ASSERT(!outbound_is_loopback_host(""));
}

static const test_case tests[] = {
    T(every_internal_class_is_refused_and_public_addresses_are_not),
    T(exceptions_open_blocks_and_pairs_but_never_outboxd_itself),
    T(literal_hosts_in_urls_are_judged_in_every_spelling),
    T(only_loopback_names_count_as_loopback),
};

int main(int argc, char **argv) { return test_main(argc, argv, tests, NTESTS(tests)); }
