/*
 * auth_int.h - private to src/auth/: the checked discovery document and the
 * provider calls the Google clients share (through httpc).
 */
#ifndef NX_AUTH_AUTH_INT_H
#define NX_AUTH_AUTH_INT_H

#include "core/nx.h"
#include "httpc/httpc.h"

/* The discovery document's endpoints, checked (arena strings). */
typedef struct nx_oidc_provider {
    const char *issuer; /* checked against GOOGLE_DISCOVERY_URL */
    const char *auth_ep;
    const char *token_ep;
    const char *jwks_uri;
    const char *userinfo_ep; /* NULL when the provider has none */
    bool basic_auth; /* client_secret_basic at the token endpoint, else _post */
    bool iss_param;  /* RFC 9207: its authorization responses carry iss */
} nx_oidc_provider_t;

/* The provider's endpoints from the cached discovery document (fetched when
 * stale). NX_EUNAVAILABLE when it cannot be had or is not usable. */
int nx_oidc_provider(nx_arena_t *arena, nx_oidc_provider_t *out, nx_err_t *err);

/* OpenID Discovery 4.3: true when issuer is the one whose document url is
 * (url is issuer + "/.well-known/openid-configuration", or, for a URL of
 * another form, starts with issuer at a path boundary). */
bool nx_oidc_issuer_matches(const char *url, const char *issuer);

/* True when an iss value (an ID token's, a callback's) names issuer; for
 * Google's "https://accounts.google.com" also its "accounts.google.com". */
bool nx_oidc_iss_ok(const char *issuer, const char *iss);

/*
 * One call to the sign-in provider through httpc, with our limits; plain http
 * only when GOOGLE_DISCOVERY_URL is http. Any HTTP status is NX_OK; a
 * transport failure is NX_EUNAVAILABLE "The sign-in provider could not be
 * reached." (httpc's text in log_detail), or NX_ENOMEM.
 */
int nx_oidc_call(nx_arena_t *arena, nx_httpc_req_t *q, nx_httpc_resp_t *r, nx_err_t *err);

/* The body of r as a JSON object, released with the arena; NULL when it is
 * not one. */
struct json_t *nx_oidc_json(nx_arena_t *arena, const nx_httpc_resp_t *r);

/*
 * The userinfo claims for access_token (OpenID Connect Core 5.3), a JSON
 * object released with the arena, after checking that its sub is sub.
 * NX_ENOTFOUND (the provider has no userinfo endpoint; err untouched),
 * NX_EUNAUTHORIZED (another sub), NX_EUNAVAILABLE (an error answer, not
 * JSON), NX_ENOMEM.
 */
int nx_oidc_userinfo(nx_arena_t *arena, const char *access_token, const char *sub,
                     struct json_t **out, nx_err_t *err);

/* Drops the cached keys (jwks.c). */
void nx_jwks_cache_reset(void);

#endif
