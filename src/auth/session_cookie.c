/*
 * session_cookie.c - the two cookies of browser sign-in.
 *
 * nexus_login binds one sign-in attempt to the browser that started it:
 * "v1.<state>.<nonce>.<verifier>.<expires>.<mac>", mac = base64url
 * HMAC-SHA-256 under the JWT secret of everything before it (with a domain
 * prefix, so no other signed value of ours can stand in for it). It lives
 * NX_LOGIN_TTL seconds on Path=/auth/google. That a state is used once is
 * enforced in the database (nx_login_state_consume, migration 0003), so it
 * holds across any number of server nodes.
 *
 * The session cookie carries an access token for the browser: HttpOnly,
 * SameSite=Lax, Secure unless PUBLIC_URL is a plain-http loopback address.
 * Over https it is __Host-nexus_session (Secure, Path=/, no Domain), so a
 * sibling subdomain or a plain-http page cannot plant one of its own.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAC_PREFIX "nexus-login-cookie|"

bool nx_cookie_insecure_ok(const char *u)
{
    if (!u)
        return false;
    static const char *const hosts[] = {"http://localhost", "http://127.0.0.1", "http://[::1]"};
    for (size_t i = 0; i < NX_ARRAY_LEN(hosts); i++) {
        size_t n = strlen(hosts[i]);
        if (strncasecmp(u, hosts[i], n) == 0 && (u[n] == '\0' || u[n] == ':' || u[n] == '/'))
            return true;
    }
    return false;
}

const char *nx_session_cookie_name(void)
{
    bool https = nx_cfg && nx_cfg->public_url && strncasecmp(nx_cfg->public_url, "https://", 8) == 0;
    return https ? NX_SESSION_COOKIE_HOST : NX_SESSION_COOKIE;
}

static const char *secure_attr(void)
{
    return nx_cfg && nx_cookie_insecure_ok(nx_cfg->public_url) ? "" : "; Secure";
}

static void mac(const char *secret, const char *msg, size_t n, char out[44])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[512];
    size_t plen = strlen(MAC_PREFIX);
    if (plen + n > sizeof(buf))
        n = sizeof(buf) - plen; /* callers never get here: inputs are bounded */
    memcpy(buf, MAC_PREFIX, plen);
    memcpy(buf + plen, msg, n);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)buf, plen + n, md,
         &mdlen);
    nx_b64url(md, mdlen, out, 44);
}

int nx_login_state_new(nx_arena_t *arena, const char *secret, nx_login_state_t *ls,
                       char **set_cookie, nx_err_t *err)
{
    if (nx_pkce_random(ls->state, sizeof(ls->state), 32) != NX_OK ||
        nx_pkce_random(ls->nonce, sizeof(ls->nonce), 32) != NX_OK ||
        nx_pkce_random(ls->verifier, sizeof(ls->verifier), 32) != NX_OK)
        return nx_err_set(err, NX_EINTERNAL, "could not start the sign-in");
    ls->expires = (long long)time(NULL) + NX_LOGIN_TTL;
    char body[256], sig[44];
    int n = snprintf(body, sizeof(body), "v1.%s.%s.%s.%lld", ls->state, ls->nonce, ls->verifier,
                     ls->expires);
    mac(secret, body, (size_t)n, sig);
    *set_cookie = nx_arena_sprintf(arena,
                                   NX_LOGIN_COOKIE "=%s.%s; Path=/auth/google; Max-Age=%d; "
                                                   "HttpOnly; SameSite=Lax%s",
                                   body, sig, NX_LOGIN_TTL, secure_attr());
    return *set_cookie ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}

/* Copies the next '.'-separated field of *p into out; -1 if absent/too long. */
static int field(const char **p, char *out, size_t size)
{
    const char *dot = strchr(*p, '.');
    size_t n = dot ? (size_t)(dot - *p) : strlen(*p);
    if (n == 0 || n >= size)
        return -1;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n + (dot ? 1 : 0);
    return 0;
}

int nx_login_state_parse(const char *secret, const char *cookie, long long now,
                         nx_login_state_t *ls, nx_err_t *err)
{
    memset(ls, 0, sizeof(*ls));
    if (!cookie || !*cookie)
        return nx_err_set(err, NX_EUNAUTHORIZED,
                          "The sign-in cookie is missing: start again at /auth/google/login.");
    size_t len = strlen(cookie);
    const char *last = strrchr(cookie, '.');
    if (len > 400 || !last || strncmp(cookie, "v1.", 3) != 0)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The sign-in cookie is malformed.");
    char want[44];
    mac(secret, cookie, (size_t)(last - cookie), want);
    if (strlen(last + 1) != strlen(want) || CRYPTO_memcmp(last + 1, want, strlen(want)) != 0)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The sign-in cookie is not ours.");
    const char *p = cookie + 3;
    char exp[24];
    long long e = 0;
    if (field(&p, ls->state, sizeof(ls->state)) || field(&p, ls->nonce, sizeof(ls->nonce)) ||
        field(&p, ls->verifier, sizeof(ls->verifier)) || field(&p, exp, sizeof(exp)) ||
        nx_parse_int(exp, 0, INT64_MAX, &e) != NX_OK)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The sign-in cookie is malformed.");
    if (e <= (now ? now : (long long)time(NULL)))
        return nx_err_set(err, NX_EUNAUTHORIZED,
                          "The sign-in attempt has expired: start again at /auth/google/login.");
    ls->expires = e;
    return NX_OK;
}

bool nx_login_state_match(const nx_login_state_t *ls, const char *state)
{
    size_t n = strlen(ls->state);
    return state && n > 0 && strlen(state) == n && CRYPTO_memcmp(state, ls->state, n) == 0;
}

char *nx_login_cookie_clear(nx_arena_t *arena)
{
    return nx_arena_sprintf(arena, NX_LOGIN_COOKIE "=; Path=/auth/google; Max-Age=0; HttpOnly; "
                                   "SameSite=Lax%s", secure_attr());
}

char *nx_session_cookie_set(nx_arena_t *arena, const char *token, long long max_age)
{
    return nx_arena_sprintf(arena, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Lax%s",
                            nx_session_cookie_name(), token, max_age, secure_attr());
}

char *nx_session_cookie_clear(nx_arena_t *arena)
{
    return nx_arena_sprintf(arena, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax%s",
                            nx_session_cookie_name(), secure_attr());
}
