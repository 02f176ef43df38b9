/*
 * outbound.h - where outbound jobs may connect (see outbound.c).
 */
#ifndef OB_API_OUTBOUND_H
#define OB_API_OUTBOUND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define OUTBOUND_RULES_MAX 256

/* One address block, with a port or any port (0). Addresses are kept in
 * IPv6 form: an IPv4 address a.b.c.d is ::ffff:a.b.c.d, its prefix + 96. */
typedef struct net_rule {
    uint8_t addr[16];
    int bits; /* prefix length, 0..128 */
    int port; /* 0: any */
} net_rule;

/* The policy: exceptions (--http-allow) and outboxd's own addresses.
 * Exceptions are set before any thread judges; own addresses may be added
 * while others judge (the port is known once the server listens): a rule
 * is written, then published by a release store of nself, which judges
 * read with acquire. */
typedef struct outbound {
    net_rule allow[OUTBOUND_RULES_MAX];
    int nallow;
    net_rule self[OUTBOUND_RULES_MAX];
    _Atomic int nself;
} outbound;

/* A policy that refuses every non-public address and allows nothing more. */
void outbound_init(outbound *p);
/* Such a policy, shared (static storage), for callers that give none. */
const outbound *outbound_public(void);

/* Add the exceptions of `list`: items separated by commas or white space,
 * each a CIDR block ("10.0.0.0/8", "fd00::/8", a bare address meaning one
 * host) or an ADDRESS:PORT pair ("127.0.0.1:8080", "[::1]:8080"). Addresses
 * are numeric, in their standard spelling. Returns 0, or -1 with a sentence
 * naming the bad item in err[n] (nothing added). Pure: fuzzed. */
int outbound_allow(outbound *p, const char *list, char *err, size_t n);

/* outboxd's own listen address, bound to `port`: never a target, whatever
 * --http-allow says. An unspecified address (0.0.0.0, ::) means every
 * address of this host: loopback and every interface's. Returns 0 or -1
 * (too many addresses). */
int outbound_add_self(outbound *p, const struct sockaddr *sa, int port);

/* Whether an outbound connection to `sa` is allowed: NULL if so, else why
 * not ("loopback", "private (RFC 1918)", "outboxd's own address", ...),
 * static storage. */
const char *outbound_check(const outbound *p, const struct sockaddr *sa);

/* The same for a URL's host when it is a literal address (the only case
 * that can be judged before connecting): NULL when allowed or when the
 * host is a name, else why not, and the address as written in addr[n]. */
const char *outbound_check_url(const outbound *p, const char *url, char *addr, size_t n);
/* The same for a host and port as curl's URL parser gives them (an IPv6
 * address in brackets), for a caller that parsed the URL already. */
const char *outbound_check_host(const outbound *p, const char *host, int port, char *addr,
                                size_t n);

/* Whether every address `host` resolves to is a loopback address (false
 * when it does not resolve). For outboxd's "no tokens: loopback only". */
bool outbound_is_loopback_host(const char *host);

#endif
