/*
 * db_int.h - private to src/db/: the connection and result structs and the
 * pipeline runner shared by nx_db_exec and the tenant transaction.
 *
 * libpq-fe.h is included here and nowhere outside src/db/.
 */
#ifndef NX_DB_DB_INT_H
#define NX_DB_DB_INT_H

#include "core/nx.h"
#include "db/db.h"

#include <libpq-fe.h>

/* Per-connection set of statement names already prepared (open addressing). */
struct stmt_slot {
    char *name;      /* heap copy; NULL for an empty slot */
    size_t sql_hash; /* of the SQL, to catch two statements sharing a name */
};

struct nx_db {
    PGconn *pg;
    bool broken;             /* connection lost: nx_db_ok is false */
    bool unnamed;            /* statements sent unnamed, never prepared by name */
    struct stmt_slot *slots; /* prepared-statement cache */
    size_t nslots;           /* power of two */
    size_t nused;
    char constraint[64];     /* constraint named by the last error, or "" */
};

struct nx_res {
    PGresult *pg;
};

/* One statement of a pipeline: what to run, and where its result goes. */
struct nx_db_item {
    const nx_stmt_t *st;
    const char *const *params;
    nx_res_t *res; /* filled by the runner (arena-owned); NULL until then */
};

/*
 * Runs items[0..n) as one libpq pipeline ending in one Sync: one implicit
 * transaction, one round trip (statements not yet prepared on this
 * connection are prepared inside the same pipeline). On the first failing
 * statement err is set via nx_db_errmap (libpq text in log_detail only),
 * *failed is its index, and the connection is left idle and usable, or
 * marked broken when it was lost. Results live on arena.
 */
int nx_db_pipeline(nx_db_t *db, nx_arena_t *arena, struct nx_db_item *items, int n,
                   int *failed, nx_err_t *err);

/* 1 when the server session behind c is not the one libpq was told at
 * start-up (a pooler), 0 when it is, negative NX_E* when the check fails
 * (conn.c; migrate.c's raw connection uses it too). */
int nx_db_pg_pooled(PGconn *c, nx_err_t *err);

/* PQconnectdb with our defaults under what conninfo says: the application
 * name, a connect timeout, UTF8, and no GSSAPI encryption unless asked for.
 * NULL only on ENOMEM; check PQstatus otherwise. */
PGconn *nx_db_pg_connect(const char *conninfo);

/* Prepared-statement cache (conn.c). */
bool nx_db_stmt_known(nx_db_t *db, const nx_stmt_t *st);
int nx_db_stmt_remember(nx_db_t *db, const nx_stmt_t *st);
void nx_db_stmt_forget_all(nx_db_t *db);

/* Wraps a PGresult as an arena-owned nx_res_t (PQclear deferred). On ENOMEM
 * the PGresult is cleared and NULL returned. */
nx_res_t *nx_db_res_wrap(nx_arena_t *arena, PGresult *pg);

/* Sets err from a failed PGresult (or from the connection when r is NULL);
 * what names the statement in log_detail. Marks the connection broken when
 * it was lost and records the constraint name. Returns the NX_E* code. */
int nx_db_fail(nx_db_t *db, const char *what, const PGresult *r, nx_err_t *err);

#endif
