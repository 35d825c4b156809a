/*
 * log.h - structured logging: one JSON line per event on stderr.
 *
 *   nx_log(NX_LOG_INFO, "request", NX_LS("request_id", id), NX_LI("status", 200));
 *
 * The macro skips all work below the configured level. LOG_FORMAT=text gives
 * a human-readable line with the same fields.
 */
#ifndef NX_CORE_LOG_H
#define NX_CORE_LOG_H

#include "core/nx.h"

enum nx_log_level { NX_LOG_DEBUG = 0, NX_LOG_INFO, NX_LOG_WARN, NX_LOG_ERROR };
enum nx_log_type { NX_LOG_END = 0, NX_LOG_STR, NX_LOG_INT, NX_LOG_DBL };

typedef struct nx_log_field {
    const char *key;
    int type;
    const char *s;
    long long i;
    double d;
} nx_log_field_t;

#define NX_LS(k, v) ((nx_log_field_t){(k), NX_LOG_STR, (v), 0, 0})
#define NX_LI(k, v) ((nx_log_field_t){(k), NX_LOG_INT, NULL, (long long)(v), 0})
#define NX_LD(k, v) ((nx_log_field_t){(k), NX_LOG_DBL, NULL, 0, (double)(v)})

extern int nx_log_level;

#define nx_log(lvl, msg, ...)                                                  \
    do {                                                                       \
        if ((lvl) >= nx_log_level)                                             \
            nx_log_write((lvl), (msg),                                         \
                         (const nx_log_field_t[]){__VA_ARGS__, {0}});          \
    } while (0)
#define nx_log0(lvl, msg)                                                      \
    do {                                                                       \
        if ((lvl) >= nx_log_level)                                             \
            nx_log_write((lvl), (msg), (const nx_log_field_t[]){{0}});         \
    } while (0)

/* Sets level and format ("json" or "text"). Not thread-safe: call at start. */
void nx_log_configure(int level, bool text);
/* Writes one line; fields end with a {0} entry. Strings with NULL value are
 * written as null. One write(2) per line, so lines never interleave. */
void nx_log_write(int level, const char *msg, const nx_log_field_t *fields);

#endif
