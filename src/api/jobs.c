/*
 * jobs.c - job submission and the organisation's jobs, in both API versions.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * One store, two shapes: v1 submits through /summarise and /analyse and
 * shows api.md's v1 Job; v2 submits through POST /jobs ({"type", "input",
 * "metadata"}) and shows the v2 Job. The list and read handlers are shared;
 * a small version adapter (shapes[]) picks the statement that renders the
 * version's shape, so a job submitted through either version is readable
 * through both. What a job type costs and accepts comes from the job
 * registry (jobs/registry.c).
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
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"
#include "jobs/jobs.h"
#include "metrics/metrics.h"
#include "webhooks/webhooks.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define METADATA_MAX_KEYS 20
#define METADATA_KEY_MAX 40
#define METADATA_VALUE_MAX 500

/* $5 status and $6 type filter (NULL: any); render is the version's shape. */
#define LIST_SQL(render)                                                                     \
    "SELECT " render "(j)::text,"                                                            \
    " (extract(epoch FROM j.created_at) * 1000000)::bigint::text, j.id::text"                \
    " FROM jobs j WHERE j.organisation_id = $1 AND ($5::text IS NULL OR j.status = $5)"     \
    " AND ($6::text IS NULL OR j.job_type = $6)"                                             \
    " AND ($2::bigint IS NULL OR"                                                            \
    " (j.created_at, j.id) < (timestamptz 'epoch' + ($2::bigint / 1000000) * interval '1 second'" \
    " + ($2::bigint % 1000000) * interval '1 microsecond', $3::uuid))"                       \
    " ORDER BY j.created_at DESC, j.id DESC LIMIT $4::int"
#define GET_SQL(render)                                                                      \
    "SELECT " render "(j)::text FROM jobs j WHERE j.organisation_id = $1 AND j.id = $2::uuid"

/* The version adapter: how each API version reads and links its jobs. */
static const struct shape {
    nx_stmt_t list, get;
    const char *location; /* a job's URL, before its id */
} shapes[] = {
    {{"api_jobs_list", LIST_SQL("nx_job_json"), 6},
     {"api_jobs_get", GET_SQL("nx_job_json"), 2},
     "/api/v1/jobs/"},
    {{"api_jobs_list_v2", LIST_SQL("nx_job_v2_json"), 6},
     {"api_jobs_get_v2", GET_SQL("nx_job_v2_json"), 2},
     "/api/v2/jobs/"},
};

static const struct shape *shape_of(const nx_req_t *req)
{
    return &shapes[req->api_version >= 2 ? 1 : 0];
}

/* Debits, creates and answers 202 with the version's shape and Location.
 * The job keeps the request's trace: its attempts are spans of it. */
static int submit(nx_req_t *req, nx_job_submit_t *job, nx_err_t *err)
{
    nx_tx_t *tx = nx_api_tx(req, err);
    if (!tx)
        return err->code;
    char tp[NX_TRACEPARENT_LEN + 1];
    if (req->trace.trace_id[0]) {
        nx_trace_format(&req->trace, tp);
        job->traceparent = tp;
    }
    /* an Idempotency-Key's answer is stored by the submission itself */
    nx_job_answer_key_t key = {.location = shape_of(req)->location};
    key.key = nx_api_idempotency_fold(req, &key.hash);
    job->answer_key = key.key ? &key : NULL;
    int idx = nx_jobs_create_add(tx, req->auth.org_id, job, req->api_version >= 2 ? 2 : 1);
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = nx_tx_run(tx, err);
    if (rc != NX_OK)
        return rc;
    const char *job_id, *body;
    bool webhooks = false;
    if ((rc = nx_jobs_create_result(tx, idx, &job_id, &body, &webhooks, err)) != NX_OK)
        return rc;
    nx_api_idempotency_stored(req);
    const char *loc = nx_arena_sprintf(req->arena, "%s%s", shape_of(req)->location, job_id);
    if (!loc || nx_resp_header(req, "Location", loc) != NX_OK ||
        nx_resp_json(req, 202, body, strlen(body)) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    nx_metrics_job(NX_METRICS_JOB_SUBMITTED, job->type->name); /* committed */
    nx_metrics_credits(false, job->type->name, job->type->cost);
    nx_err_t ignore = {0};
    nx_db_t *db = nx_db_thread(&ignore);
    if (db)
        nx_jobs_submitted(db, req->arena);
    if (db && webhooks) /* the debit crossed CREDITS_LOW_THRESHOLD: credits.low */
        nx_webhooks_committed(db, req->arena);
    return NX_OK;
}

/* v1: the body is the type's input ({"text"}); other members are ignored. */
static int submit_v1(nx_req_t *req, const char *type_name, nx_err_t *err)
{
    nx_job_submit_t job = {.type = nx_job_type_find(type_name)};
    NX_ASSERT(job.type);
    int rc = job.type->input(req->json, "text", &job.text, err);
    return rc != NX_OK ? rc : submit(req, &job, err);
}

int nx_api_jobs_summarise(nx_req_t *req, nx_err_t *err) { return submit_v1(req, "summarise", err); }

int nx_api_jobs_analyse(nx_req_t *req, nx_err_t *err) { return submit_v1(req, "analyse", err); }

/* "type": a name from the job registry. */
static const nx_job_type_t *type_member(json_t *v, nx_err_t *err)
{
    const nx_job_type_t *t = json_is_string(v) ? nx_job_type_find(json_string_value(v)) : NULL;
    if (t)
        return t;
    char names[128] = "";
    for (size_t i = 0; nx_job_type_at(i); i++) {
        size_t n = strlen(names);
        snprintf(names + n, sizeof(names) - n, "%s\"%s\"", i ? ", " : "", nx_job_type_at(i)->name);
    }
    nx_err_field(err, "type", v ? "must be one of %s" : "is required: one of %s", names);
    return NULL;
}

static bool text_within(const char *s, size_t len, size_t min, size_t max)
{
    size_t n = nx_utf8_len(s, len);
    return strlen(s) == len && nx_utf8_valid(s, len) && n >= min && n <= max;
}

static int dump_cb(const char *p, size_t n, void *ud)
{
    return nx_buf_append(ud, p, n) == NX_OK ? 0 : -1;
}

/* "metadata": at most 20 string members, keys of 1-40 and values of at most
 * 500 characters; *out is the object as given (compact JSON, arena). */
static int metadata_member(nx_req_t *req, json_t *v, const char **out, nx_err_t *err)
{
    *out = "{}";
    if (!v)
        return NX_OK;
    if (!json_is_object(v) || json_object_size(v) > METADATA_MAX_KEYS) {
        nx_err_field(err, "metadata", "must be an object of at most %d string members",
                     METADATA_MAX_KEYS);
        return NX_EVALIDATION;
    }
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (!text_within(key, strlen(key), 1, METADATA_KEY_MAX) || !json_is_string(val) ||
            !text_within(json_string_value(val), json_string_length(val), 0,
                         METADATA_VALUE_MAX)) {
            nx_err_field(err, "metadata",
                         "keys must be 1 to %d characters and values strings of at most %d",
                         METADATA_KEY_MAX, METADATA_VALUE_MAX);
            return NX_EVALIDATION;
        }
    }
    nx_buf_t b;
    nx_buf_init(&b, req->arena, NX_BODY_MAX);
    if (json_dump_callback(v, dump_cb, &b, JSON_COMPACT) != 0 || !b.data)
        return nx_err_set(err, NX_ENOMEM, NULL);
    *out = b.data;
    return NX_OK;
}

int nx_api_jobs_create(nx_req_t *req, nx_err_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(req->json, key, v) {
        if (strcmp(key, "type") && strcmp(key, "input") && strcmp(key, "metadata"))
            nx_err_field(err, key, "is not a member of a job request");
    }
    nx_job_submit_t job = {.type = type_member(json_object_get(req->json, "type"), err)};
    json_t *input = json_object_get(req->json, "input");
    if (!json_is_object(input))
        nx_err_field(err, "input", input ? "must be an object" : "is required");
    else if (job.type)
        job.type->input(input, "input.text", &job.text, err);
    metadata_member(req, json_object_get(req->json, "metadata"), &job.metadata, err);
    if (err->code)
        return err->code;
    return submit(req, &job, err);
}

int nx_api_jobs_list(nx_req_t *req, nx_err_t *err)
{
    const char *status = nx_req_query(req, "status");
    if (status && strcmp(status, "pending") && strcmp(status, "running") &&
        strcmp(status, "completed") && strcmp(status, "failed")) {
        nx_err_field(err, "status", "must be one of pending, running, completed, failed");
        return NX_EVALIDATION;
    }
    /* ?type= is v2's; v1 ignores unknown query arguments, as it always has */
    const char *type = req->api_version >= 2 ? nx_req_query(req, "type") : NULL;
    if (type && !nx_job_type_find(type)) {
        nx_err_field(err, "type", "is not a job type");
        return NX_EVALIDATION;
    }
    const char *extra[] = {status, type};
    return nx_api_list(req, &shape_of(req)->list, extra, 2, err);
}

int nx_api_jobs_get(nx_req_t *req, nx_err_t *err)
{
    return nx_api_get_by_id(req, &shape_of(req)->get, "No such job.", err);
}
