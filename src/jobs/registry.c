/*
 * registry.c - the job types: everything about one type of job, declared
 * once.
 *
 * A row names the type (the API's "type", the queue's job_type column),
 * its cost in credits, how its input is checked, the OpenAPI schema of its
 * output and the provider entry point that does the work. The API (v1's
 * /summarise and /analyse, v2's POST /jobs), the queue (the debit), the
 * workers (which provider to call) and the served OpenAPI document (the
 * type enum, the costs, the output schemas) all read this table; adding a
 * type is one row here, its provider function, its output schema in
 * src/api/openapi.json and the job_type CHECK of the jobs table.
 */
#include "core/nx.h"
#include "jobs/jobs.h"
#include "core/err.h"
#include "core/util.h"
#include "jobs/providers/provider.h"

#include <string.h>

/* The text input every type takes today: {"text": 1..NX_JOB_TEXT_MAX
 * characters of UTF-8 without NUL}. field is the member's name as the
 * client knows it ("text" in v1, "input.text" in v2). */
static int text_input(json_t *input, const char *field, const char **text, nx_err_t *err)
{
    json_t *t = json_is_object(input) ? json_object_get(input, "text") : NULL;
    if (!t) {
        nx_err_field(err, field, "is required");
        return NX_EVALIDATION;
    }
    if (!json_is_string(t)) {
        nx_err_field(err, field, "must be a string");
        return NX_EVALIDATION;
    }
    const char *s = json_string_value(t);
    size_t len = json_string_length(t);
    if (strlen(s) != len || !nx_utf8_valid(s, len)) {
        nx_err_field(err, field, "must be valid UTF-8 without NUL characters");
        return NX_EVALIDATION;
    }
    size_t chars = nx_utf8_len(s, len);
    if (chars == 0) {
        nx_err_field(err, field, "must not be empty");
        return NX_EVALIDATION;
    }
    if (chars > NX_JOB_TEXT_MAX) {
        nx_err_field(err, field, "must be at most %d characters (got %zu)", NX_JOB_TEXT_MAX,
                     chars);
        return NX_EVALIDATION;
    }
    *text = s;
    return NX_OK;
}

static const nx_job_type_t types[] = {
    {
        .name = "summarise",
        .cost = 10,
        .title = "an extractive summary of the text (at most three sentences)",
        .input = text_input,
        .output_schema = "SummaryOutput",
        .run = nx_provider_summarise,
    },
    {
        .name = "analyse",
        .cost = 25,
        .title = "text statistics, reading ease, top keywords and sentiment",
        .input = text_input,
        .output_schema = "AnalysisOutput",
        .run = nx_provider_analyse,
    },
};

const nx_job_type_t *nx_job_type_find(const char *name)
{
    for (size_t i = 0; name && i < NX_ARRAY_LEN(types); i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

const nx_job_type_t *nx_job_type_at(size_t i)
{
    return i < NX_ARRAY_LEN(types) ? &types[i] : NULL;
}
