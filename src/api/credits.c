/*
 * credits.c - the organisation's credits: balance with the latest
 * transactions, the full ledger (cursor pages, newest first), and daily
 * usage (spent and refunded per UTC day, zero days included).
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * Credits only change in src/jobs/queue.c (debit and refund) and through
 * `nexusapi credits grant`; these handlers only read.
 */
#include "core/nx.h"
#include "api/jobs_api.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <stdio.h>


static const nx_stmt_t st_credits = {
    "api_credits_get",
    "SELECT json_build_object("
    " 'balance', coalesce((SELECT c.balance FROM org_credits c WHERE c.organisation_id = $1), 0),"
    " 'recent_transactions', coalesce((SELECT json_agg(s.j) FROM ("
    "  SELECT nx_credit_tx_json(t) AS j FROM credit_transactions t"
    "  WHERE t.organisation_id = $1 ORDER BY t.created_at DESC, t.id DESC LIMIT 10) s),"
    "  '[]'::json))::text",
    1,
};

static const nx_stmt_t st_transactions = {
    "api_credits_transactions",
    "SELECT nx_credit_tx_json(t)::text,"
    " (extract(epoch FROM t.created_at) * 1000000)::bigint::text, t.id::text"
    " FROM credit_transactions t WHERE t.organisation_id = $1 AND ($2::bigint IS NULL OR"
    " (t.created_at, t.id) < (timestamptz 'epoch' + ($2::bigint / 1000000) * interval '1 second'"
    " + ($2::bigint % 1000000) * interval '1 microsecond', $3::uuid))"
    " ORDER BY t.created_at DESC, t.id DESC LIMIT $4::int",
    4,
};

/* One row per UTC day, oldest first: the last $2 days including today. */
static const nx_stmt_t st_usage = {
    "api_credits_usage",
    "WITH days AS ("
    " SELECT d::date AS day FROM generate_series("
    "  (now() AT TIME ZONE 'UTC')::date - ($2::int - 1), (now() AT TIME ZONE 'UTC')::date,"
    "  interval '1 day') AS d"
    "), sums AS ("
    " SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day,"
    "  coalesce(sum(t.amount) FILTER (WHERE t.type = 'DEDUCTION'), 0) AS spent,"
    "  coalesce(sum(t.amount) FILTER (WHERE t.type = 'REFUND'), 0) AS refunded"
    " FROM credit_transactions t WHERE t.organisation_id = $1"
    " AND t.created_at >= ((now() AT TIME ZONE 'UTC')::date - ($2::int - 1)) AT TIME ZONE 'UTC'"
    " GROUP BY 1"
    ")"
    " SELECT json_build_object('days', json_agg(json_build_object("
    "  'date', to_char(days.day, 'YYYY-MM-DD'), 'spent', coalesce(sums.spent, 0),"
    "  'refunded', coalesce(sums.refunded, 0)) ORDER BY days.day))::text"
    " FROM days LEFT JOIN sums ON sums.day = days.day",
    2,
};

int nx_api_credits_get(nx_req_t *req, nx_err_t *err)
{
    const char *params[] = {req->auth.org_id};
    return nx_api_send_row(req, &st_credits, params, NX_EINTERNAL, "", err);
}

int nx_api_credits_transactions_list(nx_req_t *req, nx_err_t *err)
{
    return nx_api_list(req, &st_transactions, NULL, 0, err);
}

int nx_api_credits_usage_get(nx_req_t *req, nx_err_t *err)
{
    long long days = NX_USAGE_DAYS_DEFAULT;
    const char *q = nx_req_query(req, "days");
    if (q && nx_parse_int(q, 1, NX_USAGE_DAYS_MAX, &days) != NX_OK) {
        nx_err_field(err, "days", "must be an integer from 1 to %d", NX_USAGE_DAYS_MAX);
        return NX_EVALIDATION;
    }
    char d[16];
    snprintf(d, sizeof(d), "%lld", days);
    const char *params[] = {req->auth.org_id, d};
    return nx_api_send_row(req, &st_usage, params, NX_EINTERNAL, "", err);
}
