/*
 * target.h - which PostgreSQL this process talks to.
 *
 * With DATABASE_URL set, that database (nothing is started). Without it, the
 * embedded cluster under NEXUS_DATA_DIR: the running one if another nexusapi
 * process has it up, else started here and stopped by nx_db_target_close.
 * Three connection targets come out: the owner (migrations, operator verbs),
 * the runtime role nexus_app, and the job worker role nexus_worker.
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
    bool embedded;
    bool started_here;          /* this process started the cluster */
    void *priv;                 /* private to target.c */
} nx_db_target_t;

/* Resolves (and, embedded, starts if needed) the database; never changes
 * its schema. NX_EUNAVAILABLE with a client-safe detail when the cluster
 * cannot be started. */
int nx_db_target_open(nx_db_target_t *t, const nx_settings_t *s, nx_err_t *err);
/* Stops the embedded cluster if this process started it. Idempotent. */
void nx_db_target_close(nx_db_target_t *t);

#endif
