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

#define NX_JOB_COST_SUMMARISE 10
#define NX_JOB_COST_ANALYSE 25
#define NX_JOBS_CHANNEL "nexus_jobs"

/* The cost of a job type ("summarise", "analyse"); -1 when unknown. */
int nx_jobs_cost(const char *job_type);

/*
 * create, part 1: queues the submission statement on the request's tenant
 * transaction (one statement: debit, job row, DEDUCTION). text must be valid
 * UTF-8 without NUL. Returns the statement index, or -1 on ENOMEM.
 */
int nx_jobs_create_add(nx_tx_t *tx, const char *org_id, const char *job_type, const char *text);
/*
 * create, part 2, after a successful nx_tx_run: *job_id and *body (the 202
 * JSON) borrowed from the result. NX_EPAYMENT when the balance was short
 * (nothing was inserted).
 */
int nx_jobs_create_result(nx_tx_t *tx, int idx, const char **job_id, const char **body,
                          nx_err_t *err);
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
