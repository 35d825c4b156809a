/*
 * trace.h - W3C Trace Context (traceparent): the trace a request, a job
 * attempt or an outbound call belongs to.
 *
 *   traceparent: 00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>
 *
 * A valid incoming traceparent is kept (its trace id, the caller's span as
 * our parent, its flags); anything else starts a new trace. Each unit of
 * work here - a request, a job attempt - is a span with an id of its own,
 * which outbound calls name as their parent. The current thread's trace is
 * what log lines and outbound calls carry (nx_trace_enter).
 */
#ifndef NX_CORE_TRACE_H
#define NX_CORE_TRACE_H

#include "core/nx.h"

#define NX_TRACE_ID_LEN 32
#define NX_SPAN_ID_LEN 16
#define NX_TRACEPARENT_LEN 55

typedef struct nx_trace {
    char trace_id[NX_TRACE_ID_LEN + 1]; /* lower-case hex, never all zeros; "" when none */
    char span_id[NX_SPAN_ID_LEN + 1];   /* this span's id */
    char parent_id[NX_SPAN_ID_LEN + 1]; /* the caller's span; "" when the trace began here */
    unsigned flags;                     /* trace-flags; bit 0: sampled upstream */
} nx_trace_t;

/*
 * Reads a traceparent value into t (trace_id, parent_id, flags; span_id
 * cleared). Version 00 must be exactly 55 characters; a later version may
 * carry more after a '-', which is ignored; version ff, upper-case hex,
 * all-zero ids and any other deviation are NX_EINVAL (t is then zeroed).
 */
int nx_trace_parse(const char *value, nx_trace_t *t);
/* Makes t a new span: keeps its trace id (or starts a trace when it has
 * none, flags 00) and gives it a fresh random span id. */
void nx_trace_start(nx_trace_t *t);
/* The traceparent an outbound call carries: t's trace id, t's span as the
 * parent, t's flags. out holds NX_TRACEPARENT_LEN + 1 bytes. */
void nx_trace_format(const nx_trace_t *t, char out[NX_TRACEPARENT_LEN + 1]);

/* The calling thread's current trace, or NULL. Borrowed. */
const nx_trace_t *nx_trace_current(void);
/* Makes t (borrowed, may be NULL) the thread's current trace and returns
 * the previous one, to be given back to nx_trace_enter when the work ends. */
const nx_trace_t *nx_trace_enter(const nx_trace_t *t);

#endif
