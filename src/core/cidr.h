/*
 * cidr.h - address ranges ("10.0.0.0/8", "fd00::/8") and membership tests,
 * for the network allow-list of webhook egress (WEBHOOK_ALLOW_NETWORKS),
 * read by the settings and by src/webhooks/egress.c.
 */
#ifndef NX_CORE_CIDR_H
#define NX_CORE_CIDR_H

#include "core/nx.h"

#include <sys/socket.h>

#define NX_CIDR_LIST_MAX 32

/* One range: family (AF_INET or AF_INET6), its address bytes, its length. */
typedef struct nx_cidr {
    int family;
    unsigned char addr[16];
    int bits;
} nx_cidr_t;

typedef struct nx_cidr_list {
    nx_cidr_t v[NX_CIDR_LIST_MAX];
    int n;
} nx_cidr_list_t;

/* Parses "ADDR/BITS" or a bare address (a /32 or /128). Host bits set
 * beyond the length are refused ("10.0.0.1/8"), so a typo is not a
 * silently wider range. NX_OK or NX_EINVAL. */
int nx_cidr_parse(const char *s, nx_cidr_t *out);
/* Parses a comma- or space-separated list (NULL or empty: none). On
 * NX_EINVAL, *bad points at the offending item (copied into bad_buf). */
int nx_cidr_list_parse(const char *s, nx_cidr_list_t *out, char *bad_buf, size_t bad_size);
/* True when addr (of family AF_INET or AF_INET6) lies in c. An IPv4
 * address never matches an IPv6 range, nor the reverse: ::ffff:127.0.0.1
 * is not inside 127.0.0.0/8. */
bool nx_cidr_contains(const nx_cidr_t *c, int family, const unsigned char *addr);
bool nx_cidr_list_contains(const nx_cidr_list_t *l, int family, const unsigned char *addr);

#endif
