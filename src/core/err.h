/*
 * err.h - error codes and the chainable error sink.
 *
 * A function that can fail returns 0 or a negative NX_E* code and fills the
 * caller's nx_err_t. The first error wins: later nx_err_set calls on a set
 * sink change nothing, so calls chain. detail is safe for clients;
 * log_detail is for operators only (SQLSTATE, libpq text, paths).
 */
#ifndef NX_CORE_ERR_H
#define NX_CORE_ERR_H

#include "core/nx.h"

#define NX_ERR_MAX_FIELDS 8

typedef struct nx_field_err {
    char field[64];
    char message[160];
} nx_field_err_t;

struct nx_err {
    int code;              /* 0 while unset */
    char detail[256];      /* client-safe sentence */
    char log_detail[512];  /* operators only */
    char allow[64];        /* 405: the Allow header value */
    int retry_after;       /* 429/503: seconds, 0 for none */
    int retry_after_ms;    /* ... to the millisecond, when known (0: unknown) */
    int nfields;
    nx_field_err_t fields[NX_ERR_MAX_FIELDS];
};

/* Clears a sink for reuse. */
void nx_err_clear(nx_err_t *err);
/* Sets code and client detail (printf-style, may be NULL) unless already set.
 * Returns the sink's code, so `return nx_err_set(...)` works. */
int nx_err_set(nx_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds operator-only detail (kept if the sink already has some). */
void nx_err_log(nx_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Adds a field error for a 422; sets the code to NX_EVALIDATION if unset. */
void nx_err_field(nx_err_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Table lookups; unknown codes behave as NX_EINTERNAL. */
int nx_err_status(int code);
const char *nx_err_slug(int code);
const char *nx_err_title(int code);
const char *nx_err_name(int code); /* "NX_ENOTFOUND" */

#endif
