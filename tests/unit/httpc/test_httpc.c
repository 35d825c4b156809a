/*
 * test_httpc.c - the outbound HTTP client (httpc/httpc.c) against a real
 * HTTP server on 127.0.0.1 (libmicrohttpd in this process, one thread per
 * connection): timeouts, the size cap and the cut, no redirects, Basic
 * credentials, the address check, abandoning a call, JSON decoding, the
 * captured Cache-Control, the https-only default, and the traceparent a
 * traced call carries.
 */
#include "core/nx.h"
#include "httpc/httpc.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/trace.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define BIG (200 * 1024)

static struct MHD_Daemon *daemon_;
static unsigned short port;
static atomic_int hits, target_hits;
static char big[BIG];
static char base[64];

static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *body,
                             size_t len, const char *cache)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (cache)
        MHD_add_response_header(r, "Cache-Control", cache);
    if (status == 302)
        MHD_add_response_header(r, "Location", "/target");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A body of unknown length (sent chunked): BIG bytes in 4 KiB pieces. */
static ssize_t chunks(void *cls, uint64_t pos, char *buf, size_t max)
{
    if (pos >= BIG)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < 4096 ? max : 4096;
    memset(buf, 'c', n);
    return (ssize_t)n;
}

static enum MHD_Result echo_post(struct MHD_Connection *conn, const char *upload, size_t *size,
                                 void **ctx)
{
    static char acc[4096];
    static size_t acc_len;
    if (*ctx == NULL) {
        *ctx = (void *)1;
        acc_len = 0;
        return MHD_YES;
    }
    if (*size) {
        size_t n = *size < sizeof(acc) - acc_len - 1 ? *size : sizeof(acc) - acc_len - 1;
        memcpy(acc + acc_len, upload, n);
        acc_len += n;
        *size = 0;
        return MHD_YES;
    }
    acc[acc_len] = '\0';
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    const char *ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "User-Agent");
    const char *x = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Extra");
    char out[4400];
    int n = snprintf(out, sizeof(out), "%s|%s|%s|%s", ct ? ct : "", ua ? ua : "", x ? x : "",
                     acc);
    return reply(conn, 200, out, (size_t)n, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *size, void **ctx)
{
    if (strcmp(method, "POST") == 0)
        return echo_post(conn, upload, size, ctx);
    atomic_fetch_add(&hits, 1);
    if (strcmp(url, "/slow") == 0) {
        sleep(3);
        return reply(conn, 200, "late", 4, NULL);
    }
    if (strcmp(url, "/big") == 0)
        return reply(conn, 200, big, BIG, NULL);
    if (strcmp(url, "/chunked") == 0) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                                                    chunks, NULL, NULL);
        enum MHD_Result rc = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/redirect") == 0)
        return reply(conn, 302, "", 0, NULL);
    if (strcmp(url, "/target") == 0) {
        atomic_fetch_add(&target_hits, 1);
        return reply(conn, 200, "target", 6, NULL);
    }
    if (strcmp(url, "/auth") == 0) {
        const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        return reply(conn, 200, a ? a : "-", strlen(a ? a : "-"), NULL);
    }
    if (strcmp(url, "/traceparent") == 0) {
        const char *t = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
        return reply(conn, 200, t ? t : "-", strlen(t ? t : "-"), NULL);
    }
    if (strcmp(url, "/json") == 0)
        return reply(conn, 200, "{\"a\": 1}", 8, "public, Max-Age=120, must-revalidate");
    if (strcmp(url, "/nostore") == 0)
        return reply(conn, 200, "{}", 2, "no-store");
    if (strcmp(url, "/notjson") == 0)
        return reply(conn, 200, "{\"a\": ", 6, NULL);
    return reply(conn, 404, "", 0, NULL);
}

static int start(void **state)
{
    memset(big, 'b', sizeof(big));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                               0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                               MHD_OPTION_END);
    if (!daemon_)
        return -1;
    port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", port);
    return 0;
}

static int stop(void **state)
{
    MHD_stop_daemon(daemon_);
    return 0;
}

static char *url(nx_arena_t *a, const char *path) { return nx_arena_sprintf(a, "%s%s", base, path); }

static nx_httpc_req_t get(nx_arena_t *a, const char *path)
{
    return (nx_httpc_req_t){.url = url(a, path), .service = "the test server",
                            .allow_http = true};
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timeout_is_unavailable(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_httpc_req_t q = get(a, "/slow");
    q.timeout_ms = 500;
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    double t0 = now_s();
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_EUNAVAILABLE);
    assert_true(now_s() - t0 < 2.5);
    assert_int_equal(r.fail, NX_HTTPC_TIMEOUT);
    assert_string_equal(err.detail, "the test server did not answer within 500 ms");
    assert_non_null(strstr(err.log_detail, "/slow")); /* the URL and curl's text: logs only */
    nx_arena_free(a);
}

static void test_size_cap_fails_or_cuts(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    const char *paths[] = {"/big", "/chunked"};
    for (size_t i = 0; i < 2; i++) {
        nx_httpc_req_t q = get(a, paths[i]);
        q.max_body = 64 * 1024;
        nx_httpc_resp_t r;
        nx_err_t err = {0};
        assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_EUNAVAILABLE);
        assert_int_equal(r.fail, NX_HTTPC_TOOBIG);
        assert_string_equal(err.detail, "the test server answer is larger than 65536 bytes");

        q.truncate = true;
        q.max_body = 1024;
        memset(&err, 0, sizeof(err));
        assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
        assert_int_equal(r.status, 200);
        assert_true(r.truncated);
        assert_int_equal(r.len, 1024);
        assert_int_equal(strlen(r.body), 1024);
    }
    nx_httpc_req_t q = get(a, "/big"); /* under the default cap: all of it */
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_int_equal(r.len, BIG);
    assert_false(r.truncated);
    nx_arena_free(a);
}

static void test_redirect_is_not_followed(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_httpc_req_t q = get(a, "/redirect");
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    atomic_store(&target_hits, 0);
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_int_equal(r.status, 302);
    assert_string_equal(r.location, "/target");
    assert_int_equal(atomic_load(&target_hits), 0);
    nx_arena_free(a);
}

static void test_basic_credentials_and_post(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_httpc_req_t q = get(a, "/auth");
    q.basic_user = "us%3Aer";
    q.basic_password = "pa ss";
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_string_equal(r.body, "Basic dXMlM0FlcjpwYSBzcw=="); /* base64("us%3Aer:pa ss") */

    const char *pairs[] = {"grant_type", "authorization_code", "skip", NULL, "x", "a b&c=/", NULL};
    char *form = nx_httpc_form(a, pairs);
    assert_string_equal(form, "grant_type=authorization_code&x=a%20b%26c%3D%2F");
    const char *extra[] = {"X-Extra: yes", NULL};
    q = (nx_httpc_req_t){.method = "POST", .url = url(a, "/echo"), .body = form,
                         .body_len = strlen(form), .content_type = NX_HTTPC_FORM,
                         .headers = extra, .allow_http = true};
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    char *want = nx_arena_sprintf(a, "%s|nexusapi/%s|yes|%s", NX_HTTPC_FORM, NX_VERSION, form);
    assert_string_equal(r.body, want);
    nx_arena_free(a);
}

static int seen_port;
static bool refuse(const struct sockaddr *sa, socklen_t len, void *ud)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    seen_port = sa->sa_family == AF_INET ? ntohs(in->sin_port) : -1;
    return *(bool *)ud;
}

static void test_address_check(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    bool allow = false;
    nx_httpc_req_t q = get(a, "/json");
    q.check_addr = refuse;
    q.ud = &allow;
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    int before = atomic_load(&hits);
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_EFORBIDDEN);
    assert_int_equal(r.fail, NX_HTTPC_REFUSED);
    assert_int_equal(seen_port, port);
    assert_int_equal(atomic_load(&hits), before); /* never connected */
    assert_string_equal(err.detail, "the test server is at an address that is not allowed");
    allow = true;
    seen_port = 0;
    memset(&err, 0, sizeof(err));
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_int_equal(seen_port, port);
    assert_int_equal(r.status, 200);
    nx_arena_free(a);
}

static bool stop_now(void *ud) { return true; }

static void test_abort_cuts_the_call_short(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_httpc_req_t q = get(a, "/slow");
    q.cancel = stop_now;
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    double t0 = now_s();
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_EUNAVAILABLE);
    assert_true(now_s() - t0 < 2.5);
    assert_int_equal(r.fail, NX_HTTPC_ABORTED);
    nx_arena_free(a);
}

static void test_json_and_cache_control(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_httpc_req_t q = get(a, "/json");
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    json_t *v = NULL;
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_int_equal(r.max_age, 120);
    assert_false(r.no_store);
    assert_int_equal(nx_httpc_json(a, &r, "the test server", &v, &err), NX_OK);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);

    q = get(a, "/nostore");
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_true(r.no_store);
    assert_int_equal(r.max_age, -1);

    q = get(a, "/notjson");
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_int_equal(nx_httpc_json(a, &r, "the test server", &v, &err), NX_EUNAVAILABLE);
    assert_string_equal(err.detail, "the test server answer is not valid JSON");
    assert_non_null(strstr(err.log_detail, "line 1"));
    nx_arena_free(a);
}

static void test_https_only_unless_allowed(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_httpc_req_t q = get(a, "/json");
    q.allow_http = false;
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    int before = atomic_load(&hits);
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_EUNAVAILABLE);
    assert_int_equal(r.fail, NX_HTTPC_BADURL);
    assert_int_equal(atomic_load(&hits), before);

    /* nothing listens on a closed port: unreachable, with curl's text in the log */
    q = get(a, "/json");
    q.url = "http://127.0.0.1:1/";
    memset(&err, 0, sizeof(err));
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_EUNAVAILABLE);
    assert_int_equal(r.fail, NX_HTTPC_UNREACHABLE);
    assert_string_equal(err.detail, "the test server request failed: the server could not be "
                                    "reached");
    assert_true(err.log_detail[0] != '\0');
    nx_arena_free(a);
}

/* A call made while the thread works for a trace names that span as its
 * parent; an untraced call sends no traceparent. */
static void test_traceparent_sent(void **state)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_httpc_req_t q = get(a, "/traceparent");
    nx_httpc_resp_t r;
    nx_err_t err = {0};
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    assert_string_equal(r.body, "-");
    nx_trace_t t;
    assert_int_equal(
        nx_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), NX_OK);
    nx_trace_start(&t);
    const nx_trace_t *outer = nx_trace_enter(&t);
    assert_int_equal(nx_httpc_perform(a, &q, &r, &err), NX_OK);
    nx_trace_enter(outer);
    char want[NX_TRACEPARENT_LEN + 1];
    nx_trace_format(&t, want);
    assert_string_equal(r.body, want);
    assert_int_equal(strncmp(r.body, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0);
    nx_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_is_unavailable),
        cmocka_unit_test(test_size_cap_fails_or_cuts),
        cmocka_unit_test(test_redirect_is_not_followed),
        cmocka_unit_test(test_basic_credentials_and_post),
        cmocka_unit_test(test_address_check),
        cmocka_unit_test(test_abort_cuts_the_call_short),
        cmocka_unit_test(test_json_and_cache_control),
        cmocka_unit_test(test_https_only_unless_allowed),
        cmocka_unit_test(test_traceparent_sent),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
