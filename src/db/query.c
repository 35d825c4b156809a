/*
 * query.c - results, single statements and the mapping of failures to
 * NX_E* codes.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 * (Statements run through nx_db_exec carry no tenant context: use them only
 * for health checks, the SECURITY DEFINER sign-in doors, the job queue and
 * operator verbs that run as the owner.)
 *
 * Every PGresult handed out is wrapped in an arena-owned nx_res_t whose
 * PQclear is registered with nx_arena_defer, so no exit path leaks one. The
 * client-facing detail of a database error is a fixed sentence per code; the
 * SQLSTATE and libpq text go to log_detail only.
 */
#include "core/nx.h"
#include "db/db.h"
#include "db/db_int.h"
#include "core/arena.h"
#include "core/err.h"
#include "metrics/metrics.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- results ------------------------------------------------------------- */

static void res_clear(void *p) { PQclear(p); }

nx_res_t *nx_db_res_wrap(nx_arena_t *arena, PGresult *pg)
{
    nx_res_t *r = nx_arena_alloc(arena, sizeof(*r));
    if (!r) {
        PQclear(pg);
        return NULL;
    }
    if (nx_arena_defer(arena, res_clear, pg) != NX_OK)
        return NULL; /* pg already cleared */
    r->pg = pg;
    return r;
}

int nx_res_rows(const nx_res_t *r) { return r && r->pg ? PQntuples(r->pg) : 0; }

int nx_res_cols(const nx_res_t *r) { return r && r->pg ? PQnfields(r->pg) : 0; }

const char *nx_res_get(const nx_res_t *r, int row, int col)
{
    const char *v = r && r->pg ? PQgetvalue(r->pg, row, col) : NULL;
    return v ? v : "";
}

int nx_res_len(const nx_res_t *r, int row, int col)
{
    if (!r || !r->pg || row < 0 || row >= PQntuples(r->pg) || col < 0 ||
        col >= PQnfields(r->pg))
        return 0;
    return PQgetlength(r->pg, row, col);
}

bool nx_res_null(const nx_res_t *r, int row, int col)
{
    if (!r || !r->pg || row < 0 || row >= PQntuples(r->pg) || col < 0 ||
        col >= PQnfields(r->pg))
        return true;
    return PQgetisnull(r->pg, row, col) != 0;
}

long nx_res_affected(const nx_res_t *r)
{
    const char *n = r && r->pg ? PQcmdTuples(r->pg) : "";
    return n[0] ? strtol(n, NULL, 10) : 0;
}

/* ---- failures ------------------------------------------------------------ */

static const char *client_detail(int code)
{
    switch (code) {
    case NX_ECONFLICT:
        return "The request conflicts with the current state of the resource.";
    case NX_ERETRY:
        return "The request collided with a concurrent change; please retry.";
    case NX_EUNAVAILABLE:
        return "The database is unavailable.";
    case NX_EUNAUTHORIZED:
        return "The user is no longer a member of this organisation.";
    case NX_EFORBIDDEN:
        return "This action requires the admin role.";
    case NX_EINVAL:
        return "A value in the request is not valid.";
    case NX_ERATELIMIT:
        return "The organisation's request limit is reached; retry after the time in "
               "Retry-After.";
    case NX_EKEYINUSE:
        return "A request with this Idempotency-Key is still being processed; retry shortly.";
    case NX_EKEYREUSED:
        return "This Idempotency-Key was used before; its first answer stands.";
    default:
        return NULL;
    }
}

/* Milliseconds a refusal asks the client to wait: a full rate-limit window
 * says how many in its DETAIL; a key in use, a second. */
static int retry_after_ms(int code, const PGresult *r)
{
    if (code == NX_EKEYINUSE)
        return 1000;
    const char *ms = code == NX_ERATELIMIT && r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)
                                                : NULL;
    long long v;
    if (!ms || nx_parse_int(ms, 1, 1LL << 30, &v) != NX_OK)
        return code == NX_ERATELIMIT ? 1000 : 0;
    return (int)v;
}

int nx_db_fail(nx_db_t *db, const char *what, const PGresult *r, nx_err_t *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *cons = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    if (!msg)
        msg = r ? PQresultErrorMessage(r) : PQerrorMessage(db->pg);
    if (PQstatus(db->pg) != CONNECTION_OK)
        db->broken = true;
    int code = db->broken ? NX_EUNAVAILABLE : nx_db_errmap(state);
    if (state && strcmp(state, "26000") == 0)
        nx_db_stmt_forget_all(db); /* prepared statements were discarded */
    snprintf(db->constraint, sizeof(db->constraint), "%s", cons ? cons : "");
    const char *d = client_detail(code);
    if (d)
        nx_err_set(err, code, "%s", d);
    else
        nx_err_set(err, code, NULL);
    if (err && err->code == code) {
        err->retry_after_ms = retry_after_ms(code, r);
        err->retry_after = (err->retry_after_ms + 999) / 1000;
    }
    size_t n = strcspn(msg, "\n");
    nx_err_log(err, "%s: SQLSTATE %s: %.*s%s%s", what ? what : "query", state ? state : "-",
               (int)n, msg, cons ? " constraint " : "", cons ? cons : "");
    return code;
}

/* ---- single statements --------------------------------------------------- */

int nx_db_exec(nx_db_t *db, nx_arena_t *arena, const nx_stmt_t *st,
               const char *const *params, nx_res_t **out, nx_err_t *err)
{
    struct nx_db_item it = {st, params, NULL};
    int failed;
    if (out)
        *out = NULL;
    int rc = nx_db_pipeline(db, arena, &it, 1, &failed, err);
    if (rc == NX_OK && out)
        *out = it.res;
    return rc;
}

int nx_db_exec_prune(nx_db_t *db, nx_arena_t *arena, const nx_stmt_t *st, int age, int limit,
                     long *deleted, nx_err_t *err)
{
    char a[16], lim[16];
    snprintf(a, sizeof(a), "%d", age);
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *p[] = {a, lim};
    nx_res_t *r;
    int rc = nx_db_exec(db, arena, st, p, &r, err);
    *deleted = rc ? 0 : nx_res_affected(r);
    return rc;
}

int nx_db_exec_sql(nx_db_t *db, nx_arena_t *arena, const char *sql, nx_res_t **out,
                   nx_err_t *err)
{
    if (out)
        *out = NULL;
    if (!nx_db_ok(db)) {
        nx_metrics_db_round_trip(NX_METRICS_DB_UNAVAILABLE);
        return nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
    }
    db->constraint[0] = '\0';
    PGresult *r = PQexec(db->pg, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        int rc = nx_db_fail(db, "sql", r, err);
        PQclear(r);
        nx_metrics_db_round_trip(db->broken ? NX_METRICS_DB_UNAVAILABLE : NX_METRICS_DB_ERROR);
        return rc;
    }
    nx_metrics_db_round_trip(NX_METRICS_DB_OK);
    if (!out) {
        PQclear(r);
        return NX_OK;
    }
    *out = nx_db_res_wrap(arena, r);
    return *out ? NX_OK : nx_err_set(err, NX_ENOMEM, NULL);
}
