/*
 * limits.c - what a request body must be before a handler sees it.
 *
 * Routes flagged NX_ROUTE_JSON take a JSON object: Content-Type must be
 * application/json (parameters allowed; a charset other than utf-8 is
 * refused) else 415; a body is read no further than NX_BODY_MAX (1 MiB):
 * a larger Content-Length gets 413 before any of it is read, a chunked body
 * is cut off (connection closed) once it passes the limit; an empty body, invalid UTF-8, malformed
 * JSON, a duplicated key (JSON_REJECT_DUPLICATES: {"a":1,"a":2} is ambiguous,
 * and parsers disagree which one wins) or a value that is not an object is a
 * 400. The parsed value is released with the request arena.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Checks the parameters after the media type: only charset=utf-8 matters. */
static bool params_ok(const char *p)
{
    while (*p) {
        p = skip_ws(p);
        if (*p != ';')
            return false;
        p = skip_ws(p + 1);
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 8 && strncasecmp(p, "charset=", 8) == 0) {
            const char *v = p + 8;
            size_t vn = n - 8;
            while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--;
            if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
                v++;
                vn -= 2;
            }
            if (!((vn == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
                  (vn == 4 && strncasecmp(v, "utf8", 4) == 0)))
                return false;
        }
        p += n;
    }
    return true;
}

int nx_mw_check_content_type(const char *ct, nx_err_t *err)
{
    static const char json[] = "application/json";
    if (ct) {
        ct = skip_ws(ct);
        if (strncasecmp(ct, json, sizeof(json) - 1) == 0 && params_ok(ct + sizeof(json) - 1))
            return NX_OK;
    }
    return nx_err_set(err, NX_EMEDIATYPE,
                      "The request body must be sent as Content-Type: application/json.");
}

int nx_mw_check_content_length(const char *cl, nx_err_t *err)
{
    long long n;
    if (cl && nx_parse_int(cl, 0, (long long)1 << 62, &n) == NX_OK && n > NX_BODY_MAX)
        return nx_err_set(err, NX_ETOOBIG, "The request body must not exceed %d bytes.",
                          NX_BODY_MAX);
    return NX_OK;
}

int nx_mw_body_append(nx_buf_t *body, const char *data, size_t n, nx_err_t *err)
{
    int rc = nx_buf_append(body, data, n);
    if (rc == NX_ETOOBIG)
        return nx_err_set(err, NX_ETOOBIG, "The request body must not exceed %d bytes.",
                          NX_BODY_MAX);
    if (rc != NX_OK)
        return nx_err_set(err, rc, NULL);
    return NX_OK;
}

static void decref(void *p) { json_decref(p); }

int nx_mw_parse_json_object(nx_arena_t *arena, const char *body, size_t len, json_t **out,
                            nx_err_t *err)
{
    *out = NULL;
    if (!body || len == 0)
        return nx_err_set(err, NX_EINVAL, "A JSON object body is required.");
    if (!nx_utf8_valid(body, len))
        return nx_err_set(err, NX_EINVAL, "The request body is not valid UTF-8.");
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
        if (json_error_code(&je) == json_error_duplicate_key)
            return nx_err_set(err, NX_EINVAL, "The JSON body repeats a key.");
        return nx_err_set(err, NX_EINVAL, "The request body is not valid JSON (line %d, column %d).",
                          je.line, je.column);
    }
    if (nx_arena_defer(arena, decref, v) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    if (!json_is_object(v))
        return nx_err_set(err, NX_EINVAL, "The request body must be a JSON object.");
    *out = v;
    return NX_OK;
}
