/*
 * test_sign.c - Standard Webhooks signatures (webhooks/sign.c) and the
 * HMAC-SHA256 under them (auth/digest.c), against known answers: RFC 4231's
 * test case 2, and signatures computed apart from this code (Python's hmac
 * module). The end-to-end tests verify live deliveries with the
 * standardwebhooks npm library.
 */
#include "core/nx.h"
#include "webhooks/webhooks.h"
#include "auth/digest.h"
#include "core/arena.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#define MSG_ID "evt_0123456789abcdef0123456789abcdef"
#define BODY "{\"hello\": \"world\"}"

static void test_hmac_rfc4231_case2(void **state)
{
    (void)state;
    const char *parts[] = {"what do ya want ", "for nothing?"};
    const void *p[] = {parts[0], parts[1]};
    const size_t lens[] = {strlen(parts[0]), strlen(parts[1])};
    unsigned char mac[NX_SHA256_LEN];
    char hex[2 * NX_SHA256_LEN + 1];
    assert_int_equal(nx_hmac_sha256("Jefe", 4, p, lens, 2, mac), NX_OK);
    nx_hex(mac, sizeof(mac), hex);
    assert_string_equal(hex,
                        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void key_of(unsigned char *k, unsigned char start, unsigned char step)
{
    for (int i = 0; i < NX_WEBHOOK_SECRET_LEN; i++)
        k[i] = (unsigned char)(start + step * i);
}

static void test_secret_text(void **state)
{
    (void)state;
    unsigned char k[NX_WEBHOOK_SECRET_LEN];
    char text[NX_WEBHOOK_SECRET_TEXT];
    key_of(k, 0, 1);
    nx_webhook_secret_text(k, text);
    assert_string_equal(text, "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
}

static void test_signature_one_secret(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    unsigned char k[NX_WEBHOOK_SECRET_LEN];
    key_of(k, 0, 1);
    char *sig = NULL;
    assert_int_equal(nx_webhook_sign(a, k, NULL, MSG_ID, 1700000000, BODY, strlen(BODY), &sig),
                     NX_OK);
    assert_string_equal(sig, "v1,+ahxbyMEMTRkk+DHG9oeAT2KEdGGOCrpcCjYX2FyfHM=");
    /* any other byte of the message gives another signature */
    assert_int_equal(nx_webhook_sign(a, k, NULL, MSG_ID, 1700000001, BODY, strlen(BODY), &sig),
                     NX_OK);
    assert_string_not_equal(sig, "v1,+ahxbyMEMTRkk+DHG9oeAT2KEdGGOCrpcCjYX2FyfHM=");
    nx_arena_free(a);
}

static void test_signature_during_rotation(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    unsigned char cur[NX_WEBHOOK_SECRET_LEN], prev[NX_WEBHOOK_SECRET_LEN];
    key_of(cur, 0xab, 0);
    key_of(prev, 0, 1);
    char *sig = NULL;
    assert_int_equal(nx_webhook_sign(a, cur, prev, MSG_ID, 1700000000, BODY, strlen(BODY), &sig),
                     NX_OK);
    /* the new secret's first, then the previous one's, space-separated */
    assert_string_equal(sig, "v1,UDRn45gX+FtLgJ3lc5rdHC+XN9QItqRrfpYSG/xxSss= "
                             "v1,+ahxbyMEMTRkk+DHG9oeAT2KEdGGOCrpcCjYX2FyfHM=");
    nx_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_rfc4231_case2),
        cmocka_unit_test(test_secret_text),
        cmocka_unit_test(test_signature_one_secret),
        cmocka_unit_test(test_signature_during_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
