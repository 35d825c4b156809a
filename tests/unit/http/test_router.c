/*
 * test_router.c - route matching (http/router.c) and problem bodies
 * (http/problem.c), in-process, no sockets.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/err.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int h_a(nx_req_t *req, nx_err_t *err) { return NX_OK; }
static int h_b(nx_req_t *req, nx_err_t *err) { return NX_OK; }

static const nx_route_t routes[] = {
    {"GET", "/", h_a, 0},
    {"GET", "/health", h_a, 0},
    {"GET", "/a/{x}/b/{y}", h_a, 0},
};

static const nx_route_t api_routes[] = {
    {"GET", "/users", h_a, NX_ROUTE_AUTH},
    {"GET", "/users/{id}", h_a, NX_ROUTE_AUTH},
    {"PATCH", "/users/{id}", h_b, NX_ROUTE_ADMIN | NX_ROUTE_JSON},
    {"DELETE", "/users/{id}", h_b, NX_ROUTE_ADMIN},
    {"GET", "/credits/usage", h_b, NX_ROUTE_AUTH},
    {"GET", "/credits/{id}", h_a, NX_ROUTE_AUTH},
};

static const nx_route_t v2_routes[] = {
    {"POST", "/jobs", h_b, NX_ROUTE_AUTH | NX_ROUTE_JSON},
};

static const nx_route_group_t groups[] = {
    {"", 0, routes, NX_ARRAY_LEN(routes)},
    {"/api/v1", 1, api_routes, NX_ARRAY_LEN(api_routes)},
    {"/api/v2", 2, api_routes, NX_ARRAY_LEN(api_routes)},
    {"/api/v2", 2, v2_routes, NX_ARRAY_LEN(v2_routes)},
};

typedef struct {
    nx_http_conn_t hc;
} fixture_t;

static int setup(void **state)
{
    nx_err_t err = {0};
    assert_int_equal(nx_router_init(groups, NX_ARRAY_LEN(groups), &err), NX_OK);
    nx_http_conn_t *hc = calloc(1, sizeof(*hc));
    hc->req.arena = nx_arena_new(4096);
    hc->req.conn = hc;
    hc->req.request_id = "req-1";
    *state = hc;
    return 0;
}

static int teardown(void **state)
{
    nx_http_conn_t *hc = *state;
    nx_arena_free(hc->req.arena);
    free(hc);
    return 0;
}

static int match(nx_req_t *req, const char *method, const char *path, nx_err_t *err)
{
    nx_err_clear(err);
    req->route_entry = NULL;
    req->route = NULL;
    req->nparams = 0;
    return nx_router_match(req, method, path, err);
}

static void test_match(void **state)
{
    nx_http_conn_t *hc = *state;
    nx_req_t *req = &hc->req;
    nx_err_t err;
    assert_int_equal(match(req, "GET", "/", &err), NX_OK);
    assert_string_equal(req->route, "/");
    assert_int_equal(match(req, "GET", "/health", &err), NX_OK);
    assert_ptr_equal(req->route_entry, &routes[1]);
    assert_string_equal(req->route, "/health");
    assert_int_equal(match(req, "HEAD", "/health", &err), NX_OK);
    assert_int_equal(match(req, "PATCH", "/api/v1/users/42", &err), NX_OK);
    assert_ptr_equal(req->route_entry->handler, h_b);
    assert_int_equal(req->nparams, 1);
    assert_string_equal(req->params[0], "42");
    /* A literal segment beats a parameter, whatever the table order. */
    assert_int_equal(match(req, "GET", "/api/v1/credits/usage", &err), NX_OK);
    assert_string_equal(req->route, "/api/v1/credits/usage");
    assert_int_equal(match(req, "GET", "/api/v1/credits/abc", &err), NX_OK);
    assert_string_equal(req->route, "/api/v1/credits/{id}");
    assert_int_equal(match(req, "GET", "/a/1/b/2", &err), NX_OK);
    assert_int_equal(req->nparams, 2);
    assert_string_equal(req->params[0], "1");
    assert_string_equal(req->params[1], "2");
    assert_int_equal(req->api_version, 0);
}

/* A group mounts its routes under its prefix and tells the version. */
static void test_groups(void **state)
{
    nx_http_conn_t *hc = *state;
    nx_req_t *req = &hc->req;
    nx_err_t err;
    assert_int_equal(match(req, "GET", "/api/v1/users", &err), NX_OK);
    assert_int_equal(req->api_version, 1);
    assert_ptr_equal(req->route_entry, &api_routes[0]);
    assert_int_equal(match(req, "GET", "/api/v2/users/9", &err), NX_OK);
    assert_int_equal(req->api_version, 2);
    assert_string_equal(req->route, "/api/v2/users/{id}");
    assert_int_equal(match(req, "POST", "/api/v2/jobs", &err), NX_OK);
    assert_int_equal(req->api_version, 2);
    /* v1 has no POST /jobs; /users alone is no route */
    assert_int_equal(match(req, "POST", "/api/v1/jobs", &err), NX_ENOTFOUND);
    assert_int_equal(match(req, "GET", "/users", &err), NX_ENOTFOUND);
    assert_int_equal(match(req, "GET", "/api/v3/users", &err), NX_ENOTFOUND);
}

static void test_not_found(void **state)
{
    nx_http_conn_t *hc = *state;
    nx_err_t err;
    const char *paths[] = {"/nope", "/health/", "/Health", "/HEALTH", "//health",
                           "/api/v1/users/", "/api/v1/users//", "/api/v1/users/1/x",
                           "/a//b/2", "health", "", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r"};
    for (size_t i = 0; i < NX_ARRAY_LEN(paths); i++) {
        if (match(&hc->req, "GET", paths[i], &err) != NX_ENOTFOUND)
            fail_msg("\"%s\" should be 404", paths[i]);
        assert_int_equal(nx_err_status(err.code), 404);
    }
}

static void test_method_not_allowed(void **state)
{
    nx_http_conn_t *hc = *state;
    nx_err_t err;
    assert_int_equal(match(&hc->req, "POST", "/health", &err), NX_EMETHOD);
    assert_string_equal(err.allow, "GET, HEAD");
    assert_int_equal(match(&hc->req, "PUT", "/api/v1/users/7", &err), NX_EMETHOD);
    assert_string_equal(err.allow, "GET, HEAD, PATCH, DELETE");
    assert_int_equal(match(&hc->req, "get", "/health", &err), NX_EMETHOD);
}

static json_t *problem(nx_http_conn_t *hc, int code, const nx_err_t *err)
{
    hc->resp = (struct nx_resp){0};
    nx_problem_render(&hc->req, code, err);
    assert_string_equal(hc->resp.content_type, "application/problem+json");
    json_error_t je;
    json_t *v = json_loadb(hc->resp.body, hc->resp.len, 0, &je);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "status")), hc->resp.status);
    assert_string_equal(json_string_value(json_object_get(v, "request_id")), "req-1");
    return v;
}

static const char *header(nx_http_conn_t *hc, const char *name)
{
    for (struct nx_resp_hdr *h = hc->resp.headers; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

static void test_problem(void **state)
{
    nx_http_conn_t *hc = *state;
    nx_err_t err = {0};
    nx_err_set(&err, NX_ENOTFOUND, "No such \"user\".");
    json_t *v = problem(hc, err.code, &err);
    assert_string_equal(json_string_value(json_object_get(v, "type")), "/problems/not-found");
    assert_string_equal(json_string_value(json_object_get(v, "title")), "Not found");
    assert_string_equal(json_string_value(json_object_get(v, "detail")), "No such \"user\".");
    assert_null(json_object_get(v, "errors"));
    json_decref(v);

    nx_err_clear(&err);
    nx_err_set(&err, NX_EUNAUTHORIZED, "expired");
    json_decref(problem(hc, err.code, &err));
    assert_string_equal(header(hc, "WWW-Authenticate"), "Bearer error=\"invalid_token\"");

    nx_err_clear(&err);
    nx_err_set(&err, NX_EMETHOD, NULL);
    snprintf(err.allow, sizeof(err.allow), "GET, HEAD");
    json_decref(problem(hc, err.code, &err));
    assert_string_equal(header(hc, "Allow"), "GET, HEAD");

    nx_err_clear(&err);
    nx_err_set(&err, NX_EUNAVAILABLE, "The database is unavailable.");
    err.retry_after = 5;
    json_decref(problem(hc, err.code, &err));
    assert_int_equal(hc->resp.status, 503);
    assert_string_equal(header(hc, "Retry-After"), "5");

    nx_err_clear(&err);
    nx_err_field(&err, "text", "must be 1 to 100000 characters");
    nx_err_field(&err, "name", "must not contain \"quotes\"");
    v = problem(hc, err.code, &err);
    assert_int_equal(hc->resp.status, 422);
    json_t *errors = json_object_get(v, "errors");
    assert_int_equal(json_array_size(errors), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 1), "message")),
                        "must not contain \"quotes\"");
    json_decref(v);

    /* A 500 never shows what went wrong. */
    nx_err_clear(&err);
    nx_err_set(&err, NX_EINTERNAL, "relation \"users\" does not exist");
    nx_err_log(&err, "/var/lib/secret/path");
    v = problem(hc, err.code, &err);
    assert_int_equal(hc->resp.status, 500);
    assert_null(strstr(hc->resp.body, "users"));
    assert_null(strstr(hc->resp.body, "/var/lib"));
    json_decref(v);

    /* A handler returning a positive or unknown code is a 500, too. */
    json_decref(problem(hc, 7, NULL));
    assert_int_equal(hc->resp.status, 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_problem, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
