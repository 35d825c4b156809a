/*
 * request.c - what handlers read from a request: headers, query arguments,
 * cookies and path parameters.
 *
 * Values come from the request's source (libmicrohttpd's own copies, or the
 * test harness's), valid for the request's lifetime (borrowed). Header names are matched case-insensitively; a repeated query
 * key or header yields its first value.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/util.h"

static const char *lookup(nx_req_t *req, int kind, const char *name)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    return hc->src && hc->src->lookup ? hc->src->lookup(hc->src_ctx, kind, name) : NULL;
}

const char *nx_req_header(nx_req_t *req, const char *name)
{
    return lookup(req, NX_REQ_HEADER, name);
}

const char *nx_req_query(nx_req_t *req, const char *key)
{
    return lookup(req, NX_REQ_QUERY, key);
}

const char *nx_req_cookie(nx_req_t *req, const char *name)
{
    return lookup(req, NX_REQ_COOKIE, name);
}

const char *nx_req_param(nx_req_t *req, int i)
{
    return i >= 0 && i < req->nparams ? req->params[i] : NULL;
}

int nx_req_final_status(nx_req_t *req)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    if (hc->state == NX_CONN_QUEUED)
        return hc->resp.status;
    return hc->err.code ? nx_err_status(hc->err.code) : 499;
}

int64_t nx_req_elapsed_us(nx_req_t *req)
{
    return nx_time_mono_us() - nx_http_conn_of(req)->start_us;
}
