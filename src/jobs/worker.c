/*
 * worker.c - the worker pool: one dispatcher thread and
 * WORKER_CONCURRENCY executor threads per process.
 *
 * DESIGN. The dispatcher owns the process's only queue connection (as
 * nexus_worker), which also LISTENs on NX_JOBS_CHANNEL - unless it goes
 * through a transaction pooler, where a LISTEN would stay behind on a server
 * session other clients use: then the dispatcher LISTENs on a direct
 * connection of its own (DATABASE_LISTEN_URL), or only polls. It claims a batch
 * when woken (a notification, a submission in this process, a free slot
 * after a full claim, or the JOB_POLL_INTERVAL_MS fallback), hands the
 * attempts to the executors, and writes their outcomes back in batches
 * (one complete statement for all successes, one fail transaction per
 * organisation). It also renews the leases of its attempts every third of
 * JOB_LEASE_SECONDS, fails jobs whose last attempt lost its worker
 * (refunding them), and prunes finished jobs past JOB_RETENTION_DAYS.
 * Executors never touch the database: an attempt is a provider call on the
 * attempt's own arena. So a worker process costs one database connection
 * whatever its concurrency (architecture.md: keep connections few).
 *
 * Stopping: no new claims and no new attempts (queued ones are released at
 * once); running attempts get the drain timeout, their leases still renewed
 * (however long the drain, no other worker takes them meanwhile), then their
 * leases are released and outbound calls are abandoned.
 *
 * Metrics: attempts started and their run time (executors), outcomes -
 * completed, retried, failed, refunded - as they are written back, and the
 * queue's depth and oldest due job, read every QUEUE_STATS_EVERY_US.
 *
 * A notification after a submission is sent at most once per
 * NOTIFY_INTERVAL_US per process; a woken dispatcher claims again
 * FOLLOW_UP_US later, so jobs committed inside a suppressed interval are
 * not left to the poll.
 */
#include "core/nx.h"
#include "jobs/jobs.h"
#include "jobs/jobs_int.h"
#include "jobs/providers/provider.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "db/db.h"
#include "db/notify.h"
#include "metrics/metrics.h"
#include "webhooks/webhooks.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NOTIFY_INTERVAL_US 25000
#define FOLLOW_UP_US 50000
#define PRUNE_EVERY_US (3600LL * 1000000)
#define PRUNE_FIRST_US (1LL * 1000000)
#define PRUNE_LIMIT 5000
#define PRUNE_BACKLOG_US (200LL * 1000)
#define REAP_LIMIT 100
#define RECONNECT_MAX_US (10LL * 1000000)
#define QUEUE_STATS_EVERY_US (5LL * 1000000)
#define RELISTEN_US (5LL * 1000000)

/* How the dispatcher learns of new jobs besides its poll. */
enum wake {
    WAKE_QUEUE, /* the queue connection LISTENs (a session of its own) */
    WAKE_OWN,   /* a LISTEN connection of its own (DATABASE_LISTEN_URL) */
    WAKE_POLL,  /* none: the queue goes through a transaction pooler */
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* executors: an attempt queued, or quit */
    nx_attempt_t *inflight;     /* claimed and not yet written back, oldest first */
    int ninflight;
    bool stopping;              /* no new claims or attempts */
    bool quit;                  /* executors exit */
    int64_t drain_deadline_us;

    int concurrency;
    int window;      /* attempts claimed and not yet written back, at most:
                        concurrency + batch, so the next batch is at hand
                        when an executor frees up */
    int batch, lease_s, retry_delay, poll_ms, retention_days;
    char owner[128];
    nx_db_target_t target;      /* copy, without the embedded cluster's handle */
    int wake;                   /* enum wake */
    int cache_ttl;              /* AI_CACHE_TTL_SECONDS */
    int idempotency_hours;      /* IDEMPOTENCY_TTL_HOURS: keys pruned past it */
    char provider[16], model[128]; /* what a cached result must have come from */
    nx_db_t *db;                /* dispatcher only */
    bool lost;                  /* db was lost and not yet replaced (metrics) */
    nx_db_t *ldb;               /* WAKE_OWN: the LISTEN connection, dispatcher only */
    int64_t relisten_at;        /* WAKE_OWN: when to try ldb again after a failure */
    bool relistened;            /* a LISTEN began: notifications may have been missed */
    int wake_fd;                /* eventfd */
    pthread_t dispatcher;
    pthread_t *executors;
    int nexecutors;
};

/* This process's pool, if started. Read by HTTP threads (nx_jobs_submitted),
 * which cmd_serve stops before nx_jobs_stop frees it. */
static _Atomic(struct pool *) running_pool;
static atomic_bool submitted;            /* a submission since the last claim */
static _Atomic int64_t last_notify_us;

/* ---- attempts -------------------------------------------------------------- */

nx_attempt_t *nx_attempt_new(void)
{
    nx_arena_t *arena = nx_arena_new(16 * 1024);
    nx_attempt_t *a = arena ? nx_arena_calloc(arena, sizeof(*a)) : NULL;
    if (!a) {
        if (arena)
            nx_arena_free(arena);
        return NULL;
    }
    a->arena = arena;
    return a;
}

void nx_attempt_free(nx_attempt_t *a)
{
    if (a)
        nx_arena_free(a->arena);
}

/* The operator-facing reason of an error. */
static const char *why(const nx_err_t *err)
{
    return err->log_detail[0] ? err->log_detail : err->detail;
}

static void wake(struct pool *p)
{
    uint64_t one = 1;
    ssize_t w = write(p->wake_fd, &one, sizeof(one));
    NX_UNUSED(w);
}

/* ---- executors ------------------------------------------------------------- */

static nx_attempt_t *next_queued(struct pool *p)
{
    for (nx_attempt_t *a = p->inflight; a; a = a->next)
        if (a->state == NX_ATTEMPT_QUEUED)
            return a;
    return NULL;
}

static void run_attempt(nx_attempt_t *a)
{
    /* the submitting request's trace: in every line logged for the attempt,
     * and on the provider's outbound calls */
    const nx_trace_t *outer = nx_trace_enter(&a->trace);
    nx_log(NX_LOG_INFO, "job attempt started", NX_LS("job_id", a->job_id),
           NX_LS("org_id", a->org_id), NX_LS("job_type", a->job_type),
           NX_LI("attempt", a->attempt), NX_LI("max_attempts", a->max_attempts),
           NX_LS("error", NULL));
    a->started_us = nx_time_mono_us();
    nx_metrics_job(NX_METRICS_JOB_STARTED, a->job_type);
    if (a->cached) { /* an identical job's result (AI_CACHE_TTL_SECONDS) */
        a->output = a->cached;
        a->rc = NX_OK;
        nx_log(NX_LOG_INFO, "job attempt answered from the result cache",
               NX_LS("job_id", a->job_id), NX_LS("org_id", a->org_id),
               NX_LI("attempt", a->attempt), NX_LS("error", NULL));
        nx_trace_enter(outer);
        a->done = true;
        return;
    }
    nx_err_t err = {0};
    char *out = NULL;
    const nx_job_type_t *type = nx_job_type_find(a->job_type);
    a->rc = type ? type->run(a->arena, a->text, a->len, &out, &err)
                 : nx_err_set(&err, NX_EINTERNAL, "unknown job type \"%s\"", a->job_type);
    int64_t us = nx_time_mono_us() - a->started_us;
    long ms = (long)(us / 1000);
    nx_metrics_job_attempt(a->job_type, us);
    if (a->rc == NX_OK) {
        a->output = out;
        nx_log(NX_LOG_INFO, "job attempt succeeded", NX_LS("job_id", a->job_id),
               NX_LS("org_id", a->org_id), NX_LI("attempt", a->attempt),
               NX_LI("duration_ms", ms), NX_LS("error", NULL));
    } else {
        a->error = nx_arena_strdup(a->arena, err.detail[0] ? err.detail : nx_err_title(a->rc));
        nx_log(NX_LOG_WARN, "job attempt failed", NX_LS("job_id", a->job_id),
               NX_LS("org_id", a->org_id), NX_LI("attempt", a->attempt),
               NX_LI("duration_ms", ms), NX_LS("error", a->error ? a->error : "out of memory"));
    }
    nx_trace_enter(outer);
    a->done = true;
}

static void *executor_main(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        nx_attempt_t *a = NULL;
        while (!p->quit && (p->stopping || !(a = next_queued(p))))
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        a->state = NX_ATTEMPT_RUNNING;
        pthread_mutex_unlock(&p->mu);
        run_attempt(a);
        pthread_mutex_lock(&p->mu);
        a->state = NX_ATTEMPT_DONE;
        wake(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- dispatcher: writing outcomes back -------------------------------------- */

/* Moves the attempts in state (or all, when state < 0) out of inflight into
 * v (capacity p->window); returns how many. Caller holds the lock. */
static int take(struct pool *p, int state, nx_attempt_t **v)
{
    int n = 0;
    nx_attempt_t **link = &p->inflight;
    while (*link) {
        nx_attempt_t *a = *link;
        if (state < 0 || a->state == state) {
            *link = a->next;
            a->next = NULL;
            v[n++] = a;
            p->ninflight--;
        } else {
            link = &a->next;
        }
    }
    return n;
}

/* Counts a written-back attempt's outcome (metrics). */
static void count_outcome(const nx_attempt_t *a)
{
    if (!a->status)
        return; /* stale: another worker's finish stood */
    if (strcmp(a->status, "completed") == 0) {
        nx_metrics_job(NX_METRICS_JOB_COMPLETED, a->job_type);
    } else if (strcmp(a->status, "pending") == 0) {
        nx_metrics_job(NX_METRICS_JOB_RETRIED, a->job_type);
    } else {
        nx_metrics_job(NX_METRICS_JOB_FAILED, a->job_type);
        if (a->credits > 0) { /* refunded in the statement that failed it */
            nx_metrics_job(NX_METRICS_JOB_REFUNDED, a->job_type);
            nx_metrics_credits(true, a->job_type, a->credits);
        }
    }
}

static void log_outcome_lines(const nx_attempt_t *a, int retry_delay);

/* Counts and logs a written-back attempt, under its job's trace. */
static void log_outcome(const nx_attempt_t *a, int retry_delay)
{
    count_outcome(a);
    const nx_trace_t *outer = nx_trace_enter(&a->trace);
    log_outcome_lines(a, retry_delay);
    nx_trace_enter(outer);
}

static void log_outcome_lines(const nx_attempt_t *a, int retry_delay)
{
    if (a->refused) {
        nx_log(NX_LOG_ERROR, "job result refused by the database", NX_LS("job_id", a->job_id),
               NX_LS("org_id", a->org_id), NX_LI("attempt", a->attempt),
               NX_LS("recorded_as", a->status ? a->status : "nothing: the lease will expire"),
               NX_LS("error", a->refused));
        if (!a->status)
            return;
    }
    if (!a->status)
        nx_log(NX_LOG_WARN, "job attempt result discarded: lease lost",
               NX_LS("job_id", a->job_id), NX_LS("org_id", a->org_id),
               NX_LI("attempt", a->attempt), NX_LS("error", a->error));
    else if (strcmp(a->status, "pending") == 0)
        nx_log(NX_LOG_INFO, "job retry scheduled", NX_LS("job_id", a->job_id),
               NX_LS("org_id", a->org_id), NX_LI("attempt", a->attempt),
               NX_LI("retry_in_seconds", retry_delay), NX_LS("error", a->error));
    else if (strcmp(a->status, "failed") == 0)
        nx_log(NX_LOG_ERROR, "job failed, credits refunded", NX_LS("job_id", a->job_id),
               NX_LS("org_id", a->org_id), NX_LI("attempt", a->attempt),
               NX_LS("error", a->error));
    else
        nx_log(NX_LOG_INFO, "job completed", NX_LS("job_id", a->job_id),
               NX_LS("org_id", a->org_id), NX_LI("attempt", a->attempt),
               NX_LS("error", NULL));
}

/* Writes v[0..n) back (successes in one statement, failures per
 * organisation). Returns NX_OK, or the first error; on a lost connection
 * the attempts stay in v for the next round (*kept). */
static int write_back(struct pool *p, nx_arena_t *scratch, nx_attempt_t **v, int n, int *kept)
{
    nx_attempt_t **ok = nx_arena_alloc(scratch, (size_t)(n + 1) * sizeof(*ok));
    nx_attempt_t **bad = nx_arena_alloc(scratch, (size_t)(n + 1) * sizeof(*bad));
    int nok = 0, nbad = 0;
    *kept = n;
    if (!ok || !bad)
        return NX_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (v[i]->rc == NX_OK)
            ok[nok++] = v[i];
        else
            bad[nbad++] = v[i];
    }
    nx_err_t err = {0};
    int rc = nok ? nx_queue_complete(p->db, scratch, p->owner, ok, nok, &err) : NX_OK;
    for (int i = 0; rc == NX_OK && i < nok; i++)
        if (ok[i]->refused) { /* an output the database will not store fails the attempt */
            ok[i]->rc = NX_EINTERNAL;
            ok[i]->error = "the attempt's output could not be stored";
            bad[nbad++] = ok[i];
        }
    if (rc == NX_OK && nbad)
        rc = nx_queue_fail(p->db, scratch, p->owner, p->retry_delay, bad, nbad, &err);
    if (rc == NX_EUNAVAILABLE)
        return rc; /* keep everything; finishes are idempotent by their guards */
    if (rc)
        nx_log(NX_LOG_ERROR, "could not write job results", NX_LS("error", why(&err)));
    bool events = false;
    for (int i = 0; i < n; i++) {
        if (!rc)
            log_outcome(v[i], p->retry_delay);
        events = events || v[i]->webhooks;
        nx_attempt_free(v[i]);
    }
    if (events) /* committed: their deliveries go out now */
        nx_webhooks_committed(p->db, scratch);
    *kept = 0;
    return rc;
}

/* ---- dispatcher: claims and upkeep ------------------------------------------ */

static void add_inflight(struct pool *p, nx_attempt_t *list)
{
    pthread_mutex_lock(&p->mu);
    nx_attempt_t **tail = &p->inflight;
    while (*tail)
        tail = &(*tail)->next;
    while (list) { /* claims come back newest first: reverse into the tail */
        nx_attempt_t *a = list;
        list = a->next;
        a->next = *tail;
        *tail = a;
        a->state = NX_ATTEMPT_QUEUED;
        p->ninflight++;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Claims up to free slots; true when the claim came back full. */
static bool claim(struct pool *p, nx_arena_t *scratch, int free)
{
    int limit = free < p->batch ? free : p->batch;
    nx_attempt_t *list = NULL;
    int n = 0;
    nx_err_t err = {0};
    nx_claim_t c = {p->owner, p->lease_s, limit, p->cache_ttl, p->provider, p->model};
    int rc = nx_queue_claim(p->db, scratch, &c, &list, &n, &err);
    if (rc) {
        nx_log(NX_LOG_WARN, "could not claim jobs", NX_LS("error", why(&err)));
        while (list) {
            nx_attempt_t *a = list;
            list = a->next;
            nx_attempt_free(a);
        }
        return false;
    }
    if (n)
        add_inflight(p, list);
    return n == limit;
}

/* Extends the leases of every attempt still ours: in flight, and finished
 * but held for a retry of its write-back (carry). */
static void renew(struct pool *p, nx_arena_t *scratch, nx_attempt_t **carry, int ncarry)
{
    nx_attempt_t **v = nx_arena_alloc(scratch, (size_t)(p->window + ncarry) * sizeof(*v));
    int n = 0;
    if (!v)
        return;
    pthread_mutex_lock(&p->mu);
    for (nx_attempt_t *a = p->inflight; a && n < p->window; a = a->next)
        v[n++] = a; /* the fields read below never change after the claim */
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < ncarry; i++)
        v[n++] = carry[i];
    if (!n)
        return;
    int lost = 0;
    nx_err_t err = {0};
    if (nx_queue_renew(p->db, scratch, p->owner, p->lease_s, v, n, &lost, &err))
        nx_log(NX_LOG_WARN, "could not renew job leases", NX_LS("error", why(&err)));
    else if (lost)
        nx_log(NX_LOG_WARN, "job leases lost", NX_LI("count", lost));
}

/* Fails (and refunds) jobs whose last attempt's worker died. */
static void reap(struct pool *p, nx_arena_t *scratch)
{
    nx_attempt_t *list = NULL;
    int n = 0;
    nx_err_t err = {0};
    int rc = nx_queue_expired_final(p->db, scratch, REAP_LIMIT, &list, &n, &err);
    nx_attempt_t **v = n ? nx_arena_alloc(scratch, (size_t)n * sizeof(*v)) : NULL;
    int k = 0;
    for (nx_attempt_t *a = list; a; a = a->next)
        if (v)
            v[k++] = a;
    if (rc == NX_OK && k)
        rc = nx_queue_fail(p->db, scratch, p->owner, p->retry_delay, v, k, &err);
    bool events = false;
    for (int i = 0; rc == NX_OK && i < k; i++) {
        if (v[i]->status || v[i]->refused)
            log_outcome(v[i], p->retry_delay);
        events = events || v[i]->webhooks;
    }
    if (events)
        nx_webhooks_committed(p->db, scratch);
    if (rc)
        nx_log(NX_LOG_WARN, "could not fail expired jobs", NX_LS("error", why(&err)));
    while (list) {
        nx_attempt_t *a = list;
        list = a->next;
        nx_attempt_free(a);
    }
}

/* Deletes one batch; returns true when the batch was full, so more may be due. */
static bool prune(struct pool *p, nx_arena_t *scratch)
{
    long deleted = 0;
    nx_err_t err = {0};
    if (nx_queue_prune(p->db, scratch, p->retention_days, PRUNE_LIMIT, &deleted, &err)) {
        nx_log(NX_LOG_WARN, "could not prune finished jobs", NX_LS("error", why(&err)));
        return false;
    }
    if (deleted)
        nx_log(NX_LOG_INFO, "pruned finished jobs", NX_LI("count", deleted),
               NX_LI("retention_days", p->retention_days));
    long keys = 0;
    if (nx_queue_prune_keys(p->db, scratch, p->idempotency_hours, PRUNE_LIMIT, &keys, &err))
        nx_log(NX_LOG_WARN, "could not prune idempotency keys", NX_LS("error", why(&err)));
    else if (keys)
        nx_log(NX_LOG_INFO, "pruned idempotency keys", NX_LI("count", keys),
               NX_LI("ttl_hours", p->idempotency_hours));
    return deleted >= PRUNE_LIMIT || keys >= PRUNE_LIMIT;
}

/* Reads the queue's size for the metrics (a few index pages, every few
 * seconds: every worker process reports the same queue). */
static void queue_stats(struct pool *p, nx_arena_t *scratch)
{
    long depth = 0;
    double age = 0;
    nx_err_t err = {0};
    if (nx_queue_stats(p->db, scratch, &depth, &age, &err) == NX_OK)
        nx_metrics_queue(depth, age);
}

/* ---- dispatcher: the loop ---------------------------------------------------- */

/* The LISTEN connection of its own: a failure is not fatal (the poll goes
 * on), so it is retried every RELISTEN_US rather than holding up the queue. */
static void connect_listen(struct pool *p)
{
    if (p->wake != WAKE_OWN || (p->ldb && nx_db_ok(p->ldb)) ||
        nx_time_mono_us() < p->relisten_at)
        return;
    nx_db_free(p->ldb);
    p->ldb = NULL;
    nx_err_t err = {0};
    if (nx_db_listen_open(&p->ldb, p->target.listen_conninfo, NX_JOBS_CHANNEL, &err) == NX_OK) {
        p->relistened = true;
        return;
    }
    p->relisten_at = nx_time_mono_us() + RELISTEN_US;
    nx_log(NX_LOG_WARN, "job queue: could not listen for new jobs; polling meanwhile",
           NX_LS("error", why(&err)));
}

static bool connect_queue(struct pool *p)
{
    nx_err_t err = {0};
    connect_listen(p);
    if (p->db && nx_db_ok(p->db))
        return true;
    p->lost = p->lost || p->db != NULL;
    nx_db_free(p->db);
    p->db = NULL;
    int64_t t0 = nx_time_mono_us();
    int rc = nx_db_target_connect(&p->target, NX_DB_WORKER, &p->db, &err);
    nx_metrics_db_connect(p->lost, rc == NX_OK, nx_time_mono_us() - t0);
    if (rc == NX_OK &&
        (p->wake != WAKE_QUEUE || nx_db_listen(p->db, NX_JOBS_CHANNEL, &err) == NX_OK)) {
        p->lost = false;
        p->relistened = true;
        return true;
    }
    nx_log(NX_LOG_WARN, "job queue: could not connect to the database",
           NX_LS("error", why(&err)));
    nx_db_free(p->db);
    p->db = NULL;
    return false;
}

struct timers {
    int64_t poll, renew, reap, prune, follow_up, stats;
    bool want_claim;
};

static int64_t earliest(int64_t a, int64_t b) { return b && (!a || b < a) ? b : a; }

static bool is_stopping(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    bool s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Free executor slots (attempts held for a retry of their write-back count). */
static int free_slots(struct pool *p, int ncarry)
{
    pthread_mutex_lock(&p->mu);
    int n = p->window - p->ninflight - ncarry;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Sleeps up to ms unless woken (reconnect back-off). */
static void nap(struct pool *p, int64_t ms)
{
    struct pollfd fd = {p->wake_fd, POLLIN, 0};
    poll(&fd, 1, (int)ms);
}

static void release(struct pool *p, nx_arena_t *scratch, nx_attempt_t **v, int n)
{
    nx_err_t err = {0};
    if (nx_queue_release(p->db, scratch, p->owner, v, n, &err))
        nx_log(NX_LOG_WARN, "could not release job leases",
               NX_LS("error", why(&err)));
    else
        nx_log(NX_LOG_INFO, "released job leases", NX_LI("count", n));
}

/* Stopping: releases queued attempts; true when the dispatcher may exit
 * (nothing left, or the drain timeout passed: running attempts are then
 * released and their calls abandoned; they are freed after the join). */
static bool drain_step(struct pool *p, nx_arena_t *scratch, nx_attempt_t **v, int ncarry)
{
    pthread_mutex_lock(&p->mu);
    int q = take(p, NX_ATTEMPT_QUEUED, v);
    bool idle = p->ninflight == 0 && ncarry == 0;
    bool late = nx_time_mono_us() >= p->drain_deadline_us;
    pthread_mutex_unlock(&p->mu);
    if (q)
        release(p, scratch, v, q);
    for (int i = 0; i < q; i++)
        nx_attempt_free(v[i]);
    if (idle || !late)
        return idle;
    nx_provider_abort(true);
    pthread_mutex_lock(&p->mu);
    int r = 0;
    for (nx_attempt_t *a = p->inflight; a; a = a->next)
        v[r++] = a; /* stay in inflight: executors still hold them */
    pthread_mutex_unlock(&p->mu);
    if (r)
        release(p, scratch, v, r);
    return true;
}

/* Writes back finished attempts (and those a lost connection left over). */
static void flush(struct pool *p, nx_arena_t *scratch, nx_attempt_t **v, nx_attempt_t **carry,
                  int *ncarry)
{
    pthread_mutex_lock(&p->mu);
    int n = take(p, NX_ATTEMPT_DONE, v);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < *ncarry; i++)
        v[n++] = carry[i];
    if (n && write_back(p, scratch, v, n, ncarry) == NX_EUNAVAILABLE)
        memcpy(carry, v, (size_t)n * sizeof(*v));
}

/* Lease renewal, reaping and pruning when due. Stopping, only the leases
 * are renewed: a drain may outlast a lease (DRAIN_TIMEOUT up to 600 s,
 * JOB_LEASE_SECONDS down to 2), and an attempt still running here must not
 * be claimed again, or reaped and refunded, by another worker. */
static void upkeep(struct pool *p, nx_arena_t *scratch, struct timers *t, int64_t now,
                   bool stopping, nx_attempt_t **carry, int ncarry)
{
    if (now >= t->renew) {
        renew(p, scratch, carry, ncarry);
        t->renew = now + (int64_t)p->lease_s * 1000000 / 3;
    }
    if (stopping)
        return;
    if (now >= t->reap) {
        reap(p, scratch);
        t->reap = now + (int64_t)(p->lease_s < 5 ? p->lease_s : 5) * 1000000;
    }
    if (now >= t->stats) {
        queue_stats(p, scratch);
        t->stats = now + QUEUE_STATS_EVERY_US;
    }
    if (now >= t->prune) {
        /* a full batch means a backlog: come back soon rather than in an
         * hour, so a busy queue's retention keeps up with its completions */
        t->prune = now + (prune(p, scratch) ? PRUNE_BACKLOG_US : PRUNE_EVERY_US);
    }
}

/* Waits for a notification, a wake-up or the next timer. */
static void wait_event(struct pool *p, struct timers *t, int free, int ncarry)
{
    int64_t now = nx_time_mono_us();
    pthread_mutex_lock(&p->mu);
    bool stopping = p->stopping, busy = p->ninflight > 0 || ncarry > 0;
    int64_t deadline = p->drain_deadline_us;
    pthread_mutex_unlock(&p->mu);
    int64_t until = t->poll;
    if (busy)
        until = earliest(until, t->renew);
    until = earliest(until, t->reap);
    until = earliest(until, t->stats);
    until = earliest(until, t->follow_up);
    if (stopping)
        until = earliest(now + 100000, deadline);
    if (p->wake == WAKE_OWN && !p->ldb)
        until = earliest(until, p->relisten_at);
    int64_t ms = (until - now + 999) / 1000;
    if ((t->want_claim && free > 0 && !stopping) || ms < 0)
        ms = 0;
    nx_err_t err = {0};
    nx_db_t *listening = p->wake == WAKE_QUEUE ? p->db : p->wake == WAKE_OWN ? p->ldb : NULL;
    int rc = nx_db_wait_notify(listening, p->wake_fd, (int)(ms > 60000 ? 60000 : ms), &err);
    uint64_t junk;
    while (read(p->wake_fd, &junk, sizeof(junk)) > 0)
        ;
    if (rc == 1 || atomic_exchange(&submitted, false)) {
        t->want_claim = true;
        t->follow_up = nx_time_mono_us() + FOLLOW_UP_US;
    }
}

static void *dispatcher_main(void *arg)
{
    struct pool *p = arg;
    nx_arena_t *scratch = nx_arena_new(64 * 1024);
    nx_attempt_t **v = nx_calloc((size_t)p->window * 2 + 1, sizeof(*v));
    nx_attempt_t **carry = nx_calloc((size_t)p->window + 1, sizeof(*carry));
    int ncarry = 0;
    int64_t backoff = 250000;
    struct timers t = {.want_claim = true, .prune = nx_time_mono_us() + PRUNE_FIRST_US};
    while (scratch && v && carry) {
        nx_arena_reset(scratch);
        bool stopping = is_stopping(p);
        if (!connect_queue(p)) {
            if (stopping)
                break; /* nothing can be written back: leases will expire */
            nap(p, backoff / 1000);
            backoff = backoff * 2 > RECONNECT_MAX_US ? RECONNECT_MAX_US : backoff * 2;
            continue;
        }
        backoff = 250000;
        if (p->relistened) { /* what was notified before the LISTEN is not lost */
            p->relistened = false;
            t.want_claim = true;
        }
        flush(p, scratch, v, carry, &ncarry);
        if (stopping && drain_step(p, scratch, v, ncarry))
            break;
        int64_t now = nx_time_mono_us();
        upkeep(p, scratch, &t, now, stopping, carry, ncarry);
        if (now >= t.poll) {
            t.want_claim = true;
            t.poll = now + (int64_t)p->poll_ms * 1000;
        }
        if (t.follow_up && now >= t.follow_up) {
            t.want_claim = true;
            t.follow_up = 0;
        }
        int free = free_slots(p, ncarry);
        if (!stopping && t.want_claim && free > 0) {
            t.want_claim = claim(p, scratch, free);
            free = free_slots(p, ncarry);
        }
        wait_event(p, &t, free, ncarry);
    }
    for (int i = 0; i < ncarry; i++)
        nx_attempt_free(carry[i]);
    nx_free(carry);
    nx_free(v);
    if (scratch)
        nx_arena_free(scratch);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

static struct pool *pool_new(const nx_settings_t *s, const nx_db_target_t *t)
{
    struct pool *p = nx_calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->concurrency = s->worker_concurrency;
    p->window = s->worker_concurrency + s->job_batch_size;
    p->batch = s->job_batch_size;
    p->lease_s = s->job_lease_seconds;
    p->retry_delay = s->job_retry_delay;
    p->poll_ms = s->job_poll_ms;
    p->retention_days = s->job_retention_days;
    p->target = *t;
    p->target.priv = NULL;
    p->wake = t->listen_conninfo[0] ? WAKE_OWN : t->pooled ? WAKE_POLL : WAKE_QUEUE;
    p->cache_ttl = s->ai_cache_ttl;
    p->idempotency_hours = s->idempotency_ttl_hours;
    bool gemini = s->ai_provider == NX_AI_GEMINI;
    snprintf(p->provider, sizeof(p->provider), "%s", gemini ? "gemini" : "local");
    snprintf(p->model, sizeof(p->model), "%s", gemini ? s->gemini_model : NX_LOCAL_MODEL);
    char host[64] = "host", id[37];
    gethostname(host, sizeof(host) - 1);
    host[nx_utf8_valid_prefix(host, strlen(host))] = '\0'; /* the owner is stored as text */
    nx_uuid_v4(id);
    snprintf(p->owner, sizeof(p->owner), "%.64s:%d:%.8s", host, (int)getpid(), id);
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->executors = nx_calloc((size_t)p->concurrency, sizeof(*p->executors));
    if (p->wake_fd < 0 || !p->executors) {
        if (p->wake_fd >= 0)
            close(p->wake_fd);
        nx_free(p->executors);
        nx_free(p);
        return NULL;
    }
    return p;
}

static void pool_free(struct pool *p)
{
    while (p->inflight) {
        nx_attempt_t *a = p->inflight;
        p->inflight = a->next;
        nx_attempt_free(a);
    }
    nx_db_free(p->db);
    nx_db_free(p->ldb);
    close(p->wake_fd);
    nx_free(p->executors);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    nx_free(p);
}

/* Tells the executors to quit, joins them and frees the pool. */
static void stop_executors(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nexecutors; i++)
        pthread_join(p->executors[i], NULL);
    pool_free(p);
}

int nx_jobs_start(const nx_settings_t *s, const nx_db_target_t *t, nx_err_t *err)
{
    if (s->worker_concurrency <= 0 || atomic_load(&running_pool))
        return NX_OK;
    /* a DATABASE_LISTEN_URL that cannot work is refused now, not retried */
    if (t->listen_conninfo[0]) {
        nx_db_t *probe = NULL;
        if (nx_db_listen_open(&probe, t->listen_conninfo, NX_JOBS_CHANNEL, err) != NX_OK)
            return err->code;
        nx_db_free(probe);
    }
    nx_provider_global_init();
    nx_provider_abort(false);
    struct pool *p = pool_new(s, t);
    if (!p)
        return nx_err_set(err, NX_ENOMEM, "could not start the job workers");
    for (int i = 0; i < p->concurrency; i++) {
        if (pthread_create(&p->executors[i], NULL, executor_main, p) != 0)
            break;
        p->nexecutors++;
    }
    if (p->nexecutors < p->concurrency ||
        pthread_create(&p->dispatcher, NULL, dispatcher_main, p) != 0) {
        stop_executors(p);
        return nx_err_set(err, NX_ENOMEM, "could not start the job worker threads");
    }
    atomic_store(&running_pool, p);
    nx_log(NX_LOG_INFO, "job workers started", NX_LI("concurrency", p->concurrency),
           NX_LS("worker_id", p->owner), NX_LS("wake", p->wake == WAKE_POLL ? "poll" : "notify"),
           NX_LS("provider", s->ai_provider == NX_AI_GEMINI ? "gemini" : "local"));
    return NX_OK;
}

void nx_jobs_stop(int drain_seconds)
{
    struct pool *p = atomic_exchange(&running_pool, NULL);
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    p->drain_deadline_us = nx_time_mono_us() + (int64_t)drain_seconds * 1000000;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    wake(p);
    pthread_join(p->dispatcher, NULL);
    nx_provider_abort(true); /* whatever still runs is abandoned (its lease released) */
    stop_executors(p);
    nx_log0(NX_LOG_INFO, "job workers stopped");
}

void nx_jobs_submitted(nx_db_t *db, nx_arena_t *arena)
{
    struct pool *p = atomic_load(&running_pool);
    if (p) {
        atomic_store(&submitted, true);
        wake(p);
    }
    int64_t now = nx_time_mono_us();
    int64_t last = atomic_load(&last_notify_us);
    if (now - last < NOTIFY_INTERVAL_US ||
        !atomic_compare_exchange_strong(&last_notify_us, &last, now))
        return;
    nx_err_t err = {0};
    nx_db_exec_sql(db, arena, "NOTIFY " NX_JOBS_CHANNEL, NULL, &err);
}
