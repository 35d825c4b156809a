/*
 * http.c - metrics and the HTTP side: the DONE stage that counts every
 * request, and GET /metrics with its access rule.
 *
 * Who may read /metrics: with METRICS_TOKEN unset, clients on a loopback
 * address (the connection's own address, never a header: http/peer.c);
 * with it set, only clients presenting it as a bearer token, loopback
 * included - a reverse proxy on the same host makes every client look
 * local, and the token then is what keeps the metrics private. Anyone
 * else gets the router's own 404, so the route's existence does not show.
 * The token is compared in constant time.
 */
#include "core/nx.h"
#include "metrics/metrics.h"
#include "auth/digest.h"
#include "config/settings.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/http.h"

#include <string.h>
#include <strings.h>

#define RENDER_MAX (8 * 1024 * 1024)

int nx_metrics_stage_http(nx_req_t *req, nx_err_t *err)
{
    nx_metrics_http(req->route_id, req->method, nx_req_final_status(req),
                    nx_req_elapsed_us(req));
    return NX_OK;
}

/* The bearer token of the request, or NULL. */
static const char *bearer(nx_req_t *req)
{
    const char *h = nx_req_header(req, "Authorization");
    if (!h)
        return NULL;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    for (h += 7; *h == ' ';)
        h++;
    return h;
}

int nx_metrics_check_access(nx_req_t *req, nx_err_t *err)
{
    const char *token = nx_cfg ? nx_cfg->metrics_token : NULL;
    bool ok = token ? nx_secret_equal(bearer(req), token) : nx_req_peer_loopback(req);
    return ok ? NX_OK : nx_err_set(err, NX_ENOTFOUND, "No route matches this path.");
}

int nx_metrics_get(nx_req_t *req, nx_err_t *err)
{
    int rc = nx_metrics_check_access(req, err);
    if (rc != NX_OK)
        return rc;
    nx_buf_t b;
    nx_buf_init(&b, req->arena, RENDER_MAX);
    if ((rc = nx_metrics_render(&b)) != NX_OK) {
        nx_err_log(err, "metrics: %s", nx_err_name(rc));
        return nx_err_set(err, rc == NX_ETOOBIG ? NX_EINTERNAL : NX_ENOMEM, NULL);
    }
    if (nx_resp_header(req, "Cache-Control", "no-store") != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return nx_resp_send(req, 200, NX_METRICS_CONTENT_TYPE, b.data, b.len) == NX_OK
               ? NX_OK
               : nx_err_set(err, NX_ENOMEM, NULL);
}
