/*
 * loopback.h - a request through the pipeline in-process, with no socket
 * (h2o's loopback connection): the stages and handlers run exactly as
 * behind libmicrohttpd; headers, query and body come from the caller.
 */
#ifndef NX_TESTS_LOOPBACK_H
#define NX_TESTS_LOOPBACK_H

#include "core/nx.h"

#define NX_LOOPBACK_MAX_HEADERS 16

typedef struct nx_loopback_req {
    const char *method;
    const char *path;
    const char *query;   /* "a=1&b=2" or NULL */
    const char *headers[NX_LOOPBACK_MAX_HEADERS][2]; /* name, value; ends at a NULL name */
    const char *body;    /* NULL: none */
    size_t body_len;
    const char *peer;    /* the client's numeric address ("127.0.0.1", "::1"); NULL: unknown */
} nx_loopback_req_t;

typedef struct nx_loopback_resp {
    int status;
    char *body;          /* heap copy, NUL-terminated: nx_loopback_release */
    size_t len;
    char *headers[32][2]; /* heap copies, in the order they were added */
    int nheaders;
    char *content_type;
} nx_loopback_resp_t;

/* Runs one request through the installed pipeline (nx_pipeline_init) and
 * routes (nx_router_init), DONE stages included. */
void nx_loopback_run(const nx_loopback_req_t *in, nx_loopback_resp_t *out);
/* A response header's value, or NULL. */
const char *nx_loopback_header(const nx_loopback_resp_t *r, const char *name);
void nx_loopback_release(nx_loopback_resp_t *r);

#endif
