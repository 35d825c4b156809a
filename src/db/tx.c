/*
 * tx.c - the pipeline runner and the tenant transaction.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * A tenant transaction is one libpq pipeline ending in one Sync, which
 * PostgreSQL runs as one implicit transaction in one round trip:
 *
 *   [Parse nx_tenant_begin]  Bind/Execute  SELECT nx_tenant_begin(org, user, need)
 *   [Parse stmt 1]           Bind/Execute  stmt 1
 *   ...                                     Sync
 *
 * nx_tenant_begin sets nexus.org_id for this transaction only (so row-level
 * security sees the tenant) and checks the user. When any statement fails the
 * server skips everything up to the Sync and rolls the transaction back, so a
 * removed user's request never runs its statements. Parses are sent only for
 * statements this connection has not prepared yet; a Parse skipped by an
 * earlier error is not recorded as prepared. On a connection through a
 * transaction pooler every statement goes as an unnamed Parse/Bind/Execute
 * instead (PQsendQueryParams): same pipeline, same single round trip, but
 * parsed and planned each time.
 */
#include "core/nx.h"
#include "db/db.h"
#include "db/db_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "metrics/metrics.h"

#include <string.h>

/* ---- the pipeline runner ------------------------------------------------- */

/* Reads the next command's result and the NULL that ends it. */
static PGresult *take(PGconn *pg)
{
    PGresult *r = PQgetResult(pg);
    if (r) {
        PGresult *extra;
        while ((extra = PQgetResult(pg)) != NULL)
            PQclear(extra);
    }
    return r;
}

static bool pending_prepare(struct nx_db_item *items, int i, nx_db_t *db)
{
    if (db->unnamed || nx_db_stmt_known(db, items[i].st))
        return false;
    for (int j = 0; j < i; j++) /* the same statement twice: prepare once */
        if (strcmp(items[j].st->name, items[i].st->name) == 0)
            return false;
    return true;
}

static int send_all(nx_db_t *db, struct nx_db_item *items, int n, unsigned char *prep)
{
    for (int i = 0; i < n; i++) {
        const nx_stmt_t *st = items[i].st;
        prep[i] = pending_prepare(items, i, db);
        if (db->unnamed) {
            if (!PQsendQueryParams(db->pg, st->sql, st->nparams, NULL, items[i].params, NULL,
                                   NULL, 0))
                return -1;
            continue;
        }
        if (prep[i] && !PQsendPrepare(db->pg, st->name, st->sql, st->nparams, NULL))
            return -1;
        if (!PQsendQueryPrepared(db->pg, st->name, st->nparams, items[i].params, NULL, NULL, 0))
            return -1;
    }
    return PQpipelineSync(db->pg) ? 0 : -1;
}

/* Collects one statement's results (its Parse, if sent, then its Execute). */
static void collect(nx_db_t *db, nx_arena_t *arena, struct nx_db_item *it, bool prepared,
                    int idx, int *failed, int *rc, nx_err_t *err)
{
    if (prepared) {
        PGresult *r = take(db->pg);
        if (!r)
            db->broken = true; /* out of step with the server */
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_COMMAND_OK) {
            if (nx_db_stmt_remember(db, it->st) != NX_OK && *rc == NX_OK)
                *rc = nx_err_set(err, NX_ENOMEM, NULL);
        } else if (s != PGRES_PIPELINE_ABORTED && *rc == NX_OK) {
            *rc = nx_db_fail(db, it->st->name, r, err);
            *failed = idx;
        }
        PQclear(r);
        if (db->broken)
            return;
    }
    PGresult *r = take(db->pg);
    if (!r)
        db->broken = true;
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
        it->res = nx_db_res_wrap(arena, r);
        if (!it->res && *rc == NX_OK)
            *rc = nx_err_set(err, NX_ENOMEM, NULL);
        return;
    }
    if (s != PGRES_PIPELINE_ABORTED && *rc == NX_OK) {
        *rc = nx_db_fail(db, it->st->name, r, err);
        *failed = idx;
    }
    PQclear(r);
}

/* Reads the Sync and leaves pipeline mode; a connection that cannot is broken. */
static void finish(nx_db_t *db)
{
    if (!db->broken) {
        PGresult *r = PQgetResult(db->pg);
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            db->broken = true;
        PQclear(r);
    }
    if (!db->broken && !PQexitPipelineMode(db->pg))
        db->broken = true;
    if (PQstatus(db->pg) != CONNECTION_OK)
        db->broken = true;
}

/* Counts the round trip (metrics) and returns rc. */
static int counted(nx_db_t *db, int rc)
{
    nx_metrics_db_round_trip(rc == NX_OK   ? NX_METRICS_DB_OK
                             : db->broken ? NX_METRICS_DB_UNAVAILABLE
                                          : NX_METRICS_DB_ERROR);
    return rc;
}

int nx_db_pipeline(nx_db_t *db, nx_arena_t *arena, struct nx_db_item *items, int n,
                   int *failed, nx_err_t *err)
{
    *failed = -1;
    if (!nx_db_ok(db)) {
        nx_metrics_db_round_trip(NX_METRICS_DB_UNAVAILABLE);
        return nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
    }
    unsigned char *prep = nx_arena_calloc(arena, (size_t)(n > 0 ? n : 1));
    if (!prep)
        return nx_err_set(err, NX_ENOMEM, NULL);
    db->constraint[0] = '\0';
    if (!PQenterPipelineMode(db->pg)) {
        db->broken = true; /* a connection left busy cannot be trusted */
        return counted(db, nx_db_fail(db, "pipeline", NULL, err));
    }
    if (send_all(db, items, n, prep) != 0) {
        db->broken = true;
        return counted(db, nx_db_fail(db, "pipeline", NULL, err));
    }
    int rc = NX_OK;
    for (int i = 0; i < n && !db->broken; i++)
        collect(db, arena, &items[i], prep[i], i, failed, &rc, err);
    finish(db);
    if (db->broken && rc == NX_OK)
        rc = nx_db_fail(db, "pipeline", NULL, err);
    return counted(db, rc);
}

/* ---- tenant transactions ------------------------------------------------- */

#define TX_FIRST_CAP 8

struct nx_tx {
    nx_db_t *db;
    nx_arena_t *arena;
    struct nx_db_item *items; /* items[0] is the tenant set-up */
    int n, cap;
    const char *begin_params[3];
    const char *role;
    int failed;
    bool checked; /* a run got past the tenant set-up and user check */
    int sent;     /* items sent by earlier runs of a held transaction */
    bool hold;    /* runs keep the transaction open until commit/rollback */
    bool open;    /* BEGIN sent, the transaction not yet ended */
    bool committed; /* its work is committed */
};

static const nx_stmt_t st_tx_begin = {"nx_tx_begin", "BEGIN", 0};
static const nx_stmt_t st_tx_commit = {"nx_tx_commit", "COMMIT", 0};

static const nx_stmt_t tenant_begin = {
    "nx_tenant_begin",
    "SELECT nx_tenant_begin($1::uuid, $2::uuid, $3::text)",
    3,
};

static const char *need_name(int need)
{
    switch (need) {
    case NX_TX_MEMBER:
        return "member";
    case NX_TX_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

nx_tx_t *nx_tx_new(nx_db_t *db, nx_arena_t *arena, const char *org_id, const char *user_id,
                   int need)
{
    nx_tx_t *tx = nx_arena_calloc(arena, sizeof(*tx));
    if (!tx)
        return NULL;
    tx->items = nx_arena_calloc(arena, TX_FIRST_CAP * sizeof(*tx->items));
    if (!tx->items)
        return NULL;
    tx->db = db;
    tx->arena = arena;
    tx->cap = TX_FIRST_CAP;
    tx->failed = -1;
    tx->begin_params[0] = org_id ? nx_arena_strdup(arena, org_id) : NULL;
    tx->begin_params[1] = user_id ? nx_arena_strdup(arena, user_id) : NULL;
    tx->begin_params[2] = need_name(need);
    if ((org_id && !tx->begin_params[0]) || (user_id && !tx->begin_params[1]))
        return NULL;
    tx->items[0] = (struct nx_db_item){&tenant_begin, tx->begin_params, NULL};
    tx->n = 1;
    return tx;
}

int nx_tx_add(nx_tx_t *tx, const nx_stmt_t *st, const char *const *params)
{
    if (tx->n == tx->cap) {
        struct nx_db_item *more = nx_arena_calloc(tx->arena, 2 * (size_t)tx->cap * sizeof(*more));
        if (!more)
            return -1;
        memcpy(more, tx->items, (size_t)tx->n * sizeof(*more));
        tx->items = more;
        tx->cap *= 2;
    }
    const char **copy = NULL;
    if (st->nparams > 0) {
        copy = nx_arena_calloc(tx->arena, (size_t)st->nparams * sizeof(*copy));
        if (!copy)
            return -1;
        for (int i = 0; i < st->nparams; i++) {
            if (!params || !params[i])
                continue;
            copy[i] = nx_arena_strdup(tx->arena, params[i]);
            if (!copy[i])
                return -1;
        }
    }
    tx->items[tx->n] = (struct nx_db_item){st, copy, NULL};
    return tx->n++ - 1;
}

void nx_tx_swap(nx_tx_t *tx, int idx, const nx_stmt_t *st)
{
    int i = idx + 1; /* items[0] is the tenant set-up */
    if (i >= 1 && i >= tx->sent && i < tx->n && tx->items[i].st->nparams == st->nparams)
        tx->items[i].st = st;
}

/* Ends a held transaction that failed: the server keeps it open in error
 * until told, and this connection serves other requests next. */
static void abandon(nx_tx_t *tx)
{
    if (!tx->open)
        return;
    tx->open = false;
    nx_err_t ignore = {0};
    if (nx_db_ok(tx->db))
        nx_db_exec_sql(tx->db, tx->arena, "ROLLBACK", NULL, &ignore);
}

static void abandon_cb(void *p) { abandon(p); }

/* Sends items[sent..n), with BEGIN first when a held transaction starts and
 * `last` (COMMIT) after them, as one pipeline ending in one Sync. */
static int send(nx_tx_t *tx, const nx_stmt_t *last, nx_err_t *err)
{
    int first = tx->sent, n = tx->n - first;
    int b = tx->hold && !tx->open;            /* a BEGIN goes first */
    int total = b + n + (last != NULL);
    struct nx_db_item *items = tx->items + first;
    if (total != n) {
        items = nx_arena_calloc(tx->arena, (size_t)total * sizeof(*items));
        if (!items)
            return nx_err_set(err, NX_ENOMEM, NULL);
        if (b)
            items[0] = (struct nx_db_item){&st_tx_begin, NULL, NULL};
        memcpy(items + b, tx->items + first, (size_t)n * sizeof(*items));
        if (last)
            items[b + n] = (struct nx_db_item){last, NULL, NULL};
    }
    if (b) {
        if (nx_arena_defer(tx->arena, abandon_cb, tx) != NX_OK)
            return nx_err_set(err, NX_ENOMEM, NULL);
        tx->open = true;
    }
    int failed;
    int rc = nx_db_pipeline(tx->db, tx->arena, items, total, &failed, err);
    if (items != tx->items + first)
        for (int i = 0; i < n; i++)
            tx->items[first + i].res = items[b + i].res;
    /* which of the transaction's own items failed: -1 for BEGIN, past n for COMMIT */
    int at = failed < 0 ? -1 : first + failed - b;
    tx->failed = at >= 1 && at < tx->n ? at - 1 : -1;
    if (first == 0)
        tx->checked = tx->checked || rc == NX_OK || at >= 1;
    tx->sent = tx->n;
    if (rc != NX_OK && tx->hold)
        abandon(tx);
    tx->committed = rc == NX_OK && (!tx->hold || last != NULL);
    return rc;
}

int nx_tx_run(nx_tx_t *tx, nx_err_t *err)
{
    bool first = tx->sent == 0;
    if (first)
        tx->role = NULL;
    for (int i = tx->sent; i < tx->n; i++)
        tx->items[i].res = NULL;
    int rc = send(tx, NULL, err);
    if (rc != NX_OK || !first)
        return rc;
    nx_res_t *r = tx->items[0].res;
    if (nx_res_rows(r) == 1 && !nx_res_null(r, 0, 0)) {
        tx->role = nx_arena_strdup(tx->arena, nx_res_get(r, 0, 0));
        if (!tx->role)
            return nx_err_set(err, NX_ENOMEM, NULL);
    }
    return NX_OK;
}

void nx_tx_hold(nx_tx_t *tx, bool hold) { tx->hold = hold; }

bool nx_tx_open(const nx_tx_t *tx) { return tx->open; }

int nx_tx_commit(nx_tx_t *tx, nx_err_t *err)
{
    if (!tx->open)
        return nx_err_set(err, NX_EINTERNAL, NULL);
    for (int i = tx->sent; i < tx->n; i++)
        tx->items[i].res = NULL;
    int rc = send(tx, &st_tx_commit, err);
    tx->open = false;
    return rc;
}

void nx_tx_rollback(nx_tx_t *tx) { abandon(tx); }

bool nx_tx_committed(const nx_tx_t *tx) { return tx->committed; }

nx_res_t *nx_tx_res(nx_tx_t *tx, int idx)
{
    if (idx < 0 || idx + 1 >= tx->n)
        return NULL;
    return tx->items[idx + 1].res;
}

const char *nx_tx_role(const nx_tx_t *tx) { return tx->role; }

int nx_tx_failed(const nx_tx_t *tx) { return tx->failed; }

bool nx_tx_checked(const nx_tx_t *tx) { return tx->checked; }
