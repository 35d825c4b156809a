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
    /* no row although the user check passed: a race with a delete */
    return nx_api_send_row(req, &st_me, params, NX_EUNAUTHORIZED,
                           "The user is no longer a member of this organisation.", err);
}
