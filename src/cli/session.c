/*
 * session.c - the setup and teardown every operator verb repeated: resolve
 * the database target (starting the embedded cluster if need be), check that
 * its schema is the one these verbs were built for (they never migrate it),
 * create the run's arena, connect as the owner; and, on the way out, release
 * all three.
 *
 * Also owns what those verbs do alike once connected: finding an
 * organisation from its id or domain, a user from their email, and printing
 * a result as a table.
 * Organisation lookups run as the owner, whose operator_access policy sees
 * every organisation; each statement names exactly one.
 */
#include "core/nx.h"
#include "cli/session.h"
#include "cli/cli.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"
#include "db/migrate.h"

#include <stdio.h>
#include <string.h>

static const nx_stmt_t org_by_id = {
    "cli_org_by_id", "SELECT o.id FROM organisations o WHERE o.id = $1", 1};
static const nx_stmt_t org_by_domain = {
    "cli_org_by_domain", "SELECT o.id FROM organisations o WHERE o.domain = lower($1)", 1};

static const nx_stmt_t user_by_email = {
    "cli_user_by_email",
    "SELECT u.id, u.organisation_id, u.role, coalesce(o.domain, o.name) "
    "FROM users u JOIN organisations o ON o.id = u.organisation_id "
    "WHERE lower(u.email) = lower($1) "
    "AND ($2::uuid IS NULL OR o.id = $2::uuid) "
    "ORDER BY u.created_at, u.id LIMIT 20",
    2,
};

int nx_cli_session_open(nx_cli_session_t *cs, nx_settings_t *s)
{
    nx_err_t err = {0};
    int rc = NX_EXIT_OK;
    memset(cs, 0, sizeof(*cs));
    if (nx_db_target_open(&cs->target, s, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    cs->arena = nx_arena_new(8192);
    if (nx_migrate_require_head(cs->target.owner_conninfo, &err) != NX_OK)
        rc = nx_cli_fail_err(&err);
    else if (!cs->arena)
        rc = nx_cli_fail("out of memory");
    else if (nx_db_connect(&cs->owner, cs->target.owner_conninfo, NULL, &err) != NX_OK)
        rc = nx_cli_fail_err(&err);
    if (rc != NX_EXIT_OK)
        nx_cli_session_close(cs);
    return rc;
}

void nx_cli_session_close(nx_cli_session_t *cs)
{
    if (cs->arena)
        nx_arena_free(cs->arena);
    cs->arena = NULL;
    nx_db_free(cs->owner);
    cs->owner = NULL;
    nx_db_target_close(&cs->target);
}

int nx_cli_lookup_org(nx_cli_session_t *cs, const char *org, const char **id)
{
    nx_err_t err = {0};
    nx_res_t *res;
    const char *p[] = {org};
    const nx_stmt_t *st = nx_uuid_valid(org) ? &org_by_id : &org_by_domain;
    *id = NULL;
    if (nx_db_exec(cs->owner, cs->arena, st, p, &res, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    if (nx_res_rows(res) == 1)
        *id = nx_res_get(res, 0, 0);
    return NX_EXIT_OK;
}

const char *nx_cli_find_org(nx_cli_session_t *cs, const char *org, int *exit_status)
{
    const char *id;
    int rc = nx_cli_lookup_org(cs, org, &id);
    if (rc == NX_EXIT_OK && !id)
        rc = nx_cli_fail("organisation \"%s\" not found", org);
    if (rc != NX_EXIT_OK)
        *exit_status = rc;
    return rc == NX_EXIT_OK ? id : NULL;
}

int nx_cli_find_user(nx_cli_session_t *cs, const char *email, const char *org,
                     nx_cli_user_t *u)
{
    nx_err_t err = {0};
    const char *org_id = NULL;
    int rc = org ? nx_cli_lookup_org(cs, org, &org_id) : NX_EXIT_OK;
    if (rc != NX_EXIT_OK)
        return rc;
    const char *params[] = {email, org_id};
    nx_res_t *r = NULL;
    if ((!org || org_id) &&
        nx_db_exec(cs->owner, cs->arena, &user_by_email, params, &r, &err) != NX_OK)
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
    u->id = nx_res_get(r, 0, 0);
    u->org_id = nx_res_get(r, 0, 1);
    u->role = nx_res_get(r, 0, 2);
    return NX_EXIT_OK;
}

void nx_cli_print_table(const nx_res_t *r, const char *const *heads, int ncols)
{
    int w[16] = {0};
    if (ncols > 16)
        ncols = 16;
    for (int c = 0; c < ncols; c++) {
        w[c] = (int)strlen(heads[c]);
        for (int row = 0; row < nx_res_rows(r); row++)
            if (nx_res_len(r, row, c) > w[c])
                w[c] = nx_res_len(r, row, c);
    }
    for (int c = 0; c < ncols; c++)
        printf("%-*s%s", c + 1 < ncols ? w[c] : 0, heads[c], c + 1 < ncols ? "  " : "\n");
    for (int row = 0; row < nx_res_rows(r); row++)
        for (int c = 0; c < ncols; c++)
            printf("%-*s%s", c + 1 < ncols ? w[c] : 0, nx_res_get(r, row, c),
                   c + 1 < ncols ? "  " : "\n");
}
