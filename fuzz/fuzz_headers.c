/*
 * fuzz_headers.c - the checks of what a client puts in its headers:
 * X-Request-ID (echoed only when sane), traceparent (kept only when valid;
 * what we send must read back the same), Content-Type and Content-Length.
 * The first byte picks the check, the rest is the header's value.
 */
#include "core/nx.h"
#include "fuzz.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/trace.h"
#include "http/http_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    nx_fuzz_quiet();
    return 0;
}

static void request_id(const char *v)
{
    nx_arena_t *a = nx_arena_new(1024);
    const char *id = nx_mw_request_id(a, v);
    if (!id || !nx_mw_request_id_sane(id) || (nx_mw_request_id_sane(v) && strcmp(id, v) != 0))
        abort();
    for (const char *p = id; *p; p++) /* never anything that could split a header */
        if (*p < 0x21 || *p > 0x7e)
            abort();
    nx_arena_free(a);
}

static void traceparent(const char *v)
{
    nx_trace_t t, back;
    if (nx_trace_parse(v, &t) != NX_OK)
        return;
    nx_trace_start(&t);
    char out[NX_TRACEPARENT_LEN + 1];
    nx_trace_format(&t, out);
    if (nx_trace_parse(out, &back) != NX_OK || strcmp(back.trace_id, t.trace_id) != 0 ||
        strcmp(back.parent_id, t.span_id) != 0 || back.flags != t.flags)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *v = nx_fuzz_str(data + 1, size - 1);
    nx_err_t err = {0};
    int rc;
    switch (data[0] % 4) {
    case 0:
        request_id(v);
        break;
    case 1:
        traceparent(v);
        break;
    case 2:
        rc = nx_mw_check_content_type(v, &err);
        if (rc != NX_OK && rc != NX_EMEDIATYPE)
            abort();
        break;
    default:
        rc = nx_mw_check_content_length(v, &err);
        if (rc != NX_OK && rc != NX_ETOOBIG && rc != NX_EINVAL)
            abort();
        break;
    }
    free(v);
    return 0;
}
