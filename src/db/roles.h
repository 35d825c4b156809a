/*
 * roles.h - the start-up check of the roles the runtime acts as.
 *
 * Row-level security is the tenant boundary, and it does not bind a
 * superuser, a role with BYPASSRLS, or the owner of a table (nor a role
 * holding the owner's rights): `serve` and `worker` refuse to run as one.
 */
#ifndef NX_DB_ROLES_H
#define NX_DB_ROLES_H

#include "core/nx.h"
#include "db/target.h"

/*
 * Connects as the HTTP runtime (app) and/or the job workers (worker) of t
 * would - after any SET ROLE - and checks the role they act as. NX_EINVAL
 * with a one-line detail naming APP_DATABASE_URL or WORKER_DATABASE_URL
 * when it is a superuser, has BYPASSRLS or owns a table under row-level
 * security; NX_EUNAVAILABLE when it cannot connect.
 */
int nx_db_check_roles(const nx_db_target_t *t, bool app, bool worker, nx_err_t *err);

#endif
