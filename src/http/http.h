/*
 * http.h - what handlers see of an HTTP request (the HTTP library itself
 * stays inside src/http/).
 *
 * A handler returns NX_OK after setting a response with nx_resp_*, or a
 * negative NX_E* code with err filled; http/problem.c then renders the
 * problem details. Everything a handler allocates comes from req->arena.
 */
#ifndef NX_HTTP_HTTP_H
#define NX_HTTP_HTTP_H

#include "core/nx.h"

#include <jansson.h>

#define NX_MAX_PATH_PARAMS 4
#define NX_BODY_MAX (1024 * 1024)

typedef int (*nx_handler_cb)(nx_req_t *req, nx_err_t *err);

enum nx_route_flags {
    NX_ROUTE_PUBLIC = 0,
    NX_ROUTE_AUTH = 1 << 0,  /* a valid access token (member or admin) */
    NX_ROUTE_ADMIN = 1 << 1, /* ... and the admin role (implies AUTH) */
    NX_ROUTE_JSON = 1 << 2,  /* expects a JSON object body */
};

typedef struct nx_route {
    const char *method;  /* "GET", "POST", "PATCH", "DELETE" */
    const char *pattern; /* "/api/v1/users/{id}" */
    nx_handler_cb handler;
    int flags;
} nx_route_t;

/* The principal of an authenticated request (zeroed when public). */
typedef struct nx_principal {
    char user_id[37];
    char org_id[37];
    char role[8];     /* "admin" | "member" as the token claims it */
    bool via_cookie;  /* token came from the nexus_session cookie */
} nx_principal_t;

struct nx_req {
    nx_arena_t *arena;
    const char *method;
    const char *path;        /* without the query string */
    const char *route;       /* the matched pattern, for logs */
    const char *request_id;
    const nx_route_t *route_entry;
    const char *params[NX_MAX_PATH_PARAMS]; /* {id} values in pattern order */
    int nparams;
    const char *body;        /* raw body (NUL-terminated) or NULL */
    size_t body_len;
    json_t *json;            /* parsed object when NX_ROUTE_JSON; borrowed */
    nx_principal_t auth;
    nx_tx_t *tx;             /* the tenant transaction, once api/common.c made
                                one: it carries the caller check */
    void *conn;              /* private to src/http */
    int status;              /* response status once set */
};

/* Request accessors; results are borrowed for the request's lifetime. */
const char *nx_req_header(nx_req_t *req, const char *name);
const char *nx_req_query(nx_req_t *req, const char *key);
const char *nx_req_cookie(nx_req_t *req, const char *name);
const char *nx_req_param(nx_req_t *req, int i);

/* The database connection of the serving thread (opened lazily). */
nx_db_t *nx_req_db(nx_req_t *req, nx_err_t *err);

/* Responses. body is copied (or borrowed if static); content_type NULL means
 * application/json. Each returns NX_OK or NX_ENOMEM. */
int nx_resp_send(nx_req_t *req, int status, const char *content_type, const char *body,
                 size_t len);
int nx_resp_json(nx_req_t *req, int status, const char *body, size_t len);
/* Serialises a jansson value (reference stolen). */
int nx_resp_jansson(nx_req_t *req, int status, json_t *value);
/* Static bytes that outlive the request (embedded files). */
int nx_resp_static(nx_req_t *req, int status, const char *content_type,
                   const unsigned char *body, size_t len, const char *cache_control);
int nx_resp_header(nx_req_t *req, const char *name, const char *value);

/*
 * Runs work(req, ud) on an offload thread while the connection is suspended,
 * so a slow outbound call does not stall the pool thread's other
 * connections. The handler returns what this returns: NX_OK, after which
 * work sets the response (or returns an error code with err filled,
 * rendered as a problem); or NX_EUNAVAILABLE, with the request's error set
 * (503, Retry-After), when the offload queue is full.
 */
typedef int (*nx_work_cb)(nx_req_t *req, void *ud, nx_err_t *err);
int nx_req_offload(nx_req_t *req, nx_work_cb work, void *ud);

/*
 * Authentication of NX_ROUTE_AUTH / NX_ROUTE_ADMIN routes. The auth module
 * registers its function (e.g. nx_auth_request) once at start-up, before
 * nx_http_start; it runs after routing and before the body is read, fills
 * req->auth, and returns NX_OK or NX_EUNAUTHORIZED / NX_EFORBIDDEN with err
 * set. While none is registered, every such route answers 401.
 */
typedef int (*nx_auth_hook_cb)(nx_req_t *req, nx_err_t *err);
void nx_http_set_auth_hook(nx_auth_hook_cb fn);

#endif
