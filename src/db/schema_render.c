/*
 * schema_render.c - orders a comparison's changes and writes migration text.
 *
 * Changes sort by phase (drops of dependents, then of what they depend on,
 * then creates the other way round; schema_int.h), then by creation order,
 * then in the order they were made. A plan has up to two parts: the
 * transactional one, and a no-transaction one for what must not hold a lock
 * for long (CREATE INDEX CONCURRENTLY on existing tables, VALIDATE
 * CONSTRAINT). Each part becomes its own migration file, the no-transaction
 * one numbered after the other. Pure: no database.
 */
#include "core/nx.h"
#include "db/schema.h"
#include "db/schema_int.h"
#include "core/arena.h"
#include "core/buf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT (64u << 20)

static int cmp_change(const void *x, const void *y)
{
    const nx_sc_change_t *a = *(const nx_sc_change_t *const *)x;
    const nx_sc_change_t *b = *(const nx_sc_change_t *const *)y;
    if (a->phase != b->phase)
        return a->phase < b->phase ? -1 : 1;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

char *nx_sc_render_changes(const nx_sc_diff_t *d, bool concurrent)
{
    const nx_sc_change_t **list = nx_arena_calloc(d->arena, (d->nchanges + 1) * sizeof(*list));
    if (!list)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < d->nchanges; i++)
        if (d->changes[i].concurrent == concurrent)
            list[n++] = &d->changes[i];
    qsort(list, n, sizeof(*list), cmp_change);
    nx_buf_t b;
    nx_buf_init(&b, d->arena, MAX_TEXT);
    int rc = nx_buf_puts(&b, "");
    /* PostgreSQL does not record what a function's body calls, so a function
     * may come before one it calls (or before the columns a rename at the
     * end leaves): bodies are checked when they run, not when created */
    bool late_bodies = false;
    for (size_t i = 0; i < n; i++)
        late_bodies = late_bodies || list[i]->phase == NX_SC_P_CREATE_FUNCTION ||
                      (d->down && list[i]->phase == NX_SC_P_RENAME_BACK);
    if (late_bodies && !concurrent)
        rc = nx_buf_puts(&b, "-- function bodies are checked when they run: one may call another "
                             "created further down\nSET LOCAL check_function_bodies = off;\n\n");
    for (size_t i = 0; rc == NX_OK && i < n; i++) {
        const char *s = list[i]->sql;
        size_t len = strlen(s);
        while (len > 0 && (isspace((unsigned char)s[len - 1]) || s[len - 1] == ';'))
            len--;
        rc = nx_buf_append(&b, s, len);
        if (rc == NX_OK)
            rc = nx_buf_puts(&b, ";\n\n");
    }
    return rc == NX_OK ? b.data : NULL;
}

static void split_notes(nx_arena_t *a, const nx_sc_diff_t *d, nx_schema_plan_t *p)
{
    p->nhazards = p->nnotes = 0;
    p->hazards = nx_arena_calloc(a, (d->nnotes + 1) * sizeof(*p->hazards));
    p->hazard_class = nx_arena_calloc(a, (d->nnotes + 1) * sizeof(*p->hazard_class));
    p->notes = nx_arena_calloc(a, (d->nnotes + 1) * sizeof(*p->notes));
    for (size_t i = 0; p->hazards && p->hazard_class && p->notes && i < d->nnotes; i++) {
        if (d->notes[i].hazard) {
            p->hazard_class[p->nhazards] = d->notes[i].hazard;
            p->hazards[p->nhazards++] = d->notes[i].text;
        } else {
            p->notes[p->nnotes++] = d->notes[i].text;
        }
    }
}

int nx_sc_plan_models(nx_arena_t *a, const nx_sc_model_t *declared, const nx_sc_model_t *head,
                      const nx_sc_rename_t *rn, size_t nrn, nx_schema_plan_t *p)
{
    nx_sc_diff_t up = {.arena = a, .from = head, .to = declared};
    for (size_t i = 0; i < nrn; i++) {
        nx_sc_change(&up, NX_SC_P_RENAME, i, "%s", rn[i].up);
        nx_sc_line(&up, "~ column %s.%s: renamed from %s", rn[i].table, rn[i].to, rn[i].from);
    }
    if (nx_sc_diff(&up) != NX_OK)
        return NX_ENOMEM;
    nx_sc_diff_t down = {.arena = a, .from = declared, .to = head, .down = true,
                         .concurrent = up.concurrent, .nconcurrent = up.nconcurrent};
    for (size_t i = nrn; i-- > 0;)
        nx_sc_change(&down, NX_SC_P_RENAME_BACK, nrn - i, "%s", rn[i].down);
    if (nx_sc_diff(&down) != NX_OK)
        return NX_ENOMEM;
    p->up = nx_sc_render_changes(&up, false);
    p->cup = nx_sc_render_changes(&up, true);
    p->down = nx_sc_render_changes(&down, false);
    p->cdown = nx_sc_render_changes(&down, true);
    p->changes = up.lines;
    p->nchanges = up.nlines;
    split_notes(a, &up, p);
    if (!p->up || !p->cup || !p->down || !p->cdown || !p->hazards || !p->notes)
        return NX_ENOMEM;
    return NX_OK;
}

bool nx_schema_plan_empty(const nx_schema_plan_t *p)
{
    return p->nchanges == 0 && !p->up[0] && !p->down[0] && !p->cup[0] && !p->cdown[0];
}

/* Writes text as comment lines of at most 78 columns: the first starts
 * with lead, the others with more. */
static void comment(nx_buf_t *b, const char *lead, const char *more, const char *text)
{
    const char *p = text, *prefix = lead;
    while (*p) {
        int width = 78 - (int)strlen(prefix), n = (int)strcspn(p, "\n"), cut = n;
        if (n > width) {
            cut = width;
            while (cut > 20 && p[cut] != ' ')
                cut--;
            if (cut <= 20)
                cut = width;
        }
        nx_buf_printf(b, "%s%.*s\n", prefix, cut, p);
        p += cut;
        while (*p == ' ' || *p == '\n')
            p++;
        prefix = more;
    }
}

static void header(nx_buf_t *b, const nx_schema_plan_t *p, const char *message, bool concurrent)
{
    char msg[512];
    size_t n = 0;
    for (const char *s = message; *s && n < sizeof(msg) - 1; s++)
        msg[n++] = *s == '\n' || *s == '\r' ? ' ' : *s;
    msg[n] = '\0';
    nx_buf_printf(b, "-- %s\n--\n", msg);
    nx_buf_printf(b, "-- Written by `nexusapi migrate revision --autogenerate` from the\n"
                     "-- difference between schema/ and the migrations up to %s.\n"
                     "-- Review it before applying it.\n", p->head);
    if (concurrent)
        nx_buf_puts(b, "--\n-- No transaction: CREATE INDEX CONCURRENTLY and VALIDATE CONSTRAINT "
                       "let\n-- reads and writes go on meanwhile. Should it stop halfway, run it "
                       "again\n-- (IF NOT EXISTS skips the indexes already built; drop one left "
                       "INVALID\n-- first).\n");
}

/* The hazards and notes go into the first file of the plan. */
static void hazards(nx_buf_t *b, const nx_schema_plan_t *p)
{
    nx_buf_puts(b, "--\n");
    if (p->nhazards == 0)
        nx_buf_puts(b, "-- Hazards: none.\n");
    else
        nx_buf_puts(b, "-- HAZARDS:\n");
    for (size_t i = 0; i < p->nhazards; i++)
        comment(b, "--   ", "--     ", p->hazards[i]);
    if (p->nnotes)
        nx_buf_puts(b, "--\n-- Notes:\n");
    for (size_t i = 0; i < p->nnotes; i++)
        comment(b, "--   ", "--     ", p->notes[i]);
}

char *nx_schema_render_file(nx_arena_t *a, const nx_schema_plan_t *p, const char *message,
                            bool concurrent)
{
    nx_buf_t b;
    nx_buf_init(&b, a, MAX_TEXT);
    bool has_tx = p->up[0] || p->down[0];
    header(&b, p, message, concurrent);
    if (concurrent == !has_tx || !concurrent)
        hazards(&b, p);
    if (concurrent)
        nx_buf_puts(&b, "\n-- nexus:no-transaction\n");
    nx_buf_printf(&b, "%s-- nexus:up\n\n%s-- nexus:down\n\n%s", concurrent ? "" : "\n",
                  concurrent ? p->cup : p->up, concurrent ? p->cdown : p->down);
    int rc = nx_buf_puts(&b, "");
    return rc == NX_OK ? b.data : NULL;
}
