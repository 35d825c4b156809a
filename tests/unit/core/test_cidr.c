/*
 * test_cidr.c - address ranges (core/cidr.c): parsing, host bits, lists,
 * membership at the edges, and the families kept apart.
 */
#include "core/nx.h"
#include "core/cidr.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static bool in(const nx_cidr_t *c, const char *text)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, text, a) == 1)
        return nx_cidr_contains(c, AF_INET, a);
    assert_int_equal(inet_pton(AF_INET6, text, a), 1);
    return nx_cidr_contains(c, AF_INET6, a);
}

static void test_parse_and_contain(void **state)
{
    (void)state;
    nx_cidr_t c;
    assert_int_equal(nx_cidr_parse("100.64.0.0/10", &c), NX_OK);
    assert_true(in(&c, "100.64.0.0"));
    assert_true(in(&c, "100.127.255.255"));
    assert_false(in(&c, "100.128.0.0"));
    assert_false(in(&c, "100.63.255.255"));
    assert_int_equal(nx_cidr_parse("127.0.0.1", &c), NX_OK); /* a /32 */
    assert_true(in(&c, "127.0.0.1"));
    assert_false(in(&c, "127.0.0.2"));
    assert_int_equal(nx_cidr_parse("0.0.0.0/0", &c), NX_OK);
    assert_true(in(&c, "203.0.113.1"));
    assert_false(in(&c, "::1")); /* families never mix */
    assert_int_equal(nx_cidr_parse("fe80::/10", &c), NX_OK);
    assert_true(in(&c, "febf:ffff::1"));
    assert_false(in(&c, "fec0::1"));
    assert_int_equal(nx_cidr_parse("::ffff:0:0/96", &c), NX_OK);
    assert_false(in(&c, "127.0.0.1"));
}

static void test_refusals(void **state)
{
    (void)state;
    nx_cidr_t c;
    static const char *const bad[] = {"", "/8", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/-1",
                                      "10.0.0.0/8x", "2130706433", "0x7f.1/32", "::1/129",
                                      "localhost", "10.0.0.0 /8"};
    for (size_t i = 0; i < NX_ARRAY_LEN(bad); i++)
        if (nx_cidr_parse(bad[i], &c) == NX_OK)
            fail_msg("\"%s\" parsed", bad[i]);
}

static void test_lists(void **state)
{
    (void)state;
    nx_cidr_list_t l;
    char bad[80];
    assert_int_equal(nx_cidr_list_parse(NULL, &l, bad, sizeof(bad)), NX_OK);
    assert_int_equal(l.n, 0);
    assert_int_equal(nx_cidr_list_parse(" 127.0.0.0/8,::1/128 ,10.0.0.0/8", &l, bad,
                                        sizeof(bad)), NX_OK);
    assert_int_equal(l.n, 3);
    unsigned char a[16];
    inet_pton(AF_INET, "10.9.9.9", a);
    assert_true(nx_cidr_list_contains(&l, AF_INET, a));
    inet_pton(AF_INET, "11.0.0.1", a);
    assert_false(nx_cidr_list_contains(&l, AF_INET, a));
    assert_int_equal(nx_cidr_list_parse("127.0.0.0/8,nope", &l, bad, sizeof(bad)), NX_EINVAL);
    assert_string_equal(bad, "nope");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_contain),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
