/*
 * cmd_user.c - `nexusapi user add|list`: operator verbs for users.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * The organisation (given by domain or id) is resolved as the owner. `user
 * add` inserts as the owner with the organisation_id explicit; `user list`
 * goes through the same door as request code: a tenant transaction on a
 * nexus_app connection, so row-level security and the explicit filter both
 * stand between one organisation and another's users.
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

#define USAGE_ADD "nexusapi user add EMAIL --org DOMAIN|ID --role admin|member [--name NAME]"
#define USAGE_LIST "nexusapi user list --org DOMAIN|ID"
#define USAGE USAGE_ADD " | " USAGE_LIST

static const nx_stmt_t user_add = {
    "cli_user_add",
    "INSERT INTO users (organisation_id, email, name, role) VALUES ($1, $2, $3, $4) "
    "RETURNING id",
    4,
};
static const nx_stmt_t user_list = {
    "cli_user_list",
    "SELECT u.id, u.email, coalesce(u.name, '-'), u.role, nx_ts(u.created_at) "
    "FROM users u WHERE u.organisation_id = $1 ORDER BY u.created_at, u.id",
    1,
};

struct opts {
    char *email;
    const char *org;
    const char *role;
    const char *name;
};

/* One '@', something on both sides, a dot in the domain, no spaces. */
static bool email_ok(char *e)
{
    size_t n = strlen(e);
    char *at = strchr(e, '@');
    if (n > 255 || !at || at == e || strchr(at + 1, '@') || !strchr(at + 1, '.') ||
        at[1] == '.' || e[n - 1] == '.' || !nx_utf8_valid(e, n))
        return false;
    for (char *p = e; *p; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return false;
        *p = (char)tolower((unsigned char)*p);
    }
    return true;
}

static int parse(int argc, char **argv, bool add, struct opts *o)
{
    const char *use = add ? USAGE_ADD : USAGE_LIST;
    memset(o, 0, sizeof(*o));
    for (int i = 2; i < argc; i++) {
        char *a = argv[i];
        const char **slot = strcmp(a, "--org") == 0                ? &o->org
                            : add && strcmp(a, "--role") == 0 ? &o->role
                            : add && strcmp(a, "--name") == 0 ? &o->name
                                                              : NULL;
        if (slot) {
            if (i + 1 >= argc)
                return nx_cli_usage(use, "%s needs a value", a);
            *slot = argv[++i];
        } else if (add && !o->email && a[0] != '-') {
            o->email = a;
        } else {
            return nx_cli_usage(use, "unknown argument \"%s\"", a);
        }
    }
    if (add && !o->email)
        return nx_cli_usage(use, "EMAIL is required");
    if (add && !email_ok(o->email))
        return nx_cli_usage(use, "invalid email address \"%s\"", o->email);
    if (!o->org || !o->org[0])
        return nx_cli_usage(use, "--org is required");
    if (add && !o->role)
        return nx_cli_usage(use, "--role is required");
    if (add && strcmp(o->role, "admin") != 0 && strcmp(o->role, "member") != 0)
        return nx_cli_usage(use, "--role must be \"admin\" or \"member\", not \"%s\"", o->role);
    if (o->name && !(o->name = nx_cli_name((char *)o->name))) /* into argv */
        return nx_cli_usage(use, "--name must be 1 to 255 characters of UTF-8, not all blank");
    return NX_EXIT_OK;
}

static int do_add(nx_cli_session_t *cs, const struct opts *o, const char *org_id)
{
    nx_err_t err = {0};
    nx_res_t *res;
    const char *p[] = {org_id, o->email, o->name, o->role};
    if (nx_db_exec(cs->owner, cs->arena, &user_add, p, &res, &err) != NX_OK) {
        if (err.code == NX_ECONFLICT)
            return nx_cli_fail("user \"%s\" already exists in organisation \"%s\"", o->email,
                               o->org);
        return nx_cli_fail_err(&err);
    }
    printf("%s\n", nx_res_get(res, 0, 0));
    return NX_EXIT_OK;
}

/* Lists through a tenant transaction on its own nexus_app connection. */
static int do_list(nx_cli_session_t *cs, const char *org_id)
{
    nx_err_t err = {0};
    nx_db_t *app = NULL;
    if (nx_db_target_connect(&cs->target, NX_DB_APP, &app, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    nx_tx_t *tx = nx_tx_new(app, cs->arena, org_id, NULL, NX_TX_NONE);
    const char *p[] = {org_id};
    int idx = tx ? nx_tx_add(tx, &user_list, p) : -1;
    int rc = NX_EXIT_OK;
    if (idx < 0) {
        rc = nx_cli_fail("out of memory");
    } else if (nx_tx_run(tx, &err) != NX_OK) {
        rc = nx_cli_fail_err(&err);
    } else {
        static const char *const heads[] = {"id", "email", "name", "role", "created_at"};
        nx_cli_print_table(nx_tx_res(tx, idx), heads, (int)NX_ARRAY_LEN(heads));
    }
    nx_db_free(app);
    return rc;
}

static int run(nx_settings_t *s, const struct opts *o, bool add)
{
    nx_cli_session_t cs;
    int rc = nx_cli_session_open(&cs, s);
    if (rc != NX_EXIT_OK)
        return rc;
    const char *org_id = nx_cli_find_org(&cs, o->org, &rc);
    if (org_id)
        rc = add ? do_add(&cs, o, org_id) : do_list(&cs, org_id);
    nx_cli_session_close(&cs);
    return rc;
}

int cmd_user(int argc, char **argv, nx_settings_t *s)
{
    if (argc < 2)
        return nx_cli_usage(USAGE, "missing subcommand");
    bool add = strcmp(argv[1], "add") == 0;
    if (!add && strcmp(argv[1], "list") != 0)
        return nx_cli_usage(USAGE, "unknown subcommand \"%s\"", argv[1]);
    struct opts o;
    int rc = parse(argc, argv, add, &o);
    if (rc != NX_EXIT_OK)
        return rc;
    return run(s, &o, add);
}
