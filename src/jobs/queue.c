/*
 * queue.c - the four ways a job row changes: create, claim, complete, fail
 * (plus the lease upkeep around them: renew, release, reap, prune).
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 * (create runs in the submitter's tenant transaction; claim, complete,
 * renew, release, reap and prune are the worker role's cross-tenant door on
 * `jobs` alone - every row they touch is named by (organisation_id, id);
 * fail touches credits and so runs as one tenant transaction per
 * organisation.)
 *
 * create is ONE statement: the debit's UPDATE ... RETURNING feeds the job
 * and DEDUCTION inserts, so a short balance inserts nothing and the credit
 * row is locked for one round trip (architecture.md, "Jobs").
 * Every finish is guarded by status = 'running', the attempt number and the
 * lease owner, so a late or duplicate finish changes nothing; the final
 * failure and its REFUND are one statement, and a unique index allows one
 * REFUND per job whatever happens.
 * The webhook outbox rides in the same statements (docs/internals/webhooks.md):
 * complete writes job.completed, the final failure job.failed, and a debit
 * that crosses CREDITS_LOW_THRESHOLD credits.low - event and deliveries -
 * only for an organisation with an enabled endpoint that listens, so an
 * event exists if and only if its change committed. Without such an
 * endpoint this costs one probe of webhook_endpoints' key per row.
 * Batches travel as one jsonb parameter read with jsonb_to_recordset. Text
 * going into it is made valid UTF-8 first, and a batch the database still
 * refuses for what a row holds (not a lost connection) is written again one
 * attempt at a time, so one bad row never drops the others' results.
 */
#include "core/nx.h"
#include "jobs/jobs.h"
#include "jobs/jobs_int.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_JSON_MAX (64 * 1024 * 1024)
/* stored instead of an error message the database refused */
#define SAFE_ERROR "the attempt failed; its error message could not be stored"

/* ---- create ---------------------------------------------------------------- */

/* $7 picks the API shape of the answer (1: v1's 202 body, 2: the v2 Job), so
 * a submission renders only the shape it sends. */
static const nx_stmt_t st_create = {
    "jobs_create",
    "WITH debit AS ("
    " UPDATE org_credits SET balance = balance - $2::int"
    " WHERE organisation_id = $1::uuid AND balance >= $2::int"
    " RETURNING organisation_id, balance"
    "), job AS ("
    " INSERT INTO jobs AS j (organisation_id, job_type, credits_charged, max_attempts,"
    " input_data, metadata, input_hash, traceparent)"
    " SELECT organisation_id, $3, $2::int, $4::int, jsonb_build_object('text', $5::text),"
    " $6::json, sha256(convert_to($5::text, 'UTF8')), $8 FROM debit"
    " RETURNING j.id, j.organisation_id, j.job_type, j.credits_charged,"
    " CASE WHEN $7::int = 2 THEN nx_job_v2_json(j)::text"
    " ELSE json_build_object('job_id', j.id, 'status', j.status, 'job_type', j.job_type,"
    " 'credits_charged', j.credits_charged)::text END AS body"
    "), deduction AS ("
    " INSERT INTO credit_transactions (organisation_id, amount, type, job_id, description)"
    " SELECT organisation_id, credits_charged, 'DEDUCTION', id, job_type || ' job'"
    " FROM job WHERE credits_charged > 0"
    /* the outbox: credits.low when this debit crossed the threshold and an
     * endpoint listens (one probe of the endpoints' key, only then) */
    "), low AS ("
    " INSERT INTO webhook_events AS w (organisation_id, id, type, body, traceparent)"
    " SELECT s.organisation_id, s.id, 'credits.low', nx_webhook_body(s.id, 'credits.low', now(),"
    " s.organisation_id, json_build_object('balance', s.balance)), $8"
    " FROM (SELECT d.organisation_id, d.balance, gen_random_uuid() AS id FROM debit d"
    " WHERE d.balance < $9::int AND d.balance + $2::int >= $9::int"
    " AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.organisation_id = d.organisation_id"
    " AND e.enabled AND 'credits.low' = ANY (e.events)) OFFSET 0) s"
    " RETURNING w.organisation_id, w.id"
    "), low_out AS ("
    " INSERT INTO webhook_deliveries (organisation_id, endpoint_id, event_id)"
    " SELECT low.organisation_id, e.id, low.id FROM low JOIN webhook_endpoints e"
    " ON e.organisation_id = low.organisation_id AND e.enabled AND 'credits.low' = ANY (e.events)"
    " RETURNING 1"
    /* the answer (202, application/json), stored with the request's
     * Idempotency-Key ($10, NULL: none) in the same statement: the key's
     * claim ran just before, in this transaction (src/api/idempotency.c) */
    "), answer AS ("
    " INSERT INTO idempotency_keys (organisation_id, key, request_hash, status, content_type,"
    " location, body)"
    " SELECT organisation_id, $10::text, $11::text, 202, NULL, $12::text || id, body"
    " FROM job WHERE $10::text IS NOT NULL"
    ")"
    " SELECT id, body, (SELECT count(*) FROM low_out) FROM job",
    12,
};

int nx_jobs_create_add(nx_tx_t *tx, const char *org_id, const nx_job_submit_t *job,
                       int version)
{
    char cost[16], attempts[16], ver[8], low[16];
    snprintf(cost, sizeof(cost), "%d", job->type->cost);
    snprintf(attempts, sizeof(attempts), "%d", nx_cfg ? nx_cfg->job_max_attempts : 3);
    snprintf(ver, sizeof(ver), "%d", version);
    snprintf(low, sizeof(low), "%d", nx_cfg ? nx_cfg->credits_low_threshold : 50);
    const nx_job_answer_key_t *k = job->answer_key;
    const char *p[] = {org_id,    cost,
                       job->type->name, attempts,
                       job->text, job->metadata ? job->metadata : "{}",
                       ver,       job->traceparent,
                       low,       k ? k->key : NULL,
                       k ? k->hash : NULL, k ? k->location : NULL};
    return nx_tx_add(tx, &st_create, p);
}

int nx_jobs_create_result(nx_tx_t *tx, int idx, const char **job_id, const char **body,
                          bool *webhooks, nx_err_t *err)
{
    nx_res_t *r = nx_tx_res(tx, idx);
    if (!r || nx_res_rows(r) != 1)
        return nx_err_set(err, NX_EPAYMENT,
                          "The organisation's credit balance is too low for this job.");
    *job_id = nx_res_get(r, 0, 0);
    *body = nx_res_get(r, 0, 1);
    *webhooks = strcmp(nx_res_get(r, 0, 2), "0") != 0;
    return NX_OK;
}

/* ---- claim ----------------------------------------------------------------- */

static const nx_stmt_t st_claim = {
    "jobs_claim",
    "WITH expired AS ("
    " SELECT organisation_id, id, ctid AS tid, lease_expires_at AS due FROM jobs"
    " WHERE status = 'running' AND lease_expires_at < now()"
    " AND attempt_count < max_attempts"
    " ORDER BY lease_expires_at LIMIT $3::int FOR UPDATE SKIP LOCKED"
    "), due AS ("
    " SELECT organisation_id, id, ctid AS tid, run_at AS due FROM jobs"
    " WHERE status = 'pending' AND run_at <= now()"
    " ORDER BY run_at LIMIT $3::int FOR UPDATE SKIP LOCKED"
    "), pick AS ("
    " SELECT organisation_id, id, tid FROM (SELECT * FROM expired UNION ALL SELECT * FROM due) c"
    " ORDER BY due LIMIT $3::int"
    ")"
    /* by the locked rows' ctid: a TID scan whatever the planner believes of
     * the table's size (a plan cached while the table was nearly empty
     * joined the key by scanning every job); the key is checked too (a
     * ctid names a row within one table or partition only); a row a
     * concurrent commit moved is skipped, not lost: it stays claimable */
    " UPDATE jobs j SET status = 'running', attempt_count = j.attempt_count + 1,"
    " lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::int),"
    " started_at = coalesce(j.started_at, now())"
    " FROM pick WHERE j.ctid = pick.tid AND j.organisation_id = pick.organisation_id"
    " AND j.id = pick.id"
    " RETURNING j.organisation_id, j.id, j.job_type, j.attempt_count, j.max_attempts,"
    " j.traceparent, j.input_data->>'text',"
    /* the AI-result cache: the same organisation's latest completed job of
     * the same type, text, provider and model, within the TTL ($4, 0: off) */
    " (SELECT (c.output || '{\"cached\": true}')::text FROM jobs c"
    " WHERE $4::int > 0 AND c.organisation_id = j.organisation_id"
    " AND c.job_type = j.job_type AND c.input_hash = j.input_hash AND c.status = 'completed'"
    " AND c.completed_at > now() - make_interval(secs => $4::int)"
    " AND c.output->>'provider' = $5 AND c.output->>'model' = $6"
    " AND c.input_data->>'text' = j.input_data->>'text'"
    " ORDER BY c.completed_at DESC LIMIT 1)",
    6,
};

/* Rows of (organisation_id, id, job_type, attempt_count, max_attempts,
 * traceparent[, text]). The attempt is a new span of the job's trace (of a
 * new trace when the job has none, or one that does not parse). */
static nx_attempt_t *attempt_from_row(nx_res_t *r, int row, int col_text)
{
    nx_attempt_t *a = nx_attempt_new();
    if (!a)
        return NULL;
    snprintf(a->org_id, sizeof(a->org_id), "%s", nx_res_get(r, row, 0));
    snprintf(a->job_id, sizeof(a->job_id), "%s", nx_res_get(r, row, 1));
    snprintf(a->job_type, sizeof(a->job_type), "%s", nx_res_get(r, row, 2));
    a->attempt = (int)strtol(nx_res_get(r, row, 3), NULL, 10);
    a->max_attempts = (int)strtol(nx_res_get(r, row, 4), NULL, 10);
    if (nx_trace_parse(nx_res_get(r, row, 5), &a->trace) != NX_OK)
        a->trace = (nx_trace_t){0};
    nx_trace_start(&a->trace);
    if (col_text >= 0) {
        a->len = (size_t)nx_res_len(r, row, col_text);
        a->text = nx_arena_strndup(a->arena, nx_res_get(r, row, col_text), a->len);
        if (!nx_res_null(r, row, col_text + 1))
            a->cached = nx_arena_strdup(a->arena, nx_res_get(r, row, col_text + 1));
        if (!a->text || (!nx_res_null(r, row, col_text + 1) && !a->cached)) {
            nx_attempt_free(a);
            return NULL;
        }
    }
    return a;
}

static int rows_to_attempts(nx_res_t *r, int col_text, bool reap, nx_attempt_t **list, int *n,
                            nx_err_t *err)
{
    *n = 0;
    for (int i = 0; i < nx_res_rows(r); i++) {
        nx_attempt_t *a = attempt_from_row(r, i, col_text);
        if (!a)
            return nx_err_set(err, NX_ENOMEM, NULL);
        a->reap = reap;
        a->next = *list;
        *list = a;
        (*n)++;
    }
    return NX_OK;
}

int nx_queue_claim(nx_db_t *db, nx_arena_t *scratch, const nx_claim_t *c, nx_attempt_t **list,
                   int *n, nx_err_t *err)
{
    char lease[16], lim[16], ttl[16];
    snprintf(lease, sizeof(lease), "%d", c->lease_s);
    snprintf(lim, sizeof(lim), "%d", c->limit);
    snprintf(ttl, sizeof(ttl), "%d", c->cache_ttl);
    const char *p[] = {c->owner, lease, lim, ttl, c->provider, c->model};
    nx_res_t *r;
    *n = 0;
    int rc = nx_db_exec(db, scratch, &st_claim, p, &r, err);
    return rc ? rc : rows_to_attempts(r, 6, false, list, n, err);
}

/* ---- batches --------------------------------------------------------------- */

/* [{"organisation_id", "id", "attempt", ...extra}] for v[0..n). */
typedef int (*extra_cb)(nx_buf_t *b, const nx_attempt_t *a);

static const char *batch_json(nx_arena_t *scratch, nx_attempt_t **v, int n, extra_cb extra)
{
    nx_buf_t b;
    nx_buf_init(&b, scratch, BATCH_JSON_MAX);
    int rc = nx_buf_puts(&b, "[");
    for (int i = 0; !rc && i < n; i++) {
        rc = nx_buf_printf(&b, "%s{\"organisation_id\": \"%s\", \"id\": \"%s\", \"attempt\": %d",
                           i ? ", " : "", v[i]->org_id, v[i]->job_id, v[i]->attempt);
        if (!rc && extra)
            rc = extra(&b, v[i]);
        if (!rc)
            rc = nx_buf_puts(&b, "}");
    }
    if (!rc)
        rc = nx_buf_puts(&b, "]");
    return rc ? NULL : b.data;
}

/* True when the database refused a statement for what it was given (bad
 * data, a constraint) and the connection is fine: worth a row at a time. */
static bool refused(nx_db_t *db, int rc)
{
    return rc != NX_OK && rc != NX_EUNAVAILABLE && nx_db_ok(db);
}

/* Notes on a why the database refused its row (operator detail). */
static void mark_refused(nx_attempt_t *a, const nx_err_t *e)
{
    const char *why = e->log_detail[0] ? e->log_detail : e->detail;
    a->refused = nx_arena_strdup(a->arena, why[0] ? why : nx_err_title(e->code));
    if (!a->refused)
        a->refused = nx_err_title(e->code);
}

/* Hands e to the caller's sink (first error wins) and returns rc. */
static int pass_err(nx_err_t *err, const nx_err_t *e, int rc)
{
    if (err && !err->code)
        *err = *e;
    return rc;
}

/* Appends s as a JSON string, every byte that is not part of well-formed
 * UTF-8 replaced by U+FFFD: jsonb refuses such text (22021), and with it
 * the whole batch. */
static int json_text(nx_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (nx_utf8_valid(s, n))
        return nx_buf_json_str(b, s);
    nx_buf_t clean;
    nx_buf_init(&clean, b->arena, 3 * n + 1);
    int rc = NX_OK;
    for (size_t i = 0; rc == NX_OK && i < n;) {
        size_t ok = nx_utf8_valid_prefix(s + i, n - i);
        rc = nx_buf_append(&clean, s + i, ok);
        i += ok;
        if (rc == NX_OK && i < n) {
            rc = nx_buf_append(&clean, "\xef\xbf\xbd", 3);
            i++; /* the offending byte */
        }
    }
    return rc ? rc : nx_buf_json_str(b, clean.data);
}

/* Marks v[i]->status from rows of (id, status, webhook deliveries the
 * statement wrote), and v[i]->webhooks when there were any. */
static void mark_status(nx_res_t *r, nx_attempt_t **v, int n)
{
    bool wrote = r && nx_res_rows(r) > 0 && strcmp(nx_res_get(r, 0, 2), "0") != 0;
    for (int i = 0; i < n; i++) {
        v[i]->status = NULL;
        v[i]->webhooks = v[i]->webhooks || wrote;
    }
    for (int row = 0; r && row < nx_res_rows(r); row++) {
        const char *id = nx_res_get(r, row, 0);
        for (int i = 0; i < n; i++)
            if (strcmp(v[i]->job_id, id) == 0) {
                const char *s = nx_res_get(r, row, 1);
                v[i]->status = strcmp(s, "completed") == 0 ? "completed"
                               : strcmp(s, "failed") == 0  ? "failed"
                                                           : "pending";
            }
    }
}

/* ---- complete -------------------------------------------------------------- */

static const nx_stmt_t st_complete = {
    "jobs_complete",
    "WITH done AS ("
    " UPDATE jobs j SET status = 'completed', output = v.output, error_message = NULL,"
    " completed_at = now(), lease_owner = NULL, lease_expires_at = NULL"
    " FROM jsonb_to_recordset($1::jsonb) AS v(organisation_id uuid, id uuid, attempt int,"
    " output jsonb)"
    " WHERE j.organisation_id = v.organisation_id AND j.id = v.id"
    " AND j.status = 'running' AND j.attempt_count = v.attempt AND j.lease_owner = $2"
    " RETURNING j.organisation_id, j.id, j.status, j AS job"
    /* the outbox: job.completed for organisations with an endpoint that
     * listens (one probe of the endpoints' key per job, nothing more) */
    "), ev AS ("
    " INSERT INTO webhook_events AS w (organisation_id, id, type, body, traceparent)"
    " SELECT s.organisation_id, s.id, 'job.completed', nx_webhook_body(s.id, 'job.completed',"
    " now(), s.organisation_id, nx_job_json(s.job)), (s.job).traceparent"
    " FROM (SELECT d.organisation_id, d.job, gen_random_uuid() AS id FROM done d"
    " WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.organisation_id = d.organisation_id"
    " AND e.enabled AND 'job.completed' = ANY (e.events)) OFFSET 0) s"
    " RETURNING w.organisation_id, w.id"
    "), out AS ("
    " INSERT INTO webhook_deliveries (organisation_id, endpoint_id, event_id)"
    " SELECT ev.organisation_id, e.id, ev.id FROM ev JOIN webhook_endpoints e"
    " ON e.organisation_id = ev.organisation_id AND e.enabled"
    " AND 'job.completed' = ANY (e.events)"
    " RETURNING 1"
    ")"
    " SELECT id, status, (SELECT count(*) FROM out) FROM done",
    2,
};

static int extra_output(nx_buf_t *b, const nx_attempt_t *a)
{
    return nx_buf_puts(b, ", \"output\": ") || nx_buf_puts(b, a->output) ? NX_ENOMEM : NX_OK;
}

static int complete_batch(nx_db_t *db, nx_arena_t *scratch, const char *owner,
                          nx_attempt_t **v, int n, nx_err_t *err)
{
    const char *batch = batch_json(scratch, v, n, extra_output);
    if (!batch)
        return nx_err_set(err, NX_ENOMEM, NULL);
    const char *p[] = {batch, owner};
    nx_res_t *r;
    int rc = nx_db_exec(db, scratch, &st_complete, p, &r, err);
    if (rc == NX_OK)
        mark_status(r, v, n);
    return rc;
}

int nx_queue_complete(nx_db_t *db, nx_arena_t *scratch, const char *owner, nx_attempt_t **v,
                      int n, nx_err_t *err)
{
    nx_err_t e = {0};
    int rc = complete_batch(db, scratch, owner, v, n, &e);
    if (!refused(db, rc))
        return rc ? pass_err(err, &e, rc) : NX_OK;
    for (int i = 0; i < n; i++) { /* one bad row must not drop the others */
        nx_err_clear(&e);
        rc = complete_batch(db, scratch, owner, &v[i], 1, &e);
        if (refused(db, rc))
            mark_refused(v[i], &e);
        else if (rc)
            return pass_err(err, &e, rc);
    }
    return NX_OK;
}

/* ---- fail ------------------------------------------------------------------ */

static const nx_stmt_t st_fail = {
    "jobs_fail",
    "WITH v AS ("
    " SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(organisation_id uuid, id uuid,"
    " attempt int, error text, reap boolean)"
    "), f AS ("
    " UPDATE jobs j SET"
    " status = CASE WHEN j.attempt_count >= j.max_attempts THEN 'failed' ELSE 'pending' END,"
    " run_at = CASE WHEN j.attempt_count >= j.max_attempts THEN j.run_at"
    " ELSE now() + make_interval(secs => $3::int) END,"
    " failed_at = CASE WHEN j.attempt_count >= j.max_attempts THEN now() END,"
    " error_message = v.error, lease_owner = NULL, lease_expires_at = NULL"
    " FROM v"
    " WHERE j.organisation_id = $2::uuid AND v.organisation_id = $2::uuid AND j.id = v.id"
    " AND j.status = 'running' AND j.attempt_count = v.attempt"
    " AND (j.lease_owner = $4 OR (v.reap AND j.lease_expires_at < now()))"
    " RETURNING j.organisation_id, j.id, j.status, j.credits_charged, j.job_type, j AS job"
    "), refund AS ("
    " UPDATE org_credits c SET balance = c.balance + r.total"
    " FROM (SELECT organisation_id, sum(credits_charged)::int AS total FROM f"
    " WHERE status = 'failed' AND credits_charged > 0 GROUP BY organisation_id) r"
    " WHERE c.organisation_id = $2::uuid AND c.organisation_id = r.organisation_id"
    "), refund_tx AS ("
    " INSERT INTO credit_transactions (organisation_id, amount, type, job_id, description)"
    " SELECT organisation_id, credits_charged, 'REFUND', id,"
    " 'refund: ' || job_type || ' job failed'"
    " FROM f WHERE status = 'failed' AND credits_charged > 0"
    /* the outbox: job.failed for a final failure, when an endpoint listens */
    "), ev AS ("
    " INSERT INTO webhook_events AS w (organisation_id, id, type, body, traceparent)"
    " SELECT s.organisation_id, s.id, 'job.failed', nx_webhook_body(s.id, 'job.failed', now(),"
    " s.organisation_id, nx_job_json(s.job)), (s.job).traceparent"
    " FROM (SELECT f.organisation_id, f.job, gen_random_uuid() AS id FROM f"
    " WHERE f.status = 'failed' AND EXISTS (SELECT 1 FROM webhook_endpoints e"
    " WHERE e.organisation_id = $2::uuid AND e.enabled AND 'job.failed' = ANY (e.events))"
    " OFFSET 0) s"
    " RETURNING w.organisation_id, w.id"
    "), out AS ("
    " INSERT INTO webhook_deliveries (organisation_id, endpoint_id, event_id)"
    " SELECT ev.organisation_id, e.id, ev.id FROM ev JOIN webhook_endpoints e"
    " ON e.organisation_id = $2::uuid AND e.organisation_id = ev.organisation_id AND e.enabled"
    " AND 'job.failed' = ANY (e.events)"
    " RETURNING 1"
    ")"
    " SELECT id, status, (SELECT count(*) FROM out), credits_charged FROM f",
    4,
};

/* Notes on each attempt of v what its job cost (rows of id, status,
 * deliveries, credits). */
static void mark_credits(nx_res_t *r, nx_attempt_t **v, int n)
{
    for (int row = 0; r && row < nx_res_rows(r); row++)
        for (int i = 0; i < n; i++)
            if (strcmp(v[i]->job_id, nx_res_get(r, row, 0)) == 0)
                v[i]->credits = (int)strtol(nx_res_get(r, row, 3), NULL, 10);
}

static int extra_error(nx_buf_t *b, const nx_attempt_t *a)
{
    const char *e = a->error && *a->error ? a->error : "the attempt failed";
    int rc = nx_buf_puts(b, ", \"error\": ");
    rc = rc ? rc : json_text(b, e);
    return rc ? rc : nx_buf_puts(b, a->reap ? ", \"reap\": true" : ", \"reap\": false");
}

/* One tenant transaction for the attempts of v[0..n) that belong to org. */
static int fail_org(nx_db_t *db, nx_arena_t *scratch, const char *owner, const char *delay,
                    const char *org, nx_attempt_t **v, int n, nx_err_t *err)
{
    const char *batch = batch_json(scratch, v, n, extra_error);
    nx_tx_t *tx = batch ? nx_tx_new(db, scratch, org, NULL, 0) : NULL;
    if (!tx)
        return nx_err_set(err, NX_ENOMEM, NULL);
    const char *p[] = {batch, org, delay, owner};
    int idx = nx_tx_add(tx, &st_fail, p);
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = nx_tx_run(tx, err);
    if (rc == NX_OK) {
        mark_status(nx_tx_res(tx, idx), v, n);
        mark_credits(nx_tx_res(tx, idx), v, n);
    }
    return rc;
}

/* After org's transaction was refused: its attempts one at a time, so the
 * others are recorded; one refused alone is failed again with SAFE_ERROR
 * (and if even that is refused, its lease will run out). */
static int fail_each(nx_db_t *db, nx_arena_t *scratch, const char *owner, const char *delay,
                     const char *org, nx_attempt_t **v, int n, nx_err_t *err)
{
    for (int i = 0; i < n; i++) {
        nx_err_t e = {0};
        int rc = fail_org(db, scratch, owner, delay, org, &v[i], 1, &e);
        if (refused(db, rc)) {
            mark_refused(v[i], &e);
            v[i]->error = SAFE_ERROR;
            nx_err_clear(&e);
            rc = fail_org(db, scratch, owner, delay, org, &v[i], 1, &e);
        }
        if (rc && !refused(db, rc))
            return pass_err(err, &e, rc);
    }
    return NX_OK;
}

int nx_queue_fail(nx_db_t *db, nx_arena_t *scratch, const char *owner, int retry_delay,
                  nx_attempt_t **v, int n, nx_err_t *err)
{
    char delay[16];
    snprintf(delay, sizeof(delay), "%d", retry_delay);
    nx_attempt_t **group = nx_arena_alloc(scratch, (size_t)(n ? n : 1) * sizeof(*group));
    bool *seen = nx_arena_calloc(scratch, (size_t)(n ? n : 1) * sizeof(*seen));
    if (!group || !seen)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int first_rc = NX_OK;
    for (int i = 0; i < n; i++) {
        if (seen[i])
            continue;
        int m = 0;
        for (int k = i; k < n; k++)
            if (!seen[k] && strcmp(v[k]->org_id, v[i]->org_id) == 0) {
                seen[k] = true;
                group[m++] = v[k];
            }
        nx_err_t e = {0};
        int rc = fail_org(db, scratch, owner, delay, v[i]->org_id, group, m, &e);
        if (refused(db, rc)) {
            nx_err_clear(&e);
            rc = fail_each(db, scratch, owner, delay, v[i]->org_id, group, m, &e);
        }
        if (rc && !first_rc) {
            first_rc = rc;
            *err = e;
        }
        if (rc == NX_EUNAVAILABLE)
            break;
    }
    return first_rc;
}

/* ---- leases ---------------------------------------------------------------- */

static const nx_stmt_t st_renew = {
    "jobs_renew",
    "UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => $3::int)"
    " FROM jsonb_to_recordset($1::jsonb) AS v(organisation_id uuid, id uuid, attempt int)"
    " WHERE j.organisation_id = v.organisation_id AND j.id = v.id"
    " AND j.status = 'running' AND j.attempt_count = v.attempt AND j.lease_owner = $2"
    " RETURNING j.id",
    3,
};

int nx_queue_renew(nx_db_t *db, nx_arena_t *scratch, const char *owner, int lease_s,
                   nx_attempt_t **v, int n, int *lost, nx_err_t *err)
{
    char lease[16];
    snprintf(lease, sizeof(lease), "%d", lease_s);
    const char *batch = batch_json(scratch, v, n, NULL);
    if (!batch)
        return nx_err_set(err, NX_ENOMEM, NULL);
    const char *p[] = {batch, owner, lease};
    nx_res_t *r;
    int rc = nx_db_exec(db, scratch, &st_renew, p, &r, err);
    if (rc == NX_OK)
        *lost = n - nx_res_rows(r);
    return rc;
}

static const nx_stmt_t st_release = {
    "jobs_release",
    "UPDATE jobs j SET status = 'pending', attempt_count = j.attempt_count - 1,"
    " run_at = now(), lease_owner = NULL, lease_expires_at = NULL"
    " FROM jsonb_to_recordset($1::jsonb) AS v(organisation_id uuid, id uuid, attempt int)"
    " WHERE j.organisation_id = v.organisation_id AND j.id = v.id"
    " AND j.status = 'running' AND j.attempt_count = v.attempt AND j.lease_owner = $2"
    " RETURNING j.id",
    2,
};

int nx_queue_release(nx_db_t *db, nx_arena_t *scratch, const char *owner, nx_attempt_t **v,
                     int n, nx_err_t *err)
{
    const char *batch = batch_json(scratch, v, n, NULL);
    if (!batch)
        return nx_err_set(err, NX_ENOMEM, NULL);
    const char *p[] = {batch, owner};
    return nx_db_exec(db, scratch, &st_release, p, NULL, err);
}

static const nx_stmt_t st_expired_final = {
    "jobs_expired_final",
    "SELECT organisation_id, id, job_type, attempt_count, max_attempts, traceparent FROM jobs"
    " WHERE status = 'running' AND lease_expires_at < now()"
    " AND attempt_count >= max_attempts"
    " ORDER BY lease_expires_at LIMIT $1::int",
    1,
};

int nx_queue_expired_final(nx_db_t *db, nx_arena_t *scratch, int limit, nx_attempt_t **list,
                           int *n, nx_err_t *err)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *p[] = {lim};
    nx_res_t *r;
    *n = 0;
    int rc = nx_db_exec(db, scratch, &st_expired_final, p, &r, err);
    if (rc)
        return rc;
    rc = rows_to_attempts(r, -1, true, list, n, err);
    for (nx_attempt_t *a = *list; !rc && a; a = a->next)
        if (a->reap && !a->error) {
            a->done = true;
            a->rc = NX_EUNAVAILABLE;
            a->error = "the worker running the last attempt stopped responding (lease expired)";
        }
    return rc;
}

/* ---- the queue's size -------------------------------------------------------- */

/* Both read jobs_claim_idx, the partial index of pending jobs by run_at:
 * the count scans pending entries only, the minimum is its first one. */
static const nx_stmt_t st_stats = {
    "jobs_queue_stats",
    "SELECT count(*),"
    " coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now())), 0)"
    " FROM jobs WHERE status = 'pending'",
    0,
};

int nx_queue_stats(nx_db_t *db, nx_arena_t *scratch, long *depth, double *oldest_age,
                   nx_err_t *err)
{
    nx_res_t *r;
    int rc = nx_db_exec(db, scratch, &st_stats, NULL, &r, err);
    if (rc != NX_OK)
        return rc;
    *depth = strtol(nx_res_get(r, 0, 0), NULL, 10);
    *oldest_age = strtod(nx_res_get(r, 0, 1), NULL);
    return NX_OK;
}

/* ---- prune ----------------------------------------------------------------- */

static const nx_stmt_t st_prune = {
    "jobs_prune",
    "DELETE FROM jobs j USING ("
    " SELECT organisation_id, id FROM jobs"
    " WHERE status IN ('completed', 'failed')"
    " AND updated_at < now() - make_interval(days => $1::int) LIMIT $2::int"
    ") d WHERE j.organisation_id = d.organisation_id AND j.id = d.id",
    2,
};

int nx_queue_prune(nx_db_t *db, nx_arena_t *scratch, int days, int limit, long *deleted,
                   nx_err_t *err)
{
    return nx_db_exec_prune(db, scratch, &st_prune, days, limit, deleted, err);
}

/* Idempotency keys live IDEMPOTENCY_TTL_HOURS; the workers that prune jobs
 * prune them too (api/idempotency.c writes them). */
static const nx_stmt_t st_prune_keys = {
    "jobs_prune_idempotency_keys",
    "DELETE FROM idempotency_keys k USING ("
    " SELECT organisation_id, key FROM idempotency_keys"
    " WHERE created_at < now() - make_interval(hours => $1::int)"
    " ORDER BY created_at LIMIT $2::int"
    ") d WHERE k.organisation_id = d.organisation_id AND k.key = d.key",
    2,
};

int nx_queue_prune_keys(nx_db_t *db, nx_arena_t *scratch, int hours, int limit, long *deleted,
                        nx_err_t *err)
{
    return nx_db_exec_prune(db, scratch, &st_prune_keys, hours, limit, deleted, err);
}
