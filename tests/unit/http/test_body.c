/*
 * test_body.c - request body limits and parsing (http/mw/limits.c) and
 * request ids (http/mw/request_id.c).
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static int ct(const char *v)
{
    nx_err_t err = {0};
    int rc = nx_mw_check_content_type(v, &err);
    if (rc != NX_OK)
        assert_int_equal(err.code, NX_EMEDIATYPE);
    return rc;
}

static void test_content_type(void **state)
{
    (void)state;
    assert_int_equal(ct("application/json"), NX_OK);
    assert_int_equal(ct("Application/JSON"), NX_OK);
    assert_int_equal(ct("application/json; charset=utf-8"), NX_OK);
    assert_int_equal(ct("application/json;charset=\"UTF-8\""), NX_OK);
    assert_int_equal(ct("application/json ; foo=bar"), NX_OK);
    assert_int_equal(ct(NULL), NX_EMEDIATYPE);
    assert_int_equal(ct(""), NX_EMEDIATYPE);
    assert_int_equal(ct("text/plain"), NX_EMEDIATYPE);
    assert_int_equal(ct("application/x-www-form-urlencoded"), NX_EMEDIATYPE);
    assert_int_equal(ct("application/jsonp"), NX_EMEDIATYPE);
    assert_int_equal(ct("application/json; charset=latin1"), NX_EMEDIATYPE);
    assert_int_equal(ct("multipart/form-data; boundary=x"), NX_EMEDIATYPE);
}

static void test_content_length(void **state)
{
    (void)state;
    nx_err_t err = {0};
    assert_int_equal(nx_mw_check_content_length(NULL, &err), NX_OK);
    assert_int_equal(nx_mw_check_content_length("1048576", &err), NX_OK);
    assert_int_equal(err.code, 0);
    assert_int_equal(nx_mw_check_content_length("1048577", &err), NX_ETOOBIG);
    assert_int_equal(nx_err_status(err.code), 413);
}

static void test_body_ceiling(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    nx_buf_t b;
    nx_buf_init(&b, a, NX_BODY_MAX);
    static char chunk[64 * 1024];
    memset(chunk, 'a', sizeof(chunk));
    nx_err_t err = {0};
    for (int i = 0; i < 16; i++)
        assert_int_equal(nx_mw_body_append(&b, chunk, sizeof(chunk), &err), NX_OK);
    assert_int_equal(b.len, NX_BODY_MAX);
    /* One byte more is refused, and nothing past the limit is kept. */
    assert_int_equal(nx_mw_body_append(&b, "x", 1, &err), NX_ETOOBIG);
    assert_int_equal(err.code, NX_ETOOBIG);
    assert_int_equal(b.len, NX_BODY_MAX);
    nx_arena_free(a);
}

static int parse(const char *body, size_t len, json_t **out, nx_err_t *err)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_err_clear(err);
    int rc = nx_mw_parse_json_object(a, body, len, out, err);
    if (rc == NX_OK)
        assert_true(json_is_object(*out));
    nx_arena_free(a); /* releases the parsed value (ASan checks the leak) */
    return rc;
}

static void test_json_object(void **state)
{
    (void)state;
    json_t *v;
    nx_err_t err;
    const char ok_json[] = "{\"a\": [1, 2], \"b\": \"\\u00e9\"}";
    assert_int_equal(parse(ok_json, sizeof(ok_json) - 1, &v, &err), NX_OK);
    const char ok_utf8[] = "{\"name\": \"Z\xc3\xbcrich \xf0\x9f\x98\x80\"}";
    assert_int_equal(parse(ok_utf8, sizeof(ok_utf8) - 1, &v, &err), NX_OK);

    struct {
        const char *body;
        const char *detail;
    } bad[] = {
        {"", "required"},
        {"{\"a\": 1, \"\xff\": 2}", "UTF-8"},      /* in a key: structure */
        {"{\"a\": 1\xff}", "UTF-8"},                 /* between tokens */
        {"{\"a\": 1", "not valid JSON"},
        {"{'a': 1}", "not valid JSON"},
        {"{\"a\": 1} trailing", "not valid JSON"},
        {"{\"a\": 1, \"a\": 2}", "repeats a key"},
        {"[1, 2]", "JSON object"},
        {"\"text\"", "JSON object"},
        {"42", "JSON object"},
        {"null", "JSON object"},
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(bad); i++) {
        int rc = parse(bad[i].body, strlen(bad[i].body), &v, &err);
        if (rc != NX_EINVAL || !strstr(err.detail, bad[i].detail))
            fail_msg("body %zu: rc %d detail \"%s\", wanted \"%s\"", i, rc, err.detail,
                     bad[i].detail);
        assert_int_equal(nx_err_status(err.code), 400);
    }
    /* Bad text inside a member's value names the member in a 422. */
    const char *bad_text[] = {
        "{\"a\": \"\xff\"}",
        "{\"a\": \"\xc0\xaf\"}",     /* overlong */
        "{\"a\": \"\xed\xa0\x80\"}", /* encoded surrogate */
        "{\"a\": \"\\ud800\"}",       /* escaped unpaired surrogate */
        "{\"a\": \"x\\udc00y\"}",
        "{\"a\": [\"ok\", {\"b\": \"\xfe\"}]}",
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(bad_text); i++) {
        int rc = parse(bad_text[i], strlen(bad_text[i]), &v, &err);
        if (rc != NX_EVALIDATION || err.nfields != 1 || strcmp(err.fields[0].field, "a") != 0)
            fail_msg("text %zu: rc %d nfields %d", i, rc, err.nfields);
        assert_int_equal(nx_err_status(err.code), 422);
        assert_non_null(strstr(err.detail, "UTF-8"));
    }
    /* A proper surrogate pair is fine; an escaped backslash is not an escape. */
    const char pair[] = "{\"a\": \"\\ud83d\\ude00 \\\\ud800\"}";
    assert_int_equal(parse(pair, sizeof(pair) - 1, &v, &err), NX_OK);
    /* An embedded NUL is not valid JSON text either. */
    assert_int_equal(parse("{\"a\":\"x\0\"}", 10, &v, &err), NX_EINVAL);
}

static void test_request_id(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    assert_string_equal(nx_mw_request_id(a, "abc-123_XYZ.~!"), "abc-123_XYZ.~!");
    char max[NX_REQUEST_ID_MAX + 2];
    memset(max, 'r', sizeof(max));
    max[NX_REQUEST_ID_MAX] = '\0';
    assert_string_equal(nx_mw_request_id(a, max), max);
    max[NX_REQUEST_ID_MAX] = 'r';
    max[NX_REQUEST_ID_MAX + 1] = '\0';
    const char *rejected[] = {NULL, "", max, "has space", "tab\there", "caf\xc3\xa9",
                              "new\nline", "del\x7f"};
    for (size_t i = 0; i < NX_ARRAY_LEN(rejected); i++) {
        const char *id = nx_mw_request_id(a, rejected[i]);
        assert_non_null(id);
        assert_int_equal(strlen(id), 36);
        assert_true(rejected[i] == NULL || strcmp(id, rejected[i]) != 0);
    }
    assert_string_not_equal(nx_mw_request_id(a, NULL), nx_mw_request_id(a, NULL));
    nx_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type), cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_body_ceiling), cmocka_unit_test(test_json_object),
        cmocka_unit_test(test_request_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
