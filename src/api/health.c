/*
 * health.c - GET /health: is this node able to serve?
 *
 * Runs SELECT 1 on the serving thread's runtime connection. The connection
 * is opened lazily and re-opened on the next call after a failure (db.h),
 * so /health turns 503 while PostgreSQL is down and 200 again once it is
 * back, with no restart. A good answer is shared by every request for
 * HEALTH_OK_TTL_US: probes from many load balancers (or a flood of them)
 * then cost the database one query a second, and the answer costs about
 * what a static response does. A failure is never reused, so recovery shows
 * at once; an outage shows within the window. The 503 body has the same shape as the 200 one
 * (it is a status report, not a problem): load balancers read the status,
 * people read the body. Why the database failed is logged, not returned.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "core/err.h"
#include "core/log.h"
#include "db/db.h"

#include "core/util.h"

#include <stdatomic.h>
#include <stdio.h>

#define HEALTH_OK_TTL_US 1000000

static const nx_stmt_t health_ping = {"nx_health_ping", "SELECT 1", 0};

/* Monotonic time until which the last good ping stands. */
static _Atomic int64_t ok_until_us;

int nx_api_health_get(nx_req_t *req, nx_err_t *err)
{
    nx_err_t dberr = {0};
    int64_t now = nx_time_mono_us();
    bool ok = atomic_load_explicit(&ok_until_us, memory_order_relaxed) > now;
    if (!ok) {
        nx_res_t *res = NULL;
        nx_db_t *db = nx_db_thread(&dberr);
        ok = db && nx_db_exec(db, req->arena, &health_ping, NULL, &res, &dberr) == NX_OK &&
             nx_res_rows(res) == 1;
        atomic_store_explicit(&ok_until_us, ok ? now + HEALTH_OK_TTL_US : 0,
                              memory_order_relaxed);
    }
    if (!ok)
        nx_log(NX_LOG_WARN, "health check failed", NX_LS("request_id", req->request_id),
               NX_LS("error", nx_err_name(dberr.code ? dberr.code : NX_EINTERNAL)),
               NX_LS("log_detail", dberr.log_detail[0] ? dberr.log_detail : dberr.detail));
    char body[128];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"database\":\"%s\",\"version\":\"%s\"}",
                     ok ? "ok" : "degraded", ok ? "ok" : "unavailable", NX_VERSION);
    if (nx_resp_header(req, "Cache-Control", "no-store") != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    if (nx_resp_json(req, ok ? 200 : 503, body, (size_t)n) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}
