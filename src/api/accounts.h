/*
 * accounts.h - handlers of sign-in, the caller, their organisation and its
 * users (auth_routes.c, me.c, organisation.c, users.c). Each authenticated
 * handler runs exactly one tenant transaction (nx_api_tx), whose first
 * statement re-checks the caller's membership and role.
 */
#ifndef NX_API_ACCOUNTS_H
#define NX_API_ACCOUNTS_H

#include "core/nx.h"
#include "http/http.h"

/* GET /auth/google/login, GET /auth/google/callback, POST /auth/google/token,
 * POST /auth/logout. 503 (NX_ENOTCONFIGURED) without the Google settings. */
int nx_api_auth_login(nx_req_t *req, nx_err_t *err);
int nx_api_auth_callback(nx_req_t *req, nx_err_t *err);
int nx_api_auth_token(nx_req_t *req, nx_err_t *err);
int nx_api_auth_logout(nx_req_t *req, nx_err_t *err);
/* GET /auth/link?token=...: spends a one-time sign-in link (login_link.c);
 * 302 to / with the session cookie, or a 401 (a browser: 302 to /?link=why). */
int nx_api_auth_link(nx_req_t *req, nx_err_t *err);

/* GET /api/v1/me */
int nx_api_me_get(nx_req_t *req, nx_err_t *err);

/* GET and PATCH (admin) /api/v1/organisation */
int nx_api_organisation_get(nx_req_t *req, nx_err_t *err);
int nx_api_organisation_patch(nx_req_t *req, nx_err_t *err);

/* GET /api/v1/users, GET /api/v1/users/{id}, PATCH and DELETE (admin). */
int nx_api_users_list(nx_req_t *req, nx_err_t *err);
int nx_api_users_get(nx_req_t *req, nx_err_t *err);
int nx_api_users_patch(nx_req_t *req, nx_err_t *err);
int nx_api_users_delete(nx_req_t *req, nx_err_t *err);

#endif
