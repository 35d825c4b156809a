/*
 * delivery.c - the delivery workers: one dispatcher thread and
 * WEBHOOK_CONCURRENCY sender threads per worker process.
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
#include "core/mem.h"
#include "core/util.h"
#include "db/db.h"
#include "db/notify.h"
#include "metrics/metrics.h"
#include "httpc/httpc.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_INTERVAL_US 25000
#define FOLLOW_UP_US 50000
#define LEASE_MARGIN_S 10 /* past the timeout: time to write the outcome back */
#define RETRY_MAX_MS (24LL * 3600 * 1000)
#define PRUNE_EVERY_US (3600LL * 1000000)
#define PRUNE_FIRST_US (2LL * 1000000)
#define PRUNE_LIMIT 5000
#define PRUNE_BACKLOG_US (200LL * 1000)
#define RECONNECT_MAX_US (10LL * 1000000)

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* senders: a run queued, or quit */
    nx_chain_t *inflight;    /* claimed and not yet written back */
    int ninflight;
    bool stopping, quit;
    atomic_bool abort;       /* calls under way are abandoned */
    int64_t drain_deadline_us;

    int concurrency, window, lease_s, poll_ms, retention_days, disable_hours;
    int timeout_ms, max_attempts, retry_base_ms;
    bool allow_http;
    char owner[128];
    nx_db_target_t target;      /* where the dispatcher connects */
    bool notify;                /* LISTEN on its connection; false behind a pooler: poll */
    nx_db_t *db;             /* dispatcher only */
    int wake_fd;
    pthread_t dispatcher;
    pthread_t *senders;
    int nsenders;
};

static _Atomic(struct pool *) running_pool;
static atomic_bool committed;            /* deliveries written since the last claim */
static _Atomic int64_t last_notify_us;

static void wake(struct pool *p)
{
    uint64_t one = 1;
    ssize_t w = write(p->wake_fd, &one, sizeof(one));
    NX_UNUSED(w);
}

static const char *why(const nx_err_t *err)
{
    return err->log_detail[0] ? err->log_detail : err->detail;
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
static void run_chain(struct pool *p, nx_chain_t *c)
{
    for (int i = 0; i < c->n && !atomic_load(&p->abort); i++) {
        deliver(p, c, &c->v[i]);
        if (c->v[i].outcome != NX_WH_OK)
            break;
    }
}

static nx_chain_t *next_queued(struct pool *p)
{
    for (nx_chain_t *c = p->inflight; c; c = c->next)
        if (c->state == NX_WH_QUEUED)
            return c;
    return NULL;
}

static void *sender_main(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        nx_chain_t *c = NULL;
        while (!p->quit && (p->stopping || !(c = next_queued(p))))
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        c->state = NX_WH_RUNNING;
        pthread_mutex_unlock(&p->mu);
        run_chain(p, c);
        pthread_mutex_lock(&p->mu);
        c->state = NX_WH_DONE;
        wake(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- dispatcher: writing outcomes back ---------------------------------------- */

/* Moves the runs in state (all when state < 0) out of inflight into v.
 * Caller holds the lock. */
static int take(struct pool *p, int state, nx_chain_t **v)
{
    int n = 0;
    nx_chain_t **link = &p->inflight;
    while (*link) {
        nx_chain_t *c = *link;
        if (state < 0 || c->state == state) {
            *link = c->next;
            c->next = NULL;
            v[n++] = c;
            p->ninflight--;
        } else {
            link = &c->next;
        }
    }
    return n;
}

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

/* Writes v[0..n) back; on a lost connection they stay for the next round
 * (*kept = n). Sets *next_due to the earliest retry written. */
static void write_back(struct pool *p, nx_arena_t *scratch, nx_chain_t **v, int n, int *kept,
                       int64_t *next_due)
{
    nx_err_t err = {0};
    *kept = n;
    int rc = nx_whq_record(p->db, scratch, p->owner, p->disable_hours, v, n, &err);
    if (rc != NX_OK && rc != NX_EUNAVAILABLE && nx_db_ok(p->db)) {
        nx_log(NX_LOG_ERROR, "webhook outcomes refused by the database; written without "
               "their texts", NX_LS("error", why(&err)));
        scrub(v, n);
        nx_err_clear(&err);
        rc = nx_whq_record(p->db, scratch, p->owner, p->disable_hours, v, n, &err);
    }
    if (rc == NX_EUNAVAILABLE)
        return; /* outcomes are idempotent by their guards: written next round */
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
            int64_t due = now + d->retry_ms * 1000;
            if (d->outcome == NX_WH_RETRY && d->recorded && (!*next_due || due < *next_due))
                *next_due = due;
        }
        nx_chain_free(v[i]);
    }
    *kept = 0;
}

/* ---- dispatcher: claims, leases, retention ------------------------------------ */

static void add_inflight(struct pool *p, nx_chain_t *list)
{
    pthread_mutex_lock(&p->mu);
    while (list) {
        nx_chain_t *c = list;
        list = c->next;
        c->next = p->inflight;
        p->inflight = c;
        c->state = NX_WH_QUEUED;
        p->ninflight++;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Claims up to free runs; true when the claim came back full. */
static bool claim(struct pool *p, nx_arena_t *scratch, int free)
{
    nx_chain_t *list = NULL;
    int n = 0;
    nx_err_t err = {0};
    int rc = nx_whq_claim(p->db, scratch, p->owner, p->lease_s, free, NX_WH_CHAIN_MAX,
                          p->max_attempts, &list, &n, &err);
    if (rc) {
        nx_log(NX_LOG_WARN, "could not claim webhook deliveries", NX_LS("error", why(&err)));
        while (list) {
            nx_chain_t *c = list;
            list = c->next;
            nx_chain_free(c);
        }
        return false;
    }
    if (n)
        add_inflight(p, list);
    return n == free;
}

static void renew(struct pool *p, nx_arena_t *scratch, nx_chain_t **carry, int ncarry)
{
    nx_chain_t **v = nx_arena_alloc(scratch, (size_t)(p->window + ncarry + 1) * sizeof(*v));
    int n = 0;
    if (!v)
        return;
    pthread_mutex_lock(&p->mu);
    for (nx_chain_t *c = p->inflight; c && n < p->window; c = c->next)
        v[n++] = c; /* what renew reads never changes after the claim */
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < ncarry; i++)
        v[n++] = carry[i];
    nx_err_t err = {0};
    if (n && nx_whq_renew(p->db, scratch, p->owner, p->lease_s, v, n, &err) != NX_OK)
        nx_log(NX_LOG_WARN, "could not renew webhook leases", NX_LS("error", why(&err)));
}

static bool prune(struct pool *p, nx_arena_t *scratch)
{
    long deleted = 0;
    nx_err_t err = {0};
    if (nx_whq_prune(p->db, scratch, p->retention_days, PRUNE_LIMIT, &deleted, &err)) {
        nx_log(NX_LOG_WARN, "could not prune webhook events", NX_LS("error", why(&err)));
        return false;
    }
    if (deleted)
        nx_log(NX_LOG_INFO, "pruned webhook events", NX_LI("count", deleted),
               NX_LI("retention_days", p->retention_days));
    return deleted >= PRUNE_LIMIT;
}

/* ---- dispatcher: the loop -------------------------------------------------------- */

struct timers {
    int64_t poll, renew, prune, follow_up, retry;
    bool want_claim;
};

static int64_t earliest(int64_t a, int64_t b) { return b && (!a || b < a) ? b : a; }

static bool connect_queue(struct pool *p, nx_arena_t *scratch)
{
    nx_err_t err = {0};
    if (p->db && nx_db_ok(p->db))
        return true;
    nx_db_free(p->db);
    p->db = NULL;
    (void)scratch;
    if (nx_db_target_connect(&p->target, NX_DB_WORKER, &p->db, &err) == NX_OK &&
        (!p->notify || nx_db_listen(p->db, NX_WEBHOOKS_CHANNEL, &err) == NX_OK))
        return true;
    nx_log(NX_LOG_WARN, "webhooks: could not connect to the database",
           NX_LS("error", why(&err)));
    nx_db_free(p->db);
    p->db = NULL;
    return false;
}

/* Writes back finished runs (and those a lost connection left over). */
static void flush(struct pool *p, nx_arena_t *scratch, nx_chain_t **v, nx_chain_t **carry,
                  int *ncarry, struct timers *t)
{
    pthread_mutex_lock(&p->mu);
    int n = take(p, NX_WH_DONE, v);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < *ncarry; i++)
        v[n++] = carry[i];
    int64_t due = 0;
    if (n)
        write_back(p, scratch, v, n, ncarry, &due);
    if (*ncarry)
        memcpy(carry, v, (size_t)*ncarry * sizeof(*v));
    t->retry = earliest(t->retry, due);
    if (n && !*ncarry)
        t->want_claim = true; /* senders are free again */
}

/* Stopping: queued runs go back at once; past the deadline the calls under
 * way are abandoned. True when the dispatcher may exit. */
static bool drain_step(struct pool *p, int ncarry)
{
    pthread_mutex_lock(&p->mu);
    for (nx_chain_t *c = p->inflight; c; c = c->next)
        if (c->state == NX_WH_QUEUED)
            c->state = NX_WH_DONE; /* nothing attempted: all released */
    bool idle = p->ninflight == 0 && ncarry == 0;
    bool late = nx_time_mono_us() >= p->drain_deadline_us;
    pthread_mutex_unlock(&p->mu);
    if (late)
        atomic_store(&p->abort, true);
    return idle;
}

static void wait_event(struct pool *p, struct timers *t, int free, bool busy)
{
    int64_t now = nx_time_mono_us();
    pthread_mutex_lock(&p->mu);
    bool stopping = p->stopping;
    pthread_mutex_unlock(&p->mu);
    int64_t until = t->poll;
    if (busy)
        until = earliest(until, t->renew);
    until = earliest(until, t->follow_up);
    until = earliest(until, t->retry);
    if (stopping)
        until = now + 50000;
    int64_t ms = (until - now + 999) / 1000;
    if ((t->want_claim && free > 0 && !stopping) || ms < 0)
        ms = 0;
    nx_err_t err = {0};
    int rc = nx_db_wait_notify(p->notify ? p->db : NULL, p->wake_fd,
                               (int)(ms > 60000 ? 60000 : ms), &err);
    uint64_t junk;
    while (read(p->wake_fd, &junk, sizeof(junk)) > 0)
        ;
    if (rc == 1 || atomic_exchange(&committed, false)) {
        t->want_claim = true;
        t->follow_up = nx_time_mono_us() + FOLLOW_UP_US;
    }
}

/* Timers that came due: a poll, a follow-up, a retry; leases; retention. */
static void timers_due(struct pool *p, nx_arena_t *scratch, struct timers *t, bool stopping,
                       nx_chain_t **carry, int ncarry)
{
    int64_t now = nx_time_mono_us();
    if (now >= t->renew) {
        renew(p, scratch, carry, ncarry);
        t->renew = now + (int64_t)p->lease_s * 1000000 / 3;
    }
    if (!stopping && now >= t->prune)
        t->prune = now + (prune(p, scratch) ? PRUNE_BACKLOG_US : PRUNE_EVERY_US);
    if (now >= t->poll) {
        t->want_claim = true;
        t->poll = now + (int64_t)p->poll_ms * 1000;
    }
    if (t->follow_up && now >= t->follow_up) {
        t->want_claim = true;
        t->follow_up = 0;
    }
    if (t->retry && now >= t->retry) {
        t->want_claim = true;
        t->retry = 0;
    }
}

static int free_slots(struct pool *p, int ncarry)
{
    pthread_mutex_lock(&p->mu);
    int n = p->window - p->ninflight - ncarry;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void *dispatcher_main(void *arg)
{
    struct pool *p = arg;
    nx_arena_t *scratch = nx_arena_new(64 * 1024);
    nx_chain_t **v = nx_calloc((size_t)p->window * 2 + 1, sizeof(*v));
    nx_chain_t **carry = nx_calloc((size_t)p->window * 2 + 1, sizeof(*carry));
    int ncarry = 0;
    int64_t backoff = 250000;
    struct timers t = {.want_claim = true, .prune = nx_time_mono_us() + PRUNE_FIRST_US};
    while (scratch && v && carry) {
        nx_arena_reset(scratch);
        pthread_mutex_lock(&p->mu);
        bool stopping = p->stopping;
        pthread_mutex_unlock(&p->mu);
        if (!connect_queue(p, scratch)) {
            /* nothing can be written back: the leases will run out */
            if (stopping && (drain_step(p, ncarry) || nx_time_mono_us() >= p->drain_deadline_us))
                break;
            struct pollfd fd = {p->wake_fd, POLLIN, 0};
            poll(&fd, 1, (int)(backoff / 1000));
            backoff = backoff * 2 > RECONNECT_MAX_US ? RECONNECT_MAX_US : backoff * 2;
            continue;
        }
        backoff = 250000;
        flush(p, scratch, v, carry, &ncarry, &t);
        if (stopping && drain_step(p, ncarry))
            break;
        timers_due(p, scratch, &t, stopping, carry, ncarry);
        int free = free_slots(p, ncarry);
        if (!stopping && t.want_claim && free > 0) {
            t.want_claim = claim(p, scratch, free);
            free = free_slots(p, ncarry);
        }
        wait_event(p, &t, free, free < p->window);
    }
    for (int i = 0; i < ncarry; i++)
        nx_chain_free(carry[i]);
    nx_free(carry);
    nx_free(v);
    if (scratch)
        nx_arena_free(scratch);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------- */

static struct pool *pool_new(const nx_settings_t *s, const nx_db_target_t *t)
{
    struct pool *p = nx_calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->concurrency = s->webhook_concurrency;
    p->window = 2 * s->webhook_concurrency;
    p->timeout_ms = s->webhook_timeout * 1000;
    p->lease_s = s->webhook_timeout + LEASE_MARGIN_S;
    p->poll_ms = s->job_poll_ms;
    p->retention_days = s->job_retention_days;
    p->disable_hours = s->webhook_disable_after_hours;
    p->max_attempts = s->webhook_max_attempts;
    p->retry_base_ms = s->webhook_retry_base_ms;
    p->allow_http = s->webhook_allow_http;
    p->target = *t;
    p->target.priv = NULL; /* the embedded cluster stays its owner's */
    /* LISTEN is session state: behind a transaction pooler the dispatcher
     * polls every JOB_POLL_INTERVAL_MS instead */
    p->notify = !t->pooled;
    char host[64] = "host", id[37];
    gethostname(host, sizeof(host) - 1);
    host[nx_utf8_valid_prefix(host, strlen(host))] = '\0';
    nx_uuid_v4(id);
    snprintf(p->owner, sizeof(p->owner), "%.64s:%d:%.8s", host, (int)getpid(), id);
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->senders = nx_calloc((size_t)p->concurrency, sizeof(*p->senders));
    if (p->wake_fd < 0 || !p->senders) {
        if (p->wake_fd >= 0)
            close(p->wake_fd);
        nx_free(p->senders);
        nx_free(p);
        return NULL;
    }
    return p;
}

/* Joins the senders and frees the pool. */
static void pool_free(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nsenders; i++)
        pthread_join(p->senders[i], NULL);
    while (p->inflight) {
        nx_chain_t *c = p->inflight;
        p->inflight = c->next;
        nx_chain_free(c);
    }
    nx_db_free(p->db);
    close(p->wake_fd);
    nx_free(p->senders);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    nx_free(p);
}

int nx_webhooks_start(const nx_settings_t *s, const nx_db_target_t *t, nx_err_t *err)
{
    if (s->worker_concurrency <= 0 || s->webhook_concurrency <= 0 ||
        atomic_load(&running_pool))
        return NX_OK;
    nx_httpc_global_init();
    struct pool *p = pool_new(s, t);
    if (!p)
        return nx_err_set(err, NX_ENOMEM, "could not start the webhook workers");
    for (int i = 0; i < p->concurrency; i++) {
        if (pthread_create(&p->senders[i], NULL, sender_main, p) != 0)
            break;
        p->nsenders++;
    }
    if (p->nsenders < p->concurrency ||
        pthread_create(&p->dispatcher, NULL, dispatcher_main, p) != 0) {
        pool_free(p);
        return nx_err_set(err, NX_ENOMEM, "could not start the webhook worker threads");
    }
    atomic_store(&running_pool, p);
    nx_log(NX_LOG_INFO, "webhook workers started", NX_LI("concurrency", p->concurrency),
           NX_LS("worker_id", p->owner), NX_LI("timeout_seconds", s->webhook_timeout),
           NX_LI("max_attempts", p->max_attempts));
    return NX_OK;
}

void nx_webhooks_stop(int drain_seconds)
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
    atomic_store(&p->abort, true); /* whatever still runs is abandoned */
    pool_free(p);
    nx_log0(NX_LOG_INFO, "webhook workers stopped");
}

void nx_webhooks_committed(nx_db_t *db, nx_arena_t *arena)
{
    struct pool *p = atomic_load(&running_pool);
    if (p) {
        atomic_store(&committed, true);
        wake(p);
    }
    int64_t now = nx_time_mono_us();
    int64_t last = atomic_load(&last_notify_us);
    if (now - last < NOTIFY_INTERVAL_US ||
        !atomic_compare_exchange_strong(&last_notify_us, &last, now))
        return;
    nx_err_t err = {0};
    nx_db_exec_sql(db, arena, "NOTIFY " NX_WEBHOOKS_CHANNEL, NULL, &err);
}
