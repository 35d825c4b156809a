/*
 * test_openapi_routes.c - the served OpenAPI document and the route table
 * agree both ways, for both API versions: every route is documented (same
 * method, same full pattern), every documented operation is a route. The
 * job types and costs in the document are the job registry's; each
 * version's own document holds that version only. Routes flagged
 * NX_ROUTE_UNDOCUMENTED (operators' routes: GET /metrics) are the
 * exception, and must not be in the document. Also checks that the
 * document compiled into the binary is the one in the repository.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "core/embed.h"
#include "jobs/jobs.h"

#include <ctype.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* The served document: 0 both versions, 1 or 2 one of them. */
static json_t *load_served(int version)
{
    size_t len;
    const char *text = nx_api_openapi_document(version, &len);
    if (!text)
        fail_msg("the served document could not be built");
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        fail_msg("served document: %s (line %d)", je.text, je.line);
    return doc;
}

/* Calls fn for every route of the table, with its full pattern. */
static void each_route(void (*fn)(const nx_route_t *r, const char *path, void *ud), void *ud)
{
    for (size_t g = 0; g < nx_api_route_groups_count; g++) {
        const nx_route_group_t *grp = &nx_api_route_groups[g];
        for (size_t i = 0; i < grp->nroutes; i++) {
            char path[160];
            snprintf(path, sizeof(path), "%s%s", grp->prefix, grp->routes[i].pattern);
            fn(&grp->routes[i], path, ud);
        }
    }
}

static void lower(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static void check_documented(const nx_route_t *r, const char *path, void *ud)
{
    json_t *paths = ud;
    char m[16];
    lower(r->method, m, sizeof(m));
    json_t *op = json_object_get(json_object_get(paths, path), m);
    if (r->flags & NX_ROUTE_UNDOCUMENTED) {
        if (op)
            fail_msg("%s %s is an operators' route but is in the document", r->method, path);
        return;
    }
    if (!json_is_object(op))
        fail_msg("route %s %s is not in the served document", r->method, path);
    if (!json_is_object(json_object_get(op, "responses")))
        fail_msg("%s %s documents no responses", r->method, path);
    /* Authenticated routes must say so. */
    bool secured = json_array_size(json_object_get(op, "security")) > 0;
    if ((r->flags & (NX_ROUTE_AUTH | NX_ROUTE_ADMIN)) && !secured)
        fail_msg("%s %s needs a token but documents no security", r->method, path);
    if ((r->flags & NX_ROUTE_JSON) && !json_is_object(json_object_get(op, "requestBody")))
        fail_msg("%s %s takes a JSON body but documents none", r->method, path);
}

static void test_every_route_documented(void **state)
{
    (void)state;
    json_t *doc = load_served(0);
    json_t *paths = json_object_get(doc, "paths");
    assert_true(json_is_object(paths));
    each_route(check_documented, paths);
    json_decref(doc);
}

struct find {
    const char *method, *path;
    bool found;
    size_t routes;
};

static void find_route(const nx_route_t *r, const char *path, void *ud)
{
    struct find *f = ud;
    char m[16];
    lower(r->method, m, sizeof(m));
    if (r->flags & NX_ROUTE_UNDOCUMENTED)
        return; /* not in the document, by design */
    f->routes++;
    if (strcmp(m, f->method) == 0 && strcmp(path, f->path) == 0)
        f->found = true;
}

static void test_every_operation_routed(void **state)
{
    (void)state;
    static const char *const methods[] = {"get", "put", "post", "delete", "options",
                                          "head", "patch", "trace"};
    json_t *doc = load_served(0);
    const char *path;
    json_t *item;
    size_t ops = 0, routes = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        for (size_t k = 0; k < NX_ARRAY_LEN(methods); k++) {
            if (!json_object_get(item, methods[k]))
                continue;
            ops++;
            struct find f = {methods[k], path, false, 0};
            each_route(find_route, &f);
            routes = f.routes;
            if (!f.found)
                fail_msg("the document has %s %s, which is not a route", methods[k], path);
        }
    }
    assert_int_equal(ops, routes);
    json_decref(doc);
}

/* Each version's document: its own paths and the unversioned ones only. */
static void test_version_documents(void **state)
{
    (void)state;
    for (int v = 1; v <= 2; v++) {
        json_t *doc = load_served(v);
        const char *path;
        json_t *item;
        bool own = false;
        char mine[16], other[16];
        snprintf(mine, sizeof(mine), "/api/v%d/", v);
        snprintf(other, sizeof(other), "/api/v%d/", 3 - v);
        json_object_foreach(json_object_get(doc, "paths"), path, item) {
            if (strncmp(path, other, strlen(other)) == 0)
                fail_msg("the v%d document has %s", v, path);
            own = own || strncmp(path, mine, strlen(mine)) == 0;
        }
        assert_true(own);
        assert_non_null(json_object_get(json_object_get(doc, "paths"), "/health"));
        json_decref(doc);
    }
}

/* The job types, costs and output schemas are the registry's. */
static void test_job_types_from_registry(void **state)
{
    (void)state;
    size_t len;
    const char *text = nx_api_openapi_document(0, &len);
    assert_non_null(text);
    assert_null(strstr(text, "${"));
    json_t *doc = load_served(0);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *types = json_object_get(json_object_get(schemas, "JobType"), "enum");
    json_t *outputs = json_object_get(
        json_object_get(json_object_get(json_object_get(schemas, "JobV2"), "properties"),
                        "result"),
        "oneOf");
    size_t n = 0;
    for (; nx_job_type_at(n); n++) {
        const nx_job_type_t *t = nx_job_type_at(n);
        assert_string_equal(json_string_value(json_array_get(types, n)), t->name);
        assert_non_null(json_object_get(schemas, t->output_schema));
        char ref[128], cost[64];
        snprintf(ref, sizeof(ref), "#/components/schemas/%s", t->output_schema);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(outputs, n + 1), "$ref")), ref);
        snprintf(cost, sizeof(cost), "%d for %s", t->cost, t->name);
        assert_non_null(strstr(text, cost));
    }
    assert_int_equal(json_array_size(types), n);
    json_decref(doc);
}

static void test_embedded_copy_is_current(void **state)
{
    (void)state;
    FILE *f = fopen(NX_SOURCE_DIR "/src/api/openapi.json", "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (size_t i = 0; i < nx_embed_web_count; i++) {
        if (strcmp(nx_embed_web[i].name, "openapi.json") != 0)
            continue;
        size_t len = (size_t)(nx_embed_web[i].end - nx_embed_web[i].start);
        assert_int_equal(len, n);
        assert_memory_equal(nx_embed_web[i].start, buf, n);
        return;
    }
    fail_msg("openapi.json is not embedded");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_documented),
        cmocka_unit_test(test_every_operation_routed),
        cmocka_unit_test(test_version_documents),
        cmocka_unit_test(test_job_types_from_registry),
        cmocka_unit_test(test_embedded_copy_is_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
