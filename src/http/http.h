/*
 * http.h - what the rest of the program sees of an HTTP request (the HTTP
 * library itself stays inside src/http/).
 *
 * A request passes through a pipeline: a table of stages, each a name and a
 * function, declared once by the program (api/pipeline.c) and run in order
 * by http/. Routes are another table, mounted in groups under a prefix
 * (an API version). A handler is the "handler" stage's call into the
 * matched route; it returns NX_OK after setting a response with nx_resp_*,
 * or a negative NX_E* code with err filled, which the "respond" stage turns
 * into problem details. Everything a request allocates comes from
 * req->arena.
 */
#ifndef NX_HTTP_HTTP_H
#define NX_HTTP_HTTP_H

#include "core/nx.h"

#include <jansson.h>

#define NX_MAX_PATH_PARAMS 4
#define NX_BODY_MAX (1024 * 1024)

typedef int (*nx_handler_cb)(nx_req_t *req, nx_err_t *err);

enum nx_route_flags {
    NX_ROUTE_PUBLIC = 0,     /* anyone; no token and no tenant (health, docs, sign-in) */
    NX_ROUTE_AUTH = 1 << 0,  /* a valid access token; runs in the caller's tenant */
    NX_ROUTE_ADMIN = 1 << 1, /* ... and the admin role (implies AUTH) */
    NX_ROUTE_JSON = 1 << 2,  /* takes a JSON object body; other routes take none */
};

typedef struct nx_route {
    const char *method;  /* "GET", "POST", "PATCH", "DELETE" */
    const char *pattern; /* "/users/{id}", below its group's prefix */
    nx_handler_cb handler;
    int flags;
} nx_route_t;

/* Routes mounted under one prefix: "/api/v1" with version 1, or "" with
 * version 0 for the routes outside the versioned API. */
typedef struct nx_route_group {
    const char *prefix;
    int version;
    const nx_route_t *routes;
    size_t nroutes;
} nx_route_group_t;

/*
 * A stage of the request pipeline. Stages run in table order, grouped by
 * when they can run:
 *   HEADERS   once the headers are in, before any body is read (routing,
 *             authentication, limits): the first to fail ends the request;
 *   REQUEST   once the whole request is in (body, tenant, handler): skipped
 *             after a failure, likewise;
 *   RESPONSE  before the answer goes out, always, failed or not: a stage
 *             here sees the pending error in err (code 0 when none) and may
 *             replace it or add headers; the last one renders the answer;
 *   DONE      after the request ended, however it ended (sent, client gone,
 *             timeout): logs and counters. Return values are ignored.
 */
enum nx_stage_when { NX_STAGE_HEADERS = 0, NX_STAGE_REQUEST, NX_STAGE_RESPONSE, NX_STAGE_DONE };

typedef int (*nx_stage_cb)(nx_req_t *req, nx_err_t *err);

typedef struct nx_stage {
    const char *name;
    int when;        /* enum nx_stage_when */
    nx_stage_cb run;
} nx_stage_t;

/* The principal of an authenticated request (zeroed when public). */
typedef struct nx_principal {
    char user_id[37];
    char org_id[37];
    char role[8];     /* "admin" | "member" as the token claims it */
    bool via_cookie;  /* token came from the session cookie */
} nx_principal_t;

struct nx_req {
    nx_arena_t *arena;
    const char *method;
    const char *path;        /* without the query string */
    const char *route;       /* the matched pattern with its prefix, for logs */
    const char *request_id;
    const nx_route_t *route_entry;
    int api_version;         /* the matched route's group version (0: none) */
    const char *params[NX_MAX_PATH_PARAMS]; /* {id} values in pattern order */
    int nparams;
    const char *body;        /* raw body (NUL-terminated) or NULL */
    size_t body_len;
    json_t *json;            /* parsed object when NX_ROUTE_JSON; borrowed */
    nx_principal_t auth;
    nx_tx_t *tx;             /* the tenant transaction (tenant stage), or NULL */
    void *app;               /* the program's own per-request notes (api/), opaque here */
    void *conn;              /* private to src/http */
    int status;              /* response status once set */
};

/* Request accessors; results are borrowed for the request's lifetime. */
const char *nx_req_header(nx_req_t *req, const char *name);
const char *nx_req_query(nx_req_t *req, const char *key);
const char *nx_req_cookie(nx_req_t *req, const char *name);
const char *nx_req_param(nx_req_t *req, int i);

/* Responses. body is copied (or borrowed if static); content_type NULL means
 * application/json. Each returns NX_OK or NX_ENOMEM. */
int nx_resp_send(nx_req_t *req, int status, const char *content_type, const char *body,
                 size_t len);
int nx_resp_json(nx_req_t *req, int status, const char *body, size_t len);
/* Static bytes that outlive the request (embedded files). */
int nx_resp_static(nx_req_t *req, int status, const char *content_type,
                   const unsigned char *body, size_t len, const char *cache_control);
/* Adds a response header; kept whether the answer is a success or a problem. */
int nx_resp_header(nx_req_t *req, const char *name, const char *value);
/* The answer so far: its status (0 while none is set), its body and type
 * (borrowed), and the value of a header added to it (NULL when none). */
int nx_resp_status(nx_req_t *req);
const char *nx_resp_body(nx_req_t *req, size_t *len, const char **content_type);
const char *nx_resp_header_value(nx_req_t *req, const char *name);

/*
 * Runs work(req, ud) on an offload thread while the connection is suspended,
 * so a slow outbound call does not stall the pool thread's other
 * connections. The handler returns what this returns: NX_OK, after which
 * work sets the response (or returns an error code with err filled), and the
 * RESPONSE stages run once it is done; or NX_EUNAVAILABLE, with the
 * request's error set (503, Retry-After), when the offload queue is full.
 */
typedef int (*nx_work_cb)(nx_req_t *req, void *ud, nx_err_t *err);
int nx_req_offload(nx_req_t *req, nx_work_cb work, void *ud);

/* ---- stages that http/ provides (api/pipeline.c lists them) --------------- */

int nx_http_stage_request_id(nx_req_t *req, nx_err_t *err); /* X-Request-ID */
int nx_http_stage_route(nx_req_t *req, nx_err_t *err);      /* 404, 405 + Allow */
int nx_http_stage_limits(nx_req_t *req, nx_err_t *err);     /* 415, 413 by Content-Length */
int nx_http_stage_body(nx_req_t *req, nx_err_t *err);       /* JSON object: 400, 422 */
int nx_http_stage_handler(nx_req_t *req, nx_err_t *err);    /* the route's handler */
int nx_http_stage_respond(nx_req_t *req, nx_err_t *err);    /* problem details on error */
int nx_http_stage_access_log(nx_req_t *req, nx_err_t *err); /* one line per request */

#endif
