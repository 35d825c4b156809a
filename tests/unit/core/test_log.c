/*
 * test_log.c - log lines stay one line of the chosen format, whatever the
 * values hold (issue 11, item 12).
 *
 * Values carry text from outside (database messages, provider errors,
 * what a client sent): a newline in a text-format value used to start a
 * forged log line, an escape sequence reached the terminal as is, and in
 * JSON a long value was cut mid-escape or without its closing quote, and
 * invalid UTF-8 was written raw. Every line must now be exactly one line,
 * valid UTF-8, and in JSON format parse as one object.
 */
#include "core/nx.h"
#include "core/log.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

/* Writes one line with msg and fields key=value..., returns it (static). */
static const char *capture(bool text, const char *msg, const char *k1, const char *v1,
                           const char *k2, const char *v2)
{
    static char out[8192];
    FILE *f = tmpfile();
    assert_non_null(f);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    nx_log_configure(NX_LOG_DEBUG, text);
    nx_log_write(NX_LOG_INFO, msg,
                 (const nx_log_field_t[]){NX_LS(k1, v1), NX_LS(k2, v2), NX_LI("n", 7), {0}});
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    fclose(f);
    out[n] = '\0';
    return out;
}

/* One line, ending in its only newline, valid UTF-8, no control byte. */
static void check_one_line(const char *line)
{
    size_t n = strlen(line);
    assert_true(n > 0 && n <= 4096);
    assert_int_equal(line[n - 1], '\n');
    if (!nx_utf8_valid(line, n))
        fail_msg("not valid UTF-8: %s", line);
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            fail_msg("control byte 0x%02x at %zu: %s", (unsigned char)line[i], i, line);
}

static const char *const hostile[] = {
    "first\nfake 2026-01-01T00:00:00Z error forged line",
    "cr\rtab\tbell\aesc\x1b[31mred\x1b[0m del\x7f nul-free",
    "back\\slash and \"quotes\"",
    "c1 \xc2\x9b" "2J csi",
    "bad utf-8 \xff\xfe \xc3 end",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
};

static void test_issue11_text_lines_escape_control_characters(void **state)
{
    (void)state;
    for (size_t i = 0; i < NX_ARRAY_LEN(hostile); i++) {
        const char *line = capture(true, hostile[i], "detail", hostile[i], "other", "x");
        check_one_line(line);
        assert_null(strstr(line, "\xc2\x9b")); /* nor a C1 control (CSI) */
        assert_non_null(strstr(line, " n=7\n")); /* the fields after it survive */
    }
    const char *line = capture(true, "m", "detail", hostile[0], "other", "x");
    assert_non_null(strstr(line, "detail=first\\nfake"));
    line = capture(true, "m", "detail", hostile[1], "other", "x");
    assert_non_null(strstr(line, "esc\\x1b[31mred"));
    line = capture(true, "m", "detail", hostile[5], "other", "x");
    assert_non_null(strstr(line, hostile[5])); /* real text stays readable */
}

static void check_json(const char *line, const char *detail_prefix)
{
    check_one_line(line);
    json_error_t je;
    json_t *v = json_loads(line, 0, &je);
    if (!v)
        fail_msg("not one JSON object (%s): %s", je.text, line);
    assert_true(json_is_object(v));
    const char *d = json_string_value(json_object_get(v, "detail"));
    if (detail_prefix) {
        assert_non_null(d);
        assert_memory_equal(d, detail_prefix, strlen(d));
    }
    json_decref(v);
}

static void test_issue11_json_lines_stay_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < NX_ARRAY_LEN(hostile); i++)
        check_json(capture(false, hostile[i], "detail", hostile[i], "other", "x"),
                   i == 4 ? NULL : hostile[i]);
    json_t *v = json_loads(capture(false, "m", "detail", hostile[4], "o", "x"), 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "detail")),
                        "bad utf-8 \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd end");
    json_decref(v);

    /* values long enough to fill the line, cut at every offset, with
     * escapes and multi-byte characters straddling the end */
    static const char *const units[] = {"\x01", "\"", "\xc3\xa9", "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80", "a"};
    static char big[8192];
    for (size_t u = 0; u < NX_ARRAY_LEN(units); u++) {
        for (size_t pad = 3940; pad < 4040; pad++) {
            size_t n = 0, w = strlen(units[u]);
            memset(big, 'p', pad);
            for (n = pad; n + w < sizeof(big) - 1 && n < pad + 64; n += w)
                memcpy(big + n, units[u], w);
            big[n] = '\0';
            check_json(capture(false, "m", "detail", big, "after", "x"), NULL);
            check_one_line(capture(true, "m", "detail", big, "after", "x"));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue11_text_lines_escape_control_characters),
        cmocka_unit_test(test_issue11_json_lines_stay_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
