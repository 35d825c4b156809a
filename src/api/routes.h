/*
 * routes.h - the route table and the handlers of the always-present routes
 * (health, OpenAPI document, docs UI). Other modules declare their handlers
 * in their own headers and add rows to api/routes.c.
 *
 * Every route in the table is documented in src/api/openapi.json;
 * tests/unit/api/test_openapi_routes.c checks both ways.
 */
#ifndef NX_API_ROUTES_H
#define NX_API_ROUTES_H

#include "core/nx.h"
#include "http/http.h"

/* The route table (static, in api/routes.c). */
extern const nx_route_t nx_api_routes[];
extern const size_t nx_api_routes_count;

/* GET /health - database round trip; 200 ok or 503 degraded. */
int nx_api_health_get(nx_req_t *req, nx_err_t *err);
/* GET /openapi.json, GET /docs, GET /docs/{asset} - embedded files. */
int nx_api_openapi_get(nx_req_t *req, nx_err_t *err);
int nx_api_docs_get(nx_req_t *req, nx_err_t *err);
int nx_api_docs_asset_get(nx_req_t *req, nx_err_t *err);

#endif
