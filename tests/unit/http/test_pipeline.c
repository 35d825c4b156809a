/*
 * test_pipeline.c - the request pipeline as a table of stages (http/
 * pipeline.c), driven in-process through tests/harness/loopback.c: stages
 * run in order; a stage that ends the request early (401, 413) skips the
 * later HEADERS and REQUEST stages but never the RESPONSE and DONE ones;
 * the program's own table (api/pipeline.c) runs a handler without a
 * socket, and answers v1 with the deprecation headers exactly when they
 * are configured.
 */
#include "core/nx.h"
#include "api/api.h"
#include "config/settings.h"
#include "core/err.h"
#include "http/http_int.h"
#include "loopback.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* ---- a recording table ------------------------------------------------------ */

static char trail[256];
static int fail_at_auth; /* the "auth" stage answers 401 */

static void note(const char *name)
{
    size_t n = strlen(trail);
    snprintf(trail + n, sizeof(trail) - n, "%s%s", n ? "," : "", name);
}

static int st_first(nx_req_t *req, nx_err_t *err)
{
    note("first");
    return nx_http_stage_request_id(req, err);
}

static int st_auth(nx_req_t *req, nx_err_t *err)
{
    note("auth");
    return fail_at_auth ? nx_err_set(err, NX_EUNAUTHORIZED, "no token") : NX_OK;
}

static int st_limits(nx_req_t *req, nx_err_t *err)
{
    note("limits");
    return nx_http_stage_limits(req, err);
}

static int st_body(nx_req_t *req, nx_err_t *err)
{
    note("body");
    return nx_http_stage_body(req, err);
}

static int st_handler(nx_req_t *req, nx_err_t *err)
{
    note("handler");
    return nx_http_stage_handler(req, err);
}

static int st_seen(nx_req_t *req, nx_err_t *err)
{
    note(err->code ? "seen-error" : "seen-ok");
    return NX_OK;
}

static int st_respond(nx_req_t *req, nx_err_t *err)
{
    note("respond");
    return nx_http_stage_respond(req, err);
}

static int st_log(nx_req_t *req, nx_err_t *err)
{
    note("log");
    return nx_http_stage_access_log(req, err);
}

static const nx_stage_t recording[] = {
    {"first", NX_STAGE_HEADERS, st_first},
    {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    {"auth", NX_STAGE_HEADERS, st_auth},
    {"limits", NX_STAGE_HEADERS, st_limits},
    {"body", NX_STAGE_REQUEST, st_body},
    {"handler", NX_STAGE_REQUEST, st_handler},
    {"seen", NX_STAGE_RESPONSE, st_seen},
    {"respond", NX_STAGE_RESPONSE, st_respond},
    {"log", NX_STAGE_DONE, st_log},
};

static int h_hello(nx_req_t *req, nx_err_t *err)
{
    note("hello");
    static const char body[] = "{\"hello\":\"world\"}";
    return nx_resp_json(req, 200, body, sizeof(body) - 1);
}

static int h_echo(nx_req_t *req, nx_err_t *err)
{
    json_t *v = json_object_get(req->json, "say");
    if (!json_is_string(v)) {
        nx_err_field(err, "say", "must be a string");
        return NX_EVALIDATION;
    }
    return nx_resp_json(req, 200, json_string_value(v), json_string_length(v));
}

static int work_late(nx_req_t *req, void *ud, nx_err_t *err)
{
    note("work");
    return nx_resp_json(req, 201, "{}", 2);
}

static int h_offload(nx_req_t *req, nx_err_t *err) { return nx_req_offload(req, work_late, NULL); }

static const nx_route_t root[] = {
    {"GET", "/hello", h_hello, NX_ROUTE_PUBLIC},
    {"POST", "/echo", h_echo, NX_ROUTE_PUBLIC | NX_ROUTE_JSON},
    {"POST", "/slow", h_offload, NX_ROUTE_PUBLIC},
    {"GET", "/private", h_hello, NX_ROUTE_AUTH},
};
static const nx_route_t api[] = {
    {"GET", "/hello", h_hello, NX_ROUTE_PUBLIC},
};
static const nx_route_group_t groups[] = {
    {"", 0, root, NX_ARRAY_LEN(root)},
    {"/api/v1", 1, api, NX_ARRAY_LEN(api)},
    {"/api/v2", 2, api, NX_ARRAY_LEN(api)},
};

static int use(const nx_stage_t *stages, size_t n)
{
    nx_err_t err = {0};
    assert_int_equal(nx_router_init(groups, NX_ARRAY_LEN(groups), &err), NX_OK);
    assert_int_equal(nx_pipeline_init(stages, n, &err), NX_OK);
    trail[0] = '\0';
    fail_at_auth = 0;
    return 0;
}

static int use_recording(void **state)
{
    (void)state;
    return use(recording, NX_ARRAY_LEN(recording));
}

static int use_program(void **state)
{
    (void)state;
    return use(nx_api_pipeline, nx_api_pipeline_count);
}

static void run(nx_loopback_resp_t *out, const char *method, const char *path, const char *body,
                const char *h1, const char *v1)
{
    nx_loopback_req_t in = {.method = method, .path = path, .body = body,
                            .body_len = body ? strlen(body) : 0};
    int n = 0;
    if (body) {
        in.headers[n][0] = "Content-Type";
        in.headers[n++][1] = "application/json";
    }
    if (h1) {
        in.headers[n][0] = h1;
        in.headers[n++][1] = v1;
    }
    trail[0] = '\0';
    nx_loopback_run(&in, out);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_stages_run_in_order(void **state)
{
    (void)state;
    nx_loopback_resp_t r;
    run(&r, "GET", "/hello", NULL, "X-Request-ID", "req-7");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"hello\":\"world\"}");
    assert_string_equal(nx_loopback_header(&r, "X-Request-ID"), "req-7");
    assert_string_equal(trail, "first,auth,limits,body,handler,hello,seen-ok,respond,log");
    nx_loopback_release(&r);
}

static void test_early_end_skips_to_the_answer(void **state)
{
    (void)state;
    nx_loopback_resp_t r;
    fail_at_auth = 1;
    run(&r, "GET", "/hello", NULL, NULL, NULL);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "no token"));
    assert_string_equal(nx_loopback_header(&r, "WWW-Authenticate"),
                        "Bearer error=\"invalid_token\"");
    /* no limits, body or handler; the answer and the log still happen */
    assert_string_equal(trail, "first,auth,seen-error,respond,log");
    nx_loopback_release(&r);
}

static void test_413_before_the_handler(void **state)
{
    (void)state;
    nx_loopback_resp_t r;
    run(&r, "POST", "/echo", "{\"say\":\"hi\"}", "Content-Length", "2000000");
    assert_int_equal(r.status, 413);
    assert_string_equal(trail, "first,auth,limits,seen-error,respond,log");
    nx_loopback_release(&r);

    run(&r, "POST", "/echo", "{\"say\":\"hi\"}", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hi");
    nx_loopback_release(&r);

    /* a body error is a REQUEST-stage failure: no handler */
    run(&r, "POST", "/echo", "{\"say\":", NULL, NULL);
    assert_int_equal(r.status, 400);
    assert_string_equal(trail, "first,auth,limits,body,seen-error,respond,log");
    nx_loopback_release(&r);
}

static void test_routing_errors(void **state)
{
    (void)state;
    nx_loopback_resp_t r;
    run(&r, "GET", "/nowhere", NULL, NULL, NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(trail, "first,seen-error,respond,log");
    nx_loopback_release(&r);
    run(&r, "DELETE", "/hello", NULL, NULL, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(nx_loopback_header(&r, "Allow"), "GET, HEAD");
    nx_loopback_release(&r);
}

static void test_offloaded_work_answers(void **state)
{
    (void)state;
    nx_loopback_resp_t r;
    run(&r, "POST", "/slow", NULL, NULL, NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(trail, "first,auth,limits,body,handler,work,seen-ok,respond,log");
    nx_loopback_release(&r);
}

static void test_table_order_is_checked(void **state)
{
    (void)state;
    static const nx_stage_t backwards[] = {
        {"respond", NX_STAGE_RESPONSE, nx_http_stage_respond},
        {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    };
    static const nx_stage_t nameless[] = {{NULL, NX_STAGE_HEADERS, nx_http_stage_route}};
    nx_err_t err = {0};
    assert_int_equal(nx_pipeline_init(backwards, 2, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "\"route\" runs before \"respond\""));
    nx_err_clear(&err);
    assert_int_equal(nx_pipeline_init(nameless, 1, &err), NX_EINVAL);
}

/* The program's own table: a handler in-process, and the version stage. */
static void test_program_pipeline(void **state)
{
    (void)state;
    nx_loopback_resp_t r;
    run(&r, "GET", "/hello", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"hello\":\"world\"}");
    assert_non_null(nx_loopback_header(&r, "X-Request-ID"));
    nx_loopback_release(&r);
    /* an authenticated route without a token: 401 and no handler */
    run(&r, "GET", "/private", NULL, NULL, NULL);
    assert_int_equal(r.status, 401);
    assert_null(strstr(trail, "hello"));
    nx_loopback_release(&r);
}

static void test_v1_deprecation_headers(void **state)
{
    (void)state;
    static nx_settings_t s;
    nx_loopback_resp_t r;
    nx_settings_publish(&s);
    /* not configured: none */
    run(&r, "GET", "/api/v1/hello", NULL, NULL, NULL);
    assert_null(nx_loopback_header(&r, "Deprecation"));
    assert_null(nx_loopback_header(&r, "Sunset"));
    assert_null(nx_loopback_header(&r, "Link"));
    nx_loopback_release(&r);
    s.api_v1_deprecated_at = 1798761600; /* 2027-01-01T00:00:00Z */
    run(&r, "GET", "/api/v1/hello", NULL, NULL, NULL);
    assert_string_equal(nx_loopback_header(&r, "Deprecation"), "@1798761600");
    assert_string_equal(nx_loopback_header(&r, "Link"),
                        "</api/v2/hello>; rel=\"successor-version\"");
    assert_null(nx_loopback_header(&r, "Sunset"));
    nx_loopback_release(&r);
    s.api_v1_sunset = 1814400000; /* 2027-07-01T00:00:00Z */
    run(&r, "GET", "/api/v1/nowhere", NULL, NULL, NULL); /* problems too */
    assert_int_equal(r.status, 404);
    assert_string_equal(nx_loopback_header(&r, "Sunset"), "Thu, 01 Jul 2027 00:00:00 GMT");
    assert_string_equal(nx_loopback_header(&r, "Link"),
                        "</api/v2/nowhere>; rel=\"successor-version\"");
    nx_loopback_release(&r);
    run(&r, "GET", "/api/v2/hello", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_null(nx_loopback_header(&r, "Deprecation"));
    assert_null(nx_loopback_header(&r, "Sunset"));
    assert_null(nx_loopback_header(&r, "Link"));
    nx_loopback_release(&r);
    nx_settings_publish(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_stages_run_in_order, use_recording),
        cmocka_unit_test_setup(test_early_end_skips_to_the_answer, use_recording),
        cmocka_unit_test_setup(test_413_before_the_handler, use_recording),
        cmocka_unit_test_setup(test_routing_errors, use_recording),
        cmocka_unit_test_setup(test_offloaded_work_answers, use_recording),
        cmocka_unit_test(test_table_order_is_checked),
        cmocka_unit_test_setup(test_program_pipeline, use_program),
        cmocka_unit_test_setup(test_v1_deprecation_headers, use_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
