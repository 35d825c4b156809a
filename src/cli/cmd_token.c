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

#include <stdio.h>
#include <string.h>

#define USAGE "nexusapi token EMAIL [--minutes N] [--org DOMAIN|ID]"

/* Finds the user (in org when given) and prints a token for them. */
static int mint(nx_cli_session_t *cs, const nx_settings_t *s, const char *email,
                const char *org, long long minutes)
{
    nx_err_t err = {0};
    nx_cli_user_t u;
    int rc = nx_cli_find_user(cs, email, org, &u);
    if (rc != NX_EXIT_OK)
        return rc;
    char *token = NULL;
    if (nx_jwt_mint(cs->arena, s->jwt_secret, s->jwt_algorithm, u.id, u.org_id, u.role,
                    minutes * 60, &token, &err) != NX_OK)
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
