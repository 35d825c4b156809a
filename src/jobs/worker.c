/*
 * worker.c - the job workers: a pool (db/dispatcher.c) of one dispatcher
 * thread and WORKER_CONCURRENCY executor threads per process.
 *
 * DESIGN. The dispatcher owns the process's only queue connection and
 * LISTENs on NX_JOBS_CHANNEL (db/dispatcher.c: behind a transaction pooler,
 * on DATABASE_LISTEN_URL or not at all). It claims a batch when woken (a
 * notification, a submission in this process, a free slot after a full
 * claim, or the JOB_POLL_INTERVAL_MS fallback), hands the attempts to the
 * executors, and writes their outcomes back in batches (one complete
 * statement for all successes, one fail transaction per organisation). It
 * also renews the leases of its attempts every third of JOB_LEASE_SECONDS,
 * fails jobs whose last attempt lost its worker (refunding them), and
 * prunes finished jobs past JOB_RETENTION_DAYS. Executors never touch the
 * database: an attempt is a provider call on the attempt's own arena.
 *
 * Stopping: no new claims and no new attempts (queued ones are released at
 * once); running attempts get the drain timeout, their leases still renewed
 * (however long the drain, no other worker takes them meanwhile), then their
 * leases are released and outbound calls are abandoned.
 *
 * Metrics: attempts started and their run time (executors), outcomes -
 * completed, retried, failed, refunded - as they are written back, and the
 * queue's depth and oldest due job, read every QUEUE_STATS_EVERY_US.
 */
#include "core/nx.h"
#include "jobs/jobs.h"
#include "jobs/jobs_int.h"
#include "jobs/providers/provider.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "db/db.h"
#include "db/dispatcher.h"
#include "db/notify.h"
#include "metrics/metrics.h"
#include "webhooks/webhooks.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define PRUNE_FIRST_US (1LL * 1000000)
#define REAP_LIMIT 100
#define QUEUE_STATS_EVERY_US (5LL * 1000000)
#define STOP_TICK_US 100000

/* The job queue's side of the pool: what its hooks need. One per process,
 * set up before the pool starts. */
static struct pool {
    int batch, lease_s, retry_delay, retention_days;
    char owner[128];
    int cache_ttl;              /* AI_CACHE_TTL_SECONDS */
    int idempotency_hours;      /* IDEMPOTENCY_TTL_HOURS: keys pruned past it */
    char provider[16], model[128]; /* what a cached result must have come from */
    int64_t reap_at, stats_at;  /* upkeep, dispatcher only */
} pool;

/* This process's job workers. HTTP threads announce submissions to them
 * (nx_jobs_submitted); cmd_serve stops those before nx_jobs_stop. */
static nx_db_dispatcher_t job_workers = {.notify_sql = "NOTIFY " NX_JOBS_CHANNEL};

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

/* The dispatcher's items, typed (for the queue's functions). */
static nx_attempt_t **as_attempts(nx_arena_t *scratch, void **items, int n)
{
    nx_attempt_t **v = nx_arena_alloc(scratch, (size_t)(n + 1) * sizeof(*v));
    for (int i = 0; v && i < n; i++)
        v[i] = items[i];
    return v;
}

/* The operator-facing reason of an error. */
static const char *why(const nx_err_t *err)
{
    return err->log_detail[0] ? err->log_detail : err->detail;
}

/* ---- executors ------------------------------------------------------------- */

static void run_attempt(void *ctx, void *item)
{
    nx_attempt_t *a = item;
    NX_UNUSED(ctx);
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

/* ---- dispatcher: writing outcomes back -------------------------------------- */

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

/* Writes items[0..n) back (successes in one statement, failures per
 * organisation) and frees them; true when they stay for the next round (a
 * lost connection; finishes are idempotent by their guards). */
static bool write_back(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n,
                       nx_db_written_t *due)
{
    struct pool *p = ctx;
    nx_attempt_t **ok = nx_arena_alloc(scratch, (size_t)(n + 1) * sizeof(*ok));
    nx_attempt_t **bad = nx_arena_alloc(scratch, (size_t)(n + 1) * sizeof(*bad));
    int nok = 0, nbad = 0;
    NX_UNUSED(due); /* retries come due through the poll */
    if (!ok || !bad)
        return true;
    for (int i = 0; i < n; i++) {
        nx_attempt_t *a = items[i];
        if (a->rc == NX_OK)
            ok[nok++] = a;
        else
            bad[nbad++] = a;
    }
    nx_err_t err = {0};
    int rc = nok ? nx_queue_complete(db, scratch, p->owner, ok, nok, &err) : NX_OK;
    for (int i = 0; rc == NX_OK && i < nok; i++)
        if (ok[i]->refused) { /* an output the database will not store fails the attempt */
            ok[i]->rc = NX_EINTERNAL;
            ok[i]->error = "the attempt's output could not be stored";
            bad[nbad++] = ok[i];
        }
    if (rc == NX_OK && nbad)
        rc = nx_queue_fail(db, scratch, p->owner, p->retry_delay, bad, nbad, &err);
    if (rc == NX_EUNAVAILABLE)
        return true;
    if (rc)
        nx_log(NX_LOG_ERROR, "could not write job results", NX_LS("error", why(&err)));
    bool events = false;
    for (int i = 0; i < n; i++) {
        nx_attempt_t *a = items[i];
        if (!rc)
            log_outcome(a, p->retry_delay);
        events = events || a->webhooks;
        nx_attempt_free(a);
    }
    if (events) /* committed: their deliveries go out now */
        nx_webhooks_committed(db, scratch);
    return false;
}

/* ---- dispatcher: claims and upkeep ------------------------------------------ */

/* Claims up to limit attempts (newest first, as the queue lists them). */
static int claim(void *ctx, nx_db_t *db, nx_arena_t *scratch, int limit, void **items, int *n,
                 nx_err_t *err)
{
    struct pool *p = ctx;
    nx_attempt_t *list = NULL;
    nx_claim_t c = {p->owner, p->lease_s, limit, p->cache_ttl, p->provider, p->model};
    int got = 0, rc = nx_queue_claim(db, scratch, &c, &list, &got, err);
    for (*n = 0; list; list = list->next)
        items[(*n)++] = list;
    return rc;
}

/* Extends the leases of every attempt still ours: in flight, and finished
 * but held for a retry of its write-back. */
static void renew(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n)
{
    struct pool *p = ctx;
    nx_attempt_t **v = as_attempts(scratch, items, n);
    if (!v)
        return;
    int lost = 0;
    nx_err_t err = {0};
    if (nx_queue_renew(db, scratch, p->owner, p->lease_s, v, n, &lost, &err))
        nx_log(NX_LOG_WARN, "could not renew job leases", NX_LS("error", why(&err)));
    else if (lost)
        nx_log(NX_LOG_WARN, "job leases lost", NX_LI("count", lost));
}

/* Fails (and refunds) jobs whose last attempt's worker died. */
static void reap(struct pool *p, nx_db_t *db, nx_arena_t *scratch)
{
    nx_attempt_t *list = NULL;
    int n = 0;
    nx_err_t err = {0};
    int rc = nx_queue_expired_final(db, scratch, REAP_LIMIT, &list, &n, &err);
    nx_attempt_t **v = n ? nx_arena_alloc(scratch, (size_t)n * sizeof(*v)) : NULL;
    int k = 0;
    for (nx_attempt_t *a = list; a; a = a->next)
        if (v)
            v[k++] = a;
    if (rc == NX_OK && k)
        rc = nx_queue_fail(db, scratch, p->owner, p->retry_delay, v, k, &err);
    bool events = false;
    for (int i = 0; rc == NX_OK && i < k; i++) {
        if (v[i]->status || v[i]->refused)
            log_outcome(v[i], p->retry_delay);
        events = events || v[i]->webhooks;
    }
    if (events)
        nx_webhooks_committed(db, scratch);
    if (rc)
        nx_log(NX_LOG_WARN, "could not fail expired jobs", NX_LS("error", why(&err)));
    while (list) {
        nx_attempt_t *a = list;
        list = a->next;
        nx_attempt_free(a);
    }
}

/* Deletes one batch of each; true when one was full, so more may be due. */
static bool prune(void *ctx, nx_db_t *db, nx_arena_t *scratch)
{
    struct pool *p = ctx;
    long jobs = nx_db_dispatcher_prune(db, scratch, nx_queue_prune, p->retention_days,
                                       "finished jobs", "retention_days");
    if (jobs < 0)
        return false;
    long keys = nx_db_dispatcher_prune(db, scratch, nx_queue_prune_keys, p->idempotency_hours,
                                       "idempotency keys", "ttl_hours");
    return jobs >= NX_DB_PRUNE_BATCH || keys >= NX_DB_PRUNE_BATCH;
}

/* Reads the queue's size for the metrics (a few index pages, every few
 * seconds: every worker process reports the same queue). */
static void queue_stats(nx_db_t *db, nx_arena_t *scratch)
{
    long depth = 0;
    double age = 0;
    nx_err_t err = {0};
    if (nx_queue_stats(db, scratch, &depth, &age, &err) == NX_OK)
        nx_metrics_queue(depth, age);
}

/* Reaping and the queue's size, when due; returns when next due. */
static int64_t upkeep(void *ctx, nx_db_t *db, nx_arena_t *scratch, int64_t now)
{
    struct pool *p = ctx;
    if (now >= p->reap_at) {
        reap(p, db, scratch);
        p->reap_at = now + (int64_t)(p->lease_s < 5 ? p->lease_s : 5) * 1000000;
    }
    if (now >= p->stats_at) {
        queue_stats(db, scratch);
        p->stats_at = now + QUEUE_STATS_EVERY_US;
    }
    return p->reap_at < p->stats_at ? p->reap_at : p->stats_at;
}

/* Gives attempts back: stopping, queued ones at once, running ones at the
 * drain deadline (their calls abandoned). */
static void release(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n)
{
    struct pool *p = ctx;
    nx_attempt_t **v = as_attempts(scratch, items, n);
    nx_err_t err = {0};
    int rc = v ? nx_queue_release(db, scratch, p->owner, v, n, &err)
               : nx_err_set(&err, NX_ENOMEM, NULL);
    if (rc)
        nx_log(NX_LOG_WARN, "could not release job leases", NX_LS("error", why(&err)));
    else
        nx_log(NX_LOG_INFO, "released job leases", NX_LI("count", n));
}

static void abandon_calls(void *ctx)
{
    NX_UNUSED(ctx);
    nx_provider_abort(true);
}

static void count_connect(void *ctx, bool reconnect, bool ok, int64_t us)
{
    NX_UNUSED(ctx);
    nx_metrics_db_connect(reconnect, ok, us);
}

static void free_attempt(void *item) { nx_attempt_free(item); }

static const nx_db_dispatcher_hooks_t hooks = {
    .run = run_attempt, .claim = claim, .write_back = write_back, .renew = renew,
    .prune = prune, .upkeep = upkeep, .release = release, .abandon = abandon_calls,
    .connected = count_connect, .free_item = free_attempt,
};

/* ---- start and stop ------------------------------------------------------------ */

/* Sets up this process's pool (not running) and returns its settings. */
static nx_db_dispatcher_conf_t pool_init(const nx_settings_t *s, const nx_db_target_t *t)
{
    struct pool *p = &pool;
    memset(p, 0, sizeof(*p));
    p->batch = s->job_batch_size;
    p->lease_s = s->job_lease_seconds;
    p->retry_delay = s->job_retry_delay;
    p->retention_days = s->job_retention_days;
    p->cache_ttl = s->ai_cache_ttl;
    p->idempotency_hours = s->idempotency_ttl_hours;
    bool gemini = s->ai_provider == NX_AI_GEMINI;
    snprintf(p->provider, sizeof(p->provider), "%s", gemini ? "gemini" : "local");
    snprintf(p->model, sizeof(p->model), "%s", gemini ? s->gemini_model : NX_LOCAL_MODEL);
    nx_db_dispatcher_owner_id(p->owner, sizeof(p->owner));
    return (nx_db_dispatcher_conf_t){
        .name = "job",
        .target = t,
        .channel = NX_JOBS_CHANNEL,
        .wake = t->listen_conninfo[0] ? NX_DB_WAKE_OWN
                : t->pooled           ? NX_DB_WAKE_POLL
                                      : NX_DB_WAKE_QUEUE,
        .runners = s->worker_concurrency,
        /* attempts claimed and not yet written back, at most: the next
         * batch is at hand when an executor frees up */
        .window = s->worker_concurrency + s->job_batch_size,
        .batch = s->job_batch_size,
        .lease_s = s->job_lease_seconds,
        .poll_ms = s->job_poll_ms,
        .prune_first_us = PRUNE_FIRST_US,
        .stop_tick_us = STOP_TICK_US,
        .claim_failed = "could not claim jobs",
        .connect_failed = "job queue: could not connect to the database",
        .listen_failed = "job queue: could not listen for new jobs; polling meanwhile",
    };
}

int nx_jobs_start(const nx_settings_t *s, const nx_db_target_t *t, nx_err_t *err)
{
    if (s->worker_concurrency <= 0 || nx_db_dispatcher_running(&job_workers))
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
    nx_db_dispatcher_conf_t conf = pool_init(s, t);
    int rc = nx_db_dispatcher_start(&job_workers, &conf, &hooks, &pool, err);
    if (rc != NX_OK)
        return rc;
    nx_log(NX_LOG_INFO, "job workers started", NX_LI("concurrency", conf.runners),
           NX_LS("worker_id", pool.owner),
           NX_LS("wake", conf.wake == NX_DB_WAKE_POLL ? "poll" : "notify"),
           NX_LS("provider", s->ai_provider == NX_AI_GEMINI ? "gemini" : "local"));
    return NX_OK;
}

void nx_jobs_stop(int drain_seconds)
{
    /* whatever still runs after the drain is abandoned (its lease released) */
    if (nx_db_dispatcher_stop(&job_workers, drain_seconds))
        nx_log0(NX_LOG_INFO, "job workers stopped");
}

void nx_jobs_submitted(nx_db_t *db, nx_arena_t *arena)
{
    nx_db_dispatcher_announce(&job_workers, db, arena);
}
