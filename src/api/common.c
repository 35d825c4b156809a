/*
 * common.c - tenant transaction, pagination and parameter helpers for the
 * API handlers.
 *
 * Cursors are "<epoch microseconds>_<uuid>": the (created_at, id) position
 * of the last row served. Clients treat them as opaque.
 */
#include "core/nx.h"
#include "api/api.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <string.h>

nx_tx_t *nx_api_tx(nx_req_t *req, nx_err_t *err)
{
    nx_db_t *db = nx_req_db(req, err);
    if (!db)
        return NULL;
    int need = NX_TX_NONE;
    if (req->route_entry && (req->route_entry->flags & NX_ROUTE_ADMIN))
        need = NX_TX_ADMIN;
    else if (req->auth.user_id[0])
        need = NX_TX_MEMBER;
    nx_tx_t *tx = nx_tx_new(db, req->arena, req->auth.org_id, req->auth.user_id[0] ? req->auth.user_id : NULL, need);
    if (!tx)
        nx_err_set(err, NX_ENOMEM, NULL);
    return tx;
}

int nx_api_page_parse(nx_req_t *req, nx_page_t *page, nx_err_t *err)
{
    page->limit = NX_PAGE_DEFAULT;
    page->after_us = NULL;
    page->after_id = NULL;
    const char *limit = nx_req_query(req, "limit");
    if (limit) {
        long long n;
        if (nx_parse_int(limit, 1, NX_PAGE_MAX, &n) != NX_OK) {
            nx_err_field(err, "limit", "must be an integer from 1 to %d", NX_PAGE_MAX);
            return NX_EVALIDATION;
        }
        page->limit = (int)n;
    }
    const char *cursor = nx_req_query(req, "cursor");
    if (cursor && *cursor) {
        const char *sep = strchr(cursor, '_');
        long long us;
        char *ts = sep ? nx_arena_strndup(req->arena, cursor, (size_t)(sep - cursor)) : NULL;
        if (!sep || !ts || nx_parse_int(ts, 0, INT64_MAX, &us) != NX_OK ||
            !nx_uuid_valid(sep + 1)) {
            nx_err_field(err, "cursor", "is not a cursor this API issued");
            return NX_EVALIDATION;
        }
        page->after_us = ts;
        page->after_id = sep + 1;
    }
    return NX_OK;
}

const char *nx_api_cursor(nx_req_t *req, const char *epoch_us, const char *id)
{
    return nx_arena_sprintf(req->arena, "%s_%s", epoch_us, id);
}

int nx_api_uuid_param(nx_req_t *req, int i, const char **out, nx_err_t *err)
{
    const char *v = nx_req_param(req, i);
    if (!v || !nx_uuid_valid(v))
        return nx_err_set(err, NX_ENOTFOUND, "No such resource.");
    *out = v;
    return NX_OK;
}
