/*
 * test_tx.c - the tenant transaction pipeline against a real PostgreSQL.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 * (Two statements below deliberately omit it, to prove row-level security.)
 *
 * Needs NEXUS_TEST_DATABASE_URL: the owner DSN of a database migrated to
 * head. Without it every test is skipped; tests/e2e/test_tenancy.py runs this
 * binary against the harness's database.
 */
#include "core/nx.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ORG1 "a1111111-1111-4111-8111-111111111111"
#define ORG2 "a2222222-2222-4222-8222-222222222222"
#define ADMIN1 "b1111111-1111-4111-8111-111111111111"
#define MEMBER1 "b1111111-1111-4111-8111-222222222222"
#define USER2 "b2222222-2222-4222-8222-222222222222"

static const char *url;
static nx_arena_t *arena;
static nx_db_t *app; /* owner login, SET ROLE nexus_app */

static const nx_stmt_t users_of_org = {
    "test_users_of_org",
    "SELECT email, organisation_id FROM users WHERE organisation_id = $1 ORDER BY email", 1};
/* Deliberately no organisation_id filter: RLS alone must restrict it. */
static const nx_stmt_t all_users = {
    "test_all_users", "SELECT organisation_id FROM users", 0};
static const nx_stmt_t count_all = {
    "test_count_all", "SELECT count(*) FROM users", 0};
/* jobs: a table nexus_app inserts into (it creates no users). */
static const nx_stmt_t add_job = {
    "test_add_job",
    "INSERT INTO jobs (organisation_id, id, job_type, credits_charged, input_data) "
    "VALUES ($1, $2::uuid, 'summarise', 0, '{}') RETURNING id", 2};
static const nx_stmt_t jobs_of_org = {
    "test_jobs_of_org", "SELECT id FROM jobs WHERE organisation_id = $1 ORDER BY id", 1};
static const nx_stmt_t tenant_setting = {
    "test_tenant_setting", "SELECT current_setting('nexus.org_id', true)", 0};
static const nx_stmt_t org_row = {
    "test_org_row",
    "SELECT nx_org_json(o) FROM organisations o WHERE o.id = $1", 1};

static int setup(void **state)
{
    (void)state;
    url = getenv("NEXUS_TEST_DATABASE_URL");
    if (!url || !url[0])
        return 0;
    nx_err_t err = {0};
    nx_db_t *owner;
    assert_int_equal(nx_db_connect(&owner, url, NULL, &err), NX_OK);
    arena = nx_arena_new(4096);
    assert_int_equal(
        nx_db_exec_sql(owner, arena,
                       "INSERT INTO organisations (id, name, domain) VALUES "
                       "('" ORG1 "', 'One', 'one.test'), ('" ORG2 "', 'Two', 'two.test') "
                       "ON CONFLICT DO NOTHING;"
                       "INSERT INTO users (id, organisation_id, email, role) VALUES "
                       "('" ADMIN1 "', '" ORG1 "', 'admin@one.test', 'admin'),"
                       "('" MEMBER1 "', '" ORG1 "', 'member@one.test', 'member'),"
                       "('" USER2 "', '" ORG2 "', 'user@two.test', 'admin') "
                       "ON CONFLICT DO NOTHING",
                       NULL, &err),
        NX_OK);
    nx_db_free(owner);
    assert_int_equal(nx_db_connect(&app, url, "nexus_app", &err), NX_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nx_db_free(app);
    if (arena)
        nx_arena_free(arena);
    nx_db_thread_close();
    return 0;
}

#define NEED_DB()                                                              \
    do {                                                                       \
        if (!url || !url[0])                                                   \
            skip();                                                            \
        nx_arena_reset(arena);                                                 \
    } while (0)

static void test_tenant_sees_only_its_rows(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    nx_tx_t *tx = nx_tx_new(app, arena, ORG1, NULL, NX_TX_NONE);
    const char *p[] = {ORG2};
    int filtered = nx_tx_add(tx, &users_of_org, p); /* asks for org 2 explicitly */
    int unfiltered = nx_tx_add(tx, &all_users, NULL);
    assert_int_equal(nx_tx_run(tx, &err), NX_OK);
    assert_int_equal(nx_res_rows(nx_tx_res(tx, filtered)), 0);
    nx_res_t *r = nx_tx_res(tx, unfiltered);
    assert_true(nx_res_rows(r) >= 2);
    for (int i = 0; i < nx_res_rows(r); i++)
        assert_string_equal(nx_res_get(r, i, 0), ORG1);
    assert_null(nx_tx_role(tx));
}

static void test_no_tenant_sees_nothing(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    nx_res_t *r;
    assert_int_equal(nx_db_exec(app, arena, &count_all, NULL, &r, &err), NX_OK);
    assert_string_equal(nx_res_get(r, 0, 0), "0");
    /* the setting was transaction-local: nothing left from earlier tenants */
    assert_int_equal(nx_db_exec(app, arena, &tenant_setting, NULL, &r, &err), NX_OK);
    assert_string_equal(nx_res_get(r, 0, 0), "");
}

static void test_user_checks(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    nx_tx_t *tx = nx_tx_new(app, arena, ORG1, ADMIN1, NX_TX_ADMIN);
    const char *p[] = {ORG1};
    int i = nx_tx_add(tx, &org_row, p);
    assert_int_equal(nx_tx_run(tx, &err), NX_OK);
    assert_string_equal(nx_tx_role(tx), "admin");
    assert_non_null(strstr(nx_res_get(nx_tx_res(tx, i), 0, 0), "\"domain\" : \"one.test\""));

    tx = nx_tx_new(app, arena, ORG1, MEMBER1, NX_TX_ADMIN);
    nx_tx_add(tx, &org_row, p);
    assert_int_equal(nx_tx_run(tx, &err), NX_EFORBIDDEN);
    assert_int_equal(nx_err_status(err.code), 403);
    assert_null(strstr(err.detail, "SQLSTATE")); /* libpq text stays in the log */
    assert_non_null(strstr(err.log_detail, "42501"));
    assert_int_equal(nx_tx_failed(tx), -1);

    nx_err_clear(&err);
    tx = nx_tx_new(app, arena, ORG1, MEMBER1, NX_TX_MEMBER);
    assert_int_equal(nx_tx_run(tx, &err), NX_OK);
    assert_string_equal(nx_tx_role(tx), "member");

    /* a user of organisation 2 presenting organisation 1: 401, nothing runs */
    tx = nx_tx_new(app, arena, ORG1, USER2, NX_TX_MEMBER);
    char sneaky[NX_UUID_LEN + 1];
    nx_uuid_v4(sneaky);
    const char *ins[] = {ORG1, sneaky};
    nx_tx_add(tx, &add_job, ins);
    assert_int_equal(nx_tx_run(tx, &err), NX_EUNAUTHORIZED);
    assert_true(nx_db_ok(app));
    nx_err_clear(&err);
    tx = nx_tx_new(app, arena, ORG1, NULL, NX_TX_NONE);
    const char *q[] = {ORG1};
    int k = nx_tx_add(tx, &jobs_of_org, q);
    assert_int_equal(nx_tx_run(tx, &err), NX_OK);
    for (int row = 0; row < nx_res_rows(nx_tx_res(tx, k)); row++)
        assert_string_not_equal(nx_res_get(nx_tx_res(tx, k), row, 0), sneaky);
}

static void test_failure_rolls_back_whole_pipeline(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    nx_tx_t *tx = nx_tx_new(app, arena, ORG1, ADMIN1, NX_TX_MEMBER);
    char id[NX_UUID_LEN + 1];
    nx_uuid_v4(id);
    const char *a[] = {ORG1, id};
    nx_tx_add(tx, &add_job, a);
    int bad = nx_tx_add(tx, &add_job, a); /* the same key again */
    nx_tx_add(tx, &count_all, NULL);
    assert_int_equal(nx_tx_run(tx, &err), NX_ECONFLICT);
    assert_int_equal(nx_tx_failed(tx), bad);
    assert_string_equal(nx_db_constraint(app), "jobs_pkey");
    assert_null(strstr(err.detail, "jobs"));
    assert_true(nx_db_ok(app));

    /* the first insert was rolled back with the rest */
    nx_err_clear(&err);
    tx = nx_tx_new(app, arena, ORG1, NULL, NX_TX_NONE);
    const char *q[] = {ORG1};
    int k = nx_tx_add(tx, &jobs_of_org, q);
    int n = nx_tx_add(tx, &add_job, a); /* and statements see each other */
    int c = nx_tx_add(tx, &jobs_of_org, q);
    assert_int_equal(nx_tx_run(tx, &err), NX_OK);
    for (int row = 0; row < nx_res_rows(nx_tx_res(tx, k)); row++)
        assert_string_not_equal(nx_res_get(nx_tx_res(tx, k), row, 0), id);
    assert_int_equal(nx_res_affected(nx_tx_res(tx, n)), 1);
    assert_int_equal(nx_res_rows(nx_tx_res(tx, c)), nx_res_rows(nx_tx_res(tx, k)) + 1);
}

static void test_rls_refuses_other_org_insert(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    nx_tx_t *tx = nx_tx_new(app, arena, ORG1, NULL, NX_TX_NONE);
    char id[NX_UUID_LEN + 1];
    nx_uuid_v4(id);
    const char *p[] = {ORG2, id};
    nx_tx_add(tx, &add_job, p);
    assert_int_equal(nx_tx_run(tx, &err), NX_EFORBIDDEN); /* WITH CHECK */
    assert_int_equal(nx_tx_failed(tx), 0);
    assert_true(nx_db_ok(app));
}

static const nx_stmt_t fresh = {"test_fresh_stmt", "SELECT $1::int + 1", 1};

static void test_skipped_prepare_is_redone(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    const char *p[] = {"41"};
    /* the user check fails first, so the Parse of fresh is skipped */
    nx_tx_t *tx = nx_tx_new(app, arena, ORG2, MEMBER1, NX_TX_MEMBER);
    nx_tx_add(tx, &fresh, p);
    assert_int_equal(nx_tx_run(tx, &err), NX_EUNAUTHORIZED);
    nx_err_clear(&err);
    nx_res_t *r;
    assert_int_equal(nx_db_exec(app, arena, &fresh, p, &r, &err), NX_OK);
    assert_string_equal(nx_res_get(r, 0, 0), "42");
    assert_int_equal(nx_db_exec(app, arena, &fresh, p, &r, &err), NX_OK);
    /* a bad value is a 400, not a 500, and the connection survives */
    const char *bad[] = {"not-a-uuid"};
    assert_int_equal(nx_db_exec(app, arena, &users_of_org, bad, &r, &err), NX_EINVAL);
    assert_true(nx_db_ok(app));
}

/* Behind a transaction pooler (DATABASE_POOL_MODE=transaction) nothing may
 * stay in the server session: an unnamed connection's tenant transactions
 * leave no prepared statement, and still see only their tenant's rows. */
static void test_unnamed_statements_leave_nothing(void **state)
{
    (void)state;
    NEED_DB();
    static const nx_stmt_t prepared = {
        "test_prepared_count", "SELECT count(*) FROM pg_prepared_statements", 0};
    nx_err_t err = {0};
    nx_db_t *db;
    assert_int_equal(nx_db_connect(&db, url, "nexus_app", &err), NX_OK);
    nx_db_set_unnamed(db);
    for (int round = 0; round < 2; round++) {
        nx_tx_t *tx = nx_tx_new(db, arena, ORG1, ADMIN1, NX_TX_ADMIN);
        const char *p[] = {ORG1};
        int mine = nx_tx_add(tx, &users_of_org, p);
        int all = nx_tx_add(tx, &all_users, NULL);
        int count = nx_tx_add(tx, &prepared, NULL);
        assert_int_equal(nx_tx_run(tx, &err), NX_OK);
        assert_string_equal(nx_tx_role(tx), "admin");
        assert_int_equal(nx_res_rows(nx_tx_res(tx, mine)), nx_res_rows(nx_tx_res(tx, all)));
        assert_string_equal(nx_res_get(nx_tx_res(tx, count), 0, 0), "0");
    }
    nx_db_free(db);
    /* the default connection prepares them, which is what the check sees */
    nx_res_t *r;
    assert_int_equal(nx_db_exec(app, arena, &prepared, NULL, &r, &err), NX_OK);
    assert_int_not_equal(strcmp(nx_res_get(r, 0, 0), "0"), 0);
}

static void test_lost_connection_reopens(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    nx_db_set_runtime(url, "nexus_app", false);
    nx_db_t *t = nx_db_thread(&err);
    assert_non_null(t);
    assert_ptr_equal(nx_db_thread(&err), t);
    nx_res_t *r;
    static const nx_stmt_t pid = {"test_pid", "SELECT pg_backend_pid()", 0};
    assert_int_equal(nx_db_exec(t, arena, &pid, NULL, &r, &err), NX_OK);
    char *sql = nx_arena_sprintf(arena, "SELECT pg_terminate_backend(%s)", nx_res_get(r, 0, 0));
    nx_db_t *owner;
    assert_int_equal(nx_db_connect(&owner, url, NULL, &err), NX_OK);
    assert_int_equal(nx_db_exec_sql(owner, arena, sql, NULL, &err), NX_OK);
    nx_db_free(owner);

    nx_tx_t *tx = nx_tx_new(t, arena, ORG1, NULL, NX_TX_NONE);
    nx_tx_add(tx, &count_all, NULL);
    for (int i = 0; i < 50 && err.code == 0; i++) /* termination is asynchronous */
        nx_tx_run(tx, &err);
    assert_int_equal(err.code, NX_EUNAVAILABLE);
    assert_false(nx_db_ok(t));
    nx_err_clear(&err);
    nx_db_t *again = nx_db_thread(&err);
    assert_non_null(again);
    assert_true(nx_db_ok(again));
    tx = nx_tx_new(again, arena, ORG1, ADMIN1, NX_TX_ADMIN);
    assert_int_equal(nx_tx_run(tx, &err), NX_OK);
    assert_string_equal(nx_tx_role(tx), "admin");
}

static void test_bad_conninfo_is_unavailable(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    nx_db_t *db = (nx_db_t *)1;
    assert_int_equal(nx_db_connect(&db, "postgresql://nobody@127.0.0.1:1/none", NULL, &err),
                     NX_EUNAVAILABLE);
    assert_null(db);
    assert_null(strstr(err.detail, "127.0.0.1"));
    assert_non_null(strstr(err.log_detail, "could not connect"));
    nx_err_clear(&err);
    assert_int_equal(nx_db_connect(&db, url, "no_such_role_here", &err), NX_EUNAVAILABLE);
    assert_null(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_sees_only_its_rows),
        cmocka_unit_test(test_no_tenant_sees_nothing),
        cmocka_unit_test(test_user_checks),
        cmocka_unit_test(test_failure_rolls_back_whole_pipeline),
        cmocka_unit_test(test_rls_refuses_other_org_insert),
        cmocka_unit_test(test_skipped_prepare_is_redone),
        cmocka_unit_test(test_unnamed_statements_leave_nothing),
        cmocka_unit_test(test_lost_connection_reopens),
        cmocka_unit_test(test_bad_conninfo_is_unavailable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
