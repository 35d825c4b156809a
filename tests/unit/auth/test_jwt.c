/*
 * test_jwt.c - access tokens, PKCE and the signed login cookie.
 *
 * Tokens are minted with nx_jwt_mint and also crafted by hand here (header
 * and claims chosen by the test, HMAC computed with OpenSSL), so each check
 * of nx_jwt_verify is exercised on its own: the pinned algorithm, typ, iss,
 * exp/nbf/iat, required claims and their shapes, and garbage of every kind.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define SECRET "unit-test-secret-0123456789abcdef0123456789"
#define USER "11111111-2222-4333-8444-555555555555"
#define ORG "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

static const EVP_MD *md_of(int alg)
{
    return alg == NX_JWT_HS384 ? EVP_sha384() : alg == NX_JWT_HS512 ? EVP_sha512() : EVP_sha256();
}

/* header.payload.signature from raw JSON texts, HMAC under secret. */
static char *craft(nx_arena_t *a, const char *header, const char *payload, const char *secret,
                   int alg)
{
    char h[1024], p[4096], s[128];
    nx_b64url((const unsigned char *)header, strlen(header), h, sizeof(h));
    nx_b64url((const unsigned char *)payload, strlen(payload), p, sizeof(p));
    char *signing = nx_arena_sprintf(a, "%s.%s", h, p);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(md_of(alg), secret, (int)strlen(secret), (const unsigned char *)signing,
         strlen(signing), mac, &n);
    nx_b64url(mac, n, s, sizeof(s));
    return nx_arena_sprintf(a, "%s.%s", signing, s);
}

static char *claims(nx_arena_t *a, long long iat, long long exp, const char *extra)
{
    return nx_arena_sprintf(a,
                            "{\"sub\":\"" USER "\",\"org_id\":\"" ORG "\",\"role\":\"member\","
                            "\"iat\":%lld,\"exp\":%lld,\"iss\":\"nexusapi\",\"jti\":\"j1\"%s}",
                            iat, exp, extra ? extra : "");
}

static int verify(const char *tok, int alg)
{
    nx_claims_t c;
    nx_err_t err = {0};
    int rc = nx_jwt_verify(SECRET, alg, tok, strlen(tok), 0, &c, &err);
    if (rc != NX_OK)
        assert_int_equal(err.code, NX_EUNAUTHORIZED);
    return rc;
}

static void test_round_trip_each_alg(void **state)
{
    (void)state;
    for (int alg = NX_JWT_HS256; alg <= NX_JWT_HS512; alg++) {
        nx_arena_t *a = nx_arena_new(4096);
        nx_err_t err = {0};
        char *tok = NULL;
        assert_int_equal(nx_jwt_mint(a, SECRET, alg, USER, ORG, "admin", 3600, &tok, &err), NX_OK);
        nx_claims_t c;
        assert_int_equal(nx_jwt_verify(SECRET, alg, tok, strlen(tok), 0, &c, &err), NX_OK);
        assert_string_equal(c.sub, USER);
        assert_string_equal(c.org_id, ORG);
        assert_string_equal(c.role, "admin");
        assert_int_equal(c.exp - c.iat, 3600);
        assert_true(strlen(c.jti) == 36);
        /* the algorithm is pinned: the same token under another setting fails */
        for (int other = NX_JWT_HS256; other <= NX_JWT_HS512; other++)
            if (other != alg)
                assert_int_equal(verify(tok, other), NX_EUNAUTHORIZED);
        /* a different secret fails */
        err = (nx_err_t){0};
        assert_int_equal(nx_jwt_verify(SECRET "x", alg, tok, strlen(tok), 0, &c, &err),
                         NX_EUNAUTHORIZED);
        nx_arena_free(a);
    }
}

/* JWT_PREVIOUS_SECRET_KEY: a token signed with the previous secret passes
 * when that secret is in the list, and only then; claims are checked the
 * same whichever secret signed. */
static void test_rotation_keys(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    nx_err_t err = {0};
    char *old = NULL, *fresh = NULL, *stranger = NULL;
    const char *previous = "previous-secret-0123456789abcdef0123456789";
    assert_int_equal(nx_jwt_mint(a, previous, NX_JWT_HS256, USER, ORG, "member", 600, &old,
                                 &err), NX_OK);
    assert_int_equal(nx_jwt_mint(a, SECRET, NX_JWT_HS256, USER, ORG, "member", 600, &fresh,
                                 &err), NX_OK);
    assert_int_equal(nx_jwt_mint(a, "someone-else-0123456789abcdef0123456789",
                                 NX_JWT_HS256, USER, ORG, "member", 600, &stranger, &err), NX_OK);
    const char *both[] = {SECRET, previous}, *current[] = {SECRET, NULL};
    nx_claims_t c;
    assert_int_equal(nx_jwt_verify_keys(both, 2, NX_JWT_HS256, old, strlen(old), 0, &c, &err),
                     NX_OK);
    assert_string_equal(c.sub, USER);
    assert_int_equal(nx_jwt_verify_keys(both, 2, NX_JWT_HS256, fresh, strlen(fresh), 0, &c, &err),
                     NX_OK);
    err = (nx_err_t){0};
    assert_int_equal(nx_jwt_verify_keys(current, 2, NX_JWT_HS256, old, strlen(old), 0, &c, &err),
                     NX_EUNAUTHORIZED);
    assert_string_equal(err.detail, "The access token is invalid: bad signature.");
    err = (nx_err_t){0};
    assert_int_equal(nx_jwt_verify_keys(both, 2, NX_JWT_HS256, stranger, strlen(stranger), 0, &c,
                                        &err), NX_EUNAUTHORIZED);
    /* signed with the previous secret and expired: expired, like any token */
    err = (nx_err_t){0};
    long long later = (long long)time(NULL) + 3600;
    assert_int_equal(nx_jwt_verify_keys(both, 2, NX_JWT_HS256, old, strlen(old), later, &c, &err),
                     NX_EUNAUTHORIZED);
    assert_string_equal(err.detail, "The access token has expired.");
    nx_arena_free(a);
}

static void test_tampering(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    nx_err_t err = {0};
    char *tok = NULL;
    assert_int_equal(nx_jwt_mint(a, SECRET, NX_JWT_HS256, USER, ORG, "member", 600, &tok, &err), NX_OK);
    assert_int_equal(verify(tok, NX_JWT_HS256), NX_OK);
    size_t n = strlen(tok);
    const char *dot1 = strchr(tok, '.');
    const char *dot2 = strrchr(tok, '.');
    /* flip one character in each part */
    size_t at[] = {1, (size_t)(dot1 - tok) + 5, (size_t)(dot2 - tok) + 3, n - 1};
    for (size_t i = 0; i < NX_ARRAY_LEN(at); i++) {
        char *t = nx_arena_strdup(a, tok);
        t[at[i]] = t[at[i]] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(t, NX_JWT_HS256), NX_EUNAUTHORIZED);
    }
    /* the same signature spelled with the spare low bits of its last
     * character set: decodes to the same bytes, must still be refused */
    {
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char *t = nx_arena_strdup(a, tok);
        size_t v = (size_t)(strchr(b64, t[n - 1]) - b64);
        assert_int_equal(v & 3, 0);
        t[n - 1] = b64[v | 1];
        assert_int_equal(verify(t, NX_JWT_HS256), NX_EUNAUTHORIZED);
        /* and one character more or less */
        assert_int_equal(verify(nx_arena_sprintf(a, "%sA", tok), NX_JWT_HS256),
                         NX_EUNAUTHORIZED);
        assert_int_equal(verify(nx_arena_strndup(a, tok, n - 1), NX_JWT_HS256),
                         NX_EUNAUTHORIZED);
    }
    /* a member promoting itself: claims re-signed with a wrong key */
    long long now = (long long)time(NULL);
    char *forged = craft(a, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
                         nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"org_id\":\"" ORG
                                             "\",\"role\":\"admin\",\"iat\":%lld,\"exp\":%lld,"
                                             "\"iss\":\"nexusapi\",\"jti\":\"x\"}",
                                          now, now + 60),
                         "not-the-secret", NX_JWT_HS256);
    assert_int_equal(verify(forged, NX_JWT_HS256), NX_EUNAUTHORIZED);
    /* truncations */
    for (size_t cut = 1; cut < n; cut += 7)
        assert_int_equal(verify(nx_arena_strndup(a, tok, cut), NX_JWT_HS256), NX_EUNAUTHORIZED);
    nx_arena_free(a);
}

static void test_header_rules(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(8192);
    long long now = (long long)time(NULL);
    char *c = claims(a, now, now + 600, NULL);
    /* a correct crafted token passes: the harness itself is right */
    assert_int_equal(verify(craft(a, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", c, SECRET, 0), 0), NX_OK);
    assert_int_equal(verify(craft(a, "{\"alg\":\"HS512\",\"typ\":\"at+jwt\"}", c, SECRET, 2), 2), NX_OK);
    /* alg none, with and without a signature */
    char h[128], p[1024];
    const char *none = "{\"alg\":\"none\",\"typ\":\"at+jwt\"}";
    nx_b64url((const unsigned char *)none, strlen(none), h, sizeof(h));
    nx_b64url((const unsigned char *)c, strlen(c), p, sizeof(p));
    assert_int_equal(verify(nx_arena_sprintf(a, "%s.%s.", h, p), 0), NX_EUNAUTHORIZED);
    assert_int_equal(verify(nx_arena_sprintf(a, "%s.%s.AAAA", h, p), 0), NX_EUNAUTHORIZED);
    assert_int_equal(verify(craft(a, none, c, SECRET, 0), 0), NX_EUNAUTHORIZED);
    /* RS256 in the header, HMAC'd with our secret (key confusion) */
    assert_int_equal(verify(craft(a, "{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", c, SECRET, 0), 0),
                     NX_EUNAUTHORIZED);
    /* HS384 signature when HS256 is configured */
    assert_int_equal(verify(craft(a, "{\"alg\":\"HS384\",\"typ\":\"at+jwt\"}", c, SECRET, 1), 0),
                     NX_EUNAUTHORIZED);
    /* typ: missing, plain JWT (an ID token), wrong case of alg, crit */
    assert_int_equal(verify(craft(a, "{\"alg\":\"HS256\"}", c, SECRET, 0), 0), NX_EUNAUTHORIZED);
    assert_int_equal(verify(craft(a, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", c, SECRET, 0), 0),
                     NX_EUNAUTHORIZED);
    assert_int_equal(verify(craft(a, "{\"alg\":\"hs256\",\"typ\":\"at+jwt\"}", c, SECRET, 0), 0),
                     NX_EUNAUTHORIZED);
    assert_int_equal(verify(craft(a, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"crit\":[\"exp\"]}",
                                  c, SECRET, 0), 0),
                     NX_EUNAUTHORIZED);
    /* duplicate keys in the header */
    assert_int_equal(verify(craft(a, "{\"alg\":\"HS256\",\"alg\":\"none\",\"typ\":\"at+jwt\"}", c,
                                  SECRET, 0), 0),
                     NX_EUNAUTHORIZED);
    /* header not an object */
    assert_int_equal(verify(craft(a, "[\"HS256\"]", c, SECRET, 0), 0), NX_EUNAUTHORIZED);
    nx_arena_free(a);
}

static void test_claim_rules(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(16384);
    long long now = (long long)time(NULL);
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}";
#define BAD(payload) assert_int_equal(verify(craft(a, h, (payload), SECRET, 0), 0), NX_EUNAUTHORIZED)
#define GOOD(payload) assert_int_equal(verify(craft(a, h, (payload), SECRET, 0), 0), NX_OK)
    GOOD(claims(a, now, now + 60, NULL));
    GOOD(claims(a, now - 100, now - 10, NULL));                    /* within the leeway */
    BAD(claims(a, now - 1000, now - 100, NULL));                   /* expired */
    BAD(claims(a, now + 600, now + 1200, NULL));                   /* iat in the future */
    BAD(claims(a, now, now + 60, nx_arena_sprintf(a, ",\"nbf\":%lld", now + 300)));
    GOOD(claims(a, now, now + 60, nx_arena_sprintf(a, ",\"nbf\":%lld", now - 5)));
    BAD(claims(a, now, now + 60, ",\"nbf\":\"soon\""));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"org_id\":\"" ORG "\",\"role\":\"member\","
                            "\"iat\":%lld,\"exp\":%lld,\"iss\":\"accounts.google.com\",\"jti\":\"j\"}",
                         now, now + 60));
    BAD(nx_arena_sprintf(a, "{\"org_id\":\"" ORG "\",\"role\":\"member\",\"iat\":%lld,"
                            "\"exp\":%lld,\"iss\":\"nexusapi\",\"jti\":\"j\"}", now, now + 60));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"role\":\"member\",\"iat\":%lld,"
                            "\"exp\":%lld,\"iss\":\"nexusapi\",\"jti\":\"j\"}", now, now + 60));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"org_id\":\"" ORG "\",\"iat\":%lld,"
                            "\"exp\":%lld,\"iss\":\"nexusapi\",\"jti\":\"j\"}", now, now + 60));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"org_id\":\"" ORG "\",\"role\":\"member\","
                            "\"iat\":%lld,\"exp\":%lld,\"iss\":\"nexusapi\"}", now, now + 60));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"org_id\":\"" ORG "\",\"role\":\"member\","
                            "\"iat\":%lld,\"iss\":\"nexusapi\",\"jti\":\"j\"}", now));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"not-a-uuid\",\"org_id\":\"" ORG "\",\"role\":\"member\","
                            "\"iat\":%lld,\"exp\":%lld,\"iss\":\"nexusapi\",\"jti\":\"j\"}",
                         now, now + 60));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"org_id\":\"" ORG "\",\"role\":\"root\","
                            "\"iat\":%lld,\"exp\":%lld,\"iss\":\"nexusapi\",\"jti\":\"j\"}",
                         now, now + 60));
    BAD(nx_arena_sprintf(a, "{\"sub\":\"" USER "\",\"org_id\":\"" ORG "\",\"role\":\"member\","
                            "\"iat\":%lld,\"exp\":\"%lld\",\"iss\":\"nexusapi\",\"jti\":\"j\"}",
                         now, now + 60));
    BAD("[1,2,3]");
    BAD("not json");
#undef BAD
#undef GOOD
    nx_arena_free(a);
}

static void test_garbage(void **state)
{
    (void)state;
    static char big[16 * 1024 + 1];
    memset(big, 'A', sizeof(big) - 1);
    big[100] = '.';
    big[200] = '.';
    const char *cases[] = {"",      "x",         "a.b",     "a.b.c",   "...",      "a..c",
                           ".b.c",  "a.b.c.d",   "!!!.@@@.###", "eyJ.eyJ.sig", "e30.e30.",
                           "e30.e30.e30", big};
    for (size_t i = 0; i < NX_ARRAY_LEN(cases); i++)
        assert_int_equal(verify(cases[i], NX_JWT_HS256), NX_EUNAUTHORIZED);
    /* NUL inside the given length */
    nx_claims_t c;
    nx_err_t err = {0};
    assert_int_equal(nx_jwt_verify(SECRET, 0, "e30\0e30.e30", 11, 0, &c, &err), NX_EUNAUTHORIZED);
}

static void test_pkce(void **state)
{
    (void)state;
    char ch[44];
    nx_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ch); /* RFC 7636 app. B */
    assert_string_equal(ch, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    char a[48], b[48];
    assert_int_equal(nx_pkce_random(a, sizeof(a), 32), NX_OK);
    assert_int_equal(nx_pkce_random(b, sizeof(b), 32), NX_OK);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
}

static void test_login_cookie(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    nx_err_t err = {0};
    nx_login_state_t ls, back;
    char *set = NULL;
    assert_int_equal(nx_login_state_new(a, SECRET, &ls, &set, &err), NX_OK);
    assert_non_null(strstr(set, "HttpOnly"));
    assert_non_null(strstr(set, "SameSite=Lax"));
    /* the cookie value is what a browser sends back */
    const char *v = set + strlen(NX_LOGIN_COOKIE "=");
    char *value = nx_arena_strndup(a, v, strcspn(v, ";"));
    assert_int_equal(nx_login_state_parse(SECRET, value, 0, &back, &err), NX_OK);
    assert_string_equal(back.state, ls.state);
    assert_string_equal(back.nonce, ls.nonce);
    assert_string_equal(back.verifier, ls.verifier);
    /* another secret, a changed byte, expiry, garbage */
    err = (nx_err_t){0};
    assert_int_equal(nx_login_state_parse(SECRET "y", value, 0, &back, &err), NX_EUNAUTHORIZED);
    char *t = nx_arena_strdup(a, value);
    t[5] = t[5] == 'A' ? 'B' : 'A';
    err = (nx_err_t){0};
    assert_int_equal(nx_login_state_parse(SECRET, t, 0, &back, &err), NX_EUNAUTHORIZED);
    err = (nx_err_t){0};
    assert_int_equal(nx_login_state_parse(SECRET, value, ls.expires + 1, &back, &err),
                     NX_EUNAUTHORIZED);
    const char *junk[] = {"", "v1", "v1.....", "v2.a.b.c.1.x", "garbage"};
    for (size_t i = 0; i < NX_ARRAY_LEN(junk); i++) {
        err = (nx_err_t){0};
        assert_int_equal(nx_login_state_parse(SECRET, junk[i], 0, &back, &err), NX_EUNAUTHORIZED);
    }
    nx_arena_free(a);
}

static void test_cookie_secure(void **state)
{
    (void)state;
    assert_true(nx_cookie_insecure_ok("http://localhost:8000"));
    assert_true(nx_cookie_insecure_ok("http://127.0.0.1"));
    assert_true(nx_cookie_insecure_ok("http://localhost/"));
    assert_false(nx_cookie_insecure_ok("http://localhost.evil.com"));
    assert_false(nx_cookie_insecure_ok("https://localhost"));
    assert_false(nx_cookie_insecure_ok("http://example.com"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_each_alg),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_rotation_keys),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_claim_rules),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_pkce),
        cmocka_unit_test(test_login_cookie),
        cmocka_unit_test(test_cookie_secure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
