/*
 * jobs_api.h - handlers of the credits and jobs routes (credits.c, jobs.c).
 * Each runs the request's tenant transaction (req->tx); another
 * organisation's job is invisible under row-level security and answers 404.
 */
#ifndef NX_API_JOBS_API_H
#define NX_API_JOBS_API_H

#include "core/nx.h"
#include "api/api.h"
#include "http/http.h"

#define NX_USAGE_DAYS_DEFAULT 7
#define NX_USAGE_DAYS_MAX 90

/* GET /api/v1/credits, /api/v1/credits/transactions, /api/v1/credits/usage */
int nx_api_credits_get(nx_req_t *req, nx_err_t *err);
int nx_api_credits_transactions_list(nx_req_t *req, nx_err_t *err);
int nx_api_credits_usage_get(nx_req_t *req, nx_err_t *err);

/* v1: POST /summarise (and /summarize), POST /analyse: 202 + Location;
 * 422 (field "text"), 402 when the balance is short. */
int nx_api_jobs_summarise(nx_req_t *req, nx_err_t *err);
int nx_api_jobs_analyse(nx_req_t *req, nx_err_t *err);
/* v2: POST /jobs {"type", "input", "metadata"}: 202 with the v2 Job. */
int nx_api_jobs_create(nx_req_t *req, nx_err_t *err);
/* GET /jobs (?status=, v2 also ?type=; cursor pages newest first) and
 * GET /jobs/{id}, in the shape of the route's API version. */
int nx_api_jobs_list(nx_req_t *req, nx_err_t *err);
int nx_api_jobs_get(nx_req_t *req, nx_err_t *err);

#endif
