/*
 * pipeline.c - THE request pipeline: every stage a request passes, in
 * order, as data (http/http.h describes the four kinds and how http/ runs
 * them; docs/internals/pipeline.md shows how to add one).
 *
 * A feature is a row here, not an edit of the request loop: authentication
 * (auth/), the tenant transaction and its caller check (api/tenant.c), the
 * version headers (api/versions.c), the rate limit (api/ratelimit.c),
 * idempotency keys (api/idempotency.c) and HTTP caching (api/caching.c)
 * plug in exactly as http/'s own stages do; metrics belong beside
 * "access_log".
 */
#include "core/nx.h"
#include "api/api.h"
#include "auth/auth.h"

const nx_stage_t nx_api_pipeline[] = {
    /* headers in: decide what can be decided before reading a body */
    {"request_id", NX_STAGE_HEADERS, nx_http_stage_request_id},
    {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    {"auth", NX_STAGE_HEADERS, nx_auth_stage},
    {"rate_limit", NX_STAGE_HEADERS, nx_api_stage_rate_limit},
    {"limits", NX_STAGE_HEADERS, nx_http_stage_limits},
    /* request in: the body, the tenant (with the rate-limit reservation),
     * an idempotency key's replay, the handler */
    {"body", NX_STAGE_REQUEST, nx_http_stage_body},
    {"tenant", NX_STAGE_REQUEST, nx_api_stage_tenant},
    {"idempotency", NX_STAGE_REQUEST, nx_api_stage_idempotency},
    {"handler", NX_STAGE_REQUEST, nx_http_stage_handler},
    /* the answer: who may call first; a new key's answer stored with the
     * effects; then the headers every answer gets, the body, its ETag */
    {"caller", NX_STAGE_RESPONSE, nx_api_stage_caller},
    {"idempotency_store", NX_STAGE_RESPONSE, nx_api_stage_idempotency_store},
    {"rate_limit_answer", NX_STAGE_RESPONSE, nx_api_stage_rate_limit_answer},
    {"versions", NX_STAGE_RESPONSE, nx_api_stage_versions},
    {"respond", NX_STAGE_RESPONSE, nx_http_stage_respond},
    {"etag", NX_STAGE_RESPONSE, nx_api_stage_etag},
    /* the request is over, however it ended */
    {"access_log", NX_STAGE_DONE, nx_http_stage_access_log},
};

const size_t nx_api_pipeline_count = NX_ARRAY_LEN(nx_api_pipeline);
