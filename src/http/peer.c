/*
 * peer.c - who is on the other end of a request's connection.
 *
 * The address is the connection's own (libmicrohttpd's record of the
 * accepted socket, through the request's source), never a header: a
 * client can write X-Forwarded-For, it cannot choose the address its
 * packets come from over TCP. Operators' routes (GET /metrics) answer
 * loopback clients without a token, so the test is kept small and exact:
 * 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6.
 */
#include "core/nx.h"
#include "http/http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

bool nx_http_addr_loopback(const struct sockaddr *addr, socklen_t len)
{
    if (!addr)
        return false;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false; /* unix sockets and anything else: not an IP loopback */
}

bool nx_req_peer_loopback(nx_req_t *req)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    memset(&ss, 0, sizeof(ss));
    if (!hc->src || !hc->src->peer || !hc->src->peer(hc->src_ctx, &ss, &len))
        return false;
    return nx_http_addr_loopback((const struct sockaddr *)&ss, len);
}
