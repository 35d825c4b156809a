/*
 * auth.h - access tokens, Google sign-in and the request authenticator.
 *
 * auth/ is the only user of JOSE (cjose) and of OpenSSL's HMAC/SHA; its
 * calls to the sign-in provider go through httpc (google_oidc.c). Results
 * handed to callers live on the caller's arena unless a comment says
 * otherwise. Every verification failure is NX_EUNAUTHORIZED with a
 * client-safe detail: garbage input never becomes a 500.
 */
#ifndef NX_AUTH_AUTH_H
#define NX_AUTH_AUTH_H

#include "core/nx.h"

#define NX_JWT_MAX_LEN 8192     /* longer bearer tokens are refused unread */
#define NX_JWT_LEEWAY 30        /* seconds of clock skew for exp/nbf/iat */
#define NX_JWT_ISSUER "nexusapi"
#define NX_SESSION_COOKIE "nexus_session"
#define NX_SESSION_COOKIE_HOST "__Host-nexus_session" /* when PUBLIC_URL is https */
#define NX_LOGIN_COOKIE "nexus_login"
#define NX_LOGIN_TTL 600        /* seconds a sign-in attempt stays valid */

/* ---- access tokens (jwt.c) ---------------------------------------------- */

typedef struct nx_claims {
    char sub[37];    /* user id */
    char org_id[37];
    char role[8];    /* "admin" | "member" */
    char jti[64];
    long long iat, exp;
} nx_claims_t;

/* Algorithm name for an enum nx_jwt_alg value ("HS256"...), NULL if unknown. */
const char *nx_jwt_alg_name(int alg);

/*
 * Mints an access token (header alg + typ "at+jwt"; claims sub, org_id,
 * role, iat, exp = iat + ttl_seconds, iss, jti). *out is an arena string.
 * NX_EINVAL (bad arguments), NX_ENOMEM, NX_EINTERNAL.
 */
int nx_jwt_mint(nx_arena_t *arena, const char *secret, int alg, const char *user_id,
                const char *org_id, const char *role, long long ttl_seconds, char **out,
                nx_err_t *err);

/*
 * Verifies an access token against secret with the pinned algorithm alg
 * (the token's header never chooses): signature, typ, iss, exp/nbf/iat with
 * NX_JWT_LEEWAY, the required claims and their shapes. now is the current
 * Unix time (0: read the clock). NX_EUNAUTHORIZED on any failure.
 */
int nx_jwt_verify(const char *secret, int alg, const char *token, size_t len, long long now,
                  nx_claims_t *out, nx_err_t *err);

/* ---- verified tokens (token_cache.c) ------------------------------------- */

/* A token this thread verified, still passing at now: its claims into *out.
 * Compared byte for byte; false when absent, replaced or past its time. */
bool nx_token_cache_get(const char *tok, size_t len, long long now, nx_claims_t *out);
/* Keeps a token nx_jwt_verify accepted, with its claims, until (exclusive)
 * the Unix time it stops passing. */
void nx_token_cache_put(const char *tok, size_t len, long long until, const nx_claims_t *c);

/* ---- PKCE (pkce.c) ------------------------------------------------------ */

/* A fresh random token of n random bytes, base64url without padding, into
 * out (size >= 4 * n / 3 + 2). NX_OK or NX_EINTERNAL. */
int nx_pkce_random(char *out, size_t size, size_t n);
/* S256 challenge of verifier: base64url(SHA-256(verifier)) into out[44]. */
void nx_pkce_challenge(const char *verifier, char out[44]);
/* base64url (no padding) of n bytes into out (size >= 4 * n / 3 + 2). */
void nx_b64url(const unsigned char *in, size_t n, char *out, size_t size);

/* ---- cookies (session_cookie.c) ------------------------------------------ */

typedef struct nx_login_state {
    char state[48];
    char nonce[48];
    char verifier[48];
    long long expires; /* Unix time */
} nx_login_state_t;

/* True when cookies may go without Secure (PUBLIC_URL is http://localhost
 * or http://127.0.0.1). */
bool nx_cookie_insecure_ok(const char *public_url);

/* A new sign-in attempt (random state, nonce, verifier) and its signed
 * Set-Cookie value (arena). NX_ENOMEM, NX_EINTERNAL. */
int nx_login_state_new(nx_arena_t *arena, const char *secret, nx_login_state_t *ls,
                       char **set_cookie, nx_err_t *err);
/* Checks the nexus_login cookie's signature and expiry. NX_EUNAUTHORIZED. */
int nx_login_state_parse(const char *secret, const char *cookie, long long now,
                         nx_login_state_t *ls, nx_err_t *err);
/* True when state (from the callback's query) is the attempt's state
 * (constant-time). */
bool nx_login_state_match(const nx_login_state_t *ls, const char *state);
/* The session cookie's name: NX_SESSION_COOKIE_HOST when PUBLIC_URL is
 * https, else NX_SESSION_COOKIE (static string). */
const char *nx_session_cookie_name(void);
/* Set-Cookie values (arena) clearing the login cookie, setting and clearing
 * the session cookie. */
char *nx_login_cookie_clear(nx_arena_t *arena);
char *nx_session_cookie_set(nx_arena_t *arena, const char *token, long long max_age);
char *nx_session_cookie_clear(nx_arena_t *arena);

/* ---- Google OpenID Connect (google_oidc.c, jwks.c) ----------------------- */

/* Google claims the sign-in needs (arena strings; NULL when absent). */
typedef struct nx_google_id {
    const char *sub;
    const char *email;
    const char *name;
    const char *picture;
    const char *hd;
} nx_google_id_t;

/* NULL when GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET are set, else the
 * names of the missing settings (static string). */
const char *nx_oidc_missing_settings(void);

/* Builds the authorization URL for a sign-in attempt (fetching the discovery
 * document if not cached). NX_EUNAVAILABLE when the provider is down. */
int nx_oidc_auth_url(nx_arena_t *arena, const nx_login_state_t *ls, char **url,
                     nx_err_t *err);

/* RFC 9207: the callback's iss (NULL when absent) must name the provider,
 * and be there when its discovery document says it sends it.
 * NX_EUNAUTHORIZED, NX_EUNAVAILABLE (no discovery document). */
int nx_oidc_check_iss(nx_arena_t *arena, const char *iss, nx_err_t *err);

/* Exchanges an authorization code (with the PKCE verifier) for the ID token
 * and, when the provider gives a bearer one, the access token (else NULL);
 * arena strings. NX_EUNAUTHORIZED when the provider refuses the code,
 * NX_EUNAVAILABLE when it cannot be reached. */
int nx_oidc_exchange(nx_arena_t *arena, const char *code, const char *verifier,
                     char **id_token, char **access_token, nx_err_t *err);

/*
 * Verifies a Google ID token: RS256 against the provider's JWKS, iss (the
 * discovery document's issuer), aud == GOOGLE_CLIENT_ID, exp (with skew),
 * nonce when nonce is non-NULL, then email and email_verified, read from
 * userinfo with access_token (may be NULL) when the token lacks them.
 * NX_EUNAUTHORIZED, or NX_EUNAVAILABLE when the provider cannot be reached.
 */
int nx_jwks_verify_id_token(nx_arena_t *arena, const char *token, const char *nonce,
                            const char *access_token, nx_google_id_t *out, nx_err_t *err);

/* Drops the cached discovery document and keys (tests, reconfiguration). */
void nx_oidc_cache_reset(void);

/* ---- the auth stage (middleware.c) -------------------------------------- */

/*
 * The pipeline's auth stage (HEADERS, after routing): on an NX_ROUTE_AUTH/
 * ADMIN route, a bearer token from Authorization or the session cookie
 * fills req->auth; public routes pass untouched. A state-changing request
 * authenticated by cookie must carry an Origin or Referer matching
 * PUBLIC_URL (else NX_EFORBIDDEN). NX_EUNAUTHORIZED when there is no valid
 * token. The user's existence and current role are checked later, by the
 * request's tenant transaction.
 */
int nx_auth_stage(nx_req_t *req, nx_err_t *err);

/* The cross-site check of a cookie-authenticated write: NX_OK for a safe
 * method or an Origin (else Referer) of PUBLIC_URL, else NX_EFORBIDDEN. */
int nx_auth_check_origin(nx_req_t *req, nx_err_t *err);

/* Start-up for `serve`: resolves the JWT secret (nx_settings_finish_secret).
 * NX_EINVAL with a one-line detail naming the bad setting. */
int nx_auth_init(nx_settings_t *s, nx_err_t *err);

#endif
