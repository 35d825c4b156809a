/*
 * migrate_head.c - what the verbs built for this binary's schema need from
 * the migrations: the database at head.
 *
 * Only `serve` changes the schema by itself: it brings an embedded database
 * that is fresh or behind to head, unless a downgrade pinned it (migrate.h),
 * and with --migrate it upgrades in both modes. `worker` and the operator
 * verbs (org, user, credits, token) never change it: behind head they stop
 * with one line saying where the database is, what they need and what to
 * run. `db psql` and `migrate` work at any version and never come here.
 */
#include "core/nx.h"
#include "db/migrate.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

/* The newest applied version, or "base". */
static const char *current(const nx_migrate_t *m)
{
    return m->napplied ? m->applied[m->napplied - 1].version : "base";
}

int nx_migrate_behind(const nx_migrate_t *m, nx_err_t *err)
{
    const char *head = m->nfiles ? m->files[m->nfiles - 1].version : "base";
    return nx_err_set(err, NX_ECONFLICT,
                      "this command needs the database at %s (head) but it is at %s%s; run "
                      "\"nexusapi migrate upgrade head\" or \"nexusapi serve --migrate\"",
                      head, current(m), m->pinned ? ", pinned there by a downgrade" : "");
}

int nx_migrate_require_head(const char *owner_conninfo, nx_err_t *err)
{
    nx_migrate_t m;
    if (nx_migrate_load(&m, NULL, err) != NX_OK)
        return err->code;
    int rc = nx_migrate_connect(&m, owner_conninfo, err);
    if (rc == NX_OK)
        rc = nx_migrate_verify(&m, err);
    if (rc == NX_OK && nx_migrate_pending(&m) > 0)
        rc = nx_migrate_behind(&m, err);
    nx_migrate_release(&m);
    return rc;
}

struct change_ctx {
    const nx_migrate_t *m;
    nx_migrate_change_t *chg;
};

/* The engine re-reads the applied rows only after its last step, so at the
 * first step m still shows the database as the lock found it. */
static void note_step(void *ctx, const nx_mig_t *mig, int dir)
{
    struct change_ctx *c = ctx;
    NX_UNUSED(dir);
    if (c->chg->steps++ == 0)
        snprintf(c->chg->from, sizeof(c->chg->from), "%s", current(c->m));
    snprintf(c->chg->to, sizeof(c->chg->to), "%s", mig->version);
}

int nx_migrate_head(const char *owner_conninfo, bool unless_pinned, nx_migrate_change_t *chg,
                    nx_err_t *err)
{
    nx_migrate_change_t scratch;
    if (!chg)
        chg = &scratch;
    memset(chg, 0, sizeof(*chg));
    nx_migrate_t m;
    if (nx_migrate_load(&m, NULL, err) != NX_OK)
        return err->code;
    int rc = nx_migrate_connect(&m, owner_conninfo, err);
    if (rc == NX_OK) {
        struct change_ctx ctx = {&m, chg};
        nx_migrate_opts_t o = {.dir = NX_MIGRATE_UP, .target = "head", .note = note_step,
                               .ctx = &ctx, .unless_pinned = unless_pinned};
        rc = nx_migrate_run(&m, &o, NULL, err);
    }
    nx_migrate_release(&m);
    return rc;
}
