/*
 * schema.h - schema as code: the declared schema (schema/ *.sql) against the
 * migrations, compared through the catalogs of two scratch databases.
 *
 * nx_schema_plan applies the declared schema to one scratch database and the
 * migrations (up to head) to another, reads both catalogs, and returns the
 * difference as migration SQL (an up and a down section, in dependency
 * order), readable change lines, hazards and likely renames. The scratch
 * databases are created on the server of the owner connection and dropped
 * before it returns, whatever happens; nothing else is written.
 */
#ifndef NX_DB_SCHEMA_H
#define NX_DB_SCHEMA_H

#include "core/nx.h"

/* --rename table.from=to: keep the column's data, rename it. */
typedef struct nx_schema_rename {
    const char *table;
    const char *from;
    const char *to;
} nx_schema_rename_t;

/* Polled while waiting on the server; true stops the run (the scratch
 * databases are still dropped). */
typedef bool (*nx_schema_stop_cb)(void *ctx);

typedef struct nx_schema_opts {
    const char *conninfo;   /* the owner: needs CREATEDB for the scratch databases */
    const char *schema_dir; /* the declared schema: *.sql applied in name order */
    const char *mig_dir;    /* the migrations; NULL: the compiled-in ones */
    const nx_schema_rename_t *renames;
    size_t nrenames;
    nx_schema_stop_cb stop; /* may be NULL */
    void *stop_ctx;
} nx_schema_opts_t;

/* Hazard classes of a generated migration. */
enum nx_schema_hazard {
    NX_SCHEMA_HZ_DATA_LOSS = 1, /* drops a table or column, narrows a type */
    NX_SCHEMA_HZ_LOCK = 2,      /* rewrites a table or holds a long lock */
    NX_SCHEMA_HZ_RLS = 4,       /* weakens row-level security */
};

typedef struct nx_schema_plan {
    const char *head;       /* "0006 touch_only_on_change", or "base" */
    const char **changes;   /* "+ column users.x text": + only in schema/, - only in
                             * the migrations, ~ different; a line may continue
                             * on indented lines */
    size_t nchanges;
    const char **hazards;   /* "data loss: drops column users.x" */
    int *hazard_class;      /* enum nx_schema_hazard of each */
    size_t nhazards;
    const char **notes;     /* likely renames, objects left to the author */
    size_t nnotes;
    const char *up, *down;  /* the transactional part ("" when empty) */
    const char *cup, *cdown; /* CREATE INDEX CONCURRENTLY on existing tables and
                              * their drops: a no-transaction part ("" when none) */
} nx_schema_plan_t;

/*
 * Computes the plan (everything in arena a). NX_EINVAL for a bad schema
 * directory, a schema file that fails (detail "DIR/FILE.sql:LINE: message")
 * or a bad rename; NX_EUNAVAILABLE when the server cannot be reached, a
 * scratch database cannot be created (detail says the owner needs CREATEDB)
 * or stop said so; NX_EINTERNAL when a migration fails; NX_ENOMEM.
 */
int nx_schema_plan(nx_arena_t *a, const nx_schema_opts_t *o, nx_schema_plan_t *plan,
                   nx_err_t *err);

/* True when the plan has no change at all. */
bool nx_schema_plan_empty(const nx_schema_plan_t *p);

/*
 * The text of one migration file for plan p: concurrent false gives the
 * transactional part, true the no-transaction part. message heads the file,
 * followed by the hazards and notes as comments. Arena-owned; NULL on ENOMEM.
 */
char *nx_schema_render_file(nx_arena_t *a, const nx_schema_plan_t *p, const char *message,
                            bool concurrent);

#endif
