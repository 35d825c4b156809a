/*
 * gemini.c - the Gemini provider (AI_PROVIDER=gemini): one generateContent
 * call per attempt through httpc.
 *
 *   POST {GEMINI_BASE_URL}/models/{GEMINI_MODEL}:generateContent
 *   x-goog-api-key: {GEMINI_API_KEY}
 *
 * summarise asks for a plain-text summary of at most three sentences.
 * analyse asks for a JSON-only answer holding the keywords and the
 * sentiment, which is validated field by field; the counts, reading time and
 * Flesch score come from the local text statistics (a language model does
 * not count words reliably, and these must be exact).
 *
 * An HTTP error, a timeout (GEMINI_TIMEOUT_SECONDS) or a malformed answer
 * fails the attempt with a one-line error_message; the queue decides whether
 * to retry. The answer and parsed JSON hang on the attempt's arena, so every
 * exit path releases them.
 */
#include "core/nx.h"
#include "jobs/providers/provider.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "httpc/httpc.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ANSWER_MAX (4 * 1024 * 1024)
#define REQUEST_MAX (2 * 1024 * 1024)
#define MAX_KEYWORDS 10
#define REASON_MAX 160 /* bytes of an error answer's message kept */

static const char summarise_prompt[] =
    "Summarise the following text in at most three sentences. Answer with the summary "
    "only, in the language of the text, without any preamble.\n\nText:\n";

static const char analyse_prompt[] =
    "Analyse the following text. Answer with one JSON object only, no prose and no code "
    "fences, of exactly this form: {\"top_keywords\": [{\"term\": \"...\", \"count\": 1}], "
    "\"sentiment\": {\"score\": 0.0, \"label\": \"neutral\"}}. top_keywords: the up to 10 "
    "most significant words of the text (lower case, no stop words), most frequent first, "
    "count = how often the word occurs. sentiment.score: a number from -1 (very negative) "
    "to 1 (very positive); label: \"positive\", \"neutral\" or \"negative\".\n\nText:\n";

void nx_provider_global_init(void) { nx_httpc_global_init(); }

/* The body of a successful answer (arena). */
struct answer {
    const char *body;
    size_t len;
};

/* Lets a drain timeout cut a slow call short. */
static bool aborting(void *ud) { return nx_provider_aborting(); }

static void json_cleanup(void *p) { json_decref(p); }

static const char *endpoint(nx_arena_t *a)
{
    const char *base = nx_cfg->gemini_base_url;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    const char *model = nx_cfg->gemini_model;
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    return nx_arena_sprintf(a, "%.*s/models/%s:generateContent", (int)n, base, model);
}

static int request_body(nx_arena_t *a, bool analyse, const char *text, size_t len,
                        nx_buf_t *b)
{
    nx_buf_t prompt;
    nx_buf_init(&prompt, a, REQUEST_MAX);
    nx_buf_init(b, a, REQUEST_MAX);
    if (nx_buf_puts(&prompt, analyse ? analyse_prompt : summarise_prompt) ||
        nx_buf_append(&prompt, text, len) ||
        nx_buf_puts(b, "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": ") ||
        nx_buf_json_str(b, prompt.data) ||
        nx_buf_printf(b, "}]}], \"generationConfig\": {\"temperature\": 0.2%s}}",
                      analyse ? ", \"responseMimeType\": \"application/json\"" : ""))
        return NX_ENOMEM;
    return NX_OK;
}

/* The short reason from an error answer's {"error": {"message"}}, cut on a
 * character boundary (a split character is not text, and the queue could
 * not record it) and marked with an ellipsis when cut. */
static const char *error_reason(nx_arena_t *a, const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    if (!root)
        return "";
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    char *out = "";
    if (msg) {
        size_t n = strlen(msg), keep = nx_utf8_cut(msg, n, REASON_MAX);
        out = nx_arena_sprintf(a, ": %.*s%s", (int)keep, msg, keep < n ? "\u2026" : "");
    }
    json_decref(root);
    return out ? out : "";
}

/* POSTs the request; the answer body goes into ans. */
static int post(nx_arena_t *a, const char *body, struct answer *ans, nx_err_t *err)
{
    const char *key = nx_arena_sprintf(a, "x-goog-api-key: %s", nx_cfg->gemini_api_key);
    const char *url = endpoint(a);
    if (!key || !url)
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    const char *headers[] = {key, NULL};
    long timeout_ms = nx_cfg->gemini_timeout * 1000L;
    nx_httpc_req_t q = {
        .method = "POST", .url = url, .service = "gemini", .headers = headers,
        .body = body, .body_len = strlen(body), .content_type = NX_HTTPC_JSON,
        .timeout_ms = timeout_ms, .connect_timeout_ms = timeout_ms < 10000 ? timeout_ms : 10000,
        .max_body = ANSWER_MAX, .allow_http = true, .cancel = aborting,
    };
    nx_httpc_resp_t r;
    int rc = nx_httpc_perform(a, &q, &r, err);
    if (rc == NX_EUNAVAILABLE && r.fail == NX_HTTPC_ABORTED) {
        /* the job's error_message says who stopped it */
        snprintf(err->detail, sizeof(err->detail),
                 "gemini call abandoned: the worker is stopping");
        return rc;
    }
    if (rc != NX_OK)
        return rc;
    if (r.status < 200 || r.status > 299)
        return nx_err_set(err, NX_EUNAVAILABLE, "gemini answered HTTP %ld%s", r.status,
                          error_reason(a, r.body, r.len));
    ans->body = r.body;
    ans->len = r.len;
    return NX_OK;
}

/* The text of the first candidate (its parts concatenated), arena-owned. */
static int candidate_text(nx_arena_t *a, const struct answer *ans, char **out, nx_err_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(ans->body, ans->len, 0, &jerr);
    if (!root)
        return nx_err_set(err, NX_EINTERNAL, "gemini answer is malformed: not JSON");
    if (nx_arena_defer(a, json_cleanup, root))
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    const char *blocked = json_string_value(
        json_object_get(json_object_get(root, "promptFeedback"), "blockReason"));
    if (blocked)
        return nx_err_set(err, NX_EINTERNAL, "gemini refused the text (%.40s)", blocked);
    json_t *cand = json_array_get(json_object_get(root, "candidates"), 0);
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        const char *why = json_string_value(json_object_get(cand, "finishReason"));
        return nx_err_set(err, NX_EINTERNAL, "gemini answer is malformed: no candidate text%s%.40s",
                          why ? ", finish reason " : "", why ? why : "");
    }
    nx_buf_t b;
    nx_buf_init(&b, a, ANSWER_MAX);
    size_t i;
    json_t *part;
    json_array_foreach(parts, i, part) {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t && nx_buf_puts(&b, t))
            return nx_err_set(err, NX_ENOMEM, "out of memory");
    }
    const char *t = b.data ? b.data : "";
    while (*t == ' ' || *t == '\n' || *t == '\r' || *t == '\t')
        t++;
    if (!*t)
        return nx_err_set(err, NX_EINTERNAL, "gemini answer is malformed: empty text");
    *out = (char *)t;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == '\t'))
        (*out)[--n] = '\0';
    return NX_OK;
}

static const char *strip_fences(char *t)
{
    if (strncmp(t, "```", 3) != 0)
        return t;
    char *nl = strchr(t, '\n');
    char *end = strrchr(t, '`');
    if (!nl || !end || end < nl)
        return t;
    while (end > nl && *end == '`')
        end--;
    end[1] = '\0';
    return nl + 1;
}

static int render_keywords(json_t *kw, nx_buf_t *b, nx_err_t *err)
{
    if (!json_is_array(kw))
        return nx_err_set(err, NX_EINTERNAL,
                          "gemini answer is malformed: top_keywords is not a list");
    size_t i, n = 0;
    json_t *item;
    json_array_foreach(kw, i, item) {
        const char *term = json_string_value(json_object_get(item, "term"));
        json_t *count = json_object_get(item, "count");
        double c = json_number_value(count);
        if (!term || !*term || !json_is_number(count) || c < 0 || c != floor(c) || c > 1e9)
            return nx_err_set(err, NX_EINTERNAL,
                              "gemini answer is malformed: keyword %zu needs a term and a count",
                              i);
        if (n == MAX_KEYWORDS)
            break;
        if ((n++ && nx_buf_puts(b, ", ")) || nx_buf_puts(b, "{\"term\": ") ||
            nx_buf_json_str(b, term) || nx_buf_printf(b, ", \"count\": %.0f}", c))
            return nx_err_set(err, NX_ENOMEM, "out of memory");
    }
    return NX_OK;
}

static int render_analysis(nx_arena_t *a, char *answer, const char *text, size_t len,
                           char **out, nx_err_t *err)
{
    json_t *root = json_loads(strip_fences(answer), 0, NULL);
    if (!root || nx_arena_defer(a, json_cleanup, root) || !json_is_object(root))
        return nx_err_set(err, NX_EINTERNAL, "gemini answer is malformed: not a JSON object");
    json_t *sent = json_object_get(root, "sentiment");
    json_t *score = json_object_get(sent, "score");
    const char *label = json_string_value(json_object_get(sent, "label"));
    double s = json_number_value(score);
    if (!json_is_number(score) || !(s >= -1.0 && s <= 1.0) || !label ||
        (strcmp(label, "positive") && strcmp(label, "neutral") && strcmp(label, "negative")))
        return nx_err_set(err, NX_EINTERNAL, "gemini answer is malformed: sentiment needs a "
                                             "score in [-1, 1] and a label");
    nx_text_stats_t st;
    if (nx_provider_local_stats(a, text, len, &st))
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    nx_buf_t b;
    nx_buf_init(&b, a, ANSWER_MAX);
    if (nx_buf_printf(&b,
                      "{\"word_count\": %ld, \"sentence_count\": %ld, "
                      "\"reading_time_seconds\": %ld, \"flesch_reading_ease\": %.2f, "
                      "\"top_keywords\": [",
                      st.words, st.sentences, st.reading_time_seconds, st.flesch))
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    int rc = render_keywords(json_object_get(root, "top_keywords"), &b, err);
    if (rc)
        return rc;
    if (nx_buf_printf(&b, "], \"sentiment\": {\"score\": %.3f, \"label\": \"%s\"}, "
                          "\"provider\": \"gemini\", \"model\": ", s, label) ||
        nx_buf_json_str(&b, nx_cfg->gemini_model) || nx_buf_puts(&b, "}"))
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    *out = b.data;
    return NX_OK;
}

int nx_provider_gemini_run(nx_arena_t *a, const char *job_type, const char *text, size_t len,
                           char **out, nx_err_t *err)
{
    if (!nx_cfg || !nx_cfg->gemini_api_key || !*nx_cfg->gemini_api_key)
        return nx_err_set(err, NX_ENOTCONFIGURED, "GEMINI_API_KEY is not set");
    bool analyse = strcmp(job_type, "analyse") == 0;
    nx_buf_t body;
    struct answer ans = {.body = "", .len = 0};
    if (request_body(a, analyse, text, len, &body))
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    char *reply = NULL;
    int rc = post(a, body.data, &ans, err);
    if (rc || (rc = candidate_text(a, &ans, &reply, err)))
        return rc;
    if (analyse)
        return render_analysis(a, reply, text, len, out, err);
    nx_buf_t b;
    nx_buf_init(&b, a, ANSWER_MAX);
    if (nx_buf_puts(&b, "{\"summary\": ") || nx_buf_json_str(&b, reply) ||
        nx_buf_puts(&b, ", \"provider\": \"gemini\", \"model\": ") ||
        nx_buf_json_str(&b, nx_cfg->gemini_model) || nx_buf_puts(&b, "}"))
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    *out = b.data;
    return NX_OK;
}
