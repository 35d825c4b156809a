/*
 * cmd_login_link.c - `nexusapi login-link EMAIL [--minutes N] [--org ORG]`:
 * prints a one-time sign-in URL for an existing user, PUBLIC_URL +
 * /auth/link?token=... (api/login_link.c spends it). The way into the
 * dashboard without Google, and for the first admin of a fresh install.
 *
 * The token is 32 bytes from the CSPRNG (base64url); the database keeps
 * only its SHA-256 (login_links, migration 0014), with the user, the
 * organisation and the expiry. Runs as the owner, like the other operator
 * verbs, so it works with the embedded and an external database alike.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "auth/auth.h"
#include "auth/digest.h"
#include "config/settings.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <stdio.h>
#include <string.h>

#define USAGE "nexusapi login-link EMAIL [--minutes N] [--org DOMAIN|ID]"
#define DEFAULT_MINUTES 15
#define MAX_MINUTES 1440

static const nx_stmt_t st_insert = {
    "cli_login_link_insert",
    "INSERT INTO login_links (organisation_id, token_sha256, user_id, expires_at) "
    "VALUES ($1, $2, $3, now() + make_interval(mins => $4::int)) "
    "RETURNING to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
    4,
};

/* Records a new link for the user and prints its URL. */
static int create(nx_cli_session_t *cs, const nx_settings_t *s, const char *email,
                  const char *org, long long minutes)
{
    nx_err_t err = {0};
    nx_cli_user_t u;
    int rc = nx_cli_find_user(cs, email, org, &u);
    if (rc != NX_EXIT_OK)
        return rc;
    char token[48], digest[NX_SHA256_HEX_LEN + 1], mins[24];
    if (nx_pkce_random(token, sizeof(token), 32) != NX_OK ||
        nx_sha256_hex(token, strlen(token), digest) != NX_OK)
        return nx_cli_fail("could not make a random token");
    snprintf(mins, sizeof(mins), "%lld", minutes);
    const char *params[] = {u.org_id, digest, u.id, mins};
    nx_res_t *r;
    if (nx_db_exec(cs->owner, cs->arena, &st_insert, params, &r, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    size_t n = strlen(s->public_url);
    while (n > 0 && s->public_url[n - 1] == '/')
        n--;
    printf("%.*s/auth/link?token=%s\n", (int)n, s->public_url, token);
    fprintf(stderr, "nexusapi: this link signs %s in once, until %s UTC\n", email,
            nx_res_get(r, 0, 0));
    return NX_EXIT_OK;
}

int cmd_login_link(int argc, char **argv, nx_settings_t *s)
{
    const char *email = NULL, *org = NULL;
    long long minutes = DEFAULT_MINUTES;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--minutes") == 0 || strcmp(a, "--org") == 0) {
            if (i + 1 >= argc)
                return nx_cli_usage(USAGE, "%s needs a value", a);
            const char *v = argv[++i];
            if (a[2] == 'o')
                org = v;
            else if (nx_parse_int(v, 1, MAX_MINUTES, &minutes) != NX_OK)
                return nx_cli_usage(USAGE, "--minutes must be an integer from 1 to %d",
                                    MAX_MINUTES);
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("usage: %s\n\nPrints a URL that signs the user in to the dashboard once, "
                   "within N minutes (default %d).\n",
                   USAGE, DEFAULT_MINUTES);
            return NX_EXIT_OK;
        } else if (a[0] == '-' || email) {
            return nx_cli_usage(USAGE, "unexpected argument \"%s\"", a);
        } else {
            email = a;
        }
    }
    if (!email || !strchr(email, '@'))
        return nx_cli_usage(USAGE, "EMAIL is required");

    nx_cli_session_t cs;
    int rc = nx_cli_session_open(&cs, s);
    if (rc != NX_EXIT_OK)
        return rc;
    rc = create(&cs, s, email, org, minutes);
    nx_cli_session_close(&cs);
    return rc;
}
