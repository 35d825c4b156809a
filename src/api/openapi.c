/*
 * openapi.c - the API's own description and its browser UI.
 *
 * GET /openapi.json serves src/api/openapi.json as compiled into the binary
 * (core/embed.h), so the document always matches the build. GET /docs is a
 * small Swagger UI page whose scripts and styles come from /docs/{asset}:
 * swagger-ui-dist files embedded at build time (pinned by web/package-lock
 * .json), plus the page's start-up script. Nothing is fetched from the
 * network at run time: the Content-Security-Policy allows only this origin,
 * and the online validator badge is turned off.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "core/embed.h"
#include "core/err.h"

#include <string.h>

#define ASSET_CACHE "public, max-age=86400"
#define DOCS_CSP                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "        \
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "                \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const char docs_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "  <meta charset=\"utf-8\">\n"
    "  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "  <title>NexusAPI - API documentation</title>\n"
    "  <link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">\n"
    "  <link rel=\"icon\" type=\"image/png\" sizes=\"32x32\" href=\"/docs/favicon-32x32.png\">\n"
    "  <link rel=\"icon\" type=\"image/png\" sizes=\"16x16\" href=\"/docs/favicon-16x16.png\">\n"
    "</head>\n"
    "<body>\n"
    "  <div id=\"swagger-ui\"></div>\n"
    "  <script src=\"/docs/swagger-ui-bundle.js\"></script>\n"
    "  <script src=\"/docs/swagger-ui-standalone-preset.js\"></script>\n"
    "  <script src=\"/docs/nexus-docs.js\"></script>\n"
    "</body>\n"
    "</html>\n";

static const char docs_js[] =
    "window.addEventListener('load', function () {\n"
    "  window.ui = SwaggerUIBundle({\n"
    "    url: '/openapi.json',\n"
    "    dom_id: '#swagger-ui',\n"
    "    deepLinking: true,\n"
    "    validatorUrl: null,\n"
    "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],\n"
    "    plugins: [SwaggerUIBundle.plugins.DownloadUrl],\n"
    "    layout: 'StandaloneLayout'\n"
    "  });\n"
    "});\n";

/* The files /docs/{asset} may serve, with their media types. */
static const struct {
    const char *name;
    const char *type;
} assets[] = {
    {"swagger-ui.css", "text/css; charset=utf-8"},
    {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
    {"swagger-ui-standalone-preset.js", "text/javascript; charset=utf-8"},
    {"favicon-32x32.png", "image/png"},
    {"favicon-16x16.png", "image/png"},
};

static const nx_embed_file_t *embed_find(const char *name)
{
    for (size_t i = 0; i < nx_embed_web_count; i++)
        if (nx_embed_web[i].name && strcmp(nx_embed_web[i].name, name) == 0)
            return &nx_embed_web[i];
    return NULL;
}

static int send_embedded(nx_req_t *req, const char *name, const char *type,
                         const char *cache, nx_err_t *err)
{
    const nx_embed_file_t *f = embed_find(name);
    if (!f)
        return nx_err_set(err, NX_ENOTFOUND, "No such documentation asset.");
    if (nx_resp_static(req, 200, type, f->start, (size_t)(f->end - f->start), cache) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_api_openapi_get(nx_req_t *req, nx_err_t *err)
{
    return send_embedded(req, "openapi.json", "application/json", "no-cache", err);
}

int nx_api_docs_get(nx_req_t *req, nx_err_t *err)
{
    if (nx_resp_header(req, "Content-Security-Policy", DOCS_CSP) != NX_OK ||
        nx_resp_static(req, 200, "text/html; charset=utf-8", (const unsigned char *)docs_html,
                       sizeof(docs_html) - 1, "no-cache") != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_api_docs_asset_get(nx_req_t *req, nx_err_t *err)
{
    const char *name = nx_req_param(req, 0);
    if (strcmp(name, "nexus-docs.js") == 0) {
        if (nx_resp_static(req, 200, "text/javascript; charset=utf-8",
                           (const unsigned char *)docs_js, sizeof(docs_js) - 1,
                           "no-cache") != NX_OK)
            return nx_err_set(err, NX_ENOMEM, NULL);
        return NX_OK;
    }
    for (size_t i = 0; i < NX_ARRAY_LEN(assets); i++)
        if (strcmp(name, assets[i].name) == 0)
            return send_embedded(req, name, assets[i].type, ASSET_CACHE, err);
    return nx_err_set(err, NX_ENOTFOUND, "No such documentation asset.");
}
