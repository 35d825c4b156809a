/*
 * google_oidc.c - the relying-party side of Google's OpenID Connect code
 * flow: the discovery document, the authorization URL, the code exchange,
 * and the libcurl helper the JWKS client shares.
 *
 * The discovery document is cached process-wide (heap copies under a mutex,
 * never arena pointers) for its Cache-Control max-age (an hour when the
 * provider gives none). Fetches run without the lock, so one slow provider
 * answer never blocks other threads' cache reads; callers run on offload
 * threads (nx_req_offload), never on an HTTP pool thread.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "auth/auth_int.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/mem.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_TTL 3600
#define CONNECT_TIMEOUT_MS 5000
#define TOTAL_TIMEOUT_MS 10000

/* ---- outbound HTTP ------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    nx_buf_t *b = ud;
    return nx_buf_append(b, p, size * n) == NX_OK ? size * n : 0;
}

/* Reads max-age and no-store/no-cache out of a Cache-Control header. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    nx_fetch_t *f = ud;
    size_t len = size * n;
    static const char name[] = "cache-control:";
    if (len <= sizeof(name) - 1 || strncasecmp(p, name, sizeof(name) - 1) != 0)
        return len;
    char v[256];
    size_t vl = len - (sizeof(name) - 1);
    if (vl >= sizeof(v))
        vl = sizeof(v) - 1;
    memcpy(v, p + sizeof(name) - 1, vl);
    v[vl] = '\0';
    for (char *c = v; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    if (strstr(v, "no-store") || strstr(v, "no-cache"))
        f->no_store = true;
    char *ma = strstr(v, "max-age=");
    if (ma) {
        char *end;
        long s = strtol(ma + 8, &end, 10);
        if (end != ma + 8 && s >= 0)
            f->max_age = s > 86400 * 7 ? 86400 * 7 : s;
    }
    return len;
}

int nx_auth_fetch(nx_arena_t *arena, const char *url, const char *form_body, nx_fetch_t *out,
                  nx_err_t *err)
{
    pthread_once(&curl_once, curl_init);
    memset(out, 0, sizeof(*out));
    out->max_age = -1;
    nx_buf_t b;
    nx_buf_init(&b, arena, NX_FETCH_MAX);
    CURL *c = curl_easy_init();
    if (!c)
        return nx_err_set(err, NX_ENOMEM, NULL);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)TOTAL_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)NX_FETCH_MAX);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "nexusapi/" NX_VERSION);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (form_body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form_body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(form_body));
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        nx_err_log(err, "fetch %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider could not be reached.");
    }
    out->body = b.data ? b.data : nx_arena_strdup(arena, "");
    out->len = b.data ? b.len : 0;
    return out->body ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}

char *nx_auth_urlencode(nx_arena_t *arena, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = nx_arena_alloc(arena, 3 * n + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- discovery ---------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    char *auth_ep, *token_ep, *jwks_uri; /* heap */
    long long expires;
} disc = {.lock = PTHREAD_MUTEX_INITIALIZER};

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

static void disc_clear(void)
{
    nx_free(disc.auth_ep);
    nx_free(disc.token_ep);
    nx_free(disc.jwks_uri);
    disc.auth_ep = disc.token_ep = disc.jwks_uri = NULL;
    disc.expires = 0;
}

void nx_oidc_cache_reset(void)
{
    pthread_mutex_lock(&disc.lock);
    disc_clear();
    pthread_mutex_unlock(&disc.lock);
    nx_jwks_cache_reset();
}

static bool http_url(const char *s)
{
    return s && (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0);
}

static int fetch_discovery(nx_arena_t *arena, nx_err_t *err)
{
    nx_fetch_t f;
    int rc = nx_auth_fetch(arena, nx_cfg->google_discovery_url, NULL, &f, err);
    if (rc != NX_OK)
        return rc;
    json_t *doc = f.status == 200 ? json_loadb(f.body, f.len, 0, NULL) : NULL;
    const char *a = json_string_value(json_object_get(doc, "authorization_endpoint"));
    const char *t = json_string_value(json_object_get(doc, "token_endpoint"));
    const char *j = json_string_value(json_object_get(doc, "jwks_uri"));
    if (!http_url(a) || !http_url(t) || !http_url(j)) {
        json_decref(doc);
        nx_err_log(err, "discovery document: status %ld, missing endpoints", f.status);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider is not available.");
    }
    long long ttl = f.no_store ? 0 : f.max_age >= 0 ? f.max_age : DEFAULT_TTL;
    pthread_mutex_lock(&disc.lock);
    disc_clear();
    disc.auth_ep = nx_strdup(a);
    disc.token_ep = nx_strdup(t);
    disc.jwks_uri = nx_strdup(j);
    disc.expires = (long long)time(NULL) + ttl;
    rc = disc.auth_ep && disc.token_ep && disc.jwks_uri ? NX_OK : NX_ENOMEM;
    if (rc != NX_OK)
        disc_clear();
    pthread_mutex_unlock(&disc.lock);
    json_decref(doc);
    return rc == NX_OK ? NX_OK : nx_err_set(err, rc, NULL);
}

/* Copies the endpoints out of the cache (fetching when stale). With max-age
 * 0 the fresh copy is still used once, by this request. */
static int endpoints(nx_arena_t *arena, char **auth_ep, char **token_ep, char **jwks_uri,
                     nx_err_t *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&disc.lock);
        bool fresh = disc.auth_ep && (disc.expires > (long long)time(NULL) || attempt == 1);
        if (fresh) {
            if (auth_ep)
                *auth_ep = nx_arena_strdup(arena, disc.auth_ep);
            if (token_ep)
                *token_ep = nx_arena_strdup(arena, disc.token_ep);
            if (jwks_uri)
                *jwks_uri = nx_arena_strdup(arena, disc.jwks_uri);
        }
        pthread_mutex_unlock(&disc.lock);
        if (fresh)
            return NX_OK;
        if (attempt == 0) {
            int rc = fetch_discovery(arena, err);
            if (rc != NX_OK)
                return rc;
        }
    }
    return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider is not available.");
}

int nx_oidc_jwks_uri(nx_arena_t *arena, char **out, nx_err_t *err)
{
    return endpoints(arena, NULL, NULL, out, err);
}

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
    char *auth_ep = NULL;
    int rc = endpoints(arena, &auth_ep, NULL, NULL, err);
    if (rc != NX_OK)
        return rc;
    char challenge[44];
    nx_pkce_challenge(ls->verifier, challenge);
    char *ru = redirect_uri(arena);
    char *cid = nx_auth_urlencode(arena, nx_cfg->google_client_id);
    char *eru = ru ? nx_auth_urlencode(arena, ru) : NULL;
    if (!auth_ep || !cid || !eru)
        return nx_err_set(err, NX_ENOMEM, NULL);
    *url = nx_arena_sprintf(arena,
                            "%s%sresponse_type=code&client_id=%s&redirect_uri=%s"
                            "&scope=openid%%20email%%20profile&state=%s&nonce=%s"
                            "&code_challenge=%s&code_challenge_method=S256",
                            auth_ep, strchr(auth_ep, '?') ? "&" : "?", cid, eru, ls->state,
                            ls->nonce, challenge);
    return *url ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}

int nx_oidc_exchange(nx_arena_t *arena, const char *code, const char *verifier, char **id_token,
                     nx_err_t *err)
{
    char *token_ep = NULL;
    int rc = endpoints(arena, NULL, &token_ep, NULL, err);
    if (rc != NX_OK)
        return rc;
    char *ru = redirect_uri(arena);
    char *form = ru ? nx_arena_sprintf(
                          arena,
                          "grant_type=authorization_code&code=%s&redirect_uri=%s&client_id=%s"
                          "&client_secret=%s&code_verifier=%s",
                          nx_auth_urlencode(arena, code), nx_auth_urlencode(arena, ru),
                          nx_auth_urlencode(arena, nx_cfg->google_client_id),
                          nx_auth_urlencode(arena, nx_cfg->google_client_secret),
                          nx_auth_urlencode(arena, verifier))
                    : NULL;
    if (!token_ep || !form)
        return nx_err_set(err, NX_ENOMEM, NULL);
    nx_fetch_t f;
    rc = nx_auth_fetch(arena, token_ep, form, &f, err);
    if (rc != NX_OK)
        return rc;
    if (f.status >= 500 || f.status < 200) {
        nx_err_log(err, "token endpoint answered %ld", f.status);
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider is not available.");
    }
    json_t *doc = json_loadb(f.body, f.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "id_token"));
    if (f.status != 200 || !tok) {
        const char *e = json_string_value(json_object_get(doc, "error"));
        nx_err_log(err, "token endpoint answered %ld (%s)", f.status, e ? e : "no id_token");
        json_decref(doc);
        return nx_err_set(err, NX_EUNAUTHORIZED,
                          "The sign-in provider refused the authorization code.");
    }
    *id_token = nx_arena_strdup(arena, tok);
    json_decref(doc);
    return *id_token ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}
