/*
 * mem.c - heap allocation with optional failure injection for tests.
 */
#include "core/nx.h"
#include "core/mem.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown;

void nx_mem_fail_after(long n) { atomic_store(&fail_countdown, n); }

static bool should_fail(void)
{
    long n = atomic_load(&fail_countdown);
    if (n <= 0)
        return false;
    return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

void *nx_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }

void *nx_calloc(size_t count, size_t n)
{
    return should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *nx_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *nx_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = nx_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void nx_free(void *p) { free(p); }

void nx_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
