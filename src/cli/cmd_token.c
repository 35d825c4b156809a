/*
 * cmd_token.c - `nexusapi token EMAIL [--minutes N] [--org DOMAIN|ID]`:
 * prints an access token for an existing user, signed exactly as sign-in
 * signs them (JWT_SECRET_KEY, JWT_ALGORITHM). The way in without Google:
 * `org create`, `user add`, then this.
 *
 * Runs as the database owner (operator_access sees every organisation): an
 * email is unique within an organisation, not across them, so an email in
 * several organisations needs --org.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "auth/auth.h"
#include "config/settings.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <stdio.h>
#include <string.h>

#define USAGE "nexusapi token EMAIL [--minutes N] [--org DOMAIN|ID]"

static const nx_stmt_t st_find = {
    "cli_token_find",
    "SELECT u.id, u.organisation_id, u.role, coalesce(o.domain, o.name) "
    "FROM users u JOIN organisations o ON o.id = u.organisation_id "
    "WHERE lower(u.email) = lower($1) "
    "AND ($2::uuid IS NULL OR o.id = $2::uuid) "
    "ORDER BY u.created_at, u.id LIMIT 20",
    2,
};

/* Finds the user (in org when given) and prints a token for them. */
static int mint(nx_cli_session_t *cs, const nx_settings_t *s, const char *email,
                const char *org, long long minutes)
{
    nx_err_t err = {0};
    const char *org_id = NULL;
    int rc = org ? nx_cli_lookup_org(cs, org, &org_id) : NX_EXIT_OK;
    if (rc != NX_EXIT_OK)
        return rc;
    const char *params[] = {email, org_id};
    nx_res_t *r = NULL;
    if ((!org || org_id) &&
        nx_db_exec(cs->owner, cs->arena, &st_find, params, &r, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    int n = nx_res_rows(r); /* 0 as well when ORG names no organisation */
    if (n == 0)
        return nx_cli_fail(org ? "no user \"%s\" in organisation \"%s\""
                               : "no user \"%s\"%s; add one with \"nexusapi user add\"",
                           email, org ? org : "");
    if (n > 1) {
        fprintf(stderr, "nexusapi: \"%s\" is a user of %d organisations; choose one with --org:\n",
                email, n);
        for (int i = 0; i < n; i++)
            fprintf(stderr, "  --org %s  (%s)\n", nx_res_get(r, i, 1), nx_res_get(r, i, 3));
        return NX_EXIT_USAGE;
    }
    char *token = NULL;
    if (nx_jwt_mint(cs->arena, s->jwt_secret, s->jwt_algorithm, nx_res_get(r, 0, 0),
                    nx_res_get(r, 0, 1), nx_res_get(r, 0, 2), minutes * 60, &token,
                    &err) != NX_OK)
        return nx_cli_fail_err(&err);
    printf("%s\n", token);
    return NX_EXIT_OK;
}

int cmd_token(int argc, char **argv, nx_settings_t *s)
{
    const char *email = NULL, *org = NULL;
    long long minutes = s->jwt_expiration_minutes;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--minutes") == 0 || strcmp(a, "--org") == 0) {
            if (i + 1 >= argc)
                return nx_cli_usage(USAGE, "%s needs a value", a);
            const char *v = argv[++i];
            if (a[2] == 'o')
                org = v;
            else if (nx_parse_int(v, 1, 525600, &minutes) != NX_OK)
                return nx_cli_usage(USAGE, "--minutes must be an integer from 1 to 525600");
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("usage: %s\n", USAGE);
            return NX_EXIT_OK;
        } else if (a[0] == '-' || email) {
            return nx_cli_usage(USAGE, "unexpected argument \"%s\"", a);
        } else {
            email = a;
        }
    }
    if (!email || !strchr(email, '@'))
        return nx_cli_usage(USAGE, "EMAIL is required");

    nx_err_t err = {0};
    if (nx_settings_finish_secret(s, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    nx_cli_session_t cs;
    int rc = nx_cli_session_open(&cs, s);
    if (rc != NX_EXIT_OK)
        return rc;
    rc = mint(&cs, s, email, org, minutes);
    nx_cli_session_close(&cs);
    return rc;
}
