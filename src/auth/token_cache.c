/*
 * token_cache.c - access tokens this thread has already verified.
 *
 * Verifying an access token (base64, JSON and an HMAC through cjose) was
 * 41% of the server's instructions on a list request, and a client sends
 * the same token with every request until it expires. So each thread keeps
 * the last tokens it verified with the claims they carried. A hit compares
 * the whole token byte for byte (the slot's hash only picks the slot: a
 * crafted collision costs a verification, never an acceptance). Of all a
 * token's checks only expiry can change its answer later (iat and nbf only
 * become truer), so every hit checks the time it passes until.
 *
 * The slots (38 KB) are allocated by a thread's first put: a _Thread_local
 * array would be zeroed in, and stay resident for, every thread the process
 * starts, offload and worker threads included.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "core/mem.h"

#include <pthread.h>
#include <string.h>

#define SLOTS 32         /* per thread; a thread serves many clients in turn */
#define TOKEN_MAX 1024   /* ours are ~360 bytes; longer ones are not kept */

struct slot {
    size_t len; /* 0: empty */
    long long until;
    nx_claims_t claims;
    char token[TOKEN_MAX];
};

static _Thread_local struct slot *slots; /* NULL until this thread's first put */
static pthread_key_t slots_key;              /* frees them as the thread ends */
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;
static bool have_key;

static void make_key(void)
{
    have_key = pthread_key_create(&slots_key, nx_free) == 0;
}

/* FNV-1a over the signature's last bytes: the part that differs most. */
static struct slot *slot_of(const char *tok, size_t len)
{
    size_t from = len > 16 ? len - 16 : 0;
    unsigned h = 2166136261u;
    for (size_t i = from; i < len; i++)
        h = (h ^ (unsigned char)tok[i]) * 16777619u;
    return &slots[h % SLOTS];
}

bool nx_token_cache_get(const char *tok, size_t len, long long now, nx_claims_t *out)
{
    if (!slots || len == 0 || len > TOKEN_MAX)
        return false;
    const struct slot *s = slot_of(tok, len);
    if (s->len != len || now >= s->until || memcmp(s->token, tok, len) != 0)
        return false;
    *out = s->claims;
    return true;
}

void nx_token_cache_put(const char *tok, size_t len, long long until, const nx_claims_t *c)
{
    if (len == 0 || len > TOKEN_MAX)
        return;
    if (!slots) {
        pthread_once(&slots_once, make_key);
        if (!have_key || !(slots = nx_calloc(SLOTS, sizeof(*slots))))
            return; /* no cache: the next request verifies again */
        if (pthread_setspecific(slots_key, slots) != 0) {
            nx_free(slots);
            slots = NULL;
            return;
        }
    }
    struct slot *s = slot_of(tok, len);
    memcpy(s->token, tok, len);
    s->len = len;
    s->until = until;
    s->claims = *c;
}
