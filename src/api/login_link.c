/*
 * login_link.c - GET /auth/link?token=...: spends a one-time sign-in link
 * made by `nexusapi login-link EMAIL` (cli/cmd_login_link.c).
 *
 * The token's SHA-256 goes to nx_login_link_consume (migration 0014), a
 * SECURITY DEFINER door that marks the link used in the statement that
 * finds it: a link signs in once, before it expires, on any node. Success
 * sets the session cookie exactly as Google sign-in does (auth/
 * session_cookie.c: __Host- over https) and redirects to the dashboard.
 * A refused link is a 401 problem, except for a browser (Accept: text/html),
 * which is sent to the dashboard's sign-in page with a code saying why
 * (/?link=used|expired|invalid), so a person sees a sentence, not JSON.
 */
#include "core/nx.h"
#include "api/accounts.h"
#include "auth/auth.h"
#include "auth/digest.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "db/db.h"

#include <string.h>

#define LINK_TOKEN_LEN 43 /* 32 random bytes, base64url */

static const nx_stmt_t st_consume = {
    "auth_login_link_consume",
    "SELECT status, user_id, organisation_id, role FROM nx_login_link_consume($1)",
    1,
};

static bool token_shape_ok(const char *t)
{
    if (!t || strlen(t) != LINK_TOKEN_LEN)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return false;
    return true;
}

static int redirect(nx_req_t *req, const char *location, const char *cookie, nx_err_t *err)
{
    if (nx_resp_header(req, "Location", location) != NX_OK ||
        nx_resp_header(req, "Cache-Control", "no-store") != NX_OK ||
        nx_resp_header(req, "Referrer-Policy", "no-referrer") != NX_OK ||
        (cookie && nx_resp_header(req, "Set-Cookie", cookie) != NX_OK))
        return nx_err_set(err, NX_ENOMEM, NULL);
    return nx_resp_send(req, 302, "text/plain; charset=utf-8", "", 0);
}

/* A refused link: the sign-in page for a browser, else a 401 problem. */
static int refuse(nx_req_t *req, const char *why, nx_err_t *err)
{
    const char *accept = nx_req_header(req, "Accept");
    if (accept && strstr(accept, "text/html")) {
        char *to = nx_arena_sprintf(req->arena, "/?link=%s", why);
        return to ? redirect(req, to, NULL, err) : nx_err_set(err, NX_ENOMEM, NULL);
    }
    nx_resp_header(req, "Cache-Control", "no-store");
    if (strcmp(why, "used") == 0)
        return nx_err_set(err, NX_EUNAUTHORIZED, "This sign-in link was already used: ask "
                                                 "for a new one (nexusapi login-link EMAIL).");
    if (strcmp(why, "expired") == 0)
        return nx_err_set(err, NX_EUNAUTHORIZED, "This sign-in link has expired: ask for a "
                                                 "new one (nexusapi login-link EMAIL).");
    return nx_err_set(err, NX_EUNAUTHORIZED, "This sign-in link is not valid: check that it "
                                             "was copied whole.");
}

int nx_api_auth_link(nx_req_t *req, nx_err_t *err)
{
    const char *token = nx_req_query(req, "token");
    char digest[NX_SHA256_HEX_LEN + 1];
    if (!token_shape_ok(token))
        return refuse(req, "invalid", err);
    if (nx_sha256_hex(token, strlen(token), digest) != NX_OK)
        return nx_err_set(err, NX_EINTERNAL, NULL);
    nx_db_t *db = nx_db_thread(err);
    if (!db)
        return err->code;
    const char *params[] = {digest};
    nx_res_t *r;
    int rc = nx_db_exec(db, req->arena, &st_consume, params, &r, err);
    if (rc != NX_OK)
        return rc;
    const char *status = nx_res_rows(r) == 1 ? nx_res_get(r, 0, 0) : "unknown";
    if (strcmp(status, "ok") != 0)
        return refuse(req, strcmp(status, "unknown") == 0 ? "invalid" : status, err);
    const char *user_id = nx_res_get(r, 0, 1), *org_id = nx_res_get(r, 0, 2);
    const char *role = nx_res_get(r, 0, 3);
    long long ttl = (long long)nx_cfg->jwt_expiration_minutes * 60;
    char *jwt = NULL;
    rc = nx_jwt_mint(req->arena, nx_cfg->jwt_secret, nx_cfg->jwt_algorithm, user_id, org_id,
                     role, ttl, &jwt, err);
    if (rc != NX_OK)
        return rc;
    nx_log(NX_LOG_INFO, "sign-in", NX_LS("request_id", req->request_id),
           NX_LS("user_id", user_id), NX_LS("org_id", org_id), NX_LS("role", role),
           NX_LS("via", "login-link"));
    char *cookie = nx_session_cookie_set(req->arena, jwt, ttl);
    if (!cookie)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return redirect(req, "/", cookie, err);
}
