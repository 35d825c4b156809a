/*
 * http_int.h - private to src/http/: per-request state, the router, the
 * pipeline runner and the response being built. Nothing outside src/http
 * includes this (handlers and stages see http.h; the server's owner sees
 * server.h), except the in-process test harness (tests/harness/), which
 * drives the pipeline without a socket.
 *
 * No libmicrohttpd type appears here: the library is reached only through
 * conn.c (the adapter) and server.c, so the pipeline runs the same behind
 * MHD and in the harness.
 */
#ifndef NX_HTTP_HTTP_INT_H
#define NX_HTTP_HTTP_INT_H

#include "core/nx.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/http.h"

#include <jansson.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* Request arena chunk: most requests fit their first chunk. */
#define NX_HTTP_ARENA_CHUNK 8192
/* Longest client X-Request-ID we keep. */
#define NX_REQUEST_ID_MAX 128

/* One response header added by a handler or stage (arena list). */
struct nx_resp_hdr {
    struct nx_resp_hdr *next;
    const char *name;
    const char *value;
};

/* The response a request will send; built by nx_resp_* and problem.c,
 * turned into a library response by conn.c (or read by the harness). */
struct nx_resp {
    int status;                  /* 0 while unset */
    const char *content_type;
    const char *body;            /* arena or static bytes */
    size_t len;
    struct nx_resp_hdr *headers; /* newest first */
};

/* Where a request's headers, query arguments, cookies and peer address come
 * from, and how its connection is parked while offloaded work runs:
 * libmicrohttpd (conn.c) or the test harness. */
enum nx_req_kind { NX_REQ_HEADER = 0, NX_REQ_QUERY, NX_REQ_COOKIE };

typedef struct nx_http_source {
    const char *(*lookup)(void *ctx, int kind, const char *name);
    void (*suspend)(void *ctx); /* before offloaded work starts */
    void (*resume)(void *ctx);  /* after it is done (from the helper thread) */
    /* the connection's peer address into *out; false when unknown */
    bool (*peer)(void *ctx, struct sockaddr_storage *out, socklen_t *len);
} nx_http_source_t;

enum nx_conn_state {
    NX_CONN_HEADERS = 0, /* headers staged */
    NX_CONN_BODY,        /* receiving the body */
    NX_CONN_OFFLOADED,   /* suspended, a helper thread runs the work */
    NX_CONN_READY,       /* the work is done: the RESPONSE stages may run */
    NX_CONN_QUEUED,      /* handed to the library */
};

/* Per-request state, owned by conn.c (or the harness); lives on its arena. */
typedef struct nx_http_conn {
    nx_req_t req;
    struct nx_resp resp;
    const nx_http_source_t *src;
    void *src_ctx;
    int state;
    size_t next_stage;       /* the pipeline's position */
    bool responded;          /* the RESPONSE stages ran */
    int64_t start_us;
    bool has_body;           /* the client announced a body */
    long long content_length; /* as announced; -1 when chunked or none */
    size_t received;         /* body bytes taken so far */
    bool half_closed;        /* the client shut its sending side mid-request */
    nx_err_t err;            /* the pending error (code != 0) */
    nx_buf_t body;           /* body being received (bounded by NX_BODY_MAX) */
    bool body_init;
    size_t dropped;          /* body bytes read and not kept */
    nx_work_cb work;         /* nx_req_offload */
    void *work_ud;
    const char *termination; /* how it ended, for DONE stages: NULL when sent */
} nx_http_conn_t;

static inline nx_http_conn_t *nx_http_conn_of(nx_req_t *req)
{
    return (nx_http_conn_t *)req->conn;
}

/* ---- pipeline.c ------------------------------------------------------------ */

/* Installs the stage table (borrowed, static). NX_EINVAL when the stages are
 * out of order (HEADERS, REQUEST, RESPONSE, DONE) or one has no function. */
int nx_pipeline_init(const nx_stage_t *stages, size_t n, nx_err_t *err);
/* A new request on its own arena: method and path are copied. NULL on ENOMEM. */
nx_http_conn_t *nx_pipeline_begin(const char *method, const char *path,
                                  const nx_http_source_t *src, void *src_ctx);
/* Runs the stages of one kind, from where the request stands: HEADERS and
 * REQUEST stop at the first failure (and REQUEST after a stage offloads);
 * RESPONSE stages run once; DONE stages run once and free nothing. */
void nx_pipeline_run(nx_http_conn_t *hc, int when);
/* Frees the request's arena (and everything registered on it). */
void nx_pipeline_end(nx_http_conn_t *hc);
/* Takes n more bytes of the body: kept (up to NX_BODY_MAX) when the route
 * takes a body (NX_ROUTE_JSON) and nothing has failed, otherwise read and
 * dropped without being kept. A body past NX_BODY_MAX fails the request
 * with 413. False once so much was dropped that the connection should be
 * cut rather than read on. */
bool nx_pipeline_take_body(nx_http_conn_t *hc, const char *data, size_t n);

/* ---- router.c ------------------------------------------------------------ */

/* Installs the route groups (borrowed, static). NX_EINVAL for a bad pattern. */
int nx_router_init(const nx_route_group_t *groups, size_t ngroups, nx_err_t *err);
/*
 * Finds the route for method and path. On a match, fills req->route_entry,
 * req->route (the full pattern), req->api_version and req->params (copied
 * to req->arena) and returns NX_OK. Else NX_ENOTFOUND, or NX_EMETHOD with
 * err->allow set to the methods the path does accept.
 */
int nx_router_match(nx_req_t *req, const char *method, const char *path, nx_err_t *err);

/* ---- mw/request_id.c ----------------------------------------------------- */

/* True when s is a request id we echo: 1..128 visible ASCII (0x21-0x7e). */
bool nx_mw_request_id_sane(const char *s);
/* The client's id when sane, else a new UUID; arena-owned (NULL: ENOMEM). */
const char *nx_mw_request_id(nx_arena_t *arena, const char *client_id);

/* ---- mw/limits.c --------------------------------------------------------- */

/* NX_OK when content_type is application/json (parameters allowed, charset
 * utf-8 only), else NX_EMEDIATYPE. */
int nx_mw_check_content_type(const char *content_type, nx_err_t *err);
/* NX_ETOOBIG when a declared Content-Length is over NX_BODY_MAX. */
int nx_mw_check_content_length(const char *content_length, nx_err_t *err);
/* Appends a received chunk to body (ceiling NX_BODY_MAX): NX_ETOOBIG past it. */
int nx_mw_body_append(nx_buf_t *body, const char *data, size_t n, nx_err_t *err);
/* Sets the 413 of a body past NX_BODY_MAX; returns NX_ETOOBIG. */
int nx_mw_body_too_big(nx_err_t *err);
/*
 * Parses a request body that must be a JSON object: NX_EINVAL for an empty
 * body, invalid UTF-8, malformed JSON, duplicate keys or a non-object. The
 * value is released with arena (*out borrowed).
 */
int nx_mw_parse_json_object(nx_arena_t *arena, const char *body, size_t len, json_t **out,
                            nx_err_t *err);

/* ---- offload.c ------------------------------------------------------------ */

/* Requests waiting for an offload thread, per thread, before more are
 * answered 503; and that answer's Retry-After (seconds). */
#define NX_OFFLOAD_QUEUE_PER_THREAD 4
#define NX_OFFLOAD_RETRY_AFTER 1

/* Starts the offload threads. NX_ENOMEM / NX_EUNAVAILABLE. */
int nx_offload_start(int threads, nx_err_t *err);
/* Joins the offload threads once their queue is empty. Idempotent. */
void nx_offload_stop(void);
extern atomic_int nx_http_offload_count; /* offloaded work still running */

/* ---- problem.c ----------------------------------------------------------- */

/* Sets req's response to the problem details for code/err (err may be NULL),
 * keeping the headers already added. Logs 5xx with err->log_detail. Falls
 * back to a static body on ENOMEM. */
void nx_problem_render(nx_req_t *req, int code, const nx_err_t *err);

/* ---- server.c ------------------------------------------------------------ */

/* True once shutdown began: responses then carry Connection: close. */
bool nx_http_draining(void);

#endif
