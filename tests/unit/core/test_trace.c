/*
 * test_trace.c - W3C Trace Context (core/trace.c): which traceparent values
 * are kept and which start a new trace, the header an outbound call gets,
 * and the trace id in every log line written for a traced piece of work.
 */
#include "core/nx.h"
#include "core/trace.h"
#include "core/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

static void test_valid_values_kept(void **state)
{
    (void)state;
    nx_trace_t t;
    assert_int_equal(nx_trace_parse("00-" TID "-" PID "-01", &t), NX_OK);
    assert_string_equal(t.trace_id, TID);
    assert_string_equal(t.parent_id, PID);
    assert_int_equal(t.flags, 1);
    assert_string_equal(t.span_id, "");
    /* a later version may append fields after a '-' */
    assert_int_equal(nx_trace_parse("cc-" TID "-" PID "-00-what-comes-next", &t), NX_OK);
    assert_string_equal(t.trace_id, TID);
    assert_int_equal(nx_trace_parse("01-" TID "-" PID "-09", &t), NX_OK);
    assert_int_equal(t.flags, 9);
}

static void test_invalid_values_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL,
        "",
        "00-" TID "-" PID "-0",                      /* short */
        "00-" TID "-" PID "-01-",                    /* version 00 is exactly 55 */
        "00-" TID "-" PID "-01x",
        "ff-" TID "-" PID "-01",                     /* version ff is invalid */
        "0g-" TID "-" PID "-01",
        "01-" TID "-" PID "-01x",                    /* more, not after a '-' */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01", /* upper case */
        "00-" TID "-00F067AA0BA902B7-01",
        "00-00000000000000000000000000000000-" PID "-01", /* all-zero ids */
        "00-" TID "-0000000000000000-01",
        "00_" TID "-" PID "-01",                     /* separators */
        "00-" TID "_" PID "-01",
        "00-" TID "-" PID "_01",
        "00-" TID "-" PID "-0G",
        " 00-" TID "-" PID "-01",
        "00-" TID "-" PID "-01\n",
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(bad); i++) {
        nx_trace_t t;
        memset(&t, 'x', sizeof(t));
        if (nx_trace_parse(bad[i], &t) != NX_EINVAL)
            fail_msg("accepted \"%s\"", bad[i] ? bad[i] : "(null)");
        assert_string_equal(t.trace_id, ""); /* nothing of it is kept */
    }
}

static void test_start_and_format(void **state)
{
    (void)state;
    nx_trace_t t = {0};
    nx_trace_start(&t); /* no caller: a new trace */
    assert_int_equal(strlen(t.trace_id), NX_TRACE_ID_LEN);
    assert_int_equal(strlen(t.span_id), NX_SPAN_ID_LEN);
    assert_string_equal(t.parent_id, "");
    char out[NX_TRACEPARENT_LEN + 1];
    nx_trace_format(&t, out);
    nx_trace_t back;
    assert_int_equal(nx_trace_parse(out, &back), NX_OK); /* what we send is valid */
    assert_string_equal(back.trace_id, t.trace_id);
    assert_string_equal(back.parent_id, t.span_id);
    assert_int_equal(back.flags, 0);

    /* a caller's trace: same trace id and flags, a span of our own */
    assert_int_equal(nx_trace_parse("00-" TID "-" PID "-01", &t), NX_OK);
    nx_trace_start(&t);
    assert_string_equal(t.trace_id, TID);
    assert_string_equal(t.parent_id, PID);
    assert_string_not_equal(t.span_id, PID);
    nx_trace_format(&t, out);
    assert_int_equal(strncmp(out, "00-" TID "-", 36), 0);
    assert_string_equal(out + 52, "-01");
}

/* The line written while t is the thread's trace. */
static const char *log_line(const nx_trace_t *t, bool own_field)
{
    static char out[4096];
    FILE *f = tmpfile();
    assert_non_null(f);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    nx_log_configure(NX_LOG_INFO, false);
    const nx_trace_t *outer = nx_trace_enter(t);
    if (own_field)
        nx_log(NX_LOG_INFO, "job outcome", NX_LS("trace_id", "0123"));
    else
        nx_log0(NX_LOG_INFO, "something happened");
    assert_ptr_equal(nx_trace_enter(outer), t);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    fclose(f);
    out[n] = '\0';
    return out;
}

static void test_log_lines_carry_the_trace(void **state)
{
    (void)state;
    nx_trace_t t;
    assert_int_equal(nx_trace_parse("00-" TID "-" PID "-01", &t), NX_OK);
    nx_trace_start(&t);
    assert_non_null(strstr(log_line(&t, false), "\"trace_id\":\"" TID "\""));
    const char *own = log_line(&t, true); /* the caller's own field wins, once */
    assert_non_null(strstr(own, "\"trace_id\":\"0123\""));
    assert_null(strstr(own, TID));
    assert_null(strstr(log_line(NULL, false), "trace_id"));
    nx_trace_t none = {0}; /* a request before its trace stage ran */
    assert_null(strstr(log_line(&none, false), "trace_id"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_values_kept),
        cmocka_unit_test(test_invalid_values_refused),
        cmocka_unit_test(test_start_and_format),
        cmocka_unit_test(test_log_lines_carry_the_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
