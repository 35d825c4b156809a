/*
 * routes.h - the route table and the handlers of the always-present routes
 * (health, OpenAPI document, docs UI). Other modules declare their handlers
 * in their own headers and add rows to api/routes.c.
 *
 * Every route in the table is documented in the served OpenAPI document
 * (src/api/openapi.json, with the v2 copies of the shared resources made
 * by openapi.c); tests/unit/api/test_openapi_routes.c checks both ways.
 */
#ifndef NX_API_ROUTES_H
#define NX_API_ROUTES_H

#include "core/nx.h"
#include "http/http.h"

/* The route table (static, in api/routes.c): groups under their prefix. */
extern const nx_route_group_t nx_api_route_groups[];
extern const size_t nx_api_route_groups_count;

/* GET /health - database round trip; 200 ok or 503 degraded. */
int nx_api_health_get(nx_req_t *req, nx_err_t *err);
/* GET /openapi.json (both versions), GET /openapi/{v1.json|v2.json} (one),
 * GET /docs, GET /docs/{asset} - the document and its browser UI. */
int nx_api_openapi_get(nx_req_t *req, nx_err_t *err);
int nx_api_openapi_version_get(nx_req_t *req, nx_err_t *err);
int nx_api_docs_get(nx_req_t *req, nx_err_t *err);
int nx_api_docs_asset_get(nx_req_t *req, nx_err_t *err);

/* GET / (the dashboard's page) and GET /assets/{asset} (its scripts and
 * styles): embedded files, ETag and 304, gzip when accepted (dashboard.c). */
int nx_api_dashboard_get(nx_req_t *req, nx_err_t *err);
int nx_api_dashboard_asset_get(nx_req_t *req, nx_err_t *err);

/* The served OpenAPI document for version (0: both, 1, 2): the document
 * compiled in, with the shared resources mounted under /api/v2 and the job
 * types filled in from the job registry. Built once; borrowed; NULL when it
 * cannot be built (ENOMEM, or a document that does not parse). */
const char *nx_api_openapi_document(int version, size_t *len);

#endif
