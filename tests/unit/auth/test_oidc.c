/*
 * test_oidc.c - which issuer a discovery document may name (OpenID
 * Discovery 4.3) and which iss values name an issuer (auth/google_oidc.c).
 */
#include "core/nx.h"
#include "auth/auth_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#define WK "/.well-known/openid-configuration"

static void test_issuer_matches_its_url(void **state)
{
    assert_true(nx_oidc_issuer_matches("https://accounts.google.com" WK,
                                       "https://accounts.google.com"));
    assert_true(nx_oidc_issuer_matches("http://127.0.0.1:9000" WK, "http://127.0.0.1:9000"));
    assert_true(nx_oidc_issuer_matches("https://id.example/realms/a" WK,
                                       "https://id.example/realms/a/"));
    /* a well-known URL names exactly one issuer */
    assert_false(nx_oidc_issuer_matches("https://id.example/realms/a" WK, "https://id.example"));
    assert_false(nx_oidc_issuer_matches("https://accounts.google.com" WK, "accounts.google.com"));
    assert_false(nx_oidc_issuer_matches("http://127.0.0.1:9000" WK, "http://127.0.0.1:900"));
    assert_false(nx_oidc_issuer_matches("http://127.0.0.1:9000" WK, "https://127.0.0.1:9000"));
    assert_false(nx_oidc_issuer_matches("https://evil.example" WK, "https://accounts.google.com"));
    assert_false(nx_oidc_issuer_matches("https://accounts.google.com" WK, NULL));
    assert_false(nx_oidc_issuer_matches("https://accounts.google.com" WK, ""));
    assert_false(nx_oidc_issuer_matches("https://a.example" WK, "https://a.example?x=1"));
    /* another form of URL: the issuer at a path boundary of it */
    assert_true(nx_oidc_issuer_matches("https://a.example/oidc/config", "https://a.example"));
    assert_false(nx_oidc_issuer_matches("https://a.example.evil/config", "https://a.example"));
}

static void test_iss_spellings(void **state)
{
    const char *g = "https://accounts.google.com";
    assert_true(nx_oidc_iss_ok(g, "https://accounts.google.com"));
    assert_true(nx_oidc_iss_ok(g, "accounts.google.com"));
    assert_false(nx_oidc_iss_ok(g, "https://accounts.google.com/"));
    assert_false(nx_oidc_iss_ok(g, NULL));
    const char *o = "http://127.0.0.1:9000";
    assert_true(nx_oidc_iss_ok(o, o));
    assert_false(nx_oidc_iss_ok(o, "accounts.google.com"));
    assert_false(nx_oidc_iss_ok(o, "https://accounts.google.com"));
    assert_false(nx_oidc_iss_ok(o, "127.0.0.1:9000"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issuer_matches_its_url),
        cmocka_unit_test(test_iss_spellings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
