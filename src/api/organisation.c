/*
 * organisation.c - the caller's organisation: GET (members) and PATCH
 * (admins: name, auto_join). Row-level security confines both statements
 * to the caller's organisation; the explicit filter is defence in depth.
 */
#include "core/nx.h"
#include "api/accounts.h"
#include "api/api.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <jansson.h>
#include <string.h>

static const nx_stmt_t st_get = {
    "api_organisation_get",
    "SELECT nx_org_json(o)::text, "
    "(SELECT count(*) FROM users u WHERE u.organisation_id = $1)::text, "
    "coalesce((SELECT c.balance FROM org_credits c WHERE c.organisation_id = $1), 0)::text, "
    "w.used, w.reset_ms "
    "FROM organisations o, nx_rate_use($1::uuid) w WHERE o.id = $1",
    1,
};

static const nx_stmt_t st_patch = {
    "api_organisation_patch",
    "UPDATE organisations o SET name = coalesce($2::text, o.name), "
    "auto_join = coalesce($3::boolean, o.auto_join) "
    "WHERE o.id = $1 RETURNING nx_org_json(o)::text",
    3,
};

/* For an admin, the organisation's rate-limit window as it stands:
 * ', "rate_limit" : {...}' (or null with limits off); "" for a member. */
static const char *rate_limit(nx_req_t *req, nx_res_t *r)
{
    const char *role = nx_tx_role(req->tx);
    if (!role || strcmp(role, "admin") != 0)
        return "";
    int limit = nx_cfg->rate_limit_requests;
    if (limit <= 0)
        return ", \"rate_limit\" : null";
    long long used = 0, reset_ms = 0;
    nx_parse_int(nx_res_get(r, 0, 3), 0, 1LL << 40, &used);
    if (!nx_res_null(r, 0, 4))
        nx_parse_int(nx_res_get(r, 0, 4), 0, 1LL << 40, &reset_ms);
    /* what this process reserved and has not used is still to be had */
    long long left = limit - used + nx_api_ratelimit_unused(req->auth.org_id);
    return nx_arena_sprintf(req->arena, ", \"rate_limit\" : {\"limit\" : %d, \"window\" : %d, "
                            "\"remaining\" : %lld, \"reset\" : %lld}", limit,
                            nx_cfg->rate_limit_window, left > 0 ? left : 0,
                            (reset_ms + 999) / 1000);
}

int nx_api_organisation_get(nx_req_t *req, nx_err_t *err)
{
    const char *params[] = {req->auth.org_id};
    nx_res_t *r;
    int rc = nx_api_tx_one(req, &st_get, params, &r, err);
    if (rc != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "No such organisation.");
    /* {...org} + member_count + credit_balance: splice before the last brace */
    const char *org = nx_res_get(r, 0, 0);
    int n = nx_res_len(r, 0, 0);
    while (n > 0 && org[n - 1] != '}')
        n--;
    const char *limit = rate_limit(req, r);
    char *body = n > 1 && limit ? nx_arena_sprintf(req->arena, "%.*s, \"member_count\" : %s, "
                                                                "\"credit_balance\" : %s%s}",
                                                    n - 1, org, nx_res_get(r, 0, 1),
                                                    nx_res_get(r, 0, 2), limit)
                                : NULL;
    if (!body)
        return nx_err_set(err, n > 1 ? NX_ENOMEM : NX_EINTERNAL, NULL);
    return nx_resp_json(req, 200, body, strlen(body));
}

/* Checks the PATCH body; fills name (trimmed) / auto_join ("true"/"false")
 * or NULL. */
static int parse_patch(nx_req_t *req, const char **name, const char **auto_join, nx_err_t *err)
{
    *name = *auto_join = NULL;
    const char *key;
    json_t *v;
    json_object_foreach(req->json, key, v) {
        if (strcmp(key, "name") == 0) {
            size_t len = 0;
            const char *s = json_is_string(v) ? nx_name_check(json_string_value(v),
                                                              json_string_length(v), &len)
                                              : NULL;
            if (!json_is_string(v))
                nx_err_field(err, "name", "must be a string");
            else if (!s)
                nx_err_field(err, "name", "must be 1 to %d characters, not all blank",
                             NX_NAME_MAX);
            else if (!(*name = nx_arena_strndup(req->arena, s, len)))
                return nx_err_set(err, NX_ENOMEM, NULL);
        } else if (strcmp(key, "auto_join") == 0) {
            if (!json_is_boolean(v))
                nx_err_field(err, "auto_join", "must be true or false");
            else
                *auto_join = json_is_true(v) ? "true" : "false";
        } else {
            nx_err_field(err, key, "is not a field that can be changed");
        }
    }
    return err->code ? err->code : NX_OK;
}

int nx_api_organisation_patch(nx_req_t *req, nx_err_t *err)
{
    if (!json_is_object(req->json))
        return nx_err_set(err, NX_EINVAL, "The body must be a JSON object.");
    const char *name, *auto_join;
    int rc = parse_patch(req, &name, &auto_join, err);
    if (rc != NX_OK)
        return rc;
    const char *params[] = {req->auth.org_id, name, auto_join};
    return nx_api_send_row(req, &st_patch, params, NX_ENOTFOUND, "No such organisation.", err);
}
