/*
 * cidr.c - address ranges and membership (see cidr.h).
 *
 * Addresses are parsed with inet_pton only: dotted decimal for IPv4 (no
 * octal, hex or shortened forms) and RFC 4291 text for IPv6.
 */
#include "core/nx.h"
#include "core/cidr.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

int nx_cidr_parse(const char *s, nx_cidr_t *out)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(addr))
        return NX_EINVAL;
    memcpy(addr, s, n);
    addr[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, addr, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, out->addr) == 1)
        out->family = AF_INET6;
    else
        return NX_EINVAL;
    int max = out->family == AF_INET ? 32 : 128;
    long long bits = max;
    if (slash && nx_parse_int(slash + 1, 0, max, &bits) != NX_OK)
        return NX_EINVAL;
    out->bits = (int)bits;
    /* no host bits past the length */
    for (int i = out->bits; i < max; i++)
        if (out->addr[i / 8] & (0x80 >> (i % 8)))
            return NX_EINVAL;
    return NX_OK;
}

int nx_cidr_list_parse(const char *s, nx_cidr_list_t *out, char *bad_buf, size_t bad_size)
{
    out->n = 0;
    if (bad_size)
        bad_buf[0] = '\0';
    while (s && *s) {
        size_t skip = strspn(s, ", \t");
        s += skip;
        size_t n = strcspn(s, ", \t");
        if (n == 0)
            break;
        char item[80];
        snprintf(item, sizeof(item), "%.*s", (int)(n < 79 ? n : 79), s);
        if (n >= sizeof(item) || out->n == NX_CIDR_LIST_MAX ||
            nx_cidr_parse(item, &out->v[out->n]) != NX_OK) {
            if (bad_size)
                snprintf(bad_buf, bad_size, "%s", out->n == NX_CIDR_LIST_MAX
                                                      ? "more than 32 ranges" : item);
            return NX_EINVAL;
        }
        out->n++;
        s += n;
    }
    return NX_OK;
}

bool nx_cidr_contains(const nx_cidr_t *c, int family, const unsigned char *addr)
{
    if (c->family != family)
        return false;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

bool nx_cidr_list_contains(const nx_cidr_list_t *l, int family, const unsigned char *addr)
{
    for (int i = 0; i < l->n; i++)
        if (nx_cidr_contains(&l->v[i], family, addr))
            return true;
    return false;
}
