/*
 * migrate.h - the migration engine.
 *
 * A migration is one file NNNN_name.sql with a "-- nexus:up" and a
 * "-- nexus:down" section (and optionally "-- nexus:no-transaction" before
 * the up marker). The files are compiled into the binary or read from a
 * directory; applied versions live in schema_migrations with the SHA-256 of
 * the file. Concurrent migrators are serialised by a session advisory lock;
 * each migration runs in its own transaction unless marked otherwise.
 *
 * A downgrade pins the database: the one-row table schema_migrations_pin,
 * written with each reverted version, says an operator chose a version
 * below head, so `serve` does not upgrade it on its own. An upgrade that
 * leaves the database at head drops the table.
 */
#ifndef NX_DB_MIGRATE_H
#define NX_DB_MIGRATE_H

#include "core/nx.h"

/* One parsed migration file. up and down are heap copies (NUL-terminated). */
typedef struct nx_mig {
    char version[16];   /* "0002" */
    long long vnum;     /* 2 */
    char name[128];     /* "add_avatar_url_to_users" */
    char file[160];     /* "0002_add_avatar_url_to_users.sql" */
    char checksum[65];  /* SHA-256 of the whole file, lower-case hex */
    bool no_tx;
    char *up;
    char *down;
} nx_mig_t;

/* A row of schema_migrations. */
typedef struct nx_mig_applied {
    char version[16];
    long long vnum;
    char name[128];
    char checksum[65];
    char applied_at[40]; /* RFC 3339 UTC */
} nx_mig_applied_t;

/* Parses one file (name "NNNN_name.sql", text[0..len)) into m. NX_EINVAL
 * with a detail naming the file and the problem; on error m holds nothing
 * to release. On success release with nx_mig_release. */
int nx_mig_parse(nx_mig_t *m, const char *file, const char *text, size_t len, nx_err_t *err);
void nx_mig_release(nx_mig_t *m);

/* Splits SQL text into statements (quotes, dollar quotes and comments
 * respected) for no-transaction migrations. Calls fn for each non-empty
 * statement (not NUL-terminated: s[0..n)); stops at the first non-zero
 * return and returns it. */
int nx_mig_split(const char *sql, int (*fn)(void *ctx, const char *s, size_t n), void *ctx);

/* The engine's state: the known files (ascending by version) and, once
 * connected, the applied rows (ascending). Fields are read-only. */
typedef struct nx_migrate {
    nx_mig_t *files;
    size_t nfiles;
    nx_mig_applied_t *applied;
    size_t napplied;
    bool pinned;          /* a downgrade pinned the database below head */
    char pinned_at[40];   /* when, RFC 3339 UTC; "" when not pinned */
    void *priv;
} nx_migrate_t;

/* Loads the migrations: compiled in when dir is NULL, else every
 * NNNN_*.sql in dir. NX_EINVAL for a bad or duplicate file. Heap-owned
 * until nx_migrate_release. */
int nx_migrate_load(nx_migrate_t *m, const char *dir, nx_err_t *err);
/* Connects to conninfo (the owner) and reads schema_migrations (absent
 * table: nothing applied). NX_EUNAVAILABLE when the database cannot be
 * reached. Nothing is written. */
int nx_migrate_connect(nx_migrate_t *m, const char *conninfo, nx_err_t *err);
/* Closes the connection and frees everything. Idempotent. */
void nx_migrate_release(nx_migrate_t *m);

/* The file for a version, or NULL. */
const nx_mig_t *nx_migrate_file_find(const nx_migrate_t *m, const char *version);
/* The applied row for a version, or NULL. */
const nx_mig_applied_t *nx_migrate_applied_find(const nx_migrate_t *m, const char *version);
/* How many of the files are not applied. */
size_t nx_migrate_pending(const nx_migrate_t *m);
/* NX_ECONFLICT naming the first applied migration whose file changed. */
int nx_migrate_verify(const nx_migrate_t *m, nx_err_t *err);

enum nx_migrate_dir { NX_MIGRATE_UP = 0, NX_MIGRATE_DOWN };

/* Progress note for each migration applied or reverted (sql_only: each one
 * rendered). */
typedef void (*nx_migrate_note_cb)(void *ctx, const nx_mig_t *mig, int dir);

typedef struct nx_migrate_opts {
    int dir;                 /* enum nx_migrate_dir */
    const char *target;      /* up: "head" or REV; down: "-N", REV or "base" */
    nx_buf_t *sql;           /* non-NULL: render the SQL here, run nothing */
    nx_migrate_note_cb note; /* may be NULL */
    void *ctx;
    bool unless_pinned;      /* up: refuse a pinned database (NX_ECONFLICT) */
} nx_migrate_opts_t;

/*
 * Upgrades or downgrades a connected engine as opts says. Takes the session
 * advisory lock, creates schema_migrations if missing, re-reads the applied
 * rows, refuses changed files (NX_ECONFLICT), then runs each step in its own
 * transaction; a reverted step pins the database in its transaction, and
 * an upgrade that ends at head drops the pin. *nsteps (may be NULL) gets the
 * number of steps done or rendered. NX_EINVAL for a bad target; NX_EINTERNAL when a migration's SQL
 * fails (detail names the version; the database error is in the detail too,
 * as this is an operator tool).
 */
int nx_migrate_run(nx_migrate_t *m, const nx_migrate_opts_t *opts, size_t *nsteps,
                   nx_err_t *err);

/* ---- what serve, worker and the operator verbs need (migrate_head.c) ---- */

/* Sets err (NX_ECONFLICT) to the one line saying that the connected m is
 * behind head: its version, head, the pin if any, the commands that fix it.
 * Returns NX_ECONFLICT. */
int nx_migrate_behind(const nx_migrate_t *m, nx_err_t *err);

/* For the verbs built for the compiled-in schema (serve, worker, org, user,
 * credits, token): NX_ECONFLICT, as nx_migrate_behind, when the database is
 * behind head or an applied file changed; NX_EUNAVAILABLE when it cannot be
 * reached. Nothing is written. */
int nx_migrate_require_head(const char *owner_conninfo, nx_err_t *err);

/* What nx_migrate_head did: from and to are versions or "base". */
typedef struct nx_migrate_change {
    char from[16];
    char to[16];
    size_t steps; /* migrations applied; 0: from and to are "" */
} nx_migrate_change_t;

/* Connects and upgrades to head with the compiled-in migrations, which
 * clears a pin. With unless_pinned, a pinned database behind head is left
 * as it is: NX_ECONFLICT as nx_migrate_behind. *chg may be NULL. */
int nx_migrate_head(const char *owner_conninfo, bool unless_pinned, nx_migrate_change_t *chg,
                    nx_err_t *err);

#endif
