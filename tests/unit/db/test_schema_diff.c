/*
 * test_schema_diff.c - the comparison of two catalog models (db/schema_diff.c,
 * schema_diff_obj.c, schema_render.c), no database: type changes, hazard
 * classes, likely renames, dependency order, the no-transaction part and
 * privileges. Models are built by hand the way schema_catalog.c fills them
 * (names quoted, definitions as PostgreSQL deparses them).
 */
#include "core/nx.h"
#include "db/schema.h"
#include "db/schema_int.h"
#include "core/arena.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAXN 16

static nx_arena_t *A;

static int setup(void **state)
{
    (void)state;
    A = nx_arena_new(64u << 10);
    return A ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nx_arena_free(A);
    return 0;
}

/* ---- building models ------------------------------------------------------ */

static nx_sc_model_t *model(void)
{
    nx_sc_model_t *m = nx_arena_calloc(A, sizeof(*m));
    m->tables = nx_arena_calloc(A, MAXN * sizeof(*m->tables));
    for (int k = 0; k < NX_SC_NKINDS; k++)
        m->objs[k] = nx_arena_calloc(A, MAXN * sizeof(*m->objs[k]));
    return m;
}

static nx_sc_table_t *table(nx_sc_model_t *m, const char *name, unsigned oid, bool rls)
{
    nx_sc_table_t *t = &m->tables[m->ntables++];
    t->name = name;
    t->oid = oid;
    t->rls = t->force = rls;
    t->cols = nx_arena_calloc(A, MAXN * sizeof(*t->cols));
    return t;
}

static nx_sc_column_t *col(nx_sc_table_t *t, const char *name, const char *type, bool notnull,
                           const char *def)
{
    nx_sc_column_t *c = &t->cols[t->ncols];
    c->name = name;
    c->num = (int)++t->ncols;
    c->type = type;
    c->notnull = notnull;
    c->def = def;
    return c;
}

static nx_sc_obj_t *obj(nx_sc_model_t *m, int kind, const char *table, const char *name,
                        const char *def, unsigned oid)
{
    nx_sc_obj_t *o = &m->objs[kind][m->nobjs[kind]++];
    o->table = table;
    o->name = name;
    o->def = def;
    o->oid = oid;
    return o;
}

static nx_sc_obj_t *policy(nx_sc_model_t *m, const char *table, const char *name,
                           const char *roles, const char *qual, unsigned oid)
{
    const char *def = nx_arena_sprintf(A, "CREATE POLICY %s ON %s TO %s USING (%s)", name, table,
                                       roles, qual);
    nx_sc_obj_t *o = obj(m, NX_SC_POLICY, table, name, def, oid);
    o->type = '*';
    o->flag = true; /* permissive */
    o->roles = roles;
    o->qual = qual;
    return o;
}

static int cmp_table(const void *x, const void *y)
{
    return strcmp(((const nx_sc_table_t *)x)->name, ((const nx_sc_table_t *)y)->name);
}

static int cmp_obj(const void *x, const void *y)
{
    const nx_sc_obj_t *p = x, *q = y;
    int c = (p->table ? 1 : 0) - (q->table ? 1 : 0);
    if (!c && p->table)
        c = strcmp(p->table, q->table);
    return c ? c : strcmp(p->name, q->name);
}

/* Sorts what the catalog reader sorts. */
static nx_sc_model_t *done(nx_sc_model_t *m)
{
    qsort(m->tables, m->ntables, sizeof(*m->tables), cmp_table);
    for (int k = 0; k < NX_SC_NKINDS; k++)
        qsort(m->objs[k], m->nobjs[k], sizeof(*m->objs[k]), cmp_obj);
    return m;
}

/* users(id, organisation_id, email, avatar), RLS forced, with a policy. */
static nx_sc_model_t *users_model(bool with_avatar)
{
    nx_sc_model_t *m = model();
    nx_sc_table_t *t = table(m, "users", 200, true);
    col(t, "id", "uuid", true, "gen_random_uuid()");
    col(t, "organisation_id", "uuid", true, NULL);
    col(t, "email", "character varying(255)", true, NULL);
    if (with_avatar)
        col(t, "avatar", "character varying(500)", false, NULL);
    obj(m, NX_SC_CONSTRAINT, "users", "users_pkey", "PRIMARY KEY (id)", 210)->type = 'p';
    policy(m, "users", "tenant_isolation", "nexus_app", "(organisation_id = nx_org())", 220);
    return m;
}

/* The plan from head to declared. */
static nx_schema_plan_t plan(const nx_sc_model_t *head, const nx_sc_model_t *declared)
{
    nx_schema_plan_t p;
    memset(&p, 0, sizeof(p));
    assert_int_equal(nx_sc_plan_models(A, declared, head, NULL, 0, &p), NX_OK);
    return p;
}

static bool hazard(const nx_schema_plan_t *p, int class, const char *text)
{
    for (size_t i = 0; i < p->nhazards; i++)
        if (p->hazard_class[i] == class && strstr(p->hazards[i], text))
            return true;
    return false;
}

/* Position of s in text; fails the test when absent. */
static long at(const char *text, const char *s)
{
    const char *p = strstr(text, s);
    if (!p)
        fail_msg("\"%s\" not in:\n%s", s, text);
    return p - text;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_type_change(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to;
        int how;
    } cases[] = {
        {"character varying(255)", "character varying(500)", 0},
        {"character varying(500)", "character varying(100)", 2},
        {"character varying(255)", "text", 0},
        {"text", "character varying(10)", 2},
        {"character(5)", "character(3)", 2},
        {"integer", "bigint", 1},
        {"bigint", "integer", 2},
        {"smallint", "numeric", 1},
        {"numeric(10,2)", "numeric(12,2)", 0},
        {"numeric(10,2)", "numeric(10,1)", 2},
        {"numeric(10,2)", "numeric", 0},
        {"numeric", "numeric(10,2)", 2},
        {"numeric(10,2)", "integer", 2},
        {"double precision", "real", 2},
        {"real", "double precision", 1},
        {"timestamp(6) with time zone", "timestamp(3) with time zone", 2},
        {"timestamp(3) with time zone", "timestamp(6) with time zone", 0},
        {"timestamp with time zone", "date", 2},
        {"text", "integer", 1},
        {"uuid", "text", 1},
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(cases); i++)
        if (nx_sc_type_change(cases[i].from, cases[i].to) != cases[i].how)
            fail_msg("%s -> %s: %d, expected %d", cases[i].from, cases[i].to,
                     nx_sc_type_change(cases[i].from, cases[i].to), cases[i].how);
}

static void test_add_column_is_safe_and_undone(void **state)
{
    (void)state;
    nx_sc_model_t *head = done(users_model(false));
    nx_sc_model_t *decl = users_model(false);
    col(&decl->tables[0], "avatar_url", "character varying(500)", false, NULL);
    nx_schema_plan_t p = plan(head, done(decl));
    assert_string_equal(p.up, "ALTER TABLE users ADD COLUMN avatar_url character varying(500);\n\n");
    assert_string_equal(p.down, "ALTER TABLE users DROP COLUMN avatar_url;\n\n");
    assert_int_equal(p.nhazards, 0);
    assert_int_equal(p.nchanges, 1);
    assert_string_equal(p.changes[0], "+ column users.avatar_url character varying(500)");
    assert_string_equal(p.cup, "");
}

static void test_likely_rename(void **state)
{
    (void)state;
    nx_sc_model_t *head = done(users_model(true));
    nx_sc_model_t *decl = users_model(false);
    col(&decl->tables[0], "avatar_url", "character varying(500)", false, NULL);
    nx_schema_plan_t p = plan(head, done(decl));
    assert_true(hazard(&p, NX_SCHEMA_HZ_DATA_LOSS, "drops column users.avatar"));
    assert_int_equal(p.nnotes, 1);
    assert_non_null(strstr(p.notes[0], "--rename users.avatar=avatar_url"));
    /* the drop carries the suggestion, and comes after the add */
    long add = at(p.up, "ADD COLUMN avatar_url"), hint = at(p.up, "-- possible rename: ALTER "
                                                                  "TABLE users RENAME COLUMN "
                                                                  "avatar TO avatar_url");
    assert_true(add < hint && hint < at(p.up, "DROP COLUMN avatar"));
}

static void test_rename_given(void **state)
{
    (void)state;
    /* the head database already had the rename applied: one column */
    nx_sc_model_t *head = users_model(false);
    col(&head->tables[0], "avatar_url", "character varying(500)", false, NULL);
    nx_sc_rename_t rn = {"ALTER TABLE users RENAME COLUMN avatar TO avatar_url",
                         "ALTER TABLE users RENAME COLUMN avatar_url TO avatar", "users",
                         "avatar", "avatar_url"};
    nx_schema_plan_t p;
    assert_int_equal(nx_sc_plan_models(A, done(head), head, &rn, 1, &p), NX_OK);
    assert_string_equal(p.up, "ALTER TABLE users RENAME COLUMN avatar TO avatar_url;\n\n");
    assert_string_equal(p.down, "-- function bodies are checked when they run: one may call "
                                "another created further down\nSET LOCAL check_function_bodies "
                                "= off;\n\nALTER TABLE users RENAME COLUMN avatar_url TO "
                                "avatar;\n\n");
    assert_int_equal(p.nhazards, 0);
}

static void test_narrowing_and_not_null(void **state)
{
    (void)state;
    nx_sc_model_t *head = done(users_model(true));
    nx_sc_model_t *decl = users_model(true);
    decl->tables[0].cols[2].type = "character varying(100)"; /* email */
    decl->tables[0].cols[3].notnull = true;                  /* avatar */
    nx_schema_plan_t p = plan(head, done(decl));
    assert_true(hazard(&p, NX_SCHEMA_HZ_DATA_LOSS, "narrows users.email"));
    assert_true(hazard(&p, NX_SCHEMA_HZ_LOCK, "changing users.email"));
    assert_true(hazard(&p, NX_SCHEMA_HZ_LOCK, "SET NOT NULL on users.avatar"));
    at(p.up, "ALTER COLUMN email TYPE character varying(100) USING "
             "email::character varying(100)");
    at(p.down, "ALTER COLUMN avatar DROP NOT NULL");

    /* a validated CHECK (avatar IS NOT NULL) at head makes SET NOT NULL cheap */
    head = users_model(true);
    nx_sc_obj_t *k = obj(head, NX_SC_CONSTRAINT, "users", "users_avatar_nn",
                         "CHECK ((avatar IS NOT NULL))", 230);
    k->type = 'c';
    k->flag = true;
    decl = users_model(true);
    decl->tables[0].cols[3].notnull = true;
    obj(decl, NX_SC_CONSTRAINT, "users", "users_avatar_nn", "CHECK ((avatar IS NOT NULL))",
        230)->type = 'c';
    decl->objs[NX_SC_CONSTRAINT][1].flag = true;
    p = plan(done(head), done(decl));
    assert_int_equal(p.nhazards, 0);
    /* widening needs no rewrite */
    decl = users_model(true);
    decl->tables[0].cols[2].type = "character varying(500)";
    p = plan(done(users_model(true)), done(decl));
    assert_int_equal(p.nhazards, 0);
}

static void test_rls_weakened(void **state)
{
    (void)state;
    nx_sc_model_t *head = done(users_model(false));
    nx_sc_model_t *decl = users_model(false);
    decl->tables[0].force = false;
    decl->nobjs[NX_SC_POLICY] = 0;
    nx_schema_plan_t p = plan(head, done(decl));
    assert_true(hazard(&p, NX_SCHEMA_HZ_RLS, "FORCE row-level security off on users"));
    assert_true(hazard(&p, NX_SCHEMA_HZ_RLS, "drops policy tenant_isolation on users"));

    decl = users_model(false);
    decl->tables[0].rls = false;
    p = plan(head, done(decl));
    assert_true(hazard(&p, NX_SCHEMA_HZ_RLS, "disables row-level security on users"));

    /* a loosened policy, and a new permissive one */
    decl = users_model(false);
    decl->objs[NX_SC_POLICY][0] = *policy(model(), "users", "tenant_isolation", "nexus_app",
                                          "true", 220);
    policy(decl, "users", "zz_everyone", "PUBLIC", "true", 230);
    p = plan(head, done(decl));
    assert_true(hazard(&p, NX_SCHEMA_HZ_RLS, "changes policy tenant_isolation on users"));
    assert_true(hazard(&p, NX_SCHEMA_HZ_RLS, "adds permissive policy zz_everyone"));
    assert_true(at(p.up, "DROP POLICY tenant_isolation ON users") <
                at(p.up, "CREATE POLICY tenant_isolation ON users"));

    /* only a role taken away: no hazard */
    head = users_model(false);
    head->objs[NX_SC_POLICY][0] = *policy(model(), "users", "tenant_isolation",
                                          "CURRENT_USER, nexus_app",
                                          "(organisation_id = nx_org())", 220);
    p = plan(done(head), done(users_model(false)));
    assert_int_equal(p.nhazards, 0);
    assert_int_equal(p.nchanges, 1);
}

/* A new table with everything: each statement after what it needs; its
 * down drops the function that takes its row type before the table. */
static void test_dependency_order(void **state)
{
    (void)state;
    nx_sc_model_t *head = done(users_model(false));
    nx_sc_model_t *decl = users_model(false);
    nx_sc_table_t *t = table(decl, "widgets", 300, true);
    col(t, "id", "bigint", true, NULL)->identity = 'a';
    col(t, "user_id", "uuid", true, NULL);
    t->acl.items = nx_arena_calloc(A, sizeof(*t->acl.items));
    t->acl.items[0] = (nx_sc_grant_t){"nexus_app", "SELECT", false};
    t->acl.n = 1;
    obj(decl, NX_SC_CONSTRAINT, "widgets", "widgets_pkey", "PRIMARY KEY (id)", 310)->type = 'p';
    obj(decl, NX_SC_CONSTRAINT, "widgets", "widgets_user_id_fkey",
        "FOREIGN KEY (user_id) REFERENCES users(id)", 311)->type = 'f';
    obj(decl, NX_SC_INDEX, "widgets", "widgets_user_idx",
        "CREATE INDEX widgets_user_idx ON public.widgets USING btree (user_id)", 312);
    policy(decl, "widgets", "tenant", "nexus_app", "(user_id IS NOT NULL)", 313);
    obj(decl, NX_SC_TRIGGER, "widgets", "widgets_touch",
        "CREATE TRIGGER widgets_touch BEFORE UPDATE ON public.widgets FOR EACH ROW EXECUTE "
        "FUNCTION nx_touch()", 315)->uses = "nx_touch()";
    nx_sc_obj_t *f = obj(decl, NX_SC_FUNCTION, NULL, "nx_widget_json(widgets)",
                         "CREATE OR REPLACE FUNCTION public.nx_widget_json(w widgets)\n"
                         " RETURNS json\n LANGUAGE sql\nAS $function$ SELECT 1 $function$\n", 314);
    f->result = "json";
    f->args = "w widgets";
    nx_sc_obj_t *touch = obj(decl, NX_SC_FUNCTION, NULL, "nx_touch()",
                             "CREATE OR REPLACE FUNCTION public.nx_touch() RETURNS trigger", 150);
    touch->result = "trigger";
    touch->args = "";
    nx_sc_obj_t *touch_head = obj(head, NX_SC_FUNCTION, NULL, "nx_touch()", touch->def, 150);
    *touch_head = *touch;
    done(head);
    nx_schema_plan_t p = plan(head, done(decl));
    const char *order[] = {
        "CREATE TABLE widgets (\n    id bigint GENERATED ALWAYS AS IDENTITY,\n"
        "    user_id uuid NOT NULL\n)",
        "CREATE OR REPLACE FUNCTION public.nx_widget_json",
        "ADD CONSTRAINT widgets_pkey PRIMARY KEY (id)",
        "ADD CONSTRAINT widgets_user_id_fkey FOREIGN KEY",
        "CREATE INDEX widgets_user_idx ON",
        "ALTER TABLE widgets ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY tenant ON widgets",
        "CREATE TRIGGER widgets_touch",
        "GRANT SELECT ON TABLE widgets TO nexus_app",
        "REVOKE EXECUTE ON FUNCTION nx_widget_json(widgets) FROM PUBLIC",
    };
    for (size_t i = 1; i < NX_ARRAY_LEN(order); i++)
        if (at(p.up, order[i - 1]) >= at(p.up, order[i]))
            fail_msg("\"%s\" should come before \"%s\":\n%s", order[i - 1], order[i], p.up);
    assert_string_equal(p.cup, ""); /* a new table's index needs no CONCURRENTLY */
    assert_int_equal(p.nhazards, 0);
    assert_string_equal(p.down, "DROP FUNCTION nx_widget_json(widgets);\n\n"
                                "DROP TABLE widgets;\n\n");

    /* the trigger's function can only be dropped and created: so is the trigger */
    nx_sc_model_t *decl2 = model();
    *decl2 = *decl;
    decl2->objs[NX_SC_FUNCTION] = nx_arena_calloc(A, MAXN * sizeof(nx_sc_obj_t));
    memcpy(decl2->objs[NX_SC_FUNCTION], decl->objs[NX_SC_FUNCTION],
           decl->nobjs[NX_SC_FUNCTION] * sizeof(nx_sc_obj_t));
    for (size_t i = 0; i < decl2->nobjs[NX_SC_FUNCTION]; i++)
        if (strcmp(decl2->objs[NX_SC_FUNCTION][i].name, "nx_touch()") == 0) {
            decl2->objs[NX_SC_FUNCTION][i].def = "CREATE OR REPLACE FUNCTION public.nx_touch() "
                                                 "RETURNS event_trigger";
            decl2->objs[NX_SC_FUNCTION][i].result = "event_trigger";
        }
    p = plan(decl, decl2);
    long drop_trigger = at(p.up, "DROP TRIGGER widgets_touch ON widgets");
    long drop_fn = at(p.up, "DROP FUNCTION nx_touch()");
    long create_fn = at(p.up, "RETURNS event_trigger");
    long create_trigger = at(p.up, "CREATE TRIGGER widgets_touch");
    assert_true(drop_trigger < drop_fn && drop_fn < create_fn && create_fn < create_trigger);
}

/* On a table that exists: indexes CONCURRENTLY, CHECK and FOREIGN KEY added
 * NOT VALID and validated in the no-transaction part; UNIQUE is a hazard. */
static void test_existing_table_online(void **state)
{
    (void)state;
    nx_sc_model_t *head = done(users_model(false));
    nx_sc_model_t *decl = users_model(false);
    obj(decl, NX_SC_INDEX, "users", "users_email_idx",
        "CREATE INDEX users_email_idx ON public.users USING btree (email)", 240);
    obj(decl, NX_SC_CONSTRAINT, "users", "users_email_check",
        "CHECK (((email)::text <> ''::text))", 241)->type = 'c';
    obj(decl, NX_SC_CONSTRAINT, "users", "users_email_key", "UNIQUE (email)", 242)->type = 'u';
    nx_schema_plan_t p = plan(head, done(decl));
    assert_string_equal(p.cup, "ALTER TABLE users VALIDATE CONSTRAINT users_email_check;\n\n"
                               "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON "
                               "public.users USING btree (email);\n\n");
    assert_string_equal(p.cdown, "DROP INDEX CONCURRENTLY IF EXISTS users_email_idx;\n\n");
    at(p.up, "ADD CONSTRAINT users_email_check CHECK (((email)::text <> ''::text)) NOT VALID;");
    at(p.up, "ADD CONSTRAINT users_email_key UNIQUE (email);");
    assert_null(strstr(p.up, "CREATE INDEX"));
    assert_null(strstr(p.down, "INDEX")); /* the index goes with the other file */
    at(p.down, "DROP CONSTRAINT users_email_check");
    assert_int_equal(p.nhazards, 1);
    assert_true(hazard(&p, NX_SCHEMA_HZ_LOCK, "adding constraint users_email_key"));

    /* a file of its own with hazards and the no-transaction marker */
    char *text = nx_schema_render_file(A, &p, "online\nchanges", true);
    assert_non_null(strstr(text, "-- online changes\n"));
    assert_non_null(strstr(text, "\n-- nexus:no-transaction\n-- nexus:up\n"));
    assert_null(strstr(text, "HAZARDS")); /* those head the first file */
    text = nx_schema_render_file(A, &p, "online", false);
    assert_non_null(strstr(text, "-- HAZARDS:\n--   long lock: adding constraint"));
    assert_null(strstr(text, "no-transaction"));
}

static void test_function_replace_and_grants(void **state)
{
    (void)state;
    nx_sc_model_t *head = model(), *decl = model();
    nx_sc_obj_t *f = obj(head, NX_SC_FUNCTION, NULL, "nx_ts(timestamp with time zone)",
                         "CREATE OR REPLACE FUNCTION public.nx_ts(ts timestamp with time zone)\n"
                         " RETURNS text\nAS $function$ SELECT 1 $function$\n", 100);
    f->result = "text";
    f->args = "ts timestamp with time zone";
    nx_sc_grant_t pub[] = {{"PUBLIC", "EXECUTE", false}};
    nx_sc_grant_t app[] = {{"nexus_app", "EXECUTE", false}};
    f->acl = (nx_sc_acl_t){pub, 1};
    nx_sc_obj_t *g = obj(decl, NX_SC_FUNCTION, NULL, f->name,
                         "CREATE OR REPLACE FUNCTION public.nx_ts(ts timestamp with time zone)\n"
                         " RETURNS text\nAS $function$ SELECT 2 $function$\n", 100);
    *g = (nx_sc_obj_t){.name = f->name, .def = g->def, .oid = 100, .result = "text",
                       .args = f->args, .acl = {app, 1}};
    nx_schema_plan_t p = plan(done(head), done(decl));
    assert_string_equal(p.up,
                        "-- function bodies are checked when they run: one may call another "
                        "created further down\nSET LOCAL check_function_bodies = off;\n\n"
                        "REVOKE EXECUTE ON FUNCTION nx_ts(timestamp with time zone) FROM PUBLIC;\n\n"
                        "CREATE OR REPLACE FUNCTION public.nx_ts(ts timestamp with time zone)\n"
                        " RETURNS text\nAS $function$ SELECT 2 $function$;\n\n"
                        "GRANT EXECUTE ON FUNCTION nx_ts(timestamp with time zone) TO nexus_app;\n\n");
    assert_non_null(strstr(p.changes[0], "~ function nx_ts(timestamp with time zone), line 3:\n"
                                         "    - AS $function$ SELECT 1 $function$\n"
                                         "    + AS $function$ SELECT 2 $function$"));
    at(p.down, "SELECT 1");
    at(p.down, "GRANT EXECUTE ON FUNCTION nx_ts(timestamp with time zone) TO PUBLIC");
    assert_null(strstr(p.up, "DROP FUNCTION"));
}

static void test_nothing_to_do(void **state)
{
    (void)state;
    nx_schema_plan_t p = plan(done(users_model(true)), done(users_model(true)));
    p.head = "0001 x";
    assert_true(nx_schema_plan_empty(&p));
    /* an object autogenerate does not write is still a difference */
    nx_sc_model_t *decl = users_model(true);
    nx_sc_other_t enum_type = {"enum type", "colour", "'red', 'green'"};
    decl->others = &enum_type;
    decl->nothers = 1;
    p = plan(done(users_model(true)), done(decl));
    assert_false(nx_schema_plan_empty(&p));
    assert_string_equal(p.changes[0], "+ enum type colour (not generated: write its SQL by hand)");
    assert_string_equal(p.up, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_change),
        cmocka_unit_test_setup_teardown(test_add_column_is_safe_and_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_likely_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_given, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrowing_and_not_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rls_weakened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dependency_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_table_online, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_replace_and_grants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_to_do, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
