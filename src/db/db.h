/*
 * db.h - the only door to PostgreSQL (libpq stays inside src/db/).
 *
 * Statements are declared once as static nx_stmt_t and prepared lazily per
 * connection (or sent unnamed, parsed on every use, on a connection through a
 * transaction pooler: nx_db_set_unnamed). Request code touches tenant tables only through a tenant
 * transaction (nx_tx_*): set the organisation, check the user, run the
 * handler's statements, all sent as one libpq pipeline - one round trip.
 * Results live on an arena: their PQclear is registered as a cleanup.
 */
#ifndef NX_DB_DB_H
#define NX_DB_DB_H

#include "core/nx.h"

/* A statement: a name unique in the process, its SQL, its parameter count.
 * Parameters are text ($1..$n); NULL pointers are SQL NULL. */
struct nx_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

/* ---- connections --------------------------------------------------------- */

/* Opens a connection. role, when non-NULL, is assumed with SET ROLE (the
 * runtime connects as the owner and becomes nexus_app). NX_EUNAVAILABLE. */
int nx_db_connect(nx_db_t **out, const char *conninfo, const char *role, nx_err_t *err);
void nx_db_free(nx_db_t *db);
/* From now on db sends its statements unnamed, parsed and planned on every
 * use: through a pooler in transaction mode the next transaction may run on a
 * server session that lacks a statement prepared here, or that another client
 * already prepared under the same name. */
void nx_db_set_unnamed(nx_db_t *db);
/* 1 when db reaches PostgreSQL through a connection pooler, 0 when it is a
 * server session of its own. A pooler (PgBouncer) hands out a process id
 * and cancel key of its own, so the id the connection was given differs from
 * the server's pg_backend_pid(); a TCP proxy or NAT passes it through.
 * Negative NX_E* when the query fails. */
int nx_db_pooled(nx_db_t *db, nx_err_t *err);
/* True when the connection is usable (not broken). */
bool nx_db_ok(const nx_db_t *db);
/* The constraint named by the last failed statement on db (e.g.
 * "users_organisation_id_email_key"), or NULL. Borrowed until the next call. */
const char *nx_db_constraint(const nx_db_t *db);

/*
 * The calling thread's runtime connection (nexus_app), opened lazily with the
 * process-wide target set by nx_db_set_runtime, and re-opened on the next call
 * after a failure. Borrowed: owned by the thread, closed at thread exit.
 */
nx_db_t *nx_db_thread(nx_err_t *err);
/* Sets the conninfo and role used by nx_db_thread, and whether its
 * connections send unnamed statements (a transaction pooler). Call once at
 * start-up. */
void nx_db_set_runtime(const char *conninfo, const char *role, bool unnamed);
/* Closes the calling thread's connection (e.g. before the thread exits). */
void nx_db_thread_close(void);
/* Exports conninfo as PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE/... in this
 * process's environment, so a spawned psql connects there without a password
 * on its command line. NX_EINVAL for an unparsable conninfo (detail safe). */
int nx_db_conninfo_export(const char *conninfo, nx_err_t *err);

/* ---- results ------------------------------------------------------------- */

int nx_res_rows(const nx_res_t *r);
int nx_res_cols(const nx_res_t *r);
/* Text value (never NULL: "" for SQL NULL), its length, and NULL-ness. */
const char *nx_res_get(const nx_res_t *r, int row, int col);
int nx_res_len(const nx_res_t *r, int row, int col);
bool nx_res_null(const nx_res_t *r, int row, int col);
/* Number of rows an INSERT/UPDATE/DELETE touched. */
long nx_res_affected(const nx_res_t *r);

/* ---- single statements (no tenant: health, sign-in doors, the job queue) -- */

/* Runs one prepared statement. The result lives on arena. */
int nx_db_exec(nx_db_t *db, nx_arena_t *arena, const nx_stmt_t *st,
               const char *const *params, nx_res_t **out, nx_err_t *err);
/* Runs st, a retention DELETE whose $1 is an age (days, hours: st's unit)
 * and $2 the most rows to delete; *deleted is how many went (0 on error). */
int nx_db_exec_prune(nx_db_t *db, nx_arena_t *arena, const nx_stmt_t *st, int age, int limit,
                     long *deleted, nx_err_t *err);
/* Runs a plain SQL string with no parameters (DDL, LISTEN). Result on arena
 * when out is non-NULL. */
int nx_db_exec_sql(nx_db_t *db, nx_arena_t *arena, const char *sql, nx_res_t **out,
                   nx_err_t *err);

/* ---- tenant transactions ------------------------------------------------- */

enum nx_tx_need { NX_TX_NONE = 0, NX_TX_MEMBER, NX_TX_ADMIN };

/*
 * Starts a tenant transaction on db for org_id. With user_id and need !=
 * NX_TX_NONE, its first statement also checks that the user exists in that
 * organisation (else NX_EUNAUTHORIZED) and, for NX_TX_ADMIN, is an admin
 * (else NX_EFORBIDDEN) - in the same round trip as everything else.
 * Returns NULL only on arena exhaustion.
 */
nx_tx_t *nx_tx_new(nx_db_t *db, nx_arena_t *arena, const char *org_id, const char *user_id,
                   int need);
/* Queues a statement; returns its index for nx_tx_res (or -1 on ENOMEM).
 * params are copied. */
int nx_tx_add(nx_tx_t *tx, const nx_stmt_t *st, const char *const *params);
/* Puts st, with the same parameters, in the place of statement idx, which
 * must be queued and not yet sent (it must take as many parameters). */
void nx_tx_swap(nx_tx_t *tx, int idx, const nx_stmt_t *st);
/* Sends the tenant set-up and the queued statements as one pipeline ending
 * in one Sync: one implicit transaction, one round trip. On any failure the
 * whole transaction is rolled back and err is set from the first failing
 * statement (via errmap; libpq text in log_detail only). */
int nx_tx_run(nx_tx_t *tx, nx_err_t *err);
/*
 * A held transaction spans several runs: the first sends BEGIN ahead of
 * its statements, each run sends only what was queued since and keeps the
 * transaction open, and nx_tx_commit sends the rest with COMMIT. A run
 * that fails rolls it back at once; one still open when the arena is
 * released is rolled back then. Call nx_tx_hold(tx, true) before the first
 * run; nx_tx_hold(tx, false), also before it, makes it one round trip again.
 */
void nx_tx_hold(nx_tx_t *tx, bool hold);
/* True while a held transaction is open (begun, not yet ended). */
bool nx_tx_open(const nx_tx_t *tx);
/* Sends what was queued since the last run, then COMMIT, in one round trip.
 * NX_EINTERNAL when no held transaction is open; else as nx_tx_run. */
int nx_tx_commit(nx_tx_t *tx, nx_err_t *err);
/* Ends an open held transaction without its changes. */
void nx_tx_rollback(nx_tx_t *tx);
/* True once the transaction's work is committed: a run that succeeded, or,
 * held, a commit that did. */
bool nx_tx_committed(const nx_tx_t *tx);
/* Result of queued statement idx after a successful run. */
nx_res_t *nx_tx_res(nx_tx_t *tx, int idx);
/* The caller's current role from the user check: "admin"/"member" or NULL. */
const char *nx_tx_role(const nx_tx_t *tx);
/* After a failed run: the index (as from nx_tx_add) of the statement that
 * failed, or -1 when the tenant set-up / user check failed or none did. */
int nx_tx_failed(const nx_tx_t *tx);
/* True once a run has passed the tenant set-up and the user check (the
 * caller is known to be a member with the role the transaction needs). */
bool nx_tx_checked(const nx_tx_t *tx);

/* ---- errors -------------------------------------------------------------- */

/* Maps a SQLSTATE to an NX_E* code (errmap.c is the only reader of SQLSTATE). */
int nx_db_errmap(const char *sqlstate);

#endif
