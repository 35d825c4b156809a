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
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <stdio.h>
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
    req->tx = tx;
    return tx;
}

int nx_api_check_caller(nx_req_t *req, nx_err_t *err)
{
    /* The request's own transaction ran its user check: it passed when the
     * user's role came back or a later statement was the one to fail. */
    if (req->tx && (nx_tx_role(req->tx) || nx_tx_failed(req->tx) >= 0))
        return NX_OK;
    nx_tx_t *tx = nx_api_tx(req, err);
    if (!tx)
        return err->code ? err->code : nx_err_set(err, NX_ENOMEM, NULL);
    return nx_tx_run(tx, err);
}

int nx_api_tx_one(nx_req_t *req, const nx_stmt_t *st, const char *const *params,
                  nx_res_t **out, nx_err_t *err)
{
    nx_tx_t *tx = nx_api_tx(req, err);
    if (!tx)
        return err->code ? err->code : nx_err_set(err, NX_ENOMEM, NULL);
    int idx = nx_tx_add(tx, st, params);
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = nx_tx_run(tx, err);
    if (rc != NX_OK)
        return rc;
    *out = nx_tx_res(tx, idx);
    return NX_OK;
}

/* A page of 100 items of a few KB each stays far below this. */
#define PAGE_BODY_MAX (4 * 1024 * 1024)

int nx_api_send_page(nx_req_t *req, nx_res_t *r, const nx_page_t *page, nx_err_t *err)
{
    int rows = nx_res_rows(r);
    int shown = rows > page->limit ? page->limit : rows;
    nx_buf_t b;
    nx_buf_init(&b, req->arena, PAGE_BODY_MAX);
    int rc = nx_buf_puts(&b, "{\"items\": [");
    for (int i = 0; rc == NX_OK && i < shown; i++) {
        if (i)
            rc = nx_buf_puts(&b, ", ");
        if (rc == NX_OK)
            rc = nx_buf_append(&b, nx_res_get(r, i, 0), (size_t)nx_res_len(r, i, 0));
    }
    if (rc == NX_OK)
        rc = nx_buf_puts(&b, "], \"next_cursor\": ");
    if (rc == NX_OK && rows > page->limit) {
        const char *cur =
            nx_api_cursor(req, nx_res_get(r, shown - 1, 1), nx_res_get(r, shown - 1, 2));
        rc = cur ? nx_buf_json_str(&b, cur) : NX_ENOMEM;
    } else if (rc == NX_OK) {
        rc = nx_buf_puts(&b, "null");
    }
    if (rc == NX_OK)
        rc = nx_buf_puts(&b, "}");
    if (rc != NX_OK)
        return nx_err_set(err, rc == NX_ETOOBIG ? NX_EINTERNAL : NX_ENOMEM, NULL);
    return nx_resp_json(req, 200, b.data, b.len);
}

/* A cursor names the list it came from (a hash of the route pattern), so a
 * users cursor handed to /jobs is refused rather than read as a position
 * in another table. */
static const char *list_tag(nx_req_t *req)
{
    uint64_t h = nx_hash_str(req->route ? req->route : "");
    return nx_arena_sprintf(req->arena, "%08x", (unsigned)(h & 0xffffffffu));
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
        const char *tag = list_tag(req);
        size_t tn = strlen(tag);
        if (strncmp(cursor, tag, tn) != 0 || cursor[tn] != '_') {
            nx_err_field(err, "cursor", "is not a cursor this API issued for this list");
            return NX_EVALIDATION;
        }
        cursor += tn + 1;
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
    return nx_arena_sprintf(req->arena, "%s_%s_%s", list_tag(req), epoch_us, id);
}

int nx_api_list(nx_req_t *req, const nx_stmt_t *st, const char *extra, nx_err_t *err)
{
    nx_page_t page;
    int rc = nx_api_page_parse(req, &page, err);
    if (rc != NX_OK)
        return rc;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", page.limit + 1);
    const char *params[] = {req->auth.org_id, page.after_us, page.after_id, lim, extra};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, st, params, &r, err)) != NX_OK)
        return rc;
    return nx_api_send_page(req, r, &page, err);
}

int nx_api_get_by_id(nx_req_t *req, const nx_stmt_t *st, const char *missing, nx_err_t *err)
{
    const char *id = NULL;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc != NX_OK)
        return rc;
    const char *params[] = {req->auth.org_id, id};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, st, params, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "%s", missing);
    return nx_resp_json(req, 200, nx_res_get(r, 0, 0), (size_t)nx_res_len(r, 0, 0));
}

int nx_api_uuid_param(nx_req_t *req, int i, const char **out, nx_err_t *err)
{
    const char *v = nx_req_param(req, i);
    if (!v || !nx_uuid_valid(v))
        return nx_err_set(err, NX_ENOTFOUND, "No such resource.");
    *out = v;
    return NX_OK;
}
