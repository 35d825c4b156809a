/*
 * schema_int.h - the catalog model of schema/, private to src/db/schema*.c.
 *
 * schema_catalog.c reads a database's catalog into a model; schema_diff.c
 * and schema_diff_obj.c compare two models into changes (SQL statements with
 * an ordering phase), hazards and notes; schema_render.c orders the changes
 * and writes the migration text. Everything lives in one arena. Names are
 * SQL identifiers as quote_ident renders them, comments SQL literals as
 * quote_literal renders them, definitions PostgreSQL's own deparser output.
 */
#ifndef NX_DB_SCHEMA_INT_H
#define NX_DB_SCHEMA_INT_H

#include "core/nx.h"
#include "db/schema.h"

#include <stdint.h>

/* One privilege of one grantee; the owner's own are left out. */
typedef struct nx_sc_grant {
    const char *grantee; /* a role, or PUBLIC */
    const char *priv;    /* SELECT, EXECUTE, ... */
    bool grantable;
} nx_sc_grant_t;

typedef struct nx_sc_acl {
    nx_sc_grant_t *items; /* sorted by grantee, then privilege */
    size_t n;
} nx_sc_acl_t;

typedef struct nx_sc_column {
    const char *name;
    int num;               /* attnum: creation order */
    const char *type;      /* format_type; serial, bigserial, smallserial for those */
    const char *collation; /* NULL: the type's default */
    const char *def;       /* default or generation expression; NULL for none */
    bool volatile_def;     /* the default calls a volatile function */
    bool notnull;
    char identity;         /* 0, 'a' (ALWAYS) or 'd' (BY DEFAULT) */
    char generated;        /* 0 or 's' (STORED) */
    const char *comment;   /* NULL for none */
} nx_sc_column_t;

typedef struct nx_sc_table {
    const char *name;
    unsigned oid;
    bool rls, force, unlogged;
    const char **options; /* sorted "key=value" storage parameters */
    size_t noptions;
    const char *comment;
    nx_sc_acl_t acl;
    nx_sc_column_t *cols; /* by attnum */
    size_t ncols;
} nx_sc_table_t;

enum nx_sc_kind {
    NX_SC_CONSTRAINT = 0,
    NX_SC_INDEX,
    NX_SC_TRIGGER,
    NX_SC_POLICY,
    NX_SC_FUNCTION,
    NX_SC_NKINDS
};

/* A constraint, index, trigger, policy or function. */
typedef struct nx_sc_obj {
    const char *name;    /* functions: the signature, "nx_ts(timestamp with time zone)" */
    const char *table;   /* the table it belongs to; NULL for functions */
    const char *def;     /* the text compared: pg_get_*def, or CREATE POLICY */
    const char *comment;
    const char *uses;    /* functions it depends on, one signature a line; NULL */
    unsigned oid;
    char type;           /* constraint: contype; policy: polcmd */
    bool flag;           /* constraint: validated; policy: permissive */
    const char *roles;   /* policy: "CURRENT_USER, nexus_app" */
    const char *qual;    /* policy USING; NULL for none */
    const char *check;   /* policy WITH CHECK; NULL for none */
    const char *result;  /* function: pg_get_function_result */
    const char *args;    /* function: pg_get_function_arguments */
    nx_sc_acl_t acl;     /* function */
} nx_sc_obj_t;

/* Something in the schema autogenerate does not manage (a view, a sequence
 * of its own, an extension, ...): compared by name only. */
typedef struct nx_sc_other {
    const char *kind;
    const char *name;
    const char *def; /* enum labels, view query, ...; NULL when only the name counts */
} nx_sc_other_t;

typedef struct nx_sc_model {
    nx_sc_table_t *tables; /* sorted by name */
    size_t ntables;
    nx_sc_obj_t *objs[NX_SC_NKINDS]; /* each sorted by (table, name) */
    size_t nobjs[NX_SC_NKINDS];
    nx_sc_other_t *others; /* sorted by (kind, name) */
    size_t nothers;
} nx_sc_model_t;

/* Ordering phases of a migration: drops first (dependents before what they
 * depend on), then creates (the other way round). Columns are dropped after
 * functions are replaced, so that a function body stops naming a column
 * before the column goes (and starts naming a new one after it comes). */
enum nx_sc_phase {
    NX_SC_P_RENAME = 0,
    NX_SC_P_DROP_TRIGGER,
    NX_SC_P_DROP_POLICY,
    NX_SC_P_DROP_FKEY,
    NX_SC_P_DROP_CONSTRAINT,
    NX_SC_P_DROP_INDEX,
    NX_SC_P_REVOKE,
    NX_SC_P_DROP_FUNCTION,
    NX_SC_P_DROP_TABLE,
    NX_SC_P_CREATE_TABLE,
    NX_SC_P_ADD_COLUMN,
    NX_SC_P_DROP_GENERATED, /* generated columns leave while others change type */
    NX_SC_P_ALTER_COLUMN,
    NX_SC_P_ADD_GENERATED,
    NX_SC_P_TABLE_OPTIONS,
    NX_SC_P_CREATE_FUNCTION,
    NX_SC_P_DROP_COLUMN,
    NX_SC_P_ADD_CONSTRAINT,
    NX_SC_P_ADD_FKEY,
    NX_SC_P_CREATE_INDEX,
    NX_SC_P_RLS,
    NX_SC_P_CREATE_POLICY,
    NX_SC_P_CREATE_TRIGGER,
    NX_SC_P_GRANT,
    NX_SC_P_COMMENT,
    NX_SC_P_RENAME_BACK, /* a down section: renames undone last */
    NX_SC_P_NPHASES
};

typedef struct nx_sc_change {
    int phase;       /* enum nx_sc_phase */
    uint64_t key;    /* order within the phase: creation order */
    unsigned seq;    /* then the order the changes were made in */
    const char *sql; /* one statement, without its ';' */
    bool concurrent; /* belongs in the no-transaction part */
} nx_sc_change_t;

typedef struct nx_sc_note {
    int hazard;      /* enum nx_schema_hazard, 0 for a plain note */
    const char *text;
} nx_sc_note_t;

/* The result of one comparison, from a model to another. */
typedef struct nx_sc_diff {
    nx_arena_t *arena;
    const nx_sc_model_t *from, *to;
    bool down;                  /* a down section: no CONCURRENTLY, no hazards */
    const char **concurrent;    /* up: indexes built concurrently; down: read */
    size_t nconcurrent, capconcurrent;
    nx_sc_change_t *changes;
    size_t nchanges, capchanges;
    const char **lines;         /* readable difference lines */
    size_t nlines, caplines;
    nx_sc_note_t *notes;        /* hazards and notes */
    size_t nnotes, capnotes;
    int err;                    /* NX_ENOMEM once an allocation failed */
} nx_sc_diff_t;

/* ---- schema_catalog.c --------------------------------------------------- */

/* Reads the catalog of the database conn (a PGconn *) into m. query runs one
 * statement and returns its PGresult (or NULL with err set); it lets the
 * caller poll for a stop while waiting. */
typedef void *(*nx_sc_query_fn)(void *ctx, void *conn, const char *sql, nx_err_t *err);
int nx_sc_catalog_read(nx_arena_t *a, void *conn, nx_sc_query_fn query, void *ctx,
                       nx_sc_model_t *m, nx_err_t *err);

/* ---- schema_diff.c ------------------------------------------------------ */

/* Compares d->from to d->to, filling d's changes, lines and notes. NX_OK or
 * NX_ENOMEM. */
int nx_sc_diff(nx_sc_diff_t *d);
/* Records a change, a readable line or a note (hazard 0: a plain note). On
 * ENOMEM d->err is set and the rest of the comparison is skipped. */
void nx_sc_change(nx_sc_diff_t *d, int phase, uint64_t key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void nx_sc_line(nx_sc_diff_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a change for the no-transaction part (sql is kept, not copied). */
void nx_sc_concurrent(nx_sc_diff_t *d, int phase, uint64_t key, const char *sql);
void nx_sc_note(nx_sc_diff_t *d, int hazard, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* How changing a column's type from one format_type to another affects
 * the data: 0 in place (no rewrite), 1 rewrite, 2 rewrite that may lose
 * data (a narrower or less precise type). Pure. */
int nx_sc_type_change(const char *from, const char *to);
/* The table of that name, or NULL. */
const nx_sc_table_t *nx_sc_table_find(const nx_sc_model_t *m, const char *name);
/* The column of that name, or NULL. */
const nx_sc_column_t *nx_sc_column_find(const nx_sc_table_t *t, const char *name);

/* ---- schema_diff_obj.c -------------------------------------------------- */

/* Constraints, indexes, triggers, policies, functions and their grants and
 * comments; RLS switches, table grants and the unmanaged objects. */
void nx_sc_diff_objects(nx_sc_diff_t *d);
void nx_sc_diff_acl(nx_sc_diff_t *d, const char *what, const char *object, uint64_t key,
                    const nx_sc_acl_t *from, const nx_sc_acl_t *to);
/* The object of a kind by (table, name), or NULL. */
const nx_sc_obj_t *nx_sc_obj_find(const nx_sc_model_t *m, int kind, const char *table,
                                  const char *name);

/* ---- schema_render.c ---------------------------------------------------- */

/* A --rename: the statements that rename and rename back, the table and
 * the new column as the catalog names them, the old column as given. */
typedef struct nx_sc_rename {
    const char *up, *down, *table, *from, *to;
} nx_sc_rename_t;

/* Fills the comparison part of a plan (all but head): up from head to
 * declared, down back again, with the renames first (up) and last (down).
 * NX_OK or NX_ENOMEM. */
int nx_sc_plan_models(nx_arena_t *a, const nx_sc_model_t *declared, const nx_sc_model_t *head,
                      const nx_sc_rename_t *rn, size_t nrn, nx_schema_plan_t *p);

/* The changes of d (concurrent ones or the others) in order, each followed
 * by ";" and a blank line. "" when there are none; NULL on ENOMEM. */
char *nx_sc_render_changes(const nx_sc_diff_t *d, bool concurrent);

#endif
