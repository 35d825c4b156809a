/*
 * httpc.c - outbound HTTP over libcurl, for every client of ours: Google
 * discovery, JWKS, the token and userinfo endpoints, Gemini, and webhooks.
 *
 * One easy handle per call, so nothing is shared between threads and no
 * connection is reused: each call connects anew, and check_addr sees every
 * address. Limits are not optional: timeouts, a body cap (an error, or a cut
 * when the caller asks), no redirects, TLS verification on, and the allowed
 * schemes. A call made for a traced request or job attempt carries its
 * traceparent (W3C Trace Context), with that span as the parent. Error
 * details are safe for clients and name only req->service;
 * the URL and libcurl's text go to log_detail. Everything handed back lives
 * on the caller's arena; the handle and header list are released before
 * returning.
 */
#include "core/nx.h"
#include "httpc/httpc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/trace.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define CONNECT_TIMEOUT_MS 5000
#define TOTAL_TIMEOUT_MS 10000
#define MAX_AGE_CEILING (86400L * 7)
#define HEADER_VALUE_MAX 512

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
void nx_httpc_global_init(void) { pthread_once(&once, global_init); }

/* State of one call, shared with libcurl's callbacks. */
struct call {
    const nx_httpc_req_t *req;
    nx_httpc_resp_t *resp;
    nx_arena_t *arena;
    nx_buf_t body;
    size_t max;
    bool too_big, refused;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    size_t len = size * n, room = c->max - c->body.len;
    if (len <= room)
        return nx_buf_append(&c->body, p, len) == NX_OK ? len : 0;
    if (c->req->truncate && nx_buf_append(&c->body, p, room) == NX_OK)
        c->resp->truncated = true;
    else
        c->too_big = true;
    return 0; /* stops the transfer */
}

static void cache_control(nx_httpc_resp_t *r, char *v)
{
    for (char *c = v; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    if (strstr(v, "no-store") || strstr(v, "no-cache"))
        r->no_store = true;
    char *ma = strstr(v, "max-age=");
    if (ma) {
        char *end;
        long s = strtol(ma + 8, &end, 10);
        if (end != ma + 8 && s >= 0)
            r->max_age = s > MAX_AGE_CEILING ? MAX_AGE_CEILING : s;
    }
}

/* Captures Cache-Control, Content-Type and Location of the final response. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    nx_httpc_resp_t *r = c->resp;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (after 100) */
        r->max_age = -1;
        r->no_store = false;
        r->content_type = r->location = NULL;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen > HEADER_VALUE_MAX)
        vlen = HEADER_VALUE_MAX;
    char **slot = NULL;
    if (nlen == 13 && strncasecmp(p, "cache-control", 13) == 0) {
        char tmp[HEADER_VALUE_MAX + 1];
        memcpy(tmp, v, vlen);
        tmp[vlen] = '\0';
        cache_control(r, tmp);
    } else if (nlen == 12 && strncasecmp(p, "content-type", 12) == 0) {
        slot = &r->content_type;
    } else if (nlen == 8 && strncasecmp(p, "location", 8) == 0) {
        slot = &r->location;
    }
    if (slot && !(*slot = nx_arena_strndup(c->arena, v, vlen)))
        return 0;
    return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct call *c = ud;
    return c->req->cancel(c->req->ud) ? 1 : 0;
}

/* Checks the address before the socket exists, so the connection goes to
 * exactly the address that was checked (no second resolution). */
static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct call *c = ud;
    struct sockaddr_storage ss;
    socklen_t len = a->addrlen < sizeof(ss) ? (socklen_t)a->addrlen : (socklen_t)sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, &a->addr, len);
    if (!c->req->check_addr((const struct sockaddr *)&ss, len, c->req->ud)) {
        c->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Sets everything but the body callbacks; false when libcurl refuses an
 * option (only an allocation failure can). */
static bool set_options(CURL *h, struct call *c, struct curl_slist *hdrs, char *errbuf)
{
    const nx_httpc_req_t *q = c->req;
    long ct = q->connect_timeout_ms > 0 ? q->connect_timeout_ms : CONNECT_TIMEOUT_MS;
    long tt = q->timeout_ms > 0 ? q->timeout_ms : TOTAL_TIMEOUT_MS;
    const char *protos = q->allow_http ? "http,https" : "https";
    bool ok = curl_easy_setopt(h, CURLOPT_URL, q->url) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protos) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_USERAGENT, "nexusapi/" NX_VERSION) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ct < tt ? ct : tt);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tt);
    /* a known length over the cap fails at once, unless the caller keeps a cut */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(q->truncate ? 0 : c->max));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    if (q->method && strcmp(q->method, "GET") != 0) {
        ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                                    (curl_off_t)q->body_len) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? q->body : "") == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method) == CURLE_OK;
    }
    if (q->basic_user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        ok = ok && curl_easy_setopt(h, CURLOPT_USERNAME, q->basic_user) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_PASSWORD,
                              q->basic_password ? q->basic_password : "") == CURLE_OK;
    }
    if (q->cancel) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (q->check_addr) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
        ok = ok && curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK;
    }
    return ok;
}

/* traceparent for the calling thread's trace (a request, a job attempt):
 * our span is the call's parent. "" when the thread has none. */
static const char *traceparent(nx_arena_t *arena)
{
    const nx_trace_t *t = nx_trace_current();
    char tp[NX_TRACEPARENT_LEN + 1];
    if (!t)
        return "";
    nx_trace_format(t, tp);
    return nx_arena_sprintf(arena, "traceparent: %s", tp);
}

/* The request headers: Accept, traceparent, Content-Type of a body, and the
 * caller's. */
static struct curl_slist *header_list(nx_arena_t *arena, const nx_httpc_req_t *q)
{
    const char *tp = traceparent(arena);
    struct curl_slist *l = tp ? curl_slist_append(NULL, "Accept: application/json") : NULL;
    if (l && tp[0]) {
        struct curl_slist *n = curl_slist_append(l, tp);
        if (!n) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = n;
    }
    if (l && q->content_type) {
        char *ct = nx_arena_sprintf(arena, "Content-Type: %s", q->content_type);
        struct curl_slist *n = ct ? curl_slist_append(l, ct) : NULL;
        if (!n) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = n;
    }
    for (const char *const *h = q->headers; l && h && *h; h++) {
        struct curl_slist *n = curl_slist_append(l, *h);
        if (!n)
            curl_slist_free_all(l);
        l = n;
    }
    return l;
}

static enum nx_httpc_fail classify(CURLcode rc, const struct call *c)
{
    if (c->refused)
        return NX_HTTPC_REFUSED;
    if (c->too_big || rc == CURLE_FILESIZE_EXCEEDED)
        return NX_HTTPC_TOOBIG;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return NX_HTTPC_TIMEOUT;
    case CURLE_ABORTED_BY_CALLBACK:
        return NX_HTTPC_ABORTED;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return NX_HTTPC_BADURL;
    default:
        return NX_HTTPC_UNREACHABLE;
    }
}

static int fail(const nx_httpc_req_t *q, const nx_httpc_resp_t *r, long timeout_ms,
                const char *why, nx_err_t *err)
{
    const char *s = q->service ? q->service : "the remote service";
    nx_err_log(err, "%s %s: %s", q->method ? q->method : "GET", q->url, why);
    switch (r->fail) {
    case NX_HTTPC_TIMEOUT:
        if (timeout_ms % 1000 == 0)
            return nx_err_set(err, NX_EUNAVAILABLE, "%s did not answer within %ld s", s,
                              timeout_ms / 1000);
        return nx_err_set(err, NX_EUNAVAILABLE, "%s did not answer within %ld ms", s,
                          timeout_ms);
    case NX_HTTPC_TOOBIG:
        return nx_err_set(err, NX_EUNAVAILABLE, "%s answer is larger than %zu bytes", s,
                          q->max_body ? q->max_body : (size_t)NX_HTTPC_MAX_BODY);
    case NX_HTTPC_ABORTED:
        return nx_err_set(err, NX_EUNAVAILABLE, "%s call abandoned: this process is stopping",
                          s);
    case NX_HTTPC_REFUSED:
        return nx_err_set(err, NX_EFORBIDDEN, "%s is at an address that is not allowed", s);
    case NX_HTTPC_BADURL:
        return nx_err_set(err, NX_EUNAVAILABLE, "%s request failed: its URL is not usable", s);
    default:
        return nx_err_set(err, NX_EUNAVAILABLE,
                          "%s request failed: the server could not be reached", s);
    }
}

int nx_httpc_perform(nx_arena_t *arena, const nx_httpc_req_t *req, nx_httpc_resp_t *resp,
                     nx_err_t *err)
{
    nx_httpc_global_init();
    memset(resp, 0, sizeof(*resp));
    resp->max_age = -1;
    struct call c = {.req = req, .resp = resp, .arena = arena};
    c.max = req->max_body ? req->max_body : NX_HTTPC_MAX_BODY;
    nx_buf_init(&c.body, arena, c.max + 1);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = h ? header_list(arena, req) : NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    if (!h || !hdrs || !set_options(h, &c, hdrs, errbuf)) {
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
        return nx_err_set(err, NX_ENOMEM, NULL);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (rc == CURLE_WRITE_ERROR && resp->truncated)
        rc = CURLE_OK;
    if (rc != CURLE_OK) {
        resp->fail = classify(rc, &c);
        long tt = req->timeout_ms > 0 ? req->timeout_ms : TOTAL_TIMEOUT_MS;
        return fail(req, resp, tt, errbuf[0] ? errbuf : curl_easy_strerror(rc), err);
    }
    resp->body = c.body.data ? c.body.data : nx_arena_strdup(arena, "");
    resp->len = c.body.len;
    return resp->body ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}

/* A part of h as an arena string; NULL when absent (or on ENOMEM: *oom). */
static char *url_part(nx_arena_t *arena, CURLU *h, CURLUPart what, unsigned flags, bool *oom)
{
    char *v = NULL;
    CURLUcode rc = curl_url_get(h, what, &v, flags);
    char *out = rc == CURLUE_OK && v ? nx_arena_strdup(arena, v) : NULL;
    if (rc == CURLUE_OUT_OF_MEMORY || (rc == CURLUE_OK && !out))
        *oom = true;
    curl_free(v);
    return out;
}

int nx_httpc_url_parse(nx_arena_t *arena, const char *url, nx_httpc_url_t *out, nx_err_t *err)
{
    memset(out, 0, sizeof(*out));
    CURLU *h = curl_url();
    if (!h)
        return nx_err_set(err, NX_ENOMEM, NULL);
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    bool oom = rc == CURLUE_OUT_OF_MEMORY;
    if (rc != CURLUE_OK) {
        curl_url_cleanup(h);
        return oom ? nx_err_set(err, NX_ENOMEM, NULL)
                   : nx_err_set(err, NX_EINVAL, "%s", curl_url_strerror(rc));
    }
    out->scheme = url_part(arena, h, CURLUPART_SCHEME, 0, &oom);
    out->host = url_part(arena, h, CURLUPART_HOST, 0, &oom);
    char *port = url_part(arena, h, CURLUPART_PORT, CURLU_DEFAULT_PORT, &oom);
    out->credentials = url_part(arena, h, CURLUPART_USER, 0, &oom) != NULL ||
                       url_part(arena, h, CURLUPART_PASSWORD, 0, &oom) != NULL;
    curl_url_cleanup(h);
    if (oom)
        return nx_err_set(err, NX_ENOMEM, NULL);
    if (!out->scheme || !out->host || !*out->host)
        return nx_err_set(err, NX_EINVAL, "No host part in the URL");
    out->port = port ? (int)strtol(port, NULL, 10) : 0;
    return NX_OK;
}

static void json_release(void *p) { json_decref(p); }

int nx_httpc_json(nx_arena_t *arena, const nx_httpc_resp_t *resp, const char *service,
                  struct json_t **out, nx_err_t *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(resp->body ? resp->body : "", resp->len, JSON_REJECT_DUPLICATES,
                           &jerr);
    if (!v) {
        nx_err_log(err, "HTTP %ld answer is not JSON: line %d: %s", resp->status, jerr.line,
                   jerr.text);
        return nx_err_set(err, NX_EUNAVAILABLE, "%s answer is not valid JSON",
                          service ? service : "the remote service");
    }
    if (nx_arena_defer(arena, json_release, v) != NX_OK) {
        json_decref(v);
        return nx_err_set(err, NX_ENOMEM, NULL);
    }
    *out = v;
    return NX_OK;
}

char *nx_httpc_escape(nx_arena_t *arena, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = e ? nx_arena_strdup(arena, e) : NULL;
    curl_free(e);
    return out;
}

char *nx_httpc_form(nx_arena_t *arena, const char *const *pairs)
{
    nx_buf_t b;
    nx_buf_init(&b, arena, 64 * 1024);
    if (nx_buf_puts(&b, "") != NX_OK)
        return NULL;
    for (const char *const *p = pairs; p[0]; p += 2) {
        if (!p[1])
            continue;
        char *v = nx_httpc_escape(arena, p[1]);
        if (!v || nx_buf_printf(&b, "%s%s=%s", b.len ? "&" : "", p[0], v) != NX_OK)
            return NULL;
    }
    return b.data;
}
