/*
 * egress.c - where webhooks may connect (SSRF defence).
 *
 * A webhook URL is a request an outsider makes our servers send, so every
 * address one resolves to is checked before anything connects to it: at
 * registration (every address the host resolves to, 422 otherwise) and
 * again at each delivery, inside the connection itself - httpc hands each
 * address libcurl is about to connect to to nx_webhook_addr_allowed (its
 * check_addr), so the address checked is the address connected to and a
 * name that resolves elsewhere the second time (DNS rebinding) gains
 * nothing. Refused: loopback, private, link-local (169.254.169.254, the
 * cloud metadata service), shared CGNAT space, multicast, unspecified,
 * documentation and other reserved ranges, IPv4-mapped, IPv4-compatible,
 * NAT64 and 6to4 forms of IPv6 (which smuggle an IPv4 address past a check
 * of IPv4 ranges), unless the range is inside WEBHOOK_ALLOW_NETWORKS; and
 * this server's own listening address and port always (a webhook into the
 * API itself is never wanted, allow-list or not).
 *
 * URLs: https only unless WEBHOOK_ALLOW_HTTP, no credentials, and a host
 * that is a name, a dotted-decimal IPv4 address or a bracketed IPv6 one:
 * libcurl reads 2130706433, 0x7f.1 and 017700000001 as 127.0.0.1, and such
 * a URL is refused for its form before any address check.
 *
 * The policy is set once at start-up (nx_webhooks_egress_init) and only
 * read afterwards, from any thread.
 */
#include "core/nx.h"
#include "webhooks/webhooks.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/cidr.h"
#include "core/err.h"
#include "core/util.h"
#include "httpc/httpc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define OWN_MAX 64

/* Special-purpose ranges (RFC 6890 and the IANA registries), most specific
 * first where they nest. */
static const struct {
    const char *cidr;
    const char *why;
} special[] = {
    {"0.0.0.0/8", "an unspecified address"},
    {"10.0.0.0/8", "a private address"},
    {"100.64.0.0/10", "a shared (carrier-grade NAT) address"},
    {"127.0.0.0/8", "a loopback address"},
    {"169.254.0.0/16", "a link-local address"},
    {"172.16.0.0/12", "a private address"},
    {"192.0.0.0/24", "a reserved address"},
    {"192.0.2.0/24", "a documentation address"},
    {"192.88.99.0/24", "a reserved address"},
    {"192.168.0.0/16", "a private address"},
    {"198.18.0.0/15", "a reserved address"},
    {"198.51.100.0/24", "a documentation address"},
    {"203.0.113.0/24", "a documentation address"},
    {"224.0.0.0/4", "a multicast address"},
    {"240.0.0.0/4", "a reserved address"},
    {"::/128", "an unspecified address"},
    {"::1/128", "a loopback address"},
    {"::ffff:0:0/96", "an IPv4-mapped address"},
    {"::/96", "an IPv4-compatible address"},
    {"64:ff9b::/96", "a NAT64 address"},
    {"64:ff9b:1::/48", "a NAT64 address"},
    {"::/8", "a reserved address"},
    {"100::/64", "a reserved address"},
    {"2001:db8::/32", "a documentation address"},
    {"2001::/23", "a reserved address"},
    {"2002::/16", "a 6to4 address"},
    {"3fff::/20", "a documentation address"},
    {"fc00::/7", "a private address"},
    {"fe80::/10", "a link-local address"},
    {"fec0::/10", "a reserved address"},
    {"ff00::/8", "a multicast address"},
};

static nx_cidr_t special_cidr[NX_ARRAY_LEN(special)];
static pthread_once_t special_once = PTHREAD_ONCE_INIT;

static void special_parse(void)
{
    for (size_t i = 0; i < NX_ARRAY_LEN(special); i++)
        NX_ASSERT(nx_cidr_parse(special[i].cidr, &special_cidr[i]) == NX_OK);
}

/* One of this server's own listening addresses. */
struct own {
    int family;
    unsigned char addr[16];
};

static struct {
    bool allow_http;
    nx_cidr_list_t allow;
    struct own own[OWN_MAX];
    int nown;
    _Atomic int port; /* set again once an ephemeral port (PORT=0) is known */
} policy;

const char *nx_webhook_addr_class(int family, const unsigned char *addr)
{
    pthread_once(&special_once, special_parse);
    for (size_t i = 0; i < NX_ARRAY_LEN(special); i++)
        if (nx_cidr_contains(&special_cidr[i], family, addr))
            return special[i].why;
    return NULL;
}

/* Family, address bytes and port of sa; false for another family. */
static bool addr_of(const struct sockaddr *sa, int *family, const unsigned char **addr,
                    int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        *addr = (const unsigned char *)&in->sin_addr;
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;
        *addr = in->sin6_addr.s6_addr;
        *port = ntohs(in->sin6_port);
    } else {
        return false;
    }
    *family = sa->sa_family;
    return true;
}

static bool is_own(int family, const unsigned char *addr, int port)
{
    if (port != atomic_load(&policy.port))
        return false;
    size_t n = family == AF_INET ? 4 : 16;
    for (int i = 0; i < policy.nown; i++)
        if (policy.own[i].family == family && memcmp(policy.own[i].addr, addr, n) == 0)
            return true;
    return false;
}

bool nx_webhook_addr_allowed(const struct sockaddr *sa, const char **why)
{
    int family, port;
    const unsigned char *addr;
    if (!addr_of(sa, &family, &addr, &port)) {
        *why = "an address of an unknown family";
        return false;
    }
    if (is_own(family, addr, port)) {
        *why = "this server's own address";
        return false;
    }
    if (nx_cidr_list_contains(&policy.allow, family, addr))
        return true;
    *why = nx_webhook_addr_class(family, addr);
    return *why == NULL;
}

/* ---- start-up: the policy and the server's own addresses --------------------- */

static void own_add(const struct sockaddr *sa)
{
    int family, port;
    const unsigned char *addr;
    if (policy.nown == OWN_MAX || !sa || !addr_of(sa, &family, &addr, &port))
        return;
    policy.own[policy.nown].family = family;
    memcpy(policy.own[policy.nown].addr, addr, family == AF_INET ? 4 : 16);
    policy.nown++;
}

/* HOST's addresses; for a wildcard, every address of this machine. */
static void own_collect(const char *host)
{
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
        struct ifaddrs *ifs = NULL, *i;
        if (getifaddrs(&ifs) == 0)
            for (i = ifs; i; i = i->ifa_next)
                own_add(i->ifa_addr);
        freeifaddrs(ifs);
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *r;
    if (getaddrinfo(host, NULL, &hints, &res) == 0)
        for (r = res; r; r = r->ai_next)
            own_add(r->ai_addr);
    if (res)
        freeaddrinfo(res);
}

int nx_webhooks_egress_init(const nx_settings_t *s, int port, nx_err_t *err)
{
    char bad[80];
    policy.nown = 0;
    if (nx_cidr_list_parse(s->webhook_allow_networks, &policy.allow, bad, sizeof(bad)) != NX_OK)
        return nx_err_set(err, NX_EINVAL, "WEBHOOK_ALLOW_NETWORKS: \"%s\" is not a network",
                          bad);
    policy.allow_http = s->webhook_allow_http;
    atomic_store(&policy.port, port);
    own_collect(s->host);
    return NX_OK;
}

void nx_webhooks_egress_port(int port) { atomic_store(&policy.port, port); }

/* ---- URLs -------------------------------------------------------------------- */

/* The host exactly as written in url (libcurl normalises numeric forms
 * away); arena, NULL when the URL has no "scheme://" authority. */
static char *raw_host(nx_arena_t *arena, const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return NULL;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memrchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (n && *p == '[') {
        const char *end = memchr(p, ']', n);
        return end ? nx_arena_strndup(arena, p + 1, (size_t)(end - p - 1)) : NULL;
    }
    const char *colon = memchr(p, ':', n);
    return nx_arena_strndup(arena, p, colon ? (size_t)(colon - p) : n);
}

/* WHATWG's "ends in a number": the last label (a trailing dot aside) is
 * decimal digits, or 0x and hex digits. Such a host is an IPv4 address to
 * libcurl and to browsers, whatever its notation. */
static bool ends_in_number(const char *host)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        n--;
    const char *dot = memrchr(host, '.', n);
    const char *label = dot ? dot + 1 : host;
    size_t len = n - (size_t)(label - host);
    if (len == 0)
        return false;
    size_t i = 0;
    bool hex = len >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
    for (i = hex ? 2 : 0; i < len; i++)
        if (!(hex ? isxdigit((unsigned char)label[i]) : isdigit((unsigned char)label[i])))
            return false;
    return true;
}

/* Checks one address of the URL's host (port: the URL's). */
static bool check_one(nx_arena_t *arena, const struct sockaddr *sa, const char **why)
{
    const char *what;
    if (nx_webhook_addr_allowed(sa, &what))
        return true;
    char text[INET6_ADDRSTRLEN] = "?";
    int family, port;
    const unsigned char *addr;
    if (addr_of(sa, &family, &addr, &port))
        inet_ntop(family, addr, text, sizeof(text));
    *why = nx_arena_sprintf(arena, "leads to %s, %s, which webhooks may not reach", text,
                            what);
    return false;
}

/* Resolves host and checks every address. */
static int check_resolved(nx_arena_t *arena, const char *host, int port, const char **why)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *r;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0 || !res) {
        if (res)
            freeaddrinfo(res);
        *why = nx_arena_sprintf(arena, "names the host \"%s\", which could not be resolved",
                                host);
        return NX_EVALIDATION;
    }
    rc = NX_OK;
    for (r = res; r && rc == NX_OK; r = r->ai_next)
        if (!check_one(arena, r->ai_addr, why))
            rc = NX_EVALIDATION;
    freeaddrinfo(res);
    return rc;
}

/* A literal address in the URL: checked without any lookup. */
static int check_literal(nx_arena_t *arena, const char *host, int port, bool *literal,
                         const char **why)
{
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    *literal = true;
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1)
        return check_one(arena, (struct sockaddr *)&v4, why) ? NX_OK : NX_EVALIDATION;
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1)
        return check_one(arena, (struct sockaddr *)&v6, why) ? NX_OK : NX_EVALIDATION;
    *literal = false;
    return NX_OK;
}

/* The URL's form: length, scheme, credentials, the host's notation. */
static int check_form(nx_arena_t *arena, const char *url, nx_httpc_url_t *u, const char **host,
                      const char **why)
{
    nx_err_t e = {0};
    if (strlen(url) > NX_WEBHOOK_URL_MAX) {
        *why = nx_arena_sprintf(arena, "must be at most %d bytes long", NX_WEBHOOK_URL_MAX);
        return NX_EVALIDATION;
    }
    int rc = nx_httpc_url_parse(arena, url, u, &e);
    if (rc == NX_ENOMEM)
        return rc;
    /* the host follows "scheme://" at once: libcurl also reads "https:/host"
     * and "https:host", where the host read below would be another one */
    if (strncmp(url + strcspn(url, ":"), "://", 3) != 0)
        rc = NX_EVALIDATION;
    bool https = rc == NX_OK && strcmp(u->scheme, "https") == 0;
    bool http = rc == NX_OK && strcmp(u->scheme, "http") == 0;
    if (!https && !(http && policy.allow_http)) {
        *why = policy.allow_http ? "must be an absolute http or https URL"
                                 : "must be an absolute https URL";
        return NX_EVALIDATION;
    }
    if (u->credentials) {
        *why = "must not contain a user name or password";
        return NX_EVALIDATION;
    }
    *host = raw_host(arena, url);
    if (!*host || !**host) {
        *why = "must name a host";
        return NX_EVALIDATION;
    }
    struct in_addr a;
    if (!strchr(*host, ':') && ends_in_number(*host) && inet_pton(AF_INET, *host, &a) != 1) {
        *why = "names an IPv4 address in a form other than dotted decimal (a.b.c.d)";
        return NX_EVALIDATION;
    }
    return NX_OK;
}

int nx_webhook_url_check(nx_arena_t *arena, const char *url, bool resolve, const char **why)
{
    nx_httpc_url_t u;
    const char *host = NULL;
    bool literal;
    *why = NULL;
    int rc = check_form(arena, url, &u, &host, why);
    if (rc == NX_OK)
        rc = check_literal(arena, host, u.port, &literal, why);
    if (rc == NX_OK && !literal && resolve)
        rc = check_resolved(arena, host, u.port, why);
    if (rc == NX_EVALIDATION && !*why)
        return NX_ENOMEM; /* the sentence itself could not be written */
    return rc;
}
