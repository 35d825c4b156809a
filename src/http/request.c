/*
 * request.c - what handlers read from a request: headers, query arguments,
 * cookies, path parameters, and the serving thread's database connection.
 *
 * Values are libmicrohttpd's own copies, valid for the request's lifetime
 * (borrowed). Header names are matched case-insensitively; a repeated query
 * key or header yields its first value.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "db/db.h"

#include <microhttpd.h>

static struct MHD_Connection *mhd_of(nx_req_t *req)
{
    return nx_http_conn_of(req)->mhd;
}

const char *nx_req_header(nx_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(mhd_of(req), MHD_HEADER_KIND, name);
}

const char *nx_req_query(nx_req_t *req, const char *key)
{
    return MHD_lookup_connection_value(mhd_of(req), MHD_GET_ARGUMENT_KIND, key);
}

const char *nx_req_cookie(nx_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(mhd_of(req), MHD_COOKIE_KIND, name);
}

const char *nx_req_param(nx_req_t *req, int i)
{
    return i >= 0 && i < req->nparams ? req->params[i] : NULL;
}

nx_db_t *nx_req_db(nx_req_t *req, nx_err_t *err)
{
    NX_UNUSED(req);
    return nx_db_thread(err);
}
