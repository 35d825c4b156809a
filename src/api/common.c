/*
 * common.c - pagination and parameter helpers for the API handlers.
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

nx_api_req_t *nx_api_req(nx_req_t *req)
{
    if (!req->app)
        req->app = nx_arena_calloc(req->arena, sizeof(nx_api_req_t));
    return req->app;
}

/* A page of 100 items of a few KB each stays far below this; large items
 * (job outputs) end a page early instead. */
#define PAGE_BODY_MAX (4 * 1024 * 1024)
#define PAGE_ENVELOPE 1024 /* {"items": [...], "next_cursor": "..."} around them */

/* The most bytes row i's item can take: its JSON column, or, for rows of
 * plain columns, every column escaped at worst (\u00XX) and the keys. */
static size_t item_max(nx_res_t *r, int i, nx_api_item_fn item)
{
    if (!item)
        return (size_t)nx_res_len(r, i, 0);
    size_t n = 512;
    for (int c = 0; c < nx_res_cols(r); c++)
        n += 6 * (size_t)nx_res_len(r, i, c) + 16;
    return n;
}

/* How many of the first `shown` rows fit in PAGE_BODY_MAX, and their bytes.
 * At least one: an item larger than that alone is served on its own page. */
static int rows_that_fit(nx_res_t *r, int shown, nx_api_item_fn item, size_t *bytes)
{
    size_t total = 0;
    int i;
    for (i = 0; i < shown; i++) {
        size_t len = item_max(r, i, item) + 2; /* ", " */
        if (i > 0 && total + len > PAGE_BODY_MAX - PAGE_ENVELOPE)
            break;
        total += len;
    }
    *bytes = total;
    return i;
}

static int send_page(nx_req_t *req, nx_res_t *r, const nx_page_t *page, nx_api_item_fn item,
                     nx_err_t *err)
{
    int rows = nx_res_rows(r);
    size_t bytes;
    int shown = rows_that_fit(r, rows > page->limit ? page->limit : rows, item, &bytes);
    nx_buf_t b;
    nx_buf_init(&b, req->arena, bytes + PAGE_ENVELOPE);
    int rc = nx_buf_puts(&b, "{\"items\": [");
    for (int i = 0; rc == NX_OK && i < shown; i++) {
        if (i)
            rc = nx_buf_puts(&b, ", ");
        if (rc == NX_OK)
            rc = item ? item(&b, r, i)
                      : nx_buf_append(&b, nx_res_get(r, i, 0), (size_t)nx_res_len(r, i, 0));
    }
    if (rc == NX_OK)
        rc = nx_buf_puts(&b, "], \"next_cursor\": ");
    if (rc == NX_OK && rows > shown) { /* the extra row, or rows left for size */
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

int nx_api_send_page(nx_req_t *req, nx_res_t *r, const nx_page_t *page, nx_err_t *err)
{
    return send_page(req, r, page, NULL, err);
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
        return tag ? nx_api_cursor_parse(req->arena, tag, cursor, page, err)
                   : nx_err_set(err, NX_ENOMEM, NULL);
    }
    return NX_OK;
}

int nx_api_cursor_parse(nx_arena_t *arena, const char *tag, const char *cursor, nx_page_t *page,
                        nx_err_t *err)
{
    size_t tn = strlen(tag);
    if (strncmp(cursor, tag, tn) != 0 || cursor[tn] != '_') {
        nx_err_field(err, "cursor", "is not a cursor this API issued for this list");
        return NX_EVALIDATION;
    }
    cursor += tn + 1;
    const char *sep = strchr(cursor, '_');
    long long us;
    char *ts = sep ? nx_arena_strndup(arena, cursor, (size_t)(sep - cursor)) : NULL;
    if (!sep || !ts || nx_parse_int(ts, 0, INT64_MAX, &us) != NX_OK || !nx_uuid_valid(sep + 1)) {
        nx_err_field(err, "cursor", "is not a cursor this API issued");
        return NX_EVALIDATION;
    }
    page->after_us = ts;
    page->after_id = sep + 1;
    return NX_OK;
}

const char *nx_api_cursor(nx_req_t *req, const char *epoch_us, const char *id)
{
    return nx_arena_sprintf(req->arena, "%s_%s_%s", list_tag(req), epoch_us, id);
}

static int list(nx_req_t *req, const nx_stmt_t *st, const char *const *extra, int nextra,
                nx_api_item_fn item, nx_err_t *err)
{
    nx_page_t page;
    int rc = nx_api_page_parse(req, &page, err);
    if (rc != NX_OK)
        return rc;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", page.limit + 1);
    const char *params[8] = {req->auth.org_id, page.after_us, page.after_id, lim};
    NX_ASSERT(nextra >= 0 && nextra <= 4);
    for (int i = 0; i < nextra; i++)
        params[4 + i] = extra[i];
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, st, params, &r, err)) != NX_OK)
        return rc;
    return send_page(req, r, &page, item, err);
}

int nx_api_list(nx_req_t *req, const nx_stmt_t *st, const char *const *extra, int nextra,
                nx_err_t *err)
{
    return list(req, st, extra, nextra, NULL, err);
}

int nx_api_list_items(nx_req_t *req, const nx_stmt_t *st, nx_api_item_fn item, nx_err_t *err)
{
    return list(req, st, NULL, 0, item, err);
}

int nx_api_json_fields(nx_buf_t *b, nx_res_t *r, int row, const char *const *keys,
                       const int *cols, int n)
{
    int rc = nx_buf_append(b, "{\"", 2);
    for (int k = 0; rc == NX_OK && k < n; k++) {
        if (k)
            rc = nx_buf_append(b, ", \"", 3);
        if (rc == NX_OK)
            rc = nx_buf_puts(b, keys[k]);
        if (rc == NX_OK)
            rc = nx_buf_append(b, "\" : ", 4);
        if (rc == NX_OK)
            rc = nx_res_null(r, row, cols[k]) ? nx_buf_puts(b, "null")
                                               : nx_buf_json_str(b, nx_res_get(r, row, cols[k]));
    }
    return rc ? rc : nx_buf_puts(b, "}");
}

int nx_api_get_by_id(nx_req_t *req, const nx_stmt_t *st, const char *missing, nx_err_t *err)
{
    const char *id = NULL;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc != NX_OK)
        return rc;
    const char *params[] = {req->auth.org_id, id};
    return nx_api_send_row(req, st, params, NX_ENOTFOUND, missing, err);
}

int nx_api_uuid_param(nx_req_t *req, int i, const char **out, nx_err_t *err)
{
    const char *v = nx_req_param(req, i);
    if (!v || !nx_uuid_valid(v))
        return nx_err_set(err, NX_ENOTFOUND, "No such resource.");
    *out = v;
    return NX_OK;
}
