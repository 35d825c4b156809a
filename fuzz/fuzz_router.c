/*
 * fuzz_router.c - the router (http/router.c) over the program's own route
 * table (api/routes.c): "METHOD PATH" in, a route, a 404 or a 405 out. A
 * match must name a route whose method fits and whose parameters came from
 * the path.
 */
#include "core/nx.h"
#include "fuzz.h"
#include "api/routes.h"
#include "core/err.h"
#include "http/http_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    nx_err_t err = {0};
    nx_fuzz_quiet();
    if (nx_router_init(nx_api_route_groups, nx_api_route_groups_count, &err) != NX_OK)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = nx_fuzz_str(data, size);
    char *sp = strchr(s, ' ');
    const char *method = sp ? s : "GET", *path = sp ? sp + 1 : s;
    if (sp)
        *sp = '\0';
    nx_http_conn_t *hc = nx_pipeline_begin(method, path, NULL, NULL);
    if (!hc)
        abort();
    nx_err_t err = {0};
    int rc = nx_router_match(&hc->req, method, path, &err);
    if (rc == NX_OK) {
        const nx_route_t *r = hc->req.route_entry;
        if (!r || !hc->req.route || hc->req.route_id < 0 ||
            (strcmp(r->method, method) != 0 &&
             !(strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)))
            abort();
        for (int i = 0; i < hc->req.nparams; i++)
            if (!hc->req.params[i][0] || strchr(hc->req.params[i], '/') ||
                !strstr(path, hc->req.params[i]))
                abort();
    } else if (rc != NX_ENOTFOUND && rc != NX_EMETHOD && rc != NX_ENOMEM) {
        abort();
    }
    nx_pipeline_end(hc);
    free(s);
    return 0;
}
