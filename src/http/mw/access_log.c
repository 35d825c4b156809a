/*
 * access_log.c - one log line per request, written when the request is
 * over (response sent, or the client gone), so duration_ms covers sending.
 *
 *   {"time":...,"level":"info","msg":"request","request_id":...,"method":"GET",
 *    "route":"/health","status":200,"duration_ms":0.412}
 *
 * route is the matched pattern, never the raw path (ids and junk stay out
 * of the logs, and lines group by route); null when nothing matched.
 * org_id/user_id appear once auth has filled req->auth. 5xx log at error
 * level, 4xx at info: client mistakes are not operator alarms.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/log.h"
#include "core/util.h"

int nx_http_stage_access_log(nx_req_t *req, nx_err_t *err)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    int status = nx_req_final_status(req);
    int64_t duration_us = nx_req_elapsed_us(req);
    const char *termination = hc->termination;
    int level = status >= 500 ? NX_LOG_ERROR : NX_LOG_INFO;
    if (level < nx_log_level)
        return NX_OK;
    nx_log_field_t f[10];
    int n = 0;
    f[n++] = NX_LS("request_id", req->request_id);
    f[n++] = NX_LS("method", req->method);
    f[n++] = NX_LS("route", req->route);
    f[n++] = NX_LI("status", status);
    f[n++] = NX_LD("duration_ms", (double)duration_us / 1000.0);
    if (req->auth.org_id[0])
        f[n++] = NX_LS("org_id", req->auth.org_id);
    if (req->auth.user_id[0])
        f[n++] = NX_LS("user_id", req->auth.user_id);
    if (termination)
        f[n++] = NX_LS("termination", termination);
    f[n] = (nx_log_field_t){0};
    nx_log_write(level, "request", f);
    return NX_OK;
}
