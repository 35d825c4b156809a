/*
 * metrics.h - Prometheus metrics: the counters, gauges and histograms every
 * module updates, and their text-format rendering for GET /metrics.
 *
 * Every family and its labels are declared once, in registry.c. No label
 * takes an unbounded value: routes are the router's templates (not paths),
 * methods and status classes are fixed lists, job types come from the job
 * registry, outcomes from the enums below. No organisation, user, job or
 * request id is ever a label. Updates are relaxed atomic additions on
 * static cells: no lock, no allocation, safe from any thread.
 */
#ifndef NX_METRICS_METRICS_H
#define NX_METRICS_METRICS_H

#include "core/nx.h"

/* ---- updates ---------------------------------------------------------------- */

/* One answered request: route_id as req->route_id (-1: matched no route),
 * the method, the status the client saw, how long it took. A 429 also
 * counts as a rate-limit refusal. */
void nx_metrics_http(int route_id, const char *method, int status, int64_t duration_us);

enum nx_metrics_job_event {
    NX_METRICS_JOB_SUBMITTED = 0, /* accepted (202) */
    NX_METRICS_JOB_STARTED,       /* an attempt began */
    NX_METRICS_JOB_COMPLETED,
    NX_METRICS_JOB_RETRIED,       /* an attempt failed, another is scheduled */
    NX_METRICS_JOB_FAILED,        /* the last attempt failed */
    NX_METRICS_JOB_REFUNDED,      /* ... and its credits went back */
    NX_METRICS_JOB_EVENTS
};
/* Counts one event for a job of type (a job registry name; others are not
 * counted). */
void nx_metrics_job(int event, const char *type);
/* One attempt's run time (the provider call). */
void nx_metrics_job_attempt(const char *type, int64_t duration_us);
/* Credits debited by a submission, or refunded by a final failure. */
void nx_metrics_credits(bool refund, const char *type, long amount);
/* The queue as a worker last read it: pending jobs, and how long the oldest
 * due one has waited (seconds). */
void nx_metrics_queue(long depth, double oldest_age_seconds);

enum nx_metrics_db_outcome {
    NX_METRICS_DB_OK = 0,
    NX_METRICS_DB_ERROR,       /* the server refused a statement */
    NX_METRICS_DB_UNAVAILABLE, /* the connection failed or was lost */
};
/* One round trip to PostgreSQL (a pipeline, or one statement). */
void nx_metrics_db_round_trip(int outcome);
/* A connection had to be opened before work could go on: how long that
 * took, whether it replaced a broken one, and whether it worked. */
void nx_metrics_db_connect(bool reconnect, bool ok, int64_t wait_us);

enum nx_metrics_webhook_outcome {
    NX_METRICS_WEBHOOK_SUCCEEDED = 0, /* the receiver answered 2xx */
    NX_METRICS_WEBHOOK_REJECTED,      /* it answered with another status */
    NX_METRICS_WEBHOOK_UNREACHABLE,   /* no answer: DNS, connect, TLS, timeout */
    NX_METRICS_WEBHOOK_REFUSED,       /* its address is not allowed (not attempted) */
    NX_METRICS_WEBHOOK_OUTCOMES
};
/* One webhook delivery attempt and its latency: the one call the webhook
 * sender makes, once per attempt, where the outcome is known. */
void nx_metrics_webhook_delivery(int outcome, double seconds);

/* ---- reading ---------------------------------------------------------------- */

/* Appends every family in the Prometheus text format (0.0.4), process
 * metrics and build info included, to out (its ceiling bounds it).
 * NX_ENOMEM / NX_ETOOBIG from the buffer. */
int nx_metrics_render(nx_buf_t *out);
/* A counter's current value (tests): family by name, label values in the
 * family's order, NULL-terminated. -1 when there is no such series. */
long long nx_metrics_value(const char *family, const char *const *labels);

/* ---- the HTTP side (http.c) --------------------------------------------------- */

#define NX_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* DONE stage: counts the request (nx_metrics_http). */
int nx_metrics_stage_http(nx_req_t *req, nx_err_t *err);
/* GET /metrics: answered to a loopback client when METRICS_TOKEN is unset,
 * and only to a client presenting "Authorization: Bearer <METRICS_TOKEN>"
 * when it is set; to anyone else it is a 404 like any unknown path. */
int nx_metrics_get(nx_req_t *req, nx_err_t *err);
/* The access rule alone: NX_OK, or NX_ENOTFOUND with the router's detail. */
int nx_metrics_check_access(nx_req_t *req, nx_err_t *err);

#endif
