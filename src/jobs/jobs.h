/*
 * jobs.h - background jobs: submission (API side) and the worker pool.
 *
 * A job's row changes only through the four queue functions (queue.c):
 * create, claim, complete, fail. The API queues the create statement on the
 * request's tenant transaction; workers (threads inside `serve`, or the
 * `worker` verb) claim, run the provider and finish attempts.
 */
#ifndef NX_JOBS_JOBS_H
#define NX_JOBS_JOBS_H

#include "core/nx.h"
#include "db/target.h"

#include <jansson.h>

#define NX_JOBS_CHANNEL "nexus_jobs"
#define NX_JOB_TEXT_MAX 100000 /* characters (code points) of a job's text */

/* ---- job types (registry.c) ------------------------------------------------ */

/* A provider entry point: turns a job's text into its output JSON (on the
 * attempt's arena), or fails with err->detail as the job's error_message. */
typedef int (*nx_job_run_cb)(nx_arena_t *a, const char *text, size_t len, char **out,
                             nx_err_t *err);

/* Everything about one type of job, declared once in registry.c. */
typedef struct nx_job_type {
    const char *name;          /* "summarise": API type and jobs.job_type */
    int cost;                  /* credits debited at submission */
    const char *title;         /* what it produces, for the API document */
    /* Checks the input object; *text is the text to process (borrowed from
     * input). field names the text member in errors ("text", "input.text"). */
    int (*input)(json_t *input, const char *field, const char **text, nx_err_t *err);
    const char *output_schema; /* its output's schema in openapi.json */
    nx_job_run_cb run;         /* the provider entry point */
} nx_job_type_t;

/* The type called name, or NULL. */
const nx_job_type_t *nx_job_type_find(const char *name);
/* The i-th type (0-based), or NULL past the last: for listing them all. */
const nx_job_type_t *nx_job_type_at(size_t i);

/* ---- submission (queue.c) ---------------------------------------------------- */

/* The request's Idempotency-Key and hash: the submission statement stores
 * its 202 answer with them (Location: location followed by the job's id). */
typedef struct nx_job_answer_key {
    const char *key, *hash, *location;
} nx_job_answer_key_t;

/* What one submission writes: the job's type, its text, its metadata (a
 * JSON object as text, "{}" when none), and the traceparent of the request
 * that submitted it (NULL: none), under which its attempts run. */
typedef struct nx_job_submit {
    const nx_job_type_t *type;
    const char *text;
    const char *metadata;
    const char *traceparent;
    const nx_job_answer_key_t *answer_key; /* NULL: no Idempotency-Key */
} nx_job_submit_t;

/*
 * create, part 1: queues the submission statement on the request's tenant
 * transaction (one statement: debit, job row, DEDUCTION). The text must be
 * valid UTF-8 without NUL. The answer is rendered for API version (1: v1's
 * 202 body, 2: the v2 Job). Returns the statement index, or -1 on ENOMEM.
 */
int nx_jobs_create_add(nx_tx_t *tx, const char *org_id, const nx_job_submit_t *job,
                       int version);
/*
 * create, part 2, after a successful nx_tx_run: *job_id and *body (the
 * answer's JSON) borrowed from the result; *webhooks when the debit took
 * the balance below CREDITS_LOW_THRESHOLD and a credits.low event was
 * written for an endpoint (wake the webhook workers: nx_webhooks_committed).
 * NX_EPAYMENT when the balance was short (nothing was inserted).
 */
int nx_jobs_create_result(nx_tx_t *tx, int idx, const char **job_id, const char **body,
                          bool *webhooks, nx_err_t *err);
/*
 * After a committed submission, outside its transaction: wakes this
 * process's workers, and sends NOTIFY on db at most once per short interval
 * for workers elsewhere. Never fails the request.
 */
void nx_jobs_submitted(nx_db_t *db, nx_arena_t *arena);

/*
 * Starts settings->worker_concurrency worker threads (0: none, NX_OK) and
 * their dispatcher, which owns one database connection as the worker role
 * of target. NX_EUNAVAILABLE / NX_ENOMEM.
 */
int nx_jobs_start(const nx_settings_t *settings, const nx_db_target_t *target, nx_err_t *err);
/*
 * Stops the workers: no new claims, attempts already running get up to
 * drain_seconds to finish; the leases of the others are released (the job
 * goes back to pending, the attempt not counted). Idempotent.
 */
void nx_jobs_stop(int drain_seconds);

#endif
