/*
 * me.c - GET /api/v1/me: the caller and their organisation, as PostgreSQL
 * renders them (nx_user_json / nx_org_json), passed through untouched.
 */
#include "core/nx.h"
#include "api/accounts.h"
#include "api/api.h"
#include "core/err.h"
#include "db/db.h"

static const nx_stmt_t st_me = {
    "api_me_get",
    "SELECT json_build_object('user', nx_user_json(u), 'organisation', nx_org_json(o))::text "
    "FROM users u JOIN organisations o ON o.id = u.organisation_id "
    "WHERE u.organisation_id = $1 AND o.id = $1 AND u.id = $2",
    2,
};

int nx_api_me_get(nx_req_t *req, nx_err_t *err)
{
    const char *params[] = {req->auth.org_id, req->auth.user_id};
    nx_res_t *r;
    int rc = nx_api_tx_one(req, &st_me, params, &r, err);
    if (rc != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1) /* the user check passed, so this is a race with a delete */
        return nx_err_set(err, NX_EUNAUTHORIZED, "The user is no longer a member of this organisation.");
    return nx_resp_json(req, 200, nx_res_get(r, 0, 0), (size_t)nx_res_len(r, 0, 0));
}
