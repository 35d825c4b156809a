/*
 * openapi.c - the API's own description and its browser UI.
 *
 * GET /openapi.json serves src/api/openapi.json as compiled into the binary
 * (core/embed.h), so the document always matches the build, completed once
 * at first use from the program's own tables: every shared resource of the
 * route table's /api/v2 group gets the v2 copy of its v1 operation (written
 * once, in v1), the job types and their costs come from the job registry
 * (${costs}, ${cost.<type>}, the JobType enum, one output schema per type),
 * and v1's operations are marked deprecated when API_V1_DEPRECATED_AT is
 * set. /openapi/v1.json and /openapi/v2.json hold one version each, and
 * /docs offers the two in Swagger UI's version picker. GET /docs is a
 * small Swagger UI page whose scripts and styles come from /docs/{asset}:
 * swagger-ui-dist files embedded at build time (pinned by web/package-lock
 * .json), plus the page's start-up script. Nothing is fetched from the
 * network at run time: the Content-Security-Policy allows only this origin,
 * and the online validator badge is turned off.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "config/settings.h"
#include "core/buf.h"
#include "core/embed.h"
#include "core/err.h"
#include "jobs/jobs.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
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
    "    urls: [{url: '/openapi/v2.json', name: 'v2'}, {url: '/openapi/v1.json', name: 'v1'}],\n"
    "    'urls.primaryName': 'v2',\n"
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

/* ---- the served document ------------------------------------------------- */

#define DOC_MAX (16 * 1024 * 1024)

/* The v2 copy of a shared resource's v1 operation: same description,
 * its own operationId. */
static void mount_v2(json_t *paths, const nx_route_group_t *g)
{
    for (size_t i = 0; i < g->nroutes; i++) {
        const nx_route_t *r = &g->routes[i];
        char v2[128], v1[128], method[16];
        size_t k = 0;
        for (; r->method[k] && k + 1 < sizeof(method); k++)
            method[k] = (char)(r->method[k] | 0x20);
        method[k] = '\0';
        snprintf(v2, sizeof(v2), "%s%s", g->prefix, r->pattern);
        snprintf(v1, sizeof(v1), "/api/v1%s", r->pattern);
        json_t *item = json_object_get(paths, v2);
        json_t *src = json_object_get(json_object_get(paths, v1), method);
        if (json_object_get(item, method) || !src)
            continue; /* documented as a v2 operation of its own, or not at all */
        if (!item) {
            item = json_object();
            json_object_set_new(paths, v2, item);
        }
        json_t *op = json_deep_copy(src);
        const char *id = json_string_value(json_object_get(op, "operationId"));
        if (id) {
            char id2[128];
            snprintf(id2, sizeof(id2), "%sV2", id);
            json_object_set_new(op, "operationId", json_string(id2));
        }
        json_object_set_new(item, method, op);
    }
}

/* "10 for summarise, 25 for analyse" */
static void costs_text(char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; nx_job_type_at(i); i++) {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%d for %s", i ? ", " : "", nx_job_type_at(i)->cost,
                 nx_job_type_at(i)->name);
    }
}

/* Replaces ${costs} and ${cost.<type>} in every string of v. */
static void fill_text(json_t *v)
{
    size_t i;
    const char *k;
    json_t *item;
    if (json_is_object(v)) {
        json_object_foreach(v, k, item) fill_text(item);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item) fill_text(item);
    } else if (json_is_string(v) && strstr(json_string_value(v), "${")) {
        char out[4096], costs[256];
        const char *p = json_string_value(v);
        size_t n = 0;
        costs_text(costs, sizeof(costs));
        while (*p && n + 1 < sizeof(out)) {
            const nx_job_type_t *t = NULL;
            char name[64];
            if (strncmp(p, "${costs}", 8) == 0) {
                n += (size_t)snprintf(out + n, sizeof(out) - n, "%s", costs);
                p += 8;
            } else if (sscanf(p, "${cost.%63[a-z_]}", name) == 1 &&
                       (t = nx_job_type_find(name)) != NULL) {
                n += (size_t)snprintf(out + n, sizeof(out) - n, "%d", t->cost);
                p = strchr(p, '}') + 1;
            } else {
                out[n++] = *p++;
            }
            if (n >= sizeof(out))
                n = sizeof(out) - 1;
        }
        out[n] = '\0';
        json_string_set(v, out);
    }
}

/* The job types from the registry: the JobType enum, and one output schema
 * per type for the Job's output and the v2 Job's result. */
static void fill_job_types(json_t *doc)
{
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *types = json_array();
    json_t *outputs[] = {
        json_object_get(json_object_get(json_object_get(json_object_get(schemas, "Job"),
                                                        "properties"), "output"), "oneOf"),
        json_object_get(json_object_get(json_object_get(json_object_get(schemas, "JobV2"),
                                                        "properties"), "result"), "oneOf"),
    };
    for (size_t i = 0; nx_job_type_at(i); i++) {
        const nx_job_type_t *t = nx_job_type_at(i);
        json_array_append_new(types, json_string(t->name));
        char ref[128];
        snprintf(ref, sizeof(ref), "#/components/schemas/%s", t->output_schema);
        for (size_t k = 0; k < NX_ARRAY_LEN(outputs); k++)
            if (json_is_array(outputs[k]))
                json_array_append_new(outputs[k], json_pack("{s:s}", "$ref", ref));
    }
    json_object_set_new(json_object_get(schemas, "JobType"), "enum", types);
    fill_text(doc);
}

static json_t *ref(const char *kind, const char *name)
{
    char r[128];
    snprintf(r, sizeof(r), "#/components/%s/%s", kind, name);
    return json_pack("{s:s}", "$ref", r);
}

/* Adds the named component header to a response written out in the
 * document (a $ref'd response is described in its component). */
static void add_header(json_t *resp, const char *name)
{
    if (!json_is_object(resp) || json_object_get(resp, "$ref"))
        return;
    json_t *h = json_object_get(resp, "headers");
    if (!h) {
        h = json_object();
        json_object_set_new(resp, "headers", h);
    }
    if (!json_object_get(h, name))
        json_object_set_new(h, name, ref("headers", name));
}

/* What the API's stages add to every operation under /api/, written once
 * here rather than in each: 429 and the RateLimit headers; on POSTs the
 * Idempotency-Key and its 409; on GETs If-None-Match, 304 and the 200's
 * ETag and Cache-Control. */
static void add_patterns(json_t *paths)
{
    const char *path, *method, *code;
    json_t *item, *op, *resp;
    json_object_foreach(paths, path, item) {
        if (strncmp(path, "/api/", 5) != 0)
            continue;
        json_object_foreach(item, method, op) {
            json_t *responses = json_object_get(op, "responses");
            json_t *params = json_object_get(op, "parameters");
            if (!json_is_object(responses) || !json_is_array(params))
                continue;
            bool get = strcmp(method, "get") == 0, post = strcmp(method, "post") == 0;
            json_object_foreach(responses, code, resp) if (code[0] == '2' || code[0] == '4') {
                add_header(resp, "RateLimit-Policy");
                add_header(resp, "RateLimit");
            }
            if (get) {
                add_header(json_object_get(responses, "200"), "ETag");
                add_header(json_object_get(responses, "200"), "Cache-Control");
                json_array_append_new(params, ref("parameters", "IfNoneMatch"));
                json_object_set_new(responses, "304", ref("responses", "NotModified"));
            }
            if (post) {
                json_object_foreach(responses, code, resp) if (code[0] == '2')
                    add_header(resp, "Idempotent-Replayed");
                json_array_append_new(params, ref("parameters", "IdempotencyKey"));
                if (!json_object_get(responses, "409"))
                    json_object_set_new(responses, "409", ref("responses", "IdempotencyKeyInUse"));
            }
            json_object_set_new(responses, "429", ref("responses", "RateLimited"));
        }
    }
}

/* v1's operations are deprecated once API_V1_DEPRECATED_AT is set. */
static void mark_v1(json_t *paths)
{
    if (!nx_cfg || !nx_cfg->api_v1_deprecated_at)
        return;
    const char *path, *method;
    json_t *item, *op;
    json_object_foreach(paths, path, item) {
        if (strncmp(path, "/api/v1/", 8) != 0)
            continue;
        json_object_foreach(item, method, op) json_object_set_new(op, "deprecated", json_true());
    }
}

/* A copy of doc without the other version's paths (version 1 or 2). */
static json_t *one_version(json_t *doc, int version)
{
    json_t *copy = json_deep_copy(doc);
    json_t *paths = json_object_get(copy, "paths");
    const char *drop = version == 1 ? "/api/v2/" : "/api/v1/";
    const char *path;
    json_t *item;
    void *tmp;
    json_object_foreach_safe(paths, tmp, path, item) {
        if (strncmp(path, drop, 8) == 0)
            json_object_del(paths, path);
    }
    return copy;
}

static int dump_cb(const char *p, size_t n, void *ud)
{
    return nx_buf_append(ud, p, n) == NX_OK ? 0 : -1;
}

static struct {
    nx_buf_t text[3]; /* heap, for the life of the process: both, v1, v2 */
    bool ok;
} served;
static pthread_once_t served_once = PTHREAD_ONCE_INIT;

static void build(void)
{
    const nx_embed_file_t *f = embed_find("openapi.json");
    json_t *doc = f ? json_loadb((const char *)f->start, (size_t)(f->end - f->start),
                                 JSON_REJECT_DUPLICATES, NULL)
                    : NULL;
    if (!doc)
        return;
    json_t *paths = json_object_get(doc, "paths");
    for (size_t g = 0; g < nx_api_route_groups_count; g++)
        if (nx_api_route_groups[g].version == 2)
            mount_v2(paths, &nx_api_route_groups[g]);
    fill_job_types(doc);
    add_patterns(paths);
    mark_v1(paths);
    json_t *docs[3] = {doc, one_version(doc, 1), one_version(doc, 2)};
    served.ok = true;
    for (int i = 0; i < 3; i++) {
        nx_buf_init(&served.text[i], NULL, DOC_MAX);
        if (!docs[i] || json_dump_callback(docs[i], dump_cb, &served.text[i],
                                           JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
            nx_buf_puts(&served.text[i], "\n") != NX_OK)
            served.ok = false;
        json_decref(docs[i]);
    }
}

const char *nx_api_openapi_document(int version, size_t *len)
{
    pthread_once(&served_once, build);
    if (!served.ok || version < 0 || version > 2)
        return NULL;
    *len = served.text[version].len;
    return served.text[version].data;
}

static int send_document(nx_req_t *req, int version, nx_err_t *err)
{
    size_t len;
    const char *doc = nx_api_openapi_document(version, &len);
    if (!doc)
        return nx_err_set(err, NX_EINTERNAL, NULL);
    if (nx_resp_static(req, 200, "application/json", (const unsigned char *)doc, len,
                       "no-cache") != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_api_openapi_get(nx_req_t *req, nx_err_t *err) { return send_document(req, 0, err); }

int nx_api_openapi_version_get(nx_req_t *req, nx_err_t *err)
{
    const char *v = nx_req_param(req, 0);
    if (strcmp(v, "v1.json") == 0)
        return send_document(req, 1, err);
    if (strcmp(v, "v2.json") == 0)
        return send_document(req, 2, err);
    return nx_err_set(err, NX_ENOTFOUND, "No such document: try v1.json or v2.json.");
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
