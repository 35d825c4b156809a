/*
 * api.h - helpers shared by the API handlers.
 *
 * Every authenticated handler touches the database through exactly one
 * tenant transaction from nx_api_tx: it carries the caller's organisation
 * and the user/role check, so the check costs no extra round trip.
 */
#ifndef NX_API_API_H
#define NX_API_API_H

#include "core/nx.h"
#include "http/http.h"

#define NX_PAGE_DEFAULT 20
#define NX_PAGE_MAX 100

/* The request's tenant transaction: the caller's organisation, and the
 * user check at the route's level (admin routes need the admin role now,
 * not just in the token). Recorded as req->tx, so that an error answered
 * later knows whether the caller was checked. NULL with err set on
 * failure. */
nx_tx_t *nx_api_tx(nx_req_t *req, nx_err_t *err);

/* The caller check (the server's check_caller option): NX_OK at once when
 * the request's tenant transaction has checked the caller, else a tenant
 * transaction with no statement of its own. */
int nx_api_check_caller(nx_req_t *req, nx_err_t *err);

/* A page request: ?limit= (1-100, default 20) and ?cursor= (opaque). */
typedef struct nx_page {
    int limit;
    const char *after_us; /* cursor position: created_at in epoch microseconds */
    const char *after_id; /* ... and the row id breaking ties; NULL: first page */
} nx_page_t;

/* Parses ?limit and ?cursor. NX_EVALIDATION (field "limit"/"cursor"). */
int nx_api_page_parse(nx_req_t *req, nx_page_t *page, nx_err_t *err);
/* Renders a cursor for the row at (epoch microseconds, id); arena string. */
const char *nx_api_cursor(nx_req_t *req, const char *epoch_us, const char *id);

/* Runs one statement in the request's tenant transaction; *out is its
 * result (arena). NX_EUNAUTHORIZED/NX_EFORBIDDEN from the user check, or
 * the statement's mapped error. */
int nx_api_tx_one(nx_req_t *req, const nx_stmt_t *st, const char *const *params,
                  nx_res_t **out, nx_err_t *err);

/* Sends {"items": [...], "next_cursor": ...} with status 200 from rows of
 * (item json, created_at epoch microseconds, id) fetched with LIMIT
 * page->limit + 1: the extra row only says that another page exists. */
int nx_api_send_page(nx_req_t *req, nx_res_t *r, const nx_page_t *page, nx_err_t *err);

/* A list route: parses ?limit and ?cursor, runs st with $1 the caller's
 * organisation, $2/$3 the cursor position, $4 limit + 1 and $5 extra (when
 * st takes it), and sends the page. */
int nx_api_list(nx_req_t *req, const nx_stmt_t *st, const char *extra, nx_err_t *err);

/* A read of one resource: runs st with $1 the caller's organisation and $2
 * the {id} path parameter, and sends its one JSON row, or a 404 with
 * `missing` as detail (another organisation's rows are invisible). */
int nx_api_get_by_id(nx_req_t *req, const nx_stmt_t *st, const char *missing, nx_err_t *err);

/* A path parameter that must be a UUID; anything else is NX_ENOTFOUND
 * (answered after the caller check: conn.c asks before sending it). */
int nx_api_uuid_param(nx_req_t *req, int i, const char **out, nx_err_t *err);

#endif
