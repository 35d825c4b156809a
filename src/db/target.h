/*
 * target.h - which PostgreSQL this process talks to.
 *
 * With DATABASE_URL set, that database (nothing is started). Without it, the
 * embedded cluster under NEXUS_DATA_DIR: the running one if another nexusapi
 * process has it up, else started here and stopped by nx_db_target_close.
 * Three connection targets come out: the owner (migrations, operator verbs),
 * the runtime role nexus_app, and the job worker role nexus_worker. With
 * DATABASE_POOL_MODE=transaction the last two go through a pooler that hands
 * each transaction whichever server session is free: they then carry no
 * session state (no SET ROLE, no named prepared statements, no LISTEN).
 */
#ifndef NX_DB_TARGET_H
#define NX_DB_TARGET_H

#include "core/nx.h"

typedef struct nx_db_target {
    char owner_conninfo[2048];  /* owner role: migrations, operator verbs */
    char app_conninfo[2048];    /* runtime connections */
    char app_role[64];          /* "" or role to SET ROLE to ("nexus_app") */
    char worker_conninfo[2048]; /* job workers */
    char worker_role[64];       /* "" or "nexus_worker" */
    char listen_conninfo[2048]; /* DATABASE_LISTEN_URL, or "" */
    bool pooled;                /* app and worker go through a transaction pooler */
    bool embedded;
    bool started_here;          /* this process started the cluster */
    void *priv;                 /* private to target.c */
} nx_db_target_t;

/* Resolves (and, embedded, starts if needed) the database; never changes
 * its schema. NX_EUNAVAILABLE with a client-safe detail when the cluster
 * cannot be started. */
int nx_db_target_open(nx_db_target_t *t, const nx_settings_t *s, nx_err_t *err);
/* Who a connection is for. */
enum nx_db_who { NX_DB_OWNER = 0, NX_DB_APP, NX_DB_WORKER };

/*
 * Connects as who: the owner, or the runtime (app) or workers' role, after
 * any SET ROLE. A pooled target's app and worker connections send unnamed
 * statements and must log in as their role: without APP_DATABASE_URL
 * (WORKER_DATABASE_URL) it is NX_EINVAL with a one-line detail.
 * NX_EUNAVAILABLE when the database cannot be reached.
 */
int nx_db_target_connect(const nx_db_target_t *t, int who, nx_db_t **out, nx_err_t *err);
/* Stops the embedded cluster if this process started it. Idempotent. */
void nx_db_target_close(nx_db_target_t *t);

#endif
