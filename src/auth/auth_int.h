/*
 * auth_int.h - private to src/auth/: the outbound HTTP helper shared by the
 * Google clients (libcurl stays in google_oidc.c).
 */
#ifndef NX_AUTH_AUTH_INT_H
#define NX_AUTH_AUTH_INT_H

#include "core/nx.h"

#define NX_FETCH_MAX (1024 * 1024) /* largest provider answer we read */

typedef struct nx_fetch {
    long status;       /* HTTP status */
    long max_age;      /* Cache-Control max-age, -1 when absent */
    bool no_store;     /* Cache-Control: no-store / no-cache */
    char *body;        /* arena, NUL-terminated */
    size_t len;
} nx_fetch_t;

/*
 * GET url (form_body NULL) or POST form_body as
 * application/x-www-form-urlencoded, with short timeouts and no redirects.
 * NX_EUNAVAILABLE when the server cannot be reached or answers too much.
 */
int nx_auth_fetch(nx_arena_t *arena, const char *url, const char *form_body, nx_fetch_t *out,
                  nx_err_t *err);

/* The discovery document's jwks_uri (cached; arena copy). NX_EUNAVAILABLE. */
int nx_oidc_jwks_uri(nx_arena_t *arena, char **out, nx_err_t *err);

/* Drops the cached keys (jwks.c). */
void nx_jwks_cache_reset(void);

/* URL-encodes s (RFC 3986 unreserved kept); arena. */
char *nx_auth_urlencode(nx_arena_t *arena, const char *s);

#endif
