/*
 * arena.h - region allocator with cleanups.
 *
 * Every request, job attempt and CLI run owns one arena. Memory is never
 * freed piecemeal; non-memory resources (PGresult, connections, fds) hang a
 * cleanup on the arena so every exit path releases them.
 */
#ifndef NX_CORE_ARENA_H
#define NX_CORE_ARENA_H

#include "core/nx.h"

#include <stdarg.h>

typedef void (*nx_cleanup_cb)(void *ptr);

/* A new arena whose chunks are at least chunk_size bytes; NULL on ENOMEM. */
nx_arena_t *nx_arena_new(size_t chunk_size);
/* Runs the cleanups (last registered first), then frees all memory. */
void nx_arena_free(nx_arena_t *a);
/* Runs the cleanups and forgets all allocations, keeping the first chunk. */
void nx_arena_reset(nx_arena_t *a);

/* Arena memory, aligned for any type; NULL on exhaustion. */
void *nx_arena_alloc(nx_arena_t *a, size_t n);
void *nx_arena_calloc(nx_arena_t *a, size_t n);
char *nx_arena_strdup(nx_arena_t *a, const char *s);
char *nx_arena_strndup(nx_arena_t *a, const char *s, size_t n);
char *nx_arena_sprintf(nx_arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *nx_arena_vsprintf(nx_arena_t *a, const char *fmt, va_list ap);

/* Registers fn(ptr) to run when the arena is reset or freed.
 * Returns NX_OK or NX_ENOMEM (in which case fn(ptr) is called at once). */
int nx_arena_defer(nx_arena_t *a, nx_cleanup_cb fn, void *ptr);
/* Cancels a registered cleanup (matched by fn and ptr) without running it. */
void nx_arena_undefer(nx_arena_t *a, nx_cleanup_cb fn, void *ptr);

/* Bytes handed out since creation or the last reset. */
size_t nx_arena_used(const nx_arena_t *a);

#endif
