/*
 * dispatcher.c - a worker pool around one database connection.
 *
 * DESIGN. The dispatcher thread owns the pool's only connection (as
 * nexus_worker), which also LISTENs on the pool's channel - unless it goes
 * through a transaction pooler, where a LISTEN would stay behind on a
 * server session other clients use: then the dispatcher LISTENs on a direct
 * connection of its own (DATABASE_LISTEN_URL), or only polls. A lost
 * connection is opened again with a back-off of 250 ms doubling up to 10 s;
 * a lost LISTEN connection is tried again every 5 s, polling meanwhile.
 *
 * Each round the dispatcher writes back what the runners finished (or what
 * a lost connection left over, held in carry), runs the timers that came
 * due - lease renewal every third of the lease, the caller's upkeep, the
 * prune (first soon after start, then hourly, every 200 ms while a batch
 * comes back full) - and claims when woken: by a notification, by
 * nx_db_dispatcher_announce in this process (then again 50 ms later, so
 * work committed inside a suppressed NOTIFY interval is not left to the
 * poll), by a free slot after a full claim, by a due time the write-back
 * reported, after a (re)connect, or by the poll. Runners take queued items
 * in list order and wake the dispatcher through an eventfd when done; they
 * never touch the database, so a pool costs one connection whatever its
 * concurrency (architecture.md: keep connections few).
 *
 * Stopping: no new claims and no new runs; what runs gets the drain
 * timeout, its leases still renewed (however long the drain, no other
 * worker takes it meanwhile). What then happens depends on whether the
 * queue can release items (see nx_db_dispatcher_hooks_t.release).
 */
#include "core/nx.h"
#include "db/dispatcher.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "db/db.h"
#include "db/notify.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NOTIFY_INTERVAL_US 25000
#define FOLLOW_UP_US 50000
#define PRUNE_EVERY_US (3600LL * 1000000)
#define PRUNE_BACKLOG_US (200LL * 1000)
#define RECONNECT_FIRST_US 250000
#define RECONNECT_MAX_US (10LL * 1000000)
#define RELISTEN_US (5LL * 1000000)

enum slot_state { QUEUED = 0, RUNNING, DONE };

/* An item in flight. The window's slots are allocated once, so a runner's
 * slot stays put while the dispatcher relinks the list. */
struct slot {
    void *item;
    int state; /* enum slot_state, under the lock */
    struct slot *next;
};

/* A running pool: nx_db_dispatcher_t.running. */
struct nx_db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* runners: an item queued, or quit */
    struct slot *inflight;      /* claimed and not yet written back, in run order */
    struct slot *spare;         /* slots not in flight */
    int ninflight;
    bool stopping;              /* no new claims or runs */
    bool quit;                  /* runners exit */
    int64_t drain_deadline_us;

    nx_db_dispatcher_conf_t conf;
    nx_db_target_t target;
    nx_db_dispatcher_hooks_t hooks;
    void *ctx;
    atomic_bool announced;      /* work committed here since the last wait */
    nx_db_t *db;                /* dispatcher only */
    bool lost;                  /* db was lost and not yet replaced */
    nx_db_t *ldb;               /* NX_DB_WAKE_OWN: the LISTEN connection */
    int64_t relisten_at;        /* NX_DB_WAKE_OWN: when to try ldb again */
    bool relistened;            /* a LISTEN began: notifications may have been missed */
    int wake_fd;                /* eventfd */
    struct slot *slots;
    pthread_t dispatcher;
    pthread_t *runners;
    int nrunners;
};

/* The operator-facing reason of an error. */
static const char *why(const nx_err_t *err)
{
    return err->log_detail[0] ? err->log_detail : err->detail;
}

static void wake(struct nx_db_pool *d)
{
    uint64_t one = 1;
    ssize_t w = write(d->wake_fd, &one, sizeof(one));
    NX_UNUSED(w);
}

static int64_t earliest(int64_t a, int64_t b) { return b && (!a || b < a) ? b : a; }

/* ---- runners --------------------------------------------------------------- */

static struct slot *next_queued(struct nx_db_pool *d)
{
    for (struct slot *s = d->inflight; s; s = s->next)
        if (s->state == QUEUED)
            return s;
    return NULL;
}

static void *runner_main(void *arg)
{
    struct nx_db_pool *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        struct slot *s = NULL;
        while (!d->quit && (d->stopping || !(s = next_queued(d))))
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->quit)
            break;
        s->state = RUNNING;
        pthread_mutex_unlock(&d->mu);
        d->hooks.run(d->ctx, s->item);
        pthread_mutex_lock(&d->mu);
        s->state = DONE;
        wake(d);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- the items in flight ---------------------------------------------------- */

/* Moves the items in state out of inflight into v; returns how many.
 * Caller holds the lock. */
static int take(struct nx_db_pool *d, int state, void **v)
{
    int n = 0;
    struct slot **link = &d->inflight;
    while (*link) {
        struct slot *s = *link;
        if (s->state == state) {
            *link = s->next;
            v[n++] = s->item;
            s->next = d->spare;
            d->spare = s;
            d->ninflight--;
        } else {
            link = &s->next;
        }
    }
    return n;
}

/* Queues a claim's items[0..n) (the last claimed first) for the runners,
 * in claim order, behind those still queued or, with claims_first, ahead
 * of them. */
static void add_inflight(struct nx_db_pool *d, void **items, int n)
{
    pthread_mutex_lock(&d->mu);
    struct slot **at = &d->inflight;
    while (!d->conf.claims_first && *at)
        at = &(*at)->next;
    for (int i = n - 1; i >= 0; i--) {
        struct slot *s = d->spare;
        NX_ASSERT(s); /* a claim never asks for more than the free slots */
        d->spare = s->next;
        s->item = items[i];
        s->state = QUEUED;
        s->next = *at;
        *at = s;
        at = &s->next;
        d->ninflight++;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static bool is_stopping(struct nx_db_pool *d)
{
    pthread_mutex_lock(&d->mu);
    bool s = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return s;
}

/* Free slots (items held for a retry of their write-back count). */
static int free_slots(struct nx_db_pool *d, int ncarry)
{
    pthread_mutex_lock(&d->mu);
    int n = d->conf.window - d->ninflight - ncarry;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/* ---- the connection ------------------------------------------------------------ */

/* The LISTEN connection of its own: a failure is not fatal (the poll goes
 * on), so it is retried every RELISTEN_US rather than holding up the queue. */
static void connect_listen(struct nx_db_pool *d)
{
    if (d->conf.wake != NX_DB_WAKE_OWN || (d->ldb && nx_db_ok(d->ldb)) ||
        nx_time_mono_us() < d->relisten_at)
        return;
    nx_db_free(d->ldb);
    d->ldb = NULL;
    nx_err_t err = {0};
    if (nx_db_listen_open(&d->ldb, d->target.listen_conninfo, d->conf.channel, &err) == NX_OK) {
        d->relistened = true;
        return;
    }
    d->relisten_at = nx_time_mono_us() + RELISTEN_US;
    nx_log(NX_LOG_WARN, d->conf.listen_failed, NX_LS("error", why(&err)));
}

static bool connect_queue(struct nx_db_pool *d)
{
    nx_err_t err = {0};
    connect_listen(d);
    if (d->db && nx_db_ok(d->db))
        return true;
    d->lost = d->lost || d->db != NULL;
    nx_db_free(d->db);
    d->db = NULL;
    int64_t t0 = nx_time_mono_us();
    int rc = nx_db_target_connect(&d->target, NX_DB_WORKER, &d->db, &err);
    if (d->hooks.connected)
        d->hooks.connected(d->ctx, d->lost, rc == NX_OK, nx_time_mono_us() - t0);
    if (rc == NX_OK && (d->conf.wake != NX_DB_WAKE_QUEUE ||
                        nx_db_listen(d->db, d->conf.channel, &err) == NX_OK)) {
        d->lost = false;
        d->relistened = true;
        return true;
    }
    nx_log(NX_LOG_WARN, d->conf.connect_failed, NX_LS("error", why(&err)));
    nx_db_free(d->db);
    d->db = NULL;
    return false;
}

/* Sleeps up to ms unless woken (reconnect back-off). */
static void nap(struct nx_db_pool *d, int64_t ms)
{
    struct pollfd fd = {d->wake_fd, POLLIN, 0};
    poll(&fd, 1, (int)ms);
}

/* ---- the dispatcher's round ------------------------------------------------------ */

struct timers {
    int64_t poll, renew, upkeep, prune, follow_up, retry;
    bool want_claim;
};

/* Writes back finished items (and those a lost connection left over). */
static void flush(struct nx_db_pool *d, nx_arena_t *scratch, void **v, void **carry,
                  int *ncarry, struct timers *t)
{
    pthread_mutex_lock(&d->mu);
    int n = take(d, DONE, v);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < *ncarry; i++)
        v[n++] = carry[i];
    if (!n)
        return;
    nx_db_written_t due = {0};
    bool kept = d->hooks.write_back(d->ctx, d->db, scratch, v, n, &due);
    *ncarry = kept ? n : 0;
    if (kept)
        memcpy(carry, v, (size_t)n * sizeof(*v));
    t->retry = earliest(t->retry, due.claim_at);
    if (due.claim_now)
        t->want_claim = true;
}

/* Stopping: queued items go back at once; true when the dispatcher may
 * exit. db is NULL while the connection is lost (no release hook then). */
static bool drain_step(struct nx_db_pool *d, nx_arena_t *scratch, void **v, int ncarry)
{
    bool releasing = d->hooks.release != NULL;
    pthread_mutex_lock(&d->mu);
    int q = releasing ? take(d, QUEUED, v) : 0;
    for (struct slot *s = d->inflight; !releasing && s; s = s->next)
        if (s->state == QUEUED)
            s->state = DONE; /* nothing attempted: written back as such */
    bool idle = d->ninflight == 0 && ncarry == 0;
    bool late = nx_time_mono_us() >= d->drain_deadline_us;
    pthread_mutex_unlock(&d->mu);
    if (q)
        d->hooks.release(d->ctx, d->db, scratch, v, q);
    for (int i = 0; i < q; i++)
        d->hooks.free_item(v[i]);
    if (idle || !late)
        return idle;
    d->hooks.abandon(d->ctx);
    if (!releasing)
        return false; /* the runners come back with their items given up */
    pthread_mutex_lock(&d->mu);
    int r = 0;
    for (struct slot *s = d->inflight; s; s = s->next)
        v[r++] = s->item; /* stay in flight: runners still hold them; freed after the join */
    pthread_mutex_unlock(&d->mu);
    if (r)
        d->hooks.release(d->ctx, d->db, scratch, v, r);
    return true;
}

static void renew(struct nx_db_pool *d, nx_arena_t *scratch, void **carry, int ncarry)
{
    void **v = nx_arena_alloc(scratch, (size_t)(d->conf.window + ncarry + 1) * sizeof(*v));
    int n = 0;
    if (!v)
        return;
    pthread_mutex_lock(&d->mu);
    for (struct slot *s = d->inflight; s && n < d->conf.window; s = s->next)
        v[n++] = s->item; /* what a renewal reads never changes after the claim */
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < ncarry; i++)
        v[n++] = carry[i];
    if (n)
        d->hooks.renew(d->ctx, d->db, scratch, v, n);
}

/* The timers that came due. Stopping, only the leases are renewed: a drain
 * may outlast a lease, and what still runs here must not be claimed again
 * by another worker. */
static void timers_due(struct nx_db_pool *d, nx_arena_t *scratch, struct timers *t,
                       bool stopping, void **carry, int ncarry)
{
    int64_t now = nx_time_mono_us();
    if (now >= t->renew) {
        renew(d, scratch, carry, ncarry);
        t->renew = now + (int64_t)d->conf.lease_s * 1000000 / 3;
    }
    if (!stopping && d->hooks.upkeep && now >= t->upkeep)
        t->upkeep = d->hooks.upkeep(d->ctx, d->db, scratch, now);
    if (!stopping && now >= t->prune) {
        /* a full batch means a backlog: come back soon rather than in an
         * hour, so retention keeps up with a busy queue */
        bool more = d->hooks.prune(d->ctx, d->db, scratch);
        t->prune = now + (more ? PRUNE_BACKLOG_US : PRUNE_EVERY_US);
    }
    if (now >= t->poll) {
        t->want_claim = true;
        t->poll = now + (int64_t)d->conf.poll_ms * 1000;
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

/* Claims up to free items (at most a batch); a full claim wants another. */
static void claim(struct nx_db_pool *d, nx_arena_t *scratch, int free, void **v,
                  struct timers *t)
{
    int limit = d->conf.batch > 0 && d->conf.batch < free ? d->conf.batch : free;
    int n = 0;
    nx_err_t err = {0};
    int rc = d->hooks.claim(d->ctx, d->db, scratch, limit, v, &n, &err);
    if (rc) {
        nx_log(NX_LOG_WARN, d->conf.claim_failed, NX_LS("error", why(&err)));
        for (int i = 0; i < n; i++)
            d->hooks.free_item(v[i]);
        t->want_claim = false;
        return;
    }
    if (n)
        add_inflight(d, v, n);
    t->want_claim = n == limit;
}

/* Waits for a notification, a wake-up or the next timer. */
static void wait_event(struct nx_db_pool *d, struct timers *t, int free, int ncarry)
{
    int64_t now = nx_time_mono_us();
    pthread_mutex_lock(&d->mu);
    bool stopping = d->stopping, busy = d->ninflight > 0 || ncarry > 0;
    int64_t deadline = d->drain_deadline_us;
    pthread_mutex_unlock(&d->mu);
    int64_t until = t->poll;
    if (busy)
        until = earliest(until, t->renew);
    until = earliest(until, t->upkeep);
    until = earliest(until, t->follow_up);
    until = earliest(until, t->retry);
    if (stopping) /* leaving at the deadline (release) or when the runners are back */
        until = earliest(now + d->conf.stop_tick_us, d->hooks.release ? deadline : 0);
    if (d->conf.wake == NX_DB_WAKE_OWN && !d->ldb)
        until = earliest(until, d->relisten_at);
    int64_t ms = (until - now + 999) / 1000;
    if ((t->want_claim && free > 0 && !stopping) || ms < 0)
        ms = 0;
    nx_err_t err = {0};
    nx_db_t *listening = d->conf.wake == NX_DB_WAKE_QUEUE ? d->db
                         : d->conf.wake == NX_DB_WAKE_OWN ? d->ldb
                                                          : NULL;
    int rc = nx_db_wait_notify(listening, d->wake_fd, (int)(ms > 60000 ? 60000 : ms), &err);
    uint64_t junk;
    while (read(d->wake_fd, &junk, sizeof(junk)) > 0)
        ;
    if (rc == 1 || atomic_exchange(&d->announced, false)) {
        t->want_claim = true;
        t->follow_up = nx_time_mono_us() + FOLLOW_UP_US;
    }
}

/* One round on a working connection; false when the dispatcher is to leave. */
static bool round_once(struct nx_db_pool *d, nx_arena_t *scratch, bool stopping, void **v,
                       void **carry, int *ncarry, struct timers *t)
{
    if (d->relistened) { /* what was notified before the LISTEN is not lost */
        d->relistened = false;
        t->want_claim = true;
    }
    flush(d, scratch, v, carry, ncarry, t);
    if (stopping && drain_step(d, scratch, v, *ncarry))
        return false;
    timers_due(d, scratch, t, stopping, carry, *ncarry);
    int free = free_slots(d, *ncarry);
    if (!stopping && t->want_claim && free > 0) {
        claim(d, scratch, free, v, t);
        free = free_slots(d, *ncarry);
    }
    wait_event(d, t, free, *ncarry);
    return true;
}

static void *dispatcher_main(void *arg)
{
    struct nx_db_pool *d = arg;
    nx_arena_t *scratch = nx_arena_new(64 * 1024);
    void **v = nx_calloc((size_t)d->conf.window * 2 + 1, sizeof(*v));
    void **carry = nx_calloc((size_t)d->conf.window * 2 + 1, sizeof(*carry));
    int ncarry = 0;
    int64_t backoff = RECONNECT_FIRST_US;
    struct timers t = {.want_claim = true, .prune = nx_time_mono_us() + d->conf.prune_first_us};
    while (scratch && v && carry) {
        nx_arena_reset(scratch);
        bool stopping = is_stopping(d);
        if (!connect_queue(d)) {
            /* nothing can be written back: the leases will run out */
            if (stopping && (d->hooks.release || drain_step(d, scratch, v, ncarry) ||
                                   nx_time_mono_us() >= d->drain_deadline_us))
                break;
            nap(d, backoff / 1000);
            backoff = backoff * 2 > RECONNECT_MAX_US ? RECONNECT_MAX_US : backoff * 2;
            continue;
        }
        backoff = RECONNECT_FIRST_US;
        if (!round_once(d, scratch, stopping, v, carry, &ncarry, &t))
            break;
    }
    for (int i = 0; i < ncarry; i++)
        d->hooks.free_item(carry[i]);
    nx_free(carry);
    nx_free(v);
    if (scratch)
        nx_arena_free(scratch);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

/* Tells the runners to quit and joins them. */
static void stop_runners(struct nx_db_pool *d)
{
    pthread_mutex_lock(&d->mu);
    d->quit = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->nrunners; i++)
        pthread_join(d->runners[i], NULL);
    d->nrunners = 0;
}

/* Frees the pool (its runners stopped, if any) and every item still in it. */
static void pool_free(struct nx_db_pool *d)
{
    stop_runners(d);
    for (struct slot *s = d->inflight; s; s = s->next)
        d->hooks.free_item(s->item);
    nx_db_free(d->db);
    nx_db_free(d->ldb);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    nx_free(d->slots);
    nx_free(d->runners);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    nx_free(d);
}

static struct nx_db_pool *pool_new(const nx_db_dispatcher_conf_t *conf,
                                   const nx_db_dispatcher_hooks_t *hooks, void *ctx)
{
    struct nx_db_pool *d = nx_calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->conf = *conf;
    d->target = *conf->target;
    d->target.priv = NULL; /* the embedded cluster stays its owner's */
    d->conf.target = &d->target;
    d->hooks = *hooks;
    d->ctx = ctx;
    d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    d->runners = nx_calloc((size_t)conf->runners, sizeof(*d->runners));
    d->slots = nx_calloc((size_t)conf->window, sizeof(*d->slots));
    if (d->wake_fd < 0 || !d->runners || !d->slots) {
        pool_free(d);
        return NULL;
    }
    for (int i = conf->window - 1; i >= 0; i--) {
        d->slots[i].next = d->spare;
        d->spare = &d->slots[i];
    }
    return d;
}

bool nx_db_dispatcher_running(nx_db_dispatcher_t *disp)
{
    return atomic_load(&disp->running) != NULL;
}

int nx_db_dispatcher_start(nx_db_dispatcher_t *disp, const nx_db_dispatcher_conf_t *conf,
                           const nx_db_dispatcher_hooks_t *hooks, void *ctx, nx_err_t *err)
{
    struct nx_db_pool *d = pool_new(conf, hooks, ctx);
    if (!d)
        return nx_err_set(err, NX_ENOMEM, "could not start the %s workers", conf->name);
    for (int i = 0; i < conf->runners; i++) {
        if (pthread_create(&d->runners[i], NULL, runner_main, d) != 0)
            break;
        d->nrunners++;
    }
    if (d->nrunners < conf->runners ||
        pthread_create(&d->dispatcher, NULL, dispatcher_main, d) != 0) {
        pool_free(d);
        return nx_err_set(err, NX_ENOMEM, "could not start the %s worker threads", conf->name);
    }
    atomic_store(&disp->running, d);
    return NX_OK;
}

bool nx_db_dispatcher_stop(nx_db_dispatcher_t *disp, int drain_seconds)
{
    struct nx_db_pool *d = atomic_exchange(&disp->running, NULL);
    if (!d)
        return false;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    d->drain_deadline_us = nx_time_mono_us() + (int64_t)drain_seconds * 1000000;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    wake(d);
    pthread_join(d->dispatcher, NULL);
    d->hooks.abandon(d->ctx); /* whatever still runs is abandoned */
    pool_free(d);
    return true;
}

void nx_db_dispatcher_announce(nx_db_dispatcher_t *disp, nx_db_t *db, nx_arena_t *arena)
{
    struct nx_db_pool *d = atomic_load(&disp->running);
    if (d) {
        atomic_store(&d->announced, true);
        wake(d);
    }
    int64_t now = nx_time_mono_us();
    int64_t last = atomic_load(&disp->last_notify_us);
    if (now - last < NOTIFY_INTERVAL_US ||
        !atomic_compare_exchange_strong(&disp->last_notify_us, &last, now))
        return;
    nx_err_t err = {0};
    nx_db_exec_sql(db, arena, disp->notify_sql, NULL, &err);
}

long nx_db_dispatcher_prune(nx_db_t *db, nx_arena_t *scratch, nx_db_prune_cb *prune, int age,
                            const char *what, const char *age_name)
{
    long deleted = 0;
    nx_err_t err = {0};
    char msg[96];
    if (prune(db, scratch, age, NX_DB_PRUNE_BATCH, &deleted, &err)) {
        snprintf(msg, sizeof(msg), "could not prune %s", what);
        nx_log(NX_LOG_WARN, msg, NX_LS("error", why(&err)));
        return -1;
    }
    snprintf(msg, sizeof(msg), "pruned %s", what);
    if (deleted)
        nx_log(NX_LOG_INFO, msg, NX_LI("count", deleted), NX_LI(age_name, age));
    return deleted;
}

void nx_db_dispatcher_owner_id(char *out, size_t size)
{
    char host[64] = "host", id[37];
    gethostname(host, sizeof(host) - 1);
    host[nx_utf8_valid_prefix(host, strlen(host))] = '\0'; /* the owner is stored as text */
    nx_uuid_v4(id);
    snprintf(out, size, "%.64s:%d:%.8s", host, (int)getpid(), id);
}
