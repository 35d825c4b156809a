/*
 * http_int.h - private to src/http/: per-request state, the router, the
 * middleware steps and the response being built. Nothing outside src/http
 * includes this (handlers see http.h; the server's owner sees server.h).
 */
#ifndef NX_HTTP_HTTP_INT_H
#define NX_HTTP_HTTP_INT_H

#include "core/nx.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/http.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>

/* Request arena chunk: most requests fit their first chunk. */
#define NX_HTTP_ARENA_CHUNK 8192
/* Longest client X-Request-ID we keep. */
#define NX_REQUEST_ID_MAX 128

/* One response header added by a handler or middleware (arena list). */
struct nx_resp_hdr {
    struct nx_resp_hdr *next;
    const char *name;
    const char *value;
};

/* The response a request will send; built by nx_resp_* and problem.c,
 * turned into an MHD response by conn.c. */
struct nx_resp {
    int status;                  /* 0 while unset */
    const char *content_type;
    const char *body;            /* arena or static bytes */
    size_t len;
    struct nx_resp_hdr *headers; /* newest first */
};

enum nx_conn_state {
    NX_CONN_HEADERS = 0, /* first access-handler call done */
    NX_CONN_BODY,        /* receiving the body */
    NX_CONN_OFFLOADED,   /* suspended, a helper thread runs the work */
    NX_CONN_READY,       /* response set, not yet queued */
    NX_CONN_QUEUED,      /* handed to MHD */
};

/* Per-request state, owned by conn.c; lives on its own arena. */
typedef struct nx_http_conn {
    nx_req_t req;
    struct nx_resp resp;
    void *mhd;               /* struct MHD_Connection * */
    int state;
    int64_t start_us;
    bool has_body;           /* the client announced a body */
    nx_err_t err;            /* a pending error (code != 0) */
    nx_buf_t body;           /* body being kept (NX_ROUTE_JSON routes only) */
    bool body_init;
    size_t received;         /* body bytes read so far, kept or dropped */
    nx_work_cb work;         /* nx_req_offload */
    void *work_ud;
} nx_http_conn_t;

/* ---- router.c ------------------------------------------------------------ */

/* Installs the route table (borrowed, static). NX_EINVAL for a bad pattern. */
int nx_router_init(const nx_route_t *routes, size_t n, nx_err_t *err);
/*
 * Finds the route for method and path. On a match, fills req->route_entry,
 * req->route and req->params (copied to req->arena) and returns NX_OK.
 * Else NX_ENOTFOUND, or NX_EMETHOD with err->allow set to the methods the
 * path does accept.
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
/* Suspends hc's connection and queues it for an offload thread, which runs
 * hc->work and resumes it; false (nothing done) when the queue is full. */
bool nx_offload_submit(nx_http_conn_t *hc);
/* Joins the offload threads once their queue is empty. Idempotent. */
void nx_offload_stop(void);

/* ---- mw/access_log.c ----------------------------------------------------- */

/* Writes the request's log line. termination: NULL when completed normally. */
void nx_mw_access_log(const nx_req_t *req, int status, int64_t duration_us,
                      const char *termination);

/* ---- mw/auth hook (server.c) --------------------------------------------- */

/* Runs the registered auth hook; NX_EUNAUTHORIZED when none is registered. */
int nx_http_run_auth(nx_req_t *req, nx_err_t *err);
/* The server's check_caller option (NX_OK when none is set). */
int nx_http_check_caller(nx_req_t *req, nx_err_t *err);

/* ---- problem.c ----------------------------------------------------------- */

/* Sets req's response to the problem details for code/err (err may be NULL).
 * Logs 5xx with err->log_detail. Falls back to a static body on ENOMEM. */
void nx_problem_render(nx_req_t *req, int code, const nx_err_t *err);

/* ---- response.c / request.c ---------------------------------------------- */

static inline nx_http_conn_t *nx_http_conn_of(nx_req_t *req)
{
    return (nx_http_conn_t *)req->conn;
}

/* True once shutdown began: responses then carry Connection: close. */
bool nx_http_draining(void);

/* ---- conn.c: the MHD callbacks and counters server.c waits on ------------ */

enum MHD_Result nx_http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload, size_t *upload_size, void **con_cls);
void nx_http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
extern atomic_int nx_http_inflight_count; /* requests started, not completed */
extern atomic_int nx_http_offload_count;  /* offloaded work still running */

#endif
