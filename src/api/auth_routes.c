/*
 * auth_routes.c - Google sign-in over HTTP (api.md "Google sign-in").
 *
 *   GET  /auth/google/login     302 to the provider; signed nexus_login cookie
 *   GET  /auth/google/callback  state check (cookie + once, in the database),
 *                               iss (RFC 9207), code exchange, ID token
 *                               (and userinfo), sign-in, session cookie; or
 *                               the provider's error, named
 *   POST /auth/google/token     {"id_token"}: same sign-in for native clients
 *   POST /auth/logout           clears the session cookie, 204
 *
 * Everything that may wait on the provider (discovery, JWKS, the code
 * exchange) runs under nx_req_offload, so a slow provider never stalls the
 * other connections of a pool thread. The sign-in itself is one call of the
 * SECURITY DEFINER function nx_sign_in (migration 0003).
 */
#include "core/nx.h"
#include "api/accounts.h"
#include "auth/auth.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "db/db.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const nx_stmt_t st_sign_in = {
    "auth_sign_in",
    "SELECT status, user_id, organisation_id, role, body "
    "FROM nx_sign_in($1, $2, $3, $4, $5, $6::int)",
    6,
};

static const nx_stmt_t st_consume = {
    "auth_login_state_consume",
    "SELECT nx_login_state_consume($1, to_timestamp($2::bigint))",
    2,
};

/* What an offloaded sign-in needs, copied before the connection suspends. */
struct flow {
    nx_login_state_t ls;
    const char *code;     /* callback: the authorization code */
    const char *iss;      /* callback: RFC 9207 iss, NULL when absent */
    const char *error;    /* callback: the provider's error code, and its */
    const char *error_description; /* description (NULL when unusable) */
    const char *id_token; /* token: the client's ID token */
    bool html;            /* callback asked for HTML: redirect to / */
};

static int not_configured(nx_err_t *err)
{
    const char *missing = nx_oidc_missing_settings();
    if (!missing)
        return NX_OK;
    return nx_err_set(err, NX_ENOTCONFIGURED,
                      "Google sign-in is not configured on this server: set %s.", missing);
}

static void no_store(nx_req_t *req)
{
    nx_resp_header(req, "Cache-Control", "no-store");
}

/* ---- login --------------------------------------------------------------- */

static int login_work(nx_req_t *req, void *ud, nx_err_t *err)
{
    nx_login_state_t ls;
    char *cookie = NULL, *url = NULL;
    int rc = nx_login_state_new(req->arena, nx_cfg->jwt_secret, &ls, &cookie, err);
    if (rc == NX_OK)
        rc = nx_oidc_auth_url(req->arena, &ls, &url, err);
    if (rc != NX_OK)
        return rc;
    if (nx_resp_header(req, "Location", url) != NX_OK ||
        nx_resp_header(req, "Set-Cookie", cookie) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    no_store(req);
    return nx_resp_send(req, 302, "text/plain; charset=utf-8", "", 0);
}

int nx_api_auth_login(nx_req_t *req, nx_err_t *err)
{
    int rc = not_configured(err);
    if (rc != NX_OK)
        return rc;
    return nx_req_offload(req, login_work, NULL);
}

/* ---- the sign-in shared by callback and token ----------------------------- */

static int sign_in(nx_req_t *req, const nx_google_id_t *id, const struct flow *f,
                   bool browser, nx_err_t *err)
{
    nx_db_t *db = nx_db_thread(err);
    if (!db)
        return err->code;
    char credits[24];
    snprintf(credits, sizeof(credits), "%d", nx_cfg->signup_credits);
    const char *params[] = {id->sub, id->email, id->name, id->picture, id->hd, credits};
    nx_res_t *r;
    int rc = nx_db_exec(db, req->arena, &st_sign_in, params, &r, err);
    const char *constraint = nx_db_constraint(db);
    if (rc == NX_ECONFLICT && constraint &&
        strcmp(constraint, "users_organisation_id_email_key") == 0) {
        /* Rule 1: identity is the sub, never the email alone, so a second
         * Google account with a member's address (an account deleted and
         * re-created, say) is not merged into that member. */
        snprintf(err->detail, sizeof(err->detail),
                 "The organisation of this Google Workspace domain already has a user with "
                 "this email address, linked to another Google account. An admin must remove "
                 "that user before this account can join.");
        return rc;
    }
    if (rc != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_EINTERNAL, NULL);
    if (strcmp(nx_res_get(r, 0, 0), "ok") != 0)
        return nx_err_set(err, NX_EFORBIDDEN,
                          "The organisation of the domain \"%s\" does not accept sign-ups by "
                          "domain (auto_join is off): ask one of its admins to add you.",
                          id->hd ? id->hd : "");
    const char *user_id = nx_res_get(r, 0, 1), *org_id = nx_res_get(r, 0, 2);
    const char *role = nx_res_get(r, 0, 3), *body = nx_res_get(r, 0, 4);
    long long ttl = (long long)nx_cfg->jwt_expiration_minutes * 60;
    char *token = NULL;
    rc = nx_jwt_mint(req->arena, nx_cfg->jwt_secret, nx_cfg->jwt_algorithm, user_id, org_id, role,
                     ttl, &token, err);
    if (rc != NX_OK)
        return rc;
    nx_log(NX_LOG_INFO, "sign-in", NX_LS("request_id", req->request_id),
           NX_LS("user_id", user_id), NX_LS("org_id", org_id), NX_LS("role", role));
    char *resp = nx_arena_sprintf(req->arena,
                                  "{\"access_token\": \"%s\", \"token_type\": \"Bearer\", "
                                  "\"expires_in\": %lld, %s",
                                  token, ttl, body + 1);
    if (!resp)
        return nx_err_set(err, NX_ENOMEM, NULL);
    no_store(req);
    if (browser) {
        char *session = nx_session_cookie_set(req->arena, token, ttl);
        char *clear = nx_login_cookie_clear(req->arena);
        if (!session || !clear || nx_resp_header(req, "Set-Cookie", session) != NX_OK ||
            nx_resp_header(req, "Set-Cookie", clear) != NX_OK)
            return nx_err_set(err, NX_ENOMEM, NULL);
        if (f && f->html) {
            if (nx_resp_header(req, "Location", "/") != NX_OK)
                return nx_err_set(err, NX_ENOMEM, NULL);
            return nx_resp_send(req, 302, "text/plain; charset=utf-8", "", 0);
        }
    }
    return nx_resp_json(req, 200, resp, strlen(resp));
}

/* ---- callback ------------------------------------------------------------ */

static int callback_work(nx_req_t *req, void *ud, nx_err_t *err)
{
    struct flow *f = ud;
    char *id_token = NULL, *access_token = NULL;
    nx_google_id_t id;
    int rc = nx_oidc_check_iss(req->arena, f->iss, err);
    if (rc == NX_OK)
        rc = nx_oidc_exchange(req->arena, f->code, f->ls.verifier, &id_token, &access_token,
                              err);
    if (rc == NX_OK)
        rc = nx_jwks_verify_id_token(req->arena, id_token, f->ls.nonce, access_token, &id, err);
    if (rc == NX_OK)
        rc = sign_in(req, &id, f, true, err);
    return rc;
}

/* An error response (RFC 6749 4.1.2.1): the user cancelled (access_denied),
 * the provider is down (503), or it refused the request. Its iss is checked
 * first, so another provider cannot put words in this one's mouth. */
static int provider_error_work(nx_req_t *req, void *ud, nx_err_t *err)
{
    struct flow *f = ud;
    int rc = nx_oidc_check_iss(req->arena, f->iss, err);
    if (rc != NX_OK)
        return rc;
    const char *e = f->error, *d = f->error_description;
    const char *sep = d ? ": " : "";
    d = d ? d : "";
    if (strcmp(e, "access_denied") == 0)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The sign-in was cancelled or refused at the "
                                                 "provider (access_denied%s%s).", sep, d);
    if (strcmp(e, "temporarily_unavailable") == 0 || strcmp(e, "server_error") == 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "The sign-in provider could not complete the "
                                                "sign-in (%s%s%s): try again later.", e, sep, d);
    return nx_err_set(err, NX_EUNAUTHORIZED, "The sign-in provider did not complete the "
                                             "sign-in (%s%s%s).", e, sep, d);
}

/* A copy of an error or error_description if it keeps to RFC 6749's
 * characters (printable ASCII but quote and backslash) and max bytes; else
 * NULL. */
static const char *provider_text(nx_arena_t *arena, const char *s, size_t max)
{
    if (!s || !*s || strlen(s) > max)
        return NULL;
    for (const char *p = s; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            return NULL;
    return nx_arena_strdup(arena, s);
}

/* The login cookie, signed with the current secret or, during a
 * rotation's grace period, the previous one (a sign-in begun just before
 * the rotation still completes). */
static int parse_login_cookie(nx_req_t *req, struct flow *f, nx_err_t *err)
{
    const char *cookie = nx_req_cookie(req, NX_LOGIN_COOKIE);
    const char *previous = nx_settings_previous_secret(nx_cfg, (long long)time(NULL));
    nx_err_t first = {0}, second = {0};
    int rc = nx_login_state_parse(nx_cfg->jwt_secret, cookie, 0, &f->ls, &first);
    if (rc == NX_OK ||
        (previous && nx_login_state_parse(previous, cookie, 0, &f->ls, &second) == NX_OK))
        return NX_OK;
    return nx_err_set(err, rc, "%s", first.detail); /* what the current secret found */
}

/* The state in the query must be the one in this browser's signed cookie,
 * and never seen before (recorded in the database, so across all nodes). */
static int check_state(nx_req_t *req, struct flow *f, const char *state, nx_err_t *err)
{
    int rc = parse_login_cookie(req, f, err);
    if (rc != NX_OK)
        return rc;
    if (!nx_login_state_match(&f->ls, state))
        return nx_err_set(err, NX_EUNAUTHORIZED,
                          "The sign-in state does not match this browser's sign-in attempt.");
    nx_db_t *db = nx_db_thread(err);
    if (!db)
        return err->code;
    char exp[24];
    snprintf(exp, sizeof(exp), "%lld", f->ls.expires);
    const char *params[] = {f->ls.state, exp};
    nx_res_t *r;
    if ((rc = nx_db_exec(db, req->arena, &st_consume, params, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1 || strcmp(nx_res_get(r, 0, 0), "t") != 0)
        return nx_err_set(err, NX_EUNAUTHORIZED,
                          "This sign-in attempt was already used: start again at "
                          "/auth/google/login.");
    return NX_OK;
}

int nx_api_auth_callback(nx_req_t *req, nx_err_t *err)
{
    /* the URL carries the code and state: whatever the answer, the page it
     * leads to must not pass them on as a Referer (RFC 9700 4.2.4) */
    if (nx_resp_header_static(req, "Referrer-Policy", "no-referrer") != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = not_configured(err);
    if (rc != NX_OK)
        return rc;
    const char *error = nx_req_query(req, "error"), *iss = nx_req_query(req, "iss");
    const char *code = nx_req_query(req, "code"), *state = nx_req_query(req, "state");
    if (iss && (!*iss || strlen(iss) > 512))
        return nx_err_set(err, NX_EINVAL, "The callback's iss parameter is empty or too long.");
    struct flow *f = nx_arena_calloc(req->arena, sizeof(*f));
    if (!f || (iss && !(f->iss = nx_arena_strdup(req->arena, iss))))
        return nx_err_set(err, NX_ENOMEM, NULL);
    if (error) {
        f->error = provider_text(req->arena, error, 64);
        f->error_description =
            provider_text(req->arena, nx_req_query(req, "error_description"), 160);
        if (!f->error)
            f->error = "an unrecognised error";
        return nx_req_offload(req, provider_error_work, f);
    }
    if (!code || !*code || !state || !*state || strlen(code) > 2048 || strlen(state) > 128)
        return nx_err_set(err, NX_EINVAL, "The callback needs the code and state parameters "
                                          "(or error, when the sign-in was not completed).");
    if (!(f->code = nx_arena_strdup(req->arena, code)))
        return nx_err_set(err, NX_ENOMEM, NULL);
    if ((rc = check_state(req, f, state, err)) != NX_OK)
        return rc;
    const char *accept = nx_req_header(req, "Accept");
    f->html = accept && strstr(accept, "text/html");
    return nx_req_offload(req, callback_work, f);
}

/* ---- token --------------------------------------------------------------- */

static int token_work(nx_req_t *req, void *ud, nx_err_t *err)
{
    struct flow *f = ud;
    nx_google_id_t id;
    int rc = nx_jwks_verify_id_token(req->arena, f->id_token, NULL, NULL, &id, err);
    if (rc == NX_OK)
        rc = sign_in(req, &id, NULL, false, err);
    return rc;
}

int nx_api_auth_token(nx_req_t *req, nx_err_t *err)
{
    int rc = not_configured(err);
    if (rc != NX_OK)
        return rc;
    if (!json_is_object(req->json))
        return nx_err_set(err, NX_EINVAL, "The body must be a JSON object.");
    const char *tok = json_string_value(json_object_get(req->json, "id_token"));
    if (!tok || !*tok) {
        nx_err_field(err, "id_token", "is required: a Google ID token");
        return err->code;
    }
    struct flow *f = nx_arena_calloc(req->arena, sizeof(*f));
    if (!f || !(f->id_token = nx_arena_strdup(req->arena, tok)))
        return nx_err_set(err, NX_ENOMEM, NULL);
    return nx_req_offload(req, token_work, f);
}

/* ---- logout -------------------------------------------------------------- */

/* A cookie-carrying logout is a cookie-authenticated write like any other:
 * another site must not be able to sign the browser out. */
int nx_api_auth_logout(nx_req_t *req, nx_err_t *err)
{
    const char *session = nx_req_cookie(req, nx_session_cookie_name());
    if (session && *session) {
        int rc = nx_auth_check_origin(req, err);
        if (rc != NX_OK)
            return rc;
    }
    char *clear = nx_session_cookie_clear(req->arena);
    if (!clear || nx_resp_header(req, "Set-Cookie", clear) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    no_store(req);
    return nx_resp_send(req, 204, NULL, NULL, 0);
}
