/*
 * ttl_cache.h - one cached value with an expiry, shared between threads.
 *
 * Holds a heap copy of one byte string (a provider document, say) until it
 * expires, never an arena pointer. Readers get arena copies. Callers pass
 * the current Unix time, so expiry is testable without sleeping.
 */
#ifndef NX_CORE_TTL_CACHE_H
#define NX_CORE_TTL_CACHE_H

#include "core/nx.h"

#include <pthread.h>

typedef struct nx_ttl_cache {
    pthread_mutex_t lock;
    long default_ttl; /* seconds kept when the answer names no max-age */
    long min_ttl;     /* floor of every lifetime, no-store included */
    long max_ttl;     /* ceiling of every lifetime */
    long force_every; /* nx_ttl_cache_may_force grants one refetch per this */
    char *value;      /* heap, NUL-terminated; NULL when empty */
    size_t len;
    long long expires;
    long long last_forced;
} nx_ttl_cache_t;

#define NX_TTL_CACHE_INIT(dflt, min, max, force)                                \
    {                                                                          \
        .lock = PTHREAD_MUTEX_INITIALIZER, .default_ttl = (dflt),              \
        .min_ttl = (min), .max_ttl = (max), .force_every = (force)             \
    }

/* An arena copy of the value while it is fresh at now: NX_OK, NX_ENOTFOUND
 * (empty or expired) or NX_ENOMEM. */
int nx_ttl_cache_get(nx_ttl_cache_t *c, long long now, nx_arena_t *arena, char **out,
                     size_t *len);

/*
 * Replaces the value with a heap copy of value[0..len), fresh for max_age
 * seconds (-1: default_ttl; no_store: 0), held within [min_ttl, max_ttl]:
 * even a no-store answer is kept min_ttl seconds, so a provider is asked at
 * most once per min_ttl. NX_OK or NX_ENOMEM (the old value is kept).
 */
int nx_ttl_cache_put(nx_ttl_cache_t *c, long long now, const char *value, size_t len,
                     long max_age, bool no_store);

/* True, at most once per force_every seconds, when a caller may refetch a
 * fresh value early (a key id it does not hold, say). */
bool nx_ttl_cache_may_force(nx_ttl_cache_t *c, long long now);

/* Drops the value and the refetch guard (tests, reconfiguration). */
void nx_ttl_cache_clear(nx_ttl_cache_t *c);

#endif
