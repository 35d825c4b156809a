/*
 * cluster.h - the embedded PostgreSQL cluster under NEXUS_DATA_DIR.
 *
 * Layout: DATA_DIR/pg (the cluster), DATA_DIR/run (unix socket; a short
 * directory under /tmp when that path is too long for a socket),
 * DATA_DIR/pg.log (server and tool output), DATA_DIR/lock (serialises
 * init/start/stop), DATA_DIR/inuse (held shared by every process using the
 * cluster), DATA_DIR/pg.started (pid of a postmaster nexusapi started).
 * The cluster is joined when it is already up; it is stopped by the last
 * nexusapi process using it, if nexusapi started it.
 */
#ifndef NX_DB_CLUSTER_H
#define NX_DB_CLUSTER_H

#include "core/nx.h"

typedef struct nx_cluster nx_cluster_t;

/* Starts the cluster (initdb on first use; roles nexus, nexus_app,
 * nexus_worker; database nexus) or joins the running one. NX_EUNAVAILABLE
 * with a one-line reason; NX_EINVAL for a bad NEXUS_PG_USER. Heap-owned;
 * release with nx_cluster_close. */
int nx_cluster_open(nx_cluster_t **out, const nx_settings_t *s, nx_err_t *err);
/* libpq conninfo for a role of database nexus ("host=... port=... ..."). */
void nx_cluster_conninfo(const nx_cluster_t *c, const char *user, char *out, size_t size);
/* True when this process started the cluster. */
bool nx_cluster_started_here(const nx_cluster_t *c);
/* Leaves the cluster; stops it when this is the last nexusapi process using
 * it and nexusapi started it. NULL is a no-op. */
void nx_cluster_close(nx_cluster_t *c);

#endif
