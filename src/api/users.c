/*
 * users.c - the organisation's users: list (cursor pages, oldest first),
 * get, change role and remove (admins).
 *
 * "The last admin cannot be demoted or removed" is one statement: it locks
 * the organisation's admin rows (FOR UPDATE in a materialised CTE) before
 * counting them, so two admins demoting each other at the same moment
 * cannot both succeed - the second waits, re-reads, sees one admin and is
 * refused with 409. Another organisation's user id finds nothing under
 * row-level security and answers 404.
 */
#include "core/nx.h"
#include "api/accounts.h"
#include "api/api.h"
#include "core/arena.h"
#include "core/err.h"
#include "db/db.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The list's rows are plain columns, rendered by user_item: building each
 * row's JSON in SQL (nx_user_json) was a third of the statement's cost.
 * Columns 1 and 2 are the cursor's. */
static const nx_stmt_t st_list = {
    "api_users_list",
    "SELECT nx_ts(u.created_at), "
    "(extract(epoch FROM u.created_at) * 1000000)::bigint::text, u.id::text, "
    "u.organisation_id::text, u.email, u.name, u.role, u.avatar_url, nx_ts(u.updated_at) "
    "FROM users u WHERE u.organisation_id = $1 AND ($2::bigint IS NULL OR "
    "(u.created_at, u.id) > (timestamptz 'epoch' + ($2::bigint / 1000000) * interval '1 second' "
    "+ ($2::bigint % 1000000) * interval '1 microsecond', $3::uuid)) "
    "ORDER BY u.created_at, u.id LIMIT $4::int",
    4,
};

static const nx_stmt_t st_get = {
    "api_users_get",
    "SELECT nx_user_json(u)::text FROM users u WHERE u.organisation_id = $1 AND u.id = $2::uuid",
    2,
};

static const nx_stmt_t st_patch = {
    "api_users_patch",
    "WITH admins AS MATERIALIZED (SELECT a.id FROM users a "
    "  WHERE a.organisation_id = $1 AND a.role = 'admin' FOR UPDATE), "
    "n AS (SELECT count(*) AS n FROM admins), "
    "target AS (SELECT t.id, t.role FROM users t WHERE t.organisation_id = $1 AND t.id = $2::uuid), "
    "upd AS (UPDATE users u SET role = $3::text FROM target t, n "
    "  WHERE u.organisation_id = $1 AND u.id = t.id "
    "  AND ($3::text = 'admin' OR t.role <> 'admin' OR n.n > 1) "
    "  RETURNING nx_user_json(u)::text AS j) "
    "SELECT (SELECT count(*) FROM target)::int, (SELECT j FROM upd)",
    3,
};

static const nx_stmt_t st_delete = {
    "api_users_delete",
    "WITH admins AS MATERIALIZED (SELECT a.id FROM users a "
    "  WHERE a.organisation_id = $1 AND a.role = 'admin' FOR UPDATE), "
    "n AS (SELECT count(*) AS n FROM admins), "
    "target AS (SELECT t.id, t.role FROM users t WHERE t.organisation_id = $1 AND t.id = $2::uuid), "
    "del AS (DELETE FROM users u USING target t, n "
    "  WHERE u.organisation_id = $1 AND u.id = t.id AND (t.role <> 'admin' OR n.n > 1) "
    "  RETURNING u.id) "
    "SELECT (SELECT count(*) FROM target)::int, (SELECT count(*) FROM del)::int",
    2,
};

/* api.md's User from a st_list row, as nx_user_json renders it. */
static int user_item(nx_buf_t *b, nx_res_t *r, int row)
{
    static const char *const keys[] = {"id",   "organisation_id", "email",      "name",
                                       "role", "avatar_url",      "created_at", "updated_at"};
    static const int cols[] = {2, 3, 4, 5, 6, 7, 0, 8};
    return nx_api_json_fields(b, r, row, keys, cols, 8);
}

int nx_api_users_list(nx_req_t *req, nx_err_t *err)
{
    return nx_api_list_items(req, &st_list, user_item, err);
}

int nx_api_users_get(nx_req_t *req, nx_err_t *err)
{
    return nx_api_get_by_id(req, &st_get, "No such user.", err);
}

int nx_api_users_patch(nx_req_t *req, nx_err_t *err)
{
    const char *id;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc != NX_OK)
        return rc;
    if (!json_is_object(req->json))
        return nx_err_set(err, NX_EINVAL, "The body must be a JSON object.");
    const char *role = NULL;
    const char *key;
    json_t *v;
    json_object_foreach(req->json, key, v) {
        if (strcmp(key, "role") != 0)
            nx_err_field(err, key, "is not a field that can be changed");
        else if (!json_is_string(v) || (strcmp(json_string_value(v), "admin") != 0 &&
                                        strcmp(json_string_value(v), "member") != 0))
            nx_err_field(err, "role", "must be \"admin\" or \"member\"");
        else
            role = json_string_value(v);
    }
    if (!role && !err->code)
        nx_err_field(err, "role", "is required");
    if (err->code)
        return err->code;
    const char *params[] = {req->auth.org_id, id, role};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, &st_patch, params, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1 || strcmp(nx_res_get(r, 0, 0), "0") == 0)
        return nx_err_set(err, NX_ENOTFOUND, "No such user.");
    if (nx_res_null(r, 0, 1))
        return nx_err_set(err, NX_ECONFLICT,
                          "This is the organisation's last admin: promote another user first.");
    return nx_resp_json(req, 200, nx_res_get(r, 0, 1), (size_t)nx_res_len(r, 0, 1));
}

int nx_api_users_delete(nx_req_t *req, nx_err_t *err)
{
    const char *id;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc != NX_OK)
        return rc;
    const char *params[] = {req->auth.org_id, id};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, &st_delete, params, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1 || strcmp(nx_res_get(r, 0, 0), "0") == 0)
        return nx_err_set(err, NX_ENOTFOUND, "No such user.");
    if (strcmp(nx_res_get(r, 0, 1), "0") == 0)
        return nx_err_set(err, NX_ECONFLICT,
                          "This is the organisation's last admin: promote another user first.");
    return nx_resp_send(req, 204, NULL, NULL, 0);
}
