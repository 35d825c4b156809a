/*
 * nx.h - included first by every source file.
 *
 * Feature macros, the forward typedefs of every nx_*_t, and NX_ERR_MAP: the
 * one table of error codes, with the HTTP status and the problem slug each
 * maps to. Kept small on purpose; module interfaces live in their own
 * headers.
 */
#ifndef NX_NX_H
#define NX_NX_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NX_VERSION "0.1.0"

typedef struct nx_arena nx_arena_t;
typedef struct nx_err nx_err_t;
typedef struct nx_buf nx_buf_t;
typedef struct nx_settings nx_settings_t;
typedef struct nx_db nx_db_t;
typedef struct nx_res nx_res_t;
typedef struct nx_tx nx_tx_t;
typedef struct nx_stmt nx_stmt_t;
typedef struct nx_req nx_req_t;

/*
 * XX(NAME, http status, problem slug, title). NX_OK is 0; NX_E<NAME> are
 * negative, in table order.
 */
#define NX_ERR_MAP(XX)                                                         \
    XX(INVAL, 400, "bad-request", "Bad request")                               \
    XX(UNAUTHORIZED, 401, "unauthorized", "Unauthorized")                      \
    XX(PAYMENT, 402, "insufficient-credits", "Insufficient credits")           \
    XX(FORBIDDEN, 403, "forbidden", "Forbidden")                               \
    XX(NOTFOUND, 404, "not-found", "Not found")                                \
    XX(METHOD, 405, "method-not-allowed", "Method not allowed")                \
    XX(CONFLICT, 409, "conflict", "Conflict")                                  \
    XX(KEYINUSE, 409, "idempotency-key-in-use", "Idempotency key in use")      \
    XX(TOOBIG, 413, "payload-too-large", "Payload too large")                  \
    XX(MEDIATYPE, 415, "unsupported-media-type", "Unsupported media type")     \
    XX(VALIDATION, 422, "validation-error", "Validation failed")               \
    XX(KEYREUSED, 422, "idempotency-key-reused", "Idempotency key reused")     \
    XX(RATELIMIT, 429, "rate-limited", "Too many requests")                    \
    XX(HEADERS, 431, "headers-too-large", "Request header fields too large")   \
    XX(INTERNAL, 500, "internal-error", "Internal server error")               \
    XX(UNAVAILABLE, 503, "service-unavailable", "Service unavailable")         \
    XX(NOMEM, 503, "out-of-memory", "Service temporarily unavailable")         \
    XX(RETRY, 503, "serialization-failure", "Service temporarily unavailable") \
    XX(NOTCONFIGURED, 503, "not-configured", "Not configured")

enum nx_err_code {
    NX_OK = 0,
    NX_ERR_BASE_ = 0,
#define NX_ERR_ENUM_(name, status, slug, title) NX_E##name##_POS_,
    NX_ERR_MAP(NX_ERR_ENUM_)
#undef NX_ERR_ENUM_
};

#define NX_ERR_NEG_(name, status, slug, title)                                 \
    enum { NX_E##name = -(int)NX_E##name##_POS_ };
NX_ERR_MAP(NX_ERR_NEG_)
#undef NX_ERR_NEG_

#define NX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NX_UNUSED(x) ((void)(x))

/* NX_ASSERT is for programmer bugs only, never for input or I/O failures. */
void nx_assert_fail(const char *expr, const char *file, int line);
#define NX_ASSERT(e) ((e) ? (void)0 : nx_assert_fail(#e, __FILE__, __LINE__))

#endif
