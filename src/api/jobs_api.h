/*
 * jobs_api.h - handlers of the credits and jobs routes (credits.c, jobs.c).
 * Each runs exactly one tenant transaction (nx_api_tx); another
 * organisation's job is invisible under row-level security and answers 404.
 */
#ifndef NX_API_JOBS_API_H
#define NX_API_JOBS_API_H

#include "core/nx.h"
#include "api/api.h"
#include "http/http.h"

#define NX_JOB_TEXT_MAX 100000 /* characters (code points) */
#define NX_USAGE_DAYS_DEFAULT 7
#define NX_USAGE_DAYS_MAX 90

/* GET /api/v1/credits, /api/v1/credits/transactions, /api/v1/credits/usage */
int nx_api_credits_get(nx_req_t *req, nx_err_t *err);
int nx_api_credits_transactions_list(nx_req_t *req, nx_err_t *err);
int nx_api_credits_usage_get(nx_req_t *req, nx_err_t *err);

/* POST /api/v1/summarise (and /api/v1/summarize), POST /api/v1/analyse:
 * 202 + Location; 422 (field "text"), 402 when the balance is short. */
int nx_api_jobs_summarise(nx_req_t *req, nx_err_t *err);
int nx_api_jobs_analyse(nx_req_t *req, nx_err_t *err);
/* GET /api/v1/jobs (?status=, cursor pages newest first), GET /api/v1/jobs/{id} */
int nx_api_jobs_list(nx_req_t *req, nx_err_t *err);
int nx_api_jobs_get(nx_req_t *req, nx_err_t *err);

#endif
