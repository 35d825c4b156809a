/*
 * test_egress.c - where webhooks may connect (webhooks/egress.c): the
 * address classifier on every refused range and beside its edges, the URL
 * rules (scheme, credentials, numeric host forms), the allow-list, and this
 * server's own listening address. A name that resolves to a private address
 * is tested with "localhost" (no test DNS server: the resolver is the
 * system's).
 */
#include "core/nx.h"
#include "webhooks/webhooks.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static nx_arena_t *arena;

static void policy(const char *host, int port, const char *allow, bool http)
{
    nx_settings_t s;
    memset(&s, 0, sizeof(s));
    s.host = (char *)host;
    s.webhook_allow_networks = (char *)allow;
    s.webhook_allow_http = http;
    nx_err_t err = {0};
    assert_int_equal(nx_webhooks_egress_init(&s, port, &err), NX_OK);
}

static int setup(void **state)
{
    (void)state;
    arena = nx_arena_new(16 * 1024);
    policy("127.0.0.1", 18000, NULL, false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nx_arena_free(arena);
    return 0;
}

/* The class of a textual address, or NULL when public. */
static const char *class_of(const char *text)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, text, a) == 1)
        return nx_webhook_addr_class(AF_INET, a);
    assert_int_equal(inet_pton(AF_INET6, text, a), 1);
    return nx_webhook_addr_class(AF_INET6, a);
}

static void test_every_refused_range(void **state)
{
    (void)state;
    static const struct {
        const char *addr, *why;
    } refused[] = {
        {"0.0.0.0", "unspecified"},       {"0.255.255.255", "unspecified"},
        {"10.0.0.0", "private"},          {"10.255.255.255", "private"},
        {"100.64.0.0", "carrier-grade"},  {"100.127.255.255", "carrier-grade"},
        {"127.0.0.1", "loopback"},        {"127.255.255.254", "loopback"},
        {"169.254.169.254", "link-local"}, {"169.254.0.1", "link-local"},
        {"172.16.0.0", "private"},        {"172.31.255.255", "private"},
        {"192.0.0.8", "reserved"},        {"192.0.2.1", "documentation"},
        {"192.88.99.1", "reserved"},      {"192.168.0.1", "private"},
        {"192.168.255.255", "private"},   {"198.18.0.1", "reserved"},
        {"198.19.255.255", "reserved"},   {"198.51.100.7", "documentation"},
        {"203.0.113.9", "documentation"}, {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"}, {"240.0.0.1", "reserved"},
        {"255.255.255.255", "reserved"},  {"::", "unspecified"},
        {"::1", "loopback"},              {"::ffff:127.0.0.1", "IPv4-mapped"},
        {"::ffff:8.8.8.8", "IPv4-mapped"}, {"::127.0.0.1", "IPv4-compatible"},
        {"64:ff9b::a00:1", "NAT64"},      {"64:ff9b::808:808", "NAT64"},
        {"64:ff9b:1::1", "NAT64"},        {"100::1", "reserved"},
        {"2001:db8::1", "documentation"}, {"2001::1", "reserved"},
        {"2002:7f00:1::1", "6to4"},       {"fc00::1", "private"},
        {"fdff:ffff::1", "private"},      {"fe80::1", "link-local"},
        {"febf::1", "link-local"},        {"fec0::1", "reserved"},
        {"ff02::1", "multicast"},         {"3fff::1", "documentation"},
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(refused); i++) {
        const char *why = class_of(refused[i].addr);
        if (!why || !strstr(why, refused[i].why))
            fail_msg("%s: expected \"%s\", got \"%s\"", refused[i].addr, refused[i].why,
                     why ? why : "(public)");
    }
}

static void test_public_addresses_pass(void **state)
{
    (void)state;
    static const char *const public[] = {
        "1.1.1.1",        "8.8.8.8",         "9.255.255.255", "11.0.0.0",
        "100.63.255.255", "100.128.0.0",     "126.255.255.255", "128.0.0.0",
        "169.253.255.255", "169.255.0.0",    "172.15.255.255", "172.32.0.0",
        "192.0.1.1",      "192.167.255.255", "192.169.0.0",   "198.17.255.255",
        "198.20.0.0",     "223.255.255.255", "2606:4700:4700::1111", "2a00:1450::1",
        "2001:4860::8888", "fbff::1",        "fe00::1",
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(public); i++)
        if (class_of(public[i]))
            fail_msg("%s: refused as %s", public[i], class_of(public[i]));
}

/* nx_webhook_url_check's verdict: NULL when accepted, else why. */
static const char *check(const char *url, bool resolve)
{
    const char *why = NULL;
    int rc = nx_webhook_url_check(arena, url, resolve, &why);
    if (rc == NX_OK)
        return NULL;
    assert_int_equal(rc, NX_EVALIDATION);
    assert_non_null(why);
    return why;
}

static void refused_for(const char *url, const char *part)
{
    const char *why = check(url, false);
    if (!why || !strstr(why, part))
        fail_msg("%s: expected a refusal naming \"%s\", got \"%s\"", url, part,
                 why ? why : "(accepted)");
}

static void test_url_rules(void **state)
{
    (void)state;
    assert_null(check("https://hooks.example.com/nexus?x=1", false));
    assert_null(check("https://8.8.8.8:8443/hook", false));
    assert_null(check("https://[2606:4700:4700::1111]/hook", false));
    assert_null(check("https://1example.com/", false));
    refused_for("http://hooks.example.com/", "https");
    refused_for("ftp://hooks.example.com/", "https");
    refused_for("hooks.example.com/path", "https");
    /* libcurl reads these too, with a host other than the one after "//" */
    refused_for("https:/hooks.example.com/", "https");
    refused_for("https:hooks.example.com/", "https");
    refused_for("https:/tps://hooks.example.com/", "https");
    refused_for("https://user:secret@hooks.example.com/", "user name or password");
    refused_for("https://user@hooks.example.com/", "user name or password");
    refused_for("https://:secret@hooks.example.com/", "user name or password");
    /* numeric hosts libcurl would read as 127.0.0.1 */
    refused_for("https://2130706433/", "dotted decimal");
    refused_for("https://0x7f000001/", "dotted decimal");
    refused_for("https://0x7f.1/", "dotted decimal");
    refused_for("https://017700000001/", "dotted decimal");
    refused_for("https://127.1/", "dotted decimal");
    refused_for("https://0177.0.0.1/", "dotted decimal");
    refused_for("https://127.0.0.1./", "dotted decimal");
    /* literal addresses, checked without a lookup */
    refused_for("https://127.0.0.1/", "loopback");
    refused_for("https://[::1]/", "loopback");
    refused_for("https://10.1.2.3/", "private");
    refused_for("https://172.16.5.4/", "private");
    refused_for("https://192.168.1.1/", "private");
    refused_for("https://169.254.169.254/latest/meta-data/", "link-local");
    refused_for("https://100.64.0.1/", "carrier-grade");
    refused_for("https://[::ffff:127.0.0.1]/", "IPv4-mapped");
    refused_for("https://[64:ff9b::7f00:1]/", "NAT64");
    char long_url[2200] = "https://example.com/";
    memset(long_url + 20, 'a', 2100);
    long_url[2120] = '\0';
    refused_for(long_url, "2048");
}

static void test_plain_http_when_allowed(void **state)
{
    (void)state;
    policy("127.0.0.1", 18000, NULL, true);
    assert_null(check("http://hooks.example.com/", false));
    refused_for("ftp://hooks.example.com/", "http or https");
    policy("127.0.0.1", 18000, NULL, false);
}

static void test_allow_list(void **state)
{
    (void)state;
    policy("127.0.0.1", 18000, "127.0.0.0/8, 10.1.0.0/16", false);
    assert_null(check("https://127.0.0.1:9/", false));
    assert_null(check("https://10.1.200.3/", false));
    refused_for("https://10.2.0.1/", "private");
    /* an IPv4 range does not let the other forms of its addresses through */
    refused_for("https://[::ffff:127.0.0.1]/", "IPv4-mapped");
    refused_for("https://[::1]/", "loopback");
    refused_for("https://2130706433/", "dotted decimal");
    policy("127.0.0.1", 18000, NULL, false);
}

static void test_own_address_always_refused(void **state)
{
    (void)state;
    policy("127.0.0.1", 18000, "127.0.0.0/8", false);
    refused_for("https://127.0.0.1:18000/api/v1/me", "own address");
    assert_null(check("https://127.0.0.1:18001/", false));
    nx_webhooks_egress_port(18001); /* PORT=0: the port picked */
    refused_for("https://127.0.0.1:18001/", "own address");
    policy("127.0.0.1", 18000, NULL, false);
}

static void test_names_are_resolved_and_every_address_checked(void **state)
{
    (void)state;
    /* without the lookup only the form is checked */
    assert_null(check("https://localhost/", false));
    const char *why = check("https://localhost/", true);
    assert_non_null(why);
    assert_non_null(strstr(why, "loopback"));
    policy("127.0.0.1", 18000, "127.0.0.0/8, ::1/128", false);
    assert_null(check("https://localhost:9/", true));
    policy("127.0.0.1", 18000, NULL, false);
}

static void test_bad_allow_list_refused(void **state)
{
    (void)state;
    nx_settings_t s;
    memset(&s, 0, sizeof(s));
    s.host = "127.0.0.1";
    s.webhook_allow_networks = "10.0.0.0/8, 10.0.0.1/8";
    nx_err_t err = {0};
    assert_int_equal(nx_webhooks_egress_init(&s, 1, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "10.0.0.1/8"));
    policy("127.0.0.1", 18000, NULL, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_refused_range),
        cmocka_unit_test(test_public_addresses_pass),
        cmocka_unit_test(test_url_rules),
        cmocka_unit_test(test_plain_http_when_allowed),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_own_address_always_refused),
        cmocka_unit_test(test_names_are_resolved_and_every_address_checked),
        cmocka_unit_test(test_bad_allow_list_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
