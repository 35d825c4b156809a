/*
 * test_arena.c - arena allocation, cleanups, bounded buffers, error sink.
 */
#include "core/nx.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static int cleaned[4];
static int order;

static void mark(void *p) { *(int *)p = ++order; }

static void test_alloc_and_cleanup_order(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(256);
    assert_non_null(a);
    for (int i = 0; i < 1000; i++) {
        char *p = nx_arena_alloc(a, 33);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 'x', 33);
    }
    void *big = nx_arena_alloc(a, 1 << 20);
    assert_non_null(big);
    memset(big, 0, 1 << 20);
    order = 0;
    memset(cleaned, 0, sizeof(cleaned));
    nx_arena_defer(a, mark, &cleaned[0]);
    nx_arena_defer(a, mark, &cleaned[1]);
    nx_arena_defer(a, mark, &cleaned[2]);
    nx_arena_undefer(a, mark, &cleaned[1]);
    nx_arena_reset(a);
    assert_int_equal(cleaned[2], 1); /* last registered runs first */
    assert_int_equal(cleaned[0], 2);
    assert_int_equal(cleaned[1], 0);
    assert_int_equal(nx_arena_used(a), 0);
    assert_string_equal(nx_arena_sprintf(a, "%s-%d", "a", 7), "a-7");
    nx_arena_free(a);
}

static void test_alloc_failure_is_null(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(256);
    nx_mem_fail_after(1);
    assert_null(nx_arena_alloc(a, 4096)); /* needs a new chunk: fails cleanly */
    nx_mem_fail_after(0);
    assert_non_null(nx_arena_alloc(a, 16));
    nx_arena_free(a);
}

static void test_buf_ceiling(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(1024);
    nx_buf_t b;
    nx_buf_init(&b, a, 10);
    assert_int_equal(nx_buf_puts(&b, "0123456789"), NX_OK);
    assert_int_equal(nx_buf_puts(&b, "x"), NX_ETOOBIG);
    assert_int_equal(b.len, 10);
    nx_buf_t j;
    nx_buf_init(&j, NULL, 1024);
    assert_int_equal(nx_buf_json_str(&j, "a\"b\\c\n\x01"), NX_OK);
    assert_string_equal(j.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    nx_buf_release(&j);
    nx_arena_free(a);
}

static void test_err_first_wins(void **state)
{
    (void)state;
    nx_err_t err = {0};
    assert_int_equal(nx_err_set(&err, NX_ENOTFOUND, "first %d", 1), NX_ENOTFOUND);
    assert_int_equal(nx_err_set(&err, NX_ECONFLICT, "second"), NX_ENOTFOUND);
    assert_string_equal(err.detail, "first 1");
    assert_int_equal(nx_err_status(NX_ENOTFOUND), 404);
    assert_string_equal(nx_err_slug(NX_EPAYMENT), "insufficient-credits");
    assert_string_equal(nx_err_name(NX_EVALIDATION), "NX_EVALIDATION");
    assert_int_equal(nx_err_status(-999), 500);
    nx_err_t v = {0};
    nx_err_field(&v, "text", "must not be empty");
    assert_int_equal(v.code, NX_EVALIDATION);
    assert_int_equal(v.nfields, 1);
}

static void test_utf8_and_uuid(void **state)
{
    (void)state;
    assert_true(nx_utf8_valid("héllo ✓ 😀", strlen("héllo ✓ 😀")));
    assert_false(nx_utf8_valid("\xc3\x28", 2));
    assert_false(nx_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    assert_false(nx_utf8_valid("\xc0\xaf", 2));     /* overlong */
    assert_false(nx_utf8_valid("\xe2\x82", 2));     /* truncated */
    assert_int_equal(nx_utf8_len("h\xc3\xa9", 3), 2);
    char id[37];
    nx_uuid_v4(id);
    assert_true(nx_uuid_valid(id));
    assert_int_equal(id[14], '4');
    assert_false(nx_uuid_valid("not-a-uuid"));
    long long n;
    assert_int_equal(nx_parse_int("42", 0, 100, &n), NX_OK);
    assert_int_equal(n, 42);
    assert_int_equal(nx_parse_int("4 2", 0, 100, &n), NX_EINVAL);
    assert_int_equal(nx_parse_int("101", 0, 100, &n), NX_EINVAL);
}

static void test_name_rule(void **state)
{
    (void)state;
    size_t n;
    const char *in = " \t Acme Ltd \r\n";
    const char *s = nx_name_check(in, strlen(in), &n);
    assert_int_equal(n, 8);
    assert_memory_equal(s, "Acme Ltd", 8);
    s = nx_name_check("Acme", 4, &n);
    assert_int_equal(n, 4);
    assert_null(nx_name_check(" \t\r\n ", 5, &n));        /* all blank */
    assert_null(nx_name_check("", 0, &n));                   /* empty */
    assert_null(nx_name_check("a\xff", 2, &n));             /* not UTF-8 */
    assert_null(nx_name_check("a\0b", 3, &n));              /* a NUL inside */
    char big[2 * NX_NAME_MAX + 3];
    for (int i = 0; i < NX_NAME_MAX; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);                  /* 255 x "é": 510 bytes */
    assert_non_null(nx_name_check(big, 2 * NX_NAME_MAX, &n)); /* characters, not bytes */
    memcpy(big + 2 * NX_NAME_MAX, "x", 1);
    assert_null(nx_name_check(big, 2 * NX_NAME_MAX + 1, &n)); /* 256 characters */
}

/* Every cut of every prefix of a mixed-width text lands on a boundary. */
static void test_utf8_cut(void **state)
{
    (void)state;
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"; /* a é € 😀 z */
    size_t n = strlen(s);
    for (size_t max = 0; max <= n + 2; max++) {
        size_t cut = nx_utf8_cut(s, n, max);
        assert_true(cut <= max && cut <= n);
        assert_true(nx_utf8_valid(s, cut));
        /* the longest such cut: one more character would pass max */
        size_t next = cut < n ? cut + 1 : n;
        while (next < n && ((unsigned char)s[next] & 0xc0) == 0x80)
            next++;
        assert_true(cut == n || next > max);
    }
    char out[5];
    assert_int_equal(nx_utf8_copy(out, sizeof(out), s), 3); /* "a" + "é", not half of "€" */
    assert_string_equal(out, "a\xc3\xa9");
    assert_int_equal(nx_utf8_copy(out, 1, s), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_and_cleanup_order),
        cmocka_unit_test(test_alloc_failure_is_null),
        cmocka_unit_test(test_buf_ceiling),
        cmocka_unit_test(test_err_first_wins),
        cmocka_unit_test(test_utf8_and_uuid),
        cmocka_unit_test(test_name_rule),
        cmocka_unit_test(test_utf8_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
