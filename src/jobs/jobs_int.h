/*
 * jobs_int.h - private to src/jobs/: the attempt record and the queue
 * functions the worker dispatcher calls.
 */
#ifndef NX_JOBS_JOBS_INT_H
#define NX_JOBS_JOBS_INT_H

#include "core/nx.h"
#include "core/trace.h"

/* One claimed attempt. Everything hangs on its own arena (style.md: one
 * arena per job attempt), freed once its outcome is written back. */
typedef struct nx_attempt {
    nx_arena_t *arena;
    char org_id[37];
    char job_id[37];
    char job_type[16];
    int attempt;        /* attempt_count after the claim (1-based) */
    int max_attempts;
    const char *text;   /* the input, on the arena */
    const char *cached; /* a cached result (the AI-result cache), or NULL */
    size_t len;
    bool reap;          /* lease expired on the last attempt: fail it */
    nx_trace_t trace;   /* the submitting request's trace; this attempt is a span of it */
    int64_t started_us; /* monotonic, when the provider was called */
    /* outcome, set by the executor */
    bool done;
    int rc;             /* NX_OK or the provider's NX_E* */
    const char *output; /* JSON on success */
    const char *error;  /* error_message on failure */
    /* set by the queue after writing back: "completed", "pending" (retry),
     * "failed" (refunded) or NULL when the attempt was stale */
    const char *status;
    int credits;        /* credits_charged, read back by a fail (for the refund count) */
    /* set by the queue when the database refused this attempt's row (not a
     * lost connection): why, for operators, on the attempt's arena */
    const char *refused;
    /* set by the queue when the statement that wrote this attempt's outcome
     * also wrote webhook deliveries (the outbox): the webhook workers are
     * to be woken once it is done */
    bool webhooks;
    struct nx_attempt *next;
} nx_attempt_t;

/* New attempt with its own arena; NULL on ENOMEM. */
nx_attempt_t *nx_attempt_new(void);
void nx_attempt_free(nx_attempt_t *a);

/* What a claim asks for: up to limit due jobs (pending and due, or running
 * with an expired lease and attempts left), leased to owner for lease_s
 * seconds; and, when cache_ttl > 0, each one's cached result: the output of
 * the organisation's latest identical job (type, text, provider, model)
 * completed within cache_ttl seconds. */
typedef struct nx_claim {
    const char *owner;
    int lease_s, limit;
    int cache_ttl;
    const char *provider, *model;
} nx_claim_t;

/* claim: attempts appended to *list; *n is how many were claimed. */
int nx_queue_claim(nx_db_t *db, nx_arena_t *scratch, const nx_claim_t *c, nx_attempt_t **list,
                   int *n, nx_err_t *err);
/* complete: writes the outputs of the successful attempts in one statement;
 * sets each one's status ("completed" or NULL when stale). When the database
 * refuses the batch for what a row holds, each attempt is written alone: the
 * others are recorded and the bad one gets `refused` (its status NULL), for
 * the caller to fail. NX_EUNAVAILABLE when the connection is lost. */
int nx_queue_complete(nx_db_t *db, nx_arena_t *scratch, const char *owner, nx_attempt_t **v,
                      int n, nx_err_t *err);
/* fail: per organisation, one tenant transaction: retry (pending, run_at =
 * now() + retry_delay) or, on the last attempt, failed + REFUND. Sets each
 * one's status ("pending", "failed" or NULL when stale). Error texts are
 * made valid UTF-8 first; a transaction still refused for what a row holds
 * is redone one attempt at a time, and an attempt refused alone is failed
 * with a neutral message instead (and gets `refused`). */
int nx_queue_fail(nx_db_t *db, nx_arena_t *scratch, const char *owner, int retry_delay,
                  nx_attempt_t **v, int n, nx_err_t *err);
/* Extends the leases of owner's running attempts; *lost counts those that
 * are no longer ours. */
int nx_queue_renew(nx_db_t *db, nx_arena_t *scratch, const char *owner, int lease_s,
                   nx_attempt_t **v, int n, int *lost, nx_err_t *err);
/* Gives attempts back (pending, due now, the attempt not counted). */
int nx_queue_release(nx_db_t *db, nx_arena_t *scratch, const char *owner, nx_attempt_t **v,
                     int n, nx_err_t *err);
/* Jobs whose worker died during their last attempt: appended to *list as
 * attempts with reap set, to be failed (and refunded) by nx_queue_fail. */
int nx_queue_expired_final(nx_db_t *db, nx_arena_t *scratch, int limit, nx_attempt_t **list,
                           int *n, nx_err_t *err);
/* The queue's size for the metrics: pending jobs (due or scheduled for a
 * retry) and how long the oldest due one has waited, in seconds. Read
 * through the partial claim index, never the whole table. */
int nx_queue_stats(nx_db_t *db, nx_arena_t *scratch, long *depth, double *oldest_age,
                   nx_err_t *err);
/* Deletes up to limit finished jobs older than days; *deleted. */
int nx_queue_prune(nx_db_t *db, nx_arena_t *scratch, int days, int limit, long *deleted,
                   nx_err_t *err);
/* Deletes up to limit idempotency keys older than hours; *deleted. */
int nx_queue_prune_keys(nx_db_t *db, nx_arena_t *scratch, int hours, int limit, long *deleted,
                        nx_err_t *err);

#endif
