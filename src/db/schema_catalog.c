/*
 * schema_catalog.c - reads one database's catalog into the model of
 * schema_int.h.
 *
 * Only the public schema is read, without the migration engine's own
 * tables (schema_migrations, schema_migrations_pin) and without what
 * extensions own. Every definition comes from PostgreSQL's own
 * deparsers (format_type, pg_get_expr, pg_get_constraintdef,
 * pg_get_indexdef, pg_get_triggerdef, pg_get_functiondef), so two databases
 * built from different SQL text compare equal when their catalogs are.
 * Three normalisations make the text independent of who built it: the
 * owner's own privileges are left out (they are implicit), a policy for the
 * owner names CURRENT_USER, and a privilege list that was never touched
 * reads as the default for its kind (acldefault).
 */
#include "core/nx.h"
#include "db/schema_int.h"
#include "core/arena.h"
#include "core/err.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

/* A relation autogenerate manages: an ordinary table of public, not the
 * migration engine's own, not an extension's. */
#define IN_SCOPE(c)                                                                        \
    c ".relnamespace = 'public'::regnamespace AND " c ".relkind = 'r' AND " c              \
    ".relname NOT IN ('schema_migrations', 'schema_migrations_pin') AND NOT EXISTS ("        \
    "SELECT 1 FROM pg_depend e WHERE "                                                     \
    "e.classid = 'pg_class'::regclass AND e.objid = " c ".oid AND e.deptype = 'e')"

/* The user functions an object's expressions call, one signature a line. */
#define USES(cls, oid)                                                                     \
    "(SELECT string_agg(d.refobjid::regprocedure::text, E'\\n' ORDER BY 1) FROM pg_depend " \
    "d WHERE d.classid = '" cls "'::regclass AND d.objid = " oid                           \
    " AND d.refclassid = 'pg_proc'::regclass)"

#define COMMENT(oid, cls) "quote_literal(obj_description(" oid ", '" cls "'))"

static const char tables_sql[] =
    "SELECT quote_ident(c.relname), c.oid, c.relrowsecurity, c.relforcerowsecurity, "
    "c.relpersistence = 'u', array_to_string(ARRAY(SELECT o FROM unnest(c.reloptions) o "
    "ORDER BY o COLLATE \"C\"), E'\\n'), " COMMENT("c.oid", "pg_class")
    " FROM pg_class c WHERE " IN_SCOPE("c");

/* A serial column reads as serial (its sequence is owned by the column and
 * goes with it); a default calling a volatile function is marked, since
 * adding such a column rewrites the table. */
static const char columns_sql[] =
    "SELECT quote_ident(c.relname), quote_ident(a.attname), a.attnum, "
    "CASE WHEN s.owned AND a.attidentity = '' AND a.attgenerated = '' THEN "
    "  CASE a.atttypid WHEN 'int2'::regtype THEN 'smallserial' WHEN 'int8'::regtype "
    "  THEN 'bigserial' ELSE 'serial' END "
    "ELSE format_type(a.atttypid, a.atttypmod) END, "
    "CASE WHEN a.attcollation <> t.typcollation THEN quote_ident(co.collname) END, "
    "CASE WHEN s.owned AND a.attidentity = '' AND a.attgenerated = '' THEN NULL "
    "ELSE pg_get_expr(d.adbin, d.adrelid) END, "
    "EXISTS (SELECT 1 FROM regexp_matches(pg_get_expr(d.adbin, d.adrelid), "
    "  '([A-Za-z_][A-Za-z0-9_$]*)\\(', 'g') f JOIN pg_proc p ON p.proname = lower(f[1]) "
    "  AND p.provolatile = 'v'), "
    "a.attnotnull, a.attidentity, a.attgenerated, "
    "quote_literal(col_description(a.attrelid, a.attnum)) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM pg_depend dp JOIN pg_class sq "
    "  ON sq.oid = dp.objid AND sq.relkind = 'S' WHERE dp.classid = 'pg_class'::regclass "
    "  AND dp.refobjid = a.attrelid AND dp.refobjsubid = a.attnum AND dp.deptype = 'a') "
    "  AS owned) s "
    "WHERE " IN_SCOPE("c") " AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY c.oid, a.attnum";

#define GRANTEE "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END"

/* A table's privileges, then its columns' as "UPDATE (name)": the form
 * GRANT and REVOKE take, so they diff and render like the others. */
static const char table_acl_sql[] =
    "SELECT quote_ident(c.relname), " GRANTEE ", a.privilege_type, a.is_grantable "
    "FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
    "WHERE " IN_SCOPE("c") " AND a.grantee <> c.relowner "
    "UNION ALL SELECT quote_ident(c.relname), " GRANTEE ", "
    "a.privilege_type || ' (' || quote_ident(t.attname) || ')', a.is_grantable "
    "FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid, aclexplode(t.attacl) a "
    "WHERE " IN_SCOPE("c") " AND t.attnum > 0 AND NOT t.attisdropped "
    "AND a.grantee <> c.relowner ORDER BY 1";

static const char function_acl_sql[] =
    "SELECT p.oid::regprocedure::text, " GRANTEE ", a.privilege_type, a.is_grantable "
    "FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
    "WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p') "
    "AND a.grantee <> p.proowner ORDER BY 1";

/* Every object query returns: table, name, def, oid, comment, uses, then
 * the kind's own columns (see read_obj). */
static const char constraints_sql[] =
    "SELECT quote_ident(c.relname), quote_ident(k.conname), pg_get_constraintdef(k.oid), "
    "k.oid, " COMMENT("k.oid", "pg_constraint") ", " USES("pg_constraint", "k.oid") ", "
    "k.contype, k.convalidated "
    "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
    "WHERE " IN_SCOPE("c") " AND k.contype IN ('c', 'u', 'p', 'f', 'x')";

/* The indexes of unique, primary key and exclusion constraints go with
 * their constraint. */
static const char indexes_sql[] =
    "SELECT quote_ident(t.relname), quote_ident(i.relname), pg_get_indexdef(i.oid), i.oid, "
    COMMENT("i.oid", "pg_class") ", " USES("pg_class", "i.oid") " "
    "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
    "JOIN pg_class t ON t.oid = x.indrelid WHERE " IN_SCOPE("t") " AND NOT EXISTS "
    "(SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = "
    "x.indrelid AND k.contype IN ('p', 'u', 'x'))";

static const char triggers_sql[] =
    "SELECT quote_ident(c.relname), quote_ident(g.tgname), pg_get_triggerdef(g.oid), g.oid, "
    COMMENT("g.oid", "pg_trigger") ", g.tgfoid::regprocedure::text "
    "FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
    "WHERE " IN_SCOPE("c") " AND NOT g.tgisinternal";

static const char policies_sql[] =
    "SELECT quote_ident(c.relname), quote_ident(p.polname), "
    "format('CREATE POLICY %I ON %I%s%s TO %s%s%s', p.polname, c.relname, "
    "  CASE WHEN NOT p.polpermissive THEN ' AS RESTRICTIVE' ELSE '' END, "
    "  CASE p.polcmd WHEN 'r' THEN ' FOR SELECT' WHEN 'a' THEN ' FOR INSERT' "
    "  WHEN 'w' THEN ' FOR UPDATE' WHEN 'd' THEN ' FOR DELETE' ELSE '' END, r.roles, "
    "  ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', "
    "  ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')'), "
    "p.oid, " COMMENT("p.oid", "pg_policy") ", " USES("pg_policy", "p.oid") ", "
    "p.polcmd, p.polpermissive, r.roles, pg_get_expr(p.polqual, p.polrelid), "
    "pg_get_expr(p.polwithcheck, p.polrelid) "
    "FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
    "CROSS JOIN LATERAL (SELECT array_to_string(ARRAY(SELECT CASE WHEN o = 0 THEN 'PUBLIC' "
    "  WHEN pg_get_userbyid(o) = current_user THEN 'CURRENT_USER' "
    "  ELSE quote_ident(pg_get_userbyid(o)) END FROM unnest(p.polroles) o ORDER BY 1), ', ') "
    "  AS roles) r "
    "WHERE " IN_SCOPE("c");

static const char functions_sql[] =
    "SELECT NULL, p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.oid, "
    COMMENT("p.oid", "pg_proc") ", NULL, pg_get_function_result(p.oid), "
    "pg_get_function_arguments(p.oid) "
    "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p') "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass "
    "AND e.objid = p.oid AND e.deptype = 'e')";

/* What autogenerate leaves to the author, compared by name (and, where it
 * is cheap, by definition). Sequences and types that belong to a table or
 * column, and extension members, go with their owner. */
static const char others_sql[] =
    "SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' "
    "  WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN "
    "  'partitioned table' ELSE 'composite type' END, quote_ident(c.relname), "
    "  CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END "
    "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
    "AND c.relkind IN ('v', 'm', 'S', 'f', 'p', 'c') AND NOT EXISTS (SELECT 1 FROM "
    "pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
    "AND d.deptype IN ('a', 'i', 'e')) "
    "UNION ALL SELECT CASE t.typtype WHEN 'e' THEN 'enum type' WHEN 'd' THEN 'domain' "
    "  ELSE 'range type' END, quote_ident(t.typname), "
    "  CASE WHEN t.typtype = 'e' THEN array_to_string(ARRAY(SELECT quote_literal(l.enumlabel) "
    "  FROM pg_enum l WHERE l.enumtypid = t.oid ORDER BY l.enumsortorder), ', ') "
    "  WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END "
    "FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace "
    "AND t.typtype IN ('e', 'd', 'r') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE "
    "d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e') "
    "UNION ALL SELECT 'extension', quote_ident(x.extname), NULL FROM pg_extension x "
    "WHERE x.extname <> 'plpgsql' "
    "UNION ALL SELECT 'schema', quote_ident(n.nspname), NULL FROM pg_namespace n "
    "WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
    "UNION ALL SELECT 'aggregate', p.oid::regprocedure::text, NULL FROM pg_proc p "
    "WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('a', 'w') "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass "
    "AND e.objid = p.oid AND e.deptype = 'e')";

struct reader {
    nx_arena_t *a;
    void *conn;
    nx_sc_query_fn query;
    void *ctx;
    nx_sc_model_t *m;
    nx_err_t *err;
    bool oom;
};

/* The value as an arena string, NULL for SQL NULL. */
static const char *val(struct reader *rd, PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    char *s = nx_arena_strdup(rd->a, PQgetvalue(r, row, col));
    if (!s)
        rd->oom = true;
    return s;
}

static bool flag(PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

static PGresult *run(struct reader *rd, const char *sql)
{
    return rd->query(rd->ctx, rd->conn, sql, rd->err);
}

static void *alloc_array(struct reader *rd, size_t n, size_t size)
{
    void *p = nx_arena_calloc(rd->a, (n ? n : 1) * size);
    if (!p)
        rd->oom = true;
    return p;
}

/* Compares two possibly NULL strings, NULL first. */
static int cmp_null(const char *x, const char *y)
{
    if (!x || !y)
        return x ? 1 : y ? -1 : 0;
    return strcmp(x, y);
}

static int cmp_table(const void *x, const void *y)
{
    return strcmp(((const nx_sc_table_t *)x)->name, ((const nx_sc_table_t *)y)->name);
}

static int cmp_obj(const void *x, const void *y)
{
    const nx_sc_obj_t *p = x, *q = y;
    int c = cmp_null(p->table, q->table);
    return c ? c : strcmp(p->name, q->name);
}

static int cmp_other(const void *x, const void *y)
{
    const nx_sc_other_t *p = x, *q = y;
    int c = strcmp(p->kind, q->kind);
    return c ? c : strcmp(p->name, q->name);
}

/* Splits a "\n"-separated list into an array (storage parameters). */
static void split_lines(struct reader *rd, const char *s, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s || !*s)
        return;
    size_t count = 1;
    for (const char *p = s; *p; p++)
        count += *p == '\n';
    const char **items = alloc_array(rd, count, sizeof(*items));
    char *copy = nx_arena_strdup(rd->a, s);
    if (!items || !copy) {
        rd->oom = true;
        return;
    }
    for (char *p = copy, *line; (line = strsep(&p, "\n")) != NULL;)
        items[(*n)++] = line;
    *out = items;
}

static int read_tables(struct reader *rd)
{
    PGresult *r = run(rd, tables_sql);
    if (!r)
        return rd->err->code;
    int n = PQntuples(r);
    nx_sc_model_t *m = rd->m;
    m->tables = alloc_array(rd, (size_t)n, sizeof(*m->tables));
    for (int i = 0; m->tables && i < n; i++) {
        nx_sc_table_t *t = &m->tables[i];
        t->name = val(rd, r, i, 0);
        t->oid = (unsigned)strtoul(PQgetvalue(r, i, 1), NULL, 10);
        t->rls = flag(r, i, 2);
        t->force = flag(r, i, 3);
        t->unlogged = flag(r, i, 4);
        split_lines(rd, PQgetvalue(r, i, 5), &t->options, &t->noptions);
        t->comment = val(rd, r, i, 6);
    }
    m->ntables = m->tables ? (size_t)n : 0;
    PQclear(r);
    if (rd->oom)
        return nx_err_set(rd->err, NX_ENOMEM, "out of memory");
    qsort(m->tables, m->ntables, sizeof(*m->tables), cmp_table);
    return NX_OK;
}

static void read_column(struct reader *rd, PGresult *r, int i, nx_sc_column_t *c)
{
    c->name = val(rd, r, i, 1);
    c->num = (int)strtol(PQgetvalue(r, i, 2), NULL, 10);
    c->type = val(rd, r, i, 3);
    c->collation = val(rd, r, i, 4);
    c->def = val(rd, r, i, 5);
    c->volatile_def = flag(r, i, 6);
    c->notnull = flag(r, i, 7);
    c->identity = PQgetvalue(r, i, 8)[0];
    c->generated = PQgetvalue(r, i, 9)[0];
    c->comment = val(rd, r, i, 10);
}

/* The end of the run of rows from i on whose first column is the same. */
static int group_end(PGresult *r, int i)
{
    int j = i + 1, n = PQntuples(r);
    while (j < n && strcmp(PQgetvalue(r, j, 0), PQgetvalue(r, i, 0)) == 0)
        j++;
    return j;
}

static nx_sc_table_t *table_get(nx_sc_model_t *m, const char *name)
{
    return (nx_sc_table_t *)nx_sc_table_find(m, name);
}

/* Columns arrive grouped by table, in attnum order. */
static int read_columns(struct reader *rd)
{
    PGresult *r = run(rd, columns_sql);
    if (!r)
        return rd->err->code;
    for (int i = 0, j; i < PQntuples(r) && !rd->oom; i = j) {
        j = group_end(r, i);
        nx_sc_table_t *t = table_get(rd->m, PQgetvalue(r, i, 0));
        if (!t)
            continue;
        t->cols = alloc_array(rd, (size_t)(j - i), sizeof(*t->cols));
        for (int k = i; t->cols && k < j; k++)
            read_column(rd, r, k, &t->cols[t->ncols++]);
    }
    PQclear(r);
    return rd->oom ? nx_err_set(rd->err, NX_ENOMEM, "out of memory") : NX_OK;
}

static int cmp_grant(const void *x, const void *y)
{
    const nx_sc_grant_t *p = x, *q = y;
    int c = strcmp(p->grantee, q->grantee);
    return c ? c : strcmp(p->priv, q->priv);
}

/* Reads (object, grantee, privilege, grantable) rows, grouped by object,
 * into the ACL that find(object) returns. */
static int read_acl(struct reader *rd, const char *sql,
                    nx_sc_acl_t *(*find)(nx_sc_model_t *, const char *))
{
    PGresult *r = run(rd, sql);
    if (!r)
        return rd->err->code;
    for (int i = 0, j; i < PQntuples(r) && !rd->oom; i = j) {
        j = group_end(r, i);
        nx_sc_acl_t *acl = find(rd->m, PQgetvalue(r, i, 0));
        if (!acl)
            continue;
        acl->items = alloc_array(rd, (size_t)(j - i), sizeof(*acl->items));
        for (int k = i; acl->items && k < j; k++) {
            nx_sc_grant_t *g = &acl->items[acl->n++];
            g->grantee = val(rd, r, k, 1);
            g->priv = val(rd, r, k, 2);
            g->grantable = flag(r, k, 3);
        }
        if (!rd->oom)
            qsort(acl->items, acl->n, sizeof(*acl->items), cmp_grant);
    }
    PQclear(r);
    return rd->oom ? nx_err_set(rd->err, NX_ENOMEM, "out of memory") : NX_OK;
}

static nx_sc_acl_t *table_acl(nx_sc_model_t *m, const char *name)
{
    nx_sc_table_t *t = table_get(m, name);
    return t ? &t->acl : NULL;
}

static nx_sc_acl_t *function_acl(nx_sc_model_t *m, const char *name)
{
    nx_sc_obj_t *f = (nx_sc_obj_t *)nx_sc_obj_find(m, NX_SC_FUNCTION, NULL, name);
    return f ? &f->acl : NULL;
}

static void read_obj_extra(struct reader *rd, PGresult *r, int i, int kind, nx_sc_obj_t *o)
{
    switch (kind) {
    case NX_SC_CONSTRAINT:
        o->type = PQgetvalue(r, i, 6)[0];
        o->flag = flag(r, i, 7);
        break;
    case NX_SC_POLICY:
        o->type = PQgetvalue(r, i, 6)[0];
        o->flag = flag(r, i, 7);
        o->roles = val(rd, r, i, 8);
        o->qual = val(rd, r, i, 9);
        o->check = val(rd, r, i, 10);
        break;
    case NX_SC_FUNCTION:
        o->result = val(rd, r, i, 6);
        o->args = val(rd, r, i, 7);
        break;
    default:
        break;
    }
}

static int read_objs(struct reader *rd, int kind, const char *sql)
{
    PGresult *r = run(rd, sql);
    if (!r)
        return rd->err->code;
    int n = PQntuples(r);
    nx_sc_obj_t *objs = alloc_array(rd, (size_t)n, sizeof(*objs));
    for (int i = 0; objs && i < n; i++) {
        nx_sc_obj_t *o = &objs[i];
        o->table = val(rd, r, i, 0);
        o->name = val(rd, r, i, 1);
        o->def = val(rd, r, i, 2);
        o->oid = (unsigned)strtoul(PQgetvalue(r, i, 3), NULL, 10);
        o->comment = val(rd, r, i, 4);
        o->uses = val(rd, r, i, 5);
        read_obj_extra(rd, r, i, kind, o);
    }
    PQclear(r);
    if (rd->oom || !objs)
        return nx_err_set(rd->err, NX_ENOMEM, "out of memory");
    qsort(objs, (size_t)n, sizeof(*objs), cmp_obj);
    rd->m->objs[kind] = objs;
    rd->m->nobjs[kind] = (size_t)n;
    return NX_OK;
}

static int read_others(struct reader *rd)
{
    PGresult *r = run(rd, others_sql);
    if (!r)
        return rd->err->code;
    int n = PQntuples(r);
    nx_sc_model_t *m = rd->m;
    m->others = alloc_array(rd, (size_t)n, sizeof(*m->others));
    for (int i = 0; m->others && i < n; i++) {
        m->others[i].kind = val(rd, r, i, 0);
        m->others[i].name = val(rd, r, i, 1);
        m->others[i].def = val(rd, r, i, 2);
    }
    PQclear(r);
    if (rd->oom || !m->others)
        return nx_err_set(rd->err, NX_ENOMEM, "out of memory");
    m->nothers = (size_t)n;
    qsort(m->others, m->nothers, sizeof(*m->others), cmp_other);
    return NX_OK;
}

int nx_sc_catalog_read(nx_arena_t *a, void *conn, nx_sc_query_fn query, void *ctx,
                       nx_sc_model_t *m, nx_err_t *err)
{
    memset(m, 0, sizeof(*m));
    struct reader rd = {.a = a, .conn = conn, .query = query, .ctx = ctx, .m = m, .err = err};
    static const char *const obj_sql[NX_SC_NKINDS] = {
        [NX_SC_CONSTRAINT] = constraints_sql, [NX_SC_INDEX] = indexes_sql,
        [NX_SC_TRIGGER] = triggers_sql,       [NX_SC_POLICY] = policies_sql,
        [NX_SC_FUNCTION] = functions_sql,
    };
    if (read_tables(&rd) != NX_OK || read_columns(&rd) != NX_OK)
        return err->code;
    for (int k = 0; k < NX_SC_NKINDS; k++)
        if (read_objs(&rd, k, obj_sql[k]) != NX_OK)
            return err->code;
    if (read_acl(&rd, table_acl_sql, table_acl) != NX_OK ||
        read_acl(&rd, function_acl_sql, function_acl) != NX_OK || read_others(&rd) != NX_OK)
        return err->code;
    return NX_OK;
}
