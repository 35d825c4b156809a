/*
 * buf.c - bounded growable buffer.
 */
#include "core/nx.h"
#include "core/buf.h"
#include "core/arena.h"
#include "core/mem.h"

#include <stdio.h>
#include <string.h>

void nx_buf_init(nx_buf_t *b, nx_arena_t *arena, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->arena = arena;
}

void nx_buf_release(nx_buf_t *b)
{
    if (!b->arena)
        nx_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int grow(nx_buf_t *b, size_t need)
{
    if (need <= b->cap)
        return NX_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p;
    if (b->arena) {
        p = nx_arena_alloc(b->arena, cap);
        if (p && b->len)
            memcpy(p, b->data, b->len);
    } else {
        p = nx_realloc(b->data, cap);
    }
    if (!p)
        return NX_ENOMEM;
    b->data = p;
    b->cap = cap;
    return NX_OK;
}

int nx_buf_append(nx_buf_t *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return NX_ETOOBIG;
    int rc = grow(b, b->len + n + 1);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return NX_OK;
}

int nx_buf_puts(nx_buf_t *b, const char *s) { return nx_buf_append(b, s, strlen(s)); }

int nx_buf_printf(nx_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return NX_EINVAL;
    if ((size_t)n < sizeof(small))
        return nx_buf_append(b, small, (size_t)n);
    if ((size_t)n > b->max || b->len > b->max - (size_t)n)
        return NX_ETOOBIG;
    int rc = grow(b, b->len + (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return NX_OK;
}

int nx_buf_json_str(nx_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = nx_buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (!rc && *p) {
        const unsigned char *run = p;
        while (*p && *p != '"' && *p != '\\' && *p >= 0x20)
            p++;
        if (p > run)
            rc = nx_buf_append(b, run, (size_t)(p - run));
        if (rc || !*p)
            break;
        char esc[6] = {'\\', (char)*p, 0, 0, 0, 0};
        size_t n = 2;
        if (*p == '\n')
            esc[1] = 'n';
        else if (*p == '\t')
            esc[1] = 't';
        else if (*p == '\r')
            esc[1] = 'r';
        else if (*p < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            n = 6;
        }
        rc = nx_buf_append(b, esc, n);
        p++;
    }
    return rc ? rc : nx_buf_append(b, "\"", 1);
}
