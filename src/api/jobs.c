/*
 * jobs.c - job submission (summarise, analyse) and the organisation's jobs.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * A submission is validated first (nothing is debited for a bad input),
 * then its one statement - debit, job row, DEDUCTION - runs in the
 * request's tenant transaction (src/jobs/queue.c). After the commit the
 * workers are woken (at most one NOTIFY per short interval). Every member
 * sees all of the organisation's jobs: the credits are shared.
 */
#include "core/nx.h"
#include "api/jobs_api.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"
#include "jobs/jobs.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const nx_stmt_t st_list = {
    "api_jobs_list",
    "SELECT nx_job_json(j)::text,"
    " (extract(epoch FROM j.created_at) * 1000000)::bigint::text, j.id::text"
    " FROM jobs j WHERE j.organisation_id = $1 AND ($5::text IS NULL OR j.status = $5)"
    " AND ($2::bigint IS NULL OR"
    " (j.created_at, j.id) < (timestamptz 'epoch' + ($2::bigint / 1000000) * interval '1 second'"
    " + ($2::bigint % 1000000) * interval '1 microsecond', $3::uuid))"
    " ORDER BY j.created_at DESC, j.id DESC LIMIT $4::int",
    5,
};

static const nx_stmt_t st_get = {
    "api_jobs_get",
    "SELECT nx_job_json(j)::text FROM jobs j WHERE j.organisation_id = $1 AND j.id = $2::uuid",
    2,
};

/* The "text" member: a string of 1..NX_JOB_TEXT_MAX characters. */
static int text_param(nx_req_t *req, const char **out, nx_err_t *err)
{
    json_t *t = req->json ? json_object_get(req->json, "text") : NULL;
    if (!t) {
        nx_err_field(err, "text", "is required");
        return NX_EVALIDATION;
    }
    if (!json_is_string(t)) {
        nx_err_field(err, "text", "must be a string");
        return NX_EVALIDATION;
    }
    const char *s = json_string_value(t);
    size_t len = json_string_length(t);
    if (strlen(s) != len || !nx_utf8_valid(s, len)) {
        nx_err_field(err, "text", "must be valid UTF-8 without NUL characters");
        return NX_EVALIDATION;
    }
    size_t chars = nx_utf8_len(s, len);
    if (chars == 0) {
        nx_err_field(err, "text", "must not be empty");
        return NX_EVALIDATION;
    }
    if (chars > NX_JOB_TEXT_MAX) {
        nx_err_field(err, "text", "must be at most %d characters (got %zu)", NX_JOB_TEXT_MAX,
                     chars);
        return NX_EVALIDATION;
    }
    *out = s;
    return NX_OK;
}

static int submit(nx_req_t *req, const char *job_type, nx_err_t *err)
{
    const char *text;
    int rc = text_param(req, &text, err);
    if (rc != NX_OK)
        return rc;
    nx_tx_t *tx = nx_api_tx(req, err);
    if (!tx)
        return err->code ? err->code : nx_err_set(err, NX_ENOMEM, NULL);
    int idx = nx_jobs_create_add(tx, req->auth.org_id, job_type, text);
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    if ((rc = nx_tx_run(tx, err)) != NX_OK)
        return rc;
    const char *job_id, *body;
    if ((rc = nx_jobs_create_result(tx, idx, &job_id, &body, err)) != NX_OK)
        return rc;
    const char *loc = nx_arena_sprintf(req->arena, "/api/v1/jobs/%s", job_id);
    if (!loc || nx_resp_header(req, "Location", loc) != NX_OK ||
        nx_resp_json(req, 202, body, strlen(body)) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    nx_err_t ignore = {0};
    nx_db_t *db = nx_req_db(req, &ignore);
    if (db)
        nx_jobs_submitted(db, req->arena);
    return NX_OK;
}

int nx_api_jobs_summarise(nx_req_t *req, nx_err_t *err) { return submit(req, "summarise", err); }

int nx_api_jobs_analyse(nx_req_t *req, nx_err_t *err) { return submit(req, "analyse", err); }

int nx_api_jobs_list(nx_req_t *req, nx_err_t *err)
{
    const char *status = nx_req_query(req, "status");
    if (status && strcmp(status, "pending") && strcmp(status, "running") &&
        strcmp(status, "completed") && strcmp(status, "failed")) {
        nx_err_field(err, "status", "must be one of pending, running, completed, failed");
        return NX_EVALIDATION;
    }
    return nx_api_list(req, &st_list, status, err);
}

int nx_api_jobs_get(nx_req_t *req, nx_err_t *err)
{
    return nx_api_get_by_id(req, &st_get, "No such job.", err);
}
