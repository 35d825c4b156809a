/*
 * test_peer.c - the loopback address check (http/peer.c) that decides who
 * may read GET /metrics without a token: IPv4, IPv6 and IPv4 mapped into
 * IPv6, and the request's peer as the connection reports it (through the
 * in-process harness), never a header.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/err.h"
#include "loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

static bool v4(const char *a)
{
    struct sockaddr_in s = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return nx_http_addr_loopback((struct sockaddr *)&s, sizeof(s));
}

static bool v6(const char *a)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
    return nx_http_addr_loopback((struct sockaddr *)&s, sizeof(s));
}

static void test_ipv4(void **state)
{
    (void)state;
    assert_true(v4("127.0.0.1"));
    assert_true(v4("127.255.255.254"));
    assert_true(v4("127.1.2.3"));
    assert_false(v4("128.0.0.1"));
    assert_false(v4("126.255.255.255"));
    assert_false(v4("10.0.0.1"));
    assert_false(v4("0.0.0.0"));
    assert_false(v4("192.168.1.127"));
}

static void test_ipv6(void **state)
{
    (void)state;
    assert_true(v6("::1"));
    assert_false(v6("::"));
    assert_false(v6("::2"));
    assert_false(v6("fe80::1"));
    assert_false(v6("2001:db8::1"));
    assert_false(v6("::127.0.0.1")); /* IPv4-compatible (deprecated) is not mapped */
}

static void test_v4_mapped(void **state)
{
    (void)state;
    assert_true(v6("::ffff:127.0.0.1"));
    assert_true(v6("::ffff:127.9.9.9"));
    assert_false(v6("::ffff:10.0.0.1"));
    assert_false(v6("::ffff:128.0.0.1"));
}

static void test_other_families_and_lengths(void **state)
{
    (void)state;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_false(nx_http_addr_loopback((struct sockaddr *)&un, sizeof(un)));
    assert_false(nx_http_addr_loopback(NULL, 0));
    struct sockaddr_in s = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &s.sin_addr);
    assert_false(nx_http_addr_loopback((struct sockaddr *)&s, 4)); /* truncated */
}

/* ---- the request's peer, through the harness -------------------------------- */

static bool seen;

static int h_peer(nx_req_t *req, nx_err_t *err)
{
    seen = nx_req_peer_loopback(req);
    return nx_resp_json(req, 200, "{}", 2);
}

static const nx_route_t routes[] = {{"GET", "/peer", h_peer, NX_ROUTE_PUBLIC}};
static const nx_route_group_t groups[] = {{"", 0, routes, 1}};
static const nx_stage_t stages[] = {
    {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    {"handler", NX_STAGE_REQUEST, nx_http_stage_handler},
    {"respond", NX_STAGE_RESPONSE, nx_http_stage_respond},
};

static bool peer_of(const char *addr, const char *forwarded)
{
    nx_loopback_req_t in = {.method = "GET", .path = "/peer", .peer = addr};
    if (forwarded) {
        in.headers[0][0] = "X-Forwarded-For";
        in.headers[0][1] = forwarded;
    }
    nx_loopback_resp_t out;
    seen = !seen;
    nx_loopback_run(&in, &out);
    assert_int_equal(out.status, 200);
    nx_loopback_release(&out);
    return seen;
}

static void test_request_peer(void **state)
{
    (void)state;
    nx_err_t err = {0};
    assert_int_equal(nx_router_init(groups, 1, &err), NX_OK);
    assert_int_equal(nx_pipeline_init(stages, NX_ARRAY_LEN(stages), &err), NX_OK);
    assert_true(peer_of("127.0.0.1", NULL));
    assert_true(peer_of("::1", NULL));
    assert_false(peer_of("192.0.2.7", NULL));
    assert_false(peer_of("192.0.2.7", "127.0.0.1")); /* a header never counts */
    assert_false(peer_of(NULL, "127.0.0.1"));        /* unknown is not loopback */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_v4_mapped),
        cmocka_unit_test(test_other_families_and_lengths),
        cmocka_unit_test(test_request_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
