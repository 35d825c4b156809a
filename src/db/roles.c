/*
 * roles.c - refuses a runtime role that row-level security would not bind.
 *
 * The runtime logs in as nexus_app (or the owner, then SET ROLE nexus_app),
 * the workers likewise as nexus_worker, and every tenant table's policies
 * do the rest. A misconfigured APP_DATABASE_URL or WORKER_DATABASE_URL -
 * the superuser, the owner, a role with BYPASSRLS - would silently lift
 * that boundary, so the role each one really acts as (current_user, after
 * the SET ROLE) is checked once at start-up. Owning a table here includes
 * holding its owner's rights through membership: either can switch off
 * row-level security on it.
 *
 * The same connection tells whether a pooler sits in between
 * (nx_db_pooled): one in transaction mode with DATABASE_POOL_MODE left at
 * session breaks every named statement, so that earns a warning (a pooler
 * in session mode is fine, hence not a refusal).
 */
#include "core/nx.h"
#include "db/roles.h"
#include "db/db.h"
#include "db/db_int.h"
#include "core/err.h"
#include "core/log.h"

#include <string.h>

static const char check_sql[] =
    "SELECT r.rolname, r.rolsuper, r.rolbypassrls,"
    " (SELECT c.relname FROM pg_catalog.pg_class c"
    "  WHERE c.relrowsecurity AND c.relkind IN ('r', 'p')"
    "  AND pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE')"
    "  ORDER BY c.relname LIMIT 1)"
    " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/* Sets err from the one row of check_sql when the role may not run. */
static int judge(const PGresult *r, const char *setting, const char *want, nx_err_t *err)
{
    const char *role = PQgetvalue(r, 0, 0);
    const char *why = strcmp(PQgetvalue(r, 0, 1), "t") == 0   ? "is a superuser"
                      : strcmp(PQgetvalue(r, 0, 2), "t") == 0 ? "has BYPASSRLS"
                                                              : NULL;
    if (why)
        return nx_err_set(err, NX_EINVAL,
                          "%s: the role \"%s\" %s, which row-level security does not bind; "
                          "log in as %s or a role granted it",
                          setting, role, why, want);
    if (!PQgetisnull(r, 0, 3))
        return nx_err_set(err, NX_EINVAL,
                          "%s: the role \"%s\" owns the table \"%s\", which row-level "
                          "security does not bind; log in as %s or a role granted it",
                          setting, role, PQgetvalue(r, 0, 3), want);
    return NX_OK;
}

static void warn_if_pooled(nx_db_t *db, const char *setting)
{
    nx_err_t ignored = {0};
    if (nx_db_pooled(db, &ignored) == 1)
        nx_log(NX_LOG_WARN,
               "the runtime connection goes through a connection pooler; with PgBouncer in "
               "transaction mode set DATABASE_POOL_MODE=transaction",
               NX_LS("setting", setting));
}

static int check_one(const nx_db_target_t *t, int who, nx_err_t *err)
{
    const char *setting = who == NX_DB_APP ? "APP_DATABASE_URL" : "WORKER_DATABASE_URL";
    nx_db_t *db;
    if (nx_db_target_connect(t, who, &db, err) != NX_OK)
        return err->code;
    PGresult *r = PQexec(db->pg, check_sql);
    int rc;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        rc = judge(r, setting, who == NX_DB_APP ? "nexus_app" : "nexus_worker", err);
    else
        rc = nx_db_fail(db, "runtime role check", r, err);
    PQclear(r);
    if (rc == NX_OK && !t->pooled)
        warn_if_pooled(db, setting);
    nx_db_free(db);
    return rc;
}

int nx_db_check_roles(const nx_db_target_t *t, bool app, bool worker, nx_err_t *err)
{
    if (app && check_one(t, NX_DB_APP, err) != NX_OK)
        return err->code;
    if (worker && check_one(t, NX_DB_WORKER, err) != NX_OK)
        return err->code;
    return NX_OK;
}
