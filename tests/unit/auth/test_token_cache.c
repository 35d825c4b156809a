/*
 * test_token_cache.c - the per-thread cache of verified access tokens: a hit
 * needs the same bytes and a time before the token stops passing; other
 * threads, other tokens in the same slot and long tokens never hit.
 */
#include "core/nx.h"
#include "auth/auth.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const nx_claims_t ada = {"11111111-2222-4333-8444-555555555555",
                                "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "admin", "j1", 100, 1000};

static void hit_returns_the_claims(void **state)
{
    (void)state;
    const char *t = "header.payload.signature-one";
    nx_claims_t c;
    assert_false(nx_token_cache_get(t, strlen(t), 500, &c));
    nx_token_cache_put(t, strlen(t), 1030, &ada);
    memset(&c, 0, sizeof(c));
    assert_true(nx_token_cache_get(t, strlen(t), 500, &c));
    assert_memory_equal(&c, &ada, sizeof(c));
}

static void expiry_is_checked_on_every_hit(void **state)
{
    (void)state;
    const char *t = "header.payload.signature-two";
    nx_claims_t c;
    nx_token_cache_put(t, strlen(t), 1030, &ada);
    assert_true(nx_token_cache_get(t, strlen(t), 1029, &c));
    assert_false(nx_token_cache_get(t, strlen(t), 1030, &c));
    assert_false(nx_token_cache_get(t, strlen(t), 5000, &c));
}

/* Same last bytes (so the same slot), same length, one byte apart. */
static void another_token_in_the_slot_misses(void **state)
{
    (void)state;
    const char *t = "aeader.payload.signature-three";
    const char *u = "beader.payload.signature-three";
    nx_claims_t c;
    nx_token_cache_put(t, strlen(t), 1030, &ada);
    assert_false(nx_token_cache_get(u, strlen(u), 500, &c));
    assert_false(nx_token_cache_get(t, strlen(t) - 1, 500, &c)); /* a prefix */
    assert_true(nx_token_cache_get(t, strlen(t), 500, &c));
}

static void long_and_empty_tokens_are_not_kept(void **state)
{
    (void)state;
    static char big[2048];
    memset(big, 'x', sizeof(big));
    nx_claims_t c;
    nx_token_cache_put(big, sizeof(big), 1030, &ada);
    assert_false(nx_token_cache_get(big, sizeof(big), 500, &c));
    nx_token_cache_put("", 0, 1030, &ada);
    assert_false(nx_token_cache_get("", 0, 500, &c));
}

static void *other_thread(void *arg)
{
    nx_claims_t c;
    const char *t = arg;
    return nx_token_cache_get(t, strlen(t), 500, &c) ? arg : NULL;
}

static void each_thread_has_its_own(void **state)
{
    (void)state;
    const char *t = "header.payload.signature-four";
    nx_token_cache_put(t, strlen(t), 1030, &ada);
    pthread_t th;
    void *seen = (void *)1;
    assert_int_equal(pthread_create(&th, NULL, other_thread, (void *)t), 0);
    assert_int_equal(pthread_join(th, &seen), 0);
    assert_null(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hit_returns_the_claims),
        cmocka_unit_test(expiry_is_checked_on_every_hit),
        cmocka_unit_test(another_token_in_the_slot_misses),
        cmocka_unit_test(long_and_empty_tokens_are_not_kept),
        cmocka_unit_test(each_thread_has_its_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
