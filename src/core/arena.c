/*
 * arena.c - chunked bump allocator with a cleanup list.
 *
 * Chunks are linked newest first; a request that fits its first chunk costs
 * one malloc. Large allocations get a chunk of their own so a 1 MiB body does
 * not waste the rest of a small chunk. Cleanups run in reverse order of
 * registration, as ngx_pool_cleanup does.
 */
#include "core/nx.h"
#include "core/arena.h"
#include "core/mem.h"

#include <stdio.h>
#include <string.h>

#define ALIGN 16
#define ALIGN_UP(n) (((n) + (ALIGN - 1)) & ~(size_t)(ALIGN - 1))

struct chunk {
    struct chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

struct cleanup {
    struct cleanup *next;
    nx_cleanup_cb fn;
    void *ptr;
};

struct nx_arena {
    struct chunk *chunks;
    struct cleanup *cleanups;
    size_t chunk_size;
    size_t used;
};

static struct chunk *chunk_new(size_t size)
{
    struct chunk *c = nx_malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

nx_arena_t *nx_arena_new(size_t chunk_size)
{
    if (chunk_size < 256)
        chunk_size = 256;
    nx_arena_t *a = nx_malloc(sizeof(*a));
    if (!a)
        return NULL;
    a->chunks = chunk_new(chunk_size);
    if (!a->chunks) {
        nx_free(a);
        return NULL;
    }
    a->cleanups = NULL;
    a->chunk_size = chunk_size;
    a->used = 0;
    return a;
}

static void run_cleanups(nx_arena_t *a)
{
    while (a->cleanups) {
        struct cleanup *c = a->cleanups;
        a->cleanups = c->next;
        c->fn(c->ptr);
    }
}

void nx_arena_reset(nx_arena_t *a)
{
    if (!a)
        return;
    run_cleanups(a);
    struct chunk *keep = a->chunks;
    while (keep->next) {
        struct chunk *next = keep->next;
        nx_free(keep);
        keep = next;
    }
    /* keep is now the oldest (first) chunk */
    keep->used = 0;
    a->chunks = keep;
    a->used = 0;
}

void nx_arena_free(nx_arena_t *a)
{
    if (!a)
        return;
    run_cleanups(a);
    struct chunk *c = a->chunks;
    while (c) {
        struct chunk *next = c->next;
        nx_free(c);
        c = next;
    }
    nx_free(a);
}

void *nx_arena_alloc(nx_arena_t *a, size_t n)
{
    size_t need = ALIGN_UP(n ? n : 1);
    if (need < n)
        return NULL; /* overflow */
    struct chunk *c = a->chunks;
    if (c->size - c->used < need) {
        if (need > a->chunk_size / 2) {
            /* big: own chunk, linked behind the current one */
            struct chunk *big = chunk_new(need);
            if (!big)
                return NULL;
            big->used = need;
            big->next = c->next;
            c->next = big;
            a->used += need;
            return big->data;
        }
        struct chunk *fresh = chunk_new(a->chunk_size);
        if (!fresh)
            return NULL;
        fresh->next = c;
        a->chunks = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

void *nx_arena_calloc(nx_arena_t *a, size_t n)
{
    void *p = nx_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *nx_arena_strndup(nx_arena_t *a, const char *s, size_t n)
{
    char *d = nx_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *nx_arena_strdup(nx_arena_t *a, const char *s)
{
    return s ? nx_arena_strndup(a, s, strlen(s)) : NULL;
}

char *nx_arena_vsprintf(nx_arena_t *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *d = nx_arena_alloc(a, (size_t)n + 1);
    if (d)
        vsnprintf(d, (size_t)n + 1, fmt, ap);
    return d;
}

char *nx_arena_sprintf(nx_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *d = nx_arena_vsprintf(a, fmt, ap);
    va_end(ap);
    return d;
}

int nx_arena_defer(nx_arena_t *a, nx_cleanup_cb fn, void *ptr)
{
    struct cleanup *c = nx_arena_alloc(a, sizeof(*c));
    if (!c) {
        fn(ptr);
        return NX_ENOMEM;
    }
    c->fn = fn;
    c->ptr = ptr;
    c->next = a->cleanups;
    a->cleanups = c;
    return NX_OK;
}

void nx_arena_undefer(nx_arena_t *a, nx_cleanup_cb fn, void *ptr)
{
    for (struct cleanup **pp = &a->cleanups; *pp; pp = &(*pp)->next) {
        if ((*pp)->fn == fn && (*pp)->ptr == ptr) {
            *pp = (*pp)->next;
            return;
        }
    }
}

size_t nx_arena_used(const nx_arena_t *a) { return a->used; }
