/*
 * schema_diff.c - compares two catalog models: tables, columns, their
 * options, and the hazards of changing them.
 *
 * A comparison goes from one model to another and records changes: one SQL
 * statement each, with the phase that orders it (schema_int.h) and a key
 * (creation order) within the phase. The up section of a migration is the
 * comparison from the migrations' catalog to the declared one; the down
 * section is the same comparison the other way round, so it undoes the up
 * by construction. Only the up records readable lines, hazards and notes.
 *
 * Pure: no database. schema_diff_obj.c does the objects that hang off
 * tables (constraints, indexes, triggers, policies) and functions.
 */
#include "core/nx.h"
#include "db/schema_int.h"
#include "db/schema.h"
#include "core/arena.h"
#include "core/buf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- recording ------------------------------------------------------------ */

/* Makes room for one more item in the array that slot points to (a T **,
 * copied with memcpy so any T works). False once out of memory. */
static bool reserve(nx_sc_diff_t *d, void *slot, size_t n, size_t *cap, size_t size)
{
    if (d->err)
        return false;
    if (n < *cap)
        return true;
    void *old, *p;
    size_t ncap = *cap ? *cap * 2 : 16;
    memcpy(&old, slot, sizeof(old));
    p = nx_arena_alloc(d->arena, ncap * size);
    if (!p) {
        d->err = NX_ENOMEM;
        return false;
    }
    if (n)
        memcpy(p, old, n * size);
    memcpy(slot, &p, sizeof(p));
    *cap = ncap;
    return true;
}

static char *vformat(nx_sc_diff_t *d, const char *fmt, va_list ap)
{
    if (d->err)
        return NULL;
    char *s = nx_arena_vsprintf(d->arena, fmt, ap);
    if (!s)
        d->err = NX_ENOMEM;
    return s;
}

static void add_change(nx_sc_diff_t *d, int phase, uint64_t key, bool concurrent,
                       const char *sql)
{
    if (!sql || !reserve(d, &d->changes, d->nchanges, &d->capchanges, sizeof(*d->changes)))
        return;
    nx_sc_change_t *c = &d->changes[d->nchanges];
    c->phase = phase;
    c->key = key;
    c->seq = (unsigned)d->nchanges++;
    c->sql = sql;
    c->concurrent = concurrent;
}

void nx_sc_change(nx_sc_diff_t *d, int phase, uint64_t key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vformat(d, fmt, ap);
    va_end(ap);
    add_change(d, phase, key, false, sql);
}

void nx_sc_line(nx_sc_diff_t *d, const char *fmt, ...)
{
    if (d->down || !reserve(d, &d->lines, d->nlines, &d->caplines, sizeof(*d->lines)))
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(d, fmt, ap);
    va_end(ap);
    if (s)
        d->lines[d->nlines++] = s;
}

void nx_sc_note(nx_sc_diff_t *d, int hazard, const char *fmt, ...)
{
    if (d->down || !reserve(d, &d->notes, d->nnotes, &d->capnotes, sizeof(*d->notes)))
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(d, fmt, ap);
    va_end(ap);
    if (!s)
        return;
    d->notes[d->nnotes].hazard = hazard;
    d->notes[d->nnotes++].text = s;
}

void nx_sc_concurrent(nx_sc_diff_t *d, int phase, uint64_t key, const char *sql)
{
    add_change(d, phase, key, true, sql);
}

/* ---- lookups -------------------------------------------------------------- */

static int cmp_name(const void *key, const void *item)
{
    return strcmp(key, ((const nx_sc_table_t *)item)->name);
}

const nx_sc_table_t *nx_sc_table_find(const nx_sc_model_t *m, const char *name)
{
    if (!m->ntables)
        return NULL;
    return bsearch(name, m->tables, m->ntables, sizeof(*m->tables), cmp_name);
}

const nx_sc_column_t *nx_sc_column_find(const nx_sc_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

static bool same(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

/* Order keys: creates in the creation order of the side that has them;
 * drops in the reverse creation order of the side that loses them. */
static uint64_t create_key(unsigned oid, int num)
{
    return ((uint64_t)oid << 16) | (uint64_t)(num & 0xffff);
}

static uint64_t drop_key(unsigned oid, int num)
{
    return UINT64_MAX - create_key(oid, num);
}

/* ---- type changes --------------------------------------------------------- */

/* A format_type split into its name (typmod removed) and up to two typmod
 * numbers ("numeric(10,2)": "numeric", 10, 2; "timestamp(3) with time zone":
 * "timestamp with time zone", 3). */
struct type {
    char name[96];
    long mod[2];
    int nmod;
};

static void type_parse(const char *s, struct type *t)
{
    size_t n = 0;
    memset(t, 0, sizeof(*t));
    while (*s && n < sizeof(t->name) - 1) {
        if (*s == '(') {
            char *end;
            for (s++; *s && *s != ')'; s = *end == ',' ? end + 1 : end) {
                long v = strtol(s, &end, 10);
                if (end == s)
                    break;
                if (t->nmod < 2)
                    t->mod[t->nmod++] = v;
            }
            while (*s && *s != ')')
                s++;
            if (*s)
                s++;
            continue;
        }
        t->name[n++] = *s++;
    }
    t->name[n] = '\0';
}

static bool is(const struct type *t, const char *name)
{
    return strcmp(t->name, name) == 0;
}

static bool is_text(const struct type *t)
{
    return is(t, "text") || is(t, "character varying");
}

/* Position in a widening chain, or -1. */
static int rank(const struct type *t, const char *const *chain)
{
    for (int i = 0; chain[i]; i++)
        if (is(t, chain[i]))
            return i;
    return -1;
}

static int numeric_change(const struct type *f, const struct type *t)
{
    if (t->nmod == 0)
        return 0; /* unconstrained holds every value, in place */
    if (f->nmod == 0)
        return 2;
    long fs = f->nmod > 1 ? f->mod[1] : 0, ts = t->nmod > 1 ? t->mod[1] : 0;
    if (ts < fs || t->mod[0] - ts < f->mod[0] - fs)
        return 2;
    return ts == fs ? 0 : 1;
}

int nx_sc_type_change(const char *from, const char *to)
{
    static const char *const ints[] = {"smallint", "integer", "bigint", "numeric", NULL};
    static const char *const floats[] = {"real", "double precision", NULL};
    struct type f, t;
    type_parse(from, &f);
    type_parse(to, &t);
    if (strcmp(from, to) == 0)
        return 0;
    if (is_text(&f) && is_text(&t)) {
        if (t.nmod == 0)
            return 0; /* to text or unbounded varchar: no rewrite */
        return f.nmod == 0 || t.mod[0] < f.mod[0] ? 2 : 0;
    }
    if (is(&f, "character") && is(&t, "character"))
        return t.mod[0] < f.mod[0] ? 2 : 1;
    if (is(&f, "numeric") && is(&t, "numeric"))
        return numeric_change(&f, &t);
    if (rank(&f, ints) >= 0 && rank(&t, ints) >= 0)
        return rank(&t, ints) < rank(&f, ints) ? 2 : 1;
    if (rank(&f, floats) >= 0 && rank(&t, floats) >= 0)
        return rank(&t, floats) < rank(&f, floats) ? 2 : 1;
    if ((rank(&f, floats) >= 0 || is(&f, "numeric")) && rank(&t, ints) >= 0)
        return 2; /* fractions are rounded away */
    if (strncmp(f.name, "time", 4) == 0 && strcmp(f.name, t.name) == 0)
        return t.nmod && (!f.nmod || t.mod[0] < f.mod[0]) ? 2 : 0;
    if (strncmp(f.name, "timestamp", 9) == 0 && is(&t, "date"))
        return 2;
    return 1;
}

/* ---- columns -------------------------------------------------------------- */

/* "name type [COLLATE c] [GENERATED ... | DEFAULT e] [IDENTITY] [NOT NULL]" */
static char *column_sql(nx_sc_diff_t *d, const nx_sc_column_t *c)
{
    if (d->err)
        return NULL;
    char *s = nx_arena_sprintf(
        d->arena, "%s %s%s%s%s%s%s%s%s", c->name, c->type, c->collation ? " COLLATE " : "",
        c->collation ? c->collation : "",
        c->generated ? " GENERATED ALWAYS AS (" : c->def ? " DEFAULT " : "",
        c->def ? c->def : "", c->generated ? ") STORED" : "",
        c->identity == 'a'   ? " GENERATED ALWAYS AS IDENTITY"
        : c->identity == 'd' ? " GENERATED BY DEFAULT AS IDENTITY"
                             : "",
        c->notnull && !c->identity ? " NOT NULL" : "");
    if (!s)
        d->err = NX_ENOMEM;
    return s;
}

static void column_comment(nx_sc_diff_t *d, const nx_sc_table_t *t, const nx_sc_column_t *c,
                           const char *from_comment)
{
    if (same(from_comment, c->comment))
        return;
    nx_sc_change(d, NX_SC_P_COMMENT, create_key(t->oid, c->num), "COMMENT ON COLUMN %s.%s IS %s",
                 t->name, c->name, c->comment ? c->comment : "NULL");
    nx_sc_line(d, "~ comment on column %s.%s", t->name, c->name);
}

static void add_column(nx_sc_diff_t *d, const nx_sc_table_t *t, const nx_sc_column_t *c)
{
    nx_sc_change(d, NX_SC_P_ADD_COLUMN, create_key(t->oid, c->num), "ALTER TABLE %s ADD COLUMN %s",
                 t->name, column_sql(d, c));
    nx_sc_line(d, "+ column %s.%s %s", t->name, c->name, c->type);
    if (c->notnull && !c->def && !c->identity && !strstr(c->type, "serial") && !c->generated)
        nx_sc_note(d, 0, "column %s.%s is NOT NULL without a default: adding it fails while "
                   "%s has rows", t->name, c->name, t->name);
    bool serial = strstr(c->type, "serial") != NULL;
    if (c->generated || c->volatile_def || c->identity || serial)
        nx_sc_note(d, NX_SCHEMA_HZ_LOCK, "table rewrite: adding column %s.%s with a %s rewrites "
                   "%s under an ACCESS EXCLUSIVE lock", t->name, c->name,
                   c->generated ? "generated value" : c->identity || serial ? "sequence"
                   : "volatile default", t->name);
    column_comment(d, t, c, NULL);
}

/* True when the table has a validated CHECK (col IS NOT NULL), which lets
 * SET NOT NULL skip its scan. */
static bool has_not_null_check(const nx_sc_model_t *m, const nx_sc_table_t *t, const char *col)
{
    char want[160];
    snprintf(want, sizeof(want), "CHECK ((%s IS NOT NULL))", col);
    for (size_t i = 0; i < m->nobjs[NX_SC_CONSTRAINT]; i++) {
        const nx_sc_obj_t *k = &m->objs[NX_SC_CONSTRAINT][i];
        if (k->type == 'c' && k->flag && strcmp(k->table, t->name) == 0 &&
            strcmp(k->def, want) == 0)
            return true;
    }
    return false;
}

struct coldiff {
    nx_sc_diff_t *d;
    const nx_sc_table_t *t;
    const nx_sc_column_t *f, *c;
    uint64_t key;
    char what[512]; /* the readable summary of the change */
};

static void alter(struct coldiff *x, const char *action, const char *arg)
{
    nx_sc_change(x->d, NX_SC_P_ALTER_COLUMN, x->key, "ALTER TABLE %s ALTER COLUMN %s %s%s",
                 x->t->name, x->c->name, action, arg ? arg : "");
}

static void say(struct coldiff *x, const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(x->what);
    snprintf(x->what + n, sizeof(x->what) - n, "%s", n ? "; " : "");
    n = strlen(x->what);
    snprintf(x->what + n, sizeof(x->what) - n, fmt, a ? a : "none", b ? b : "none");
}

/* A stored generated column whose expression changes, a plain column that
 * becomes generated, or a generated column reading a column whose type
 * changes (retyped): PostgreSQL 15 can only drop and add it, around the
 * other columns' changes. */
static bool regenerate(struct coldiff *x, bool retyped)
{
    const nx_sc_column_t *f = x->f, *c = x->c;
    bool same_expr = f->generated && same(f->def, c->def);
    if (!c->generated || (same_expr && !retyped))
        return false;
    nx_sc_change(x->d, NX_SC_P_DROP_GENERATED, x->key, "ALTER TABLE %s DROP COLUMN %s",
                 x->t->name, c->name);
    nx_sc_change(x->d, NX_SC_P_ADD_GENERATED, x->key, "ALTER TABLE %s ADD COLUMN %s",
                 x->t->name, column_sql(x->d, c));
    if (same_expr) {
        nx_sc_note(x->d, NX_SCHEMA_HZ_LOCK, "table rewrite: generated column %s.%s is dropped "
                   "and added again around the type change of a column", x->t->name, c->name);
        return true;
    }
    nx_sc_line(x->d, "~ column %s.%s: generated as %s (was %s)", x->t->name, c->name, c->def,
               f->generated ? f->def : "a plain column");
    nx_sc_note(x->d, f->generated ? NX_SCHEMA_HZ_LOCK : NX_SCHEMA_HZ_DATA_LOSS,
               f->generated ? "table rewrite: column %s.%s is dropped and added again to change "
                              "its generation expression"
                            : "data loss: column %s.%s is dropped and added again as a "
                              "generated column",
               x->t->name, c->name);
    return true;
}

static void type_change(struct coldiff *x)
{
    const nx_sc_column_t *f = x->f, *c = x->c;
    if (same(f->type, c->type) && same(f->collation, c->collation))
        return;
    char arg[512];
    snprintf(arg, sizeof(arg), "%s%s%s USING %s::%s", c->type, c->collation ? " COLLATE " : "",
             c->collation ? c->collation : "", c->name, c->type);
    alter(x, "TYPE ", arg);
    say(x, "type %s -> %s", f->type, c->type);
    int how = nx_sc_type_change(f->type, c->type);
    if (how == 2)
        nx_sc_note(x->d, NX_SCHEMA_HZ_DATA_LOSS, "data loss: narrows %s.%s from %s to %s",
                   x->t->name, c->name, f->type, c->type);
    if (how >= 1 || !same(f->collation, c->collation))
        nx_sc_note(x->d, NX_SCHEMA_HZ_LOCK, "table rewrite: changing %s.%s from %s to %s "
                   "rewrites %s under an ACCESS EXCLUSIVE lock", x->t->name, c->name, f->type,
                   c->type, x->t->name);
}

static void not_null_change(struct coldiff *x)
{
    const nx_sc_column_t *f = x->f, *c = x->c;
    if (f->notnull == c->notnull || (c->identity && !f->identity))
        return;
    alter(x, c->notnull ? "SET NOT NULL" : "DROP NOT NULL", NULL);
    say(x, "%s -> %s", f->notnull ? "NOT NULL" : "NULL", c->notnull ? "NOT NULL" : "NULL");
    if (c->notnull && !has_not_null_check(x->d->from, x->t, c->name))
        nx_sc_note(x->d, NX_SCHEMA_HZ_LOCK, "long lock: SET NOT NULL on %s.%s scans %s under an "
                   "ACCESS EXCLUSIVE lock (a validated CHECK (%s IS NOT NULL) in an earlier "
                   "migration avoids the scan)", x->t->name, c->name, x->t->name, c->name);
}

/* Statements in the order PostgreSQL accepts them: what goes first, then
 * the type, then what the new type must allow. */
static void diff_column(nx_sc_diff_t *d, const nx_sc_table_t *t, const nx_sc_column_t *f,
                        const nx_sc_column_t *c, bool retyped)
{
    struct coldiff x = {.d = d, .t = t, .f = f, .c = c, .key = create_key(t->oid, c->num)};
    if (!same(f->type, c->type) && (strstr(f->type, "serial") || strstr(c->type, "serial"))) {
        nx_sc_line(d, "~ column %s.%s: type %s -> %s", t->name, c->name, f->type, c->type);
        nx_sc_note(d, 0, "column %s.%s changes between %s and %s, which autogenerate does not "
                   "write (a serial owns a sequence): write it by hand, or use an identity "
                   "column", t->name, c->name, f->type, c->type);
        return;
    }
    if (regenerate(&x, retyped)) {
        column_comment(d, t, c, f->comment);
        return;
    }
    const char *fdef = f->def;
    if (f->generated && !c->generated) {
        alter(&x, "DROP EXPRESSION", NULL);
        say(&x, "generated as %s -> %s", f->def, "stored values");
        fdef = NULL;
    }
    if (f->identity && !c->identity)
        alter(&x, "DROP IDENTITY", NULL);
    bool retype = !same(f->type, c->type) || !same(f->collation, c->collation);
    if (fdef && !same(fdef, c->def) && (!c->def || retype))
        alter(&x, "DROP DEFAULT", NULL); /* the old one may not suit the new type */
    if (!c->notnull)
        not_null_change(&x);
    type_change(&x);
    if (c->notnull)
        not_null_change(&x);
    if (c->identity && c->identity != f->identity) {
        char arg[48];
        snprintf(arg, sizeof(arg), "%s%s", c->identity == 'a' ? "ALWAYS" : "BY DEFAULT",
                 f->identity ? "" : " AS IDENTITY");
        alter(&x, f->identity ? "SET GENERATED " : "ADD GENERATED ", arg);
    }
    if (c->identity != f->identity)
        say(&x, "identity %s -> %s", f->identity ? "on" : "off", c->identity ? "on" : "off");
    if (!c->generated && !same(fdef, c->def)) {
        if (c->def)
            alter(&x, "SET DEFAULT ", c->def);
        say(&x, "default %s -> %s", fdef, c->def);
    }
    if (x.what[0])
        nx_sc_line(d, "~ column %s.%s: %s", t->name, c->name, x.what);
    column_comment(d, t, c, f->comment);
}

/* "-- users.avatar_url may be users.avatar renamed ..." before the drop of
 * a column whose type matches an added one, or "" when none matches. */
static const char *rename_hint(nx_sc_diff_t *d, const nx_sc_table_t *f, const nx_sc_table_t *t,
                               const nx_sc_column_t *gone, bool *taken)
{
    for (size_t i = 0; i < t->ncols; i++) {
        const nx_sc_column_t *c = &t->cols[i];
        if (taken[i] || nx_sc_column_find(f, c->name) || strcmp(c->type, gone->type) != 0)
            continue;
        taken[i] = true;
        nx_sc_note(d, 0, "possible rename: %s.%s and %s.%s have the same type (%s); if %s was "
                   "renamed, run again with --rename %s.%s=%s to keep its data", t->name,
                   gone->name, t->name, c->name, c->type, gone->name, t->name, gone->name,
                   c->name);
        char *s = nx_arena_sprintf(d->arena, "-- possible rename: ALTER TABLE %s RENAME COLUMN "
                                   "%s TO %s keeps the data (--rename %s.%s=%s)\n", t->name,
                                   gone->name, c->name, t->name, gone->name, c->name);
        if (!s)
            d->err = NX_ENOMEM;
        return s ? s : "";
    }
    return "";
}

static void diff_columns(nx_sc_diff_t *d, const nx_sc_table_t *f, const nx_sc_table_t *t)
{
    bool *taken = nx_arena_calloc(d->arena, t->ncols + 1);
    if (!taken) {
        d->err = NX_ENOMEM;
        return;
    }
    for (size_t i = 0; i < f->ncols; i++) {
        const nx_sc_column_t *fc = &f->cols[i];
        if (nx_sc_column_find(t, fc->name))
            continue;
        const char *hint = d->down ? "" : rename_hint(d, f, t, fc, taken);
        nx_sc_change(d, NX_SC_P_DROP_COLUMN, drop_key(f->oid, fc->num),
                     "%sALTER TABLE %s DROP COLUMN %s", hint, t->name, fc->name);
        nx_sc_line(d, "- column %s.%s %s", t->name, fc->name, fc->type);
        nx_sc_note(d, NX_SCHEMA_HZ_DATA_LOSS, "data loss: drops column %s.%s", t->name, fc->name);
    }
    bool retyped = false; /* a plain column changes type */
    for (size_t i = 0; i < t->ncols; i++) {
        const nx_sc_column_t *fc = nx_sc_column_find(f, t->cols[i].name);
        retyped |= fc && !fc->generated && !t->cols[i].generated &&
                   (!same(fc->type, t->cols[i].type) ||
                    !same(fc->collation, t->cols[i].collation));
    }
    for (size_t i = 0; i < t->ncols; i++) {
        const nx_sc_column_t *fc = nx_sc_column_find(f, t->cols[i].name);
        if (fc)
            diff_column(d, t, fc, &t->cols[i], retyped);
        else
            add_column(d, t, &t->cols[i]);
    }
}

/* ---- tables --------------------------------------------------------------- */

static bool has_option(const nx_sc_table_t *t, const char *opt, bool whole)
{
    size_t klen = strcspn(opt, "=");
    for (size_t i = 0; t && i < t->noptions; i++)
        if (whole ? strcmp(t->options[i], opt) == 0
                  : strncmp(t->options[i], opt, klen) == 0 && t->options[i][klen] == '=')
            return true;
    return false;
}

/* Storage parameters: SET what is new or different, RESET what is gone. */
static void diff_options(nx_sc_diff_t *d, const nx_sc_table_t *f, const nx_sc_table_t *t)
{
    char set[1024] = "", reset[1024] = "";
    for (size_t i = 0; i < t->noptions; i++)
        if (!has_option(f, t->options[i], true))
            snprintf(set + strlen(set), sizeof(set) - strlen(set), "%s%s", set[0] ? ", " : "",
                     t->options[i]);
    for (size_t i = 0; f && i < f->noptions; i++)
        if (!has_option(t, f->options[i], false))
            snprintf(reset + strlen(reset), sizeof(reset) - strlen(reset), "%s%.*s",
                     reset[0] ? ", " : "", (int)strcspn(f->options[i], "="), f->options[i]);
    uint64_t key = create_key(t->oid, 0);
    if (reset[0])
        nx_sc_change(d, NX_SC_P_TABLE_OPTIONS, key, "ALTER TABLE %s RESET (%s)", t->name, reset);
    if (set[0] && f)
        nx_sc_change(d, NX_SC_P_TABLE_OPTIONS, key, "ALTER TABLE %s SET (%s)", t->name, set);
    if (f && (set[0] || reset[0]))
        nx_sc_line(d, "~ table %s: storage parameters%s%s%s%s", t->name, set[0] ? " set " : "",
                   set, reset[0] ? " reset " : "", reset);
}

static void diff_rls(nx_sc_diff_t *d, const nx_sc_table_t *f, const nx_sc_table_t *t)
{
    bool frls = f && f->rls, fforce = f && f->force;
    uint64_t key = create_key(t->oid, 0);
    if (frls != t->rls) {
        nx_sc_change(d, NX_SC_P_RLS, key, "ALTER TABLE %s %s ROW LEVEL SECURITY", t->name,
                     t->rls ? "ENABLE" : "DISABLE");
        if (f)
            nx_sc_line(d, "~ table %s: row-level security %s", t->name, t->rls ? "on" : "off");
        if (!t->rls)
            nx_sc_note(d, NX_SCHEMA_HZ_RLS, "RLS weakened: disables row-level security on %s: "
                       "every role with a grant sees every row", t->name);
    }
    if (fforce != t->force) {
        nx_sc_change(d, NX_SC_P_RLS, key, "ALTER TABLE %s %sFORCE ROW LEVEL SECURITY", t->name,
                     t->force ? "" : "NO ");
        if (f)
            nx_sc_line(d, "~ table %s: FORCE row-level security %s", t->name,
                       t->force ? "on" : "off");
        if (!t->force)
            nx_sc_note(d, NX_SCHEMA_HZ_RLS, "RLS weakened: turns FORCE row-level security off "
                       "on %s: its owner bypasses the policies", t->name);
    }
}

static void table_comment(nx_sc_diff_t *d, const nx_sc_table_t *f, const nx_sc_table_t *t)
{
    const char *fc = f ? f->comment : NULL;
    if (same(fc, t->comment))
        return;
    nx_sc_change(d, NX_SC_P_COMMENT, create_key(t->oid, 0), "COMMENT ON TABLE %s IS %s",
                 t->name, t->comment ? t->comment : "NULL");
    if (f)
        nx_sc_line(d, "~ comment on table %s", t->name);
}

static void create_table(nx_sc_diff_t *d, const nx_sc_table_t *t)
{
    nx_buf_t b;
    nx_buf_init(&b, d->arena, 16u << 20);
    nx_buf_printf(&b, "CREATE %sTABLE %s (", t->unlogged ? "UNLOGGED " : "", t->name);
    for (size_t i = 0; i < t->ncols; i++)
        nx_buf_printf(&b, "%s\n    %s", i ? "," : "", column_sql(d, &t->cols[i]));
    nx_buf_puts(&b, "\n)");
    for (size_t i = 0; i < t->noptions; i++)
        nx_buf_printf(&b, "%s%s", i ? ", " : " WITH (", t->options[i]);
    if (nx_buf_puts(&b, t->noptions ? ")" : "") != NX_OK || !b.data)
        d->err = NX_ENOMEM;
    nx_sc_change(d, NX_SC_P_CREATE_TABLE, create_key(t->oid, 0), "%s", b.data ? b.data : "");
    nx_sc_line(d, "+ table %s", t->name);
    diff_rls(d, NULL, t);
    table_comment(d, NULL, t);
    for (size_t i = 0; i < t->ncols; i++)
        column_comment(d, t, &t->cols[i], NULL);
    nx_sc_diff_acl(d, "TABLE", t->name, create_key(t->oid, 0), NULL, &t->acl);
}

static void drop_table(nx_sc_diff_t *d, const nx_sc_table_t *f)
{
    nx_sc_change(d, NX_SC_P_DROP_TABLE, drop_key(f->oid, 0), "DROP TABLE %s", f->name);
    nx_sc_line(d, "- table %s", f->name);
    nx_sc_note(d, NX_SCHEMA_HZ_DATA_LOSS, "data loss: drops table %s and its rows", f->name);
}

static void diff_table(nx_sc_diff_t *d, const nx_sc_table_t *f, const nx_sc_table_t *t)
{
    diff_columns(d, f, t);
    diff_options(d, f, t);
    if (f->unlogged != t->unlogged) {
        nx_sc_change(d, NX_SC_P_TABLE_OPTIONS, create_key(t->oid, 0), "ALTER TABLE %s SET %s",
                     t->name, t->unlogged ? "UNLOGGED" : "LOGGED");
        nx_sc_line(d, "~ table %s: %s", t->name, t->unlogged ? "unlogged" : "logged");
        nx_sc_note(d, NX_SCHEMA_HZ_LOCK, "table rewrite: SET %s rewrites %s under an ACCESS "
                   "EXCLUSIVE lock", t->unlogged ? "UNLOGGED" : "LOGGED", t->name);
    }
    diff_rls(d, f, t);
    table_comment(d, f, t);
    nx_sc_diff_acl(d, "TABLE", t->name, create_key(t->oid, 0), &f->acl, &t->acl);
}

/* A dropped and a created table with the same columns: say so. */
static void table_renames(nx_sc_diff_t *d)
{
    for (size_t i = 0; i < d->from->ntables; i++) {
        const nx_sc_table_t *f = &d->from->tables[i];
        if (nx_sc_table_find(d->to, f->name))
            continue;
        for (size_t j = 0; j < d->to->ntables; j++) {
            const nx_sc_table_t *t = &d->to->tables[j];
            bool match = !nx_sc_table_find(d->from, t->name) && t->ncols == f->ncols;
            for (size_t k = 0; match && k < t->ncols; k++) {
                const nx_sc_column_t *c = nx_sc_column_find(f, t->cols[k].name);
                match = c && strcmp(c->type, t->cols[k].type) == 0;
            }
            if (match)
                nx_sc_note(d, 0, "possible rename: tables %s and %s have the same columns; if "
                           "%s was renamed, write ALTER TABLE %s RENAME TO %s in the migration "
                           "instead of the drop and create", f->name, t->name, f->name, f->name,
                           t->name);
        }
    }
}

int nx_sc_diff(nx_sc_diff_t *d)
{
    const nx_sc_model_t *f = d->from, *t = d->to;
    size_t i = 0, j = 0;
    while (!d->err && (i < f->ntables || j < t->ntables)) {
        int c = i == f->ntables   ? 1
                : j == t->ntables ? -1
                                  : strcmp(f->tables[i].name, t->tables[j].name);
        if (c < 0)
            drop_table(d, &f->tables[i++]);
        else if (c > 0)
            create_table(d, &t->tables[j++]);
        else
            diff_table(d, &f->tables[i++], &t->tables[j++]);
    }
    if (!d->down)
        table_renames(d);
    nx_sc_diff_objects(d);
    return d->err;
}
