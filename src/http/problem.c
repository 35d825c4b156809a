/*
 * problem.c - the only writer of error bodies (RFC 9457 problem details).
 *
 *   {"type":"/problems/not-found","title":"Not found","status":404,
 *    "detail":"...","request_id":"...","errors":[{"field":..,"message":..}]}
 *
 * Type, title and status come from NX_ERR_MAP; detail from the error sink
 * (client-safe by contract), except for 500, whose detail is fixed: whatever
 * went wrong is logged here with the operator-only log_detail and never
 * reaches the client. errors[] appears for 422 only. Extra headers: 401
 * WWW-Authenticate, 405 Allow, 409/429/503 Retry-After when the sink sets one.
 *
 * Every response is valid UTF-8, whatever the sink holds: the sink cuts
 * text on character boundaries, and any byte that is still not part of a
 * well-formed character is written as U+FFFD here.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

#define PROBLEM_MAX 16384

static const char oom_body[] =
    "{\"type\":\"/problems/out-of-memory\",\"title\":\"Service temporarily unavailable\","
    "\"status\":503,\"detail\":\"The server is short of memory; retry shortly.\"}";

static void log_server_error(const nx_req_t *req, int code, const nx_err_t *err)
{
    nx_log(NX_LOG_ERROR, "request failed", NX_LS("request_id", req->request_id),
           NX_LS("route", req->route), NX_LS("error", nx_err_name(code)),
           NX_LS("detail", err && err->detail[0] ? err->detail : NULL),
           NX_LS("log_detail", err && err->log_detail[0] ? err->log_detail : NULL));
}

/* Appends s as a JSON string, each byte of an ill-formed sequence replaced
 * by U+FFFD. */
static int put_text(nx_buf_t *b, nx_arena_t *arena, const char *s)
{
    size_t n = strlen(s);
    if (nx_utf8_valid(s, n))
        return nx_buf_json_str(b, s);
    nx_buf_t clean;
    nx_buf_init(&clean, arena, 3 * n);
    int rc = NX_OK;
    while (!rc && n > 0) {
        size_t ok = nx_utf8_valid_prefix(s, n);
        rc = nx_buf_append(&clean, s, ok);
        if (!rc && ok < n) {
            rc = nx_buf_puts(&clean, "\xEF\xBF\xBD");
            ok++;
        }
        s += ok;
        n -= ok;
    }
    return rc ? rc : nx_buf_json_str(b, clean.data);
}

static int render_body(nx_buf_t *b, nx_req_t *req, int code, int status,
                       const nx_err_t *err)
{
    const char *detail = err && err->detail[0] ? err->detail : nx_err_title(code);
    if (status == 500)
        detail = "An unexpected error occurred; it has been logged.";
    int rc = nx_buf_printf(b, "{\"type\":\"/problems/%s\",\"title\":", nx_err_slug(code));
    rc = rc ? rc : nx_buf_json_str(b, nx_err_title(code));
    rc = rc ? rc : nx_buf_printf(b, ",\"status\":%d,\"detail\":", status);
    rc = rc ? rc : put_text(b, req->arena, detail);
    rc = rc ? rc : nx_buf_puts(b, ",\"request_id\":");
    rc = rc ? rc : nx_buf_json_str(b, req->request_id ? req->request_id : "");
    if (code == NX_EVALIDATION && err) { /* a reused key has no field at fault */
        rc = rc ? rc : nx_buf_puts(b, ",\"errors\":[");
        for (int i = 0; i < err->nfields && !rc; i++) {
            rc = nx_buf_puts(b, i ? ",{\"field\":" : "{\"field\":");
            rc = rc ? rc : put_text(b, req->arena, err->fields[i].field);
            rc = rc ? rc : nx_buf_puts(b, ",\"message\":");
            rc = rc ? rc : put_text(b, req->arena, err->fields[i].message);
            rc = rc ? rc : nx_buf_puts(b, "}");
        }
        rc = rc ? rc : nx_buf_puts(b, "]");
    }
    return rc ? rc : nx_buf_puts(b, "}");
}

static int add_headers(nx_req_t *req, int status, const nx_err_t *err)
{
    char num[16];
    int rc = NX_OK;
    if (status == 401)
        rc = nx_resp_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    if (!rc && status == 405 && err && err->allow[0])
        rc = nx_resp_header(req, "Allow", err->allow);
    if (!rc && (status == 409 || status == 429 || status == 503) && err &&
        err->retry_after > 0) {
        snprintf(num, sizeof(num), "%d", err->retry_after);
        rc = nx_resp_header(req, "Retry-After", num);
    }
    return rc;
}

void nx_problem_render(nx_req_t *req, int code, const nx_err_t *err)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    if (code >= 0)
        code = NX_EINTERNAL; /* a handler returned an error without a code */
    int status = nx_err_status(code);
    if (status >= 500)
        log_server_error(req, code, err);
    struct nx_resp_hdr *keep = hc->resp.headers; /* stages' headers stay */
    hc->resp = (struct nx_resp){.headers = keep};

    nx_buf_t b;
    nx_buf_init(&b, req->arena, PROBLEM_MAX);
    if (render_body(&b, req, code, status, err) == NX_OK &&
        add_headers(req, status, err) == NX_OK) {
        hc->resp.status = status;
        hc->resp.content_type = "application/problem+json";
        hc->resp.body = b.data;
        hc->resp.len = b.len;
    } else {
        hc->resp = (struct nx_resp){.status = 503,
                                    .content_type = "application/problem+json",
                                    .body = oom_body,
                                    .len = sizeof(oom_body) - 1,
                                    .headers = keep};
    }
    req->status = hc->resp.status;
}
