/*
 * trace.c - the trace stage: W3C Trace Context for every request.
 *
 * A valid incoming traceparent is kept - the trace id, the caller's span as
 * our parent, its flags - and the request becomes a span of its own; any
 * other value (malformed, version ff, all-zero ids) is dropped, never
 * echoed, and a new trace starts. The trace id goes into every log line of
 * the request (the pipeline runner makes it the thread's current trace),
 * into the jobs it submits, and, as traceparent, onto outbound calls.
 * First in the table: it cannot fail, and even a request refused by a later
 * stage is traced.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/trace.h"

int nx_http_stage_trace(nx_req_t *req, nx_err_t *err)
{
    if (nx_trace_parse(nx_req_header(req, "traceparent"), &req->trace) != NX_OK)
        req->trace = (nx_trace_t){0};
    nx_trace_start(&req->trace);
    return NX_OK;
}
