/*
 * routes.c - THE route table: every HTTP route the server answers, as data
 * ({method, pattern, handler, flags}), like nginx's command tables. The
 * router (http/router.c) documents matching: case-sensitive paths, no
 * trailing slash, literal segments before {params}, HEAD wherever GET.
 *
 * Adding a route: one row here, the handler's declaration in api.h (or the
 * module's own header), and its operation in src/api/openapi.json - the
 * unit test test_openapi_routes fails until all three agree.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "api/accounts.h"
#include "api/jobs_api.h"

const nx_route_t nx_api_routes[] = {
    {"GET", "/health", nx_api_health_get, NX_ROUTE_PUBLIC},
    {"GET", "/openapi.json", nx_api_openapi_get, NX_ROUTE_PUBLIC},
    {"GET", "/docs", nx_api_docs_get, NX_ROUTE_PUBLIC},
    {"GET", "/docs/{asset}", nx_api_docs_asset_get, NX_ROUTE_PUBLIC},
    {"GET", "/auth/google/login", nx_api_auth_login, NX_ROUTE_PUBLIC},
    {"GET", "/auth/google/callback", nx_api_auth_callback, NX_ROUTE_PUBLIC},
    {"POST", "/auth/google/token", nx_api_auth_token, NX_ROUTE_PUBLIC | NX_ROUTE_JSON},
    {"POST", "/auth/logout", nx_api_auth_logout, NX_ROUTE_PUBLIC},
    {"GET", "/api/v1/me", nx_api_me_get, NX_ROUTE_AUTH},
    {"GET", "/api/v1/organisation", nx_api_organisation_get, NX_ROUTE_AUTH},
    {"PATCH", "/api/v1/organisation", nx_api_organisation_patch, NX_ROUTE_ADMIN | NX_ROUTE_JSON},
    {"GET", "/api/v1/users", nx_api_users_list, NX_ROUTE_AUTH},
    {"GET", "/api/v1/users/{id}", nx_api_users_get, NX_ROUTE_AUTH},
    {"PATCH", "/api/v1/users/{id}", nx_api_users_patch, NX_ROUTE_ADMIN | NX_ROUTE_JSON},
    {"DELETE", "/api/v1/users/{id}", nx_api_users_delete, NX_ROUTE_ADMIN},
    {"GET", "/api/v1/credits", nx_api_credits_get, NX_ROUTE_AUTH},
    {"GET", "/api/v1/credits/transactions", nx_api_credits_transactions_list, NX_ROUTE_AUTH},
    {"GET", "/api/v1/credits/usage", nx_api_credits_usage_get, NX_ROUTE_AUTH},
    {"POST", "/api/v1/summarise", nx_api_jobs_summarise, NX_ROUTE_AUTH | NX_ROUTE_JSON},
    {"POST", "/api/v1/summarize", nx_api_jobs_summarise, NX_ROUTE_AUTH | NX_ROUTE_JSON},
    {"POST", "/api/v1/analyse", nx_api_jobs_analyse, NX_ROUTE_AUTH | NX_ROUTE_JSON},
    {"GET", "/api/v1/jobs", nx_api_jobs_list, NX_ROUTE_AUTH},
    {"GET", "/api/v1/jobs/{id}", nx_api_jobs_get, NX_ROUTE_AUTH},
};

const size_t nx_api_routes_count = NX_ARRAY_LEN(nx_api_routes);
