/*
 * versions.c - the versions stage: what a v1 answer says about v1's future.
 *
 * With API_V1_DEPRECATED_AT set, every answer under /api/v1 - success or
 * problem, matched or not - carries
 *   Deprecation: @<Unix time>                       (RFC 9745)
 *   Link: </api/v2/...>; rel="successor-version"    (RFC 5829)
 * naming the same resource under v2 (the v1 submission routes, which v2
 * replaced with POST /jobs, name /api/v2/jobs); with API_V1_SUNSET set,
 *   Sunset: <HTTP date>                              (RFC 8594)
 * too. v2 answers carry none of them.
 */
#include "core/nx.h"
#include "api/api.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

#define V1 "/api/v1"

static bool under_v1(const char *path)
{
    size_t n = strlen(V1);
    return strncmp(path, V1, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* The v2 path of a v1 path: the same resource, or /api/v2/jobs for the
 * routes v2 replaced. Arena string. */
static const char *successor(nx_req_t *req)
{
    static const char *const replaced[] = {"/summarise", "/summarize", "/analyse"};
    const char *rest = req->path + strlen(V1);
    for (size_t i = 0; i < NX_ARRAY_LEN(replaced); i++)
        if (strcmp(rest, replaced[i]) == 0)
            rest = "/jobs";
    return nx_arena_sprintf(req->arena, "</api/v2%s>; rel=\"successor-version\"", rest);
}

int nx_api_stage_versions(nx_req_t *req, nx_err_t *err)
{
    const nx_settings_t *s = nx_cfg;
    if (!s || (!s->api_v1_deprecated_at && !s->api_v1_sunset) || !under_v1(req->path))
        return NX_OK;
    int rc = NX_OK;
    if (s->api_v1_deprecated_at) {
        char at[32];
        snprintf(at, sizeof(at), "@%lld", s->api_v1_deprecated_at);
        const char *link = successor(req);
        rc = link ? nx_resp_header(req, "Deprecation", at) : NX_ENOMEM;
        if (rc == NX_OK)
            rc = nx_resp_header(req, "Link", link);
    }
    if (rc == NX_OK && s->api_v1_sunset) {
        char date[30];
        nx_http_date(s->api_v1_sunset, date);
        rc = nx_resp_header(req, "Sunset", date);
    }
    /* headers are advice: running short of memory for them fails nothing */
    NX_UNUSED(err);
    return NX_OK;
}
