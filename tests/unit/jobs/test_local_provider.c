/*
 * test_local_provider.c - the offline provider: summary length rules,
 * determinism, and the analysis numbers on a text worked out by hand.
 */
#include "core/nx.h"
#include "jobs/providers/provider.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static json_t *run(nx_arena_t *a, bool summarise, const char *text)
{
    nx_err_t err = {0};
    char *out = NULL;
    int rc = summarise ? nx_provider_local_summarise(a, text, strlen(text), &out, &err)
                       : nx_provider_local_analyse(a, text, strlen(text), &out, &err);
    assert_int_equal(rc, NX_OK);
    assert_non_null(out);
    json_error_t je;
    json_t *v = json_loads(out, 0, &je);
    if (!v)
        fail_msg("output is not JSON: %s\n%s", je.text, out);
    return v;
}

/* A 20-sentence text in which "queue" and "workers" dominate. */
static const char *long_text(nx_arena_t *a)
{
    static const char *const s[] = {
        "The job queue stores every submitted task in the database.",
        "Workers claim jobs from the queue in small batches.",
        "A lease protects each claimed job while workers run it.",
        "Breakfast was served at eight in the small hotel.",
        "The queue hands expired jobs to other workers.",
        "Rain fell all afternoon over the quiet harbour.",
        "Credits are refunded when the final attempt fails.",
        "Each attempt is logged with its number and its error.",
        "The museum opens late on Thursdays.",
        "Workers wake up when the queue sends a notification.",
        "Nobody remembered the name of the old ferry.",
        "Retries wait a few seconds between attempts.",
        "The garden needs water twice a week in summer.",
        "Finished jobs are pruned after thirty days.",
        "A bicycle leaned against the bakery wall.",
        "Queue workers renew the lease of long jobs in the queue.",
        "Music drifted from an open window across the street.",
        "The balance never goes below zero under concurrency.",
        "Snow covered the mountain pass by December.",
        "Two workers never run the same job at once.",
    };
    char *t = nx_arena_strdup(a, "");
    for (size_t i = 0; i < NX_ARRAY_LEN(s); i++)
        t = nx_arena_sprintf(a, "%s%s%s", t, i ? " " : "", s[i]);
    return t;
}

static void test_summary_rules(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    const char *text = long_text(a);
    json_t *v = run(a, true, text);
    const char *summary = json_string_value(json_object_get(v, "summary"));
    assert_non_null(summary);
    assert_string_equal(json_string_value(json_object_get(v, "provider")), "local");
    assert_string_equal(json_string_value(json_object_get(v, "model")), NX_LOCAL_MODEL);
    /* at most 3 sentences, at most 20% of the text */
    int periods = 0;
    for (const char *p = summary; *p; p++)
        periods += *p == '.';
    assert_true(periods >= 1 && periods <= 3);
    assert_true(strlen(summary) <= strlen(text) / 5);
    /* extractive: every sentence is from the text, in the original order */
    const char *from = text;
    char *copy = nx_arena_strdup(a, summary);
    for (char *sv, *sent = strtok_r(copy, ".", &sv); sent; sent = strtok_r(NULL, ".", &sv)) {
        while (*sent == ' ')
            sent++;
        const char *at = strstr(from, sent);
        assert_non_null(at);
        from = at + strlen(sent);
    }
    /* the sentence densest in the dominant terms wins */
    assert_non_null(strstr(summary, "Queue workers renew the lease of long jobs in the queue."));
    assert_null(strstr(summary, "Breakfast"));
    json_decref(v);
    nx_arena_free(a);
}

static void test_summary_deterministic(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    const char *text = long_text(a);
    json_t *v1 = run(a, true, text), *v2 = run(a, true, text);
    assert_true(json_equal(v1, v2));
    json_decref(v1);
    json_decref(v2);
    nx_arena_free(a);
}

static void test_summary_short_texts(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    json_t *v = run(a, true, "Just one sentence here.");
    assert_string_equal(json_string_value(json_object_get(v, "summary")), "Just one sentence here.");
    json_decref(v);
    v = run(a, true, "  \n  multiple   spaces\nand lines  ");
    assert_string_equal(json_string_value(json_object_get(v, "summary")), "multiple spaces and lines");
    json_decref(v);
    v = run(a, true, "!!! ...");
    assert_string_equal(json_string_value(json_object_get(v, "summary")), "");
    json_decref(v);
    /* one sentence far longer than 20%: cut at a word boundary, with an ellipsis */
    char *big = nx_arena_strdup(a, "");
    for (int i = 0; i < 200; i++)
        big = nx_arena_sprintf(a, "%sword%d ", big, i);
    v = run(a, true, big);
    const char *s = json_string_value(json_object_get(v, "summary"));
    assert_true(nx_utf8_len(s, strlen(s)) <= 301);
    assert_non_null(strstr(s, "\xE2\x80\xA6"));
    json_decref(v);
    nx_arena_free(a);
}

static void test_analyse_numbers(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    /* 14 words, 3 sentences, 14 syllables ("ate" and "bone": silent e) */
    json_t *v = run(a, false, "The cat sat on the mat. The dog ate the bone! Was it good?");
    assert_int_equal(json_integer_value(json_object_get(v, "word_count")), 14);
    assert_int_equal(json_integer_value(json_object_get(v, "sentence_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(v, "reading_time_seconds")), 5);
    /* 206.835 - 1.015 * 14/3 - 84.6 * 14/14 = 117.498... */
    double f = json_number_value(json_object_get(v, "flesch_reading_ease"));
    assert_true(f > 117.495 && f < 117.505);
    json_t *kw = json_object_get(v, "top_keywords");
    assert_int_equal(json_array_size(kw), 7);
    assert_string_equal(json_string_value(json_object_get(json_array_get(kw, 0), "term")), "ate");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(kw, 0), "count")), 1);
    json_t *sent = json_object_get(v, "sentiment");
    double score = json_number_value(json_object_get(sent, "score"));
    assert_true(score > 0.249 && score < 0.251); /* 1 / sqrt(1 + 15) */
    assert_string_equal(json_string_value(json_object_get(sent, "label")), "positive");
    assert_string_equal(json_string_value(json_object_get(v, "provider")), "local");
    json_decref(v);
    nx_arena_free(a);
}

static void test_analyse_keywords_and_sentiment(void **state)
{
    (void)state;
    nx_arena_t *a = nx_arena_new(4096);
    json_t *v = run(a, false,
                    "The service was not good. The service was slow and the food was terrible. "
                    "Dr. Smith said the service was awful.");
    assert_int_equal(json_integer_value(json_object_get(v, "sentence_count")), 3);
    json_t *kw = json_object_get(v, "top_keywords");
    assert_string_equal(json_string_value(json_object_get(json_array_get(kw, 0), "term")),
                        "service");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(kw, 0), "count")), 3);
    json_t *sent = json_object_get(v, "sentiment");
    assert_true(json_number_value(json_object_get(sent, "score")) < -0.5);
    assert_string_equal(json_string_value(json_object_get(sent, "label")), "negative");
    json_decref(v);
    v = run(a, false, "A table. Numbers 42 and 7.");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "sentiment"), "label")),
                        "neutral");
    assert_int_equal(json_array_size(json_object_get(v, "top_keywords")), 2); /* table, numbers */
    json_decref(v);
    /* at most 10 keywords; non-ASCII words survive intact */
    v = run(a, false, "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda "
                      "mu café café naïve über");
    kw = json_object_get(v, "top_keywords");
    assert_int_equal(json_array_size(kw), 10);
    assert_string_equal(json_string_value(json_object_get(json_array_get(kw, 0), "term")), "café");
    json_decref(v);
    nx_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_rules),
        cmocka_unit_test(test_summary_deterministic),
        cmocka_unit_test(test_summary_short_texts),
        cmocka_unit_test(test_analyse_numbers),
        cmocka_unit_test(test_analyse_keywords_and_sentiment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
