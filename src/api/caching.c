/*
 * caching.c - HTTP caching of the API's reads (RFC 9110/9111).
 *
 * Every 200 answer to a GET (or HEAD) under /api/ carries a strong ETag - a
 * hash of the exact body - and Cache-Control: private, no-cache: a client
 * may keep it, but must ask again each time, and only for itself. An
 * If-None-Match that names the ETag (or is "*") turns the answer into 304
 * with no body. The handler has run by then, so the request's tenant
 * transaction checked the caller: a removed user gets 401, never a 304.
 * A malformed If-None-Match matches nothing.
 */
#include "core/nx.h"
#include "api/api.h"
#include "core/err.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

/* The entity tags of an If-None-Match list, compared weakly (RFC 9110
 * 13.1.2): W/"x" matches "x". False for a malformed list. */
static bool none_match(const char *list, const char *etag)
{
    size_t want = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return false;
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        size_t n = (size_t)(end - p) + 1;
        if (n == want && memcmp(p, etag, n) == 0)
            return true;
        p = end + 1;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != ',')
            return false;
    }
    return false;
}

int nx_api_stage_etag(nx_req_t *req, nx_err_t *err)
{
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!get || err->code || nx_resp_status(req) != 200 || req->api_version == 0)
        return NX_OK;
    size_t len;
    const char *body = nx_resp_body(req, &len, NULL);
    /* a 128-bit hash of the exact body: a change of any byte changes it (a
     * validator, not a secret); XXH3 hashes a page in a fraction of a µs */
    char hex[33], etag[40];
    nx_hash128_hex(body, len, hex);
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    if (nx_resp_header(req, "ETag", etag) != NX_OK ||
        nx_resp_header(req, "Cache-Control", "private, no-cache") != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    const char *inm = nx_req_header(req, "If-None-Match");
    if (inm && none_match(inm, etag) && nx_resp_send(req, 304, NULL, NULL, 0) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}
