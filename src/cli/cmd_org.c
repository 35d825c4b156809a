/*
 * cmd_org.c - `nexusapi org create|list`: operator verbs for organisations.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 * (Operator verbs run as the database owner, whose operator_access policy
 * sees every organisation on purpose: listing all of them is the point.)
 *
 * `org create` inserts the organisation and its org_credits row (balance 0)
 * in one statement and prints the new id.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define USAGE "nexusapi org create --name NAME [--domain DOMAIN] | nexusapi org list"
#define USAGE_CREATE "nexusapi org create --name NAME [--domain DOMAIN]"
#define USAGE_LIST "nexusapi org list"

/* The one place that creates organisations (migration 0009), with no
 * opening credits: the operator grants them with `credits grant`. */
static const nx_stmt_t org_create = {
    "cli_org_create", "SELECT (nx_org_create($1, $2, 0, NULL)).id", 2};

static const nx_stmt_t org_list = {
    "cli_org_list",
    "SELECT o.id, o.name, coalesce(o.domain, '-'), "
    "       CASE WHEN o.auto_join THEN 'yes' ELSE 'no' END, "
    "       (SELECT count(*) FROM users u WHERE u.organisation_id = o.id), "
    "       coalesce((SELECT c.balance FROM org_credits c WHERE c.organisation_id = o.id), 0), "
    "       nx_ts(o.created_at) "
    "FROM organisations o ORDER BY o.created_at, o.id",
    0,
};

/* A domain as stored: lower-case letters, digits, dots and hyphens, with a dot. */
static bool domain_ok(char *d)
{
    size_t n = strlen(d);
    if (n < 3 || n > 255 || !strchr(d, '.') || d[0] == '.' || d[n - 1] == '.')
        return false;
    for (char *p = d; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
            return false;
    }
    return true;
}

static int run_create(nx_db_t *db, nx_arena_t *a, const char *name, const char *domain)
{
    nx_err_t err = {0};
    nx_res_t *r;
    const char *p[] = {name, domain};
    if (nx_db_exec(db, a, &org_create, p, &r, &err) != NX_OK) {
        if (err.code == NX_ECONFLICT && domain)
            return nx_cli_fail("an organisation with domain \"%s\" already exists", domain);
        return nx_cli_fail_err(&err);
    }
    printf("%s\n", nx_res_get(r, 0, 0));
    return NX_EXIT_OK;
}

static int run_list(nx_db_t *db, nx_arena_t *a)
{
    nx_err_t err = {0};
    nx_res_t *r;
    if (nx_db_exec(db, a, &org_list, NULL, &r, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    static const char *const heads[] = {"id", "name", "domain", "auto_join", "users",
                                        "credits", "created_at"};
    nx_cli_print_table(r, heads, (int)NX_ARRAY_LEN(heads));
    return NX_EXIT_OK;
}

/* Opens the configured database as the owner and runs the verb. */
static int with_owner(nx_settings_t *s, const char *name, const char *domain, bool create)
{
    nx_cli_session_t cs;
    int rc = nx_cli_session_open(&cs, s);
    if (rc != NX_EXIT_OK)
        return rc;
    rc = create ? run_create(cs.owner, cs.arena, name, domain) : run_list(cs.owner, cs.arena);
    nx_cli_session_close(&cs);
    return rc;
}

static int cmd_create(int argc, char **argv, nx_settings_t *s)
{
    char *name = NULL;
    char *domain = NULL;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--name") != 0 && strcmp(opt, "--domain") != 0)
            return nx_cli_usage(USAGE_CREATE, "unknown argument \"%s\"", opt);
        if (i + 1 >= argc)
            return nx_cli_usage(USAGE_CREATE, "%s needs a value", opt);
        if (strcmp(opt, "--name") == 0)
            name = argv[++i];
        else
            domain = argv[++i];
    }
    if (!name)
        return nx_cli_usage(USAGE_CREATE, "--name is required");
    if (!(name = nx_cli_name(name)))
        return nx_cli_usage(USAGE_CREATE, "--name must be 1 to 255 characters of UTF-8, not all blank");
    if (domain && !domain_ok(domain))
        return nx_cli_usage(USAGE_CREATE, "invalid domain \"%s\"", domain);
    return with_owner(s, name, domain, true);
}

int cmd_org(int argc, char **argv, nx_settings_t *s)
{
    if (argc < 2)
        return nx_cli_usage(USAGE, "missing subcommand");
    if (strcmp(argv[1], "create") == 0)
        return cmd_create(argc, argv, s);
    if (strcmp(argv[1], "list") == 0) {
        if (argc > 2)
            return nx_cli_usage(USAGE_LIST, "unknown argument \"%s\"", argv[2]);
        return with_owner(s, NULL, NULL, false);
    }
    return nx_cli_usage(USAGE, "unknown subcommand \"%s\"", argv[1]);
}
