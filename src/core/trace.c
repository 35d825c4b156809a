/*
 * trace.c - W3C Trace Context level 1: parsing, new spans, the outbound
 * header, and the calling thread's current trace.
 *
 * Parsing follows the specification's processing model (section 4.3): a
 * version this code does not know is read as version 00 when its first 55
 * characters fit (a newer version may only append fields, after a '-');
 * version ff, upper-case hex and all-zero ids are invalid. An invalid value
 * is never echoed: a new trace starts instead. Ids come from the kernel's
 * CSPRNG (one getrandom per span).
 */
#include "core/nx.h"
#include "core/trace.h"
#include "core/util.h"

#include <string.h>

static _Thread_local const nx_trace_t *current;

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

static unsigned hex_byte(const char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 2; i++)
        v = v * 16 + (unsigned)(s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
    return v;
}

int nx_trace_parse(const char *v, nx_trace_t *t)
{
    memset(t, 0, sizeof(*t));
    size_t n = v ? strnlen(v, NX_TRACEPARENT_LEN + 1) : 0;
    if (n < NX_TRACEPARENT_LEN || !lower_hex(v, 2) || strncmp(v, "ff", 2) == 0)
        return NX_EINVAL;
    bool v00 = strncmp(v, "00", 2) == 0;
    if (n > NX_TRACEPARENT_LEN && (v00 || v[NX_TRACEPARENT_LEN] != '-'))
        return NX_EINVAL;
    const char *id = v + 3, *parent = v + 36, *flags = v + 53;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-' || !lower_hex(id, NX_TRACE_ID_LEN) ||
        !lower_hex(parent, NX_SPAN_ID_LEN) || !lower_hex(flags, 2) ||
        all_zero(id, NX_TRACE_ID_LEN) || all_zero(parent, NX_SPAN_ID_LEN))
        return NX_EINVAL;
    memcpy(t->trace_id, id, NX_TRACE_ID_LEN);
    memcpy(t->parent_id, parent, NX_SPAN_ID_LEN);
    t->flags = hex_byte(flags);
    return NX_OK;
}

void nx_trace_start(nx_trace_t *t)
{
    unsigned char b[16 + 8];
    bool fresh = !t->trace_id[0];
    do {
        if (nx_random_bytes(b, sizeof(b)) != NX_OK)
            NX_ASSERT(!"getrandom failed"); /* cannot fail on Linux >= 3.17 once seeded */
        if (fresh) {
            nx_hex(b, 16, t->trace_id);
            t->parent_id[0] = '\0';
            t->flags = 0;
        }
        nx_hex(b + 16, 8, t->span_id);
    } while (all_zero(t->trace_id, NX_TRACE_ID_LEN) || all_zero(t->span_id, NX_SPAN_ID_LEN));
}

void nx_trace_format(const nx_trace_t *t, char out[NX_TRACEPARENT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "00-", 3);
    memcpy(out + 3, t->trace_id, NX_TRACE_ID_LEN);
    out[35] = '-';
    memcpy(out + 36, t->span_id, NX_SPAN_ID_LEN);
    out[52] = '-';
    out[53] = hex[(t->flags >> 4) & 0xf];
    out[54] = hex[t->flags & 0xf];
    out[55] = '\0';
}

const nx_trace_t *nx_trace_current(void)
{
    return current && current->trace_id[0] ? current : NULL;
}

const nx_trace_t *nx_trace_enter(const nx_trace_t *t)
{
    const nx_trace_t *prev = current;
    current = t;
    return prev;
}
