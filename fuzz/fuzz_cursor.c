/*
 * fuzz_cursor.c - the list cursor decoder (api/common.c): what a client
 * sends back as ?cursor=. Whatever it is, the answer is a position whose
 * time is a non-negative integer and whose id is a UUID, or a 422 naming
 * "cursor".
 */
#include "core/nx.h"
#include "fuzz.h"
#include "api/api.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    nx_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *cursor = nx_fuzz_str(data, size);
    nx_arena_t *a = nx_arena_new(4096);
    nx_page_t page = {0};
    nx_err_t err = {0};
    int rc = nx_api_cursor_parse(a, "9e3779b9", cursor, &page, &err);
    long long us;
    if (rc == NX_OK && (nx_parse_int(page.after_us, 0, INT64_MAX, &us) != NX_OK ||
                        !nx_uuid_valid(page.after_id)))
        abort();
    if (rc != NX_OK && (rc != NX_EVALIDATION || strcmp(err.fields[0].field, "cursor") != 0))
        abort();
    nx_arena_free(a);
    free(cursor);
    return 0;
}
