/*
 * google_oidc.c - the relying-party side of Google's OpenID Connect code
 * flow: the discovery document, the authorization URL and the code exchange.
 *
 * Every call to the provider goes through httpc (timeouts, size cap, no
 * redirects, TLS verification). The discovery document is checked once and
 * its endpoints cached process-wide (core/ttl_cache: a heap copy of a small
 * JSON object) for its Cache-Control max-age, an hour when it gives none,
 * and at least a minute. Fetches run without the cache lock, so one slow
 * provider answer never blocks other threads' reads; callers run on offload
 * threads (nx_req_offload), never on an HTTP pool thread.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/ttl_cache.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static nx_ttl_cache_t disc = NX_TTL_CACHE_INIT(3600, 60, 86400, 60);

const char *nx_oidc_missing_settings(void)
{
    bool id = nx_cfg && nx_cfg->google_client_id && *nx_cfg->google_client_id;
    bool secret = nx_cfg && nx_cfg->google_client_secret && *nx_cfg->google_client_secret;
    if (id && secret)
        return NULL;
    if (!id && !secret)
        return "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET";
    return id ? "GOOGLE_CLIENT_SECRET" : "GOOGLE_CLIENT_ID";
}

void nx_oidc_cache_reset(void)
{
    nx_ttl_cache_clear(&disc);
    nx_jwks_cache_reset();
}

/* ---- calls to the provider ---------------------------------------------- */

int nx_oidc_call(nx_arena_t *arena, nx_httpc_req_t *q, nx_httpc_resp_t *r, nx_err_t *err)
{
    q->service = "the sign-in provider";
    q->allow_http = strncmp(nx_cfg->google_discovery_url, "http://", 7) == 0;
    nx_err_t e = {0};
    int rc = nx_httpc_perform(arena, q, r, &e);
    if (rc == NX_OK || rc == NX_ENOMEM)
        return rc == NX_OK ? NX_OK : nx_err_set(err, rc, NULL);
    nx_err_log(err, "%s", e.log_detail);
    return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider could not be reached.");
}

json_t *nx_oidc_json(nx_arena_t *arena, const nx_httpc_resp_t *r)
{
    json_t *v = NULL;
    if (nx_httpc_json(arena, r, NULL, &v, NULL) != NX_OK || !json_is_object(v))
        return NULL;
    return v;
}

/* ---- discovery ---------------------------------------------------------- */

#define WELL_KNOWN "/.well-known/openid-configuration"
#define GOOGLE_ISSUER "https://accounts.google.com"

static bool http_url(const char *s)
{
    return s && (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0);
}

bool nx_oidc_issuer_matches(const char *url, const char *issuer)
{
    if (!url || !http_url(issuer) || strpbrk(issuer, "?#"))
        return false;
    size_t n = strlen(issuer);
    while (n && issuer[n - 1] == '/') /* removed before appending, per 4.1 */
        n--;
    if (strncmp(url, issuer, n) != 0)
        return false;
    const char *rest = url + n;
    size_t ul = strlen(url), wl = strlen(WELL_KNOWN);
    if (ul >= wl && strcmp(url + ul - wl, WELL_KNOWN) == 0)
        return strcmp(rest, WELL_KNOWN) == 0;
    return *rest == '/' || *rest == '\0';
}

bool nx_oidc_iss_ok(const char *issuer, const char *iss)
{
    if (!issuer || !iss)
        return false;
    if (strcmp(iss, issuer) == 0)
        return true;
    return strcmp(issuer, GOOGLE_ISSUER) == 0 && strcmp(iss, "accounts.google.com") == 0;
}

/* An arena copy of v as compact JSON text. */
static char *dump(nx_arena_t *arena, const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT);
    char *s = n ? nx_arena_alloc(arena, n + 1) : NULL;
    if (!s || json_dumpb(v, s, n, JSON_COMPACT) != n)
        return NULL;
    s[n] = '\0';
    return s;
}

/* How we authenticate at the token endpoint: HTTP Basic, which RFC 6749
 * 2.3.1 has every server support and OpenID Discovery makes the default,
 * unless the document offers only client_secret_post. NULL: neither. */
static const char *token_auth(json_t *doc)
{
    json_t *m = json_object_get(doc, "token_endpoint_auth_methods_supported");
    if (!m)
        return "client_secret_basic";
    bool post = false;
    size_t i;
    json_t *v;
    json_array_foreach(m, i, v) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "client_secret_basic") == 0)
            return "client_secret_basic";
        post = post || (s && strcmp(s, "client_secret_post") == 0);
    }
    return post ? "client_secret_post" : NULL;
}

/* What we keep of a checked discovery document, as JSON text (arena). */
static char *kept(nx_arena_t *arena, json_t *doc, const char *token_auth)
{
    const char *u = json_string_value(json_object_get(doc, "userinfo_endpoint"));
    json_t *ip = json_object_get(doc, "authorization_response_iss_parameter_supported");
    json_t *k = json_pack("{s:O, s:O, s:O, s:O, s:s, s:b}",
                          "issuer", json_object_get(doc, "issuer"),
                          "authorization_endpoint", json_object_get(doc, "authorization_endpoint"),
                          "token_endpoint", json_object_get(doc, "token_endpoint"),
                          "jwks_uri", json_object_get(doc, "jwks_uri"),
                          "token_auth", token_auth, "iss_param", json_is_true(ip));
    if (k && http_url(u) && json_object_set_new(k, "userinfo_endpoint", json_string(u)) != 0) {
        json_decref(k);
        return NULL;
    }
    char *text = k ? dump(arena, k) : NULL;
    json_decref(k);
    return text;
}

/* Fetches and checks the discovery document, caches what we use of it and
 * returns that as JSON text (arena). */
static int fetch_discovery(nx_arena_t *arena, char **text, nx_err_t *err)
{
    nx_httpc_req_t q = {.url = nx_cfg->google_discovery_url};
    nx_httpc_resp_t r;
    int rc = nx_oidc_call(arena, &q, &r, err);
    if (rc != NX_OK)
        return rc;
    json_t *doc = r.status == 200 ? nx_oidc_json(arena, &r) : NULL;
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    const char *a = json_string_value(json_object_get(doc, "authorization_endpoint"));
    const char *t = json_string_value(json_object_get(doc, "token_endpoint"));
    const char *j = json_string_value(json_object_get(doc, "jwks_uri"));
    if (!http_url(a) || !http_url(t) || !http_url(j)) {
        nx_err_log(err, "discovery document: status %ld, missing endpoints", r.status);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider is not available.");
    }
    if (!nx_oidc_issuer_matches(nx_cfg->google_discovery_url, iss)) {
        nx_err_log(err, "discovery document: issuer \"%.200s\" is not the one of %s",
                   iss ? iss : "(none)", nx_cfg->google_discovery_url);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider is not available: its "
                                                "discovery document names another issuer or none.");
    }
    const char *auth = token_auth(doc);
    if (!auth) {
        nx_err_log(err, "discovery document: no client_secret_basic or client_secret_post");
        return nx_err_set(err, NX_EUNAVAILABLE,
                          "The sign-in provider is not available: it offers no client "
                          "authentication this server supports (client_secret_basic or "
                          "client_secret_post).");
    }
    *text = kept(arena, doc, auth);
    if (!*text || nx_ttl_cache_put(&disc, (long long)time(NULL), *text, strlen(*text),
                                   r.max_age, r.no_store) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

/* An arena copy of a string member of the cached document; NULL if absent. */
static const char *get(nx_arena_t *arena, json_t *doc, const char *name)
{
    const char *v = json_string_value(json_object_get(doc, name));
    return v ? nx_arena_strdup(arena, v) : NULL;
}

int nx_oidc_provider(nx_arena_t *arena, nx_oidc_provider_t *out, nx_err_t *err)
{
    memset(out, 0, sizeof(*out));
    char *text = NULL;
    int rc = nx_ttl_cache_get(&disc, (long long)time(NULL), arena, &text, NULL);
    if (rc == NX_ENOTFOUND)
        rc = fetch_discovery(arena, &text, err);
    if (rc != NX_OK)
        return rc == NX_ENOMEM ? nx_err_set(err, rc, NULL) : rc;
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc)
        return nx_err_set(err, NX_ENOMEM, NULL);
    out->issuer = get(arena, doc, "issuer");
    out->auth_ep = get(arena, doc, "authorization_endpoint");
    out->token_ep = get(arena, doc, "token_endpoint");
    out->jwks_uri = get(arena, doc, "jwks_uri");
    out->userinfo_ep = get(arena, doc, "userinfo_endpoint");
    out->iss_param = json_is_true(json_object_get(doc, "iss_param"));
    out->basic_auth = strcmp(json_string_value(json_object_get(doc, "token_auth")),
                             "client_secret_basic") == 0;
    json_decref(doc);
    if (!out->issuer || !out->auth_ep || !out->token_ep || !out->jwks_uri)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

/* ---- the code flow -------------------------------------------------------- */

static char *redirect_uri(nx_arena_t *arena)
{
    const char *base = nx_cfg->public_url;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    return nx_arena_sprintf(arena, "%.*s/auth/google/callback", (int)n, base);
}

int nx_oidc_auth_url(nx_arena_t *arena, const nx_login_state_t *ls, char **url, nx_err_t *err)
{
    nx_oidc_provider_t p;
    int rc = nx_oidc_provider(arena, &p, err);
    if (rc != NX_OK)
        return rc;
    char challenge[44];
    nx_pkce_challenge(ls->verifier, challenge);
    const char *pairs[] = {"response_type", "code", "client_id", nx_cfg->google_client_id,
                           "redirect_uri", redirect_uri(arena), "scope", "openid email profile",
                           "state", ls->state, "nonce", ls->nonce, "code_challenge", challenge,
                           "code_challenge_method", "S256", NULL};
    char *query = pairs[5] ? nx_httpc_form(arena, pairs) : NULL;
    if (!query)
        return nx_err_set(err, NX_ENOMEM, NULL);
    *url = nx_arena_sprintf(arena, "%s%s%s", p.auth_ep, strchr(p.auth_ep, '?') ? "&" : "?",
                            query);
    return *url ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}

int nx_oidc_check_iss(nx_arena_t *arena, const char *iss, nx_err_t *err)
{
    nx_oidc_provider_t p;
    int rc = nx_oidc_provider(arena, &p, err);
    if (rc != NX_OK)
        return rc;
    if (!iss && p.iss_param)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The callback lacks the iss parameter that "
                                                 "the sign-in provider promises (RFC 9207).");
    if (iss && !nx_oidc_iss_ok(p.issuer, iss))
        return nx_err_set(err, NX_EUNAUTHORIZED, "The callback's iss is not the configured "
                                                 "sign-in provider: the response may come "
                                                 "from another one.");
    return NX_OK;
}

int nx_oidc_exchange(nx_arena_t *arena, const char *code, const char *verifier, char **id_token,
                     char **access_token, nx_err_t *err)
{
    nx_oidc_provider_t p;
    int rc = nx_oidc_provider(arena, &p, err);
    if (rc != NX_OK)
        return rc;
    /* With Basic the credentials are form-encoded first (RFC 6749 2.3.1) and
     * stay out of the body; client_secret_post puts both in the body. */
    const char *id = nx_cfg->google_client_id, *secret = nx_cfg->google_client_secret;
    const char *pairs[] = {"grant_type", "authorization_code", "code", code,
                           "redirect_uri", redirect_uri(arena), "code_verifier", verifier,
                           "client_id", p.basic_auth ? NULL : id,
                           "client_secret", p.basic_auth ? NULL : secret, NULL};
    char *form = pairs[5] ? nx_httpc_form(arena, pairs) : NULL;
    nx_httpc_req_t q = {.method = "POST", .url = p.token_ep, .body = form,
                        .body_len = form ? strlen(form) : 0, .content_type = NX_HTTPC_FORM};
    if (p.basic_auth) {
        q.basic_user = nx_httpc_escape(arena, id);
        q.basic_password = nx_httpc_escape(arena, secret);
    }
    if (!form || (p.basic_auth && (!q.basic_user || !q.basic_password)))
        return nx_err_set(err, NX_ENOMEM, NULL);
    nx_httpc_resp_t r;
    if ((rc = nx_oidc_call(arena, &q, &r, err)) != NX_OK)
        return rc;
    if (r.status >= 500 || r.status < 200) {
        nx_err_log(err, "token endpoint answered %ld", r.status);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider is not available.");
    }
    json_t *doc = nx_oidc_json(arena, &r);
    const char *tok = json_string_value(json_object_get(doc, "id_token"));
    if (r.status != 200 || !tok) {
        const char *e = json_string_value(json_object_get(doc, "error"));
        nx_err_log(err, "token endpoint answered %ld (%s)", r.status, e ? e : "no id_token");
        return nx_err_set(err, NX_EUNAUTHORIZED,
                          "The sign-in provider refused the authorization code.");
    }
    *id_token = nx_arena_strdup(arena, tok);
    const char *at = json_string_value(json_object_get(doc, "access_token"));
    const char *type = json_string_value(json_object_get(doc, "token_type"));
    /* only a bearer token can be shown to userinfo */
    *access_token = at && type && strcasecmp(type, "Bearer") == 0 ? nx_arena_strdup(arena, at)
                                                                  : NULL;
    if (!*id_token || (at && type && !*access_token))
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_oidc_userinfo(nx_arena_t *arena, const char *access_token, const char *sub,
                     json_t **out, nx_err_t *err)
{
    nx_oidc_provider_t p;
    int rc = nx_oidc_provider(arena, &p, err);
    if (rc != NX_OK)
        return rc;
    if (!p.userinfo_ep)
        return NX_ENOTFOUND;
    char *bearer = nx_arena_sprintf(arena, "Authorization: Bearer %s", access_token);
    const char *headers[] = {bearer, NULL};
    if (!bearer)
        return nx_err_set(err, NX_ENOMEM, NULL);
    nx_httpc_req_t q = {.url = p.userinfo_ep, .headers = headers};
    nx_httpc_resp_t r;
    if ((rc = nx_oidc_call(arena, &q, &r, err)) != NX_OK)
        return rc;
    json_t *doc = r.status == 200 ? nx_oidc_json(arena, &r) : NULL;
    const char *usub = json_string_value(json_object_get(doc, "sub"));
    if (!doc) {
        nx_err_log(err, "userinfo answered %ld, not a JSON object", r.status);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider's userinfo could not be "
                                                "read.");
    }
    /* Core 5.3.2: userinfo of another sub must not be used (token substitution) */
    if (!usub || strcmp(usub, sub) != 0)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The sign-in provider's userinfo is for "
                                                 "another account than the ID token.");
    *out = doc;
    return NX_OK;
}
