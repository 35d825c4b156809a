/*
 * test_metrics.c - the metrics registry and its text format (metrics/),
 * and GET /metrics through the in-process harness: what is counted, how it
 * is written (HELP and TYPE for each family, cumulative buckets, seconds,
 * escaped label values, no id in any label), and who may read it
 * (loopback peers, or METRICS_TOKEN when it is set; 404 for anyone else).
 */
#include "core/nx.h"
#include "metrics/metrics.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/http_int.h"
#include "loopback.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static int h_ok(nx_req_t *req, nx_err_t *err) { return nx_resp_json(req, 200, "{}", 2); }

static int h_limited(nx_req_t *req, nx_err_t *err)
{
    return nx_err_set(err, NX_ERATELIMIT, "slow down");
}

static const nx_route_t routes[] = {
    {"GET", "/metrics", nx_metrics_get, NX_ROUTE_PUBLIC | NX_ROUTE_UNDOCUMENTED},
    {"GET", "/users/{id}", h_ok, NX_ROUTE_PUBLIC},
    {"POST", "/limited", h_limited, NX_ROUTE_PUBLIC},
};
static const nx_route_group_t groups[] = {{"", 0, routes, NX_ARRAY_LEN(routes)}};
static const nx_stage_t stages[] = {
    {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    {"handler", NX_STAGE_REQUEST, nx_http_stage_handler},
    {"respond", NX_STAGE_RESPONSE, nx_http_stage_respond},
    {"metrics", NX_STAGE_DONE, nx_metrics_stage_http},
};

static nx_settings_t cfg;

static int setup(void **state)
{
    nx_err_t err = {0};
    if (nx_router_init(groups, 1, &err) != NX_OK ||
        nx_pipeline_init(stages, NX_ARRAY_LEN(stages), &err) != NX_OK)
        return -1;
    nx_settings_publish(&cfg);
    return 0;
}

/* One request; returns its status, *body (heap) when asked. */
static int run(const char *method, const char *path, const char *peer, const char *auth,
               char **body)
{
    nx_loopback_req_t in = {.method = method, .path = path, .peer = peer};
    if (auth) {
        in.headers[0][0] = "Authorization";
        in.headers[0][1] = auth;
    }
    nx_loopback_resp_t out;
    nx_loopback_run(&in, &out);
    int status = out.status;
    if (body) {
        *body = out.body;
        out.body = NULL;
    }
    nx_loopback_release(&out);
    return status;
}

static char *scrape(void)
{
    char *body = NULL;
    assert_int_equal(run("GET", "/metrics", "127.0.0.1", NULL, &body), 200);
    return body;
}

/* The value on the line that starts with prefix (a series), or -1. */
static double series(const char *text, const char *prefix)
{
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        size_t n = strlen(prefix);
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static void test_requests_counted_by_template(void **state)
{
    (void)state;
    const char *labels[] = {"/users/{id}", "GET", "2xx", NULL};
    long long before = nx_metrics_value("nexusapi_http_requests_total", labels);
    assert_int_equal(run("GET", "/users/0f8fad5b-d9cb-469f-a165-70867728950e", "10.0.0.1",
                         NULL, NULL), 200);
    assert_int_equal(run("GET", "/users/42", "10.0.0.1", NULL, NULL), 200);
    assert_int_equal(run("GET", "/nowhere/1234", "10.0.0.1", NULL, NULL), 404);
    assert_int_equal(run("BREW", "/users/7", "10.0.0.1", NULL, NULL), 405);
    assert_int_equal(run("POST", "/limited", "10.0.0.1", NULL, NULL), 429);
    assert_int_equal(nx_metrics_value("nexusapi_http_requests_total", labels), before + 2);

    char *text = scrape();
    /* the template, never the raw path or an id */
    assert_true(series(text, "nexusapi_http_requests_total{route=\"/users/{id}\",method=\"GET\","
                             "code=\"2xx\"}") >= 2);
    assert_null(strstr(text, "0f8fad5b"));
    assert_null(strstr(text, "/users/42"));
    assert_null(strstr(text, "nowhere"));
    assert_true(series(text, "nexusapi_http_requests_total{route=\"unmatched\",method=\"GET\","
                             "code=\"4xx\"}") >= 1);
    /* a 405 matched no route either; an unknown method is "other" */
    assert_true(series(text, "nexusapi_http_requests_total{route=\"unmatched\","
                             "method=\"other\",code=\"4xx\"}") >= 1);
    assert_true(series(text, "nexusapi_http_rate_limited_total") >= 1);
    /* a histogram per template: cumulative buckets ending in +Inf = _count */
    double inf = series(text, "nexusapi_http_request_duration_seconds_bucket{route=\"/users/{id}\","
                              "le=\"+Inf\"}");
    assert_true(inf >= 2);
    assert_true(series(text, "nexusapi_http_request_duration_seconds_count{route=\"/users/{id}\"}") ==
                inf);
    assert_true(series(text, "nexusapi_http_request_duration_seconds_bucket{route=\"/users/{id}\","
                             "le=\"0.001\"}") <= inf);
    free(text);
}

static void test_every_family_has_help_and_type(void **state)
{
    (void)state;
    char *text = scrape();
    static const char *const families[] = {
        "nexusapi_http_requests_total counter",
        "nexusapi_http_request_duration_seconds histogram",
        "nexusapi_http_rate_limited_total counter",
        "nexusapi_jobs_submitted_total counter",
        "nexusapi_jobs_started_total counter",
        "nexusapi_jobs_completed_total counter",
        "nexusapi_jobs_retried_total counter",
        "nexusapi_jobs_failed_total counter",
        "nexusapi_jobs_refunded_total counter",
        "nexusapi_job_attempt_duration_seconds histogram",
        "nexusapi_credits_debited_total counter",
        "nexusapi_credits_refunded_total counter",
        "nexusapi_webhook_deliveries_total counter",
        "nexusapi_webhook_delivery_duration_seconds histogram",
        "nexusapi_db_round_trips_total counter",
        "nexusapi_db_pool_waits_total counter",
        "nexusapi_db_pool_wait_seconds_total counter",
        "nexusapi_db_reconnects_total counter",
        "nexusapi_db_connection_failures_total counter",
        "process_cpu_seconds_total counter",
        "process_resident_memory_bytes gauge",
        "process_open_fds gauge",
        "process_max_fds gauge",
        "process_start_time_seconds gauge",
        "nexusapi_build_info gauge",
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(families); i++) {
        char want[160];
        snprintf(want, sizeof(want), "# TYPE %s\n", families[i]);
        if (!strstr(text, want))
            fail_msg("missing: %s", want);
    }
    assert_true(series(text, "nexusapi_build_info{version=\"" NX_VERSION "\"}") == 1);
    assert_true(series(text, "process_resident_memory_bytes") > 0);
    assert_true(series(text, "process_open_fds") > 0);
    assert_true(series(text, "process_start_time_seconds") > 1.7e9);
    /* job types are the registry's, zeros shown from the start */
    assert_true(series(text, "nexusapi_jobs_submitted_total{job_type=\"summarise\"}") >= 0);
    assert_true(series(text, "nexusapi_jobs_submitted_total{job_type=\"analyse\"}") >= 0);
    assert_true(series(text, "nexusapi_webhook_deliveries_total{outcome=\"unreachable\"}") >= 0);
    free(text);
}

static void test_jobs_credits_and_gauges(void **state)
{
    (void)state;
    char *text = scrape();
    /* never read by a worker: the queue gauges are absent, not 0 */
    assert_null(strstr(text, "nexusapi_jobs_queue_depth"));
    free(text);
    nx_metrics_job(NX_METRICS_JOB_SUBMITTED, "summarise");
    nx_metrics_job(NX_METRICS_JOB_SUBMITTED, "no-such-type"); /* not counted */
    nx_metrics_credits(false, "summarise", 10);
    nx_metrics_credits(true, "analyse", 25);
    nx_metrics_job_attempt("analyse", 1500000); /* 1.5 s */
    nx_metrics_queue(7, 2.25);
    nx_metrics_webhook_delivery(NX_METRICS_WEBHOOK_REJECTED, 0.2);
    nx_metrics_webhook_delivery(NX_METRICS_WEBHOOK_REFUSED, 0);
    nx_metrics_webhook_delivery(99, 1); /* not an outcome: ignored */
    text = scrape();
    assert_true(series(text, "nexusapi_jobs_submitted_total{job_type=\"summarise\"}") == 1);
    assert_null(strstr(text, "no-such-type"));
    assert_true(series(text, "nexusapi_credits_debited_total{job_type=\"summarise\"}") == 10);
    assert_true(series(text, "nexusapi_credits_refunded_total{job_type=\"analyse\"}") == 25);
    assert_true(series(text, "nexusapi_job_attempt_duration_seconds_bucket{job_type=\"analyse\","
                             "le=\"1\"}") == 0);
    assert_true(series(text, "nexusapi_job_attempt_duration_seconds_bucket{job_type=\"analyse\","
                             "le=\"2.5\"}") == 1);
    assert_true(series(text, "nexusapi_job_attempt_duration_seconds_sum{job_type=\"analyse\"}") ==
                1.5);
    assert_true(series(text, "nexusapi_jobs_queue_depth") == 7);
    assert_true(series(text, "nexusapi_jobs_oldest_pending_age_seconds") == 2.25);
    assert_true(series(text, "nexusapi_webhook_deliveries_total{outcome=\"rejected\"}") == 1);
    assert_true(series(text, "nexusapi_webhook_deliveries_total{outcome=\"refused\"}") == 1);
    assert_true(series(text, "nexusapi_webhook_delivery_duration_seconds_count") == 1);
    free(text);
}

static void test_database_metrics(void **state)
{
    (void)state;
    nx_metrics_db_connect(false, true, 2000);
    nx_metrics_db_round_trip(NX_METRICS_DB_OK);
    nx_metrics_db_round_trip(NX_METRICS_DB_ERROR);
    char *text = scrape();
    assert_true(series(text, "nexusapi_db_up") == 1);
    assert_true(series(text, "nexusapi_db_round_trips_total{outcome=\"error\"}") == 1);
    assert_true(series(text, "nexusapi_db_pool_wait_seconds_total") >= 0.002);
    free(text);
    nx_metrics_db_round_trip(NX_METRICS_DB_UNAVAILABLE);
    text = scrape();
    assert_true(series(text, "nexusapi_db_up") == 0);
    free(text);
    nx_metrics_db_round_trip(NX_METRICS_DB_OK);
    nx_metrics_db_connect(true, false, 5000000); /* a failed attempt: down again */
    text = scrape();
    assert_true(series(text, "nexusapi_db_up") == 0);
    assert_true(series(text, "nexusapi_db_connection_failures_total") == 1);
    assert_true(series(text, "nexusapi_db_reconnects_total") == 0);
    free(text);
    nx_metrics_db_connect(true, true, 100);
    text = scrape();
    assert_true(series(text, "nexusapi_db_up") == 1);
    assert_true(series(text, "nexusapi_db_reconnects_total") == 1);
    free(text);
}

static void test_access_rule(void **state)
{
    (void)state;
    char *body = NULL;
    /* no token configured: loopback peers only, IPv4 or IPv6 */
    assert_int_equal(run("GET", "/metrics", "127.0.0.1", NULL, NULL), 200);
    assert_int_equal(run("GET", "/metrics", "::1", NULL, NULL), 200);
    assert_int_equal(run("GET", "/metrics", "203.0.113.9", NULL, &body), 404);
    assert_non_null(strstr(body, "/problems/not-found")); /* like any unknown path */
    assert_non_null(strstr(body, "No route matches this path."));
    free(body);
    assert_int_equal(run("GET", "/metrics", NULL, NULL, NULL), 404);

    /* with METRICS_TOKEN: the token, from anywhere; nothing else, loopback included */
    cfg.metrics_token = "s3cret-metrics-token-0123";
    assert_int_equal(run("GET", "/metrics", "127.0.0.1", NULL, NULL), 404);
    assert_int_equal(run("GET", "/metrics", "127.0.0.1", "Bearer wrong-token-0123456789", NULL),
                     404);
    assert_int_equal(run("GET", "/metrics", "127.0.0.1", "Bearer s3cret-metrics-token-012",
                         NULL), 404);
    assert_int_equal(run("GET", "/metrics", "127.0.0.1", "Basic s3cret-metrics-token-0123",
                         NULL), 404);
    assert_int_equal(run("GET", "/metrics", "203.0.113.9", "Bearer s3cret-metrics-token-0123",
                         NULL), 200);
    assert_int_equal(run("GET", "/metrics", "127.0.0.1", "bearer  s3cret-metrics-token-0123",
                         NULL), 200);
    cfg.metrics_token = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_counted_by_template),
        cmocka_unit_test(test_every_family_has_help_and_type),
        cmocka_unit_test(test_jobs_credits_and_gauges),
        cmocka_unit_test(test_database_metrics),
        cmocka_unit_test(test_access_rule),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
