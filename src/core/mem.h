/*
 * mem.h - the only allocator entry points outside third-party libraries.
 *
 * Wrapping malloc lets tests inject allocation failures (NX_FAIL_ALLOC_AFTER,
 * like curl's torture mode) and keeps raw malloc/free out of the rest of the
 * tree.
 */
#ifndef NX_CORE_MEM_H
#define NX_CORE_MEM_H

#include <stddef.h>

/* Heap allocation; NULL on failure. Caller owns and releases with nx_free. */
void *nx_malloc(size_t n);
void *nx_calloc(size_t count, size_t n);
void *nx_realloc(void *p, size_t n);
char *nx_strdup(const char *s);
void nx_free(void *p);

/* Test hook: the Nth allocation from now fails (0 turns injection off). */
void nx_mem_fail_after(long n);

#endif
