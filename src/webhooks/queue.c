/*
 * queue.c - the ways a delivery row changes after the outbox wrote it:
 * claim, record (each attempt's outcome), renew, and the retention prune.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 * (These statements are the worker role's cross-tenant door on the webhook
 * tables alone: every row they touch is named by (organisation_id, id).)
 *
 * At most one delivery per endpoint is in flight: the claim leases the
 * endpoint row itself (lease_owner, lease_expires_at; FOR UPDATE SKIP
 * LOCKED, the lease re-checked on the latest row version) together with a
 * run of its due deliveries, which one sender then delivers in order. It
 * walks endpoints, not the global queue, so one endpoint's backlog never
 * hides another organisation's due deliveries; each step is an index probe
 * on the partial index of due deliveries. Endpoints come least recently
 * served first. A delivery's own lease is lease_owner and lease_expires_at,
 * outside the due index (run_at moves only when an attempt is retried), so
 * the claim's update is HOT and the index scans mark finished deliveries
 * dead (migration 0023); a worker that dies loses nothing, its leases run
 * out and another claims the deliveries again.
 *
 * Every outcome is guarded by the lease owner and the attempt number, so a
 * late or duplicate write changes nothing. Only a pending delivery has a
 * lease owner (webhook_deliveries_lease_check), and the write-backs do not
 * say status = 'pending' as well: that would let the planner read the
 * whole due index for a batch it finds by primary key.
 */
#include "core/nx.h"
#include "webhooks/webhooks_int.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_JSON_MAX (64 * 1024 * 1024)
#define LOG_KEEP 20 /* attempts kept in a delivery's log */

nx_chain_t *nx_chain_new(void)
{
    nx_arena_t *arena = nx_arena_new(16 * 1024);
    nx_chain_t *c = arena ? nx_arena_calloc(arena, sizeof(*c)) : NULL;
    if (!c) {
        if (arena)
            nx_arena_free(arena);
        return NULL;
    }
    c->arena = arena;
    return c;
}

void nx_chain_free(nx_chain_t *c)
{
    if (c)
        nx_arena_free(c->arena);
}

/* ---- claim --------------------------------------------------------------------- */

static const nx_stmt_t st_claim = {
    "webhooks_claim",
    "WITH ep AS ("
    " SELECT e.organisation_id, e.id FROM webhook_endpoints e"
    " WHERE e.enabled AND (e.lease_owner IS NULL OR e.lease_expires_at < now())"
    " AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.organisation_id = e.organisation_id"
    " AND d.endpoint_id = e.id AND d.status = 'pending' AND d.run_at <= now()"
    " AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now()))"
    " ORDER BY e.lease_expires_at NULLS FIRST LIMIT $3::int FOR UPDATE SKIP LOCKED"
    "), pick AS ("
    " SELECT p.organisation_id, p.id, p.endpoint_id, p.run_at FROM ep CROSS JOIN LATERAL ("
    " SELECT d.organisation_id, d.id, d.endpoint_id, d.run_at FROM webhook_deliveries d"
    " WHERE d.organisation_id = ep.organisation_id AND d.endpoint_id = ep.id"
    " AND d.status = 'pending' AND d.run_at <= now()"
    " AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())"
    " ORDER BY d.run_at LIMIT $4::int FOR UPDATE SKIP LOCKED) p"
    "), lease AS ("
    " UPDATE webhook_endpoints e SET lease_owner = $1,"
    " lease_expires_at = now() + make_interval(secs => $2::int)"
    " FROM (SELECT DISTINCT organisation_id, endpoint_id FROM pick) p"
    " WHERE e.organisation_id = p.organisation_id AND e.id = p.endpoint_id"
    "), took AS ("
    " UPDATE webhook_deliveries d SET attempt_count = d.attempt_count + 1, lease_owner = $1,"
    " lease_expires_at = now() + make_interval(secs => $2::int)"
    " FROM pick WHERE d.organisation_id = pick.organisation_id AND d.id = pick.id"
    " RETURNING d.organisation_id, d.id, d.endpoint_id, d.event_id, d.attempt_count,"
    " d.max_attempts, pick.run_at AS due"
    ")"
    " SELECT t.organisation_id, t.id, t.endpoint_id, nx_webhook_event_id(t.event_id), ev.type,"
    " t.attempt_count, coalesce(t.max_attempts, $5::int), e.url, encode(e.secret, 'hex'),"
    " CASE WHEN e.previous_secret_expires_at > now() THEN encode(e.previous_secret, 'hex') END,"
    " ev.body, ev.traceparent"
    " FROM took t"
    " JOIN webhook_events ev ON ev.organisation_id = t.organisation_id AND ev.id = t.event_id"
    " JOIN webhook_endpoints e ON e.organisation_id = t.organisation_id AND e.id = t.endpoint_id"
    " ORDER BY t.endpoint_id, t.due, t.id",
    5,
};

/* Fills one delivery from a claim row; false on ENOMEM or a bad secret. */
static bool delivery_from_row(nx_chain_t *c, nx_delivery_t *d, nx_res_t *r, int row)
{
    snprintf(d->org_id, sizeof(d->org_id), "%s", nx_res_get(r, row, 0));
    snprintf(d->id, sizeof(d->id), "%s", nx_res_get(r, row, 1));
    snprintf(d->endpoint_id, sizeof(d->endpoint_id), "%s", nx_res_get(r, row, 2));
    snprintf(d->event_id, sizeof(d->event_id), "%s", nx_res_get(r, row, 3));
    snprintf(d->event_type, sizeof(d->event_type), "%s", nx_res_get(r, row, 4));
    d->attempt = (int)strtol(nx_res_get(r, row, 5), NULL, 10);
    d->max_attempts = (int)strtol(nx_res_get(r, row, 6), NULL, 10);
    d->url = nx_arena_strdup(c->arena, nx_res_get(r, row, 7));
    d->len = (size_t)nx_res_len(r, row, 10);
    d->body = nx_arena_strndup(c->arena, nx_res_get(r, row, 10), d->len);
    d->has_previous = !nx_res_null(r, row, 9);
    /* an attempt is a span of the event's trace (a new one when none) */
    if (nx_res_null(r, row, 11) || nx_trace_parse(nx_res_get(r, row, 11), &d->trace) != NX_OK)
        d->trace = (nx_trace_t){0};
    nx_trace_start(&d->trace);
    return d->url && d->body &&
           nx_unhex(nx_res_get(r, row, 8), d->secret, sizeof(d->secret)) == NX_OK &&
           (!d->has_previous ||
            nx_unhex(nx_res_get(r, row, 9), d->previous, sizeof(d->previous)) == NX_OK);
}

/* Groups the rows (ordered by endpoint) into chains, appended to *list. */
static int rows_to_chains(nx_res_t *r, nx_chain_t **list, int *n, nx_err_t *err)
{
    nx_chain_t *c = NULL;
    for (int i = 0; i < nx_res_rows(r); i++) {
        const char *ep = nx_res_get(r, i, 2);
        if (!c || strcmp(c->endpoint_id, ep) != 0 || c->n == NX_WH_CHAIN_MAX) {
            if (!(c = nx_chain_new()))
                return nx_err_set(err, NX_ENOMEM, NULL);
            snprintf(c->org_id, sizeof(c->org_id), "%s", nx_res_get(r, i, 0));
            snprintf(c->endpoint_id, sizeof(c->endpoint_id), "%s", ep);
            c->next = *list;
            *list = c;
            (*n)++;
        }
        if (!delivery_from_row(c, &c->v[c->n], r, i))
            return nx_err_set(err, NX_ENOMEM, NULL);
        c->n++;
    }
    return NX_OK;
}

int nx_whq_claim(nx_db_t *db, nx_arena_t *scratch, const char *owner, int lease_s,
                 int endpoints, int per_endpoint, int max_attempts, nx_chain_t **list, int *n,
                 nx_err_t *err)
{
    char lease[16], lim[16], per[16], max[16];
    snprintf(lease, sizeof(lease), "%d", lease_s);
    snprintf(lim, sizeof(lim), "%d", endpoints);
    snprintf(per, sizeof(per), "%d", per_endpoint < NX_WH_CHAIN_MAX ? per_endpoint
                                                                    : NX_WH_CHAIN_MAX);
    snprintf(max, sizeof(max), "%d", max_attempts);
    const char *p[] = {owner, lease, lim, per, max};
    nx_res_t *r;
    *n = 0;
    int rc = nx_db_exec(db, scratch, &st_claim, p, &r, err);
    return rc ? rc : rows_to_chains(r, list, n, err);
}

/* ---- record -------------------------------------------------------------------- */

/* The write-backs read their batch with jsonb_to_recordset, which the
 * planner takes for 100 rows whatever it holds; their LIMIT (the batch's
 * size) tells it the truth. Taken for 100, a batch of 20 costs as much by
 * primary key as a scan of 20,000 deliveries (W1 chose the scan: 10 ms a
 * write-back). */
static const nx_stmt_t st_record = {
    "webhooks_record",
    "WITH v AS ("
    " SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(organisation_id uuid, id uuid,"
    " endpoint_id uuid, attempt int, outcome text, retry_ms bigint, entry jsonb, error text)"
    " LIMIT $5::int"
    "), d AS ("
    " UPDATE webhook_deliveries d SET"
    " status = CASE v.outcome WHEN 'ok' THEN 'succeeded' WHEN 'failed' THEN 'failed'"
    " ELSE 'pending' END,"
    " attempt_count = CASE WHEN v.outcome = 'release' THEN d.attempt_count - 1"
    " ELSE d.attempt_count END,"
    " run_at = CASE WHEN v.outcome = 'retry'"
    " THEN now() + make_interval(secs => v.retry_ms / 1000.0) ELSE d.run_at END,"
    " lease_owner = NULL, lease_expires_at = NULL,"
    " attempts = CASE WHEN v.entry IS NULL THEN d.attempts"
    " WHEN jsonb_array_length(d.attempts) >= $4::int"
    " THEN (d.attempts - 0) || jsonb_build_array(v.entry)"
    " ELSE d.attempts || jsonb_build_array(v.entry) END"
    " FROM v WHERE d.organisation_id = v.organisation_id AND d.id = v.id"
    " AND d.lease_owner = $2 AND d.attempt_count = v.attempt"
    " RETURNING d.id"
    "), ep AS ("
    " SELECT v.organisation_id, v.endpoint_id, bool_or(v.outcome = 'ok') AS ok,"
    " bool_or(v.outcome IN ('retry', 'failed')) AS bad,"
    " (array_agg(v.error) FILTER (WHERE v.error IS NOT NULL))[1] AS error"
    " FROM v GROUP BY v.organisation_id, v.endpoint_id"
    "), x AS ("
    " SELECT ep.*, coalesce(NOT ep.ok AND ep.bad AND $3::int > 0 AND w.enabled"
    " AND w.failing_since <= now() - make_interval(hours => $3::int), false) AS off,"
    " w.failing_since"
    " FROM ep JOIN webhook_endpoints w ON w.organisation_id = ep.organisation_id"
    " AND w.id = ep.endpoint_id AND w.lease_owner = $2"
    "), e AS ("
    " UPDATE webhook_endpoints e SET lease_owner = NULL, lease_expires_at = now(),"
    " failing_since = CASE WHEN x.ok THEN NULL WHEN x.bad THEN coalesce(e.failing_since, now())"
    " ELSE e.failing_since END,"
    " enabled = e.enabled AND NOT x.off,"
    " disabled_reason = CASE WHEN x.off THEN format('Every delivery failed for %s hours"
    " (since %s); the last error: %s', $3::int, nx_ts(x.failing_since), x.error)"
    " ELSE e.disabled_reason END"
    " FROM x WHERE e.organisation_id = x.organisation_id AND e.id = x.endpoint_id"
    " AND e.lease_owner = $2"
    " RETURNING e.id, x.off"
    ")"
    " SELECT 'delivery', id::text FROM d UNION ALL SELECT 'disabled', id::text FROM e WHERE off",
    5,
};

static const char *const outcome_names[] = {"none", "ok", "retry", "failed", "release"};

/* The attempt's log entry: {"at", "status_code", "duration_ms", "error",
 * "response_excerpt"}. */
static int entry_json(nx_buf_t *b, const nx_delivery_t *d)
{
    int rc = nx_buf_printf(b, "{\"at\": \"%s\", \"status_code\": ", d->at);
    rc = rc ? rc : d->status ? nx_buf_printf(b, "%ld", d->status) : nx_buf_puts(b, "null");
    rc = rc ? rc : nx_buf_printf(b, ", \"duration_ms\": %ld, \"error\": ", d->duration_ms);
    rc = rc ? rc : d->error ? nx_buf_json_str(b, d->error) : nx_buf_puts(b, "null");
    rc = rc ? rc : nx_buf_puts(b, ", \"response_excerpt\": ");
    rc = rc ? rc : d->excerpt ? nx_buf_json_str(b, d->excerpt) : nx_buf_puts(b, "null");
    return rc ? rc : nx_buf_puts(b, "}");
}

static int record_json(nx_buf_t *b, const nx_delivery_t *d, bool first)
{
    int o = d->outcome == NX_WH_NONE ? NX_WH_RELEASE : d->outcome;
    int rc = nx_buf_printf(b,
                           "%s{\"organisation_id\": \"%s\", \"id\": \"%s\", \"endpoint_id\": "
                           "\"%s\", \"attempt\": %d, \"outcome\": \"%s\", \"retry_ms\": %lld, "
                           "\"entry\": ",
                           first ? "" : ", ", d->org_id, d->id, d->endpoint_id, d->attempt,
                           outcome_names[o], d->retry_ms);
    rc = rc ? rc : o == NX_WH_RELEASE ? nx_buf_puts(b, "null") : entry_json(b, d);
    rc = rc ? rc : nx_buf_puts(b, ", \"error\": ");
    rc = rc ? rc : d->error ? nx_buf_json_str(b, d->error) : nx_buf_puts(b, "null");
    return rc ? rc : nx_buf_puts(b, "}");
}

/* How many deliveries v[0..n) hold: a write-back's LIMIT. */
static void batch_size(nx_chain_t **v, int n, char *out, size_t size)
{
    int total = 0;
    for (int i = 0; i < n; i++)
        total += v[i]->n;
    snprintf(out, size, "%d", total);
}

/* The outcomes of every delivery of v[0..n) as one JSON array. */
static const char *outcomes_json(nx_arena_t *scratch, nx_chain_t **v, int n)
{
    nx_buf_t b;
    nx_buf_init(&b, scratch, BATCH_JSON_MAX);
    int rc = nx_buf_puts(&b, "[");
    bool first = true;
    for (int i = 0; !rc && i < n; i++)
        for (int k = 0; !rc && k < v[i]->n; k++, first = false)
            rc = record_json(&b, &v[i]->v[k], first);
    rc = rc ? rc : nx_buf_puts(&b, "]");
    return rc ? NULL : b.data;
}

/* Marks what the statement reports: deliveries written, endpoints disabled. */
static void mark_recorded(nx_res_t *r, nx_chain_t **v, int n)
{
    for (int row = 0; row < nx_res_rows(r); row++) {
        const char *kind = nx_res_get(r, row, 0), *id = nx_res_get(r, row, 1);
        bool disabled = strcmp(kind, "disabled") == 0;
        for (int i = 0; i < n; i++) {
            if (disabled && strcmp(v[i]->endpoint_id, id) == 0)
                v[i]->disabled = true;
            for (int k = 0; !disabled && k < v[i]->n; k++)
                if (strcmp(v[i]->v[k].id, id) == 0)
                    v[i]->v[k].recorded = true;
        }
    }
}

int nx_whq_record(nx_db_t *db, nx_arena_t *scratch, const char *owner, int disable_hours,
                  nx_chain_t **v, int n, nx_err_t *err)
{
    char hours[16], keep[16], size[16];
    snprintf(hours, sizeof(hours), "%d", disable_hours);
    snprintf(keep, sizeof(keep), "%d", LOG_KEEP);
    batch_size(v, n, size, sizeof(size));
    const char *batch = outcomes_json(scratch, v, n);
    if (!batch)
        return nx_err_set(err, NX_ENOMEM, NULL);
    const char *p[] = {batch, owner, hours, keep, size};
    nx_res_t *r;
    int rc = nx_db_exec(db, scratch, &st_record, p, &r, err);
    if (rc == NX_OK)
        mark_recorded(r, v, n);
    return rc;
}

/* ---- leases and retention ----------------------------------------------------------- */

static const nx_stmt_t st_renew = {
    "webhooks_renew",
    "WITH v AS ("
    " SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(organisation_id uuid, id uuid,"
    " endpoint_id uuid) LIMIT $4::int"
    "), e AS ("
    " UPDATE webhook_endpoints e SET lease_expires_at = now() + make_interval(secs => $3::int)"
    " FROM (SELECT DISTINCT organisation_id, endpoint_id FROM v) x"
    " WHERE e.organisation_id = x.organisation_id AND e.id = x.endpoint_id"
    " AND e.lease_owner = $2 RETURNING e.id"
    ")"
    " UPDATE webhook_deliveries d SET lease_expires_at = now() + make_interval(secs => $3::int)"
    " FROM v WHERE d.organisation_id = v.organisation_id AND d.id = v.id"
    " AND d.lease_owner = $2",
    4,
};

int nx_whq_renew(nx_db_t *db, nx_arena_t *scratch, const char *owner, int lease_s,
                 nx_chain_t **v, int n, nx_err_t *err)
{
    nx_buf_t b;
    nx_buf_init(&b, scratch, BATCH_JSON_MAX);
    int rc = nx_buf_puts(&b, "[");
    bool first = true;
    for (int i = 0; !rc && i < n; i++)
        for (int k = 0; !rc && k < v[i]->n; k++, first = false)
            rc = nx_buf_printf(&b, "%s{\"organisation_id\": \"%s\", \"id\": \"%s\", "
                                   "\"endpoint_id\": \"%s\"}", first ? "" : ", ",
                               v[i]->v[k].org_id, v[i]->v[k].id, v[i]->endpoint_id);
    rc = rc ? rc : nx_buf_puts(&b, "]");
    if (rc)
        return nx_err_set(err, NX_ENOMEM, NULL);
    char lease[16], size[16];
    snprintf(lease, sizeof(lease), "%d", lease_s);
    batch_size(v, n, size, sizeof(size));
    const char *p[] = {b.data, owner, lease, size};
    return nx_db_exec(db, scratch, &st_renew, p, NULL, err);
}

static const nx_stmt_t st_prune = {
    "webhooks_prune",
    "DELETE FROM webhook_events ev USING ("
    " SELECT e.organisation_id, e.id FROM webhook_events e"
    " WHERE e.created_at < now() - make_interval(days => $1::int)"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
    " WHERE d.organisation_id = e.organisation_id AND d.event_id = e.id"
    " AND d.lease_owner IS NOT NULL)"
    " ORDER BY e.created_at LIMIT $2::int"
    ") x WHERE ev.organisation_id = x.organisation_id AND ev.id = x.id",
    2,
};

int nx_whq_prune(nx_db_t *db, nx_arena_t *scratch, int days, int limit, long *deleted,
                 nx_err_t *err)
{
    return nx_db_exec_prune(db, scratch, &st_prune, days, limit, deleted, err);
}
