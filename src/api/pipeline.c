/*
 * pipeline.c - THE request pipeline: every stage a request passes, in
 * order, as data (http/http.h describes the four kinds and how http/ runs
 * them; docs/internals/pipeline.md shows how to add one).
 *
 * A feature is a row here, not an edit of the request loop: authentication
 * (auth/), the tenant transaction and its caller check (api/tenant.c), the
 * version headers (api/versions.c) plug in exactly as http/'s own stages
 * do. Rate limits belong after "auth" (they count per organisation and may
 * refuse before the body is read); counters beside "access_log".
 */
#include "core/nx.h"
#include "api/api.h"
#include "auth/auth.h"
#include "metrics/metrics.h"

const nx_stage_t nx_api_pipeline[] = {
    /* headers in: decide what can be decided before reading a body */
    {"trace", NX_STAGE_HEADERS, nx_http_stage_trace},
    {"request_id", NX_STAGE_HEADERS, nx_http_stage_request_id},
    {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    {"auth", NX_STAGE_HEADERS, nx_auth_stage},
    {"limits", NX_STAGE_HEADERS, nx_http_stage_limits},
    /* request in: the body, the tenant, the handler */
    {"body", NX_STAGE_REQUEST, nx_http_stage_body},
    {"tenant", NX_STAGE_REQUEST, nx_api_stage_tenant},
    {"handler", NX_STAGE_REQUEST, nx_http_stage_handler},
    /* the answer: who may call first, then the headers every answer gets */
    {"caller", NX_STAGE_RESPONSE, nx_api_stage_caller},
    {"versions", NX_STAGE_RESPONSE, nx_api_stage_versions},
    {"security_headers", NX_STAGE_RESPONSE, nx_http_stage_security_headers},
    {"respond", NX_STAGE_RESPONSE, nx_http_stage_respond},
    /* the request is over, however it ended */
    {"access_log", NX_STAGE_DONE, nx_http_stage_access_log},
    {"metrics", NX_STAGE_DONE, nx_metrics_stage_http},
};

const size_t nx_api_pipeline_count = NX_ARRAY_LEN(nx_api_pipeline);
