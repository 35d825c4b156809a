/*
 * response.c - what handlers call to answer (nx_resp_*).
 *
 * Nothing is sent here: the response (status, content type, body, extra
 * headers) is recorded on the request, and conn.c turns it into a
 * libmicrohttpd response once the RESPONSE stages have run. Bodies are copied to the
 * request arena unless they are static (embedded files), so a handler may
 * answer from a stack buffer or a PGresult about to be cleared.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"

#include <string.h>
#include <strings.h>

static int set(nx_req_t *req, int status, const char *ct, const char *body, size_t len)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    struct nx_resp_hdr *keep = hc->resp.headers;
    hc->resp = (struct nx_resp){.status = status,
                                /* no body, no type: 204 and the like */
                                .content_type = ct ? ct : body ? "application/json" : NULL,
                                .body = body ? body : "",
                                .len = body ? len : 0,
                                .headers = keep};
    req->status = status;
    return NX_OK;
}

int nx_resp_send(nx_req_t *req, int status, const char *content_type, const char *body,
                 size_t len)
{
    char *copy = NULL;
    if (body) {
        copy = nx_arena_alloc(req->arena, len + 1);
        if (!copy)
            return NX_ENOMEM;
        memcpy(copy, body, len);
        copy[len] = '\0';
    }
    if (content_type && !(content_type = nx_arena_strdup(req->arena, content_type)))
        return NX_ENOMEM;
    return set(req, status, content_type, copy, len);
}

int nx_resp_json(nx_req_t *req, int status, const char *body, size_t len)
{
    return nx_resp_send(req, status, NULL, body, len);
}

int nx_resp_static(nx_req_t *req, int status, const char *content_type,
                   const unsigned char *body, size_t len, const char *cache_control)
{
    if (cache_control && nx_resp_header(req, "Cache-Control", cache_control) != NX_OK)
        return NX_ENOMEM;
    return set(req, status, content_type, (const char *)body, len);
}

int nx_resp_header(nx_req_t *req, const char *name, const char *value)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    struct nx_resp_hdr *h = nx_arena_alloc(req->arena, sizeof(*h));
    if (!h)
        return NX_ENOMEM;
    h->name = nx_arena_strdup(req->arena, name);
    h->value = nx_arena_strdup(req->arena, value);
    if (!h->name || !h->value)
        return NX_ENOMEM;
    h->next = hc->resp.headers;
    hc->resp.headers = h;
    return NX_OK;
}

int nx_resp_status(nx_req_t *req) { return nx_http_conn_of(req)->resp.status; }

const char *nx_resp_body(nx_req_t *req, size_t *len, const char **content_type)
{
    nx_http_conn_t *hc = nx_http_conn_of(req);
    *len = hc->resp.len;
    if (content_type)
        *content_type = hc->resp.content_type;
    return hc->resp.body;
}

const char *nx_resp_header_value(nx_req_t *req, const char *name)
{
    for (struct nx_resp_hdr *h = nx_http_conn_of(req)->resp.headers; h; h = h->next)
        if (strcasecmp(h->name, name) == 0)
            return h->value;
    return NULL;
}
