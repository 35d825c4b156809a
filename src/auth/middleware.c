/*
 * middleware.c - the auth stage: authentication of NX_ROUTE_AUTH /
 * NX_ROUTE_ADMIN routes.
 *
 * Runs after routing and before the body is read: finds the access token
 * (Authorization: Bearer first, else the session cookie: __Host-nexus_session
 * when PUBLIC_URL is https, else nexus_session), verifies it
 * with the pinned algorithm and fills req->auth. It does not ask the
 * database anything: the user's existence and current role are checked by
 * the first statement of the request's tenant transaction (api/tenant.c),
 * in the same round trip as the handler's own queries, so a removed user gets
 * 401 and a demoted admin 403 on their very next request.
 *
 * Cookies are sent by browsers on cross-site requests too, so a state-
 * changing request authenticated by cookie must show an Origin (or, when a
 * browser omits it, a Referer) of PUBLIC_URL; SameSite=Lax is the first
 * line, this is the second.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "config/settings.h"
#include "core/err.h"
#include "http/http.h"

#include <string.h>
#include <strings.h>
#include <time.h>

/* Length of the origin part of a URL ("https://host:port"), 0 if none. */
static size_t origin_len(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p || p == url)
        return 0;
    p += 3;
    size_t n = strcspn(p, "/?#");
    return n ? (size_t)(p - url) + n : 0;
}

static bool same_origin(const char *value, bool is_referer)
{
    const char *pub = nx_cfg ? nx_cfg->public_url : NULL;
    size_t n = pub ? origin_len(pub) : 0;
    if (!value || !n || strncasecmp(value, pub, n) != 0)
        return false;
    char next = value[n];
    if (!is_referer)
        return next == '\0';
    return next == '\0' || next == '/' || next == '?' || next == '#';
}

static bool safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

int nx_auth_check_origin(nx_req_t *req, nx_err_t *err)
{
    if (safe_method(req->method))
        return NX_OK;
    const char *origin = nx_req_header(req, "Origin");
    if (origin ? same_origin(origin, false) : same_origin(nx_req_header(req, "Referer"), true))
        return NX_OK;
    return nx_err_set(err, NX_EFORBIDDEN,
                      "A request authenticated by the session cookie must come from this "
                      "site (Origin or Referer matching PUBLIC_URL).");
}

int nx_auth_stage(nx_req_t *req, nx_err_t *err)
{
    memset(&req->auth, 0, sizeof(req->auth));
    if (!(req->route_entry->flags & (NX_ROUTE_AUTH | NX_ROUTE_ADMIN)))
        return NX_OK; /* a public route: no token is read */
    const char *h = nx_req_header(req, "Authorization");
    const char *tok;
    size_t len;
    bool cookie = false;
    if (h) {
        while (*h == ' ')
            h++;
        if (strncasecmp(h, "Bearer ", 7) != 0)
            return nx_err_set(err, NX_EUNAUTHORIZED,
                              "The Authorization header must be \"Bearer <token>\".");
        tok = h + 7;
        while (*tok == ' ')
            tok++;
        len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            len--;
    } else {
        tok = nx_req_cookie(req, nx_session_cookie_name());
        if (!tok || !*tok)
            return nx_err_set(err, NX_EUNAUTHORIZED, "An access token is required.");
        len = strlen(tok);
        cookie = true;
    }
    nx_claims_t c;
    int rc;
    long long now = (long long)time(NULL);
    if (!nx_token_cache_get(tok, len, now, &c)) {
        rc = nx_jwt_verify(nx_cfg->jwt_secret, nx_cfg->jwt_algorithm, tok, len, now, &c, err);
        if (rc != NX_OK)
            return rc;
        nx_token_cache_put(tok, len, c.exp + NX_JWT_LEEWAY, &c);
    }
    if (cookie && (rc = nx_auth_check_origin(req, err)) != NX_OK)
        return rc;
    memcpy(req->auth.user_id, c.sub, sizeof(req->auth.user_id));
    memcpy(req->auth.org_id, c.org_id, sizeof(req->auth.org_id));
    memcpy(req->auth.role, c.role, sizeof(req->auth.role));
    req->auth.via_cookie = cookie;
    return NX_OK;
}

int nx_auth_init(nx_settings_t *s, nx_err_t *err)
{
    return nx_settings_finish_secret(s, err);
}
