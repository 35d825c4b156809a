/*
 * schema_diff_obj.c - compares what hangs off tables (constraints, indexes,
 * triggers, policies), functions, privileges, comments, and the objects
 * autogenerate leaves to the author.
 *
 * An object whose definition differs is dropped and created again, except
 * a function whose result and arguments stay the same: CREATE OR REPLACE
 * keeps its grants and its dependents. A function that must be dropped
 * takes the triggers and policies that call it along, so they are created
 * again after it. On a table that already exists, an index is built
 * CONCURRENTLY and a CHECK or FOREIGN KEY is added NOT VALID and validated
 * afterwards, both in the migration's no-transaction part, so that no long
 * lock is held; a UNIQUE or PRIMARY KEY constraint cannot be, and is a
 * hazard. Pure: no database.
 */
#include "core/nx.h"
#include "db/schema_int.h"
#include "db/schema.h"
#include "core/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[NX_SC_NKINDS] = {
    [NX_SC_CONSTRAINT] = "constraint", [NX_SC_INDEX] = "index", [NX_SC_TRIGGER] = "trigger",
    [NX_SC_POLICY] = "policy",         [NX_SC_FUNCTION] = "function",
};

struct objdiff {
    nx_sc_diff_t *d;
    int kind;
    const char **recreated; /* functions dropped and created (from side) */
    size_t nrecreated;
};

static bool same(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

static uint64_t create_key(unsigned oid)
{
    return (uint64_t)oid << 16;
}

static uint64_t drop_key(unsigned oid)
{
    return UINT64_MAX - create_key(oid);
}

static int cmp_key(const char *table, const char *name, const nx_sc_obj_t *o)
{
    if (!table || !o->table) {
        if (table || o->table)
            return table ? 1 : -1;
    } else {
        int c = strcmp(table, o->table);
        if (c)
            return c;
    }
    return strcmp(name, o->name);
}

const nx_sc_obj_t *nx_sc_obj_find(const nx_sc_model_t *m, int kind, const char *table,
                                  const char *name)
{
    size_t lo = 0, hi = m->nobjs[kind];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(table, name, &m->objs[kind][mid]);
        if (c == 0)
            return &m->objs[kind][mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* "index jobs_claim_idx on jobs", "function nx_ts(timestamp with time zone)" */
static const char *label(nx_sc_diff_t *d, int kind, const nx_sc_obj_t *o)
{
    char *s = nx_arena_sprintf(d->arena, "%s %s%s%s", kind_names[kind], o->name,
                               o->table && kind != NX_SC_INDEX ? " on " : "",
                               o->table && kind != NX_SC_INDEX ? o->table : "");
    if (!s)
        d->err = NX_ENOMEM;
    return s ? s : "";
}

/* "~ index x:" then the first line where the definitions differ. */
static void line_diff(nx_sc_diff_t *d, const char *what, const char *a, const char *b)
{
    int line = 1;
    const char *p = a, *q = b, *pa = a, *pb = b;
    for (; *p && *p == *q; p++, q++)
        if (*p == '\n')
            line++, pa = p + 1, pb = q + 1;
    int na = (int)strcspn(pa, "\n"), nb = (int)strcspn(pb, "\n");
    bool multi = strchr(a, '\n') && strchr(a, '\n')[1];
    nx_sc_line(d, "~ %s%s%.0d:\n    - %.*s\n    + %.*s", what, multi ? ", line " : "",
               multi ? line : 0, na > 200 ? 200 : na, pa, nb > 200 ? 200 : nb, pb);
}

/* ---- privileges ----------------------------------------------------------- */

static int cmp_grant(const nx_sc_grant_t *x, const nx_sc_grant_t *y)
{
    int c = strcmp(x->grantee, y->grantee);
    if (!c)
        c = strcmp(x->priv, y->priv);
    return c ? c : (int)x->grantable - (int)y->grantable;
}

/* GRANT or REVOKE items (sorted by grantee), one statement per grantee.
 * fresh: the object is created by this migration, so its default
 * privileges are revoked after it exists, and not reported. */
static void grant_run(nx_sc_diff_t *d, bool grant, bool fresh, const char *what,
                      const char *object, uint64_t key, const nx_sc_grant_t **items, size_t n)
{
    char lower[16];
    size_t k = 0;
    for (; what[k] && k < sizeof(lower) - 1; k++)
        lower[k] = (char)(what[k] | 0x20);
    lower[k] = '\0';
    for (size_t i = 0, j; i < n; i = j) {
        char privs[256] = "";
        for (j = i; j < n && strcmp(items[j]->grantee, items[i]->grantee) == 0 &&
                    items[j]->grantable == items[i]->grantable;
             j++)
            snprintf(privs + strlen(privs), sizeof(privs) - strlen(privs), "%s%s",
                     j > i ? ", " : "", items[j]->priv);
        if (grant)
            nx_sc_change(d, NX_SC_P_GRANT, key, "GRANT %s ON %s %s TO %s%s", privs, what, object,
                         items[i]->grantee, items[i]->grantable ? " WITH GRANT OPTION" : "");
        else
            nx_sc_change(d, fresh ? NX_SC_P_GRANT : NX_SC_P_REVOKE, key,
                         "REVOKE %s ON %s %s FROM %s", privs, what, object, items[i]->grantee);
        if (grant || !fresh)
            nx_sc_line(d, "%c grant %s on %s %s to %s", grant ? '+' : '-', privs, lower, object,
                       items[i]->grantee);
    }
}

void nx_sc_diff_acl(nx_sc_diff_t *d, const char *what, const char *object, uint64_t key,
                    const nx_sc_acl_t *from, const nx_sc_acl_t *to)
{
    /* a new object starts with the default: EXECUTE for PUBLIC on functions */
    static nx_sc_grant_t public_execute = {"PUBLIC", "EXECUTE", false};
    nx_sc_acl_t fn_default = {&public_execute, 1}, none = {NULL, 0};
    bool fresh = from == NULL;
    if (!from)
        from = strcmp(what, "FUNCTION") == 0 ? &fn_default : &none;
    size_t cap = from->n + to->n + 1, ng = 0, nr = 0, i = 0, j = 0;
    const nx_sc_grant_t **grants = nx_arena_calloc(d->arena, cap * sizeof(*grants));
    const nx_sc_grant_t **revokes = nx_arena_calloc(d->arena, cap * sizeof(*revokes));
    if (!grants || !revokes) {
        d->err = NX_ENOMEM;
        return;
    }
    while (i < from->n || j < to->n) {
        int c = i == from->n ? 1 : j == to->n ? -1 : cmp_grant(&from->items[i], &to->items[j]);
        if (c < 0)
            revokes[nr++] = &from->items[i++];
        else if (c > 0)
            grants[ng++] = &to->items[j++];
        else
            i++, j++;
    }
    grant_run(d, false, fresh, what, object, key, revokes, nr);
    grant_run(d, true, false, what, object, key, grants, ng);
}

/* ---- objects -------------------------------------------------------------- */

static int drop_phase(int kind, const nx_sc_obj_t *o)
{
    static const int phases[NX_SC_NKINDS] = {
        NX_SC_P_DROP_CONSTRAINT, NX_SC_P_DROP_INDEX, NX_SC_P_DROP_TRIGGER,
        NX_SC_P_DROP_POLICY,     NX_SC_P_DROP_FUNCTION,
    };
    return kind == NX_SC_CONSTRAINT && o->type == 'f' ? NX_SC_P_DROP_FKEY : phases[kind];
}

static int create_phase(int kind, const nx_sc_obj_t *o)
{
    static const int phases[NX_SC_NKINDS] = {
        NX_SC_P_ADD_CONSTRAINT,  NX_SC_P_CREATE_INDEX,    NX_SC_P_CREATE_TRIGGER,
        NX_SC_P_CREATE_POLICY,   NX_SC_P_CREATE_FUNCTION,
    };
    return kind == NX_SC_CONSTRAINT && o->type == 'f' ? NX_SC_P_ADD_FKEY : phases[kind];
}

static bool listed(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

static void drop_obj(struct objdiff *x, const nx_sc_obj_t *o)
{
    nx_sc_diff_t *d = x->d;
    int phase = drop_phase(x->kind, o);
    uint64_t key = drop_key(o->oid);
    switch (x->kind) {
    case NX_SC_CONSTRAINT:
        nx_sc_change(d, phase, key, "ALTER TABLE %s DROP CONSTRAINT %s", o->table, o->name);
        break;
    case NX_SC_INDEX:
        if (d->down && listed(d->concurrent, d->nconcurrent, o->name)) {
            char *s = nx_arena_sprintf(d->arena, "DROP INDEX CONCURRENTLY IF EXISTS %s", o->name);
            if (!s)
                d->err = NX_ENOMEM;
            nx_sc_concurrent(d, phase, key, s);
        } else {
            nx_sc_change(d, phase, key, "DROP INDEX %s", o->name);
        }
        break;
    case NX_SC_FUNCTION:
        nx_sc_change(d, phase, key, "DROP FUNCTION %s", o->name);
        break;
    default: /* triggers and policies */
        nx_sc_change(d, phase, key, "DROP %s %s ON %s", x->kind == NX_SC_TRIGGER ? "TRIGGER"
                     : "POLICY", o->name, o->table);
        break;
    }
}

/* "CREATE INDEX name ..." -> "CREATE INDEX CONCURRENTLY IF NOT EXISTS name ..." */
static char *concurrently(nx_sc_diff_t *d, const char *def)
{
    const char *at = strstr(def, "INDEX ");
    if (!at)
        return NULL;
    at += 6;
    char *s = nx_arena_sprintf(d->arena, "%.*sCONCURRENTLY IF NOT EXISTS %s", (int)(at - def),
                               def, at);
    if (!s)
        d->err = NX_ENOMEM;
    return s;
}

static void remember_concurrent(nx_sc_diff_t *d, const char *name)
{
    if (d->nconcurrent == d->capconcurrent) {
        size_t cap = d->capconcurrent ? d->capconcurrent * 2 : 8;
        const char **p = nx_arena_alloc(d->arena, cap * sizeof(*p));
        if (!p) {
            d->err = NX_ENOMEM;
            return;
        }
        if (d->nconcurrent)
            memcpy(p, d->concurrent, d->nconcurrent * sizeof(*p));
        d->concurrent = p;
        d->capconcurrent = cap;
    }
    d->concurrent[d->nconcurrent++] = name;
}

static void create_constraint(struct objdiff *x, const nx_sc_obj_t *o, bool existing)
{
    nx_sc_diff_t *d = x->d;
    int phase = create_phase(x->kind, o);
    uint64_t key = create_key(o->oid);
    size_t n = strlen(o->def);
    bool not_valid = n > 10 && strcmp(o->def + n - 10, " NOT VALID") == 0;
    if (existing && !d->down && !not_valid && (o->type == 'c' || o->type == 'f')) {
        nx_sc_change(d, phase, key, "ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", o->table,
                     o->name, o->def);
        char *s = nx_arena_sprintf(d->arena, "ALTER TABLE %s VALIDATE CONSTRAINT %s", o->table,
                                   o->name);
        if (!s)
            d->err = NX_ENOMEM;
        nx_sc_concurrent(d, phase, key, s);
        return;
    }
    nx_sc_change(d, phase, key, "ALTER TABLE %s ADD CONSTRAINT %s %s", o->table, o->name, o->def);
    if (existing && strchr("upx", o->type))
        nx_sc_note(d, NX_SCHEMA_HZ_LOCK, "long lock: adding constraint %s builds its index on "
                   "%s under an ACCESS EXCLUSIVE lock (build a unique index CONCURRENTLY in an "
                   "earlier migration and add the constraint USING INDEX)", o->name, o->table);
}

/* Creates o; ft is its table on the from side (NULL: a new table). */
static void create_obj(struct objdiff *x, const nx_sc_obj_t *o, const nx_sc_table_t *ft,
                       bool fresh)
{
    nx_sc_diff_t *d = x->d;
    bool existing = ft != NULL;
    if (x->kind == NX_SC_CONSTRAINT) {
        create_constraint(x, o, existing);
    } else if (x->kind == NX_SC_INDEX && existing && !d->down) {
        remember_concurrent(d, o->name);
        nx_sc_concurrent(d, NX_SC_P_CREATE_INDEX, create_key(o->oid), concurrently(d, o->def));
    } else {
        nx_sc_change(d, create_phase(x->kind, o), create_key(o->oid), "%s", o->def);
    }
    if (x->kind == NX_SC_POLICY && fresh && ft && ft->rls && o->flag)
        nx_sc_note(d, NX_SCHEMA_HZ_RLS, "RLS weakened: adds permissive policy %s on %s, which "
                   "widens the rows its roles (%s) may see", o->name, o->table, o->roles);
}

/* True when the n characters at role name a role of list ("a, b"). */
static bool role_in(const char *role, size_t n, const char *list)
{
    for (const char *q = list; *q;) {
        size_t m = strcspn(q, ",");
        if (m == n && strncmp(q, role, n) == 0)
            return true;
        q += m;
        while (*q == ',' || *q == ' ')
            q++;
    }
    return false;
}

/* True when every role of roles is also one of of. */
static bool roles_within(const char *roles, const char *of)
{
    for (const char *p = roles; *p;) {
        size_t n = strcspn(p, ",");
        if (!role_in(p, n, of))
            return false;
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return true;
}

static void policy_hazard(nx_sc_diff_t *d, const nx_sc_obj_t *f, const nx_sc_obj_t *t)
{
    if (f->flag == t->flag && f->type == t->type && same(f->qual, t->qual) &&
        same(f->check, t->check) && roles_within(t->roles, f->roles))
        return; /* only roles taken away */
    nx_sc_note(d, NX_SCHEMA_HZ_RLS, "RLS weakened: changes policy %s on %s (its command, roles, "
               "USING or WITH CHECK): review that it does not widen access", t->name, t->table);
}

/* COMMENT ON when the comment changes; report: the object existed. */
static void obj_comment(struct objdiff *x, const nx_sc_obj_t *o, const char *from_comment,
                        bool report)
{
    static const char *const what[NX_SC_NKINDS] = {"CONSTRAINT", "INDEX", "TRIGGER", "POLICY",
                                                   "FUNCTION"};
    nx_sc_diff_t *d = x->d;
    if (same(from_comment, o->comment))
        return;
    bool on = x->kind != NX_SC_INDEX && x->kind != NX_SC_FUNCTION;
    char *sql = nx_arena_sprintf(d->arena, "COMMENT ON %s %s%s%s IS %s", what[x->kind], o->name,
                                 on ? " ON " : "", on ? o->table : "",
                                 o->comment ? o->comment : "NULL");
    if (!sql)
        d->err = NX_ENOMEM;
    /* an index built concurrently exists only in the no-transaction part */
    if (x->kind == NX_SC_INDEX && !d->down && listed(d->concurrent, d->nconcurrent, o->name))
        nx_sc_concurrent(d, NX_SC_P_COMMENT, create_key(o->oid), sql);
    else if (sql)
        nx_sc_change(d, NX_SC_P_COMMENT, create_key(o->oid), "%s", sql);
    if (report)
        nx_sc_line(d, "~ comment on %s", label(d, x->kind, o));
}

/* True when o calls a function this comparison drops. */
static bool uses_recreated(const struct objdiff *x, const nx_sc_obj_t *o)
{
    for (const char *p = o->uses; p && *p;) {
        size_t n = strcspn(p, "\n");
        for (size_t i = 0; i < x->nrecreated; i++)
            if (strlen(x->recreated[i]) == n && strncmp(x->recreated[i], p, n) == 0)
                return true;
        p += n + (p[n] == '\n');
    }
    return false;
}

static bool replaceable(const nx_sc_obj_t *f, const nx_sc_obj_t *t)
{
    return same(f->result, t->result) && same(f->args, t->args);
}

static void changed_obj(struct objdiff *x, const nx_sc_obj_t *f, const nx_sc_obj_t *t,
                        const nx_sc_table_t *ft)
{
    nx_sc_diff_t *d = x->d;
    const char *what = label(d, x->kind, t);
    bool redefined = strcmp(f->def, t->def) != 0;
    if (redefined)
        line_diff(d, what, f->def, t->def);
    else
        nx_sc_line(d, "~ %s: created again, as a function it calls is", what);
    if (x->kind == NX_SC_FUNCTION && replaceable(f, t)) {
        nx_sc_change(d, NX_SC_P_CREATE_FUNCTION, create_key(t->oid), "%s", t->def);
        obj_comment(x, t, f->comment, true);
        nx_sc_diff_acl(d, "FUNCTION", t->name, create_key(t->oid), &f->acl, &t->acl);
        return;
    }
    drop_obj(x, f);
    create_obj(x, t, ft, false);
    if (x->kind == NX_SC_POLICY && redefined)
        policy_hazard(d, f, t);
    obj_comment(x, t, NULL, false);
    if (x->kind == NX_SC_FUNCTION)
        nx_sc_diff_acl(d, "FUNCTION", t->name, create_key(t->oid), NULL, &t->acl);
}

static void gone_obj(struct objdiff *x, const nx_sc_obj_t *f)
{
    nx_sc_diff_t *d = x->d;
    if (f->table && !nx_sc_table_find(d->to, f->table))
        return; /* goes with its table */
    drop_obj(x, f);
    nx_sc_line(d, "- %s", label(d, x->kind, f));
    if (x->kind == NX_SC_POLICY)
        nx_sc_note(d, NX_SCHEMA_HZ_RLS, "RLS weakened: drops policy %s on %s", f->name, f->table);
}

static void new_obj(struct objdiff *x, const nx_sc_obj_t *t)
{
    nx_sc_diff_t *d = x->d;
    const nx_sc_table_t *ft = t->table ? nx_sc_table_find(d->from, t->table) : NULL;
    create_obj(x, t, ft, true);
    nx_sc_line(d, "+ %s", label(d, x->kind, t));
    obj_comment(x, t, NULL, false);
    if (x->kind == NX_SC_FUNCTION)
        nx_sc_diff_acl(d, "FUNCTION", t->name, create_key(t->oid), NULL, &t->acl);
}

static void same_obj(struct objdiff *x, const nx_sc_obj_t *f, const nx_sc_obj_t *t)
{
    nx_sc_diff_t *d = x->d;
    const nx_sc_table_t *ft = t->table ? nx_sc_table_find(d->from, t->table) : NULL;
    if (strcmp(f->def, t->def) != 0 || uses_recreated(x, f)) {
        changed_obj(x, f, t, ft);
        return;
    }
    obj_comment(x, t, f->comment, true);
    if (x->kind == NX_SC_FUNCTION)
        nx_sc_diff_acl(d, "FUNCTION", t->name, create_key(t->oid), &f->acl, &t->acl);
}

static void diff_kind(struct objdiff *x)
{
    const nx_sc_model_t *fm = x->d->from, *tm = x->d->to;
    const nx_sc_obj_t *f = fm->objs[x->kind], *t = tm->objs[x->kind];
    size_t nf = fm->nobjs[x->kind], nt = tm->nobjs[x->kind], i = 0, j = 0;
    while (!x->d->err && (i < nf || j < nt)) {
        int c = i == nf ? 1 : j == nt ? -1 : cmp_key(f[i].table, f[i].name, &t[j]);
        if (c < 0)
            gone_obj(x, &f[i++]);
        else if (c > 0)
            new_obj(x, &t[j++]);
        else
            same_obj(x, &f[i++], &t[j++]);
    }
}

/* The functions of the from side that are dropped: gone, or changed in a
 * way CREATE OR REPLACE refuses. */
static void find_recreated(struct objdiff *x)
{
    const nx_sc_model_t *fm = x->d->from;
    size_t n = fm->nobjs[NX_SC_FUNCTION];
    x->recreated = nx_arena_calloc(x->d->arena, (n + 1) * sizeof(*x->recreated));
    if (!x->recreated) {
        x->d->err = NX_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const nx_sc_obj_t *f = &fm->objs[NX_SC_FUNCTION][i];
        const nx_sc_obj_t *t = nx_sc_obj_find(x->d->to, NX_SC_FUNCTION, NULL, f->name);
        if (!t || (strcmp(f->def, t->def) != 0 && !replaceable(f, t)))
            x->recreated[x->nrecreated++] = f->name;
    }
}

/* Views, sequences, enum types and the like: no SQL is written for them,
 * but a difference is reported (and fails `migrate check`). */
static void diff_others(nx_sc_diff_t *d)
{
    const nx_sc_model_t *f = d->from, *t = d->to;
    size_t i = 0, j = 0;
    while (i < f->nothers || j < t->nothers) {
        const nx_sc_other_t *a = i < f->nothers ? &f->others[i] : NULL;
        const nx_sc_other_t *b = j < t->nothers ? &t->others[j] : NULL;
        int c = !a ? 1 : !b ? -1 : strcmp(a->kind, b->kind);
        if (a && b && c == 0)
            c = strcmp(a->name, b->name);
        const nx_sc_other_t *o = c <= 0 ? a : b;
        char sign = c < 0 ? '-' : c > 0 ? '+' : '~';
        i += c <= 0;
        j += c >= 0;
        if (c == 0 && same(a->def, b->def))
            continue;
        nx_sc_line(d, "%c %s %s (not generated: write its SQL by hand)", sign, o->kind, o->name);
        nx_sc_note(d, 0, "%s %s %s: autogenerate writes no SQL for this kind of object; add "
                   "it to the migration by hand", o->kind, o->name, sign == '+'
                   ? "is only in schema/" : sign == '-' ? "is only in the migrations"
                   : "differs");
    }
}

void nx_sc_diff_objects(nx_sc_diff_t *d)
{
    struct objdiff x = {.d = d};
    find_recreated(&x);
    for (int k = 0; k < NX_SC_NKINDS && !d->err; k++) {
        x.kind = k;
        diff_kind(&x);
    }
    if (!d->err && !d->down)
        diff_others(d);
}
