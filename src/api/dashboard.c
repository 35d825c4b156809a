/*
 * dashboard.c - the browser dashboard: GET / and GET /assets/{asset}.
 *
 * The app (web/dashboard/, Preact and uPlot built by Vite) is compiled into
 * the binary like Swagger UI (cmake/embed.cmake, table nx_embed_dashboard):
 * index.html plus content-hashed files under assets/, each script and
 * style sheet beside a gzip copy made at build time. It talks to the
 * public API only.
 *
 * Caching: assets change name when they change, so they are
 * "public, max-age=31536000, immutable"; index.html is "no-cache" (always
 * revalidated). Every file has a strong ETag (its SHA-256, computed once);
 * a matching If-None-Match is a 304. A client accepting gzip gets the gzip
 * copy (its own ETag, Vary: Accept-Encoding).
 *
 * Security headers on every answer here: a strict Content-Security-Policy
 * (scripts, styles, images and fetches from this origin only: no inline
 * script or style, no eval, no framing), nosniff and a same-origin
 * Referrer-Policy. Cookie-authenticated writes are checked against
 * PUBLIC_URL by the auth stage (auth/middleware.c): the app's fetches carry
 * this origin in Origin.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "auth/digest.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/mem.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DASHBOARD_CSP                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "         \
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "       \
    "form-action 'self'; frame-ancestors 'none'"
#define ASSET_CACHE "public, max-age=31536000, immutable"
#define ETAG_SIZE 36 /* a quote, 32 hex digits, a quote, NUL */

static char (*etags)[ETAG_SIZE]; /* per embedded file; for the life of the process */
static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

static void etags_build(void)
{
    etags = nx_calloc(nx_embed_dashboard_count ? nx_embed_dashboard_count : 1, ETAG_SIZE);
    for (size_t i = 0; etags && i < nx_embed_dashboard_count; i++) {
        const nx_embed_file_t *f = &nx_embed_dashboard[i];
        char hex[NX_SHA256_HEX_LEN + 1];
        if (f->name && nx_sha256_hex(f->start, (size_t)(f->end - f->start), hex) == NX_OK)
            snprintf(etags[i], ETAG_SIZE, "\"%.32s\"", hex);
    }
}

static const nx_embed_file_t *find(const char *name, const char **etag)
{
    pthread_once(&etags_once, etags_build);
    for (size_t i = 0; i < nx_embed_dashboard_count; i++)
        if (nx_embed_dashboard[i].name && strcmp(nx_embed_dashboard[i].name, name) == 0) {
            *etag = etags && etags[i][0] ? etags[i] : NULL;
            return &nx_embed_dashboard[i];
        }
    return NULL;
}

static const char *media_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < NX_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* True when the next list element of s (RFC 9110 5.6.1) starts with token
 * and, if it carries q=, a non-zero one. Advances *s past the element. */
static bool element_is(const char **s, const char *token, size_t n)
{
    const char *p = *s + strspn(*s, " \t");
    const char *end = p + strcspn(p, ",");
    *s = *end ? end + 1 : end;
    if ((size_t)(end - p) < n || strncasecmp(p, token, n) != 0)
        return false;
    p += n;
    p += strspn(p, " \t");
    if (p == end)
        return true;
    if (*p != ';')
        return false;
    const char *q = strstr(p, "q=");
    if (!q || q > end)
        return true;
    for (q += 2; q < end && (*q == '0' || *q == '.'); q++)
        ;
    return q < end && *q >= '1' && *q <= '9';
}

static bool accepts_gzip(nx_req_t *req)
{
    const char *s = nx_req_header(req, "Accept-Encoding");
    while (s && *s)
        if (element_is(&s, "gzip", 4))
            return true;
    return false;
}

/* If-None-Match (weak comparison, RFC 9110 13.1.2) names etag, or is "*". */
static bool not_modified(nx_req_t *req, const char *etag)
{
    const char *s = nx_req_header(req, "If-None-Match");
    size_t n = strlen(etag);
    while (s && *s) {
        s += strspn(s, " \t,");
        if (*s == '*')
            return true;
        if (strncmp(s, "W/", 2) == 0)
            s += 2;
        if (strncmp(s, etag, n) == 0 && (s[n] == '\0' || s[n] == ',' || s[n] == ' '))
            return true;
        s += strcspn(s, ",");
    }
    return false;
}

static int security_headers(nx_req_t *req)
{
    if (nx_resp_header(req, "Content-Security-Policy", DASHBOARD_CSP) != NX_OK ||
        nx_resp_header(req, "X-Content-Type-Options", "nosniff") != NX_OK ||
        nx_resp_header(req, "Referrer-Policy", "same-origin") != NX_OK ||
        nx_resp_header(req, "X-Frame-Options", "DENY") != NX_OK)
        return NX_ENOMEM;
    return NX_OK;
}

static int send_file(nx_req_t *req, const char *name, const char *cache, nx_err_t *err)
{
    const char *etag = NULL, *gz_etag = NULL;
    const nx_embed_file_t *f = find(name, &etag);
    if (!f)
        return nx_err_set(err, NX_ENOTFOUND, "No such file of the dashboard.");
    char gz_name[256];
    snprintf(gz_name, sizeof(gz_name), "%s.gz", name);
    const nx_embed_file_t *gz = find(gz_name, &gz_etag);
    bool ok = security_headers(req) == NX_OK;
    if (gz && accepts_gzip(req)) {
        f = gz;
        etag = gz_etag;
        ok = ok && nx_resp_header(req, "Content-Encoding", "gzip") == NX_OK;
    }
    if (gz)
        ok = ok && nx_resp_header(req, "Vary", "Accept-Encoding") == NX_OK;
    if (etag)
        ok = ok && nx_resp_header(req, "ETag", etag) == NX_OK;
    if (!ok)
        return nx_err_set(err, NX_ENOMEM, NULL);
    if (etag && not_modified(req, etag)) {
        if (nx_resp_header(req, "Cache-Control", cache) != NX_OK)
            return nx_err_set(err, NX_ENOMEM, NULL);
        return nx_resp_send(req, 304, NULL, NULL, 0);
    }
    if (nx_resp_static(req, 200, media_type(name), f->start, (size_t)(f->end - f->start),
                       cache) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_api_dashboard_get(nx_req_t *req, nx_err_t *err)
{
    const char *etag;
    if (!find("index.html", &etag))
        return nx_err_set(err, NX_ENOTFOUND, "This build of nexusapi has no dashboard (web/"
                                             "dashboard was not built); the API is at /api/v1.");
    return send_file(req, "index.html", "no-cache", err);
}

int nx_api_dashboard_asset_get(nx_req_t *req, nx_err_t *err)
{
    const char *name = nx_req_param(req, 0);
    char path[200];
    if (strlen(name) >= sizeof(path) - 8 || strstr(name, ".gz"))
        return nx_err_set(err, NX_ENOTFOUND, "No such file of the dashboard.");
    snprintf(path, sizeof(path), "assets/%s", name);
    return send_file(req, path, ASSET_CACHE, err);
}
