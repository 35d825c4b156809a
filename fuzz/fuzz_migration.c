/*
 * fuzz_migration.c - the migration file parser (db/migrate.c): the
 * sections and markers, and the statement splitter of no-transaction files
 * (quotes, dollar quotes, comments). The input is the file; when it starts
 * with '#', its first line is the file's name instead of a fixed good one.
 * The statements split from a section must lie inside it, in order.
 */
#include "core/nx.h"
#include "fuzz.h"
#include "core/err.h"
#include "db/migrate.h"

struct walk {
    const char *sql;
    size_t len, at;
};

static int statement(void *ctx, const char *s, size_t n)
{
    struct walk *w = ctx;
    if (n == 0 || s < w->sql + w->at || s + n > w->sql + w->len)
        abort();
    w->at = (size_t)(s - w->sql) + n;
    return 0;
}

static void split(const char *sql)
{
    struct walk w = {sql, strlen(sql), 0};
    if (nx_mig_split(sql, statement, &w) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    nx_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = nx_fuzz_str(data, size);
    const char *name = "0042_fuzzed.sql", *text = (const char *)data;
    size_t len = size;
    char *nl = copy[0] == '#' ? strchr(copy, '\n') : NULL;
    if (nl) {
        *nl = '\0';
        name = copy + 1;
        text = (const char *)data + (nl - copy) + 1;
        len = size - (size_t)(nl - copy) - 1;
    }
    nx_mig_t m;
    nx_err_t err = {0};
    if (nx_mig_parse(&m, name, text, len, &err) == NX_OK) {
        split(m.up);
        split(m.down);
        nx_mig_release(&m);
    } else if (err.code != NX_EINVAL && err.code != NX_ENOMEM) {
        abort();
    }
    free(copy);
    return 0;
}
