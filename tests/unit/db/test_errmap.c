/*
 * test_errmap.c - SQLSTATE to NX_E* mapping (db/errmap.c).
 */
#include "core/nx.h"
#include "core/err.h"
#include "db/db.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void test_integrity_is_conflict(void **state)
{
    (void)state;
    assert_int_equal(nx_db_errmap("23505"), NX_ECONFLICT); /* unique */
    assert_int_equal(nx_db_errmap("23503"), NX_ECONFLICT); /* foreign key */
    assert_int_equal(nx_db_errmap("23514"), NX_ECONFLICT); /* check (balance >= 0) */
    assert_int_equal(nx_db_errmap("23P01"), NX_ECONFLICT); /* exclusion */
    assert_int_equal(nx_err_status(nx_db_errmap("23505")), 409);
}

static void test_concurrency_is_retry(void **state)
{
    (void)state;
    assert_int_equal(nx_db_errmap("40001"), NX_ERETRY);
    assert_int_equal(nx_db_errmap("40P01"), NX_ERETRY);
    assert_int_equal(nx_err_status(NX_ERETRY), 503);
}

static void test_connection_is_unavailable(void **state)
{
    (void)state;
    assert_int_equal(nx_db_errmap("08000"), NX_EUNAVAILABLE);
    assert_int_equal(nx_db_errmap("08006"), NX_EUNAVAILABLE);
    assert_int_equal(nx_db_errmap("08P01"), NX_EUNAVAILABLE);
    assert_int_equal(nx_db_errmap("57P01"), NX_EUNAVAILABLE);
    assert_int_equal(nx_db_errmap("57P02"), NX_EUNAVAILABLE);
    assert_int_equal(nx_db_errmap("57P03"), NX_EUNAVAILABLE);
    assert_int_equal(nx_db_errmap("53300"), NX_EUNAVAILABLE);
    /* other class 57 codes are not: a cancelled query is our bug */
    assert_int_equal(nx_db_errmap("57014"), NX_EINTERNAL);
}

static void test_tenant_check_codes(void **state)
{
    (void)state;
    assert_int_equal(nx_db_errmap("28000"), NX_EUNAUTHORIZED); /* user removed */
    assert_int_equal(nx_db_errmap("42501"), NX_EFORBIDDEN);    /* not admin */
    assert_int_equal(nx_err_status(nx_db_errmap("28000")), 401);
    assert_int_equal(nx_err_status(nx_db_errmap("42501")), 403);
}

static void test_bad_input_is_inval(void **state)
{
    (void)state;
    assert_int_equal(nx_db_errmap("22P02"), NX_EINVAL);
    assert_int_equal(nx_db_errmap("22001"), NX_EINVAL);
    assert_int_equal(nx_db_errmap("22003"), NX_EINVAL);
}

static void test_everything_else_is_internal(void **state)
{
    (void)state;
    assert_int_equal(nx_db_errmap("42P01"), NX_EINTERNAL); /* undefined table */
    assert_int_equal(nx_db_errmap("42601"), NX_EINTERNAL); /* syntax error */
    assert_int_equal(nx_db_errmap("P0001"), NX_EINTERNAL); /* plain RAISE */
    assert_int_equal(nx_db_errmap("XX000"), NX_EINTERNAL);
    assert_int_equal(nx_db_errmap("23"), NX_EINTERNAL);     /* not five chars */
    assert_int_equal(nx_db_errmap("235050"), NX_EINTERNAL);
    assert_int_equal(nx_db_errmap(""), NX_EINTERNAL);
    assert_int_equal(nx_db_errmap(NULL), NX_EINTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integrity_is_conflict),
        cmocka_unit_test(test_concurrency_is_retry),
        cmocka_unit_test(test_connection_is_unavailable),
        cmocka_unit_test(test_tenant_check_codes),
        cmocka_unit_test(test_bad_input_is_inval),
        cmocka_unit_test(test_everything_else_is_internal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
