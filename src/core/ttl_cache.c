/*
 * ttl_cache.c - one expiring value shared between threads (ttl_cache.h).
 *
 * The lock is held only to copy in or out; fetching a new value is the
 * caller's business and happens without it, so a slow provider never
 * blocks readers of a fresh value. Two threads that find the value expired
 * at once may both fetch; the later put wins, and both answers are good.
 */
#include "core/nx.h"
#include "core/ttl_cache.h"
#include "core/arena.h"
#include "core/mem.h"

#include <string.h>

int nx_ttl_cache_get(nx_ttl_cache_t *c, long long now, nx_arena_t *arena, char **out,
                     size_t *len)
{
    int rc = NX_ENOTFOUND;
    pthread_mutex_lock(&c->lock);
    if (c->value && c->expires > now) {
        *out = nx_arena_strndup(arena, c->value, c->len);
        if (len)
            *len = c->len;
        rc = *out ? NX_OK : NX_ENOMEM;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int nx_ttl_cache_put(nx_ttl_cache_t *c, long long now, const char *value, size_t len,
                     long max_age, bool no_store)
{
    long ttl = no_store ? 0 : max_age >= 0 ? max_age : c->default_ttl;
    if (ttl < c->min_ttl)
        ttl = c->min_ttl;
    if (ttl > c->max_ttl)
        ttl = c->max_ttl;
    char *copy = nx_malloc(len + 1);
    if (!copy)
        return NX_ENOMEM;
    memcpy(copy, value, len);
    copy[len] = '\0';
    pthread_mutex_lock(&c->lock);
    nx_free(c->value);
    c->value = copy;
    c->len = len;
    c->expires = now + ttl;
    pthread_mutex_unlock(&c->lock);
    return NX_OK;
}

bool nx_ttl_cache_may_force(nx_ttl_cache_t *c, long long now)
{
    pthread_mutex_lock(&c->lock);
    bool ok = c->last_forced == 0 || now - c->last_forced >= c->force_every;
    if (ok)
        c->last_forced = now;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

void nx_ttl_cache_clear(nx_ttl_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    nx_free(c->value);
    c->value = NULL;
    c->len = 0;
    c->expires = 0;
    c->last_forced = 0;
    pthread_mutex_unlock(&c->lock);
}
