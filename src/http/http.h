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
#include "core/trace.h"

#include <jansson.h>
#include <sys/socket.h>

#define NX_MAX_PATH_PARAMS 4
#define NX_HTTP_MAX_ROUTES 160 /* compiled routes the router holds, at most */
#define NX_BODY_MAX (1024 * 1024)

typedef int (*nx_handler_cb)(nx_req_t *req, nx_err_t *err);

enum nx_route_flags {
    NX_ROUTE_PUBLIC = 0,     /* anyone; no token and no tenant (health, docs, sign-in) */
    NX_ROUTE_AUTH = 1 << 0,  /* a valid access token; runs in the caller's tenant */
    NX_ROUTE_ADMIN = 1 << 1, /* ... and the admin role (implies AUTH) */
    NX_ROUTE_JSON = 1 << 2,  /* takes a JSON object body; other routes take none */
    NX_ROUTE_UNDOCUMENTED = 1 << 3, /* for operators, not in the API's OpenAPI
                                       document (GET /metrics) */
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
    nx_trace_t trace;        /* W3C trace context: the caller's, or a new one */
    const nx_route_t *route_entry;
    int route_id;            /* the matched route's index (nx_http_route_pattern), or -1 */
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

/* How the request ended, for DONE stages: the status the client saw (what
 * was sent, else what was due, else 499 when it went away before an
 * answer was decided), and the time since its headers arrived. */
int nx_req_final_status(nx_req_t *req);
int64_t nx_req_elapsed_us(nx_req_t *req);

/* True when addr is a loopback address: 127.0.0.0/8, ::1, or an IPv4
 * loopback address mapped into IPv6 (::ffff:127.0.0.0/104). */
bool nx_http_addr_loopback(const struct sockaddr *addr, socklen_t len);
/* True when the request's connection comes from a loopback address. The
 * address is the connection's own (the socket's peer), never a header such
 * as X-Forwarded-For; false when it is unknown. */
bool nx_req_peer_loopback(nx_req_t *req);

/* The routes the router holds (nx_http_start installed them): how many, and
 * the full pattern of route i ("/api/v1/users/{id}"; NULL past the last).
 * req->route_id indexes them. Borrowed, static. */
size_t nx_http_route_count(void);
const char *nx_http_route_pattern(size_t i);

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
/* The same for a name and value that outlive the request (literals): not
 * copied. */
int nx_resp_header_static(nx_req_t *req, const char *name, const char *value);
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

int nx_http_stage_trace(nx_req_t *req, nx_err_t *err);      /* traceparent */
int nx_http_stage_request_id(nx_req_t *req, nx_err_t *err); /* X-Request-ID */
int nx_http_stage_route(nx_req_t *req, nx_err_t *err);      /* 404, 405 + Allow */
int nx_http_stage_limits(nx_req_t *req, nx_err_t *err);     /* 415, 413 by Content-Length */
int nx_http_stage_body(nx_req_t *req, nx_err_t *err);       /* JSON object: 400, 422 */
int nx_http_stage_handler(nx_req_t *req, nx_err_t *err);    /* the route's handler */
int nx_http_stage_security_headers(nx_req_t *req, nx_err_t *err); /* nosniff, no framing */
int nx_http_stage_respond(nx_req_t *req, nx_err_t *err);    /* problem details on error */
int nx_http_stage_access_log(nx_req_t *req, nx_err_t *err); /* one line per request */

#endif
