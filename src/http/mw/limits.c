/*
 * limits.c - what a request body must be before a handler sees it.
 *
 * Routes flagged NX_ROUTE_JSON take a JSON object: Content-Type must be
 * application/json (parameters allowed; a charset other than utf-8 is
 * refused) else 415; a body is read no further than NX_BODY_MAX (1 MiB):
 * a larger Content-Length gets 413 before any of it is read, a chunked body
 * passing the limit gets it once sent (conn.c); an empty body, malformed
 * JSON, a duplicated key (JSON_REJECT_DUPLICATES: {"a":1,"a":2} is ambiguous,
 * and parsers disagree which one wins) or a value that is not an object is a
 * 400. The parsed value is released with the request arena.
 *
 * Text that is not valid UTF-8 - raw bytes, or an escaped unpaired surrogate
 * such as "\ud800" - is a 400 when it breaks the body's structure, and a 422
 * naming the member when it sits inside a member's string value, so the
 * client learns which field to fix ({"text": "\xff"} -> 422, field "text").
 * So is the escaped NUL character "\u0000": valid JSON, but no text of this
 * API can hold it.
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
        return nx_mw_body_too_big(err);
    return NX_OK;
}

int nx_http_stage_limits(nx_req_t *req, nx_err_t *err)
{
    if (!nx_http_conn_of(req)->has_body)
        return NX_OK;
    if ((req->route_entry->flags & NX_ROUTE_JSON) &&
        nx_mw_check_content_type(nx_req_header(req, "Content-Type"), err) != NX_OK)
        return err->code;
    return nx_mw_check_content_length(nx_req_header(req, "Content-Length"), err);
}

int nx_mw_body_too_big(nx_err_t *err)
{
    return nx_err_set(err, NX_ETOOBIG, "The request body must not exceed %d bytes.",
                      NX_BODY_MAX);
}

int nx_mw_body_append(nx_buf_t *body, const char *data, size_t n, nx_err_t *err)
{
    int rc = nx_buf_append(body, data, n);
    if (rc == NX_ETOOBIG)
        return nx_mw_body_too_big(err);
    if (rc != NX_OK)
        return nx_err_set(err, rc, NULL);
    return NX_OK;
}

static void decref(void *p) { json_decref(p); }

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The code unit of a \uXXXX escape at p (p[0] == '\\'), or -1. */
static long escape_unit(const char *p, const char *end)
{
    if (end - p < 6 || p[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Copies body with every invalid UTF-8 byte and every unpaired surrogate
 * escape replaced by mark. NULL on arena exhaustion. */
static char *mark_bad_text(nx_arena_t *arena, const char *body, size_t len, const char *mark)
{
    nx_buf_t b;
    nx_buf_init(&b, arena, 8 * len + 64);
    const char *p = body, *end = body + len;
    while (p < end) {
        size_t ok = nx_utf8_valid_prefix(p, (size_t)(end - p));
        const char *stop = p + ok;
        while (p < stop) {
            const char *bs = memchr(p, '\\', (size_t)(stop - p));
            const char *upto = bs ? bs : stop;
            if (nx_buf_append(&b, p, (size_t)(upto - p)) != NX_OK)
                return NULL;
            p = upto;
            if (!bs)
                break;
            long hi = escape_unit(p, stop);
            if (hi >= 0xd800 && hi <= 0xdbff) {
                long lo = escape_unit(p + 6, stop);
                if (lo >= 0xdc00 && lo <= 0xdfff) { /* a proper pair */
                    if (nx_buf_append(&b, p, 12) != NX_OK)
                        return NULL;
                    p += 12;
                    continue;
                }
            }
            if (hi >= 0xd800 && hi <= 0xdfff) {
                if (nx_buf_puts(&b, mark) != NX_OK)
                    return NULL;
                p += 6;
                continue;
            }
            size_t n = stop - p >= 2 ? 2 : 1; /* any other escape pair */
            if (nx_buf_append(&b, p, n) != NX_OK)
                return NULL;
            p += n;
        }
        if (p < end) { /* one invalid byte */
            if (nx_buf_puts(&b, mark) != NX_OK)
                return NULL;
            p++;
        }
    }
    return b.data ? b.data : nx_arena_strdup(arena, "");
}

/* True when a string in v, at any depth (object keys included), passes
 * bad(text, length, arg). */
typedef bool (*text_test_fn)(const char *text, size_t len, const void *arg);

static bool any_text(json_t *v, text_test_fn bad, const void *arg)
{
    size_t i;
    const char *k;
    json_t *item;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return bad(json_string_value(v), json_string_length(v), arg);
    case JSON_ARRAY:
        json_array_foreach(v, i, item) if (any_text(item, bad, arg)) return true;
        return false;
    case JSON_OBJECT:
        json_object_foreach(v, k, item) if (bad(k, strlen(k), arg) || any_text(item, bad, arg))
            return true;
        return false;
    default:
        return false;
    }
}

static bool has_mark(const char *text, size_t len, const void *mark)
{
    NX_UNUSED(len);
    return strstr(text, mark) != NULL;
}

static bool has_nul(const char *text, size_t len, const void *arg)
{
    NX_UNUSED(arg);
    return memchr(text, '\0', len) != NULL;
}

/* Names, with a 422 field error each, the members of the object v whose
 * text (at any depth) passes bad; takes v. False when none does. */
static bool name_members(json_t *v, text_test_fn bad, const void *arg, const char *why,
                         const char *detail, nx_err_t *err)
{
    if (!v)
        return false;
    bool found = false;
    const char *key;
    json_t *member;
    json_object_foreach(v, key, member) {
        if (any_text(member, bad, arg)) {
            nx_err_field(err, key, "%s", why);
            found = true;
        }
    }
    json_decref(v);
    if (found && !err->detail[0])
        snprintf(err->detail, sizeof(err->detail), "%s", detail);
    return found;
}

/* For a body whose text is not valid UTF-8: when the bad text sits inside
 * string values of members, sets a 422 naming those members. */
static bool bad_text_field(nx_arena_t *arena, const char *body, size_t len, nx_err_t *err)
{
    unsigned char raw[8];
    char hex[17], mark[24];
    if (nx_random_bytes(raw, sizeof(raw)) != NX_OK)
        return false;
    nx_hex(raw, sizeof(raw), hex);
    snprintf(mark, sizeof(mark), "~nx%s~", hex);
    char *copy = mark_bad_text(arena, body, len, mark);
    return copy && name_members(json_loads(copy, JSON_REJECT_DUPLICATES, NULL), has_mark, mark,
                                "must be valid UTF-8 text",
                                "Text in the request body is not valid UTF-8.", err);
}

/* "\u0000" is valid JSON, but no text field of this API takes a NUL (C
 * strings, PostgreSQL text): a 422 naming the members that hold one. */
static bool nul_text_field(const char *body, size_t len, nx_err_t *err)
{
    return name_members(json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL),
                        has_nul, NULL, "must not contain the NUL character (\\u0000)",
                        "Text in the request body contains the NUL character.", err);
}

int nx_mw_parse_json_object(nx_arena_t *arena, const char *body, size_t len, json_t **out,
                            nx_err_t *err)
{
    *out = NULL;
    if (!body || len == 0)
        return nx_err_set(err, NX_EINVAL, "A JSON object body is required.");
    if (!nx_utf8_valid(body, len)) {
        if (bad_text_field(arena, body, len, err))
            return NX_EVALIDATION;
        return nx_err_set(err, NX_EINVAL, "The request body is not valid UTF-8.");
    }
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
        if (json_error_code(&je) == json_error_duplicate_key)
            return nx_err_set(err, NX_EINVAL, "The JSON body repeats a key.");
        if (json_error_code(&je) == json_error_invalid_utf8 ||
            strncmp(je.text, "invalid Unicode", 15) == 0) {
            if (bad_text_field(arena, body, len, err))
                return NX_EVALIDATION;
        }
        if (json_error_code(&je) == json_error_null_character ||
            json_error_code(&je) == json_error_null_byte_in_key) {
            if (nul_text_field(body, len, err))
                return NX_EVALIDATION;
            return nx_err_set(err, NX_EINVAL,
                              "The request body holds the NUL character (\\u0000) outside "
                              "a member's value.");
        }
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
