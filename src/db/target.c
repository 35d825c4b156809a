/*
 * target.c - which PostgreSQL this process talks to, and as whom.
 *
 * DATABASE_URL set: the owner is DATABASE_URL; the runtime and the workers
 * log in with APP_DATABASE_URL / WORKER_DATABASE_URL, or else connect as the
 * owner and SET ROLE nexus_app / nexus_worker. Nothing is started. With
 * DATABASE_POOL_MODE=transaction the runtime URLs point at a pooler, where a
 * SET ROLE would stick to whichever server session ran it: the runtime must
 * then log in as its role (nx_db_target_connect says so).
 * DATABASE_URL unset: the embedded cluster (db/cluster.c), where every role
 * logs in directly over the unix socket. Opening never changes the schema:
 * that is for `migrate` and for `serve` (db/migrate_head.c).
 */
#include "core/nx.h"
#include "db/target.h"
#include "config/settings.h"
#include "core/err.h"
#include "db/cluster.h"
#include "db/db.h"

#include <stdio.h>
#include <string.h>

static int copy(char *dst, size_t size, const char *src, const char *what, nx_err_t *err)
{
    if (strlen(src) >= size)
        return nx_err_set(err, NX_EINVAL, "%s: too long", what);
    memcpy(dst, src, strlen(src) + 1);
    return NX_OK;
}

static int open_external(nx_db_target_t *t, const nx_settings_t *s, nx_err_t *err)
{
    const char *app = s->app_database_url;
    const char *worker = s->worker_database_url;
    if (copy(t->owner_conninfo, sizeof(t->owner_conninfo), s->database_url, "DATABASE_URL",
             err) != NX_OK ||
        copy(t->app_conninfo, sizeof(t->app_conninfo), app ? app : s->database_url,
             "APP_DATABASE_URL", err) != NX_OK ||
        copy(t->worker_conninfo, sizeof(t->worker_conninfo), worker ? worker : s->database_url,
             "WORKER_DATABASE_URL", err) != NX_OK)
        return err->code;
    snprintf(t->app_role, sizeof(t->app_role), "%s", app ? "" : "nexus_app");
    snprintf(t->worker_role, sizeof(t->worker_role), "%s", worker ? "" : "nexus_worker");
    t->pooled = s->db_pool_mode == NX_DB_POOL_TRANSACTION;
    return copy(t->listen_conninfo, sizeof(t->listen_conninfo),
                s->listen_database_url ? s->listen_database_url : "", "DATABASE_LISTEN_URL", err);
}

int nx_db_target_open(nx_db_target_t *t, const nx_settings_t *s, nx_err_t *err)
{
    memset(t, 0, sizeof(*t));
    if (s->database_url && s->database_url[0])
        return open_external(t, s, err);
    nx_cluster_t *c = NULL;
    if (nx_cluster_open(&c, s, err) != NX_OK)
        return err->code;
    t->embedded = true;
    t->started_here = nx_cluster_started_here(c);
    t->priv = c;
    nx_cluster_conninfo(c, "nexus", t->owner_conninfo, sizeof(t->owner_conninfo));
    nx_cluster_conninfo(c, "nexus_app", t->app_conninfo, sizeof(t->app_conninfo));
    nx_cluster_conninfo(c, "nexus_worker", t->worker_conninfo, sizeof(t->worker_conninfo));
    return NX_OK;
}

int nx_db_target_connect(const nx_db_target_t *t, int who, nx_db_t **out, nx_err_t *err)
{
    *out = NULL;
    if (who == NX_DB_OWNER)
        return nx_db_connect(out, t->owner_conninfo, NULL, err);
    const char *conninfo = who == NX_DB_APP ? t->app_conninfo : t->worker_conninfo;
    const char *role = who == NX_DB_APP ? t->app_role : t->worker_role;
    const char *setting = who == NX_DB_APP ? "APP_DATABASE_URL" : "WORKER_DATABASE_URL";
    if (t->pooled && role[0])
        return nx_err_set(err, NX_EINVAL,
                          "%s: must be set when DATABASE_POOL_MODE is transaction: log in as "
                          "%s (or a role granted it), since a SET ROLE would outlive the "
                          "transaction on the pooler's server session",
                          setting, role);
    if (nx_db_connect(out, conninfo, role[0] ? role : NULL, err) != NX_OK)
        return err->code;
    if (t->pooled)
        nx_db_set_unnamed(*out);
    return NX_OK;
}

void nx_db_target_close(nx_db_target_t *t)
{
    if (!t)
        return;
    if (t->priv)
        nx_cluster_close(t->priv);
    t->priv = NULL;
    t->started_here = false;
}
