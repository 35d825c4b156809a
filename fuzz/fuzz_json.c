/*
 * fuzz_json.c - the JSON body reader (http/mw/limits.c: UTF-8, duplicate
 * keys, an object required) and the validators behind it: a v2 job request
 * (type, input, metadata) and the job types' input check, through the real
 * pipeline stages in-process (tests/harness/loopback.c). The first byte
 * picks the route, the rest is the body. Nothing reaches a database: a
 * request that passes validation fails at the tenant transaction, which
 * these routes do not open.
 */
#include "core/nx.h"
#include "fuzz.h"
#include "api/jobs_api.h"
#include "core/err.h"
#include "http/http_int.h"
#include "loopback.h"

static const nx_route_t routes[] = {
    {"POST", "/jobs", nx_api_jobs_create, NX_ROUTE_PUBLIC | NX_ROUTE_JSON},
    {"POST", "/summarise", nx_api_jobs_summarise, NX_ROUTE_PUBLIC | NX_ROUTE_JSON},
    {"POST", "/analyse", nx_api_jobs_analyse, NX_ROUTE_PUBLIC | NX_ROUTE_JSON},
};
static const nx_route_group_t groups[] = {{"/api/v2", 2, routes, NX_ARRAY_LEN(routes)}};
static const nx_stage_t stages[] = {
    {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    {"limits", NX_STAGE_HEADERS, nx_http_stage_limits},
    {"body", NX_STAGE_REQUEST, nx_http_stage_body},
    {"handler", NX_STAGE_REQUEST, nx_http_stage_handler},
    {"respond", NX_STAGE_RESPONSE, nx_http_stage_respond},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    nx_err_t err = {0};
    nx_fuzz_quiet();
    if (nx_router_init(groups, 1, &err) != NX_OK ||
        nx_pipeline_init(stages, NX_ARRAY_LEN(stages), &err) != NX_OK)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const paths[] = {"/api/v2/jobs", "/api/v2/summarise", "/api/v2/analyse"};
    nx_loopback_req_t in = {.method = "POST", .path = paths[data[0] % 3],
                            .body = (const char *)data + 1, .body_len = size - 1};
    in.headers[0][0] = "Content-Type";
    in.headers[0][1] = "application/json";
    nx_loopback_resp_t out;
    nx_loopback_run(&in, &out);
    if (out.status < 400 || out.status > 503) /* no input passes without a tenant */
        abort();
    nx_loopback_release(&out);
    return 0;
}
