/*
 * buf.h - growable byte buffer with a hard ceiling (curl's dynbuf).
 *
 * Memory comes from an arena when one is given (released with it), else from
 * the heap (release with nx_buf_release). Data is always NUL-terminated.
 */
#ifndef NX_CORE_BUF_H
#define NX_CORE_BUF_H

#include "core/nx.h"

#include <stdarg.h>

struct nx_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;        /* appends that would pass this fail with NX_ETOOBIG */
    nx_arena_t *arena; /* NULL: heap */
};

void nx_buf_init(nx_buf_t *b, nx_arena_t *arena, size_t max);
void nx_buf_release(nx_buf_t *b); /* heap buffers only; no-op for arenas */
/* NX_OK, NX_ETOOBIG (nothing appended) or NX_ENOMEM. */
int nx_buf_append(nx_buf_t *b, const void *p, size_t n);
int nx_buf_puts(nx_buf_t *b, const char *s);
int nx_buf_printf(nx_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
int nx_buf_json_str(nx_buf_t *b, const char *s);

#endif
