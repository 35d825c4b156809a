/*
 * test_queue.c - the guards on a job's finish, against a real PostgreSQL.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * Two workers, "A" and "B", drive src/jobs/queue.c through the interleavings
 * its guards exist for: a late or duplicate finish changes nothing, and a
 * job is refunded at most once. Leases are expired by moving
 * lease_expires_at into the past as the owner, never by sleeping.
 *
 * Needs NEXUS_TEST_DATABASE_URL: the owner DSN of a database migrated to
 * head, used by nothing else while this runs (claims take the oldest due
 * job of any organisation). Without it every test is skipped;
 * tests/e2e/test_jobs_queue.py runs this binary against the harness's
 * database.
 */
#include "core/nx.h"
#include "jobs/jobs.h"
#include "jobs/jobs_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "db/db.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ORG "c1111111-1111-4111-8111-111111111111"
#define WORKER_A "host-a:101:aaaaaaaa"
#define WORKER_B "host-b:202:bbbbbbbb"
#define LEASE 60 /* long: a lease ends only when a test expires it */

static const char *url;
static nx_arena_t *arena;
static nx_db_t *owner; /* the migration owner: sets the scene, reads rows */
static nx_db_t *app;   /* nexus_app: submits jobs as the API does */
static nx_db_t *wa;    /* nexus_worker connections of workers A and B */
static nx_db_t *wb;

static void sql(const char *text)
{
    nx_err_t err = {0};
    if (nx_db_exec_sql(owner, arena, text, NULL, &err) != NX_OK)
        fail_msg("%s: %s", text, err.log_detail);
}

static const char *sql_value(const char *text)
{
    nx_err_t err = {0};
    nx_res_t *r;
    if (nx_db_exec_sql(owner, arena, text, &r, &err) != NX_OK)
        fail_msg("%s: %s", text, err.log_detail);
    assert_int_equal(nx_res_rows(r), 1);
    return nx_res_get(r, 0, 0);
}

static int setup(void **state)
{
    (void)state;
    url = getenv("NEXUS_TEST_DATABASE_URL");
    if (!url || !url[0])
        return 0;
    nx_err_t err = {0};
    arena = nx_arena_new(16 * 1024);
    assert_int_equal(nx_db_connect(&owner, url, NULL, &err), NX_OK);
    sql("INSERT INTO organisations (id, name, domain) VALUES ('" ORG "', 'Queue', 'queue.test')"
        " ON CONFLICT DO NOTHING;"
        "INSERT INTO org_credits (organisation_id, balance) VALUES ('" ORG "', 1000)"
        " ON CONFLICT DO NOTHING");
    assert_int_equal(nx_db_connect(&app, url, "nexus_app", &err), NX_OK);
    assert_int_equal(nx_db_connect(&wa, url, "nexus_worker", &err), NX_OK);
    assert_int_equal(nx_db_connect(&wb, url, "nexus_worker", &err), NX_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nx_db_free(wb);
    nx_db_free(wa);
    nx_db_free(app);
    nx_db_free(owner);
    if (arena)
        nx_arena_free(arena);
    return 0;
}

/* Every test starts with no job left over, so a claim takes its own. */
#define NEED_DB()                                                              \
    do {                                                                       \
        if (!url || !url[0])                                                   \
            skip();                                                            \
        nx_arena_reset(arena);                                                 \
        sql("DELETE FROM jobs WHERE organisation_id = '" ORG "'");             \
    } while (0)

/* Submits a job as the API does (debit, job, DEDUCTION) and gives it
 * max_attempts; returns its id. */
static const char *submit(int max_attempts)
{
    nx_err_t err = {0};
    nx_tx_t *tx = nx_tx_new(app, arena, ORG, NULL, NX_TX_NONE);
    nx_job_submit_t job = {.type = nx_job_type_find("summarise"),
                           .text = "Guards keep the money right."};
    int idx = nx_jobs_create_add(tx, ORG, &job, 1);
    assert_true(idx >= 0);
    assert_int_equal(nx_tx_run(tx, &err), NX_OK);
    const char *id, *body;
    bool webhooks;
    assert_int_equal(nx_jobs_create_result(tx, idx, &id, &body, &webhooks, &err), NX_OK);
    sql(nx_arena_sprintf(arena, "UPDATE jobs SET max_attempts = %d WHERE organisation_id = '" ORG
                                "' AND id = '%s'", max_attempts, id));
    return nx_arena_strdup(arena, id);
}

static int balance(void)
{
    const char *v = sql_value("SELECT balance FROM org_credits WHERE organisation_id = '" ORG "'");
    return (int)strtol(v, NULL, 10);
}

/* The job as "status attempt_count lease_owner output.by refunds". */
static const char *row(const char *job)
{
    return sql_value(nx_arena_sprintf(
        arena,
        "SELECT concat_ws(' ', status, attempt_count, coalesce(lease_owner, '-'),"
        " coalesce(output->>'by', '-'), (SELECT count(*) FROM credit_transactions t"
        " WHERE t.organisation_id = j.organisation_id AND t.job_id = j.id AND t.type = 'REFUND'))"
        " FROM jobs j WHERE j.organisation_id = '" ORG "' AND j.id = '%s'",
        job));
}

static void expire(const char *job)
{
    sql(nx_arena_sprintf(arena, "UPDATE jobs SET lease_expires_at = now() - interval '1 second'"
                                " WHERE organisation_id = '" ORG "' AND id = '%s'", job));
}

/* worker claims exactly one job, which must be `job`, at `attempt`. */
static nx_attempt_t *claim(nx_db_t *w, const char *worker, const char *job, int attempt)
{
    nx_err_t err = {0};
    nx_attempt_t *list = NULL;
    int n = 0;
    nx_claim_t c = {worker, LEASE, 5, 0, "local", "m"};
    assert_int_equal(nx_queue_claim(w, arena, &c, &list, &n, &err), NX_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list->job_id, job);
    assert_int_equal(list->attempt, attempt);
    return list;
}

/* The jobs whose last attempt's lease expired, as the reaper sees them. */
static nx_attempt_t *reap_list(nx_db_t *w, const char *job)
{
    nx_err_t err = {0};
    nx_attempt_t *list = NULL;
    int n = 0;
    assert_int_equal(nx_queue_expired_final(w, arena, 10, &list, &n, &err), NX_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list->job_id, job);
    assert_true(list->reap);
    return list;
}

/* Reports a success with output {"by": by}; returns the status written
 * ("completed"), or NULL when the report was stale. */
static const char *report_success(nx_db_t *w, const char *worker, nx_attempt_t *a, const char *by)
{
    nx_err_t err = {0};
    a->rc = NX_OK;
    a->error = NULL;
    a->output = nx_arena_sprintf(a->arena, "{\"by\": \"%s\"}", by);
    assert_int_equal(nx_queue_complete(w, arena, worker, &a, 1, &err), NX_OK);
    return a->status;
}

/* Reports a failure (retry delay 0); returns "pending", "failed" or NULL. */
static const char *report_failure(nx_db_t *w, const char *worker, nx_attempt_t *a, const char *why)
{
    nx_err_t err = {0};
    if (!a->reap) {
        a->rc = NX_EUNAVAILABLE;
        a->error = why;
    }
    assert_int_equal(nx_queue_fail(w, arena, worker, 0, &a, 1, &err), NX_OK);
    return a->status;
}

static void free_all(nx_attempt_t *a, nx_attempt_t *b, nx_attempt_t *c)
{
    nx_attempt_free(a);
    nx_attempt_free(b);
    nx_attempt_free(c);
}

/* A's lease ran out and B claimed the job: A's success, reported late,
 * changes nothing; B's is the one recorded. (Attempt and owner guards.) */
static void test_expired_owner_success_after_reclaim(void **state)
{
    (void)state;
    NEED_DB();
    const char *job = submit(3);
    int before = balance();
    nx_attempt_t *a1 = claim(wa, WORKER_A, job, 1);
    expire(job);
    nx_attempt_t *b2 = claim(wb, WORKER_B, job, 2);
    assert_null(report_success(wa, WORKER_A, a1, "A"));
    assert_string_equal(row(job), "running 2 " WORKER_B " - 0");
    assert_string_equal(report_success(wb, WORKER_B, b2, "B"), "completed");
    assert_string_equal(row(job), "completed 2 - B 0");
    assert_null(report_success(wa, WORKER_A, a1, "A"));
    assert_string_equal(row(job), "completed 2 - B 0");
    assert_int_equal(balance(), before);
    free_all(a1, b2, NULL);
}

/* B completed the job on its last attempt; A's failure of the expired
 * first attempt arrives afterwards: no failure, no refund. B's own
 * failure report for the attempt it completed changes nothing either.
 * (Attempt and owner guards; the status guard, through jobs_lease_check.) */
static void test_late_failure_after_completion_refunds_nothing(void **state)
{
    (void)state;
    NEED_DB();
    const char *job = submit(2); /* attempt 2 is the last: a failure would refund */
    int before = balance();
    nx_attempt_t *a1 = claim(wa, WORKER_A, job, 1);
    expire(job);
    nx_attempt_t *b2 = claim(wb, WORKER_B, job, 2);
    assert_string_equal(report_success(wb, WORKER_B, b2, "B"), "completed");
    assert_null(report_failure(wa, WORKER_A, a1, "late failure"));
    assert_null(report_failure(wb, WORKER_B, b2, "duplicate report"));
    assert_string_equal(row(job), "completed 2 - B 0");
    assert_string_equal(sql_value(nx_arena_sprintf(arena,
                            "SELECT coalesce(error_message, '-') FROM jobs WHERE organisation_id"
                            " = '" ORG "' AND id = '%s'", job)), "-");
    assert_int_equal(balance(), before);
    free_all(a1, b2, NULL);
}

/* The same failure reported twice: a retry is scheduled once, and a final
 * failure is refunded once (the second report is stale, not an error). */
static void test_same_failure_twice_refunds_once(void **state)
{
    (void)state;
    NEED_DB();
    const char *last = submit(1);
    int charged = balance();
    nx_attempt_t *a1 = claim(wa, WORKER_A, last, 1);
    assert_string_equal(report_failure(wa, WORKER_A, a1, "boom"), "failed");
    assert_int_equal(balance(), charged + 10);
    assert_null(report_failure(wa, WORKER_A, a1, "boom"));
    assert_string_equal(row(last), "failed 1 - - 1");
    assert_int_equal(balance(), charged + 10);

    const char *retry = submit(3);
    nx_attempt_t *r1 = claim(wa, WORKER_A, retry, 1);
    assert_string_equal(report_failure(wa, WORKER_A, r1, "boom"), "pending");
    assert_null(report_failure(wa, WORKER_A, r1, "boom"));
    assert_string_equal(row(retry), "pending 1 - - 0");
    assert_int_equal(balance(), charged);
    free_all(r1, a1, NULL);
}

/* A's last attempt outlived its lease and B's reaper picked the job up;
 * whichever failure lands first wins, the other is stale, one refund. */
static void test_reaper_races_the_final_failure(void **state)
{
    (void)state;
    NEED_DB();
    /* the owner's failure lands first */
    const char *job = submit(1);
    int charged = balance();
    nx_attempt_t *a1 = claim(wa, WORKER_A, job, 1);
    expire(job);
    nx_attempt_t *reap = reap_list(wb, job);
    assert_string_equal(report_failure(wa, WORKER_A, a1, "boom"), "failed");
    assert_null(report_failure(wb, WORKER_B, reap, NULL));
    assert_string_equal(row(job), "failed 1 - - 1");
    assert_int_equal(balance(), charged + 10);
    free_all(a1, reap, NULL);

    /* the reaper lands first: the owner's failure and success are stale */
    job = submit(1);
    charged = balance();
    a1 = claim(wa, WORKER_A, job, 1);
    expire(job);
    reap = reap_list(wb, job);
    assert_string_equal(report_failure(wb, WORKER_B, reap, NULL), "failed");
    assert_null(report_failure(wa, WORKER_A, a1, "boom"));
    assert_null(report_success(wa, WORKER_A, a1, "A"));
    assert_string_equal(row(job), "failed 1 - - 1");
    assert_int_equal(balance(), charged + 10);
    free_all(a1, reap, NULL);
}

/* The reaper saw an expired last attempt, but its owner renewed the lease
 * before the reap landed: the job is not failed under a live attempt, and
 * the owner's success is recorded. (The reap condition's lease check.) */
static void test_reaper_spares_a_renewed_lease(void **state)
{
    (void)state;
    NEED_DB();
    const char *job = submit(1);
    int charged = balance();
    nx_attempt_t *a1 = claim(wa, WORKER_A, job, 1);
    expire(job);
    nx_attempt_t *reap = reap_list(wb, job);
    nx_err_t err = {0};
    int lost = -1;
    assert_int_equal(nx_queue_renew(wa, arena, WORKER_A, LEASE, &a1, 1, &lost, &err), NX_OK);
    assert_int_equal(lost, 0);
    assert_null(report_failure(wb, WORKER_B, reap, NULL));
    assert_string_equal(row(job), "running 1 " WORKER_A " - 0");
    assert_string_equal(report_success(wa, WORKER_A, a1, "A"), "completed");
    assert_string_equal(row(job), "completed 1 - A 0");
    assert_int_equal(balance(), charged);
    free_all(a1, reap, NULL);
}

/* A failed attempt 1 and claimed the retry as attempt 2; a duplicate
 * report of attempt 1 then arrives: it neither fails nor completes the
 * attempt that is running. (The attempt guard alone.) */
static void test_stale_attempt_of_the_same_worker(void **state)
{
    (void)state;
    NEED_DB();
    const char *job = submit(2);
    int charged = balance();
    nx_attempt_t *a1 = claim(wa, WORKER_A, job, 1);
    assert_string_equal(report_failure(wa, WORKER_A, a1, "first"), "pending");
    nx_attempt_t *a2 = claim(wa, WORKER_A, job, 2);
    assert_null(report_failure(wa, WORKER_A, a1, "first"));
    assert_null(report_success(wa, WORKER_A, a1, "A1"));
    assert_string_equal(row(job), "running 2 " WORKER_A " - 0");
    assert_string_equal(report_success(wa, WORKER_A, a2, "A2"), "completed");
    assert_string_equal(row(job), "completed 2 - A2 0");
    assert_int_equal(balance(), charged);
    free_all(a1, a2, NULL);
}

/* A released its attempt (stopping past the drain timeout) and B claimed
 * the job, at the same attempt number: A's late finish is not B's. (The
 * owner guard alone.) */
static void test_released_attempt_claimed_by_another(void **state)
{
    (void)state;
    NEED_DB();
    const char *job = submit(1);
    int charged = balance();
    nx_attempt_t *a1 = claim(wa, WORKER_A, job, 1);
    nx_err_t err = {0};
    assert_int_equal(nx_queue_release(wa, arena, WORKER_A, &a1, 1, &err), NX_OK);
    assert_string_equal(row(job), "pending 0 - - 0");
    nx_attempt_t *b1 = claim(wb, WORKER_B, job, 1);
    assert_null(report_success(wa, WORKER_A, a1, "A"));
    assert_null(report_failure(wa, WORKER_A, a1, "late failure"));
    assert_string_equal(row(job), "running 1 " WORKER_B " - 0");
    assert_string_equal(report_success(wb, WORKER_B, b1, "B"), "completed");
    assert_string_equal(row(job), "completed 1 - B 0");
    assert_int_equal(balance(), charged);
    free_all(a1, b1, NULL);
}

/* worker claims the two jobs a and b; out[0] is a's attempt, out[1] b's. */
static void claim_two(nx_db_t *w, const char *worker, const char *a, const char *b,
                      nx_attempt_t *out[2])
{
    nx_err_t err = {0};
    nx_attempt_t *list = NULL;
    int n = 0;
    nx_claim_t c = {worker, LEASE, 5, 0, "local", "m"};
    assert_int_equal(nx_queue_claim(w, arena, &c, &list, &n, &err), NX_OK);
    assert_int_equal(n, 2);
    bool first = strcmp(list->job_id, a) == 0;
    out[first ? 0 : 1] = list;
    out[first ? 1 : 0] = list->next;
    assert_string_equal(out[0]->job_id, a);
    assert_string_equal(out[1]->job_id, b);
}

static const char *error_message(const char *job)
{
    return sql_value(nx_arena_sprintf(arena, "SELECT coalesce(error_message, '-') FROM jobs"
                                             " WHERE organisation_id = '" ORG "' AND id = '%s'",
                                      job));
}

/* Issue 11, item 4: an error text that is not UTF-8 (a character cut in
 * two, a stray byte) is recorded with U+FFFD in place of the bad bytes, and
 * a row the database refuses never drops the other results of its batch. */
static void test_issue11_one_bad_row_never_drops_the_batch(void **state)
{
    (void)state;
    NEED_DB();
    nx_err_t err = {0};
    const char *p = submit(3), *q = submit(3);
    nx_attempt_t *v[2];
    claim_two(wa, WORKER_A, p, q, v);
    v[0]->rc = v[1]->rc = NX_EUNAVAILABLE;
    v[0]->error = "caf\xc3\xa9 cut: \xc3";
    v[1]->error = "stray \xff byte";
    assert_int_equal(nx_queue_fail(wa, arena, WORKER_A, 0, v, 2, &err), NX_OK);
    assert_string_equal(v[0]->status, "pending");
    assert_string_equal(v[1]->status, "pending");
    assert_string_equal(error_message(p), "caf\xc3\xa9 cut: \xef\xbf\xbd");
    assert_string_equal(error_message(q), "stray \xef\xbf\xbd byte");
    free_all(v[0], v[1], NULL);

    /* complete: an output the database refuses (not JSON) beside a good one */
    claim_two(wa, WORKER_A, p, q, v);
    v[0]->output = "{\"by\": \"A\"}";
    v[1]->output = "{\"by\": ";
    assert_int_equal(nx_queue_complete(wa, arena, WORKER_A, v, 2, &err), NX_OK);
    assert_string_equal(v[0]->status, "completed");
    assert_null(v[1]->status);
    assert_non_null(v[1]->refused);
    assert_null(v[0]->refused);
    assert_string_equal(row(p), "completed 2 - A 0");
    assert_string_equal(row(q), "running 2 " WORKER_A " - 0");

    /* fail: a row the database refuses (a malformed id) beside a good one;
     * the bad one, refused alone as well, is left to its lease */
    nx_attempt_t *bad = nx_attempt_new();
    assert_non_null(bad);
    snprintf(bad->org_id, sizeof(bad->org_id), "%s", ORG);
    snprintf(bad->job_id, sizeof(bad->job_id), "not-a-job-id");
    bad->attempt = 1;
    bad->error = "whatever";
    nx_attempt_t *w[2] = {bad, v[1]};
    v[1]->error = "output refused";
    assert_int_equal(nx_queue_fail(wa, arena, WORKER_A, 0, w, 2, &err), NX_OK);
    assert_string_equal(v[1]->status, "pending");
    assert_string_equal(error_message(q), "output refused");
    assert_null(bad->status);
    assert_non_null(bad->refused);
    assert_int_equal(err.code, 0);
    free_all(v[0], v[1], bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expired_owner_success_after_reclaim),
        cmocka_unit_test(test_late_failure_after_completion_refunds_nothing),
        cmocka_unit_test(test_same_failure_twice_refunds_once),
        cmocka_unit_test(test_reaper_races_the_final_failure),
        cmocka_unit_test(test_reaper_spares_a_renewed_lease),
        cmocka_unit_test(test_stale_attempt_of_the_same_worker),
        cmocka_unit_test(test_released_attempt_claimed_by_another),
        cmocka_unit_test(test_issue11_one_bad_row_never_drops_the_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
