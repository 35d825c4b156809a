/*
 * conn.c - the adapter between libmicrohttpd and the request pipeline.
 *
 * MHD calls the access handler several times per request:
 *   1. headers parsed: the request begins (its arena, pipeline.c) and the
 *      HEADERS stages run (request id, route, auth, limits...). A failure is
 *      only recorded here - queueing a response on the first call loses
 *      keep-alive - unless the client announced a body, which we then
 *      refuse at once instead of reading it.
 *   2. zero or more body chunks: kept under the 1 MiB ceiling when the route
 *      takes a body and nothing has failed; otherwise read and dropped, not
 *      kept (a route that takes no body never buffers one), up to 8 MiB,
 *      else the connection is closed: MHD can answer only once the request
 *      is complete, and a too-long Content-Length got 413 in step 1.
 *   3. request complete: the REQUEST stages run (body, tenant, handler),
 *      then the RESPONSE stages, and the answer is queued.
 * A handler may offload slow work (nx_req_offload, offload.c): the
 * connection is suspended, a helper thread runs the work and resumes it,
 * and MHD calls the handler once more to run the RESPONSE stages.
 *
 * The completion callback runs on every ending - response sent, client
 * gone, timeout, shutdown - so the DONE stages (the access log) always run,
 * and the request arena is freed there with everything registered on it
 * (results, transactions, parsed JSON).
 *
 * A client that shuts its sending side (FIN) before its body is complete
 * can never complete the request. MHD 0.9.75 on epoll does not notice:
 * a read shorter than its buffer clears its read-ready flag, so the end of
 * input that arrived with the data is never read, and the connection waits
 * for HTTP_CONNECTION_TIMEOUT. While a body is due we look ourselves (a
 * non-blocking peek: 0 bytes is the end of input): a body shorter than its
 * Content-Length closes the connection at once; where the rest of the
 * request may already sit in MHD's buffer (the first call, a chunked body)
 * the connection gets one more second, which a complete request needs only
 * to be answered. The access log records it once ("incomplete").
 */
#include "core/nx.h"
#include "http/conn.h"
#include "http/http_int.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

atomic_int nx_http_inflight_count;

static const char *mhd_lookup(void *ctx, int kind, const char *name)
{
    enum MHD_ValueKind k = kind == NX_REQ_QUERY    ? MHD_GET_ARGUMENT_KIND
                           : kind == NX_REQ_COOKIE ? MHD_COOKIE_KIND
                                                   : MHD_HEADER_KIND;
    return MHD_lookup_connection_value(ctx, k, name);
}

static void mhd_suspend(void *ctx) { MHD_suspend_connection(ctx); }
static void mhd_resume(void *ctx) { MHD_resume_connection(ctx); }

/* The accepted socket's peer, as the acceptor handed it to MHD. */
static bool mhd_peer(void *ctx, struct sockaddr_storage *out, socklen_t *len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ctx, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    const struct sockaddr *sa = ci->client_addr;
    *len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
           : sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                      : 0;
    if (!*len)
        return false;
    memcpy(out, sa, *len);
    return true;
}

static const nx_http_source_t mhd_source = {mhd_lookup, mhd_suspend, mhd_resume, mhd_peer};

static struct MHD_Connection *mhd_of(nx_http_conn_t *hc) { return hc->src_ctx; }

/* Runs the RESPONSE stages, then turns the answer into an MHD response and
 * queues it. */
static enum MHD_Result respond(nx_http_conn_t *hc)
{
    nx_pipeline_run(hc, NX_STAGE_RESPONSE);
    struct nx_resp *r = &hc->resp;
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(r->len, (void *)r->body, MHD_RESPMEM_PERSISTENT);
    if (!mr)
        return MHD_NO;
    bool ok = (!r->content_type ||
               MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type)) &&
              (!hc->req.request_id ||
               MHD_add_response_header(mr, "X-Request-ID", hc->req.request_id));
    for (struct nx_resp_hdr *h = r->headers; h && ok; h = h->next)
        ok = MHD_add_response_header(mr, h->name, h->value);
    if (ok && nx_http_draining())
        ok = MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = ok ? MHD_queue_response(mhd_of(hc), (unsigned)r->status, mr) : MHD_NO;
    MHD_destroy_response(mr);
    if (rc == MHD_YES)
        hc->state = NX_CONN_QUEUED;
    return rc;
}

/* Seconds a half-closed connection keeps, for an answer that may be due. */
#define HALF_CLOSED_TIMEOUT 1u

/* True when the client has shut its sending side and everything it sent has
 * been read from the socket: nothing more will come. */
static bool input_ended(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    char b;
    return ci && recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Checks for the end of input while a body is due. False: close now (the
 * body can never reach its Content-Length). */
static bool still_coming(nx_http_conn_t *hc, bool sure)
{
    struct MHD_Connection *c = mhd_of(hc);
    if (hc->half_closed || !input_ended(c))
        return true;
    hc->half_closed = true;
    if (sure && hc->content_length >= 0 && (long long)hc->received < hc->content_length)
        return false;
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, HALF_CLOSED_TIMEOUT);
    return true;
}

static enum MHD_Result on_body(nx_http_conn_t *hc, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    hc->state = NX_CONN_BODY;
    hc->received += n;
    if (!nx_pipeline_take_body(hc, data, n))
        return MHD_NO;
    /* MHD hands over all it has buffered (up to the Content-Length), so a
     * body still short here can only complete from the socket */
    return still_coming(hc, true) ? MHD_YES : MHD_NO;
}

static nx_http_conn_t *begin(struct MHD_Connection *c, const char *url, const char *method)
{
    nx_http_conn_t *hc = nx_pipeline_begin(method, url, &mhd_source, c);
    if (!hc)
        return NULL;
    atomic_fetch_add(&nx_http_inflight_count, 1);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    hc->has_body = te != NULL || (cl != NULL && strcmp(cl, "0") != 0);
    hc->content_length = te == NULL && cl != NULL ? strtoll(cl, NULL, 10) : -1;
    return hc;
}

enum MHD_Result nx_http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload, size_t *upload_size, void **con_cls)
{
    nx_http_conn_t *hc = *con_cls;
    if (!hc) {
        if (!(hc = begin(c, url, method)))
            return MHD_NO; /* out of memory: drop the connection */
        *con_cls = hc;
        nx_pipeline_run(hc, NX_STAGE_HEADERS);
        if (hc->err.code && hc->has_body)
            return respond(hc);
        /* the body may be in MHD's buffer already: not sure it is short */
        return !hc->has_body || still_coming(hc, false) ? MHD_YES : MHD_NO;
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
    nx_pipeline_run(hc, NX_STAGE_REQUEST);
    if (hc->work)
        return MHD_YES; /* offloaded: the helper thread owns req until it resumes */
    return respond(hc);
}

static const char *termination_name(const nx_http_conn_t *hc,
                                    enum MHD_RequestTerminationCode toe)
{
    /* the client stopped sending mid-request: seen by our half-close check,
     * or by the library when the close came with the last bytes it read */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
        (hc->half_closed ||
         (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT && hc->state <= NX_CONN_BODY)))
        return "incomplete";
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
    hc->termination = termination_name(hc, toe);
    nx_pipeline_run(hc, NX_STAGE_DONE);
    nx_pipeline_end(hc);
    atomic_fetch_sub(&nx_http_inflight_count, 1);
}
