/*
 * conn.c - one request's life inside libmicrohttpd's access handler.
 *
 * MHD calls the handler several times per request:
 *   1. headers parsed: create the request arena and state, assign the
 *      request id, route, authenticate, check Content-Type/Length. An error
 *      is only recorded here - queueing a response on the first call loses
 *      keep-alive - unless the client announced a body, which we then refuse
 *      at once instead of reading it.
 *   2. zero or more body chunks: appended under the 1 MiB ceiling when the
 *      route takes a body, else read and dropped (never kept); the rest of
 *      a chunked body passing the ceiling is read and dropped (up to 8 MiB,
 *      else the connection is closed), as MHD can answer only once the
 *      request is complete; a too-long Content-Length got 413 in step 1.
 *   3. request complete: parse the JSON body, run the handler, queue.
 * A handler may offload slow work (nx_req_offload): the connection is
 * suspended, a thread of the offload pool (offload.c) runs the work and
 * resumes it, and MHD calls the handler once more to queue the response.
 *
 * The request arena is freed in the completion callback, which MHD runs on
 * every ending - response sent, client gone, timeout, shutdown - so results,
 * transactions and parsed JSON registered on it are always released.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <string.h>

atomic_int nx_http_inflight_count;
atomic_int nx_http_offload_count;

static nx_http_conn_t *conn_begin(struct MHD_Connection *c, const char *url,
                                  const char *method)
{
    nx_arena_t *arena = nx_arena_new(NX_HTTP_ARENA_CHUNK);
    if (!arena)
        return NULL;
    nx_http_conn_t *hc = nx_arena_calloc(arena, sizeof(*hc));
    const char *id = hc ? nx_mw_request_id(
                              arena, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                                 "X-Request-ID"))
                        : NULL;
    if (!id) {
        nx_arena_free(arena);
        return NULL;
    }
    hc->req.arena = arena;
    hc->req.conn = hc;
    hc->req.method = method;
    hc->req.path = url;
    hc->req.request_id = id;
    hc->mhd = c;
    hc->start_us = nx_time_mono_us();
    atomic_fetch_add(&nx_http_inflight_count, 1);
    return hc;
}

/* Step 1: everything that can be decided from the headers alone. */
static void check_headers(nx_http_conn_t *hc)
{
    nx_req_t *req = &hc->req;
    const char *cl = nx_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = nx_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    hc->has_body = te != NULL || (cl != NULL && strcmp(cl, "0") != 0);

    if (nx_router_match(req, req->method, req->path, &hc->err) != NX_OK)
        return;
    int flags = req->route_entry->flags;
    if ((flags & (NX_ROUTE_AUTH | NX_ROUTE_ADMIN)) && nx_http_run_auth(req, &hc->err) != NX_OK)
        return;
    if (!hc->has_body)
        return;
    if ((flags & NX_ROUTE_JSON) &&
        nx_mw_check_content_type(nx_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE),
                                 &hc->err) != NX_OK)
        return;
    nx_mw_check_content_length(cl, &hc->err);
}

/* Who may call comes before what they sent: an authenticated request about
 * to be refused with any other 4xx - for its body (400, 413, 415, 422), its
 * path's id (404), its query (422) - first has the caller checked, so a
 * removed user gets 401 and a member on an admin route 403 whatever they
 * sent. The check_caller option costs a round trip only when no tenant
 * transaction of the request has checked the caller already, so only on
 * an error answered before the handler reached the database. */
static int caller_first(nx_http_conn_t *hc, int code)
{
    nx_req_t *req = &hc->req;
    int status = nx_err_status(code);
    if (!req->auth.user_id[0] || status < 400 || status >= 500 ||
        code == NX_EUNAUTHORIZED || code == NX_EFORBIDDEN)
        return code;
    nx_err_t caller = {0};
    int rc = nx_http_check_caller(req, &caller);
    /* only a verdict on the caller replaces the body's error: a database
     * that cannot be asked leaves the client the answer it can act on */
    if (rc != NX_EUNAUTHORIZED && rc != NX_EFORBIDDEN)
        return code;
    hc->err = caller;
    return rc;
}

/* Turns the recorded response into an MHD response and queues it. */
static enum MHD_Result respond(nx_http_conn_t *hc)
{
    if (hc->state != NX_CONN_READY)
        nx_problem_render(&hc->req,
                          caller_first(hc, hc->err.code ? hc->err.code : NX_EINTERNAL),
                          &hc->err);
    struct nx_resp *r = &hc->resp;
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(r->len, (void *)r->body, MHD_RESPMEM_PERSISTENT);
    if (!mr)
        return MHD_NO;
    bool ok = (!r->content_type ||
               MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type)) &&
              MHD_add_response_header(mr, "X-Request-ID", hc->req.request_id);
    for (struct nx_resp_hdr *h = r->headers; h && ok; h = h->next)
        ok = MHD_add_response_header(mr, h->name, h->value);
    if (ok && nx_http_draining())
        ok = MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = ok ? MHD_queue_response(hc->mhd, (unsigned)r->status, mr) : MHD_NO;
    MHD_destroy_response(mr);
    if (rc == MHD_YES)
        hc->state = NX_CONN_QUEUED;
    return rc;
}

/* Step 3: the whole request is in; run the handler. */
static enum MHD_Result dispatch(nx_http_conn_t *hc)
{
    nx_req_t *req = &hc->req;
    if (hc->err.code)
        return respond(hc);
    if (hc->body_init) {
        req->body = hc->body.data;
        req->body_len = hc->body.len;
    }
    if ((req->route_entry->flags & NX_ROUTE_JSON) &&
        nx_mw_parse_json_object(req->arena, req->body, req->body_len, &req->json,
                                &hc->err) != NX_OK)
        return respond(hc);
    int rc = req->route_entry->handler(req, &hc->err);
    if (hc->work)
        return MHD_YES; /* offloaded: an offload thread owns req until it resumes */
    if (rc != NX_OK)
        nx_problem_render(req, caller_first(hc, rc), &hc->err);
    else if (hc->state != NX_CONN_READY)
        nx_err_log(&hc->err, "handler for %s %s set no response", req->method, req->route);
    return respond(hc);
}

/*
 * A chunked body over NX_BODY_MAX is read on and dropped, up to this much,
 * so that the client gets its 413 once it has sent everything: MHD refuses
 * a response queued in the middle of a body. A client that sends more is
 * cut off (the access log still records 413).
 */
#define NX_BODY_DROP_MAX (8 * (size_t)NX_BODY_MAX)

/* A body is kept only for a route that takes one (NX_ROUTE_JSON); on any
 * other route it is read and dropped as it arrives, so a client cannot
 * make a connection hold more than MHD's own buffer. */
static enum MHD_Result on_body(nx_http_conn_t *hc, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    hc->received += n;
    if (!hc->err.code && hc->received > NX_BODY_MAX)
        nx_mw_body_too_big(&hc->err);
    if (hc->err.code)
        return hc->err.code == NX_ETOOBIG && hc->received <= NX_BODY_DROP_MAX ? MHD_YES : MHD_NO;
    if (!(hc->req.route_entry->flags & NX_ROUTE_JSON))
        return MHD_YES;
    if (!hc->body_init) {
        nx_buf_init(&hc->body, hc->req.arena, NX_BODY_MAX);
        hc->body_init = true;
    }
    return nx_mw_body_append(&hc->body, data, n, &hc->err) == NX_OK ? MHD_YES : MHD_NO;
}

enum MHD_Result nx_http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload, size_t *upload_size, void **con_cls)
{
    nx_http_conn_t *hc = *con_cls;
    if (!hc) {
        if (!(hc = conn_begin(c, url, method)))
            return MHD_NO; /* out of memory: drop the connection */
        *con_cls = hc;
        check_headers(hc);
        return hc->err.code && hc->has_body ? respond(hc) : MHD_YES;
    }
    switch (hc->state) {
    case NX_CONN_QUEUED:
        *upload_size = 0; /* already answered; discard what still arrives */
        return MHD_YES;
    case NX_CONN_READY:
        return respond(hc); /* resumed after offloaded work */
    default:
        break;
    }
    if (*upload_size)
        return on_body(hc, upload, upload_size);
    return dispatch(hc);
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return NULL;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        return "client-closed";
    default:
        return "error";
    }
}

void nx_http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    nx_http_conn_t *hc = *con_cls;
    if (!hc)
        return;
    *con_cls = NULL;
    int status = hc->state == NX_CONN_QUEUED ? hc->resp.status
                 : hc->err.code                ? nx_err_status(hc->err.code)
                                               : 499; /* client went away */
    nx_mw_access_log(&hc->req, status, nx_time_mono_us() - hc->start_us,
                     termination_name(toe));
    nx_arena_free(hc->req.arena);
    atomic_fetch_sub(&nx_http_inflight_count, 1);
}

/* ---- offloading ---------------------------------------------------------- */

int nx_req_offload(nx_req_t *req, nx_work_cb work, void *ud)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    NX_ASSERT(!hc->work);
    hc->work = work;
    hc->work_ud = ud;
    if (nx_offload_submit(hc))
        return NX_OK;
    hc->work = NULL; /* the queue is full: answered at once, nothing suspended */
    hc->work_ud = NULL;
    hc->err.retry_after = NX_OFFLOAD_RETRY_AFTER;
    return nx_err_set(&hc->err, NX_EUNAVAILABLE,
                      "The server is busy with other slow requests (sign-ins); "
                      "retry shortly.");
}
