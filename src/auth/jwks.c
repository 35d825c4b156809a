/*
 * jwks.c - Google's signing keys and the ID-token check.
 *
 * The JWKS is cached process-wide as heap copies of each key's JSON, keyed
 * by kid, for the Cache-Control max-age of its answer. Each verification
 * imports its own cjose key from that JSON, so no cjose object is shared
 * between threads. A token whose kid is not cached triggers a refetch at
 * most once a minute (a stream of made-up kids cannot make us hammer the
 * provider); an expired cache is always refetched.
 *
 * Checks (api.md, OpenID Connect Core 3.1.3.7): RS256 only, the signature,
 * iss, aud == GOOGLE_CLIENT_ID, exp with NX_ID_SKEW seconds of skew, nonce
 * in the redirect flow, email_verified. Failures are NX_EUNAUTHORIZED.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/mem.h"

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define NX_ID_SKEW 60
#define NX_ID_MAX_LEN 16384
#define MAX_KEYS 32
#define UNKNOWN_KID_INTERVAL 60
#define DEFAULT_TTL 3600

struct key {
    char *kid;  /* heap */
    char *json; /* heap */
};

static struct {
    pthread_mutex_t lock;
    struct key keys[MAX_KEYS];
    int n;
    long long expires;
    long long last_unknown; /* last refetch caused by an unknown kid */
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void clear_locked(void)
{
    for (int i = 0; i < cache.n; i++) {
        nx_free(cache.keys[i].kid);
        nx_free(cache.keys[i].json);
    }
    cache.n = 0;
    cache.expires = 0;
}

void nx_jwks_cache_reset(void)
{
    pthread_mutex_lock(&cache.lock);
    clear_locked();
    cache.last_unknown = 0;
    pthread_mutex_unlock(&cache.lock);
}

static int bad(nx_err_t *err, const char *why)
{
    return nx_err_set(err, NX_EUNAUTHORIZED, "The Google ID token is invalid: %s.", why);
}

/* Fetches the JWKS and replaces the cache. */
static int refresh(nx_arena_t *arena, nx_err_t *err)
{
    char *uri = NULL;
    int rc = nx_oidc_jwks_uri(arena, &uri, err);
    if (rc != NX_OK)
        return rc;
    nx_fetch_t f;
    if ((rc = nx_auth_fetch(arena, uri, NULL, &f, err)) != NX_OK)
        return rc;
    json_t *doc = f.status == 200 ? json_loadb(f.body, f.len, 0, NULL) : NULL;
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        nx_err_log(err, "jwks: status %ld, no keys", f.status);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider's keys are not available.");
    }
    long long ttl = f.no_store ? 0 : f.max_age >= 0 ? f.max_age : DEFAULT_TTL;
    pthread_mutex_lock(&cache.lock);
    clear_locked();
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        if (!kid || !kty || strcmp(kty, "RSA") != 0 || (use && strcmp(use, "sig") != 0) ||
            (alg && strcmp(alg, "RS256") != 0) || cache.n >= MAX_KEYS)
            continue;
        char *json = json_dumps(k, JSON_COMPACT);
        char *kidc = nx_strdup(kid);
        if (!json || !kidc) {
            nx_free(json);
            nx_free(kidc);
            continue;
        }
        cache.keys[cache.n].kid = kidc;
        cache.keys[cache.n].json = json;
        cache.n++;
    }
    cache.expires = (long long)time(NULL) + ttl;
    pthread_mutex_unlock(&cache.lock);
    json_decref(doc);
    return NX_OK;
}

enum lookup { FOUND, MISSING_REFETCH, MISSING_STALE, MISSING_FINAL };

static enum lookup lookup(const char *kid, bool after_fetch, nx_arena_t *arena, char **json)
{
    long long now = (long long)time(NULL);
    enum lookup r = MISSING_FINAL;
    pthread_mutex_lock(&cache.lock);
    bool fresh = cache.n > 0 && (cache.expires > now || after_fetch);
    for (int i = 0; fresh && i < cache.n; i++) {
        if (strcmp(cache.keys[i].kid, kid) == 0) {
            *json = nx_arena_strdup(arena, cache.keys[i].json);
            r = FOUND;
            break;
        }
    }
    if (r != FOUND && !after_fetch) {
        if (!fresh) {
            r = MISSING_STALE;
        } else if (now - cache.last_unknown >= UNKNOWN_KID_INTERVAL) {
            cache.last_unknown = now;
            r = MISSING_REFETCH;
        }
    }
    pthread_mutex_unlock(&cache.lock);
    return r;
}

static int key_json(nx_arena_t *arena, const char *kid, char **json, nx_err_t *err)
{
    enum lookup r = lookup(kid, false, arena, json);
    if (r == MISSING_STALE || r == MISSING_REFETCH) {
        int rc = refresh(arena, err);
        if (rc != NX_OK)
            return rc;
        r = lookup(kid, true, arena, json);
    }
    if (r != FOUND)
        return bad(err, "signed with an unknown key");
    return *json ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}

static const char *str(json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

static bool aud_ok(json_t *aud, const char *client_id)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), client_id) == 0;
    if (!json_is_array(aud))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), client_id) == 0) return true;
    return false;
}

static bool num(json_t *o, const char *name, long long *out)
{
    json_t *v = json_object_get(o, name);
    if (json_is_integer(v))
        *out = (long long)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) > -9e18 && json_real_value(v) < 9e18)
        *out = (long long)json_real_value(v);
    else
        return false;
    return true;
}

static char *dup_opt(nx_arena_t *arena, const char *s, size_t max)
{
    return s && *s && strlen(s) <= max ? nx_arena_strdup(arena, s) : NULL;
}

static int check_claims(nx_arena_t *arena, json_t *c, const char *nonce, nx_google_id_t *out,
                        nx_err_t *err)
{
    long long now = (long long)time(NULL), exp, iat;
    const char *iss = str(c, "iss");
    if (!iss || (strcmp(iss, "accounts.google.com") != 0 &&
                 strcmp(iss, "https://accounts.google.com") != 0))
        return bad(err, "wrong issuer");
    if (!aud_ok(json_object_get(c, "aud"), nx_cfg->google_client_id))
        return bad(err, "issued for another client");
    if (!num(c, "exp", &exp))
        return bad(err, "no expiry");
    if (exp + NX_ID_SKEW <= now)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The Google ID token has expired.");
    if (num(c, "iat", &iat) && iat > now + NX_ID_SKEW)
        return bad(err, "issued in the future");
    if (nonce) {
        const char *n = str(c, "nonce");
        if (!n || strlen(n) != strlen(nonce) || CRYPTO_memcmp(n, nonce, strlen(nonce)) != 0)
            return bad(err, "the nonce does not match this sign-in");
    }
    json_t *ev = json_object_get(c, "email_verified");
    bool verified = json_is_true(ev) || (json_is_string(ev) && strcmp(json_string_value(ev), "true") == 0);
    if (!verified)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The Google account's email address is not verified.");
    const char *sub = str(c, "sub"), *email = str(c, "email");
    if (!sub || !*sub || strlen(sub) > 255 || !email || !strchr(email, '@') || strlen(email) > 255)
        return bad(err, "missing sub or email");
    out->sub = nx_arena_strdup(arena, sub);
    out->email = nx_arena_strdup(arena, email);
    out->name = dup_opt(arena, str(c, "name"), 255);
    out->picture = dup_opt(arena, str(c, "picture"), 500);
    out->hd = dup_opt(arena, str(c, "hd"), 255);
    if (!out->sub || !out->email)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

/* Reads the header: RS256 and a kid, before any key is looked up. */
static int header_kid(nx_arena_t *arena, const char *token, size_t len, char **kid, nx_err_t *err)
{
    const char *dot = memchr(token, '.', len);
    if (!dot)
        return bad(err, "malformed");
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    cjose_err cerr;
    if (!cjose_base64url_decode(token, (size_t)(dot - token), &raw, &rawlen, &cerr))
        return bad(err, "malformed");
    json_t *h = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
    cjose_get_dealloc()(raw);
    const char *alg = str(h, "alg"), *k = str(h, "kid");
    int rc = NX_OK;
    if (!alg || strcmp(alg, "RS256") != 0)
        rc = bad(err, "unexpected signing algorithm");
    else if (!k || !*k || strlen(k) > 256)
        rc = bad(err, "no key id");
    else if (!(*kid = nx_arena_strdup(arena, k)))
        rc = nx_err_set(err, NX_ENOMEM, NULL);
    json_decref(h);
    return rc;
}

int nx_jwks_verify_id_token(nx_arena_t *arena, const char *token, const char *nonce,
                            nx_google_id_t *out, nx_err_t *err)
{
    memset(out, 0, sizeof(*out));
    size_t len = token ? strlen(token) : 0;
    if (len == 0 || len > NX_ID_MAX_LEN)
        return bad(err, "missing or too long");
    char *kid = NULL, *jwk_json = NULL;
    int rc = header_kid(arena, token, len, &kid, err);
    if (rc == NX_OK)
        rc = key_json(arena, kid, &jwk_json, err);
    if (rc != NX_OK)
        return rc;

    cjose_err cerr;
    cjose_jwk_t *jwk = cjose_jwk_import(jwk_json, strlen(jwk_json), &cerr);
    cjose_jws_t *jws = jwk ? cjose_jws_import(token, len, &cerr) : NULL;
    uint8_t *pt = NULL;
    size_t ptlen = 0;
    json_t *claims = NULL;
    if (!jwk) {
        rc = bad(err, "signed with an unusable key");
    } else if (!jws) {
        rc = bad(err, "malformed");
    } else {
        const char *calg = cjose_header_get(cjose_jws_get_protected(jws), CJOSE_HDR_ALG, &cerr);
        if (!calg || strcmp(calg, CJOSE_HDR_ALG_RS256) != 0 ||
            cjose_jwk_get_kty(jwk, &cerr) != CJOSE_JWK_KTY_RSA)
            rc = bad(err, "unexpected signing algorithm");
        else if (!cjose_jws_verify(jws, jwk, &cerr))
            rc = bad(err, "bad signature");
        else if (!cjose_jws_get_plaintext(jws, &pt, &ptlen, &cerr) ||
                 !(claims = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, NULL)) ||
                 !json_is_object(claims))
            rc = bad(err, "malformed claims");
        else
            rc = check_claims(arena, claims, nonce, out, err);
    }
    json_decref(claims);
    cjose_jws_release(jws);
    cjose_jwk_release(jwk);
    return rc;
}
