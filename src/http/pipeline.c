/*
 * pipeline.c - runs a request through the stage table.
 *
 * The table (declared by the program, api/pipeline.c) is data, like nginx's
 * phase handlers: each stage a name, when it can run and a function. This
 * file only walks it:
 *
 *   headers in     HEADERS stages, in order, until one fails
 *   request in     REQUEST stages, in order, until one fails or offloads
 *   answer due     RESPONSE stages, all of them, once (the last renders)
 *   request over   DONE stages, all of them, once
 *
 * A failure is the request's pending error (hc->err): later HEADERS and
 * REQUEST stages are skipped, RESPONSE stages see it (and may replace it:
 * who may call is answered before what they sent), DONE stages always run.
 * The runner knows nothing of libmicrohttpd: conn.c calls it from the
 * library's callbacks, the test harness calls it directly.
 *
 * Also here: the stages that belong to http/ itself - routing, the body,
 * the handler call and the rendering of the answer.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/util.h"

#include <string.h>

static const nx_stage_t *stages;
static size_t nstages;

int nx_pipeline_init(const nx_stage_t *table, size_t n, nx_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!table[i].name || !table[i].run || table[i].when < NX_STAGE_HEADERS ||
            table[i].when > NX_STAGE_DONE)
            return nx_err_set(err, NX_EINVAL, "stage %zu is incomplete", i);
        if (i > 0 && table[i].when < table[i - 1].when)
            return nx_err_set(err, NX_EINVAL, "stage \"%s\" runs before \"%s\"",
                              table[i].name, table[i - 1].name);
    }
    stages = table;
    nstages = n;
    return NX_OK;
}

nx_http_conn_t *nx_pipeline_begin(const char *method, const char *path,
                                  const nx_http_source_t *src, void *src_ctx)
{
    nx_arena_t *arena = nx_arena_new(NX_HTTP_ARENA_CHUNK);
    if (!arena)
        return NULL;
    nx_http_conn_t *hc = nx_arena_calloc(arena, sizeof(*hc));
    if (!hc) {
        nx_arena_free(arena);
        return NULL;
    }
    hc->req.arena = arena;
    hc->req.conn = hc;
    hc->req.method = method;
    hc->req.path = path;
    hc->src = src;
    hc->src_ctx = src_ctx;
    hc->start_us = nx_time_mono_us();
    return hc;
}

void nx_pipeline_end(nx_http_conn_t *hc)
{
    if (hc)
        nx_arena_free(hc->req.arena);
}

/* Runs stage i; a failure without a code still fails. */
static void run_one(nx_http_conn_t *hc, size_t i)
{
    int rc = stages[i].run(&hc->req, &hc->err);
    if (rc != NX_OK && !hc->err.code)
        nx_err_set(&hc->err, rc < 0 ? rc : NX_EINTERNAL, NULL);
}

void nx_pipeline_run(nx_http_conn_t *hc, int when)
{
    if (when == NX_STAGE_RESPONSE) {
        if (hc->responded)
            return;
        hc->responded = true;
    }
    /* skip what ran already and what belongs to an earlier kind */
    size_t i = hc->next_stage;
    while (i < nstages && stages[i].when < when)
        i++;
    for (; i < nstages && stages[i].when == when; i++) {
        /* after a failure, or once the handler offloaded its work (the
         * helper thread then owns the request), the rest is skipped */
        if (when <= NX_STAGE_REQUEST && (hc->err.code || hc->work))
            break;
        run_one(hc, i);
    }
    hc->next_stage = i;
}

static bool keeps_body(const nx_http_conn_t *hc)
{
    const nx_route_t *r = hc->req.route_entry;
    return !hc->err.code && r && (r->flags & NX_ROUTE_JSON);
}

/*
 * A body that is not kept (past the ceiling, after a failure, or on a route
 * that takes none) is read on and dropped, up to this much, so that the
 * client gets its answer once it has sent everything: libmicrohttpd refuses
 * a response queued in the middle of a body. A client that sends more is
 * cut off (the access log records the answer it was due).
 */
#define NX_BODY_DROP_MAX (8 * (size_t)NX_BODY_MAX)

bool nx_pipeline_take_body(nx_http_conn_t *hc, const char *data, size_t n)
{
    if (keeps_body(hc)) {
        if (!hc->body_init) {
            nx_buf_init(&hc->body, hc->req.arena, NX_BODY_MAX);
            hc->body_init = true;
        }
        if (nx_mw_body_append(&hc->body, data, n, &hc->err) == NX_OK)
            return true;
    } else if (!hc->err.code && hc->dropped + n > NX_BODY_MAX) {
        /* no route takes more than the ceiling, kept or not */
        nx_mw_body_too_big(&hc->err);
    }
    hc->dropped += n;
    return hc->dropped <= NX_BODY_DROP_MAX;
}

/* ---- http/'s own stages -------------------------------------------------- */

int nx_http_stage_route(nx_req_t *req, nx_err_t *err)
{
    return nx_router_match(req, req->method, req->path, err);
}

int nx_http_stage_body(nx_req_t *req, nx_err_t *err)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    if (!(req->route_entry->flags & NX_ROUTE_JSON))
        return NX_OK;
    if (hc->body_init) {
        req->body = hc->body.data;
        req->body_len = hc->body.len;
    }
    return nx_mw_parse_json_object(req->arena, req->body, req->body_len, &req->json, err);
}

int nx_http_stage_handler(nx_req_t *req, nx_err_t *err)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    if (hc->resp.status)
        return NX_OK; /* an earlier stage answered already (a replayed answer) */
    int rc = req->route_entry->handler(req, err);
    if (rc != NX_OK || hc->work)
        return rc; /* offloaded: the helper thread owns req until it is done */
    if (!hc->resp.status) {
        nx_err_log(err, "handler for %s %s set no response", req->method, req->route);
        return nx_err_set(err, NX_EINTERNAL, NULL);
    }
    return NX_OK;
}

int nx_http_stage_respond(nx_req_t *req, nx_err_t *err)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    if (err->code || !hc->resp.status)
        nx_problem_render(req, err->code ? err->code : NX_EINTERNAL, err);
    return NX_OK;
}
