/*
 * tenant.c - the tenant stage and the caller stage of the request pipeline.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * The tenant stage opens the request's tenant transaction (db/tx.c) for
 * every route that runs in a tenant (NX_ROUTE_AUTH / NX_ROUTE_ADMIN; public
 * routes say so in the route table and get none): the caller's
 * organisation, and the user check at the route's level, queued - no I/O
 * yet. The handler adds its statements to req->tx and runs it, so set-up,
 * check and statements travel as one pipeline in one round trip.
 *
 * The caller stage keeps "who may call is answered before what they sent":
 * when an authenticated request is about to be refused with any other 4xx -
 * for its body (400, 413, 415, 422), a path id that cannot exist (404), its
 * query (422) - before its transaction ever ran the user check, the check runs alone, so
 * a removed user gets 401 and a member on an admin route 403 whatever they
 * sent. A round trip on that error path only; good requests are checked
 * inside their own transaction.
 */
#include "core/nx.h"
#include "api/api.h"
#include "core/err.h"
#include "db/db.h"

static bool tenant_route(const nx_req_t *req)
{
    return req->route_entry && (req->route_entry->flags & (NX_ROUTE_AUTH | NX_ROUTE_ADMIN));
}

nx_tx_t *nx_api_tenant_tx(nx_req_t *req, nx_err_t *err)
{
    nx_db_t *db = nx_db_thread(err);
    if (!db)
        return NULL;
    int need = (req->route_entry->flags & NX_ROUTE_ADMIN) ? NX_TX_ADMIN : NX_TX_MEMBER;
    nx_tx_t *tx = nx_tx_new(db, req->arena, req->auth.org_id, req->auth.user_id, need);
    if (!tx)
        nx_err_set(err, NX_ENOMEM, NULL);
    return tx;
}

int nx_api_stage_tenant(nx_req_t *req, nx_err_t *err)
{
    if (!tenant_route(req))
        return NX_OK;
    req->tx = nx_api_tenant_tx(req, err);
    if (!req->tx)
        return err->code;
    /* a rate-limit reservation rides the request's own round trip */
    if (nx_api_ratelimit_queue(req, req->tx) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

/* Refusals for what the client sent - any 4xx but the caller's own 401 and
 * 403 - which the caller's standing outranks. */
static bool about_the_request(int code)
{
    int status = nx_err_status(code);
    /* a full rate-limit window is about the organisation, and answered
     * without a round trip while this process knows it is full */
    return status >= 400 && status < 500 && code != NX_EUNAUTHORIZED &&
           code != NX_EFORBIDDEN && code != NX_ERATELIMIT;
}

int nx_api_stage_caller(nx_req_t *req, nx_err_t *err)
{
    if (!err->code || !about_the_request(err->code) || !tenant_route(req) ||
        !req->auth.user_id[0] || (req->tx && nx_tx_checked(req->tx)))
        return NX_OK;
    /* a fresh transaction: the request's own may hold statements that must
     * not run now */
    nx_err_t verdict = {0};
    nx_tx_t *check = nx_api_tenant_tx(req, &verdict);
    /* the request counts against its organisation all the same */
    if (check && nx_api_ratelimit_queue(req, check) != NX_OK) {
        nx_err_set(&verdict, NX_ENOMEM, NULL);
        check = NULL;
    }
    int rc = check ? nx_tx_run(check, &verdict) : verdict.code;
    /* only a verdict on the caller (or its organisation's full window)
     * replaces the request's error: a database that cannot be asked leaves
     * the client the answer it can act on */
    if (rc == NX_EUNAUTHORIZED || rc == NX_EFORBIDDEN || rc == NX_ERATELIMIT)
        *err = verdict;
    return NX_OK;
}

nx_tx_t *nx_api_tx(nx_req_t *req, nx_err_t *err)
{
    if (!req->tx) {
        nx_err_log(err, "route %s has no tenant", req->route);
        nx_err_set(err, NX_EINTERNAL, NULL);
    }
    return req->tx;
}

int nx_api_tx_one(nx_req_t *req, const nx_stmt_t *st, const char *const *params,
                  nx_res_t **out, nx_err_t *err)
{
    nx_tx_t *tx = nx_api_tx(req, err);
    if (!tx)
        return err->code;
    int idx = nx_tx_add(tx, st, params);
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = nx_tx_run(tx, err);
    if (rc != NX_OK)
        return rc;
    *out = nx_tx_res(tx, idx);
    return NX_OK;
}

int nx_api_send_row(nx_req_t *req, const nx_stmt_t *st, const char *const *params,
                    int missing, const char *detail, nx_err_t *err)
{
    nx_res_t *r;
    int rc = nx_api_tx_one(req, st, params, &r, err);
    if (rc != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, missing, "%s", detail);
    if (nx_resp_json(req, 200, nx_res_get(r, 0, 0), (size_t)nx_res_len(r, 0, 0)) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}
