/*
 * webhook_deliveries.c - an endpoint's deliveries: send a test event, list
 * the deliveries with their attempt log, retry one (admins; api.md
 * "Webhooks").
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * A test event and its delivery are written like any event (the outbox):
 * the body rendered and stored once, in the request's transaction. A retry
 * makes a delivery due now - one attempt more for a finished one - unless a
 * worker holds it (409), guarded on the row itself so a claim racing the
 * retry is never shortened. After either commits, the webhook workers are
 * woken (nx_webhooks_committed).
 */
#include "core/nx.h"
#include "api/webhooks_api.h"
#include "api/api.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/trace.h"
#include "db/db.h"
#include "webhooks/webhooks.h"

#include <stdio.h>
#include <string.h>

static const nx_stmt_t st_test = {
    "api_webhooks_test",
    "WITH e AS ("
    " SELECT w.organisation_id, w.id, w.enabled FROM webhook_endpoints w"
    " WHERE w.organisation_id = $1 AND w.id = $2::uuid"
    "), ev AS ("
    " INSERT INTO webhook_events AS v (organisation_id, id, type, body, traceparent)"
    " SELECT s.organisation_id, s.id, 'webhook.test', nx_webhook_body(s.id, 'webhook.test',"
    " now(), s.organisation_id, json_build_object('webhook_id', s.endpoint_id)), $3"
    " FROM (SELECT e.organisation_id, e.id AS endpoint_id, gen_random_uuid() AS id FROM e"
    " WHERE e.enabled OFFSET 0) s"
    " RETURNING v.organisation_id, v.id"
    "), dl AS ("
    " INSERT INTO webhook_deliveries AS d (organisation_id, endpoint_id, event_id)"
    " SELECT ev.organisation_id, $2::uuid, ev.id FROM ev"
    " RETURNING nx_webhook_delivery_json(d, 'webhook.test')::text AS j"
    ")"
    " SELECT e.enabled, (SELECT j FROM dl) FROM e",
    3,
};

static const nx_stmt_t st_exists = {
    "api_webhooks_exists",
    "SELECT 1 FROM webhook_endpoints w WHERE w.organisation_id = $1 AND w.id = $2::uuid",
    2,
};

/* $5 the endpoint, $6 a status filter (NULL: any). */
static const nx_stmt_t st_deliveries = {
    "api_webhooks_deliveries",
    "SELECT nx_webhook_delivery_json(d, ev.type)::text,"
    " (extract(epoch FROM d.created_at) * 1000000)::bigint::text, d.id::text"
    " FROM webhook_deliveries d JOIN webhook_events ev"
    " ON ev.organisation_id = d.organisation_id AND ev.id = d.event_id"
    " WHERE d.organisation_id = $1 AND d.endpoint_id = $5::uuid"
    " AND ($6::text IS NULL OR d.status = $6)"
    " AND ($2::bigint IS NULL OR"
    " (d.created_at, d.id) < (timestamptz 'epoch' + ($2::bigint / 1000000) * interval '1 second'"
    " + ($2::bigint % 1000000) * interval '1 microsecond', $3::uuid))"
    " ORDER BY d.created_at DESC, d.id DESC LIMIT $4::int",
    6,
};

static const nx_stmt_t st_retry = {
    "api_webhooks_retry",
    "WITH t AS ("
    " SELECT d.id, d.lease_owner IS NOT NULL AS busy, w.enabled FROM webhook_deliveries d"
    " JOIN webhook_endpoints w ON w.organisation_id = d.organisation_id AND w.id = d.endpoint_id"
    " WHERE d.organisation_id = $1 AND d.endpoint_id = $2::uuid AND d.id = $3::uuid"
    "), upd AS ("
    " UPDATE webhook_deliveries d SET status = 'pending', run_at = now(),"
    " max_attempts = CASE WHEN d.status = 'pending' THEN d.max_attempts"
    " ELSE d.attempt_count + 1 END"
    " FROM t WHERE d.organisation_id = $1 AND d.id = t.id AND t.enabled"
    " AND d.lease_owner IS NULL"
    " RETURNING nx_webhook_delivery_json(d, (SELECT ev.type FROM webhook_events ev"
    " WHERE ev.organisation_id = d.organisation_id AND ev.id = d.event_id))::text AS j"
    ")"
    " SELECT t.enabled, t.busy, (SELECT j FROM upd) FROM t",
    3,
};

/* Wakes the webhook workers once the request's transaction committed. */
static void committed(nx_req_t *req)
{
    nx_err_t ignore = {0};
    nx_db_t *db = nx_db_thread(&ignore);
    if (db)
        nx_webhooks_committed(db, req->arena);
}

int nx_api_webhooks_test(nx_req_t *req, nx_err_t *err)
{
    const char *id;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc != NX_OK)
        return rc;
    char tp[NX_TRACEPARENT_LEN + 1] = "";
    if (req->trace.trace_id[0]) /* the event's deliveries are spans of this request */
        nx_trace_format(&req->trace, tp);
    const char *p[] = {req->auth.org_id, id, tp[0] ? tp : NULL};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, &st_test, p, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "No such webhook.");
    if (strcmp(nx_res_get(r, 0, 0), "t") != 0)
        return nx_err_set(err, NX_ECONFLICT, "The webhook is disabled: enable it first "
                                             "(PATCH with \"enabled\": true).");
    rc = nx_resp_json(req, 202, nx_res_get(r, 0, 1), (size_t)nx_res_len(r, 0, 1));
    committed(req);
    return rc;
}

int nx_api_webhooks_deliveries(nx_req_t *req, nx_err_t *err)
{
    const char *id, *status = nx_req_query(req, "status");
    nx_page_t page;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc == NX_OK)
        rc = nx_api_page_parse(req, &page, err);
    if (rc != NX_OK)
        return rc;
    if (status && strcmp(status, "pending") && strcmp(status, "succeeded") &&
        strcmp(status, "failed")) {
        nx_err_field(err, "status", "must be one of pending, succeeded, failed");
        return NX_EVALIDATION;
    }
    nx_tx_t *tx = nx_api_tx(req, err);
    if (!tx)
        return err->code;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", page.limit + 1);
    const char *pe[] = {req->auth.org_id, id};
    const char *pl[] = {req->auth.org_id, page.after_us, page.after_id, lim, id, status};
    int ie = nx_tx_add(tx, &st_exists, pe);
    int il = ie < 0 ? -1 : nx_tx_add(tx, &st_deliveries, pl);
    if (il < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    if ((rc = nx_tx_run(tx, err)) != NX_OK)
        return rc;
    if (nx_res_rows(nx_tx_res(tx, ie)) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "No such webhook.");
    return nx_api_send_page(req, nx_tx_res(tx, il), &page, err);
}

int nx_api_webhooks_retry(nx_req_t *req, nx_err_t *err)
{
    const char *id, *delivery;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc == NX_OK)
        rc = nx_api_uuid_param(req, 1, &delivery, err);
    if (rc != NX_OK)
        return rc;
    const char *p[] = {req->auth.org_id, id, delivery};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, &st_retry, p, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "No such delivery.");
    if (strcmp(nx_res_get(r, 0, 0), "t") != 0)
        return nx_err_set(err, NX_ECONFLICT, "The webhook is disabled: enable it first "
                                             "(PATCH with \"enabled\": true).");
    if (nx_res_null(r, 0, 2))
        return nx_err_set(err, NX_ECONFLICT, "This delivery is being attempted right now.");
    rc = nx_resp_json(req, 202, nx_res_get(r, 0, 2), (size_t)nx_res_len(r, 0, 2));
    committed(req);
    return rc;
}
