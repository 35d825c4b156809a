/*
 * routes.c - THE route table: every HTTP route the server answers, as data
 * ({method, pattern, handler, flags}), like nginx's command tables, in
 * groups mounted under a prefix. The router (http/router.c) documents
 * matching: case-sensitive paths, no trailing slash, literal segments
 * before {params}, HEAD wherever GET.
 *
 * The versioned API is mounted twice: every resource answers under
 * /api/v1 and /api/v2 with the same handler (a handler reads
 * req->api_version where the shapes differ: jobs); job submission is
 * /summarise and /analyse in v1 and POST /jobs in v2 only.
 *
 * Flags say who may call (PUBLIC: anyone, and no tenant; AUTH: a member,
 * in the caller's tenant; ADMIN: an admin) and whether the route takes a
 * JSON body (JSON; other routes never keep one); UNDOCUMENTED marks an
 * operators' route that is not part of the API (GET /metrics).
 *
 * Adding a route: one row here, the handler's declaration in its module's
 * header, and its operation in src/api/openapi.json (under /api/v1 for a
 * route of api_routes: the v2 copy is made when the document is served) -
 * the unit test test_openapi_routes fails until all of them agree.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "api/accounts.h"
#include "api/jobs_api.h"
#include "metrics/metrics.h"
#include "api/webhooks_api.h"

static const nx_route_t root_routes[] = {
    {"GET", "/health", nx_api_health_get, NX_ROUTE_PUBLIC},
    {"GET", "/openapi.json", nx_api_openapi_get, NX_ROUTE_PUBLIC},
    {"GET", "/openapi/{version}", nx_api_openapi_version_get, NX_ROUTE_PUBLIC},
    {"GET", "/docs", nx_api_docs_get, NX_ROUTE_PUBLIC},
    {"GET", "/docs/{asset}", nx_api_docs_asset_get, NX_ROUTE_PUBLIC},
    {"GET", "/auth/google/login", nx_api_auth_login, NX_ROUTE_PUBLIC},
    {"GET", "/auth/google/callback", nx_api_auth_callback, NX_ROUTE_PUBLIC},
    {"POST", "/auth/google/token", nx_api_auth_token, NX_ROUTE_PUBLIC | NX_ROUTE_JSON},
    {"POST", "/auth/logout", nx_api_auth_logout, NX_ROUTE_PUBLIC},
    {"GET", "/auth/link", nx_api_auth_link, NX_ROUTE_PUBLIC},
    {"GET", "/", nx_api_dashboard_get, NX_ROUTE_PUBLIC},
    {"GET", "/assets/{asset}", nx_api_dashboard_asset_get, NX_ROUTE_PUBLIC},
    /* operators': answers loopback clients or METRICS_TOKEN, else 404 */
    {"GET", "/metrics", nx_metrics_get, NX_ROUTE_PUBLIC | NX_ROUTE_UNDOCUMENTED},
};

/* Every version's resources. */
static const nx_route_t api_routes[] = {
    {"GET", "/me", nx_api_me_get, NX_ROUTE_AUTH},
    {"GET", "/organisation", nx_api_organisation_get, NX_ROUTE_AUTH},
    {"PATCH", "/organisation", nx_api_organisation_patch, NX_ROUTE_ADMIN | NX_ROUTE_JSON},
    {"GET", "/users", nx_api_users_list, NX_ROUTE_AUTH},
    {"GET", "/users/{id}", nx_api_users_get, NX_ROUTE_AUTH},
    {"PATCH", "/users/{id}", nx_api_users_patch, NX_ROUTE_ADMIN | NX_ROUTE_JSON},
    {"DELETE", "/users/{id}", nx_api_users_delete, NX_ROUTE_ADMIN},
    {"GET", "/credits", nx_api_credits_get, NX_ROUTE_AUTH},
    {"GET", "/credits/transactions", nx_api_credits_transactions_list, NX_ROUTE_AUTH},
    {"GET", "/credits/usage", nx_api_credits_usage_get, NX_ROUTE_AUTH},
    {"GET", "/jobs", nx_api_jobs_list, NX_ROUTE_AUTH},
    {"GET", "/jobs/{id}", nx_api_jobs_get, NX_ROUTE_AUTH},
    {"POST", "/webhooks", nx_api_webhooks_create, NX_ROUTE_ADMIN | NX_ROUTE_JSON},
    {"GET", "/webhooks", nx_api_webhooks_list, NX_ROUTE_ADMIN},
    {"GET", "/webhooks/{id}", nx_api_webhooks_get, NX_ROUTE_ADMIN},
    {"PATCH", "/webhooks/{id}", nx_api_webhooks_patch, NX_ROUTE_ADMIN | NX_ROUTE_JSON},
    {"DELETE", "/webhooks/{id}", nx_api_webhooks_delete, NX_ROUTE_ADMIN},
    {"POST", "/webhooks/{id}/rotate-secret", nx_api_webhooks_rotate, NX_ROUTE_ADMIN},
    {"POST", "/webhooks/{id}/test", nx_api_webhooks_test, NX_ROUTE_ADMIN},
    {"GET", "/webhooks/{id}/deliveries", nx_api_webhooks_deliveries, NX_ROUTE_ADMIN},
    {"POST", "/webhooks/{id}/deliveries/{delivery_id}/retry", nx_api_webhooks_retry,
     NX_ROUTE_ADMIN},
};

static const nx_route_t v1_routes[] = {
    {"POST", "/summarise", nx_api_jobs_summarise, NX_ROUTE_AUTH | NX_ROUTE_JSON},
    {"POST", "/summarize", nx_api_jobs_summarise, NX_ROUTE_AUTH | NX_ROUTE_JSON},
    {"POST", "/analyse", nx_api_jobs_analyse, NX_ROUTE_AUTH | NX_ROUTE_JSON},
};

static const nx_route_t v2_routes[] = {
    {"POST", "/jobs", nx_api_jobs_create, NX_ROUTE_AUTH | NX_ROUTE_JSON},
};

#define GROUP(prefix, version, routes) {prefix, version, routes, NX_ARRAY_LEN(routes)}

const nx_route_group_t nx_api_route_groups[] = {
    GROUP("", 0, root_routes),
    GROUP("/api/v1", 1, api_routes),
    GROUP("/api/v1", 1, v1_routes),
    GROUP("/api/v2", 2, api_routes),
    GROUP("/api/v2", 2, v2_routes),
};

const size_t nx_api_route_groups_count = NX_ARRAY_LEN(nx_api_route_groups);
