/*
 * test_problem.c - problem bodies are valid UTF-8 whatever text they carry
 * (issue 11, item 7).
 *
 * A client's JSON key becomes a 422 field name, cut to the error sink's
 * fixed size: a key of multi-byte characters used to be cut inside a
 * character and sent as invalid UTF-8. Every length around each cut, with
 * 2-, 3- and 4-byte characters at every offset, goes through the sink and
 * through problem rendering; text that is already broken in the sink is
 * repaired by the renderer.
 */
#include "core/nx.h"
#include "http/http_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const char *const wide[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};

/* "a" x pad, then the character c repeated to at least len bytes. */
static void make_text(char *out, size_t size, size_t pad, const char *c, size_t len)
{
    size_t n = 0, w = strlen(c);
    while (n < pad && n + 1 < size)
        out[n++] = 'a';
    while (n < len && n + w < size) {
        memcpy(out + n, c, w);
        n += w;
    }
    out[n] = '\0';
}

/* kept is a cut of whole: valid UTF-8, a prefix, no more than w - 1 bytes
 * short of the room it had. */
static void check_cut(const char *kept, size_t room, const char *whole, size_t w)
{
    size_t n = strlen(kept);
    if (!nx_utf8_valid(kept, n))
        fail_msg("cut of %zu bytes to %zu is not valid UTF-8", strlen(whole), room);
    assert_memory_equal(kept, whole, n);
    if (strlen(whole) <= room)
        assert_int_equal(n, strlen(whole));
    else
        assert_true(n <= room && n + w > room);
}

/* Renders err as a problem; checks the body and returns its field 0 name. */
static void check_render(const nx_err_t *err, char *field_out, size_t size)
{
    nx_arena_t *a = nx_arena_new(NX_HTTP_ARENA_CHUNK);
    assert_non_null(a);
    nx_http_conn_t *hc = nx_arena_calloc(a, sizeof(*hc));
    assert_non_null(hc);
    hc->req.arena = a;
    hc->req.conn = hc;
    hc->req.request_id = "test-request";
    nx_problem_render(&hc->req, err->code, err);
    assert_int_equal(hc->resp.status, 422);
    if (!nx_utf8_valid(hc->resp.body, hc->resp.len))
        fail_msg("problem body is not valid UTF-8: %s", hc->resp.body);
    json_error_t je;
    json_t *v = json_loadb(hc->resp.body, hc->resp.len, 0, &je);
    if (!v)
        fail_msg("problem body does not parse (%s): %s", je.text, hc->resp.body);
    const char *f = json_string_value(json_object_get(
        json_array_get(json_object_get(v, "errors"), 0), "field"));
    assert_non_null(f);
    snprintf(field_out, size, "%s", f);
    json_decref(v);
    nx_arena_free(a);
}

static void test_issue11_cut_text_stays_utf8(void **state)
{
    (void)state;
    nx_err_t probe;
    const size_t rooms[] = {sizeof(probe.fields[0].field), sizeof(probe.fields[0].message),
                            sizeof(probe.detail), sizeof(probe.log_detail)};
    for (size_t r = 0; r < NX_ARRAY_LEN(rooms); r++) {
        size_t room = rooms[r] - 1;
        for (size_t c = 0; c < NX_ARRAY_LEN(wide); c++) {
            size_t w = strlen(wide[c]);
            /* every length from well under the cut to past it, every offset */
            for (size_t pad = room - 8; pad <= room + 1; pad++) {
                for (size_t len = room - 4; len <= room + 2 * w; len++) {
                    char text[600];
                    make_text(text, sizeof(text), pad < len ? pad : len, wide[c], len);
                    nx_err_t err = {0};
                    nx_err_set(&err, NX_EVALIDATION, "%s", text);
                    nx_err_log(&err, "%s", text);
                    nx_err_field(&err, text, "%s", text);
                    assert_int_equal(err.nfields, 1);
                    check_cut(err.fields[0].field, sizeof(err.fields[0].field) - 1, text, w);
                    check_cut(err.fields[0].message, sizeof(err.fields[0].message) - 1, text, w);
                    check_cut(err.detail, sizeof(err.detail) - 1, text, w);
                    check_cut(err.log_detail, sizeof(err.log_detail) - 1, text, w);
                    if (r == 0) { /* the field name as the client will see it */
                        char shown[128];
                        check_render(&err, shown, sizeof(shown));
                        assert_string_equal(shown, err.fields[0].field);
                    }
                }
            }
        }
    }
}

static void test_issue11_broken_text_is_repaired_when_rendered(void **state)
{
    (void)state;
    nx_err_t err = {0};
    err.code = NX_EVALIDATION;
    snprintf(err.detail, sizeof(err.detail), "x\xe2\x82");
    snprintf(err.fields[0].field, sizeof(err.fields[0].field), "ab\xc3");
    snprintf(err.fields[0].message, sizeof(err.fields[0].message), "\xff\xfe ok \xed\xa0\x80");
    err.nfields = 1;
    char shown[128];
    check_render(&err, shown, sizeof(shown));
    assert_string_equal(shown, "ab\xef\xbf\xbd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue11_cut_text_stays_utf8),
        cmocka_unit_test(test_issue11_broken_text_is_repaired_when_rendered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
