/*
 * jwks.c - Google's signing keys and the ID-token check.
 *
 * The JWKS's usable keys are cached process-wide (core/ttl_cache: a heap
 * copy of their JSON) for the Cache-Control max-age of its answer, at least
 * a minute even for max-age=0 or no-store. Each verification imports its own
 * cjose key from that JSON, so no cjose object is shared between threads. A
 * token whose kid is not cached triggers a refetch at most once a minute (a
 * stream of made-up kids cannot make us hammer the provider).
 *
 * Checks (api.md, OpenID Connect Core 3.1.3.7): RS256 only, the signature,
 * iss == the discovery document's issuer (Google's two spellings for
 * Google), aud == GOOGLE_CLIENT_ID (and azp, when present or when aud
 * names several clients), exp with NX_ID_SKEW seconds of skew,
 * nonce in the redirect flow; then email_verified, from userinfo when the
 * ID token does not carry it. Failures are NX_EUNAUTHORIZED.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/ttl_cache.h"

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <string.h>
#include <time.h>

#define NX_ID_SKEW 60
#define NX_ID_MAX_LEN 16384
#define MAX_KEYS 32

/* The usable keys as a JSON array; refetched at most once a minute, for an
 * unknown kid or an answer with max-age 0 or no-store alike. */
static nx_ttl_cache_t keys_cache = NX_TTL_CACHE_INIT(3600, 60, 86400, 60);

void nx_jwks_cache_reset(void) { nx_ttl_cache_clear(&keys_cache); }

static int bad(nx_err_t *err, const char *why)
{
    return nx_err_set(err, NX_EUNAUTHORIZED, "The Google ID token is invalid: %s.", why);
}

/* The RSA signing keys of a JWKS (at most MAX_KEYS), as a new array. */
static json_t *usable_keys(json_t *keys)
{
    json_t *out = json_array();
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        if (!out || !kid || !kty || strcmp(kty, "RSA") != 0 || (use && strcmp(use, "sig") != 0) ||
            (alg && strcmp(alg, "RS256") != 0) || json_array_size(out) >= MAX_KEYS)
            continue;
        json_array_append(out, k);
    }
    return out;
}

/* Fetches the JWKS, caches its usable keys and returns them (arena text). */
static int refresh(nx_arena_t *arena, char **text, nx_err_t *err)
{
    nx_oidc_provider_t p;
    int rc = nx_oidc_provider(arena, &p, err);
    if (rc != NX_OK)
        return rc;
    nx_httpc_req_t q = {.url = p.jwks_uri};
    nx_httpc_resp_t r;
    if ((rc = nx_oidc_call(arena, &q, &r, err)) != NX_OK)
        return rc;
    json_t *doc = r.status == 200 ? nx_oidc_json(arena, &r) : NULL;
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        nx_err_log(err, "jwks: status %ld, no keys", r.status);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider's keys are not available.");
    }
    json_t *usable = usable_keys(keys);
    char *s = usable ? json_dumps(usable, JSON_COMPACT) : NULL;
    json_decref(usable);
    *text = s ? nx_arena_strdup(arena, s) : NULL;
    rc = *text ? nx_ttl_cache_put(&keys_cache, (long long)time(NULL), s, strlen(s), r.max_age,
                                  r.no_store)
               : NX_ENOMEM;
    nx_free(s);
    return rc == NX_OK ? NX_OK : nx_err_set(err, rc, NULL);
}

/* The JSON of the key with this kid in keys (arena); NX_ENOTFOUND. */
static int find_key(nx_arena_t *arena, const char *keys, const char *kid, char **json)
{
    json_t *arr = json_loads(keys, 0, NULL);
    size_t i;
    json_t *k;
    int rc = arr ? NX_ENOTFOUND : NX_ENOMEM;
    json_array_foreach(arr, i, k) {
        if (strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0) {
            char *s = json_dumps(k, JSON_COMPACT);
            *json = s ? nx_arena_strdup(arena, s) : NULL;
            nx_free(s);
            rc = *json ? NX_OK : NX_ENOMEM;
            break;
        }
    }
    json_decref(arr);
    return rc;
}

/* The key for kid: from the cache, else refetched (an unknown kid at most
 * once a minute, so made-up kids cannot make us hammer the provider). */
static int key_json(nx_arena_t *arena, const char *kid, char **json, nx_err_t *err)
{
    long long now = (long long)time(NULL);
    char *keys = NULL;
    bool fetched = false;
    int rc = nx_ttl_cache_get(&keys_cache, now, arena, &keys, NULL);
    if (rc == NX_ENOTFOUND) {
        if ((rc = refresh(arena, &keys, err)) != NX_OK)
            return rc;
        fetched = true;
    }
    if (rc == NX_OK)
        rc = find_key(arena, keys, kid, json);
    if (rc == NX_ENOTFOUND && !fetched && nx_ttl_cache_may_force(&keys_cache, now)) {
        if ((rc = refresh(arena, &keys, err)) != NX_OK)
            return rc;
        rc = find_key(arena, keys, kid, json);
    }
    if (rc == NX_ENOTFOUND)
        return bad(err, "signed with an unknown key");
    return rc == NX_OK ? NX_OK : nx_err_set(err, rc, NULL);
}

static const char *str(json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

/* The token was issued to us: aud names our client id and, when it names
 * other clients too, azp says ours was the one it was issued to; an azp of
 * another client is refused either way (OpenID Connect Core 3.1.3.7 items
 * 3-5, RFC 8725 3.9). */
static bool aud_ok(json_t *c, const char *client_id)
{
    json_t *aud = json_object_get(c, "aud"), *azp = json_object_get(c, "azp");
    bool ours = false;
    size_t i, n = 1;
    json_t *v;
    if (json_is_string(aud)) {
        ours = strcmp(json_string_value(aud), client_id) == 0;
    } else if (json_is_array(aud)) {
        n = json_array_size(aud);
        json_array_foreach(aud, i, v) ours = ours || (json_is_string(v) &&
                                                      strcmp(json_string_value(v), client_id) == 0);
    }
    if (azp)
        return ours && json_is_string(azp) && strcmp(json_string_value(azp), client_id) == 0;
    return ours && n == 1;
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

static int check_claims(nx_arena_t *arena, json_t *c, const char *issuer, const char *nonce,
                        nx_google_id_t *out, nx_err_t *err)
{
    long long now = (long long)time(NULL), exp, iat;
    if (!nx_oidc_iss_ok(issuer, str(c, "iss")))
        return bad(err, "wrong issuer");
    if (!aud_ok(c, nx_cfg->google_client_id))
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
    const char *sub = str(c, "sub");
    if (!sub || !*sub || strlen(sub) > 255)
        return bad(err, "missing sub");
    out->sub = nx_arena_strdup(arena, sub);
    return out->sub ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}

/*
 * The profile claims. email and email_verified come together from the ID
 * token or, when it lacks either and there is an access token, from userinfo
 * (Core 5.4 lets a provider give them only there); the rest from the ID
 * token, else from that userinfo.
 */
static int identity(nx_arena_t *arena, json_t *c, const char *access_token,
                    nx_google_id_t *out, nx_err_t *err)
{
    json_t *src = c;
    bool in_token = str(c, "email") && json_object_get(c, "email_verified");
    if (!in_token && access_token) {
        int rc = nx_oidc_userinfo(arena, access_token, out->sub, &src, err);
        if (rc == NX_ENOTFOUND)
            src = c;
        else if (rc != NX_OK)
            return rc;
    }
    const char *missing = !str(src, "email") ? "email"
                          : !json_object_get(src, "email_verified") ? "email_verified" : NULL;
    if (missing && src == c)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The Google ID token has no \"%s\" claim%s.",
                          missing, access_token ? " and the provider offers no userinfo" : "");
    if (missing)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The sign-in provider gave no \"%s\" claim, "
                          "in the ID token or from userinfo.", missing);
    json_t *ev = json_object_get(src, "email_verified");
    bool verified = json_is_true(ev) || (json_is_string(ev) && strcmp(json_string_value(ev), "true") == 0);
    if (!verified)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The Google account's email address is not verified.");
    const char *email = str(src, "email");
    if (!strchr(email, '@') || strlen(email) > 255)
        return bad(err, "the email claim is not an email address");
    out->email = nx_arena_strdup(arena, email);
    out->name = dup_opt(arena, str(c, "name") ? str(c, "name") : str(src, "name"), 255);
    out->picture = dup_opt(arena, str(c, "picture") ? str(c, "picture") : str(src, "picture"), 500);
    out->hd = dup_opt(arena, str(c, "hd") ? str(c, "hd") : str(src, "hd"), 255);
    return out->email ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
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
                            const char *access_token, nx_google_id_t *out, nx_err_t *err)
{
    memset(out, 0, sizeof(*out));
    size_t len = token ? strlen(token) : 0;
    if (len == 0 || len > NX_ID_MAX_LEN)
        return bad(err, "missing or too long");
    char *kid = NULL, *jwk_json = NULL;
    nx_oidc_provider_t p;
    int rc = header_kid(arena, token, len, &kid, err);
    if (rc == NX_OK)
        rc = key_json(arena, kid, &jwk_json, err);
    if (rc == NX_OK)
        rc = nx_oidc_provider(arena, &p, err);
    if (rc != NX_OK)
        return rc;
    const char *issuer = p.issuer;

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
            rc = check_claims(arena, claims, issuer, nonce, out, err);
        if (rc == NX_OK)
            rc = identity(arena, claims, access_token, out, err);
    }
    json_decref(claims);
    cjose_jws_release(jws);
    cjose_jwk_release(jwk);
    return rc;
}
