/*
 * loopback.c - the in-process request harness (loopback.h).
 */
#include "core/nx.h"
#include "loopback.h"
#include "http/http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct source_ctx {
    const nx_loopback_req_t *in;
    char query[1024];   /* split copy of in->query: key\0value\0... */
    char cookies[1024]; /* split copy of the Cookie header */
};

static const char *header(const nx_loopback_req_t *in, const char *name)
{
    for (int i = 0; i < NX_LOOPBACK_MAX_HEADERS && in->headers[i][0]; i++)
        if (strcasecmp(in->headers[i][0], name) == 0)
            return in->headers[i][1];
    return NULL;
}

/* Finds key in a "k\0v\0k\0v\0\0" list. */
static const char *pairs_find(const char *p, const char *key)
{
    while (*p) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, key) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* Splits "a=1<sep>b=2" into pairs (blanks after sep skipped). */
static void pairs_split(const char *in, char sep, char *out, size_t size)
{
    size_t n = 0;
    while (in && *in && n + 4 < size) {
        while (*in == ' ')
            in++;
        const char *end = strchr(in, sep);
        size_t len = end ? (size_t)(end - in) : strlen(in);
        const char *eq = memchr(in, '=', len);
        size_t klen = eq ? (size_t)(eq - in) : len, vlen = eq ? len - klen - 1 : 0;
        if (n + klen + vlen + 3 >= size)
            break;
        memcpy(out + n, in, klen);
        n += klen;
        out[n++] = '\0';
        memcpy(out + n, eq ? eq + 1 : "", vlen);
        n += vlen;
        out[n++] = '\0';
        in = end ? end + 1 : NULL;
    }
    out[n] = '\0';
}

static const char *lookup(void *ctx, int kind, const char *name)
{
    struct source_ctx *c = ctx;
    if (kind == NX_REQ_QUERY)
        return pairs_find(c->query, name);
    if (kind == NX_REQ_COOKIE)
        return pairs_find(c->cookies, name);
    return header(c->in, name);
}

/* The request's peer, from its numeric address. */
static bool peer(void *ctx, struct sockaddr_storage *out, socklen_t *len)
{
    struct source_ctx *c = ctx;
    const char *p = c->in->peer;
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (p && inet_pton(AF_INET, p, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        *len = sizeof(*v4);
        return true;
    }
    if (p && inet_pton(AF_INET6, p, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        *len = sizeof(*v6);
        return true;
    }
    return false;
}

/* No suspend: offloaded work runs at once. */
static const nx_http_source_t source = {lookup, NULL, NULL, peer};

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void copy_out(nx_http_conn_t *hc, nx_loopback_resp_t *out)
{
    struct nx_resp *r = &hc->resp;
    out->status = r->status;
    out->body = dup_n(r->body ? r->body : "", r->body ? r->len : 0);
    out->len = r->body ? r->len : 0;
    out->content_type = r->content_type ? dup_n(r->content_type, strlen(r->content_type)) : NULL;
    int n = 0;
    for (struct nx_resp_hdr *h = r->headers; h && n < 31; h = h->next)
        n++;
    out->nheaders = n;
    /* the list is newest first: store it oldest first */
    for (struct nx_resp_hdr *h = r->headers; h && n > 0; h = h->next) {
        n--;
        out->headers[n][0] = dup_n(h->name, strlen(h->name));
        out->headers[n][1] = dup_n(h->value, strlen(h->value));
    }
    if (hc->req.request_id && out->nheaders < 32) {
        out->headers[out->nheaders][0] = dup_n("X-Request-ID", 12);
        out->headers[out->nheaders][1] = dup_n(hc->req.request_id, strlen(hc->req.request_id));
        out->nheaders++;
    }
}

void nx_loopback_run(const nx_loopback_req_t *in, nx_loopback_resp_t *out)
{
    memset(out, 0, sizeof(*out));
    struct source_ctx ctx = {.in = in};
    pairs_split(in->query, '&', ctx.query, sizeof(ctx.query));
    pairs_split(header(in, "Cookie"), ';', ctx.cookies, sizeof(ctx.cookies));
    nx_http_conn_t *hc = nx_pipeline_begin(in->method, in->path, &source, &ctx);
    if (!hc)
        return;
    hc->has_body = in->body != NULL;
    nx_pipeline_run(hc, NX_STAGE_HEADERS);
    if (in->body && !hc->err.code)
        nx_pipeline_take_body(hc, in->body, in->body_len);
    nx_pipeline_run(hc, NX_STAGE_REQUEST);
    nx_pipeline_run(hc, NX_STAGE_RESPONSE);
    hc->state = NX_CONN_QUEUED;
    copy_out(hc, out);
    nx_pipeline_run(hc, NX_STAGE_DONE);
    nx_pipeline_end(hc);
}

const char *nx_loopback_header(const nx_loopback_resp_t *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i][0], name) == 0)
            return r->headers[i][1];
    return NULL;
}

void nx_loopback_release(nx_loopback_resp_t *r)
{
    free(r->body);
    free(r->content_type);
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i][0]);
        free(r->headers[i][1]);
    }
    memset(r, 0, sizeof(*r));
}
