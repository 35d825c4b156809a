/*
 * test_openapi_routes.c - src/api/openapi.json and the route table agree
 * both ways: every route is documented (same method, same pattern), every
 * documented operation is a route. Also checks that the document compiled
 * into the binary is the one in the repository.
 */
#include "core/nx.h"
#include "api/routes.h"
#include "core/embed.h"

#include <ctype.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static json_t *load_doc(void)
{
    json_error_t je;
    json_t *doc = json_load_file(NX_SOURCE_DIR "/src/api/openapi.json", JSON_REJECT_DUPLICATES,
                                 &je);
    if (!doc)
        fail_msg("openapi.json: %s (line %d)", je.text, je.line);
    return doc;
}

static void lower(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static void test_every_route_documented(void **state)
{
    (void)state;
    json_t *doc = load_doc();
    json_t *paths = json_object_get(doc, "paths");
    assert_true(json_is_object(paths));
    for (size_t i = 0; i < nx_api_routes_count; i++) {
        const nx_route_t *r = &nx_api_routes[i];
        char m[16];
        lower(r->method, m, sizeof(m));
        json_t *op = json_object_get(json_object_get(paths, r->pattern), m);
        if (!json_is_object(op))
            fail_msg("route %s %s is not in openapi.json", r->method, r->pattern);
        if (!json_is_object(json_object_get(op, "responses")))
            fail_msg("%s %s documents no responses", r->method, r->pattern);
        /* Authenticated routes must say so. */
        bool secured = json_array_size(json_object_get(op, "security")) > 0;
        if ((r->flags & (NX_ROUTE_AUTH | NX_ROUTE_ADMIN)) && !secured)
            fail_msg("%s %s needs a token but documents no security", r->method, r->pattern);
        if ((r->flags & NX_ROUTE_JSON) && !json_is_object(json_object_get(op, "requestBody")))
            fail_msg("%s %s takes a JSON body but documents none", r->method, r->pattern);
    }
    json_decref(doc);
}

static void test_every_operation_routed(void **state)
{
    (void)state;
    static const char *const methods[] = {"get", "put", "post", "delete", "options",
                                          "head", "patch", "trace"};
    json_t *doc = load_doc();
    const char *path;
    json_t *item;
    int ops = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        for (size_t k = 0; k < NX_ARRAY_LEN(methods); k++) {
            if (!json_object_get(item, methods[k]))
                continue;
            ops++;
            bool found = false;
            for (size_t i = 0; i < nx_api_routes_count && !found; i++) {
                char m[16];
                lower(nx_api_routes[i].method, m, sizeof(m));
                found = strcmp(m, methods[k]) == 0 && strcmp(nx_api_routes[i].pattern, path) == 0;
            }
            if (!found)
                fail_msg("openapi.json documents %s %s, which is not a route", methods[k], path);
        }
    }
    assert_int_equal((size_t)ops, nx_api_routes_count);
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
        cmocka_unit_test(test_embedded_copy_is_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
