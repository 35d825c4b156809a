/*
 * test_ttl_cache.c - the expiring cache (core/ttl_cache.c): lifetimes from
 * max-age within the floor and ceiling, no-store held for the floor, heap
 * copies, and the early-refetch guard. The clock is passed in.
 */
#include "core/nx.h"
#include "core/ttl_cache.h"
#include "core/arena.h"
#include "core/mem.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_lifetimes(void **state)
{
    nx_ttl_cache_t c = NX_TTL_CACHE_INIT(3600, 60, 86400, 60);
    nx_arena_t *a = nx_arena_new(1024);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(nx_ttl_cache_get(&c, 1000, a, &v, &len), NX_ENOTFOUND);

    char doc[] = "{\"k\": 1}";
    assert_int_equal(nx_ttl_cache_put(&c, 1000, doc, strlen(doc), 120, false), NX_OK);
    doc[0] = 'X'; /* the cache holds its own copy */
    assert_int_equal(nx_ttl_cache_get(&c, 1119, a, &v, &len), NX_OK);
    assert_string_equal(v, "{\"k\": 1}");
    assert_int_equal(len, 8);
    assert_int_equal(nx_ttl_cache_get(&c, 1120, a, &v, &len), NX_ENOTFOUND);

    /* no max-age: the default; max-age 0 and no-store: the floor */
    nx_ttl_cache_put(&c, 1000, "a", 1, -1, false);
    assert_int_equal(nx_ttl_cache_get(&c, 4599, a, &v, NULL), NX_OK);
    assert_int_equal(nx_ttl_cache_get(&c, 4600, a, &v, NULL), NX_ENOTFOUND);
    nx_ttl_cache_put(&c, 1000, "b", 1, 0, false);
    assert_int_equal(nx_ttl_cache_get(&c, 1059, a, &v, NULL), NX_OK);
    assert_int_equal(nx_ttl_cache_get(&c, 1060, a, &v, NULL), NX_ENOTFOUND);
    nx_ttl_cache_put(&c, 1000, "c", 1, 3600, true);
    assert_int_equal(nx_ttl_cache_get(&c, 1059, a, &v, NULL), NX_OK);
    assert_string_equal(v, "c");
    assert_int_equal(nx_ttl_cache_get(&c, 1060, a, &v, NULL), NX_ENOTFOUND);
    /* the ceiling */
    nx_ttl_cache_put(&c, 1000, "d", 1, 10000000, false);
    assert_int_equal(nx_ttl_cache_get(&c, 1000 + 86400, a, &v, NULL), NX_ENOTFOUND);

    nx_ttl_cache_clear(&c);
    assert_int_equal(nx_ttl_cache_get(&c, 1000, a, &v, NULL), NX_ENOTFOUND);
    nx_arena_free(a);
}

static void test_failed_put_keeps_the_old_value(void **state)
{
    nx_ttl_cache_t c = NX_TTL_CACHE_INIT(3600, 60, 86400, 60);
    nx_arena_t *a = nx_arena_new(1024);
    char *v = NULL;
    nx_ttl_cache_put(&c, 1000, "old", 3, -1, false);
    nx_mem_fail_after(1);
    assert_int_equal(nx_ttl_cache_put(&c, 1000, "new", 3, -1, false), NX_ENOMEM);
    nx_mem_fail_after(0);
    assert_int_equal(nx_ttl_cache_get(&c, 1001, a, &v, NULL), NX_OK);
    assert_string_equal(v, "old");
    nx_ttl_cache_clear(&c);
    nx_arena_free(a);
}

static void test_force_guard(void **state)
{
    nx_ttl_cache_t c = NX_TTL_CACHE_INIT(3600, 60, 86400, 60);
    assert_true(nx_ttl_cache_may_force(&c, 1000));
    assert_false(nx_ttl_cache_may_force(&c, 1000));
    assert_false(nx_ttl_cache_may_force(&c, 1059));
    assert_true(nx_ttl_cache_may_force(&c, 1060));
    assert_false(nx_ttl_cache_may_force(&c, 1061));
    nx_ttl_cache_clear(&c);
    assert_true(nx_ttl_cache_may_force(&c, 1061));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifetimes),
        cmocka_unit_test(test_failed_put_keeps_the_old_value),
        cmocka_unit_test(test_force_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
