/*
 * registry.c - THE table of metric families, their storage, and the calls
 * that update them.
 *
 * Names, units and help follow the Prometheus naming guidelines: a
 * nexusapi_ prefix, base units (_seconds, _bytes), _total on counters.
 * Every label is one of a few fixed dimensions (metrics_int.h), so the
 * number of series is known at compile time and every cell is static:
 * an update is an index computation and a relaxed atomic add - no lock, no
 * allocation, nothing to initialise. Times are counted in microseconds and
 * shown in seconds. Histogram cells hold per-bucket counts (rendered
 * cumulative) and the sum.
 */
#include "core/nx.h"
#include "metrics/metrics.h"
#include "metrics/metrics_int.h"
#include "http/http.h"
#include "jobs/jobs.h"

#include <string.h>

#define US 1000000LL
#define ROUTES (NX_HTTP_MAX_ROUTES + 1) /* + "unmatched" */
#define METHODS 8
#define CODES 5
#define JOB_TYPES 8
#define WEBHOOK_OUTCOMES NX_METRICS_WEBHOOK_OUTCOMES
#define DB_OUTCOMES 3

/* ---- dimensions --------------------------------------------------------------- */

static const char *const methods[METHODS] = {"GET",    "HEAD",    "POST",   "PUT",
                                             "PATCH",  "DELETE",  "OPTIONS", "other"};
static const char *const codes[CODES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const webhook_outcomes[WEBHOOK_OUTCOMES] = {"succeeded", "rejected",
                                                               "unreachable", "refused"};
static const char *const db_outcomes[DB_OUTCOMES] = {"ok", "error", "unavailable"};

static const struct {
    const char *label;
    size_t size;
} dims[NX_DIMS] = {
    [NX_DIM_ROUTE] = {"route", ROUTES},
    [NX_DIM_METHOD] = {"method", METHODS},
    [NX_DIM_CODE] = {"code", CODES},
    [NX_DIM_JOB_TYPE] = {"job_type", JOB_TYPES},
    [NX_DIM_WEBHOOK] = {"outcome", WEBHOOK_OUTCOMES},
    [NX_DIM_DB] = {"outcome", DB_OUTCOMES},
};

const char *nx_metrics_dim_label(int dim) { return dims[dim].label; }

size_t nx_metrics_dim_size(int dim) { return dims[dim].size; }

const char *nx_metrics_dim_value(int dim, size_t i)
{
    switch (dim) {
    case NX_DIM_ROUTE:
        return i == ROUTES - 1 ? "unmatched" : nx_http_route_pattern(i);
    case NX_DIM_METHOD:
        return i < METHODS ? methods[i] : NULL;
    case NX_DIM_CODE:
        return i < CODES ? codes[i] : NULL;
    case NX_DIM_JOB_TYPE:
        return nx_job_type_at(i) ? nx_job_type_at(i)->name : NULL;
    case NX_DIM_WEBHOOK:
        return i < WEBHOOK_OUTCOMES ? webhook_outcomes[i] : NULL;
    case NX_DIM_DB:
        return i < DB_OUTCOMES ? db_outcomes[i] : NULL;
    default:
        return NULL;
    }
}

static int method_index(const char *m)
{
    for (int i = 0; m && i < METHODS - 1; i++)
        if (strcmp(m, methods[i]) == 0)
            return i;
    return METHODS - 1;
}

static int job_type_index(const char *type)
{
    const nx_job_type_t *t = nx_job_type_find(type);
    for (int i = 0; t && i < JOB_TYPES; i++)
        if (nx_job_type_at((size_t)i) == t)
            return i;
    return -1;
}

/* ---- storage and the table -------------------------------------------------- */

/* Histogram buckets, in microseconds. */
static const int64_t http_bounds[] = {1000,   2500,   5000,   10000,   25000,   50000, 100000,
                                      250000, 500000, 1 * US, 2.5 * US, 5 * US, 10 * US};
static const int64_t attempt_bounds[] = {10000,   50000,    100000,  250000, 500000,
                                         1 * US,  2.5 * US, 5 * US,  10 * US, 30 * US,
                                         60 * US, 120 * US, 300 * US};
static const int64_t webhook_bounds[] = {50000,  100000,   250000, 500000, 1 * US,
                                         2.5 * US, 5 * US, 10 * US, 30 * US};

#define NB(b) ((int)NX_ARRAY_LEN(b))
#define HCELLS(b, series) ((NX_ARRAY_LEN(b) + 2) * (series))

static _Atomic uint64_t http_requests[ROUTES * METHODS * CODES];
static _Atomic uint64_t http_duration[HCELLS(http_bounds, ROUTES)];
static _Atomic uint64_t http_rate_limited[1];
static _Atomic uint64_t jobs[NX_METRICS_JOB_EVENTS][JOB_TYPES];
static _Atomic uint64_t attempt_duration[HCELLS(attempt_bounds, JOB_TYPES)];
static _Atomic uint64_t queue_depth[1], queue_age[1];
static atomic_bool queue_known;
static _Atomic uint64_t credits_debited[JOB_TYPES], credits_refunded[JOB_TYPES];
static _Atomic uint64_t webhook_deliveries[WEBHOOK_OUTCOMES];
static _Atomic uint64_t webhook_duration[HCELLS(webhook_bounds, 1)];
static _Atomic uint64_t db_round_trips[DB_OUTCOMES];
static _Atomic uint64_t db_waits[1], db_wait_us[1], db_reconnects[1], db_failures[1], db_up[1];
static atomic_bool db_known;

#define COUNTER(name, help, cells) {name, NX_KIND_COUNTER, help, {0}, 0, false, NULL, 0, 1, cells, NULL}
#define COUNTER1(name, help, d, cells) {name, NX_KIND_COUNTER, help, {d}, 1, false, NULL, 0, 1, cells, NULL}
#define JOB_COUNTER(name, help, event) COUNTER1(name, help, NX_DIM_JOB_TYPE, jobs[event])

const nx_metrics_family_t nx_metrics_families[] = {
    {"nexusapi_http_requests_total", NX_KIND_COUNTER,
     "HTTP requests answered, by route template, method and status class.",
     {NX_DIM_ROUTE, NX_DIM_METHOD, NX_DIM_CODE}, 3, true, NULL, 0, 1, http_requests, NULL},
    {"nexusapi_http_request_duration_seconds", NX_KIND_HISTOGRAM,
     "Time from a request's headers to the end of its answer, by route template.",
     {NX_DIM_ROUTE}, 1, true, http_bounds, NB(http_bounds), US, http_duration, NULL},
    COUNTER("nexusapi_http_rate_limited_total",
            "Requests refused by the rate limit (answered 429).", http_rate_limited),
    JOB_COUNTER("nexusapi_jobs_submitted_total", "Jobs accepted (202), by type.",
                NX_METRICS_JOB_SUBMITTED),
    JOB_COUNTER("nexusapi_jobs_started_total", "Job attempts started, by type.",
                NX_METRICS_JOB_STARTED),
    JOB_COUNTER("nexusapi_jobs_completed_total", "Jobs completed, by type.",
                NX_METRICS_JOB_COMPLETED),
    JOB_COUNTER("nexusapi_jobs_retried_total",
                "Failed job attempts followed by another attempt, by type.",
                NX_METRICS_JOB_RETRIED),
    JOB_COUNTER("nexusapi_jobs_failed_total", "Jobs whose last attempt failed, by type.",
                NX_METRICS_JOB_FAILED),
    JOB_COUNTER("nexusapi_jobs_refunded_total", "Failed jobs whose credits were refunded, by type.",
                NX_METRICS_JOB_REFUNDED),
    {"nexusapi_job_attempt_duration_seconds", NX_KIND_HISTOGRAM,
     "Time a job attempt spent in its provider, by type.", {NX_DIM_JOB_TYPE}, 1, false,
     attempt_bounds, NB(attempt_bounds), US, attempt_duration, NULL},
    {"nexusapi_jobs_queue_depth", NX_KIND_GAUGE,
     "Pending jobs (due or scheduled for a retry), as this process's workers last read them.",
     {0}, 0, false, NULL, 0, 1, queue_depth, &queue_known},
    {"nexusapi_jobs_oldest_pending_age_seconds", NX_KIND_GAUGE,
     "How long the oldest due pending job has waited for a worker.", {0}, 0, false, NULL, 0, US,
     queue_age, &queue_known},
    COUNTER1("nexusapi_credits_debited_total", "Credits debited by job submissions, by type.",
             NX_DIM_JOB_TYPE, credits_debited),
    COUNTER1("nexusapi_credits_refunded_total", "Credits refunded for failed jobs, by type.",
             NX_DIM_JOB_TYPE, credits_refunded),
    COUNTER1("nexusapi_webhook_deliveries_total", "Webhook delivery attempts, by outcome.",
             NX_DIM_WEBHOOK, webhook_deliveries),
    {"nexusapi_webhook_delivery_duration_seconds", NX_KIND_HISTOGRAM,
     "Time a webhook delivery attempt took, connect to answer.", {0}, 0, false, webhook_bounds,
     NB(webhook_bounds), US, webhook_duration, NULL},
    COUNTER1("nexusapi_db_round_trips_total",
             "Round trips to PostgreSQL (a pipelined transaction or one statement), by outcome.",
             NX_DIM_DB, db_round_trips),
    COUNTER("nexusapi_db_pool_waits_total",
            "Times work waited for a database connection to be opened (a thread's first, or "
            "one replacing a lost connection).", db_waits),
    {"nexusapi_db_pool_wait_seconds_total", NX_KIND_COUNTER,
     "Time spent waiting for database connections to be opened.", {0}, 0, false, NULL, 0, US,
     db_wait_us, NULL},
    COUNTER("nexusapi_db_reconnects_total",
            "Database connections opened to replace one that was lost.", db_reconnects),
    COUNTER("nexusapi_db_connection_failures_total",
            "Attempts to open a database connection that failed.", db_failures),
    {"nexusapi_db_up", NX_KIND_GAUGE,
     "1 when the last round trip or connection to PostgreSQL worked, 0 when it found the "
     "database unavailable.", {0}, 0, false, NULL, 0, 1, db_up, &db_known},
};

const size_t nx_metrics_nfamilies = NX_ARRAY_LEN(nx_metrics_families);

size_t nx_metrics_series_cells(const nx_metrics_family_t *f)
{
    return f->kind == NX_KIND_HISTOGRAM ? (size_t)f->nbounds + 2 : 1;
}

size_t nx_metrics_series_count(const nx_metrics_family_t *f)
{
    size_t n = 1;
    for (int d = 0; d < f->ndims; d++)
        n *= dims[f->dims[d]].size;
    return n;
}

/* ---- updates ---------------------------------------------------------------- */

#define ADD(cell, n) atomic_fetch_add_explicit(&(cell), (uint64_t)(n), memory_order_relaxed)
#define SET(cell, v) atomic_store_explicit(&(cell), (uint64_t)(v), memory_order_relaxed)

/* Adds one observation of v (scaled) to the histogram series at cells. */
static void observe(_Atomic uint64_t *cells, const int64_t *bounds, int nbounds, int64_t v)
{
    int b = 0;
    while (b < nbounds && v > bounds[b])
        b++;
    ADD(cells[b], 1);
    ADD(cells[nbounds + 1], v < 0 ? 0 : v);
}

void nx_metrics_http(int route_id, const char *method, int status, int64_t duration_us)
{
    size_t r = route_id >= 0 && route_id < NX_HTTP_MAX_ROUTES ? (size_t)route_id : ROUTES - 1;
    int c = status / 100 - 1;
    c = c < 0 ? 0 : c >= CODES ? CODES - 1 : c;
    ADD(http_requests[(r * METHODS + (size_t)method_index(method)) * CODES + (size_t)c], 1);
    observe(&http_duration[r * (NX_ARRAY_LEN(http_bounds) + 2)], http_bounds, NB(http_bounds),
            duration_us);
    if (status == 429)
        ADD(http_rate_limited[0], 1);
}

void nx_metrics_job(int event, const char *type)
{
    int t = job_type_index(type);
    if (t >= 0 && event >= 0 && event < NX_METRICS_JOB_EVENTS)
        ADD(jobs[event][t], 1);
}

void nx_metrics_job_attempt(const char *type, int64_t duration_us)
{
    int t = job_type_index(type);
    if (t >= 0)
        observe(&attempt_duration[(size_t)t * (NX_ARRAY_LEN(attempt_bounds) + 2)],
                attempt_bounds, NB(attempt_bounds), duration_us);
}

void nx_metrics_credits(bool refund, const char *type, long amount)
{
    int t = job_type_index(type);
    if (t >= 0 && amount > 0)
        ADD(*(refund ? &credits_refunded[t] : &credits_debited[t]), amount);
}

void nx_metrics_queue(long depth, double oldest_age_seconds)
{
    SET(queue_depth[0], depth < 0 ? 0 : depth);
    SET(queue_age[0], oldest_age_seconds > 0 ? (int64_t)(oldest_age_seconds * US) : 0);
    atomic_store_explicit(&queue_known, true, memory_order_relaxed);
}

void nx_metrics_db_round_trip(int outcome)
{
    if (outcome < 0 || outcome >= DB_OUTCOMES)
        outcome = NX_METRICS_DB_ERROR;
    ADD(db_round_trips[outcome], 1);
    if (outcome != NX_METRICS_DB_ERROR) { /* a refused statement says nothing of the link */
        SET(db_up[0], outcome == NX_METRICS_DB_OK);
        atomic_store_explicit(&db_known, true, memory_order_relaxed);
    }
}

void nx_metrics_db_connect(bool reconnect, bool ok, int64_t wait_us)
{
    ADD(db_waits[0], 1);
    ADD(db_wait_us[0], wait_us < 0 ? 0 : wait_us);
    if (reconnect && ok)
        ADD(db_reconnects[0], 1);
    if (!ok)
        ADD(db_failures[0], 1);
    SET(db_up[0], ok);
    atomic_store_explicit(&db_known, true, memory_order_relaxed);
}

void nx_metrics_webhook_delivery(int outcome, double seconds)
{
    if (outcome < 0 || outcome >= WEBHOOK_OUTCOMES)
        return;
    ADD(webhook_deliveries[outcome], 1);
    if (outcome != NX_METRICS_WEBHOOK_REFUSED) /* never attempted: no latency */
        observe(webhook_duration, webhook_bounds, NB(webhook_bounds),
                (int64_t)(seconds > 0 ? seconds * US : 0));
}

/* ---- reading one value (tests) ------------------------------------------------ */

long long nx_metrics_value(const char *family, const char *const *labels)
{
    for (size_t k = 0; k < nx_metrics_nfamilies; k++) {
        const nx_metrics_family_t *f = &nx_metrics_families[k];
        if (strcmp(f->name, family) != 0 || f->kind == NX_KIND_HISTOGRAM)
            continue;
        size_t idx = 0;
        for (int d = 0; d < f->ndims; d++) {
            size_t i = 0, n = dims[f->dims[d]].size;
            while (i < n && !(labels && labels[d] && nx_metrics_dim_value(f->dims[d], i) &&
                              strcmp(nx_metrics_dim_value(f->dims[d], i), labels[d]) == 0))
                i++;
            if (i == n)
                return -1;
            idx = idx * n + i;
        }
        return (long long)atomic_load_explicit(&f->cells[idx], memory_order_relaxed);
    }
    return -1;
}
