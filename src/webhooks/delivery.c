/*
 * delivery.c - the delivery workers: a pool (db/dispatcher.c) of one
 * dispatcher thread and WEBHOOK_CONCURRENCY sender threads per worker
 * process.
 *
 * DESIGN. Like the job workers (src/jobs/worker.c): the dispatcher owns
 * this pool's only database connection (as nexus_worker, LISTENing on
 * NX_WEBHOOKS_CHANNEL); it claims runs of due deliveries, one endpoint per
 * run (queue.c: at most one delivery per endpoint in flight), hands them to
 * the senders, and writes every outcome back in one statement per round.
 * Senders never touch the database: a run is its deliveries POSTed in
 * order through httpc, each signed at the moment it is sent, on the run's
 * own arena; a failure ends the run (the rest go back, not counted, and are
 * claimed again), so a failing endpoint is tried one delivery at a time.
 * Several runs go out at once, so one slow endpoint holds one sender and
 * never delays another organisation's deliveries.
 *
 * Woken at once: by a notification, by nx_webhooks_committed in this
 * process (the job dispatcher calls it after writing job events), by a
 * retry coming due, or by the JOB_POLL_INTERVAL_MS fallback (the only way
 * behind a transaction pooler, where LISTEN cannot be kept). A worker that
 * dies mid-delivery loses nothing: its leases run out and the deliveries
 * are claimed again (receivers dedupe on webhook-id). Stopping: no new
 * claims, queued runs are given back at once, runs under way get the drain
 * timeout, then their calls are abandoned and given back.
 *
 * An attempt: 2xx within WEBHOOK_TIMEOUT_SECONDS succeeds; anything else
 * (3xx included: redirects are not followed) is retried after
 * WEBHOOK_RETRY_BASE_MS x 4^(attempt - 1), +-10% jitter, up to
 * WEBHOOK_MAX_ATTEMPTS; an address the egress rules refuse fails at once,
 * not retried. At most NX_WEBHOOK_ANSWER_MAX bytes of an answer are read
 * and the first NX_WEBHOOK_EXCERPT_MAX kept in the attempt log. Every
 * attempt ends in observe(), the one place its outcome and latency are
 * reported.
 */
#include "core/nx.h"
#include "webhooks/webhooks.h"
#include "webhooks/webhooks_int.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "db/db.h"
#include "db/dispatcher.h"
#include "metrics/metrics.h"
#include "httpc/httpc.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LEASE_MARGIN_S 10 /* past the timeout: time to write the outcome back */
#define RETRY_MAX_MS (24LL * 3600 * 1000)
#define PRUNE_FIRST_US (2LL * 1000000)
#define STOP_TICK_US 50000

/* The deliveries' side of the pool: what its hooks and senders need. One
 * per process, set up before the pool starts. */
static struct pool {
    atomic_bool abort;       /* calls under way are abandoned */
    int lease_s, retention_days, disable_hours;
    int timeout_ms, max_attempts, retry_base_ms;
    bool allow_http;
    char owner[128];
} pool;

/* This process's delivery workers. */
static nx_db_dispatcher_t webhook_workers = {.notify_sql = "NOTIFY " NX_WEBHOOKS_CHANNEL};

static const char *why(const nx_err_t *err)
{
    return err->log_detail[0] ? err->log_detail : err->detail;
}

/* The dispatcher's items, typed (for the queue's functions). */
static nx_chain_t **as_chains(nx_arena_t *scratch, void **items, int n)
{
    nx_chain_t **v = nx_arena_alloc(scratch, (size_t)(n + 1) * sizeof(*v));
    for (int i = 0; v && i < n; i++)
        v[i] = items[i];
    return v;
}

/* ---- one attempt ------------------------------------------------------------- */

/* What the address check saw, for the attempt's error. */
struct call {
    const char *refused; /* "127.0.0.1, a loopback address" (arena) */
    nx_arena_t *arena;
    struct pool *pool;
};

static bool addr_ok(const struct sockaddr *sa, socklen_t len, void *ud)
{
    struct call *c = ud;
    const char *what;
    if (nx_webhook_addr_allowed(sa, &what))
        return true;
    char text[INET6_ADDRSTRLEN] = "?";
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    inet_ntop(sa->sa_family, a, text, sizeof(text));
    c->refused = nx_arena_sprintf(c->arena, "%s, %s", text, what);
    return false;
}

static bool aborted(void *ud)
{
    struct call *c = ud;
    return atomic_load(&c->pool->abort);
}

/* At most max bytes of s[0..n) as valid UTF-8 without NUL (a bad byte
 * becomes U+FFFD), cut on a character boundary: jsonb takes nothing else. */
static const char *clean_text(nx_arena_t *arena, const char *s, size_t n, size_t max)
{
    nx_buf_t b;
    nx_buf_init(&b, arena, 3 * max + 4);
    int rc = nx_buf_puts(&b, "");
    for (size_t i = 0; rc == NX_OK && i < n && b.len < max;) {
        size_t ok = nx_utf8_valid_prefix(s + i, n - i);
        size_t nul = strnlen(s + i, ok);
        size_t take = nx_utf8_cut(s + i, nul, max - b.len);
        rc = nx_buf_append(&b, s + i, take);
        i += take;
        if (take < nul)
            break; /* the next character does not fit */
        if (rc == NX_OK && i < n && b.len + 3 <= max) {
            rc = nx_buf_append(&b, "\xef\xbf\xbd", 3);
            i++; /* the bad byte or NUL */
        } else if (i < n) {
            break;
        }
    }
    return rc == NX_OK ? b.data : NULL;
}

/* The delay before attempt `attempt + 1`: base x 4^(attempt - 1), +-10%. */
static long long backoff_ms(int base, int attempt)
{
    double d = (double)base * pow(4.0, attempt - 1);
    unsigned r = 0;
    nx_random_bytes(&r, sizeof(r));
    d *= 0.9 + 0.2 * ((double)r / (double)UINT32_MAX);
    return d > (double)RETRY_MAX_MS ? RETRY_MAX_MS : (long long)d;
}

/* POSTs the event: signed now, the address checked as it connects. */
static int post(struct pool *p, nx_chain_t *c, nx_delivery_t *d, nx_httpc_resp_t *r,
                struct call *call, nx_err_t *err)
{
    char *sig;
    long long ts = (long long)time(NULL);
    int rc = nx_webhook_sign(c->arena, d->secret, d->has_previous ? d->previous : NULL,
                             d->event_id, ts, d->body, d->len, &sig);
    if (rc != NX_OK)
        return nx_err_set(err, rc, "the event could not be signed");
    const char *h[] = {nx_arena_sprintf(c->arena, "webhook-id: %s", d->event_id),
                       nx_arena_sprintf(c->arena, "webhook-timestamp: %lld", ts),
                       nx_arena_sprintf(c->arena, "webhook-signature: %s", sig), NULL};
    if (!h[0] || !h[1] || !h[2])
        return nx_err_set(err, NX_ENOMEM, NULL);
    nx_httpc_req_t q = {.method = "POST", .url = d->url, .service = "the endpoint",
                        .headers = h, .body = d->body, .body_len = d->len,
                        .content_type = NX_HTTPC_JSON, .timeout_ms = p->timeout_ms,
                        .max_body = NX_WEBHOOK_ANSWER_MAX, .truncate = true,
                        .allow_http = p->allow_http, .cancel = aborted, .check_addr = addr_ok,
                        .ud = call};
    return nx_httpc_perform(c->arena, &q, r, err);
}

/* Sets the outcome of an attempt from the call's result. */
static void judge(struct pool *p, nx_chain_t *c, nx_delivery_t *d, int rc,
                  const nx_httpc_resp_t *r, const struct call *call, const nx_err_t *err)
{
    bool refused = rc == NX_EVALIDATION || (rc != NX_OK && r->fail == NX_HTTPC_REFUSED);
    if (rc == NX_OK && r->status >= 200 && r->status < 300) {
        d->outcome = NX_WH_OK;
        return;
    }
    if (rc != NX_OK && r->fail == NX_HTTPC_ABORTED) {
        d->outcome = NX_WH_RELEASE; /* stopping: given back, not counted */
        return;
    }
    if (refused)
        d->error = nx_arena_sprintf(c->arena, "refused: the URL %s",
                                    call->refused ? nx_arena_sprintf(c->arena, "leads to %s, "
                                                    "which webhooks may not reach",
                                                    call->refused)
                                                  : err->detail);
    else if (rc == NX_OK)
        d->error = nx_arena_sprintf(c->arena, "the endpoint answered %ld%s", r->status,
                                    r->status >= 300 && r->status < 400
                                        ? " (redirects are not followed)" : "");
    else
        d->error = nx_arena_strdup(c->arena, err->detail[0] ? err->detail : "the call failed");
    if (!d->error)
        d->error = "the attempt failed";
    bool last = refused || d->attempt >= d->max_attempts;
    d->outcome = last ? NX_WH_FAILED : NX_WH_RETRY;
    d->retry_ms = last ? 0 : backoff_ms(p->retry_base_ms, d->attempt);
}

/* The one place an attempt's outcome and latency are reported (log and
 * metrics); refused: its address was not allowed, so nothing was sent. */
static void observe(const nx_delivery_t *d, bool refused, const nx_err_t *err)
{
    if (d->outcome == NX_WH_RELEASE)
        return;
    nx_metrics_webhook_delivery(d->outcome == NX_WH_OK ? NX_METRICS_WEBHOOK_SUCCEEDED
                                : refused             ? NX_METRICS_WEBHOOK_REFUSED
                                : d->status           ? NX_METRICS_WEBHOOK_REJECTED
                                                      : NX_METRICS_WEBHOOK_UNREACHABLE,
                                (double)d->duration_ms / 1000.0);
    int level = d->outcome == NX_WH_OK ? NX_LOG_INFO : NX_LOG_WARN;
    const char *msg = d->outcome == NX_WH_OK      ? "webhook delivered"
                      : d->outcome == NX_WH_RETRY ? "webhook delivery failed, retry scheduled"
                                                  : "webhook delivery failed for good";
    nx_log(level, msg, NX_LS("delivery_id", d->id), NX_LS("event_id", d->event_id),
           NX_LS("event_type", d->event_type), NX_LS("endpoint_id", d->endpoint_id),
           NX_LS("org_id", d->org_id), NX_LI("attempt", d->attempt),
           NX_LI("status_code", d->status), NX_LI("duration_ms", d->duration_ms),
           NX_LI("response_bytes", (long long)d->answer_len),
           NX_LS("response_truncated", d->truncated ? "true" : "false"),
           NX_LI("retry_in_ms", d->retry_ms), NX_LS("error", d->error),
           NX_LS("detail", err->log_detail[0] ? err->log_detail : NULL));
}

static void deliver(struct pool *p, nx_chain_t *c, nx_delivery_t *d)
{
    /* the attempt logs under the event's trace id and sends its traceparent */
    const nx_trace_t *outer = nx_trace_enter(&d->trace);
    nx_time_now_rfc3339(d->at, sizeof(d->at), true);
    int64_t t0 = nx_time_mono_us();
    struct call call = {.arena = c->arena, .pool = p};
    nx_httpc_resp_t r;
    memset(&r, 0, sizeof(r));
    nx_err_t err = {0};
    const char *bad = NULL;
    /* the URL's form again: the settings of this process may be stricter */
    int rc = nx_webhook_url_check(c->arena, d->url, false, &bad);
    if (rc == NX_EVALIDATION)
        nx_err_set(&err, rc, "%s", bad);
    else if (rc == NX_OK)
        rc = post(p, c, d, &r, &call, &err);
    d->duration_ms = (long)((nx_time_mono_us() - t0) / 1000);
    d->status = rc == NX_OK ? r.status : 0;
    d->answer_len = r.len;
    d->truncated = r.truncated;
    if (r.body && r.len)
        d->excerpt = clean_text(c->arena, r.body, r.len, NX_WEBHOOK_EXCERPT_MAX);
    judge(p, c, d, rc, &r, &call, &err);
    observe(d, rc == NX_EVALIDATION || (rc != NX_OK && r.fail == NX_HTTPC_REFUSED), &err);
    nx_trace_enter(outer);
}

/* Delivers a run in order; the first failure ends it (the rest go back). */
static void run_chain(void *ctx, void *item)
{
    struct pool *p = ctx;
    nx_chain_t *c = item;
    for (int i = 0; i < c->n && !atomic_load(&p->abort); i++) {
        deliver(p, c, &c->v[i]);
        if (c->v[i].outcome != NX_WH_OK)
            break;
    }
}

/* ---- dispatcher: writing outcomes back ---------------------------------------- */

/* After the database refused a batch for what it holds: the logs' free
 * text goes, so the outcomes themselves are kept. */
static void scrub(nx_chain_t **v, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < v[i]->n; k++) {
            v[i]->v[k].excerpt = NULL;
            if (v[i]->v[k].error)
                v[i]->v[k].error = "the attempt failed; its error could not be stored";
        }
}

/* Writes items[0..n) back and frees them; true when they stay for the next
 * round (a lost connection). Their endpoints are free again: a claim is
 * due at once, and another when the earliest retry written comes due. */
static bool write_back(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n,
                       nx_db_written_t *due)
{
    struct pool *p = ctx;
    nx_chain_t **v = as_chains(scratch, items, n);
    nx_err_t err = {0};
    if (!v)
        return true;
    int rc = nx_whq_record(db, scratch, p->owner, p->disable_hours, v, n, &err);
    if (rc != NX_OK && rc != NX_EUNAVAILABLE && nx_db_ok(db)) {
        nx_log(NX_LOG_ERROR, "webhook outcomes refused by the database; written without "
               "their texts", NX_LS("error", why(&err)));
        scrub(v, n);
        nx_err_clear(&err);
        rc = nx_whq_record(db, scratch, p->owner, p->disable_hours, v, n, &err);
    }
    if (rc == NX_EUNAVAILABLE)
        return true; /* outcomes are idempotent by their guards: written next round */
    if (rc)
        nx_log(NX_LOG_ERROR, "could not write webhook outcomes", NX_LS("error", why(&err)));
    int64_t now = nx_time_mono_us();
    for (int i = 0; i < n; i++) {
        if (v[i]->disabled)
            nx_log(NX_LOG_WARN, "webhook endpoint disabled: every delivery failed",
                   NX_LS("endpoint_id", v[i]->endpoint_id), NX_LS("org_id", v[i]->org_id),
                   NX_LI("hours", p->disable_hours));
        for (int k = 0; k < v[i]->n; k++) {
            const nx_delivery_t *d = &v[i]->v[k];
            int64_t at = now + d->retry_ms * 1000;
            if (d->outcome == NX_WH_RETRY && d->recorded)
                due->claim_at = !due->claim_at || at < due->claim_at ? at : due->claim_at;
        }
        nx_chain_free(v[i]);
    }
    due->claim_now = true;
    return false;
}

/* ---- dispatcher: claims, leases, retention ------------------------------------ */

/* Claims up to limit runs (newest first, as the queue lists them). */
static int claim(void *ctx, nx_db_t *db, nx_arena_t *scratch, int limit, void **items, int *n,
                 nx_err_t *err)
{
    struct pool *p = ctx;
    nx_chain_t *list = NULL;
    int got = 0, rc = nx_whq_claim(db, scratch, p->owner, p->lease_s, limit, NX_WH_CHAIN_MAX,
                                    p->max_attempts, &list, &got, err);
    for (*n = 0; list; list = list->next)
        items[(*n)++] = list;
    return rc;
}

static void renew(void *ctx, nx_db_t *db, nx_arena_t *scratch, void **items, int n)
{
    struct pool *p = ctx;
    nx_chain_t **v = as_chains(scratch, items, n);
    nx_err_t err = {0};
    if (v && nx_whq_renew(db, scratch, p->owner, p->lease_s, v, n, &err) != NX_OK)
        nx_log(NX_LOG_WARN, "could not renew webhook leases", NX_LS("error", why(&err)));
}

static bool prune(void *ctx, nx_db_t *db, nx_arena_t *scratch)
{
    struct pool *p = ctx;
    return nx_db_dispatcher_prune(db, scratch, nx_whq_prune, p->retention_days,
                                  "webhook events", "retention_days") >= NX_DB_PRUNE_BATCH;
}

static void abandon_calls(void *ctx)
{
    struct pool *p = ctx;
    atomic_store(&p->abort, true);
}

static void free_chain(void *item) { nx_chain_free(item); }

static const nx_db_dispatcher_hooks_t hooks = {
    .run = run_chain, .claim = claim, .write_back = write_back, .renew = renew,
    .prune = prune, .abandon = abandon_calls, .free_item = free_chain,
};

/* ---- start and stop ---------------------------------------------------------------- */

/* Sets up this process's pool (not running) and returns its settings. */
static nx_db_dispatcher_conf_t pool_init(const nx_settings_t *s, const nx_db_target_t *t)
{
    struct pool *p = &pool;
    memset(p, 0, sizeof(*p));
    atomic_init(&p->abort, false);
    p->timeout_ms = s->webhook_timeout * 1000;
    p->lease_s = s->webhook_timeout + LEASE_MARGIN_S;
    p->retention_days = s->job_retention_days;
    p->disable_hours = s->webhook_disable_after_hours;
    p->max_attempts = s->webhook_max_attempts;
    p->retry_base_ms = s->webhook_retry_base_ms;
    p->allow_http = s->webhook_allow_http;
    nx_db_dispatcher_owner_id(p->owner, sizeof(p->owner));
    return (nx_db_dispatcher_conf_t){
        .name = "webhook",
        .target = t,
        .channel = NX_WEBHOOKS_CHANNEL,
        /* LISTEN is session state: behind a transaction pooler the
         * dispatcher polls every JOB_POLL_INTERVAL_MS instead */
        .wake = t->pooled ? NX_DB_WAKE_POLL : NX_DB_WAKE_QUEUE,
        .runners = s->webhook_concurrency,
        .window = 2 * s->webhook_concurrency,
        .lease_s = p->lease_s,
        .poll_ms = s->job_poll_ms,
        .prune_first_us = PRUNE_FIRST_US,
        .stop_tick_us = STOP_TICK_US,
        .claims_first = true,
        .claim_failed = "could not claim webhook deliveries",
        .connect_failed = "webhooks: could not connect to the database",
    };
}

int nx_webhooks_start(const nx_settings_t *s, const nx_db_target_t *t, nx_err_t *err)
{
    if (s->worker_concurrency <= 0 || s->webhook_concurrency <= 0 ||
        nx_db_dispatcher_running(&webhook_workers))
        return NX_OK;
    nx_httpc_global_init();
    nx_db_dispatcher_conf_t conf = pool_init(s, t);
    int rc = nx_db_dispatcher_start(&webhook_workers, &conf, &hooks, &pool, err);
    if (rc != NX_OK)
        return rc;
    nx_log(NX_LOG_INFO, "webhook workers started", NX_LI("concurrency", conf.runners),
           NX_LS("worker_id", pool.owner), NX_LI("timeout_seconds", s->webhook_timeout),
           NX_LI("max_attempts", pool.max_attempts));
    return NX_OK;
}

void nx_webhooks_stop(int drain_seconds)
{
    if (nx_db_dispatcher_stop(&webhook_workers, drain_seconds))
        nx_log0(NX_LOG_INFO, "webhook workers stopped");
}

void nx_webhooks_committed(nx_db_t *db, nx_arena_t *arena)
{
    nx_db_dispatcher_announce(&webhook_workers, db, arena);
}
